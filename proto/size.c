/* SPDX-License-Identifier: MIT */
/* Byte sizes with binary suffixes, parsed with overflow checks. */
#include <errno.h>
#include <stdio.h>

#include "size.h"

static const char size_suffixes[] = "KMGTPE";

static int
size_shift(char c, unsigned int *ret_shift)
{
	unsigned int i;

	if (c >= 'a' && c <= 'z')
		c = (char)(c - 'a' + 'A');
	for (i = 0; size_suffixes[i]; i++) {
		if (size_suffixes[i] == c) {
			*ret_shift = 10 * (i + 1);
			return 0;
		}
	}
	return -EINVAL;
}

int
size_parse(const char *s, uint64_t *ret_bytes)
{
	uint64_t v = 0;
	unsigned int shift = 0;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (*p) {
		if (size_shift(*p, &shift) < 0 || p[1] != '\0')
			return -EINVAL;
		if (v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
	}
	*ret_bytes = v;
	return 0;
}

int
size_format(uint64_t bytes, char *buf, size_t len)
{
	unsigned int i = 0;
	int n;

	if (bytes) {
		while (i < sizeof(size_suffixes) - 1 &&
		       (bytes & ((UINT64_C(1) << (10 * (i + 1))) - 1)) == 0)
			i++;
	}
	if (i == 0)
		n = snprintf(buf, len, "%llu", (unsigned long long)bytes);
	else
		n = snprintf(buf, len, "%llu%c",
			     (unsigned long long)(bytes >> (10 * i)),
			     size_suffixes[i - 1]);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}
