/* SPDX-License-Identifier: MIT */
/*
 * The virtio device core: what every virtio device (blk, console, rng,
 * net, ...) is written against, without knowing its transport.
 *
 * A device embeds struct virtio_device in its own state, describes itself
 * with a static ops table and per-instance parameters, and calls
 * virtio_device_init(). A transport (virtio_pci.h) then owns the register
 * interface: it calls virtio_device_set_status(), the queue setters and
 * virtio_device_reset() as the driver writes registers, and delivers the
 * interrupts the core asks for.
 *
 * Threads. Each device has one I/O thread, started by virtio_device_init()
 * and stopped by virtio_device_destroy(). Every device callback except
 * config_read/config_write runs on it: queue_notify when the driver kicked
 * a queue (the queue's kick eventfd, which KVM signals through an
 * ioeventfd), activate after DRIVER_OK, reset when the driver resets the
 * device, and the handlers of fds the device watches. So a device needs no
 * lock between its queue work and its reset. config_read/config_write run
 * on a vCPU thread.
 *
 * Reset. virtio_device_reset() returns only after the I/O thread ran the
 * device's reset callback, which must itself return only when the device
 * no longer touches guest memory (in-flight I/O completed or cancelled).
 *
 * Errors. A guest that breaks the ring rules (virtq.h) or a device that
 * calls virtio_device_needs_reset() puts the device in NEEDS_RESET: the
 * status bit is set, the driver gets a configuration interrupt, the
 * problem is logged (the first one after each reset, at most
 * VIRTIO_LOG_BURST times per device), and no queue is serviced until the
 * driver resets the device.
 */
#ifndef VMM_VIRTIO_VIRTIO_H
#define VMM_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "mem.h"
#include "virtio/virtq.h"

#define VIRTIO_MAX_QUEUES	64
#define VIRTIO_LOG_BURST	8	/* NEEDS_RESET messages per device */
#define VIRTIO_NO_VECTOR	0xffff

/* What the core offers on top of the device's own features. */
#define VIRTIO_CORE_FEATURES ((1ULL << VIRTIO_F_VERSION_1) | \
			      (1ULL << VIRTIO_RING_F_EVENT_IDX) | \
			      (1ULL << VIRTIO_RING_F_INDIRECT_DESC))

struct virtio_device;

struct virtio_device_ops {
	const char *name;	/* "virtio-blk": for logs */
	uint16_t device_id;	/* VIRTIO_ID_BLOCK, ... */
	uint32_t pci_class;	/* PCI class code 0xBBSSPP for the transport */

	/*
	 * Device configuration space, len bytes at offset (both checked
	 * against config_size by the core). Read fills data; the core
	 * zero-fills it first. Optional; a missing reader reads zeros, a
	 * missing writer ignores writes. vCPU thread.
	 */
	void (*config_read)(struct virtio_device *vdev, uint32_t offset,
			    void *data, uint32_t len);
	void (*config_write)(struct virtio_device *vdev, uint32_t offset,
			     const void *data, uint32_t len);
	/*
	 * The driver accepted features (a subset of what was offered, with
	 * VERSION_1): return 0, or a negative errno to refuse FEATURES_OK.
	 * Optional. vCPU thread.
	 */
	int (*features_ok)(struct virtio_device *vdev, uint64_t features);
	/* The driver kicked queue vq, or DRIVER_OK was set. I/O thread. */
	void (*queue_notify)(struct virtio_device *vdev, struct virtq *vq);
	/* After DRIVER_OK, before the first queue_notify. Optional. */
	void (*activate)(struct virtio_device *vdev);
	/*
	 * Device reset: drop everything tied to the queues and return only
	 * when no guest memory is touched any more. The core resets the
	 * queues afterwards. Optional. I/O thread.
	 */
	void (*reset)(struct virtio_device *vdev);
};

/* How the core reaches the driver; set by the transport. */
struct virtio_transport_ops {
	/* Interrupt for queue q (used buffers). Any thread. */
	void (*signal_queue)(struct virtio_device *vdev, unsigned int q);
	/* Configuration-change interrupt. Any thread. */
	void (*signal_config)(struct virtio_device *vdev);
};

