/* SPDX-License-Identifier: MIT */
/* CPU lists ("0-3,6") to bitmaps and back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cpulist.h"

_Static_assert(CPULIST_MAX <= CPU_SETSIZE, "cpulist must fit a cpu_set_t");

void
cpulist_zero(struct cpulist *cl)
{
	memset(cl, 0, sizeof(*cl));
}

int
cpulist_set(struct cpulist *cl, unsigned int cpu)
{
	if (cpu >= CPULIST_MAX)
		return -ERANGE;
	cl->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
	return 0;
}

bool
cpulist_has(const struct cpulist *cl, unsigned int cpu)
{
	if (cpu >= CPULIST_MAX)
		return false;
	return (cl->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned int
cpulist_count(const struct cpulist *cl)
{
	unsigned int i, n = 0;

	for (i = 0; i < CPULIST_MAX / 64; i++)
		n += (unsigned int)__builtin_popcountll(cl->bits[i]);
	return n;
}

bool
cpulist_equal(const struct cpulist *a, const struct cpulist *b)
{
	return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

int
cpulist_last(const struct cpulist *cl)
{
	int i;

	for (i = CPULIST_MAX / 64 - 1; i >= 0; i--)
		if (cl->bits[i])
			return i * 64 + 63 - __builtin_clzll(cl->bits[i]);
	return -ENOENT;
}

void
cpulist_to_cpuset(const struct cpulist *cl, cpu_set_t *ret)
{
	unsigned int cpu;

	CPU_ZERO(ret);
	for (cpu = 0; cpu < CPULIST_MAX; cpu++)
		if (cpulist_has(cl, cpu))
			CPU_SET(cpu, ret);
}

/*
 * One CPU number at *p. Digits are counted so that a long number reports
 * -ERANGE instead of overflowing.
 */
static int
cpulist_number(const char **p, unsigned int *ret_cpu)
{
	const char *s = *p;
	unsigned int v = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v < CPULIST_MAX)
			v = v * 10 + (unsigned int)(*s - '0');
	}
	*p = s;
	*ret_cpu = v;
	return 0;
}

int
cpulist_parse(const char *s, struct cpulist *ret)
{
	struct cpulist cl;
	const char *p = s;
	unsigned int lo, hi, cpu;
	int r, range_err = 0;

	if (!s || !*s)
		return -EINVAL;
	cpulist_zero(&cl);
	for (;;) {
		r = cpulist_number(&p, &lo);
		if (r < 0)
			return r;
		hi = lo;
		if (*p == '-') {
			p++;
			r = cpulist_number(&p, &hi);
			if (r < 0)
				return r;
		}
		/* Syntax errors anywhere win over a range error. */
		if (lo >= CPULIST_MAX || hi >= CPULIST_MAX)
			range_err = -ERANGE;
		else if (hi < lo)
			return -EINVAL;
		else
			for (cpu = lo; cpu <= hi; cpu++)
				cpulist_set(&cl, cpu);
		if (*p == '\0')
			break;
		if (*p != ',')
			return -EINVAL;
		p++;
	}
	if (range_err)
		return range_err;
	*ret = cl;
	return 0;
}

int
cpulist_format(const struct cpulist *cl, char *buf, size_t len)
{
	unsigned int cpu = 0, end;
	size_t off = 0;
	int n;

	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	while (cpu < CPULIST_MAX) {
		if (!cpulist_has(cl, cpu)) {
			cpu++;
			continue;
		}
		end = cpu;
		while (end + 1 < CPULIST_MAX && cpulist_has(cl, end + 1))
			end++;
		if (end == cpu)
			n = snprintf(buf + off, len - off, "%s%u",
				     off ? "," : "", cpu);
		else
			n = snprintf(buf + off, len - off, "%s%u-%u",
				     off ? "," : "", cpu, end);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
		off += (size_t)n;
		cpu = end + 1;
	}
	return 0;
}
