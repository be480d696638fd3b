/* SPDX-License-Identifier: MIT */
/*
 * The guest-physical memory map of an x86-64 VM. Every fixed address the
 * VMM places something at lives here, so that nothing overlaps by accident.
 */
#ifndef VMM_LAYOUT_H
#define VMM_LAYOUT_H

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)

/* Low memory, below 1 MiB. */
#define LAYOUT_GDT		0x00000500ULL	/* boot GDT, 4 entries */
#define LAYOUT_IDT		0x00000520ULL	/* empty boot IDT */
#define LAYOUT_BOOT_PARAMS	0x00007000ULL	/* the zero page */
#define LAYOUT_PML4		0x00009000ULL	/* identity page tables */
#define LAYOUT_PDPT		0x0000a000ULL
#define LAYOUT_PD		0x0000b000ULL	/* 4 pages: 4 GiB in 2 MiB pages */
#define LAYOUT_BOOT_STACK	0x00008ff0ULL	/* initial RSP, below the PML4 */
#define LAYOUT_CMDLINE		0x00020000ULL
#define LAYOUT_CMDLINE_MAX	0x00010000ULL
#define LAYOUT_EBDA_START	0x0009fc00ULL	/* reserved up to 1 MiB */
#define LAYOUT_ACPI_START	0x000e0000ULL	/* RSDP and the other tables */
#define LAYOUT_ACPI_SIZE	0x00010000ULL
#define LAYOUT_BIOS_END		0x00100000ULL
/* Real-mode code of a classic bzImage (setup sectors) when booted 16-bit. */
#define LAYOUT_REALMODE_SETUP	0x00090000ULL

/* The kernel proper is loaded at 16 MiB unless its header says otherwise. */
#define LAYOUT_KERNEL_DEFAULT	0x01000000ULL

/* The 32-bit PCI hole: RAM stops here and resumes at 4 GiB. */
#define LAYOUT_PCI_HOLE_START	0xc0000000ULL
#define LAYOUT_PCI_HOLE_END	0x100000000ULL
/* Inside the hole: 32-bit BARs, then the fixed platform ranges. */
#define LAYOUT_PCI_MMIO32_START	0xc0000000ULL
#define LAYOUT_PCI_MMIO32_END	0xfec00000ULL
#define LAYOUT_IOAPIC		0xfec00000ULL
#define LAYOUT_LAPIC		0xfee00000ULL
/* 64-bit BARs go above RAM; the exact base depends on the RAM size. */
#define LAYOUT_HIGH_RAM_START	0x100000000ULL

/* Fixed I/O ports of the platform. */
#define PORT_PCI_CONFIG_ADDR	0x0cf8
#define PORT_PCI_CONFIG_DATA	0x0cfc
#define PORT_RESET_CONTROL	0x0cf9	/* FADT reset register; a byte inside
					 * the PCI host bridge range 0xcf8-0xcff */
#define PORT_COM1		0x03f8
#define PORT_I8042_DATA		0x0060
#define PORT_I8042_CMD		0x0064
#define PORT_RTC		0x0070
#define PORT_ACPI_PM1A_EVT	0x0600	/* 4 bytes: status, enable */
#define PORT_ACPI_PM1A_CNT	0x0604	/* 2 bytes */
#define PORT_ACPI_PM_TMR	0x0608	/* 4 bytes */
#define PORT_ACPI_GPE0		0x0620	/* 4 bytes: status, enable */

/* Legacy interrupt lines (GSIs on the IOAPIC). */
#define IRQ_COM1		4
#define IRQ_RTC			8
#define IRQ_ACPI_SCI		9
#define IRQ_I8042_KBD		1

/*
 * PCI INTx wiring of the board: pin P (INTA# = 0 .. INTD# = 3) of the
 * function in slot S drives IOAPIC input
 *	IRQ_PCI_INTX_BASE + (S + P) % IRQ_PCI_NR_INTX.
 * GSIs 16-23 are the IOAPIC inputs above the ISA range, which nothing else
 * uses (the ISA devices, the PIT's override to 2 and the SCI on 9 are all
 * below 16); a GSI there is level-triggered and active-low, as ACPI says of
 * a _PRT entry that names a GSI directly. Using all eight rather than the
 * classic four lets eight devices each have their own line before any two
 * share one. The DSDT's _PRT (x86/acpi.c) and the lines vmm-run wires each
 * virtio-pci function to both come from here, so they cannot disagree.
 */
#define IRQ_PCI_INTX_BASE	16
#define IRQ_PCI_NR_INTX		8
#define IRQ_PCI_NR_PINS		4	/* INTA# .. INTD# */

static inline unsigned int
layout_pci_intx_gsi(unsigned int slot, unsigned int pin)
{
	return IRQ_PCI_INTX_BASE + (slot + pin) % IRQ_PCI_NR_INTX;
}

#endif
