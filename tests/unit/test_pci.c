/* SPDX-License-Identifier: MIT */
/*
 * The PCI host bridge through ports 0xCF8/0xCFC as a guest drives it:
 * the host bridge's header, absent devices, BAR sizing and mapping onto
 * real MMIO and port-I/O buses, moving and disabling BARs, overlaps, the
 * capability list, writable masks, hooks, the expansion ROM and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "dev/pci.h"
#include "layout.h"
#include "platform.h"

struct access {
	int bar;
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint64_t value;
};

struct test_dev;

struct bar_ctx {
	struct test_dev *t;
	int bar;
};

struct test_dev {
	struct pci_device pci;
	struct bar_ctx ctx[PCI_STD_NUM_BARS];
	struct access log[32];
	unsigned int nr_log;
	/* What the cfg_write hook saw. */
	unsigned int hook_writes;
	uint32_t hook_off, hook_len, hook_val;
	uint16_t hook_saw_command;
};

struct fixture {
	struct bus pio;
	struct bus mmio;
	struct platform_ops ops;
	unsigned int stop_calls;
	enum vm_stop_reason stop;
	struct pci_host *h;
};

static void
fake_irq_line(void *opaque, uint32_t gsi, int level)
{
	(void)opaque;
	(void)gsi;
	(void)level;
	fail_msg("the host bridge raised an interrupt");
}

static void
fake_request_stop(void *opaque, enum vm_stop_reason r)
{
	struct fixture *f = opaque;

	f->stop_calls++;
	f->stop = r;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	assert_int_equal(bus_init(&f->mmio, "mmio"), 0);
	f->ops = (struct platform_ops){ fake_irq_line, fake_request_stop, f };
	f->h = pci_host_new(&f->pio, &f->mmio, &f->ops);
	assert_non_null(f->h);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	pci_host_free(f->h);
	/* Every BAR, ROM and port range went with the host. */
	assert_int_equal(f->pio.nr_ranges, 0);
	assert_int_equal(f->mmio.nr_ranges, 0);
	bus_destroy(&f->pio);
	bus_destroy(&f->mmio);
	free(f);
	return 0;
}

static void
io(struct fixture *f, uint16_t port, uint32_t len, uint32_t *v, bool wr)
{
	uint8_t d[4];
	uint32_t i;

	if (wr)
		for (i = 0; i < len; i++)
			d[i] = (*v >> (8 * i)) & 0xff;
	assert_true(bus_dispatch(&f->pio, port, d, len, wr));
	if (!wr) {
		*v = 0;
		for (i = 0; i < len; i++)
			*v |= (uint32_t)d[i] << (8 * i);
	}
}

static void
out(struct fixture *f, uint16_t port, uint32_t len, uint32_t v)
{
	io(f, port, len, &v, true);
}

static uint32_t
in(struct fixture *f, uint16_t port, uint32_t len)
{
	uint32_t v;

	io(f, port, len, &v, false);
	return v;
}

static uint32_t
cfg_addr(unsigned int bus, unsigned int dev, unsigned int fn, uint32_t reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

/* Linux's pci_conf1_read/write: address dword, data at 0xCFC + low bits. */
static uint32_t
cfg_read(struct fixture *f, unsigned int slot, uint32_t reg, uint32_t len)
{
	out(f, PORT_PCI_CONFIG_ADDR, 4, cfg_addr(0, slot, 0, reg));
	return in(f, (uint16_t)(PORT_PCI_CONFIG_DATA + (reg & 3)), len);
}

static void
cfg_write(struct fixture *f, unsigned int slot, uint32_t reg, uint32_t len,
	  uint32_t v)
{
	out(f, PORT_PCI_CONFIG_ADDR, 4, cfg_addr(0, slot, 0, reg));
	out(f, (uint16_t)(PORT_PCI_CONFIG_DATA + (reg & 3)), len, v);
}

static void
test_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	    bool is_write)
{
	struct bar_ctx *c = opaque;
	struct test_dev *t = c->t;
	struct access *a;
	uint32_t i;

	assert_true(t->nr_log < 32);
	a = &t->log[t->nr_log++];
	a->bar = c->bar;
	a->offset = offset;
	a->len = len;
	a->is_write = is_write;
	a->value = 0;
	for (i = 0; i < len; i++) {
		if (is_write)
			a->value |= (uint64_t)data[i] << (8 * i);
		else
			data[i] = (uint8_t)(0xa0 + c->bar * 0x10 + i);
	}
}

static void
test_dev_hook_write(struct pci_device *dev, uint32_t off, uint32_t len,
		    uint32_t value)
{
	struct test_dev *t = dev->opaque;

	t->hook_writes++;
	t->hook_off = off;
	t->hook_len = len;
	t->hook_val = value;
	t->hook_saw_command = pci_cfg_get16(dev, PCI_COMMAND);
}

