/* SPDX-License-Identifier: MIT */
/*
 * Kernel and initrd loading. The bzImages are built here in memory: a
 * setup header in front of a protected-mode part whose payload is a small
 * ELF64 vmlinux (assembled below) compressed with each format Linux
 * uses. The real Debian kernel is loaded too when VMM_TEST_KERNEL names it.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#define ZLIB_CONST
#include <bzlib.h>
#include <lz4.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "layout.h"
#include "mem.h"
#include "x86/decompress.h"
#include "x86/loader.h"

#define RAM_SIZE	(32 * MiB)
#define ERRLEN		256

struct blob {
	uint8_t *p;
	size_t len;
};

static void
blob_free(struct blob *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t
pattern(unsigned int seg, uint64_t pos)
{
	return (uint8_t)(0x11 * (seg + 1) + pos * 7 + (pos >> 8));
}

/* ---- A small vmlinux ---- */

struct seg_spec {
	uint32_t type, flags;
	uint64_t vaddr, paddr, filesz, memsz;
};

#define MAX_SEGS 4

struct elf_spec {
	uint64_t entry;
	unsigned int nr;
	struct seg_spec seg[MAX_SEGS];
};

/*
 * Like Debian's vmlinux: text at virtual 0xffffffff81000000 / physical
 * 16 MiB with a tail to zero-fill, a per-cpu segment at virtual 0, a note.
 */
static const struct elf_spec default_elf = {
	.entry = 0xffffffff81000040ull,
	.nr = 3,
	.seg = {
		{ PT_LOAD, PF_R | PF_X, 0xffffffff81000000ull, 0x1000000,
		  0x1800, 0x3000 },
		{ PT_LOAD, PF_R | PF_W, 0, 0x1200000, 0x100, 0x100 },
		{ PT_NOTE, PF_R, 0xffffffff81001000ull, 0x1001000, 0x20, 0x20 },
	},
};

/* Segment i's bytes sit at 8 KiB * (i + 1) in the file. */
#define ELF_SEG_FILE_OFF(i) (0x2000u * ((i) + 1))

static struct blob
make_elf(const struct elf_spec *s)
{
	Elf64_Ehdr eh;
	struct blob b;

	b.len = ELF_SEG_FILE_OFF(s->nr);
	b.p = calloc(1, b.len);
	assert_non_null(b.p);
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = s->entry;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (uint16_t)s->nr;
	memcpy(b.p, &eh, sizeof(eh));
	for (unsigned int i = 0; i < s->nr; i++) {
		Elf64_Phdr ph = {
			.p_type = s->seg[i].type,
			.p_flags = s->seg[i].flags,
			.p_offset = ELF_SEG_FILE_OFF(i),
			.p_vaddr = s->seg[i].vaddr,
			.p_paddr = s->seg[i].paddr,
			.p_filesz = s->seg[i].filesz,
			.p_memsz = s->seg[i].memsz,
			.p_align = 0x1000,
		};

		assert_true(s->seg[i].filesz <= 0x2000);
		memcpy(b.p + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
		for (uint64_t k = 0; k < s->seg[i].filesz; k++)
			b.p[ELF_SEG_FILE_OFF(i) + k] = pattern(i, k);
	}
	return b;
}

static Elf64_Phdr *
elf_phdr(struct blob *b, unsigned int i)
{
	return (Elf64_Phdr *)(b->p + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr));
}

static Elf64_Ehdr *
elf_ehdr(struct blob *b)
{
	return (Elf64_Ehdr *)b->p;
}

/* ---- Compression, as Linux's build does it ---- */

static struct blob
comp_gzip(const struct blob *in)
{
	z_stream s = { 0 };
	struct blob c;

	assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, 16 + MAX_WBITS, 9,
				      Z_DEFAULT_STRATEGY), Z_OK);
	c.len = deflateBound(&s, in->len) + 32;
	c.p = malloc(c.len);
	assert_non_null(c.p);
	s.next_in = in->p;
	s.avail_in = (uInt)in->len;
	s.next_out = c.p;
	s.avail_out = (uInt)c.len;
	assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
	c.len = s.total_out;
	deflateEnd(&s);
	return c;
}

static struct blob
comp_xz(const struct blob *in)
{
	lzma_options_lzma opt;
	lzma_filter f[3];
	struct blob c;
	size_t pos = 0;

	assert_false(lzma_lzma_preset(&opt, 6));
	opt.dict_size = 1u << 20;
	f[0] = (lzma_filter){ LZMA_FILTER_X86, NULL };
	f[1] = (lzma_filter){ LZMA_FILTER_LZMA2, &opt };
	f[2] = (lzma_filter){ LZMA_VLI_UNKNOWN, NULL };
	c.len = lzma_stream_buffer_bound(in->len);
	c.p = malloc(c.len);
	assert_non_null(c.p);
	assert_int_equal(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL,
			 in->p, in->len, c.p, &pos, c.len), LZMA_OK);
	c.len = pos;
	return c;
}

