/* SPDX-License-Identifier: MIT */
#include "dev/rtc.h"
#include "layout.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NSEC_PER_SEC		1000000000LL
/* UIP rises this long before each update (the chip's 244 us). */
#define RTC_UIP_NSEC		244000LL
/* The alarm matches any value in its field from 0xc0 up. */
#define RTC_ALARM_DONT_CARE	0xc0

/* A broken-down time, without normalisation (SET may leave it odd). */
struct rtc_time {
	int sec, min, hour;
	int mday, mon;		/* mon is 1-12 */
	int year;		/* e.g. 2026 */
};

struct rtc {
	pthread_mutex_t lock;
	struct bus *pio;
	struct platform_ops ops;	/* kept for a future IRQ 8 */
	bool registered;
	uint8_t index;		/* as last written, NMI bit included */
	/*
	 * The RAM, and storage for the alarm registers and A and B. The time
	 * registers, C, D and the century are computed, not kept here.
	 */
	uint8_t cmos[RTC_CMOS_SIZE];
	int64_t offset;		/* guest time minus host time, seconds */
	struct rtc_time frozen;	/* the clock while SET is on */
	/* What register C's flags were last cleared against. */
	int64_t uf_mark;	/* guest second of the last C read */
	struct timespec pf_mark;	/* monotonic time of the last C read */
};

static int64_t
rtc_host_now(long *ret_nsec)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ret_nsec)
		*ret_nsec = ts.tv_nsec;
	return ts.tv_sec;
}

static bool
rtc_binary(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & RTC_B_DM_BINARY;
}

static uint8_t
rtc_encode(const struct rtc *r, int v)
{
	if (v < 0)
		v = 0;
	if (rtc_binary(r))
		return (uint8_t)v;
	v %= 100;
	return (uint8_t)((v / 10) << 4 | v % 10);
}

