/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon (virtio 1.x, traditional memory balloon device).
 *
 * Queues, by the spec's numbering: inflateq 0, deflateq 1, statsq 2 (with
 * VIRTIO_BALLOON_F_STATS_VQ), free_page_vq 3 (never: FREE_PAGE_HINT is not
 * offered), reporting_vq 4 (with VIRTIO_BALLOON_F_REPORTING). Linux before
 * 6.11 numbered the queues it used without gaps, putting reporting_vq at 3
 * (or at 2 without STATS_VQ); the device takes a reporting buffer on
 * either index, so both kinds of driver work. num_queues reads 5.
 *
 * Config space: num_pages (the balloon size the host wants, in 4 KiB
 * pages; set by balloon_set_target(), read-only to the guest), actual
 * (the balloon size the guest reports, written by it), then
 * free_page_hint_cmd_id and poison_val, which read 0.
 *
 * Inflate. Each buffer on inflateq holds little-endian u32 page frame
 * numbers (4 KiB pages, whatever the guest's page size). Every PFN whose
 * page lies in guest RAM is discarded: the page is punched out of the
 * memfd behind guest RAM (fallocate PUNCH_HOLE, or MADV_REMOVE; for RAM
 * without a memfd, MADV_DONTNEED), so the host gets the memory back and
 * the VMM's RSS drops; the page reads as zeros when the guest next uses
 * it. A PFN outside RAM (beyond its end, in the PCI hole) is ignored,
 * counted and logged (rate-limited); it never makes the device punch
 * anything. Runs of consecutive PFNs are discarded with one call.
 *
 * Deflate. Nothing to do: a discarded page is filled on the next touch.
 * PFNs are checked and counted the same way. With or without
 * VIRTIO_BALLOON_F_MUST_TELL_HOST (offered only on request) the guest may
 * use a deflated page at once; without it, even before telling us, which
 * is equally fine since the device never touches a page after it returned
 * the inflate buffer that named it.
 *
 * Free page reporting. Each buffer on the reporting queue (device-writable
 * as Linux posts them; readable ones are taken too) is a range of free
 * guest memory; every whole 4 KiB page in it is discarded as above before
 * the buffer is returned. PAGE_POISON is not offered, so Linux reports
 * only when it does not poison free pages.
 *
 * Statistics. The driver posts one buffer of (le16 tag, le64 value)
 * records on statsq; the device reads it, keeps the latest value of
 * every tag below BALLOON_STAT_TAGS, and holds the buffer. To get fresh
 * values the device gives the buffer back (the driver then refills and
 * reposts it): every stats_interval_ms, and at balloon_request_stats().
 *
 * DEFLATE_ON_OOM is offered on request: the guest may then deflate under
 * memory pressure, leaving actual below num_pages; that is not an error.
 *
 * Protocol errors: a buffer on a queue index that has no role under the
 * negotiated features puts the device in NEEDS_RESET, as ring violations
 * do in the core. Fairness: one wakeup serves at most BALLOON_BUDGET
 * buffers per queue, then yields to the I/O thread's other work.
 *
 * Threads: the queues, the stats timer and stats requests are handled on
 * the device's I/O thread; balloon_set_target(), balloon_request_stats()
 * and balloon_get_info() may be called from any thread at any time.
 */
#ifndef VMM_VIRTIO_BALLOON_H
#define VMM_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "mem.h"
#include "virtio/virtio.h"

#define BALLOON_QUEUE_MAX	256	/* entries per queue */
#define BALLOON_BUDGET		64	/* buffers per queue per wakeup */
#define BALLOON_PAGE_SIZE	4096ULL	/* the unit of PFNs and num_pages */
#define BALLOON_STAT_TAGS	16	/* guest stat tags kept: 0..15 */
#define BALLOON_LOG_BURST	8	/* hostile-PFN messages per device */
#define BALLOON_STATS_INTERVAL_MS 5000	/* the default refresh period */

#define BALLOON_INFLATE_QUEUE	0
#define BALLOON_DEFLATE_QUEUE	1
#define BALLOON_STATS_QUEUE	2
#define BALLOON_REPORTING_QUEUE	4	/* or 3, or 2: see above */
#define BALLOON_NR_QUEUES	5

struct balloon_opts {
	bool stats;			/* offer STATS_VQ */
	bool deflate_on_oom;		/* offer DEFLATE_ON_OOM */
	bool reporting;			/* offer REPORTING */
	bool must_tell_host;		/* offer MUST_TELL_HOST */
	/* Give the stats buffer back this often; 0: only on request. */
	uint32_t stats_interval_ms;
};

/* What balloon_new(mem, NULL, ...) uses. */
#define BALLOON_OPTS_DEFAULT ((struct balloon_opts){ \
	.stats = true, .deflate_on_oom = true, .reporting = true, \
	.must_tell_host = false, \
	.stats_interval_ms = BALLOON_STATS_INTERVAL_MS })

