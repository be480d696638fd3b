/* SPDX-License-Identifier: MIT */
/*
 * One cgroup per VM, under vmmd's own part of the cgroup tree, on cgroup
 * v2 or v1: CPU weight and quota, a cpuset, a memory limit, and the
 * accounting read back for vm.stats.
 *
 * Where the groups go:
 *   v2  vmmd's own cgroup (from /proc/self/cgroup, "0::/system.slice/
 *       vmmd.service" under systemd with Delegate=yes) is the top of its
 *       subtree. A cgroup with controllers enabled for its children may not
 *       hold processes, so detection moves every process of the top into
 *       TOP/daemon, enables the controllers in TOP/cgroup.subtree_control and
 *       TOP/vms/cgroup.subtree_control, and VMs live in TOP/vms/NAME. When
 *       vmmd already runs in TOP/daemon (a restart inside the same unit), TOP
 *       is its parent. When vmmd is in the root cgroup, TOP is /SUBTREE
 *       ("/vmmd") and nothing is moved.
 *   v1  in each hierarchy (cpu, cpuacct, cpuset, memory; cpu and cpuacct
 *       often share one), VMs live in OWN/SUBTREE/NAME, OWN being vmmd's
 *       cgroup in that hierarchy ("/" for a daemon started by hand), so the
 *       VMs stay inside whatever limits vmmd itself was given.
 *   A host whose ROOT has cgroup2 with none of cpu, cpuset, memory in its
 *   cgroup.controllers (hybrid: everything bound to v1) uses v1: the
 *   hierarchies mounted under ROOT (from /proc/self/mountinfo, else the
 *   usual ROOT/cpu, ROOT/cpu,cpuacct, ... directories), or when none is
 *   under ROOT, the v1 hierarchies mounted anywhere.
 *
 * What a limit writes (0 / empty = unset, which writes the default back):
 *   setting          v2                          v1
 *   cpu_weight W     cpu.weight = W              cpu.shares = W*1024/100,
 *     (1..10000)       unset: 100                  within 2..262144
 *                                                  unset: 1024
 *   cpu_quota Q      cpu.max = "Q*P/1000 P"      cpu.cfs_period_us = P,
 *     (milli-CPUs)     unset: "max 100000"         cpu.cfs_quota_us = Q*P/1000
 *                                                  unset: quota -1
 *     P = 100000 us; 1000000 us (the kernel's longest) below 0.01 CPU, so
 *     the quota stays above the kernel's 1 ms minimum.
 *   cpuset S         cpuset.cpus = S             cpuset.cpus = S (cpuset.mems
 *     (cpu list)       unset: "" (inherit)         is copied from the parent
 *                                                  when the group is made)
 *                                                  unset: the parent's cpus
 *   memory_limit M   memory.high = M - M/20,     memory.limit_in_bytes = M
 *     (bytes)          memory.max = M              unset: -1
 *                      unset: "max", "max"
 *   A VM nearing its limit is first slowed and reclaimed (memory.high, at
 *   95%) and only killed by the kernel at memory.max. A limit below what
 *   the group uses now and cannot give back is refused (-EBUSY) on both
 *   versions instead of having the kernel kill the VM: v1's kernel refuses
 *   it by itself; on v2 memory.high is written first (the kernel reclaims
 *   towards it), and when memory.current is still above the limit the old
 *   memory.high is put back.
 *
 * Setting names in messages are those of the VM definition: cpu_weight,
 * cpu_quota, cpu_pin (the cpuset), memory_limit. A set limit the host
 * cannot apply is an error naming it, never skipped.
 *
 * Library code: no logging; errors are negative errno values with a
 * one-line message in err (err may be NULL when errlen is 0).
 */
#ifndef VMMD_CGROUP_H
#define VMMD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/cpulist.h"

#define CGROUP_ROOT_DEFAULT	"/sys/fs/cgroup"
#define CGROUP_SUBTREE_DEFAULT	"vmmd"
#define CGROUP_CPU_WEIGHT_MIN	1u
#define CGROUP_CPU_WEIGHT_MAX	10000u

enum cgroup_version {
	CGROUP_NONE,		/* no usable controllers: limits are refused */
	CGROUP_V1,
	CGROUP_V2,
	CGROUP_VERSION_MAX
};

enum cgroup_ctrl {
	CGROUP_CTRL_CPU,	/* weight, quota, throttling statistics */
	CGROUP_CTRL_CPUACCT,	/* CPU time used (v2: cpu.stat, always there) */
	CGROUP_CTRL_CPUSET,
	CGROUP_CTRL_MEMORY,
	CGROUP_CTRL_MAX
};

struct cgroup_host;
struct cgroup_vm;

/* Where detection looks; NULL members take the defaults. */
struct cgroup_host_params {
	const char *root;	/* CGROUP_ROOT_DEFAULT */
	const char *proc;	/* "/proc": self/cgroup, self/mountinfo, PID/ */
	const char *subtree;	/* CGROUP_SUBTREE_DEFAULT: see above */
};

/* Every member 0 / empty when unset. */
struct cgroup_limits {
	uint32_t cpu_weight;		/* 1..10000, relative share */
	uint32_t cpu_quota_milli;	/* CPUs x 1000 */
	struct cpulist cpuset;		/* host CPUs the VM may run on */
	uint64_t memory_limit;		/* bytes, the whole process */
};