static struct blob
comp_lzma(const struct blob *in)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	struct blob c;

	assert_false(lzma_lzma_preset(&opt, 6));
	opt.dict_size = 1u << 20;
	assert_int_equal(lzma_alone_encoder(&s, &opt), LZMA_OK);
	c.len = in->len + in->len / 2 + 4096;
	c.p = malloc(c.len);
	assert_non_null(c.p);
	s.next_in = in->p;
	s.avail_in = in->len;
	s.next_out = c.p;
	s.avail_out = c.len;
	assert_int_equal(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
	c.len = s.total_out;
	lzma_end(&s);
	return c;
}

/* lz4 -l output: the legacy magic and one block (inputs here are small). */
static struct blob
comp_lz4(const struct blob *in)
{
	struct blob c;
	int r;

	assert_true(in->len <= DECOMPRESS_LZ4_LEGACY_BLOCK);
	c.p = malloc(8 + (size_t)LZ4_compressBound((int)in->len));
	assert_non_null(c.p);
	put_le32(c.p, 0x184c2102);
	r = LZ4_compress_default((const char *)in->p, (char *)c.p + 8,
				 (int)in->len, LZ4_compressBound((int)in->len));
	assert_true(r > 0);
	put_le32(c.p + 4, (uint32_t)r);
	c.len = 8 + (size_t)r;
	return c;
}

static struct blob
comp_zstd(const struct blob *in)
{
	struct blob c;
	size_t r;

	c.len = ZSTD_compressBound(in->len);
	c.p = malloc(c.len);
	assert_non_null(c.p);
	r = ZSTD_compress(c.p, c.len, in->p, in->len, 19);
	assert_false(ZSTD_isError(r));
	c.len = r;
	return c;
}

static struct blob
comp_bzip2(const struct blob *in)
{
	unsigned int dlen = (unsigned int)(in->len + in->len / 100 + 601);
	struct blob c;

	c.p = malloc(dlen);
	assert_non_null(c.p);
	assert_int_equal(BZ2_bzBuffToBuffCompress((char *)c.p, &dlen,
			 (char *)in->p, (unsigned int)in->len, 9, 0, 0), BZ_OK);
	c.len = dlen;
	return c;
}

struct format {
	const char *name;
	struct blob (*compress)(const struct blob *);
	/* Linux appends the uncompressed size (all but gzip). */
	int size_word;
};

static const struct format formats[] = {
	{ "gzip", comp_gzip, 0 },
	{ "xz", comp_xz, 1 },
	{ "lzma", comp_lzma, 1 },
	{ "lz4", comp_lz4, 1 },
	{ "zstd", comp_zstd, 1 },
	{ "bzip2", comp_bzip2, 1 },
};
#define NR_FORMATS (sizeof(formats) / sizeof(formats[0]))

static struct blob
compress_payload(const struct format *f, const struct blob *elf)
{
	struct blob c = f->compress(elf);

	if (f->size_word) {
		c.p = realloc(c.p, c.len + 4);
		assert_non_null(c.p);
		put_le32(c.p + c.len, (uint32_t)elf->len);
		c.len += 4;
	}
	return c;
}

/* ---- bzImage ---- */

#define STUB_LEN	0x400	/* stands in for the kernel's decompressor */

struct bz_spec {
	uint8_t setup_sects;
	uint16_t version;
	uint8_t loadflags;
	uint16_t xloadflags;
	uint8_t relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t initrd_addr_max;
};

static const struct bz_spec default_bz = {
	.setup_sects = 4,
	.version = 0x020f,
	.loadflags = LOADED_HIGH,
	.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G,
	.relocatable = 1,
	.kernel_alignment = 2 * MiB,
	.pref_address = 0x1000000,
	.init_size = 4 * MiB,
	.initrd_addr_max = 0x7fffffff,
};

static size_t
bz_setup_size(const struct bz_spec *s)
{
	return ((s->setup_sects ? s->setup_sects : 4) + 1) * 512u;
}

/* setup sectors, then a stub and the payload: the protected-mode part. */
static struct blob
make_bzimage(const struct bz_spec *s, const struct blob *payload)
{
	size_t setup = bz_setup_size(s);
	size_t pm_len = STUB_LEN + payload->len;
	struct setup_header h;
	struct blob b;

	b.len = setup + pm_len;
	b.p = calloc(1, b.len);
	assert_non_null(b.p);
	memset(&h, 0, sizeof(h));
	h.setup_sects = s->setup_sects;
	h.syssize = (uint32_t)((pm_len + 15) / 16);
	h.boot_flag = 0xaa55;
	/* jmp short over the header, which ends at 0x26c. */
	h.jump = (uint16_t)(0xeb | (0x26c - 0x202) << 8);
	memcpy(&h.header, "HdrS", 4);
	h.version = s->version;
	h.loadflags = s->loadflags;
	h.code32_start = 0x100000;
	h.initrd_addr_max = s->initrd_addr_max;
	h.kernel_alignment = s->kernel_alignment;
	h.relocatable_kernel = s->relocatable;
	h.min_alignment = 21;
	h.xloadflags = s->xloadflags;
	h.cmdline_size = 2047;
	h.payload_offset = STUB_LEN;
	h.payload_length = (uint32_t)payload->len;
	h.pref_address = s->pref_address;
	h.init_size = s->init_size;
	memcpy(b.p + 0x1f1, &h, sizeof(h));
	/* Some recognisable setup code after the header. */
	memset(b.p + 0x26c, 0xcc, setup - 0x26c);
	for (size_t i = 0; i < STUB_LEN; i++)
		b.p[setup + i] = (uint8_t)(0x90 + i);
	memcpy(b.p + setup + STUB_LEN, payload->p, payload->len);
	return b;
}

