/* SPDX-License-Identifier: MIT */
/* The command table, the option parsers it names, and --help from it. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/cpulist.h"
#include "proto/frame.h"
#include "proto/size.h"
#include "proto/vmdef.h"
#include "vmctl/cmd.h"
#include "vmctl/output.h"
#include "vmctl/run.h"
#include "vmctl/vmctl.h"

/* The most options one command line may hold. */
#define CMD_ARGS_MAX 512

/* --- where values go ------------------------------------------------------ */

/*
 * The object that holds key's last component, created along the way:
 * "local.x" lives in call->local, anything else in call->params.
 * *ret_last points into key. NULL when a step exists and is not an object.
 */
static json_t *
call_parent(struct cmd_call *call, const char *key, char *last,
	    size_t lastlen)
{
	json_t *o = call->params, *child;
	const char *p = key, *dot;
	char part[64];

	if (strncmp(key, "local.", 6) == 0) {
		o = call->local;
		p = key + 6;
	}
	while ((dot = strchr(p, '.'))) {
		snprintf(part, sizeof(part), "%.*s", (int)(dot - p), p);
		child = json_object_get(o, part);
		if (!child) {
			child = json_object();
			if (!child || json_object_set_new(o, part, child) < 0)
				return NULL;
		}
		if (!json_is_object(child))
			return NULL;
		o = child;
		p = dot + 1;
	}
	snprintf(last, lastlen, "%s", p);
	return o;
}

/* Set key to v (stolen). 0 or -EINVAL (a step is not an object), -ENOMEM. */
static int
call_set(struct cmd_call *call, const char *key, json_t *v)
{
	char last[64];
	json_t *o;

	if (!v)
		return -ENOMEM;
	o = call_parent(call, key, last, sizeof(last));
	if (!o) {
		json_decref(v);
		return -EINVAL;
	}
	return json_object_set_new(o, last, v) < 0 ? -ENOMEM : 0;
}

/* The array at key, created empty when missing; NULL when it is not one. */
static json_t *
call_array(struct cmd_call *call, const char *key)
{
	char last[64];
	json_t *o, *a;

	o = call_parent(call, key, last, sizeof(last));
	if (!o)
		return NULL;
	a = json_object_get(o, last);
	if (!a) {
		a = json_array();
		if (!a || json_object_set_new(o, last, a) < 0)
			return NULL;
	}
	return json_is_array(a) ? a : NULL;
}

/* Set key to v (stolen), naming where it failed. */
static int
call_set_err(struct cmd_call *call, const char *key, json_t *v, char *err,
	     size_t errlen)
{
	int r = call_set(call, key, v);

	if (r == -EINVAL)
		snprintf(err, errlen, "cannot set %s: a part of it is not an object",
			 key);
	else if (r < 0)
		snprintf(err, errlen, "out of memory");
	return r;
}

/* --- value parsers -------------------------------------------------------- */

/* A decimal integer, digits only, from min to max. */
static int
parse_uint(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	uint64_t v = 0;
	const char *p;

	if (!*s)
		return -EINVAL;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v > (uint64_t)INT64_MAX || (int64_t)v < min || (int64_t)v > max)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

static int
uint_err(const char *value, int64_t min, int64_t max, char *err,
	 size_t errlen)
{
	snprintf(err, errlen, "\"%s\": must be an integer from %lld to %lld",
		 value, (long long)min, (long long)max);
	return -EINVAL;
}

/* A path made absolute against the working directory (not resolved). */
static char *
abs_path(const char *p)
{
	char cwd[PATH_MAX], *s;

	if (p[0] == '/')
		return strdup(p);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (strcmp(p, ".") == 0)
		return strdup(cwd);
	if (strncmp(p, "./", 2) == 0)
		p += 2;
	if (asprintf(&s, "%s/%s", cwd, p) < 0)
		return NULL;
	return s;
}

/* "none" unsets a resource (vm.set sends null). */
static bool
is_none(const char *value)
{
	return strcmp(value, "none") == 0;
}

/* A size for a rate or limit: "100M" or "1000" as an integer of bytes. */
static int
parse_bytes(const char *s, uint64_t *ret)
{
	int r = size_parse(s, ret);

	if (r == 0 && *ret > VMDEF_LIMIT_MAX)
		r = -ERANGE;
	return r;
}

/* --- create ---------------------------------------------------------------- */

static int
opt_file(struct cmd_call *call, const struct cmd_opt *opt, const char *value,
	 char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *def;
	FILE *f;
	long n;

	(void)opt;
	if (strcmp(value, "-") == 0) {
		def = json_loadf(stdin, PROTO_JSON_DECODE_FLAGS, &jerr);
	} else {
		f = fopen(value, "re");
		if (!f) {
			snprintf(err, errlen, "%s: %s", value, strerror(errno));
			return -EINVAL;
		}
		/* A definition must fit in one frame. */
		if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
		    (size_t)n > PROTO_FRAME_MAX_DEFAULT) {
			fclose(f);
			snprintf(err, errlen, "%s: larger than 1M", value);
			return -EINVAL;
		}
		rewind(f);
		def = json_loadf(f, PROTO_JSON_DECODE_FLAGS, &jerr);
		fclose(f);
	}
	if (!def) {
		snprintf(err, errlen, "%s:%d: %s",
			 strcmp(value, "-") ? value : "<stdin>", jerr.line,
			 jerr.text);
		return -EINVAL;
	}
	if (!json_is_object(def)) {
		json_decref(def);
		snprintf(err, errlen, "%s: a definition is a JSON object",
			 strcmp(value, "-") ? value : "<stdin>");
		return -EINVAL;
	}
	return call_set_err(call, "definition", def, err, errlen);
}

