/* SPDX-License-Identifier: MIT */
/* The e820 map and the zero page. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "layout.h"
#include "mem.h"
#include "x86/bootparams.h"
#include "x86/loader.h"

struct e820_want {
	uint64_t addr, size;
	uint32_t type;
};

static void
check_e820(uint64_t ram, const struct e820_want *want, unsigned int nwant)
{
	struct boot_e820_entry tab[E820_MAX_ENTRIES_ZEROPAGE];
	struct guest_mem m;
	unsigned int n = 999;
	uint64_t usable = 0;

	assert_int_equal(guest_mem_layout(&m, ram), 0);
	assert_int_equal(e820_build(&m, tab, E820_MAX_ENTRIES_ZEROPAGE, &n), 0);
	if (n != nwant)
		fail_msg("%llu MiB: %u e820 entries, expected %u",
			 (unsigned long long)(ram / MiB), n, nwant);
	for (unsigned int i = 0; i < n; i++) {
		if (tab[i].addr != want[i].addr || tab[i].size != want[i].size ||
		    tab[i].type != want[i].type)
			fail_msg("%llu MiB: entry %u is 0x%llx+0x%llx type %u, "
				 "expected 0x%llx+0x%llx type %u",
				 (unsigned long long)(ram / MiB), i,
				 (unsigned long long)tab[i].addr,
				 (unsigned long long)tab[i].size, tab[i].type,
				 (unsigned long long)want[i].addr,
				 (unsigned long long)want[i].size,
				 want[i].type);
		/* Sorted, not overlapping, never in the PCI hole. */
		if (i > 0)
			assert_true(tab[i - 1].addr + tab[i - 1].size <=
				    tab[i].addr);
		assert_true(tab[i].addr + tab[i].size <= LAYOUT_PCI_HOLE_START ||
			    tab[i].addr >= LAYOUT_PCI_HOLE_END);
		if (tab[i].type == E820_TYPE_RAM)
			usable += tab[i].size;
	}
	/* All RAM is usable but the EBDA/BIOS area. */
	assert_int_equal(usable, ram - (LAYOUT_BIOS_END - LAYOUT_EBDA_START));
}

#define LOW_ENTRIES(low_end) \
	{ 0, LAYOUT_EBDA_START, E820_TYPE_RAM }, \
	{ LAYOUT_EBDA_START, LAYOUT_BIOS_END - LAYOUT_EBDA_START, \
	  E820_TYPE_RESERVED }, \
	{ LAYOUT_BIOS_END, (low_end) - LAYOUT_BIOS_END, E820_TYPE_RAM }

static void
test_e820_sizes(void **state)
{
	const struct e820_want m64[] = { LOW_ENTRIES(64 * MiB) };
	const struct e820_want m512[] = { LOW_ENTRIES(512 * MiB) };
	const struct e820_want g3[] = { LOW_ENTRIES(3 * GiB) };
	const struct e820_want g4[] = {
		LOW_ENTRIES(3 * GiB),
		{ 4 * GiB, 1 * GiB, E820_TYPE_RAM },
	};
	const struct e820_want g8[] = {
		LOW_ENTRIES(3 * GiB),
		{ 4 * GiB, 5 * GiB, E820_TYPE_RAM },
	};

	(void)state;
	check_e820(64 * MiB, m64, 3);
	check_e820(512 * MiB, m512, 3);
	check_e820(3 * GiB, g3, 3);
	check_e820(4 * GiB, g4, 4);
	check_e820(8 * GiB, g8, 4);
	/* The reserved entry covers the ACPI tables. */
	assert_true(LAYOUT_EBDA_START <= LAYOUT_ACPI_START &&
		    LAYOUT_ACPI_START + LAYOUT_ACPI_SIZE <= LAYOUT_BIOS_END);
}

static void
test_e820_errors(void **state)
{
	struct boot_e820_entry tab[4];
	struct guest_mem m;
	unsigned int n = 77;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 8 * GiB), 0);
	assert_int_equal(e820_build(&m, tab, 3, &n), -ENOSPC);
	assert_int_equal(n, 77);
	assert_int_equal(e820_build(&m, tab, 4, &n), 0);
	assert_int_equal(n, 4);
	/* No RAM above the first MiB: nowhere to put a kernel. */
	assert_int_equal(guest_mem_layout(&m, 1 * MiB), 0);
	assert_int_equal(e820_build(&m, tab, 4, &n), -EINVAL);
	assert_int_equal(e820_build(NULL, tab, 4, &n), -EINVAL);
}

