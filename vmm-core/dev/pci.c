/* SPDX-License-Identifier: MIT */
#include "dev/pci.h"
#include "layout.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PCI_CONFIG_ENABLE	0x80000000u
/* CONFIG_ADDRESS keeps enable, bus, device, function and register. */
#define PCI_CONFIG_ADDR_MASK	0x80fffffcu
#define PCI_IO_SPACE_END	0x10000ULL
#define PCI_ROM_MIN_SIZE	2048u
#define PCI_CAP_START		PCI_STD_HEADER_SIZEOF

/* Offsets into the host's port range. */
#define PCI_PORT_ADDR		(PORT_PCI_CONFIG_ADDR - PORT_PCI_CONFIG_ADDR)
#define PCI_PORT_RESET		(PORT_RESET_CONTROL - PORT_PCI_CONFIG_ADDR)
#define PCI_PORT_DATA		(PORT_PCI_CONFIG_DATA - PORT_PCI_CONFIG_ADDR)

#define PCI_COMMAND_WRITABLE (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | \
			      PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | \
			      PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
#define PCI_STATUS_W1C (PCI_STATUS_DETECTED_PARITY | \
			PCI_STATUS_SIG_SYSTEM_ERROR | \
			PCI_STATUS_REC_MASTER_ABORT | \
			PCI_STATUS_REC_TARGET_ABORT | \
			PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_PARITY)

struct pci_host {
	pthread_mutex_t lock;	/* config_addr, reset_ctl and the slots */
	struct bus *pio;
	struct bus *mmio;
	struct platform_ops ops;
	bool registered;
	uint32_t config_addr;
	uint8_t reset_ctl;
	struct pci_device *slots[PCI_MAX_SLOTS];
	struct pci_device bridge;
};

static bool
pci_is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

