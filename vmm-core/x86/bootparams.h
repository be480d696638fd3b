/* SPDX-License-Identifier: MIT */
/*
 * The zero page (struct boot_params) and the e820 memory map handed to a
 * kernel entered through the 64-bit boot protocol.
 */
#ifndef VMM_X86_BOOTPARAMS_H
#define VMM_X86_BOOTPARAMS_H

#include <asm/bootparam.h>
#include <stdint.h>

#include "mem.h"
#include "x86/loader.h"

/* e820 entry types (ACPI "Address Range Types"). */
#define E820_TYPE_RAM		1
#define E820_TYPE_RESERVED	2
#define E820_TYPE_ACPI		3

/*
 * Build the e820 map of m into tab (room for max entries), sorted by
 * address: RAM below the EBDA, the EBDA/BIOS area (with the ACPI tables)
 * reserved up to 1 MiB, RAM from 1 MiB to the end of low RAM, and RAM
 * from 4 GiB when m has a high region. The PCI hole is left out.
 * Works on a layout without a mapping (guest_mem_layout()).
 * Returns 0, -EINVAL (low RAM ends below 1 MiB) or -ENOSPC (max too small).
 */
int e820_build(const struct guest_mem *m, struct boot_e820_entry *tab,
	       unsigned int max, unsigned int *ret_n);

/*
 * Fill *ret with the zero page for the kernel k: its setup header, the
 * command line (cmdline_len bytes at cmdline_gpa, not counting the NUL
 * that must follow; gpa 0 and length 0 for none), the initrd (size 0 for
 * none), the ACPI RSDP (0 for none; protocol 2.14 and later) and the e820
 * map. The caller writes *ret to guest memory.
 * Returns 0, -E2BIG (command line longer than the kernel accepts), -EFAULT
 * (command line or initrd outside guest RAM) or an e820_build() error.
 */
int bootparams_build(const struct guest_mem *m, const struct kernel_info *k,
		     uint64_t cmdline_gpa, uint32_t cmdline_len,
		     uint64_t initrd_gpa, uint64_t initrd_size,
		     uint64_t rsdp_gpa, struct boot_params *ret);

/*
 * The longest command line (without its NUL) k accepts, within what the
 * VMM reserves for it (LAYOUT_CMDLINE_MAX).
 */
uint32_t bootparams_cmdline_max(const struct kernel_info *k);

#endif
