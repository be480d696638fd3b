/* SPDX-License-Identifier: MIT */
/*
 * A 16550A UART on port I/O, the guest's serial console. Linux's 8250
 * driver probes it as a 16550A (scratch register, loopback, FIFO).
 *
 * Transmit: every byte the guest writes to THR goes to out_fd at once (the
 * transmitter is always empty, so LSR THRE and TEMT stay set) and to the
 * optional output callback. Receive: the host queues bytes with
 * uart8250_input() into a bounded input buffer that feeds the 16-byte RX
 * FIFO as the guest drains it. The interrupt is a level on one GSI, raised
 * while an enabled condition is pending and the guest has set MCR OUT2 (the
 * PC's IRQ gate) outside loopback mode.
 *
 * Room for more input: uart8250_input() accepts what fits and returns the
 * count. Once it has refused bytes, the device signals the eventfd returned
 * by uart8250_input_eventfd() when the guest has drained the input buffer to
 * half full or less; the caller polls that fd, reads it to reset it and
 * retries. uart8250_input_room() tells the free space at any time.
 */
#ifndef VMM_DEV_UART8250_H
#define VMM_DEV_UART8250_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "platform.h"

/* Registers (offsets from the base port) and their bits. */
#define UART_RBR	0	/* read, DLAB=0 */
#define UART_THR	0	/* write, DLAB=0 */
#define UART_DLL	0	/* DLAB=1 */
#define UART_IER	1	/* DLAB=0 */
#define UART_DLM	1	/* DLAB=1 */
#define UART_IIR	2	/* read */
#define UART_FCR	2	/* write */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7
#define UART_NR_REGS	8

#define UART_IER_RDI	0x01	/* received data available */
#define UART_IER_THRI	0x02	/* THR empty */
#define UART_IER_RLSI	0x04	/* receiver line status */
#define UART_IER_MSI	0x08	/* modem status */

#define UART_IIR_NO_INT	0x01
#define UART_IIR_MSI	0x00
#define UART_IIR_THRI	0x02
#define UART_IIR_RDI	0x04
#define UART_IIR_RLSI	0x06
#define UART_IIR_TIMEOUT 0x0c
#define UART_IIR_ID	0x0e
#define UART_IIR_FIFO	0xc0	/* both bits set: FIFOs enabled (16550A) */

#define UART_FCR_ENABLE	0x01
#define UART_FCR_CLR_RX	0x02
#define UART_FCR_CLR_TX	0x04
#define UART_FCR_TRIGGER 0xc0

#define UART_LCR_DLAB	0x80

#define UART_MCR_DTR	0x01
#define UART_MCR_RTS	0x02
#define UART_MCR_OUT1	0x04
#define UART_MCR_OUT2	0x08
#define UART_MCR_LOOP	0x10

#define UART_LSR_DR	0x01
#define UART_LSR_OE	0x02
#define UART_LSR_PE	0x04
#define UART_LSR_FE	0x08
#define UART_LSR_BI	0x10
#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40

#define UART_MSR_DCTS	0x01
#define UART_MSR_DDSR	0x02
#define UART_MSR_TERI	0x04
#define UART_MSR_DDCD	0x08
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_RI	0x40
#define UART_MSR_DCD	0x80

#define UART8250_FIFO_SIZE	16
#define UART8250_INPUT_SIZE	4096	/* the input buffer behind the FIFO */

struct uart8250;

/*
 * Called with each byte the guest transmits (outside loopback), whether or
 * not out_fd took it. Runs on the vCPU thread with the device lock held: it
 * must be quick and must not call back into this device.
 */
typedef void (*uart8250_output_fn)(void *opaque, const uint8_t *buf,
				   size_t len);

/*
 * Create a 16550A at base (8 ports) on pio, interrupting on gsi. *p is
 * copied; p may be NULL (no interrupts), and p->opaque must outlive the
 * device. out_fd is borrowed (it stays the caller's to close) and may be -1
 * to discard output; it may be blocking or not: the device never waits more
 * than about 100 ms for it, and then drops bytes (counted) until it is
 * writable again. Returns a new reference, or NULL with errno set (EEXIST
 * when the ports are taken, ENOMEM, or an eventfd error).
 */
struct uart8250 *uart8250_new(struct bus *pio, uint16_t base, uint32_t gsi,
			      const struct platform_ops *p, int out_fd);

/* Unregister from the bus, close the eventfd and free. NULL is a no-op. */
void uart8250_free(struct uart8250 *u);

/* Set (or with fn NULL, clear) the output callback; opaque is borrowed. */
void uart8250_set_output_cb(struct uart8250 *u, uart8250_output_fn fn,
			    void *opaque);

/*
 * Queue bytes for the guest to read. Returns how many were accepted (at
 * most the free space of the input buffer); retry the rest once the input
 * eventfd fires. Raises the interrupt when the guest enabled it.
 */
size_t uart8250_input(struct uart8250 *u, const uint8_t *buf, size_t len);

/* Free bytes in the input buffer now. */
size_t uart8250_input_room(struct uart8250 *u);

/*
 * An eventfd (nonblocking, close-on-exec; borrowed, closed by
 * uart8250_free) that becomes readable when input was refused and the guest
 * has since drained the input buffer to half full or less.
 */
int uart8250_input_eventfd(struct uart8250 *u);

/* Bytes the guest transmitted that out_fd did not take. */
uint64_t uart8250_output_dropped(struct uart8250 *u);

#endif
