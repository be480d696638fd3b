/* SPDX-License-Identifier: MIT */
/*
 * virtio-net on a TAP: the receiveq filled from the TAP with readv, the
 * transmitq drained into it with writev, the 12-byte vnet header passed
 * through as is. See net.h for the rules. Everything below but net_new(),
 * net_free(), the getters and config_read runs on the device's I/O
 * thread, which owns the held receive buffers and the TAP watch.
 *
 * Limits. Each direction has its ratelimit and timerfd, on the I/O
 * thread. Transmit holds the chain the limiter refused (tx_held, its
 * iovecs in tx_iov, which nothing else uses meanwhile); receive notes
 * that it waits (rx_waiting) with the TAP unwatched. net_set_limits()
 * hands new limits over under limits_lock and wakes the I/O thread with
 * limits_fd.
 */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>

#define NET_SIGNAL_EVERY	32	/* interrupts during a long batch */
/*
 * Receive buffers pushed between interrupts during a long run: a NAPI
 * budget's worth (Linux's virtio_net polls 64 frames per interrupt). The
 * run's end always signals too, so fewer only means fewer wakeups of a
 * driver that is busy anyway.
 */
#define NET_RX_SIGNAL_EVERY	64
/* Receive iovecs: what one readv takes (UIO_MAXIOV), less the scratch. */
#define NET_RX_IOV		1023

#define NET_GUEST_OFFLOADS ((1ULL << VIRTIO_NET_F_GUEST_CSUM) | \
			    (1ULL << VIRTIO_NET_F_GUEST_TSO4) | \
			    (1ULL << VIRTIO_NET_F_GUEST_TSO6))

/* A receive chain popped and not yet given back. */
struct net_rx_chain {
	uint16_t head;
	uint32_t len;			/* writable bytes */
	unsigned int iov_first;		/* into rx_iov */
	unsigned int nr_iov;
	unsigned int rd_idx;		/* the rd_iov entry it starts in */
};

/* Held chains: a ring of NET_QUEUE_MAX (a power of two). */
#define NET_HELD(n, i)	(&(n)->rx_held[((n)->held_first + (i)) & \
					(NET_QUEUE_MAX - 1)])

struct vnet {
	struct virtio_device vdev;
	int tap_fd;
	char ifname[IFNAMSIZ];
	uint8_t mac[6];
	unsigned int tap_offloads;	/* TUN_F_* the TAP accepts */

	/* I/O thread only. */
	bool tap_watched;
	bool tap_dead;			/* a hard read error: no more input */
	bool mrg;			/* MRG_RXBUF negotiated */
	bool guest_csum;
	uint32_t rx_need;		/* bytes to gather before a read */
	/*
	 * Receive chains popped and not used yet, oldest first (a frame
	 * takes chains from the front), and their buffers: rx_iov[iov_lo,
	 * iov_hi), in the same order. Used chains leave from the front by
	 * moving indices; rx_iov is compacted only when its end is near.
	 */
	struct net_rx_chain rx_held[NET_QUEUE_MAX];
	unsigned int held_first;
	unsigned int nr_held;
	unsigned int iov_lo, iov_hi;
	uint32_t held_len;
	struct iovec rx_iov[NET_RX_IOV];
	/*
	 * What one readv gets: the held buffers again, rd_iov[rd_lo,
	 * rd_hi), neighbours merged. A guest carves its receive buffers
	 * one after the other out of larger pages (Linux does), and a short
	 * iovec array is cheaper for the kernel to take (up to 8 entries it
	 * needs no allocation). Kept up to date as chains come and go.
	 */
	struct iovec rd_iov[NET_RX_IOV + 1];
	unsigned int rd_lo, rd_hi;
	uint8_t rx_scratch;		/* tells a frame that did not fit */
	struct iovec tx_iov[NET_QUEUE_MAX];

	/* Limits, on the I/O thread. */
	struct ratelimit rx_rl, tx_rl;
	bool rx_limited, tx_limited;	/* ask the limiter per frame */
	bool rx_waiting;	/* the next read waits for rx_timer */
	bool rx_prepaid;	/* a read's byte and packet are taken */
	bool tx_held;		/* a popped chain waits for tx_timer: */
	struct virtq_elem tx_el;	/* it (its iovecs in tx_iov) */
	int rx_timer, tx_timer;	/* timerfds, armed while waiting */
	/* Limits handed over by net_set_limits(). */
	pthread_mutex_t limits_lock;
	struct ratelimit_limits rx_limits, tx_limits;	/* as given */
	bool limits_pending;	/* atomic: not yet applied */
	int limits_fd;		/* eventfd: limits_pending was set */

	/* Atomics. */
	uint64_t rx_packets, rx_bytes, rx_dropped;
	uint64_t tx_packets, tx_bytes, tx_errors;
};

static void net_rx_run(struct vnet *n);
static void net_tx_run(struct vnet *n);
static void net_tap_unwatch(struct vnet *n);

static void
net_count(uint64_t *c, uint64_t v)
{
	__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}



/* --- Limits --------------------------------------------------------- */

