/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock through the driver-side harness, the test playing the
 * guest's vsock driver (receive buffers posted, packets sent on tx) and
 * the host processes (UNIX sockets in a temporary directory): identity;
 * guest-to-host connects to <path>_<port> and host-to-guest CONNECT
 * through <path>, with data both ways; refusals seen on both sides;
 * 64 MiB each way checked by length and hash, with credit updates;
 * flow control against a guest that does not read (its buf_alloc never
 * exceeded) and a host that does not read (the device stops the guest
 * through credit, then resumes); RST and close propagating both ways;
 * bad packets answered with RST and bad buffers with NEEDS_RESET.
 * Then the fast paths: small receive buffers (Linux 6.1's: a header and
 * a payload apart) filled many per read, and guest payload that a full
 * host socket cannot take kept in the transmit chain rather than copied,
 * within the per-connection and device limits, given back once written,
 * on a close and not after a reset.
 * Then the timeouts, short ones: a host process that sends no command
 * line, a REQUEST the guest does not answer, a SHUTDOWN it does not
 * answer; the slots come back, late answers get RST, and answers in time
 * (or the default timeouts) bring no timeout at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>
#include <linux/virtio_vsock.h>

#include "helpers/virtio_harness.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"
#include "virtio/vsock.h"

#define RAM	(64ULL << 20)
#define TMO	5000
#define QSIZE	128
#define VEC_CFG	0
#define VEC_RX	1
#define VEC_TX	2
#define VEC_EV	3
#define RXQ	VSOCK_RX_QUEUE
#define TXQ	VSOCK_TX_QUEUE
#define EVQ	VSOCK_EVENT_QUEUE
#define CID	42
#define BUFSZ	(VSOCK_HDR_SIZE + 65536)
#define DEV_BUF	(128u << 10)	/* the device's buf_alloc in these tests */
#define MIB	(1u << 20)

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)

/* The guest's side of one connection. */
struct gconn {
	uint32_t gport, hport;
	uint32_t buf_alloc;		/* what the guest advertises */
	uint32_t rx_cnt;		/* payload received */
	uint32_t fwd_cnt;		/* of it, consumed */
	uint32_t adv_fwd;		/* fwd_cnt last told the device */
	uint32_t tx_cnt;		/* payload sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
};

struct pkt {
	struct virtio_vsock_hdr h;
	uint32_t len;			/* payload bytes in data */
	uint8_t data[65536];
};

struct fix {
	struct vh_machine m;
	struct vsock *vs;
	struct virtio_pci *vp;
	struct vh_dev d;
	char dir[64];
	char path[96];
	int lfd[4];			/* host listeners the test made */
	uint32_t lport[4];
	uint64_t rx_gpa[QSIZE];		/* by buffer */
	int rx_of_head[QSIZE];
	uint64_t tx_gpa[QSIZE];
	int tx_free[QSIZE];
	unsigned int nr_tx_free;
	int tx_of_head[QSIZE];
	struct pkt pk;			/* the last packet received */
	uint32_t dev_buf;		/* the device's buf_alloc */
};

static struct fix *
fix_new_tmo(uint32_t dev_buf, unsigned int connect_ms,
	    unsigned int shutdown_ms)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct vsock_options o = { 0 };
	char err[128] = "";
	unsigned int i;

	assert_non_null(f);
	for (i = 0; i < 4; i++)
		f->lfd[i] = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vsock-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	o.guest_cid = CID;
	o.uds_path = f->path;
	o.buf_alloc = dev_buf;
	o.max_conns = 8;
	o.connect_timeout_ms = connect_ms;
	o.shutdown_timeout_ms = shutdown_ms;
	f->dev_buf = dev_buf;
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &f->vs),
			 0);
	assert_int_equal(vh_machine_add(&f->m, vsock_virtio(f->vs), &f->vp),
			 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	for (i = 0; i < QSIZE; i++) {
		f->rx_gpa[i] = vh_alloc(&f->m, BUFSZ, 8);
		f->tx_gpa[i] = vh_alloc(&f->m, BUFSZ, 8);
		assert_true(f->rx_gpa[i] && f->tx_gpa[i]);
		f->tx_free[i] = (int)i;
	}
	f->nr_tx_free = QSIZE;
	return f;
}

static struct fix *
fix_new(uint32_t dev_buf)
{
	return fix_new_tmo(dev_buf, 0, 0);
}

static int
setup(void **state)
{
	*state = fix_new(DEV_BUF);
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	char p[160];
	unsigned int i;
	int e, r;

	virtio_device_destroy(vsock_virtio(f->vs));
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	vsock_free(f->vs);
	/* The listeners the test made; vsock_free() unlinked its own. */
	for (i = 0; i < 4; i++) {
		if (f->lfd[i] < 0)
			continue;
		close(f->lfd[i]);
		snprintf(p, sizeof(p), "%s_%u", f->path, f->lport[i]);
		unlink(p);
	}
	e = access(f->path, F_OK);
	r = rmdir(f->dir);
	free(f);
	assert_int_equal(e, -1);
	assert_int_equal(r, 0);
	return 0;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* --- The guest's driver --------------------------------------------- */

static void
post_rx(struct fix *f, int buf)
{
	struct vh_buf b = { f->rx_gpa[buf], BUFSZ };
	int head = vh_queue_add(&f->d.q[RXQ], &b, 0, 1, false);

	assert_true(head >= 0);
	f->rx_of_head[head] = buf;
}

/* Features, queues, DRIVER_OK; with post_all, every receive buffer. */
static void
bring_up_rx(struct fix *f, bool post_all)
{
	struct vh_dev *d = &f->d;
	unsigned int i;

	assert_int_equal(vh_dev_negotiate(d, F_V1 | F_EVT, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(d, RXQ, QSIZE, VEC_RX), 0);
	assert_int_equal(vh_queue_setup(d, TXQ, QSIZE, VEC_TX), 0);
	assert_int_equal(vh_queue_setup(d, EVQ, 16, VEC_EV), 0);
	for (i = 0; post_all && i < QSIZE; i++)
		post_rx(f, (int)i);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	vh_queue_kick(d, RXQ);
}

static void
bring_up(struct fix *f)
{
	bring_up_rx(f, true);
}

/* Take back finished transmit buffers. */
static void
reap_tx(struct fix *f)
{
	uint16_t id;
	uint32_t len;

	while (vh_queue_get_used(&f->d.q[TXQ], &id, &len) == 1)
		f->tx_free[f->nr_tx_free++] = f->tx_of_head[id];
}

/* Send a raw header and payload (len bytes) in one buffer. */
static void
send_raw(struct fix *f, const struct virtio_vsock_hdr *h, const void *data,
	 uint32_t len)
{
	struct timespec t0;
	struct vh_buf b;
	uint8_t *p;
	int buf, head;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	reap_tx(f);
	while (!f->nr_tx_free) {
		assert_true(ms_since(&t0) < TMO);
		vh_wait_irq(&f->d, VEC_TX, 10);
		reap_tx(f);
	}
	buf = f->tx_free[--f->nr_tx_free];
	p = vh_ptr(&f->m, f->tx_gpa[buf], BUFSZ);
	memcpy(p, h, sizeof(*h));
	if (len)
		memcpy(p + sizeof(*h), data, len);
	b.gpa = f->tx_gpa[buf];
	b.len = (uint32_t)sizeof(*h) + len;
	head = vh_queue_add(&f->d.q[TXQ], &b, 1, 0, false);
	assert_true(head >= 0);
	f->tx_of_head[head] = buf;
	vh_queue_kick(&f->d, TXQ);
}

/* Wait until the device handled every packet sent so far. */
static void
tx_drain(struct fix *f)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (reap_tx(f); f->nr_tx_free < QSIZE; reap_tx(f)) {
		assert_true(ms_since(&t0) < TMO);
		vh_wait_irq(&f->d, VEC_TX, 10);
	}
}

static void
mkhdr(struct gconn *c, struct virtio_vsock_hdr *h, uint16_t op, uint32_t len,
      uint32_t flags)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(CID);
	h->dst_cid = htole64(VSOCK_HOST_CID);
	h->src_port = htole32(c->gport);
	h->dst_port = htole32(c->hport);
	h->len = htole32(len);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->flags = htole32(flags);
	h->buf_alloc = htole32(c->buf_alloc);
	h->fwd_cnt = htole32(c->fwd_cnt);
	c->adv_fwd = c->fwd_cnt;
}

static void
g_send(struct fix *f, struct gconn *c, uint16_t op, const void *data,
       uint32_t len, uint32_t flags)
{
	struct virtio_vsock_hdr h;

	mkhdr(c, &h, op, len, flags);
	send_raw(f, &h, data, len);
	if (op == VIRTIO_VSOCK_OP_RW)
		c->tx_cnt += len;
}

/*
 * The next packet from the device into f->pk, its buffer posted again:
 * 1, or 0 after timeout_ms without one.
 */