static void
test_dev_hook_read(struct pci_device *dev, uint32_t off, uint32_t len,
		   uint32_t *value)
{
	(void)dev;
	/* A register that reads live: dword 0x48 counts up. */
	if (off == 0x48 && len == 4)
		*value = 0x12345678;
}

/*
 * BAR0 4 KiB mem32, BAR1-2 16 KiB mem64 prefetchable, BAR3 32 bytes I/O.
 * The tests keep their devices static: the host, freed in teardown after
 * the test returns, still points at them.
 */
static void
test_dev_init(struct test_dev *t, const char *name)
{
	int i;

	memset(t, 0, sizeof(*t));
	pci_device_init(&t->pci, name, 0x1af4, 0x1042, 0x018000, 1);
	pci_cfg_set16(&t->pci, PCI_SUBSYSTEM_VENDOR_ID, 0x1af4);
	pci_cfg_set16(&t->pci, PCI_SUBSYSTEM_ID, 0x0002);
	pci_cfg_set8(&t->pci, PCI_INTERRUPT_PIN, 1);
	for (i = 0; i < PCI_STD_NUM_BARS; i++)
		t->ctx[i] = (struct bar_ctx){ t, i };
	t->pci.bars[0] = (struct pci_bar){ .size = 4096, .fn = test_bar_io,
					   .opaque = &t->ctx[0] };
	t->pci.bars[1] = (struct pci_bar){ .size = 16384, .is_64bit = true,
					   .prefetchable = true,
					   .fn = test_bar_io,
					   .opaque = &t->ctx[1] };
	t->pci.bars[3] = (struct pci_bar){ .size = 32, .is_io = true,
					   .fn = test_bar_io,
					   .opaque = &t->ctx[3] };
	t->pci.opaque = t;
}

static void
test_host_bridge(void **state)
{
	struct fixture *f = *state;
	unsigned int slot;
	int found = -1;

	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 4), 0x12378086);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 2), 0x8086);
	assert_int_equal(cfg_read(f, 0, PCI_DEVICE_ID, 2), 0x1237);
	assert_int_equal(cfg_read(f, 0, 0, 1), 0x86);
	assert_int_equal(cfg_read(f, 0, 1, 1), 0x80);
	assert_int_equal(cfg_read(f, 0, 2, 1), 0x37);
	assert_int_equal(cfg_read(f, 0, 3, 1), 0x12);
	/* SeaBIOS knows a QEMU-like machine by these. */
	assert_int_equal(cfg_read(f, 0, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	assert_int_equal(cfg_read(f, 0, PCI_SUBSYSTEM_ID, 2), 0x1100);
	cfg_write(f, 0, PCI_SUBSYSTEM_VENDOR_ID, 4, 0);
	assert_int_equal(cfg_read(f, 0, PCI_SUBSYSTEM_VENDOR_ID, 4),
			 0x11001af4);
	assert_int_equal(cfg_read(f, 0, PCI_CLASS_REVISION, 4), 0x06000000);
	assert_int_equal(cfg_read(f, 0, PCI_CLASS_DEVICE, 2), 0x0600);
	assert_int_equal(cfg_read(f, 0, PCI_HEADER_TYPE, 1), 0);
	/* No BARs, no capabilities. */
	assert_int_equal(cfg_read(f, 0, PCI_BASE_ADDRESS_0, 4), 0);
	assert_int_equal(cfg_read(f, 0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST,
			 0);

	/* Linux's pci_sanity_check finds a host bridge on bus 0. */
	for (slot = 0; slot < 32; slot++)
		if (cfg_read(f, slot, PCI_CLASS_DEVICE, 2) == 0x0600) {
			found = (int)slot;
			break;
		}
	assert_int_equal(found, 0);
}

/*
 * The PAM registers keep what SeaBIOS writes, dword at a time as it does,
 * and only the bits an i440FX has; the bytes around them stay read-only.
 */
static void
test_host_bridge_pam(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, 0, 0x58, 4), 0);
	assert_int_equal(cfg_read(f, 0, 0x5c, 4), 0);
	/* Unlock: 0xC0000-0xEFFFF and 0xF0000 read-write. */
	cfg_write(f, 0, 0x58, 4, 0x333030ff);
	cfg_write(f, 0, 0x5c, 4, 0x33333333);
	assert_int_equal(cfg_read(f, 0, 0x58, 4), 0x33303000);
	assert_int_equal(cfg_read(f, 0, 0x5c, 4), 0x33333333);
	assert_int_equal(cfg_read(f, 0, PCI_HOST_PAM0, 1), 0x30);
	/* Lock: read-only. */
	cfg_write(f, 0, 0x58, 4, 0x11111000);
	assert_int_equal(cfg_read(f, 0, 0x58, 4), 0x11111000);
	cfg_write(f, 0, 0x58, 4, 0xff11ffff);
	assert_int_equal(cfg_read(f, 0, 0x58, 4), 0x33113000);
	cfg_write(f, 0, 0x5c, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 0, 0x5c, 4), 0x33333333);
	cfg_write(f, 0, 0x5c, 4, 0x11111111);
	assert_int_equal(cfg_read(f, 0, 0x5c, 4), 0x11111111);
	/* Byte writes, and nothing past PAM6 (0x5F) takes a write. */
	cfg_write(f, 0, 0x5f, 1, 0x22);
	assert_int_equal(cfg_read(f, 0, 0x5f, 1), 0x22);
	cfg_write(f, 0, 0x60, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 0, 0x60, 4), 0);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 4), 0x12378086);
}

