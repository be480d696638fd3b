/* SPDX-License-Identifier: MIT */
/*
 * Firmware boot: the vCPU starts at the reset vector (F000:FFF0, linear
 * 0xFFFFFFF0) in a BIOS image such as SeaBIOS, instead of at a kernel's
 * entry point.
 *
 * Where the image lives:
 * - All of it sits just below 4 GiB, in a KVM memory slot with
 *   KVM_MEM_READONLY backed by a private copy: the guest executes and reads
 *   it at memory speed; a write exits as MMIO and is ignored, as a flash
 *   chip would without its unlock sequence.
 * - Its last 128 KiB (all of it if smaller) also sit at 0xE0000-0xFFFFF, so
 *   that real-mode code finds the BIOS in the F segment. There the copy goes
 *   into guest RAM, which covers 0-1 MiB in one piece: the legacy window is
 *   writable RAM from the start, already holding the image. SeaBIOS on an
 *   i440FX unlocks "shadow RAM" through the PAM registers and copies itself
 *   from the top of 4 GiB into that window; here the copy lands on the same
 *   bytes, and its later PAM write-protect is kept in the register only (see
 *   dev/pci.h): the window stays writable. 0xA0000-0xBFFFF (VGA) is RAM too;
 *   the firmware's own e820 keeps 0xA0000-0xFFFFF away from the OS.
 *
 * What the firmware learns about the machine: the CMOS (dev/rtc.c: memory
 * sizes, CPU count), and fw_cfg (dev/fw_cfg.h) with "etc/e820" (RAM below
 * and above the PCI hole), the CPU counts, the IRQ0 override, no boot menu,
 * "etc/boot-fail-wait", where asked "etc/sercon-port" so that SeaBIOS
 * writes its screen output to the serial port, and the ACPI tables with
 * QEMU's table loader, which SeaBIOS carries out (so that an OS it boots
 * finds its CPUs, IOAPIC, PCI interrupt routing and power button as a
 * directly booted kernel does). Its debug log goes to the debug port
 * (dev/debugcon.h).
 */
#ifndef VMM_X86_FIRMWARE_H
#define VMM_X86_FIRMWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "mem.h"

struct vm;
struct vcpu;
struct fw_cfg;
struct fw_cfg_e820_entry;
struct debugcon;

#define FIRMWARE_MIN_SIZE	(4 * KiB)
/* Up to the top of the 32-bit space, clear of the LAPIC and of KVM's
 * real-mode TSS and identity page at 0xFEFFC000-0xFEFFFFFF. */
#define FIRMWARE_MAX_SIZE	(16 * MiB)
#define FIRMWARE_TOP		0x100000000ULL	/* the image ends here */
#define FIRMWARE_LEGACY_END	LAYOUT_BIOS_END	/* 1 MiB */
#define FIRMWARE_LEGACY_MAX	(128 * KiB)	/* 0xE0000-0xFFFFF */
/* KVM memory slot of the image; vm.c uses 0 and 1 for RAM. */
#define FIRMWARE_MEM_SLOT	8

/* The reset state of an x86 CPU (SDM vol. 3, 9.1.1). */
#define FIRMWARE_RESET_CS_SELECTOR	0xf000
#define FIRMWARE_RESET_CS_BASE		0xffff0000ULL
#define FIRMWARE_RESET_RIP		0xfff0
#define FIRMWARE_RESET_CR0		0x60000010ULL	/* CD NW ET */

/* "etc/boot-fail-wait": never retry after "No bootable device". */
#define FIRMWARE_BOOT_FAIL_WAIT_FOREVER	UINT32_MAX

struct firmware_config {
	const void *image;	/* borrowed: copied by firmware_new() */
	size_t image_size;
	/* Debug port output (the firmware's log), borrowed; -1: none. */
	int debug_fd;
	/* Port of the serial console the firmware should print to; 0: none. */
	uint16_t serial_port;
	/* Milliseconds SeaBIOS waits after "No bootable device" before it
	 * reboots; FIRMWARE_BOOT_FAIL_WAIT_FOREVER: it never does. */
	uint32_t boot_fail_wait_ms;
};

struct firmware {
	struct vm *vm;			/* borrowed */
	uint8_t *rom;			/* the private copy, size bytes */
	size_t size;
	uint64_t gpa;			/* FIRMWARE_TOP - size */
	bool slot_set;			/* the KVM slot is installed */
	bool rom_registered;		/* the MMIO range is on vm->mmio */
	bool write_logged;
	uint64_t rom_writes;		/* guest writes ignored (atomic) */
	/* Owned. Other set-up code may add fw_cfg files (e.g. "bootorder")
	 * before the VM starts. */
	struct fw_cfg *fw_cfg;
	struct debugcon *debugcon;
};

