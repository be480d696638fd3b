/* SPDX-License-Identifier: MIT */
/*
 * The VM registry: every defined VM, its definition, its tenant, and its
 * one state machine (PROTOCOL.md):
 *
 *   defined, stopped, crashed  --start-->  starting
 *   starting  --control socket answers-->  running
 *   starting  --exit / no answer-->  crashed
 *   running <--pause/resume-->  paused
 *   running, paused  --vm.stop-->  stopping  --exit-->  stopped
 *                                  stopping  --timeout, no force-->  running
 *   running, paused  --exit: power-off-->  stopped
 *   running, paused  --exit: crash-->  crashed, or starting (restart policy)
 *   starting, running, paused, stopping  --vm.kill-->  stopped
 *
 * vm_set_state() is the only way a state changes: it checks the transition
 * against that table, logs it and emits the vm.state event.
 *
 * What waits on a VM (a vm.start waiting for it to run, a vm.stop waiting
 * for its process to end) registers a waiter; supervise.c fires them.
 */
#ifndef VMMD_REGISTRY_H
#define VMMD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "proto/vmdef.h"
#include "vmmd/queue.h"

struct vmmd;
struct vmmrun;
struct console;
struct event;
struct cgroup_vm;

enum vm_state {
	VM_STATE_DEFINED,	/* stored, has not run since it was loaded */
	VM_STATE_STOPPED,
	VM_STATE_STARTING,
	VM_STATE_RUNNING,
	VM_STATE_PAUSED,
	VM_STATE_STOPPING,
	VM_STATE_CRASHED,	/* the process died, or could not start */
	VM_STATE_MAX,
};

/* Why the process is being ended, which decides what its exit means. */
enum vm_intent {
	VM_INTENT_NONE,		/* it ends on its own: the restart policy */
	VM_INTENT_STOP,		/* vm.stop pressed the power button */
	VM_INTENT_KILL,		/* we sent SIGKILL */
};

enum vm_wait {
	VM_WAIT_STARTED,	/* the start finished: running, or crashed */
	VM_WAIT_EXIT,		/* the process is gone */
};

struct vm;

/* err 0 on success, else a negative errno with msg naming the problem. */
typedef void (*vm_done_fn)(struct vm *vm, void *arg, int err,
			   const char *msg);

/* Embedded in whatever waits; see vm_wait_add(). */
struct vm_waiter {
	TAILQ_ENTRY(vm_waiter) entry;
	enum vm_wait what;
	vm_done_fn fn;
	void *arg;
	bool queued;
};

struct vm_exit {
	bool valid;
	time_t at;
	int status;		/* exit status, -1 when unknown */
	int signal;		/* the signal that ended it, 0 for none */
	char reason[200];
};

struct vm {
	TAILQ_ENTRY(vm) entry;
	struct vmmd *d;
	unsigned int refs;
	bool removed;		/* deleted; only references keep it */
	char name[VMDEF_NAME_MAX + 1];
	struct vmdef *def;
	char *tenant;		/* NULL: no tenant */
	enum vm_state state;
	char state_reason[200];

	/* The vmm-run process, while the state has one. */
	pid_t pid;
	bool child;		/* ours to wait for; else reattached */
	int pidfd;
	struct event *exit_ev;	/* pidfd readable, or a polling timer */
	struct timespec started_at;	/* CLOCK_REALTIME */
	uint64_t started_ms;		/* CLOCK_MONOTONIC */
	size_t console_ring;	/* the history vmm-run keeps */
	struct vmmrun *ctl;
	struct event *start_timer;
	uint64_t start_deadline_ms;
	bool start_probing;	/* a vm.info to the new process is out */
	bool reattaching;
	bool start_timed_out;	/* killed for not answering in time */
	enum vm_intent intent;
	char intent_reason[120];

	/* The restart policy's window. */
	unsigned int restarts;
	uint64_t window_start_ms;
	struct vm_exit last_exit;

