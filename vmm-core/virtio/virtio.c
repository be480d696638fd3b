/* SPDX-License-Identifier: MIT */
/*
 * The virtio device core: feature negotiation, device status, queue
 * registers, and the I/O thread that runs a device's queue work, its
 * activation and its reset. Transport-neutral; virtio_pci.c drives it.
 */
#include "virtio/virtio.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Commands for the I/O thread, in the order it carries them out. */
#define VIRTIO_CMD_ACTIVATE	0x1u
#define VIRTIO_CMD_RESET	0x2u
#define VIRTIO_CMD_STOP		0x4u

/* What an epoll event is about: the kind in the high half of data.u64. */
#define VIRTIO_EV_CTL		1ULL
#define VIRTIO_EV_QUEUE		2ULL
#define VIRTIO_EV_WATCH		3ULL
#define VIRTIO_EV(kind, n)	((kind) << 32 | (uint32_t)(n))

static void
virtio_vq_error(struct virtq *vq, const char *why, void *opaque)
{
	struct virtio_device *vdev = opaque;

	(void)vq;
	virtio_device_needs_reset(vdev, "%s", why);
}

uint8_t
virtio_device_status(const struct virtio_device *vdev)
{
	return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

void
virtio_device_needs_reset(struct virtio_device *vdev, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	uint8_t old;
	unsigned int n;

	old = __atomic_fetch_or(&vdev->status, VIRTIO_CONFIG_S_NEEDS_RESET,
				__ATOMIC_SEQ_CST);
	if (old & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	/* A guest can do this at will: the first time after each reset, and
	 * no more than VIRTIO_LOG_BURST times in the device's life. */
	if (!__atomic_exchange_n(&vdev->logged_since_reset, true,
				 __ATOMIC_RELAXED)) {
		n = __atomic_fetch_add(&vdev->nr_logged, 1, __ATOMIC_RELAXED);
		if (n < VIRTIO_LOG_BURST) {
			va_start(ap, fmt);
			vsnprintf(msg, sizeof(msg), fmt, ap);
			va_end(ap);
			log_warn("%s \"%s\": needs reset: %s%s",
				 vdev->ops->name, vdev->name ? vdev->name : "",
				 msg, n + 1 == VIRTIO_LOG_BURST ?
				 " (further such messages suppressed)" : "");
		}
	}
	if (vdev->transport && vdev->transport->signal_config)
		vdev->transport->signal_config(vdev);
}

bool
virtio_queue_signal(struct virtio_device *vdev, struct virtq *vq)
{
	if (!virtq_notify_needed(vq))
		return false;
	if (vdev->transport && vdev->transport->signal_queue)
		vdev->transport->signal_queue(vdev, vq->index);
	return true;
}

void
virtio_config_changed(struct virtio_device *vdev)
{
	__atomic_add_fetch(&vdev->config_generation, 1, __ATOMIC_RELEASE);
	if (vdev->transport && vdev->transport->signal_config)
		vdev->transport->signal_config(vdev);
}

bool
virtio_queue_live(struct virtio_device *vdev, unsigned int q)
{
	uint8_t st = virtio_device_status(vdev);
	struct virtio_queue_state *s = &vdev->queues[q];

	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (st & (VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)))
		return false;
	/* Acquire: pairs with the release in virtio_queue_enable(), so the
	 * ring set up on the vCPU thread is seen whole. */
	if (!__atomic_load_n(&s->enabled, __ATOMIC_ACQUIRE))
		return false;
	return s->vq.ready && !s->vq.broken;
}

void
virtio_queue_yield(struct virtio_device *vdev, unsigned int q)
{
	/* An eventfd write fails only with ~2^64 kicks pending. */
	if (write(virtio_queue_kick_fd(vdev, q), &(uint64_t){ 1 },
		  sizeof(uint64_t)) < 0)
		return;
}

static void
virtio_run_queue(struct virtio_device *vdev, unsigned int q)
{
	if (!virtio_queue_live(vdev, q) || !vdev->ops->queue_notify)
		return;
	__atomic_add_fetch(&vdev->notifies, 1, __ATOMIC_RELAXED);
	vdev->ops->queue_notify(vdev, &vdev->queues[q].vq);
}

static void
virtio_thread_reset(struct virtio_device *vdev)
{
	unsigned int q;

	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (q = 0; q < vdev->nr_queues; q++)
		virtq_reset(&vdev->queues[q].vq);
}

static void
virtio_thread_activate(struct virtio_device *vdev)
{
	uint8_t st = virtio_device_status(vdev);
	unsigned int q;

	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (st & VIRTIO_CONFIG_S_NEEDS_RESET))
		return;
	if (vdev->ops->activate)
		vdev->ops->activate(vdev);
	/* Kicks that came before DRIVER_OK were dropped: look once. */
	for (q = 0; q < vdev->nr_queues; q++)
		virtio_run_queue(vdev, q);
}

