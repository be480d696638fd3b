/* SPDX-License-Identifier: MIT */
#include "x86/acpi.h"
#include "dev/acpi_pm.h"
#include "dev/pci.h"
#include "layout.h"
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The packed layouts must match the specification byte for byte. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "ACPI tables are built in host byte order");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");
_Static_assert(sizeof(struct acpi_header) == 36, "SDT header");
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(offsetof(struct acpi_fadt, reset_reg) == 116, "FADT reset");
_Static_assert(offsetof(struct acpi_fadt, x_firmware_ctrl) == 132,
	       "FADT X_FIRMWARE_CTRL");
_Static_assert(offsetof(struct acpi_fadt, x_pm1a_evt_blk) == 148,
	       "FADT X_PM1a_EVT_BLK");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244,
	       "FADT SLEEP_CONTROL_REG");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT (revision 6)");
_Static_assert(sizeof(struct acpi_facs) == 64, "FACS");
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT");
_Static_assert(sizeof(struct acpi_madt_lapic) == 8, "MADT LAPIC");
_Static_assert(sizeof(struct acpi_madt_ioapic) == 12, "MADT IOAPIC");
_Static_assert(sizeof(struct acpi_madt_iso) == 10, "MADT ISO");
_Static_assert(sizeof(struct acpi_madt_lapic_nmi) == 6, "MADT LAPIC NMI");
_Static_assert(ACPI_PM_TMR_BITS == 24 || ACPI_PM_TMR_BITS == 32,
	       "the PM timer is 24 or 32 bits wide");
/* The in-kernel IOAPIC has 24 inputs; 0-15 are the ISA interrupts. */
_Static_assert(IRQ_PCI_INTX_BASE >= 16 &&
	       IRQ_PCI_INTX_BASE + IRQ_PCI_NR_INTX <= 24,
	       "PCI INTx goes to IOAPIC inputs 16-23");

#define ACPI_OEM_ID		"VMMD  "
#define ACPI_OEM_TABLE_PREFIX	"VMMD"
#define ACPI_CREATOR_ID		"VMMD"
#define ACPI_OEM_REVISION	1
#define ACPI_CREATOR_REVISION	1

/* What the FADT reset register holds: a full reset through port 0xCF9. */
#define ACPI_RESET_VALUE	0x06

/* GAS access sizes. */
#define ACPI_GAS_ACCESS_BYTE	1
#define ACPI_GAS_ACCESS_WORD	2
#define ACPI_GAS_ACCESS_DWORD	3

/* ISA interrupts the MADT overrides. */
#define ACPI_ISA_IRQ_PIT	0
#define ACPI_GSI_PIT		2

/* --- AML --------------------------------------------------------------- */

#define AML_ZERO_OP		0x00
#define AML_ONE_OP		0x01
#define AML_NAME_OP		0x08
#define AML_BYTE_PREFIX		0x0a
#define AML_WORD_PREFIX		0x0b
#define AML_DWORD_PREFIX	0x0c
#define AML_STRING_PREFIX	0x0d
#define AML_QWORD_PREFIX	0x0e
#define AML_SCOPE_OP		0x10
#define AML_BUFFER_OP		0x11
#define AML_PACKAGE_OP		0x12
#define AML_METHOD_OP		0x14
#define AML_DUAL_NAME_PREFIX	0x2e
#define AML_MULTI_NAME_PREFIX	0x2f
#define AML_EXT_OP_PREFIX	0x5b
#define AML_ROOT_CHAR		0x5c
#define AML_PARENT_PREFIX	0x5e
#define AML_RETURN_OP		0xa4
#define AML_ONES_OP		0xff
#define AML_EXT_DEVICE_OP	0x82

/* Resource descriptors (ACPI 6.x, 6.4). */
#define RT_IRQ_NOFLAGS		0x22	/* small, type 4, 2 bytes */
#define RT_IO			0x47	/* small, type 8, 7 bytes */
#define RT_END_TAG		0x79	/* small, type 0xf, 1 byte */
#define RT_DWORD_SPACE		0x87
#define RT_WORD_SPACE		0x88
#define RT_QWORD_SPACE		0x8a
#define RT_SPACE_MEMORY		0
#define RT_SPACE_IO		1
#define RT_SPACE_BUS		2
/* General flags: producer, positive decode, minimum and maximum fixed. */
#define RT_FLAGS_FIXED_WINDOW	0x0c
#define RT_IO_ENTIRE_RANGE	0x03
#define RT_MEM_RW		0x01
#define RT_MEM_CACHEABLE	(1 << 1)
#define RT_IO_DECODE16		0x01

/*
 * A growing AML byte stream. The first error sticks, so that building
 * code can emit a whole tree and check once at the end.
 */
struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err;
};

/* No AML table we build comes near this; a runaway loop would. */
#define AML_MAX_LEN		(1u << 20)

