/* SPDX-License-Identifier: MIT */
/*
 * virtio-net on a real TAP, with the driver-side harness as the guest's
 * virtio-net driver and an AF_PACKET socket (PACKET_VNET_HDR) on the TAP
 * as the host's side of the wire. All traffic stays in a network namespace
 * the test creates (vmmdtest<pid>, a TAP in it with an address, IPv6 off
 * so the kernel sends nothing of its own); the namespace, and the TAP with
 * it, is deleted in the group teardown and, should the test die halfway,
 * by an atexit handler and on SIGINT/SIGTERM.
 *
 * Covered: the config space (derived and given MACs, LINK_UP), MAC
 * parsing; frames the guest sends arriving intact (direct, split and
 * indirect chains); frames written on the host side arriving in the
 * guest's receive buffers with the vnet header; checksum offload both
 * ways (NEEDS_CSUM passed through, or completed by the kernel for a
 * driver without GUEST_CSUM); MRG_RXBUF with 256-byte buffers; 100 MiB in
 * 64 KB TSO frames each way, hashed end to end; hostile buffers giving
 * NEEDS_RESET and a working device after reset; an inherited TAP fd; a
 * missing TAP, a busy one and a bad fd giving errors that name them.
 * And the receive bookkeeping: mergeable chains of irregular pieces
 * (some side by side in memory, merged into one iovec for the read, some
 * not, some chains of two) carrying a mix of frames intact; chains of
 * many tiny pieces, where the device reads with the buffers that fit its
 * iovec array, so a small frame passes and a 64 KiB one is dropped and
 * counted.
 * And the limits, measured: transmit at 50 Mbit/s (set at net_new())
 * timed by the kernel's arrival stamps at the TAP's packet socket, and
 * 2000 packets/s raised to 5000/s with net_set_limits() while the
 * transmitq is full, then lifted; receive at 50 Mbit/s and 2000/s with
 * the host writing twice as fast, counted in the guest's buffers; each
 * within 5% over 2 to 5 s, the initial burst accounted for; throttle
 * counters; a reset while a chain waits; bad limits refused.
 *
 * Needs root, /dev/net/tun and ip(8): without them every test skips and
 * says why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>

#include "../unit/helpers/virtio_harness.h"
#include "log.h"
#include "virtio/net.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define RAM		(256ULL << 20)
#define TMO		5000
#define QSIZE		256
#define VEC_CFG		0
#define VEC_RX		1
#define VEC_TX		2
#define RXQ		NET_RX_QUEUE
#define TXQ		NET_TX_QUEUE
#define ETH_TEST	0x88b5		/* IEEE local experimental */
#define HDR		NET_HDR_LEN
#define PHDR		((int)sizeof(struct virtio_net_hdr))	/* AF_PACKET's */
#define STREAM_BYTES	(100u << 20)
#define TSO_PAYLOAD	64000u
#define TSO_HDRS	54u		/* Ethernet + IPv4 + TCP */
#define WINDOW		16		/* frames in flight in a stream */

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_MAC	(1ULL << VIRTIO_NET_F_MAC)
#define F_STAT	(1ULL << VIRTIO_NET_F_STATUS)
#define F_MRG	(1ULL << VIRTIO_NET_F_MRG_RXBUF)
#define F_CSUM	(1ULL << VIRTIO_NET_F_CSUM)
#define F_GCSUM	(1ULL << VIRTIO_NET_F_GUEST_CSUM)
#define F_HTSO4	(1ULL << VIRTIO_NET_F_HOST_TSO4)
#define F_HTSO6	(1ULL << VIRTIO_NET_F_HOST_TSO6)
#define F_GTSO4	(1ULL << VIRTIO_NET_F_GUEST_TSO4)
#define F_GTSO6	(1ULL << VIRTIO_NET_F_GUEST_TSO6)
#define F_BASE	(F_V1 | F_EVT | F_IND | F_MAC | F_STAT)

static const uint8_t host_mac[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };
static const uint8_t guest_mac[6] = { 0x02, 0x12, 0x34, 0x56, 0x78, 0x9a };

/* --- The namespace ---------------------------------------------------- */

static char g_ns[32], g_tap[IFNAMSIZ];
static bool g_ns_made;
static int g_orig_ns = -1;
static const char *g_skip;	/* why every test skips, or NULL */

static int
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	return r == 0 ? 0 : -1;
}

static void
ns_delete(void)
{
	if (!g_ns_made)
		return;
	g_ns_made = false;
	if (g_orig_ns >= 0) {
		(void)setns(g_orig_ns, CLONE_NEWNET);
		close(g_orig_ns);
		g_orig_ns = -1;
	}
	/* The TAP lives in the namespace and goes with it. */
	if (run("ip netns del %s >/dev/null 2>&1", g_ns) < 0)
		fprintf(stderr, "test_virtio_net: could not delete netns %s\n",
			g_ns);
}

static void
ns_signal(int sig)
{
	ns_delete();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int group_setup_ns(void);

static int
group_setup(void **state)
{
	sigset_t sigs, old;
	int r;

	(void)state;
	/* A signal halfway through creating the namespace would race the
	 * cleanup with ip(8): it waits until setup is done, then cleans. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, &old);
	r = group_setup_ns();
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

static int
group_setup_ns(void)
{
	char path[64];
	int fd;

	log_set_level(LOG_LEVEL_ERR);
	if (geteuid() != 0) {
		g_skip = "needs root (network namespace, TAP)";
		return 0;
	}
	if (access("/dev/net/tun", R_OK | W_OK) != 0) {
		g_skip = "the host has no /dev/net/tun";
		return 0;
	}
	if (run("ip -V >/dev/null 2>&1") < 0) {
		g_skip = "ip(8) (iproute2) is not installed";
		return 0;
	}
	snprintf(g_ns, sizeof(g_ns), "vmmdtest%d", (int)getpid());
	snprintf(g_tap, sizeof(g_tap), "vt%d", (int)getpid());
	atexit(ns_delete);
	signal(SIGINT, ns_signal);
	signal(SIGTERM, ns_signal);
	g_ns_made = true;	/* deleting a half-made one is harmless */
	if (run("ip netns add %s", g_ns) < 0) {
		g_skip = "cannot create a network namespace";
		return 0;
	}
	/* No IPv6: the kernel would send router solicitations and MLD
	 * reports of its own on the TAP. */
	(void)run("ip netns exec %s sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
		  "net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1", g_ns);
	if (run("ip -n %s tuntap add dev %s mode tap", g_ns, g_tap) < 0 ||
	    run("ip -n %s addr add 10.213.0.1/24 dev %s", g_ns, g_tap) < 0 ||
	    run("ip -n %s link set %s up", g_ns, g_tap) < 0) {
		g_skip = "cannot create a TAP in the namespace";
		return 0;
	}
	snprintf(path, sizeof(path), "/run/netns/%s", g_ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	g_orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || g_orig_ns < 0 || setns(fd, CLONE_NEWNET) < 0) {
		g_skip = "cannot enter the network namespace";
		if (fd >= 0)
			close(fd);
		return 0;
	}
	close(fd);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	ns_delete();
	return 0;
}

#define NEED_HOST() do {						\
	if (g_skip) {							\
		fprintf(stderr, "SKIP: test_virtio_net: %s\n", g_skip);	\
		skip();							\
	}								\
} while (0)

/* --- The fixture ------------------------------------------------------ */

struct fix {
	struct vh_machine m;
	struct vnet *net;
	struct virtio_pci *vp;
	struct vh_dev d;
	int sock;			/* AF_PACKET on the TAP */
	uint64_t rx_gpa[QSIZE];		/* receive buffer of each head */
	uint32_t rx_size;
	uint64_t tx_gpa;		/* WINDOW transmit slots */
	uint32_t tx_slot;
};

static int
packet_socket(void)
{
	struct sockaddr_ll sll = { 0 };
	int s, one = 1, big = 64 << 20, sbig = 16 << 20;

	s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	assert_true(s >= 0);
	assert_int_equal(setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one,
				    sizeof(one)), 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big,
				    sizeof(big)), 0);
	assert_int_equal(setsockopt(s, SOL_SOCKET, SO_SNDBUFFORCE, &sbig,
				    sizeof(sbig)), 0);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(g_tap);
	assert_true(sll.sll_ifindex > 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return s;
}

/* A machine with a virtio-net on the TAP o names, probed. */
static void
fix_attach(struct fix *f, const struct net_options *o)
{
	char err[256];
	int r;

	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	r = net_new(&f->m.mem, o, &f->net, err, sizeof(err));
	if (r < 0)
		fail_msg("net_new: %d: %s", r, err);
	assert_string_equal(net_ifname(f->net), g_tap);
	assert_int_equal(vh_machine_add(&f->m, net_virtio(f->net), &f->vp), 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	f->rx_size = 0;
}

static void
fix_detach(struct fix *f)
{
	if (!f->net)
		return;
	virtio_device_destroy(net_virtio(f->net));
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	net_free(f->net);
	f->net = NULL;
	memset(&f->d, 0, sizeof(f->d));
}

static int
setup(void **state)
{
	struct net_options o = { .tap = g_tap, .tap_fd = -1, .mac = guest_mac };
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->sock = -1;
	*state = f;
	if (g_skip)
		return 0;
	fix_attach(f, &o);
	f->sock = packet_socket();
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	fix_detach(f);
	if (f->sock >= 0)
		close(f->sock);
	free(f);
	return 0;
}

/* Negotiate exactly want (checked), queues, DRIVER_OK. */
static void
bring_up(struct fix *f, uint64_t want)
{
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, want, false), 0);
	assert_true(d->features == want);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(d, RXQ, QSIZE, VEC_RX), 0);
	assert_int_equal(vh_queue_setup(d, TXQ, QSIZE, VEC_TX), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	f->tx_slot = HDR + TSO_HDRS + TSO_PAYLOAD;
	f->tx_gpa = vh_alloc(&f->m, (uint64_t)f->tx_slot * WINDOW, 64);
	assert_true(f->tx_gpa != 0);
}

