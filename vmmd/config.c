/* SPDX-License-Identifier: MIT */
/* vmmd's configuration file (config.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/frame.h"
#include "proto/size.h"
#include "vmmd/config.h"

int
config_new(struct config **ret)
{
	struct config *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->state_dir = strdup(CONFIG_STATE_DIR_DEFAULT);
	c->runtime_dir = strdup(CONFIG_RUNTIME_DIR_DEFAULT);
	c->socket = strdup(CONFIG_SOCKET_DEFAULT);
	c->tls.address = strdup(CONFIG_TLS_ADDRESS_DEFAULT);
	c->tls.port = CONFIG_TLS_PORT_DEFAULT;
	c->max_vms = CONFIG_MAX_VMS_DEFAULT;
	c->max_clients = CONFIG_MAX_CLIENTS_DEFAULT;
	c->frame_max = CONFIG_FRAME_MAX_DEFAULT;
	c->requests_in_flight = CONFIG_INFLIGHT_DEFAULT;
	c->idle_timeout_sec = CONFIG_IDLE_TIMEOUT_DEFAULT;
	c->output_max = CONFIG_OUTPUT_MAX_DEFAULT;
	c->start_timeout_sec = CONFIG_START_TIMEOUT_DEFAULT;
	c->log_level = LOG_LEVEL_INFO;
	if (!c->state_dir || !c->runtime_dir || !c->socket ||
	    !c->tls.address) {
		config_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

void
config_free(struct config *c)
{
	if (!c)
		return;
	free(c->state_dir);
	free(c->runtime_dir);
	free(c->socket);
	free(c->socket_group);
	free(c->policy);
	free(c->tls.address);
	free(c->tls.cert);
	free(c->tls.key);
	free(c->tls.ca);
	free(c->vmm_run);
	free(c->cgroup_subtree);
	free(c);
}

/* How a key's value is checked and stored. */
enum config_kind {
	CONFIG_PATH,		/* absolute path */
	CONFIG_STRING,		/* non-empty string */
	CONFIG_UINT,		/* integer in [min, max] */
	CONFIG_SIZE,		/* size string or integer in [min, max] */
	CONFIG_LOG_LEVEL,
	CONFIG_OBJECT,		/* a nested table */
};

struct config_key {
	const char *name;
	enum config_kind kind;
	size_t offset;		/* into struct config */
	unsigned long long min, max;
	const struct config_key *sub;	/* CONFIG_OBJECT */
	bool nullable;		/* null unsets (back to the default) */
};

#define OFF(f) offsetof(struct config, f)

static const struct config_key config_tls_keys[] = {
	{ "address", CONFIG_STRING, OFF(tls.address), 0, 0, NULL, false },
	{ "port", CONFIG_UINT, OFF(tls.port), 1, 65535, NULL, false },
	{ "cert", CONFIG_PATH, OFF(tls.cert), 0, 0, NULL, false },
	{ "key", CONFIG_PATH, OFF(tls.key), 0, 0, NULL, true },
	{ "ca", CONFIG_PATH, OFF(tls.ca), 0, 0, NULL, false },
	{ "policy", CONFIG_PATH, OFF(policy), 0, 0, NULL, true },
	{ NULL, 0, 0, 0, 0, NULL, false },
};

static const struct config_key config_limits_keys[] = {
	{ "max_vms", CONFIG_UINT, OFF(max_vms), 1, 65536, NULL, false },
	{ "max_clients", CONFIG_UINT, OFF(max_clients), 1, 65536, NULL,
	  false },
	{ "frame_max", CONFIG_SIZE, OFF(frame_max), CONFIG_FRAME_MAX_MIN,
	  CONFIG_FRAME_MAX_MAX, NULL, false },
	{ "requests_in_flight", CONFIG_UINT, OFF(requests_in_flight), 1, 4096,
	  NULL, false },
	{ "idle_timeout_sec", CONFIG_UINT, OFF(idle_timeout_sec), 0, 86400,
	  NULL, false },
	{ "output_max", CONFIG_SIZE, OFF(output_max), 64u * 1024u,
	  1024ull * 1024 * 1024, NULL, false },
	{ "start_timeout_sec", CONFIG_UINT, OFF(start_timeout_sec), 1, 600,
	  NULL, false },
	{ NULL, 0, 0, 0, 0, NULL, false },
};

