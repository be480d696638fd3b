/* SPDX-License-Identifier: MIT */
/* A VM's cgroup and thread affinities from its resources (limits.h). */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "vmmd/daemon.h"
#include "vmmd/limits.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"
#include "vmmd/vmmrun.h"

/* Removing a group the kernel still counts a task in: how often and how
 * long it is tried again. */
#define LIMITS_DESTROY_RETRY_MS		500
#define LIMITS_DESTROY_TRIES		40

void
limits_from_resources(const struct vmdef_resources *r,
		      struct cgroup_limits *ret)
{
	unsigned int i, w;

	memset(ret, 0, sizeof(*ret));
	ret->cpu_weight = r->cpu_weight;
	ret->cpu_quota_milli = r->cpu_quota_milli;
	ret->memory_limit = r->memory_limit;
	cpulist_zero(&ret->cpuset);
	for (i = 0; i < r->nr_cpu_pin; i++)
		for (w = 0; w < CPULIST_MAX / 64; w++)
			ret->cpuset.bits[w] |= r->cpu_pin[i].bits[w];
	if (r->has_device_cpus)
		for (w = 0; w < CPULIST_MAX / 64; w++)
			ret->cpuset.bits[w] |= r->device_cpus.bits[w];
}

const char *
limits_need_cgroup(const struct vmdef_resources *r)
{
	if (r->cpu_weight)
		return "cpu_weight";
	if (r->cpu_quota_milli)
		return "cpu_quota";
	if (r->memory_limit)
		return "memory_limit";
	return NULL;
}

static int
limits_check_one(const char *what, const struct cpulist *cl,
		 const cpu_set_t *allowed, char *err, size_t errlen)
{
	char list[256];
	struct cpulist al;
	unsigned int cpu;

	for (cpu = 0; cpu < CPULIST_MAX; cpu++) {
		if (!cpulist_has(cl, cpu) || CPU_ISSET(cpu, allowed))
			continue;
		cpulist_zero(&al);
		for (unsigned int c = 0; c < CPU_SETSIZE && c < CPULIST_MAX;
		     c++)
			if (CPU_ISSET(c, allowed))
				cpulist_set(&al, c);
		if (cpulist_format(&al, list, sizeof(list)) < 0)
			snprintf(list, sizeof(list), "?");
		snprintf(err, errlen, "resources.%s: CPU %u is not available "
			 "on this host (allowed: %s)", what, cpu, list);
		return -EINVAL;
	}
	return 0;
}

int
limits_check_cpus(const struct vmdef_resources *r, const cpu_set_t *allowed,
		  char *err, size_t errlen)
{
	char what[32];
	unsigned int i;
	int ret;

	for (i = 0; i < r->nr_cpu_pin; i++) {
		snprintf(what, sizeof(what), "cpu_pin[%u]", i);
		ret = limits_check_one(what, &r->cpu_pin[i], allowed, err,
				       errlen);
		if (ret < 0)
			return ret;
	}
	if (r->has_device_cpus)
		return limits_check_one("device_cpus", &r->device_cpus,
					allowed, err, errlen);
	return 0;
}

void
limits_host_init(struct vmmd *d)
{
	const char *subtree = d->cfg->cgroup_subtree ?
			      d->cfg->cgroup_subtree : CGROUP_SUBTREE_DEFAULT;
	struct cgroup_host_params p = { .subtree = subtree };
	char err[256] = "";
	int r;

	r = cgroup_host_detect_params(&p, &d->cgroup, err, sizeof(err));
	if (r < 0) {
		d->cgroup = NULL;
		snprintf(d->cgroup_err, sizeof(d->cgroup_err), "%s",
			 err[0] ? err : strerror(-r));
		log_error("cgroup", "no cgroups: %s; VMs that set cpu_weight, "
			  "cpu_quota or memory_limit will not start",
			  d->cgroup_err);
		return;
	}
	log_info("cgroup", "%s", cgroup_host_describe(d->cgroup));
}

