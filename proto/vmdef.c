/* SPDX-License-Identifier: MIT */
/*
 * The VM definition: JSON to struct vmdef with every field checked, and
 * back. Fields are read in schema order, whatever order the JSON has, so
 * the first error reported for a given input never changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "size.h"
#include "util.h"
#include "vmdef.h"

/* Room for "nics[7].limits.rx_packets_burst" and a key a peer chose. */
#define VMDEF_PATH_LEN 96

struct vmdef_ctx {
	char *err;
	size_t errlen;
	bool update;		/* vmdef_update(): only changeable fields */
};

static int
vmdef_fail(struct vmdef_ctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
vmdef_fail(struct vmdef_ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!c->err || c->errlen == 0)
		return -EINVAL;
	n = snprintf(c->err, c->errlen, "%s: ", path);
	if (n >= 0 && (size_t)n < c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	proto_text_scrub(c->err);
	return -EINVAL;
}

/* Append s to buf (VMDEF_PATH_LEN bytes) at *off, truncating. */
static void
vmdef_path_add(char *buf, size_t *off, const char *s)
{
	size_t n = strlen(s);

	if (n > VMDEF_PATH_LEN - 1 - *off)
		n = VMDEF_PATH_LEN - 1 - *off;
	memcpy(buf + *off, s, n);
	*off += n;
	buf[*off] = '\0';
}

/* "prefix.key", or "key" at the top level; truncated to VMDEF_PATH_LEN. */
static void
vmdef_path(char *buf, const char *prefix, const char *key)
{
	size_t off = 0;

	buf[0] = '\0';
	if (prefix && *prefix) {
		vmdef_path_add(buf, &off, prefix);
		vmdef_path_add(buf, &off, ".");
	}
	vmdef_path_add(buf, &off, key);
}

static bool
vmdef_in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/*
 * Every key of obj must be in known. In an update, keys not in changeable
 * (NULL: all are) exist but cannot be changed.
 */
static int
vmdef_check_keys(struct vmdef_ctx *c, json_t *obj, const char *prefix,
		 const char *const *known, const char *const *changeable)
{
	char path[VMDEF_PATH_LEN];
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		vmdef_path(path, prefix, key);
		if (!vmdef_in_list(key, known))
			return vmdef_fail(c, path, "unknown field");
		if (c->update && changeable && !vmdef_in_list(key, changeable))
			return vmdef_fail(c, path,
					  "cannot be changed on a running VM");
	}
	return 0;
}

/* --- typed fields; each leaves *out alone when the key is absent --- */

static int
vmdef_get_bool(struct vmdef_ctx *c, json_t *obj, const char *prefix,
	       const char *key, bool dflt, bool *out)
{
	char path[VMDEF_PATH_LEN];
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	if (!json_is_boolean(v)) {
		vmdef_path(path, prefix, key);
		return vmdef_fail(c, path, "must be true or false");
	}
	*out = json_is_true(v);
	return 0;
}

static int
vmdef_get_uint(struct vmdef_ctx *c, json_t *obj, const char *prefix,
	       const char *key, uint64_t min, uint64_t max, uint64_t dflt,
	       uint64_t *out)
{
	char path[VMDEF_PATH_LEN];
	json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!v)
		return 0;
	if (json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	vmdef_path(path, prefix, key);
	if (!json_is_integer(v))
		return vmdef_fail(c, path, "must be an integer");
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return vmdef_fail(c, path, "must be between %llu and %llu",
				  (unsigned long long)min,
				  (unsigned long long)max);
	*out = (uint64_t)i;
	return 0;
}

/* A size: a non-negative integer of bytes or a size string. */
static int
vmdef_size_value(struct vmdef_ctx *c, json_t *v, const char *path,
		 uint64_t *out)
{
	int r;

	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		r = size_parse(json_string_value(v), out);
		if (r == -ERANGE)
			return vmdef_fail(c, path, "too large");
		if (r == 0)
			return 0;
	}
	return vmdef_fail(c, path,
			  "must be a size like \"512M\" or a number of bytes");
}

static int
vmdef_get_size(struct vmdef_ctx *c, json_t *obj, const char *prefix,
	       const char *key, uint64_t dflt, uint64_t *out)
{
	char path[VMDEF_PATH_LEN];
	json_t *v = json_object_get(obj, key);

	if (!v)
		return 0;
	if (json_is_null(v)) {
		*out = dflt;
		return 0;
	}
	vmdef_path(path, prefix, key);
	return vmdef_size_value(c, v, path, out);
}

/*
 * A string of at most max bytes without NUL. *ret_v is the value, or NULL
 * when the key is absent or null (*ret_null tells which).
 */
static int
vmdef_get_str(struct vmdef_ctx *c, json_t *obj, const char *prefix,
	      const char *key, size_t max, const char **ret_v,
	      bool *ret_null)
{
	char path[VMDEF_PATH_LEN];
	json_t *v = json_object_get(obj, key);
	size_t len;

	*ret_v = NULL;
	*ret_null = v && json_is_null(v);
	if (!v || json_is_null(v))
		return 0;
	vmdef_path(path, prefix, key);
	if (!json_is_string(v))
		return vmdef_fail(c, path, "must be a string");
	len = json_string_length(v);
	if (strlen(json_string_value(v)) != len)
		return vmdef_fail(c, path, "must not contain NUL");
	if (len > max)
		return vmdef_fail(c, path, "must be at most %zu bytes", max);
	*ret_v = json_string_value(v);
	return 0;
}

/* Replace *out with a copy of s (NULL frees it). */
static int
vmdef_set_str(char **out, const char *s)
{
	char *copy = NULL;

	if (s) {
		copy = strdup(s);
		if (!copy)
			return -ENOMEM;
	}
	free(*out);
	*out = copy;
	return 0;
}

