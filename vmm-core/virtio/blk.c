/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk: the request parser, the request state machine and its two
 * I/O engines (io_uring, a thread pool). See blk.h for the choices made.
 *
 * Threads. Everything except the pool's workers runs on the device's I/O
 * thread (virtio.h): popping, parsing, submitting, reaping completions
 * (the engine's eventfd is a watched fd) and reset. So the request slots
 * and the io_uring need no lock; the pool's queues have one.
 *
 * A request owns a slot from starting to pushing. At any time it has at
 * most one operation in the engine; a short transfer, a bounce chunk, the
 * next discard segment or a fallback for write-zeroes is the next step of
 * the same request, submitted from its completion.
 *
 * Batches. A kick pops every available request and submits them with
 * one io_uring_enter. A completion wakeup (the engine's eventfd, watched
 * edge-triggered: io_uring's is never read) reaps every CQE, pushes the
 * used entries and sends one interrupt per queue (EVENT_IDX permitting)
 * right away; then, before sleeping again, it looks at the available
 * rings once more: a driver that answered the interrupt quickly has its
 * new requests submitted now, without waiting for the wakeup by its kick.
 *
 * Limits. A request the limiter holds back stays popped but not started
 * (b->held: its chain and parse are the I/O thread's popping buffers,
 * which nothing else uses until it starts), every queue that wants
 * service meanwhile is only noted (b->throttled_q), and the timerfd is
 * armed for the instant the limiter named. blk_set_limits() hands new
 * limits over under limits_lock and wakes the I/O thread with limits_fd.
 */
#include "virtio/blk.h"
#include "log.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <liburing.h>

#define BLK_PCI_CLASS		0x010000	/* mass storage, SCSI (as QEMU) */
#define BLK_INLINE_IOV		8
#define BLK_CANCEL_TAG		((uint64_t)1)	/* user_data of our cancel */
#define BLK_ZERO_CHUNK		(256u << 10)

/* --- iovec helpers ------------------------------------------------------ */

/* Copy len bytes starting skip bytes into iov to dst. Returns bytes. */
static size_t
blk_iov_read(const struct iovec *iov, unsigned int n, size_t skip, void *dst,
	     size_t len)
{
	uint8_t *d = dst;
	size_t done = 0, k;
	unsigned int i;

	for (i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy(d + done, (const uint8_t *)iov[i].iov_base + skip, k);
		done += k;
		skip = 0;
	}
	return done;
}

/* The sub-range [skip, skip + len) of iov into dst. Returns entries. */
static unsigned int
blk_iov_slice(const struct iovec *iov, unsigned int n, size_t skip,
	      size_t len, struct iovec *dst)
{
	unsigned int i, m = 0;
	size_t k;

	for (i = 0; i < n && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip;
		if (k > len)
			k = len;
		dst[m].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[m].iov_len = k;
		m++;
		len -= k;
		skip = 0;
	}
	return m;
}

/* --- The parser --------------------------------------------------------- */

/* [sector, sector + bytes / 512) inside a disk of cap sectors. */
static bool
blk_range_ok(uint64_t cap, uint64_t sector, uint64_t bytes)
{
	return sector <= cap && (bytes >> BLK_SECTOR_SHIFT) <= cap - sector;
}

static int
blk_parse_segments(const struct blk_limits *lim, const struct virtq_elem *el,
		   bool discard, uint64_t data_out, struct blk_parsed *r)
{
	struct virtio_blk_discard_write_zeroes raw;
	uint64_t n, i, sector;
	uint32_t nsect, flags;

	r->status = VIRTIO_BLK_S_IOERR;
	if (lim->readonly || el->in_len != 1 || data_out == 0 ||
	    data_out % sizeof(raw))
		return 0;
	n = data_out / sizeof(raw);
	if (n > BLK_MAX_DISCARD_SEG)
		return 0;
	for (i = 0; i < n; i++) {
		blk_iov_read(el->iov, el->nr_out, BLK_HDR_SIZE + i * sizeof(raw),
			     &raw, sizeof(raw));
		sector = le64toh(raw.sector);
		nsect = le32toh(raw.num_sectors);
		flags = le32toh(raw.flags);
		if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (discard && flags)) {
			r->status = VIRTIO_BLK_S_UNSUPP;
			return 0;
		}
		if (nsect > BLK_MAX_DISCARD_SECTORS ||
		    !blk_range_ok(lim->capacity, sector,
				  (uint64_t)nsect << BLK_SECTOR_SHIFT))
			return 0;
		r->segs[i].offset = sector << BLK_SECTOR_SHIFT;
		r->segs[i].len = (uint64_t)nsect << BLK_SECTOR_SHIFT;
		r->segs[i].unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	}
	r->nr_segs = (unsigned int)n;
	r->op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	r->status = VIRTIO_BLK_S_OK;
	return 0;
}

static void
blk_get_id(const struct blk_limits *lim, const struct virtq_elem *el,
	   uint64_t data_in, struct blk_parsed *r)
{
	struct iovec dst[BLK_SERIAL_MAX];
	char id[BLK_SERIAL_MAX] = { 0 };
	unsigned int m, i;
	size_t len = data_in < BLK_SERIAL_MAX ? data_in : BLK_SERIAL_MAX;
	size_t off = 0;

	if (len == 0) {
		r->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	/* NUL-padded; no terminator when it is exactly 20 bytes long. */
	if (lim->serial)
		memcpy(id, lim->serial, strnlen(lim->serial, sizeof(id)));
	/* At most 20 bytes: at most 20 iovecs of at least one byte. */
	m = blk_iov_slice(el->iov + el->nr_out, el->nr_in, 0, len, dst);
	for (i = 0; i < m; i++) {
		memcpy(dst[i].iov_base, id + off, dst[i].iov_len);
		off += dst[i].iov_len;
	}
	r->status = VIRTIO_BLK_S_OK;
}

int
blk_parse(const struct blk_limits *lim, const struct virtq_elem *el,
	  struct iovec *data_iov, unsigned int max_data_iov,
	  struct blk_parsed *r)
{
	struct virtio_blk_outhdr hdr;
	const struct iovec *last;
	uint64_t data_out, data_in, sector;

	memset(r, 0, offsetof(struct blk_parsed, segs));
	if (el->in_len == 0 || el->nr_in == 0)
		return -EBADMSG;
	last = &el->iov[el->nr_out + el->nr_in - 1];
	r->status_ptr = (uint8_t *)last->iov_base + last->iov_len - 1;
	r->used_len = el->in_len;
	r->op = BLK_OP_NONE;
	r->status = VIRTIO_BLK_S_IOERR;
	if (el->out_len < BLK_HDR_SIZE)
		return 0;
	blk_iov_read(el->iov, el->nr_out, 0, &hdr, sizeof(hdr));
	r->type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	data_out = el->out_len - BLK_HDR_SIZE;
	data_in = el->in_len - 1;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		if (data_out || data_in % BLK_SECTOR_SIZE ||
		    !blk_range_ok(lim->capacity, sector, data_in) ||
		    max_data_iov < el->nr_in)
			return 0;
		r->nr_iov = blk_iov_slice(el->iov + el->nr_out, el->nr_in, 0,
					  data_in, data_iov);
		r->op = BLK_OP_READ;
		r->offset = sector << BLK_SECTOR_SHIFT;
		r->len = data_in;
		break;
	case VIRTIO_BLK_T_OUT:
		if (lim->readonly || data_in || data_out % BLK_SECTOR_SIZE ||
		    !blk_range_ok(lim->capacity, sector, data_out) ||
		    max_data_iov < el->nr_out)
			return 0;
		r->nr_iov = blk_iov_slice(el->iov, el->nr_out, BLK_HDR_SIZE,
					  data_out, data_iov);
		r->op = BLK_OP_WRITE;
		r->offset = sector << BLK_SECTOR_SHIFT;
		r->len = data_out;
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->op = BLK_OP_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID:
		blk_get_id(lim, el, data_in, r);
		return 0;
	case VIRTIO_BLK_T_DISCARD:
		if (lim->readonly)
			return 0;
		if (!lim->discard) {
			r->status = VIRTIO_BLK_S_UNSUPP;
			return 0;
		}
		return blk_parse_segments(lim, el, true, data_out, r);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (lim->readonly)
			return 0;
		if (!lim->write_zeroes) {
			r->status = VIRTIO_BLK_S_UNSUPP;
			return 0;
		}
		return blk_parse_segments(lim, el, false, data_out, r);
	default:
		r->status = VIRTIO_BLK_S_UNSUPP;
		return 0;
	}
	r->status = VIRTIO_BLK_S_OK;
	return 0;
}

/* --- Device state ------------------------------------------------------- */

/* One operation handed to an engine. */
enum blk_io_kind {
	BLK_IO_READV,
	BLK_IO_WRITEV,
	BLK_IO_FSYNC,
	BLK_IO_FALLOCATE,
};

struct blk_io {
	enum blk_io_kind kind;
	const struct iovec *iov;
	unsigned int nr_iov;
	uint64_t offset;
	uint64_t len;		/* FALLOCATE */
	int mode;		/* FALLOCATE */
	int rw_flags;		/* WRITEV: RWF_DSYNC */
};

/* Stages of a write-zeroes segment. */
enum blk_wz_stage {
	BLK_WZ_PUNCH,
	BLK_WZ_ZERO_RANGE,
	BLK_WZ_WRITE,
};

struct blk_req {
	struct virtq *vq;
	uint16_t head;
	uint32_t used_len;
	uint8_t *status_ptr;
	enum blk_op op;
	uint64_t offset;	/* next file byte of the current step */
	uint64_t left;		/* bytes left (READ/WRITE, a segment) */
	uint64_t bytes;		/* the request's data bytes, for the stats */
	struct iovec *iov;	/* data left, advanced in place */
	unsigned int nr_iov;
	struct iovec *iov_alloc;	/* when more than BLK_INLINE_IOV, kept */
	unsigned int iov_alloc_n;	/* its entries */
	struct iovec iov_inline[BLK_INLINE_IOV];
	bool bounce_needed;
	uint8_t *bounce;
	struct iovec one;	/* the bounce or zero chunk being written */
	struct blk_seg segs[BLK_MAX_DISCARD_SEG];
	unsigned int nr_segs, seg;
	enum blk_wz_stage stage;
	struct blk_io io;
	/* Thread pool. */
	struct blk_req *next;
	long res;
	bool busy;
};

struct blk_pool {
	pthread_t threads[BLK_POOL_THREADS];
	unsigned int nr_threads;
	pthread_mutex_t lock;
	pthread_cond_t work;
	pthread_cond_t idle;
	struct blk_req *head, *tail;	/* waiting for a worker */
	struct blk_req *done;		/* finished, for the I/O thread */
	unsigned int running;
	bool stop;
	unsigned int delay_us;
};

struct blk {
	struct virtio_device vdev;
	char *path;
	char *serial;
	int fd;
	bool readonly;
	bool direct;
	uint64_t capacity;
	uint32_t dio_mem_align, dio_len_align;
	struct virtio_blk_config config;	/* little-endian, as the guest reads */
	struct blk_limits lim;
	bool dsync;		/* FLUSH not negotiated: write-through */
	bool no_punch, no_zero_range;	/* the file system said so */
	uint8_t *zeroes;	/* BLK_ZERO_CHUNK, aligned, lazily */

	/* The engine. */
	bool uring_ok;
	bool uring_fixed_file;	/* fd is the ring's registered file 0 */
	struct io_uring ring;
	unsigned int sq_pending;	/* prepared, not yet submitted */
	struct blk_pool pool;
	bool pool_ok;
	int efd;			/* completions: the I/O thread watches it */

	/* Requests. */
	struct blk_req slots[BLK_MAX_INFLIGHT];
	uint16_t free_list[BLK_MAX_INFLIGHT];
	unsigned int nr_free;
	uint64_t starved;	/* queues left with work for lack of slots */
	uint64_t pushed;	/* queues pushed to in this batch */
	bool resetting;

	/* Popping. */
	struct iovec pop_iov[BLK_QUEUE_SIZE];
	struct iovec data_iov[BLK_QUEUE_SIZE];
	struct blk_parsed parsed;

	/* Limits, on the I/O thread. */
	struct ratelimit rl;
	bool limited;		/* rl limits something: ask it per request */
	bool held;		/* a popped request waits for the limiter: */
	struct virtq *held_vq;	/* its queue, */
	struct virtq_elem held_el;	/* its chain (iovecs in pop_iov), */
	uint64_t held_bytes;	/* its cost; the parse is in parsed */
	uint64_t throttled_q;	/* queues with work left behind it */
	int timer_fd;		/* armed for when it may go */
	bool timer_armed;
	/* Limits handed over by blk_set_limits(). */
	pthread_mutex_t limits_lock;
	struct ratelimit_limits limits;	/* the latest, as given */
	bool limits_pending;	/* atomic: limits not yet applied */
	int limits_fd;		/* eventfd: limits_pending was set */

	struct blk_stats stats;		/* I/O thread writes, anyone reads */
};

/*
 * Only the I/O thread (or, once it is gone, the thread stopping the
 * device) writes the counters, so a plain load and a relaxed store do:
 * no locked instruction per request. Readers on other threads use
 * relaxed loads and see whole values.
 */
static inline void
blk_counter_set(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

static inline uint64_t
blk_counter_get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#define blk_stat_add(b, f, v) \
	blk_counter_set(&(b)->stats.f, blk_counter_get(&(b)->stats.f) + (v))
#define blk_stat_sub(b, f, v) \
	blk_counter_set(&(b)->stats.f, blk_counter_get(&(b)->stats.f) - (v))

static void blk_process_queue(struct blk *b, struct virtq *vq);
static void blk_submit_io(struct blk *b, struct blk_req *req);
static void blk_start(struct blk *b, struct virtq *vq,
		      const struct virtq_elem *el, const struct blk_parsed *p);

/* --- Completing --------------------------------------------------------- */

static void
blk_req_release(struct blk *b, struct blk_req *req)
{
	/* The iovec array stays with the slot for its next request; a
	 * bounce buffer (128 KiB, misaligned guests only) does not. */
	if (req->bounce) {
		free(req->bounce);
		req->bounce = NULL;
	}
	req->busy = false;
	b->free_list[b->nr_free++] = (uint16_t)(req - b->slots);
	blk_stat_sub(b, inflight, 1);
}

static void
blk_count(struct blk *b, enum blk_op op, uint8_t status, uint64_t bytes,
	  uint32_t type)
{
	if (status == VIRTIO_BLK_S_IOERR) {
		blk_stat_add(b, errors, 1);
		return;
	}
	if (status == VIRTIO_BLK_S_UNSUPP) {
		blk_stat_add(b, unsupported, 1);
		return;
	}
	switch (op) {
	case BLK_OP_READ:
		blk_stat_add(b, reads, 1);
		blk_stat_add(b, read_bytes, bytes);
		break;
	case BLK_OP_WRITE:
		blk_stat_add(b, writes, 1);
		blk_stat_add(b, write_bytes, bytes);
		break;
	case BLK_OP_FLUSH:
		blk_stat_add(b, flushes, 1);
		break;
	case BLK_OP_DISCARD:
		blk_stat_add(b, discards, 1);
		break;
	case BLK_OP_WRITE_ZEROES:
		blk_stat_add(b, write_zeroes, 1);
		break;
	case BLK_OP_NONE:
		if (type == VIRTIO_BLK_T_GET_ID)
			blk_stat_add(b, get_ids, 1);
		break;
	}
}

/* Status byte, used entry; the interrupt comes at the end of the batch. */
static void
blk_complete(struct blk *b, struct virtq *vq, uint16_t head,
	     uint8_t *status_ptr, uint32_t used_len, uint8_t status)
{
	__atomic_store_n(status_ptr, status, __ATOMIC_RELAXED);
	if (virtq_push(vq, head, used_len) == 0)
		b->pushed |= 1ULL << vq->index;
}

static void
blk_req_finish(struct blk *b, struct blk_req *req, uint8_t status)
{
	blk_count(b, req->op, status, req->bytes, 0);
	blk_complete(b, req->vq, req->head, req->status_ptr, req->used_len,
		     status);
	blk_req_release(b, req);
}

/* Interrupt every queue that got used entries in this batch. */
static void
blk_signal(struct blk *b)
{
	unsigned int q;

	for (q = 0; b->pushed && q < b->vdev.nr_queues; q++) {
		if (!(b->pushed & (1ULL << q)))
			continue;
		b->pushed &= ~(1ULL << q);
		virtio_queue_signal(&b->vdev, virtio_device_queue(&b->vdev, q));
	}
}

/* --- Request steps ------------------------------------------------------ */

/* Skip n bytes of the request's remaining data iovecs. */
static void
blk_req_advance(struct blk_req *req, size_t n)
{
	while (n && req->nr_iov) {
		if (n < req->iov->iov_len) {
			req->iov->iov_base = (uint8_t *)req->iov->iov_base + n;
			req->iov->iov_len -= n;
			return;
		}
		n -= req->iov->iov_len;
		req->iov++;
		req->nr_iov--;
	}
}

static bool
blk_iov_aligned(const struct blk *b, const struct iovec *iov, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % b->dio_mem_align ||
		    iov[i].iov_len % b->dio_len_align)
			return false;
	return true;
}

static int
blk_zeroes(struct blk *b)
{
	if (b->zeroes)
		return 0;
	if (posix_memalign((void **)&b->zeroes, 4096, BLK_ZERO_CHUNK))
		return -ENOMEM;
	memset(b->zeroes, 0, BLK_ZERO_CHUNK);
	return 0;
}

/* Prepare req->io for the current step. 0, or a negative errno. */
static int
blk_req_prepare(struct blk *b, struct blk_req *req)
{
	struct blk_io *io = &req->io;
	struct blk_seg *s;
	size_t n;

	memset(io, 0, sizeof(*io));
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		io->kind = req->op == BLK_OP_READ ? BLK_IO_READV : BLK_IO_WRITEV;
		io->offset = req->offset;
		if (req->op == BLK_OP_WRITE && b->dsync)
			io->rw_flags = RWF_DSYNC;
		if (!req->bounce_needed) {
			io->iov = req->iov;
			io->nr_iov = req->nr_iov;
			return 0;
		}
		n = req->left < BLK_BOUNCE_CHUNK ? req->left : BLK_BOUNCE_CHUNK;
		if (!req->bounce &&
		    posix_memalign((void **)&req->bounce, 4096, BLK_BOUNCE_CHUNK))
			return -ENOMEM;
		if (req->op == BLK_OP_WRITE)
			blk_iov_read(req->iov, req->nr_iov, 0, req->bounce, n);
		req->one.iov_base = req->bounce;
		req->one.iov_len = n;
		io->iov = &req->one;
		io->nr_iov = 1;
		return 0;
	case BLK_OP_FLUSH:
		io->kind = BLK_IO_FSYNC;
		return 0;
	case BLK_OP_DISCARD:
		s = &req->segs[req->seg];
		io->kind = BLK_IO_FALLOCATE;
		io->mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		io->offset = s->offset;
		io->len = s->len;
		return 0;
	case BLK_OP_WRITE_ZEROES:
		s = &req->segs[req->seg];
		if (req->stage == BLK_WZ_PUNCH && (!s->unmap || b->no_punch))
			req->stage = BLK_WZ_ZERO_RANGE;
		if (req->stage == BLK_WZ_ZERO_RANGE && b->no_zero_range)
			req->stage = BLK_WZ_WRITE;
		io->offset = req->offset;
		if (req->stage != BLK_WZ_WRITE) {
			io->kind = BLK_IO_FALLOCATE;
			io->mode = (req->stage == BLK_WZ_PUNCH ?
				    FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
				   FALLOC_FL_KEEP_SIZE;
			io->len = req->left;
			return 0;
		}
		if (blk_zeroes(b) < 0)
			return -ENOMEM;
		req->one.iov_base = b->zeroes;
		req->one.iov_len = req->left < BLK_ZERO_CHUNK ? req->left :
				   BLK_ZERO_CHUNK;
		io->kind = BLK_IO_WRITEV;
		io->iov = &req->one;
		io->nr_iov = 1;
		if (b->dsync)
			io->rw_flags = RWF_DSYNC;
		return 0;
	case BLK_OP_NONE:
		break;
	}
	return -EINVAL;
}

/* Move to the next non-empty segment; false when there is none. */
static bool
blk_req_next_seg(struct blk_req *req, bool first)
{
	if (!first)
		req->seg++;
	while (req->seg < req->nr_segs && req->segs[req->seg].len == 0)
		req->seg++;
	if (req->seg == req->nr_segs)
		return false;
	req->offset = req->segs[req->seg].offset;
	req->left = req->segs[req->seg].len;
	req->stage = BLK_WZ_PUNCH;
	return true;
}

/* Submit the current step, or finish the request with IOERR. */
static void
blk_req_step(struct blk *b, struct blk_req *req)
{
	if (blk_req_prepare(b, req) < 0) {
		blk_req_finish(b, req, VIRTIO_BLK_S_IOERR);
		return;
	}
	blk_submit_io(b, req);
}

static bool
blk_fallocate_unsupported(long res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS || res == -EINVAL ||
	       res == -ENODEV;
}

/* An operation of req ended with res (bytes, or a negative errno). */
static void
blk_req_done(struct blk *b, struct blk_req *req, long res)
{
	if (res == -EAGAIN || res == -EINTR) {
		blk_submit_io(b, req);
		return;
	}
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (res <= 0 || (uint64_t)res > req->left)
			break;	/* error, or the file shrank under us */
		if (req->bounce_needed && req->op == BLK_OP_READ) {
			struct iovec dst[BLK_QUEUE_SIZE];
			unsigned int m, i;
			size_t off = 0;

			m = blk_iov_slice(req->iov, req->nr_iov, 0, (size_t)res,
					  dst);
			for (i = 0; i < m; i++) {
				memcpy(dst[i].iov_base, req->bounce + off,
				       dst[i].iov_len);
				off += dst[i].iov_len;
			}
		}
		blk_req_advance(req, (size_t)res);
		req->offset += (uint64_t)res;
		req->left -= (uint64_t)res;
		if (!req->left) {
			blk_req_finish(b, req, VIRTIO_BLK_S_OK);
			return;
		}
		blk_req_step(b, req);
		return;
	case BLK_OP_FLUSH:
		if (res < 0)
			break;
		blk_req_finish(b, req, VIRTIO_BLK_S_OK);
		return;
	case BLK_OP_DISCARD:
		/* A discard is a hint: a file system without holes is fine. */
		if (res < 0 && blk_fallocate_unsupported(res))
			b->no_punch = true;
		else if (res < 0)
			break;
		if (!blk_req_next_seg(req, false) || b->no_punch) {
			blk_req_finish(b, req, VIRTIO_BLK_S_OK);
			return;
		}
		blk_req_step(b, req);
		return;
	case BLK_OP_WRITE_ZEROES:
		if (res < 0 && req->stage != BLK_WZ_WRITE &&
		    blk_fallocate_unsupported(res)) {
			if (req->stage == BLK_WZ_PUNCH)
				b->no_punch = true;
			else
				b->no_zero_range = true;
			req->stage++;
			blk_req_step(b, req);
			return;
		}
		if (res < 0)
			break;
		if (req->stage == BLK_WZ_WRITE) {
			if (res == 0 || (uint64_t)res > req->left)
				break;
			req->offset += (uint64_t)res;
			req->left -= (uint64_t)res;
		} else {
			req->left = 0;
		}
		if (req->left || blk_req_next_seg(req, false)) {
			blk_req_step(b, req);
			return;
		}
		blk_req_finish(b, req, VIRTIO_BLK_S_OK);
		return;
	case BLK_OP_NONE:
		break;
	}
	blk_req_finish(b, req, VIRTIO_BLK_S_IOERR);
}

