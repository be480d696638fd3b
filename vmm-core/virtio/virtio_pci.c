/* SPDX-License-Identifier: MIT */
/*
 * The modern virtio-pci transport: capabilities, the common configuration
 * registers, ISR, doorbells and MSI-X, over the device core of virtio.h.
 *
 * Locks, outermost first: the PCI device's lock (held by dev/pci.c around
 * config hooks), vp->cfg_lock (transport registers), vdev->lock (inside
 * the core), vp->notify_lock (ioeventfds), vp->irq_lock (MSI-X, ISR). The
 * I/O thread takes only irq_lock (to signal), so a reset may wait for it
 * while holding any of the others.
 */
#include "virtio/virtio_pci.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

#define VP_CAP_LEN		16
#define VP_NOTIFY_CAP_LEN	20
#define VP_CFG_CAP_LEN		20
#define VP_MSIX_CAP_LEN		12

/* The PCI expansion ROM format (PCI Firmware Specification 3.0, 5.1). */
#define VP_ROM_SIG		0xaa55	/* bytes 0x55 0xAA */
#define VP_ROM_INIT_SIZE	0x02	/* byte: in 512-byte units */
#define VP_ROM_PCIR_PTR		0x18	/* word: where the PCIR is */
#define VP_ROM_HDR_LEN		0x1a
#define VP_PCIR_VENDOR		0x04
#define VP_PCIR_DEVICE		0x06
#define VP_PCIR_IMAGE_LEN	0x10	/* word: in 512-byte units */
#define VP_PCIR_CODE_TYPE	0x14	/* 0: x86, 3: EFI */
#define VP_PCIR_INDICATOR	0x15	/* bit 7: the last image */
#define VP_PCIR_LEN		0x18
#define VP_PCIR_LAST_IMAGE	0x80
#define VP_ROM_UNIT		512u
/* Images named in a mismatch message. */
#define VP_ROM_SEEN_MAX		4

#define VP_MSIX_ENTRY_SIZE	16
#define VP_MSIX_CTRL_MASKED	1u
#define VP_ISR_QUEUE		0x1u	/* VIRTIO_PCI_ISR_CONFIG is 0x2 */

struct vp_msix_entry {
	uint8_t raw[VP_MSIX_ENTRY_SIZE];	/* as the guest wrote it */
	bool routed;				/* the sink has routed_* */
	uint64_t routed_addr;
	uint32_t routed_data;
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_device *vdev;
	struct virtio_pci_sink sink;
	unsigned int nr_vectors;
	uint32_t msix_cap;
	uint32_t cfg_cap;		/* the PCI-config access window */

	/* Transport registers. */
	pthread_mutex_t cfg_lock;
	uint32_t dfselect;
	uint32_t gfselect;
	uint16_t queue_select;
	/* Read by the I/O thread without a lock: atomics. */
	uint16_t msix_config;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];

	/* Doorbells. */
	pthread_mutex_t notify_lock;
	bool bar_mapped;
	uint64_t bar_addr;
	bool ioev[VIRTIO_MAX_QUEUES];
	uint64_t ioev_gpa[VIRTIO_MAX_QUEUES];

	/* Interrupts. */
	pthread_mutex_t irq_lock;
	bool msix_enabled;
	bool msix_fmask;
	struct vp_msix_entry table[VIRTIO_PCI_MSIX_MAX_VECTORS];
	uint64_t pba[(VIRTIO_PCI_MSIX_MAX_VECTORS + 63) / 64];
	int vector_fd[VIRTIO_PCI_MSIX_MAX_VECTORS];
	uint8_t isr;
	int intx_level;

	struct virtio_pci_stats stats;	/* atomics */
	uint8_t *rom;			/* the ROM BAR's image, or NULL */
};

static inline void
vp_count(uint64_t *c, int64_t n)
{
	__atomic_add_fetch(c, (uint64_t)n, __ATOMIC_RELAXED);
}

