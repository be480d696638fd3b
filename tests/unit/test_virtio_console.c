/* SPDX-License-Identifier: MIT */
/*
 * virtio-console through the driver-side harness, as Linux's
 * virtio_console (one port, hvc0) would drive it over virtio-pci, with
 * pipes (blocking and not) and regular files as the host side: identity
 * and the size in config space; guest output arriving on out_fd in order
 * (1 MiB through many buffers, against a slow reader), the output
 * callback, a stalled or vanished reader; host input reaching posted
 * receive buffers in order (1 MiB), input that waits for buffers posted
 * late without the device spinning, EOF; reset in the middle of both
 * directions; and hostile buffers ending in NEEDS_RESET.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_console.h>
#include <linux/virtio_pci.h>

#include "helpers/virtio_harness.h"
#include "log.h"
#include "virtio/console.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define RAM	(64ULL << 20)
#define TMO	3000
#define QSIZE	256
#define VEC_CFG	0
#define VEC_RX	1
#define VEC_TX	2
#define RXQ	CONSOLE_RX_QUEUE
#define TXQ	CONSOLE_TX_QUEUE
#define MIB	(1u << 20)

#define F_V1	(1ULL << VIRTIO_F_VERSION_1)
#define F_EVT	(1ULL << VIRTIO_RING_F_EVENT_IDX)
#define F_IND	(1ULL << VIRTIO_RING_F_INDIRECT_DESC)
#define F_SIZE	(1ULL << VIRTIO_CONSOLE_F_SIZE)

enum backend { BACKEND_PIPES, BACKEND_FILES, BACKEND_NONE };

struct fix {
	struct vh_machine m;
	struct vcon *con;
	struct virtio_pci *vp;
	struct vh_dev d;
	/* The test's ends and the device's (which it duplicated). */
	int in_r, in_w, out_r, out_w;
	uint64_t rx_gpa[QSIZE];		/* receive buffer of each head */
	uint32_t rx_size[QSIZE];
	/* What the output callback saw. */
	pthread_mutex_t cb_lock;
	uint8_t *cb_buf;
	size_t cb_len;
	unsigned int cb_calls;
};

static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 9) * 13 + (i >> 17));
}

static int
setup_backend(void **state, enum backend be)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct console_options o = { -1, -1 };
	int p[2];

	assert_non_null(f);
	f->in_r = f->in_w = f->out_r = f->out_w = -1;
	pthread_mutex_init(&f->cb_lock, NULL);
	assert_int_equal(vh_machine_init(&f->m, RAM), 0);
	if (be == BACKEND_PIPES) {
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		f->in_r = p[0];
		f->in_w = p[1];
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		f->out_r = p[0];
		f->out_w = p[1];
		o = (struct console_options){ f->in_r, f->out_w };
	} else if (be == BACKEND_FILES) {
		/* Regular files: epoll cannot watch them. */
		f->in_r = memfd_create("con-in", MFD_CLOEXEC);
		f->out_w = memfd_create("con-out", MFD_CLOEXEC);
		assert_true(f->in_r >= 0 && f->out_w >= 0);
		o = (struct console_options){ f->in_r, f->out_w };
	}
	assert_int_equal(console_new(&f->m.mem, be == BACKEND_NONE ? NULL : &o,
				     &f->con), 0);
	assert_int_equal(vh_machine_add(&f->m, console_virtio(f->con), &f->vp),
			 0);
	assert_int_equal(vh_dev_probe(&f->d, &f->m, f->vp), 0);
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_backend(state, BACKEND_PIPES);
}

static int
setup_files(void **state)
{
	return setup_backend(state, BACKEND_FILES);
}

static int
setup_none(void **state)
{
	return setup_backend(state, BACKEND_NONE);
}

static int
teardown(void **state)
{
	struct fix *f = *state;

	virtio_device_destroy(console_virtio(f->con));
	vh_dev_release(&f->d);
	vh_machine_destroy(&f->m);
	virtio_pci_free(f->vp);
	console_free(f->con);
	if (f->in_r >= 0)
		close(f->in_r);
	if (f->in_w >= 0)
		close(f->in_w);
	if (f->out_r >= 0)
		close(f->out_r);
	if (f->out_w >= 0)
		close(f->out_w);
	pthread_mutex_destroy(&f->cb_lock);
	free(f->cb_buf);
	free(f);
	return 0;
}

static void
bring_up(struct fix *f, uint64_t features)
{
	struct vh_dev *d = &f->d;

	assert_int_equal(vh_dev_negotiate(d, features, false), 0);
	assert_int_equal(vh_dev_msix_enable(d), 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CFG);
	assert_int_equal(vh_queue_setup(d, RXQ, QSIZE, VEC_RX), 0);
	assert_int_equal(vh_queue_setup(d, TXQ, QSIZE, VEC_TX), 0);
	assert_int_equal(vh_dev_driver_ok(d), 0);
}

