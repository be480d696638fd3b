/* SPDX-License-Identifier: MIT */
/*
 * The access policy: a JSON file checked field by field into a sorted
 * array of identities, looked up by binary search on every connection.
 * Fields are checked in the file's order (jansson keeps it), so the first
 * error reported for a given file never changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "policy.h"
#include "util.h"

/* How much of an identity an error message quotes. */
#define POLICY_ERR_KEY_MAX	80
/* The largest uid: (uid_t)-1 means "no uid" to the kernel. */
#define POLICY_UID_MAX		4294967294u

struct policy_entry {
	char *identity;
	char *tenant;			/* NULL: not bound to a tenant */
	enum policy_role role;
};

struct policy {
	struct policy_entry *entries;	/* sorted by identity (strcmp) */
	size_t n;
};

static const char *const policy_role_names[POLICY_ROLE_MAX] = {
	[POLICY_ROLE_NONE] = "none",
	[POLICY_ROLE_VIEWER] = "viewer",
	[POLICY_ROLE_OPERATOR] = "operator",
	[POLICY_ROLE_ADMIN] = "admin",
};

const char *
policy_role_name(enum policy_role r)
{
	if ((unsigned int)r >= POLICY_ROLE_MAX)
		return "unknown";
	return policy_role_names[r];
}

