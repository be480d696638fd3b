/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.x, 5.2) on a raw image file or a block device.
 *
 * The device is an ops table plus state on the virtio core (virtio.h); it
 * never knows its transport. I/O is asynchronous: requests are popped,
 * checked (blk_parse()) and handed to io_uring as read/write (one data
 * buffer) or readv/writev straight into guest memory (no copies), one
 * submission per batch of kicks and one interrupt per batch of
 * completions. The ring uses IORING_SETUP_COOP_TASKRUN and the image as a
 * registered file where the kernel has them; guest RAM is not registered
 * (that would pin all of it). Where io_uring cannot be set up (or
 * BLK_ENGINE_THREADS / VMM_BLK_ENGINE=threads asks for it) a pool of
 * BLK_POOL_THREADS workers does preadv/pwritev instead.
 *
 * Choices the spec leaves to us:
 * - Capacity is the file size in 512-byte sectors, rounded down: a tail
 *   shorter than a sector is never read or written.
 * - A chain without a writable byte (nowhere to put the status) puts the
 *   device in NEEDS_RESET. Everything else that is wrong with a request
 *   completes it with IOERR (header shorter than 16 bytes, data length not
 *   a multiple of 512, data in the wrong direction, a sector range outside
 *   the disk or overflowing, a discard/write-zeroes segment list that is
 *   empty, not a multiple of 16 bytes, longer than the advertised maximum
 *   or with a segment too long or out of range, writes to a read-only
 *   disk), or UNSUPP (unknown types, discard/write-zeroes not negotiated,
 *   unknown segment flags, the unmap flag on a discard). Nothing of the
 *   file outside the disk's range is ever touched.
 * - FLUSH is an fdatasync (IORING_OP_FSYNC with IORING_FSYNC_DATASYNC) of
 *   the image, completed after it returned. It is not ordered against
 *   requests still in flight: the driver only sees a write completed once
 *   its CQE was reaped, so every write the driver knows as completed
 *   before it sent the FLUSH is covered (the spec's case 3). A driver that
 *   did not negotiate FLUSH gets write-through writes (RWF_DSYNC).
 * - GET_ID writes the serial NUL-padded to 20 bytes (no NUL at exactly 20)
 *   into the first 20 bytes of the data buffer (fewer if the buffer is
 *   shorter); no serial reads as 20 NULs.
 * - DISCARD punches holes (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
 *   where the file system cannot, it is a successful no-op (a discard is a
 *   hint). WRITE_ZEROES punches when the unmap flag is set, otherwise (or
 *   when punching is not supported) uses FALLOC_FL_ZERO_RANGE, and falls
 *   back to writing zeroes.
 * - With O_DIRECT, a buffer whose address or length does not meet the
 *   file's direct-I/O alignment goes through a bounce buffer, at most
 *   BLK_BOUNCE_CHUNK bytes at a time.
 *
 * Reset waits for every request in flight (cancelling what io_uring can
 * cancel) before it returns; completions after that never touch guest
 * memory.
 *
 * I/O limits (ratelimit.h): a token bucket of bytes and one of operations
 * per disk, shared by all its queues, set at creation (blk_options.limits)
 * and changed at any time from any thread (blk_set_limits()). The I/O
 * thread asks the limiter before it starts each request it popped; when
 * the answer is "wait T ns", that request is held (the only one popped
 * and not started), nothing more is taken from any available ring (the
 * driver sees a full ring, not errors) and a timerfd is armed for exactly
 * then (CLOCK_MONOTONIC, absolute), so the delivered rate is the
 * configured one however short the refill time. A reset drops the held
 * request with the rest; the buckets' levels survive it (a reset buys no
 * new burst). What a request costs:
 * - READ and WRITE: one operation and their data bytes.
 * - FLUSH and DISCARD: one operation, no bytes: they move no data.
 * - WRITE_ZEROES: one operation, and its bytes only when they will be
 *   written as zeroes, i.e. once the file system refused
 *   FALLOC_FL_ZERO_RANGE (and, with the unmap flag, punching too):
 *   punching and zeroing ranges are metadata work, while writing zeroes
 *   moves as much as a WRITE. A write-zeroes larger than the byte bucket
 *   goes when the bucket is full and is paid back, as any request.
 * - GET_ID, and requests refused by the parser: nothing (no I/O).
 * With no limit set (the default) the I/O path reads no clock, arms no
 * timer and takes no lock.
 */
#ifndef VMM_VIRTIO_BLK_H
#define VMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_blk.h>

#include "mem.h"
#include "ratelimit.h"
#include "virtio/virtio.h"
#include "virtio/virtq.h"

#define BLK_SECTOR_SHIFT	9
#define BLK_SECTOR_SIZE		512u
#define BLK_HDR_SIZE		16u	/* struct virtio_blk_outhdr */
#define BLK_SERIAL_MAX		VIRTIO_BLK_ID_BYTES
#define BLK_MAX_QUEUES		16
#define BLK_QUEUE_SIZE		256	/* each queue's maximum size */
#define BLK_SEG_MAX		(BLK_QUEUE_SIZE - 2)	/* header, status */
#define BLK_MAX_INFLIGHT	128	/* requests in flight, io_uring depth */
#define BLK_MAX_DISCARD_SEG	32
#define BLK_MAX_DISCARD_SECTORS	(1u << 22)	/* 2 GiB per segment */
#define BLK_POOL_THREADS	4
#define BLK_BOUNCE_CHUNK	(128u << 10)

enum blk_engine {
	BLK_ENGINE_AUTO,	/* io_uring, else the thread pool */
	BLK_ENGINE_URING,	/* io_uring or fail */
	BLK_ENGINE_THREADS,	/* the thread pool */
};

struct blk_options {
	const char *path;	/* the image; borrowed during blk_new() */
	bool readonly;
	const char *serial;	/* NULL or "": none; printable, <= 20 bytes */
	bool direct;		/* O_DIRECT */
	unsigned int num_queues;	/* 0 or 1: one; up to BLK_MAX_QUEUES */
	/* AUTO here defers to the environment, VMM_BLK_ENGINE=uring|threads. */
	enum blk_engine engine;
	/* Tests only: each thread-pool operation sleeps this long first. */
	unsigned int test_delay_us;
	/* I/O limits; all 0 (the default): none. */
	struct ratelimit_limits limits;
};

struct blk;

/*
 * Open and lock the image (an OFD lock on the whole file: a write lock
 * for read-write, a read lock for read-only), set up the I/O engine and
 * the virtio device (I/O thread started). mem is borrowed and must
 * outlive the device.
 *
 * Returns 0 with *ret set, or a negative errno with a one-line message
 * naming the image in err: -ENOENT (missing), -EISDIR (a directory),
 * -EACCES/-EPERM (not readable/writable), -EINVAL (not a regular file or
 * block device, a bad serial or queue count, O_DIRECT refused, limits
 * that ratelimit_limits_check() refuses: the message names the field),
 * -EBUSY
 * ("disk image 'X' is in use by another VM"), or whatever open, fstat,
 * io_uring or the virtio core returned.
 */
int blk_new(const struct blk_options *o, const struct guest_mem *mem,
	    struct blk **ret, char *err, size_t errlen);

/*
 * Stop the device: its I/O thread (virtio_device_destroy()), then wait
 * for the I/O in flight, which may still be writing into guest memory.
 * Idempotent; NULL is fine. Teardown order, once the vCPUs are stopped:
 * blk_stop(), the transport (pci_host_free(), virtio_pci_free(), which
 * still use the virtio device), blk_free(); guest RAM may go after
 * blk_stop().
 */
void blk_stop(struct blk *b);

/* blk_stop() if not done, release the image's lock, free. NULL is fine. */
void blk_free(struct blk *b);

/* The virtio device to put on a transport (borrowed). */
struct virtio_device *blk_virtio(struct blk *b);

/* Capacity in 512-byte sectors. */
uint64_t blk_capacity(const struct blk *b);
/* "io_uring" or "threads". */
const char *blk_engine_name(const struct blk *b);

struct blk_stats {
	uint64_t reads, read_bytes;
	uint64_t writes, write_bytes;
	uint64_t flushes;
	uint64_t discards, write_zeroes;	/* requests */
	uint64_t get_ids;
	uint64_t errors;	/* requests completed with IOERR */
	uint64_t unsupported;	/* requests completed with UNSUPP */
	uint64_t inflight;	/* requests in flight now (not the one held
				 * by the limiter) */
	uint64_t throttled;	/* requests the limiter held back */
	uint64_t throttled_ns;	/* time they were held, up to now */
};
/* A snapshot of the counters. Any thread. */
void blk_get_stats(struct blk *b, struct blk_stats *ret);

/*
 * Replace the disk's I/O limits (all of them: a rate of 0 lifts that
 * limit, a burst of 0 is one second's worth). Any thread, at any time
 * between blk_new() and blk_free(), whether the driver runs or not. The
 * I/O thread is woken and applies them before it starts another request;
 * the buckets keep their levels (capped at the new bursts), a bucket that
 * was unlimited starts full, and a request held back is looked at again
 * at once. Returns 0, or -EINVAL (nothing changed) for limits that
 * ratelimit_limits_check() refuses.
 */
int blk_set_limits(struct blk *b, const struct ratelimit_limits *l);

/* The limits last set (blk_new() or blk_set_limits()), as given. Any
 * thread. */
void blk_get_limits(struct blk *b, struct ratelimit_limits *ret);

/* --- The request parser (for the device, its tests and the fuzzer) ---- */

/* What the parser needs to know about the disk and the negotiation. */
struct blk_limits {
	uint64_t capacity;	/* sectors */
	bool readonly;
	bool discard;		/* VIRTIO_BLK_F_DISCARD negotiated */
	bool write_zeroes;	/* VIRTIO_BLK_F_WRITE_ZEROES negotiated */
	const char *serial;	/* NULL: none */
};

enum blk_op {
	BLK_OP_NONE,		/* complete now with status */
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* One discard / write-zeroes segment, in bytes of the file. */
struct blk_seg {
	uint64_t offset;
	uint64_t len;
	bool unmap;
};

struct blk_parsed {
	uint32_t type;		/* VIRTIO_BLK_T_* as the driver wrote it */
	enum blk_op op;
	uint8_t status;		/* VIRTIO_BLK_S_*: the result when op is NONE */
	uint8_t *status_ptr;	/* the status byte in guest memory */
	uint32_t used_len;	/* for the used ring: the writable bytes */
	uint64_t offset;	/* READ/WRITE: file offset in bytes */
	uint64_t len;		/* READ/WRITE: bytes, a multiple of 512 */
	unsigned int nr_iov;	/* READ/WRITE: data iovecs in data_iov */
	unsigned int nr_segs;	/* DISCARD/WRITE_ZEROES */
	struct blk_seg segs[BLK_MAX_DISCARD_SEG];
};

/*
 * Check the chain el (as virtq_pop() returned it) against lim and work out
 * what to do. data_iov (max_data_iov entries, at least el->nr_out +
 * el->nr_in) receives the data buffers of a READ or WRITE: the chain's
 * iovecs without the header and the status byte. A GET_ID is carried out
 * here (the serial written into the buffer), so op is NONE.
 *
 * Returns 0 with *ret filled, or -EBADMSG when the chain has no writable
 * byte for the status (the device then needs a reset).
 */
int blk_parse(const struct blk_limits *lim, const struct virtq_elem *el,
	      struct iovec *data_iov, unsigned int max_data_iov,
	      struct blk_parsed *ret);

#endif
