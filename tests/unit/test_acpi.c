/* SPDX-License-Identifier: MIT */
/*
 * ACPI tables: built into real guest memory, then read back the way a
 * guest would: from the RSDP through the XSDT and the FADT, checksums,
 * lengths and pointers checked; the MADT's entries counted; the DSDT's AML
 * walked by a small independent parser, its PCI routing table (_PRT)
 * entry by entry against layout.h's INTx mapping. When iasl is installed,
 * the tables are also disassembled by it and the DSDT recompiled to the
 * same bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dev/acpi_pm.h"
#include "layout.h"
#include "mem.h"
#include "x86/acpi.h"

#define RAM_SIZE	(2 * MiB)
#define MMIO64_START	0x8000000000ULL
#define MMIO64_END	0x10000000000ULL

struct fixture {
	struct guest_mem m;
	char tmpdir[64];	/* the iasl test's scratch directory */
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_mem_init(&f->m, RAM_SIZE) < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int type,
		  struct FTW *ftw);

static int
teardown(void **state)
{
	struct fixture *f = *state;

	/* Here rather than in the test, so that a failed test cleans up. */
	if (f->tmpdir[0])
		nftw(f->tmpdir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	guest_mem_destroy(&f->m);
	free(f);
	return 0;
}

static struct acpi_config
default_config(unsigned int nr_cpus, bool mmio64)
{
	struct acpi_config c = {
		.nr_cpus = nr_cpus,
		.pci_mmio32_start = LAYOUT_PCI_MMIO32_START,
		.pci_mmio32_end = LAYOUT_PCI_MMIO32_END,
	};

	if (mmio64) {
		c.pci_mmio64_start = MMIO64_START;
		c.pci_mmio64_end = MMIO64_END;
	}
	return c;
}

static uint32_t
rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t
rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint16_t
rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Everything a walk from the RSDP found. */
struct tables {
	uint64_t base, area_end;	/* the area the tables must stay in */
	const struct acpi_rsdp *rsdp;
	const struct acpi_header *xsdt, *rsdt, *madt, *dsdt;
	const struct acpi_fadt *fadt;
	const struct acpi_facs *facs;
	uint64_t gpa[7];		/* rsdp xsdt rsdt fadt facs madt dsdt */
	uint64_t len[7];
	uint64_t used_end;		/* end of the last table */
};

/*
 * The table at gpa: inside the area, signature and length as expected,
 * checksum zero.
 */
static const struct acpi_header *
get_table(const struct guest_mem *m, const struct tables *t, uint64_t gpa,
	  const char *sig)
{
	const struct acpi_header *h;

	assert_true(gpa >= t->base);
	assert_true(gpa + sizeof(*h) <= t->area_end);
	h = guest_mem_ptr(m, gpa, sizeof(*h));
	assert_non_null(h);
	assert_memory_equal(h->signature, sig, 4);
	assert_true(h->length >= sizeof(*h));
	assert_true(gpa + h->length <= t->area_end);
	assert_int_equal(acpi_checksum(h, h->length), 0);
	assert_memory_equal(h->oem_id, "VMMD  ", 6);
	return h;
}

static void
walk_tables(const struct guest_mem *m, uint64_t rsdp_gpa, uint64_t base,
	    uint64_t max_size, struct tables *t)
{
	uint64_t e[2];
	uint32_t r[2];
	int i, j;

	memset(t, 0, sizeof(*t));
	t->base = base;
	t->area_end = base + max_size;

	assert_int_equal(rsdp_gpa % 16, 0);
	t->rsdp = guest_mem_ptr(m, rsdp_gpa, sizeof(*t->rsdp));
	assert_non_null(t->rsdp);
	assert_memory_equal(t->rsdp->signature, "RSD PTR ", 8);
	assert_int_equal(t->rsdp->revision, 2);
	assert_int_equal(t->rsdp->length, 36);
	assert_int_equal(acpi_checksum(t->rsdp, ACPI_RSDP_V1_LEN), 0);
	assert_int_equal(acpi_checksum(t->rsdp, 36), 0);

	t->xsdt = get_table(m, t, t->rsdp->xsdt_address, "XSDT");
	t->rsdt = get_table(m, t, t->rsdp->rsdt_address, "RSDT");
	assert_int_equal(t->xsdt->length, 36 + 2 * 8);
	assert_int_equal(t->rsdt->length, 36 + 2 * 4);
	memcpy(e, t->xsdt + 1, sizeof(e));
	memcpy(r, t->rsdt + 1, sizeof(r));
	/* Both roots list the same tables. */
	assert_int_equal(e[0], r[0]);
	assert_int_equal(e[1], r[1]);

	t->fadt = (const void *)get_table(m, t, e[0], "FACP");
	t->madt = get_table(m, t, e[1], "APIC");
	assert_int_equal(t->fadt->header.length, sizeof(struct acpi_fadt));
	assert_int_equal(t->fadt->header.revision, ACPI_FADT_REVISION);
	assert_int_equal(t->madt->revision, ACPI_MADT_REVISION);

	/* FADT -> DSDT and FACS, the 64-bit fields being the ones to use. */
	assert_int_not_equal(t->fadt->x_dsdt, 0);
	assert_int_equal(t->fadt->dsdt, t->fadt->x_dsdt);
	t->dsdt = get_table(m, t, t->fadt->x_dsdt, "DSDT");
	assert_int_equal(t->dsdt->revision, 2);
	assert_int_equal(t->fadt->firmware_ctrl, 0);
	assert_int_equal(t->fadt->x_firmware_ctrl % 64, 0);
	assert_true(t->fadt->x_firmware_ctrl >= base);
	assert_true(t->fadt->x_firmware_ctrl + 64 <= t->area_end);
	t->facs = guest_mem_ptr(m, t->fadt->x_firmware_ctrl, 64);
	assert_non_null(t->facs);
	assert_memory_equal(t->facs->signature, "FACS", 4);
	assert_int_equal(t->facs->length, 64);
	assert_int_equal(t->facs->version, 2);

	t->gpa[0] = rsdp_gpa;			t->len[0] = 36;
	t->gpa[1] = t->rsdp->xsdt_address;	t->len[1] = t->xsdt->length;
	t->gpa[2] = t->rsdp->rsdt_address;	t->len[2] = t->rsdt->length;
	t->gpa[3] = e[0];			t->len[3] = t->fadt->header.length;
	t->gpa[4] = t->fadt->x_firmware_ctrl;	t->len[4] = 64;
	t->gpa[5] = e[1];			t->len[5] = t->madt->length;
	t->gpa[6] = t->fadt->x_dsdt;		t->len[6] = t->dsdt->length;
	/* No two tables overlap. */
	for (i = 0; i < 7; i++) {
		for (j = i + 1; j < 7; j++) {
			bool apart = t->gpa[i] + t->len[i] <= t->gpa[j] ||
				     t->gpa[j] + t->len[j] <= t->gpa[i];

			if (!apart)
				fail_msg("tables %d and %d overlap", i, j);
		}
		if (t->gpa[i] + t->len[i] > t->used_end)
			t->used_end = t->gpa[i] + t->len[i];
	}
}

static void
check_fadt(const struct acpi_fadt *f)
{
	assert_int_equal(f->sci_int, IRQ_ACPI_SCI);
	assert_int_equal(f->smi_cmd, 0);
	assert_int_equal(f->acpi_enable, 0);
	assert_int_equal(f->pm1a_evt_blk, PORT_ACPI_PM1A_EVT);
	assert_int_equal(f->pm1b_evt_blk, 0);
	assert_int_equal(f->pm1a_cnt_blk, PORT_ACPI_PM1A_CNT);
	assert_int_equal(f->pm_tmr_blk, PORT_ACPI_PM_TMR);
	assert_int_equal(f->gpe0_blk, PORT_ACPI_GPE0);
	assert_int_equal(f->pm1_evt_len, 4);
	assert_int_equal(f->pm1_cnt_len, 2);
	assert_int_equal(f->pm_tmr_len, 4);
	assert_int_equal(f->gpe0_blk_len, 4);

	/* The 64-bit register blocks say the same as the 32-bit ones. */
	assert_int_equal(f->x_pm1a_evt_blk.space_id, ACPI_GAS_IO);
	assert_int_equal(f->x_pm1a_evt_blk.address, PORT_ACPI_PM1A_EVT);
	assert_int_equal(f->x_pm1a_evt_blk.bit_width, 32);
	assert_int_equal(f->x_pm1a_cnt_blk.space_id, ACPI_GAS_IO);
	assert_int_equal(f->x_pm1a_cnt_blk.address, PORT_ACPI_PM1A_CNT);
	assert_int_equal(f->x_pm1a_cnt_blk.bit_width, 16);
	assert_int_equal(f->x_pm_tmr_blk.space_id, ACPI_GAS_IO);
	assert_int_equal(f->x_pm_tmr_blk.address, PORT_ACPI_PM_TMR);
	assert_int_equal(f->x_pm_tmr_blk.bit_width, 32);
	assert_int_equal(f->x_gpe0_blk.space_id, ACPI_GAS_IO);
	assert_int_equal(f->x_gpe0_blk.address, PORT_ACPI_GPE0);
	assert_int_equal(f->x_gpe0_blk.bit_width, 32);
	assert_int_equal(f->x_pm1b_evt_blk.address, 0);

	/* Reset through the host bridge's 0xCF9, value 6. */
	assert_int_equal(f->reset_reg.space_id, ACPI_GAS_IO);
	assert_int_equal(f->reset_reg.bit_width, 8);
	assert_int_equal(f->reset_reg.bit_offset, 0);
	assert_int_equal(f->reset_reg.access_size, 1);
	assert_int_equal(f->reset_reg.address, PORT_RESET_CONTROL);
	assert_int_equal(f->reset_value, 0x06);

	assert_true(f->flags & ACPI_FADT_WBINVD);
	assert_true(f->flags & ACPI_FADT_PROC_C1);
	assert_true(f->flags & ACPI_FADT_SLP_BUTTON);
	assert_true(f->flags & ACPI_FADT_RESET_REG_SUP);
	/* A fixed power button, full (not reduced) hardware. */
	assert_false(f->flags & ACPI_FADT_PWR_BUTTON);
	assert_false(f->flags & ACPI_FADT_HW_REDUCED_ACPI);
	/* The timer width matches what the PM device implements. */
	assert_int_equal(!!(f->flags & ACPI_FADT_TMR_VAL_EXT),
			 ACPI_PM_TMR_BITS == 32);
	assert_true(f->iapc_boot_arch & ACPI_FADT_BOOT_8042);
	assert_true(f->p_lvl2_lat > 100);
	assert_true(f->p_lvl3_lat > 1000);
}

static void
check_madt(const struct acpi_header *h, unsigned int nr_cpus)
{
	const struct acpi_madt *madt = (const void *)h;
	const uint8_t *p = (const uint8_t *)h + sizeof(*madt);
	const uint8_t *end = (const uint8_t *)h + h->length;
	unsigned int nr_lapic = 0, nr_ioapic = 0, nr_nmi = 0;
	bool seen_id[256] = { false }, iso_pit = false, iso_sci = false;

	assert_int_equal(madt->lapic_address, LAYOUT_LAPIC);
	assert_true(madt->flags & ACPI_MADT_PCAT_COMPAT);
	while (p < end) {
		assert_true(end - p >= 2);
		assert_true(p[1] >= 2 && p[1] <= end - p);
		switch (p[0]) {
		case ACPI_MADT_TYPE_LAPIC: {
			const struct acpi_madt_lapic *l = (const void *)p;

			assert_int_equal(l->length, 8);
			/* In order, ids 0..n-1, each enabled. */
			assert_int_equal(l->apic_id, nr_lapic);
			assert_int_equal(l->processor_uid, nr_lapic);
			assert_true(l->flags & ACPI_MADT_LAPIC_ENABLED);
			assert_false(seen_id[l->apic_id]);
			seen_id[l->apic_id] = true;
			nr_lapic++;
			break;
		}
		case ACPI_MADT_TYPE_IOAPIC: {
			const struct acpi_madt_ioapic *io = (const void *)p;

			assert_int_equal(io->length, 12);
			assert_int_equal(io->address, LAYOUT_IOAPIC);
			assert_int_equal(io->gsi_base, 0);
			nr_ioapic++;
			break;
		}
		case ACPI_MADT_TYPE_ISO: {
			const struct acpi_madt_iso *iso = (const void *)p;

			assert_int_equal(iso->length, 10);
			assert_int_equal(iso->bus, 0);
			if (iso->source == 0) {
				assert_int_equal(iso->gsi, 2);
				assert_int_equal(iso->flags, 0);
				iso_pit = true;
			} else if (iso->source == IRQ_ACPI_SCI) {
				assert_int_equal(iso->gsi, IRQ_ACPI_SCI);
				/* Active high (01), level (11 << 2). */
				assert_int_equal(iso->flags, 0x000d);
				iso_sci = true;
			} else {
				fail_msg("unexpected override of IRQ %u",
					 iso->source);
			}
			break;
		}
		case ACPI_MADT_TYPE_LAPIC_NMI: {
			const struct acpi_madt_lapic_nmi *n = (const void *)p;

			assert_int_equal(n->length, 6);
			assert_int_equal(n->processor_uid, 0xff);
			assert_int_equal(n->lint, 1);
			nr_nmi++;
			break;
		}
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
		p += p[1];
	}
	assert_ptr_equal(p, end);
	assert_int_equal(nr_lapic, nr_cpus);
	assert_int_equal(nr_ioapic, 1);
	assert_int_equal(nr_nmi, 1);
	assert_true(iso_pit);
	assert_true(iso_sci);
	/* The IOAPIC's id is one no LAPIC uses. */
	p = (const uint8_t *)h + sizeof(*madt) + nr_cpus * 8;
	assert_int_equal(p[0], ACPI_MADT_TYPE_IOAPIC);
	assert_false(seen_id[p[2]]);
}

/* --- An AML parser for the subset the DSDT uses ------------------------ */

struct aml_obj {
	char path[64];
	uint8_t kind;			/* 'N'ame, 'D'evice, 'S'cope, 'M'ethod */
	size_t off, len;		/* Name: the data object's bytes */
};

struct aml_parse {
	const uint8_t *aml;
	size_t len;
	struct aml_obj objs[64];
	unsigned int nr_objs;
	unsigned int pkglen_bytes[5];	/* PkgLengths seen, by size */
};

static bool
aml_parse_pkglen(struct aml_parse *ps, size_t *pos, size_t end,
		 size_t *ret_pkg_end)
{
	uint32_t len;
	unsigned int n;

	if (!acpi_aml_pkglen_decode(ps->aml + *pos, end - *pos, &len, &n))
		return false;
	if (len > end - *pos)
		return false;
	*ret_pkg_end = *pos + len;
	*pos += n;
	ps->pkglen_bytes[n]++;
	return true;
}

static bool
aml_parse_seg(struct aml_parse *ps, size_t *pos, size_t end, char *out)
{
	int i;

	if (end - *pos < 4)
		return false;
	for (i = 0; i < 4; i++) {
		char c = (char)ps->aml[*pos + i];

		if (!((c >= 'A' && c <= 'Z') || c == '_' ||
		      (i > 0 && c >= '0' && c <= '9')))
			return false;
		out[i] = c;
	}
	out[4] = '\0';
	*pos += 4;
	return true;
}

/* A NameString, resolved against scope to an absolute "\A.B.C" path. */
static bool
aml_parse_name(struct aml_parse *ps, size_t *pos, size_t end,
	       const char *scope, char *out, size_t out_size)
{
	char segs[8][5];
	unsigned int n = 1, i;
	bool root = false;
	int w;

	if (*pos >= end)
		return false;
	if (ps->aml[*pos] == '\\') {
		root = true;
		(*pos)++;
	}
	if (*pos >= end)
		return false;
	if (ps->aml[*pos] == 0x2e) {
		n = 2;
		(*pos)++;
	} else if (ps->aml[*pos] == 0x2f) {
		if (++*pos >= end)
			return false;
		n = ps->aml[(*pos)++];
		if (n > 8)
			return false;
	} else if (ps->aml[*pos] == 0x00) {
		n = 0;
		(*pos)++;
	}
	for (i = 0; i < n; i++)
		if (!aml_parse_seg(ps, pos, end, segs[i]))
			return false;
	w = snprintf(out, out_size, "%s", root ? "\\" : scope);
	for (i = 0; i < n; i++) {
		bool need_dot = w > 1;

		w += snprintf(out + w, out_size - (size_t)w, "%s%s",
			      need_dot ? "." : "", segs[i]);
		if ((size_t)w >= out_size)
			return false;
	}
	return true;
}

static bool aml_parse_data(struct aml_parse *ps, size_t *pos, size_t end);

static bool
aml_parse_int(struct aml_parse *ps, size_t *pos, size_t end, uint64_t *ret)
{
	static const unsigned int sizes[] = {
		[0x0a] = 1, [0x0b] = 2, [0x0c] = 4, [0x0e] = 8,
	};
	uint8_t op;
	unsigned int i, n;
	uint64_t v = 0;

	if (*pos >= end)
		return false;
	op = ps->aml[(*pos)++];
	if (op == 0x00 || op == 0x01) {
		*ret = op;
		return true;
	}
	if (op == 0xff) {
		*ret = UINT64_MAX;
		return true;
	}
	if (op >= sizeof(sizes) / sizeof(sizes[0]) || sizes[op] == 0)
		return false;
	n = sizes[op];
	if (end - *pos < n)
		return false;
	for (i = 0; i < n; i++)
		v |= (uint64_t)ps->aml[*pos + i] << (8 * i);
	*pos += n;
	*ret = v;
	return true;
}

static bool
aml_parse_data(struct aml_parse *ps, size_t *pos, size_t end)
{
	size_t pkg_end;
	uint64_t v;
	unsigned int count, i;

	if (*pos >= end)
		return false;
	switch (ps->aml[*pos]) {
	case 0x0d:		/* String: ASCII up to a NUL */
		for (++*pos; *pos < end && ps->aml[*pos]; (*pos)++)
			if (ps->aml[*pos] >= 0x80 || ps->aml[*pos] < 0x20)
				return false;
		if (*pos == end)
			return false;
		(*pos)++;
		return true;
	case 0x12:		/* Package: NumElements, then exactly those */
		(*pos)++;
		if (!aml_parse_pkglen(ps, pos, end, &pkg_end) ||
		    *pos >= pkg_end)
			return false;
		count = ps->aml[(*pos)++];
		for (i = 0; i < count; i++)
			if (!aml_parse_data(ps, pos, pkg_end))
				return false;
		return *pos == pkg_end;
	case 0x11:		/* Buffer: BufferSize, then that many bytes */
		(*pos)++;
		if (!aml_parse_pkglen(ps, pos, end, &pkg_end))
			return false;
		if (!aml_parse_int(ps, pos, pkg_end, &v))
			return false;
		if (v != pkg_end - *pos)
			return false;
		*pos = pkg_end;
		return true;
	default:
		return aml_parse_int(ps, pos, end, &v);
	}
}

static struct aml_obj *
aml_add(struct aml_parse *ps, uint8_t kind, const char *path)
{
	struct aml_obj *o;

	if (ps->nr_objs == 64)
		return NULL;
	o = &ps->objs[ps->nr_objs++];
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	snprintf(o->path, sizeof(o->path), "%s", path);
	return o;
}

static bool
aml_parse_terms(struct aml_parse *ps, size_t pos, size_t end,
		const char *scope)
{
	char path[64];
	struct aml_obj *o;
	size_t pkg_end, start;

	while (pos < end) {
		uint8_t op = ps->aml[pos++];

		switch (op) {
		case 0x08:	/* NameOp NameString DataRefObject */
			if (!aml_parse_name(ps, &pos, end, scope, path,
					    sizeof(path)))
				return false;
			start = pos;
			if (!aml_parse_data(ps, &pos, end))
				return false;
			o = aml_add(ps, 'N', path);
			if (!o)
				return false;
			o->off = start;
			o->len = pos - start;
			break;
		case 0x10:	/* ScopeOp PkgLength NameString TermList */
		case 0x14:	/* MethodOp PkgLength NameString Flags TermList */
			if (!aml_parse_pkglen(ps, &pos, end, &pkg_end) ||
			    !aml_parse_name(ps, &pos, pkg_end, scope, path,
					    sizeof(path)))
				return false;
			if (op == 0x14) {
				/* Our methods are empty: just the flags. */
				if (pos >= pkg_end)
					return false;
				pos++;
				if (pos != pkg_end || !aml_add(ps, 'M', path))
					return false;
				break;
			}
			if (!aml_add(ps, 'S', path) ||
			    !aml_parse_terms(ps, pos, pkg_end, path))
				return false;
			pos = pkg_end;
			break;
		case 0x5b:	/* ExtOpPrefix DeviceOp PkgLength ... */
			if (pos >= end || ps->aml[pos++] != 0x82)
				return false;
			if (!aml_parse_pkglen(ps, &pos, end, &pkg_end) ||
			    !aml_parse_name(ps, &pos, pkg_end, scope, path,
					    sizeof(path)))
				return false;
			if (!aml_add(ps, 'D', path) ||
			    !aml_parse_terms(ps, pos, pkg_end, path))
				return false;
			pos = pkg_end;
			break;
		default:
			print_error("unexpected AML opcode 0x%02x at %zu\n",
				    op, pos - 1);
			return false;
		}
	}
	return pos == end;
}

static const struct aml_obj *
aml_find(const struct aml_parse *ps, uint8_t kind, const char *path)
{
	unsigned int i;

	for (i = 0; i < ps->nr_objs; i++)
		if (ps->objs[i].kind == kind && !strcmp(ps->objs[i].path, path))
			return &ps->objs[i];
	return NULL;
}

/* The bytes of Name(path, Buffer(){...})'s buffer. */
static const uint8_t *
aml_buffer_bytes(const struct aml_parse *ps, const char *path, size_t *ret_len)
{
	const struct aml_obj *o = aml_find(ps, 'N', path);
	struct aml_parse tmp = *ps;
	size_t pos, pkg_end;
	uint64_t n;

	assert_non_null(o);
	pos = o->off;
	assert_int_equal(ps->aml[pos], 0x11);
	pos++;
	assert_true(aml_parse_pkglen(&tmp, &pos, o->off + o->len, &pkg_end));
	assert_true(aml_parse_int(&tmp, &pos, pkg_end, &n));
	assert_int_equal(n, pkg_end - pos);
	*ret_len = (size_t)n;
	return ps->aml + pos;
}

/* One resource descriptor of a template. */
struct rdesc {
	uint8_t tag;			/* small: type << 3; large: the byte */
	const uint8_t *body;
	size_t len;
};

static unsigned int
rt_walk(const uint8_t *p, size_t len, struct rdesc *out, unsigned int max)
{
	size_t pos = 0;
	unsigned int n = 0;
	bool ended = false;

	while (pos < len && !ended) {
		struct rdesc d;

		assert_true(n < max);
		if (p[pos] & 0x80) {
			assert_true(len - pos >= 3);
			d.tag = p[pos];
			d.len = rd16(p + pos + 1);
			d.body = p + pos + 3;
			pos += 3;
		} else {
			d.tag = p[pos] & 0x78;
			d.len = p[pos] & 0x07;
			d.body = p + pos + 1;
			pos += 1;
			ended = d.tag == 0x78;
		}
		assert_true(d.len <= len - pos);
		pos += d.len;
		out[n++] = d;
	}
	/* The end tag is last and makes the template sum to zero. */
	assert_true(ended);
	assert_int_equal(pos, len);
	assert_int_equal(out[n - 1].len, 1);
	assert_int_equal(acpi_checksum(p, len), 0);
	return n;
}

static void
check_word_space(const struct rdesc *d, uint8_t space, uint16_t min,
		 uint16_t max)
{
	assert_int_equal(d->tag, 0x88);
	assert_int_equal(d->len, 13);
	assert_int_equal(d->body[0], space);
	assert_int_equal(d->body[1], 0x0c);	/* producer, fixed window */
	assert_int_equal(rd16(d->body + 5), min);
	assert_int_equal(rd16(d->body + 7), max);
	assert_int_equal(rd16(d->body + 11), max - min + 1);
}

static void
check_io(const struct rdesc *d, uint16_t base, uint8_t len)
{
	assert_int_equal(d->tag, 0x08 << 3);
	assert_int_equal(d->len, 7);
	assert_int_equal(d->body[0], 1);	/* Decode16 */
	assert_int_equal(rd16(d->body + 1), base);
	assert_int_equal(rd16(d->body + 3), base);
	assert_int_equal(d->body[6], len);
}

/*
 * \_SB.PCI0._PRT: one Package(4){ Address, Pin, Source, SourceIndex } per
 * pin of every slot 1-31, in order, each naming the GSI of the shared
 * mapping directly (Source 0).
 */
static void
check_prt(const struct acpi_header *dsdt, const struct aml_parse *ps)
{
	/* (slot, pin, GSI) spelled out, in case the mapping drifts. */
	static const unsigned int spot[][3] = {
		{ 1, 0, 17 }, { 1, 3, 20 }, { 2, 0, 18 }, { 7, 1, 16 },
		{ 8, 0, 16 }, { 15, 2, 17 }, { 31, 3, 18 },
	};
	bool seen[32][4] = { { false } };
	struct aml_parse tmp = *ps;
	const struct aml_obj *o;
	size_t pos, end, prt_end, entry_end;
	unsigned int count, i, slot, pin, nr_spot = 0;
	uint64_t v[4];

	/* The DSDT grew by the _PRT; its checksum still covers it. */
	assert_int_equal(acpi_checksum(dsdt, dsdt->length), 0);
	o = aml_find(ps, 'N', "\\_SB_.PCI0._PRT");
	if (!o)
		fail_msg("the DSDT has no \\_SB.PCI0._PRT");
	pos = o->off;
	end = o->off + o->len;
	assert_int_equal(ps->aml[pos], 0x12);		/* PackageOp */
	pos++;
	assert_true(aml_parse_pkglen(&tmp, &pos, end, &prt_end));
	assert_int_equal(prt_end, end);
	count = ps->aml[pos++];
	assert_int_equal(count, 31 * 4);
	for (i = 0; i < count; i++) {
		assert_int_equal(ps->aml[pos], 0x12);
		pos++;
		assert_true(aml_parse_pkglen(&tmp, &pos, prt_end, &entry_end));
		assert_int_equal(ps->aml[pos++], 4);
		for (unsigned int k = 0; k < 4; k++)
			if (!aml_parse_int(&tmp, &pos, entry_end, &v[k]))
				fail_msg("_PRT entry %u: element %u is not an "
					 "Integer", i, k);
		assert_int_equal(pos, entry_end);
		slot = 1 + i / 4;
		pin = i % 4;
		/* Any function of the slot: 0xFFFF in the low word. */
		assert_int_equal(v[0], (uint64_t)slot << 16 | 0xffff);
		assert_int_equal(v[1], pin);
		assert_int_equal(v[2], 0);	/* a GSI, not a link device */
		if (v[3] != layout_pci_intx_gsi(slot, pin))
			fail_msg("_PRT slot %u pin %u: GSI %u, the mapping "
				 "says %u", slot, pin, (unsigned int)v[3],
				 layout_pci_intx_gsi(slot, pin));
		/* Above the ISA range and within the IOAPIC's 24 inputs. */
		assert_in_range(v[3], 16, 23);
		assert_false(seen[slot][pin]);
		seen[slot][pin] = true;
		for (unsigned int k = 0; k < sizeof(spot) / sizeof(spot[0]);
		     k++) {
			if (spot[k][0] != slot || spot[k][1] != pin)
				continue;
			assert_int_equal(v[3], spot[k][2]);
			nr_spot++;
		}
	}
	assert_int_equal(pos, prt_end);
	assert_int_equal(nr_spot, sizeof(spot) / sizeof(spot[0]));
}

static void
check_dsdt(const struct acpi_header *dsdt, const struct acpi_config *cfg)
{
	static const uint8_t s5[] = {
		0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00
	};
	static const uint8_t s0[] = {
		0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00
	};
	static const uint8_t pnp0a03[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	struct aml_parse ps = { 0 };
	const struct aml_obj *o;
	struct rdesc d[16];
	const uint8_t *crs;
	size_t crs_len;
	unsigned int n, i;

	ps.aml = (const uint8_t *)dsdt + sizeof(*dsdt);
	ps.len = dsdt->length - sizeof(*dsdt);
	assert_true(aml_parse_terms(&ps, 0, ps.len, "\\"));
	/* Short and long PkgLength forms both occur and parsed back. */
	assert_true(ps.pkglen_bytes[1] > 0);
	assert_true(ps.pkglen_bytes[2] > 0);

	o = aml_find(&ps, 'N', "\\_S5_");
	assert_non_null(o);
	assert_int_equal(o->len, sizeof(s5));
	assert_memory_equal(ps.aml + o->off, s5, sizeof(s5));
	assert_int_equal(s5[4], ACPI_SLP_TYP_S5);
	o = aml_find(&ps, 'N', "\\_S0_");
	assert_non_null(o);
	assert_int_equal(o->len, sizeof(s0));
	assert_memory_equal(ps.aml + o->off, s0, sizeof(s0));

	assert_non_null(aml_find(&ps, 'S', "\\_SB_"));
	assert_non_null(aml_find(&ps, 'D', "\\_SB_.PCI0"));
	assert_non_null(aml_find(&ps, 'D', "\\_SB_.COM1"));
	assert_non_null(aml_find(&ps, 'M', "\\_PIC"));
	o = aml_find(&ps, 'N', "\\_SB_.PCI0._HID");
	assert_non_null(o);
	assert_int_equal(o->len, sizeof(pnp0a03));
	assert_memory_equal(ps.aml + o->off, pnp0a03, sizeof(pnp0a03));
	for (i = 0; i < 3; i++) {
		static const char *const zero_names[] = {
			"\\_SB_.PCI0._BBN", "\\_SB_.PCI0._SEG",
			"\\_SB_.PCI0._UID",
		};

		o = aml_find(&ps, 'N', zero_names[i]);
		assert_non_null(o);
		assert_int_equal(o->len, 1);
		assert_int_equal(ps.aml[o->off], 0x00);
	}
	o = aml_find(&ps, 'N', "\\_SB_.COM1._HID");
	assert_non_null(o);
	assert_memory_equal(ps.aml + o->off, pnp0501, sizeof(pnp0501));
	o = aml_find(&ps, 'N', "\\_SB_.COM1._UID");
	assert_non_null(o);
	assert_int_equal(ps.aml[o->off], 0x01);
	o = aml_find(&ps, 'N', "\\_SB_.COM1._DDN");
	assert_non_null(o);
	assert_memory_equal(ps.aml + o->off, "\x0d" "COM1", 6);

	crs = aml_buffer_bytes(&ps, "\\_SB_.PCI0._CRS", &crs_len);
	n = rt_walk(crs, crs_len, d, 16);
	assert_int_equal(n, cfg->pci_mmio64_end ? 7 : 6);
	check_word_space(&d[0], 2, 0, 0);
	check_io(&d[1], 0xcf8, 8);
	check_word_space(&d[2], 1, 0x0000, 0x0cf7);
	check_word_space(&d[3], 1, 0x0d00, 0xffff);
	assert_int_equal(d[4].tag, 0x87);
	assert_int_equal(d[4].len, 23);
	assert_int_equal(d[4].body[0], 0);	/* memory */
	assert_int_equal(rd32(d[4].body + 7), cfg->pci_mmio32_start);
	assert_int_equal(rd32(d[4].body + 11), cfg->pci_mmio32_end - 1);
	assert_int_equal(rd32(d[4].body + 19),
			 cfg->pci_mmio32_end - cfg->pci_mmio32_start);
	if (cfg->pci_mmio64_end) {
		assert_int_equal(d[5].tag, 0x8a);
		assert_int_equal(d[5].len, 43);
		assert_int_equal(d[5].body[0], 0);
		assert_int_equal(rd64(d[5].body + 11), cfg->pci_mmio64_start);
		assert_int_equal(rd64(d[5].body + 19),
				 cfg->pci_mmio64_end - 1);
		assert_int_equal(rd64(d[5].body + 35),
				 cfg->pci_mmio64_end - cfg->pci_mmio64_start);
	}

	crs = aml_buffer_bytes(&ps, "\\_SB_.COM1._CRS", &crs_len);
	n = rt_walk(crs, crs_len, d, 16);
	assert_int_equal(n, 3);
	check_io(&d[0], 0x3f8, 8);
	assert_int_equal(d[1].tag, 0x04 << 3);	/* IRQNoFlags */
	assert_int_equal(d[1].len, 2);
	assert_int_equal(rd16(d[1].body), 1u << 4);

	check_prt(dsdt, &ps);
}

/* --- Tests ------------------------------------------------------------- */

static void
build_and_check(void **state, unsigned int nr_cpus, bool mmio64)
{
	struct fixture *f = *state;
	struct acpi_config cfg = default_config(nr_cpus, mmio64);
	struct tables t;
	uint64_t rsdp = 0;

	memset(f->m.hva, 0, RAM_SIZE);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), 0);
	assert_int_equal(rsdp, LAYOUT_ACPI_START);
	walk_tables(&f->m, rsdp, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, &t);
	check_fadt(t.fadt);
	check_madt(t.madt, nr_cpus);
	assert_int_equal(t.madt->length,
			 44 + 8 * nr_cpus + 12 + 2 * 10 + 6);
	check_dsdt(t.dsdt, &cfg);
}

static void
test_tables_1cpu(void **state)
{
	build_and_check(state, 1, true);
}

static void
test_tables_2cpus(void **state)
{
	build_and_check(state, 2, true);
}

static void
test_tables_4cpus(void **state)
{
	build_and_check(state, 4, false);
}

static void
test_tables_64cpus(void **state)
{
	build_and_check(state, 64, true);
}

static void
test_tables_max_cpus(void **state)
{
	build_and_check(state, ACPI_MAX_CPUS, true);
}

/* The guest's legacy scan: 16-byte steps over 0xE0000-0xFFFFF. */
static void
test_rsdp_legacy_scan(void **state)
{
	struct fixture *f = *state;
	struct acpi_config cfg = default_config(2, false);
	uint64_t gpa, found = 0;

	memset(f->m.hva, 0, RAM_SIZE);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, NULL), 0);
	for (gpa = 0xe0000; gpa < 0x100000; gpa += 16) {
		const uint8_t *p = guest_mem_ptr(&f->m, gpa, 20);

		if (memcmp(p, "RSD PTR ", 8) == 0 &&
		    acpi_checksum(p, 20) == 0) {
			found = gpa;
			break;
		}
	}
	assert_int_equal(found, LAYOUT_ACPI_START);
}