static void
test_config_address_and_absent(void **state)
{
	struct fixture *f = *state;

	/* pci_check_type1: the address register reads back. */
	out(f, 0xcfb, 1, 0x01);
	out(f, PORT_PCI_CONFIG_ADDR, 4, 0x80000000);
	assert_int_equal(in(f, PORT_PCI_CONFIG_ADDR, 4), 0x80000000);
	/* The low two bits and the reserved ones are not kept. */
	out(f, PORT_PCI_CONFIG_ADDR, 4, 0xff00f803);
	assert_int_equal(in(f, PORT_PCI_CONFIG_ADDR, 4), 0x8000f800);

	/* pci_check_type2 must fail: those bytes are not registers. */
	out(f, 0xcfb, 1, 0x00);
	out(f, 0xcf8, 1, 0x00);
	out(f, 0xcfa, 1, 0x00);
	assert_int_equal(in(f, 0xcf8, 1), 0xff);
	assert_int_equal(in(f, 0xcfa, 1), 0xff);
	assert_int_equal(in(f, 0xcf8, 2), 0xffff);
	/* ... and did not disturb the address register. */
	assert_int_equal(in(f, PORT_PCI_CONFIG_ADDR, 4), 0x8000f800);

	/* Absent slot, other bus, other function, enable bit clear. */
	assert_int_equal(cfg_read(f, 5, 0, 4), 0xffffffff);
	assert_int_equal(cfg_read(f, 31, PCI_CLASS_REVISION, 2), 0xffff);
	out(f, PORT_PCI_CONFIG_ADDR, 4, cfg_addr(1, 0, 0, 0));
	assert_int_equal(in(f, PORT_PCI_CONFIG_DATA, 4), 0xffffffff);
	out(f, PORT_PCI_CONFIG_ADDR, 4, cfg_addr(0, 0, 1, 0));
	assert_int_equal(in(f, PORT_PCI_CONFIG_DATA, 4), 0xffffffff);
	out(f, PORT_PCI_CONFIG_ADDR, 4, 0x00000000);
	assert_int_equal(in(f, PORT_PCI_CONFIG_DATA, 4), 0xffffffff);
	assert_int_equal(in(f, PORT_PCI_CONFIG_DATA + 3, 1), 0xff);
	/* Writes to nobody are ignored. */
	cfg_write(f, 5, PCI_COMMAND, 2, 0xffff);
	out(f, PORT_PCI_CONFIG_ADDR, 4, 0);
	out(f, PORT_PCI_CONFIG_DATA, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 4), 0x12378086);

	/* A word at 0xCFD (inside the dword) is fine; across 0xCFF not. */
	out(f, PORT_PCI_CONFIG_ADDR, 4, cfg_addr(0, 0, 0, 0));
	assert_int_equal(in(f, PORT_PCI_CONFIG_DATA + 1, 2), 0x3780);
	{
		uint8_t d[4] = { 0 };

		assert_false(bus_dispatch(&f->pio, PORT_PCI_CONFIG_DATA + 2,
					  d, 4, false));
		assert_int_equal(d[0] & d[1] & d[2] & d[3], 0xff);
	}
	/* The last dword of the space. */
	assert_int_equal(cfg_read(f, 0, 0xfc, 4), 0);
	assert_int_equal(f->stop_calls, 0);
}

static void
test_bar_sizing(void **state)
{
	struct fixture *f = *state;
	static struct test_dev t;

	test_dev_init(&t, "test");
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), 0);
	assert_int_equal(t.pci.slot, 1);
	assert_int_equal(cfg_read(f, 1, PCI_VENDOR_ID, 4), 0x10421af4);
	assert_int_equal(cfg_read(f, 1, PCI_SUBSYSTEM_ID, 2), 2);

	/* Type bits before sizing. */
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_0, 4), 0x0);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_1, 4),
			 PCI_BASE_ADDRESS_MEM_TYPE_64 |
			 PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_3, 4),
			 PCI_BASE_ADDRESS_SPACE_IO);

	/* Write all ones, read the size mask back, as __pci_read_base. */
	for (int i = 0; i < PCI_STD_NUM_BARS; i++)
		cfg_write(f, 1, PCI_BASE_ADDRESS_0 + 4 * (uint32_t)i, 4,
			  0xffffffff);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_0, 4), 0xfffff000);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_1, 4), 0xffffc00c);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_2, 4), 0xffffffff);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_3, 4), 0xffffffe1);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_4, 4), 0);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_5, 4), 0);
	/* Nothing was decoding: nothing got mapped. */
	assert_int_equal(f->mmio.nr_ranges, 0);
	assert_int_equal(f->pio.nr_ranges, 1);
	/* A byte write sizes one byte of the BAR. */
	cfg_write(f, 1, PCI_BASE_ADDRESS_0, 4, 0);
	cfg_write(f, 1, PCI_BASE_ADDRESS_0 + 1, 1, 0xff);
	assert_int_equal(cfg_read(f, 1, PCI_BASE_ADDRESS_0, 4), 0x0000f000);
	pci_host_free(f->h);
	f->h = NULL;
	assert_int_equal(t.pci.slot, -1);
	assert_null(t.pci.host);
}

