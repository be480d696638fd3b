/* SPDX-License-Identifier: MIT */
/* The VM registry and its state machine (registry.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "vmmd/cgroup.h"
#include "vmmd/console.h"
#include "vmmd/daemon.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"
#include "vmmd/vmmrun.h"

static const char *const vm_state_names[VM_STATE_MAX] = {
	[VM_STATE_DEFINED] = "defined",
	[VM_STATE_STOPPED] = "stopped",
	[VM_STATE_STARTING] = "starting",
	[VM_STATE_RUNNING] = "running",
	[VM_STATE_PAUSED] = "paused",
	[VM_STATE_STOPPING] = "stopping",
	[VM_STATE_CRASHED] = "crashed",
};

#define S(x) (1u << VM_STATE_##x)
/* Allowed next states, by current state (the diagram in registry.h). */
static const unsigned int vm_state_next[VM_STATE_MAX] = {
	[VM_STATE_DEFINED] = S(STARTING),
	[VM_STATE_STOPPED] = S(STARTING),
	[VM_STATE_CRASHED] = S(STARTING),
	/* A reattached process may be paused; a kill during the start or
	 * the daemon's own restart of it ends it stopped. */
	[VM_STATE_STARTING] = S(RUNNING) | S(PAUSED) | S(CRASHED) | S(STOPPED),
	/* starting: the restart policy brings a new process up. */
	[VM_STATE_RUNNING] = S(PAUSED) | S(STOPPING) | S(STOPPED) | S(CRASHED) |
			     S(STARTING),
	[VM_STATE_PAUSED] = S(RUNNING) | S(STOPPING) | S(STOPPED) | S(CRASHED) |
			    S(STARTING),
	/* running or paused: the guest ignored the button and no force. */
	[VM_STATE_STOPPING] = S(STOPPED) | S(RUNNING) | S(PAUSED),
};
#undef S

const char *
vm_state_name(enum vm_state s)
{
	return (unsigned int)s < VM_STATE_MAX ? vm_state_names[s] : "unknown";
}

int
vm_state_parse(const char *s, enum vm_state *ret)
{
	unsigned int i;

	for (i = 0; s && i < VM_STATE_MAX; i++)
		if (strcmp(s, vm_state_names[i]) == 0) {
			*ret = (enum vm_state)i;
			return 0;
		}
	return -EINVAL;
}

bool
vm_state_allowed(enum vm_state from, enum vm_state to)
{
	if ((unsigned int)from >= VM_STATE_MAX ||
	    (unsigned int)to >= VM_STATE_MAX)
		return false;
	return vm_state_next[from] & (1u << to);
}

bool
vm_state_is_down(enum vm_state s)
{
	return s == VM_STATE_DEFINED || s == VM_STATE_STOPPED ||
	       s == VM_STATE_CRASHED;
}

bool
vm_state_has_process(enum vm_state s)
{
	return s == VM_STATE_STARTING || s == VM_STATE_RUNNING ||
	       s == VM_STATE_PAUSED || s == VM_STATE_STOPPING;
}

uint64_t
vm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *
vm_log_name(const struct vm *vm, char *buf, size_t len)
{
	snprintf(buf, len, "vm \"%s\"", vm->name);
	return buf;
}

void
registry_init(struct registry *r)
{
	TAILQ_INIT(&r->vms);
	r->count = 0;
}

void
registry_fini(struct registry *r)
{
	struct vm *vm, *t;

	TAILQ_FOREACH_SAFE(vm, &r->vms, entry, t) {
		TAILQ_REMOVE(&r->vms, vm, entry);
		r->count--;
		vm->removed = true;
		vm_unref(vm);
	}
}

struct vm *
registry_find(struct registry *r, const char *name)
{
	struct vm *vm;

	if (!name)
		return NULL;
	TAILQ_FOREACH(vm, &r->vms, entry)
		if (strcmp(vm->name, name) == 0)
			return vm;
	return NULL;
}

struct vm *
registry_find_pid(struct registry *r, pid_t pid)
{
	struct vm *vm;

	if (pid <= 0)
		return NULL;
	TAILQ_FOREACH(vm, &r->vms, entry)
		if (vm->pid == pid)
			return vm;
	return NULL;
}

int
registry_add(struct registry *r, struct vmmd *d, struct vmdef *def,
	     const char *tenant, struct vm **ret)
{
	struct vm *vm, *pos;

	if (registry_find(r, def->name)) {
		vmdef_free(def);
		return -EEXIST;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm || (tenant && !(vm->tenant = strdup(tenant)))) {
		free(vm);
		vmdef_free(def);
		return -ENOMEM;
	}
	vm->d = d;
	vm->refs = 1;
	snprintf(vm->name, sizeof(vm->name), "%s", def->name);
	vm->def = def;
	vm->state = VM_STATE_DEFINED;
	vm->pidfd = -1;
	TAILQ_INIT(&vm->waiters);
	TAILQ_INIT(&vm->consoles);
	TAILQ_FOREACH(pos, &r->vms, entry)
		if (strcmp(pos->name, vm->name) > 0)
			break;
	if (pos)
		TAILQ_INSERT_BEFORE(pos, vm, entry);
	else
		TAILQ_INSERT_TAIL(&r->vms, vm, entry);
	r->count++;
	*ret = vm;
	return 0;
}

void
registry_remove(struct registry *r, struct vm *vm)
{
	if (vm->removed)
		return;
	TAILQ_REMOVE(&r->vms, vm, entry);
	r->count--;
	vm->removed = true;
	vm_unref(vm);
}

