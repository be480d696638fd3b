/* SPDX-License-Identifier: MIT */
/* The client's config file and where a command connects. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto/frame.h"
#include "vmctl/config.h"
#include "vmctl/vmctl.h"

/* A config file is small; anything bigger is a mistake, not a config. */
#define CONFIG_FILE_MAX (1024 * 1024)

void
config_target_clear(struct config_target *t)
{
	free(t->uri);
	free(t->cert);
	free(t->key);
	free(t->ca);
	free(t->context);
	memset(t, 0, sizeof(*t));
}

int
config_default_path(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, len, "%s/vmctl/config.json", xdg);
	else if (home && home[0])
		n = snprintf(buf, len, "%s/.config/vmctl/config.json", home);
	else
		return -ENOENT;
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * The config file's JSON in *ret (a new reference), or NULL in *ret when
 * there is no file. -EINVAL with err for a file that is not a config.
 */
static int
config_load(const char *path, json_t **ret, char *err, size_t errlen)
{
	json_error_t jerr;
	FILE *f;
	json_t *root;
	long size;

	*ret = NULL;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -EINVAL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > CONFIG_FILE_MAX) {
		fclose(f);
		snprintf(err, errlen, "%s: larger than %d bytes", path,
			 CONFIG_FILE_MAX);
		return -EINVAL;
	}
	rewind(f);
	root = json_loadf(f, PROTO_JSON_DECODE_FLAGS, &jerr);
	fclose(f);
	if (!root) {
		snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(err, errlen, "%s: must be a JSON object", path);
		return -EINVAL;
	}
	*ret = root;
	return 0;
}

/* Check the file's shape once, so a typo is reported wherever it is. */
static int
config_check(const char *path, json_t *root, char *err, size_t errlen)
{
	json_t *contexts = json_object_get(root, "contexts"), *ctx, *v;
	json_t *cur = json_object_get(root, "current");
	const char *key, *name;

	json_object_foreach(root, key, v) {
		if (strcmp(key, "contexts") != 0 && strcmp(key, "current") != 0) {
			snprintf(err, errlen, "%s: %s: unknown key", path, key);
			return -EINVAL;
		}
	}
	if (contexts && !json_is_object(contexts)) {
		snprintf(err, errlen, "%s: contexts: must be an object", path);
		return -EINVAL;
	}
	if (cur && !json_is_string(cur)) {
		snprintf(err, errlen, "%s: current: must be a string", path);
		return -EINVAL;
	}
	json_object_foreach(contexts, name, ctx) {
		if (!json_is_object(ctx)) {
			snprintf(err, errlen, "%s: contexts.%s: must be an object",
				 path, name);
			return -EINVAL;
		}
		json_object_foreach(ctx, key, v) {
			if (strcmp(key, "connect") != 0 &&
			    strcmp(key, "cert") != 0 &&
			    strcmp(key, "key") != 0 && strcmp(key, "ca") != 0) {
				snprintf(err, errlen,
					 "%s: contexts.%s.%s: unknown key",
					 path, name, key);
				return -EINVAL;
			}
			if (!json_is_string(v) || !json_string_value(v)[0]) {
				snprintf(err, errlen,
					 "%s: contexts.%s.%s: must be a non-empty string",
					 path, name, key);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* A context's file name, made relative to the config's directory. */
static char *
config_file_path(const char *config_path, const char *file)
{
	const char *slash = strrchr(config_path, '/');
	char *s;

	if (file[0] == '/' || !slash)
		return strdup(file);
	if (asprintf(&s, "%.*s/%s", (int)(slash - config_path), config_path,
		     file) < 0)
		return NULL;
	return s;
}

static int
set_str(char **dst, const char *src)
{
	if (*dst || !src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int
set_file(char **dst, const char *config_path, json_t *ctx, const char *key)
{
	const char *v = json_string_value(json_object_get(ctx, key));

	if (*dst || !v)
		return 0;
	*dst = config_file_path(config_path, v);
	return *dst ? 0 : -ENOMEM;
}

int
config_resolve(const struct config_input *in, struct config_target *ret,
	       char *err, size_t errlen)
{
	struct config_target t = { 0 };
	json_t *root = NULL, *ctx = NULL;
	const char *ctx_name = in->context;
	bool ctx_explicit = ctx_name != NULL;
	int r;

	if (in->config_path) {
		r = config_load(in->config_path, &root, err, errlen);
		if (r == 0 && root)
			r = config_check(in->config_path, root, err, errlen);
		if (r < 0)
			goto out;
	}
	/*
	 * The current context applies only when nothing more explicit names
	 * the daemon: an environment variable beats a file.
	 */
	if (!ctx_name && !in->connect && !in->env_connect && root)
		ctx_name = json_string_value(json_object_get(root, "current"));
	if (ctx_name) {
		ctx = json_object_get(json_object_get(root, "contexts"),
				      ctx_name);
		if (!ctx) {
			if (!root)
				snprintf(err, errlen,
					 "context \"%s\": no config file%s%s",
					 ctx_name, in->config_path ? " at " : "",
					 in->config_path ? in->config_path : "");
			else
				snprintf(err, errlen,
					 "context \"%s\": not in %s%s", ctx_name,
					 in->config_path, ctx_explicit ? "" :
					 " (named by \"current\")");
			r = -ENOENT;
			goto out;
		}
		t.context = strdup(ctx_name);
		if (!t.context) {
			r = -ENOMEM;
			goto out;
		}
	}

	r = set_str(&t.uri, in->connect);
	if (r == 0 && ctx_explicit)
		r = set_str(&t.uri, json_string_value(json_object_get(ctx,
								     "connect")));
	if (r == 0)
		r = set_str(&t.uri, in->env_connect);
	if (r == 0 && ctx)
		r = set_str(&t.uri, json_string_value(json_object_get(ctx,
								     "connect")));
	if (r == 0)
		r = set_str(&t.uri, VMCTL_DEFAULT_URI);
	if (r == 0)
		r = set_str(&t.cert, in->cert);
	if (r == 0)
		r = set_str(&t.key, in->key);
	if (r == 0)
		r = set_str(&t.ca, in->ca);
	if (r == 0 && ctx) {
		r = set_file(&t.cert, in->config_path, ctx, "cert");
		if (r == 0)
			r = set_file(&t.key, in->config_path, ctx, "key");
		if (r == 0)
			r = set_file(&t.ca, in->config_path, ctx, "ca");
	}
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	*ret = t;
	memset(&t, 0, sizeof(t));
out:
	config_target_clear(&t);
	json_decref(root);
	return r;
}
