/* SPDX-License-Identifier: MIT */
/*
 * virtio-balloon: inflate/deflate PFN lists, free page reporting and the
 * statistics queue. See balloon.h for the rules; everything below but
 * the config accessors and the public setters/getters runs on the
 * device's I/O thread.
 */
#include "virtio/balloon.h"
#include "log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>

#define BALLOON_CONFIG_SIZE	16	/* num_pages, actual, cmd_id, poison */
#define BALLOON_STAT_BYTES	10	/* le16 tag, le64 value, packed */
#define BALLOON_STATS_MAX	64	/* records read from one buffer */
#define NSEC_PER_SEC		1000000000ULL

enum balloon_role {
	BALLOON_ROLE_NONE,
	BALLOON_ROLE_INFLATE,
	BALLOON_ROLE_DEFLATE,
	BALLOON_ROLE_STATS,
	BALLOON_ROLE_REPORTING,
};

/* A run of consecutive pages to discard: offset and length in the RAM
 * mapping (and the memfd). */
struct balloon_run {
	uint64_t off;
	uint64_t len;
};

struct balloon {
	struct virtio_device vdev;
	struct balloon_opts opts;
	uint64_t ram_pages;
	int timer_fd;			/* stats refresh period */
	int req_fd;			/* eventfd: balloon_request_stats() */

	uint32_t num_pages;		/* atomic: the host's target */
	uint32_t actual;		/* atomic: as the guest wrote it */
	uint64_t features;		/* atomic: negotiated, 0 before */

	/* The stats buffer the device holds (I/O thread only). */
	bool stats_held;
	uint16_t stats_head;

	pthread_mutex_t stats_lock;	/* the guest's statistics below */
	uint64_t guest[BALLOON_STAT_TAGS];
	uint32_t guest_valid;
	uint64_t guest_updates;
	uint64_t guest_updated_ns;

	/* Atomic counters. */
	uint64_t inflated, deflated, reported, bad_pfns, discard_errors;
	unsigned int nr_logged;

	struct iovec iov[BALLOON_QUEUE_MAX];
};

static uint64_t
balloon_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static bool
balloon_has(struct balloon *b, unsigned int bit)
{
	return virtio_has_feature(&b->vdev, bit);
}

/*
 * Which queue index q is under the negotiated features, taking both the
 * spec's fixed numbering and the gapless one of older Linux (balloon.h).
 */
static enum balloon_role
balloon_role(struct balloon *b, unsigned int q)
{
	bool stats = balloon_has(b, VIRTIO_BALLOON_F_STATS_VQ);
	bool rep = balloon_has(b, VIRTIO_BALLOON_F_REPORTING);

	switch (q) {
	case BALLOON_INFLATE_QUEUE:
		return BALLOON_ROLE_INFLATE;
	case BALLOON_DEFLATE_QUEUE:
		return BALLOON_ROLE_DEFLATE;
	case 2:
		if (stats)
			return BALLOON_ROLE_STATS;
		return rep ? BALLOON_ROLE_REPORTING : BALLOON_ROLE_NONE;
	case 3:
		return stats && rep ? BALLOON_ROLE_REPORTING : BALLOON_ROLE_NONE;
	case 4:
		return rep ? BALLOON_ROLE_REPORTING : BALLOON_ROLE_NONE;
	}
	return BALLOON_ROLE_NONE;
}


/* A guest can send these at will: a few, then silence. */
static void
balloon_log_bad(struct balloon *b, const char *what, uint32_t pfn)
{
	unsigned int n = __atomic_fetch_add(&b->nr_logged, 1,
					    __ATOMIC_RELAXED);

	if (n >= BALLOON_LOG_BURST)
		return;
	log_warn("virtio-balloon \"%s\": %s PFN 0x%" PRIx32 " (gpa 0x%"
		 PRIx64 ") is outside guest RAM, ignored%s",
		 b->vdev.name ? b->vdev.name : "", what, pfn,
		 (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT,
		 n + 1 == BALLOON_LOG_BURST ?
		 " (further such messages suppressed)" : "");
}

/*
 * Give [off, off + len) of guest RAM back to the host. The memfd's pages
 * go away for every mapping of it, so the RSS drops and the next touch
 * finds zeros.
 */
static int
balloon_discard(struct balloon *b, uint64_t off, uint64_t len)
{
	const struct guest_mem *m = b->vdev.mem;

	if (m->fd >= 0) {
		if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) == 0)
			return 0;
		if (errno != EOPNOTSUPP)
			return -errno;
	}
	if (madvise(m->hva + off, len,
		    m->fd >= 0 ? MADV_REMOVE : MADV_DONTNEED) < 0)
		return -errno;
	return 0;
}

