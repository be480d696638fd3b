/* SPDX-License-Identifier: MIT */
/*
 * The instruction emulator of emulate.h.
 *
 * Decoding is driven by one table of instruction rows keyed by opcode map
 * (one-byte, 0f, 0f38, 0f3a), opcode and mandatory prefix (none, 66, f3,
 * f2, or "any" for instructions where 66 is an operand-size prefix), plus
 * what the ModRM byte must look like (register or memory form, a /digit,
 * or an exact byte). A row names the function that carries the instruction
 * out; the many SSE rows that compute xmm = f(xmm, xmm/m128) share one
 * function and differ only in the lane operation they pass.
 *
 * Execution works on copies of the registers and of the FPU state, and
 * stages at most one memory write. Nothing reaches the caller's state or
 * guest memory until the instruction has run to the end without a fault:
 * then the staged write is done, and only when it succeeds are the copies
 * committed. So a fault at any point leaves the vCPU as it was.
 */
#include "x86/emulate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CR0_PE		(1ULL << 0)
#define CR0_MP		(1ULL << 1)
#define CR0_EM		(1ULL << 2)
#define CR0_TS		(1ULL << 3)
#define CR4_OSFXSR	(1ULL << 9)
#define CR4_LA57	(1ULL << 12)
#define CR4_OSXSAVE	(1ULL << 18)
#define EFER_LMA	(1ULL << 10)

#define RFLAGS_CF	(1ULL << 0)
#define RFLAGS_FIXED	(1ULL << 1)	/* reads as 1 */
#define RFLAGS_PF	(1ULL << 2)
#define RFLAGS_AF	(1ULL << 4)
#define RFLAGS_ZF	(1ULL << 6)
#define RFLAGS_SF	(1ULL << 7)
#define RFLAGS_TF	(1ULL << 8)
#define RFLAGS_IF	(1ULL << 9)
#define RFLAGS_DF	(1ULL << 10)
#define RFLAGS_OF	(1ULL << 11)
#define RFLAGS_IOPL	(3ULL << 12)
#define RFLAGS_NT	(1ULL << 14)
#define RFLAGS_RF	(1ULL << 16)
#define RFLAGS_VM	(1ULL << 17)
#define RFLAGS_AC	(1ULL << 18)
#define RFLAGS_VIF	(1ULL << 19)
#define RFLAGS_VIP	(1ULL << 20)
#define RFLAGS_ID	(1ULL << 21)
#define RFLAGS_ARITH	(RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | \
			 RFLAGS_SF | RFLAGS_OF)

#define REX_B		0x1
#define REX_X		0x2
#define REX_R		0x4
#define REX_W		0x8

/* x87 status word: the exception flags, stack fault, summary and busy. */
#define FSW_EXC		0x003fu
#define FSW_CLEAR	0x80ffu
#define FSW_ES		0x0080u
#define FSW_B		0x8000u
#define FCW_INIT	0x037fu
/*
 * The MXCSR bits this CPU accepts. Intel and AMD parts with DAZ report
 * 0xffff in FXSAVE's MXCSR_MASK; AMD's misaligned-SSE bit 17 is left out,
 * so a guest sees the stricter common mask.
 */
#define MXCSR_MASK	0x0000ffffu
#define MXCSR_INIT	0x1f80u

#define XFEATURE_X87	(1ULL << 0)
#define XFEATURE_SSE	(1ULL << 1)
#define XFEATURE_AVX	(1ULL << 2)
#define XFEATURES_HELD	(XFEATURE_X87 | XFEATURE_SSE)
#define XCOMP_BV_COMPACTED (1ULL << 63)

/* Layout of the FXSAVE image and of the XSAVE header that follows it. */
#define FX_FCW		0
#define FX_FSW		2
#define FX_FTW		4
#define FX_FOP		6
#define FX_FIP		8
#define FX_FDP		16
#define FX_MXCSR	24
#define FX_MXCSR_MASK	28
#define FX_ST		32
#define FX_XMM		160
#define FX_SIZE		512
#define XSAVE_XSTATE_BV	512
#define XSAVE_XCOMP_BV	520
#define XSAVE_LEGACY_SIZE 576

enum emu_map { MAP_1B, MAP_0F, MAP_0F38, MAP_0F3A };

/* The mandatory prefix a row requires; PFX_ANY: 66 is operand size. */
enum emu_pfx { PFX_NP, PFX_66, PFX_F3, PFX_F2, PFX_ANY };

/* Segment registers in encoding order. */
enum emu_seg { SEG_ES, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, SEG_NONE };

/* Which CR0/CR4 conditions make an instruction fault before it runs. */
enum emu_chk {
	CHK_NONE,
	CHK_SSE,	/* EM or !OSFXSR: #UD; TS: #NM */
	CHK_MMX,	/* EM: #UD; TS: #NM; pending x87 exception: #MF */
	CHK_X87,	/* EM or TS: #NM */
	CHK_WAIT,	/* TS and MP: #NM */
	CHK_FXSR,	/* EM or TS: #NM */
	CHK_XSAVE,	/* !OSXSAVE: #UD; TS: #NM */
};

/* Row flags. */
#define F_MODRM		(1u << 0)	/* a ModRM byte follows the opcode */
#define F_MEM		(1u << 1)	/* ModRM must name memory */
#define F_REG		(1u << 2)	/* ModRM must name a register */
#define F_REGOP		(1u << 3)	/* ModRM.reg must equal ext (/digit) */
#define F_FIXED		(1u << 4)	/* the ModRM byte must equal ext */
#define F_IMM8		(1u << 5)	/* an 8-bit immediate follows */
#define F_LOCK		(1u << 6)	/* LOCK allowed (memory form only) */
#define F_OPREG		(1u << 7)	/* opcode bits 2:0 name a register */
#define F_UNALIGNED	(1u << 8)	/* m128 needs no 16-byte alignment */
#define F_W		(1u << 9)	/* REX.W must be set */
#define F_NOW		(1u << 10)	/* REX.W must be clear */

#define WRITE_MAX	XSAVE_LEGACY_SIZE

union emu_xmm {
	uint8_t b[16];
	int8_t sb[16];
	uint16_t w[8];
	int16_t sw[8];
	uint32_t d[4];
	int32_t sd[4];
	uint64_t q[2];
	int64_t sq[2];
};

struct emu_ctx;
typedef enum emu_result emu_exec_fn(struct emu_ctx *c);
/* A lane operation: *d = f(*d, *s, imm). */
typedef void emu_vec_fn(union emu_xmm *d, const union emu_xmm *s,
			uint8_t imm);

struct emu_op {
	uint8_t map;
	uint8_t opcode;
	uint8_t pfx;
	uint8_t ext;		/* /digit or the whole ModRM byte */
	uint16_t flags;
	uint8_t chk;
	const char *name;
	/*
	 * Operands for emu_describe, comma separated: V xmm (ModRM.reg),
	 * U xmm (ModRM.rm), W xmm or memory (ModRM.rm), G general register
	 * (ModRM.reg), E general register or memory (ModRM.rm), M memory,
	 * O general register in the opcode, I imm8. G and E take a size
	 * suffix: d 32-bit, y 32 or 64 (REX.W), none: operand size. Anything
	 * else is printed as it is.
	 */
	const char *fmt;
	emu_exec_fn *exec;
	emu_vec_fn *vec;
};

/* One decoded instruction. reg and rm include their REX bits. */
struct emu_insn {
	const struct emu_op *op;
	unsigned int len;
	unsigned int mode;	/* 16, 32 or 64 */
	unsigned int opsize;	/* bytes: 2, 4 or 8 */
	unsigned int addrsize;	/* bytes: 2, 4 or 8 */
	uint8_t rex;
	uint8_t pfx;		/* enum emu_pfx, never PFX_ANY */
	bool has66;
	bool has67;
	bool lock;
	uint8_t seg;		/* override, or SEG_NONE */
	uint8_t map;
	uint8_t opcode;
	uint8_t modrm;
	uint8_t mod;
	uint8_t reg;
	uint8_t rm;
	bool mem;		/* ModRM names memory */
	int base;		/* general register, or -1 */
	int index;		/* general register, or -1 */
	unsigned int scale;
	int64_t disp;
	bool riprel;
	uint8_t imm;
};

struct emu_ctx {
	const struct emu_vcpu *s;
	const struct kvm_sregs *sregs;
	const struct emu_mem_ops *ops;
	void *opaque;
	struct emu_insn in;
	/* Working copies, committed only on success. */
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	bool fpu_changed;
	unsigned int cpl;
	uint64_t la;		/* linear address of the memory operand */
	uint8_t la_seg;		/* its segment, for #SS vs #GP */
	/* The one staged memory write. */
	uint64_t wr_gva;
	size_t wr_len;
	uint8_t wr_buf[WRITE_MAX];
	/* What to report. */
	int vector;
	bool has_error;
	uint32_t error_code;
	bool trap;		/* the exception comes after the instruction */
	bool branched;		/* the insn set regs.rip and RF itself */
	uint64_t fault_gva;
	bool fault_write;
};

/* Little-endian accessors for memory images. */

static uint16_t
get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void
put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static void
put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint64_t
size_mask(unsigned int bytes)
{
	return bytes >= 8 ? ~0ULL : (1ULL << (bytes * 8)) - 1;
}

/* Machine state helpers. */

static unsigned int
emu_mode(const struct kvm_sregs *sr)
{
	if (!(sr->cr0 & CR0_PE))
		return 16;
	if ((sr->efer & EFER_LMA) && sr->cs.l)
		return 64;
	return sr->cs.db ? 32 : 16;
}

static unsigned int
emu_cpl(const struct kvm_sregs *sr, uint64_t rflags)
{
	if (!(sr->cr0 & CR0_PE))
		return 0;
	if (rflags & RFLAGS_VM)
		return 3;
	/* CS.RPL is the current privilege level by definition. */
	return sr->cs.selector & 3;
}

/* kvm_regs keeps its registers in its own order, not the encoding's. */
static __u64 *
gpr_ptr(struct kvm_regs *r, unsigned int n)
{
	switch (n & 15) {
	case 0: return &r->rax;
	case 1: return &r->rcx;
	case 2: return &r->rdx;
	case 3: return &r->rbx;
	case 4: return &r->rsp;
	case 5: return &r->rbp;
	case 6: return &r->rsi;
	case 7: return &r->rdi;
	case 8: return &r->r8;
	case 9: return &r->r9;
	case 10: return &r->r10;
	case 11: return &r->r11;
	case 12: return &r->r12;
	case 13: return &r->r13;
	case 14: return &r->r14;
	default: return &r->r15;
	}
}

static uint64_t
gpr_get(struct emu_ctx *c, unsigned int n, unsigned int size)
{
	return *gpr_ptr(&c->regs, n) & size_mask(size);
}

/* Writes as the hardware does: 32-bit results zero-extend, 16-bit merge. */
static void
gpr_set(struct emu_ctx *c, unsigned int n, unsigned int size, uint64_t v)
{
	__u64 *p = gpr_ptr(&c->regs, n);

	if (size == 2)
		*p = (*p & ~0xffffULL) | (v & 0xffff);
	else
		*p = v & size_mask(size);
}

static void
xmm_get(const struct emu_ctx *c, unsigned int n, union emu_xmm *v)
{
	memcpy(v, c->fpu.xmm[n & 15], sizeof(*v));
}

static void
xmm_set(struct emu_ctx *c, unsigned int n, const union emu_xmm *v)
{
	memcpy(c->fpu.xmm[n & 15], v, sizeof(*v));
	c->fpu_changed = true;
}

static void
flags_update(struct emu_ctx *c, uint64_t clear, uint64_t set)
{
	c->regs.rflags = (c->regs.rflags & ~clear) | set;
}

/* Exceptions. */

static enum emu_result
emu_fault(struct emu_ctx *c, int vector)
{
	c->vector = vector;
	c->has_error = false;
	c->error_code = 0;
	c->trap = false;
	return EMU_EXCEPTION;
}

static enum emu_result
emu_fault_err(struct emu_ctx *c, int vector, uint32_t code)
{
	emu_fault(c, vector);
	c->has_error = true;
	c->error_code = code;
	return EMU_EXCEPTION;
}

static enum emu_result
emu_gp0(struct emu_ctx *c)
{
	return emu_fault_err(c, EMU_VEC_GP, 0);
}

/* A trap: reported after the instruction, with RIP past it. */
static enum emu_result
emu_trap(struct emu_ctx *c, int vector)
{
	emu_fault(c, vector);
	c->trap = true;
	return EMU_EXCEPTION;
}

/* Memory. */

static bool
canonical(const struct emu_ctx *c, uint64_t la)
{
	unsigned int bits = (c->sregs->cr4 & CR4_LA57) ? 57 : 48;
	int64_t v = (int64_t)(la << (64 - bits)) >> (64 - bits);

	return (uint64_t)v == la;
}

