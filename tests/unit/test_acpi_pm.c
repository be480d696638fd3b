/* SPDX-License-Identifier: MIT */
/*
 * The ACPI PM register blocks, driven through a real port-I/O bus the way
 * a vCPU thread would, with a fake platform that records every interrupt
 * line change and stop request.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "dev/acpi_pm.h"
#include "layout.h"
#include "platform.h"

#define EVT		PORT_ACPI_PM1A_EVT
#define EN		(PORT_ACPI_PM1A_EVT + 2)
#define CNT		PORT_ACPI_PM1A_CNT
#define TMR		PORT_ACPI_PM_TMR
#define GPE0		PORT_ACPI_GPE0
#define SLP(typ)	((uint32_t)(typ) << ACPI_PM1_SLP_TYP_SHIFT)

struct recorder {
	pthread_mutex_t lock;
	unsigned int irq_calls;
	unsigned int raises;		/* 0 -> 1 transitions of the SCI */
	int level[32];
	uint32_t other_gsi_calls;
	unsigned int stops;
	enum vm_stop_reason reason;
};

struct fixture {
	struct bus pio;
	struct recorder rec;
	struct platform_ops ops;
	struct acpi_pm *pm;
};

static void
rec_irq_line(void *opaque, uint32_t gsi, int level)
{
	struct recorder *r = opaque;

	pthread_mutex_lock(&r->lock);
	r->irq_calls++;
	if (gsi != IRQ_ACPI_SCI)
		r->other_gsi_calls++;
	if (gsi < 32) {
		if (level && !r->level[gsi])
			r->raises++;
		r->level[gsi] = level;
	}
	pthread_mutex_unlock(&r->lock);
}

static void
rec_request_stop(void *opaque, enum vm_stop_reason reason)
{
	struct recorder *r = opaque;

	pthread_mutex_lock(&r->lock);
	r->stops++;
	r->reason = reason;
	pthread_mutex_unlock(&r->lock);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || bus_init(&f->pio, "pio") < 0)
		goto fail;
	pthread_mutex_init(&f->rec.lock, NULL);
	f->ops = (struct platform_ops){
		.irq_line = rec_irq_line,
		.request_stop = rec_request_stop,
		.opaque = &f->rec,
	};
	f->pm = acpi_pm_new(&f->pio, &f->ops);
	if (!f->pm)
		goto fail;
	*state = f;
	return 0;
fail:
	free(f);
	return -1;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	acpi_pm_free(f->pm);
	bus_destroy(&f->pio);
	pthread_mutex_destroy(&f->rec.lock);
	free(f);
	return 0;
}

static uint32_t
pio_in(struct fixture *f, uint16_t port, uint32_t len)
{
	uint8_t d[8];
	uint32_t v = 0, i;

	memset(d, 0x5a, sizeof(d));
	assert_true(bus_dispatch(&f->pio, port, d, len, false));
	for (i = 0; i < len && i < 4; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void
pio_out(struct fixture *f, uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t d[8] = { 0 };
	uint32_t i;

	for (i = 0; i < len && i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_dispatch(&f->pio, port, d, len, true));
}

static int
sci(struct fixture *f)
{
	int level;

	pthread_mutex_lock(&f->rec.lock);
	level = f->rec.level[IRQ_ACPI_SCI];
	pthread_mutex_unlock(&f->rec.lock);
	return level;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
test_s5_powers_off_once(void **state)
{
	struct fixture *f = *state;

	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_SLP_EN);
	assert_int_equal(f->rec.stops, 1);
	assert_int_equal(f->rec.reason, VM_STOP_POWEROFF);
	/* SLP_EN reads back as 0, SLP_TYP as written, SCI_EN always 1. */
	assert_int_equal(pio_in(f, CNT, 2),
			 SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_SCI_EN);
	assert_int_equal(f->rec.irq_calls, 0);
}

/* ACPICA writes SLP_TYP first and SLP_TYP | SLP_EN second. */
static void
test_s5_split_write(void **state)
{
	struct fixture *f = *state;

	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5));
	assert_int_equal(f->rec.stops, 0);
	assert_int_equal(pio_in(f, CNT, 2) & ACPI_PM1_SLP_TYP_MASK,
			 SLP(ACPI_SLP_TYP_S5));
	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_SLP_EN);
	assert_int_equal(f->rec.stops, 1);
	assert_int_equal(f->rec.reason, VM_STOP_POWEROFF);
}

