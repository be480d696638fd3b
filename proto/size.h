/* SPDX-License-Identifier: MIT */
/*
 * Byte sizes as people write them: "512M", "4G", "64k", "1T", or a plain
 * count of bytes. Suffixes are binary (K = 1024) and case-insensitive:
 * K, M, G, T, P, E. Nothing else is accepted: no sign, no spaces, no
 * fractions, no "B" or "iB".
 */
#ifndef PROTO_SIZE_H
#define PROTO_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Longest string size_format() writes, with its NUL ("18446744073709551615"). */
#define SIZE_STR_MAX 21

/*
 * Parse s into bytes. Returns 0, -EINVAL when s is not a size, or -ERANGE
 * when it does not fit in 64 bits.
 */
int size_parse(const char *s, uint64_t *ret_bytes);

/*
 * Write bytes with the largest suffix that divides it exactly ("512M",
 * "1536K", "1000", "0"), so size_parse() gives back the same number.
 * Returns 0 or -ENOSPC when buf (len bytes) is too small.
 */
int size_format(uint64_t bytes, char *buf, size_t len);

#endif
