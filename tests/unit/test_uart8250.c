/* SPDX-License-Identifier: MIT */
/*
 * The 16550A against a real port-I/O bus, a fake platform recording the
 * interrupt line, and a pipe as the console: Linux's probe, the divisor
 * latch, transmit and receive, interrupt identification and overflow.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "dev/uart8250.h"
#include "layout.h"
#include "platform.h"

#define BASE PORT_COM1
#define GSI IRQ_COM1

struct fake_platform {
	int level[32];
	unsigned int irq_calls;
	unsigned int redundant_calls;	/* a line set to what it already was */
	unsigned int stop_calls;
};

struct fixture {
	struct bus pio;
	struct fake_platform fp;
	struct platform_ops ops;
	int pipe_rd, pipe_wr;
	struct uart8250 *u;
	uint8_t cb_buf[256];
	size_t cb_len;
};

static void
fake_irq_line(void *opaque, uint32_t gsi, int level)
{
	struct fake_platform *fp = opaque;

	assert_true(gsi < 32);
	if (fp->level[gsi] == level)
		fp->redundant_calls++;
	fp->level[gsi] = level;
	fp->irq_calls++;
}

static void
fake_request_stop(void *opaque, enum vm_stop_reason r)
{
	struct fake_platform *fp = opaque;

	(void)r;
	fp->stop_calls++;
}