static bool
aml_reserve(struct aml *a, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (a->err)
		return false;
	if (n > AML_MAX_LEN - a->len) {
		a->err = -E2BIG;
		return false;
	}
	if (a->len + n <= a->cap)
		return true;
	cap = a->cap ? a->cap : 256;
	while (cap < a->len + n)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p) {
		a->err = -ENOMEM;
		return false;
	}
	a->buf = p;
	a->cap = cap;
	return true;
}

static void
aml_free(struct aml *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}

static void
aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!aml_reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void
aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* n bytes of v, little-endian. */
static void
aml_le(struct aml *a, uint64_t v, unsigned int n)
{
	uint8_t b[8];
	unsigned int i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* An Integer in the shortest encoding, as iasl would choose it. */
static void
aml_int(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v == UINT64_MAX) {
		aml_byte(a, AML_ONES_OP);
	} else if (v <= UINT8_MAX) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

/* An ASCII string; AML strings are 7-bit and NUL-terminated. */
static void
aml_string(struct aml *a, const char *s)
{
	const char *c;

	for (c = s; *c; c++) {
		if ((unsigned char)*c >= 0x80) {
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
	}
	aml_byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

/*
 * An EISA id such as "PNP0A03", compressed into 32 bits the way _HID
 * wants it: three 5-bit letters, then four hex digits.
 */
static void
aml_eisaid(struct aml *a, const char *id)
{
	uint8_t b[4];
	int i, d[4];

	if (strlen(id) != 7) {
		a->err = a->err ? a->err : -EINVAL;
		return;
	}
	for (i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
	}
	for (i = 0; i < 4; i++) {
		char c = id[3 + i];

		if (c >= '0' && c <= '9')
			d[i] = c - '0';
		else if (c >= 'A' && c <= 'F')
			d[i] = c - 'A' + 10;
		else {
			a->err = a->err ? a->err : -EINVAL;
			return;
		}
	}
	b[0] = (uint8_t)(((id[0] - 0x40) << 2) | ((id[1] - 0x40) >> 3));
	b[1] = (uint8_t)((((id[1] - 0x40) & 0x07) << 5) | (id[2] - 0x40));
	b[2] = (uint8_t)((d[0] << 4) | d[1]);
	b[3] = (uint8_t)((d[2] << 4) | d[3]);
	/* Always a DWordConst, as iasl emits EISAID(). */
	aml_byte(a, AML_DWORD_PREFIX);
	aml_bytes(a, b, 4);
}

static bool
aml_seg_char_ok(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !first && c >= '0' && c <= '9';
}

/*
 * A NameString from ASL-like text: an optional '\' or '^' prefixes, then
 * dot-separated segments of up to four characters ("\_SB.PCI0", "_S5").
 * Short segments are padded with '_', as ASL does.
 */
static void
aml_namestring(struct aml *a, const char *path)
{
	uint8_t segs[255][4];
	unsigned int nsegs = 0, i;
	const char *p = path;

	if (*p == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	while (*p) {
		unsigned int n = 0;

		if (nsegs == 255)
			goto bad;
		while (*p && *p != '.') {
			if (n == 4 || !aml_seg_char_ok(*p, n == 0))
				goto bad;
			segs[nsegs][n++] = (uint8_t)*p++;
		}
		if (n == 0)
			goto bad;
		while (n < 4)
			segs[nsegs][n++] = '_';
		nsegs++;
		if (*p == '.' && *++p == '\0')
			goto bad;
	}
	if (nsegs == 0) {
		aml_byte(a, 0x00);	/* NullName */
		return;
	}
	if (nsegs == 2) {
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	} else if (nsegs > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)nsegs);
	}
	for (i = 0; i < nsegs; i++)
		aml_bytes(a, segs[i], 4);
	return;
bad:
	a->err = a->err ? a->err : -EINVAL;
}

/*
 * Open an object that carries a PkgLength: emit its opcode (with the
 * extended prefix when ext) and return where its body starts. The
 * PkgLength goes in when aml_close() knows the body's size.
 */
static size_t
aml_open(struct aml *a, bool ext, uint8_t op)
{
	if (ext)
		aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, op);
	return a->len;
}

static void
aml_close(struct aml *a, size_t start)
{
	uint8_t pl[4];
	size_t body;
	unsigned int n;

	if (a->err)
		return;
	body = a->len - start;
	n = body > UINT32_MAX ? 0 : acpi_aml_pkglen_encode(pl, (uint32_t)body);
	if (n == 0) {
		a->err = -E2BIG;
		return;
	}
	if (!aml_reserve(a, n))
		return;
	memmove(a->buf + start + n, a->buf + start, body);
	memcpy(a->buf + start, pl, n);
	a->len += n;
}

/* Name(path, ...): the caller emits the data object next. */
static void
aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_namestring(a, path);
}

static size_t
aml_scope_open(struct aml *a, const char *path)
{
	size_t s = aml_open(a, false, AML_SCOPE_OP);

	aml_namestring(a, path);
	return s;
}

static size_t
aml_device_open(struct aml *a, const char *path)
{
	size_t s = aml_open(a, true, AML_EXT_DEVICE_OP);

	aml_namestring(a, path);
	return s;
}

