/* SPDX-License-Identifier: MIT */
#include "x86/decompress.h"

#define ZLIB_CONST
#include <bzlib.h>
#include <errno.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define LZ4_LEGACY_MAGIC	0x184c2102u

/*
 * zlib and bzip2 count in 32-bit unsigned ints; feeding and draining them
 * in slices of this size keeps every count in range on any input length.
 */
#define STREAM_SLICE		(1u << 30)

/*
 * What liblzma may allocate for a dictionary. xz -9 and lzma -9 use 64 MiB;
 * a header asking for more is hostile rather than useful.
 */
#define LZMA_MEMLIMIT		(256ull << 20)

static const char *const format_names[DECOMPRESS_FORMAT_MAX] = {
	[DECOMPRESS_GZIP] = "gzip",
	[DECOMPRESS_XZ] = "xz",
	[DECOMPRESS_LZMA] = "lzma",
	[DECOMPRESS_LZ4_LEGACY] = "lz4",
	[DECOMPRESS_LZ4_FRAME] = "lz4-frame",
	[DECOMPRESS_ZSTD] = "zstd",
	[DECOMPRESS_BZIP2] = "bzip2",
	[DECOMPRESS_LZO] = "lzo",
};

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static bool
has_prefix(const uint8_t *p, size_t len, const void *magic, size_t mlen)
{
	return len >= mlen && memcmp(p, magic, mlen) == 0;
}

int
decompress_detect(const void *buf, size_t len, const char **ret_name)
{
	static const uint8_t gzip[] = { 0x1f, 0x8b, 0x08 };
	static const uint8_t xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };
	static const uint8_t lz4l[] = { 0x02, 0x21, 0x4c, 0x18 };
	static const uint8_t lz4f[] = { 0x04, 0x22, 0x4d, 0x18 };
	static const uint8_t zstd[] = { 0x28, 0xb5, 0x2f, 0xfd };
	static const uint8_t lzo[] = { 0x89, 'L', 'Z', 'O', 0x00,
				       0x0d, 0x0a, 0x1a, 0x0a };
	const uint8_t *p = buf;
	int fmt;

	if (!p)
		return -EINVAL;
	if (has_prefix(p, len, gzip, sizeof(gzip)))
		fmt = DECOMPRESS_GZIP;
	else if (has_prefix(p, len, xz, sizeof(xz)))
		fmt = DECOMPRESS_XZ;
	else if (has_prefix(p, len, lz4l, sizeof(lz4l)))
		fmt = DECOMPRESS_LZ4_LEGACY;
	else if (has_prefix(p, len, lz4f, sizeof(lz4f)))
		fmt = DECOMPRESS_LZ4_FRAME;
	else if (has_prefix(p, len, zstd, sizeof(zstd)))
		fmt = DECOMPRESS_ZSTD;
	else if (has_prefix(p, len, lzo, sizeof(lzo)))
		fmt = DECOMPRESS_LZO;
	else if (len >= 4 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' &&
		 p[3] >= '1' && p[3] <= '9')
		fmt = DECOMPRESS_BZIP2;
	/*
	 * Legacy .lzma has no magic. Like Linux, take properties 0x5d (the
	 * only ones its tools write) and a dictionary of at least 64 KiB; the
	 * size field must be "unknown" or plausible, to turn away other data
	 * that happens to start with 0x5d 0x00.
	 */
	else if (len >= 13 && p[0] == 0x5d && p[1] == 0x00 &&
		 (le64(p + 5) == UINT64_MAX || le64(p + 5) < (1ull << 48)))
		fmt = DECOMPRESS_LZMA;
	else
		return -EINVAL;
	if (ret_name)
		*ret_name = format_names[fmt];
	return fmt;
}

/*
 * The output buffer. It may hold at most limit bytes (max_out + 1): a
 * decoder that fills it to the limit has produced more than max_out.
 */
struct outbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	size_t limit;
	size_t max_out;
};

static int
outbuf_resize(struct outbuf *o, size_t cap)
{
	uint8_t *np;

	np = realloc(o->p, cap ? cap : 1);
	if (!np)
		return -ENOMEM;
	o->p = np;
	o->cap = cap;
	return 0;
}

