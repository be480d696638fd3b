/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk through the host-side driver harness (the test plays the
 * guest's driver over the virtio-pci transport), against image files in
 * a temporary directory, checked with pread on the file: config space and
 * features, every request type, FLUSH durability across SIGKILL, GET_ID,
 * read-only refusal, holes from DISCARD and WRITE_ZEROES, 128 requests in
 * flight, chains of up to seg_max buffers, write-through without FLUSH,
 * requests served after a completion without a kick of their own, reset
 * and stop in the middle of I/O, hostile requests, O_DIRECT with
 * bounce buffers, several queues, the OFD lock and the open errors; the
 * I/O limits: back-pressure (held requests stay in the ring), exact
 * spacing, what each request type costs, a request larger than the
 * bucket, changes while requests wait, reset of a held request, queues
 * taking turns, bad limits. The request tests run once on io_uring and
 * once on the thread pool. (Rates over seconds: test_blk_limits.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#include "helpers/virtio_harness.h"
#include "log.h"
#include "virtio/blk.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define RAM		(128ULL << 20)
#define TMO		5000
#define IMG_SIZE	(4ULL << 20)
#define SECT		512u

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_ALL	(~0ULL)

static enum blk_engine engine_uring = BLK_ENGINE_URING;
static enum blk_engine engine_threads = BLK_ENGINE_THREADS;

struct fix {
	enum blk_engine engine;
	char dir[64];
	char path[128];
	int fd;			/* the image, for checks */
	struct vh_machine m;
	struct blk *b;
	struct virtio_pci *vp;
	struct vh_dev d;
	bool up;
};

struct rq {
	uint64_t hdr, status;
	int head;
};

/* --- Helpers --------------------------------------------------------- */

static void
fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int
make_image(const char *path, uint64_t size, uint32_t seed)
{
	uint8_t *buf = malloc(size ? size : 1);
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	fill_pattern(buf, size, seed);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || pwrite(fd, buf, size, 0) != (ssize_t)size)
		r = -errno;
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

static void
read_file(struct fix *f, uint64_t off, void *dst, size_t n)
{
	assert_int_equal(pread(f->fd, dst, n, (off_t)off), (ssize_t)n);
}

static int
fix_open(struct fix *f, const struct blk_options *base)
{
	struct blk_options o = *base;
	char err[256];
	int r;

	o.path = f->path;
	if (o.engine == BLK_ENGINE_AUTO)
		o.engine = f->engine;
	r = blk_new(&o, &f->m.mem, &f->b, err, sizeof(err));
	if (r < 0) {
		print_error("blk_new: %s\n", err);
		return r;
	}
	assert_int_equal(vh_machine_add(&f->m, blk_virtio(f->b), &f->vp), 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	f->d.kick_by_eventfd = true;
	return 0;
}

static void
fix_close(struct fix *f)
{
	if (!f->b)
		return;
	blk_stop(f->b);
	vh_dev_release(&f->d);
	/* The host bridge cannot unplug: a new one for the next device. */
	pci_host_free(f->m.host);
	f->m.host = pci_host_new(&f->m.pio, &f->m.mmio, NULL);
	assert_non_null(f->m.host);
	virtio_pci_free(f->vp);
	blk_free(f->b);
	f->b = NULL;
	f->vp = NULL;
	memset(&f->d, 0, sizeof(f->d));
	f->up = false;
}

static int
setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->engine = *state ? *(const enum blk_engine *)*state :
		    BLK_ENGINE_URING;
	strcpy(f->dir, "/tmp/test_blk.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/disk.img", f->dir);
	assert_int_equal(make_image(f->path, IMG_SIZE, 1), 0);
	f->fd = open(f->path, O_RDONLY);
	assert_true(f->fd >= 0);
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix *f = *state;
	char cmd[160];

	fix_close(f);
	vh_machine_destroy(&f->m);
	close(f->fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		print_error("could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* Negotiate wanted, MSI-X, queues 0..nq-1 (vectors 1..), DRIVER_OK. */
static void
bring_up_q(struct fix *f, uint64_t wanted, unsigned int nq)
{
	struct vh_dev *d = &f->d;
	unsigned int q;

	assert_int_equal(vh_dev_negotiate(d, wanted, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, 0);
	for (q = 0; q < nq; q++)
		assert_int_equal(vh_queue_setup(d, q, 0, (uint16_t)(q + 1)), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
	f->up = true;
}

static void
bring_up(struct fix *f)
{
	bring_up_q(f, F_ALL, 1);
}

static void
open_up(struct fix *f)
{
	struct blk_options o = { 0 };

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
}

/* A request: header, nd data buffers (device-writable for reads), status. */
static void
rq_add(struct fix *f, unsigned int q, uint32_t type, uint64_t sector,
       const struct vh_buf *data, unsigned int nd, bool writable,
       bool indirect, struct rq *r)
{
	struct vh_buf b[VH_INDIRECT_MAX];
	uint8_t hdr[16];
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);
	unsigned int i;

	assert_true(nd + 2 <= VH_INDIRECT_MAX);
	r->hdr = vh_alloc(&f->m, 16, 8);
	r->status = vh_alloc(&f->m, 1, 1);
	assert_true(r->hdr && r->status);
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, &t, 4);
	memcpy(hdr + 8, &s, 8);
	memcpy(vh_ptr(&f->m, r->hdr, 16), hdr, 16);
	*(uint8_t *)vh_ptr(&f->m, r->status, 1) = 0xee;
	b[0] = (struct vh_buf){ r->hdr, 16 };
	for (i = 0; i < nd; i++)
		b[1 + i] = data[i];
	b[1 + nd] = (struct vh_buf){ r->status, 1 };
	r->head = vh_queue_add(&f->d.q[q], b, writable ? 1 : 1 + nd,
			       writable ? nd + 1 : 1, indirect);
	assert_true(r->head >= 0);
}

static uint8_t
status_of(struct fix *f, const struct rq *r)
{
	return *(uint8_t *)vh_ptr(&f->m, r->status, 1);
}

/* Kick queue q and wait for r's completion; returns its status byte. */
static uint8_t
rq_run(struct fix *f, unsigned int q, struct rq *r, uint32_t *ret_len)
{
	uint16_t id;
	uint32_t len;

	vh_queue_kick(&f->d, q);
	if (!vh_queue_wait_used(&f->d.q[q], &id, &len, TMO))
		fail_msg("queue %u: head %d not completed within %d ms", q,
			 r->head, TMO);
	assert_int_equal(id, r->head);
	if (ret_len)
		*ret_len = len;
	return status_of(f, r);
}

/* One request with one data buffer of len bytes at a fresh gpa. */
static uint8_t
simple(struct fix *f, uint32_t type, uint64_t sector, uint64_t *gpa,
       uint32_t len, bool writable)
{
	struct vh_buf b;
	struct rq r;

	if (!*gpa)
		*gpa = vh_alloc(&f->m, len ? len : 1, 4096);
	b = (struct vh_buf){ *gpa, len };
	rq_add(f, 0, type, sector, &b, len ? 1 : 0, writable, false, &r);
	return rq_run(f, 0, &r, NULL);
}

static uint8_t
do_write(struct fix *f, uint64_t sector, const void *src, uint32_t len)
{
	uint64_t gpa = vh_alloc(&f->m, len, 4096);

	memcpy(vh_ptr(&f->m, gpa, len), src, len);
	return simple(f, VIRTIO_BLK_T_OUT, sector, &gpa, len, false);
}

static uint8_t
do_read(struct fix *f, uint64_t sector, void *dst, uint32_t len)
{
	uint64_t gpa = 0;
	uint8_t st = simple(f, VIRTIO_BLK_T_IN, sector, &gpa, len, true);

	memcpy(dst, vh_ptr(&f->m, gpa, len), len);
	return st;
}

/* A discard / write-zeroes request with n segments. */
static uint8_t
do_segs(struct fix *f, uint32_t type, const uint64_t *sector,
	const uint32_t *nsect, const uint32_t *flags, unsigned int n)
{
	uint64_t gpa = vh_alloc(&f->m, 16ULL * (n ? n : 1), 8);
	uint8_t *p = vh_ptr(&f->m, gpa, 16ULL * (n ? n : 1));
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t s = htole64(sector[i]);
		uint32_t c = htole32(nsect[i]), fl = htole32(flags[i]);

		memcpy(p + 16 * i, &s, 8);
		memcpy(p + 16 * i + 8, &c, 4);
		memcpy(p + 16 * i + 12, &fl, 4);
	}
	return simple(f, type, 0, &gpa, 16 * n, false);
}

static uint64_t
file_hash(int fd)
{
	uint8_t buf[65536];
	uint64_t h = 1469598103934665603ULL;
	off_t off = 0;
	ssize_t n, i;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ULL;
		off += n;
	}
	return h ^ (uint64_t)off;
}

/* Whether the file system under dir punches holes. */
static bool
fs_punches(const char *dir)
{
	char p[160];
	static uint8_t buf[1 << 20];
	struct stat a, b;
	bool ok = false;
	int fd;

	snprintf(p, sizeof(p), "%s/punch-probe", dir);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	memset(buf, 0x5a, sizeof(buf));
	if (pwrite(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
	    fsync(fd) == 0 && fstat(fd, &a) == 0 &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      1 << 19) == 0 && fstat(fd, &b) == 0)
		ok = b.st_blocks < a.st_blocks;
	close(fd);
	unlink(p);
	return ok;
}

/* --- Config and features ------------------------------------------- */

static void
test_config(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { 0 };
	struct vh_dev *d = &f->d;
	uint64_t want;

	/* A size that is not a multiple of 512: the tail is not exposed. */
	assert_int_equal(make_image(f->path, IMG_SIZE + 100, 2), 0);
	assert_int_equal(fix_open(f, &o), 0);
	assert_int_equal(d->device_id, 0x1040 + VIRTIO_ID_BLOCK);
	assert_int_equal(d->subsys_id, VIRTIO_ID_BLOCK);
	assert_int_equal(d->class_code, 0x010000);
	assert_int_equal(d->num_queues, 1);
	assert_int_equal(blk_capacity(f->b), IMG_SIZE / SECT);
	assert_string_equal(blk_engine_name(f->b),
			    f->engine == BLK_ENGINE_URING ? "io_uring" :
			    "threads");
	bring_up(f);
	want = F_V1 | F_EVT | F_IND | 1ULL << VIRTIO_BLK_F_SEG_MAX |
	       1ULL << VIRTIO_BLK_F_BLK_SIZE | 1ULL << VIRTIO_BLK_F_FLUSH |
	       1ULL << VIRTIO_BLK_F_TOPOLOGY | 1ULL << VIRTIO_BLK_F_DISCARD |
	       1ULL << VIRTIO_BLK_F_WRITE_ZEROES;
	assert_int_equal(d->device_features, want);
	/* The layout of struct virtio_blk_config, offset by offset. */
	assert_int_equal(d->device.length, sizeof(struct virtio_blk_config));
	assert_int_equal(vh_devcfg_read(d, 0, 8), IMG_SIZE / SECT);
	assert_int_equal(vh_devcfg_read(d, 0, 4), IMG_SIZE / SECT);
	assert_int_equal(vh_devcfg_read(d, 8, 4), 0);		/* size_max */
	assert_int_equal(vh_devcfg_read(d, 12, 4), BLK_SEG_MAX);
	assert_int_equal(vh_devcfg_read(d, 16, 4), 0);		/* geometry */
	assert_int_equal(vh_devcfg_read(d, 20, 4), 512);	/* blk_size */
	assert_true(vh_devcfg_read(d, 24, 1) <= 3);	/* physical_block_exp */
	assert_int_equal(vh_devcfg_read(d, 25, 1), 0);
	assert_int_equal(vh_devcfg_read(d, 26, 2),
			 1u << vh_devcfg_read(d, 24, 1));
	assert_int_equal(vh_devcfg_read(d, 34, 2), 1);		/* num_queues */
	assert_int_equal(vh_devcfg_read(d, 36, 4), BLK_MAX_DISCARD_SECTORS);
	assert_int_equal(vh_devcfg_read(d, 40, 4), BLK_MAX_DISCARD_SEG);
	assert_int_equal(vh_devcfg_read(d, 44, 4), 1);
	assert_int_equal(vh_devcfg_read(d, 48, 4), BLK_MAX_DISCARD_SECTORS);
	assert_int_equal(vh_devcfg_read(d, 52, 4), BLK_MAX_DISCARD_SEG);
	assert_int_equal(vh_devcfg_read(d, 56, 1), 1);	/* may_unmap */
	/* Writes to the config space change nothing. */
	vh_devcfg_write(d, 0, 4, 7);
	assert_int_equal(vh_devcfg_read(d, 0, 8), IMG_SIZE / SECT);
	/* The last sector is readable; the partial tail is not. */
	{
		uint8_t got[SECT], want_b[SECT];

		assert_int_equal(do_read(f, IMG_SIZE / SECT - 1, got, SECT),
				 VIRTIO_BLK_S_OK);
		read_file(f, IMG_SIZE - SECT, want_b, SECT);
		assert_memory_equal(got, want_b, SECT);
		assert_int_equal(do_read(f, IMG_SIZE / SECT, got, SECT),
				 VIRTIO_BLK_S_IOERR);
	}
}

/* --- Every request type ---------------------------------------------- */

static void
test_read_write(void **state)
{
	struct fix *f = *state;
	static uint8_t src[65536], got[65536];
	struct vh_buf b[4];
	struct blk_stats st;
	struct rq r;
	uint32_t len;
	uint64_t g;
	int i;

	open_up(f);
	/* A plain 4 KiB read of what the file holds. */
	read_file(f, 8 * SECT, src, 4096);
	assert_int_equal(do_read(f, 8, got, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(got, src, 4096);
	/* A write of 64 KiB; the file has it. */
	fill_pattern(src, sizeof(src), 77);
	assert_int_equal(do_write(f, 100, src, sizeof(src)), VIRTIO_BLK_S_OK);
	read_file(f, 100 * SECT, got, sizeof(src));
	assert_memory_equal(got, src, sizeof(src));
	/* A write whose data is split in odd pieces, through an indirect
	 * table; only the total is a multiple of 512. */
	fill_pattern(src, 3 * SECT, 78);
	g = vh_alloc(&f->m, 3 * SECT, 8);
	memcpy(vh_ptr(&f->m, g, 3 * SECT), src, 3 * SECT);
	b[0] = (struct vh_buf){ g, 1 };
	b[1] = (struct vh_buf){ g + 1, 700 };
	b[2] = (struct vh_buf){ g + 701, 3 * SECT - 701 - 5 };
	b[3] = (struct vh_buf){ g + 3 * SECT - 5, 5 };
	rq_add(f, 0, VIRTIO_BLK_T_OUT, 2000, b, 4, false, true, &r);
	assert_int_equal(rq_run(f, 0, &r, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 1);
	read_file(f, 2000 * SECT, got, 3 * SECT);
	assert_memory_equal(got, src, 3 * SECT);
	/* And read back split the same way. */
	g = vh_alloc(&f->m, 3 * SECT, 8);
	b[0].gpa = g;
	b[1].gpa = g + 1;
	b[2].gpa = g + 701;
	b[3].gpa = g + 3 * SECT - 5;
	rq_add(f, 0, VIRTIO_BLK_T_IN, 2000, b, 4, true, false, &r);
	assert_int_equal(rq_run(f, 0, &r, &len), VIRTIO_BLK_S_OK);
	assert_int_equal(len, 3 * SECT + 1);	/* data and status */
	assert_memory_equal(vh_ptr(&f->m, g, 3 * SECT), src, 3 * SECT);
	/* A zero-length read is fine and touches nothing. */
	g = 0;
	assert_int_equal(simple(f, VIRTIO_BLK_T_IN, 0, &g, 0, true),
			 VIRTIO_BLK_S_OK);
	/* The last sector of the disk. */
	assert_int_equal(do_write(f, IMG_SIZE / SECT - 1, src, SECT),
			 VIRTIO_BLK_S_OK);
	read_file(f, IMG_SIZE - SECT, got, SECT);
	assert_memory_equal(got, src, SECT);
	/* The status byte may share a buffer with the data. */
	g = vh_alloc(&f->m, SECT + 1, 8);
	b[0] = (struct vh_buf){ g, SECT + 1 };
	{
		uint64_t hdr = vh_alloc(&f->m, 16, 8);
		uint32_t t = htole32(VIRTIO_BLK_T_IN);
		uint64_t s = htole64(2000);
		struct vh_buf c[2] = { { hdr, 16 }, { g, SECT + 1 } };
		uint16_t id;

		memset(vh_ptr(&f->m, hdr, 16), 0, 16);
		memcpy(vh_ptr(&f->m, hdr, 4), &t, 4);
		memcpy(vh_ptr(&f->m, hdr + 8, 8), &s, 8);
		i = vh_queue_add(&f->d.q[0], c, 1, 1, false);
		vh_queue_kick(&f->d, 0);
		assert_true(vh_queue_wait_used(&f->d.q[0], &id, &len, TMO));
		assert_int_equal(id, i);
		assert_memory_equal(vh_ptr(&f->m, g, SECT), src, SECT);
		assert_int_equal(*(uint8_t *)vh_ptr(&f->m, g + SECT, 1),
				 VIRTIO_BLK_S_OK);
	}
	blk_get_stats(f->b, &st);
	assert_int_equal(st.writes, 3);
	assert_int_equal(st.write_bytes, sizeof(src) + 3 * SECT + SECT);
	assert_int_equal(st.reads, 4);
	assert_int_equal(st.read_bytes, 4096 + 3 * SECT + SECT + 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.inflight, 0);
	/* One interrupt at least, on the queue's vector. */
	assert_true(vh_wait_irq(&f->d, 1, 0) >= 1);
}

static void
test_flush(void **state)
{
	struct fix *f = *state;
	uint8_t src[4096];
	uint64_t g = 0;
	struct blk_stats st;

	open_up(f);
	fill_pattern(src, sizeof(src), 5);
	assert_int_equal(do_write(f, 64, src, sizeof(src)), VIRTIO_BLK_S_OK);
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, &g, 0, false),
			 VIRTIO_BLK_S_OK);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.flushes, 1);
}

/*
 * A child runs the device and the driver, writes, flushes, tells us the
 * flush completed and waits to be killed; what it wrote is in the file.
 */
static void
test_flush_sigkill(void **state)
{
	struct fix *f = *state;
	int pfd[2], status;
	uint8_t src[16384], got[16384], c = 0;
	pid_t pid;

	fill_pattern(src, sizeof(src), 99);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct blk_options o = { .engine = f->engine };
		uint64_t g = 0;
		char ok = 'F';

		close(pfd[0]);
		if (fix_open(f, &o) == 0) {
			bring_up(f);
			if (do_write(f, 1000, src, sizeof(src)) ==
			    VIRTIO_BLK_S_OK &&
			    simple(f, VIRTIO_BLK_T_FLUSH, 0, &g, 0, false) ==
			    VIRTIO_BLK_S_OK)
				ok = 'K';
		}
		if (write(pfd[1], &ok, 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(c, 'K');
	read_file(f, 1000 * SECT, got, sizeof(got));
	assert_memory_equal(got, src, sizeof(src));
}

static void
get_id_case(struct fix *f, const char *serial, const char *want)
{
	struct blk_options o = { .serial = serial };
	uint64_t g = 0;
	uint8_t *p;

	fix_close(f);
	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	g = vh_alloc(&f->m, 32, 8);
	p = vh_ptr(&f->m, g, 32);
	memset(p, 0xaa, 32);
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, &g, 20, true),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(p, want, 20);
	assert_int_equal(p[20], 0xaa);	/* nothing past the buffer */
}

static void
test_get_id(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .serial = "123456789012345678901" };
	char err[256];
	struct blk *b;
	uint64_t g;

	get_id_case(f, "vd-serial", "vd-serial\0\0\0\0\0\0\0\0\0\0\0");
	get_id_case(f, "ABCDEFGHIJKLMNOPQRST", "ABCDEFGHIJKLMNOPQRST");
	get_id_case(f, NULL, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
	/* A shorter buffer gets what fits. */
	get_id_case(f, "abc", "abc\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
	g = vh_alloc(&f->m, 8, 8);
	memset(vh_ptr(&f->m, g, 8), 0x11, 8);
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, &g, 2, true),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(vh_ptr(&f->m, g, 3), "ab\x11", 3);
	/* Too long, or not printable: refused. */
	o.path = f->path;
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "serial"));
	o.serial = "tab\there";
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)),
			 -EINVAL);
}

