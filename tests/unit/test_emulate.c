/* SPDX-License-Identifier: MIT */
/*
 * Tests of the instruction emulator (vmm-core/x86/emulate.c). Every test
 * builds a vCPU state and a fake guest memory (a buffer at some gva; the ops
 * fail outside it, or on writes to a read-only window), runs emu_step on
 * hand-assembled bytes, and checks registers, XMM, flags, memory and RIP
 * exactly. The SSE lane operations are also checked against the host CPU
 * running the same instruction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "x86/emulate.h"

#define MEM_SIZE	0x2000
/* Canonical kernel address (the direct map), 64-byte aligned. */
#define GVA64		0xffff888000100000ULL
#define RIP0		0xffffffff81000000ULL

#define CR0_LONG	0x80050033ULL	/* PG WP NE ET MP PE */
#define CR4_LONG	0x000006a0ULL	/* OSXMMEXCPT OSFXSR PGE PAE */
#define CR4_OSXSAVE	(1ULL << 18)
#define EFER_LONG	0xd01ULL	/* NXE LMA LME SCE */

#define FL_CF	(1ULL << 0)
#define FL_PF	(1ULL << 2)
#define FL_AF	(1ULL << 4)
#define FL_ZF	(1ULL << 6)
#define FL_SF	(1ULL << 7)
#define FL_OF	(1ULL << 11)
#define FL_AC	(1ULL << 18)
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

struct fake_mem {
	uint64_t gva;
	uint8_t bytes[MEM_SIZE] __attribute__((aligned(64)));
	/* Writes that touch [ro_gva, ro_gva + ro_len) fail. */
	uint64_t ro_gva;
	uint64_t ro_len;
	unsigned int reads;
	unsigned int writes;
	unsigned int cmpxchgs;
	size_t last_read_len;
	size_t last_write_len;
};

static struct fake_mem mem;

static bool
mem_range(uint64_t gva, size_t len)
{
	return gva >= mem.gva && len <= MEM_SIZE &&
	       gva - mem.gva <= MEM_SIZE - len;
}

static int
fake_read(void *opaque, uint64_t gva, void *buf, size_t len)
{
	assert_ptr_equal(opaque, &mem);
	if (!mem_range(gva, len))
		return -EFAULT;
	memcpy(buf, mem.bytes + (gva - mem.gva), len);
	mem.reads++;
	mem.last_read_len = len;
	return 0;
}

static int
fake_write(void *opaque, uint64_t gva, const void *buf, size_t len)
{
	assert_ptr_equal(opaque, &mem);
	if (!mem_range(gva, len))
		return -EFAULT;
	if (mem.ro_len && gva < mem.ro_gva + mem.ro_len &&
	    mem.ro_gva < gva + len)
		return -EFAULT;
	memcpy(mem.bytes + (gva - mem.gva), buf, len);
	mem.writes++;
	mem.last_write_len = len;
	return 0;
}

static int
fake_cmpxchg(void *opaque, uint64_t gva, void *expected, const void *desired,
	     size_t len)
{
	uint8_t *p;

	assert_ptr_equal(opaque, &mem);
	mem.cmpxchgs++;
	if (!mem_range(gva, len))
		return -EFAULT;
	p = mem.bytes + (gva - mem.gva);
	if (memcmp(p, expected, len) != 0) {
		memcpy(expected, p, len);
		return 1;
	}
	memcpy(p, desired, len);
	return 0;
}

static const struct emu_mem_ops mem_ops = {
	.read = fake_read,
	.write = fake_write,
};

static const struct emu_mem_ops mem_ops_atomic = {
	.read = fake_read,
	.write = fake_write,
	.cmpxchg = fake_cmpxchg,
};

static uint64_t
A(uint64_t off)
{
	return mem.gva + off;
}

static int
setup(void **state)
{
	(void)state;
	memset(&mem, 0, sizeof(mem));
	mem.gva = GVA64;
	return 0;
}

/* A 64-bit kernel at CPL 0, as the Linux guest is when it exits to us. */
static void
vcpu_long(struct emu_vcpu *s)
{
	memset(s, 0, sizeof(*s));
	s->sregs.cr0 = CR0_LONG;
	s->sregs.cr4 = CR4_LONG;
	s->sregs.efer = EFER_LONG;
	s->sregs.cs.selector = 0x10;
	s->sregs.cs.l = 1;
	s->sregs.cs.present = 1;
	s->sregs.cs.s = 1;
	s->sregs.cs.type = 11;
	s->sregs.ss.selector = 0x18;
	s->sregs.ss.present = 1;
	s->regs.rip = RIP0;
	s->regs.rflags = 0x2;
	s->fpu.fcw = 0x37f;
	s->fpu.mxcsr = 0x1f80;
	s->exception = 42;
}

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })
#define STEP(s, ...)							\
	emu_step((s), B(__VA_ARGS__), sizeof(B(__VA_ARGS__)), &mem_ops, &mem)
#define NBYTES(...) sizeof(B(__VA_ARGS__))

static void
xmm_put(struct emu_vcpu *s, unsigned int n, uint64_t lo, uint64_t hi)
{
	memcpy(s->fpu.xmm[n], &lo, 8);
	memcpy(s->fpu.xmm[n] + 8, &hi, 8);
}

static uint64_t
xmm_lo(const struct emu_vcpu *s, unsigned int n)
{
	uint64_t v;

	memcpy(&v, s->fpu.xmm[n], 8);
	return v;
}

static uint64_t
xmm_hi(const struct emu_vcpu *s, unsigned int n)
{
	uint64_t v;

	memcpy(&v, s->fpu.xmm[n] + 8, 8);
	return v;
}

static void
mem_put64(uint64_t off, uint64_t v)
{
	memcpy(mem.bytes + off, &v, 8);
}

static uint64_t
mem_get64(uint64_t off)
{
	uint64_t v;

	memcpy(&v, mem.bytes + off, 8);
	return v;
}

static uint32_t
mem_get32(uint64_t off)
{
	uint32_t v;

	memcpy(&v, mem.bytes + off, 4);
	return v;
}

static uint16_t
mem_get16(uint64_t off)
{
	uint16_t v;

	memcpy(&v, mem.bytes + off, 2);
	return v;
}

/* Fill every XMM register with a distinct pattern. */
static void
xmm_pattern(struct emu_vcpu *s)
{
	for (unsigned int i = 0; i < 16; i++)
		for (unsigned int j = 0; j < 16; j++)
			s->fpu.xmm[i][j] = (uint8_t)(0x10 * i + j);
}

struct snap {
	struct emu_vcpu s;
	uint8_t bytes[MEM_SIZE];
	unsigned int writes;
};

static void
snap_take(struct snap *sn, const struct emu_vcpu *s)
{
	sn->s = *s;
	memcpy(sn->bytes, mem.bytes, MEM_SIZE);
	sn->writes = mem.writes;
}

/* Nothing of the vCPU or of memory changed since the snapshot. */
static void
assert_unchanged(const struct snap *sn, const struct emu_vcpu *s)
{
	assert_memory_equal(&sn->s.regs, &s->regs, sizeof(s->regs));
	assert_memory_equal(&sn->s.sregs, &s->sregs, sizeof(s->sregs));
	assert_memory_equal(&sn->s.fpu, &s->fpu, sizeof(s->fpu));
	assert_int_equal(sn->s.regs_dirty, s->regs_dirty);
	assert_int_equal(sn->s.fpu_dirty, s->fpu_dirty);
	assert_memory_equal(sn->bytes, mem.bytes, MEM_SIZE);
	assert_int_equal(sn->writes, mem.writes);
}

static void
assert_exception(const struct emu_vcpu *s, int vector, bool has_error,
		 uint32_t code)
{
	assert_int_equal(s->exception, vector);
	assert_int_equal(s->exception_has_error, has_error);
	if (has_error)
		assert_int_equal(s->error_code, code);
}

/* A fault: EMU_EXCEPTION with nothing changed, RIP still at the insn. */
static void
expect_fault(struct emu_vcpu *s, const uint8_t *insn, size_t len,
	     int vector, bool has_error)
{
	struct snap sn;

	snap_take(&sn, s);
	assert_int_equal(emu_step(s, insn, len, &mem_ops, &mem),
			 EMU_EXCEPTION);
	assert_exception(s, vector, has_error, 0);
	assert_unchanged(&sn, s);
}

static void
expect_unhandled(struct emu_vcpu *s, const uint8_t *insn, size_t len)
{
	struct snap sn;

	snap_take(&sn, s);
	assert_int_equal(emu_step(s, insn, len, &mem_ops, &mem),
			 EMU_UNHANDLED);
	assert_int_equal(s->exception, -1);
	assert_unchanged(&sn, s);
}

#define EXPECT_FAULT(s, vec, err, ...)					\
	expect_fault((s), B(__VA_ARGS__), NBYTES(__VA_ARGS__), (vec), (err))
#define EXPECT_UNHANDLED(s, ...)					\
	expect_unhandled((s), B(__VA_ARGS__), NBYTES(__VA_ARGS__))

/* int3, int n, ud2 */

static void
test_int3(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rflags |= 1ULL << 16;	/* RF, cleared by completion */
	assert_int_equal(STEP(&s, 0xcc), EMU_EXCEPTION);
	assert_exception(&s, 3, false, 0);
	assert_int_equal(s.regs.rip, RIP0 + 1);
	assert_int_equal(s.regs.rflags, 0x2);
	assert_true(s.regs_dirty);
	assert_false(s.fpu_dirty);

	/* int $3 (cd 03) traps the same way, past its two bytes. */
	vcpu_long(&s);
	assert_int_equal(STEP(&s, 0xcd, 0x03), EMU_EXCEPTION);
	assert_exception(&s, 3, false, 0);
	assert_int_equal(s.regs.rip, RIP0 + 2);

	/* int $0x80 is not an exception vector: left to the caller. */
	vcpu_long(&s);
	EXPECT_UNHANDLED(&s, 0xcd, 0x80);
}

static void
test_ud(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	EXPECT_FAULT(&s, 6, false, 0x0f, 0x0b);			/* ud2 */
	EXPECT_FAULT(&s, 6, false, 0x0f, 0xb9, 0x40, 0x10);	/* ud1 */
	assert_false(s.regs_dirty);
}

/* x87 control */

static void
test_fwait(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.fpu.fsw = 0x0020;	/* PE flag, masked: nothing pending */
	assert_int_equal(STEP(&s, 0x9b), EMU_OK);
	assert_int_equal(s.regs.rip, RIP0 + 1);
	assert_int_equal(s.exception, -1);
	assert_false(s.fpu_dirty);

	/* An unmasked exception pending: #MF at the fwait. */
	vcpu_long(&s);
	s.fpu.fsw = 0x0081;
	EXPECT_FAULT(&s, 16, false, 0x9b);

	/* CR0.TS with CR0.MP: #NM; TS without MP: no fault. */
	vcpu_long(&s);
	s.sregs.cr0 |= 1ULL << 3;
	EXPECT_FAULT(&s, 7, false, 0x9b);
	s.sregs.cr0 &= ~(1ULL << 1);
	assert_int_equal(STEP(&s, 0x9b), EMU_OK);
}

static void
test_fninit_fnclex(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.fpu.fcw = 0x0040;
	s.fpu.fsw = 0xb8ff;
	s.fpu.ftwx = 0xff;
	s.fpu.last_opcode = 0x1d9;
	s.fpu.last_ip = 0x1234;
	s.fpu.last_dp = 0x5678;
	s.fpu.fpr[3][2] = 0x77;
	assert_int_equal(STEP(&s, 0xdb, 0xe3), EMU_OK);
	assert_int_equal(s.fpu.fcw, 0x037f);
	assert_int_equal(s.fpu.fsw, 0);
	assert_int_equal(s.fpu.ftwx, 0);
	assert_int_equal(s.fpu.last_opcode, 0);
	assert_int_equal(s.fpu.last_ip, 0);
	assert_int_equal(s.fpu.last_dp, 0);
	/* The data registers are left as they were. */
	assert_int_equal(s.fpu.fpr[3][2], 0x77);
	assert_int_equal(s.regs.rip, RIP0 + 2);
	assert_true(s.fpu_dirty);

	/* fnclex clears the exception flags, SF, ES and B; keeps TOP, C0-3. */
	vcpu_long(&s);
	s.fpu.fsw = 0xffff;
	assert_int_equal(STEP(&s, 0xdb, 0xe2), EMU_OK);
	assert_int_equal(s.fpu.fsw, 0x7f00);
	/* fnclex is not a waiting instruction: no #MF even with ES set. */
	assert_int_equal(s.regs.rip, RIP0 + 2);

	/* CR0.TS or CR0.EM: #NM. */
	vcpu_long(&s);
	s.sregs.cr0 |= 1ULL << 3;
	EXPECT_FAULT(&s, 7, false, 0xdb, 0xe3);
	vcpu_long(&s);
	s.sregs.cr0 |= 1ULL << 2;
	EXPECT_FAULT(&s, 7, false, 0xdb, 0xe2);
}

static void
test_fldcw_fnstcw_fnstsw(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* fldcw [rax] */
	vcpu_long(&s);
	s.regs.rax = A(0x10);
	mem.bytes[0x10] = 0x7f;
	mem.bytes[0x11] = 0x02;
	assert_int_equal(STEP(&s, 0xd9, 0x28), EMU_OK);
	assert_int_equal(s.fpu.fcw, 0x027f);
	assert_int_equal(s.regs.rip, RIP0 + 2);
	assert_true(s.fpu_dirty);

	/* Unmasking a pending exception sets ES and B; masking clears. */
	vcpu_long(&s);
	s.regs.rax = A(0x10);
	s.fpu.fsw = 0x0004;		/* ZE pending, masked */
	mem.bytes[0x10] = 0x7b;		/* ZM cleared */
	mem.bytes[0x11] = 0x03;
	assert_int_equal(STEP(&s, 0xd9, 0x28), EMU_OK);
	assert_int_equal(s.fpu.fsw, 0x8084);
	mem.bytes[0x10] = 0x7f;
	assert_int_equal(STEP(&s, 0xd9, 0x28), EMU_OK);
	assert_int_equal(s.fpu.fsw, 0x0004);

	/* fnstcw [rbx] */
	vcpu_long(&s);
	s.regs.rbx = A(0x20);
	s.fpu.fcw = 0x1234;
	assert_int_equal(STEP(&s, 0xd9, 0x3b), EMU_OK);
	assert_int_equal(mem_get16(0x20), 0x1234);
	assert_int_equal(mem.last_write_len, 2);
	assert_false(s.fpu_dirty);

	/* fnstsw ax: only AX changes. */
	vcpu_long(&s);
	s.regs.rax = 0x1122334455667788ULL;
	s.fpu.fsw = 0x3881;
	assert_int_equal(STEP(&s, 0xdf, 0xe0), EMU_OK);
	assert_int_equal(s.regs.rax, 0x1122334455663881ULL);

	/* fnstsw [rcx] */
	vcpu_long(&s);
	s.regs.rcx = A(0x30);
	s.fpu.fsw = 0xbeef;
	assert_int_equal(STEP(&s, 0xdd, 0x39), EMU_OK);
	assert_int_equal(mem_get16(0x30), 0xbeef);
}

static void
test_emms(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.fpu.ftwx = 0xff;
	assert_int_equal(STEP(&s, 0x0f, 0x77), EMU_OK);
	assert_int_equal(s.fpu.ftwx, 0);
	assert_int_equal(s.regs.rip, RIP0 + 2);
	vcpu_long(&s);
	s.fpu.fsw = 0x0081;
	EXPECT_FAULT(&s, 16, false, 0x0f, 0x77);
}

/* MXCSR */

static void
test_ldmxcsr_stmxcsr(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rax = A(0x40);
	memcpy(mem.bytes + 0x40, &(uint32_t){ 0xffc0 }, 4);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x10), EMU_OK);
	assert_int_equal(s.fpu.mxcsr, 0xffc0);
	assert_int_equal(s.regs.rip, RIP0 + 3);
	assert_true(s.fpu_dirty);

	/* stmxcsr [rbx] */
	s.regs.rbx = A(0x44);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x1b), EMU_OK);
	assert_int_equal(mem_get32(0x44), 0xffc0);

	/* A reserved bit: #GP(0), MXCSR unchanged. */
	vcpu_long(&s);
	s.regs.rax = A(0x48);
	memcpy(mem.bytes + 0x48, &(uint32_t){ 0x11f80 }, 4);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x10);
	assert_int_equal(s.error_code, 0);
	assert_int_equal(s.fpu.mxcsr, 0x1f80);

	/* SSE not enabled by the OS: #UD; TS: #NM. */
	vcpu_long(&s);
	s.regs.rax = A(0x40);
	s.sregs.cr4 &= ~(1ULL << 9);
	EXPECT_FAULT(&s, 6, false, 0x0f, 0xae, 0x10);
	vcpu_long(&s);
	s.regs.rax = A(0x40);
	s.sregs.cr0 |= 1ULL << 3;
	EXPECT_FAULT(&s, 7, false, 0x0f, 0xae, 0x10);
}

/* FXSAVE / FXRSTOR */