static const struct config_key config_keys[] = {
	{ "state_dir", CONFIG_PATH, OFF(state_dir), 0, 0, NULL, false },
	{ "runtime_dir", CONFIG_PATH, OFF(runtime_dir), 0, 0, NULL, false },
	{ "socket", CONFIG_PATH, OFF(socket), 0, 0, NULL, false },
	{ "socket_group", CONFIG_STRING, OFF(socket_group), 0, 0, NULL, true },
	{ "policy", CONFIG_PATH, OFF(policy), 0, 0, NULL, true },
	{ "tls", CONFIG_OBJECT, 0, 0, 0, config_tls_keys, true },
	{ "limits", CONFIG_OBJECT, 0, 0, 0, config_limits_keys, false },
	{ "log_level", CONFIG_LOG_LEVEL, OFF(log_level), 0, 0, NULL, false },
	{ "vmm_run", CONFIG_PATH, OFF(vmm_run), 0, 0, NULL, true },
	{ "cgroup_subtree", CONFIG_STRING, OFF(cgroup_subtree), 0, 0, NULL,
	  true },
	{ NULL, 0, 0, 0, 0, NULL, false },
};

#undef OFF

static int
config_set_string(struct config *c, const struct config_key *k,
		  const char *v)
{
	char **slot = (char **)((char *)c + k->offset);
	char *dup = v ? strdup(v) : NULL;

	if (v && !dup)
		return -ENOMEM;
	free(*slot);
	*slot = dup;
	return 0;
}

static int
config_parse_table(struct config *c, json_t *obj, const struct config_key
		   *keys, const char *prefix, char *err, size_t errlen)
{
	const char *name;
	json_t *v;

	json_object_foreach(obj, name, v) {
		const struct config_key *k;
		char full[128];
		int r;

		snprintf(full, sizeof(full), "%s%s", prefix, name);
		for (k = keys; k->name; k++)
			if (strcmp(k->name, name) == 0)
				break;
		if (!k->name) {
			snprintf(err, errlen, "%s: unknown key", full);
			return -EINVAL;
		}
		if (json_is_null(v)) {
			if (!k->nullable) {
				snprintf(err, errlen, "%s: cannot be null",
					 full);
				return -EINVAL;
			}
			if (k->kind == CONFIG_OBJECT)
				continue;	/* "tls": null is no TLS */
			r = config_set_string(c, k, NULL);
			if (r < 0)
				return r;
			continue;
		}
		switch (k->kind) {
		case CONFIG_PATH:
		case CONFIG_STRING: {
			const char *s = json_string_value(v);

			if (!json_is_string(v) || !*s) {
				snprintf(err, errlen, "%s: must be a non-empty "
					 "string", full);
				return -EINVAL;
			}
			if (k->kind == CONFIG_PATH &&
			    (s[0] != '/' || strlen(s) >= PATH_MAX)) {
				snprintf(err, errlen, "%s: must be an absolute "
					 "path", full);
				return -EINVAL;
			}
			r = config_set_string(c, k, s);
			if (r < 0)
				return r;
			break;
		}
		case CONFIG_UINT: {
			json_int_t n = json_integer_value(v);

			if (!json_is_integer(v) || n < 0 ||
			    (unsigned long long)n < k->min ||
			    (unsigned long long)n > k->max) {
				snprintf(err, errlen, "%s: must be an integer "
					 "%llu..%llu", full, k->min, k->max);
				return -EINVAL;
			}
			*(unsigned int *)((char *)c + k->offset) =
				(unsigned int)n;
			break;
		}
		case CONFIG_SIZE: {
			uint64_t n = 0;
			bool ok;

			if (json_is_integer(v))
				ok = json_integer_value(v) >= 0 &&
				     (n = (uint64_t)json_integer_value(v), 1);
			else
				ok = json_is_string(v) &&
				     size_parse(json_string_value(v), &n) == 0;
			if (!ok || n < k->min || n > k->max) {
				char lo[SIZE_STR_MAX], hi[SIZE_STR_MAX];

				size_format(k->min, lo, sizeof(lo));
				size_format(k->max, hi, sizeof(hi));
				snprintf(err, errlen, "%s: must be a size %s..%s",
					 full, lo, hi);
				return -EINVAL;
			}
			*(size_t *)((char *)c + k->offset) = (size_t)n;
			break;
		}
		case CONFIG_LOG_LEVEL:
			if (!json_is_string(v) ||
			    log_level_parse(json_string_value(v),
					    (enum log_level *)((char *)c +
							       k->offset)) < 0) {
				snprintf(err, errlen, "%s: must be one of "
					 "\"error\", \"warn\", \"info\", "
					 "\"debug\"", full);
				return -EINVAL;
			}
			break;
		case CONFIG_OBJECT: {
			char sub[sizeof(full) + 1];

			if (!json_is_object(v)) {
				snprintf(err, errlen, "%s: must be an object",
					 full);
				return -EINVAL;
			}
			if (k->sub == config_tls_keys)
				c->tls.enabled = true;
			snprintf(sub, sizeof(sub), "%s.", full);
			r = config_parse_table(c, v, k->sub, sub, err, errlen);
			if (r < 0)
				return r;
			break;
		}
		}
	}
	return 0;
}

