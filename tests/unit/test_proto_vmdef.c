/* SPDX-License-Identifier: MIT */
/*
 * The VM definition schema. Most cases are golden files: every
 * tests/unit/golden/vmdef/NAME.json is parsed (without file checks) and
 * compared with NAME.out, which holds either the canonical JSON (sorted
 * keys, indent 2) or "error: <message>". Each case is its own test, and a
 * definition that parses must parse again from its canonical form to the
 * same thing. PROTO_GOLDEN_UPDATE=1 rewrites the .out files (review the
 * diff!). Below the golden cases: vm.set updates, file checks, copies.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "proto/vmdef.h"

#define GOLDEN_DIR "tests/unit/golden/vmdef"
#define GOLDEN_MAX 512

static char *
read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[n] = '\0';
		if (ret_len)
			*ret_len = (size_t)n;
	}
	return buf;
}

static char *
canonical_text(const struct vmdef *def)
{
	json_t *j = vmdef_to_json(def);
	char *s;

	assert_non_null(j);
	s = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(j);
	assert_non_null(s);
	return s;
}

/* What a golden case produces: canonical JSON or "error: ...". */
static char *
golden_result(const char *input, size_t len)
{
	struct vmdef *def = NULL, *again = NULL;
	char err[256] = "", err2[256] = "", *out, *out2;
	int r;

	r = vmdef_from_string(input, len, 0, &def, err, sizeof(err));
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_null(def);
		assert_true(err[0] != '\0');
		assert_int_not_equal(asprintf(&out, "error: %s", err), -1);
		return out;
	}
	out = canonical_text(def);
	/* The canonical form is a fixed point. */
	r = vmdef_from_string(out, strlen(out), 0, &again, err2, sizeof(err2));
	if (r < 0)
		fail_msg("canonical form does not parse again: %s\n%s", err2,
			 out);
	out2 = canonical_text(again);
	if (strcmp(out, out2) != 0)
		fail_msg("canonical form changed when parsed again:\n%s\n---\n%s",
			 out, out2);
	free(out2);
	vmdef_free(again);
	vmdef_free(def);
	return out;
}

static void
test_golden_case(void **state)
{
	const char *name = *state;
	char path[512], *input, *want, *got;
	size_t len, wlen;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.json", GOLDEN_DIR, name);
	input = read_file(path, &len);
	if (!input)
		fail_msg("cannot read %s", path);
	got = golden_result(input, len);
	snprintf(path, sizeof(path), "%s/%s.out", GOLDEN_DIR, name);
	if (getenv("PROTO_GOLDEN_UPDATE")) {
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "%s\n", got);
		fclose(f);
	}
	want = read_file(path, &wlen);
	if (!want)
		fail_msg("cannot read %s (PROTO_GOLDEN_UPDATE=1 writes it)",
			 path);
	while (wlen && want[wlen - 1] == '\n')
		want[--wlen] = '\0';
	if (strcmp(want, got) != 0)
		fail_msg("%s: expected\n%s\nbut got\n%s", name, want, got);
	/* Successes must be named ok_*, failures err_*: the case says which. */
	if (strncmp(name, "err_", 4) == 0)
		assert_true(strncmp(got, "error: ", 7) == 0);
	else
		assert_true(strncmp(got, "error: ", 7) != 0);
	free(want);
	free(got);
	free(input);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The case names (NAME of NAME.json), sorted. */
static size_t
golden_list(char **names, size_t max)
{
	DIR *d = opendir(GOLDEN_DIR);
	struct dirent *e;
	size_t n = 0, len;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			names[n++] = strndup(e->d_name, len - 5);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	return n;
}

/* --- helpers for the hand-written tests --- */

static struct vmdef *
parse_ok(const char *text, unsigned int flags)
{
	struct vmdef *def = NULL;
	char err[256] = "";
	int r;

	r = vmdef_from_string(text, strlen(text), flags, &def, err,
			      sizeof(err));
	if (r < 0)
		fail_msg("vmdef_from_string(%s) = %d: %s", text, r, err);
	return def;
}

