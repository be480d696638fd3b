/* SPDX-License-Identifier: MIT */
/*
 * QEMU's firmware configuration device (fw_cfg), the port-I/O flavour of
 * x86: firmware writes a 16-bit key to the selector port 0x510 and reads
 * the item's bytes, one after the other, from the data port 0x511. Reading
 * past the end of an item, or an item that does not exist, gives zeros.
 * SeaBIOS and OVMF find their RAM layout, CPU count, boot order and options
 * here (the file names are theirs, see docs/specs/fw_cfg.rst in QEMU).
 *
 * Items are either plain keys below FW_CFG_FILE_FIRST (and arch-local keys
 * from FW_CFG_ARCH_LOCAL) or named files, which get keys from
 * FW_CFG_FILE_FIRST up and are listed in the directory at FW_CFG_FILE_DIR
 * (a big-endian count, then one struct fw_cfg_file per file, sorted by
 * name). The signature "QEMU" and the ID are always there. The ID says
 * "traditional interface only": there is no DMA interface, and the guest
 * cannot write items. Every item is a copy made when it is added; the host
 * adds items before the guest runs.
 */
#ifndef VMM_DEV_FW_CFG_H
#define VMM_DEV_FW_CFG_H

#include <stdint.h>

#include "bus.h"

#define FW_CFG_PORT_SEL		0x510	/* 16-bit write: select */
#define FW_CFG_PORT_DATA	0x511	/* 8-bit read: next byte */
#define FW_CFG_NR_PORTS		2

/* Keys. */
#define FW_CFG_SIGNATURE	0x0000	/* "QEMU" */
#define FW_CFG_ID		0x0001	/* u32 LE: interface bits */
#define FW_CFG_UUID		0x0002
#define FW_CFG_NOGRAPHIC	0x0004
#define FW_CFG_NB_CPUS		0x0005	/* u16 LE: CPUs at boot */
#define FW_CFG_NUMA		0x000d
#define FW_CFG_BOOT_MENU	0x000e	/* u16 LE: show the boot menu */
#define FW_CFG_MAX_CPUS		0x000f	/* u16 LE */
#define FW_CFG_FILE_DIR		0x0019
#define FW_CFG_FILE_FIRST	0x0020
#define FW_CFG_WRITE_CHANNEL	0x4000	/* unsupported: reads 0 */
#define FW_CFG_ARCH_LOCAL	0x8000
#define FW_CFG_ACPI_TABLES	(FW_CFG_ARCH_LOCAL + 0)
#define FW_CFG_SMBIOS_ENTRIES	(FW_CFG_ARCH_LOCAL + 1)
#define FW_CFG_IRQ0_OVERRIDE	(FW_CFG_ARCH_LOCAL + 2)	/* u32 LE */
#define FW_CFG_E820_TABLE	(FW_CFG_ARCH_LOCAL + 3)
#define FW_CFG_ARCH_LAST	(FW_CFG_ARCH_LOCAL + 0xff)

#define FW_CFG_ID_TRADITIONAL	0x01

#define FW_CFG_MAX_FILES	64
#define FW_CFG_MAX_FILE_PATH	56	/* with the terminating NUL */
#define FW_CFG_MAX_ITEM_SIZE	(64u << 20)

/* One directory entry; size and select are big-endian. */
struct fw_cfg_file {
	uint32_t size;
	uint16_t select;
	uint16_t reserved;
	char name[FW_CFG_MAX_FILE_PATH];
} __attribute__((packed));

/* An "etc/e820" entry: little-endian, packed to 20 bytes. */
struct fw_cfg_e820_entry {
	uint64_t address;
	uint64_t length;
	uint32_t type;
} __attribute__((packed));

#define FW_CFG_E820_RAM		1
#define FW_CFG_E820_RESERVED	2

struct fw_cfg;

/*
 * Create the device on FW_CFG_PORT_SEL and FW_CFG_PORT_DATA of pio, with
 * the signature, the ID and an empty directory. Returns a new reference, or
 * NULL with errno set (EEXIST when the ports are taken, ENOMEM).
 */
struct fw_cfg *fw_cfg_new(struct bus *pio);

/* Unregister from the bus and free every item. NULL is a no-op. */
void fw_cfg_free(struct fw_cfg *f);

/*
 * Add a copy of len bytes (len may be 0) under a plain key: one below
 * FW_CFG_FILE_FIRST other than the signature, ID and directory, or an
 * arch-local key up to FW_CFG_ARCH_LAST. Returns 0; -EINVAL for another
 * key, or data NULL with len > 0; -EEXIST when the key has an item;
 * -EFBIG above FW_CFG_MAX_ITEM_SIZE; -ENOMEM.
 */
int fw_cfg_add_bytes(struct fw_cfg *f, uint16_t key, const void *data,
		     uint32_t len);

/* Shorthands for little-endian integer items. */
int fw_cfg_add_u16(struct fw_cfg *f, uint16_t key, uint16_t value);
int fw_cfg_add_u32(struct fw_cfg *f, uint16_t key, uint32_t value);

/*
 * Add a copy of a named file and list it in the directory. name is 1 to
 * FW_CFG_MAX_FILE_PATH - 1 bytes. Returns the key it got (>= 0x20);
 * -EINVAL for an empty name or data NULL with len > 0; -ENAMETOOLONG;
 * -EEXIST when a file has that name; -ENOSPC after FW_CFG_MAX_FILES files;
 * -EFBIG above FW_CFG_MAX_ITEM_SIZE; -ENOMEM.
 */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, const void *data,
		    uint32_t len);

#endif