/* --- Engine: io_uring ---------------------------------------------------- */

static void
blk_uring_prep(struct blk *b, struct io_uring_sqe *sqe, struct blk_req *req)
{
	const struct blk_io *io = &req->io;
	/* The registered file (index 0) spares a file lookup per operation. */
	int fd = b->uring_fixed_file ? 0 : b->fd;

	switch (io->kind) {
	case BLK_IO_READV:
		/* One buffer (a 4 KiB read, most often): the plain read spares
		 * the kernel importing an iovec array. */
		if (io->nr_iov == 1)
			io_uring_prep_read(sqe, fd, io->iov[0].iov_base,
					   (unsigned int)io->iov[0].iov_len,
					   io->offset);
		else
			io_uring_prep_readv(sqe, fd, io->iov, io->nr_iov,
					    io->offset);
		break;
	case BLK_IO_WRITEV:
		if (io->nr_iov == 1) {
			io_uring_prep_write(sqe, fd, io->iov[0].iov_base,
					    (unsigned int)io->iov[0].iov_len,
					    io->offset);
			sqe->rw_flags = io->rw_flags;
		} else {
			io_uring_prep_writev2(sqe, fd, io->iov, io->nr_iov,
					      io->offset, io->rw_flags);
		}
		break;
	case BLK_IO_FSYNC:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_IO_FALLOCATE:
		io_uring_prep_fallocate(sqe, fd, io->mode,
					(off_t)io->offset, (off_t)io->len);
		break;
	}
	if (b->uring_fixed_file)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data(sqe, req);
}

