/* SPDX-License-Identifier: MIT */
/*
 * The split virtqueue walker against rings written by hand: direct,
 * indirect and mixed chains, zero-length buffers, and every hostile-guest
 * rule (order, loops, ranges, indirect tables, index jumps, length
 * overflow, iovec bound), the broken state until reset, and the EVENT_IDX
 * arithmetic both ways including the 16-bit wraparound.
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

#include "helpers/virtio_harness.h"
#include "layout.h"
#include "mem.h"
#include "virtio/virtq.h"

#define QSIZE		8
#define DESC_GPA	0x1000ULL
#define AVAIL_GPA	0x2000ULL
#define USED_GPA	0x3000ULL
#define BUF_GPA		0x10000ULL
#define RAM		(16ULL << 20)

struct fix {
	struct guest_mem mem;
	struct virtq vq;
	struct vh_queue q;	/* the driver's side, written by hand */
	unsigned int errors;
	char why[128];
	struct iovec iov[64];
};

static void
on_error(struct virtq *vq, const char *why, void *opaque)
{
	struct fix *f = opaque;

	assert_ptr_equal(vq, &f->vq);
	f->errors++;
	snprintf(f->why, sizeof(f->why), "%s", why);
}

static void
fix_ring(struct fix *f, uint16_t size, bool event_idx, bool indirect)
{
	/* A fresh driver zeroes its rings. */
	memset(guest_mem_ptr(&f->mem, DESC_GPA, 0x3000), 0, 0x3000);
	virtq_init(&f->vq, 3, on_error, f);
	assert_int_equal(virtq_setup(&f->vq, &f->mem, size, DESC_GPA, AVAIL_GPA,
				     USED_GPA, event_idx, indirect), 0);
	memset(&f->q, 0, sizeof(f->q));
	f->q.size = size;
	f->q.desc = guest_mem_ptr(&f->mem, DESC_GPA, VIRTQ_DESC_BYTES(size));
	f->q.avail = guest_mem_ptr(&f->mem, AVAIL_GPA, VIRTQ_AVAIL_BYTES(size));
	f->q.used = guest_mem_ptr(&f->mem, USED_GPA, VIRTQ_USED_BYTES(size));
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(guest_mem_init(&f->mem, RAM), 0);
	fix_ring(f, QSIZE, false, true);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	guest_mem_destroy(&f->mem);
	free(f);
	return 0;
}

static void *
gp(struct fix *f, uint64_t gpa)
{
	return guest_mem_ptr(&f->mem, gpa, 1);
}

static int
pop(struct fix *f, struct virtq_elem *e)
{
	return virtq_pop(&f->vq, f->iov, 64, e);
}

/* Expect the violation: -EIO, one error call naming what, broken. */
static void
expect_violation(struct fix *f, const char *what)
{
	struct virtq_elem e;

	assert_int_equal(pop(f, &e), -EIO);
	assert_int_equal(f->errors, 1);
	assert_true(f->vq.broken);
	if (!strstr(f->why, what))
		fail_msg("violation message \"%s\" lacks \"%s\"", f->why, what);
	/* Sticky: popping again neither works nor reports again. */
	assert_int_equal(pop(f, &e), -EIO);
	assert_int_equal(f->errors, 1);
}