static struct setup_header *
bz_hdr(struct blob *b)
{
	return (struct setup_header *)(b->p + 0x1f1);
}

/* A bzImage around the default vmlinux, compressed with lz4. */
static struct blob
default_bzimage(const struct bz_spec *s)
{
	struct blob elf = make_elf(&default_elf);
	struct blob pay = compress_payload(&formats[3], &elf);
	struct blob b = make_bzimage(s, &pay);

	blob_free(&elf);
	blob_free(&pay);
	return b;
}

/* ---- Fixture ---- */

struct fixture {
	struct guest_mem m;
	char err[ERRLEN];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || guest_mem_init(&f->m, RAM_SIZE) < 0)
		return -1;
	/* Stale contents, to see that the loader zero-fills. */
	memset(f->m.hva, 0xaa, RAM_SIZE);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	guest_mem_destroy(&f->m);
	free(f);
	return 0;
}

static void
expect_default_elf_loaded(const struct guest_mem *m)
{
	const uint8_t *p;

	/* Segment 0: file bytes, then zeros to memsz. */
	p = guest_mem_ptr(m, 0x1000000, 0x3000);
	assert_non_null(p);
	for (uint64_t k = 0; k < 0x1800; k++)
		if (p[k] != pattern(0, k))
			fail_msg("segment 0 byte 0x%llx: 0x%02x, expected "
				 "0x%02x", (unsigned long long)k, p[k],
				 pattern(0, k));
	for (uint64_t k = 0x1800; k < 0x3000; k++)
		if (p[k] != 0)
			fail_msg("segment 0 bss byte 0x%llx is 0x%02x",
				 (unsigned long long)k, p[k]);
	/* Nothing written beyond memsz. */
	assert_int_equal(p[0x3000 - 1], 0);
	assert_int_equal(*(const uint8_t *)guest_mem_ptr(m, 0x1003000, 1),
			 0xaa);
	/* Segment 1, at its physical address though its vaddr is 0. */
	p = guest_mem_ptr(m, 0x1200000, 0x100);
	for (uint64_t k = 0; k < 0x100; k++)
		assert_int_equal(p[k], pattern(1, k));
	/* The note is not loaded; nothing at low addresses either. */
	assert_int_equal(*(const uint8_t *)guest_mem_ptr(m, 0, 1), 0xaa);
}

static void
test_bzimage_host_each_format(void **state)
{
	struct fixture *f = *state;
	struct blob elf = make_elf(&default_elf);

	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob pay = compress_payload(&formats[i], &elf);
		struct blob bz = make_bzimage(&default_bz, &pay);
		struct kernel_info k;
		int r;

		memset(f->m.hva, 0xaa, RAM_SIZE);
		r = loader_load_kernel(&f->m, bz.p, bz.len,
				       LOADER_HOST_DECOMPRESS, &k, f->err,
				       ERRLEN);
		if (r != 0)
			fail_msg("%s: loader_load_kernel = %d (%s)",
				 formats[i].name, r, f->err);
		assert_true(k.is_bzimage);
		if (!k.host_decompressed)
			fail_msg("%s: not host-decompressed", formats[i].name);
		assert_string_equal(k.compression, formats[i].name);
		/* Virtual entry translated through the text segment. */
		assert_int_equal(k.entry, 0x1000040);
		assert_int_equal(k.load_start, 0x1000000);
		/* init_size (4 MiB) reaches further than the segments. */
		assert_int_equal(k.load_end, 0x1000000 + 4 * MiB);
		/* The bzImage's own header is kept. */
		assert_int_equal(k.hdr.version, 0x020f);
		assert_int_equal(k.hdr.payload_length, pay.len);
		assert_int_equal(k.hdr.init_size, 4 * MiB);
		assert_int_equal(k.hdr.boot_flag, 0xaa55);
		expect_default_elf_loaded(&f->m);
		blob_free(&pay);
		blob_free(&bz);
	}
	blob_free(&elf);
}

/* Segments past load_start + init_size set load_end. */
static void
test_host_load_end_from_segments(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = default_bz;
	struct blob bz;
	struct kernel_info k;

	s.init_size = 0x10000;
	bz = default_bzimage(&s);
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len,
					    LOADER_HOST_DECOMPRESS, &k, f->err,
					    ERRLEN), 0);
	assert_true(k.host_decompressed);
	assert_int_equal(k.load_end, 0x1200100);
	blob_free(&bz);
}

