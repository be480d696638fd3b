/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon through the driver-side harness, as Linux's
 * virtio_balloon driver uses it over virtio-pci: identity and features,
 * the target in config space with its interrupt and the guest's actual,
 * inflating 512 MiB of a 1 GiB guest that touched 800 MiB (the process's
 * RSS and the memfd's blocks must drop by 500 MiB or more), deflating and
 * using the pages again, hostile PFNs (PCI hole, beyond RAM) never
 * punched, free page reporting on both queue numberings, the statistics
 * queue (first buffer, on request, periodic, across a reset), and a
 * buffer on a queue without a role.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_balloon.h>
#include <linux/virtio_pci.h>

#include "helpers/virtio_harness.h"
#include "layout.h"
#include "log.h"
#include "virtio/balloon.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define PAGE	4096ULL
#define TMO	5000
#define QSIZE	256
#define VEC_CFG	0
#define PFNS_PER_BUF	256	/* what Linux puts in one inflate buffer */
#define IN_FLIGHT	32	/* inflate buffers posted before waiting */

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_TELL	(1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST)
#define F_STATS	(1ULL << VIRTIO_BALLOON_F_STATS_VQ)
#define F_OOM	(1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)
#define F_REP	(1ULL << VIRTIO_BALLOON_F_REPORTING)
#define F_ALL	(F_V1 | F_EVT | F_IND | F_STATS | F_OOM | F_REP)

struct fix {
	struct vh_machine m;
	struct balloon *b;
	struct virtio_pci *vp;
	struct vh_dev d;
	uint64_t ram;
	/* Driver buffers, allocated (and so backed) before any test
	 * measures memory: PFN arrays and a scratch page. */
	uint64_t arrays;
	uint64_t scratch;
};

static struct fix *
fix_new(uint64_t ram, const struct balloon_opts *opts)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->ram = ram;
	assert_int_equal(vh_machine_init(&f->m, ram), 0);
	assert_int_equal(balloon_new(&f->m.mem, opts, &f->b), 0);
	assert_int_equal(vh_machine_add(&f->m, balloon_virtio(f->b), &f->vp),
			 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	return f;
}

static int
setup_small(void **state)
{
	*state = fix_new(64 * MiB, NULL);
	return 0;
}

static int
setup_1g(void **state)
{
	*state = fix_new(1024 * MiB, NULL);
	return 0;
}

/* Big enough for RAM above 4 GiB, with the PCI hole below it; nothing
 * is allocated until touched. */
static int
setup_hole(void **state)
{
	*state = fix_new(LAYOUT_PCI_HOLE_START + 64 * MiB, NULL);
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	virtio_device_destroy(balloon_virtio(f->b));
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	balloon_free(f->b);
	free(f);
	return 0;
}

/*
 * Negotiate, MSI-X, config vector 0, queues 0 and 1, the stats queue (2)
 * when stats_q, and the reporting queue at rep_q (0: none); queue q gets
 * vector q + 1.
 */
static void
bring_up(struct fix *f, uint64_t features, bool stats_q, unsigned int rep_q)
{
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, features, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(d, 0, QSIZE, 1), 0);
	assert_int_equal(vh_queue_setup(d, 1, QSIZE, 2), 0);
	if (stats_q)
		assert_int_equal(vh_queue_setup(d, 2, QSIZE, 3), 0);
	if (rep_q)
		assert_int_equal(vh_queue_setup(d, rep_q, QSIZE,
						(uint16_t)(rep_q + 1)), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	if (!f->arrays) {
		f->arrays = vh_alloc(&f->m, 4ULL * PFNS_PER_BUF * IN_FLIGHT,
				     PAGE);
		f->scratch = vh_alloc(&f->m, PAGE, PAGE);
		assert_true(f->arrays && f->scratch);
	}
}

static void
wait_used(struct fix *f, unsigned int q, int head)
{
	uint16_t id;
	uint32_t len;

	if (!vh_queue_wait_used(&f->d.q[q], &id, &len, TMO))
		fail_msg("queue %u: no used entry for head %d within %d ms",
			 q, head, TMO);
	assert_int_equal(id, head);
}

/* Post one readable buffer of n PFNs on queue q and wait for it. */
static void
post_pfns(struct fix *f, unsigned int q, const uint32_t *pfns, unsigned int n)
{
	uint64_t gpa = f->scratch;
	uint32_t *p = vh_ptr(&f->m, gpa, PAGE);
	struct vh_buf b = { gpa, (uint32_t)(4 * n) };
	unsigned int i;
	int head;

	assert_non_null(p);
	assert_true(n <= PAGE / 4);
	for (i = 0; i < n; i++)
		p[i] = htole32(pfns[i]);
	head = vh_queue_add(&f->d.q[q], &b, 1, 0, false);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, q);
	wait_used(f, q, head);
}

