/* SPDX-License-Identifier: MIT */
#include "x86/bootparams.h"
#include "layout.h"

#include <errno.h>
#include <string.h>

/* Before protocol 2.06 the command line was limited to 255 bytes. */
#define CMDLINE_MAX_OLD		255
#define PROTOCOL_CMDLINE_SIZE	0x0206
#define PROTOCOL_ACPI_RSDP	0x020e

/*
 * heap_end_ptr counts from the start of the real-mode code, minus 0x200.
 * The 64-bit entry skips the real-mode code that uses it, but the value
 * should still describe a heap that fits in its 64 KiB segment; 0xfe00 is
 * the end of that segment, as boot.rst's example loader uses.
 */
#define HEAP_END_PTR		0xfe00

/* vid_mode: "normal" (80x25 text), ask nothing of a video BIOS. */
#define VID_MODE_NORMAL		0xffff

static int
e820_add(struct boot_e820_entry *tab, unsigned int max, unsigned int *n,
	 uint64_t addr, uint64_t size, uint32_t type)
{
	if (size == 0)
		return 0;
	if (*n >= max)
		return -ENOSPC;
	tab[*n] = (struct boot_e820_entry){ .addr = addr, .size = size,
					    .type = type };
	(*n)++;
	return 0;
}

int
e820_build(const struct guest_mem *m, struct boot_e820_entry *tab,
	   unsigned int max, unsigned int *ret_n)
{
	uint64_t low_end;
	unsigned int n = 0;
	int r;

	if (!m || !tab || !ret_n || m->nr_regions < 1 ||
	    m->regions[0].gpa != 0)
		return -EINVAL;
	low_end = m->regions[0].size;
	if (low_end <= LAYOUT_BIOS_END)
		return -EINVAL;
	r = e820_add(tab, max, &n, 0, LAYOUT_EBDA_START, E820_TYPE_RAM);
	if (r == 0)
		r = e820_add(tab, max, &n, LAYOUT_EBDA_START,
			     LAYOUT_BIOS_END - LAYOUT_EBDA_START,
			     E820_TYPE_RESERVED);
	if (r == 0)
		r = e820_add(tab, max, &n, LAYOUT_BIOS_END,
			     low_end - LAYOUT_BIOS_END, E820_TYPE_RAM);
	if (r == 0 && m->nr_regions > 1)
		r = e820_add(tab, max, &n, m->regions[1].gpa,
			     m->regions[1].size, E820_TYPE_RAM);
	if (r < 0)
		return r;
	*ret_n = n;
	return 0;
}

uint32_t
bootparams_cmdline_max(const struct kernel_info *k)
{
	uint32_t max = CMDLINE_MAX_OLD;

	if (k->hdr.version >= PROTOCOL_CMDLINE_SIZE && k->hdr.cmdline_size)
		max = k->hdr.cmdline_size;
	if (max > LAYOUT_CMDLINE_MAX - 1)
		max = LAYOUT_CMDLINE_MAX - 1;
	return max;
}

int
bootparams_build(const struct guest_mem *m, const struct kernel_info *k,
		 uint64_t cmdline_gpa, uint32_t cmdline_len,
		 uint64_t initrd_gpa, uint64_t initrd_size,
		 uint64_t rsdp_gpa, struct boot_params *ret)
{
	struct boot_params bp;
	struct setup_header *h = &bp.hdr;
	unsigned int n;
	int r;

	if (!m || !k || !ret)
		return -EINVAL;
	if (cmdline_len > bootparams_cmdline_max(k))
		return -E2BIG;
	/* The command line and its NUL, and the initrd, must be RAM. */
	if ((cmdline_gpa || cmdline_len) &&
	    !guest_mem_contains(m, cmdline_gpa, (uint64_t)cmdline_len + 1))
		return -EFAULT;
	if (initrd_size && !guest_mem_contains(m, initrd_gpa, initrd_size))
		return -EFAULT;

	/*
	 * Start from zeros, as boot.rst asks of a loader: only the setup
	 * header comes from the image, the rest is ours.
	 */
	memset(&bp, 0, sizeof(bp));
	bp.hdr = k->hdr;
	r = e820_build(m, bp.e820_table, E820_MAX_ENTRIES_ZEROPAGE, &n);
	if (r < 0)
		return r;
	bp.e820_entries = (uint8_t)n;

	h->type_of_loader = 0xff;
	h->vid_mode = VID_MODE_NORMAL;
	h->loadflags |= CAN_USE_HEAP;
	h->heap_end_ptr = HEAP_END_PTR;
	h->cmd_line_ptr = (uint32_t)cmdline_gpa;
	bp.ext_cmd_line_ptr = (uint32_t)(cmdline_gpa >> 32);
	h->ramdisk_image = (uint32_t)(initrd_size ? initrd_gpa : 0);
	bp.ext_ramdisk_image = (uint32_t)((initrd_size ? initrd_gpa : 0) >> 32);
	h->ramdisk_size = (uint32_t)initrd_size;
	bp.ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	/* No setup_data chain: the field must not carry the image's value. */
	h->setup_data = 0;
	if (h->version >= PROTOCOL_ACPI_RSDP)
		bp.acpi_rsdp_addr = rsdp_gpa;

	*ret = bp;
	return 0;
}
