/* SPDX-License-Identifier: MIT */
/*
 * Decompression of bzImage payload formats. Every fixture is compressed
 * here, at test time, with the same libraries the decoder uses; lz4 legacy
 * frames (which liblz4 cannot write) are assembled by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ZLIB_CONST
#include <bzlib.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "x86/decompress.h"

struct blob {
	uint8_t *p;
	size_t len;
};

static uint64_t rng_state;

static uint32_t
rng(void)
{
	/* xorshift64: deterministic, so a failure reproduces. */
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Compressible but not trivial: words from a small vocabulary, some noise. */
static struct blob
make_data(size_t len, uint64_t seed)
{
	static const char *const words[] = {
		"kernel ", "virtio ", "queue ", "descriptor ", "e820 ",
		"\x00\x01\x02\x03", "boot_params ", "\xff\xfe", "0x1000000 ",
	};
	struct blob b = { malloc(len ? len : 1), len };
	size_t i = 0;

	assert_non_null(b.p);
	rng_state = seed * 2654435761u + 1;
	while (i < len) {
		uint32_t r = rng();
		const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
		size_t wl = strlen(w) ? strlen(w) : 1;

		if (r % 7 == 0) {
			b.p[i++] = (uint8_t)(r >> 8);
			continue;
		}
		for (size_t k = 0; k < wl && i < len; k++)
			b.p[i++] = (uint8_t)w[k];
	}
	return b;
}

static void
put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Append Linux's size word (size_append in scripts/Makefile.lib). */
static void
append_size(struct blob *c, size_t orig_len)
{
	c->p = realloc(c->p, c->len + 4);
	assert_non_null(c->p);
	put_le32(c->p + c->len, (uint32_t)orig_len);
	c->len += 4;
}

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

/* Like the kernel's xz_wrap.sh: CRC32 check, x86 BCJ, then LZMA2. */
static struct blob
comp_xz(const struct blob *in)
{
	lzma_options_lzma opt;
	lzma_filter filters[3];
	struct blob c;
	size_t pos = 0;

	assert_false(lzma_lzma_preset(&opt, 6));
	opt.dict_size = 1u << 20;
	filters[0] = (lzma_filter){ LZMA_FILTER_X86, NULL };
	filters[1] = (lzma_filter){ LZMA_FILTER_LZMA2, &opt };
	filters[2] = (lzma_filter){ LZMA_VLI_UNKNOWN, NULL };
	c.len = lzma_stream_buffer_bound(in->len);
	c.p = malloc(c.len);
	assert_non_null(c.p);
	assert_int_equal(lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32,
						   NULL, in->p, in->len, c.p,
						   &pos, c.len), LZMA_OK);
	c.len = pos;
	return c;
}

/* Legacy .lzma, end marker and unknown size, as `lzma -9` from a pipe. */
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

/* lz4 -l: magic, then (le32 compressed size, block) per 8 MiB of input. */
static struct blob
comp_lz4_legacy(const struct blob *in)
{
	size_t pos = 0, blocks = in->len / DECOMPRESS_LZ4_LEGACY_BLOCK + 1;
	struct blob c;

	c.p = malloc(4 + blocks * (4 + (size_t)LZ4_compressBound(
				DECOMPRESS_LZ4_LEGACY_BLOCK)));
	assert_non_null(c.p);
	put_le32(c.p, 0x184c2102);
	c.len = 4;
	while (pos < in->len) {
		size_t n = in->len - pos;
		int r;

		if (n > DECOMPRESS_LZ4_LEGACY_BLOCK)
			n = DECOMPRESS_LZ4_LEGACY_BLOCK;
		r = LZ4_compress_default((const char *)in->p + pos,
					 (char *)c.p + c.len + 4, (int)n,
					 LZ4_compressBound((int)n));
		assert_true(r > 0);
		put_le32(c.p + c.len, (uint32_t)r);
		c.len += 4 + (size_t)r;
		pos += n;
	}
	return c;
}

