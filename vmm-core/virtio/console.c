/* SPDX-License-Identifier: MIT */
/*
 * virtio-console, one port: the receiveq fed from in_fd, the transmitq
 * drained into out_fd and the output callback. See console.h for the
 * rules. Everything below but the setters and console_get_stats() runs on
 * the device's I/O thread, which owns the held buffers and the watches.
 */
#include "virtio/console.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>

#define CONSOLE_SIGNAL_EVERY	16	/* interrupts during a long batch */

struct vcon {
	struct virtio_device vdev;
	int in_fd;			/* our duplicates, or -1 */
	int out_fd;
	int timer_fd;			/* how long a transmit buffer waits */

	/* I/O thread only. */
	bool in_watched;
	bool in_ended;			/* atomic: read by console_get_stats */
	bool out_watched;		/* tx_el held until out_fd has room */
	bool out_stalled;		/* out_fd kept us waiting too long */
	bool rx_held;			/* rx_el popped, waiting for input */
	bool tx_held;			/* tx_el popped, not all written yet */
	struct virtq_elem rx_el;
	struct virtq_elem tx_el;
	unsigned int tx_pos;		/* next iovec of tx_el to write */
	struct iovec rx_iov[CONSOLE_QUEUE_MAX];
	struct iovec tx_iov[CONSOLE_QUEUE_MAX];

	pthread_mutex_t cb_lock;
	console_output_fn cb;
	void *cb_opaque;

	uint32_t size;			/* atomic: cols | rows << 16 */
	uint64_t rx_bytes, tx_bytes, tx_dropped;	/* atomics */
};

static void console_rx_run(struct vcon *c);
static void console_tx_run(struct vcon *c);



static void
console_timer_set(struct vcon *c, uint64_t ms)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = (time_t)(ms / 1000);
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	/* Cannot fail on a valid timerfd with a valid value. */
	(void)timerfd_settime(c->timer_fd, 0, &its, NULL);
}

/* --- Input ---------------------------------------------------------- */

static void
console_in_event(struct virtio_device *vdev, int fd, uint32_t events,
		 void *arg)
{
	(void)vdev;
	(void)fd;
	(void)events;
	console_rx_run(arg);
}

static int
console_in_watch(struct vcon *c)
{
	int r;

	if (c->in_watched)
		return 0;
	r = virtio_device_watch_fd(&c->vdev, c->in_fd, EPOLLIN,
				   console_in_event, c);
	if (r == 0)
		c->in_watched = true;
	return r;
}

static void
console_in_unwatch(struct vcon *c)
{
	if (!c->in_watched)
		return;
	virtio_device_unwatch_fd(&c->vdev, c->in_fd);
	c->in_watched = false;
}

static void
console_input_end(struct vcon *c)
{
	console_in_unwatch(c);
	__atomic_store_n(&c->in_ended, true, __ATOMIC_RELAXED);
}

/*
 * Read into the held receive buffer: bytes read, 0 at EOF, -EAGAIN when
 * in_fd has nothing now, or another negative errno. poll() first, so a
 * blocking in_fd never blocks the I/O thread; it says "ready" at once for
 * regular files, which epoll cannot watch, so those never wait.
 */
