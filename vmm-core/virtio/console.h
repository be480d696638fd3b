/* SPDX-License-Identifier: MIT */
/*
 * virtio-console (virtio 1.x, console device) with a single port: the
 * guest's hvc0. Queues: receiveq 0 (host to guest), transmitq 1 (guest to
 * host). Offers VIRTIO_CONSOLE_F_SIZE (cols/rows in config space, changed
 * by console_set_size()); not MULTIPORT, not EMERG_WRITE.
 *
 * Backend: in_fd gives the bytes the guest reads, out_fd takes what it
 * writes, and an optional output callback sees every byte the guest
 * writes (for the daemon's console history), as with dev/uart8250.h.
 * Both fds are duplicated by console_new() (the caller keeps its own and
 * may close them; the same fd may be given for both); either may be -1.
 * They may be pipes, sockets, terminals or regular files, blocking or
 * not; the device never sets O_NONBLOCK on them.
 *
 * Input. The device reads in_fd only into a receive buffer the guest
 * posted, so nothing is buffered on the host and nothing is lost when the
 * guest posts late: the bytes wait in in_fd. While it holds a buffer and
 * in_fd has nothing, the I/O thread watches in_fd; when the guest has no
 * buffer posted, it stops watching until the guest posts one (the kick).
 * An fd epoll cannot watch (a regular file, /dev/null) is read whenever
 * there is a buffer. End of file, or a read error, on in_fd ends input
 * for the device's life (across resets too).
 *
 * Output. A transmit buffer is written to out_fd from guest memory and
 * completed only once all of it is written: a full out_fd holds the
 * buffer, and with it the guest's transmit queue (back-pressure, no host
 * buffering), while the I/O thread watches out_fd for room. But Linux's
 * hvc path spins in the guest kernel until its buffer comes back, so a
 * buffer is held at most CONSOLE_OUT_WAIT_MS: then the rest of it is
 * dropped and counted (console_get_stats()), and until out_fd takes a byte
 * again, each new buffer is written as far as out_fd takes it at once and
 * the rest dropped. A write error (EPIPE, ENOSPC, ...) drops the rest of
 * the buffer the same way. For a blocking out_fd the device polls for
 * room first and writes at most PIPE_BUF bytes at a time, which does not
 * block on a pipe; a terminal may still hold it briefly.
 *
 * Protocol errors: a device-readable buffer in the receiveq or a
 * device-writable one in the transmitq breaks the spec's driver rules and
 * puts the device in NEEDS_RESET (as ring violations do in the core).
 *
 * Fairness: one wakeup serves at most CONSOLE_BUDGET buffers per queue,
 * then yields to the I/O thread's other work.
 */
#ifndef VMM_VIRTIO_CONSOLE_H
#define VMM_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "virtio/virtio.h"

#define CONSOLE_QUEUE_MAX	256	/* entries per queue */
#define CONSOLE_BUDGET		64	/* buffers per queue per wakeup */
#define CONSOLE_OUT_WAIT_MS	100	/* hold a transmit buffer at most */

#define CONSOLE_RX_QUEUE	0
#define CONSOLE_TX_QUEUE	1

struct console_options {
	int in_fd;	/* bytes for the guest to read, or -1 */
	int out_fd;	/* where guest output goes, or -1 to discard */
};

struct vcon;

/*
 * Called with the bytes the guest transmits, in order, once each (one
 * call per segment of a transmit buffer, when the device takes the
 * buffer), whether or not out_fd takes them. Runs on the device's I/O
 * thread with the callback lock held: it must be quick and must not call
 * console_set_output_cb().
 */
typedef void (*console_output_fn)(void *opaque, const uint8_t *buf,
				  size_t len);

/*
 * A new virtio-console over mem (borrowed: it must outlive the device)
 * with its I/O thread running. o may be NULL (no input, output discarded).
 * Returns 0 with *ret set (a new reference), or a negative errno:
 * -EINVAL for an fd below -1, -EBADF for an fd that is not open, -ENOMEM,
 * timerfd or virtio_device_init errors.
 */
int console_new(const struct guest_mem *mem, const struct console_options *o,
		struct vcon **ret);

/*
 * The device to hand to a transport (virtio_pci_new()); borrowed, valid
 * until console_free(). Its name (for logs) may be set before it is
 * attached.
 */
struct virtio_device *console_virtio(struct vcon *c);

/*
 * Stop the I/O thread (if virtio_device_destroy() did not already), close
 * the duplicated fds and free. Call it after the transport is gone
 * (virtio_pci_free()). NULL is a no-op.
 */
void console_free(struct vcon *c);

/* Set (or with fn NULL, clear) the output callback; opaque is borrowed.
 * Any thread. */
void console_set_output_cb(struct vcon *c, console_output_fn fn,
			   void *opaque);

/*
 * The terminal size the guest reads (VIRTIO_CONSOLE_F_SIZE); a driver
 * that is running gets a configuration interrupt. Any thread.
 */
void console_set_size(struct vcon *c, uint16_t cols, uint16_t rows);

struct console_stats {
	uint64_t rx_bytes;	/* bytes given to the guest */
	uint64_t tx_bytes;	/* bytes the guest transmitted */
	uint64_t tx_dropped;	/* of those, bytes out_fd did not take */
	bool input_ended;	/* in_fd reached EOF or failed */
};

/* A snapshot of the counters. Any thread. */
void console_get_stats(struct vcon *c, struct console_stats *ret);

#endif