static void
fpu_pattern(struct kvm_fpu *f)
{
	f->fcw = 0x027f;
	f->fsw = 0x3801;
	f->ftwx = 0x81;
	f->last_opcode = 0x5d9;
	f->last_ip = 0x1122334455667788ULL;
	f->last_dp = 0x99aabbccddeeff00ULL;
	f->mxcsr = 0x1fc0;
	for (unsigned int i = 0; i < 8; i++) {
		memset(f->fpr[i], 0, 16);
		for (unsigned int j = 0; j < 10; j++)
			f->fpr[i][j] = (uint8_t)(0x80 + 16 * i + j);
	}
	for (unsigned int i = 0; i < 16; i++)
		for (unsigned int j = 0; j < 16; j++)
			f->xmm[i][j] = (uint8_t)(0x10 * i + j);
}

static void
test_fxsave_fxrstor64(void **state)
{
	struct emu_vcpu s;
	struct kvm_fpu want;

	(void)state;
	vcpu_long(&s);
	fpu_pattern(&s.fpu);
	want = s.fpu;
	memset(mem.bytes, 0xee, MEM_SIZE);
	s.regs.rax = A(0x100);
	/* fxsave64 [rax] */
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xae, 0x00), EMU_OK);
	assert_int_equal(s.regs.rip, RIP0 + 4);
	assert_false(s.fpu_dirty);
	assert_int_equal(mem.writes, 1);
	assert_int_equal(mem_get16(0x100 + 0), 0x027f);
	assert_int_equal(mem_get16(0x100 + 2), 0x3801);
	assert_int_equal(mem.bytes[0x100 + 4], 0x81);
	assert_int_equal(mem.bytes[0x100 + 5], 0);
	assert_int_equal(mem_get16(0x100 + 6), 0x5d9);
	assert_int_equal(mem_get64(0x100 + 8), 0x1122334455667788ULL);
	assert_int_equal(mem_get64(0x100 + 16), 0x99aabbccddeeff00ULL);
	assert_int_equal(mem_get32(0x100 + 24), 0x1fc0);
	assert_int_equal(mem_get32(0x100 + 28), 0xffff);
	assert_memory_equal(mem.bytes + 0x100 + 32 + 16 * 5, want.fpr[5], 16);
	assert_memory_equal(mem.bytes + 0x100 + 160, want.xmm, 256);
	/* Bytes 416-511 are reserved or software's: untouched. */
	for (unsigned int i = 416; i < 512; i++)
		assert_int_equal(mem.bytes[0x100 + i], 0xee);

	/* fxrstor64 [rax] from that image restores everything. */
	memset(&s.fpu, 0, sizeof(s.fpu));
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xae, 0x08), EMU_OK);
	assert_true(s.fpu_dirty);
	assert_memory_equal(&s.fpu, &want, sizeof(want));
	assert_int_equal(s.regs.rip, RIP0 + 8);
	assert_int_equal(mem.last_read_len, 512);
}

static void
test_fxsave_fxrstor32_format(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	fpu_pattern(&s.fpu);
	memset(mem.bytes, 0xee, MEM_SIZE);
	s.regs.rax = A(0x200);
	/* fxsave [rax]: 32-bit FIP/FDP, FCS/FDS written as zero. */
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x00), EMU_OK);
	assert_int_equal(mem_get32(0x200 + 8), 0x55667788);
	assert_int_equal(mem_get32(0x200 + 12), 0);
	assert_int_equal(mem_get32(0x200 + 16), 0xddeeff00);
	assert_int_equal(mem_get32(0x200 + 20), 0);
	assert_memory_equal(mem.bytes + 0x200 + 160 + 16 * 15,
			    s.fpu.xmm[15], 16);

	/* fxrstor [rax] brings back the 32-bit pointers. */
	s.fpu.last_ip = s.fpu.last_dp = 0;
	s.fpu.xmm[9][0] = 0;
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x08), EMU_OK);
	assert_int_equal(s.fpu.last_ip, 0x55667788);
	assert_int_equal(s.fpu.last_dp, 0xddeeff00);
	assert_int_equal(s.fpu.xmm[9][0], 0x90);
}

static void
test_fxsave_faults(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* Not 16-byte aligned: #GP(0), for both. */
	vcpu_long(&s);
	s.regs.rax = A(0x108);
	EXPECT_FAULT(&s, 13, true, 0x48, 0x0f, 0xae, 0x00);
	EXPECT_FAULT(&s, 13, true, 0x48, 0x0f, 0xae, 0x08);

	/* fxrstor with reserved MXCSR bits: #GP(0), FPU unchanged. */
	vcpu_long(&s);
	s.regs.rax = A(0x100);
	memcpy(mem.bytes + 0x100 + 24, &(uint32_t){ 0x10000 }, 4);
	mem.bytes[0x100] = 0x55;
	EXPECT_FAULT(&s, 13, true, 0x48, 0x0f, 0xae, 0x08);

	/* CR0.EM: #NM. */
	vcpu_long(&s);
	s.regs.rax = A(0x100);
	s.sregs.cr0 |= 1ULL << 2;
	EXPECT_FAULT(&s, 7, false, 0x48, 0x0f, 0xae, 0x00);

	/* The register form (0f ae /0 with mod 3) is not fxsave. */
	vcpu_long(&s);
	EXPECT_UNHANDLED(&s, 0x0f, 0xae, 0xc0);
}

/* XSAVE family */

static void
vcpu_xsave(struct emu_vcpu *s, uint64_t rfbm)
{
	vcpu_long(s);
	s->sregs.cr4 |= CR4_OSXSAVE;
	s->regs.rax = rfbm & 0xffffffff;
	s->regs.rdx = rfbm >> 32;
	s->regs.rbx = A(0x400);
	fpu_pattern(&s->fpu);
}

static void
xsave_area_reset(void)
{
	memset(mem.bytes + 0x400, 0xee, 512);
	memset(mem.bytes + 0x400 + 512, 0, 64);
}

static void
test_xsave_xrstor(void **state)
{
	struct emu_vcpu s;
	struct kvm_fpu want;

	(void)state;
	vcpu_xsave(&s, ~0ULL);
	want = s.fpu;
	xsave_area_reset();
	/* xsave64 [rbx] */
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xae, 0x23), EMU_OK);
	assert_int_equal(mem_get16(0x400), 0x027f);
	assert_int_equal(mem_get64(0x400 + 8), 0x1122334455667788ULL);
	assert_int_equal(mem_get32(0x400 + 24), 0x1fc0);
	assert_memory_equal(mem.bytes + 0x400 + 160, want.xmm, 256);
	assert_int_equal(mem.bytes[0x400 + 416], 0xee);
	assert_int_equal(mem_get64(0x400 + 512), 3);	/* XSTATE_BV */
	assert_int_equal(mem_get64(0x400 + 520), 0);	/* XCOMP_BV */

	/* xrstor64 [rbx] restores it. */
	memset(&s.fpu, 0, sizeof(s.fpu));
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xae, 0x2b), EMU_OK);
	assert_memory_equal(&s.fpu, &want, sizeof(want));
	assert_true(s.fpu_dirty);

	/* Only x87 asked: MXCSR and XMM bytes stay, XSTATE_BV gets bit 0. */
	vcpu_xsave(&s, 1);
	xsave_area_reset();
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x23), EMU_OK);
	assert_int_equal(mem_get16(0x400), 0x027f);
	assert_int_equal(mem_get32(0x400 + 24), 0xeeeeeeee);
	assert_int_equal(mem.bytes[0x400 + 160], 0xee);
	assert_int_equal(mem_get64(0x400 + 512), 1);
	/* XSTATE_BV bits outside RFBM are kept. */
	mem_put64(0x400 + 512, 2);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x23), EMU_OK);
	assert_int_equal(mem_get64(0x400 + 512), 3);

	/* xsaveopt saves like xsave. */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x33), EMU_OK);
	assert_int_equal(mem_get64(0x400 + 512), 3);
	assert_memory_equal(mem.bytes + 0x400 + 160, s.fpu.xmm, 256);
}

static void
test_xrstor_init_and_compacted(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* Standard form, SSE not in XSTATE_BV: XMM zeroed, MXCSR loaded. */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	memcpy(mem.bytes + 0x400 + 24, &(uint32_t){ 0x1f00 }, 4);
	mem_put64(0x400 + 512, 0);	/* x87 in init state too */
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x2b), EMU_OK);
	for (unsigned int i = 0; i < 16; i++)
		assert_true(xmm_lo(&s, i) == 0 && xmm_hi(&s, i) == 0);
	assert_int_equal(s.fpu.mxcsr, 0x1f00);
	assert_int_equal(s.fpu.fcw, 0x037f);
	assert_int_equal(s.fpu.fsw, 0);
	assert_int_equal(s.fpu.ftwx, 0);
	assert_int_equal(s.fpu.last_ip, 0);
	assert_int_equal(s.fpu.fpr[0][0], 0);

	/* Compacted form, SSE in init state: MXCSR becomes 0x1f80. */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	memcpy(mem.bytes + 0x400 + 24, &(uint32_t){ 0x1f00 }, 4);
	mem_put64(0x400 + 512, 1);
	mem_put64(0x400 + 520, (1ULL << 63) | 3);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x2b), EMU_OK);
	assert_int_equal(s.fpu.mxcsr, 0x1f80);
	assert_int_equal(xmm_lo(&s, 7), 0);
	assert_int_equal(s.fpu.fcw, 0xeeee);	/* x87 loaded from memory */

	/* xsavec writes the compacted header; xrstors reads it back. */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	assert_int_equal(STEP(&s, 0x0f, 0xc7, 0x23), EMU_OK);
	assert_int_equal(mem_get64(0x400 + 512), 3);
	assert_int_equal(mem_get64(0x400 + 520), (1ULL << 63) | 3);
	memset(&s.fpu, 0, sizeof(s.fpu));
	assert_int_equal(STEP(&s, 0x0f, 0xc7, 0x1b), EMU_OK);
	assert_int_equal(s.fpu.mxcsr, 0x1fc0);
	assert_int_equal(s.fpu.xmm[3][4], 0x34);

	/* xsaves too (supervisor, CPL 0). */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	assert_int_equal(STEP(&s, 0x0f, 0xc7, 0x2b), EMU_OK);
	assert_int_equal(mem_get64(0x400 + 520), (1ULL << 63) | 3);
}

static void
test_xsave_faults(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* Not 64-byte aligned: #GP(0). */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	s.regs.rbx = A(0x410);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x23);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);

	/* CR4.OSXSAVE clear: #UD. */
	vcpu_xsave(&s, 3);
	s.sregs.cr4 &= ~CR4_OSXSAVE;
	EXPECT_FAULT(&s, 6, false, 0x0f, 0xae, 0x23);

	/* Standard form with a nonzero XCOMP_BV: #GP(0). */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	mem_put64(0x400 + 512, 3);
	mem_put64(0x400 + 520, 1);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);

	/* XSTATE_BV naming a component outside XCR0: #GP(0). */
	mem_put64(0x400 + 520, 0);
	mem_put64(0x400 + 512, 7);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);

	/* Compacted with a reserved header byte set: #GP(0). */
	mem_put64(0x400 + 512, 3);
	mem_put64(0x400 + 520, (1ULL << 63) | 3);
	mem.bytes[0x400 + 540] = 1;
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);

	/* Bad MXCSR in the image: #GP(0). */
	xsave_area_reset();
	mem_put64(0x400 + 512, 3);
	memcpy(mem.bytes + 0x400 + 24, &(uint32_t){ 0x40000 }, 4);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);

	/* Compacted with XCOMP_BV naming a component outside XCR0. */
	xsave_area_reset();
	memcpy(mem.bytes + 0x400 + 24, &(uint32_t){ 0x1f80 }, 4);
	mem_put64(0x400 + 512, 3);
	mem_put64(0x400 + 520, (1ULL << 63) | 7);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);
	/* ...or XSTATE_BV not inside XCOMP_BV. */
	mem_put64(0x400 + 520, (1ULL << 63) | 1);
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xae, 0x2b);
	/* Both fine: it restores. */
	mem_put64(0x400 + 520, (1ULL << 63) | 3);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x2b), EMU_OK);

	/* xrstors needs the compacted form and CPL 0. */
	vcpu_xsave(&s, 3);
	xsave_area_reset();
	memcpy(mem.bytes + 0x400 + 24, &(uint32_t){ 0x1f80 }, 4);
	mem_put64(0x400 + 512, 3);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x2b), EMU_OK); /* xrstor: ok */
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xc7, 0x1b);
	vcpu_xsave(&s, 3);
	s.sregs.cs.selector = 0x33;
	EXPECT_FAULT(&s, 13, true, 0x0f, 0xc7, 0x2b);

	/* AVX state asked for: the emulator does not hold it. */
	vcpu_xsave(&s, 7);
	s.xcr0 = 7;
	xsave_area_reset();
	EXPECT_UNHANDLED(&s, 0x0f, 0xae, 0x23);
	EXPECT_UNHANDLED(&s, 0x0f, 0xae, 0x2b);
	/* ...but with XCR0 = 7 and EDX:EAX = 3 it is fine. */
	s.regs.rax = 3;
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x23), EMU_OK);
}

/* clac / stac */

static void
test_clac_stac(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	assert_int_equal(STEP(&s, 0x0f, 0x01, 0xcb), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x2 | FL_AC);
	assert_int_equal(s.regs.rip, RIP0 + 3);
	assert_int_equal(STEP(&s, 0x0f, 0x01, 0xca), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x2);
	assert_int_equal(s.regs.rip, RIP0 + 6);

	/* Not at CPL 0: #UD. */
	vcpu_long(&s);
	s.sregs.cs.selector = 0x33;
	EXPECT_FAULT(&s, 6, false, 0x0f, 0x01, 0xcb);
	/* Other 0f 01 forms (here: xgetbv) are not ours. */
	vcpu_long(&s);
	EXPECT_UNHANDLED(&s, 0x0f, 0x01, 0xd0);
}

/* verr / verw against a GDT in guest memory (Linux's MDS verw). */
static void
test_verr_verw(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* GDT at 0x500 of the fake memory: null, null, code64, data, a
	 * not-present data segment, a DPL 3 read-only data segment. */
	mem_put64(0x500, 0);
	mem_put64(0x508, 0);
	mem_put64(0x510, 0x00af9b000000ffffULL);
	mem_put64(0x518, 0x00cf93000000ffffULL);
	mem_put64(0x520, 0x00cf13000000ffffULL);
	mem_put64(0x528, 0x00cff1000000ffffULL);

	/* verw [rip + 0x100] with the selector 0x18 there: writable. */
	vcpu_long(&s);
	s.sregs.gdt.base = A(0x500);
	s.sregs.gdt.limit = 0x2f;
	mem_put64(0x000 + 7 + 0x100, 0x18);
	s.regs.rip = A(0);
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0x2d, 0x00, 0x01, 0x00, 0x00),
			 EMU_OK);
	assert_true(s.regs.rflags & FL_ZF);
	assert_int_equal(s.regs.rip, A(7));

	/* verw ax: code segment not writable; verr ax: readable code. */
	vcpu_long(&s);
	s.sregs.gdt.base = A(0x500);
	s.sregs.gdt.limit = 0x2f;
	s.regs.rax = 0x10;
	s.regs.rflags = 0x2 | FL_ZF;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe8), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe0), EMU_OK);
	assert_true(s.regs.rflags & FL_ZF);
	/* Not present, beyond the limit, null, LDT: never verified. */
	s.regs.rax = 0x20;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe8), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	s.regs.rax = 0x38;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe0), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	s.regs.rax = 0x0;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe0), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	s.regs.rax = 0x1c;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe0), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	/* A DPL 3 read-only data segment: readable, not writable. */
	s.regs.rax = 0x2b;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe0), EMU_OK);
	assert_true(s.regs.rflags & FL_ZF);
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe8), EMU_OK);
	assert_false(s.regs.rflags & FL_ZF);
	/* Other 0f 00 forms (sldt, ltr, ...) are not ours. */
	EXPECT_UNHANDLED(&s, 0x0f, 0x00, 0xc0);
}

/* cmpxchg8b / cmpxchg16b */

static void
cx16_state(struct emu_vcpu *s)
{
	vcpu_long(s);
	s->regs.rsi = A(0x300);
	s->regs.rax = 0x1111111111111111ULL;
	s->regs.rdx = 0x2222222222222222ULL;
	s->regs.rbx = 0xaaaaaaaaaaaaaaaaULL;
	s->regs.rcx = 0xbbbbbbbbbbbbbbbbULL;
	s->regs.rflags = 0x2 | FL_CF;
	mem_put64(0x300, 0x1111111111111111ULL);
	mem_put64(0x308, 0x2222222222222222ULL);
}

