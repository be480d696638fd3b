/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng through the driver-side harness, as Linux's virtio-rng
 * driver would use it over virtio-pci: identity, buffers filled with
 * random bytes and their lengths, chained and indirect requests, the
 * per-request cap, zero-length requests, many requests in one go, the
 * rate limit, reset in the middle, and hostile requests (device-readable
 * buffers, addresses outside RAM) ending in NEEDS_RESET.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#include "helpers/virtio_harness.h"
#include "log.h"
#include "virtio/rng.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define RAM	(64ULL << 20)
#define TMO	2000
#define QSIZE	256
#define VEC_CFG	0
#define VEC_Q	1

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)

struct fix {
	struct vh_machine m;
	struct rng *rng;
	struct virtio_pci *vp;
	struct vh_dev d;
};

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	assert_int_equal(rng_new(&f->m.mem, &f->rng), 0);
	assert_int_equal(vh_machine_add(&f->m, rng_virtio(f->rng), &f->vp), 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	virtio_device_destroy(rng_virtio(f->rng));
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	rng_free(f->rng);
	free(f);
	return 0;
}

static void
bring_up(struct fix *f, uint64_t features)
{
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, features, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(d, 0, QSIZE, VEC_Q), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
}

/* Wait for the used entry of head; returns its length. */
static uint32_t
wait_used(struct fix *f, int head)
{
	uint16_t id;
	uint32_t len;

	if (!vh_queue_wait_used(&f->d.q[0], &id, &len, TMO))
		fail_msg("no used entry for head %d within %d ms", head, TMO);
	assert_int_equal(id, head);
	return len;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* One writable buffer of len bytes (followed by a 64-byte guard). */
static int
request(struct fix *f, uint32_t len, uint64_t *gpa)
{
	struct vh_buf b;

	*gpa = vh_alloc(&f->m, (uint64_t)len + 64, 64);
	assert_true(*gpa != 0);
	b = (struct vh_buf){ *gpa, len };
	return vh_queue_add(&f->d.q[0], &b, 0, 1, false);
}

static void
test_identity(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;

	assert_int_equal(d->vendor_id, 0x1af4);
	assert_int_equal(d->device_id, 0x1040 + VIRTIO_ID_RNG);
	assert_int_equal(d->subsys_id, VIRTIO_ID_RNG);
	assert_int_equal(d->class_code, 0xff0000);
	assert_int_equal(d->num_queues, 1);
	assert_false(d->device.present);	/* no config space */
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	/* Nothing of its own: only what the core offers. */
	assert_int_equal(d->device_features, F_V1 | F_EVT | F_IND);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2),
			 RNG_QUEUE_MAX);
	/* A limit that a maximal request could never fit is refused. */
	assert_int_equal(rng_set_rate(f->rng, 1000, RNG_MAX_REQUEST - 1),
			 -EINVAL);
	assert_int_equal(rng_set_rate(f->rng, 0, 0), 0);
}

static void
test_fill(void **state)
{
	struct fix *f = *state;
	struct rng_stats st;
	uint64_t a, b;
	uint8_t *pa, *pb;
	int ha, hb;

	bring_up(f, F_V1 | F_EVT | F_IND);
	ha = request(f, 64, &a);
	hb = request(f, 64, &b);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, ha), 64);
	assert_int_equal(wait_used(f, hb), 64);
	assert_true(vh_wait_irq(&f->d, VEC_Q, TMO) >= 1);
	pa = vh_ptr(&f->m, a, 128);
	pb = vh_ptr(&f->m, b, 128);
	/* 2^-512 for all zero; 2^-512 for equal by chance. */
	assert_false(all_zero(pa, 64));
	assert_false(all_zero(pb, 64));
	assert_memory_not_equal(pa, pb, 64);
	/* Not a byte past the buffer. */
	assert_true(all_zero(pa + 64, 64));
	assert_true(all_zero(pb + 64, 64));
	rng_get_stats(f->rng, &st);
	assert_int_equal(st.requests, 2);
	assert_int_equal(st.bytes, 128);
	/* No configuration interrupt: nothing went wrong. */
	assert_int_equal(vh_wait_irq(&f->d, VEC_CFG, 0), 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_chained(void **state)
{
	struct fix *f = *state;
	struct vh_buf b[3];
	uint64_t g = vh_alloc(&f->m, 4096, 64);
	uint8_t *p = vh_ptr(&f->m, g, 4096);
	int h;

	bring_up(f, F_V1 | F_IND);
	/* Three writable pieces, apart from each other: 10, 1 and 100. */
	b[0] = (struct vh_buf){ g, 10 };
	b[1] = (struct vh_buf){ g + 100, 1 };
	b[2] = (struct vh_buf){ g + 200, 100 };
	h = vh_queue_add(&f->d.q[0], b, 0, 3, false);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 111);
	assert_false(all_zero(p, 10));
	assert_false(all_zero(p + 200, 100));
	/* The gaps stay untouched. */
	assert_true(all_zero(p + 10, 90));
	assert_true(all_zero(p + 101, 99));
	assert_true(all_zero(p + 300, 4096 - 300));

	/* The same through an indirect table. */
	memset(p, 0, 4096);
	b[0] = (struct vh_buf){ g + 1000, 32 };
	b[1] = (struct vh_buf){ g + 2000, 32 };
	h = vh_queue_add(&f->d.q[0], b, 0, 2, true);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 64);
	assert_false(all_zero(p + 1000, 32));
	assert_false(all_zero(p + 2000, 32));
	assert_true(all_zero(p + 1032, 2000 - 1032));
}

