/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the x86 instruction emulator (vmm-core/x86/
 * emulate.c). On PVM hosts a guest kernel chooses every byte emu_step
 * decodes and every register it sees, so the input is a whole vCPU state,
 * the instruction bytes at RIP and a small guest memory:
 *
 *   offset  size  field
 *        0     1  mode: bits 0-2 mode (% 6: real, prot16, prot32, long64,
 *                 compat32, compat16), 3-4 CPL, 5 SS.B, 6 CR4.LA57,
 *                 7 give the emulator a cmpxchg op
 *        1     1  ctl: bits 0-1 steps - 1, 2 CR0.EM, 3 CR0.MP, 4 CR0.TS,
 *                 5 clear CR4.OSFXSR, 6 CR4.OSXSAVE, 7 first page read-only
 *        2     1  where guest memory is (% 6, see fz_bases; 5: custom)
 *        3     1  bits 0-3 bytes handed to the first emu_step (0: 15),
 *                 4-7 which of ES, SS, DS, FS, GS bases are near memory
 *        4     8  custom memory base
 *       12     2  RIP's offset in guest memory
 *       14     2  which GPRs are near memory (bit n: register n)
 *       16     2  where the memory fill goes
 *       18     2  GDT base (offset in memory), 20: GDT limit
 *       22     2  CS selector (its RPL is replaced by the CPL)
 *       24     4  CS base, 28: CS limit
 *       32    20  ES, SS, DS, FS, GS base (near: memory + signed 16 bits)
 *       52     4  RFLAGS (reserved bits fixed as the CPU keeps them)
 *       56   128  RAX..R15, in encoding order (near: memory - 0x800 +
 *                 14 bits)
 *      184     2  FCW, 186: FSW, 188: FTW (1 byte), 189: unused
 *      190     2  FOP, 192: MXCSR (4), 196: FIP (8), 204: FDP (8)
 *      212     2  XCR0 (0: "not known"), 214: XSS
 *      216    64  XMM seed: XMM n and ST n are built from it
 *      280    15  instruction bytes, placed at RIP
 *      295     -  memory fill, copied to guest memory at its offset
 *
 * The memory is three pages at a chosen linear address; accesses that
 * leave it fail with -EFAULT (and write nothing), so the fault paths run,
 * including accesses that straddle its ends. Up to four steps run in a row
 * on the same state, the later ones on the bytes at the new RIP. After
 * each step the harness checks what emulate.h promises, for any input.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "x86/emulate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_PAGE		4096u
#define FZ_MEM		(3 * FZ_PAGE)
#define FZ_HDR		295
#define FZ_STEPS_MAX	4
/*
 * emulate.h bounds no access by number; the largest operand of the
 * instructions it names is XSAVE's legacy region plus its header.
 */
#define FZ_ACCESS_MAX	576

#define FZ_CR0_PE	(1ULL << 0)
#define FZ_CR0_MP	(1ULL << 1)
#define FZ_CR0_EM	(1ULL << 2)
#define FZ_CR0_TS	(1ULL << 3)
#define FZ_CR0_ET	(1ULL << 4)
#define FZ_CR0_NE	(1ULL << 5)
#define FZ_CR0_PG	(1ULL << 31)
#define FZ_CR4_PAE	(1ULL << 5)
#define FZ_CR4_OSFXSR	(1ULL << 9)
#define FZ_CR4_LA57	(1ULL << 12)
#define FZ_CR4_OSXSAVE	(1ULL << 18)
#define FZ_EFER_LME	(1ULL << 8)
#define FZ_EFER_LMA	(1ULL << 10)

#define FZ_FL_FIXED	(1ULL << 1)
#define FZ_FL_RF	(1ULL << 16)
#define FZ_FL_VM	(1ULL << 17)
/* Bits 3, 5, 15 and 22-63 of RFLAGS read as zero on every CPU. */
#define FZ_FL_RESERVED	(~0x3f7fd7ULL)

enum fz_mode {
	FZ_REAL, FZ_PROT16, FZ_PROT32, FZ_LONG64, FZ_COMPAT32, FZ_COMPAT16,
	FZ_MODE_MAX,
};

