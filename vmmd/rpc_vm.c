/* SPDX-License-Identifier: MIT */
/* The vm.* methods (rpc.h, PROTOCOL.md). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto/size.h"
#include "proto/vmdef.h"
#include "vmmd/console.h"
#include "vmmd/daemon.h"
#include "vmmd/events.h"
#include "vmmd/limits.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"
#include "vmmd/rpc.h"
#include "vmmd/store.h"
#include "vmmd/supervise.h"
#include "vmmd/vmmrun.h"

#define RPC_STOP_TIMEOUT_DEFAULT	30

/* The VM params.name names, if the caller may see it; else answered. */
static struct vm *
rpc_vm_lookup(struct rpc_call *call, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	struct vm *vm = registry_find(&call->d->reg, name);
	char safe[VMDEF_NAME_MAX + 2];

	if (vm && vm_visible(vm, call->who.tenant))
		return vm;
	/* Another tenant's VM does not exist for this caller. */
	rpc_fail(call, -ENOENT, "vm \"%s\" not found",
		 log_scrub(name, safe, sizeof(safe)));
	return NULL;
}

static bool
rpc_bool(json_t *params, const char *key, bool def)
{
	json_t *v = json_object_get(params, key);

	return v ? json_is_true(v) : def;
}

static long long
rpc_uptime_sec(const struct vm *vm)
{
	return (long long)((vm_now_ms() - vm->started_ms) / 1000u);
}

/* The common part of results: {name, state[, pid]}. */
static json_t *
rpc_vm_result(const struct vm *vm, bool with_pid)
{
	json_t *res = json_pack("{s:s, s:s}", "name", vm->name, "state",
				vm_state_name(vm->state));

	if (res && with_pid && vm->pid > 0)
		json_object_set_new(res, "pid", json_integer(vm->pid));
	return res;
}

static int
rpc_vm_save(struct vmmd *d, const struct vmdef *def, const char *tenant,
	    char *err, size_t errlen)
{
	json_t *doc = vm_doc_new(def, tenant);
	int r;

	if (!doc)
		return -ENOMEM;
	r = store_save(d->store, def->name, doc, err, errlen);
	json_decref(doc);
	return r;
}

/* --- waiting for a start -------------------------------------------------- */

struct rpc_wait {
	struct rpc_call *call;
	struct vm *vm;
	struct vm_waiter w;
	bool with_def;		/* vm.create's result carries the definition */
	bool force;		/* vm.restart's stop */
	unsigned int timeout;
};

static struct rpc_wait *
rpc_wait_new(struct rpc_call *call, struct vm *vm)
{
	struct rpc_wait *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->call = call;
	op->vm = vm_ref(vm);
	return op;
}

static void
rpc_wait_free(struct rpc_wait *op)
{
	vm_unref(op->vm);
	free(op);
}

static void
rpc_started(struct vm *vm, void *arg, int err, const char *msg)
{
	struct rpc_wait *op = arg;
	json_t *res;

	if (err < 0) {
		rpc_fail(op->call, err, "%s", msg ? msg : strerror(-err));
	} else {
		res = rpc_vm_result(vm, true);
		if (res && op->with_def)
			json_object_set_new(res, "definition",
					    vmdef_to_json(vm->def));
		rpc_reply(op->call, res);
	}
	rpc_wait_free(op);
}

/* Start vm and answer call once it runs. why: the state change's reason. */
static int
rpc_start_and_wait(struct rpc_call *call, struct vm *vm, const char *why,
		   bool with_def)
{
	struct rpc_wait *op;
	char err[512];
	int r;

	op = rpc_wait_new(call, vm);
	if (!op)
		return -ENOMEM;
	op->with_def = with_def;
	r = supervise_start(vm, why, err, sizeof(err));
	if (r < 0) {
		rpc_wait_free(op);
		if (with_def)
			return rpc_fail(call, r, "vm \"%s\" is stored but did "
					"not start: %s", vm->name, err);
		return rpc_fail(call, r, "%s", err);
	}
	vm_wait_add(vm, &op->w, VM_WAIT_STARTED, rpc_started, op);
	return 0;
}

/* --- vm.create ------------------------------------------------------------ */