static void
record_output(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	assert_true(f->cb_len + len <= sizeof(f->cb_buf));
	memcpy(f->cb_buf + f->cb_len, buf, len);
	f->cb_len += len;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fds[2];

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	f->ops = (struct platform_ops){ fake_irq_line, fake_request_stop,
					&f->fp };
	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	f->pipe_rd = fds[0];
	f->pipe_wr = fds[1];
	/* The test reads the console without blocking. */
	assert_int_equal(fcntl(f->pipe_rd, F_SETFL, O_NONBLOCK), 0);
	f->u = uart8250_new(&f->pio, BASE, GSI, &f->ops, f->pipe_wr);
	assert_non_null(f->u);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	uart8250_free(f->u);
	/* The ports are free again once the device is gone. */
	assert_int_equal(f->pio.nr_ranges, 0);
	if (f->pipe_rd >= 0)
		close(f->pipe_rd);
	close(f->pipe_wr);
	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static void
out8(struct fixture *f, unsigned int reg, uint8_t v)
{
	assert_true(bus_dispatch(&f->pio, BASE + reg, &v, 1, true));
}

static uint8_t
in8(struct fixture *f, unsigned int reg)
{
	uint8_t v = 0x5a;

	assert_true(bus_dispatch(&f->pio, BASE + reg, &v, 1, false));
	return v;
}

static int
irq(struct fixture *f)
{
	return f->fp.level[GSI];
}

static ssize_t
drain_pipe(struct fixture *f, uint8_t *buf, size_t len)
{
	ssize_t n = read(f->pipe_rd, buf, len);

	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	return n;
}

/* The steps of Linux's autoconfig() and autoconfig_16550a(), in order. */
static void
test_linux_probe(void **state)
{
	struct fixture *f = *state;
	uint8_t s1, s2, save_mcr;

	/* IER: the low four bits are writable, and only they. */
	out8(f, UART_IER, 0);
	assert_int_equal(in8(f, UART_IER) & 0x0f, 0);
	out8(f, UART_IER, 0x0f);
	assert_int_equal(in8(f, UART_IER), 0x0f);
	out8(f, UART_IER, 0);

	/* Scratch register. */
	out8(f, UART_SCR, 0x55);
	assert_int_equal(in8(f, UART_SCR), 0x55);
	out8(f, UART_SCR, 0xaa);
	assert_int_equal(in8(f, UART_SCR), 0xaa);

	/* Loopback: RTS|OUT2 must come back as CTS|DCD. */
	save_mcr = in8(f, UART_MCR);
	out8(f, UART_MCR, UART_MCR_LOOP | 0x0a);
	assert_int_equal(in8(f, UART_MSR) & 0xf0, 0x90);
	out8(f, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	assert_int_equal(in8(f, UART_MSR) & 0xf0, UART_MSR_DSR | UART_MSR_RI);
	out8(f, UART_MCR, save_mcr);
	assert_int_equal(in8(f, UART_MSR) & 0xf0,
			 UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS);

	/* FIFO detection: IIR bits 6-7 both set means 16550A. */
	out8(f, UART_LCR, 0xbf);
	out8(f, 2, 0);		/* EFR on a 16650, FCR here */
	out8(f, UART_LCR, 0);
	out8(f, UART_FCR, UART_FCR_ENABLE);
	assert_int_equal(in8(f, UART_IIR) >> 6, 3);
	assert_int_equal(in8(f, UART_IIR), 0xc1);

	/* No EFR behind DLAB or LCR 0xbf: not a 16650 or a 16C950. */
	out8(f, UART_LCR, 0x80);
	assert_int_not_equal(in8(f, 2), 0);
	out8(f, UART_LCR, 0xbf);
	assert_int_not_equal(in8(f, 2), 0);

	/* Not a National SuperIO: EXCR1 does not track MCR LOOP. */
	out8(f, UART_LCR, 0);
	s1 = in8(f, UART_MCR);
	out8(f, UART_LCR, 0xe0);
	s2 = in8(f, 2);
	assert_int_equal((s1 ^ s2) & UART_MCR_LOOP, 0);
	out8(f, UART_LCR, 0);
	out8(f, UART_MCR, s1 ^ UART_MCR_LOOP);
	out8(f, UART_LCR, 0xe0);
	s2 = in8(f, 2);
	out8(f, UART_LCR, 0);
	out8(f, UART_MCR, s1);
	assert_int_equal((s1 ^ s2) & UART_MCR_LOOP, 0);

	/* Not a TI16750: no 64-byte FIFO bit with or without DLAB. */
	out8(f, UART_FCR, UART_FCR_ENABLE | 0x20);
	s1 = in8(f, UART_IIR) & 0xe0;
	out8(f, UART_FCR, UART_FCR_ENABLE);
	out8(f, UART_LCR, 0x80);
	out8(f, UART_FCR, UART_FCR_ENABLE | 0x20);
	s2 = in8(f, UART_IIR) & 0xe0;
	out8(f, UART_FCR, UART_FCR_ENABLE);
	out8(f, UART_LCR, 0);
	assert_int_equal(s1, 0xc0);
	assert_int_equal(s2, 0xc0);

	/* Not an XScale: IER bit 6 (UUE) does not stick. */
	out8(f, UART_IER, 0x40);
	assert_int_equal(in8(f, UART_IER) & 0x40, 0);
	out8(f, UART_IER, 0);

	/* Startup's safety check and an idle transmitter. */
	out8(f, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLR_RX | UART_FCR_CLR_TX);
	s1 = in8(f, UART_LSR);
	assert_int_not_equal(s1, 0xff);
	assert_int_equal(s1, UART_LSR_THRE | UART_LSR_TEMT);

	/* OUT2 was only ever set in loopback: the line never moved. */
	assert_int_equal(f->fp.irq_calls, 0);
	assert_int_equal(f->fp.stop_calls, 0);
}

static void
test_divisor_latch(void **state)
{
	struct fixture *f = *state;

	out8(f, UART_IER, UART_IER_MSI);
	out8(f, UART_LCR, UART_LCR_DLAB | 0x03);
	/* The BIOS default is 9600 baud. */
	assert_int_equal(in8(f, UART_DLL), 12);
	assert_int_equal(in8(f, UART_DLM), 0);
	out8(f, UART_DLL, 0x01);
	out8(f, UART_DLM, 0x02);
	assert_int_equal(in8(f, UART_DLL), 0x01);
	assert_int_equal(in8(f, UART_DLM), 0x02);
	assert_int_equal(in8(f, UART_LCR), UART_LCR_DLAB | 0x03);

	/* DLAB clear: the same offsets are RBR/THR and IER again. */
	out8(f, UART_LCR, 0x03);
	assert_int_equal(in8(f, UART_IER), UART_IER_MSI);
	out8(f, UART_THR, 'q');
	{
		uint8_t c = 0;

		assert_int_equal(drain_pipe(f, &c, 1), 1);
		assert_int_equal(c, 'q');
	}
	/* The divisor was not touched by those accesses. */
	out8(f, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(in8(f, UART_DLL), 0x01);
	assert_int_equal(in8(f, UART_DLM), 0x02);
	/* A write with DLAB set never transmits. */
	out8(f, UART_DLL, 'x');
	{
		uint8_t c;

		assert_int_equal(drain_pipe(f, &c, 1), 0);
	}
}

static void
test_tx_to_pipe(void **state)
{
	struct fixture *f = *state;
	const char *msg = "hello, console\n";
	uint8_t buf[64];
	size_t i;

	uart8250_set_output_cb(f->u, record_output, f);
	for (i = 0; i < strlen(msg); i++) {
		assert_int_equal(in8(f, UART_LSR) & UART_LSR_THRE,
				 UART_LSR_THRE);
		out8(f, UART_THR, (uint8_t)msg[i]);
	}
	assert_int_equal(drain_pipe(f, buf, sizeof(buf)), strlen(msg));
	assert_memory_equal(buf, msg, strlen(msg));
	assert_int_equal(f->cb_len, strlen(msg));
	assert_memory_equal(f->cb_buf, msg, strlen(msg));
	assert_int_equal(uart8250_output_dropped(f->u), 0);

	/* Loopback: the byte goes to the receiver, not the console. */
	out8(f, UART_MCR, UART_MCR_LOOP);
	out8(f, UART_THR, 'L');
	assert_int_equal(drain_pipe(f, buf, sizeof(buf)), 0);
	assert_int_equal(f->cb_len, strlen(msg));
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	assert_int_equal(in8(f, UART_RBR), 'L');
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, 0);

	/* A cleared callback is not called any more. */
	out8(f, UART_MCR, 0);
	uart8250_set_output_cb(f->u, NULL, NULL);
	out8(f, UART_THR, '!');
	assert_int_equal(f->cb_len, strlen(msg));
	assert_int_equal(drain_pipe(f, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '!');
}

static void
test_rx_input_and_irq(void **state)
{
	struct fixture *f = *state;

	out8(f, UART_FCR, UART_FCR_ENABLE);	/* trigger level 1 */
	out8(f, UART_IER, UART_IER_RDI);
	out8(f, UART_MCR, UART_MCR_OUT2 | UART_MCR_DTR | UART_MCR_RTS);
	assert_int_equal(irq(f), 0);
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, 0);

	assert_int_equal(uart8250_input(f->u, (const uint8_t *)"abc", 3), 3);
	assert_int_equal(irq(f), 1);
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_RDI);
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	assert_int_equal(in8(f, UART_RBR), 'a');
	assert_int_equal(in8(f, UART_RBR), 'b');
	assert_int_equal(irq(f), 1);
	assert_int_equal(in8(f, UART_RBR), 'c');
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(irq(f), 0);
	assert_int_equal(in8(f, UART_IIR), 0xc1);

	/* Below a trigger level of 14: the character timeout identifies. */
	out8(f, UART_FCR, UART_FCR_ENABLE | 0xc0);
	assert_int_equal(uart8250_input(f->u, (const uint8_t *)"xy", 2), 2);
	assert_int_equal(irq(f), 1);
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_TIMEOUT);
	/* Clearing the RX FIFO drops what it held and the interrupt. */
	out8(f, UART_FCR, UART_FCR_ENABLE | UART_FCR_CLR_RX | 0xc0);
	assert_int_equal(irq(f), 0);
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, 0);

	/* OUT2 gates the line: pending data, gate closed, then opened. */
	out8(f, UART_MCR, 0);
	assert_int_equal(uart8250_input(f->u, (const uint8_t *)"z", 1), 1);
	assert_int_equal(irq(f), 0);
	out8(f, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(irq(f), 1);
	/* So does IER. */
	out8(f, UART_IER, 0);
	assert_int_equal(irq(f), 0);
	assert_int_equal(in8(f, UART_RBR), 'z');

	/* Without FIFOs the holding register is fed byte by byte. */
	out8(f, UART_FCR, 0);
	out8(f, UART_IER, UART_IER_RDI);
	assert_int_equal(uart8250_input(f->u, (const uint8_t *)"123", 3), 3);
	assert_int_equal(in8(f, UART_IIR), UART_IIR_RDI);
	assert_int_equal(in8(f, UART_RBR), '1');
	assert_int_equal(in8(f, UART_RBR), '2');
	assert_int_equal(in8(f, UART_RBR), '3');
	assert_int_equal(in8(f, UART_IIR), UART_IIR_NO_INT);
	/* An empty RBR repeats the last byte and raises nothing. */
	assert_int_equal(in8(f, UART_RBR), '3');
	assert_int_equal(irq(f), 0);
	assert_int_equal(f->fp.redundant_calls, 0);
}

