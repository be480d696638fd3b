/* SPDX-License-Identifier: MIT */
#include "x86/firmware.h"
#include "x86/acpi.h"
#include "dev/debugcon.h"
#include "dev/fw_cfg.h"
#include "log.h"
#include "vm.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

int
firmware_check_size(size_t size)
{
	if (size < FIRMWARE_MIN_SIZE || size > FIRMWARE_MAX_SIZE ||
	    size % (4 * KiB))
		return -EINVAL;
	return 0;
}

int
firmware_load_legacy(const struct guest_mem *m, const void *image,
		     size_t size)
{
	size_t n;

	if (!image || firmware_check_size(size) < 0)
		return -EINVAL;
	n = size < FIRMWARE_LEGACY_MAX ? size : FIRMWARE_LEGACY_MAX;
	return guest_mem_write(m, FIRMWARE_LEGACY_END - n,
			       (const uint8_t *)image + (size - n), n);
}

int
firmware_e820(const struct guest_mem *m, struct fw_cfg_e820_entry *out,
	      unsigned int max)
{
	int i;

	if ((unsigned int)m->nr_regions > max)
		return -ENOSPC;
	for (i = 0; i < m->nr_regions; i++) {
		out[i] = (struct fw_cfg_e820_entry){
			.address = htole64(m->regions[i].gpa),
			.length = htole64(m->regions[i].size),
			.type = htole32(FW_CFG_E820_RAM),
		};
	}
	return m->nr_regions;
}

static void
firmware_loader_name(char out[FIRMWARE_LOADER_FILE], bool rsdp)
{
	snprintf(out, FIRMWARE_LOADER_FILE, "%s",
		 rsdp ? FIRMWARE_ACPI_RSDP : FIRMWARE_ACPI_TABLES);
}

/*
 * The ACPI tables as fw_cfg files and the loader's commands: allocate
 * both (the RSDP in the F segment, 16-byte aligned, as an OS scans for
 * it), point every address field at the tables, then fix the checksums.
 */
static int
firmware_add_acpi(struct fw_cfg *f, const struct guest_mem *m,
		  unsigned int nr_cpus)
{
	struct firmware_loader_entry *e, *cmds = NULL;
	struct acpi_config ac = { .nr_cpus = nr_cpus };
	struct acpi_blob b;
	unsigned int n = 0, i;
	uint64_t low = 0;
	int r;

	/* SeaBIOS puts 32-bit BARs between the end of RAM below 4 GiB and
	 * 0xFEC00000: the host bridge's window says so. */
	for (i = 0; i < (unsigned int)m->nr_regions; i++)
		if (m->regions[i].gpa < LAYOUT_PCI_HOLE_START &&
		    m->regions[i].gpa + m->regions[i].size > low)
			low = m->regions[i].gpa + m->regions[i].size;
	ac.pci_mmio32_start = low;
	ac.pci_mmio32_end = LAYOUT_PCI_MMIO32_END;
	r = acpi_build_blob(&ac, &b);
	if (r < 0)
		return r;
	cmds = calloc(2 + b.nr_ptrs + b.nr_sums, sizeof(*cmds));
	if (!cmds) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0; i < 2; i++) {
		e = &cmds[n++];
		e->command = htole32(FIRMWARE_LOADER_ALLOCATE);
		firmware_loader_name(e->alloc.file, i == 0);
		e->alloc.align = htole32(i == 0 ? 16 : ACPI_FACS_ALIGN);
		e->alloc.zone = i == 0 ? FIRMWARE_LOADER_ZONE_FSEG :
			       FIRMWARE_LOADER_ZONE_HIGH;
	}
	for (i = 0; i < b.nr_ptrs; i++) {
		e = &cmds[n++];
		e->command = htole32(FIRMWARE_LOADER_ADD_POINTER);
		firmware_loader_name(e->pointer.dest, b.ptrs[i].in_rsdp);
		firmware_loader_name(e->pointer.src, false);
		e->pointer.offset = htole32(b.ptrs[i].offset);
		e->pointer.size = b.ptrs[i].size;
	}
	for (i = 0; i < b.nr_sums; i++) {
		e = &cmds[n++];
		e->command = htole32(FIRMWARE_LOADER_ADD_CHECKSUM);
		firmware_loader_name(e->checksum.file, b.sums[i].in_rsdp);
		e->checksum.offset = htole32(b.sums[i].offset);
		e->checksum.start = htole32(b.sums[i].start);
		e->checksum.length = htole32(b.sums[i].length);
	}
	r = fw_cfg_add_file(f, FIRMWARE_ACPI_RSDP, &b.rsdp, sizeof(b.rsdp));
	if (r >= 0)
		r = fw_cfg_add_file(f, FIRMWARE_ACPI_TABLES, b.tables,
				    (uint32_t)b.tables_len);
	if (r >= 0)
		r = fw_cfg_add_file(f, FIRMWARE_TABLE_LOADER, cmds,
				    n * (uint32_t)sizeof(*cmds));
