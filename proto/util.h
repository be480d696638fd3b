/* SPDX-License-Identifier: MIT */
/* Helpers shared by the files of proto/; not for other modules. */
#ifndef PROTO_UTIL_H
#define PROTO_UTIL_H

#include <stddef.h>

/*
 * Make s (NUL-terminated, written by snprintf from text a peer chose) fit
 * for a JSON string and a one-line log: bytes that are not valid UTF-8 or
 * are control characters become '?', and a multi-byte sequence cut short
 * at the end (by truncation) is dropped.
 */
void proto_text_scrub(char *s);

#endif