static struct access *
last(struct test_dev *t)
{
	assert_true(t->nr_log > 0);
	return &t->log[t->nr_log - 1];
}

static bool
mmio_access(struct fixture *f, uint64_t addr, uint32_t len, uint64_t *v,
	    bool wr)
{
	uint8_t d[8];
	uint32_t i;
	bool owned;

	for (i = 0; i < len; i++)
		d[i] = wr ? (*v >> (8 * i)) & 0xff : 0;
	owned = bus_dispatch(&f->mmio, addr, d, len, wr);
	if (!wr) {
		*v = 0;
		for (i = 0; i < len; i++)
			*v |= (uint64_t)d[i] << (8 * i);
	}
	return owned;
}

static void
test_bar_mapping(void **state)
{
	struct fixture *f = *state;
	static struct test_dev t;
	uint64_t v;
	uint8_t d[4];

	test_dev_init(&t, "test");
	assert_int_equal(pci_add_device(f->h, &t.pci, 3), 0);
	assert_int_equal(t.pci.slot, 3);
	cfg_write(f, 3, PCI_BASE_ADDRESS_0, 4, 0xc0000000);
	cfg_write(f, 3, PCI_BASE_ADDRESS_1, 4, 0x00000000);
	cfg_write(f, 3, PCI_BASE_ADDRESS_2, 4, 0x00000008);	/* 32 GiB */
	cfg_write(f, 3, PCI_BASE_ADDRESS_3, 4, 0xc000);
	assert_int_equal(cfg_read(f, 3, PCI_BASE_ADDRESS_1, 4), 0x0000000c);
	assert_int_equal(cfg_read(f, 3, PCI_BASE_ADDRESS_3, 4), 0xc001);
	/* Programmed but not decoding. */
	v = 0;
	assert_false(mmio_access(f, 0xc0000000, 4, &v, false));
	assert_int_equal(t.nr_log, 0);

	cfg_write(f, 3, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	assert_int_equal(f->mmio.nr_ranges, 2);
	assert_int_equal(f->pio.nr_ranges, 2);
	v = 0xdeadbeef;
	assert_true(mmio_access(f, 0xc0000010, 4, &v, true));
	assert_int_equal(last(&t)->bar, 0);
	assert_int_equal(last(&t)->offset, 0x10);
	assert_int_equal(last(&t)->len, 4);
	assert_true(last(&t)->is_write);
	assert_int_equal(last(&t)->value, 0xdeadbeef);
	/* An 8-byte read at the top of the 64-bit BAR. */
	assert_true(mmio_access(f, 0x800000000ULL + 0x3ff8, 8, &v, false));
	assert_int_equal(last(&t)->bar, 1);
	assert_int_equal(last(&t)->offset, 0x3ff8);
	assert_int_equal(last(&t)->len, 8);
	assert_int_equal(v, 0xb7b6b5b4b3b2b1b0ULL);
	/* Just past its end: nobody. */
	assert_false(mmio_access(f, 0x800000000ULL + 0x4000, 1, &v, false));
	/* Port I/O into BAR3. */
	assert_true(bus_dispatch(&f->pio, 0xc004, d, 2, false));
	assert_int_equal(last(&t)->bar, 3);
	assert_int_equal(last(&t)->offset, 4);
	assert_int_equal(last(&t)->len, 2);
	assert_int_equal(d[0], 0xd0);
	assert_int_equal(d[1], 0xd1);

	/* Moving a BAR while decoding moves the range. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_0, 4, 0xc0100000);
	assert_false(mmio_access(f, 0xc0000010, 4, &v, false));
	assert_true(mmio_access(f, 0xc0100ffc, 4, &v, false));
	assert_int_equal(last(&t)->bar, 0);
	assert_int_equal(last(&t)->offset, 0xffc);
	/* The top half of the 64-bit BAR moves it too. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_2, 4, 0x00000009);
	assert_false(mmio_access(f, 0x800000000ULL, 4, &v, false));
	assert_true(mmio_access(f, 0x900000000ULL + 0x100, 4, &v, false));
	assert_int_equal(last(&t)->bar, 1);
	assert_int_equal(last(&t)->offset, 0x100);
	assert_int_equal(t.pci.bars[1].addr, 0x900000000ULL);

	/* Memory decoding off: memory BARs go, the I/O BAR stays. */
	cfg_write(f, 3, PCI_COMMAND, 2, PCI_COMMAND_IO);
	assert_int_equal(f->mmio.nr_ranges, 0);
	assert_false(mmio_access(f, 0xc0100000, 4, &v, false));
	assert_true(bus_dispatch(&f->pio, 0xc000, d, 1, false));
	cfg_write(f, 3, PCI_COMMAND, 2, 0);
	assert_int_equal(f->pio.nr_ranges, 1);
	assert_false(bus_dispatch(&f->pio, 0xc000, d, 1, false));
	/* And back on: at the addresses programmed meanwhile. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_3, 4, 0xd020);
	cfg_write(f, 3, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	assert_true(bus_dispatch(&f->pio, 0xd03f, d, 1, false));
	assert_int_equal(last(&t)->offset, 0x1f);
	assert_true(mmio_access(f, 0xc0100000, 4, &v, false));

	/* Sizing with decoding on: the 64-bit BAR wraps and goes away. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	cfg_write(f, 3, PCI_BASE_ADDRESS_2, 4, 0xffffffff);
	assert_false(t.pci.bars[1].mapped);
	assert_int_equal(f->mmio.nr_ranges, 1);
	/* An I/O BAR beyond 64 KiB is not decoded. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_3, 4, 0x10000);
	assert_false(t.pci.bars[3].mapped);
	/* A 32-bit BAR at the very top of 4 GiB is fine. */
	cfg_write(f, 3, PCI_BASE_ADDRESS_0, 4, 0xfffff000);
	assert_true(t.pci.bars[0].mapped);
	assert_true(mmio_access(f, 0xffffffffULL, 1, &v, false));
}

static void
test_bar_overlap(void **state)
{
	struct fixture *f = *state;
	static struct test_dev a, b;
	uint64_t v;

	test_dev_init(&a, "dev-a");
	test_dev_init(&b, "dev-b");
	assert_int_equal(pci_add_device(f->h, &a.pci, -1), 0);
	assert_int_equal(pci_add_device(f->h, &b.pci, -1), 0);
	assert_int_equal(a.pci.slot, 1);
	assert_int_equal(b.pci.slot, 2);
	cfg_write(f, 1, PCI_BASE_ADDRESS_0, 4, 0xc0000000);
	cfg_write(f, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* b's BAR0 half over a's: refused, logged once, no crash. */
	cfg_write(f, 2, PCI_BASE_ADDRESS_0, 4, 0xc0000000);
	cfg_write(f, 2, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	assert_false(b.pci.bars[0].mapped);
	assert_true(b.pci.bars[0].overlap_logged);
	assert_true(mmio_access(f, 0xc0000004, 4, &v, false));
	assert_int_equal(a.nr_log, 1);
	assert_int_equal(b.nr_log, 0);
	/* An I/O BAR over the host's own ports: refused too. */
	cfg_write(f, 2, PCI_BASE_ADDRESS_3, 4, 0xce0);
	assert_false(b.pci.bars[3].mapped);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 2), 0x8086);

	/* a moves away; b's next config write maps it. */
	cfg_write(f, 1, PCI_BASE_ADDRESS_0, 4, 0xc0010000);
	cfg_write(f, 2, PCI_CACHE_LINE_SIZE, 1, 0x10);
	assert_true(b.pci.bars[0].mapped);
	assert_true(mmio_access(f, 0xc0000004, 4, &v, false));
	assert_int_equal(b.nr_log, 1);
	assert_true(mmio_access(f, 0xc0010004, 4, &v, false));
	assert_int_equal(a.nr_log, 2);
}

static void
test_capabilities(void **state)
{
	struct fixture *f = *state;
	static struct test_dev t;
	uint32_t pos, ids[4], n = 0;

	test_dev_init(&t, "caps");
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, 16),
			 0x40);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_MSIX, 12),
			 0x50);
	/* Aligned to 4. */
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, 6),
			 0x5c);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, 1),
			 -EINVAL);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, 0x100),
			 -ENOSPC);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR,
					    0x100 - 0x64 + 1), -ENOSPC);
	/* Exactly to the end of the space. */
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_PM,
					    0x100 - 0x64), 0x64);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_PM, 2),
			 -ENOSPC);
	/* A writable control byte in the MSI-X capability. */
	pci_wmask_set(&t.pci, 0x50 + PCI_MSIX_FLAGS, 2,
		      PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	t.pci.cfg[0x50 + PCI_MSIX_FLAGS] = 3;	/* table size 4 */
	assert_int_equal(pci_add_device(f->h, &t.pci, 7), 0);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, 4),
			 -EBUSY);

	/* Walk the list as pci_find_capability does. */
	assert_int_equal(cfg_read(f, 7, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST,
			 PCI_STATUS_CAP_LIST);
	pos = cfg_read(f, 7, PCI_CAPABILITY_LIST, 1);
	while (pos && n < 8) {
		assert_true(n < 4);
		ids[n++] = cfg_read(f, 7, pos, 1);
		pos = cfg_read(f, 7, pos + 1, 1);
	}
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[2], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[3], PCI_CAP_ID_PM);
	/* The links are read-only; the MSI-X control bits are not. */
	cfg_write(f, 7, 0x40, 2, 0xffff);
	assert_int_equal(cfg_read(f, 7, 0x40, 2), 0x5009);
	cfg_write(f, 7, 0x50 + PCI_MSIX_FLAGS, 2, 0xffff);
	assert_int_equal(cfg_read(f, 7, 0x50 + PCI_MSIX_FLAGS, 2),
			 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | 3);
}

