/* SPDX-License-Identifier: MIT */
/*
 * virtio-rng: the request queue filled from getrandom(2), behind a token
 * bucket. See rng.h for the rules; everything below but rng_set_rate()
 * and rng_get_stats() runs on the device's I/O thread.
 */
#include "virtio/rng.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

/* How long to wait before asking again for a host pool not yet ready. */
#define RNG_NOT_READY_RETRY_NS	(100ULL * 1000 * 1000)
#define RNG_SIGNAL_EVERY	16	/* interrupts during a long batch */
#define NSEC_PER_SEC		1000000000ULL

struct rng {
	struct virtio_device vdev;
	int timer_fd;
	bool entropy_ready;		/* the host pool was initialized */

	pthread_mutex_t rate_lock;	/* the bucket, as rng_set_rate() */
	uint64_t rate;			/* bytes per second, 0: unlimited */
	uint64_t burst;			/* bytes */
	/* The bucket as a theoretical arrival time: the instant at which
	 * everything served so far would have been paid for. */
	uint64_t tat_ns;

	struct iovec iov[RNG_QUEUE_MAX];

	uint64_t requests, bytes, throttled;	/* atomics */
};

static uint64_t
rng_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds that bytes take at rate; 128-bit so no limit overflows. */
static uint64_t
rng_cost_ns(uint64_t bytes, uint64_t rate)
{
	unsigned __int128 ns = (unsigned __int128)bytes * NSEC_PER_SEC / rate;

	return ns > UINT64_MAX / 2 ? UINT64_MAX / 2 : (uint64_t)ns;
}

/*
 * 0 when a request may be served now, else how many nanoseconds to wait.
 * A request is served while any credit is left and paid for afterwards
 * (rng_charge()), so a burst overshoots by at most one request.
 */
static uint64_t
rng_wait_ns(struct rng *r, uint64_t now)
{
	uint64_t burst_ns, wait = 0;

	pthread_mutex_lock(&r->rate_lock);
	if (r->rate) {
		burst_ns = rng_cost_ns(r->burst, r->rate);
		if (r->tat_ns > now && r->tat_ns - now >= burst_ns)
			wait = r->tat_ns - now - burst_ns + 1;
	}
	pthread_mutex_unlock(&r->rate_lock);
	return wait;
}

static void
rng_charge(struct rng *r, uint64_t now, uint64_t bytes)
{
	pthread_mutex_lock(&r->rate_lock);
	if (r->rate) {
		if (r->tat_ns < now)
			r->tat_ns = now;
		r->tat_ns += rng_cost_ns(bytes < RNG_REQUEST_MIN_COST ?
					 RNG_REQUEST_MIN_COST : bytes, r->rate);
	}
	pthread_mutex_unlock(&r->rate_lock);
}

/* Wake the I/O thread after ns (> 0) through the timer; 0 disarms. */
static void
rng_timer_set(struct rng *r, uint64_t ns)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = (time_t)(ns / NSEC_PER_SEC);
	its.it_value.tv_nsec = (long)(ns % NSEC_PER_SEC);
	/* Cannot fail on a valid timerfd with a valid value. */
	(void)timerfd_settime(r->timer_fd, 0, &its, NULL);
}


/*
 * Whether the host's pool is initialized, so that getrandom() without
 * GRND_NONBLOCK cannot block the I/O thread. A zero-length request asks
 * the kernel exactly that.
 */
static bool
rng_entropy_ready(struct rng *r)
{
	char c;

	if (!r->entropy_ready && getrandom(&c, 0, GRND_NONBLOCK) == 0)
		r->entropy_ready = true;
	return r->entropy_ready;
}