static void
test_setup_checks(void **state)
{
	struct fix *f = *state;
	struct virtq vq;

	virtq_init(&vq, 0, NULL, NULL);
	assert_int_equal(virtq_setup(&vq, &f->mem, 6, DESC_GPA, AVAIL_GPA,
				     USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_setup(&vq, &f->mem, 0, DESC_GPA, AVAIL_GPA,
				     USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_setup(&vq, &f->mem, 8, DESC_GPA + 8, AVAIL_GPA,
				     USED_GPA, false, false), -EINVAL);
	assert_non_null(strstr(vq.why, "descriptor table"));
	assert_int_equal(virtq_setup(&vq, &f->mem, 8, DESC_GPA, AVAIL_GPA + 1,
				     USED_GPA, false, false), -EINVAL);
	assert_int_equal(virtq_setup(&vq, &f->mem, 8, DESC_GPA, AVAIL_GPA,
				     USED_GPA + 2, false, false), -EINVAL);
	/* A used ring whose tail crosses the end of RAM. */
	assert_int_equal(virtq_setup(&vq, &f->mem, 8, DESC_GPA, AVAIL_GPA,
				     RAM - 8, false, false), -EINVAL);
	assert_non_null(strstr(vq.why, "used ring"));
	assert_int_equal(virtq_setup(&vq, &f->mem, 8, LAYOUT_PCI_HOLE_START,
				     AVAIL_GPA, USED_GPA, false, false), -EINVAL);
	assert_false(vq.ready);
	assert_int_equal(virtq_pop(&vq, f->iov, 64, &(struct virtq_elem){ 0 }),
			 -EIO);
	assert_int_equal(virtq_push(&vq, 0, 0), -EINVAL);
	/* The largest queue fits. */
	assert_int_equal(virtq_setup(&vq, &f->mem, 32768, 0x100000, 0x200000,
				     0x300000, true, true), 0);
	assert_true(vq.ready);
}

static void
test_direct_chain(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;

	vh_desc_set(&f->q, 5, BUF_GPA, 16, VRING_DESC_F_NEXT, 2);
	vh_desc_set(&f->q, 2, BUF_GPA + 0x100, 100, VRING_DESC_F_NEXT, 7);
	vh_desc_set(&f->q, 7, BUF_GPA + 0x1000, 512, VRING_DESC_F_WRITE, 0);
	vh_avail_push(&f->q, 5);
	assert_true(virtq_has_work(&f->vq));
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.head, 5);
	assert_int_equal(e.nr_out, 2);
	assert_int_equal(e.nr_in, 1);
	assert_int_equal(e.out_len, 116);
	assert_int_equal(e.in_len, 512);
	assert_ptr_equal(e.iov[0].iov_base, gp(f, BUF_GPA));
	assert_int_equal(e.iov[0].iov_len, 16);
	assert_ptr_equal(e.iov[1].iov_base, gp(f, BUF_GPA + 0x100));
	assert_int_equal(e.iov[1].iov_len, 100);
	assert_ptr_equal(e.iov[2].iov_base, gp(f, BUF_GPA + 0x1000));
	assert_int_equal(e.iov[2].iov_len, 512);
	/* Empty now. */
	assert_int_equal(pop(f, &e), 0);
	assert_int_equal(virtq_push(&f->vq, 5, 300), 0);
	assert_int_equal(vh_used_idx(&f->q), 1);
	assert_int_equal(*(uint32_t *)(void *)(f->q.used + 4), 5);
	assert_int_equal(*(uint32_t *)(void *)(f->q.used + 8), 300);
	assert_int_equal(virtq_push(&f->vq, QSIZE, 0), -EINVAL);
	assert_int_equal(vh_used_idx(&f->q), 1);
	assert_int_equal(f->errors, 0);
}

/* An entry of an indirect table in guest RAM. */
static void
ind_set(struct fix *f, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
	uint16_t flags, uint16_t next)
{
	struct vh_queue t = { .desc = gp(f, table) };

	vh_desc_set(&t, i, addr, len, flags, next);
}

static void
test_indirect_chain(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, BUF_GPA, 16, VRING_DESC_F_NEXT, 1);
	ind_set(f, t, 1, BUF_GPA + 0x200, 4096,
		VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	ind_set(f, t, 2, BUF_GPA + 0x2000, 1, VRING_DESC_F_WRITE, 0);
	vh_desc_set(&f->q, 0, t, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.head, 0);
	assert_int_equal(e.nr_out, 1);
	assert_int_equal(e.nr_in, 2);
	assert_int_equal(e.out_len, 16);
	assert_int_equal(e.in_len, 4097);
	assert_ptr_equal(e.iov[1].iov_base, gp(f, BUF_GPA + 0x200));
	assert_ptr_equal(e.iov[2].iov_base, gp(f, BUF_GPA + 0x2000));
	assert_int_equal(e.iov[2].iov_len, 1);
	/* A table need not use all its entries, nor start at entry 0's
	 * order: a table whose entry 0 jumps to 3. */
	ind_set(f, t, 0, BUF_GPA, 8, VRING_DESC_F_NEXT, 3);
	ind_set(f, t, 3, BUF_GPA + 8, 8, 0, 0);
	vh_desc_set(&f->q, 1, t, 4 * 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 1);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.nr_out, 2);
	assert_int_equal(e.out_len, 16);
	assert_int_equal(f->errors, 0);
}