static void
test_wmask(void **state)
{
	struct fixture *f = *state;
	static struct test_dev t;

	test_dev_init(&t, "wmask");
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), 0);
	/* Identity, class, header type: read-only. */
	cfg_write(f, 1, PCI_VENDOR_ID, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 1, PCI_VENDOR_ID, 4), 0x10421af4);
	cfg_write(f, 1, PCI_VENDOR_ID, 1, 0x00);
	assert_int_equal(cfg_read(f, 1, PCI_VENDOR_ID, 2), 0x1af4);
	cfg_write(f, 1, PCI_CLASS_REVISION, 4, 0);
	assert_int_equal(cfg_read(f, 1, PCI_CLASS_REVISION, 4), 0x01800001);
	cfg_write(f, 1, PCI_CACHE_LINE_SIZE, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 1, PCI_CACHE_LINE_SIZE, 4), 0x0000ffff);
	/* COMMAND: only the bits we implement stick. */
	cfg_write(f, 1, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(cfg_read(f, 1, PCI_COMMAND, 2), 0x0547);
	cfg_write(f, 1, PCI_COMMAND, 2, 0);
	/* Interrupt line writable, pin not, in one dword write. */
	cfg_write(f, 1, PCI_INTERRUPT_LINE, 4, 0xffffff0b);
	assert_int_equal(cfg_read(f, 1, PCI_INTERRUPT_LINE, 4), 0x0000010b);
	/* STATUS error bits clear on a written 1; CAP_LIST does not. */
	t.pci.cfg[PCI_STATUS + 1] = (PCI_STATUS_REC_MASTER_ABORT |
				     PCI_STATUS_SIG_SYSTEM_ERROR) >> 8;
	t.pci.cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	cfg_write(f, 1, PCI_STATUS, 2, 0);
	assert_int_equal(cfg_read(f, 1, PCI_STATUS, 2),
			 PCI_STATUS_REC_MASTER_ABORT |
			 PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_CAP_LIST);
	cfg_write(f, 1, PCI_STATUS, 2, 0xffff & ~PCI_STATUS_SIG_SYSTEM_ERROR);
	assert_int_equal(cfg_read(f, 1, PCI_STATUS, 2),
			 PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_CAP_LIST);
	/* The host bridge's identity is just as safe. */
	cfg_write(f, 0, PCI_VENDOR_ID, 4, 0);
	assert_int_equal(cfg_read(f, 0, PCI_VENDOR_ID, 4), 0x12378086);
}