static void
test_too_small(void **state)
{
	struct fixture *f = *state;
	struct acpi_config cfg = default_config(64, true);
	struct tables t;
	uint64_t used, rsdp = 0x1234, i;
	const uint8_t *area = f->m.hva + LAYOUT_ACPI_START;

	/* Find how much a build really takes. */
	memset(f->m.hva, 0, RAM_SIZE);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), 0);
	walk_tables(&f->m, rsdp, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, &t);
	used = t.used_end - LAYOUT_ACPI_START;
	assert_true(used > 64 * 8);

	/* One byte short: refused, and nothing written. */
	memset(f->m.hva, 0xaa, RAM_SIZE);
	rsdp = 0x1234;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, used - 1, &cfg,
				    &rsdp), -ENOSPC);
	assert_int_equal(rsdp, 0x1234);
	for (i = 0; i < LAYOUT_ACPI_SIZE; i++)
		if (area[i] != 0xaa)
			fail_msg("byte %#llx written by a refused build",
				 (unsigned long long)i);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, 0, &cfg, NULL),
			 -ENOSPC);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, 36, &cfg, NULL),
			 -ENOSPC);

	/* Exactly enough: builds, and nothing past the end is touched. */
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, used, &cfg,
				    &rsdp), 0);
	walk_tables(&f->m, rsdp, LAYOUT_ACPI_START, used, &t);
	assert_int_equal(t.used_end, LAYOUT_ACPI_START + used);
	for (i = used; i < LAYOUT_ACPI_SIZE; i++)
		if (area[i] != 0xaa)
			fail_msg("byte %#llx past the tables written",
				 (unsigned long long)i);
	assert_int_equal(f->m.hva[LAYOUT_ACPI_START - 1], 0xaa);
}

