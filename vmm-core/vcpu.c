/* SPDX-License-Identifier: MIT */
/*
 * vCPUs: creation, boot state, and the KVM_RUN loop that dispatches port
 * I/O and MMIO exits to the buses and steps in where the host's KVM could
 * not emulate an instruction.
 */
#include "vm.h"
#include "layout.h"
#include "log.h"
#include "x86/cpuid.h"
#include "x86/emulate.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int vcpu_init(struct vm *vm, struct vcpu *v, unsigned int index, char *err,
	      size_t errlen);
void vcpu_destroy(struct vcpu *v);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *v);

static const char *const exit_names[VCPU_EXIT_MAX] = {
	[VCPU_EXIT_IO_IN] = "io_in",
	[VCPU_EXIT_IO_OUT] = "io_out",
	[VCPU_EXIT_MMIO_READ] = "mmio_read",
	[VCPU_EXIT_MMIO_WRITE] = "mmio_write",
	[VCPU_EXIT_HLT] = "hlt",
	[VCPU_EXIT_SHUTDOWN] = "shutdown",
	[VCPU_EXIT_INTERNAL_ERROR] = "internal_error",
	[VCPU_EXIT_EMULATED] = "emulated_insn",
	[VCPU_EXIT_INTR] = "intr",
	[VCPU_EXIT_FAIL_ENTRY] = "fail_entry",
	[VCPU_EXIT_SYSTEM_EVENT] = "system_event",
	[VCPU_EXIT_IRQ_WINDOW] = "irq_window",
	[VCPU_EXIT_DEBUG] = "debug",
	[VCPU_EXIT_MSR] = "msr",
	[VCPU_EXIT_OTHER] = "other",
};

const char *
vcpu_exit_kind_name(enum vcpu_exit_kind k)
{
	return k < VCPU_EXIT_MAX ? exit_names[k] : "?";
}

static void
vcpu_count(struct vcpu *v, enum vcpu_exit_kind k)
{
	__atomic_add_fetch(&v->stats.exits[k], 1, __ATOMIC_RELAXED);
}

/* MSRs a 64-bit entry wants in a known state. */
static const struct { uint32_t index; uint64_t value; } vcpu_boot_msrs[] = {
	{ 0x00000174, 0 },			/* IA32_SYSENTER_CS */
	{ 0x00000175, 0 },			/* IA32_SYSENTER_ESP */
	{ 0x00000176, 0 },			/* IA32_SYSENTER_EIP */
	{ 0xc0000081, 0 },			/* STAR */
	{ 0xc0000082, 0 },			/* LSTAR */
	{ 0xc0000083, 0 },			/* CSTAR */
	{ 0xc0000084, 0 },			/* SYSCALL_MASK */
	{ 0xc0000102, 0 },			/* KERNEL_GS_BASE */
	{ 0x00000010, 0 },			/* TSC */
	{ 0x000001a0, 1 },			/* MISC_ENABLE: fast strings */
	{ 0x00000277, 0x0007040600070406ULL },	/* PAT: power-on value */
};
#define VCPU_NR_BOOT_MSRS (sizeof(vcpu_boot_msrs) / sizeof(vcpu_boot_msrs[0]))

/*
 * KVM_SET_MSRS stops at the first MSR the host refuses and returns how many
 * it set: skip the refused one and go on with the rest.
 */
static int
vcpu_set_boot_msrs(struct vcpu *v)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[VCPU_NR_BOOT_MSRS];
	} m;
	unsigned int start = 0, i;
	int r;

	while (start < VCPU_NR_BOOT_MSRS) {
		memset(&m, 0, sizeof(m));
		for (i = start; i < VCPU_NR_BOOT_MSRS; i++) {
			m.e[i - start].index = vcpu_boot_msrs[i].index;
			m.e[i - start].data = vcpu_boot_msrs[i].value;
		}
		m.hdr.nmsrs = VCPU_NR_BOOT_MSRS - start;
		r = ioctl(v->fd, KVM_SET_MSRS, &m);
		if (r < 0)
			return -errno;
		start += (unsigned int)r;
		if (start < VCPU_NR_BOOT_MSRS) {
			log_debug("vCPU %u: host refused MSR 0x%x, going on",
				  v->index, vcpu_boot_msrs[start].index);
			start++;
		}
	}
	return 0;
}