/* A device's handler of an fd it watches on its I/O thread. */
typedef void (*virtio_fd_fn)(struct virtio_device *vdev, int fd,
			     uint32_t events, void *arg);

struct virtio_watch {
	int fd;
	virtio_fd_fn fn;
	void *arg;
};

#define VIRTIO_MAX_WATCHES	8

struct virtio_queue_state {
	struct virtq vq;
	uint16_t max_size;
	/* Driver-programmed, under vdev->lock until enabled. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool enabled;		/* atomically read by the I/O thread */
	int kick_fd;		/* eventfd: the driver's doorbell */
};

struct virtio_device {
	/* Described by the device before virtio_device_init(). */
	const struct virtio_device_ops *ops;
	const char *name;		/* instance name for logs, borrowed */
	const struct guest_mem *mem;	/* borrowed */
	uint64_t features;		/* the device's own feature bits */
	uint32_t config_size;		/* bytes of device config space */
	unsigned int nr_queues;
	void *opaque;			/* the device's own use */

	/* Set by the transport. */
	const struct virtio_transport_ops *transport;
	void *transport_priv;

	/* Kept by the core. */
	bool initialized;		/* between init and destroy */
	pthread_mutex_t lock;		/* status, features, queue registers */
	uint8_t status;			/* atomic: the I/O thread reads it */
	uint64_t offered;		/* features | VIRTIO_CORE_FEATURES */
	uint64_t driver_features;	/* as the driver wrote them */
	uint64_t negotiated;		/* valid once FEATURES_OK stuck */
	uint32_t config_generation;	/* atomic */
	struct virtio_queue_state queues[VIRTIO_MAX_QUEUES];
	unsigned int nr_logged;		/* NEEDS_RESET messages so far */
	bool logged_since_reset;

	/* The I/O thread. */
	pthread_t thread;
	bool thread_started;
	int epoll_fd;
	int ctl_fd;			/* eventfd: commands below */
	pthread_mutex_t ctl_lock;
	pthread_cond_t ctl_cond;
	unsigned int ctl_cmds;		/* VIRTIO_CMD_* bits pending */
	uint64_t ctl_seq;		/* commands asked */
	uint64_t ctl_done;		/* commands finished */
	struct virtio_watch watches[VIRTIO_MAX_WATCHES];
	unsigned int nr_watches;
	uint64_t notifies;		/* queue_notify calls, for tests */
};

/*
 * Initialize vdev (zeroed by the caller, who then set ops, name, mem,
 * features, config_size, nr_queues and opaque), with
 * every queue's maximum size queue_max (a power of two up to
 * VIRTQ_MAX_SIZE), and start its I/O thread. Returns 0, -EINVAL for a bad
 * description, or a negative errno from eventfd/epoll/pthread_create.
 */
int virtio_device_init(struct virtio_device *vdev, uint16_t queue_max);

/* Stop the I/O thread and close the fds. A never-initialized (zeroed)
 * vdev and NULL are fine. The transport must be gone first. */
void virtio_device_destroy(struct virtio_device *vdev);

/* Give queue q a smaller maximum size (power of two) before the transport
 * attaches. 0 or -EINVAL. */
int virtio_device_set_queue_max(struct virtio_device *vdev, unsigned int q,
				uint16_t max);

/*
 * Watch fd on the I/O thread (epoll events, e.g. EPOLLIN): fn runs there.
 * Before the driver gets the device, or from the I/O thread itself.
 * 0, -ENOSPC, or an epoll_ctl errno.
 */
int virtio_device_watch_fd(struct virtio_device *vdev, int fd,
			   uint32_t events, virtio_fd_fn fn, void *arg);
int virtio_device_unwatch_fd(struct virtio_device *vdev, int fd);

/* --- For devices (I/O thread unless said otherwise) ----------------- */

static inline struct virtq *
virtio_device_queue(struct virtio_device *vdev, unsigned int q)
{
	return &vdev->queues[q].vq;
}

