/* SPDX-License-Identifier: MIT */
/* Results as tables and lines for people, or as JSON for scripts. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmctl/output.h"
#include "vmctl/vmctl.h"

/* --- small helpers ------------------------------------------------------ */

static int
output_status(FILE *f)
{
	return ferror(f) ? -EIO : 0;
}

/* Replace control characters so a string from the daemon cannot drive the terminal. */
static void
output_scrub(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			*s = '?';
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static bool
jint(json_t *o, const char *key, json_int_t *ret)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return false;
	*ret = json_integer_value(v);
	return true;
}

/*
 * A scalar as text ("yes"/"no" for booleans, "-" for null or missing);
 * objects and arrays as compact JSON. Returns a new malloc'd string or
 * NULL when out of memory.
 */
static char *
jtext(json_t *v)
{
	char *s = NULL;

	if (!v)
		return strdup("-");
	switch (json_typeof(v)) {
	case JSON_STRING:
		s = strdup(json_string_value(v));
		break;
	case JSON_INTEGER:
		if (asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0)
			s = NULL;
		break;
	case JSON_REAL:
		if (asprintf(&s, "%g", json_real_value(v)) < 0)
			s = NULL;
		break;
	case JSON_TRUE:
		s = strdup("yes");
		break;
	case JSON_FALSE:
		s = strdup("no");
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		break;
	default:
		s = strdup("-");
		break;
	}
	return s;
}

/*
 * Aligned "key: value" lines: collected first, so the value column lines
 * up on the longest key.
 */
struct kv_block {
	char **keys;
	char **vals;
	size_t n, cap;
	bool nomem;
};

static void
kv_add_owned(struct kv_block *b, const char *key, char *val)
{
	char **k, **v;

	if (!val) {
		b->nomem = true;
		return;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;

		k = realloc(b->keys, cap * sizeof(*k));
		if (k)
			b->keys = k;
		v = realloc(b->vals, cap * sizeof(*v));
		if (v)
			b->vals = v;
		if (!k || !v) {
			free(val);
			b->nomem = true;
			return;
		}
		b->cap = cap;
	}
	b->keys[b->n] = strdup(key);
	if (!b->keys[b->n]) {
		free(val);
		b->nomem = true;
		return;
	}
	output_scrub(val);
	b->vals[b->n++] = val;
}

static void kv_add(struct kv_block *b, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
kv_add(struct kv_block *b, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	kv_add_owned(b, key, s);
}

/* Add key with the text of v, when v is present. */
static void
kv_add_json(struct kv_block *b, const char *key, json_t *v)
{
	if (v)
		kv_add_owned(b, key, jtext(v));
}

/* Print and empty the block; indent goes before every line. */
static int
kv_print(FILE *f, struct kv_block *b, const char *indent)
{
	size_t i, w = 0, l;

	for (i = 0; i < b->n; i++) {
		l = strlen(b->keys[i]);
		if (l > w)
			w = l;
	}
	for (i = 0; i < b->n; i++) {
		fprintf(f, "%s%s:%*s%s\n", indent, b->keys[i],
			(int)(w - strlen(b->keys[i]) + 1), "", b->vals[i]);
		free(b->keys[i]);
		free(b->vals[i]);
	}
	free(b->keys);
	free(b->vals);
	b->keys = b->vals = NULL;
	b->n = b->cap = 0;
	if (b->nomem) {
		b->nomem = false;
		return -ENOMEM;
	}
	return output_status(f);
}

static bool
key_in(const char *key, const char *const *known)
{
	for (; *known; known++)
		if (strcmp(key, *known) == 0)
			return true;
	return false;
}

/*
 * An object this client does not know, on one line: "a=1 b=x" (sorted)
 * when its members are scalars, counters that are 0 left out when all of
 * them are integers ("exits by reason"); compact JSON otherwise. New
 * malloc'd string or NULL.
 */
static char *
object_text(json_t *o)
{
	const char *keys[64], *key;
	bool counters = true;
	size_t n = 0, i, j;
	char *s, *t, *u;
	json_t *v;

	json_object_foreach(o, key, v) {
		if (json_is_object(v) || json_is_array(v) || n == 64)
			return json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
		if (!json_is_integer(v))
			counters = false;
		keys[n++] = key;
	}
	for (i = 1; i < n; i++) {
		key = keys[i];
		for (j = i; j > 0 && strcmp(keys[j - 1], key) > 0; j--)
			keys[j] = keys[j - 1];
		keys[j] = key;
	}
	s = strdup("");
	for (i = 0; s && i < n; i++) {
		v = json_object_get(o, keys[i]);
		if (counters && json_integer_value(v) == 0)
			continue;
		t = jtext(v);
		if (!t || asprintf(&u, "%s%s%s=%s", s, s[0] ? " " : "",
				   keys[i], t) < 0)
			u = NULL;
		free(t);
		free(s);
		s = u;
	}
	if (s && !s[0] && n) {
		free(s);
		s = strdup("all 0");
	}
	return s;
}

/* Members of o not in known, as "key: value" lines (forward compatibility). */
static void
kv_add_unknown(struct kv_block *b, json_t *o, const char *prefix,
	       const char *const *known)
{
	const char **keys;
	const char *key;
	json_t *v;
	size_t n = 0, i;
	char name[128];

	if (!json_is_object(o) || !json_object_size(o))
		return;
	keys = calloc(json_object_size(o), sizeof(*keys));
	if (!keys) {
		b->nomem = true;
		return;
	}
	json_object_foreach(o, key, v)
		if (!key_in(key, known))
			keys[n++] = key;
	/* jansson keeps insertion order; people expect a stable order. */
	for (i = 1; i < n; i++) {
		const char *k = keys[i];
		size_t j = i;

		for (; j > 0 && strcmp(keys[j - 1], k) > 0; j--)
			keys[j] = keys[j - 1];
		keys[j] = k;
	}
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%s", prefix, keys[i]);
		v = json_object_get(o, keys[i]);
		if (json_is_object(v))
			kv_add_owned(b, name, object_text(v));
		else
			kv_add_json(b, name, v);
	}
	free(keys);
}