static void
test_hooks(void **state)
{
	struct fixture *f = *state;
	static struct test_dev t;

	test_dev_init(&t, "hooks");
	t.pci.cfg_write = test_dev_hook_write;
	t.pci.cfg_read = test_dev_hook_read;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), 0);
	/* After the generic handling, with the value as written. */
	cfg_write(f, 1, PCI_COMMAND + 1, 1, 0xff);
	assert_int_equal(t.hook_writes, 1);
	assert_int_equal(t.hook_off, PCI_COMMAND + 1);
	assert_int_equal(t.hook_len, 1);
	assert_int_equal(t.hook_val, 0xff);
	assert_int_equal(t.hook_saw_command, 0x0500);
	cfg_write(f, 1, 0x48, 4, 0xcafef00d);
	assert_int_equal(t.hook_writes, 2);
	assert_int_equal(t.hook_off, 0x48);
	assert_int_equal(t.hook_val, 0xcafef00d);
	/* The read hook replaces what cfg holds. */
	assert_int_equal(cfg_read(f, 1, 0x48, 4), 0x12345678);
	assert_int_equal(cfg_read(f, 1, 0x48, 2), 0);
	assert_int_equal(cfg_read(f, 1, PCI_VENDOR_ID, 2), 0x1af4);
	/* No hook for writes to absent devices. */
	cfg_write(f, 9, 0x48, 4, 1);
	assert_int_equal(t.hook_writes, 2);
}

