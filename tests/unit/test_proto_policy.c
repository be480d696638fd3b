/* SPDX-License-Identifier: MIT */
/* The access policy: every error the file can get, lookups, roles. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/policy.h"

/* Parse text with jansson, then policy_from_json(); the json is freed. */
static int
from_text(const char *text, struct policy **ret, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j;
	int r;

	j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!j)
		fail_msg("test input is not JSON (%s): %s", jerr.text, text);
	r = policy_from_json(j, ret, err, errlen);
	json_decref(j);
	return r;
}

static void
test_errors(void **state)
{
	static const struct {
		const char *json;
		const char *err;
	} cases[] = {
		{ "[]", "the policy must be a JSON object like "
			"{\"identities\": {...}}" },
		{ "{}", "identities: required" },
		{ "{\"identities\": []}", "identities: must be an object "
			"mapping identities to {\"role\": ...}" },
		{ "{\"identities\": null}", "identities: must be an object "
			"mapping identities to {\"role\": ...}" },
		{ "{\"identities\": {}, \"version\": 1}",
			"version: unknown field" },
		{ "{\"identities\": {\"ops-a\": {\"rol\": \"operator\"}}}",
			"identities.ops-a.rol: unknown field" },
		{ "{\"identities\": {\"ops-a\": {\"role\": \"operator\", "
			"\"tenant\": \"t\", \"tenants\": \"u\"}}}",
			"identities.ops-a.tenants: unknown field" },
		{ "{\"identities\": {\"a\": \"admin\"}}",
			"identities.a: must be an object like "
			"{\"role\": \"viewer\"}" },
		{ "{\"identities\": {\"a\": {}}}", "identities.a.role: required" },
		{ "{\"identities\": {\"a\": {\"tenant\": \"t\"}}}",
			"identities.a.role: required" },
		{ "{\"identities\": {\"a\": {\"role\": \"root\"}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": \"Admin\"}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": \"none\"}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": 3}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": null}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\\u0000x\"}}}",
			"identities.a.role: must be one of viewer, operator, "
			"admin" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"team a\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"..\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"-x\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"a/b\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": \"t\\u0000\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", "
			"\"tenant\": 7}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"a\": {\"role\": \"admin\", \"tenant\": "
			"\"0123456789012345678901234567890123456789"
			"012345678901234567890123\"}}}",
			"identities.a.tenant: must be 1 to 63 characters of "
			"[A-Za-z0-9._-], starting with a letter or digit" },
		{ "{\"identities\": {\"\": {\"role\": \"admin\"}}}",
			"identities.: an identity must be 1 to 255 printable "
			"ASCII characters" },
		{ "{\"identities\": {\"a\\tb\": {\"role\": \"admin\"}}}",
			"identities.a?b: an identity must be 1 to 255 printable "
			"ASCII characters" },
		{ "{\"identities\": {\"caf\\u00e9\": {\"role\": \"admin\"}}}",
			"identities.caf\xc3\xa9: an identity must be 1 to 255 "
			"printable ASCII characters" },
		{ "{\"identities\": {\"uid:\": {\"role\": \"admin\"}}}",
			"identities.uid:: must be \"uid:\" and a decimal user "
			"id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid:abc\": {\"role\": \"admin\"}}}",
			"identities.uid:abc: must be \"uid:\" and a decimal "
			"user id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid:01\": {\"role\": \"admin\"}}}",
			"identities.uid:01: must be \"uid:\" and a decimal "
			"user id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid:-1\": {\"role\": \"admin\"}}}",
			"identities.uid:-1: must be \"uid:\" and a decimal "
			"user id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid:4294967295\": {\"role\": \"admin\"}}}",
			"identities.uid:4294967295: must be \"uid:\" and a "
			"decimal user id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid:99999999999\": {\"role\": "
			"\"admin\"}}}",
			"identities.uid:99999999999: must be \"uid:\" and a "
			"decimal user id, like \"uid:1000\"" },
		{ "{\"identities\": {\"uid: 1\": {\"role\": \"admin\"}}}",
			"identities.uid: 1: must be \"uid:\" and a decimal "
			"user id, like \"uid:1000\"" },
		/* The first bad entry in the file's order is the one named. */
		{ "{\"identities\": {\"good\": {\"role\": \"admin\"}, "
			"\"zz\": {\"role\": \"x\"}, \"aa\": {\"role\": \"y\"}}}",
			"identities.zz.role: must be one of viewer, operator, "
			"admin" },
	};
	struct policy *p;
	char err[256];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = (struct policy *)0x1;
		strcpy(err, "untouched");
		r = from_text(cases[i].json, &p, err, sizeof(err));
		if (r != -EINVAL)
			fail_msg("policy_from_json(%s) returned %d, expected "
				 "-EINVAL", cases[i].json, r);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("policy_from_json(%s):\n  expected \"%s\"\n"
				 "  got      \"%s\"", cases[i].json,
				 cases[i].err, err);
		assert_ptr_equal(p, (struct policy *)0x1);
	}
}

