/* SPDX-License-Identifier: MIT */
/*
 * Token buckets: exact refill from a caller-supplied clock, exact waits.
 * See ratelimit.h for the rules.
 *
 * The level is a signed 128-bit count of whole units plus a fraction in
 * units of 1e-9 (frac): a refill of elapsed ns at rate units/s is
 * elapsed * rate / 1e9 units, whose remainder stays in frac. The product
 * of a 64-bit time and a rate of at most 2^63 fits 128 bits, and so does
 * a level between burst - UINT64_MAX (the deepest debt one request can
 * make) and burst.
 */
#include "ratelimit.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

uint64_t
ratelimit_now(void)
{
	struct timespec ts;

	/* Cannot fail for CLOCK_MONOTONIC with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * RATELIMIT_NSEC + (uint64_t)ts.tv_nsec;
}

static uint64_t
ratelimit_clamp(uint64_t v)
{
	return v > RATELIMIT_MAX ? RATELIMIT_MAX : v;
}

/* --- One bucket ---------------------------------------------------------- */

void
ratelimit_bucket_init(struct ratelimit_bucket *b, uint64_t rate,
		      uint64_t burst, uint64_t now)
{
	rate = ratelimit_clamp(rate);
	burst = ratelimit_clamp(burst);
	b->rate = rate;
	b->burst = rate ? (burst ? burst : rate) : 0;
	b->level = b->burst;
	b->frac = 0;
	b->last_ns = now;
}

void
ratelimit_bucket_refill(struct ratelimit_bucket *b, uint64_t now)
{
	unsigned __int128 nano, add;

	/* Backwards (or no) time: nothing, and last_ns stays the latest
	 * reading, so the span is not credited again when the clock
	 * catches up. */
	if (now <= b->last_ns)
		return;
	nano = (unsigned __int128)(now - b->last_ns);
	b->last_ns = now;
	if (!b->rate || b->level >= (__int128)b->burst) {
		b->frac = 0;
		return;
	}
	/* At most (2^64 - 1) * 2^63 + 1e9: fits. */
	nano = nano * b->rate + b->frac;
	add = nano / RATELIMIT_NSEC;
	/* add < 2^98 and level >= -2^64: the sum fits a signed 128 bits. */
	if (b->level + (__int128)add >= (__int128)b->burst) {
		b->level = b->burst;
		b->frac = 0;
		return;
	}
	b->level += (__int128)add;
	b->frac = (uint64_t)(nano % RATELIMIT_NSEC);
}

void
ratelimit_bucket_set(struct ratelimit_bucket *b, uint64_t rate,
		     uint64_t burst, uint64_t now)
{
	uint64_t last;

	if (!b->rate) {
		/* Nothing was counted while unlimited: start full. */
		last = b->last_ns > now ? b->last_ns : now;
		ratelimit_bucket_init(b, rate, burst, last);
		return;
	}
	/* What accrued at the old rate is the guest's. */
	ratelimit_bucket_refill(b, now);
	rate = ratelimit_clamp(rate);
	burst = ratelimit_clamp(burst);
	b->rate = rate;
	b->burst = rate ? (burst ? burst : rate) : 0;
	if (b->level >= (__int128)b->burst) {
		b->level = b->burst;
		b->frac = 0;
	}
}

uint64_t
ratelimit_bucket_wait(struct ratelimit_bucket *b, uint64_t n, uint64_t now)
{
	unsigned __int128 nano, ns;
	__int128 need;

	if (!b->rate || n == 0)
		return 0;
	ratelimit_bucket_refill(b, now);
	/* More than the bucket holds: a full bucket lets it go (into debt). */
	need = n < b->burst ? n : b->burst;
	if (b->level >= need)
		return 0;
	/*
	 * need - level <= 2^63 + 2^64, times 1e9 < 2^96; frac < 1e9 <=
	 * (need - level) * 1e9, so nano >= 1 and the wait is >= 1 ns.
	 */
	nano = (unsigned __int128)(need - b->level) * RATELIMIT_NSEC - b->frac;
	ns = (nano + b->rate - 1) / b->rate;
	/* A clock behind the latest reading: the refill resumes from there. */
	if (now < b->last_ns)
		ns += b->last_ns - now;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

void
ratelimit_bucket_consume(struct ratelimit_bucket *b, uint64_t n)
{
	if (b->rate)
		b->level -= (__int128)n;
}

uint64_t
ratelimit_bucket_take(struct ratelimit_bucket *b, uint64_t n, uint64_t now)
{
	uint64_t w = ratelimit_bucket_wait(b, n, now);

	if (w == 0)
		ratelimit_bucket_consume(b, n);
	return w;
}

int64_t
ratelimit_bucket_level(const struct ratelimit_bucket *b)
{
	if (b->level > INT64_MAX)
		return INT64_MAX;
	if (b->level < INT64_MIN)
		return INT64_MIN;
	return (int64_t)b->level;
}

/* --- Bytes and operations ------------------------------------------------ */

static int
ratelimit_check_one(uint64_t rate, uint64_t burst, const char *rname,
		    const char *bname, const char *what, char *err,
		    size_t errlen)
{
	const char *sep = what && what[0] ? ": " : "";

	if (!what)
		what = "";
	if (rate > RATELIMIT_MAX || burst > RATELIMIT_MAX) {
		if (err && errlen)
			snprintf(err, errlen, "%s%s%s %llu is above the "
				 "maximum %llu", what, sep,
				 rate > RATELIMIT_MAX ? rname : bname,
				 (unsigned long long)(rate > RATELIMIT_MAX ?
						      rate : burst),
				 (unsigned long long)RATELIMIT_MAX);
		return -EINVAL;
	}
	if (burst && !rate) {
		if (err && errlen)
			snprintf(err, errlen, "%s%s%s %llu is given without "
				 "%s", what, sep, bname,
				 (unsigned long long)burst, rname);
		return -EINVAL;
	}
	return 0;
}

int
ratelimit_limits_check(const struct ratelimit_limits *l, const char *what,
		       char *err, size_t errlen)
{
	int r;

	if (err && errlen)
		err[0] = '\0';
	r = ratelimit_check_one(l->bytes_per_sec, l->bytes_burst,
				"bytes_per_sec", "bytes_burst", what, err,
				errlen);
	if (r == 0)
		r = ratelimit_check_one(l->ops_per_sec, l->ops_burst,
					"ops_per_sec", "ops_burst", what, err,
					errlen);
	return r;
}

void
ratelimit_init(struct ratelimit *rl, const struct ratelimit_limits *l,
	       uint64_t now)
{
	ratelimit_bucket_init(&rl->bytes, l->bytes_per_sec, l->bytes_burst,
			      now);
	ratelimit_bucket_init(&rl->ops, l->ops_per_sec, l->ops_burst, now);
	rl->seq = 0;
	rl->wait_start_ns = RATELIMIT_NOT_WAITING;
	rl->throttled_ns = 0;
	rl->delayed = 0;
	rl->due_ns = 0;
}

void
ratelimit_set(struct ratelimit *rl, const struct ratelimit_limits *l,
	      uint64_t now)
{
	ratelimit_bucket_set(&rl->bytes, l->bytes_per_sec, l->bytes_burst,
			     now);
	ratelimit_bucket_set(&rl->ops, l->ops_per_sec, l->ops_burst, now);
}

void
ratelimit_get_limits(const struct ratelimit *rl, struct ratelimit_limits *ret)
{
	ret->bytes_per_sec = rl->bytes.rate;
	ret->bytes_burst = rl->bytes.burst;
	ret->ops_per_sec = rl->ops.rate;
	ret->ops_burst = rl->ops.burst;
}

/*
 * The counters change inside an odd sequence count. Only the owning
 * thread writes; the release fence orders the odd count before the new
 * values, the release store the values before the even count (pairs
 * with the reader's acquire load and fence).
 */
static void
ratelimit_stats_begin(struct ratelimit *rl)
{
	__atomic_store_n(&rl->seq, rl->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void
ratelimit_stats_end(struct ratelimit *rl)
{
	__atomic_store_n(&rl->seq, rl->seq + 1, __ATOMIC_RELEASE);
}

/* The waiting request goes or went away: its time is done. */
static void
ratelimit_end_wait(struct ratelimit *rl, uint64_t now)
{
	uint64_t start = rl->wait_start_ns;

	if (start == RATELIMIT_NOT_WAITING)
		return;
	ratelimit_stats_begin(rl);
	__atomic_store_n(&rl->throttled_ns, rl->throttled_ns +
			 (now > start ? now - start : 0), __ATOMIC_RELAXED);
	__atomic_store_n(&rl->wait_start_ns, RATELIMIT_NOT_WAITING,
			 __ATOMIC_RELAXED);
	ratelimit_stats_end(rl);
}

uint64_t
ratelimit_take(struct ratelimit *rl, uint64_t bytes, uint64_t ops,
	       uint64_t now)
{
	uint64_t wb, wo, w;

	/* Due already: take it as of when it was due (see ratelimit.h). If
	 * the limits changed meanwhile and it is not covered then, the
	 * buckets are simply asked again as of now. */
	if (rl->wait_start_ns != RATELIMIT_NOT_WAITING && rl->due_ns <= now &&
	    ratelimit_bucket_wait(&rl->bytes, bytes, rl->due_ns) == 0 &&
	    ratelimit_bucket_wait(&rl->ops, ops, rl->due_ns) == 0) {
		ratelimit_bucket_consume(&rl->bytes, bytes);
		ratelimit_bucket_consume(&rl->ops, ops);
		ratelimit_end_wait(rl, now);
		return 0;
	}
	wb = ratelimit_bucket_wait(&rl->bytes, bytes, now);
	wo = ratelimit_bucket_wait(&rl->ops, ops, now);
	if (wb == 0 && wo == 0) {
		ratelimit_bucket_consume(&rl->bytes, bytes);
		ratelimit_bucket_consume(&rl->ops, ops);
		ratelimit_end_wait(rl, now);
		return 0;
	}
	if (rl->wait_start_ns == RATELIMIT_NOT_WAITING) {
		ratelimit_stats_begin(rl);
		__atomic_store_n(&rl->wait_start_ns, now, __ATOMIC_RELAXED);
		__atomic_store_n(&rl->delayed, rl->delayed + 1,
				 __ATOMIC_RELAXED);
		ratelimit_stats_end(rl);
	}
	w = wb > wo ? wb : wo;
	rl->due_ns = w > UINT64_MAX - now ? UINT64_MAX : now + w;
	return w;
}

void
ratelimit_cancel(struct ratelimit *rl, uint64_t now)
{
	ratelimit_end_wait(rl, now);
}

void
ratelimit_get_stats(const struct ratelimit *rl, uint64_t now,
		    struct ratelimit_stats *ret)
{
	uint64_t s1, s2, start, done, delayed;

	do {
		s1 = __atomic_load_n(&rl->seq, __ATOMIC_ACQUIRE);
		start = __atomic_load_n(&rl->wait_start_ns, __ATOMIC_RELAXED);
		done = __atomic_load_n(&rl->throttled_ns, __ATOMIC_RELAXED);
		delayed = __atomic_load_n(&rl->delayed, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&rl->seq, __ATOMIC_RELAXED);
	} while ((s1 & 1) || s1 != s2);
	if (start != RATELIMIT_NOT_WAITING && now > start)
		done += now - start;
	ret->throttled_ns = done;
	ret->delayed = delayed;
}