void
pci_device_init(struct pci_device *dev, const char *name, uint16_t vendor_id,
		uint16_t device_id, uint32_t class_code, uint8_t revision)
{
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	dev->slot = -1;
	dev->cap_next = PCI_CAP_START;
	pci_cfg_set16(dev, PCI_VENDOR_ID, vendor_id);
	pci_cfg_set16(dev, PCI_DEVICE_ID, device_id);
	pci_cfg_set32(dev, PCI_CLASS_REVISION, class_code << 8 | revision);
	pci_cfg_set8(dev, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
	pci_wmask_set(dev, PCI_COMMAND, 2, PCI_COMMAND_WRITABLE);
	dev->w1cmask[PCI_STATUS] = PCI_STATUS_W1C & 0xff;
	dev->w1cmask[PCI_STATUS + 1] = PCI_STATUS_W1C >> 8;
	pci_wmask_set(dev, PCI_CACHE_LINE_SIZE, 1, 0xff);
	pci_wmask_set(dev, PCI_LATENCY_TIMER, 1, 0xff);
	pci_wmask_set(dev, PCI_INTERRUPT_LINE, 1, 0xff);
}

int
pci_add_capability(struct pci_device *dev, uint8_t cap_id, uint32_t size)
{
	uint32_t off;

	if (dev->host)
		return -EBUSY;
	if (size < 2)
		return -EINVAL;
	off = dev->cap_next < PCI_CAP_START ? PCI_CAP_START : dev->cap_next;
	off = (off + 3) & ~3u;
	if (size > PCI_CFG_SPACE_SIZE || off + size > PCI_CFG_SPACE_SIZE)
		return -ENOSPC;
	pci_cfg_set8(dev, off + PCI_CAP_LIST_ID, cap_id);
	pci_cfg_set8(dev, off + PCI_CAP_LIST_NEXT, 0);
	if (dev->cap_last)
		pci_cfg_set8(dev, dev->cap_last + PCI_CAP_LIST_NEXT,
			     (uint8_t)off);
	else
		pci_cfg_set8(dev, PCI_CAPABILITY_LIST, (uint8_t)off);
	dev->cap_last = (uint8_t)off;
	dev->cap_next = (uint16_t)(off + size);
	pci_cfg_set16(dev, PCI_STATUS,
		      pci_cfg_get16(dev, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	return (int)off;
}

/* The address a BAR decodes now, from cfg. */
static uint64_t
pci_bar_address(const struct pci_device *dev, int i)
{
	const struct pci_bar *bar = &dev->bars[i];
	uint32_t lo = pci_cfg_get32(dev, PCI_BASE_ADDRESS_0 + 4 * i);
	uint64_t a;

	if (bar->is_io)
		return lo & PCI_BASE_ADDRESS_IO_MASK;
	a = lo & PCI_BASE_ADDRESS_MEM_MASK;
	if (bar->is_64bit)
		a |= (uint64_t)pci_cfg_get32(dev, PCI_BASE_ADDRESS_0 +
					     4 * (i + 1)) << 32;
	return a;
}

/*
 * Whether [addr, addr + size) is somewhere a BAR can decode. Address 0
 * means "not assigned" to every OS and firmware we know of.
 */
static bool
pci_range_valid(uint64_t addr, uint64_t size, bool is_io, bool is_64bit)
{
	if (addr == 0 || addr + size < addr || addr + size == 0)
		return false;
	if (is_io)
		return addr + size <= PCI_IO_SPACE_END;
	if (!is_64bit)
		return addr + size <= (1ULL << 32);
	return true;
}

/*
 * Put a range where the guest wants it, or take it away. On a clash the
 * range stays unmapped (and is retried on the next config write); the
 * first clash of each BAR is logged, since a guest can cause it at will.
 */
static void
pci_place(struct bus *bus, const char *what, const char *name, int idx,
	  bool want, uint64_t addr, uint64_t size, bus_io_fn fn, void *opaque,
	  uint64_t *cur, bool *mapped, bool *logged)
{
	int r;

	if (*mapped && (!want || *cur != addr)) {
		bus_unregister(bus, *cur);
		*mapped = false;
	}
	if (!want || *mapped)
		return;
	r = bus_register(bus, addr, size, fn, opaque, name);
	if (r == 0) {
		*cur = addr;
		*mapped = true;
		return;
	}
	if (!*logged) {
		*logged = true;
		log_warn("pci: %s: %s%d at 0x%llx (size 0x%llx) left unmapped: %s",
			 name ? name : "device", what, idx,
			 (unsigned long long)addr, (unsigned long long)size,
			 strerror(-r));
	}
}

static void
pci_rom_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	   bool is_write)
{
	const struct pci_device *dev = opaque;
	uint32_t i;

	if (is_write)
		return;
	for (i = 0; i < len; i++) {
		uint64_t at = offset + i;

		data[i] = at < dev->rom.size ?
			  ((const uint8_t *)dev->rom.data)[at] : 0xff;
	}
}

/* Bring the bus in line with COMMAND and the BARs. Holds dev->lock. */
static void
pci_update_mappings(struct pci_device *dev)
{
	struct pci_host *h = dev->host;
	uint16_t cmd = pci_cfg_get16(dev, PCI_COMMAND);
	uint32_t rom;
	uint64_t addr;
	bool want;
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		struct pci_bar *bar = &dev->bars[i];

		if (bar->size == 0)
			continue;
		addr = pci_bar_address(dev, i);
		want = (cmd & (bar->is_io ? PCI_COMMAND_IO :
			       PCI_COMMAND_MEMORY)) &&
		       pci_range_valid(addr, bar->size, bar->is_io,
				       bar->is_64bit);
		pci_place(bar->is_io ? h->pio : h->mmio, "BAR", dev->name, i,
			  want, addr, bar->size, bar->fn, bar->opaque,
			  &bar->addr, &bar->mapped, &bar->overlap_logged);
	}
	if (!dev->rom.data)
		return;
	rom = pci_cfg_get32(dev, PCI_ROM_ADDRESS);
	addr = rom & PCI_ROM_ADDRESS_MASK;
	want = (cmd & PCI_COMMAND_MEMORY) && (rom & PCI_ROM_ADDRESS_ENABLE) &&
	       pci_range_valid(addr, dev->rom.bar_size, false, false);
	pci_place(h->mmio, "ROM", dev->name, 0, want, addr, dev->rom.bar_size,
		  pci_rom_io, dev, &dev->rom.addr, &dev->rom.mapped,
		  &dev->rom.overlap_logged);
}

static uint32_t
pci_dev_cfg_read(struct pci_device *dev, uint32_t off, uint32_t len)
{
	uint32_t v = 0, i;

	pthread_mutex_lock(&dev->lock);
	for (i = 0; i < len; i++)
		v |= (uint32_t)pci_cfg_get8(dev, off + i) << (8 * i);
	if (dev->cfg_read)
		dev->cfg_read(dev, off, len, &v);
	pthread_mutex_unlock(&dev->lock);
	return v;
}

static void
pci_dev_cfg_write(struct pci_device *dev, uint32_t off, uint32_t len,
		  uint32_t v)
{
	uint32_t i;

	pthread_mutex_lock(&dev->lock);
	for (i = 0; i < len; i++) {
		uint32_t o = (off + i) & 0xff;
		uint8_t b = (v >> (8 * i)) & 0xff;

		dev->cfg[o] = (dev->cfg[o] & ~dev->wmask[o]) |
			      (b & dev->wmask[o]);
		dev->cfg[o] &= ~(b & dev->w1cmask[o]);
	}
	/*
	 * COMMAND, a BAR or the ROM BAR may have changed; and any write
	 * retries a range that clashed before, the other may be gone now.
	 */
	pci_update_mappings(dev);
	if (dev->cfg_write)
		dev->cfg_write(dev, off, len, v);
	pthread_mutex_unlock(&dev->lock);
}

/* The device CONFIG_ADDRESS selects, or NULL. Returns the register. */
static struct pci_device *
pci_host_select(struct pci_host *h, uint32_t *ret_reg)
{
	struct pci_device *dev = NULL;
	uint32_t a;

	pthread_mutex_lock(&h->lock);
	a = h->config_addr;
	if ((a & PCI_CONFIG_ENABLE) && ((a >> 16) & 0xff) == 0 &&
	    ((a >> 8) & 0x7) == 0)
		dev = h->slots[(a >> 11) & 0x1f];
	pthread_mutex_unlock(&h->lock);
	*ret_reg = a & 0xfc;
	/* Devices are only ever added, so the pointer stays good. */
	return dev;
}

static void
pci_host_data(struct pci_host *h, uint32_t off, uint8_t *data, uint32_t len,
	      bool is_write)
{
	struct pci_device *dev;
	uint32_t reg, v = 0, i;

	dev = pci_host_select(h, &reg);
	reg += off;
	if (is_write) {
		if (!dev)
			return;	/* nobody there: master abort, ignored */
		for (i = 0; i < len; i++)
			v |= (uint32_t)data[i] << (8 * i);
		pci_dev_cfg_write(dev, reg, len, v);
		return;
	}
	v = dev ? pci_dev_cfg_read(dev, reg, len) : 0xffffffffu;
	for (i = 0; i < len; i++)
		data[i] = (v >> (8 * i)) & 0xff;
}

static void
pci_host_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	    bool is_write)
{
	struct pci_host *h = opaque;
	bool reset = false;
	uint32_t i, v;

	if (offset == PCI_PORT_ADDR && len == 4) {
		pthread_mutex_lock(&h->lock);
		if (is_write) {
			v = data[0] | data[1] << 8 | data[2] << 16 |
			    (uint32_t)data[3] << 24;
			h->config_addr = v & PCI_CONFIG_ADDR_MASK;
		} else {
			for (i = 0; i < 4; i++)
				data[i] = (h->config_addr >> (8 * i)) & 0xff;
		}
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (offset == PCI_PORT_RESET && len == 1) {
		pthread_mutex_lock(&h->lock);
		if (is_write) {
			h->reset_ctl = data[0];
			reset = data[0] & PCI_RESET_CONTROL_RESET;
		} else {
			data[0] = h->reset_ctl;
		}
		pthread_mutex_unlock(&h->lock);
		if (reset)
			platform_request_stop(&h->ops, VM_STOP_REBOOT);
		return;
	}
	if (offset >= PCI_PORT_DATA && offset - PCI_PORT_DATA + len <= 4) {
		pci_host_data(h, (uint32_t)(offset - PCI_PORT_DATA), data, len,
			      is_write);
		return;
	}
	/*
	 * Byte and word accesses to 0xCF8-0xCFB other than 0xCF9 are not
	 * the address register (mechanism #2 probes poke there), and an
	 * access across 0xCFF is nothing either.
	 */
	if (!is_write)
		for (i = 0; i < len; i++)
			data[i] = 0xff;
}

static int
pci_check_bars(const struct pci_device *dev)
{
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		const struct pci_bar *bar = &dev->bars[i];

		if (bar->size == 0)
			continue;
		if (!pci_is_pow2(bar->size) || !bar->fn)
			return -EINVAL;
		if (bar->is_io) {
			if (bar->is_64bit || bar->prefetchable ||
			    bar->size < 4 || bar->size > 256)
				return -EINVAL;
			continue;
		}
		if (bar->size < 16)
			return -EINVAL;
		if (!bar->is_64bit) {
			if (bar->size > (1ULL << 31))
				return -EINVAL;
			continue;
		}
		if (bar->size > (1ULL << 63) || i == PCI_STD_NUM_BARS - 1 ||
		    dev->bars[i + 1].size != 0)
			return -EINVAL;
		i++;	/* the top half */
	}
	if (dev->rom.data &&
	    (dev->rom.size == 0 || dev->rom.size > PCI_ROM_MAX_SIZE))
		return -EINVAL;
	return 0;
}