/* Identity keys at and past their limits, quoted but cut in errors. */
static void
test_identity_limits(void **state)
{
	char id[300], json[512], want[256];
	struct policy *p = NULL;
	enum policy_role role;
	char err[256];
	json_t *j;

	(void)state;
	memset(id, 'x', 255);
	id[255] = '\0';
	snprintf(json, sizeof(json),
		 "{\"identities\": {\"%s\": {\"role\": \"viewer\"}}}", id);
	assert_int_equal(from_text(json, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_lookup(p, id, &role, NULL), 0);
	assert_int_equal(role, POLICY_ROLE_VIEWER);
	policy_free(p);

	memset(id, 'x', 256);
	id[256] = '\0';
	snprintf(json, sizeof(json),
		 "{\"identities\": {\"%s\": {\"role\": \"viewer\"}}}", id);
	assert_int_equal(from_text(json, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "identities.%.80s...: an identity must "
		 "be 1 to 255 printable ASCII characters", id);
	assert_string_equal(err, want);

	/* The extremes of uids are fine; so is a space inside a CN. */
	assert_int_equal(from_text("{\"identities\": {"
				   "\"uid:0\": {\"role\": \"admin\"},"
				   "\"uid:4294967294\": {\"role\": \"viewer\"},"
				   "\"John Doe\": {\"role\": \"operator\"},"
				   "\"UID:x\": {\"role\": \"viewer\"}}}",
				   &p, err, sizeof(err)), 0);
	assert_int_equal(policy_count(p), 4);
	assert_int_equal(policy_lookup(p, "uid:0", &role, NULL), 0);
	assert_int_equal(role, POLICY_ROLE_ADMIN);
	assert_int_equal(policy_lookup(p, "John Doe", &role, NULL), 0);
	assert_int_equal(role, POLICY_ROLE_OPERATOR);
	policy_free(p);

	/* jansson's parser refuses a NUL in a key; a built object may hold
	 * one, and it must not cut the identity short. */
	j = json_pack("{s:{}}", "identities");
	assert_non_null(j);
	assert_int_equal(json_object_setn_new(json_object_get(j, "identities"),
					      "a\0b", 3,
					      json_pack("{s:s}", "role",
							"admin")), 0);
	assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "identities.a?b: an identity must be 1 to "
			    "255 printable ASCII characters");
	json_decref(j);

	/* A 63-character tenant is the longest. */
	assert_int_equal(from_text("{\"identities\": {\"a\": {\"role\": "
				   "\"admin\", \"tenant\": \"a12345678901234567"
				   "8901234567890123456789012345678901234567"
				   "89._-\"}}}", &p, err, sizeof(err)), 0);
	policy_free(p);
}

static void
test_lookup(void **state)
{
	static const char text[] =
		"{\"identities\": {"
		"\"admin.example\": {\"role\": \"admin\"},"
		"\"ops-a\": {\"role\": \"operator\", \"tenant\": \"team-a\"},"
		"\"uid:1000\": {\"role\": \"viewer\", \"tenant\": \"team-b\"},"
		"\"ops-b\": {\"role\": \"operator\", \"tenant\": null},"
		"\"sanonly@example.com\": {\"tenant\": \"Team_B.2\", "
		"\"role\": \"viewer\"}}}";
	static const struct {
		const char *id;
		enum policy_role role;
		const char *tenant;
	} ok[] = {
		{ "admin.example", POLICY_ROLE_ADMIN, NULL },
		{ "ops-a", POLICY_ROLE_OPERATOR, "team-a" },
		{ "uid:1000", POLICY_ROLE_VIEWER, "team-b" },
		{ "ops-b", POLICY_ROLE_OPERATOR, NULL },
		{ "sanonly@example.com", POLICY_ROLE_VIEWER, "Team_B.2" },
	};
	static const char *const unknown[] = {
		"", "Admin.example", "admin.example ", "ops", "ops-a-", "uid:100",
		"uid:10000", "uid:1000\n", "zzz", "0",
	};
	const char *tenant;
	enum policy_role role;
	struct policy *p = NULL;
	char err[256] = "";
	size_t i;

	(void)state;
	assert_int_equal(from_text(text, &p, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(policy_count(p), 5);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		role = POLICY_ROLE_MAX;
		tenant = "untouched";
		if (policy_lookup(p, ok[i].id, &role, &tenant) != 0)
			fail_msg("policy_lookup(\"%s\") failed", ok[i].id);
		assert_int_equal(role, ok[i].role);
		if (ok[i].tenant)
			assert_string_equal(tenant, ok[i].tenant);
		else
			assert_null(tenant);
		/* Either output may be left out. */
		assert_int_equal(policy_lookup(p, ok[i].id, NULL, NULL), 0);
	}
	for (i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		role = POLICY_ROLE_MAX;
		tenant = "untouched";
		if (policy_lookup(p, unknown[i], &role, &tenant) != -ENOENT)
			fail_msg("policy_lookup(\"%s\") found it", unknown[i]);
		assert_int_equal(role, POLICY_ROLE_MAX);
		assert_string_equal(tenant, "untouched");
	}
	assert_int_equal(policy_lookup(p, NULL, &role, &tenant), -ENOENT);
	assert_int_equal(policy_lookup(NULL, "ops-a", &role, &tenant),
			 -ENOENT);
	policy_free(p);

	/* An empty policy is valid and knows no one. */
	assert_int_equal(from_text("{\"identities\": {}}", &p, err,
				   sizeof(err)), 0);
	assert_int_equal(policy_count(p), 0);
	assert_int_equal(policy_lookup(p, "admin.example", &role, NULL),
			 -ENOENT);
	policy_free(p);
	policy_free(NULL);
	assert_int_equal(policy_count(NULL), 0);
}

/*
 * The limit on identities, and lookups in a big policy whose file order
 * is nothing like sorted order.
 */
static void
test_many(void **state)
{
	static const char *const roles[] = { "viewer", "operator", "admin" };
	json_t *j, *ids, *e;
	struct policy *p = NULL;
	enum policy_role role;
	const char *tenant;
	char id[32], t[32], err[256];
	unsigned int i, k;

	(void)state;
	j = json_object();
	ids = json_object();
	assert_non_null(j);
	assert_non_null(ids);
	assert_int_equal(json_object_set_new(j, "identities", ids), 0);
	for (i = 0; i < POLICY_IDENTITIES_MAX; i++) {
		/* A permutation of 0..9999 (7919 is prime to 10000). */
		k = (i * 7919u) % POLICY_IDENTITIES_MAX;
		snprintf(id, sizeof(id), "client-%u.example", k);
		snprintf(t, sizeof(t), "t%u", k % 7);
		e = json_pack("{s:s, s:s}", "role", roles[k % 3], "tenant", t);
		assert_non_null(e);
		assert_int_equal(json_object_set_new(ids, id, e), 0);
	}
	assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_count(p), POLICY_IDENTITIES_MAX);
	for (k = 0; k < POLICY_IDENTITIES_MAX; k++) {
		snprintf(id, sizeof(id), "client-%u.example", k);
		snprintf(t, sizeof(t), "t%u", k % 7);
		if (policy_lookup(p, id, &role, &tenant) != 0)
			fail_msg("policy_lookup(\"%s\") failed", id);
		assert_int_equal(role, (enum policy_role)(POLICY_ROLE_VIEWER +
							  k % 3));
		assert_string_equal(tenant, t);
	}
	assert_int_equal(policy_lookup(p, "client-10000.example", &role,
				       NULL), -ENOENT);
	policy_free(p);

	assert_int_equal(json_object_set_new(ids, "one-too-many",
					     json_pack("{s:s}", "role",
						       "viewer")), 0);
	p = NULL;
	assert_int_equal(policy_from_json(j, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "identities: too many (10001, at most 10000)");
	assert_null(p);
	json_decref(j);
}

static void
test_roles(void **state)
{
	static const struct {
		const char *name;
		enum policy_role role;
	} names[] = {
		{ "none", POLICY_ROLE_NONE },
		{ "viewer", POLICY_ROLE_VIEWER },
		{ "operator", POLICY_ROLE_OPERATOR },
		{ "admin", POLICY_ROLE_ADMIN },
	};
	static const char *const bad[] = {
		"", "Admin", "ADMIN", "admin ", "root", "view", "unknown",
	};
	enum policy_role r;
	size_t i;

	(void)state;
	/* Ordered: a check is `role >= needed`. */
	assert_true(POLICY_ROLE_NONE < POLICY_ROLE_VIEWER);
	assert_true(POLICY_ROLE_VIEWER < POLICY_ROLE_OPERATOR);
	assert_true(POLICY_ROLE_OPERATOR < POLICY_ROLE_ADMIN);
	assert_true(POLICY_ROLE_ADMIN < POLICY_ROLE_MAX);
	assert_int_equal(POLICY_ROLE_NONE, 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_string_equal(policy_role_name(names[i].role),
				    names[i].name);
		r = POLICY_ROLE_MAX;
		assert_int_equal(policy_role_from_name(names[i].name, &r), 0);
		assert_int_equal(r, names[i].role);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = POLICY_ROLE_MAX;
		if (policy_role_from_name(bad[i], &r) != -EINVAL)
			fail_msg("policy_role_from_name(\"%s\") accepted",
				 bad[i]);
		assert_int_equal(r, POLICY_ROLE_MAX);
	}
	assert_int_equal(policy_role_from_name(NULL, &r), -EINVAL);
	assert_string_equal(policy_role_name(POLICY_ROLE_MAX), "unknown");
	assert_string_equal(policy_role_name((enum policy_role)-1), "unknown");
}

/* Error buffers: NULL with 0 is fine, a short one is cut and terminated. */
static void
test_err_buffer(void **state)
{
	struct policy *p = NULL;
	char err[8];

	(void)state;
	assert_int_equal(from_text("{}", &p, NULL, 0), -EINVAL);
	memset(err, 'z', sizeof(err));
	assert_int_equal(from_text("{}", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "identit");
	assert_null(p);
}

/* --- files --- */

struct files {
	char dir[64];
};

static int
files_setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/test_proto_policy.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
files_teardown(void **state)
{
	struct files *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (!fp)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

static void
test_load_errors(void **state)
{
	struct files *f = *state;
	char path[128], want[256], err[512];
	struct policy *p = NULL;
	int fd;

	snprintf(path, sizeof(path), "%s/missing.json", f->dir);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: no such file", path);
	assert_string_equal(err, want);

	assert_int_equal(policy_load(f->dir, &p, err, sizeof(err)), -EISDIR);
	snprintf(want, sizeof(want), "%s: not a regular file", f->dir);
	assert_string_equal(err, want);

	assert_int_equal(policy_load("", &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "policy: no file given");

	/* A JSON syntax error gives the line and column. */
	snprintf(path, sizeof(path), "%s/syntax.json", f->dir);
	write_file(path, "{\"identities\": {\n  \"a\": {\"role\": admin}}}\n");
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2:", path);
	if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, "invalid"))
		fail_msg("expected \"%s<col>: invalid ...\", got \"%s\"", want,
			 err);

	snprintf(path, sizeof(path), "%s/dup.json", f->dir);
	write_file(path, "{\"identities\": {\"a\": {\"role\": \"admin\"},"
		   " \"a\": {\"role\": \"viewer\"}}}");
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "duplicate object key"))
		fail_msg("expected a duplicate key error, got \"%s\"", err);

	snprintf(path, sizeof(path), "%s/empty.json", f->dir);
	write_file(path, "");
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:", path);
	assert_int_equal(strncmp(err, want, strlen(want)), 0);

	/* Field errors come after the file's name. */
	snprintf(path, sizeof(path), "%s/field.json", f->dir);
	write_file(path, "{\"identities\": {\"ops-a\": {\"rol\": "
		   "\"operator\"}}}");
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: identities.ops-a.rol: unknown field",
		 path);
	assert_string_equal(err, want);

	/*
	 * Too large, checked before reading: the sparse 64 GiB file would
	 * take minutes to read, and more memory than malloc gives.
	 */
	snprintf(path, sizeof(path), "%s/huge.json", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)64 << 30), 0);
	close(fd);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EFBIG);
	snprintf(want, sizeof(want), "%s: too large (68719476736 bytes, at "
		 "most 1048576)", path);
	assert_string_equal(err, want);

	/* Just over the limit, and just at it (then a JSON error instead). */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, POLICY_FILE_MAX + 1), 0);
	close(fd);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EFBIG);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, POLICY_FILE_MAX), 0);
	close(fd);
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), -EINVAL);

	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/secret.json", f->dir);
		write_file(path, "{\"identities\": {}}");
		assert_int_equal(chmod(path, 0), 0);
		assert_int_equal(policy_load(path, &p, err, sizeof(err)),
				 -EACCES);
		snprintf(want, sizeof(want), "%s: Permission denied", path);
		assert_string_equal(err, want);
	}
	assert_null(p);
}