/* Arm timer fd for now + wait (absolute, so the instant is exact). */
static void
net_arm_timer(int fd, uint64_t now, uint64_t wait)
{
	uint64_t at = wait > UINT64_MAX - now ? UINT64_MAX : now + wait;
	struct itimerspec its = {
		.it_value = {
			.tv_sec = (time_t)(at / RATELIMIT_NSEC),
			.tv_nsec = (long)(at % RATELIMIT_NSEC),
		},
	};

	/* Cannot fail on our timerfd with a valid, non-zero time. */
	(void)timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void
net_disarm_timer(int fd)
{
	struct itimerspec its = { 0 };

	(void)timerfd_settime(fd, 0, &its, NULL);
}

/* Take the limits net_set_limits() left, keeping the buckets' levels. */
static void
net_apply_limits(struct vnet *n)
{
	struct ratelimit_limits rx, tx;
	uint64_t now;

	pthread_mutex_lock(&n->limits_lock);
	rx = n->rx_limits;
	tx = n->tx_limits;
	__atomic_store_n(&n->limits_pending, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&n->limits_lock);
	now = ratelimit_now();
	ratelimit_set(&n->rx_rl, &rx, now);
	ratelimit_set(&n->tx_rl, &tx, now);
	n->rx_limited = ratelimit_limited(&n->rx_rl);
	n->tx_limited = ratelimit_limited(&n->tx_rl);
}

static void
net_check_limits(struct vnet *n)
{
	if (__atomic_load_n(&n->limits_pending, __ATOMIC_ACQUIRE))
		net_apply_limits(n);
}

/* net_set_limits() was called: whatever waits is asked about again. */
static void
net_on_limits(struct virtio_device *vdev, int fd, uint32_t events, void *arg)
{
	struct vnet *n = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	net_check_limits(n);
	if (n->tx_held)
		net_tx_run(n);
	if (n->rx_waiting) {
		n->rx_waiting = false;
		net_disarm_timer(n->rx_timer);
		if (!n->rx_limited)
			/* Lifted: the read that waited is not asked for. */
			ratelimit_cancel(&n->rx_rl, ratelimit_now());
		net_rx_run(n);
	}
}

static void
net_on_tx_timer(struct virtio_device *vdev, int fd, uint32_t events,
		void *arg)
{
	struct vnet *n = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (n->tx_held)
		net_tx_run(n);
}

static void
net_on_rx_timer(struct virtio_device *vdev, int fd, uint32_t events,
		void *arg)
{
	struct vnet *n = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (!n->rx_waiting)
		return;
	n->rx_waiting = false;
	net_rx_run(n);
}

/*
 * May the next frame be read from the TAP? The limiter is asked for one
 * byte and one packet (kept, prepaid, should the TAP turn out empty);
 * the frame's other bytes are charged once it is read (net_rx_charge).
 * If it must wait: unwatch the TAP and arm the timer.
 */
static bool
net_rx_admit(struct vnet *n)
{
	uint64_t now, wait;

	if (n->rx_prepaid)
		return true;
	now = ratelimit_now();
	wait = ratelimit_take(&n->rx_rl, 1, 1, now);
	if (wait == 0) {
		n->rx_prepaid = true;
		return true;
	}
	net_tap_unwatch(n);
	n->rx_waiting = true;
	net_arm_timer(n->rx_timer, now, wait);
	return false;
}

/* A frame of bytes (header excluded) was read: charge all but the one
 * byte net_rx_admit() took. The bucket may go into debt. */
static void
net_rx_charge(struct vnet *n, uint64_t bytes)
{
	n->rx_prepaid = false;
	if (bytes > 1)
		ratelimit_bucket_consume(&n->rx_rl.bytes, bytes - 1);
}

/* --- Receive -------------------------------------------------------- */

static void
net_tap_event(struct virtio_device *vdev, int fd, uint32_t events, void *arg)
{
	(void)vdev;
	(void)fd;
	(void)events;
	net_rx_run(arg);
}

static void
net_tap_watch(struct vnet *n)
{
	if (n->tap_watched)
		return;
	/* Cannot fail but for ENOMEM; the next kick then tries again. */
	if (virtio_device_watch_fd(&n->vdev, n->tap_fd, EPOLLIN,
				   net_tap_event, n) == 0)
		n->tap_watched = true;
}

static void
net_tap_unwatch(struct vnet *n)
{
	if (!n->tap_watched)
		return;
	virtio_device_unwatch_fd(&n->vdev, n->tap_fd);
	n->tap_watched = false;
}

/* Write len bytes at byte off of an iovec array (bounds known good). */
static void
net_iov_put(const struct iovec *iov, unsigned int nr, size_t off,
	    const void *data, size_t len)
{
	const uint8_t *p = data;
	unsigned int i;
	size_t k;

	for (i = 0; i < nr && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - off;
		if (k > len)
			k = len;
		memcpy((uint8_t *)iov[i].iov_base + off, p, k);
		p += k;
		len -= k;
		off = 0;
	}
}

/*
 * Whether rx_iov has room for one more chain, compacting it (the held
 * buffers moved to its start) when its end is near.
 */
static bool
net_rx_room(struct vnet *n)
{
	unsigned int i;

	/* rd_iov never has more entries than rx_iov. */
	if (n->iov_hi + NET_QUEUE_MAX <= NET_RX_IOV &&
	    n->rd_hi + NET_QUEUE_MAX <= NET_RX_IOV)
		return true;
	memmove(n->rx_iov, n->rx_iov + n->iov_lo,
		(n->iov_hi - n->iov_lo) * sizeof(n->rx_iov[0]));
	memmove(n->rd_iov, n->rd_iov + n->rd_lo,
		(n->rd_hi - n->rd_lo) * sizeof(n->rd_iov[0]));
	for (i = 0; i < n->nr_held; i++) {
		NET_HELD(n, i)->iov_first -= n->iov_lo;
		NET_HELD(n, i)->rd_idx -= n->rd_lo;
	}
	n->iov_hi -= n->iov_lo;
	n->iov_lo = 0;
	n->rd_hi -= n->rd_lo;
	n->rd_lo = 0;
	return n->iov_hi + NET_QUEUE_MAX <= NET_RX_IOV;
}

/*
 * Pop one more receive chain into the held list. 1 when one was added,
 * 0 when the ring is empty, -EIO when the queue or the chain is bad
 * (the device is then in NEEDS_RESET).
 */
static int
net_rx_pop(struct vnet *n, struct virtq *vq)
{
	struct net_rx_chain *c = NET_HELD(n, n->nr_held);
	struct virtq_elem el;
	unsigned int i;
	int r;

	/* A chain is at most a queue long (virtq_pop's own rule): the
	 * callers made room for that (net_rx_room). */
	r = virtq_pop(vq, n->rx_iov + n->iov_hi, NET_QUEUE_MAX, &el);
	if (r <= 0)
		return r < 0 ? -EIO : 0;
	if (el.out_len) {
		virtio_device_needs_reset(&n->vdev, "receive buffer at head %u "
					  "has %u device-readable bytes",
					  el.head, el.out_len);
		return -EIO;
	}
	if ((n->mrg || n->nr_held == 0) && el.in_len < NET_HDR_LEN) {
		virtio_device_needs_reset(&n->vdev, "receive buffer at head %u "
					  "has %u bytes, less than the %u-byte "
					  "header", el.head, el.in_len,
					  NET_HDR_LEN);
		return -EIO;
	}
	c->head = el.head;
	c->len = el.in_len;
	c->iov_first = n->iov_hi;
	c->nr_iov = el.nr_in;
	c->rd_idx = n->rd_hi;
	for (i = 0; i < el.nr_in; i++) {
		const struct iovec *v = &n->rx_iov[n->iov_hi + i];
		struct iovec *last = n->rd_hi > n->rd_lo ?
				     &n->rd_iov[n->rd_hi - 1] : NULL;

		if (last &&
		    (uint8_t *)last->iov_base + last->iov_len == v->iov_base) {
			last->iov_len += v->iov_len;
			if (i == 0)
				c->rd_idx = n->rd_hi - 1;
		} else {
			n->rd_iov[n->rd_hi++] = *v;
		}
	}
	n->iov_hi += el.nr_in;
	n->held_len += el.in_len;
	n->nr_held++;
	return 1;
}

static void
net_rx_clear_held(struct vnet *n)
{
	n->held_first = n->nr_held = n->iov_lo = n->iov_hi = 0;
	n->rd_lo = n->rd_hi = 0;
	n->held_len = 0;
}

/* Forget the first k held chains (pushed already). */
static void
net_rx_drop_held(struct vnet *n, unsigned int k)
{
	struct net_rx_chain *c = NET_HELD(n, k);
	struct iovec *run;
	uint8_t *start;
	unsigned int i;

	if (k == n->nr_held) {
		net_rx_clear_held(n);
		return;
	}
	for (i = 0; i < k; i++)
		n->held_len -= NET_HELD(n, i)->len;
	n->iov_lo = c->iov_first;
	/* The readv array starts where the new first chain does, maybe
	 * in the middle of an entry its predecessor shared. */
	n->rd_lo = c->rd_idx;
	run = &n->rd_iov[n->rd_lo];
	start = n->rx_iov[c->iov_first].iov_base;
	run->iov_len -= (size_t)(start - (uint8_t *)run->iov_base);
	run->iov_base = start;
	n->held_first = (n->held_first + k) & (NET_QUEUE_MAX - 1);
	n->nr_held -= k;
}

/*
 * Gather buffers for the next frame. True when a read may go ahead;
 * false when the device must wait for the guest (a kick) or stop.
 */
static bool
net_rx_gather(struct vnet *n, struct virtq *vq, bool *broken)
{
	int r;

	if (!n->mrg) {
		if (n->nr_held)
			return true;
		r = net_rx_pop(n, vq);
		*broken = r < 0;
		return r > 0;
	}
	/* Buffers of many tiny pieces fill rx_iov first: read with
	 * what fits then. */
	while (n->held_len < n->rx_need && n->nr_held < vq->size &&
	       net_rx_room(n)) {
		r = net_rx_pop(n, vq);
		if (r < 0) {
			*broken = true;
			return false;
		}
		if (r == 0)
			/* Not enough yet: wait for more, unless the guest
			 * gave all it can. */
			return n->nr_held == vq->size;
	}
	return n->nr_held > 0;
}

/* A frame of len bytes (header included) is in the held buffers. */
static unsigned int
net_rx_complete(struct vnet *n, struct virtq *vq, uint32_t len)
{
	struct net_rx_chain *first = NET_HELD(n, 0);
	uint32_t left = len, k;
	unsigned int used = 0;
	uint16_t nbuf;
	uint8_t zero = 0;

	if (!n->guest_csum)
		/* The spec wants flags 0 for a driver without GUEST_CSUM;
		 * the TAP may have said DATA_VALID. */
		net_iov_put(n->rx_iov + first->iov_first, first->nr_iov,
			    offsetof(struct virtio_net_hdr, flags), &zero, 1);
	while (left && used < n->nr_held) {
		k = NET_HELD(n, used)->len;
		left -= left < k ? left : k;
		used++;
	}
	/* The TAP skips the num_buffers field without writing it. */
	nbuf = htole16((uint16_t)used);
	net_iov_put(n->rx_iov + first->iov_first, first->nr_iov,
		    offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers),
		    &nbuf, sizeof(nbuf));
	left = len;
	for (unsigned int i = 0; i < used; i++) {
		struct net_rx_chain *c = NET_HELD(n, i);

		k = left < c->len ? left : c->len;
		virtq_push(vq, c->head, k);
		left -= k;
	}
	net_rx_drop_held(n, used);
	return used;
}