static void
test_readonly(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .readonly = true };
	uint8_t src[4096], got[4096];
	uint64_t h = file_hash(f->fd), g = 0, sector = 8;
	uint32_t n = 8, fl = 0;
	struct blk_stats st;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	assert_true(f->d.device_features & (1ULL << VIRTIO_BLK_F_RO));
	assert_false(f->d.device_features & (1ULL << VIRTIO_BLK_F_DISCARD));
	assert_false(f->d.device_features &
		     (1ULL << VIRTIO_BLK_F_WRITE_ZEROES));
	fill_pattern(src, sizeof(src), 3);
	assert_int_equal(do_write(f, 8, src, sizeof(src)), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, &sector, &n, &fl, 1),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &sector, &n,
				 &fl, 1), VIRTIO_BLK_S_IOERR);
	/* Reads and flushes work. */
	read_file(f, 8 * SECT, src, sizeof(src));
	assert_int_equal(do_read(f, 8, got, sizeof(got)), VIRTIO_BLK_S_OK);
	assert_memory_equal(got, src, sizeof(got));
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, &g, 0, false),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(file_hash(f->fd), h);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.errors, 3);
	assert_int_equal(st.writes, 0);
}

static void
test_discard(void **state)
{
	struct fix *f = *state;
	uint64_t sector[2] = { 1024, 4096 };
	uint32_t n[2] = { 512, 256 }, fl[2] = { 0, 0 };
	static uint8_t got[256 << 10], zero[256 << 10];
	struct stat a, b;
	bool punches = fs_punches(f->dir);

	open_up(f);
	assert_int_equal(fsync(f->fd), 0);
	assert_int_equal(fstat(f->fd, &a), 0);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, sector, n, fl, 2),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(fstat(f->fd, &b), 0);
	assert_int_equal(b.st_size, IMG_SIZE);	/* KEEP_SIZE */
	if (!punches) {
		print_message("# %s cannot punch holes: hole check skipped\n",
			      f->dir);
		return;
	}
	assert_true(b.st_blocks < a.st_blocks);
	assert_int_equal(lseek(f->fd, 1024 * SECT, SEEK_HOLE), 1024 * SECT);
	assert_int_equal(lseek(f->fd, 4096 * SECT, SEEK_HOLE), 4096 * SECT);
	read_file(f, 1024 * SECT, got, sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	/* Data before the holes is untouched. */
	assert_int_equal(lseek(f->fd, 0, SEEK_DATA), 0);
	/* A discard of nothing is fine. */
	n[0] = 0;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, sector, n, fl, 1),
			 VIRTIO_BLK_S_OK);
}