static void
test_cmpxchg16b(void **state)
{
	struct emu_vcpu s;

	(void)state;
	/* Equal: store RCX:RBX, ZF = 1, other flags kept. */
	cx16_state(&s);
	assert_int_equal(STEP(&s, 0xf0, 0x48, 0x0f, 0xc7, 0x0e), EMU_OK);
	assert_int_equal(mem_get64(0x300), 0xaaaaaaaaaaaaaaaaULL);
	assert_int_equal(mem_get64(0x308), 0xbbbbbbbbbbbbbbbbULL);
	assert_int_equal(s.regs.rflags, 0x2 | FL_CF | FL_ZF);
	assert_int_equal(s.regs.rax, 0x1111111111111111ULL);
	assert_int_equal(s.regs.rdx, 0x2222222222222222ULL);
	assert_int_equal(s.regs.rip, RIP0 + 5);
	assert_int_equal(mem.last_write_len, 16);

	/* Different: load memory into RDX:RAX, ZF = 0, memory unchanged. */
	cx16_state(&s);
	s.regs.rflags |= FL_ZF;
	s.regs.rdx = 0x2222222222222223ULL;
	mem.writes = 0;
	assert_int_equal(STEP(&s, 0xf0, 0x48, 0x0f, 0xc7, 0x0e), EMU_OK);
	assert_int_equal(s.regs.rax, 0x1111111111111111ULL);
	assert_int_equal(s.regs.rdx, 0x2222222222222222ULL);
	assert_int_equal(s.regs.rflags, 0x2 | FL_CF);
	assert_int_equal(mem_get64(0x300), 0x1111111111111111ULL);
	assert_int_equal(mem.writes, 0);

	/* Without LOCK it is still cmpxchg16b. */
	cx16_state(&s);
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xc7, 0x0e), EMU_OK);
	assert_int_equal(mem_get64(0x308), 0xbbbbbbbbbbbbbbbbULL);

	/* Misaligned: #GP(0). */
	cx16_state(&s);
	s.regs.rsi = A(0x308);
	EXPECT_FAULT(&s, 13, true, 0xf0, 0x48, 0x0f, 0xc7, 0x0e);

	/* The store faults: nothing committed, not even ZF. */
	cx16_state(&s);
	mem.ro_gva = A(0x300);
	mem.ro_len = 16;
	{
		struct snap sn;

		snap_take(&sn, &s);
		assert_int_equal(STEP(&s, 0xf0, 0x48, 0x0f, 0xc7, 0x0e),
				 EMU_MEM_FAULT);
		assert_unchanged(&sn, &s);
		assert_int_equal(s.fault_gva, A(0x300));
		assert_true(s.fault_write);
	}
}

static void
test_cmpxchg16b_atomic_op(void **state)
{
	struct emu_vcpu s;
	const uint8_t insn[] = { 0xf0, 0x48, 0x0f, 0xc7, 0x0e };

	(void)state;
	cx16_state(&s);
	assert_int_equal(emu_step(&s, insn, sizeof(insn), &mem_ops_atomic,
				  &mem), EMU_OK);
	assert_int_equal(mem.cmpxchgs, 1);
	assert_int_equal(mem.writes, 0);
	assert_int_equal(mem_get64(0x300), 0xaaaaaaaaaaaaaaaaULL);
	assert_true(s.regs.rflags & FL_ZF);

	/* Mismatch through the op: RDX:RAX get the current value. */
	assert_int_equal(emu_step(&s, insn, sizeof(insn), &mem_ops_atomic,
				  &mem), EMU_OK);
	assert_int_equal(mem.cmpxchgs, 2);
	assert_int_equal(s.regs.rax, 0xaaaaaaaaaaaaaaaaULL);
	assert_int_equal(s.regs.rdx, 0xbbbbbbbbbbbbbbbbULL);
	assert_false(s.regs.rflags & FL_ZF);

	/* The op fails: memory fault, registers untouched. */
	cx16_state(&s);
	s.regs.rsi = A(MEM_SIZE);
	{
		struct snap sn;

		snap_take(&sn, &s);
		assert_int_equal(emu_step(&s, insn, sizeof(insn),
					  &mem_ops_atomic, &mem),
				 EMU_MEM_FAULT);
		assert_unchanged(&sn, &s);
	}
}

static void
test_cmpxchg8b(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rdi = A(0x310);
	s.regs.rax = 0xffffffff00000001ULL;
	s.regs.rdx = 0xffffffff00000002ULL;
	s.regs.rbx = 0x0000000a0000000bULL;
	s.regs.rcx = 0x0000000c0000000dULL;
	mem_put64(0x310, 0x0000000200000001ULL);
	/* cmpxchg8b [rdi]: compares EDX:EAX only, stores ECX:EBX. */
	assert_int_equal(STEP(&s, 0x0f, 0xc7, 0x0f), EMU_OK);
	assert_int_equal(mem_get64(0x310), 0x0000000d0000000bULL);
	assert_true(s.regs.rflags & FL_ZF);
	/* Untouched on success, upper halves included. */
	assert_int_equal(s.regs.rax, 0xffffffff00000001ULL);

	/* Mismatch: EAX/EDX loaded, zero-extended. */
	assert_int_equal(STEP(&s, 0xf0, 0x0f, 0xc7, 0x0f), EMU_OK);
	assert_int_equal(s.regs.rax, 0x0000000bULL);
	assert_int_equal(s.regs.rdx, 0x0000000dULL);
	assert_false(s.regs.rflags & FL_ZF);
	assert_int_equal(s.regs.rip, RIP0 + 7);
}

static void
test_lock_invalid(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	/* lock pxor xmm0, xmm1 */
	EXPECT_FAULT(&s, 6, false, 0xf0, 0x66, 0x0f, 0xef, 0xc1);
	/* lock movdqu xmm0, [rax] */
	s.regs.rax = A(0);
	EXPECT_FAULT(&s, 6, false, 0xf0, 0xf3, 0x0f, 0x6f, 0x00);
	/* lock bswap eax */
	EXPECT_FAULT(&s, 6, false, 0xf0, 0x0f, 0xc8);
}

/* popcnt, lzcnt, tzcnt, bsf, bsr, bswap */

static void
test_popcnt(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rflags = 0x2 | FL_ARITH;
	s.regs.rbx = 0xf0f0f0f0f0f0f0f1ULL;
	/* popcnt rax, rbx */
	assert_int_equal(STEP(&s, 0xf3, 0x48, 0x0f, 0xb8, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 33);
	assert_int_equal(s.regs.rflags, 0x2);

	/* popcnt ecx, [rax]: 32-bit memory, result zero-extended. */
	s.regs.rax = A(0x20);
	s.regs.rcx = ~0ULL;
	mem_put64(0x20, 0xffffffff00000000ULL);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0xb8, 0x08), EMU_OK);
	assert_int_equal(s.regs.rcx, 0);
	assert_int_equal(s.regs.rflags, 0x2 | FL_ZF);

	/* popcnt dx, si: 16-bit, the rest of RDX kept. */
	s.regs.rsi = 0xffff00ffULL;
	s.regs.rdx = 0x1234567890abcdefULL;
	assert_int_equal(STEP(&s, 0x66, 0xf3, 0x0f, 0xb8, 0xd6), EMU_OK);
	assert_int_equal(s.regs.rdx, 0x1234567890ab0008ULL);
	assert_int_equal(s.regs.rflags, 0x2);
}

static void
test_lzcnt_tzcnt(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rbx = 0x0000100000000000ULL;
	assert_int_equal(STEP(&s, 0xf3, 0x48, 0x0f, 0xbd, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 19);
	assert_int_equal(s.regs.rflags & (FL_CF | FL_ZF), 0);

	/* tzcnt r9d, r10d with zero: 32, CF = 1. */
	s.regs.r10 = 0xffffffff00000000ULL;
	s.regs.r9 = ~0ULL;
	assert_int_equal(STEP(&s, 0xf3, 0x45, 0x0f, 0xbc, 0xca), EMU_OK);
	assert_int_equal(s.regs.r9, 32);
	assert_int_equal(s.regs.rflags & (FL_CF | FL_ZF), FL_CF);

	/* lzcnt with the top bit set: 0, ZF = 1. */
	s.regs.rbx = 1ULL << 63;
	assert_int_equal(STEP(&s, 0xf3, 0x48, 0x0f, 0xbd, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 0);
	assert_int_equal(s.regs.rflags & (FL_CF | FL_ZF), FL_ZF);
}

static void
test_bsf_bsr(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rbx = 0x0000000000100100ULL;
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xbc, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 8);
	assert_false(s.regs.rflags & FL_ZF);
	assert_int_equal(STEP(&s, 0x0f, 0xbd, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 20);
	/* Zero source: ZF, destination kept. */
	s.regs.rbx = 0;
	s.regs.rax = 0x5555;
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xbc, 0xc3), EMU_OK);
	assert_int_equal(s.regs.rax, 0x5555);
	assert_true(s.regs.rflags & FL_ZF);
}

static void
test_bswap(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rax = 0xdeadbeef11223344ULL;
	s.regs.rcx = 0x0102030405060708ULL;
	s.regs.r15 = 0x1122334455667788ULL;
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rax, 0x44332211ULL);
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xc9), EMU_OK);
	assert_int_equal(s.regs.rcx, 0x0807060504030201ULL);
	assert_int_equal(STEP(&s, 0x49, 0x0f, 0xcf), EMU_OK);
	assert_int_equal(s.regs.r15, 0x8877665544332211ULL);
	assert_int_equal(s.regs.rip, RIP0 + 8);
	/* 16-bit operand: the low word becomes zero, as on hardware. */
	s.regs.rdx = 0x1111222233334444ULL;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xca), EMU_OK);
	assert_int_equal(s.regs.rdx, 0x1111222233330000ULL);
}

/* SSE moves */

static void
test_movd_movq_gpr(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	s.regs.rcx = 0xaaaaaaaa12345678ULL;
	/* movd xmm15, ecx: the one the Debian kernel stopped at. */
	assert_int_equal(STEP(&s, 0x66, 0x44, 0x0f, 0x6e, 0xf9), EMU_OK);
	assert_int_equal(xmm_lo(&s, 15), 0x12345678ULL);
	assert_int_equal(xmm_hi(&s, 15), 0);
	assert_int_equal(xmm_lo(&s, 7), 0x7776757473727170ULL);
	assert_int_equal(s.regs.rip, RIP0 + 5);
	assert_true(s.fpu_dirty);

	/* movq xmm0, rax */
	s.regs.rax = 0x8877665544332211ULL;
	assert_int_equal(STEP(&s, 0x66, 0x48, 0x0f, 0x6e, 0xc0), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x8877665544332211ULL);
	assert_int_equal(xmm_hi(&s, 0), 0);

	/* movd eax, xmm1: zero-extends into RAX. */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x7e, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rax, 0x13121110ULL);

	/* movq rdx, xmm2 */
	assert_int_equal(STEP(&s, 0x66, 0x48, 0x0f, 0x7e, 0xd2), EMU_OK);
	assert_int_equal(s.regs.rdx, 0x2726252423222120ULL);

	/* movd xmm3, [rbx] */
	s.regs.rbx = A(0x10);
	mem_put64(0x10, 0xcafebabe87654321ULL);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x1b), EMU_OK);
	assert_int_equal(xmm_lo(&s, 3), 0x87654321ULL);
	assert_int_equal(xmm_hi(&s, 3), 0);
	assert_int_equal(mem.last_read_len, 4);

	/* movd [rdi], xmm5 */
	s.regs.rdi = A(0x20);
	mem_put64(0x20, ~0ULL);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x7e, 0x2f), EMU_OK);
	assert_int_equal(mem_get64(0x20), 0xffffffff53525150ULL);

	/* A REX before a legacy prefix is ignored: xmm7, not xmm15. */
	s.regs.rcx = 0x99;
	assert_int_equal(STEP(&s, 0x44, 0x66, 0x0f, 0x6e, 0xf9), EMU_OK);
	assert_int_equal(xmm_lo(&s, 7), 0x99);
}

static void
test_movq_xmm(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	/* movq xmm4, [rsi+8] */
	s.regs.rsi = A(0x30);
	mem_put64(0x38, 0x0123456789abcdefULL);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x7e, 0x66, 0x08), EMU_OK);
	assert_int_equal(xmm_lo(&s, 4), 0x0123456789abcdefULL);
	assert_int_equal(xmm_hi(&s, 4), 0);
	assert_int_equal(mem.last_read_len, 8);

	/* movq xmm10, xmm11 (f3 45 0f 7e d3) */
	assert_int_equal(STEP(&s, 0xf3, 0x45, 0x0f, 0x7e, 0xd3), EMU_OK);
	assert_int_equal(xmm_lo(&s, 10), 0xb7b6b5b4b3b2b1b0ULL);
	assert_int_equal(xmm_hi(&s, 10), 0);

	/* movq [rax], xmm9 (66 44 0f d6 08) */
	s.regs.rax = A(0x40);
	mem_put64(0x48, 0x5a5a5a5a5a5a5a5aULL);
	assert_int_equal(STEP(&s, 0x66, 0x44, 0x0f, 0xd6, 0x08), EMU_OK);
	assert_int_equal(mem_get64(0x40), 0x9796959493929190ULL);
	assert_int_equal(mem_get64(0x48), 0x5a5a5a5a5a5a5a5aULL);

	/* movq xmm1, xmm2 via 66 0f d6 /r: destination high zeroed. */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xd6, 0xd1), EMU_OK);
	assert_int_equal(xmm_lo(&s, 1), 0x2726252423222120ULL);
	assert_int_equal(xmm_hi(&s, 1), 0);
}

static void
test_movdqa_movdqu(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	for (unsigned int i = 0; i < 64; i++)
		mem.bytes[0x100 + i] = (uint8_t)(0xc0 + i);

	/* movdqa xmm8, [rax+rcx*4+0x10] */
	s.regs.rax = A(0x0f0);
	s.regs.rcx = 0x8;		/* 0xf0 + 0x20 + 0x10 = 0x120 */
	assert_int_equal(STEP(&s, 0x66, 0x44, 0x0f, 0x6f, 0x44, 0x88, 0x10),
			 EMU_OK);
	assert_memory_equal(s.fpu.xmm[8], mem.bytes + 0x120, 16);
	assert_int_equal(mem.last_read_len, 16);
	assert_int_equal(mem.reads, 1);

	/* Unaligned movdqa: #GP(0). */
	s.regs.rcx = 0x9;
	EXPECT_FAULT(&s, 13, true, 0x66, 0x44, 0x0f, 0x6f, 0x44, 0x88, 0x10);

	/* movdqu xmm1, [rax] unaligned is fine. */
	s.regs.rax = A(0x101);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x08), EMU_OK);
	assert_memory_equal(s.fpu.xmm[1], mem.bytes + 0x101, 16);

	/* movdqu [r12+r13*8+0x12345], xmm14 */
	s.regs.r12 = A(0x200) - 0x12345 - 0x40;
	s.regs.r13 = 0x8;
	assert_int_equal(STEP(&s, 0xf3, 0x47, 0x0f, 0x7f, 0xb4, 0xec,
			      0x45, 0x23, 0x01, 0x00), EMU_OK);
	assert_memory_equal(mem.bytes + 0x200, s.fpu.xmm[14], 16);

	/* movdqa [rsp+8], xmm2 */
	s.regs.rsp = A(0x2f8);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x7f, 0x54, 0x24, 0x08),
			 EMU_OK);
	assert_memory_equal(mem.bytes + 0x300, s.fpu.xmm[2], 16);
	assert_int_equal(mem.last_write_len, 16);

	/* movdqa xmm9, xmm10 */
	assert_int_equal(STEP(&s, 0x66, 0x45, 0x0f, 0x6f, 0xca), EMU_OK);
	assert_memory_equal(s.fpu.xmm[9], s.fpu.xmm[10], 16);
}

static void
test_movaps_family(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	for (unsigned int i = 0; i < 64; i++)
		mem.bytes[0x100 + i] = (uint8_t)(0xc0 + i);
	s.regs.rax = A(0x100);

	/* movaps xmm0, [rax] */
	assert_int_equal(STEP(&s, 0x0f, 0x28, 0x00), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x100, 16);
	/* movaps [rax], xmm1 */
	assert_int_equal(STEP(&s, 0x0f, 0x29, 0x08), EMU_OK);
	assert_memory_equal(mem.bytes + 0x100, s.fpu.xmm[1], 16);
	/* movups xmm2, [rax+1] */
	assert_int_equal(STEP(&s, 0x0f, 0x10, 0x50, 0x01), EMU_OK);
	assert_memory_equal(s.fpu.xmm[2], mem.bytes + 0x101, 16);
	/* movapd xmm3, xmm4 */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x28, 0xdc), EMU_OK);
	assert_memory_equal(s.fpu.xmm[3], s.fpu.xmm[4], 16);
	/* movupd [rax], xmm5 */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x11, 0x28), EMU_OK);
	assert_memory_equal(mem.bytes + 0x100, s.fpu.xmm[5], 16);
	/* movaps [rax+1] misaligned: #GP. */
	EXPECT_FAULT(&s, 13, true, 0x0f, 0x29, 0x48, 0x01);
	/* movntdq [rax], xmm4; movntps [rax], xmm0 */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xe7, 0x20), EMU_OK);
	assert_memory_equal(mem.bytes + 0x100, s.fpu.xmm[4], 16);
	assert_int_equal(STEP(&s, 0x0f, 0x2b, 0x00), EMU_OK);
	assert_memory_equal(mem.bytes + 0x100, s.fpu.xmm[0], 16);
	/* movntdq needs memory and alignment. */
	EXPECT_UNHANDLED(&s, 0x66, 0x0f, 0xe7, 0xc4);
	EXPECT_FAULT(&s, 13, true, 0x66, 0x0f, 0xe7, 0x60, 0x04);
	/* lddqu xmm0, [rax+3] */
	assert_int_equal(STEP(&s, 0xf2, 0x0f, 0xf0, 0x40, 0x03), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x103, 16);
}