/*
 * Inflate (q 0) or deflate (q 1) the pages [gpa, gpa + len) as Linux
 * does: arrays of up to 256 PFNs, one buffer each, IN_FLIGHT at a time.
 */
static void
balloon_pages(struct fix *f, unsigned int q, uint64_t gpa, uint64_t len)
{
	uint64_t arrays = f->arrays;
	uint64_t pfn = gpa / PAGE, end = (gpa + len) / PAGE;
	int heads[IN_FLIGHT];
	unsigned int i, k, n;

	while (pfn < end) {
		for (n = 0; n < IN_FLIGHT && pfn < end; n++) {
			uint64_t a = arrays + 4ULL * PFNS_PER_BUF * n;
			uint32_t *p = vh_ptr(&f->m, a, 4ULL * PFNS_PER_BUF);
			struct vh_buf b;

			for (k = 0; k < PFNS_PER_BUF && pfn < end; k++)
				p[k] = htole32((uint32_t)pfn++);
			b = (struct vh_buf){ a, 4 * k };
			heads[n] = vh_queue_add(&f->d.q[q], &b, 1, 0, false);
			assert_true(heads[n] >= 0);
		}
		vh_queue_kick(&f->d, q);
		for (i = 0; i < n; i++)
			wait_used(f, q, heads[i]);
	}
}