void
output_duration(uint64_t sec, char *buf, size_t len)
{
	if (sec < 60)
		snprintf(buf, len, "%" PRIu64 "s", sec);
	else if (sec < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", sec / 60,
			 sec % 60);
	else if (sec < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", sec / 3600,
			 sec % 3600 / 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", sec / 86400,
			 sec % 86400 / 3600);
}

void
output_human_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64, bytes);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	/* Rounding up to 1024.0 reads badly: move to the next unit. */
	if (v >= 1023.95 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", v, units[u]);
}

/* "1234567" usec as "1.234567s". */
static void
usec_text(json_int_t usec, char *buf, size_t len)
{
	if (usec < 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT "us", usec);
	else
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT ".%06" JSON_INTEGER_FORMAT "s",
			 usec / 1000000, usec % 1000000);
}

/* "2147483648 (2.0G)", or just the number below 1K; "-" when missing. */
static void
bytes_text(json_t *o, const char *key, char *buf, size_t len)
{
	char h[32];
	json_int_t v;

	if (!jint(o, key, &v)) {
		snprintf(buf, len, "-");
		return;
	}
	if (v < 1024) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, v);
		return;
	}
	output_human_bytes((uint64_t)v, h, sizeof(h));
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT " (%s)", v, h);
}

static void
int_text(json_t *o, const char *key, char *buf, size_t len)
{
	json_int_t v;

	if (jint(o, key, &v))
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, v);
	else
		snprintf(buf, len, "-");
}

/* --- JSON ----------------------------------------------------------------- */

