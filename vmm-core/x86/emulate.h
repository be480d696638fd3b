/* SPDX-License-Identifier: MIT */
/*
 * An x86 instruction emulator for the instructions the host's KVM cannot
 * emulate itself. On hosts whose KVM has no hardware virtualization (PVM,
 * see HOST.md) guest kernel code is emulated by KVM, and some instructions
 * (int3, cmpxchg16b, xrstor, fwait, ldmxcsr, the kernel's SSE code, ...) end
 * KVM_RUN with KVM_INTERNAL_ERROR_EMULATION. The vCPU thread then fetches
 * the bytes at RIP and the vCPU state and calls emu_step(), which carries
 * the instruction out on that state and advances RIP.
 *
 * The emulator knows nothing about KVM file descriptors or guest page
 * tables: guest memory is reached through emu_mem_ops on guest-virtual
 * (linear) addresses, and the caller writes back what emu_step marks dirty.
 * Instructions are looked up in opcode tables keyed by (opcode map, opcode,
 * mandatory prefix); adding one is a table row and a small function in
 * emulate.c.
 */
#ifndef VMM_X86_EMULATE_H
#define VMM_X86_EMULATE_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest x86 instruction; longer encodings raise #GP. */
#define EMU_MAX_INSN_LEN 15

/* Exception vectors emu_step can ask the caller to inject. */
#define EMU_VEC_DB 1
#define EMU_VEC_BP 3
#define EMU_VEC_UD 6
#define EMU_VEC_NM 7
#define EMU_VEC_SS 12
#define EMU_VEC_GP 13
#define EMU_VEC_MF 16

/*
 * Guest-virtual memory access. gva is a linear address (segment base already
 * added). Each operand is one call: a 16-byte SSE operand, the 512 bytes of
 * FXSAVE. Both return 0, or a negative errno (-EFAULT) when any byte of the
 * range cannot be accessed; write should then write nothing, which it can
 * ensure by translating the whole range before copying.
 *
 * cmpxchg is optional. When set, `lock cmpxchg8b/16b` uses it so that the
 * compare and the store are one atomic step with respect to other vCPUs:
 * compare the len bytes at gva with *expected and, when equal, store
 * *desired and return 0; when different, copy the current bytes into
 * *expected and return 1; negative errno when the range is not accessible.
 * Without it the emulator reads, compares and writes, which is only atomic
 * when no other vCPU runs (one vCPU, or all others stopped).
 */
struct emu_mem_ops {
	int (*read)(void *opaque, uint64_t gva, void *buf, size_t len);
	int (*write)(void *opaque, uint64_t gva, const void *buf, size_t len);
	int (*cmpxchg)(void *opaque, uint64_t gva, void *expected,
		       const void *desired, size_t len);
};

/*
 * The vCPU state the emulator works on. The caller fills regs, sregs, fpu
 * (KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_FPU) and, for the XSAVE family,
 * xcr0 and xss; it writes back regs (KVM_SET_REGS) when regs_dirty and fpu
 * (KVM_SET_FPU) when fpu_dirty. emu_step only ever sets the dirty flags, so
 * several steps can share one write-back; the caller clears them. sregs is
 * read, never changed.
 */
struct emu_vcpu {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	/*
	 * XCR0 (KVM_GET_XCRS) and IA32_XSS (MSR 0xda0). xcr0 == 0 means
	 * "not known": x87|SSE is assumed. The emulator only holds x87 and SSE
	 * state, so XSAVE-family instructions that ask for any other
	 * component return EMU_UNHANDLED.
	 */
	uint64_t xcr0;
	uint64_t xss;
	bool regs_dirty;
	bool fpu_dirty;
	/* Out, with EMU_EXCEPTION: the vector to inject, else -1. */
	int exception;
	bool exception_has_error;
	uint32_t error_code;
	/*
	 * Out, with EMU_MEM_FAULT: the first address of the access that failed
	 * and whether it was a write. For #PF the caller's ops know the exact
	 * faulting page (CR2) when an access straddles two pages.
	 */
	uint64_t fault_gva;
	bool fault_write;
};

enum emu_result {
	/* Executed; RIP advanced; state marked dirty. */
	EMU_OK,
	/*
	 * Inject s->exception (with s->error_code when exception_has_error).
	 * RIP is as the exception requires: past the instruction for traps
	 * (int3, int n), at the instruction for faults (#UD, #GP, #NM, #MF),
	 * which change nothing else.
	 */
	EMU_EXCEPTION,
	/* Not an instruction we know (or truncated): nothing changed. */
	EMU_UNHANDLED,
	/* A memory operand could not be accessed: nothing committed. */
	EMU_MEM_FAULT,
	EMU_RESULT_MAX,
};

/*
 * Decode and execute the instruction in insn[0..len) (the bytes at RIP; up
 * to 15, fewer near the end of a page) on s. The mode (16, 32 or 64-bit) and
 * CPL come from s->sregs. An instruction longer than len returns
 * EMU_UNHANDLED.
 */
enum emu_result emu_step(struct emu_vcpu *s, const uint8_t *insn, size_t len,
			 const struct emu_mem_ops *ops, void *opaque);

/*
 * Write a one-line description of the instruction at insn (decoded as 64-bit
 * code, e.g. "movd xmm15, ecx") into buf, always NUL-terminated. When the
 * instruction is unknown or truncated, buf gets its bytes in hex
 * ("0f 0b ..."). Returns the instruction's length when decoded, 0 when not,
 * -EINVAL when buf is NULL or buflen is 0.
 */
int emu_describe(const uint8_t *insn, size_t len, char *buf, size_t buflen);

/* "ok", "exception", "unhandled", "memory fault": for logs. */
const char *emu_result_name(enum emu_result r);

#endif