static void
set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	assert_int_equal(fcntl(fd, F_SETFL, fl), 0);
}

static int
pipe_bytes(int fd)
{
	int n = -1;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return n;
}

static unsigned int
nr_watches(struct fix *f)
{
	struct virtio_device *vdev = console_virtio(f->con);
	unsigned int n;

	pthread_mutex_lock(&vdev->ctl_lock);
	n = vdev->nr_watches;
	pthread_mutex_unlock(&vdev->ctl_lock);
	return n;
}

static uint64_t
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((t.tv_sec - t0->tv_sec) * 1000 +
			  (t.tv_nsec - t0->tv_nsec) / 1000000);
}

static uint64_t
cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* The process burns (almost) no CPU for ms: nobody spins. */
static void
assert_idle(unsigned int ms)
{
	uint64_t c0 = cpu_ns(), used;

	usleep(ms * 1000);
	used = cpu_ns() - c0;
	if (used > ms * 1000000ULL / 5)
		fail_msg("%llu ms of CPU in %u ms of waiting: something spins",
			 (unsigned long long)(used / 1000000), ms);
}

/* --- Output helpers ------------------------------------------------- */

/* Post len bytes from data as one transmit buffer in nseg pieces. */
static int
tx_post(struct fix *f, const void *data, uint32_t len, unsigned int nseg,
	bool indirect)
{
	struct vh_buf b[8];
	uint64_t g = vh_alloc(&f->m, len ? len : 1, 8);
	uint32_t off = 0, piece;
	unsigned int i;

	assert_true(g != 0 && nseg >= 1 && nseg <= 8);
	if (len)
		memcpy(vh_ptr(&f->m, g, len), data, len);
	for (i = 0; i < nseg; i++) {
		piece = i + 1 == nseg ? len - off : len / nseg;
		b[i] = (struct vh_buf){ g + off, piece };
		off += piece;
	}
	return vh_queue_add(&f->d.q[TXQ], b, nseg, 0, indirect);
}

static void
tx_wait(struct fix *f, int head)
{
	uint16_t id;
	uint32_t len;

	if (!vh_queue_wait_used(&f->d.q[TXQ], &id, &len, TMO))
		fail_msg("transmit head %d not completed in %d ms", head, TMO);
	assert_int_equal(id, head);
	assert_int_equal(len, 0);	/* the device wrote nothing into it */
}

/* Read exactly n bytes from fd within TMO. */
static void
read_exact(int fd, uint8_t *buf, size_t n)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (poll(&p, 1, TMO) <= 0)
			fail_msg("only %zu of %zu bytes arrived", got, n);
		r = read(fd, buf + got, n - got);
		assert_true(r > 0);
		got += (size_t)r;
	}
}

struct reader {
	int fd;
	uint8_t *buf;
	size_t want, got;
	unsigned int delay_us;		/* between reads: a slow reader */
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	ssize_t n;
	size_t chunk;

	while (r->got < r->want) {
		if (poll(&p, 1, TMO) <= 0)
			break;
		chunk = r->want - r->got < 16384 ? r->want - r->got : 16384;
		n = read(r->fd, r->buf + r->got, chunk);
		if (n <= 0)
			break;
		r->got += (size_t)n;
		if (r->delay_us)
			usleep(r->delay_us);
	}
	return NULL;
}

/*
 * Send total bytes of the pattern as buffers of bufsz (several in flight,
 * two segments each), while a slow reader drains out_fd; check that all
 * of it came out in order.
 */