/* SLP_TYP and SLP_EN both live in the high byte: a byte write does it. */
static void
test_s5_byte_write(void **state)
{
	struct fixture *f = *state;

	pio_out(f, CNT + 1, 1, (SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_SLP_EN) >> 8);
	assert_int_equal(f->rec.stops, 1);
	assert_int_equal(f->rec.reason, VM_STOP_POWEROFF);
	/* A write to the low byte alone never carries SLP_EN. */
	pio_out(f, CNT, 1, 0xff);
	assert_int_equal(f->rec.stops, 1);
}

static void
test_s5_without_slp_en(void **state)
{
	struct fixture *f = *state;

	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5));
	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_BM_RLD);
	pio_out(f, CNT, 2, SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_GBL_RLS);
	assert_int_equal(f->rec.stops, 0);
	assert_int_equal(f->rec.irq_calls, 0);
	assert_int_equal(pio_in(f, EVT, 2) & ACPI_PM1_WAK_STS, 0);
}

static void
test_other_sleep_types_ignored(void **state)
{
	struct fixture *f = *state;
	unsigned int typ;

	for (typ = 0; typ < 8; typ++) {
		if (typ == ACPI_SLP_TYP_S5)
			continue;
		pio_out(f, CNT, 2, SLP(typ) | ACPI_PM1_SLP_EN);
		/* Twice: the log line is once per type, the effect each time. */
		pio_out(f, CNT, 2, SLP(typ) | ACPI_PM1_SLP_EN);
		assert_int_equal(f->rec.stops, 0);
		/* "Woken" at once, so that a guest polling WAK_STS goes on. */
		assert_true(pio_in(f, EVT, 2) & ACPI_PM1_WAK_STS);
		pio_out(f, EVT, 2, ACPI_PM1_WAK_STS);
		assert_int_equal(pio_in(f, EVT, 2) & ACPI_PM1_WAK_STS, 0);
	}
	/* WAK_STS has no enable bit: never an SCI. */
	assert_int_equal(f->rec.raises, 0);
	assert_false(acpi_pm_sci_asserted(f->pm));
}

static void
test_power_button(void **state)
{
	struct fixture *f = *state;

	/* Not enabled: the status is set, the SCI stays low. */
	acpi_pm_power_button(f->pm);
	assert_true(pio_in(f, EVT, 2) & ACPI_PM1_PWRBTN_STS);
	assert_int_equal(sci(f), 0);
	assert_int_equal(f->rec.raises, 0);

	/* Enabling with the status pending raises it. */
	pio_out(f, EN, 2, ACPI_PM1_PWRBTN_EN);
	assert_int_equal(pio_in(f, EN, 2), ACPI_PM1_PWRBTN_EN);
	assert_int_equal(sci(f), 1);
	assert_int_equal(f->rec.raises, 1);
	assert_true(acpi_pm_sci_asserted(f->pm));

	/* Writing 0 clears nothing; writing 1 clears it and drops the SCI. */
	pio_out(f, EVT, 2, 0);
	assert_true(pio_in(f, EVT, 2) & ACPI_PM1_PWRBTN_STS);
	assert_int_equal(sci(f), 1);
	pio_out(f, EVT, 2, ACPI_PM1_PWRBTN_STS);
	assert_int_equal(pio_in(f, EVT, 2) & ACPI_PM1_PWRBTN_STS, 0);
	assert_int_equal(sci(f), 0);
	assert_false(acpi_pm_sci_asserted(f->pm));

	/* Enabled: a press raises the SCI at once. */
	acpi_pm_power_button(f->pm);
	assert_int_equal(sci(f), 1);
	assert_int_equal(f->rec.raises, 2);
	/* A second press while pending changes nothing on the line. */
	acpi_pm_power_button(f->pm);
	assert_int_equal(f->rec.raises, 2);

	/* Masking it again drops the line with the status still set. */
	pio_out(f, EN, 2, 0);
	assert_int_equal(sci(f), 0);
	assert_true(pio_in(f, EVT, 2) & ACPI_PM1_PWRBTN_STS);

	/* A 32-bit write clears status and sets enable in one go. */
	pio_out(f, EVT, 4, ACPI_PM1_PWRBTN_STS |
		(uint32_t)ACPI_PM1_PWRBTN_EN << 16);
	assert_int_equal(pio_in(f, EVT, 4),
			 (uint32_t)ACPI_PM1_PWRBTN_EN << 16);
	assert_int_equal(sci(f), 0);

	/* Byte-wide: PWRBTN_STS is bit 0 of the status's high byte. */
	acpi_pm_power_button(f->pm);
	assert_int_equal(sci(f), 1);
	assert_int_equal(pio_in(f, EVT + 1, 1), ACPI_PM1_PWRBTN_STS >> 8);
	pio_out(f, EVT + 1, 1, 0x01);
	assert_int_equal(sci(f), 0);
	assert_int_equal(f->rec.other_gsi_calls, 0);
	assert_int_equal(f->rec.stops, 0);
}