static uint64_t
vp_get_le(const uint8_t *p, uint32_t len)
{
	uint64_t v = 0;
	uint32_t i;

	for (i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void
vp_put_le(uint8_t *p, uint64_t v, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* --- MSI-X and interrupts (irq_lock) -------------------------------- */

static uint64_t
vp_msix_addr(const struct vp_msix_entry *e)
{
	return vp_get_le(e->raw + PCI_MSIX_ENTRY_LOWER_ADDR, 8);
}

static uint32_t
vp_msix_data(const struct vp_msix_entry *e)
{
	return (uint32_t)vp_get_le(e->raw + PCI_MSIX_ENTRY_DATA, 4);
}

static bool
vp_msix_masked(const struct virtio_pci *vp, unsigned int vec)
{
	const struct vp_msix_entry *e = &vp->table[vec];

	return vp->msix_fmask ||
	       (vp_get_le(e->raw + PCI_MSIX_ENTRY_VECTOR_CTRL, 4) &
		VP_MSIX_CTRL_MASKED);
}

/* Route vec if it can fire and its message changed. Holds irq_lock. */
static void
vp_msix_route(struct virtio_pci *vp, unsigned int vec)
{
	struct vp_msix_entry *e = &vp->table[vec];
	uint64_t addr = vp_msix_addr(e);
	uint32_t data = vp_msix_data(e);
	int r;

	if (!vp->msix_enabled || vp_msix_masked(vp, vec) || !vp->sink.msi_route)
		return;
	if (e->routed && e->routed_addr == addr && e->routed_data == data)
		return;
	vp_count(&vp->stats.msi_routes, 1);
	r = vp->sink.msi_route(vp->sink.opaque, vp->vector_fd[vec], addr, data);
	if (r < 0) {
		log_warn("%s \"%s\": cannot route MSI-X vector %u "
			 "(0x%llx/0x%x): %s", vp->vdev->ops->name,
			 vp->vdev->name ? vp->vdev->name : "", vec,
			 (unsigned long long)addr, data, strerror(-r));
		e->routed = false;
		return;
	}
	e->routed = true;
	e->routed_addr = addr;
	e->routed_data = data;
}

static void
vp_msix_send(struct virtio_pci *vp, unsigned int vec)
{
	/* Counted first: whoever sees the interrupt also sees the count. */
	vp_count(&vp->stats.msi_fired, 1);
	if (write(vp->vector_fd[vec], &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_debug("virtio-pci: vector eventfd: %s", strerror(errno));
}

/* Fire vec, or pend it when masked. Holds irq_lock. */
static void
vp_msix_fire(struct virtio_pci *vp, unsigned int vec)
{
	if (vec >= vp->nr_vectors)
		return;
	if (vp_msix_masked(vp, vec)) {
		vp->pba[vec / 64] |= 1ULL << (vec % 64);
		vp_count(&vp->stats.msi_pended, 1);
		return;
	}
	vp_msix_send(vp, vec);
}

/* Deliver what is pending on vectors that are no longer masked. */
static void
vp_msix_unmasked(struct virtio_pci *vp, unsigned int vec)
{
	vp_msix_route(vp, vec);
	if (!vp->msix_enabled || vp_msix_masked(vp, vec))
		return;
	if (vp->pba[vec / 64] & (1ULL << (vec % 64))) {
		vp->pba[vec / 64] &= ~(1ULL << (vec % 64));
		vp_msix_send(vp, vec);
	}
}

static void
vp_intx_update(struct virtio_pci *vp)
{
	int level = !vp->msix_enabled && vp->isr != 0;

	if (level == vp->intx_level)
		return;
	vp->intx_level = level;
	if (vp->sink.intx)
		vp->sink.intx(vp->sink.opaque, level);
}

static void
vp_signal_queue(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_pci *vp = vdev->transport_priv;
	uint16_t vec;

	if (q >= VIRTIO_MAX_QUEUES)
		return;
	vec = __atomic_load_n(&vp->queue_vector[q], __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&vp->irq_lock);
	if (vp->msix_enabled) {
		if (vec != VIRTIO_NO_VECTOR)
			vp_msix_fire(vp, vec);
	} else {
		vp->isr |= VP_ISR_QUEUE;
		vp_intx_update(vp);
	}
	pthread_mutex_unlock(&vp->irq_lock);
}

static void
vp_signal_config(struct virtio_device *vdev)
{
	struct virtio_pci *vp = vdev->transport_priv;
	uint16_t vec = __atomic_load_n(&vp->msix_config, __ATOMIC_ACQUIRE);

	pthread_mutex_lock(&vp->irq_lock);
	vp->isr |= VIRTIO_PCI_ISR_CONFIG;
	if (vp->msix_enabled) {
		if (vec != VIRTIO_NO_VECTOR)
			vp_msix_fire(vp, vec);
	} else {
		vp_intx_update(vp);
	}
	pthread_mutex_unlock(&vp->irq_lock);
}

static const struct virtio_transport_ops vp_transport_ops = {
	.signal_queue = vp_signal_queue,
	.signal_config = vp_signal_config,
};

static void
vp_msix_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	       bool is_write)
{
	struct virtio_pci *vp = opaque;
	uint64_t table_end = (uint64_t)vp->nr_vectors * VP_MSIX_ENTRY_SIZE;
	uint64_t pba_end = VIRTIO_PCI_MSIX_PBA_OFF + sizeof(vp->pba);
	unsigned int vec;
	uint32_t in;
	bool was_masked;

	if (!is_write)
		memset(data, 0, len);
	pthread_mutex_lock(&vp->irq_lock);
	if (offset < table_end && len <= table_end - offset) {
		vec = (unsigned int)(offset / VP_MSIX_ENTRY_SIZE);
		in = (uint32_t)(offset % VP_MSIX_ENTRY_SIZE);
		if (in + len > VP_MSIX_ENTRY_SIZE)
			goto out;	/* across two entries: not a thing */
		if (!is_write) {
			memcpy(data, vp->table[vec].raw + in, len);
			goto out;
		}
		was_masked = vp_msix_masked(vp, vec);
		memcpy(vp->table[vec].raw + in, data, len);
		/* Only bit 0 of vector control is writable. */
		vp->table[vec].raw[PCI_MSIX_ENTRY_VECTOR_CTRL] &= 1;
		memset(vp->table[vec].raw + PCI_MSIX_ENTRY_VECTOR_CTRL + 1, 0, 3);
		if (was_masked || !vp_msix_masked(vp, vec))
			vp_msix_unmasked(vp, vec);
	} else if (offset >= VIRTIO_PCI_MSIX_PBA_OFF && offset < pba_end &&
		   len <= pba_end - offset && !is_write) {
		uint8_t pba[sizeof(vp->pba)];
		unsigned int i;

		for (i = 0; i < sizeof(pba); i++)
			pba[i] = (uint8_t)(vp->pba[i / 8] >> (8 * (i % 8)));
		memcpy(data, pba + (offset - VIRTIO_PCI_MSIX_PBA_OFF), len);
	}
out:
	pthread_mutex_unlock(&vp->irq_lock);
}

/* --- Doorbells (notify_lock) ---------------------------------------- */

/* Bring the ioeventfds in line with the BAR and the enabled queues. */
static void
vp_ioev_sync(struct virtio_pci *vp)
{
	struct virtio_device *vdev = vp->vdev;
	unsigned int q;
	uint64_t gpa;
	bool want;
	int r;

	pthread_mutex_lock(&vp->notify_lock);
	for (q = 0; q < vdev->nr_queues; q++) {
		gpa = vp->bar_addr + VIRTIO_PCI_NOTIFY_OFF +
		      (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT;
		want = vp->sink.ioeventfd && vp->bar_mapped &&
		       virtio_queue_enabled(vdev, q);
		if (vp->ioev[q] && (!want || vp->ioev_gpa[q] != gpa)) {
			vp->sink.ioeventfd(vp->sink.opaque, vp->ioev_gpa[q],
					   virtio_queue_kick_fd(vdev, q), false);
			vp->ioev[q] = false;
			vp_count(&vp->stats.ioeventfds, -1);
		}
		if (!want || vp->ioev[q])
			continue;
		r = vp->sink.ioeventfd(vp->sink.opaque, gpa,
				       virtio_queue_kick_fd(vdev, q), true);
		if (r < 0) {
			log_debug("%s: ioeventfd for queue %u at 0x%llx: %s; "
				  "doorbell exits instead", vdev->ops->name, q,
				  (unsigned long long)gpa, strerror(-r));
			continue;
		}
		vp->ioev[q] = true;
		vp->ioev_gpa[q] = gpa;
		vp_count(&vp->stats.ioeventfds, 1);
	}
	pthread_mutex_unlock(&vp->notify_lock);
}

static void
vp_doorbell(struct virtio_pci *vp, uint64_t off)
{
	unsigned int q = (unsigned int)(off / VIRTIO_PCI_NOTIFY_MULT);
	int fd = virtio_queue_kick_fd(vp->vdev, q);

	if (fd < 0)
		return;
	vp_count(&vp->stats.doorbell_exits, 1);
	if (write(fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_debug("virtio-pci: kick eventfd: %s", strerror(errno));
}

/* --- Common configuration (cfg_lock) -------------------------------- */

static uint16_t
vp_valid_vector(const struct virtio_pci *vp, uint32_t v)
{
	return v < vp->nr_vectors ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void
vp_common_snapshot(struct virtio_pci *vp, uint8_t *b)
{
	struct virtio_device *vdev = vp->vdev;
	unsigned int q = vp->queue_select;
	uint64_t a;

	memset(b, 0, VIRTIO_PCI_COMMON_LEN);
	vp_put_le(b + VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect, 4);
	vp_put_le(b + VIRTIO_PCI_COMMON_DF,
		  virtio_device_features_word(vdev, vp->dfselect), 4);
	vp_put_le(b + VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect, 4);
	vp_put_le(b + VIRTIO_PCI_COMMON_GF,
		  virtio_device_driver_features_word(vdev, vp->gfselect), 4);
	vp_put_le(b + VIRTIO_PCI_COMMON_MSIX,
		  __atomic_load_n(&vp->msix_config, __ATOMIC_RELAXED), 2);
	vp_put_le(b + VIRTIO_PCI_COMMON_NUMQ, vdev->nr_queues, 2);
	b[VIRTIO_PCI_COMMON_STATUS] = virtio_device_status(vdev);
	b[VIRTIO_PCI_COMMON_CFGGENERATION] =
		(uint8_t)__atomic_load_n(&vdev->config_generation,
					 __ATOMIC_ACQUIRE);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_SELECT, q, 2);
	if (q >= vdev->nr_queues)
		return;	/* a queue that does not exist reads size 0 */
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_SIZE, virtio_queue_size(vdev, q), 2);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_MSIX,
		  __atomic_load_n(&vp->queue_vector[q], __ATOMIC_RELAXED), 2);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_ENABLE,
		  virtio_queue_enabled(vdev, q), 2);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_NOFF, q, 2);
	a = virtio_queue_addr(vdev, q, VIRTIO_RING_DESC);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_DESCLO, a, 8);
	a = virtio_queue_addr(vdev, q, VIRTIO_RING_DRIVER);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_AVAILLO, a, 8);
	a = virtio_queue_addr(vdev, q, VIRTIO_RING_DEVICE);
	vp_put_le(b + VIRTIO_PCI_COMMON_Q_USEDLO, a, 8);
}

/* The transport's part of a device reset. Holds cfg_lock. */
static void
vp_reset(struct virtio_pci *vp)
{
	unsigned int q;

	vp->dfselect = vp->gfselect = 0;
	vp->queue_select = 0;
	__atomic_store_n(&vp->msix_config, VIRTIO_NO_VECTOR, __ATOMIC_RELEASE);
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		__atomic_store_n(&vp->queue_vector[q], VIRTIO_NO_VECTOR,
				 __ATOMIC_RELEASE);
	vp_ioev_sync(vp);
	pthread_mutex_lock(&vp->irq_lock);
	vp->isr = 0;
	vp_intx_update(vp);
	pthread_mutex_unlock(&vp->irq_lock);
}

static void
vp_queue_addr_write(struct virtio_pci *vp, unsigned int q,
		    enum virtio_ring_part part, uint32_t at, uint64_t v,
		    uint32_t len)
{
	uint64_t a = virtio_queue_addr(vp->vdev, q, part);

	if (len == 8 && at == 0)
		a = v;
	else if (len == 4 && at == 0)
		a = (a & 0xffffffff00000000ULL) | (uint32_t)v;
	else if (len == 4 && at == 4)
		a = (a & 0xffffffffULL) | (v << 32);
	else
		return;
	(void)virtio_queue_set_addr(vp->vdev, q, part, a);
}

static void
vp_common_write(struct virtio_pci *vp, uint32_t off, uint64_t v, uint32_t len)
{
	struct virtio_device *vdev = vp->vdev;
	unsigned int q = vp->queue_select;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		if (len == 4)
			vp->dfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		if (len == 4)
			vp->gfselect = (uint32_t)v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		if (len == 4)
			virtio_device_set_driver_features(vdev, vp->gfselect,
							  (uint32_t)v);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		if (len == 2)
			__atomic_store_n(&vp->msix_config,
					 vp_valid_vector(vp, (uint32_t)v),
					 __ATOMIC_RELEASE);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		if (len != 1)
			return;
		virtio_device_set_status(vdev, (uint8_t)v);
		if (v == 0)
			vp_reset(vp);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		if (len == 2)
			vp->queue_select = (uint16_t)v;
		return;
	}
	if (q >= vdev->nr_queues)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (len == 2)
			(void)virtio_queue_set_size(vdev, q, (uint16_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		/* Also on a live queue (Linux moves vectors for affinity): the
		 * I/O thread picks the new one on its next interrupt. */
		if (len == 2)
			__atomic_store_n(&vp->queue_vector[q],
					 vp_valid_vector(vp, (uint32_t)v),
					 __ATOMIC_RELEASE);
		return;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		/* Writing 0 is not for drivers (only a reset disables). */
		if (len == 2 && v == 1 && virtio_queue_enable(vdev, q) == 0)
			vp_ioev_sync(vp);
		return;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		vp_queue_addr_write(vp, q, VIRTIO_RING_DESC,
				    off - VIRTIO_PCI_COMMON_Q_DESCLO, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		vp_queue_addr_write(vp, q, VIRTIO_RING_DRIVER,
				    off - VIRTIO_PCI_COMMON_Q_AVAILLO, v, len);
		return;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		vp_queue_addr_write(vp, q, VIRTIO_RING_DEVICE,
				    off - VIRTIO_PCI_COMMON_Q_USEDLO, v, len);
		return;
	}
}

static void
vp_cfg_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	      bool is_write)
{
	struct virtio_pci *vp = opaque;
	struct virtio_device *vdev = vp->vdev;
	uint8_t snap[VIRTIO_PCI_COMMON_LEN];
	uint64_t end = offset + len;

	if (!is_write)
		memset(data, 0, len);
	if (end <= VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_LEN) {
		pthread_mutex_lock(&vp->cfg_lock);
		if (is_write) {
			vp_common_write(vp, (uint32_t)offset,
					vp_get_le(data, len), len);
		} else {
			vp_common_snapshot(vp, snap);
			memcpy(data, snap + offset, len);
		}
		pthread_mutex_unlock(&vp->cfg_lock);
		return;
	}
	if (offset == VIRTIO_PCI_ISR_OFF && len == 1) {
		if (is_write)
			return;
		/* Reading ISR clears it and lowers INTx. */
		pthread_mutex_lock(&vp->irq_lock);
		data[0] = vp->isr;
		vp->isr = 0;
		vp_intx_update(vp);
		pthread_mutex_unlock(&vp->irq_lock);
		return;
	}
	if (offset >= VIRTIO_PCI_DEVICE_OFF &&
	    end <= VIRTIO_PCI_DEVICE_OFF + VIRTIO_PCI_DEVICE_MAX) {
		if (is_write)
			virtio_device_config_write(vdev, (uint32_t)(offset -
						   VIRTIO_PCI_DEVICE_OFF),
						   data, len);
		else
			virtio_device_config_read(vdev, (uint32_t)(offset -
						  VIRTIO_PCI_DEVICE_OFF),
						  data, len);
		return;
	}
	if (offset >= VIRTIO_PCI_NOTIFY_OFF && is_write &&
	    end <= VIRTIO_PCI_NOTIFY_OFF +
		   (uint64_t)vdev->nr_queues * VIRTIO_PCI_NOTIFY_MULT) {
		vp_doorbell(vp, offset - VIRTIO_PCI_NOTIFY_OFF);
		return;
	}
}

/* --- PCI configuration hooks (PCI device lock held) ------------------ */

/* The PCI-config window: one access of cap.length at cap.offset of cap.bar. */
static void
vp_cfg_window(struct virtio_pci *vp, bool is_write)
{
	struct pci_device *d = &vp->pci;
	uint32_t c = vp->cfg_cap;
	uint8_t bar = pci_cfg_get8(d, c + VIRTIO_PCI_CAP_BAR);
	uint32_t off = pci_cfg_get32(d, c + VIRTIO_PCI_CAP_OFFSET);
	uint32_t len = pci_cfg_get32(d, c + VIRTIO_PCI_CAP_LENGTH);
	uint8_t buf[4];
	uint32_t i;

	if ((len != 1 && len != 2 && len != 4) || off % len)
		return;
	for (i = 0; i < len; i++)
		buf[i] = pci_cfg_get8(d, c + VP_CAP_LEN + i);
	if (bar == VIRTIO_PCI_CFG_BAR && off < VIRTIO_PCI_CFG_BAR_SIZE)
		vp_cfg_bar_io(vp, off, buf, len, is_write);
	else if (bar == VIRTIO_PCI_MSIX_BAR && off < VIRTIO_PCI_MSIX_BAR_SIZE)
		vp_msix_bar_io(vp, off, buf, len, is_write);
	else if (!is_write)
		memset(buf, 0, len);
	if (!is_write)
		for (i = 0; i < len; i++)
			pci_cfg_set8(d, c + VP_CAP_LEN + i, buf[i]);
}

static bool
vp_touches_window(const struct virtio_pci *vp, uint32_t off, uint32_t len)
{
	uint32_t data = vp->cfg_cap + VP_CAP_LEN;

	return off < data + 4 && off + len > data;
}

static void
vp_pci_cfg_write(struct pci_device *dev, uint32_t off, uint32_t len,
		 uint32_t value)
{
	struct virtio_pci *vp = dev->opaque;
	uint16_t ctrl = pci_cfg_get16(dev, vp->msix_cap + PCI_MSIX_FLAGS);
	bool enabled = ctrl & PCI_MSIX_FLAGS_ENABLE;
	bool fmask = ctrl & PCI_MSIX_FLAGS_MASKALL;
	bool mapped = dev->bars[VIRTIO_PCI_CFG_BAR].mapped;
	uint64_t addr = dev->bars[VIRTIO_PCI_CFG_BAR].addr;
	bool moved;
	unsigned int v;

	(void)value;
	pthread_mutex_lock(&vp->irq_lock);
	if (enabled != vp->msix_enabled || fmask != vp->msix_fmask) {
		vp->msix_enabled = enabled;
		vp->msix_fmask = fmask;
		for (v = 0; v < vp->nr_vectors; v++)
			vp_msix_unmasked(vp, v);
		vp_intx_update(vp);
	}
	pthread_mutex_unlock(&vp->irq_lock);

	pthread_mutex_lock(&vp->notify_lock);
	moved = mapped != vp->bar_mapped || addr != vp->bar_addr;
	vp->bar_mapped = mapped;
	vp->bar_addr = addr;
	pthread_mutex_unlock(&vp->notify_lock);
	if (moved)
		vp_ioev_sync(vp);

	if (vp_touches_window(vp, off, len))
		vp_cfg_window(vp, true);
}

static void
vp_pci_cfg_read(struct pci_device *dev, uint32_t off, uint32_t len,
		uint32_t *value)
{
	struct virtio_pci *vp = dev->opaque;
	uint32_t i, v = 0;

	if (!vp_touches_window(vp, off, len))
		return;
	vp_cfg_window(vp, false);
	for (i = 0; i < len; i++)
		v |= (uint32_t)pci_cfg_get8(dev, off + i) << (8 * i);
	*value = v;
}

/* --- Setup ----------------------------------------------------------- */

static int
vp_add_vndr_cap(struct pci_device *d, uint8_t type, uint8_t bar, uint32_t off,
		uint32_t len, uint32_t cap_len)
{
	int c = pci_add_capability(d, PCI_CAP_ID_VNDR, cap_len);

	if (c < 0)
		return c;
	pci_cfg_set8(d, (uint32_t)c + VIRTIO_PCI_CAP_LEN, (uint8_t)cap_len);
	pci_cfg_set8(d, (uint32_t)c + VIRTIO_PCI_CAP_CFG_TYPE, type);
	pci_cfg_set8(d, (uint32_t)c + VIRTIO_PCI_CAP_BAR, bar);
	pci_cfg_set32(d, (uint32_t)c + VIRTIO_PCI_CAP_OFFSET, off);
	pci_cfg_set32(d, (uint32_t)c + VIRTIO_PCI_CAP_LENGTH, len);
	return c;
}

static int
vp_setup_caps(struct virtio_pci *vp)
{
	struct pci_device *d = &vp->pci;
	struct virtio_device *vdev = vp->vdev;
	int c;

	c = vp_add_vndr_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CFG_BAR,
			    VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_LEN,
			    VP_CAP_LEN);
	if (c < 0)
		return c;
	c = vp_add_vndr_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CFG_BAR,
			    VIRTIO_PCI_NOTIFY_OFF,
			    vdev->nr_queues * VIRTIO_PCI_NOTIFY_MULT,
			    VP_NOTIFY_CAP_LEN);
	if (c < 0)
		return c;
	pci_cfg_set32(d, (uint32_t)c + VIRTIO_PCI_NOTIFY_CAP_MULT,
		      VIRTIO_PCI_NOTIFY_MULT);
	c = vp_add_vndr_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CFG_BAR,
			    VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_ISR_LEN, VP_CAP_LEN);
	if (c < 0)
		return c;
	if (vdev->config_size) {
		c = vp_add_vndr_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG,
				    VIRTIO_PCI_CFG_BAR, VIRTIO_PCI_DEVICE_OFF,
				    vdev->config_size, VP_CAP_LEN);
		if (c < 0)
			return c;
	}
	/* The window: the driver writes bar, offset, length and data. */
	c = vp_add_vndr_cap(d, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, VP_CFG_CAP_LEN);
	if (c < 0)
		return c;
	vp->cfg_cap = (uint32_t)c;
	pci_wmask_set(d, (uint32_t)c + VIRTIO_PCI_CAP_BAR, 1, 0xff);
	pci_wmask_set(d, (uint32_t)c + VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
	pci_wmask_set(d, (uint32_t)c + VIRTIO_PCI_CAP_LENGTH, 4, 0xffffffff);
	pci_wmask_set(d, (uint32_t)c + VP_CAP_LEN, 4, 0xffffffff);

	c = pci_add_capability(d, PCI_CAP_ID_MSIX, VP_MSIX_CAP_LEN);
	if (c < 0)
		return c;
	vp->msix_cap = (uint32_t)c;
	pci_cfg_set16(d, (uint32_t)c + PCI_MSIX_FLAGS,
		      (uint16_t)(vp->nr_vectors - 1));
	pci_wmask_set(d, (uint32_t)c + PCI_MSIX_FLAGS, 2,
		      PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	pci_cfg_set32(d, (uint32_t)c + PCI_MSIX_TABLE,
		      VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_MSIX_BAR);
	pci_cfg_set32(d, (uint32_t)c + PCI_MSIX_PBA,
		      VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
	return 0;
}

int
virtio_pci_new(struct pci_host *host, struct virtio_device *vdev,
	       const struct virtio_pci_config *cfg, struct virtio_pci **ret)
{
	struct virtio_pci *vp;
	unsigned int v;
	int r;

	if (!host || !vdev || !vdev->initialized || !cfg ||
	    vdev->config_size > VIRTIO_PCI_DEVICE_MAX || vdev->transport ||
	    (cfg->rom && cfg->rom_size == 0) ||
	    (!cfg->rom && cfg->rom_size != 0))
		return -EINVAL;
	if (cfg->rom_size > VIRTIO_PCI_ROM_MAX)
		return -EFBIG;
	vp = calloc(1, sizeof(*vp));
	if (!vp)
		return -ENOMEM;
	if (cfg->rom) {
		vp->rom = malloc(cfg->rom_size);
		if (!vp->rom) {
			free(vp);
			return -ENOMEM;
		}
		memcpy(vp->rom, cfg->rom, cfg->rom_size);
	}
	vp->vdev = vdev;
	vp->nr_vectors = vdev->nr_queues + 1;
	for (v = 0; v < VIRTIO_PCI_MSIX_MAX_VECTORS; v++) {
		vp->vector_fd[v] = -1;
		/* Vectors come out of reset masked. */
		vp->table[v].raw[PCI_MSIX_ENTRY_VECTOR_CTRL] =
			VP_MSIX_CTRL_MASKED;
	}
	if (cfg->sink)
		vp->sink = *cfg->sink;
	pthread_mutex_init(&vp->cfg_lock, NULL);
	pthread_mutex_init(&vp->notify_lock, NULL);
	pthread_mutex_init(&vp->irq_lock, NULL);
	vp->msix_config = VIRTIO_NO_VECTOR;
	for (v = 0; v < VIRTIO_MAX_QUEUES; v++)
		vp->queue_vector[v] = VIRTIO_NO_VECTOR;
	for (v = 0; v < vp->nr_vectors; v++) {
		vp->vector_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vp->vector_fd[v] < 0) {
			r = -errno;
			goto fail;
		}
	}

	pci_device_init(&vp->pci, vdev->name ? vdev->name : vdev->ops->name,
			VIRTIO_PCI_VENDOR_ID,
			(uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE +
				   vdev->ops->device_id),
			vdev->ops->pci_class, VIRTIO_PCI_REVISION);
	pci_cfg_set16(&vp->pci, PCI_SUBSYSTEM_VENDOR_ID, VIRTIO_PCI_VENDOR_ID);
	pci_cfg_set16(&vp->pci, PCI_SUBSYSTEM_ID, vdev->ops->device_id);
	if (vp->sink.intx)
		pci_cfg_set8(&vp->pci, PCI_INTERRUPT_PIN, 1);	/* INTA# */
	vp->pci.bars[VIRTIO_PCI_MSIX_BAR] = (struct pci_bar){
		.size = VIRTIO_PCI_MSIX_BAR_SIZE,
		.fn = vp_msix_bar_io, .opaque = vp,
	};
	vp->pci.bars[VIRTIO_PCI_CFG_BAR] = (struct pci_bar){
		.size = VIRTIO_PCI_CFG_BAR_SIZE, .is_64bit = true,
		.prefetchable = true, .fn = vp_cfg_bar_io, .opaque = vp,
	};
	if (vp->rom) {
		vp->pci.rom.data = vp->rom;
		vp->pci.rom.size = cfg->rom_size;
	}
	vp->pci.cfg_write = vp_pci_cfg_write;
	vp->pci.cfg_read = vp_pci_cfg_read;
	vp->pci.opaque = vp;
	r = vp_setup_caps(vp);
	if (r < 0)
		goto fail;

	vdev->transport_priv = vp;
	vdev->transport = &vp_transport_ops;
	r = pci_add_device(host, &vp->pci, cfg->slot);
	if (r < 0) {
		vdev->transport = NULL;
		vdev->transport_priv = NULL;
		goto fail;
	}
	*ret = vp;
	return 0;
fail:
	virtio_pci_free(vp);
	return r;
}

void
virtio_pci_free(struct virtio_pci *vp)
{
	unsigned int v, q;

	if (!vp)
		return;
	for (q = 0; q < VIRTIO_MAX_QUEUES; q++)
		if (vp->ioev[q])
			vp->sink.ioeventfd(vp->sink.opaque, vp->ioev_gpa[q],
					   virtio_queue_kick_fd(vp->vdev, q),
					   false);
	for (v = 0; v < VIRTIO_PCI_MSIX_MAX_VECTORS; v++) {
		if (vp->table[v].routed && vp->sink.msi_unroute)
			vp->sink.msi_unroute(vp->sink.opaque, vp->vector_fd[v]);
		if (vp->vector_fd[v] >= 0)
			close(vp->vector_fd[v]);
	}
	if (vp->vdev && vp->vdev->transport_priv == vp) {
		vp->vdev->transport = NULL;
		vp->vdev->transport_priv = NULL;
	}
	pthread_mutex_destroy(&vp->cfg_lock);
	pthread_mutex_destroy(&vp->notify_lock);
	pthread_mutex_destroy(&vp->irq_lock);
	free(vp->rom);
	free(vp);
}

static uint16_t
vp_rom_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static const char *
vp_rom_code_type_name(uint8_t type)
{
	switch (type) {
	case 0: return "x86";
	case 1: return "Open Firmware";
	case 2: return "PA-RISC";
	case 3: return "EFI";
	default: return "unknown";
	}
}

/* Append one "1af4:1000 x86" to the list of images seen. */
static void
vp_rom_note(char *seen, size_t seenlen, uint16_t vendor, uint16_t device,
	    uint8_t type)
{
	size_t n = strlen(seen);

	if (n >= seenlen)
		return;
	snprintf(seen + n, seenlen - n, "%s%04x:%04x %s", n ? ", " : "",
		 vendor, device, vp_rom_code_type_name(type));
}

static int
vp_rom_fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Explain why a ROM does not fit into err; returns code. */
static int
vp_rom_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int
virtio_pci_rom_check(const void *rom, size_t size, uint16_t virtio_id,
		     char *err, size_t errlen)
{
	const uint8_t *b = rom;
	uint16_t want = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + virtio_id);
	char seen[VP_ROM_SEEN_MAX * 32] = "";
	unsigned int nr_seen = 0;
	size_t off = 0, pcir, init, i;
	uint16_t vendor, device, ilen;
	uint8_t type, sum;

	if (!b || size == 0)
		return vp_rom_fail(err, errlen, -ENOEXEC, "it is empty");
	/* Each step moves on by ilen * 512 > 0 bytes, within size. */
	for (;;) {
		if (size - off < VP_ROM_HDR_LEN ||
		    vp_rom_get16(b + off) != VP_ROM_SIG)
			return vp_rom_fail(err, errlen, -ENOEXEC,
					   "no expansion ROM signature (55 aa) "
					   "at offset 0x%zx", off);
		pcir = off + vp_rom_get16(b + off + VP_ROM_PCIR_PTR);
		if (pcir >= size || size - pcir < VP_PCIR_LEN ||
		    memcmp(b + pcir, "PCIR", 4) != 0)
			return vp_rom_fail(err, errlen, -ENOEXEC,
					   "the image at offset 0x%zx has no "
					   "PCI data structure (PCIR)", off);
		vendor = vp_rom_get16(b + pcir + VP_PCIR_VENDOR);
		device = vp_rom_get16(b + pcir + VP_PCIR_DEVICE);
		type = b[pcir + VP_PCIR_CODE_TYPE];
		ilen = vp_rom_get16(b + pcir + VP_PCIR_IMAGE_LEN);
		if (type == 0 && vendor == VIRTIO_PCI_VENDOR_ID &&
		    device == want)
			break;
		if (nr_seen++ < VP_ROM_SEEN_MAX)
			vp_rom_note(seen, sizeof(seen), vendor, device, type);
		if ((b[pcir + VP_PCIR_INDICATOR] & VP_PCIR_LAST_IMAGE) ||
		    ilen == 0 || (size_t)ilen * VP_ROM_UNIT >= size - off)
			return vp_rom_fail(err, errlen, -ENODEV,
					   "no x86 image for PCI device "
					   "%04x:%04x in it (its images: %s)",
					   VIRTIO_PCI_VENDOR_ID, want, seen);
		off += (size_t)ilen * VP_ROM_UNIT;
	}
	/* What firmware copies and checksums: the initialization size. */
	init = (size_t)b[off + VP_ROM_INIT_SIZE] * VP_ROM_UNIT;
	if (init == 0 || init > size - off)
		return vp_rom_fail(err, errlen, -ENOEXEC,
				   "the x86 image at offset 0x%zx claims %zu "
				   "bytes, past the end of the ROM", off, init);
	sum = 0;
	for (i = 0; i < init; i++)
		sum = (uint8_t)(sum + b[off + i]);
	if (sum != 0)
		return vp_rom_fail(err, errlen, -EBADMSG,
				   "the x86 image for %04x:%04x has a bad "
				   "checksum (its %zu bytes sum to 0x%02x, "
				   "not 0)", vendor, device, init, sum);
	return 0;
}

