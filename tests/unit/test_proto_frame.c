/* SPDX-License-Identifier: MIT */
/*
 * Framing: the header rules, the three decoders (libevent, plain buffer,
 * stream), the encoders, and the blocking fd helpers over a socketpair,
 * including EOF in the middle of a frame, timeouts and EINTR. An oversized
 * header must be refused before anything is allocated: an allocation probe
 * (ASan's malloc hook, or RLIMIT_DATA in the plain build, under which a
 * 4 GiB allocation fails) watches the calls.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "proto/frame.h"

/* --- allocation probe --- */

#if defined(__SANITIZE_ADDRESS__)
int __sanitizer_install_malloc_and_free_hooks(
	void (*malloc_hook)(const volatile void *, size_t),
	void (*free_hook)(const volatile void *));

static volatile bool probe_on;
static volatile size_t probe_max;

static void
probe_malloc(const volatile void *p, size_t n)
{
	(void)p;
	if (probe_on && n > probe_max)
		probe_max = n;
}

static void
probe_free(const volatile void *p)
{
	(void)p;
}

static void
probe_begin(void)
{
	static bool installed;

	if (!installed) {
		__sanitizer_install_malloc_and_free_hooks(probe_malloc,
							  probe_free);
		installed = true;
	}
	probe_max = 0;
	probe_on = true;
}

/* The largest single allocation since probe_begin(). */
static size_t
probe_end(void)
{
	probe_on = false;
	return probe_max;
}
#else
static struct rlimit probe_saved;

static unsigned long
probe_vmdata_kb(void)
{
	char line[256];
	unsigned long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmData: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Cap the data segment at what we use plus 64 MiB: an allocation at the
 * size a hostile header announces then fails, and the call under test
 * would report -ENOMEM instead of the -EMSGSIZE we expect.
 */
static void
probe_begin(void)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_DATA, &probe_saved), 0);
	rl = probe_saved;
	rl.rlim_cur = (probe_vmdata_kb() << 10) + (64 << 20);
	assert_int_equal(setrlimit(RLIMIT_DATA, &rl), 0);
}

static size_t
probe_end(void)
{
	assert_int_equal(setrlimit(RLIMIT_DATA, &probe_saved), 0);
	return 0;
}
#endif

/* --- helpers --- */

static void
put_frame(struct evbuffer *b, const char *payload)
{
	assert_int_equal(frame_evbuffer_add(b, payload, strlen(payload), 0), 0);
}

static void
hdr_bytes(uint8_t h[4], uint32_t len)
{
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
}

/* --- header --- */

static void
test_header(void **state)
{
	uint8_t h[4];
	size_t len = 77;

	(void)state;
	frame_put_header(h, 0x01020304);
	assert_memory_equal(h, "\x01\x02\x03\x04", 4);
	assert_int_equal(frame_check_header(h, 0x01020304, &len), 0);
	assert_int_equal(len, 0x01020304);
	len = 77;
	assert_int_equal(frame_check_header(h, 0x01020303, &len), -EMSGSIZE);
	assert_int_equal(len, 77);
	hdr_bytes(h, 0);
	assert_int_equal(frame_check_header(h, 0, &len), -EBADMSG);
	/* 0 means the default maximum, exactly 1 MiB. */
	hdr_bytes(h, PROTO_FRAME_MAX_DEFAULT);
	assert_int_equal(frame_check_header(h, 0, &len), 0);
	hdr_bytes(h, PROTO_FRAME_MAX_DEFAULT + 1);
	assert_int_equal(frame_check_header(h, 0, &len), -EMSGSIZE);
	hdr_bytes(h, 0xffffffff);
	assert_int_equal(frame_check_header(h, SIZE_MAX, &len), 0);
	assert_int_equal(len, 0xffffffffu);
	assert_int_equal(frame_max(0), PROTO_FRAME_MAX_DEFAULT);
	assert_int_equal(frame_max(SIZE_MAX), UINT32_MAX);
	assert_int_equal(frame_max(10), 10);
}

/* --- libevent --- */

