/* SPDX-License-Identifier: MIT */
/*
 * Noisy neighbours on a disk and a NIC: virtio-blk I/O limits and
 * virtio-net limits measured with the host-side driver harness as each
 * device's guest driver (requests in guest memory, kicks through the
 * queue's eventfd as KVM's ioeventfd would, completions through the MSI-X
 * vector's eventfd).
 *
 *	noisy_bench [-d DIR] [-s MiB] [-t SECONDS] [-o RESULTS] [-p blk,net]
 *
 * -p: which rows (default both): blk, the disk's 1. and 2.; net, the
 * NIC's 3. (root and /dev/net/tun).
 *
 * Two images, a.img and b.img, in DIR (default /var/tmp; not tmpfs: the
 * point is that they share one real disk), filled with data first.
 *
 * 1. Isolation: disk A (limited to ISO_OPS ops/s, 4 KiB random reads at
 *    queue depth 16, O_DIRECT) is measured alone, then again while disk B
 *    (unlimited, 4 KiB random reads at queue depth 32, O_DIRECT) hammers
 *    the same disk from another thread. Target: A's rate moves by at most
 *    5%. B's rate (alone and beside A) shows how hard it hammered.
 * 2. Refill times: the rate a limited disk delivers against the one
 *    configured, for a bucket of 10 ms of rate (burst = rate / 100) and of
 *    1 s (burst = rate), for an ops/s limit (4 KiB reads) and a bytes/s
 *    limit (64 KiB reads), queue depth 16. These read through the page
 *    cache (the image is read once first), so that the limiter is what
 *    limits and not the disk. Target: within 5% of the configured rate.
 *
 * 3. NIC refill times: a virtio-net on a TAP in a network namespace the
 *    program makes for itself (unshare(CLONE_NEWNET), as net_bench does),
 *    limited in one direction to 50 Mbit/s (6,250,000 bytes/s, 1514-byte
 *    frames) or to 5000 packets/s (60-byte frames), each with a bucket of
 *    10 ms and of 1 s. TX: the transmitq kept full; the frames are timed
 *    by the kernel as they reach the TAP's peer (an AF_PACKET socket,
 *    SO_TIMESTAMPNS). RX: the peer sends into the TAP at twice the rate
 *    (the TAP's queue fills and the kernel drops the rest, as on a link),
 *    the guest keeps its receive buffers posted and its frames are timed
 *    when the driver reaps them. Target: within 5% of the configured rate.
 *
 * Every disk rate is counted from the completions the driver sees in a
 * window that starts WARM_NS after the first kick, when the initial burst
 * is spent; a NIC window starts WARM_NS after the first frame and once the
 * limiter has made a frame wait (the burst spent: with a 1 s bucket an RX
 * flow at twice the rate takes 1 s to spend it), and runs from the first
 * frame after that to the last. Results go to stdout as a table and, with
 * -o, as key=value lines.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <linux/virtio_pci.h>

#include "../tests/unit/helpers/virtio_harness.h"
#include "log.h"
#include "ratelimit.h"
#include "virtio/blk.h"
#include "virtio/net.h"

#define RAM		(64ULL << 20)
#define MAX_QD		32
#define NSEC		1000000000ULL
#define WARM_NS		(NSEC / 2)
#define VEC_Q		1
#define TOLERANCE	0.05

#define ISO_OPS		2000ULL		/* disk A's limit, ops/s */
#define REFILL_OPS	2000ULL		/* ops/s limit of the refill rows */
#define REFILL_BYTES	20000000ULL	/* bytes/s limit of the refill rows */

struct dev {
	struct vh_machine m;
	struct blk *b;
	struct virtio_pci *vp;
	struct vh_dev d;
	bool open;
};

