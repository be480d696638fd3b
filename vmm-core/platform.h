/* SPDX-License-Identifier: MIT */
/*
 * What a platform device may ask of the VM it sits in: raise an interrupt
 * line, or stop the VM (poweroff, reset). Devices get this table instead of
 * the VM itself, so that they can be unit-tested without KVM.
 */
#ifndef VMM_PLATFORM_H
#define VMM_PLATFORM_H

#include <stdint.h>

enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_POWEROFF,	/* ACPI S5: the guest shut down */
	VM_STOP_REBOOT,		/* ACPI reset, i8042 reset, 0xCF9 */
	VM_STOP_CRASH,		/* triple fault, unhandled emulation failure */
	VM_STOP_SIGNAL,		/* SIGINT/SIGTERM to the VMM */
	VM_STOP_ERROR,		/* a host-side error */
	VM_STOP_MAX,
};

struct platform_ops {
	/* Set an IOAPIC/PIC line (GSI) to level 0 or 1. */
	void (*irq_line)(void *opaque, uint32_t gsi, int level);
	/* Ask the VM to stop; the first reason wins. */
	void (*request_stop)(void *opaque, enum vm_stop_reason reason);
	void *opaque;
};

static inline void
platform_irq_line(const struct platform_ops *p, uint32_t gsi, int level)
{
	if (p && p->irq_line)
		p->irq_line(p->opaque, gsi, level);
}

static inline void
platform_request_stop(const struct platform_ops *p, enum vm_stop_reason r)
{
	if (p && p->request_stop)
		p->request_stop(p->opaque, r);
}

#endif
