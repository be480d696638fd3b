/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng (virtio 1.x, entropy device): one request queue whose
 * device-writable buffers the device fills from getrandom(2).
 *
 * Each request gets min(its writable length, RNG_MAX_REQUEST) bytes,
 * written across its buffers in order, and is returned with that count.
 * A zero-length request is returned with 0.
 *
 * A request with device-readable buffers breaks the spec's driver rule
 * ("the driver MUST NOT place device-readable buffers into the requestq")
 * and puts the device in NEEDS_RESET, as every other ring violation does
 * in the core; nothing is written for it.
 *
 * Rate. A guest that posts requests as fast as it can would otherwise keep
 * the I/O thread busy for ever. Requests are served through a token
 * bucket (rate bytes per second, bursts of burst bytes; every request
 * costs at least RNG_REQUEST_MIN_COST, so empty and tiny requests are
 * bounded too). While the bucket is empty the device leaves requests on
 * the ring, asks the driver not to kick and sleeps on a timer: requests
 * wait, none is dropped. One wakeup serves at most RNG_BUDGET requests and
 * then yields to the I/O thread's other work. Until the host's entropy
 * pool is initialized (early boot), requests wait the same way.
 */
#ifndef VMM_VIRTIO_RNG_H
#define VMM_VIRTIO_RNG_H

#include <stdint.h>

#include "mem.h"
#include "virtio/virtio.h"

#define RNG_QUEUE_MAX		256		/* entries in the requestq */
#define RNG_MAX_REQUEST		(64u * 1024)	/* bytes per request, at most */
#define RNG_REQUEST_MIN_COST	64		/* bytes charged per request */
#define RNG_BUDGET		64		/* requests per wakeup */
#define RNG_DEFAULT_RATE	(1u << 20)	/* bytes per second */
#define RNG_DEFAULT_BURST	(256u * 1024)	/* bytes */

struct rng;

/*
 * A new virtio-rng over mem (borrowed: it must outlive the device), with
 * its I/O thread running and the default rate. Returns 0 with *ret set (a
 * new reference), or a negative errno (-ENOMEM, timerfd or
 * virtio_device_init errors).
 */
int rng_new(const struct guest_mem *mem, struct rng **ret);

/*
 * The device to hand to a transport (virtio_pci_new()); borrowed, valid
 * until rng_free(). Its name (for logs) may be set before it is attached.
 */
struct virtio_device *rng_virtio(struct rng *r);

/*
 * Stop the I/O thread (if virtio_device_destroy() did not already) and
 * free. Call it after the transport is gone (virtio_pci_free()). NULL is
 * a no-op.
 */
void rng_free(struct rng *r);

/*
 * Serve at most bytes_per_sec on average with bursts of burst bytes; 0
 * means no limit. Any thread, any time. 0, or -EINVAL when a limit is
 * given with burst below RNG_MAX_REQUEST (a request could never fit).
 */
int rng_set_rate(struct rng *r, uint64_t bytes_per_sec, uint64_t burst);

struct rng_stats {
	uint64_t requests;	/* requests completed */
	uint64_t bytes;		/* random bytes given to the guest */
	uint64_t throttled;	/* times requests had to wait for the rate */
};

/* A snapshot of the counters. Any thread. */
void rng_get_stats(struct rng *r, struct rng_stats *ret);

#endif
