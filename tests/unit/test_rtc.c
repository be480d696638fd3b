/* SPDX-License-Identifier: MIT */
/*
 * The CMOS RTC against the host clock: BCD, binary and 12-hour formats,
 * setting the time (an offset, never the host clock), UIP and register C,
 * the index port's NMI bit, and the memory-size bytes firmware reads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "dev/rtc.h"
#include "layout.h"
#include "platform.h"

struct fixture {
	struct bus pio;
	struct rtc *r;
	unsigned int calls;
};

static void
fake_irq_line(void *opaque, uint32_t gsi, int level)
{
	struct fixture *f = opaque;

	(void)gsi;
	(void)level;
	f->calls++;
}

static void
fake_request_stop(void *opaque, enum vm_stop_reason r)
{
	struct fixture *f = opaque;

	(void)r;
	f->calls++;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct platform_ops ops = { fake_irq_line, fake_request_stop, f };

	assert_non_null(f);
	assert_int_equal(bus_init(&f->pio, "pio"), 0);
	f->r = rtc_new(&f->pio, &ops, 512 * MiB, 0, 1);
	assert_non_null(f->r);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rtc_free(f->r);
	assert_int_equal(f->pio.nr_ranges, 0);
	assert_int_equal(f->calls, 0);
	bus_destroy(&f->pio);
	free(f);
	return 0;
}

static void
outb(struct bus *pio, uint16_t port, uint8_t v)
{
	assert_true(bus_dispatch(pio, port, &v, 1, true));
}

static uint8_t
inb(struct bus *pio, uint16_t port)
{
	uint8_t v = 0;

	assert_true(bus_dispatch(pio, port, &v, 1, false));
	return v;
}

static uint8_t
cmos_read(struct bus *pio, uint8_t idx)
{
	outb(pio, PORT_RTC, idx);
	return inb(pio, PORT_RTC + 1);
}

static void
cmos_write(struct bus *pio, uint8_t idx, uint8_t v)
{
	outb(pio, PORT_RTC, idx);
	outb(pio, PORT_RTC + 1, v);
}

static int
bcd(uint8_t v)
{
	assert_true((v & 0x0f) <= 9 && (v >> 4) <= 9);
	return (v >> 4) * 10 + (v & 0x0f);
}

struct reading {
	uint8_t sec, min, hour, wday, mday, mon, year, century;
};

/* Read the clock as Linux's mc146818_get_time does, avoiding UIP. */
static void
read_clock(struct bus *pio, struct reading *out)
{
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		uint8_t sec = cmos_read(pio, RTC_SECONDS);

		if (cmos_read(pio, RTC_REG_A) & RTC_A_UIP) {
			usleep(100);
			continue;
		}
		out->sec = sec;
		out->min = cmos_read(pio, RTC_MINUTES);
		out->hour = cmos_read(pio, RTC_HOURS);
		out->wday = cmos_read(pio, RTC_DAY_OF_WEEK);
		out->mday = cmos_read(pio, RTC_DAY_OF_MONTH);
		out->mon = cmos_read(pio, RTC_MONTH);
		out->year = cmos_read(pio, RTC_YEAR);
		out->century = cmos_read(pio, RTC_CENTURY);
		if (!(cmos_read(pio, RTC_REG_A) & RTC_A_UIP) &&
		    sec == cmos_read(pio, RTC_SECONDS))
			return;
	}
	fail_msg("the clock never held still for a reading");
}

static int64_t
reading_to_secs(const struct reading *rd, bool binary, struct tm *ret)
{
	int (*dec)(uint8_t) = binary ? NULL : bcd;
	struct tm tm = { 0 };

#define DEC(x) (dec ? dec(x) : (int)(x))
	tm.tm_sec = DEC(rd->sec);
	tm.tm_min = DEC(rd->min);
	tm.tm_hour = DEC(rd->hour);
	tm.tm_mday = DEC(rd->mday);
	tm.tm_mon = DEC(rd->mon) - 1;
	tm.tm_year = DEC(rd->century) * 100 + DEC(rd->year) - 1900;
	tm.tm_wday = DEC(rd->wday) - 1;
#undef DEC
	*ret = tm;
	return (int64_t)timegm(&tm);
}