static struct blob
comp_lz4_frame(const struct blob *in)
{
	struct blob c;
	size_t r;

	c.len = LZ4F_compressFrameBound(in->len, NULL);
	c.p = malloc(c.len);
	assert_non_null(c.p);
	r = LZ4F_compressFrame(c.p, c.len, in->p, in->len, NULL);
	assert_false(LZ4F_isError(r));
	c.len = r;
	return c;
}

/* Like the zstd CLI reading a pipe: no content size, with a checksum. */
static struct blob
comp_zstd(const struct blob *in)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	struct blob c;
	size_t r;

	assert_non_null(cc);
	/* Level 19 as the kernel uses, but not on megabytes (too slow). */
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc,
		ZSTD_c_compressionLevel, in->len > (1u << 20) ? 3 : 19)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc,
		ZSTD_c_contentSizeFlag, 0)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc,
		ZSTD_c_checksumFlag, 1)));
	c.len = ZSTD_compressBound(in->len);
	c.p = malloc(c.len);
	assert_non_null(c.p);
	r = ZSTD_compress2(cc, c.p, c.len, in->p, in->len);
	assert_false(ZSTD_isError(r));
	c.len = r;
	ZSTD_freeCCtx(cc);
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
	int id;
	struct blob (*compress)(const struct blob *);
	/* The format detects any change of its data by a checksum. */
	int checksummed;
};

static const struct format formats[] = {
	{ "gzip", DECOMPRESS_GZIP, comp_gzip, 1 },
	{ "xz", DECOMPRESS_XZ, comp_xz, 1 },
	{ "lzma", DECOMPRESS_LZMA, comp_lzma, 0 },
	{ "lz4", DECOMPRESS_LZ4_LEGACY, comp_lz4_legacy, 0 },
	{ "lz4-frame", DECOMPRESS_LZ4_FRAME, comp_lz4_frame, 0 },
	{ "zstd", DECOMPRESS_ZSTD, comp_zstd, 1 },
	{ "bzip2", DECOMPRESS_BZIP2, comp_bzip2, 1 },
};
#define NR_FORMATS (sizeof(formats) / sizeof(formats[0]))

static void
expect_roundtrip(const struct format *f, const struct blob *c,
		 const struct blob *orig, size_t max_out)
{
	void *out = NULL;
	size_t len = 12345;
	int r;

	r = decompress_buf(c->p, c->len, max_out, &out, &len);
	if (r != 0)
		fail_msg("%s: decompress_buf(%zu bytes) = %d, expected 0",
			 f->name, c->len, r);
	assert_non_null(out);
	assert_int_equal(len, orig->len);
	assert_memory_equal(out, orig->p, orig->len);
	free(out);
}

static void
test_detect(void **state)
{
	static const uint8_t junk[] = "hello, world, not compressed";
	static const uint8_t lzo[] = { 0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a,
				       0x1a, 0x0a, 0, 0, 0 };
	struct blob d = make_data(1000, 1);
	const char *name;

	(void)state;
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c = formats[i].compress(&d);

		name = NULL;
		assert_int_equal(decompress_detect(c.p, c.len, &name),
				 formats[i].id);
		assert_string_equal(name, formats[i].name);
		/* No name wanted is fine. */
		assert_int_equal(decompress_detect(c.p, c.len, NULL),
				 formats[i].id);
		/* Too short for the magic: not detected. */
		assert_int_equal(decompress_detect(c.p, 2, &name), -EINVAL);
		free(c.p);
	}
	name = "untouched";
	assert_int_equal(decompress_detect(junk, sizeof(junk), &name), -EINVAL);
	assert_string_equal(name, "untouched");
	assert_int_equal(decompress_detect(junk, 0, &name), -EINVAL);
	assert_int_equal(decompress_detect(NULL, 10, &name), -EINVAL);
	assert_int_equal(decompress_detect(lzo, sizeof(lzo), &name),
			 DECOMPRESS_LZO);
	assert_string_equal(name, "lzo");
	/* "BZh" needs a block size digit 1-9. */
	assert_int_equal(decompress_detect("BZh0xxxx", 8, NULL), -EINVAL);
	assert_int_equal(decompress_detect("BZh9xxxx", 8, NULL),
			 DECOMPRESS_BZIP2);
	free(d.p);
}

