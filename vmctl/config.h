/* SPDX-License-Identifier: MIT */
/*
 * Where vmctl connects and with which credentials: the command line, the
 * environment and the contexts of ~/.config/vmctl/config.json:
 *
 *   {"contexts": {"prod": {"connect": "tls://h:7443", "cert": "c.pem",
 *                          "key": "k.pem", "ca": "ca.pem"}},
 *    "current": "prod"}
 *
 * Relative file names in a context are relative to the config file's
 * directory. Unknown keys are an error that names them.
 */
#ifndef VMCTL_CONFIG_H
#define VMCTL_CONFIG_H

#include <stddef.h>

/* What the user asked for; every member may be NULL (not given). */
struct config_input {
	const char *connect;		/* --connect */
	const char *context;		/* --context */
	const char *cert;		/* --cert */
	const char *key;		/* --key */
	const char *ca;			/* --ca */
	const char *env_connect;	/* $VMCTL_CONNECT */
	const char *config_path;	/* the config file; NULL: none to read */
};

/* The outcome; strings are malloc'd (NULL when unset). */
struct config_target {
	char *uri;
	char *cert;
	char *key;
	char *ca;
	char *context;			/* the context used, if any */
};

/*
 * Pick the URI and TLS files. The URI comes from, in this order: --connect,
 * the context named by --context, $VMCTL_CONNECT, the config's "current"
 * context, and VMCTL_DEFAULT_URI. --cert, --key and --ca win over the
 * context's. A config file that is missing is fine unless --context names
 * a context; one that is unreadable or malformed is an error. Returns 0,
 * -EINVAL or -ENOENT with a message in err, or -ENOMEM.
 */
int config_resolve(const struct config_input *in, struct config_target *ret,
		   char *err, size_t errlen);

/* Free the strings of t and zero it; a zeroed t is fine. */
void config_target_clear(struct config_target *t);

/*
 * The default config file: $XDG_CONFIG_HOME/vmctl/config.json, else
 * $HOME/.config/vmctl/config.json. Returns 0, or -ENOENT when neither
 * variable is set, -ENAMETOOLONG when buf is too small.
 */
int config_default_path(char *buf, size_t len);

#endif