static void
test_thre_irq(void **state)
{
	struct fixture *f = *state;
	uint8_t iir1, iir2, c;

	out8(f, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(irq(f), 0);

	/* Enabling THRI with THR empty interrupts at once. */
	out8(f, UART_IER, UART_IER_THRI);
	assert_int_equal(irq(f), 1);
	/* Reading IIR, which reports THRE, acknowledges it. */
	assert_int_equal(in8(f, UART_IIR), UART_IIR_THRI);
	assert_int_equal(irq(f), 0);
	assert_int_equal(in8(f, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_THRE, UART_LSR_THRE);

	/* Writing THR re-arms it once the byte has left (at once here). */
	out8(f, UART_THR, 'A');
	assert_int_equal(irq(f), 1);
	out8(f, UART_IER, 0);
	assert_int_equal(irq(f), 0);
	assert_int_equal(drain_pipe(f, &c, 1), 1);

	/* Linux's UART_BUG_THRE test: THRE must be reasserted. */
	out8(f, UART_IER, UART_IER_THRI);
	iir1 = in8(f, UART_IIR);
	out8(f, UART_IER, 0);
	out8(f, UART_IER, UART_IER_THRI);
	iir2 = in8(f, UART_IIR);
	out8(f, UART_IER, 0);
	assert_int_equal(iir1 & UART_IIR_NO_INT, 0);
	assert_int_equal(iir2 & UART_IIR_NO_INT, 0);
	assert_int_equal(irq(f), 0);

	/* Rewriting IER with THRI already set does not re-arm. */
	out8(f, UART_IER, UART_IER_THRI);
	assert_int_equal(in8(f, UART_IIR), UART_IIR_THRI);
	out8(f, UART_IER, UART_IER_THRI | UART_IER_MSI);
	assert_int_equal(in8(f, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(irq(f), 0);
	assert_int_equal(f->fp.redundant_calls, 0);
}

/* Every source at once, in loopback so that the line stays quiet. */
static void
test_iir_priorities(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	out8(f, UART_FCR, UART_FCR_ENABLE);
	out8(f, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT2);
	out8(f, UART_IER, 0x0f);
	/* 17 bytes into a 16-byte FIFO: an overrun. */
	for (i = 0; i < 17; i++)
		out8(f, UART_THR, (uint8_t)('a' + i));
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_RLSI);
	assert_int_equal(in8(f, UART_LSR), UART_LSR_OE | UART_LSR_DR |
			 UART_LSR_THRE | UART_LSR_TEMT);
	/* LSR read clears OE. */
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_OE, 0);
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_RDI);
	for (i = 0; i < 16; i++)
		assert_int_equal(in8(f, UART_RBR), 'a' + i);
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_THRI);
	/* Entering loopback dropped CTS and DSR; OUT2 keeps DCD up. */
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_MSI);
	assert_int_equal(in8(f, UART_MSR), UART_MSR_DCD | UART_MSR_DCTS |
			 UART_MSR_DDSR);
	assert_int_equal(in8(f, UART_IIR), 0xc1);
	/* Loopback disconnects the interrupt output. */
	assert_int_equal(f->fp.irq_calls, 0);

	/* RI trailing edge; leaving loopback then raises a modem interrupt. */
	out8(f, UART_MCR, UART_MCR_LOOP | UART_MCR_OUT1);
	assert_int_equal(in8(f, UART_MSR) & 0x0f, UART_MSR_DDCD);
	out8(f, UART_MCR, UART_MCR_LOOP);
	assert_int_equal(in8(f, UART_MSR), UART_MSR_TERI);
	out8(f, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(irq(f), 1);
	assert_int_equal(in8(f, UART_IIR), 0xc0 | UART_IIR_MSI);
	assert_int_equal(in8(f, UART_MSR), 0xb0 | UART_MSR_DCTS |
			 UART_MSR_DDSR | UART_MSR_DDCD);
	assert_int_equal(irq(f), 0);
	assert_int_equal(f->fp.redundant_calls, 0);
}