/* One driver loop: a queue kept full of random reads. */
struct job {
	struct dev *dv;
	uint32_t bs;
	unsigned int qd;
	uint64_t file_bytes;
	uint64_t rng;
	uint64_t run_ns;		/* 0: until *stop */
	atomic_bool *stop;
	atomic_bool *started;		/* set once the window opens */
	/* Out. */
	uint64_t counted;		/* completions in the window */
	double secs;			/* the window's length */
	struct blk_stats stats;		/* at the window's end */
	int err;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* --- Devices --------------------------------------------------------------- */

static int
dev_open(struct dev *dv, const char *path, bool direct,
	 const struct ratelimit_limits *l)
{
	struct blk_options o = { .path = path, .direct = direct,
				 .limits = *l };
	char err[256];
	int r;

	memset(dv, 0, sizeof(*dv));
	r = vh_machine_init(&dv->m, RAM);
	if (r < 0)
		return r;
	r = blk_new(&o, &dv->m.mem, &dv->b, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "noisy_bench: %s\n", err);
		vh_machine_destroy(&dv->m);
		return r;
	}
	dv->open = true;
	r = vh_machine_add(&dv->m, blk_virtio(dv->b), &dv->vp);
	if (r == 0)
		r = vh_dev_probe(&dv->d, &dv->m, dv->vp);
	if (r < 0)
		return r;
	dv->d.kick_by_eventfd = true;
	if (vh_dev_negotiate(&dv->d, ~0ULL, false) < 0 ||
	    vh_dev_msix_enable(&dv->d) < 0)
		return -EIO;
	vh_common_write(&dv->d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	if (vh_queue_setup(&dv->d, 0, 0, VEC_Q) < 0 ||
	    vh_dev_driver_ok(&dv->d) < 0)
		return -EIO;
	return 0;
}

static void
dev_close(struct dev *dv)
{
	if (!dv->open)
		return;
	blk_stop(dv->b);
	vh_dev_release(&dv->d);
	vh_machine_destroy(&dv->m);
	virtio_pci_free(dv->vp);
	blk_free(dv->b);
	dv->open = false;
}

/* --- The driver ------------------------------------------------------------ */

struct slot {
	uint64_t hdr, data, status;
};

static int
submit(struct job *j, struct slot *s, int *head_slot, int si)
{
	struct dev *dv = j->dv;
	uint32_t type = htole32(VIRTIO_BLK_T_IN);
	uint64_t sector;
	struct vh_buf b[3] = { { s->hdr, 16 }, { s->data, j->bs },
			       { s->status, 1 } };
	uint8_t *h = vh_ptr(&dv->m, s->hdr, 16);
	int head;

	sector = htole64(next_rand(&j->rng) % (j->file_bytes / j->bs) *
			 (j->bs / 512));
	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	*(uint8_t *)vh_ptr(&dv->m, s->status, 1) = 0xee;
	head = vh_queue_add(&dv->d.q[0], b, 1, 2, false);
	if (head < 0)
		return head;
	head_slot[head] = si;
	return 0;
}

/*
 * Keep j->qd reads in flight; count the completions in [WARM_NS, end),
 * end being j->run_ns or when *j->stop is set. Then lift the limits so
 * that the last requests need not wait for the limiter, and drain.
 */
static int
job_run(struct job *j)
{
	struct dev *dv = j->dv;
	struct ratelimit_limits none = { 0 };
	struct vh_queue *q = &dv->d.q[0];
	struct slot slots[MAX_QD];
	int head_slot[BLK_QUEUE_SIZE];
	unsigned int i, inflight;
	uint64_t t0, t, warm_at = 0;
	uint16_t old, id;
	uint32_t len;
	bool stop = false;

	for (i = 0; i < j->qd; i++) {
		slots[i].hdr = vh_alloc(&dv->m, 16, 16);
		slots[i].data = vh_alloc(&dv->m, j->bs, 4096);
		slots[i].status = vh_alloc(&dv->m, 1, 1);
		if (!slots[i].hdr || !slots[i].data || !slots[i].status)
			return -ENOMEM;
	}
	t0 = now_ns();
	old = q->avail_idx;
	for (i = 0; i < j->qd; i++)
		if (submit(j, &slots[i], head_slot, (int)i) < 0)
			return -ENOSPC;
	inflight = j->qd;
	if (vh_queue_kick_needed(q, old))
		vh_queue_kick(&dv->d, 0);
	while (inflight) {
		unsigned int got = 0;

		t = now_ns();
		if (!warm_at && t - t0 >= WARM_NS) {
			warm_at = t;
			if (j->started)
				atomic_store(j->started, true);
		}
		if (!stop && warm_at &&
		    ((j->run_ns && t - t0 >= j->run_ns) ||
		     (j->stop && atomic_load(j->stop)))) {
			stop = true;
			j->secs = (double)(t - warm_at) / NSEC;
			blk_get_stats(dv->b, &j->stats);
			if (blk_set_limits(dv->b, &none) < 0)
				return -EIO;
		}
		old = q->avail_idx;
		while (vh_queue_get_used(q, &id, &len)) {
			int si = head_slot[id];

			got++;
			inflight--;
			if (len != j->bs + 1 ||
			    *(uint8_t *)vh_ptr(&dv->m, slots[si].status, 1) !=
			    VIRTIO_BLK_S_OK) {
				fprintf(stderr, "noisy_bench: a read failed\n");
				return -EIO;
			}
			if (stop)
				continue;
			if (warm_at)
				j->counted++;
			if (submit(j, &slots[si], head_slot, si) < 0)
				return -ENOSPC;
			inflight++;
		}
		if (got && !stop && vh_queue_kick_needed(q, old))
			vh_queue_kick(&dv->d, 0);
		if (!got && inflight)
			vh_wait_irq(&dv->d, VEC_Q, 20);
	}
	return 0;
}

static void *
job_thread(void *arg)
{
	struct job *j = arg;

	j->err = job_run(j);
	return NULL;
}

static double
job_rate(const struct job *j)
{
	return j->secs > 0 ? (double)j->counted / j->secs : 0;
}

/* --- Files ----------------------------------------------------------------- */

/* path filled with bytes of data (kept when it already has that size). */
static int
prepare_file(const char *path, uint64_t bytes, uint64_t seed)
{
	struct stat st;
	uint8_t *buf;
	uint64_t off;
	size_t i;
	int fd;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size == bytes)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	if (fd < 0)
		return -errno;
	if (posix_memalign((void **)&buf, 4096, 1 << 20)) {
		close(fd);
		return -ENOMEM;
	}
	for (off = 0; off < bytes; off += 1 << 20) {
		for (i = 0; i < (1 << 20); i += 8) {
			uint64_t x = next_rand(&seed);

			memcpy(buf + i, &x, 8);
		}
		if (pwrite(fd, buf, 1 << 20, (off_t)off) != 1 << 20) {
			free(buf);
			close(fd);
			return -EIO;
		}
	}
	free(buf);
	fsync(fd);
	close(fd);
	return 0;
}

