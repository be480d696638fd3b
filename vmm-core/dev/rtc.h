/* SPDX-License-Identifier: MIT */
/*
 * The MC146818 CMOS real-time clock and its 128 bytes of CMOS RAM, at
 * PORT_RTC (0x70 index, bit 7 of which is the NMI mask and is ignored;
 * 0x71 data).
 *
 * The clock shows the host's UTC time plus an offset that the guest sets by
 * writing the time registers (the host clock is never touched). Register B
 * selects BCD or binary and 12 or 24 hours as the guest likes; the values
 * are converted on every read, so changing the format never garbles the
 * time. While B's SET bit is on, the clock stands still and writes collect
 * in a frozen copy that takes effect when SET is cleared. The day of the
 * week is derived from the date: writes to it are ignored.
 *
 * Register A's UIP bit is set during the last 244 us of each second, as on
 * the chip. Register C's UF, AF and PF flags are computed when it is read
 * (read clears), but no interrupt is raised: the alarm and periodic
 * registers are storage.
 *
 * Firmware reads the memory size from the CMOS (SeaBIOS does), so rtc_new()
 * fills those bytes from the RAM layout and the vCPU count.
 */
#ifndef VMM_DEV_RTC_H
#define VMM_DEV_RTC_H

#include <stdint.h>

#include "bus.h"
#include "platform.h"

#define RTC_NR_PORTS		2
#define RTC_CMOS_SIZE		128
#define RTC_INDEX_MASK		0x7f	/* bit 7 of the index: NMI disable */

/* Clock registers. */
#define RTC_SECONDS		0x00
#define RTC_SECONDS_ALARM	0x01
#define RTC_MINUTES		0x02
#define RTC_MINUTES_ALARM	0x03
#define RTC_HOURS		0x04
#define RTC_HOURS_ALARM		0x05
#define RTC_DAY_OF_WEEK		0x06	/* 1 = Sunday */
#define RTC_DAY_OF_MONTH	0x07
#define RTC_MONTH		0x08
#define RTC_YEAR		0x09
#define RTC_REG_A		0x0a
#define RTC_REG_B		0x0b
#define RTC_REG_C		0x0c
#define RTC_REG_D		0x0d
#define RTC_CENTURY		0x32

#define RTC_A_UIP		0x80
#define RTC_A_DEFAULT		0x26	/* 32.768 kHz, 1024 Hz periodic rate */
#define RTC_B_SET		0x80
#define RTC_B_PIE		0x40
#define RTC_B_AIE		0x20
#define RTC_B_UIE		0x10
#define RTC_B_SQWE		0x08
#define RTC_B_DM_BINARY		0x04
#define RTC_B_24H		0x02
#define RTC_B_DSE		0x01
#define RTC_B_DEFAULT		RTC_B_24H
#define RTC_C_IRQF		0x80
#define RTC_C_PF		0x40
#define RTC_C_AF		0x20
#define RTC_C_UF		0x10
#define RTC_D_VRT		0x80

/* Memory size bytes of the PC CMOS layout, little-endian. */
#define RTC_CMOS_BASE_MEM	0x15	/* KiB below 1 MiB, 2 bytes */
#define RTC_CMOS_EXT_MEM	0x17	/* KiB above 1 MiB, 2 bytes */
#define RTC_CMOS_EXT_MEM2	0x30	/* the same again */
#define RTC_CMOS_MEM_16M	0x34	/* 64 KiB units above 16 MiB, below 4 GiB */
#define RTC_CMOS_MEM_4G		0x5b	/* 64 KiB units above 4 GiB, 3 bytes */
#define RTC_CMOS_NR_CPUS	0x5f	/* vCPUs minus one */

struct rtc;

/*
 * Create the RTC on ports PORT_RTC and PORT_RTC + 1 of pio. low_ram_bytes is
 * the RAM below 4 GiB (starting at 0), high_ram_bytes the RAM from 4 GiB
 * up. *p is copied; p may be NULL, and p->opaque must outlive the device.
 * Returns a new reference, or NULL with errno set (EEXIST when the ports are
 * taken, ENOMEM).
 */
struct rtc *rtc_new(struct bus *pio, const struct platform_ops *p,
		    uint64_t low_ram_bytes, uint64_t high_ram_bytes,
		    unsigned int nr_cpus);

/* Unregister from the bus and free. NULL is a no-op. */
void rtc_free(struct rtc *r);

#endif
