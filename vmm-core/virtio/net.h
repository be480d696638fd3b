/* SPDX-License-Identifier: MIT */
/*
 * virtio-net (virtio 1.x, network device) over a Linux TAP interface,
 * served from userspace (no vhost-net). One queue pair: receiveq 0 (TAP to
 * guest) and transmitq 1 (guest to TAP); no control queue.
 *
 * Backend. The TAP is opened by name on /dev/net/tun, or given as an fd
 * (duplicated: the caller keeps its own), with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR, and its vnet header size set to 12 bytes
 * (TUNSETVNETHDRSZ), which is struct virtio_net_hdr_mrg_rxbuf, the header
 * of every VERSION_1 driver. So the header passes through unchanged in
 * both directions and nothing is copied on the host: the TAP is read
 * (readv) straight into the guest's receive buffers and written (writev)
 * straight from its transmit buffers. The device sets O_NONBLOCK on the
 * TAP's open file.
 *
 * Features: MAC, STATUS (LINK_UP), CSUM, HOST_TSO4/6 (a TAP takes GSO
 * frames written with a vnet header), GUEST_CSUM and GUEST_TSO4/6 when the
 * TAP accepts the matching TUNSETOFFLOAD flags (probed at net_new()),
 * MRG_RXBUF, and the core's EVENT_IDX and INDIRECT_DESC. Not UFO, ECN,
 * CTRL_VQ or MQ. When the driver sets FEATURES_OK the TAP's offloads are
 * set from its GUEST_* features (on that vCPU thread, so they hold before
 * DRIVER_OK); a reset clears them.
 *
 * Receive. The device reads a frame only into buffers the guest posted;
 * frames wait in the TAP's queue (the kernel drops when that is full, as a
 * NIC would). While it holds buffers, the I/O thread watches the TAP; when
 * the guest has none left, it stops watching until the guest posts more
 * (the kick). With MRG_RXBUF, one frame spans as many chains as it needs
 * (num_buffers says how many); before a read the device gathers buffers
 * for the largest frame it can get (65562 bytes with a GUEST_TSO feature,
 * NET_RX_MIN_FRAME otherwise), or every buffer the ring holds. Without
 * MRG_RXBUF one chain takes one frame. A frame larger than the buffers is
 * dropped and counted (rx_dropped), the buffers reused: Linux's TAP
 * copies what fits without an error, so unless the buffers take the
 * largest frame the read has one scratch byte more, and a byte there
 * marks the frame that did not fit.
 * The readv gets the gathered buffers with neighbours in host memory
 * merged into one iovec (a guest carves its buffers out of larger pages,
 * one after the other): fewer iovecs are cheaper for the kernel.
 * A run reads until the TAP is empty (or NET_BUDGET frames); having read
 * frames, it signals what it has, yields the CPU once (to the sender,
 * often) and looks again before it sleeps on the TAP: with traffic
 * flowing that look usually finds more, and a sleep costs a wakeup on
 * both sides. Interrupts: every 64 buffers within a run and at its end.
 *
 * Transmit. Each chain (a 12-byte header, then the frame) is written with
 * one writev (neighbouring buffers merged the same way); a frame the TAP
 * refuses (a bad GSO header, say) is dropped and counted (tx_errors), as
 * a NIC would. One wakeup takes at most NET_BUDGET chains, then yields to
 * the I/O thread's other work.
 *
 * Copies: none on the host. A frame is copied once, by the kernel, between
 * guest memory and the TAP's socket buffer, each way.
 *
 * Limits (ratelimit.h): one limiter per direction, of bytes and packets
 * (a packet is a frame: a 64 KiB TSO frame is one packet and its bytes),
 * counting the frame's bytes without the vnet header. Set at creation
 * (net_options) and changed at any time from any thread
 * (net_set_limits()). Transmit: the device asks the limiter before it
 * writes each chain it popped; one that must wait stays popped, not
 * completed (the guest still owns nothing of it), the device pops no
 * more and arms a timer (timerfd, absolute) for exactly when it may go.
 * Receive: the TAP cannot tell a frame's size before it is read, so the
 * device asks for one byte and one packet before each read and charges
 * the rest of the frame's bytes once it is read (the byte bucket may go
 * into debt by up to one frame, paid back before the next read); while
 * it must wait it stops watching the TAP, so frames wait in the TAP's
 * queue (the kernel drops them when that is full, as on a real link),
 * and a timer resumes it. Unlimited (the default), neither path reads a
 * clock or arms a timer. A reset drops a waiting transmit chain with the
 * rings; the buckets stay (a reset buys no new burst).
 *
 * Protocol errors (NEEDS_RESET): a device-readable buffer in the receiveq,
 * a receive chain too short for the header (with MRG_RXBUF, any buffer
 * shorter than it), a device-writable buffer in the transmitq or a
 * transmit chain shorter than the header; and the core's ring checks.
 */
