/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for what a peer's bytes meet first: the frame decoders
 * and the JSON-RPC parser. The three decoders (plain buffer, stream fed in
 * chunks, libevent evbuffer) must agree frame for frame and on the error
 * that stops the stream; every frame goes through jsonrpc_parse(), and
 * whatever the parser accepts or rejects must turn into a response that
 * frames and parses again.
 *
 * Input: byte 0 picks the maximum frame size and the chunking; if its low
 * bit is set the rest is one payload to frame (so JSON seeds work), else
 * the rest is the raw stream.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/jsonrpc.h"

#define FZ_MAX_FRAMES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_frames {
	size_t n;
	size_t len[FZ_MAX_FRAMES];
	const uint8_t *ref[FZ_MAX_FRAMES];	/* into the stream */
	int end;				/* 0: ran out, or the error */
};

static uint32_t
fz_next(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

/* Build a response to msg as a server would, frame it, decode it back. */
static void
fz_answer(json_t *resp, size_t max)
{
	struct jsonrpc_msg back;
	const uint8_t *p;
	uint8_t *wire;
	size_t wlen, plen, used;

	if (!resp)
		return;
	if (frame_encode_json(resp, max, &wire, &wlen) == 0) {
		if (frame_decode(wire, wlen, max, &p, &plen, &used) != 1 ||
		    used != wlen)
			abort();
		if (jsonrpc_parse(p, plen, &back, NULL) != 0)
			abort();
		if (back.kind != JSONRPC_RESULT && back.kind != JSONRPC_ERROR)
			abort();
		jsonrpc_msg_clear(&back);
		free(wire);
	}
	json_decref(resp);
}

static void
fz_rpc(const uint8_t *p, size_t len, size_t max)
{
	struct jsonrpc_msg m;
	struct jsonrpc_perr perr = { 0 };
	int r;

	r = jsonrpc_parse(p, len, &m, &perr);
	if (r < 0) {
		if (r != -EBADMSG && r != -EPROTO && r != -ENOMEM)
			abort();
		if (r != -ENOMEM) {
			if (perr.code != (r == -EBADMSG ? PROTO_ERR_PARSE :
					  PROTO_ERR_INVALID_REQUEST))
				abort();
			fz_answer(jsonrpc_error_from_perr(&perr), max);
		}
		jsonrpc_perr_clear(&perr);
		return;
	}
	switch (m.kind) {
	case JSONRPC_REQUEST:
		if (!m.id || !m.method || !*m.method)
			abort();
		fz_answer(jsonrpc_result_new(m.id, json_pack("{s:s}", "method",
							      m.method)), max);
		fz_answer(jsonrpc_error_from_errno(m.id, -ENOENT, m.method),
			  max);
		break;
	case JSONRPC_NOTIFICATION:
		if (m.id || !m.method)
			abort();
		break;
	case JSONRPC_RESULT:
		if (!m.id || !m.result)
			abort();
		break;
	case JSONRPC_ERROR:
		if (!m.id || !m.error_message)
			abort();
		break;
	default:
		abort();
	}
	jsonrpc_msg_clear(&m);
}

static void
fz_plain(const uint8_t *s, size_t n, size_t max, struct fz_frames *f)
{
	const uint8_t *p;
	size_t plen, used, off = 0;
	int r;

	f->n = 0;
	for (;;) {
		r = frame_decode(s + off, n - off, max, &p, &plen, &used);
		if (r <= 0 || f->n == FZ_MAX_FRAMES) {
			f->end = r;
			return;
		}
		if (used != plen + PROTO_FRAME_HDR || used > n - off ||
		    plen == 0 || plen > frame_max(max))
			abort();
		f->ref[f->n] = p;
		f->len[f->n++] = plen;
		off += used;
	}
}

static void
fz_check(const struct fz_frames *f, size_t i, const char *p, size_t len)
{
	if (i >= f->n || f->len[i] != len || memcmp(f->ref[i], p, len) != 0 ||
	    p[len] != '\0')
		abort();
}

static void
fz_stream(const uint8_t *s, size_t n, size_t max, uint32_t seed,
	  const struct fz_frames *f)
{
	struct frame_decoder d;
	size_t off = 0, chunk, used, len, got = 0;
	char *p;
	int r = 0;

	frame_decoder_init(&d, max);
	while (off < n && got < FZ_MAX_FRAMES) {
		chunk = 1 + fz_next(&seed) % 37;
		if (chunk > n - off)
			chunk = n - off;
		r = frame_decoder_feed(&d, s + off, chunk, &used, &p, &len);
		if (used > chunk)
			abort();
		off += used;
		if (r < 0)
			break;
		if (r == 1) {
			fz_check(f, got++, p, len);
			free(p);
		} else if (used != chunk) {
			abort();
		}
		r = 0;
	}
	if (got != f->n || (got < FZ_MAX_FRAMES && r != f->end))
		abort();
	frame_decoder_reset(&d);
}

static void
fz_evbuffer(const uint8_t *s, size_t n, size_t max, uint32_t seed,
	    const struct fz_frames *f)
{
	struct evbuffer *in = evbuffer_new();
	size_t off = 0, chunk, len, got = 0, before;
	char *p;
	int r = 0;

	if (!in)
		return;
	while (off < n && got < FZ_MAX_FRAMES && r >= 0) {
		chunk = 1 + fz_next(&seed) % 53;
		if (chunk > n - off)
			chunk = n - off;
		if (evbuffer_add(in, s + off, chunk) < 0)
			break;
		off += chunk;
		while (got < FZ_MAX_FRAMES) {
			before = evbuffer_get_length(in);
			r = frame_evbuffer_take(in, max, &p, &len);
			if (r <= 0) {
				/* Nothing is drained unless a frame is taken. */
				if (evbuffer_get_length(in) != before)
					abort();
				break;
			}
			fz_check(f, got++, p, len);
			free(p);
		}
	}
	if (got != f->n || (got < FZ_MAX_FRAMES && r != f->end))
		abort();
	evbuffer_free(in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fz_frames frames;
	uint8_t *owned = NULL;
	const uint8_t *s;
	size_t n, max, i;
	uint32_t seed;

	if (size < 1)
		return 0;
	max = data[0] & 0x80 ? 0 : 1 + (size_t)(data[0] & 0x7e) * 8;
	seed = data[0];
	if (data[0] & 1) {
		/* One payload: frame it ourselves (an empty one stays empty). */
		if (size > 1 && frame_encode(data + 1, size - 1, SIZE_MAX,
					     &owned, &n) == 0)
			s = owned;
		else
			return 0;
	} else {
		s = data + 1;
		n = size - 1;
	}
	fz_plain(s, n, max, &frames);
	fz_stream(s, n, max, seed, &frames);
	fz_evbuffer(s, n, max, seed, &frames);
	for (i = 0; i < frames.n; i++)
		fz_rpc(frames.ref[i], frames.len[i], max);
	/* The parser on the raw bytes too, framing or not. */
	fz_rpc(data + 1, size - 1, max);
	free(owned);
	return 0;
}