static void
test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct acpi_config cfg = default_config(2, true), bad;
	struct guest_mem unmapped;
	uint64_t rsdp = 0x1234;

	bad = cfg;
	bad.nr_cpus = 0;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);
	bad.nr_cpus = ACPI_MAX_CPUS + 1;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);

	bad = cfg;
	bad.pci_mmio32_start = bad.pci_mmio32_end;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);
	bad = cfg;
	bad.pci_mmio32_end = LAYOUT_PCI_HOLE_END + 4096;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);
	bad = cfg;
	bad.pci_mmio32_start = 0;
	bad.pci_mmio32_end = LAYOUT_PCI_HOLE_END;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);
	bad = cfg;
	bad.pci_mmio64_end = bad.pci_mmio64_start - 1;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);
	bad = cfg;
	bad.pci_mmio64_start = 0;
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &bad, &rsdp), -EINVAL);

	/* The RSDP must be 16-byte aligned. */
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START + 8,
				    LAYOUT_ACPI_SIZE, &cfg, &rsdp), -EINVAL);
	/* Tables above 4 GiB cannot be reached from the RSDT. */
	assert_int_equal(acpi_build(&f->m, LAYOUT_HIGH_RAM_START,
				    LAYOUT_ACPI_SIZE, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(&f->m, LAYOUT_PCI_HOLE_END - 256,
				    LAYOUT_ACPI_SIZE, &cfg, &rsdp), -EINVAL);
	/* Not guest RAM: past its end, or not mapped at all. */
	assert_int_equal(acpi_build(&f->m, RAM_SIZE - 256, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), -EFAULT);
	assert_int_equal(guest_mem_layout(&unmapped, RAM_SIZE), 0);
	assert_int_equal(acpi_build(&unmapped, LAYOUT_ACPI_START,
				    LAYOUT_ACPI_SIZE, &cfg, &rsdp), -EFAULT);
	assert_int_equal(acpi_build(NULL, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    NULL, &rsdp), -EINVAL);
	assert_int_equal(rsdp, 0x1234);
}