static void
tx_bulk(struct fix *f, size_t total, uint32_t bufsz, unsigned int inflight)
{
	struct vh_queue *q = &f->d.q[TXQ];
	uint8_t *src = malloc(total);
	struct reader rd = { .fd = f->out_r, .want = total, .delay_us = 300 };
	uint64_t slot_gpa[QSIZE];
	uint32_t slot_len[QSIZE];
	int slot_head[QSIZE];
	size_t sent = 0, done = 0, i;
	unsigned int s;
	pthread_t t;
	uint16_t id;
	uint32_t len, n;

	assert_non_null(src);
	assert_true(inflight <= QSIZE / 2);
	rd.buf = malloc(total);
	assert_non_null(rd.buf);
	for (i = 0; i < total; i++)
		src[i] = pattern(i);
	for (s = 0; s < inflight; s++) {
		slot_gpa[s] = vh_alloc(&f->m, bufsz, 64);
		assert_true(slot_gpa[s] != 0);
		slot_head[s] = -1;
	}
	assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
	while (done < total) {
		for (s = 0; s < inflight && sent < total; s++) {
			struct vh_buf b[2];

			if (slot_head[s] >= 0)
				continue;
			n = total - sent < bufsz ? (uint32_t)(total - sent) :
				bufsz;
			memcpy(vh_ptr(&f->m, slot_gpa[s], n), src + sent, n);
			b[0] = (struct vh_buf){ slot_gpa[s], n / 3 };
			b[1] = (struct vh_buf){ slot_gpa[s] + n / 3, n - n / 3 };
			slot_head[s] = vh_queue_add(q, b, 2, 0, false);
			assert_true(slot_head[s] >= 0);
			slot_len[s] = n;
			sent += n;
		}
		vh_queue_kick(&f->d, TXQ);
		if (!vh_queue_wait_used(q, &id, &len, TMO))
			fail_msg("transmit stuck: %zu of %zu bytes done", done,
				 total);
		assert_int_equal(len, 0);
		for (s = 0; s < inflight; s++)
			if (slot_head[s] == id)
				break;
		assert_true(s < inflight);
		slot_head[s] = -1;
		done += slot_len[s];
	}
	pthread_join(t, NULL);
	if (rd.got != total)
		fail_msg("out_fd got %zu of %zu bytes", rd.got, total);
	for (i = 0; i < total; i++)
		if (rd.buf[i] != src[i])
			fail_msg("byte %zu: 0x%02x, expected 0x%02x", i,
				 rd.buf[i], src[i]);
	free(src);
	free(rd.buf);
}

static void
output_cb(void *opaque, const uint8_t *buf, size_t len)
{
	struct fix *f = opaque;

	pthread_mutex_lock(&f->cb_lock);
	f->cb_buf = realloc(f->cb_buf, f->cb_len + len);
	memcpy(f->cb_buf + f->cb_len, buf, len);
	f->cb_len += len;
	f->cb_calls++;
	pthread_mutex_unlock(&f->cb_lock);
}

static size_t
cb_len(struct fix *f)
{
	size_t n;

	pthread_mutex_lock(&f->cb_lock);
	n = f->cb_len;
	pthread_mutex_unlock(&f->cb_lock);
	return n;
}

/* --- Input helpers -------------------------------------------------- */

static int
rx_post(struct fix *f, uint32_t size)
{
	uint64_t g = vh_alloc(&f->m, size ? size : 1, 64);
	struct vh_buf b = { g, size };
	int h;

	assert_true(g != 0);
	h = vh_queue_add(&f->d.q[RXQ], &b, 0, 1, false);
	assert_true(h >= 0);
	f->rx_gpa[h] = g;
	f->rx_size[h] = size;
	return h;
}

/* Post a receive buffer again at the same guest address. */
static void
rx_repost(struct fix *f, uint64_t g, uint32_t size)
{
	struct vh_buf b = { g, size };
	int h = vh_queue_add(&f->d.q[RXQ], &b, 0, 1, false);

	assert_true(h >= 0);
	f->rx_gpa[h] = g;
	f->rx_size[h] = size;
}

/*
 * Collect want bytes from used receive buffers into out, reposting each
 * buffer when repost is set. Returns the number of used entries.
 */
static unsigned int
rx_collect(struct fix *f, uint8_t *out, size_t want, bool repost)
{
	struct vh_queue *q = &f->d.q[RXQ];
	size_t got = 0;
	unsigned int n = 0;
	uint16_t id;
	uint32_t len;
	uint64_t g;

	while (got < want) {
		if (!vh_queue_wait_used(q, &id, &len, TMO))
			fail_msg("only %zu of %zu input bytes arrived", got,
				 want);
		assert_true(id < QSIZE);
		assert_true(len > 0 && len <= f->rx_size[id]);
		assert_true(got + len <= want);
		g = f->rx_gpa[id];
		memcpy(out + got, vh_ptr(&f->m, g, len), len);
		got += len;
		n++;
		if (repost) {
			rx_repost(f, g, f->rx_size[id]);
			vh_queue_kick(&f->d, RXQ);
		}
	}
	return n;
}