/* Where the three pages are: low, above 1 MiB, at each end of a wrap. */
static const uint64_t fz_bases[] = {
	0x0ULL,
	0x100000ULL,
	0x100000000ULL - FZ_MEM,		/* ends at 4 GiB */
	0x800000000000ULL - FZ_MEM,		/* ends at the canonical hole */
	0xffff800000000000ULL,			/* starts after it */
};

/* A global, so that ASan knows exactly where guest memory ends. */
static uint8_t fz_mem[FZ_MEM] __attribute__((aligned(64)));

struct fz_ctx {
	uint64_t base;
	bool ro_first_page;
	unsigned int mode;	/* 16, 32 or 64 */
	bool lma;		/* long mode: 64-bit or compatibility */
	bool la57;
	/* What the ops were asked for, during one step. */
	unsigned int nr_calls;
	unsigned int nr_stores;	/* writes and cmpxchgs that stored */
	unsigned int nr_failed;
	uint64_t last_failed_gva;
	bool last_failed_write;
};

static struct fz_ctx fz;
static uint8_t fz_input_copy[FZ_HDR];

static void fz_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void
fz_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("fuzz_emulate: invariant failed: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static uint64_t
fz_get(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool
fz_canonical(uint64_t la, bool la57)
{
	unsigned int bits = la57 ? 57 : 48;
	uint64_t top = la >> (bits - 1);

	return top == 0 || top == (~0ULL >> (bits - 1));
}

/* Whether [gva, gva + len) lies in guest memory; never overflows. */
static bool
fz_inside(uint64_t gva, size_t len, uint64_t *ret_off)
{
	uint64_t off = gva - fz.base;

	if (gva < fz.base || off > FZ_MEM || len > FZ_MEM - off)
		return false;
	*ret_off = off;
	return true;
}

/* What the emulator may ask of any op: a bounded range it checked. */
static void
fz_check_access(const char *what, uint64_t gva, size_t len)
{
	fz.nr_calls++;
	if (len == 0 || len > FZ_ACCESS_MAX)
		fz_fail("%s of %zu bytes at 0x%llx: length out of 1..%u", what,
			len, (unsigned long long)gva, FZ_ACCESS_MAX);
	if (fz.mode == 64) {
		if (!fz_canonical(gva, fz.la57) ||
		    !fz_canonical(gva + len - 1, fz.la57))
			fz_fail("%s of %zu bytes at 0x%llx: not canonical",
				what, len, (unsigned long long)gva);
	} else if (!fz.lma && gva > 0xffffffffULL) {
		/*
		 * Compatibility mode may read the 64-bit GDT; without long
		 * mode every linear address has 32 bits.
		 */
		fz_fail("%s of %zu bytes at 0x%llx: above 4 GiB without "
			"long mode", what, len, (unsigned long long)gva);
	}
}

static int
fz_failed(uint64_t gva, bool write)
{
	fz.nr_failed++;
	fz.last_failed_gva = gva;
	fz.last_failed_write = write;
	return -EFAULT;
}

static int
fz_read(void *opaque, uint64_t gva, void *buf, size_t len)
{
	uint64_t off;

	(void)opaque;
	fz_check_access("read", gva, len);
	if (!fz_inside(gva, len, &off))
		return fz_failed(gva, false);
	memcpy(buf, fz_mem + off, len);
	return 0;
}

static bool
fz_writable(uint64_t off)
{
	return !fz.ro_first_page || off >= FZ_PAGE;
}

static int
fz_write(void *opaque, uint64_t gva, const void *buf, size_t len)
{
	uint64_t off;

	(void)opaque;
	fz_check_access("write", gva, len);
	if (!fz_inside(gva, len, &off) || !fz_writable(off))
		return fz_failed(gva, true);
	memcpy(fz_mem + off, buf, len);
	fz.nr_stores++;
	return 0;
}

static int
fz_cmpxchg(void *opaque, uint64_t gva, void *expected, const void *desired,
	   size_t len)
{
	uint64_t off;

	(void)opaque;
	fz_check_access("cmpxchg", gva, len);
	if (len != 8 && len != 16)
		fz_fail("cmpxchg of %zu bytes: only 8 or 16 exist", len);
	if (len == 16 && (gva & 15))
		fz_fail("cmpxchg16b at 0x%llx: not 16-byte aligned",
			(unsigned long long)gva);
	if (!fz_inside(gva, len, &off) || !fz_writable(off))
		return fz_failed(gva, true);
	if (memcmp(fz_mem + off, expected, len) != 0) {
		memcpy(expected, fz_mem + off, len);
		return 1;
	}
	memcpy(fz_mem + off, desired, len);
	fz.nr_stores++;
	return 0;
}

static const struct emu_mem_ops fz_ops = {
	.read = fz_read, .write = fz_write, .cmpxchg = fz_cmpxchg,
};
static const struct emu_mem_ops fz_ops_nocx = {
	.read = fz_read, .write = fz_write,
};

static void
fz_segment(struct kvm_segment *seg, uint64_t base, uint16_t sel, bool db,
	   bool l, unsigned int dpl, uint8_t type)
{
	memset(seg, 0, sizeof(*seg));
	seg->base = base;
	seg->limit = 0xffffffff;
	seg->selector = sel;
	seg->type = type;
	seg->present = 1;
	seg->dpl = (uint8_t)dpl;
	seg->db = db;
	seg->s = 1;
	seg->l = l;
	seg->g = 1;
}

/* A segment base: raw, or memory's base plus a signed 16-bit offset. */
static uint64_t
fz_seg_base(const uint8_t *p, bool near)
{
	uint32_t v = (uint32_t)fz_get(p, 4);

	if (near) {
		uint64_t b = fz.base + (uint64_t)(int64_t)(int16_t)v;

		/* Outside 64-bit mode a segment base has 32 bits. */
		return fz.mode == 64 ? b : b & 0xffffffffULL;
	}
	return v;
}

/* Outside 64-bit mode 32 bits; in it, 48 bits sign-extended. */
static uint64_t
fz_far_base(const uint8_t *p, bool l)
{
	uint64_t v = fz_get(p, 4);

	if (!l)
		return v;
	return (uint64_t)((int64_t)(v << 32) >> 16);
}

static __u64 *
fz_gpr(struct kvm_regs *r, unsigned int n)
{
	__u64 *const order[16] = {
		&r->rax, &r->rcx, &r->rdx, &r->rbx, &r->rsp, &r->rbp,
		&r->rsi, &r->rdi, &r->r8, &r->r9, &r->r10, &r->r11,
		&r->r12, &r->r13, &r->r14, &r->r15,
	};

	return order[n & 15];
}

/* Builds the vCPU from the header; returns the emulator's mode. */
static unsigned int
fz_build(struct emu_vcpu *s, const uint8_t *h)
{
	unsigned int m = (h[0] & 7) % FZ_MODE_MAX;
	unsigned int cpl = (h[0] >> 3) & 3;
	bool ssdb = h[0] & 0x20, la57 = h[0] & 0x40;
	uint8_t ctl = h[1];
	uint16_t gprnear = (uint16_t)fz_get(h + 14, 2);
	uint8_t segnear = h[3] >> 4;
	bool lma = m == FZ_LONG64 || m == FZ_COMPAT32 || m == FZ_COMPAT16;
	bool l = m == FZ_LONG64;
	bool db = m == FZ_PROT32 || m == FZ_COMPAT32;
	struct kvm_sregs *sr = &s->sregs;
	const uint8_t *seed = h + 216;
	uint16_t cs_sel;

	memset(s, 0, sizeof(*s));
	if (m == FZ_REAL)
		cpl = 0;
	if (h[2] % 6 < 5)
		fz.base = fz_bases[h[2] % 6];
	else
		fz.base = fz_get(h + 4, 8);
	if (!lma || !l)
		fz.base &= 0xffffffffULL;
	fz.mode = m == FZ_LONG64 ? 64 : db ? 32 : 16;
	fz.lma = lma;
	fz.la57 = l && la57;
	fz.ro_first_page = ctl & 0x80;

	sr->cr0 = FZ_CR0_ET | FZ_CR0_NE;
	if (m != FZ_REAL)
		sr->cr0 |= FZ_CR0_PE;
	if (lma)
		sr->cr0 |= FZ_CR0_PG;
	if (ctl & 0x04)
		sr->cr0 |= FZ_CR0_EM;
	if (ctl & 0x08)
		sr->cr0 |= FZ_CR0_MP;
	if (ctl & 0x10)
		sr->cr0 |= FZ_CR0_TS;
	if (!(ctl & 0x20))
		sr->cr4 |= FZ_CR4_OSFXSR;
	if (ctl & 0x40)
		sr->cr4 |= FZ_CR4_OSXSAVE;
	if (lma) {
		sr->cr4 |= FZ_CR4_PAE;
		sr->efer = FZ_EFER_LME | FZ_EFER_LMA;
		if (la57)
			sr->cr4 |= FZ_CR4_LA57;
	}

	cs_sel = (uint16_t)((fz_get(h + 22, 2) & ~3ULL) | cpl);
	fz_segment(&sr->cs, fz_get(h + 24, 4), cs_sel, db, l, cpl, 0xb);
	sr->cs.limit = (uint32_t)fz_get(h + 28, 4);
	if (l)
		sr->cs.base = 0;
	fz_segment(&sr->es, fz_seg_base(h + 32, segnear & 1), 0, true, false,
		   cpl, 3);
	fz_segment(&sr->ss, fz_seg_base(h + 36, segnear & 2), 0, ssdb, false,
		   cpl, 3);
	fz_segment(&sr->ds, fz_seg_base(h + 40, segnear & 4), 0, true, false,
		   cpl, 3);
	/* FS and GS may be anywhere canonical in 64-bit mode (wrfsbase). */
	fz_segment(&sr->fs, (segnear & 8) ? fz_seg_base(h + 44, true) :
		   fz_far_base(h + 44, l), 0, true, false, cpl, 3);
	fz_segment(&sr->gs, (segnear & 8) ? fz_seg_base(h + 48, true) :
		   fz_far_base(h + 48, l), 0, true, false, cpl, 3);
	if (l) {
		sr->es.base = sr->ss.base = sr->ds.base = 0;
		/* The GS base is the kernel's per-CPU area, near memory. */
		if (segnear & 8)
			sr->gs.base = fz.base + (fz_get(h + 48, 2) & 0x3fff);
	}
	sr->gdt.base = fz.base + fz_get(h + 18, 2) % FZ_MEM;
	/* LGDT without long mode loads a 32-bit base. */
	if (!lma)
		sr->gdt.base &= 0xffffffffULL;
	sr->gdt.limit = (uint16_t)fz_get(h + 20, 2);

	s->regs.rflags = (fz_get(h + 52, 4) & ~FZ_FL_RESERVED) | FZ_FL_FIXED;
	/* Virtual-8086 mode exists in 32-bit protected mode only. */
	if (m != FZ_PROT32 && m != FZ_PROT16)
		s->regs.rflags &= ~FZ_FL_VM;
	for (unsigned int n = 0; n < 16; n++) {
		uint64_t v = fz_get(h + 56 + 8 * n, 8);

		if (gprnear & (1u << n))
			v = fz.base - 0x800 + (v & 0x3fff);
		*fz_gpr(&s->regs, n) = v;
	}

	s->fpu.fcw = (uint16_t)fz_get(h + 184, 2);
	s->fpu.fsw = (uint16_t)fz_get(h + 186, 2);
	s->fpu.ftwx = h[188];
	s->fpu.last_opcode = (uint16_t)(fz_get(h + 190, 2) & 0x7ff);
	/* KVM_SET_FPU refuses reserved MXCSR bits; a guest never has them. */
	s->fpu.mxcsr = (uint32_t)fz_get(h + 192, 4) & 0xffff;
	s->fpu.last_ip = fz_get(h + 196, 8);
	s->fpu.last_dp = fz_get(h + 204, 8);
	for (unsigned int n = 0; n < 16; n++) {
		memcpy(s->fpu.xmm[n], seed + 16 * (n & 3), 16);
		s->fpu.xmm[n][0] ^= (uint8_t)n;
	}
	for (unsigned int n = 0; n < 8; n++) {
		memcpy(s->fpu.fpr[n], seed + 16 * (n & 3), 10);
		s->fpu.fpr[n][9] ^= (uint8_t)n;
	}
	s->xcr0 = fz_get(h + 212, 2);
	s->xss = fz_get(h + 214, 2);
	return fz.mode;
}

static uint64_t
fz_ipmask(const struct emu_vcpu *s)
{
	if (fz.mode == 64)
		return ~0ULL;
	return s->sregs.cs.db ? 0xffffffffULL : 0xffffULL;
}

/* The linear address of RIP: CS's base counts outside 64-bit mode. */
static uint64_t
fz_rip_la(const struct emu_vcpu *s)
{
	if (fz.mode == 64)
		return s->regs.rip;
	return (s->sregs.cs.base + s->regs.rip) & 0xffffffffULL;
}

/*
 * The opcode byte after the prefixes, and the byte after it, enough to tell
 * the control transfers (iret) and the traps (int3, int n) from the rest.
 */
static bool
fz_opcode(const uint8_t *insn, size_t len, uint8_t *ret_op,
	  int *ret_next)
{
	for (size_t i = 0; i < len && i < EMU_MAX_INSN_LEN; i++) {
		uint8_t b = insn[i];

		switch (b) {
		case 0x66: case 0x67: case 0xf2: case 0xf3: case 0xf0:
		case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64:
		case 0x65:
			continue;
		default:
			break;
		}
		if (fz.mode == 64 && (b & 0xf0) == 0x40)
			continue;
		*ret_op = b;
		*ret_next = i + 1 < len ? insn[i + 1] : -1;
		return true;
	}
	return false;
}

static void
fz_check_rip_advanced(const struct emu_vcpu *old, const struct emu_vcpu *s,
		      size_t len, const char *what)
{
	uint64_t mask = fz_ipmask(old);
	uint64_t k = (s->regs.rip - old->regs.rip) & mask;

	if (k < 1 || k > len || s->regs.rip != ((old->regs.rip + k) & mask))
		fz_fail("%s: RIP 0x%llx -> 0x%llx, not 1..%zu bytes on", what,
			(unsigned long long)old->regs.rip,
			(unsigned long long)s->regs.rip, len);
	if (s->regs.rflags & FZ_FL_RF)
		fz_fail("%s: RF still set after a completed instruction", what);
}

static bool
fz_regs_equal(const struct emu_vcpu *a, const struct emu_vcpu *b)
{
	return memcmp(&a->regs, &b->regs, sizeof(a->regs)) == 0;
}

static bool
fz_fpu_equal(const struct emu_vcpu *a, const struct emu_vcpu *b)
{
	return memcmp(&a->fpu, &b->fpu, sizeof(a->fpu)) == 0;
}

/* Nothing the caller would write back differs from before the step. */
static void
fz_check_unchanged(const struct emu_vcpu *old, const struct emu_vcpu *s,
		   const uint8_t *mem_before, const char *what)
{
	if (!fz_regs_equal(old, s))
		fz_fail("%s: registers changed", what);
	if (!fz_fpu_equal(old, s))
		fz_fail("%s: FPU state changed", what);
	if (s->regs_dirty != old->regs_dirty || s->fpu_dirty != old->fpu_dirty)
		fz_fail("%s: dirty flags changed", what);
	if (memcmp(mem_before, fz_mem, FZ_MEM) != 0 || fz.nr_stores)
		fz_fail("%s: guest memory written", what);
}

/* What holds after any step, whatever it returned. */
static void
fz_check_always(const struct emu_vcpu *old, const struct emu_vcpu *s,
		enum emu_result r)
{
	if ((unsigned int)r >= EMU_RESULT_MAX)
		fz_fail("result %d is not an enum emu_result", (int)r);
	if (strcmp(emu_result_name(r), "?") == 0)
		fz_fail("result %d has no name", (int)r);
	if (memcmp(&old->sregs, &s->sregs, sizeof(s->sregs)) != 0)
		fz_fail("sregs changed (emulate.h: read, never changed)");
	if (old->xcr0 != s->xcr0 || old->xss != s->xss)
		fz_fail("xcr0 or xss changed");
	if ((old->regs_dirty && !s->regs_dirty) ||
	    (old->fpu_dirty && !s->fpu_dirty))
		fz_fail("a dirty flag was cleared (emu_step only sets them)");
	if (!fz_regs_equal(old, s) && !s->regs_dirty)
		fz_fail("registers changed without regs_dirty");
	if (!fz_fpu_equal(old, s) && !s->fpu_dirty)
		fz_fail("FPU state changed without fpu_dirty");
	if (r != EMU_EXCEPTION && s->exception != -1)
		fz_fail("%s with exception %d, not -1", emu_result_name(r),
			s->exception);
	if (fz.nr_stores > 1)
		fz_fail("%u stores in one instruction", fz.nr_stores);
	if (s->regs.rflags & FZ_FL_RESERVED || !(s->regs.rflags & FZ_FL_FIXED))
		fz_fail("RFLAGS 0x%llx: reserved bits wrong",
			(unsigned long long)s->regs.rflags);
	if (s->fpu.mxcsr & ~0xffffu)
		fz_fail("MXCSR 0x%x: reserved bits set", s->fpu.mxcsr);
	if (fz.mode != 64) {
		struct kvm_regs a = old->regs, b = s->regs;

		/* R8-R15 and XMM8-15 cannot be named outside 64-bit mode. */
		for (unsigned int n = 8; n < 16; n++) {
			if (*fz_gpr(&a, n) != *fz_gpr(&b, n))
				fz_fail("R%u changed outside 64-bit mode", n);
			if (memcmp(s->fpu.xmm[n], old->fpu.xmm[n], 16))
				fz_fail("XMM%u changed outside 64-bit mode",
					n);
		}
	}
}

/*
 * One step and its checks. Returns whether the caller may run the next
 * instruction (the step completed: EMU_OK or a trap).
 */
static bool
fz_step(struct emu_vcpu *s, const uint8_t *insn, size_t len, bool use_cx)
{
	static uint8_t mem_before[FZ_MEM];
	struct emu_vcpu old = *s;
	enum emu_result r;
	uint8_t op = 0;
	int next = -1;
	bool known = fz_opcode(insn, len, &op, &next);
	char text[96];
	size_t textlen = 1 + (insn[0] ^ (len ? insn[len - 1] : 0)) % 96;
	int d;

	/* The log line the caller writes for an instruction it cannot do. */
	d = emu_describe(insn, len, text, textlen);
	if (d < 0 || d > EMU_MAX_INSN_LEN || (size_t)d > len ||
	    strnlen(text, textlen) >= textlen)
		fz_fail("emu_describe: %d, or an unterminated buffer", d);

	memcpy(mem_before, fz_mem, FZ_MEM);
	fz.nr_calls = fz.nr_stores = fz.nr_failed = 0;
	s->exception = 0x5a5a;
	old.exception = 0x5a5a;
	r = emu_step(s, insn, len, use_cx ? &fz_ops : &fz_ops_nocx, NULL);
	fz_check_always(&old, s, r);

	switch (r) {
	case EMU_OK:
		if (!s->regs_dirty)
			fz_fail("EMU_OK without regs_dirty");
		/* iret is the only control transfer in the tables. */
		if (!known || op != 0xcf)
			fz_check_rip_advanced(&old, s, len, "EMU_OK");
		else if (fz.mode != 64 && s->regs.rip > 0xffffffffULL)
			fz_fail("iret: RIP 0x%llx past 32 bits",
				(unsigned long long)s->regs.rip);
		return true;
	case EMU_UNHANDLED:
		fz_check_unchanged(&old, s, mem_before, "EMU_UNHANDLED");
		return false;
	case EMU_MEM_FAULT:
		fz_check_unchanged(&old, s, mem_before, "EMU_MEM_FAULT");
		if (!fz.nr_failed)
			fz_fail("EMU_MEM_FAULT, but no access failed");
		if (s->fault_gva != fz.last_failed_gva ||
		    s->fault_write != fz.last_failed_write)
			fz_fail("EMU_MEM_FAULT at 0x%llx (%s), the failed "
				"access was at 0x%llx (%s)",
				(unsigned long long)s->fault_gva,
				s->fault_write ? "write" : "read",
				(unsigned long long)fz.last_failed_gva,
				fz.last_failed_write ? "write" : "read");
		return false;
	case EMU_EXCEPTION:
		break;
	default:
		fz_fail("result %d", (int)r);
	}

	if (s->exception < 0 || s->exception > 31)
		fz_fail("exception vector %d", s->exception);
	if (s->exception_has_error && s->error_code > 0xffff)
		fz_fail("vector %d with error code 0x%x past 16 bits",
			s->exception, s->error_code);
	if (fz_regs_equal(&old, s) && fz_fpu_equal(&old, s) &&
	    s->regs_dirty == old.regs_dirty) {
		/* A fault: one of the vectors emulate.h lists. */
		switch (s->exception) {
		case EMU_VEC_UD: case EMU_VEC_NM: case EMU_VEC_MF:
			if (s->exception_has_error)
				fz_fail("fault %d with an error code",
					s->exception);
			break;
		case EMU_VEC_SS: case EMU_VEC_GP:
			if (!s->exception_has_error)
				fz_fail("fault %d without an error code",
					s->exception);
			break;
		default:
			fz_fail("fault with vector %d", s->exception);
		}
		fz_check_unchanged(&old, s, mem_before, "a fault");
		return false;
	}
	/* A trap: int3 or int n, RIP past it, nothing else done. */
	if (!known || (op != 0xcc && op != 0xcd))
		fz_fail("trap %d from opcode 0x%02x", s->exception, op);
	if (op == 0xcc ? s->exception != EMU_VEC_BP : s->exception != next)
		fz_fail("trap %d from %02x %d", s->exception, op, next);
	if (s->exception_has_error)
		fz_fail("trap %d with an error code", s->exception);
	fz_check_rip_advanced(&old, s, len, "a trap");
	if (!fz_fpu_equal(&old, s) || memcmp(mem_before, fz_mem, FZ_MEM))
		fz_fail("a trap changed FPU state or memory");
	return true;
}

/* Up to 15 bytes at RIP, fewer where guest memory ends. */
static size_t
fz_fetch(const struct emu_vcpu *s, uint8_t *insn)
{
	uint64_t off;
	size_t n = EMU_MAX_INSN_LEN;

	if (!fz_inside(fz_rip_la(s), 1, &off))
		return 0;
	if (n > FZ_MEM - off)
		n = FZ_MEM - off;
	memcpy(insn, fz_mem + off, n);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *h = fz_input_copy;
	struct emu_vcpu s;
	uint8_t insn[EMU_MAX_INSN_LEN];
	unsigned int steps;
	uint64_t fill, rip_off, la, off;
	size_t len;
	bool use_cx;

	if (size < 1)
		return 0;
	/* A short input is a header with zeros after it. */
	memset(fz_input_copy, 0, sizeof(fz_input_copy));
	memcpy(fz_input_copy, data, size < FZ_HDR ? size : FZ_HDR);
	fz_build(&s, h);
	steps = 1 + (h[1] & 3);
	use_cx = h[0] & 0x80;

	memset(fz_mem, 0, sizeof(fz_mem));
	if (size > FZ_HDR) {
		size_t n = size - FZ_HDR;

		fill = fz_get(h + 16, 2) % FZ_MEM;
		if (n > FZ_MEM - fill)
			n = FZ_MEM - fill;
		memcpy(fz_mem + fill, data + FZ_HDR, n);
	}

	/* RIP points at its offset in memory; the bytes go there too. */
	rip_off = fz_get(h + 12, 2) % FZ_MEM;
	la = fz.base + rip_off;
	s.regs.rip = fz.mode == 64 ? la :
		     (la - s.sregs.cs.base) & fz_ipmask(&s);
	if (fz_inside(fz_rip_la(&s), 1, &off)) {
		len = EMU_MAX_INSN_LEN;
		if (len > FZ_MEM - off)
			len = FZ_MEM - off;
		memcpy(fz_mem + off, h + 280, len);
	}
	/* The first step gets the input's bytes, as many as it says. */
	memcpy(insn, h + 280, EMU_MAX_INSN_LEN);
	len = h[3] & 15 ? h[3] & 15 : EMU_MAX_INSN_LEN;

	for (unsigned int i = 0; i < steps; i++) {
		if (!fz_step(&s, insn, len, use_cx))
			break;
		len = fz_fetch(&s, insn);
		if (!len)
			break;
	}
	return 0;
}
