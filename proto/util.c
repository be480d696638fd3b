/* SPDX-License-Identifier: MIT */
/* Shared helpers of proto/. */
#include <stdint.h>
#include <string.h>

#include "util.h"

/*
 * Length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is
 * invalid, or -1 when it is a valid prefix cut by the end of the string.
 */
static int
proto_utf8_len(const uint8_t *p, size_t n)
{
	uint32_t cp;
	int len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

void
proto_text_scrub(char *s)
{
	uint8_t *p = (uint8_t *)s;
	size_t n = strlen(s), i = 0;
	int len;

	while (i < n) {
		len = proto_utf8_len(p + i, n - i);
		if (len < 0) {
			p[i] = '\0';
			return;
		}
		if (len == 0 || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
			p[i] = '?';
			len = 1;
		}
		i += (size_t)len;
	}
}