/* Checks [gva, gva + len) the way the mode requires before any access. */
static enum emu_result
mem_check(struct emu_ctx *c, uint64_t gva, size_t len)
{
	if (c->in.mode != 64)
		return EMU_OK;
	if (!canonical(c, gva) || !canonical(c, gva + len - 1)) {
		if (c->la_seg == SEG_SS)
			return emu_fault_err(c, EMU_VEC_SS, 0);
		return emu_gp0(c);
	}
	return EMU_OK;
}

static enum emu_result
mem_read(struct emu_ctx *c, uint64_t gva, void *buf, size_t len)
{
	enum emu_result r = mem_check(c, gva, len);

	if (r != EMU_OK)
		return r;
	if (!c->ops || !c->ops->read ||
	    c->ops->read(c->opaque, gva, buf, len) != 0) {
		c->fault_gva = gva;
		c->fault_write = false;
		return EMU_MEM_FAULT;
	}
	return EMU_OK;
}

/* Queue a write; it happens only when the whole instruction succeeded. */
static enum emu_result
mem_stage_write(struct emu_ctx *c, uint64_t gva, const void *buf, size_t len)
{
	enum emu_result r = mem_check(c, gva, len);

	if (r != EMU_OK)
		return r;
	/* One write per instruction is all any row needs. */
	if (c->wr_len || len > sizeof(c->wr_buf) || len == 0)
		return EMU_UNHANDLED;
	c->wr_gva = gva;
	c->wr_len = len;
	memcpy(c->wr_buf, buf, len);
	return EMU_OK;
}

static enum emu_result
check_align(struct emu_ctx *c, uint64_t align)
{
	if (c->la & (align - 1))
		return emu_gp0(c);
	return EMU_OK;
}

/* Operand helpers for the ModRM.rm operand. */

static enum emu_result
rm_read(struct emu_ctx *c, void *buf, size_t len)
{
	return mem_read(c, c->la, buf, len);
}

static enum emu_result
rm_write(struct emu_ctx *c, const void *buf, size_t len)
{
	return mem_stage_write(c, c->la, buf, len);
}

/* Reads an r/m general operand of size bytes. */
static enum emu_result
rm_gpr_read(struct emu_ctx *c, unsigned int size, uint64_t *v)
{
	uint8_t buf[8] = { 0 };
	enum emu_result r;

	if (!c->in.mem) {
		*v = gpr_get(c, c->in.rm, size);
		return EMU_OK;
	}
	r = rm_read(c, buf, size);
	if (r != EMU_OK)
		return r;
	*v = get64(buf);
	return EMU_OK;
}

static enum emu_result
rm_gpr_write(struct emu_ctx *c, unsigned int size, uint64_t v)
{
	uint8_t buf[8];

	if (!c->in.mem) {
		gpr_set(c, c->in.rm, size, v);
		return EMU_OK;
	}
	put64(buf, v);
	return rm_write(c, buf, size);
}

/* Reads the xmm/m128 operand; legacy SSE wants m128 16-byte aligned. */
static enum emu_result
rm_xmm_read(struct emu_ctx *c, union emu_xmm *v)
{
	enum emu_result r;

	if (!c->in.mem) {
		xmm_get(c, c->in.rm, v);
		return EMU_OK;
	}
	if (!(c->in.op->flags & F_UNALIGNED)) {
		r = check_align(c, 16);
		if (r != EMU_OK)
			return r;
	}
	return rm_read(c, v->b, sizeof(v->b));
}

static enum emu_result
rm_xmm_write(struct emu_ctx *c, const union emu_xmm *v)
{
	enum emu_result r;

	if (!c->in.mem) {
		xmm_set(c, c->in.rm, v);
		return EMU_OK;
	}
	if (!(c->in.op->flags & F_UNALIGNED)) {
		r = check_align(c, 16);
		if (r != EMU_OK)
			return r;
	}
	return rm_write(c, v->b, sizeof(v->b));
}

/* Reads the low len bytes of xmm/m<len*8> into v, zeroing the rest. */
static enum emu_result
rm_xmm_read_low(struct emu_ctx *c, size_t len, union emu_xmm *v)
{
	if (!c->in.mem) {
		xmm_get(c, c->in.rm, v);
		memset(v->b + len, 0, sizeof(v->b) - len);
		return EMU_OK;
	}
	memset(v, 0, sizeof(*v));
	return rm_read(c, v->b, len);
}

/*
 * Lane operations. Each reads *d and *s and leaves the result in *d; those
 * whose lanes depend on other lanes build the result in a temporary.
 */

static uint8_t
sat_u8(int v)
{
	return v < 0 ? 0 : v > 0xff ? 0xff : (uint8_t)v;
}

static int8_t
sat_s8(int v)
{
	return v < -128 ? -128 : v > 127 ? 127 : (int8_t)v;
}

static uint16_t
sat_u16(int v)
{
	return v < 0 ? 0 : v > 0xffff ? 0xffff : (uint16_t)v;
}

static int16_t
sat_s16(int v)
{
	return v < -32768 ? -32768 : v > 32767 ? 32767 : (int16_t)v;
}

#define VEC_LANES(fn, lanes, field, expr)				\
	static void							\
	fn(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)	\
	{								\
		(void)imm;						\
		for (unsigned int i = 0; i < (lanes); i++)		\
			d->field[i] = (expr);				\
	}

VEC_LANES(vec_paddb, 16, b, d->b[i] + s->b[i])
VEC_LANES(vec_paddw, 8, w, d->w[i] + s->w[i])
VEC_LANES(vec_paddd, 4, d, d->d[i] + s->d[i])
VEC_LANES(vec_paddq, 2, q, d->q[i] + s->q[i])
VEC_LANES(vec_psubb, 16, b, d->b[i] - s->b[i])
VEC_LANES(vec_psubw, 8, w, d->w[i] - s->w[i])
VEC_LANES(vec_psubd, 4, d, d->d[i] - s->d[i])
VEC_LANES(vec_psubq, 2, q, d->q[i] - s->q[i])
VEC_LANES(vec_paddusb, 16, b, sat_u8(d->b[i] + s->b[i]))
VEC_LANES(vec_paddusw, 8, w, sat_u16(d->w[i] + s->w[i]))
VEC_LANES(vec_psubusb, 16, b, sat_u8(d->b[i] - s->b[i]))
VEC_LANES(vec_psubusw, 8, w, sat_u16(d->w[i] - s->w[i]))
VEC_LANES(vec_paddsb, 16, sb, sat_s8(d->sb[i] + s->sb[i]))
VEC_LANES(vec_paddsw, 8, sw, sat_s16(d->sw[i] + s->sw[i]))
VEC_LANES(vec_psubsb, 16, sb, sat_s8(d->sb[i] - s->sb[i]))
VEC_LANES(vec_psubsw, 8, sw, sat_s16(d->sw[i] - s->sw[i]))
VEC_LANES(vec_pminub, 16, b, d->b[i] < s->b[i] ? d->b[i] : s->b[i])
VEC_LANES(vec_pmaxub, 16, b, d->b[i] > s->b[i] ? d->b[i] : s->b[i])
VEC_LANES(vec_pminsw, 8, sw, d->sw[i] < s->sw[i] ? d->sw[i] : s->sw[i])
VEC_LANES(vec_pmaxsw, 8, sw, d->sw[i] > s->sw[i] ? d->sw[i] : s->sw[i])
VEC_LANES(vec_pavgb, 16, b, (d->b[i] + s->b[i] + 1) >> 1)
VEC_LANES(vec_pavgw, 8, w, (d->w[i] + s->w[i] + 1) >> 1)
VEC_LANES(vec_pcmpeqb, 16, b, d->b[i] == s->b[i] ? 0xff : 0)
VEC_LANES(vec_pcmpeqw, 8, w, d->w[i] == s->w[i] ? 0xffff : 0)
VEC_LANES(vec_pcmpeqd, 4, d, d->d[i] == s->d[i] ? 0xffffffffu : 0)
VEC_LANES(vec_pcmpgtb, 16, b, d->sb[i] > s->sb[i] ? 0xff : 0)
VEC_LANES(vec_pcmpgtw, 8, w, d->sw[i] > s->sw[i] ? 0xffff : 0)
VEC_LANES(vec_pcmpgtd, 4, d, d->sd[i] > s->sd[i] ? 0xffffffffu : 0)
VEC_LANES(vec_pand, 2, q, d->q[i] & s->q[i])
VEC_LANES(vec_pandn, 2, q, ~d->q[i] & s->q[i])
VEC_LANES(vec_por, 2, q, d->q[i] | s->q[i])
VEC_LANES(vec_pxor, 2, q, d->q[i] ^ s->q[i])
VEC_LANES(vec_pmullw, 8, w, (uint16_t)(d->sw[i] * s->sw[i]))
VEC_LANES(vec_pmulhw, 8, w, (uint16_t)((d->sw[i] * s->sw[i]) >> 16))
VEC_LANES(vec_pmulhuw, 8, w, (uint16_t)(((uint32_t)d->w[i] * s->w[i]) >> 16))
VEC_LANES(vec_pmuludq, 2, q, (uint64_t)d->d[2 * i] * s->d[2 * i])
VEC_LANES(vec_pmaddwd, 4, d,
	  (uint32_t)((int64_t)d->sw[2 * i] * s->sw[2 * i] +
		     (int64_t)d->sw[2 * i + 1] * s->sw[2 * i + 1]))

static void
vec_psadbw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int h = 0; h < 2; h++) {
		unsigned int sum = 0;

		for (unsigned int i = 8 * h; i < 8 * h + 8; i++)
			sum += d->b[i] > s->b[i] ? d->b[i] - s->b[i] :
						   s->b[i] - d->b[i];
		d->q[h] = sum;
	}
}

/* Shifts by the count in the low quadword of *s (imm forms build one). */
static void
vec_psrlw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 8; i++)
		d->w[i] = s->q[0] > 15 ? 0 : d->w[i] >> s->q[0];
}

static void
vec_psrld(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 4; i++)
		d->d[i] = s->q[0] > 31 ? 0 : d->d[i] >> s->q[0];
}

static void
vec_psrlq(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 2; i++)
		d->q[i] = s->q[0] > 63 ? 0 : d->q[i] >> s->q[0];
}

static void
vec_psllw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 8; i++)
		d->w[i] = s->q[0] > 15 ? 0 : (uint16_t)(d->w[i] << s->q[0]);
}

static void
vec_pslld(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 4; i++)
		d->d[i] = s->q[0] > 31 ? 0 : d->d[i] << s->q[0];
}

static void
vec_psllq(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	(void)imm;
	for (unsigned int i = 0; i < 2; i++)
		d->q[i] = s->q[0] > 63 ? 0 : d->q[i] << s->q[0];
}

static void
vec_psraw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	unsigned int n = s->q[0] > 15 ? 15 : (unsigned int)s->q[0];

	(void)imm;
	for (unsigned int i = 0; i < 8; i++)
		d->sw[i] = (int16_t)(d->sw[i] >> n);
}

static void
vec_psrad(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	unsigned int n = s->q[0] > 31 ? 31 : (unsigned int)s->q[0];

	(void)imm;
	for (unsigned int i = 0; i < 4; i++)
		d->sd[i] = d->sd[i] >> n;
}

static void
vec_psrldq(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)s;
	for (unsigned int i = 0; i < 16; i++)
		r.b[i] = i + imm < 16 ? d->b[i + imm] : 0;
	*d = r;
}

static void
vec_pslldq(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)s;
	for (unsigned int i = 0; i < 16; i++)
		r.b[i] = i >= imm ? d->b[i - imm] : 0;
	*d = r;
}

static void
vec_pshufb(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)imm;
	for (unsigned int i = 0; i < 16; i++)
		r.b[i] = (s->b[i] & 0x80) ? 0 : d->b[s->b[i] & 15];
	*d = r;
}

static void
vec_palignr(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	uint8_t cat[32];

	memcpy(cat, s->b, 16);
	memcpy(cat + 16, d->b, 16);
	for (unsigned int i = 0; i < 16; i++)
		d->b[i] = i + imm < 32 ? cat[i + imm] : 0;
}

static void
vec_pshufd(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	for (unsigned int i = 0; i < 4; i++)
		r.d[i] = s->d[(imm >> (2 * i)) & 3];
	*d = r;
}

static void
vec_pshuflw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	for (unsigned int i = 0; i < 4; i++)
		r.w[i] = s->w[(imm >> (2 * i)) & 3];
	r.q[1] = s->q[1];
	*d = r;
}

static void
vec_pshufhw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	r.q[0] = s->q[0];
	for (unsigned int i = 0; i < 4; i++)
		r.w[4 + i] = s->w[4 + ((imm >> (2 * i)) & 3)];
	*d = r;
}

static void
vec_shufps(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	r.d[0] = d->d[imm & 3];
	r.d[1] = d->d[(imm >> 2) & 3];
	r.d[2] = s->d[(imm >> 4) & 3];
	r.d[3] = s->d[(imm >> 6) & 3];
	*d = r;
}