static int
g_recv(struct fix *f, int timeout_ms)
{
	struct timespec t0;
	uint16_t id;
	uint32_t len;
	uint8_t *p;
	int buf;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (vh_queue_get_used(&f->d.q[RXQ], &id, &len) != 1) {
		long left = timeout_ms - ms_since(&t0);

		if (left <= 0)
			return 0;
		vh_wait_irq(&f->d, VEC_RX, (int)(left < 20 ? left : 20));
	}
	buf = f->rx_of_head[id];
	assert_true(len >= VSOCK_HDR_SIZE && len <= BUFSZ);
	p = vh_ptr(&f->m, f->rx_gpa[buf], BUFSZ);
	memcpy(&f->pk.h, p, sizeof(f->pk.h));
	f->pk.len = len - VSOCK_HDR_SIZE;
	assert_int_equal(le32toh(f->pk.h.len), f->pk.len);
	memcpy(f->pk.data, p + VSOCK_HDR_SIZE, f->pk.len);
	post_rx(f, buf);
	vh_queue_kick(&f->d, RXQ);
	return 1;
}

/* A packet for c: checks addressing, takes the device's credit. */
static uint16_t
g_take(struct fix *f, struct gconn *c)
{
	const struct virtio_vsock_hdr *h = &f->pk.h;

	assert_int_equal(le64toh(h->src_cid), VSOCK_HOST_CID);
	assert_int_equal(le64toh(h->dst_cid), CID);
	assert_int_equal(le32toh(h->src_port), c->hport);
	assert_int_equal(le32toh(h->dst_port), c->gport);
	assert_int_equal(le16toh(h->type), VIRTIO_VSOCK_TYPE_STREAM);
	c->peer_buf_alloc = le32toh(h->buf_alloc);
	c->peer_fwd_cnt = le32toh(h->fwd_cnt);
	if (le16toh(h->op) == VIRTIO_VSOCK_OP_RW) {
		c->rx_cnt += f->pk.len;
		/* The credit rule: never more than the guest can hold. */
		assert_true(c->rx_cnt - c->adv_fwd <= c->buf_alloc);
	}
	return le16toh(h->op);
}

/* Wait for a packet with op for c. */
static void
g_expect(struct fix *f, struct gconn *c, uint16_t op)
{
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(g_take(f, c), op);
}

/*
 * The host process closed c's socket: the guest hears SHUTDOWN both ways,
 * answers RST, and the connection is gone; the stats after, in *st.
 */
static void
g_expect_host_close(struct fix *f, struct gconn *c, struct vsock_stats *st)
{
	g_expect(f, c, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(le32toh(f->pk.h.flags), VIRTIO_VSOCK_SHUTDOWN_RCV |
			 VIRTIO_VSOCK_SHUTDOWN_SEND);
	g_send(f, c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	tx_drain(f);
	vsock_get_stats(f->vs, st);
	assert_int_equal(st->conns, 0);
}

static uint32_t
g_credit(const struct gconn *c)
{
	return c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
}

/* --- Host side ------------------------------------------------------ */

static int
host_listen(struct fix *f, unsigned int slot, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	f->lfd[slot] = fd;
	f->lport[slot] = port;
	return fd;
}

static int
host_accept(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, TMO), 1);
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static int
host_dial(struct fix *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Read exactly len bytes within TMO. */
static void
host_read_all(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		assert_int_equal(poll(&p, 1, TMO), 1);
		n = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
}

/* The host socket ends (EOF or reset) within TMO, after no more data. */
static void
host_expect_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;
	ssize_t n;

	assert_int_equal(poll(&p, 1, TMO), 1);
	n = read(fd, &c, 1);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static void
set_nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
			 0);
}

/* Guest connects to host port; the host accepts. Returns the host fd. */
static int
guest_connect(struct fix *f, struct gconn *c, int lfd, uint32_t port,
	      uint32_t gport, uint32_t gbuf)
{
	int fd;

	memset(c, 0, sizeof(*c));
	c->gport = gport;
	c->hport = port;
	c->buf_alloc = gbuf;
	g_send(f, c, VIRTIO_VSOCK_OP_REQUEST, NULL, 0, 0);
	g_expect(f, c, VIRTIO_VSOCK_OP_RESPONSE);
	assert_int_equal(c->peer_buf_alloc, f->dev_buf);
	fd = host_accept(lfd);
	assert_true(fd >= 0);
	return fd;
}

/*
 * The REQUEST of a host process's CONNECT to gport is in f->pk: the guest
 * takes it for c and accepts, and the host process reads its OK line.
 */
static void
host_connect_answer(struct fix *f, struct gconn *c, int fd, uint32_t gport,
		    uint32_t gbuf)
{
	char line[64], want[64];
	int n;

	c->gport = gport;
	c->hport = le32toh(f->pk.h.src_port);
	c->buf_alloc = gbuf;
	assert_true(c->hport >= VSOCK_HOST_PORT_BASE);
	assert_int_equal(g_take(f, c), VIRTIO_VSOCK_OP_REQUEST);
	g_send(f, c, VIRTIO_VSOCK_OP_RESPONSE, NULL, 0, 0);
	n = snprintf(want, sizeof(want), "OK %u\n", c->hport);
	memset(line, 0, sizeof(line));
	host_read_all(fd, line, (size_t)n);
	assert_string_equal(line, want);
}

/* A host process connects to guest port gport; the guest accepts. */
static int
host_connect(struct fix *f, struct gconn *c, uint32_t gport, uint32_t gbuf)
{
	char line[64];
	int fd = host_dial(f);
	ssize_t n;

	n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	assert_int_equal(write(fd, line, (size_t)n), n);
	memset(c, 0, sizeof(*c));
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(le32toh(f->pk.h.dst_port), gport);
	host_connect_answer(f, c, fd, gport, gbuf);
	return fd;
}

/* --- Tests ---------------------------------------------------------- */

static void
test_identity(void **state)
{
	struct fix *f = *state;
	struct vsock_options o = { .guest_cid = CID, .uds_path = f->path };
	struct vsock *v2;
	char err[128] = "";

	assert_int_equal(f->d.device_id, 0x1040 + VIRTIO_ID_VSOCK);
	assert_int_equal(f->d.num_queues, 3);
	assert_int_equal(vh_devcfg_read(&f->d, 0, 4), CID);
	assert_int_equal(vh_devcfg_read(&f->d, 4, 4), 0);
	/* The path is taken, and bad options are refused with a message. */
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &v2),
			 -EADDRINUSE);
	assert_non_null(strstr(err, "in use"));
	o.guest_cid = 2;
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &v2),
			 -EINVAL);
	o.guest_cid = CID;
	o.uds_path = "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &v2),
			 -ENAMETOOLONG);
	o.uds_path = f->path;
	o.connect_timeout_ms = VSOCK_TIMEOUT_MAX + 1;
	err[0] = '\0';
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &v2),
			 -EINVAL);
	assert_non_null(strstr(err, "timeout"));
	o.connect_timeout_ms = 0;
	o.shutdown_timeout_ms = VSOCK_TIMEOUT_MAX + 1;
	assert_int_equal(vsock_new(&f->m.mem, &o, err, sizeof(err), &v2),
			 -EINVAL);
}

static void
test_guest_connect(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1000);
	struct vsock_stats st;
	struct gconn c;
	char buf[16];
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1000, 5000, 65536);
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "hello", 5, 0);
	host_read_all(fd, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(write(fd, "world!", 6), 6);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(f->pk.len, 6);
	assert_memory_equal(f->pk.data, "world!", 6);
	/* The guest closes: the host sees EOF, the guest gets RST. */
	g_send(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN, NULL, 0,
	       VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	host_expect_closed(fd);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.guest_connects, 1);
	assert_int_equal(st.conns, 0);
	assert_int_equal(st.tx_bytes, 5);
	assert_int_equal(st.rx_bytes, 6);
	close(fd);
}

static void
test_guest_refused(void **state)
{
	struct fix *f = *state;
	struct vsock_stats st;
	struct gconn c = { .gport = 5001, .hport = 1001, .buf_alloc = 4096 };

	bring_up(f);
	/* Nobody listens at <path>_1001. */
	g_send(f, &c, VIRTIO_VSOCK_OP_REQUEST, NULL, 0, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.conns, 0);
	/* Data for the connection that never was: RST again. */
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "x", 1, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	/* An RST is never answered. */
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	assert_int_equal(g_recv(f, 100), 0);
}

static void
test_host_connect(void **state)
{
	struct fix *f = *state;
	struct vsock_stats st;
	struct gconn c;
	char buf[16];
	int fd;

	bring_up(f);
	fd = host_connect(f, &c, 52, 65536);
	assert_int_equal(write(fd, "ping", 4), 4);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(f->pk.len, 4);
	assert_memory_equal(f->pk.data, "ping", 4);
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "pong!", 5, 0);
	host_read_all(fd, buf, 5);
	assert_memory_equal(buf, "pong!", 5);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.host_connects, 1);
	assert_int_equal(st.conns, 1);
	/* The host process closes: the guest hears SHUTDOWN both ways and
	 * answers RST, which frees the connection. */
	close(fd);
	g_expect_host_close(f, &c, &st);
}