/* The local APIC in virtual-wire mode, as firmware leaves it: LINT0 takes
 * the PIC's ExtINT, LINT1 the NMI. */
static int
vcpu_setup_lapic(struct vcpu *v)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0, *lvt1;

	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	lvt0 = (uint32_t *)(void *)&lapic.regs[0x350];
	lvt1 = (uint32_t *)(void *)&lapic.regs[0x360];
	*lvt0 = (*lvt0 & ~0x700u & ~0x10000u) | 0x700u;
	*lvt1 = (*lvt1 & ~0x700u & ~0x10000u) | 0x400u;
	if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
}

/*
 * KVM's own counters for this vCPU, when the host has them. Without them
 * (an older host, a stats file that does not make sense) the VM runs all
 * the same, and vcpu_kvm_stats() says -EOPNOTSUPP.
 */
static void
vcpu_open_kvm_stats(struct vcpu *v)
{
	struct vm *vm = v->vm;
	int fd;

	if (!vm->binary_stats_checked) {
		vm->binary_stats = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION,
					 KVM_CAP_BINARY_STATS_FD) > 0;
		vm->binary_stats_checked = true;
	}
	if (!vm->binary_stats)
		return;
	fd = ioctl(v->fd, KVM_GET_STATS_FD, 0);
	if (fd < 0)
		return;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	(void)kvm_stats_open(&v->kvm_stats, fd);
}

int
vcpu_kvm_stats(const struct vcpu *v, struct kvm_stats_values *ret)
{
	return kvm_stats_read(&v->kvm_stats, ret);
}

int
vcpu_init(struct vm *vm, struct vcpu *v, unsigned int index, char *err,
	  size_t errlen)
{
	struct kvm_cpuid2 *c = NULL;
	size_t csize;
	int r, size;

	kvm_stats_init(&v->kvm_stats);
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", index,
			 strerror(-r));
		return r;
	}
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		r = size < 0 ? -errno : -EINVAL;
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(-r));
		return r;
	}
	v->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		r = -errno;
		snprintf(err, errlen, "mmap of vCPU %u: %s", index, strerror(-r));
		return r;
	}
	v->run_size = (size_t)size;

	csize = sizeof(*c) + vm->cpuid->nent * sizeof(c->entries[0]);
	c = malloc(csize);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memcpy(c, vm->cpuid, csize);
	cpuid_fixup_vcpu(c, index, vm->cfg.nr_vcpus);
	r = ioctl(v->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", index,
			 strerror(-r));
		return r;
	}
	r = vcpu_set_boot_msrs(v);
	if (r < 0) {
		snprintf(err, errlen, "KVM_SET_MSRS on vCPU %u: %s", index,
			 strerror(-r));
		return r;
	}
	if (!vm->cfg.no_irqchip) {
		r = vcpu_setup_lapic(v);
		if (r < 0) {
			snprintf(err, errlen, "local APIC of vCPU %u: %s", index,
				 strerror(-r));
			return r;
		}
	}
	/* Last: nothing after it fails, so a failed vcpu_init() leaves no
	 * stats file open. */
	vcpu_open_kvm_stats(v);
	return 0;
}

void
vcpu_destroy(struct vcpu *v)
{
	kvm_stats_close(&v->kvm_stats);
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

void
vcpu_kick(struct vcpu *v)
{
	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (v->thread_started)
		pthread_kill(v->thread, SIGUSR1);
}

static void
vcpu_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code64;
	s->db = !code64;
}