static void
test_rom(void **state)
{
	struct fixture *f = *state;
	static uint8_t image[3000];
	static struct test_dev t;
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(image); i++)
		image[i] = (uint8_t)(i * 13);
	image[0] = 0x55;
	image[1] = 0xaa;
	test_dev_init(&t, "rom");
	t.pci.rom.data = image;
	t.pci.rom.size = sizeof(image);
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), 0);
	/* Sizing as Linux does: ~ENABLE, read back: 4 KiB. */
	cfg_write(f, 1, PCI_ROM_ADDRESS, 4, ~PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(cfg_read(f, 1, PCI_ROM_ADDRESS, 4), 0xfffff000);
	cfg_write(f, 1, PCI_ROM_ADDRESS, 4, 0xc0200000);
	cfg_write(f, 1, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	/* Not enabled yet. */
	assert_false(mmio_access(f, 0xc0200000, 2, &v, false));
	cfg_write(f, 1, PCI_ROM_ADDRESS, 4,
		  0xc0200000 | PCI_ROM_ADDRESS_ENABLE);
	assert_int_equal(cfg_read(f, 1, PCI_ROM_ADDRESS, 4),
			 0xc0200000 | PCI_ROM_ADDRESS_ENABLE);
	assert_true(mmio_access(f, 0xc0200000, 2, &v, false));
	assert_int_equal(v, 0xaa55);
	assert_true(mmio_access(f, 0xc0200000 + 2000, 8, &v, false));
	for (i = 0; i < 8; i++)
		assert_int_equal((v >> (8 * i)) & 0xff,
				 (uint8_t)((2000 + i) * 13));
	/* Past the image, inside the BAR: all ones. Writes are ignored. */
	assert_true(mmio_access(f, 0xc0200000 + 2998, 4, &v, false));
	assert_int_equal(v, 0xffff0000u | (uint8_t)(2999 * 13) << 8 |
			 (uint8_t)(2998 * 13));
	v = 0;
	assert_true(mmio_access(f, 0xc0200000, 4, &v, true));
	assert_int_equal(image[0], 0x55);
	assert_true(mmio_access(f, 0xc0200fff, 1, &v, false));
	assert_int_equal(v, 0xff);
	assert_false(mmio_access(f, 0xc0201000, 1, &v, false));
	/* Disabling the ROM unmaps it. */
	cfg_write(f, 1, PCI_ROM_ADDRESS, 4, 0xc0200000);
	assert_false(mmio_access(f, 0xc0200000, 1, &v, false));
	cfg_write(f, 1, PCI_ROM_ADDRESS, 4, 0xc0200000 | 1);
	assert_true(t.pci.rom.mapped);
	/* A device without a ROM has a read-only zero ROM BAR. */
	assert_int_equal(cfg_read(f, 0, PCI_ROM_ADDRESS, 4), 0);
	cfg_write(f, 0, PCI_ROM_ADDRESS, 4, 0xffffffff);
	assert_int_equal(cfg_read(f, 0, PCI_ROM_ADDRESS, 4), 0);
}

static void
test_reset_control(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(in(f, PORT_RESET_CONTROL, 1), 0);
	/* Linux's "pci" reboot: 0x02 first (no reset), then 0x06. */
	out(f, PORT_RESET_CONTROL, 1, 0x02);
	assert_int_equal(f->stop_calls, 0);
	assert_int_equal(in(f, PORT_RESET_CONTROL, 1), 0x02);
	out(f, PORT_RESET_CONTROL, 1, 0x06);
	assert_int_equal(f->stop_calls, 1);
	assert_int_equal(f->stop, VM_STOP_REBOOT);
	assert_int_equal(in(f, PORT_RESET_CONTROL, 1), 0x06);
	/* A word at 0xCF9 is not the reset register. */
	out(f, PORT_RESET_CONTROL, 2, 0x0606);
	assert_int_equal(f->stop_calls, 1);
	/* Nor does the address register's dword reset anything. */
	out(f, PORT_PCI_CONFIG_ADDR, 4, 0x80000600);
	assert_int_equal(f->stop_calls, 1);
	assert_int_equal(in(f, PORT_RESET_CONTROL, 1), 0x06);
}

static void
test_add_device_errors(void **state)
{
	struct fixture *f = *state;
	static struct test_dev devs[32];
	static struct test_dev t;
	int i;

	test_dev_init(&t, "bad");
	assert_int_equal(pci_add_device(f->h, &t.pci, 0), -EINVAL);
	assert_int_equal(pci_add_device(f->h, &t.pci, 32), -EINVAL);
	assert_int_equal(pci_add_device(f->h, &t.pci, -2), -EINVAL);
	assert_int_equal(pci_add_device(NULL, &t.pci, -1), -EINVAL);
	assert_int_equal(pci_add_device(f->h, NULL, -1), -EINVAL);

	t.pci.bars[0].size = 3000;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[0].size = 8;		/* below 16 bytes of memory */
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[0].size = 4ULL << 30;	/* 32-bit but 4 GiB */
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[0].size = 4096;
	t.pci.bars[0].fn = NULL;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[0].fn = test_bar_io;
	t.pci.bars[3].size = 512;	/* I/O above 256 bytes */
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[3].size = 32;
	t.pci.bars[3].is_64bit = true;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[3].is_64bit = false;
	t.pci.bars[2].size = 4096;	/* over the 64-bit BAR1's top half */
	t.pci.bars[2].fn = test_bar_io;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[2].size = 0;
	t.pci.bars[5] = (struct pci_bar){ .size = 4096, .is_64bit = true,
					  .fn = test_bar_io };
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.bars[5].size = 0;
	t.pci.rom.data = "x";
	t.pci.rom.size = 0;
	assert_int_equal(pci_add_device(f->h, &t.pci, -1), -EINVAL);
	t.pci.rom.data = NULL;
	/* Nothing above was attached. */
	assert_null(t.pci.host);

	/* The lowest free slot, as -1 would pick it. */
	assert_int_equal(pci_host_free_slot(NULL), -EINVAL);
	assert_int_equal(pci_host_free_slot(f->h), 1);

	/* Good now; twice is once too many; a taken slot is busy. */
	assert_int_equal(pci_add_device(f->h, &t.pci, 4), 0);
	assert_int_equal(pci_host_free_slot(f->h), 1);
	assert_int_equal(pci_add_device(f->h, &t.pci, 5), -EBUSY);
	test_dev_init(&devs[0], "d0");
	assert_int_equal(pci_add_device(f->h, &devs[0].pci, 4), -EBUSY);
	/* Fill the bus: 30 more fit (slots 1-31 less slot 4). */
	for (i = 0; i < 30; i++) {
		int want = pci_host_free_slot(f->h);

		test_dev_init(&devs[i], "filler");
		assert_int_equal(pci_add_device(f->h, &devs[i].pci, -1), 0);
		assert_int_equal(devs[i].pci.slot, want);
		assert_true(devs[i].pci.slot >= 1 && devs[i].pci.slot < 32);
		assert_int_not_equal(devs[i].pci.slot, 4);
	}
	test_dev_init(&devs[30], "one too many");
	assert_int_equal(pci_add_device(f->h, &devs[30].pci, -1), -ENOSPC);
	assert_int_equal(pci_host_free_slot(f->h), -ENOSPC);
	assert_int_equal(cfg_read(f, 31, PCI_VENDOR_ID, 2), 0x1af4);

	/* A second host on the same ports. */
	errno = 0;
	assert_null(pci_host_new(&f->pio, &f->mmio, NULL));
	assert_int_equal(errno, EEXIST);
	pci_host_free(NULL);
}

struct stress {
	struct fixture *f;
	unsigned long hits;	/* atomic */
	unsigned long bad_offsets;	/* atomic */
	bool stop;		/* atomic */
};

static void
stress_bar_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	      bool is_write)
{
	struct stress *st = opaque;

	if (offset != 0x80)
		__atomic_add_fetch(&st->bad_offsets, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&st->hits, 1, __ATOMIC_RELAXED);
	if (!is_write)
		memset(data, 0x42, len);
}