/*
 * Whether size is a firmware image size this VMM can map: a multiple of
 * 4 KiB from FIRMWARE_MIN_SIZE to FIRMWARE_MAX_SIZE. 0 or -EINVAL.
 */
int firmware_check_size(size_t size);

/*
 * Copy the image's last FIRMWARE_LEGACY_MAX bytes (all of it if smaller)
 * into guest RAM so that they end at 1 MiB. 0; -EINVAL for a bad size;
 * -EFAULT when guest RAM does not cover that range.
 */
int firmware_load_legacy(const struct guest_mem *m, const void *image,
			 size_t size);

/*
 * Fill out with the guest's RAM as an "etc/e820" table: one entry per RAM
 * region. Returns the number of entries (at most max), or -ENOSPC.
 */
int firmware_e820(const struct guest_mem *m, struct fw_cfg_e820_entry *out,
		  unsigned int max);

/*
 * QEMU's ACPI table loader ("etc/table-loader"), which SeaBIOS and OVMF
 * carry out: 128-byte little-endian commands that place fw_cfg files in
 * guest memory, patch pointers between them and fix checksums.
 */
#define FIRMWARE_LOADER_ALLOCATE	1
#define FIRMWARE_LOADER_ADD_POINTER	2
#define FIRMWARE_LOADER_ADD_CHECKSUM	3
#define FIRMWARE_LOADER_ZONE_HIGH	1	/* anywhere the firmware likes */
#define FIRMWARE_LOADER_ZONE_FSEG	2	/* 0xE0000-0xFFFFF */
#define FIRMWARE_LOADER_FILE		56	/* name with its NUL */

struct firmware_loader_entry {
	uint32_t command;
	union {
		struct {
			char file[FIRMWARE_LOADER_FILE];
			uint32_t align;
			uint8_t zone;
		} __attribute__((packed)) alloc;
		struct {
			char dest[FIRMWARE_LOADER_FILE];
			char src[FIRMWARE_LOADER_FILE];
			uint32_t offset;	/* of the field in dest */
			uint8_t size;		/* 1, 2, 4 or 8 */
		} __attribute__((packed)) pointer;
		struct {
			char file[FIRMWARE_LOADER_FILE];
			uint32_t offset;	/* the checksum byte */
			uint32_t start;
			uint32_t length;
		} __attribute__((packed)) checksum;
		uint8_t pad[124];
	};
} __attribute__((packed));

/* The fw_cfg files of the ACPI tables and the loader's commands. */
#define FIRMWARE_ACPI_RSDP	"etc/acpi/rsdp"
#define FIRMWARE_ACPI_TABLES	"etc/acpi/tables"
#define FIRMWARE_TABLE_LOADER	"etc/table-loader"

/*
 * Add the items firmware_new() describes to f, for a VM with this RAM and
 * nr_cpus vCPUs, with the ACPI tables of x86/acpi.c (the same as a
 * direct kernel boot gets, the PCI window from the top of RAM below 4 GiB,
 * where SeaBIOS puts BARs, to LAYOUT_PCI_MMIO32_END) for the firmware to
 * place: the RSDP in the F segment, where an OS looks for it. 0 or a
 * negative errno from fw_cfg or x86/acpi.c.
 */
int firmware_fill_fw_cfg(struct fw_cfg *f, const struct guest_mem *m,
			 unsigned int nr_cpus,
			 const struct firmware_config *cfg);

/*
 * Put the vCPU in the x86 reset state: real mode, CS F000 with base
 * FFFF0000, IP FFF0, CR0 60000010, flat 64 KiB data segments, RFLAGS 2,
 * EDX the CPU signature KVM chose. 0 or -errno from KVM.
 */
int firmware_reset_vcpu(struct vcpu *v);

/*
 * Map the image into vm (which must not run yet) as described above,
 * create fw_cfg and the debug port on vm->pio, and put the boot vCPU at the
 * reset vector; the other vCPUs wait for the firmware's INIT/SIPI. Returns
 * 0 and a new reference in *ret, or a negative errno with a one-line reason
 * in err: -EINVAL for a bad image size or less than 1 MiB of RAM, -ENOTSUP
 * when KVM has no read-only memory slots, -EEXIST when a port or the
 * range below 4 GiB is taken, -ENOMEM, or a KVM error.
 */
int firmware_new(struct vm *vm, const struct firmware_config *cfg,
		 struct firmware **ret, char *err, size_t errlen);

/* Remove the image from the VM and free. NULL is a no-op. */
void firmware_free(struct firmware *fw);

/* Guest writes to the image that were ignored. */
uint64_t firmware_rom_writes(const struct firmware *fw);

#endif
