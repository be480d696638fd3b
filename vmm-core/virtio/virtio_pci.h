/* SPDX-License-Identifier: MIT */
/*
 * The modern (virtio 1.x, non-transitional) PCI transport for a
 * virtio_device, on the PCI host bridge of dev/pci.h.
 *
 * Config space: vendor 0x1AF4, device 0x1040 + the virtio device id,
 * revision 1, subsystem 0x1AF4 / the virtio device id, the device's class.
 * Capabilities: virtio common, notify, ISR, device (when the device has
 * config space), PCI-config access (the window firmware such as SeaBIOS
 * uses to reach a BAR above 4 GiB), and MSI-X with one vector per queue
 * plus one for configuration changes.
 *
 * BAR 1 (32-bit memory, 4 KiB): MSI-X table at 0, PBA at 0x800.
 * BAR 4 (64-bit prefetchable memory, 16 KiB): common config at 0x0000,
 * ISR at 0x1000, device config at 0x2000, doorbells at 0x3000 (queue q's
 * at 0x3000 + 4 * q: notify_off_multiplier 4, queue_notify_off q).
 *
 * Notifications: every queue has an eventfd (virtio_queue_kick_fd()). With
 * a sink that registers ioeventfds (KVM), a doorbell write signals it
 * without leaving the kernel; otherwise the BAR handler signals it. Either
 * way the device's I/O thread picks it up.
 *
 * Interrupts: every MSI-X vector has an eventfd (virtio_pci_vector_fd()).
 * The transport writes it when the vector fires unmasked; a masked vector
 * sets its PBA bit instead and fires when unmasked. A sink that routes
 * MSI messages (KVM GSI routing + irqfd) is told each vector's message
 * when it becomes deliverable; without one, tests read the eventfds.
 * With MSI-X disabled the ISR and the INTx line (sink->intx) are used.
 *
 * Expansion ROM (optional, config offset 0x30): an image such as iPXE's
 * for firmware to copy and run. Its BAR is the image's size rounded up to
 * a power of two, at least 2 KiB; it decodes only while its enable bit and
 * COMMAND's memory space bit are set, reads past the image give 0xff, and
 * writes are ignored. It is served through the MMIO bus (dev/pci.c), not a
 * memory slot: firmware reads it once, to copy it to shadow RAM, so exits
 * cost nothing that matters, and the BAR can move without touching KVM's
 * memory slots.
 */
#ifndef VMM_VIRTIO_VIRTIO_PCI_H
#define VMM_VIRTIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dev/pci.h"
#include "virtio/virtio.h"

#define VIRTIO_PCI_VENDOR_ID		0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE	0x1040
#define VIRTIO_PCI_REVISION		1

#define VIRTIO_PCI_MSIX_BAR		1
#define VIRTIO_PCI_MSIX_BAR_SIZE	0x1000
#define VIRTIO_PCI_MSIX_TABLE_OFF	0x000
#define VIRTIO_PCI_MSIX_PBA_OFF		0x800
#define VIRTIO_PCI_MSIX_MAX_VECTORS	(VIRTIO_MAX_QUEUES + 1)

#define VIRTIO_PCI_CFG_BAR		4
#define VIRTIO_PCI_CFG_BAR_SIZE		0x4000
#define VIRTIO_PCI_COMMON_OFF		0x0000
#define VIRTIO_PCI_COMMON_LEN		0x38	/* virtio 1.0 common cfg */
#define VIRTIO_PCI_ISR_OFF		0x1000
#define VIRTIO_PCI_ISR_LEN		1
#define VIRTIO_PCI_DEVICE_OFF		0x2000
#define VIRTIO_PCI_DEVICE_MAX		0x1000
#define VIRTIO_PCI_NOTIFY_OFF		0x3000
#define VIRTIO_PCI_NOTIFY_MULT		4

/*
 * What the transport needs from the VM around it. Every member is
 * optional. Called with transport locks held: must not call back into
 * the transport.
 */