static void
check_host_time(struct bus *pio, bool binary)
{
	struct reading rd;
	struct tm got, host;
	time_t now;
	int64_t secs;
	int wday;

	read_clock(pio, &rd);
	now = time(NULL);
	secs = reading_to_secs(&rd, binary, &got);
	wday = got.tm_wday;
	assert_true(secs >= now - 2 && secs <= now + 2);
	/* The day of the week of the date read (1 = Sunday on the chip). */
	gmtime_r(&now, &host);
	if (host.tm_mday == got.tm_mday)
		assert_int_equal(wday, host.tm_wday);
	assert_true(got.tm_mon >= 0 && got.tm_mon <= 11);
}

static void
test_host_time_bcd(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cmos_read(&f->pio, RTC_REG_B), RTC_B_24H);
	check_host_time(&f->pio, false);
}

static void
test_host_time_binary(void **state)
{
	struct fixture *f = *state;
	struct reading rd;

	cmos_write(&f->pio, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
	check_host_time(&f->pio, true);
	/* Binary 24h: the hour never has bit 7 set and is below 24. */
	read_clock(&f->pio, &rd);
	assert_true(rd.hour < 24 && rd.min < 60 && rd.sec < 60);
	assert_true(rd.century == 20 || rd.century == 21);
}

/* Set a time with SET held, as Linux's mc146818_set_time does. */
static void
set_clock(struct bus *pio, uint8_t b, uint8_t yr, uint8_t mon, uint8_t day,
	  uint8_t hr, uint8_t min, uint8_t sec, uint8_t century)
{
	uint8_t a = cmos_read(pio, RTC_REG_A);

	cmos_write(pio, RTC_REG_B, b | RTC_B_SET);
	cmos_write(pio, RTC_REG_A, a | 0x70);	/* divider reset */
	cmos_write(pio, RTC_YEAR, yr);
	cmos_write(pio, RTC_MONTH, mon);
	cmos_write(pio, RTC_DAY_OF_MONTH, day);
	cmos_write(pio, RTC_HOURS, hr);
	cmos_write(pio, RTC_MINUTES, min);
	cmos_write(pio, RTC_SECONDS, sec);
	cmos_write(pio, RTC_CENTURY, century);
	cmos_write(pio, RTC_REG_B, b);
	cmos_write(pio, RTC_REG_A, a & 0x7f);
}

static void
test_set_time_offset(void **state)
{
	struct fixture *f = *state;
	struct reading rd;
	time_t before = time(NULL);
	uint8_t s0;

	/*
	 * From March 31 to February 28 the month is written first: the clock
	 * must not normalise the February 31 in between into March 3.
	 */
	set_clock(&f->pio, RTC_B_24H, 0x30, 0x03, 0x31, 0x09, 0x00, 0x00, 0x20);
	set_clock(&f->pio, RTC_B_24H, 0x30, 0x02, 0x28, 0x09, 0x00, 0x00, 0x20);
	assert_int_equal(cmos_read(&f->pio, RTC_MONTH), 0x02);
	assert_int_equal(cmos_read(&f->pio, RTC_DAY_OF_MONTH), 0x28);
	set_clock(&f->pio, RTC_B_24H, 0x30, 0x03, 0x31, 0x13, 0x45, 0x30, 0x20);
	read_clock(&f->pio, &rd);
	assert_int_equal(rd.century, 0x20);
	assert_int_equal(rd.year, 0x30);
	assert_int_equal(rd.mon, 0x03);
	assert_int_equal(rd.mday, 0x31);
	assert_int_equal(rd.hour, 0x13);
	assert_int_equal(rd.min, 0x45);
	assert_true(rd.sec >= 0x30 && rd.sec <= 0x32);
	/* 2030-03-31 is a Sunday. */
	assert_int_equal(rd.wday, 1);
	/* The host clock did not move. */
	assert_true(time(NULL) - before < 5);

	/* A write without SET changes one field at once. */
	cmos_write(&f->pio, RTC_MINUTES, 0x10);
	read_clock(&f->pio, &rd);
	assert_int_equal(rd.min, 0x10);
	assert_int_equal(rd.hour, 0x13);
	assert_int_equal(rd.mday, 0x31);
	cmos_write(&f->pio, RTC_DAY_OF_WEEK, 0x04);
	assert_int_equal(cmos_read(&f->pio, RTC_DAY_OF_WEEK), 1);

	/* While SET is on the clock stands still, and UIP stays low. */
	cmos_write(&f->pio, RTC_REG_B, RTC_B_24H | RTC_B_SET | RTC_B_UIE);
	assert_int_equal(cmos_read(&f->pio, RTC_REG_B), RTC_B_24H | RTC_B_SET);
	s0 = cmos_read(&f->pio, RTC_SECONDS);
	usleep(1100 * 1000);
	assert_int_equal(cmos_read(&f->pio, RTC_SECONDS), s0);
	assert_int_equal(cmos_read(&f->pio, RTC_REG_A) & RTC_A_UIP, 0);
	cmos_write(&f->pio, RTC_REG_B, RTC_B_24H);
	read_clock(&f->pio, &rd);
	assert_int_equal(rd.min, 0x10);
	assert_true(rd.sec >= s0 && rd.sec <= s0 + 2);
}

static void
test_12h_mode(void **state)
{
	struct fixture *f = *state;
	struct bus *pio = &f->pio;

	set_clock(pio, RTC_B_24H, 0x26, 0x11, 0x24, 0x13, 0x00, 0x10, 0x20);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x13);
	/* 12-hour BCD: 1 PM. */
	cmos_write(pio, RTC_REG_B, 0);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x81);
	/* 12-hour binary. */
	cmos_write(pio, RTC_REG_B, RTC_B_DM_BINARY);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x81);
	assert_int_equal(cmos_read(pio, RTC_MINUTES), 0);
	assert_int_equal(cmos_read(pio, RTC_YEAR), 26);

	set_clock(pio, RTC_B_24H, 0x26, 0x11, 0x24, 0x23, 0x00, 0x10, 0x20);
	cmos_write(pio, RTC_REG_B, RTC_B_DM_BINARY);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x8b);
	cmos_write(pio, RTC_REG_B, 0);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x91);

	/* Midnight is 12 AM, noon 12 PM; written in 12-hour form. */
	set_clock(pio, 0, 0x26, 0x11, 0x24, 0x12, 0x00, 0x10, 0x20);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x12);
	cmos_write(pio, RTC_REG_B, RTC_B_24H);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x00);
	set_clock(pio, RTC_B_DM_BINARY, 26, 11, 24, 0x80 | 12, 0, 10, 20);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 0x8c);
	cmos_write(pio, RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(cmos_read(pio, RTC_HOURS), 12);
	assert_int_equal(cmos_read(pio, RTC_DAY_OF_MONTH), 24);
	assert_int_equal(cmos_read(pio, RTC_CENTURY), 20);
}