static void
write_zeroes_case(struct fix *f, bool unmap, bool punches)
{
	static uint8_t got[128 << 10], zero[128 << 10], before[SECT];
	uint64_t sector = unmap ? 2048 : 3072;
	uint32_t n = sizeof(got) / SECT;
	uint32_t fl = unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0;

	read_file(f, (sector - 1) * SECT, before, SECT);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &sector, &n,
				 &fl, 1), VIRTIO_BLK_S_OK);
	read_file(f, sector * SECT, got, sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	/* The sector before and the size are untouched. */
	read_file(f, (sector - 1) * SECT, got, SECT);
	assert_memory_equal(got, before, SECT);
	assert_int_equal(lseek(f->fd, 0, SEEK_END), IMG_SIZE);
	if (unmap && punches)
		assert_int_equal(lseek(f->fd, sector * SECT, SEEK_HOLE),
				 sector * SECT);
}

static void
test_write_zeroes(void **state)
{
	struct fix *f = *state;
	bool punches = fs_punches(f->dir);
	uint64_t s[3] = { 100, 200, 300 };
	uint32_t n[3] = { 8, 0, 16 }, fl[3] = { 0, 0, 1 };
	static uint8_t got[16 * SECT], zero[16 * SECT];
	struct blk_stats st;

	open_up(f);
	if (!punches)
		print_message("# %s cannot punch holes: hole check skipped\n",
			      f->dir);
	write_zeroes_case(f, true, punches);
	write_zeroes_case(f, false, punches);
	/* Several segments, one empty. */
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, s, n, fl, 3),
			 VIRTIO_BLK_S_OK);
	read_file(f, 100 * SECT, got, 8 * SECT);
	assert_memory_equal(got, zero, 8 * SECT);
	read_file(f, 300 * SECT, got, 16 * SECT);
	assert_memory_equal(got, zero, 16 * SECT);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.write_zeroes, 3);
}

/* Write-zeroes on tmpfs, which has no FALLOC_FL_ZERO_RANGE: the device
 * falls back to writing zeroes. */
static void
test_write_zeroes_fallback(void **state)
{
	struct fix *f = *state;
	char dir[64] = "/dev/shm/test_blk.XXXXXX", cmd[128];
	static uint8_t got[600 << 10], zero[600 << 10];
	uint64_t s = 1;
	uint32_t n = sizeof(got) / SECT, fl = 0;
	int fd;

	if (!mkdtemp(dir)) {
		skip();
		return;
	}
	snprintf(f->path, sizeof(f->path), "%s/disk.img", dir);
	assert_int_equal(make_image(f->path, IMG_SIZE, 4), 0);
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	open_up(f);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(pread(fd, got, sizeof(got), SECT), sizeof(got));
	assert_memory_equal(got, zero, sizeof(got));
	assert_int_equal(pread(fd, got, 1, 0), 1);
	assert_int_not_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
	fix_close(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* --- Many in flight, several queues ------------------------------------ */

#define NR_FLIGHT 128

static void
many_in_flight(struct fix *f, unsigned int q)
{
	static uint8_t want[NR_FLIGHT][4096], got[4096];
	struct rq r[NR_FLIGHT];
	uint64_t gpa[NR_FLIGHT], sect[NR_FLIGHT];
	bool used_slot[IMG_SIZE / 4096] = { false }, done[NR_FLIGHT];
	struct vh_buf b;
	unsigned int i, k, n;
	uint16_t id;
	uint32_t len;

	srand(42 + q);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < NR_FLIGHT; i++) {
			if (k == 0) {
				unsigned int s;

				do {
					s = (unsigned int)rand() %
					    (IMG_SIZE / 4096);
				} while (used_slot[s]);
				used_slot[s] = true;
				sect[i] = s * 8ULL;
				fill_pattern(want[i], 4096, i * 7 + q);
				gpa[i] = vh_alloc(&f->m, 4096, 4096);
				memcpy(vh_ptr(&f->m, gpa[i], 4096), want[i],
				       4096);
			} else {
				gpa[i] = vh_alloc(&f->m, 4096, 4096);
			}
			b = (struct vh_buf){ gpa[i], 4096 };
			rq_add(f, q, k ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT,
			       sect[i], &b, 1, k, true, &r[i]);
			done[i] = false;
		}
		/* One kick for all of them. */
		vh_queue_kick(&f->d, q);
		for (n = 0; n < NR_FLIGHT; n++) {
			if (!vh_queue_wait_used(&f->d.q[q], &id, &len, TMO))
				fail_msg("only %u of %u completed", n,
					 NR_FLIGHT);
			for (i = 0; i < NR_FLIGHT && r[i].head != id; i++)
				;
			assert_true(i < NR_FLIGHT && !done[i]);
			done[i] = true;
			r[i].head = -1;
			assert_int_equal(status_of(f, &r[i]), VIRTIO_BLK_S_OK);
			if (k) {
				assert_int_equal(len, 4097);
				assert_memory_equal(vh_ptr(&f->m, gpa[i], 4096),
						    want[i], 4096);
			}
		}
		if (k == 0)
			for (i = 0; i < NR_FLIGHT; i++) {
				read_file(f, sect[i] * SECT, got, 4096);
				assert_memory_equal(got, want[i], 4096);
			}
	}
}

