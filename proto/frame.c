/* SPDX-License-Identifier: MIT */
/*
 * Length-prefixed framing. Every decoder reads the 4-byte header, checks it
 * against the maximum and only then allocates, at the announced size.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "frame.h"

size_t
frame_max(size_t max)
{
	if (max == 0)
		return PROTO_FRAME_MAX_DEFAULT;
	if (max > UINT32_MAX)
		return UINT32_MAX;
	return max;
}

void
frame_put_header(uint8_t hdr[PROTO_FRAME_HDR], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

int
frame_check_header(const uint8_t hdr[PROTO_FRAME_HDR], size_t max,
		   size_t *ret_len)
{
	uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		       (uint32_t)hdr[2] << 8 | hdr[3];

	if (len == 0)
		return -EBADMSG;
	if (len > frame_max(max))
		return -EMSGSIZE;
	*ret_len = len;
	return 0;
}

static int
frame_check_payload(size_t len, size_t max)
{
	if (len == 0)
		return -EBADMSG;
	if (len > frame_max(max))
		return -EMSGSIZE;
	return 0;
}

/* msg as compact JSON in a new string; only objects and arrays are messages. */
static int
frame_dump(const json_t *msg, char **ret_s, size_t *ret_len)
{
	char *s;

	if (!json_is_object(msg) && !json_is_array(msg))
		return -EINVAL;
	s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	*ret_len = strlen(s);
	*ret_s = s;
	return 0;
}

/* --- libevent --- */

/*
 * Peek at the header at the front of in: 1 and the payload length when the
 * whole frame is there, 0 when not yet, or the header's error.
 */
static int
frame_evbuffer_peek(struct evbuffer *in, size_t max, size_t *ret_len)
{
	uint8_t hdr[PROTO_FRAME_HDR];
	size_t avail = evbuffer_get_length(in), len;
	int r;

	if (avail < PROTO_FRAME_HDR)
		return 0;
	if (evbuffer_copyout(in, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr))
		return -EIO;
	r = frame_check_header(hdr, max, &len);
	if (r < 0)
		return r;
	if (avail - PROTO_FRAME_HDR < len)
		return 0;
	*ret_len = len;
	return 1;
}

/* Copy the payload of a frame known to be complete, then drain it. */
static int
frame_evbuffer_remove(struct evbuffer *in, void *buf, size_t len)
{
	struct evbuffer_ptr pos;

	if (evbuffer_ptr_set(in, &pos, PROTO_FRAME_HDR, EVBUFFER_PTR_SET) < 0)
		return -EIO;
	if (evbuffer_copyout_from(in, &pos, buf, len) != (ssize_t)len)
		return -EIO;
	if (evbuffer_drain(in, PROTO_FRAME_HDR + len) < 0)
		return -EIO;
	return 0;
}

int
frame_evbuffer_take(struct evbuffer *in, size_t max, char **ret_payload,
		    size_t *ret_len)
{
	size_t len = 0;
	char *p;
	int r;

	r = frame_evbuffer_peek(in, max, &len);
	if (r <= 0)
		return r;
	p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	r = frame_evbuffer_remove(in, p, len);
	if (r < 0) {
		free(p);
		return r;
	}
	p[len] = '\0';
	*ret_payload = p;
	*ret_len = len;
	return 1;
}

int
frame_evbuffer_take_into(struct evbuffer *in, size_t max, void *buf,
			 size_t buf_size, size_t *ret_len)
{
	size_t len = 0;
	int r;

	max = frame_max(max);
	if (buf_size < max)
		max = buf_size;
	if (max == 0)
		return -EMSGSIZE;
	r = frame_evbuffer_peek(in, max, &len);
	if (r <= 0)
		return r;
	r = frame_evbuffer_remove(in, buf, len);
	if (r < 0)
		return r;
	*ret_len = len;
	return 1;
}