static uint64_t
rss_bytes(void)
{
	unsigned long size, resident;
	FILE *fp = fopen("/proc/self/statm", "r");

	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%lu %lu", &size, &resident), 2);
	fclose(fp);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Bytes the memfd behind guest RAM really holds. */
static uint64_t
memfd_bytes(struct fix *f)
{
	struct stat st;

	assert_int_equal(fstat(f->m.mem.fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* The guest writes a word naming each page into [gpa, gpa + len). */
static void
touch(struct fix *f, uint64_t gpa, uint64_t len, uint64_t salt)
{
	uint64_t a;

	for (a = gpa; a < gpa + len; a += PAGE) {
		uint64_t *p = vh_ptr(&f->m, a, PAGE);

		assert_non_null(p);
		*p = a ^ salt;
	}
}

static uint64_t
word_at(struct fix *f, uint64_t gpa)
{
	uint64_t *p = vh_ptr(&f->m, gpa, 8);

	assert_non_null(p);
	return *p;
}

/* Poll balloon_get_info() until the guest's stats were read n times. */
static void
wait_stats_updates(struct fix *f, uint64_t n, struct balloon_stats *st)
{
	struct timespec start, now, ms = { 0, 1000000 };
	long el;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		balloon_get_info(f->b, NULL, NULL, st);
		if (st->guest_updates >= n)
			return;
		clock_gettime(CLOCK_MONOTONIC, &now);
		el = (now.tv_sec - start.tv_sec) * 1000 +
		     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (el > TMO)
			fail_msg("stats updates: expected %llu within %d ms, "
				 "saw %llu", (unsigned long long)n, TMO,
				 (unsigned long long)st->guest_updates);
		nanosleep(&ms, NULL);
	}
}

static void
test_identity(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	struct balloon *b2;

	assert_int_equal(d->vendor_id, 0x1af4);
	assert_int_equal(d->device_id, 0x1040 + VIRTIO_ID_BALLOON);
	assert_int_equal(d->subsys_id, VIRTIO_ID_BALLOON);
	assert_int_equal(d->num_queues, BALLOON_NR_QUEUES);
	assert_true(d->device.present);
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(d->device_features, F_ALL);
	/* The balloon starts empty: num_pages 0, actual 0. */
	assert_int_equal(vh_devcfg_read(d, 0, 4), 0);
	assert_int_equal(vh_devcfg_read(d, 4, 4), 0);
	assert_int_equal(vh_devcfg_read(d, 8, 4), 0);
	assert_int_equal(vh_devcfg_read(d, 12, 4), 0);
	assert_int_equal(balloon_set_target(f->b, f->ram + PAGE), -EINVAL);
	assert_int_equal(balloon_new(NULL, NULL, &b2), -EINVAL);
	balloon_free(NULL);

	/* Options choose what is offered. */
	{
		struct balloon_opts o = { .must_tell_host = true };
		struct balloon *b;

		assert_int_equal(balloon_new(&f->m.mem, &o, &b), 0);
		assert_int_equal(virtio_device_features_word(
					 balloon_virtio(b), 0),
				 (uint32_t)(F_TELL | F_EVT | F_IND));
		assert_int_equal(balloon_request_stats(b), -ENOTSUP);
		balloon_free(b);
	}
}

static void
test_target_config(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint64_t target, actual;
	struct balloon_stats st;

	bring_up(f, F_ALL, true, 4);
	balloon_get_info(f->b, &target, &actual, &st);
	assert_int_equal(target, f->ram);
	assert_int_equal(actual, f->ram);
	assert_int_equal(st.features, F_STATS | F_OOM | F_REP);

	/* A new target: a config interrupt, num_pages in config space. */
	vh_wait_irq(d, VEC_CFG, 0);
	assert_int_equal(balloon_set_target(f->b, f->ram - 40 * MiB), 0);
	assert_true(vh_wait_irq(d, VEC_CFG, TMO) > 0);
	assert_int_equal(vh_devcfg_read(d, 0, 4), 40 * MiB / PAGE);
	assert_int_equal(vh_devcfg_read(d, 0, 2), 40 * MiB / PAGE);
	/* Not a whole page: the guest keeps the partial page. */
	assert_int_equal(balloon_set_target(f->b, f->ram - 40 * MiB - 100), 0);
	assert_int_equal(vh_devcfg_read(d, 0, 4), 40 * MiB / PAGE);
	assert_int_equal(balloon_set_target(f->b, 0), 0);
	assert_int_equal(vh_devcfg_read(d, 0, 4), f->ram / PAGE);
	assert_int_equal(balloon_set_target(f->b, f->ram - 8 * MiB), 0);

	/* num_pages is the host's; actual is the driver's. */
	vh_devcfg_write(d, 0, 4, 7);
	assert_int_equal(vh_devcfg_read(d, 0, 4), 8 * MiB / PAGE);
	vh_devcfg_write(d, 4, 4, 1000);
	assert_int_equal(vh_devcfg_read(d, 4, 4), 1000);
	vh_devcfg_write(d, 5, 1, 0x01);	/* one byte of actual */
	assert_int_equal(vh_devcfg_read(d, 4, 4), (1000 & 0xff) | 0x100);
	vh_devcfg_write(d, 4, 4, 2048);
	balloon_get_info(f->b, &target, &actual, NULL);
	assert_int_equal(target, f->ram - 8 * MiB);
	assert_int_equal(actual, f->ram - 8 * MiB);
	/* A lying actual beyond RAM reads as nothing left. */
	vh_devcfg_write(d, 4, 4, 0xffffffff);
	balloon_get_info(f->b, NULL, &actual, NULL);
	assert_int_equal(actual, 0);

	/* A reset empties the balloon; the target stays. */
	assert_int_equal(vh_dev_reset(d), 0);
	assert_int_equal(vh_devcfg_read(d, 4, 4), 0);
	assert_int_equal(vh_devcfg_read(d, 0, 4), 8 * MiB / PAGE);
	balloon_get_info(f->b, &target, &actual, &st);
	assert_int_equal(actual, f->ram);
	assert_int_equal(st.features, 0);
}

static void
test_inflate_rss(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	const uint64_t base = 16 * MiB, touched = 800 * MiB;
	const uint64_t give = 512 * MiB;
	uint64_t rss0, rss1, rss2, fd0, fd1, a, np, actual;
	struct balloon_stats st;

	bring_up(f, F_ALL, true, 4);
	touch(f, base, touched, 0x5a5a5a5a00000000ULL);
	rss0 = rss_bytes();
	fd0 = memfd_bytes(f);
	assert_true(fd0 >= touched);

	/* The host wants 512 MiB back; the guest hears of it. */
	vh_wait_irq(d, VEC_CFG, 0);
	assert_int_equal(balloon_set_target(f->b, f->ram - give), 0);
	assert_true(vh_wait_irq(d, VEC_CFG, TMO) > 0);
	np = vh_devcfg_read(d, 0, 4);
	assert_int_equal(np, give / PAGE);

	balloon_pages(f, 0, base, np * PAGE);
	vh_devcfg_write(d, 4, 4, np);

	rss1 = rss_bytes();
	fd1 = memfd_bytes(f);
	print_message("balloon: RSS %llu MiB after touching %llu MiB, %llu "
		      "MiB after inflating %llu MiB (dropped %lld MiB); memfd "
		      "%llu -> %llu MiB\n",
		      (unsigned long long)(rss0 / MiB),
		      (unsigned long long)(touched / MiB),
		      (unsigned long long)(rss1 / MiB),
		      (unsigned long long)(give / MiB),
		      (long long)((int64_t)(rss0 - rss1) / (int64_t)MiB),
		      (unsigned long long)(fd0 / MiB),
		      (unsigned long long)(fd1 / MiB));
	if (rss1 > rss0 || rss0 - rss1 < 500 * MiB)
		fail_msg("RSS: expected a drop of >= 500 MiB, saw %llu -> %llu",
			 (unsigned long long)rss0, (unsigned long long)rss1);
	assert_true(fd0 - fd1 >= give);

	balloon_get_info(f->b, NULL, &actual, &st);
	assert_int_equal(st.inflated_pages, give / PAGE);
	assert_int_equal(st.bad_pfns, 0);
	assert_int_equal(st.discard_errors, 0);
	assert_int_equal(actual, f->ram - give);

	/* Inflated pages read as zeros now; the rest kept their contents. */
	for (a = base; a < base + give; a += 16 * MiB)
		assert_int_equal(word_at(f, a), 0);
	assert_int_equal(word_at(f, base + give),
			 (base + give) ^ 0x5a5a5a5a00000000ULL);
	assert_int_equal(word_at(f, base + touched - PAGE),
			 (base + touched - PAGE) ^ 0x5a5a5a5a00000000ULL);

	/* Deflate half: the guest uses those pages again. */
	vh_wait_irq(d, VEC_CFG, 0);
	assert_int_equal(balloon_set_target(f->b, f->ram - give / 2), 0);
	assert_true(vh_wait_irq(d, VEC_CFG, TMO) > 0);
	balloon_pages(f, 1, base, give / 2);
	vh_devcfg_write(d, 4, 4, give / 2 / PAGE);
	touch(f, base, give / 2, 0x1234567800000000ULL);
	for (a = base; a < base + give / 2; a += PAGE)
		if (word_at(f, a) != (a ^ 0x1234567800000000ULL))
			fail_msg("deflated page 0x%llx: wrote 0x%llx, read "
				 "0x%llx", (unsigned long long)a,
				 (unsigned long long)(a ^ 0x1234567800000000ULL),
				 (unsigned long long)word_at(f, a));
	rss2 = rss_bytes();
	print_message("balloon: RSS %llu MiB after deflating %llu MiB and "
		      "writing it again\n", (unsigned long long)(rss2 / MiB),
		      (unsigned long long)(give / 2 / MiB));
	assert_true(rss2 >= rss1 + give / 2 - 16 * MiB);
	balloon_get_info(f->b, NULL, &actual, &st);
	assert_int_equal(st.deflated_pages, give / 2 / PAGE);
	assert_int_equal(actual, f->ram - give / 2);
	assert_int_equal(vh_dev_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

static void
test_hostile_pfns(void **state)
{
	struct fix *f = *state;
	const uint64_t low_top = LAYOUT_PCI_HOLE_START;
	const uint64_t high = LAYOUT_HIGH_RAM_START;
	const uint64_t top = high + 64 * MiB;
	struct balloon_stats st;
	uint64_t fd0, fd1;
	uint32_t pfns[] = {
		(uint32_t)(low_top / PAGE),		/* first page of the hole */
		(uint32_t)((high - PAGE) / PAGE),	/* last page of the hole */
		(uint32_t)(top / PAGE),			/* just beyond RAM */
		0xffffffffu,				/* far beyond */
		(uint32_t)((low_top - PAGE) / PAGE),	/* valid: last low page */
		(uint32_t)(high / PAGE),		/* valid: first high page */
	};
	uint64_t buf, gpa;
	uint8_t *p;
	struct vh_buf b[2];
	uint32_t v;
	int head;

	bring_up(f, F_ALL, true, 4);
	assert_int_equal(guest_mem_top(&f->m.mem), top);
	/* Pages around each edge hold data. */
	touch(f, low_top - 2 * PAGE, 2 * PAGE, 0x77);
	touch(f, high, 2 * PAGE, 0x77);
	touch(f, top - PAGE, PAGE, 0x77);
	fd0 = memfd_bytes(f);

	post_pfns(f, 0, pfns, 6);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.bad_pfns, 4);
	assert_int_equal(st.inflated_pages, 2);
	assert_int_equal(st.discard_errors, 0);
	fd1 = memfd_bytes(f);
	assert_int_equal(fd0 - fd1, 2 * PAGE);
	/* Exactly the two valid pages went. */
	assert_int_equal(word_at(f, low_top - PAGE), 0);
	assert_int_equal(word_at(f, high), 0);
	assert_int_equal(word_at(f, low_top - 2 * PAGE),
			 (low_top - 2 * PAGE) ^ 0x77);
	assert_int_equal(word_at(f, high + PAGE), (high + PAGE) ^ 0x77);
	assert_int_equal(word_at(f, top - PAGE), (top - PAGE) ^ 0x77);

	/* Deflating hostile PFNs is ignored the same way. */
	post_pfns(f, 1, pfns, 4);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.bad_pfns, 8);
	assert_int_equal(st.deflated_pages, 0);

	/* A PFN split across two buffers, then 3 stray bytes: one page. */
	touch(f, 32 * MiB, PAGE, 0x99);
	buf = f->scratch;
	p = vh_ptr(&f->m, buf, 16);
	v = htole32((uint32_t)(32 * MiB / PAGE));
	memcpy(p, &v, 4);
	b[0] = (struct vh_buf){ buf, 2 };
	b[1] = (struct vh_buf){ buf + 2, 5 };
	head = vh_queue_add(&f->d.q[0], b, 2, 0, false);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, 0);
	wait_used(f, 0, head);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.inflated_pages, 3);
	assert_int_equal(st.bad_pfns, 8);
	assert_int_equal(word_at(f, 32 * MiB), 0);

	/* An empty list and a buffer outside RAM: the latter is a ring
	 * violation caught by the core. */
	post_pfns(f, 0, pfns, 0);
	fd0 = memfd_bytes(f);
	gpa = LAYOUT_PCI_HOLE_START + PAGE;
	b[0] = (struct vh_buf){ gpa, 1024 };
	assert_int_equal(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	head = vh_queue_add(&f->d.q[0], b, 1, 0, false);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, 0);
	assert_true(vh_wait_irq(&f->d, VEC_CFG, TMO) > 0);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.inflated_pages, 3);
	assert_int_equal(memfd_bytes(f), fd0);
}

