/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables for an x86 guest: RSDP, XSDT and RSDT, FADT with its FACS,
 * MADT, and a DSDT whose AML is encoded here. The reference guest has no
 * MP-table support, so this is how it finds its CPUs, its IOAPIC, the PCI
 * root bridge and the S5 sleep type; the FADT describes dev/acpi_pm.c and
 * the reset register (port 0xCF9, owned by the PCI host bridge).
 *
 * The table layouts and the read-back helpers below need no libc, so that
 * a freestanding test guest can include this header to check what it sees.
 * All multi-byte fields are little-endian, as on the x86 host.
 */
#ifndef VMM_X86_ACPI_H
#define VMM_X86_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_mem;

/*
 * xAPIC ids are 8 bits and 0xff is the broadcast id; one more id goes to
 * the IOAPIC, which takes the first id after the last vCPU's.
 */
#define ACPI_MAX_CPUS		254

struct acpi_config {
	unsigned int nr_cpus;		/* vCPU i has APIC id i */
	/* PCI memory windows, [start, end); 0, 0 = none. */
	uint64_t pci_mmio32_start, pci_mmio32_end;
	uint64_t pci_mmio64_start, pci_mmio64_end;
};

/*
 * Build the tables into guest memory at base_gpa, using at most max_size
 * bytes from there; the RSDP comes first, at base_gpa. base_gpa must be
 * 16-byte aligned and the tables must end below 4 GiB (the RSDT and the
 * FADT hold 32-bit addresses); at LAYOUT_ACPI_START the legacy RSDP scan of
 * 0xE0000-0xFFFFF finds them too. Writes nothing unless it succeeds.
 * Returns 0 and the RSDP's address in *ret_rsdp_gpa (may be NULL);
 * -EINVAL for a bad configuration or base, -ENOSPC when max_size is too
 * small, -EFAULT when the range is not guest RAM, -ENOMEM.
 */
int acpi_build(const struct guest_mem *m, uint64_t base_gpa, uint64_t max_size,
	       const struct acpi_config *cfg, uint64_t *ret_rsdp_gpa);

/*
 * Encode an AML PkgLength for a package whose contents after the PkgLength
 * are body_len bytes, in the fewest bytes (1 to 4). The encoded length
 * counts the PkgLength bytes themselves. Returns the number of bytes
 * written to out, or 0 when body_len is too long to encode (>= 2^28 - 4).
 */
unsigned int acpi_aml_pkglen_encode(uint8_t out[4], uint32_t body_len);

/* Table layouts, as the ACPI specification (6.x) lays them out. */