static int
rtc_decode(const struct rtc *r, uint8_t v)
{
	if (rtc_binary(r))
		return v;
	/* Not valid BCD? Take it as the chip would: digit by digit. */
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t
rtc_encode_hour(const struct rtc *r, int hour)
{
	int h12;

	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return rtc_encode(r, hour);
	h12 = hour % 12;
	if (h12 == 0)
		h12 = 12;
	return rtc_encode(r, h12) | (hour >= 12 ? 0x80 : 0);
}

static int
rtc_decode_hour(const struct rtc *r, uint8_t v)
{
	int h;

	if (r->cmos[RTC_REG_B] & RTC_B_24H)
		return rtc_decode(r, v);
	h = rtc_decode(r, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

static void
rtc_time_from_secs(struct rtc_time *t, int64_t secs)
{
	time_t tt = (time_t)secs;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		memset(&tm, 0, sizeof(tm));
	t->sec = tm.tm_sec;
	t->min = tm.tm_min;
	t->hour = tm.tm_hour;
	t->mday = tm.tm_mday;
	t->mon = tm.tm_mon + 1;
	t->year = tm.tm_year + 1900;
}

/* Seconds since the epoch, normalising odd fields; false on overflow. */
static bool
rtc_time_to_secs(const struct rtc_time *t, int64_t *ret)
{
	struct tm tm = {
		.tm_sec = t->sec, .tm_min = t->min, .tm_hour = t->hour,
		.tm_mday = t->mday, .tm_mon = t->mon - 1,
		.tm_year = t->year - 1900,
	};
	time_t tt;

	errno = 0;
	tt = timegm(&tm);
	if (tt == (time_t)-1 && errno != 0)
		return false;
	*ret = (int64_t)tt;
	return true;
}

static bool
rtc_set_mode(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & RTC_B_SET;
}

/* The divider chain runs unless held in reset (DV = 11x). */
static bool
rtc_running(const struct rtc *r)
{
	return ((r->cmos[RTC_REG_A] >> 4) & 0x6) != 0x6 && !rtc_set_mode(r);
}

static void
rtc_now(const struct rtc *r, struct rtc_time *t)
{
	if (rtc_set_mode(r))
		*t = r->frozen;
	else
		rtc_time_from_secs(t, rtc_host_now(NULL) + r->offset);
}

static void
rtc_commit(struct rtc *r, const struct rtc_time *t)
{
	int64_t secs;

	/* A date timegm() cannot represent leaves the clock as it was. */
	if (rtc_time_to_secs(t, &secs))
		r->offset = secs - rtc_host_now(NULL);
}

static int
rtc_wday(const struct rtc_time *t)
{
	int64_t secs, days;

	if (!rtc_time_to_secs(t, &secs))
		return 1;
	/* 1970-01-01 was a Thursday; floor division for earlier dates. */
	days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	return (int)(((days + 4) % 7 + 7) % 7) + 1;
}

static uint8_t
rtc_read_time_reg(struct rtc *r, uint8_t idx)
{
	struct rtc_time t;

	rtc_now(r, &t);
	switch (idx) {
	case RTC_SECONDS:
		return rtc_encode(r, t.sec);
	case RTC_MINUTES:
		return rtc_encode(r, t.min);
	case RTC_HOURS:
		return rtc_encode_hour(r, t.hour);
	case RTC_DAY_OF_WEEK:
		return rtc_encode(r, rtc_wday(&t));
	case RTC_DAY_OF_MONTH:
		return rtc_encode(r, t.mday);
	case RTC_MONTH:
		return rtc_encode(r, t.mon);
	case RTC_YEAR:
		return rtc_encode(r, t.year % 100);
	default:	/* RTC_CENTURY */
		return rtc_encode(r, t.year / 100);
	}
}

static void
rtc_write_time_reg(struct rtc *r, uint8_t idx, uint8_t v)
{
	struct rtc_time t;
	bool set = rtc_set_mode(r);

	rtc_now(r, &t);
	switch (idx) {
	case RTC_SECONDS:
		t.sec = rtc_decode(r, v & 0x7f);
		break;
	case RTC_MINUTES:
		t.min = rtc_decode(r, v & 0x7f);
		break;
	case RTC_HOURS:
		t.hour = rtc_decode_hour(r, v);
		break;
	case RTC_DAY_OF_MONTH:
		t.mday = rtc_decode(r, v);
		break;
	case RTC_MONTH:
		t.mon = rtc_decode(r, v);
		break;
	case RTC_YEAR:
		t.year = t.year / 100 * 100 + rtc_decode(r, v) % 100;
		break;
	case RTC_CENTURY:
		t.year = rtc_decode(r, v) * 100 + t.year % 100;
		break;
	default:	/* the day of the week follows from the date */
		return;
	}
	if (set)
		r->frozen = t;
	else
		rtc_commit(r, &t);
}

static uint8_t
rtc_read_reg_a(const struct rtc *r)
{
	uint8_t v = r->cmos[RTC_REG_A] & 0x7f;
	long nsec;

	rtc_host_now(&nsec);
	if (rtc_running(r) && nsec >= NSEC_PER_SEC - RTC_UIP_NSEC)
		v |= RTC_A_UIP;
	return v;
}

static void
rtc_write_reg_b(struct rtc *r, uint8_t v)
{
	bool was_set = rtc_set_mode(r);

	/* SET stops updates and, on the chip, clears UIE. */
	if (v & RTC_B_SET) {
		v &= (uint8_t)~RTC_B_UIE;
		if (!was_set)
			rtc_now(r, &r->frozen);
	}
	/* The fields were decoded as written: the new format is no matter. */
	if (was_set && !(v & RTC_B_SET))
		rtc_commit(r, &r->frozen);
	r->cmos[RTC_REG_B] = v;
}

static int64_t
rtc_periodic_nsec(uint8_t rate)
{
	/* Rates 1 and 2 are 256 and 128 Hz; then 32768 >> (rate - 1). */
	if (rate == 1)
		return NSEC_PER_SEC / 256;
	if (rate == 2)
		return NSEC_PER_SEC / 128;
	return (NSEC_PER_SEC << (rate - 1)) / 32768;
}

static bool
rtc_alarm_field(uint8_t alarm, uint8_t now)
{
	return alarm >= RTC_ALARM_DONT_CARE || alarm == now;
}

/*
 * Register C, read-clear. Without a timer thread, the flags say what
 * happened since the last read: an update (a new second), the alarm
 * matching the second we are in now, a periodic tick.
 */
static uint8_t
rtc_read_reg_c(struct rtc *r)
{
	uint8_t flags = 0, rate = r->cmos[RTC_REG_A] & 0x0f;
	struct timespec mono;
	int64_t gsec, elapsed;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	if (rtc_running(r)) {
		gsec = rtc_host_now(NULL) + r->offset;
		if (gsec != r->uf_mark) {
			flags |= RTC_C_UF;
			if (rtc_alarm_field(r->cmos[RTC_SECONDS_ALARM],
					    rtc_read_time_reg(r, RTC_SECONDS)) &&
			    rtc_alarm_field(r->cmos[RTC_MINUTES_ALARM],
					    rtc_read_time_reg(r, RTC_MINUTES)) &&
			    rtc_alarm_field(r->cmos[RTC_HOURS_ALARM],
					    rtc_read_time_reg(r, RTC_HOURS)))
				flags |= RTC_C_AF;
		}
		r->uf_mark = gsec;
		elapsed = (int64_t)(mono.tv_sec - r->pf_mark.tv_sec) *
			  NSEC_PER_SEC + (mono.tv_nsec - r->pf_mark.tv_nsec);
		if (rate != 0 && elapsed >= rtc_periodic_nsec(rate))
			flags |= RTC_C_PF;
	}
	r->pf_mark = mono;
	if (flags & r->cmos[RTC_REG_B] & (RTC_B_PIE | RTC_B_AIE | RTC_B_UIE))
		flags |= RTC_C_IRQF;
	return flags;
}

static uint8_t
rtc_read_data(struct rtc *r, uint8_t idx)
{
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		return rtc_read_time_reg(r, idx);
	case RTC_REG_A:
		return rtc_read_reg_a(r);
	case RTC_REG_C:
		return rtc_read_reg_c(r);
	case RTC_REG_D:
		/* Valid RAM and time; bit 6 must read 0 (Linux checks). */
		return RTC_D_VRT;
	default:
		return r->cmos[idx];
	}
}

static void
rtc_write_data(struct rtc *r, uint8_t idx, uint8_t v)
{
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case RTC_CENTURY:
		rtc_write_time_reg(r, idx, v);
		break;
	case RTC_REG_A:
		r->cmos[RTC_REG_A] = v & 0x7f;	/* UIP is read-only */
		break;
	case RTC_REG_B:
		rtc_write_reg_b(r, v);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break;	/* read-only */
	default:
		r->cmos[idx] = v;
		break;
	}
}

/* Byte-wide ports: a wider access is split, index first (outw trick). */
static void
rtc_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
       bool is_write)
{
	struct rtc *r = opaque;
	uint32_t i;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < len; i++) {
		uint64_t port = offset + i;
		uint8_t idx = r->index & RTC_INDEX_MASK;

		if (port == 0) {
			if (is_write)
				r->index = data[i];
			else
				data[i] = r->index;
		} else if (port == 1) {
			if (is_write)
				rtc_write_data(r, idx, data[i]);
			else
				data[i] = rtc_read_data(r, idx);
		} else if (!is_write) {
			data[i] = 0xff;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

static void
rtc_put16(uint8_t *cmos, unsigned int at, uint64_t v, uint64_t cap)
{
	if (v > cap)
		v = cap;
	cmos[at] = v & 0xff;
	cmos[at + 1] = (v >> 8) & 0xff;
}

static void
rtc_fill_memory(struct rtc *r, uint64_t low, uint64_t high,
		unsigned int nr_cpus)
{
	uint64_t base_kib = low / KiB, v;

	if (base_kib > 640)
		base_kib = 640;
	rtc_put16(r->cmos, RTC_CMOS_BASE_MEM, base_kib, 0xffff);
	v = low > 1 * MiB ? (low - 1 * MiB) / KiB : 0;
	rtc_put16(r->cmos, RTC_CMOS_EXT_MEM, v, 0xffff);
	rtc_put16(r->cmos, RTC_CMOS_EXT_MEM2, v, 0xffff);
	v = low > 16 * MiB ? (low - 16 * MiB) / (64 * KiB) : 0;
	rtc_put16(r->cmos, RTC_CMOS_MEM_16M, v, 0xffff);
	v = high / (64 * KiB);
	if (v > 0xffffff)
		v = 0xffffff;
	r->cmos[RTC_CMOS_MEM_4G] = v & 0xff;
	r->cmos[RTC_CMOS_MEM_4G + 1] = (v >> 8) & 0xff;
	r->cmos[RTC_CMOS_MEM_4G + 2] = (v >> 16) & 0xff;
	if (nr_cpus == 0)
		nr_cpus = 1;
	r->cmos[RTC_CMOS_NR_CPUS] = nr_cpus > 256 ? 0xff : (uint8_t)(nr_cpus - 1);
}

struct rtc *
rtc_new(struct bus *pio, const struct platform_ops *p, uint64_t low_ram_bytes,
	uint64_t high_ram_bytes, unsigned int nr_cpus)
{
	struct rtc *r;
	int err;

	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->pio = pio;
	if (p)
		r->ops = *p;
	r->cmos[RTC_REG_A] = RTC_A_DEFAULT;
	r->cmos[RTC_REG_B] = RTC_B_DEFAULT;
	rtc_fill_memory(r, low_ram_bytes, high_ram_bytes, nr_cpus);
	r->uf_mark = rtc_host_now(NULL);
	clock_gettime(CLOCK_MONOTONIC, &r->pf_mark);
	err = pthread_mutex_init(&r->lock, NULL);
	if (err != 0) {
		free(r);
		errno = err;
		return NULL;
	}
	err = bus_register(pio, PORT_RTC, RTC_NR_PORTS, rtc_io, r, "rtc");
	if (err < 0) {
		rtc_free(r);
		errno = -err;
		return NULL;
	}
	r->registered = true;
	return r;
}

void
rtc_free(struct rtc *r)
{
	if (!r)
		return;
	if (r->registered)
		bus_unregister(r->pio, PORT_RTC);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
