/* SPDX-License-Identifier: MIT */
/*
 * vmmd's configuration: a JSON file (configs/vmmd.json is the example)
 * whose every setting has a default, so that no file at all gives a daemon
 * that runs as root with /var/lib/vmmd and /run/vmmd. Unknown keys and
 * values of the wrong type are errors naming the key ("tls.prot: unknown
 * key", "limits.max_vms: must be an integer 1..65536").
 */
#ifndef VMMD_CONFIG_H
#define VMMD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "vmmd/log.h"

#define CONFIG_DEFAULT_PATH		"/etc/vmmd/vmmd.json"
#define CONFIG_STATE_DIR_DEFAULT	"/var/lib/vmmd"
#define CONFIG_RUNTIME_DIR_DEFAULT	"/run/vmmd"
#define CONFIG_SOCKET_DEFAULT		"/run/vmmd/vmmd.sock"
#define CONFIG_TLS_ADDRESS_DEFAULT	"0.0.0.0"
#define CONFIG_TLS_PORT_DEFAULT		7443u
#define CONFIG_MAX_VMS_DEFAULT		256u
#define CONFIG_MAX_CLIENTS_DEFAULT	256u
#define CONFIG_FRAME_MAX_DEFAULT	(1024u * 1024u)
#define CONFIG_FRAME_MAX_MIN		(64u * 1024u)
#define CONFIG_FRAME_MAX_MAX		(256u * 1024u * 1024u)
#define CONFIG_INFLIGHT_DEFAULT		64u
#define CONFIG_IDLE_TIMEOUT_DEFAULT	600u
#define CONFIG_OUTPUT_MAX_DEFAULT	(16u * 1024u * 1024u)
#define CONFIG_START_TIMEOUT_DEFAULT	10u

struct config_tls {
	bool enabled;		/* the "tls" object is there */
	char *address;		/* numeric IPv4 or IPv6 address */
	unsigned int port;
	char *cert;
	char *key;		/* NULL: the key is in cert */
	char *ca;
};

struct config {
	char *state_dir;
	char *runtime_dir;
	char *socket;
	char *socket_group;	/* NULL: only root is admin */
	char *policy;		/* NULL: no access policy */
	struct config_tls tls;
	unsigned int max_vms;
	unsigned int max_clients;
	size_t frame_max;
	unsigned int requests_in_flight;	/* per client */
	unsigned int idle_timeout_sec;	/* 0: none */
	size_t output_max;	/* bytes queued to a client before dropping */
	unsigned int start_timeout_sec;
	enum log_level log_level;
	char *vmm_run;		/* NULL: next to vmmd, else $PATH */
	/* The name of vmmd's part of each cgroup hierarchy, under its own
	 * cgroup (cgroup.h); NULL: CGROUP_SUBTREE_DEFAULT. Tests give each
	 * daemon its own. */
	char *cgroup_subtree;
};

/* The defaults. Returns 0 and a new config, or -ENOMEM. */
int config_new(struct config **ret);

/*
 * A config from JSON (borrowed): the defaults with what j sets. Returns 0
 * and a new config, -EINVAL with the key named in err, or -ENOMEM.
 */
int config_from_json(json_t *j, struct config **ret, char *err,
		     size_t errlen);

/* The same from a file; err names the file when it cannot be read. */
int config_load(const char *path, struct config **ret, char *err,
		size_t errlen);

void config_free(struct config *c);

/*
 * Where vmm-run is: c->vmm_run when set (it must be executable), else
 * vmm-run in the directory of self_exe (the running vmmd), else the first
 * vmm-run on $PATH. Writes the path into buf. 0, -ENOENT or -ENAMETOOLONG.
 */
int config_find_vmm_run(const struct config *c, const char *self_exe,
			char *buf, size_t len);

#endif
