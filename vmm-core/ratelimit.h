/* SPDX-License-Identifier: MIT */
/*
 * Token buckets for device I/O limits (virtio-blk now, virtio-net next).
 *
 * A bucket holds up to burst units (bytes, operations, packets) and is
 * refilled at rate units per second from a monotonic clock that the
 * caller passes in (CLOCK_MONOTONIC nanoseconds from ratelimit_now() in a
 * device, anything in a test). Asked about a request of n units, it says
 * "go now" (and takes them) or "wait exactly T ns": T is the instant at
 * which the refill covers the request, rounded up to the nanosecond, so a
 * device arms a timer for exactly then instead of rechecking every so
 * often (a fixed recheck interval is what makes Firecracker's and Cloud
 * Hypervisor's limiters deliver far less than configured when the refill
 * time is short).
 *
 * Rules:
 * - Rate 0 is unlimited: every request goes, nothing is counted.
 * - Burst 0 means one second's worth (burst = rate).
 * - A new bucket, and one that goes from unlimited to limited, is full.
 * - Refill is exact: fractions of a unit are carried from one refill to
 *   the next (in units of 1e-9), so no rate is lost to rounding however
 *   often the clock is read.
 * - Idle time fills the bucket up to burst and no further, however long
 *   it was; a forward clock jump is idle time, capped the same way.
 * - A clock that goes backwards is ignored: no refill until it passes the
 *   latest time seen again (nothing is refilled twice).
 * - A request of more than burst units goes once the bucket is full and
 *   takes the bucket into debt (a negative level), which later requests
 *   wait out: it is paid back, and it never waits for ever.
 * - A request of 0 units always goes.
 * - Changing rate or burst first credits the refill due at the old rate,
 *   then keeps the level (debt included), capped at the new burst.
 * - Arithmetic is 128-bit where it multiplies: rates and bursts up to
 *   RATELIMIT_MAX, requests up to UINT64_MAX units and idle times up to
 *   UINT64_MAX ns do not overflow; a wait longer than UINT64_MAX ns reads
 *   as UINT64_MAX.
 *
 * struct ratelimit pairs a bucket of bytes with a bucket of operations:
 * a request takes from both or from neither, and waits for the later of
 * the two. A request told to wait until T and asked about again at T + d
 * (the timer fired late: slack, scheduling) is taken as of T, when it was
 * due: with a small bucket, refill during d would otherwise overflow and
 * be lost on every request (at 100/s with a bucket of 1, 0.2 ms of
 * lateness costs 2% of the rate). That is the bucket's own history had
 * the request gone on time, so no window ever gets more than burst plus
 * rate times its length. It also counts the requests that had to wait
 * and the time they waited, for statistics.
 *
 * Threads: a bucket and a ratelimit belong to one thread (a device's I/O
 * thread); only ratelimit_get_stats() may be called from any other.
 */
#ifndef VMM_RATELIMIT_H
#define VMM_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_MAX		(1ULL << 63)	/* the largest rate, burst */
#define RATELIMIT_NSEC		1000000000ULL
#define RATELIMIT_NOT_WAITING	UINT64_MAX

struct ratelimit_bucket {
	uint64_t rate;		/* units per second; 0: unlimited */
	uint64_t burst;		/* units, >= 1 when limited */
	__int128 level;		/* units in the bucket; negative: debt */
	uint64_t frac;		/* and this many 1e-9 units, < 1e9 */
	uint64_t last_ns;	/* the latest clock reading seen */
};

/* Limits of a device (or one direction of one): 0 rates are unlimited. */
struct ratelimit_limits {
	uint64_t bytes_per_sec;
	uint64_t bytes_burst;	/* 0: bytes_per_sec */
	uint64_t ops_per_sec;
	uint64_t ops_burst;	/* 0: ops_per_sec */
};

struct ratelimit {
	struct ratelimit_bucket bytes;
	struct ratelimit_bucket ops;
	/*
	 * Statistics, read by ratelimit_get_stats() on other threads: the
	 * three counters change together under a sequence count (odd while
	 * they change), so a reader never sees a waiting request's time
	 * both as waiting and as done.
	 */
	uint64_t seq;
	/* When the request now waiting was first told to wait, or
	 * RATELIMIT_NOT_WAITING. */
	uint64_t wait_start_ns;
	uint64_t throttled_ns;	/* time finished requests waited */
	uint64_t delayed;	/* requests that had to wait */
	uint64_t due_ns;	/* when the waiting request may go */
};