static void
test_many_in_flight(void **state)
{
	struct fix *f = *state;
	struct blk_stats st;

	open_up(f);
	many_in_flight(f, 0);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.writes, NR_FLIGHT);
	assert_int_equal(st.reads, NR_FLIGHT);
	assert_int_equal(st.inflight, 0);
}

static void
test_multiqueue(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .num_queues = 3 };

	assert_int_equal(fix_open(f, &o), 0);
	assert_int_equal(f->d.num_queues, 3);
	bring_up_q(f, F_ALL, 3);
	assert_true(f->d.features & (1ULL << VIRTIO_BLK_F_MQ));
	assert_int_equal(vh_devcfg_read(&f->d, 34, 2), 3);
	many_in_flight(f, 2);
	/* Queue 1 too, with its own vector. */
	{
		uint8_t src[1024], got[1024];
		struct vh_buf b;
		struct rq r;
		uint64_t g = vh_alloc(&f->m, 1024, 8);

		fill_pattern(src, sizeof(src), 8);
		memcpy(vh_ptr(&f->m, g, 1024), src, 1024);
		b = (struct vh_buf){ g, 1024 };
		rq_add(f, 1, VIRTIO_BLK_T_OUT, 7, &b, 1, false, false, &r);
		assert_int_equal(rq_run(f, 1, &r, NULL), VIRTIO_BLK_S_OK);
		assert_true(vh_wait_irq(&f->d, 2, TMO) >= 1);
		read_file(f, 7 * SECT, got, 1024);
		assert_memory_equal(got, src, 1024);
	}
	/* More queues than we allow: refused. */
	{
		struct blk_options bad = { .path = f->path, .readonly = true,
					   .num_queues = BLK_MAX_QUEUES + 1 };
		struct blk *b;
		char err[128];

		assert_int_equal(blk_new(&bad, &f->m.mem, &b, err,
					 sizeof(err)), -EINVAL);
	}
}

/* --- Reset in the middle of I/O ------------------------------------------ */

static void
reset_mid_io(struct fix *f, unsigned int nr, uint32_t len)
{
	struct rq *r = calloc(nr, sizeof(*r));
	uint64_t *gpa = calloc(nr, sizeof(*gpa));
	uint8_t *snap = malloc((size_t)nr * len), *st0 = malloc(nr);
	struct blk_stats st;
	struct vh_buf b;
	uint16_t used;
	unsigned int i, done;
	uint8_t src[4096], got[4096];

	assert_true(r && gpa && snap && st0);
	for (i = 0; i < nr; i++) {
		gpa[i] = vh_alloc(&f->m, len, 4096);
		assert_true(gpa[i] != 0);
		memset(vh_ptr(&f->m, gpa[i], len), 0xcc, len);
		b = (struct vh_buf){ gpa[i], len };
		rq_add(f, 0, VIRTIO_BLK_T_IN,
		       ((uint64_t)i * len / SECT) % (IMG_SIZE / SECT - len / SECT),
		       &b, 1, true, true, &r[i]);
	}
	vh_queue_kick(&f->d, 0);
	/* Let some complete (on the slow pool), then reset. */
	for (i = 0; i < 2000 && f->engine == BLK_ENGINE_THREADS &&
	     vh_used_idx(&f->d.q[0]) < 3; i++)
		usleep(1000);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	/* Reset returned: nothing is in flight and nothing moves again. */
	blk_get_stats(f->b, &st);
	assert_int_equal(st.inflight, 0);
	used = vh_used_idx(&f->d.q[0]);
	done = used;
	for (i = 0; i < nr; i++) {
		memcpy(snap + (size_t)i * len, vh_ptr(&f->m, gpa[i], len), len);
		st0[i] = status_of(f, &r[i]);
	}
	usleep(100000);
	assert_int_equal(vh_used_idx(&f->d.q[0]), used);
	for (i = 0; i < nr; i++) {
		assert_int_equal(status_of(f, &r[i]), st0[i]);
		assert_memory_equal(vh_ptr(&f->m, gpa[i], len),
				    snap + (size_t)i * len, len);
	}
	print_message("# %s: %u of %u requests completed before the reset\n",
		      blk_engine_name(f->b), done, nr);
	if (f->engine == BLK_ENGINE_THREADS)
		assert_true(done > 0 && done < nr);
	/* The device works again for a new driver. */
	vh_wait_irq(&f->d, 1, 0);
	vh_dev_release(&f->d);
	bring_up(f);
	fill_pattern(src, sizeof(src), 11);
	assert_int_equal(do_write(f, 16, src, sizeof(src)), VIRTIO_BLK_S_OK);
	assert_int_equal(do_read(f, 16, got, sizeof(got)), VIRTIO_BLK_S_OK);
	assert_memory_equal(got, src, sizeof(got));
	free(r);
	free(gpa);
	free(snap);
	free(st0);
}

static void
test_reset_mid_io(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .test_delay_us = 20000 };

	if (f->engine == BLK_ENGINE_URING) {
		/* Many large O_DIRECT reads: slow enough to be in flight. */
		o.direct = true;
		assert_int_equal(make_image(f->path, 64ULL << 20, 6), 0);
		assert_int_equal(fix_open(f, &o), 0);
		bring_up(f);
		reset_mid_io(f, 128, 256 << 10);
		return;
	}
	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	reset_mid_io(f, 64, 4096);
}

/*
 * blk_stop() with requests in flight (the VM stopping under I/O): it
 * returns once nothing is in flight, and from then on nothing in guest
 * memory moves, though the driver never saw those requests complete.
 * Returns how many had completed before the stop.
 */
static uint16_t
stop_mid_io_once(struct fix *f, const uint64_t *gpa, unsigned int nr,
		 uint32_t len, uint8_t *snap)
{
	struct blk_stats st;
	struct vh_buf b;
	struct rq r;
	unsigned int i, t;
	uint16_t used;

	bring_up(f);
	for (i = 0; i < nr; i++) {
		memset(vh_ptr(&f->m, gpa[i], len), 0xcc, len);
		b = (struct vh_buf){ gpa[i], len };
		rq_add(f, 0, VIRTIO_BLK_T_IN, (uint64_t)i * (len / SECT), &b, 1,
		       true, true, &r);
	}
	vh_queue_kick(&f->d, 0);
	/* Stop as soon as the engine holds requests: a fixed sleep can
	 * last longer than the whole batch on a loaded host. */
	for (t = 0; t < 20000; t++) {
		blk_get_stats(f->b, &st);
		if (st.inflight > 0 || vh_used_idx(&f->d.q[0]) > 0)
			break;
		usleep(100);
	}
	blk_stop(f->b);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.inflight, 0);
	used = vh_used_idx(&f->d.q[0]);
	for (i = 0; i < nr; i++)
		memcpy(snap + (size_t)i * len, vh_ptr(&f->m, gpa[i], len), len);
	usleep(100000);
	assert_int_equal(vh_used_idx(&f->d.q[0]), used);
	for (i = 0; i < nr; i++)
		assert_memory_equal(vh_ptr(&f->m, gpa[i], len),
				    snap + (size_t)i * len, len);
	print_message("# %s: %u of %u requests completed before the stop\n",
		      blk_engine_name(f->b), used, nr);
	/* Idempotent; fix_close() stops it once more. */
	blk_stop(f->b);
	return used;
}

static void
test_stop_mid_io(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .test_delay_us = 20000 };
	unsigned int nr = 64, i, tries;
	uint32_t len = 4096;
	uint64_t gpa[128];
	uint8_t *snap;
	uint16_t used = 0;

	if (f->engine == BLK_ENGINE_URING) {
		/* Large O_DIRECT reads: slow enough to be in flight. */
		o.direct = true;
		nr = 128;
		len = 256 << 10;
		assert_int_equal(make_image(f->path, 64ULL << 20, 6), 0);
	}
	snap = malloc((size_t)nr * len);
	assert_non_null(snap);
	for (i = 0; i < nr; i++) {
		gpa[i] = vh_alloc(&f->m, len, 4096);
		assert_true(gpa[i] != 0);
	}
	/* The stop must come while requests are still in flight; a host
	 * that stalls this thread past the whole batch gets another try. */
	for (tries = 0; tries < 5; tries++) {
		fix_close(f);
		assert_int_equal(fix_open(f, &o), 0);
		used = stop_mid_io_once(f, gpa, nr, len, snap);
		if (used < nr)
			break;
	}
	assert_true(used < nr);
	free(snap);
}

/* --- Hostile requests ------------------------------------------------- */