/* Whether feature bit was negotiated (valid after FEATURES_OK). */
static inline bool
virtio_has_feature(const struct virtio_device *vdev, unsigned int bit)
{
	return bit < 64 && (vdev->negotiated >> bit) & 1;
}

/*
 * Interrupt the driver for vq if it wants one (EVENT_IDX / NO_INTERRUPT).
 * Call after a batch of virtq_push(). Returns whether it signalled.
 */
bool virtio_queue_signal(struct virtio_device *vdev, struct virtq *vq);

/*
 * Whether the I/O thread may work on queue q now: the driver is running
 * (DRIVER_OK, no NEEDS_RESET or FAILED) and the queue is enabled, set up
 * and not broken. For device callbacks on watched fds and timers, which
 * run even when the device is not.
 */
bool virtio_queue_live(struct virtio_device *vdev, unsigned int q);

/* Come back to queue q after the I/O thread's other pending work. */
void virtio_queue_yield(struct virtio_device *vdev, unsigned int q);

/* The device configuration changed: new generation, config interrupt. */
void virtio_config_changed(struct virtio_device *vdev);

/*
 * Something is wrong that only a reset fixes: set NEEDS_RESET, interrupt,
 * log (rate-limited). Any thread.
 */
void virtio_device_needs_reset(struct virtio_device *vdev, const char *fmt,
			       ...) __attribute__((format(printf, 2, 3)));

/* The device status register as the driver sees it. Any thread. */
uint8_t virtio_device_status(const struct virtio_device *vdev);

/* --- For transports (vCPU threads) ---------------------------------- */

/* The 32 feature bits at select (0 or 1; others read 0). */
uint32_t virtio_device_features_word(const struct virtio_device *vdev,
				     uint32_t select);
/* The driver writes 32 feature bits at select (ignored after FEATURES_OK). */
void virtio_device_set_driver_features(struct virtio_device *vdev,
				       uint32_t select, uint32_t value);
uint32_t virtio_device_driver_features_word(struct virtio_device *vdev,
					    uint32_t select);

/*
 * The driver writes the status register: 0 resets (blocking, see above);
 * FEATURES_OK is kept only if the features are acceptable; DRIVER_OK
 * activates the device on its I/O thread; NEEDS_RESET is the device's and
 * cannot be set or cleared by the driver.
 */
void virtio_device_set_status(struct virtio_device *vdev, uint8_t status);

/* Reset to the state after init; returns after the I/O thread let go. */
void virtio_device_reset(struct virtio_device *vdev);

/*
 * Queue registers. Setters are ignored (-EBUSY) once the queue is enabled
 * or for q out of range (-EINVAL); the size must be a power of two up to
 * the maximum (-EINVAL). Enabling checks the rings (virtq_setup): a bad
 * ring puts the device in NEEDS_RESET and returns -EINVAL.
 */
uint16_t virtio_queue_max_size(struct virtio_device *vdev, unsigned int q);
uint16_t virtio_queue_size(struct virtio_device *vdev, unsigned int q);
int virtio_queue_set_size(struct virtio_device *vdev, unsigned int q,
			  uint16_t size);
enum virtio_ring_part {
	VIRTIO_RING_DESC,
	VIRTIO_RING_DRIVER,	/* the available ring */
	VIRTIO_RING_DEVICE,	/* the used ring */
};
uint64_t virtio_queue_addr(struct virtio_device *vdev, unsigned int q,
			   enum virtio_ring_part part);
int virtio_queue_set_addr(struct virtio_device *vdev, unsigned int q,
			  enum virtio_ring_part part, uint64_t gpa);
bool virtio_queue_enabled(struct virtio_device *vdev, unsigned int q);
int virtio_queue_enable(struct virtio_device *vdev, unsigned int q);
/* The queue's doorbell eventfd (the transport's ioeventfd target). */
int virtio_queue_kick_fd(const struct virtio_device *vdev, unsigned int q);

/* Device config access by the transport: bounds-checked, zero-filled. */
void virtio_device_config_read(struct virtio_device *vdev, uint32_t offset,
			       void *data, uint32_t len);
void virtio_device_config_write(struct virtio_device *vdev, uint32_t offset,
				const void *data, uint32_t len);

#endif