/* Report ranges on queue rep_q as Linux does (device-writable). */
static void
check_reporting(struct fix *f, unsigned int rep_q)
{
	struct balloon_stats st;
	struct vh_buf b[3];
	uint64_t fd0, fd1;
	int head;

	touch(f, 8 * MiB, 8 * MiB, 0x42);
	fd0 = memfd_bytes(f);
	b[0] = (struct vh_buf){ 8 * MiB, 2 * MiB };
	b[1] = (struct vh_buf){ 12 * MiB, 1 * MiB };
	/* Not page-aligned at either end: only its 2 whole pages go. */
	b[2] = (struct vh_buf){ 14 * MiB + 100, 3 * PAGE - 100 + 50 };
	head = vh_queue_add(&f->d.q[rep_q], b, 0, 3, false);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, rep_q);
	wait_used(f, rep_q, head);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.reported_pages, (3 * MiB) / PAGE + 2);
	assert_int_equal(st.discard_errors, 0);
	fd1 = memfd_bytes(f);
	assert_int_equal(fd0 - fd1, 3 * MiB + 2 * PAGE);
	assert_int_equal(word_at(f, 8 * MiB), 0);
	assert_int_equal(word_at(f, 10 * MiB - PAGE), 0);
	assert_int_equal(word_at(f, 10 * MiB), (10 * MiB) ^ 0x42);
	assert_int_equal(word_at(f, 12 * MiB), 0);
	assert_int_equal(word_at(f, 14 * MiB), (14 * MiB) ^ 0x42);
	assert_int_equal(word_at(f, 14 * MiB + PAGE), 0);
	assert_int_equal(word_at(f, 14 * MiB + 2 * PAGE), 0);
	assert_int_equal(word_at(f, 14 * MiB + 3 * PAGE),
			 (14 * MiB + 3 * PAGE) ^ 0x42);
	assert_int_equal(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

static void
test_reporting(void **state)
{
	struct fix *f = *state;

	bring_up(f, F_ALL, true, 4);
	check_reporting(f, 4);
}

/* Linux before 6.11: no gaps, so reporting_vq is 3 after statsq. */
static void
test_reporting_gapless(void **state)
{
	struct fix *f = *state;

	bring_up(f, F_ALL, true, 3);
	check_reporting(f, 3);
}

/* ... and 2 without STATS_VQ. */
static void
test_reporting_gapless_nostats(void **state)
{
	struct fix *f = *state;

	bring_up(f, F_V1 | F_EVT | F_REP, false, 2);
	check_reporting(f, 2);
}

/* A buffer on a queue the features give no role: NEEDS_RESET. */
static void
test_queue_without_role(void **state)
{
	struct fix *f = *state;
	struct balloon_stats st;
	uint32_t pfn = 40 * MiB / PAGE;
	struct vh_buf b;
	int head;

	bring_up(f, F_V1 | F_STATS, true, 4);
	touch(f, 40 * MiB, PAGE, 0x3);
	b = (struct vh_buf){ 40 * MiB, (uint32_t)PAGE };
	head = vh_queue_add(&f->d.q[4], &b, 0, 1, false);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, 4);
	assert_true(vh_wait_irq(&f->d, VEC_CFG, TMO) > 0);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	balloon_get_info(f->b, NULL, NULL, &st);
	assert_int_equal(st.reported_pages, 0);
	assert_int_equal(word_at(f, 40 * MiB), (40 * MiB) ^ 0x3);

	/* After a reset it works again. */
	bring_up(f, F_ALL, true, 4);
	post_pfns(f, 0, &pfn, 1);
	assert_int_equal(word_at(f, 40 * MiB), 0);
}