/* The header Debian's 6.1 cloud kernel carries (bzImage, protocol 2.15). */
static void
debian_kernel_info(struct kernel_info *k)
{
	struct setup_header *h = &k->hdr;

	memset(k, 0, sizeof(*k));
	k->entry = 0x1000000;
	k->load_start = 0x1000000;
	k->load_end = 0x4378000;
	k->is_bzimage = true;
	k->host_decompressed = true;
	k->compression = "lz4";
	h->setup_sects = 39;
	h->syssize = 0xd8220;
	h->vid_mode = 0xffff;
	h->boot_flag = 0xaa55;
	h->jump = 0x6aeb;
	memcpy(&h->header, "HdrS", 4);
	h->version = 0x020f;
	h->kernel_version = 0x42c0;
	h->loadflags = LOADED_HIGH;
	h->code32_start = 0x100000;
	h->heap_end_ptr = 0;
	h->initrd_addr_max = 0x7fffffff;
	h->kernel_alignment = 0x200000;
	h->relocatable_kernel = 1;
	h->min_alignment = 0x15;
	h->xloadflags = 0x7f;
	h->cmdline_size = 2047;
	h->payload_offset = 0x2cc;
	h->payload_length = 0xd696cc;
	h->pref_address = 0x1000000;
	h->init_size = 0x3378000;
	h->handover_offset = 0xd72f10;
	h->kernel_info_offset = 0xd7f91c;
}

static uint8_t
u8_at(const struct boot_params *bp, size_t off)
{
	return ((const uint8_t *)bp)[off];
}

static uint16_t
u16_at(const struct boot_params *bp, size_t off)
{
	uint16_t v;

	memcpy(&v, (const uint8_t *)bp + off, sizeof(v));
	return v;
}

static uint32_t
u32_at(const struct boot_params *bp, size_t off)
{
	uint32_t v;

	memcpy(&v, (const uint8_t *)bp + off, sizeof(v));
	return v;
}

static uint64_t
u64_at(const struct boot_params *bp, size_t off)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)bp + off, sizeof(v));
	return v;
}

static void
test_zero_page_offsets(void **state)
{
	struct guest_mem m;
	struct kernel_info k;
	struct boot_params *bp = malloc(sizeof(*bp));
	const uint64_t initrd = 0x1f000000, initrd_len = 0x123456;

	(void)state;
	assert_non_null(bp);
	assert_int_equal(sizeof(*bp), 4096);
	assert_int_equal(guest_mem_layout(&m, 512 * MiB), 0);
	debian_kernel_info(&k);
	memset(bp, 0x77, sizeof(*bp));
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE, 100, initrd,
					  initrd_len, LAYOUT_ACPI_START, bp), 0);

	/* Boot protocol offsets (boot.rst, zero-page.rst). */
	assert_int_equal(u64_at(bp, 0x070), LAYOUT_ACPI_START);
	assert_int_equal(u8_at(bp, 0x1e8), 3);		/* e820_entries */
	assert_int_equal(u64_at(bp, 0x2d0), 0);		/* e820_table[0] */
	assert_int_equal(u64_at(bp, 0x2d8), LAYOUT_EBDA_START);
	assert_int_equal(u32_at(bp, 0x2e0), E820_TYPE_RAM);
	assert_int_equal(u64_at(bp, 0x2e4), LAYOUT_EBDA_START);
	assert_int_equal(u32_at(bp, 0x2e4 + 16), E820_TYPE_RESERVED);
	assert_int_equal(u64_at(bp, 0x2d0 + 2 * 20), LAYOUT_BIOS_END);
	assert_int_equal(u64_at(bp, 0x2d0 + 2 * 20 + 8),
			 512 * MiB - LAYOUT_BIOS_END);
	assert_int_equal(u8_at(bp, 0x1f1), 39);		/* setup_sects */
	assert_int_equal(u16_at(bp, 0x1fa), 0xffff);	/* vid_mode */
	assert_int_equal(u16_at(bp, 0x1fe), 0xaa55);	/* boot_flag */
	assert_memory_equal((const uint8_t *)bp + 0x202, "HdrS", 4);
	assert_int_equal(u16_at(bp, 0x206), 0x020f);	/* version */
	assert_int_equal(u8_at(bp, 0x210), 0xff);	/* type_of_loader */
	assert_int_equal(u8_at(bp, 0x211), LOADED_HIGH | CAN_USE_HEAP);
	assert_int_equal(u32_at(bp, 0x218), initrd);	/* ramdisk_image */
	assert_int_equal(u32_at(bp, 0x21c), initrd_len);	/* ramdisk_size */
	assert_int_equal(u16_at(bp, 0x224), 0xfe00);	/* heap_end_ptr */
	assert_int_equal(u32_at(bp, 0x228), LAYOUT_CMDLINE); /* cmd_line_ptr */
	assert_int_equal(u32_at(bp, 0x22c), 0x7fffffff); /* initrd_addr_max */
	assert_int_equal(u32_at(bp, 0x230), 0x200000);	/* kernel_alignment */
	assert_int_equal(u16_at(bp, 0x236), 0x7f);	/* xloadflags */
	assert_int_equal(u32_at(bp, 0x238), 2047);	/* cmdline_size */
	assert_int_equal(u32_at(bp, 0x248), 0x2cc);	/* payload_offset */
	assert_int_equal(u64_at(bp, 0x250), 0);		/* setup_data */
	assert_int_equal(u64_at(bp, 0x258), 0x1000000);	/* pref_address */
	assert_int_equal(u32_at(bp, 0x260), 0x3378000);	/* init_size */
	/* High halves and everything we do not set are zero. */
	assert_int_equal(u32_at(bp, 0x0c0), 0);		/* ext_ramdisk_image */
	assert_int_equal(u32_at(bp, 0x0c4), 0);		/* ext_ramdisk_size */
	assert_int_equal(u32_at(bp, 0x0c8), 0);		/* ext_cmd_line_ptr */
	assert_int_equal(u8_at(bp, 0x1ef), 0);		/* sentinel */
	for (size_t i = 0; i < 0x40; i++)
		assert_int_equal(u8_at(bp, i), 0);	/* screen_info */
	for (size_t i = 0x2d0 + 3 * 20; i < 0xcd0; i++)
		assert_int_equal(u8_at(bp, i), 0);	/* rest of e820 */
	/* The struct the kernel sees is the struct we filled. */
	assert_int_equal(offsetof(struct boot_params, hdr), 0x1f1);
	assert_int_equal(offsetof(struct boot_params, e820_table), 0x2d0);
	free(bp);
}