static void
test_host_connect_refused(void **state)
{
	struct fix *f = *state;
	struct vsock_stats st;
	struct gconn c = { .gport = 77, .buf_alloc = 4096 };
	int fd;

	bring_up(f);
	/* The guest has nobody at port 77: it answers the REQUEST with RST
	 * and the host process sees its socket closed, no OK line. */
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONNECT 77\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	c.hport = le32toh(f->pk.h.src_port);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	host_expect_closed(fd);
	close(fd);
	/* A bad command line: closed at once, nothing reaches the guest. */
	fd = host_dial(f);
	assert_int_equal(write(fd, "HELLO 1\n", 8), 8);
	host_expect_closed(fd);
	close(fd);
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONNECT 99999999999\n", 20), 20);
	host_expect_closed(fd);
	close(fd);
	/* The host gives up before the guest answers: the guest gets the
	 * REQUEST, then RST. */
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONNECT 78\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	c.gport = 78;
	c.hport = le32toh(f->pk.h.src_port);
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	assert_int_equal(g_recv(f, 100), 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
	assert_int_equal(st.host_connects, 0);
}

/* xorshift64* stream and FNV-1a hashing for the big transfers. */
static uint64_t
rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void
fill(uint64_t *s, uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(rng_next(s) >> 56);
}

static uint64_t
fnv(uint64_t h, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

#define FNV0	0xcbf29ce484222325ULL
#define BIG	(64u * MIB)

/* The guest consumed bytes: tell the device when it may run short. */
static void
g_consume(struct fix *f, struct gconn *c, uint32_t n)
{
	c->fwd_cnt += n;
	if (c->fwd_cnt - c->adv_fwd >= c->buf_alloc / 2)
		g_send(f, c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, NULL, 0, 0);
}

static void
test_big_transfer(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1002);
	static uint8_t out[65536], in[65536];
	uint64_t gs = 1, hs = 2, h_gsent = FNV0, h_hrecv = FNV0;
	uint64_t h_hsent = FNV0, h_grecv = FNV0;
	uint64_t gsent = 0, hrecv = 0, hsent = 0, grecv = 0;
	uint8_t hbuf[65536];
	size_t hpend = 0, hoff = 0;
	struct vsock_stats st;
	struct timespec t0;
	struct gconn c;
	struct pollfd p;
	uint32_t n;
	ssize_t k;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1002, 6000, 256 << 10);
	set_nonblock(fd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Both directions at once, each side pushing while it has room. */
	while (gsent < BIG || hrecv < BIG || hsent < BIG || grecv < BIG) {
		assert_true(ms_since(&t0) < 120000);
		/* Guest sends within the device's credit. */
		while (gsent < BIG && g_credit(&c) > 0 && f->nr_tx_free > 1) {
			n = g_credit(&c);
			if (n > sizeof(out))
				n = sizeof(out);
			if (n > BIG - gsent)
				n = (uint32_t)(BIG - gsent);
			fill(&gs, out, n);
			h_gsent = fnv(h_gsent, out, n);
			g_send(f, &c, VIRTIO_VSOCK_OP_RW, out, n, 0);
			gsent += n;
			reap_tx(f);
		}
		/* Host reads what the guest sent. */
		while ((k = read(fd, in, sizeof(in))) > 0) {
			h_hrecv = fnv(h_hrecv, in, (size_t)k);
			hrecv += (uint64_t)k;
		}
		assert_true(k < 0 && errno == EAGAIN);
		/* Host writes its stream. */
		for (;;) {
			if (!hpend && hsent < BIG) {
				hpend = sizeof(hbuf);
				if (hpend > BIG - hsent)
					hpend = BIG - hsent;
				fill(&hs, hbuf, hpend);
				h_hsent = fnv(h_hsent, hbuf, hpend);
				hoff = 0;
			}
			if (!hpend)
				break;
			k = write(fd, hbuf + hoff, hpend);
			if (k < 0) {
				assert_int_equal(errno, EAGAIN);
				break;
			}
			hoff += (size_t)k;
			hpend -= (size_t)k;
			hsent += (uint64_t)k;
		}
		/* Guest receives and consumes at once. */
		while (g_recv(f, 0) == 1) {
			uint16_t op = g_take(f, &c);

			if (op == VIRTIO_VSOCK_OP_RW) {
				h_grecv = fnv(h_grecv, f->pk.data, f->pk.len);
				grecv += f->pk.len;
				g_consume(f, &c, f->pk.len);
			} else {
				assert_int_equal(op,
					VIRTIO_VSOCK_OP_CREDIT_UPDATE);
			}
		}
		reap_tx(f);
		/* Sleep on whatever can move next, briefly. */
		p = (struct pollfd){ .fd = fd, .events = POLLIN |
				     (hpend ? POLLOUT : 0) };
		if (poll(&p, 1, 0) == 0)
			vh_wait_irq(&f->d, VEC_RX, 2);
	}
	assert_true(gsent == BIG && hrecv == BIG);
	assert_true(hsent == BIG && grecv == BIG);
	assert_true(h_gsent == h_hrecv);
	assert_true(h_hsent == h_grecv);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.tx_bytes, BIG);
	assert_int_equal(st.rx_bytes, BIG);
	assert_true(st.credit_updates > 0);
	close(fd);
}

/* The guest does not read: the device stops at the guest's buf_alloc. */
static void
test_slow_guest(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1003);
	static uint8_t hbuf[4 * MIB];
	uint64_t s = 3, h_sent, h_got = FNV0;
	size_t off = 0, got = 0;
	struct timespec t0;
	struct gconn c;
	ssize_t k;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1003, 6001, 32 << 10);
	set_nonblock(fd);
	fill(&s, hbuf, sizeof(hbuf));
	h_sent = fnv(FNV0, hbuf, sizeof(hbuf));
	k = write(fd, hbuf, sizeof(hbuf));
	assert_true(k > 0);
	off = (size_t)k;
	/* Exactly the guest's 32 KiB arrive, then nothing. */
	while (c.rx_cnt < (32u << 10)) {
		g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
		h_got = fnv(h_got, f->pk.data, f->pk.len);
	}
	assert_int_equal(c.rx_cnt, 32u << 10);
	assert_int_equal(g_recv(f, 200), 0);
	/* Slowly: consume 8 KiB at a time, credit update each time. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	got = c.rx_cnt;
	while (got < sizeof(hbuf)) {
		assert_true(ms_since(&t0) < 60000);
		c.fwd_cnt += 8192 < c.rx_cnt - c.fwd_cnt ? 8192 :
			     c.rx_cnt - c.fwd_cnt;
		g_send(f, &c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, NULL, 0, 0);
		if (off < sizeof(hbuf)) {
			k = write(fd, hbuf + off, sizeof(hbuf) - off);
			if (k > 0)
				off += (size_t)k;
		}
		while (g_recv(f, c.rx_cnt - c.fwd_cnt < (32u << 10) &&
				 got < sizeof(hbuf) ? 50 : 0) == 1) {
			assert_int_equal(g_take(f, &c), VIRTIO_VSOCK_OP_RW);
			h_got = fnv(h_got, f->pk.data, f->pk.len);
			got += f->pk.len;
		}
		reap_tx(f);
	}
	assert_int_equal(got, sizeof(hbuf));
	assert_true(h_got == h_sent);
	close(fd);
}

/*
 * The host does not read: the guest sends its pseudo-random stream (seed
 * *s, hash *h_sent) while the device gives credit, until no update comes:
 * the socket is full and the device holds its whole buf_alloc. The bytes
 * sent.
 */
static uint64_t
g_send_until_full(struct fix *f, struct gconn *c, uint64_t *s,
		  uint64_t *h_sent)
{
	static uint8_t buf[65536];
	uint64_t sent = 0;
	uint32_t n;

	for (;;) {
		while ((n = g_credit(c)) > 0) {
			if (n > sizeof(buf))
				n = sizeof(buf);
			fill(s, buf, n);
			*h_sent = fnv(*h_sent, buf, n);
			g_send(f, c, VIRTIO_VSOCK_OP_RW, buf, n, 0);
			sent += n;
			assert_true(sent < 64 * MIB);
		}
		/* Out of credit: an update may still be on its way. */
		if (g_recv(f, 300) == 0)
			break;
		assert_int_equal(g_take(f, c), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	}
	assert_int_equal(g_credit(c), 0);
	assert_true(c->tx_cnt - c->peer_fwd_cnt == c->peer_buf_alloc);
	return sent;
}

/* The host does not read: the guest runs out of credit, then resumes. */
static void
test_slow_host(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1004);
	static uint8_t in[65536];
	uint64_t s = 4, h_sent = FNV0, h_got = FNV0, sent = 0, got = 0;
	struct vsock_stats st;
	struct gconn c;
	ssize_t k;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1004, 6002, 65536);
	sent = g_send_until_full(f, &c, &s, &h_sent);
	/* The device holds its full buf_alloc, beyond what the socket took. */
	assert_true(sent >= DEV_BUF);
	/* Going beyond the credit is the guest's fault: RST, closed. */
	/* (checked in test_rst; here the host now reads everything.) */
	set_nonblock(fd);
	while (got < sent) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, TMO), 1);
		while ((k = read(fd, in, sizeof(in))) > 0) {
			h_got = fnv(h_got, in, (size_t)k);
			got += (uint64_t)k;
		}
	}
	assert_true(got == sent && h_got == h_sent);
	/* And the guest got its credit back. */
	while (g_credit(&c) < c.peer_buf_alloc) {
		g_expect(f, &c, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	}
	assert_int_equal(c.peer_fwd_cnt, c.tx_cnt);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.tx_bytes, sent);
	close(fd);
}