/*
 * Publish a run's counters so far, before each interrupt: a driver that
 * saw the frames finds them counted. Not per frame: atomics per frame
 * cost more than they tell.
 */
static void
net_rx_count(struct vnet *n, uint64_t *packets, uint64_t *bytes,
	     uint64_t *dropped)
{
	if (*packets) {
		net_count(&n->rx_packets, *packets);
		net_count(&n->rx_bytes, *bytes);
	}
	if (*dropped)
		net_count(&n->rx_dropped, *dropped);
	*packets = *bytes = *dropped = 0;
}

static void
net_rx_run(struct vnet *n)
{
	struct virtio_device *vdev = &n->vdev;
	struct virtq *vq = virtio_device_queue(vdev, NET_RX_QUEUE);
	unsigned int frames = 0, pushed = 0, nr_iov;
	uint64_t packets = 0, bytes = 0, dropped = 0;
	bool broken = false, looked_again = false;
	ssize_t got;

	if (n->tap_dead || !virtio_queue_live(vdev, vq->index)) {
		/* The next kick, after reset or DRIVER_OK, starts again. */
		net_tap_unwatch(n);
		return;
	}
	net_check_limits(n);
	/* The timer comes back here; buffers posted meanwhile wait. */
	if (n->rx_waiting)
		return;
	while (frames < NET_BUDGET) {
		if (!net_rx_gather(n, vq, &broken)) {
			/* Frames wait in the TAP until the guest posts
			 * buffers, which kicks us. */
			net_tap_unwatch(n);
			break;
		}
		if (n->rx_limited && !net_rx_admit(n))
			break;
		/* Without MRG_RXBUF only one chain is held at a time. */
		nr_iov = n->rd_hi - n->rd_lo;
		/*
		 * A frame larger than the buffers: Linux's TAP copies what
		 * fits and returns that (older kernels: the whole length),
		 * without an error. Unless the buffers take the largest
		 * frame there is, a byte more tells.
		 */
		if (n->held_len < NET_RX_GSO_FRAME)
			n->rd_iov[n->rd_hi] = (struct iovec){ &n->rx_scratch,
							      1 };
		got = readv(n->tap_fd, n->rd_iov + n->rd_lo,
			    (int)nr_iov + (n->held_len < NET_RX_GSO_FRAME));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/*
			 * Caught up with the sender. A sleep on the TAP
			 * costs a wakeup on both sides (the sender's
			 * enqueue wakes us, we go through epoll again),
			 * several reads' worth of CPU; with frames flowing
			 * the next one is usually microseconds away. So
			 * once per run, after frames came, tell the guest
			 * what it has, let whoever shares this CPU (the
			 * sender, often) run first, and look again. An idle
			 * TAP costs nothing more: a run that read nothing
			 * sleeps at once.
			 */
			if (frames && !looked_again) {
				looked_again = true;
				net_rx_count(n, &packets, &bytes, &dropped);
				virtio_queue_signal(vdev, vq);
				pushed = 0;
				sched_yield();
				continue;
			}
			net_tap_watch(n);
			break;
		}
		if (got < 0 && (errno == EFAULT || errno == EINVAL ||
				errno == EMSGSIZE)) {
			/* Larger than the buffers: the kernel dropped it
			 * (its size unknown: it costs a byte and a packet). */
			n->rx_prepaid = false;
			dropped++;
			frames++;
			continue;
		}
		if (got <= NET_HDR_LEN) {
			/* The TAP is gone (EBADFD, EIO, ...): no input for
			 * the device's life. */
			n->tap_dead = true;
			net_tap_unwatch(n);
			break;
		}
		if (n->rx_prepaid)
			net_rx_charge(n, (uint64_t)got - NET_HDR_LEN);
		if ((uint64_t)got > n->held_len) {
			/* It did not fit: lost, as on a NIC; the buffers
			 * stay for the next one. */
			dropped++;
			frames++;
			continue;
		}
		pushed += net_rx_complete(n, vq, (uint32_t)got);
		packets++;
		bytes += (uint64_t)got - NET_HDR_LEN;
		frames++;
		if (pushed >= NET_RX_SIGNAL_EVERY) {
			net_rx_count(n, &packets, &bytes, &dropped);
			virtio_queue_signal(vdev, vq);
			pushed = 0;
		}
	}
	net_rx_count(n, &packets, &bytes, &dropped);
	if (broken)
		net_tap_unwatch(n);
	/* A full budget with the TAP watched comes back through epoll. */
	if (frames == NET_BUDGET && !n->tap_watched && !n->rx_waiting)
		net_tap_watch(n);
	virtio_queue_signal(vdev, vq);
}

