/* SPDX-License-Identifier: MIT */
/*
 * Firmware boot: image sizes, the copy below 1 MiB, the e820 and the rest
 * of what fw_cfg tells the firmware (read back through the ports), and,
 * where /dev/kvm works, a tiny BIOS image run from the reset vector: it
 * checks the reset state, that the image below 4 GiB is read-only (a write
 * exits and is ignored), that the copy at 0xF0000 is writable RAM, and the
 * debug port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bus.h"
#include "dev/debugcon.h"
#include "dev/fw_cfg.h"
#include "layout.h"
#include "mem.h"
#include "vm.h"
#include "x86/acpi.h"
#include "x86/firmware.h"

static uint8_t *
make_image(size_t size)
{
	uint8_t *img = malloc(size);
	size_t i;

	assert_non_null(img);
	for (i = 0; i < size; i++)
		img[i] = (uint8_t)(i * 31 + (i >> 12));
	return img;
}

static void
test_check_size(void **state)
{
	(void)state;
	assert_int_equal(firmware_check_size(128 * KiB), 0);
	assert_int_equal(firmware_check_size(256 * KiB), 0);
	assert_int_equal(firmware_check_size(4 * KiB), 0);
	assert_int_equal(firmware_check_size(16 * MiB), 0);
	assert_int_equal(firmware_check_size(0), -EINVAL);
	assert_int_equal(firmware_check_size(2 * KiB), -EINVAL);
	assert_int_equal(firmware_check_size(128 * KiB + 512), -EINVAL);
	assert_int_equal(firmware_check_size(16 * MiB + 4 * KiB), -EINVAL);
	/* The largest image still ends at 4 GiB and starts above KVM's
	 * real-mode TSS and identity page (0xFEFFC000-0xFEFFFFFF). */
	assert_true(FIRMWARE_TOP - FIRMWARE_MAX_SIZE >= 0xff000000ULL);
}

static void
test_load_legacy(void **state)
{
	struct guest_mem m;
	uint8_t *img = make_image(256 * KiB);
	const uint8_t *low;

	(void)state;
	assert_int_equal(guest_mem_init(&m, 2 * MiB), 0);
	low = guest_mem_ptr(&m, 0, 2 * MiB);
	assert_non_null(low);

	/* 128 KiB: all of it at 0xE0000-0xFFFFF. */
	assert_int_equal(firmware_load_legacy(&m, img, 128 * KiB), 0);
	assert_memory_equal(low + 0xe0000, img, 128 * KiB);
	assert_int_equal(low[0xdffff], 0);
	assert_int_equal(low[0x100000], 0);

	/* 256 KiB: its last 128 KiB. */
	memset((uint8_t *)(uintptr_t)low + 0xe0000, 0, 128 * KiB);
	assert_int_equal(firmware_load_legacy(&m, img, 256 * KiB), 0);
	assert_memory_equal(low + 0xe0000, img + 128 * KiB, 128 * KiB);
	assert_int_equal(low[0xdffff], 0);

	/* 64 KiB: 0xF0000 up only. */
	memset((uint8_t *)(uintptr_t)low + 0xe0000, 0, 128 * KiB);
	assert_int_equal(firmware_load_legacy(&m, img, 64 * KiB), 0);
	assert_memory_equal(low + 0xf0000, img, 64 * KiB);
	assert_int_equal(low[0xeffff], 0);

	assert_int_equal(firmware_load_legacy(&m, img, 1000), -EINVAL);
	assert_int_equal(firmware_load_legacy(&m, NULL, 128 * KiB), -EINVAL);
	guest_mem_destroy(&m);

	/* Less RAM than the first MiB. */
	assert_int_equal(guest_mem_init(&m, 512 * KiB), 0);
	assert_int_equal(firmware_load_legacy(&m, img, 128 * KiB), -EFAULT);
	guest_mem_destroy(&m);
	free(img);
}

