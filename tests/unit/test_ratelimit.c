/* SPDX-License-Identifier: MIT */
/*
 * The token buckets of ratelimit.c on an injected clock (plain numbers of
 * nanoseconds): the initial burst, exact waits ((N - k) / rate rounded up
 * to the nanosecond, and nothing lost to rounding over thousands of
 * requests), long idle capped at the burst, clocks jumping backwards and
 * far forwards, requests larger than the bucket paid back as debt, rate
 * changes on the fly (up, down, to and from unlimited), overflow edges at
 * rates of 2^63 and requests of 2^64 - 1, the bytes/ops pair (both or
 * neither, the later wait) and its statistics, and the limits check.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "ratelimit.h"

#define NS	RATELIMIT_NSEC
#define MS	1000000ULL
#define MAXR	RATELIMIT_MAX

/* ceil(a * 1e9 / rate) in 128 bits: the reference the code must meet. */
static uint64_t
ref_ns(uint64_t units, uint64_t rate)
{
	unsigned __int128 n = (unsigned __int128)units * NS;

	return (uint64_t)((n + rate - 1) / rate);
}

/* --- One bucket ---------------------------------------------------------- */

static void
test_init(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	ratelimit_bucket_init(&b, 1000, 100, 5);
	assert_int_equal(b.rate, 1000);
	assert_int_equal(b.burst, 100);
	assert_int_equal(ratelimit_bucket_level(&b), 100);
	assert_int_equal(b.last_ns, 5);
	assert_true(ratelimit_bucket_limited(&b));
	/* Burst 0: one second's worth. */
	ratelimit_bucket_init(&b, 1234, 0, 0);
	assert_int_equal(b.burst, 1234);
	assert_int_equal(ratelimit_bucket_level(&b), 1234);
	/* Rate 0: unlimited, whatever the burst. */
	ratelimit_bucket_init(&b, 0, 77, 0);
	assert_false(ratelimit_bucket_limited(&b));
	assert_int_equal(b.burst, 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	/* Above the maximum: clamped. */
	ratelimit_bucket_init(&b, UINT64_MAX, UINT64_MAX, 0);
	assert_int_equal(b.rate, MAXR);
	assert_int_equal(b.burst, MAXR);
}

static void
test_burst(void **state)
{
	struct ratelimit_bucket b;
	int i;

	(void)state;
	/* 1000/s, burst 100: a hundred single units go at once, the next
	 * waits exactly 1 ms, then goes. */
	ratelimit_bucket_init(&b, 1000, 100, 0);
	for (i = 0; i < 100; i++)
		assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 0);
	assert_int_equal(ratelimit_bucket_level(&b), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 1 * MS);
	/* Asking did not take anything. */
	assert_int_equal(ratelimit_bucket_level(&b), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 1 * MS - 1), 1);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 1 * MS), 0);
	assert_int_equal(ratelimit_bucket_level(&b), 0);
	/* One request of the whole burst. */
	ratelimit_bucket_init(&b, 1000, 100, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 0), 100 * MS);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 100 * MS), 0);
	/* Zero units always go, even from an empty bucket. */
	assert_int_equal(ratelimit_bucket_take(&b, 0, 100 * MS), 0);
	assert_int_equal(ratelimit_bucket_level(&b), 0);
}

