/* SPDX-License-Identifier: MIT */
/* Size strings ("512M") and CPU lists ("0-3,6"): parsing and formatting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proto/cpulist.h"
#include "proto/size.h"

static void
test_size_parse(void **state)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
		{ "0", 0 },
		{ "1", 1 },
		{ "4096", 4096 },
		{ "64k", 64 << 10 },
		{ "64K", 64 << 10 },
		{ "512M", 512ULL << 20 },
		{ "512m", 512ULL << 20 },
		{ "4G", 4ULL << 30 },
		{ "1T", 1ULL << 40 },
		{ "3P", 3ULL << 50 },
		{ "15E", 15ULL << 60 },
		{ "0G", 0 },
		{ "007M", 7ULL << 20 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ULL << 30 },
	};
	static const char *const bad[] = {
		"", "M", "-1", "+1", " 1", "1 ", "1.5G", "1GB", "1MiB", "1B",
		"1X", "0x10", "1MM", "1,000", "\xc3\xa9",
	};
	static const char *const range[] = {
		"18446744073709551616", "99999999999999999999999", "16E",
		"17179869184G", "16777216T",
	};
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		if (size_parse(ok[i].s, &v) != 0)
			fail_msg("size_parse(\"%s\") failed", ok[i].s);
		assert_int_equal(v, ok[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		if (size_parse(bad[i], &v) != -EINVAL)
			fail_msg("size_parse(\"%s\") accepted", bad[i]);
		assert_int_equal(v, 12345);
	}
	for (i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		v = 12345;
		if (size_parse(range[i], &v) != -ERANGE)
			fail_msg("size_parse(\"%s\") is not -ERANGE", range[i]);
		assert_int_equal(v, 12345);
	}
	assert_int_equal(size_parse(NULL, &v), -EINVAL);
}

static void
test_size_format(void **state)
{
	static const struct {
		uint64_t v;
		const char *s;
	} cases[] = {
		{ 0, "0" },
		{ 1, "1" },
		{ 1000, "1000" },
		{ 1024, "1K" },
		{ 1536, "1536" },
		{ 1536 << 10, "1536K" },
		{ 3ULL << 29, "1536M" },
		{ 512ULL << 20, "512M" },
		{ 1ULL << 40, "1T" },
		{ 1ULL << 63, "8E" },
		{ UINT64_MAX, "18446744073709551615" },
		{ UINT64_MAX - 1023, "18014398509481983K" },
	};
	char buf[SIZE_STR_MAX];
	uint64_t back;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(size_format(cases[i].v, buf, sizeof(buf)), 0);
		assert_string_equal(buf, cases[i].s);
		assert_int_equal(size_parse(buf, &back), 0);
		assert_int_equal(back, cases[i].v);
	}
	assert_int_equal(size_format(512ULL << 20, buf, 4), -ENOSPC);
	assert_int_equal(size_format(512ULL << 20, buf, 5), 0);
	assert_int_equal(size_format(1, NULL, 0), -ENOSPC);
}

static void
test_cpulist_parse(void **state)
{
	struct cpulist cl;
	char buf[64];

	(void)state;
	assert_int_equal(cpulist_parse("0-3,6", &cl), 0);
	assert_int_equal(cpulist_count(&cl), 5);
	assert_true(cpulist_has(&cl, 0));
	assert_true(cpulist_has(&cl, 3));
	assert_false(cpulist_has(&cl, 4));
	assert_true(cpulist_has(&cl, 6));
	assert_false(cpulist_has(&cl, 5000));
	assert_int_equal(cpulist_last(&cl), 6);

	assert_int_equal(cpulist_parse("1023", &cl), 0);
	assert_int_equal(cpulist_count(&cl), 1);
	assert_int_equal(cpulist_last(&cl), 1023);
	assert_int_equal(cpulist_parse("0-1023", &cl), 0);
	assert_int_equal(cpulist_count(&cl), 1024);
	/* Overlaps and any order are a union. */
	assert_int_equal(cpulist_parse("7,0-2,1-3,3,63-64", &cl), 0);
	assert_int_equal(cpulist_format(&cl, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0-3,7,63-64");
}

static void
test_cpulist_errors(void **state)
{
	static const char *const bad[] = {
		"", ",", "1,", ",1", "1,,2", "3-1", "1-", "-1", "a", "1 ",
		" 1", "1-2-3", "0x1", "+1", "1:2", "1-2,a",
	};
	static const char *const range[] = {
		"1024", "0-1024", "1023-5000", "99999999999999999999",
		"0,2000",
	};
	struct cpulist cl, before;
	size_t i;

	(void)state;
	cpulist_zero(&cl);
	cpulist_set(&cl, 5);
	before = cl;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cpulist_parse(bad[i], &cl) != -EINVAL)
			fail_msg("cpulist_parse(\"%s\") is not -EINVAL", bad[i]);
		assert_true(cpulist_equal(&cl, &before));
	}
	for (i = 0; i < sizeof(range) / sizeof(range[0]); i++) {
		if (cpulist_parse(range[i], &cl) != -ERANGE)
			fail_msg("cpulist_parse(\"%s\") is not -ERANGE",
				 range[i]);
		assert_true(cpulist_equal(&cl, &before));
	}
	/* Syntax errors win over range errors anywhere in the list. */
	assert_int_equal(cpulist_parse("5000,x", &cl), -EINVAL);
	assert_int_equal(cpulist_parse(NULL, &cl), -EINVAL);
	assert_int_equal(cpulist_set(&cl, 1024), -ERANGE);
}

