/* SPDX-License-Identifier: MIT */
/*
 * The console hub: history replay, live output to several clients, input
 * to the guest with back-pressure, slow clients skipping ahead, limits.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "conhub.h"

struct guest {
	pthread_mutex_t lock;
	uint8_t in[8192];
	size_t in_len;
	size_t room;		/* how much more it takes */
	int room_fd;
};

static size_t
guest_input(void *opaque, const uint8_t *buf, size_t len)
{
	struct guest *g = opaque;
	size_t n;

	pthread_mutex_lock(&g->lock);
	n = len < g->room ? len : g->room;
	memcpy(g->in + g->in_len, buf, n);
	g->in_len += n;
	g->room -= n;
	pthread_mutex_unlock(&g->lock);
	return n;
}

static size_t
guest_in_len(struct guest *g)
{
	size_t n;

	pthread_mutex_lock(&g->lock);
	n = g->in_len;
	pthread_mutex_unlock(&g->lock);
	return n;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail_msg("connect(%s): %s", path, strerror(errno));
	return fd;
}

/* Read exactly len bytes within 5 s. */
static void
read_exact(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) != 1)
			fail_msg("read: only %zu of %zu bytes within 5 s", got,
				 len);
		n = read(fd, buf + got, len - got);
		if (n <= 0)
			fail_msg("read: %zd (%s) after %zu of %zu bytes", n,
				 strerror(errno), got, len);
		got += (size_t)n;
	}
}

/* Nothing more arrives within ms. */
static void
expect_quiet(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, ms), 0);
}

static void
wait_input(struct guest *g, size_t len)
{
	int i;

	for (i = 0; i < 500 && guest_in_len(g) < len; i++)
		usleep(10000);
	assert_int_equal(guest_in_len(g), len);
}

static char sock_path[108];

static int
setup(void **state)
{
	(void)state;
	snprintf(sock_path, sizeof(sock_path), "/tmp/test_conhub.%d.sock",
		 (int)getpid());
	return 0;
}

static void
test_history_and_live(void **state)
{
	struct conhub *h;
	struct conhub_stats st;
	char buf[64];
	uint8_t *hist;
	size_t hlen;
	int a, b;

	(void)state;
	assert_int_equal(conhub_new(4096, NULL, NULL, -1, &h), 0);
	assert_int_equal(conhub_listen(h, sock_path), 0);
	conhub_write(h, (const uint8_t *)"boot log\n", 9);
	a = connect_to(sock_path);
	/* A new client gets the history first. */
	read_exact(a, buf, 9);
	assert_memory_equal(buf, "boot log\n", 9);
	b = connect_to(sock_path);
	read_exact(b, buf, 9);
	assert_memory_equal(buf, "boot log\n", 9);
	/* Then live output, to both. */
	conhub_write(h, (const uint8_t *)"login: ", 7);
	read_exact(a, buf, 7);
	assert_memory_equal(buf, "login: ", 7);
	read_exact(b, buf, 7);
	assert_memory_equal(buf, "login: ", 7);
	expect_quiet(a, 50);
	assert_int_equal(conhub_history(h, &hist, &hlen), 0);
	assert_int_equal(hlen, 16);
	assert_memory_equal(hist, "boot log\nlogin: ", 16);
	free(hist);
	conhub_get_stats(h, &st);
	assert_int_equal(st.written, 16);
	assert_int_equal(st.clients, 2);
	/* A client that leaves is dropped; the others go on. */
	close(b);
	conhub_write(h, (const uint8_t *)"x", 1);
	read_exact(a, buf, 1);
	assert_int_equal(buf[0], 'x');
	conhub_free(h);
	/* The hub closed its client and removed its socket. */
	assert_int_equal(read(a, buf, 1), 0);
	close(a);
	assert_int_equal(access(sock_path, F_OK), -1);
}

/* The ring keeps the last `history` bytes: older ones are gone. */
static void
test_history_wraps(void **state)
{
	struct conhub *h;
	uint8_t chunk[1000], *hist;
	size_t hlen, i;
	int a;
	char buf[4096];

	(void)state;
	assert_int_equal(conhub_new(4096, NULL, NULL, -1, &h), 0);
	assert_int_equal(conhub_listen(h, sock_path), 0);
	for (i = 0; i < 10; i++) {
		memset(chunk, 'a' + (int)i, sizeof(chunk));
		conhub_write(h, chunk, sizeof(chunk));
	}
	assert_int_equal(conhub_history(h, &hist, &hlen), 0);
	assert_int_equal(hlen, 4096);
	/* 10000 bytes written: the last 4096 are 96 'f', then g h i j. */
	assert_int_equal(hist[0], 'f');
	assert_int_equal(hist[95], 'f');
	assert_int_equal(hist[96], 'g');
	assert_int_equal(hist[4095], 'j');
	a = connect_to(sock_path);
	read_exact(a, buf, 4096);
	assert_memory_equal(buf, hist, 4096);
	free(hist);
	/* One write larger than the ring keeps its tail. */
	{
		uint8_t big[5000];

		for (i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)i;
		conhub_write(h, big, sizeof(big));
		assert_int_equal(conhub_history(h, &hist, &hlen), 0);
		assert_int_equal(hlen, 4096);
		assert_memory_equal(hist, big + 904, 4096);
		free(hist);
	}
	close(a);
	conhub_free(h);
}