/* Read path once through the page cache, for the buffered runs. */
static int
warm_cache(const char *path)
{
	static char buf[1 << 20];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	return n < 0 ? -EIO : 0;
}

/* --- Runs ------------------------------------------------------------------ */

static FILE *results;

static void
result(const char *key, double v)
{
	if (results)
		fprintf(results, "%s=%.10g\n", key, v);
}

/*
 * A limited disk on path, measured for seconds after the warm-up, alone
 * (hammer NULL) or while hammer runs unlimited on the other image (its
 * rate out in *hammer_rate). The limited disk's rate out in *rate.
 */
static int
run_limited(const char *path, bool direct, const struct ratelimit_limits *l,
	    uint32_t bs, uint64_t file_bytes, double seconds,
	    const char *hammer, double *rate, double *hammer_rate)
{
	struct ratelimit_limits none = { 0 };
	struct dev a, b;
	struct job ja = { .dv = &a, .bs = bs, .qd = 16,
			  .file_bytes = file_bytes, .rng = 88172645463325252ULL,
			  .run_ns = (uint64_t)(seconds * NSEC) + WARM_NS };
	struct job jb = { .dv = &b, .bs = 4096, .qd = 32,
			  .file_bytes = file_bytes, .rng = 2463534242ULL };
	atomic_bool stop = false, b_started = false;
	pthread_t th;
	int r;

	b.open = false;
	r = dev_open(&a, path, direct, l);
	if (r < 0)
		goto out;
	if (hammer) {
		r = dev_open(&b, hammer, true, &none);
		if (r < 0)
			goto out;
		jb.stop = &stop;
		jb.started = &b_started;
		r = -pthread_create(&th, NULL, job_thread, &jb);
		if (r < 0)
			goto out;
		/* A starts once B is past its own warm-up. */
		while (!atomic_load(&b_started))
			usleep(1000);
	}
	r = job_run(&ja);
	if (hammer) {
		atomic_store(&stop, true);
		pthread_join(th, NULL);
		if (r == 0)
			r = jb.err;
		*hammer_rate = job_rate(&jb);
	}
	*rate = job_rate(&ja);
out:
	dev_close(&a);
	dev_close(&b);
	return r;
}

/* B alone, unlimited, for seconds: what the disk gives. */
static int
run_hammer_alone(const char *path, uint64_t file_bytes, double seconds,
		 double *rate)
{
	struct ratelimit_limits none = { 0 };
	struct dev b;
	struct job jb = { .dv = &b, .bs = 4096, .qd = 32,
			  .file_bytes = file_bytes, .rng = 2463534242ULL,
			  .run_ns = (uint64_t)(seconds * NSEC) + WARM_NS };
	int r;

	r = dev_open(&b, path, true, &none);
	if (r == 0)
		r = job_run(&jb);
	*rate = job_rate(&jb);
	dev_close(&b);
	return r;
}

static const char *
verdict(double ratio)
{
	return ratio >= 1 - TOLERANCE && ratio <= 1 + TOLERANCE ?
	       "MET" : "MISSED";
}