void
limits_host_fini(struct vmmd *d)
{
	cgroup_host_free(d->cgroup);
	d->cgroup = NULL;
}

/* Without a cpuset controller the affinities alone pin: the group gets no
 * cpuset then, rather than the start being refused. */
static void
limits_for_vm(const struct vmmd *d, const struct vmdef_resources *r,
	      struct cgroup_limits *ret)
{
	limits_from_resources(r, ret);
	if (!d->cgroup || !cgroup_host_has(d->cgroup, CGROUP_CTRL_CPUSET))
		cpulist_zero(&ret->cpuset);
}

/* An error of the module as the protocol should see it: a limit this host
 * cannot apply is the request's problem. */
static int
limits_errno(int r)
{
	return r == -EOPNOTSUPP ? -EINVAL : r;
}

/* --- removing a group ----------------------------------------------------- */

static void
limits_destroy_cancel(struct vm *vm)
{
	if (!vm->cg_destroy_timer)
		return;
	event_free(vm->cg_destroy_timer);
	vm->cg_destroy_timer = NULL;
	vm_unref(vm);
}

static void
limits_destroy_tick(evutil_socket_t fd, short what, void *arg)
{
	struct vm *vm = arg;
	char err[256], sub[96];
	int r;

	(void)fd;
	(void)what;
	r = cgroup_vm_destroy(vm->cg, err, sizeof(err));
	if (r == -EBUSY && ++vm->cg_destroy_tries < LIMITS_DESTROY_TRIES) {
		event_add(vm->cg_destroy_timer, &(struct timeval){
			0, LIMITS_DESTROY_RETRY_MS * 1000 });
		return;
	}
	if (r < 0)
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "cgroup left "
			 "behind: %s", err);
	cgroup_vm_free(vm->cg);
	vm->cg = NULL;
	limits_destroy_cancel(vm);
}

static void
limits_destroy(struct vm *vm)
{
	char err[256], sub[96];
	int r;

	if (!vm->cg || vm->cg_destroy_timer)
		return;
	r = cgroup_vm_destroy(vm->cg, err, sizeof(err));
	if (r == -EBUSY) {
		vm->cg_destroy_timer = event_new(vm->d->base, -1, 0,
						 limits_destroy_tick, vm);
		if (vm->cg_destroy_timer) {
			vm_ref(vm);
			vm->cg_destroy_tries = 0;
			event_add(vm->cg_destroy_timer, &(struct timeval){
				0, LIMITS_DESTROY_RETRY_MS * 1000 });
			return;
		}
	}
	if (r < 0)
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "cgroup left "
			 "behind: %s", err);
	cgroup_vm_free(vm->cg);
	vm->cg = NULL;
}

/* --- starting ------------------------------------------------------------- */

int
limits_vm_prepare(struct vm *vm, char *err, size_t errlen)
{
	struct vmmd *d = vm->d;
	const struct vmdef_resources *res = &vm->def->resources;
	struct cgroup_limits l;
	struct cgroup_vm *g = NULL;
	const char *need;
	cpu_set_t allowed;
	char msg[384], sub[96];
	int r;

	/* A group still being removed is taken over by the new start. */
	limits_destroy_cancel(vm);
	cgroup_vm_free(vm->cg);
	vm->cg = NULL;
	free(vm->vcpu_tids);
	vm->vcpu_tids = NULL;
	vm->nr_vcpu_tids = 0;
	vm->tids_asked = false;
	vm->pinned = false;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
		r = limits_check_cpus(res, &allowed, err, errlen);
		if (r < 0)
			return r;
	}
	if (!d->cgroup) {
		need = limits_need_cgroup(res);
		if (!need)
			return 0;
		snprintf(err, errlen, "resources.%s: cannot be applied: no "
			 "usable cgroups on this host (%s)", need,
			 d->cgroup_err);
		return -EINVAL;
	}
	need = limits_need_cgroup(res);
	r = cgroup_vm_create(d->cgroup, vm->name, &g, msg, sizeof(msg));
	if (r < 0 && !need) {
		/* Nothing the VM asks for needs one (a daemon without the
		 * rights to the hierarchies): it runs where vmmd runs. */
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "no cgroup: %s",
			 msg);
		return 0;
	}
	if (r < 0) {
		snprintf(err, errlen, "resources.%s: cannot make the VM's "
			 "cgroup: %s", need, msg);
		return r;
	}
	limits_for_vm(d, res, &l);
	r = cgroup_vm_apply(g, &l, msg, sizeof(msg));
	if (r < 0) {
		cgroup_vm_destroy(g, NULL, 0);
		cgroup_vm_free(g);
		if (!need && !cpulist_count(&l.cpuset)) {
			log_warn(vm_log_name(vm, sub, sizeof(sub)), "no "
				 "cgroup: %s", msg);
			return 0;
		}
		snprintf(err, errlen, "resources: %s", msg);
		return limits_errno(r);
	}
	vm->cg = g;
	return 0;
}

