/* SPDX-License-Identifier: MIT */
#include "x86/loader.h"
#include "x86/decompress.h"
#include "layout.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Offsets in a bzImage (boot.rst, "The real-mode kernel header"). */
#define BZ_SETUP_SECTS		0x1f1
#define BZ_BOOT_FLAG		0x1fe
#define BZ_JUMP			0x200
#define BZ_HEADER_MAGIC		0x202
#define BZ_BOOT_FLAG_VALUE	0xaa55
#define BZ_MAGIC		"HdrS"
#define BZ_SECTOR		512
/* The 64-bit entry lies this far into the protected-mode code. */
#define BZ_ENTRY64_OFFSET	0x200

/* More program headers than any vmlinux has; bounds the work we do. */
#define ELF_MAX_PHDRS		64
#define ELF_MAX_LOADS		16

#define PAGE_SIZE_4K		4096ULL

/* Boot protocol: initrd_addr_max of kernels that leave it zero. */
#define INITRD_ADDR_MAX_DEFAULT	0x37ffffffU

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static uint64_t
mib_up(uint64_t bytes)
{
	return (bytes + MiB - 1) / MiB;
}

static bool
is_pow2(uint64_t x)
{
	return x && (x & (x - 1)) == 0;
}

struct elf_seg {
	uint64_t offset, paddr, filesz, memsz;
};

/* What loading an ELF will do, worked out before anything is written. */
struct elf_plan {
	uint64_t entry;		/* physical */
	uint64_t lo, hi;	/* physical span of all PT_LOAD segments */
	unsigned int nr;
	struct elf_seg seg[ELF_MAX_LOADS];
};

static bool
is_elf(const void *image, size_t len)
{
	return len >= SELFMAG && memcmp(image, ELFMAG, SELFMAG) == 0;
}

/*
 * The entry point of vmlinux may be physical (phys_startup_64, as Linux
 * links it) or virtual (0xffffffff81000000-ish). Translate through the
 * segment holding it, looking at executable segments first so that the
 * per-cpu segment (virtual address 0) cannot capture a physical entry.
 */
static int
elf_translate_entry(const Elf64_Phdr *ph, unsigned int n, uint64_t e,
		    uint64_t *ret)
{
	for (int pass = 0; pass < 4; pass++) {
		bool want_x = pass < 2, by_vaddr = (pass % 2) == 0;

		for (unsigned int i = 0; i < n; i++) {
			uint64_t base;

			if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
				continue;
			if (want_x && !(ph[i].p_flags & PF_X))
				continue;
			base = by_vaddr ? ph[i].p_vaddr : ph[i].p_paddr;
			if (e < base || e - base >= ph[i].p_memsz)
				continue;
			*ret = ph[i].p_paddr + (e - base);
			return 0;
		}
	}
	return -ENOEXEC;
}