static void
test_exact_wait(void **state)
{
	static const uint64_t rates[] = { 1, 3, 7, 1000, 999983,
					  1000000007ULL, 3000000000ULL,
					  (1ULL << 40) + 1, MAXR };
	struct ratelimit_bucket b;
	uint64_t t, w, k, n, r;
	unsigned int i;

	(void)state;
	/* N units with k in the bucket: exactly (N - k) / rate, rounded up. */
	ratelimit_bucket_init(&b, 1000, 1000, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 700, 0), 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 500, 0), 200 * MS);
	assert_int_equal(ratelimit_bucket_wait(&b, 301, 0), 1 * MS);
	assert_int_equal(ratelimit_bucket_wait(&b, 300, 0), 0);
	/* Rounded up: 1 unit at 3/s is 333333333.33 ns -> 333333334. */
	ratelimit_bucket_init(&b, 3, 10, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 10, 0), 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), 333333334);
	/* One nanosecond short: the refill holds 0.999999999 units. */
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 333333333), 1);
	assert_int_equal(b.frac, 999999999);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 333333334), 0);
	/* The 2e-9 units left over count: the next unit is due at
	 * ceil(2e9 / 3) = 666666667 from the start, not 333333334 later. */
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 333333334), 333333333);
	assert_int_equal(ratelimit_bucket_wait(&b, 2, 333333334),
			 ref_ns(3, 3) - 333333334);

	/* Full at 333333334 ns (1.000000002 units): the 2e-9 above the
	 * burst of 1 are dropped, so the next unit is a full 1/3 s later. */
	ratelimit_bucket_init(&b, 3, 1, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 333333334);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 333333334), 0);
	assert_int_equal(b.frac, 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 333333334), 333333334);

	/*
	 * Exactness over a long run at many rates: empty the bucket at 0,
	 * then take one unit (or n units) each time the wait says; unit k
	 * must go at exactly ceil(k * 1e9 / rate), so nothing is lost or
	 * gained to rounding however often the clock is read.
	 */
	for (i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
		r = rates[i];
		for (n = 1; n <= 3; n += 2) {
			/* One unit of room above n, and room for what one
			 * nanosecond brings at the highest rates, so the
			 * cap never cuts the refill (a full bucket drops
			 * what would overflow it, fractions too: that is
			 * checked below). */
			uint64_t burst = n + 1 + 2 * (r / NS);

			ratelimit_bucket_init(&b, r, burst, 0);
			assert_int_equal(ratelimit_bucket_take(&b, burst, 0),
					 0);
			t = 0;
			for (k = n; k <= 3000; k += n) {
				w = ratelimit_bucket_take(&b, n, t);
				if (w) {
					t += w;
					assert_int_equal(
						ratelimit_bucket_take(&b, n, t),
						0);
				}
				if (t != ref_ns(k, r))
					fail_msg("rate %llu: unit %llu went at "
						 "%llu, expected %llu",
						 (unsigned long long)r,
						 (unsigned long long)k,
						 (unsigned long long)t,
						 (unsigned long long)
						 ref_ns(k, r));
			}
		}
	}
}

static void
test_late_caller(void **state)
{
	struct ratelimit_bucket b;
	uint64_t t = 0, last = 10 * NS / 3700000 * 3700000;
	uint64_t went = 0;

	(void)state;
	/*
	 * A caller that comes back later than told (timer slack) loses
	 * nothing as long as the bucket has room: the refill is counted
	 * from the last reading, not from the moment it was due. 100/s,
	 * burst 10, polled every 3.7 ms for 10 s: 10 + 1000 units.
	 */
	ratelimit_bucket_init(&b, 100, 10, 0);
	for (t = 0; t <= last; t += 3700000)
		while (ratelimit_bucket_take(&b, 1, t) == 0)
			went++;
	/* The refill by the last poll: floor(last * 100 / 1e9) = 999. */
	assert_int_equal(went, 10 + last * 100 / NS);
	assert_int_equal(went, 10 + 999);
}

static void
test_long_idle(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	ratelimit_bucket_init(&b, 10, 5, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 5, 0), 0);
	/* A million seconds later: 5, not ten million. */
	ratelimit_bucket_refill(&b, 1000000 * NS);
	assert_int_equal(ratelimit_bucket_level(&b), 5);
	assert_int_equal(b.frac, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 5, 1000000 * NS), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 1000000 * NS), NS / 10);
	/* Idle while in debt pays the debt, and then fills to the burst. */
	ratelimit_bucket_init(&b, 10, 5, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 50, 0), 0);
	assert_int_equal(ratelimit_bucket_level(&b), -45);
	ratelimit_bucket_refill(&b, 4 * NS);
	assert_int_equal(ratelimit_bucket_level(&b), -5);
	ratelimit_bucket_refill(&b, 3600 * NS);
	assert_int_equal(ratelimit_bucket_level(&b), 5);
}

