/* SPDX-License-Identifier: MIT */
/*
 * KVM glue for the virtio data path: GSI routing for MSI messages, irqfds
 * and ioeventfds, on a struct vm.
 *
 * KVM_SET_GSI_ROUTING replaces the VM's whole routing table, including the
 * default routes of GSIs 0-23 to the PIC and IOAPIC that KVM installs with
 * the irqchip. So the VM keeps one router (one table): it starts with
 * those defaults, exactly as KVM has them (GSIs 0-15 to both the PIC and
 * the IOAPIC pin of the same number, 16-23 to the IOAPIC), and MSI routes
 * from GSI 24 on are added to it.
 */
#ifndef VMM_VIRTIO_IRQ_H
#define VMM_VIRTIO_IRQ_H

#include <stdbool.h>
#include <stdint.h>

#include "vm.h"
#include "virtio/virtio_pci.h"

#define IRQ_NR_LEGACY_GSIS	24
#define IRQ_MAX_ROUTES		1024

struct irq_router;

/*
 * A router for vm (which must have an in-kernel irqchip). Nothing is sent
 * to KVM until the first MSI route. Returns a new reference, or NULL with
 * errno set (ENODEV: no irqchip or no KVM_CAP_IRQ_ROUTING, ENOMEM).
 */
struct irq_router *irq_router_new(struct vm *vm);
/* Unbind every irqfd it bound and free it; the routes stay in KVM. */
void irq_router_free(struct irq_router *r);

/*
 * Deliver MSI (addr, data) whenever fd is written: the first call for fd
 * takes a GSI, sets its route and binds fd to it with KVM_IRQFD; later
 * calls change the route. 0 or a negative errno (-ENOSPC: no GSI left).
 */
int irq_router_msi_set(struct irq_router *r, int fd, uint64_t addr,
		       uint32_t data);
/* Unbind fd and free its GSI. 0 or -ENOENT. */
int irq_router_msi_clear(struct irq_router *r, int fd);
/* How many MSI routes are in the table. */
unsigned int irq_router_nr_msi(struct irq_router *r);

/*
 * A virtio-pci sink whose MSI routes, ioeventfds and INTx go to r's VM;
 * INTx drives gsi (through vm_irq_line), or there is none for a gsi of
 * IRQ_NR_LEGACY_GSIS or more. Functions given the same gsi share the line:
 * it is high while any of them asserts it, as level-triggered PCI INTx is.
 */
void irq_router_sink(struct irq_router *r, uint32_t intx_gsi,
		     struct virtio_pci_sink *ret);

/* KVM_IOEVENTFD: a write of any length at MMIO gpa signals fd. */
int irq_ioeventfd(struct vm *vm, uint64_t gpa, int fd, bool assign);
/* KVM_IRQFD: a write to fd raises gsi (assign), or stops doing so. */
int irq_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign);

#endif