/* Fill the stats buffer at gpa with (tag, value) records. */
static void
put_stats(struct fix *f, uint64_t gpa, const uint16_t *tags,
	  const uint64_t *vals, unsigned int n)
{
	uint8_t *p = vh_ptr(&f->m, gpa, 10ULL * n);
	unsigned int i;

	assert_non_null(p);
	for (i = 0; i < n; i++) {
		uint16_t t = htole16(tags[i]);
		uint64_t v = htole64(vals[i]);

		memcpy(p + 10 * i, &t, 2);
		memcpy(p + 10 * i + 2, &v, 8);
	}
}

static int
post_stats(struct fix *f, uint64_t gpa, unsigned int n)
{
	struct vh_buf b = { gpa, 10 * n };
	int head = vh_queue_add(&f->d.q[2], &b, 1, 0, false);

	assert_true(head >= 0);
	vh_queue_kick(&f->d, 2);
	return head;
}

static void
test_stats(void **state)
{
	struct fix *f = *state;
	struct balloon_stats st;
	uint64_t gpa = vh_alloc(&f->m, 10 * 8, 8);
	uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT,
			    VIRTIO_BALLOON_S_AVAIL, 99,
			    VIRTIO_BALLOON_S_SWAP_IN };
	uint64_t v1[] = { 11 * MiB, 64 * MiB, 20 * MiB, 5, 0 };
	uint64_t v2[] = { 9 * MiB, 64 * MiB, 18 * MiB, 6, 77 };
	uint16_t id;
	uint32_t len;
	int head;

	bring_up(f, F_ALL, true, 4);
	/* The driver's first buffer, at probe time. */
	put_stats(f, gpa, tags, v1, 4);
	head = post_stats(f, gpa, 4);
	wait_stats_updates(f, 1, &st);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_MEMFREE], 11 * MiB);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_MEMTOT], 64 * MiB);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_AVAIL], 20 * MiB);
	assert_int_equal(st.guest_valid,
			 1u << VIRTIO_BALLOON_S_MEMFREE |
			 1u << VIRTIO_BALLOON_S_MEMTOT |
			 1u << VIRTIO_BALLOON_S_AVAIL);
	assert_true(st.guest_updated_ns > 0);
	/* The device holds the buffer until it wants fresh numbers. */
	assert_int_equal(vh_queue_get_used(&f->d.q[2], &id, &len), 0);

	assert_int_equal(balloon_request_stats(f->b), 0);
	assert_true(vh_wait_irq(&f->d, 3, TMO) > 0);
	wait_used(f, 2, head);
	put_stats(f, gpa, tags, v2, 5);
	head = post_stats(f, gpa, 5);
	wait_stats_updates(f, 2, &st);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_MEMFREE], 9 * MiB);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_AVAIL], 18 * MiB);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_SWAP_IN], 77);
	assert_true(st.guest_valid & 1u << VIRTIO_BALLOON_S_SWAP_IN);

	/* A reset forgets the held buffer; a new driver posts a new one. */
	bring_up(f, F_ALL, true, 4);
	put_stats(f, gpa, tags, v1, 2);
	head = post_stats(f, gpa, 2);
	wait_stats_updates(f, 3, &st);
	assert_int_equal(st.guest[VIRTIO_BALLOON_S_MEMFREE], 11 * MiB);
	assert_int_equal(balloon_request_stats(f->b), 0);
	wait_used(f, 2, head);
	assert_int_equal(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

static void
test_stats_periodic(void **state)
{
	struct balloon_opts o = BALLOON_OPTS_DEFAULT;
	struct fix *f;
	struct balloon_stats st;
	uint64_t gpa;
	uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE };
	uint64_t v[] = { 1 };
	unsigned int i;
	int head;

	o.stats_interval_ms = 10;
	f = fix_new(64 * MiB, &o);
	*state = f;
	bring_up(f, F_ALL, true, 4);
	gpa = vh_alloc(&f->m, 10, 8);
	/* Three rounds without asking: the device asks on its own. */
	for (i = 1; i <= 3; i++) {
		v[0] = i;
		put_stats(f, gpa, tags, v, 1);
		head = post_stats(f, gpa, 1);
		wait_stats_updates(f, i, &st);
		assert_int_equal(st.guest[VIRTIO_BALLOON_S_MEMFREE], i);
		wait_used(f, 2, head);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup_small,
						teardown),
		cmocka_unit_test_setup_teardown(test_target_config,
						setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_rss, setup_1g,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostile_pfns, setup_hole,
						teardown),
		cmocka_unit_test_setup_teardown(test_reporting, setup_small,
						teardown),
		cmocka_unit_test_setup_teardown(test_reporting_gapless,
						setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_reporting_gapless_nostats,
						setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_queue_without_role,
						setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup_small,
						teardown),
		cmocka_unit_test_teardown(test_stats_periodic, teardown),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