/* Direct descriptors, then one that points at an indirect table. */
static void
test_mixed_chain(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, BUF_GPA + 0x40, 32, VRING_DESC_F_WRITE, 0);
	vh_desc_set(&f->q, 4, BUF_GPA, 8, VRING_DESC_F_NEXT, 6);
	vh_desc_set(&f->q, 6, t, 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 4);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.head, 4);
	assert_int_equal(e.nr_out, 1);
	assert_int_equal(e.nr_in, 1);
	assert_int_equal(e.in_len, 32);
	assert_ptr_equal(e.iov[1].iov_base, gp(f, BUF_GPA + 0x40));
}

static void
test_zero_length(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;

	/* Zero-length buffers keep their place in the order rules but take
	 * no iovec; their address is never looked at. */
	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	vh_desc_set(&f->q, 1, ~0ULL, 0, VRING_DESC_F_NEXT, 2);
	vh_desc_set(&f->q, 2, BUF_GPA + 64, 0,
		    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3);
	vh_desc_set(&f->q, 3, BUF_GPA + 128, 8, VRING_DESC_F_WRITE, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.nr_out, 1);
	assert_int_equal(e.nr_in, 1);
	assert_int_equal(e.out_len, 4);
	assert_int_equal(e.in_len, 8);
	assert_ptr_equal(e.iov[1].iov_base, gp(f, BUF_GPA + 128));
	/* A chain of one zero-length buffer is a chain with no iovec. */
	vh_desc_set(&f->q, 5, 0, 0, 0, 0);
	vh_avail_push(&f->q, 5);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.nr_out + e.nr_in, 0);
	assert_int_equal(f->errors, 0);
}

static void
test_write_then_read(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
		    1);
	vh_desc_set(&f->q, 1, BUF_GPA + 4, 4, 0, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "readable buffer after a writable");
}

static void
test_write_then_read_zero_len(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
		    1);
	vh_desc_set(&f->q, 1, BUF_GPA + 4, 0, 0, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "readable buffer after a writable");
}

static void
test_write_then_read_indirect(void **state)
{
	struct fix *f = *state;
	uint64_t t = BUF_GPA + 0x8000;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
		    1);
	ind_set(f, t, 0, BUF_GPA + 8, 4, 0, 0);
	vh_desc_set(&f->q, 1, t, 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "readable buffer after a writable");
}

static void
test_loop(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	vh_desc_set(&f->q, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 2);
	vh_desc_set(&f->q, 2, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "longer than the queue");
}

static void
test_self_loop(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 3, BUF_GPA, 4, VRING_DESC_F_NEXT, 3);
	vh_avail_push(&f->q, 3);
	expect_violation(f, "longer than the queue");
}

static void
test_loop_indirect(void **state)
{
	struct fix *f = *state;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	ind_set(f, t, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 0);
	vh_desc_set(&f->q, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "loops in its indirect table");
}

static void
test_full_length_chain(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;
	uint16_t i;

	/* Every descriptor of the queue in one chain is fine. */
	for (i = 0; i < QSIZE; i++)
		vh_desc_set(&f->q, i, BUF_GPA + 16 * i, 16,
			    i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0,
			    (uint16_t)(i + 1));
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.nr_out, QSIZE);
	assert_int_equal(e.out_len, 16 * QSIZE);
}

static void
test_buffer_outside_ram(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, RAM - 8, 16, 0, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "outside guest RAM");
}

static void
test_buffer_in_hole(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, LAYOUT_PCI_HOLE_START, 16, 0, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "outside guest RAM");
}

static void
test_buffer_wraps(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, ~0ULL - 7, 16, VRING_DESC_F_WRITE, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "outside guest RAM");
}

static void
test_next_out_of_range(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, QSIZE);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "next 8");
}

static void
test_head_out_of_range(void **state)
{
	struct fix *f = *state;

	vh_avail_push(&f->q, 0xffff);
	expect_violation(f, "names head 65535");
}

static void
test_indirect_outside_ram(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, RAM - 16, 32, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect table at");
}

static void
test_indirect_bad_len(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA + 0x8000, 24, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect table of 24 bytes");
}

static void
test_indirect_zero_len(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA + 0x8000, 0, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect table of 0 bytes");
}