/*
 * Set up the ring: COOP_TASKRUN where the kernel has it (5.19), so that a
 * completion arriving while the I/O thread runs is not an interrupt of
 * that thread (its CQE is posted at the thread's next system call, which
 * the completion eventfd then reports); a sleeping thread is still woken.
 * Then the completion eventfd, and the image as a registered file where
 * that works. 0 or a negative errno (uring_ok false).
 */
static int
blk_uring_init(struct blk *b)
{
	static const unsigned int setup_flags[] = {
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	unsigned int i;
	int r = -EINVAL;

	for (i = 0; i < sizeof(setup_flags) / sizeof(setup_flags[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = setup_flags[i];
		r = io_uring_queue_init_params(BLK_MAX_INFLIGHT, &b->ring, &p);
		if (r != -EINVAL)
			break;
	}
	if (r < 0)
		return r;
	b->uring_ok = true;
	r = io_uring_register_eventfd(&b->ring, b->efd);
	if (r < 0) {
		io_uring_queue_exit(&b->ring);
		b->uring_ok = false;
		return r;
	}
	b->uring_fixed_file = io_uring_register_files(&b->ring, &b->fd, 1) == 0;
	return 0;
}

static void
blk_uring_flush(struct blk *b)
{
	int r;

	while (b->sq_pending) {
		r = io_uring_submit(&b->ring);
		if (r == -EINTR || r == -EAGAIN || r == -EBUSY)
			continue;
		if (r < 0) {
			/* Fail everything not taken, so no request is lost. */
			log_err("virtio-blk \"%s\": io_uring_submit: %s",
				b->path, strerror(-r));
			b->sq_pending = 0;
			return;
		}
		b->sq_pending -= (unsigned int)r < b->sq_pending ?
				 (unsigned int)r : b->sq_pending;
	}
}

/* --- Engine: thread pool ------------------------------------------------- */

static long
blk_pool_exec(struct blk *b, const struct blk_io *io)
{
	ssize_t n;

	switch (io->kind) {
	case BLK_IO_READV:
		n = preadv(b->fd, io->iov, (int)io->nr_iov, (off_t)io->offset);
		return n < 0 ? -errno : n;
	case BLK_IO_WRITEV:
		n = pwritev2(b->fd, io->iov, (int)io->nr_iov, (off_t)io->offset,
			     io->rw_flags);
		return n < 0 ? -errno : n;
	case BLK_IO_FSYNC:
		return fdatasync(b->fd) < 0 ? -errno : 0;
	case BLK_IO_FALLOCATE:
		return fallocate(b->fd, io->mode, (off_t)io->offset,
				 (off_t)io->len) < 0 ? -errno : 0;
	}
	return -EINVAL;
}

static void *
blk_pool_worker(void *arg)
{
	struct blk *b = arg;
	struct blk_pool *p = &b->pool;
	struct blk_req *req;
	long res;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stop && !p->head)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->head)
			break;
		req = p->head;
		p->head = req->next;
		if (!p->head)
			p->tail = NULL;
		p->running++;
		pthread_mutex_unlock(&p->lock);
		if (p->delay_us)
			usleep(p->delay_us);
		res = blk_pool_exec(b, &req->io);
		pthread_mutex_lock(&p->lock);
		req->res = res;
		req->next = p->done;
		p->done = req;
		if (--p->running == 0)
			pthread_cond_broadcast(&p->idle);
		pthread_mutex_unlock(&p->lock);
		if (write(b->efd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
			log_debug("virtio-blk: eventfd: %s", strerror(errno));
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void
blk_pool_submit(struct blk *b, struct blk_req *req)
{
	struct blk_pool *p = &b->pool;

	req->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = req;
	else
		p->head = req;
	p->tail = req;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
}

static int
blk_pool_start(struct blk *b, unsigned int delay_us)
{
	struct blk_pool *p = &b->pool;
	sigset_t all, old;
	unsigned int i;
	int r = 0;

	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->delay_us = delay_us;
	b->pool_ok = true;
	/* Workers take no signals (they belong to the vCPUs, main loop). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < BLK_POOL_THREADS; i++) {
		r = -pthread_create(&p->threads[i], NULL, blk_pool_worker, b);
		if (r < 0)
			break;
		p->nr_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return p->nr_threads ? 0 : r;
}

/* --- Engine: common ------------------------------------------------------ */

static void
blk_submit_io(struct blk *b, struct blk_req *req)
{
	struct io_uring_sqe *sqe;

	if (!b->uring_ok) {
		blk_pool_submit(b, req);
		return;
	}
	sqe = io_uring_get_sqe(&b->ring);
	if (!sqe) {
		/* One operation per slot keeps the ring from filling; should
		 * it anyway, make room. */
		blk_uring_flush(b);
		sqe = io_uring_get_sqe(&b->ring);
		if (!sqe) {
			blk_req_finish(b, req, VIRTIO_BLK_S_IOERR);
			return;
		}
	}
	blk_uring_prep(b, sqe, req);
	b->sq_pending++;
}

/* Hand the batch to the kernel (io_uring: one io_uring_enter). */
static void
blk_submit_batch(struct blk *b)
{
	if (b->uring_ok)
		blk_uring_flush(b);
}

/* Whether the I/O thread may pop from vq now. */
static bool
blk_queue_live(struct blk *b, struct virtq *vq)
{
	return virtio_queue_live(&b->vdev, vq->index) && !b->resetting;
}

/*
 * After completions, before the I/O thread sleeps again: serve the queues
 * that waited for a free slot, and take what the driver made available
 * meanwhile. Those requests then go in this batch's submission instead of
 * waiting for a wakeup by their kick (which then finds the ring empty).
 */
static void
blk_poll_queues(struct blk *b)
{
	unsigned int q;

	for (q = 0; b->nr_free && q < b->vdev.nr_queues; q++) {
		struct virtq *vq = virtio_device_queue(&b->vdev, q);
		bool starved = b->starved & (1ULL << q);

		b->starved &= ~(1ULL << q);
		if (!blk_queue_live(b, vq))
			continue;
		/* A held request has the limiter's timer; blk_resume() comes
		 * back to queues with work then. */
		if (starved || (!b->held && virtq_has_work(vq)))
			blk_process_queue(b, vq);
	}
}

static void
blk_reap_uring(struct blk *b)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n;

	do {
		n = 0;
		io_uring_for_each_cqe(&b->ring, head, cqe) {
			void *data = io_uring_cqe_get_data(cqe);

			n++;
			if ((uint64_t)(uintptr_t)data == BLK_CANCEL_TAG || !data)
				continue;
			blk_req_done(b, data, cqe->res);
		}
		io_uring_cq_advance(&b->ring, n);
		blk_submit_batch(b);
	} while (n);
}

static void
blk_reap_pool(struct blk *b)
{
	struct blk_req *list, *req;

	pthread_mutex_lock(&b->pool.lock);
	list = b->pool.done;
	b->pool.done = NULL;
	pthread_mutex_unlock(&b->pool.lock);
	while (list) {
		req = list;
		list = req->next;
		blk_req_done(b, req, req->res);
	}
}

/* The engine's eventfd: completions are in. I/O thread. */
static void
blk_on_completion(struct virtio_device *vdev, int fd, uint32_t events,
		  void *arg)
{
	struct blk *b = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	/* Edge-triggered: io_uring's eventfd needs no read (one system call
	 * less per batch), each CQE posted after our look is a new edge.
	 * The pool's counter is read so that it stays small. */
	if (!b->uring_ok && read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (b->uring_ok)
		blk_reap_uring(b);
	else
		blk_reap_pool(b);
	/* The driver hears of these now, not after the submission below. */
	blk_signal(b);
	blk_poll_queues(b);
	blk_submit_batch(b);
	blk_signal(b);
}

/*
 * Wait until no operation is in the engine; what completes is dropped
 * without touching guest memory. I/O thread (or the only thread left).
 */
static void
blk_drain(struct blk *b)
{
	struct blk_pool *p = &b->pool;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct blk_req *list, *req;
	unsigned int i, busy = 0;
	void *data;
	int r;

	for (i = 0; i < BLK_MAX_INFLIGHT; i++)
		busy += b->slots[i].busy;
	if (b->uring_ok && busy) {
		blk_uring_flush(b);
		/* Cancel what has not started; the rest we wait for, since
		 * the kernel may be writing into guest memory right now. */
		sqe = io_uring_get_sqe(&b->ring);
		if (sqe) {
			io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
			io_uring_sqe_set_data64(sqe, BLK_CANCEL_TAG);
			io_uring_submit(&b->ring);
		}
		while (busy) {
			r = io_uring_wait_cqe(&b->ring, &cqe);
			if (r == -EINTR)
				continue;
			if (r < 0) {
				log_err("virtio-blk \"%s\": waiting for I/O: %s",
					b->path, strerror(-r));
				break;
			}
			data = io_uring_cqe_get_data(cqe);
			io_uring_cqe_seen(&b->ring, cqe);
			if ((uint64_t)(uintptr_t)data == BLK_CANCEL_TAG || !data)
				continue;
			blk_req_release(b, data);
			busy--;
		}
	} else if (b->pool_ok) {
		pthread_mutex_lock(&p->lock);
		list = p->head;
		p->head = p->tail = NULL;
		while (p->running)
			pthread_cond_wait(&p->idle, &p->lock);
		/* Append the finished ones. */
		for (req = p->done; req; ) {
			struct blk_req *nx = req->next;

			req->next = list;
			list = req;
			req = nx;
		}
		p->done = NULL;
		pthread_mutex_unlock(&p->lock);
		while (list) {
			req = list;
			list = req->next;
			blk_req_release(b, req);
		}
	}
	b->sq_pending = 0;
	/* Anything left busy (a failed wait) is abandoned. */
	for (i = 0; i < BLK_MAX_INFLIGHT; i++)
		if (b->slots[i].busy)
			blk_req_release(b, &b->slots[i]);
	b->starved = 0;
	b->pushed = 0;
}

/* --- Queue work ---------------------------------------------------------- */

/*
 * Room for n iovecs in req->iov_alloc. The array is kept across requests
 * (at most BLK_QUEUE_SIZE entries, 4 KiB, per slot: what the guest's
 * longest chains needed), so a guest that sends long chains costs no
 * allocation per request. 0 or -ENOMEM.
 */
static int
blk_req_iov_reserve(struct blk_req *req, unsigned int n)
{
	struct iovec *v;

	if (n <= req->iov_alloc_n)
		return 0;
	if (n < BLK_QUEUE_SIZE / 4)
		n = BLK_QUEUE_SIZE / 4;
	v = realloc(req->iov_alloc, n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	req->iov_alloc = v;
	req->iov_alloc_n = n;
	return 0;
}

/* Start a parsed request in a free slot (there is one). */
static void
blk_start(struct blk *b, struct virtq *vq, const struct virtq_elem *el,
	  const struct blk_parsed *p)
{
	struct blk_req *req = &b->slots[b->free_list[--b->nr_free]];

	blk_stat_add(b, inflight, 1);
	req->busy = true;
	req->vq = vq;
	req->head = el->head;
	req->used_len = p->used_len;
	req->status_ptr = p->status_ptr;
	req->op = p->op;
	req->offset = p->offset;
	req->left = p->len;
	req->bytes = p->len;
	req->bounce_needed = false;
	req->nr_iov = 0;
	req->iov = req->iov_inline;
	if (p->op == BLK_OP_READ || p->op == BLK_OP_WRITE) {
		if (p->len == 0) {
			blk_req_finish(b, req, VIRTIO_BLK_S_OK);
			return;
		}
		if (p->nr_iov > BLK_INLINE_IOV) {
			if (blk_req_iov_reserve(req, p->nr_iov) < 0) {
				blk_req_finish(b, req, VIRTIO_BLK_S_IOERR);
				return;
			}
			req->iov = req->iov_alloc;
		}
		memcpy(req->iov, b->data_iov, p->nr_iov * sizeof(struct iovec));
		req->nr_iov = p->nr_iov;
		req->bounce_needed = b->direct &&
				     !blk_iov_aligned(b, req->iov, req->nr_iov);
	} else if (p->op == BLK_OP_DISCARD || p->op == BLK_OP_WRITE_ZEROES) {
		memcpy(req->segs, p->segs, p->nr_segs * sizeof(p->segs[0]));
		req->nr_segs = p->nr_segs;
		req->seg = 0;
		if (!blk_req_next_seg(req, true) ||
		    (p->op == BLK_OP_DISCARD && b->no_punch)) {
			blk_req_finish(b, req, VIRTIO_BLK_S_OK);
			return;
		}
	}
	blk_req_step(b, req);
}

/* --- Limits ------------------------------------------------------------ */

/* The bytes a parsed request costs (see blk.h). */
static uint64_t
blk_cost_bytes(const struct blk *b, const struct blk_parsed *p)
{
	uint64_t sum = 0;
	unsigned int i;

	switch (p->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return p->len;
	case BLK_OP_WRITE_ZEROES:
		if (!b->no_zero_range)
			return 0;
		for (i = 0; i < p->nr_segs; i++)
			if (!p->segs[i].unmap || b->no_punch)
				sum += p->segs[i].len;
		return sum;
	case BLK_OP_NONE:
	case BLK_OP_FLUSH:
	case BLK_OP_DISCARD:
		break;
	}
	return 0;
}

/* Arm the timer for now + wait (absolute, so the instant is exact). */
static void
blk_arm_timer(struct blk *b, uint64_t now, uint64_t wait)
{
	uint64_t at = wait > UINT64_MAX - now ? UINT64_MAX : now + wait;
	struct itimerspec its = {
		.it_value = {
			.tv_sec = (time_t)(at / RATELIMIT_NSEC),
			.tv_nsec = (long)(at % RATELIMIT_NSEC),
		},
	};

	/* Cannot fail on our timerfd with a valid, non-zero time. */
	if (timerfd_settime(b->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		b->timer_armed = true;
}

static void
blk_disarm_timer(struct blk *b)
{
	struct itimerspec its = { 0 };

	if (!b->timer_armed)
		return;
	timerfd_settime(b->timer_fd, 0, &its, NULL);
	b->timer_armed = false;
}

/* Take the limits blk_set_limits() left, keeping the buckets' levels. */
static void
blk_apply_limits(struct blk *b)
{
	struct ratelimit_limits l;

	pthread_mutex_lock(&b->limits_lock);
	l = b->limits;
	__atomic_store_n(&b->limits_pending, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&b->limits_lock);
	ratelimit_set(&b->rl, &l, ratelimit_now());
	b->limited = ratelimit_limited(&b->rl);
}

/*
 * May the request just popped from vq (el, parsed in b->parsed) start?
 * If not, hold it and arm the timer; the caller stops popping.
 */
static bool
blk_admit(struct blk *b, struct virtq *vq, const struct virtq_elem *el)
{
	uint64_t bytes = blk_cost_bytes(b, &b->parsed);
	uint64_t now = ratelimit_now();
	uint64_t wait = ratelimit_take(&b->rl, bytes, 1, now);

	if (wait == 0)
		return true;
	b->held = true;
	b->held_vq = vq;
	b->held_el = *el;
	b->held_bytes = bytes;
	b->throttled_q |= 1ULL << vq->index;
	blk_arm_timer(b, now, wait);
	return false;
}

/*
 * The held request's time came (or the limits changed): start it if the
 * limiter agrees, then serve the queues that waited behind it, starting
 * after its own so that one busy queue does not take every token.
 */
static void
blk_resume(struct blk *b)
{
	unsigned int i, q, n = b->vdev.nr_queues, first = 0;
	struct virtq *vq;
	uint64_t now, wait;

	if (b->held) {
		vq = b->held_vq;
		/* NEEDS_RESET or a reset under way: the reset drops it. */
		if (!blk_queue_live(b, vq))
			return;
		now = ratelimit_now();
		wait = ratelimit_take(&b->rl, b->held_bytes, 1, now);
		if (wait) {
			blk_arm_timer(b, now, wait);
			return;
		}
		b->held = false;
		blk_disarm_timer(b);
		blk_start(b, vq, &b->held_el, &b->parsed);
		first = vq->index + 1;
	}
	for (i = 0; i < n && b->throttled_q && !b->held; i++) {
		q = (first + i) % n;
		if (!(b->throttled_q & (1ULL << q)))
			continue;
		b->throttled_q &= ~(1ULL << q);
		vq = virtio_device_queue(&b->vdev, q);
		if (blk_queue_live(b, vq))
			blk_process_queue(b, vq);
	}
}

/* The timer: the held request may go now. I/O thread. */
static void
blk_on_timer(struct virtio_device *vdev, int fd, uint32_t events, void *arg)
{
	struct blk *b = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	b->timer_armed = false;
	blk_resume(b);
	blk_submit_batch(b);
	blk_signal(b);
}

/* blk_set_limits() was called. I/O thread. */
static void
blk_on_limits(struct virtio_device *vdev, int fd, uint32_t events, void *arg)
{
	struct blk *b = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	if (__atomic_load_n(&b->limits_pending, __ATOMIC_ACQUIRE))
		blk_apply_limits(b);
	if (!b->held)
		return;
	blk_resume(b);
	blk_submit_batch(b);
	blk_signal(b);
}

/* --- Popping ------------------------------------------------------------- */

static void
blk_process_queue(struct blk *b, struct virtq *vq)
{
	struct blk_parsed *p = &b->parsed;
	struct virtq_elem el;
	int r;

	/* Busy anyway: no kicks until we find the queue empty. */
	virtq_disable_notify(vq);
	/* Limits changed: apply them before the next request (the eventfd
	 * handler may come after this kick's in the same wakeup). */
	if (__atomic_load_n(&b->limits_pending, __ATOMIC_ACQUIRE))
		blk_apply_limits(b);
	if (b->held) {
		/* Nothing overtakes the held request; blk_resume() comes
		 * back here, and the driver need not kick meanwhile. */
		b->throttled_q |= 1ULL << vq->index;
		return;
	}
	while (b->nr_free) {
		r = virtq_pop(vq, b->pop_iov, BLK_QUEUE_SIZE, &el);
		if (r <= 0)
			break;
		if (blk_parse(&b->lim, &el, b->data_iov, BLK_QUEUE_SIZE, p) < 0) {
			virtio_device_needs_reset(&b->vdev, "queue %u: request "
						  "at head %u has no status "
						  "byte", vq->index, el.head);
			break;
		}
		if (p->op == BLK_OP_NONE) {
			blk_count(b, BLK_OP_NONE, p->status, 0, p->type);
			blk_complete(b, vq, el.head, p->status_ptr, p->used_len,
				     p->status);
			continue;
		}
		if (b->limited && !blk_admit(b, vq, &el))
			return;
		blk_start(b, vq, &el, p);
	}
	if (!b->nr_free && virtq_has_work(vq))
		b->starved |= 1ULL << vq->index;
}

/* --- virtio ops ---------------------------------------------------------- */

static struct blk *
blk_of(struct virtio_device *vdev)
{
	return vdev->opaque;
}

static void
blk_config_read(struct virtio_device *vdev, uint32_t off, void *data,
		uint32_t len)
{
	struct blk *b = blk_of(vdev);

	/* The core checked off + len against config_size. */
	memcpy(data, (const uint8_t *)&b->config + off, len);
}

static void
blk_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct blk *b = blk_of(vdev);

	blk_process_queue(b, vq);
	blk_submit_batch(b);
	blk_signal(b);
}

static void
blk_activate(struct virtio_device *vdev)
{
	struct blk *b = blk_of(vdev);

	b->resetting = false;
	b->lim.discard = virtio_has_feature(vdev, VIRTIO_BLK_F_DISCARD);
	b->lim.write_zeroes = virtio_has_feature(vdev,
						 VIRTIO_BLK_F_WRITE_ZEROES);
	b->dsync = !virtio_has_feature(vdev, VIRTIO_BLK_F_FLUSH) &&
		   !b->readonly;
}

static void
blk_reset(struct virtio_device *vdev)
{
	struct blk *b = blk_of(vdev);

	b->resetting = true;
	blk_drain(b);
	b->lim.discard = b->lim.write_zeroes = false;
	/* The held request goes with the rings; the buckets stay (a reset
	 * buys no new burst). */
	if (b->held)
		ratelimit_cancel(&b->rl, ratelimit_now());
	b->held = false;
	b->throttled_q = 0;
	blk_disarm_timer(b);
}

static const struct virtio_device_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.pci_class = BLK_PCI_CLASS,
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
	.activate = blk_activate,
	.reset = blk_reset,
};

/* --- Setup --------------------------------------------------------------- */

static int
blk_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
blk_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int
blk_open(struct blk *b, const struct blk_options *o, char *err, size_t errlen)
{
	struct flock lk = { .l_whence = SEEK_SET };
	struct statx stx;
	struct stat st;
	uint64_t size;
	int flags, r;

	flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK |
		(o->direct ? O_DIRECT : 0);
	b->fd = open(o->path, flags);
	if (b->fd < 0) {
		r = -errno;
		if (r == -EINVAL && o->direct)
			return blk_fail(err, errlen, r, "disk image '%s': its "
					"file system does not support O_DIRECT",
					o->path);
		return blk_fail(err, errlen, r, "disk image '%s': %s",
				o->path, r == -ENOENT ? "no such file" :
				r == -EISDIR ? "is a directory" : strerror(-r));
	}
	if (fstat(b->fd, &st) < 0)
		return blk_fail(err, errlen, -errno, "disk image '%s': %s",
				o->path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return blk_fail(err, errlen, -EISDIR,
				"disk image '%s': is a directory", o->path);
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &size) < 0)
			return blk_fail(err, errlen, -errno, "disk image '%s': "
					"BLKGETSIZE64: %s", o->path,
					strerror(errno));
	} else {
		return blk_fail(err, errlen, -EINVAL, "disk image '%s': not a "
				"regular file or block device", o->path);
	}
	/* O_NONBLOCK was only for the open (a FIFO would block there);
	 * on the image it would make io_uring return -EAGAIN. */
	if (fcntl(b->fd, F_SETFL, flags & ~O_NONBLOCK & ~O_CLOEXEC &
		  ~O_ACCMODE) < 0)
		return blk_fail(err, errlen, -errno, "disk image '%s': "
				"F_SETFL: %s", o->path, strerror(errno));
	lk.l_type = o->readonly ? F_RDLCK : F_WRLCK;
	if (fcntl(b->fd, F_OFD_SETLK, &lk) < 0) {
		r = -errno;
		if (r == -EAGAIN || r == -EACCES)
			return blk_fail(err, errlen, -EBUSY, "disk image '%s' is "
					"in use by another VM", o->path);
		return blk_fail(err, errlen, r, "disk image '%s': cannot lock "
				"it: %s", o->path, strerror(-r));
	}
	b->capacity = size >> BLK_SECTOR_SHIFT;
	b->dio_mem_align = b->dio_len_align = BLK_SECTOR_SIZE;
	if (o->direct && statx(b->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN,
			       &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
	    stx.stx_dio_mem_align && stx.stx_dio_offset_align) {
		b->dio_mem_align = stx.stx_dio_mem_align;
		if (stx.stx_dio_offset_align > BLK_SECTOR_SIZE)
			b->dio_len_align = stx.stx_dio_offset_align;
	}
	/* The physical block: what the guest should align its writes to. */
	b->config.physical_block_exp = 0;
	if (st.st_blksize >= 4096)
		b->config.physical_block_exp = 3;
	return 0;
}

static int
blk_check_serial(const char *s)
{
	size_t i, n;

	if (!s)
		return 0;
	n = strlen(s);
	if (n > BLK_SERIAL_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return -EINVAL;
	return 0;
}

static void
blk_fill_config(struct blk *b, unsigned int nq)
{
	struct virtio_blk_config *c = &b->config;
	uint32_t blk_size = b->dio_len_align;

	c->capacity = htole64(b->capacity);
	c->seg_max = htole32(BLK_SEG_MAX);
	c->blk_size = htole32(blk_size);
	/* physical_block_exp is set by blk_open(), in logical blocks. */
	if (blk_size >= 4096)
		c->physical_block_exp = 0;
	c->alignment_offset = 0;
	c->min_io_size =
		htole16((uint16_t)(1u << c->physical_block_exp));
	c->opt_io_size = 0;
	c->num_queues = htole16((uint16_t)nq);
	c->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_discard_seg = htole32(BLK_MAX_DISCARD_SEG);
	c->discard_sector_alignment = htole32(blk_size >> BLK_SECTOR_SHIFT);
	c->max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG);
	c->write_zeroes_may_unmap = 1;
}

static enum blk_engine
blk_engine_choice(enum blk_engine e)
{
	const char *env;

	if (e != BLK_ENGINE_AUTO)
		return e;
	env = getenv("VMM_BLK_ENGINE");
	if (env && !strcmp(env, "threads"))
		return BLK_ENGINE_THREADS;
	if (env && !strcmp(env, "uring"))
		return BLK_ENGINE_URING;
	return BLK_ENGINE_AUTO;
}

int
blk_new(const struct blk_options *o, const struct guest_mem *mem,
	struct blk **ret, char *err, size_t errlen)
{
	enum blk_engine engine;
	unsigned int nq, i;
	struct blk *b;
	uint64_t f;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!o || !o->path || !mem)
		return blk_fail(err, errlen, -EINVAL, "disk image: no path");
	nq = o->num_queues ? o->num_queues : 1;
	if (nq > BLK_MAX_QUEUES)
		return blk_fail(err, errlen, -EINVAL, "disk image '%s': %u "
				"queues (at most %u)", o->path, nq,
				BLK_MAX_QUEUES);
	if (blk_check_serial(o->serial) < 0)
		return blk_fail(err, errlen, -EINVAL, "disk image '%s': the "
				"serial must be at most %u printable ASCII "
				"characters", o->path, BLK_SERIAL_MAX);
	{
		char what[PATH_MAX + 32];

		snprintf(what, sizeof(what), "disk image '%s'", o->path);
		r = ratelimit_limits_check(&o->limits, what, err, errlen);
		if (r < 0)
			return r;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return blk_fail(err, errlen, -ENOMEM, "disk image '%s': out of "
				"memory", o->path);
	b->fd = b->efd = b->timer_fd = b->limits_fd = -1;
	pthread_mutex_init(&b->limits_lock, NULL);
	b->limits = o->limits;
	ratelimit_init(&b->rl, &o->limits, ratelimit_now());
	b->limited = ratelimit_limited(&b->rl);
	b->readonly = o->readonly;
	b->direct = o->direct;
	b->path = strdup(o->path);
	b->serial = o->serial && o->serial[0] ? strdup(o->serial) : NULL;
	if (!b->path || (o->serial && o->serial[0] && !b->serial)) {
		r = blk_fail(err, errlen, -ENOMEM, "disk image '%s': out of "
			     "memory", o->path);
		goto fail;
	}
	r = blk_open(b, o, err, errlen);
	if (r < 0)
		goto fail;
	blk_fill_config(b, nq);
	b->lim.capacity = b->capacity;
	b->lim.readonly = b->readonly;
	b->lim.serial = b->serial;
	for (i = 0; i < BLK_MAX_INFLIGHT; i++)
		b->free_list[i] = (uint16_t)(BLK_MAX_INFLIGHT - 1 - i);
	b->nr_free = BLK_MAX_INFLIGHT;

	b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	b->limits_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->efd < 0 || b->limits_fd < 0) {
		r = blk_fail(err, errlen, -errno, "disk image '%s': eventfd: %s",
			     o->path, strerror(errno));
		goto fail;
	}
	b->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_CLOEXEC | TFD_NONBLOCK);
	if (b->timer_fd < 0) {
		r = blk_fail(err, errlen, -errno, "disk image '%s': timerfd: "
			     "%s", o->path, strerror(errno));
		goto fail;
	}
	engine = blk_engine_choice(o->engine);
	if (engine != BLK_ENGINE_THREADS) {
		r = blk_uring_init(b);
		if (r < 0 && engine == BLK_ENGINE_URING) {
			r = blk_fail(err, errlen, r, "disk image '%s': "
				     "io_uring: %s", o->path, strerror(-r));
			goto fail;
		}
	}
	if (!b->uring_ok) {
		r = blk_pool_start(b, o->test_delay_us);
		if (r < 0) {
			r = blk_fail(err, errlen, r, "disk image '%s': I/O "
				     "threads: %s", o->path, strerror(-r));
			goto fail;
		}
	}

	f = (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
	    (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_TOPOLOGY);
	if (b->readonly)
		f |= 1ULL << VIRTIO_BLK_F_RO;
	else
		f |= (1ULL << VIRTIO_BLK_F_DISCARD) |
		     (1ULL << VIRTIO_BLK_F_WRITE_ZEROES);
	if (nq > 1)
		f |= 1ULL << VIRTIO_BLK_F_MQ;
	b->vdev.ops = &blk_ops;
	b->vdev.name = b->path;
	b->vdev.mem = mem;
	b->vdev.features = f;
	b->vdev.config_size = sizeof(struct virtio_blk_config);
	b->vdev.nr_queues = nq;
	b->vdev.opaque = b;
	r = virtio_device_init(&b->vdev, BLK_QUEUE_SIZE);
	if (r < 0) {
		r = blk_fail(err, errlen, r, "disk image '%s': virtio device: "
			     "%s", o->path, strerror(-r));
		goto fail;
	}
	r = virtio_device_watch_fd(&b->vdev, b->efd, EPOLLIN | EPOLLET,
				   blk_on_completion, b);
	if (r == 0)
		r = virtio_device_watch_fd(&b->vdev, b->timer_fd, EPOLLIN,
					   blk_on_timer, b);
	if (r == 0)
		r = virtio_device_watch_fd(&b->vdev, b->limits_fd, EPOLLIN,
					   blk_on_limits, b);
	if (r < 0) {
		r = blk_fail(err, errlen, r, "disk image '%s': watching I/O "
			     "completions and timers: %s", o->path,
			     strerror(-r));
		goto fail;
	}
	*ret = b;
	return 0;
fail:
	blk_free(b);
	return r;
}

void
blk_stop(struct blk *b)
{
	if (!b)
		return;
	virtio_device_destroy(&b->vdev);
	blk_drain(b);
}

void
blk_free(struct blk *b)
{
	unsigned int i;

	if (!b)
		return;
	blk_stop(b);
	if (b->pool_ok) {
		pthread_mutex_lock(&b->pool.lock);
		b->pool.stop = true;
		pthread_cond_broadcast(&b->pool.work);
		pthread_mutex_unlock(&b->pool.lock);
		for (i = 0; i < b->pool.nr_threads; i++)
			pthread_join(b->pool.threads[i], NULL);
		pthread_mutex_destroy(&b->pool.lock);
		pthread_cond_destroy(&b->pool.work);
		pthread_cond_destroy(&b->pool.idle);
	}
	if (b->uring_ok) {
		/* The ring's reference to the image goes now, not whenever
		 * the kernel tears the ring down. */
		if (b->uring_fixed_file)
			io_uring_unregister_files(&b->ring);
		io_uring_queue_exit(&b->ring);
	}
	if (b->efd >= 0)
		close(b->efd);
	if (b->timer_fd >= 0)
		close(b->timer_fd);
	if (b->limits_fd >= 0)
		close(b->limits_fd);
	pthread_mutex_destroy(&b->limits_lock);
	if (b->fd >= 0) {
		/* Unlock explicitly: the lock belongs to the open file, which
		 * a reference the kernel still holds (an io_uring being torn
		 * down) would keep alive after our close. */
		struct flock lk = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

		fcntl(b->fd, F_OFD_SETLK, &lk);
		close(b->fd);
	}
	for (i = 0; i < BLK_MAX_INFLIGHT; i++)
		free(b->slots[i].iov_alloc);
	free(b->zeroes);
	free(b->serial);
	free(b->path);
	free(b);
}

struct virtio_device *
blk_virtio(struct blk *b)
{
	return &b->vdev;
}

uint64_t
blk_capacity(const struct blk *b)
{
	return b->capacity;
}

const char *
blk_engine_name(const struct blk *b)
{
	return b->uring_ok ? "io_uring" : "threads";
}

void
blk_get_stats(struct blk *b, struct blk_stats *ret)
{
	struct ratelimit_stats rs;

	ret->reads = __atomic_load_n(&b->stats.reads, __ATOMIC_RELAXED);
	ret->read_bytes = __atomic_load_n(&b->stats.read_bytes,
					  __ATOMIC_RELAXED);
	ret->writes = __atomic_load_n(&b->stats.writes, __ATOMIC_RELAXED);
	ret->write_bytes = __atomic_load_n(&b->stats.write_bytes,
					   __ATOMIC_RELAXED);
	ret->flushes = __atomic_load_n(&b->stats.flushes, __ATOMIC_RELAXED);
	ret->discards = __atomic_load_n(&b->stats.discards, __ATOMIC_RELAXED);
	ret->write_zeroes = __atomic_load_n(&b->stats.write_zeroes,
					    __ATOMIC_RELAXED);
	ret->get_ids = __atomic_load_n(&b->stats.get_ids, __ATOMIC_RELAXED);
	ret->errors = __atomic_load_n(&b->stats.errors, __ATOMIC_RELAXED);
	ret->unsupported = __atomic_load_n(&b->stats.unsupported,
					   __ATOMIC_RELAXED);
	ret->inflight = __atomic_load_n(&b->stats.inflight, __ATOMIC_RELAXED);
	ratelimit_get_stats(&b->rl, ratelimit_now(), &rs);
	ret->throttled = rs.delayed;
	ret->throttled_ns = rs.throttled_ns;
}

int
blk_set_limits(struct blk *b, const struct ratelimit_limits *l)
{
	int r = ratelimit_limits_check(l, NULL, NULL, 0);
	ssize_t n;

	if (r < 0)
		return r;
	pthread_mutex_lock(&b->limits_lock);
	b->limits = *l;
	/* Release: the I/O thread's acquire load then takes the lock. */
	__atomic_store_n(&b->limits_pending, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&b->limits_lock);
	/* An eventfd write fails only with ~2^64 writes pending, when a
	 * wakeup is pending anyway. */
	n = write(b->limits_fd, &(uint64_t){ 1 }, sizeof(uint64_t));
	(void)n;
	return 0;
}

void
blk_get_limits(struct blk *b, struct ratelimit_limits *ret)
{
	pthread_mutex_lock(&b->limits_lock);
	*ret = b->limits;
	pthread_mutex_unlock(&b->limits_lock);
}