/* A client that does not read skips ahead; it never blocks the writer. */
static void
test_slow_client_skips(void **state)
{
	struct conhub *h;
	struct conhub_stats st;
	uint8_t chunk[4096];
	int a, i, sz = 4096;
	char buf[4096];

	(void)state;
	assert_int_equal(conhub_new(4096, NULL, NULL, -1, &h), 0);
	assert_int_equal(conhub_listen(h, sock_path), 0);
	a = connect_to(sock_path);
	assert_int_equal(setsockopt(a, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)),
			 0);
	usleep(50000);
	memset(chunk, 'z', sizeof(chunk));
	/* Several MiB while the client sleeps: must not block here. */
	for (i = 0; i < 2048; i++)
		conhub_write(h, chunk, sizeof(chunk));
	memset(chunk, 'E', 16);
	conhub_write(h, chunk, 16);
	usleep(100000);
	conhub_get_stats(h, &st);
	assert_true(st.skipped > 0);
	/* Drain: the stream ends with the last write. */
	for (;;) {
		struct pollfd p = { .fd = a, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 5000), 1);
		n = read(a, buf, sizeof(buf));
		assert_true(n > 0);
		if (n >= 16 && memcmp(buf + n - 16, "EEEEEEEEEEEEEEEE", 16) == 0)
			break;
	}
	close(a);
	conhub_free(h);
}

/* Client input reaches the guest; what it refuses waits for room. */
static void
test_input_backpressure(void **state)
{
	struct guest g = { .lock = PTHREAD_MUTEX_INITIALIZER, .room = 5 };
	struct conhub *h;
	int a;

	(void)state;
	g.room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(g.room_fd >= 0);
	assert_int_equal(conhub_new(4096, guest_input, &g, g.room_fd, &h), 0);
	assert_int_equal(conhub_listen(h, sock_path), 0);
	a = connect_to(sock_path);
	assert_int_equal(write(a, "hello world", 11), 11);
	wait_input(&g, 5);
	usleep(50000);
	assert_int_equal(guest_in_len(&g), 5);
	/* The guest drained its buffer: the rest comes. */
	pthread_mutex_lock(&g.lock);
	g.room = 100;
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(write(g.room_fd, &(uint64_t){ 1 }, 8), 8);
	wait_input(&g, 11);
	assert_memory_equal(g.in, "hello world", 11);
	close(a);
	conhub_free(h);
	close(g.room_fd);
}

static void
test_limits(void **state)
{
	struct conhub *h;
	int sv[2], i, fds[CONHUB_MAX_CLIENTS];

	(void)state;
	assert_int_equal(conhub_new(100, NULL, NULL, -1, &h), -EINVAL);
	assert_int_equal(conhub_new(CONHUB_HISTORY_MAX + 1, NULL, NULL, -1, &h),
			 -EINVAL);
	assert_int_equal(conhub_new(4096, NULL, NULL, -1, &h), 0);
	for (i = 0; i < CONHUB_MAX_CLIENTS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(conhub_add_client(h, sv[0]), 0);
		fds[i] = sv[1];
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(conhub_add_client(h, sv[0]), -EMFILE);
	/* The refused one was closed. */
	assert_int_equal(read(sv[1], &i, 1), 0);
	close(sv[1]);
	conhub_write(h, (const uint8_t *)"ok", 2);
	for (i = 0; i < CONHUB_MAX_CLIENTS; i++) {
		char buf[2];

		read_exact(fds[i], buf, 2);
		assert_memory_equal(buf, "ok", 2);
		close(fds[i]);
	}
	conhub_free(h);
	conhub_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_history_and_live, setup),
		cmocka_unit_test_setup(test_history_wraps, setup),
		cmocka_unit_test_setup(test_slow_client_skips, setup),
		cmocka_unit_test_setup(test_input_backpressure, setup),
		cmocka_unit_test_setup(test_limits, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
