/* SPDX-License-Identifier: MIT */
/*
 * The device side of a split virtqueue (virtio 1.x, 2.7) over guest memory.
 *
 * Nothing the guest wrote is trusted. The three rings are translated and
 * checked once when the queue is set up; every buffer is translated and
 * checked when its chain is popped. A chain must keep inside guest RAM,
 * be no longer than the queue (which catches loops), put its writable
 * buffers after its readable ones, add up to at most 4 GiB - 1 in each
 * direction, and use indirect tables only when negotiated, never nested,
 * 16-byte multiples no longer than the queue. The available index may not
 * run ahead of us by more than the queue size. The first violation marks
 * the queue broken: it calls the error hook (the device core puts the
 * device in NEEDS_RESET there) and no chain is popped again until
 * virtq_reset().
 *
 * Threads: one thread (the device's I/O thread) pops and pushes; setup and
 * reset happen while that thread leaves the queue alone.
 */
#ifndef VMM_VIRTIO_VIRTQ_H
#define VMM_VIRTIO_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "mem.h"

#define VIRTQ_MAX_SIZE		32768	/* the spec's limit for a split ring */

/* Ring layout sizes for a queue of n entries (with the event fields). */
#define VIRTQ_DESC_BYTES(n)	(16ULL * (n))
#define VIRTQ_AVAIL_BYTES(n)	(6ULL + 2ULL * (n))
#define VIRTQ_USED_BYTES(n)	(6ULL + 8ULL * (n))

struct virtq;

/*
 * Called once, on the first violation after setup or reset, with a
 * one-line reason. Runs on the thread that popped.
 */
typedef void (*virtq_error_fn)(struct virtq *vq, const char *why, void *opaque);

struct virtq {
	/* Set by virtq_setup(); read-only afterwards. */
	const struct guest_mem *mem;
	uint16_t size;			/* entries, a power of two */
	bool event_idx;			/* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;			/* VIRTIO_F_RING_INDIRECT_DESC negotiated */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Host views of the rings, checked to lie inside guest RAM. */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	bool ready;			/* set up and not reset since */

	/* Device-side state, owned by the popping thread. */
	uint16_t last_avail;		/* next available entry to take */
	uint16_t used_idx;		/* our copy of used->idx */
	uint16_t signalled_used;	/* used_idx at the last notify check */
	bool signalled_valid;
	bool broken;			/* a violation was seen */
	bool stopping;			/* atomic: a reset is coming, pop no more */
	char why[128];			/* the first violation */

	virtq_error_fn on_error;	/* may be NULL */
	void *opaque;
	unsigned int index;		/* the queue's number, for messages */
};

/* One popped chain: readable iovecs first (nr_out), then writable (nr_in). */
struct virtq_elem {
	uint16_t head;			/* give back to virtq_push() */
	unsigned int nr_out;
	unsigned int nr_in;
	uint32_t out_len;		/* bytes the device may read */
	uint32_t in_len;		/* bytes the device may write */
	struct iovec *iov;		/* nr_out + nr_in entries, caller's array */
};

/*
 * Zero vq (keeping nothing) and set its index and error hook. The queue
 * is not ready until virtq_setup().
 */
void virtq_init(struct virtq *vq, unsigned int index, virtq_error_fn on_error,
		void *opaque);

/*
 * Check and map the rings: size a power of two up to VIRTQ_MAX_SIZE,
 * descriptor table 16-byte aligned, available ring 2-byte, used ring 4-byte,
 * each wholly inside guest RAM. Resets the indices. Returns 0, or -EINVAL
 * with vq->why saying which check failed (the queue stays not ready; the
 * error hook is not called: the caller decides what a bad setup means).
 */
int virtq_setup(struct virtq *vq, const struct guest_mem *mem, uint16_t size,
		uint64_t desc_gpa, uint64_t avail_gpa, uint64_t used_gpa,
		bool event_idx, bool indirect);

/*
 * Make virtq_pop() find nothing from now on, so that a device loop ends
 * and a reset can proceed. Any thread; cleared by virtq_reset().
 */
void virtq_stop(struct virtq *vq);

/* Forget the rings and every index; the queue is not ready. */
void virtq_reset(struct virtq *vq);

/*
 * Take the next available chain. iov is the caller's array of max_iov
 * entries; a chain with more buffers than that is a violation (devices
 * size it to what they advertised, or to the queue size). Zero-length
 * buffers are checked for order but take no iovec.
 *
 * Returns 1 with *ret filled, 0 when the queue is empty (after enabling
 * driver notifications and looking again, so no kick is lost) or about to
 * be reset (virtq_stop()), or -EIO on a violation or on a broken or
 * not-ready queue.
 */
int virtq_pop(struct virtq *vq, struct iovec *iov, unsigned int max_iov,
	      struct virtq_elem *ret);

/*
 * Give back chain head with written bytes of it filled, and publish the
 * used index. Returns 0; -EINVAL (nothing written) for a head outside the
 * queue or a queue that is not ready.
 */
int virtq_push(struct virtq *vq, uint16_t head, uint32_t written);

/*
 * Whether the driver wants an interrupt for what was pushed since the
 * last call: with EVENT_IDX, when the used index passed used_event; without,
 * unless the driver set VIRTQ_AVAIL_F_NO_INTERRUPT. False when nothing was
 * pushed since the last call.
 */
bool virtq_notify_needed(struct virtq *vq);

/*
 * Ask the driver not to kick (while the device is busy anyway): sets
 * VIRTQ_USED_F_NO_NOTIFY, or leaves avail_event behind with EVENT_IDX.
 * virtq_pop() turns kicks back on when it finds the queue empty.
 */
void virtq_disable_notify(struct virtq *vq);

/* Whether chains are waiting (no checks; virtq_pop() does those). */
bool virtq_has_work(struct virtq *vq);

/*
 * The EVENT_IDX test (virtio 1.x 2.7.10): true when event lies in
 * [old, new), i.e. the index moved past the other side's event index.
 * Exposed for tests.
 */
static inline bool
virtq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