static void
test_bzimage_classic(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = default_bz;
	struct blob bz = default_bzimage(&s);
	size_t setup = bz_setup_size(&s);
	struct kernel_info k;

	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len, LOADER_CLASSIC,
					    &k, f->err, ERRLEN), 0);
	assert_true(k.is_bzimage);
	assert_false(k.host_decompressed);
	assert_string_equal(k.compression, "lz4");
	assert_int_equal(k.load_start, 0x1000000);
	assert_int_equal(k.entry, 0x1000200);
	assert_int_equal(k.load_end, 0x1000000 + 4 * MiB);
	assert_memory_equal(guest_mem_ptr(&f->m, 0x1000000, bz.len - setup),
			    bz.p + setup, bz.len - setup);
	/* Just the protected-mode part: the byte after it is untouched. */
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&f->m,
			 0x1000000 + bz.len - setup, 1), 0xaa);
	blob_free(&bz);

	/* No pref_address: 16 MiB, aligned to kernel_alignment. */
	s.pref_address = 0;
	s.kernel_alignment = 4 * MiB;
	bz = default_bzimage(&s);
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len, LOADER_CLASSIC,
					    &k, f->err, ERRLEN), 0);
	assert_int_equal(k.load_start, 16 * MiB);
	assert_int_equal(k.entry, 16 * MiB + 0x200);
	blob_free(&bz);

	/* A relocatable kernel's unaligned pref_address is aligned up. */
	s.pref_address = 0x1100000;
	s.kernel_alignment = 2 * MiB;
	bz = default_bzimage(&s);
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len, LOADER_CLASSIC,
					    &k, f->err, ERRLEN), 0);
	assert_int_equal(k.load_start, 0x1200000);
	blob_free(&bz);

	/* A fixed one goes exactly where it asks. */
	s.relocatable = 0;
	bz = default_bzimage(&s);
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len, LOADER_CLASSIC,
					    &k, f->err, ERRLEN), 0);
	assert_int_equal(k.load_start, 0x1100000);
	assert_int_equal(k.entry, 0x1100200);
	/* setup_sects 0 means 4. */
	blob_free(&bz);
	s = default_bz;
	s.setup_sects = 0;
	bz = default_bzimage(&s);
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len, LOADER_CLASSIC,
					    &k, f->err, ERRLEN), 0);
	assert_memory_equal(guest_mem_ptr(&f->m, 0x1000000, 16),
			    bz.p + 5 * 512, 16);
	blob_free(&bz);
}

static void
expect_refused(struct fixture *f, const struct blob *b, enum loader_mode mode,
	       int want, const char *msg_part)
{
	struct kernel_info k;
	int r;

	memset(&k, 0x5a, sizeof(k));
	f->err[0] = 0;
	r = loader_load_kernel(&f->m, b->p, b->len, mode, &k, f->err, ERRLEN);
	if (r != want)
		fail_msg("loader_load_kernel(%zu bytes, mode %d) = %d (%s), "
			 "expected %d", b->len, mode, r, f->err, want);
	if (!strstr(f->err, msg_part))
		fail_msg("error \"%s\" does not mention \"%s\"", f->err,
			 msg_part);
	/* *ret is written only on success. */
	assert_int_equal(k.entry, 0x5a5a5a5a5a5a5a5aull);
}

static void
test_truncated(void **state)
{
	struct fixture *f = *state;
	struct blob bz = default_bzimage(&default_bz);
	size_t full = bz.len;

	/* Every length up to well past the header, then the payload. */
	for (size_t n = 0; n < full; n++) {
		struct blob t = { bz.p, n };

		if (n > 0x1000 && n % 7 != 0 && n < full - 64)
			continue;
		for (int mode = 0; mode < LOADER_MODE_MAX; mode++) {
			struct kernel_info k;
			int r;

			f->err[0] = 0;
			r = loader_load_kernel(&f->m, t.p, t.len, mode, &k,
					       f->err, ERRLEN);
			if (r != -ENOEXEC)
				fail_msg("truncated to %zu bytes: %d (%s)", n,
					 r, f->err);
			assert_true(strlen(f->err) > 0);
		}
	}
	/* And the messages say what is wrong. */
	expect_refused(f, &(struct blob){ bz.p, 0x100 }, LOADER_CLASSIC,
		       -ENOEXEC, "not a Linux kernel");
	expect_refused(f, &(struct blob){ bz.p, 0x300 }, LOADER_CLASSIC,
		       -ENOEXEC, "truncated");
	expect_refused(f, &(struct blob){ bz.p, full - 1 }, LOADER_CLASSIC,
		       -ENOEXEC, "payload");
	blob_free(&bz);
}

static void
test_header_validation(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s;
	struct blob bz;

	bz = default_bzimage(&default_bz);
	bz_hdr(&bz)->boot_flag = 0x55ab;
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "boot_flag");
	bz_hdr(&bz)->boot_flag = 0xaa55;
	memcpy(&bz_hdr(&bz)->header, "HdrT", 4);
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -ENOEXEC,
		       "not a Linux kernel: no bzImage header and no ELF magic");
	blob_free(&bz);

	s = default_bz;
	s.version = 0x020b;
	bz = default_bzimage(&s);
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -ENOEXEC,
		       "boot protocol 2.11 is too old");
	blob_free(&bz);

	s = default_bz;
	s.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	bz = default_bzimage(&s);
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -ENOEXEC,
		       "XLF_KERNEL_64");
	blob_free(&bz);

	s = default_bz;
	s.loadflags = 0;
	bz = default_bzimage(&s);
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "not loaded high");
	blob_free(&bz);

	s = default_bz;
	s.kernel_alignment = 3 * MiB;
	bz = default_bzimage(&s);
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "kernel_alignment");
	blob_free(&bz);
	/* A fixed kernel's alignment is not ours to use: no matter. */
	s.relocatable = 0;
	bz = default_bzimage(&s);
	{
		struct kernel_info k;

		assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len,
						    LOADER_CLASSIC, &k, f->err,
						    ERRLEN), 0);
		assert_int_equal(k.load_start, 0x1000000);
	}
	blob_free(&bz);

	/* A header whose jump ends it before the version: too old. */
	bz = default_bzimage(&default_bz);
	bz.p[0x201] = 0x02;
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "too old");
	blob_free(&bz);

	/* A kernel placed over the first MiB. */
	s = default_bz;
	s.pref_address = 0x80000;
	s.relocatable = 0;
	bz = default_bzimage(&s);
	expect_refused(f, &bz, LOADER_CLASSIC, -EINVAL, "first MiB");
	blob_free(&bz);
}