/*
 * Method(path, nargs, NotSerialized): the caller emits the body (a
 * TermList) and closes it.
 */
static size_t
aml_method_open(struct aml *a, const char *path, unsigned int nargs)
{
	size_t s = aml_open(a, false, AML_METHOD_OP);

	aml_namestring(a, path);
	aml_byte(a, (uint8_t)(nargs & 7));
	return s;
}

/*
 * Package(n){...}: the caller emits exactly n data objects and closes it.
 * NumElements is one byte; a longer list would need a VarPackage.
 */
static size_t
aml_package_open(struct aml *a, unsigned int n)
{
	size_t s = aml_open(a, false, AML_PACKAGE_OP);

	if (n > UINT8_MAX)
		a->err = a->err ? a->err : -E2BIG;
	aml_byte(a, (uint8_t)n);
	return s;
}

/* Package(){...} of small integers. */
static void
aml_package_ints(struct aml *a, const uint64_t *v, unsigned int n)
{
	size_t s = aml_package_open(a, n);
	unsigned int i;

	for (i = 0; i < n; i++)
		aml_int(a, v[i]);
	aml_close(a, s);
}

/* Buffer(){bytes}; a ResourceTemplate is one of these. */
static void
aml_buffer(struct aml *a, const uint8_t *bytes, size_t n)
{
	size_t s = aml_open(a, false, AML_BUFFER_OP);

	aml_int(a, n);
	aml_bytes(a, bytes, n);
	aml_close(a, s);
}

/* --- Resource templates ------------------------------------------------- */

/* WordBusNumber / WordIO: a fixed window [min, max]. */
static void
rt_word_space(struct aml *rt, uint8_t space, uint8_t type_flags,
	      uint16_t min, uint16_t max)
{
	aml_byte(rt, RT_WORD_SPACE);
	aml_le(rt, 13, 2);
	aml_byte(rt, space);
	aml_byte(rt, RT_FLAGS_FIXED_WINDOW);
	aml_byte(rt, type_flags);
	aml_le(rt, 0, 2);			/* granularity */
	aml_le(rt, min, 2);
	aml_le(rt, max, 2);
	aml_le(rt, 0, 2);			/* translation */
	aml_le(rt, (uint32_t)max - min + 1, 2);
}

/* DWordMemory: a fixed window [min, max] below 4 GiB. */
static void
rt_dword_memory(struct aml *rt, uint8_t type_flags, uint32_t min,
		uint32_t max)
{
	aml_byte(rt, RT_DWORD_SPACE);
	aml_le(rt, 23, 2);
	aml_byte(rt, RT_SPACE_MEMORY);
	aml_byte(rt, RT_FLAGS_FIXED_WINDOW);
	aml_byte(rt, type_flags);
	aml_le(rt, 0, 4);
	aml_le(rt, min, 4);
	aml_le(rt, max, 4);
	aml_le(rt, 0, 4);
	aml_le(rt, (uint64_t)max - min + 1, 4);
}

/* QWordMemory: a fixed window [min, max]. */
static void
rt_qword_memory(struct aml *rt, uint8_t type_flags, uint64_t min,
		uint64_t max)
{
	aml_byte(rt, RT_QWORD_SPACE);
	aml_le(rt, 43, 2);
	aml_byte(rt, RT_SPACE_MEMORY);
	aml_byte(rt, RT_FLAGS_FIXED_WINDOW);
	aml_byte(rt, type_flags);
	aml_le(rt, 0, 8);
	aml_le(rt, min, 8);
	aml_le(rt, max, 8);
	aml_le(rt, 0, 8);
	aml_le(rt, max - min + 1, 8);
}

/* IO(Decode16, base, base, 1, len): a fixed range of ports. */
static void
rt_io_fixed(struct aml *rt, uint16_t base, uint8_t len)
{
	aml_byte(rt, RT_IO);
	aml_byte(rt, RT_IO_DECODE16);
	aml_le(rt, base, 2);
	aml_le(rt, base, 2);
	aml_byte(rt, 1);			/* alignment */
	aml_byte(rt, len);
}

/* IRQNoFlags(){irq}: an ISA interrupt, edge, active high, exclusive. */
static void
rt_irq_noflags(struct aml *rt, unsigned int irq)
{
	aml_byte(rt, RT_IRQ_NOFLAGS);
	aml_le(rt, 1u << irq, 2);
}

/* The end tag, with a checksum that makes the template sum to zero. */
static void
rt_end(struct aml *rt)
{
	uint8_t sum;

	aml_byte(rt, RT_END_TAG);
	if (rt->err)
		return;
	sum = acpi_checksum(rt->buf, rt->len);
	aml_byte(rt, (uint8_t)-sum);
}

/* Name(_CRS, ResourceTemplate(){...}) from a finished template. */
static void
aml_crs(struct aml *a, struct aml *rt)
{
	rt_end(rt);
	if (rt->err) {
		a->err = a->err ? a->err : rt->err;
		return;
	}
	aml_name(a, "_CRS");
	aml_buffer(a, rt->buf, rt->len);
}

