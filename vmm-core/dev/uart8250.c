/* SPDX-License-Identifier: MIT */
#include "dev/uart8250.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * How long a THR write may wait for a full out_fd before its byte is
 * dropped. After a drop the device stops waiting until a write succeeds
 * again, so a reader that went away costs one wait, not one per byte.
 */
#define UART8250_OUT_WAIT_MS	100

/* The divisor a PC BIOS leaves behind: 9600 baud. */
#define UART8250_DEFAULT_DIVISOR 12

/* In loopback mode the modem outputs drive the modem inputs. */
#define UART_MSR_STATUS (UART_MSR_CTS | UART_MSR_DSR | UART_MSR_RI | \
			 UART_MSR_DCD)
/* Outside loopback the line looks like a terminal that is switched on. */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

struct uart8250 {
	pthread_mutex_t lock;
	struct bus *pio;
	uint16_t base;
	uint32_t gsi;
	struct platform_ops ops;
	int out_fd;
	int input_efd;
	uart8250_output_fn out_cb;
	void *out_opaque;

	/* Guest-visible registers. */
	uint8_t ier;		/* low four bits only, as on a 16550A */
	uint8_t lcr;
	uint8_t mcr;
	uint8_t fcr;		/* ENABLE and TRIGGER bits as last written */
	uint8_t scr;
	uint8_t lsr_err;	/* OE, sticky until LSR is read */
	uint8_t msr_delta;	/* delta bits, cleared when MSR is read */
	uint8_t rbr_last;	/* what an empty RBR reads as */
	uint16_t divisor;
	/* THR is empty and the guest has not yet acknowledged that. */
	bool thre_pending;
	bool irq_level;

	/* RX FIFO, fed from the input buffer unless in loopback mode. */
	uint8_t fifo[UART8250_FIFO_SIZE];
	unsigned int fifo_head;
	unsigned int fifo_count;
	uint8_t input[UART8250_INPUT_SIZE];
	size_t in_head;
	size_t in_count;
	bool input_refused;	/* signal the eventfd once there is room */

	bool out_stalled;
	uint64_t out_dropped;
};

static unsigned int
uart_fifo_depth(const struct uart8250 *u)
{
	return (u->fcr & UART_FCR_ENABLE) ? UART8250_FIFO_SIZE : 1;
}

static unsigned int
uart_rx_trigger(const struct uart8250 *u)
{
	static const unsigned int levels[4] = { 1, 4, 8, 14 };

	if (!(u->fcr & UART_FCR_ENABLE))
		return 1;
	return levels[u->fcr >> 6];
}

static uint8_t
uart_msr_status(const struct uart8250 *u)
{
	uint8_t s = 0;

	if (!(u->mcr & UART_MCR_LOOP))
		return UART_MSR_IDLE;
	if (u->mcr & UART_MCR_DTR)
		s |= UART_MSR_DSR;
	if (u->mcr & UART_MCR_RTS)
		s |= UART_MSR_CTS;
	if (u->mcr & UART_MCR_OUT1)
		s |= UART_MSR_RI;
	if (u->mcr & UART_MCR_OUT2)
		s |= UART_MSR_DCD;
	return s;
}

static void
uart_fifo_push(struct uart8250 *u, uint8_t b)
{
	u->fifo[(u->fifo_head + u->fifo_count) % UART8250_FIFO_SIZE] = b;
	u->fifo_count++;
}