struct pci_device *
virtio_pci_device(struct virtio_pci *vp)
{
	return &vp->pci;
}

struct virtio_device *
virtio_pci_virtio_device(struct virtio_pci *vp)
{
	return vp->vdev;
}

unsigned int
virtio_pci_nr_vectors(const struct virtio_pci *vp)
{
	return vp->nr_vectors;
}

int
virtio_pci_vector_fd(const struct virtio_pci *vp, unsigned int vec)
{
	return vec < vp->nr_vectors ? vp->vector_fd[vec] : -1;
}

void
virtio_pci_get_stats(struct virtio_pci *vp, struct virtio_pci_stats *ret)
{
	ret->doorbell_exits = __atomic_load_n(&vp->stats.doorbell_exits,
					      __ATOMIC_RELAXED);
	ret->ioeventfds = __atomic_load_n(&vp->stats.ioeventfds,
					  __ATOMIC_RELAXED);
	ret->msi_fired = __atomic_load_n(&vp->stats.msi_fired,
					 __ATOMIC_RELAXED);
	ret->msi_pended = __atomic_load_n(&vp->stats.msi_pended,
					  __ATOMIC_RELAXED);
	ret->msi_routes = __atomic_load_n(&vp->stats.msi_routes,
					  __ATOMIC_RELAXED);
}
