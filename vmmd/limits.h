/* SPDX-License-Identifier: MIT */
/*
 * A VM's CPU and memory limits, from its definition's resources: its
 * cgroup (cgroup.h) and the affinity of its threads.
 *
 * When what happens:
 *   daemon start   limits_host_init(): cgroups detected once, logged.
 *   vm start       limits_vm_prepare() before the fork: the group is made
 *                  (an existing directory is taken over) and every limit
 *                  written; a limit that cannot be applied fails the start,
 *                  naming it. limits_vm_attach() moves the new process in
 *                  while it still waits to exec, so all it allocates is
 *                  charged to the group.
 *   vm running     limits_vm_running() (vm.info answered, the PIT exists):
 *                  attached again for KVM's kernel threads, and the vCPU
 *                  threads learnt (vmm-run's vm.stats) and pinned:
 *                  cpu_pin[i] for vCPU i, device_cpus for every other
 *                  thread of the process.
 *   vm.set         limits_vm_apply(): the group's limits written again and
 *                  the threads pinned again, on the running process.
 *   process gone   limits_vm_exited(): the group removed (retried on a
 *                  timer while the kernel still counts a task in it).
 *   daemon restart limits_vm_reattach(): the existing group opened, or
 *                  made again, limited and joined when it is missing.
 *   daemon stop    limits_vm_detach(): handles freed, groups stay.
 *
 * The cpuset of the group is the union of the vCPUs' pins and
 * device_cpus; it bounds the whole process where the cpuset controller is
 * available, and the affinities do the pinning everywhere.
 */
#ifndef VMMD_LIMITS_H
#define VMMD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "proto/vmdef.h"
#include "vmmd/cgroup.h"

struct vmmd;
struct vm;

/* The group's limits for r: cpuset = union of cpu_pin[] and device_cpus
 * (empty when neither is set). */
void limits_from_resources(const struct vmdef_resources *r,
			   struct cgroup_limits *ret);

/* The first set resource that only a cgroup can enforce ("cpu_weight",
 * "cpu_quota", "memory_limit"), or NULL. Pinning works without one. */
const char *limits_need_cgroup(const struct vmdef_resources *r);

/*
 * Whether every CPU that r pins to is one vmm-run may run on (allowed:
 * vmmd's own affinity). 0, or -EINVAL with err naming the setting and the
 * CPU ("resources.cpu_pin[0]: CPU 7 is not available on this host
 * (allowed: 0-3)").
 */
int limits_check_cpus(const struct vmdef_resources *r,
		      const cpu_set_t *allowed, char *err, size_t errlen);

/* Detect the host's cgroups and log what was found (or why none). */
void limits_host_init(struct vmmd *d);
void limits_host_fini(struct vmmd *d);

/* Before the fork of a start: 0, or a negative errno with err (-EINVAL
 * for a limit this host cannot apply) and nothing left behind. */
int limits_vm_prepare(struct vm *vm, char *err, size_t errlen);
/* The new process pid, not yet exec'd, into the group. 0 or -errno. */
int limits_vm_attach(struct vm *vm, pid_t pid, char *err, size_t errlen);
/* The process answered its control socket: KVM threads, pinning. */
void limits_vm_running(struct vm *vm);

/*
 * Apply def's resources to vm's running process: the group's limits, then
 * the threads' affinity. 0, or a negative errno with err naming the
 * setting (-EBUSY: memory_limit below what the VM uses; -EINVAL: a limit
 * this host cannot apply); what was written before the error stays.
 */
int limits_vm_apply(struct vm *vm, const struct vmdef *def, char *err,
		    size_t errlen);

/* The process is gone: forget its threads; remove the group unless
 * keep_group (a restart reuses it). */
void limits_vm_exited(struct vm *vm, bool keep_group);

/* A reattached process: its group opened, or made and joined again. */
void limits_vm_reattach(struct vm *vm);

/* The daemon is going away: free the handle, leave the group. */
void limits_vm_detach(struct vm *vm);

/* The group's accounting; -ENODEV when the VM has no group. */
int limits_vm_stats(struct vm *vm, struct cgroup_stats *ret);

#endif
