/* SPDX-License-Identifier: MIT */
/*
 * Guest RAM: one shared mapping (a memfd), split into at most two
 * guest-physical regions around the 32-bit PCI hole. Every access to guest
 * memory goes through guest_mem_ptr(), which checks the whole range.
 */
#ifndef VMM_MEM_H
#define VMM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem_region {
	uint64_t gpa;		/* first guest-physical address */
	uint64_t size;		/* bytes */
	uint64_t offset;	/* offset into the mapping (and the memfd) */
};

struct guest_mem {
	uint8_t *hva;		/* the whole mapping, size bytes */
	uint64_t size;		/* RAM size in bytes */
	int fd;			/* the memfd behind the mapping, or -1 */
	int nr_regions;
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
};

/*
 * Compute the layout for ram_size bytes without mapping anything (for unit
 * tests of e820 and friends). ram_size must be a multiple of 4 KiB.
 * Returns 0 or -EINVAL.
 */
int guest_mem_layout(struct guest_mem *m, uint64_t ram_size);

/*
 * Lay out and map ram_size bytes of guest RAM, backed by a memfd.
 * Returns 0 or a negative errno; on failure *m is left unmapped.
 */
int guest_mem_init(struct guest_mem *m, uint64_t ram_size);

/* Unmap and close. Accepts a zeroed or already destroyed struct. */
void guest_mem_destroy(struct guest_mem *m);

/*
 * Host pointer for [gpa, gpa + len), or NULL unless the whole range lies in
 * one RAM region (and len does not overflow). Borrowed; valid while m is.
 */
void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* True when [gpa, gpa + len) lies inside guest RAM. */
bool guest_mem_contains(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* The lowest address above all RAM (for 64-bit BAR placement). */
uint64_t guest_mem_top(const struct guest_mem *m);

/* Copy in or out with checks; 0 or -EFAULT. */
int guest_mem_write(const struct guest_mem *m, uint64_t gpa,
		    const void *src, uint64_t len);
int guest_mem_read(const struct guest_mem *m, uint64_t gpa,
		   void *dst, uint64_t len);

#endif