static void
test_load_ok(void **state)
{
	struct files *f = *state;
	struct policy *p = NULL;
	enum policy_role role;
	const char *tenant;
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/ok.json", f->dir);
	write_file(path, "{\n  \"identities\": {\n"
		   "    \"admin1\": {\"role\": \"admin\"},\n"
		   "    \"operator-a\": {\"role\": \"operator\", "
		   "\"tenant\": \"team-a\"}\n  }\n}\n");
	assert_int_equal(policy_load(path, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_count(p), 2);
	assert_int_equal(policy_lookup(p, "operator-a", &role, &tenant), 0);
	assert_int_equal(role, POLICY_ROLE_OPERATOR);
	assert_string_equal(tenant, "team-a");
	policy_free(p);
}

/* The example shipped in configs/ must load (run from the source tree). */
static void
test_example(void **state)
{
	static const char path[] = "configs/policy.json";
	struct policy *p = NULL;
	enum policy_role role;
	const char *tenant;
	char err[512];
	int r;

	(void)state;
	if (access(path, F_OK) != 0) {
		print_message("# %s not found: not run from the source tree; "
			      "skipping\n", path);
		skip();
	}
	r = policy_load(path, &p, err, sizeof(err));
	if (r != 0)
		fail_msg("policy_load(%s): %d: %s", path, r, err);
	assert_true(policy_count(p) >= 1);
	assert_int_equal(policy_lookup(p, "admin1", &role, &tenant), 0);
	assert_int_equal(role, POLICY_ROLE_ADMIN);
	assert_null(tenant);
	policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_identity_limits),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_err_buffer),
		cmocka_unit_test_setup_teardown(test_load_errors, files_setup,
						files_teardown),
		cmocka_unit_test_setup_teardown(test_load_ok, files_setup,
						files_teardown),
		cmocka_unit_test(test_example),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