static void
test_clock_jumps(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	/* Backwards: ignored. 100/s, burst 10, emptied at 10 s. */
	ratelimit_bucket_init(&b, 100, 10, 10 * NS);
	assert_int_equal(ratelimit_bucket_take(&b, 10, 10 * NS), 0);
	ratelimit_bucket_refill(&b, 5 * NS);
	assert_int_equal(ratelimit_bucket_level(&b), 0);
	assert_int_equal(b.last_ns, 10 * NS);
	/* From 5 s, a unit is due at 10 s + 10 ms: the wait says so. */
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 5 * NS),
			 5 * NS + 10 * MS);
	/* Back at 10 s: the span 5..10 s is not credited a second time. */
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 10 * NS), 10 * MS);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 10 * NS + 10 * MS), 0);
	/* Backwards to 0 on a bucket in debt: no negative refill either. */
	assert_int_equal(ratelimit_bucket_take(&b, 0, 0), 0);
	ratelimit_bucket_refill(&b, 0);
	assert_int_equal(ratelimit_bucket_level(&b), 0);

	/* Forwards to the end of time: capped at the burst, no overflow. */
	ratelimit_bucket_init(&b, 100, 10, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 10, 0), 0);
	ratelimit_bucket_refill(&b, UINT64_MAX);
	assert_int_equal(ratelimit_bucket_level(&b), 10);
	assert_int_equal(b.last_ns, UINT64_MAX);
	/* And the clock can come back from there without harm. */
	assert_int_equal(ratelimit_bucket_take(&b, 10, 7), 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 7), UINT64_MAX);
	/* The same at the highest rate. */
	ratelimit_bucket_init(&b, MAXR, MAXR, 0);
	assert_int_equal(ratelimit_bucket_take(&b, MAXR, 0), 0);
	ratelimit_bucket_refill(&b, UINT64_MAX);
	assert_true(b.level == (__int128)MAXR);
	assert_int_equal(ratelimit_bucket_level(&b), INT64_MAX);
}

static void
test_larger_than_bucket(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	/* 100/s, burst 10. A full bucket lets 25 go and owes 15. */
	ratelimit_bucket_init(&b, 100, 10, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 25, 0), 0);
	assert_int_equal(ratelimit_bucket_level(&b), -15);
	/* The debt is paid before anything else goes: 16 units of time. */
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 160 * MS);
	/* Another big one waits for a full bucket: 25 units of time. */
	assert_int_equal(ratelimit_bucket_take(&b, 25, 0), 250 * MS);
	assert_int_equal(ratelimit_bucket_take(&b, 25, 250 * MS - 1), 1);
	assert_int_equal(ratelimit_bucket_take(&b, 25, 250 * MS), 0);
	assert_int_equal(ratelimit_bucket_level(&b), -15);
	/* A bucket one short of full waits for that one unit, not more. */
	ratelimit_bucket_init(&b, 100, 10, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1000, 0), 10 * MS);
	assert_int_equal(ratelimit_bucket_take(&b, 1000, 10 * MS), 0);
	assert_int_equal(ratelimit_bucket_level(&b), -990);
	/* It never deadlocks: repeated, each goes one bucket-fill after the
	 * debt is paid; over 100 s at 100/s, 10000 units move (+ burst). */
	{
		uint64_t t = 0, moved = 0, w;

		ratelimit_bucket_init(&b, 100, 10, 0);
		while (t < 100 * NS) {
			w = ratelimit_bucket_take(&b, 37, t);
			if (w == 0)
				moved += 37;
			t += w;
		}
		/* The last one went at < 100 s and left a debt of < 37. */
		assert_true(moved >= 10000 && moved <= 10000 + 10 + 37);
	}
}