static void
write_all(int fd, const void *buf, size_t n)
{
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

struct writer {
	int fd;
	const uint8_t *buf;
	size_t len;
	bool close_after;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct pollfd p = { .fd = w->fd, .events = POLLOUT };
	size_t off = 0;
	ssize_t n;

	while (off < w->len) {
		n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0 && errno == EAGAIN) {
			poll(&p, 1, TMO);
			continue;
		}
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (w->close_after)
		close(w->fd);
	return NULL;
}

/* --- Tests ---------------------------------------------------------- */

static void
test_identity(void **state)
{
	struct fix *f = *state;
	struct vh_dev *d = &f->d;
	uint8_t gen;

	assert_int_equal(d->vendor_id, 0x1af4);
	assert_int_equal(d->device_id, 0x1040 + VIRTIO_ID_CONSOLE);
	assert_int_equal(d->subsys_id, VIRTIO_ID_CONSOLE);
	assert_int_equal(d->class_code, 0x078000);
	assert_int_equal(d->num_queues, 2);
	assert_true(d->device.present);
	assert_int_equal(d->device.length,
			 sizeof(struct virtio_console_config));
	/* Offered: SIZE (not MULTIPORT, not EMERG_WRITE) and the core's. */
	assert_int_equal(vh_dev_negotiate(d, F_V1, false), 0);
	assert_int_equal(d->device_features, F_V1 | F_EVT | F_IND | F_SIZE);
	assert_int_equal(vh_devcfg_read(d, 0, 2), 0);
	assert_int_equal(vh_devcfg_read(d, 2, 2), 0);
	assert_int_equal(vh_devcfg_read(d, 4, 4), 1);	/* max_nr_ports */
	assert_int_equal(vh_devcfg_read(d, 8, 4), 0);
	/* Before DRIVER_OK: new values, no interrupt. */
	console_set_size(f->con, 100, 40);
	assert_int_equal(vh_devcfg_read(d, 0, 2), 100);
	assert_int_equal(vh_devcfg_read(d, 2, 2), 40);
	assert_int_equal(vh_devcfg_read(d, 0, 4), 100 | 40 << 16);
	/* Writes are ignored (emerg_wr is not offered). */
	vh_devcfg_write(d, 0, 4, 0x12345678);
	vh_devcfg_write(d, 8, 4, 'x');
	assert_int_equal(vh_devcfg_read(d, 0, 4), 100 | 40 << 16);
	/* A running driver gets a configuration interrupt. */
	bring_up(f, F_V1 | F_SIZE);
	assert_int_equal(vh_wait_irq(d, VEC_CFG, 0), 0);
	gen = (uint8_t)vh_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
	console_set_size(f->con, 132, 43);
	assert_int_equal(vh_wait_irq(d, VEC_CFG, TMO), 1);
	assert_int_equal(vh_common_read(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1),
			 (uint8_t)(gen + 1));
	assert_int_equal(vh_devcfg_read(d, 0, 2), 132);
	assert_int_equal(vh_devcfg_read(d, 2, 2), 43);
	assert_false(vh_dev_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Bad options. */
	{
		struct console_options bad = { -2, -1 };
		struct vcon *c = NULL;

		assert_int_equal(console_new(&f->m.mem, &bad, &c), -EINVAL);
		bad = (struct console_options){ -1, 999 };
		assert_int_equal(console_new(&f->m.mem, &bad, &c), -EBADF);
		assert_null(c);
		console_free(NULL);
	}
}

static void
test_tx_small(void **state)
{
	struct fix *f = *state;
	struct console_stats st;
	uint8_t buf[32];
	int h[3];

	bring_up(f, F_V1 | F_EVT | F_IND);
	h[0] = tx_post(f, "hello ", 6, 1, false);
	h[1] = tx_post(f, "world\n", 6, 2, false);
	h[2] = tx_post(f, "!!", 2, 2, true);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h[0]);
	tx_wait(f, h[1]);
	tx_wait(f, h[2]);
	assert_true(vh_wait_irq(&f->d, VEC_TX, TMO) >= 1);
	read_exact(f->out_r, buf, 14);
	assert_memory_equal(buf, "hello world\n!!", 14);
	assert_int_equal(pipe_bytes(f->out_r), 0);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_bytes, 14);
	assert_int_equal(st.tx_dropped, 0);
	assert_int_equal(st.rx_bytes, 0);
	/* A zero-length transmit buffer is fine too. */
	h[0] = tx_post(f, "", 0, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h[0]);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_tx_1mib_nonblocking(void **state)
{
	struct fix *f = *state;
	struct console_stats st;

	set_nonblock(f->out_w, true);
	bring_up(f, F_V1 | F_EVT | F_IND);
	/* 1 MiB through 4 KiB buffers, 64 in flight, a slow reader: the
	 * pipe fills, the device waits for room (EAGAIN, EPOLLOUT). */
	tx_bulk(f, MIB, 4096, 64);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_bytes, MIB);
	assert_int_equal(st.tx_dropped, 0);
}

static void
test_tx_1mib_blocking(void **state)
{
	struct fix *f = *state;
	struct console_stats st;

	/* A blocking out_fd (a terminal, say): polled, PIPE_BUF at a time.
	 * Big buffers, more than a pipe holds each. */
	bring_up(f, F_V1);
	tx_bulk(f, MIB, 96 << 10, 4);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_dropped, 0);
}