int
frame_evbuffer_add(struct evbuffer *out, const void *payload, size_t len,
		   size_t max)
{
	struct evbuffer_iovec v;
	int r;

	r = frame_check_payload(len, max);
	if (r < 0)
		return r;
	/* One contiguous reservation, so the frame goes in whole or not at all. */
	if (evbuffer_reserve_space(out, (ev_ssize_t)(PROTO_FRAME_HDR + len),
				   &v, 1) != 1 ||
	    v.iov_len < PROTO_FRAME_HDR + len)
		return -ENOMEM;
	frame_put_header(v.iov_base, (uint32_t)len);
	memcpy((uint8_t *)v.iov_base + PROTO_FRAME_HDR, payload, len);
	v.iov_len = PROTO_FRAME_HDR + len;
	if (evbuffer_commit_space(out, &v, 1) < 0)
		return -ENOMEM;
	return 0;
}

int
frame_evbuffer_add_json(struct evbuffer *out, const json_t *msg, size_t max)
{
	char *s;
	size_t len;
	int r;

	r = frame_dump(msg, &s, &len);
	if (r < 0)
		return r;
	r = frame_evbuffer_add(out, s, len, max);
	free(s);
	return r;
}

/* --- plain buffers --- */

int
frame_decode(const void *buf, size_t len, size_t max,
	     const uint8_t **ret_payload, size_t *ret_payload_len,
	     size_t *ret_consumed)
{
	const uint8_t *p = buf;
	size_t plen = 0;
	int r;

	if (len < PROTO_FRAME_HDR)
		return 0;
	r = frame_check_header(p, max, &plen);
	if (r < 0)
		return r;
	if (len - PROTO_FRAME_HDR < plen)
		return 0;
	*ret_payload = p + PROTO_FRAME_HDR;
	*ret_payload_len = plen;
	*ret_consumed = PROTO_FRAME_HDR + plen;
	return 1;
}

int
frame_encode(const void *payload, size_t len, size_t max, uint8_t **ret_buf,
	     size_t *ret_len)
{
	uint8_t *b;
	int r;

	r = frame_check_payload(len, max);
	if (r < 0)
		return r;
	b = malloc(PROTO_FRAME_HDR + len);
	if (!b)
		return -ENOMEM;
	frame_put_header(b, (uint32_t)len);
	memcpy(b + PROTO_FRAME_HDR, payload, len);
	*ret_buf = b;
	*ret_len = PROTO_FRAME_HDR + len;
	return 0;
}

int
frame_encode_json(const json_t *msg, size_t max, uint8_t **ret_buf,
		  size_t *ret_len)
{
	char *s;
	size_t len;
	int r;

	r = frame_dump(msg, &s, &len);
	if (r < 0)
		return r;
	r = frame_encode(s, len, max, ret_buf, ret_len);
	free(s);
	return r;
}

void
frame_decoder_init(struct frame_decoder *d, size_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = frame_max(max);
}

void
frame_decoder_reset(struct frame_decoder *d)
{
	free(d->buf);
	frame_decoder_init(d, d->max);
}

int
frame_decoder_feed(struct frame_decoder *d, const void *data, size_t size,
		   size_t *ret_consumed, char **ret_payload, size_t *ret_len)
{
	const uint8_t *p = data;
	size_t off = 0, take, len = 0;
	int r;

	if (d->error) {
		*ret_consumed = 0;
		return d->error;
	}
	while (off < size) {
		if (d->hdr_len < PROTO_FRAME_HDR) {
			take = PROTO_FRAME_HDR - d->hdr_len;
			if (take > size - off)
				take = size - off;
			memcpy(d->hdr + d->hdr_len, p + off, take);
			d->hdr_len += take;
			off += take;
			if (d->hdr_len < PROTO_FRAME_HDR)
				break;
			r = frame_check_header(d->hdr, d->max, &len);
			if (r == 0) {
				d->buf = malloc(len + 1);
				if (!d->buf)
					r = -ENOMEM;
			}
			if (r < 0) {
				d->error = r;
				*ret_consumed = off;
				return r;
			}
			d->len = len;
			d->have = 0;
		}
		take = d->len - d->have;
		if (take > size - off)
			take = size - off;
		memcpy(d->buf + d->have, p + off, take);
		d->have += take;
		off += take;
		if (d->have == d->len) {
			d->buf[d->len] = '\0';
			*ret_payload = (char *)d->buf;
			*ret_len = d->len;
			*ret_consumed = off;
			d->buf = NULL;
			d->hdr_len = 0;
			d->len = 0;
			d->have = 0;
			return 1;
		}
	}
	*ret_consumed = off;
	return 0;
}

