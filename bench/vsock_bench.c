/* SPDX-License-Identifier: MIT */
/*
 * virtio-vsock throughput beside a bare UNIX socket pair: the same bytes
 * in the same chunks, once through our device (vmm-core's virtio-vsock on
 * the virtio-pci transport, its host side on UNIX sockets, driven by the
 * host-side driver harness as Linux 6.1's virtio transport drives it) and
 * once through socketpair(AF_UNIX, SOCK_STREAM) between two threads.
 *
 *	vsock_bench [-m MiB] [-c CHUNK_KiB] [-r RUNS] [-o RESULTS]
 *		    [-d g2h,h2g]
 *
 * guest -> host: the guest connects to host port 1234 (a listener at
 * "<uds>_1234"), sends the stream as RW packets of the chunk size (64 KiB,
 * Linux's largest) within the credit the device gives, then SHUTDOWN; a
 * host thread reads the accepted socket in chunks until EOF.
 * host -> guest: a host thread connects to "<uds>", sends
 * "CONNECT 1234\n", reads "OK <port>", writes the stream in chunks and
 * closes; the guest answered the device's REQUEST and takes RW packets in
 * receive buffers of a 44-byte header and 4 KiB of payload (Linux 6.1's
 * layout), with a 256 KiB buf_alloc (Linux's default) and a
 * CREDIT_UPDATE whenever less than 64 KiB of it is left (Linux's rule).
 * The bare reference moves the same bytes in the same chunks between a
 * writer thread and a reader, from and into as much memory as the guest
 * uses (its transmit buffers, its receive ring).
 *
 * The guest's data is written once into its buffers and the receiving
 * guest only counts what it gets, so what is measured is the device and
 * the sockets: each byte crosses the socket with one copy in and one
 * copy out on both sides. Runs alternate bare / device in ABBA order (a
 * load that comes and goes weighs on both alike); the table has
 * medians of MB/s (10^6 bytes), the ratio (target >= 0.80), MET / MISSED,
 * and CPU per MiB: the bare pair's two threads, the device's I/O thread
 * beside the guest driver and the host process. With -o, key=value lines
 * for bench/run.sh.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>
#include <linux/virtio_vsock.h>

#include "../tests/unit/helpers/virtio_harness.h"
#include "log.h"
#include "virtio/vsock.h"

#define RAM		(128ULL << 20)
#define TARGET		0.80
#define QSIZE		256
#define CID		3
#define HOST_PORT	1234
#define GUEST_PORT	49152
#define HDR		((uint32_t)sizeof(struct virtio_vsock_hdr))
#define RX_PAYLOAD	4096		/* Linux 6.1's receive buffers */
#define PKT_MAX		65536		/* Linux's largest packet */
#define GUEST_BUF	(256u << 10)	/* Linux's default buf_alloc */
#define TX_SLOTS	16		/* guest packets in flight, at most */
#define RX_AREA		((size_t)QSIZE * RX_PAYLOAD)
#define MAX_RUNS	16
#define STUCK_MS	5000
#define VEC_CFG		0
#define VEC_RX		1
#define VEC_TX		2
#define VEC_EV		3