/* "PATH[,ro][,direct][,serial=S]" appended to definition.disks. */
static int
opt_disk(struct cmd_call *call, const struct cmd_opt *opt, const char *value,
	 char *err, size_t errlen)
{
	char *copy = strdup(value), *save = NULL, *item, *path;
	json_t *disks, *d = json_object();
	int r = -EINVAL;

	(void)opt;
	if (!copy || !d) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	item = strtok_r(copy, ",", &save);
	if (!item || value[0] == ',') {
		snprintf(err, errlen, "\"%s\": missing the path "
			 "(PATH[,ro][,direct][,serial=S])", value);
		goto out;
	}
	path = abs_path(item);
	if (!path || json_object_set_new(d, "path", json_string(path)) < 0) {
		free(path);
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	free(path);
	while ((item = strtok_r(NULL, ",", &save))) {
		if (strcmp(item, "ro") == 0 || strcmp(item, "readonly") == 0) {
			json_object_set_new(d, "readonly", json_true());
		} else if (strcmp(item, "direct") == 0) {
			json_object_set_new(d, "direct", json_true());
		} else if (strncmp(item, "serial=", 7) == 0) {
			json_object_set_new(d, "serial", json_string(item + 7));
		} else {
			snprintf(err, errlen, "\"%s\": unknown item \"%s\" "
				 "(PATH[,ro][,direct][,serial=S])", value, item);
			goto out;
		}
	}
	disks = call_array(call, "definition.disks");
	if (!disks) {
		snprintf(err, errlen, "the definition's disks is not an array");
		goto out;
	}
	r = json_array_append(disks, d) < 0 ? -ENOMEM : 0;
	if (r < 0)
		snprintf(err, errlen, "out of memory");
out:
	json_decref(d);
	free(copy);
	return r;
}

/* "tap=NAME[,mac=MAC]" (or "NAME[,mac=MAC]") appended to definition.nics. */
static int
opt_net(struct cmd_call *call, const struct cmd_opt *opt, const char *value,
	char *err, size_t errlen)
{
	char *copy = strdup(value), *save = NULL, *item;
	json_t *nics, *n = json_object();
	bool first = true;
	int r = -EINVAL;

	(void)opt;
	if (!copy || !n) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save), first = false) {
		if (strncmp(item, "tap=", 4) == 0) {
			json_object_set_new(n, "tap", json_string(item + 4));
		} else if (strncmp(item, "mac=", 4) == 0) {
			json_object_set_new(n, "mac", json_string(item + 4));
		} else if (first && !strchr(item, '=')) {
			json_object_set_new(n, "tap", json_string(item));
		} else {
			snprintf(err, errlen, "\"%s\": unknown item \"%s\" "
				 "(tap=NAME[,mac=MAC])", value, item);
			goto out;
		}
	}
	if (!json_object_get(n, "tap")) {
		snprintf(err, errlen, "\"%s\": missing tap=NAME", value);
		goto out;
	}
	nics = call_array(call, "definition.nics");
	if (!nics) {
		snprintf(err, errlen, "the definition's nics is not an array");
		goto out;
	}
	r = json_array_append(nics, n) < 0 ? -ENOMEM : 0;
	if (r < 0)
		snprintf(err, errlen, "out of memory");
out:
	json_decref(n);
	free(copy);
	return r;
}

static int
opt_restart(struct cmd_call *call, const struct cmd_opt *opt,
	    const char *value, char *err, size_t errlen)
{
	int p;

	for (p = 0; p < VMDEF_RESTART_MAX; p++)
		if (strcmp(value, vmdef_restart_policy_name(p)) == 0)
			return call_set_err(call, opt->key, json_string(value),
					    err, errlen);
	snprintf(err, errlen,
		 "\"%s\": must be never, on-failure or always", value);
	return -EINVAL;
}

static int
finish_create(struct cmd_call *call, char *err, size_t errlen)
{
	json_t *def = json_object_get(call->params, "definition");
	struct vmdef *vd = NULL;
	char why[512];
	int r;

	if (!def) {
		snprintf(err, errlen,
			 "create: give a definition: --file FILE, or --name and --kernel");
		return -EINVAL;
	}
	/* The daemon checks again, with the files; this catches typos early. */
	r = vmdef_from_json(def, 0, &vd, why, sizeof(why));
	if (r == -EINVAL) {
		snprintf(err, errlen, "create: invalid definition: %s", why);
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		return r;
	}
	vmdef_free(vd);
	return 0;
}

/* --- list, events ----------------------------------------------------------- */

static const char *const vm_states[] = {
	"defined", "stopped", "starting", "running", "paused", "stopping",
	"crashed", NULL,
};

static const char *const event_types[] = {
	"vm.created", "vm.deleted", "vm.updated", "vm.state", NULL,
};

static bool
in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static void
list_text(const char *const *list, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (; *list && off < len; list++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s",
					off ? ", " : "", *list);
}

static int
opt_state(struct cmd_call *call, const struct cmd_opt *opt,
	  const char *value, char *err, size_t errlen)
{
	char states[128];

	if (!in_list(value, vm_states)) {
		list_text(vm_states, states, sizeof(states));
		snprintf(err, errlen, "\"%s\": must be one of %s", value,
			 states);
		return -EINVAL;
	}
	return call_set_err(call, opt->key, json_string(value), err, errlen);
}

