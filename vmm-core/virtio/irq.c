/* SPDX-License-Identifier: MIT */
#include "virtio/irq.h"
#include "layout.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define IRQ_MAX_INTX		32

_Static_assert(IRQ_PCI_INTX_BASE + IRQ_PCI_NR_INTX <= IRQ_NR_LEGACY_GSIS,
	       "every PCI INTx GSI has a legacy route and an INTx slot");

struct irq_msi {
	int fd;			/* -1: free */
	uint32_t gsi;
	uint64_t addr;
	uint32_t data;
};

struct irq_intx {
	struct irq_router *r;
	uint32_t gsi;
	/*
	 * Functions now asserting the line (r->lock). Several functions
	 * share a GSI (layout.h), and KVM_IRQ_LINE from userspace is one
	 * source, not a wired OR: the line goes low only with the last.
	 */
	unsigned int asserted;
};

struct irq_router {
	struct vm *vm;
	pthread_mutex_t lock;
	uint32_t max_gsi;	/* GSIs below this exist */
	struct irq_msi msi[IRQ_MAX_ROUTES];
	unsigned int nr_msi;
	struct irq_intx intx[IRQ_MAX_INTX];
	unsigned int nr_intx;
};

int
irq_ioeventfd(struct vm *vm, uint64_t gpa, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = gpa,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	/* Length 0 matches a write of any size (Linux writes 2 bytes, other
	 * drivers 4); without the capability, match what Linux does. */
	io.len = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION,
		       KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0 ? 0 : 2;
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return -errno;
	return 0;
}

int
irq_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return -errno;
	return 0;
}

/* KVM's own defaults for the legacy GSIs, which a table of ours replaces. */
static unsigned int
irq_fill_legacy(struct kvm_irq_routing_entry *e)
{
	unsigned int n = 0;
	uint32_t gsi;

	for (gsi = 0; gsi < IRQ_NR_LEGACY_GSIS; gsi++) {
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC,
				       .pin = gsi },
		};
		if (gsi >= 16)
			continue;
		e[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = gsi < 8 ?
					KVM_IRQCHIP_PIC_MASTER :
					KVM_IRQCHIP_PIC_SLAVE,
				       .pin = gsi % 8 },
		};
	}
	return n;
}