static void
test_movss_movsd(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	s.regs.rax = A(0x100);
	mem_put64(0x100, 0x1122334455667788ULL);
	mem_put64(0x108, 0x99aabbccddeeff00ULL);

	/* movss xmm0, [rax]: the rest zeroed. */
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x10, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x55667788ULL);
	assert_int_equal(xmm_hi(&s, 0), 0);
	assert_int_equal(mem.last_read_len, 4);
	/* movss xmm0, xmm1: only the low dword. */
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x10, 0xc1), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x13121110ULL);
	/* movss [rax], xmm2 */
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x11, 0x10), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0x1122334423222120ULL);
	/* movsd xmm3, [rax] */
	assert_int_equal(STEP(&s, 0xf2, 0x0f, 0x10, 0x18), EMU_OK);
	assert_int_equal(xmm_lo(&s, 3), 0x1122334423222120ULL);
	assert_int_equal(xmm_hi(&s, 3), 0);
	/* movsd xmm3, xmm4: high quadword of xmm3 kept (zero here). */
	xmm_put(&s, 3, 0, 0xabcdef);
	assert_int_equal(STEP(&s, 0xf2, 0x0f, 0x10, 0xdc), EMU_OK);
	assert_int_equal(xmm_lo(&s, 3), 0x4746454443424140ULL);
	assert_int_equal(xmm_hi(&s, 3), 0xabcdef);
	/* movsd [rax], xmm5 */
	assert_int_equal(STEP(&s, 0xf2, 0x0f, 0x11, 0x28), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0x5756555453525150ULL);
	assert_int_equal(mem_get64(0x108), 0x99aabbccddeeff00ULL);
}

static void
test_movlps_movhps(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);
	s.regs.rax = A(0x100);
	mem_put64(0x100, 0x1122334455667788ULL);

	/* movlps xmm0, [rax]: high kept. */
	assert_int_equal(STEP(&s, 0x0f, 0x12, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x1122334455667788ULL);
	assert_int_equal(xmm_hi(&s, 0), 0x0f0e0d0c0b0a0908ULL);
	/* movhps xmm0, [rax] */
	assert_int_equal(STEP(&s, 0x0f, 0x16, 0x00), EMU_OK);
	assert_int_equal(xmm_hi(&s, 0), 0x1122334455667788ULL);
	/* movhlps xmm0, xmm1: low of xmm0 = high of xmm1. */
	assert_int_equal(STEP(&s, 0x0f, 0x12, 0xc1), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x1f1e1d1c1b1a1918ULL);
	assert_int_equal(xmm_hi(&s, 0), 0x1122334455667788ULL);
	/* movlhps xmm0, xmm1: high of xmm0 = low of xmm1. */
	assert_int_equal(STEP(&s, 0x0f, 0x16, 0xc1), EMU_OK);
	assert_int_equal(xmm_hi(&s, 0), 0x1716151413121110ULL);
	/* movlps [rax], xmm1 and movhps [rax+8], xmm1 */
	assert_int_equal(STEP(&s, 0x0f, 0x13, 0x08), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0x1716151413121110ULL);
	assert_int_equal(STEP(&s, 0x0f, 0x17, 0x48, 0x08), EMU_OK);
	assert_int_equal(mem_get64(0x108), 0x1f1e1d1c1b1a1918ULL);
	/* movlpd xmm2, [rax]; movhpd [rax], xmm3 */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x12, 0x10), EMU_OK);
	assert_int_equal(xmm_lo(&s, 2), 0x1716151413121110ULL);
	assert_int_equal(xmm_hi(&s, 2), 0x2f2e2d2c2b2a2928ULL);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x17, 0x18), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0x3f3e3d3c3b3a3938ULL);
	/* movlpd has no register form. */
	EXPECT_UNHANDLED(&s, 0x66, 0x0f, 0x12, 0xc1);
}

static void
test_movnti(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rax = A(0x100);
	s.regs.rcx = 0x1122334455667788ULL;
	mem_put64(0x100, ~0ULL);
	assert_int_equal(STEP(&s, 0x0f, 0xc3, 0x08), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0xffffffff55667788ULL);
	assert_int_equal(STEP(&s, 0x48, 0x0f, 0xc3, 0x08), EMU_OK);
	assert_int_equal(mem_get64(0x100), 0x1122334455667788ULL);
	/* Works with CR4.OSFXSR clear: it is a GPR instruction. */
	s.sregs.cr4 = 0x20;
	assert_int_equal(STEP(&s, 0x0f, 0xc3, 0x08), EMU_OK);
}

static void
test_pmovmskb_pextrw_pinsrw(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	xmm_put(&s, 1, 0x8000ff7f01808000ULL, 0x00000000000080ffULL);
	s.regs.rax = ~0ULL;
	/* pmovmskb eax, xmm1 */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xd7, 0xc1), EMU_OK);
	assert_int_equal(s.regs.rax, 0x03a6);
	/* pmovmskb r9d, xmm10 */
	xmm_put(&s, 10, ~0ULL, ~0ULL);
	assert_int_equal(STEP(&s, 0x66, 0x45, 0x0f, 0xd7, 0xca), EMU_OK);
	assert_int_equal(s.regs.r9, 0xffff);
	/* movmskps eax, xmm1; movmskpd eax, xmm1 */
	assert_int_equal(STEP(&s, 0x0f, 0x50, 0xc1), EMU_OK);
	assert_int_equal(s.regs.rax, 0x2);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x50, 0xc1), EMU_OK);
	assert_int_equal(s.regs.rax, 0x1);

	/* pextrw ecx, xmm2, 3 */
	xmm_put(&s, 2, 0xbeef000000000000ULL, 0);
	s.regs.rcx = ~0ULL;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xc5, 0xca, 0x03), EMU_OK);
	assert_int_equal(s.regs.rcx, 0xbeef);
	/* pinsrw xmm3, edx, 5 */
	xmm_put(&s, 3, 0, 0);
	s.regs.rdx = 0x12345678;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xc4, 0xda, 0x05), EMU_OK);
	assert_int_equal(xmm_hi(&s, 3), 0x0000000056780000ULL);
	/* pinsrw xmm3, [rax], 7 (m16) */
	s.regs.rax = A(0x101);
	mem.bytes[0x101] = 0xcd;
	mem.bytes[0x102] = 0xab;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xc4, 0x18, 0x07), EMU_OK);
	assert_int_equal(xmm_hi(&s, 3), 0xabcd000056780000ULL);
	assert_int_equal(mem.last_read_len, 2);
}

/* Addressing */

static void
test_rip_relative(void **state)
{
	struct emu_vcpu s;
	uint64_t rip = A(0x1000);

	(void)state;
	vcpu_long(&s);
	s.regs.rip = rip;
	for (unsigned int i = 0; i < 32; i++)
		mem.bytes[0x1020 + i] = (uint8_t)(0x40 + i);
	/* Next instruction at rip + 8, so disp 0x18 lands on 0x1020. */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6f, 0x05, 0x18, 0x00, 0x00,
			      0x00), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x1020, 16);
	assert_int_equal(s.regs.rip, rip + 8);

	/*
	 * pshufd xmm1, [rip+disp], 0x1b: the immediate comes after the
	 * displacement and counts towards the next RIP (rip + 9 here).
	 */
	s.regs.rip = rip;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x70, 0x0d, 0x17, 0x00, 0x00,
			      0x00, 0x1b), EMU_OK);
	assert_int_equal(xmm_lo(&s, 1), 0x4b4a49484f4e4d4cULL);
	assert_int_equal(xmm_hi(&s, 1), 0x4342414047464544ULL);

	/* Negative displacement. */
	s.regs.rip = A(0x1100);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x15, 0xd8, 0xff, 0xff,
			      0xff), EMU_OK);	/* 0x1108 - 0x28 = 0x10e0 */
	assert_memory_equal(s.fpu.xmm[2], mem.bytes + 0x10e0, 16);
}

static void
test_sib_and_segments(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	for (unsigned int i = 0; i < 0x400; i += 4)
		memcpy(mem.bytes + i, &i, 4);

	/* movd xmm0, [rcx*2+disp32]: SIB without base. */
	s.regs.rcx = (A(0x80) - 0x100) / 2;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x04, 0x4d, 0x00, 0x01,
			      0x00, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x80);

	/* movd xmm0, [rbp-8] */
	s.regs.rbp = A(0x98);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x45, 0xf8), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x90);

	/* movd xmm0, fs:[0x10]: absolute disp32 through SIB, plus fs.base. */
	s.sregs.fs.base = A(0x100);
	assert_int_equal(STEP(&s, 0x64, 0x66, 0x0f, 0x6e, 0x04, 0x25, 0x10,
			      0x00, 0x00, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x110);

	/* movd xmm0, gs:[rax] */
	s.sregs.gs.base = A(0x200);
	s.regs.rax = 0x24;
	assert_int_equal(STEP(&s, 0x65, 0x66, 0x0f, 0x6e, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x224);

	/* ds/es/cs/ss overrides have no base in 64-bit mode. */
	s.sregs.ds.base = 0x1000;
	s.sregs.es.base = 0x1000;
	s.regs.rax = A(0x30);
	assert_int_equal(STEP(&s, 0x26, 0x66, 0x0f, 0x6e, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x30);

	/* movd xmm0, [eax]: 32-bit address size truncates. */
	mem.gva = 0x10000;
	memcpy(mem.bytes + 0x40, &(uint32_t){ 0x4040 }, 4);
	s.regs.rax = 0xffffffff00010040ULL;
	assert_int_equal(STEP(&s, 0x67, 0x66, 0x0f, 0x6e, 0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x4040);

	/* r13 as base needs mod 1 (0x45 + REX.B): [r13+0]. */
	s.regs.r13 = 0x10044;
	memcpy(mem.bytes + 0x44, &(uint32_t){ 0x4444 }, 4);
	assert_int_equal(STEP(&s, 0x66, 0x41, 0x0f, 0x6e, 0x45, 0x00),
			 EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x4444);

	/* r12 as index (REX.X, index field 100): [rax+r12*1]. */
	s.regs.rax = 0x10000;
	s.regs.r12 = 0x48;
	memcpy(mem.bytes + 0x48, &(uint32_t){ 0x4848 }, 4);
	assert_int_equal(STEP(&s, 0x66, 0x42, 0x0f, 0x6e, 0x04, 0x20),
			 EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x4848);
	/* Without REX.X index 100 means none: [rax]. */
	memcpy(mem.bytes + 0x00, &(uint32_t){ 0x1234 }, 4);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x04, 0x20), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x1234);
}

static void
test_canonical(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.regs.rax = 0x0000800000000000ULL;
	EXPECT_FAULT(&s, 13, true, 0xf3, 0x0f, 0x6f, 0x00);
	/* Through RSP the fault is #SS(0). */
	s.regs.rsp = 0x0000800000000000ULL;
	EXPECT_FAULT(&s, 12, true, 0xf3, 0x0f, 0x6f, 0x04, 0x24);
	/* With LA57 the same address is canonical (and simply not mapped). */
	s.sregs.cr4 |= 1ULL << 12;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x00), EMU_MEM_FAULT);
	assert_int_equal(s.fault_gva, 0x0000800000000000ULL);
}

/* Checks before execution */

static void
test_sse_availability(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	s.sregs.cr0 |= 1ULL << 3;		/* TS */
	EXPECT_FAULT(&s, 7, false, 0x66, 0x0f, 0xef, 0xc1);
	vcpu_long(&s);
	s.sregs.cr4 &= ~(1ULL << 9);		/* OSFXSR */
	EXPECT_FAULT(&s, 6, false, 0x66, 0x0f, 0xef, 0xc1);
	vcpu_long(&s);
	s.sregs.cr0 |= 1ULL << 2;		/* EM */
	EXPECT_FAULT(&s, 6, false, 0x66, 0x0f, 0x38, 0x00, 0xc1);
}

static void
test_nops(void **state)
{
	struct emu_vcpu s;
	struct snap sn;

	(void)state;
	vcpu_long(&s);
	/* prefetchnta [rax] at an unmapped address: never faults. */
	s.regs.rax = 0x1234;
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0x0f, 0x18, 0x00), EMU_OK);
	assert_int_equal(STEP(&s, 0x0f, 0x0d, 0x08), EMU_OK);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0xf8), EMU_OK);	/* sfence */
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0xe8), EMU_OK);	/* lfence */
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0xf0), EMU_OK);	/* mfence */
	assert_int_equal(STEP(&s, 0x0f, 0x1f, 0x04, 0x00), EMU_OK);
	assert_int_equal(s.regs.rip, RIP0 + 3 + 3 + 3 + 3 + 3 + 4);
	assert_int_equal(mem.reads, 0);
	assert_int_equal(mem.writes, 0);
	s.regs.rip = RIP0;
	sn.s.regs_dirty = true;
	assert_unchanged(&sn, &s);
}

/* Faults and decoding limits */

static void
test_mem_fault_nothing_changed(void **state)
{
	struct emu_vcpu s;
	struct snap sn;

	(void)state;
	vcpu_long(&s);
	xmm_pattern(&s);

	/* A load from outside memory. */
	s.regs.rax = A(MEM_SIZE - 8);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x00), EMU_MEM_FAULT);
	assert_unchanged(&sn, &s);
	assert_int_equal(s.fault_gva, A(MEM_SIZE - 8));
	assert_false(s.fault_write);
	assert_int_equal(s.exception, -1);

	/* A store that fails: no register (RIP) change either. */
	mem.ro_gva = A(0x100);
	mem.ro_len = 1;
	s.regs.rax = A(0xf8);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x7f, 0x00), EMU_MEM_FAULT);
	assert_unchanged(&sn, &s);
	assert_int_equal(s.fault_gva, A(0xf8));
	assert_true(s.fault_write);

	/* fxsave into a read-only area: nothing written, nothing dirty. */
	s.regs.rax = A(0x100);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x00), EMU_MEM_FAULT);
	assert_unchanged(&sn, &s);

	/* fxrstor from beyond memory: FPU unchanged. */
	s.regs.rax = A(MEM_SIZE - 256);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x08), EMU_MEM_FAULT);
	assert_unchanged(&sn, &s);

	/* No ops at all: a memory operand faults, nothing else changes. */
	s.regs.rax = A(0);
	snap_take(&sn, &s);
	assert_int_equal(emu_step(&s, B(0xf3, 0x0f, 0x6f, 0x00), 4, NULL,
				  NULL), EMU_MEM_FAULT);
	assert_unchanged(&sn, &s);
}

static void
test_truncated(void **state)
{
	static const uint8_t insns[][10] = {
		{ 0x66, 0x44, 0x0f, 0x6e, 0xf9 },
		{ 0x66, 0x0f, 0x70, 0x0d, 0x17, 0x00, 0x00, 0x00, 0x1b },
		{ 0xf0, 0x48, 0x0f, 0xc7, 0x0e },
		{ 0x66, 0x0f, 0x3a, 0x0f, 0xc1, 0x05 },
		{ 0x66, 0x0f, 0x6e, 0x04, 0x4d, 0x00, 0x01, 0x00, 0x00 },
	};
	static const size_t lens[] = { 5, 9, 5, 6, 9 };
	struct emu_vcpu s;

	(void)state;
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		vcpu_long(&s);
		s.regs.rsi = A(0x100);
		s.regs.rcx = (A(0x80) - 0x100) / 2;
		s.regs.rip = A(0x200);
		for (size_t n = 0; n < lens[k]; n++)
			expect_unhandled(&s, insns[k], n);
		assert_int_equal(emu_step(&s, insns[k], lens[k], &mem_ops,
					  &mem), EMU_OK);
		assert_int_equal(s.regs.rip, A(0x200) + lens[k]);
	}
}

static void
test_unknown(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	EXPECT_UNHANDLED(&s, 0x0f, 0x05);			/* syscall */
	EXPECT_UNHANDLED(&s, 0x90);				/* nop */
	EXPECT_UNHANDLED(&s, 0xc5, 0xf9, 0xef, 0xc1);		/* vpxor */
	EXPECT_UNHANDLED(&s, 0x66, 0x0f, 0x38, 0x01, 0xc1);	/* phaddw */
	EXPECT_UNHANDLED(&s, 0x0f, 0xef, 0xc1);		/* pxor mm */
	EXPECT_UNHANDLED(&s, 0x0f, 0x6f, 0xc1);		/* movq mm */
	EXPECT_UNHANDLED(&s, 0xf2, 0x0f, 0x6f, 0xc1);
	EXPECT_UNHANDLED(&s, 0x0f, 0xb8, 0xc1);		/* no f3 */
	EXPECT_UNHANDLED(&s, 0x0f, 0x0f, 0xc1, 0x9e);		/* 3DNow! */
	expect_unhandled(&s, B(0x00), 0);			/* empty */
	assert_int_equal(emu_step(&s, NULL, 4, &mem_ops, &mem),
			 EMU_UNHANDLED);
	assert_int_equal(emu_step(NULL, B(0xcc), 1, &mem_ops, &mem),
			 EMU_UNHANDLED);
}