static void
vec_shufpd(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	r.q[0] = d->q[imm & 1];
	r.q[1] = s->q[(imm >> 1) & 1];
	*d = r;
}

/* Interleave lanes of width bytes from the low (hi = 0) or high half. */
static void
vec_unpack(union emu_xmm *d, const union emu_xmm *s, unsigned int width,
	   bool hi)
{
	union emu_xmm r;
	unsigned int half = 8 / width, from = hi ? 8 : 0;

	for (unsigned int i = 0; i < half; i++) {
		memcpy(r.b + 2 * i * width, d->b + from + i * width, width);
		memcpy(r.b + (2 * i + 1) * width, s->b + from + i * width,
		       width);
	}
	*d = r;
}

#define VEC_UNPACK(fn, width, hi)					\
	static void							\
	fn(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)	\
	{								\
		(void)imm;						\
		vec_unpack(d, s, (width), (hi));			\
	}

VEC_UNPACK(vec_punpcklbw, 1, false)
VEC_UNPACK(vec_punpcklwd, 2, false)
VEC_UNPACK(vec_punpckldq, 4, false)
VEC_UNPACK(vec_punpcklqdq, 8, false)
VEC_UNPACK(vec_punpckhbw, 1, true)
VEC_UNPACK(vec_punpckhwd, 2, true)
VEC_UNPACK(vec_punpckhdq, 4, true)
VEC_UNPACK(vec_punpckhqdq, 8, true)

static void
vec_packsswb(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)imm;
	for (unsigned int i = 0; i < 8; i++) {
		r.sb[i] = sat_s8(d->sw[i]);
		r.sb[8 + i] = sat_s8(s->sw[i]);
	}
	*d = r;
}

static void
vec_packuswb(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)imm;
	for (unsigned int i = 0; i < 8; i++) {
		r.b[i] = sat_u8(d->sw[i]);
		r.b[8 + i] = sat_u8(s->sw[i]);
	}
	*d = r;
}

static void
vec_packssdw(union emu_xmm *d, const union emu_xmm *s, uint8_t imm)
{
	union emu_xmm r;

	(void)imm;
	for (unsigned int i = 0; i < 4; i++) {
		r.sw[i] = sat_s16(d->sd[i]);
		r.sw[4 + i] = sat_s16(s->sd[i]);
	}
	*d = r;
}

/* Instructions. */

/* xmm(reg) = f(xmm(reg), xmm/m128), the shape of most SSE rows. */
static enum emu_result
exec_vec(struct emu_ctx *c)
{
	union emu_xmm d, s;
	enum emu_result r = rm_xmm_read(c, &s);

	if (r != EMU_OK)
		return r;
	xmm_get(c, c->in.reg, &d);
	c->in.op->vec(&d, &s, c->in.imm);
	xmm_set(c, c->in.reg, &d);
	return EMU_OK;
}

/* xmm(rm) = f(xmm(rm), imm8): the shift-by-immediate groups 71-73. */
static enum emu_result
exec_vec_shift_imm(struct emu_ctx *c)
{
	union emu_xmm d, count = { .q = { c->in.imm, 0 } };

	xmm_get(c, c->in.rm, &d);
	c->in.op->vec(&d, &count, c->in.imm);
	xmm_set(c, c->in.rm, &d);
	return EMU_OK;
}

/* movdqa, movdqu, movaps, movups, movapd, movupd, lddqu: xmm = m128. */
static enum emu_result
exec_mov_load(struct emu_ctx *c)
{
	union emu_xmm v;
	enum emu_result r = rm_xmm_read(c, &v);

	if (r != EMU_OK)
		return r;
	xmm_set(c, c->in.reg, &v);
	return EMU_OK;
}

/* The store forms, and movntdq/movntps/movntpd. */
static enum emu_result
exec_mov_store(struct emu_ctx *c)
{
	union emu_xmm v;

	xmm_get(c, c->in.reg, &v);
	return rm_xmm_write(c, &v);
}

/* movd/movq xmm, r/m32/64: zero-extends into the whole register. */
static enum emu_result
exec_movd_to_xmm(struct emu_ctx *c)
{
	unsigned int size = (c->in.rex & REX_W) ? 8 : 4;
	union emu_xmm v = { .q = { 0, 0 } };
	uint64_t x;
	enum emu_result r = rm_gpr_read(c, size, &x);

	if (r != EMU_OK)
		return r;
	v.q[0] = x;
	xmm_set(c, c->in.reg, &v);
	return EMU_OK;
}

/* movd/movq r/m32/64, xmm. */
static enum emu_result
exec_movd_from_xmm(struct emu_ctx *c)
{
	unsigned int size = (c->in.rex & REX_W) ? 8 : 4;
	union emu_xmm v;

	xmm_get(c, c->in.reg, &v);
	return rm_gpr_write(c, size, v.q[0]);
}

/* movq xmm, xmm/m64 (f3 0f 7e): the high quadword becomes zero. */
static enum emu_result
exec_movq_load(struct emu_ctx *c)
{
	union emu_xmm v;
	enum emu_result r = rm_xmm_read_low(c, 8, &v);

	if (r != EMU_OK)
		return r;
	xmm_set(c, c->in.reg, &v);
	return EMU_OK;
}

/* movq xmm/m64, xmm (66 0f d6): a register destination is zero-extended. */
static enum emu_result
exec_movq_store(struct emu_ctx *c)
{
	union emu_xmm v;

	xmm_get(c, c->in.reg, &v);
	if (!c->in.mem) {
		v.q[1] = 0;
		xmm_set(c, c->in.rm, &v);
		return EMU_OK;
	}
	return rm_write(c, v.b, 8);
}

/*
 * movss/movsd loads (f3/f2 0f 10): from memory the rest of the register is
 * zeroed; between registers only the low element moves.
 */
static enum emu_result
exec_movs_load(struct emu_ctx *c)
{
	size_t n = c->in.pfx == PFX_F3 ? 4 : 8;
	union emu_xmm d, s;
	enum emu_result r = rm_xmm_read_low(c, n, &s);

	if (r != EMU_OK)
		return r;
	if (c->in.mem) {
		d = s;
	} else {
		xmm_get(c, c->in.reg, &d);
		memcpy(d.b, s.b, n);
	}
	xmm_set(c, c->in.reg, &d);
	return EMU_OK;
}

/* movss/movsd stores (f3/f2 0f 11). */
static enum emu_result
exec_movs_store(struct emu_ctx *c)
{
	size_t n = c->in.pfx == PFX_F3 ? 4 : 8;
	union emu_xmm d, s;

	xmm_get(c, c->in.reg, &s);
	if (c->in.mem)
		return rm_write(c, s.b, n);
	xmm_get(c, c->in.rm, &d);
	memcpy(d.b, s.b, n);
	xmm_set(c, c->in.rm, &d);
	return EMU_OK;
}

/*
 * 0f 12/16 and 66 0f 12/16: load m64 into the low (12) or high (16)
 * quadword. The register forms of 0f 12/16 are movhlps/movlhps.
 */
static enum emu_result
exec_movlh_load(struct emu_ctx *c)
{
	unsigned int to = c->in.opcode == 0x16 ? 1 : 0;
	union emu_xmm d, s;
	enum emu_result r;

	xmm_get(c, c->in.reg, &d);
	if (c->in.mem) {
		r = rm_read(c, s.b, 8);
		if (r != EMU_OK)
			return r;
		d.q[to] = s.q[0];
	} else {
		xmm_get(c, c->in.rm, &s);
		/* movhlps takes the high quadword, movlhps the low one. */
		d.q[to] = s.q[to ^ 1];
	}
	xmm_set(c, c->in.reg, &d);
	return EMU_OK;
}

/* 0f 13/17 and 66 0f 13/17: store the low (13) or high (17) quadword. */
static enum emu_result
exec_movlh_store(struct emu_ctx *c)
{
	union emu_xmm v;

	xmm_get(c, c->in.reg, &v);
	return rm_write(c, &v.b[c->in.opcode == 0x17 ? 8 : 0], 8);
}

/* pmovmskb, movmskps, movmskpd: sign bits of the lanes into a GPR. */
static enum emu_result
exec_movmsk(struct emu_ctx *c)
{
	union emu_xmm v;
	unsigned int width = c->in.opcode == 0xd7 ? 1 :
			     c->in.pfx == PFX_66 ? 8 : 4;
	uint64_t mask = 0;

	xmm_get(c, c->in.rm, &v);
	for (unsigned int i = 0; i < 16 / width; i++)
		mask |= (uint64_t)(v.b[i * width + width - 1] >> 7) << i;
	gpr_set(c, c->in.reg, 8, mask);
	return EMU_OK;
}

/* pextrw r32, xmm, imm8. */
static enum emu_result
exec_pextrw(struct emu_ctx *c)
{
	union emu_xmm v;

	xmm_get(c, c->in.rm, &v);
	gpr_set(c, c->in.reg, 8, v.w[c->in.imm & 7]);
	return EMU_OK;
}

/* pinsrw xmm, r32/m16, imm8. */
static enum emu_result
exec_pinsrw(struct emu_ctx *c)
{
	union emu_xmm d;
	uint64_t x;
	enum emu_result r = rm_gpr_read(c, 2, &x);

	if (r != EMU_OK)
		return r;
	xmm_get(c, c->in.reg, &d);
	d.w[c->in.imm & 7] = (uint16_t)x;
	xmm_set(c, c->in.reg, &d);
	return EMU_OK;
}

/* movnti m32/m64, r32/r64. */
static enum emu_result
exec_movnti(struct emu_ctx *c)
{
	unsigned int size = (c->in.rex & REX_W) ? 8 : 4;

	return rm_gpr_write(c, size, gpr_get(c, c->in.reg, size));
}

static enum emu_result
exec_nop(struct emu_ctx *c)
{
	(void)c;
	return EMU_OK;
}

static enum emu_result
exec_int3(struct emu_ctx *c)
{
	return emu_trap(c, EMU_VEC_BP);
}

/*
 * int imm8. Only exception vectors: KVM_SET_VCPU_EVENTS injects those, and
 * a kernel has no reason to raise a higher vector by software.
 */
static enum emu_result
exec_int(struct emu_ctx *c)
{
	if (c->in.imm >= 32)
		return EMU_UNHANDLED;
	return emu_trap(c, c->in.imm);
}

static enum emu_result
exec_ud(struct emu_ctx *c)
{
	return emu_fault(c, EMU_VEC_UD);
}

static bool
x87_pending(const struct emu_ctx *c)
{
	return c->fpu.fsw & FSW_ES;
}

static enum emu_result
exec_fwait(struct emu_ctx *c)
{
	if (x87_pending(c))
		return emu_fault(c, EMU_VEC_MF);
	return EMU_OK;
}

static void
x87_init(struct kvm_fpu *f)
{
	f->fcw = FCW_INIT;
	f->fsw = 0;
	f->ftwx = 0;
	f->last_opcode = 0;
	f->last_ip = 0;
	f->last_dp = 0;
}