struct vm *
vm_ref(struct vm *vm)
{
	vm->refs++;
	return vm;
}

void
vm_unref(struct vm *vm)
{
	if (!vm || --vm->refs)
		return;
	/* The last reference: whatever the process left behind goes. The
	 * process itself is never touched here (it outlives the daemon). */
	if (vm->exit_ev)
		event_free(vm->exit_ev);
	if (vm->start_timer)
		event_free(vm->start_timer);
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vmmrun_free(vm->ctl);
	/* A pending group removal holds a reference: none is left here. */
	cgroup_vm_free(vm->cg);
	free(vm->vcpu_tids);
	vmdef_free(vm->def);
	free(vm->tenant);
	free(vm);
}

bool
vm_visible(const struct vm *vm, const char *tenant)
{
	if (!tenant)
		return true;
	return vm->tenant && strcmp(vm->tenant, tenant) == 0;
}

int
vm_set_state(struct vm *vm, enum vm_state to, const char *fmt, ...)
{
	enum vm_state from = vm->state;
	char reason[sizeof(vm->state_reason)], sub[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	vm_log_name(vm, sub, sizeof(sub));
	if (from == to)
		return 0;
	if (!vm_state_allowed(from, to)) {
		log_error(sub, "internal: state %s -> %s is not allowed (%s)",
			  vm_state_name(from), vm_state_name(to), reason);
		return -EINVAL;
	}
	vm->state = to;
	memcpy(vm->state_reason, reason, sizeof(reason));
	log_msg(to == VM_STATE_CRASHED ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, sub,
		"%s -> %s: %s", vm_state_name(from), vm_state_name(to),
		reason);
	if (vm->d && !vm->removed) {
		json_t *extra = json_pack("{s:s, s:s, s:s}",
					  "state", vm_state_name(to),
					  "previous", vm_state_name(from),
					  "reason", reason);

		if (extra && vm->pid > 0 && vm_state_has_process(to))
			json_object_set_new(extra, "pid",
					    json_integer(vm->pid));
		events_emit(&vm->d->events, EVENT_VM_STATE, vm, extra);
	}
	return 0;
}

void
vm_wait_add(struct vm *vm, struct vm_waiter *w, enum vm_wait what,
	    vm_done_fn fn, void *arg)
{
	w->what = what;
	w->fn = fn;
	w->arg = arg;
	w->queued = true;
	TAILQ_INSERT_TAIL(&vm->waiters, w, entry);
}

void
vm_wait_remove(struct vm *vm, struct vm_waiter *w)
{
	if (!w->queued)
		return;
	TAILQ_REMOVE(&vm->waiters, w, entry);
	w->queued = false;
}

void
vm_wait_fire(struct vm *vm, enum vm_wait what, int err, const char *msg)
{
	TAILQ_HEAD(, vm_waiter) now;
	struct vm_waiter *w, *t;

	/* Waiters may add new ones (a restart waits for its start): only
	 * those queued before this call fire. */
	TAILQ_INIT(&now);
	TAILQ_FOREACH_SAFE(w, &vm->waiters, entry, t)
		if (w->what == what) {
			TAILQ_REMOVE(&vm->waiters, w, entry);
			TAILQ_INSERT_TAIL(&now, w, entry);
		}
	vm_ref(vm);
	while ((w = TAILQ_FIRST(&now))) {
		TAILQ_REMOVE(&now, w, entry);
		w->queued = false;
		w->fn(vm, w->arg, err, msg);
	}
	vm_unref(vm);
}

json_t *
vm_doc_new(const struct vmdef *def, const char *tenant)
{
	json_t *doc = json_object(), *j = vmdef_to_json(def);

	if (!doc || !j || json_object_set_new(doc, "definition", j) < 0) {
		json_decref(doc);
		return NULL;
	}
	if (tenant && json_object_set_new(doc, "tenant",
					  json_string(tenant)) < 0) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

int
vm_doc_parse(json_t *doc, const char *name, struct vmdef **ret_def,
	     char **ret_tenant, char *err, size_t errlen)
{
	json_t *def_j = json_object_get(doc, "definition"), *t;
	struct vmdef *def;
	char why[256];
	const char *key;
	json_t *v;
	int r;

	if (!def_j) {
		/* A bare definition. */
		def_j = doc;
		t = NULL;
	} else {
		json_object_foreach(doc, key, v)
			if (strcmp(key, "definition") && strcmp(key, "tenant")) {
				snprintf(err, errlen, "%s: unknown field", key);
				return -EINVAL;
			}
		t = json_object_get(doc, "tenant");
		if (t && !json_is_null(t) &&
		    (!json_is_string(t) || !*json_string_value(t))) {
			snprintf(err, errlen, "tenant: must be a non-empty "
				 "string");
			return -EINVAL;
		}
	}
	r = vmdef_from_json(def_j, 0, &def, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "definition: %s", why);
		return r;
	}
	if (strcmp(def->name, name) != 0) {
		snprintf(err, errlen, "definition: name \"%s\" is not the "
			 "file's name", def->name);
		vmdef_free(def);
		return -EINVAL;
	}
	*ret_tenant = NULL;
	if (json_is_string(t) && !(*ret_tenant = strdup(json_string_value(t)))) {
		vmdef_free(def);
		return -ENOMEM;
	}
	*ret_def = def;
	return 0;
}