static void
test_too_long(void **state)
{
	struct emu_vcpu s;
	uint8_t insn[15];

	(void)state;
	/* 11 prefixes + pxor xmm0, xmm1 = 15 bytes: fine. */
	vcpu_long(&s);
	memset(insn, 0x66, sizeof(insn));
	insn[11] = 0x0f;
	insn[12] = 0xef;
	insn[13] = 0xc1;
	assert_int_equal(emu_step(&s, insn, 14, &mem_ops, &mem), EMU_OK);
	assert_int_equal(s.regs.rip, RIP0 + 14);
	/* 15 prefixes and the opcode still to come: #GP(0). */
	vcpu_long(&s);
	memset(insn, 0x66, sizeof(insn));
	expect_fault(&s, insn, sizeof(insn), 13, true);
}

/* Modes other than 64-bit */

static void
vcpu_prot32(struct emu_vcpu *s)
{
	memset(s, 0, sizeof(*s));
	s->sregs.cr0 = 0x11;		/* PE ET */
	s->sregs.cr4 = 0x200;		/* OSFXSR */
	s->sregs.cs.db = 1;
	s->sregs.cs.present = 1;
	s->sregs.cs.selector = 0x08;
	s->regs.rip = 0x00100000;
	s->regs.rflags = 0x2;
	s->fpu.mxcsr = 0x1f80;
}

static void
test_mode32(void **state)
{
	struct emu_vcpu s;

	(void)state;
	mem.gva = 0x00200000;
	vcpu_prot32(&s);
	/* bswap eax; 0x48 is dec eax here, not REX. */
	s.regs.rax = 0x11223344;
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rax, 0x44332211);
	assert_int_equal(s.regs.rip, 0x00100002);
	EXPECT_UNHANDLED(&s, 0x48, 0x0f, 0xc8);

	/* movd xmm0, [disp32] is absolute, with DS's base added. */
	s.sregs.ds.base = 0x00100000;
	memcpy(mem.bytes + 0x10, &(uint32_t){ 0xfeedface }, 4);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x05, 0x10, 0x00, 0x10,
			      0x00), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0xfeedface);

	/* [ebp+disp8] goes through SS. */
	s.sregs.ss.base = 0x00200000;
	s.regs.rbp = 0x8;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x45, 0x08), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0xfeedface);

	/* The linear address wraps at 4 GiB. */
	s.sregs.ds.base = 0xfff00000;
	s.regs.rbx = 0x00300020;
	memcpy(mem.bytes + 0x20, &(uint32_t){ 0x2020 }, 4);
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0x6e, 0x03), EMU_OK);
	assert_int_equal(xmm_lo(&s, 0), 0x2020);

	/* EIP wraps at 4 GiB too. */
	s.regs.rip = 0xffffffff;
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rip, 1);

	/* int3 in 32-bit code. */
	assert_int_equal(STEP(&s, 0xcc), EMU_EXCEPTION);
	assert_int_equal(s.exception, 3);
	assert_int_equal(s.regs.rip, 2);

	/* fxsave saves XMM0-7 only outside 64-bit mode. */
	memset(mem.bytes, 0xee, 0x300);
	xmm_pattern(&s);
	s.sregs.ds.base = 0;
	s.regs.rax = 0x00200000;
	assert_int_equal(STEP(&s, 0x0f, 0xae, 0x00), EMU_OK);
	assert_memory_equal(mem.bytes + 160, s.fpu.xmm, 128);
	assert_int_equal(mem.bytes[288], 0xee);
	assert_int_equal(mem.last_write_len, 288);
}

/* iret in protected mode */

#define FL_TF	(1ULL << 8)
#define FL_IF	(1ULL << 9)
#define FL_DF	(1ULL << 10)
#define FL_IOPL	(3ULL << 12)
#define FL_NT	(1ULL << 14)
#define FL_RF	(1ULL << 16)
#define FL_VM	(1ULL << 17)
#define FL_VIF	(1ULL << 19)
#define FL_VIP	(1ULL << 20)
#define FL_ID	(1ULL << 21)
#define IRET_GDT	0x500		/* offset of the GDT in mem */
#define IRET_FLAT32	0x00cf9b000000ffffULL	/* flat 32-bit code */

/*
 * 32-bit protected mode at CPL (the RPL of CS 0x08|cpl), flat code and
 * stack, ESP at A(sp_off), the GDT at A(IRET_GDT) with the flat code
 * segment as entry 1 (what iPXE runs in, bar its segment bases).
 */
static void
vcpu_iret32(struct emu_vcpu *s, unsigned int cpl, uint64_t sp_off)
{
	vcpu_prot32(s);
	mem_put64(IRET_GDT, 0);
	mem_put64(IRET_GDT + 8, IRET_FLAT32);
	s->sregs.gdt.base = A(IRET_GDT);
	s->sregs.gdt.limit = 0x0f;
	s->sregs.cs.selector = (uint16_t)(0x08 | cpl);
	s->sregs.cs.limit = 0xffffffff;
	s->sregs.cs.s = 1;
	s->sregs.cs.type = 11;
	s->sregs.cs.g = 1;
	s->sregs.ss.db = 1;
	s->sregs.ss.limit = 0xffffffff;
	s->regs.rsp = A(sp_off);
}

/* Put an iret frame of os-byte slots at mem offset off. */
static void
iret_frame(uint64_t off, unsigned int os, uint32_t ip, uint16_t cs,
	   uint32_t fl)
{
	memcpy(mem.bytes + off, &ip, os);
	memcpy(mem.bytes + off + os, &(uint32_t){ cs }, os);
	memcpy(mem.bytes + off + 2 * os, &fl, os);
}

static void
test_iret_prot32(void **state)
{
	struct emu_vcpu s;
	uint64_t all;

	(void)state;
	mem.gva = 0x00200000;

	/* At CPL 0 every flag in the frame is taken, RF included (not
	 * cleared as after other instructions); EIP, ESP follow. */
	vcpu_iret32(&s, 0, 0x100);
	all = 0x2 | FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_DF | FL_OF |
	      FL_IF | FL_IOPL | FL_AC | FL_ID | FL_VIF | FL_VIP | FL_RF;
	iret_frame(0x100, 4, 0x00012d9a, 0x08, (uint32_t)all);
	s.regs.rip = 0x4edc;
	s.regs.rax = 0x1234;
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0x00012d9a);
	assert_int_equal(s.regs.rsp, A(0x10c));
	assert_int_equal(s.regs.rflags, all);
	assert_int_equal(s.regs.rax, 0x1234);
	assert_true(s.regs_dirty);
	assert_int_equal(s.exception, -1);
	assert_int_equal(mem.writes, 0);

	/* And back: a frame of zeros clears them all but bit 1. */
	iret_frame(0x10c, 4, 0x00001000, 0x08, 0);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x2);
	assert_int_equal(s.regs.rip, 0x1000);
	assert_int_equal(s.regs.rsp, A(0x118));

	/* What iPXE's interrupt wrapper returns with: IF back on. */
	vcpu_iret32(&s, 0, 0x200);
	iret_frame(0x200, 4, 0x00012d9a, 0x08, 0x246);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x246);

	/* 66 cf: IP, CS, FLAGS of 16 bits; EIP's top half cleared, the
	 * top half of EFLAGS (AC, ID) kept. */
	vcpu_iret32(&s, 0, 0x100);
	s.regs.rflags = 0x2 | FL_AC | FL_ID | FL_CF;
	iret_frame(0x100, 2, 0xbeef, 0x08, 0x2 | FL_ZF | FL_IF | FL_NT);
	assert_int_equal(STEP(&s, 0x66, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0xbeef);
	assert_int_equal(s.regs.rsp, A(0x106));
	assert_int_equal(s.regs.rflags, 0x2 | FL_AC | FL_ID | FL_ZF | FL_IF |
			 FL_NT);

	/* CPL 3, IOPL 0: IF, IOPL, VIF, VIP stay; AC, ID, arithmetic go. */
	vcpu_iret32(&s, 3, 0x100);
	s.regs.rflags = 0x2 | FL_IF;
	iret_frame(0x100, 4, 0x2000, 0x0b, (uint32_t)(0x2 | FL_IOPL | FL_VIF |
		   FL_VIP | FL_AC | FL_ID | FL_CF | FL_OF));
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x2 | FL_IF | FL_AC | FL_ID | FL_CF |
			 FL_OF);
	/* CPL 1 with IOPL 1: IF is taken, IOPL still is not. */
	vcpu_iret32(&s, 1, 0x100);
	s.regs.rflags = 0x2 | (1ULL << 12) | FL_IF;
	iret_frame(0x100, 4, 0x2000, 0x09, 0x2 | FL_IOPL);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rflags, 0x2 | (1ULL << 12));

	/* A 16-bit stack: the frame at SS.base + SP, ESP's top half kept. */
	vcpu_iret32(&s, 0, 0);
	s.sregs.ss.db = 0;
	s.sregs.ss.base = A(0x300);
	s.regs.rsp = 0xdead0010;
	iret_frame(0x310, 4, 0x3000, 0x08, 0x202);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0x3000);
	assert_int_equal(s.regs.rsp, 0xdead001c);
	assert_int_equal(s.regs.rflags, 0x202);

	/* A code segment with a base (iPXE's virtual one) and a limit:
	 * EIP is an offset, checked against the limit. */
	vcpu_iret32(&s, 0, 0x100);
	/* Base 0x7f5d000, limit 0xfffff bytes. */
	mem_put64(IRET_GDT + 8, 0x074f9bf5d000ffffULL);
	s.sregs.cs.base = 0x7f5d000;
	s.sregs.cs.limit = 0xfffff;
	s.sregs.cs.g = 0;
	iret_frame(0x100, 4, 0xfffff, 0x08, 0x2);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0xfffff);
	s.regs.rsp = A(0x100);
	iret_frame(0x100, 4, 0x100000, 0x08, 0x2);
	EXPECT_FAULT(&s, 13, true, 0xcf);
	assert_int_equal(s.error_code, 0);
}

/*
 * Outside 64-bit mode the GDT entry's linear address wraps at 4 GiB like
 * any other: a GDT at 0xfffffff8 has entry 1 at linear 0 (found by
 * tests/fuzz/fuzz_emulate.c: the emulator read 0x100000000).
 */
static void
test_gdt_wraps_at_4g(void **state)
{
	struct emu_vcpu s;

	(void)state;
	mem.gva = 0;
	vcpu_iret32(&s, 0, 0x100);
	mem_put64(0, IRET_FLAT32);
	s.sregs.gdt.base = 0xfffffff8;
	s.sregs.gdt.limit = 0x0f;
	iret_frame(0x100, 4, 0x1234, 0x08, 0x202);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0x1234);
	assert_int_equal(s.regs.rsp, A(0x10c));

	/* verw ax with 0x10 at GDT base 0xfffffff0: a writable data
	 * segment at linear 0. */
	vcpu_prot32(&s);
	mem_put64(0, 0x00cf93000000ffffULL);
	s.sregs.gdt.base = 0xfffffff0;
	s.sregs.gdt.limit = 0x17;
	s.regs.rax = 0x10;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe8), EMU_OK);
	assert_true(s.regs.rflags & FL_ZF);

	/* In compatibility mode GDTR.base keeps its 64 bits. */
	mem.gva = GVA64;
	vcpu_long(&s);
	s.sregs.cs.l = 0;
	s.sregs.cs.db = 1;
	s.regs.rip = 0x1000;
	mem_put64(0x510, 0x00cf93000000ffffULL);
	s.sregs.gdt.base = A(0x500);
	s.sregs.gdt.limit = 0x17;
	s.regs.rax = 0x10;
	assert_int_equal(STEP(&s, 0x0f, 0x00, 0xe8), EMU_OK);
	assert_true(s.regs.rflags & FL_ZF);
}

/* What iret leaves alone, and where it faults. */
static void
test_iret_refused(void **state)
{
	struct emu_vcpu s;
	struct snap sn;

	(void)state;
	mem.gva = 0x00200000;

	/* Another code segment: loading CS is beyond the caller. */
	vcpu_iret32(&s, 0, 0x100);
	mem_put64(IRET_GDT + 16, IRET_FLAT32);
	s.sregs.gdt.limit = 0x17;
	iret_frame(0x100, 4, 0x1000, 0x10, 0x2);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* Another privilege level (and SS:ESP with it). */
	iret_frame(0x100, 4, 0x1000, 0x0b, 0x2);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* The same selector, but its descriptor changed since CS was
	 * loaded (another base): reloading it would change CS. */
	iret_frame(0x100, 4, 0x1000, 0x08, 0x2);
	mem_put64(IRET_GDT + 8, 0x00cf9b010000ffffULL);
	EXPECT_UNHANDLED(&s, 0xcf);
	mem_put64(IRET_GDT + 8, 0x008f9b000000ffffULL);	/* 16-bit now */
	EXPECT_UNHANDLED(&s, 0xcf);
	mem_put64(IRET_GDT + 8, 0x00409b000000ffffULL);	/* 64 KiB */
	EXPECT_UNHANDLED(&s, 0xcf);
	mem_put64(IRET_GDT + 8, 0x00cf1b000000ffffULL);	/* not present */
	EXPECT_UNHANDLED(&s, 0xcf);
	mem_put64(IRET_GDT + 8, 0x00cf93000000ffffULL);	/* data */
	EXPECT_UNHANDLED(&s, 0xcf);
	mem_put64(IRET_GDT + 8, IRET_FLAT32);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);

	/* Nested task (NT): a task switch. */
	vcpu_iret32(&s, 0, 0x100);
	s.regs.rflags = 0x2 | FL_NT;
	iret_frame(0x100, 4, 0x1000, 0x08, 0x2);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* Back to virtual-8086 mode (VM in the frame, at CPL 0). */
	s.regs.rflags = 0x2;
	iret_frame(0x100, 4, 0x1000, 0x08, 0x2 | FL_VM);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* An LDT selector. */
	s.sregs.cs.selector = 0x0c;
	iret_frame(0x100, 4, 0x1000, 0x0c, 0x2);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* A frame across the top of a 16-bit stack. */
	vcpu_iret32(&s, 0, 0);
	s.sregs.ss.db = 0;
	s.regs.rsp = 0xfffa;
	EXPECT_UNHANDLED(&s, 0xcf);
	/* Real mode is KVM's own; 64-bit iretq is not emulated here. */
	vcpu_iret32(&s, 0, 0x100);
	iret_frame(0x100, 4, 0x1000, 0x08, 0x2);
	s.sregs.cr0 = 0x10;
	EXPECT_UNHANDLED(&s, 0xcf);
	vcpu_long(&s);
	s.regs.rsp = A(0x100);
	EXPECT_UNHANDLED(&s, 0x48, 0xcf);
	EXPECT_UNHANDLED(&s, 0xcf);

	/* A selector beyond the GDT: #GP(selector). */
	vcpu_iret32(&s, 0, 0x100);
	s.sregs.gdt.limit = 0x07;
	iret_frame(0x100, 4, 0x1000, 0x08, 0x2);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0xcf), EMU_EXCEPTION);
	assert_exception(&s, 13, true, 0x08);
	assert_unchanged(&sn, &s);
	/* A null CS: #GP(0). */
	vcpu_iret32(&s, 0, 0x100);
	s.sregs.cs.selector = 0;
	iret_frame(0x100, 4, 0x1000, 0, 0x2);
	EXPECT_FAULT(&s, 13, true, 0xcf);

	/* A stack out of reach: a memory fault on it, nothing changed. */
	vcpu_iret32(&s, 0, 0x100);
	s.regs.rsp = A(MEM_SIZE - 8);
	snap_take(&sn, &s);
	assert_int_equal(STEP(&s, 0xcf), EMU_MEM_FAULT);
	assert_int_equal(s.fault_gva, A(MEM_SIZE - 8));
	assert_false(s.fault_write);
	assert_int_equal(s.exception, -1);
	sn.s.fault_gva = s.fault_gva;
	assert_unchanged(&sn, &s);
}

/*
 * PVM pushes an interrupt frame at linear ESP, without SS's base (iPXE:
 * SS and CS based at 0x7f5d000, ESP 0xa2038; the frame was found at
 * 0xa2038, stale stack at 0x7f5d000 + 0xa2038). iret takes the frame
 * at ESP when the one at SS.base + ESP cannot be the right one.
 */
