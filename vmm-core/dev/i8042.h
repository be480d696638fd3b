/* SPDX-License-Identifier: MIT */
/*
 * The i8042 keyboard controller at ports 0x60 (data) and 0x64 (status and
 * command), with no keyboard or mouse behind it. It answers what Linux's
 * i8042 driver and firmware ask of the controller itself (self-test,
 * interface tests, command byte, output port, loop-back of the AUX and KBD
 * output buffers), so that the probe either finds no device or gives up
 * after its timeouts, and it resets the machine: command 0xFE (and any pulse
 * of output line 0) or an output-port write with bit 0 clear stops the VM
 * with VM_STOP_REBOOT. It raises no interrupts. Port 0x61 is not ours: the
 * in-kernel PIT owns it.
 */
#ifndef VMM_DEV_I8042_H
#define VMM_DEV_I8042_H

#include "bus.h"
#include "platform.h"

/* Status register bits. */
#define I8042_STR_OBF		0x01	/* output buffer full */
#define I8042_STR_IBF		0x02	/* input buffer full */
#define I8042_STR_SYS		0x04	/* system flag, from the command byte */
#define I8042_STR_CMD		0x08	/* last write went to the command port */
#define I8042_STR_KEYLOCK	0x10	/* set: keyboard not inhibited */
#define I8042_STR_AUXDATA	0x20	/* the output buffer holds AUX data */
#define I8042_STR_TIMEOUT	0x40
#define I8042_STR_PARITY	0x80

/* Command byte (controller RAM byte 0) bits. */
#define I8042_CTR_KBDINT	0x01
#define I8042_CTR_AUXINT	0x02
#define I8042_CTR_SYS		0x04
#define I8042_CTR_KBDDIS	0x10
#define I8042_CTR_AUXDIS	0x20
#define I8042_CTR_XLATE		0x40

/* Controller commands (written to port 0x64). */
#define I8042_CMD_READ_CTR	0x20	/* 0x20-0x3f read RAM byte n */
#define I8042_CMD_WRITE_CTR	0x60	/* 0x60-0x7f write RAM byte n */
#define I8042_CMD_AUX_DISABLE	0xa7
#define I8042_CMD_AUX_ENABLE	0xa8
#define I8042_CMD_AUX_TEST	0xa9
#define I8042_CMD_SELF_TEST	0xaa
#define I8042_CMD_KBD_TEST	0xab
#define I8042_CMD_KBD_DISABLE	0xad
#define I8042_CMD_KBD_ENABLE	0xae
#define I8042_CMD_READ_OUTPORT	0xd0
#define I8042_CMD_WRITE_OUTPORT	0xd1
#define I8042_CMD_KBD_LOOP	0xd2
#define I8042_CMD_AUX_LOOP	0xd3
#define I8042_CMD_AUX_SEND	0xd4
#define I8042_CMD_PULSE_RESET	0xfe

#define I8042_SELF_TEST_OK	0x55
#define I8042_OUTPORT_RESET	0x01	/* clear: hold the CPU in reset */
#define I8042_OUTPORT_A20	0x02

struct i8042;

/*
 * Create the controller and register ports PORT_I8042_DATA and
 * PORT_I8042_CMD (one byte each) on pio. *p is copied; p may be NULL, and
 * p->opaque must outlive the device. Returns a new reference, or NULL with
 * errno set (EEXIST when a port is taken, ENOMEM).
 */
struct i8042 *i8042_new(struct bus *pio, const struct platform_ops *p);

/* Unregister from the bus and free. NULL is a no-op. */
void i8042_free(struct i8042 *k);

#endif