int
vm_setup_long_mode(struct vm *vm, uint64_t entry, uint64_t boot_params)
{
	/* Selectors 0x10 (code) and 0x18 (data), as the boot protocol asks. */
	static const uint64_t gdt[] = {
		0,
		0,
		0x00af9b000000ffffULL,	/* 0x10: 64-bit code */
		0x00cf93000000ffffULL,	/* 0x18: data */
		0x00808b0000000067ULL,	/* 0x20: TSS (busy) */
	};
	struct vcpu *v = &vm->vcpus[0];
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t *pml4, *pdpt, *pd;
	unsigned int i;

	pml4 = guest_mem_ptr(&vm->mem, LAYOUT_PML4, 4096);
	pdpt = guest_mem_ptr(&vm->mem, LAYOUT_PDPT, 4096);
	pd = guest_mem_ptr(&vm->mem, LAYOUT_PD, 4 * 4096);
	if (!pml4 || !pdpt || !pd ||
	    guest_mem_write(&vm->mem, LAYOUT_GDT, gdt, sizeof(gdt)) < 0)
		return -ENOMEM;
	/* Identity-map the first 4 GiB with 2 MiB pages. */
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3;
	for (i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 4096) | 0x3;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	vcpu_seg(&sregs.cs, 0x10, 0xb, true);
	vcpu_seg(&sregs.ds, 0x18, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = 0x20;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.idt.base = LAYOUT_IDT;
	sregs.idt.limit = 0;
	sregs.cr3 = LAYOUT_PML4;
	sregs.cr4 = 1u << 5;				/* PAE */
	sregs.cr0 = (1u << 0) | (1u << 4) | (1u << 5) | (1u << 31); /* PE ET NE PG */
	sregs.efer = (1u << 8) | (1u << 10);		/* LME LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = entry;
	regs.rsi = boot_params;
	regs.rsp = LAYOUT_BOOT_STACK;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

int
vcpu_setup_flat32(struct vcpu *v, uint64_t entry, uint64_t stack)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	vcpu_seg(&sregs.cs, 0x08, 0xb, false);
	vcpu_seg(&sregs.ds, 0x10, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 = (1u << 0) | (1u << 4);		/* PE ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = entry;
	regs.rsp = stack;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/*
 * Guest-virtual access through the vCPU's page tables (KVM_TRANSLATE).
 * Every page is translated before any byte is copied, so a write that
 * faults writes nothing.
 */
static int
vcpu_gva_access(struct vcpu *v, uint64_t gva, void *buf, size_t len,
		bool is_write)
{
	enum { MAX_PAGES = 4 };
	uint8_t *hva[MAX_PAGES];
	size_t chunk[MAX_PAGES];
	unsigned int n = 0, i;
	uint64_t a = gva;
	size_t left = len;
	uint8_t *p = buf;

	while (left > 0) {
		struct kvm_translation t = { .linear_address = a };
		size_t c = 4096 - (a & 4095);

		if (n == MAX_PAGES)
			return -EFAULT;
		if (c > left)
			c = left;
		if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
			return -EFAULT;
		if (is_write && !t.writeable)
			return -EFAULT;
		hva[n] = guest_mem_ptr(&v->vm->mem, t.physical_address, c);
		if (!hva[n])
			return -EFAULT;
		chunk[n++] = c;
		a += c;
		left -= c;
	}
	for (i = 0; i < n; i++) {
		if (is_write)
			memcpy(hva[i], p, chunk[i]);
		else
			memcpy(p, hva[i], chunk[i]);
		p += chunk[i];
	}
	return 0;
}

static int
vcpu_emu_read(void *opaque, uint64_t gva, void *buf, size_t len)
{
	return vcpu_gva_access(opaque, gva, buf, len, false);
}

static int
vcpu_emu_write(void *opaque, uint64_t gva, const void *buf, size_t len)
{
	return vcpu_gva_access(opaque, gva, (void *)(uintptr_t)buf, len, true);
}

/*
 * An atomic compare-and-exchange on guest memory (lock cmpxchg8b/16b):
 * other vCPUs run concurrently, so it goes to the host pointer with the
 * host's own atomic instruction. The range must not cross a page.
 */
static int
vcpu_emu_cmpxchg(void *opaque, uint64_t gva, void *expected,
		 const void *desired, size_t len)
{
	struct vcpu *v = opaque;
	struct kvm_translation t = { .linear_address = gva };
	void *hva;
	bool ok;

	if ((gva & 4095) + len > 4096)
		return -EFAULT;
	if (ioctl(v->fd, KVM_TRANSLATE, &t) < 0 || !t.valid || !t.writeable)
		return -EFAULT;
	hva = guest_mem_ptr(&v->vm->mem, t.physical_address, len);
	if (!hva || ((uintptr_t)hva & (len - 1)))
		return -EFAULT;
	if (len == 8) {
		ok = __atomic_compare_exchange(
			(uint64_t *)hva, (uint64_t *)expected,
			(uint64_t *)(uintptr_t)desired, false,
			__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	} else if (len == 16) {
		unsigned __int128 exp, des, *p = hva;

		memcpy(&exp, expected, 16);
		memcpy(&des, desired, 16);
		ok = __sync_bool_compare_and_swap(p, exp, des);
		if (!ok) {
			exp = __sync_val_compare_and_swap(p, exp, exp);
			memcpy(expected, &exp, 16);
		}
	} else {
		return -EINVAL;
	}
	return ok ? 0 : 1;
}

static const struct emu_mem_ops vcpu_emu_ops = {
	.read = vcpu_emu_read,
	.write = vcpu_emu_write,
	.cmpxchg = vcpu_emu_cmpxchg,
};

static void
vcpu_hex(const uint8_t *b, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < n && o + 4 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%02x",
				      i ? " " : "", b[i]);
}

static void
vcpu_log_regs(struct vcpu *v, const struct kvm_regs *r,
	      const struct kvm_sregs *s)
{
	log_err("vCPU %u: rip=0x%llx rsp=0x%llx rflags=0x%llx cr0=0x%llx "
		"cr3=0x%llx cr4=0x%llx efer=0x%llx cs=0x%x",
		v->index, (unsigned long long)r->rip,
		(unsigned long long)r->rsp, (unsigned long long)r->rflags,
		(unsigned long long)s->cr0, (unsigned long long)s->cr3,
		(unsigned long long)s->cr4, (unsigned long long)s->efer,
		s->cs.selector);
	log_err("vCPU %u: rax=0x%llx rbx=0x%llx rcx=0x%llx rdx=0x%llx "
		"rsi=0x%llx rdi=0x%llx rbp=0x%llx", v->index,
		(unsigned long long)r->rax, (unsigned long long)r->rbx,
		(unsigned long long)r->rcx, (unsigned long long)r->rdx,
		(unsigned long long)r->rsi, (unsigned long long)r->rdi,
		(unsigned long long)r->rbp);
	log_err("vCPU %u: r8=0x%llx r9=0x%llx r10=0x%llx r11=0x%llx "
		"r12=0x%llx r13=0x%llx r14=0x%llx r15=0x%llx", v->index,
		(unsigned long long)r->r8, (unsigned long long)r->r9,
		(unsigned long long)r->r10, (unsigned long long)r->r11,
		(unsigned long long)r->r12, (unsigned long long)r->r13,
		(unsigned long long)r->r14, (unsigned long long)r->r15);
}

/*
 * The host's KVM could not emulate an instruction (PVM emulates all guest
 * kernel code and knows only part of the ISA): carry it out ourselves.
 * Returns 0 when the guest can go on, or a negative errno after asking
 * the VM to stop.
 */
static int
vcpu_handle_emulation_failure(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct emu_vcpu s;
	uint8_t insn[16];
	size_t n = 0;
	char hex[64], desc[96];
	enum emu_result res;
	int r;

	memset(&s, 0, sizeof(s));
	s.exception = -1;
	if (ioctl(v->fd, KVM_GET_REGS, &s.regs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s.sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_FPU, &s.fpu) < 0) {
		r = -errno;
		vm_request_stop(v->vm, VM_STOP_ERROR, "vCPU %u: reading state "
				"after an emulation failure: %s", v->index,
				strerror(-r));
		return r;
	}
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags &
	     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size > 0) {
		n = run->emulation_failure.insn_size;
		if (n > sizeof(run->emulation_failure.insn_bytes))
			n = sizeof(run->emulation_failure.insn_bytes);
		memcpy(insn, run->emulation_failure.insn_bytes, n);
	}
	if (n < 15) {
		/* Fetch from RIP ourselves, up to the end of what is mapped. */
		uint64_t gva = s.sregs.cs.base + s.regs.rip;
		size_t want = 15;

		n = 0;
		while (n < want) {
			size_t chunk = 4096 - ((gva + n) & 4095);

			if (chunk > want - n)
				chunk = want - n;
			if (vcpu_gva_access(v, gva + n, insn + n, chunk,
					    false) < 0)
				break;
			n += chunk;
		}
	}
	res = n ? emu_step(&s, insn, n, &vcpu_emu_ops, v) : EMU_UNHANDLED;
	if (res == EMU_MEM_FAULT) {
		/* The guest's own page fault: CR2 and #PF, as the CPU would. */
		struct kvm_translation t = { .linear_address = s.fault_gva };

		s.sregs.cr2 = s.fault_gva;
		if (ioctl(v->fd, KVM_SET_SREGS, &s.sregs) < 0)
			goto set_failed;
		s.exception = 14;
		s.exception_has_error = true;
		s.error_code = s.fault_write ? 2 : 0;
		if (ioctl(v->fd, KVM_TRANSLATE, &t) == 0 && t.valid)
			s.error_code |= 1;	/* present, protection */
		res = EMU_EXCEPTION;
	}
	if (res == EMU_OK || res == EMU_EXCEPTION) {
		if (s.regs_dirty && ioctl(v->fd, KVM_SET_REGS, &s.regs) < 0)
			goto set_failed;
		if (s.fpu_dirty && ioctl(v->fd, KVM_SET_FPU, &s.fpu) < 0)
			goto set_failed;
		if (res == EMU_EXCEPTION) {
			struct kvm_vcpu_events ev;

			if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
				goto set_failed;
			ev.flags = 0;
			ev.exception.injected = 1;
			ev.exception.nr = (uint8_t)s.exception;
			ev.exception.has_error_code = s.exception_has_error;
			ev.exception.error_code = s.error_code;
			if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
				goto set_failed;
		}
		vcpu_count(v, VCPU_EXIT_EMULATED);
		return 0;
	}
	vcpu_hex(insn, n, hex, sizeof(hex));
	emu_describe(insn, n, desc, sizeof(desc));
	vcpu_log_regs(v, &s.regs, &s.sregs);
	vm_request_stop(v->vm, VM_STOP_CRASH, "vCPU %u: %s at RIP 0x%llx that "
			"the host cannot emulate (%s): bytes %s",
			v->index,
			"instruction",
			(unsigned long long)s.regs.rip, desc, n ? hex : "unreadable");
	return -ENOTSUP;
set_failed:
	r = -errno;
	vm_request_stop(v->vm, VM_STOP_ERROR, "vCPU %u: writing state after "
			"emulating an instruction: %s", v->index, strerror(-r));
	return r;
}

/*
 * The PVM syscall bridge (see vm_setup_syscall_bridge in vm.c). PVM
 * starts an unmodified guest's user-mode SYSCALL at LSTAR with RCX, R11
 * and RFLAGS as SYSCALL leaves them but CS and SS still the user's, and
 * runs it natively in ring 3: fetching the kernel's entry faults, and the
 * guest kernel gets a #PF from user mode at RIP == CR2 == LSTAR, which it
 * takes for a bad jump and kills the process. Hardware breakpoints do not
 * fire in PVM's native user mode, but they do in the guest kernel, which
 * PVM emulates: one sits on the guest's #PF handler. When it stops there
 * on exactly that fault, we undo the fault's delivery and finish the
 * SYSCALL as the CPU would have: RIP = LSTAR, the user's RSP, RFLAGS
 * masked by SFMASK, CS from STAR[47:32] (64-bit code, ring 0) and SS the
 * selector after it. PVM ignores RFLAGS.RF in kernel mode, so each stop
 * is followed by a single step with the breakpoint lifted.
 */
#define MSR_STAR 0xc0000081u
#define MSR_LSTAR 0xc0000082u
#define MSR_SFMASK 0xc0000084u
#define RFLAGS_IF (1ull << 9)
#define RFLAGS_RF (1ull << 16)

static int
vcpu_sysbp_set(struct vcpu *v, bool step)
{
	struct kvm_guest_debug d;

	memset(&d, 0, sizeof(d));
	if (step) {
		d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	} else if (v->sysbp_pf) {
		d.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
		d.arch.debugreg[0] = v->sysbp_pf;
		d.arch.debugreg[7] = 0x1;	/* L0: execute, 1 byte */
	}
	if (ioctl(v->fd, KVM_SET_GUEST_DEBUG, &d) < 0)
		return -errno;
	v->sysbp_stepping = step;
	return 0;
}

static bool
vcpu_canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

static int
vcpu_get_msr(struct vcpu *v, uint32_t index, uint64_t *ret)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e[0].index = index;
	if (ioctl(v->fd, KVM_GET_MSRS, &m) != 1)
		return -EIO;
	*ret = m.e[0].data;
	return 0;
}