int
rpc_vm_create(struct rpc_call *call, json_t *params)
{
	struct vmmd *d = call->d;
	struct vmdef *def;
	struct vm *vm;
	char err[512], sub[96];
	bool start = rpc_bool(params, "start", false);
	bool replace = rpc_bool(params, "replace", false);
	json_t *res;
	int r;

	r = vmdef_from_json(json_object_get(params, "definition"),
			    VMDEF_CHECK_FILES, &def, err, sizeof(err));
	if (r < 0)
		return rpc_fail(call, r, "%s", err);
	vm = registry_find(&d->reg, def->name);
	if (vm) {
		/* A name is one file of the store: taken is taken, whoever's
		 * it is. */
		if (!replace || !vm_visible(vm, call->who.tenant)) {
			r = rpc_fail(call, -EEXIST, "vm \"%s\" already exists",
				     def->name);
			vmdef_free(def);
			return r;
		}
		if (!vm_state_is_down(vm->state)) {
			r = rpc_fail(call, -EBUSY, "vm \"%s\" is %s: stop it "
				     "before replacing its definition",
				     def->name, vm_state_name(vm->state));
			vmdef_free(def);
			return r;
		}
		r = rpc_vm_save(d, def, vm->tenant, err, sizeof(err));
		if (r < 0) {
			vmdef_free(def);
			return rpc_fail(call, r, "%s", err);
		}
		vmdef_free(vm->def);
		vm->def = def;
		events_emit(&d->events, EVENT_VM_UPDATED, vm, NULL);
		log_info(vm_log_name(vm, sub, sizeof(sub)), "definition "
			 "replaced by %s", call->who.name);
	} else {
		if (d->reg.count >= d->cfg->max_vms) {
			r = rpc_fail(call, -ENOSPC, "too many VMs (limit %u)",
				     d->cfg->max_vms);
			vmdef_free(def);
			return r;
		}
		/* Durable before anyone hears of it. */
		r = rpc_vm_save(d, def, call->who.tenant, err, sizeof(err));
		if (r < 0) {
			vmdef_free(def);
			return rpc_fail(call, r, "%s", err);
		}
		r = registry_add(&d->reg, d, def, call->who.tenant, &vm);
		if (r < 0)
			return r;
		events_emit(&d->events, EVENT_VM_CREATED, vm, NULL);
		log_info(vm_log_name(vm, sub, sizeof(sub)), "created by %s",
			 call->who.name);
	}
	if (start)
		return rpc_start_and_wait(call, vm, "vm.create with start",
					  true);
	res = rpc_vm_result(vm, false);
	if (res)
		json_object_set_new(res, "definition", vmdef_to_json(vm->def));
	rpc_reply(call, res);
	return 0;
}

/* --- vm.delete ------------------------------------------------------------ */

/* The runtime directory holds only what the daemon and vmm-run put
 * there: logs, pid file, sockets. */
static void
rpc_remove_runtime(struct vmmd *d, const char *name)
{
	struct vm_paths p;
	struct dirent *de;
	DIR *dir;

	if (supervise_paths(d->cfg->runtime_dir, name, &p) < 0)
		return;
	dir = opendir(p.dir);
	if (!dir)
		return;
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(dir), de->d_name, 0);
	closedir(dir);
	rmdir(p.dir);
}

static void
rpc_delete_now(struct rpc_call *call, struct vm *vm)
{
	struct vmmd *d = call->d;
	char name[VMDEF_NAME_MAX + 1];
	int r;

	snprintf(name, sizeof(name), "%s", vm->name);
	r = store_remove(d->store, name);
	if (r < 0 && r != -ENOENT) {
		rpc_fail(call, r, "vm \"%s\": cannot remove its stored "
			 "definition: %s", name, strerror(-r));
		return;
	}
	console_close_all(vm);
	rpc_remove_runtime(d, name);
	events_emit(&d->events, EVENT_VM_DELETED, vm, NULL);
	registry_remove(&d->reg, vm);
	{
		char sub[96];

		snprintf(sub, sizeof(sub), "vm \"%s\"", name);
		log_info(sub, "deleted by %s", call->who.name);
	}
	rpc_reply(call, json_pack("{s:s}", "name", name));
}