static void
assert_parse_err(const char *text, unsigned int flags, const char *want)
{
	struct vmdef *def = NULL;
	char err[256] = "";
	int r;

	r = vmdef_from_string(text, strlen(text), flags, &def, err,
			      sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_null(def);
	if (strcmp(err, want) != 0)
		fail_msg("expected \"%s\", got \"%s\" for %s", want, err, text);
}

static void
assert_update_err(struct vmdef *def, const char *changes, const char *want)
{
	json_t *j = json_loads(changes, 0, NULL);
	char before[8192], *b, *a, err[256] = "";
	int r;

	assert_non_null(j);
	b = canonical_text(def);
	snprintf(before, sizeof(before), "%s", b);
	r = vmdef_update(def, j, err, sizeof(err));
	json_decref(j);
	assert_int_equal(r, -EINVAL);
	if (strcmp(err, want) != 0)
		fail_msg("expected \"%s\", got \"%s\" for %s", want, err,
			 changes);
	/* A failed update leaves the definition exactly as it was. */
	a = canonical_text(def);
	assert_string_equal(a, before);
	free(a);
	free(b);
}

static void
update_ok(struct vmdef *def, const char *changes)
{
	json_t *j = json_loads(changes, 0, NULL);
	char err[256] = "";
	int r;

	assert_non_null(j);
	r = vmdef_update(def, j, err, sizeof(err));
	json_decref(j);
	if (r < 0)
		fail_msg("vmdef_update(%s) = %d: %s", changes, r, err);
}

static const char update_base[] =
	"{\"name\":\"web1\",\"kernel\":\"/k\",\"vcpus\":2,\"memory\":\"1G\","
	"\"disks\":[{\"path\":\"/d/a\",\"limits\":{\"ops_per_sec\":100,"
	"\"ops_burst\":200}},{\"path\":\"/d/b\"}],"
	"\"nics\":[{\"tap\":\"t0\"}],"
	"\"resources\":{\"cpu_weight\":50,\"memory_limit\":\"2G\"}}";

static void
test_update_resources(void **state)
{
	struct vmdef *def = parse_ok(update_base, 0);

	(void)state;
	update_ok(def, "{\"resources\":{\"cpu_quota\":1.5,"
		  "\"cpu_pin\":[\"0\",\"1-2\"],\"device_cpus\":\"3\"}}");
	/* Members not given keep their values. */
	assert_int_equal(def->resources.cpu_weight, 50);
	assert_int_equal(def->resources.memory_limit, 2ULL << 30);
	assert_int_equal(def->resources.cpu_quota_milli, 1500);
	assert_int_equal(def->resources.nr_cpu_pin, 2);
	assert_true(cpulist_has(&def->resources.cpu_pin[1], 2));
	assert_false(cpulist_has(&def->resources.cpu_pin[1], 0));
	assert_true(def->resources.has_device_cpus);

	/* null unsets one member; the others stay. */
	update_ok(def, "{\"resources\":{\"cpu_weight\":null,"
		  "\"cpu_pin\":null}}");
	assert_int_equal(def->resources.cpu_weight, 0);
	assert_null(def->resources.cpu_pin);
	assert_int_equal(def->resources.nr_cpu_pin, 0);
	assert_int_equal(def->resources.cpu_quota_milli, 1500);

	/* null for the whole object unsets everything. */
	update_ok(def, "{\"resources\":null}");
	assert_int_equal(def->resources.cpu_quota_milli, 0);
	assert_int_equal(def->resources.memory_limit, 0);
	assert_false(def->resources.has_device_cpus);

	/* An empty change is fine and changes nothing. */
	update_ok(def, "{}");
	assert_int_equal(def->vcpus, 2);
	vmdef_free(def);
}

static void
test_update_limits(void **state)
{
	struct vmdef *def = parse_ok(update_base, 0);

	(void)state;
	update_ok(def, "{\"disks\":[{},{\"limits\":{\"bytes_per_sec\":\"50M\"}}],"
		  "\"nics\":[{\"limits\":{\"tx_bytes_per_sec\":1000}}]}");
	assert_int_equal(def->disks[0].limits.ops.rate, 100);
	assert_int_equal(def->disks[0].limits.ops.burst, 200);
	assert_int_equal(def->disks[1].limits.bytes.rate, 50ULL << 20);
	assert_int_equal(def->nics[0].limits.tx_bytes.rate, 1000);
	assert_string_equal(def->disks[1].path, "/d/b");

	/* Merge: the burst stays when only the rate changes. */
	update_ok(def, "{\"disks\":[{\"limits\":{\"ops_per_sec\":300}}]}");
	assert_int_equal(def->disks[0].limits.ops.rate, 300);
	assert_int_equal(def->disks[0].limits.ops.burst, 200);

	/* 0 and null unset; "limits": null unsets them all. */
	update_ok(def, "{\"disks\":[{\"limits\":{\"ops_burst\":0}},"
		  "{\"limits\":null}]}");
	assert_int_equal(def->disks[0].limits.ops.burst, 0);
	assert_int_equal(def->disks[0].limits.ops.rate, 300);
	assert_int_equal(def->disks[1].limits.bytes.rate, 0);
	vmdef_free(def);
}

static void
test_update_errors(void **state)
{
	struct vmdef *def = parse_ok(update_base, 0);

	(void)state;
	assert_update_err(def, "[]", "changes: must be an object");
	assert_update_err(def, "{\"memory\":\"2G\"}",
			  "memory: cannot be changed on a running VM");
	assert_update_err(def, "{\"name\":\"web2\"}",
			  "name: cannot be changed on a running VM");
	assert_update_err(def, "{\"memroy\":\"2G\"}",
			  "memroy: unknown field");
	assert_update_err(def, "{\"disks\":[{\"path\":\"/d/c\"}]}",
			  "disks[0].path: cannot be changed on a running VM");
	assert_update_err(def, "{\"nics\":[{\"mac\":\"52:54:00:00:00:01\"}]}",
			  "nics[0].mac: cannot be changed on a running VM");
	assert_update_err(def, "{\"disks\":[{\"sise\":1}]}",
			  "disks[0].sise: unknown field");
	assert_update_err(def, "{\"disks\":[{},{},{}]}",
			  "disks[2]: no such disk (the VM has 2)");
	assert_update_err(def, "{\"nics\":[{},{}]}",
			  "nics[1]: no such NIC (the VM has 1)");
	assert_update_err(def, "{\"disks\":null}", "disks: must be an array");
	/* Checked on the merged result: removing the rate under a burst. */
	assert_update_err(def, "{\"disks\":[{\"limits\":{\"ops_per_sec\":0}}]}",
			  "disks[0].limits.ops_burst: requires ops_per_sec");
	assert_update_err(def, "{\"resources\":{\"memory_limit\":\"512M\"}}",
			  "resources.memory_limit: must be at least memory (1G)");
	assert_update_err(def, "{\"resources\":{\"cpu_quota\":3}}",
			  "resources.cpu_quota: must be at most vcpus (2)");
	assert_update_err(def, "{\"resources\":{\"cpu_pin\":[\"0\"]}}",
			  "resources.cpu_pin: must have one entry per vCPU (2, not 1)");
	/*
	 * An error late in the changes undoes the earlier parts: resources
	 * would have been fine, the NIC is not.
	 */
	assert_update_err(def, "{\"resources\":{\"cpu_weight\":9000},"
			  "\"nics\":[{\"limits\":{\"rx_bytes_burst\":1}}]}",
			  "nics[0].limits.rx_bytes_burst: requires rx_bytes_per_sec");
	assert_int_equal(def->resources.cpu_weight, 50);
	vmdef_free(def);
}

static char tmpdir[64];

static int
files_setup(void **state)
{
	char path[128];
	int fd;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_proto_vmdef.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(path, sizeof(path), "%s/vmlinuz", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || write(fd, "k", 1) != 1)
		return -1;
	close(fd);
	snprintf(path, sizeof(path), "%s/disk.raw", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	snprintf(path, sizeof(path), "%s/ro.raw", tmpdir);
	fd = open(path, O_CREAT | O_WRONLY, 0444);
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	if (mkfifo(path, 0600) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/dir", tmpdir);
	return mkdir(path, 0700);
}

static int
files_teardown(void **state)
{
	static const char *const names[] = {
		"vmlinuz", "disk.raw", "ro.raw", "fifo",
	};
	char path[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/dir", tmpdir);
	rmdir(path);
	rmdir(tmpdir);
	return 0;
}

static void
test_check_files(void **state)
{
	char text[1024];
	struct vmdef *def;
	char err[256];

	(void)state;
	/* Good files pass with the flag, missing ones only without it. */
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
		 "[{\"path\":\"%s/disk.raw\"},{\"path\":\"/dev/null\"}]}",
		 tmpdir, tmpdir);
	def = parse_ok(text, 0);
	vmdef_free(def);
	assert_parse_err(text, VMDEF_CHECK_FILES,
			 "disks[1].path: not a regular file or block device");

	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
		 "[{\"path\":\"%s/disk.raw\"}]}", tmpdir, tmpdir);
	def = parse_ok(text, VMDEF_CHECK_FILES);
	assert_int_equal(vmdef_check_files(def, err, sizeof(err)), 0);
	vmdef_free(def);

	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/nope\"}", tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "kernel: no such file");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz/x\"}", tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "kernel: no such file");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/dir\"}", tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "kernel: not a regular file");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\","
		 "\"initrd\":\"%s/fifo\"}", tmpdir, tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "initrd: not a regular file");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"firmware\":\"%s/missing.bin\"}", tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "firmware: no such file");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
		 "[{\"path\":\"%s/disk.raw\"},{\"path\":\"%s/fifo\"}]}",
		 tmpdir, tmpdir, tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES,
			 "disks[1].path: not a regular file or block device");
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
		 "[{\"path\":\"%s/gone.raw\"}]}", tmpdir, tmpdir);
	assert_parse_err(text, VMDEF_CHECK_FILES, "disks[0].path: no such file");

	/*
	 * A file we may only read: fine for a readonly disk, refused for a
	 * writable one (root can write anything, so only checked as a user).
	 */
	snprintf(text, sizeof(text),
		 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
		 "[{\"path\":\"%s/ro.raw\",\"readonly\":true}]}",
		 tmpdir, tmpdir);
	def = parse_ok(text, VMDEF_CHECK_FILES);
	vmdef_free(def);
	if (geteuid() != 0) {
		snprintf(text, sizeof(text),
			 "{\"name\":\"a\",\"kernel\":\"%s/vmlinuz\",\"disks\":"
			 "[{\"path\":\"%s/ro.raw\"}]}", tmpdir, tmpdir);
		assert_parse_err(text, VMDEF_CHECK_FILES,
				 "disks[0].path: permission denied "
				 "(it must be readable and writable)");
	}
}