static enum emu_result
exec_fninit(struct emu_ctx *c)
{
	x87_init(&c->fpu);
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_fnclex(struct emu_ctx *c)
{
	c->fpu.fsw &= ~FSW_CLEAR;
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_fldcw(struct emu_ctx *c)
{
	uint8_t buf[2];
	enum emu_result r = rm_read(c, buf, 2);

	if (r != EMU_OK)
		return r;
	c->fpu.fcw = get16(buf);
	/*
	 * A new control word can unmask (or mask) a pending exception; the
	 * summary bits follow, and the next waiting instruction raises #MF.
	 */
	if (c->fpu.fsw & ~c->fpu.fcw & FSW_EXC)
		c->fpu.fsw |= FSW_ES | FSW_B;
	else
		c->fpu.fsw &= ~(FSW_ES | FSW_B);
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_fnstcw(struct emu_ctx *c)
{
	uint8_t buf[2];

	put16(buf, c->fpu.fcw);
	return rm_write(c, buf, 2);
}

/* fnstsw m16 (dd /7) and fnstsw ax (df e0). */
static enum emu_result
exec_fnstsw(struct emu_ctx *c)
{
	uint8_t buf[2];

	if (!c->in.mem) {
		gpr_set(c, 0, 2, c->fpu.fsw);
		return EMU_OK;
	}
	put16(buf, c->fpu.fsw);
	return rm_write(c, buf, 2);
}

static enum emu_result
exec_emms(struct emu_ctx *c)
{
	c->fpu.ftwx = 0;
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_ldmxcsr(struct emu_ctx *c)
{
	uint8_t buf[4];
	uint32_t v;
	enum emu_result r = rm_read(c, buf, 4);

	if (r != EMU_OK)
		return r;
	v = get32(buf);
	if (v & ~MXCSR_MASK)
		return emu_gp0(c);
	c->fpu.mxcsr = v;
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_stmxcsr(struct emu_ctx *c)
{
	uint8_t buf[4];

	put32(buf, c->fpu.mxcsr);
	return rm_write(c, buf, 4);
}

/*
 * The FXSAVE image, in parts because XSAVE saves and restores the x87 part
 * (bytes 0-23 and 32-159), MXCSR (24-31) and the XMM registers (160-415)
 * separately. fx64 is the REX.W layout with 64-bit FIP/FDP; without it FIP
 * and FDP are 32 bits followed by FCS/FDS, which kvm_fpu does not hold and
 * which are written as zero (as CPUs with FCS/FDS deprecation do).
 */
static void
fx_put_x87(const struct kvm_fpu *f, uint8_t *img, bool fx64)
{
	put16(img + FX_FCW, f->fcw);
	put16(img + FX_FSW, f->fsw);
	img[FX_FTW] = f->ftwx;
	img[FX_FTW + 1] = 0;
	put16(img + FX_FOP, f->last_opcode);
	if (fx64) {
		put64(img + FX_FIP, f->last_ip);
		put64(img + FX_FDP, f->last_dp);
	} else {
		put32(img + FX_FIP, (uint32_t)f->last_ip);
		put32(img + FX_FIP + 4, 0);
		put32(img + FX_FDP, (uint32_t)f->last_dp);
		put32(img + FX_FDP + 4, 0);
	}
	for (unsigned int i = 0; i < 8; i++) {
		memcpy(img + FX_ST + 16 * i, f->fpr[i], 10);
		memset(img + FX_ST + 16 * i + 10, 0, 6);
	}
}

static void
fx_put_mxcsr(const struct kvm_fpu *f, uint8_t *img)
{
	put32(img + FX_MXCSR, f->mxcsr);
	put32(img + FX_MXCSR_MASK, MXCSR_MASK);
}

static void
fx_put_xmm(const struct kvm_fpu *f, uint8_t *img, unsigned int nxmm)
{
	memcpy(img + FX_XMM, f->xmm, 16 * nxmm);
}

static void
fx_get_x87(struct kvm_fpu *f, const uint8_t *img, bool fx64)
{
	f->fcw = get16(img + FX_FCW);
	f->fsw = get16(img + FX_FSW);
	f->ftwx = img[FX_FTW];
	f->last_opcode = get16(img + FX_FOP) & 0x7ff;
	if (fx64) {
		f->last_ip = get64(img + FX_FIP);
		f->last_dp = get64(img + FX_FDP);
	} else {
		f->last_ip = get32(img + FX_FIP);
		f->last_dp = get32(img + FX_FDP);
	}
	for (unsigned int i = 0; i < 8; i++) {
		memcpy(f->fpr[i], img + FX_ST + 16 * i, 10);
		memset(f->fpr[i] + 10, 0, 6);
	}
}

static void
fx_get_xmm(struct kvm_fpu *f, const uint8_t *img, unsigned int nxmm)
{
	memcpy(f->xmm, img + FX_XMM, 16 * nxmm);
}

/* XMM8-15 exist in 64-bit mode only. */
static unsigned int
nr_xmm(const struct emu_ctx *c)
{
	return c->in.mode == 64 ? 16 : 8;
}

static enum emu_result
exec_fxsave(struct emu_ctx *c)
{
	uint8_t img[FX_SIZE];
	unsigned int nxmm = nr_xmm(c);
	enum emu_result r = check_align(c, 16);

	if (r != EMU_OK)
		return r;
	fx_put_x87(&c->fpu, img, c->in.rex & REX_W);
	fx_put_mxcsr(&c->fpu, img);
	fx_put_xmm(&c->fpu, img, nxmm);
	/* Bytes past the XMM registers are reserved or software's. */
	return rm_write(c, img, FX_XMM + 16 * nxmm);
}

static enum emu_result
exec_fxrstor(struct emu_ctx *c)
{
	uint8_t img[FX_SIZE];
	uint32_t mxcsr;
	enum emu_result r = check_align(c, 16);

	if (r != EMU_OK)
		return r;
	r = rm_read(c, img, FX_SIZE);
	if (r != EMU_OK)
		return r;
	mxcsr = get32(img + FX_MXCSR);
	if (mxcsr & ~MXCSR_MASK)
		return emu_gp0(c);
	fx_get_x87(&c->fpu, img, c->in.rex & REX_W);
	c->fpu.mxcsr = mxcsr;
	fx_get_xmm(&c->fpu, img, nr_xmm(c));
	c->fpu_changed = true;
	return EMU_OK;
}

/* The requested-feature bitmap of an XSAVE-family instruction. */
static uint64_t
xsave_rfbm(const struct emu_ctx *c, bool supervisor)
{
	uint64_t xcr0 = c->s->xcr0 ? c->s->xcr0 : XFEATURES_HELD;
	uint64_t mask = ((c->regs.rdx & 0xffffffffULL) << 32) |
			(c->regs.rax & 0xffffffffULL);

	return mask & (supervisor ? xcr0 | c->s->xss : xcr0);
}

/*
 * XSAVE, XSAVEOPT, XSAVEC, XSAVES over the legacy region and the header.
 * The emulator cannot tell whether a component is in its initial state,
 * so it saves every requested component and marks it in use, which the
 * architecture allows (XINUSE may be 1 for a component in init state).
 * XSAVEOPT's modified optimization is optional; it saves like XSAVE.
 */
static enum emu_result
xsave_common(struct emu_ctx *c, bool compacted, bool supervisor)
{
	uint8_t area[XSAVE_LEGACY_SIZE];
	uint64_t rfbm = xsave_rfbm(c, supervisor);
	bool fx64 = c->in.rex & REX_W;
	enum emu_result r;

	if (supervisor && c->cpl != 0)
		return emu_gp0(c);
	if (rfbm & ~XFEATURES_HELD)
		return EMU_UNHANDLED;
	r = check_align(c, 64);
	if (r != EMU_OK)
		return r;
	/* Parts of the area that are not saved keep their bytes. */
	r = rm_read(c, area, sizeof(area));
	if (r != EMU_OK)
		return r;
	if (rfbm & XFEATURE_X87)
		fx_put_x87(&c->fpu, area, fx64);
	if (compacted ? (rfbm & XFEATURE_SSE) :
			(rfbm & (XFEATURE_SSE | XFEATURE_AVX)))
		fx_put_mxcsr(&c->fpu, area);
	if (rfbm & XFEATURE_SSE)
		fx_put_xmm(&c->fpu, area, nr_xmm(c));
	if (compacted) {
		put64(area + XSAVE_XSTATE_BV, rfbm);
		put64(area + XSAVE_XCOMP_BV, XCOMP_BV_COMPACTED | rfbm);
	} else {
		put64(area + XSAVE_XSTATE_BV,
		      get64(area + XSAVE_XSTATE_BV) | rfbm);
	}
	return rm_write(c, area, sizeof(area));
}

static enum emu_result
exec_xsave(struct emu_ctx *c)
{
	return xsave_common(c, false, false);
}

static enum emu_result
exec_xsavec(struct emu_ctx *c)
{
	return xsave_common(c, true, false);
}

static enum emu_result
exec_xsaves(struct emu_ctx *c)
{
	return xsave_common(c, true, true);
}

static bool
all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* XRSTOR (standard or compacted form, by XCOMP_BV[63]) and XRSTORS. */
static enum emu_result
xrstor_common(struct emu_ctx *c, bool supervisor)
{
	uint8_t area[XSAVE_LEGACY_SIZE];
	uint64_t rfbm = xsave_rfbm(c, supervisor);
	uint64_t allowed = (c->s->xcr0 ? c->s->xcr0 : XFEATURES_HELD) |
			   (supervisor ? c->s->xss : 0);
	uint64_t xstate_bv, xcomp_bv;
	uint32_t mxcsr = c->fpu.mxcsr;
	bool compacted;
	enum emu_result r;

	if (supervisor && c->cpl != 0)
		return emu_gp0(c);
	if (rfbm & ~XFEATURES_HELD)
		return EMU_UNHANDLED;
	r = check_align(c, 64);
	if (r != EMU_OK)
		return r;
	r = rm_read(c, area, sizeof(area));
	if (r != EMU_OK)
		return r;
	xstate_bv = get64(area + XSAVE_XSTATE_BV);
	xcomp_bv = get64(area + XSAVE_XCOMP_BV);
	compacted = xcomp_bv & XCOMP_BV_COMPACTED;
	if (supervisor && !compacted)
		return emu_gp0(c);
	if (compacted) {
		if ((xcomp_bv & ~XCOMP_BV_COMPACTED) & ~allowed ||
		    xstate_bv & ~xcomp_bv ||
		    !all_zero(area + XSAVE_XCOMP_BV + 8,
			      XSAVE_LEGACY_SIZE - XSAVE_XCOMP_BV - 8))
			return emu_gp0(c);
		/* MXCSR is part of the SSE component here. */
		if (rfbm & XFEATURE_SSE)
			mxcsr = (xstate_bv & XFEATURE_SSE) ?
				get32(area + FX_MXCSR) : MXCSR_INIT;
	} else {
		if (xstate_bv & ~allowed ||
		    !all_zero(area + XSAVE_XCOMP_BV, 16))
			return emu_gp0(c);
		/* The standard form loads MXCSR when SSE or AVX is asked. */
		if (rfbm & (XFEATURE_SSE | XFEATURE_AVX))
			mxcsr = get32(area + FX_MXCSR);
	}
	if (mxcsr & ~MXCSR_MASK)
		return emu_gp0(c);
	c->fpu.mxcsr = mxcsr;
	if (rfbm & XFEATURE_X87) {
		if (xstate_bv & XFEATURE_X87) {
			fx_get_x87(&c->fpu, area, c->in.rex & REX_W);
		} else {
			x87_init(&c->fpu);
			memset(c->fpu.fpr, 0, sizeof(c->fpu.fpr));
		}
	}
	if (rfbm & XFEATURE_SSE) {
		if (xstate_bv & XFEATURE_SSE)
			fx_get_xmm(&c->fpu, area, nr_xmm(c));
		else
			memset(c->fpu.xmm, 0, 16 * nr_xmm(c));
	}
	c->fpu_changed = true;
	return EMU_OK;
}

static enum emu_result
exec_xrstor(struct emu_ctx *c)
{
	return xrstor_common(c, false);
}

static enum emu_result
exec_xrstors(struct emu_ctx *c)
{
	return xrstor_common(c, true);
}

/* clac (0f 01 ca) and stac (0f 01 cb). */
static enum emu_result
exec_clac_stac(struct emu_ctx *c)
{
	if (c->cpl != 0)
		return emu_fault(c, EMU_VEC_UD);
	if (c->in.modrm == 0xcb)
		flags_update(c, 0, RFLAGS_AC);
	else
		flags_update(c, RFLAGS_AC, 0);
	return EMU_OK;
}

/*
 * Where the GDT holds sel's descriptor. Without long mode a linear address
 * has 32 bits, so GDTR.base + index wraps at 4 GiB as on the CPU; unmasked
 * it would name an address above 4 GiB, which no such page table maps. In
 * compatibility mode GDTR.base is the 64-bit one of the kernel.
 */
static uint64_t
gdt_entry_la(const struct emu_ctx *c, uint16_t sel)
{
	uint64_t la = c->sregs->gdt.base + (sel & ~7u);

	return (c->sregs->efer & EFER_LMA) ? la : la & 0xffffffffULL;
}

/*
 * verr/verw r/m16 (0f 00 /4, /5): ZF = 1 when the selector names a present
 * segment that is readable (verr) or writable (verw) from the current
 * privilege level. Linux runs verw for its side effect of clearing CPU
 * buffers (MDS mitigation, right before sti; hlt in its idle loop) and
 * ignores the flag; we compute it from the GDT as the CPU would. LDT
 * selectors are never verified (Linux has no LDT segments of its own).
 */
static enum emu_result
exec_verr_verw(struct emu_ctx *c)
{
	bool is_verw = c->in.reg == 5;
	uint64_t sel, d;
	uint8_t buf[8];
	bool ok = false;
	enum emu_result r = rm_gpr_read(c, 2, &sel);

	if (r != EMU_OK)
		return r;
	sel &= 0xffff;
	if ((sel & ~3ULL) != 0 && !(sel & 4) && (sel | 7) <= c->sregs->gdt.limit) {
		r = mem_read(c, gdt_entry_la(c, (uint16_t)sel), buf, 8);
		if (r != EMU_OK)
			return r;
		d = get64(buf);
		unsigned int type = (d >> 40) & 0xf;
		unsigned int dpl = (d >> 45) & 3;
		bool system = !((d >> 44) & 1), present = (d >> 47) & 1;
		bool code = type & 8, conforming = code && (type & 4);
		bool priv = conforming ||
			    (dpl >= c->cpl && dpl >= (unsigned int)(sel & 3));

		if (!system && present && priv)
			ok = is_verw ? (!code && (type & 2)) :
				       (!code || (type & 2));
	}
	flags_update(c, RFLAGS_ZF, ok ? RFLAGS_ZF : 0);
	return EMU_OK;
}

/*
 * Whether the GDT's descriptor for sel still says what the CS cache holds
 * (base, limit, default size; a present code segment), so that reloading
 * CS from it changes nothing. Out of the GDT: #GP(sel).
 */
static enum emu_result
cs_descriptor_unchanged(struct emu_ctx *c, uint16_t sel, bool *same)
{
	const struct kvm_segment *cs = &c->sregs->cs;
	uint64_t d, base, limit;
	uint8_t buf[8];
	enum emu_result r;

	*same = false;
	if ((sel | 7u) > c->sregs->gdt.limit)
		return emu_fault_err(c, EMU_VEC_GP, sel & 0xfffcu);
	r = mem_read(c, gdt_entry_la(c, sel), buf, 8);
	if (r != EMU_OK)
		return r;
	d = get64(buf);
	base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000);
	limit = (d & 0xffff) | ((d >> 32) & 0xf0000);
	if ((d >> 55) & 1)			/* G: 4 KiB units */
		limit = (limit << 12) | 0xfff;
	*same = ((d >> 44) & 1) && ((d >> 43) & 1) &&	/* S, code */
		((d >> 47) & 1) &&			/* P */
		base == cs->base && limit == cs->limit &&
		((d >> 54) & 1) == cs->db && ((d >> 53) & 1) == cs->l;
	return EMU_OK;
}

/* An iret frame: EIP, CS, EFLAGS (or IP, CS, FLAGS) at la. */
struct iret_frame {
	uint64_t ip;
	uint16_t cs;
	uint64_t flags;
};

static enum emu_result
iret_read_frame(struct emu_ctx *c, uint64_t la, unsigned int os,
		struct iret_frame *f)
{
	uint8_t b[12];
	enum emu_result r;

	r = mem_read(c, la & 0xffffffffULL, b, 3 * os);
	if (r != EMU_OK)
		return r;
	f->ip = os == 4 ? get32(b) : get16(b);
	f->cs = get16(b + os);
	f->flags = os == 4 ? get32(b + 2 * os) : get16(b + 2 * os);
	return EMU_OK;
}

/* Flags as the CPU pushes them: bit 1 set, 3, 5, 15 and 22-31 clear. */
static bool
iret_flags_plausible(uint64_t fl)
{
	return (fl & RFLAGS_FIXED) && !(fl & 0xffc08028ULL);
}

/*
 * iret (cf) in protected mode, 16 or 32-bit code, back to the same code
 * segment at the same privilege level: how firmware returns from its
 * interrupt handlers (iPXE's, in its flat 32-bit code). KVM's own emulator
 * knows iret in real mode only, so on a PVM host every such iret comes
 * here. It pops EIP, CS and EFLAGS (IP, CS and FLAGS with a 16-bit operand)
 * and takes from the popped flags what the current privilege allows: IF
 * when CPL <= IOPL, IOPL, VIF and VIP at CPL 0. A return that would load
 * a segment register (another CS, or one whose descriptor changed, another
 * privilege level and so SS:ESP, virtual-8086 mode) or a nested task
 * (NT) is left unhandled: the caller writes back only the general
 * registers. NMI blocking, which iret ends, is the caller's to clear.
 *
 * PVM delivers an interrupt in protected mode onto linear address ESP,
 * leaving out SS's base (seen with iPXE, whose stack segment has the base
 * it relocated itself to): the frame the handler's iret should pop is at
 * ESP, and SS.base + ESP holds stale stack. So when the frame at SS.base +
 * ESP does not return to the current CS and the one at ESP does, with
 * flags the CPU could have pushed, the one at ESP is taken. Without the
 * quirk such an iret would stop the VM; where both are the same address
 * (a flat SS), nothing changes.
 */
static enum emu_result
exec_iret(struct emu_ctx *c)
{
	const struct kvm_sregs *sr = c->sregs;
	unsigned int os = c->in.opsize;
	uint64_t sp_mask = sr->ss.db ? 0xffffffffULL : 0xffffULL;
	uint64_t sp = c->regs.rsp & sp_mask;
	struct iret_frame f, quirk;
	enum emu_result r;
	uint64_t mask;
	bool same;

	if (c->in.mode == 64 || !(sr->cr0 & CR0_PE) ||
	    (c->regs.rflags & (RFLAGS_VM | RFLAGS_NT)))
		return EMU_UNHANDLED;
	/* A frame that wraps around a 16-bit stack: not worth the code. */
	if (sp + 3 * os - 1 > sp_mask)
		return EMU_UNHANDLED;
	c->la_seg = SEG_SS;
	r = iret_read_frame(c, sr->ss.base + sp, os, &f);
	if (r != EMU_OK)
		return r;
	if (f.cs != sr->cs.selector && (uint32_t)sr->ss.base != 0 &&
	    iret_read_frame(c, sp, os, &quirk) == EMU_OK &&
	    quirk.cs == sr->cs.selector && iret_flags_plausible(quirk.flags))
		f = quirk;
	if (f.cs != sr->cs.selector)
		return EMU_UNHANDLED;
	if ((f.cs & ~3u) == 0)
		return emu_gp0(c);
	if (f.cs & 4)				/* an LDT selector */
		return EMU_UNHANDLED;
	r = cs_descriptor_unchanged(c, f.cs, &same);
	if (r != EMU_OK)
		return r;
	if (!same)
		return EMU_UNHANDLED;
	if (os == 4 && (f.flags & RFLAGS_VM) && c->cpl == 0)
		return EMU_UNHANDLED;		/* to virtual-8086 mode */
	if (f.ip > sr->cs.limit)
		return emu_gp0(c);

	mask = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF |
	       RFLAGS_TF | RFLAGS_DF | RFLAGS_OF | RFLAGS_NT;
	if (os == 4)
		mask |= RFLAGS_RF | RFLAGS_AC | RFLAGS_ID;
	if (c->cpl <= ((c->regs.rflags & RFLAGS_IOPL) >> 12))
		mask |= RFLAGS_IF;
	if (c->cpl == 0) {
		mask |= RFLAGS_IOPL;
		if (os == 4)
			mask |= RFLAGS_VIF | RFLAGS_VIP;
	}
	c->regs.rflags = (c->regs.rflags & ~mask) | (f.flags & mask) |
			 RFLAGS_FIXED;
	c->regs.rip = f.ip;
	c->regs.rsp = (c->regs.rsp & ~sp_mask) | ((sp + 3 * os) & sp_mask);
	c->branched = true;
	return EMU_OK;
}

/*
 * cmpxchg8b m64 / cmpxchg16b m128: compare EDX:EAX (RDX:RAX) with memory;
 * equal: store ECX:EBX (RCX:RBX), ZF = 1; else load memory into EDX:EAX
 * (RDX:RAX), ZF = 0. On a mismatch the hardware writes the old value back
 * as part of its locked cycle; that store changes nothing and is skipped.
 */
static enum emu_result
exec_cmpxchg_wide(struct emu_ctx *c)
{
	unsigned int half = (c->in.rex & REX_W) ? 8 : 4;
	uint8_t expected[16], desired[16], cur[16];
	bool equal;
	enum emu_result r;

	if (half == 8) {
		r = check_align(c, 16);
		if (r != EMU_OK)
			return r;
	}
	r = mem_check(c, c->la, 2 * half);
	if (r != EMU_OK)
		return r;
	put64(expected, gpr_get(c, 0, half));
	put64(expected + half, gpr_get(c, 2, half));
	put64(desired, gpr_get(c, 3, half));
	put64(desired + half, gpr_get(c, 1, half));
	if (c->ops && c->ops->cmpxchg) {
		int ret;

		memcpy(cur, expected, 2 * half);
		ret = c->ops->cmpxchg(c->opaque, c->la, cur, desired,
				      2 * half);
		if (ret < 0) {
			c->fault_gva = c->la;
			c->fault_write = true;
			return EMU_MEM_FAULT;
		}
		equal = ret == 0;
	} else {
		r = rm_read(c, cur, 2 * half);
		if (r != EMU_OK)
			return r;
		equal = memcmp(cur, expected, 2 * half) == 0;
		if (equal) {
			r = rm_write(c, desired, 2 * half);
			if (r != EMU_OK)
				return r;
		}
	}
	if (equal) {
		flags_update(c, RFLAGS_ZF, RFLAGS_ZF);
	} else {
		flags_update(c, RFLAGS_ZF, 0);
		gpr_set(c, 0, half, half == 8 ? get64(cur) : get32(cur));
		gpr_set(c, 2, half, half == 8 ? get64(cur + 8) :
						get32(cur + 4));
	}
	return EMU_OK;
}

static enum emu_result
exec_popcnt(struct emu_ctx *c)
{
	uint64_t v;
	enum emu_result r = rm_gpr_read(c, c->in.opsize, &v);

	if (r != EMU_OK)
		return r;
	v &= size_mask(c->in.opsize);
	gpr_set(c, c->in.reg, c->in.opsize, (uint64_t)__builtin_popcountll(v));
	flags_update(c, RFLAGS_ARITH, v ? 0 : RFLAGS_ZF);
	return EMU_OK;
}

/*
 * lzcnt/tzcnt (f3 0f bd/bc): CF says the source was zero, ZF the result;
 * OF, SF, AF and PF are undefined and left alone.
 */
static enum emu_result
exec_lzcnt_tzcnt(struct emu_ctx *c)
{
	unsigned int bits = c->in.opsize * 8;
	uint64_t v, n;
	enum emu_result r = rm_gpr_read(c, c->in.opsize, &v);

	if (r != EMU_OK)
		return r;
	v &= size_mask(c->in.opsize);
	if (!v)
		n = bits;
	else if (c->in.opcode == 0xbd)
		n = (uint64_t)__builtin_clzll(v) - (64 - bits);
	else
		n = (uint64_t)__builtin_ctzll(v);
	gpr_set(c, c->in.reg, c->in.opsize, n);
	flags_update(c, RFLAGS_CF | RFLAGS_ZF,
		     (v ? 0 : RFLAGS_CF) | (n ? 0 : RFLAGS_ZF));
	return EMU_OK;
}

/*
 * bsf/bsr: a zero source sets ZF and leaves the destination as it was (what
 * AMD documents and Intel parts do); the other flags are undefined.
 */
static enum emu_result
exec_bsf_bsr(struct emu_ctx *c)
{
	uint64_t v;
	enum emu_result r = rm_gpr_read(c, c->in.opsize, &v);

	if (r != EMU_OK)
		return r;
	v &= size_mask(c->in.opsize);
	if (!v) {
		flags_update(c, RFLAGS_ZF, RFLAGS_ZF);
		return EMU_OK;
	}
	gpr_set(c, c->in.reg, c->in.opsize,
		c->in.opcode == 0xbc ? (uint64_t)__builtin_ctzll(v) :
				       63 - (uint64_t)__builtin_clzll(v));
	flags_update(c, RFLAGS_ZF, 0);
	return EMU_OK;
}

/*
 * bswap r32/r64. With a 16-bit operand the result is architecturally
 * undefined; Intel and AMD parts clear the low word, and so do we.
 */
static enum emu_result
exec_bswap(struct emu_ctx *c)
{
	unsigned int n = (c->in.opcode & 7) | ((c->in.rex & REX_B) ? 8 : 0);
	uint64_t v = gpr_get(c, n, c->in.opsize);

	if (c->in.opsize == 8)
		v = __builtin_bswap64(v);
	else if (c->in.opsize == 4)
		v = __builtin_bswap32((uint32_t)v);
	else
		v = 0;
	gpr_set(c, n, c->in.opsize, v);
	return EMU_OK;
}

/* The table. */

#define ROW(m, opc, p, fl, x, ck, nm, f, fn)				\
	{ .map = (m), .opcode = (opc), .pfx = (p), .flags = (fl),	\
	  .ext = (x), .chk = (ck), .name = (nm), .fmt = (f),		\
	  .exec = (fn), .vec = NULL }
/* 66 0f xx: xmm = f(xmm, xmm/m128), SSE2 integer forms. */
#define SSE2(opc, nm, fn)						\
	{ .map = MAP_0F, .opcode = (opc), .pfx = PFX_66,		\
	  .flags = F_MODRM, .chk = CHK_SSE, .name = (nm),		\
	  .fmt = "V,W", .exec = exec_vec, .vec = (fn) }
/* Same with another map, prefix or an immediate. */
#define VEC(m, opc, p, fl, nm, f, fn)					\
	{ .map = (m), .opcode = (opc), .pfx = (p),			\
	  .flags = F_MODRM | (fl), .chk = CHK_SSE, .name = (nm),	\
	  .fmt = (f), .exec = exec_vec, .vec = (fn) }
/* 66 0f 71-73 /digit ib: shift xmm(rm) by an immediate. */
#define SHIFT_IMM(opc, digit, nm, fn)					\
	{ .map = MAP_0F, .opcode = (opc), .pfx = PFX_66,		\
	  .flags = F_MODRM | F_REG | F_REGOP | F_IMM8, .ext = (digit),	\
	  .chk = CHK_SSE, .name = (nm), .fmt = "U,I",			\
	  .exec = exec_vec_shift_imm, .vec = (fn) }
/* An SSE row with its own function. */
#define SSE(m, opc, p, fl, nm, f, fn)					\
	ROW(m, opc, p, F_MODRM | (fl), 0, CHK_SSE, nm, f, fn)

/*
 * Rows are tried in order and the first match wins: a row with a specific
 * mandatory prefix comes before a PFX_ANY row of the same opcode. All rows
 * of one (map, opcode) agree on F_MODRM.
 */
static const struct emu_op emu_ops[] = {
	/* One-byte map. */
	ROW(MAP_1B, 0xcc, PFX_ANY, 0, 0, CHK_NONE, "int3", "", exec_int3),
	ROW(MAP_1B, 0xcd, PFX_ANY, F_IMM8, 0, CHK_NONE, "int", "I", exec_int),
	ROW(MAP_1B, 0xcf, PFX_ANY, 0, 0, CHK_NONE, "iret", "", exec_iret),
	ROW(MAP_1B, 0x9b, PFX_ANY, 0, 0, CHK_WAIT, "fwait", "", exec_fwait),
	ROW(MAP_1B, 0xd9, PFX_ANY, F_MODRM | F_MEM | F_REGOP, 5, CHK_X87,
	    "fldcw", "M", exec_fldcw),
	ROW(MAP_1B, 0xd9, PFX_ANY, F_MODRM | F_MEM | F_REGOP, 7, CHK_X87,
	    "fnstcw", "M", exec_fnstcw),
	ROW(MAP_1B, 0xdb, PFX_ANY, F_MODRM | F_FIXED, 0xe2, CHK_X87,
	    "fnclex", "", exec_fnclex),
	ROW(MAP_1B, 0xdb, PFX_ANY, F_MODRM | F_FIXED, 0xe3, CHK_X87,
	    "fninit", "", exec_fninit),
	ROW(MAP_1B, 0xdd, PFX_ANY, F_MODRM | F_MEM | F_REGOP, 7, CHK_X87,
	    "fnstsw", "M", exec_fnstsw),
	ROW(MAP_1B, 0xdf, PFX_ANY, F_MODRM | F_FIXED, 0xe0, CHK_X87,
	    "fnstsw", "ax", exec_fnstsw),

	/* 0f map: system, integer, state. */
	ROW(MAP_0F, 0x01, PFX_NP, F_MODRM | F_FIXED, 0xca, CHK_NONE,
	    "clac", "", exec_clac_stac),
	ROW(MAP_0F, 0x01, PFX_NP, F_MODRM | F_FIXED, 0xcb, CHK_NONE,
	    "stac", "", exec_clac_stac),
	ROW(MAP_0F, 0x00, PFX_ANY, F_MODRM | F_REGOP, 4, CHK_NONE,
	    "verr", "E", exec_verr_verw),
	ROW(MAP_0F, 0x00, PFX_ANY, F_MODRM | F_REGOP, 5, CHK_NONE,
	    "verw", "E", exec_verr_verw),
	ROW(MAP_0F, 0x0b, PFX_ANY, 0, 0, CHK_NONE, "ud2", "", exec_ud),
	ROW(MAP_0F, 0xb9, PFX_ANY, F_MODRM, 0, CHK_NONE, "ud1", "G,E", exec_ud),
	ROW(MAP_0F, 0xff, PFX_ANY, F_MODRM, 0, CHK_NONE, "ud0", "G,E", exec_ud),
	ROW(MAP_0F, 0x0d, PFX_NP, F_MODRM | F_MEM | F_REGOP, 0, CHK_NONE,
	    "prefetch", "M", exec_nop),
	ROW(MAP_0F, 0x0d, PFX_NP, F_MODRM | F_MEM | F_REGOP, 1, CHK_NONE,
	    "prefetchw", "M", exec_nop),
	ROW(MAP_0F, 0x18, PFX_NP, F_MODRM | F_MEM | F_REGOP, 0, CHK_NONE,
	    "prefetchnta", "M", exec_nop),
	ROW(MAP_0F, 0x18, PFX_NP, F_MODRM | F_MEM | F_REGOP, 1, CHK_NONE,
	    "prefetcht0", "M", exec_nop),
	ROW(MAP_0F, 0x18, PFX_NP, F_MODRM | F_MEM | F_REGOP, 2, CHK_NONE,
	    "prefetcht1", "M", exec_nop),
	ROW(MAP_0F, 0x18, PFX_NP, F_MODRM | F_MEM | F_REGOP, 3, CHK_NONE,
	    "prefetcht2", "M", exec_nop),
	ROW(MAP_0F, 0x1f, PFX_ANY, F_MODRM | F_REGOP, 0, CHK_NONE,
	    "nop", "E", exec_nop),
	ROW(MAP_0F, 0x77, PFX_NP, 0, 0, CHK_MMX, "emms", "", exec_emms),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 0,
	    CHK_FXSR, "fxsave", "M", exec_fxsave),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 0,
	    CHK_FXSR, "fxsave64", "M", exec_fxsave),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 1,
	    CHK_FXSR, "fxrstor", "M", exec_fxrstor),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 1,
	    CHK_FXSR, "fxrstor64", "M", exec_fxrstor),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP, 2, CHK_SSE,
	    "ldmxcsr", "M", exec_ldmxcsr),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP, 3, CHK_SSE,
	    "stmxcsr", "M", exec_stmxcsr),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 4,
	    CHK_XSAVE, "xsave", "M", exec_xsave),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 4,
	    CHK_XSAVE, "xsave64", "M", exec_xsave),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 5,
	    CHK_XSAVE, "xrstor", "M", exec_xrstor),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 5,
	    CHK_XSAVE, "xrstor64", "M", exec_xrstor),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 6,
	    CHK_XSAVE, "xsaveopt", "M", exec_xsave),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 6,
	    CHK_XSAVE, "xsaveopt64", "M", exec_xsave),
	/* Fences: every emulated instruction is already ordered. */
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_REG | F_REGOP, 5, CHK_NONE,
	    "lfence", "", exec_nop),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_REG | F_REGOP, 6, CHK_NONE,
	    "mfence", "", exec_nop),
	ROW(MAP_0F, 0xae, PFX_NP, F_MODRM | F_REG | F_REGOP, 7, CHK_NONE,
	    "sfence", "", exec_nop),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_LOCK | F_NOW,
	    1, CHK_NONE, "cmpxchg8b", "M", exec_cmpxchg_wide),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_LOCK | F_W,
	    1, CHK_NONE, "cmpxchg16b", "M", exec_cmpxchg_wide),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 3,
	    CHK_XSAVE, "xrstors", "M", exec_xrstors),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 3,
	    CHK_XSAVE, "xrstors64", "M", exec_xrstors),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 4,
	    CHK_XSAVE, "xsavec", "M", exec_xsavec),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 4,
	    CHK_XSAVE, "xsavec64", "M", exec_xsavec),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_NOW, 5,
	    CHK_XSAVE, "xsaves", "M", exec_xsaves),
	ROW(MAP_0F, 0xc7, PFX_NP, F_MODRM | F_MEM | F_REGOP | F_W, 5,
	    CHK_XSAVE, "xsaves64", "M", exec_xsaves),
	ROW(MAP_0F, 0xb8, PFX_F3, F_MODRM, 0, CHK_NONE, "popcnt", "G,E",
	    exec_popcnt),
	ROW(MAP_0F, 0xbc, PFX_F3, F_MODRM, 0, CHK_NONE, "tzcnt", "G,E",
	    exec_lzcnt_tzcnt),
	ROW(MAP_0F, 0xbd, PFX_F3, F_MODRM, 0, CHK_NONE, "lzcnt", "G,E",
	    exec_lzcnt_tzcnt),
	/* After tzcnt/lzcnt: the first matching row wins. */
	ROW(MAP_0F, 0xbc, PFX_ANY, F_MODRM, 0, CHK_NONE, "bsf", "G,E",
	    exec_bsf_bsr),
	ROW(MAP_0F, 0xbd, PFX_ANY, F_MODRM, 0, CHK_NONE, "bsr", "G,E",
	    exec_bsf_bsr),
	ROW(MAP_0F, 0xc8, PFX_ANY, F_OPREG, 0, CHK_NONE, "bswap", "O",
	    exec_bswap),
	ROW(MAP_0F, 0xc3, PFX_NP, F_MODRM | F_MEM, 0, CHK_NONE, "movnti",
	    "Ey,Gy", exec_movnti),

	/* SSE moves. */
	SSE(MAP_0F, 0x10, PFX_NP, F_UNALIGNED, "movups", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x10, PFX_66, F_UNALIGNED, "movupd", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x10, PFX_F3, 0, "movss", "V,W", exec_movs_load),
	SSE(MAP_0F, 0x10, PFX_F2, 0, "movsd", "V,W", exec_movs_load),
	SSE(MAP_0F, 0x11, PFX_NP, F_UNALIGNED, "movups", "W,V",
	    exec_mov_store),
	SSE(MAP_0F, 0x11, PFX_66, F_UNALIGNED, "movupd", "W,V",
	    exec_mov_store),
	SSE(MAP_0F, 0x11, PFX_F3, 0, "movss", "W,V", exec_movs_store),
	SSE(MAP_0F, 0x11, PFX_F2, 0, "movsd", "W,V", exec_movs_store),
	SSE(MAP_0F, 0x12, PFX_NP, F_MEM, "movlps", "V,M", exec_movlh_load),
	SSE(MAP_0F, 0x12, PFX_NP, F_REG, "movhlps", "V,U", exec_movlh_load),
	SSE(MAP_0F, 0x12, PFX_66, F_MEM, "movlpd", "V,M", exec_movlh_load),
	SSE(MAP_0F, 0x13, PFX_NP, F_MEM, "movlps", "M,V", exec_movlh_store),
	SSE(MAP_0F, 0x13, PFX_66, F_MEM, "movlpd", "M,V", exec_movlh_store),
	SSE(MAP_0F, 0x16, PFX_NP, F_MEM, "movhps", "V,M", exec_movlh_load),
	SSE(MAP_0F, 0x16, PFX_NP, F_REG, "movlhps", "V,U", exec_movlh_load),
	SSE(MAP_0F, 0x16, PFX_66, F_MEM, "movhpd", "V,M", exec_movlh_load),
	SSE(MAP_0F, 0x17, PFX_NP, F_MEM, "movhps", "M,V", exec_movlh_store),
	SSE(MAP_0F, 0x17, PFX_66, F_MEM, "movhpd", "M,V", exec_movlh_store),
	SSE(MAP_0F, 0x28, PFX_NP, 0, "movaps", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x28, PFX_66, 0, "movapd", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x29, PFX_NP, 0, "movaps", "W,V", exec_mov_store),
	SSE(MAP_0F, 0x29, PFX_66, 0, "movapd", "W,V", exec_mov_store),
	SSE(MAP_0F, 0x2b, PFX_NP, F_MEM, "movntps", "M,V", exec_mov_store),
	SSE(MAP_0F, 0x2b, PFX_66, F_MEM, "movntpd", "M,V", exec_mov_store),
	SSE(MAP_0F, 0x50, PFX_NP, F_REG, "movmskps", "Gd,U", exec_movmsk),
	SSE(MAP_0F, 0x50, PFX_66, F_REG, "movmskpd", "Gd,U", exec_movmsk),
	SSE(MAP_0F, 0x6e, PFX_66, F_NOW, "movd", "V,Ey", exec_movd_to_xmm),
	SSE(MAP_0F, 0x6e, PFX_66, F_W, "movq", "V,Ey", exec_movd_to_xmm),
	SSE(MAP_0F, 0x7e, PFX_66, F_NOW, "movd", "Ey,V", exec_movd_from_xmm),
	SSE(MAP_0F, 0x7e, PFX_66, F_W, "movq", "Ey,V", exec_movd_from_xmm),
	SSE(MAP_0F, 0x7e, PFX_F3, 0, "movq", "V,W", exec_movq_load),
	SSE(MAP_0F, 0xd6, PFX_66, 0, "movq", "W,V", exec_movq_store),
	SSE(MAP_0F, 0x6f, PFX_66, 0, "movdqa", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x6f, PFX_F3, F_UNALIGNED, "movdqu", "V,W", exec_mov_load),
	SSE(MAP_0F, 0x7f, PFX_66, 0, "movdqa", "W,V", exec_mov_store),
	SSE(MAP_0F, 0x7f, PFX_F3, F_UNALIGNED, "movdqu", "W,V",
	    exec_mov_store),
	SSE(MAP_0F, 0xe7, PFX_66, F_MEM, "movntdq", "M,V", exec_mov_store),
	SSE(MAP_0F, 0xf0, PFX_F2, F_MEM | F_UNALIGNED, "lddqu", "V,M",
	    exec_mov_load),
	SSE(MAP_0F, 0xd7, PFX_66, F_REG, "pmovmskb", "Gd,U", exec_movmsk),
	SSE(MAP_0F, 0xc4, PFX_66, F_IMM8, "pinsrw", "V,Ed,I", exec_pinsrw),
	SSE(MAP_0F, 0xc5, PFX_66, F_REG | F_IMM8, "pextrw", "Gd,U,I",
	    exec_pextrw),

	/* Bitwise, in their integer, single and double forms. */
	SSE2(0xdb, "pand", vec_pand),
	SSE2(0xdf, "pandn", vec_pandn),
	SSE2(0xeb, "por", vec_por),
	SSE2(0xef, "pxor", vec_pxor),
	VEC(MAP_0F, 0x54, PFX_NP, 0, "andps", "V,W", vec_pand),
	VEC(MAP_0F, 0x55, PFX_NP, 0, "andnps", "V,W", vec_pandn),
	VEC(MAP_0F, 0x56, PFX_NP, 0, "orps", "V,W", vec_por),
	VEC(MAP_0F, 0x57, PFX_NP, 0, "xorps", "V,W", vec_pxor),
	SSE2(0x54, "andpd", vec_pand),
	SSE2(0x55, "andnpd", vec_pandn),
	SSE2(0x56, "orpd", vec_por),
	SSE2(0x57, "xorpd", vec_pxor),

	/* Integer arithmetic. */
	SSE2(0xfc, "paddb", vec_paddb),
	SSE2(0xfd, "paddw", vec_paddw),
	SSE2(0xfe, "paddd", vec_paddd),
	SSE2(0xd4, "paddq", vec_paddq),
	SSE2(0xf8, "psubb", vec_psubb),
	SSE2(0xf9, "psubw", vec_psubw),
	SSE2(0xfa, "psubd", vec_psubd),
	SSE2(0xfb, "psubq", vec_psubq),
	SSE2(0xdc, "paddusb", vec_paddusb),
	SSE2(0xdd, "paddusw", vec_paddusw),
	SSE2(0xd8, "psubusb", vec_psubusb),
	SSE2(0xd9, "psubusw", vec_psubusw),
	SSE2(0xec, "paddsb", vec_paddsb),
	SSE2(0xed, "paddsw", vec_paddsw),
	SSE2(0xe8, "psubsb", vec_psubsb),
	SSE2(0xe9, "psubsw", vec_psubsw),
	SSE2(0xda, "pminub", vec_pminub),
	SSE2(0xde, "pmaxub", vec_pmaxub),
	SSE2(0xea, "pminsw", vec_pminsw),
	SSE2(0xee, "pmaxsw", vec_pmaxsw),
	SSE2(0xe0, "pavgb", vec_pavgb),
	SSE2(0xe3, "pavgw", vec_pavgw),
	SSE2(0xd5, "pmullw", vec_pmullw),
	SSE2(0xe5, "pmulhw", vec_pmulhw),
	SSE2(0xe4, "pmulhuw", vec_pmulhuw),
	SSE2(0xf4, "pmuludq", vec_pmuludq),
	SSE2(0xf5, "pmaddwd", vec_pmaddwd),
	SSE2(0xf6, "psadbw", vec_psadbw),

	/* Compares. */
	SSE2(0x74, "pcmpeqb", vec_pcmpeqb),
	SSE2(0x75, "pcmpeqw", vec_pcmpeqw),
	SSE2(0x76, "pcmpeqd", vec_pcmpeqd),
	SSE2(0x64, "pcmpgtb", vec_pcmpgtb),
	SSE2(0x65, "pcmpgtw", vec_pcmpgtw),
	SSE2(0x66, "pcmpgtd", vec_pcmpgtd),

	/* Shuffles, unpacks, packs. */
	VEC(MAP_0F, 0x70, PFX_66, F_IMM8, "pshufd", "V,W,I", vec_pshufd),
	VEC(MAP_0F, 0x70, PFX_F2, F_IMM8, "pshuflw", "V,W,I", vec_pshuflw),
	VEC(MAP_0F, 0x70, PFX_F3, F_IMM8, "pshufhw", "V,W,I", vec_pshufhw),
	VEC(MAP_0F, 0xc6, PFX_NP, F_IMM8, "shufps", "V,W,I", vec_shufps),
	VEC(MAP_0F, 0xc6, PFX_66, F_IMM8, "shufpd", "V,W,I", vec_shufpd),
	SSE2(0x60, "punpcklbw", vec_punpcklbw),
	SSE2(0x61, "punpcklwd", vec_punpcklwd),
	SSE2(0x62, "punpckldq", vec_punpckldq),
	SSE2(0x6c, "punpcklqdq", vec_punpcklqdq),
	SSE2(0x68, "punpckhbw", vec_punpckhbw),
	SSE2(0x69, "punpckhwd", vec_punpckhwd),
	SSE2(0x6a, "punpckhdq", vec_punpckhdq),
	SSE2(0x6d, "punpckhqdq", vec_punpckhqdq),
	VEC(MAP_0F, 0x14, PFX_NP, 0, "unpcklps", "V,W", vec_punpckldq),
	VEC(MAP_0F, 0x15, PFX_NP, 0, "unpckhps", "V,W", vec_punpckhdq),
	SSE2(0x14, "unpcklpd", vec_punpcklqdq),
	SSE2(0x15, "unpckhpd", vec_punpckhqdq),
	SSE2(0x63, "packsswb", vec_packsswb),
	SSE2(0x67, "packuswb", vec_packuswb),
	SSE2(0x6b, "packssdw", vec_packssdw),

	/* Shifts by xmm/m128 and by imm8. */
	SSE2(0xd1, "psrlw", vec_psrlw),
	SSE2(0xd2, "psrld", vec_psrld),
	SSE2(0xd3, "psrlq", vec_psrlq),
	SSE2(0xe1, "psraw", vec_psraw),
	SSE2(0xe2, "psrad", vec_psrad),
	SSE2(0xf1, "psllw", vec_psllw),
	SSE2(0xf2, "pslld", vec_pslld),
	SSE2(0xf3, "psllq", vec_psllq),
	SHIFT_IMM(0x71, 2, "psrlw", vec_psrlw),
	SHIFT_IMM(0x71, 4, "psraw", vec_psraw),
	SHIFT_IMM(0x71, 6, "psllw", vec_psllw),
	SHIFT_IMM(0x72, 2, "psrld", vec_psrld),
	SHIFT_IMM(0x72, 4, "psrad", vec_psrad),
	SHIFT_IMM(0x72, 6, "pslld", vec_pslld),
	SHIFT_IMM(0x73, 2, "psrlq", vec_psrlq),
	SHIFT_IMM(0x73, 3, "psrldq", vec_psrldq),
	SHIFT_IMM(0x73, 6, "psllq", vec_psllq),
	SHIFT_IMM(0x73, 7, "pslldq", vec_pslldq),

	/* SSSE3. */
	VEC(MAP_0F38, 0x00, PFX_66, 0, "pshufb", "V,W", vec_pshufb),
	VEC(MAP_0F3A, 0x0f, PFX_66, F_IMM8, "palignr", "V,W,I", vec_palignr),
};