/* The guest's #PF handler, from its IDT: 0 when there is none yet. */
static uint64_t
vcpu_pf_handler(struct vcpu *v)
{
	struct kvm_sregs s;
	uint8_t g[16];
	uint64_t h;

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0 || !(s.efer & (1u << 10)) ||
	    s.idt.limit < 15 * 16 - 1 ||
	    vcpu_gva_access(v, s.idt.base + 14 * 16, g, sizeof(g), false) < 0)
		return 0;
	if (!(g[5] & 0x80) || (g[5] & 0x0f) < 0x0e)
		return 0;	/* not present, or not an interrupt/trap gate */
	h = (uint64_t)g[0] | (uint64_t)g[1] << 8 | (uint64_t)g[6] << 16 |
	    (uint64_t)g[7] << 24 | (uint64_t)g[8] << 32 |
	    (uint64_t)g[9] << 40 | (uint64_t)g[10] << 48 |
	    (uint64_t)g[11] << 56;
	return vcpu_canonical(h) ? h : 0;
}

/* Put the breakpoint on the guest's #PF handler as it is now. */
static int
vcpu_sysbp_arm(struct vcpu *v)
{
	uint64_t h = v->sysbp_lstar ? vcpu_pf_handler(v) : 0;

	if (h == v->sysbp_pf)
		return 0;
	v->sysbp_pf = h;
	if (h)
		log_info("vCPU %u: syscall bridge on: LSTAR 0x%llx, #PF "
			  "handler 0x%llx", v->index,
			  (unsigned long long)v->sysbp_lstar,
			  (unsigned long long)h);
	return v->sysbp_stepping ? 0 : vcpu_sysbp_set(v, false);
}