static void
test_cpulist_format(void **state)
{
	struct cpulist cl, back;
	char buf[4096];
	unsigned int cpu;

	(void)state;
	cpulist_zero(&cl);
	assert_int_equal(cpulist_format(&cl, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(cpulist_last(&cl), -ENOENT);
	assert_int_equal(cpulist_format(&cl, buf, 0), -ENOSPC);

	/* The worst case, every other CPU, fits in 4096 bytes. */
	for (cpu = 0; cpu < CPULIST_MAX; cpu += 2)
		assert_int_equal(cpulist_set(&cl, cpu), 0);
	assert_int_equal(cpulist_format(&cl, buf, sizeof(buf)), 0);
	assert_true(strlen(buf) < sizeof(buf));
	assert_int_equal(strncmp(buf, "0,2,4,", 6), 0);
	assert_int_equal(cpulist_parse(buf, &back), 0);
	assert_true(cpulist_equal(&cl, &back));
	assert_int_equal(cpulist_count(&back), CPULIST_MAX / 2);

	assert_int_equal(cpulist_parse("0-3,6", &cl), 0);
	assert_int_equal(cpulist_format(&cl, buf, 5), -ENOSPC);
	assert_int_equal(cpulist_format(&cl, buf, 6), 0);
	assert_string_equal(buf, "0-3,6");
}

static void
test_cpulist_cpuset(void **state)
{
	struct cpulist cl;
	cpu_set_t set;

	(void)state;
	assert_int_equal(cpulist_parse("1,64-65,1023", &cl), 0);
	cpulist_to_cpuset(&cl, &set);
	assert_int_equal(CPU_COUNT(&set), 4);
	assert_true(CPU_ISSET(1, &set));
	assert_true(CPU_ISSET(64, &set));
	assert_true(CPU_ISSET(65, &set));
	assert_true(CPU_ISSET(1023, &set));
	assert_false(CPU_ISSET(0, &set));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parse),
		cmocka_unit_test(test_size_format),
		cmocka_unit_test(test_cpulist_parse),
		cmocka_unit_test(test_cpulist_errors),
		cmocka_unit_test(test_cpulist_format),
		cmocka_unit_test(test_cpulist_cpuset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
