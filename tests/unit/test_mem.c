/* SPDX-License-Identifier: MIT */
/* Guest RAM layout around the PCI hole and the checked accessors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "layout.h"
#include "mem.h"

static void
test_layout_small(void **state)
{
	struct guest_mem m;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 512 * MiB), 0);
	assert_int_equal(m.nr_regions, 1);
	assert_int_equal(m.regions[0].gpa, 0);
	assert_int_equal(m.regions[0].size, 512 * MiB);
	assert_int_equal(guest_mem_top(&m), 512 * MiB);
}

static void
test_layout_split(void **state)
{
	struct guest_mem m;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 3 * GiB), 0);
	assert_int_equal(m.nr_regions, 1);
	assert_int_equal(guest_mem_layout(&m, 4 * GiB), 0);
	assert_int_equal(m.nr_regions, 2);
	assert_int_equal(m.regions[0].size, LAYOUT_PCI_HOLE_START);
	assert_int_equal(m.regions[1].gpa, 4 * GiB);
	assert_int_equal(m.regions[1].size, 1 * GiB);
	assert_int_equal(m.regions[1].offset, LAYOUT_PCI_HOLE_START);
	assert_int_equal(guest_mem_top(&m), 5 * GiB);
	assert_int_equal(guest_mem_layout(&m, 0), -EINVAL);
	assert_int_equal(guest_mem_layout(&m, 4097), -EINVAL);
}

static void
test_ptr_checks(void **state)
{
	struct guest_mem m;
	uint8_t buf[16];

	(void)state;
	assert_int_equal(guest_mem_init(&m, 4 * MiB), 0);
	assert_non_null(guest_mem_ptr(&m, 0, 4 * MiB));
	assert_non_null(guest_mem_ptr(&m, 4 * MiB - 1, 1));
	assert_null(guest_mem_ptr(&m, 4 * MiB - 1, 2));
	assert_null(guest_mem_ptr(&m, 4 * MiB, 1));
	assert_null(guest_mem_ptr(&m, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&m, 16, UINT64_MAX));
	assert_int_equal(guest_mem_write(&m, 0x1000, "hello", 5), 0);
	assert_int_equal(guest_mem_read(&m, 0x1000, buf, 5), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(guest_mem_write(&m, 4 * MiB - 2, "abc", 3), -EFAULT);
	guest_mem_destroy(&m);
	guest_mem_destroy(&m);
}

static void
test_split_mapping(void **state)
{
	struct guest_mem m;
	uint8_t *lo, *hi;

	(void)state;
	/* A sparse mapping: 4 GiB of address space, touched in two pages. */
	if (guest_mem_init(&m, 4 * GiB) < 0)
		skip();
	lo = guest_mem_ptr(&m, LAYOUT_PCI_HOLE_START - 1, 1);
	hi = guest_mem_ptr(&m, 4 * GiB, 1);
	assert_non_null(lo);
	assert_non_null(hi);
	/* The hole is not RAM, and the high region follows the low one in
	 * the mapping. */
	assert_null(guest_mem_ptr(&m, LAYOUT_PCI_HOLE_START, 1));
	assert_null(guest_mem_ptr(&m, LAYOUT_PCI_HOLE_START - 1, 2));
	assert_ptr_equal(hi, lo + 1);
	assert_null(guest_mem_ptr(&m, 5 * GiB, 1));
	guest_mem_destroy(&m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_small),
		cmocka_unit_test(test_layout_split),
		cmocka_unit_test(test_ptr_checks),
		cmocka_unit_test(test_split_mapping),
	};

	return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