/* Command line, initrd and RSDP above 4 GiB use the ext_ fields. */
static void
test_high_pointers(void **state)
{
	struct guest_mem m;
	struct kernel_info k;
	struct boot_params bp;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 8 * GiB), 0);
	debian_kernel_info(&k);
	assert_int_equal(bootparams_build(&m, &k, 4 * GiB + 0x1000, 10,
					  5 * GiB + 0x2000, 5 * GiB, 0, &bp),
			 -EFAULT);
	assert_int_equal(bootparams_build(&m, &k, 4 * GiB + 0x1000, 10,
					  4 * GiB + 0x2000, 0x100000001ull, 0,
					  &bp), 0);
	assert_int_equal(bp.hdr.cmd_line_ptr, 0x1000);
	assert_int_equal(bp.ext_cmd_line_ptr, 1);
	assert_int_equal(bp.hdr.ramdisk_image, 0x2000);
	assert_int_equal(bp.ext_ramdisk_image, 1);
	assert_int_equal(bp.hdr.ramdisk_size, 1);
	assert_int_equal(bp.ext_ramdisk_size, 1);
	assert_int_equal(bp.acpi_rsdp_addr, 0);
	assert_int_equal(bp.e820_entries, 4);
	assert_int_equal(bp.e820_table[3].addr, 4 * GiB);
	assert_int_equal(bp.e820_table[3].size, 5 * GiB);
}

static void
test_cmdline_limits(void **state)
{
	struct guest_mem m;
	struct kernel_info k;
	struct boot_params bp;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 64 * MiB), 0);
	debian_kernel_info(&k);
	assert_int_equal(bootparams_cmdline_max(&k), 2047);
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE, 2047, 0, 0, 0,
					  &bp), 0);
	memset(&bp, 0x33, sizeof(bp));
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE, 2048, 0, 0, 0,
					  &bp), -E2BIG);
	/* *ret untouched on failure. */
	assert_int_equal(bp.e820_entries, 0x33);
	/* No command line at all. */
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 0, 0, 0, &bp), 0);
	assert_int_equal(bp.hdr.cmd_line_ptr, 0);
	assert_int_equal(bp.hdr.ramdisk_image, 0);

	/* Before 2.06 the limit was 255, whatever cmdline_size says. */
	k.hdr.version = 0x0205;
	assert_int_equal(bootparams_cmdline_max(&k), 255);
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE, 256, 0, 0, 0,
					  &bp), -E2BIG);
	/* A huge cmdline_size is held to what the VMM reserves. */
	k.hdr.version = 0x020f;
	k.hdr.cmdline_size = 0x7fffffff;
	assert_int_equal(bootparams_cmdline_max(&k), LAYOUT_CMDLINE_MAX - 1);
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE,
					  (uint32_t)LAYOUT_CMDLINE_MAX, 0, 0, 0,
					  &bp), -E2BIG);
	k.hdr.cmdline_size = 0;
	assert_int_equal(bootparams_cmdline_max(&k), 255);
}