struct balloon;

/*
 * A new virtio-balloon over mem (borrowed: it must outlive the device),
 * with its I/O thread running and a target of all of RAM (balloon empty).
 * opts is copied; NULL means BALLOON_OPTS_DEFAULT. Returns 0 with *ret
 * set (a new reference), or a negative errno (-EINVAL for a NULL mem or
 * ret, or RAM larger than 2^32 pages; -ENOMEM; timerfd, eventfd or
 * virtio_device_init errors).
 */
int balloon_new(const struct guest_mem *mem, const struct balloon_opts *opts,
		struct balloon **ret);

/*
 * The device to hand to a transport (virtio_pci_new()); borrowed, valid
 * until balloon_free(). Its name (for logs) may be set before attaching.
 */
struct virtio_device *balloon_virtio(struct balloon *b);

/*
 * Stop the I/O thread (if virtio_device_destroy() did not already) and
 * free. Call it after the transport is gone. NULL is a no-op.
 */
void balloon_free(struct balloon *b);

/*
 * Ask the guest to leave itself guest_bytes of RAM: num_pages becomes
 * (RAM size - guest_bytes) / 4 KiB, rounded down (so the guest keeps at
 * least guest_bytes), and the driver gets a configuration-change
 * interrupt. Any thread. 0, or -EINVAL when guest_bytes exceeds RAM.
 */
int balloon_set_target(struct balloon *b, uint64_t guest_bytes);

/*
 * Ask the guest for fresh statistics now (the held stats buffer goes back
 * to it). Any thread; asynchronous: watch guest_updates in
 * balloon_get_info(). 0, or -ENOTSUP when STATS_VQ was not offered.
 */
int balloon_request_stats(struct balloon *b);

struct balloon_stats {
	/* The guest's latest statistics, by VIRTIO_BALLOON_S_* tag. */
	uint64_t guest[BALLOON_STAT_TAGS];
	uint32_t guest_valid;		/* bit t: guest[t] was reported */
	uint64_t guest_updates;		/* stats buffers read */
	uint64_t guest_updated_ns;	/* CLOCK_MONOTONIC of the last; 0 */
	/* The device's counters. */
	uint64_t features;		/* negotiated VIRTIO_BALLOON_F_* bits */
	uint64_t inflated_pages;	/* PFNs inflated and discarded */
	uint64_t deflated_pages;	/* PFNs deflated */
	uint64_t reported_pages;	/* pages discarded by reporting */
	uint64_t bad_pfns;		/* PFNs outside RAM, ignored */
	uint64_t discard_errors;	/* fallocate/madvise failures */
};

/*
 * A snapshot. target_bytes: the guest RAM asked for by the last
 * balloon_set_target() (RAM size minus num_pages pages); actual_bytes:
 * the guest RAM left outside the balloon by the guest's own count (RAM
 * size minus actual pages, 0 if actual exceeds RAM). Any pointer may be
 * NULL. Any thread.
 */
void balloon_get_info(struct balloon *b, uint64_t *target_bytes,
		      uint64_t *actual_bytes, struct balloon_stats *stats);

#endif
