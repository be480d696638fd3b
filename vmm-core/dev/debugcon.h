/* SPDX-License-Identifier: MIT */
/*
 * The firmware debug console: one write-only I/O port (0x402, QEMU's
 * "debugcon" for SeaBIOS) whose bytes go to a file descriptor. Reading the
 * port gives DEBUGCON_READBACK while someone listens, which is how SeaBIOS
 * decides whether to print its debug log there at all; without a listener
 * it reads 0xff and the firmware keeps quiet.
 */
#ifndef VMM_DEV_DEBUGCON_H
#define VMM_DEV_DEBUGCON_H

#include <stdint.h>

#include "bus.h"

#define DEBUGCON_PORT		0x402
#define DEBUGCON_READBACK	0xe9	/* what QEMU's debugcon reads as */

struct debugcon;

/*
 * Register the port on pio. out_fd is borrowed (the caller closes it after
 * debugcon_free) or -1 for no listener. Every byte is written to out_fd at
 * once, on the vCPU thread: a file or a nonblocking fd suits it, since a
 * blocking one that fills up stalls the guest. Bytes a nonblocking fd does
 * not take are dropped and counted. Returns a new reference, or NULL with
 * errno set (EEXIST when the port is taken, ENOMEM).
 */
struct debugcon *debugcon_new(struct bus *pio, uint16_t port, int out_fd);

/* Unregister and free. NULL is a no-op. */
void debugcon_free(struct debugcon *d);

/* Bytes the guest wrote that out_fd did not take (or that had no fd). */
uint64_t debugcon_dropped(struct debugcon *d);

#endif