static int
vmdef_get_path(struct vmdef_ctx *c, json_t *obj, const char *prefix,
	       const char *key, char **out)
{
	char path[VMDEF_PATH_LEN];
	const char *s;
	bool null;
	int r;

	r = vmdef_get_str(c, obj, prefix, key, VMDEF_PATH_MAX, &s, &null);
	if (r < 0)
		return r;
	if (!s)
		return null ? vmdef_set_str(out, NULL) : 0;
	vmdef_path(path, prefix, key);
	if (!*s)
		return vmdef_fail(c, path, "must not be empty");
	if (*s != '/')
		return vmdef_fail(c, path, "must be an absolute path");
	return vmdef_set_str(out, s);
}

/* --- names, addresses --- */

static bool
vmdef_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
	       ch == '-';
}

bool
vmdef_name_valid(const char *name)
{
	size_t i;

	if (!name || !*name || name[0] == '.' || name[0] == '_' ||
	    name[0] == '-')
		return false;
	for (i = 0; name[i]; i++)
		if (i >= VMDEF_NAME_MAX || !vmdef_name_char(name[i]))
			return false;
	return true;
}

static int
vmdef_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
vmdef_mac_parse(const char *s, uint8_t ret_mac[6])
{
	uint8_t mac[6];
	int i, hi, lo;

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		hi = vmdef_hex(s[i * 3]);
		lo = vmdef_hex(s[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret_mac, mac, sizeof(mac));
	return 0;
}

void
vmdef_mac_format(const uint8_t mac[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
}

static const char *const vmdef_policy_names[VMDEF_RESTART_MAX] = {
	[VMDEF_RESTART_NEVER] = "never",
	[VMDEF_RESTART_ON_FAILURE] = "on-failure",
	[VMDEF_RESTART_ALWAYS] = "always",
};

const char *
vmdef_restart_policy_name(enum vmdef_restart_policy p)
{
	if ((unsigned int)p >= VMDEF_RESTART_MAX)
		return NULL;
	return vmdef_policy_names[p];
}

/* A network interface name as the kernel accepts it (dev_valid_name()). */
static bool
vmdef_tap_valid(const char *s)
{
	size_t i;

	if (!*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (i = 0; s[i]; i++) {
		if (i >= VMDEF_TAP_MAX || s[i] <= ' ' || s[i] > '~' ||
		    s[i] == '/' || s[i] == ':')
			return false;
	}
	return true;
}

/* --- rate limits --- */

struct vmdef_limit_field {
	const char *name;
	size_t offset;		/* of a uint64_t in the limits struct */
	bool bytes;		/* also takes a size string */
};

#define DISK_LIMIT(n, f, b) { n, offsetof(struct vmdef_disk_limits, f), b }
#define NIC_LIMIT(n, f, b) { n, offsetof(struct vmdef_nic_limits, f), b }

/* Pairs: the rate, then its burst. */
static const struct vmdef_limit_field vmdef_disk_limit_fields[] = {
	DISK_LIMIT("bytes_per_sec", bytes.rate, true),
	DISK_LIMIT("bytes_burst", bytes.burst, true),
	DISK_LIMIT("ops_per_sec", ops.rate, false),
	DISK_LIMIT("ops_burst", ops.burst, false),
};

static const struct vmdef_limit_field vmdef_nic_limit_fields[] = {
	NIC_LIMIT("rx_bytes_per_sec", rx_bytes.rate, true),
	NIC_LIMIT("rx_bytes_burst", rx_bytes.burst, true),
	NIC_LIMIT("rx_packets_per_sec", rx_packets.rate, false),
	NIC_LIMIT("rx_packets_burst", rx_packets.burst, false),
	NIC_LIMIT("tx_bytes_per_sec", tx_bytes.rate, true),
	NIC_LIMIT("tx_bytes_burst", tx_bytes.burst, true),
	NIC_LIMIT("tx_packets_per_sec", tx_packets.rate, false),
	NIC_LIMIT("tx_packets_burst", tx_packets.burst, false),
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const vmdef_disk_limit_keys[] = {
	"bytes_per_sec", "bytes_burst", "ops_per_sec", "ops_burst", NULL,
};

static const char *const vmdef_nic_limit_keys[] = {
	"rx_bytes_per_sec", "rx_bytes_burst", "rx_packets_per_sec",
	"rx_packets_burst", "tx_bytes_per_sec", "tx_bytes_burst",
	"tx_packets_per_sec", "tx_packets_burst", NULL,
};

static uint64_t *
vmdef_limit_slot(void *limits, const struct vmdef_limit_field *f)
{
	return (uint64_t *)((char *)limits + f->offset);
}

/*
 * "limits" of a disk or NIC into *limits, which holds the current values:
 * each member given replaces one, 0 or null unsets it; null for the whole
 * object unsets them all.
 */
static int
vmdef_parse_limits(struct vmdef_ctx *c, json_t *v, const char *prefix,
		   const struct vmdef_limit_field *fields, size_t nfields,
		   const char *const *keys, void *limits, size_t limits_size)
{
	char path[VMDEF_PATH_LEN];
	uint64_t val;
	json_t *m;
	size_t i;
	int r;

	if (json_is_null(v)) {
		memset(limits, 0, limits_size);
		return 0;
	}
	if (!json_is_object(v))
		return vmdef_fail(c, prefix, "must be an object");
	r = vmdef_check_keys(c, v, prefix, keys, NULL);
	if (r < 0)
		return r;
	for (i = 0; i < nfields; i++) {
		m = json_object_get(v, fields[i].name);
		if (!m)
			continue;
		vmdef_path(path, prefix, fields[i].name);
		val = 0;
		if (json_is_null(m)) {
			val = 0;
		} else if (fields[i].bytes) {
			r = vmdef_size_value(c, m, path, &val);
			if (r < 0)
				return r;
		} else if (!json_is_integer(m) || json_integer_value(m) < 0) {
			return vmdef_fail(c, path,
					  "must be a non-negative integer");
		} else {
			val = (uint64_t)json_integer_value(m);
		}
		if (val > VMDEF_LIMIT_MAX)
			return vmdef_fail(c, path, "must be at most %llu",
					  (unsigned long long)VMDEF_LIMIT_MAX);
		*vmdef_limit_slot(limits, &fields[i]) = val;
	}
	return 0;
}

static uint64_t
vmdef_limit_value(const void *limits, const struct vmdef_limit_field *f)
{
	return *(const uint64_t *)((const char *)limits + f->offset);
}

/* A burst needs its rate. */
static int
vmdef_check_limits(struct vmdef_ctx *c, const char *prefix,
		   const struct vmdef_limit_field *fields, size_t nfields,
		   const void *limits)
{
	char path[VMDEF_PATH_LEN];
	size_t i;

	for (i = 0; i + 1 < nfields; i += 2) {
		if (vmdef_limit_value(limits, &fields[i + 1]) &&
		    !vmdef_limit_value(limits, &fields[i])) {
			vmdef_path(path, prefix, fields[i + 1].name);
			return vmdef_fail(c, path, "requires %s",
					  fields[i].name);
		}
	}
	return 0;
}

static json_t *
vmdef_limits_to_json(const struct vmdef_limit_field *fields, size_t nfields,
		     const void *limits, bool *ok)
{
	json_t *o = json_object();
	uint64_t v;
	size_t i;

	if (!o) {
		*ok = false;
		return NULL;
	}
	for (i = 0; i < nfields; i++) {
		v = vmdef_limit_value(limits, &fields[i]);
		if (v && json_object_set_new(o, fields[i].name,
					     json_integer((json_int_t)v)) < 0)
			*ok = false;
	}
	return o;
}

/* --- disks and NICs --- */

static const char *const vmdef_disk_keys[] = {
	"path", "readonly", "serial", "direct", "limits", NULL,
};
static const char *const vmdef_nic_keys[] = {
	"tap", "mac", "limits", NULL,
};
static const char *const vmdef_limits_only[] = { "limits", NULL };

static int
vmdef_parse_disk(struct vmdef_ctx *c, json_t *v, unsigned int idx,
		 struct vmdef_disk *d)
{
	char prefix[VMDEF_PATH_LEN], path[VMDEF_PATH_LEN];
	const char *s;
	json_t *lim;
	bool null;
	size_t i;
	int r;

	snprintf(prefix, sizeof(prefix), "disks[%u]", idx);
	if (!json_is_object(v))
		return vmdef_fail(c, prefix, "must be an object");
	r = vmdef_check_keys(c, v, prefix, vmdef_disk_keys, vmdef_limits_only);
	if (r < 0)
		return r;
	if (!c->update) {
		r = vmdef_get_path(c, v, prefix, "path", &d->path);
		if (r < 0)
			return r;
		if (!d->path) {
			vmdef_path(path, prefix, "path");
			return vmdef_fail(c, path, "required");
		}
		r = vmdef_get_bool(c, v, prefix, "readonly", false,
				   &d->readonly);
		if (r < 0)
			return r;
		r = vmdef_get_str(c, v, prefix, "serial", SIZE_MAX, &s, &null);
		if (r < 0)
			return r;
		if (s) {
			for (i = 0; s[i]; i++)
				if (s[i] < ' ' || s[i] > '~')
					break;
			if (s[i] || i > VMDEF_SERIAL_MAX) {
				vmdef_path(path, prefix, "serial");
				return vmdef_fail(c, path,
						  "must be at most %d printable ASCII characters",
						  VMDEF_SERIAL_MAX);
			}
			memcpy(d->serial, s, i + 1);
		}
		r = vmdef_get_bool(c, v, prefix, "direct", false, &d->direct);
		if (r < 0)
			return r;
	}
	lim = json_object_get(v, "limits");
	if (lim) {
		vmdef_path(path, prefix, "limits");
		r = vmdef_parse_limits(c, lim, path, vmdef_disk_limit_fields,
				       ARRAY_LEN(vmdef_disk_limit_fields),
				       vmdef_disk_limit_keys, &d->limits,
				       sizeof(d->limits));
		if (r < 0)
			return r;
	}
	return 0;
}

static int
vmdef_parse_nic(struct vmdef_ctx *c, json_t *v, unsigned int idx,
		struct vmdef_nic *n)
{
	char prefix[VMDEF_PATH_LEN], path[VMDEF_PATH_LEN];
	const char *s;
	json_t *lim;
	bool null;
	int r;

	snprintf(prefix, sizeof(prefix), "nics[%u]", idx);
	if (!json_is_object(v))
		return vmdef_fail(c, prefix, "must be an object");
	r = vmdef_check_keys(c, v, prefix, vmdef_nic_keys, vmdef_limits_only);
	if (r < 0)
		return r;
	if (!c->update) {
		vmdef_path(path, prefix, "tap");
		r = vmdef_get_str(c, v, prefix, "tap", SIZE_MAX, &s, &null);
		if (r < 0)
			return r;
		if (!s)
			return vmdef_fail(c, path, "required");
		if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
			return vmdef_fail(c, path,
					  "must not be \".\" or \"..\"");
		if (!vmdef_tap_valid(s))
			return vmdef_fail(c, path,
					  "must be 1 to %d characters without '/', ':' or spaces",
					  VMDEF_TAP_MAX);
		strcpy(n->tap, s);

		vmdef_path(path, prefix, "mac");
		r = vmdef_get_str(c, v, prefix, "mac", SIZE_MAX, &s, &null);
		if (r < 0)
			return r;
		if (s) {
			static const uint8_t zero[6];

			if (vmdef_mac_parse(s, n->mac) < 0)
				return vmdef_fail(c, path,
						  "must look like 52:54:00:12:34:56");
			if (memcmp(n->mac, zero, sizeof(zero)) == 0)
				return vmdef_fail(c, path,
						  "must not be all zeros");
			if (n->mac[0] & 1)
				return vmdef_fail(c, path,
						  "must be a unicast address");
			n->has_mac = true;
		}
	}
	lim = json_object_get(v, "limits");
	if (lim) {
		vmdef_path(path, prefix, "limits");
		r = vmdef_parse_limits(c, lim, path, vmdef_nic_limit_fields,
				       ARRAY_LEN(vmdef_nic_limit_fields),
				       vmdef_nic_limit_keys, &n->limits,
				       sizeof(n->limits));
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * "disks" or "nics". A definition gives the whole list; an update gives
 * changes to the first entries of the existing one.
 */
static int
vmdef_parse_devices(struct vmdef_ctx *c, struct vmdef *def, json_t *obj,
		    bool disks)
{
	const char *key = disks ? "disks" : "nics";
	unsigned int max = disks ? VMDEF_DISKS_MAX : VMDEF_NICS_MAX;
	unsigned int *nr = disks ? &def->nr_disks : &def->nr_nics;
	char path[VMDEF_PATH_LEN];
	json_t *v = json_object_get(obj, key);
	unsigned int i;
	size_t n;
	int r;

	if (!v || (!c->update && json_is_null(v)))
		return 0;
	if (!json_is_array(v))
		return vmdef_fail(c, key, "must be an array");
	n = json_array_size(v);
	if (c->update && n > *nr) {
		snprintf(path, sizeof(path), "%s[%u]", key, *nr);
		return vmdef_fail(c, path, "no such %s (the VM has %u)",
				  disks ? "disk" : "NIC", *nr);
	}
	if (n > max)
		return vmdef_fail(c, key, "at most %u %s", max,
				  disks ? "disks" : "NICs");
	for (i = 0; i < n; i++) {
		if (disks)
			r = vmdef_parse_disk(c, json_array_get(v, i), i,
					     &def->disks[i]);
		else
			r = vmdef_parse_nic(c, json_array_get(v, i), i,
					    &def->nics[i]);
		if (r < 0)
			return r;
		if (!c->update)
			*nr = i + 1;
	}
	return 0;
}

/* --- resources --- */

static const char *const vmdef_resources_keys[] = {
	"cpu_weight", "cpu_quota", "cpu_pin", "device_cpus", "memory_limit",
	NULL,
};

static int
vmdef_cpulist_value(struct vmdef_ctx *c, json_t *v, const char *path,
		    struct cpulist *out)
{
	int r;

	if (!json_is_string(v))
		return vmdef_fail(c, path, "must be a CPU list like \"0-3,6\"");
	r = cpulist_parse(json_string_value(v), out);
	if (r == -ERANGE)
		return vmdef_fail(c, path, "CPUs must be below %d",
				  CPULIST_MAX);
	if (r < 0)
		return vmdef_fail(c, path, "must be a CPU list like \"0-3,6\"");
	return 0;
}

static int
vmdef_parse_cpu_pin(struct vmdef_ctx *c, json_t *v, struct vmdef *def)
{
	struct vmdef_resources *res = &def->resources;
	char path[VMDEF_PATH_LEN];
	struct cpulist *pin;
	unsigned int i;
	int r;

	if (json_is_null(v)) {
		free(res->cpu_pin);
		res->cpu_pin = NULL;
		res->nr_cpu_pin = 0;
		return 0;
	}
	if (!json_is_array(v))
		return vmdef_fail(c, "resources.cpu_pin",
				  "must be an array of CPU lists, one per vCPU");
	/* Checked before allocating: the count is the peer's. */
	if (json_array_size(v) != def->vcpus)
		return vmdef_fail(c, "resources.cpu_pin",
				  "must have one entry per vCPU (%u, not %zu)",
				  def->vcpus, json_array_size(v));
	pin = calloc(def->vcpus, sizeof(*pin));
	if (!pin)
		return -ENOMEM;
	for (i = 0; i < def->vcpus; i++) {
		snprintf(path, sizeof(path), "resources.cpu_pin[%u]", i);
		r = vmdef_cpulist_value(c, json_array_get(v, i), path,
					&pin[i]);
		if (r < 0) {
			free(pin);
			return r;
		}
	}
	free(res->cpu_pin);
	res->cpu_pin = pin;
	res->nr_cpu_pin = def->vcpus;
	return 0;
}

static int
vmdef_parse_resources(struct vmdef_ctx *c, json_t *v, struct vmdef *def)
{
	struct vmdef_resources *res = &def->resources;
	char sz[SIZE_STR_MAX];
	uint64_t u;
	json_t *m;
	double q;
	int r;

	if (json_is_null(v)) {
		free(res->cpu_pin);
		memset(res, 0, sizeof(*res));
		return 0;
	}
	if (!json_is_object(v))
		return vmdef_fail(c, "resources", "must be an object");
	r = vmdef_check_keys(c, v, "resources", vmdef_resources_keys, NULL);
	if (r < 0)
		return r;

	u = res->cpu_weight;
	r = vmdef_get_uint(c, v, "resources", "cpu_weight",
			   VMDEF_CPU_WEIGHT_MIN, VMDEF_CPU_WEIGHT_MAX, 0, &u);
	if (r < 0)
		return r;
	res->cpu_weight = (uint32_t)u;

	m = json_object_get(v, "cpu_quota");
	if (m && json_is_null(m)) {
		res->cpu_quota_milli = 0;
	} else if (m) {
		if (!json_is_number(m))
			return vmdef_fail(c, "resources.cpu_quota",
					  "must be a number of CPUs");
		q = json_number_value(m);
		if (!(q > 0))
			return vmdef_fail(c, "resources.cpu_quota",
					  "must be greater than 0");
		if (q > def->vcpus)
			return vmdef_fail(c, "resources.cpu_quota",
					  "must be at most vcpus (%u)",
					  def->vcpus);
		/* To the nearest thousandth; q is positive and small here. */
		q = (double)(uint32_t)(q * VMDEF_CPU_QUOTA_SCALE + 0.5);
		if (q < 1)
			return vmdef_fail(c, "resources.cpu_quota",
					  "must be at least 0.001");
		res->cpu_quota_milli = (uint32_t)q;
	}

	m = json_object_get(v, "cpu_pin");
	if (m) {
		r = vmdef_parse_cpu_pin(c, m, def);
		if (r < 0)
			return r;
	}

	m = json_object_get(v, "device_cpus");
	if (m && json_is_null(m)) {
		res->has_device_cpus = false;
		cpulist_zero(&res->device_cpus);
	} else if (m) {
		r = vmdef_cpulist_value(c, m, "resources.device_cpus",
					&res->device_cpus);
		if (r < 0)
			return r;
		res->has_device_cpus = true;
	}

	r = vmdef_get_size(c, v, "resources", "memory_limit", 0,
			   &res->memory_limit);
	if (r < 0)
		return r;
	if (res->memory_limit && res->memory_limit < def->memory) {
		size_format(def->memory, sz, sizeof(sz));
		return vmdef_fail(c, "resources.memory_limit",
				  "must be at least memory (%s)", sz);
	}
	return 0;
}

/* --- the definition --- */

static const char *const vmdef_keys[] = {
	"name", "vcpus", "memory", "kernel", "initrd", "cmdline", "firmware",
	"disks", "nics", "console", "virtio_console", "vsock", "balloon",
	"resources", "autostart", "restart", NULL,
};
static const char *const vmdef_update_keys[] = {
	"resources", "disks", "nics", NULL,
};
static const char *const vmdef_console_keys[] = { "history", NULL };
static const char *const vmdef_vsock_keys[] = { "cid", NULL };
static const char *const vmdef_restart_keys[] = {
	"policy", "max_restarts", "window_sec", NULL,
};

static void
vmdef_defaults(struct vmdef *def)
{
	memset(def, 0, sizeof(*def));
	def->vcpus = VMDEF_VCPUS_DEFAULT;
	def->memory = VMDEF_MEMORY_DEFAULT;
	def->console_history = VMDEF_CONSOLE_HISTORY_DEFAULT;
	def->restart.policy = VMDEF_RESTART_NEVER;
	def->restart.max_restarts = VMDEF_MAX_RESTARTS_DEFAULT;
	def->restart.window_sec = VMDEF_WINDOW_SEC_DEFAULT;
}

static int
vmdef_parse_name(struct vmdef_ctx *c, json_t *j, struct vmdef *def)
{
	json_t *v = json_object_get(j, "name");

	if (!v || json_is_null(v))
		return vmdef_fail(c, "name", "required");
	if (!json_is_string(v))
		return vmdef_fail(c, "name", "must be a string");
	if (!vmdef_name_valid(json_string_value(v)) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return vmdef_fail(c, "name",
				  "must be 1 to %d letters, digits, '.', '_' "
				  "or '-', starting with a letter or digit",
				  VMDEF_NAME_MAX);
	strcpy(def->name, json_string_value(v));
	return 0;
}

static int
vmdef_parse_memory(struct vmdef_ctx *c, json_t *j, struct vmdef *def)
{
	char sz[SIZE_STR_MAX];
	int r;

	r = vmdef_get_size(c, j, NULL, "memory", VMDEF_MEMORY_DEFAULT,
			   &def->memory);
	if (r < 0)
		return r;
	if (def->memory < VMDEF_MEMORY_MIN) {
		size_format(VMDEF_MEMORY_MIN, sz, sizeof(sz));
		return vmdef_fail(c, "memory", "must be at least %s", sz);
	}
	if (def->memory > VMDEF_MEMORY_MAX) {
		size_format(VMDEF_MEMORY_MAX, sz, sizeof(sz));
		return vmdef_fail(c, "memory", "must be at most %s", sz);
	}
	if (def->memory % VMDEF_MEMORY_ALIGN) {
		size_format(VMDEF_MEMORY_ALIGN, sz, sizeof(sz));
		return vmdef_fail(c, "memory", "must be a multiple of %s", sz);
	}
	return 0;
}

static int
vmdef_parse_misc(struct vmdef_ctx *c, json_t *j, struct vmdef *def)
{
	char sz[SIZE_STR_MAX];
	const char *s;
	uint64_t u;
	json_t *v;
	bool null;
	int r;

	/* console */
	v = json_object_get(j, "console");
	if (v && json_is_null(v)) {
		def->console_history = VMDEF_CONSOLE_HISTORY_DEFAULT;
	} else if (v) {
		if (!json_is_object(v))
			return vmdef_fail(c, "console", "must be an object");
		r = vmdef_check_keys(c, v, "console", vmdef_console_keys, NULL);
		if (r < 0)
			return r;
		r = vmdef_get_size(c, v, "console", "history",
				   VMDEF_CONSOLE_HISTORY_DEFAULT,
				   &def->console_history);
		if (r < 0)
			return r;
		if (def->console_history > VMDEF_CONSOLE_HISTORY_MAX) {
			size_format(VMDEF_CONSOLE_HISTORY_MAX, sz, sizeof(sz));
			return vmdef_fail(c, "console.history",
					  "must be at most %s", sz);
		}
	}
	r = vmdef_get_bool(c, j, NULL, "virtio_console", false,
			   &def->virtio_console);
	if (r < 0)
		return r;

	/* vsock */
	v = json_object_get(j, "vsock");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return vmdef_fail(c, "vsock", "must be an object");
		r = vmdef_check_keys(c, v, "vsock", vmdef_vsock_keys, NULL);
		if (r < 0)
			return r;
		u = VMDEF_VSOCK_CID_DEFAULT;
		r = vmdef_get_uint(c, v, "vsock", "cid", VMDEF_VSOCK_CID_MIN,
				   VMDEF_VSOCK_CID_MAX, VMDEF_VSOCK_CID_DEFAULT,
				   &u);
		if (r < 0)
			return r;
		def->has_vsock = true;
		def->vsock_cid = (uint32_t)u;
	}
	r = vmdef_get_bool(c, j, NULL, "balloon", false, &def->balloon);
	if (r < 0)
		return r;

	v = json_object_get(j, "resources");
	if (v) {
		r = vmdef_parse_resources(c, v, def);
		if (r < 0)
			return r;
	}
	r = vmdef_get_bool(c, j, NULL, "autostart", false, &def->autostart);
	if (r < 0)
		return r;

	/* restart */
	v = json_object_get(j, "restart");
	if (v && !json_is_null(v)) {
		if (!json_is_object(v))
			return vmdef_fail(c, "restart", "must be an object");
		r = vmdef_check_keys(c, v, "restart", vmdef_restart_keys, NULL);
		if (r < 0)
			return r;
		r = vmdef_get_str(c, v, "restart", "policy", SIZE_MAX, &s,
				  &null);
		if (r < 0)
			return r;
		if (s) {
			for (u = 0; u < VMDEF_RESTART_MAX; u++)
				if (strcmp(s, vmdef_policy_names[u]) == 0)
					break;
			if (u == VMDEF_RESTART_MAX)
				return vmdef_fail(c, "restart.policy",
						  "must be \"never\", "
						  "\"on-failure\" or \"always\"");
			def->restart.policy = (enum vmdef_restart_policy)u;
		}
		u = def->restart.max_restarts;
		r = vmdef_get_uint(c, v, "restart", "max_restarts", 0,
				   VMDEF_MAX_RESTARTS_MAX,
				   VMDEF_MAX_RESTARTS_DEFAULT, &u);
		if (r < 0)
			return r;
		def->restart.max_restarts = (unsigned int)u;
		u = def->restart.window_sec;
		r = vmdef_get_uint(c, v, "restart", "window_sec", 1,
				   VMDEF_WINDOW_SEC_MAX,
				   VMDEF_WINDOW_SEC_DEFAULT, &u);
		if (r < 0)
			return r;
		def->restart.window_sec = (unsigned int)u;
	}
	return 0;
}

/* Rules across fields, on the finished struct. */
static int
vmdef_validate(struct vmdef_ctx *c, const struct vmdef *def)
{
	char prefix[VMDEF_PATH_LEN], path[VMDEF_PATH_LEN];
	unsigned int i, k;
	int r;

	if (!def->kernel && !def->firmware)
		return vmdef_fail(c, "kernel", "required unless firmware is set");
	if (def->initrd && !def->kernel)
		return vmdef_fail(c, "initrd", "requires kernel");
	if (def->cmdline && !def->kernel)
		return vmdef_fail(c, "cmdline", "requires kernel");
	for (i = 0; i < def->nr_disks; i++) {
		for (k = 0; k < i; k++) {
			if (strcmp(def->disks[i].path,
				   def->disks[k].path) == 0) {
				snprintf(path, sizeof(path), "disks[%u].path",
					 i);
				return vmdef_fail(c, path,
						  "same file as disks[%u]", k);
			}
		}
		snprintf(prefix, sizeof(prefix), "disks[%u].limits", i);
		r = vmdef_check_limits(c, prefix, vmdef_disk_limit_fields,
				       ARRAY_LEN(vmdef_disk_limit_fields),
				       &def->disks[i].limits);
		if (r < 0)
			return r;
	}
	for (i = 0; i < def->nr_nics; i++) {
		for (k = 0; k < i; k++) {
			if (strcmp(def->nics[i].tap, def->nics[k].tap) == 0) {
				snprintf(path, sizeof(path), "nics[%u].tap", i);
				return vmdef_fail(c, path,
						  "same interface as nics[%u]",
						  k);
			}
			if (def->nics[i].has_mac && def->nics[k].has_mac &&
			    memcmp(def->nics[i].mac, def->nics[k].mac, 6) == 0) {
				snprintf(path, sizeof(path), "nics[%u].mac", i);
				return vmdef_fail(c, path,
						  "same address as nics[%u]", k);
			}
		}
		snprintf(prefix, sizeof(prefix), "nics[%u].limits", i);
		r = vmdef_check_limits(c, prefix, vmdef_nic_limit_fields,
				       ARRAY_LEN(vmdef_nic_limit_fields),
				       &def->nics[i].limits);
		if (r < 0)
			return r;
	}
	return 0;
}

static int
vmdef_parse(struct vmdef_ctx *c, json_t *j, struct vmdef *def)
{
	const char *s;
	uint64_t u;
	bool null;
	int r;

	if (!json_is_object(j))
		return vmdef_fail(c, "definition", "must be an object");
	r = vmdef_check_keys(c, j, NULL, vmdef_keys, NULL);
	if (r < 0)
		return r;
	r = vmdef_parse_name(c, j, def);
	if (r < 0)
		return r;
	u = def->vcpus;
	r = vmdef_get_uint(c, j, NULL, "vcpus", 1, VMDEF_VCPUS_MAX,
			   VMDEF_VCPUS_DEFAULT, &u);
	if (r < 0)
		return r;
	def->vcpus = (unsigned int)u;
	r = vmdef_parse_memory(c, j, def);
	if (r < 0)
		return r;
	r = vmdef_get_path(c, j, NULL, "kernel", &def->kernel);
	if (r < 0)
		return r;
	r = vmdef_get_path(c, j, NULL, "initrd", &def->initrd);
	if (r < 0)
		return r;
	r = vmdef_get_str(c, j, NULL, "cmdline", VMDEF_CMDLINE_MAX, &s, &null);
	if (r < 0)
		return r;
	r = vmdef_set_str(&def->cmdline, s && *s ? s : NULL);
	if (r < 0)
		return r;
	r = vmdef_get_path(c, j, NULL, "firmware", &def->firmware);
	if (r < 0)
		return r;
	r = vmdef_parse_devices(c, def, j, true);
	if (r < 0)
		return r;
	r = vmdef_parse_devices(c, def, j, false);
	if (r < 0)
		return r;
	r = vmdef_parse_misc(c, j, def);
	if (r < 0)
		return r;
	return vmdef_validate(c, def);
}

int
vmdef_from_json(json_t *j, unsigned int flags, struct vmdef **ret_def,
		char *err, size_t errlen)
{
	struct vmdef_ctx c = { .err = err, .errlen = errlen };
	struct vmdef *def;
	int r;

	def = malloc(sizeof(*def));
	if (!def)
		return -ENOMEM;
	vmdef_defaults(def);
	r = vmdef_parse(&c, j, def);
	if (r == 0 && (flags & VMDEF_CHECK_FILES))
		r = vmdef_check_files(def, err, errlen);
	if (r < 0) {
		vmdef_free(def);
		return r;
	}
	*ret_def = def;
	return 0;
}

int
vmdef_from_string(const char *buf, size_t len, unsigned int flags,
		  struct vmdef **ret_def, char *err, size_t errlen)
{
	struct vmdef_ctx c = { .err = err, .errlen = errlen };
	json_error_t jerr;
	json_t *j;
	int r;

	j = json_loadb(buf, len, PROTO_JSON_DECODE_FLAGS | JSON_DECODE_ANY,
		       &jerr);
	if (!j) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return vmdef_fail(&c, "definition",
				  "invalid JSON at line %d column %d: %s",
				  jerr.line, jerr.column, jerr.text);
	}
	r = vmdef_from_json(j, flags, ret_def, err, errlen);
	json_decref(j);
	return r;
}

int
vmdef_update(struct vmdef *def, json_t *changes, char *err, size_t errlen)
{
	struct vmdef_ctx c = { .err = err, .errlen = errlen, .update = true };
	struct vmdef *copy, tmp;
	json_t *v;
	int r;

	if (!json_is_object(changes))
		return vmdef_fail(&c, "changes", "must be an object");
	r = vmdef_check_keys(&c, changes, NULL, vmdef_keys, vmdef_update_keys);
	if (r < 0)
		return r;
	copy = vmdef_dup(def);
	if (!copy)
		return -ENOMEM;
	v = json_object_get(changes, "resources");
	if (v)
		r = vmdef_parse_resources(&c, v, copy);
	if (r == 0)
		r = vmdef_parse_devices(&c, copy, changes, true);
	if (r == 0)
		r = vmdef_parse_devices(&c, copy, changes, false);
	if (r == 0)
		r = vmdef_validate(&c, copy);
	if (r == 0) {
		tmp = *def;
		*def = *copy;
		*copy = tmp;
	}
	vmdef_free(copy);
	return r;
}

/* --- files --- */

/*
 * path must be a regular file (or, for a disk, a block device) that we can
 * open for reading, and for writing when writable. It is looked at with
 * stat() first, so that a device or FIFO is never opened.
 */
static int
vmdef_check_file(struct vmdef_ctx *c, const char *label, const char *path,
		 bool disk, bool writable)
{
	struct stat st;
	int fd, e;

	if (stat(path, &st) < 0) {
		e = errno;
		goto err;
	}
	if (!S_ISREG(st.st_mode) && !(disk && S_ISBLK(st.st_mode)))
		return vmdef_fail(c, label, disk ?
				  "not a regular file or block device" :
				  "not a regular file");
	fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC |
		  O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		goto err;
	}
	close(fd);
	return 0;
err:
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return vmdef_fail(c, label, "no such file");
	case EACCES:
	case EPERM:
		return vmdef_fail(c, label, writable ?
				  "permission denied (it must be readable and writable)" :
				  "permission denied");
	case EROFS:
		return vmdef_fail(c, label,
				  "on a read-only file system (set readonly)");
	default:
		return vmdef_fail(c, label, "%s", strerror(e));
	}
}

int
vmdef_check_files(const struct vmdef *def, char *err, size_t errlen)
{
	struct vmdef_ctx c = { .err = err, .errlen = errlen };
	char label[VMDEF_PATH_LEN];
	unsigned int i;
	int r;

	if (def->kernel) {
		r = vmdef_check_file(&c, "kernel", def->kernel, false, false);
		if (r < 0)
			return r;
	}
	if (def->initrd) {
		r = vmdef_check_file(&c, "initrd", def->initrd, false, false);
		if (r < 0)
			return r;
	}
	if (def->firmware) {
		r = vmdef_check_file(&c, "firmware", def->firmware, false,
				     false);
		if (r < 0)
			return r;
	}
	for (i = 0; i < def->nr_disks; i++) {
		snprintf(label, sizeof(label), "disks[%u].path", i);
		r = vmdef_check_file(&c, label, def->disks[i].path, true,
				     !def->disks[i].readonly);
		if (r < 0)
			return r;
	}
	return 0;
}

/* --- to JSON, copy, free --- */

static void
vmdef_put(json_t *o, const char *key, json_t *v, bool *ok)
{
	if (json_object_set_new(o, key, v) < 0)
		*ok = false;
}

static json_t *
vmdef_size_json(uint64_t bytes)
{
	char sz[SIZE_STR_MAX];

	size_format(bytes, sz, sizeof(sz));
	return json_string(sz);
}

static json_t *
vmdef_cpulist_json(const struct cpulist *cl)
{
	char buf[4096];

	if (cpulist_format(cl, buf, sizeof(buf)) < 0)
		return NULL;
	return json_string(buf);
}

static bool
vmdef_all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static json_t *
vmdef_resources_json(const struct vmdef_resources *res, bool *ok)
{
	json_t *o = json_object(), *a;
	uint32_t q = res->cpu_quota_milli;
	unsigned int i;

	if (!o) {
		*ok = false;
		return NULL;
	}
	if (res->cpu_weight)
		vmdef_put(o, "cpu_weight", json_integer(res->cpu_weight), ok);
	if (q)
		vmdef_put(o, "cpu_quota", q % VMDEF_CPU_QUOTA_SCALE ?
			  json_real((double)q / VMDEF_CPU_QUOTA_SCALE) :
			  json_integer(q / VMDEF_CPU_QUOTA_SCALE), ok);
	if (res->nr_cpu_pin) {
		a = json_array();
		for (i = 0; a && i < res->nr_cpu_pin; i++)
			if (json_array_append_new(a,
				vmdef_cpulist_json(&res->cpu_pin[i])) < 0)
				*ok = false;
		vmdef_put(o, "cpu_pin", a, ok);
	}
	if (res->has_device_cpus)
		vmdef_put(o, "device_cpus",
			  vmdef_cpulist_json(&res->device_cpus), ok);
	if (res->memory_limit)
		vmdef_put(o, "memory_limit",
			  vmdef_size_json(res->memory_limit), ok);
	return o;
}

json_t *
vmdef_to_json(const struct vmdef *def)
{
	json_t *o = json_object(), *a, *d, *sub;
	char mac[18];
	bool ok = true;
	unsigned int i;

	if (!o)
		return NULL;
	vmdef_put(o, "name", json_string(def->name), &ok);
	vmdef_put(o, "vcpus", json_integer(def->vcpus), &ok);
	vmdef_put(o, "memory", vmdef_size_json(def->memory), &ok);
	if (def->kernel)
		vmdef_put(o, "kernel", json_string(def->kernel), &ok);
	if (def->initrd)
		vmdef_put(o, "initrd", json_string(def->initrd), &ok);
	if (def->cmdline)
		vmdef_put(o, "cmdline", json_string(def->cmdline), &ok);
	if (def->firmware)
		vmdef_put(o, "firmware", json_string(def->firmware), &ok);

	a = json_array();
	for (i = 0; a && i < def->nr_disks; i++) {
		const struct vmdef_disk *dk = &def->disks[i];

		d = json_object();
		if (d) {
			vmdef_put(d, "path", json_string(dk->path), &ok);
			vmdef_put(d, "readonly", json_boolean(dk->readonly),
				  &ok);
			vmdef_put(d, "direct", json_boolean(dk->direct), &ok);
			if (dk->serial[0])
				vmdef_put(d, "serial", json_string(dk->serial),
					  &ok);
			if (!vmdef_all_zero(&dk->limits, sizeof(dk->limits)))
				vmdef_put(d, "limits", vmdef_limits_to_json(
					vmdef_disk_limit_fields,
					ARRAY_LEN(vmdef_disk_limit_fields),
					&dk->limits, &ok), &ok);
		}
		if (json_array_append_new(a, d) < 0)
			ok = false;
	}
	vmdef_put(o, "disks", a, &ok);

	a = json_array();
	for (i = 0; a && i < def->nr_nics; i++) {
		const struct vmdef_nic *n = &def->nics[i];

		d = json_object();
		if (d) {
			vmdef_put(d, "tap", json_string(n->tap), &ok);
			if (n->has_mac) {
				vmdef_mac_format(n->mac, mac);
				vmdef_put(d, "mac", json_string(mac), &ok);
			}
			if (!vmdef_all_zero(&n->limits, sizeof(n->limits)))
				vmdef_put(d, "limits", vmdef_limits_to_json(
					vmdef_nic_limit_fields,
					ARRAY_LEN(vmdef_nic_limit_fields),
					&n->limits, &ok), &ok);
		}
		if (json_array_append_new(a, d) < 0)
			ok = false;
	}
	vmdef_put(o, "nics", a, &ok);

	sub = json_object();
	if (sub)
		vmdef_put(sub, "history", vmdef_size_json(def->console_history),
			  &ok);
	vmdef_put(o, "console", sub, &ok);
	vmdef_put(o, "virtio_console", json_boolean(def->virtio_console), &ok);
	if (def->has_vsock) {
		sub = json_object();
		if (sub)
			vmdef_put(sub, "cid", json_integer(def->vsock_cid), &ok);
		vmdef_put(o, "vsock", sub, &ok);
	}
	vmdef_put(o, "balloon", json_boolean(def->balloon), &ok);
	vmdef_put(o, "resources", vmdef_resources_json(&def->resources, &ok),
		  &ok);
	vmdef_put(o, "autostart", json_boolean(def->autostart), &ok);
	sub = json_object();
	if (sub) {
		const char *p = vmdef_restart_policy_name(def->restart.policy);

		vmdef_put(sub, "policy", p ? json_string(p) : NULL, &ok);
		vmdef_put(sub, "max_restarts",
			  json_integer(def->restart.max_restarts), &ok);
		vmdef_put(sub, "window_sec",
			  json_integer(def->restart.window_sec), &ok);
	}
	vmdef_put(o, "restart", sub, &ok);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

struct vmdef *
vmdef_dup(const struct vmdef *def)
{
	struct vmdef *d = malloc(sizeof(*d));
	const struct vmdef_resources *res = &def->resources;
	bool ok = true;
	unsigned int i;

	if (!d)
		return NULL;
	*d = *def;
	/* Clear every owned pointer first, so a failure frees only copies. */
	d->kernel = d->initrd = d->cmdline = d->firmware = NULL;
	d->resources.cpu_pin = NULL;
	for (i = 0; i < VMDEF_DISKS_MAX; i++)
		d->disks[i].path = NULL;
	ok &= vmdef_set_str(&d->kernel, def->kernel) == 0;
	ok &= vmdef_set_str(&d->initrd, def->initrd) == 0;
	ok &= vmdef_set_str(&d->cmdline, def->cmdline) == 0;
	ok &= vmdef_set_str(&d->firmware, def->firmware) == 0;
	for (i = 0; i < def->nr_disks; i++)
		ok &= vmdef_set_str(&d->disks[i].path,
				    def->disks[i].path) == 0;
	if (res->nr_cpu_pin) {
		d->resources.cpu_pin = malloc(res->nr_cpu_pin *
					      sizeof(*res->cpu_pin));
		if (d->resources.cpu_pin)
			memcpy(d->resources.cpu_pin, res->cpu_pin,
			       res->nr_cpu_pin * sizeof(*res->cpu_pin));
		else
			ok = false;
	}
	if (!ok) {
		vmdef_free(d);
		return NULL;
	}
	return d;
}

void
vmdef_free(struct vmdef *def)
{
	unsigned int i;

	if (!def)
		return;
	free(def->kernel);
	free(def->initrd);
	free(def->cmdline);
	free(def->firmware);
	for (i = 0; i < VMDEF_DISKS_MAX; i++)
		free(def->disks[i].path);
	free(def->resources.cpu_pin);
	free(def);
}