static void
test_dup_free(void **state)
{
	struct vmdef *def, *copy;
	char *a, *b;

	(void)state;
	vmdef_free(NULL);
	def = parse_ok("{\"name\":\"x\",\"kernel\":\"/k\",\"initrd\":\"/i\","
		       "\"cmdline\":\"quiet\",\"firmware\":\"/f\",\"vcpus\":2,"
		       "\"disks\":[{\"path\":\"/d/1\"},{\"path\":\"/d/2\"}],"
		       "\"resources\":{\"cpu_pin\":[\"1\",\"2\"]}}", 0);
	copy = vmdef_dup(def);
	assert_non_null(copy);
	/* Deep: no pointer is shared. */
	assert_ptr_not_equal(copy->kernel, def->kernel);
	assert_ptr_not_equal(copy->disks[1].path, def->disks[1].path);
	assert_ptr_not_equal(copy->resources.cpu_pin, def->resources.cpu_pin);
	a = canonical_text(def);
	vmdef_free(def);
	b = canonical_text(copy);
	assert_string_equal(a, b);
	free(a);
	free(b);
	vmdef_free(copy);
}

static void
test_struct_values(void **state)
{
	struct vmdef *def;

	(void)state;
	def = parse_ok("{\"name\":\"n\",\"kernel\":\"/k\",\"memory\":\"3G\","
		       "\"nics\":[{\"tap\":\"tap0\",\"mac\":\"52:54:00:0A:0b:0C\"}],"
		       "\"vsock\":{\"cid\":7},\"restart\":{\"policy\":\"always\"},"
		       "\"disks\":[{\"path\":\"/x\",\"serial\":\"S N\","
		       "\"limits\":{\"bytes_per_sec\":\"1M\",\"ops_burst\":5,"
		       "\"ops_per_sec\":1}}]}", 0);
	assert_int_equal(def->memory, 3ULL << 30);
	assert_int_equal(def->vcpus, 1);
	assert_true(def->nics[0].has_mac);
	assert_int_equal(def->nics[0].mac[3], 0x0a);
	assert_int_equal(def->nics[0].mac[5], 0x0c);
	assert_true(def->has_vsock);
	assert_int_equal(def->vsock_cid, 7);
	assert_int_equal(def->restart.policy, VMDEF_RESTART_ALWAYS);
	assert_int_equal(def->restart.max_restarts, 5);
	assert_int_equal(def->restart.window_sec, 60);
	assert_string_equal(def->disks[0].serial, "S N");
	assert_int_equal(def->disks[0].limits.bytes.rate, 1 << 20);
	assert_int_equal(def->disks[0].limits.ops.burst, 5);
	assert_int_equal(def->console_history, 64 << 10);
	assert_null(def->initrd);
	vmdef_free(def);
}