static void
test_indirect_too_long(void **state)
{
	struct fix *f = *state;

	/* More entries than the queue has. */
	vh_desc_set(&f->q, 0, BUF_GPA + 0x8000, 16 * (QSIZE + 1),
		    VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect table of 144 bytes");
}

static void
test_indirect_nested(void **state)
{
	struct fix *f = *state;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	vh_desc_set(&f->q, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "nested indirect");
}

static void
test_indirect_with_next(void **state)
{
	struct fix *f = *state;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, BUF_GPA, 4, 0, 0);
	vh_desc_set(&f->q, 0, t, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT,
		    1);
	vh_desc_set(&f->q, 1, BUF_GPA, 4, 0, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect descriptor with NEXT");
}

static void
test_indirect_next_out_of_table(void **state)
{
	struct fix *f = *state;
	uint64_t t = BUF_GPA + 0x8000;

	ind_set(f, t, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 2);
	ind_set(f, t, 1, BUF_GPA, 4, 0, 0);
	vh_desc_set(&f->q, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "indirect next 2 out of a table of 2");
}

static void
test_indirect_not_negotiated(void **state)
{
	struct fix *f = *state;

	fix_ring(f, QSIZE, false, false);
	ind_set(f, BUF_GPA + 0x8000, 0, BUF_GPA, 4, 0, 0);
	vh_desc_set(&f->q, 0, BUF_GPA + 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(&f->q, 0);
	expect_violation(f, "not negotiated");
}

static void
test_avail_jump(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;
	uint16_t i;

	for (i = 0; i < QSIZE; i++)
		vh_desc_set(&f->q, i, BUF_GPA, 4, 0, 0);
	/* Exactly a full queue ahead is fine... */
	for (i = 0; i < QSIZE; i++)
		vh_avail_push(&f->q, i);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(e.head, 0);
	/* ...more than a queue ahead of us is not. */
	vh_avail_set_idx(&f->q, (uint16_t)(1 + QSIZE + 1));
	expect_violation(f, "available index jumped from 1 to 10");
}

static void
test_avail_jump_backwards(void **state)
{
	struct fix *f = *state;

	/* An index that went back reads as a jump of almost 65536. */
	vh_avail_set_idx(&f->q, 0xfffe);
	expect_violation(f, "available index jumped");
}

static void
test_lengths_overflow(void **state)
{
	struct fix *f = *state;
	struct guest_mem big;
	struct virtq_elem e;

	/* 3 GiB of RAM (sparse): two 2 GiB buffers add up past 4 GiB. */
	assert_int_equal(guest_mem_init(&big, 3ULL << 30), 0);
	virtq_init(&f->vq, 0, on_error, f);
	assert_int_equal(virtq_setup(&f->vq, &big, QSIZE, DESC_GPA, AVAIL_GPA,
				     USED_GPA, false, false), 0);
	f->q.desc = guest_mem_ptr(&big, DESC_GPA, VIRTQ_DESC_BYTES(QSIZE));
	f->q.avail = guest_mem_ptr(&big, AVAIL_GPA, VIRTQ_AVAIL_BYTES(QSIZE));
	f->q.used = guest_mem_ptr(&big, USED_GPA, VIRTQ_USED_BYTES(QSIZE));
	f->q.avail_idx = 0;
	/* 4 GiB - 1 in one direction is the most there is... */
	vh_desc_set(&f->q, 0, 0, 0x80000000u, VRING_DESC_F_NEXT, 1);
	vh_desc_set(&f->q, 1, 0, 0x7fffffffu, 0, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(virtq_pop(&f->vq, f->iov, 64, &e), 1);
	assert_int_equal(e.out_len, 0xffffffffu);
	/* ...one byte more is a violation. */
	vh_desc_set(&f->q, 2, 0, 0x80000000u, VRING_DESC_F_WRITE |
		    VRING_DESC_F_NEXT, 3);
	vh_desc_set(&f->q, 3, 0x1000, 0x80000000u, VRING_DESC_F_WRITE, 0);
	vh_avail_push(&f->q, 2);
	assert_int_equal(virtq_pop(&f->vq, f->iov, 64, &e), -EIO);
	assert_int_equal(f->errors, 1);
	assert_non_null(strstr(f->why, "more than 4 GiB"));
	guest_mem_destroy(&big);
}

static void
test_iov_bound(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, VRING_DESC_F_NEXT, 1);
	vh_desc_set(&f->q, 1, BUF_GPA, 4, VRING_DESC_F_NEXT, 2);
	vh_desc_set(&f->q, 2, BUF_GPA, 4, 0, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(virtq_pop(&f->vq, f->iov, 2, &e), -EIO);
	assert_non_null(strstr(f->why, "more than 2 buffers"));
}

static void
test_broken_until_reset(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;

	vh_avail_push(&f->q, 0xffff);
	expect_violation(f, "names head");
	/* Repairing the ring does not help... */
	vh_desc_set(&f->q, 0, BUF_GPA, 4, 0, 0);
	vh_avail_set_idx(&f->q, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), -EIO);
	assert_false(virtq_has_work(&f->vq));
	/* ...setting the queue up again (a device reset) does. */
	fix_ring(f, QSIZE, false, true);
	assert_false(f->vq.broken);
	vh_avail_set_idx(&f->q, 0);
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(f->errors, 1);
	virtq_reset(&f->vq);
	assert_false(f->vq.ready);
	assert_int_equal(pop(f, &e), -EIO);
	assert_int_equal(f->errors, 1);	/* not ready is not a violation */
}

static void
test_need_event_math(void **state)
{
	(void)state;
	/* Moving from old to new crosses event when old <= event < new. */
	assert_true(virtq_need_event(0, 1, 0));
	assert_false(virtq_need_event(1, 1, 0));
	assert_true(virtq_need_event(4, 5, 2));
	assert_true(virtq_need_event(2, 5, 2));
	assert_false(virtq_need_event(1, 5, 2));
	assert_false(virtq_need_event(5, 5, 2));
	assert_false(virtq_need_event(7, 7, 7));	/* no movement */
	/* Around 65535 -> 0. */
	assert_true(virtq_need_event(65535, 0, 65535));
	assert_true(virtq_need_event(65535, 2, 65534));
	assert_true(virtq_need_event(0, 2, 65534));
	assert_true(virtq_need_event(1, 2, 65534));
	assert_false(virtq_need_event(2, 2, 65534));
	assert_false(virtq_need_event(65533, 2, 65534));
	assert_false(virtq_need_event(65534, 0, 65535));
}

/* Pop one chain and push it back, as a device does. */
static void
cycle(struct fix *f)
{
	struct virtq_elem e;

	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(virtq_push(&f->vq, e.head, 0), 0);
}

static void
test_event_idx_interrupts(void **state)
{
	struct fix *f = *state;
	unsigned int i;

	fix_ring(f, QSIZE, true, true);
	vh_desc_set(&f->q, 0, BUF_GPA, 4, 0, 0);
	/* Nothing pushed: nothing to say. */
	assert_false(virtq_notify_needed(&f->vq));
	vh_set_used_event(&f->q, 0);
	cycle(f);				/* used 0 -> 1 */
	assert_true(virtq_notify_needed(&f->vq));
	assert_false(virtq_notify_needed(&f->vq));	/* nothing new */
	/* The driver wants to hear only when used reaches 4 (event 3). */
	vh_set_used_event(&f->q, 3);
	cycle(f);				/* 1 -> 2 */
	assert_false(virtq_notify_needed(&f->vq));
	cycle(f);				/* 2 -> 3 */
	assert_false(virtq_notify_needed(&f->vq));
	cycle(f);				/* 3 -> 4: crosses 3 */
	assert_true(virtq_notify_needed(&f->vq));
	/* Several pushes in one batch crossing the event: one interrupt. */
	vh_set_used_event(&f->q, 5);
	cycle(f);
	cycle(f);
	cycle(f);				/* 4 -> 7 crosses 5 */
	assert_true(virtq_notify_needed(&f->vq));
	/* An event behind us is not crossed again. */
	cycle(f);
	assert_false(virtq_notify_needed(&f->vq));

	/* Around the wrap: walk the used index up to 65534. */
	while (f->vq.used_idx != 65534) {
		cycle(f);
		(void)virtq_notify_needed(&f->vq);
	}
	vh_set_used_event(&f->q, 65535);
	cycle(f);				/* 65534 -> 65535 */
	assert_false(virtq_notify_needed(&f->vq));
	cycle(f);				/* 65535 -> 0: crosses 65535 */
	assert_true(virtq_notify_needed(&f->vq));
	assert_int_equal(vh_used_idx(&f->q), 0);
	vh_set_used_event(&f->q, 1);
	cycle(f);				/* 0 -> 1 */
	assert_false(virtq_notify_needed(&f->vq));
	cycle(f);				/* 1 -> 2 */
	assert_true(virtq_notify_needed(&f->vq));
	for (i = 0; i < 3; i++)
		cycle(f);
	assert_int_equal(vh_used_idx(&f->q), 5);
	assert_int_equal(f->errors, 0);
}

static void
test_no_interrupt_flag(void **state)
{
	struct fix *f = *state;

	vh_desc_set(&f->q, 0, BUF_GPA, 4, 0, 0);
	cycle(f);
	assert_true(virtq_notify_needed(&f->vq));
	vh_avail_set_flags(&f->q, VRING_AVAIL_F_NO_INTERRUPT);
	cycle(f);
	assert_false(virtq_notify_needed(&f->vq));
	vh_avail_set_flags(&f->q, 0);
	cycle(f);
	assert_true(virtq_notify_needed(&f->vq));
	assert_false(virtq_notify_needed(&f->vq));
}

static void
test_driver_notify_suppression(void **state)
{
	struct fix *f = *state;
	struct virtq_elem e;

	/* Without EVENT_IDX: NO_NOTIFY while busy, cleared once empty. */
	vh_desc_set(&f->q, 0, BUF_GPA, 4, 0, 0);
	virtq_disable_notify(&f->vq);
	assert_true(vh_used_flags(&f->q) & VRING_USED_F_NO_NOTIFY);
	f->q.d = NULL;
	vh_avail_push(&f->q, 0);
	assert_int_equal(pop(f, &e), 1);
	assert_true(vh_used_flags(&f->q) & VRING_USED_F_NO_NOTIFY);
	assert_int_equal(pop(f, &e), 0);
	assert_false(vh_used_flags(&f->q) & VRING_USED_F_NO_NOTIFY);

	/* With EVENT_IDX: avail_event stays behind while there is work and
	 * names the next entry once the queue ran dry. */
	fix_ring(f, QSIZE, true, true);
	vh_desc_set(&f->q, 0, BUF_GPA, 4, 0, 0);
	assert_int_equal(pop(f, &e), 0);
	assert_int_equal(vh_avail_event(&f->q), 0);
	vh_avail_push(&f->q, 0);
	vh_avail_push(&f->q, 0);
	vh_avail_push(&f->q, 0);
	/* The driver went 0 -> 1: kick (event 0 crossed); then 1 -> 3
	 * crosses nothing: no kick needed. */
	assert_true(virtq_need_event(vh_avail_event(&f->q), 1, 0));
	assert_false(virtq_need_event(vh_avail_event(&f->q), 3, 1));
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(vh_avail_event(&f->q), 0);
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(pop(f, &e), 0);
	assert_int_equal(vh_avail_event(&f->q), 3);
	/* Work that lands between the look and avail_event is still found:
	 * pop looks again after publishing avail_event. */
	vh_avail_push(&f->q, 0);
	assert_true(virtq_need_event(vh_avail_event(&f->q), 4, 3));
	assert_int_equal(pop(f, &e), 1);
	assert_int_equal(f->errors, 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_setup_checks),
		T(test_direct_chain),
		T(test_indirect_chain),
		T(test_mixed_chain),
		T(test_zero_length),
		T(test_write_then_read),
		T(test_write_then_read_zero_len),
		T(test_write_then_read_indirect),
		T(test_loop),
		T(test_self_loop),
		T(test_loop_indirect),
		T(test_full_length_chain),
		T(test_buffer_outside_ram),
		T(test_buffer_in_hole),
		T(test_buffer_wraps),
		T(test_next_out_of_range),
		T(test_head_out_of_range),
		T(test_indirect_outside_ram),
		T(test_indirect_bad_len),
		T(test_indirect_zero_len),
		T(test_indirect_too_long),
		T(test_indirect_nested),
		T(test_indirect_with_next),
		T(test_indirect_next_out_of_table),
		T(test_indirect_not_negotiated),
		T(test_avail_jump),
		T(test_avail_jump_backwards),
		T(test_lengths_overflow),
		T(test_iov_bound),
		T(test_broken_until_reset),
		T(test_need_event_math),
		T(test_event_idx_interrupts),
		T(test_no_interrupt_flag),
		T(test_driver_notify_suppression),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