/* Type bits and writable masks of the BAR and ROM registers. */
static void
pci_setup_bars(struct pci_device *dev)
{
	uint64_t mask;
	uint32_t off, type;
	int i;

	for (i = 0; i < PCI_STD_NUM_BARS; i++) {
		const struct pci_bar *bar = &dev->bars[i];

		off = PCI_BASE_ADDRESS_0 + 4 * i;
		if (bar->size == 0) {
			pci_cfg_set32(dev, off, 0);
			pci_wmask_set(dev, off, 4, 0);
			continue;
		}
		mask = ~(bar->size - 1);
		if (bar->is_io) {
			type = PCI_BASE_ADDRESS_SPACE_IO;
			pci_wmask_set(dev, off, 4,
				      (uint32_t)mask & PCI_BASE_ADDRESS_IO_MASK);
		} else {
			type = PCI_BASE_ADDRESS_SPACE_MEMORY;
			if (bar->is_64bit)
				type |= PCI_BASE_ADDRESS_MEM_TYPE_64;
			if (bar->prefetchable)
				type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
			pci_wmask_set(dev, off, 4,
				      (uint32_t)mask & PCI_BASE_ADDRESS_MEM_MASK);
		}
		pci_cfg_set32(dev, off, type);
		if (bar->is_64bit) {
			i++;
			pci_cfg_set32(dev, off + 4, 0);
			pci_wmask_set(dev, off + 4, 4, (uint32_t)(mask >> 32));
		}
	}
	pci_cfg_set32(dev, PCI_ROM_ADDRESS, 0);
	if (!dev->rom.data) {
		pci_wmask_set(dev, PCI_ROM_ADDRESS, 4, 0);
		return;
	}
	dev->rom.bar_size = PCI_ROM_MIN_SIZE;
	while (dev->rom.bar_size < dev->rom.size)
		dev->rom.bar_size <<= 1;
	pci_wmask_set(dev, PCI_ROM_ADDRESS, 4,
		      ((uint32_t)~(dev->rom.bar_size - 1) &
		       PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE);
}

static int
pci_attach(struct pci_host *h, struct pci_device *dev, int slot)
{
	int r;

	r = pci_check_bars(dev);
	if (r < 0)
		return r;
	pthread_mutex_lock(&h->lock);
	if (dev->host) {
		r = -EBUSY;
		goto out;
	}
	if (slot < 0) {
		for (slot = 1; slot < PCI_MAX_SLOTS && h->slots[slot]; slot++)
			;
		if (slot == PCI_MAX_SLOTS) {
			r = -ENOSPC;
			goto out;
		}
	} else if (h->slots[slot]) {
		r = -EBUSY;
		goto out;
	}
	r = -pthread_mutex_init(&dev->lock, NULL);
	if (r < 0)
		goto out;
	pci_setup_bars(dev);
	dev->host = h;
	dev->slot = slot;
	h->slots[slot] = dev;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

int
pci_host_free_slot(struct pci_host *h)
{
	int slot;

	if (!h)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	for (slot = 1; slot < PCI_MAX_SLOTS && h->slots[slot]; slot++)
		;
	pthread_mutex_unlock(&h->lock);
	return slot < PCI_MAX_SLOTS ? slot : -ENOSPC;
}

int
pci_add_device(struct pci_host *h, struct pci_device *dev, int slot)
{
	/* Slot 0 is the host bridge's. */
	if (!h || !dev || slot == 0 || slot < -1 || slot >= PCI_MAX_SLOTS)
		return -EINVAL;
	return pci_attach(h, dev, slot);
}

struct pci_host *
pci_host_new(struct bus *pio, struct bus *mmio, const struct platform_ops *p)
{
	struct pci_host *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->pio = pio;
	h->mmio = mmio;
	if (p)
		h->ops = *p;
	r = pthread_mutex_init(&h->lock, NULL);
	if (r != 0) {
		free(h);
		errno = r;
		return NULL;
	}
	pci_device_init(&h->bridge, "pci-host-bridge", PCI_HOST_VENDOR_ID,
			PCI_HOST_DEVICE_ID, PCI_HOST_CLASS, 0);
	pci_cfg_set16(&h->bridge, PCI_SUBSYSTEM_VENDOR_ID,
		      PCI_HOST_SUBSYS_VENDOR_ID);
	pci_cfg_set16(&h->bridge, PCI_SUBSYSTEM_ID, PCI_HOST_SUBSYS_ID);
	/* PAM0 holds only the 0xF0000 segment's bits, the others two each. */
	h->bridge.wmask[PCI_HOST_PAM0] = 0x30;
	memset(&h->bridge.wmask[PCI_HOST_PAM0 + 1], 0x33, PCI_HOST_NR_PAM - 1);
	r = pci_attach(h, &h->bridge, 0);
	if (r < 0)
		goto fail;
	r = bus_register(pio, PORT_PCI_CONFIG_ADDR, PCI_HOST_NR_PORTS,
			 pci_host_io, h, "pci-host");
	if (r < 0)
		goto fail;
	h->registered = true;
	return h;
fail:
	pci_host_free(h);
	errno = -r;
	return NULL;
}

void
pci_host_free(struct pci_host *h)
{
	int s, i;

	if (!h)
		return;
	if (h->registered)
		bus_unregister(h->pio, PORT_PCI_CONFIG_ADDR);
	for (s = 0; s < PCI_MAX_SLOTS; s++) {
		struct pci_device *dev = h->slots[s];

		if (!dev)
			continue;
		for (i = 0; i < PCI_STD_NUM_BARS; i++) {
			struct pci_bar *bar = &dev->bars[i];

			if (bar->mapped)
				bus_unregister(bar->is_io ? h->pio : h->mmio,
					       bar->addr);
			bar->mapped = false;
		}
		if (dev->rom.mapped)
			bus_unregister(h->mmio, dev->rom.addr);
		dev->rom.mapped = false;
		pthread_mutex_destroy(&dev->lock);
		dev->host = NULL;
		dev->slot = -1;
		h->slots[s] = NULL;
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
}