static void
test_e820(void **state)
{
	struct guest_mem m;
	struct fw_cfg_e820_entry e[2];

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 64 * MiB), 0);
	assert_int_equal(firmware_e820(&m, e, 2), 1);
	assert_int_equal(le64toh(e[0].address), 0);
	assert_int_equal(le64toh(e[0].length), 64 * MiB);
	assert_int_equal(le32toh(e[0].type), FW_CFG_E820_RAM);

	/* Split around the PCI hole. */
	assert_int_equal(guest_mem_layout(&m, 4 * GiB), 0);
	assert_int_equal(firmware_e820(&m, e, 2), 2);
	assert_int_equal(le64toh(e[0].address), 0);
	assert_int_equal(le64toh(e[0].length), LAYOUT_PCI_HOLE_START);
	assert_int_equal(le64toh(e[1].address), LAYOUT_HIGH_RAM_START);
	assert_int_equal(le64toh(e[1].length), 4 * GiB - LAYOUT_PCI_HOLE_START);
	assert_int_equal(le32toh(e[1].type), FW_CFG_E820_RAM);
	assert_int_equal(firmware_e820(&m, e, 1), -ENOSPC);
}

/* A fw_cfg reader as the firmware is one. */
struct reader {
	struct bus pio;
	struct fw_cfg *f;
};

static void
rd_select(struct reader *r, uint16_t key)
{
	uint8_t d[2] = { key & 0xff, key >> 8 };

	assert_true(bus_dispatch(&r->pio, FW_CFG_PORT_SEL, d, 2, true));
}

static void
rd_data(struct reader *r, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		assert_true(bus_dispatch(&r->pio, FW_CFG_PORT_DATA, &p[i], 1,
					 false));
}

static int
rd_file(struct reader *r, const char *name, void *buf, size_t max)
{
	struct fw_cfg_file e;
	uint32_t count, i, size;

	rd_select(r, FW_CFG_FILE_DIR);
	rd_data(r, &count, sizeof(count));
	for (i = 0; i < be32toh(count); i++) {
		rd_data(r, &e, sizeof(e));
		if (strcmp(e.name, name) != 0)
			continue;
		size = be32toh(e.size);
		assert_true(size <= max);
		rd_select(r, be16toh(e.select));
		rd_data(r, buf, size);
		return (int)size;
	}
	return -1;
}

static void
test_fill_fw_cfg(void **state)
{
	struct firmware_config cfg = {
		.serial_port = PORT_COM1,
		.boot_fail_wait_ms = 5000,
	};
	struct fw_cfg_e820_entry e[4];
	struct guest_mem m;
	struct reader r;
	uint32_t v32;
	uint16_t v16;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 3584 * MiB), 0);
	assert_int_equal(bus_init(&r.pio, "pio"), 0);
	r.f = fw_cfg_new(&r.pio);
	assert_non_null(r.f);
	assert_int_equal(firmware_fill_fw_cfg(r.f, &m, 3, &cfg), 0);

	rd_select(&r, FW_CFG_NB_CPUS);
	rd_data(&r, &v16, 2);
	assert_int_equal(le16toh(v16), 3);
	rd_select(&r, FW_CFG_MAX_CPUS);
	rd_data(&r, &v16, 2);
	assert_int_equal(le16toh(v16), 3);
	rd_select(&r, FW_CFG_BOOT_MENU);
	v16 = 0xffff;
	rd_data(&r, &v16, 2);
	assert_int_equal(v16, 0);
	rd_select(&r, FW_CFG_IRQ0_OVERRIDE);
	rd_data(&r, &v32, 4);
	assert_int_equal(le32toh(v32), 1);

	assert_int_equal(rd_file(&r, "etc/e820", e, sizeof(e)),
			 2 * (int)sizeof(e[0]));
	assert_int_equal(le64toh(e[0].address), 0);
	assert_int_equal(le64toh(e[0].length), 3 * GiB);
	assert_int_equal(le32toh(e[0].type), 1);
	assert_int_equal(le64toh(e[1].address), 4 * GiB);
	assert_int_equal(le64toh(e[1].length), 512 * MiB);
	assert_int_equal(le32toh(e[1].type), 1);
	assert_int_equal(rd_file(&r, "etc/boot-fail-wait", &v32, 4), 4);
	assert_int_equal(le32toh(v32), 5000);
	assert_int_equal(rd_file(&r, "etc/sercon-port", &v16, 2), 2);
	assert_int_equal(le16toh(v16), 0x3f8);
	/* Filling twice is refused: the items are there. */
	assert_int_equal(firmware_fill_fw_cfg(r.f, &m, 3, &cfg), -EEXIST);
	fw_cfg_free(r.f);

	/* No serial console asked: no sercon-port, SeaBIOS's default. */
	r.f = fw_cfg_new(&r.pio);
	assert_non_null(r.f);
	cfg.serial_port = 0;
	cfg.boot_fail_wait_ms = FIRMWARE_BOOT_FAIL_WAIT_FOREVER;
	assert_int_equal(firmware_fill_fw_cfg(r.f, &m, 1, &cfg), 0);
	assert_int_equal(rd_file(&r, "etc/sercon-port", &v16, 2), -1);
	assert_int_equal(rd_file(&r, "etc/boot-fail-wait", &v32, 4), 4);
	assert_int_equal(v32, 0xffffffffu);
	fw_cfg_free(r.f);
	bus_destroy(&r.pio);
}

