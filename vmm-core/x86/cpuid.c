/* SPDX-License-Identifier: MIT */
#include "x86/cpuid.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

int
cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **ret)
{
	unsigned int nent = 64;

	for (;;) {
		struct kvm_cpuid2 *c;

		c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*ret = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return -errno;
		nent *= 2;
	}
}

/* Bits needed to number n things: ceil(log2(n)). */
static unsigned int
cpuid_width(unsigned int n)
{
	unsigned int w = 0;

	while ((1u << w) < n)
		w++;
	return w;
}

void
cpuid_fixup_vcpu(struct kvm_cpuid2 *c, unsigned int index,
		 unsigned int nr_vcpus)
{
	unsigned int core_width = cpuid_width(nr_vcpus);
	unsigned int i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* APIC id, logical count per package, HTT, and the
			 * hypervisor-present bit. */
			e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) |
				 ((nr_vcpus > 255 ? 255 : nr_vcpus) << 16);
			if (nr_vcpus > 1)
				e->edx |= 1u << 28;
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31;
			break;
		case 4: {
			unsigned int level = (e->eax >> 5) & 7;
			unsigned int cores = nr_vcpus > 64 ? 64 : nr_vcpus;
			unsigned int sharing = level >= 3 ? nr_vcpus - 1 : 0;

			if ((e->eax & 0x1f) == 0)
				break;	/* no more caches */
			e->eax &= 0x3fff;
			e->eax |= (cores - 1) << 26;
			e->eax |= (sharing > 0xfff ? 0xfff : sharing) << 14;
			break;
		}
		case 0xb:
		case 0x1f:
			/* One thread per core, nr_vcpus cores per package. */
			e->edx = index;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = core_width;
				e->ebx = nr_vcpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		default:
			break;
		}
	}
}