static void
test_helpers(void **state)
{
	uint8_t mac[6] = { 9, 9, 9, 9, 9, 9 };
	char buf[18], err[8];
	struct vmdef *def = NULL;
	json_t *j;

	(void)state;
	assert_true(vmdef_name_valid("a"));
	assert_true(vmdef_name_valid("Web-1.prod_x"));
	assert_false(vmdef_name_valid(""));
	assert_false(vmdef_name_valid(NULL));
	assert_false(vmdef_name_valid(".hidden"));
	assert_false(vmdef_name_valid("_x"));
	assert_false(vmdef_name_valid("a/b"));
	assert_false(vmdef_name_valid("a b"));
	assert_false(vmdef_name_valid("caf\xc3\xa9"));
	assert_true(vmdef_name_valid(
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij123"));
	assert_false(vmdef_name_valid(
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234"));

	assert_int_equal(vmdef_mac_parse("52:54:00:Ab:cD:ef", mac), 0);
	vmdef_mac_format(mac, buf);
	assert_string_equal(buf, "52:54:00:ab:cd:ef");
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:cd:e", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:cd:efa", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52:54:00:ab:cd:eg", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse("52:54:00-ab:cd:ef", mac), -EINVAL);
	assert_int_equal(vmdef_mac_parse(NULL, mac), -EINVAL);
	/* Not written on failure. */
	assert_int_equal(mac[5], 0xef);

	assert_string_equal(vmdef_restart_policy_name(VMDEF_RESTART_ON_FAILURE),
			    "on-failure");
	assert_null(vmdef_restart_policy_name(VMDEF_RESTART_MAX));

	/* A short error buffer truncates; NULL with 0 is allowed. */
	assert_int_equal(vmdef_from_string("{}", 2, 0, &def, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "name: r");
	assert_int_equal(vmdef_from_string("{}", 2, 0, &def, NULL, 0), -EINVAL);
	assert_null(def);

	/* A key with a NUL byte or control characters, built in code. */
	j = json_pack("{s:s,s:s}", "name", "a", "kernel", "/k");
	assert_non_null(j);
	assert_int_equal(json_object_set_new(j, "bad\nkey", json_true()), 0);
	{
		char e2[64];

		assert_int_equal(vmdef_from_json(j, 0, &def, e2, sizeof(e2)),
				 -EINVAL);
		/* Scrubbed for a one-line log. */
		assert_string_equal(e2, "bad?key: unknown field");
	}
	json_decref(j);
	j = json_pack("{s:s}", "kernel", "/k");
	assert_int_equal(json_object_set_new(j, "name",
					     json_stringn("a\0b", 3)), 0);
	{
		char e2[200];

		assert_int_equal(vmdef_from_json(j, 0, &def, e2, sizeof(e2)),
				 -EINVAL);
		assert_true(strncmp(e2, "name: must be", 13) == 0);
	}
	json_decref(j);
}

int
main(void)
{
	static char *names[GOLDEN_MAX];
	static struct CMUnitTest golden[GOLDEN_MAX];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_update_resources),
		cmocka_unit_test(test_update_limits),
		cmocka_unit_test(test_update_errors),
		cmocka_unit_test_setup_teardown(test_check_files, files_setup,
						files_teardown),
		cmocka_unit_test(test_dup_free),
		cmocka_unit_test(test_struct_values),
		cmocka_unit_test(test_helpers),
	};
	size_t n, i;
	int fails;

	n = golden_list(names, GOLDEN_MAX);
	if (n < 30) {
		fprintf(stderr, "only %zu golden cases in %s (run from the "
			"repository root)\n", n, GOLDEN_DIR);
		return 1;
	}
	for (i = 0; i < n; i++) {
		golden[i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_golden_case,
			.initial_state = names[i],
		};
	}
	fails = _cmocka_run_group_tests("vmdef_golden", golden, n, NULL, NULL);
	fails += cmocka_run_group_tests(tests, NULL, NULL);
	for (i = 0; i < n; i++)
		free(names[i]);
	return fails;
}