#define NR_OPS (sizeof(emu_ops) / sizeof(emu_ops[0]))

/* Decoding. */

static bool
op_opcode_match(const struct emu_op *op, unsigned int map, uint8_t opcode)
{
	if (op->map != map)
		return false;
	if (op->flags & F_OPREG)
		return (opcode & 0xf8) == op->opcode;
	return opcode == op->opcode;
}

static bool
op_match(const struct emu_op *op, const struct emu_insn *in)
{
	if (!op_opcode_match(op, in->map, in->opcode))
		return false;
	if (op->pfx != PFX_ANY && op->pfx != in->pfx)
		return false;
	if ((op->flags & F_MEM) && !in->mem)
		return false;
	if ((op->flags & F_REG) && in->mem)
		return false;
	if ((op->flags & F_REGOP) && ((in->modrm >> 3) & 7) != op->ext)
		return false;
	if ((op->flags & F_FIXED) && in->modrm != op->ext)
		return false;
	if ((op->flags & F_W) && !(in->rex & REX_W))
		return false;
	if ((op->flags & F_NOW) && (in->rex & REX_W))
		return false;
	return true;
}

struct emu_fetch {
	const uint8_t *bytes;
	size_t len;
	size_t pos;
};

/*
 * Next instruction byte: -EAGAIN when the caller's buffer ends first,
 * -E2BIG past the architectural limit of 15 bytes.
 */
