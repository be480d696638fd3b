/* SPDX-License-Identifier: MIT */
/* The address-range bus: registration, dispatch, unowned accesses. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"

struct rec {
	unsigned int calls;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint8_t last[8];
};

static void
rec_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
       bool is_write)
{
	struct rec *r = opaque;

	r->calls++;
	r->offset = offset;
	r->len = len;
	r->is_write = is_write;
	if (is_write)
		memcpy(r->last, data, len);
	else
		memset(data, 0x5a, len);
}

static void
test_dispatch_offsets(void **state)
{
	struct bus b;
	struct rec a = { 0 }, c = { 0 };
	uint8_t d[8] = { 1, 2, 3, 4 };

	(void)state;
	assert_int_equal(bus_init(&b, "test"), 0);
	assert_int_equal(bus_register(&b, 0x3f8, 8, rec_io, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x1000, 0x100, rec_io, &c, "c"), 0);
	assert_true(bus_dispatch(&b, 0x3fb, d, 1, true));
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.offset, 3);
	assert_int_equal(a.last[0], 1);
	assert_true(bus_dispatch(&b, 0x10fc, d, 4, false));
	assert_int_equal(c.offset, 0xfc);
	assert_int_equal(d[0], 0x5a);
	/* Straddling the end of a range is not owned. */
	assert_false(bus_dispatch(&b, 0x10fe, d, 4, false));
	assert_int_equal(c.calls, 1);
	bus_destroy(&b);
}

static void
test_overlap_refused(void **state)
{
	struct bus b;
	struct rec a = { 0 };

	(void)state;
	bus_init(&b, "test");
	assert_int_equal(bus_register(&b, 0x100, 0x10, rec_io, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x10f, 1, rec_io, &a, "b"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf0, 0x11, rec_io, &a, "b"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x0, 0x200, rec_io, &a, "b"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf0, 0x10, rec_io, &a, "b"), 0);
	assert_int_equal(bus_register(&b, 0x110, 0x10, rec_io, &a, "b"), 0);
	assert_int_equal(bus_register(&b, 0x200, 0, rec_io, &a, "z"), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, rec_io, &a, "w"),
			 -EINVAL);
	assert_int_equal(bus_unregister(&b, 0x100), 0);
	assert_int_equal(bus_unregister(&b, 0x100), -ENOENT);
	assert_int_equal(bus_register(&b, 0x100, 0x10, rec_io, &a, "a"), 0);
	bus_destroy(&b);
}

static void
test_unowned_reads_ones(void **state)
{
	struct bus b;
	uint8_t d[4] = { 0 };
	unsigned int i;

	(void)state;
	bus_init(&b, "test");
	assert_false(bus_dispatch(&b, 0x1234, d, 4, false));
	assert_int_equal(d[0], 0xff);
	assert_int_equal(d[3], 0xff);
	assert_false(bus_dispatch(&b, 0x1234, d, 2, true));
	assert_int_equal(bus_unowned_count(&b), 2);
	/* Many distinct addresses: counted, the log table stays bounded. */
	for (i = 0; i < 1000; i++)
		bus_dispatch(&b, 0x10000 + i, d, 1, false);
	assert_int_equal(bus_unowned_count(&b), 1002);
	assert_true(b.nr_logged <= BUS_UNOWNED_LOGGED_MAX);
	bus_destroy(&b);
}

static void
test_many_ranges_sorted(void **state)
{
	struct bus b;
	struct rec r[64];
	uint8_t d[1];
	int i;

	(void)state;
	memset(r, 0, sizeof(r));
	bus_init(&b, "test");
	/* Insert in a scrambled order; lookups must still find each. */
	for (i = 0; i < 64; i++) {
		int k = (i * 37) % 64;

		assert_int_equal(bus_register(&b, 0x1000 * (uint64_t)k, 0x10,
					      rec_io, &r[k], "r"), 0);
	}
	for (i = 0; i < 64; i++) {
		assert_true(bus_dispatch(&b, 0x1000 * (uint64_t)i + 5, d, 1,
					 false));
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].offset, 5);
		assert_false(bus_dispatch(&b, 0x1000 * (uint64_t)i + 0x10, d,
					  1, false));
	}
	bus_destroy(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_offsets),
		cmocka_unit_test(test_overlap_refused),
		cmocka_unit_test(test_unowned_reads_ones),
		cmocka_unit_test(test_many_ranges_sorted),
	};

	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