static void
test_enable_register_bits(void **state)
{
	struct fixture *f = *state;

	/* Only the defined enable bits stick. */
	pio_out(f, EN, 2, 0xffff);
	assert_int_equal(pio_in(f, EN, 2),
			 ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN |
			 ACPI_PM1_PWRBTN_EN | ACPI_PM1_SLPBTN_EN |
			 ACPI_PM1_RTC_EN | ACPI_PM1_PCIEXP_WAKE_DIS);
	pio_out(f, EN, 2, 0);
	assert_int_equal(pio_in(f, EN, 2), 0);
	/* The control register keeps only BM_RLD and SLP_TYP. */
	pio_out(f, CNT, 2, 0xffff & ~ACPI_PM1_SLP_EN);
	assert_int_equal(pio_in(f, CNT, 2),
			 ACPI_PM1_SCI_EN | ACPI_PM1_BM_RLD |
			 ACPI_PM1_SLP_TYP_MASK);
	assert_int_equal(f->rec.stops, 0);
}

static void
test_gpe0(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pio_in(f, GPE0, 4), 0);
	/* ACPICA clears all status and writes the enables at init. */
	pio_out(f, GPE0, 2, 0xffff);
	pio_out(f, GPE0 + 2, 2, 0x00ff);
	assert_int_equal(pio_in(f, GPE0, 2), 0);
	assert_int_equal(pio_in(f, GPE0 + 2, 2), 0x00ff);
	assert_int_equal(pio_in(f, GPE0 + 3, 1), 0x00);
	assert_int_equal(pio_in(f, GPE0 + 2, 1), 0xff);
	/* Nothing ever sets a GPE: no SCI. */
	assert_int_equal(f->rec.raises, 0);
}

/* Wrap-aware difference of two 24-bit timer values. */
static uint32_t
tmr_delta(uint32_t a, uint32_t b)
{
	return (b - a) & ((1u << ACPI_PM_TMR_BITS) - 1);
}

static void
test_pm_timer_rate(void **state)
{
	struct fixture *f = *state;
	uint64_t t0, t1, t2, t3;
	uint32_t a, b, d;
	double lo, hi;

	t0 = now_ns();
	a = pio_in(f, TMR, 4);
	t1 = now_ns();
	sleep_ms(50);
	t2 = now_ns();
	b = pio_in(f, TMR, 4);
	t3 = now_ns();
	assert_int_equal(a >> ACPI_PM_TMR_BITS, 0);
	assert_int_equal(b >> ACPI_PM_TMR_BITS, 0);
	d = tmr_delta(a, b);
	/*
	 * The reads happened somewhere in [t0, t1] and [t2, t3]: the ticks
	 * between them must match 3.579545 MHz over at least t2 - t1 and at
	 * most t3 - t0, give or take a tick of rounding and 5% of slack.
	 */
	lo = (double)(t2 - t1) * 1e-9 * ACPI_PM_TMR_HZ * 0.95 - 2;
	hi = (double)(t3 - t0) * 1e-9 * ACPI_PM_TMR_HZ * 1.05 + 2;
	if (d < lo || d > hi)
		fail_msg("timer advanced %u ticks in %.3f ms; expected "
			 "%.0f..%.0f", d, (double)(t3 - t0) / 1e6, lo, hi);
	/* 50 ms is about 179000 ticks. */
	assert_true(d > 150000);
}