/* The guest wrote LSTAR: write it for it, and (re)arm the bridge. */
static int
vcpu_handle_wrmsr(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} m;
	int r;

	vcpu_count(v, VCPU_EXIT_MSR);
	if (run->msr.index != MSR_LSTAR || !vcpu_canonical(run->msr.data)) {
		run->msr.error = 1;	/* #GP, as the CPU would */
		return 0;
	}
	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = 1;
	m.e[0].index = MSR_LSTAR;
	m.e[0].data = run->msr.data;
	if (ioctl(v->fd, KVM_SET_MSRS, &m) != 1) {
		run->msr.error = 1;
		return 0;
	}
	run->msr.error = 0;
	v->sysbp_lstar = run->msr.data;
	r = vcpu_sysbp_arm(v);
	if (r < 0)
		vm_request_stop(v->vm, VM_STOP_ERROR, "vCPU %u: breakpoint for "
				"the syscall bridge: %s", v->index, strerror(-r));
	return r;
}

/* A debug exit the bridge did not ask for: the guest's own #DB. */
static int
vcpu_reinject_db(struct vcpu *v)
{
	struct kvm_vcpu_events ev;

	if (!v->debug_logged) {
		v->debug_logged = true;
		log_warn("vCPU %u: the guest's own debug exception at 0x%llx "
			 "passed back to it", v->index,
			 (unsigned long long)v->run->debug.arch.pc);
	}
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.flags = 0;
	ev.exception.injected = 1;
	ev.exception.nr = 1;
	ev.exception.has_error_code = 0;
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	return 0;
}