#define FEATURES	((1ULL << VIRTIO_F_VERSION_1) | \
			 (1ULL << VIRTIO_RING_F_EVENT_IDX) | \
			 (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

enum dir { DIR_G2H, DIR_H2G, NR_DIRS };
static const char *const dir_key[NR_DIRS] = { "g2h", "h2g" };
static const char *const dir_name[NR_DIRS] = {
	"guest -> host", "host -> guest" };

struct result {
	double mbps;
	double cpu_main;	/* per MiB, us: the guest / the bare writer */
	double cpu_other;	/* the host process / the bare reader */
	double cpu_dev;		/* the device's I/O thread */
	/* Sleeps (voluntary context switches) per MiB, the same three. */
	double sw_main, sw_other, sw_dev;
};

static long
thread_sleeps(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_nvcsw;
}

static uint64_t total_bytes = 256ULL << 20;
static uint32_t chunk = 64 << 10;
static char dir_path[64];
static uint64_t g2h_sent;	/* guest -> host: bytes the guest sent */
static bool g2h_shut;		/* and its SHUTDOWN */

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_of(clockid_t c)
{
	struct timespec ts;

	if (clock_gettime(c, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Voluntary context switches of our thread named comm (0: none). */
static uint64_t
task_switches(const char *comm)
{
	char path[300], buf[256];
	unsigned long long v = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");
	FILE *f;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		buf[0] = '\0';
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
		buf[strcspn(buf, "\n")] = '\0';
		if (strcmp(buf, comm) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			break;
		while (fgets(buf, sizeof(buf), f))
			if (sscanf(buf, "voluntary_ctxt_switches: %llu",
				   &v) == 1)
				break;
		fclose(f);
		break;
	}
	closedir(d);
	return v;
}

static void
die(const char *what, int e)
{
	fprintf(stderr, "vsock_bench: %s: %s\n", what, strerror(e));
	exit(1);
}

static void
fill(uint8_t *p, size_t len, uint32_t seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* --- Host side threads (both cases) --------------------------------- */

struct host {
	int fd;			/* socket to read or write */
	int lfd;		/* or a listener to accept it from first */
	const char *connect_to;	/* or a path to connect to, with CONNECT */
	uint8_t *area;		/* chunks come from / go to here */
	size_t area_len;
	uint64_t bytes;		/* moved */
	double t0, t1;		/* first byte handed over, last one taken */
	double cpu;		/* the thread's CPU time */
	long sleeps;		/* and its voluntary context switches */
	int err;
};

/* Write the stream in chunks from the area, then close. */
static void *
host_writer(void *arg)
{
	struct host *h = arg;
	double c0, s0;
	size_t off = 0, len;
	ssize_t w;

	prctl(PR_SET_NAME, h->connect_to ? "host-writer" : "bare-writer");
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	s0 = (double)thread_sleeps();

	if (h->connect_to) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char line[32], c;
		int n = 0;

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s",
			 h->connect_to);
		h->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa,
					 sizeof(sa)) < 0) {
			h->err = errno;
			return NULL;
		}
		snprintf(line, sizeof(line), "CONNECT %u\n", HOST_PORT);
		if (write(h->fd, line, strlen(line)) != (ssize_t)strlen(line)) {
			h->err = EIO;
			return NULL;
		}
		/* "OK <port>\n", a byte at a time: the stream follows. */
		do {
			if (read(h->fd, &c, 1) != 1 || n == 31) {
				h->err = ECONNREFUSED;
				return NULL;
			}
			line[n++] = c;
		} while (c != '\n');
		if (strncmp(line, "OK ", 3) != 0) {
			h->err = ECONNREFUSED;
			return NULL;
		}
	}
	h->t0 = now();
	while (h->bytes < total_bytes) {
		len = total_bytes - h->bytes < chunk ? total_bytes - h->bytes :
		      chunk;
		if (off + len > h->area_len)
			off = 0;
		w = write(h->fd, h->area + off, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			h->err = w < 0 ? errno : EIO;
			break;
		}
		h->bytes += (uint64_t)w;
		off += chunk;
	}
	close(h->fd);
	h->fd = -1;
	h->cpu = cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	h->sleeps = thread_sleeps() - (long)s0;
	return NULL;
}

/* Read chunks into the area until EOF. */
static void *
host_reader(void *arg)
{
	struct host *h = arg;
	double c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	long s0 = thread_sleeps();
	size_t off = 0;
	ssize_t r;

	if (h->lfd >= 0) {
		h->fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (h->fd < 0) {
			h->err = errno;
			return NULL;
		}
	}
	for (;;) {
		if (off + chunk > h->area_len)
			off = 0;
		r = read(h->fd, h->area + off, chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			h->err = errno;
			break;
		}
		if (r == 0)
			break;
		h->bytes += (uint64_t)r;
		off += chunk;
	}
	h->t1 = now();
	close(h->fd);
	h->fd = -1;
	h->cpu = cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	h->sleeps = thread_sleeps() - s0;
	return NULL;
}

/* --- The bare pair --------------------------------------------------- */

static uint8_t *bare_src, *bare_dst;

static int
bare_run(enum dir d, struct result *res)
{
	struct host w = { .lfd = -1 }, r = { .lfd = -1 };
	pthread_t tw;
	int sp[2];

	(void)d;	/* a socket pair is the same both ways */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		die("socketpair", errno);
	w.fd = sp[0];
	w.area = bare_src;
	w.area_len = (size_t)TX_SLOTS * chunk;
	r.fd = sp[1];
	r.area = bare_dst;
	r.area_len = d == DIR_H2G ? RX_AREA : chunk;
	if (pthread_create(&tw, NULL, host_writer, &w) != 0)
		die("pthread_create", errno);
	host_reader(&r);
	pthread_join(tw, NULL);
	if (w.err || r.err || r.bytes != total_bytes) {
		fprintf(stderr, "vsock_bench: bare: %llu of %llu bytes (%s)\n",
			(unsigned long long)r.bytes,
			(unsigned long long)total_bytes,
			strerror(w.err ? w.err : r.err));
		return -EIO;
	}
	res->mbps = (double)total_bytes / (r.t1 - w.t0) / 1e6;
	res->cpu_main = w.cpu * 1e6 / (double)(total_bytes >> 20);
	res->cpu_other = r.cpu * 1e6 / (double)(total_bytes >> 20);
	res->cpu_dev = 0;
	res->sw_main = (double)w.sleeps / (double)(total_bytes >> 20);
	res->sw_other = (double)r.sleeps / (double)(total_bytes >> 20);
	return 0;
}

/* --- The guest driver ------------------------------------------------ */

/*
 * Rings as Linux's virtio_ring drives them with INDIRECT_DESC: every
 * chain (a header and a payload buffer) through its own two-entry
 * indirect table, avail entries published as added, used entries taken
 * in a batch with the used event index set once.
 */
struct ring {
	struct vh_queue *q;
	uint64_t tables;		/* 32 bytes per head */
	uint16_t last_used;
	uint16_t free[QSIZE];
	unsigned int nr_free;
	uint16_t old_avail;
};

struct guest {
	struct vh_machine m;
	struct vsock *vs;
	struct virtio_pci *vp;
	struct vh_dev d;
	clockid_t dev_clock;
	struct ring rx, tx;
	int rx_fd, tx_fd;		/* the vectors' eventfds */
	/* Receive buffers: a header and 4 KiB each, by head. */
	uint64_t rx_hdrs, rx_pool, rx_next;
	uint64_t rx_hdr_of[QSIZE], rx_buf_of[QSIZE];
	/* Transmit packets: a header and up to PKT_MAX, by slot. */
	uint64_t tx_hdr[TX_SLOTS], tx_buf[TX_SLOTS];
	unsigned int tx_slots[TX_SLOTS], nr_tx_slots;
	unsigned int tx_slot_of[QSIZE];
	/* The connection. */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t fwd_cnt, fwd_sent;
	uint32_t host_port, guest_port;
	bool connected, peer_shut, reset;
	uint64_t got;
};

static int
ring_init(struct guest *g, struct ring *r, unsigned int qi)
{
	struct vh_queue *q = &g->d.q[qi];
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->q = q;
	r->tables = vh_alloc(&g->m, 32ULL * q->size, 16);
	if (!r->tables)
		return -ENOMEM;
	for (i = 0; i < q->size; i++)
		r->free[i] = (uint16_t)(q->size - 1 - i);
	r->nr_free = q->size;
	r->old_avail = q->avail_idx;
	return 0;
}

/* Add [hdr][buf] (device-writable for the receive queue); the head. */
static uint16_t
ring_add(struct guest *g, struct ring *r, uint64_t hdr, uint32_t hlen,
	 uint64_t buf, uint32_t blen, bool writable)
{
	uint16_t head = r->free[--r->nr_free];
	uint64_t t = r->tables + 32ULL * head;
	uint16_t w = writable ? VRING_DESC_F_WRITE : 0;

	if (blen) {
		vh_indirect_set(&g->m, t, 0, hdr, hlen,
				w | VRING_DESC_F_NEXT, 1);
		vh_indirect_set(&g->m, t, 1, buf, blen, w, 0);
	} else {
		vh_indirect_set(&g->m, t, 0, hdr, hlen, w, 0);
	}
	vh_desc_set(r->q, head, t, blen ? 32 : 16, VRING_DESC_F_INDIRECT, 0);
	vh_avail_push(r->q, head);
	return head;
}

static void
ring_kick(struct guest *g, struct ring *r)
{
	if (r->q->avail_idx == r->old_avail)
		return;
	if (vh_queue_kick_needed(r->q, r->old_avail))
		vh_queue_kick(&g->d, r->q->index);
	r->old_avail = r->q->avail_idx;
}

static unsigned int
ring_reap(struct ring *r, uint16_t *ids, uint32_t *lens, unsigned int max)
{
	struct vh_queue *q = r->q;
	unsigned int n = 0;
	const uint8_t *e;
	uint16_t idx;
	uint32_t v;

	for (;;) {
		idx = vh_used_idx(q);
		if (idx == r->last_used)
			break;
		/* Acquire: the entries after the index. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		while (r->last_used != idx && n < max) {
			e = q->used + 4 + 8u * (r->last_used & (q->size - 1));
			memcpy(&v, e, 4);
			ids[n] = (uint16_t)le32toh(v);
			memcpy(&v, e + 4, 4);
			lens[n] = le32toh(v);
			r->free[r->nr_free++] = ids[n];
			r->last_used++;
			n++;
		}
		if (n == max)
			break;
	}
	vh_set_used_event(q, r->last_used);
	return n;
}

/* Receive buffers carved in order, 8 to a 32 KiB slab as kmalloc-4k
 * has them, slabs 4 KiB apart. */
static uint64_t
rx_buf_gpa(struct guest *g)
{
	uint64_t k = g->rx_next++ % QSIZE;

	return g->rx_pool + k / 8 * (9 * RX_PAYLOAD) + k % 8 * RX_PAYLOAD;
}

static void
rx_fill(struct guest *g)
{
	uint16_t head;
	uint64_t b;

	while (g->rx.nr_free) {
		head = g->rx.free[g->rx.nr_free - 1];
		b = rx_buf_gpa(g);
		g->rx_buf_of[head] = b;
		ring_add(g, &g->rx, g->rx_hdr_of[head], HDR, b, RX_PAYLOAD,
			 true);
	}
	ring_kick(g, &g->rx);
}

static void
mkhdr(struct guest *g, struct virtio_vsock_hdr *h, uint16_t op, uint32_t len)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(CID);
	h->dst_cid = htole64(VSOCK_HOST_CID);
	h->src_port = htole32(g->guest_port);
	h->dst_port = htole32(g->host_port);
	h->len = htole32(len);
	h->type = htole16(VIRTIO_VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->buf_alloc = htole32(GUEST_BUF);
	h->fwd_cnt = htole32(g->fwd_cnt);
	g->fwd_sent = g->fwd_cnt;
}

static void
tx_reap(struct guest *g)
{
	uint16_t ids[QSIZE];
	uint32_t lens[QSIZE];
	unsigned int n, i;

	n = ring_reap(&g->tx, ids, lens, QSIZE);
	for (i = 0; i < n; i++)
		g->tx_slots[g->nr_tx_slots++] = g->tx_slot_of[ids[i]];
}

/* Send a packet of op with len payload bytes (already in the slot).
 * False when no slot is free. */
static bool
tx_send(struct guest *g, uint16_t op, uint32_t len, uint32_t flags)
{
	struct virtio_vsock_hdr h;
	unsigned int slot;
	uint16_t head;

	if (!g->nr_tx_slots || !g->tx.nr_free)
		return false;
	slot = g->tx_slots[--g->nr_tx_slots];
	mkhdr(g, &h, op, len);
	h.flags = htole32(flags);
	memcpy(vh_ptr(&g->m, g->tx_hdr[slot], HDR), &h, HDR);
	head = ring_add(g, &g->tx, g->tx_hdr[slot], HDR, g->tx_buf[slot], len,
			false);
	g->tx_slot_of[head] = slot;
	return true;
}

/* Take what the device put in the receive queue. Returns how many. */
static unsigned int
rx_take(struct guest *g)
{
	struct virtio_vsock_hdr h;
	uint16_t ids[QSIZE];
	uint32_t lens[QSIZE], len;
	unsigned int n, i;

	n = ring_reap(&g->rx, ids, lens, QSIZE);
	for (i = 0; i < n; i++) {
		memcpy(&h, vh_ptr(&g->m, g->rx_hdr_of[ids[i]], HDR), HDR);
		len = le32toh(h.len);
		if (lens[i] < HDR || len > lens[i] - HDR) {
			fprintf(stderr, "vsock_bench: used length %u for a "
				"packet of %u\n", lens[i], len);
			g->reset = true;
			continue;
		}
		g->peer_buf_alloc = le32toh(h.buf_alloc);
		g->peer_fwd_cnt = le32toh(h.fwd_cnt);
		switch (le16toh(h.op)) {
		case VIRTIO_VSOCK_OP_REQUEST:
			g->host_port = le32toh(h.src_port);
			g->guest_port = le32toh(h.dst_port);
			g->connected = true;
			break;
		case VIRTIO_VSOCK_OP_RESPONSE:
			g->connected = true;
			break;
		case VIRTIO_VSOCK_OP_RW:
			g->got += len;
			/* The application takes it at once. */
			g->fwd_cnt += len;
			break;
		case VIRTIO_VSOCK_OP_SHUTDOWN:
			g->peer_shut = true;
			break;
		case VIRTIO_VSOCK_OP_RST:
			g->reset = true;
			break;
		default:
			break;
		}
	}
	if (n)
		rx_fill(g);
	return n;
}

/* Sleep until either queue's vector fires. */
static void
guest_wait(struct guest *g, int ms)
{
	struct pollfd p[2] = { { .fd = g->rx_fd, .events = POLLIN },
			       { .fd = g->tx_fd, .events = POLLIN } };
	uint64_t v;

	if (poll(p, 2, ms) <= 0)
		return;
	if ((p[0].revents & POLLIN) && read(g->rx_fd, &v, sizeof(v)) < 0)
		return;
	if ((p[1].revents & POLLIN) && read(g->tx_fd, &v, sizeof(v)) < 0)
		return;
}

static int
guest_open(struct guest *g)
{
	struct vsock_options o = { .guest_cid = CID };
	struct vh_dev *d = &g->d;
	char path[96], err[256] = "";
	unsigned int i;
	int r;

	memset(g, 0, sizeof(*g));
	snprintf(path, sizeof(path), "%s/v.sock", dir_path);
	o.uds_path = path;
	r = vh_machine_init(&g->m, RAM);
	if (r < 0)
		return r;
	r = vsock_new(&g->m.mem, &o, err, sizeof(err), &g->vs);
	if (r < 0) {
		fprintf(stderr, "vsock_bench: %s\n", err);
		return r;
	}
	if (pthread_getcpuclockid(vsock_virtio(g->vs)->thread,
				  &g->dev_clock) != 0)
		return -ESRCH;
	pthread_setname_np(vsock_virtio(g->vs)->thread, "vsock-io");
	r = vh_machine_add(&g->m, vsock_virtio(g->vs), &g->vp);
	if (r == 0)
		r = vh_dev_probe(d, &g->m, g->vp);
	if (r < 0)
		return r;
	d->kick_by_eventfd = true;
	if (vh_dev_negotiate(d, FEATURES, false) < 0 || d->features != FEATURES ||
	    vh_dev_msix_enable(d) < 0)
		return -EIO;
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	if (vh_queue_setup(d, VSOCK_RX_QUEUE, QSIZE, VEC_RX) < 0 ||
	    vh_queue_setup(d, VSOCK_TX_QUEUE, QSIZE, VEC_TX) < 0 ||
	    vh_queue_setup(d, VSOCK_EVENT_QUEUE, 16, VEC_EV) < 0)
		return -EIO;
	if (ring_init(g, &g->rx, VSOCK_RX_QUEUE) < 0 ||
	    ring_init(g, &g->tx, VSOCK_TX_QUEUE) < 0)
		return -ENOMEM;
	g->rx_fd = virtio_pci_vector_fd(g->vp, VEC_RX);
	g->tx_fd = virtio_pci_vector_fd(g->vp, VEC_TX);
	g->rx_hdrs = vh_alloc(&g->m, 64ULL * QSIZE, 64);
	g->rx_pool = vh_alloc(&g->m, (uint64_t)QSIZE / 8 * 9 * RX_PAYLOAD,
			      RX_PAYLOAD);
	if (!g->rx_hdrs || !g->rx_pool)
		return -ENOMEM;
	for (i = 0; i < QSIZE; i++)
		g->rx_hdr_of[i] = g->rx_hdrs + 64ULL * i;
	for (i = 0; i < TX_SLOTS; i++) {
		g->tx_hdr[i] = vh_alloc(&g->m, 64, 64);
		g->tx_buf[i] = vh_alloc(&g->m, PKT_MAX, 4096);
		if (!g->tx_hdr[i] || !g->tx_buf[i])
			return -ENOMEM;
		fill(vh_ptr(&g->m, g->tx_buf[i], PKT_MAX), PKT_MAX, i);
		g->tx_slots[i] = TX_SLOTS - 1 - i;
	}
	g->nr_tx_slots = TX_SLOTS;
	if (vh_dev_driver_ok(d) < 0)
		return -EIO;
	rx_fill(g);
	return 0;
}

static void
guest_close(struct guest *g)
{
	virtio_device_destroy(vsock_virtio(g->vs));
	vh_dev_release(&g->d);
	vh_machine_destroy(&g->m);
	virtio_pci_free(g->vp);
	vsock_free(g->vs);
}

/* Run the guest's loop until done() or nothing moves for STUCK_MS. */
static int
guest_loop(struct guest *g, bool (*step)(struct guest *),
	   bool (*done)(struct guest *), const char *what)
{
	double last = now();
	bool moved;

	for (;;) {
		tx_reap(g);
		moved = rx_take(g) > 0;
		moved |= step(g);
		ring_kick(g, &g->tx);
		/* After our SHUTDOWN, the device's RST is the close. */
		if (g->reset && !g2h_shut) {
			fprintf(stderr, "vsock_bench: %s: reset by the device "
				"(status 0x%x, %llu bytes sent)\n", what,
				vh_dev_status(&g->d),
				(unsigned long long)g2h_sent);
			return -ECONNRESET;
		}
		if (done(g))
			return 0;
		if (moved) {
			last = now();
			continue;
		}
		if (now() - last > STUCK_MS / 1e3) {
			fprintf(stderr, "vsock_bench: %s: stuck (%llu bytes "
				"received)\n", what,
				(unsigned long long)g->got);
			return -ETIMEDOUT;
		}
		/* Sleep until the device signals, as a guest would. */
		guest_wait(g, 10);
	}
}

/* guest -> host: data within the device's credit, then SHUTDOWN. */

static bool
g2h_step(struct guest *g)
{
	uint32_t credit, len;
	bool moved = false;

	while (g2h_sent < total_bytes) {
		credit = g->peer_buf_alloc - (g->tx_cnt - g->peer_fwd_cnt);
		len = chunk;
		if (len > total_bytes - g2h_sent)
			len = (uint32_t)(total_bytes - g2h_sent);
		if (len > credit)
			len = credit;
		if (!len || !tx_send(g, VIRTIO_VSOCK_OP_RW, len, 0))
			return moved;
		g->tx_cnt += len;
		g2h_sent += len;
		moved = true;
	}
	if (!g2h_shut && tx_send(g, VIRTIO_VSOCK_OP_SHUTDOWN, 0,
				 VIRTIO_VSOCK_SHUTDOWN_RCV |
				 VIRTIO_VSOCK_SHUTDOWN_SEND)) {
		g2h_shut = true;
		moved = true;
	}
	return moved;
}

/* host -> guest: credit back whenever less than a packet's worth is left. */
static bool
g2h_done(struct guest *g)
{
	return g2h_shut && g->nr_tx_slots == TX_SLOTS;
}

static bool
h2g_step(struct guest *g)
{
	if (g->connected && GUEST_BUF - (g->fwd_cnt - g->fwd_sent) < PKT_MAX &&
	    tx_send(g, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0))
		return true;
	return false;
}

static bool
h2g_done(struct guest *g)
{
	return g->got >= total_bytes || g->peer_shut;
}

/*
 * A stream that cannot finish: the host thread may wait for ever on its
 * socket, so end here, the socket files removed (the directory goes in
 * cleanup_dir()).
 */
static void
bail(const char *what, const char *upath, const char *lpath)
{
	fprintf(stderr, "vsock_bench: %s\n", what);
	unlink(upath);
	if (lpath)
		unlink(lpath);
	exit(1);
}

static int
dev_run(enum dir d, struct result *res)
{
	struct guest *g = calloc(1, sizeof(*g));
	struct host h = { .fd = -1, .lfd = -1 };
	char lpath[100], upath[80];
	double c0, d0, t1;
	long s0;
	uint64_t ds0;
	pthread_t th;
	int r = -EIO;

	if (!g)
		return -ENOMEM;
	if (guest_open(g) < 0) {
		fprintf(stderr, "vsock_bench: device setup failed\n");
		goto out;
	}
	snprintf(upath, sizeof(upath), "%.60s/v.sock", dir_path);
	snprintf(lpath, sizeof(lpath), "%.70s_%u", upath, HOST_PORT);
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	d0 = cpu_of(g->dev_clock);
	s0 = thread_sleeps();
	ds0 = task_switches("vsock-io");
	if (d == DIR_G2H) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", lpath);
		h.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (h.lfd < 0 || bind(h.lfd, (struct sockaddr *)&sa,
				      sizeof(sa)) < 0 || listen(h.lfd, 4) < 0)
			die("host listener", errno);
		h.area = bare_dst;
		h.area_len = chunk;
		if (pthread_create(&th, NULL, host_reader, &h) != 0)
			die("pthread_create", errno);
		g->host_port = HOST_PORT;
		g->guest_port = GUEST_PORT;
		g2h_sent = 0;
		g2h_shut = false;
		/* REQUEST, and the device's RESPONSE with its credit. */
		if (!tx_send(g, VIRTIO_VSOCK_OP_REQUEST, 0, 0))
			die("REQUEST", EIO);
		ring_kick(g, &g->tx);
		t1 = now();
		while (!g->connected && !g->reset) {
			if (now() - t1 > STUCK_MS / 1e3)
				bail("guest -> host: no RESPONSE", upath, lpath);
			guest_wait(g, 100);
			tx_reap(g);
			rx_take(g);
		}
		h.t0 = now();
		r = guest_loop(g, g2h_step, g2h_done, "guest -> host");
		if (r < 0)
			bail("guest -> host failed", upath, lpath);
		/* The host reader sees EOF once the device flushed. */
		pthread_join(th, NULL);
		t1 = h.t1;
		close(h.lfd);
		unlink(lpath);
		if (r == 0 && (h.err || h.bytes != total_bytes)) {
			fprintf(stderr, "vsock_bench: guest -> host: the host "
				"read %llu of %llu bytes (%s)\n",
				(unsigned long long)h.bytes,
				(unsigned long long)total_bytes,
				strerror(h.err));
			r = -EIO;
		}
	} else {
		h.connect_to = upath;
		h.area = bare_src;
		h.area_len = (size_t)TX_SLOTS * chunk;
		if (pthread_create(&th, NULL, host_writer, &h) != 0)
			die("pthread_create", errno);
		/* The device's REQUEST; our RESPONSE with our credit. */
		t1 = now();
		while (!g->connected && !g->reset && !h.err) {
			if (now() - t1 > STUCK_MS / 1e3)
				bail("host -> guest: no REQUEST", upath, NULL);
			guest_wait(g, 100);
			rx_take(g);
		}
		if (!tx_send(g, VIRTIO_VSOCK_OP_RESPONSE, 0, 0))
			die("RESPONSE", EIO);
		ring_kick(g, &g->tx);
		r = guest_loop(g, h2g_step, h2g_done, "host -> guest");
		if (r < 0)
			bail("host -> guest failed", upath, NULL);
		t1 = now();
		pthread_join(th, NULL);
		if (r == 0 && (h.err || g->got != total_bytes)) {
			fprintf(stderr, "vsock_bench: host -> guest: the guest "
				"got %llu of %llu bytes (%s)\n",
				(unsigned long long)g->got,
				(unsigned long long)total_bytes,
				strerror(h.err));
			r = -EIO;
		}
	}
	if (r == 0) {
		res->mbps = (double)total_bytes / (t1 - h.t0) / 1e6;
		res->cpu_main = (cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e6 /
				(double)(total_bytes >> 20);
		res->cpu_other = h.cpu * 1e6 / (double)(total_bytes >> 20);
		res->cpu_dev = (cpu_of(g->dev_clock) - d0) * 1e6 /
			       (double)(total_bytes >> 20);
		res->sw_main = (double)(thread_sleeps() - s0) /
			       (double)(total_bytes >> 20);
		res->sw_other = (double)h.sleeps / (double)(total_bytes >> 20);
		res->sw_dev = (double)(task_switches("vsock-io") - ds0) /
			      (double)(total_bytes >> 20);
	}
out:
	guest_close(g);
	free(g);
	return r;
}

/* --- Main ------------------------------------------------------------ */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(const double *in, int n)
{
	double v[MAX_RUNS];

	memcpy(v, in, (size_t)n * sizeof(*v));
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The best run: noise only ever slows one down. */
static double
best(const double *v, int n)
{
	double m = v[0];
	int i;

	for (i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

static void
put_list(FILE *f, const char *key, const double *v, int n)
{
	int i;

	fprintf(f, "%s=", key);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%.1f", i ? "," : "", v[i]);
	fputc('\n', f);
}

static void
cleanup_dir(void)
{
	if (dir_path[0])
		rmdir(dir_path);
}

int
main(int argc, char **argv)
{
	static struct result bare[NR_DIRS][MAX_RUNS], dev[NR_DIRS][MAX_RUNS];
	const char *out_path = NULL, *only = NULL;
	unsigned long long mib = total_bytes >> 20;
	unsigned int di;
	int runs = 3, opt, k;
	FILE *out = NULL;

	while ((opt = getopt(argc, argv, "m:c:r:o:d:")) != -1) {
		switch (opt) {
		case 'd': only = optarg; break;
		case 'm': mib = strtoull(optarg, NULL, 0); break;
		case 'c': chunk = (uint32_t)strtoul(optarg, NULL, 0) << 10;
			  break;
		case 'r': runs = atoi(optarg); break;
		case 'o': out_path = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-m MiB] [-c CHUNK_KiB] "
				"[-r RUNS] [-o RESULTS] [-d g2h|h2g]\n",
				argv[0]);
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || mib < 1 || mib > 65536 ||
	    chunk < 4096 || chunk > PKT_MAX) {
		fprintf(stderr, "vsock_bench: bad arguments\n");
		return 2;
	}
	total_bytes = mib << 20;
	log_set_level(LOG_LEVEL_WARN);
	snprintf(dir_path, sizeof(dir_path), "/tmp/vsock-bench.XXXXXX");
	if (!mkdtemp(dir_path))
		die("mkdtemp", errno);
	atexit(cleanup_dir);
	bare_src = malloc((size_t)TX_SLOTS * chunk);
	bare_dst = malloc(RX_AREA > chunk ? RX_AREA : chunk);
	if (!bare_src || !bare_dst)
		die("malloc", ENOMEM);
	for (k = 0; k < TX_SLOTS; k++)
		fill(bare_src + (size_t)k * chunk, chunk, (uint32_t)k);
	memset(bare_dst, 0, RX_AREA > chunk ? RX_AREA : chunk);
	printf("vsock_bench: %llu MiB each way in %u KiB chunks, %d runs "
	       "each, bare / device in ABBA order\n", mib, chunk >> 10,
	       runs);
	for (di = 0; di < NR_DIRS; di++) {
		if (only && !strstr(only, dir_key[di]))
			continue;
		for (k = 0; k < runs; k++) {
			struct result *b = &bare[di][k], *v = &dev[di][k];

			/* ABBA: a load that comes or goes during the runs
			 * weighs on both alike. */
			if (k % 2 == 0 && bare_run(di, b) < 0)
				return 1;
			if (dev_run(di, v) < 0)
				return 1;
			if (k % 2 == 1 && bare_run(di, b) < 0)
				return 1;
			printf("  %-14s run %d: bare %7.0f MB/s, device %7.0f "
			       "MB/s\n      per MiB: bare writer %.0f us CPU "
			       "(%.1f sleeps) + reader %.0f (%.1f); device "
			       "I/O thread %.0f (%.1f) + guest %.0f (%.1f) + "
			       "host %.0f (%.1f)\n", dir_name[di], k + 1,
			       b->mbps, v->mbps, b->cpu_main, b->sw_main,
			       b->cpu_other, b->sw_other, v->cpu_dev,
			       v->sw_dev, v->cpu_main, v->sw_main,
			       v->cpu_other, v->sw_other);
			fflush(stdout);
		}
	}
	if (out_path) {
		out = fopen(out_path, "w");
		if (!out)
			die(out_path, errno);
	}
	printf("\n%-14s %12s %12s %7s %8s %7s %9s %9s %9s\n",
	       "stream (median)", "bare MB/s", "device MB/s", "ratio", "target",
	       "result", "best/best", "bare CPU", "dev CPU");
	for (di = 0; di < NR_DIRS; di++) {
		double bm[MAX_RUNS], dm[MAX_RUNS], mb, md, r, rb;
		double bc[MAX_RUNS], dc[MAX_RUNS], gc[MAX_RUNS], hc[MAX_RUNS];
		char key[64];

		if (only && !strstr(only, dir_key[di]))
			continue;
		for (k = 0; k < runs; k++) {
			bm[k] = bare[di][k].mbps;
			dm[k] = dev[di][k].mbps;
			bc[k] = bare[di][k].cpu_main + bare[di][k].cpu_other;
			dc[k] = dev[di][k].cpu_dev;
			gc[k] = dev[di][k].cpu_main;
			hc[k] = dev[di][k].cpu_other;
		}
		mb = median(bm, runs);
		md = median(dm, runs);
		r = md / mb;
		rb = best(dm, runs) / best(bm, runs);
		printf("%-14s %12.0f %12.0f %7.3f %8s %7s %9.3f %9.0f %9.0f\n",
		       dir_name[di], mb, md, r, ">= 0.80",
		       r >= TARGET ? "MET" : "MISSED", rb, median(bc, runs),
		       median(dc, runs) + median(gc, runs) + median(hc, runs));
		if (!out)
			continue;
		snprintf(key, sizeof(key), "vsock.%s", dir_key[di]);
		fprintf(out, "%s.bare.median_mbps=%.1f\n", key, mb);
		fprintf(out, "%s.vmm.median_mbps=%.1f\n", key, md);
		fprintf(out, "%s.ratio=%.4f\n", key, r);
		fprintf(out, "%s.ratio_best=%.4f\n", key, rb);
		fprintf(out, "%s.result=%s\n", key,
			r >= TARGET ? "MET" : "MISSED");
		fprintf(out, "%s.bare.cpu_us_per_mib=%.1f\n", key,
			median(bc, runs));
		fprintf(out, "%s.vmm.io_thread_cpu_us_per_mib=%.1f\n", key,
			median(dc, runs));
		fprintf(out, "%s.vmm.guest_cpu_us_per_mib=%.1f\n", key,
			median(gc, runs));
		fprintf(out, "%s.vmm.host_cpu_us_per_mib=%.1f\n", key,
			median(hc, runs));
		snprintf(key, sizeof(key), "vsock.%s.bare.runs_mbps",
			 dir_key[di]);
		put_list(out, key, bm, runs);
		snprintf(key, sizeof(key), "vsock.%s.vmm.runs_mbps",
			 dir_key[di]);
		put_list(out, key, dm, runs);
	}
	printf("(best/best: the best device run over the best bare one; CPU: "
	       "us per MiB, all threads:\n bare writer + reader, device I/O "
	       "thread + guest + host process)\n");
	if (out) {
		fprintf(out, "vsock.bytes=%llu\n",
			(unsigned long long)total_bytes);
		fprintf(out, "vsock.chunk_bytes=%u\n", chunk);
		fprintf(out, "vsock.target_ratio_min=%.2f\n", TARGET);
		fclose(out);
	}
	return 0;
}