static void
test_roundtrip(void **state)
{
	static const size_t sizes[] = { 0, 1, 4096, 300 * 1024 };

	(void)state;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct blob d = make_data(sizes[s], s + 2);

		for (size_t i = 0; i < NR_FORMATS; i++) {
			struct blob c = formats[i].compress(&d);

			expect_roundtrip(&formats[i], &c, &d, SIZE_MAX);
			/* Exactly enough room is enough. */
			expect_roundtrip(&formats[i], &c, &d, d.len);
			/* As in a bzImage: the size word after the stream. */
			append_size(&c, d.len);
			expect_roundtrip(&formats[i], &c, &d, d.len);
			free(c.p);
		}
		free(d.p);
	}
}

/* Several 8 MiB lz4 legacy blocks, as a real kernel payload has. */
static void
test_large_multiblock(void **state)
{
	struct blob d = make_data(2 * DECOMPRESS_LZ4_LEGACY_BLOCK + 12345, 7);
	const struct format *lz4 = &formats[3], *zstd = &formats[5];
	struct blob c;
	void *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(lz4->id, DECOMPRESS_LZ4_LEGACY);
	c = lz4->compress(&d);
	append_size(&c, d.len);
	expect_roundtrip(lz4, &c, &d, d.len);
	/* One byte short, and a whole block short. */
	assert_int_equal(decompress_buf(c.p, c.len, d.len - 1, &out, &len),
			 -EFBIG);
	assert_int_equal(decompress_buf(c.p, c.len, DECOMPRESS_LZ4_LEGACY_BLOCK,
					&out, &len), -EFBIG);
	assert_null(out);
	/*
	 * The magic again between blocks is legal (concatenated lz4 -l
	 * output); the size word then counts all of it.
	 */
	{
		struct blob c2 = lz4->compress(&d);
		struct blob cat;

		cat.len = c2.len * 2;
		cat.p = malloc(cat.len + 4);
		assert_non_null(cat.p);
		memcpy(cat.p, c2.p, c2.len);
		memcpy(cat.p + c2.len, c2.p, c2.len);
		put_le32(cat.p + cat.len, (uint32_t)(2 * d.len));
		cat.len += 4;
		assert_int_equal(decompress_buf(cat.p, cat.len, SIZE_MAX, &out,
						&len), 0);
		assert_int_equal(len, 2 * d.len);
		assert_memory_equal(out, d.p, d.len);
		assert_memory_equal((uint8_t *)out + d.len, d.p, d.len);
		free(out);
		out = NULL;
		free(cat.p);
		free(c2.p);
	}
	free(c.p);

	c = zstd->compress(&d);
	expect_roundtrip(zstd, &c, &d, d.len);
	assert_int_equal(decompress_buf(c.p, c.len, d.len - 1, &out, &len),
			 -EFBIG);
	free(c.p);
	free(d.p);
}

static void
test_max_out(void **state)
{
	struct blob d = make_data(50000, 3);

	(void)state;
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c = formats[i].compress(&d);
		void *out = NULL;
		size_t len = 77;
		int r;

		r = decompress_buf(c.p, c.len, d.len - 1, &out, &len);
		if (r != -EFBIG)
			fail_msg("%s: max_out one short: got %d, expected %d",
				 formats[i].name, r, -EFBIG);
		r = decompress_buf(c.p, c.len, 0, &out, &len);
		if (r != -EFBIG)
			fail_msg("%s: max_out 0: got %d, expected %d",
				 formats[i].name, r, -EFBIG);
		/* Outputs untouched on failure. */
		assert_null(out);
		assert_int_equal(len, 77);
		free(c.p);
	}
	free(d.p);
}