static int
elf_parse(const uint8_t *img, size_t len, struct elf_plan *p,
	  char *err, size_t errlen)
{
	Elf64_Phdr ph[ELF_MAX_PHDRS];
	Elf64_Ehdr eh;
	unsigned int i, j;

	memset(p, 0, sizeof(*p));
	if (len < sizeof(eh)) {
		seterr(err, errlen, "ELF kernel truncated: %zu bytes", len);
		return -ENOEXEC;
	}
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
		seterr(err, errlen, "no ELF magic");
		return -ENOEXEC;
	}
	if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
		seterr(err, errlen, "ELF kernel is not 64-bit (class %u)",
		       eh.e_ident[EI_CLASS]);
		return -ENOEXEC;
	}
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT) {
		seterr(err, errlen, "ELF kernel is not little-endian version 1");
		return -ENOEXEC;
	}
	if (eh.e_type != ET_EXEC || eh.e_machine != EM_X86_64) {
		seterr(err, errlen, "ELF kernel is not an x86-64 executable "
		       "(type %u, machine %u)", eh.e_type, eh.e_machine);
		return -ENOEXEC;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > ELF_MAX_PHDRS) {
		seterr(err, errlen, "ELF kernel has %u program headers of %u "
		       "bytes", eh.e_phnum, eh.e_phentsize);
		return -ENOEXEC;
	}
	if (eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff) {
		seterr(err, errlen, "ELF program headers at 0x%llx lie outside "
		       "the %zu-byte file", (unsigned long long)eh.e_phoff, len);
		return -ENOEXEC;
	}
	memcpy(ph, img + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));

	p->lo = UINT64_MAX;
	for (i = 0; i < eh.e_phnum; i++) {
		struct elf_seg *s;

		if (ph[i].p_type != PT_LOAD || ph[i].p_memsz == 0)
			continue;
		if (p->nr == ELF_MAX_LOADS) {
			seterr(err, errlen, "ELF kernel has more than %u "
			       "loadable segments", ELF_MAX_LOADS);
			return -ENOEXEC;
		}
		if (ph[i].p_filesz > ph[i].p_memsz ||
		    ph[i].p_offset > len ||
		    ph[i].p_filesz > len - ph[i].p_offset ||
		    ph[i].p_memsz > UINT64_MAX - ph[i].p_paddr) {
			seterr(err, errlen, "ELF segment %u is bad: offset "
			       "0x%llx, %llu bytes in file, %llu in memory, "
			       "file is %zu bytes", i,
			       (unsigned long long)ph[i].p_offset,
			       (unsigned long long)ph[i].p_filesz,
			       (unsigned long long)ph[i].p_memsz, len);
			return -ENOEXEC;
		}
		s = &p->seg[p->nr++];
		s->offset = ph[i].p_offset;
		s->paddr = ph[i].p_paddr;
		s->filesz = ph[i].p_filesz;
		s->memsz = ph[i].p_memsz;
		if (s->paddr < p->lo)
			p->lo = s->paddr;
		if (s->paddr + s->memsz > p->hi)
			p->hi = s->paddr + s->memsz;
	}
	if (p->nr == 0) {
		seterr(err, errlen, "ELF kernel has no loadable segment");
		return -ENOEXEC;
	}
	/* Segments that overlap would overwrite each other. */
	for (i = 0; i < p->nr; i++) {
		for (j = i + 1; j < p->nr; j++) {
			const struct elf_seg *a = &p->seg[i], *b = &p->seg[j];

			if (a->paddr < b->paddr + b->memsz &&
			    b->paddr < a->paddr + a->memsz) {
				seterr(err, errlen, "ELF segments at 0x%llx and "
				       "0x%llx overlap",
				       (unsigned long long)a->paddr,
				       (unsigned long long)b->paddr);
				return -ENOEXEC;
			}
		}
	}
	if (elf_translate_entry(ph, eh.e_phnum, eh.e_entry, &p->entry) < 0) {
		seterr(err, errlen, "ELF entry point 0x%llx lies in no loadable "
		       "segment", (unsigned long long)eh.e_entry);
		return -ENOEXEC;
	}
	return 0;
}

/*
 * The kernel's range must lie in RAM and above the first MiB, where the
 * VMM keeps the zero page, page tables, command line and ACPI tables.
 */
static int
check_fit(const struct guest_mem *m, uint64_t start, uint64_t end,
	  char *err, size_t errlen)
{
	if (start < LAYOUT_BIOS_END) {
		seterr(err, errlen, "kernel at 0x%llx overlaps the first MiB, "
		       "which the VMM uses", (unsigned long long)start);
		return -EINVAL;
	}
	if (!guest_mem_contains(m, start, end - start)) {
		seterr(err, errlen, "kernel needs %llu MiB at 0x%llx, guest RAM "
		       "is %llu MiB", (unsigned long long)mib_up(end - start),
		       (unsigned long long)start,
		       (unsigned long long)(m->size / MiB));
		return -EFBIG;
	}
	return 0;
}