	TAILQ_HEAD(, vm_waiter) waiters;
	TAILQ_HEAD(, console) consoles;
	unsigned int nr_consoles;
	struct console *writer;

	/* Resource limits (limits.h): the VM's cgroup, while it has one. */
	struct cgroup_vm *cg;
	struct event *cg_destroy_timer;	/* holds a reference to the VM */
	unsigned int cg_destroy_tries;
	/* The vCPU threads of the process (vmm-run's vm.stats), once known. */
	pid_t *vcpu_tids;
	unsigned int nr_vcpu_tids;
	bool tids_asked;	/* a vm.stats for them is out */
	bool pinned;		/* affinities were set for this process */
};

struct registry {
	TAILQ_HEAD(, vm) vms;	/* sorted by name */
	unsigned int count;
};

const char *vm_state_name(enum vm_state s);
/* 0, or -EINVAL for a name that is not a state. */
int vm_state_parse(const char *s, enum vm_state *ret);
/* The transition table above. */
bool vm_state_allowed(enum vm_state from, enum vm_state to);
/* starting, running, paused, stopping: a process exists. */
/* defined, stopped or crashed: no process, and it may be started. */
bool vm_state_is_down(enum vm_state s);
bool vm_state_has_process(enum vm_state s);

void registry_init(struct registry *r);
/* Drop every VM (their processes keep running). */
void registry_fini(struct registry *r);

/* Borrowed, or NULL. */
struct vm *registry_find(struct registry *r, const char *name);
struct vm *registry_find_pid(struct registry *r, pid_t pid);

/*
 * A new VM in state stopped, holding def (taken, also on error) and a copy
 * of tenant (may be NULL). The registry holds the one reference. Returns
 * 0, -EEXIST or -ENOMEM.
 */
int registry_add(struct registry *r, struct vmmd *d, struct vmdef *def,
		 const char *tenant, struct vm **ret);

/* Take vm out of the registry (it must have no process) and drop the
 * registry's reference. */
void registry_remove(struct registry *r, struct vm *vm);

struct vm *vm_ref(struct vm *vm);
void vm_unref(struct vm *vm);

/* Whether an identity bound to tenant (NULL: none) may see vm. */
bool vm_visible(const struct vm *vm, const char *tenant);

/*
 * Move vm to state to, with a reason (printf-style, one line) for the log
 * and the event. Returns 0, or -EINVAL (logged, nothing changes) for a
 * transition the table does not allow. The same state again is a no-op.
 */
int vm_set_state(struct vm *vm, enum vm_state to, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Wait for what: fn(vm, arg, err, msg) is called once, then w is free. */
void vm_wait_add(struct vm *vm, struct vm_waiter *w, enum vm_wait what,
		 vm_done_fn fn, void *arg);
/* Stop waiting (w not called); a waiter not queued is fine. */
void vm_wait_remove(struct vm *vm, struct vm_waiter *w);
/* Call every waiter for what with err and msg. */
void vm_wait_fire(struct vm *vm, enum vm_wait what, int err,
		  const char *msg);

/*
 * The store's document of a VM: {"definition": {...}, "tenant": "..."}
 * (tenant left out when none). A new reference, or NULL.
 */
json_t *vm_doc_new(const struct vmdef *def, const char *tenant);

/*
 * Read a stored document of the VM name (also a bare definition, as an
 * operator may put one there by hand): validated without file checks (an
 * image may come back later), its name must be the file's. Returns 0 with
 * a new def and tenant (NULL or a new string), or -EINVAL with err.
 */
int vm_doc_parse(json_t *doc, const char *name, struct vmdef **ret_def,
		 char **ret_tenant, char *err, size_t errlen);

/* "vm \"web1\"" for log subsystems. */
const char *vm_log_name(const struct vm *vm, char *buf, size_t len);

/* Monotonic milliseconds. */
uint64_t vm_now_ms(void);

#endif