static bool
efd_readable(int efd)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

static void
test_input_overflow(void **state)
{
	struct fixture *f = *state;
	enum { TOTAL = 5000 };
	static uint8_t pattern[TOTAL];
	int efd = uart8250_input_eventfd(f->u);
	size_t got, i, sent;
	uint64_t cnt;

	for (i = 0; i < TOTAL; i++)
		pattern[i] = (uint8_t)(i * 7 + i / 251);
	assert_true(efd >= 0);
	assert_int_equal(uart8250_input_room(f->u), UART8250_INPUT_SIZE);
	out8(f, UART_FCR, UART_FCR_ENABLE);

	sent = uart8250_input(f->u, pattern, TOTAL);
	assert_int_equal(sent, UART8250_INPUT_SIZE);
	/* The FIFO took 16 of them at once. */
	assert_int_equal(uart8250_input_room(f->u), UART8250_FIFO_SIZE);
	assert_false(efd_readable(efd));
	/* Then only what the FIFO made room for, then nothing. */
	assert_int_equal(uart8250_input(f->u, pattern + sent, 100), 16);
	sent += 16;
	assert_int_equal(uart8250_input(f->u, pattern + sent, 100), 0);
	assert_int_equal(uart8250_input(f->u, NULL, 0), 0);

	/* The input buffer holds 4096; half of it is 2048 left. */
	for (i = 0; i < 2048 - 1; i++)
		assert_int_equal(in8(f, UART_RBR), pattern[i]);
	assert_false(efd_readable(efd));
	assert_int_equal(in8(f, UART_RBR), pattern[i++]);
	assert_true(efd_readable(efd));
	assert_int_equal(read(efd, &cnt, sizeof(cnt)), sizeof(cnt));
	assert_int_equal(cnt, 1);

	/* The caller retries the rest. */
	got = uart8250_input(f->u, pattern + sent, TOTAL - sent);
	assert_int_equal(got, TOTAL - sent);
	for (; i < TOTAL; i++) {
		assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, UART_LSR_DR);
		assert_int_equal(in8(f, UART_RBR), pattern[i]);
	}
	assert_int_equal(in8(f, UART_LSR) & UART_LSR_DR, 0);
	assert_int_equal(uart8250_input_room(f->u), UART8250_INPUT_SIZE);
	/* No refusal since the last signal: no further signal. */
	assert_false(efd_readable(efd));
}