/*
 * The ACPI tables through fw_cfg, carried out as SeaBIOS's table loader
 * does: each file allocated where its zone says (the RSDP in the F
 * segment, the tables at 1 MiB + 64, an address no field held before),
 * the pointers added, the checksums fixed. What comes out is a table set
 * an OS accepts: the RSDP where the legacy scan finds it, every checksum
 * right, every address leading to the table it should.
 */
#define LD_MEM		(2 * MiB)
#define LD_RSDP		0xf5a30ULL
#define LD_TABLES	(MiB + 64)

struct ld_file {
	char name[FIRMWARE_LOADER_FILE];
	uint64_t gpa;
	uint32_t size;
};

static struct ld_file *
ld_find(struct ld_file *files, unsigned int n, const char *name)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (strncmp(files[i].name, name, FIRMWARE_LOADER_FILE) == 0)
			return &files[i];
	fail_msg("loader: file '%.56s' not allocated before use", name);
	return NULL;
}

static const struct acpi_header *
ld_table(const uint8_t *mem, uint64_t gpa, const char *sig)
{
	const struct acpi_header *h;

	assert_true(gpa >= LD_TABLES && gpa < LD_MEM);
	h = (const struct acpi_header *)(mem + gpa);
	assert_memory_equal(h->signature, sig, 4);
	assert_true(gpa + h->length <= LD_MEM);
	assert_int_equal(acpi_checksum(h, h->length), 0);
	return h;
}