static ssize_t
console_read(struct vcon *c)
{
	struct pollfd p = { .fd = c->in_fd, .events = POLLIN };
	ssize_t n;
	int r;

	for (;;) {
		r = poll(&p, 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -EAGAIN;
		n = readv(c->in_fd, c->rx_iov + c->rx_el.nr_out,
			  (int)c->rx_el.nr_in);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
}

static void
console_rx_run(struct vcon *c)
{
	struct virtio_device *vdev = &c->vdev;
	struct virtq *vq = virtio_device_queue(vdev, CONSOLE_RX_QUEUE);
	unsigned int n = 0, pushed = 0;
	ssize_t got;
	int r;

	if (c->in_fd < 0 || c->in_ended)
		return;
	if (!virtio_queue_live(vdev, vq->index)) {
		/* The next kick, after reset or DRIVER_OK, starts again. */
		console_in_unwatch(c);
		return;
	}
	for (;;) {
		if (!c->rx_held) {
			if (n == CONSOLE_BUDGET) {
				virtio_queue_yield(&c->vdev, CONSOLE_RX_QUEUE);
				break;
			}
			r = virtq_pop(vq, c->rx_iov, CONSOLE_QUEUE_MAX,
				      &c->rx_el);
			if (r <= 0) {
				/* No buffer: input waits in in_fd until the
				 * guest posts one, which kicks us. */
				console_in_unwatch(c);
				break;
			}
			n++;
			if (c->rx_el.out_len) {
				virtio_device_needs_reset(vdev, "receive buffer "
					"at head %u has %u device-readable bytes",
					c->rx_el.head, c->rx_el.out_len);
				console_in_unwatch(c);
				break;
			}
			if (c->rx_el.in_len == 0) {
				virtq_push(vq, c->rx_el.head, 0);
				pushed++;
				continue;
			}
			c->rx_held = true;
		}
		got = console_read(c);
		if (got == -EAGAIN) {
			if (console_in_watch(c) < 0)
				console_input_end(c);	/* cannot wait for it */
			break;
		}
		if (got <= 0) {
			/* EOF or an error; the held buffer stays the
			 * device's until reset. */
			console_input_end(c);
			break;
		}
		virtq_push(vq, c->rx_el.head, (uint32_t)got);
		c->rx_held = false;
		__atomic_add_fetch(&c->rx_bytes, (uint64_t)got,
				   __ATOMIC_RELAXED);
		if (++pushed % CONSOLE_SIGNAL_EVERY == 0)
			virtio_queue_signal(vdev, vq);
	}
	virtio_queue_signal(vdev, vq);
}

/* --- Output --------------------------------------------------------- */

static void
console_out_event(struct virtio_device *vdev, int fd, uint32_t events,
		  void *arg);

static int
console_out_watch(struct vcon *c)
{
	int r;

	if (c->out_watched)
		return 0;
	r = virtio_device_watch_fd(&c->vdev, c->out_fd, EPOLLOUT,
				   console_out_event, c);
	if (r == 0)
		c->out_watched = true;
	return r;
}

static void
console_out_unwatch(struct vcon *c)
{
	if (!c->out_watched)
		return;
	virtio_device_unwatch_fd(&c->vdev, c->out_fd);
	c->out_watched = false;
}

/* Give the output callback the whole buffer just taken. */
static void
console_tap(struct vcon *c)
{
	unsigned int i;

	pthread_mutex_lock(&c->cb_lock);
	if (c->cb)
		for (i = 0; i < c->tx_el.nr_out; i++)
			c->cb(c->cb_opaque, c->tx_iov[i].iov_base,
			      c->tx_iov[i].iov_len);
	pthread_mutex_unlock(&c->cb_lock);
}

static void
console_tx_drop_rest(struct vcon *c)
{
	uint64_t left = 0;

	for (; c->tx_pos < c->tx_el.nr_out; c->tx_pos++)
		left += c->tx_iov[c->tx_pos].iov_len;
	if (c->out_fd >= 0)
		__atomic_add_fetch(&c->tx_dropped, left, __ATOMIC_RELAXED);
}

static void
console_tx_advance(struct vcon *c, size_t n)
{
	struct iovec *v;

	while (n && c->tx_pos < c->tx_el.nr_out) {
		v = &c->tx_iov[c->tx_pos];
		if (n >= v->iov_len) {
			n -= v->iov_len;
			c->tx_pos++;
		} else {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			n = 0;
		}
	}
}

/*
 * Write what is left of the held transmit buffer. True when it is done
 * (written, or the rest dropped after an error), false when out_fd is
 * full. A blocking out_fd gets poll() first and at most PIPE_BUF bytes a
 * write, so the I/O thread does not sleep in write().
 */
static bool
console_write(struct vcon *c, bool blocking)
{
	struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
	unsigned int end = c->tx_el.nr_out;
	struct iovec *v;
	ssize_t n;
	size_t len;

	if (c->out_fd < 0) {
		console_tx_drop_rest(c);	/* discarded, not counted */
		return true;
	}
	while (c->tx_pos < end) {
		v = &c->tx_iov[c->tx_pos];
		if (blocking) {
			n = poll(&p, 1, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				return false;
			len = v->iov_len < PIPE_BUF ? v->iov_len : PIPE_BUF;
			n = write(c->out_fd, v->iov_base, len);
		} else {
			n = writev(c->out_fd, v, (int)(end - c->tx_pos));
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n <= 0) {
			console_tx_drop_rest(c);
			return true;
		}
		c->out_stalled = false;
		console_tx_advance(c, (size_t)n);
	}
	return true;
}

static void
console_tx_run(struct vcon *c)
{
	struct virtio_device *vdev = &c->vdev;
	struct virtq *vq = virtio_device_queue(vdev, CONSOLE_TX_QUEUE);
	unsigned int n = 0, pushed = 0;
	bool blocking = false;
	int r;

	if (!virtio_queue_live(vdev, vq->index))
		return;
	/* Waiting for room: the watch or the timer brings us back. */
	if (c->out_watched)
		return;
	if (c->out_fd >= 0) {
		r = fcntl(c->out_fd, F_GETFL);
		blocking = r < 0 || !(r & O_NONBLOCK);
	}
	for (;;) {
		if (!c->tx_held) {
			if (n == CONSOLE_BUDGET) {
				virtio_queue_yield(&c->vdev, CONSOLE_TX_QUEUE);
				break;
			}
			r = virtq_pop(vq, c->tx_iov, CONSOLE_QUEUE_MAX,
				      &c->tx_el);
			if (r <= 0)
				break;
			n++;
			if (c->tx_el.in_len) {
				virtio_device_needs_reset(vdev, "transmit buffer "
					"at head %u has %u device-writable bytes",
					c->tx_el.head, c->tx_el.in_len);
				break;
			}
			c->tx_held = true;
			c->tx_pos = 0;
			__atomic_add_fetch(&c->tx_bytes, c->tx_el.out_len,
					   __ATOMIC_RELAXED);
			console_tap(c);
		}
		if (!console_write(c, blocking)) {
			if (!c->out_stalled && console_out_watch(c) == 0) {
				/* Back-pressure: the buffer waits for room,
				 * but not for ever (console.h). */
				console_timer_set(c, CONSOLE_OUT_WAIT_MS);
				break;
			}
			console_tx_drop_rest(c);
		}
		virtq_push(vq, c->tx_el.head, 0);
		c->tx_held = false;
		if (++pushed % CONSOLE_SIGNAL_EVERY == 0)
			virtio_queue_signal(vdev, vq);
	}
	virtio_queue_signal(vdev, vq);
}

static void
console_out_event(struct virtio_device *vdev, int fd, uint32_t events,
		  void *arg)
{
	struct vcon *c = arg;

	(void)vdev;
	(void)fd;
	(void)events;
	console_out_unwatch(c);
	console_timer_set(c, 0);
	console_tx_run(c);
}

/* out_fd kept a transmit buffer for CONSOLE_OUT_WAIT_MS. */
static void
console_timer_event(struct virtio_device *vdev, int fd, uint32_t events,
		    void *arg)
{
	struct vcon *c = arg;
	uint64_t v;

	(void)vdev;
	(void)events;
	/* Nothing to read: disarmed (room came, or a reset) since epoll
	 * saw it expire. */
	if (read(fd, &v, sizeof(v)) < 0 || !c->out_watched)
		return;
	console_out_unwatch(c);
	c->out_stalled = true;
	/* The held buffer's rest is dropped there, then the queue runs. */
	console_tx_run(c);
}

/* --- The device ----------------------------------------------------- */

static void
console_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	struct vcon *c = vdev->opaque;

	if (vq->index == CONSOLE_RX_QUEUE)
		console_rx_run(c);
	else
		console_tx_run(c);
}

static void
console_reset(struct virtio_device *vdev)
{
	struct vcon *c = vdev->opaque;

	/* Held buffers are forgotten, never pushed: the rings are gone.
	 * Input not yet read stays in in_fd for the next driver. */
	console_in_unwatch(c);
	console_out_unwatch(c);
	console_timer_set(c, 0);
	c->rx_held = false;
	c->tx_held = false;
	c->tx_pos = 0;
	c->out_stalled = false;
}

static void
console_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
		    uint32_t len)
{
	struct vcon *c = vdev->opaque;
	struct virtio_console_config cfg;
	uint32_t size = __atomic_load_n(&c->size, __ATOMIC_RELAXED);

	memset(&cfg, 0, sizeof(cfg));
	cfg.cols = htole16((uint16_t)size);
	cfg.rows = htole16((uint16_t)(size >> 16));
	cfg.max_nr_ports = htole32(1);
	/* The core checked offset + len against config_size. */
	memcpy(data, (const uint8_t *)&cfg + offset, len);
}

static const struct virtio_device_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.pci_class = 0x078000,	/* simple communication controller, other */
	.config_read = console_config_read,
	.queue_notify = console_queue_notify,
	.reset = console_reset,
};