static void
test_evbuffer_split_header(void **state)
{
	static const char msg[] = "{\"a\":1}";
	struct evbuffer *in = evbuffer_new();
	uint8_t wire[4 + sizeof(msg) - 1];
	char *p = NULL;
	size_t len = 0, i;

	(void)state;
	hdr_bytes(wire, sizeof(msg) - 1);
	memcpy(wire + 4, msg, sizeof(msg) - 1);
	/* One byte at a time: nothing is taken or drained until the end. */
	for (i = 0; i < sizeof(wire) - 1; i++) {
		assert_int_equal(evbuffer_add(in, wire + i, 1), 0);
		assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 0);
		assert_null(p);
		assert_int_equal(evbuffer_get_length(in), i + 1);
	}
	assert_int_equal(evbuffer_add(in, wire + i, 1), 0);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 1);
	assert_int_equal(len, sizeof(msg) - 1);
	assert_string_equal(p, msg);	/* NUL-terminated */
	assert_int_equal(evbuffer_get_length(in), 0);
	free(p);
	evbuffer_free(in);
}

static void
test_evbuffer_several(void **state)
{
	struct evbuffer *in = evbuffer_new();
	char *p;
	size_t len;

	(void)state;
	put_frame(in, "{\"n\":1}");
	put_frame(in, "[2]");
	put_frame(in, "{\"n\":\"three\"}");
	/* And the first two bytes of a fourth. */
	assert_int_equal(evbuffer_add(in, "\0\0", 2), 0);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 1);
	assert_string_equal(p, "{\"n\":1}");
	free(p);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 1);
	assert_string_equal(p, "[2]");
	assert_int_equal(len, 3);
	free(p);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 1);
	assert_string_equal(p, "{\"n\":\"three\"}");
	free(p);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), 0);
	assert_int_equal(evbuffer_get_length(in), 2);
	evbuffer_free(in);
}

static void
test_evbuffer_oversized(void **state)
{
	struct evbuffer *in = evbuffer_new();
	uint8_t h[4];
	char *p = NULL, buf[16];
	size_t len = 99, biggest;
	int r;

	(void)state;
	hdr_bytes(h, 0xffffffff);
	assert_int_equal(evbuffer_add(in, h, 4), 0);
	assert_int_equal(evbuffer_add(in, "{}", 2), 0);
	probe_begin();
	r = frame_evbuffer_take(in, 0, &p, &len);
	biggest = probe_end();
	assert_int_equal(r, -EMSGSIZE);
	assert_true(biggest < 4096);
	assert_null(p);
	assert_int_equal(len, 99);
	/* Nothing drained: the caller decides what to do with the stream. */
	assert_int_equal(evbuffer_get_length(in), 6);
	/* With the caller's buffer, its size is the limit. */
	evbuffer_drain(in, evbuffer_get_length(in));
	put_frame(in, "{\"0123456789\":0}");
	r = frame_evbuffer_take_into(in, 0, buf, sizeof(buf) - 1, &len);
	assert_int_equal(r, -EMSGSIZE);
	assert_int_equal(evbuffer_get_length(in), 4 + 16);
	/* Just one byte over the explicit maximum. */
	r = frame_evbuffer_take(in, 15, &p, &len);
	assert_int_equal(r, -EMSGSIZE);
	r = frame_evbuffer_take(in, 16, &p, &len);
	assert_int_equal(r, 1);
	assert_int_equal(len, 16);
	free(p);
	evbuffer_free(in);
}

static void
test_evbuffer_zero_length(void **state)
{
	struct evbuffer *in = evbuffer_new();
	char *p = NULL;
	size_t len;

	(void)state;
	assert_int_equal(evbuffer_add(in, "\0\0\0\0{}", 6), 0);
	assert_int_equal(frame_evbuffer_take(in, 0, &p, &len), -EBADMSG);
	assert_null(p);
	assert_int_equal(evbuffer_get_length(in), 6);
	evbuffer_free(in);
}

static void
test_evbuffer_take_into(void **state)
{
	struct evbuffer *in = evbuffer_new();
	char buf[8];
	size_t len = 0;

	(void)state;
	put_frame(in, "[1,2,3]");
	put_frame(in, "[4]");
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(frame_evbuffer_take_into(in, 0, buf, sizeof(buf),
						  &len), 1);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "[1,2,3]x", 8);
	assert_int_equal(frame_evbuffer_take_into(in, 0, buf, sizeof(buf),
						  &len), 1);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "[4]", 3);
	assert_int_equal(frame_evbuffer_take_into(in, 0, buf, sizeof(buf),
						  &len), 0);
	assert_int_equal(frame_evbuffer_take_into(in, 0, buf, 0, &len),
			 -EMSGSIZE);
	evbuffer_free(in);
}