static int
elf_copy(const struct guest_mem *m, const uint8_t *img,
	 const struct elf_plan *p)
{
	for (unsigned int i = 0; i < p->nr; i++) {
		const struct elf_seg *s = &p->seg[i];
		uint8_t *dst = guest_mem_ptr(m, s->paddr, s->memsz);

		if (!dst)
			return -EFAULT;
		memcpy(dst, img + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	return 0;
}

/*
 * Load a parsed ELF. reserve is how much memory from its lowest address
 * the kernel wants in all (a bzImage's init_size), 0 for just the segments.
 */
static int
elf_load(const struct guest_mem *m, const uint8_t *img,
	 const struct elf_plan *p, uint64_t reserve, struct kernel_info *k,
	 char *err, size_t errlen)
{
	uint64_t end = p->hi;
	int r;

	if (reserve > UINT64_MAX - p->lo)
		reserve = UINT64_MAX - p->lo;
	if (p->lo + reserve > end)
		end = p->lo + reserve;
	r = check_fit(m, p->lo, end, err, errlen);
	if (r < 0)
		return r;
	r = elf_copy(m, img, p);
	if (r < 0) {
		seterr(err, errlen, "cannot write the kernel to guest memory");
		return r;
	}
	k->entry = p->entry;
	k->load_start = p->lo;
	k->load_end = end;
	return 0;
}

static void
synthesize_header(struct kernel_info *k)
{
	struct setup_header *h = &k->hdr;

	memset(h, 0, sizeof(*h));
	h->boot_flag = BZ_BOOT_FLAG_VALUE;
	memcpy(&h->header, BZ_MAGIC, 4);
	h->version = 0x020f;
	h->type_of_loader = 0xff;
	h->loadflags = LOADED_HIGH;
	h->kernel_alignment = 2 * MiB;
	h->xloadflags = XLF_KERNEL_64;
	h->cmdline_size = 2047;
	h->initrd_addr_max = 0x7fffffff;
	h->pref_address = k->load_start;
	h->init_size = (uint32_t)(k->load_end - k->load_start);
}

static int
load_elf_image(const struct guest_mem *m, const uint8_t *img, size_t len,
	       struct kernel_info *k, char *err, size_t errlen)
{
	struct elf_plan plan;
	int r;

	r = elf_parse(img, len, &plan, err, errlen);
	if (r < 0)
		return r;
	r = elf_load(m, img, &plan, 0, k, err, errlen);
	if (r < 0)
		return r;
	synthesize_header(k);
	return 0;
}

static uint16_t
le16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static bool
is_bzimage(const uint8_t *img, size_t len)
{
	return len >= BZ_HEADER_MAGIC + 4 &&
	       memcmp(img + BZ_HEADER_MAGIC, BZ_MAGIC, 4) == 0;
}

/* The protected-mode part of a validated bzImage, and its payload. */
struct bzimage {
	const uint8_t *pm;
	size_t pm_len;
	const uint8_t *payload;
	size_t payload_len;
};

static int
bzimage_parse(const uint8_t *img, size_t len, struct setup_header *h,
	      struct bzimage *bz, char *err, size_t errlen)
{
	size_t setup_size, hdr_len = sizeof(*h);
	unsigned int sects;

	if (le16_at(img + BZ_BOOT_FLAG) != BZ_BOOT_FLAG_VALUE) {
		seterr(err, errlen, "bzImage boot_flag is 0x%04x, expected "
		       "0x%04x", le16_at(img + BZ_BOOT_FLAG),
		       BZ_BOOT_FLAG_VALUE);
		return -ENOEXEC;
	}
	sects = img[BZ_SETUP_SECTS] ? img[BZ_SETUP_SECTS] : 4;
	setup_size = (sects + 1) * (size_t)BZ_SECTOR;
	if (len <= setup_size) {
		seterr(err, errlen, "bzImage truncated: %zu bytes, its setup "
		       "code alone is %zu", len, setup_size);
		return -ENOEXEC;
	}
	/*
	 * The header ends where its first instruction jumps to; what lies
	 * beyond is setup code, not fields of an older protocol.
	 */
	if (img[BZ_JUMP] == 0xeb &&
	    BZ_HEADER_MAGIC + (size_t)img[BZ_JUMP + 1] - BZ_SETUP_SECTS <
	    hdr_len)
		hdr_len = BZ_HEADER_MAGIC + img[BZ_JUMP + 1] - BZ_SETUP_SECTS;
	memset(h, 0, sizeof(*h));
	memcpy(h, img + BZ_SETUP_SECTS, hdr_len);

	if (h->version < LOADER_MIN_PROTOCOL) {
		seterr(err, errlen, "bzImage boot protocol %u.%02u is too old: "
		       "the 64-bit entry needs %u.%02u or later",
		       h->version >> 8, h->version & 0xff,
		       LOADER_MIN_PROTOCOL >> 8, LOADER_MIN_PROTOCOL & 0xff);
		return -ENOEXEC;
	}
	if (!(h->loadflags & LOADED_HIGH)) {
		seterr(err, errlen, "bzImage is not loaded high (loadflags "
		       "0x%02x): a zImage, not supported", h->loadflags);
		return -ENOEXEC;
	}
	if (!(h->xloadflags & XLF_KERNEL_64)) {
		seterr(err, errlen, "bzImage has no 64-bit entry point "
		       "(xloadflags 0x%04x lacks XLF_KERNEL_64)",
		       h->xloadflags);
		return -ENOEXEC;
	}
	bz->pm = img + setup_size;
	bz->pm_len = len - setup_size;
	/* syssize counts 16-byte paragraphs, rounded up over the CRC. */
	if ((uint64_t)h->syssize * 16 > (uint64_t)bz->pm_len + 16) {
		seterr(err, errlen, "bzImage truncated: protected-mode part is "
		       "%zu bytes, the header says %llu", bz->pm_len,
		       (unsigned long long)h->syssize * 16);
		return -ENOEXEC;
	}
	if (h->payload_length == 0 || h->payload_offset > bz->pm_len ||
	    h->payload_length > bz->pm_len - h->payload_offset) {
		seterr(err, errlen, "bzImage payload (offset 0x%x, %u bytes) "
		       "lies outside the %zu-byte protected-mode part",
		       h->payload_offset, h->payload_length, bz->pm_len);
		return -ENOEXEC;
	}
	bz->payload = bz->pm + h->payload_offset;
	bz->payload_len = h->payload_length;
	/* We align a relocatable kernel's load address to it. */
	if (h->relocatable_kernel &&
	    (!is_pow2(h->kernel_alignment) ||
	     h->kernel_alignment < PAGE_SIZE_4K ||
	     h->kernel_alignment > GiB)) {
		seterr(err, errlen, "bzImage kernel_alignment 0x%x is not a "
		       "power of two between 4 KiB and 1 GiB",
		       h->kernel_alignment);
		return -ENOEXEC;
	}
	return 0;
}

/* Load the protected-mode part as is, to run the kernel's decompressor. */
static int
bzimage_load_classic(const struct guest_mem *m, const struct bzimage *bz,
		     struct kernel_info *k, char *err, size_t errlen)
{
	const struct setup_header *h = &k->hdr;
	uint64_t addr, size, align = h->kernel_alignment;
	int r;

	addr = h->pref_address;
	if (!addr)
		addr = LAYOUT_KERNEL_DEFAULT;
	if (h->relocatable_kernel) {
		if (addr > UINT64_MAX - align)
			addr = LAYOUT_KERNEL_DEFAULT;
		addr = (addr + align - 1) & ~(align - 1);
	}
	size = h->init_size > bz->pm_len ? h->init_size : bz->pm_len;
	if (addr > UINT64_MAX - size) {
		seterr(err, errlen, "bzImage pref_address 0x%llx is out of "
		       "range", (unsigned long long)addr);
		return -ENOEXEC;
	}
	r = check_fit(m, addr, addr + size, err, errlen);
	if (r < 0)
		return r;
	r = guest_mem_write(m, addr, bz->pm, bz->pm_len);
	if (r < 0) {
		seterr(err, errlen, "cannot write the kernel to guest memory");
		return r;
	}
	k->entry = addr + BZ_ENTRY64_OFFSET;
	k->load_start = addr;
	k->load_end = addr + size;
	k->host_decompressed = false;
	return 0;
}

/*
 * Decompress the payload and load the vmlinux inside. Returns 1 when the
 * payload is not something we can load (the caller falls back to classic),
 * 0 when loaded, or a negative errno for a kernel that cannot be loaded
 * either way.
 */
static int
bzimage_load_host(const struct guest_mem *m, const struct bzimage *bz,
		  struct kernel_info *k, char *err, size_t errlen)
{
	struct elf_plan plan;
	void *elf = NULL;
	size_t elf_len, max_out;
	int r;

	/*
	 * The kernel decompresses in place within init_size, so its output
	 * never exceeds that; nor could it run in less RAM than it takes.
	 */
	max_out = k->hdr.init_size ? k->hdr.init_size : m->size;
	if (max_out > m->size)
		max_out = m->size;
	r = decompress_buf(bz->payload, bz->payload_len, max_out, &elf,
			   &elf_len);
	if (r < 0)
		return 1;
	if (elf_parse(elf, elf_len, &plan, NULL, 0) < 0) {
		free(elf);
		return 1;
	}
	r = elf_load(m, elf, &plan, k->hdr.init_size, k, err, errlen);
	free(elf);
	if (r < 0)
		return r;
	k->host_decompressed = true;
	return 0;
}

static int
load_bzimage(const struct guest_mem *m, const uint8_t *img, size_t len,
	     enum loader_mode mode, struct kernel_info *k, char *err,
	     size_t errlen)
{
	struct bzimage bz;
	int r;

	r = bzimage_parse(img, len, &k->hdr, &bz, err, errlen);
	if (r < 0)
		return r;
	k->is_bzimage = true;
	k->compression = NULL;
	(void)decompress_detect(bz.payload, bz.payload_len, &k->compression);
	if (mode == LOADER_HOST_DECOMPRESS) {
		r = bzimage_load_host(m, &bz, k, err, errlen);
		if (r <= 0)
			return r;
	}
	return bzimage_load_classic(m, &bz, k, err, errlen);
}

int
loader_load_kernel(const struct guest_mem *m, const void *image, size_t len,
		   enum loader_mode mode, struct kernel_info *ret, char *err,
		   size_t errlen)
{
	struct kernel_info k;
	int r;

	seterr(err, errlen, "%s", "");
	if (!m || !image || !ret || (unsigned int)mode >= LOADER_MODE_MAX) {
		seterr(err, errlen, "bad arguments to loader_load_kernel");
		return -EINVAL;
	}
	memset(&k, 0, sizeof(k));
	if (is_elf(image, len))
		r = load_elf_image(m, image, len, &k, err, errlen);
	else if (is_bzimage(image, len))
		r = load_bzimage(m, image, len, mode, &k, err, errlen);
	else {
		seterr(err, errlen, "not a Linux kernel: no bzImage header and "
		       "no ELF magic");
		r = -ENOEXEC;
	}
	if (r < 0)
		return r;
	*ret = k;
	return 0;
}

int
loader_load_initrd(const struct guest_mem *m, const struct kernel_info *k,
		   const void *data, size_t len, uint64_t *ret_gpa,
		   char *err, size_t errlen)
{
	uint64_t top, floor, gpa, addr_max;
	int r;

	if (!m || !k || !data || !ret_gpa || m->nr_regions < 1) {
		seterr(err, errlen, "bad arguments to loader_load_initrd");
		return -EINVAL;
	}
	if (len == 0) {
		seterr(err, errlen, "initrd is empty");
		return -EINVAL;
	}
	addr_max = k->hdr.initrd_addr_max ? k->hdr.initrd_addr_max :
		   INITRD_ADDR_MAX_DEFAULT;
	top = m->regions[0].gpa + m->regions[0].size;
	if (addr_max + 1 < top)
		top = addr_max + 1;
	floor = (k->load_end + PAGE_SIZE_4K - 1) & ~(PAGE_SIZE_4K - 1);
	if (floor < LAYOUT_BIOS_END)
		floor = LAYOUT_BIOS_END;
	if (len > top || ((top - len) & ~(PAGE_SIZE_4K - 1)) < floor) {
		seterr(err, errlen, "initrd of %zu bytes (%llu MiB) does not fit: "
		       "%llu MiB free between the kernel's end at 0x%llx and "
		       "0x%llx", len, (unsigned long long)mib_up(len),
		       (unsigned long long)(top > floor ? (top - floor) / MiB :
					    0),
		       (unsigned long long)floor, (unsigned long long)top);
		return -ENOSPC;
	}
	gpa = (top - len) & ~(PAGE_SIZE_4K - 1);
	r = guest_mem_write(m, gpa, data, len);
	if (r < 0) {
		seterr(err, errlen, "cannot write the initrd to guest memory at "
		       "0x%llx", (unsigned long long)gpa);
		return r;
	}
	*ret_gpa = gpa;
	return 0;
}