static void
rpc_delete_exited(struct vm *vm, void *arg, int err, const char *msg)
{
	struct rpc_wait *op = arg;

	(void)err;
	(void)msg;
	if (vm->removed)
		rpc_fail(op->call, -ENOENT, "vm \"%s\" not found", vm->name);
	else if (vm_state_has_process(vm->state))
		rpc_fail(op->call, -EBUSY, "vm \"%s\" was started again "
			 "while it was being deleted", vm->name);
	else
		rpc_delete_now(op->call, vm);
	rpc_wait_free(op);
}

int
rpc_vm_delete(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct rpc_wait *op;
	int r;

	if (!vm)
		return 0;
	if (!vm_state_has_process(vm->state)) {
		rpc_delete_now(call, vm);
		return 0;
	}
	if (!rpc_bool(params, "force", false))
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s: stop it first "
				"(or delete with force)", vm->name,
				vm_state_name(vm->state));
	op = rpc_wait_new(call, vm);
	if (!op)
		return -ENOMEM;
	r = supervise_kill(vm, "vm.delete with force: killed");
	if (r < 0) {
		rpc_wait_free(op);
		return rpc_fail(call, r, "vm \"%s\": cannot kill its process: "
				"%s", vm->name, strerror(-r));
	}
	vm_wait_add(vm, &op->w, VM_WAIT_EXIT, rpc_delete_exited, op);
	return 0;
}

/* --- vm.start, vm.stop, vm.kill, vm.restart ------------------------------- */

int
rpc_vm_start(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);

	if (!vm)
		return 0;
	if (!vm_state_is_down(vm->state))
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s", vm->name,
				vm_state_name(vm->state));
	return rpc_start_and_wait(call, vm, "vm.start", false);
}

static void
rpc_stopped(struct vm *vm, void *arg, int err, bool forced, const char *msg)
{
	struct rpc_wait *op = arg;
	json_t *res;

	if (err < 0) {
		rpc_fail(op->call, err, "%s", msg);
	} else {
		res = rpc_vm_result(vm, false);
		if (res)
			json_object_set_new(res, "forced",
					    json_boolean(forced));
		rpc_reply(op->call, res);
	}
	rpc_wait_free(op);
}

/* vm.stop's and vm.restart's timeout; -1 when the call was answered
 * (the VM cannot be stopped). */
static int
rpc_stop_params(struct rpc_call *call, json_t *params, struct vm *vm,
		unsigned int *ret_timeout)
{
	json_t *t = json_object_get(params, "timeout");

	*ret_timeout = t ? (unsigned int)json_integer_value(t) :
		       RPC_STOP_TIMEOUT_DEFAULT;
	if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED) {
		rpc_fail(call, -EBUSY, "vm \"%s\" is %s", vm->name,
			 vm_state_name(vm->state));
		return -1;
	}
	return 0;
}

int
rpc_vm_stop(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct rpc_wait *op;
	unsigned int timeout;
	int r;

	if (!vm)
		return 0;
	if (rpc_stop_params(call, params, vm, &timeout) < 0)
		return 0;
	op = rpc_wait_new(call, vm);
	if (!op)
		return -ENOMEM;
	r = supervise_stop(vm, timeout, rpc_bool(params, "force", false),
			   rpc_stopped, op);
	if (r < 0) {
		rpc_wait_free(op);
		return rpc_fail(call, r, "vm \"%s\": %s", vm->name,
				strerror(-r));
	}
	return 0;
}

static void
rpc_killed(struct vm *vm, void *arg, int err, const char *msg)
{
	struct rpc_wait *op = arg;

	(void)err;
	(void)msg;
	rpc_reply(op->call, rpc_vm_result(vm, false));
	rpc_wait_free(op);
}

int
rpc_vm_kill(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct rpc_wait *op;
	int r;

	if (!vm)
		return 0;
	if (!vm_state_has_process(vm->state) || vm->pid <= 0)
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s", vm->name,
				vm_state_name(vm->state));
	op = rpc_wait_new(call, vm);
	if (!op)
		return -ENOMEM;
	r = supervise_kill(vm, "vm.kill");
	if (r < 0) {
		rpc_wait_free(op);
		return rpc_fail(call, r, "vm \"%s\": cannot kill its process: "
				"%s", vm->name, strerror(-r));
	}
	vm_wait_add(vm, &op->w, VM_WAIT_EXIT, rpc_killed, op);
	return 0;
}