static void
balloon_run_flush(struct balloon *b, struct balloon_run *run)
{
	if (run->len && balloon_discard(b, run->off, run->len) < 0)
		__atomic_add_fetch(&b->discard_errors, 1, __ATOMIC_RELAXED);
	run->len = 0;
}

/* Add the page at mapping offset off to run, flushing what it ends. */
static void
balloon_run_add(struct balloon *b, struct balloon_run *run, uint64_t off)
{
	if (run->len && run->off + run->len == off) {
		run->len += BALLOON_PAGE_SIZE;
		return;
	}
	balloon_run_flush(b, run);
	run->off = off;
	run->len = BALLOON_PAGE_SIZE;
}

/*
 * One PFN of an inflate (discard) or deflate list. Returns whether it
 * named a page of guest RAM.
 */
static bool
balloon_pfn(struct balloon *b, uint32_t pfn, bool inflate,
	    struct balloon_run *run)
{
	const struct guest_mem *m = b->vdev.mem;
	uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT;
	uint8_t *hva = guest_mem_ptr(m, gpa, BALLOON_PAGE_SIZE);

	if (!hva) {
		__atomic_add_fetch(&b->bad_pfns, 1, __ATOMIC_RELAXED);
		balloon_log_bad(b, inflate ? "inflate" : "deflate", pfn);
		return false;
	}
	if (inflate)
		balloon_run_add(b, run, (uint64_t)(hva - m->hva));
	return true;
}

/* The readable part of el as a stream of le32 PFNs; a PFN may straddle
 * two buffers, trailing bytes short of one are ignored. */
static void
balloon_pfn_list(struct balloon *b, const struct virtq_elem *el, bool inflate)
{
	struct balloon_run run = { 0, 0 };
	uint8_t part[4];
	unsigned int i, have = 0;
	uint64_t good = 0;
	uint32_t pfn;

	for (i = 0; i < el->nr_out; i++) {
		const uint8_t *p = b->iov[i].iov_base;
		size_t len = b->iov[i].iov_len, j = 0;

		while (j < len) {
			if (have == 0 && len - j >= 4) {
				memcpy(&pfn, p + j, 4);
				j += 4;
			} else {
				part[have++] = p[j++];
				if (have < 4)
					continue;
				memcpy(&pfn, part, 4);
				have = 0;
			}
			good += balloon_pfn(b, le32toh(pfn), inflate, &run);
		}
	}
	balloon_run_flush(b, &run);
	__atomic_add_fetch(inflate ? &b->inflated : &b->deflated, good,
			   __ATOMIC_RELAXED);
}

/* Discard every whole page inside each buffer of a reporting chain. */
static void
balloon_report(struct balloon *b, const struct virtq_elem *el)
{
	const struct guest_mem *m = b->vdev.mem;
	struct balloon_run run = { 0, 0 };
	unsigned int i;
	uint64_t pages = 0;

	for (i = 0; i < el->nr_out + el->nr_in; i++) {
		/* virtq_pop() checked the buffer lies in one RAM region,
		 * hence in one stretch of the mapping. */
		uint64_t start = (uint64_t)((uint8_t *)b->iov[i].iov_base -
					    m->hva);
		uint64_t end = start + b->iov[i].iov_len;
		uint64_t first = (start + BALLOON_PAGE_SIZE - 1) &
				 ~(BALLOON_PAGE_SIZE - 1);
		uint64_t last = end & ~(BALLOON_PAGE_SIZE - 1);

		if (first >= last)
			continue;
		if (run.len && run.off + run.len == first) {
			run.len += last - first;
		} else {
			balloon_run_flush(b, &run);
			run.off = first;
			run.len = last - first;
		}
		pages += (last - first) / BALLOON_PAGE_SIZE;
	}
	balloon_run_flush(b, &run);
	__atomic_add_fetch(&b->reported, pages, __ATOMIC_RELAXED);
}

