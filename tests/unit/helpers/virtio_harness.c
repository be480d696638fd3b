/* SPDX-License-Identifier: MIT */
/*
 * The host-side virtio driver harness. Written from the virtio 1.x spec's
 * driver requirements (3.1.1 initialization, 4.1.4 the PCI capabilities,
 * 2.7 the split ring), in the order Linux's virtio_pci_modern uses them.
 */
#include "virtio_harness.h"
#include "layout.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_pci.h>

/* --- Machine ---------------------------------------------------------- */

int
vh_machine_init(struct vh_machine *m, uint64_t ram_size)
{
	int r;

	memset(m, 0, sizeof(*m));
	r = guest_mem_init(&m->mem, ram_size);
	if (r < 0)
		return r;
	bus_init(&m->pio, "pio");
	bus_init(&m->mmio, "mmio");
	m->host = pci_host_new(&m->pio, &m->mmio, NULL);
	if (!m->host) {
		r = -errno;
		bus_destroy(&m->pio);
		bus_destroy(&m->mmio);
		guest_mem_destroy(&m->mem);
		return r;
	}
	m->alloc_next = VH_RAM_ALLOC_START;
	m->mmio32_next = LAYOUT_PCI_MMIO32_START;
	m->mmio64_next = guest_mem_top(&m->mem) > LAYOUT_HIGH_RAM_START ?
			 guest_mem_top(&m->mem) : LAYOUT_HIGH_RAM_START;
	return 0;
}

void
vh_machine_destroy(struct vh_machine *m)
{
	pci_host_free(m->host);
	m->host = NULL;
	bus_destroy(&m->pio);
	bus_destroy(&m->mmio);
	guest_mem_destroy(&m->mem);
}

uint64_t
vh_alloc(struct vh_machine *m, uint64_t len, uint64_t align)
{
	uint64_t gpa = (m->alloc_next + align - 1) & ~(align - 1);
	void *p = guest_mem_ptr(&m->mem, gpa, len);

	if (!p)
		return 0;
	memset(p, 0, len);
	m->alloc_next = gpa + len;
	return gpa;
}

void *
vh_ptr(struct vh_machine *m, uint64_t gpa, uint64_t len)
{
	return guest_mem_ptr(&m->mem, gpa, len);
}

