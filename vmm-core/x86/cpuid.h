/* SPDX-License-Identifier: MIT */
#ifndef VMM_X86_CPUID_H
#define VMM_X86_CPUID_H

#include <linux/kvm.h>

/*
 * Fetch KVM_GET_SUPPORTED_CPUID. Returns a new allocation (free()) in
 * *ret, or a negative errno.
 */
int cpuid_get_supported(int kvm_fd, struct kvm_cpuid2 **ret);

/*
 * Adjust a copy of the supported CPUID for vCPU index of nr_vcpus: APIC
 * ids, the topology leaves (1, 4, 0xB, 0x1F) for one package of nr_vcpus
 * cores with one thread each, and the hypervisor bit.
 */
void cpuid_fixup_vcpu(struct kvm_cpuid2 *c, unsigned int index,
		      unsigned int nr_vcpus);

#endif