static void
rpc_restart_stopped(struct vm *vm, void *arg, int err, bool forced,
		    const char *msg)
{
	struct rpc_wait *op = arg;
	struct rpc_call *call = op->call;

	(void)forced;
	rpc_wait_free(op);
	if (err < 0) {
		rpc_fail(call, err, "%s", msg);
		return;
	}
	if (vm->removed) {
		rpc_fail(call, -ENOENT, "vm \"%s\" not found", vm->name);
		return;
	}
	if (!vm_state_is_down(vm->state)) {
		rpc_fail(call, -EBUSY, "vm \"%s\" is %s", vm->name,
			 vm_state_name(vm->state));
		return;
	}
	rpc_start_and_wait(call, vm, "vm.restart", false);
}

int
rpc_vm_restart(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct rpc_wait *op;
	unsigned int timeout;
	int r;

	if (!vm)
		return 0;
	if (vm_state_is_down(vm->state))
		return rpc_start_and_wait(call, vm, "vm.restart", false);
	if (rpc_stop_params(call, params, vm, &timeout) < 0)
		return 0;
	op = rpc_wait_new(call, vm);
	if (!op)
		return -ENOMEM;
	r = supervise_stop(vm, timeout, rpc_bool(params, "force", false),
			   rpc_restart_stopped, op);
	if (r < 0) {
		rpc_wait_free(op);
		return rpc_fail(call, r, "vm \"%s\": %s", vm->name,
				strerror(-r));
	}
	return 0;
}

/* --- vm.pause, vm.resume -------------------------------------------------- */

struct rpc_ctl_op {
	struct rpc_call *call;
	struct vm *vm;
	enum vm_state to;
};

static void
rpc_pause_done(void *arg, int err, json_t *result, const char *msg)
{
	struct rpc_ctl_op *op = arg;
	struct vm *vm = op->vm;

	(void)result;
	if (err < 0) {
		rpc_fail(op->call, err == -ECANCELED ? -EBUSY : err,
			 "vm \"%s\": %s", vm->name, msg);
	} else {
		if ((op->to == VM_STATE_PAUSED && vm->state == VM_STATE_RUNNING)
		    || (op->to == VM_STATE_RUNNING &&
			vm->state == VM_STATE_PAUSED))
			vm_set_state(vm, op->to, op->to == VM_STATE_PAUSED ?
				     "vm.pause" : "vm.resume");
		rpc_reply(op->call, rpc_vm_result(vm, false));
	}
	vm_unref(vm);
	free(op);
}

static int
rpc_pause_resume(struct rpc_call *call, json_t *params, bool pause)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	enum vm_state need = pause ? VM_STATE_RUNNING : VM_STATE_PAUSED;
	struct rpc_ctl_op *op;

	if (!vm)
		return 0;
	if (vm->state != need)
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s, not %s",
				vm->name, vm_state_name(vm->state),
				vm_state_name(need));
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->call = call;
	op->vm = vm_ref(vm);
	op->to = pause ? VM_STATE_PAUSED : VM_STATE_RUNNING;
	if (vmmrun_call(vm->ctl, pause ? "vm.pause" : "vm.resume", NULL,
			rpc_pause_done, op) < 0) {
		vm_unref(vm);
		free(op);
		return rpc_fail(call, -EIO, "vm \"%s\": its control socket is "
				"not available", vm->name);
	}
	return 0;
}

int
rpc_vm_pause(struct rpc_call *call, json_t *params)
{
	return rpc_pause_resume(call, params, true);
}

int
rpc_vm_resume(struct rpc_call *call, json_t *params)
{
	return rpc_pause_resume(call, params, false);
}

/* --- vm.list, vm.info ----------------------------------------------------- */

int
rpc_vm_list(struct rpc_call *call, json_t *params)
{
	const char *want = json_string_value(json_object_get(params, "state"));
	enum vm_state st = VM_STATE_MAX;
	json_t *vms = json_array(), *res;
	struct vm *vm;

	if (want && vm_state_parse(want, &st) < 0) {
		json_decref(vms);
		return rpc_fail(call, -EINVAL, "state: not a VM state");
	}
	TAILQ_FOREACH(vm, &call->d->reg.vms, entry) {
		char mem[SIZE_STR_MAX];
		json_t *e;

		if (!vm_visible(vm, call->who.tenant) ||
		    (want && vm->state != st))
			continue;
		size_format(vm->def->memory, mem, sizeof(mem));
		e = json_pack("{s:s, s:s, s:i, s:s, s:b}", "name", vm->name,
			      "state", vm_state_name(vm->state),
			      "vcpus", (int)vm->def->vcpus, "memory", mem,
			      "autostart", vm->def->autostart);
		if (e && vm->pid > 0) {
			json_object_set_new(e, "pid", json_integer(vm->pid));
			json_object_set_new(e, "uptime_sec",
					    json_integer(rpc_uptime_sec(vm)));
		}
		if (!e || json_array_append_new(vms, e) < 0) {
			json_decref(vms);
			return -ENOMEM;
		}
	}
	res = json_pack("{s:o}", "vms", vms);
	if (!res)
		return -ENOMEM;
	rpc_reply(call, res);
	return 0;
}