static void
test_payload_bounds(void **state)
{
	struct fixture *f = *state;
	struct blob bz = default_bzimage(&default_bz);
	size_t pm_len = bz.len - bz_setup_size(&default_bz);
	struct setup_header *h = bz_hdr(&bz);
	uint32_t off = h->payload_offset, plen = h->payload_length;

	h->payload_offset = (uint32_t)pm_len;
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -ENOEXEC, "payload");
	h->payload_offset = off;
	h->payload_length = (uint32_t)(pm_len - off + 1);
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -ENOEXEC, "payload");
	h->payload_length = 0;
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "payload");
	/* Offset + length wrapping around 32 bits. */
	h->payload_offset = 0xffffff00;
	h->payload_length = 0x200;
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "payload");
	h->payload_offset = off;
	h->payload_length = plen;
	/* syssize larger than the file. */
	h->syssize += 2;
	expect_refused(f, &bz, LOADER_CLASSIC, -ENOEXEC, "truncated");
	blob_free(&bz);
}

static void
expect_fallback(struct fixture *f, const struct blob *bz, const char *comp)
{
	struct kernel_info k;
	int r;

	memset(f->m.hva, 0xaa, RAM_SIZE);
	r = loader_load_kernel(&f->m, bz->p, bz->len, LOADER_HOST_DECOMPRESS,
			       &k, f->err, ERRLEN);
	if (r != 0)
		fail_msg("fallback load = %d (%s)", r, f->err);
	assert_false(k.host_decompressed);
	assert_true(k.is_bzimage);
	if (comp)
		assert_string_equal(k.compression, comp);
	else
		assert_null(k.compression);
	assert_int_equal(k.entry, 0x1000200);
	assert_int_equal(k.load_start, 0x1000000);
	/* The protected-mode part as is, not an ELF. */
	assert_memory_equal(guest_mem_ptr(&f->m, 0x1000000, 64),
			    bz->p + bz_setup_size(&default_bz), 64);
}

static void
test_corrupt_payload_falls_back(void **state)
{
	struct fixture *f = *state;
	struct blob elf = make_elf(&default_elf);
	struct blob pay, bz;
	size_t setup = bz_setup_size(&default_bz);

	/* gzip: a flipped byte fails the CRC. */
	pay = compress_payload(&formats[0], &elf);
	bz = make_bzimage(&default_bz, &pay);
	bz.p[setup + STUB_LEN + pay.len / 2] ^= 0x55;
	expect_fallback(f, &bz, "gzip");
	blob_free(&bz);
	/* Truncated lz4: the block runs past the payload. */
	bz = default_bzimage(&default_bz);
	bz_hdr(&bz)->payload_length -= 40;
	expect_fallback(f, &bz, "lz4");
	blob_free(&bz);
	blob_free(&pay);

	/* Unknown compression. */
	pay.len = 4096;
	pay.p = malloc(pay.len);
	assert_non_null(pay.p);
	for (size_t i = 0; i < pay.len; i++)
		pay.p[i] = (uint8_t)(i * 131 + 7);
	bz = make_bzimage(&default_bz, &pay);
	expect_fallback(f, &bz, NULL);
	blob_free(&bz);

	/* LZO: recognised, not decoded here. */
	memcpy(pay.p, "\x89LZO\0\r\n\x1a\n", 9);
	bz = make_bzimage(&default_bz, &pay);
	expect_fallback(f, &bz, "lzo");
	blob_free(&bz);
	blob_free(&pay);

	/* Decompresses, but to something that is not an ELF. */
	memset(elf.p, 'x', 4);
	pay = compress_payload(&formats[4], &elf);
	bz = make_bzimage(&default_bz, &pay);
	expect_fallback(f, &bz, "zstd");
	blob_free(&bz);
	blob_free(&pay);
	blob_free(&elf);

	/* A bad ELF inside: a segment beyond its file. */
	elf = make_elf(&default_elf);
	elf_phdr(&elf, 0)->p_filesz = 0x100000;
	elf_phdr(&elf, 0)->p_memsz = 0x100000;
	pay = compress_payload(&formats[4], &elf);
	bz = make_bzimage(&default_bz, &pay);
	expect_fallback(f, &bz, "zstd");
	blob_free(&bz);
	blob_free(&pay);
	blob_free(&elf);
}

