/* SPDX-License-Identifier: MIT */
/*
 * Loading a Linux kernel into guest memory for the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst): a bzImage, or an uncompressed ELF
 * vmlinux, and an initrd.
 */
#ifndef VMM_X86_LOADER_H
#define VMM_X86_LOADER_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

enum loader_mode {
	/*
	 * Decompress a bzImage's payload on the host and load the ELF
	 * vmlinux inside it: the guest skips its own decompressor, which
	 * runs for minutes where kernel code is emulated. Falls back to
	 * LOADER_CLASSIC for a payload we cannot read.
	 */
	LOADER_HOST_DECOMPRESS,
	/* Load the protected-mode part as is; the guest decompresses. */
	LOADER_CLASSIC,
	LOADER_MODE_MAX,
};

struct kernel_info {
	/* gpa of the 64-bit entry point: jump here, RSI = boot_params gpa. */
	uint64_t entry;
	/* gpa range reserved for the kernel (incl. init_size for bzImage). */
	uint64_t load_start, load_end;
	bool is_bzimage;
	bool host_decompressed;
	/* The bzImage payload's compression ("lz4", ...), or NULL. Static. */
	const char *compression;
	/* The bzImage's setup header, or one synthesized for an ELF. */
	struct setup_header hdr;
};

/* The lowest boot protocol with a 64-bit entry point (xloadflags). */
#define LOADER_MIN_PROTOCOL	0x020c

/*
 * Load the kernel in image (len bytes, a bzImage or an ELF64 vmlinux) into
 * m and describe it in *ret. Nothing is written to m unless the kernel
 * fits. On failure, err (if not NULL) holds a one-line reason.
 * Returns 0, -ENOEXEC (not a usable kernel), -EFBIG (does not fit in guest
 * RAM), -EINVAL (bad arguments, or a kernel placed over low memory),
 * -ENOMEM.
 */
int loader_load_kernel(const struct guest_mem *m, const void *image,
		       size_t len, enum loader_mode mode,
		       struct kernel_info *ret, char *err, size_t errlen);

/*
 * Place an initrd (len bytes) page-aligned as high as possible in low RAM,
 * below the kernel's initrd_addr_max and above k->load_end; its gpa goes
 * to *ret_gpa. Returns 0, -EINVAL (empty) or -ENOSPC (does not fit, err
 * names the sizes).
 */
int loader_load_initrd(const struct guest_mem *m, const struct kernel_info *k,
		       const void *data, size_t len, uint64_t *ret_gpa,
		       char *err, size_t errlen);

#endif