/* Post n receive buffers of size bytes each (one descriptor each). */
static void
post_rx(struct fix *f, unsigned int n, uint32_t size)
{
	struct vh_queue *q = &f->d.q[RXQ];
	struct vh_buf b;
	unsigned int i;
	uint16_t old = q->avail_idx;
	int head;

	if (f->rx_size != size) {
		memset(f->rx_gpa, 0, sizeof(f->rx_gpa));
		f->rx_size = size;
	}
	for (i = 0; i < n; i++) {
		b.len = size;
		b.gpa = 0;
		head = vh_queue_add(q, &(struct vh_buf){ 0, size }, 0, 1, false);
		assert_true(head >= 0);
		/* Reuse the head's buffer, or give it one. */
		if (!f->rx_gpa[head]) {
			f->rx_gpa[head] = vh_alloc(&f->m, size, 64);
			assert_true(f->rx_gpa[head] != 0);
		}
		b.gpa = f->rx_gpa[head];
		vh_desc_set(q, (uint16_t)head, b.gpa, b.len,
			    VRING_DESC_F_WRITE, 0);
	}
	if (vh_queue_kick_needed(q, old))
		vh_queue_kick(&f->d, RXQ);
}

/* The next used entry of q, waiting up to TMO for its vector. */
static int
wait_used(struct fix *f, unsigned int qi, uint16_t *id, uint32_t *len)
{
	struct vh_queue *q = &f->d.q[qi];

	for (;;) {
		if (vh_queue_get_used(q, id, len))
			return 1;
		if (vh_wait_irq(&f->d, q->vector, TMO) == 0)
			return vh_queue_get_used(q, id, len);
	}
}

/*
 * Receive one frame on the packet socket that the guest sent (source
 * guest_mac), skipping anything else. Returns its length (vnet header
 * included), or 0 on timeout.
 */
static ssize_t
host_recv(struct fix *f, uint8_t *buf, size_t cap)
{
	struct pollfd p = { .fd = f->sock, .events = POLLIN };
	struct sockaddr_ll sll;
	socklen_t sl;
	ssize_t n;

	for (;;) {
		if (poll(&p, 1, TMO) <= 0)
			return 0;
		sl = sizeof(sll);
		n = recvfrom(f->sock, buf, cap, MSG_DONTWAIT,
			     (struct sockaddr *)&sll, &sl);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		assert_true(n > PHDR + 14);
		if (sll.sll_pkttype == PACKET_OUTGOING ||
		    memcmp(buf + PHDR + 6, guest_mac, 6) != 0)
			continue;
		return n;
	}
}

/* Send a frame (with its 10-byte vnet header) into the TAP. */
static void
host_send(struct fix *f, const void *frame, size_t len)
{
	ssize_t n = send(f->sock, frame, len, 0);

	if (n < 0)
		fail_msg("send on the TAP's packet socket: %s", strerror(errno));
	assert_int_equal((size_t)n, len);
}

/*
 * Receive one frame in the guest (source host_mac), reassembling merged
 * buffers into out (12-byte header first), reposting every buffer used.
 * Returns its length and the buffers it took, 0 on timeout.
 */
static uint32_t
guest_recv(struct fix *f, uint8_t *out, size_t cap, unsigned int *nbufs)
{
	struct virtio_net_hdr_mrg_rxbuf h;
	uint16_t id, nb, i;
	uint32_t len, total;

	for (;;) {
		if (!wait_used(f, RXQ, &id, &len))
			return 0;
		assert_true(id < QSIZE && f->rx_gpa[id]);
		assert_true(len >= HDR && len <= f->rx_size);
		memcpy(out, vh_ptr(&f->m, f->rx_gpa[id], len), len);
		memcpy(&h, out, sizeof(h));
		nb = le16toh(h.num_buffers);
		assert_true(nb >= 1);
		total = len;
		for (i = 1; i < nb; i++) {
			if (!wait_used(f, RXQ, &id, &len))
				fail_msg("frame of %u buffers: %u came", nb, i);
			assert_true(id < QSIZE && f->rx_gpa[id]);
			assert_true(total + len <= cap);
			memcpy(out + total, vh_ptr(&f->m, f->rx_gpa[id], len),
			       len);
			total += len;
		}
		post_rx(f, nb, f->rx_size);
		if (nbufs)
			*nbufs = nb;
		if (total >= HDR + 14 && !memcmp(out + HDR + 6, host_mac, 6))
			return total;
	}
}

/* Put a guest transmit chain of one frame (header first) in slot. */
static int
guest_send(struct fix *f, unsigned int slot, const void *frame, uint32_t len,
	   bool kick)
{
	struct vh_queue *q = &f->d.q[TXQ];
	uint64_t gpa = f->tx_gpa + (uint64_t)slot * f->tx_slot;
	uint16_t old = q->avail_idx;
	int head;

	assert_true(len <= f->tx_slot);
	memcpy(vh_ptr(&f->m, gpa, len), frame, len);
	head = vh_queue_add(q, &(struct vh_buf){ gpa, len }, 1, 0, false);
	if (head >= 0 && kick && vh_queue_kick_needed(q, old))
		vh_queue_kick(&f->d, TXQ);
	return head;
}

static void
make_eth(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	p[12] = (uint8_t)(type >> 8);
	p[13] = (uint8_t)type;
}

static uint8_t
pattern(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 31 + i * 7 + (i >> 8) * 13);
}

/* --- Checksums -------------------------------------------------------- */

static uint32_t
sum16(const uint8_t *p, size_t len, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static uint16_t
fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint32_t
pseudo_sum(const uint8_t *ip, uint8_t proto, uint32_t l4len)
{
	return sum16(ip + 12, 8, 0) + proto + l4len;
}

/*
 * An IPv4 frame at p (Ethernet first) from src to dst with an l4 header
 * of proto and payload bytes after it (with fill, a pattern of seed;
 * without, what the caller put there); the L4 checksum field holds the
 * pseudo-header sum, as for CHECKSUM_PARTIAL. Returns the frame length.
 */
static size_t
make_ipv4(uint8_t *p, const uint8_t *dst, const uint8_t *src, uint8_t proto,
	  size_t payload, uint32_t seed, uint32_t tcp_seq, bool fill)
{
	size_t l4 = proto == IPPROTO_TCP ? 20 : 8;
	uint8_t *ip = p + 14, *th = ip + 20;
	uint32_t l4len = (uint32_t)(l4 + payload);
	uint16_t v;
	size_t i;

	make_eth(p, dst, src, ETH_P_IP);
	memset(ip, 0, 20 + l4);
	ip[0] = 0x45;
	v = htons((uint16_t)(20 + l4len));
	memcpy(ip + 2, &v, 2);
	ip[6] = 0x40;		/* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, (uint8_t[]){ 10, 213, 0, 2 }, 4);
	memcpy(ip + 16, (uint8_t[]){ 10, 213, 0, 3 }, 4);
	v = htons((uint16_t)~fold(sum16(ip, 20, 0)));
	memcpy(ip + 10, &v, 2);
	th[0] = 0x30; th[1] = 0x39;		/* port 12345 */
	th[2] = 0x1f; th[3] = 0x90;		/* port 8080 */
	if (proto == IPPROTO_TCP) {
		v = htons((uint16_t)(tcp_seq >> 16));
		memcpy(th + 4, &v, 2);
		v = htons((uint16_t)tcp_seq);
		memcpy(th + 6, &v, 2);
		th[12] = 0x50;			/* data offset 5 */
		th[13] = 0x18;			/* PSH ACK */
		th[14] = 0xff; th[15] = 0xff;	/* window */
	} else {
		v = htons((uint16_t)l4len);
		memcpy(th + 4, &v, 2);
	}
	for (i = 0; fill && i < payload; i++)
		th[l4 + i] = pattern(seed, i);
	v = htons(fold(pseudo_sum(ip, proto, l4len)));
	memcpy(th + (proto == IPPROTO_TCP ? 16 : 6), &v, 2);
	return 14 + 20 + l4len;
}

/* Whether the L4 checksum of an IPv4 frame is complete and right. */
static bool
l4_csum_ok(const uint8_t *p, size_t len)
{
	const uint8_t *ip = p + 14;
	uint32_t l4len = (uint32_t)(len - 34);

	return fold(sum16(ip + 20, l4len, pseudo_sum(ip, ip[9], l4len))) ==
	       0xffff;
}

/* --- Tests ------------------------------------------------------------ */

static void
test_mac(void **state)
{
	uint8_t a[6], b[6], c[6];

	(void)state;
	net_mac_from_seed("vm-web1/0", a);
	net_mac_from_seed("vm-web1/0", b);
	net_mac_from_seed("vm-web1/1", c);
	assert_memory_equal(a, b, 6);
	assert_memory_not_equal(a, c, 6);
	assert_int_equal(a[0] & 0x03, 0x02);	/* local, unicast */
	assert_int_equal(c[0] & 0x03, 0x02);

	assert_int_equal(net_parse_mac("52:54:00:Ab:cD:ef", a), 0);
	assert_memory_equal(a, ((uint8_t[]){ 0x52, 0x54, 0, 0xab, 0xcd, 0xef }),
			    6);
	assert_int_equal(net_parse_mac("01:00:5e:00:00:01", a), -EINVAL);
	assert_int_equal(net_parse_mac("00:00:00:00:00:00", a), -EINVAL);
	assert_int_equal(net_parse_mac("52:54:00:12:34", a), -EINVAL);
	assert_int_equal(net_parse_mac("52-54-00-12-34-56", a), -EINVAL);
	assert_int_equal(net_parse_mac("52:54:00:12:34:5g", a), -EINVAL);
	assert_int_equal(net_parse_mac(NULL, a), -EINVAL);
}

static void
test_errors(void **state)
{
	struct fix *f = *state;
	struct net_options o = { .tap = NULL, .tap_fd = -1 };
	struct vnet *n = NULL;
	struct guest_mem *mem;
	char err[256], name[IFNAMSIZ];
	int fd;

	NEED_HOST();
	mem = &f->m.mem;
	/* A TAP that does not exist: not created behind the user's back. */
	snprintf(name, sizeof(name), "nosuch%d", (int)getpid());
	o.tap = name;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -ENODEV);
	assert_null(n);
	assert_non_null(strstr(err, name));
	assert_non_null(strstr(err, "no such interface"));
	assert_int_equal(if_nametoindex(name), 0);

	/* The fixture's device holds the TAP: a second one is refused. */
	o.tap = g_tap;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, g_tap));

	/* An interface that is not a TAP. */
	o.tap = "lo";
	assert_true(net_new(mem, &o, &n, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "'lo'"));

	/* Neither or both backends; a multicast MAC. */
	o.tap = NULL;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EINVAL);
	o.tap = g_tap;
	o.tap_fd = 0;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EINVAL);
	o.tap_fd = -1;
	o.mac = (const uint8_t[]){ 0x01, 0, 0x5e, 0, 0, 1 };
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EINVAL);

	/* An fd that is not a TAP, one that is closed, an unattached one. */
	o = (struct net_options){ .tap = NULL, .tap_fd = -1 };
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	o.tap_fd = fd;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "fd"));
	close(fd);
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EBADF);
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	o.tap_fd = fd;
	assert_int_equal(net_new(mem, &o, &n, err, sizeof(err)), -EINVAL);
	close(fd);
	assert_null(n);
}

