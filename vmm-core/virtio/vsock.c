/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock with UNIX-socket host side. See vsock.h for the rules.
 * Everything but vsock_new/free and the stats runs on the device's I/O
 * thread: the queues, the connection table and the epoll set of sockets.
 */
#include "virtio/vsock.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ids.h>
#include <linux/virtio_vsock.h>

#ifndef VIRTIO_VSOCK_F_STREAM
#define VIRTIO_VSOCK_F_STREAM	0
#endif

#define VSOCK_RST_RING		512	/* RSTs waiting for receive buffers */
#define VSOCK_CMD_MAX		32	/* "CONNECT 4294967295\n" fits */
#define VSOCK_EVENTS		64	/* epoll events per wakeup */
#define VSOCK_BUDGET		64	/* transmit chains per wakeup */
#define VSOCK_RX_BUDGET		256	/* receive buffers per wakeup */
#define VSOCK_SIGNAL_EVERY	16	/* transmit chains between interrupts */
/*
 * Receive buffers pushed between interrupts in a long run: one read's
 * worth. An interrupt per read (or per 16 buffers) woke the driver up to
 * four times for each 256 KiB of credit it has to hand back anyway, while
 * the buffers of one read mean nothing to it one by one.
 */
#define VSOCK_RX_SIGNAL_EVERY	VSOCK_RX_BATCH
/* One read from a host socket takes at most this much (see vsock.h). */
#define VSOCK_RX_BYTES		(256u << 10)
#define VSOCK_RX_IOV		1024	/* UIO_MAXIOV */
#define VSOCK_TAG_LISTEN	0

_Static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_SIZE,
	       "virtio_vsock_hdr is 44 bytes");

enum vsock_state {
	VSC_FREE,
	VSC_HOST_CMD,		/* host socket accepted, reading CONNECT */
	VSC_CONNECTING,		/* REQUEST to the guest, awaiting RESPONSE */
	VSC_ESTABLISHED,
	VSC_CLOSING,		/* SHUTDOWN both sent, awaiting guest RST */
};

#define NSEC_PER_SEC	1000000000ull
#define NSEC_PER_MSEC	1000000ull

/* Control packets a connection still owes the guest. */
#define CTRL_REQUEST	1u
#define CTRL_RESPONSE	2u
#define CTRL_CREDIT	4u
#define CTRL_SHUTDOWN	8u

struct vsock_conn {
	enum vsock_state state;
	int fd;
	unsigned int idx;
	uint32_t local_port;		/* the host's side */
	uint32_t peer_port;		/* the guest's side */
	int hash_next;			/* -1 ends the chain */
	bool hashed;

	/*
	 * Guest to host: received, forwarded, and what waits between: first
	 * the transmit chains kept (a FIFO of v->held entries), then the
	 * bytes copied into buf.
	 */
	uint32_t rx_cnt, fwd_cnt, last_fwd_sent;
	int held_first, held_last;	/* -1: none */
	unsigned int nr_held;
	uint32_t held_len;
	uint8_t *buf;			/* ring of v->buf_alloc, or NULL */
	uint32_t buf_head, buf_len;
	bool shut_send;			/* guest sends no more */
	bool shut_rcv;			/* guest reads no more */

	/* Host to guest. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	bool readable;			/* the socket may have bytes */
	bool host_eof;
	uint32_t ep_events;		/* what the epoll set watches it for */

	unsigned int ctrl;		/* CTRL_* owed */
	uint32_t shut_flags;
	struct vsock_conn *ctrl_next, *ctrl_prev;
	bool on_ctrl;
	struct vsock_conn *ready_next, *ready_prev;
	bool on_ready;

	/* The wait it is in (HOST_CMD, CONNECTING, CLOSING) ends then. */
	uint64_t tmo_at;		/* CLOCK_MONOTONIC ns */
	struct vsock_list *tmo_list;	/* which of v's, while on_tmo */
	struct vsock_conn *tmo_next, *tmo_prev;
	bool on_tmo;
};

struct vsock_list {
	struct vsock_conn *head, *tail;
};

/* A transmit chain kept until its payload is written to the socket. */
struct vsock_held {
	uint16_t head;
	unsigned int first, nr_iov;	/* the rest: iov[first, nr_iov) */
	struct iovec iov[VSOCK_HOLD_IOV];
	int next;			/* the FIFO or the free list */
};

/* A receive buffer popped and held. */
struct vsock_rx_buf {
	uint16_t head;
	uint32_t len;			/* writable bytes, header included */
	unsigned int iov_first;		/* into rx_iov */
	unsigned int nr_iov;
};

struct vsock {
	struct virtio_device vdev;
	uint64_t guest_cid;
	char *path;
	int listen_fd;
	int ep_fd;			/* the sockets, watched as one fd */
	unsigned int max_conns;
	uint32_t buf_alloc;
	uint32_t next_port;

	struct vsock_conn *conns;
	unsigned int nr_conns;
	int *hash;
	unsigned int hash_mask;

	/*
	 * Receive buffers popped and not filled yet, oldest first, and
	 * their (writable) iovecs, in the same order. I/O thread only.
	 */
	struct vsock_rx_buf rx_bufs[VSOCK_RX_BATCH];
	unsigned int nr_rx_bufs;
	unsigned int rx_iov_used;
	struct iovec rx_iov[VSOCK_RX_IOV];
	struct iovec rd_iov[VSOCK_RX_IOV];	/* what one readv gets */
	struct iovec tx_iov[VSOCK_QUEUE_MAX];
	struct vsock_held held[VSOCK_HOLD_TOTAL];
	int held_free;			/* free list of held[] */
	unsigned int tx_given;		/* transmit chains given back and not
					 * signalled yet (vsock_tx_signal) */
	bool closing;			/* vsock_free(): give nothing back */
	struct virtio_vsock_hdr rst_ring[VSOCK_RST_RING];
	unsigned int rst_head, rst_len;
	struct vsock_list ctrl_list, ready_list;

	/*
	 * Connections waiting for a host command line or a guest RESPONSE
	 * (one length: connect_ns), and for a guest RST (shutdown_ns). A
	 * connection joins at the tail with now + the list's length, so
	 * each list is in deadline order without sorting, and expiry looks
	 * at the heads only. The timer is armed for timer_at (0: not
	 * armed), never later than the earliest head; a head leaving early
	 * leaves it armed and costs one empty wakeup.
	 */
	struct vsock_list connect_wait, shutdown_wait;
	uint64_t connect_ns, shutdown_ns;
	int timer_fd;
	uint64_t timer_at;

	/* Counters: atomics. */
	uint64_t st_conns, st_guest_connects, st_host_connects, st_refused;
	uint64_t st_rx_bytes, st_tx_bytes, st_rst_sent, st_rst_dropped;
	uint64_t st_credit_updates, st_tx_copied;
	uint64_t st_cmd_timeouts, st_connect_timeouts, st_shutdown_timeouts;
};

#define STAT_ADD(v, f, n) __atomic_add_fetch(&(v)->f, (n), __ATOMIC_RELAXED)

static void vsock_rx_run(struct vsock *v);
static void vsock_conn_watch(struct vsock *v, struct vsock_conn *c);

static void
vsock_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
vsock_live(struct vsock *v, unsigned int q)
{
	struct virtio_device *vdev = &v->vdev;
	struct virtq *vq = virtio_device_queue(vdev, q);
	uint8_t st = virtio_device_status(vdev);

	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)))
		return false;
	return virtio_queue_enabled(vdev, q) && vq->ready && !vq->broken;
}

/* --- iovec helpers -------------------------------------------------- */