static void
test_capped(void **state)
{
	struct fix *f = *state;
	uint64_t g = vh_alloc(&f->m, 256 << 10, 4096);
	uint8_t *p = vh_ptr(&f->m, g, 256 << 10);
	struct vh_buf b[2];
	uint32_t off;
	int h;

	bring_up(f, F_V1);
	/* 256 KiB asked in two pieces of 128 KiB: 64 KiB given. */
	b[0] = (struct vh_buf){ g, 128 << 10 };
	b[1] = (struct vh_buf){ g + (128 << 10), 128 << 10 };
	h = vh_queue_add(&f->d.q[0], b, 0, 2, false);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), RNG_MAX_REQUEST);
	for (off = 0; off < RNG_MAX_REQUEST; off += 256)
		if (all_zero(p + off, 256))
			fail_msg("256 zero bytes at offset %u of the filled "
				 "part", off);
	assert_true(all_zero(p + RNG_MAX_REQUEST,
			     (256 << 10) - RNG_MAX_REQUEST));
}

static void
test_zero_length(void **state)
{
	struct fix *f = *state;
	uint64_t g;
	struct vh_buf b = { VH_RAM_ALLOC_START, 0 };
	int h;

	bring_up(f, F_V1 | F_EVT);
	h = vh_queue_add(&f->d.q[0], &b, 0, 1, false);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* And the next request is served as usual. */
	h = request(f, 16, &g);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 16);
}

static void
test_many(void **state)
{
	struct fix *f = *state;
	static uint64_t g[200];
	int h[200], i, j;
	uint16_t id;
	uint32_t len;

	/* More than RNG_BUDGET in one kick: the device yields and comes
	 * back by itself. */
	bring_up(f, F_V1 | F_EVT | F_IND);
	/* Activation looks at the queue once; let it pass first. */
	for (i = 0; i < 1000 && __atomic_load_n(
		     &rng_virtio(f->rng)->notifies, __ATOMIC_SEQ_CST) < 1;
	     i++)
		usleep(1000);
	for (i = 0; i < 200; i++) {
		h[i] = request(f, 32, &g[i]);
		assert_true(h[i] >= 0);
	}
	vh_queue_kick(&f->d, 0);
	for (i = 0; i < 200; i++) {
		if (!vh_queue_wait_used(&f->d.q[0], &id, &len, TMO))
			fail_msg("only %d of 200 requests completed", i);
		/* In order: the device serves the ring in order. */
		assert_int_equal(id, h[i]);
		assert_int_equal(len, 32);
	}
	for (i = 0; i < 200; i++)
		for (j = i + 1; j < 200; j += 37)
			assert_memory_not_equal(vh_ptr(&f->m, g[i], 32),
						vh_ptr(&f->m, g[j], 32), 32);
}

static uint64_t
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((t.tv_sec - t0->tv_sec) * 1000 +
			  (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static void
test_rate_limit(void **state)
{
	struct fix *f = *state;
	struct timespec t0;
	struct rng_stats st;
	uint64_t g, first, all;
	int h[8], i;

	/* 1 MiB/s, bursts of 64 KiB: eight 64 KiB requests take two at
	 * once (the burst and the one-request overshoot), then one per
	 * 62.5 ms: about 375 ms in all. */
	assert_int_equal(rng_set_rate(f->rng, 1 << 20, 64 << 10), 0);
	bring_up(f, F_V1 | F_EVT);
	for (i = 0; i < 8; i++)
		h[i] = request(f, 64 << 10, &g);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h[0]), 64 << 10);
	first = ms_since(&t0);
	for (i = 1; i < 8; i++)
		assert_int_equal(wait_used(f, h[i]), 64 << 10);
	all = ms_since(&t0);
	assert_true(first < 150);
	if (all < 300 || all > 1500)
		fail_msg("8 x 64 KiB at 1 MiB/s took %llu ms, expected ~375",
			 (unsigned long long)all);
	rng_get_stats(f->rng, &st);
	assert_true(st.throttled >= 5);
	assert_int_equal(st.bytes, 8 * (64 << 10));

	/* Lifting the limit serves what waits at once. */
	assert_int_equal(rng_set_rate(f->rng, 1 << 10, 64 << 10), 0);
	for (i = 0; i < 3; i++)
		h[i] = request(f, 64 << 10, &g);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h[0]), 64 << 10);
	assert_int_equal(wait_used(f, h[1]), 64 << 10);
	usleep(50000);
	assert_int_equal(vh_used_idx(&f->d.q[0]), 10);	/* third waits */
	assert_int_equal(rng_set_rate(f->rng, 0, 0), 0);
	assert_int_equal(wait_used(f, h[2]), 64 << 10);
}