int
output_json(FILE *f, json_t *v)
{
	if (json_dumpf(v, f, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
		return -EIO;
	fputc('\n', f);
	return output_status(f);
}

int
output_json_line(FILE *f, json_t *v)
{
	if (json_dumpf(v, f, JSON_COMPACT | JSON_SORT_KEYS) < 0)
		return -EIO;
	fputc('\n', f);
	return output_status(f);
}

/* --- vm.list -------------------------------------------------------------- */

#define LIST_COLS 6

int
output_list(FILE *f, json_t *result)
{
	static const char *const head[LIST_COLS] = {
		"NAME", "STATE", "VCPUS", "MEMORY", "PID", "UPTIME",
	};
	json_t *vms = json_object_get(result, "vms"), *vm;
	size_t n = json_array_size(vms), i, c, w[LIST_COLS];
	char *(*cells)[LIST_COLS];
	json_int_t up;
	char buf[32];
	int r = 0;

	cells = calloc(n ? n : 1, sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	for (c = 0; c < LIST_COLS; c++)
		w[c] = strlen(head[c]);
	json_array_foreach(vms, i, vm) {
		cells[i][0] = jtext(json_object_get(vm, "name"));
		cells[i][1] = jtext(json_object_get(vm, "state"));
		cells[i][2] = jtext(json_object_get(vm, "vcpus"));
		cells[i][3] = jtext(json_object_get(vm, "memory"));
		cells[i][4] = jtext(json_object_get(vm, "pid"));
		if (jint(vm, "uptime_sec", &up) && up >= 0)
			output_duration((uint64_t)up, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "-");
		cells[i][5] = strdup(buf);
		for (c = 0; c < LIST_COLS; c++) {
			if (!cells[i][c]) {
				r = -ENOMEM;
				goto out;
			}
			output_scrub(cells[i][c]);
			if (strlen(cells[i][c]) > w[c])
				w[c] = strlen(cells[i][c]);
		}
	}
	for (c = 0; c < LIST_COLS; c++)
		fprintf(f, c + 1 < LIST_COLS ? "%-*s  " : "%-*s\n",
			c + 1 < LIST_COLS ? (int)w[c] : 0, head[c]);
	for (i = 0; i < n; i++)
		for (c = 0; c < LIST_COLS; c++)
			fprintf(f, c + 1 < LIST_COLS ? "%-*s  " : "%-*s\n",
				c + 1 < LIST_COLS ? (int)w[c] : 0, cells[i][c]);
	r = output_status(f);
out:
	for (i = 0; i < n; i++)
		for (c = 0; c < LIST_COLS; c++)
			free(cells[i][c]);
	free(cells);
	return r;
}

/* --- vm.info -------------------------------------------------------------- */

/* " key=value" for every member of a limits object, sorted. */
static void
limits_text(json_t *limits, char *buf, size_t len)
{
	const char *keys[32], *key;
	size_t n = 0, i, j, off;
	json_t *v;
	char *t;

	buf[0] = '\0';
	if (!json_is_object(limits))
		return;
	json_object_foreach(limits, key, v)
		if (n < 32)
			keys[n++] = key;
	for (i = 1; i < n; i++) {
		key = keys[i];
		for (j = i; j > 0 && strcmp(keys[j - 1], key) > 0; j--)
			keys[j] = keys[j - 1];
		keys[j] = key;
	}
	for (i = 0; i < n; i++) {
		t = jtext(json_object_get(limits, keys[i]));
		off = strlen(buf);
		snprintf(buf + off, len - off, " %s=%s", keys[i], t ? t : "?");
		free(t);
	}
}

static void
info_disk(struct kv_block *b, size_t i, json_t *d)
{
	static const char *const known[] = {
		"path", "readonly", "direct", "serial", "limits", NULL,
	};
	char key[32], lim[1024], extra[1024] = "";
	const char *path = jstr(d, "path"), *serial = jstr(d, "serial");
	json_t *v;
	const char *k;
	size_t off;
	char *t;

	json_object_foreach(d, k, v) {
		if (key_in(k, known))
			continue;
		t = jtext(v);
		off = strlen(extra);
		snprintf(extra + off, sizeof(extra) - off, " %s=%s", k,
			 t ? t : "?");
		free(t);
	}
	limits_text(json_object_get(d, "limits"), lim, sizeof(lim));
	snprintf(key, sizeof(key), "disk %zu", i);
	kv_add(b, key, "%s%s%s%s%s%s%s", path ? path : "-",
	       json_is_true(json_object_get(d, "readonly")) ? " ro" : "",
	       json_is_true(json_object_get(d, "direct")) ? " direct" : "",
	       serial ? " serial=" : "", serial ? serial : "", lim, extra);
}

static void
info_nic(struct kv_block *b, size_t i, json_t *nic)
{
	const char *tap = jstr(nic, "tap"), *mac = jstr(nic, "mac");
	char key[32], lim[1024];

	limits_text(json_object_get(nic, "limits"), lim, sizeof(lim));
	snprintf(key, sizeof(key), "nic %zu", i);
	kv_add(b, key, "tap=%s%s%s%s", tap ? tap : "-", mac ? " mac=" : "",
	       mac ? mac : "", lim);
}

static void
info_resources(struct kv_block *b, json_t *res)
{
	static const char *const known[] = {
		"cpu_weight", "cpu_quota", "cpu_pin", "device_cpus",
		"memory_limit", NULL,
	};
	json_t *pin = json_object_get(res, "cpu_pin"), *p;
	char buf[2048] = "";
	size_t i, off;

	kv_add_json(b, "cpu weight", json_object_get(res, "cpu_weight"));
	kv_add_json(b, "cpu quota", json_object_get(res, "cpu_quota"));
	if (json_is_array(pin)) {
		/* One list per vCPU, in vCPU order. */
		json_array_foreach(pin, i, p) {
			off = strlen(buf);
			snprintf(buf + off, sizeof(buf) - off, "%s%zu:%s",
				 i ? " " : "", i,
				 json_is_string(p) ? json_string_value(p) : "?");
		}
		kv_add(b, "cpu pin", "%s", buf);
	} else {
		kv_add_json(b, "cpu pin", pin);
	}
	kv_add_json(b, "device cpus", json_object_get(res, "device_cpus"));
	kv_add_json(b, "memory limit", json_object_get(res, "memory_limit"));
	kv_add_unknown(b, res, "resources.", known);
}

static void
info_definition(struct kv_block *b, json_t *def)
{
	static const char *const known[] = {
		"name", "vcpus", "memory", "kernel", "initrd", "cmdline",
		"firmware", "disks", "nics", "console", "virtio_console",
		"vsock", "balloon", "resources", "autostart", "restart", NULL,
	};
	json_t *disks = json_object_get(def, "disks");
	json_t *nics = json_object_get(def, "nics"), *v;
	json_t *restart = json_object_get(def, "restart");
	json_t *vsock = json_object_get(def, "vsock");
	json_t *console = json_object_get(def, "console");
	json_int_t mr, ws;
	const char *policy;
	size_t i;

	kv_add_json(b, "vcpus", json_object_get(def, "vcpus"));
	kv_add_json(b, "memory", json_object_get(def, "memory"));
	kv_add_json(b, "kernel", json_object_get(def, "kernel"));
	kv_add_json(b, "initrd", json_object_get(def, "initrd"));
	kv_add_json(b, "cmdline", json_object_get(def, "cmdline"));
	kv_add_json(b, "firmware", json_object_get(def, "firmware"));
	json_array_foreach(disks, i, v)
		info_disk(b, i, v);
	json_array_foreach(nics, i, v)
		info_nic(b, i, v);
	kv_add_json(b, "console history", json_object_get(console, "history"));
	kv_add_json(b, "virtio console", json_object_get(def, "virtio_console"));
	if (json_is_object(vsock))
		kv_add_owned(b, "vsock cid", jtext(json_object_get(vsock, "cid")));
	kv_add_json(b, "balloon", json_object_get(def, "balloon"));
	info_resources(b, json_object_get(def, "resources"));
	kv_add_json(b, "autostart", json_object_get(def, "autostart"));
	policy = jstr(restart, "policy");
	if (policy && jint(restart, "max_restarts", &mr) &&
	    jint(restart, "window_sec", &ws) && strcmp(policy, "never") != 0)
		kv_add(b, "restart", "%s, at most %" JSON_INTEGER_FORMAT
		       " in %" JSON_INTEGER_FORMAT "s", policy, mr, ws);
	else if (policy)
		kv_add(b, "restart", "%s", policy);
	kv_add_unknown(b, def, "", known);
}

int
output_info(FILE *f, json_t *result)
{
	static const char *const known[] = {
		"name", "state", "definition", "pid", "started_at",
		"uptime_sec", "restarts", "last_exit", "runtime", NULL,
	};
	struct kv_block b = { 0 };
	json_t *le = json_object_get(result, "last_exit");
	json_t *rt = json_object_get(result, "runtime");
	json_int_t up, st;
	const char *reason, *at;
	char buf[64], how[64] = "";
	json_t *sig;

	kv_add_json(&b, "name", json_object_get(result, "name"));
	kv_add_json(&b, "state", json_object_get(result, "state"));
	kv_add_json(&b, "pid", json_object_get(result, "pid"));
	kv_add_json(&b, "started", json_object_get(result, "started_at"));
	if (jint(result, "uptime_sec", &up) && up >= 0) {
		output_duration((uint64_t)up, buf, sizeof(buf));
		kv_add(&b, "uptime", "%s", buf);
	}
	kv_add_json(&b, "restarts", json_object_get(result, "restarts"));
	if (json_is_object(le)) {
		reason = jstr(le, "reason");
		at = jstr(le, "at");
		sig = json_object_get(le, "signal");
		if (json_is_integer(sig))
			snprintf(how, sizeof(how), ", signal %" JSON_INTEGER_FORMAT,
				 json_integer_value(sig));
		else if (json_is_string(sig))
			snprintf(how, sizeof(how), ", signal %s",
				 json_string_value(sig));
		else if (jint(le, "status", &st))
			snprintf(how, sizeof(how), ", status %" JSON_INTEGER_FORMAT,
				 st);
		kv_add(&b, "last exit", "%s at %s%s", reason ? reason : "exited",
		       at ? at : "-", how);
	}
	info_definition(&b, json_object_get(result, "definition"));
	if (json_is_object(rt)) {
		kv_add_json(&b, "vsock socket", json_object_get(rt, "vsock_uds"));
		kv_add_unknown(&b, rt, "runtime.",
			       (const char *const[]){ "vsock_uds", NULL });
	}
	kv_add_unknown(&b, result, "", known);
	return kv_print(f, &b, "");
}

/* --- vm.stats ------------------------------------------------------------- */

static void
stats_usec(struct kv_block *b, json_t *o, const char *label, const char *key)
{
	json_int_t v;
	char buf[48];

	if (!jint(o, key, &v))
		return;
	usec_text(v, buf, sizeof(buf));
	kv_add(b, label, "%s", buf);
}

/* "1536 bytes (1.5K), 3 ops": bytes, then a count, then drops. */
static void
stats_pair(struct kv_block *b, json_t *o, const char *label,
	   const char *bytes_key, const char *count_key, const char *unit,
	   const char *dropped_key)
{
	char bb[64], hb[40] = "", cb[32], db[32];
	json_int_t v;

	if (!json_object_get(o, bytes_key) && !json_object_get(o, count_key))
		return;
	int_text(o, bytes_key, bb, sizeof(bb));
	if (jint(o, bytes_key, &v) && v >= 1024) {
		output_human_bytes((uint64_t)v, cb, sizeof(cb));
		snprintf(hb, sizeof(hb), " (%s)", cb);
	}
	int_text(o, count_key, cb, sizeof(cb));
	if (dropped_key) {
		int_text(o, dropped_key, db, sizeof(db));
		kv_add(b, label, "%s bytes%s, %s %s, %s dropped", bb, hb, cb,
		       unit, db);
	} else {
		kv_add(b, label, "%s bytes%s, %s %s", bb, hb, cb, unit);
	}
}

static int
stats_section_end(FILE *f, struct kv_block *b)
{
	return kv_print(f, b, "  ");
}

int
output_stats(FILE *f, json_t *result)
{
	static const char *const known[] = {
		"name", "uptime_sec", "cpu", "memory", "disks", "nics", NULL,
	};
	static const char *const cpu_known[] = {
		"usage_usec", "user_usec", "system_usec", "throttled_usec", NULL,
	};
	static const char *const mem_known[] = { "current", "limit", NULL };
	static const char *const disk_known[] = {
		"index", "path", "read_bytes", "write_bytes", "read_ops",
		"write_ops", "flush_ops", "throttled_usec", NULL,
	};
	static const char *const nic_known[] = {
		"index", "tap", "rx_bytes", "tx_bytes", "rx_packets",
		"tx_packets", "rx_dropped", "tx_dropped", NULL,
	};
	struct kv_block b = { 0 };
	json_t *cpu = json_object_get(result, "cpu");
	json_t *mem = json_object_get(result, "memory"), *v, *m;
	json_t *disks = json_object_get(result, "disks");
	json_t *nics = json_object_get(result, "nics");
	const char *key, *s;
	json_int_t up, idx;
	char buf[64];
	size_t i, j;
	int r;

	kv_add_json(&b, "name", json_object_get(result, "name"));
	if (jint(result, "uptime_sec", &up) && up >= 0) {
		output_duration((uint64_t)up, buf, sizeof(buf));
		kv_add(&b, "uptime", "%s", buf);
	}
	/* Scalars this client does not know go in the header. */
	json_object_foreach(result, key, v)
		if (!key_in(key, known) && !json_is_object(v) &&
		    !json_is_array(v))
			kv_add_json(&b, key, v);
	if ((r = kv_print(f, &b, "")) < 0)
		return r;

	if (json_is_object(cpu)) {
		fprintf(f, "\ncpu:\n");
		stats_usec(&b, cpu, "usage", "usage_usec");
		stats_usec(&b, cpu, "user", "user_usec");
		stats_usec(&b, cpu, "system", "system_usec");
		stats_usec(&b, cpu, "throttled", "throttled_usec");
		kv_add_unknown(&b, cpu, "", cpu_known);
		if ((r = stats_section_end(f, &b)) < 0)
			return r;
	}
	if (json_is_object(mem)) {
		fprintf(f, "\nmemory:\n");
		bytes_text(mem, "current", buf, sizeof(buf));
		kv_add(&b, "current", "%s", buf);
		if (json_object_get(mem, "limit")) {
			bytes_text(mem, "limit", buf, sizeof(buf));
			kv_add(&b, "limit", "%s", buf);
		}
		kv_add_unknown(&b, mem, "", mem_known);
		if ((r = stats_section_end(f, &b)) < 0)
			return r;
	}
	json_array_foreach(disks, i, v) {
		s = jstr(v, "path");
		if (!jint(v, "index", &idx))
			idx = (json_int_t)i;
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, idx);
		fprintf(f, "\ndisk %s:", buf);
		if (s) {
			char *p = strdup(s);

			if (p) {
				output_scrub(p);
				fprintf(f, " %s", p);
				free(p);
			}
		}
		fputc('\n', f);
		stats_pair(&b, v, "read", "read_bytes", "read_ops", "ops", NULL);
		stats_pair(&b, v, "write", "write_bytes", "write_ops", "ops",
			   NULL);
		if (json_object_get(v, "flush_ops")) {
			int_text(v, "flush_ops", buf, sizeof(buf));
			kv_add(&b, "flush", "%s ops", buf);
		}
		stats_usec(&b, v, "throttled", "throttled_usec");
		kv_add_unknown(&b, v, "", disk_known);
		if ((r = stats_section_end(f, &b)) < 0)
			return r;
	}
	json_array_foreach(nics, i, v) {
		s = jstr(v, "tap");
		if (!jint(v, "index", &idx))
			idx = (json_int_t)i;
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, idx);
		fprintf(f, "\nnic %s:", buf);
		if (s) {
			char *p = strdup(s);

			if (p) {
				output_scrub(p);
				fprintf(f, " %s", p);
				free(p);
			}
		}
		fputc('\n', f);
		stats_pair(&b, v, "rx", "rx_bytes", "rx_packets", "packets",
			   "rx_dropped");
		stats_pair(&b, v, "tx", "tx_bytes", "tx_packets", "packets",
			   "tx_dropped");
		kv_add_unknown(&b, v, "", nic_known);
		if ((r = stats_section_end(f, &b)) < 0)
			return r;
	}
	/* Sections this client does not know: objects, arrays of objects. */
	json_object_foreach(result, key, v) {
		if (key_in(key, known))
			continue;
		if (json_is_object(v)) {
			fprintf(f, "\n%s:\n", key);
			kv_add_unknown(&b, v, "", (const char *const[]){ NULL });
			if ((r = stats_section_end(f, &b)) < 0)
				return r;
		} else if (json_is_array(v)) {
			json_array_foreach(v, j, m) {
				fprintf(f, "\n%s %zu:\n", key, j);
				if (json_is_object(m))
					kv_add_unknown(&b, m, "",
						       (const char *const[]){ NULL });
				else
					kv_add_json(&b, "value", m);
				if ((r = stats_section_end(f, &b)) < 0)
					return r;
			}
		}
	}
	return output_status(f);
}

/* --- one-line results ----------------------------------------------------- */

static int
print_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
print_line(FILE *f, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	output_scrub(s);
	fprintf(f, "%s\n", s);
	free(s);
	return output_status(f);
}

static const char *
name_of(json_t *result)
{
	const char *s = jstr(result, "name");

	return s ? s : "-";
}

/* "running (pid 42)", "stopped (forced)", "paused". */
static void
state_text(json_t *result, char *buf, size_t len)
{
	const char *state = jstr(result, "state");
	json_int_t pid;

	if (jint(result, "pid", &pid))
		snprintf(buf, len, "%s (pid %" JSON_INTEGER_FORMAT ")",
			 state ? state : "-", pid);
	else if (json_is_true(json_object_get(result, "forced")))
		snprintf(buf, len, "%s (forced)", state ? state : "-");
	else
		snprintf(buf, len, "%s", state ? state : "-");
}

int
output_created(FILE *f, json_t *result)
{
	char st[96];

	state_text(result, st, sizeof(st));
	return print_line(f, "%s: created, %s", name_of(result), st);
}

int
output_deleted(FILE *f, json_t *result)
{
	return print_line(f, "%s: deleted", name_of(result));
}

int
output_state(FILE *f, json_t *result)
{
	char st[96];

	state_text(result, st, sizeof(st));
	return print_line(f, "%s: %s", name_of(result), st);
}

int
output_updated(FILE *f, json_t *result)
{
	return print_line(f, "%s: updated, %s", name_of(result),
			  json_is_true(json_object_get(result, "applied")) ?
			  "applied to the running VM" :
			  "takes effect at the next start");
}

int
output_event(FILE *f, json_t *params, int json)
{
	const char *time = jstr(params, "time"), *type = jstr(params, "type");
	const char *name = jstr(params, "name");
	const char *state = jstr(params, "state");
	const char *prev = jstr(params, "previous");
	const char *reason = jstr(params, "reason");
	char detail[512] = "";

	if (json)
		return output_json_line(f, params);
	if (state)
		snprintf(detail, sizeof(detail), " %s -> %s%s%s%s",
			 prev ? prev : "-", state, reason ? " (" : "",
			 reason ? reason : "", reason ? ")" : "");
	return print_line(f, "%s %s %s%s", time ? time : "-",
			  type ? type : "-", name ? name : "-", detail);
}

int
output_version(FILE *f, json_t *info)
{
	struct kv_block b = { 0 };
	json_t *host = json_object_get(info, "host");
	json_t *vms = json_object_get(info, "vms");
	json_t *id = json_object_get(info, "identity");
	const char *ver = jstr(info, "version"), *hn = jstr(info, "hostname");
	const char *tenant = jstr(id, "tenant");
	json_int_t proto, cpus, mem, def, run, fmax;
	char buf[32];

	kv_add(&b, "client", "vmctl %s (protocol %d)", VMCTL_VERSION,
	       VMCTL_PROTOCOL);
	if (info) {
		if (!jint(info, "protocol", &proto))
			proto = -1;
		kv_add(&b, "daemon", "vmmd %s (protocol %" JSON_INTEGER_FORMAT
		       ")%s%s", ver ? ver : "-", proto, hn ? " on " : "",
		       hn ? hn : "");
		if (jint(host, "cpus", &cpus) && jint(host, "memory", &mem)) {
			output_human_bytes(mem >= 0 ? (uint64_t)mem : 0, buf,
					   sizeof(buf));
			kv_add(&b, "host", "%" JSON_INTEGER_FORMAT
			       " cpus, %s memory", cpus, buf);
		}
		if (jint(vms, "defined", &def) && jint(vms, "running", &run))
			kv_add(&b, "vms", "%" JSON_INTEGER_FORMAT " defined, %"
			       JSON_INTEGER_FORMAT " running", def, run);
		if (json_is_object(id))
			kv_add(&b, "identity", "%s, role %s%s%s",
			       jstr(id, "name") ? jstr(id, "name") : "-",
			       jstr(id, "role") ? jstr(id, "role") : "-",
			       tenant ? ", tenant " : "", tenant ? tenant : "");
		if (jint(info, "frame_max", &fmax))
			kv_add(&b, "frame max", "%" JSON_INTEGER_FORMAT, fmax);
	}
	return kv_print(f, &b, "");
}