/* Make room for at least one more byte, within the limit. */
static int
outbuf_grow(struct outbuf *o)
{
	size_t cap;

	if (o->cap > o->len)
		return 0;
	if (o->cap >= o->limit)
		return -EFBIG;
	cap = o->cap > o->limit / 2 ? o->limit : o->cap * 2;
	if (cap < 64 * 1024)
		cap = o->limit < 64 * 1024 ? o->limit : 64 * 1024;
	return outbuf_resize(o, cap);
}

/*
 * Make room for n more bytes regardless of the limit (the caller checks
 * max_out afterwards): lz4 legacy blocks decode in one call, and
 * LZ4_decompress_safe cannot tell a short buffer from corrupt data.
 */
static int
outbuf_reserve(struct outbuf *o, size_t n)
{
	size_t cap;

	if (o->cap - o->len >= n)
		return 0;
	if (n > SIZE_MAX - o->len)
		return -ENOMEM;
	cap = o->len + n;
	if (o->cap <= o->limit / 2 && o->cap * 2 > cap)
		cap = o->cap * 2;
	return outbuf_resize(o, cap);
}

/*
 * Linux's payloads end in the uncompressed size (a gzip trailer's ISIZE
 * or the word its build appends). Trust it only as the first capacity
 * guess, never beyond the limit.
 */
static int
outbuf_init(struct outbuf *o, const uint8_t *in, size_t in_len,
	    size_t max_out)
{
	size_t guess = 0, ratio_cap;

	memset(o, 0, sizeof(*o));
	o->max_out = max_out;
	o->limit = max_out == SIZE_MAX ? SIZE_MAX : max_out + 1;
	/* No payload expands more than 64 times but a hostile one. */
	ratio_cap = in_len < SIZE_MAX / 128 ? 64 * in_len + 4096 : SIZE_MAX;
	if (in_len >= 8)
		guess = (size_t)le32(in + in_len - 4) + 4096;
	if (guess < in_len || guess > ratio_cap)
		guess = in_len < SIZE_MAX / 4 ? in_len * 4 : SIZE_MAX;
	if (guess < 64 * 1024)
		guess = 64 * 1024;
	if (guess > o->limit)
		guess = o->limit;
	return outbuf_resize(o, guess);
}

/*
 * After the stream: nothing, or Linux's 4-byte size word, which must then
 * match what we produced.
 */
static int
check_trailer(const uint8_t *rest, size_t n, size_t out_len)
{
	if (n == 0)
		return 0;
	if (n == 4 && le32(rest) == (uint32_t)out_len)
		return 0;
	return -EBADMSG;
}

static int
lz4_legacy_run(const uint8_t *in, size_t in_len, struct outbuf *o,
	       size_t *ret_used)
{
	const size_t max_chunk =
		(size_t)LZ4_compressBound(DECOMPRESS_LZ4_LEGACY_BLOCK);
	size_t pos = 4;
	uint32_t chunk;
	int n, r;

	while (pos < in_len) {
		if (in_len - pos < 4)
			return -EBADMSG;
		chunk = le32(in + pos);
		/* The size word Linux appends, not a block header. */
		if (in_len - pos == 4 && chunk == (uint32_t)o->len)
			break;
		pos += 4;
		/* lz4 -l repeats the magic between concatenated streams. */
		if (chunk == LZ4_LEGACY_MAGIC)
			continue;
		if (chunk == 0 || chunk > max_chunk || chunk > in_len - pos)
			return -EBADMSG;
		r = outbuf_reserve(o, DECOMPRESS_LZ4_LEGACY_BLOCK);
		if (r < 0)
			return r;
		n = LZ4_decompress_safe((const char *)in + pos,
					(char *)o->p + o->len, (int)chunk,
					(int)DECOMPRESS_LZ4_LEGACY_BLOCK);
		if (n < 0)
			return -EBADMSG;
		o->len += (size_t)n;
		if (o->len > o->max_out)
			return -EFBIG;
		pos += chunk;
	}
	*ret_used = pos;
	return 0;
}