/*
 * The device watches a host socket only for what it waits for (vsock.c,
 * vsock_conn_watch): a CONNECT line in two pieces, data that comes after
 * a read found the socket empty, data and a close that come while the
 * guest's credit is spent (nothing reaches the guest until its credit
 * update, not even the SHUTDOWN; then all of it, in order, and the
 * SHUTDOWN last).
 */
static void
test_host_events(void **state)
{
	struct fix *f = *state;
	static uint8_t out[8192];
	uint64_t s = 9, h_sent, h_got = FNV0;
	uint32_t total = 4 + sizeof(out);
	struct vsock_stats st;
	struct gconn c;
	int fd;

	bring_up(f);
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONN", 4), 4);
	assert_int_equal(g_recv(f, 200), 0);
	assert_int_equal(write(fd, "ECT 53\n", 7), 7);
	memset(&c, 0, sizeof(c));
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(le32toh(f->pk.h.dst_port), 53);
	host_connect_answer(f, &c, fd, 53, 4096);

	/* The device looked and found nothing; then data comes. */
	assert_int_equal(g_recv(f, 100), 0);
	assert_int_equal(write(fd, "late", 4), 4);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(f->pk.len, 4);
	assert_memory_equal(f->pk.data, "late", 4);
	h_got = fnv(h_got, f->pk.data, f->pk.len);

	/* More than the credit left, and the host closes at once. */
	fill(&s, out, sizeof(out));
	h_sent = fnv(fnv(FNV0, (const uint8_t *)"late", 4), out, sizeof(out));
	assert_int_equal(write(fd, out, sizeof(out)), (ssize_t)sizeof(out));
	close(fd);
	while (c.rx_cnt < c.buf_alloc) {
		g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
		h_got = fnv(h_got, f->pk.data, f->pk.len);
	}
	assert_int_equal(c.rx_cnt, c.buf_alloc);
	assert_int_equal(g_recv(f, 200), 0);

	/* Credit comes back: the rest, then SHUTDOWN both ways. */
	g_consume(f, &c, c.rx_cnt - c.fwd_cnt);
	while (c.rx_cnt < total) {
		g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
		h_got = fnv(h_got, f->pk.data, f->pk.len);
		g_consume(f, &c, f->pk.len);
	}
	assert_int_equal(c.rx_cnt, total);
	assert_true(h_got == h_sent);
	g_expect_host_close(f, &c, &st);
	assert_int_equal(st.rx_bytes, total);
}

static void
test_rst(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1005);
	static uint8_t big[DEV_BUF];
	struct vsock_stats st;
	struct timespec t0;
	struct gconn c, c2;
	int fd, fd2;

	bring_up(f);
	/* Guest RST: the host socket closes. */
	fd = guest_connect(f, &c, lfd, 1005, 7000, 4096);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	host_expect_closed(fd);
	close(fd);
	/* The host process closes: SHUTDOWN both ways to the guest; data
	 * the guest still sends is dropped; its RST ends it. */
	fd = guest_connect(f, &c, lfd, 1005, 7001, 4096);
	assert_int_equal(write(fd, "bye", 3), 3);
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(f->pk.data, "bye", 3);
	g_expect(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(le32toh(f->pk.h.flags), 3);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	/* Host half-close: SHUTDOWN SEND, the guest may still send. */
	fd = guest_connect(f, &c, lfd, 1005, 7002, 4096);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(le32toh(f->pk.h.flags), VIRTIO_VSOCK_SHUTDOWN_SEND);
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "late", 4, 0);
	{
		char b[4];

		host_read_all(fd, b, 4);
		assert_memory_equal(b, "late", 4);
	}
	g_send(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN, NULL, 0,
	       VIRTIO_VSOCK_SHUTDOWN_SEND);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	host_expect_closed(fd);
	close(fd);
	/* Beyond the credit: RST, host closed, the other connection lives. */
	fd = guest_connect(f, &c, lfd, 1005, 7003, 4096);
	fd2 = guest_connect(f, &c2, lfd, 1005, 7004, 4096);
	memset(big, 'z', sizeof(big));
	/* The host does not read: use up the credit, then one byte more.
	 * A credit update still on its way makes that byte legal, so go
	 * again until the device says RST. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint32_t n;
		int r;

		assert_true(ms_since(&t0) < 30000);
		while ((n = g_credit(&c)) > 0)
			g_send(f, &c, VIRTIO_VSOCK_OP_RW, big,
			       n > 65536 ? 65536 : n, 0);
		g_send(f, &c, VIRTIO_VSOCK_OP_RW, big, 1, 0);
		r = g_recv(f, 300);
		if (r && g_take(f, &c) == VIRTIO_VSOCK_OP_RST)
			break;
		if (r)
			assert_int_equal(le16toh(f->pk.h.op),
					 VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	}
	{
		/* The host may read what was forwarded, then the end. */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		for (;;) {
			assert_int_equal(poll(&p, 1, TMO), 1);
			k = read(fd, big, sizeof(big));
			if (k <= 0)
				break;
		}
		assert_true(k == 0 || errno == ECONNRESET);
	}
	close(fd);
	g_send(f, &c2, VIRTIO_VSOCK_OP_RW, "ok", 2, 0);
	{
		char b[2];

		host_read_all(fd2, b, 2);
		assert_memory_equal(b, "ok", 2);
	}
	close(fd2);
	g_expect(f, &c2, VIRTIO_VSOCK_OP_SHUTDOWN);
	g_send(f, &c2, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	tx_drain(f);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
}

/*
 * Both sides half-close: a guest that writes more than the host process
 * reads yet and shuts its sending side (shutdown(SHUT_WR): SHUTDOWN
 * SEND), and a host process that then shuts its own and reads everything
 * (write a request, shut, read the answer): every byte the guest sent
 * reaches the host socket before it ends. The guest hears SHUTDOWN SEND
 * alone meanwhile (both flags would make it reset the connection), then
 * RST once all is written.
 */
static void
test_half_close_drain(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1006);
	static uint8_t in[65536];
	uint64_t s = 11, h_sent = FNV0, h_got = FNV0, sent = 0, got = 0;
	struct vsock_stats st;
	struct gconn c;
	bool saw_shutdown = false;
	struct timespec t0;
	unsigned int free0;
	ssize_t k;
	int fd, r;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1006, 7100, 65536);
	sent = g_send_until_full(f, &c, &s, &h_sent);
	/* The device took the SHUTDOWN (its buffer came back; the payload
	 * it holds keeps theirs) before the host's EOF comes. */
	reap_tx(f);
	free0 = f->nr_tx_free;
	g_send(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN, NULL, 0,
	       VIRTIO_VSOCK_SHUTDOWN_SEND);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (reap_tx(f); f->nr_tx_free < free0; reap_tx(f)) {
		assert_true(ms_since(&t0) < TMO);
		vh_wait_irq(&f->d, VEC_TX, 10);
	}
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	/* The device's answer to the host's EOF: SEND alone, not RST. */
	while (!saw_shutdown) {
		assert_int_equal(g_recv(f, TMO), 1);
		r = g_take(f, &c);
		if (r == VIRTIO_VSOCK_OP_CREDIT_UPDATE)
			continue;
		assert_int_equal(r, VIRTIO_VSOCK_OP_SHUTDOWN);
		assert_int_equal(le32toh(f->pk.h.flags),
				 VIRTIO_VSOCK_SHUTDOWN_SEND);
		saw_shutdown = true;
	}
	/* The host reads it all, then the end. */
	set_nonblock(fd);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, TMO), 1);
		k = read(fd, in, sizeof(in));
		if (k <= 0)
			break;
		h_got = fnv(h_got, in, (size_t)k);
		got += (uint64_t)k;
	}
	assert_true(k == 0);
	assert_true(got == sent);
	assert_true(h_got == h_sent);
	/* Everything written: RST to the guest, the connection gone. */
	for (;;) {
		assert_int_equal(g_recv(f, TMO), 1);
		r = g_take(f, &c);
		if (r != VIRTIO_VSOCK_OP_CREDIT_UPDATE)
			break;
	}
	assert_int_equal(r, VIRTIO_VSOCK_OP_RST);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.conns, 0);
	assert_int_equal(st.tx_bytes, sent);
	close(fd);
}

