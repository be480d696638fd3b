/* SPDX-License-Identifier: MIT */
#include "bus.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
bus_init(struct bus *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->name = name;
	if (pthread_rwlock_init(&b->lock, NULL) != 0)
		return -ENOMEM;
	pthread_mutex_init(&b->log_lock, NULL);
	return 0;
}

void
bus_destroy(struct bus *b)
{
	if (!b)
		return;
	free(b->ranges);
	b->ranges = NULL;
	b->nr_ranges = b->cap_ranges = 0;
	pthread_rwlock_destroy(&b->lock);
	pthread_mutex_destroy(&b->log_lock);
}

/* Index of the first range whose base is > addr. Caller holds the lock. */
static unsigned int
bus_upper(const struct bus *b, uint64_t addr)
{
	unsigned int lo = 0, hi = b->nr_ranges;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (b->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn,
	     void *opaque, const char *name)
{
	unsigned int i;
	int r = 0;

	if (len == 0 || base + len < base || !fn)
		return -EINVAL;
	pthread_rwlock_wrlock(&b->lock);
	i = bus_upper(b, base);
	if (i > 0) {
		const struct bus_range *prev = &b->ranges[i - 1];

		if (base - prev->base < prev->len) {
			r = -EEXIST;
			goto out;
		}
	}
	if (i < b->nr_ranges && b->ranges[i].base - base < len) {
		r = -EEXIST;
		goto out;
	}
	if (b->nr_ranges == b->cap_ranges) {
		unsigned int cap = b->cap_ranges ? b->cap_ranges * 2 : 16;
		struct bus_range *n = realloc(b->ranges, cap * sizeof(*n));

		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		b->ranges = n;
		b->cap_ranges = cap;
	}
	memmove(&b->ranges[i + 1], &b->ranges[i],
		(b->nr_ranges - i) * sizeof(b->ranges[0]));
	b->ranges[i] = (struct bus_range){ base, len, fn, opaque, name };
	b->nr_ranges++;
out:
	pthread_rwlock_unlock(&b->lock);
	return r;
}

int
bus_unregister(struct bus *b, uint64_t base)
{
	unsigned int i;
	int r = -ENOENT;

	pthread_rwlock_wrlock(&b->lock);
	i = bus_upper(b, base);
	if (i > 0 && b->ranges[i - 1].base == base) {
		memmove(&b->ranges[i - 1], &b->ranges[i],
			(b->nr_ranges - i) * sizeof(b->ranges[0]));
		b->nr_ranges--;
		r = 0;
	}
	pthread_rwlock_unlock(&b->lock);
	return r;
}

static void
bus_note_unowned(struct bus *b, uint64_t addr, uint32_t len, bool is_write)
{
	unsigned int i;
	bool log = true;

	__atomic_add_fetch(&b->unowned_count, 1, __ATOMIC_RELAXED);
	/* Rare path: a plain mutex keeps the table of logged addresses
	 * consistent between vCPU threads. */
	pthread_mutex_lock(&b->log_lock);
	for (i = 0; i < b->nr_logged; i++) {
		if (b->logged[i] == addr) {
			log = false;
			break;
		}
	}
	if (log && b->nr_logged < BUS_UNOWNED_LOGGED_MAX)
		b->logged[b->nr_logged++] = addr;
	else
		log = false;
	pthread_mutex_unlock(&b->log_lock);
	if (log)
		log_debug("%s: unowned %s of %u bytes at 0x%llx", b->name,
			  is_write ? "write" : "read", len,
			  (unsigned long long)addr);
}

bool
bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len,
	     bool is_write)
{
	struct bus_range range;
	unsigned int i;
	bool found = false;

	pthread_rwlock_rdlock(&b->lock);
	i = bus_upper(b, addr);
	if (i > 0) {
		const struct bus_range *r = &b->ranges[i - 1];
		uint64_t off = addr - r->base;

		if (off < r->len && len <= r->len - off) {
			range = *r;
			found = true;
		}
	}
	if (!found) {
		if (!is_write)
			memset(data, 0xff, len);
		bus_note_unowned(b, addr, len, is_write);
	}
	pthread_rwlock_unlock(&b->lock);
	/*
	 * The handler runs without the lock, so that it may itself register or
	 * move ranges (a PCI BAR write). Devices live as long as the bus; a
	 * racing access to a range just moved reaches the same device.
	 */
	if (found)
		range.fn(range.opaque, addr - range.base, data, len, is_write);
	return found;
}

uint64_t
bus_unowned_count(struct bus *b)
{
	return __atomic_load_n(&b->unowned_count, __ATOMIC_RELAXED);
}