int
rpc_vm_info(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct vm_paths p;
	unsigned int restarts;
	json_t *res, *runtime;

	if (!vm)
		return 0;
	/* Restarts count within the current window only. */
	restarts = vm->window_start_ms && vm_now_ms() - vm->window_start_ms <=
		   (uint64_t)vm->def->restart.window_sec * 1000u ?
		   vm->restarts : 0;
	res = json_pack("{s:s, s:s, s:s, s:o, s:i}", "name", vm->name,
			"state", vm_state_name(vm->state),
			"state_reason", vm->state_reason,
			"definition", vmdef_to_json(vm->def),
			"restarts", (int)restarts);
	if (!res)
		return -ENOMEM;
	if (vm->tenant)
		json_object_set_new(res, "tenant", json_string(vm->tenant));
	if (vm->pid > 0) {
		char when[40];

		events_format_time(&vm->started_at, false, when, sizeof(when));
		json_object_set_new(res, "pid", json_integer(vm->pid));
		json_object_set_new(res, "started_at", json_string(when));
		json_object_set_new(res, "uptime_sec",
				    json_integer(rpc_uptime_sec(vm)));
	}
	if (vm->last_exit.valid) {
		struct timespec ts = { vm->last_exit.at, 0 };
		char when[40];

		events_format_time(&ts, false, when, sizeof(when));
		json_object_set_new(res, "last_exit", json_pack(
			"{s:s, s:o, s:o, s:s}", "at", when,
			"status", vm->last_exit.status >= 0 ?
				json_integer(vm->last_exit.status) :
				json_null(),
			"signal", vm->last_exit.signal ?
				json_integer(vm->last_exit.signal) :
				json_null(),
			"reason", vm->last_exit.reason));
	}
	runtime = json_object();
	if (runtime && supervise_paths(call->d->cfg->runtime_dir, vm->name,
				       &p) == 0) {
		json_object_set_new(runtime, "log", json_string(p.log));
		if (vm->def->has_vsock)
			json_object_set_new(runtime, "vsock_uds",
					    json_string(p.vsock));
		if (vm->def->virtio_console)
			json_object_set_new(runtime, "hvc0_log",
					    json_string(p.hvc0));
	}
	json_object_set_new(res, "runtime", runtime);
	rpc_reply(call, res);
	return 0;
}

/* --- vm.set --------------------------------------------------------------- */

/* vm.set's result; failed (borrowed) says what is not applied. */
static json_t *
rpc_set_result(struct vm *vm, bool running, const char *failed)
{
	json_t *res = json_pack("{s:s, s:o, s:b}", "name", vm->name,
				"definition", vmdef_to_json(vm->def),
				"applied", running && !failed);

	if (res && failed)
		json_object_set_new(res, "note", json_string(failed));
	return res;
}

struct rpc_set_op {
	struct rpc_call *call;
	struct vm *vm;
};

static void
rpc_set_devices_done(void *arg, int err, json_t *result, const char *msg)
{
	struct rpc_set_op *op = arg;
	char note[256];
	json_t *res;

	(void)result;
	if (err < 0)
		snprintf(note, sizeof(note), "stored, but the running VM "
			 "refused the device limits (%s): they take effect at "
			 "its next start", msg);
	res = rpc_set_result(op->vm, true, err < 0 ? note : NULL);
	if (res)
		rpc_reply(op->call, res);
	else
		rpc_fail(op->call, -ENOMEM, "out of memory");
	vm_unref(op->vm);
	free(op);
}

