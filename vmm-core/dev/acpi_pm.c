/* SPDX-License-Identifier: MIT */
#include "dev/acpi_pm.h"
#include "layout.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Enable bits the guest may set; the others read as zero. */
#define ACPI_PM1_EN_WRITABLE (ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | \
			      ACPI_PM1_PWRBTN_EN | ACPI_PM1_SLPBTN_EN | \
			      ACPI_PM1_RTC_EN | ACPI_PM1_PCIEXP_WAKE_DIS)
/* Control bits that keep what the guest wrote (SLP_EN is write-only). */
#define ACPI_PM1_CNT_WRITABLE (ACPI_PM1_BM_RLD | ACPI_PM1_SLP_TYP_MASK)

#define ACPI_PM_TMR_MASK ((1ULL << ACPI_PM_TMR_BITS) - 1)

enum acpi_pm_block {
	ACPI_PM_BLOCK_EVT,
	ACPI_PM_BLOCK_CNT,
	ACPI_PM_BLOCK_TMR,
	ACPI_PM_BLOCK_GPE0,
	ACPI_PM_BLOCK_MAX,
};

struct acpi_pm {
	pthread_mutex_t lock;
	struct bus *pio;
	struct platform_ops ops;
	bool registered[ACPI_PM_BLOCK_MAX];
	uint16_t pm1_sts;	/* without TMR_STS, which is derived */
	uint16_t pm1_en;
	uint16_t pm1_cnt;	/* only ACPI_PM1_CNT_WRITABLE bits */
	uint16_t gpe0_sts;
	uint16_t gpe0_en;
	struct timespec tmr_start;
	/*
	 * TMR_STS is set whenever the timer's top bit flips. Rather than
	 * running a host timer, remember in which half-period of the counter
	 * the guest last cleared it: the bit is set once that has moved on.
	 */
	uint64_t tmr_cleared_period;
	bool sci_level;
	uint8_t sleep_logged;	/* one bit per SLP_TYP already logged */
};

static const struct {
	uint16_t port;
	uint16_t len;
	const char *name;
} acpi_pm_blocks[ACPI_PM_BLOCK_MAX] = {
	[ACPI_PM_BLOCK_EVT] = { PORT_ACPI_PM1A_EVT, ACPI_PM1_EVT_LEN,
				"acpi-pm1a-evt" },
	[ACPI_PM_BLOCK_CNT] = { PORT_ACPI_PM1A_CNT, ACPI_PM1_CNT_LEN,
				"acpi-pm1a-cnt" },
	[ACPI_PM_BLOCK_TMR] = { PORT_ACPI_PM_TMR, ACPI_PM_TMR_LEN,
				"acpi-pm-tmr" },
	[ACPI_PM_BLOCK_GPE0] = { PORT_ACPI_GPE0, ACPI_GPE0_LEN, "acpi-gpe0" },
};

/* Timer ticks since the device was created; never goes backwards. */
static uint64_t
acpi_pm_ticks(const struct acpi_pm *pm)
{
	struct timespec now;
	int64_t sec, nsec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sec = now.tv_sec - pm->tmr_start.tv_sec;
	nsec = now.tv_nsec - pm->tmr_start.tv_nsec;
	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	if (sec < 0)
		return 0;
	/* Split so that nothing overflows for centuries of uptime. */
	return (uint64_t)sec * ACPI_PM_TMR_HZ +
	       (uint64_t)nsec * ACPI_PM_TMR_HZ / 1000000000ULL;
}

static uint64_t
acpi_pm_tmr_period(uint64_t ticks)
{
	return ticks >> (ACPI_PM_TMR_BITS - 1);
}

/* PM1 status as the guest sees it. Caller holds the lock. */
static uint16_t
acpi_pm1_sts(const struct acpi_pm *pm, uint64_t ticks)
{
	uint16_t sts = pm->pm1_sts;

	if (acpi_pm_tmr_period(ticks) != pm->tmr_cleared_period)
		sts |= ACPI_PM1_TMR_STS;
	return sts;
}

/*
 * Drive the SCI from (status & enable). The line is only moved when its
 * level changes, under the lock, so that a clear racing a power button
 * press cannot leave the line low with an event pending.
 */
static void
acpi_pm_update_sci(struct acpi_pm *pm, uint64_t ticks)
{
	bool level;

	level = (acpi_pm1_sts(pm, ticks) & pm->pm1_en) != 0 ||
		(pm->gpe0_sts & pm->gpe0_en) != 0;
	if (level == pm->sci_level)
		return;
	pm->sci_level = level;
	platform_irq_line(&pm->ops, IRQ_ACPI_SCI, level ? 1 : 0);
}

