/* SPDX-License-Identifier: MIT */
/*
 * Framing: every message is a 4-byte big-endian length followed by that
 * many bytes of JSON. The length is checked against a maximum (1 MiB unless
 * the caller says otherwise) before anything is allocated or drained, and a
 * zero length is an error, so a peer cannot make us allocate more than the
 * maximum nor spin on empty frames.
 *
 * Three decoders share those rules: one for a libevent evbuffer, one for a
 * contiguous byte buffer (stateless), and one fed arbitrary chunks of a
 * stream (stateful). Blocking helpers read and write whole frames on a file
 * descriptor for simple clients.
 *
 * Decoders return 1 when they produced a frame, 0 when they need more bytes
 * (or, for frame_read_fd, at a clean end of stream), or a negative errno:
 * -EMSGSIZE when the header announces more than the maximum, -EBADMSG for
 * a zero length. Those two are fatal for the stream: the caller should
 * answer with an error if it wants to and close the connection.
 */
#ifndef PROTO_FRAME_H
#define PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct evbuffer;

#define PROTO_FRAME_HDR		4
#define PROTO_FRAME_MAX_DEFAULT	(1024u * 1024u)

/* The JSON flags every decoder in proto/ parses with. */
#define PROTO_JSON_DECODE_FLAGS	JSON_REJECT_DUPLICATES

/*
 * The effective maximum for a caller's max: 0 means PROTO_FRAME_MAX_DEFAULT,
 * and nothing above UINT32_MAX can be framed.
 */
size_t frame_max(size_t max);

/* Write the header for a payload of len bytes (len must be 1..UINT32_MAX). */
void frame_put_header(uint8_t hdr[PROTO_FRAME_HDR], uint32_t len);

/*
 * Check a complete header. Returns 0 and the payload length, -EBADMSG for
 * zero or -EMSGSIZE above max (after frame_max()).
 */
int frame_check_header(const uint8_t hdr[PROTO_FRAME_HDR], size_t max,
		       size_t *ret_len);

/* --- libevent --- */

/*
 * Take one frame from the front of in. On 1, the header and payload are
 * drained and *ret_payload is a new malloc'd copy of the payload with a NUL
 * after its *ret_len bytes (the caller frees it). On 0 (incomplete) and on
 * errors nothing is drained and nothing is allocated. -ENOMEM possible.
 */
int frame_evbuffer_take(struct evbuffer *in, size_t max,
			char **ret_payload, size_t *ret_len);

/*
 * The same into the caller's buffer: the maximum is min(max, buf_size),
 * and the payload is not NUL-terminated. -EMSGSIZE when the frame is larger
 * than that (nothing drained).
 */
int frame_evbuffer_take_into(struct evbuffer *in, size_t max, void *buf,
			     size_t buf_size, size_t *ret_len);

/*
 * Append one frame holding payload (1..max bytes) to out. Returns 0,
 * -EBADMSG for an empty payload, -EMSGSIZE above max, or -ENOMEM; on error
 * out is unchanged.
 */
int frame_evbuffer_add(struct evbuffer *out, const void *payload, size_t len,
		       size_t max);

/*
 * Append msg (an object or array; borrowed), encoded as compact JSON, as
 * one frame. Errors as frame_evbuffer_add(), -EINVAL for other JSON types.
 */
int frame_evbuffer_add_json(struct evbuffer *out, const json_t *msg,
			    size_t max);

/* --- plain buffers --- */

/*
 * Look for one frame at the start of buf[0, len). On 1, *ret_payload
 * points into buf (borrowed), *ret_payload_len is its length and
 * *ret_consumed the bytes the frame took, header included.
 */
int frame_decode(const void *buf, size_t len, size_t max,
		 const uint8_t **ret_payload, size_t *ret_payload_len,
		 size_t *ret_consumed);

/*
 * Encode payload as one frame into a new malloc'd buffer (the caller frees
 * it). Returns 0, -EBADMSG, -EMSGSIZE or -ENOMEM.
 */
int frame_encode(const void *payload, size_t len, size_t max,
		 uint8_t **ret_buf, size_t *ret_len);

/* msg (object or array; borrowed) as compact JSON in one new frame. */
int frame_encode_json(const json_t *msg, size_t max, uint8_t **ret_buf,
		      size_t *ret_len);

/*
 * A stream decoder fed chunks of any size. The payload buffer is allocated
 * once the header is complete and checked, at the announced size.
 */
struct frame_decoder {
	size_t max;
	uint8_t hdr[PROTO_FRAME_HDR];
	size_t hdr_len;		/* header bytes seen so far */
	uint8_t *buf;		/* payload being assembled, or NULL */
	size_t len;		/* payload length from the header */
	size_t have;		/* payload bytes in buf */
	int error;		/* sticky: once set, feed returns it */
};

/* Set up (max as for frame_max()); nothing is allocated. */
void frame_decoder_init(struct frame_decoder *d, size_t max);

/* Drop a partial frame and a sticky error; d can be fed again. */
void frame_decoder_reset(struct frame_decoder *d);

/*
 * Consume bytes from data[0, size). *ret_consumed is always set to the
 * bytes used (on errors, to those before the bad header's end). Returns 1
 * when a frame completed: *ret_payload is a new malloc'd, NUL-terminated
 * buffer of *ret_len bytes, and bytes after *ret_consumed are still to be
 * fed. Returns 0 when all bytes were consumed without completing a frame.
 * Errors stick until frame_decoder_reset().
 */
int frame_decoder_feed(struct frame_decoder *d, const void *data,
		       size_t size, size_t *ret_consumed,
		       char **ret_payload, size_t *ret_len);

/* --- blocking file descriptors --- */

/*
 * Write msg (object or array; borrowed) as one frame, all of it: short
 * writes and EINTR are retried, a non-blocking fd waits in poll(), and a
 * closed socket gives -EPIPE (never SIGPIPE on sockets). Returns 0 or a
 * negative errno; -EMSGSIZE when the JSON exceeds PROTO_FRAME_MAX_DEFAULT.
 */
int frame_write_fd(int fd, const json_t *msg);

/* The same with the caller's maximum (0 for the default). */
int frame_write_fd_max(int fd, const json_t *msg, size_t max);

/*
 * Read one frame's payload. timeout_ms bounds the whole frame (negative:
 * wait forever). Returns 1 with a new malloc'd, NUL-terminated payload;
 * 0 at end of stream before the first byte of a frame; -EPROTO when the
 * stream ends inside a frame; -ETIMEDOUT; -EMSGSIZE or -EBADMSG for a bad
 * header (nothing allocated); -ENOMEM; or the errno of read()/poll().
 */
int frame_read_fd_raw(int fd, size_t max, int timeout_ms, char **ret_payload,
		      size_t *ret_len);

/*
 * frame_read_fd_raw() and then the JSON in it: 1 with a new reference in
 * *ret_json, 0 at a clean end of stream, -EBADMSG also when the payload is
 * not JSON (or repeats an object key).
 */
int frame_read_fd(int fd, size_t max, int timeout_ms, json_t **ret_json);

#endif