static void
test_pm_timer_monotonic(void **state)
{
	struct fixture *f = *state;
	uint32_t prev, cur, hi16;
	unsigned int i;

	prev = pio_in(f, TMR, 4);
	for (i = 0; i < 20000; i++) {
		cur = pio_in(f, TMR, 4);
		/* Backwards would be a huge wrap-aware delta. */
		if (tmr_delta(prev, cur) > (1u << 20))
			fail_msg("timer went from %#x to %#x", prev, cur);
		prev = cur;
	}
	/* A narrow read of the top half: bits 24-31 are always 0. */
	hi16 = pio_in(f, TMR + 2, 2);
	assert_int_equal(hi16 >> 8, 0);
	/* Writes are ignored. */
	pio_out(f, TMR, 4, 0);
	cur = pio_in(f, TMR, 4);
	assert_true(tmr_delta(prev, cur) < (1u << 20));
}

/*
 * TMR_STS: set when the counter's top bit flips (every 2^23 ticks, about
 * 2.34 s). Slow, but it is the only way to see it happen for real.
 */
static void
test_tmr_sts(void **state)
{
	struct fixture *f = *state;
	uint64_t period_ms = (1000ULL << (ACPI_PM_TMR_BITS - 1)) /
			     ACPI_PM_TMR_HZ;
	uint32_t t;

	t = pio_in(f, TMR, 4);
	if (t >= (1u << (ACPI_PM_TMR_BITS - 1)) - 400000)
		skip();	/* the bit flips too soon to see it clear first */
	assert_int_equal(pio_in(f, EVT, 2) & ACPI_PM1_TMR_STS, 0);
	sleep_ms((unsigned int)period_ms + 100);
	assert_true(pio_in(f, EVT, 2) & ACPI_PM1_TMR_STS);
	assert_int_equal(sci(f), 0);
	/* Enabled while pending: the SCI follows. */
	pio_out(f, EN, 2, ACPI_PM1_TMR_EN);
	assert_int_equal(sci(f), 1);
	pio_out(f, EVT, 2, ACPI_PM1_TMR_STS);
	assert_int_equal(pio_in(f, EVT, 2) & ACPI_PM1_TMR_STS, 0);
	assert_int_equal(sci(f), 0);
}

/* Every size at every offset of the whole 0x600-0x62f range. */
static void
test_odd_accesses(void **state)
{
	struct fixture *f = *state;
	static const uint32_t sizes[] = { 1, 2, 3, 4, 8 };
	uint8_t d[8];
	uint16_t port;
	unsigned int i, owned = 0;

	for (port = EVT; port < GPE0 + 16; port++) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			memset(d, 0, sizeof(d));
			if (bus_dispatch(&f->pio, port, d, sizes[i], false))
				owned++;
			/* Writes of zero: harmless to any register. */
			memset(d, 0, sizeof(d));
			bus_dispatch(&f->pio, port, d, sizes[i], true);
		}
	}
	assert_true(owned > 0);
	/* The gaps between the blocks belong to nobody. */
	assert_false(bus_dispatch(&f->pio, CNT + 2, d, 1, false));
	assert_false(bus_dispatch(&f->pio, TMR + 4, d, 1, false));
	/* An access straddling a block's end is refused by the bus. */
	assert_false(bus_dispatch(&f->pio, CNT + 1, d, 2, false));
	/* Single bytes of PM1_CNT: SCI_EN in the low one. */
	assert_int_equal(pio_in(f, CNT, 1), ACPI_PM1_SCI_EN);
	assert_int_equal(pio_in(f, CNT + 1, 1), 0);
	assert_int_equal(f->rec.stops, 0);
	assert_int_equal(f->rec.raises, 0);
}

static void
squatter_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	    bool is_write)
{
	(void)opaque;
	(void)offset;
	(void)data;
	(void)len;
	(void)is_write;
	fail_msg("the squatter's port was accessed");
}

