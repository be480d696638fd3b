/* SPDX-License-Identifier: MIT */
/*
 * The i8042 without keyboard or mouse: Linux's probe steps (flush,
 * self-test, command byte, AUX loop and toggles), output port, and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "dev/i8042.h"
#include "layout.h"
#include "platform.h"

struct fake_platform {
	unsigned int irq_calls;
	unsigned int stop_calls;
	enum vm_stop_reason stop;
};

struct fixture {
	struct bus pio;
	struct fake_platform fp;
	struct platform_ops ops;
	struct i8042 *k;
};

static void
fake_irq_line(void *opaque, uint32_t gsi, int level)
{
	struct fake_platform *fp = opaque;

	(void)gsi;
	(void)level;
	fp->irq_calls++;
}

static void
fake_request_stop(void *opaque, enum vm_stop_reason r)
{
	struct fake_platform *fp = opaque;

	fp->stop_calls++;
	fp->stop = r;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	f->ops = (struct platform_ops){ fake_irq_line, fake_request_stop,
					&f->fp };
	f->k = i8042_new(&f->pio, &f->ops);
	assert_non_null(f->k);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	i8042_free(f->k);
	assert_int_equal(f->pio.nr_ranges, 0);
	/* The controller never raises an interrupt. */
	assert_int_equal(f->fp.irq_calls, 0);
	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static void
outb(struct fixture *f, uint16_t port, uint8_t v)
{
	assert_true(bus_dispatch(&f->pio, port, &v, 1, true));
}

static uint8_t
inb(struct fixture *f, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_dispatch(&f->pio, port, &v, 1, false));
	return v;
}

static uint8_t
status(struct fixture *f)
{
	return inb(f, PORT_I8042_CMD);
}

/* A command with one reply, the way Linux's __i8042_command polls it. */
static uint8_t
command_reply(struct fixture *f, uint8_t cmd)
{
	assert_int_equal(status(f) & I8042_STR_IBF, 0);
	outb(f, PORT_I8042_CMD, cmd);
	assert_int_equal(status(f) & I8042_STR_OBF, I8042_STR_OBF);
	return inb(f, PORT_I8042_DATA);
}

static void
test_status_and_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t s = status(f);
	int i;

	/* Nothing to read, not inhibited, ready for input; not all ones. */
	assert_int_not_equal(s, 0xff);
	assert_int_equal(s & (I8042_STR_OBF | I8042_STR_IBF), 0);
	assert_int_equal(s & I8042_STR_KEYLOCK, I8042_STR_KEYLOCK);
	assert_int_equal(s & I8042_STR_SYS, I8042_STR_SYS);
	/* i8042_flush: reading data while OBF is set ends at once. */
	for (i = 0; i < 16 && (status(f) & I8042_STR_OBF); i++)
		inb(f, PORT_I8042_DATA);
	assert_int_equal(i, 0);
	/* Port 0x61 belongs to the in-kernel PIT, not to us. */
	{
		uint8_t v = 0;

		assert_false(bus_dispatch(&f->pio, 0x61, &v, 1, false));
		assert_int_equal(v, 0xff);
	}
}

static void
test_self_and_interface_tests(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(command_reply(f, I8042_CMD_SELF_TEST),
			 I8042_SELF_TEST_OK);
	/* The reply was consumed. */
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(status(f) & I8042_STR_CMD, I8042_STR_CMD);
	assert_int_equal(command_reply(f, I8042_CMD_KBD_TEST), 0x00);
	assert_int_equal(command_reply(f, I8042_CMD_AUX_TEST), 0x00);
	assert_int_equal(command_reply(f, 0xa4), 0xf1);
	/* An empty output buffer reads as its last byte. */
	assert_int_equal(inb(f, PORT_I8042_DATA), 0xf1);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	/* An unknown command answers nothing. */
	outb(f, PORT_I8042_CMD, 0xa1);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(f->fp.stop_calls, 0);
}

static void
test_command_byte(void **state)
{
	struct fixture *f = *state;
	uint8_t ctr = command_reply(f, I8042_CMD_READ_CTR);

	/* Linux reads it twice until stable. */
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), ctr);
	assert_int_equal(ctr & I8042_CTR_SYS, I8042_CTR_SYS);

	outb(f, PORT_I8042_CMD, I8042_CMD_WRITE_CTR);
	outb(f, PORT_I8042_DATA, 0x65);
	assert_int_equal(status(f) & I8042_STR_CMD, 0);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x65);

	/* The disable/enable commands move the bits of the command byte. */
	outb(f, PORT_I8042_CMD, I8042_CMD_KBD_ENABLE);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x65 & ~0x10);
	outb(f, PORT_I8042_CMD, I8042_CMD_KBD_DISABLE);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x75);
	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_ENABLE);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x55);
	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_DISABLE);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x75);

	/* The system flag in the status register follows the command byte. */
	outb(f, PORT_I8042_CMD, I8042_CMD_WRITE_CTR);
	outb(f, PORT_I8042_DATA, 0x00);
	assert_int_equal(status(f) & I8042_STR_SYS, 0);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x00);

	/* The other RAM bytes are storage. */
	outb(f, PORT_I8042_CMD, 0x60 + 5);
	outb(f, PORT_I8042_DATA, 0xc3);
	assert_int_equal(command_reply(f, 0x20 + 5), 0xc3);
	assert_int_equal(command_reply(f, I8042_CMD_READ_CTR), 0x00);
}