static int
console_dup(int fd, int *ret)
{
	if (fd < 0) {
		*ret = -1;
		return 0;
	}
	*ret = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	return *ret < 0 ? -errno : 0;
}

int
console_new(const struct guest_mem *mem, const struct console_options *o,
	    struct vcon **ret)
{
	int in = o ? o->in_fd : -1, out = o ? o->out_fd : -1;
	struct vcon *c;
	int e;

	if (!mem || !ret || in < -1 || out < -1)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->in_fd = c->out_fd = c->timer_fd = -1;
	pthread_mutex_init(&c->cb_lock, NULL);
	e = console_dup(in, &c->in_fd);
	if (e == 0)
		e = console_dup(out, &c->out_fd);
	if (e < 0)
		goto fail;
	c->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->timer_fd < 0) {
		e = -errno;
		goto fail;
	}
	c->vdev.ops = &console_ops;
	c->vdev.name = "console";
	c->vdev.mem = mem;
	c->vdev.features = 1ULL << VIRTIO_CONSOLE_F_SIZE;
	c->vdev.config_size = sizeof(struct virtio_console_config);
	c->vdev.nr_queues = 2;
	c->vdev.opaque = c;
	e = virtio_device_init(&c->vdev, CONSOLE_QUEUE_MAX);
	if (e < 0)
		goto fail;
	e = virtio_device_watch_fd(&c->vdev, c->timer_fd, EPOLLIN,
				   console_timer_event, c);
	if (e < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	console_free(c);
	return e;
}