/* The disk rows: isolation, then refill times. 0, or 1 on a failure. */
static int
run_blk(const char *dir, uint64_t mib, double seconds)
{
	char pa[512], pb[512];
	uint64_t file_bytes;
	double alone, loaded, hammer_alone, hammer_loaded;
	struct statfs sfs;
	int r, k;

	if (statfs(dir, &sfs) < 0 || sfs.f_type == TMPFS_MAGIC) {
		fprintf(stderr, "noisy_bench: %s: not a directory on a real "
			"file system (tmpfs has no disk to share)\n", dir);
		return 1;
	}
	file_bytes = mib << 20;
	snprintf(pa, sizeof(pa), "%s/a.img", dir);
	snprintf(pb, sizeof(pb), "%s/b.img", dir);
	r = prepare_file(pa, file_bytes, 1);
	if (r == 0)
		r = prepare_file(pb, file_bytes, 2);
	if (r < 0) {
		fprintf(stderr, "noisy_bench: %s: %s (O_DIRECT needed)\n", dir,
			strerror(-r));
		return 1;
	}
	printf("noisy_bench: %s/{a,b}.img, %llu MiB each, %.1f s per "
	       "measurement after %.1f s of warm-up\n", dir,
	       (unsigned long long)mib, seconds, (double)WARM_NS / NSEC);

	/* 1. Isolation. */
	{
		struct ratelimit_limits l = { .ops_per_sec = ISO_OPS,
					      .ops_burst = ISO_OPS / 100 };

		r = run_hammer_alone(pb, file_bytes, seconds, &hammer_alone);
		if (r == 0)
			r = run_limited(pa, true, &l, 4096, file_bytes,
					seconds, NULL, &alone, NULL);
		if (r == 0)
			r = run_limited(pa, true, &l, 4096, file_bytes,
					seconds, pb, &loaded, &hammer_loaded);
		if (r < 0) {
			fprintf(stderr, "noisy_bench: isolation run: %s\n",
				strerror(-r));
			return 1;
		}
		printf("isolation: disk B alone (unlimited, 4 KiB random "
		       "reads QD32, O_DIRECT): %.0f ops/s\n", hammer_alone);
		printf("isolation: disk A (limit %llu ops/s, 4 KiB random "
		       "reads QD16, O_DIRECT): alone %.1f ops/s, beside B "
		       "%.1f ops/s (B: %.0f ops/s): ratio %.3f, target "
		       "1 +- %.2f: %s\n", ISO_OPS, alone, loaded,
		       hammer_loaded, loaded / alone, TOLERANCE,
		       verdict(loaded / alone));
		result("noisy.blk.limit_ops", (double)ISO_OPS);
		result("noisy.blk.hammer_alone_ops", hammer_alone);
		result("noisy.blk.hammer_beside_ops", hammer_loaded);
		result("noisy.blk.alone_ops", alone);
		result("noisy.blk.beside_ops", loaded);
		result("noisy.blk.ratio", loaded / alone);
		fflush(stdout);
	}

	/* 2. Refill times, through the page cache. */
	r = warm_cache(pa);
	if (r < 0) {
		fprintf(stderr, "noisy_bench: %s: %s\n", pa, strerror(-r));
		return 1;
	}
	for (k = 0; k < 4; k++) {
		bool ops = k < 2, short_refill = k % 2 == 0;
		uint64_t rate = ops ? REFILL_OPS : REFILL_BYTES;
		uint64_t burst = short_refill ? rate / 100 : rate;
		struct ratelimit_limits l = { 0 };
		uint32_t bs = ops ? 4096 : 64 << 10;
		double got, achieved;
		char key[64];

		if (ops) {
			l.ops_per_sec = rate;
			l.ops_burst = burst;
		} else {
			l.bytes_per_sec = rate;
			l.bytes_burst = burst;
		}
		r = run_limited(pa, false, &l, bs, file_bytes, seconds, NULL,
				&got, NULL);
		if (r < 0) {
			fprintf(stderr, "noisy_bench: refill run: %s\n",
				strerror(-r));
			return 1;
		}
		achieved = ops ? got : got * bs;
		printf("refill %s: %s limit %llu, burst %llu: achieved %.1f "
		       "(%.3f x), target 1 +- %.2f: %s\n",
		       short_refill ? "10 ms" : "1 s", ops ? "ops/s" :
		       "bytes/s", (unsigned long long)rate,
		       (unsigned long long)burst, achieved,
		       achieved / (double)rate, TOLERANCE,
		       verdict(achieved / (double)rate));
		snprintf(key, sizeof(key), "noisy.blk.refill_%s.%s",
			 short_refill ? "10ms" : "1s", ops ? "ops" : "bytes");
		fflush(stdout);
		if (results) {
			char k2[96];

			snprintf(k2, sizeof(k2), "%s.limit", key);
			result(k2, (double)rate);
			snprintf(k2, sizeof(k2), "%s.burst", key);
			result(k2, (double)burst);
			snprintf(k2, sizeof(k2), "%s.achieved", key);
			result(k2, achieved);
			snprintf(k2, sizeof(k2), "%s.ratio", key);
			result(k2, achieved / (double)rate);
		}
	}
	return 0;
}

/* --- The NIC --------------------------------------------------------------- */

/*
 * A TAP in a network namespace of our own (as net_bench makes it), the
 * device on it limited in one direction, the harness as its driver, and
 * AF_PACKET on the interface as the peer.
 */
#define NET_TAP		"vmmdnoisy0"
#define NET_QSIZE	256
#define NET_SLOTS	NET_QSIZE	/* transmit chains kept in flight */
#define NET_RX_BUF	2048
#define NET_VEC_CFG	0
#define NET_VEC_RX	1
#define NET_VEC_TX	2
#define NET_ETH_TYPE	0x88b5		/* IEEE local experimental */
#define NET_BPS		6250000ULL	/* bytes/s rows: 50 Mbit/s */
#define NET_BYTES_FRAME	1514		/* their frames: MTU 1500 */
#define NET_PPS		5000ULL		/* packets/s rows ... */
#define NET_PKTS_FRAME	60		/* ... of minimum frames */
#define NET_FEATURES	(1ULL << VIRTIO_F_VERSION_1 | \
			 1ULL << VIRTIO_NET_F_MAC)

static const uint8_t guest_mac[6] = { 0x02, 0x12, 0x34, 0x56, 0x78, 0x9a };
static const uint8_t peer_mac[6] = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01 };
static int net_count_sock = -1;	/* the peer: what the guest sent */
static int net_send_sock = -1;	/* the peer: what the guest gets */

struct ndev {
	struct vh_machine m;
	struct vnet *net;
	struct virtio_pci *vp;
	struct vh_dev d;
	bool open;
};

