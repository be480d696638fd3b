/* SPDX-License-Identifier: MIT */
/*
 * A host-side virtio driver for tests: the test plays the guest's driver
 * on plain guest memory, with no KVM, exactly as Linux's virtio_pci_modern
 * does it: PCI enumeration through 0xCF8/0xCFC, BAR sizing and placement,
 * the vendor capability walk, reset / ACKNOWLEDGE / DRIVER / features /
 * FEATURES_OK, queues in guest memory with MSI-X vectors, DRIVER_OK; then
 * chains (direct and indirect), kicks (the doorbell through the MMIO bus,
 * or the queue's eventfd directly as KVM's ioeventfd would) and waits for
 * used entries and the vector's eventfd.
 *
 * It also lets a test write rings by hand (vh_desc_set, vh_avail_push,
 * vh_avail_set_idx, ...) to build loops, out-of-range addresses, oversized
 * chains and bogus indices.
 *
 * Functions return 0 (or a value) on success and a negative errno on
 * failure; none of them aborts, so tests assert on what they return.
 *
 * Typical use (see tests/unit/test_virtio_pci.c):
 *	vh_machine_init(&m, 64 << 20);
 *	... my_device_new(&m.mem) -> vdev, virtio_device_init(vdev, 256) ...
 *	vh_machine_add(&m, vdev, &vp);             (virtio_pci_new)
 *	vh_dev_probe(&d, &m, vp);                  (enumerate, BARs, caps)
 *	vh_dev_negotiate(&d, wanted_features);     (reset .. FEATURES_OK)
 *	vh_dev_msix_enable(&d);
 *	vh_queue_setup(&d, 0, 128, 1);             (queue 0, vector 1)
 *	vh_dev_driver_ok(&d);
 *	head = vh_queue_add(&d.q[0], bufs, 1, 1, false);
 *	vh_queue_kick(&d, 0);
 *	vh_wait_irq(&d, 1, 1000); vh_queue_get_used(&d.q[0], &id, &len);
 */
#ifndef TESTS_VIRTIO_HARNESS_H
#define TESTS_VIRTIO_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "dev/pci.h"
#include "mem.h"
#include "virtio/virtio.h"
#include "virtio/virtio_pci.h"

#define VH_RAM_ALLOC_START	0x100000ULL	/* the bump allocator's base */
#define VH_INDIRECT_MAX		64		/* entries per indirect table */
#define VH_MSI_ADDR		0xfee00000ULL	/* what the harness programs */

/* A guest machine without KVM: RAM, buses, the PCI host bridge. */
struct vh_machine {
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct pci_host *host;
	uint64_t alloc_next;		/* bump allocator in guest RAM */
	uint64_t mmio32_next;		/* where the next 32-bit BAR goes */
	uint64_t mmio64_next;		/* where the next 64-bit BAR goes */
	bool bars64_low;		/* put 64-bit BARs below 4 GiB */
};

int vh_machine_init(struct vh_machine *m, uint64_t ram_size);
/* Frees the PCI host (detaching every device) and RAM. The devices and
 * transports are the test's: destroy them after this. */
void vh_machine_destroy(struct vh_machine *m);

/* Allocate len bytes of zeroed guest RAM aligned to align; 0 when full. */
uint64_t vh_alloc(struct vh_machine *m, uint64_t len, uint64_t align);
/* Host pointer to guest RAM (NULL outside): for filling buffers. */
void *vh_ptr(struct vh_machine *m, uint64_t gpa, uint64_t len);

/* Port I/O and MMIO as a vCPU would do them; unowned reads give ~0. */
uint64_t vh_pio_read(struct vh_machine *m, uint16_t port, uint32_t len);
void vh_pio_write(struct vh_machine *m, uint16_t port, uint32_t len,
		  uint64_t v);
uint64_t vh_mmio_read(struct vh_machine *m, uint64_t gpa, uint32_t len);
void vh_mmio_write(struct vh_machine *m, uint64_t gpa, uint32_t len,
		   uint64_t v);

/* Config mechanism #1, bus 0, function 0. */
uint32_t vh_cfg_read(struct vh_machine *m, int slot, uint32_t reg,
		     uint32_t len);
void vh_cfg_write(struct vh_machine *m, int slot, uint32_t reg, uint32_t len,
		  uint32_t v);

/* virtio_pci_new() on the machine's host, in any free slot, no sink. */
int vh_machine_add(struct vh_machine *m, struct virtio_device *vdev,
		   struct virtio_pci **ret);

/* A virtio structure found through a vendor capability. */
struct vh_cap {
	bool present;
	uint8_t cap_off;	/* where in config space */
	uint8_t cap_len;
	uint8_t bar;
	uint32_t offset;
	uint32_t length;
	uint64_t gpa;		/* BAR address + offset */
};

/* The driver's view of one queue; desc/avail/used are host pointers. */
struct vh_queue {
	struct vh_dev *d;
	unsigned int index;
	uint16_t size;
	uint16_t vector;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint64_t indirect_gpa;		/* size tables of VH_INDIRECT_MAX */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	uint16_t notify_off;
	uint64_t notify_gpa;
	/* Driver-side state, as Linux keeps it. */
	uint16_t free_head;
	unsigned int nr_free;
	uint16_t avail_idx;		/* next avail index to publish */
	uint16_t last_used;		/* next used entry to read */
	uint16_t *lens;			/* descriptors per head */
	bool ready;
};