static void
test_rate_change(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	/* Up: the level is kept. 100/s, emptied at 0, 50 by 0.5 s. */
	ratelimit_bucket_init(&b, 100, 100, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 0), 0);
	ratelimit_bucket_set(&b, 1000, 1000, 500 * MS);
	assert_int_equal(ratelimit_bucket_level(&b), 50);
	assert_int_equal(b.burst, 1000);
	assert_int_equal(ratelimit_bucket_wait(&b, 100, 500 * MS), 50 * MS);
	/* Down: capped at the new burst. */
	ratelimit_bucket_init(&b, 1000, 1000, 0);
	ratelimit_bucket_set(&b, 10, 20, 0);
	assert_int_equal(ratelimit_bucket_level(&b), 20);
	assert_int_equal(ratelimit_bucket_take(&b, 20, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 100 * MS);
	/* Burst 0 on a change: one second's worth of the new rate. */
	ratelimit_bucket_set(&b, 40, 0, 0);
	assert_int_equal(b.burst, 40);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 25 * MS);
	/* What accrued at the old rate is credited at the change. */
	ratelimit_bucket_init(&b, 100, 100, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 0), 0);
	ratelimit_bucket_set(&b, 1, 100, 100 * MS);
	assert_int_equal(ratelimit_bucket_level(&b), 10);
	/* ... and the fraction carried: 5 ms at 100/s is half a unit; at
	 * the new rate of 1/s, the other half takes 0.5 s. */
	ratelimit_bucket_init(&b, 100, 100, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 100, 0), 0);
	ratelimit_bucket_set(&b, 1, 100, 5 * MS);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 5 * MS), 500 * MS);
	/* Debt is kept across a change. */
	ratelimit_bucket_init(&b, 100, 10, 0);
	assert_int_equal(ratelimit_bucket_take(&b, 25, 0), 0);
	ratelimit_bucket_set(&b, 1000, 10, 0);
	assert_int_equal(ratelimit_bucket_level(&b), -15);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), 16 * MS);
	/* To unlimited: everything goes, at any size. */
	ratelimit_bucket_set(&b, 0, 0, 0);
	assert_false(ratelimit_bucket_limited(&b));
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 0), 0);
	/* From unlimited: a full bucket at the new limit, whatever went
	 * through while unlimited. */
	ratelimit_bucket_set(&b, 50, 5, 2 * NS);
	assert_int_equal(ratelimit_bucket_level(&b), 5);
	assert_int_equal(b.last_ns, 2 * NS);
	assert_int_equal(ratelimit_bucket_take(&b, 5, 2 * NS), 0);
	assert_int_equal(ratelimit_bucket_take(&b, 1, 2 * NS), 20 * MS);
	/* From unlimited with the clock behind its latest reading: the
	 * latest reading stays (no refill of the span twice). */
	ratelimit_bucket_init(&b, 0, 0, 10 * NS);
	ratelimit_bucket_set(&b, 10, 1, 3 * NS);
	assert_int_equal(b.last_ns, 10 * NS);
	/* Unlimited to unlimited stays unlimited. */
	ratelimit_bucket_init(&b, 0, 0, 0);
	ratelimit_bucket_set(&b, 0, 0, 1);
	assert_false(ratelimit_bucket_limited(&b));
}

static void
test_overflow_edges(void **state)
{
	struct ratelimit_bucket b;

	(void)state;
	/* 2^63 units/s, burst 2^63: all of it goes, then 1 unit takes
	 * 1e9 / 2^63 ns, rounded up to 1. */
	ratelimit_bucket_init(&b, MAXR, MAXR, 0);
	assert_int_equal(ratelimit_bucket_take(&b, MAXR, 0), 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), 1);
	assert_int_equal(ratelimit_bucket_wait(&b, MAXR, 0), NS);
	/* One nanosecond at 2^63/s is 9223372036.854775808 units. */
	ratelimit_bucket_refill(&b, 1);
	assert_int_equal(ratelimit_bucket_level(&b), 9223372036LL);
	assert_int_equal(b.frac, 854775808);
	/* A request of 2^64 - 1 at that rate: debt of 2^63 - 1. */
	ratelimit_bucket_init(&b, MAXR, MAXR, 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	assert_true(b.level == (__int128)MAXR - (__int128)UINT64_MAX);
	assert_int_equal(ratelimit_bucket_level(&b), -(int64_t)(MAXR - 1));
	/* Paying back (2^63 - 1) + 1 units at 2^63/s: exactly 1 s. */
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), NS);
	/* The deepest debt: rate 1, burst 1, a request of 2^64 - 1. The
	 * wait (about 1.8e28 ns) saturates; the level reads saturated. */
	ratelimit_bucket_init(&b, 1, 1, 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	assert_int_equal(ratelimit_bucket_level(&b), INT64_MIN);
	assert_true(b.level == (__int128)1 - (__int128)UINT64_MAX);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), UINT64_MAX);
	/* A whole 2^64 - 1 ns of idle pays about 1.8e10 units of it. */
	ratelimit_bucket_refill(&b, UINT64_MAX);
	assert_true(b.level == (__int128)1 - (__int128)UINT64_MAX +
		    (__int128)(UINT64_MAX / NS));
	assert_int_equal(b.frac, UINT64_MAX % NS);
	/* Rate 1, a request at the maximum burst. */
	ratelimit_bucket_init(&b, 1, MAXR, 0);
	assert_int_equal(ratelimit_bucket_take(&b, MAXR, 0), 0);
	assert_int_equal(ratelimit_bucket_wait(&b, 1, 0), NS);
	assert_int_equal(ratelimit_bucket_wait(&b, 18446744073ULL, 0),
			 18446744073ULL * NS);
	assert_int_equal(ratelimit_bucket_wait(&b, 18446744074ULL, 0),
			 UINT64_MAX);
	/* A huge idle at the highest rate from the deepest debt. */
	ratelimit_bucket_init(&b, MAXR, 1, 0);
	assert_int_equal(ratelimit_bucket_take(&b, UINT64_MAX, 0), 0);
	ratelimit_bucket_refill(&b, UINT64_MAX);
	assert_int_equal(ratelimit_bucket_level(&b), 1);
}