static int
fetch(struct emu_fetch *f, uint8_t *out)
{
	if (f->pos >= EMU_MAX_INSN_LEN)
		return -E2BIG;
	if (f->pos >= f->len)
		return -EAGAIN;
	*out = f->bytes[f->pos++];
	return 0;
}

static int
fetch_le(struct emu_fetch *f, unsigned int n, uint64_t *out)
{
	uint64_t v = 0;
	uint8_t b;
	int r;

	for (unsigned int i = 0; i < n; i++) {
		r = fetch(f, &b);
		if (r)
			return r;
		v |= (uint64_t)b << (8 * i);
	}
	*out = v;
	return 0;
}

static int64_t
sign_extend(uint64_t v, unsigned int bytes)
{
	unsigned int shift = 64 - 8 * bytes;

	return (int64_t)(v << shift) >> shift;
}

/* The ModRM byte and what follows it: SIB and displacement. */
static int
decode_modrm(struct emu_insn *in, struct emu_fetch *f)
{
	/* 16-bit addressing: bx+si, bx+di, bp+si, bp+di, si, di, bp, bx. */
	static const int8_t base16[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };
	static const int8_t index16[8] = { 6, 7, 6, 7, -1, -1, -1, -1 };
	unsigned int rmlow, dispsize = 0;
	uint64_t disp = 0;
	uint8_t sib;
	int r;

	r = fetch(f, &in->modrm);
	if (r)
		return r;
	in->mod = in->modrm >> 6;
	in->reg = ((in->modrm >> 3) & 7) | ((in->rex & REX_R) ? 8 : 0);
	rmlow = in->modrm & 7;
	in->rm = rmlow | ((in->rex & REX_B) ? 8 : 0);
	in->mem = in->mod != 3;
	if (!in->mem)
		return 0;

	if (in->addrsize == 2) {
		in->scale = 1;
		if (in->mod == 0 && rmlow == 6) {
			dispsize = 2;
		} else {
			in->base = base16[rmlow];
			in->index = index16[rmlow];
			dispsize = in->mod == 1 ? 1 : in->mod == 2 ? 2 : 0;
		}
	} else {
		if (rmlow == 4) {
			r = fetch(f, &sib);
			if (r)
				return r;
			in->scale = 1u << (sib >> 6);
			in->index = ((sib >> 3) & 7) |
				    ((in->rex & REX_X) ? 8 : 0);
			if (in->index == 4)
				in->index = -1;
			if ((sib & 7) == 5 && in->mod == 0)
				dispsize = 4;
			else
				in->base = (sib & 7) |
					   ((in->rex & REX_B) ? 8 : 0);
		} else if (rmlow == 5 && in->mod == 0) {
			dispsize = 4;
			/* Absolute in 16/32-bit modes, RIP-relative in 64. */
			in->riprel = in->mode == 64;
		} else {
			in->base = in->rm;
		}
		if (in->mod == 1)
			dispsize = 1;
		else if (in->mod == 2)
			dispsize = 4;
	}
	if (dispsize) {
		r = fetch_le(f, dispsize, &disp);
		if (r)
			return r;
		in->disp = sign_extend(disp, dispsize);
	}
	return 0;
}

