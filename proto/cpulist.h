/* SPDX-License-Identifier: MIT */
/*
 * CPU lists as the kernel writes them ("0-3,6"): comma-separated CPU
 * numbers and inclusive ranges, each CPU below CPULIST_MAX. A set of CPUs
 * is a fixed bitmap, the same size as glibc's cpu_set_t, so pinning needs
 * no allocation.
 */
#ifndef PROTO_CPULIST_H
#define PROTO_CPULIST_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPULIST_MAX 1024

struct cpulist {
	uint64_t bits[CPULIST_MAX / 64];
};

/*
 * Parse s ("0-3,6", "5", "0-1,1-2" overlapping is fine) into a set.
 * Rejects empty lists, empty items ("1,,2"), reversed ranges ("3-1"),
 * signs, spaces and anything else. Returns 0, -EINVAL for bad syntax or
 * -ERANGE for a CPU at or above CPULIST_MAX.
 */
int cpulist_parse(const char *s, struct cpulist *ret);

/*
 * Canonical text of a set ("0-3,6"; ranges of two CPUs as "4-5"; the empty
 * set as ""). Returns 0 or -ENOSPC when buf (len bytes) is too small; the
 * longest possible output is under 4096 bytes.
 */
int cpulist_format(const struct cpulist *cl, char *buf, size_t len);

void cpulist_zero(struct cpulist *cl);
/* Add a CPU; -ERANGE when cpu >= CPULIST_MAX. */
int cpulist_set(struct cpulist *cl, unsigned int cpu);
bool cpulist_has(const struct cpulist *cl, unsigned int cpu);
unsigned int cpulist_count(const struct cpulist *cl);
bool cpulist_equal(const struct cpulist *a, const struct cpulist *b);

/* The highest CPU in the set, or -ENOENT when it is empty. */
int cpulist_last(const struct cpulist *cl);

/* The set as a cpu_set_t for sched_setaffinity(). */
void cpulist_to_cpuset(const struct cpulist *cl, cpu_set_t *ret);

#endif