int
limits_vm_attach(struct vm *vm, pid_t pid, char *err, size_t errlen)
{
	char msg[384];
	int r;

	if (!vm->cg)
		return 0;
	r = cgroup_vm_attach(vm->cg, pid, NULL, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, errlen, "cannot move vmm-run into the VM's "
			 "cgroup: %s", msg);
	return r;
}

/* --- pinning -------------------------------------------------------------- */

static bool
limits_is_vcpu(const struct vm *vm, pid_t tid)
{
	unsigned int i;

	for (i = 0; i < vm->nr_vcpu_tids; i++)
		if (vm->vcpu_tids[i] == tid)
			return true;
	return false;
}

/*
 * Set the affinity of every thread of the process from def: cpu_pin[i]
 * for vCPU i, device_cpus for the others; threads without a setting get
 * vmmd's own affinity back when this process was pinned before (a pin
 * removed by vm.set). 0, or the first error with err.
 */
static int
limits_pin(struct vm *vm, const struct vmdef *def, char *err, size_t errlen)
{
	const struct vmdef_resources *res = &def->resources;
	bool pin_vcpus = res->nr_cpu_pin > 0;
	cpu_set_t own, set;
	char path[64];
	struct dirent *de;
	unsigned int i;
	DIR *dir;
	int r = 0;

	if (!pin_vcpus && !res->has_device_cpus && !vm->pinned)
		return 0;
	if (vm->pid <= 0 || !vm->nr_vcpu_tids)
		return 0;
	if (sched_getaffinity(0, sizeof(own), &own) < 0)
		CPU_ZERO(&own);
	for (i = 0; i < vm->nr_vcpu_tids; i++) {
		/* 0 is a thread that never started; to sched_setaffinity()
		 * it would mean vmmd itself. */
		if (vm->vcpu_tids[i] <= 0)
			continue;
		if (pin_vcpus && i < res->nr_cpu_pin)
			cpulist_to_cpuset(&res->cpu_pin[i], &set);
		else
			set = own;
		if (sched_setaffinity(vm->vcpu_tids[i], sizeof(set), &set) < 0 &&
		    errno != ESRCH && !r) {
			r = -errno;
			snprintf(err, errlen, "resources.cpu_pin[%u]: vCPU "
				 "thread %d: sched_setaffinity: %s", i,
				 (int)vm->vcpu_tids[i], strerror(errno));
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/task", (int)vm->pid);
	dir = opendir(path);
	if (dir) {
		if (res->has_device_cpus)
			cpulist_to_cpuset(&res->device_cpus, &set);
		else
			set = own;
		while ((de = readdir(dir))) {
			long tid = strtol(de->d_name, NULL, 10);

			if (tid <= 0 || limits_is_vcpu(vm, (pid_t)tid))
				continue;
			if (sched_setaffinity((pid_t)tid, sizeof(set), &set) < 0 &&
			    errno != ESRCH && !r) {
				r = -errno;
				snprintf(err, errlen, "resources.device_cpus: "
					 "thread %ld: sched_setaffinity: %s",
					 tid, strerror(errno));
			}
		}
		closedir(dir);
	}
	vm->pinned = pin_vcpus || res->has_device_cpus;
	return r;
}

struct limits_tids_op {
	struct vm *vm;
	pid_t pid;
	unsigned int tries;
};

/* A vCPU thread that has not started yet shows tid 0 in vm.stats: ask
 * again this often, this many times, before pinning without it. */
#define LIMITS_TIDS_RETRY_MS	50
#define LIMITS_TIDS_TRIES	200

static int limits_tids_send(struct limits_tids_op *op);

static void
limits_tids_retry(evutil_socket_t fd, short what, void *arg)
{
	struct limits_tids_op *op = arg;

	(void)fd;
	(void)what;
	if (op->vm->pid == op->pid && op->vm->pid > 0 &&
	    limits_tids_send(op) == 0)
		return;
	op->vm->tids_asked = false;
	vm_unref(op->vm);
	free(op);
}

static void
limits_tids_done(void *arg, int err, json_t *result, const char *msg)
{
	struct limits_tids_op *op = arg;
	struct vm *vm = op->vm;
	json_t *vcpus = json_object_get(result, "vcpus"), *v;
	char e[256], sub[96];
	size_t i, n, unknown;
	pid_t *tids;

	vm->tids_asked = false;
	if (vm->pid != op->pid || vm->pid <= 0)
		goto out;
	if (err < 0) {
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "vCPU threads "
			 "unknown (vm.stats: %s): not pinned", msg);
		goto out;
	}
	n = json_array_size(vcpus);
	tids = n ? calloc(n, sizeof(*tids)) : NULL;
	if (!tids)
		goto out;
	unknown = 0;
	json_array_foreach(vcpus, i, v) {
		json_int_t tid = json_integer_value(json_object_get(v, "tid"));

		tids[i] = tid > 0 && tid < 0x40000000 ? (pid_t)tid : 0;
		unknown += !tids[i];
	}
	if (unknown && ++op->tries < LIMITS_TIDS_TRIES) {
		struct timeval tv = { 0, LIMITS_TIDS_RETRY_MS * 1000 };

		free(tids);
		vm->tids_asked = true;
		if (event_base_once(vm->d->base, -1, EV_TIMEOUT,
				    limits_tids_retry, op, &tv) == 0)
			return;
		vm->tids_asked = false;
		goto out;
	}
	if (unknown)
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "%zu vCPU threads "
			 "did not start: they are not pinned", unknown);
	free(vm->vcpu_tids);
	vm->vcpu_tids = tids;
	vm->nr_vcpu_tids = (unsigned int)n;
	if (limits_pin(vm, vm->def, e, sizeof(e)) < 0)
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "%s", e);
out:
	vm_unref(vm);
	free(op);
}