/* --- DSDT --------------------------------------------------------------- */

/*
 * _PRT covers slots 1 to PCI_MAX_SLOTS - 1, those pci_add_device() hands
 * out: slot 0 is the host bridge itself, which has no interrupt pin.
 */
#define ACPI_PRT_FIRST_SLOT	1
#define ACPI_PRT_NR_ENTRIES	((PCI_MAX_SLOTS - ACPI_PRT_FIRST_SLOT) * \
				 IRQ_PCI_NR_PINS)

/*
 * Name(_PRT, Package(){ Package(){ Address, Pin, Source, SourceIndex },
 * ... }) with every pin of every slot (ACPI 6.4, 6.2.13): Address is the
 * slot in the high word with 0xFFFF (any function) in the low one, and a
 * Source of 0 makes SourceIndex the GSI itself, level-triggered and
 * active-low. Without it Linux cannot route INTx ("can't derive routing
 * for PCI INT A"), which a driver without MSI-X depends on.
 */
static void
acpi_dsdt_prt(struct aml *a)
{
	unsigned int slot, pin;
	size_t prt, entry;

	aml_name(a, "_PRT");
	prt = aml_package_open(a, ACPI_PRT_NR_ENTRIES);
	for (slot = ACPI_PRT_FIRST_SLOT; slot < PCI_MAX_SLOTS; slot++) {
		for (pin = 0; pin < IRQ_PCI_NR_PINS; pin++) {
			entry = aml_package_open(a, 4);
			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, layout_pci_intx_gsi(slot, pin));
			aml_close(a, entry);
		}
	}
	aml_close(a, prt);
}

static void
acpi_dsdt_pci0(struct aml *a, const struct acpi_config *cfg)
{
	struct aml rt = { 0 };
	size_t dev;

	dev = aml_device_open(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A03");
	/*
	 * No _ADR: a device has a _HID or an _ADR, not both (ACPI 6.4,
	 * 6.1), and a root bridge is named by _SEG and _BBN.
	 */
	aml_name(a, "_BBN");
	aml_int(a, 0);
	aml_name(a, "_SEG");
	aml_int(a, 0);
	aml_name(a, "_UID");
	aml_int(a, 0);

	rt_word_space(&rt, RT_SPACE_BUS, 0, 0, 0);
	/*
	 * The config ports are the bridge's own (a consumer range); Linux
	 * drops them from the windows it hands to the PCI core.
	 */
	rt_io_fixed(&rt, PORT_PCI_CONFIG_ADDR, 8);
	rt_word_space(&rt, RT_SPACE_IO, RT_IO_ENTIRE_RANGE,
		      0x0000, PORT_PCI_CONFIG_ADDR - 1);
	rt_word_space(&rt, RT_SPACE_IO, RT_IO_ENTIRE_RANGE,
		      PORT_PCI_CONFIG_ADDR + 8, 0xffff);
	if (cfg->pci_mmio32_end)
		rt_dword_memory(&rt, RT_MEM_RW,
				(uint32_t)cfg->pci_mmio32_start,
				(uint32_t)(cfg->pci_mmio32_end - 1));
	if (cfg->pci_mmio64_end)
		rt_qword_memory(&rt, RT_MEM_RW | RT_MEM_CACHEABLE,
				cfg->pci_mmio64_start,
				cfg->pci_mmio64_end - 1);
	aml_crs(a, &rt);
	aml_free(&rt);
	acpi_dsdt_prt(a);
	aml_close(a, dev);
}

static void
acpi_dsdt_com1(struct aml *a)
{
	struct aml rt = { 0 };
	size_t dev;

	dev = aml_device_open(a, "COM1");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_int(a, 1);
	aml_name(a, "_DDN");
	aml_string(a, "COM1");
	rt_io_fixed(&rt, PORT_COM1, 8);
	rt_irq_noflags(&rt, IRQ_COM1);
	aml_crs(a, &rt);
	aml_free(&rt);
	aml_close(a, dev);
}

/* The DSDT's AML, without the table header. */
static void
acpi_dsdt_aml(struct aml *a, const struct acpi_config *cfg)
{
	static const uint64_t s0[4] = { ACPI_SLP_TYP_S0, ACPI_SLP_TYP_S0,
					0, 0 };
	static const uint64_t s5[4] = { ACPI_SLP_TYP_S5, ACPI_SLP_TYP_S5,
					0, 0 };
	size_t sb, pic;

	/* Sleep states: PM1a and PM1b SLP_TYP, then two reserved values. */
	aml_name(a, "_S0_");
	aml_package_ints(a, s0, 4);
	aml_name(a, "_S5_");
	aml_package_ints(a, s5, 4);

	/*
	 * Linux calls \_PIC(1) when it switches to the IOAPIC. Nothing here
	 * changes with the model (_PRT names IOAPIC inputs only: a guest
	 * that stays on the 8259s gets no PCI INTx), so there is nothing to
	 * do, but firmware conventionally provides the method.
	 */
	pic = aml_method_open(a, "_PIC", 1);
	aml_close(a, pic);

	/* At the root of the DSDT, _SB is \_SB; iasl encodes it so too. */
	sb = aml_scope_open(a, "_SB");
	acpi_dsdt_pci0(a, cfg);
	acpi_dsdt_com1(a);
	aml_close(a, sb);
}

/* --- Tables ------------------------------------------------------------- */

unsigned int
acpi_aml_pkglen_encode(uint8_t out[4], uint32_t body_len)
{
	unsigned int n, i;
	uint32_t total;

	if (body_len <= 0x3e) {
		out[0] = (uint8_t)(body_len + 1);
		return 1;
	}
	if (body_len >= (1u << 28) - 4)
		return 0;
	for (n = 2; n <= 4; n++) {
		total = body_len + n;
		if (total >= 1u << (4 + 8 * (n - 1)))
			continue;
		out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (i = 1; i < n; i++)
			out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
		return n;
	}
	return 0;
}

/* Where each table goes, as guest-physical addresses. */
struct acpi_layout {
	uint64_t rsdp, xsdt, rsdt, fadt, facs, madt, dsdt, end;
	uint32_t xsdt_len, rsdt_len, madt_len, dsdt_len;
};

#define ACPI_NR_ROOT_ENTRIES	2	/* FADT, MADT */
#define ACPI_NR_ISOS		2	/* PIT, SCI */

static uint64_t
acpi_align(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static void
acpi_layout(struct acpi_layout *l, uint64_t base, unsigned int nr_cpus,
	    size_t aml_len)
{
	l->xsdt_len = sizeof(struct acpi_header) + 8 * ACPI_NR_ROOT_ENTRIES;
	l->rsdt_len = sizeof(struct acpi_header) + 4 * ACPI_NR_ROOT_ENTRIES;
	l->madt_len = sizeof(struct acpi_madt) +
		      nr_cpus * sizeof(struct acpi_madt_lapic) +
		      sizeof(struct acpi_madt_ioapic) +
		      ACPI_NR_ISOS * sizeof(struct acpi_madt_iso) +
		      sizeof(struct acpi_madt_lapic_nmi);
	l->dsdt_len = (uint32_t)(sizeof(struct acpi_header) + aml_len);

	l->rsdp = base;
	l->xsdt = acpi_align(l->rsdp + sizeof(struct acpi_rsdp), 16);
	l->rsdt = acpi_align(l->xsdt + l->xsdt_len, 16);
	l->fadt = acpi_align(l->rsdt + l->rsdt_len, 16);
	l->facs = acpi_align(l->fadt + sizeof(struct acpi_fadt),
			     ACPI_FACS_ALIGN);
	l->madt = acpi_align(l->facs + sizeof(struct acpi_facs), 16);
	l->dsdt = acpi_align(l->madt + l->madt_len, 16);
	l->end = l->dsdt + l->dsdt_len;
}

static void
acpi_header_init(struct acpi_header *h, const char sig[4], uint32_t len,
		 uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_PREFIX, 4);
	memcpy(h->oem_table_id + 4, sig, 4);
	h->oem_revision = ACPI_OEM_REVISION;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = ACPI_CREATOR_REVISION;
}

/* Set the checksum once every other byte of the table is final. */
static void
acpi_header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = (uint8_t)-acpi_checksum(h, h->length);
}