/* All times in nanoseconds. A has_ flag false: this host cannot say. */
struct cgroup_stats {
	bool has_cpu;
	uint64_t cpu_usage_ns;
	bool has_cpu_split;		/* user and system below */
	uint64_t cpu_user_ns;
	uint64_t cpu_system_ns;
	bool has_throttle;
	uint64_t cpu_nr_periods;
	uint64_t cpu_nr_throttled;
	uint64_t cpu_throttled_ns;
	bool has_memory;
	uint64_t memory_current;	/* bytes */
	bool has_memory_peak;
	uint64_t memory_peak;		/* bytes, since the group was made */
};

/* What cgroup_vm_attach() did with KVM's kernel threads of the VM. */
struct cgroup_attach_result {
	unsigned int kthreads_found;	/* kvm-pit/PID, kvm-nx-lpage-recovery-PID */
	unsigned int kthreads_moved;	/* the others the kernel refused */
};

/*
 * Find which cgroup version ROOT offers and prepare vmmd's subtree (v2:
 * move vmmd into TOP/daemon and enable controllers; v1: make OWN/SUBTREE in
 * each hierarchy, with the parent's cpuset). A controller that cannot be
 * set up is marked unavailable with the reason, and the limits that need
 * it are refused later with that reason: detection itself fails only for
 * bad parameters (-EINVAL, -ENAMETOOLONG) or -ENOMEM. *ret is new
 * (cgroup_host_free()). cgroup_host_describe() says what was found, for
 * the caller to log once.
 */
int cgroup_host_detect(const char *root, struct cgroup_host **ret, char *err,
		       size_t errlen);
int cgroup_host_detect_params(const struct cgroup_host_params *p,
			      struct cgroup_host **ret, char *err,
			      size_t errlen);
void cgroup_host_free(struct cgroup_host *h);

enum cgroup_version cgroup_host_version(const struct cgroup_host *h);
/* One line: "cgroup v1: cpu at /sys/fs/cgroup/cpu (VM groups in ...), ...". */
const char *cgroup_host_describe(const struct cgroup_host *h);
bool cgroup_host_has(const struct cgroup_host *h, enum cgroup_ctrl c);
/* The directory VM groups of c are made in, or NULL when c is unavailable. */
const char *cgroup_host_base(const struct cgroup_host *h, enum cgroup_ctrl c);
const char *cgroup_ctrl_name(enum cgroup_ctrl c);

/*
 * Make the VM's group in every available hierarchy (an existing directory
 * of that name is taken over); v1 cpuset groups get the parent's
 * cpuset.cpus and cpuset.mems, without which no process may join. name:
 * [A-Za-z0-9._-], not starting with '.', else -EINVAL. -EEXIST when the
 * name is a cgroup file there ("tasks"). On a host without controllers the
 * VM gets an empty group: attach does nothing and set limits are refused.
 * *ret is new (cgroup_vm_free()) and borrows h, which must outlive it.
 */
int cgroup_vm_create(struct cgroup_host *h, const char *name,
		     struct cgroup_vm **ret, char *err, size_t errlen);
/*
 * The group of a VM made before (a restarted daemon reattaching to a
 * running VM): -ENOENT when it is missing in a hierarchy.
 */
int cgroup_vm_open_existing(struct cgroup_host *h, const char *name,
			    struct cgroup_vm **ret, char *err, size_t errlen);
/* Frees the handle only; the group stays (cgroup_vm_destroy()). */
void cgroup_vm_free(struct cgroup_vm *g);

/*
 * Write every limit of l (unset ones back to their defaults), in the order
 * cpu_weight, cpu_quota, cpu_pin, memory_limit; on a running VM too.
 * Everything is checked before anything is written: -EINVAL for a value
 * out of range or CPUs outside vmmd's own cpuset, -EOPNOTSUPP for a set
 * limit whose controller is unavailable. A value the kernel refuses stops
 * there with its errno (-EBUSY: memory in use above the new limit); the
 * earlier settings stay written. err names the setting.
 */
int cgroup_vm_apply(struct cgroup_vm *g, const struct cgroup_limits *l,
		    char *err, size_t errlen);

/*
 * Move process pid with all its threads (cgroup.procs) into the VM's
 * group in every hierarchy, then KVM's kernel threads for it (kvm-pit/PID,
 * made when the VM creates its PIT, and kvm-nx-lpage-recovery-PID on
 * kernels where that is a kernel thread: newer kernels make it a thread of
 * the process, which moves with it). A kernel thread the kernel refuses to
 * move (-EINVAL: some kernels keep kernel threads in the root cgroup on
 * v2) is counted in found but not in moved; anything else refused is an
 * error. Call again after the VM has created its PIT; moving what is
 * already in place is harmless. ret may be NULL.
 */
int cgroup_vm_attach(struct cgroup_vm *g, pid_t pid,
		     struct cgroup_attach_result *ret, char *err,
		     size_t errlen);

/* Fills ret from the group's files; -errno when a file that must be there
 * cannot be read (the group was removed). */
int cgroup_vm_stats(struct cgroup_vm *g, struct cgroup_stats *ret);

/*
 * Remove the group from every hierarchy; the VM's process must be gone
 * (reaped). KVM kernel threads still in it are moved back to the root, an
 * exiting task is waited for briefly (100 ms at most); -EBUSY when
 * processes remain: call again later. A group already gone is fine. The
 * handle stays valid (free it with cgroup_vm_free()).
 */
int cgroup_vm_destroy(struct cgroup_vm *g, char *err, size_t errlen);

/* The VM's group directory for c, or NULL when c is unavailable. */
const char *cgroup_vm_dir(const struct cgroup_vm *g, enum cgroup_ctrl c);

#endif