/* Carry out pending commands. Returns true when asked to stop. */
static bool
virtio_thread_commands(struct virtio_device *vdev)
{
	unsigned int cmds;
	uint64_t seq, v;

	if (read(vdev->ctl_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("virtio: control eventfd: %s", strerror(errno));
	pthread_mutex_lock(&vdev->ctl_lock);
	cmds = vdev->ctl_cmds;
	vdev->ctl_cmds = 0;
	seq = vdev->ctl_seq;
	pthread_mutex_unlock(&vdev->ctl_lock);

	if (cmds & VIRTIO_CMD_ACTIVATE)
		virtio_thread_activate(vdev);
	if (cmds & VIRTIO_CMD_RESET)
		virtio_thread_reset(vdev);

	pthread_mutex_lock(&vdev->ctl_lock);
	vdev->ctl_done = seq;
	pthread_cond_broadcast(&vdev->ctl_cond);
	pthread_mutex_unlock(&vdev->ctl_lock);
	return cmds & VIRTIO_CMD_STOP;
}

static void
virtio_thread_watch(struct virtio_device *vdev, int fd, uint32_t events)
{
	unsigned int i;

	for (i = 0; i < vdev->nr_watches; i++) {
		struct virtio_watch *w = &vdev->watches[i];

		if (w->fd == fd) {
			w->fn(vdev, fd, events, w->arg);
			return;
		}
	}
}

static void *
virtio_thread(void *arg)
{
	struct virtio_device *vdev = arg;
	struct epoll_event evs[16];
	uint64_t v;
	int n, i;

	for (;;) {
		n = epoll_wait(vdev->epoll_fd, evs, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("%s \"%s\": epoll_wait: %s", vdev->ops->name,
				vdev->name ? vdev->name : "", strerror(errno));
			return NULL;
		}
		for (i = 0; i < n; i++) {
			uint64_t kind = evs[i].data.u64 >> 32;
			uint32_t idx = (uint32_t)evs[i].data.u64;

			switch (kind) {
			case VIRTIO_EV_CTL:
				if (virtio_thread_commands(vdev))
					return NULL;
				break;
			case VIRTIO_EV_QUEUE:
				/* Drain the doorbell before looking, so a kick
				 * after our look wakes us again. */
				if (read(vdev->queues[idx].kick_fd, &v,
					 sizeof(v)) < 0 && errno != EAGAIN)
					break;
				virtio_run_queue(vdev, idx);
				break;
			case VIRTIO_EV_WATCH:
				virtio_thread_watch(vdev, (int)idx,
						    evs[i].events);
				break;
			}
		}
	}
}

/* Post commands; with wait, return once the I/O thread carried them out. */
static void
virtio_post(struct virtio_device *vdev, unsigned int cmds, bool wait)
{
	uint64_t seq;

	if (!vdev->thread_started) {
		/* No thread (init failed halfway): do it here. */
		if (cmds & VIRTIO_CMD_RESET)
			virtio_thread_reset(vdev);
		return;
	}
	pthread_mutex_lock(&vdev->ctl_lock);
	vdev->ctl_cmds |= cmds;
	seq = ++vdev->ctl_seq;
	pthread_mutex_unlock(&vdev->ctl_lock);
	if (write(vdev->ctl_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_err("virtio: control eventfd: %s", strerror(errno));
	if (!wait)
		return;
	pthread_mutex_lock(&vdev->ctl_lock);
	while (vdev->ctl_done < seq)
		pthread_cond_wait(&vdev->ctl_cond, &vdev->ctl_lock);
	pthread_mutex_unlock(&vdev->ctl_lock);
}

static int
virtio_epoll_add(struct virtio_device *vdev, int fd, uint32_t events,
		 uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(vdev->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

static void
virtio_queues_clear(struct virtio_device *vdev)
{
	unsigned int q;

	for (q = 0; q < vdev->nr_queues; q++) {
		struct virtio_queue_state *s = &vdev->queues[q];

		__atomic_store_n(&s->enabled, false, __ATOMIC_RELEASE);
		s->size = s->max_size;
		s->desc_gpa = s->avail_gpa = s->used_gpa = 0;
	}
}

int
virtio_device_init(struct virtio_device *vdev, uint16_t queue_max)
{
	sigset_t all, old;
	unsigned int q;
	int r;

	if (!vdev->ops || !vdev->mem || vdev->nr_queues == 0 ||
	    vdev->nr_queues > VIRTIO_MAX_QUEUES || queue_max == 0 ||
	    (queue_max & (queue_max - 1)) || queue_max > VIRTQ_MAX_SIZE)
		return -EINVAL;
	/* Zero what the core keeps, leaving the caller's description. */
	vdev->transport = NULL;
	vdev->transport_priv = NULL;
	vdev->status = 0;
	vdev->offered = vdev->features | VIRTIO_CORE_FEATURES;
	vdev->driver_features = vdev->negotiated = 0;
	vdev->config_generation = 0;
	vdev->nr_logged = 0;
	vdev->logged_since_reset = false;
	vdev->thread_started = false;
	vdev->ctl_cmds = 0;
	vdev->ctl_seq = vdev->ctl_done = 0;
	vdev->nr_watches = 0;
	vdev->notifies = 0;
	vdev->epoll_fd = vdev->ctl_fd = -1;
	memset(vdev->queues, 0, sizeof(vdev->queues));
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		vdev->queues[q].kick_fd = -1;
	pthread_mutex_init(&vdev->lock, NULL);
	pthread_mutex_init(&vdev->ctl_lock, NULL);
	pthread_cond_init(&vdev->ctl_cond, NULL);
	vdev->initialized = true;

	for (q = 0; q < vdev->nr_queues; q++) {
		struct virtio_queue_state *s = &vdev->queues[q];

		virtq_init(&s->vq, q, virtio_vq_error, vdev);
		s->max_size = s->size = queue_max;
	}
	vdev->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (vdev->epoll_fd < 0)
		goto fail_errno;
	vdev->ctl_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vdev->ctl_fd < 0)
		goto fail_errno;
	r = virtio_epoll_add(vdev, vdev->ctl_fd, EPOLLIN,
			     VIRTIO_EV(VIRTIO_EV_CTL, 0));
	if (r < 0)
		goto fail;
	for (q = 0; q < vdev->nr_queues; q++) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd < 0)
			goto fail_errno;
		vdev->queues[q].kick_fd = fd;
		r = virtio_epoll_add(vdev, fd, EPOLLIN,
				     VIRTIO_EV(VIRTIO_EV_QUEUE, q));
		if (r < 0)
			goto fail;
	}
	/* The I/O thread takes no signals: they belong to the vCPUs and the
	 * main loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&vdev->thread, NULL, virtio_thread, vdev);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	vdev->thread_started = true;
	return 0;
fail_errno:
	r = -errno;
fail:
	virtio_device_destroy(vdev);
	return r;
}

void
virtio_device_destroy(struct virtio_device *vdev)
{
	unsigned int q;

	if (!vdev || !vdev->initialized)
		return;
	if (vdev->thread_started) {
		virtio_post(vdev, VIRTIO_CMD_STOP, false);
		pthread_join(vdev->thread, NULL);
		vdev->thread_started = false;
	}
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (vdev->queues[q].kick_fd >= 0)
			close(vdev->queues[q].kick_fd);
		vdev->queues[q].kick_fd = -1;
	}
	if (vdev->ctl_fd >= 0)
		close(vdev->ctl_fd);
	if (vdev->epoll_fd >= 0)
		close(vdev->epoll_fd);
	vdev->ctl_fd = vdev->epoll_fd = -1;
	pthread_mutex_destroy(&vdev->lock);
	pthread_mutex_destroy(&vdev->ctl_lock);
	pthread_cond_destroy(&vdev->ctl_cond);
	vdev->initialized = false;
}

int
virtio_device_set_queue_max(struct virtio_device *vdev, unsigned int q,
			    uint16_t max)
{
	if (q >= vdev->nr_queues || max == 0 || (max & (max - 1)) ||
	    max > VIRTQ_MAX_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&vdev->lock);
	vdev->queues[q].max_size = vdev->queues[q].size = max;
	pthread_mutex_unlock(&vdev->lock);
	return 0;
}

int
virtio_device_watch_fd(struct virtio_device *vdev, int fd, uint32_t events,
		       virtio_fd_fn fn, void *arg)
{
	int r;

	if (fd < 0 || !fn)
		return -EINVAL;
	pthread_mutex_lock(&vdev->ctl_lock);
	if (vdev->nr_watches == VIRTIO_MAX_WATCHES) {
		r = -ENOSPC;
		goto out;
	}
	vdev->watches[vdev->nr_watches] = (struct virtio_watch){ fd, fn, arg };
	r = virtio_epoll_add(vdev, fd, events,
			     VIRTIO_EV(VIRTIO_EV_WATCH, (uint32_t)fd));
	if (r == 0)
		vdev->nr_watches++;
out:
	pthread_mutex_unlock(&vdev->ctl_lock);
	return r;
}

int
virtio_device_unwatch_fd(struct virtio_device *vdev, int fd)
{
	unsigned int i;
	int r = -ENOENT;

	pthread_mutex_lock(&vdev->ctl_lock);
	for (i = 0; i < vdev->nr_watches; i++) {
		if (vdev->watches[i].fd != fd)
			continue;
		epoll_ctl(vdev->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		vdev->watches[i] = vdev->watches[--vdev->nr_watches];
		r = 0;
		break;
	}
	pthread_mutex_unlock(&vdev->ctl_lock);
	return r;
}

uint32_t
virtio_device_features_word(const struct virtio_device *vdev, uint32_t select)
{
	if (select > 1)
		return 0;
	return (uint32_t)(vdev->offered >> (32 * select));
}

void
virtio_device_set_driver_features(struct virtio_device *vdev, uint32_t select,
				  uint32_t value)
{
	uint64_t mask;

	if (select > 1)
		return;
	pthread_mutex_lock(&vdev->lock);
	if (!(virtio_device_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		mask = 0xffffffffULL << (32 * select);
		vdev->driver_features = (vdev->driver_features & ~mask) |
					((uint64_t)value << (32 * select));
	}
	pthread_mutex_unlock(&vdev->lock);
}

uint32_t
virtio_device_driver_features_word(struct virtio_device *vdev, uint32_t select)
{
	uint32_t v;

	if (select > 1)
		return 0;
	pthread_mutex_lock(&vdev->lock);
	v = (uint32_t)(vdev->driver_features >> (32 * select));
	pthread_mutex_unlock(&vdev->lock);
	return v;
}

/* Whether the driver's features can be accepted. Holds vdev->lock. */
static bool
virtio_features_acceptable(struct virtio_device *vdev)
{
	uint64_t f = vdev->driver_features;

	if (f & ~vdev->offered)
		return false;
	/* A modern-only device: a legacy driver cannot drive it. */
	if (!(f & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	if (vdev->ops->features_ok && vdev->ops->features_ok(vdev, f) < 0)
		return false;
	return true;
}

/* Holds vdev->lock. */
static void
virtio_reset_locked(struct virtio_device *vdev)
{
	unsigned int q;

	/* Stop the I/O thread from starting new queue work at once. */
	__atomic_store_n(&vdev->status, 0, __ATOMIC_SEQ_CST);
	for (q = 0; q < vdev->nr_queues; q++) {
		__atomic_store_n(&vdev->queues[q].enabled, false,
				 __ATOMIC_SEQ_CST);
		/* A device looping over a long queue stops at the next pop. */
		virtq_stop(&vdev->queues[q].vq);
	}
	virtio_post(vdev, VIRTIO_CMD_RESET, true);
	virtio_queues_clear(vdev);
	vdev->driver_features = vdev->negotiated = 0;
	/* NEEDS_RESET may have been set while the thread wound down. */
	__atomic_store_n(&vdev->status, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&vdev->logged_since_reset, false, __ATOMIC_RELAXED);
}

void
virtio_device_reset(struct virtio_device *vdev)
{
	pthread_mutex_lock(&vdev->lock);
	virtio_reset_locked(vdev);
	pthread_mutex_unlock(&vdev->lock);
}

void
virtio_device_set_status(struct virtio_device *vdev, uint8_t val)
{
	uint8_t old, want;
	bool activate;

	pthread_mutex_lock(&vdev->lock);
	if (val == 0) {
		virtio_reset_locked(vdev);
		goto out;
	}
	old = virtio_device_status(vdev);
	want = val & (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	if ((want & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		if (virtio_features_acceptable(vdev))
			vdev->negotiated = vdev->driver_features;
		else
			want &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* Once accepted, the features stay until reset. */
	if (old & VIRTIO_CONFIG_S_FEATURES_OK)
		want |= VIRTIO_CONFIG_S_FEATURES_OK;
	if (!(want & VIRTIO_CONFIG_S_FEATURES_OK))
		want &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
	activate = (want & VIRTIO_CONFIG_S_DRIVER_OK) &&
		   !(old & VIRTIO_CONFIG_S_DRIVER_OK);
	/* Keep NEEDS_RESET, which the I/O thread may set at any time. */
	do {
		old = virtio_device_status(vdev);
	} while (!__atomic_compare_exchange_n(
			&vdev->status, &old,
			(uint8_t)(want | (old & VIRTIO_CONFIG_S_NEEDS_RESET)),
			false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	if (activate)
		virtio_post(vdev, VIRTIO_CMD_ACTIVATE, false);
out:
	pthread_mutex_unlock(&vdev->lock);
}

uint16_t
virtio_queue_max_size(struct virtio_device *vdev, unsigned int q)
{
	return q < vdev->nr_queues ? vdev->queues[q].max_size : 0;
}

uint16_t
virtio_queue_size(struct virtio_device *vdev, unsigned int q)
{
	uint16_t v;

	if (q >= vdev->nr_queues)
		return 0;
	pthread_mutex_lock(&vdev->lock);
	v = vdev->queues[q].size;
	pthread_mutex_unlock(&vdev->lock);
	return v;
}

int
virtio_queue_set_size(struct virtio_device *vdev, unsigned int q,
		      uint16_t size)
{
	struct virtio_queue_state *s;
	int r = 0;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	s = &vdev->queues[q];
	pthread_mutex_lock(&vdev->lock);
	if (s->enabled)
		r = -EBUSY;
	else if (size == 0 || (size & (size - 1)) || size > s->max_size)
		r = -EINVAL;
	else
		s->size = size;
	pthread_mutex_unlock(&vdev->lock);
	return r;
}

uint64_t
virtio_queue_addr(struct virtio_device *vdev, unsigned int q,
		  enum virtio_ring_part part)
{
	struct virtio_queue_state *s;
	uint64_t v;

	if (q >= vdev->nr_queues)
		return 0;
	s = &vdev->queues[q];
	pthread_mutex_lock(&vdev->lock);
	v = part == VIRTIO_RING_DESC ? s->desc_gpa :
	    part == VIRTIO_RING_DRIVER ? s->avail_gpa : s->used_gpa;
	pthread_mutex_unlock(&vdev->lock);
	return v;
}

int
virtio_queue_set_addr(struct virtio_device *vdev, unsigned int q,
		      enum virtio_ring_part part, uint64_t gpa)
{
	struct virtio_queue_state *s;
	int r = 0;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	s = &vdev->queues[q];
	pthread_mutex_lock(&vdev->lock);
	if (s->enabled)
		r = -EBUSY;
	else if (part == VIRTIO_RING_DESC)
		s->desc_gpa = gpa;
	else if (part == VIRTIO_RING_DRIVER)
		s->avail_gpa = gpa;
	else
		s->used_gpa = gpa;
	pthread_mutex_unlock(&vdev->lock);
	return r;
}

bool
virtio_queue_enabled(struct virtio_device *vdev, unsigned int q)
{
	if (q >= vdev->nr_queues)
		return false;
	return __atomic_load_n(&vdev->queues[q].enabled, __ATOMIC_ACQUIRE);
}

int
virtio_queue_enable(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_queue_state *s;
	int r = 0;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	s = &vdev->queues[q];
	pthread_mutex_lock(&vdev->lock);
	if (s->enabled)
		goto out;
	r = virtq_setup(&s->vq, vdev->mem, s->size, s->desc_gpa, s->avail_gpa,
			s->used_gpa,
			virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX),
			virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC));
	if (r < 0) {
		virtio_device_needs_reset(vdev, "%s", s->vq.why);
		goto out;
	}
	/* Release: the ring set up above before the flag the I/O thread
	 * reads with acquire in virtio_queue_live(). */
	__atomic_store_n(&s->enabled, true, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&vdev->lock);
	return r;
}

int
virtio_queue_kick_fd(const struct virtio_device *vdev, unsigned int q)
{
	return q < vdev->nr_queues ? vdev->queues[q].kick_fd : -1;
}

void
virtio_device_config_read(struct virtio_device *vdev, uint32_t offset,
			  void *data, uint32_t len)
{
	memset(data, 0, len);
	if (offset > vdev->config_size || len > vdev->config_size - offset)
		return;
	if (vdev->ops->config_read)
		vdev->ops->config_read(vdev, offset, data, len);
}

void
virtio_device_config_write(struct virtio_device *vdev, uint32_t offset,
			   const void *data, uint32_t len)
{
	if (offset > vdev->config_size || len > vdev->config_size - offset)
		return;
	if (vdev->ops->config_write)
		vdev->ops->config_write(vdev, offset, data, len);
}