static void
test_tx_callback(void **state)
{
	struct fix *f = *state;
	uint8_t buf[16];
	int h;

	bring_up(f, F_V1 | F_EVT);
	console_set_output_cb(f->con, output_cb, f);
	h = tx_post(f, "tapped line\n", 12, 2, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	read_exact(f->out_r, buf, 12);
	assert_memory_equal(buf, "tapped line\n", 12);
	pthread_mutex_lock(&f->cb_lock);
	assert_int_equal(f->cb_len, 12);
	assert_memory_equal(f->cb_buf, "tapped line\n", 12);
	assert_int_equal(f->cb_calls, 2);	/* one per segment */
	pthread_mutex_unlock(&f->cb_lock);
	/* Cleared: out_fd only. */
	console_set_output_cb(f->con, NULL, NULL);
	h = tx_post(f, "quiet", 5, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	read_exact(f->out_r, buf, 5);
	assert_memory_equal(buf, "quiet", 5);
	assert_int_equal(cb_len(f), 12);
}

static void
test_tx_no_fds(void **state)
{
	struct fix *f = *state;
	struct console_stats st;
	uint16_t id;
	uint32_t len;
	int h;

	/* No fds at all: output goes to the callback only, and is not
	 * counted as dropped; receive buffers just stay posted. */
	bring_up(f, F_V1);
	console_set_output_cb(f->con, output_cb, f);
	rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	h = tx_post(f, "only the tap", 12, 3, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	pthread_mutex_lock(&f->cb_lock);
	assert_int_equal(f->cb_len, 12);
	assert_memory_equal(f->cb_buf, "only the tap", 12);
	pthread_mutex_unlock(&f->cb_lock);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_bytes, 12);
	assert_int_equal(st.tx_dropped, 0);
	assert_int_equal(vh_queue_wait_used(&f->d.q[RXQ], &id, &len, 50), 0);
	assert_int_equal(nr_watches(f), 1);	/* the timer only */
}

static void
tx_stall(struct fix *f, bool nonblocking)
{
	struct console_stats st;
	struct timespec t0;
	static uint8_t big[4096];
	uint8_t buf[8];
	int h[32], i, in_pipe;
	uint64_t ms;

	if (nonblocking)
		set_nonblock(f->out_w, true);
	console_set_output_cb(f->con, output_cb, f);
	bring_up(f, F_V1 | F_EVT);
	memset(big, 'x', sizeof(big));
	/* 128 KiB into a 64 KiB pipe nobody reads. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 32; i++)
		h[i] = tx_post(f, big, sizeof(big), 1, false);
	vh_queue_kick(&f->d, TXQ);
	/* The device holds one buffer for CONSOLE_OUT_WAIT_MS, then drops
	 * what does not fit, and does not wait again. */
	for (i = 0; i < 32; i++)
		tx_wait(f, h[i]);
	ms = ms_since(&t0);
	assert_true(ms >= CONSOLE_OUT_WAIT_MS - 10);
	assert_true(ms < 10 * CONSOLE_OUT_WAIT_MS);
	console_get_stats(f->con, &st);
	in_pipe = pipe_bytes(f->out_r);
	assert_true(st.tx_dropped > 0);
	assert_int_equal(st.tx_bytes, 32 * sizeof(big));
	assert_int_equal(st.tx_dropped + (uint64_t)in_pipe, 32 * sizeof(big));
	/* The callback saw every byte, dropped or not. */
	assert_int_equal(cb_len(f), 32 * sizeof(big));
	/* Once the reader is back, output flows again, nothing dropped. */
	{
		uint8_t *sink = malloc((size_t)in_pipe);

		read_exact(f->out_r, sink, (size_t)in_pipe);
		free(sink);
	}
	h[0] = tx_post(f, "after\n", 6, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h[0]);
	read_exact(f->out_r, buf, 6);
	assert_memory_equal(buf, "after\n", 6);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_dropped + (uint64_t)in_pipe, 32 * sizeof(big));
	assert_int_equal(nr_watches(f), 1);
}

static void
test_tx_stall_nonblocking(void **state)
{
	tx_stall(*state, true);
}

static void
test_tx_stall_blocking(void **state)
{
	tx_stall(*state, false);
}

static void
test_tx_reader_gone(void **state)
{
	struct fix *f = *state;
	struct console_stats st;
	int h;

	bring_up(f, F_V1);
	close(f->out_r);
	f->out_r = -1;
	/* EPIPE: dropped and counted, the guest is not held up. */
	h = tx_post(f, "into the void", 13, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	console_get_stats(f->con, &st);
	assert_int_equal(st.tx_dropped, 13);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_rx_basic(void **state)
{
	struct fix *f = *state;
	struct console_stats st;
	uint8_t buf[300], want[300];
	unsigned int i;

	bring_up(f, F_V1 | F_EVT | F_IND);
	for (i = 0; i < 8; i++)
		rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	write_all(f->in_w, "abc", 3);
	assert_int_equal(rx_collect(f, buf, 3, false), 1);
	assert_memory_equal(buf, "abc", 3);
	assert_true(vh_wait_irq(&f->d, VEC_RX, TMO) >= 1);
	/* 200 bytes: spread over the 64-byte buffers, in order. */
	for (i = 0; i < 200; i++)
		want[i] = pattern(i);
	write_all(f->in_w, want, 200);
	assert_true(rx_collect(f, buf, 200, false) >= 4);
	assert_memory_equal(buf, want, 200);
	console_get_stats(f->con, &st);
	assert_int_equal(st.rx_bytes, 203);
	assert_false(st.input_ended);
	/* A zero-length receive buffer comes back empty. */
	{
		struct vh_buf b = { VH_RAM_ALLOC_START, 0 };
		uint16_t id;
		uint32_t len;
		int h;

		/* Use up the rest of the posted buffers first. */
		write_all(f->in_w, want, 64 * 3);
		assert_int_equal(rx_collect(f, buf, 64 * 3, false), 3);
		h = vh_queue_add(&f->d.q[RXQ], &b, 0, 1, false);
		vh_queue_kick(&f->d, RXQ);
		assert_int_equal(vh_queue_wait_used(&f->d.q[RXQ], &id, &len,
						    TMO), 1);
		assert_int_equal(id, h);
		assert_int_equal(len, 0);
	}
}

static void
rx_bulk(struct fix *f)
{
	uint8_t *src = malloc(MIB), *dst = malloc(MIB);
	struct writer w = { .fd = f->in_w, .len = MIB };
	struct console_stats st;
	pthread_t t;
	size_t i;

	assert_true(src && dst);
	for (i = 0; i < MIB; i++)
		src[i] = pattern(i);
	w.buf = src;
	bring_up(f, F_V1 | F_EVT | F_IND);
	/* 128 buffers of 4 KiB: more than CONSOLE_BUDGET at once. */
	for (i = 0; i < 128; i++)
		rx_post(f, 4096);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
	rx_collect(f, dst, MIB, true);
	pthread_join(t, NULL);
	for (i = 0; i < MIB; i++)
		if (dst[i] != src[i])
			fail_msg("input byte %zu: 0x%02x, expected 0x%02x", i,
				 dst[i], src[i]);
	console_get_stats(f->con, &st);
	assert_int_equal(st.rx_bytes, MIB);
	free(src);
	free(dst);
}

static void
test_rx_1mib_blocking(void **state)
{
	rx_bulk(*state);
}

static void
test_rx_1mib_nonblocking(void **state)
{
	struct fix *f = *state;

	set_nonblock(f->in_r, true);
	set_nonblock(f->in_w, true);
	rx_bulk(f);
}

static void
test_rx_late_buffers(void **state)
{
	struct fix *f = *state;
	uint8_t want[10000], buf[10000];
	struct console_stats st;
	unsigned int i;

	for (i = 0; i < sizeof(want); i++)
		want[i] = pattern(i * 3);
	bring_up(f, F_V1 | F_EVT);
	/* Input before any buffer: it waits in the pipe, nobody spins. */
	write_all(f->in_w, want, 10000);
	assert_idle(100);
	assert_int_equal(pipe_bytes(f->in_r), 10000);
	assert_int_equal(nr_watches(f), 1);
	console_get_stats(f->con, &st);
	assert_int_equal(st.rx_bytes, 0);
	/* Buffers come: all of it, in order. */
	for (i = 0; i < 3; i++)
		rx_post(f, 4096);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, 10000, false), 3);
	assert_memory_equal(buf, want, 10000);
	/* Buffers run out with input left: the rest waits, unwatched. */
	write_all(f->in_w, want, 5000);
	rx_post(f, 1024);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, 1024, false), 1);
	assert_idle(100);
	assert_int_equal(pipe_bytes(f->in_r), 5000 - 1024);
	assert_int_equal(nr_watches(f), 1);
	for (i = 0; i < 4; i++)
		rx_post(f, 1024);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf + 1024, 5000 - 1024, false), 4);
	assert_memory_equal(buf, want, 5000);
	/* A buffer and no input: held, in_fd watched, still no spinning. */
	rx_post(f, 1024);
	vh_queue_kick(&f->d, RXQ);
	for (i = 0; i < 100 && nr_watches(f) != 2; i++)
		usleep(1000);
	assert_int_equal(nr_watches(f), 2);
	assert_idle(100);
	/* Input while watched, more than the buffer: once the buffer is
	 * used the watch goes, though in_fd stays readable. */
	write_all(f->in_w, want, 3000);
	assert_int_equal(rx_collect(f, buf, 1024, false), 1);
	assert_idle(100);
	assert_int_equal(nr_watches(f), 1);
	assert_int_equal(pipe_bytes(f->in_r), 3000 - 1024);
	rx_post(f, 4096);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf + 1024, 3000 - 1024, false), 1);
	assert_memory_equal(buf, want, 3000);
}