static void
test_evbuffer_add(void **state)
{
	struct evbuffer *out = evbuffer_new();
	uint8_t wire[64];
	json_t *j;
	int r;

	(void)state;
	assert_int_equal(frame_evbuffer_add(out, "abc", 0, 0), -EBADMSG);
	assert_int_equal(frame_evbuffer_add(out, "abc", 3, 2), -EMSGSIZE);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_int_equal(frame_evbuffer_add(out, "abc", 3, 3), 0);
	assert_int_equal(evbuffer_get_length(out), 7);
	assert_int_equal(evbuffer_remove(out, wire, sizeof(wire)), 7);
	assert_memory_equal(wire, "\0\0\0\3abc", 7);

	j = json_pack("{s:i,s:[s]}", "id", 7, "x", "y");
	assert_int_equal(frame_evbuffer_add_json(out, j, 0), 0);
	assert_int_equal(evbuffer_remove(out, wire, sizeof(wire)), 4 + 18);
	assert_memory_equal(wire, "\0\0\0\x12{\"id\":7,\"x\":[\"y\"]}", 22);
	/* The JSON is 18 bytes: a maximum of 17 refuses it, out unchanged. */
	assert_int_equal(frame_evbuffer_add_json(out, j, 17), -EMSGSIZE);
	assert_int_equal(evbuffer_get_length(out), 0);
	json_decref(j);
	j = json_integer(5);
	r = frame_evbuffer_add_json(out, j, 0);
	assert_int_equal(r, -EINVAL);
	json_decref(j);
	evbuffer_free(out);
}

/* --- plain buffers --- */

static void
test_decode_buffer(void **state)
{
	uint8_t *wire, *two, big[8];
	const uint8_t *payload = NULL;
	size_t wlen, plen = 0, used = 0, i;

	(void)state;
	assert_int_equal(frame_encode("{\"x\":true}", 10, 0, &wire, &wlen), 0);
	assert_int_equal(wlen, 14);
	/* Every strict prefix is incomplete. */
	for (i = 0; i < wlen; i++)
		assert_int_equal(frame_decode(wire, i, 0, &payload, &plen,
					      &used), 0);
	assert_null(payload);
	assert_int_equal(frame_decode(wire, wlen, 0, &payload, &plen, &used), 1);
	assert_ptr_equal(payload, wire + 4);
	assert_int_equal(plen, 10);
	assert_int_equal(used, 14);

	/* Two frames back to back: consumed says where the next starts. */
	two = malloc(2 * wlen);
	memcpy(two, wire, wlen);
	memcpy(two + wlen, wire, wlen);
	assert_int_equal(frame_decode(two, 2 * wlen, 0, &payload, &plen,
				      &used), 1);
	assert_int_equal(used, wlen);
	assert_int_equal(frame_decode(two + used, 2 * wlen - used, 0, &payload,
				      &plen, &used), 1);
	assert_memory_equal(payload, "{\"x\":true}", 10);
	free(two);
	assert_int_equal(frame_decode(wire, wlen, 9, &payload, &plen, &used),
			 -EMSGSIZE);
	free(wire);

	hdr_bytes(big, 0xffffffff);
	assert_int_equal(frame_decode(big, 8, 0, &payload, &plen, &used),
			 -EMSGSIZE);
	hdr_bytes(big, 0);
	assert_int_equal(frame_decode(big, 8, 0, &payload, &plen, &used),
			 -EBADMSG);

	wire = NULL;
	assert_int_equal(frame_encode("x", 0, 0, &wire, &wlen), -EBADMSG);
	assert_int_equal(frame_encode("xy", 2, 1, &wire, &wlen), -EMSGSIZE);
	assert_null(wire);
}