/* Open fds of this process. */
static int
fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the directory's own */
}

/*
 * A guest that says anything: thousands of packets with random ops (valid
 * and not), flags, ports among a few, credit fields, addresses and
 * payload lengths, mixed with host processes connecting (with good and
 * bad command lines), accepting, writing, reading, shutting and closing
 * at random. Every buffer is well formed, so the device never asks for a
 * reset; it never holds more connections than its limit; every packet it
 * sends is well formed (g_recv); after a driver reset it holds none, and
 * once the host closed its ends no fd is left behind. unit-asan runs it
 * under ASan and UBSan. VSOCK_STORM_SEED=N plays another storm (30 seeds
 * kept every rule under ASan when it was written).
 */
static void
test_hostile_storm(void **state)
{
	static const uint16_t ops[] = {
		VIRTIO_VSOCK_OP_INVALID, VIRTIO_VSOCK_OP_REQUEST,
		VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST,
		VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_RW,
		VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_RW,
		VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_REQUEST,
		99,
	};
	static const uint32_t bufs[] = { 0, 1, 4096, 65536, 0xffffffffu };
	static uint8_t payload[2048], junk[4096];
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1007), hfd[32], nh = 0, fds0, i, j;
	struct vsock_stats st;
	struct virtio_vsock_hdr h;
	struct timespec t0;
	const char *seed = getenv("VSOCK_STORM_SEED");
	uint64_t s = seed ? strtoull(seed, NULL, 0) : 0x5eedULL, r;
	uint32_t len, pairs[16][2];	/* (guest, host) ports seen */
	unsigned int np = 0, pi = 0, k;
	char line[32];

	bring_up(f);
	set_nonblock(lfd);
	fds0 = fd_count();
	fill(&s, payload, sizeof(payload));
	for (i = 0; i < 4000; i++) {
		r = rng_next(&s);
		if (r % 16 < 11) {
			memset(&h, 0, sizeof(h));
			h.src_cid = htole64(r % 61 ? CID : r >> 40);
			h.dst_cid = htole64(r % 59 ? VSOCK_HOST_CID : 7);
			h.src_port = htole32(6000 + (r >> 8) % 4);
			/* The listener's port, one nobody listens on, the
			 * guest ports host processes ask for, and the pairs
			 * the device used. */
			h.dst_port = htole32((r >> 12) % 3 == 0 ? 1007 :
					     (r >> 12) % 3 == 1 ? 1009 :
					     5000 + (uint32_t)(r >> 14) % 3);
			if (np && (r >> 48) % 2) {
				k = (unsigned int)(r >> 50) % np;
				h.src_port = htole32(pairs[k][0]);
				h.dst_port = htole32(pairs[k][1]);
			}
			h.type = htole16(r % 53 ? VIRTIO_VSOCK_TYPE_STREAM : 2);
			h.op = htole16(ops[(r >> 20) % (sizeof(ops) /
							sizeof(ops[0]))]);
			h.flags = htole32((uint32_t)(r >> 24) % 5);
			h.buf_alloc = htole32(bufs[(r >> 28) % 5]);
			h.fwd_cnt = htole32((uint32_t)(r >> 32) % 3 ?
					    (uint32_t)(r >> 32) : 0);
			len = le16toh(h.op) == VIRTIO_VSOCK_OP_RW ||
			      (r >> 36) % 17 == 0 ?
			      (uint32_t)(r >> 44) % sizeof(payload) : 0;
			h.len = htole32(len);
			send_raw(f, &h, payload, len);
		} else if (r % 16 < 12 && nh < 32) {
			/* A host process connecting into the guest. */
			hfd[nh] = host_dial(f);
			snprintf(line, sizeof(line), (r >> 8) % 5 ?
				 "CONNECT %u\n" : "CONNECT x%u\n",
				 5000 + (unsigned int)(r >> 16) % 3);
			(void)!write(hfd[nh], line, strlen(line));
			set_nonblock(hfd[nh++]);
		} else if (r % 16 < 13 && nh < 32) {
			/* The guest's connections to the listener. */
			hfd[nh] = accept4(lfd, NULL, NULL,
					  SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (hfd[nh] >= 0)
				nh++;
		} else if (nh) {
			j = (int)((r >> 8) % (uint64_t)nh);
			switch ((r >> 16) % 4) {
			case 0:
				(void)!write(hfd[j], payload,
					     (r >> 20) % sizeof(payload));
				break;
			case 1:
				shutdown(hfd[j], (r >> 20) % 2 ? SHUT_WR :
					 SHUT_RD);
				break;
			case 2:
				close(hfd[j]);
				hfd[j] = hfd[--nh];
				break;
			default:
				break;
			}
		}
		/* The host reads what it gets, the guest what it gets. */
		for (j = 0; j < nh; j++)
			while (read(hfd[j], junk, sizeof(junk)) > 0)
				;
		while (g_recv(f, 0)) {
			/* Remember the pair; mostly accept what the host
			 * processes ask for. */
			pairs[pi][0] = le32toh(f->pk.h.dst_port);
			pairs[pi][1] = le32toh(f->pk.h.src_port);
			pi = (pi + 1) % 16;
			np += np < 16;
			if (le16toh(f->pk.h.op) == VIRTIO_VSOCK_OP_REQUEST &&
			    rng_next(&s) % 4) {
				h = f->pk.h;
				h.src_cid = f->pk.h.dst_cid;
				h.dst_cid = f->pk.h.src_cid;
				h.src_port = f->pk.h.dst_port;
				h.dst_port = f->pk.h.src_port;
				h.op = htole16(VIRTIO_VSOCK_OP_RESPONSE);
				h.buf_alloc = htole32(65536);
				h.fwd_cnt = 0;
				h.len = 0;
				send_raw(f, &h, NULL, 0);
			}
		}
		assert_int_equal(vh_dev_status(&f->d) &
				 VIRTIO_CONFIG_S_NEEDS_RESET, 0);
		vsock_get_stats(f->vs, &st);
		assert_true(st.conns <= 8);
	}
	/* The default storm goes through connections, not only past them
	 * (a few other seeds move no payload). */
	vsock_get_stats(f->vs, &st);
	assert_true(seed || (st.guest_connects > 0 && st.host_connects > 0));
	assert_true(seed || (st.rx_bytes > 0 && st.tx_bytes > 0));
	/* A driver reset ends every connection the guest had. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	for (j = 0; j < nh; j++)
		close(hfd[j]);
	/* Host processes whose command line was still on its way end too. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		vsock_get_stats(f->vs, &st);
		if (st.conns == 0)
			break;
		assert_true(ms_since(&t0) < TMO);
		usleep(10000);
	}
	while ((j = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
		close(j);
	assert_int_equal(fd_count(), fds0);
}

static void
test_bad_packets(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1006);
	struct virtio_vsock_hdr h;
	struct gconn c;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1006, 8000, 4096);
	/* Wrong source cid: RST for the pair named, the connection goes. */
	mkhdr(&c, &h, VIRTIO_VSOCK_OP_RW, 0, 0);
	h.src_cid = htole64(CID + 1);
	send_raw(f, &h, NULL, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	/* Not a stream: RST. */
	mkhdr(&c, &h, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
	h.type = htole16(VIRTIO_VSOCK_TYPE_SEQPACKET);
	send_raw(f, &h, NULL, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	/* The live connection with an unknown op: RST, host closed. */
	mkhdr(&c, &h, 99, 0, 0);
	send_raw(f, &h, NULL, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	host_expect_closed(fd);
	close(fd);
	/* A duplicate REQUEST resets the live pair. */
	fd = guest_connect(f, &c, lfd, 1006, 8001, 4096);
	g_send(f, &c, VIRTIO_VSOCK_OP_REQUEST, NULL, 0, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	host_expect_closed(fd);
	close(fd);
	assert_int_equal(virtio_device_status(vsock_virtio(f->vs)) &
			 VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	/* A header whose len exceeds its buffer: NEEDS_RESET. */
	mkhdr(&c, &h, VIRTIO_VSOCK_OP_RW, 100, 0);
	send_raw(f, &h, "abc", 3);
	assert_true(vh_wait_irq(&f->d, VEC_CFG, TMO) > 0);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_bad_buffers(void **state)
{
	struct fix *f = *state;
	struct vh_buf b;
	int lfd = host_listen(f, 0, 1007);
	struct gconn c;
	int fd;

	bring_up(f);
	/* A transmit buffer shorter than a header: NEEDS_RESET. */
	b.gpa = f->tx_gpa[0];
	b.len = 20;
	assert_true(vh_queue_add(&f->d.q[TXQ], &b, 1, 0, false) >= 0);
	vh_queue_kick(&f->d, TXQ);
	assert_true(vh_wait_irq(&f->d, VEC_CFG, TMO) > 0);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* The driver resets and starts again: the device works. */
	vh_dev_release(&f->d);
	memset(&f->d, 0, sizeof(f->d));
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	f->nr_tx_free = 0;
	for (int i = 0; i < QSIZE; i++)
		f->tx_free[f->nr_tx_free++] = i;
	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1007, 9000, 4096);
	/* Device reset closes the host side. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	host_expect_closed(fd);
	close(fd);
	/* A device-readable receive buffer: NEEDS_RESET. */
	vh_dev_release(&f->d);
	memset(&f->d, 0, sizeof(f->d));
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	f->nr_tx_free = 0;
	for (int i = 0; i < QSIZE; i++)
		f->tx_free[f->nr_tx_free++] = i;
	assert_int_equal(vh_dev_negotiate(&f->d, F_V1, false), 0);
	assert_int_equal(vh_dev_msix_enable(&f->d), 0);
	vh_common_write(&f->d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(&f->d, RXQ, QSIZE, VEC_RX), 0);
	assert_int_equal(vh_queue_setup(&f->d, TXQ, QSIZE, VEC_TX), 0);
	assert_int_equal(vh_dev_driver_ok(&f->d), 0);
	b.gpa = f->rx_gpa[0];
	b.len = BUFSZ;
	assert_true(vh_queue_add(&f->d.q[RXQ], &b, 1, 0, false) >= 0);
	vh_queue_kick(&f->d, RXQ);
	/* Something must be owed for the device to take a buffer. */
	c = (struct gconn){ .gport = 1, .hport = 9, .buf_alloc = 4096 };
	g_send(f, &c, VIRTIO_VSOCK_OP_REQUEST, NULL, 0, 0);
	assert_true(vh_wait_irq(&f->d, VEC_CFG, TMO) > 0);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* --- The fast paths ------------------------------------------------- */

/*
 * Receive buffers as Linux 6.1 posts them: a 44-byte header and a payload
 * apart (here: payloads side by side, as kmalloc's 4 KiB slabs have them,
 * of mixed sizes so that some neighbours merge and some do not), one of
 * them header-only. The device fills many per read; every packet must
 * fit its buffer, keep the stream in order and stay within the credit.
 */
#define SMALL_BUFS	(QSIZE / 2)	/* two descriptors each */

struct small_rx {
	uint64_t hdr[SMALL_BUFS], pay[SMALL_BUFS];
	uint32_t size[SMALL_BUFS];
	int slot_of_head[QSIZE];
};

static void
small_post(struct fix *f, struct small_rx *r, int slot)
{
	struct vh_buf b[2] = { { r->hdr[slot], VSOCK_HDR_SIZE },
			       { r->pay[slot], r->size[slot] } };
	int head = vh_queue_add(&f->d.q[RXQ], b, 0, r->size[slot] ? 2 : 1,
				false);

	assert_true(head >= 0);
	r->slot_of_head[head] = slot;
}

/* The next packet into f->pk (its buffer posted again); 0 on timeout.
 * Header-only buffers given back empty are skipped and counted. */
static int
small_recv(struct fix *f, struct small_rx *r, int timeout_ms,
	   unsigned int *empty)
{
	struct timespec t0;
	uint16_t id;
	uint32_t len;
	int slot;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		while (vh_queue_get_used(&f->d.q[RXQ], &id, &len) != 1) {
			long left = timeout_ms - ms_since(&t0);

			if (left <= 0)
				return 0;
			vh_wait_irq(&f->d, VEC_RX, (int)(left < 20 ? left : 20));
		}
		slot = r->slot_of_head[id];
		if (len == 0) {
			assert_int_equal(r->size[slot], 0);
			(*empty)++;
			small_post(f, r, slot);
			vh_queue_kick(&f->d, RXQ);
			continue;
		}
		assert_true(len >= VSOCK_HDR_SIZE);
		assert_true(len - VSOCK_HDR_SIZE <= r->size[slot]);
		memcpy(&f->pk.h, vh_ptr(&f->m, r->hdr[slot], VSOCK_HDR_SIZE),
		       VSOCK_HDR_SIZE);
		f->pk.len = len - VSOCK_HDR_SIZE;
		assert_int_equal(le32toh(f->pk.h.len), f->pk.len);
		memcpy(f->pk.data, vh_ptr(&f->m, r->pay[slot], f->pk.len),
		       f->pk.len);
		small_post(f, r, slot);
		vh_queue_kick(&f->d, RXQ);
		return 1;
	}
}

static void
test_small_rx_buffers(void **state)
{
	struct fix *f = *state;
	static uint8_t hbuf[2 * MIB];
	struct small_rx r;
	struct vsock_stats st;
	uint64_t s = 11, h_sent, h_got = FNV0, hdrs, pool;
	unsigned int empty = 0, packets = 0, i;
	size_t off = 0, got = 0;
	struct timespec t0;
	struct gconn c;
	char line[64];
	ssize_t k;
	int fd;

	memset(&r, 0, sizeof(r));
	hdrs = vh_alloc(&f->m, 64ULL * SMALL_BUFS, 64);
	pool = vh_alloc(&f->m, 4096ULL * SMALL_BUFS, 4096);
	assert_true(hdrs && pool);
	for (i = 0; i < SMALL_BUFS; i++) {
		r.hdr[i] = hdrs + 64ULL * i;
		r.pay[i] = pool + 4096ULL * i;
		/* Mostly 4 KiB (neighbours merge), some shorter, one none. */
		r.size[i] = i == 5 ? 0 : i % 4 == 3 ? 1000 + 7 * i : 4096;
	}
	bring_up_rx(f, false);
	for (i = 0; i < SMALL_BUFS; i++)
		small_post(f, &r, (int)i);
	vh_queue_kick(&f->d, RXQ);

	/* A host process connects to guest port 3000. */
	fd = host_dial(f);
	k = snprintf(line, sizeof(line), "CONNECT 3000\n");
	assert_int_equal(write(fd, line, (size_t)k), k);
	memset(&c, 0, sizeof(c));
	assert_int_equal(small_recv(f, &r, TMO, &empty), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	host_connect_answer(f, &c, fd, 3000, 256 << 10);

	/* 2 MiB from the host, taken as the guest's credit allows. */
	set_nonblock(fd);
	fill(&s, hbuf, sizeof(hbuf));
	h_sent = fnv(FNV0, hbuf, sizeof(hbuf));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (got < sizeof(hbuf)) {
		assert_true(ms_since(&t0) < 30000);
		if (off < sizeof(hbuf)) {
			k = write(fd, hbuf + off, sizeof(hbuf) - off);
			if (k > 0)
				off += (size_t)k;
		}
		while (small_recv(f, &r, 20, &empty) == 1) {
			assert_int_equal(g_take(f, &c), VIRTIO_VSOCK_OP_RW);
			h_got = fnv(h_got, f->pk.data, f->pk.len);
			got += f->pk.len;
			packets++;
			g_consume(f, &c, f->pk.len);
		}
		reap_tx(f);
	}
	assert_int_equal(got, sizeof(hbuf));
	assert_true(h_got == h_sent);
	/* No packet larger than its buffer: at least 2 MiB / 4 KiB. */
	assert_true(packets >= sizeof(hbuf) / 4096);
	/* The header-only buffer came back empty (at least once). */
	assert_true(empty >= 1);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.rx_bytes, sizeof(hbuf));
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	close(fd);
}

/* Transmit chains the device has not given back (kept, or in flight). */
static unsigned int
tx_outstanding(struct fix *f)
{
	reap_tx(f);
	return QSIZE - f->nr_tx_free;
}

/* Give the device time to settle; then what it still keeps. */
static unsigned int
tx_kept(struct fix *f)
{
	unsigned int n = tx_outstanding(f), m;

	for (;;) {
		vh_wait_irq(&f->d, VEC_TX, 100);
		m = tx_outstanding(f);
		if (m == n)
			return m;
		n = m;
	}
}

/* Send pkt-byte packets of a stream on c until the credit runs out
 * (the device's updates taken); returns the bytes sent. */
static uint64_t
send_to_credit(struct fix *f, struct gconn *c, uint32_t pkt, uint64_t *s,
	       uint64_t *h)
{
	static uint8_t buf[65536];
	uint64_t sent = 0;
	uint32_t n;

	for (;;) {
		while (g_credit(c) > 0) {
			n = g_credit(c) < pkt ? g_credit(c) : pkt;
			fill(s, buf, n);
			*h = fnv(*h, buf, n);
			g_send(f, c, VIRTIO_VSOCK_OP_RW, buf, n, 0);
			sent += n;
		}
		if (g_recv(f, 300) == 0)
			return sent;
		assert_int_equal(g_take(f, c), VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	}
}

/* Read len bytes from the host socket into the hash. */
static void
host_drain(int fd, uint64_t len, uint64_t *h)
{
	static uint8_t in[65536];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t got = 0;
	ssize_t k;

	set_nonblock(fd);
	while (got < len) {
		assert_int_equal(poll(&p, 1, TMO), 1);
		while ((k = read(fd, in, sizeof(in))) > 0) {
			*h = fnv(*h, in, (size_t)k);
			got += (uint64_t)k;
		}
	}
	assert_true(got == len);
}

/* Every chain comes back (the device gave back what it kept). */
static void
expect_all_tx_back(struct fix *f)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (tx_outstanding(f)) {
		assert_true(ms_since(&t0) < TMO);
		vh_wait_irq(&f->d, VEC_TX, 20);
	}
}

static int
setup_big(void **state)
{
	/* A credit well beyond what a UNIX socket takes. */
	*state = fix_new(1u << 20);
	return 0;
}

/* A full host socket: the payload stays in the guest's chains. */
static void
test_slow_host_keeps(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1010);
	uint64_t s = 21, h_sent = FNV0, h_got = FNV0, sent;
	struct vsock_stats st;
	struct gconn c;
	unsigned int kept;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1010, 6010, 65536);
	sent = send_to_credit(f, &c, 65536, &s, &h_sent);
	assert_true(sent >= (1u << 20));
	/* What the socket did not take waits in the chains: none copied. */
	kept = tx_kept(f);
	assert_true(kept > 0 && kept <= VSOCK_HOLD_MAX);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.tx_copied, 0);
	/* The host reads: everything arrives in order, the chains come
	 * back as their payload is written. */
	host_drain(fd, sent, &h_got);
	assert_true(h_got == h_sent);
	expect_all_tx_back(f);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.tx_copied, 0);
	assert_int_equal(st.tx_bytes, sent);
	close(fd);
}

/* Beyond VSOCK_HOLD_MAX chains the rest is copied, behind them. */
static void
test_slow_host_copies(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1011);
	uint64_t s = 22, h_sent = FNV0, h_got = FNV0, sent;
	struct vsock_stats st;
	struct gconn c;
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1011, 6011, 65536);
	sent = send_to_credit(f, &c, 4096, &s, &h_sent);
	assert_true(sent >= (1u << 20));
	assert_int_equal(tx_kept(f), VSOCK_HOLD_MAX);
	vsock_get_stats(f->vs, &st);
	assert_true(st.tx_copied > 0);
	host_drain(fd, sent, &h_got);
	assert_true(h_got == h_sent);
	expect_all_tx_back(f);
	close(fd);
}