/* --- Transmit ------------------------------------------------------- */

/*
 * May the chain el (popped, or held already) be written now? If not,
 * hold it and arm the timer; the caller stops popping.
 */
static bool
net_tx_admit(struct vnet *n, const struct virtq_elem *el)
{
	uint64_t now = ratelimit_now();
	uint64_t wait = ratelimit_take(&n->tx_rl, el->out_len - NET_HDR_LEN,
				       1, now);

	if (wait == 0) {
		n->tx_held = false;
		return true;
	}
	n->tx_held = true;
	n->tx_el = *el;
	net_arm_timer(n->tx_timer, now, wait);
	return false;
}

/* Merge neighbouring iovecs in place (see rd_iov); the new count. */
static unsigned int
net_iov_merge(struct iovec *v, unsigned int nr)
{
	unsigned int i, k = 0;

	for (i = 0; i < nr; i++) {
		if (k && (uint8_t *)v[k - 1].iov_base + v[k - 1].iov_len ==
			 v[i].iov_base) {
			v[k - 1].iov_len += v[i].iov_len;
			continue;
		}
		v[k++] = v[i];
	}
	return k;
}

static void
net_tx_run(struct vnet *n)
{
	struct virtio_device *vdev = &n->vdev;
	struct virtq *vq = virtio_device_queue(vdev, NET_TX_QUEUE);
	unsigned int frames = 0, pushed = 0;
	uint64_t packets = 0, bytes = 0, errors = 0;
	struct virtq_elem el;
	ssize_t w;
	int r;

	if (!virtio_queue_live(vdev, vq->index))
		return;
	net_check_limits(n);
	virtq_disable_notify(vq);
	for (;;) {
		if (frames == NET_BUDGET) {
			virtio_queue_yield(&n->vdev, NET_TX_QUEUE);
			break;
		}
		if (n->tx_held) {
			/* Nothing overtakes it; kicks stay off meanwhile,
			 * the timer comes back here. */
			el = n->tx_el;
		} else {
			/* Pops with kicks back on when the ring runs dry. */
			r = virtq_pop(vq, n->tx_iov, NET_QUEUE_MAX, &el);
			if (r <= 0)
				break;
			if (el.in_len || el.out_len < NET_HDR_LEN) {
				virtio_device_needs_reset(vdev, "transmit "
					"buffer at head %u has %u "
					"device-writable bytes and %u readable "
					"(header %u)", el.head, el.in_len,
					el.out_len, NET_HDR_LEN);
				break;
			}
		}
		if (n->tx_limited) {
			if (!net_tx_admit(n, &el))
				break;
		} else if (n->tx_held) {
			/* The limit was lifted while it waited. */
			ratelimit_cancel(&n->tx_rl, ratelimit_now());
			n->tx_held = false;
		}
		frames++;
		do {
			w = writev(n->tap_fd, n->tx_iov,
				   (int)net_iov_merge(n->tx_iov, el.nr_out));
		} while (w < 0 && errno == EINTR);
		if (w == (ssize_t)el.out_len) {
			packets++;
			bytes += el.out_len - NET_HDR_LEN;
		} else {
			/* Refused (bad header, interface down, ...): a
			 * NIC drops such a frame too. */
			errors++;
		}
		virtq_push(vq, el.head, 0);
		if (++pushed % NET_SIGNAL_EVERY == 0)
			virtio_queue_signal(vdev, vq);
	}
	/* Once per run: atomics per frame cost more than they tell. */
	if (packets) {
		net_count(&n->tx_packets, packets);
		net_count(&n->tx_bytes, bytes);
	}
	if (errors)
		net_count(&n->tx_errors, errors);
	virtio_queue_signal(vdev, vq);
}