static void
iov_copy_out(const struct iovec *iov, unsigned int n, size_t off, void *dst,
	     size_t len)
{
	uint8_t *d = dst;
	size_t k;

	for (; n && len; iov++, n--) {
		if (off >= iov->iov_len) {
			off -= iov->iov_len;
			continue;
		}
		k = iov->iov_len - off;
		if (k > len)
			k = len;
		memcpy(d, (const uint8_t *)iov->iov_base + off, k);
		d += k;
		len -= k;
		off = 0;
	}
}

static void
iov_copy_in(const struct iovec *iov, unsigned int n, const void *src,
	    size_t len)
{
	const uint8_t *s = src;
	size_t k;

	for (; n && len; iov++, n--) {
		k = iov->iov_len < len ? iov->iov_len : len;
		memcpy(iov->iov_base, s, k);
		s += k;
		len -= k;
	}
}

/* Slice [off, off + len) of iov into out (max entries); the entry count. */
static unsigned int
iov_slice(const struct iovec *iov, unsigned int n, size_t off, size_t len,
	  struct iovec *out, unsigned int max)
{
	unsigned int k = 0;
	size_t take;

	for (; n && len && k < max; iov++, n--) {
		if (off >= iov->iov_len) {
			off -= iov->iov_len;
			continue;
		}
		take = iov->iov_len - off;
		if (take > len)
			take = len;
		out[k].iov_base = (uint8_t *)iov->iov_base + off;
		out[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return k;
}

/* --- Lists and the table -------------------------------------------- */

#define LIST_ADD(l, c, nx, pv, on)					\
	do {								\
		if ((c)->on)						\
			break;						\
		(c)->on = true;						\
		(c)->nx = NULL;						\
		(c)->pv = (l)->tail;					\
		if ((l)->tail)						\
			(l)->tail->nx = (c);				\
		else							\
			(l)->head = (c);				\
		(l)->tail = (c);					\
	} while (0)

#define LIST_DEL(l, c, nx, pv, on)					\
	do {								\
		if (!(c)->on)						\
			break;						\
		(c)->on = false;					\
		if ((c)->pv)						\
			(c)->pv->nx = (c)->nx;				\
		else							\
			(l)->head = (c)->nx;				\
		if ((c)->nx)						\
			(c)->nx->pv = (c)->pv;				\
		else							\
			(l)->tail = (c)->pv;				\
		(c)->nx = (c)->pv = NULL;				\
	} while (0)

static void
vsock_ctrl_add(struct vsock *v, struct vsock_conn *c, unsigned int bits)
{
	c->ctrl |= bits;
	LIST_ADD(&v->ctrl_list, c, ctrl_next, ctrl_prev, on_ctrl);
}

static void
vsock_ctrl_del(struct vsock *v, struct vsock_conn *c)
{
	LIST_DEL(&v->ctrl_list, c, ctrl_next, ctrl_prev, on_ctrl);
}

static uint64_t
vsock_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * NSEC_PER_SEC + (uint64_t)t.tv_nsec;
}

static void
vsock_timer_arm(struct vsock *v, uint64_t at)
{
	struct itimerspec its = {
		.it_value = {
			.tv_sec = (time_t)(at / NSEC_PER_SEC),
			.tv_nsec = (long)(at % NSEC_PER_SEC),
		},
	};

	/* Absolute: a deadline already past fires at once. A valid time
	 * on our own timerfd does not fail. */
	(void)timerfd_settime(v->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
	v->timer_at = at;
}

static void
vsock_tmo_del(struct vsock_conn *c)
{
	if (c->on_tmo)
		LIST_DEL(c->tmo_list, c, tmo_next, tmo_prev, on_tmo);
	c->tmo_list = NULL;
}

/* c starts a wait of list l's length (ns), or starts it afresh. */
static void
vsock_tmo_start(struct vsock *v, struct vsock_conn *c, struct vsock_list *l,
		uint64_t ns)
{
	vsock_tmo_del(c);
	c->tmo_at = vsock_now() + ns;
	c->tmo_list = l;
	LIST_ADD(l, c, tmo_next, tmo_prev, on_tmo);
	/* Only a list that was empty can have the earliest deadline now. */
	if (!v->timer_at || c->tmo_at < v->timer_at)
		vsock_timer_arm(v, c->tmo_at);
}

static void
vsock_ready_add(struct vsock *v, struct vsock_conn *c)
{
	LIST_ADD(&v->ready_list, c, ready_next, ready_prev, on_ready);
}

static void
vsock_ready_del(struct vsock *v, struct vsock_conn *c)
{
	LIST_DEL(&v->ready_list, c, ready_next, ready_prev, on_ready);
}

static unsigned int
vsock_hash_of(const struct vsock *v, uint32_t local, uint32_t peer)
{
	uint32_t h = local * 0x9e3779b1u ^ (peer + 0x7f4a7c15u) * 0x85ebca6bu;

	return (h ^ h >> 15) & v->hash_mask;
}

static struct vsock_conn *
vsock_lookup(struct vsock *v, uint32_t local, uint32_t peer)
{
	int i = v->hash[vsock_hash_of(v, local, peer)];

	while (i >= 0) {
		struct vsock_conn *c = &v->conns[i];

		if (c->local_port == local && c->peer_port == peer)
			return c;
		i = c->hash_next;
	}
	return NULL;
}

static void
vsock_hash_insert(struct vsock *v, struct vsock_conn *c)
{
	unsigned int b = vsock_hash_of(v, c->local_port, c->peer_port);

	c->hash_next = v->hash[b];
	v->hash[b] = (int)c->idx;
	c->hashed = true;
}

static void
vsock_hash_remove(struct vsock *v, struct vsock_conn *c)
{
	int *p;

	if (!c->hashed)
		return;
	p = &v->hash[vsock_hash_of(v, c->local_port, c->peer_port)];
	while (*p >= 0) {
		if (*p == (int)c->idx) {
			*p = c->hash_next;
			break;
		}
		p = &v->conns[*p].hash_next;
	}
	c->hashed = false;
}

/*
 * A free slot with fd registered in the epoll set (edge-triggered; for
 * hang-ups only at first: it is readable until a read says otherwise,
 * see vsock_conn_watch).
 */
static struct vsock_conn *
vsock_conn_alloc(struct vsock *v, int fd, enum vsock_state state)
{
	struct epoll_event ev = { 0 };
	struct vsock_conn *c = NULL;
	unsigned int i;

	if (v->nr_conns == v->max_conns)
		return NULL;
	for (i = 0; i < v->max_conns; i++) {
		if (v->conns[i].state == VSC_FREE) {
			c = &v->conns[i];
			break;
		}
	}
	if (!c)
		return NULL;
	ev.events = EPOLLRDHUP | EPOLLET;
	ev.data.u64 = (uint64_t)i + 1;
	if (epoll_ctl(v->ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->ep_events = ev.events;
	c->idx = i;
	c->fd = fd;
	c->state = state;
	c->hash_next = -1;
	c->held_first = c->held_last = -1;
	c->readable = true;	/* edge-triggered: look once */
	v->nr_conns++;
	STAT_ADD(v, st_conns, 1);
	return c;
}

/*
 * The oldest chain c keeps is done with: give it back to the guest (its
 * payload written, or dropped with the connection), unless the queue is
 * gone (device reset, vsock_free()).
 */
static void
vsock_held_done(struct vsock *v, struct vsock_conn *c)
{
	struct virtq *vq = virtio_device_queue(&v->vdev, VSOCK_TX_QUEUE);
	int i = c->held_first;
	struct vsock_held *h = &v->held[i];

	if (!v->closing && vsock_live(v, VSOCK_TX_QUEUE)) {
		virtq_push(vq, h->head, 0);
		v->tx_given++;
	}
	c->held_first = h->next;
	if (c->held_first < 0)
		c->held_last = -1;
	c->nr_held--;
	h->next = v->held_free;
	v->held_free = i;
}

/* Interrupt for transmit chains given back since the last one. */
static void
vsock_tx_signal(struct vsock *v)
{
	if (!v->tx_given)
		return;
	v->tx_given = 0;
	virtio_queue_signal(&v->vdev,
			    virtio_device_queue(&v->vdev, VSOCK_TX_QUEUE));
}

static void
vsock_conn_free(struct vsock *v, struct vsock_conn *c)
{
	if (c->state == VSC_FREE)
		return;
	while (c->nr_held)
		vsock_held_done(v, c);
	c->held_len = 0;
	vsock_hash_remove(v, c);
	vsock_ctrl_del(v, c);
	vsock_ready_del(v, c);
	vsock_tmo_del(c);
	/* close() drops it from the epoll set too. */
	close(c->fd);
	free(c->buf);
	c->buf = NULL;
	c->state = VSC_FREE;
	v->nr_conns--;
	__atomic_sub_fetch(&v->st_conns, 1, __ATOMIC_RELAXED);
}

/* --- Packets to the guest ------------------------------------------- */

static void
vsock_hdr_fill(struct vsock *v, struct virtio_vsock_hdr *h, uint32_t src_port,
	       uint32_t dst_port, uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(VSOCK_HOST_CID);
	h->dst_cid = htole64(v->guest_cid);
	h->src_port = htole32(src_port);
	h->dst_port = htole32(dst_port);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
}

/* The connection's credit fields in h, remembered as sent. */
static void
vsock_hdr_credit(struct vsock *v, struct vsock_conn *c,
		 struct virtio_vsock_hdr *h)
{
	h->buf_alloc = htole32(v->buf_alloc);
	h->fwd_cnt = htole32(c->fwd_cnt);
	c->last_fwd_sent = c->fwd_cnt;
}

/* RST for (local, peer), not tied to a connection. */
static void
vsock_rst_queue(struct vsock *v, uint32_t local, uint32_t peer)
{
	struct virtio_vsock_hdr *h;

	STAT_ADD(v, st_rst_sent, 1);
	if (v->rst_len == VSOCK_RST_RING) {
		/* The guest posts no receive buffers; it will not miss it. */
		STAT_ADD(v, st_rst_dropped, 1);
		return;
	}
	h = &v->rst_ring[(v->rst_head + v->rst_len++) % VSOCK_RST_RING];
	vsock_hdr_fill(v, h, local, peer, VIRTIO_VSOCK_OP_RST);
}

/* Reset c: RST to the guest (unless it is not the guest's yet), close. */
static void
vsock_conn_reset(struct vsock *v, struct vsock_conn *c)
{
	if (c->state != VSC_HOST_CMD &&
	    !(c->state == VSC_CONNECTING && (c->ctrl & CTRL_REQUEST)))
		vsock_rst_queue(v, c->local_port, c->peer_port);
	vsock_conn_free(v, c);
}

/* Bytes of guest payload waiting for c's socket. */
static uint32_t
vsock_pending(const struct vsock_conn *c)
{
	return c->held_len + c->buf_len;
}

static uint32_t
vsock_peer_credit(const struct vsock_conn *c)
{
	uint32_t used = c->tx_cnt - c->peer_fwd_cnt;

	return used >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - used;
}

/* Whether c has bytes to read for the guest and room to send them. */
static bool
vsock_can_send(const struct vsock_conn *c)
{
	return c->state == VSC_ESTABLISHED && c->readable && !c->host_eof &&
	       !c->shut_rcv && vsock_peer_credit(c) > 0;
}

/* On the ready list if it can send; watched for what it waits for. */
static void
vsock_update_ready(struct vsock *v, struct vsock_conn *c)
{
	if (vsock_can_send(c))
		vsock_ready_add(v, c);
	else
		vsock_ready_del(v, c);
	vsock_conn_watch(v, c);
}

/*
 * Hold one more receive buffer (at the back). 1 when one was added; 0
 * when the ring is empty or no more fit; -EIO when the queue is broken
 * or the buffer breaks the rules (the device is then in NEEDS_RESET).
 */
static int
vsock_rx_hold(struct vsock *v, struct virtq *vq)
{
	struct vsock_rx_buf *b;
	struct virtq_elem el;
	int r;

	/* A chain has at most a queue's worth of buffers. */
	if (v->nr_rx_bufs == VSOCK_RX_BATCH ||
	    v->rx_iov_used + VSOCK_QUEUE_MAX > VSOCK_RX_IOV)
		return 0;
	r = virtq_pop(vq, v->rx_iov + v->rx_iov_used, VSOCK_QUEUE_MAX, &el);
	if (r <= 0)
		return r;
	if (el.out_len || el.in_len < VSOCK_HDR_SIZE) {
		virtio_device_needs_reset(&v->vdev, "receive buffer at head %u: "
					  "%u readable, %u writable bytes",
					  el.head, el.out_len, el.in_len);
		return -EIO;
	}
	b = &v->rx_bufs[v->nr_rx_bufs++];
	b->head = el.head;
	b->len = el.in_len;
	b->iov_first = v->rx_iov_used;
	b->nr_iov = el.nr_in;
	v->rx_iov_used += el.nr_in;
	return 1;
}

/* The first k held buffers were given back: forget them. */
static void
vsock_rx_drop(struct vsock *v, unsigned int k)
{
	unsigned int i, first;

	if (k == v->nr_rx_bufs) {
		v->nr_rx_bufs = v->rx_iov_used = 0;
		return;
	}
	first = v->rx_bufs[k].iov_first;
	memmove(v->rx_iov, v->rx_iov + first,
		(v->rx_iov_used - first) * sizeof(v->rx_iov[0]));
	v->rx_iov_used -= first;
	memmove(v->rx_bufs, v->rx_bufs + k,
		(v->nr_rx_bufs - k) * sizeof(v->rx_bufs[0]));
	v->nr_rx_bufs -= k;
	for (i = 0; i < v->nr_rx_bufs; i++)
		v->rx_bufs[i].iov_first -= first;
}

/* Put h into held buffer i and give it back with payload bytes. */
static void
vsock_rx_fill(struct vsock *v, struct virtq *vq, unsigned int i,
	      const struct virtio_vsock_hdr *h, uint32_t payload)
{
	struct vsock_rx_buf *b = &v->rx_bufs[i];
	struct iovec *first = &v->rx_iov[b->iov_first];

	/* Usually the header has a descriptor of its own (Linux's). */
	if (first->iov_len >= sizeof(*h))
		memcpy(first->iov_base, h, sizeof(*h));
	else
		iov_copy_in(first, b->nr_iov, h, sizeof(*h));
	virtq_push(vq, b->head, (uint32_t)sizeof(*h) + payload);
}

/* Put h into the oldest held buffer and give it back. */
static void
vsock_rx_push(struct vsock *v, struct virtq *vq,
	      const struct virtio_vsock_hdr *h, uint32_t payload)
{
	vsock_rx_fill(v, vq, 0, h, payload);
	vsock_rx_drop(v, 1);
}

/* Pending control packet of c into the held buffer. */
static void
vsock_rx_ctrl(struct vsock *v, struct virtq *vq, struct vsock_conn *c)
{
	struct virtio_vsock_hdr h;
	unsigned int bit;
	uint16_t op;

	if (c->ctrl & CTRL_REQUEST) {
		bit = CTRL_REQUEST;
		op = VIRTIO_VSOCK_OP_REQUEST;
	} else if (c->ctrl & CTRL_RESPONSE) {
		bit = CTRL_RESPONSE;
		op = VIRTIO_VSOCK_OP_RESPONSE;
	} else if (c->ctrl & CTRL_CREDIT) {
		bit = CTRL_CREDIT;
		op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		STAT_ADD(v, st_credit_updates, 1);
	} else {
		bit = CTRL_SHUTDOWN;
		op = VIRTIO_VSOCK_OP_SHUTDOWN;
	}
	vsock_hdr_fill(v, &h, c->local_port, c->peer_port, op);
	vsock_hdr_credit(v, c, &h);
	if (bit == CTRL_SHUTDOWN)
		h.flags = htole32(c->shut_flags);
	c->ctrl &= ~bit;
	if (bit == CTRL_RESPONSE)
		vsock_update_ready(v, c);
	if (!c->ctrl)
		vsock_ctrl_del(v, c);
	vsock_rx_push(v, vq, &h, 0);
}

/*
 * The host socket of c is at its end: closed for good (hup) or for
 * writing. Tell the guest; a closed socket waits for its RST. A socket
 * shut only for writing still takes what the guest sent before its own
 * SHUTDOWN and we have not written yet: the connection stays up, sending
 * SHUTDOWN SEND alone (both flags would have the guest reset at once),
 * until vsock_after_tx finds all of it written and answers RST.
 */
static void
vsock_host_eof(struct vsock *v, struct vsock_conn *c, bool hup)
{
	c->host_eof = true;
	c->readable = false;
	if (hup || (c->shut_send && !vsock_pending(c))) {
		c->shut_flags = VIRTIO_VSOCK_SHUTDOWN_RCV |
				VIRTIO_VSOCK_SHUTDOWN_SEND;
		c->state = VSC_CLOSING;
		vsock_tmo_start(v, c, &v->shutdown_wait, v->shutdown_ns);
	} else {
		c->shut_flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
	}
	vsock_update_ready(v, c);
	vsock_ctrl_add(v, c, CTRL_SHUTDOWN);
}

static bool
vsock_fd_hup(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/*
 * Read from c's socket into held buffers, each an RW packet: as many
 * buffers as the guest's credit and VSOCK_RX_BYTES allow (holding more
 * while the budget *pops lasts), one readv for all of them. True when
 * packets went to the guest (or c was reset, which queued one).
 */
static bool
vsock_rx_data(struct vsock *v, struct virtq *vq, struct vsock_conn *c,
	      unsigned int *pops)
{
	struct virtio_vsock_hdr h;
	uint32_t want = vsock_peer_credit(c), take[VSOCK_RX_BATCH];
	uint32_t room, held = 0, left, k;
	unsigned int i, nb, n = 0;
	ssize_t got;
	int r;

	if (v->rx_bufs[0].len == VSOCK_HDR_SIZE) {
		/* A header-only buffer cannot carry data: give it back
		 * empty (the driver drops it) rather than stall. */
		virtq_push(vq, v->rx_bufs[0].head, 0);
		vsock_rx_drop(v, 1);
		return true;
	}
	if (want > VSOCK_RX_BYTES)
		want = VSOCK_RX_BYTES;
	/* The payload room of the held buffers, up to one without any. */
	for (nb = 0; nb < v->nr_rx_bufs && held < want; nb++) {
		room = v->rx_bufs[nb].len - VSOCK_HDR_SIZE;
		if (!room)
			break;
		held += room;
	}
	while (held < want && nb == v->nr_rx_bufs &&
	       *pops < VSOCK_RX_BUDGET) {
		r = vsock_rx_hold(v, vq);
		if (r < 0)
			return false;
		if (r == 0)
			break;
		(*pops)++;
		room = v->rx_bufs[nb].len - VSOCK_HDR_SIZE;
		if (!room)
			break;
		held += room;
		nb++;
	}
	/* Slices after each header, neighbours merged (see net.c). */
	left = want;
	for (i = 0; i < nb && left; i++) {
		struct vsock_rx_buf *b = &v->rx_bufs[i];
		struct iovec sl[VSOCK_QUEUE_MAX];
		unsigned int m, j;

		room = b->len - VSOCK_HDR_SIZE;
		if (room > VSOCK_MAX_PKT)
			room = VSOCK_MAX_PKT;
		take[i] = room < left ? room : left;
		left -= take[i];
		m = iov_slice(v->rx_iov + b->iov_first, b->nr_iov,
			      VSOCK_HDR_SIZE, take[i], sl, VSOCK_QUEUE_MAX);
		for (j = 0; j < m; j++) {
			if (n && (uint8_t *)v->rd_iov[n - 1].iov_base +
				 v->rd_iov[n - 1].iov_len == sl[j].iov_base)
				v->rd_iov[n - 1].iov_len += sl[j].iov_len;
			else
				v->rd_iov[n++] = sl[j];
		}
	}
	nb = i;
	do {
		got = readv(c->fd, v->rd_iov, (int)n);
	} while (got < 0 && errno == EINTR);
	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		vsock_update_ready(v, c);
		return false;
	}
	if (got < 0) {
		vsock_conn_reset(v, c);
		return false;
	}
	if (got == 0) {
		vsock_host_eof(v, c, vsock_fd_hup(c->fd));
		return false;
	}
	left = (uint32_t)got;
	vsock_hdr_fill(v, &h, c->local_port, c->peer_port, VIRTIO_VSOCK_OP_RW);
	vsock_hdr_credit(v, c, &h);
	for (i = 0; i < nb && left; i++) {
		k = take[i] < left ? take[i] : left;
		h.len = htole32(k);
		vsock_rx_fill(v, vq, i, &h, k);
		left -= k;
	}
	vsock_rx_drop(v, i);
	c->tx_cnt += (uint32_t)got;
	STAT_ADD(v, st_rx_bytes, (uint64_t)got);
	/* Round robin: to the back of the list, if still ready. */
	vsock_ready_del(v, c);
	vsock_update_ready(v, c);
	return true;
}

static bool
vsock_rx_pending(struct vsock *v)
{
	return v->rst_len || v->ctrl_list.head || v->ready_list.head;
}

static void
vsock_rx_run(struct vsock *v)
{
	struct virtio_device *vdev = &v->vdev;
	struct virtq *vq = virtio_device_queue(vdev, VSOCK_RX_QUEUE);
	unsigned int pops = 0, pushed, last = vq->used_idx;
	struct vsock_conn *c;
	int r;

	if (!vsock_live(v, VSOCK_RX_QUEUE))
		return;
	while (vsock_rx_pending(v)) {
		if (!v->nr_rx_bufs) {
			if (pops >= VSOCK_RX_BUDGET) {
				virtio_queue_yield(vdev, VSOCK_RX_QUEUE);
				break;
			}
			r = vsock_rx_hold(v, vq);
			if (r <= 0)
				break;	/* the guest's kick brings us back */
			pops++;
		}
		if (v->rst_len) {
			vsock_rx_push(v, vq, &v->rst_ring[v->rst_head], 0);
			v->rst_head = (v->rst_head + 1) % VSOCK_RST_RING;
			v->rst_len--;
		} else if ((c = v->ctrl_list.head)) {
			vsock_rx_ctrl(v, vq, c);
		} else {
			c = v->ready_list.head;
			if (!vsock_rx_data(v, vq, c, &pops)) {
				if (virtio_device_status(vdev) &
				    VIRTIO_CONFIG_S_NEEDS_RESET)
					return;
				continue;
			}
		}
		pushed = (uint16_t)(vq->used_idx - last);
		if (pushed >= VSOCK_RX_SIGNAL_EVERY) {
			virtio_queue_signal(vdev, vq);
			last = vq->used_idx;
		}
	}
	virtio_queue_signal(vdev, vq);
}

/* --- Guest to host -------------------------------------------------- */

/*
 * Watch c's socket for what we wait for, and only that: EPOLLIN once a
 * read found it empty (until then it is known readable), EPOLLOUT while
 * guest payload waits for room in it; hang-ups always. An edge for a
 * socket already known readable (a host process writing more while the
 * guest's credit is spent) or writable (a host process reading what we
 * wrote) only woke the I/O thread for nothing, several times per 256 KiB
 * streamed. A change costs an epoll_ctl, made only when a read comes up
 * empty or a write short, and the next event; adding EPOLLIN back
 * reports what arrived meanwhile (epoll looks at once).
 */
static void
vsock_conn_watch(struct vsock *v, struct vsock_conn *c)
{
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET };

	if (c->state == VSC_FREE)
		return;
	if (!c->readable && !c->host_eof && !c->shut_rcv)
		ev.events |= EPOLLIN;
	if (vsock_pending(c) && c->state == VSC_ESTABLISHED)
		ev.events |= EPOLLOUT;
	if (ev.events == c->ep_events)
		return;
	ev.data.u64 = (uint64_t)c->idx + 1;
	/* MOD of a registered fd allocates nothing: it does not fail. */
	if (epoll_ctl(v->ep_fd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->ep_events = ev.events;
}

/*
 * Write what waits for c's socket, kept chains first (given back as they
 * are written), then the buffer; as much as the socket takes. 0, or -1
 * when c was reset.
 */
static int
vsock_flush(struct vsock *v, struct vsock_conn *c)
{
	struct iovec iov[VSOCK_HOLD_MAX * VSOCK_HOLD_IOV + 2];
	struct vsock_held *h;
	uint32_t first, left;
	unsigned int k, j;
	ssize_t n;
	int i;

	while (vsock_pending(c)) {
		k = 0;
		for (i = c->held_first; i >= 0; i = v->held[i].next) {
			h = &v->held[i];
			for (j = h->first; j < h->nr_iov; j++)
				iov[k++] = h->iov[j];
		}
		if (c->buf_len) {
			first = v->buf_alloc - c->buf_head;
			if (first > c->buf_len)
				first = c->buf_len;
			iov[k].iov_base = c->buf + c->buf_head;
			iov[k++].iov_len = first;
			if (c->buf_len > first) {
				iov[k].iov_base = c->buf;
				iov[k++].iov_len = c->buf_len - first;
			}
		}
		n = sendmsg(c->fd, &(struct msghdr){ .msg_iov = iov,
						     .msg_iovlen = k },
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			vsock_conn_reset(v, c);
			vsock_tx_signal(v);
			return -1;
		}
		c->fwd_cnt += (uint32_t)n;
		left = (uint32_t)n;
		while (left && c->nr_held) {
			h = &v->held[c->held_first];
			while (left && h->first < h->nr_iov) {
				struct iovec *e = &h->iov[h->first];

				if (left < e->iov_len) {
					e->iov_base = (uint8_t *)e->iov_base +
						      left;
					e->iov_len -= left;
					c->held_len -= left;
					left = 0;
					break;
				}
				left -= (uint32_t)e->iov_len;
				c->held_len -= (uint32_t)e->iov_len;
				h->first++;
			}
			if (h->first == h->nr_iov)
				vsock_held_done(v, c);
		}
		c->buf_head = (c->buf_head + left) % v->buf_alloc;
		c->buf_len -= left;
	}
	vsock_tx_signal(v);
	return 0;
}

/*
 * Keep the chain head, whose unwritten payload is sl[0, n) (len bytes),
 * for c's socket. False when it cannot be kept (limits): copy instead.
 */
static bool
vsock_hold(struct vsock *v, struct vsock_conn *c, uint16_t head,
	   const struct iovec *sl, unsigned int n, uint32_t len)
{
	struct vsock_held *h;
	int i = v->held_free;

	if (i < 0 || c->nr_held == VSOCK_HOLD_MAX || n > VSOCK_HOLD_IOV ||
	    c->buf_len)
		return false;
	h = &v->held[i];
	v->held_free = h->next;
	h->head = head;
	h->first = 0;
	h->nr_iov = n;
	memcpy(h->iov, sl, n * sizeof(*sl));
	h->next = -1;
	if (c->held_last >= 0)
		v->held[c->held_last].next = i;
	else
		c->held_first = i;
	c->held_last = i;
	c->nr_held++;
	c->held_len += len;
	return true;
}

/*
 * After the guest's packets or a flush: finish a shutdown the buffer held
 * back, and give the guest credit when it may run short.
 */
static void
vsock_after_tx(struct vsock *v, struct vsock_conn *c)
{
	if (c->state != VSC_ESTABLISHED || vsock_pending(c))
		goto credit;
	if (c->shut_send && (c->shut_rcv || c->host_eof)) {
		/* Both ways shut and all delivered: close, answer RST. */
		vsock_conn_reset(v, c);
		return;
	}
	if (c->shut_send)
		shutdown(c->fd, SHUT_WR);
credit:
	/* When the guest may see less than half its credit left, and we
	 * have a useful amount (or everything) to give back. */
	if (c->state == VSC_ESTABLISHED && !c->shut_send &&
	    c->fwd_cnt != c->last_fwd_sent &&
	    c->rx_cnt - c->last_fwd_sent >= v->buf_alloc / 2 &&
	    (c->fwd_cnt - c->last_fwd_sent >= v->buf_alloc / 4 ||
	     !vsock_pending(c)))
		vsock_ctrl_add(v, c, CTRL_CREDIT);
}

/*
 * Payload of an RW packet (after the header in the chain head) to c's
 * socket: written now, or kept waiting in the chain (true: the chain is
 * c's now, given back once written), or copied when it cannot be kept.
 */
static bool
vsock_tx_rw(struct vsock *v, struct vsock_conn *c, const struct iovec *iov,
	    unsigned int niov, uint32_t len, uint16_t head)
{
	struct iovec sl[VSOCK_QUEUE_MAX];
	unsigned int n, skip = 0;
	ssize_t w = 0;
	uint32_t rest, tail, first;

	if (vsock_pending(c) + (uint64_t)len > v->buf_alloc) {
		/* More than the credit we gave: the spec's driver rule. */
		vsock_conn_reset(v, c);
		return false;
	}
	c->rx_cnt += len;
	STAT_ADD(v, st_tx_bytes, len);
	n = iov_slice(iov, niov, VSOCK_HDR_SIZE, len, sl, VSOCK_QUEUE_MAX);
	if (!vsock_pending(c)) {
		do {
			w = sendmsg(c->fd, &(struct msghdr){
					.msg_iov = sl, .msg_iovlen = n },
				    MSG_NOSIGNAL | MSG_DONTWAIT);
		} while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			vsock_conn_reset(v, c);
			return false;
		}
		if (w < 0)
			w = 0;
		c->fwd_cnt += (uint32_t)w;
	}
	rest = len - (uint32_t)w;
	if (!rest)
		return false;
	/* The socket is full: what it did not take stays in the chain. */
	for (first = (uint32_t)w; first >= sl[skip].iov_len; skip++)
		first -= (uint32_t)sl[skip].iov_len;
	sl[skip].iov_base = (uint8_t *)sl[skip].iov_base + first;
	sl[skip].iov_len -= first;
	if (vsock_hold(v, c, head, sl + skip, n - skip, rest))
		return true;
	if (!c->buf) {
		c->buf = malloc(v->buf_alloc);
		if (!c->buf) {
			vsock_conn_reset(v, c);
			return false;
		}
		c->buf_head = 0;
	}
	/* Or a copy, within the credit. */
	tail = (c->buf_head + c->buf_len) % v->buf_alloc;
	first = v->buf_alloc - tail;
	if (first > rest)
		first = rest;
	iov_copy_out(iov, niov, VSOCK_HDR_SIZE + (size_t)w, c->buf + tail,
		     first);
	iov_copy_out(iov, niov, VSOCK_HDR_SIZE + (size_t)w + first, c->buf,
		     rest - first);
	c->buf_len += rest;
	STAT_ADD(v, st_tx_copied, rest);
	return false;
}

/* Host-initiated c was accepted by the guest: tell the host process. */
static void
vsock_host_ok(struct vsock *v, struct vsock_conn *c)
{
	char line[VSOCK_CMD_MAX];
	int len = snprintf(line, sizeof(line), "OK %" PRIu32 "\n",
			   c->local_port);
	ssize_t w;

	do {
		w = send(c->fd, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (w < 0 && errno == EINTR);
	if (w != len) {
		/* A fresh socket takes a line; one that does not is gone. */
		vsock_conn_reset(v, c);
		return;
	}
	c->state = VSC_ESTABLISHED;
	vsock_tmo_del(c);
	STAT_ADD(v, st_host_connects, 1);
	vsock_update_ready(v, c);
}

/* The guest asks for host port dst. */
static void
vsock_guest_connect(struct vsock *v, uint32_t dst, uint32_t src,
		    const struct virtio_vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%" PRIu32, v->path,
		 dst);
	if (v->nr_conns == v->max_conns)
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	/* Non-blocking: a full backlog (EAGAIN) refuses like no listener. */
	do {
		r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		close(fd);
		goto refuse;
	}
	c = vsock_conn_alloc(v, fd, VSC_ESTABLISHED);
	if (!c) {
		close(fd);
		goto refuse;
	}
	c->local_port = dst;
	c->peer_port = src;
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
	vsock_hash_insert(v, c);
	STAT_ADD(v, st_guest_connects, 1);
	vsock_ctrl_add(v, c, CTRL_RESPONSE);
	return;
refuse:
	STAT_ADD(v, st_refused, 1);
	vsock_rst_queue(v, dst, src);
}

/*
 * One well-formed packet from the guest (header checked for length), in
 * the chain head. True when a connection kept the chain (it gives it back
 * itself, see vsock_tx_rw); false: give it back now.
 */
static bool
vsock_tx_packet(struct vsock *v, const struct virtio_vsock_hdr *h,
		const struct iovec *iov, unsigned int niov, uint16_t head)
{
	uint16_t op = le16toh(h->op);
	uint32_t src = le32toh(h->src_port), dst = le32toh(h->dst_port);
	uint32_t len = le32toh(h->len), flags = le32toh(h->flags);
	struct vsock_conn *c;
	bool kept = false;

	if (le64toh(h->src_cid) != v->guest_cid ||
	    le64toh(h->dst_cid) != VSOCK_HOST_CID ||
	    le16toh(h->type) != VIRTIO_VSOCK_TYPE_STREAM ||
	    (op != VIRTIO_VSOCK_OP_RW && len)) {
		if (op != VIRTIO_VSOCK_OP_RST)
			vsock_rst_queue(v, dst, src);
		return false;
	}
	c = vsock_lookup(v, dst, src);
	if (op == VIRTIO_VSOCK_OP_REQUEST) {
		if (c) {
			/* The guest reused a live pair: both are wrong. */
			vsock_conn_reset(v, c);
			return false;
		}
		vsock_guest_connect(v, dst, src, h);
		return false;
	}
	if (!c) {
		if (op != VIRTIO_VSOCK_OP_RST)
			vsock_rst_queue(v, dst, src);
		return false;
	}
	if (op == VIRTIO_VSOCK_OP_RST) {
		/* Never answered; the host socket just closes. */
		vsock_conn_free(v, c);
		return false;
	}
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
	switch (op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != VSC_CONNECTING || (c->ctrl & CTRL_REQUEST)) {
			vsock_conn_reset(v, c);
			return false;
		}
		vsock_host_ok(v, c);
		return false;
	case VIRTIO_VSOCK_OP_RW:
		if (c->state == VSC_CLOSING) {
			/* Sent before it saw our SHUTDOWN: nowhere to go. */
			c->rx_cnt += len;
			c->fwd_cnt += len;
			return false;
		}
		if (c->state != VSC_ESTABLISHED || c->shut_send) {
			vsock_conn_reset(v, c);
			return false;
		}
		kept = vsock_tx_rw(v, c, iov, niov, len, head);
		if (c->state == VSC_FREE)
			return kept;
		break;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if (c->state == VSC_CLOSING) {
			vsock_conn_reset(v, c);
			return false;
		}
		if (c->state != VSC_ESTABLISHED) {
			vsock_conn_reset(v, c);
			return false;
		}
		if ((flags & VIRTIO_VSOCK_SHUTDOWN_RCV) && !c->shut_rcv) {
			c->shut_rcv = true;
			shutdown(c->fd, SHUT_RD);
		}
		if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
			c->shut_send = true;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		if (c->state == VSC_ESTABLISHED)
			vsock_ctrl_add(v, c, CTRL_CREDIT);
		break;
	default:
		vsock_conn_reset(v, c);
		return false;
	}
	if (c->state == VSC_ESTABLISHED) {
		vsock_after_tx(v, c);
		if (c->state == VSC_FREE)
			return kept;
	}
	vsock_update_ready(v, c);
	return kept;
}

static void
vsock_tx_run(struct vsock *v)
{
	struct virtio_device *vdev = &v->vdev;
	struct virtq *vq = virtio_device_queue(vdev, VSOCK_TX_QUEUE);
	struct virtio_vsock_hdr h;
	struct virtq_elem el;
	unsigned int n = 0, pushed = 0;
	int r;

	if (!vsock_live(v, VSOCK_TX_QUEUE))
		return;
	for (;;) {
		if (n == VSOCK_BUDGET) {
			virtio_queue_yield(vdev, VSOCK_TX_QUEUE);
			break;
		}
		r = virtq_pop(vq, v->tx_iov, VSOCK_QUEUE_MAX, &el);
		if (r <= 0)
			break;
		n++;
		if (el.in_len || el.out_len < VSOCK_HDR_SIZE) {
			virtio_device_needs_reset(vdev, "transmit buffer at "
				"head %u: %u readable, %u writable bytes",
				el.head, el.out_len, el.in_len);
			break;
		}
		iov_copy_out(v->tx_iov, el.nr_out, 0, &h, sizeof(h));
		if (le32toh(h.len) > el.out_len - VSOCK_HDR_SIZE) {
			virtio_device_needs_reset(vdev, "transmit buffer at "
				"head %u: header len %u, %u payload bytes",
				el.head, le32toh(h.len),
				el.out_len - VSOCK_HDR_SIZE);
			break;
		}
		if (!vsock_tx_packet(v, &h, v->tx_iov, el.nr_out, el.head))
			virtq_push(vq, el.head, 0);
		if (++pushed % VSOCK_SIGNAL_EVERY == 0)
			virtio_queue_signal(vdev, vq);
	}
	/* The last interrupt is the caller's (vsock_tx_signal), after its
	 * receive work: see vsock_queue_notify. */
	if (pushed)
		v->tx_given++;
}

/* --- Host sockets --------------------------------------------------- */

/* Read the host process's "CONNECT <port>\n" (without eating beyond). */
static void
vsock_host_cmd(struct vsock *v, struct vsock_conn *c)
{
	char line[VSOCK_CMD_MAX + 1], *nl, *end;
	unsigned long port;
	ssize_t n;
	uint32_t p = VSOCK_HOST_PORT_BASE;
	unsigned int tries;

	do {
		n = recv(c->fd, line, VSOCK_CMD_MAX, MSG_PEEK | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		c->readable = false;
		vsock_conn_watch(v, c);
		return;
	}
	if (n <= 0)
		goto bad;
	line[n] = '\0';
	nl = memchr(line, '\n', (size_t)n);
	if (!nl) {
		if (n == VSOCK_CMD_MAX)
			goto bad;
		c->readable = false;	/* the rest of the line comes later */
		vsock_conn_watch(v, c);
		return;
	}
	if (recv(c->fd, line, (size_t)(nl - line + 1), MSG_DONTWAIT) !=
	    nl - line + 1)
		goto bad;
	*nl = '\0';
	if (strncmp(line, "CONNECT ", 8) != 0 || line[8] < '0' ||
	    line[8] > '9')
		goto bad;
	errno = 0;
	port = strtoul(line + 8, &end, 10);
	if (errno || *end || port > UINT32_MAX)
		goto bad;
	for (tries = 0; tries < v->max_conns + 1; tries++) {
		p = v->next_port++;
		if (v->next_port < VSOCK_HOST_PORT_BASE)
			v->next_port = VSOCK_HOST_PORT_BASE;
		if (!vsock_lookup(v, p, (uint32_t)port))
			break;
	}
	c->local_port = p;
	c->peer_port = (uint32_t)port;
	c->peer_buf_alloc = 0;	/* no credit until the guest's RESPONSE */
	vsock_hash_insert(v, c);
	c->state = VSC_CONNECTING;
	/* The host process's wait is over; the guest's starts. */
	vsock_tmo_start(v, c, &v->connect_wait, v->connect_ns);
	vsock_ctrl_add(v, c, CTRL_REQUEST);
	return;
bad:
	vsock_conn_free(v, c);
}

static void
vsock_accept(struct vsock *v)
{
	struct vsock_conn *c;
	int fd;

	for (;;) {
		fd = accept4(v->listen_fd, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;	/* EAGAIN, or EMFILE: try on the next one */
		}
		c = vsock_conn_alloc(v, fd, VSC_HOST_CMD);
		if (!c) {
			close(fd);	/* table full: the host sees EOF */
			continue;
		}
		vsock_tmo_start(v, c, &v->connect_wait, v->connect_ns);
		vsock_host_cmd(v, c);
	}
}

static void
vsock_conn_event(struct vsock *v, struct vsock_conn *c, uint32_t ev)
{
	if (ev & EPOLLOUT) {
		if (vsock_pending(c) && c->state == VSC_ESTABLISHED) {
			if (vsock_flush(v, c) < 0)
				return;
			vsock_after_tx(v, c);
			if (c->state == VSC_FREE)
				return;
		}
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->readable = true;
	switch (c->state) {
	case VSC_HOST_CMD:
		if (c->readable)
			vsock_host_cmd(v, c);
		break;
	case VSC_CONNECTING:
		/* The host process gave up before the guest answered. */
		if (ev & (EPOLLHUP | EPOLLERR))
			vsock_conn_reset(v, c);
		break;
	case VSC_ESTABLISHED:
		if (ev & EPOLLERR) {
			vsock_conn_reset(v, c);
			break;
		}
		vsock_update_ready(v, c);
		return;
	default:
		break;
	}
	vsock_conn_watch(v, c);
}

/* The epoll set has events: dispatch them, then feed the guest. */
static void
vsock_ep_event(struct virtio_device *vdev, int fd, uint32_t events,
	       void *arg)
{
	struct epoll_event evs[VSOCK_EVENTS];
	struct vsock *v = arg;
	struct vsock_conn *c;
	int n, i;

	(void)vdev;
	(void)events;
	n = epoll_wait(fd, evs, VSOCK_EVENTS, 0);
	for (i = 0; i < n; i++) {
		if (evs[i].data.u64 == VSOCK_TAG_LISTEN) {
			vsock_accept(v);
			continue;
		}
		c = &v->conns[evs[i].data.u64 - 1];
		/* A connection closed earlier in this batch is gone. */
		if (c->state != VSC_FREE)
			vsock_conn_event(v, c, evs[i].events);
	}
	vsock_rx_run(v);
	/* Kept transmit chains that closed connections gave back. */
	vsock_tx_signal(v);
}

/* Connection c's wait ran out: close it as its state says. */
static void
vsock_conn_expire(struct vsock *v, struct vsock_conn *c)
{
	if (c->state == VSC_HOST_CMD)
		STAT_ADD(v, st_cmd_timeouts, 1);
	else if (c->state == VSC_CONNECTING)
		STAT_ADD(v, st_connect_timeouts, 1);
	else
		STAT_ADD(v, st_shutdown_timeouts, 1);
	/*
	 * The host socket closes without a reply; the guest gets RST for
	 * a REQUEST it was sent (its late RESPONSE then finds nothing and
	 * is answered RST too) and after a SHUTDOWN, not for a command
	 * line or a REQUEST it never saw (vsock_conn_reset).
	 */
	vsock_conn_reset(v, c);
}

/*
 * The timer: close the connections whose wait is over, the heads of the
 * lists in deadline order, then arm for the earliest left. Works whether
 * or not the driver is up: a local client must not keep a slot because
 * the guest has no driver.
 */
static void
vsock_on_timer(struct virtio_device *vdev, int fd, uint32_t events,
	       void *arg)
{
	struct vsock *v = arg;
	struct vsock_list *lists[] = { &v->connect_wait, &v->shutdown_wait };
	struct vsock_conn *c;
	uint64_t now, next = 0, expirations;
	unsigned int i;

	(void)vdev;
	(void)events;
	/* EAGAIN is fine (nothing expired yet): the lists say what is due. */
	if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	v->timer_at = 0;
	now = vsock_now();
	for (i = 0; i < 2; i++) {
		while ((c = lists[i]->head) && c->tmo_at <= now)
			vsock_conn_expire(v, c);
		if (c && (!next || c->tmo_at < next))
			next = c->tmo_at;
	}
	if (next)
		vsock_timer_arm(v, next);
	/* The RSTs queued, and kept transmit chains given back. */
	vsock_rx_run(v);
	vsock_tx_signal(v);
}

/* --- The device ----------------------------------------------------- */

static void
vsock_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct vsock *v = vdev->opaque;

	if (vq->index == VSOCK_TX_QUEUE)
		vsock_tx_run(v);
	/* The event queue's buffers stay posted: there is nothing to say.
	 * Every kick may have freed rx work (tx replies, new buffers). */
	vsock_rx_run(v);
	/*
	 * The transmit queue's interrupt only now, after the receive
	 * queue's: a driver woken by the first finds both done. Sent
	 * before, it woke the driver for a credit update's completion
	 * alone, and again for the data that update let through.
	 */
	vsock_tx_signal(v);
}

static void
vsock_reset(struct virtio_device *vdev)
{
	struct vsock *v = vdev->opaque;
	unsigned int i;

	/* The guest's sockets are gone with its driver: so are ours. */
	for (i = 0; i < v->max_conns; i++)
		vsock_conn_free(v, &v->conns[i]);
	v->nr_rx_bufs = v->rx_iov_used = 0;
	v->tx_given = 0;
	v->rst_head = v->rst_len = 0;
}

static void
vsock_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
		  uint32_t len)
{
	struct vsock *v = vdev->opaque;
	struct virtio_vsock_config cfg;

	cfg.guest_cid = htole64(v->guest_cid);
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static const struct virtio_device_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.pci_class = 0x088000,	/* base system peripheral, other */
	.config_read = vsock_config_read,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_reset,
};

/* Listen at path; a dead socket file there is replaced. */
static int
vsock_listen(struct vsock *v, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, probe, e;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->path);
	if (lstat(v->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			vsock_err(err, errlen, "vsock: %s exists and is not "
				  "a socket", v->path);
			return -EADDRINUSE;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe < 0)
			return -errno;
		e = connect(probe, (struct sockaddr *)&sa, sizeof(sa));
		close(probe);
		if (e == 0) {
			vsock_err(err, errlen, "vsock: %s is in use", v->path);
			return -EADDRINUSE;
		}
		unlink(v->path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 128) < 0) {
		e = -errno;
		vsock_err(err, errlen, "vsock: cannot listen on %s: %s",
			  v->path, strerror(-e));
		close(fd);
		return e;
	}
	v->listen_fd = fd;
	return 0;
}

int
vsock_new(const struct guest_mem *mem, const struct vsock_options *o,
	  char *err, size_t errlen, struct vsock **ret)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct vsock *v;
	unsigned int i, hs;
	int e;

	if (!mem || !o || !ret || !o->uds_path || !o->uds_path[0]) {
		vsock_err(err, errlen, "vsock: no socket path");
		return -EINVAL;
	}
	if (o->guest_cid < 3 || o->guest_cid > 0xfffffffeULL) {
		vsock_err(err, errlen, "vsock: guest cid %" PRIu64
			  " outside 3..4294967294", o->guest_cid);
		return -EINVAL;
	}
	if (o->buf_alloc > VSOCK_BUF_ALLOC_MAX ||
	    (o->buf_alloc && o->buf_alloc < VSOCK_HDR_SIZE) ||
	    o->max_conns > 65536) {
		vsock_err(err, errlen, "vsock: buffer or connection limit "
			  "out of range");
		return -EINVAL;
	}
	if (o->connect_timeout_ms > VSOCK_TIMEOUT_MAX ||
	    o->shutdown_timeout_ms > VSOCK_TIMEOUT_MAX) {
		vsock_err(err, errlen, "vsock: timeout of %u ms beyond the "
			  "limit of %u ms", o->connect_timeout_ms >
			  VSOCK_TIMEOUT_MAX ? o->connect_timeout_ms :
			  o->shutdown_timeout_ms, VSOCK_TIMEOUT_MAX);
		return -EINVAL;
	}
	/* "<path>_4294967295" must fit in sun_path with its NUL. */
	if (strlen(o->uds_path) + 11 >= sizeof(((struct sockaddr_un *)0)
						->sun_path)) {
		vsock_err(err, errlen, "vsock: socket path %s too long",
			  o->uds_path);
		return -ENAMETOOLONG;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->listen_fd = v->ep_fd = v->timer_fd = -1;
	v->guest_cid = o->guest_cid;
	v->connect_ns = (o->connect_timeout_ms ? o->connect_timeout_ms :
			 VSOCK_CONNECT_TIMEOUT_DEFAULT) * NSEC_PER_MSEC;
	v->shutdown_ns = (o->shutdown_timeout_ms ? o->shutdown_timeout_ms :
			  VSOCK_SHUTDOWN_TIMEOUT_DEFAULT) * NSEC_PER_MSEC;
	v->max_conns = o->max_conns ? o->max_conns : VSOCK_MAX_CONNS_DEFAULT;
	v->buf_alloc = o->buf_alloc ? o->buf_alloc : VSOCK_BUF_ALLOC_DEFAULT;
	v->next_port = VSOCK_HOST_PORT_BASE;
	for (hs = 16; hs < 2 * v->max_conns; hs <<= 1)
		;
	v->hash_mask = hs - 1;
	v->path = strdup(o->uds_path);
	v->conns = calloc(v->max_conns, sizeof(*v->conns));
	v->hash = malloc(hs * sizeof(*v->hash));
	if (!v->path || !v->conns || !v->hash) {
		e = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < hs; i++)
		v->hash[i] = -1;
	for (i = 0; i < VSOCK_HOLD_TOTAL; i++)
		v->held[i].next = i + 1 < VSOCK_HOLD_TOTAL ? (int)i + 1 : -1;
	v->held_free = 0;
	v->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (v->ep_fd < 0 || v->timer_fd < 0) {
		e = -errno;
		goto fail;
	}
	e = vsock_listen(v, err, errlen);
	if (e < 0) {
		free(v->path);
		v->path = NULL;	/* not ours to unlink */
		goto fail;
	}
	ev.data.u64 = VSOCK_TAG_LISTEN;
	if (epoll_ctl(v->ep_fd, EPOLL_CTL_ADD, v->listen_fd, &ev) < 0) {
		e = -errno;
		goto fail;
	}
	v->vdev.ops = &vsock_ops;
	v->vdev.name = "vsock";
	v->vdev.mem = mem;
	v->vdev.features = 1ULL << VIRTIO_VSOCK_F_STREAM;
	v->vdev.config_size = sizeof(struct virtio_vsock_config);
	v->vdev.nr_queues = 3;
	v->vdev.opaque = v;
	e = virtio_device_init(&v->vdev, VSOCK_QUEUE_MAX);
	if (e < 0)
		goto fail;
	e = virtio_device_watch_fd(&v->vdev, v->ep_fd, EPOLLIN, vsock_ep_event,
				   v);
	if (e == 0)
		e = virtio_device_watch_fd(&v->vdev, v->timer_fd, EPOLLIN,
					   vsock_on_timer, v);
	if (e < 0)
		goto fail;
	*ret = v;
	return 0;
fail:
	if (err && errlen && !err[0])
		vsock_err(err, errlen, "vsock: %s", strerror(-e));
	vsock_free(v);
	return e;
}

struct virtio_device *
vsock_virtio(struct vsock *v)
{
	return &v->vdev;
}

void
vsock_free(struct vsock *v)
{
	unsigned int i;

	if (!v)
		return;
	virtio_device_destroy(&v->vdev);
	v->closing = true;
	if (v->conns)
		for (i = 0; i < v->max_conns; i++)
			vsock_conn_free(v, &v->conns[i]);
	if (v->listen_fd >= 0) {
		close(v->listen_fd);
		unlink(v->path);
	}
	if (v->ep_fd >= 0)
		close(v->ep_fd);
	if (v->timer_fd >= 0)
		close(v->timer_fd);
	free(v->conns);
	free(v->hash);
	free(v->path);
	free(v);
}

void
vsock_get_stats(struct vsock *v, struct vsock_stats *ret)
{
#define LD(f) __atomic_load_n(&v->f, __ATOMIC_RELAXED)
	ret->conns = LD(st_conns);
	ret->guest_connects = LD(st_guest_connects);
	ret->host_connects = LD(st_host_connects);
	ret->refused = LD(st_refused);
	ret->rx_bytes = LD(st_rx_bytes);
	ret->tx_bytes = LD(st_tx_bytes);
	ret->rst_sent = LD(st_rst_sent);
	ret->rst_dropped = LD(st_rst_dropped);
	ret->credit_updates = LD(st_credit_updates);
	ret->tx_copied = LD(st_tx_copied);
	ret->cmd_timeouts = LD(st_cmd_timeouts);
	ret->connect_timeouts = LD(st_connect_timeouts);
	ret->shutdown_timeouts = LD(st_shutdown_timeouts);
#undef LD
}