/*
 * The bytes of an access that fall inside a register block of size bytes,
 * as a value and a byte mask positioned at the block's offset 0. Bytes
 * outside the block are dropped, so odd offsets and sizes are harmless.
 */
static void
acpi_pm_gather(uint64_t offset, const uint8_t *data, uint32_t len,
	       uint32_t size, uint32_t *ret_val, uint32_t *ret_mask)
{
	uint32_t val = 0, mask = 0, i;

	for (i = 0; i < len && offset < size && i < size - offset; i++) {
		uint32_t shift = 8 * (uint32_t)(offset + i);

		val |= (uint32_t)data[i] << shift;
		mask |= 0xffu << shift;
	}
	*ret_val = val;
	*ret_mask = mask;
}

/* Fill a read from the block's value; bytes past the block read as ones. */
static void
acpi_pm_scatter(uint64_t offset, uint8_t *data, uint32_t len, uint32_t size,
		uint32_t value)
{
	uint32_t i;

	for (i = 0; i < len; i++) {
		if (offset < size && i < size - offset)
			data[i] = (uint8_t)(value >> (8 * (offset + i)));
		else
			data[i] = 0xff;
	}
}

static void
acpi_pm_evt_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	       bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint64_t ticks;
	uint32_t val, mask, clear;
	uint16_t en_val, en_mask;

	pthread_mutex_lock(&pm->lock);
	ticks = acpi_pm_ticks(pm);
	if (is_write) {
		acpi_pm_gather(offset, data, len, ACPI_PM1_EVT_LEN, &val,
			       &mask);
		/* Status bits are write-one-to-clear. */
		clear = val & mask & 0xffff;
		pm->pm1_sts &= (uint16_t)~clear;
		if (clear & ACPI_PM1_TMR_STS)
			pm->tmr_cleared_period = acpi_pm_tmr_period(ticks);
		en_val = (uint16_t)(val >> 16);
		en_mask = (uint16_t)(mask >> 16);
		pm->pm1_en = ((pm->pm1_en & ~en_mask) | (en_val & en_mask)) &
			     ACPI_PM1_EN_WRITABLE;
	} else {
		acpi_pm_scatter(offset, data, len, ACPI_PM1_EVT_LEN,
				acpi_pm1_sts(pm, ticks) |
				(uint32_t)pm->pm1_en << 16);
	}
	/*
	 * TMR_STS sets itself as time passes, with no host timer behind it:
	 * the line catches up whenever the guest looks at the block.
	 */
	acpi_pm_update_sci(pm, ticks);
	pthread_mutex_unlock(&pm->lock);
}

static void
acpi_pm_cnt_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	       bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t val, mask;
	unsigned int typ = 0;
	bool slp_en = false, warn = false, poweroff = false;

	pthread_mutex_lock(&pm->lock);
	if (!is_write) {
		/* SMI_CMD is 0 in the FADT: ACPI mode is always on. */
		acpi_pm_scatter(offset, data, len, ACPI_PM1_CNT_LEN,
				pm->pm1_cnt | ACPI_PM1_SCI_EN);
		pthread_mutex_unlock(&pm->lock);
		return;
	}
	acpi_pm_gather(offset, data, len, ACPI_PM1_CNT_LEN, &val, &mask);
	pm->pm1_cnt = ((pm->pm1_cnt & ~mask) | (val & mask)) &
		      ACPI_PM1_CNT_WRITABLE;
	if (val & mask & ACPI_PM1_SLP_EN) {
		slp_en = true;
		typ = (pm->pm1_cnt & ACPI_PM1_SLP_TYP_MASK) >>
		      ACPI_PM1_SLP_TYP_SHIFT;
	}
	if (slp_en && typ == ACPI_SLP_TYP_S5) {
		poweroff = true;
	} else if (slp_en) {
		/*
		 * Any other state is not offered by the DSDT. Wake up at
		 * once, so that a guest waiting for WAK_STS carries on.
		 */
		pm->pm1_sts |= ACPI_PM1_WAK_STS;
		if (!(pm->sleep_logged & (1u << typ))) {
			pm->sleep_logged |= (uint8_t)(1u << typ);
			warn = true;
		}
		acpi_pm_update_sci(pm, acpi_pm_ticks(pm));
	}
	pthread_mutex_unlock(&pm->lock);

	if (warn)
		log_warn("acpi-pm: guest asked for sleep type %u; only S5 "
			 "(type %u) does anything, ignored", typ,
			 ACPI_SLP_TYP_S5);
	if (poweroff)
		platform_request_stop(&pm->ops, VM_STOP_POWEROFF);
}