/* --- blocking file descriptors --- */

static int64_t
frame_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is ready for events or the deadline (in frame_now_ms()
 * time; negative: none) passes. Returns 0, -ETIMEDOUT or a negative errno.
 */
static int
frame_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		left = -1;
		if (deadline >= 0) {
			left = deadline - frame_now_ms();
			if (left < 0)
				left = 0;
			if (left > INT32_MAX)
				left = INT32_MAX;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			if (deadline >= 0 && frame_now_ms() >= deadline)
				return -ETIMEDOUT;
			continue;
		}
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		/* POLLHUP and POLLERR: the read or write says what happened. */
		return 0;
	}
}

/*
 * Read exactly n bytes unless the stream ends first. Returns 0 with the
 * count in *ret_got (less than n only at end of stream) or an errno.
 */
static int
frame_read_full(int fd, void *buf, size_t n, int64_t deadline,
		size_t *ret_got)
{
	uint8_t *p = buf;
	size_t got = 0;
	ssize_t k;
	int r;

	while (got < n) {
		r = frame_wait(fd, POLLIN, deadline);
		if (r < 0)
			return r;
		k = read(fd, p + got, n - got);
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	*ret_got = got;
	return 0;
}

static int
frame_write_full(int fd, const uint8_t *p, size_t n)
{
	bool sock = true;
	ssize_t k;
	int r;

	while (n) {
		if (sock) {
			k = send(fd, p, n, MSG_NOSIGNAL);
			if (k < 0 && errno == ENOTSOCK) {
				sock = false;
				continue;
			}
		} else {
			k = write(fd, p, n);
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				r = frame_wait(fd, POLLOUT, -1);
				if (r < 0)
					return r;
				continue;
			}
			return -errno;
		}
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
frame_write_fd_max(int fd, const json_t *msg, size_t max)
{
	uint8_t *b;
	size_t len;
	int r;

	r = frame_encode_json(msg, max, &b, &len);
	if (r < 0)
		return r;
	r = frame_write_full(fd, b, len);
	free(b);
	return r;
}

int
frame_write_fd(int fd, const json_t *msg)
{
	return frame_write_fd_max(fd, msg, PROTO_FRAME_MAX_DEFAULT);
}

int
frame_read_fd_raw(int fd, size_t max, int timeout_ms, char **ret_payload,
		  size_t *ret_len)
{
	uint8_t hdr[PROTO_FRAME_HDR];
	int64_t deadline = -1;
	size_t got = 0, len = 0;
	char *p;
	int r;

	if (timeout_ms >= 0)
		deadline = frame_now_ms() + timeout_ms;
	r = frame_read_full(fd, hdr, sizeof(hdr), deadline, &got);
	if (r < 0)
		return r;
	if (got == 0)
		return 0;
	if (got < sizeof(hdr))
		return -EPROTO;
	r = frame_check_header(hdr, max, &len);
	if (r < 0)
		return r;
	p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	r = frame_read_full(fd, p, len, deadline, &got);
	if (r == 0 && got < len)
		r = -EPROTO;
	if (r < 0) {
		free(p);
		return r;
	}
	p[len] = '\0';
	*ret_payload = p;
	*ret_len = len;
	return 1;
}

int
frame_read_fd(int fd, size_t max, int timeout_ms, json_t **ret_json)
{
	json_error_t jerr;
	json_t *j;
	char *p;
	size_t len;
	int r;

	r = frame_read_fd_raw(fd, max, timeout_ms, &p, &len);
	if (r <= 0)
		return r;
	j = json_loadb(p, len, PROTO_JSON_DECODE_FLAGS, &jerr);
	free(p);
	if (!j)
		return -EBADMSG;
	*ret_json = j;
	return 1;
}