static void
test_too_large(void **state)
{
	struct fixture *f = *state;
	struct bz_spec s = default_bz;
	struct blob bz, elf;

	/* init_size beyond RAM, both modes. */
	s.init_size = 40 * MiB;
	bz = default_bzimage(&s);
	memset(f->m.hva, 0xaa, RAM_SIZE);
	expect_refused(f, &bz, LOADER_CLASSIC, -EFBIG,
		       "kernel needs 40 MiB at 0x1000000, guest RAM is 32 MiB");
	expect_refused(f, &bz, LOADER_HOST_DECOMPRESS, -EFBIG,
		       "kernel needs 40 MiB at 0x1000000, guest RAM is 32 MiB");
	/* Nothing was written. */
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&f->m, 0x1000000, 1), 0xaa);
	assert_int_equal(*(uint8_t *)guest_mem_ptr(&f->m, 0x1200000, 1), 0xaa);
	blob_free(&bz);

	/* An ELF segment whose memsz runs past RAM. */
	elf = make_elf(&default_elf);
	elf_phdr(&elf, 1)->p_memsz = 64 * MiB;
	expect_refused(f, &elf, LOADER_HOST_DECOMPRESS, -EFBIG,
		       "kernel needs 66 MiB at 0x1000000, guest RAM is 32 MiB");
	blob_free(&elf);
}

static void
test_not_a_kernel(void **state)
{
	struct fixture *f = *state;
	static const char text[] = "#!/bin/sh\necho this is not a kernel\n";
	uint8_t zeros[4096] = { 0 };
	struct blob b;

	b = (struct blob){ (uint8_t *)(uintptr_t)text, sizeof(text) };
	expect_refused(f, &b, LOADER_HOST_DECOMPRESS, -ENOEXEC,
		       "not a Linux kernel: no bzImage header and no ELF magic");
	b = (struct blob){ zeros, sizeof(zeros) };
	expect_refused(f, &b, LOADER_CLASSIC, -ENOEXEC, "not a Linux kernel");
	b = (struct blob){ zeros, 0 };
	expect_refused(f, &b, LOADER_CLASSIC, -ENOEXEC, "not a Linux kernel");
	/* A boot sector without "HdrS" is no bzImage either. */
	zeros[0x1fe] = 0x55;
	zeros[0x1ff] = 0xaa;
	b = (struct blob){ zeros, sizeof(zeros) };
	expect_refused(f, &b, LOADER_CLASSIC, -ENOEXEC, "not a Linux kernel");
	/* Bad arguments. */
	assert_int_equal(loader_load_kernel(&f->m, NULL, 10, LOADER_CLASSIC,
					    NULL, f->err, ERRLEN), -EINVAL);
	assert_int_equal(loader_load_kernel(&f->m, text, sizeof(text),
					    LOADER_MODE_MAX, NULL, NULL, 0),
			 -EINVAL);
}

static void
test_elf_direct(void **state)
{
	struct fixture *f = *state;
	struct blob elf = make_elf(&default_elf);
	struct kernel_info k;

	assert_int_equal(loader_load_kernel(&f->m, elf.p, elf.len,
					    LOADER_HOST_DECOMPRESS, &k, f->err,
					    ERRLEN), 0);
	assert_false(k.is_bzimage);
	assert_false(k.host_decompressed);
	assert_null(k.compression);
	assert_int_equal(k.entry, 0x1000040);
	assert_int_equal(k.load_start, 0x1000000);
	assert_int_equal(k.load_end, 0x1200100);
	expect_default_elf_loaded(&f->m);
	/* The synthesized header. */
	assert_int_equal(k.hdr.boot_flag, 0xaa55);
	assert_memory_equal(&k.hdr.header, "HdrS", 4);
	assert_int_equal(k.hdr.version, 0x020f);
	assert_int_equal(k.hdr.type_of_loader, 0xff);
	assert_int_equal(k.hdr.loadflags, LOADED_HIGH);
	assert_int_equal(k.hdr.kernel_alignment, 2 * MiB);
	assert_int_equal(k.hdr.cmdline_size, 2047);
	assert_int_equal(k.hdr.initrd_addr_max, 0x7fffffff);
	blob_free(&elf);

	/* A physical entry (as vmlinux has: phys_startup_64) is kept. */
	{
		struct elf_spec s = default_elf;

		s.entry = 0x1000000;
		elf = make_elf(&s);
		assert_int_equal(loader_load_kernel(&f->m, elf.p, elf.len,
						    LOADER_CLASSIC, &k, f->err,
						    ERRLEN), 0);
		assert_int_equal(k.entry, 0x1000000);
		blob_free(&elf);
		/* Physical, inside the non-executable segment. */
		s.entry = 0x1200010;
		elf = make_elf(&s);
		assert_int_equal(loader_load_kernel(&f->m, elf.p, elf.len,
						    LOADER_CLASSIC, &k, f->err,
						    ERRLEN), 0);
		assert_int_equal(k.entry, 0x1200010);
		blob_free(&elf);
	}
}

