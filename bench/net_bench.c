/* SPDX-License-Identifier: MIT */
/*
 * virtio-net throughput beside the physical limit of its TAP: the same
 * frames through the same TAP interface, once through our device
 * (vmm-core's virtio-net on the virtio-pci transport, driven by the
 * host-side driver harness as Linux's virtio_net would drive it: transmit
 * chains and mergeable 4 KiB receive buffers in guest memory, kicks
 * through the queue's eventfd as KVM's ioeventfd would signal it,
 * completions through the MSI-X vectors' eventfds) and once by a bare
 * loop that write()s and read()s the TAP's fd itself, with the same
 * 12-byte vnet header and the same offloads.
 *
 *	net_bench [-t SECONDS] [-r RUNS] [-o RESULTS] [-d tx,rx]
 *		  [-s 64,1514,64k]
 *
 * The wire. The bench unshares a network namespace of its own (it dies
 * with the process, however that ends, and the TAP with it) and makes a
 * persistent TAP there, up, IPv6 off so that the kernel sends nothing of
 * its own. Whoever holds the TAP's fd (our device, or the bare loop) is
 * the guest's side; the other side is AF_PACKET on the interface:
 *  - guest TX: frames written to the TAP's fd enter the interface and are
 *    counted by a packet socket on it (a BPF filter takes only frames from
 *    the guest's MAC and keeps their first 128 bytes; PACKET_AUXDATA gives
 *    the full length, which is checked). The kernel delivers to the
 *    socket inside the writer's write(), so the reader costs both sides
 *    the same.
 *  - guest RX: a second packet socket (PACKET_VNET_HDR, qdisc bypassed)
 *    sends the frames with sendmmsg(); the TAP queues them for its fd.
 * Both sides get the same frames and the same peer work, and a TAP has
 * one fd: the physical limit is that fd's, used bare.
 *
 * Traffic: TCP over IPv4 frames of 64 B, 1514 B (a 1500-byte MTU) and
 * 64 KiB (65214 B, TSO: a vnet header with GSO_TCPV4, gso_size 1448, a
 * partial checksum; the TAP takes it whole, with TUNSETOFFLOAD on its fd
 * for the way back). Bursts of a window of frames (256; 64 for 64 KiB):
 * the bare loop writes a window then reads it back on the peer (TX), or
 * has the peer send a window and reads it from the fd (RX; a window that
 * overflows the receive ring goes in chunks, see rx_chunk()); the
 * harness posts, reaps and reposts the same window through the device,
 * sleeping on the interrupts as a driver does. The bare loop's frames
 * take as much memory as the guest's, and its process has an idle second
 * thread (see main(); NET_BENCH_SINGLE_THREAD=1 leaves it out). A second
 * bare loop, the same calls on two threads (the fd on a thread of its
 * own, as the device's I/O thread holds it; see bare_io), runs beside
 * them. Runs go one-thread bare / device / two-thread bare, then the
 * other way round; each prints pps, Gbit/s (frame bytes, vnet header not
 * counted) and CPU per frame: the bare loop's thread on the fd and in
 * the peer's calls, and the device's I/O thread beside the harness's
 * driver work and peer calls.
 *
 * The table has medians, the ratio to the one-thread bare loop (the
 * issue's physical limit; target >= 0.80) and MET / MISSED, and the
 * two-thread loop's rate and the device's ratio to it, which shows what
 * the fd on a thread of its own costs by itself; with -o the same go to
 * RESULTS as key=value lines (bench/run.sh reads
 * them). A run that loses frames or sees a wrong one fails the bench.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>

#include "../tests/unit/helpers/virtio_harness.h"
#include "log.h"
#include "virtio/net.h"

#define RAM		(256ULL << 20)
#define TARGET		0.80
#define TAP_NAME	"vmmdbench0"
#define QSIZE		256
#define RX_BUF		4096		/* Linux's mergeable buffers, at most */
#define RX_AREA		(QSIZE * RX_BUF)
#define SNAP		128		/* bytes the counting socket keeps */
#define HDR		NET_HDR_LEN	/* 12: what the device and bare use */
#define PHDR		((int)sizeof(struct virtio_net_hdr))	/* AF_PACKET */
#define MAX_FRAME	65536
#define TSO_MSS		1448
#define TSO_FRAME	(54 + 45 * TSO_MSS)	/* 65214 */
#define BATCH		64		/* recvmmsg / sendmmsg entries */
#define MAX_WINDOW	256
#define LOST_MS		1000		/* no progress this long: lost */
#define MAX_RUNS	16
#define VEC_CFG		0
#define VEC_RX		1
#define VEC_TX		2

#define F(b)		(1ULL << (b))
#define FEATURES	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) | \
			 F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_NET_F_MAC) | \
			 F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MRG_RXBUF) | \
			 F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | \
			 F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) | \
			 F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6))

enum dir { DIR_TX, DIR_RX, NR_DIRS };
static const char *const dir_key[NR_DIRS] = { "tx", "rx" };
static const char *const dir_name[NR_DIRS] = {
	"guest TX (device -> TAP)", "guest RX (TAP -> device)" };

struct size {
	const char *key;	/* in results.txt */
	const char *name;
	uint32_t len;		/* Ethernet frame bytes */
	unsigned int window;
};

static const struct size sizes[] = {
	{ "64", "64 B", 64, 256 },
	{ "1514", "1514 B (MTU 1500)", 1514, 256 },
	/* As TCP builds them: 45 segments under the 64 KiB GSO limit. */
	{ "64k", "64 KiB TSO", TSO_FRAME, 64 },
};
#define NR_SIZES (sizeof(sizes) / sizeof(sizes[0]))

struct result {
	double pps;
	double gbps;
	double cpu_main_us;	/* per frame: the bare thread, or the harness */
	double cpu_peer_us;	/* of that, in the peer's system calls */
	double cpu_dev_us;	/* per frame: the device's I/O thread */
	double dev_wakeups;	/* per 1000 frames: the I/O thread's sleeps */
	uint64_t frames;
};

static const uint8_t guest_mac[6] = { 0x02, 0x12, 0x34, 0x56, 0x78, 0x9a };
static const uint8_t peer_mac[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };

static double seconds = 2;
static int ifindex;
static int count_sock = -1;	/* packet socket counting guest TX */
static int send_sock = -1;	/* packet socket sending guest RX */

/* Frames of the current size: [vnet header][frame], for the TAP's fd
 * (12-byte header) and for the sending packet socket (10-byte one). */
static uint8_t *tap_frame;
/* The bare loop's frames: as much memory as the device's ring uses. */
static uint8_t *bare_area;
static uint8_t *peer_frame;

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

static int
die(const char *what, int e)
{
	fprintf(stderr, "net_bench: %s: %s\n", what, strerror(e));
	exit(1);
}

/* --- The namespace and the TAP -------------------------------------- */

static void
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, s, strlen(s)) < 0)
		fprintf(stderr, "net_bench: %s: %s\n", path, strerror(errno));
	close(fd);
}

static int
tap_open(void)
{
	struct ifreq ifr;
	int fd, sz = HDR, le = 1;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP_NAME);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ||
	    ioctl(fd, TUNSETVNETLE, &le) < 0) {
		sz = -errno;
		close(fd);
		return sz;
	}
	return fd;
}

static void
ns_setup(void)
{
	struct ifreq ifr;
	int fd, s;

	/*
	 * A namespace of our own: nothing else sends on the TAP, and it
	 * (with the TAP) goes away with the last reference, our process,
	 * even on SIGKILL. No thread exists yet: all inherit it.
	 */
	if (unshare(CLONE_NEWNET) < 0)
		die("unshare(CLONE_NEWNET) (needs root)", errno);
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	fd = tap_open();
	if (fd < 0)
		die("creating TAP " TAP_NAME, -fd);
	if (ioctl(fd, TUNSETPERSIST, 1) < 0)
		die("TUNSETPERSIST", errno);
	close(fd);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		die("socket", errno);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TAP_NAME);
	ifr.ifr_qlen = 1000;	/* the TAP's queue towards its fd */
	if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0)
		die("SIOCSIFTXQLEN", errno);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		die("SIOCGIFFLAGS", errno);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		die("SIOCSIFFLAGS", errno);
	close(s);
	ifindex = (int)if_nametoindex(TAP_NAME);
	if (!ifindex)
		die("if_nametoindex", errno);
}