/* --- The device ----------------------------------------------------- */

static void
net_activate(struct virtio_device *vdev)
{
	struct vnet *n = vdev->opaque;

	n->mrg = virtio_has_feature(vdev, VIRTIO_NET_F_MRG_RXBUF);
	n->guest_csum = virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_CSUM);
	n->rx_need = virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO4) ||
		     virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO6) ?
		     NET_RX_GSO_FRAME : NET_RX_MIN_FRAME;
}

static void
net_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct vnet *n = vdev->opaque;

	if (vq->index == NET_RX_QUEUE)
		net_rx_run(n);
	else
		net_tx_run(n);
}

static void
net_reset(struct virtio_device *vdev)
{
	struct vnet *n = vdev->opaque;

	/* Held buffers are forgotten, never pushed: the rings are gone.
	 * Frames not yet read stay in the TAP for the next driver. */
	net_tap_unwatch(n);
	net_rx_clear_held(n);
	n->mrg = n->guest_csum = false;
	/* A waiting chain goes with the rings; the buckets stay (a reset
	 * buys no new burst). */
	if (n->tx_held)
		ratelimit_cancel(&n->tx_rl, ratelimit_now());
	if (n->rx_waiting)
		ratelimit_cancel(&n->rx_rl, ratelimit_now());
	n->tx_held = n->rx_waiting = false;
	net_disarm_timer(n->tx_timer);
	net_disarm_timer(n->rx_timer);
	(void)ioctl(n->tap_fd, TUNSETOFFLOAD, 0UL);
}