int
config_from_json(json_t *j, struct config **ret, char *err, size_t errlen)
{
	struct config *c;
	json_t *tls;
	int r;

	if (!json_is_object(j)) {
		snprintf(err, errlen, "the configuration must be a JSON "
			 "object");
		return -EINVAL;
	}
	r = config_new(&c);
	if (r < 0)
		return r;
	tls = json_object_get(j, "tls");
	/* "tls.policy" and "policy" are one setting: say which wins. */
	if (json_is_object(tls) && json_object_get(tls, "policy") &&
	    !json_is_null(json_object_get(tls, "policy")) &&
	    json_object_get(j, "policy") &&
	    !json_is_null(json_object_get(j, "policy"))) {
		snprintf(err, errlen, "tls.policy: set either policy or "
			 "tls.policy, not both");
		r = -EINVAL;
		goto fail;
	}
	r = config_parse_table(c, j, config_keys, "", err, errlen);
	if (r < 0)
		goto fail;
	if (c->tls.enabled) {
		static const char *const need[] = { "cert", "ca" };
		unsigned int i;

		for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
			if (!json_object_get(tls, need[i])) {
				snprintf(err, errlen, "tls.%s: required with "
					 "tls", need[i]);
				r = -EINVAL;
				goto fail;
			}
		if (!c->policy) {
			snprintf(err, errlen, "tls.policy: required with tls "
				 "(certificate identities map to roles "
				 "through it)");
			r = -EINVAL;
			goto fail;
		}
	}
	*ret = c;
	return 0;
fail:
	config_free(c);
	return r;
}

int
config_load(const char *path, struct config **ret, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j;
	char why[256];
	int r;

	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		if (json_error_code(&je) == json_error_cannot_open_file)
			snprintf(err, errlen, "%s: %s", path, je.text);
		else
			snprintf(err, errlen, "%s: line %d: %s", path,
				 je.line, je.text);
		return -EINVAL;
	}
	r = config_from_json(j, ret, why, sizeof(why));
	json_decref(j);
	if (r == -EINVAL)
		snprintf(err, errlen, "%s: %s", path, why);
	return r;
}

static int
config_executable(const char *path)
{
	return access(path, X_OK) == 0 ? 0 : -ENOENT;
}

int
config_find_vmm_run(const struct config *c, const char *self_exe, char *buf,
		    size_t len)
{
	const char *pathenv;
	int n;

	if (c->vmm_run) {
		if (strlen(c->vmm_run) >= len)
			return -ENAMETOOLONG;
		strcpy(buf, c->vmm_run);
		return config_executable(buf);
	}
	if (self_exe && *self_exe) {
		const char *slash = strrchr(self_exe, '/');

		if (slash) {
			n = snprintf(buf, len, "%.*s/vmm-run",
				     (int)(slash - self_exe), self_exe);
			if (n > 0 && (size_t)n < len &&
			    config_executable(buf) == 0)
				return 0;
		}
	}
	pathenv = getenv("PATH");
	if (!pathenv)
		pathenv = "/usr/local/bin:/usr/bin:/bin";
	while (*pathenv) {
		const char *end = strchrnul(pathenv, ':');

		if (end > pathenv) {
			n = snprintf(buf, len, "%.*s/vmm-run",
				     (int)(end - pathenv), pathenv);
			if (n > 0 && (size_t)n < len && buf[0] == '/' &&
			    config_executable(buf) == 0)
				return 0;
		}
		pathenv = *end ? end + 1 : end;
	}
	return -ENOENT;
}