out:
	free(cmds);
	acpi_blob_release(&b);
	return r < 0 ? r : 0;
}

int
firmware_fill_fw_cfg(struct fw_cfg *f, const struct guest_mem *m,
		     unsigned int nr_cpus, const struct firmware_config *cfg)
{
	struct fw_cfg_e820_entry e820[GUEST_MEM_MAX_REGIONS];
	uint32_t wait = htole32(cfg->boot_fail_wait_ms);
	uint16_t port = htole16(cfg->serial_port);
	int n, r;

	n = firmware_e820(m, e820, GUEST_MEM_MAX_REGIONS);
	if (n < 0)
		return n;
	r = fw_cfg_add_u16(f, FW_CFG_NB_CPUS, (uint16_t)nr_cpus);
	if (r == 0)
		r = fw_cfg_add_u16(f, FW_CFG_MAX_CPUS, (uint16_t)nr_cpus);
	/* No "Press ESC for boot menu" pause on every boot. */
	if (r == 0)
		r = fw_cfg_add_u16(f, FW_CFG_BOOT_MENU, 0);
	/* The PIT's IRQ0 arrives on IOAPIC pin 2, as the MADT of
	 * x86/acpi.c and the GSI routing of virtio/irq.c have it. */
	if (r == 0)
		r = fw_cfg_add_u32(f, FW_CFG_IRQ0_OVERRIDE, 1);
	if (r == 0)
		r = fw_cfg_add_file(f, "etc/e820", e820,
				    (uint32_t)(n * (int)sizeof(e820[0])));
	if (r >= 0)
		r = fw_cfg_add_file(f, "etc/boot-fail-wait", &wait,
				    sizeof(wait));
	if (r >= 0 && cfg->serial_port)
		r = fw_cfg_add_file(f, "etc/sercon-port", &port, sizeof(port));
	if (r >= 0)
		r = firmware_add_acpi(f, m, nr_cpus);
	return r < 0 ? r : 0;
}

static void
firmware_real_seg(struct kvm_segment *s, uint16_t sel, uint64_t base,
		  uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = base;
	s->limit = 0xffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
}

int
firmware_reset_vcpu(struct vcpu *v)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	uint64_t rdx;

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0 ||
	    ioctl(v->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	/* Types: code execute/read and data read/write, both accessed. */
	firmware_real_seg(&s.cs, FIRMWARE_RESET_CS_SELECTOR,
			  FIRMWARE_RESET_CS_BASE, 0xb);
	firmware_real_seg(&s.ds, 0, 0, 0x3);
	s.es = s.fs = s.gs = s.ss = s.ds;
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.limit = 0xffff;
	s.ldt.type = 0x2;
	s.ldt.present = 1;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.limit = 0xffff;
	s.tr.type = 0xb;
	s.tr.present = 1;
	s.gdt.base = s.idt.base = 0;
	s.gdt.limit = s.idt.limit = 0xffff;
	s.cr0 = FIRMWARE_RESET_CR0;
	s.cr2 = s.cr3 = s.cr4 = 0;
	s.efer = 0;
	memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	/* EDX holds the processor signature after reset; keep KVM's. */
	rdx = r.rdx;
	memset(&r, 0, sizeof(r));
	r.rdx = rdx;
	r.rflags = 0x2;
	r.rip = FIRMWARE_RESET_RIP;
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	return 0;
}

/*
 * The image below 4 GiB is a read-only memory slot: reads never come here,
 * writes do, and are dropped. Reads are served anyway, for an access KVM
 * hands over whole.
 */
static void
firmware_rom_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		bool is_write)
{
	struct firmware *fw = opaque;
	uint32_t i;

	if (!is_write) {
		for (i = 0; i < len; i++)
			data[i] = offset + i < fw->size ? fw->rom[offset + i]
							: 0xff;
		return;
	}
	if (__atomic_add_fetch(&fw->rom_writes, 1, __ATOMIC_RELAXED) == 1)
		log_debug("firmware: guest wrote to its ROM at 0x%llx, "
			  "ignored (logged once)",
			  (unsigned long long)(fw->gpa + offset));
}