/* Read the (tag, value) records of a stats buffer into the snapshot. */
static void
balloon_stats_read(struct balloon *b, const struct virtq_elem *el)
{
	uint8_t buf[BALLOON_STATS_MAX * BALLOON_STAT_BYTES];
	size_t n = 0, k;
	unsigned int i;
	uint16_t tag;
	uint64_t val;

	for (i = 0; i < el->nr_out && n < sizeof(buf); i++) {
		size_t len = b->iov[i].iov_len;

		if (len > sizeof(buf) - n)
			len = sizeof(buf) - n;
		memcpy(buf + n, b->iov[i].iov_base, len);
		n += len;
	}
	pthread_mutex_lock(&b->stats_lock);
	for (k = 0; k + BALLOON_STAT_BYTES <= n; k += BALLOON_STAT_BYTES) {
		memcpy(&tag, buf + k, 2);
		memcpy(&val, buf + k + 2, 8);
		tag = le16toh(tag);
		if (tag >= BALLOON_STAT_TAGS)
			continue;	/* a newer tag we do not keep */
		b->guest[tag] = le64toh(val);
		b->guest_valid |= 1u << tag;
	}
	b->guest_updates++;
	b->guest_updated_ns = balloon_now_ns();
	pthread_mutex_unlock(&b->stats_lock);
}

/* Hand the held stats buffer back so the driver refills it. */
static void
balloon_stats_release(struct balloon *b)
{
	struct virtq *vq = virtio_device_queue(&b->vdev, BALLOON_STATS_QUEUE);

	if (!b->stats_held || !virtio_queue_live(&b->vdev, vq->index))
		return;
	b->stats_held = false;
	virtq_push(vq, b->stats_head, 0);
	virtio_queue_signal(&b->vdev, vq);
}

static void
balloon_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct balloon *b = vdev->opaque;
	enum balloon_role role = balloon_role(b, vq->index);
	struct virtq_elem el;
	unsigned int n;
	int got;

	if (!virtio_queue_live(vdev, vq->index))
		return;
	for (n = 0;; n++) {
		if (n == BALLOON_BUDGET) {
			/* Yield: the doorbell brings us back after the other
			 * work the I/O thread has waiting. */
			virtio_queue_yield(vdev, vq->index);
			break;
		}
		got = virtq_pop(vq, b->iov, BALLOON_QUEUE_MAX, &el);
		if (got <= 0)
			break;
		switch (role) {
		case BALLOON_ROLE_INFLATE:
			balloon_pfn_list(b, &el, true);
			break;
		case BALLOON_ROLE_DEFLATE:
			balloon_pfn_list(b, &el, false);
			break;
		case BALLOON_ROLE_REPORTING:
			balloon_report(b, &el);
			break;
		case BALLOON_ROLE_STATS:
			balloon_stats_read(b, &el);
			/* A driver keeps one buffer here; should a second
			 * come, the older goes back. */
			if (b->stats_held)
				virtq_push(vq, b->stats_head, 0);
			b->stats_held = true;
			b->stats_head = el.head;
			continue;
		case BALLOON_ROLE_NONE:
			virtio_device_needs_reset(vdev, "buffer on queue %u, "
						  "which the negotiated "
						  "features give no role",
						  vq->index);
			return;
		}
		virtq_push(vq, el.head, 0);
	}
	virtio_queue_signal(vdev, vq);
}

static void
balloon_timer_set(struct balloon *b, uint32_t ms)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	its.it_interval = its.it_value;
	/* Cannot fail on a valid timerfd with a valid value. */
	(void)timerfd_settime(b->timer_fd, 0, &its, NULL);
}

