/* SPDX-License-Identifier: MIT */
/*
 * The ACPI fixed-hardware register blocks of an x86 guest, as port I/O:
 * PM1a event (status, enable), PM1a control, the PM timer and GPE0. The
 * FADT built by x86/acpi.c describes exactly this device, so the register
 * lengths and the sleep type the guest must write for S5 live here and
 * both sides take them from this header.
 *
 * What the guest gets: S5 (SLP_TYP 5 with SLP_EN) stops the VM with
 * VM_STOP_POWEROFF; the fixed-feature power button (PWRBTN_STS/PWRBTN_EN)
 * raises the SCI, a level-triggered line on IRQ_ACPI_SCI; a 24-bit PM timer
 * at 3.579545 MHz. Reset goes through the FADT reset register, which is the
 * PCI host bridge's port 0xCF9, not this device.
 *
 * TMR_STS is worked out from the counter whenever the guest touches PM1
 * status; there is no host timer behind it, so with TMR_EN set the SCI
 * rises at the guest's next access to the block rather than on its own.
 * (Linux never enables TMR_EN.) Other sleep types than S5 are ignored: the
 * guest "wakes" at once (WAK_STS) and a warning is logged once per type.
 */
#ifndef VMM_DEV_ACPI_PM_H
#define VMM_DEV_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "platform.h"

/* Register block lengths in bytes, as the FADT advertises them. */
#define ACPI_PM1_EVT_LEN	4	/* 2 bytes status, 2 bytes enable */
#define ACPI_PM1_CNT_LEN	2
#define ACPI_PM_TMR_LEN		4
#define ACPI_GPE0_LEN		4	/* 2 bytes status, 2 bytes enable */

/* PM1 status (offset 0) and enable (offset 2) bits. */
#define ACPI_PM1_TMR_STS	(1u << 0)
#define ACPI_PM1_GBL_STS	(1u << 5)
#define ACPI_PM1_PWRBTN_STS	(1u << 8)
#define ACPI_PM1_SLPBTN_STS	(1u << 9)
#define ACPI_PM1_RTC_STS	(1u << 10)
#define ACPI_PM1_WAK_STS	(1u << 15)
#define ACPI_PM1_TMR_EN		(1u << 0)
#define ACPI_PM1_GBL_EN		(1u << 5)
#define ACPI_PM1_PWRBTN_EN	(1u << 8)
#define ACPI_PM1_SLPBTN_EN	(1u << 9)
#define ACPI_PM1_RTC_EN		(1u << 10)
#define ACPI_PM1_PCIEXP_WAKE_DIS (1u << 14)

/* PM1 control bits. */
#define ACPI_PM1_SCI_EN		(1u << 0)
#define ACPI_PM1_BM_RLD		(1u << 1)
#define ACPI_PM1_GBL_RLS	(1u << 2)
#define ACPI_PM1_SLP_TYP_SHIFT	10
#define ACPI_PM1_SLP_TYP_MASK	(7u << ACPI_PM1_SLP_TYP_SHIFT)
#define ACPI_PM1_SLP_EN		(1u << 13)

/*
 * The SLP_TYP values the DSDT's \_S0_ and \_S5_ packages hand the guest;
 * S5 is the only sleep state that does anything (it powers the VM off).
 */
#define ACPI_SLP_TYP_S0		0
#define ACPI_SLP_TYP_S5		5

/* The PM timer: 3.579545 MHz, 24 bits (the FADT leaves TMR_VAL_EXT clear). */
#define ACPI_PM_TMR_HZ		3579545ULL
#define ACPI_PM_TMR_BITS	24

struct acpi_pm;

/*
 * Create the device and register its four register blocks (at
 * PORT_ACPI_PM1A_EVT, PORT_ACPI_PM1A_CNT, PORT_ACPI_PM_TMR, PORT_ACPI_GPE0)
 * on pio. *p is copied; p may be NULL (no interrupts, no stops), and
 * p->opaque must outlive the device. Returns a new reference, or NULL with
 * errno set (EEXIST when a port is already taken, ENOMEM).
 */
struct acpi_pm *acpi_pm_new(struct bus *pio, const struct platform_ops *p);

/* Unregister from the bus and free. NULL is a no-op. */
void acpi_pm_free(struct acpi_pm *pm);

/*
 * Press the power button: set PWRBTN_STS and raise the SCI when the guest
 * has set PWRBTN_EN. A guest that listens shuts down and enters S5.
 */
void acpi_pm_power_button(struct acpi_pm *pm);

/* Whether the SCI line is asserted now (for tests and the monitor). */
bool acpi_pm_sci_asserted(struct acpi_pm *pm);

#endif