/* Without PCI windows: no memory descriptors at all, still valid. */
static void
test_no_pci_windows(void **state)
{
	struct fixture *f = *state;
	struct acpi_config cfg = { .nr_cpus = 1 };
	struct tables t;
	struct aml_parse ps = { 0 };
	struct rdesc d[16];
	const uint8_t *crs;
	size_t crs_len;
	uint64_t rsdp;
	unsigned int i, n;

	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), 0);
	walk_tables(&f->m, rsdp, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, &t);
	ps.aml = (const uint8_t *)t.dsdt + 36;
	ps.len = t.dsdt->length - 36;
	assert_true(aml_parse_terms(&ps, 0, ps.len, "\\"));
	crs = aml_buffer_bytes(&ps, "\\_SB_.PCI0._CRS", &crs_len);
	n = rt_walk(crs, crs_len, d, 16);
	assert_int_equal(n, 5);
	for (i = 0; i < n; i++) {
		assert_int_not_equal(d[i].tag, 0x87);
		assert_int_not_equal(d[i].tag, 0x8a);
	}
}

/* Every PkgLength size class, at and around its limits. */
static void
test_pkglen(void **state)
{
	static const struct {
		uint32_t body;
		unsigned int nbytes;
	} cases[] = {
		{ 0, 1 }, { 1, 1 }, { 61, 1 }, { 62, 1 },
		{ 63, 2 }, { 64, 2 }, { 4093, 2 },
		{ 4094, 3 }, { (1u << 20) - 4, 3 },
		{ (1u << 20) - 3, 4 }, { (1u << 28) - 5, 4 },
	};
	uint8_t b[4];
	uint32_t len;
	unsigned int i, n, m;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(b, 0xee, sizeof(b));
		n = acpi_aml_pkglen_encode(b, cases[i].body);
		if (n != cases[i].nbytes)
			fail_msg("body %u: %u bytes, expected %u",
				 cases[i].body, n, cases[i].nbytes);
		assert_true(acpi_aml_pkglen_decode(b, n, &len, &m));
		assert_int_equal(m, n);
		assert_int_equal(len, cases[i].body + n);
		/* The reserved bits of a long form's lead byte are clear. */
		if (n > 1)
			assert_int_equal(b[0] & 0x30, 0);
		/* A truncated encoding is refused. */
		assert_false(acpi_aml_pkglen_decode(b, n - 1, &len, &m));
	}
	/* Known encodings from the ACPI specification's rules. */
	n = acpi_aml_pkglen_encode(b, 0x200 - 2);
	assert_int_equal(n, 2);
	assert_int_equal(b[0], 0x40);
	assert_int_equal(b[1], 0x20);
	assert_int_equal(acpi_aml_pkglen_encode(b, (1u << 28) - 4), 0);
	assert_int_equal(acpi_aml_pkglen_encode(b, UINT32_MAX), 0);
	/* Malformed: reserved bits set, or a length below its own size. */
	b[0] = 0x70;
	b[1] = 0x01;
	assert_false(acpi_aml_pkglen_decode(b, 2, &len, &m));
	b[0] = 0x00;
	assert_false(acpi_aml_pkglen_decode(b, 1, &len, &m));
	b[0] = 0x41;
	b[1] = 0x00;
	assert_false(acpi_aml_pkglen_decode(b, 2, &len, &m));
	assert_false(acpi_aml_pkglen_decode(b, 0, &len, &m));
}