static void
balloon_timer_event(struct virtio_device *vdev, int fd, uint32_t events,
		    void *arg)
{
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	balloon_stats_release(arg);
}

/* At FEATURES_OK (vCPU thread), so balloon_get_info() shows them as
 * soon as the driver sees them accepted. */
static int
balloon_features_ok(struct virtio_device *vdev, uint64_t features)
{
	struct balloon *b = vdev->opaque;

	__atomic_store_n(&b->features, features & 0xffffffULL,
			 __ATOMIC_RELAXED);
	return 0;
}

static void
balloon_activate(struct virtio_device *vdev)
{
	struct balloon *b = vdev->opaque;

	if (balloon_has(b, VIRTIO_BALLOON_F_STATS_VQ) &&
	    b->opts.stats_interval_ms)
		balloon_timer_set(b, b->opts.stats_interval_ms);
}

static void
balloon_reset(struct virtio_device *vdev)
{
	struct balloon *b = vdev->opaque;

	balloon_timer_set(b, 0);
	b->stats_held = false;
	__atomic_store_n(&b->features, 0, __ATOMIC_RELAXED);
	/* A driver starting over starts with an empty balloon: every page
	 * is the guest's again (discarded ones refill on touch). */
	__atomic_store_n(&b->actual, 0, __ATOMIC_RELAXED);
}

static void
balloon_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
		    uint32_t len)
{
	struct balloon *b = vdev->opaque;
	uint32_t cfg[BALLOON_CONFIG_SIZE / 4] = { 0 };

	cfg[0] = htole32(__atomic_load_n(&b->num_pages, __ATOMIC_ACQUIRE));
	cfg[1] = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
	memcpy(data, (uint8_t *)cfg + offset, len);
}

static void
balloon_config_write(struct virtio_device *vdev, uint32_t offset,
		     const void *data, uint32_t len)
{
	struct balloon *b = vdev->opaque;
	uint32_t old, v;
	uint32_t i;

	/* Only actual, bytes [4, 8), is the driver's to write. */
	do {
		old = __atomic_load_n(&b->actual, __ATOMIC_RELAXED);
		v = htole32(old);
		for (i = 0; i < len; i++) {
			uint32_t at = offset + i;

			if (at >= 4 && at < 8)
				((uint8_t *)&v)[at - 4] =
					((const uint8_t *)data)[i];
		}
		v = le32toh(v);
	} while (!__atomic_compare_exchange_n(&b->actual, &old, v, false,
					      __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
}

static void
balloon_req_event(struct virtio_device *vdev, int fd, uint32_t events,
		  void *arg)
{
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	balloon_stats_release(arg);
}

static const struct virtio_device_ops balloon_ops = {
	.name = "virtio-balloon",
	.device_id = VIRTIO_ID_BALLOON,
	.pci_class = 0x050000,	/* memory controller, as others use */
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.features_ok = balloon_features_ok,
	.queue_notify = balloon_queue_notify,
	.activate = balloon_activate,
	.reset = balloon_reset,
};

int
balloon_new(const struct guest_mem *mem, const struct balloon_opts *opts,
	    struct balloon **ret)
{
	struct balloon *b;
	uint64_t f = 0;
	int e;

	if (!mem || !ret || mem->size / BALLOON_PAGE_SIZE > UINT32_MAX)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->opts = opts ? *opts : BALLOON_OPTS_DEFAULT;
	b->ram_pages = mem->size / BALLOON_PAGE_SIZE;
	b->req_fd = -1;
	pthread_mutex_init(&b->stats_lock, NULL);
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->timer_fd < 0) {
		e = -errno;
		goto fail;
	}
	b->req_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->req_fd < 0) {
		e = -errno;
		goto fail;
	}
	if (b->opts.stats)
		f |= 1ULL << VIRTIO_BALLOON_F_STATS_VQ;
	if (b->opts.deflate_on_oom)
		f |= 1ULL << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (b->opts.reporting)
		f |= 1ULL << VIRTIO_BALLOON_F_REPORTING;
	if (b->opts.must_tell_host)
		f |= 1ULL << VIRTIO_BALLOON_F_MUST_TELL_HOST;
	b->vdev.ops = &balloon_ops;
	b->vdev.name = "balloon";
	b->vdev.mem = mem;
	b->vdev.features = f;
	b->vdev.config_size = BALLOON_CONFIG_SIZE;
	b->vdev.nr_queues = BALLOON_NR_QUEUES;
	b->vdev.opaque = b;
	e = virtio_device_init(&b->vdev, BALLOON_QUEUE_MAX);
	if (e < 0)
		goto fail;
	e = virtio_device_watch_fd(&b->vdev, b->timer_fd, EPOLLIN,
				   balloon_timer_event, b);
	if (e < 0)
		goto fail;
	e = virtio_device_watch_fd(&b->vdev, b->req_fd, EPOLLIN,
				   balloon_req_event, b);
	if (e < 0)
		goto fail;
	*ret = b;
	return 0;
fail:
	balloon_free(b);
	return e;
}