/* The disks' limits of vm's definition, positionally, for vmm-run. */
static json_t *
rpc_disk_limits(const struct vmdef *def)
{
	json_t *disks = json_array();
	unsigned int i;

	for (i = 0; disks && i < def->nr_disks; i++) {
		const struct vmdef_disk_limits *l = &def->disks[i].limits;

		json_array_append_new(disks, json_pack(
			"{s:{s:I, s:I, s:I, s:I}}", "limits",
			"bytes_per_sec", (json_int_t)l->bytes.rate,
			"bytes_burst", (json_int_t)l->bytes.burst,
			"ops_per_sec", (json_int_t)l->ops.rate,
			"ops_burst", (json_int_t)l->ops.burst));
	}
	return disks;
}

/* The NICs' limits of vm's definition, positionally, for vmm-run. */
static json_t *
rpc_nic_limits(const struct vmdef *def)
{
	json_t *nics = json_array();
	unsigned int i;

	for (i = 0; nics && i < def->nr_nics; i++) {
		const struct vmdef_nic_limits *l = &def->nics[i].limits;

		json_array_append_new(nics, json_pack(
			"{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "limits",
			"rx_bytes_per_sec", (json_int_t)l->rx_bytes.rate,
			"rx_bytes_burst", (json_int_t)l->rx_bytes.burst,
			"rx_packets_per_sec", (json_int_t)l->rx_packets.rate,
			"rx_packets_burst", (json_int_t)l->rx_packets.burst,
			"tx_bytes_per_sec", (json_int_t)l->tx_bytes.rate,
			"tx_bytes_burst", (json_int_t)l->tx_bytes.burst,
			"tx_packets_per_sec", (json_int_t)l->tx_packets.rate,
			"tx_packets_burst", (json_int_t)l->tx_packets.burst));
	}
	return nics;
}

/* Hand the stored device limits to the running vmm-run, then answer. */
static int
rpc_set_devices(struct rpc_call *call, struct vm *vm)
{
	struct rpc_set_op *op = calloc(1, sizeof(*op));
	json_t *params;

	if (!op)
		return -ENOMEM;
	op->call = call;
	op->vm = vm_ref(vm);
	params = json_pack("{s:o, s:o}", "disks", rpc_disk_limits(vm->def),
			   "nics", rpc_nic_limits(vm->def));
	if (!params || vmmrun_call(vm->ctl, "vm.set", params,
				   rpc_set_devices_done, op) < 0) {
		json_t *res = rpc_set_result(vm, true, "stored, but the VM's "
			"control socket is not available: the device limits "
			"take effect at its next start");

		vm_unref(vm);
		free(op);
		if (!res)
			return -ENOMEM;
		rpc_reply(call, res);
	}
	return 0;
}

int
rpc_vm_set(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	json_t *changes = json_object_get(params, "changes");
	bool running, devices;
	struct vmdef *def;
	char err[512], undo[512];
	json_t *res;
	int r;

	if (!vm)
		return 0;
	def = vmdef_dup(vm->def);
	if (!def)
		return -ENOMEM;
	r = vmdef_update(def, changes, err, sizeof(err));
	/* A running VM gets the new limits before they are stored, so that
	 * one the host refuses (memory_limit below what the VM uses) is
	 * neither stored nor half applied: the old ones are put back. */
	running = vm_state_has_process(vm->state) && vm->pid > 0;
	if (r == 0 && running) {
		r = limits_vm_apply(vm, def, err, sizeof(err));
		if (r < 0)
			limits_vm_apply(vm, vm->def, undo, sizeof(undo));
	}
	if (r == 0) {
		r = rpc_vm_save(call->d, def, vm->tenant, err, sizeof(err));
		if (r < 0 && running)
			limits_vm_apply(vm, vm->def, undo, sizeof(undo));
	}
	if (r < 0) {
		vmdef_free(def);
		return rpc_fail(call, r, "%s", err);
	}
	vmdef_free(vm->def);
	vm->def = def;
	events_emit(&call->d->events, EVENT_VM_UPDATED, vm, NULL);
	/* CPU and memory limits and pinning are applied above; the disks'
	 * rate limits live in vmm-run: its vm.set changes them, and the
	 * answer waits for it. NIC limits take effect at the next start. */
	devices = json_object_get(changes, "disks") ||
		  json_object_get(changes, "nics");
	if (running && devices)
		return rpc_set_devices(call, vm);
	res = rpc_set_result(vm, running, NULL);
	if (!res)
		return -ENOMEM;
	rpc_reply(call, res);
	return 0;
}