static struct acpi_gas
acpi_gas_io(uint16_t port, unsigned int len, uint8_t access)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_IO,
		.bit_width = (uint8_t)(8 * len),
		.bit_offset = 0,
		.access_size = access,
		.address = port,
	};
}

static void
acpi_fill_fadt(struct acpi_fadt *f, const struct acpi_layout *l)
{
	acpi_header_init(&f->header, "FACP", sizeof(*f), ACPI_FADT_REVISION);
	/* The spec allows one FACS pointer: the 64-bit one. */
	f->firmware_ctrl = 0;
	f->x_firmware_ctrl = l->facs;
	f->dsdt = (uint32_t)l->dsdt;
	f->x_dsdt = l->dsdt;
	f->sci_int = IRQ_ACPI_SCI;
	/* No SMI command port: the hardware is in ACPI mode from reset. */
	f->smi_cmd = 0;
	f->pm1a_evt_blk = PORT_ACPI_PM1A_EVT;
	f->pm1a_cnt_blk = PORT_ACPI_PM1A_CNT;
	f->pm_tmr_blk = PORT_ACPI_PM_TMR;
	f->gpe0_blk = PORT_ACPI_GPE0;
	f->pm1_evt_len = ACPI_PM1_EVT_LEN;
	f->pm1_cnt_len = ACPI_PM1_CNT_LEN;
	f->pm_tmr_len = ACPI_PM_TMR_LEN;
	f->gpe0_blk_len = ACPI_GPE0_LEN;
	/* Latencies above 100 and 1000 us say that C2 and C3 do not exist. */
	f->p_lvl2_lat = 0x0fff;
	f->p_lvl3_lat = 0x0fff;
	/*
	 * CENTURY stays 0: the guest then infers the century from the year,
	 * whatever the RTC model keeps at CMOS offset 0x32.
	 */
	f->century = 0;
	f->iapc_boot_arch = ACPI_FADT_BOOT_LEGACY_DEVICES | ACPI_FADT_BOOT_8042;
	/*
	 * A fixed-feature power button (PWR_BUTTON clear) and no sleep
	 * button; RTC wake status is not in PM1 (FIX_RTC).
	 */
	f->flags = ACPI_FADT_WBINVD | ACPI_FADT_PROC_C1 |
		   ACPI_FADT_SLP_BUTTON | ACPI_FADT_FIX_RTC |
		   ACPI_FADT_RESET_REG_SUP;
	if (ACPI_PM_TMR_BITS == 32)
		f->flags |= ACPI_FADT_TMR_VAL_EXT;
	f->reset_reg = acpi_gas_io(PORT_RESET_CONTROL, 1, ACPI_GAS_ACCESS_BYTE);
	f->reset_value = ACPI_RESET_VALUE;
	f->minor_version = ACPI_FADT_MINOR_VERSION;
	f->x_pm1a_evt_blk = acpi_gas_io(PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN,
					ACPI_GAS_ACCESS_WORD);
	f->x_pm1a_cnt_blk = acpi_gas_io(PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN,
					ACPI_GAS_ACCESS_WORD);
	f->x_pm_tmr_blk = acpi_gas_io(PORT_ACPI_PM_TMR, ACPI_PM_TMR_LEN,
				      ACPI_GAS_ACCESS_DWORD);
	f->x_gpe0_blk = acpi_gas_io(PORT_ACPI_GPE0, ACPI_GPE0_LEN,
				    ACPI_GAS_ACCESS_BYTE);
	memcpy(&f->hypervisor_vendor_id, "VMMD\0\0\0\0", 8);
	acpi_header_seal(&f->header);
}

