/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk throughput beside the physical limit: the same I/O pattern
 * on the same O_DIRECT file, once through our device (vmm-core's
 * virtio-blk on the virtio-pci transport, driven by the host-side driver
 * harness as a guest driver would: requests in guest memory, kicks
 * through the queue's eventfd as KVM's ioeventfd would signal it,
 * completions through the MSI-X vector's eventfd) and once by a bare
 * io_uring loop (submit, reap, resubmit; nothing else).
 *
 *	blk_bench [-f FILE] [-s MiB] [-t SECONDS] [-r RUNS] [-p PATTERN]
 *
 * Patterns: 4 KiB random reads at queue depth 32 (IOPS), 1 MiB sequential
 * reads and writes at queue depth 4 (MB/s); -p N runs only the Nth (0-2).
 * Runs alternate bare / device; the table has medians, the ratio (target
 * >= 0.90) and the CPU time per request of the device's I/O thread (from
 * /proc/self/task/TID/stat) beside that of the bare loop's thread
 * (RUSAGE_THREAD).
 *
 * The file must be on a file system with O_DIRECT (not tmpfs, where
 * O_DIRECT is a page-cache copy); it is created and filled with data
 * first (so that reads reach the disk) and left for the next run.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <linux/virtio_pci.h>

#include "../tests/unit/helpers/virtio_harness.h"
#include "log.h"
#include "virtio/blk.h"

#define RAM		(256ULL << 20)
#define MAX_QD		64
#define TARGET		0.90

struct pattern {
	const char *name;
	bool write;
	bool random;
	uint32_t bs;
	unsigned int qd;
	bool iops;		/* report IOPS, else MB/s */
};

static const struct pattern patterns[] = {
	{ "4 KiB random read, QD32", false, true, 4096, 32, true },
	{ "1 MiB sequential read, QD4", false, false, 1 << 20, 4, false },
	{ "1 MiB sequential write, QD4", true, false, 1 << 20, 4, false },
};
#define NR_PATTERNS (sizeof(patterns) / sizeof(patterns[0]))

struct result {
	double rate;		/* IOPS or MB/s */
	double cpu_us;		/* CPU per request of the serving thread */
	uint64_t reqs;
};

static uint64_t file_bytes;
static double seconds = 4;
static uint64_t rng = 88172645463325252ULL;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The next offset of the pattern; *seq is the sequential cursor. */
static uint64_t
next_offset(const struct pattern *p, uint64_t *seq)
{
	uint64_t off;

	if (p->random)
		return next_rand() % (file_bytes / p->bs) * p->bs;
	off = *seq;
	*seq += p->bs;
	if (*seq + p->bs > file_bytes)
		*seq = 0;
	return off;
}

static double
rate_of(const struct pattern *p, uint64_t reqs, double dt)
{
	return p->iops ? (double)reqs / dt :
	       (double)reqs * p->bs / dt / 1e6;
}