static void
test_budget_yield(void **state)
{
	struct fix *f = *state;
	uint8_t want[2048], buf[2048];
	unsigned int i;
	int h[150];

	for (i = 0; i < sizeof(want); i++)
		want[i] = pattern(i + 5);
	bring_up(f, F_V1 | F_EVT | F_IND);
	/* Activation looks at both queues once; let it pass first. */
	for (i = 0; i < 1000 && __atomic_load_n(
		     &console_virtio(f->con)->notifies, __ATOMIC_SEQ_CST) < 2;
	     i++)
		usleep(1000);
	/* One kick for more buffers than CONSOLE_BUDGET: the device comes
	 * back for the rest by itself, both ways. */
	write_all(f->in_w, want, sizeof(want));
	for (i = 0; i < 128; i++)
		rx_post(f, 16);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, sizeof(want), false), 128);
	assert_memory_equal(buf, want, sizeof(want));
	for (i = 0; i < 150; i++)
		h[i] = tx_post(f, want + i, 1, 1, false);
	vh_queue_kick(&f->d, TXQ);
	for (i = 0; i < 150; i++)
		tx_wait(f, h[i]);
	read_exact(f->out_r, buf, 150);
	assert_memory_equal(buf, want, 150);
}

static void
test_rx_eof(void **state)
{
	struct fix *f = *state;
	struct console_stats st;
	uint8_t buf[8];
	int i;

	bring_up(f, F_V1);
	for (i = 0; i < 4; i++)
		rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	write_all(f->in_w, "bye", 3);
	close(f->in_w);
	f->in_w = -1;
	assert_int_equal(rx_collect(f, buf, 3, false), 1);
	assert_memory_equal(buf, "bye", 3);
	for (i = 0; i < TMO; i++) {
		console_get_stats(f->con, &st);
		if (st.input_ended)
			break;
		usleep(1000);
	}
	assert_true(st.input_ended);
	assert_int_equal(nr_watches(f), 1);
	/* No more input: the other buffers stay with the device, and the
	 * hang-up does not make anything spin. */
	rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	assert_idle(100);
	assert_int_equal(vh_used_idx(&f->d.q[RXQ]), 1);
	assert_false(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* Output still works. */
	i = tx_post(f, "ok", 2, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, i);
	read_exact(f->out_r, buf, 2);
	assert_memory_equal(buf, "ok", 2);
}

static void
test_files(void **state)
{
	struct fix *f = *state;
	static uint8_t want[20000], buf[20000];
	struct console_stats st;
	unsigned int i;
	int h;

	for (i = 0; i < sizeof(want); i++)
		want[i] = pattern(i + 11);
	assert_int_equal(pwrite(f->in_r, want, sizeof(want), 0),
			 (ssize_t)sizeof(want));
	bring_up(f, F_V1 | F_EVT);
	/* A regular file: read whenever there is a buffer, then EOF. */
	for (i = 0; i < 8; i++)
		rx_post(f, 4096);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, sizeof(want), true), 5);
	assert_memory_equal(buf, want, sizeof(want));
	for (i = 0; i < TMO; i++) {
		console_get_stats(f->con, &st);
		if (st.input_ended)
			break;
		usleep(1000);
	}
	assert_true(st.input_ended);
	assert_int_equal(nr_watches(f), 1);
	/* Output into a regular file. */
	h = tx_post(f, "to a file\n", 10, 2, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	assert_int_equal(pread(f->out_w, buf, 16, 0), 10);
	assert_memory_equal(buf, "to a file\n", 10);
}