int
policy_role_from_name(const char *s, enum policy_role *ret)
{
	unsigned int i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < POLICY_ROLE_MAX; i++) {
		if (strcmp(s, policy_role_names[i]) == 0) {
			*ret = (enum policy_role)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int
policy_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
policy_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	proto_text_scrub(err);
	return r;
}

/*
 * An identity as an error message quotes it: at most POLICY_ERR_KEY_MAX
 * bytes and "...", into buf (POLICY_ERR_KEY_MAX + 4 bytes). Control
 * characters are left for proto_text_scrub() to replace.
 */
static const char *
policy_err_key(const char *key, size_t key_len, char *buf)
{
	size_t n = key_len > POLICY_ERR_KEY_MAX ? POLICY_ERR_KEY_MAX : key_len;
	size_t i;

	/* An embedded NUL would end the message early: show it as '?'. */
	for (i = 0; i < n; i++)
		buf[i] = key[i] ? key[i] : '?';
	if (n < key_len)
		memcpy(buf + n, "...", 4);
	else
		buf[n] = '\0';
	return buf;
}

static bool
policy_printable(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* "uid:" followed by a decimal uid without leading zeros. */
static bool
policy_uid_ok(const char *s, size_t n)
{
	uint64_t v = 0;
	size_t i;

	if (n <= 4 || n > 4 + 10)
		return false;
	if (s[4] == '0' && n > 5)
		return false;
	for (i = 4; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v <= POLICY_UID_MAX;
}

/* 1..POLICY_TENANT_MAX of [A-Za-z0-9._-], starting with a letter or digit. */
static bool
policy_tenant_ok(const char *s, size_t n)
{
	size_t i;
	char c;

	if (n == 0 || n > POLICY_TENANT_MAX)
		return false;
	for (i = 0; i < n; i++) {
		c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9'))
			continue;
		if (i > 0 && (c == '.' || c == '_' || c == '-'))
			continue;
		return false;
	}
	return true;
}

static int
policy_entry_cmp(const void *a, const void *b)
{
	const struct policy_entry *x = a, *y = b;

	return strcmp(x->identity, y->identity);
}

/* bsearch(): an identity against an entry. */
static int
policy_key_cmp(const void *key, const void *entry)
{
	const struct policy_entry *e = entry;

	return strcmp(key, e->identity);
}

/* One identity's object, into e (whose identity is already set). */
static int
policy_parse_entry(json_t *v, const char *ekey, struct policy_entry *e,
		   char *err, size_t errlen)
{
	enum policy_role role;
	const char *key, *s;
	json_t *f;
	size_t n;

	if (!json_is_object(v))
		return policy_fail(err, errlen, -EINVAL,
				   "identities.%s: must be an object like "
				   "{\"role\": \"viewer\"}", ekey);
	json_object_foreach(v, key, f) {
		if (strcmp(key, "role") != 0 && strcmp(key, "tenant") != 0)
			return policy_fail(err, errlen, -EINVAL,
					   "identities.%s.%s: unknown field",
					   ekey, key);
	}

	f = json_object_get(v, "role");
	if (!f)
		return policy_fail(err, errlen, -EINVAL,
				   "identities.%s.role: required", ekey);
	if (!json_is_string(f) ||
	    policy_role_from_name(json_string_value(f), &role) < 0 ||
	    role == POLICY_ROLE_NONE ||
	    strlen(json_string_value(f)) != json_string_length(f))
		return policy_fail(err, errlen, -EINVAL,
				   "identities.%s.role: must be one of viewer, "
				   "operator, admin", ekey);
	e->role = role;

	f = json_object_get(v, "tenant");
	if (f && !json_is_null(f)) {
		if (!json_is_string(f) ||
		    !policy_tenant_ok(json_string_value(f),
				      json_string_length(f)))
			return policy_fail(err, errlen, -EINVAL,
					   "identities.%s.tenant: must be 1 "
					   "to %d characters of "
					   "[A-Za-z0-9._-], starting with a "
					   "letter or digit",
					   ekey, POLICY_TENANT_MAX);
		s = json_string_value(f);
		n = json_string_length(f);
		e->tenant = strndup(s, n);
		if (!e->tenant)
			return policy_fail(err, errlen, -ENOMEM,
					   "out of memory");
	}
	return 0;
}

int
policy_from_json(json_t *j, struct policy **ret, char *err, size_t errlen)
{
	char ekey[POLICY_ERR_KEY_MAX + 4];
	struct policy_entry *e;
	struct policy *p = NULL;
	const char *key;
	json_t *ids, *v;
	size_t key_len, count, i;
	int r;

	if (!json_is_object(j))
		return policy_fail(err, errlen, -EINVAL,
				   "the policy must be a JSON object like "
				   "{\"identities\": {...}}");
	json_object_foreach(j, key, v) {
		if (strcmp(key, "identities") != 0)
			return policy_fail(err, errlen, -EINVAL,
					   "%s: unknown field", key);
	}
	ids = json_object_get(j, "identities");
	if (!ids)
		return policy_fail(err, errlen, -EINVAL,
				   "identities: required");
	if (!json_is_object(ids))
		return policy_fail(err, errlen, -EINVAL,
				   "identities: must be an object mapping "
				   "identities to {\"role\": ...}");
	count = json_object_size(ids);
	if (count > POLICY_IDENTITIES_MAX)
		return policy_fail(err, errlen, -EINVAL,
				   "identities: too many (%zu, at most %u)",
				   count, POLICY_IDENTITIES_MAX);

	p = calloc(1, sizeof(*p));
	if (!p || (count && !(p->entries = calloc(count, sizeof(*e))))) {
		r = policy_fail(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	json_object_keylen_foreach(ids, key, key_len, v) {
		policy_err_key(key, key_len, ekey);
		if (key_len == 0 || key_len > POLICY_IDENTITY_MAX ||
		    !policy_printable(key, key_len)) {
			r = policy_fail(err, errlen, -EINVAL,
					"identities.%s: an identity must be 1 "
					"to %d printable ASCII characters",
					ekey, POLICY_IDENTITY_MAX);
			goto fail;
		}
		if (strncmp(key, "uid:", 4) == 0 &&
		    !policy_uid_ok(key, key_len)) {
			r = policy_fail(err, errlen, -EINVAL,
					"identities.%s: must be \"uid:\" and "
					"a decimal user id, like \"uid:1000\"",
					ekey);
			goto fail;
		}
		/* p->n counts entries to free, even half-filled ones. */
		e = &p->entries[p->n++];
		e->identity = strndup(key, key_len);
		if (!e->identity) {
			r = policy_fail(err, errlen, -ENOMEM, "out of memory");
			goto fail;
		}
		r = policy_parse_entry(v, ekey, e, err, errlen);
		if (r < 0)
			goto fail;
	}
	if (p->n)
		qsort(p->entries, p->n, sizeof(*p->entries), policy_entry_cmp);
	/* Keys of a jansson object are unique; this guards the search. */
	for (i = 1; i < p->n; i++) {
		if (strcmp(p->entries[i - 1].identity,
			   p->entries[i].identity) == 0) {
			policy_err_key(p->entries[i].identity,
				       strlen(p->entries[i].identity), ekey);
			r = policy_fail(err, errlen, -EINVAL,
					"identities.%s: listed twice", ekey);
			goto fail;
		}
	}
	*ret = p;
	return 0;
fail:
	policy_free(p);
	return r;
}

int
policy_load(const char *path, struct policy **ret, char *err,
	    size_t errlen)
{
	char why[256];
	json_error_t jerr;
	json_t *j = NULL;
	char *data = NULL;
	struct stat st;
	size_t len = 0, size;
	ssize_t n;
	int fd, r;

	if (!path || !*path)
		return policy_fail(err, errlen, -EINVAL,
				   "policy: no file given");
	/* O_NONBLOCK: a FIFO must not hang the daemon's start-up. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		return policy_fail(err, errlen, r, "%s: %s", path,
				   r == -ENOENT ? "no such file"
						: strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		policy_fail(err, errlen, r, "%s: %s", path, strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = policy_fail(err, errlen, S_ISDIR(st.st_mode) ? -EISDIR
								  : -EINVAL,
				"%s: not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)POLICY_FILE_MAX) {
		r = policy_fail(err, errlen, -EFBIG,
				"%s: too large (%lld bytes, at most %u)",
				path, (long long)st.st_size, POLICY_FILE_MAX);
		goto out;
	}
	/* A file that grows while we read it is cut at the size we saw. */
	size = (size_t)st.st_size;
	data = malloc(size + 1);
	if (!data) {
		r = policy_fail(err, errlen, -ENOMEM, "%s: out of memory",
				path);
		goto out;
	}
	while (len < size) {
		n = read(fd, data + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			policy_fail(err, errlen, r, "%s: %s", path,
				    strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	j = json_loadb(data, len, PROTO_JSON_DECODE_FLAGS, &jerr);
	if (!j) {
		r = policy_fail(err, errlen, -EINVAL, "%s:%d:%d: %s", path,
				jerr.line, jerr.column, jerr.text);
		goto out;
	}
	r = policy_from_json(j, ret, why, sizeof(why));
	if (r < 0)
		policy_fail(err, errlen, r, "%s: %s", path, why);
out:
	json_decref(j);
	free(data);
	close(fd);
	return r;
}

int
policy_lookup(const struct policy *p, const char *identity,
	      enum policy_role *ret_role, const char **ret_tenant)
{
	const struct policy_entry *e;

	if (!p || !identity || p->n == 0)
		return -ENOENT;
	e = bsearch(identity, p->entries, p->n, sizeof(*p->entries),
		    policy_key_cmp);
	if (!e)
		return -ENOENT;
	if (ret_role)
		*ret_role = e->role;
	if (ret_tenant)
		*ret_tenant = e->tenant;
	return 0;
}

size_t
policy_count(const struct policy *p)
{
	return p ? p->n : 0;
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->n; i++) {
		free(p->entries[i].identity);
		free(p->entries[i].tenant);
	}
	free(p->entries);
	free(p);
}