/*
 * Stopped on the #PF handler's first instruction: is this the fault of a
 * SYSCALL PVM left in user mode? Only if the frame says ring 3 at LSTAR,
 * CR2 is LSTAR, SFMASK's IF is already off (SYSCALL did that; ring 3 code
 * cannot clear IF itself), and RCX follows a SYSCALL instruction. A user
 * program that merely jumps to LSTAR gets its fault.
 */
static int
vcpu_syscall_fixup(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	uint64_t f[6], star, sfmask;	/* error code, RIP, CS, RFLAGS, RSP, SS */
	uint8_t insn[2];
	uint16_t sel;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	if ((s.cs.selector & 3) || s.cr2 != v->sysbp_lstar ||
	    vcpu_gva_access(v, r.rsp, f, sizeof(f), false) < 0 ||
	    f[1] != v->sysbp_lstar || (f[2] & 3) != 3 ||
	    vcpu_get_msr(v, MSR_STAR, &star) < 0 ||
	    vcpu_get_msr(v, MSR_SFMASK, &sfmask) < 0 ||
	    ((sfmask & RFLAGS_IF) && (f[3] & RFLAGS_IF)) || r.rcx < 2 ||
	    vcpu_gva_access(v, r.rcx - 2, insn, 2, false) < 0 ||
	    insn[0] != 0x0f || insn[1] != 0x05)
		return 0;
	r.rip = v->sysbp_lstar;
	r.rsp = f[4];
	r.rflags = (f[3] & ~(sfmask | RFLAGS_RF)) | 2;
	sel = (uint16_t)(star >> 32) & 0xfffc;
	vcpu_seg(&s.cs, sel, 0xb, true);
	vcpu_seg(&s.ss, (uint16_t)(sel + 8), 0x3, false);
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 ||
	    ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return -errno;
	__atomic_add_fetch(&v->stats.pvm_syscalls, 1, __ATOMIC_RELAXED);
	return 0;
}