/* A 64 MiB bomb stops at max_out without allocating 64 MiB. */
static void
test_bomb(void **state)
{
	struct blob d = { calloc(1, 64u << 20), 64u << 20 };
	void *out = NULL;
	size_t len = 0;

	(void)state;
	assert_non_null(d.p);
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c;

		/* bzip2 and lzma are slow on this much; the others suffice. */
		if (formats[i].id == DECOMPRESS_BZIP2 ||
		    formats[i].id == DECOMPRESS_LZMA ||
		    formats[i].id == DECOMPRESS_XZ)
			continue;
		c = formats[i].compress(&d);
		assert_true(c.len < d.len / 100);
		/* A size word claiming 4 GiB - 1 must not be believed. */
		append_size(&c, 0xffffffffu);
		assert_int_equal(decompress_buf(c.p, c.len, 1u << 20, &out,
						&len), -EFBIG);
		free(c.p);
	}
	free(d.p);
}

static void
test_truncated(void **state)
{
	struct blob d = make_data(6000, 4);

	(void)state;
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c = formats[i].compress(&d);

		for (size_t n = 0; n < c.len; n++) {
			void *out = NULL;
			size_t len = 0;
			int r;

			/* The bare lz4 legacy magic is a valid empty stream. */
			if (formats[i].id == DECOMPRESS_LZ4_LEGACY && n == 4)
				continue;
			r = decompress_buf(c.p, n, SIZE_MAX, &out, &len);
			if (r != -EBADMSG && r != -EINVAL)
				fail_msg("%s: truncated to %zu of %zu bytes: "
					 "got %d, expected -EBADMSG or -EINVAL",
					 formats[i].name, n, c.len, r);
			assert_null(out);
		}
		free(c.p);
	}
	free(d.p);
}

static void
test_trailing_garbage(void **state)
{
	struct blob d = make_data(3000, 5);

	(void)state;
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c = formats[i].compress(&d);
		void *out = NULL;
		size_t len = 0;
		int r;

		/* A size word that does not match the output. */
		append_size(&c, d.len + 1);
		r = decompress_buf(c.p, c.len, SIZE_MAX, &out, &len);
		if (r != -EBADMSG)
			fail_msg("%s: wrong size word: got %d", formats[i].name,
				 r);
		/* The right size word, then one byte more. */
		put_le32(c.p + c.len - 4, (uint32_t)d.len);
		c.p = realloc(c.p, c.len + 1);
		assert_non_null(c.p);
		c.p[c.len++] = 0;
		r = decompress_buf(c.p, c.len, SIZE_MAX, &out, &len);
		if (r != -EBADMSG)
			fail_msg("%s: extra byte: got %d", formats[i].name, r);
		free(c.p);
	}
	free(d.p);
}

static void
test_corrupt(void **state)
{
	struct blob d = make_data(20000, 6);

	(void)state;
	for (size_t i = 0; i < NR_FORMATS; i++) {
		struct blob c = formats[i].compress(&d);

		rng_state = 99 + i;
		for (int iter = 0; iter < 400; iter++) {
			struct blob bad = { malloc(c.len), c.len };
			void *out = NULL;
			size_t len = 0, pos;
			int r;

			assert_non_null(bad.p);
			memcpy(bad.p, c.p, c.len);
			/*
			 * Flip a byte past the magic (so the format is still
			 * recognised); a few runs flip several.
			 */
			for (int k = 0; k < 1 + iter % 3; k++) {
				pos = 8 + rng() % (c.len - 8);
				bad.p[pos] ^= (uint8_t)(1 + rng() % 255);
			}
			r = decompress_buf(bad.p, bad.len, 1u << 20, &out,
					   &len);
			if (r == 0) {
				/*
				 * Only formats without a checksum may hand
				 * back different data, and never too much.
				 */
				assert_true(len <= 1u << 20);
				if (formats[i].checksummed &&
				    (len != d.len ||
				     memcmp(out, d.p, d.len) != 0))
					fail_msg("%s: corruption at iteration "
						 "%d not detected",
						 formats[i].name, iter);
				free(out);
			} else if (r != -EBADMSG && r != -EFBIG &&
				   r != -EINVAL && r != -ENOMEM) {
				fail_msg("%s: corrupt input gave %d",
					 formats[i].name, r);
			}
			free(bad.p);
		}
		free(c.p);
	}
	free(d.p);
}

