/* SPDX-License-Identifier: MIT */
/*
 * What vmctl prints for a result. Golden files: every
 * tests/unit/golden/vmctl/output/KIND_NAME.json is a result (or an event's
 * params, or daemon.info's result) and KIND_NAME.out the exact text its
 * formatter writes. KIND picks the formatter: list, info, stats, created,
 * deleted, state, updated, event, eventjson (--json events), version, json
 * (--json results). VMCTL_GOLDEN_UPDATE=1 rewrites the .out files (review
 * the diff!). After them: durations, byte counts, and write errors.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmctl/output.h"
#include "vmctl/vmctl.h"

#define GOLDEN_DIR "tests/unit/golden/vmctl/output"
#define GOLDEN_MAX 256

static int
fmt_event(FILE *f, json_t *v)
{
	return output_event(f, v, 0);
}

static int
fmt_event_json(FILE *f, json_t *v)
{
	return output_event(f, v, 1);
}

static const struct {
	const char *kind;
	output_fn fn;
} formatters[] = {
	{ "list", output_list },
	{ "info", output_info },
	{ "stats", output_stats },
	{ "created", output_created },
	{ "deleted", output_deleted },
	{ "state", output_state },
	{ "updated", output_updated },
	{ "event", fmt_event },
	{ "eventjson", fmt_event_json },
	{ "version", output_version },
	{ "json", output_json },
};

static char *
read_file(const char *path)
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
	if (buf)
		buf[n] = '\0';
	return buf;
}

static output_fn
formatter_of(const char *name)
{
	size_t i, len;

	for (i = 0; i < sizeof(formatters) / sizeof(formatters[0]); i++) {
		len = strlen(formatters[i].kind);
		if (strncmp(name, formatters[i].kind, len) == 0 &&
		    name[len] == '_')
			return formatters[i].fn;
	}
	fail_msg("%s: no formatter for this name (KIND_NAME)", name);
	return NULL;
}

static void
test_golden_case(void **state)
{
	const char *name = *state;
	char path[512], *input, *want, *got = NULL;
	json_error_t jerr;
	output_fn fn = formatter_of(name);
	size_t len = 0;
	json_t *j;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.json", GOLDEN_DIR, name);
	input = read_file(path);
	if (!input)
		fail_msg("cannot read %s", path);
	j = json_loads(input, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j)
		fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
	f = open_memstream(&got, &len);
	assert_non_null(f);
	assert_int_equal(fn(f, json_is_null(j) ? NULL : j), 0);
	fclose(f);
	json_decref(j);

	snprintf(path, sizeof(path), "%s/%s.out", GOLDEN_DIR, name);
	if (getenv("VMCTL_GOLDEN_UPDATE")) {
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(got, f);
		fclose(f);
	}
	want = read_file(path);
	if (!want)
		fail_msg("cannot read %s (VMCTL_GOLDEN_UPDATE=1 writes it)",
			 path);
	/* Exact, final newline included. */
	if (strcmp(want, got) != 0)
		fail_msg("%s: expected\n%s\nbut got\n%s", name, want, got);
	free(want);
	free(got);
	free(input);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

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

static void
test_duration(void **state)
{
	static const struct {
		uint64_t sec;
		const char *text;
	} cases[] = {
		{ 0, "0s" }, { 59, "59s" }, { 60, "1m00s" }, { 125, "2m05s" },
		{ 3599, "59m59s" }, { 3600, "1h00m" }, { 86399, "23h59m" },
		{ 86400, "1d00h" }, { 90000, "1d01h" },
		{ 400 * 86400 + 7200, "400d02h" },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		output_duration(cases[i].sec, buf, sizeof(buf));
		if (strcmp(buf, cases[i].text) != 0)
			fail_msg("output_duration(%llu): expected %s, got %s",
				 (unsigned long long)cases[i].sec,
				 cases[i].text, buf);
	}
}

static void
test_human_bytes(void **state)
{
	static const struct {
		uint64_t bytes;
		const char *text;
	} cases[] = {
		{ 0, "0" }, { 1023, "1023" }, { 1024, "1.0K" },
		{ 1536, "1.5K" }, { 1048575, "1.0M" }, { 2147483648ULL, "2.0G" },
		{ 2684354560ULL, "2.5G" }, { 1ULL << 40, "1.0T" },
		{ UINT64_MAX, "16.0E" },
	};
	char buf[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		output_human_bytes(cases[i].bytes, buf, sizeof(buf));
		if (strcmp(buf, cases[i].text) != 0)
			fail_msg("output_human_bytes(%llu): expected %s, got %s",
				 (unsigned long long)cases[i].bytes,
				 cases[i].text, buf);
	}
}

/* A formatter reports a stream it cannot write to. */
static void
test_write_error(void **state)
{
	json_t *r = json_pack("{s:[{s:s,s:s,s:i,s:s}]}", "vms", "name", "a",
			      "state", "stopped", "vcpus", 1, "memory", "64M");
	FILE *f = fopen("/dev/full", "w");

	(void)state;
	assert_non_null(r);
	if (!f) {
		json_decref(r);
		skip();
	}
	/* Unbuffered, so the error shows before fclose(). */
	setvbuf(f, NULL, _IONBF, 0);
	assert_int_equal(output_list(f, r), -EIO);
	assert_int_equal(output_json(f, r), -EIO);
	fclose(f);
	json_decref(r);
}

/* Whatever a daemon sends, the formatters print something and never crash. */
static void
test_odd_results(void **state)
{
	static const char *const odd[] = {
		"{}", "{\"vms\":3}", "{\"vms\":[1,null,{}]}",
		"{\"name\":7,\"definition\":[],\"last_exit\":{}}",
		"{\"cpu\":[],\"memory\":{\"current\":\"x\"},\"disks\":[3],"
		"\"nics\":{}}",
		"{\"definition\":{\"disks\":[{}],\"nics\":[{}],"
		"\"resources\":{\"cpu_pin\":[1,\"0\"]},\"restart\":{}}}",
	};
	output_fn fns[] = {
		output_list, output_info, output_stats, output_created,
		output_deleted, output_state, output_updated, output_version,
	};
	char *buf = NULL;
	size_t len = 0, i, k;
	json_t *j;
	FILE *f;

	(void)state;
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		j = json_loads(odd[i], 0, NULL);
		assert_non_null(j);
		for (k = 0; k < sizeof(fns) / sizeof(fns[0]); k++) {
			f = open_memstream(&buf, &len);
			assert_int_equal(fns[k](f, j), 0);
			fclose(f);
			free(buf);
			buf = NULL;
		}
		json_decref(j);
	}
}

int
main(void)
{
	static char *names[GOLDEN_MAX];
	static struct CMUnitTest golden[GOLDEN_MAX];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_human_bytes),
		cmocka_unit_test(test_write_error),
		cmocka_unit_test(test_odd_results),
	};
	size_t n, i;
	int fails;

	n = golden_list(names, GOLDEN_MAX);
	if (n < 10) {
		fprintf(stderr, "expected golden cases in %s, found %zu "
			"(run from the top of the tree)\n", GOLDEN_DIR, n);
		return 1;
	}
	for (i = 0; i < n; i++)
		golden[i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_golden_case,
			.initial_state = names[i],
		};
	fails = _cmocka_run_group_tests("vmctl_output_golden", golden, n,
					NULL, NULL);
	fails += cmocka_run_group_tests(tests, NULL, NULL);
	for (i = 0; i < n; i++)
		free(names[i]);
	return fails ? 1 : 0;
}