static uint64_t
vh_bus_read(struct bus *b, uint64_t addr, uint32_t len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;
	uint32_t i;

	bus_dispatch(b, addr, d, len, false);
	for (i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void
vh_bus_write(struct bus *b, uint64_t addr, uint32_t len, uint64_t v)
{
	uint8_t d[8];
	uint32_t i;

	for (i = 0; i < len; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	bus_dispatch(b, addr, d, len, true);
}

uint64_t
vh_pio_read(struct vh_machine *m, uint16_t port, uint32_t len)
{
	return vh_bus_read(&m->pio, port, len);
}

void
vh_pio_write(struct vh_machine *m, uint16_t port, uint32_t len, uint64_t v)
{
	vh_bus_write(&m->pio, port, len, v);
}

uint64_t
vh_mmio_read(struct vh_machine *m, uint64_t gpa, uint32_t len)
{
	return vh_bus_read(&m->mmio, gpa, len);
}

void
vh_mmio_write(struct vh_machine *m, uint64_t gpa, uint32_t len, uint64_t v)
{
	vh_bus_write(&m->mmio, gpa, len, v);
}

static uint32_t
vh_cfg_addr(int slot, uint32_t reg)
{
	return 0x80000000u | (uint32_t)slot << 11 | (reg & 0xfc);
}

uint32_t
vh_cfg_read(struct vh_machine *m, int slot, uint32_t reg, uint32_t len)
{
	vh_pio_write(m, PORT_PCI_CONFIG_ADDR, 4, vh_cfg_addr(slot, reg));
	return (uint32_t)vh_pio_read(m, (uint16_t)(PORT_PCI_CONFIG_DATA +
						   (reg & 3)), len);
}

void
vh_cfg_write(struct vh_machine *m, int slot, uint32_t reg, uint32_t len,
	     uint32_t v)
{
	vh_pio_write(m, PORT_PCI_CONFIG_ADDR, 4, vh_cfg_addr(slot, reg));
	vh_pio_write(m, (uint16_t)(PORT_PCI_CONFIG_DATA + (reg & 3)), len, v);
}

int
vh_machine_add(struct vh_machine *m, struct virtio_device *vdev,
	       struct virtio_pci **ret)
{
	struct virtio_pci_config cfg = { .slot = -1, .sink = NULL };

	return virtio_pci_new(m->host, vdev, &cfg, ret);
}

/* --- Enumeration ------------------------------------------------------- */

static int
vh_size_bars(struct vh_dev *d)
{
	struct vh_machine *m = d->m;
	uint32_t reg, lo, hi, orig;
	uint64_t mask, size, addr;
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		reg = PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i;
		orig = vh_cfg_read(m, d->slot, reg, 4);
		vh_cfg_write(m, d->slot, reg, 4, 0xffffffff);
		lo = vh_cfg_read(m, d->slot, reg, 4);
		vh_cfg_write(m, d->slot, reg, 4, orig);
		if (lo == 0)
			continue;
		if (lo & PCI_BASE_ADDRESS_SPACE_IO)
			continue;	/* virtio-pci modern has none */
		d->bar_64[i] = (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) ==
			       PCI_BASE_ADDRESS_MEM_TYPE_64;
		d->bar_prefetch[i] = lo & PCI_BASE_ADDRESS_MEM_PREFETCH;
		mask = lo & PCI_BASE_ADDRESS_MEM_MASK;
		if (d->bar_64[i]) {
			if (i == PCI_STD_NUM_BARS - 1)
				return -EPROTO;
			vh_cfg_write(m, d->slot, reg + 4, 4, 0xffffffff);
			hi = vh_cfg_read(m, d->slot, reg + 4, 4);
			vh_cfg_write(m, d->slot, reg + 4, 4, 0);
			mask |= (uint64_t)hi << 32;
		} else {
			mask |= 0xffffffff00000000ULL;
		}
		size = ~mask + 1;
		d->bar_size[i] = size;
		if (d->bar_64[i] && !m->bars64_low) {
			addr = (m->mmio64_next + size - 1) & ~(size - 1);
			m->mmio64_next = addr + size;
		} else {
			addr = (m->mmio32_next + size - 1) & ~(size - 1);
			m->mmio32_next = addr + size;
		}
		d->bar_addr[i] = addr;
		vh_cfg_write(m, d->slot, reg, 4, (uint32_t)addr);
		if (d->bar_64[i]) {
			vh_cfg_write(m, d->slot, reg + 4, 4,
				     (uint32_t)(addr >> 32));
			i++;
		}
	}
	return 0;
}

static void
vh_read_cap(struct vh_dev *d, uint8_t off, struct vh_cap *c)
{
	struct vh_machine *m = d->m;

	if (c->present)
		return;	/* the first of each type, as Linux takes it */
	c->present = true;
	c->cap_off = off;
	c->cap_len = (uint8_t)vh_cfg_read(m, d->slot, off + VIRTIO_PCI_CAP_LEN, 1);
	c->bar = (uint8_t)vh_cfg_read(m, d->slot, off + VIRTIO_PCI_CAP_BAR, 1);
	c->offset = vh_cfg_read(m, d->slot, off + VIRTIO_PCI_CAP_OFFSET, 4);
	c->length = vh_cfg_read(m, d->slot, off + VIRTIO_PCI_CAP_LENGTH, 4);
	if (c->bar < PCI_STD_NUM_BARS)
		c->gpa = d->bar_addr[c->bar] + c->offset;
}

static int
vh_walk_caps(struct vh_dev *d)
{
	struct vh_machine *m = d->m;
	uint8_t off, id, type;
	unsigned int guard = 0;
	uint32_t v;

	if (!(vh_cfg_read(m, d->slot, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return -EPROTO;
	off = (uint8_t)vh_cfg_read(m, d->slot, PCI_CAPABILITY_LIST, 1);
	while (off && guard++ < 48) {
		id = (uint8_t)vh_cfg_read(m, d->slot, off + PCI_CAP_LIST_ID, 1);
		if (id == PCI_CAP_ID_VNDR) {
			type = (uint8_t)vh_cfg_read(m, d->slot,
					off + VIRTIO_PCI_CAP_CFG_TYPE, 1);
			switch (type) {
			case VIRTIO_PCI_CAP_COMMON_CFG:
				vh_read_cap(d, off, &d->common);
				break;
			case VIRTIO_PCI_CAP_NOTIFY_CFG:
				if (!d->notify.present)
					d->notify_mult = vh_cfg_read(m, d->slot,
						off + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
				vh_read_cap(d, off, &d->notify);
				break;
			case VIRTIO_PCI_CAP_ISR_CFG:
				vh_read_cap(d, off, &d->isr);
				break;
			case VIRTIO_PCI_CAP_DEVICE_CFG:
				vh_read_cap(d, off, &d->device);
				break;
			case VIRTIO_PCI_CAP_PCI_CFG:
				vh_read_cap(d, off, &d->pcicfg);
				break;
			}
		} else if (id == PCI_CAP_ID_MSIX) {
			d->msix_cap = off;
			v = vh_cfg_read(m, d->slot, off + PCI_MSIX_FLAGS, 2);
			d->msix_size = (uint16_t)((v & PCI_MSIX_FLAGS_QSIZE) + 1);
			v = vh_cfg_read(m, d->slot, off + PCI_MSIX_TABLE, 4);
			d->msix_table_bar = v & PCI_MSIX_TABLE_BIR;
			d->msix_table_off = v & PCI_MSIX_TABLE_OFFSET;
			v = vh_cfg_read(m, d->slot, off + PCI_MSIX_PBA, 4);
			d->msix_pba_bar = v & PCI_MSIX_PBA_BIR;
			d->msix_pba_off = v & PCI_MSIX_PBA_OFFSET;
		}
		off = (uint8_t)vh_cfg_read(m, d->slot, off + PCI_CAP_LIST_NEXT,
					   1);
	}
	if (!d->common.present || !d->notify.present || !d->isr.present)
		return -EPROTO;
	return 0;
}

int
vh_dev_probe(struct vh_dev *d, struct vh_machine *m, struct virtio_pci *vp)
{
	struct pci_device *pd = virtio_pci_device(vp);
	uint32_t v;
	int r;

	memset(d, 0, sizeof(*d));
	d->m = m;
	d->vp = vp;
	d->vdev = virtio_pci_virtio_device(vp);
	d->slot = pd->slot;
	v = vh_cfg_read(m, d->slot, PCI_VENDOR_ID, 4);
	if ((v & 0xffff) == 0xffff)
		return -ENODEV;
	d->vendor_id = (uint16_t)v;
	d->device_id = (uint16_t)(v >> 16);
	v = vh_cfg_read(m, d->slot, PCI_CLASS_REVISION, 4);
	d->revision = (uint8_t)v;
	d->class_code = v >> 8;
	d->subsys_vendor = (uint16_t)vh_cfg_read(m, d->slot,
						 PCI_SUBSYSTEM_VENDOR_ID, 2);
	d->subsys_id = (uint16_t)vh_cfg_read(m, d->slot, PCI_SUBSYSTEM_ID, 2);
	r = vh_size_bars(d);
	if (r < 0)
		return r;
	vh_cfg_write(m, d->slot, PCI_COMMAND, 2,
		     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	r = vh_walk_caps(d);
	if (r < 0)
		return r;
	d->num_queues = (uint16_t)vh_common_read(d, VIRTIO_PCI_COMMON_NUMQ, 2);
	return 0;
}

void
vh_dev_release(struct vh_dev *d)
{
	unsigned int i;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		free(d->q[i].lens);
		d->q[i].lens = NULL;
		d->q[i].ready = false;
	}
}

/* --- Registers ----------------------------------------------------------- */

uint64_t
vh_common_read(struct vh_dev *d, uint32_t off, uint32_t len)
{
	return vh_mmio_read(d->m, d->common.gpa + off, len);
}

void
vh_common_write(struct vh_dev *d, uint32_t off, uint32_t len, uint64_t v)
{
	vh_mmio_write(d->m, d->common.gpa + off, len, v);
}

uint8_t
vh_dev_status(struct vh_dev *d)
{
	return (uint8_t)vh_common_read(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

void
vh_dev_set_status(struct vh_dev *d, uint8_t status)
{
	vh_common_write(d, VIRTIO_PCI_COMMON_STATUS, 1, status);
}

uint8_t
vh_isr_read(struct vh_dev *d)
{
	return (uint8_t)vh_mmio_read(d->m, d->isr.gpa, 1);
}

uint64_t
vh_devcfg_read(struct vh_dev *d, uint32_t off, uint32_t len)
{
	return vh_mmio_read(d->m, d->device.gpa + off, len);
}

void
vh_devcfg_write(struct vh_dev *d, uint32_t off, uint32_t len, uint64_t v)
{
	vh_mmio_write(d->m, d->device.gpa + off, len, v);
}

int
vh_dev_reset(struct vh_dev *d)
{
	unsigned int i;

	vh_dev_set_status(d, 0);
	/* The spec has the driver wait for 0 to read back. */
	for (i = 0; i < 1000; i++) {
		if (vh_dev_status(d) == 0)
			break;
		usleep(1000);
	}
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		free(d->q[i].lens);
		d->q[i].lens = NULL;
		d->q[i].ready = false;
	}
	return vh_dev_status(d) == 0 ? 0 : -ETIMEDOUT;
}

int
vh_dev_negotiate(struct vh_dev *d, uint64_t wanted, bool force)
{
	uint64_t f;
	uint8_t st;
	int r;

	r = vh_dev_reset(d);
	if (r < 0)
		return r;
	vh_dev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	vh_dev_set_status(d, VIRTIO_CONFIG_S_ACKNOWLEDGE |
			  VIRTIO_CONFIG_S_DRIVER);
	vh_common_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = vh_common_read(d, VIRTIO_PCI_COMMON_DF, 4);
	vh_common_write(d, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	f |= vh_common_read(d, VIRTIO_PCI_COMMON_DF, 4) << 32;
	d->device_features = f;
	f = force ? wanted : (wanted & f);
	vh_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	vh_common_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	vh_common_write(d, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	vh_common_write(d, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32));
	st = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	vh_dev_set_status(d, st | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(vh_dev_status(d) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		vh_dev_set_status(d, st | VIRTIO_CONFIG_S_FAILED);
		return -ENOTSUP;
	}
	d->features = f;
	return 0;
}

int
vh_dev_driver_ok(struct vh_dev *d)
{
	uint8_t st = vh_dev_status(d);

	vh_dev_set_status(d, st | VIRTIO_CONFIG_S_DRIVER_OK);
	return (vh_dev_status(d) & VIRTIO_CONFIG_S_DRIVER_OK) ? 0 : -EIO;
}

/* --- MSI-X ----------------------------------------------------------------- */

static uint64_t
vh_msix_entry_gpa(struct vh_dev *d, unsigned int vec)
{
	return d->bar_addr[d->msix_table_bar] + d->msix_table_off +
	       16ULL * vec;
}

int
vh_dev_msix_enable(struct vh_dev *d)
{
	uint32_t ctrl;
	unsigned int v;

	if (!d->msix_cap)
		return -ENOTSUP;
	ctrl = vh_cfg_read(d->m, d->slot, d->msix_cap + PCI_MSIX_FLAGS, 2);
	vh_cfg_write(d->m, d->slot, d->msix_cap + PCI_MSIX_FLAGS, 2,
		     ctrl | PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	for (v = 0; v < d->msix_size; v++) {
		uint64_t e = vh_msix_entry_gpa(d, v);

		vh_mmio_write(d->m, e + PCI_MSIX_ENTRY_LOWER_ADDR, 4,
			      (uint32_t)VH_MSI_ADDR);
		vh_mmio_write(d->m, e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
		vh_mmio_write(d->m, e + PCI_MSIX_ENTRY_DATA, 4, 0x40 + v);
		vh_mmio_write(d->m, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	}
	vh_cfg_write(d->m, d->slot, d->msix_cap + PCI_MSIX_FLAGS, 2,
		     (ctrl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL);
	return 0;
}

void
vh_msix_mask(struct vh_dev *d, unsigned int vec, bool masked)
{
	vh_mmio_write(d->m, vh_msix_entry_gpa(d, vec) +
		      PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked ? 1 : 0);
}

void
vh_msix_function_mask(struct vh_dev *d, bool masked)
{
	uint32_t ctrl = vh_cfg_read(d->m, d->slot, d->msix_cap + PCI_MSIX_FLAGS,
				    2);

	ctrl = masked ? ctrl | PCI_MSIX_FLAGS_MASKALL :
			ctrl & ~PCI_MSIX_FLAGS_MASKALL;
	vh_cfg_write(d->m, d->slot, d->msix_cap + PCI_MSIX_FLAGS, 2, ctrl);
}

bool
vh_msix_pending(struct vh_dev *d, unsigned int vec)
{
	uint64_t pba = d->bar_addr[d->msix_pba_bar] + d->msix_pba_off +
		       8ULL * (vec / 64);

	return (vh_mmio_read(d->m, pba, 8) >> (vec % 64)) & 1;
}

void
vh_msix_entry(struct vh_dev *d, unsigned int vec, uint64_t *addr,
	      uint32_t *data, uint32_t *ctrl)
{
	uint64_t e = vh_msix_entry_gpa(d, vec);

	*addr = vh_mmio_read(d->m, e + PCI_MSIX_ENTRY_LOWER_ADDR, 8);
	*data = (uint32_t)vh_mmio_read(d->m, e + PCI_MSIX_ENTRY_DATA, 4);
	*ctrl = (uint32_t)vh_mmio_read(d->m, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4);
}

uint64_t
vh_wait_irq(struct vh_dev *d, unsigned int vec, int timeout_ms)
{
	int fd = virtio_pci_vector_fd(d->vp, vec);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t n = 0;

	if (fd < 0 || poll(&p, 1, timeout_ms) <= 0)
		return 0;
	if (read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

/* --- Queues ------------------------------------------------------------- */

static inline void
vh_st16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, htole16(v), __ATOMIC_RELAXED);
}

static inline uint16_t
vh_ld16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)(const void *)p,
				       __ATOMIC_RELAXED));
}

static inline uint32_t
vh_ld32(const uint8_t *p)
{
	return le32toh(__atomic_load_n((const uint32_t *)(const void *)p,
				       __ATOMIC_RELAXED));
}

static void
vh_desc_write(uint8_t *table, uint16_t i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next)
{
	uint8_t *e = table + 16u * i;
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(e, &a, 8);
	memcpy(e + 8, &l, 4);
	memcpy(e + 12, &f, 2);
	memcpy(e + 14, &n, 2);
}

void
vh_desc_set(struct vh_queue *q, uint16_t i, uint64_t addr, uint32_t len,
	    uint16_t flags, uint16_t next)
{
	vh_desc_write(q->desc, i, addr, len, flags, next);
}

void
vh_indirect_set(struct vh_machine *m, uint64_t table_gpa, uint16_t i,
		uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *t = vh_ptr(m, table_gpa + 16ULL * i, 16);

	if (t)
		vh_desc_write(t, 0, addr, len, flags, next);
}

void
vh_avail_push(struct vh_queue *q, uint16_t head)
{
	vh_st16(q->avail + 4 + 2u * (q->avail_idx & (q->size - 1)), head);
	q->avail_idx++;
	/* Release: the entry and the chain's descriptors before the index
	 * (the device's acquire after reading avail->idx). */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vh_st16(q->avail + 2, q->avail_idx);
}

void
vh_avail_set_idx(struct vh_queue *q, uint16_t idx)
{
	q->avail_idx = idx;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vh_st16(q->avail + 2, idx);
}

void
vh_avail_set_flags(struct vh_queue *q, uint16_t flags)
{
	vh_st16(q->avail, flags);
}

void
vh_set_used_event(struct vh_queue *q, uint16_t v)
{
	vh_st16(q->avail + 4 + 2u * q->size, v);
	/* Full barrier: used_event before we look at used->idx again (the
	 * device's full barrier between used->idx and reading used_event). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t
vh_used_idx(struct vh_queue *q)
{
	return vh_ld16(q->used + 2);
}

uint16_t
vh_used_flags(struct vh_queue *q)
{
	return vh_ld16(q->used);
}

uint16_t
vh_avail_event(struct vh_queue *q)
{
	return vh_ld16(q->used + 4 + 8u * q->size);
}

int
vh_queue_setup(struct vh_dev *d, unsigned int qi, uint16_t size,
	       uint16_t vector)
{
	struct vh_queue *q;
	uint16_t max, i;

	if (qi >= VIRTIO_MAX_QUEUES || qi >= d->num_queues)
		return -EINVAL;
	q = &d->q[qi];
	free(q->lens);
	memset(q, 0, sizeof(*q));
	q->d = d;
	q->index = qi;
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, qi);
	max = (uint16_t)vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2);
	if (max == 0)
		return -EINVAL;
	if (size == 0 || size > max)
		size = max;
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
	q->size = (uint16_t)vh_common_read(d, VIRTIO_PCI_COMMON_Q_SIZE, 2);
	if (q->size != size)
		return -EIO;
	q->desc_gpa = vh_alloc(d->m, VIRTQ_DESC_BYTES(size), 16);
	q->avail_gpa = vh_alloc(d->m, VIRTQ_AVAIL_BYTES(size), 2);
	q->used_gpa = vh_alloc(d->m, VIRTQ_USED_BYTES(size), 4);
	q->indirect_gpa = vh_alloc(d->m, 16ULL * VH_INDIRECT_MAX * size, 16);
	if (!q->desc_gpa || !q->avail_gpa || !q->used_gpa || !q->indirect_gpa)
		return -ENOMEM;
	q->desc = vh_ptr(d->m, q->desc_gpa, VIRTQ_DESC_BYTES(size));
	q->avail = vh_ptr(d->m, q->avail_gpa, VIRTQ_AVAIL_BYTES(size));
	q->used = vh_ptr(d->m, q->used_gpa, VIRTQ_USED_BYTES(size));
	q->lens = calloc(size, sizeof(q->lens[0]) * 2);
	if (!q->lens)
		return -ENOMEM;
	/* lens[0..size) per head; lens[size..2*size) the free list links. */
	for (i = 0; i < size; i++)
		q->lens[size + i] = (uint16_t)(i + 1);
	q->free_head = 0;
	q->nr_free = size;
	/* Linux writes each 64-bit address as two 32-bit halves. */
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)q->desc_gpa);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, q->desc_gpa >> 32);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4,
			(uint32_t)q->avail_gpa);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, q->avail_gpa >> 32);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)q->used_gpa);
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, q->used_gpa >> 32);
	q->vector = vector;
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, vector);
	if (vector != VIRTIO_NO_VECTOR &&
	    vh_common_read(d, VIRTIO_PCI_COMMON_Q_MSIX, 2) != vector)
		return -EIO;
	q->notify_off = (uint16_t)vh_common_read(d, VIRTIO_PCI_COMMON_Q_NOFF, 2);
	q->notify_gpa = d->notify.gpa + (uint64_t)q->notify_off * d->notify_mult;
	vh_common_write(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
	if (vh_common_read(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2) != 1)
		return -EIO;
	q->ready = true;
	return 0;
}

int
vh_queue_add(struct vh_queue *q, const struct vh_buf *bufs,
	     unsigned int nr_out, unsigned int nr_in, bool indirect)
{
	unsigned int total = nr_out + nr_in, i, need = indirect ? 1 : total;
	uint16_t *next = q->lens + q->size;
	uint16_t head, cur, flags;
	uint64_t table;

	if (total == 0 || !q->ready || need > q->nr_free ||
	    (indirect && total > VH_INDIRECT_MAX))
		return -ENOSPC;
	head = q->free_head;
	if (indirect) {
		table = q->indirect_gpa + 16ULL * VH_INDIRECT_MAX * head;
		for (i = 0; i < total; i++) {
			flags = (uint16_t)((i >= nr_out ? VRING_DESC_F_WRITE : 0) |
					   (i + 1 < total ? VRING_DESC_F_NEXT : 0));
			vh_indirect_set(q->d->m, table, (uint16_t)i, bufs[i].gpa,
					bufs[i].len, flags, (uint16_t)(i + 1));
		}
		vh_desc_set(q, head, table, 16 * total, VRING_DESC_F_INDIRECT, 0);
		q->free_head = next[head];
	} else {
		cur = head;
		for (i = 0; i < total; i++) {
			flags = (uint16_t)((i >= nr_out ? VRING_DESC_F_WRITE : 0) |
					   (i + 1 < total ? VRING_DESC_F_NEXT : 0));
			vh_desc_set(q, cur, bufs[i].gpa, bufs[i].len, flags,
				    i + 1 < total ? next[cur] : 0);
			if (i + 1 < total)
				cur = next[cur];
		}
		q->free_head = next[cur];
	}
	q->nr_free -= need;
	q->lens[head] = (uint16_t)need;
	vh_avail_push(q, head);
	return head;
}

bool
vh_queue_kick_needed(struct vh_queue *q, uint16_t old_avail)
{
	/* Full barrier: avail->idx before reading avail_event / flags. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->d->features & (1ULL << VIRTIO_RING_F_EVENT_IDX))
		return virtq_need_event(vh_avail_event(q), q->avail_idx,
					old_avail);
	return !(vh_used_flags(q) & VRING_USED_F_NO_NOTIFY);
}

void
vh_queue_kick(struct vh_dev *d, unsigned int qi)
{
	struct vh_queue *q = &d->q[qi];
	int fd;

	if (d->kick_by_eventfd) {
		/* What KVM does for a doorbell with an ioeventfd on it. */
		fd = virtio_queue_kick_fd(d->vdev, qi);
		if (fd >= 0 && write(fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
			return;
		return;
	}
	vh_mmio_write(d->m, q->notify_gpa, 2, qi);
}

int
vh_queue_get_used(struct vh_queue *q, uint16_t *id, uint32_t *len)
{
	uint16_t *next = q->lens + q->size;
	uint16_t idx, head, cur, n, i;
	const uint8_t *e;

	idx = vh_used_idx(q);
	if (idx == q->last_used)
		return 0;
	/* Acquire: the element after the index (the device's release). */
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	e = q->used + 4 + 8u * (q->last_used & (q->size - 1));
	head = (uint16_t)vh_ld32(e);
	*id = head;
	*len = vh_ld32(e + 4);
	q->last_used++;
	if (head < q->size && q->lens[head]) {
		n = q->lens[head];
		cur = head;
		for (i = 1; i < n; i++)
			cur = next[cur];
		next[cur] = q->free_head;
		q->free_head = head;
		q->nr_free += n;
		q->lens[head] = 0;
	}
	/* Ask for the next interrupt, as virtqueue_enable_cb does. */
	vh_set_used_event(q, q->last_used);
	return 1;
}

int
vh_queue_wait_used(struct vh_queue *q, uint16_t *id, uint32_t *len,
		   int timeout_ms)
{
	struct timespec start, now;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (vh_queue_get_used(q, id, len))
			return 1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		ms = (now.tv_sec - start.tv_sec) * 1000 +
		     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (ms >= timeout_ms)
			return 0;
		usleep(200);
	}
}