static void
test_elf_validation(void **state)
{
	struct fixture *f = *state;
	struct blob e;

	e = make_elf(&default_elf);
	e.p[EI_CLASS] = ELFCLASS32;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "not 64-bit");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_ehdr(&e)->e_machine = EM_386;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "x86-64");
	blob_free(&e);

	e = make_elf(&default_elf);
	e.p[EI_DATA] = ELFDATA2MSB;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "little-endian");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_ehdr(&e)->e_phoff = e.len - 10;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "program headers");
	elf_ehdr(&e)->e_phoff = UINT64_MAX - 8;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "program headers");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_ehdr(&e)->e_phentsize = 32;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "program headers");
	elf_ehdr(&e)->e_phentsize = sizeof(Elf64_Phdr);
	elf_ehdr(&e)->e_phnum = 0;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "program headers");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 0)->p_offset = e.len - 0x100;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "segment 0 is bad");
	elf_phdr(&e, 0)->p_offset = UINT64_MAX - 0x10;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "segment 0 is bad");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 1)->p_filesz = 0x200;	/* > memsz */
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "segment 1 is bad");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 1)->p_paddr = UINT64_MAX - 0x10;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "segment 1 is bad");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 1)->p_paddr = 0x1002000;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "overlap");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_ehdr(&e)->e_entry = 0xffffffff80000000ull;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "entry point");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 0)->p_type = PT_NULL;
	elf_phdr(&e, 1)->p_type = PT_NULL;
	expect_refused(f, &e, LOADER_CLASSIC, -ENOEXEC, "no loadable");
	blob_free(&e);

	e = make_elf(&default_elf);
	elf_phdr(&e, 1)->p_paddr = 0x8000;
	expect_refused(f, &e, LOADER_CLASSIC, -EINVAL, "first MiB");
	blob_free(&e);

	/* Every truncation of an ELF is refused, none crashes. */
	e = make_elf(&default_elf);
	for (size_t n = 0; n < 0x4100; n += (n < 0x200 ? 1 : 61)) {
		struct kernel_info k;

		assert_true(loader_load_kernel(&f->m, e.p, n, LOADER_CLASSIC,
					       &k, f->err, ERRLEN) < 0);
	}
	blob_free(&e);
}

static void
test_initrd(void **state)
{
	struct fixture *f = *state;
	struct blob bz = default_bzimage(&default_bz);
	struct kernel_info k;
	uint8_t *data;
	uint64_t gpa = 0;
	size_t len = 100000;

	data = malloc(8 * MiB);
	assert_non_null(data);
	for (size_t i = 0; i < 8 * MiB; i++)
		data[i] = (uint8_t)(i ^ (i >> 9));
	assert_int_equal(loader_load_kernel(&f->m, bz.p, bz.len,
					    LOADER_HOST_DECOMPRESS, &k, f->err,
					    ERRLEN), 0);
	/* At the top of RAM, page-aligned. */
	assert_int_equal(loader_load_initrd(&f->m, &k, data, len, &gpa, f->err,
					    ERRLEN), 0);
	assert_int_equal(gpa, (RAM_SIZE - len) & ~0xfffull);
	assert_int_equal(gpa % 4096, 0);
	assert_true(gpa >= k.load_end);
	assert_memory_equal(guest_mem_ptr(&f->m, gpa, len), data, len);

	/* Below initrd_addr_max. */
	k.hdr.initrd_addr_max = 24 * MiB - 1;
	assert_int_equal(loader_load_initrd(&f->m, &k, data, len, &gpa, f->err,
					    ERRLEN), 0);
	assert_int_equal(gpa, (24 * MiB - len) & ~0xfffull);

	/* Exactly the room there is: [load_end, 24 MiB). */
	assert_int_equal(loader_load_initrd(&f->m, &k, data,
					    24 * MiB - k.load_end, &gpa,
					    f->err, ERRLEN), 0);
	assert_int_equal(gpa, k.load_end);
	/* One byte more does not fit, and the message says so. */
	gpa = 1;
	assert_int_equal(loader_load_initrd(&f->m, &k, data,
					    24 * MiB - k.load_end + 1, &gpa,
					    f->err, ERRLEN), -ENOSPC);
	assert_int_equal(gpa, 1);
	assert_non_null(strstr(f->err, "initrd of 4194305 bytes (5 MiB) does "
			       "not fit: 4 MiB free"));

	/* Bigger than RAM. */
	k.hdr.initrd_addr_max = 0x7fffffff;
	assert_int_equal(loader_load_initrd(&f->m, &k, data, 64 * MiB, &gpa,
					    f->err, ERRLEN), -ENOSPC);
	assert_non_null(strstr(f->err, "64 MiB"));
	assert_int_equal(loader_load_initrd(&f->m, &k, data, 0, &gpa, f->err,
					    ERRLEN), -EINVAL);
	free(data);
	blob_free(&bz);
}