struct virtio_device *
console_virtio(struct vcon *c)
{
	return &c->vdev;
}

void
console_free(struct vcon *c)
{
	if (!c)
		return;
	virtio_device_destroy(&c->vdev);
	if (c->in_fd >= 0)
		close(c->in_fd);
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->timer_fd >= 0)
		close(c->timer_fd);
	pthread_mutex_destroy(&c->cb_lock);
	free(c);
}

void
console_set_output_cb(struct vcon *c, console_output_fn fn, void *opaque)
{
	pthread_mutex_lock(&c->cb_lock);
	c->cb = fn;
	c->cb_opaque = fn ? opaque : NULL;
	pthread_mutex_unlock(&c->cb_lock);
}

void
console_set_size(struct vcon *c, uint16_t cols, uint16_t rows)
{
	__atomic_store_n(&c->size, (uint32_t)cols | (uint32_t)rows << 16,
			 __ATOMIC_RELAXED);
	if (virtio_device_status(&c->vdev) & VIRTIO_CONFIG_S_DRIVER_OK)
		virtio_config_changed(&c->vdev);
}

void
console_get_stats(struct vcon *c, struct console_stats *ret)
{
	ret->rx_bytes = __atomic_load_n(&c->rx_bytes, __ATOMIC_RELAXED);
	ret->tx_bytes = __atomic_load_n(&c->tx_bytes, __ATOMIC_RELAXED);
	ret->tx_dropped = __atomic_load_n(&c->tx_dropped, __ATOMIC_RELAXED);
	ret->input_ended = __atomic_load_n(&c->in_ended, __ATOMIC_RELAXED);
}