static void
test_encode_json(void **state)
{
	json_t *j = json_pack("{s:s}", "k", "v");
	uint8_t *wire;
	size_t wlen;

	(void)state;
	assert_int_equal(frame_encode_json(j, 0, &wire, &wlen), 0);
	assert_int_equal(wlen, 4 + 9);
	assert_memory_equal(wire, "\0\0\0\x09{\"k\":\"v\"}", 13);
	free(wire);
	json_decref(j);
	j = json_string("bare");
	assert_int_equal(frame_encode_json(j, 0, &wire, &wlen), -EINVAL);
	json_decref(j);
}

static void
test_stream_decoder(void **state)
{
	struct frame_decoder d;
	uint8_t *a, *b, *stream;
	size_t alen, blen, slen, off, used, len, chunk;
	char *p;
	int r, got;

	(void)state;
	assert_int_equal(frame_encode("{\"first\":1}", 11, 0, &a, &alen), 0);
	assert_int_equal(frame_encode("[\"second\"]", 10, 0, &b, &blen), 0);
	slen = alen + blen;
	stream = malloc(slen);
	memcpy(stream, a, alen);
	memcpy(stream + alen, b, blen);

	/* Any chunking gives the same two frames. */
	for (chunk = 1; chunk <= slen; chunk++) {
		frame_decoder_init(&d, 0);
		got = 0;
		off = 0;
		while (off < slen) {
			size_t n = slen - off < chunk ? slen - off : chunk;

			r = frame_decoder_feed(&d, stream + off, n, &used, &p,
					       &len);
			assert_true(r == 0 || r == 1);
			assert_true(used <= n);
			if (r == 0)
				assert_int_equal(used, n);
			off += used;
			if (r == 1) {
				if (got == 0)
					assert_string_equal(p, "{\"first\":1}");
				else
					assert_string_equal(p, "[\"second\"]");
				free(p);
				got++;
			}
		}
		assert_int_equal(got, 2);
		assert_null(d.buf);
		frame_decoder_reset(&d);
	}

	/* Oversized: refused once the header is complete, nothing allocated. */
	frame_decoder_init(&d, 100);
	hdr_bytes(stream, 0xffffffff);
	probe_begin();
	r = frame_decoder_feed(&d, stream, 2, &used, &p, &len);
	assert_int_equal(r, 0);
	r = frame_decoder_feed(&d, stream + 2, slen - 2, &used, &p, &len);
	assert_true(probe_end() < 4096);
	assert_int_equal(r, -EMSGSIZE);
	assert_int_equal(used, 2);
	assert_null(d.buf);
	/* Sticky until reset. */
	assert_int_equal(frame_decoder_feed(&d, b, blen, &used, &p, &len),
			 -EMSGSIZE);
	assert_int_equal(used, 0);
	frame_decoder_reset(&d);
	assert_int_equal(frame_decoder_feed(&d, b, blen, &used, &p, &len), 1);
	assert_int_equal(len, 10);
	free(p);

	/* Zero length. */
	frame_decoder_reset(&d);
	assert_int_equal(frame_decoder_feed(&d, "\0\0\0\0", 4, &used, &p, &len),
			 -EBADMSG);
	/* A partial frame is dropped by reset without leaking. */
	frame_decoder_reset(&d);
	assert_int_equal(frame_decoder_feed(&d, a, alen - 1, &used, &p, &len),
			 0);
	assert_non_null(d.buf);
	frame_decoder_reset(&d);
	assert_null(d.buf);
	assert_int_equal(frame_decoder_feed(&d, NULL, 0, &used, &p, &len), 0);
	assert_int_equal(used, 0);
	free(stream);
	free(a);
	free(b);
}

/* --- file descriptors --- */

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_fd_roundtrip(void **state)
{
	json_t *a = json_pack("{s:s,s:i}", "method", "vm.list", "id", 1);
	json_t *b = json_pack("[i,i]", 1, 2);
	json_t *got = NULL;
	char *raw;
	size_t len;
	int sv[2];

	(void)state;
	pair(sv);
	assert_int_equal(frame_write_fd(sv[0], a), 0);
	assert_int_equal(frame_write_fd(sv[0], b), 0);
	assert_int_equal(frame_write_fd(sv[0], a), 0);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), 1);
	assert_true(json_equal(got, a));
	json_decref(got);
	assert_int_equal(frame_read_fd(sv[1], 0, -1, &got), 1);
	assert_true(json_equal(got, b));
	json_decref(got);
	assert_int_equal(frame_read_fd_raw(sv[1], 0, 1000, &raw, &len), 1);
	assert_string_equal(raw, "{\"method\":\"vm.list\",\"id\":1}");
	assert_int_equal(len, strlen(raw));
	free(raw);
	/* A clean end of stream is 0, not an error, and writes nothing. */
	close(sv[0]);
	got = NULL;
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), 0);
	assert_null(got);
	close(sv[1]);
	json_decref(a);
	json_decref(b);
}