/* No more than VSOCK_HOLD_TOTAL chains kept by all connections. */
static void
test_keep_total(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1012);
	uint64_t s = 23, h[5], got, sent[5];
	struct gconn c[5];
	int fd[5], i;

	bring_up(f);
	for (i = 0; i < 5; i++) {
		fd[i] = guest_connect(f, &c[i], lfd, 1012, 6020 + (uint32_t)i,
				      65536);
		h[i] = FNV0;
		sent[i] = send_to_credit(f, &c[i], 4096, &s, &h[i]);
	}
	/* Five connections could keep 5 * VSOCK_HOLD_MAX. */
	assert_true(5 * VSOCK_HOLD_MAX > VSOCK_HOLD_TOTAL);
	assert_int_equal(tx_kept(f), VSOCK_HOLD_TOTAL);
	for (i = 0; i < 5; i++) {
		got = FNV0;
		host_drain(fd[i], sent[i], &got);
		assert_true(got == h[i]);
		close(fd[i]);
	}
	expect_all_tx_back(f);
}

/* A connection closed with chains kept gives them back; a reset does
 * not touch the rings, and the device works afterwards. */
static void
test_keep_close_reset(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1013);
	uint64_t s = 24, h = FNV0;
	struct gconn c;
	char buf[8];
	int fd;

	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1013, 6030, 65536);
	send_to_credit(f, &c, 65536, &s, &h);
	assert_true(tx_kept(f) > 0);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	expect_all_tx_back(f);
	close(fd);

	fd = guest_connect(f, &c, lfd, 1013, 6031, 65536);
	send_to_credit(f, &c, 65536, &s, &h);
	assert_true(tx_kept(f) > 0);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	/* The host gets what was written before, then the close. */
	set_nonblock(fd);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		static uint8_t in[65536];
		ssize_t k;

		assert_int_equal(poll(&p, 1, TMO), 1);
		k = read(fd, in, sizeof(in));
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			break;
		assert_true(k > 0);
	}
	close(fd);
	f->nr_tx_free = 0;
	for (int i = 0; i < QSIZE; i++)
		f->tx_free[f->nr_tx_free++] = i;
	bring_up(f);
	fd = guest_connect(f, &c, lfd, 1013, 6032, 65536);
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "again", 5, 0);
	host_read_all(fd, buf, 5);
	assert_memory_equal(buf, "again", 5);
	close(fd);
}