static void
acpi_pm_tmr_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	       bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint64_t ticks;

	/* The timer is read-only; the lock only orders it with TMR_STS. */
	if (is_write)
		return;
	pthread_mutex_lock(&pm->lock);
	ticks = acpi_pm_ticks(pm);
	pthread_mutex_unlock(&pm->lock);
	acpi_pm_scatter(offset, data, len, ACPI_PM_TMR_LEN,
			(uint32_t)(ticks & ACPI_PM_TMR_MASK));
}

static void
acpi_pm_gpe0_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t val, mask;
	uint16_t en_val, en_mask;

	pthread_mutex_lock(&pm->lock);
	if (!is_write) {
		acpi_pm_scatter(offset, data, len, ACPI_GPE0_LEN,
				pm->gpe0_sts | (uint32_t)pm->gpe0_en << 16);
		goto out;
	}
	acpi_pm_gather(offset, data, len, ACPI_GPE0_LEN, &val, &mask);
	pm->gpe0_sts &= (uint16_t)~(val & mask);
	en_val = (uint16_t)(val >> 16);
	en_mask = (uint16_t)(mask >> 16);
	pm->gpe0_en = (pm->gpe0_en & ~en_mask) | (en_val & en_mask);
	acpi_pm_update_sci(pm, acpi_pm_ticks(pm));
out:
	pthread_mutex_unlock(&pm->lock);
}

static const bus_io_fn acpi_pm_handlers[ACPI_PM_BLOCK_MAX] = {
	[ACPI_PM_BLOCK_EVT] = acpi_pm_evt_io,
	[ACPI_PM_BLOCK_CNT] = acpi_pm_cnt_io,
	[ACPI_PM_BLOCK_TMR] = acpi_pm_tmr_io,
	[ACPI_PM_BLOCK_GPE0] = acpi_pm_gpe0_io,
};

static void
acpi_pm_unregister(struct acpi_pm *pm)
{
	int i;

	for (i = 0; i < ACPI_PM_BLOCK_MAX; i++) {
		if (!pm->registered[i])
			continue;
		bus_unregister(pm->pio, acpi_pm_blocks[i].port);
		pm->registered[i] = false;
	}
}

struct acpi_pm *
acpi_pm_new(struct bus *pio, const struct platform_ops *p)
{
	struct acpi_pm *pm;
	int i, r;

	if (!pio) {
		errno = EINVAL;
		return NULL;
	}
	pm = calloc(1, sizeof(*pm));
	if (!pm)
		return NULL;
	r = pthread_mutex_init(&pm->lock, NULL);
	if (r != 0) {
		free(pm);
		errno = r;
		return NULL;
	}
	pm->pio = pio;
	if (p)
		pm->ops = *p;
	clock_gettime(CLOCK_MONOTONIC, &pm->tmr_start);
	for (i = 0; i < ACPI_PM_BLOCK_MAX; i++) {
		r = bus_register(pio, acpi_pm_blocks[i].port,
				 acpi_pm_blocks[i].len, acpi_pm_handlers[i], pm,
				 acpi_pm_blocks[i].name);
		if (r < 0) {
			acpi_pm_unregister(pm);
			pthread_mutex_destroy(&pm->lock);
			free(pm);
			errno = -r;
			return NULL;
		}
		pm->registered[i] = true;
	}
	return pm;
}

void
acpi_pm_free(struct acpi_pm *pm)
{
	if (!pm)
		return;
	acpi_pm_unregister(pm);
	pthread_mutex_destroy(&pm->lock);
	free(pm);
}

void
acpi_pm_power_button(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->pm1_sts |= ACPI_PM1_PWRBTN_STS;
	acpi_pm_update_sci(pm, acpi_pm_ticks(pm));
	pthread_mutex_unlock(&pm->lock);
}

bool
acpi_pm_sci_asserted(struct acpi_pm *pm)
{
	bool level;

	pthread_mutex_lock(&pm->lock);
	level = pm->sci_level;
	pthread_mutex_unlock(&pm->lock);
	return level;
}