static void
test_fd_eof_mid_frame(void **state)
{
	json_t *got = NULL;
	int sv[2];

	(void)state;
	/* In the header. */
	pair(sv);
	assert_int_equal(write(sv[0], "\0\0", 2), 2);
	close(sv[0]);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EPROTO);
	close(sv[1]);
	/* In the payload. */
	pair(sv);
	assert_int_equal(write(sv[0], "\0\0\0\x0a{\"a\":", 9), 9);
	close(sv[0]);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EPROTO);
	assert_null(got);
	close(sv[1]);
}

static void
test_fd_bad_frames(void **state)
{
	json_t *got = NULL;
	uint8_t h[4];
	int sv[2], r;

	(void)state;
	pair(sv);
	hdr_bytes(h, 0xffffffff);
	assert_int_equal(write(sv[0], h, 4), 4);
	probe_begin();
	r = frame_read_fd(sv[1], 0, 1000, &got);
	assert_true(probe_end() < 4096);
	assert_int_equal(r, -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);

	pair(sv);
	assert_int_equal(write(sv[0], "\0\0\0\0", 4), 4);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EBADMSG);
	/* Not JSON, and a repeated key. */
	assert_int_equal(write(sv[0], "\0\0\0\x03{x}", 7), 7);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EBADMSG);
	assert_int_equal(write(sv[0], "\0\0\0\x0d{\"a\":1,\"a\":2}", 17), 17);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EBADMSG);
	assert_null(got);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(frame_read_fd(sv[1], 0, 1000, &got), -EBADF);
}

static void
test_fd_timeout(void **state)
{
	json_t *got = NULL;
	int64_t t0, dt;
	int sv[2];

	(void)state;
	pair(sv);
	t0 = now_ms();
	assert_int_equal(frame_read_fd(sv[1], 0, 100, &got), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 95 && dt < 2000);
	/* The deadline covers the whole frame, not each read. */
	assert_int_equal(write(sv[0], "\0\0\0\x0a{\"a\":", 9), 9);
	t0 = now_ms();
	assert_int_equal(frame_read_fd(sv[1], 0, 100, &got), -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 95 && dt < 2000);
	assert_int_equal(frame_read_fd(sv[1], 0, 0, &got), -ETIMEDOUT);
	assert_null(got);
	close(sv[0]);
	close(sv[1]);
}

struct writer {
	int fd;
	int delay_ms;
	const uint8_t *buf;
	size_t len;
	size_t chunk;
};

/* Write buf in chunks, pausing delay_ms before each. */
static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct timespec ts;
	size_t off = 0, n;
	sigset_t set;

	/* The interruptions are meant for the reader. */
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (off < w->len) {
		ts.tv_sec = 0;
		ts.tv_nsec = (long)w->delay_ms * 1000000;
		nanosleep(&ts, NULL);
		n = w->len - off < w->chunk ? w->len - off : w->chunk;
		if (write(w->fd, w->buf + off, n) != (ssize_t)n)
			break;
		off += n;
	}
	return NULL;
}

static void
on_alarm(int sig)
{
	(void)sig;
}