static void
test_config(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint8_t mac[6];
	unsigned int i;

	NEED_HOST();
	assert_int_equal(d->device_id, VIRTIO_PCI_DEVICE_ID_BASE + 1);
	assert_int_equal(d->class_code >> 8, 0x0200);
	bring_up(f, F_BASE);
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)vh_devcfg_read(d, i, 1);
	assert_memory_equal(mac, guest_mac, 6);
	net_get_mac(f->net, mac);
	assert_memory_equal(mac, guest_mac, 6);
	assert_int_equal(vh_devcfg_read(d, 6, 2), VIRTIO_NET_S_LINK_UP);
	/* What a TAP offers and what the device must not. */
	assert_true((d->device_features & (F_MAC | F_STAT | F_MRG | F_CSUM |
					   F_GCSUM | F_HTSO4 | F_HTSO6 |
					   F_GTSO4 | F_GTSO6 | F_EVT | F_IND)) ==
		    (F_MAC | F_STAT | F_MRG | F_CSUM | F_GCSUM | F_HTSO4 |
		     F_HTSO6 | F_GTSO4 | F_GTSO6 | F_EVT | F_IND));
	assert_false(d->device_features &
		     ((1ULL << VIRTIO_NET_F_CTRL_VQ) | (1ULL << VIRTIO_NET_F_MQ) |
		      (1ULL << VIRTIO_NET_F_HOST_UFO)));
	/* GUEST_TSO4 without GUEST_CSUM breaks the spec's dependencies. */
	assert_int_equal(vh_dev_negotiate(d, F_BASE | F_GTSO4, false),
			 -ENOTSUP);
	assert_int_equal(vh_dev_negotiate(d, F_BASE | F_HTSO4, false),
			 -ENOTSUP);
}

static void
test_derived_mac(void **state)
{
	struct fix *f = *state;
	struct net_options o = { .tap = NULL, .tap_fd = -1 };
	struct vnet *n;
	uint8_t want[6], got[6];
	char err[256];

	NEED_HOST();
	/* Free the TAP from the fixture's device first. */
	fix_detach(f);
	assert_int_equal(vh_machine_init(&f->m, 16 << 20), 0);

	o.tap = g_tap;
	o.mac_seed = "vm-web1/0";
	assert_int_equal(net_new(&f->m.mem, &o, &n, err, sizeof(err)), 0);
	net_mac_from_seed("vm-web1/0", want);
	net_get_mac(n, got);
	assert_memory_equal(got, want, 6);
	net_free(n);
	o.mac_seed = NULL;	/* the TAP's name */
	assert_int_equal(net_new(&f->m.mem, &o, &n, err, sizeof(err)), 0);
	net_mac_from_seed(g_tap, want);
	net_get_mac(n, got);
	assert_memory_equal(got, want, 6);
	net_free(n);
	vh_machine_destroy(&f->m);
}