/* Accesses wider than a byte reach consecutive registers. */
static void
test_odd_accesses(void **state)
{
	struct fixture *f = *state;
	uint8_t w[2] = { 0x03, UART_MCR_OUT2 };
	uint8_t d[4];

	assert_true(bus_dispatch(&f->pio, BASE + UART_LCR, w, 2, true));
	assert_int_equal(in8(f, UART_LCR), 0x03);
	assert_int_equal(in8(f, UART_MCR), UART_MCR_OUT2);
	out8(f, UART_SCR, 0x77);
	assert_true(bus_dispatch(&f->pio, BASE + UART_MCR, d, 4, false));
	assert_int_equal(d[0], UART_MCR_OUT2);
	assert_int_equal(d[1], UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(d[2], 0xb0);
	assert_int_equal(d[3], 0x77);
	/* Straddling the end of the range: nobody owns it, all ones. */
	memset(d, 0, sizeof(d));
	assert_false(bus_dispatch(&f->pio, BASE + 6, d, 4, false));
	assert_int_equal(d[0] & d[1] & d[2] & d[3], 0xff);
	/* Writes to read-only LSR and MSR change nothing. */
	out8(f, UART_LSR, 0xff);
	out8(f, UART_MSR, 0x00);
	assert_int_equal(in8(f, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(in8(f, UART_MSR), 0xb0);
	assert_int_equal(f->fp.irq_calls, 0);
}

static void
fill_pipe(int fd)
{
	static const uint8_t junk[4096];
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
	while (write(fd, junk, sizeof(junk)) > 0)
		;
	assert_int_equal(errno, EAGAIN);
	while (write(fd, junk, 1) > 0)
		;
	assert_int_equal(fcntl(fd, F_SETFL, fl), 0);
}

static double
elapsed_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A console nobody reads: bytes are dropped and counted, never waited on. */
static void
full_pipe_case(struct fixture *f, bool nonblocking)
{
	static uint8_t buf[1 << 17];
	struct timespec t0;
	ssize_t n;
	int i;

	if (nonblocking)
		assert_int_equal(fcntl(f->pipe_wr, F_SETFL, O_NONBLOCK), 0);
	fill_pipe(f->pipe_wr);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 20; i++)
		out8(f, UART_THR, 'D');
	/* One bounded wait (~100 ms), not twenty. */
	assert_true(elapsed_since(&t0) < 1.0);
	assert_int_equal(uart8250_output_dropped(f->u), 20);
	while ((n = drain_pipe(f, buf, sizeof(buf))) > 0)
		;
	out8(f, UART_THR, 'Z');
	assert_int_equal(drain_pipe(f, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], 'Z');
	assert_int_equal(uart8250_output_dropped(f->u), 20);
}

static void
test_full_pipe_nonblocking(void **state)
{
	full_pipe_case(*state, true);
}

static void
test_full_pipe_blocking(void **state)
{
	full_pipe_case(*state, false);
}

/* The console's reader went away: bytes are dropped, no SIGPIPE. */
static void
test_reader_gone(void **state)
{
	struct fixture *f = *state;
	int i;

	close(f->pipe_rd);
	f->pipe_rd = -1;
	for (i = 0; i < 5; i++)
		out8(f, UART_THR, 'x');
	assert_int_equal(uart8250_output_dropped(f->u), 5);
	/* The guest's view is unchanged: the transmitter stays empty. */
	assert_int_equal(in8(f, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
}

static void
test_no_out_fd_and_errors(void **state)
{
	struct fixture *f = *state;
	struct uart8250 *u2;

	/* The ports are taken by the fixture's UART. */
	errno = 0;
	assert_null(uart8250_new(&f->pio, BASE + 4, GSI, &f->ops, -1));
	assert_int_equal(errno, EEXIST);
	uart8250_free(NULL);

	/* A second UART without an fd and without a platform. */
	u2 = uart8250_new(&f->pio, 0x2f8, 3, NULL, -1);
	assert_non_null(u2);
	uart8250_set_output_cb(u2, record_output, f);
	{
		uint8_t v = 'k';

		assert_true(bus_dispatch(&f->pio, 0x2f8, &v, 1, true));
		v = UART_MCR_OUT2;
		assert_true(bus_dispatch(&f->pio, 0x2f8 + UART_MCR, &v, 1,
					 true));
		v = UART_IER_THRI;
		assert_true(bus_dispatch(&f->pio, 0x2f8 + UART_IER, &v, 1,
					 true));
	}
	assert_int_equal(f->cb_len, 1);
	assert_int_equal(f->cb_buf[0], 'k');
	assert_int_equal(uart8250_output_dropped(u2), 0);
	assert_int_equal(f->fp.irq_calls, 0);
	uart8250_free(u2);
	assert_int_equal(f->pio.nr_ranges, 1);
}

enum { STRESS_WRITERS = 4, STRESS_BYTES = 2000, STRESS_INPUT = 20000 };

struct stress {
	struct fixture *f;
	size_t received;
	bool in_order;
};

static void *
stress_writer(void *arg)
{
	struct fixture *f = arg;
	int i;

	for (i = 0; i < STRESS_BYTES; i++) {
		uint8_t v = 'w';

		bus_dispatch(&f->pio, BASE + UART_THR, &v, 1, true);
		/* Interleave register traffic a driver would make. */
		bus_dispatch(&f->pio, BASE + UART_LSR, &v, 1, false);
		bus_dispatch(&f->pio, BASE + UART_IIR, &v, 1, false);
	}
	return NULL;
}

static void *
stress_input(void *arg)
{
	struct fixture *f = arg;
	uint8_t buf[512];
	size_t sent = 0, i;

	while (sent < STRESS_INPUT) {
		size_t n = STRESS_INPUT - sent, got;

		if (n > sizeof(buf))
			n = sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = (uint8_t)(sent + i);
		got = uart8250_input(f->u, buf, n);
		sent += got;
		if (got < n) {
			struct pollfd pfd = {
				.fd = uart8250_input_eventfd(f->u),
				.events = POLLIN,
			};
			uint64_t cnt;

			/* Wait for room as a console relay would. */
			if (poll(&pfd, 1, 1000) == 1)
				assert_int_equal(read(pfd.fd, &cnt,
						      sizeof(cnt)), 8);
		}
	}
	return NULL;
}

static void *
stress_reader(void *arg)
{
	struct stress *st = arg;
	struct fixture *f = st->f;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	st->in_order = true;
	while (st->received < STRESS_INPUT) {
		uint8_t lsr = in8(f, UART_LSR), v;

		if (!(lsr & UART_LSR_DR)) {
			struct timespec t;

			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec > 30)
				break;
			continue;
		}
		v = in8(f, UART_RBR);
		if (v != (uint8_t)st->received)
			st->in_order = false;
		st->received++;
	}
	return NULL;
}

/* vCPU threads and the console relay at once: nothing lost or reordered. */
static void
test_concurrent(void **state)
{
	struct fixture *f = *state;
	pthread_t w[STRESS_WRITERS], in, rd;
	struct stress st = { .f = f };
	static uint8_t buf[1 << 16];
	size_t out = 0;
	ssize_t n;
	int i;

	out8(f, UART_FCR, UART_FCR_ENABLE);
	out8(f, UART_MCR, UART_MCR_OUT2);
	out8(f, UART_IER, UART_IER_RDI | UART_IER_THRI);
	for (i = 0; i < STRESS_WRITERS; i++)
		assert_int_equal(pthread_create(&w[i], NULL, stress_writer, f),
				 0);
	assert_int_equal(pthread_create(&in, NULL, stress_input, f), 0);
	assert_int_equal(pthread_create(&rd, NULL, stress_reader, &st), 0);
	/* The console side drains the pipe meanwhile. */
	while (out < STRESS_WRITERS * STRESS_BYTES) {
		struct pollfd pfd = { .fd = f->pipe_rd, .events = POLLIN };

		if (poll(&pfd, 1, 5000) != 1)
			break;
		n = drain_pipe(f, buf, sizeof(buf));
		for (ssize_t j = 0; j < n; j++)
			assert_int_equal(buf[j], 'w');
		out += (size_t)n;
	}
	for (i = 0; i < STRESS_WRITERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(in, NULL);
	pthread_join(rd, NULL);
	assert_int_equal(out + uart8250_output_dropped(f->u),
			 STRESS_WRITERS * STRESS_BYTES);
	assert_int_equal(st.received, STRESS_INPUT);
	assert_true(st.in_order);
	/* The line moved only on changes, whatever the interleaving. */
	assert_int_equal(f->fp.redundant_calls, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_linux_probe, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_divisor_latch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_tx_to_pipe, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rx_input_and_irq, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_thre_irq, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_iir_priorities, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_input_overflow, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_odd_accesses, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_pipe_nonblocking,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_pipe_blocking,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_gone, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_out_fd_and_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