static void
test_fd_short_reads_and_eintr(void **state)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = { .it_interval = { 0, 5000 },
				.it_value = { 0, 5000 } };
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	struct writer w;
	pthread_t th;
	json_t *got = NULL, *want;
	uint8_t *wire;
	size_t wlen;
	int sv[2];

	(void)state;
	want = json_pack("{s:s,s:{s:s}}", "jsonrpc", "2.0", "params", "name",
			 "a-fairly-long-vm-name-to-split");
	assert_int_equal(frame_encode_json(want, 0, &wire, &wlen), 0);
	pair(sv);
	/* Three bytes every 10 ms, while SIGALRM interrupts every 5 ms. */
	w = (struct writer){ .fd = sv[0], .delay_ms = 10, .buf = wire,
			     .len = wlen, .chunk = 3 };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: poll and read see EINTR */
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
	assert_int_equal(frame_read_fd(sv[1], 0, 10000, &got), 1);
	assert_int_equal(setitimer(ITIMER_REAL, &off, NULL), 0);
	assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
	pthread_join(th, NULL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(wire);
	close(sv[0]);
	close(sv[1]);
}

struct reader {
	int fd;
	json_t *got;
	int r;
};

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;

	rd->r = frame_read_fd(rd->fd, 0, 10000, &rd->got);
	return NULL;
}

static void
test_fd_large_nonblocking_write(void **state)
{
	struct reader rd = { 0 };
	pthread_t th;
	json_t *big;
	char *s;
	int sv[2], sz = 4096;
	size_t n = 900 * 1024;

	(void)state;
	/* Larger than the socket buffer: the writer must wait and go on. */
	s = malloc(n + 1);
	memset(s, 'a', n);
	s[n] = '\0';
	big = json_pack("{s:s}", "blob", s);
	free(s);
	pair(sv);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz,
				    sizeof(sz)), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	rd.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, reader_main, &rd), 0);
	assert_int_equal(frame_write_fd(sv[0], big), 0);
	pthread_join(th, NULL);
	assert_int_equal(rd.r, 1);
	assert_true(json_equal(rd.got, big));
	json_decref(rd.got);
	close(sv[0]);
	close(sv[1]);

	/* Over the default maximum: refused before writing anything. */
	s = malloc(PROTO_FRAME_MAX_DEFAULT + 1);
	memset(s, 'b', PROTO_FRAME_MAX_DEFAULT);
	s[PROTO_FRAME_MAX_DEFAULT] = '\0';
	json_decref(big);
	big = json_pack("{s:s}", "blob", s);
	free(s);
	pair(sv);
	assert_int_equal(frame_write_fd(sv[0], big), -EMSGSIZE);
	assert_int_equal(frame_read_fd(sv[1], 0, 0, &rd.got), -ETIMEDOUT);
	/* ... unless the caller raises the maximum. */
	assert_int_equal(frame_write_fd_max(-1, big, 2 * PROTO_FRAME_MAX_DEFAULT),
			 -EBADF);
	json_decref(big);
	close(sv[0]);
	close(sv[1]);
}

static void
test_fd_write_closed_peer(void **state)
{
	json_t *j = json_pack("{s:i}", "a", 1);
	int sv[2], p[2];

	(void)state;
	pair(sv);
	close(sv[1]);
	/* -EPIPE and no SIGPIPE (which would kill the test). */
	assert_int_equal(frame_write_fd(sv[0], j), -EPIPE);
	close(sv[0]);
	/* A pipe is not a socket: plain write() is used. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(frame_write_fd(p[1], j), 0);
	close(p[1]);
	{
		json_t *got = NULL;

		assert_int_equal(frame_read_fd(p[0], 0, 1000, &got), 1);
		assert_true(json_equal(got, j));
		json_decref(got);
	}
	close(p[0]);
	json_decref(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_evbuffer_split_header),
		cmocka_unit_test(test_evbuffer_several),
		cmocka_unit_test(test_evbuffer_oversized),
		cmocka_unit_test(test_evbuffer_zero_length),
		cmocka_unit_test(test_evbuffer_take_into),
		cmocka_unit_test(test_evbuffer_add),
		cmocka_unit_test(test_decode_buffer),
		cmocka_unit_test(test_encode_json),
		cmocka_unit_test(test_stream_decoder),
		cmocka_unit_test(test_fd_roundtrip),
		cmocka_unit_test(test_fd_eof_mid_frame),
		cmocka_unit_test(test_fd_bad_frames),
		cmocka_unit_test(test_fd_timeout),
		cmocka_unit_test(test_fd_short_reads_and_eintr),
		cmocka_unit_test(test_fd_large_nonblocking_write),
		cmocka_unit_test(test_fd_write_closed_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