/* What a limited direction delivered in its window. */
struct nmeas {
	double secs;			/* the window's length */
	uint64_t frames, bytes;		/* in it */
	/* The longest time between two frames in it: much more than the
	 * bucket's time (burst / rate) is a thread that did not run. */
	uint64_t max_gap_ns;
	struct net_stats stats;		/* at its end */
};

static uint64_t
real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static void
write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, s, strlen(s)) < 0)
		fprintf(stderr, "noisy_bench: %s: %s\n", path, strerror(errno));
	close(fd);
}

/*
 * The namespace (it goes, with the TAP, when the process does, however it
 * ends), the persistent TAP up in it with IPv6 off (the kernel sends
 * nothing of its own), and the peer's two packet sockets.
 */
static int
net_setup(char *err, size_t errlen)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	struct ifreq ifr;
	int fd, s, one = 1, big = 64 << 20, sz = NET_HDR_LEN;

	if (unshare(CLONE_NEWNET) < 0) {
		snprintf(err, errlen, "unshare(CLONE_NEWNET): %s",
			 strerror(errno));
		return -errno;
	}
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "/dev/net/tun: %s", strerror(errno));
		return -errno;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NET_TAP);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
	    ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0 ||
	    ioctl(fd, TUNSETPERSIST, 1) < 0) {
		snprintf(err, errlen, "TAP %s: %s", NET_TAP, strerror(errno));
		close(fd);
		return -EIO;
	}
	close(fd);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NET_TAP);
	ifr.ifr_qlen = 1000;	/* the TAP's queue towards its fd */
	if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0 ||
	    ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		snprintf(err, errlen, "TAP %s: %s", NET_TAP, strerror(errno));
		close(s);
		return -EIO;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		snprintf(err, errlen, "TAP %s up: %s", NET_TAP,
			 strerror(errno));
		close(s);
		return -EIO;
	}
	close(s);
	sll.sll_ifindex = (int)if_nametoindex(NET_TAP);
	if (!sll.sll_ifindex) {
		snprintf(err, errlen, "TAP %s: no index", NET_TAP);
		return -ENODEV;
	}

	/* Frames the guest sent, with the kernel's arrival times; not
	 * those the peer sends itself. */
	net_count_sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC,
				htons(ETH_P_ALL));
	sll.sll_protocol = htons(ETH_P_ALL);
	if (net_count_sock < 0 ||
	    setsockopt(net_count_sock, SOL_SOCKET, SO_TIMESTAMPNS, &one,
		       sizeof(one)) < 0 ||
	    setsockopt(net_count_sock, SOL_PACKET, PACKET_IGNORE_OUTGOING,
		       &one, sizeof(one)) < 0 ||
	    setsockopt(net_count_sock, SOL_SOCKET, SO_RCVBUFFORCE, &big,
		       sizeof(big)) < 0 ||
	    bind(net_count_sock, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		snprintf(err, errlen, "counting packet socket: %s",
			 strerror(errno));
		return -EIO;
	}
	/* Protocol 0: a socket that only sends, past the qdisc. */
	net_send_sock = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	sll.sll_protocol = 0;
	if (net_send_sock < 0 ||
	    setsockopt(net_send_sock, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
		       sizeof(one)) < 0 ||
	    bind(net_send_sock, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		snprintf(err, errlen, "sending packet socket: %s",
			 strerror(errno));
		return -EIO;
	}
	return 0;
}

static void
net_frame(uint8_t *p, uint32_t len, const uint8_t *dst, const uint8_t *src)
{
	uint32_t i;

	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	p[12] = NET_ETH_TYPE >> 8;
	p[13] = NET_ETH_TYPE & 0xff;
	for (i = 14; i < len; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 8));
}

static int
ndev_open(struct ndev *nd, const struct ratelimit_limits *rx,
	  const struct ratelimit_limits *tx)
{
	struct net_options o = { .tap = NET_TAP, .tap_fd = -1,
				 .mac = guest_mac, .rx_limits = *rx,
				 .tx_limits = *tx };
	struct vh_dev *d = &nd->d;
	char err[256];
	int r;

	memset(nd, 0, sizeof(*nd));
	r = vh_machine_init(&nd->m, RAM);
	if (r < 0)
		return r;
	r = net_new(&nd->m.mem, &o, &nd->net, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "noisy_bench: %s\n", err);
		vh_machine_destroy(&nd->m);
		return r;
	}
	nd->open = true;
	r = vh_machine_add(&nd->m, net_virtio(nd->net), &nd->vp);
	if (r == 0)
		r = vh_dev_probe(d, &nd->m, nd->vp);
	if (r < 0)
		return r;
	d->kick_by_eventfd = true;
	if (vh_dev_negotiate(d, NET_FEATURES, false) < 0 ||
	    d->features != NET_FEATURES || vh_dev_msix_enable(d) < 0)
		return -EIO;
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, NET_VEC_CFG);
	if (vh_queue_setup(d, NET_RX_QUEUE, NET_QSIZE, NET_VEC_RX) < 0 ||
	    vh_queue_setup(d, NET_TX_QUEUE, NET_QSIZE, NET_VEC_TX) < 0 ||
	    vh_dev_driver_ok(d) < 0)
		return -EIO;
	return 0;
}