/* --- vm.stats ------------------------------------------------------------- */

struct rpc_stats_op {
	struct rpc_call *call;
	struct vm *vm;
};

/* utime and stime of a process, in microseconds. */
static void
rpc_proc_times(pid_t pid, unsigned long long *user, unsigned long long *sys)
{
	char path[64], buf[1024], *p, *tok, *save = NULL;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;
	int i;

	*user = *sys = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')) || hz <= 0)
		return;
	/* Field 3 follows the command; utime is 14, stime 15. */
	for (i = 3, tok = strtok_r(p + 1, " ", &save); tok;
	     i++, tok = strtok_r(NULL, " ", &save)) {
		if (i == 14)
			*user = strtoull(tok, NULL, 10) * 1000000ull /
				(unsigned long long)hz;
		if (i == 15) {
			*sys = strtoull(tok, NULL, 10) * 1000000ull /
			       (unsigned long long)hz;
			break;
		}
	}
}

static json_int_t
rpc_int(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static json_t *
rpc_stats_reshape(struct vm *vm, json_t *r)
{
	unsigned long long user, sys;
	json_int_t usage, throttled = 0, current;
	struct cgroup_stats cs;
	json_t *res, *disks, *nics, *vcpus, *v;
	size_t i;

	/* The VM's cgroup counts the whole process, KVM's threads too;
	 * without one, what the process itself says. */
	rpc_proc_times(vm->pid, &user, &sys);
	usage = rpc_int(r, "cpu_ns") / 1000;
	current = rpc_int(json_object_get(r, "memory"), "rss_bytes");
	if (limits_vm_stats(vm, &cs) < 0)
		memset(&cs, 0, sizeof(cs));
	if (cs.has_cpu)
		usage = (json_int_t)(cs.cpu_usage_ns / 1000);
	if (cs.has_cpu_split) {
		user = cs.cpu_user_ns / 1000;
		sys = cs.cpu_system_ns / 1000;
	}
	if (cs.has_throttle)
		throttled = (json_int_t)(cs.cpu_throttled_ns / 1000);
	if (cs.has_memory)
		current = (json_int_t)cs.memory_current;
	res = json_pack("{s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:{s:I}}",
			"name", vm->name,
			"uptime_sec", (json_int_t)rpc_uptime_sec(vm),
			"cpu", "usage_usec", usage,
			"user_usec", (json_int_t)user,
			"system_usec", (json_int_t)sys,
			"throttled_usec", throttled,
			"memory", "current", current);
	if (!res)
		return NULL;
	if (cs.has_throttle) {
		json_object_set_new(json_object_get(res, "cpu"), "nr_periods",
				    json_integer((json_int_t)cs.cpu_nr_periods));
		json_object_set_new(json_object_get(res, "cpu"),
				    "nr_throttled",
				    json_integer((json_int_t)cs.cpu_nr_throttled));
	}
	if (cs.has_memory_peak)
		json_object_set_new(json_object_get(res, "memory"), "peak",
				    json_integer((json_int_t)cs.memory_peak));
	json_object_set_new(res, "cgroup", json_boolean(cs.has_cpu ||
							 cs.has_memory));
	if (vm->def->resources.memory_limit)
		json_object_set_new(json_object_get(res, "memory"), "limit",
			json_integer((json_int_t)vm->def->resources.memory_limit));
	json_object_set_new(json_object_get(res, "memory"), "guest",
		rpc_int(json_object_get(r, "memory"), "guest_bytes") ?
		json_integer(rpc_int(json_object_get(r, "memory"),
				     "guest_bytes")) :
		json_integer((json_int_t)vm->def->memory));
	disks = json_array();
	json_array_foreach(json_object_get(r, "disks"), i, v) {
		json_int_t idx = rpc_int(v, "index");

		json_array_append_new(disks, json_pack(
			"{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"index", idx,
			"path", idx >= 0 && (size_t)idx < vm->def->nr_disks ?
				vm->def->disks[idx].path : "",
			"read_bytes", rpc_int(v, "read_bytes"),
			"write_bytes", rpc_int(v, "write_bytes"),
			"read_ops", rpc_int(v, "reads"),
			"write_ops", rpc_int(v, "writes"),
			"flush_ops", rpc_int(v, "flushes"),
			"throttled_usec", rpc_int(v, "throttled_ns") / 1000,
			"errors", rpc_int(v, "errors"),
			"inflight", rpc_int(v, "inflight")));
	}
	json_object_set_new(res, "disks", disks);
	nics = json_array();
	json_array_foreach(json_object_get(r, "nics"), i, v)
		json_array_append_new(nics, json_pack(
			"{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"index", rpc_int(v, "index"),
			"rx_throttled_usec", rpc_int(v, "rx_throttled_ns") / 1000,
			"tx_throttled_usec", rpc_int(v, "tx_throttled_ns") / 1000,
			"tap", json_string_value(json_object_get(v, "tap")) ?
				json_string_value(json_object_get(v, "tap")) :
				"",
			"rx_bytes", rpc_int(v, "rx_bytes"),
			"tx_bytes", rpc_int(v, "tx_bytes"),
			"rx_packets", rpc_int(v, "rx_packets"),
			"tx_packets", rpc_int(v, "tx_packets"),
			"rx_dropped", rpc_int(v, "rx_dropped"),
			"tx_dropped", rpc_int(v, "tx_errors")));
	json_object_set_new(res, "nics", nics);
	/* Beyond PROTOCOL.md's minimum: per-vCPU time and exits by reason. */
	vcpus = json_array();
	json_array_foreach(json_object_get(r, "vcpus"), i, v)
		json_array_append_new(vcpus, json_pack(
			"{s:I, s:I, s:I, s:I, s:o}",
			"index", rpc_int(v, "index"),
			"tid", rpc_int(v, "tid"),
			"cpu_usec", rpc_int(v, "cpu_ns") / 1000,
			"runs", rpc_int(v, "runs"),
			"exits", json_object_get(v, "exits") ?
				json_incref(json_object_get(v, "exits")) :
				json_object()));
	json_object_set_new(res, "vcpus", vcpus);
	if (json_object_get(r, "console"))
		json_object_set(res, "console", json_object_get(r, "console"));
	return res;
}

static void
rpc_stats_done(void *arg, int err, json_t *result, const char *msg)
{
	struct rpc_stats_op *op = arg;
	json_t *res;

	if (err < 0) {
		rpc_fail(op->call, err == -ECANCELED ? -EBUSY : err,
			 "vm \"%s\": %s", op->vm->name, msg);
	} else if (op->vm->pid <= 0) {
		rpc_fail(op->call, -EBUSY, "vm \"%s\" is %s", op->vm->name,
			 vm_state_name(op->vm->state));
	} else {
		res = rpc_stats_reshape(op->vm, result);
		if (res)
			rpc_reply(op->call, res);
		else
			rpc_fail(op->call, -ENOMEM, "out of memory");
	}
	vm_unref(op->vm);
	free(op);
}

int
rpc_vm_stats(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	struct rpc_stats_op *op;

	if (!vm)
		return 0;
	if (vm_state_is_down(vm->state) ||
	    vm->state == VM_STATE_STARTING || vm->pid <= 0)
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s: no statistics",
				vm->name, vm_state_name(vm->state));
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->call = call;
	op->vm = vm_ref(vm);
	if (vmmrun_call(vm->ctl, "vm.stats", NULL, rpc_stats_done, op) < 0) {
		vm_unref(vm);
		free(op);
		return rpc_fail(call, -EIO, "vm \"%s\": its control socket is "
				"not available", vm->name);
	}
	return 0;
}

/* --- vm.console ----------------------------------------------------------- */

int
rpc_vm_console(struct rpc_call *call, json_t *params)
{
	struct vm *vm = rpc_vm_lookup(call, params);
	json_t *w = json_object_get(params, "write");
	bool writer;

	if (!vm)
		return 0;
	/* Without "write", whoever may write does; a viewer reads. */
	writer = w ? json_is_true(w) : call->who.role >= POLICY_ROLE_OPERATOR;
	if (writer && call->who.role < POLICY_ROLE_OPERATOR)
		return rpc_fail(call, -EACCES, "writing to the console needs "
				"the operator role; %s is %s (attach with "
				"write false to read)", call->who.name,
				policy_role_name(call->who.role));
	return console_attach(call, vm, writer,
			      rpc_bool(params, "history", true));
}