static void
test_registers(void **state)
{
	struct fixture *f = *state;
	struct bus *pio = &f->pio;

	assert_int_equal(cmos_read(pio, RTC_REG_A) & 0x7f, RTC_A_DEFAULT);
	assert_int_equal(cmos_read(pio, RTC_REG_B), RTC_B_DEFAULT);
	assert_int_equal(cmos_read(pio, RTC_REG_D), RTC_D_VRT);
	/* D and C are read-only; UIP cannot be written. */
	cmos_write(pio, RTC_REG_D, 0x00);
	assert_int_equal(cmos_read(pio, RTC_REG_D), RTC_D_VRT);
	cmos_write(pio, RTC_REG_A, 0xaf);
	assert_int_equal(cmos_read(pio, RTC_REG_A) & 0x7f, 0x2f);
	/* Alarm registers and the RAM are storage. */
	cmos_write(pio, RTC_SECONDS_ALARM, 0x59);
	cmos_write(pio, RTC_MINUTES_ALARM, 0xc0);
	cmos_write(pio, RTC_HOURS_ALARM, 0x23);
	assert_int_equal(cmos_read(pio, RTC_SECONDS_ALARM), 0x59);
	assert_int_equal(cmos_read(pio, RTC_MINUTES_ALARM), 0xc0);
	assert_int_equal(cmos_read(pio, RTC_HOURS_ALARM), 0x23);
	for (unsigned int i = 0x40; i < RTC_CMOS_SIZE; i++)
		cmos_write(pio, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	for (unsigned int i = 0x40; i < RTC_CMOS_SIZE; i++)
		assert_int_equal(cmos_read(pio, (uint8_t)i), i ^ 0xa5);
}

static void
test_index_nmi_bit(void **state)
{
	struct fixture *f = *state;
	struct bus *pio = &f->pio;
	uint8_t w[2], d[2];

	/* 512 MiB: 640 KiB of base memory at 0x15. */
	assert_int_equal(cmos_read(pio, 0x80 | RTC_CMOS_BASE_MEM), 0x80);
	assert_int_equal(cmos_read(pio, 0x80 | (RTC_CMOS_BASE_MEM + 1)), 0x02);
	cmos_write(pio, 0x80 | 0x40, 0x5a);
	assert_int_equal(cmos_read(pio, 0x40), 0x5a);
	assert_int_equal(cmos_read(pio, 0x80 | RTC_REG_D), RTC_D_VRT);
	/* The index port reads back what was written, NMI bit included. */
	outb(pio, PORT_RTC, 0x8d);
	assert_int_equal(inb(pio, PORT_RTC), 0x8d);

	/* A word write is index then data; a word read the same. */
	w[0] = 0x41;
	w[1] = 0x77;
	assert_true(bus_dispatch(pio, PORT_RTC, w, 2, true));
	assert_int_equal(cmos_read(pio, 0x41), 0x77);
	assert_true(bus_dispatch(pio, PORT_RTC, d, 2, false));
	assert_int_equal(d[0], 0x41);
	assert_int_equal(d[1], 0x77);
	/* Past the two ports: nobody's, all ones. */
	memset(d, 0, sizeof(d));
	assert_false(bus_dispatch(pio, PORT_RTC + 1, d, 2, false));
	assert_int_equal(d[0] & d[1], 0xff);
}

static void
test_reg_c_read_clear(void **state)
{
	struct fixture *f = *state;
	struct bus *pio = &f->pio;
	uint8_t c = 0;
	int i;

	/* The first read clears whatever accumulated since creation. */
	cmos_read(pio, RTC_REG_C);
	cmos_write(pio, RTC_SECONDS_ALARM, 0xff);
	cmos_write(pio, RTC_MINUTES_ALARM, 0xff);
	cmos_write(pio, RTC_HOURS_ALARM, 0xff);
	cmos_write(pio, RTC_REG_B, RTC_B_24H | RTC_B_UIE);
	cmos_write(pio, RTC_REG_A, 0x20);	/* no periodic rate */
	for (i = 0; i < 300 && !(c & RTC_C_UF); i++) {
		usleep(5000);
		c = cmos_read(pio, RTC_REG_C);
	}
	/* An update, an alarm that matches any time, UIE enabled. */
	assert_int_equal(c, RTC_C_UF | RTC_C_AF | RTC_C_IRQF);
	assert_int_equal(cmos_read(pio, RTC_REG_C), 0);

	/* Periodic flag at 1024 Hz, without PIE: no IRQF. */
	cmos_write(pio, RTC_REG_B, RTC_B_24H);
	cmos_write(pio, RTC_REG_A, 0x26);
	cmos_read(pio, RTC_REG_C);
	usleep(3000);
	c = cmos_read(pio, RTC_REG_C);
	assert_true(c & RTC_C_PF);
	assert_false(c & RTC_C_IRQF);
	/* An alarm that cannot match (second 61) never sets AF. */
	cmos_write(pio, RTC_SECONDS_ALARM, 0x61);
	c = 0;
	for (i = 0; i < 300 && !(c & RTC_C_UF); i++) {
		usleep(5000);
		c = cmos_read(pio, RTC_REG_C);
	}
	assert_true(c & RTC_C_UF);
	assert_false(c & RTC_C_AF);
}

static void
test_uip(void **state)
{
	struct fixture *f = *state;
	struct bus *pio = &f->pio;
	struct timespec t0, t;
	bool seen = false;
	uint8_t s0, s1;
	int tries;

	/*
	 * UIP rises 244 us before the second ends; when it falls, a new
	 * second has begun. Retry if a preemption hid the falling edge; give
	 * a loaded host ten windows to let us see one.
	 */
	for (tries = 0; tries < 5 && !seen; tries++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		outb(pio, PORT_RTC, RTC_REG_A);
		while (!(inb(pio, PORT_RTC + 1) & RTC_A_UIP)) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if (t.tv_sec - t0.tv_sec >= 10)
				fail_msg("UIP never set in 10 s");
		}
		s0 = cmos_read(pio, RTC_SECONDS);
		outb(pio, PORT_RTC, RTC_REG_A);
		if (!(inb(pio, PORT_RTC + 1) & RTC_A_UIP))
			continue;
		while (inb(pio, PORT_RTC + 1) & RTC_A_UIP)
			;
		s1 = cmos_read(pio, RTC_SECONDS);
		assert_int_not_equal(s0, s1);
		seen = true;
	}
	assert_true(seen);
	/* A divider in reset stops updates: no UIP for over a second. */
	cmos_write(pio, RTC_REG_A, 0x76);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	outb(pio, PORT_RTC, RTC_REG_A);
	do {
		assert_int_equal(inb(pio, PORT_RTC + 1) & RTC_A_UIP, 0);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L +
		 (t.tv_nsec - t0.tv_nsec) < 1100000000L);
}