static void
ndev_close(struct ndev *nd)
{
	if (!nd->open)
		return;
	virtio_device_destroy(net_virtio(nd->net));
	vh_dev_release(&nd->d);
	vh_machine_destroy(&nd->m);
	virtio_pci_free(nd->vp);
	net_free(nd->net);
	nd->open = false;
}

/*
 * Guest TX limited by l: the transmitq kept full of frames of flen bytes
 * for WARM_NS and until the limiter has made a chain wait (the initial
 * burst is spent), then for seconds more. The window is the peer's: the
 * kernel's arrival times (SO_TIMESTAMPNS) of the frames after the first
 * that came once the burst was spent, up to the last.
 */
static int
net_tx_run(const struct ratelimit_limits *l, uint32_t flen, double seconds,
	   struct nmeas *out)
{
	struct ratelimit_limits none = { 0 };
	static uint8_t got[NET_RX_BUF];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct timespec))];
	} ctl;
	struct iovec iov = { got, sizeof(got) };
	struct ndev nd;
	struct vh_queue *q;
	struct pollfd p[2];
	struct net_stats st;
	struct msghdr msg;
	struct cmsghdr *c;
	struct timespec ts;
	uint64_t gpa, t0, t, warm_rt = 0, end = 0, first = 0, last = 0;
	uint64_t arrived;
	uint32_t sent = 0, done = 0, i, len;
	uint16_t id, old;
	bool started = false;
	ssize_t n;
	int r;

	memset(out, 0, sizeof(*out));
	r = ndev_open(&nd, &none, l);
	if (r < 0)
		goto out;
	q = &nd.d.q[NET_TX_QUEUE];
	r = -ENOMEM;
	gpa = vh_alloc(&nd.m, (uint64_t)NET_SLOTS * (NET_HDR_LEN + NET_RX_BUF),
		       64);
	if (!gpa)
		goto out;
	for (i = 0; i < NET_SLOTS; i++) {
		uint8_t *s = vh_ptr(&nd.m, gpa + (uint64_t)i *
				    (NET_HDR_LEN + NET_RX_BUF),
				    NET_HDR_LEN + flen);

		memset(s, 0, NET_HDR_LEN);
		net_frame(s + NET_HDR_LEN, flen, peer_mac, guest_mac);
	}
	p[0] = (struct pollfd){ .fd = net_count_sock, .events = POLLIN };
	p[1] = (struct pollfd){ .fd = virtio_pci_vector_fd(nd.vp, NET_VEC_TX),
				.events = POLLIN };
	r = 0;
	t0 = now_ns();
	for (;;) {
		t = now_ns();
		if (end && t >= end)
			break;
		if (!end && t - t0 >= WARM_NS) {
			net_get_stats(nd.net, &st);
			if (st.tx_throttled) {
				warm_rt = real_ns();
				end = t + (uint64_t)(seconds * NSEC);
			}
		}
		if (!end && t - t0 > 10 * NSEC) {
			fprintf(stderr, "noisy_bench: NIC TX: the limiter "
				"never made a frame wait in 10 s\n");
			r = -EIO;
			goto out;
		}
		while (vh_queue_get_used(q, &id, &len))
			done++;
		old = q->avail_idx;
		/* Chains complete in order: slot sent % NET_SLOTS is free. */
		while (sent - done < NET_SLOTS) {
			struct vh_buf b = { gpa + (uint64_t)(sent % NET_SLOTS) *
					    (NET_HDR_LEN + NET_RX_BUF),
					    NET_HDR_LEN + flen };

			if (vh_queue_add(q, &b, 1, 0, false) < 0)
				break;
			sent++;
		}
		if (vh_queue_kick_needed(q, old))
			vh_queue_kick(&nd.d, NET_TX_QUEUE);
		if (poll(p, 2, 2) < 0 && errno != EINTR) {
			r = -errno;
			goto out;
		}
		if (p[1].revents & POLLIN)
			(void)vh_wait_irq(&nd.d, NET_VEC_TX, 0);
		for (;;) {
			msg = (struct msghdr){
				.msg_iov = &iov, .msg_iovlen = 1,
				.msg_control = ctl.buf,
				.msg_controllen = sizeof(ctl.buf) };
			n = recvmsg(net_count_sock, &msg, MSG_DONTWAIT);
			if (n < 0)
				break;
			if (n < 14 || memcmp(got + 6, guest_mac, 6) != 0)
				continue;
			if (n != (ssize_t)flen) {
				fprintf(stderr, "noisy_bench: NIC TX: a frame "
					"of %zd bytes, not %u\n", n, flen);
				r = -EIO;
				goto out;
			}
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
			if (!arrived) {
				fprintf(stderr, "noisy_bench: NIC TX: no "
					"SCM_TIMESTAMPNS on a frame\n");
				r = -EIO;
				goto out;
			}
			if (!warm_rt || arrived < warm_rt)
				continue;
			if (!started) {
				started = true;
				first = last = arrived;
				continue;
			}
			out->frames++;
			out->bytes += (uint64_t)n;
			if (arrived - last > out->max_gap_ns)
				out->max_gap_ns = arrived - last;
			last = arrived;
		}
	}
	net_get_stats(nd.net, &out->stats);
	out->secs = (double)(last - first) / NSEC;
	if (out->stats.tx_errors) {
		fprintf(stderr, "noisy_bench: NIC TX: the TAP refused %llu "
			"frames\n", (unsigned long long)out->stats.tx_errors);
		r = -EIO;
	}