static void
test_hostile(void **state)
{
	struct fix *f = *state;
	uint64_t cap = IMG_SIZE / SECT, g, h0 = file_hash(f->fd);
	uint64_t s[BLK_MAX_DISCARD_SEG + 1];
	uint32_t n[BLK_MAX_DISCARD_SEG + 1], fl[BLK_MAX_DISCARD_SEG + 1];
	uint8_t buf[4096];
	struct vh_buf b[2];
	struct rq r;
	unsigned int i;

	memset(buf, 0x77, sizeof(buf));
	open_up(f);
	/* Out of range, overflowing, odd lengths: IOERR. */
	assert_int_equal(do_write(f, cap, buf, SECT), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_write(f, cap - 1, buf, 2 * SECT),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_write(f, UINT64_MAX, buf, SECT),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_write(f, 1ULL << 55, buf, SECT),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_write(f, 0, buf, 100), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_read(f, cap, buf, SECT), VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_read(f, UINT64_MAX - 1, buf, 4096),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(do_read(f, 0, buf, 513), VIRTIO_BLK_S_IOERR);
	/* Data in the wrong direction: a read with readable data, a write
	 * with writable data. */
	g = vh_alloc(&f->m, 2 * SECT, 8);
	b[0] = (struct vh_buf){ g, SECT };
	b[1] = (struct vh_buf){ g + SECT, SECT };
	{
		struct vh_buf c[4];
		uint16_t id;
		uint32_t len;

		r.hdr = vh_alloc(&f->m, 16, 8);
		r.status = vh_alloc(&f->m, 1, 1);
		memset(vh_ptr(&f->m, r.hdr, 16), 0, 16);	/* IN, sector 0 */
		c[0] = (struct vh_buf){ r.hdr, 16 };
		c[1] = b[0];
		c[2] = b[1];
		c[3] = (struct vh_buf){ r.status, 1 };
		r.head = vh_queue_add(&f->d.q[0], c, 2, 2, false);
		vh_queue_kick(&f->d, 0);
		assert_true(vh_queue_wait_used(&f->d.q[0], &id, &len, TMO));
		assert_int_equal(status_of(f, &r), VIRTIO_BLK_S_IOERR);
		*(uint32_t *)vh_ptr(&f->m, r.hdr, 4) = htole32(VIRTIO_BLK_T_OUT);
		r.head = vh_queue_add(&f->d.q[0], c, 2, 2, false);
		vh_queue_kick(&f->d, 0);
		assert_true(vh_queue_wait_used(&f->d.q[0], &id, &len, TMO));
		assert_int_equal(status_of(f, &r), VIRTIO_BLK_S_IOERR);
	}
	/* Unknown types: UNSUPP. */
	g = 0;
	assert_int_equal(simple(f, 99, 0, &g, 0, true), VIRTIO_BLK_S_UNSUPP);
	g = 0;
	assert_int_equal(simple(f, 10 /* GET_LIFETIME */, 0, &g, 8, true),
			 VIRTIO_BLK_S_UNSUPP);
	g = 0;
	assert_int_equal(simple(f, VIRTIO_BLK_T_SECURE_ERASE, 0, &g, 16,
				false), VIRTIO_BLK_S_UNSUPP);
	/* Bad discard / write-zeroes segment lists. */
	for (i = 0; i <= BLK_MAX_DISCARD_SEG; i++) {
		s[i] = i * 8;
		n[i] = 8;
		fl[i] = 0;
	}
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, s, n, fl, 0),
			 VIRTIO_BLK_S_IOERR);		/* none */
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, s, n, fl,
				 BLK_MAX_DISCARD_SEG + 1),
			 VIRTIO_BLK_S_IOERR);		/* too many */
	s[1] = cap - 4;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, s, n, fl, 2),
			 VIRTIO_BLK_S_IOERR);		/* out of range */
	s[1] = UINT64_MAX - 2;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, s, n, fl, 2),
			 VIRTIO_BLK_S_IOERR);		/* overflow */
	s[1] = 8;
	n[1] = BLK_MAX_DISCARD_SECTORS + 1;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, s, n, fl, 2),
			 VIRTIO_BLK_S_IOERR);		/* too long */
	n[1] = 8;
	fl[1] = 2;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, s, n, fl, 2),
			 VIRTIO_BLK_S_UNSUPP);		/* unknown flag */
	fl[1] = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, s, n, fl, 2),
			 VIRTIO_BLK_S_UNSUPP);		/* unmap on discard */
	g = vh_alloc(&f->m, 24, 8);
	assert_int_equal(simple(f, VIRTIO_BLK_T_DISCARD, 0, &g, 24, false),
			 VIRTIO_BLK_S_IOERR);		/* not 16-byte units */
	/* A header shorter than 16 bytes: IOERR. */
	{
		struct vh_buf c[2];
		uint16_t id;
		uint32_t len;

		r.hdr = vh_alloc(&f->m, 16, 8);
		r.status = vh_alloc(&f->m, 1, 1);
		memset(vh_ptr(&f->m, r.hdr, 16), 0, 16);
		*(uint32_t *)vh_ptr(&f->m, r.hdr, 4) = htole32(VIRTIO_BLK_T_OUT);
		c[0] = (struct vh_buf){ r.hdr, 8 };
		c[1] = (struct vh_buf){ r.status, 1 };
		r.head = vh_queue_add(&f->d.q[0], c, 1, 1, false);
		vh_queue_kick(&f->d, 0);
		assert_true(vh_queue_wait_used(&f->d.q[0], &id, &len, TMO));
		assert_int_equal(id, r.head);
		assert_int_equal(status_of(f, &r), VIRTIO_BLK_S_IOERR);
	}
	/* Nothing of that reached the file. */
	assert_int_equal(file_hash(f->fd), h0);
	{
		struct blk_stats st;

		blk_get_stats(f->b, &st);
		assert_int_equal(st.writes + st.reads + st.discards +
				 st.write_zeroes, 0);
		assert_int_equal(st.unsupported, 5);
	}
	/* No status byte at all: NEEDS_RESET, and nothing is pushed. */
	log_set_level(LOG_LEVEL_ERR);
	{
		struct vh_buf c[2];
		uint16_t used = vh_used_idx(&f->d.q[0]);

		g = vh_alloc(&f->m, 16 + SECT, 8);
		memset(vh_ptr(&f->m, g, 16), 0, 16);
		c[0] = (struct vh_buf){ g, 16 };
		c[1] = (struct vh_buf){ g + 16, SECT };
		assert_true(vh_queue_add(&f->d.q[0], c, 2, 0, false) >= 0);
		vh_queue_kick(&f->d, 0);
		assert_int_equal(vh_wait_irq(&f->d, 0, TMO), 1);
		assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
		assert_int_equal(vh_used_idx(&f->d.q[0]), used);
	}
	log_set_level(LOG_LEVEL_INFO);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	vh_dev_release(&f->d);
	bring_up(f);
	assert_int_equal(do_write(f, 0, buf, SECT), VIRTIO_BLK_S_OK);
	read_file(f, 0, buf + SECT, SECT);
	assert_memory_equal(buf, buf + SECT, SECT);
}

/* --- Long chains, write-through, work found after a completion ------- */

/*
 * A READ (into dst) or WRITE (of src) of nd * SECT bytes at sector, its
 * data in nd buffers of SECT bytes scattered in guest memory (backwards
 * through a fresh area, every other sector), directly in the descriptor
 * table or through an indirect table. Kicks, waits, checks the used
 * length; returns the status.
 */
static uint8_t
scattered(struct fix *f, uint32_t type, uint64_t sector, unsigned int nd,
	  bool indirect, const uint8_t *src, uint8_t *dst)
{
	struct vh_buf b[BLK_QUEUE_SIZE];
	uint64_t hdr = vh_alloc(&f->m, 16, 8), st = vh_alloc(&f->m, 1, 1);
	uint64_t area = vh_alloc(&f->m, 2ULL * SECT * nd, 512), g;
	bool in = type == VIRTIO_BLK_T_IN;
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);
	unsigned int i;
	uint32_t len;
	uint16_t id;
	int head;

	assert_true(nd + 2 <= BLK_QUEUE_SIZE && hdr && st && area);
	memset(vh_ptr(&f->m, hdr, 16), 0, 16);
	memcpy(vh_ptr(&f->m, hdr, 4), &t, 4);
	memcpy(vh_ptr(&f->m, hdr + 8, 8), &s, 8);
	*(uint8_t *)vh_ptr(&f->m, st, 1) = 0xee;
	b[0] = (struct vh_buf){ hdr, 16 };
	for (i = 0; i < nd; i++) {
		g = area + 2ULL * SECT * (nd - 1 - i);
		if (!in)
			memcpy(vh_ptr(&f->m, g, SECT), src + i * SECT, SECT);
		b[1 + i] = (struct vh_buf){ g, SECT };
	}
	b[1 + nd] = (struct vh_buf){ st, 1 };
	head = vh_queue_add(&f->d.q[0], b, in ? 1 : 1 + nd, in ? nd + 1 : 1,
			    indirect);
	assert_true(head >= 0);
	vh_queue_kick(&f->d, 0);
	if (!vh_queue_wait_used(&f->d.q[0], &id, &len, TMO))
		fail_msg("%u-buffer request not completed within %d ms", nd,
			 TMO);
	assert_int_equal(id, head);
	assert_int_equal(len, in ? nd * SECT + 1 : 1);
	if (in)
		for (i = 0; i < nd; i++)
			memcpy(dst + i * SECT,
			       vh_ptr(&f->m, b[1 + i].gpa, SECT), SECT);
	return *(uint8_t *)vh_ptr(&f->m, st, 1);
}

/*
 * Requests with more data buffers than a request slot holds inline (8),
 * their counts going up and down to seg_max (254) through the same slots:
 * each writes and reads exactly its own buffers, in chain order.
 */