/* --- Timeouts ------------------------------------------------------- */

#define T_CONNECT	1000	/* ms, the device's in these tests: long enough that
				 * a loaded CI machine stalling the test thread
				 * does not look like a silent peer */
#define T_SHUTDOWN	600

static int
setup_tmo(void **state)
{
	*state = fix_new_tmo(DEV_BUF, T_CONNECT, T_SHUTDOWN);
	return 0;
}

/* The device holds n connections, within TMO. */
static void
wait_conns(struct fix *f, uint64_t n)
{
	struct vsock_stats st;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		vsock_get_stats(f->vs, &st);
		if (st.conns == n)
			return;
		assert_true(ms_since(&t0) < TMO);
		usleep(1000);
	}
}

/*
 * The device closes fd (no byte before the end) and no sooner than ms
 * after t0, which was before the device could start the wait.
 */
static void
host_expect_closed_after(int fd, const struct timespec *t0, long ms)
{
	long e;

	host_expect_closed(fd);
	e = ms_since(t0);
	if (e < ms - 1)
		fail_msg("closed after %ld ms, expected %ld ms at least", e,
			 ms);
}

/* No packet for the guest during ms. */
static void
g_expect_nothing(struct fix *f, int ms)
{
	if (g_recv(f, ms) == 1)
		fail_msg("expected no packet for %d ms, got op %u %u -> %u", ms,
			 le16toh(f->pk.h.op), le32toh(f->pk.h.src_port),
			 le32toh(f->pk.h.dst_port));
}

/*
 * Host processes that send no command line are closed after the
 * timeout, freeing the slots they held (here all of them); one that
 * sends its line in time, in two pieces, is not touched.
 */