static double
thread_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of one of our threads, in seconds. */
static double
task_cpu(int tid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* Fields after the command: state is field 3; utime 14, stime 15. */
	for (i = 3, p += 2; i < 14 && p; i++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p || sscanf(p, "%lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Thread ids of this process, into ids (up to max). */
static int
list_tasks(int *ids, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			ids[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

/* --- The bare loop ------------------------------------------------------ */

static int
bare_run(int fd, const struct pattern *p, struct result *res)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct iovec iov[MAX_QD];
	uint64_t reqs = 0, seq = 0;
	unsigned int i, inflight;
	double t0, c0, end;
	int r;

	r = io_uring_queue_init(p->qd, &ring, 0);
	if (r < 0)
		return r;
	for (i = 0; i < p->qd; i++) {
		if (posix_memalign(&iov[i].iov_base, 4096, p->bs))
			return -ENOMEM;
		memset(iov[i].iov_base, 0x5a, p->bs);
		iov[i].iov_len = p->bs;
	}
	t0 = now();
	c0 = thread_cpu();
	end = t0 + seconds;
	for (i = 0; i < p->qd; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

		if (p->write)
			io_uring_prep_writev(sqe, fd, &iov[i], 1,
					     next_offset(p, &seq));
		else
			io_uring_prep_readv(sqe, fd, &iov[i], 1,
					    next_offset(p, &seq));
		io_uring_sqe_set_data64(sqe, i);
	}
	io_uring_submit(&ring);
	inflight = p->qd;
	while (inflight) {
		unsigned int head, n = 0;
		bool stop = now() >= end;

		r = io_uring_wait_cqe(&ring, &cqe);
		if (r < 0)
			return r;
		io_uring_for_each_cqe(&ring, head, cqe) {
			struct io_uring_sqe *sqe;

			i = (unsigned int)io_uring_cqe_get_data64(cqe);
			n++;
			inflight--;
			if (cqe->res != (int)p->bs) {
				fprintf(stderr, "bare: I/O returned %d\n",
					cqe->res);
				return -EIO;
			}
			reqs++;
			if (stop)
				continue;
			sqe = io_uring_get_sqe(&ring);
			if (p->write)
				io_uring_prep_writev(sqe, fd, &iov[i], 1,
						     next_offset(p, &seq));
			else
				io_uring_prep_readv(sqe, fd, &iov[i], 1,
						    next_offset(p, &seq));
			io_uring_sqe_set_data64(sqe, i);
			inflight++;
		}
		io_uring_cq_advance(&ring, n);
		if (!stop)
			io_uring_submit(&ring);
	}
	res->reqs = reqs;
	res->rate = rate_of(p, reqs, now() - t0);
	res->cpu_us = (thread_cpu() - c0) * 1e6 / (double)reqs;
	io_uring_queue_exit(&ring);
	for (i = 0; i < p->qd; i++)
		free(iov[i].iov_base);
	return 0;
}

/* --- Through the device ------------------------------------------------- */

struct dev_bench {
	struct vh_machine m;
	struct blk *b;
	struct virtio_pci *vp;
	struct vh_dev d;
	int tids[64];
	int nr_tids;
};

static int
dev_open(struct dev_bench *db, const char *path)
{
	struct blk_options o = { .path = path, .direct = true,
				 .engine = BLK_ENGINE_URING };
	int before[64], after[64], nb, na, i, j;
	char err[256];
	int r;

	memset(db, 0, sizeof(*db));
	r = vh_machine_init(&db->m, RAM);
	if (r < 0)
		return r;
	nb = list_tasks(before, 64);
	r = blk_new(&o, &db->m.mem, &db->b, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "blk_bench: %s\n", err);
		return r;
	}
	/* The device's own threads: the ones blk_new started. */
	na = list_tasks(after, 64);
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb && before[j] != after[i]; j++)
			;
		if (j == nb)
			db->tids[db->nr_tids++] = after[i];
	}
	r = vh_machine_add(&db->m, blk_virtio(db->b), &db->vp);
	if (r == 0)
		r = vh_dev_probe(&db->d, &db->m, db->vp);
	if (r < 0)
		return r;
	db->d.kick_by_eventfd = true;
	if (vh_dev_negotiate(&db->d, ~0ULL, false) < 0 ||
	    vh_dev_msix_enable(&db->d) < 0)
		return -EIO;
	vh_common_write(&db->d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	if (vh_queue_setup(&db->d, 0, 0, 1) < 0 || vh_dev_driver_ok(&db->d) < 0)
		return -EIO;
	return 0;
}

static void
dev_close(struct dev_bench *db)
{
	blk_stop(db->b);
	vh_dev_release(&db->d);
	vh_machine_destroy(&db->m);
	virtio_pci_free(db->vp);
	blk_free(db->b);
}

static double
dev_cpu(struct dev_bench *db)
{
	double c = 0;
	int i;

	for (i = 0; i < db->nr_tids; i++)
		c += task_cpu(db->tids[i]);
	return c;
}

struct slot {
	uint64_t hdr, data, status;
};

static void
dev_add(struct dev_bench *db, const struct pattern *p, struct slot *s,
	uint64_t off, int *head_slot, int si)
{
	uint8_t *h = vh_ptr(&db->m, s->hdr, 16);
	uint32_t type = htole32(p->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	uint64_t sector = htole64(off / 512);
	struct vh_buf b[3] = { { s->hdr, 16 }, { s->data, p->bs },
			       { s->status, 1 } };
	int head;

	memcpy(h, &type, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &sector, 8);
	head = vh_queue_add(&db->d.q[0], b, p->write ? 2 : 1,
			    p->write ? 1 : 2, true);
	if (head < 0) {
		fprintf(stderr, "blk_bench: queue full\n");
		exit(1);
	}
	head_slot[head] = si;
}

static int
dev_run(struct dev_bench *db, const struct pattern *p, struct result *res)
{
	struct vh_queue *q = &db->d.q[0];
	struct slot slots[MAX_QD];
	int head_slot[BLK_QUEUE_SIZE];
	uint64_t reqs = 0, seq = 0, inflight = 0;
	double t0, c0, end;
	unsigned int i;
	uint16_t old, id;
	uint32_t len;

	for (i = 0; i < p->qd; i++) {
		slots[i].hdr = vh_alloc(&db->m, 16, 16);
		slots[i].data = vh_alloc(&db->m, p->bs, 4096);
		slots[i].status = vh_alloc(&db->m, 1, 1);
		if (!slots[i].hdr || !slots[i].data || !slots[i].status)
			return -ENOMEM;
		memset(vh_ptr(&db->m, slots[i].data, p->bs), 0x5a, p->bs);
	}
	t0 = now();
	c0 = dev_cpu(db);
	end = t0 + seconds;
	old = q->avail_idx;
	for (i = 0; i < p->qd; i++)
		dev_add(db, p, &slots[i], next_offset(p, &seq), head_slot,
			(int)i);
	inflight = p->qd;
	if (vh_queue_kick_needed(q, old))
		vh_queue_kick(&db->d, 0);
	while (inflight) {
		bool stop = now() >= end;
		unsigned int got = 0;

		old = q->avail_idx;
		while (vh_queue_get_used(q, &id, &len)) {
			int si = head_slot[id];

			got++;
			inflight--;
			if (*(uint8_t *)vh_ptr(&db->m, slots[si].status, 1)) {
				fprintf(stderr, "blk_bench: request failed\n");
				return -EIO;
			}
			reqs++;
			if (stop)
				continue;
			dev_add(db, p, &slots[si], next_offset(p, &seq),
				head_slot, si);
			inflight++;
		}
		if (got && !stop && vh_queue_kick_needed(q, old))
			vh_queue_kick(&db->d, 0);
		if (!got && inflight)
			vh_wait_irq(&db->d, 1, 1000);
	}
	res->reqs = reqs;
	res->rate = rate_of(p, reqs, now() - t0);
	res->cpu_us = (dev_cpu(db) - c0) * 1e6 / (double)reqs;
	return 0;
}

/* --- Main ----------------------------------------------------------------- */

static int
prepare_file(const char *path, uint64_t bytes)
{
	struct stat st;
	uint8_t *buf;
	uint64_t off;
	int fd;

	if (stat(path, &st) == 0 && (uint64_t)st.st_size == bytes)
		return 0;
	fprintf(stderr, "blk_bench: writing %llu MiB of data to %s\n",
		(unsigned long long)(bytes >> 20), path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	if (fd < 0)
		return -errno;
	if (posix_memalign((void **)&buf, 4096, 1 << 20)) {
		close(fd);
		return -ENOMEM;
	}
	for (off = 0; off < bytes; off += 1 << 20) {
		for (size_t i = 0; i < (1 << 20); i += 8)
			*(uint64_t *)(void *)(buf + i) = next_rand();
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

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	const char *path = "blk-bench.img";
	uint64_t mib = 1024;
	int runs = 3, only = -1, opt, fd, r;
	double bare_rate[NR_PATTERNS][16], dev_rate[NR_PATTERNS][16];
	double bare_cpu[NR_PATTERNS][16], dev_cpu_us[NR_PATTERNS][16];
	unsigned int pi;
	int k;

	while ((opt = getopt(argc, argv, "f:s:t:r:p:")) != -1) {
		switch (opt) {
		case 'f': path = optarg; break;
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 't': seconds = atof(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 'p': only = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-f FILE] [-s MiB] "
				"[-t SECONDS] [-r RUNS] [-p PATTERN]\n",
				argv[0]);
			return 2;
		}
	}
	if (runs < 1 || runs > 16 || mib < 16 || seconds <= 0 ||
	    only < -1 || only >= (int)NR_PATTERNS) {
		fprintf(stderr, "blk_bench: bad arguments\n");
		return 2;
	}
	file_bytes = mib << 20;
	log_set_level(LOG_LEVEL_WARN);
	r = prepare_file(path, file_bytes);
	if (r < 0) {
		fprintf(stderr, "blk_bench: %s: %s (a file system with "
			"O_DIRECT is needed)\n", path, strerror(-r));
		return 1;
	}
	fd = open(path, O_RDWR | O_DIRECT);
	if (fd < 0) {
		fprintf(stderr, "blk_bench: %s: %s\n", path, strerror(errno));
		return 1;
	}
	printf("blk_bench: %s, %llu MiB, O_DIRECT, %.1f s per run, %d runs "
	       "each, alternating\n", path, (unsigned long long)mib, seconds,
	       runs);
	for (pi = 0; pi < NR_PATTERNS; pi++) {
		const struct pattern *p = &patterns[pi];

		if (only >= 0 && pi != (unsigned int)only)
			continue;
		for (k = 0; k < runs; k++) {
			struct dev_bench db;
			struct result br, dr;

			/* The bare loop owns the file's lock-free fd; the
			 * device takes the image's lock. */
			if (bare_run(fd, p, &br) < 0)
				return 1;
			if (dev_open(&db, path) < 0) {
				fprintf(stderr, "blk_bench: device setup "
					"failed\n");
				return 1;
			}
			if (dev_run(&db, p, &dr) < 0)
				return 1;
			dev_close(&db);
			bare_rate[pi][k] = br.rate;
			dev_rate[pi][k] = dr.rate;
			bare_cpu[pi][k] = br.cpu_us;
			dev_cpu_us[pi][k] = dr.cpu_us;
			printf("  %-28s run %d: bare %10.1f  device %10.1f %s"
			       "  (CPU/req bare %.1f us, device thread %.1f us)\n",
			       p->name, k + 1, br.rate, dr.rate,
			       p->iops ? "IOPS" : "MB/s", br.cpu_us, dr.cpu_us);
			fflush(stdout);
		}
	}
	printf("\n%-28s %14s %14s %7s %8s %7s %14s %14s\n", "pattern (median)",
	       "bare io_uring", "virtio-blk", "ratio", "target", "result",
	       "bare CPU/req", "device CPU/req");
	for (pi = 0; pi < NR_PATTERNS; pi++) {
		const struct pattern *p = &patterns[pi];
		double b, d;
		char bs[32], ds[32];

		if (only >= 0 && pi != (unsigned int)only)
			continue;
		b = median(bare_rate[pi], runs);
		d = median(dev_rate[pi], runs);
		snprintf(bs, sizeof(bs), "%.0f %s", b, p->iops ? "IOPS" : "MB/s");
		snprintf(ds, sizeof(ds), "%.0f %s", d, p->iops ? "IOPS" : "MB/s");
		printf("%-28s %14s %14s %7.3f %8s %7s %11.1f us %11.1f us\n",
		       p->name, bs, ds, d / b, ">= 0.90",
		       d / b >= TARGET ? "MET" : "MISSED",
		       median(bare_cpu[pi], runs), median(dev_cpu_us[pi], runs));
	}
	close(fd);
	return 0;
}