static void
test_long_chains(void **state)
{
	static const unsigned int nds[] = { 9, 62, 130, 9, 254, 33, 254, 10 };
	static uint8_t want[254 * SECT], got[254 * SECT];
	struct fix *f = *state;
	struct blk_stats st;
	uint64_t sector, bytes = 0;
	unsigned int k, nd;
	bool fits, ind;

	open_up(f);
	for (k = 0; k < sizeof(nds) / sizeof(nds[0]); k++) {
		nd = nds[k];
		/* Whether header, data and status fit an indirect table. */
		fits = nd + 2 <= VH_INDIRECT_MAX;
		ind = fits && k % 2;
		sector = 1000 + 300ULL * k;
		fill_pattern(want, nd * SECT, 500 + k);
		assert_int_equal(scattered(f, VIRTIO_BLK_T_OUT, sector, nd, ind,
					   want, NULL), VIRTIO_BLK_S_OK);
		read_file(f, sector * SECT, got, nd * SECT);
		assert_memory_equal(got, want, nd * SECT);
		/* Read back, the other way where the chain allows. */
		memset(got, 0, sizeof(got));
		assert_int_equal(scattered(f, VIRTIO_BLK_T_IN, sector, nd,
					   fits && !ind, NULL, got),
				 VIRTIO_BLK_S_OK);
		assert_memory_equal(got, want, nd * SECT);
		bytes += nd * SECT;
	}
	blk_get_stats(f->b, &st);
	assert_int_equal(st.writes, k);
	assert_int_equal(st.reads, k);
	assert_int_equal(st.write_bytes, bytes);
	assert_int_equal(st.read_bytes, bytes);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.inflight, 0);
}

/*
 * Without VIRTIO_BLK_F_FLUSH every write is write-through (RWF_DSYNC):
 * single-buffer and multi-buffer writes both land, and FLUSH itself is
 * still served.
 */
static void
test_write_through(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { 0 };
	static uint8_t src[16 * SECT], got[16 * SECT];
	uint64_t g = 0;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up_q(f, F_ALL & ~(1ULL << VIRTIO_BLK_F_FLUSH), 1);
	assert_int_equal(f->d.features & (1ULL << VIRTIO_BLK_F_FLUSH), 0);
	fill_pattern(src, sizeof(src), 61);
	assert_int_equal(do_write(f, 64, src, 4096), VIRTIO_BLK_S_OK);
	read_file(f, 64 * SECT, got, 4096);
	assert_memory_equal(got, src, 4096);
	assert_int_equal(scattered(f, VIRTIO_BLK_T_OUT, 128, 16, false, src,
				   NULL), VIRTIO_BLK_S_OK);
	read_file(f, 128 * SECT, got, sizeof(got));
	assert_memory_equal(got, src, sizeof(got));
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, &g, 0, false),
			 VIRTIO_BLK_S_OK);
}

/*
 * Once a completion woke the device, it looks at the available ring
 * again before sleeping: a request the driver made available while an
 * earlier one was in flight is served without a kick of its own (the
 * driver's kick, when it sends one, then finds the ring empty). The
 * thread pool's test delay keeps the first request in flight long enough.
 */
static void
test_work_after_completion(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .test_delay_us = 200000 };
	static uint8_t want[4096];
	struct vh_buf b[2];
	struct rq r[2];
	uint64_t notifies, gpa[2];
	struct timespec ts = { 0, 1000 * 1000 };
	struct blk_stats st;
	uint32_t len;
	uint16_t id;
	unsigned int i;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	read_file(f, 16 * SECT, want, sizeof(want));
	for (i = 0; i < 2; i++) {
		gpa[i] = vh_alloc(&f->m, 4096, 4096);
		b[i] = (struct vh_buf){ gpa[i], 4096 };
	}
	rq_add(f, 0, VIRTIO_BLK_T_IN, 16, &b[0], 1, true, false, &r[0]);
	vh_queue_kick(&f->d, 0);
	/* The device took it, found the ring empty (avail_event moved past
	 * it) and waits for the pool. */
	for (i = 0; i < TMO; i++) {
		blk_get_stats(f->b, &st);
		if (st.inflight == 1 && vh_avail_event(&f->d.q[0]) == 1)
			break;
		nanosleep(&ts, NULL);
	}
	assert_int_equal(st.inflight, 1);
	assert_int_equal(vh_avail_event(&f->d.q[0]), 1);
	nanosleep(&ts, NULL);
	notifies = __atomic_load_n(&blk_virtio(f->b)->notifies,
				   __ATOMIC_RELAXED);
	rq_add(f, 0, VIRTIO_BLK_T_IN, 16, &b[1], 1, true, false, &r[1]);
	for (i = 0; i < 2; i++) {
		if (!vh_queue_wait_used(&f->d.q[0], &id, &len, TMO))
			fail_msg("request %u not served without its kick", i);
		assert_int_equal(id, r[i].head);
		assert_int_equal(len, 4097);
		assert_int_equal(status_of(f, &r[i]), VIRTIO_BLK_S_OK);
		assert_memory_equal(vh_ptr(&f->m, gpa[i], 4096), want, 4096);
	}
	assert_int_equal(__atomic_load_n(&blk_virtio(f->b)->notifies,
					 __ATOMIC_RELAXED), notifies);
}

/* --- O_DIRECT ---------------------------------------------------------- */

static void
test_direct(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .direct = true };
	static uint8_t src[300 << 10], got[300 << 10];
	struct vh_buf b[3];
	struct rq r;
	uint64_t g;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	/* Aligned: straight to the file. */
	fill_pattern(src, 8192, 21);
	assert_int_equal(do_write(f, 40, src, 8192), VIRTIO_BLK_S_OK);
	read_file(f, 40 * SECT, got, 8192);
	assert_memory_equal(got, src, 8192);
	/* Misaligned buffers (odd addresses and lengths), bigger than one
	 * bounce chunk: through the bounce buffer, both ways. */
	fill_pattern(src, sizeof(src), 22);
	g = vh_alloc(&f->m, sizeof(src) + 16, 4096) + 3;
	memcpy(vh_ptr(&f->m, g, sizeof(src)), src, sizeof(src));
	b[0] = (struct vh_buf){ g, 1000 };
	b[1] = (struct vh_buf){ g + 1000, sizeof(src) - 1000 - 24 };
	b[2] = (struct vh_buf){ g + sizeof(src) - 24, 24 };
	rq_add(f, 0, VIRTIO_BLK_T_OUT, 3000, b, 3, false, false, &r);
	assert_int_equal(rq_run(f, 0, &r, NULL), VIRTIO_BLK_S_OK);
	read_file(f, 3000 * SECT, got, sizeof(got));
	assert_memory_equal(got, src, sizeof(got));
	g = vh_alloc(&f->m, sizeof(src) + 16, 4096) + 5;
	b[0].gpa = g;
	b[1].gpa = g + 1000;
	b[2].gpa = g + sizeof(src) - 24;
	rq_add(f, 0, VIRTIO_BLK_T_IN, 3000, b, 3, true, true, &r);
	assert_int_equal(rq_run(f, 0, &r, NULL), VIRTIO_BLK_S_OK);
	assert_memory_equal(vh_ptr(&f->m, g, sizeof(src)), src, sizeof(src));
}

/* --- Opening: locks and errors ------------------------------------------- */

static void
test_lock(void **state)
{
	struct fix *f = *state;
	struct blk_options rw = { .path = f->path };
	struct blk_options ro = { .path = f->path, .readonly = true };
	struct blk *a = NULL, *b = NULL, *c = NULL;
	char err[256], want[256];

	snprintf(want, sizeof(want), "disk image '%s' is in use by another VM",
		 f->path);
	assert_int_equal(blk_new(&rw, &f->m.mem, &a, err, sizeof(err)), 0);
	assert_int_equal(blk_new(&rw, &f->m.mem, &b, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, want);
	assert_int_equal(blk_new(&ro, &f->m.mem, &b, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, want);
	blk_free(a);
	/* Two read-only users share it; a writer is refused. */
	assert_int_equal(blk_new(&ro, &f->m.mem, &a, err, sizeof(err)), 0);
	assert_int_equal(blk_new(&ro, &f->m.mem, &b, err, sizeof(err)), 0);
	assert_int_equal(blk_new(&rw, &f->m.mem, &c, err, sizeof(err)), -EBUSY);
	assert_string_equal(err, want);
	blk_free(a);
	blk_free(b);
	/* Free again: the lock went with it. */
	assert_int_equal(blk_new(&rw, &f->m.mem, &c, err, sizeof(err)), 0);
	blk_free(c);
	blk_free(NULL);
}

static void
expect_open_error(struct fix *f, const char *path, bool ro, int want_r,
		  const char *want_text)
{
	struct blk_options o = { .path = path, .readonly = ro };
	struct blk *b = NULL;
	char err[256];

	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)), want_r);
	assert_null(b);
	if (!strstr(err, path) || !strstr(err, want_text))
		fail_msg("blk_new(%s): message \"%s\", wanted the path and "
			 "\"%s\"", path, err, want_text);
}