/* i8042_check_aux: loop test, then the AUXDIS bit toggles. */
static void
test_aux_probe(void **state)
{
	struct fixture *f = *state;

	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_LOOP);
	outb(f, PORT_I8042_DATA, 0x5a);
	assert_int_equal(status(f) & (I8042_STR_OBF | I8042_STR_AUXDATA),
			 I8042_STR_OBF | I8042_STR_AUXDATA);
	assert_int_equal(inb(f, PORT_I8042_DATA), 0x5a);
	assert_int_equal(status(f) & (I8042_STR_OBF | I8042_STR_AUXDATA), 0);

	outb(f, PORT_I8042_CMD, I8042_CMD_KBD_LOOP);
	outb(f, PORT_I8042_DATA, 0xa5);
	assert_int_equal(status(f) & (I8042_STR_OBF | I8042_STR_AUXDATA),
			 I8042_STR_OBF);
	assert_int_equal(inb(f, PORT_I8042_DATA), 0xa5);

	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_DISABLE);
	assert_true(command_reply(f, I8042_CMD_READ_CTR) & I8042_CTR_AUXDIS);
	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_ENABLE);
	assert_false(command_reply(f, I8042_CMD_READ_CTR) & I8042_CTR_AUXDIS);

	/* Bytes for the absent devices go unanswered. */
	outb(f, PORT_I8042_CMD, I8042_CMD_AUX_SEND);
	outb(f, PORT_I8042_DATA, 0xf2);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	outb(f, PORT_I8042_DATA, 0xff);
	assert_int_equal(status(f) & I8042_STR_OBF, 0);
	assert_int_equal(f->fp.stop_calls, 0);
}

static void
test_reset_pulse(void **state)
{
	struct fixture *f = *state;

	outb(f, PORT_I8042_CMD, I8042_CMD_PULSE_RESET);
	assert_int_equal(f->fp.stop_calls, 1);
	assert_int_equal(f->fp.stop, VM_STOP_REBOOT);
	/* 0xff pulses no line. */
	outb(f, PORT_I8042_CMD, 0xff);
	assert_int_equal(f->fp.stop_calls, 1);
	/* Status reads and other commands do not reset either. */
	status(f);
	assert_int_equal(command_reply(f, I8042_CMD_SELF_TEST), 0x55);
	assert_int_equal(f->fp.stop_calls, 1);
}

static void
test_reset_outport(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(command_reply(f, I8042_CMD_READ_OUTPORT) & 0x03, 0x03);
	/* Bit 0 set: A20 games, no reset. */
	outb(f, PORT_I8042_CMD, I8042_CMD_WRITE_OUTPORT);
	outb(f, PORT_I8042_DATA, 0xdf & ~I8042_OUTPORT_A20);
	assert_int_equal(f->fp.stop_calls, 0);
	assert_int_equal(command_reply(f, I8042_CMD_READ_OUTPORT),
			 0xdf & ~I8042_OUTPORT_A20);
	/* Bit 0 clear: reset, once. */
	outb(f, PORT_I8042_CMD, I8042_CMD_WRITE_OUTPORT);
	outb(f, PORT_I8042_DATA, 0xfe);
	assert_int_equal(f->fp.stop_calls, 1);
	assert_int_equal(f->fp.stop, VM_STOP_REBOOT);
	/* The data byte was consumed by the command: 0xfe again is no reset. */
	outb(f, PORT_I8042_DATA, 0xfe);
	assert_int_equal(f->fp.stop_calls, 1);
}

static void
test_errors_and_wide_access(void **state)
{
	struct fixture *f = *state;
	uint8_t d[4] = { 0, 0, 0, 0 };

	errno = 0;
	assert_null(i8042_new(&f->pio, &f->ops));
	assert_int_equal(errno, EEXIST);
	/* The failed constructor left the first controller's ports alone. */
	assert_int_equal(f->pio.nr_ranges, 2);
	i8042_free(NULL);

	/* Each port is one byte: a wider access is nobody's. */
	assert_false(bus_dispatch(&f->pio, PORT_I8042_DATA, d, 2, false));
	assert_int_equal(d[0] & d[1], 0xff);
	assert_false(bus_dispatch(&f->pio, PORT_I8042_CMD, d, 4, true));
	assert_int_equal(f->fp.stop_calls, 0);

	/* Without platform ops the reset is a no-op, not a crash. */
	{
		struct bus pio2;
		struct i8042 *k2;
		uint8_t v = I8042_CMD_PULSE_RESET;

		assert_int_equal(bus_init(&pio2, "pio2"), 0);
		k2 = i8042_new(&pio2, NULL);
		assert_non_null(k2);
		assert_true(bus_dispatch(&pio2, PORT_I8042_CMD, &v, 1, true));
		i8042_free(k2);
		assert_int_equal(pio2.nr_ranges, 0);
		bus_destroy(&pio2);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_and_flush, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_self_and_interface_tests,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_byte, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_aux_probe, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_pulse, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reset_outport, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_errors_and_wide_access,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