/* With RAM above 4 GiB the initrd still goes in low RAM. */
static void
test_initrd_split_ram(void **state)
{
	struct guest_mem m;
	struct kernel_info k;
	uint8_t data[5000];
	char err[ERRLEN];
	uint64_t gpa;

	(void)state;
	if (guest_mem_init(&m, 5 * GiB) < 0)
		skip();
	memset(data, 0x3c, sizeof(data));
	memset(&k, 0, sizeof(k));
	k.load_start = 16 * MiB;
	k.load_end = 64 * MiB;
	k.hdr.initrd_addr_max = 0x7fffffff;
	assert_int_equal(loader_load_initrd(&m, &k, data, sizeof(data), &gpa,
					    err, ERRLEN), 0);
	assert_int_equal(gpa, 2 * GiB - 8192);
	k.hdr.initrd_addr_max = 0xffffffff;
	assert_int_equal(loader_load_initrd(&m, &k, data, sizeof(data), &gpa,
					    err, ERRLEN), 0);
	assert_int_equal(gpa, 3 * GiB - 8192);
	assert_memory_equal(guest_mem_ptr(&m, gpa, sizeof(data)), data,
			    sizeof(data));
	/* Zero means the protocol's default, 0x37ffffff. */
	k.hdr.initrd_addr_max = 0;
	assert_int_equal(loader_load_initrd(&m, &k, data, sizeof(data), &gpa,
					    err, ERRLEN), 0);
	assert_int_equal(gpa, 0x38000000 - 8192);
	guest_mem_destroy(&m);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct blob
read_file(const char *path)
{
	struct blob b = { NULL, 0 };
	struct stat st;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		fail_msg("cannot open %s (VMM_TEST_KERNEL)", path);
	assert_int_equal(fstat(fileno(fp), &st), 0);
	b.len = (size_t)st.st_size;
	b.p = malloc(b.len);
	assert_non_null(b.p);
	assert_int_equal(fread(b.p, 1, b.len, fp), b.len);
	fclose(fp);
	return b;
}

/* The Debian cloud kernel, when the runner provides it. */
static void
test_real_kernel(void **state)
{
	const char *path = getenv("VMM_TEST_KERNEL");
	/* The reference (cloud) kernel is lz4; the generic one is xz. */
	const char *comp = getenv("VMM_TEST_KERNEL_COMPRESSION");
	struct guest_mem m;
	struct kernel_info k;
	char err[ERRLEN];
	struct blob img, elf;
	const struct setup_header *h;
	size_t setup;
	Elf64_Ehdr eh;
	double t0, t1;
	void *out;
	unsigned int loads = 0;

	(void)state;
	if (!path || !*path) {
		print_message("VMM_TEST_KERNEL is unset: no real kernel to "
			      "load\n");
		skip();
	}
	img = read_file(path);
	assert_int_equal(guest_mem_init(&m, 512 * MiB), 0);
	t0 = now();
	if (loader_load_kernel(&m, img.p, img.len, LOADER_HOST_DECOMPRESS, &k,
			       err, ERRLEN) != 0)
		fail_msg("%s: %s", path, err);
	t1 = now();
	print_message("%s: host decompression and load took %.3f s\n", path,
		      t1 - t0);
	assert_true(k.is_bzimage);
	assert_true(k.host_decompressed);
	assert_string_equal(k.compression, comp && *comp ? comp : "lz4");
	assert_int_equal(k.entry, 0x1000000);
	assert_int_equal(k.load_start, 0x1000000);
	assert_true(k.hdr.version >= 0x020c);
	assert_true(k.hdr.xloadflags & XLF_KERNEL_64);
	assert_true(k.load_end >= k.load_start + k.hdr.init_size);

	/* Every PT_LOAD segment of the vmlinux inside is where it belongs. */
	h = (const struct setup_header *)(img.p + 0x1f1);
	setup = ((h->setup_sects ? h->setup_sects : 4) + 1) * 512u;
	assert_int_equal(decompress_buf(img.p + setup + h->payload_offset,
					h->payload_length, SIZE_MAX, &out,
					&elf.len), 0);
	elf.p = out;
	memcpy(&eh, elf.p, sizeof(eh));
	assert_int_equal(eh.e_machine, EM_X86_64);
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		memcpy(&ph, elf.p + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		loads++;
		assert_true(ph.p_paddr >= k.load_start);
		assert_true(ph.p_paddr + ph.p_memsz <= k.load_end);
		if (memcmp(guest_mem_ptr(&m, ph.p_paddr, ph.p_filesz),
			   elf.p + ph.p_offset, ph.p_filesz) != 0)
			fail_msg("segment %u at 0x%llx not loaded", i,
				 (unsigned long long)ph.p_paddr);
	}
	assert_true(loads >= 2);
	blob_free(&elf);

	/* Classic: the protected-mode part at 16 MiB, entry 0x200 in. */
	assert_int_equal(loader_load_kernel(&m, img.p, img.len, LOADER_CLASSIC,
					    &k, err, ERRLEN), 0);
	assert_false(k.host_decompressed);
	assert_int_equal(k.entry, 0x1000200);
	assert_memory_equal(guest_mem_ptr(&m, 0x1000000, img.len - setup),
			    img.p + setup, img.len - setup);
	/* 64 MiB is too little for it, and it says so. */
	guest_mem_destroy(&m);
	assert_int_equal(guest_mem_init(&m, 64 * MiB), 0);
	assert_int_equal(loader_load_kernel(&m, img.p, img.len,
					    LOADER_HOST_DECOMPRESS, &k, err,
					    ERRLEN), -EFBIG);
	assert_non_null(strstr(err, "guest RAM is 64 MiB"));
	guest_mem_destroy(&m);
	blob_free(&img);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_bzimage_host_each_format),
		T(test_host_load_end_from_segments),
		T(test_bzimage_classic),
		T(test_truncated),
		T(test_header_validation),
		T(test_payload_bounds),
		T(test_corrupt_payload_falls_back),
		T(test_too_large),
		T(test_not_a_kernel),
		T(test_elf_direct),
		T(test_elf_validation),
		T(test_initrd),
		cmocka_unit_test(test_initrd_split_ram),
		cmocka_unit_test(test_real_kernel),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
