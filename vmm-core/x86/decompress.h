/* SPDX-License-Identifier: MIT */
/*
 * In-memory decompression of the formats a Linux bzImage payload may use
 * (gzip, xz, legacy lzma, lz4, zstd, bzip2), with a hard limit on the
 * output so that hostile input cannot make us allocate without bound.
 */
#ifndef VMM_X86_DECOMPRESS_H
#define VMM_X86_DECOMPRESS_H

#include <stddef.h>

enum decompress_format {
	DECOMPRESS_GZIP = 1,
	DECOMPRESS_XZ,
	DECOMPRESS_LZMA,	/* legacy .lzma (lzma_alone) */
	DECOMPRESS_LZ4_LEGACY,	/* what Linux calls "lz4" (lz4 -l) */
	DECOMPRESS_LZ4_FRAME,
	DECOMPRESS_ZSTD,
	DECOMPRESS_BZIP2,
	DECOMPRESS_LZO,		/* recognised, not supported */
	DECOMPRESS_FORMAT_MAX,
};

/* Largest block of the lz4 legacy format, uncompressed. */
#define DECOMPRESS_LZ4_LEGACY_BLOCK (8u << 20)

/*
 * Identify the format of buf by its magic number. Returns an
 * enum decompress_format (> 0) and sets *ret_name (a static string such as
 * "lz4", may be NULL to skip), or -EINVAL when no known magic matches.
 */
int decompress_detect(const void *buf, size_t len, const char **ret_name);

/*
 * Decompress one stream of a format decompress_detect() recognises into a
 * new buffer of *ret_len bytes (*ret_out, release with free()). One trailing
 * 4-byte little-endian word equal to the output size is accepted after the
 * stream, as Linux appends to its kernel payloads; anything else after the
 * stream is corruption.
 * Returns 0, or -EINVAL (not a known format), -EOPNOTSUPP (known, no
 * decoder), -EBADMSG (corrupt or truncated), -EFBIG (output would exceed
 * max_out), -ENOMEM. Outputs are written only on success.
 */
int decompress_buf(const void *in, size_t in_len, size_t max_out,
		   void **ret_out, size_t *ret_len);

#endif