out:
	ndev_close(&nd);
	return r;
}

/*
 * Guest RX limited by l: the peer sends frames of flen bytes into the TAP
 * at twice fps (its queue fills; the kernel drops the rest, as on a
 * link), the guest keeps its receive buffers posted. The window opens
 * WARM_NS after the start and once the limiter has made a read wait (the
 * initial burst spent) and lasts seconds; it counts the frames the
 * driver reaps after the first in it, timed when reaped.
 */
static int
net_rx_run(const struct ratelimit_limits *l, uint32_t flen, double fps,
	   double seconds, struct nmeas *out)
{
	struct ratelimit_limits none = { 0 };
	static uint8_t frame[NET_RX_BUF];
	uint64_t rx_gpa[NET_QSIZE];
	struct ndev nd;
	struct vh_queue *q;
	struct pollfd p;
	struct net_stats st;
	uint64_t pool, t0, t, want, injected = 0, end = 0, first = 0;
	uint64_t last = 0;
	unsigned int i, k;
	bool started = false;
	uint16_t id, old;
	uint32_t len;
	ssize_t n;
	int r, head;

	memset(out, 0, sizeof(*out));
	r = ndev_open(&nd, l, &none);
	if (r < 0)
		goto out;
	q = &nd.d.q[NET_RX_QUEUE];
	r = -ENOMEM;
	pool = vh_alloc(&nd.m, (uint64_t)NET_QSIZE * NET_RX_BUF, 64);
	if (!pool)
		goto out;
	old = q->avail_idx;
	for (i = 0; i < NET_QSIZE; i++) {
		uint64_t b = pool + (uint64_t)i * NET_RX_BUF;

		head = vh_queue_add(q, &(struct vh_buf){ b, NET_RX_BUF }, 0, 1,
				    false);
		if (head < 0)
			goto out;
		rx_gpa[head] = b;
	}
	if (vh_queue_kick_needed(q, old))
		vh_queue_kick(&nd.d, NET_RX_QUEUE);
	net_frame(frame, flen, guest_mac, peer_mac);
	p = (struct pollfd){ .fd = virtio_pci_vector_fd(nd.vp, NET_VEC_RX),
			     .events = POLLIN };
	r = 0;
	t0 = now_ns();
	for (;;) {
		t = now_ns();
		if (end && t >= end)
			break;
		if (!end && t - t0 >= WARM_NS) {
			net_get_stats(nd.net, &st);
			if (st.rx_throttled)
				end = t + (uint64_t)(seconds * NSEC);
		}
		if (!end && t - t0 > 10 * NSEC) {
			fprintf(stderr, "noisy_bench: NIC RX: the limiter "
				"never made a read wait in 10 s\n");
			r = -EIO;
			goto out;
		}
		/* Twice the rate, at most 64 frames a turn. */
		want = (uint64_t)(2 * fps * (double)(t - t0) / NSEC) + 1;
		for (k = 0; injected < want && k < 64; k++) {
			n = send(net_send_sock, frame, flen, MSG_DONTWAIT);
			/* A full TAP queue may be told as such. */
			if (n < 0 && errno != ENOBUFS && errno != EAGAIN) {
				r = -errno;
				goto out;
			}
			injected++;
		}
		if (poll(&p, 1, 1) < 0 && errno != EINTR) {
			r = -errno;
			goto out;
		}
		if (p.revents & POLLIN)
			(void)vh_wait_irq(&nd.d, NET_VEC_RX, 0);
		old = q->avail_idx;
		while (vh_queue_get_used(q, &id, &len)) {
			uint64_t b = rx_gpa[id];

			if (len != NET_HDR_LEN + flen) {
				fprintf(stderr, "noisy_bench: NIC RX: a frame "
					"of %u bytes, not %u\n",
					len - NET_HDR_LEN, flen);
				r = -EIO;
				goto out;
			}
			if (end) {
				t = now_ns();
				if (!started) {
					started = true;
					first = last = t;
				} else {
					out->frames++;
					out->bytes += flen;
					if (t - last > out->max_gap_ns)
						out->max_gap_ns = t - last;
					last = t;
				}
			}
			head = vh_queue_add(q, &(struct vh_buf){ b,
						NET_RX_BUF }, 0, 1, false);
			if (head < 0) {
				r = -ENOSPC;
				goto out;
			}
			rx_gpa[head] = b;
		}
		if (q->avail_idx != old && vh_queue_kick_needed(q, old))
			vh_queue_kick(&nd.d, NET_RX_QUEUE);
	}
	net_get_stats(nd.net, &out->stats);
	out->secs = (double)(last - first) / NSEC;
out:
	ndev_close(&nd);
	return r;
}