struct ratelimit_stats {
	uint64_t throttled_ns;	/* including the request waiting now */
	uint64_t delayed;	/* requests told to wait at least once */
};

/* CLOCK_MONOTONIC in nanoseconds: the clock a device passes in. */
uint64_t ratelimit_now(void);

/* --- One bucket ---------------------------------------------------------- */

/*
 * A full bucket of rate units per second and burst units (0: rate) at
 * time now. Rate or burst above RATELIMIT_MAX are taken as RATELIMIT_MAX
 * (ratelimit_limits_check() refuses them with a message).
 */
void ratelimit_bucket_init(struct ratelimit_bucket *b, uint64_t rate,
			   uint64_t burst, uint64_t now);

/* New rate and burst at time now, keeping the level (see the rules). */
void ratelimit_bucket_set(struct ratelimit_bucket *b, uint64_t rate,
			  uint64_t burst, uint64_t now);

/* Credit the refill due at time now. */
void ratelimit_bucket_refill(struct ratelimit_bucket *b, uint64_t now);

/*
 * Refill up to now; then 0 when n units may go now (nothing taken), or
 * the nanoseconds from now until they may, >= 1.
 */
uint64_t ratelimit_bucket_wait(struct ratelimit_bucket *b, uint64_t n,
			       uint64_t now);

/* Take n units (after ratelimit_bucket_wait() said 0). */
void ratelimit_bucket_consume(struct ratelimit_bucket *b, uint64_t n);

/* ratelimit_bucket_wait(), and on 0 take the n units. */
uint64_t ratelimit_bucket_take(struct ratelimit_bucket *b, uint64_t n,
			       uint64_t now);

/* The whole units in the bucket, saturated to the int64_t range. */
int64_t ratelimit_bucket_level(const struct ratelimit_bucket *b);

static inline bool
ratelimit_bucket_limited(const struct ratelimit_bucket *b)
{
	return b->rate != 0;
}

/* --- Bytes and operations ------------------------------------------------ */

/*
 * 0 when l is acceptable; -EINVAL with a one-line message naming the
 * field in err (prefixed by what, e.g. "disk 'a.img'") when a rate or
 * burst is above RATELIMIT_MAX or a burst is given without its rate.
 */
int ratelimit_limits_check(const struct ratelimit_limits *l, const char *what,
			   char *err, size_t errlen);

/* Both buckets full at time now; no request waiting, counters zero. */
void ratelimit_init(struct ratelimit *rl, const struct ratelimit_limits *l,
		    uint64_t now);

/* New limits at time now, keeping the levels (ratelimit_bucket_set()). */
void ratelimit_set(struct ratelimit *rl, const struct ratelimit_limits *l,
		   uint64_t now);

/* The limits in force, with the effective bursts (a burst given as 0
 * reads as its rate; unlimited buckets read 0 and 0). */
void ratelimit_get_limits(const struct ratelimit *rl,
			  struct ratelimit_limits *ret);

/* Whether any of the two buckets limits. */
static inline bool
ratelimit_limited(const struct ratelimit *rl)
{
	return rl->bytes.rate || rl->ops.rate;
}

/*
 * A request of bytes and ops at time now: 0 when it goes (both taken),
 * else the nanoseconds until both buckets allow it (the later of the
 * two), nothing taken. The caller asks again for the same request when
 * that time has come (or the limits changed) until it goes, or calls
 * ratelimit_cancel(): the first "wait" counts the request as delayed and
 * starts its throttled time, the "go" ends it.
 */
uint64_t ratelimit_take(struct ratelimit *rl, uint64_t bytes, uint64_t ops,
			uint64_t now);

/* The waiting request went away (a device reset): end its throttled
 * time at now. No-op when none waits. */
void ratelimit_cancel(struct ratelimit *rl, uint64_t now);

/* Counters, the waiting request's time up to now included. Any thread. */
void ratelimit_get_stats(const struct ratelimit *rl, uint64_t now,
			 struct ratelimit_stats *ret);

#endif
