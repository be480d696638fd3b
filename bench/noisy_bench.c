/* SPDX-License-Identifier: MIT */
/*
 * Noisy neighbours on a disk: virtio-blk I/O limits measured with the
 * host-side driver harness as each disk's guest driver (requests in guest
 * memory, kicks through the queue's eventfd as KVM's ioeventfd would,
 * completions through the MSI-X vector's eventfd).
 *
 *	noisy_bench [-d DIR] [-s MiB] [-t SECONDS] [-o RESULTS]
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
 * Every rate is counted from the completions the driver sees in a window
 * that starts WARM_NS after the first kick, when the initial burst is
 * spent. Results go to stdout as a table and, with -o, as key=value lines.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#include "../tests/unit/helpers/virtio_harness.h"
#include "log.h"
#include "ratelimit.h"
#include "virtio/blk.h"

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

int
main(int argc, char **argv)
{
	const char *dir = "/var/tmp", *out = NULL;
	char pa[512], pb[512];
	uint64_t mib = 128, file_bytes;
	double seconds = 5, alone, loaded, hammer_alone, hammer_loaded;
	struct statfs sfs;
	int opt, r, k;

	while ((opt = getopt(argc, argv, "d:s:t:o:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		case 'o': out = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-d DIR] [-s MiB] "
				"[-t SECONDS] [-o RESULTS]\n", argv[0]);
			return 2;
		}
	}
	if (mib < 16 || mib > 65536 || seconds <= 0 || seconds > 3600) {
		fprintf(stderr, "noisy_bench: bad arguments\n");
		return 2;
	}
	if (statfs(dir, &sfs) < 0 || sfs.f_type == TMPFS_MAGIC) {
		fprintf(stderr, "noisy_bench: %s: not a directory on a real "
			"file system (tmpfs has no disk to share)\n", dir);
		return 1;
	}
	file_bytes = mib << 20;
	snprintf(pa, sizeof(pa), "%s/a.img", dir);
	snprintf(pb, sizeof(pb), "%s/b.img", dir);
	if (out) {
		results = fopen(out, "w");
		if (!results) {
			fprintf(stderr, "noisy_bench: %s: %s\n", out,
				strerror(errno));
			return 1;
		}
	}
	log_set_level(LOG_LEVEL_WARN);
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
	if (results)
		fclose(results);
	return 0;
}