/* Ask vmm-run for its vCPU threads; they get pinned when it answers. */
static void
limits_ask_tids(struct vm *vm)
{
	struct limits_tids_op *op;

	if (vm->tids_asked || !vm->ctl || vm->pid <= 0)
		return;
	op = calloc(1, sizeof(*op));
	if (!op)
		return;
	op->vm = vm_ref(vm);
	op->pid = vm->pid;
	vm->tids_asked = true;
	if (limits_tids_send(op) < 0) {
		vm->tids_asked = false;
		vm_unref(vm);
		free(op);
	}
}

/* The vm.stats call behind limits_ask_tids; its answer owns op. */
static int
limits_tids_send(struct limits_tids_op *op)
{
	if (!op->vm->ctl)
		return -ENOTCONN;
	return vmmrun_call(op->vm->ctl, "vm.stats", NULL, limits_tids_done,
			   op) < 0 ? -EIO : 0;
}

void
limits_vm_running(struct vm *vm)
{
	char err[384], sub[96];
	struct cgroup_attach_result ar;

	if (vm->cg && vm->pid > 0) {
		/* The PIT's kernel thread exists once the VM runs. */
		if (cgroup_vm_attach(vm->cg, vm->pid, &ar, err,
				     sizeof(err)) < 0)
			log_warn(vm_log_name(vm, sub, sizeof(sub)), "cgroup: "
				 "%s", err);
		else if (ar.kthreads_found > ar.kthreads_moved)
			log_info(vm_log_name(vm, sub, sizeof(sub)), "cgroup: "
				 "%u of KVM's %u kernel threads stay where the "
				 "kernel keeps them", ar.kthreads_found -
				 ar.kthreads_moved, ar.kthreads_found);
	}
	if (!vm->nr_vcpu_tids)
		limits_ask_tids(vm);
}