static void
test_acpi_loader(void **state)
{
	struct firmware_config cfg = { .boot_fail_wait_ms = 0 };
	static struct firmware_loader_entry cmds[64];
	static uint8_t mem[LD_MEM];
	struct ld_file files[4];
	const struct acpi_fadt *fadt;
	const struct acpi_header *xsdt, *rsdt;
	struct acpi_rsdp rsdp;
	struct guest_mem m;
	struct reader r;
	unsigned int nf = 0, i;
	uint64_t x, v;
	uint32_t x32;
	int len;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 64 * MiB), 0);
	assert_int_equal(bus_init(&r.pio, "pio"), 0);
	r.f = fw_cfg_new(&r.pio);
	assert_non_null(r.f);
	assert_int_equal(firmware_fill_fw_cfg(r.f, &m, 2, &cfg), 0);
	len = rd_file(&r, FIRMWARE_TABLE_LOADER, cmds, sizeof(cmds));
	assert_true(len > 0 && len % 128 == 0);
	assert_int_equal(sizeof(cmds[0]), 128);
	memset(mem, 0xcc, sizeof(mem));
	for (i = 0; i < (unsigned int)len / 128; i++) {
		const struct firmware_loader_entry *e = &cmds[i];
		struct ld_file *d, *src;
		int n;

		switch (le32toh(e->command)) {
		case FIRMWARE_LOADER_ALLOCATE:
			assert_true(nf < 4);
			d = &files[nf++];
			memcpy(d->name, e->alloc.file, FIRMWARE_LOADER_FILE);
			if (e->alloc.zone == FIRMWARE_LOADER_ZONE_FSEG) {
				d->gpa = LD_RSDP;
			} else {
				assert_int_equal(e->alloc.zone,
						 FIRMWARE_LOADER_ZONE_HIGH);
				d->gpa = LD_TABLES;
			}
			assert_int_equal(d->gpa % le32toh(e->alloc.align), 0);
			n = rd_file(&r, d->name, mem + d->gpa,
				    sizeof(mem) - d->gpa);
			assert_true(n > 0);
			d->size = (uint32_t)n;
			break;
		case FIRMWARE_LOADER_ADD_POINTER:
			d = ld_find(files, nf, e->pointer.dest);
			src = ld_find(files, nf, e->pointer.src);
			assert_true(e->pointer.size == 4 ||
				    e->pointer.size == 8);
			assert_true(le32toh(e->pointer.offset) +
				    e->pointer.size <= d->size);
			v = 0;
			memcpy(&v, mem + d->gpa + le32toh(e->pointer.offset),
			       e->pointer.size);
			/* Offsets into the source, before the loader. */
			assert_true(v < src->size);
			v += src->gpa;
			memcpy(mem + d->gpa + le32toh(e->pointer.offset), &v,
			       e->pointer.size);
			break;
		case FIRMWARE_LOADER_ADD_CHECKSUM:
			d = ld_find(files, nf, e->checksum.file);
			assert_true(le32toh(e->checksum.start) +
				    le32toh(e->checksum.length) <= d->size);
			assert_true(le32toh(e->checksum.offset) < d->size);
			mem[d->gpa + le32toh(e->checksum.offset)] -=
				acpi_checksum(mem + d->gpa +
					      le32toh(e->checksum.start),
					      le32toh(e->checksum.length));
			break;
		default:
			fail_msg("loader command %u", le32toh(e->command));
		}
	}
	assert_int_equal(nf, 2);

	/* The RSDP, where an OS scans for it, and both its sums. */
	memcpy(&rsdp, mem + LD_RSDP, sizeof(rsdp));
	assert_memory_equal(rsdp.signature, "RSD PTR ", 8);
	assert_int_equal(rsdp.revision, 2);
	assert_int_equal(acpi_checksum(&rsdp, ACPI_RSDP_V1_LEN), 0);
	assert_int_equal(acpi_checksum(&rsdp, sizeof(rsdp)), 0);
	xsdt = ld_table(mem, rsdp.xsdt_address, "XSDT");
	rsdt = ld_table(mem, rsdp.rsdt_address, "RSDT");
	/* Both roots list the FADT and the MADT. */
	assert_int_equal(xsdt->length, sizeof(*xsdt) + 16);
	assert_int_equal(rsdt->length, sizeof(*rsdt) + 8);
	memcpy(&x, (const uint8_t *)(xsdt + 1), 8);
	memcpy(&x32, (const uint8_t *)(rsdt + 1), 4);
	assert_int_equal(x, x32);
	fadt = (const struct acpi_fadt *)ld_table(mem, x, "FACP");
	memcpy(&x, (const uint8_t *)(xsdt + 1) + 8, 8);
	memcpy(&x32, (const uint8_t *)(rsdt + 1) + 4, 4);
	assert_int_equal(x, x32);
	ld_table(mem, x, "APIC");
	/* The FADT's DSDT, both ways, and its FACS. */
	assert_int_equal(fadt->dsdt, fadt->x_dsdt);
	ld_table(mem, fadt->x_dsdt, "DSDT");
	assert_true(fadt->x_firmware_ctrl >= LD_TABLES &&
		    fadt->x_firmware_ctrl % 64 == 0);
	assert_memory_equal(mem + fadt->x_firmware_ctrl, "FACS", 4);
	fw_cfg_free(r.f);
	bus_destroy(&r.pio);
}

/*
 * The tiny BIOS, 128 KiB. At reset CS has base 0xFFFF0000, so IP x is
 * image offset 0x10000 + x; after the far jump to F000, IP x is the copy at
 * 0xF0000 + x, which is image offset 0x10000 + x again.
 */
#define TINY_SIZE	(128 * KiB)
#define TINY_OFF(ip)	(0x10000 + (ip))

static const uint8_t tiny_high[] = {
	0x2e, 0xc6, 0x06, 0xf8, 0xff, 0x55,	/* mov byte cs:[0xfff8], 0x55 */
	0x2e, 0xa0, 0xf8, 0xff,			/* mov al, cs:[0xfff8] */
	0xba, 0x02, 0x04,			/* mov dx, 0x402 */
	0xee,					/* out dx, al: 0xab */
	0xea, 0x00, 0xff, 0x00, 0xf0,		/* jmp f000:ff00 */
};