/*
 * The driver's features must keep the spec's dependencies (virtio 1.x
 * 5.1.3.1), which the TAP relies on too: offloads of the guest need
 * GUEST_CSUM, those of the host need CSUM.
 */
static int
net_features_ok(struct virtio_device *vdev, uint64_t f)
{
	struct vnet *n = vdev->opaque;
	uint64_t gtso = (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
			(1ULL << VIRTIO_NET_F_GUEST_TSO6);
	uint64_t htso = (1ULL << VIRTIO_NET_F_HOST_TSO4) |
			(1ULL << VIRTIO_NET_F_HOST_TSO6);
	unsigned int off = 0;

	if ((f & gtso) && !(f & (1ULL << VIRTIO_NET_F_GUEST_CSUM)))
		return -EINVAL;
	if ((f & htso) && !(f & (1ULL << VIRTIO_NET_F_CSUM)))
		return -EINVAL;
	/*
	 * The TAP's offloads are set here, before FEATURES_OK reads back,
	 * not at activation on the I/O thread: a frame the host sends once
	 * the driver is up must already find them (or the kernel segments
	 * and checksums it in software). Probed at net_new(): the TAP
	 * accepts them. A reset clears them again; it comes after this in
	 * order, since the driver's reset waits for the I/O thread.
	 */
	if (f & (1ULL << VIRTIO_NET_F_GUEST_CSUM))
		off |= TUN_F_CSUM;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO4))
		off |= TUN_F_TSO4;
	if (f & (1ULL << VIRTIO_NET_F_GUEST_TSO6))
		off |= TUN_F_TSO6;
	if (ioctl(n->tap_fd, TUNSETOFFLOAD, (unsigned long)off) < 0)
		return -errno;
	return 0;
}

static void
net_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
		uint32_t len)
{
	struct vnet *n = vdev->opaque;
	struct virtio_net_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.mac, n->mac, sizeof(cfg.mac));
	cfg.status = htole16(VIRTIO_NET_S_LINK_UP);
	/* The core checked offset + len against config_size. */
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.pci_class = 0x020000,	/* network controller, Ethernet */
	.config_read = net_config_read,
	.features_ok = net_features_ok,
	.queue_notify = net_queue_notify,
	.activate = net_activate,
	.reset = net_reset,
};

/* --- Construction --------------------------------------------------- */

static int
net_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
net_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

void
net_mac_from_seed(const char *seed, uint8_t ret[6])
{
	uint64_t h = 0xcbf29ce484222325ULL;	/* FNV-1a 64 */
	const char *p;
	int i;

	for (p = seed ? seed : ""; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 0x100000001b3ULL;
	}
	/* Fold the high bits in: FNV's low bytes mix less. */
	h ^= h >> 29;
	for (i = 0; i < 6; i++)
		ret[i] = (uint8_t)(h >> (8 * i));
	/* Locally administered, unicast. */
	ret[0] = (uint8_t)((ret[0] & 0xfc) | 0x02);
}

static bool
net_mac_valid(const uint8_t mac[6])
{
	static const uint8_t zero[6];

	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

static int
net_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
net_parse_mac(const char *s, uint8_t ret[6])
{
	uint8_t mac[6];
	int i, hi, lo;

	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 6; i++) {
		hi = net_hex(s[3 * i]);
		lo = net_hex(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	if (!net_mac_valid(mac))
		return -EINVAL;
	memcpy(ret, mac, 6);
	return 0;
}

static int
net_open_tap(struct vnet *n, const char *name, char *err, size_t errlen)
{
	struct ifreq ifr;
	int e;

	if (strlen(name) >= IFNAMSIZ || !*name)
		return net_fail(err, errlen, -EINVAL,
				"TAP '%s': not a valid interface name", name);
	/* TUNSETIFF would create a missing interface: we only attach. */
	if (if_nametoindex(name) == 0)
		return net_fail(err, errlen, -ENODEV,
				"TAP '%s': no such interface", name);
	n->tap_fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (n->tap_fd < 0) {
		e = -errno;
		return net_fail(err, errlen, e, "TAP '%s': /dev/net/tun: %s",
				name, strerror(-e));
	}
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(n->tap_fd, TUNSETIFF, &ifr) < 0) {
		e = -errno;
		return net_fail(err, errlen, e, "TAP '%s': cannot attach: %s%s",
				name, strerror(-e), e == -EINVAL ?
				" (not a TAP, or a multi-queue one?)" : "");
	}
	return 0;
}

static int
net_adopt_fd(struct vnet *n, int fd, char *err, size_t errlen)
{
	struct ifreq ifr;
	int e, fl;

	n->tap_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (n->tap_fd < 0) {
		e = -errno;
		return net_fail(err, errlen, e, "TAP fd %d: %s", fd,
				strerror(-e));
	}
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(n->tap_fd, TUNGETIFF, &ifr) < 0)
		return net_fail(err, errlen, -EINVAL, "TAP fd %d: not an "
				"attached TAP: %s", fd, strerror(errno));
	if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP ||
	    (ifr.ifr_flags & (IFF_NO_PI | IFF_VNET_HDR)) !=
	    (IFF_NO_PI | IFF_VNET_HDR))
		return net_fail(err, errlen, -EINVAL, "TAP fd %d ('%.*s'): "
				"needs IFF_TAP, IFF_NO_PI and IFF_VNET_HDR",
				fd, IFNAMSIZ, ifr.ifr_name);
	fl = fcntl(n->tap_fd, F_GETFL);
	if (fl < 0 || fcntl(n->tap_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		e = -errno;
		return net_fail(err, errlen, e, "TAP fd %d: O_NONBLOCK: %s",
				fd, strerror(-e));
	}
	return 0;
}