int
limits_vm_apply(struct vm *vm, const struct vmdef *def, char *err,
		size_t errlen)
{
	const struct vmdef_resources *res = &def->resources;
	struct cgroup_limits l;
	cpu_set_t allowed;
	const char *need;
	char msg[384];
	int r;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
		r = limits_check_cpus(res, &allowed, err, errlen);
		if (r < 0)
			return r;
	}
	if (vm->cg) {
		limits_for_vm(vm->d, res, &l);
		r = cgroup_vm_apply(vm->cg, &l, msg, sizeof(msg));
		if (r < 0) {
			snprintf(err, errlen, "resources: %s", msg);
			return limits_errno(r);
		}
	} else if ((need = limits_need_cgroup(res))) {
		snprintf(err, errlen, "resources.%s: cannot be applied: the VM "
			 "has no cgroup (%s)", need, vm->d->cgroup ?
			 "it could not be made when the daemon found the VM" :
			 vm->d->cgroup_err);
		return -EINVAL;
	}
	if (vm->nr_vcpu_tids)
		return limits_pin(vm, def, err, errlen);
	/* Not known yet: the answer pins with the definition then current. */
	limits_ask_tids(vm);
	return 0;
}

/* --- ending --------------------------------------------------------------- */

void
limits_vm_exited(struct vm *vm, bool keep_group)
{
	free(vm->vcpu_tids);
	vm->vcpu_tids = NULL;
	vm->nr_vcpu_tids = 0;
	vm->pinned = false;
	if (!keep_group)
		limits_destroy(vm);
}

void
limits_vm_reattach(struct vm *vm)
{
	struct vmmd *d = vm->d;
	struct cgroup_limits l;
	char err[384], sub[96];
	int r;

	if (!d->cgroup || vm->pid <= 0)
		return;
	cgroup_vm_free(vm->cg);
	vm->cg = NULL;
	r = cgroup_vm_open_existing(d->cgroup, vm->name, &vm->cg, err,
				    sizeof(err));
	if (r == 0)
		return;
	if (r != -ENOENT) {
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "cgroup: %s; the "
			 "VM runs without its limits", err);
		return;
	}
	/* The group went away while no daemon watched: make it again. */
	limits_for_vm(d, &vm->def->resources, &l);
	r = cgroup_vm_create(d->cgroup, vm->name, &vm->cg, err, sizeof(err));
	if (r == 0)
		r = cgroup_vm_apply(vm->cg, &l, err, sizeof(err));
	if (r == 0)
		r = cgroup_vm_attach(vm->cg, vm->pid, NULL, err, sizeof(err));
	if (r < 0) {
		log_warn(vm_log_name(vm, sub, sizeof(sub)), "cgroup: %s; the "
			 "VM runs without (some of) its limits", err);
		return;
	}
	log_info(vm_log_name(vm, sub, sizeof(sub)), "cgroup was missing: "
		 "made again and the process moved in");
}

void
limits_vm_detach(struct vm *vm)
{
	limits_destroy_cancel(vm);
	cgroup_vm_free(vm->cg);
	vm->cg = NULL;
}

int
limits_vm_stats(struct vm *vm, struct cgroup_stats *ret)
{
	if (!vm->cg)
		return -ENODEV;
	return cgroup_vm_stats(vm->cg, ret);
}
