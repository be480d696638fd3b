/* SPDX-License-Identifier: MIT */
#include "dev/i8042.h"
#include "layout.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* What the BIOS leaves: keyboard interrupt, system flag, translation. */
#define I8042_CTR_DEFAULT (I8042_CTR_KBDINT | I8042_CTR_SYS | I8042_CTR_XLATE)
/* Not in reset, A20 enabled. */
#define I8042_OUTPORT_DEFAULT (I8042_OUTPORT_RESET | I8042_OUTPORT_A20)
#define I8042_RAM_SIZE 32

enum i8042_port {
	I8042_PORT_DATA,
	I8042_PORT_CMD,
	I8042_PORT_MAX,
};

struct i8042 {
	pthread_mutex_t lock;
	struct bus *pio;
	struct platform_ops ops;
	bool registered[I8042_PORT_MAX];
	uint8_t ram[I8042_RAM_SIZE];	/* byte 0 is the command byte */
	uint8_t outport;
	uint8_t obuf;			/* the one-byte output buffer */
	bool obf;
	bool obf_aux;
	bool last_was_cmd;
	uint8_t pending;		/* command waiting for its data byte */
	uint64_t unknown_logged[4];	/* one bit per command byte */
};

static const uint16_t i8042_ports[I8042_PORT_MAX] = {
	[I8042_PORT_DATA] = PORT_I8042_DATA,
	[I8042_PORT_CMD] = PORT_I8042_CMD,
};

static void
i8042_output(struct i8042 *k, uint8_t v, bool aux)
{
	/* One byte deep, as on the chip: a new byte replaces an unread one. */
	k->obuf = v;
	k->obf = true;
	k->obf_aux = aux;
}

static uint8_t
i8042_status(const struct i8042 *k)
{
	uint8_t s = I8042_STR_KEYLOCK;

	if (k->obf)
		s |= I8042_STR_OBF;
	if (k->obf && k->obf_aux)
		s |= I8042_STR_AUXDATA;
	if (k->ram[0] & I8042_CTR_SYS)
		s |= I8042_STR_SYS;
	if (k->last_was_cmd)
		s |= I8042_STR_CMD;
	return s;
}

/* Returns true when the command asks for a machine reset. */
static bool
i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	if (cmd >= 0x20 && cmd <= 0x3f) {
		i8042_output(k, k->ram[cmd & 0x1f], false);
		return false;
	}
	if (cmd >= 0x60 && cmd <= 0x7f) {
		k->pending = cmd;
		return false;
	}
	/* Pulse output lines for 6 us: a clear bit 0 pulses reset. */
	if (cmd >= 0xf0)
		return !(cmd & 0x01);
	switch (cmd) {
	case I8042_CMD_AUX_DISABLE:
		k->ram[0] |= I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_ENABLE:
		k->ram[0] &= (uint8_t)~I8042_CTR_AUXDIS;
		break;
	case I8042_CMD_AUX_TEST:
	case I8042_CMD_KBD_TEST:
		/* The clock and data lines are fine; nothing is plugged in. */
		i8042_output(k, 0x00, false);
		break;
	case I8042_CMD_SELF_TEST:
		i8042_output(k, I8042_SELF_TEST_OK, false);
		break;
	case I8042_CMD_KBD_DISABLE:
		k->ram[0] |= I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_KBD_ENABLE:
		k->ram[0] &= (uint8_t)~I8042_CTR_KBDDIS;
		break;
	case I8042_CMD_READ_OUTPORT:
		i8042_output(k, k->outport, false);
		break;
	case I8042_CMD_WRITE_OUTPORT:
	case I8042_CMD_KBD_LOOP:
	case I8042_CMD_AUX_LOOP:
	case I8042_CMD_AUX_SEND:
		k->pending = cmd;
		break;
	case 0xa4:	/* password installed? no */
		i8042_output(k, 0xf1, false);
		break;
	case 0xdd:	/* A20 off/on: the gate is always open here */
	case 0xdf:
		break;
	default:
		if (!(k->unknown_logged[cmd / 64] & (1ULL << (cmd % 64)))) {
			k->unknown_logged[cmd / 64] |= 1ULL << (cmd % 64);
			log_debug("i8042: ignoring command 0x%02x", cmd);
		}
		break;
	}
	return false;
}

/* A byte written to the data port. Returns true to reset the machine. */
static bool
i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	if (cmd >= 0x60 && cmd <= 0x7f) {
		k->ram[cmd & 0x1f] = v;
		return false;
	}
	switch (cmd) {
	case I8042_CMD_WRITE_OUTPORT:
		k->outport = v;
		return !(v & I8042_OUTPORT_RESET);
	case I8042_CMD_KBD_LOOP:
		i8042_output(k, v, false);
		break;
	case I8042_CMD_AUX_LOOP:
		i8042_output(k, v, true);
		break;
	default:
		/*
		 * For the keyboard (no command pending) or the mouse (0xd4):
		 * neither exists, so the byte goes unanswered and the
		 * driver's own timeout decides that nothing is there.
		 */
		break;
	}
	return false;
}

static void
i8042_io(struct i8042 *k, enum i8042_port port, uint8_t *data, uint32_t len,
	 bool is_write)
{
	bool reset = false;
	uint32_t i;

	/* Both ports are one byte wide; the rest of a wider read is ones. */
	if (!is_write)
		for (i = 1; i < len; i++)
			data[i] = 0xff;
	pthread_mutex_lock(&k->lock);
	if (port == I8042_PORT_CMD) {
		if (is_write) {
			k->last_was_cmd = true;
			reset = i8042_command(k, data[0]);
		} else {
			data[0] = i8042_status(k);
		}
	} else {
		if (is_write) {
			k->last_was_cmd = false;
			reset = i8042_data(k, data[0]);
		} else {
			/* An empty buffer reads as its last byte. */
			data[0] = k->obuf;
			k->obf = false;
			k->obf_aux = false;
		}
	}
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: stopping the VM may wait for this vCPU. */
	if (reset)
		platform_request_stop(&k->ops, VM_STOP_REBOOT);
}

static void
i8042_data_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	      bool is_write)
{
	(void)offset;
	i8042_io(opaque, I8042_PORT_DATA, data, len, is_write);
}

static void
i8042_cmd_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write)
{
	(void)offset;
	i8042_io(opaque, I8042_PORT_CMD, data, len, is_write);
}

struct i8042 *
i8042_new(struct bus *pio, const struct platform_ops *p)
{
	static const bus_io_fn fns[I8042_PORT_MAX] = {
		[I8042_PORT_DATA] = i8042_data_io,
		[I8042_PORT_CMD] = i8042_cmd_io,
	};
	struct i8042 *k;
	int i, r;

	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->pio = pio;
	if (p)
		k->ops = *p;
	k->ram[0] = I8042_CTR_DEFAULT;
	k->outport = I8042_OUTPORT_DEFAULT;
	r = pthread_mutex_init(&k->lock, NULL);
	if (r != 0) {
		free(k);
		errno = r;
		return NULL;
	}
	for (i = 0; i < I8042_PORT_MAX; i++) {
		r = bus_register(pio, i8042_ports[i], 1, fns[i], k, "i8042");
		if (r < 0) {
			i8042_free(k);
			errno = -r;
			return NULL;
		}
		k->registered[i] = true;
	}
	return k;
}

void
i8042_free(struct i8042 *k)
{
	int i;

	if (!k)
		return;
	for (i = 0; i < I8042_PORT_MAX; i++)
		if (k->registered[i])
			bus_unregister(k->pio, i8042_ports[i]);
	pthread_mutex_destroy(&k->lock);
	free(k);
}