struct vh_dev {
	struct vh_machine *m;
	struct virtio_pci *vp;		/* for the eventfds only */
	struct virtio_device *vdev;
	int slot;
	uint16_t vendor_id, device_id, subsys_vendor, subsys_id;
	uint8_t revision;
	uint32_t class_code;
	uint64_t bar_addr[PCI_STD_NUM_BARS];
	uint64_t bar_size[PCI_STD_NUM_BARS];
	bool bar_64[PCI_STD_NUM_BARS];
	bool bar_prefetch[PCI_STD_NUM_BARS];
	struct vh_cap common, notify, isr, device, pcicfg;
	uint32_t notify_mult;
	uint8_t msix_cap;
	uint16_t msix_size;		/* table entries */
	uint8_t msix_table_bar, msix_pba_bar;
	uint32_t msix_table_off, msix_pba_off;
	uint16_t num_queues;
	uint64_t device_features;
	uint64_t features;		/* negotiated */
	bool kick_by_eventfd;		/* kick as KVM's ioeventfd would */
	struct vh_queue q[VIRTIO_MAX_QUEUES];
};

/*
 * Enumerate vp's function: ids, BAR sizing and placement (memory decoding
 * and bus mastering on), the capability list. 0 or a negative errno
 * (-ENODEV: nothing at the slot; -EPROTO: a required capability missing).
 */
int vh_dev_probe(struct vh_dev *d, struct vh_machine *m,
		 struct virtio_pci *vp);
/* Release queue bookkeeping (guest memory is the machine's). */
void vh_dev_release(struct vh_dev *d);

/* Registers through the capabilities, by MMIO. */
uint64_t vh_common_read(struct vh_dev *d, uint32_t off, uint32_t len);
void vh_common_write(struct vh_dev *d, uint32_t off, uint32_t len,
		     uint64_t v);
uint8_t vh_dev_status(struct vh_dev *d);
void vh_dev_set_status(struct vh_dev *d, uint8_t status);
uint8_t vh_isr_read(struct vh_dev *d);
uint64_t vh_devcfg_read(struct vh_dev *d, uint32_t off, uint32_t len);
void vh_devcfg_write(struct vh_dev *d, uint32_t off, uint32_t len,
		     uint64_t v);

/*
 * Reset (waiting for the status to read 0), ACKNOWLEDGE, DRIVER, read the
 * device features, write wanted & offered, FEATURES_OK, read it back.
 * 0; -ENOTSUP when the device did not keep FEATURES_OK. With force, write
 * wanted as is, even bits the device did not offer.
 */
int vh_dev_negotiate(struct vh_dev *d, uint64_t wanted, bool force);
int vh_dev_driver_ok(struct vh_dev *d);
/* Writes 0 to the status; returns once it reads back 0. */
int vh_dev_reset(struct vh_dev *d);

/* MSI-X: program every entry (VH_MSI_ADDR, data = vector), unmask all,
 * set enable. */
int vh_dev_msix_enable(struct vh_dev *d);
void vh_msix_mask(struct vh_dev *d, unsigned int vec, bool masked);
void vh_msix_function_mask(struct vh_dev *d, bool masked);
bool vh_msix_pending(struct vh_dev *d, unsigned int vec);
/* The message the table holds for vec. */
void vh_msix_entry(struct vh_dev *d, unsigned int vec, uint64_t *addr,
		   uint32_t *data, uint32_t *ctrl);

/*
 * Set up queue q: size (0: the device's maximum), rings allocated in
 * guest memory, vector (VIRTIO_NO_VECTOR for none), queue_enable. Returns
 * 0; -EINVAL when q does not exist; -EIO when the device refused the
 * vector (read back NO_VECTOR) or the enable.
 */
int vh_queue_setup(struct vh_dev *d, unsigned int q, uint16_t size,
		   uint16_t vector);

struct vh_buf {
	uint64_t gpa;
	uint32_t len;
};

/*
 * Add a chain of nr_out readable then nr_in writable buffers, direct or
 * through an indirect table, and publish it. Returns the head, or -ENOSPC.
 */
int vh_queue_add(struct vh_queue *q, const struct vh_buf *bufs,
		 unsigned int nr_out, unsigned int nr_in, bool indirect);
/* Kick: doorbell write through the MMIO bus, or the eventfd directly. */
void vh_queue_kick(struct vh_dev *d, unsigned int q);
/* Whether the driver should kick now (EVENT_IDX / NO_NOTIFY), given the
 * avail index before the chains just added. */
bool vh_queue_kick_needed(struct vh_queue *q, uint16_t old_avail);
/*
 * Take the next used entry: 1 with *id and *len set (the chain's descriptors
 * are freed), 0 when none.
 */
int vh_queue_get_used(struct vh_queue *q, uint16_t *id, uint32_t *len);
/* Poll for a used entry up to timeout_ms. 1, or 0 on timeout. */
int vh_queue_wait_used(struct vh_queue *q, uint16_t *id, uint32_t *len,
		       int timeout_ms);

/*
 * Wait up to timeout_ms for vector vec's eventfd; returns the count read
 * (how many interrupts since the last read), 0 on timeout.
 */
uint64_t vh_wait_irq(struct vh_dev *d, unsigned int vec, int timeout_ms);

/* --- Raw ring access for hostile-guest tests ------------------------- */
void vh_desc_set(struct vh_queue *q, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);
/* Write a descriptor into an indirect table at table_gpa. */
void vh_indirect_set(struct vh_machine *m, uint64_t table_gpa, uint16_t i,
		     uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next);
/* Put head in the next available slot and publish (idx + 1). */
void vh_avail_push(struct vh_queue *q, uint16_t head);
void vh_avail_set_idx(struct vh_queue *q, uint16_t idx);
void vh_avail_set_flags(struct vh_queue *q, uint16_t flags);
void vh_set_used_event(struct vh_queue *q, uint16_t v);
uint16_t vh_used_idx(struct vh_queue *q);
uint16_t vh_used_flags(struct vh_queue *q);
uint16_t vh_avail_event(struct vh_queue *q);

#endif