static void
test_reset_midway(void **state)
{
	struct fix *f = *state;
	uint64_t g;
	uint16_t used;
	int i, h;

	/* Slow enough to catch it in the middle: 64 KiB per 62.5 ms. */
	assert_int_equal(rng_set_rate(f->rng, 1 << 20, 64 << 10), 0);
	bring_up(f, F_V1 | F_EVT | F_IND);
	for (i = 0; i < 20; i++)
		assert_true(request(f, 64 << 10, &g) >= 0);
	vh_queue_kick(&f->d, 0);
	usleep(100000);
	used = vh_used_idx(&f->d.q[0]);
	assert_true(used >= 2 && used < 20);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	used = vh_used_idx(&f->d.q[0]);
	usleep(150000);
	/* Nothing moves after the reset, not even the timer's wakeup. */
	assert_int_equal(vh_used_idx(&f->d.q[0]), used);
	/* A new driver is served (the bucket refilled in the meantime). */
	assert_int_equal(rng_set_rate(f->rng, 0, 0), 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1);
	h = request(f, 48, &g);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 48);
	assert_false(all_zero(vh_ptr(&f->m, g, 48), 48));
}

static void
expect_needs_reset(struct fix *f)
{
	assert_int_equal(vh_wait_irq(&f->d, VEC_CFG, TMO), 1);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(vh_used_idx(&f->d.q[0]), 0);
}

static void
test_readable_needs_reset(void **state)
{
	struct fix *f = *state;
	uint64_t g = vh_alloc(&f->m, 64, 64);
	uint8_t *p = vh_ptr(&f->m, g, 64);
	struct vh_buf b[2] = { { g, 16 }, { g + 16, 16 } };
	int h;

	log_set_level(LOG_LEVEL_ERR);	/* the expected warning */
	bring_up(f, F_V1);
	memset(p, 0xa5, 16);
	assert_true(vh_queue_add(&f->d.q[0], b, 1, 1, false) >= 0);
	vh_queue_kick(&f->d, 0);
	expect_needs_reset(f);
	/* Nothing written, not even the writable half. */
	assert_true(all_zero(p + 16, 16));
	for (h = 0; h < 16; h++)
		assert_int_equal(p[h], 0xa5);
	/* Only a reset brings it back. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1);
	h = request(f, 8, &g);
	vh_queue_kick(&f->d, 0);
	assert_int_equal(wait_used(f, h), 8);
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_out_of_range(void **state)
{
	struct fix *f = *state;
	struct vh_buf b = { RAM - 16, 32 };	/* crosses the end of RAM */

	log_set_level(LOG_LEVEL_ERR);
	bring_up(f, F_V1);
	assert_true(vh_queue_add(&f->d.q[0], &b, 0, 1, false) >= 0);
	vh_queue_kick(&f->d, 0);
	expect_needs_reset(f);
	/* A second device error is not reported twice before a reset. */
	assert_int_equal(rng_virtio(f->rng)->nr_logged, 1);
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_loop_needs_reset(void **state)
{
	struct fix *f = *state;
	struct vh_queue *q = &f->d.q[0];

	log_set_level(LOG_LEVEL_ERR);
	bring_up(f, F_V1);
	vh_desc_set(q, 0, VH_RAM_ALLOC_START, 4,
		    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	vh_desc_set(q, 1, VH_RAM_ALLOC_START, 4,
		    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	vh_avail_push(q, 0);
	vh_queue_kick(&f->d, 0);
	expect_needs_reset(f);
	log_set_level(LOG_LEVEL_INFO);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_fill),
		T(test_chained),
		T(test_capped),
		T(test_zero_length),
		T(test_many),
		T(test_rate_limit),
		T(test_reset_midway),
		T(test_readable_needs_reset),
		T(test_out_of_range),
		T(test_loop_needs_reset),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