static const uint8_t tiny_low[] = {
	0xb8, 0x00, 0xf0,			/* mov ax, 0xf000 */
	0x8e, 0xd8,				/* mov ds, ax */
	0xa0, 0xf9, 0xff,			/* mov al, [0xfff9] */
	0xee,					/* out dx, al: 0xcd */
	0xc6, 0x06, 0xf8, 0xff, 0x66,		/* mov byte [0xfff8], 0x66 */
	0xa0, 0xf8, 0xff,			/* mov al, [0xfff8] */
	0xee,					/* out dx, al: 0x66 */
	0xec,					/* in al, dx: 0xe9 */
	0xee,					/* out dx, al */
	0xf4,					/* hlt */
};

static uint8_t *
make_tiny_bios(void)
{
	uint8_t *img = calloc(1, TINY_SIZE);

	assert_non_null(img);
	memset(img, 0xf4, TINY_SIZE);			/* hlt everywhere */
	memcpy(img + TINY_OFF(0xfe00), tiny_high, sizeof(tiny_high));
	memcpy(img + TINY_OFF(0xff00), tiny_low, sizeof(tiny_low));
	/* Reset vector: jmp near 0xfe00. */
	img[TINY_OFF(0xfff0)] = 0xe9;
	img[TINY_OFF(0xfff1)] = (uint8_t)((0xfe00 - 0xfff3) & 0xff);
	img[TINY_OFF(0xfff2)] = (uint8_t)(((0xfe00 - 0xfff3) >> 8) & 0xff);
	img[TINY_OFF(0xfff8)] = 0xab;
	img[TINY_OFF(0xfff9)] = 0xcd;
	return img;
}

static bool
kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		printf("# test_firmware: skipping the KVM tests: cannot open "
		       "/dev/kvm: %s\n", strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

static struct vm *
new_vm(unsigned int nr_vcpus, bool no_irqchip)
{
	struct vm_config cfg = {
		.nr_vcpus = nr_vcpus,
		.ram_size = 16 * MiB,
		.no_irqchip = no_irqchip,
	};
	struct vm *vm = NULL;
	char err[256] = "";

	if (vm_new(&cfg, &vm, err, sizeof(err)) < 0)
		fail_msg("vm_new: %s", err);
	return vm;
}

static void
test_boot_tiny_bios(void **state)
{
	struct firmware_config cfg = { .image_size = TINY_SIZE,
				       .boot_fail_wait_ms = 0 };
	struct firmware *fw = NULL;
	struct kvm_sregs s;
	struct kvm_regs regs;
	uint8_t *img, out[8], *low;
	struct vm *vm;
	char err[256] = "";
	int p[2], i, r = 0;
	ssize_t n;

	(void)state;
	if (!kvm_usable()) {
		skip();
		return;
	}
	img = make_tiny_bios();
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	vm = new_vm(1, true);	/* no irqchip: HLT comes back to us */
	cfg.image = img;
	cfg.debug_fd = p[1];
	assert_int_equal(firmware_new(vm, &cfg, &fw, err, sizeof(err)), 0);
	assert_non_null(fw->fw_cfg);
	assert_int_equal(fw->gpa, 0xfffe0000ULL);
	/* The image was copied: the caller may free it at once. */
	img[TINY_OFF(0xfff8)] = 0;
	free(img);

	/* The reset state. */
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_SREGS, &s), 0);
	assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(s.cs.selector, 0xf000);
	assert_int_equal(s.cs.base, 0xffff0000ULL);
	assert_int_equal(s.cs.limit, 0xffff);
	assert_int_equal(s.ds.base, 0);
	assert_int_equal(s.ds.limit, 0xffff);
	assert_int_equal(s.cr0 & 1, 0);			/* real mode */
	assert_int_equal(s.efer, 0);
	assert_int_equal(regs.rip, 0xfff0);
	assert_int_equal(regs.rflags, 2);

	/* The copy below 1 MiB. */
	low = guest_mem_ptr(&vm->mem, 0xe0000, 128 * KiB);
	assert_non_null(low);
	assert_int_equal(low[0x1fff8], 0xab);

	for (i = 0; i < 1000; i++) {
		r = vcpu_run_once(&vm->vcpus[0]);
		if (r == VCPU_EXIT_HLT || r < 0 ||
		    r == VCPU_EXIT_SHUTDOWN || r == VCPU_EXIT_INTERNAL_ERROR ||
		    r == VCPU_EXIT_FAIL_ENTRY)
			break;
	}
	assert_int_equal(r, VCPU_EXIT_HLT);
	n = read(p[0], out, sizeof(out));
	assert_int_equal(n, 4);
	/* The ROM kept its byte, the copy below 1 MiB took a write, and
	 * the debug port said someone listens. */
	assert_int_equal(out[0], 0xab);
	assert_int_equal(out[1], 0xcd);
	assert_int_equal(out[2], 0x66);
	assert_int_equal(out[3], DEBUGCON_READBACK);
	assert_int_equal(firmware_rom_writes(fw), 1);
	assert_int_equal(vm->vcpus[0].stats.exits[VCPU_EXIT_MMIO_WRITE], 1);
	assert_int_equal(low[0x1fff8], 0x66);
	assert_int_equal(fw->rom[TINY_SIZE - 8], 0xab);

	/* A second image cannot go on the same VM: the range is taken. */
	{
		struct firmware *fw2 = NULL;
		uint8_t *img2 = make_tiny_bios();

		cfg.image = img2;
		assert_int_equal(firmware_new(vm, &cfg, &fw2, err,
					      sizeof(err)), -EEXIST);
		assert_null(fw2);
		assert_non_null(strstr(err, "firmware ROM"));
		free(img2);
	}

	firmware_free(fw);
	assert_int_equal(vm->pio.nr_ranges, 0);
	assert_int_equal(vm->mmio.nr_ranges, 0);
	firmware_free(NULL);
	vm_free(vm);
	close(p[0]);
	close(p[1]);
}