static void
test_iret_pvm_frame_quirk(void **state)
{
	struct emu_vcpu s;

	(void)state;
	mem.gva = 0x00200000;
	vcpu_iret32(&s, 0, 0x100);
	s.sregs.ss.base = 0x800;
	/* SS.base + ESP: stale stack (two return addresses around 0x800,
	 * as in iPXE); ESP: the frame PVM pushed. */
	iret_frame(0x900, 4, 0x000138ef, 0x0800, 0x0001396e);
	iret_frame(0x100, 4, 0x00012d9a, 0x08, 0x246);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0x00012d9a);
	assert_int_equal(s.regs.rflags, 0x246);
	assert_int_equal(s.regs.rsp, A(0x10c));

	/* Where SS.base + ESP holds a frame for this CS, it wins. */
	vcpu_iret32(&s, 0, 0x100);
	s.sregs.ss.base = 0x800;
	iret_frame(0x900, 4, 0x5000, 0x08, 0x202);
	iret_frame(0x100, 4, 0x6000, 0x08, 0x246);
	assert_int_equal(STEP(&s, 0xcf), EMU_OK);
	assert_int_equal(s.regs.rip, 0x5000);
	assert_int_equal(s.regs.rflags, 0x202);

	/* The frame at ESP must look pushed by a CPU: bit 1 of the flags
	 * set, bits 3, 5, 15 and 22-31 clear; or it is not taken. */
	vcpu_iret32(&s, 0, 0x100);
	s.sregs.ss.base = 0x800;
	iret_frame(0x900, 4, 0x000138ef, 0x0800, 0x0001396e);
	iret_frame(0x100, 4, 0x00012d9a, 0x08, 0x244);
	EXPECT_UNHANDLED(&s, 0xcf);
	iret_frame(0x100, 4, 0x00012d9a, 0x08, 0x80000246);
	EXPECT_UNHANDLED(&s, 0xcf);
	iret_frame(0x100, 4, 0x00012d9a, 0x08, 0x266);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* Nor when it is for another CS. */
	iret_frame(0x100, 4, 0x00012d9a, 0x10, 0x246);
	EXPECT_UNHANDLED(&s, 0xcf);
	/* With a flat SS both are one: no second guess. */
	vcpu_iret32(&s, 0, 0x100);
	iret_frame(0x100, 4, 0x000138ef, 0x0800, 0x0001396e);
	EXPECT_UNHANDLED(&s, 0xcf);
}

static void
test_mode16(void **state)
{
	struct emu_vcpu s;

	(void)state;
	mem.gva = 0x20000;
	memset(&s, 0, sizeof(s));
	s.sregs.cr0 = 0x10;		/* real mode */
	s.sregs.cr4 = 0x200;
	s.sregs.cs.base = 0xf0000;
	s.sregs.ds.base = 0x20000;
	s.regs.rip = 0x100;
	s.regs.rflags = 0x2;

	/* bswap with a 16-bit operand clears the low word. */
	s.regs.rax = 0x11223344;
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rax, 0x11220000);
	/* With 66, bswap eax (what iPXE uses). */
	s.regs.rax = 0x11223344;
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rax, 0x44332211);
	assert_int_equal(s.regs.rip, 0x105);

	/* movdqu xmm0, [bx+si+0x10] */
	for (unsigned int i = 0; i < 0x200; i++)
		mem.bytes[i] = (uint8_t)i;
	s.regs.rbx = 0x100;
	s.regs.rsi = 0x20;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x40, 0x10), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x130, 16);
	/* The 16-bit offset wraps: 0xfff0 + 0x20 + 0x10 -> 0x20. */
	s.regs.rbx = 0xfff0;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x40, 0x10), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x20, 16);
	/* 67: 32-bit addressing, [eax]. */
	s.regs.rax = 0x40;
	assert_int_equal(STEP(&s, 0x67, 0xf3, 0x0f, 0x6f, 0x00), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x40, 16);
	/* [bp+disp8] uses SS. */
	s.sregs.ss.base = 0x20100;
	s.regs.rbp = 0x8;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x46, 0x08), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x110, 16);
	/* [bx] and [di+disp16] go through DS. */
	s.regs.rbx = 0x60;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x07), EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x60, 16);
	s.regs.rdi = 0x10;
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x85, 0x60, 0x00),
			 EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x70, 16);
	/* mod 0, rm 6: [disp16]. */
	assert_int_equal(STEP(&s, 0xf3, 0x0f, 0x6f, 0x06, 0x50, 0x00),
			 EMU_OK);
	assert_memory_equal(s.fpu.xmm[0], mem.bytes + 0x50, 16);

	/* IP wraps at 64 KiB. */
	s.regs.rip = 0xffff;
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_int_equal(s.regs.rip, 1);
}

/* Reporting */

static void
test_dirty_and_exception_fields(void **state)
{
	struct emu_vcpu s;

	(void)state;
	vcpu_long(&s);
	assert_int_equal(STEP(&s, 0xcc), EMU_EXCEPTION);
	assert_int_equal(s.exception, 3);
	/* The next step resets the exception and keeps the dirty flags. */
	assert_int_equal(STEP(&s, 0x66, 0x0f, 0xef, 0xc1), EMU_OK);
	assert_int_equal(s.exception, -1);
	assert_true(s.fpu_dirty);
	assert_int_equal(STEP(&s, 0x0f, 0xc8), EMU_OK);
	assert_true(s.fpu_dirty);
	assert_true(s.regs_dirty);
	assert_int_equal(s.regs.rip, RIP0 + 7);

	assert_string_equal(emu_result_name(EMU_OK), "ok");
	assert_string_equal(emu_result_name(EMU_EXCEPTION), "exception");
	assert_string_equal(emu_result_name(EMU_UNHANDLED), "unhandled");
	assert_string_equal(emu_result_name(EMU_MEM_FAULT), "memory fault");
}

static void
expect_describe(const uint8_t *insn, size_t len, const char *want, int ret)
{
	char buf[96];

	assert_int_equal(emu_describe(insn, len, buf, sizeof(buf)), ret);
	assert_string_equal(buf, want);
}

#define DESCRIBE(want, ret, ...)					\
	expect_describe(B(__VA_ARGS__), NBYTES(__VA_ARGS__), (want), (ret))

static void
test_describe(void **state)
{
	char small[4];

	(void)state;
	DESCRIBE("movd xmm15, ecx", 5, 0x66, 0x44, 0x0f, 0x6e, 0xf9);
	DESCRIBE("movq xmm0, rax", 5, 0x66, 0x48, 0x0f, 0x6e, 0xc0);
	DESCRIBE("lock cmpxchg16b [rsi]", 5, 0xf0, 0x48, 0x0f, 0xc7, 0x0e);
	DESCRIBE("cmpxchg8b [rdi]", 3, 0x0f, 0xc7, 0x0f);
	DESCRIBE("pshufd xmm1, [rip+0x10], 0x1b", 9,
		 0x66, 0x0f, 0x70, 0x0d, 0x10, 0x00, 0x00, 0x00, 0x1b);
	DESCRIBE("movdqa xmm8, [rax+rcx*4+0x10]", 7,
		 0x66, 0x44, 0x0f, 0x6f, 0x44, 0x88, 0x10);
	DESCRIBE("movdqu [r12+r13*8+0x12345], xmm14", 10,
		 0xf3, 0x47, 0x0f, 0x7f, 0xb4, 0xec, 0x45, 0x23, 0x01, 0x00);
	DESCRIBE("movd xmm0, [rbp-0x8]", 5, 0x66, 0x0f, 0x6e, 0x45, 0xf8);
	DESCRIBE("movd xmm0, fs:[0x10]", 10,
		 0x64, 0x66, 0x0f, 0x6e, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00);
	DESCRIBE("movd xmm0, [eax]", 5, 0x67, 0x66, 0x0f, 0x6e, 0x00);
	DESCRIBE("int3", 1, 0xcc);
	DESCRIBE("iret", 1, 0xcf);
	DESCRIBE("int 0x3", 2, 0xcd, 0x03);
	DESCRIBE("fnstsw ax", 2, 0xdf, 0xe0);
	DESCRIBE("fninit", 2, 0xdb, 0xe3);
	DESCRIBE("fxsave64 [rax]", 4, 0x48, 0x0f, 0xae, 0x00);
	DESCRIBE("xrstor [rbx]", 3, 0x0f, 0xae, 0x2b);
	DESCRIBE("ldmxcsr [rax]", 3, 0x0f, 0xae, 0x10);
	DESCRIBE("stac", 3, 0x0f, 0x01, 0xcb);
	DESCRIBE("bswap eax", 2, 0x0f, 0xc8);
	DESCRIBE("bswap r15", 3, 0x49, 0x0f, 0xcf);
	DESCRIBE("popcnt rax, rbx", 5, 0xf3, 0x48, 0x0f, 0xb8, 0xc3);
	DESCRIBE("popcnt dx, si", 5, 0x66, 0xf3, 0x0f, 0xb8, 0xd6);
	DESCRIBE("psrldq xmm0, 0x3", 5, 0x66, 0x0f, 0x73, 0xd8, 0x03);
	DESCRIBE("pmovmskb r9d, xmm10", 5, 0x66, 0x45, 0x0f, 0xd7, 0xca);
	DESCRIBE("pextrw ecx, xmm2, 0x3", 5, 0x66, 0x0f, 0xc5, 0xca, 0x03);
	DESCRIBE("movnti [rax], rcx", 4, 0x48, 0x0f, 0xc3, 0x08);
	DESCRIBE("palignr xmm0, xmm1, 0x5", 6,
		 0x66, 0x0f, 0x3a, 0x0f, 0xc1, 0x05);
	/* Unknown and truncated: the bytes. */
	DESCRIBE("0f 05", 0, 0x0f, 0x05);
	DESCRIBE("66 0f 6e", 0, 0x66, 0x0f, 0x6e);
	/* A short buffer is cut and terminated. */
	assert_int_equal(emu_describe(B(0x66, 0x44, 0x0f, 0x6e, 0xf9), 5,
				      small, sizeof(small)), 5);
	assert_string_equal(small, "mov");
	assert_int_equal(emu_describe(B(0x0f, 0x05), 2, small, sizeof(small)),
			 0);
	assert_string_equal(small, "0f ");
	assert_int_equal(emu_describe(B(0xcc), 1, NULL, 10), -EINVAL);
	assert_int_equal(emu_describe(B(0xcc), 1, small, 0), -EINVAL);
}

/*
 * Cross-check against the host CPU: each lane operation runs natively
 * (inline asm on xmm registers) and through the emulator on the same
 * random inputs, in register and memory form.
 */

typedef long long v2di __attribute__((vector_size(16)));
typedef void native_fn(uint8_t *d, const uint8_t *s);

#define NATIVE(fn, insn)						\
	static void							\
	fn(uint8_t *d, const uint8_t *s)				\
	{								\
		v2di a, b;						\
									\
		memcpy(&a, d, 16);					\
		memcpy(&b, s, 16);					\
		__asm__(insn " %1, %0" : "+x"(a) : "x"(b));		\
		memcpy(d, &a, 16);					\
	}
