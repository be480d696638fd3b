/* SPDX-License-Identifier: MIT */
/*
 * A bus of address ranges: port I/O and MMIO exits are dispatched to the
 * device that registered the range holding the address. One handler
 * signature for both spaces; a handler gets the offset into its range.
 * A registered device must outlive the bus (handlers run without its lock).
 */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Handle an access of len bytes (1, 2, 4 or 8) at offset into the range.
 * For a read, fill data[0..len); for a write, data holds the value
 * (little-endian, as the guest wrote it).
 */
typedef void (*bus_io_fn)(void *opaque, uint64_t offset, uint8_t *data,
			  uint32_t len, bool is_write);

struct bus_range {
	uint64_t base;
	uint64_t len;
	bus_io_fn fn;
	void *opaque;
	const char *name;	/* borrowed, for logs */
};

#define BUS_UNOWNED_LOGGED_MAX 64

struct bus {
	const char *name;		/* "pio" or "mmio", for logs */
	pthread_rwlock_t lock;
	struct bus_range *ranges;	/* sorted by base, non-overlapping */
	unsigned int nr_ranges;
	unsigned int cap_ranges;
	/* Accesses nothing owns: counted, each address logged once (the
	 * first BUS_UNOWNED_LOGGED_MAX of them). */
	uint64_t unowned_count;
	pthread_mutex_t log_lock;
	unsigned int nr_logged;
	uint64_t logged[BUS_UNOWNED_LOGGED_MAX];
};

int bus_init(struct bus *b, const char *name);
void bus_destroy(struct bus *b);

/*
 * Register [base, base + len) for fn. Returns 0, -EEXIST when it overlaps a
 * range already registered, -EINVAL for an empty or wrapping range, -ENOMEM.
 */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_io_fn fn,
		 void *opaque, const char *name);

/* Remove the range registered at exactly base. 0 or -ENOENT. */
int bus_unregister(struct bus *b, uint64_t base);

/*
 * Dispatch one access. Returns true when a device owns addr. An access
 * nothing owns is counted, logged once per address, and reads as all ones.
 * An access that straddles the end of a range is unowned.
 */
bool bus_dispatch(struct bus *b, uint64_t addr, uint8_t *data, uint32_t len,
		  bool is_write);

uint64_t bus_unowned_count(struct bus *b);

#endif
