/* SPDX-License-Identifier: MIT */
/*
 * The PCI host bridge: configuration mechanism #1 on ports 0xCF8-0xCFF
 * (CONFIG_ADDRESS, CONFIG_DATA, and the reset control register at 0xCF9),
 * one bus (bus 0), single-function devices. Device 0 is the host bridge
 * itself.
 *
 * A device is a struct pci_device embedded in its own state: its
 * configuration space (cfg), which bits of it the guest may write (wmask,
 * and w1cmask for write-one-to-clear bits), its BARs and an optional
 * expansion ROM. The host does the generic part: config accesses, BAR
 * sizing, and putting each BAR's range on the MMIO or port-I/O bus (with
 * the device's handler, which gets offsets into the BAR) whenever the guest
 * has set an address and enabled decoding in COMMAND, moving or removing it
 * as the guest reprograms it. A device never knows where its BARs are.
 *
 * Setting up a device:
 *	pci_device_init(&d->pci, "virtio-blk", 0x1af4, 0x1042, 0x018000, 1);
 *	pci_cfg_set16(&d->pci, PCI_SUBSYSTEM_ID, 2);
 *	d->pci.bars[0] = (struct pci_bar){ .size = 0x4000, .is_64bit = true,
 *					   .fn = my_bar_io, .opaque = d };
 *	off = pci_add_capability(&d->pci, PCI_CAP_ID_VNDR, 16);
 *	... fill cfg[off + 2..], set wmask bits the guest may write ...
 *	d->pci.cfg_write = my_cfg_write;	(optional)
 *	r = pci_add_device(host, &d->pci, -1);
 * Register names and bits are those of <linux/pci_regs.h>.
 */
#ifndef VMM_DEV_PCI_H
#define VMM_DEV_PCI_H

#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "platform.h"

#define PCI_MAX_SLOTS		32
#define PCI_HOST_NR_PORTS	8	/* 0xCF8-0xCFF */
#define PCI_RESET_CONTROL_RESET	0x04	/* 0xCF9 bit 2: reset the CPU */
#define PCI_ROM_MAX_SIZE	(16u << 20)

/*
 * The host bridge at 00:00.0 looks like the i440FX of QEMU's "pc" machine:
 * SeaBIOS (Debian's QEMU build) takes its platform set-up from that id and
 * recognises a virtual machine, and only then reads fw_cfg, by the
 * subsystem ids 1af4:1100. A Q35 id would send it to set up MMCONFIG, which
 * this platform does not have.
 */
#define PCI_HOST_VENDOR_ID	0x8086	/* Intel */
#define PCI_HOST_DEVICE_ID	0x1237	/* 82441FX PMC (i440FX) */
#define PCI_HOST_CLASS		0x060000
#define PCI_HOST_SUBSYS_VENDOR_ID 0x1af4	/* Red Hat */
#define PCI_HOST_SUBSYS_ID	0x1100		/* QEMU virtual machine */
/*
 * The i440FX's PAM registers (0x59-0x5F) steer 0xC0000-0xFFFFF between ROM
 * and shadow RAM. Here that range is always RAM, read-write (see
 * x86/firmware.h); the registers only keep what the guest wrote, which is
 * all SeaBIOS needs to unlock and lock its shadow copy.
 */
#define PCI_HOST_PAM0		0x59
#define PCI_HOST_NR_PAM		7

struct pci_device;
struct pci_host;

struct pci_bar {
	/* Described by the device before pci_add_device(). */
	uint64_t size;		/* power of two; 0: not implemented */
	bool is_io;		/* port I/O: 4 to 256 bytes */
	bool is_64bit;		/* memory only; the next BAR is its top half */
	bool prefetchable;	/* memory only */
	bus_io_fn fn;		/* gets offsets into the BAR */
	void *opaque;
	/* Kept by the host, under the device lock. */
	uint64_t addr;		/* where the range is registered, if mapped */
	bool mapped;
	bool overlap_logged;
};

/* An expansion ROM, served read-only from memory through the ROM BAR. */
struct pci_rom {
	const void *data;	/* borrowed; NULL: no ROM BAR */
	size_t size;		/* bytes of data, at most PCI_ROM_MAX_SIZE */
	/* Kept by the host. */
	uint64_t bar_size;	/* size rounded up to a power of two, >= 2 KiB */
	uint64_t addr;
	bool mapped;
	bool overlap_logged;
};

/*
 * Called after the generic handling of a guest config write (cfg already
 * updated, BARs already moved), with the offset, length (1, 2, 4) and value
 * as the guest wrote them.
 */
typedef void (*pci_cfg_write_fn)(struct pci_device *dev, uint32_t offset,
				 uint32_t len, uint32_t value);
/*
 * Called on a guest config read with *value already read from cfg; the
 * hook may replace it.
 */
typedef void (*pci_cfg_read_fn)(struct pci_device *dev, uint32_t offset,
				uint32_t len, uint32_t *value);