/*
 * The NIC rows: each direction limited in bytes/s (1514-byte frames) and
 * in packets/s (60-byte frames), each with a 10 ms and a 1 s bucket.
 */
static int
run_net(double seconds)
{
	static const char *const dir_key[2] = { "tx", "rx" };
	char err[256];
	int di, k, r;

	if (geteuid() != 0 || access("/dev/net/tun", R_OK | W_OK) != 0) {
		fprintf(stderr, "noisy_bench: the NIC rows need root and "
			"/dev/net/tun\n");
		return -EPERM;
	}
	r = net_setup(err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "noisy_bench: %s\n", err);
		return r;
	}
	printf("NIC: TAP %s in a network namespace of its own, peer "
	       "AF_PACKET; %.1f s per measurement once the burst is spent\n",
	       NET_TAP, seconds);
	for (di = 0; di < 2; di++) {
		for (k = 0; k < 4; k++) {
			bool pkts = k >= 2, short_refill = k % 2 == 0;
			uint64_t rate = pkts ? NET_PPS : NET_BPS;
			uint64_t burst = short_refill ? rate / 100 : rate;
			uint32_t flen = pkts ? NET_PKTS_FRAME : NET_BYTES_FRAME;
			struct ratelimit_limits l = { 0 };
			struct nmeas m;
			double achieved, ratio;
			char key[64], k2[96];

			if (pkts) {
				l.ops_per_sec = rate;
				l.ops_burst = burst;
			} else {
				l.bytes_per_sec = rate;
				l.bytes_burst = burst;
			}
			if (di == 0)
				r = net_tx_run(&l, flen, seconds, &m);
			else
				r = net_rx_run(&l, flen, pkts ? (double)rate :
					       (double)rate / flen, seconds,
					       &m);
			if (r < 0) {
				fprintf(stderr, "noisy_bench: NIC %s run: %s\n",
					dir_key[di], strerror(-r));
				return r;
			}
			if (m.secs <= 0) {
				fprintf(stderr, "noisy_bench: NIC %s run: "
					"nothing in the window\n",
					dir_key[di]);
				return -EIO;
			}
			achieved = (double)(pkts ? m.frames : m.bytes) / m.secs;
			ratio = achieved / (double)rate;
			printf("NIC %s refill %s: %s limit %llu, burst %llu "
			       "(%u-byte frames): achieved %.1f (%.3f x), "
			       "target 1 +- %.2f: %s; throttled %llu times, "
			       "longest gap %.1f ms\n",
			       dir_key[di], short_refill ? "10 ms" : "1 s",
			       pkts ? "packets/s" : "bytes/s",
			       (unsigned long long)rate,
			       (unsigned long long)burst, flen, achieved,
			       ratio, TOLERANCE, verdict(ratio),
			       (unsigned long long)(di == 0 ?
				m.stats.tx_throttled : m.stats.rx_throttled),
			       (double)m.max_gap_ns / 1e6);
			fflush(stdout);
			if (!results)
				continue;
			snprintf(key, sizeof(key), "noisy.net.%s.refill_%s.%s",
				 dir_key[di], short_refill ? "10ms" : "1s",
				 pkts ? "pkts" : "bytes");
			snprintf(k2, sizeof(k2), "%s.limit", key);
			result(k2, (double)rate);
			snprintf(k2, sizeof(k2), "%s.burst", key);
			result(k2, (double)burst);
			snprintf(k2, sizeof(k2), "%s.frame_bytes", key);
			result(k2, flen);
			snprintf(k2, sizeof(k2), "%s.achieved", key);
			result(k2, achieved);
			snprintf(k2, sizeof(k2), "%s.ratio", key);
			result(k2, ratio);
			snprintf(k2, sizeof(k2), "%s.max_gap_ms", key);
			result(k2, (double)m.max_gap_ns / 1e6);
		}
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *dir = "/var/tmp", *out = NULL, *parts = "blk,net";
	uint64_t mib = 128;
	double seconds = 5;
	int opt, r = 0;

	while ((opt = getopt(argc, argv, "d:s:t:o:p:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		case 'o': out = optarg; break;
		case 'p': parts = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-d DIR] [-s MiB] "
				"[-t SECONDS] [-o RESULTS] [-p blk,net]\n",
				argv[0]);
			return 2;
		}
	}
	if (mib < 16 || mib > 65536 || seconds <= 0 || seconds > 3600 ||
	    (!strstr(parts, "blk") && !strstr(parts, "net"))) {
		fprintf(stderr, "noisy_bench: bad arguments\n");
		return 2;
	}
	if (out) {
		results = fopen(out, "w");
		if (!results) {
			fprintf(stderr, "noisy_bench: %s: %s\n", out,
				strerror(errno));
			return 1;
		}
	}
	log_set_level(LOG_LEVEL_WARN);
	if (strstr(parts, "blk"))
		r = run_blk(dir, mib, seconds);
	/* Last: the process leaves the host's network namespace. */
	if (r == 0 && strstr(parts, "net") && run_net(seconds) < 0)
		r = 1;
	if (results)
		fclose(results);
	return r;
}