static void
peer_setup(void)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_ifindex = ifindex };
	uint32_t m0 = (uint32_t)guest_mac[0] << 24 | guest_mac[1] << 16 |
		      guest_mac[2] << 8 | guest_mac[3];
	uint32_t m1 = (uint32_t)guest_mac[4] << 8 | guest_mac[5];
	/* Frames from the guest's MAC, their first SNAP bytes. */
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 6),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, m0, 0, 3),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 10),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, m1, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SNAP),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]),
				   .filter = code };
	int one = 1, big = 64 << 20;

	count_sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC,
			    htons(ETH_P_ALL));
	if (count_sock < 0)
		die("AF_PACKET socket", errno);
	sll.sll_protocol = htons(ETH_P_ALL);
	if (setsockopt(count_sock, SOL_SOCKET, SO_ATTACH_FILTER, &prog,
		       sizeof(prog)) < 0 ||
	    setsockopt(count_sock, SOL_PACKET, PACKET_AUXDATA, &one,
		       sizeof(one)) < 0 ||
	    setsockopt(count_sock, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
		       sizeof(one)) < 0 ||
	    setsockopt(count_sock, SOL_SOCKET, SO_RCVBUFFORCE, &big,
		       sizeof(big)) < 0 ||
	    bind(count_sock, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die("counting packet socket", errno);

	/* Protocol 0: a socket that only sends. */
	send_sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (send_sock < 0)
		die("AF_PACKET socket", errno);
	sll.sll_protocol = 0;
	if (setsockopt(send_sock, SOL_PACKET, PACKET_VNET_HDR, &one,
		       sizeof(one)) < 0 ||
	    setsockopt(send_sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
		       sizeof(one)) < 0 ||
	    setsockopt(send_sock, SOL_SOCKET, SO_SNDBUFFORCE, &big,
		       sizeof(big)) < 0 ||
	    bind(send_sock, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		die("sending packet socket", errno);
}

/* --- Frames --------------------------------------------------------- */

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

/*
 * A TCP/IPv4 frame of len bytes at p from src to dst; with tso, its TCP
 * checksum is left partial (the pseudo-header sum) for the offload, else
 * it is complete.
 */
static void
make_frame(uint8_t *p, uint32_t len, const uint8_t *dst, const uint8_t *src,
	   bool tso)
{
	uint8_t *ip = p + 14, *th = ip + 20;
	uint32_t l4len = len - 34, i;
	uint16_t v;
	uint32_t s;

	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	p[12] = 0x08;
	p[13] = 0x00;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	v = htons((uint16_t)(len - 14));
	memcpy(ip + 2, &v, 2);
	ip[6] = 0x40;			/* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, (uint8_t[]){ 10, 213, 0, 2 }, 4);
	memcpy(ip + 16, (uint8_t[]){ 10, 213, 0, 3 }, 4);
	v = htons((uint16_t)~fold(sum16(ip, 20, 0)));
	memcpy(ip + 10, &v, 2);
	th[0] = 0x30; th[1] = 0x39;	/* 12345 -> 5201 */
	th[2] = 0x14; th[3] = 0x51;
	th[7] = 1;			/* sequence 1 */
	th[12] = 0x50;			/* data offset 5 */
	th[13] = 0x18;			/* PSH ACK */
	th[14] = 0xff; th[15] = 0xff;
	for (i = 20; i < l4len; i++)
		th[i] = (uint8_t)(i * 7 + (i >> 8));
	s = sum16(ip + 12, 8, 0) + IPPROTO_TCP + l4len;
	if (!tso)
		s = ~sum16(th, l4len, s);
	v = htons(fold(s));
	memcpy(th + 16, &v, 2);
}

static void
build_frames(const struct size *sz)
{
	bool tso = sz->len > 1514;
	struct virtio_net_hdr h = { 0 };

	if (tso) {
		h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		h.hdr_len = htole16(54);
		h.gso_size = htole16(TSO_MSS);
		h.csum_start = htole16(34);
		h.csum_offset = htole16(16);
	}
	memset(tap_frame, 0, HDR);
	memcpy(tap_frame, &h, sizeof(h));
	make_frame(tap_frame + HDR, sz->len, peer_mac, guest_mac, tso);
	memcpy(peer_frame, &h, sizeof(h));
	make_frame(peer_frame + PHDR, sz->len, guest_mac, peer_mac, tso);
}

/* --- The peer ------------------------------------------------------- */

static struct mmsghdr cmsgs[BATCH];
static struct iovec ciov[BATCH];
static uint8_t cbuf[BATCH][SNAP];
static uint8_t cctl[BATCH][CMSG_SPACE(sizeof(struct tpacket_auxdata))];

/*
 * Take what the counting socket holds; frames of another length than len
 * are counted in *bad. Returns the frames taken.
 */
static double peer_cpu;	/* CPU time in peer_drain/peer_send */

static unsigned int
peer_drain(uint32_t len, uint64_t *bad)
{
	double c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	unsigned int total = 0;
	int n, i;

	for (;;) {
		for (i = 0; i < BATCH; i++) {
			ciov[i] = (struct iovec){ cbuf[i], SNAP };
			cmsgs[i].msg_hdr = (struct msghdr){
				.msg_iov = &ciov[i], .msg_iovlen = 1,
				.msg_control = cctl[i],
				.msg_controllen = sizeof(cctl[i]) };
		}
		n = recvmmsg(count_sock, cmsgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&cmsgs[i].msg_hdr);
			struct tpacket_auxdata aux;

			if (!c || c->cmsg_type != PACKET_AUXDATA) {
				(*bad)++;
				continue;
			}
			memcpy(&aux, CMSG_DATA(c), sizeof(aux));
			if (aux.tp_len != len)
				(*bad)++;
		}
		total += (unsigned int)n;
		if (n < BATCH)
			break;
	}
	peer_cpu += cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	return total;
}

static bool
wait_fd(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

static struct mmsghdr smsgs[MAX_WINDOW];
static struct iovec siov;
static struct sockaddr_ll saddr;

/* Send n copies of the peer frame into the TAP. 0, or -errno. */
static int
peer_send(const struct size *sz, unsigned int n)
{
	double c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	unsigned int done = 0, i;
	int r;

	siov = (struct iovec){ peer_frame, (size_t)PHDR + sz->len };
	saddr = (struct sockaddr_ll){ .sll_family = AF_PACKET,
				      .sll_protocol = htons(ETH_P_IP),
				      .sll_ifindex = ifindex, .sll_halen = 6 };
	memcpy(saddr.sll_addr, guest_mac, 6);
	for (i = 0; i < n; i++)
		smsgs[i].msg_hdr = (struct msghdr){
			.msg_name = &saddr, .msg_namelen = sizeof(saddr),
			.msg_iov = &siov, .msg_iovlen = 1 };
	while (done < n) {
		r = sendmmsg(send_sock, smsgs + done, n - done, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -errno;
		done += (unsigned int)r;
	}
	peer_cpu += cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	return 0;
}

static void
finish(struct result *res, const struct size *sz, uint64_t frames, double dt,
       double cpu_main, double cpu_dev)
{
	res->frames = frames;
	res->pps = (double)frames / dt;
	res->gbps = res->pps * sz->len * 8 / 1e9;
	res->cpu_main_us = frames ? cpu_main * 1e6 / (double)frames : 0;
	res->cpu_peer_us = frames ? peer_cpu * 1e6 / (double)frames : 0;
	res->cpu_dev_us = frames ? cpu_dev * 1e6 / (double)frames : 0;
}

/*
 * Frames the peer sends into the TAP per sendmmsg() for guest RX. A
 * window whose frames fit the receive ring goes in one call. One that
 * does not (64 KiB frames: 16 buffers each, 16 frames fill the 256
 * buffers) goes in chunks of what half the ring holds, and between
 * chunks the harness reaps and reposts, as a guest does on its own vCPU
 * while the host sends; in one call the guest could not refill until
 * all of it was queued, and the device would sit on an empty ring
 * meanwhile (bench/README.md, 6). The bare loop sends the same chunks.
 */
static unsigned int
rx_chunk(const struct size *sz)
{
	unsigned int bufs = (HDR + sz->len + RX_BUF - 1) / RX_BUF;

	if (sz->window * bufs <= QSIZE)
		return sz->window;
	return QSIZE / 2 / bufs ? QSIZE / 2 / bufs : 1;
}

/* --- The bare loop -------------------------------------------------- */

static int
bare_tx(int fd, const struct size *sz, struct result *res)
{
	uint64_t sent = 0, got = 0, bad = 0;
	double t0, c0, end, last;
	size_t len = HDR + sz->len;
	unsigned int i;
	ssize_t w;

	/* A frame per slot of the window, as the guest has them. */
	for (i = 0; i < sz->window; i++)
		memcpy(bare_area + (size_t)i * len, tap_frame, len);
	t0 = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	end = t0 + seconds;
	while (now() < end) {
		for (i = 0; i < sz->window; i++) {
			w = write(fd, bare_area + (size_t)i * len, len);
			if (w != (ssize_t)len) {
				fprintf(stderr, "net_bench: bare write: %zd "
					"(%s)\n", w, strerror(errno));
				return -EIO;
			}
		}
		sent += sz->window;
		/* The kernel delivered them inside write(). */
		last = now();
		while (got < sent) {
			unsigned int n = peer_drain(sz->len, &bad);

			got += n;
			if (n)
				last = now();
			else if (now() - last > LOST_MS / 1e3)
				break;
			else if (got < sent)
				wait_fd(count_sock, 10);
		}
		if (got < sent || bad)
			break;
	}
	finish(res, sz, got, now() - t0, cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0,
	       0);
	if (got < sent || bad) {
		fprintf(stderr, "net_bench: bare TX: %llu of %llu frames "
			"arrived, %llu wrong\n", (unsigned long long)got,
			(unsigned long long)sent, (unsigned long long)bad);
		return -EIO;
	}
	return 0;
}

static int
bare_rx(int fd, const struct size *sz, struct result *res)
{
	/* Frame after frame in RX_AREA bytes, in 4 KiB steps: the memory
	 * the device's receive ring spans, filled the way it fills it. */
	size_t step = (HDR + sz->len + RX_BUF - 1) / RX_BUF * RX_BUF, off = 0;
	uint64_t sent = 0, got = 0;
	unsigned int k, n, chunk = rx_chunk(sz);
	double t0, c0, end;
	ssize_t r;
	int e;

	t0 = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	end = t0 + seconds;
	while (now() < end) {
		/* The window in the peer's chunks, each read before the
		 * next (rx_chunk()). */
		for (k = 0; k < sz->window; k += n) {
			n = chunk < sz->window - k ? chunk : sz->window - k;
			e = peer_send(sz, n);
			if (e < 0)
				die("sendmmsg on the packet socket", -e);
			sent += n;
			while (got < sent) {
				if (off + step > RX_AREA)
					off = 0;
				r = read(fd, bare_area + off, HDR + MAX_FRAME);
				if (r < 0 && errno == EAGAIN &&
				    wait_fd(fd, LOST_MS))
					continue;
				if (r != (ssize_t)(HDR + sz->len)) {
					fprintf(stderr, "net_bench: bare read: "
						"%zd, expected %u (%s)\n", r,
						HDR + sz->len, r < 0 ?
						strerror(errno) : "length");
					return -EIO;
				}
				got++;
				off += step;
			}
		}
	}
	finish(res, sz, got, now() - t0, cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0,
	       0);
	return 0;
}

/*
 * The second bare loop, beside the reference (the table's "bare-2T"): the
 * same calls on two threads, the peer's on the main thread and the TAP's
 * fd on a thread of its own, as on the device's side (the harness's
 * thread plays the peer and the guest, the device's I/O thread holds the
 * fd). One wakeup each way per window: the TAP wakes the reader (RX) or
 * the main thread wakes the writer (TX), and the fd's thread tells the
 * main thread when the window is through (RX; for TX the counting socket
 * does). It shows what placing the fd on another CPU than the peer costs
 * by itself: with both threads running at once on two CPUs, each 64 KiB
 * frame's copies into and out of the TAP take 2-3 times as long as on
 * one CPU (bench/README.md, 6). The target stays against the one-thread
 * bare_tx()/bare_rx() above, the physical limit.
 */
struct bare_io {
	int fd;
	const struct size *sz;
	int go;			/* eventfd: RX reader, new target; TX writer,
				 * frames to write */
	int done;		/* eventfd: RX reader reached the target */
	uint64_t target;	/* atomic: RX frames sent so far */
	uint64_t got;		/* RX frames read (reader thread) */
	bool stop;		/* atomic */
	int err;		/* the fd thread's failure (-errno) */
	double cpu;		/* its CPU time */
};

static void *
bare_reader(void *arg)
{
	struct bare_io *b = arg;
	size_t step = (HDR + b->sz->len + RX_BUF - 1) / RX_BUF * RX_BUF;
	size_t off = 0;
	double c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	struct pollfd p[2] = { { .fd = b->fd, .events = POLLIN },
			       { .fd = b->go, .events = POLLIN } };
	uint64_t target = 0, one = 1, v;
	ssize_t r;

	while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
		if (off + step > RX_AREA)
			off = 0;
		r = read(b->fd, bare_area + off, HDR + MAX_FRAME);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN) {
			/* Sleep on the TAP, as the device's thread does;
			 * the main thread's go ends it at the end. */
			if (poll(p, 2, LOST_MS) > 0 && (p[1].revents & POLLIN))
				(void)!read(b->go, &v, sizeof(v));
			continue;
		}
		if (r != (ssize_t)(HDR + b->sz->len)) {
			fprintf(stderr, "net_bench: bare read: %zd, expected "
				"%u (%s)\n", r, HDR + b->sz->len,
				r < 0 ? strerror(errno) : "length");
			b->err = -EIO;
			(void)!write(b->done, &one, sizeof(one));
			break;
		}
		off += step;
		b->got++;
		if (b->got >= target)
			target = __atomic_load_n(&b->target, __ATOMIC_ACQUIRE);
		if (b->got == target)
			(void)!write(b->done, &one, sizeof(one));
	}
	b->cpu = cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

static int
bare_rx2(struct bare_io *b, struct result *res)
{
	const struct size *sz = b->sz;
	double t0, c0, end;
	uint64_t sent = 0, v, one = 1;
	unsigned int k, n, chunk = rx_chunk(sz);
	struct pollfd p = { .fd = b->done, .events = POLLIN };
	pthread_t t;
	int e;

	t0 = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	end = t0 + seconds;
	if (pthread_create(&t, NULL, bare_reader, b) != 0)
		die("bare reader thread", EAGAIN);
	while (now() < end && !b->err) {
		sent += sz->window;
		__atomic_store_n(&b->target, sent, __ATOMIC_RELEASE);
		/* The same chunks as the device gets, back to back. */
		for (k = 0; k < sz->window; k += n) {
			n = chunk < sz->window - k ? chunk : sz->window - k;
			e = peer_send(sz, n);
			if (e < 0)
				die("sendmmsg on the packet socket", -e);
		}
		/* Until the reader has the window, as the harness waits
		 * for the device's interrupts. */
		if (poll(&p, 1, LOST_MS) <= 0 ||
		    read(b->done, &v, sizeof(v)) != sizeof(v))
			break;
	}
	__atomic_store_n(&b->stop, true, __ATOMIC_RELEASE);
	(void)!write(b->go, &one, sizeof(one));
	pthread_join(t, NULL);
	finish(res, sz, b->got, now() - t0,
	       cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0 + b->cpu, 0);
	if (b->err || b->got < sent) {
		fprintf(stderr, "net_bench: bare RX: %llu of %llu frames "
			"read\n", (unsigned long long)b->got,
			(unsigned long long)sent);
		return -EIO;
	}
	return 0;
}

static void *
bare_writer(void *arg)
{
	struct bare_io *b = arg;
	size_t len = HDR + b->sz->len;
	double c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	unsigned int slot = 0;
	uint64_t n;
	ssize_t w;

	for (;;) {
		if (read(b->go, &n, sizeof(n)) != sizeof(n)) {
			if (errno == EINTR)
				continue;
			b->err = -errno;
			break;
		}
		if (__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE))
			break;
		while (n--) {
			w = write(b->fd, bare_area + (size_t)slot * len, len);
			if (w != (ssize_t)len) {
				fprintf(stderr, "net_bench: bare write: %zd "
					"(%s)\n", w, strerror(errno));
				b->err = -EIO;
				break;
			}
			slot = (slot + 1) % b->sz->window;
		}
		if (b->err)
			break;
	}
	b->cpu = cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

static int
bare_tx2(struct bare_io *b, struct result *res)
{
	const struct size *sz = b->sz;
	uint64_t sent = 0, got = 0, bad = 0, win, one = 1;
	size_t len = HDR + sz->len;
	double t0, c0, end, last;
	unsigned int i, n;
	pthread_t t;

	for (i = 0; i < sz->window; i++)
		memcpy(bare_area + (size_t)i * len, tap_frame, len);
	t0 = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	end = t0 + seconds;
	if (pthread_create(&t, NULL, bare_writer, b) != 0)
		die("bare writer thread", EAGAIN);
	while (now() < end && !b->err) {
		win = sz->window;
		if (write(b->go, &win, sizeof(win)) != sizeof(win))
			die("eventfd", errno);
		sent += win;
		/* The peer reads once the window is out, as on the
		 * device's side. */
		last = now();
		while (got < sent && !b->err) {
			n = peer_drain(sz->len, &bad);
			got += n;
			if (n)
				last = now();
			else if (now() - last > LOST_MS / 1e3)
				break;
			else
				wait_fd(count_sock, 10);
		}
		if (got < sent || bad)
			break;
	}
	__atomic_store_n(&b->stop, true, __ATOMIC_RELEASE);
	(void)!write(b->go, &one, sizeof(one));
	pthread_join(t, NULL);
	finish(res, sz, got, now() - t0,
	       cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0 + b->cpu, 0);
	if (got < sent || bad || b->err) {
		fprintf(stderr, "net_bench: bare TX: %llu of %llu frames "
			"arrived, %llu wrong\n", (unsigned long long)got,
			(unsigned long long)sent, (unsigned long long)bad);
		return -EIO;
	}
	return 0;
}

/* The idle second thread of the bare loop's process (see main). */
static int idle_pipe[2] = { -1, -1 };

static void *
idle_thread(void *arg)
{
	char c;

	(void)arg;
	while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static int
bare_run(enum dir d, const struct size *sz, int threads, struct result *res)
{
	unsigned int off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
	int fd = tap_open(), r;

	if (fd < 0)
		die("opening the TAP", -fd);
	/* What our device sets for a driver with GUEST_CSUM/TSO. */
	if (ioctl(fd, TUNSETOFFLOAD, off) < 0)
		die("TUNSETOFFLOAD", errno);
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		die("O_NONBLOCK", errno);
	if (threads == 1) {
		r = d == DIR_TX ? bare_tx(fd, sz, res) : bare_rx(fd, sz, res);
	} else {
		struct bare_io b = { .fd = fd, .sz = sz };

		b.go = eventfd(0, EFD_CLOEXEC);
		b.done = eventfd(0, EFD_CLOEXEC);
		if (b.go < 0 || b.done < 0)
			die("eventfd", errno);
		r = d == DIR_TX ? bare_tx2(&b, res) : bare_rx2(&b, res);
		close(b.go);
		close(b.done);
	}
	close(fd);
	return r;
}

/* --- Through the device --------------------------------------------- */

/*
 * The guest driver's hot path, as Linux's virtio_ring does it on x86: one
 * descriptor per chain, avail entries published as they are added (a
 * release barrier, free on x86), used entries read in a batch after one
 * acquire, and the used event index (a full barrier) set once per batch.
 * The harness sets the device up; these drive its rings.
 */
struct ring {
	struct vh_queue *q;
	uint16_t last_used;
	uint16_t free[QSIZE];		/* heads not in the ring */
	unsigned int nr_free;
	uint16_t old_avail;		/* avail index at the last kick check */
};

static void
ring_init(struct ring *r, struct vh_queue *q)
{
	unsigned int i;

	memset(r, 0, sizeof(*r));
	r->q = q;
	for (i = 0; i < q->size; i++)
		r->free[i] = (uint16_t)(q->size - 1 - i);
	r->nr_free = q->size;
	r->old_avail = q->avail_idx;
}

static void
ring_add(struct ring *r, uint64_t gpa, uint32_t len, bool writable)
{
	uint16_t head = r->free[--r->nr_free];

	vh_desc_set(r->q, head, gpa, len, writable ? VRING_DESC_F_WRITE : 0,
		    0);
	vh_avail_push(r->q, head);
}

/* After a batch of ring_add(): kick if the device asks for it. */
static void
ring_kick(struct ring *r, struct vh_dev *d)
{
	if (r->q->avail_idx == r->old_avail)
		return;
	if (vh_queue_kick_needed(r->q, r->old_avail))
		vh_queue_kick(d, r->q->index);
	r->old_avail = r->q->avail_idx;
}

/*
 * Take up to max used entries into ids/lens (heads go back to the free
 * list), then ask for an interrupt at the next one. Returns how many.
 */
static unsigned int
ring_reap(struct ring *r, uint16_t *ids, uint32_t *lens, unsigned int max)
{
	struct vh_queue *q = r->q;
	unsigned int n = 0;
	uint16_t idx;
	uint32_t v;
	const uint8_t *e;

	for (;;) {
		idx = vh_used_idx(q);
		if (idx == r->last_used)
			break;
		/* Acquire: the entries after the index (the device's
		 * release in virtq_push). */
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

struct dev_bench {
	struct vh_machine m;
	struct vnet *net;
	struct virtio_pci *vp;
	struct vh_dev d;
	clockid_t dev_clock;
	struct ring tx, rx;
	uint64_t tx_gpa[QSIZE];		/* a prefilled frame per slot */
	uint16_t tx_slot_of[QSIZE];	/* by head */
	uint16_t tx_slots[QSIZE];	/* free slots */
	unsigned int nr_tx_slots;
	uint64_t rx_pool;		/* receive buffers, see rx_buf_gpa() */
	uint64_t rx_next;		/* buffers posted so far */
	uint64_t rx_gpa_of[QSIZE];	/* by head */
};

/*
 * Linux carves its mergeable receive buffers one after the other out of
 * 32 KiB page fragments: buffers are contiguous within a fragment, the
 * fragments are wherever the allocator put them. So do we: 8 buffers of
 * 4 KiB per fragment, fragments 4 KiB apart, QSIZE buffers in all, reused
 * in order (the device uses them in order, and never more than QSIZE are
 * posted).
 */
#define FRAG_BUFS	8
#define FRAG_STRIDE	((FRAG_BUFS + 1) * RX_BUF)

static uint64_t
rx_buf_gpa(struct dev_bench *db)
{
	uint64_t k = db->rx_next++ % QSIZE;

	return db->rx_pool + k / FRAG_BUFS * FRAG_STRIDE +
	       k % FRAG_BUFS * RX_BUF;
}

static int
dev_open(struct dev_bench *db, const struct size *sz)
{
	struct net_options o = { .tap = TAP_NAME, .tap_fd = -1,
				 .mac = guest_mac };
	struct vh_dev *d = &db->d;
	char err[256];
	unsigned int i;
	int r;

	memset(db, 0, sizeof(*db));
	r = vh_machine_init(&db->m, RAM);
	if (r < 0)
		return r;
	r = net_new(&db->m.mem, &o, &db->net, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "net_bench: %s\n", err);
		return r;
	}
	if (pthread_getcpuclockid(net_virtio(db->net)->thread,
				  &db->dev_clock) != 0)
		return -ESRCH;
	/* For perf and top, and for task_switches(). */
	pthread_setname_np(net_virtio(db->net)->thread, "net-io");
	r = vh_machine_add(&db->m, net_virtio(db->net), &db->vp);
	if (r == 0)
		r = vh_dev_probe(d, &db->m, db->vp);
	if (r < 0)
		return r;
	d->kick_by_eventfd = true;
	if (vh_dev_negotiate(d, FEATURES, false) < 0 || d->features != FEATURES ||
	    vh_dev_msix_enable(d) < 0)
		return -EIO;
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	if (vh_queue_setup(d, NET_RX_QUEUE, QSIZE, VEC_RX) < 0 ||
	    vh_queue_setup(d, NET_TX_QUEUE, QSIZE, VEC_TX) < 0 ||
	    vh_dev_driver_ok(d) < 0)
		return -EIO;
	ring_init(&db->tx, &d->q[NET_TX_QUEUE]);
	ring_init(&db->rx, &d->q[NET_RX_QUEUE]);
	for (i = 0; i < QSIZE; i++) {
		db->tx_gpa[i] = vh_alloc(&db->m, HDR + sz->len, 64);
		if (!db->tx_gpa[i])
			return -ENOMEM;
		memcpy(vh_ptr(&db->m, db->tx_gpa[i], HDR + sz->len), tap_frame,
		       HDR + sz->len);
		db->tx_slots[i] = (uint16_t)(QSIZE - 1 - i);
	}
	db->nr_tx_slots = QSIZE;
	db->rx_pool = vh_alloc(&db->m, (uint64_t)QSIZE / FRAG_BUFS *
			       FRAG_STRIDE, RX_BUF);
	if (!db->rx_pool)
		return -ENOMEM;
	return 0;
}

static void
dev_close(struct dev_bench *db)
{
	virtio_device_destroy(net_virtio(db->net));
	vh_dev_release(&db->d);
	vh_machine_destroy(&db->m);
	virtio_pci_free(db->vp);
	net_free(db->net);
}

static int
dev_tx(struct dev_bench *db, const struct size *sz, struct result *res)
{
	uint64_t posted = 0, reaped = 0, got = 0, bad = 0, s0;
	double t0, c0, d0, end, last;
	uint16_t ids[QSIZE];
	uint32_t lens[QSIZE];
	struct net_stats st;
	unsigned int n, i, slot;
	bool progress, stop = false;

	t0 = last = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	d0 = cpu_of(db->dev_clock);
	s0 = task_switches("net-io");
	end = t0 + seconds;
	for (;;) {
		n = ring_reap(&db->tx, ids, lens, QSIZE);
		for (i = 0; i < n; i++)
			db->tx_slots[db->nr_tx_slots++] =
				db->tx_slot_of[ids[i]];
		reaped += n;
		progress = n > 0;
		/*
		 * The peer reads once the window is out (as the bare loop
		 * does), not while the device is writing into its socket.
		 */
		if (posted - got >= sz->window || posted == reaped || stop) {
			n = peer_drain(sz->len, &bad);
			got += n;
			progress |= n > 0;
		}
		if (!stop && now() >= end)
			stop = true;
		while (!stop && db->nr_tx_slots && posted - got < sz->window) {
			slot = db->tx_slots[--db->nr_tx_slots];
			db->tx_slot_of[db->tx.free[db->tx.nr_free - 1]] =
				(uint16_t)slot;
			ring_add(&db->tx, db->tx_gpa[slot], HDR + sz->len,
				 false);
			posted++;
		}
		ring_kick(&db->tx, &db->d);
		if (stop && got >= posted)
			break;
		if (progress)
			last = now();
		else if (now() - last > LOST_MS / 1e3)
			break;
		/*
		 * Sleep until the device signals (it does every
		 * NET_SIGNAL_EVERY completions and when it runs dry), as a
		 * guest driver would, rather than spin beside it; once it
		 * completed everything, the rest is in the socket.
		 */
		if (posted > reaped)
			vh_wait_irq(&db->d, VEC_TX, 10);
		else if (got < posted)
			wait_fd(count_sock, 10);
	}
	finish(res, sz, got, now() - t0, cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0,
	       cpu_of(db->dev_clock) - d0);
	res->dev_wakeups = got ? (double)(task_switches("net-io") - s0) *
			   1000 / (double)got : 0;
	net_get_stats(db->net, &st);
	if (got < posted || bad || st.tx_errors) {
		fprintf(stderr, "net_bench: device TX: %llu of %llu frames "
			"arrived, %llu wrong, %llu refused by the TAP\n",
			(unsigned long long)got, (unsigned long long)posted,
			(unsigned long long)bad,
			(unsigned long long)st.tx_errors);
		return -EIO;
	}
	return 0;
}

/* Post receive buffers on every free descriptor; kick if asked. */
static void
dev_rx_fill(struct dev_bench *db)
{
	uint64_t gpa;

	while (db->rx.nr_free) {
		gpa = rx_buf_gpa(db);
		db->rx_gpa_of[db->rx.free[db->rx.nr_free - 1]] = gpa;
		ring_add(&db->rx, gpa, RX_BUF, true);
	}
	ring_kick(&db->rx, &db->d);
}

static int
dev_rx(struct dev_bench *db, const struct size *sz, struct result *res)
{
	struct virtio_net_hdr_mrg_rxbuf h;
	uint64_t sent = 0, got = 0, bad = 0, s0, win_end = 0;
	uint32_t flen = 0, lens[QSIZE];
	unsigned int left = 0;	/* buffers of the frame being put together */
	unsigned int chunk = rx_chunk(sz);
	double t0, c0, d0, end, last;
	uint16_t ids[QSIZE];
	unsigned int n, i;
	int e;

	dev_rx_fill(db);
	t0 = last = now();
	c0 = cpu_of(CLOCK_THREAD_CPUTIME_ID);
	peer_cpu = 0;
	d0 = cpu_of(db->dev_clock);
	s0 = task_switches("net-io");
	end = t0 + seconds;
	for (;;) {
		if (got == sent && sent == win_end) {
			if (now() >= end)
				break;
			win_end += sz->window;
		}
		/* The window in the peer's chunks, the driver's reaping
		 * and reposting between them (rx_chunk()). */
		if (sent < win_end) {
			n = win_end - sent < chunk ?
			    (unsigned int)(win_end - sent) : chunk;
			e = peer_send(sz, n);
			if (e < 0)
				die("sendmmsg on the packet socket", -e);
			sent += n;
		}
		n = ring_reap(&db->rx, ids, lens, QSIZE);
		for (i = 0; i < n; i++) {
			uint32_t len = lens[i];

			if (!left) {
				memcpy(&h, vh_ptr(&db->m,
						  db->rx_gpa_of[ids[i]],
						  sizeof(h)), sizeof(h));
				left = le16toh(h.num_buffers);
				flen = 0;
				if (!left || len < HDR) {
					bad++;
					left = 1;
					len = HDR;
				}
				len -= HDR;
			}
			flen += len;
			if (--left)
				continue;
			if (flen != sz->len)
				bad++;
			got++;
		}
		if (bad)
			break;
		if (n) {
			dev_rx_fill(db);
			last = now();
		} else if (now() - last > LOST_MS / 1e3) {
			break;
		}
		/* Sleep until the device signals, as a guest would. */
		if (got < sent && sent == win_end)
			vh_wait_irq(&db->d, VEC_RX, 10);
	}
	finish(res, sz, got, now() - t0, cpu_of(CLOCK_THREAD_CPUTIME_ID) - c0,
	       cpu_of(db->dev_clock) - d0);
	res->dev_wakeups = got ? (double)(task_switches("net-io") - s0) *
			   1000 / (double)got : 0;
	if (got < sent || bad) {
		fprintf(stderr, "net_bench: device RX: %llu of %llu frames "
			"arrived, %llu wrong\n", (unsigned long long)got,
			(unsigned long long)sent, (unsigned long long)bad);
		return -EIO;
	}
	return 0;
}

static int
dev_run(enum dir d, const struct size *sz, struct result *res)
{
	struct dev_bench *db = calloc(1, sizeof(*db));
	int r;

	if (!db)
		return -ENOMEM;
	r = dev_open(db, sz);
	if (r < 0) {
		fprintf(stderr, "net_bench: device setup: %s\n", strerror(-r));
		free(db);
		return r;
	}
	r = d == DIR_TX ? dev_tx(db, sz, res) : dev_rx(db, sz, res);
	dev_close(db);
	free(db);
	return r;
}

/* --- Main ----------------------------------------------------------- */

static const char *only_dir, *only_size;

/* Whether -d / -s (comma lists) leave this measurement in. */
static bool
selected(unsigned int di, unsigned int si)
{
	char list[64], *tok, *save;
	bool ok;

	if (only_dir && !strstr(only_dir, dir_key[di]))
		return false;
	if (!only_size)
		return true;
	snprintf(list, sizeof(list), "%s", only_size);
	ok = false;
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save))
		ok |= strcmp(tok, sizes[si].key) == 0;
	return ok;
}

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
		fprintf(f, "%s%.0f", i ? "," : "", v[i]);
	fputc('\n', f);
}

int
main(int argc, char **argv)
{
	static struct result bare[NR_DIRS][NR_SIZES][MAX_RUNS];
	static struct result dev[NR_DIRS][NR_SIZES][MAX_RUNS];
	static struct result bare2[NR_DIRS][NR_SIZES][MAX_RUNS];
	const char *out_path = NULL;
	FILE *out = NULL;
	int runs = 3, opt, k;
	unsigned int di, si;

	while ((opt = getopt(argc, argv, "t:r:o:d:s:")) != -1) {
		switch (opt) {
		case 't': seconds = atof(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'o': out_path = optarg; break;
		case 'd': only_dir = optarg; break;
		case 's': only_size = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-t SECONDS] [-r RUNS] "
				"[-o RESULTS] [-d tx|rx] [-s 64|1514|64k]\n",
				argv[0]);
			return 2;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || seconds <= 0 || seconds > 60) {
		fprintf(stderr, "net_bench: bad arguments\n");
		return 2;
	}
	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
		fprintf(stderr, "net_bench: needs root and /dev/net/tun\n");
		return 1;
	}
	log_set_level(LOG_LEVEL_WARN);
	tap_frame = malloc(HDR + MAX_FRAME);
	bare_area = malloc(MAX_WINDOW * (size_t)(HDR + MAX_FRAME));
	peer_frame = malloc(PHDR + MAX_FRAME);
	if (!tap_frame || !peer_frame || !bare_area)
		die("malloc", ENOMEM);
	ns_setup();
	peer_setup();
	/*
	 * A process with one thread gets cheaper system calls (the fd
	 * table is not shared: no reference count on each fd lookup; libc
	 * skips its cancellation bookkeeping), which no VMM gets: an idle
	 * thread keeps the bare loop's process multi-threaded too.
	 */
	if (getenv("NET_BENCH_SINGLE_THREAD") == NULL) {
		pthread_t t;

		if (pipe2(idle_pipe, O_CLOEXEC) < 0 ||
		    pthread_create(&t, NULL, idle_thread, NULL) != 0)
			die("idle thread", errno);
		pthread_detach(t);
	}
	printf("net_bench: TAP %s in a namespace of its own, peer AF_PACKET; "
	       "%.1f s per run, %d runs each, bare / device in ABBA order\n",
	       TAP_NAME, seconds, runs);
	for (di = 0; di < NR_DIRS; di++) {
		for (si = 0; si < NR_SIZES; si++) {
			const struct size *sz = &sizes[si];

			if (!selected(di, si))
				continue;
			build_frames(sz);
			for (k = 0; k < runs; k++) {
				struct result *b = &bare[di][si][k];
				struct result *v = &dev[di][si][k];
				struct result *b2 = &bare2[di][si][k];

				/* ABC CBA: a load that comes or goes during
				 * the runs weighs on all alike. */
				if (k % 2 == 0 && bare_run(di, sz, 1, b) < 0)
					return 1;
				if (k % 2 == 1 && bare_run(di, sz, 2, b2) < 0)
					return 1;
				if (dev_run(di, sz, v) < 0)
					return 1;
				if (k % 2 == 0 && bare_run(di, sz, 2, b2) < 0)
					return 1;
				if (k % 2 == 1 && bare_run(di, sz, 1, b) < 0)
					return 1;
				printf("  %-25s %-18s run %d: bare %9.0f pps "
				       "%6.2f Gbit/s, device %9.0f pps %6.2f "
				       "Gbit/s\n      CPU/frame: bare TAP "
				       "fd %.2f us + peer %.2f; device I/O "
				       "thread %.2f us + driver %.2f + peer "
				       "%.2f; I/O thread sleeps %.1f per 1000 "
				       "frames\n      bare, fd on its own "
				       "thread: %9.0f pps, CPU/frame %.2f us "
				       "(both threads)\n", dir_name[di],
				       sz->name, k + 1, b->pps, b->gbps, v->pps,
				       v->gbps, b->cpu_main_us - b->cpu_peer_us,
				       b->cpu_peer_us, v->cpu_dev_us,
				       v->cpu_main_us - v->cpu_peer_us,
				       v->cpu_peer_us, v->dev_wakeups,
				       b2->pps, b2->cpu_main_us);
				fflush(stdout);
			}
		}
	}
	if (out_path) {
		out = fopen(out_path, "w");
		if (!out)
			die(out_path, errno);
	}
	printf("\n%-25s %-18s %12s %12s %7s %8s %7s %9s %9s %9s %12s %7s\n",
	       "direction", "frames (median)", "bare pps", "device pps",
	       "ratio", "target", "result", "bare Gb/s", "dev Gb/s",
	       "best/best", "bare-2T pps", "ratio");
	for (di = 0; di < NR_DIRS; di++) {
		for (si = 0; si < NR_SIZES; si++) {
			const struct size *sz = &sizes[si];
			double bp[MAX_RUNS], dp[MAX_RUNS], bc[MAX_RUNS];
			double dc[MAX_RUNS], hc[MAX_RUNS], b2p[MAX_RUNS];
			double mb, md, mb2, r, rb;
			char key[64];

			if (!selected(di, si))
				continue;
			for (k = 0; k < runs; k++) {
				bp[k] = bare[di][si][k].pps;
				dp[k] = dev[di][si][k].pps;
				bc[k] = bare[di][si][k].cpu_main_us;
				dc[k] = dev[di][si][k].cpu_dev_us;
				hc[k] = dev[di][si][k].cpu_main_us;
				b2p[k] = bare2[di][si][k].pps;
			}
			mb2 = median(b2p, runs);
			mb = median(bp, runs);
			md = median(dp, runs);
			r = md / mb;
			rb = best(dp, runs) / best(bp, runs);
			printf("%-25s %-18s %12.0f %12.0f %7.3f %8s %7s %9.2f "
			       "%9.2f %9.3f %12.0f %7.3f\n", dir_name[di],
			       sz->name, mb, md, r, ">= 0.80",
			       r >= TARGET ? "MET" : "MISSED",
			       mb * sz->len * 8 / 1e9, md * sz->len * 8 / 1e9,
			       rb, mb2, md / mb2);
			if (!out)
				continue;
			snprintf(key, sizeof(key), "net.%s.%s", dir_key[di],
				 sz->key);
			fprintf(out, "%s.frame_bytes=%u\n", key, sz->len);
			fprintf(out, "%s.bare.median_pps=%.0f\n", key, mb);
			fprintf(out, "%s.vmm.median_pps=%.0f\n", key, md);
			fprintf(out, "%s.bare.median_gbps=%.3f\n", key,
				mb * sz->len * 8 / 1e9);
			fprintf(out, "%s.vmm.median_gbps=%.3f\n", key,
				md * sz->len * 8 / 1e9);
			fprintf(out, "%s.ratio=%.4f\n", key, r);
			fprintf(out, "%s.bare_2t.median_pps=%.0f\n", key, mb2);
			fprintf(out, "%s.ratio_2t=%.4f\n", key, md / mb2);
			fprintf(out, "%s.ratio_best=%.4f\n", key, rb);
			fprintf(out, "%s.result=%s\n", key,
				r >= TARGET ? "MET" : "MISSED");
			fprintf(out, "%s.bare.cpu_us_per_frame=%.3f\n", key,
				median(bc, runs));
			fprintf(out, "%s.vmm.io_thread_cpu_us_per_frame=%.3f\n",
				key, median(dc, runs));
			fprintf(out, "%s.vmm.driver_cpu_us_per_frame=%.3f\n",
				key, median(hc, runs));
			snprintf(key + strlen(key), sizeof(key) - strlen(key),
				 ".bare.runs_pps");
			put_list(out, key, bp, runs);
			key[strlen(key) - strlen(".bare.runs_pps")] = '\0';
			snprintf(key + strlen(key), sizeof(key) - strlen(key),
				 ".vmm.runs_pps");
			put_list(out, key, dp, runs);
		}
	}
	if (out) {
		fprintf(out, "net.target_ratio_min=%.2f\n", TARGET);
		fclose(out);
	}
	return 0;
}