struct virtio_device *
balloon_virtio(struct balloon *b)
{
	return &b->vdev;
}

void
balloon_free(struct balloon *b)
{
	if (!b)
		return;
	virtio_device_destroy(&b->vdev);
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	if (b->req_fd >= 0)
		close(b->req_fd);
	pthread_mutex_destroy(&b->stats_lock);
	free(b);
}

int
balloon_set_target(struct balloon *b, uint64_t guest_bytes)
{
	uint64_t ram = b->ram_pages * BALLOON_PAGE_SIZE;
	uint64_t keep;

	if (guest_bytes > ram)
		return -EINVAL;
	/* Round the guest's share up: it keeps at least guest_bytes. */
	keep = (guest_bytes + BALLOON_PAGE_SIZE - 1) / BALLOON_PAGE_SIZE;
	__atomic_store_n(&b->num_pages, (uint32_t)(b->ram_pages - keep),
			 __ATOMIC_RELEASE);
	virtio_config_changed(&b->vdev);
	return 0;
}

int
balloon_request_stats(struct balloon *b)
{
	if (!b->opts.stats)
		return -ENOTSUP;
	if (write(b->req_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		return -errno;
	return 0;
}

void
balloon_get_info(struct balloon *b, uint64_t *target_bytes,
		 uint64_t *actual_bytes, struct balloon_stats *stats)
{
	uint64_t np = __atomic_load_n(&b->num_pages, __ATOMIC_ACQUIRE);
	uint64_t act = __atomic_load_n(&b->actual, __ATOMIC_RELAXED);

	if (target_bytes)
		*target_bytes = (b->ram_pages - np) * BALLOON_PAGE_SIZE;
	if (actual_bytes)
		*actual_bytes = act > b->ram_pages ? 0 :
				(b->ram_pages - act) * BALLOON_PAGE_SIZE;
	if (!stats)
		return;
	memset(stats, 0, sizeof(*stats));
	pthread_mutex_lock(&b->stats_lock);
	memcpy(stats->guest, b->guest, sizeof(stats->guest));
	stats->guest_valid = b->guest_valid;
	stats->guest_updates = b->guest_updates;
	stats->guest_updated_ns = b->guest_updated_ns;
	pthread_mutex_unlock(&b->stats_lock);
	stats->features = __atomic_load_n(&b->features, __ATOMIC_RELAXED);
	stats->inflated_pages = __atomic_load_n(&b->inflated, __ATOMIC_RELAXED);
	stats->deflated_pages = __atomic_load_n(&b->deflated, __ATOMIC_RELAXED);
	stats->reported_pages = __atomic_load_n(&b->reported, __ATOMIC_RELAXED);
	stats->bad_pfns = __atomic_load_n(&b->bad_pfns, __ATOMIC_RELAXED);
	stats->discard_errors = __atomic_load_n(&b->discard_errors,
						__ATOMIC_RELAXED);
}