#ifndef VMM_VIRTIO_NET_H
#define VMM_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "ratelimit.h"
#include "virtio/virtio.h"

#define NET_QUEUE_MAX		256	/* entries per queue */
#define NET_BUDGET		256	/* frames per queue per wakeup */
#define NET_HDR_LEN		12	/* struct virtio_net_hdr_mrg_rxbuf */
#define NET_RX_MIN_FRAME	(NET_HDR_LEN + 14 + 4 + 1500)
#define NET_RX_GSO_FRAME	(NET_HDR_LEN + 65550)

#define NET_RX_QUEUE		0
#define NET_TX_QUEUE		1

struct net_options {
	const char *tap;	/* TAP interface to open by name, or NULL */
	int tap_fd;		/* or an open TAP fd (duplicated); -1: none */
	const uint8_t *mac;	/* 6 bytes, or NULL: derived from mac_seed */
	/* Seed of the derived MAC (e.g. "vmname/0"); NULL: the TAP's name. */
	const char *mac_seed;
	/* Limits, guest-bound (rx) and host-bound (tx); ops are packets.
	 * All 0 (the default): none. */
	struct ratelimit_limits rx_limits;
	struct ratelimit_limits tx_limits;
};

struct vnet;

/*
 * A new virtio-net over mem (borrowed: it must outlive the device) on the
 * TAP o names, with its I/O thread running. Exactly one of o->tap and
 * o->tap_fd must be given. Returns 0 with *ret set (a new reference), or
 * a negative errno with a one-line message naming the TAP or fd in err
 * (when err is not NULL): -EINVAL (bad options, a MAC that is multicast
 * or all zeros, an fd that is not a TAP with IFF_NO_PI and IFF_VNET_HDR),
 * limits that ratelimit_limits_check() refuses (the message names the
 * direction and field), -ENODEV (no interface of that name), -EBADF, the errno of opening
 * /dev/net/tun or of TUNSETIFF (-EPERM, -EBUSY, ...), -ENOMEM, or
 * virtio_device_init errors.
 */
int net_new(const struct guest_mem *mem, const struct net_options *o,
	    struct vnet **ret, char *err, size_t errlen);

/*
 * The device to hand to a transport (virtio_pci_new()); borrowed, valid
 * until net_free(). Its name (for logs) may be set before it is attached.
 */
struct virtio_device *net_virtio(struct vnet *n);

/*
 * Stop the I/O thread (if virtio_device_destroy() did not already), close
 * the TAP fd and free. Call it after the transport is gone. NULL is a
 * no-op. A TAP opened by name is not deleted (it was not ours to create).
 */
void net_free(struct vnet *n);

/* The MAC the guest sees (6 bytes). */
void net_get_mac(const struct vnet *n, uint8_t ret[6]);

/* The TAP's interface name (borrowed). */
const char *net_ifname(const struct vnet *n);

/*
 * A locally administered unicast MAC derived from seed (a hash): the same
 * seed always gives the same MAC.
 */
void net_mac_from_seed(const char *seed, uint8_t ret[6]);

/*
 * Parse "52:54:00:12:34:56" (colons, hex digits, case-insensitive) into
 * ret: 0, or -EINVAL for anything else, including a multicast or all-zero
 * address.
 */
int net_parse_mac(const char *s, uint8_t ret[6]);

struct net_stats {
	uint64_t rx_packets;	/* frames given to the guest */
	uint64_t rx_bytes;	/* their bytes, headers excluded */
	uint64_t rx_dropped;	/* frames the TAP could not fit in buffers */
	uint64_t tx_packets;	/* frames written to the TAP */
	uint64_t tx_bytes;	/* their bytes, headers excluded */
	uint64_t tx_errors;	/* frames the TAP refused */
	/* The limiters: reads of the TAP (rx) and chains (tx) that had to
	 * wait, and how long they waited in all, up to now. */
	uint64_t rx_throttled;
	uint64_t rx_throttled_ns;
	uint64_t tx_throttled;
	uint64_t tx_throttled_ns;
};

/* A snapshot of the counters. Any thread. */
void net_get_stats(struct vnet *n, struct net_stats *ret);

/*
 * Replace the limits of either direction (NULL: that one unchanged; a
 * rate of 0 lifts that limit, a burst of 0 is one second's worth). Any
 * thread, at any time: the I/O thread applies them before its next
 * frame, keeping the buckets' levels (a bucket that was unlimited starts
 * full), and a frame waiting is looked at again at once. Returns 0, or
 * -EINVAL (nothing changed) when ratelimit_limits_check() refuses either.
 */
int net_set_limits(struct vnet *n, const struct ratelimit_limits *rx,
		   const struct ratelimit_limits *tx);

/* The limits last set (net_new() or net_set_limits()), as given; either
 * pointer may be NULL. Any thread. */
void net_get_limits(struct vnet *n, struct ratelimit_limits *rx,
		    struct ratelimit_limits *tx);

#endif