/* Hand-made hostile lz4 legacy streams. */
static void
test_lz4_legacy_hostile(void **state)
{
	uint8_t buf[64] = { 0x02, 0x21, 0x4c, 0x18 };
	void *out = NULL;
	size_t len = 0;

	(void)state;
	/* Block size larger than the rest of the input. */
	put_le32(buf + 4, 1000);
	assert_int_equal(decompress_buf(buf, 16, SIZE_MAX, &out, &len),
			 -EBADMSG);
	/* Block size zero. */
	put_le32(buf + 4, 0);
	assert_int_equal(decompress_buf(buf, 16, SIZE_MAX, &out, &len),
			 -EBADMSG);
	/* Block size beyond what an 8 MiB block can compress to. */
	put_le32(buf + 4, 0x7fffffff);
	assert_int_equal(decompress_buf(buf, 12, SIZE_MAX, &out, &len),
			 -EBADMSG);
	/* A block header cut short. */
	assert_int_equal(decompress_buf(buf, 6, SIZE_MAX, &out, &len),
			 -EBADMSG);
	/*
	 * A block whose match reaches back before the start of the output:
	 * token 0x0f (no literals, long match), offset 0x1000.
	 */
	put_le32(buf + 4, 8);
	memcpy(buf + 8, "\x1f\x41\x00\x10\x00\x00\x00\x00", 8);
	assert_int_equal(decompress_buf(buf, 16, SIZE_MAX, &out, &len),
			 -EBADMSG);
	/* The magic alone, and the magic plus a zero size word: empty. */
	assert_int_equal(decompress_buf(buf, 4, SIZE_MAX, &out, &len), 0);
	assert_int_equal(len, 0);
	free(out);
	put_le32(buf + 4, 0);
	assert_int_equal(decompress_buf(buf, 8, SIZE_MAX, &out, &len), 0);
	assert_int_equal(len, 0);
	free(out);
	assert_null(NULL);
}

/* A .lzma header asking for a 1 GiB dictionary is refused, not obeyed. */
static void
test_lzma_memlimit(void **state)
{
	uint8_t buf[32] = { 0x5d, 0x00, 0x00, 0x00, 0x40 };
	void *out = NULL;
	size_t len = 0;

	(void)state;
	memset(buf + 5, 0xff, 8);
	assert_int_equal(decompress_detect(buf, sizeof(buf), NULL),
			 DECOMPRESS_LZMA);
	assert_int_equal(decompress_buf(buf, sizeof(buf), SIZE_MAX, &out,
					&len), -ENOMEM);
	assert_null(out);
}

static void
test_unsupported(void **state)
{
	static const uint8_t lzo[] = { 0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a,
				       0x1a, 0x0a, 0, 0, 0 };
	static const char text[] = "just some text";
	void *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(decompress_buf(lzo, sizeof(lzo), SIZE_MAX, &out, &len),
			 -EOPNOTSUPP);
	assert_int_equal(decompress_buf(text, sizeof(text), SIZE_MAX, &out,
					&len), -EINVAL);
	assert_int_equal(decompress_buf(NULL, 0, SIZE_MAX, &out, &len),
			 -EINVAL);
	assert_int_equal(decompress_buf(text, sizeof(text), SIZE_MAX, NULL,
					&len), -EINVAL);
	assert_null(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_large_multiblock),
		cmocka_unit_test(test_max_out),
		cmocka_unit_test(test_bomb),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_lz4_legacy_hostile),
		cmocka_unit_test(test_lzma_memlimit),
		cmocka_unit_test(test_unsupported),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