static void *
stress_mmio(void *arg)
{
	struct stress *st = arg;
	uint64_t bases[2] = { 0xc0000000, 0xc8000000 };
	unsigned int i = 0;

	while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
		uint8_t d[4];

		/* Either the device answers, or nobody (all ones). */
		if (bus_dispatch(&st->f->mmio, bases[i++ & 1] + 0x80, d, 4,
				 false))
			assert_int_equal(d[0], 0x42);
		else
			assert_int_equal(d[0], 0xff);
	}
	return NULL;
}

/* One vCPU moves a BAR around while others hammer both places. */
static void
test_concurrent_moves(void **state)
{
	struct fixture *f = *state;
	static struct pci_device dev;
	struct stress st = { .f = f };
	pthread_t t[3];
	int i;

	pci_device_init(&dev, "stress", 0x1af4, 0x1000, 0x020000, 0);
	dev.bars[0] = (struct pci_bar){ .size = 0x1000, .fn = stress_bar_io,
					.opaque = &st };
	assert_int_equal(pci_add_device(f->h, &dev, -1), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, stress_mmio, &st),
				 0);
	for (i = 0; i < 3000; i++) {
		cfg_write(f, 1, PCI_BASE_ADDRESS_0, 4,
			  (i & 1) ? 0xc8000000 : 0xc0000000);
		cfg_write(f, 1, PCI_COMMAND, 2,
			  (i % 3) ? PCI_COMMAND_MEMORY : 0);
	}
	__atomic_store_n(&st.stop, true, __ATOMIC_RELEASE);
	for (i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(st.bad_offsets, 0);
	assert_true(f->mmio.nr_ranges <= 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_bridge, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_host_bridge_pam, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_config_address_and_absent,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bar_mapping, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bar_overlap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hooks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rom, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_control, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_device_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_moves, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