static void
squatter_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	    bool is_write)
{
	(void)opaque;
	(void)offset;
	(void)data;
	(void)len;
	(void)is_write;
}

static void
test_new_errors(void **state)
{
	struct firmware_config cfg = { .debug_fd = -1 };
	struct firmware *fw = NULL;
	struct vm *vm;
	uint8_t *img;
	char err[256];

	(void)state;
	if (!kvm_usable()) {
		skip();
		return;
	}
	vm = new_vm(2, false);
	img = make_image(256 * KiB);
	cfg.image = img;
	cfg.image_size = 100 * KiB + 1;
	err[0] = '\0';
	assert_int_equal(firmware_new(vm, &cfg, &fw, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "multiple of 4 KiB"));
	cfg.image = NULL;
	cfg.image_size = 128 * KiB;
	assert_int_equal(firmware_new(vm, &cfg, &fw, err, sizeof(err)),
			 -EINVAL);
	cfg.image = img;
	/* The fw_cfg ports are taken: everything is undone. */
	assert_int_equal(bus_register(&vm->pio, FW_CFG_PORT_SEL, 1, squatter_io,
				      NULL, "squatter"), 0);
	assert_int_equal(firmware_new(vm, &cfg, &fw, err, sizeof(err)),
			 -EEXIST);
	assert_non_null(strstr(err, "fw_cfg"));
	assert_null(fw);
	assert_int_equal(vm->mmio.nr_ranges, 0);
	assert_int_equal(bus_unregister(&vm->pio, FW_CFG_PORT_SEL), 0);
	/* With the ports free again, the same VM takes the image: the
	 * failed attempt removed its memory slot. */
	cfg.image_size = 256 * KiB;
	assert_int_equal(firmware_new(vm, &cfg, &fw, err, sizeof(err)), 0);
	assert_int_equal(fw->gpa, 0xfffc0000ULL);
	/* The AP was left alone, waiting for the firmware's SIPI. */
	{
		struct kvm_mp_state mp;

		assert_int_equal(ioctl(vm->vcpus[1].fd, KVM_GET_MP_STATE,
				       &mp), 0);
		assert_int_equal(mp.mp_state, KVM_MP_STATE_UNINITIALIZED);
		assert_int_equal(ioctl(vm->vcpus[0].fd, KVM_GET_MP_STATE,
				       &mp), 0);
		assert_int_equal(mp.mp_state, KVM_MP_STATE_RUNNABLE);
	}
	firmware_free(fw);
	vm_free(vm);
	free(img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_size),
		cmocka_unit_test(test_load_legacy),
		cmocka_unit_test(test_e820),
		cmocka_unit_test(test_fill_fw_cfg),
		cmocka_unit_test(test_acpi_loader),
		cmocka_unit_test(test_boot_tiny_bios),
		cmocka_unit_test(test_new_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