static uint32_t
cmos16(struct bus *pio, uint8_t at)
{
	return cmos_read(pio, at) | (uint32_t)cmos_read(pio, at + 1) << 8;
}

static uint32_t
cmos24(struct bus *pio, uint8_t at)
{
	return cmos16(pio, at) | (uint32_t)cmos_read(pio, at + 2) << 16;
}

static void
test_memory_fields(void **state)
{
	struct fixture *f = *state;
	struct bus pio;
	struct rtc *r;

	(void)f;
	/* 512 MiB, 1 vCPU (the fixture). */
	assert_int_equal(cmos16(&f->pio, RTC_CMOS_BASE_MEM), 640);
	assert_int_equal(cmos16(&f->pio, RTC_CMOS_EXT_MEM), 0xffff);
	assert_int_equal(cmos16(&f->pio, RTC_CMOS_EXT_MEM2), 0xffff);
	assert_int_equal(cmos16(&f->pio, RTC_CMOS_MEM_16M), (512 - 16) * 16);
	assert_int_equal(cmos24(&f->pio, RTC_CMOS_MEM_4G), 0);
	assert_int_equal(cmos_read(&f->pio, RTC_CMOS_NR_CPUS), 0);

	/* 4 GiB: 3 GiB below the hole, 1 GiB above 4 GiB; 4 vCPUs. */
	assert_int_equal(bus_init(&pio, "pio2"), 0);
	r = rtc_new(&pio, NULL, 3 * GiB, 1 * GiB, 4);
	assert_non_null(r);
	assert_int_equal(cmos16(&pio, RTC_CMOS_BASE_MEM), 640);
	assert_int_equal(cmos16(&pio, RTC_CMOS_EXT_MEM), 0xffff);
	assert_int_equal(cmos16(&pio, RTC_CMOS_MEM_16M), 0xbf00);
	assert_int_equal(cmos24(&pio, RTC_CMOS_MEM_4G), 0x4000);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_MEM_4G), 0x00);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_MEM_4G + 1), 0x40);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_MEM_4G + 2), 0x00);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_NR_CPUS), 3);
	rtc_free(r);

	/* Small: 8 MiB; then caps: 2 TiB above 4 GiB, 300 vCPUs. */
	r = rtc_new(&pio, NULL, 8 * MiB, 0, 0);
	assert_non_null(r);
	assert_int_equal(cmos16(&pio, RTC_CMOS_EXT_MEM), 7 * 1024);
	assert_int_equal(cmos16(&pio, RTC_CMOS_MEM_16M), 0);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_NR_CPUS), 0);
	rtc_free(r);
	r = rtc_new(&pio, NULL, 4 * GiB, 2048 * GiB, 300);
	assert_non_null(r);
	assert_int_equal(cmos16(&pio, RTC_CMOS_MEM_16M), 0xff00);
	assert_int_equal(cmos24(&pio, RTC_CMOS_MEM_4G), 0xffffff);
	assert_int_equal(cmos_read(&pio, RTC_CMOS_NR_CPUS), 0xff);
	rtc_free(r);
	assert_int_equal(pio.nr_ranges, 0);
	bus_destroy(&pio);
}