static void
test_tx(void **state)
{
	struct fix *f = *state;
	struct vh_queue *q = &f->d.q[TXQ];
	static uint8_t frame[HDR + 2000], got[PHDR + 4096];
	struct virtio_net_hdr ph;
	struct net_stats st;
	uint32_t sizes[3] = { 60, 1000, 1514 }, len, i, j;
	uint64_t gpa;
	uint16_t id;
	int head;

	NEED_HOST();
	bring_up(f, F_BASE);
	for (i = 0; i < 3; i++) {
		memset(frame, 0, HDR);
		make_eth(frame + HDR, host_mac, guest_mac, ETH_TEST);
		for (j = 14; j < sizes[i]; j++)
			frame[HDR + j] = pattern(i, j);
		if (i == 0) {
			head = guest_send(f, 0, frame, HDR + sizes[i], true);
		} else {
			/* Header, Ethernet header and data apart (direct),
			 * or the same through an indirect table. */
			struct vh_buf b[3];

			gpa = f->tx_gpa + (uint64_t)i * f->tx_slot;
			memcpy(vh_ptr(&f->m, gpa, HDR + sizes[i]), frame,
			       HDR + sizes[i]);
			b[0] = (struct vh_buf){ gpa, HDR };
			b[1] = (struct vh_buf){ gpa + HDR, 14 };
			b[2] = (struct vh_buf){ gpa + HDR + 14, sizes[i] - 14 };
			head = vh_queue_add(q, b, 3, 0, i == 2);
			vh_queue_kick(&f->d, TXQ);
		}
		assert_true(head >= 0);
		len = (uint32_t)host_recv(f, got, sizeof(got));
		assert_int_equal(len, PHDR + sizes[i]);
		memcpy(&ph, got, sizeof(ph));
		assert_int_equal(ph.flags, 0);
		assert_int_equal(ph.gso_type, VIRTIO_NET_HDR_GSO_NONE);
		assert_memory_equal(got + PHDR, frame + HDR, sizes[i]);
		assert_int_equal(wait_used(f, TXQ, &id, &len), 1);
		assert_int_equal(id, head);
	}
	net_get_stats(f->net, &st);
	assert_int_equal(st.tx_packets, 3);
	assert_int_equal(st.tx_bytes, 60 + 1000 + 1514);
	assert_int_equal(st.tx_errors, 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_rx(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + 2000], got[4096];
	struct virtio_net_hdr_mrg_rxbuf h;
	struct net_stats st;
	uint32_t sizes[3] = { 60, 1000, 1514 }, len, i, j;
	unsigned int nb;

	NEED_HOST();
	bring_up(f, F_BASE);
	post_rx(f, 16, 2048);
	for (i = 0; i < 3; i++) {
		memset(frame, 0, PHDR);
		make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
		for (j = 14; j < sizes[i]; j++)
			frame[PHDR + j] = pattern(i + 7, j);
		host_send(f, frame, PHDR + sizes[i]);
		len = guest_recv(f, got, sizeof(got), &nb);
		assert_int_equal(len, HDR + sizes[i]);
		assert_int_equal(nb, 1);
		memcpy(&h, got, sizeof(h));
		assert_int_equal(h.hdr.flags, 0);
		assert_int_equal(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_NONE);
		assert_int_equal(le16toh(h.num_buffers), 1);
		assert_memory_equal(got + HDR, frame + PHDR, sizes[i]);
	}
	net_get_stats(f->net, &st);
	assert_true(st.rx_packets >= 3);
	assert_int_equal(st.rx_dropped, 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_rx_starved(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + 200], got[4096];
	unsigned int i, nb;
	uint16_t id;
	uint32_t len;

	NEED_HOST();
	bring_up(f, F_BASE);
	/* No buffers yet: the frames wait in the TAP. */
	for (i = 0; i < 4; i++) {
		memset(frame, 0, PHDR);
		make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
		frame[PHDR + 14] = (uint8_t)i;
		host_send(f, frame, PHDR + 200);
	}
	assert_int_equal(vh_queue_get_used(&f->d.q[RXQ], &id, &len), 0);
	/* One buffer at a time: each brings exactly the next frame. */
	for (i = 0; i < 4; i++) {
		post_rx(f, 1, 2048);
		assert_int_equal(guest_recv(f, got, sizeof(got), &nb),
				 HDR + 200);
		assert_int_equal(got[HDR + 14], i);
	}
}

static void
test_csum_offload(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + 2000], got[PHDR + 4096];
	struct virtio_net_hdr ph = { 0 };
	struct virtio_net_hdr_mrg_rxbuf h;
	size_t flen;
	uint32_t len;
	unsigned int nb;
	uint16_t id;

	NEED_HOST();
	/* Host to guest, the guest takes partial checksums: passed
	 * through with NEEDS_CSUM, the frame unchanged. */
	bring_up(f, F_BASE | F_GCSUM | F_CSUM);
	post_rx(f, 16, 2048);
	flen = make_ipv4(frame + PHDR, guest_mac, host_mac, IPPROTO_UDP, 1000,
			 3, 0, true);
	ph.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ph.csum_start = 34;
	ph.csum_offset = 6;
	memcpy(frame, &ph, sizeof(ph));
	host_send(f, frame, PHDR + flen);
	len = guest_recv(f, got, sizeof(got), &nb);
	assert_int_equal(len, HDR + flen);
	memcpy(&h, got, sizeof(h));
	assert_int_equal(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(le16toh(h.hdr.csum_start), 34);
	assert_int_equal(le16toh(h.hdr.csum_offset), 6);
	assert_memory_equal(got + HDR, frame + PHDR, flen);
	assert_false(l4_csum_ok(got + HDR, flen));	/* still partial */

	/* Guest to host with CSUM: the host side sees the partial
	 * checksum and where to complete it. */
	memset(frame, 0, HDR);
	flen = make_ipv4(frame + HDR, host_mac, guest_mac, IPPROTO_UDP, 900, 4,
			 0, true);
	ph.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ph.csum_start = htole16(34);
	ph.csum_offset = htole16(6);
	memcpy(frame, &ph, sizeof(ph));
	assert_true(guest_send(f, 0, frame, (uint32_t)(HDR + flen), true) >= 0);
	len = (uint32_t)host_recv(f, got, sizeof(got));
	assert_int_equal(len, PHDR + flen);
	memcpy(&ph, got, sizeof(ph));
	assert_true(ph.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
	assert_int_equal(ph.csum_start, 34);
	assert_int_equal(ph.csum_offset, 6);
	assert_memory_equal(got + PHDR, frame + HDR, flen);
	assert_int_equal(wait_used(f, TXQ, &id, &len), 1);

	/* A driver without GUEST_CSUM gets the checksum completed (by the
	 * kernel: the TAP's offloads follow the features) and flags 0. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	bring_up(f, F_BASE);
	f->rx_size = 0;
	post_rx(f, 16, 2048);
	flen = make_ipv4(frame + PHDR, guest_mac, host_mac, IPPROTO_UDP, 1000,
			 5, 0, true);
	ph = (struct virtio_net_hdr){ .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
				      .csum_start = 34, .csum_offset = 6 };
	memcpy(frame, &ph, sizeof(ph));
	host_send(f, frame, PHDR + flen);
	len = guest_recv(f, got, sizeof(got), &nb);
	assert_int_equal(len, HDR + flen);
	memcpy(&h, got, sizeof(h));
	assert_int_equal(h.hdr.flags, 0);
	assert_true(l4_csum_ok(got + HDR, flen));
	assert_memory_equal(got + HDR + 42, frame + PHDR + 42, flen - 42);
}

static void
test_mrg_small(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + 2000], got[8192];
	struct virtio_net_hdr_mrg_rxbuf h;
	uint32_t sizes[3] = { 1514, 60, 700 }, len, i, j;
	unsigned int nb;

	NEED_HOST();
	bring_up(f, F_BASE | F_MRG);
	post_rx(f, 128, 256);
	for (i = 0; i < 3; i++) {
		memset(frame, 0, PHDR);
		make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
		for (j = 14; j < sizes[i]; j++)
			frame[PHDR + j] = pattern(i + 11, j);
		host_send(f, frame, PHDR + sizes[i]);
		len = guest_recv(f, got, sizeof(got), &nb);
		assert_int_equal(len, HDR + sizes[i]);
		assert_int_equal(nb, (HDR + sizes[i] + 255) / 256);
		memcpy(&h, got, sizeof(h));
		assert_int_equal(le16toh(h.num_buffers), nb);
		assert_memory_equal(got + HDR, frame + PHDR, sizes[i]);
	}
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* A fast 64-bit hash of a stream, 8 bytes at a time. */
static uint64_t
hash_words(uint64_t h, const uint8_t *p, size_t len)
{
	uint64_t w;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 31;
	}
	return h;
}

static void
fill_payload(uint8_t *p, uint32_t seq)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seq + 1), i;

	for (i = 0; i < TSO_PAYLOAD; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

static uint32_t
tcp_seq_of(const uint8_t *eth)
{
	const uint8_t *th = eth + 34;

	return (uint32_t)th[4] << 24 | (uint32_t)th[5] << 16 |
	       (uint32_t)th[6] << 8 | th[7];
}

/* A TSO frame (header of hlen bytes first) carrying payload seq. */
static size_t
make_tso(uint8_t *buf, size_t hlen, const uint8_t *dst, const uint8_t *src,
	 uint32_t seq)
{
	struct virtio_net_hdr ph = {
		.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		.hdr_len = htole16(TSO_HDRS),
		.gso_size = htole16(1448),
		.csum_start = htole16(34),
		.csum_offset = htole16(16),
	};

	memset(buf, 0, hlen);
	memcpy(buf, &ph, sizeof(ph));
	fill_payload(buf + hlen + TSO_HDRS, seq);
	return make_ipv4(buf + hlen, dst, src, IPPROTO_TCP, TSO_PAYLOAD, 0,
			 seq * TSO_PAYLOAD, false);
}

static void
test_stream_tx(void **state)
{
	struct fix *f = *state;
	static uint8_t got[PHDR + TSO_HDRS + TSO_PAYLOAD + 64];
	struct vh_queue *q = &f->d.q[TXQ];
	const uint32_t nframes = (STREAM_BYTES + TSO_PAYLOAD - 1) / TSO_PAYLOAD;
	uint32_t sent = 0, done = 0, recvd = 0, len, flen;
	uint64_t htx = 1, hrx = 1;
	struct virtio_net_hdr ph;
	struct pollfd p[2];
	struct net_stats st;
	uint8_t *slot;
	uint16_t id, old;
	ssize_t n;
	bool posted;

	NEED_HOST();
	bring_up(f, F_BASE | F_CSUM | F_HTSO4);
	p[0] = (struct pollfd){ .fd = f->sock, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = virtio_pci_vector_fd(f->vp, VEC_TX),
				.events = POLLIN };
	flen = HDR + TSO_HDRS + TSO_PAYLOAD;
	while (recvd < nframes) {
		while (vh_queue_get_used(q, &id, &len))
			done++;
		posted = false;
		old = q->avail_idx;
		/* A slot is free once the device gave its chain back; the
		 * window keeps the TAP's and the socket's queues short. */
		while (sent < nframes && sent - done < WINDOW &&
		       sent - recvd < WINDOW) {
			slot = vh_ptr(&f->m, f->tx_gpa +
				      (uint64_t)(sent % WINDOW) * f->tx_slot,
				      flen);
			assert_int_equal(make_tso(slot, HDR, host_mac, guest_mac,
						  sent), TSO_HDRS + TSO_PAYLOAD);
			htx = hash_words(htx, slot + HDR + TSO_HDRS,
					 TSO_PAYLOAD);
			assert_true(vh_queue_add(q, &(struct vh_buf){
				f->tx_gpa + (uint64_t)(sent % WINDOW) *
				f->tx_slot, flen }, 1, 0, false) >= 0);
			sent++;
			posted = true;
		}
		if (posted && vh_queue_kick_needed(q, old))
			vh_queue_kick(&f->d, TXQ);
		if (poll(p, 2, TMO) <= 0)
			fail_msg("stream to the host: stuck at frame %u of %u "
				 "(sent %u, completed %u)", recvd, nframes,
				 sent, done);
		if (p[1].revents & POLLIN)
			(void)vh_wait_irq(&f->d, VEC_TX, 0);
		if (!(p[0].revents & POLLIN))
			continue;
		for (;;) {
			n = recv(f->sock, got, sizeof(got), MSG_DONTWAIT);
			if (n < 0)
				break;
			if (n < PHDR + 14 ||
			    memcmp(got + PHDR + 6, guest_mac, 6) != 0)
				continue;
			assert_int_equal(n, PHDR + TSO_HDRS + TSO_PAYLOAD);
			memcpy(&ph, got, sizeof(ph));
			assert_int_equal(ph.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
			assert_int_equal(ph.gso_size, 1448);
			assert_true(ph.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM);
			if (tcp_seq_of(got + PHDR) != recvd * TSO_PAYLOAD)
				fail_msg("frame %u: sequence %u, expected %u",
					 recvd, tcp_seq_of(got + PHDR),
					 recvd * TSO_PAYLOAD);
			hrx = hash_words(hrx, got + PHDR + TSO_HDRS,
					 TSO_PAYLOAD);
			recvd++;
		}
	}
	assert_true(htx == hrx);
	net_get_stats(f->net, &st);
	assert_int_equal(st.tx_packets, nframes);
	assert_int_equal(st.tx_bytes, (uint64_t)nframes * (flen - HDR));
	assert_int_equal(st.tx_errors, 0);
}

static void
test_stream_rx(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + TSO_HDRS + TSO_PAYLOAD];
	static uint8_t got[HDR + TSO_HDRS + TSO_PAYLOAD + 8192];
	const uint32_t nframes = (STREAM_BYTES + TSO_PAYLOAD - 1) / TSO_PAYLOAD;
	struct virtio_net_hdr_mrg_rxbuf h;
	uint32_t injected = 0, recvd = 0, len;
	uint64_t htx = 1, hrx = 1;
	struct net_stats st;
	unsigned int nb;
	size_t flen;

	NEED_HOST();
	bring_up(f, F_BASE | F_MRG | F_CSUM | F_GCSUM | F_GTSO4);
	post_rx(f, QSIZE, 4096);
	while (recvd < nframes) {
		/* 8 frames of 16 buffers in flight: half the ring. */
		while (injected < nframes && injected - recvd < 8) {
			flen = make_tso(frame, PHDR, guest_mac, host_mac,
					injected);
			htx = hash_words(htx, frame + PHDR + TSO_HDRS,
					 TSO_PAYLOAD);
			host_send(f, frame, PHDR + flen);
			injected++;
		}
		len = guest_recv(f, got, sizeof(got), &nb);
		if (len == 0)
			fail_msg("stream to the guest: stuck at frame %u of %u",
				 recvd, nframes);
		assert_int_equal(len, HDR + TSO_HDRS + TSO_PAYLOAD);
		memcpy(&h, got, sizeof(h));
		assert_int_equal(h.hdr.gso_type, VIRTIO_NET_HDR_GSO_TCPV4);
		assert_int_equal(le16toh(h.hdr.gso_size), 1448);
		assert_int_equal(h.hdr.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
		assert_int_equal(nb, (len + 4095) / 4096);
		if (tcp_seq_of(got + HDR) != recvd * TSO_PAYLOAD)
			fail_msg("frame %u: sequence %u, expected %u", recvd,
				 tcp_seq_of(got + HDR), recvd * TSO_PAYLOAD);
		hrx = hash_words(hrx, got + HDR + TSO_HDRS, TSO_PAYLOAD);
		recvd++;
	}
	assert_true(htx == hrx);
	net_get_stats(f->net, &st);
	assert_int_equal(st.rx_dropped, 0);
	assert_true(st.rx_bytes >= (uint64_t)nframes * (TSO_HDRS + TSO_PAYLOAD));
}

/* CPU time of the device's I/O thread, in ns. */
static uint64_t
io_thread_ns(struct fix *f)
{
	struct timespec ts;
	clockid_t c;

	assert_int_equal(pthread_getcpuclockid(net_virtio(f->net)->thread,
					       &c), 0);
	assert_int_equal(clock_gettime(c, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Frames paced so that the device finds the TAP empty between them:
 * some microseconds apart (the I/O thread may still be awake, or just
 * going to sleep), some far apart (it sleeps on the TAP and is woken),
 * each a 64 KiB frame over 16 mergeable buffers. All arrive whole, in
 * order, with num_buffers right. Then, with the TAP idle, the I/O thread
 * must be asleep: a loop that kept looking would burn its CPU.
 */
static void
test_rx_paced(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + TSO_HDRS + TSO_PAYLOAD];
	static uint8_t got[HDR + TSO_HDRS + TSO_PAYLOAD + 8192];
	static const unsigned int gap_us[] = { 0, 5, 20, 40, 2000, 0, 10,
					       60000, 3, 30 };
	const unsigned int nframes = 60;
	struct virtio_net_hdr_mrg_rxbuf h;
	unsigned int i, sent = 0, recvd = 0, nb;
	struct net_stats st;
	uint64_t c0, c1;
	size_t flen;
	uint32_t len;

	NEED_HOST();
	bring_up(f, F_BASE | F_MRG | F_CSUM | F_GCSUM | F_GTSO4);
	post_rx(f, QSIZE, 4096);
	while (recvd < nframes) {
		/* Up to 4 frames at a time, paced; then take them. */
		for (i = 0; i < 4 && sent < nframes; i++, sent++) {
			if (gap_us[sent % 10])
				usleep(gap_us[sent % 10]);
			flen = make_tso(frame, PHDR, guest_mac, host_mac,
					sent);
			host_send(f, frame, PHDR + flen);
		}
		while (recvd < sent) {
			len = guest_recv(f, got, sizeof(got), &nb);
			if (len == 0)
				fail_msg("paced frames: stuck at %u of %u",
					 recvd, nframes);
			assert_int_equal(len, HDR + TSO_HDRS + TSO_PAYLOAD);
			assert_int_equal(nb, (len + 4095) / 4096);
			memcpy(&h, got, sizeof(h));
			assert_int_equal(le16toh(h.num_buffers), nb);
			assert_int_equal(h.hdr.gso_type,
					 VIRTIO_NET_HDR_GSO_TCPV4);
			assert_int_equal(tcp_seq_of(got + HDR),
					 recvd * TSO_PAYLOAD);
			flen = make_tso(frame, PHDR, guest_mac, host_mac,
					recvd);
			assert_memory_equal(got + HDR + TSO_HDRS,
					    frame + PHDR + TSO_HDRS,
					    TSO_PAYLOAD);
			recvd++;
		}
	}
	net_get_stats(f->net, &st);
	assert_int_equal(st.rx_dropped, 0);
	assert_int_equal(st.rx_packets, nframes);
	/* Idle: the I/O thread sleeps on the TAP. */
	usleep(20000);
	c0 = io_thread_ns(f);
	usleep(200000);
	c1 = io_thread_ns(f);
	if (c1 - c0 > 20000000u)
		fail_msg("an idle TAP cost the I/O thread %llu us in 200 ms",
			 (unsigned long long)(c1 - c0) / 1000);
}

static void
expect_needs_reset(struct fix *f, const char *what)
{
	if (vh_wait_irq(&f->d, VEC_CFG, TMO) == 0 ||
	    !(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET))
		fail_msg("%s: no NEEDS_RESET (status 0x%x)", what,
			 vh_dev_status(&f->d));
}

/* After a reset the device works again: one frame each way. */
static void
expect_works(struct fix *f)
{
	static uint8_t frame[HDR + 200], got[PHDR + 4096];
	uint32_t len;
	uint16_t id;
	unsigned int nb;

	memset(frame, 0, sizeof(frame));
	make_eth(frame + HDR, host_mac, guest_mac, ETH_TEST);
	assert_true(guest_send(f, 0, frame, HDR + 100, true) >= 0);
	assert_int_equal(host_recv(f, got, sizeof(got)), PHDR + 100);
	assert_int_equal(wait_used(f, TXQ, &id, &len), 1);
	post_rx(f, 4, 2048);
	memset(frame, 0, PHDR);
	make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
	host_send(f, frame, PHDR + 100);
	assert_int_equal(guest_recv(f, got, sizeof(got), &nb), HDR + 100);
}

static void
test_hostile(void **state)
{
	struct fix *f = *state;
	struct vh_queue *q;
	uint64_t gpa;
	struct vh_buf b[2];

	NEED_HOST();
	/* A device-readable buffer in the receiveq. */
	bring_up(f, F_BASE);
	gpa = vh_alloc(&f->m, 4096, 64);
	assert_true(gpa != 0);
	b[0] = (struct vh_buf){ gpa, 2048 };
	assert_true(vh_queue_add(&f->d.q[RXQ], b, 1, 0, false) >= 0);
	vh_queue_kick(&f->d, RXQ);
	expect_needs_reset(f, "readable receive buffer");

	/* A receive chain shorter than the header. */
	bring_up(f, F_BASE);
	b[0] = (struct vh_buf){ gpa, 8 };
	assert_true(vh_queue_add(&f->d.q[RXQ], b, 0, 1, false) >= 0);
	vh_queue_kick(&f->d, RXQ);
	expect_needs_reset(f, "8-byte receive chain");

	/* With MRG_RXBUF, a buffer shorter than the header. */
	bring_up(f, F_BASE | F_MRG);
	b[0] = (struct vh_buf){ gpa, 1024 };	/* less than a frame */
	b[1] = (struct vh_buf){ gpa + 2048, 4 };
	assert_true(vh_queue_add(&f->d.q[RXQ], &b[0], 0, 1, false) >= 0);
	assert_true(vh_queue_add(&f->d.q[RXQ], &b[1], 0, 1, false) >= 0);
	vh_queue_kick(&f->d, RXQ);
	expect_needs_reset(f, "4-byte mergeable buffer");

	/* A device-writable buffer in the transmitq. */
	bring_up(f, F_BASE);
	memset(vh_ptr(&f->m, gpa, HDR), 0, HDR);
	b[0] = (struct vh_buf){ gpa, HDR + 60 };
	b[1] = (struct vh_buf){ gpa + 2048, 64 };
	assert_true(vh_queue_add(&f->d.q[TXQ], b, 1, 1, false) >= 0);
	vh_queue_kick(&f->d, TXQ);
	expect_needs_reset(f, "writable transmit buffer");

	/* A transmit chain shorter than the header. */
	bring_up(f, F_BASE);
	b[0] = (struct vh_buf){ gpa, 6 };
	assert_true(vh_queue_add(&f->d.q[TXQ], b, 1, 0, false) >= 0);
	vh_queue_kick(&f->d, TXQ);
	expect_needs_reset(f, "6-byte transmit chain");

	/* A transmit buffer outside guest RAM (the core's checks). */
	bring_up(f, F_BASE);
	q = &f->d.q[TXQ];
	vh_desc_set(q, 0, RAM - 100, 4096, 0, 0);
	vh_avail_push(q, 0);
	vh_queue_kick(&f->d, TXQ);
	expect_needs_reset(f, "transmit buffer outside RAM");

	/* A frame with a GSO header the kernel refuses is dropped and
	 * counted, as a NIC would; the device carries on. */
	bring_up(f, F_BASE | F_CSUM | F_HTSO4);
	{
		static uint8_t frame[HDR + 200];
		struct virtio_net_hdr ph = {
			.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
			.gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
			.gso_size = 0,		/* invalid for GSO */
			.csum_start = 5000, .csum_offset = 16,
		};
		struct net_stats st;
		uint16_t id;
		uint32_t len;

		memset(frame, 0, sizeof(frame));
		memcpy(frame, &ph, sizeof(ph));
		make_eth(frame + HDR, host_mac, guest_mac, ETH_TEST);
		assert_true(guest_send(f, 0, frame, HDR + 100, true) >= 0);
		assert_int_equal(wait_used(f, TXQ, &id, &len), 1);
		net_get_stats(f->net, &st);
		assert_int_equal(st.tx_errors, 1);
		assert_false(vh_dev_status(&f->d) &
			     VIRTIO_CONFIG_S_NEEDS_RESET);
	}
	expect_works(f);
}

static void
test_fd_backend(void **state)
{
	struct fix *f = *state;
	struct net_options o = { .tap = NULL, .tap_fd = -1 };
	struct guest_mem scratch;
	struct vnet *n = NULL;
	struct ifreq ifr;
	char err[256];
	int fd;

	NEED_HOST();
	fix_detach(f);
	/* Without IFF_VNET_HDR: refused, with the fd and TAP named. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", g_tap);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	assert_int_equal(guest_mem_init(&scratch, 1 << 20), 0);
	o.tap_fd = fd;
	assert_int_equal(net_new(&scratch, &o, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, g_tap));
	assert_non_null(strstr(err, "IFF_VNET_HDR"));
	guest_mem_destroy(&scratch);
	close(fd);

	/* As vmm-run gets it from the daemon: attached, then handed over. */
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	o.tap_fd = fd;
	o.mac = guest_mac;
	fix_attach(f, &o);
	close(fd);	/* the device has its own */
	bring_up(f, F_BASE);
	expect_works(f);
}

/* --- Receive bookkeeping -------------------------------------------- */

/* A receive chain of up to 64 pieces, by head. */
struct rx_chain {
	unsigned int n;
	struct vh_buf b[VH_INDIRECT_MAX];
	bool indirect;
};

struct rx_set {
	struct rx_chain chain[QSIZE];	/* by slot */
	int slot_of_head[QSIZE];
	unsigned int nr;
};

static void
set_post(struct fix *f, struct rx_set *rs, unsigned int slot)
{
	struct rx_chain *c = &rs->chain[slot];
	int head = vh_queue_add(&f->d.q[RXQ], c->b, 0, c->n, c->indirect);

	assert_true(head >= 0);
	rs->slot_of_head[head] = (int)slot;
}

/* Copy len bytes of a chain's pieces into out. */
static void
set_copy(struct fix *f, const struct rx_chain *c, uint8_t *out, uint32_t len)
{
	unsigned int i;
	uint32_t k;

	for (i = 0; i < c->n && len; i++) {
		k = len < c->b[i].len ? len : c->b[i].len;
		memcpy(out, vh_ptr(&f->m, c->b[i].gpa, k), k);
		out += k;
		len -= k;
	}
}

/* One frame from the set's chains (reposted); its length, 0: none. */
static uint32_t
set_recv(struct fix *f, struct rx_set *rs, uint8_t *out, size_t cap,
	 int timeout_ms)
{
	struct virtio_net_hdr_mrg_rxbuf h;
	uint32_t len, total = 0;
	uint16_t id, nb = 1, i;
	int slot;

	for (i = 0; i < nb; i++) {
		for (;;) {
			if (vh_queue_get_used(&f->d.q[RXQ], &id, &len))
				break;
			if (vh_wait_irq(&f->d, VEC_RX, timeout_ms))
				continue;
			if (vh_queue_get_used(&f->d.q[RXQ], &id, &len))
				break;
			if (i == 0)
				return 0;
			fail_msg("frame of %u buffers: %u came", nb, i);
		}
		slot = rs->slot_of_head[id];
		assert_true(total + len <= cap);
		set_copy(f, &rs->chain[slot], out + total, len);
		if (i == 0) {
			assert_true(len >= HDR);
			memcpy(&h, out, sizeof(h));
			nb = le16toh(h.num_buffers);
			assert_true(nb >= 1);
		}
		total += len;
		set_post(f, rs, (unsigned int)slot);
	}
	if (vh_queue_kick_needed(&f->d.q[RXQ], (uint16_t)(f->d.q[RXQ].avail_idx -
							   nb)))
		vh_queue_kick(&f->d, RXQ);
	return total;
}

static void
test_mrg_irregular(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + TSO_HDRS + TSO_PAYLOAD];
	static uint8_t got[HDR + TSO_HDRS + TSO_PAYLOAD + 4096];
	static struct rx_set rs;
	uint64_t pool, at;
	uint32_t len, i, j;
	size_t flen;

	NEED_HOST();
	bring_up(f, F_BASE | F_MRG | F_CSUM | F_GCSUM | F_GTSO4);
	/* 96 chains carved from a pool: groups of four side by side (their
	 * reads merge), a gap after each group; every third a chain of two
	 * pieces apart. */
	pool = vh_alloc(&f->m, 96 * 2600, 64);
	assert_true(pool != 0);
	memset(&rs, 0, sizeof(rs));
	at = pool;
	for (i = 0; i < 96; i++) {
		struct rx_chain *c = &rs.chain[i];

		if (i % 3 == 2) {
			c->n = 2;
			c->b[0] = (struct vh_buf){ at, 300 };
			c->b[1] = (struct vh_buf){ at + 400, 1700 };
			at += 2100;
		} else {
			c->n = 1;
			c->b[0] = (struct vh_buf){ at, 2048 };
			at += 2048;
		}
		if (i % 4 == 3)
			at += 256;
		set_post(f, &rs, i);
	}
	vh_queue_kick(&f->d, RXQ);
	/* A mix of frames, small and TSO, each checked byte for byte. */
	for (i = 0; i < 40; i++) {
		memset(frame, 0, PHDR);
		if (i % 5 == 4) {
			flen = make_tso(frame, PHDR, guest_mac, host_mac, i);
		} else {
			flen = (size_t[]){ 60, 1514, 700, 1200 }[i % 4];
			make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
			for (j = 14; j < flen; j++)
				frame[PHDR + j] = pattern(i + 30, j);
		}
		host_send(f, frame, PHDR + flen);
		len = set_recv(f, &rs, got, sizeof(got), TMO);
		assert_int_equal(len, HDR + flen);
		assert_memory_equal(got + HDR, frame + PHDR, flen);
	}
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_mrg_tiny_pieces(void **state)
{
	struct fix *f = *state;
	static uint8_t frame[PHDR + TSO_HDRS + TSO_PAYLOAD];
	static uint8_t got[HDR + 4096];
	static struct rx_set rs;
	struct net_stats st;
	uint64_t pool;
	uint32_t i, j;
	size_t flen;

	NEED_HOST();
	bring_up(f, F_BASE | F_MRG | F_CSUM | F_GCSUM | F_GTSO4);
	/* 128 chains of 64 pieces of 16 bytes, none next to another: the
	 * device cannot hold enough of them for a 64 KiB frame. */
	pool = vh_alloc(&f->m, 128 * 64 * 32, 64);
	assert_true(pool != 0);
	memset(&rs, 0, sizeof(rs));
	for (i = 0; i < 128; i++) {
		struct rx_chain *c = &rs.chain[i];

		c->n = VH_INDIRECT_MAX;
		c->indirect = true;
		for (j = 0; j < c->n; j++)
			c->b[j] = (struct vh_buf){
				pool + (i * VH_INDIRECT_MAX + j) * 32ULL, 16 };
		set_post(f, &rs, i);
	}
	vh_queue_kick(&f->d, RXQ);
	for (i = 0; i < 3; i++) {
		memset(frame, 0, PHDR);
		if (i == 1) {
			/* Too big for what fits: the kernel drops it. */
			flen = make_tso(frame, PHDR, guest_mac, host_mac, 1);
			host_send(f, frame, PHDR + flen);
			assert_int_equal(set_recv(f, &rs, got, sizeof(got),
						  300), 0);
			continue;
		}
		flen = 1000;
		make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
		for (j = 14; j < flen; j++)
			frame[PHDR + j] = pattern(i + 40, j);
		host_send(f, frame, PHDR + flen);
		assert_int_equal(set_recv(f, &rs, got, sizeof(got), TMO),
				 HDR + flen);
		assert_memory_equal(got + HDR, frame + PHDR, flen);
	}
	net_get_stats(f->net, &st);
	assert_int_equal(st.rx_dropped, 1);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}


/* --- Limits ----------------------------------------------------------- */

#define LIM_SLOTS	256		/* transmit slots of LIM_FRAME */
#define LIM_FRAME	1514		/* Ethernet frame, no FCS */
#define LIM_BPS		6250000ULL	/* 50 Mbit/s */
#define LIM_BURST	(64ULL << 10)	/* bytes; ~10 ms at LIM_BPS */
#define NSEC		1000000000ULL

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

/*
 * What arrived at one end: the first frame starts the clock, and bytes
 * and frames count those after it, up to the last one seen.
 */
struct meter {
	uint64_t first_ns, last_ns;	/* arrival times */
	uint64_t frames, bytes;
	uint64_t started_ns;	/* CLOCK_MONOTONIC when the first came */
	bool started;
};

static void
meter_add(struct meter *mt, uint64_t now, uint64_t bytes)
{
	if (!mt->started) {
		mt->started = true;
		mt->started_ns = mono_ns();
		mt->first_ns = mt->last_ns = now;
		return;
	}
	mt->frames++;
	mt->bytes += bytes;
	mt->last_ns = now;
}

/*
 * The steady rate: with the bucket full at the start, burst units go at
 * once (the first frame among them), then rate per second; so what came
 * after the first frame is (burst - first) + rate * time.
 */
static double
meter_rate(const struct meter *mt, bool bytes, uint64_t burst, uint64_t first)
{
	double t = (double)(mt->last_ns - mt->first_ns) / 1e9;
	double n = (double)(bytes ? mt->bytes : mt->frames);

	if (burst)
		n -= (double)burst - (double)first;
	return t > 0 ? n / t : 0;
}

static void
expect_rate(const char *what, double got, double want)
{
	fprintf(stderr, "  %s: %.0f/s measured, %.0f/s limit (%+.2f%%)\n",
		what, got, want, (got - want) * 100 / want);
	if (got < want * 0.95 || got > want * 1.05)
		fail_msg("%s: %.0f/s, expected %.0f/s within 5%%", what, got,
			 want);
}

/* Guest transmit slots of LIM_SLOTS frames of len bytes (header first),
 * all the same frame. */
static uint64_t
lim_tx_slots(struct fix *f, uint32_t len)
{
	uint64_t gpa = vh_alloc(&f->m, (uint64_t)LIM_SLOTS * (HDR + LIM_FRAME),
				64);
	uint8_t *p;
	uint32_t i, j;

	assert_true(gpa != 0);
	for (i = 0; i < LIM_SLOTS; i++) {
		p = vh_ptr(&f->m, gpa + (uint64_t)i * (HDR + LIM_FRAME),
			   HDR + len);
		memset(p, 0, HDR);
		make_eth(p + HDR, host_mac, guest_mac, ETH_TEST);
		for (j = 14; j < len; j++)
			p[HDR + j] = pattern(i, j);
	}
	return gpa;
}

/*
 * Keep the transmitq full of frames of len bytes and count those from
 * the guest on the packet socket until dur_ns after the first (or, with
 * a change given, until change_ns after the first: then change() is
 * called and the meter mt2 starts over skip_ns later).
 */
struct tx_flow {
	uint64_t gpa;
	uint32_t len;
	uint32_t sent, done;
};

static void
lim_tx_flow(struct fix *f, struct tx_flow *fl, struct meter *mt,
	    uint64_t dur_ns)
{
	struct vh_queue *q = &f->d.q[TXQ];
	static uint8_t got[PHDR + 2048];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct timespec))];
	} ctl;
	struct iovec iov = { got, sizeof(got) };
	struct sockaddr_ll sll;
	struct msghdr msg;
	struct cmsghdr *c;
	struct timespec ts;
	struct pollfd p[2];
	uint64_t now, start = mono_ns(), arrived;
	uint16_t id, old;
	uint32_t len;
	ssize_t n;
	bool posted;

	p[0] = (struct pollfd){ .fd = f->sock, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = virtio_pci_vector_fd(f->vp, VEC_TX),
				.events = POLLIN };
	for (;;) {
		now = mono_ns();
		if (mt->started && now - mt->started_ns >= dur_ns)
			break;
		if (!mt->started && now - start > 2 * NSEC)
			fail_msg("limited transmit: nothing in 2 s");
		while (vh_queue_get_used(q, &id, &len))
			fl->done++;
		posted = false;
		old = q->avail_idx;
		/* Chains complete in order: slot sent % LIM_SLOTS is free. */
		while (fl->sent - fl->done < LIM_SLOTS - 1) {
			assert_true(vh_queue_add(q, &(struct vh_buf){
				fl->gpa + (uint64_t)(fl->sent % LIM_SLOTS) *
				(HDR + LIM_FRAME), HDR + fl->len }, 1, 0,
				false) >= 0);
			fl->sent++;
			posted = true;
		}
		if (posted && vh_queue_kick_needed(q, old))
			vh_queue_kick(&f->d, TXQ);
		if (poll(p, 2, 2) < 0)
			fail_msg("poll: %s", strerror(errno));
		if (p[1].revents & POLLIN)
			(void)vh_wait_irq(&f->d, VEC_TX, 0);
		for (;;) {
			msg = (struct msghdr){
				.msg_name = &sll, .msg_namelen = sizeof(sll),
				.msg_iov = &iov, .msg_iovlen = 1,
				.msg_control = ctl.buf,
				.msg_controllen = sizeof(ctl.buf),
			};
			n = recvmsg(f->sock, &msg, MSG_DONTWAIT);
			if (n < 0)
				break;
			if (sll.sll_pkttype == PACKET_OUTGOING ||
			    n < PHDR + 14 ||
			    memcmp(got + PHDR + 6, guest_mac, 6) != 0)
				continue;
			assert_int_equal(n, PHDR + fl->len);
			/* The kernel's arrival time (CLOCK_REALTIME), not
			 * when this thread got round to it. */
			arrived = 0;
			for (c = CMSG_FIRSTHDR(&msg); c;
			     c = CMSG_NXTHDR(&msg, c)) {
				if (c->cmsg_level != SOL_SOCKET ||
				    c->cmsg_type != SCM_TIMESTAMPNS)
					continue;
				memcpy(&ts, CMSG_DATA(c), sizeof(ts));
				arrived = (uint64_t)ts.tv_sec * NSEC +
					  (uint64_t)ts.tv_nsec;
			}
			if (!arrived)
				fail_msg("no SCM_TIMESTAMPNS on a frame");
			meter_add(mt, arrived, (uint64_t)(n - PHDR));
		}
	}
}

/* Bring up for transmit only, with the slots. */
static void
lim_tx_start(struct fix *f, struct tx_flow *fl, uint32_t len)
{
	int one = 1;

	bring_up(f, F_BASE);
	assert_int_equal(setsockopt(f->sock, SOL_SOCKET, SO_TIMESTAMPNS, &one,
				    sizeof(one)), 0);
	memset(fl, 0, sizeof(*fl));
	fl->len = len;
	fl->gpa = lim_tx_slots(f, len);
}

/* Bytes: 50 Mbit/s of 1514-byte frames for 5 s, limits given at
 * net_new(). */
static void
test_limit_tx_bytes(void **state)
{
	struct fix *f = *state;
	struct net_options o = {
		.tap = g_tap, .tap_fd = -1, .mac = guest_mac,
		.tx_limits = { .bytes_per_sec = LIM_BPS,
			       .bytes_burst = LIM_BURST },
	};
	struct ratelimit_limits rx, tx;
	struct net_stats st;
	struct meter mt = { 0 };
	struct tx_flow fl;

	NEED_HOST();
	fix_detach(f);
	fix_attach(f, &o);
	net_get_limits(f->net, &rx, &tx);
	assert_int_equal(tx.bytes_per_sec, LIM_BPS);
	assert_int_equal(tx.bytes_burst, LIM_BURST);
	assert_int_equal(rx.bytes_per_sec, 0);
	assert_int_equal(rx.ops_per_sec, 0);
	lim_tx_start(f, &fl, LIM_FRAME);
	lim_tx_flow(f, &fl, &mt, 5 * NSEC);
	expect_rate("tx bytes at the TAP's peer, 5 s",
		    meter_rate(&mt, true, LIM_BURST, LIM_FRAME),
		    (double)LIM_BPS);
	net_get_stats(f->net, &st);
	fprintf(stderr, "  tx throttled: %llu times, %.2f s of 5 s\n",
		(unsigned long long)st.tx_throttled,
		(double)st.tx_throttled_ns / NSEC);
	/* The device waited on the limiter most of the time. Not all of it:
	 * on a loaded host this harness, the producer, is late at times and
	 * the device then waits for frames instead. */
	if (st.tx_throttled < 1000 || st.tx_throttled_ns < 3 * NSEC)
		fail_msg("tx throttled %llu times for %.2f s: the limiter "
			 "held back too little", (unsigned long long)
			 st.tx_throttled, (double)st.tx_throttled_ns / NSEC);
	assert_int_equal(st.tx_errors, 0);
	assert_int_equal(st.rx_throttled, 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* Packets: 2000/s of 60-byte frames for 4 s, then 5000/s for 2 s, set
 * while the frames flow; then lifted. */
static void
test_limit_tx_packets(void **state)
{
	struct fix *f = *state;
	struct ratelimit_limits l = { .ops_per_sec = 2000, .ops_burst = 20 };
	struct ratelimit_limits bad = { .bytes_burst = 5 }, tx;
	struct meter mt = { 0 }, mt2 = { 0 }, mt3 = { 0 };
	struct net_stats st;
	struct tx_flow fl;
	uint64_t t;

	NEED_HOST();
	/* A burst without its rate, refused, nothing changed. */
	assert_int_equal(net_set_limits(f->net, NULL, &bad), -EINVAL);
	assert_int_equal(net_set_limits(f->net, &l, &bad), -EINVAL);
	net_get_limits(f->net, &tx, NULL);
	assert_int_equal(tx.ops_per_sec, 0);
	assert_int_equal(net_set_limits(f->net, NULL, &l), 0);
	net_get_limits(f->net, NULL, &tx);
	assert_int_equal(tx.ops_per_sec, 2000);
	lim_tx_start(f, &fl, 60);
	lim_tx_flow(f, &fl, &mt, 4 * NSEC);
	expect_rate("tx packets, 4 s", meter_rate(&mt, false, 20, 1), 2000);

	/* Faster, while the transmitq is full: the bucket is nearly
	 * empty, so the new rate holds from the change on. */
	l.ops_per_sec = 5000;
	l.ops_burst = 50;
	assert_int_equal(net_set_limits(f->net, NULL, &l), 0);
	t = mono_ns();
	lim_tx_flow(f, &fl, &mt3, NSEC / 10);	/* settle */
	lim_tx_flow(f, &fl, &mt2, 2 * NSEC);
	assert_true(mt3.started_ns - t < NSEC / 10);
	expect_rate("tx packets after the change, 2 s",
		    meter_rate(&mt2, false, 0, 0), 5000);

	/* Lifted: the chains go as fast as the host takes them. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(net_set_limits(f->net, NULL, &l), 0);
	memset(&mt2, 0, sizeof(mt2));
	lim_tx_flow(f, &fl, &mt2, NSEC / 2);
	fprintf(stderr, "  tx packets unlimited: %.0f/s\n",
		meter_rate(&mt2, false, 0, 0));
	assert_true(meter_rate(&mt2, false, 0, 0) > 10000);
	net_get_stats(f->net, &st);
	assert_true(st.tx_throttled > 0);
	assert_int_equal(st.tx_errors, 0);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/*
 * The host writes frames of len bytes into the TAP at twice rate (the
 * TAP's queue fills, and the kernel drops the rest), the guest keeps its
 * receive buffers posted and counts what reaches them for dur_ns after
 * the first.
 */
static void
lim_rx_flow(struct fix *f, uint32_t len, double rate, struct meter *mt,
	    uint64_t dur_ns)
{
	struct vh_queue *q = &f->d.q[RXQ];
	static uint8_t frame[PHDR + 2048];
	struct pollfd p = { .fd = virtio_pci_vector_fd(f->vp, VEC_RX),
			    .events = POLLIN };
	uint64_t now, start = mono_ns(), injected = 0, want;
	unsigned int k, burst;
	uint8_t *b;
	uint16_t id;
	uint32_t ulen;
	ssize_t n;

	memset(frame, 0, PHDR);
	make_eth(frame + PHDR, guest_mac, host_mac, ETH_TEST);
	memset(frame + PHDR + 14, 0x5a, len - 14);
	for (;;) {
		now = mono_ns();
		if (mt->started && now - mt->started_ns >= dur_ns)
			break;
		if (!mt->started && now - start > 2 * NSEC)
			fail_msg("limited receive: nothing in 2 s");
		/* Twice the rate, at most 64 frames a turn. */
		want = (uint64_t)(2 * rate * (double)(now - start) / 1e9) + 1;
		for (burst = 0; injected < want && burst < 64; burst++) {
			n = send(f->sock, frame, PHDR + len, MSG_DONTWAIT);
			/* A full TAP queue may be told as such. */
			if (n < 0 && errno != ENOBUFS && errno != EAGAIN)
				fail_msg("send: %s", strerror(errno));
			injected++;
		}
		if (poll(&p, 1, 1) < 0)
			fail_msg("poll: %s", strerror(errno));
		if (p.revents & POLLIN)
			(void)vh_wait_irq(&f->d, VEC_RX, 0);
		k = 0;
		while (vh_queue_get_used(q, &id, &ulen)) {
			assert_true(id < QSIZE && f->rx_gpa[id]);
			b = vh_ptr(&f->m, f->rx_gpa[id], ulen);
			k++;
			if (ulen < HDR + 14 || memcmp(b + HDR + 6, host_mac, 6))
				continue;
			/* Frames of an earlier flow may still be queued. */
			if (ulen != HDR + len && ulen != HDR + LIM_FRAME)
				fail_msg("a frame of %u bytes reached the "
					 "guest", ulen - HDR);
			meter_add(mt, mono_ns(), ulen - HDR);
		}
		if (k)
			post_rx(f, k, 2048);
	}
}

/* Bytes (50 Mbit/s, 5 s), then packets (2000/s, 4 s), guest-bound. */
static void
test_limit_rx(void **state)
{
	struct fix *f = *state;
	struct ratelimit_limits l = { .bytes_per_sec = LIM_BPS,
				      .bytes_burst = LIM_BURST };
	struct meter mt = { 0 }, mt2 = { 0 };
	struct net_stats st, st2;

	NEED_HOST();
	bring_up(f, F_BASE);
	assert_int_equal(net_set_limits(f->net, &l, NULL), 0);
	post_rx(f, QSIZE, 2048);
	lim_rx_flow(f, LIM_FRAME, (double)LIM_BPS / LIM_FRAME, &mt, 5 * NSEC);
	expect_rate("rx bytes in the guest's buffers, 5 s",
		    meter_rate(&mt, true, LIM_BURST, LIM_FRAME),
		    (double)LIM_BPS);
	net_get_stats(f->net, &st);
	assert_true(st.rx_throttled > 1000);
	assert_true(st.rx_throttled_ns > 4 * NSEC);
	assert_int_equal(st.tx_throttled, 0);
	assert_int_equal(st.rx_dropped, 0);

	l = (struct ratelimit_limits){ .ops_per_sec = 2000, .ops_burst = 20 };
	assert_int_equal(net_set_limits(f->net, &l, NULL), 0);
	/* What the TAP queued meanwhile drains at the new rate first. */
	lim_rx_flow(f, 60, 2000, &mt2, 4 * NSEC);
	/* The packet bucket, unlimited before, starts full. */
	expect_rate("rx packets, 4 s", meter_rate(&mt2, false, 20, 1), 2000);
	net_get_stats(f->net, &st2);
	assert_true(st2.rx_throttled > st.rx_throttled);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* A reset while a chain waits: dropped with the rings, the device
 * works after it; bad limits at net_new() name the direction. */
static void
test_limit_reset(void **state)
{
	struct fix *f = *state;
	struct net_options o = {
		.tap = g_tap, .tap_fd = -1, .mac = guest_mac,
		.rx_limits = { .ops_burst = 3 },
	};
	struct ratelimit_limits l = { .ops_per_sec = 1, .ops_burst = 1 };
	static uint8_t frame[HDR + 64], got[PHDR + 128];
	struct net_stats st;
	struct vnet *n = NULL;
	char err[256];
	int r;

	NEED_HOST();
	r = net_new(&f->m.mem, &o, &n, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_null(n);
	assert_non_null(strstr(err, "rx"));
	o.rx_limits.ops_burst = 0;
	o.tx_limits.bytes_per_sec = RATELIMIT_MAX + 1;
	r = net_new(&f->m.mem, &o, &n, err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "tx"));

	/* One packet a second: the first goes, the second waits. */
	assert_int_equal(net_set_limits(f->net, NULL, &l), 0);
	bring_up(f, F_BASE);
	memset(frame, 0, HDR);
	make_eth(frame + HDR, host_mac, guest_mac, ETH_TEST);
	assert_true(guest_send(f, 0, frame, HDR + 60, true) >= 0);
	assert_true(host_recv(f, got, sizeof(got)) == PHDR + 60);
	assert_true(guest_send(f, 1, frame, HDR + 60, true) >= 0);
	usleep(100000);
	net_get_stats(f->net, &st);
	assert_int_equal(st.tx_packets, 1);
	assert_int_equal(st.tx_throttled, 1);
	assert_true(st.tx_throttled_ns >= 50000000);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	/* The wait ended with the reset: its time stops growing. */
	net_get_stats(f->net, &st);
	usleep(50000);
	{
		struct net_stats st2;

		net_get_stats(f->net, &st2);
		assert_int_equal(st2.tx_throttled_ns, st.tx_throttled_ns);
	}
	/* Unlimited again, the device works at once after the reset. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(net_set_limits(f->net, NULL, &l), 0);
	bring_up(f, F_BASE);
	assert_true(guest_send(f, 0, frame, HDR + 60, true) >= 0);
	assert_true(host_recv(f, got, sizeof(got)) == PHDR + 60);
	net_get_stats(f->net, &st);
	assert_int_equal(st.tx_packets, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac),
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_errors),
		T(test_config),
		T(test_derived_mac),
		T(test_tx),
		T(test_rx),
		T(test_rx_starved),
		T(test_csum_offload),
		T(test_mrg_small),
		T(test_stream_tx),
		T(test_stream_rx),
		T(test_rx_paced),
		T(test_hostile),
		T(test_fd_backend),
		T(test_mrg_irregular),
		T(test_mrg_tiny_pieces),
		T(test_limit_tx_bytes),
		T(test_limit_tx_packets),
		T(test_limit_rx),
		T(test_limit_reset),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