static void
test_open_errors(void **state)
{
	struct fix *f = *state;
	char p[160];
	pid_t pid;
	int status;

	snprintf(p, sizeof(p), "%s/no/such/dir/disk.img", f->dir);
	expect_open_error(f, p, false, -ENOENT, "no such file");
	expect_open_error(f, p, true, -ENOENT, "no such file");
	expect_open_error(f, f->dir, false, -EISDIR, "is a directory");
	expect_open_error(f, f->dir, true, -EISDIR, "is a directory");
	expect_open_error(f, "/dev/null", false, -EINVAL,
			  "not a regular file or block device");
	snprintf(p, sizeof(p), "%s/fifo", f->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_open_error(f, p, true, -EINVAL,
			  "not a regular file or block device");
	/* Unreadable: we are likely root, who reads anything; a child that
	 * gave up root does not. */
	assert_int_equal(chmod(f->path, 0600), 0);
	assert_int_equal(chmod(f->dir, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct blk_options o = { .path = f->path, .readonly = true };
		struct blk *b;
		char err[256];
		int r;

		if (setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(77);
		r = blk_new(&o, &f->m.mem, &b, err, sizeof(err));
		_exit(r == -EACCES && strstr(err, f->path) &&
		      strstr(err, "Permission denied") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		print_message("# cannot drop privileges: unreadable-image "
			      "check skipped\n");
	else
		assert_int_equal(WEXITSTATUS(status), 0);
	/* Bad options. */
	{
		struct blk_options o = { 0 };
		struct blk *b;
		char err[64];

		assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)),
				 -EINVAL);
	}
}

static void
test_engine_env(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .path = f->path };
	struct blk *b;
	char err[128];

	setenv("VMM_BLK_ENGINE", "threads", 1);
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)), 0);
	assert_string_equal(blk_engine_name(b), "threads");
	blk_free(b);
	setenv("VMM_BLK_ENGINE", "uring", 1);
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)), 0);
	assert_string_equal(blk_engine_name(b), "io_uring");
	blk_free(b);
	unsetenv("VMM_BLK_ENGINE");
}

/* --- I/O limits -------------------------------------------------------- */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define MSEC	1000000ULL

/* Queue n 4 KiB reads of sectors 8*i on queue q (one kick); r[i]. */
static void
queue_reads(struct fix *f, unsigned int q, unsigned int n, struct rq *r,
	    uint64_t *gpa)
{
	struct vh_buf b;
	unsigned int i;

	for (i = 0; i < n; i++) {
		gpa[i] = vh_alloc(&f->m, 4096, 4096);
		assert_true(gpa[i] != 0);
		b = (struct vh_buf){ gpa[i], 4096 };
		rq_add(f, q, VIRTIO_BLK_T_IN, 8ULL * i, &b, 1, true, false,
		       &r[i]);
	}
	vh_queue_kick(&f->d, q);
}

/* Wait for one used entry of queue q; returns its head. */
static uint16_t
wait_one(struct fix *f, unsigned int q)
{
	uint16_t id;
	uint32_t len;

	if (!vh_queue_wait_used(&f->d.q[q], &id, &len, TMO))
		fail_msg("queue %u: no completion within %d ms", q, TMO);
	return id;
}

/* Wait for r[0..n-1] to complete, in any order (the thread pool may
 * reorder requests that run together). */
static void
wait_set(struct fix *f, unsigned int q, const struct rq *r, unsigned int n)
{
	bool seen[BLK_QUEUE_SIZE] = { false };
	unsigned int i, k;
	uint16_t id;

	for (k = 0; k < n; k++) {
		id = wait_one(f, q);
		for (i = 0; i < n && r[i].head != id; i++)
			;
		if (i == n || seen[id])
			fail_msg("queue %u: unexpected completion of head %u",
				 q, id);
		seen[id] = true;
	}
}

/* The device's next available index (white box: the I/O thread is idle
 * when this is called, waiting on its timer). */
static uint16_t
dev_last_avail(struct fix *f, unsigned int q)
{
	return __atomic_load_n(&blk_virtio(f->b)->queues[q].vq.last_avail,
			       __ATOMIC_RELAXED);
}

static void
test_limit_backpressure(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .limits = { .ops_per_sec = 5,
					     .ops_burst = 1 } };
	struct rq r[5];
	uint64_t gpa[5], t0, t1;
	uint8_t want[4096];
	struct blk_stats st;
	unsigned int i;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	t0 = now_ns();
	queue_reads(f, 0, 5, r, gpa);
	/* The first goes at once (a full bucket of 1). */
	assert_int_equal(wait_one(f, 0), r[0].head);
	/* The second was popped with it (before the first was even
	 * submitted) and is held for 200 ms; the other three are still in
	 * the available ring, not taken, not failed. */
	assert_int_equal(vh_used_idx(&f->d.q[0]), 1);
	assert_int_equal(dev_last_avail(f, 0), 2);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.throttled, 1);
	assert_true(st.throttled_ns > 0);
	for (i = 1; i < 5; i++)
		assert_int_equal(wait_one(f, 0), r[i].head);
	t1 = now_ns();
	/* 5/s with a bucket of 1: 4 more at 200 ms intervals after the
	 * first, which went after t0. */
	if (t1 - t0 < 800 * MSEC)
		fail_msg("5 requests at 5/s burst 1 took %llu ms, expected "
			 ">= 800", (unsigned long long)((t1 - t0) / MSEC));
	assert_true(t1 - t0 < TMO * MSEC);
	for (i = 0; i < 5; i++) {
		assert_int_equal(status_of(f, &r[i]), VIRTIO_BLK_S_OK);
		read_file(f, 8ULL * i * SECT, want, 4096);
		assert_memory_equal(vh_ptr(&f->m, gpa[i], 4096), want, 4096);
	}
	blk_get_stats(f->b, &st);
	assert_int_equal(st.reads, 5);
	/* Each of the 4 is popped as the one before goes and held until
	 * its token (fewer only if the host ran the I/O thread so late
	 * that the token was there): about 800 ms in all. */
	assert_true(st.throttled >= 1 && st.throttled <= 4);
	if (st.throttled_ns < 400 * MSEC || st.throttled_ns > t1 - t0)
		fail_msg("throttled %llu ms, expected 400..%llu ms",
			 (unsigned long long)(st.throttled_ns / MSEC),
			 (unsigned long long)((t1 - t0) / MSEC));
	/* The time stops counting when nothing waits. */
	{
		uint64_t before = st.throttled_ns;

		usleep(20000);
		blk_get_stats(f->b, &st);
		assert_int_equal(st.throttled_ns, before);
	}
}