static void
test_build_errors(void **state)
{
	struct guest_mem m;
	struct kernel_info k;
	struct boot_params bp;

	(void)state;
	assert_int_equal(guest_mem_layout(&m, 64 * MiB), 0);
	debian_kernel_info(&k);
	/* The command line's NUL must be in RAM too. */
	assert_int_equal(bootparams_build(&m, &k, 64 * MiB - 10, 10, 0, 0, 0,
					  &bp), -EFAULT);
	assert_int_equal(bootparams_build(&m, &k, 64 * MiB - 11, 10, 0, 0, 0,
					  &bp), 0);
	/* An initrd past the end of RAM, or in the PCI hole. */
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 60 * MiB, 8 * MiB, 0,
					  &bp), -EFAULT);
	assert_int_equal(bootparams_build(&m, &k, 0, 0, LAYOUT_PCI_HOLE_START,
					  4096, 0, &bp), -EFAULT);
	/* Protocol 2.13 has no acpi_rsdp_addr: left zero. */
	k.hdr.version = 0x020d;
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 0, 0, 0xe0000, &bp), 0);
	assert_int_equal(bp.acpi_rsdp_addr, 0);
	k.hdr.version = 0x020e;
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 0, 0, 0xe0000, &bp), 0);
	assert_int_equal(bp.acpi_rsdp_addr, 0xe0000);
	/* An image's setup_data pointer is not passed on. */
	k.hdr.setup_data = 0x12345678;
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 0, 0, 0, &bp), 0);
	assert_int_equal(bp.hdr.setup_data, 0);
	assert_int_equal(bootparams_build(NULL, &k, 0, 0, 0, 0, 0, &bp),
			 -EINVAL);
	assert_int_equal(bootparams_build(&m, &k, 0, 0, 0, 0, 0, NULL),
			 -EINVAL);
}

/* The whole path on the real kernel, when the runner provides it. */
static void
test_real_kernel(void **state)
{
	const char *path = getenv("VMM_TEST_KERNEL");
	struct guest_mem m;
	struct kernel_info k;
	struct boot_params bp;
	char err[256];
	struct stat st;
	uint8_t *img;
	FILE *fp;

	(void)state;
	if (!path || !*path) {
		print_message("VMM_TEST_KERNEL is unset: no real kernel\n");
		skip();
	}
	fp = fopen(path, "rb");
	if (!fp)
		fail_msg("cannot open %s", path);
	assert_int_equal(fstat(fileno(fp), &st), 0);
	img = malloc((size_t)st.st_size);
	assert_non_null(img);
	assert_int_equal(fread(img, 1, (size_t)st.st_size, fp), st.st_size);
	fclose(fp);
	assert_int_equal(guest_mem_init(&m, 512 * MiB), 0);
	if (loader_load_kernel(&m, img, (size_t)st.st_size,
			       LOADER_HOST_DECOMPRESS, &k, err, sizeof(err)))
		fail_msg("%s: %s", path, err);
	assert_int_equal(bootparams_build(&m, &k, LAYOUT_CMDLINE, 20, 0, 0,
					  LAYOUT_ACPI_START, &bp), 0);
	/* The image's header, byte for byte, apart from what we set. */
	assert_int_equal(bp.hdr.version, ((struct setup_header *)(img + 0x1f1))
			 ->version);
	assert_int_equal(bp.hdr.init_size, ((struct setup_header *)(img +
			 0x1f1))->init_size);
	assert_int_equal(bp.hdr.type_of_loader, 0xff);
	assert_true(bp.hdr.loadflags & CAN_USE_HEAP);
	assert_int_equal(bp.acpi_rsdp_addr, LAYOUT_ACPI_START);
	assert_int_equal(bp.e820_entries, 3);
	assert_int_equal(bootparams_cmdline_max(&k), 2047);
	guest_mem_destroy(&m);
	free(img);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_sizes),
		cmocka_unit_test(test_e820_errors),
		cmocka_unit_test(test_zero_page_offsets),
		cmocka_unit_test(test_high_pointers),
		cmocka_unit_test(test_cmdline_limits),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_real_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