static int
append_string(struct cmd_call *call, const char *key, const char *value,
	      char *err, size_t errlen)
{
	json_t *a = call_array(call, key);

	if (!a || json_array_append_new(a, json_string(value)) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int
opt_event_name(struct cmd_call *call, const struct cmd_opt *opt,
	       const char *value, char *err, size_t errlen)
{
	if (!vmdef_name_valid(value)) {
		snprintf(err, errlen, "\"%s\" is not a valid VM name", value);
		return -EINVAL;
	}
	return append_string(call, opt->key, value, err, errlen);
}

static int
opt_event_type(struct cmd_call *call, const struct cmd_opt *opt,
	       const char *value, char *err, size_t errlen)
{
	char types[128];

	if (!in_list(value, event_types)) {
		list_text(event_types, types, sizeof(types));
		snprintf(err, errlen, "\"%s\": must be one of %s", value,
			 types);
		return -EINVAL;
	}
	return append_string(call, opt->key, value, err, errlen);
}

/* --- set -------------------------------------------------------------------- */

static int
opt_cpu_weight(struct cmd_call *call, const struct cmd_opt *opt,
	       const char *value, char *err, size_t errlen)
{
	int64_t v;

	if (is_none(value))
		return call_set_err(call, opt->key, json_null(), err, errlen);
	if (parse_uint(value, VMDEF_CPU_WEIGHT_MIN, VMDEF_CPU_WEIGHT_MAX, &v))
		return uint_err(value, VMDEF_CPU_WEIGHT_MIN,
				VMDEF_CPU_WEIGHT_MAX, err, errlen);
	return call_set_err(call, opt->key, json_integer(v), err, errlen);
}

static int
opt_cpu_quota(struct cmd_call *call, const struct cmd_opt *opt,
	      const char *value, char *err, size_t errlen)
{
	char *end;
	double v;

	if (is_none(value))
		return call_set_err(call, opt->key, json_null(), err, errlen);
	errno = 0;
	v = strtod(value, &end);
	/* Digits and a point only: no signs, exponents, hex, inf or nan. */
	if (!value[0] || *end || errno || !isfinite(v) || v <= 0 ||
	    v > VMDEF_VCPUS_MAX || strspn(value, "0123456789.") != strlen(value)) {
		snprintf(err, errlen,
			 "\"%s\": must be a number of CPUs above 0 (0.5 is half a CPU)",
			 value);
		return -EINVAL;
	}
	return call_set_err(call, opt->key, json_real(v), err, errlen);
}

/* One list per vCPU, separated by ':', or more --cpu-pin options. */
static int
opt_cpu_pin(struct cmd_call *call, const struct cmd_opt *opt,
	    const char *value, char *err, size_t errlen)
{
	char *copy, *item, *save = NULL;
	struct cpulist cl;
	json_t *pin, *a;
	char last[64];
	int r = 0;

	pin = call_parent(call, opt->key, last, sizeof(last));
	a = pin ? json_object_get(pin, last) : NULL;
	if (is_none(value)) {
		if (a) {
			snprintf(err, errlen, "\"none\" cannot be combined with CPU lists");
			return -EINVAL;
		}
		return call_set_err(call, opt->key, json_null(), err, errlen);
	}
	if (json_is_null(a)) {
		snprintf(err, errlen, "\"none\" cannot be combined with CPU lists");
		return -EINVAL;
	}
	if (!value[0] || value[0] == ':' || value[strlen(value) - 1] == ':' ||
	    strstr(value, "::")) {
		snprintf(err, errlen, "\"%s\": an empty CPU list", value);
		return -EINVAL;
	}
	copy = strdup(value);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (item = strtok_r(copy, ":", &save); item && r == 0;
	     item = strtok_r(NULL, ":", &save)) {
		r = cpulist_parse(item, &cl);
		if (r < 0) {
			snprintf(err, errlen, "\"%s\": %s", item, r == -ERANGE ?
				 "a CPU number must be below 1024" :
				 "not a CPU list (like 0-3,6)");
			r = -EINVAL;
			break;
		}
		r = append_string(call, opt->key, item, err, errlen);
	}
	free(copy);
	return r;
}

static int
opt_cpulist(struct cmd_call *call, const struct cmd_opt *opt,
	    const char *value, char *err, size_t errlen)
{
	struct cpulist cl;
	int r;

	if (is_none(value))
		return call_set_err(call, opt->key, json_null(), err, errlen);
	r = cpulist_parse(value, &cl);
	if (r < 0) {
		snprintf(err, errlen, "\"%s\": %s", value, r == -ERANGE ?
			 "a CPU number must be below 1024" :
			 "not a CPU list (like 0-3,6)");
		return -EINVAL;
	}
	return call_set_err(call, opt->key, json_string(value), err, errlen);
}

static int
opt_size_or_none(struct cmd_call *call, const struct cmd_opt *opt,
		 const char *value, char *err, size_t errlen)
{
	uint64_t v;

	if (is_none(value))
		return call_set_err(call, opt->key, json_null(), err, errlen);
	if (parse_bytes(value, &v) < 0) {
		snprintf(err, errlen, "\"%s\": not a size (like 512M or 2G)",
			 value);
		return -EINVAL;
	}
	return call_set_err(call, opt->key, json_string(value), err, errlen);
}

/* A rate limit key of --disk-limit or --net-limit and its JSON name. */
struct limit_key {
	const char *opt;	/* "bytes" */
	const char *json;	/* "bytes_per_sec" */
	bool size;		/* takes a size ("100M") rather than a count */
};

static const struct limit_key disk_limit_keys[] = {
	{ "bytes", "bytes_per_sec", true },
	{ "bytes-burst", "bytes_burst", true },
	{ "ops", "ops_per_sec", false },
	{ "ops-burst", "ops_burst", false },
	{ NULL, NULL, false },
};

static const struct limit_key net_limit_keys[] = {
	{ "rx-bytes", "rx_bytes_per_sec", true },
	{ "rx-bytes-burst", "rx_bytes_burst", true },
	{ "rx-packets", "rx_packets_per_sec", false },
	{ "rx-packets-burst", "rx_packets_burst", false },
	{ "tx-bytes", "tx_bytes_per_sec", true },
	{ "tx-bytes-burst", "tx_bytes_burst", true },
	{ "tx-packets", "tx_packets_per_sec", false },
	{ "tx-packets-burst", "tx_packets_burst", false },
	{ NULL, NULL, false },
};

/*
 * "INDEX:key=value,..." or "INDEX:none" into changes.<array>[INDEX].limits;
 * entries before INDEX are {} (left alone).
 */
static int
opt_limit(struct cmd_call *call, const char *array_key, unsigned int nmax,
	  const struct limit_key *keys, const char *value, char *err,
	  size_t errlen)
{
	const char *colon = strchr(value, ':');
	char idx_text[16], *copy = NULL, *item, *save = NULL, *eq;
	const struct limit_key *k;
	json_t *arr, *entry, *limits;
	int64_t idx;
	uint64_t v;
	int r = -EINVAL;

	if (!colon || colon == value || (size_t)(colon - value) >= sizeof(idx_text)) {
		snprintf(err, errlen, "\"%s\": must be INDEX:%s=N,...", value,
			 keys[0].opt);
		return -EINVAL;
	}
	snprintf(idx_text, sizeof(idx_text), "%.*s", (int)(colon - value),
		 value);
	if (parse_uint(idx_text, 0, nmax - 1, &idx) < 0) {
		snprintf(err, errlen, "\"%s\": the index must be from 0 to %u",
			 value, nmax - 1);
		return -EINVAL;
	}
	arr = call_array(call, array_key);
	if (!arr) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (json_array_size(arr) <= (size_t)idx)
		if (json_array_append_new(arr, json_object()) < 0) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	entry = json_array_get(arr, (size_t)idx);
	if (is_none(colon + 1))
		return json_object_set_new(entry, "limits", json_null()) < 0 ?
			-ENOMEM : 0;
	limits = json_object_get(entry, "limits");
	if (!json_is_object(limits)) {
		limits = json_object();
		if (!limits || json_object_set_new(entry, "limits", limits) < 0) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	copy = strdup(colon + 1);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!copy[0]) {
		snprintf(err, errlen, "\"%s\": nothing after the index", value);
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		for (k = keys; k->opt; k++)
			if (strcmp(item, k->opt) == 0)
				break;
		if (!k->opt) {
			snprintf(err, errlen, "\"%s\": unknown key \"%s\"",
				 value, item);
			goto out;
		}
		if (!eq) {
			snprintf(err, errlen, "\"%s\": %s needs a value", value,
				 item);
			goto out;
		}
		if (k->size ? parse_bytes(eq + 1, &v) < 0 :
		    parse_uint(eq + 1, 0, INT64_MAX, (int64_t *)&v) < 0) {
			snprintf(err, errlen, "\"%s\": %s: \"%s\" is not %s",
				 value, item, eq + 1, k->size ?
				 "a size (like 100M)" : "an integer");
			goto out;
		}
		if (json_object_set_new(limits, k->json,
					json_integer((json_int_t)v)) < 0) {
			r = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	r = 0;
out:
	free(copy);
	return r;
}

static int
opt_disk_limit(struct cmd_call *call, const struct cmd_opt *opt,
	       const char *value, char *err, size_t errlen)
{
	return opt_limit(call, opt->key, VMDEF_DISKS_MAX, disk_limit_keys,
			 value, err, errlen);
}

static int
opt_net_limit(struct cmd_call *call, const struct cmd_opt *opt,
	      const char *value, char *err, size_t errlen)
{
	return opt_limit(call, opt->key, VMDEF_NICS_MAX, net_limit_keys, value,
			 err, errlen);
}

static int
finish_set(struct cmd_call *call, char *err, size_t errlen)
{
	json_t *changes = json_object_get(call->params, "changes");

	if (!json_object_size(changes)) {
		snprintf(err, errlen, "set: nothing to change "
			 "(see vmctl set --help)");
		return -EINVAL;
	}
	return 0;
}

/* --- logs, help ------------------------------------------------------------ */

static int
finish_logs(struct cmd_call *call, char *err, size_t errlen)
{
	/* A reader: the history and nothing typed. */
	return call_set_err(call, "write", json_false(), err, errlen);
}

static int
finish_help(struct cmd_call *call, char *err, size_t errlen)
{
	const char *topic = json_string_value(json_object_get(call->local,
							      "topic"));

	if (topic && !cmd_find(topic)) {
		snprintf(err, errlen, "help: unknown command \"%s\"", topic);
		return -EINVAL;
	}
	return 0;
}

/* --- the tables ------------------------------------------------------------- */

static const struct cmd_opt create_opts[] = {
	{ "file", "FILE", CMD_OPT_FUNC, "definition", 0, 0, opt_file,
	  CMD_OPT_EARLY,
	  "the definition as JSON (- for stdin); other options change it" },
	{ "name", "NAME", CMD_OPT_STRING, "definition.name", 0, 0, NULL, 0,
	  "the VM's name" },
	{ "cpus", "N", CMD_OPT_UINT, "definition.vcpus", 1, VMDEF_VCPUS_MAX,
	  NULL, 0, "vCPUs (default 1)" },
	{ "memory", "SIZE", CMD_OPT_SIZE, "definition.memory", 0, 0, NULL, 0,
	  "guest memory, like 512M or 2G (default 512M)" },
	{ "kernel", "FILE", CMD_OPT_PATH, "definition.kernel", 0, 0, NULL, 0,
	  "the kernel to boot (bzImage or ELF vmlinux)" },
	{ "initrd", "FILE", CMD_OPT_PATH, "definition.initrd", 0, 0, NULL, 0,
	  "its initial ramdisk" },
	{ "cmdline", "TEXT", CMD_OPT_STRING, "definition.cmdline", 0, 0, NULL,
	  0, "the kernel command line" },
	{ "firmware", "FILE", CMD_OPT_PATH, "definition.firmware", 0, 0, NULL,
	  0, "a BIOS image to boot instead of a kernel" },
	{ "disk", "PATH[,ro][,direct][,serial=S]", CMD_OPT_FUNC, NULL, 0, 0,
	  opt_disk, CMD_OPT_REPEAT, "a disk (repeat for more)" },
	{ "net", "tap=NAME[,mac=MAC]", CMD_OPT_FUNC, NULL, 0, 0, opt_net,
	  CMD_OPT_REPEAT, "a NIC on an existing TAP interface (repeat for more)" },
	{ "console-history", "SIZE", CMD_OPT_SIZE, "definition.console.history",
	  0, 0, NULL, 0, "console output kept for replay (default 64K)" },
	{ "virtio-console", NULL, CMD_OPT_FLAG, "definition.virtio_console", 0,
	  0, NULL, 0, "add a virtio console (hvc0)" },
	{ "balloon", NULL, CMD_OPT_FLAG, "definition.balloon", 0, 0, NULL, 0,
	  "add a virtio balloon" },
	{ "vsock", "CID", CMD_OPT_UINT, "definition.vsock.cid",
	  VMDEF_VSOCK_CID_MIN, VMDEF_VSOCK_CID_MAX, NULL, 0,
	  "add a virtio vsock with this guest CID" },
	{ "autostart", NULL, CMD_OPT_FLAG, "definition.autostart", 0, 0, NULL,
	  0, "start it when the daemon starts" },
	{ "restart", "POLICY", CMD_OPT_FUNC, "definition.restart.policy", 0, 0,
	  opt_restart, 0, "when it exits on its own: never, on-failure, always" },
	{ "start", NULL, CMD_OPT_FLAG, "start", 0, 0, NULL, 0,
	  "start it once it is stored" },
	{ "replace", NULL, CMD_OPT_FLAG, "replace", 0, 0, NULL, 0,
	  "replace the definition of a stopped VM of that name" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt delete_opts[] = {
	{ "force", NULL, CMD_OPT_FLAG, "force", 0, 0, NULL, 0,
	  "kill the VM first if it is not stopped" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt stop_opts[] = {
	{ "force", NULL, CMD_OPT_FLAG, "force", 0, 0, NULL, 0,
	  "kill the VM if the guest has not powered off in time" },
	{ "timeout", "S", CMD_OPT_UINT, "timeout", 0, 3600, NULL, 0,
	  "seconds to wait for the guest (0 to 3600; default 30)" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt list_opts[] = {
	{ "state", "STATE", CMD_OPT_FUNC, "state", 0, 0, opt_state, 0,
	  "only VMs in this state (stopped, starting, running, paused, "
	  "stopping, failed)" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt set_opts[] = {
	{ "cpu-weight", "N", CMD_OPT_FUNC, "changes.resources.cpu_weight", 0,
	  0, opt_cpu_weight, 0, "CPU weight, 1 to 10000 (cgroup cpu.weight)" },
	{ "cpu-quota", "CPUS", CMD_OPT_FUNC, "changes.resources.cpu_quota", 0,
	  0, opt_cpu_quota, 0, "CPU time as a number of CPUs (0.5: half a CPU)" },
	{ "cpu-pin", "LIST[:LIST...]", CMD_OPT_FUNC,
	  "changes.resources.cpu_pin", 0, 0, opt_cpu_pin, CMD_OPT_REPEAT,
	  "host CPUs of each vCPU, one list per vCPU (0-1:2-3), or repeat" },
	{ "device-cpus", "LIST", CMD_OPT_FUNC, "changes.resources.device_cpus",
	  0, 0, opt_cpulist, 0, "host CPUs of the device threads" },
	{ "memory-limit", "SIZE", CMD_OPT_FUNC,
	  "changes.resources.memory_limit", 0, 0, opt_size_or_none, 0,
	  "memory limit of the VM process, at least its memory" },
	{ "disk-limit", "INDEX:KEY=N,...", CMD_OPT_FUNC, "changes.disks", 0, 0,
	  opt_disk_limit, CMD_OPT_REPEAT,
	  "rate limits of disk INDEX: bytes, bytes-burst, ops, ops-burst" },
	{ "net-limit", "INDEX:KEY=N,...", CMD_OPT_FUNC, "changes.nics", 0, 0,
	  opt_net_limit, CMD_OPT_REPEAT,
	  "rate limits of NIC INDEX: rx-bytes, rx-packets, tx-bytes, "
	  "tx-packets, each also with -burst" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt console_opts[] = {
	{ "read-only", NULL, CMD_OPT_FALSE, "write", 0, 0, NULL, 0,
	  "watch only; do not take the console's input" },
	{ "no-history", NULL, CMD_OPT_FALSE, "history", 0, 0, NULL, 0,
	  "do not replay the console history first" },
	{ "wait", "S", CMD_OPT_UINT, "local.wait", 0, 3600, NULL, 0,
	  "without a terminal: once the input ends, stop after S seconds "
	  "without output (default 1)" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt logs_opts[] = {
	{ "follow", NULL, CMD_OPT_FLAG, "local.follow", 0, 0, NULL, 0,
	  "after the history, go on printing what the console prints" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

static const struct cmd_opt events_opts[] = {
	{ "name", "NAME", CMD_OPT_FUNC, "names", 0, 0, opt_event_name,
	  CMD_OPT_REPEAT, "only events of this VM (repeat for more)" },
	{ "type", "TYPE", CMD_OPT_FUNC, "types", 0, 0, opt_event_type,
	  CMD_OPT_REPEAT, "only this type: vm.created, vm.deleted, vm.updated, "
	  "vm.state (repeat for more)" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

const struct cmd_opt cmd_global_opts[] = {
	{ "connect", "URI", CMD_OPT_STRING, "local.connect", 0, 0, NULL, 0,
	  "the daemon: unix:///path or tls://host:port (default: "
	  "$VMCTL_CONNECT, the config's current context, or "
	  VMCTL_DEFAULT_URI ")" },
	{ "context", "NAME", CMD_OPT_STRING, "local.context", 0, 0, NULL, 0,
	  "a context of ~/.config/vmctl/config.json" },
	{ "cert", "FILE", CMD_OPT_PATH, "local.cert", 0, 0, NULL, 0,
	  "TLS: the client certificate (PEM)" },
	{ "key", "FILE", CMD_OPT_PATH, "local.key", 0, 0, NULL, 0,
	  "TLS: its private key (PEM)" },
	{ "ca", "FILE", CMD_OPT_PATH, "local.ca", 0, 0, NULL, 0,
	  "TLS: the CA the daemon's certificate chains to (PEM)" },
	{ "json", NULL, CMD_OPT_FLAG, "local.json", 0, 0, NULL, 0,
	  "print results as JSON (sorted keys) for scripts" },
	{ "help", NULL, CMD_OPT_FLAG, "local.help", 0, 0, NULL, 0,
	  "show help" },
	{ NULL, NULL, 0, NULL, 0, 0, NULL, 0, NULL },
};

const struct cmd cmd_table[] = {
	{ "create", CMD_ARG_NONE, "define a VM, from a JSON file or options",
	  "vm.create", create_opts, finish_create, run_call, output_created,
	  "Either --file gives the whole definition (see proto/PROTOCOL.md), "
	  "or options build one; options given with --file change the "
	  "file's definition. Relative paths are made absolute. The "
	  "definition is checked here first; the daemon checks the files." },
	{ "delete", CMD_ARG_NAME, "forget a VM (its disk images are kept)",
	  "vm.delete", delete_opts, NULL, run_call, output_deleted, NULL },
	{ "start", CMD_ARG_NAME, "start a VM", "vm.start", NULL, NULL,
	  run_call, output_state, NULL },
	{ "stop", CMD_ARG_NAME,
	  "press a VM's power button and wait for it to power off",
	  "vm.stop", stop_opts, NULL, run_call, output_state,
	  "Without --force, a guest that ignores the button keeps running "
	  "and the command fails with a timeout." },
	{ "kill", CMD_ARG_NAME, "kill a VM at once, without asking the guest",
	  "vm.kill", NULL, NULL, run_call, output_state, NULL },
	{ "pause", CMD_ARG_NAME, "stop a VM's vCPUs", "vm.pause", NULL, NULL,
	  run_call, output_state, NULL },
	{ "resume", CMD_ARG_NAME, "let a paused VM run again", "vm.resume",
	  NULL, NULL, run_call, output_state, NULL },
	{ "restart", CMD_ARG_NAME, "stop a VM and start a new process for it",
	  "vm.restart", stop_opts, NULL, run_call, output_state, NULL },
	{ "list", CMD_ARG_NONE, "list the VMs", "vm.list", list_opts, NULL,
	  run_call, output_list, NULL },
	{ "info", CMD_ARG_NAME, "show a VM's state and definition", "vm.info",
	  NULL, NULL, run_call, output_info, NULL },
	{ "stats", CMD_ARG_NAME, "show a running VM's counters", "vm.stats",
	  NULL, NULL, run_call, output_stats, NULL },
	{ "set", CMD_ARG_NAME, "change resources and rate limits, also while "
	  "it runs", "vm.set", set_opts, finish_set, run_call, output_updated,
	  "\"none\" unsets a value (--cpu-weight none, --disk-limit 0:none); "
	  "a rate of 0 unsets that rate." },
	{ "console", CMD_ARG_NAME, "attach to a VM's console", "vm.console",
	  console_opts, NULL, run_console, NULL,
	  "On a terminal, Ctrl-] detaches. Without one, input is sent as it "
	  "comes and output printed; when the input ends, vmctl stops once "
	  "the output has been quiet for --wait seconds." },
	{ "logs", CMD_ARG_NAME, "print a VM's console history", "vm.console",
	  logs_opts, finish_logs, run_logs, NULL, NULL },
	{ "events", CMD_ARG_NONE, "print events as they happen, until "
	  "interrupted", "events.subscribe", events_opts, NULL, run_events,
	  NULL, "With --json, one JSON object a line." },
	{ "version", CMD_ARG_NONE, "show the client's and the daemon's "
	  "versions", "daemon.info", NULL, NULL, run_version, NULL, NULL },
	{ "help", CMD_ARG_TOPIC, "show the help of vmctl or of a command",
	  NULL, NULL, finish_help, run_help, NULL, NULL },
};

const size_t cmd_table_len = sizeof(cmd_table) / sizeof(cmd_table[0]);

const struct cmd *
cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < cmd_table_len; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

/* --- parsing ---------------------------------------------------------------- */

static const struct cmd_opt *
opt_find(const struct cmd_opt *opts, const char *name, size_t len)
{
	for (; opts && opts->name; opts++)
		if (strlen(opts->name) == len &&
		    strncmp(opts->name, name, len) == 0)
			return opts;
	return NULL;
}

/* Apply one option's value (NULL for a flag). */
static int
opt_apply(struct cmd_call *call, const struct cmd_opt *opt, const char *value,
	  char *err, size_t errlen)
{
	uint64_t size;
	int64_t v;
	char *p;
	int r;

	switch (opt->kind) {
	case CMD_OPT_FLAG:
		return call_set_err(call, opt->key, json_true(), err, errlen);
	case CMD_OPT_FALSE:
		return call_set_err(call, opt->key, json_false(), err, errlen);
	case CMD_OPT_STRING:
		if (!value[0]) {
			snprintf(err, errlen, "must not be empty");
			return -EINVAL;
		}
		return call_set_err(call, opt->key, json_string(value), err,
				    errlen);
	case CMD_OPT_PATH:
		if (!value[0]) {
			snprintf(err, errlen, "must not be empty");
			return -EINVAL;
		}
		p = abs_path(value);
		if (!p) {
			snprintf(err, errlen, "%s", strerror(errno ? errno : ENOMEM));
			return -ENOMEM;
		}
		r = call_set_err(call, opt->key, json_string(p), err, errlen);
		free(p);
		return r;
	case CMD_OPT_UINT:
		if (parse_uint(value, opt->min, opt->max, &v) < 0)
			return uint_err(value, opt->min, opt->max, err, errlen);
		return call_set_err(call, opt->key, json_integer(v), err,
				    errlen);
	case CMD_OPT_SIZE:
		if (size_parse(value, &size) < 0) {
			snprintf(err, errlen,
				 "\"%s\": not a size (like 512M or 2G)", value);
			return -EINVAL;
		}
		return call_set_err(call, opt->key, json_string(value), err,
				    errlen);
	case CMD_OPT_FUNC:
		return opt->parse(call, opt, value, err, errlen);
	default:
		snprintf(err, errlen, "bad option table");
		return -EINVAL;
	}
}

/* An option as given on the command line, applied after all are seen. */
struct opt_use {
	const struct cmd_opt *opt;
	const char *value;
};

/*
 * Match argv[*i] (an option) against the command's options, then the
 * global ones; take its value from "=value" or the next argument.
 */
static int
opt_take(const struct cmd *cmd, int argc, char *const argv[], int *i,
	 struct opt_use *use, char *err, size_t errlen)
{
	const char *arg = argv[*i], *name, *eq;
	const char *prefix = cmd ? cmd->name : "";
	const char *sep = cmd ? ": " : "";
	const struct cmd_opt *opt = NULL;
	size_t len;

	if (strcmp(arg, "-h") == 0)
		arg = "--help";
	if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
		snprintf(err, errlen, "%s%sunknown option %s", prefix, sep, arg);
		return -EINVAL;
	}
	name = arg + 2;
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	if (cmd)
		opt = opt_find(cmd->opts, name, len);
	if (!opt)
		opt = opt_find(cmd_global_opts, name, len);
	if (!opt) {
		snprintf(err, errlen, "%s%sunknown option --%.*s", prefix, sep,
			 (int)len, name);
		return -EINVAL;
	}
	use->opt = opt;
	if (!opt->metavar) {
		if (eq) {
			snprintf(err, errlen, "%s%s--%s takes no value", prefix,
				 sep, opt->name);
			return -EINVAL;
		}
		use->value = NULL;
		return 0;
	}
	if (eq) {
		use->value = eq + 1;
	} else if (*i + 1 < argc) {
		use->value = argv[++*i];
	} else {
		snprintf(err, errlen, "%s%s--%s needs a value (%s)", prefix, sep,
			 opt->name, opt->metavar);
		return -EINVAL;
	}
	return 0;
}

/* Apply the collected options: CMD_OPT_EARLY ones first. */
static int
opts_apply(struct cmd_call *call, const struct opt_use *uses, size_t n,
	   char *err, size_t errlen)
{
	const char *prefix = call->cmd ? call->cmd->name : "";
	const char *sep = call->cmd ? ": " : "";
	char why[512];
	size_t i, j;
	int pass, r;

	for (i = 0; i < n; i++) {
		if (uses[i].opt->flags & CMD_OPT_REPEAT)
			continue;
		for (j = 0; j < i; j++) {
			if (uses[j].opt == uses[i].opt) {
				snprintf(err, errlen,
					 "%s%s--%s given more than once",
					 prefix, sep, uses[i].opt->name);
				return -EINVAL;
			}
		}
	}
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			if (!!(uses[i].opt->flags & CMD_OPT_EARLY) != !pass)
				continue;
			why[0] = '\0';
			r = opt_apply(call, uses[i].opt, uses[i].value, why,
				      sizeof(why));
			if (r == -ENOMEM) {
				snprintf(err, errlen, "out of memory");
				return r;
			}
			if (r < 0) {
				snprintf(err, errlen, "%s%s--%s: %s", prefix, sep,
					 uses[i].opt->name, why);
				return r;
			}
		}
	}
	return 0;
}

void
cmd_call_clear(struct cmd_call *call)
{
	json_decref(call->params);
	json_decref(call->local);
	memset(call, 0, sizeof(*call));
}

int
cmd_parse(int argc, char *const argv[], struct cmd_call *ret, char *err,
	  size_t errlen)
{
	struct cmd_call call = { 0 };
	struct opt_use *uses = NULL;
	const char *arg = NULL;
	size_t nuses = 0;
	bool dashdash = false;
	int i, r = -EINVAL;

	call.params = json_object();
	call.local = json_object();
	uses = calloc(CMD_ARGS_MAX, sizeof(*uses));
	if (!call.params || !call.local || !uses) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto out;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (!dashdash && a[0] == '-' && a[1]) {
			if (nuses == CMD_ARGS_MAX) {
				snprintf(err, errlen, "too many options");
				goto out;
			}
			r = opt_take(call.cmd, argc, argv, &i, &uses[nuses],
				     err, errlen);
			if (r < 0)
				goto out;
			if (strcmp(uses[nuses].opt->name, "help") == 0) {
				/* Help needs nothing else to be right. */
				r = call_set_err(&call, "local.help",
						 json_true(), err, errlen);
				if (r < 0)
					goto out;
				goto done;
			}
			nuses++;
			r = -EINVAL;
			continue;
		}
		if (!call.cmd) {
			call.cmd = cmd_find(a);
			if (!call.cmd) {
				snprintf(err, errlen,
					 "unknown command \"%s\" (see vmctl --help)",
					 a);
				goto out;
			}
			/* Options before the command are global ones. */
			continue;
		}
		if (arg || call.cmd->arg == CMD_ARG_NONE) {
			snprintf(err, errlen, "%s: unexpected argument \"%s\"",
				 call.cmd->name, a);
			goto out;
		}
		arg = a;
	}
	if (!call.cmd) {
		snprintf(err, errlen, "missing command (see vmctl --help)");
		goto out;
	}
	if (call.cmd->arg == CMD_ARG_NAME) {
		if (!arg) {
			snprintf(err, errlen, "%s: missing argument NAME",
				 call.cmd->name);
			goto out;
		}
		if (!vmdef_name_valid(arg)) {
			snprintf(err, errlen,
				 "%s: \"%s\" is not a valid VM name (1 to %d of "
				 "A-Z a-z 0-9 . _ -, first a letter or digit)",
				 call.cmd->name, arg, VMDEF_NAME_MAX);
			goto out;
		}
		r = call_set_err(&call, "name", json_string(arg), err, errlen);
		if (r < 0)
			goto out;
		r = -EINVAL;
	} else if (call.cmd->arg == CMD_ARG_TOPIC && arg) {
		r = call_set_err(&call, "local.topic", json_string(arg), err,
				 errlen);
		if (r < 0)
			goto out;
	}
	r = opts_apply(&call, uses, nuses, err, errlen);
	if (r < 0)
		goto out;
	if (call.cmd->finish) {
		r = call.cmd->finish(&call, err, errlen);
		if (r < 0)
			goto out;
	}
done:
	*ret = call;
	memset(&call, 0, sizeof(call));
	r = 0;
out:
	free(uses);
	cmd_call_clear(&call);
	return r;
}

/* --- help ------------------------------------------------------------------- */

/*
 * Print text wrapped at 78 columns, every line after the first indented
 * by indent spaces (the first starts where the cursor is, at column col).
 */
static void
wrap(FILE *f, const char *text, size_t col, size_t indent)
{
	const char *p = text;
	size_t w;

	while (*p) {
		w = strcspn(p, " ");
		if (col > indent && col + 1 + w > 78) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = indent;
		} else if (p != text) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", (int)w, p);
		col += w;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static size_t
opt_label(const struct cmd_opt *o, char *buf, size_t len)
{
	int n;

	if (strcmp(o->name, "help") == 0)
		n = snprintf(buf, len, "-h, --help");
	else
		n = snprintf(buf, len, "--%s%s%s", o->name,
			     o->metavar ? " " : "", o->metavar ? o->metavar : "");
	return n < 0 ? 0 : (size_t)n;
}

static void
opts_help(FILE *f, const struct cmd_opt *opts)
{
	const struct cmd_opt *o;
	size_t w = 0, l;
	char label[128];

	for (o = opts; o && o->name; o++) {
		l = opt_label(o, label, sizeof(label));
		/* Long labels go on a line of their own. */
		if (l <= 28 && l > w)
			w = l;
	}
	for (o = opts; o && o->name; o++) {
		l = opt_label(o, label, sizeof(label));
		if (l > w) {
			fprintf(f, "  %s\n%*s", label, (int)w + 4, "");
		} else {
			fprintf(f, "  %-*s  ", (int)w, label);
		}
		wrap(f, o->help, w + 4, w + 4);
	}
}

int
cmd_usage(FILE *f, const struct cmd *cmd)
{
	const char *arg = "";
	char sentence[256];
	size_t i, w = 0;

	if (!cmd) {
		fprintf(f, "usage: vmctl [GLOBAL OPTIONS] COMMAND [ARGS]\n\n");
		fprintf(f, "Drives the VMs of a vmmd host. vmctl %s, protocol %d.\n\n",
			VMCTL_VERSION, VMCTL_PROTOCOL);
		fprintf(f, "Commands:\n");
		for (i = 0; i < cmd_table_len; i++)
			if (strlen(cmd_table[i].name) > w)
				w = strlen(cmd_table[i].name);
		for (i = 0; i < cmd_table_len; i++) {
			fprintf(f, "  %-*s  ", (int)w, cmd_table[i].name);
			wrap(f, cmd_table[i].summary, w + 4, w + 4);
		}
		fprintf(f, "\nGlobal options (before or after the command):\n");
		opts_help(f, cmd_global_opts);
		fprintf(f, "\n");
		wrap(f, "Exit status: 0 success, 1 an error from the daemon, "
		     "2 a usage error, 3 no connection to the daemon. "
		     "'vmctl COMMAND --help' describes a command.", 0, 0);
		return ferror(f) ? -EIO : 0;
	}
	if (cmd->arg == CMD_ARG_NAME)
		arg = " NAME";
	else if (cmd->arg == CMD_ARG_TOPIC)
		arg = " [COMMAND]";
	fprintf(f, "usage: vmctl %s%s%s\n\n", cmd->name, arg,
		cmd->opts ? " [OPTIONS]" : "");
	/* The summary as a sentence. */
	snprintf(sentence, sizeof(sentence), "%c%s.",
		 cmd->summary[0] >= 'a' && cmd->summary[0] <= 'z' ?
		 cmd->summary[0] - 'a' + 'A' : cmd->summary[0],
		 cmd->summary + 1);
	wrap(f, sentence, 0, 0);
	if (cmd->method)
		fprintf(f, "Sends %s.\n", cmd->method);
	if (cmd->details) {
		fputc('\n', f);
		wrap(f, cmd->details, 0, 0);
	}
	if (cmd->opts) {
		fprintf(f, "\nOptions:\n");
		opts_help(f, cmd->opts);
	}
	fprintf(f, "\nGlobal options: --connect URI, --context NAME, --cert FILE, "
		"--key FILE,\n--ca FILE, --json, -h/--help (see vmctl --help).\n");
	return ferror(f) ? -EIO : 0;
}