static void
test_cmd_timeout(void **state)
{
	struct fix *f = *state;
	struct vsock_stats st;
	struct timespec t0;
	struct gconn c, c2;
	int idle[7], fd, fd2, full;
	bool exact;
	unsigned int i;

	bring_up(f);
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONN", 4), 4);
	usleep(T_CONNECT * 1000 / 4);
	assert_int_equal(write(fd, "ECT 60\n", 7), 7);
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	memset(&c, 0, sizeof(c));
	host_connect_answer(f, &c, fd, 60, 65536);

	/* Seven silent clients fill the table (max_conns 8). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 7; i++)
		idle[i] = host_dial(f);
	wait_conns(f, 8);
	/* The next one finds it full and is closed at once. */
	full = host_dial(f);
	host_expect_closed(full);
	close(full);
	/* Unless this took a timeout's length, which freed a slot for it. */
	exact = ms_since(&t0) < T_CONNECT - 1;
	for (i = 0; i < 7; i++) {
		host_expect_closed_after(idle[i], &t0, T_CONNECT);
		close(idle[i]);
	}
	wait_conns(f, 1);
	vsock_get_stats(f->vs, &st);
	if (exact)
		assert_int_equal(st.cmd_timeouts, 7);
	else
		assert_true(st.cmd_timeouts >= 7);
	assert_int_equal(st.connect_timeouts, 0);
	assert_int_equal(st.shutdown_timeouts, 0);
	assert_int_equal(st.rst_sent, 0);

	/* The slots are back. */
	fd2 = host_connect(f, &c2, 61, 65536);
	/* And the first connection, set up long before, still carries. */
	assert_int_equal(write(fd, "ping", 4), 4);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(f->pk.len, 4);
	assert_memory_equal(f->pk.data, "ping", 4);
	close(fd2);
	g_expect(f, &c2, VIRTIO_VSOCK_OP_SHUTDOWN);
	g_send(f, &c2, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	close(fd);
	g_expect_host_close(f, &c, &st);
	assert_int_equal(st.host_connects, 2);
}

/*
 * A REQUEST the guest does not answer: the host process's socket closes
 * without an OK line after the timeout, the guest gets RST for the pair,
 * and a late RESPONSE is answered with RST. Connects work afterwards.
 */
static void
test_connect_timeout(void **state)
{
	struct fix *f = *state;
	struct gconn c = { .gport = 70, .buf_alloc = 65536 }, c2;
	struct vsock_stats st;
	struct timespec t0;
	uint64_t rst;
	char buf[8];
	int fd;

	bring_up(f);
	fd = host_dial(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write(fd, "CONNECT 70\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	c.hport = le32toh(f->pk.h.src_port);
	assert_int_equal(g_take(f, &c), VIRTIO_VSOCK_OP_REQUEST);
	/* The guest says nothing. */
	host_expect_closed_after(fd, &t0, T_CONNECT);
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.connect_timeouts, 1);
	assert_int_equal(st.cmd_timeouts, 0);
	assert_int_equal(st.host_connects, 0);
	assert_int_equal(st.conns, 0);
	rst = st.rst_sent;

	/* Its RESPONSE comes late: the connection is unknown now. */
	g_send(f, &c, VIRTIO_VSOCK_OP_RESPONSE, NULL, 0, 0);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	g_expect_nothing(f, 100);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.rst_sent, rst + 1);
	assert_int_equal(st.conns, 0);

	fd = host_connect(f, &c2, 71, 65536);
	g_send(f, &c2, VIRTIO_VSOCK_OP_RW, "fine", 4, 0);
	host_read_all(fd, buf, 4);
	assert_memory_equal(buf, "fine", 4);
	close(fd);
	g_expect_host_close(f, &c2, &st);
	assert_int_equal(st.connect_timeouts, 1);
	assert_int_equal(st.host_connects, 1);
}

/*
 * The timeouts run without a driver, and a REQUEST that never reached
 * the guest (no receive buffers) times out without an RST: nothing
 * about that pair is sent once buffers come.
 */
static void
test_connect_timeout_undelivered(void **state)
{
	struct fix *f = *state;
	struct vsock_stats st;
	struct timespec t0;
	unsigned int i;
	int fd;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	fd = host_dial(f);
	host_expect_closed_after(fd, &t0, T_CONNECT);
	close(fd);
	/* The socket closes a moment before the counter drops. */
	wait_conns(f, 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.cmd_timeouts, 1);

	bring_up_rx(f, false);
	fd = host_dial(f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(write(fd, "CONNECT 72\n", 11), 11);
	host_expect_closed_after(fd, &t0, T_CONNECT);
	close(fd);
	wait_conns(f, 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.connect_timeouts, 1);
	assert_int_equal(st.rst_sent, 0);
	for (i = 0; i < QSIZE; i++)
		post_rx(f, (int)i);
	vh_queue_kick(&f->d, RXQ);
	g_expect_nothing(f, 100);
}

/*
 * The host closes and the guest never answers the SHUTDOWN: after the
 * timeout it gets RST and the connection is gone; its RST, late, is not
 * answered. The same for a connection the guest made.
 */
static void
test_shutdown_timeout(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1020);
	struct vsock_stats st;
	struct timespec t0;
	struct gconn c;
	char buf[4];
	int fd;

	bring_up(f);
	fd = host_connect(f, &c, 80, 65536);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(le32toh(f->pk.h.flags), VIRTIO_VSOCK_SHUTDOWN_RCV |
			 VIRTIO_VSOCK_SHUTDOWN_SEND);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	assert_true(ms_since(&t0) >= T_SHUTDOWN - 1);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.shutdown_timeouts, 1);
	assert_int_equal(st.conns, 0);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	g_expect_nothing(f, 100);

	/* Guest to host, with bytes the guest sent that the host read. */
	fd = guest_connect(f, &c, lfd, 1020, 6040, 65536);
	g_send(f, &c, VIRTIO_VSOCK_OP_RW, "bye", 3, 0);
	host_read_all(fd, buf, 3);
	assert_memory_equal(buf, "bye", 3);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RST);
	assert_true(ms_since(&t0) >= T_SHUTDOWN - 1);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.shutdown_timeouts, 2);
	assert_int_equal(st.connect_timeouts, 0);
	assert_int_equal(st.cmd_timeouts, 0);
	assert_int_equal(st.conns, 0);
}

/*
 * Waits answered in time leave nothing behind: no RST or close past
 * their deadlines, and established connections have no timeout.
 */
static void
test_timeout_answered(void **state)
{
	struct fix *f = *state;
	int lfd = host_listen(f, 0, 1021);
	struct gconn c, c2, c3;
	struct vsock_stats st;
	char buf[8];
	int fd, fd2, fd3;

	bring_up(f);
	fd = host_connect(f, &c, 90, 65536);
	fd2 = host_connect(f, &c2, 91, 65536);
	fd3 = guest_connect(f, &c3, lfd, 1021, 6050, 65536);
	/* A SHUTDOWN answered, with a little delay. */
	close(fd);
	g_expect(f, &c, VIRTIO_VSOCK_OP_SHUTDOWN);
	usleep(T_SHUTDOWN * 1000 / 4);
	g_send(f, &c, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	/* A REQUEST answered, with a little delay. */
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONNECT 92\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	assert_int_equal(le16toh(f->pk.h.op), VIRTIO_VSOCK_OP_REQUEST);
	usleep(T_CONNECT * 1000 / 4);
	memset(&c, 0, sizeof(c));
	host_connect_answer(f, &c, fd, 92, 65536);

	/* Past every deadline: nothing comes, nothing closes. */
	g_expect_nothing(f, 2 * T_CONNECT + 100);
	tx_drain(f);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.cmd_timeouts, 0);
	assert_int_equal(st.connect_timeouts, 0);
	assert_int_equal(st.shutdown_timeouts, 0);
	assert_int_equal(st.conns, 3);
	assert_int_equal(st.host_connects, 3);

	assert_int_equal(write(fd, "a", 1), 1);
	g_expect(f, &c, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(write(fd2, "b", 1), 1);
	g_expect(f, &c2, VIRTIO_VSOCK_OP_RW);
	g_send(f, &c3, VIRTIO_VSOCK_OP_RW, "c", 1, 0);
	host_read_all(fd3, buf, 1);
	assert_int_equal(buf[0], 'c');
	close(fd);
	close(fd2);
	close(fd3);
}

/* 0 in the options: the defaults, far beyond what this test waits. */
static void
test_timeout_defaults(void **state)
{
	struct fix *f = *state;
	struct gconn c = { .gport = 95, .buf_alloc = 65536 }, c2, c3;
	struct pollfd p[2];
	struct vsock_stats st;
	char line[64], want[64];
	int idle, fd, fd3, n;

	bring_up(f);
	idle = host_dial(f);
	fd = host_dial(f);
	assert_int_equal(write(fd, "CONNECT 95\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	c.hport = le32toh(f->pk.h.src_port);
	assert_int_equal(g_take(f, &c), VIRTIO_VSOCK_OP_REQUEST);
	fd3 = host_connect(f, &c3, 96, 65536);
	close(fd3);
	g_expect(f, &c3, VIRTIO_VSOCK_OP_SHUTDOWN);

	/* Nobody answers for a while. */
	g_expect_nothing(f, 300);
	p[0] = (struct pollfd){ .fd = idle, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(p, 2, 0), 0);
	vsock_get_stats(f->vs, &st);
	assert_int_equal(st.cmd_timeouts + st.connect_timeouts +
			 st.shutdown_timeouts, 0);
	assert_int_equal(st.conns, 3);

	/* Then everybody does, and all goes as usual. */
	g_send(f, &c3, VIRTIO_VSOCK_OP_RST, NULL, 0, 0);
	g_send(f, &c, VIRTIO_VSOCK_OP_RESPONSE, NULL, 0, 0);
	n = snprintf(want, sizeof(want), "OK %u\n", c.hport);
	memset(line, 0, sizeof(line));
	host_read_all(fd, line, (size_t)n);
	assert_string_equal(line, want);
	assert_int_equal(write(idle, "CONNECT 97\n", 11), 11);
	assert_int_equal(g_recv(f, TMO), 1);
	memset(&c2, 0, sizeof(c2));
	host_connect_answer(f, &c2, idle, 97, 65536);
	wait_conns(f, 2);
	close(idle);
	close(fd);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_guest_connect),
		T(test_guest_refused),
		T(test_host_connect),
		T(test_host_connect_refused),
		T(test_big_transfer),
		T(test_slow_guest),
		T(test_slow_host),
		T(test_host_events),
		T(test_rst),
		T(test_half_close_drain),
		T(test_hostile_storm),
		T(test_bad_packets),
		T(test_bad_buffers),
		T(test_small_rx_buffers),
#define TB(fn) cmocka_unit_test_setup_teardown(fn, setup_big, teardown)
		TB(test_slow_host_keeps),
		TB(test_slow_host_copies),
		TB(test_keep_total),
		TB(test_keep_close_reset),
#undef TB
#define TT(fn) cmocka_unit_test_setup_teardown(fn, setup_tmo, teardown)
		TT(test_cmd_timeout),
		TT(test_connect_timeout),
		TT(test_connect_timeout_undelivered),
		TT(test_shutdown_timeout),
		TT(test_timeout_answered),
#undef TT
		T(test_timeout_defaults),
	};
#undef T

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