struct pci_device {
	uint8_t cfg[PCI_CFG_SPACE_SIZE];	/* little-endian */
	uint8_t wmask[PCI_CFG_SPACE_SIZE];	/* bits the guest may write */
	uint8_t w1cmask[PCI_CFG_SPACE_SIZE];	/* bits a written 1 clears */
	struct pci_bar bars[PCI_STD_NUM_BARS];
	struct pci_rom rom;
	/*
	 * Optional hooks. They run on a vCPU thread with dev->lock held: they
	 * may read and change cfg, and must not call pci_* functions that
	 * take the lock (none of the inline accessors below does).
	 */
	pci_cfg_write_fn cfg_write;
	pci_cfg_read_fn cfg_read;
	void *opaque;		/* for the hooks' use */
	const char *name;	/* borrowed, for logs and bus ranges */

	/*
	 * Kept by the host. After pci_add_device(), lock guards cfg and the
	 * BAR state: other threads that read or change cfg take it.
	 */
	pthread_mutex_t lock;
	struct pci_host *host;
	int slot;
	uint16_t cap_next;	/* where the next capability goes */
	uint8_t cap_last;	/* the last capability in the list, or 0 */
};

static inline uint8_t
pci_cfg_get8(const struct pci_device *d, uint32_t off)
{
	return d->cfg[off & 0xff];
}

static inline uint16_t
pci_cfg_get16(const struct pci_device *d, uint32_t off)
{
	return (uint16_t)(pci_cfg_get8(d, off) | pci_cfg_get8(d, off + 1) << 8);
}

static inline uint32_t
pci_cfg_get32(const struct pci_device *d, uint32_t off)
{
	return pci_cfg_get16(d, off) | (uint32_t)pci_cfg_get16(d, off + 2) << 16;
}

static inline void
pci_cfg_set8(struct pci_device *d, uint32_t off, uint8_t v)
{
	d->cfg[off & 0xff] = v;
}

static inline void
pci_cfg_set16(struct pci_device *d, uint32_t off, uint16_t v)
{
	pci_cfg_set8(d, off, v & 0xff);
	pci_cfg_set8(d, off + 1, v >> 8);
}

static inline void
pci_cfg_set32(struct pci_device *d, uint32_t off, uint32_t v)
{
	pci_cfg_set16(d, off, v & 0xffff);
	pci_cfg_set16(d, off + 2, v >> 16);
}

/* Let the guest write the bits of mask (len 1, 2 or 4 bytes at off). */
static inline void
pci_wmask_set(struct pci_device *d, uint32_t off, uint32_t len, uint32_t mask)
{
	uint32_t i;

	for (i = 0; i < len && i < 4; i++)
		d->wmask[(off + i) & 0xff] = (mask >> (8 * i)) & 0xff;
}

/*
 * Zero *dev and fill a type-0 header: ids, class code (base class, sub
 * class, programming interface: 0xBBSSPP), revision; the guest may write
 * COMMAND's enable bits, the cache line size, latency timer and interrupt
 * line, and clear STATUS error bits. The device then describes its BARs,
 * ROM and capabilities, and sets the interrupt pin if it has one.
 */
void pci_device_init(struct pci_device *dev, const char *name,
		     uint16_t vendor_id, uint16_t device_id,
		     uint32_t class_code, uint8_t revision);

/*
 * Append a capability of size bytes (including its ID and next bytes) to
 * the list, 4-byte aligned from 0x40; set its ID, link it, and set the
 * STATUS capability-list bit. The body is zero and read-only until the
 * device fills cfg and wmask. Only before pci_add_device(). Returns the
 * offset, -EINVAL for a size below 2, -ENOSPC when it does not fit,
 * -EBUSY once the device is on a host.
 */
int pci_add_capability(struct pci_device *dev, uint8_t cap_id, uint32_t size);

/*
 * Put dev on the host at slot (1-31), or the lowest free slot for -1, and
 * set dev->slot. The BAR registers and ROM BAR get their type bits and
 * writable masks from the descriptors; nothing is mapped until the guest
 * programs them. dev is borrowed and must stay put until pci_host_free().
 * Returns 0; -EINVAL for a bad slot or BAR/ROM description (size not a power
 * of two, I/O outside 4-256 bytes, memory below 16 bytes or a 32-bit one
 * above 2 GiB, a 64-bit BAR in BAR5 or over a described BAR, no handler);
 * -EBUSY when the slot is taken or dev is already on a host; -ENOSPC when
 * all slots are; or an error from pthread_mutex_init.
 */
int pci_add_device(struct pci_host *h, struct pci_device *dev, int slot);

/*
 * The lowest slot (1-31) nothing occupies now, for a device whose wiring
 * depends on its slot (its INTx line); -ENOSPC when all are taken. The
 * caller that adds devices is the one that decides: nothing else may add
 * one between this and its pci_add_device().
 */
int pci_host_free_slot(struct pci_host *h);

/*
 * Create the host bridge: register 0xCF8-0xCFF on pio; BARs go on pio and
 * mmio. *p is copied; p may be NULL (0xCF9 resets then do nothing), and
 * p->opaque must outlive the host. Returns a new reference, or NULL with
 * errno set (EEXIST when the ports are taken, ENOMEM).
 */
struct pci_host *pci_host_new(struct bus *pio, struct bus *mmio,
			      const struct platform_ops *p);

/*
 * Unmap every BAR and ROM, unregister the ports and free the host. The
 * devices (the caller's) are detached and may be freed afterwards. NULL is
 * a no-op.
 */
void pci_host_free(struct pci_host *h);

#endif