static void
uart_signal_room(struct uart8250 *u)
{
	uint64_t one = 1;
	ssize_t n;

	/* A full counter already means "readable"; nothing else can fail. */
	do {
		n = write(u->input_efd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
}

/*
 * Move input into the RX FIFO while it has room. In loopback mode the
 * receiver hears only the transmitter, so the input waits.
 */
static void
uart_refill(struct uart8250 *u)
{
	if (u->mcr & UART_MCR_LOOP)
		return;
	while (u->fifo_count < uart_fifo_depth(u) && u->in_count > 0) {
		uart_fifo_push(u, u->input[u->in_head]);
		u->in_head = (u->in_head + 1) % UART8250_INPUT_SIZE;
		u->in_count--;
	}
	if (u->input_refused && u->in_count <= UART8250_INPUT_SIZE / 2) {
		u->input_refused = false;
		uart_signal_room(u);
	}
}

static void
uart_clear_rx(struct uart8250 *u)
{
	u->fifo_head = 0;
	u->fifo_count = 0;
}

/* The highest-priority pending interrupt, as the IIR identifies it. */
static uint8_t
uart_iir_id(const struct uart8250 *u)
{
	if ((u->ier & UART_IER_RLSI) && u->lsr_err)
		return UART_IIR_RLSI;
	if ((u->ier & UART_IER_RDI) && u->fifo_count > 0) {
		/*
		 * Below the trigger level a real FIFO raises the character
		 * timeout after four idle character times; we have no idle
		 * time to wait for, so it is pending at once.
		 */
		if (u->fifo_count >= uart_rx_trigger(u))
			return UART_IIR_RDI;
		return UART_IIR_TIMEOUT;
	}
	if ((u->ier & UART_IER_THRI) && u->thre_pending)
		return UART_IIR_THRI;
	if ((u->ier & UART_IER_MSI) && u->msr_delta)
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

/*
 * On a PC the UART's interrupt output reaches the interrupt controller only
 * through the OUT2 gate, and loopback mode disconnects it. Caller holds the
 * lock, so the line moves in the same order as the state it reflects.
 */
static void
uart_update_irq(struct uart8250 *u)
{
	bool level;

	level = uart_iir_id(u) != UART_IIR_NO_INT &&
		(u->mcr & (UART_MCR_OUT2 | UART_MCR_LOOP)) == UART_MCR_OUT2;
	if (level == u->irq_level)
		return;
	u->irq_level = level;
	platform_irq_line(&u->ops, u->gsi, level ? 1 : 0);
}

/*
 * Write one byte to out_fd without ever blocking for long: wait for room
 * at most UART8250_OUT_WAIT_MS (not at all while stalled), then drop.
 */
static void
uart_output(struct uart8250 *u, uint8_t b)
{
	struct pollfd pfd = { .fd = u->out_fd, .events = POLLOUT };
	ssize_t n;
	int r;

	if (u->out_cb)
		u->out_cb(u->out_opaque, &b, 1);
	if (u->out_fd < 0)
		return;
	do {
		r = poll(&pfd, 1, u->out_stalled ? 0 : UART8250_OUT_WAIT_MS);
	} while (r < 0 && errno == EINTR);
	/*
	 * A pipe whose reader is gone says POLLERR: writing would raise
	 * SIGPIPE (the process should ignore it anyway; this avoids the
	 * common case).
	 */
	if (r <= 0 || (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)))
		goto drop;
	do {
		n = write(u->out_fd, &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1)
		goto drop;
	u->out_stalled = false;
	return;
drop:
	/* EAGAIN, EPIPE, a full blocking fd: the console loses the byte. */
	u->out_stalled = true;
	u->out_dropped++;
}

static void
uart_write_thr(struct uart8250 *u, uint8_t v)
{
	if (u->mcr & UART_MCR_LOOP) {
		if (u->fifo_count < uart_fifo_depth(u))
			uart_fifo_push(u, v);
		else
			u->lsr_err |= UART_LSR_OE;
	} else {
		uart_output(u, v);
	}
	/* The byte left at once: THR is empty again and says so. */
	u->thre_pending = true;
}

static void
uart_write_fcr(struct uart8250 *u, uint8_t v)
{
	/* The other bits take effect only together with FIFO enable. */
	if (!(v & UART_FCR_ENABLE)) {
		if (u->fcr & UART_FCR_ENABLE)
			uart_clear_rx(u);
		u->fcr = 0;
	} else {
		if (!(u->fcr & UART_FCR_ENABLE) || (v & UART_FCR_CLR_RX))
			uart_clear_rx(u);
		u->fcr = v & (UART_FCR_ENABLE | UART_FCR_TRIGGER);
	}
	uart_refill(u);
}

static void
uart_write_mcr(struct uart8250 *u, uint8_t v)
{
	uint8_t old = uart_msr_status(u), now, diff;

	u->mcr = v & 0x1f;
	now = uart_msr_status(u);
	diff = old ^ now;
	if (diff & UART_MSR_CTS)
		u->msr_delta |= UART_MSR_DCTS;
	if (diff & UART_MSR_DSR)
		u->msr_delta |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		u->msr_delta |= UART_MSR_TERI;
	if (diff & UART_MSR_DCD)
		u->msr_delta |= UART_MSR_DDCD;
	/* Leaving loopback reconnects the receiver to the input. */
	uart_refill(u);
}

static void
uart_write_reg(struct uart8250 *u, unsigned int reg, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_THR:
		if (dlab)
			u->divisor = (u->divisor & 0xff00) | v;
		else
			uart_write_thr(u, v);
		break;
	case UART_IER:
		if (dlab) {
			u->divisor = (uint16_t)((u->divisor & 0x00ff) | v << 8);
		} else {
			/* Enabling THRI with THR empty interrupts at once. */
			if ((v & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
				u->thre_pending = true;
			u->ier = v & 0x0f;
		}
		break;
	case UART_FCR:
		uart_write_fcr(u, v);
		break;
	case UART_LCR:
		u->lcr = v;
		break;
	case UART_MCR:
		uart_write_mcr(u, v);
		break;
	case UART_SCR:
		u->scr = v;
		break;
	default:
		/* LSR and MSR are read-only (factory test writes). */
		break;
	}
}

static uint8_t
uart_read_reg(struct uart8250 *u, unsigned int reg)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	uint8_t v, id;

	switch (reg) {
	case UART_RBR:
		if (dlab)
			return u->divisor & 0xff;
		if (u->fifo_count > 0) {
			u->rbr_last = u->fifo[u->fifo_head];
			u->fifo_head = (u->fifo_head + 1) % UART8250_FIFO_SIZE;
			u->fifo_count--;
			uart_refill(u);
		}
		return u->rbr_last;
	case UART_IER:
		if (dlab)
			return u->divisor >> 8;
		return u->ier;
	case UART_IIR:
		id = uart_iir_id(u);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if (id == UART_IIR_THRI)
			u->thre_pending = false;
		if (u->fcr & UART_FCR_ENABLE)
			id |= UART_IIR_FIFO;
		return id;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		v = UART_LSR_THRE | UART_LSR_TEMT | u->lsr_err;
		if (u->fifo_count > 0)
			v |= UART_LSR_DR;
		u->lsr_err = 0;
		return v;
	case UART_MSR:
		v = uart_msr_status(u) | u->msr_delta;
		u->msr_delta = 0;
		return v;
	case UART_SCR:
		return u->scr;
	default:
		return 0xff;
	}
}

/*
 * The UART is an 8-bit device: a wider access reaches consecutive
 * registers one byte at a time, as the ISA bus would split it.
 */
static void
uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	bool is_write)
{
	struct uart8250 *u = opaque;
	uint32_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		if (reg >= UART_NR_REGS) {
			if (!is_write)
				data[i] = 0xff;
			continue;
		}
		if (is_write)
			uart_write_reg(u, (unsigned int)reg, data[i]);
		else
			data[i] = uart_read_reg(u, (unsigned int)reg);
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

struct uart8250 *
uart8250_new(struct bus *pio, uint16_t base, uint32_t gsi,
	     const struct platform_ops *p, int out_fd)
{
	struct uart8250 *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->pio = pio;
	u->base = base;
	u->gsi = gsi;
	if (p)
		u->ops = *p;
	u->out_fd = out_fd;
	u->divisor = UART8250_DEFAULT_DIVISOR;
	u->input_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->input_efd < 0) {
		r = errno;
		free(u);
		errno = r;
		return NULL;
	}
	r = pthread_mutex_init(&u->lock, NULL);
	if (r != 0)
		goto fail_efd;
	r = bus_register(pio, base, UART_NR_REGS, uart_io, u, "uart8250");
	if (r < 0) {
		r = -r;
		pthread_mutex_destroy(&u->lock);
		goto fail_efd;
	}
	return u;
fail_efd:
	close(u->input_efd);
	free(u);
	errno = r;
	return NULL;
}

void
uart8250_free(struct uart8250 *u)
{
	if (!u)
		return;
	bus_unregister(u->pio, u->base);
	close(u->input_efd);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

void
uart8250_set_output_cb(struct uart8250 *u, uart8250_output_fn fn,
		       void *opaque)
{
	pthread_mutex_lock(&u->lock);
	u->out_cb = fn;
	u->out_opaque = fn ? opaque : NULL;
	pthread_mutex_unlock(&u->lock);
}

size_t
uart8250_input(struct uart8250 *u, const uint8_t *buf, size_t len)
{
	size_t n, tail, first;

	pthread_mutex_lock(&u->lock);
	n = UART8250_INPUT_SIZE - u->in_count;
	if (n > len)
		n = len;
	if (n < len)
		u->input_refused = true;
	if (n == 0)
		goto out;
	tail = (u->in_head + u->in_count) % UART8250_INPUT_SIZE;
	first = UART8250_INPUT_SIZE - tail;
	if (first > n)
		first = n;
	memcpy(&u->input[tail], buf, first);
	memcpy(u->input, buf + first, n - first);
	u->in_count += n;
	uart_refill(u);
	uart_update_irq(u);
out:
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t
uart8250_input_room(struct uart8250 *u)
{
	size_t room;

	pthread_mutex_lock(&u->lock);
	room = UART8250_INPUT_SIZE - u->in_count;
	pthread_mutex_unlock(&u->lock);
	return room;
}

int
uart8250_input_eventfd(struct uart8250 *u)
{
	return u->input_efd;
}

uint64_t
uart8250_output_dropped(struct uart8250 *u)
{
	uint64_t n;

	pthread_mutex_lock(&u->lock);
	n = u->out_dropped;
	pthread_mutex_unlock(&u->lock);
	return n;
}