#define NATIVE_IMM(fn, insn, imm)					\
	static void							\
	fn(uint8_t *d, const uint8_t *s)				\
	{								\
		v2di a, b;						\
									\
		memcpy(&a, d, 16);					\
		memcpy(&b, s, 16);					\
		__asm__(insn " $" #imm ", %1, %0" : "+x"(a) : "x"(b));	\
		memcpy(d, &a, 16);					\
	}
#define NATIVE_SHIFT(fn, insn, imm)					\
	static void							\
	fn(uint8_t *d, const uint8_t *s)				\
	{								\
		v2di a;							\
									\
		(void)s;						\
		memcpy(&a, d, 16);					\
		__asm__(insn " $" #imm ", %0" : "+x"(a));		\
		memcpy(d, &a, 16);					\
	}

NATIVE(n_pand, "pand")
NATIVE(n_pandn, "pandn")
NATIVE(n_por, "por")
NATIVE(n_pxor, "pxor")
NATIVE(n_andps, "andps")
NATIVE(n_andnps, "andnps")
NATIVE(n_orps, "orps")
NATIVE(n_xorps, "xorps")
NATIVE(n_xorpd, "xorpd")
NATIVE(n_paddb, "paddb")
NATIVE(n_paddw, "paddw")
NATIVE(n_paddd, "paddd")
NATIVE(n_paddq, "paddq")
NATIVE(n_psubb, "psubb")
NATIVE(n_psubw, "psubw")
NATIVE(n_psubd, "psubd")
NATIVE(n_psubq, "psubq")
NATIVE(n_paddusb, "paddusb")
NATIVE(n_paddusw, "paddusw")
NATIVE(n_psubusb, "psubusb")
NATIVE(n_psubusw, "psubusw")
NATIVE(n_paddsb, "paddsb")
NATIVE(n_paddsw, "paddsw")
NATIVE(n_psubsb, "psubsb")
NATIVE(n_psubsw, "psubsw")
NATIVE(n_pminub, "pminub")
NATIVE(n_pmaxub, "pmaxub")
NATIVE(n_pminsw, "pminsw")
NATIVE(n_pmaxsw, "pmaxsw")
NATIVE(n_pavgb, "pavgb")
NATIVE(n_pavgw, "pavgw")
NATIVE(n_pmullw, "pmullw")
NATIVE(n_pmulhw, "pmulhw")
NATIVE(n_pmulhuw, "pmulhuw")
NATIVE(n_pmuludq, "pmuludq")
NATIVE(n_pmaddwd, "pmaddwd")
NATIVE(n_psadbw, "psadbw")
NATIVE(n_pcmpeqb, "pcmpeqb")
NATIVE(n_pcmpeqw, "pcmpeqw")
NATIVE(n_pcmpeqd, "pcmpeqd")
NATIVE(n_pcmpgtb, "pcmpgtb")
NATIVE(n_pcmpgtw, "pcmpgtw")
NATIVE(n_pcmpgtd, "pcmpgtd")
NATIVE(n_punpcklbw, "punpcklbw")
NATIVE(n_punpcklwd, "punpcklwd")
NATIVE(n_punpckldq, "punpckldq")
NATIVE(n_punpcklqdq, "punpcklqdq")
NATIVE(n_punpckhbw, "punpckhbw")
NATIVE(n_punpckhwd, "punpckhwd")
NATIVE(n_punpckhdq, "punpckhdq")
NATIVE(n_punpckhqdq, "punpckhqdq")
NATIVE(n_unpcklps, "unpcklps")
NATIVE(n_unpckhps, "unpckhps")
NATIVE(n_unpcklpd, "unpcklpd")
NATIVE(n_unpckhpd, "unpckhpd")
NATIVE(n_packsswb, "packsswb")
NATIVE(n_packuswb, "packuswb")
NATIVE(n_packssdw, "packssdw")
NATIVE(n_psrlw, "psrlw")
NATIVE(n_psrld, "psrld")
NATIVE(n_psrlq, "psrlq")
NATIVE(n_psraw, "psraw")
NATIVE(n_psrad, "psrad")
NATIVE(n_psllw, "psllw")
NATIVE(n_pslld, "pslld")
NATIVE(n_psllq, "psllq")
NATIVE(n_pshufb, "pshufb")
NATIVE_IMM(n_pshufd_1b, "pshufd", 0x1b)
NATIVE_IMM(n_pshufd_4e, "pshufd", 0x4e)
NATIVE_IMM(n_pshufd_93, "pshufd", 0x93)
NATIVE_IMM(n_pshuflw_1b, "pshuflw", 0x1b)
NATIVE_IMM(n_pshufhw_b1, "pshufhw", 0xb1)
NATIVE_IMM(n_shufps_1b, "shufps", 0x1b)
NATIVE_IMM(n_shufps_72, "shufps", 0x72)
NATIVE_IMM(n_shufpd_1, "shufpd", 0x1)
NATIVE_IMM(n_shufpd_2, "shufpd", 0x2)
NATIVE_IMM(n_palignr_0, "palignr", 0)
NATIVE_IMM(n_palignr_5, "palignr", 5)
NATIVE_IMM(n_palignr_16, "palignr", 16)
NATIVE_IMM(n_palignr_20, "palignr", 20)
NATIVE_IMM(n_palignr_32, "palignr", 32)
NATIVE_SHIFT(n_psrlw_3, "psrlw", 3)
NATIVE_SHIFT(n_psrlw_16, "psrlw", 16)
NATIVE_SHIFT(n_psraw_7, "psraw", 7)
NATIVE_SHIFT(n_psraw_200, "psraw", 200)
NATIVE_SHIFT(n_psllw_15, "psllw", 15)
NATIVE_SHIFT(n_psrld_7, "psrld", 7)
NATIVE_SHIFT(n_psrad_31, "psrad", 31)
NATIVE_SHIFT(n_psrad_40, "psrad", 40)
NATIVE_SHIFT(n_pslld_12, "pslld", 12)
NATIVE_SHIFT(n_pslld_32, "pslld", 32)
NATIVE_SHIFT(n_psrlq_1, "psrlq", 1)
NATIVE_SHIFT(n_psrlq_63, "psrlq", 63)
NATIVE_SHIFT(n_psllq_33, "psllq", 33)
NATIVE_SHIFT(n_psllq_64, "psllq", 64)
NATIVE_SHIFT(n_psrldq_3, "psrldq", 3)
NATIVE_SHIFT(n_psrldq_15, "psrldq", 15)
NATIVE_SHIFT(n_psrldq_16, "psrldq", 16)
NATIVE_SHIFT(n_pslldq_1, "pslldq", 1)
NATIVE_SHIFT(n_pslldq_9, "pslldq", 9)
NATIVE_SHIFT(n_pslldq_200, "pslldq", 200)

struct sse_case {
	const char *name;
	uint8_t op[4];		/* prefix and opcode bytes */
	uint8_t oplen;
	int digit;		/* -1: "op xmm0, xmm1/m128"; else /digit xmm0 */
	int imm;		/* -1: none */
	native_fn *native;
};

#define C2(nm, o, fn)		{ nm, { 0x66, 0x0f, o }, 3, -1, -1, fn }
#define CNP(nm, o, fn)		{ nm, { 0x0f, o }, 2, -1, -1, fn }
#define CIMM(nm, p, o, i, fn)	{ nm, { p, 0x0f, o }, 3, -1, i, fn }
#define CSH(nm, o, dg, i, fn)	{ nm, { 0x66, 0x0f, o }, 3, dg, i, fn }

static const struct sse_case sse_cases[] = {
	C2("pand", 0xdb, n_pand), C2("pandn", 0xdf, n_pandn),
	C2("por", 0xeb, n_por), C2("pxor", 0xef, n_pxor),
	CNP("andps", 0x54, n_andps), CNP("andnps", 0x55, n_andnps),
	CNP("orps", 0x56, n_orps), CNP("xorps", 0x57, n_xorps),
	C2("xorpd", 0x57, n_xorpd),
	C2("paddb", 0xfc, n_paddb), C2("paddw", 0xfd, n_paddw),
	C2("paddd", 0xfe, n_paddd), C2("paddq", 0xd4, n_paddq),
	C2("psubb", 0xf8, n_psubb), C2("psubw", 0xf9, n_psubw),
	C2("psubd", 0xfa, n_psubd), C2("psubq", 0xfb, n_psubq),
	C2("paddusb", 0xdc, n_paddusb), C2("paddusw", 0xdd, n_paddusw),
	C2("psubusb", 0xd8, n_psubusb), C2("psubusw", 0xd9, n_psubusw),
	C2("paddsb", 0xec, n_paddsb), C2("paddsw", 0xed, n_paddsw),
	C2("psubsb", 0xe8, n_psubsb), C2("psubsw", 0xe9, n_psubsw),
	C2("pminub", 0xda, n_pminub), C2("pmaxub", 0xde, n_pmaxub),
	C2("pminsw", 0xea, n_pminsw), C2("pmaxsw", 0xee, n_pmaxsw),
	C2("pavgb", 0xe0, n_pavgb), C2("pavgw", 0xe3, n_pavgw),
	C2("pmullw", 0xd5, n_pmullw), C2("pmulhw", 0xe5, n_pmulhw),
	C2("pmulhuw", 0xe4, n_pmulhuw), C2("pmuludq", 0xf4, n_pmuludq),
	C2("pmaddwd", 0xf5, n_pmaddwd), C2("psadbw", 0xf6, n_psadbw),
	C2("pcmpeqb", 0x74, n_pcmpeqb), C2("pcmpeqw", 0x75, n_pcmpeqw),
	C2("pcmpeqd", 0x76, n_pcmpeqd), C2("pcmpgtb", 0x64, n_pcmpgtb),
	C2("pcmpgtw", 0x65, n_pcmpgtw), C2("pcmpgtd", 0x66, n_pcmpgtd),
	C2("punpcklbw", 0x60, n_punpcklbw), C2("punpcklwd", 0x61, n_punpcklwd),
	C2("punpckldq", 0x62, n_punpckldq),
	C2("punpcklqdq", 0x6c, n_punpcklqdq),
	C2("punpckhbw", 0x68, n_punpckhbw), C2("punpckhwd", 0x69, n_punpckhwd),
	C2("punpckhdq", 0x6a, n_punpckhdq),
	C2("punpckhqdq", 0x6d, n_punpckhqdq),
	CNP("unpcklps", 0x14, n_unpcklps), CNP("unpckhps", 0x15, n_unpckhps),
	C2("unpcklpd", 0x14, n_unpcklpd), C2("unpckhpd", 0x15, n_unpckhpd),
	C2("packsswb", 0x63, n_packsswb), C2("packuswb", 0x67, n_packuswb),
	C2("packssdw", 0x6b, n_packssdw),
	C2("psrlw", 0xd1, n_psrlw), C2("psrld", 0xd2, n_psrld),
	C2("psrlq", 0xd3, n_psrlq), C2("psraw", 0xe1, n_psraw),
	C2("psrad", 0xe2, n_psrad), C2("psllw", 0xf1, n_psllw),
	C2("pslld", 0xf2, n_pslld), C2("psllq", 0xf3, n_psllq),
	{ "pshufb", { 0x66, 0x0f, 0x38, 0x00 }, 4, -1, -1, n_pshufb },
	{ "palignr 0", { 0x66, 0x0f, 0x3a, 0x0f }, 4, -1, 0, n_palignr_0 },
	{ "palignr 5", { 0x66, 0x0f, 0x3a, 0x0f }, 4, -1, 5, n_palignr_5 },
	{ "palignr 16", { 0x66, 0x0f, 0x3a, 0x0f }, 4, -1, 16, n_palignr_16 },
	{ "palignr 20", { 0x66, 0x0f, 0x3a, 0x0f }, 4, -1, 20, n_palignr_20 },
	{ "palignr 32", { 0x66, 0x0f, 0x3a, 0x0f }, 4, -1, 32, n_palignr_32 },
	CIMM("pshufd 1b", 0x66, 0x70, 0x1b, n_pshufd_1b),
	CIMM("pshufd 4e", 0x66, 0x70, 0x4e, n_pshufd_4e),
	CIMM("pshufd 93", 0x66, 0x70, 0x93, n_pshufd_93),
	CIMM("pshuflw 1b", 0xf2, 0x70, 0x1b, n_pshuflw_1b),
	CIMM("pshufhw b1", 0xf3, 0x70, 0xb1, n_pshufhw_b1),
	{ "shufps 1b", { 0x0f, 0xc6 }, 2, -1, 0x1b, n_shufps_1b },
	{ "shufps 72", { 0x0f, 0xc6 }, 2, -1, 0x72, n_shufps_72 },
	CIMM("shufpd 1", 0x66, 0xc6, 0x1, n_shufpd_1),
	CIMM("shufpd 2", 0x66, 0xc6, 0x2, n_shufpd_2),
	CSH("psrlw 3", 0x71, 2, 3, n_psrlw_3),
	CSH("psrlw 16", 0x71, 2, 16, n_psrlw_16),
	CSH("psraw 7", 0x71, 4, 7, n_psraw_7),
	CSH("psraw 200", 0x71, 4, 200, n_psraw_200),
	CSH("psllw 15", 0x71, 6, 15, n_psllw_15),
	CSH("psrld 7", 0x72, 2, 7, n_psrld_7),
	CSH("psrad 31", 0x72, 4, 31, n_psrad_31),
	CSH("psrad 40", 0x72, 4, 40, n_psrad_40),
	CSH("pslld 12", 0x72, 6, 12, n_pslld_12),
	CSH("pslld 32", 0x72, 6, 32, n_pslld_32),
	CSH("psrlq 1", 0x73, 2, 1, n_psrlq_1),
	CSH("psrlq 63", 0x73, 2, 63, n_psrlq_63),
	CSH("psllq 33", 0x73, 6, 33, n_psllq_33),
	CSH("psllq 64", 0x73, 6, 64, n_psllq_64),
	CSH("psrldq 3", 0x73, 3, 3, n_psrldq_3),
	CSH("psrldq 15", 0x73, 3, 15, n_psrldq_15),
	CSH("psrldq 16", 0x73, 3, 16, n_psrldq_16),
	CSH("pslldq 1", 0x73, 7, 1, n_pslldq_1),
	CSH("pslldq 9", 0x73, 7, 9, n_pslldq_9),
	CSH("pslldq 200", 0x73, 7, 200, n_pslldq_200),
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Random inputs of a few shapes: noise, small shift counts, near-equal. */
static void
random_inputs(unsigned int iter, uint8_t *d, uint8_t *s)
{
	for (unsigned int i = 0; i < 16; i += 8) {
		uint64_t a = rng(), b = rng();

		memcpy(d + i, &a, 8);
		memcpy(s + i, &b, 8);
	}
	switch (iter % 4) {
	case 1: {
		uint64_t count = rng() % 72;

		memcpy(s, &count, 8);
		break;
	}
	case 2:
		memcpy(s, d, 16);
		for (unsigned int k = 0; k < 4; k++)
			s[rng() % 16] ^= (uint8_t)rng();
		break;
	case 3:
		/* Lanes at the edges: 0, -1, 0x80, 0x7f bytes. */
		for (unsigned int k = 0; k < 16; k++) {
			static const uint8_t edge[] = { 0, 0xff, 0x80, 0x7f };

			d[k] = edge[rng() % 4];
			s[k] = edge[rng() % 4];
		}
		break;
	default:
		break;
	}
}

static void
run_sse_case(const struct sse_case *k, bool memory_form, const uint8_t *d,
	     const uint8_t *src, uint8_t *out)
{
	struct emu_vcpu s;
	uint8_t insn[8];
	size_t n = 0;
	enum emu_result r;

	vcpu_long(&s);
	memcpy(insn, k->op, k->oplen);
	n = k->oplen;
	if (k->digit >= 0)
		insn[n++] = (uint8_t)(0xc0 | (k->digit << 3));
	else
		insn[n++] = memory_form ? 0x00 : 0xc1;	/* [rax] or xmm1 */
	if (k->imm >= 0)
		insn[n++] = (uint8_t)k->imm;
	memcpy(s.fpu.xmm[0], d, 16);
	memcpy(s.fpu.xmm[1], src, 16);
	memcpy(mem.bytes + 0x100, src, 16);
	s.regs.rax = A(0x100);
	r = emu_step(&s, insn, n, &mem_ops, &mem);
	if (r != EMU_OK)
		fail_msg("%s: emu_step returned %s", k->name,
			 emu_result_name(r));
	assert_int_equal(s.regs.rip, RIP0 + n);
	/* The source register is never written. */
	assert_memory_equal(s.fpu.xmm[1], src, 16);
	memcpy(out, s.fpu.xmm[0], 16);
}

static bool
host_has_ssse3(void)
{
	unsigned int a, b, c, d;

	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSSE3) &&
	       (d & bit_SSE2);
}

static void
test_sse_against_host(void **state)
{
	(void)state;
	if (!host_has_ssse3())
		skip();
	for (size_t i = 0; i < sizeof(sse_cases) / sizeof(sse_cases[0]); i++) {
		const struct sse_case *k = &sse_cases[i];

		for (unsigned int iter = 0; iter < 256; iter++) {
			uint8_t d[16], src[16], want[16], got[16];
			bool memory_form = k->digit < 0 && (iter & 1);

			random_inputs(iter, d, src);
			memcpy(want, d, 16);
			k->native(want, src);
			run_sse_case(k, memory_form, d, src, got);
			if (memcmp(want, got, 16) != 0) {
				char w[40], g[40];

				for (unsigned int j = 0; j < 16; j++) {
					sprintf(w + 2 * j, "%02x",
						want[15 - j]);
					sprintf(g + 2 * j, "%02x",
						got[15 - j]);
				}
				fail_msg("%s (%s form): host %s, emulator %s",
					 k->name, memory_form ? "memory" :
					 "register", w, g);
			}
		}
	}
}

/*
 * A run of instructions shaped like the kernel's blake2s_compress_ssse3
 * (the SIMD code the Debian kernel reached under PVM), stepped through the
 * emulator as one byte stream, so that every instruction's length must be
 * decoded right for the next to start in the right place. The host runs
 * the same code; every XMM register and the memory must agree.
 */
#define KERNEL_SIMD_ASM							\
	"movd (%%rsi,%%rax,4),%%xmm4\n\t"				\
	"movd 4(%%rsi,%%rax,4),%%xmm5\n\t"				\
	"movd 0x14(%%rsi,%%rax,4),%%xmm6\n\t"				\
	"movd 0x38(%%rsi),%%xmm7\n\t"					\
	"punpckldq %%xmm5,%%xmm4\n\t"					\
	"punpckldq %%xmm7,%%xmm6\n\t"					\
	"punpcklqdq %%xmm6,%%xmm4\n\t"					\
	"paddd %%xmm4,%%xmm0\n\t"					\
	"paddd %%xmm1,%%xmm0\n\t"					\
	"pxor %%xmm0,%%xmm3\n\t"					\
	"pshufb %%xmm12,%%xmm3\n\t"					\
	"paddd %%xmm3,%%xmm2\n\t"					\
	"pxor %%xmm2,%%xmm1\n\t"					\
	"movdqa %%xmm1,%%xmm8\n\t"					\
	"psrld $0xc,%%xmm1\n\t"						\
	"pslld $0x14,%%xmm8\n\t"					\
	"por %%xmm8,%%xmm1\n\t"						\
	"pxor %%xmm0,%%xmm3\n\t"					\
	"pshufb %%xmm13,%%xmm3\n\t"					\
	"paddd %%xmm3,%%xmm2\n\t"					\
	"pxor %%xmm2,%%xmm1\n\t"					\
	"movdqa %%xmm1,%%xmm8\n\t"					\
	"psrld $0x7,%%xmm1\n\t"						\
	"pslld $0x19,%%xmm8\n\t"					\
	"por %%xmm8,%%xmm1\n\t"						\
	"pshufd $0x93,%%xmm0,%%xmm0\n\t"				\
	"pshufd $0x4e,%%xmm3,%%xmm3\n\t"				\
	"pshufd $0x39,%%xmm2,%%xmm2\n\t"				\
	"paddq %%xmm15,%%xmm14\n\t"					\
	"movd %%ecx,%%xmm15\n\t"					\
	"pxor 0x40(%%rsi),%%xmm9\n\t"					\
	"movdqu %%xmm0,0x50(%%rsi)\n\t"					\
	"movdqu 0x21(%%rsi),%%xmm11\n\t"				\
	"palignr $4,%%xmm11,%%xmm10\n\t"				\
	"psrldq $3,%%xmm10\n\t"						\
	"punpckhqdq %%xmm10,%%xmm11\n\t"

/* The same instructions, as the assembler encodes them. */
static const uint8_t kernel_simd_code[] = {
	0x66, 0x0f, 0x6e, 0x24, 0x86, 0x66, 0x0f, 0x6e, 0x6c, 0x86, 0x04,
	0x66, 0x0f, 0x6e, 0x74, 0x86, 0x14, 0x66, 0x0f, 0x6e, 0x7e, 0x38,
	0x66, 0x0f, 0x62, 0xe5, 0x66, 0x0f, 0x62, 0xf7, 0x66, 0x0f, 0x6c,
	0xe6, 0x66, 0x0f, 0xfe, 0xc4, 0x66, 0x0f, 0xfe, 0xc1, 0x66, 0x0f,
	0xef, 0xd8, 0x66, 0x41, 0x0f, 0x38, 0x00, 0xdc, 0x66, 0x0f, 0xfe,
	0xd3, 0x66, 0x0f, 0xef, 0xca, 0x66, 0x44, 0x0f, 0x6f, 0xc1, 0x66,
	0x0f, 0x72, 0xd1, 0x0c, 0x66, 0x41, 0x0f, 0x72, 0xf0, 0x14, 0x66,
	0x41, 0x0f, 0xeb, 0xc8, 0x66, 0x0f, 0xef, 0xd8, 0x66, 0x41, 0x0f,
	0x38, 0x00, 0xdd, 0x66, 0x0f, 0xfe, 0xd3, 0x66, 0x0f, 0xef, 0xca,
	0x66, 0x44, 0x0f, 0x6f, 0xc1, 0x66, 0x0f, 0x72, 0xd1, 0x07, 0x66,
	0x41, 0x0f, 0x72, 0xf0, 0x19, 0x66, 0x41, 0x0f, 0xeb, 0xc8, 0x66,
	0x0f, 0x70, 0xc0, 0x93, 0x66, 0x0f, 0x70, 0xdb, 0x4e, 0x66, 0x0f,
	0x70, 0xd2, 0x39, 0x66, 0x45, 0x0f, 0xd4, 0xf7, 0x66, 0x44, 0x0f,
	0x6e, 0xf9, 0x66, 0x44, 0x0f, 0xef, 0x4e, 0x40, 0xf3, 0x0f, 0x7f,
	0x46, 0x50, 0xf3, 0x44, 0x0f, 0x6f, 0x5e, 0x21, 0x66, 0x45, 0x0f,
	0x3a, 0x0f, 0xd3, 0x04, 0x66, 0x41, 0x0f, 0x73, 0xda, 0x03, 0x66,
	0x45, 0x0f, 0x6d, 0xda,
};

static void
kernel_simd_native(uint8_t (*xmm)[16], uint8_t *msg, uint64_t rax,
		   uint64_t rcx)
{
	__asm__ volatile(
		"movdqu 0x00(%[x]), %%xmm0\n\t"
		"movdqu 0x10(%[x]), %%xmm1\n\t"
		"movdqu 0x20(%[x]), %%xmm2\n\t"
		"movdqu 0x30(%[x]), %%xmm3\n\t"
		"movdqu 0x40(%[x]), %%xmm4\n\t"
		"movdqu 0x50(%[x]), %%xmm5\n\t"
		"movdqu 0x60(%[x]), %%xmm6\n\t"
		"movdqu 0x70(%[x]), %%xmm7\n\t"
		"movdqu 0x80(%[x]), %%xmm8\n\t"
		"movdqu 0x90(%[x]), %%xmm9\n\t"
		"movdqu 0xa0(%[x]), %%xmm10\n\t"
		"movdqu 0xb0(%[x]), %%xmm11\n\t"
		"movdqu 0xc0(%[x]), %%xmm12\n\t"
		"movdqu 0xd0(%[x]), %%xmm13\n\t"
		"movdqu 0xe0(%[x]), %%xmm14\n\t"
		"movdqu 0xf0(%[x]), %%xmm15\n\t"
		KERNEL_SIMD_ASM
		"movdqu %%xmm0, 0x00(%[x])\n\t"
		"movdqu %%xmm1, 0x10(%[x])\n\t"
		"movdqu %%xmm2, 0x20(%[x])\n\t"
		"movdqu %%xmm3, 0x30(%[x])\n\t"
		"movdqu %%xmm4, 0x40(%[x])\n\t"
		"movdqu %%xmm5, 0x50(%[x])\n\t"
		"movdqu %%xmm6, 0x60(%[x])\n\t"
		"movdqu %%xmm7, 0x70(%[x])\n\t"
		"movdqu %%xmm8, 0x80(%[x])\n\t"
		"movdqu %%xmm9, 0x90(%[x])\n\t"
		"movdqu %%xmm10, 0xa0(%[x])\n\t"
		"movdqu %%xmm11, 0xb0(%[x])\n\t"
		"movdqu %%xmm12, 0xc0(%[x])\n\t"
		"movdqu %%xmm13, 0xd0(%[x])\n\t"
		"movdqu %%xmm14, 0xe0(%[x])\n\t"
		"movdqu %%xmm15, 0xf0(%[x])\n\t"
		:
		: [x] "r"(xmm), "S"(msg), "a"(rax), "c"(rcx)
		: "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
		  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		  "xmm13", "xmm14", "xmm15");
}

static void
test_kernel_simd_stream(void **state)
{
	static uint8_t host_msg[0x100] __attribute__((aligned(64)));
	uint8_t want[16][16];
	struct emu_vcpu s;
	size_t off = 0;
	unsigned int n = 0;

	(void)state;
	if (!host_has_ssse3())
		skip();
	for (unsigned int round = 0; round < 16; round++) {
		vcpu_long(&s);
		for (unsigned int i = 0; i < 16; i++)
			for (unsigned int j = 0; j < 16; j += 8) {
				uint64_t v = rng();

				memcpy(s.fpu.xmm[i] + j, &v, 8);
			}
		for (unsigned int i = 0; i < sizeof(host_msg); i++)
			host_msg[i] = (uint8_t)rng();
		memcpy(mem.bytes + 0x100, host_msg, sizeof(host_msg));
		s.regs.rsi = A(0x100);
		s.regs.rax = rng() % 8;
		s.regs.rcx = rng();
		memcpy(want, s.fpu.xmm, sizeof(want));
		kernel_simd_native(want, host_msg, s.regs.rax, s.regs.rcx);

		off = 0;
		n = 0;
		while (off < sizeof(kernel_simd_code)) {
			size_t len = sizeof(kernel_simd_code) - off;
			uint64_t rip = s.regs.rip;

			if (len > 15)
				len = 15;
			assert_int_equal(emu_step(&s, kernel_simd_code + off,
						  len, &mem_ops, &mem), EMU_OK);
			assert_true(s.regs.rip > rip);
			off += s.regs.rip - rip;
			n++;
		}
		assert_int_equal(off, sizeof(kernel_simd_code));
		assert_int_equal(n, 36);
		assert_memory_equal(s.fpu.xmm, want, sizeof(want));
		assert_memory_equal(mem.bytes + 0x100, host_msg,
				    sizeof(host_msg));
	}
}

/* RFLAGS into a register, stepping over the red zone below RSP. */
#define FLAGS_TO(reg)							\
	"lea -128(%%rsp), %%rsp\n\tpushfq\n\tpopq " reg		\
	"\n\tlea 128(%%rsp), %%rsp"

/*
 * iret's flag rules against the host CPU. A 32-bit iret at CPL 3 in
 * compatibility mode (Linux's 32-bit user code segment, 0x23) returns
 * like protected mode's iret to the same privilege level: EIP, CS,
 * EFLAGS, no SS:ESP. The trampoline lives in a page below 4 GiB (code,
 * data and a stack a 32-bit ESP can reach): 64-bit entry, a far jump to
 * 32-bit code that sets known flags, pushes a frame with the flags under
 * test and runs iret, saves what pushfd then reads, and jumps back.
 */
#define TR_COMPAT	0x100		/* 32-bit code */
#define TR_BACK		0x180		/* 64-bit code after the far jump */
#define TR_FAR32	0x200		/* m16:32 to TR_COMPAT */
#define TR_FAR64	0x208		/* m16:32 to TR_BACK */
#define TR_FLAGS_IN	0x210
#define TR_FLAGS_OUT	0x214
#define TR_RSP		0x218
#define TR_STACK_TOP	0x1000
#define TR_USER32_CS	0x23		/* Linux x86-64's __USER32_CS */
#define TR_USER_CS	0x33		/* and __USER_CS */
#define TR_USER_DS	0x2b		/* and __USER_DS */

static uint8_t *tr_page;

static size_t
tr_put(size_t at, const void *b, size_t n)
{
	memcpy(tr_page + at, b, n);
	return at + n;
}

static size_t
tr_put32(size_t at, uint32_t v)
{
	return tr_put(at, &v, 4);
}

static bool
tr_build(void)
{
	uint32_t base;
	size_t at;

	tr_page = mmap(NULL, TR_STACK_TOP, PROT_READ | PROT_WRITE | PROT_EXEC,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	if (tr_page == MAP_FAILED) {
		tr_page = NULL;
		return false;
	}
	base = (uint32_t)(uintptr_t)tr_page;
	/* 64-bit: save the callee-saved registers and RSP, take the page's
	 * stack, jmp far [TR_FAR32]. */
	at = tr_put(0, B(0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56,
			 0x41, 0x57, 0x48, 0x89, 0x24, 0x25), 14);
	at = tr_put32(at, base + TR_RSP);
	at = tr_put(at, B(0xbc), 1);			/* mov esp, imm32 */
	at = tr_put32(at, base + TR_STACK_TOP);
	at = tr_put(at, B(0xff, 0x2c, 0x25), 3);
	tr_put32(at, base + TR_FAR32);
	/* 32-bit: DS = the user data segment (a 64-bit process's null DS
	 * faults here); push 0x202; popfd (known flags); push the frame;
	 * iretd; pushfd; pop eax; mov [out], eax; push 0x202; popfd (DF and
	 * AC clear for C); jmp far [TR_FAR64]. */
	at = tr_put(TR_COMPAT, B(0x66, 0xb8, TR_USER_DS, 0x00, 0x8e, 0xd8),
		    6);
	at = tr_put(at, B(0x68, 0x02, 0x02, 0x00, 0x00, 0x9d, 0xa1), 7);
	at = tr_put32(at, base + TR_FLAGS_IN);
	at = tr_put(at, B(0x50, 0x6a, TR_USER32_CS, 0x68), 4);
	at = tr_put32(at, base + (uint32_t)at + 5);	/* after the iret */
	at = tr_put(at, B(0xcf, 0x9c, 0x58, 0xa3), 4);
	at = tr_put32(at, base + TR_FLAGS_OUT);
	at = tr_put(at, B(0x68, 0x02, 0x02, 0x00, 0x00, 0x9d, 0xff, 0x2d), 8);
	tr_put32(at, base + TR_FAR64);
	/* 64-bit again: mov rsp, [TR_RSP]; DS back to null; pop what was
	 * pushed; ret. */
	at = tr_put(TR_BACK, B(0x48, 0x8b, 0x24, 0x25), 4);
	at = tr_put32(at, base + TR_RSP);
	tr_put(at, B(0x31, 0xc0, 0x8e, 0xd8, 0x41, 0x5f, 0x41, 0x5e, 0x41,
		     0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3), 15);
	tr_put32(TR_FAR32, base + TR_COMPAT);
	tr_put(TR_FAR32 + 4, &(uint16_t){ TR_USER32_CS }, 2);
	tr_put32(TR_FAR64, base + TR_BACK);
	tr_put(TR_FAR64 + 4, &(uint16_t){ TR_USER_CS }, 2);
	return true;
}

/* The host's EFLAGS after iretd popped fl, from 0x202 at CPL 3. */
static uint32_t
tr_run(uint32_t fl)
{
	void (*fn)(void);
	uint32_t out;

	memcpy(tr_page + TR_FLAGS_IN, &fl, 4);
	memset(tr_page + TR_FLAGS_OUT, 0, 4);
	fn = (void (*)(void))(uintptr_t)tr_page;
	fn();
	memcpy(&out, tr_page + TR_FLAGS_OUT, 4);
	return out;
}

static void
test_iret_against_host(void **state)
{
	/* pushfd leaves RF and VM out of its image. */
	const uint32_t unseen = (uint32_t)(FL_RF | FL_VM);
	struct emu_vcpu s;
	unsigned int i;

	(void)state;
	if (!tr_build()) {
		print_message("# no page below 4 GiB for 32-bit code\n");
		skip();
	}
	mem.gva = 0x00200000;
	for (i = 0; i < 2000; i++) {
		/* Any flags but TF (a trap after the iret) and NT (a task
		 * return): reserved bits, IOPL, IF, VIF, VIP, VM, AC, ID. */
		uint32_t fl = (uint32_t)rng();
		uint32_t host, emu;

		if (i < 4)
			fl = i == 0 ? 0 : i == 1 ? 0xffffffff : i == 2 ? 0x2 :
			     0x246;
		fl &= ~(uint32_t)(FL_TF | FL_NT);
		host = tr_run(fl);

		vcpu_iret32(&s, 3, 0x100);
		mem_put64(IRET_GDT + 8 * (TR_USER32_CS >> 3),
			  0x00cffb000000ffffULL);
		s.sregs.gdt.limit = 0x2f;
		s.sregs.cs.selector = TR_USER32_CS;
		s.regs.rflags = 0x202;
		iret_frame(0x100, 4, 0x1000, TR_USER32_CS, fl);
		assert_int_equal(STEP(&s, 0xcf), EMU_OK);
		emu = (uint32_t)s.regs.rflags;
		if ((host & ~unseen) != (emu & ~unseen))
			fail_msg("iretd popping 0x%08x at CPL 3 from 0x202: "
				 "host 0x%08x, emulator 0x%08x", fl, host, emu);
		assert_int_equal(s.regs.rip, 0x1000);
	}
	munmap(tr_page, TR_STACK_TOP);
	tr_page = NULL;
}

/* GPR-producing SSE ops and the bit counts, against the host. */
static void
test_gpr_ops_against_host(void **state)
{
	unsigned int a, b, c, d;
	bool has_lzcnt, has_bmi1;

	(void)state;
	if (!host_has_ssse3())
		skip();
	has_lzcnt = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & (1u << 5));
	has_bmi1 = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 3));
	for (unsigned int iter = 0; iter < 512; iter++) {
		struct emu_vcpu s;
		v2di x;
		uint64_t v = rng(), want, wantfl;
		unsigned int imm = iter & 7;
		uint32_t mask;

		/* Sparse values make zero and edge counts likely. */
		if (iter % 3 == 1)
			v &= rng() & rng() & rng();
		if (iter % 7 == 3)
			v = 0;
		memcpy(&x, (uint64_t[2]){ v, rng() }, 16);

		vcpu_long(&s);
		memcpy(s.fpu.xmm[1], &x, 16);
		__asm__("pmovmskb %1, %0" : "=r"(mask) : "x"(x));
		assert_int_equal(STEP(&s, 0x66, 0x0f, 0xd7, 0xc1), EMU_OK);
		assert_int_equal(s.regs.rax, mask);
		__asm__("movmskps %1, %0" : "=r"(mask) : "x"(x));
		assert_int_equal(STEP(&s, 0x0f, 0x50, 0xc1), EMU_OK);
		assert_int_equal(s.regs.rax, mask);
		__asm__("movmskpd %1, %0" : "=r"(mask) : "x"(x));
		assert_int_equal(STEP(&s, 0x66, 0x0f, 0x50, 0xc1), EMU_OK);
		assert_int_equal(s.regs.rax, mask);
		switch (imm) {
#define PEXTRW(i)							\
		case i:							\
			__asm__("pextrw $" #i ", %1, %0"		\
				: "=r"(mask) : "x"(x));			\
			break
		PEXTRW(0); PEXTRW(1); PEXTRW(2); PEXTRW(3);
		PEXTRW(4); PEXTRW(5); PEXTRW(6); PEXTRW(7);
#undef PEXTRW
		}
		assert_int_equal(emu_step(&s, B(0x66, 0x0f, 0xc5, 0xc1,
						(uint8_t)imm), 5, &mem_ops,
					  &mem), EMU_OK);
		assert_int_equal(s.regs.rax, mask);

		/* popcnt: every arithmetic flag is defined. */
		s.regs.rbx = v;
		s.regs.rflags = 0x2 | FL_ARITH;
		__asm__("popcnt %2, %0\n\t" FLAGS_TO("%1")
			: "=&r"(want), "=r"(wantfl) : "r"(v) : "cc");
		assert_int_equal(STEP(&s, 0xf3, 0x48, 0x0f, 0xb8, 0xc3),
				 EMU_OK);
		assert_int_equal(s.regs.rax, want);
		assert_int_equal(s.regs.rflags & FL_ARITH, wantfl & FL_ARITH);
		/* lzcnt/tzcnt: CF and ZF defined. */
		if (has_lzcnt) {
			__asm__("lzcnt %2, %0\n\t" FLAGS_TO("%1")
				: "=&r"(want), "=r"(wantfl) : "r"(v) : "cc");
			assert_int_equal(STEP(&s, 0xf3, 0x48, 0x0f, 0xbd,
					      0xc3), EMU_OK);
			assert_int_equal(s.regs.rax, want);
			assert_int_equal(s.regs.rflags & (FL_CF | FL_ZF),
					 wantfl & (FL_CF | FL_ZF));
		}
		if (has_bmi1) {
			uint32_t v32 = (uint32_t)v, w32;

			__asm__("tzcnt %2, %0\n\t" FLAGS_TO("%1")
				: "=&r"(w32), "=r"(wantfl) : "r"(v32) : "cc");
			assert_int_equal(STEP(&s, 0xf3, 0x0f, 0xbc, 0xc3),
					 EMU_OK);
			assert_int_equal(s.regs.rax, w32);
			assert_int_equal(s.regs.rflags & (FL_CF | FL_ZF),
					 wantfl & (FL_CF | FL_ZF));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup(fn, setup)
		T(test_int3),
		T(test_ud),
		T(test_fwait),
		T(test_fninit_fnclex),
		T(test_fldcw_fnstcw_fnstsw),
		T(test_emms),
		T(test_ldmxcsr_stmxcsr),
		T(test_fxsave_fxrstor64),
		T(test_fxsave_fxrstor32_format),
		T(test_fxsave_faults),
		T(test_xsave_xrstor),
		T(test_xrstor_init_and_compacted),
		T(test_xsave_faults),
		T(test_clac_stac),
		T(test_verr_verw),
		T(test_iret_prot32),
		T(test_gdt_wraps_at_4g),
		T(test_iret_refused),
		T(test_iret_pvm_frame_quirk),
		T(test_cmpxchg16b),
		T(test_cmpxchg16b_atomic_op),
		T(test_cmpxchg8b),
		T(test_lock_invalid),
		T(test_popcnt),
		T(test_lzcnt_tzcnt),
		T(test_bsf_bsr),
		T(test_bswap),
		T(test_movd_movq_gpr),
		T(test_movq_xmm),
		T(test_movdqa_movdqu),
		T(test_movaps_family),
		T(test_movss_movsd),
		T(test_movlps_movhps),
		T(test_movnti),
		T(test_pmovmskb_pextrw_pinsrw),
		T(test_rip_relative),
		T(test_sib_and_segments),
		T(test_canonical),
		T(test_sse_availability),
		T(test_nops),
		T(test_mem_fault_nothing_changed),
		T(test_truncated),
		T(test_unknown),
		T(test_too_long),
		T(test_mode32),
		T(test_mode16),
		T(test_dirty_and_exception_fields),
		T(test_describe),
		T(test_sse_against_host),
		T(test_gpr_ops_against_host),
		T(test_iret_against_host),
		T(test_kernel_simd_stream),
#undef T
	};

	return cmocka_run_group_tests_name("emulate", tests, NULL, NULL);
}