static void
acpi_fill_facs(struct acpi_facs *facs)
{
	memcpy(facs->signature, "FACS", 4);
	facs->length = sizeof(*facs);
	facs->version = ACPI_FACS_VERSION;
}

static void
acpi_fill_madt(uint8_t *p, const struct acpi_layout *l, unsigned int nr_cpus)
{
	struct acpi_madt *madt = (struct acpi_madt *)p;
	struct acpi_madt_ioapic *io;
	struct acpi_madt_iso *iso;
	struct acpi_madt_lapic_nmi *nmi;
	size_t off = sizeof(*madt);
	unsigned int i;

	acpi_header_init(&madt->header, "APIC", l->madt_len,
			 ACPI_MADT_REVISION);
	madt->lapic_address = (uint32_t)LAYOUT_LAPIC;
	/* There are 8259s too; the guest masks them when it uses the APIC. */
	madt->flags = ACPI_MADT_PCAT_COMPAT;

	for (i = 0; i < nr_cpus; i++) {
		struct acpi_madt_lapic *lapic = (void *)(p + off);

		lapic->type = ACPI_MADT_TYPE_LAPIC;
		lapic->length = sizeof(*lapic);
		lapic->processor_uid = (uint8_t)i;
		lapic->apic_id = (uint8_t)i;
		lapic->flags = ACPI_MADT_LAPIC_ENABLED;
		off += sizeof(*lapic);
	}

	io = (void *)(p + off);
	io->type = ACPI_MADT_TYPE_IOAPIC;
	io->length = sizeof(*io);
	/* The first id after the vCPUs', so that no APIC shares it. */
	io->ioapic_id = (uint8_t)nr_cpus;
	io->address = (uint32_t)LAYOUT_IOAPIC;
	io->gsi_base = 0;
	off += sizeof(*io);

	/* The PIT's IRQ 0 is wired to IOAPIC pin 2, as on every PC. */
	iso = (void *)(p + off);
	iso->type = ACPI_MADT_TYPE_ISO;
	iso->length = sizeof(*iso);
	iso->bus = 0;
	iso->source = ACPI_ISA_IRQ_PIT;
	iso->gsi = ACPI_GSI_PIT;
	iso->flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS;
	off += sizeof(*iso);

	/* The SCI is level-triggered, active high, unlike an ISA IRQ. */
	iso = (void *)(p + off);
	iso->type = ACPI_MADT_TYPE_ISO;
	iso->length = sizeof(*iso);
	iso->bus = 0;
	iso->source = IRQ_ACPI_SCI;
	iso->gsi = IRQ_ACPI_SCI;
	iso->flags = ACPI_MADT_POLARITY_HIGH | ACPI_MADT_TRIGGER_LEVEL;
	off += sizeof(*iso);

	nmi = (void *)(p + off);
	nmi->type = ACPI_MADT_TYPE_LAPIC_NMI;
	nmi->length = sizeof(*nmi);
	nmi->processor_uid = 0xff;
	nmi->flags = ACPI_MADT_POLARITY_CONFORMS | ACPI_MADT_TRIGGER_CONFORMS;
	nmi->lint = 1;
	off += sizeof(*nmi);

	acpi_header_seal(&madt->header);
}