/* --- iasl ---------------------------------------------------------------- */

static bool
find_in_path(const char *prog, char *out, size_t out_size)
{
	const char *path = getenv("PATH");
	char *dup, *dir, *save = NULL;
	bool found = false;

	if (!path)
		path = "/usr/bin:/bin";
	dup = strdup(path);
	if (!dup)
		return false;
	for (dir = strtok_r(dup, ":", &save); dir && !found;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(out, out_size, "%s/%s", dir, prog);
		found = access(out, X_OK) == 0;
	}
	free(dup);
	return found;
}

/* Run argv in dir with stdout and stderr into dir/log; its exit status. */
static int
run_in(const char *dir, const char *log, const char *const argv[])
{
	char *args[8];
	pid_t pid;
	int status, fd, i;

	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (chdir(dir) < 0)
			_exit(126);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		/* execv() wants writable strings; the child's own copies. */
		for (i = 0; i < 7 && argv[i]; i++)
			args[i] = strdup(argv[i]);
		args[i] = NULL;
		execv(args[0], args);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* A whole small file, NUL-terminated; free() it. */
static char *
slurp(const char *dir, const char *name, size_t *ret_len)
{
	char path[512];
	FILE *fp;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	if (buf && ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static void
spill(const char *dir, const char *name, const void *p, size_t len)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static int
rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void
print_commented(const char *text)
{
	const char *line = text, *nl;

	while (*line) {
		nl = strchr(line, '\n');
		if (!nl)
			nl = line + strlen(line);
		print_message("# %.*s\n", (int)(nl - line), line);
		line = *nl ? nl + 1 : nl;
	}
}

/*
 * Disassemble one data table with iasl; iasl warns in its log about a
 * bad checksum and marks it in the listing, so neither may say so.
 */
static void
iasl_data_table(const char *iasl, const char *dir, const char *name,
		const void *p, size_t len)
{
	char dat[64], dsl[64], log[64];
	char *out;
	const char *argv[] = { iasl, "-d", dat, NULL };

	snprintf(dat, sizeof(dat), "%s.dat", name);
	snprintf(dsl, sizeof(dsl), "%s.dsl", name);
	snprintf(log, sizeof(log), "%s.log", name);
	spill(dir, dat, p, len);
	assert_int_equal(run_in(dir, log, argv), 0);
	out = slurp(dir, log, NULL);
	assert_non_null(out);
	if (strstr(out, "Warning") || strstr(out, "Error"))
		fail_msg("iasl -d %s: %s", dat, out);
	free(out);
	out = slurp(dir, dsl, NULL);
	assert_non_null(out);
	if (strstr(out, "Incorrect checksum") || strstr(out, "**** "))
		fail_msg("iasl -d %s:\n%s", dat, out);
	free(out);
}

static void
test_iasl(void **state)
{
	struct fixture *f = *state;
	struct acpi_config cfg = default_config(4, true);
	char iasl[512];
	char *dir, *out, *aml;
	size_t aml_len, crs_len[2];
	const uint8_t *ours, *crs[2];
	struct aml_parse ps = { 0 };
	struct tables t;
	uint64_t rsdp;
	const char *dis[] = { iasl, "-d", "dsdt.dat", NULL };
	const char *comp[] = { iasl, "-p", "recompiled", "dsdt.dsl", NULL };
	static const char *const expect[] = {
		"Name (_S5, Package (0x04)",
		"0x05, \n        0x05, \n        Zero, \n        Zero",
		"Method (_PIC, 1, NotSerialized)",
		"Scope (_SB)",
		"Device (PCI0)",
		"EisaId (\"PNP0A03\")",
		"WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode",
		"0x0CF8,             // Range Minimum",
		"0x0CF7,             // Range Maximum",
		"0x0D00,             // Range Minimum",
		"0xFEBFFFFF,         // Range Maximum",
		"0x0000008000000000, // Range Minimum",
		"Name (_PRT, Package (0x7C)",
		"0x0001FFFF, \n                    Zero, \n"
		"                    Zero, \n                    0x11\n",
		"0x001FFFFF, \n                    0x03, \n"
		"                    Zero, \n                    0x12\n",
		"Device (COM1)",
		"EisaId (\"PNP0501\")",
		"Name (_DDN, \"COM1\")",
		"IRQNoFlags ()\n                    {4}",
	};
	unsigned int i;

	if (!find_in_path("iasl", iasl, sizeof(iasl))) {
		print_message("# iasl not found (apt-get install acpica-tools);"
			      " skipping the disassembly check\n");
		skip();
	}
	assert_int_equal(acpi_build(&f->m, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE,
				    &cfg, &rsdp), 0);
	walk_tables(&f->m, rsdp, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE, &t);
	snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/test_acpi.XXXXXX");
	dir = mkdtemp(f->tmpdir);
	if (!dir)
		f->tmpdir[0] = '\0';
	assert_non_null(dir);

	spill(dir, "dsdt.dat", t.dsdt, t.dsdt->length);
	assert_int_equal(run_in(dir, "dis.log", dis), 0);
	out = slurp(dir, "dis.log", NULL);
	assert_non_null(out);
	if (strstr(out, "Warning") || strstr(out, "Error"))
		fail_msg("iasl -d dsdt.dat: %s", out);
	free(out);
	out = slurp(dir, "dsdt.dsl", NULL);
	assert_non_null(out);
	if (getenv("ACPI_TEST_SHOW_IASL"))
		print_commented(out);
	for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++)
		if (!strstr(out, expect[i]))
			fail_msg("iasl's listing lacks \"%s\":\n%s", expect[i],
				 out);
	free(out);

	/*
	 * Compiling the listing again gives back our AML byte for byte:
	 * iasl agrees with every encoding choice, and warns about nothing.
	 * The one exception: iasl leaves a resource template's end-tag
	 * checksum 0 ("valid"), where we store the real one.
	 */
	assert_int_equal(run_in(dir, "comp.log", comp), 0);
	out = slurp(dir, "comp.log", NULL);
	assert_non_null(out);
	if (!strstr(out, "0 Errors, 0 Warnings"))
		fail_msg("iasl dsdt.dsl: %s", out);
	free(out);
	aml = slurp(dir, "recompiled.aml", &aml_len);
	assert_non_null(aml);
	assert_int_equal(aml_len, t.dsdt->length);
	ours = (const uint8_t *)t.dsdt + 36;
	ps.aml = ours;
	ps.len = t.dsdt->length - 36;
	assert_true(aml_parse_terms(&ps, 0, ps.len, "\\"));
	crs[0] = aml_buffer_bytes(&ps, "\\_SB_.PCI0._CRS", &crs_len[0]);
	crs[1] = aml_buffer_bytes(&ps, "\\_SB_.COM1._CRS", &crs_len[1]);
	for (i = 0; i < ps.len; i++) {
		uint8_t theirs = (uint8_t)aml[36 + i];
		bool end_sum = ours + i == crs[0] + crs_len[0] - 1 ||
			       ours + i == crs[1] + crs_len[1] - 1;

		if (end_sum && theirs == 0)
			continue;
		if (theirs != ours[i])
			fail_msg("recompiled DSDT differs at AML offset %u: "
				 "0x%02x, ours 0x%02x", i, theirs, ours[i]);
	}
	free(aml);

	iasl_data_table(iasl, dir, "facp", t.fadt, t.fadt->header.length);
	iasl_data_table(iasl, dir, "apic", t.madt, t.madt->length);
	iasl_data_table(iasl, dir, "xsdt", t.xsdt, t.xsdt->length);
	iasl_data_table(iasl, dir, "rsdt", t.rsdt, t.rsdt->length);
	iasl_data_table(iasl, dir, "facs", t.facs, 64);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tables_1cpu, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tables_2cpus, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tables_4cpus, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tables_64cpus, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tables_max_cpus, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rsdp_legacy_scan, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_too_small, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_pci_windows, setup,
						teardown),
		cmocka_unit_test(test_pkglen),
		cmocka_unit_test_setup_teardown(test_iasl, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