/* --- Bytes and operations ------------------------------------------------ */

static void
test_pair(void **state)
{
	struct ratelimit_limits l = { .bytes_per_sec = 1000,
				      .bytes_burst = 1000,
				      .ops_per_sec = 10, .ops_burst = 2 };
	struct ratelimit_limits got;
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, &l, 0);
	assert_true(ratelimit_limited(&rl));
	ratelimit_get_limits(&rl, &got);
	assert_memory_equal(&got, &l, sizeof(l));
	assert_int_equal(ratelimit_take(&rl, 500, 1, 0), 0);
	assert_int_equal(ratelimit_take(&rl, 100, 1, 0), 0);
	/* Ops empty: 100 ms; bytes would go. Neither is taken. */
	assert_int_equal(ratelimit_take(&rl, 100, 1, 0), 100 * MS);
	assert_int_equal(ratelimit_bucket_level(&rl.bytes), 400);
	assert_int_equal(ratelimit_bucket_level(&rl.ops), 0);
	/* Both short: the later of the two. At 100 ms: bytes 500, ops 1;
	 * 900 bytes need 400 more (400 ms), the op is there. */
	assert_int_equal(ratelimit_take(&rl, 900, 1, 100 * MS), 400 * MS);
	assert_int_equal(ratelimit_bucket_level(&rl.ops), 1);
	/* 2 ops need 1 more (100 ms), 600 bytes need 100 (100 ms) */
	assert_int_equal(ratelimit_take(&rl, 600, 2, 100 * MS), 100 * MS);
	assert_int_equal(ratelimit_take(&rl, 600, 2, 200 * MS), 0);
	assert_int_equal(ratelimit_bucket_level(&rl.bytes), 0);
	assert_int_equal(ratelimit_bucket_level(&rl.ops), 0);
	/* A FLUSH-like request (0 bytes, 1 op) is held by ops only. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 300 * MS), 0);
	/* Bytes only: ops unlimited. */
	l.ops_per_sec = l.ops_burst = 0;
	ratelimit_set(&rl, &l, 300 * MS);
	assert_int_equal(ratelimit_take(&rl, 200, 1000000, 400 * MS), 0);
	assert_int_equal(ratelimit_take(&rl, 100, 1000000, 400 * MS),
			 100 * MS);
	/* All off: everything goes. */
	memset(&l, 0, sizeof(l));
	ratelimit_set(&rl, &l, 400 * MS);
	assert_false(ratelimit_limited(&rl));
	assert_int_equal(ratelimit_take(&rl, UINT64_MAX, UINT64_MAX, 0), 0);
	ratelimit_get_limits(&rl, &got);
	assert_memory_equal(&got, &l, sizeof(l));
	/* Burst 0 reads back as the effective burst. */
	l.ops_per_sec = 500;
	ratelimit_set(&rl, &l, 400 * MS);
	ratelimit_get_limits(&rl, &got);
	assert_int_equal(got.ops_burst, 500);
	assert_int_equal(got.bytes_per_sec, 0);
}