/*
 * Decodes the instruction in bytes[0..len) for a CPU in mode (16, 32, 64).
 * Returns 0, -ENOENT for an instruction not in the table, -EAGAIN when the
 * bytes end too early, -E2BIG when it is longer than 15 bytes.
 */
static int
emu_decode(struct emu_insn *in, const uint8_t *bytes, size_t len,
	   unsigned int mode)
{
	struct emu_fetch f = { .bytes = bytes, .len = len, .pos = 0 };
	const struct emu_op *op = NULL;
	uint8_t b, last_rep = 0;
	bool need_modrm = false, known = false;
	bool p66;
	int r;

	memset(in, 0, sizeof(*in));
	in->mode = mode;
	in->seg = SEG_NONE;
	in->base = in->index = -1;
	for (;;) {
		r = fetch(&f, &b);
		if (r)
			return r;
		switch (b) {
		case 0x66: in->has66 = true; break;
		case 0x67: in->has67 = true; break;
		case 0xf2: case 0xf3: last_rep = b; break;
		case 0xf0: in->lock = true; break;
		case 0x26: in->seg = SEG_ES; break;
		case 0x2e: in->seg = SEG_CS; break;
		case 0x36: in->seg = SEG_SS; break;
		case 0x3e: in->seg = SEG_DS; break;
		case 0x64: in->seg = SEG_FS; break;
		case 0x65: in->seg = SEG_GS; break;
		default:
			if (mode == 64 && (b & 0xf0) == 0x40) {
				in->rex = b;
				continue;
			}
			goto opcode;
		}
		/* A REX prefix counts only right before the opcode. */
		in->rex = 0;
	}
opcode:
	/* The last of f2/f3 is the mandatory prefix, else 66. */
	in->pfx = last_rep == 0xf3 ? PFX_F3 : last_rep == 0xf2 ? PFX_F2 :
		  in->has66 ? PFX_66 : PFX_NP;
	in->map = MAP_1B;
	if (b == 0x0f) {
		in->map = MAP_0F;
		r = fetch(&f, &b);
		if (r)
			return r;
		if (b == 0x38 || b == 0x3a) {
			in->map = b == 0x38 ? MAP_0F38 : MAP_0F3A;
			r = fetch(&f, &b);
			if (r)
				return r;
		}
	}
	in->opcode = b;
	if (mode == 64)
		in->addrsize = in->has67 ? 4 : 8;
	else if (mode == 32)
		in->addrsize = in->has67 ? 2 : 4;
	else
		in->addrsize = in->has67 ? 4 : 2;

	/* Every row of one opcode agrees on whether a ModRM byte follows. */
	for (size_t i = 0; i < NR_OPS; i++) {
		if (op_opcode_match(&emu_ops[i], in->map, in->opcode)) {
			known = true;
			need_modrm = emu_ops[i].flags & F_MODRM;
			break;
		}
	}
	if (!known)
		return -ENOENT;
	if (need_modrm) {
		r = decode_modrm(in, &f);
		if (r)
			return r;
	}
	for (size_t i = 0; i < NR_OPS; i++) {
		if (op_match(&emu_ops[i], in)) {
			op = &emu_ops[i];
			break;
		}
	}
	if (!op)
		return -ENOENT;
	if (op->flags & F_IMM8) {
		r = fetch(&f, &in->imm);
		if (r)
			return r;
	}
	in->op = op;
	in->len = (unsigned int)f.pos;
	/* A mandatory 66 selects the instruction, not the operand size. */
	p66 = in->has66 && op->pfx != PFX_66;
	if (mode == 64)
		in->opsize = (in->rex & REX_W) ? 8 : p66 ? 2 : 4;
	else if (mode == 32)
		in->opsize = p66 ? 2 : 4;
	else
		in->opsize = p66 ? 4 : 2;
	return 0;
}