struct virtio_pci_sink {
	/*
	 * Make a write to fd deliver the MSI message (addr, data). Called
	 * when a vector becomes deliverable with a message not yet routed.
	 */
	int (*msi_route)(void *opaque, int fd, uint64_t addr, uint32_t data);
	/* fd's route is no longer needed (the transport goes away). */
	void (*msi_unroute)(void *opaque, int fd);
	/*
	 * Make a write of any length at gpa signal fd without an exit
	 * (assign), or stop doing so. An error leaves the doorbell to the
	 * BAR handler, which signals fd itself.
	 */
	int (*ioeventfd)(void *opaque, uint64_t gpa, int fd, bool assign);
	/* The INTx line's level, when MSI-X is disabled. */
	void (*intx)(void *opaque, int level);
	void *opaque;
};

/* The largest expansion ROM: a 32-bit ROM BAR of 16 MiB. */
#define VIRTIO_PCI_ROM_MAX		PCI_ROM_MAX_SIZE

struct virtio_pci_config {
	int slot;				/* PCI slot, or -1: any free */
	const struct virtio_pci_sink *sink;	/* copied; NULL: none */
	/*
	 * The expansion ROM's image, copied (the caller may free it once
	 * virtio_pci_new returns); NULL: no ROM BAR, 0x30 reads 0.
	 */
	const void *rom;
	size_t rom_size;			/* 1 to VIRTIO_PCI_ROM_MAX */
};

struct virtio_pci;

/*
 * Put vdev (initialized, I/O thread running) on host behind a new
 * transport. Returns 0 with *ret set, or a negative errno (-EINVAL when
 * the device's config space is too big or a ROM is given with size 0,
 * -EFBIG for a ROM over VIRTIO_PCI_ROM_MAX, errors of pci_add_device,
 * eventfd, -ENOMEM).
 *
 * Teardown order, once the vCPUs are stopped: virtio_device_destroy()
 * (stops the I/O thread, which may be using guest RAM and the vectors),
 * pci_host_free() (detaches the PCI function), then virtio_pci_free();
 * guest RAM may be unmapped once the I/O thread is stopped.
 */
int virtio_pci_new(struct pci_host *host, struct virtio_device *vdev,
		   const struct virtio_pci_config *cfg,
		   struct virtio_pci **ret);
void virtio_pci_free(struct virtio_pci *vp);

/*
 * Check that rom (size bytes) is an expansion ROM that PC firmware will run
 * on the virtio device virtio_id (1 for net) behind this transport, as
 * SeaBIOS decides it: among the images chained in it (0x55AA header, "PCIR"
 * data structure, image length, last-image bit), one of code type 0 (x86)
 * whose PCIR vendor and device ids are those of the PCI function
 * (VIRTIO_PCI_VENDOR_ID : VIRTIO_PCI_DEVICE_ID_BASE + virtio_id), and whose
 * bytes (its initialization size) sum to 0. The ROM is never patched to
 * match: it is the operator's file.
 *
 * Returns 0; -ENOEXEC when rom is not an expansion ROM (no signature, no
 * PCIR structure, an image running past the end); -ENODEV when no x86
 * image names the device (err says which ids the images name); -EBADMSG
 * when the matching image's checksum is wrong. On an error err (when not
 * NULL) gets a one-line explanation, e.g. "no x86 image for PCI device
 * 1af4:1041 in it (its images: 1af4:1000 x86)".
 */
int virtio_pci_rom_check(const void *rom, size_t size, uint16_t virtio_id,
			 char *err, size_t errlen);

/* The PCI function (borrowed), for its slot and config space. */
struct pci_device *virtio_pci_device(struct virtio_pci *vp);

/* The device behind the transport (borrowed). */
struct virtio_device *virtio_pci_virtio_device(struct virtio_pci *vp);

unsigned int virtio_pci_nr_vectors(const struct virtio_pci *vp);
/* The eventfd vector vec fires on, or -1. */
int virtio_pci_vector_fd(const struct virtio_pci *vp, unsigned int vec);

struct virtio_pci_stats {
	uint64_t doorbell_exits;	/* doorbell writes that reached us */
	uint64_t ioeventfds;		/* doorbells currently registered */
	uint64_t msi_fired;		/* eventfd writes for vectors */
	uint64_t msi_pended;		/* fires that hit a mask */
	uint64_t msi_routes;		/* msi_route calls */
};
void virtio_pci_get_stats(struct virtio_pci *vp, struct virtio_pci_stats *ret);

#endif
