/* SPDX-License-Identifier: MIT */
/*
 * The debug port: bytes reach the fd in order, the readback tells the
 * firmware whether anyone listens, a full nonblocking fd drops (and
 * counts) instead of stalling the vCPU, and the port is freed again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "dev/debugcon.h"

static void
outb(struct bus *b, uint8_t v)
{
	assert_true(bus_dispatch(b, DEBUGCON_PORT, &v, 1, true));
}

static uint8_t
inb(struct bus *b)
{
	uint8_t v = 0;

	assert_true(bus_dispatch(b, DEBUGCON_PORT, &v, 1, false));
	return v;
}

static void
test_output_and_readback(void **state)
{
	struct bus pio;
	struct debugcon *d;
	int p[2];
	char buf[16];
	const char *msg = "SeaBIOS\n";
	uint8_t w[2] = { 'o', 'k' };
	size_t i;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(bus_init(&pio, "pio"), 0);
	d = debugcon_new(&pio, DEBUGCON_PORT, p[1]);
	assert_non_null(d);
	assert_int_equal(inb(&pio), DEBUGCON_READBACK);
	for (i = 0; msg[i]; i++)
		outb(&pio, (uint8_t)msg[i]);
	/* Single OUTs, one after the other. */
	assert_true(bus_dispatch(&pio, DEBUGCON_PORT, w, 1, true));
	assert_true(bus_dispatch(&pio, DEBUGCON_PORT, w + 1, 1, true));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read(p[0], buf, sizeof(buf)), 10);
	assert_string_equal(buf, "SeaBIOS\nok");
	assert_int_equal(debugcon_dropped(d), 0);
	/* The neighbours are not ours, nor a word across them. */
	assert_false(bus_dispatch(&pio, DEBUGCON_PORT + 1, w, 1, false));
	assert_false(bus_dispatch(&pio, DEBUGCON_PORT, w, 2, true));
	/* One port per device. */
	errno = 0;
	assert_null(debugcon_new(&pio, DEBUGCON_PORT, p[1]));
	assert_int_equal(errno, EEXIST);
	debugcon_free(d);
	assert_int_equal(pio.nr_ranges, 0);
	debugcon_free(NULL);
	bus_destroy(&pio);
	close(p[0]);
	close(p[1]);
}

static void
test_no_listener(void **state)
{
	struct bus pio;
	struct debugcon *d;

	(void)state;
	assert_int_equal(bus_init(&pio, "pio"), 0);
	d = debugcon_new(&pio, DEBUGCON_PORT, -1);
	assert_non_null(d);
	/* SeaBIOS turns its debug output off when this is not 0xe9. */
	assert_int_equal(inb(&pio), 0xff);
	outb(&pio, 'x');
	outb(&pio, 'y');
	assert_int_equal(debugcon_dropped(d), 2);
	debugcon_free(d);
	bus_destroy(&pio);
}

static void
test_full_fd_drops(void **state)
{
	struct bus pio;
	struct debugcon *d;
	int p[2], size;
	uint64_t i, sent = 0;
	char c;

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	size = fcntl(p[1], F_SETPIPE_SZ, 4096);
	assert_true(size >= 4096);
	assert_int_equal(bus_init(&pio, "pio"), 0);
	d = debugcon_new(&pio, 0x403, p[1]);
	assert_non_null(d);
	for (i = 0; i < (uint64_t)size + 100; i++) {
		uint8_t v = (uint8_t)i;

		assert_true(bus_dispatch(&pio, 0x403, &v, 1, true));
	}
	assert_int_equal(debugcon_dropped(d), 100);
	/* What did go through is the start, in order. */
	while (read(p[0], &c, 1) == 1) {
		assert_int_equal((uint8_t)c, (uint8_t)sent);
		sent++;
	}
	assert_int_equal(sent, (uint64_t)size);
	debugcon_free(d);
	bus_destroy(&pio);
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_and_readback),
		cmocka_unit_test(test_no_listener),
		cmocka_unit_test(test_full_fd_drops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
