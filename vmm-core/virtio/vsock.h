/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock (virtio 1.x, socket device), served in userspace, with the
 * host side on UNIX stream sockets ("hybrid vsock", as Firecracker and
 * Cloud Hypervisor do it). Queues: rx 0 (device to driver), tx 1, event 2
 * (never used: there is no transport reset to report). Config: guest_cid.
 * Only VIRTIO_VSOCK_TYPE_STREAM; VIRTIO_VSOCK_F_STREAM is offered.
 *
 * Host side. vsock_new() listens on the UNIX socket uds_path.
 *  - A guest connecting to the host (CID 2) port P is connected to the
 *    UNIX socket "<uds_path>_<P>". No listener there (or its backlog
 *    full, or the connection table full): the guest gets RST.
 *  - A host process connects into the guest by connecting to uds_path
 *    and sending "CONNECT <port>\n". The device picks a host port H
 *    (from VSOCK_HOST_PORT_BASE up), sends REQUEST (2:H -> cid:port) to the
 *    guest, and once the guest answers RESPONSE writes "OK <H>\n" to the
 *    host process; from then on the socket carries the stream. A guest
 *    RST, or a bad command line, closes the host socket without a reply.
 *  - Both waits end: a host process that has not sent its command line
 *    connect_timeout_ms after the device accepted it is closed as for a
 *    bad one (it held a slot of max_conns); a REQUEST the guest has not
 *    answered connect_timeout_ms after the command line came (counted
 *    afresh: one wait is the host process's, the other the guest's)
 *    closes the host socket without a reply and, when the REQUEST did
 *    reach the guest, sends RST for the pair, so that a late RESPONSE
 *    finds no connection and is answered with RST as any unknown one.
 *
 * Flow control (virtio 1.x 5.10.6.3). Each connection advertises
 * buf_alloc bytes: what the guest sent and the host socket did not take
 * yet waits in a per-connection buffer of that size (allocated when first
 * needed), so a slow host reader stops the guest through its credit, not
 * through the shared tx queue. fwd_cnt counts bytes written to the host
 * socket; a CREDIT_UPDATE goes out when the guest may have used half its
 * credit, and on CREDIT_REQUEST. Towards the guest the device never has
 * more than the guest's buf_alloc - (tx_cnt - fwd_cnt) bytes outstanding:
 * a connection without credit is not read until a packet from the guest
 * brings some.
 *
 * Copies. Host sockets are read straight into the guest's receive
 * buffers, and guest payload is written straight from guest memory: a
 * byte is copied once, by the kernel. One read fills up to
 * VSOCK_RX_BATCH receive buffers (each its own RW packet, the guest's
 * credit permitting): a guest's buffers are small (Linux posts 4 KiB) and
 * a system call per buffer would cost more than the copy. Payload that a
 * full host socket cannot take yet stays in the guest's transmit buffer:
 * the chain is given back once its payload is written (used entries come
 * back out of order then). A connection keeps at most VSOCK_HOLD_MAX
 * chains and all of them VSOCK_HOLD_TOTAL (a quarter of the queue), so
 * that a slow host reader cannot take the guest's transmit queue; beyond
 * that the payload is copied into the connection's buffer (counted in
 * tx_copied), in order behind the chains kept.
 *
 * Shutdown and reset. A guest RST closes the host socket. A guest SHUTDOWN
 * shuts the host socket down the same ways (SEND after the buffered bytes
 * are written); with both flags the device closes it once flushed and
 * answers RST. A host socket closed for good gives the guest SHUTDOWN
 * with both flags (the guest answers RST); one shut for writing only gives
 * SHUTDOWN SEND; a write error gives RST. A guest that has not sent its
 * RST shutdown_timeout_ms after that SHUTDOWN was queued gets one from
 * the device, and the connection (its slot and buffer) is freed: nothing
 * is lost by it, as both directions were over. Device reset closes every
 * connection.
 *
 * Timeouts cost nothing on the data path: a connection in one of the
 * three waits is on one of two lists (command line and REQUEST share a
 * length, SHUTDOWN has its own), each in deadline order since every
 * deadline on it is now + the same length; one timerfd on the I/O thread
 * is armed for the earliest head.
 *
 * Errors. Buffers that break the driver rules (a device-readable receive
 * buffer or one shorter than a header, a device-writable transmit buffer,
 * a transmit buffer shorter than a header or than its header's len) put
 * the device in NEEDS_RESET. Packets that are well formed but wrong (not a
 * stream, not from guest_cid or not to the host, an unknown op or
 * connection, data beyond the credit the device gave) are answered with
 * RST (never an RST to an RST) and close the connection they name.
 *
 * Interrupts (EVENT_IDX honoured, as always): receive buffers are
 * signalled once per run of the I/O thread and every VSOCK_RX_BATCH
 * buffers within a long one; transmit chains every 16 and once at the
 * end, after the receive work that the same kick started (a credit
 * update lets data through: the driver woken once finds both).
 *
 * Threads: everything runs on the device's I/O thread; the connection
 * sockets sit in one epoll set the I/O thread watches, each only for what
 * the device waits for: readable once a read found it empty, writable
 * while guest payload waits for room, hang-ups always. The timeouts'
 * timerfd is watched beside it.
 */
#ifndef VMM_VIRTIO_VSOCK_H
#define VMM_VIRTIO_VSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "virtio/virtio.h"

#define VSOCK_QUEUE_MAX		256	/* entries per queue */
#define VSOCK_RX_QUEUE		0
#define VSOCK_TX_QUEUE		1
#define VSOCK_EVENT_QUEUE	2

#define VSOCK_HOST_CID		2	/* VMADDR_CID_HOST */
#define VSOCK_HDR_SIZE		44	/* struct virtio_vsock_hdr */
#define VSOCK_MAX_PKT		65536	/* payload bytes per packet we send */
#define VSOCK_HOST_PORT_BASE	(1u << 30)	/* ports for host connects */

#define VSOCK_RX_BATCH		64	/* receive buffers one read fills */
#define VSOCK_HOLD_MAX		16	/* transmit chains a connection keeps */
#define VSOCK_HOLD_TOTAL	64	/* and all connections together */
#define VSOCK_HOLD_IOV		4	/* payload pieces of a chain kept */

#define VSOCK_MAX_CONNS_DEFAULT	256
#define VSOCK_BUF_ALLOC_DEFAULT	(256u << 10)
#define VSOCK_BUF_ALLOC_MAX	(64u << 20)

/*
 * Timeouts, in ms. A host process writes its command line right after
 * connect(), and a guest kernel answers a REQUEST from its receive work
 * without waiting for any application: both take microseconds on real
 * hardware. But on a PVM host guest kernel code runs ~4000x slower, so a
 * busy guest's answer can take tens of ms to seconds; 10 s is far beyond
 * that and still short enough that slots held by stuck clients come back
 * and a host process is not left waiting with no answer at all. A host
 * process that wants to give up sooner has its own timeout. The
 * SHUTDOWN wait is shorter: the RST that ends it loses the guest nothing
 * (a Linux guest keeps what it received for its application, which may
 * be why it has not answered yet; what it sends has nowhere to go), so
 * it only has to outlast a busy guest's receive work, while it bounds
 * how long a silent guest keeps a slot and up to buf_alloc bytes.
 */
#define VSOCK_CONNECT_TIMEOUT_DEFAULT	10000
#define VSOCK_SHUTDOWN_TIMEOUT_DEFAULT	5000
#define VSOCK_TIMEOUT_MAX		3600000u	/* an hour */

struct vsock_options {
	uint64_t guest_cid;	/* 3 .. 0xfffffffe */
	const char *uds_path;	/* listening socket; "<path>_<port>" too */
	unsigned int max_conns;	/* 0: VSOCK_MAX_CONNS_DEFAULT */
	uint32_t buf_alloc;	/* per connection; 0: the default */
	/* Host command line, and guest answer to a REQUEST; ms, 1 ..
	 * VSOCK_TIMEOUT_MAX, 0: VSOCK_CONNECT_TIMEOUT_DEFAULT. */
	unsigned int connect_timeout_ms;
	/* Guest RST after our SHUTDOWN; 0: the default. */
	unsigned int shutdown_timeout_ms;
};

struct vsock;

/*
 * A new virtio-vsock over mem (borrowed: it must outlive the device) with
 * its I/O thread running and uds_path listening. An existing socket file
 * at uds_path that nobody listens on (left by a dead process) is
 * replaced; anything else there is -EADDRINUSE. Returns 0 with *ret set,
 * or a negative errno (-EINVAL: a bad cid, path, limit or timeout;
 * -ENAMETOOLONG: uds_path too long for "<path>_<port>"; socket, bind,
 * epoll and virtio_device_init errors), with err (errlen bytes, may be
 * NULL) holding a one-line message.
 */
int vsock_new(const struct guest_mem *mem, const struct vsock_options *o,
	      char *err, size_t errlen, struct vsock **ret);

/* The device to hand to a transport; borrowed, valid until vsock_free(). */
struct virtio_device *vsock_virtio(struct vsock *v);

/*
 * Stop the I/O thread (if virtio_device_destroy() did not already), close
 * every connection and the listener, unlink uds_path and free. After the
 * transport is gone. NULL is a no-op.
 */
void vsock_free(struct vsock *v);

struct vsock_stats {
	uint64_t conns;			/* open now (any state) */
	uint64_t guest_connects;	/* guest REQUESTs accepted */
	uint64_t host_connects;		/* host CONNECTs the guest accepted */
	uint64_t refused;		/* guest REQUESTs answered with RST */
	uint64_t rx_bytes;		/* payload given to the guest */
	uint64_t tx_bytes;		/* payload the guest sent */
	uint64_t rst_sent;		/* RSTs queued for the guest */
	uint64_t rst_dropped;		/* of those, dropped: queue full */
	uint64_t credit_updates;	/* CREDIT_UPDATEs sent */
	uint64_t tx_copied;		/* payload copied: socket full and
					 * the chain could not be kept */
	/* Connections closed by a timeout, by the wait they were in. */
	uint64_t cmd_timeouts;		/* no command line from the host */
	uint64_t connect_timeouts;	/* no RESPONSE (or RST) from guest */
	uint64_t shutdown_timeouts;	/* no RST after our SHUTDOWN */
};

/* A snapshot of the counters. Any thread. */
void vsock_get_stats(struct vsock *v, struct vsock_stats *ret);

#endif