static int
firmware_set_slot(struct firmware *fw, bool install)
{
	struct kvm_userspace_memory_region region = {
		.slot = FIRMWARE_MEM_SLOT,
		.flags = KVM_MEM_READONLY,
		.guest_phys_addr = fw->gpa,
		.memory_size = install ? fw->size : 0,
		.userspace_addr = (uint64_t)(uintptr_t)fw->rom,
	};

	if (ioctl(fw->vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	fw->slot_set = install;
	return 0;
}

int
firmware_new(struct vm *vm, const struct firmware_config *cfg,
	     struct firmware **ret, char *err, size_t errlen)
{
	struct firmware *fw;
	size_t legacy;
	void *p;
	int r;

	if (!cfg->image || firmware_check_size(cfg->image_size) < 0) {
		snprintf(err, errlen, "image of %zu bytes: the size must be a "
			 "multiple of 4 KiB from %llu KiB to %llu MiB",
			 cfg->image_size,
			 (unsigned long long)(FIRMWARE_MIN_SIZE >> 10),
			 (unsigned long long)(FIRMWARE_MAX_SIZE >> 20));
		return -EINVAL;
	}
	legacy = cfg->image_size < FIRMWARE_LEGACY_MAX ? cfg->image_size :
							 FIRMWARE_LEGACY_MAX;
	if (!guest_mem_contains(&vm->mem, FIRMWARE_LEGACY_END - legacy,
				legacy)) {
		snprintf(err, errlen, "guest RAM must cover the first MiB "
			 "for the BIOS");
		return -EINVAL;
	}
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		snprintf(err, errlen, "/dev/kvm lacks KVM_CAP_READONLY_MEM, "
			 "needed for the firmware ROM");
		return -ENOTSUP;
	}
	fw = calloc(1, sizeof(*fw));
	if (!fw) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	fw->vm = vm;
	fw->size = cfg->image_size;
	fw->gpa = FIRMWARE_TOP - fw->size;
	p = mmap(NULL, fw->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "mapping the firmware copy: %s",
			 strerror(-r));
		goto fail;
	}
	fw->rom = p;
	memcpy(fw->rom, cfg->image, fw->size);
	/* Nothing on the host writes it either. */
	if (mprotect(fw->rom, fw->size, PROT_READ) < 0) {
		r = -errno;
		snprintf(err, errlen, "mprotect of the firmware copy: %s",
			 strerror(-r));
		goto fail;
	}
	r = bus_register(&vm->mmio, fw->gpa, fw->size, firmware_rom_io, fw,
			 "firmware-rom");
	if (r < 0) {
		snprintf(err, errlen, "0x%llx-0x%llx for the firmware ROM: %s",
			 (unsigned long long)fw->gpa,
			 (unsigned long long)(FIRMWARE_TOP - 1), strerror(-r));
		goto fail;
	}
	fw->rom_registered = true;
	r = firmware_set_slot(fw, true);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION (read-only, "
			 "%zu KiB at 0x%llx): %s", fw->size >> 10,
			 (unsigned long long)fw->gpa, strerror(-r));
		goto fail;
	}
	r = firmware_load_legacy(&vm->mem, cfg->image, cfg->image_size);
	if (r < 0) {
		snprintf(err, errlen, "copying the BIOS below 1 MiB: %s",
			 strerror(-r));
		goto fail;
	}
	fw->fw_cfg = fw_cfg_new(&vm->pio);
	if (!fw->fw_cfg) {
		r = -errno;
		snprintf(err, errlen, "fw_cfg on ports 0x%x-0x%x: %s",
			 FW_CFG_PORT_SEL, FW_CFG_PORT_DATA, strerror(-r));
		goto fail;
	}
	r = firmware_fill_fw_cfg(fw->fw_cfg, &vm->mem, vm->nr_vcpus, cfg);
	if (r < 0) {
		snprintf(err, errlen, "filling fw_cfg: %s", strerror(-r));
		goto fail;
	}
	fw->debugcon = debugcon_new(&vm->pio, DEBUGCON_PORT, cfg->debug_fd);
	if (!fw->debugcon) {
		r = -errno;
		snprintf(err, errlen, "debug port 0x%x: %s", DEBUGCON_PORT,
			 strerror(-r));
		goto fail;
	}
	/* The APs keep KVM's wait-for-SIPI state; the firmware wakes them. */
	r = firmware_reset_vcpu(&vm->vcpus[0]);
	if (r < 0) {
		snprintf(err, errlen, "setting the reset state of vCPU 0: %s",
			 strerror(-r));
		goto fail;
	}
	*ret = fw;
	return 0;
fail:
	firmware_free(fw);
	return r;
}

void
firmware_free(struct firmware *fw)
{
	if (!fw)
		return;
	debugcon_free(fw->debugcon);
	fw_cfg_free(fw->fw_cfg);
	if (fw->slot_set) {
		int r = firmware_set_slot(fw, false);

		if (r < 0)
			log_warn("firmware: removing the ROM memory slot: %s",
				 strerror(-r));
	}
	if (fw->rom_registered)
		bus_unregister(&fw->vm->mmio, fw->gpa);
	if (fw->rom)
		munmap(fw->rom, fw->size);
	free(fw);
}

uint64_t
firmware_rom_writes(const struct firmware *fw)
{
	return __atomic_load_n(&fw->rom_writes, __ATOMIC_RELAXED);
}