static void
test_reset_midway(void **state)
{
	struct fix *f = *state;
	static uint8_t big[80 << 10];
	struct timespec t0;
	uint8_t buf[16];
	uint16_t used;
	int h, n;

	bring_up(f, F_V1 | F_EVT | F_IND);
	/* Input side: a held receive buffer, watched in_fd. */
	rx_post(f, 64);
	rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	/* Output side: 80 KiB into a 64 KiB pipe: a transmit buffer held. */
	memset(big, 'y', sizeof(big));
	h = tx_post(f, big, sizeof(big), 4, false);
	vh_queue_kick(&f->d, TXQ);
	for (n = 0; n < 500 && (pipe_bytes(f->out_r) < 65536 ||
				nr_watches(f) != 3); n++)
		usleep(100);
	assert_int_equal(nr_watches(f), 3);	/* timer, in_fd, out_fd */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vh_dev_reset(&f->d), 0);
	/* The reset does not wait for out_fd. */
	assert_true(ms_since(&t0) < CONSOLE_OUT_WAIT_MS / 2);
	assert_int_equal(nr_watches(f), 1);
	used = vh_used_idx(&f->d.q[TXQ]);
	assert_int_equal(used, 0);
	/* Input that comes now waits for the next driver. */
	write_all(f->in_w, "keep", 4);
	assert_idle(CONSOLE_OUT_WAIT_MS + 50);	/* the timer is gone too */
	assert_int_equal(vh_used_idx(&f->d.q[TXQ]), 0);
	assert_int_equal(vh_used_idx(&f->d.q[RXQ]), 0);
	assert_int_equal(pipe_bytes(f->in_r), 4);
	/* Drain what made it out, then a new driver gets both ways. */
	n = pipe_bytes(f->out_r);
	{
		uint8_t *sink = malloc((size_t)n);

		read_exact(f->out_r, sink, (size_t)n);
		free(sink);
	}
	vh_dev_release(&f->d);
	(void)h;
	bring_up(f, F_V1 | F_EVT);
	rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, 4, false), 1);
	assert_memory_equal(buf, "keep", 4);
	h = tx_post(f, "again", 5, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	read_exact(f->out_r, buf, 5);
	assert_memory_equal(buf, "again", 5);
}