/* Execution. */

/* The faults an instruction raises from CR0/CR4 before it does anything. */
static enum emu_result
check_available(struct emu_ctx *c)
{
	uint64_t cr0 = c->sregs->cr0, cr4 = c->sregs->cr4;

	switch (c->in.op->chk) {
	case CHK_SSE:
		if ((cr0 & CR0_EM) || !(cr4 & CR4_OSFXSR))
			return emu_fault(c, EMU_VEC_UD);
		if (cr0 & CR0_TS)
			return emu_fault(c, EMU_VEC_NM);
		break;
	case CHK_MMX:
		if (cr0 & CR0_EM)
			return emu_fault(c, EMU_VEC_UD);
		if (cr0 & CR0_TS)
			return emu_fault(c, EMU_VEC_NM);
		if (x87_pending(c))
			return emu_fault(c, EMU_VEC_MF);
		break;
	case CHK_X87:
	case CHK_FXSR:
		if (cr0 & (CR0_EM | CR0_TS))
			return emu_fault(c, EMU_VEC_NM);
		break;
	case CHK_WAIT:
		if ((cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
			return emu_fault(c, EMU_VEC_NM);
		break;
	case CHK_XSAVE:
		if (!(cr4 & CR4_OSXSAVE))
			return emu_fault(c, EMU_VEC_UD);
		if (cr0 & CR0_TS)
			return emu_fault(c, EMU_VEC_NM);
		break;
	default:
		break;
	}
	return EMU_OK;
}

static uint64_t
seg_base(const struct kvm_sregs *sr, unsigned int seg)
{
	switch (seg) {
	case SEG_ES: return sr->es.base;
	case SEG_CS: return sr->cs.base;
	case SEG_SS: return sr->ss.base;
	case SEG_FS: return sr->fs.base;
	case SEG_GS: return sr->gs.base;
	default: return sr->ds.base;
	}
}

/*
 * The linear address of the memory operand. In 64-bit mode only FS and GS
 * have a base; elsewhere the segment base is added and the result wraps at
 * 4 GiB. Segment limits are not checked (flat segments assumed).
 */
static void
compute_la(struct emu_ctx *c)
{
	const struct emu_insn *in = &c->in;
	uint64_t ea = (uint64_t)in->disp;
	unsigned int seg = in->seg;

	if (in->riprel)
		ea += c->regs.rip + in->len;
	if (in->base >= 0)
		ea += *gpr_ptr(&c->regs, (unsigned int)in->base);
	if (in->index >= 0)
		ea += *gpr_ptr(&c->regs, (unsigned int)in->index) * in->scale;
	ea &= size_mask(in->addrsize);
	if (seg == SEG_NONE)
		seg = (in->base == 4 || in->base == 5) ? SEG_SS : SEG_DS;
	c->la_seg = (uint8_t)seg;
	if (in->mode == 64)
		c->la = ea + ((seg == SEG_FS || seg == SEG_GS) ?
			      seg_base(c->sregs, seg) : 0);
	else
		c->la = (ea + seg_base(c->sregs, seg)) & 0xffffffffULL;
}

static void
report_none(struct emu_vcpu *s)
{
	s->exception = -1;
	s->exception_has_error = false;
	s->error_code = 0;
}

static enum emu_result
report_exception(struct emu_vcpu *s, const struct emu_ctx *c)
{
	s->exception = c->vector;
	s->exception_has_error = c->has_error;
	s->error_code = c->error_code;
	return EMU_EXCEPTION;
}

enum emu_result
emu_step(struct emu_vcpu *s, const uint8_t *insn, size_t len,
	 const struct emu_mem_ops *ops, void *opaque)
{
	struct emu_ctx c;
	enum emu_result r;
	uint64_t ipmask;
	int d;

	if (!s)
		return EMU_UNHANDLED;
	report_none(s);
	if (!insn)
		return EMU_UNHANDLED;
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.sregs = &s->sregs;
	c.ops = ops;
	c.opaque = opaque;
	c.vector = -1;
	d = emu_decode(&c.in, insn, len, emu_mode(&s->sregs));
	if (d == -E2BIG) {
		emu_gp0(&c);
		return report_exception(s, &c);
	}
	if (d)
		return EMU_UNHANDLED;
	c.regs = s->regs;
	c.fpu = s->fpu;
	c.cpl = emu_cpl(&s->sregs, s->regs.rflags);

	if (c.in.lock && !((c.in.op->flags & F_LOCK) && c.in.mem))
		r = emu_fault(&c, EMU_VEC_UD);
	else
		r = check_available(&c);
	if (r == EMU_OK) {
		if (c.in.mem)
			compute_la(&c);
		r = c.in.op->exec(&c);
	}
	if (r == EMU_EXCEPTION && !c.trap)
		return report_exception(s, &c);
	if (r == EMU_MEM_FAULT) {
		s->fault_gva = c.fault_gva;
		s->fault_write = c.fault_write;
		return r;
	}
	if (r != EMU_OK && r != EMU_EXCEPTION)
		return r;

	if (c.wr_len && (!ops || !ops->write ||
			 ops->write(opaque, c.wr_gva, c.wr_buf, c.wr_len))) {
		s->fault_gva = c.wr_gva;
		s->fault_write = true;
		return EMU_MEM_FAULT;
	}
	if (!c.branched) {
		ipmask = c.in.mode == 64 ? ~0ULL :
			 s->sregs.cs.db ? 0xffffffffULL : 0xffffULL;
		c.regs.rip = (c.regs.rip + c.in.len) & ipmask;
		/* A completed instruction clears RF. */
		c.regs.rflags &= ~RFLAGS_RF;
	}
	s->regs = c.regs;
	s->regs_dirty = true;
	if (c.fpu_changed) {
		s->fpu = c.fpu;
		s->fpu_dirty = true;
	}
	if (r == EMU_EXCEPTION)
		return report_exception(s, &c);
	return EMU_OK;
}

/* Description for logs. */

struct emu_text {
	char *buf;
	size_t size;
	size_t used;
};

static void emu_text_add(struct emu_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
emu_text_add(struct emu_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->used + 1 >= t->size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->used, t->size - t->used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	t->used += (size_t)n;
	if (t->used >= t->size)
		t->used = t->size - 1;
}

static const char *
gpr_name(unsigned int n, unsigned int size)
{
	static const char *const names64[16] = {
		"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
	};
	static const char *const names32[16] = {
		"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
		"r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d",
	};
	static const char *const names16[16] = {
		"ax", "cx", "dx", "bx", "sp", "bp", "si", "di",
		"r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w",
	};

	n &= 15;
	return size == 8 ? names64[n] : size == 4 ? names32[n] : names16[n];
}

static void
describe_mem(struct emu_text *t, const struct emu_insn *in)
{
	static const char *const segs[] = {
		"es", "cs", "ss", "ds", "fs", "gs",
	};
	bool any = false;

	if (in->seg != SEG_NONE)
		emu_text_add(t, "%s:", segs[in->seg]);
	emu_text_add(t, "[");
	if (in->riprel) {
		emu_text_add(t, "%s", in->addrsize == 4 ? "eip" : "rip");
		any = true;
	}
	if (in->base >= 0) {
		emu_text_add(t, "%s", gpr_name((unsigned int)in->base,
					       in->addrsize));
		any = true;
	}
	if (in->index >= 0) {
		emu_text_add(t, "%s%s", any ? "+" : "",
			     gpr_name((unsigned int)in->index, in->addrsize));
		if (in->scale > 1)
			emu_text_add(t, "*%u", in->scale);
		any = true;
	}
	if (!any)
		emu_text_add(t, "0x%llx", (unsigned long long)in->disp &
			     size_mask(in->addrsize));
	else if (in->disp < 0)
		emu_text_add(t, "-0x%llx", -(unsigned long long)in->disp);
	else if (in->disp > 0)
		emu_text_add(t, "+0x%llx", (unsigned long long)in->disp);
	emu_text_add(t, "]");
}

static void
describe_operand(struct emu_text *t, const struct emu_insn *in,
		 const char *tok, size_t toklen)
{
	unsigned int size = in->opsize;

	if (toklen == 2 && tok[1] == 'd')
		size = 4;
	else if (toklen == 2 && tok[1] == 'y')
		size = (in->rex & REX_W) ? 8 : 4;
	else if (toklen != 1)
		goto literal;
	switch (tok[0]) {
	case 'V':
		emu_text_add(t, "xmm%u", in->reg);
		return;
	case 'U':
		emu_text_add(t, "xmm%u", in->rm);
		return;
	case 'W':
		if (in->mem)
			describe_mem(t, in);
		else
			emu_text_add(t, "xmm%u", in->rm);
		return;
	case 'G':
		emu_text_add(t, "%s", gpr_name(in->reg, size));
		return;
	case 'E':
		if (in->mem)
			describe_mem(t, in);
		else
			emu_text_add(t, "%s", gpr_name(in->rm, size));
		return;
	case 'M':
		describe_mem(t, in);
		return;
	case 'O':
		emu_text_add(t, "%s", gpr_name((in->opcode & 7) |
					       ((in->rex & REX_B) ? 8 : 0),
					       size));
		return;
	case 'I':
		emu_text_add(t, "0x%x", in->imm);
		return;
	default:
		break;
	}
literal:
	emu_text_add(t, "%.*s", (int)toklen, tok);
}

int
emu_describe(const uint8_t *insn, size_t len, char *buf, size_t buflen)
{
	struct emu_text t = { .buf = buf, .size = buflen, .used = 0 };
	struct emu_insn in;
	const char *p;

	if (!buf || !buflen)
		return -EINVAL;
	buf[0] = '\0';
	if (!insn || emu_decode(&in, insn, len, 64) != 0) {
		for (size_t i = 0; insn && i < len && i < EMU_MAX_INSN_LEN;
		     i++)
			emu_text_add(&t, "%s%02x", i ? " " : "", insn[i]);
		return 0;
	}
	emu_text_add(&t, "%s%s", in.lock ? "lock " : "", in.op->name);
	p = in.op->fmt;
	for (bool first = true; *p; first = false) {
		size_t n = strcspn(p, ",");

		emu_text_add(&t, "%s", first ? " " : ", ");
		describe_operand(&t, &in, p, n);
		p += n;
		if (*p == ',')
			p++;
	}
	return (int)in.len;
}

const char *
emu_result_name(enum emu_result r)
{
	switch (r) {
	case EMU_OK: return "ok";
	case EMU_EXCEPTION: return "exception";
	case EMU_UNHANDLED: return "unhandled";
	case EMU_MEM_FAULT: return "memory fault";
	default: return "?";
	}
}