static void
test_limit_costs(void **state)
{
	struct fix *f = *state;
	/* 40960 bytes/s in a bucket of 4096: a 4 KiB read per 100 ms. */
	struct blk_options o = { .limits = { .bytes_per_sec = 40960,
					     .bytes_burst = 4096 } };
	uint8_t buf[16384];
	struct blk_stats st;
	uint64_t g, t0, t1, s = 8;
	uint32_t n = 8, fl = 0;

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	/* The bucket was full (4096) at t0 and fills at 40960/s: by t0 +
	 * T, at most 4096 + 40960 T bytes can have gone. That bound, not
	 * the exact timing of a possibly loaded host, is what is checked. */
	t0 = now_ns();
	assert_int_equal(do_read(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
	/* The byte bucket is empty now; FLUSH, DISCARD, WRITE_ZEROES and
	 * GET_ID carry no bytes and are never held. */
	g = 0;
	assert_int_equal(simple(f, VIRTIO_BLK_T_FLUSH, 0, &g, 0, false),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_DISCARD, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	g = 0;
	assert_int_equal(simple(f, VIRTIO_BLK_T_GET_ID, 0, &g, 20, true),
			 VIRTIO_BLK_S_OK);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.throttled, 0);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.discards, 1);
	assert_int_equal(st.write_zeroes, 1);
	/* Neither do requests the parser refuses. */
	assert_int_equal(do_read(f, IMG_SIZE / SECT, buf, 4096),
			 VIRTIO_BLK_S_IOERR);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.throttled, 0);
	/* The next read needs 4096 more bytes: not before t0 + 100 ms. */
	assert_int_equal(do_read(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
	t1 = now_ns();
	assert_true(t1 - t0 >= 100 * MSEC);
	/* Writes cost their bytes too: 12288 bytes by t0 + 200 ms. */
	memset(buf, 0x3c, 4096);
	assert_int_equal(do_write(f, 16, buf, 4096), VIRTIO_BLK_S_OK);
	assert_true(now_ns() - t0 >= 200 * MSEC);
	/*
	 * 16 KiB, four times the bucket: it goes once the bucket is full
	 * and leaves a debt of 12288 bytes, so a 4 KiB read after it has
	 * 32768 bytes gone in all: not before t0 + (32768 - 4096) / 40960
	 * s = 700 ms. (Without the debt it would be 500 ms; a request
	 * larger than the bucket that waited for room would never go.)
	 */
	assert_int_equal(do_read(f, 0, buf, 16384), VIRTIO_BLK_S_OK);
	assert_int_equal(do_read(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
	t1 = now_ns();
	if (t1 - t0 < 700 * MSEC)
		fail_msg("32 KiB at 40960 B/s with a bucket of 4096 took "
			 "%llu ms, expected >= 700",
			 (unsigned long long)((t1 - t0) / MSEC));
	blk_get_stats(f->b, &st);
	assert_true(st.throttled >= 1 && st.throttled <= 4);
	assert_int_equal(st.read_bytes, 4096 * 2 + 16384 + 4096);
	assert_int_equal(st.write_bytes, 4096);
}

/* Write-zeroes costs its bytes where it is carried out as writes. */
static void
test_limit_write_zeroes_bytes(void **state)
{
	struct fix *f = *state;
	/* tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE. */
	char dir[64] = "/dev/shm/test_blk.XXXXXX", cmd[128];
	struct blk_options o = { .limits = { .bytes_per_sec = 655360,
					     .bytes_burst = 65536 } };
	uint32_t n = 65536 / SECT, fl = 0;
	uint64_t s = 0, t0;
	struct blk_stats st;

	if (!mkdtemp(dir)) {
		skip();
		return;
	}
	snprintf(f->path, sizeof(f->path), "%s/disk.img", dir);
	assert_int_equal(make_image(f->path, IMG_SIZE, 4), 0);
	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	/* The first finds ZERO_RANGE missing (charged nothing, as the
	 * device could not know), and writes. */
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	/* From now on 64 KiB of zeroes cost 64 KiB: the second takes the
	 * full bucket, the third waits 100 ms for it. */
	t0 = now_ns();
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n, &fl, 1),
			 VIRTIO_BLK_S_OK);
	assert_true(now_ns() - t0 >= 100 * MSEC);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.write_zeroes, 3);
	/* With the unmap flag it punches, which costs no bytes: never
	 * held, although the bucket is (about) empty. */
	{
		uint64_t before = st.throttled;

		fl = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
		assert_int_equal(do_segs(f, VIRTIO_BLK_T_WRITE_ZEROES, &s, &n,
					 &fl, 1), VIRTIO_BLK_S_OK);
		blk_get_stats(f->b, &st);
		assert_int_equal(st.throttled, before);
	}
	fix_close(f);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_limit_change(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .limits = { .ops_per_sec = 1,
					     .ops_burst = 1 } };
	struct ratelimit_limits l, got;
	struct rq r[3];
	uint64_t gpa[3], t0;
	struct blk_stats st;
	unsigned int i;

	assert_int_equal(fix_open(f, &o), 0);
	blk_get_limits(f->b, &got);
	assert_memory_equal(&got, &o.limits, sizeof(got));
	bring_up(f);
	queue_reads(f, 0, 3, r, gpa);
	assert_int_equal(wait_one(f, 0), r[0].head);
	usleep(20000);
	assert_int_equal(vh_used_idx(&f->d.q[0]), 1);
	/* Lifted while the second waits (for ~1 s) and the third is in the
	 * ring: both complete at once. */
	memset(&l, 0, sizeof(l));
	t0 = now_ns();
	assert_int_equal(blk_set_limits(f->b, &l), 0);
	wait_set(f, 0, r + 1, 2);
	if (now_ns() - t0 > 500 * MSEC)
		fail_msg("held requests took %llu ms after the limit was "
			 "lifted",
			 (unsigned long long)((now_ns() - t0) / MSEC));
	blk_get_limits(f->b, &got);
	assert_memory_equal(&got, &l, sizeof(got));
	blk_get_stats(f->b, &st);
	assert_int_equal(st.throttled, 1);
	/* From unlimited to 4/s, burst 1 (a full bucket): 3 requests take
	 * 500 ms. */
	l.ops_per_sec = 4;
	l.ops_burst = 1;
	assert_int_equal(blk_set_limits(f->b, &l), 0);
	t0 = now_ns();
	queue_reads(f, 0, 3, r, gpa);
	for (i = 0; i < 3; i++)
		assert_int_equal(wait_one(f, 0), r[i].head);
	assert_true(now_ns() - t0 >= 500 * MSEC);
	/* Down while one waits: 4/s -> 1/s keeps the held request waiting
	 * (now for about a second); up to 1000/s releases it at once. */
	queue_reads(f, 0, 2, r, gpa);
	assert_int_equal(wait_one(f, 0), r[0].head);
	l.ops_per_sec = 1;
	assert_int_equal(blk_set_limits(f->b, &l), 0);
	usleep(300000);
	assert_int_equal(vh_used_idx(&f->d.q[0]), 7);
	l.ops_per_sec = 1000;
	t0 = now_ns();
	assert_int_equal(blk_set_limits(f->b, &l), 0);
	assert_int_equal(wait_one(f, 0), r[1].head);
	assert_true(now_ns() - t0 < 500 * MSEC);
	/* Refused limits change nothing. */
	l.bytes_burst = 4096;	/* without bytes_per_sec */
	assert_int_equal(blk_set_limits(f->b, &l), -EINVAL);
	l = (struct ratelimit_limits){ .ops_per_sec = RATELIMIT_MAX + 1 };
	assert_int_equal(blk_set_limits(f->b, &l), -EINVAL);
	blk_get_limits(f->b, &got);
	assert_int_equal(got.ops_per_sec, 1000);
	assert_int_equal(got.bytes_burst, 0);
}

static void
test_limit_reset_held(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .limits = { .ops_per_sec = 1,
					     .ops_burst = 1 } };
	struct ratelimit_limits none = { 0 };
	struct blk_stats st, st2;
	struct rq r[3];
	uint64_t gpa[3], t0;
	uint8_t buf[4096];

	assert_int_equal(fix_open(f, &o), 0);
	bring_up(f);
	queue_reads(f, 0, 3, r, gpa);
	assert_int_equal(wait_one(f, 0), r[0].head);
	usleep(20000);
	/* Reset while the second is held: immediate, and nothing is
	 * completed for the held or the queued requests. */
	t0 = now_ns();
	assert_int_equal(vh_dev_reset(&f->d), 0);
	assert_true(now_ns() - t0 < 500 * MSEC);
	assert_int_equal(vh_used_idx(&f->d.q[0]), 1);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.throttled, 1);
	assert_true(st.throttled_ns >= 15 * MSEC);
	/* Its throttled time ended with the reset. */
	usleep(20000);
	blk_get_stats(f->b, &st2);
	assert_int_equal(st2.throttled_ns, st.throttled_ns);
	/* The timer armed for it finds nothing to do: the device works
	 * on for a new driver (limits lifted, not to wait a second). */
	vh_dev_release(&f->d);
	bring_up(f);
	assert_int_equal(blk_set_limits(f->b, &none), 0);
	assert_int_equal(do_read(f, 0, buf, 4096), VIRTIO_BLK_S_OK);
	blk_get_stats(f->b, &st);
	assert_int_equal(st.reads, 2);
}

static void
test_limit_queues_take_turns(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .num_queues = 2,
				 .limits = { .ops_per_sec = 20,
					     .ops_burst = 1 } };
	struct rq r0[4], r1[4];
	uint64_t g0[4], g1[4];
	unsigned int order[8], n = 0, i, run = 1, longest = 1;
	unsigned int got[2] = { 0, 0 };
	uint16_t id;
	uint32_t len;
	uint64_t t0 = now_ns();

	assert_int_equal(fix_open(f, &o), 0);
	bring_up_q(f, F_ALL, 2);
	queue_reads(f, 0, 4, r0, g0);
	queue_reads(f, 1, 4, r1, g1);
	while (n < 8) {
		for (i = 0; i < 2; i++)
			while (vh_queue_get_used(&f->d.q[i], &id, &len)) {
				assert_int_equal(id, i ? r1[got[1]].head :
						 r0[got[0]].head);
				got[i]++;
				order[n++] = i;
			}
		assert_true(now_ns() - t0 < TMO * MSEC);
		usleep(1000);
	}
	/* One token each 50 ms, handed to the queues in turn: neither gets
	 * three in a row while the other waits. */
	for (i = 1; i < 8; i++) {
		run = order[i] == order[i - 1] ? run + 1 : 1;
		if (run > longest)
			longest = run;
	}
	if (longest > 2)
		fail_msg("completion order %u%u%u%u%u%u%u%u: a queue got %u "
			 "turns in a row", order[0], order[1], order[2],
			 order[3], order[4], order[5], order[6], order[7],
			 longest);
}

static void
test_limit_bad_options(void **state)
{
	struct fix *f = *state;
	struct blk_options o = { .path = f->path,
				 .limits = { .ops_burst = 10 } };
	struct blk *b = NULL;
	char err[256], want[256];

	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)),
			 -EINVAL);
	assert_null(b);
	snprintf(want, sizeof(want), "disk image '%s': ops_burst 10 is given "
		 "without ops_per_sec", f->path);
	assert_string_equal(err, want);
	o.limits = (struct ratelimit_limits){ .bytes_per_sec = UINT64_MAX };
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "bytes_per_sec 18446744073709551615 is "
			       "above the maximum"));
	/* The image was not left locked. */
	o.limits = (struct ratelimit_limits){ .bytes_per_sec = RATELIMIT_MAX };
	assert_int_equal(blk_new(&o, &f->m.mem, &b, err, sizeof(err)), 0);
	blk_free(b);
}

int
main(void)
{
#define T(fn, e) cmocka_unit_test_prestate_setup_teardown(fn, setup, \
		teardown, (void *)&(e))
#define BOTH(fn) T(fn, engine_uring), T(fn, engine_threads)
	const struct CMUnitTest tests[] = {
		BOTH(test_config),
		BOTH(test_read_write),
		BOTH(test_flush),
		BOTH(test_flush_sigkill),
		BOTH(test_get_id),
		BOTH(test_readonly),
		BOTH(test_discard),
		BOTH(test_write_zeroes),
		BOTH(test_write_zeroes_fallback),
		BOTH(test_many_in_flight),
		BOTH(test_long_chains),
		BOTH(test_write_through),
		T(test_work_after_completion, engine_threads),
		BOTH(test_multiqueue),
		BOTH(test_reset_mid_io),
		BOTH(test_stop_mid_io),
		BOTH(test_hostile),
		BOTH(test_direct),
		T(test_lock, engine_uring),
		T(test_open_errors, engine_uring),
		T(test_engine_env, engine_uring),
		BOTH(test_limit_backpressure),
		BOTH(test_limit_costs),
		T(test_limit_write_zeroes_bytes, engine_uring),
		BOTH(test_limit_change),
		BOTH(test_limit_reset_held),
		BOTH(test_limit_queues_take_turns),
		T(test_limit_bad_options, engine_uring),
	};
#undef BOTH
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