/* Fill up to RNG_MAX_REQUEST bytes of el's writable buffers. */
static uint32_t
rng_fill(struct rng *r, const struct virtq_elem *el)
{
	uint32_t want = el->in_len < RNG_MAX_REQUEST ? el->in_len :
		RNG_MAX_REQUEST;
	uint32_t done = 0;
	unsigned int i;

	for (i = el->nr_out; i < el->nr_out + el->nr_in && done < want; i++) {
		uint8_t *p = r->iov[i].iov_base;
		size_t len = r->iov[i].iov_len;
		ssize_t n;

		if (len > want - done)
			len = want - done;
		while (len) {
			n = getrandom(p, len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return done;	/* cannot happen */
			p += n;
			len -= (size_t)n;
			done += (uint32_t)n;
		}
	}
	return done;
}

static void
rng_run(struct rng *r)
{
	struct virtio_device *vdev = &r->vdev;
	struct virtq *vq = virtio_device_queue(vdev, 0);
	struct virtq_elem el;
	unsigned int n;
	uint64_t now, wait;
	uint32_t len;
	int got;

	if (!virtio_queue_live(vdev, vq->index))
		return;
	if (!rng_entropy_ready(r)) {
		virtq_disable_notify(vq);
		rng_timer_set(r, RNG_NOT_READY_RETRY_NS);
		return;
	}
	for (n = 0;; n++) {
		if (n == RNG_BUDGET) {
			/* Yield: the doorbell brings us back after the other
			 * work the I/O thread has waiting. */
			if (write(virtio_queue_kick_fd(vdev, 0),
				  &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
				rng_timer_set(r, 1);
			break;
		}
		now = rng_now_ns();
		wait = rng_wait_ns(r, now);
		if (wait) {
			/* The timer brings us back; popping until empty then
			 * turns kicks on again. */
			if (virtq_has_work(vq))
				__atomic_add_fetch(&r->throttled, 1,
						   __ATOMIC_RELAXED);
			virtq_disable_notify(vq);
			rng_timer_set(r, wait);
			break;
		}
		got = virtq_pop(vq, r->iov, RNG_QUEUE_MAX, &el);
		if (got <= 0)
			break;
		if (el.out_len) {
			virtio_device_needs_reset(vdev, "request at head %u has "
						  "%u device-readable bytes",
						  el.head, el.out_len);
			break;
		}
		len = rng_fill(r, &el);
		virtq_push(vq, el.head, len);
		rng_charge(r, now, len);
		__atomic_add_fetch(&r->requests, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&r->bytes, len, __ATOMIC_RELAXED);
		if ((n + 1) % RNG_SIGNAL_EVERY == 0)
			virtio_queue_signal(vdev, vq);
	}
	virtio_queue_signal(vdev, vq);
}

static void
rng_queue_notify(struct virtio_device *vdev, struct virtq *vq)
{
	(void)vq;
	rng_run(vdev->opaque);
}

static void
rng_timer_event(struct virtio_device *vdev, int fd, uint32_t events,
		void *arg)
{
	uint64_t v;

	(void)vdev;
	(void)events;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	rng_run(arg);
}

static void
rng_reset(struct virtio_device *vdev)
{
	struct rng *r = vdev->opaque;

	/* The bucket is kept: a reset buys no new burst. */
	rng_timer_set(r, 0);
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.pci_class = 0xff0000,	/* unclassified device, as others use */
	.queue_notify = rng_queue_notify,
	.reset = rng_reset,
};

int
rng_new(const struct guest_mem *mem, struct rng **ret)
{
	struct rng *r;
	int e;

	if (!mem || !ret)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->rate_lock, NULL);
	r->rate = RNG_DEFAULT_RATE;
	r->burst = RNG_DEFAULT_BURST;
	r->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (r->timer_fd < 0) {
		e = -errno;
		goto fail;
	}
	r->vdev.ops = &rng_ops;
	r->vdev.name = "rng";
	r->vdev.mem = mem;
	r->vdev.features = 0;
	r->vdev.config_size = 0;
	r->vdev.nr_queues = 1;
	r->vdev.opaque = r;
	e = virtio_device_init(&r->vdev, RNG_QUEUE_MAX);
	if (e < 0)
		goto fail;
	e = virtio_device_watch_fd(&r->vdev, r->timer_fd, EPOLLIN,
				   rng_timer_event, r);
	if (e < 0)
		goto fail;
	*ret = r;
	return 0;
fail:
	rng_free(r);
	return e;
}

struct virtio_device *
rng_virtio(struct rng *r)
{
	return &r->vdev;
}

void
rng_free(struct rng *r)
{
	if (!r)
		return;
	virtio_device_destroy(&r->vdev);
	if (r->timer_fd >= 0)
		close(r->timer_fd);
	pthread_mutex_destroy(&r->rate_lock);
	free(r);
}

int
rng_set_rate(struct rng *r, uint64_t bytes_per_sec, uint64_t burst)
{
	if (bytes_per_sec && burst < RNG_MAX_REQUEST)
		return -EINVAL;
	pthread_mutex_lock(&r->rate_lock);
	r->rate = bytes_per_sec;
	r->burst = burst;
	r->tat_ns = 0;		/* a new limit starts with a full bucket */
	pthread_mutex_unlock(&r->rate_lock);
	/* Requests waiting for the old rate are looked at again now. */
	virtio_queue_yield(&r->vdev, 0);
	return 0;
}

void
rng_get_stats(struct rng *r, struct rng_stats *ret)
{
	ret->requests = __atomic_load_n(&r->requests, __ATOMIC_RELAXED);
	ret->bytes = __atomic_load_n(&r->bytes, __ATOMIC_RELAXED);
	ret->throttled = __atomic_load_n(&r->throttled, __ATOMIC_RELAXED);
}