static void
test_errors(void **state)
{
	struct fixture *f = *state;

	errno = 0;
	assert_null(rtc_new(&f->pio, NULL, 512 * MiB, 0, 1));
	assert_int_equal(errno, EEXIST);
	assert_int_equal(f->pio.nr_ranges, 1);
	rtc_free(NULL);
	/* Garbage BCD and impossible dates neither crash nor stop the clock. */
	cmos_write(&f->pio, RTC_MONTH, 0xff);
	cmos_write(&f->pio, RTC_DAY_OF_MONTH, 0x00);
	cmos_write(&f->pio, RTC_CENTURY, 0x99);
	cmos_write(&f->pio, RTC_YEAR, 0x99);
	assert_int_equal(cmos_read(&f->pio, RTC_CENTURY), 0x99);
	assert_int_equal(cmos_read(&f->pio, RTC_YEAR), 0x99);
	cmos_write(&f->pio, RTC_CENTURY, 0x00);
	cmos_write(&f->pio, RTC_YEAR, 0x00);
	assert_int_equal(cmos_read(&f->pio, RTC_CENTURY), 0x00);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_host_time_bcd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_host_time_binary, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_set_time_offset, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_12h_mode, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_registers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_index_nmi_bit, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reg_c_read_clear, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_uip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