static int
vcpu_handle_debug(struct vcpu *v)
{
	int r;

	vcpu_count(v, VCPU_EXIT_DEBUG);
	if (v->sysbp_stepping)
		return vcpu_sysbp_set(v, false);
	if (!v->sysbp_pf || v->run->debug.arch.pc != v->sysbp_pf)
		return vcpu_reinject_db(v);
	r = vcpu_syscall_fixup(v);
	if (r < 0)
		return r;
	return vcpu_sysbp_set(v, true);
}

static uint64_t
vcpu_rip(struct vcpu *v)
{
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0)
		return 0;
	return regs.rip;
}

int
vcpu_run_once(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;
	unsigned int i;
	int r;

	__atomic_add_fetch(&v->stats.runs, 1, __ATOMIC_RELAXED);
	r = ioctl(v->fd, KVM_RUN, 0);
	if (r < 0) {
		r = -errno;
		if (r == -EINTR || r == -EAGAIN) {
			__atomic_store_n(&run->immediate_exit, 0,
					 __ATOMIC_SEQ_CST);
			vcpu_count(v, VCPU_EXIT_INTR);
			return VCPU_EXIT_INTR;
		}
		return r;
	}
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		bool out = run->io.direction == KVM_EXIT_IO_OUT;
		uint64_t total = (uint64_t)run->io.size * run->io.count;
		uint8_t *p = (uint8_t *)run + run->io.data_offset;

		if (run->io.data_offset > v->run_size ||
		    total > v->run_size - run->io.data_offset)
			return -EIO;
		for (i = 0; i < run->io.count; i++) {
			bus_dispatch(&vm->pio, run->io.port, p, run->io.size,
				     out);
			p += run->io.size;
		}
		vcpu_count(v, out ? VCPU_EXIT_IO_OUT : VCPU_EXIT_IO_IN);
		return out ? VCPU_EXIT_IO_OUT : VCPU_EXIT_IO_IN;
	}
	case KVM_EXIT_MMIO: {
		uint32_t len = run->mmio.len;

		if (len > sizeof(run->mmio.data))
			len = sizeof(run->mmio.data);
		bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data,
			     len, run->mmio.is_write);
		vcpu_count(v, run->mmio.is_write ? VCPU_EXIT_MMIO_WRITE :
						   VCPU_EXIT_MMIO_READ);
		return run->mmio.is_write ? VCPU_EXIT_MMIO_WRITE :
					    VCPU_EXIT_MMIO_READ;
	}
	case KVM_EXIT_HLT:
		vcpu_count(v, VCPU_EXIT_HLT);
		return VCPU_EXIT_HLT;
	case KVM_EXIT_SHUTDOWN:
		vcpu_count(v, VCPU_EXIT_SHUTDOWN);
		return VCPU_EXIT_SHUTDOWN;
	case KVM_EXIT_SYSTEM_EVENT:
		vcpu_count(v, VCPU_EXIT_SYSTEM_EVENT);
		return VCPU_EXIT_SYSTEM_EVENT;
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_count(v, VCPU_EXIT_FAIL_ENTRY);
		return VCPU_EXIT_FAIL_ENTRY;
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		vcpu_count(v, VCPU_EXIT_IRQ_WINDOW);
		return VCPU_EXIT_IRQ_WINDOW;
	case KVM_EXIT_INTR:
		vcpu_count(v, VCPU_EXIT_INTR);
		return VCPU_EXIT_INTR;
	case KVM_EXIT_DEBUG:
		r = vcpu_handle_debug(v);
		return r < 0 ? r : VCPU_EXIT_DEBUG;
	case KVM_EXIT_X86_WRMSR:
		if (!vm->syscall_bridge)
			break;
		r = vcpu_handle_wrmsr(v);
		return r < 0 ? r : VCPU_EXIT_MSR;
	case KVM_EXIT_X86_RDMSR:
		vcpu_count(v, VCPU_EXIT_MSR);
		run->msr.error = 1;
		return VCPU_EXIT_MSR;
	case KVM_EXIT_INTERNAL_ERROR:
		vcpu_count(v, VCPU_EXIT_INTERNAL_ERROR);
		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
			r = vcpu_handle_emulation_failure(v);
			return r < 0 ? r : VCPU_EXIT_EMULATED;
		}
		return VCPU_EXIT_INTERNAL_ERROR;
	default:
		break;
	}
	vcpu_count(v, VCPU_EXIT_OTHER);
	return VCPU_EXIT_OTHER;
}