static void
test_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct bus b;
	struct acpi_pm *pm;
	uint8_t d[4];

	(void)f;
	acpi_pm_free(NULL);

	/* A second device on the same ports is refused. */
	errno = 0;
	assert_null(acpi_pm_new(&f->pio, &f->ops));
	assert_int_equal(errno, EEXIST);
	assert_true(bus_dispatch(&f->pio, EVT, d, 2, false));

	/* A clash on the last block undoes the first three. */
	assert_int_equal(bus_init(&b, "pio"), 0);
	assert_int_equal(bus_register(&b, GPE0, 1, squatter_io, NULL,
				      "squatter"), 0);
	errno = 0;
	assert_null(acpi_pm_new(&b, NULL));
	assert_int_equal(errno, EEXIST);
	assert_int_equal(b.nr_ranges, 1);
	assert_false(bus_dispatch(&b, EVT, d, 2, false));
	assert_int_equal(bus_unregister(&b, GPE0), 0);

	/* No platform: events still latch, nothing is called. */
	pm = acpi_pm_new(&b, NULL);
	assert_non_null(pm);
	assert_int_equal(b.nr_ranges, 4);
	acpi_pm_power_button(pm);
	memset(d, 0, sizeof(d));
	d[1] = ACPI_PM1_PWRBTN_EN >> 8;
	assert_true(bus_dispatch(&b, EVT + 2, d, 2, true));
	assert_true(acpi_pm_sci_asserted(pm));
	d[0] = 0;
	d[1] = (SLP(ACPI_SLP_TYP_S5) | ACPI_PM1_SLP_EN) >> 8;
	assert_true(bus_dispatch(&b, CNT, d, 2, true));
	acpi_pm_free(pm);
	/* Gone from the bus. */
	assert_int_equal(b.nr_ranges, 0);
	assert_false(bus_dispatch(&b, EVT, d, 2, false));
	bus_destroy(&b);

	errno = 0;
	assert_null(acpi_pm_new(NULL, NULL));
	assert_int_equal(errno, EINVAL);
}

struct hammer {
	struct fixture *f;
	unsigned int id;
};

static void *
hammer_thread(void *arg)
{
	struct hammer *h = arg;
	struct fixture *f = h->f;
	unsigned int i;
	uint8_t d[4];

	for (i = 0; i < 20000; i++) {
		switch ((i + h->id) % 5) {
		case 0:
			acpi_pm_power_button(f->pm);
			break;
		case 1:
			d[0] = 0;
			d[1] = ACPI_PM1_PWRBTN_STS >> 8;
			bus_dispatch(&f->pio, EVT, d, 2, true);
			break;
		case 2:
			d[0] = 0;
			d[1] = (i & 64) ? ACPI_PM1_PWRBTN_EN >> 8 : 0;
			bus_dispatch(&f->pio, EN, d, 2, true);
			break;
		case 3:
			bus_dispatch(&f->pio, TMR, d, 4, false);
			break;
		default:
			bus_dispatch(&f->pio, EVT, d, 4, false);
			break;
		}
	}
	return NULL;
}

/*
 * vCPU threads and the power button at once: afterwards the line the
 * platform saw agrees with the registers.
 */
static void
test_concurrent(void **state)
{
	struct fixture *f = *state;
	pthread_t t[4];
	struct hammer h[4];
	unsigned int i;
	uint32_t evt;
	bool pending;

	for (i = 0; i < 4; i++) {
		h[i] = (struct hammer){ f, i };
		assert_int_equal(pthread_create(&t[i], NULL, hammer_thread,
						&h[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	evt = pio_in(f, EVT, 4);
	pending = (evt & (evt >> 16) & ACPI_PM1_PWRBTN_STS) != 0;
	assert_int_equal(sci(f), pending);
	assert_int_equal(acpi_pm_sci_asserted(f->pm), pending);
	assert_int_equal(f->rec.stops, 0);
	assert_int_equal(f->rec.other_gsi_calls, 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_s5_powers_off_once),
		T(test_s5_split_write),
		T(test_s5_byte_write),
		T(test_s5_without_slp_en),
		T(test_other_sleep_types_ignored),
		T(test_power_button),
		T(test_enable_register_bits),
		T(test_gpe0),
		T(test_pm_timer_rate),
		T(test_pm_timer_monotonic),
		T(test_tmr_sts),
		T(test_odd_accesses),
		T(test_lifecycle),
		T(test_concurrent),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