static void
expect_needs_reset(struct fix *f)
{
	assert_int_equal(vh_wait_irq(&f->d, VEC_CFG, TMO), 1);
	assert_true(vh_dev_status(&f->d) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void
test_hostile(void **state)
{
	struct fix *f = *state;
	uint64_t g = vh_alloc(&f->m, 64, 64);
	struct vh_buf b[2] = { { g, 16 }, { g + 16, 16 } };
	uint8_t buf[8];
	int h;

	log_set_level(LOG_LEVEL_ERR);	/* the expected warnings */
	/* A receive buffer the device would have to read. */
	bring_up(f, F_V1);
	write_all(f->in_w, "secret", 6);
	assert_true(vh_queue_add(&f->d.q[RXQ], b, 1, 1, false) >= 0);
	vh_queue_kick(&f->d, RXQ);
	expect_needs_reset(f);
	assert_int_equal(vh_used_idx(&f->d.q[RXQ]), 0);
	/* Input stays where it is; the device neither reads nor spins. */
	assert_idle(100);
	assert_int_equal(pipe_bytes(f->in_r), 6);
	assert_int_equal(nr_watches(f), 1);

	/* A transmit buffer the device would have to write. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1);
	assert_true(vh_queue_add(&f->d.q[TXQ], b, 1, 1, false) >= 0);
	vh_queue_kick(&f->d, TXQ);
	expect_needs_reset(f);
	assert_int_equal(vh_used_idx(&f->d.q[TXQ]), 0);
	assert_int_equal(pipe_bytes(f->out_r), 0);

	/* A transmit buffer outside guest RAM (the core's check). */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1);
	b[0] = (struct vh_buf){ RAM - 8, 64 };
	assert_true(vh_queue_add(&f->d.q[TXQ], b, 1, 0, false) >= 0);
	vh_queue_kick(&f->d, TXQ);
	expect_needs_reset(f);
	assert_int_equal(pipe_bytes(f->out_r), 0);

	/* After a reset the input that waited is delivered intact. */
	assert_int_equal(vh_dev_reset(&f->d), 0);
	vh_dev_release(&f->d);
	bring_up(f, F_V1);
	rx_post(f, 64);
	vh_queue_kick(&f->d, RXQ);
	assert_int_equal(rx_collect(f, buf, 6, false), 1);
	assert_memory_equal(buf, "secret", 6);
	h = tx_post(f, "fine", 4, 1, false);
	vh_queue_kick(&f->d, TXQ);
	tx_wait(f, h);
	read_exact(f->out_r, buf, 4);
	assert_memory_equal(buf, "fine", 4);
	log_set_level(LOG_LEVEL_INFO);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_identity),
		T(test_tx_small),
		T(test_tx_1mib_nonblocking),
		T(test_tx_1mib_blocking),
		T(test_tx_callback),
		cmocka_unit_test_setup_teardown(test_tx_no_fds, setup_none,
						teardown),
		T(test_tx_stall_nonblocking),
		T(test_tx_stall_blocking),
		T(test_tx_reader_gone),
		T(test_rx_basic),
		T(test_rx_1mib_blocking),
		T(test_rx_1mib_nonblocking),
		T(test_rx_late_buffers),
		T(test_budget_yield),
		T(test_rx_eof),
		cmocka_unit_test_setup_teardown(test_files, setup_files,
						teardown),
		T(test_reset_midway),
		T(test_hostile),
	};
#undef T

	/* A reader that goes away must give EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