struct acpi_rsdp {
	char signature[8];		/* "RSD PTR " */
	uint8_t checksum;		/* over the first 20 bytes */
	char oem_id[6];
	uint8_t revision;		/* 2: ACPI 2.0 and later */
	uint32_t rsdt_address;
	uint32_t length;		/* 36 */
	uint64_t xsdt_address;
	uint8_t extended_checksum;	/* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

#define ACPI_RSDP_V1_LEN	20

/*
 * The tables for a firmware that places them itself, as SeaBIOS does from
 * fw_cfg's "etc/table-loader" (x86/firmware.c): the RSDP and the other
 * tables as two blobs, whose address fields hold offsets into the tables
 * blob, and where those fields and the checksums they change are. The
 * loader puts the blobs somewhere (the tables blob ACPI_FACS_ALIGN-aligned,
 * which keeps the FACS inside aligned), adds the tables blob's address to
 * each field and corrects each checksum byte so that its range sums to 0.
 */
#define ACPI_BLOB_MAX_PTRS	12
#define ACPI_BLOB_MAX_SUMS	8

struct acpi_blob_ptr {
	bool in_rsdp;			/* in the RSDP blob, else the tables */
	uint32_t offset;		/* of the field in its blob */
	uint8_t size;			/* 4 or 8 bytes */
};

struct acpi_blob_sum {
	bool in_rsdp;
	uint32_t offset;		/* the checksum byte */
	uint32_t start, length;		/* the range that sums to 0 */
};

struct acpi_blob {
	struct acpi_rsdp rsdp;
	uint8_t *tables;		/* owned */
	size_t tables_len;
	struct acpi_blob_ptr ptrs[ACPI_BLOB_MAX_PTRS];
	unsigned int nr_ptrs;
	struct acpi_blob_sum sums[ACPI_BLOB_MAX_SUMS];
	unsigned int nr_sums;
};

/*
 * Build the tables as blobs into *ret (ret->tables is new: give it back
 * with acpi_blob_release()). 0; -EINVAL for a bad configuration, -ENOMEM.
 */
int acpi_build_blob(const struct acpi_config *cfg, struct acpi_blob *ret);

/* Free what acpi_build_blob() allocated; NULL is a no-op. */
void acpi_blob_release(struct acpi_blob *b);

struct acpi_header {
	char signature[4];
	uint32_t length;		/* of the whole table, header included */
	uint8_t revision;
	uint8_t checksum;		/* the whole table sums to 0 */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;		/* ACPI_GAS_* */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;		/* 1 byte, 2 word, 3 dword, 4 qword */
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_MEMORY		0
#define ACPI_GAS_IO		1

struct acpi_fadt {
	struct acpi_header header;	/* "FACP" */
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

#define ACPI_FADT_REVISION	6
#define ACPI_FADT_MINOR_VERSION	0

/* FADT flags. */
#define ACPI_FADT_WBINVD		(1u << 0)
#define ACPI_FADT_PROC_C1		(1u << 2)
#define ACPI_FADT_PWR_BUTTON		(1u << 4)	/* set: no fixed button */
#define ACPI_FADT_SLP_BUTTON		(1u << 5)	/* set: no fixed button */
#define ACPI_FADT_FIX_RTC		(1u << 6)
#define ACPI_FADT_TMR_VAL_EXT		(1u << 8)
#define ACPI_FADT_RESET_REG_SUP		(1u << 10)
#define ACPI_FADT_HW_REDUCED_ACPI	(1u << 20)

/* FADT IA-PC boot architecture flags. */
#define ACPI_FADT_BOOT_LEGACY_DEVICES	(1u << 0)
#define ACPI_FADT_BOOT_8042		(1u << 1)
#define ACPI_FADT_BOOT_VGA_NOT_PRESENT	(1u << 2)

struct acpi_facs {
	char signature[4];		/* "FACS"; no checksum */
	uint32_t length;		/* 64 */
	uint32_t hardware_signature;
	uint32_t firmware_waking_vector;
	uint32_t global_lock;
	uint32_t flags;
	uint64_t x_firmware_waking_vector;
	uint8_t version;
	uint8_t reserved0[3];
	uint32_t ospm_flags;
	uint8_t reserved1[24];
} __attribute__((packed));

#define ACPI_FACS_ALIGN		64

struct acpi_madt {
	struct acpi_header header;	/* "APIC" */
	uint32_t lapic_address;
	uint32_t flags;
	/* Followed by entries, each starting with type and length. */
} __attribute__((packed));

#define ACPI_MADT_PCAT_COMPAT		(1u << 0)

#define ACPI_MADT_TYPE_LAPIC		0
#define ACPI_MADT_TYPE_IOAPIC		1
#define ACPI_MADT_TYPE_ISO		2
#define ACPI_MADT_TYPE_LAPIC_NMI	4

struct acpi_madt_lapic {
	uint8_t type;
	uint8_t length;			/* 8 */
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} __attribute__((packed));

#define ACPI_MADT_LAPIC_ENABLED		(1u << 0)

struct acpi_madt_ioapic {
	uint8_t type;
	uint8_t length;			/* 12 */
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct acpi_madt_iso {
	uint8_t type;
	uint8_t length;			/* 10 */
	uint8_t bus;			/* 0: ISA */
	uint8_t source;			/* the ISA IRQ */
	uint32_t gsi;
	uint16_t flags;			/* MPS INTI flags */
} __attribute__((packed));

#define ACPI_MADT_POLARITY_CONFORMS	0x0
#define ACPI_MADT_POLARITY_HIGH		0x1
#define ACPI_MADT_POLARITY_LOW		0x3
#define ACPI_MADT_TRIGGER_CONFORMS	(0x0 << 2)
#define ACPI_MADT_TRIGGER_EDGE		(0x1 << 2)
#define ACPI_MADT_TRIGGER_LEVEL		(0x3 << 2)

struct acpi_madt_lapic_nmi {
	uint8_t type;
	uint8_t length;			/* 6 */
	uint8_t processor_uid;		/* 0xff: all processors */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

/* The revisions of the other tables. */
#define ACPI_RSDT_REVISION	1
#define ACPI_XSDT_REVISION	1
#define ACPI_MADT_REVISION	4
#define ACPI_DSDT_REVISION	2	/* 2 and up: 64-bit AML integers */
#define ACPI_FACS_VERSION	2

/* Sum of len bytes; a table with a correct checksum sums to 0. */
static inline uint8_t
acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *b++);
	return sum;
}

/*
 * Decode the AML PkgLength at p (avail bytes readable). On success sets
 * *ret_len to the encoded length (which counts the PkgLength bytes) and
 * *ret_nbytes to the PkgLength's own size, and returns true. Returns false
 * for a truncated or malformed encoding.
 */
static inline bool
acpi_aml_pkglen_decode(const uint8_t *p, size_t avail, uint32_t *ret_len,
		       unsigned int *ret_nbytes)
{
	unsigned int n, i;
	uint32_t len;

	if (avail < 1)
		return false;
	n = (unsigned int)(p[0] >> 6) + 1;
	if (n > avail)
		return false;
	if (n == 1) {
		len = p[0] & 0x3f;
	} else {
		/* Bits 4-5 of the lead byte are reserved in the long forms. */
		if (p[0] & 0x30)
			return false;
		len = p[0] & 0x0f;
		for (i = 1; i < n; i++)
			len |= (uint32_t)p[i] << (4 + 8 * (i - 1));
	}
	if (len < n)
		return false;
	*ret_len = len;
	*ret_nbytes = n;
	return true;
}

#endif