static int
acpi_check_config(const struct acpi_config *cfg)
{
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return -EINVAL;
	/* A window starting at 0 would be RAM, and 0, 0 means none. */
	if (cfg->pci_mmio32_start || cfg->pci_mmio32_end) {
		if (cfg->pci_mmio32_start == 0 ||
		    cfg->pci_mmio32_start >= cfg->pci_mmio32_end)
			return -EINVAL;
		/* A DWordMemory window: both ends and the length in 32 bits. */
		if (cfg->pci_mmio32_end > LAYOUT_PCI_HOLE_END ||
		    cfg->pci_mmio32_end - cfg->pci_mmio32_start > UINT32_MAX)
			return -EINVAL;
	}
	if (cfg->pci_mmio64_start || cfg->pci_mmio64_end) {
		if (cfg->pci_mmio64_start == 0 ||
		    cfg->pci_mmio64_start >= cfg->pci_mmio64_end)
			return -EINVAL;
	}
	return 0;
}

/*
 * Build every table into a new buffer (*ret_buf, *ret_size bytes) as if
 * it sat at base: the RSDP first, at base. Layout in *l.
 */
static int
acpi_build_buf(const struct acpi_config *cfg, uint64_t base,
	       struct acpi_layout *l, uint8_t **ret_buf, uint64_t *ret_size)
{
	struct aml dsdt = { 0 };
	struct acpi_rsdp *rsdp;
	struct acpi_header *h;
	uint8_t *buf = NULL;
	uint64_t xsdt_entries[ACPI_NR_ROOT_ENTRIES];
	uint32_t rsdt_entries[ACPI_NR_ROOT_ENTRIES];
	int r;

	r = acpi_check_config(cfg);
	if (r < 0)
		return r;
	acpi_dsdt_aml(&dsdt, cfg);
	if (dsdt.err) {
		r = dsdt.err;
		goto out;
	}
	acpi_layout(l, base, cfg->nr_cpus, dsdt.len);
	xsdt_entries[0] = l->fadt;
	xsdt_entries[1] = l->madt;
	rsdt_entries[0] = (uint32_t)l->fadt;
	rsdt_entries[1] = (uint32_t)l->madt;
	/* The RSDT and the FADT's DSDT field hold 32-bit addresses. */
	if (l->end > LAYOUT_PCI_HOLE_END) {
		r = -EINVAL;
		goto out;
	}
	buf = calloc(1, l->end - base);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
#define AT(gpa) (buf + ((gpa) - base))

	h = (struct acpi_header *)AT(l->dsdt);
	acpi_header_init(h, "DSDT", l->dsdt_len, ACPI_DSDT_REVISION);
	memcpy(AT(l->dsdt) + sizeof(*h), dsdt.buf, dsdt.len);
	acpi_header_seal(h);

	acpi_fill_facs((struct acpi_facs *)AT(l->facs));
	acpi_fill_fadt((struct acpi_fadt *)AT(l->fadt), l);
	acpi_fill_madt(AT(l->madt), l, cfg->nr_cpus);

	/* The entries follow a 36-byte header: not naturally aligned. */
	h = (struct acpi_header *)AT(l->xsdt);
	acpi_header_init(h, "XSDT", l->xsdt_len, ACPI_XSDT_REVISION);
	memcpy(h + 1, xsdt_entries, sizeof(xsdt_entries));
	acpi_header_seal(h);

	h = (struct acpi_header *)AT(l->rsdt);
	acpi_header_init(h, "RSDT", l->rsdt_len, ACPI_RSDT_REVISION);
	memcpy(h + 1, rsdt_entries, sizeof(rsdt_entries));
	acpi_header_seal(h);

	rsdp = (struct acpi_rsdp *)AT(l->rsdp);
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->rsdt_address = (uint32_t)l->rsdt;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = l->xsdt;
	rsdp->checksum = (uint8_t)-acpi_checksum(rsdp, ACPI_RSDP_V1_LEN);
	rsdp->extended_checksum = (uint8_t)-acpi_checksum(rsdp, sizeof(*rsdp));
#undef AT
	*ret_buf = buf;
	*ret_size = l->end - base;
	buf = NULL;
out:
	free(buf);
	aml_free(&dsdt);
	return r;
}

int
acpi_build(const struct guest_mem *m, uint64_t base_gpa, uint64_t max_size,
	   const struct acpi_config *cfg, uint64_t *ret_rsdp_gpa)
{
	struct acpi_layout l;
	uint8_t *buf;
	uint64_t size;
	int r;

	if (!m || !cfg)
		return -EINVAL;
	if (base_gpa % 16 != 0 || base_gpa >= LAYOUT_PCI_HOLE_END)
		return -EINVAL;
	r = acpi_build_buf(cfg, base_gpa, &l, &buf, &size);
	if (r < 0)
		return r;
	if (size > max_size)
		r = -ENOSPC;
	else if (!guest_mem_contains(m, base_gpa, size))
		r = -EFAULT;
	else
		r = guest_mem_write(m, base_gpa, buf, size);
	if (r == 0 && ret_rsdp_gpa)
		*ret_rsdp_gpa = l.rsdp;
	free(buf);
	return r;
}