/* One streaming decoder of any library, behind one step function. */
struct stream {
	int fmt;
	union {
		z_stream z;
		lzma_stream x;
		bz_stream b;
		ZSTD_DCtx *zd;
		LZ4F_dctx *lf;
	} u;
};

static int
stream_init(struct stream *s, int fmt)
{
	static const lzma_stream lzma_init = LZMA_STREAM_INIT;
	lzma_ret lr;
	int r;

	memset(s, 0, sizeof(*s));
	s->fmt = fmt;
	switch (fmt) {
	case DECOMPRESS_GZIP:
		/* 16 + window bits: gzip wrapper only, CRC and size checked. */
		r = inflateInit2(&s->u.z, 16 + MAX_WBITS);
		return r == Z_OK ? 0 : r == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
	case DECOMPRESS_XZ:
	case DECOMPRESS_LZMA:
		s->u.x = lzma_init;
		if (fmt == DECOMPRESS_XZ)
			lr = lzma_stream_decoder(&s->u.x, LZMA_MEMLIMIT, 0);
		else
			lr = lzma_alone_decoder(&s->u.x, LZMA_MEMLIMIT);
		return lr == LZMA_OK ? 0 : lr == LZMA_MEM_ERROR ? -ENOMEM :
		       -EINVAL;
	case DECOMPRESS_BZIP2:
		r = BZ2_bzDecompressInit(&s->u.b, 0, 0);
		return r == BZ_OK ? 0 : r == BZ_MEM_ERROR ? -ENOMEM : -EINVAL;
	case DECOMPRESS_ZSTD:
		s->u.zd = ZSTD_createDCtx();
		return s->u.zd ? 0 : -ENOMEM;
	case DECOMPRESS_LZ4_FRAME:
		if (LZ4F_isError(LZ4F_createDecompressionContext(&s->u.lf,
								 LZ4F_VERSION)))
			return -ENOMEM;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static void
stream_fini(struct stream *s)
{
	switch (s->fmt) {
	case DECOMPRESS_GZIP:
		inflateEnd(&s->u.z);
		break;
	case DECOMPRESS_XZ:
	case DECOMPRESS_LZMA:
		lzma_end(&s->u.x);
		break;
	case DECOMPRESS_BZIP2:
		BZ2_bzDecompressEnd(&s->u.b);
		break;
	case DECOMPRESS_ZSTD:
		ZSTD_freeDCtx(s->u.zd);
		break;
	case DECOMPRESS_LZ4_FRAME:
		LZ4F_freeDecompressionContext(s->u.lf);
		break;
	}
}

/*
 * Feed *in_n bytes and offer *out_n bytes of room; on return they hold
 * what was consumed and produced, and *done is set at the stream's end.
 * Both sizes are at most STREAM_SLICE.
 */
static int
stream_step(struct stream *s, const uint8_t *in, size_t *in_n,
	    uint8_t *out, size_t *out_n, bool *done)
{
	lzma_ret lr;
	size_t zr;
	int r;

	*done = false;
	switch (s->fmt) {
	case DECOMPRESS_GZIP:
		s->u.z.next_in = in;
		s->u.z.avail_in = (uInt)*in_n;
		s->u.z.next_out = out;
		s->u.z.avail_out = (uInt)*out_n;
		r = inflate(&s->u.z, Z_NO_FLUSH);
		*in_n -= s->u.z.avail_in;
		*out_n -= s->u.z.avail_out;
		if (r == Z_STREAM_END)
			*done = true;
		else if (r == Z_MEM_ERROR)
			return -ENOMEM;
		else if (r != Z_OK && r != Z_BUF_ERROR)
			return -EBADMSG;
		return 0;
	case DECOMPRESS_XZ:
	case DECOMPRESS_LZMA:
		s->u.x.next_in = in;
		s->u.x.avail_in = *in_n;
		s->u.x.next_out = out;
		s->u.x.avail_out = *out_n;
		lr = lzma_code(&s->u.x, LZMA_RUN);
		*in_n -= s->u.x.avail_in;
		*out_n -= s->u.x.avail_out;
		if (lr == LZMA_STREAM_END)
			*done = true;
		else if (lr == LZMA_MEM_ERROR || lr == LZMA_MEMLIMIT_ERROR)
			return -ENOMEM;
		else if (lr != LZMA_OK && lr != LZMA_BUF_ERROR)
			return -EBADMSG;
		return 0;
	case DECOMPRESS_BZIP2:
		/* bzlib predates const; it does not write through next_in. */
		s->u.b.next_in = (char *)(uintptr_t)in;
		s->u.b.avail_in = (unsigned int)*in_n;
		s->u.b.next_out = (char *)out;
		s->u.b.avail_out = (unsigned int)*out_n;
		r = BZ2_bzDecompress(&s->u.b);
		*in_n -= s->u.b.avail_in;
		*out_n -= s->u.b.avail_out;
		if (r == BZ_STREAM_END)
			*done = true;
		else if (r == BZ_MEM_ERROR)
			return -ENOMEM;
		else if (r != BZ_OK)
			return -EBADMSG;
		return 0;
	case DECOMPRESS_ZSTD: {
		ZSTD_inBuffer zi = { in, *in_n, 0 };
		ZSTD_outBuffer zo = { out, *out_n, 0 };

		zr = ZSTD_decompressStream(s->u.zd, &zo, &zi);
		*in_n = zi.pos;
		*out_n = zo.pos;
		if (ZSTD_isError(zr))
			return ZSTD_getErrorCode(zr) ==
			       ZSTD_error_memory_allocation ? -ENOMEM :
			       -EBADMSG;
		/* 0: a whole frame is decoded and flushed. */
		*done = zr == 0;
		return 0;
	}
	case DECOMPRESS_LZ4_FRAME:
		zr = LZ4F_decompress(s->u.lf, out, out_n, in, in_n, NULL);
		if (LZ4F_isError(zr))
			return -EBADMSG;
		*done = zr == 0;
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

static int
stream_run(int fmt, const uint8_t *in, size_t in_len, struct outbuf *o,
	   size_t *ret_used)
{
	struct stream s;
	size_t pos = 0, in_n, out_n;
	bool done = false;
	int r;

	r = stream_init(&s, fmt);
	if (r < 0)
		return r;
	while (!done) {
		r = outbuf_grow(o);
		if (r < 0)
			goto out;
		in_n = in_len - pos < STREAM_SLICE ? in_len - pos : STREAM_SLICE;
		out_n = o->cap - o->len < STREAM_SLICE ? o->cap - o->len :
			STREAM_SLICE;
		r = stream_step(&s, in + pos, &in_n, o->p + o->len, &out_n,
				&done);
		if (r < 0)
			goto out;
		pos += in_n;
		o->len += out_n;
		if (o->len > o->max_out) {
			r = -EFBIG;
			goto out;
		}
		/*
		 * No progress with room to write: the decoder needs input we
		 * do not have (truncated), or is stuck on bad data.
		 */
		if (!done && in_n == 0 && out_n == 0 && o->cap > o->len) {
			r = -EBADMSG;
			goto out;
		}
	}
	*ret_used = pos;
	r = 0;
out:
	stream_fini(&s);
	return r;
}

int
decompress_buf(const void *in, size_t in_len, size_t max_out,
	       void **ret_out, size_t *ret_len)
{
	const uint8_t *p = in;
	struct outbuf o;
	size_t used = 0;
	int fmt, r;

	if (!ret_out || !ret_len)
		return -EINVAL;
	fmt = decompress_detect(in, in_len, NULL);
	if (fmt < 0)
		return fmt;
	if (fmt == DECOMPRESS_LZO)
		return -EOPNOTSUPP;
	r = outbuf_init(&o, p, in_len, max_out);
	if (r < 0)
		return r;
	if (fmt == DECOMPRESS_LZ4_LEGACY)
		r = lz4_legacy_run(p, in_len, &o, &used);
	else
		r = stream_run(fmt, p, in_len, &o, &used);
	if (r == 0)
		r = check_trailer(p + used, in_len - used, o.len);
	if (r < 0) {
		free(o.p);
		return r;
	}
	/* Give back what the capacity guess overshot; failure is harmless. */
	if (o.cap > o.len + 4096)
		(void)outbuf_resize(&o, o.len);
	*ret_out = o.p;
	*ret_len = o.len;
	return 0;
}