static void
test_pair_stats(void **state)
{
	struct ratelimit_limits l = { .ops_per_sec = 10, .ops_burst = 1 };
	struct ratelimit_stats st;
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, &l, 0);
	ratelimit_get_stats(&rl, 0, &st);
	assert_int_equal(st.throttled_ns, 0);
	assert_int_equal(st.delayed, 0);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 0), 0);
	/* Told to wait at 0, asked again at 40 ms (still waiting): one
	 * delayed request, its time running. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 0), 100 * MS);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 40 * MS), 60 * MS);
	ratelimit_get_stats(&rl, 70 * MS, &st);
	assert_int_equal(st.delayed, 1);
	assert_int_equal(st.throttled_ns, 70 * MS);
	/* It goes at 100 ms: 100 ms of throttled time, and it stops. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 100 * MS), 0);
	ratelimit_get_stats(&rl, 500 * MS, &st);
	assert_int_equal(st.delayed, 1);
	assert_int_equal(st.throttled_ns, 100 * MS);
	/* A request that went at once counts nothing. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 300 * MS), 0);
	ratelimit_get_stats(&rl, 300 * MS, &st);
	assert_int_equal(st.delayed, 1);
	/* A second one waits 100 ms from 300 ms, then is cancelled (a
	 * device reset) at 350 ms: 50 ms more. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 300 * MS), 100 * MS);
	ratelimit_cancel(&rl, 350 * MS);
	ratelimit_get_stats(&rl, 900 * MS, &st);
	assert_int_equal(st.delayed, 2);
	assert_int_equal(st.throttled_ns, 150 * MS);
	ratelimit_cancel(&rl, 950 * MS);	/* none waiting: nothing */
	ratelimit_get_stats(&rl, 990 * MS, &st);
	assert_int_equal(st.throttled_ns, 150 * MS);
	/* A waiting request whose limit is lifted goes, its wait ended. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 1 * NS), 0);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 1 * NS), 100 * MS);
	memset(&l, 0, sizeof(l));
	ratelimit_set(&rl, &l, 1 * NS + 10 * MS);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 1 * NS + 10 * MS), 0);
	ratelimit_get_stats(&rl, 5 * NS, &st);
	assert_int_equal(st.delayed, 3);
	assert_int_equal(st.throttled_ns, 160 * MS);
	/* The sequence count is even (no writer inside). */
	assert_int_equal(rl.seq % 2, 0);
}

static void
test_pair_late_timer(void **state)
{
	struct ratelimit_limits l = { .ops_per_sec = 100, .ops_burst = 1 };
	struct ratelimit_bucket lone;
	struct ratelimit rl;
	uint64_t t = 0, w, k;

	(void)state;
	/*
	 * 100/s, a bucket of 1, and a timer that fires 0.2 ms late every
	 * time: each request is taken as of when it was due, so request k
	 * is due at exactly k x 10 ms, and 100 go in 1 s, not 98.
	 */
	ratelimit_init(&rl, &l, 0);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 0), 0);
	for (k = 1; k <= 100; k++) {
		w = ratelimit_take(&rl, 0, 1, t);
		if (t + w != k * 10 * MS)
			fail_msg("request %llu due at %llu ns, expected %llu",
				 (unsigned long long)k,
				 (unsigned long long)(t + w),
				 (unsigned long long)(k * 10 * MS));
		t += w + 200000;
		assert_int_equal(ratelimit_take(&rl, 0, 1, t), 0);
	}
	/* A lone bucket asked at the late times loses the 0.2 ms each. */
	ratelimit_bucket_init(&lone, 100, 1, 0);
	assert_int_equal(ratelimit_bucket_take(&lone, 1, 0), 0);
	t = 0;
	for (k = 1; k <= 100; k++) {
		t += ratelimit_bucket_take(&lone, 1, t) + 200000;
		assert_int_equal(ratelimit_bucket_take(&lone, 1, t), 0);
	}
	assert_int_equal(t, 100 * (10 * MS + 200000));

	/* Lowered while it waited: not covered at its old due time, so it
	 * waits on at the new rate, from now. */
	ratelimit_init(&rl, &l, 0);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 0), 0);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 0), 10 * MS);
	l.ops_per_sec = 10;
	ratelimit_set(&rl, &l, 5 * MS);	/* half a unit at the old rate */
	/* At 10 ms: 0.5 + 0.05 units; 0.45 more at 10/s take 45 ms. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 10 * MS), 45 * MS);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 56 * MS), 0);
	/* Taken as of 55 ms, its due time: the next is due at 155 ms.
	 * Raised while that one waits, asked before its old due time: it
	 * goes when the new rate covers it. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 56 * MS), 99 * MS);
	l.ops_per_sec = 1000;
	ratelimit_set(&rl, &l, 60 * MS);
	/* 0.05 units by 60 ms at 10/s; 0.95 more at 1000/s: 0.95 ms. */
	assert_int_equal(ratelimit_take(&rl, 0, 1, 60 * MS), 950000);
	assert_int_equal(ratelimit_take(&rl, 0, 1, 60 * MS + 950000), 0);
}