int
net_new(const struct guest_mem *mem, const struct net_options *o,
	struct vnet **ret, char *err, size_t errlen)
{
	const char *what = o && o->tap ? o->tap : "fd";
	struct ifreq ifr;
	struct vnet *n;
	int e, sz = NET_HDR_LEN, le = 1;

	if (err && errlen)
		err[0] = '\0';
	if (!mem || !ret || !o || (o->tap != NULL) == (o->tap_fd >= 0) ||
	    o->tap_fd < -1)
		return net_fail(err, errlen, -EINVAL, "network: give either "
				"a TAP name or an fd");
	if (o->mac && !net_mac_valid(o->mac))
		return net_fail(err, errlen, -EINVAL, "TAP '%s': the MAC is "
				"multicast or zero", what);
	{
		char w[IFNAMSIZ + 48];

		snprintf(w, sizeof(w), "TAP '%s' rx (ops: packets)", what);
		e = ratelimit_limits_check(&o->rx_limits, w, err, errlen);
		if (e < 0)
			return e;
		snprintf(w, sizeof(w), "TAP '%s' tx (ops: packets)", what);
		e = ratelimit_limits_check(&o->tx_limits, w, err, errlen);
		if (e < 0)
			return e;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return net_fail(err, errlen, -ENOMEM, "TAP '%s': %s", what,
				strerror(ENOMEM));
	n->tap_fd = n->rx_timer = n->tx_timer = n->limits_fd = -1;
	pthread_mutex_init(&n->limits_lock, NULL);
	n->rx_limits = o->rx_limits;
	n->tx_limits = o->tx_limits;
	ratelimit_init(&n->rx_rl, &o->rx_limits, ratelimit_now());
	ratelimit_init(&n->tx_rl, &o->tx_limits, ratelimit_now());
	n->rx_limited = ratelimit_limited(&n->rx_rl);
	n->tx_limited = ratelimit_limited(&n->tx_rl);
	e = o->tap ? net_open_tap(n, o->tap, err, errlen) :
		     net_adopt_fd(n, o->tap_fd, err, errlen);
	if (e < 0)
		goto fail;
	/* After the TAP: a caller's fd just closed must read as closed,
	 * not as one of ours that took its number. */
	n->rx_timer = timerfd_create(CLOCK_MONOTONIC,
				     TFD_CLOEXEC | TFD_NONBLOCK);
	n->tx_timer = timerfd_create(CLOCK_MONOTONIC,
				     TFD_CLOEXEC | TFD_NONBLOCK);
	n->limits_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->rx_timer < 0 || n->tx_timer < 0 || n->limits_fd < 0) {
		e = net_fail(err, errlen, -errno, "TAP '%s': timerfd or "
			     "eventfd: %s", what, strerror(errno));
		goto fail;
	}
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(n->tap_fd, TUNGETIFF, &ifr) == 0)
		memcpy(n->ifname, ifr.ifr_name, IFNAMSIZ - 1);
	if (ioctl(n->tap_fd, TUNSETVNETHDRSZ, &sz) < 0) {
		e = net_fail(err, errlen, -errno, "TAP '%s': TUNSETVNETHDRSZ: "
			     "%s", n->ifname, strerror(errno));
		goto fail;
	}
	/* VERSION_1 headers are little-endian; a no-op on x86, and an old
	 * kernel without the ioctl is only right on a little-endian host. */
	(void)ioctl(n->tap_fd, TUNSETVNETLE, &le);
	if (ioctl(n->tap_fd, TUNSETOFFLOAD,
		  (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) == 0)
		n->tap_offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	else if (ioctl(n->tap_fd, TUNSETOFFLOAD, (unsigned long)TUN_F_CSUM) == 0)
		n->tap_offloads = TUN_F_CSUM;
	(void)ioctl(n->tap_fd, TUNSETOFFLOAD, 0UL);
	if (o->mac)
		memcpy(n->mac, o->mac, 6);
	else
		net_mac_from_seed(o->mac_seed ? o->mac_seed : n->ifname,
				  n->mac);

	n->vdev.ops = &net_ops;
	n->vdev.name = "net";
	n->vdev.mem = mem;
	n->vdev.features = (1ULL << VIRTIO_NET_F_MAC) |
			   (1ULL << VIRTIO_NET_F_STATUS) |
			   (1ULL << VIRTIO_NET_F_MRG_RXBUF) |
			   (1ULL << VIRTIO_NET_F_CSUM) |
			   (1ULL << VIRTIO_NET_F_HOST_TSO4) |
			   (1ULL << VIRTIO_NET_F_HOST_TSO6);
	if (n->tap_offloads & TUN_F_CSUM)
		n->vdev.features |= 1ULL << VIRTIO_NET_F_GUEST_CSUM;
	if (n->tap_offloads & TUN_F_TSO4)
		n->vdev.features |= (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
				    (1ULL << VIRTIO_NET_F_GUEST_TSO6);
	n->vdev.config_size = offsetof(struct virtio_net_config,
				       max_virtqueue_pairs);
	n->vdev.nr_queues = 2;
	n->vdev.opaque = n;
	e = virtio_device_init(&n->vdev, NET_QUEUE_MAX);
	if (e < 0) {
		net_fail(err, errlen, e, "TAP '%s': virtio device: %s",
			 n->ifname, strerror(-e));
		goto fail;
	}
	e = virtio_device_watch_fd(&n->vdev, n->rx_timer, EPOLLIN,
				   net_on_rx_timer, n);
	if (e == 0)
		e = virtio_device_watch_fd(&n->vdev, n->tx_timer, EPOLLIN,
					   net_on_tx_timer, n);
	if (e == 0)
		e = virtio_device_watch_fd(&n->vdev, n->limits_fd, EPOLLIN,
					   net_on_limits, n);
	if (e < 0) {
		net_fail(err, errlen, e, "TAP '%s': watching timers: %s",
			 n->ifname, strerror(-e));
		goto fail;
	}
	*ret = n;
	return 0;
fail:
	net_free(n);
	return e;
}

struct virtio_device *
net_virtio(struct vnet *n)
{
	return &n->vdev;
}

void
net_free(struct vnet *n)
{
	if (!n)
		return;
	virtio_device_destroy(&n->vdev);
	if (n->tap_fd >= 0)
		close(n->tap_fd);
	if (n->rx_timer >= 0)
		close(n->rx_timer);
	if (n->tx_timer >= 0)
		close(n->tx_timer);
	if (n->limits_fd >= 0)
		close(n->limits_fd);
	pthread_mutex_destroy(&n->limits_lock);
	free(n);
}

void
net_get_mac(const struct vnet *n, uint8_t ret[6])
{
	memcpy(ret, n->mac, 6);
}

const char *
net_ifname(const struct vnet *n)
{
	return n->ifname;
}

static void
net_rl_stats(const struct ratelimit *rl, uint64_t *delayed, uint64_t *ns)
{
	struct ratelimit_stats rs;

	ratelimit_get_stats(rl, ratelimit_now(), &rs);
	*delayed = rs.delayed;
	*ns = rs.throttled_ns;
}

void
net_get_stats(struct vnet *n, struct net_stats *ret)
{
	ret->rx_packets = __atomic_load_n(&n->rx_packets, __ATOMIC_RELAXED);
	ret->rx_bytes = __atomic_load_n(&n->rx_bytes, __ATOMIC_RELAXED);
	ret->rx_dropped = __atomic_load_n(&n->rx_dropped, __ATOMIC_RELAXED);
	ret->tx_packets = __atomic_load_n(&n->tx_packets, __ATOMIC_RELAXED);
	ret->tx_bytes = __atomic_load_n(&n->tx_bytes, __ATOMIC_RELAXED);
	ret->tx_errors = __atomic_load_n(&n->tx_errors, __ATOMIC_RELAXED);
	net_rl_stats(&n->rx_rl, &ret->rx_throttled, &ret->rx_throttled_ns);
	net_rl_stats(&n->tx_rl, &ret->tx_throttled, &ret->tx_throttled_ns);
}

int
net_set_limits(struct vnet *n, const struct ratelimit_limits *rx,
	       const struct ratelimit_limits *tx)
{
	ssize_t w;

	if ((rx && ratelimit_limits_check(rx, NULL, NULL, 0) < 0) ||
	    (tx && ratelimit_limits_check(tx, NULL, NULL, 0) < 0))
		return -EINVAL;
	if (!rx && !tx)
		return 0;
	pthread_mutex_lock(&n->limits_lock);
	if (rx)
		n->rx_limits = *rx;
	if (tx)
		n->tx_limits = *tx;
	/* Release: the I/O thread's acquire load then takes the lock. */
	__atomic_store_n(&n->limits_pending, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&n->limits_lock);
	/* An eventfd write fails only with ~2^64 writes pending, when a
	 * wakeup is pending anyway. */
	w = write(n->limits_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	(void)w;
	return 0;
}

void
net_get_limits(struct vnet *n, struct ratelimit_limits *rx,
	       struct ratelimit_limits *tx)
{
	pthread_mutex_lock(&n->limits_lock);
	if (rx)
		*rx = n->rx_limits;
	if (tx)
		*tx = n->tx_limits;
	pthread_mutex_unlock(&n->limits_lock);
}