/* Send the whole table. Holds r->lock. */
static int
irq_commit(struct irq_router *r)
{
	struct kvm_irq_routing *t;
	unsigned int n, i;
	int ret = 0;

	t = calloc(1, sizeof(*t) + (IRQ_NR_LEGACY_GSIS * 2 + r->nr_msi) *
		   sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	n = irq_fill_legacy(t->entries);
	for (i = 0; i < IRQ_MAX_ROUTES; i++) {
		const struct irq_msi *m = &r->msi[i];

		if (m->fd < 0)
			continue;
		t->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = m->gsi,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)m->addr,
				   .address_hi = (uint32_t)(m->addr >> 32),
				   .data = m->data },
		};
	}
	t->nr = n;
	if (ioctl(r->vm->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

struct irq_router *
irq_router_new(struct vm *vm)
{
	struct irq_router *r;
	int n, i;

	if (vm->cfg.no_irqchip) {
		errno = ENODEV;
		return NULL;
	}
	n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (n <= IRQ_NR_LEGACY_GSIS) {
		errno = ENODEV;
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->vm = vm;
	r->max_gsi = n < IRQ_MAX_ROUTES ? (uint32_t)n : IRQ_MAX_ROUTES;
	for (i = 0; i < IRQ_MAX_ROUTES; i++)
		r->msi[i].fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
irq_router_free(struct irq_router *r)
{
	unsigned int i;

	if (!r)
		return;
	for (i = 0; i < IRQ_MAX_ROUTES; i++)
		if (r->msi[i].fd >= 0)
			irq_irqfd(r->vm, r->msi[i].gsi, r->msi[i].fd, false);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct irq_msi *
irq_find(struct irq_router *r, int fd)
{
	unsigned int i;

	for (i = 0; i < IRQ_MAX_ROUTES; i++)
		if (r->msi[i].fd == fd)
			return &r->msi[i];
	return NULL;
}

int
irq_router_msi_set(struct irq_router *r, int fd, uint64_t addr, uint32_t data)
{
	struct irq_msi *m, old;
	bool fresh = false;
	uint32_t gsi;
	int ret;

	if (fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	m = irq_find(r, fd);
	if (!m) {
		/* The slot index is the GSI less the legacy ones. */
		gsi = IRQ_NR_LEGACY_GSIS;
		while (gsi < r->max_gsi && r->msi[gsi].fd >= 0)
			gsi++;
		if (gsi >= r->max_gsi) {
			ret = -ENOSPC;
			goto out;
		}
		m = &r->msi[gsi];
		m->gsi = gsi;
		fresh = true;
		r->nr_msi++;
	}
	old = *m;
	m->fd = fd;
	m->addr = addr;
	m->data = data;
	ret = irq_commit(r);
	if (ret == 0 && fresh)
		ret = irq_irqfd(r->vm, m->gsi, fd, true);
	if (ret < 0) {
		if (fresh) {
			m->fd = -1;
			r->nr_msi--;
			(void)irq_commit(r);
		} else {
			*m = old;
		}
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int
irq_router_msi_clear(struct irq_router *r, int fd)
{
	struct irq_msi *m;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	m = fd >= 0 ? irq_find(r, fd) : NULL;
	if (!m) {
		ret = -ENOENT;
		goto out;
	}
	irq_irqfd(r->vm, m->gsi, fd, false);
	m->fd = -1;
	r->nr_msi--;
	(void)irq_commit(r);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

unsigned int
irq_router_nr_msi(struct irq_router *r)
{
	unsigned int n;

	pthread_mutex_lock(&r->lock);
	n = r->nr_msi;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static int
irq_sink_msi_route(void *opaque, int fd, uint64_t addr, uint32_t data)
{
	struct irq_intx *x = opaque;

	return irq_router_msi_set(x->r, fd, addr, data);
}

static void
irq_sink_msi_unroute(void *opaque, int fd)
{
	struct irq_intx *x = opaque;

	(void)irq_router_msi_clear(x->r, fd);
}

static int
irq_sink_ioeventfd(void *opaque, uint64_t gpa, int fd, bool assign)
{
	struct irq_intx *x = opaque;

	return irq_ioeventfd(x->r->vm, gpa, fd, assign);
}

/*
 * The transport reports only changes of its own level (vp_intx_update),
 * so each call moves the count by one. The lock is held across the ioctl
 * so that a lowering and a raising by two functions cannot reach KVM in
 * the opposite order.
 */
static void
irq_sink_intx(void *opaque, int level)
{
	struct irq_intx *x = opaque;
	struct irq_router *r = x->r;

	pthread_mutex_lock(&r->lock);
	if (level) {
		if (x->asserted++ == 0)
			(void)vm_irq_line(r->vm, x->gsi, 1);
	} else if (x->asserted > 0) {
		if (--x->asserted == 0)
			(void)vm_irq_line(r->vm, x->gsi, 0);
	}
	pthread_mutex_unlock(&r->lock);
}

void
irq_router_sink(struct irq_router *r, uint32_t intx_gsi,
		struct virtio_pci_sink *ret)
{
	struct irq_intx *x = NULL;
	unsigned int i;

	/* One slot per legacy GSI and one for "no INTx": always room. */
	if (intx_gsi >= IRQ_NR_LEGACY_GSIS)
		intx_gsi = IRQ_NR_LEGACY_GSIS;
	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->nr_intx; i++)
		if (r->intx[i].gsi == intx_gsi)
			x = &r->intx[i];
	if (!x) {
		x = &r->intx[r->nr_intx++];
		x->r = r;
		x->gsi = intx_gsi;
	}
	pthread_mutex_unlock(&r->lock);
	*ret = (struct virtio_pci_sink){
		.msi_route = irq_sink_msi_route,
		.msi_unroute = irq_sink_msi_unroute,
		.ioeventfd = irq_sink_ioeventfd,
		.intx = intx_gsi < IRQ_NR_LEGACY_GSIS ? irq_sink_intx : NULL,
		.opaque = x,
	};
}