static void
test_limits_check(void **state)
{
	struct ratelimit_limits l = { 0 };
	char err[160];

	(void)state;
	assert_int_equal(ratelimit_limits_check(&l, "disk 'a.img'", err,
						sizeof(err)), 0);
	assert_string_equal(err, "");
	l = (struct ratelimit_limits){ 10000000, 1000, 500, 0 };
	assert_int_equal(ratelimit_limits_check(&l, "x", err, sizeof(err)), 0);
	l = (struct ratelimit_limits){ .bytes_per_sec = MAXR,
				       .bytes_burst = MAXR,
				       .ops_per_sec = MAXR };
	assert_int_equal(ratelimit_limits_check(&l, "x", NULL, 0), 0);
	l.bytes_per_sec = MAXR + 1;
	assert_int_equal(ratelimit_limits_check(&l, "disk 'a.img'", err,
						sizeof(err)), -EINVAL);
	assert_string_equal(err, "disk 'a.img': bytes_per_sec "
			    "9223372036854775809 is above the maximum "
			    "9223372036854775808");
	l.bytes_per_sec = 1;
	l.ops_burst = UINT64_MAX;
	assert_int_equal(ratelimit_limits_check(&l, "", err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "ops_burst 18446744073709551615 is above "
			    "the maximum 9223372036854775808");
	l = (struct ratelimit_limits){ .bytes_burst = 4096 };
	assert_int_equal(ratelimit_limits_check(&l, "nic 'tap0' rx", err,
						sizeof(err)), -EINVAL);
	assert_string_equal(err, "nic 'tap0' rx: bytes_burst 4096 is given "
			    "without bytes_per_sec");
	l = (struct ratelimit_limits){ .bytes_per_sec = 1, .ops_burst = 3 };
	assert_int_equal(ratelimit_limits_check(&l, NULL, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "ops_burst 3 is given without ops_per_sec");
	/* A short buffer is fine. */
	assert_int_equal(ratelimit_limits_check(&l, "x", err, 4), -EINVAL);
	assert_string_equal(err, "x: ");
}

static void
test_now(void **state)
{
	struct timespec ts;
	uint64_t a, b, c;

	(void)state;
	a = ratelimit_now();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	b = (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
	c = ratelimit_now();
	assert_true(a <= b && b <= c);
	assert_true(c - a < NS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_exact_wait),
		cmocka_unit_test(test_late_caller),
		cmocka_unit_test(test_long_idle),
		cmocka_unit_test(test_clock_jumps),
		cmocka_unit_test(test_larger_than_bucket),
		cmocka_unit_test(test_rate_change),
		cmocka_unit_test(test_overflow_edges),
		cmocka_unit_test(test_pair),
		cmocka_unit_test(test_pair_stats),
		cmocka_unit_test(test_pair_late_timer),
		cmocka_unit_test(test_limits_check),
		cmocka_unit_test(test_now),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