/* Where acpi_build_blob() lays the tables out: the XSDT lands at 64. */
#define ACPI_BLOB_BASE		16

static void
acpi_blob_ptr(struct acpi_blob *b, bool in_rsdp, size_t offset, uint8_t size)
{
	b->ptrs[b->nr_ptrs++] = (struct acpi_blob_ptr){
		.in_rsdp = in_rsdp, .offset = (uint32_t)offset, .size = size,
	};
}

static void
acpi_blob_sum(struct acpi_blob *b, bool in_rsdp, size_t offset, size_t start,
	      size_t length)
{
	b->sums[b->nr_sums++] = (struct acpi_blob_sum){
		.in_rsdp = in_rsdp, .offset = (uint32_t)offset,
		.start = (uint32_t)start, .length = (uint32_t)length,
	};
}

/* Make the pointer field at p (size bytes) relative to the tables blob. */
static void
acpi_blob_rebase(uint8_t *p, uint8_t size, uint64_t tables)
{
	uint64_t v = 0;

	memcpy(&v, p, size);
	v -= tables;
	memcpy(p, &v, size);
}

int
acpi_build_blob(const struct acpi_config *cfg, struct acpi_blob *ret)
{
	struct acpi_blob b = { 0 };
	struct acpi_layout l;
	uint8_t *buf;
	uint64_t size, t;
	unsigned int i;
	int r;

	if (!cfg || !ret)
		return -EINVAL;
	/*
	 * Laid out from ACPI_BLOB_BASE, so that the XSDT, where the tables
	 * blob starts (the RSDP is a blob alone), is at 64: the loader
	 * aligns the blob to 64 and the FACS, 64 bytes into a multiple of
	 * 64 from it, stays aligned. A field holding address X holds X - 64
	 * once rebased: its offset in the blob.
	 */
	r = acpi_build_buf(cfg, ACPI_BLOB_BASE, &l, &buf, &size);
	if (r < 0)
		return r;
	t = l.xsdt;
	if (t % ACPI_FACS_ALIGN || (l.facs - t) % ACPI_FACS_ALIGN) {
		free(buf);
		return -EINVAL;
	}
	memcpy(&b.rsdp, buf, sizeof(b.rsdp));
	b.tables_len = size - (t - ACPI_BLOB_BASE);
	b.tables = malloc(b.tables_len);
	if (!b.tables) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(b.tables, buf + (t - ACPI_BLOB_BASE), b.tables_len);
	free(buf);

	acpi_blob_ptr(&b, true, offsetof(struct acpi_rsdp, rsdt_address), 4);
	acpi_blob_ptr(&b, true, offsetof(struct acpi_rsdp, xsdt_address), 8);
	for (i = 0; i < ACPI_NR_ROOT_ENTRIES; i++) {
		acpi_blob_ptr(&b, false, sizeof(struct acpi_header) + 8 * i, 8);
		acpi_blob_ptr(&b, false, l.rsdt - t +
			      sizeof(struct acpi_header) + 4 * i, 4);
	}
	acpi_blob_ptr(&b, false, l.fadt - t +
		      offsetof(struct acpi_fadt, x_firmware_ctrl), 8);
	acpi_blob_ptr(&b, false, l.fadt - t + offsetof(struct acpi_fadt, dsdt),
		      4);
	acpi_blob_ptr(&b, false, l.fadt - t +
		      offsetof(struct acpi_fadt, x_dsdt), 8);
	for (i = 0; i < b.nr_ptrs; i++)
		acpi_blob_rebase((b.ptrs[i].in_rsdp ? (uint8_t *)&b.rsdp :
				  b.tables) + b.ptrs[i].offset,
				 b.ptrs[i].size, t);

	/* The tables a pointer changes, and the RSDP's two sums. */
	acpi_blob_sum(&b, false, l.xsdt - t + offsetof(struct acpi_header,
		      checksum), l.xsdt - t, l.xsdt_len);
	acpi_blob_sum(&b, false, l.rsdt - t + offsetof(struct acpi_header,
		      checksum), l.rsdt - t, l.rsdt_len);
	acpi_blob_sum(&b, false, l.fadt - t + offsetof(struct acpi_header,
		      checksum), l.fadt - t, sizeof(struct acpi_fadt));
	acpi_blob_sum(&b, true, offsetof(struct acpi_rsdp, checksum), 0,
		      ACPI_RSDP_V1_LEN);
	acpi_blob_sum(&b, true, offsetof(struct acpi_rsdp, extended_checksum),
		      0, sizeof(struct acpi_rsdp));
	*ret = b;
	return 0;
}

void
acpi_blob_release(struct acpi_blob *b)
{
	if (!b)
		return;
	free(b->tables);
	b->tables = NULL;
	b->tables_len = 0;
}