void *
vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	__atomic_store_n(&v->tid, gettid(), __ATOMIC_RELEASE);

	while (vm_stop_reason(vm) == VM_STOP_NONE) {
		vm_pause_point(vm);
		r = vcpu_run_once(v);
		switch (r) {
		case VCPU_EXIT_SHUTDOWN:
			vm_request_stop(vm, VM_STOP_CRASH, "vCPU %u: triple "
					"fault (KVM_EXIT_SHUTDOWN) at RIP 0x%llx",
					v->index,
					(unsigned long long)vcpu_rip(v));
			break;
		case VCPU_EXIT_SYSTEM_EVENT:
			switch (v->run->system_event.type) {
			case KVM_SYSTEM_EVENT_SHUTDOWN:
				vm_request_stop(vm, VM_STOP_POWEROFF,
						"system event: shutdown");
				break;
			case KVM_SYSTEM_EVENT_RESET:
				vm_request_stop(vm, VM_STOP_REBOOT,
						"system event: reset");
				break;
			default:
				vm_request_stop(vm, VM_STOP_CRASH, "system "
						"event %u", v->run->system_event.type);
				break;
			}
			break;
		case VCPU_EXIT_HLT:
			/* Only without an in-kernel irqchip: nothing can wake
			 * this vCPU up again. */
			vm_request_stop(vm, VM_STOP_CRASH, "vCPU %u halted with "
					"no interrupt controller", v->index);
			break;
		case VCPU_EXIT_FAIL_ENTRY:
			vm_request_stop(vm, VM_STOP_CRASH, "vCPU %u: entry "
					"failed, hardware reason 0x%llx", v->index,
					(unsigned long long)v->run->fail_entry
						.hardware_entry_failure_reason);
			break;
		case VCPU_EXIT_INTERNAL_ERROR:
			vm_request_stop(vm, VM_STOP_CRASH, "vCPU %u: KVM "
					"internal error, suberror %u at RIP "
					"0x%llx", v->index,
					v->run->internal.suberror,
					(unsigned long long)vcpu_rip(v));
			break;
		case VCPU_EXIT_OTHER:
			log_warn("vCPU %u: unexpected exit reason %u",
				 v->index, v->run->exit_reason);
			break;
		default:
			if (r < 0 && r != -ENOTSUP)
				vm_request_stop(vm, VM_STOP_ERROR, "vCPU %u: "
						"KVM_RUN: %s", v->index,
						strerror(-r));
			break;
		}
	}
	return NULL;
}
