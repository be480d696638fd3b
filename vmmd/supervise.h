/* SPDX-License-Identifier: MIT */
/*
 * Supervision of the vmm-run processes: one per VM, started with fork and
 * exec (only stdin, stdout and stderr handed over; a session of its own;
 * its command line names the VM), watched with a pidfd registered in the
 * event loop and reaped on SIGCHLD, talked to over its control socket.
 *
 * Nothing here waits: a start answers its waiters once vmm-run's control
 * socket answers vm.info (polled for on a timer, bounded by the start
 * timeout), a stop once the process is gone (or its timeout passed).
 *
 * When the process ends on its own, its exit status decides: a power-off
 * stops the VM, a reboot request starts it again, a crash or a killed
 * process is a failure that the restart policy may restart (at most
 * max_restarts within window_sec, then the VM is failed).
 *
 * A restarted daemon reattaches to the processes its predecessor started:
 * the pid file in the VM's runtime directory names a live vmm-run with
 * the VM's --name, and its control socket confirms it.
 */
#ifndef VMMD_SUPERVISE_H
#define VMMD_SUPERVISE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/vmdef.h"
#include "vmmd/registry.h"

/* sockaddr_un's sun_path. */
#define SUPERVISE_SOCK_MAX	108

/* Files of one VM under RUNTIME_DIR/vms/NAME. */
struct vm_paths {
	char dir[PATH_MAX];
	char control[SUPERVISE_SOCK_MAX];
	char console[SUPERVISE_SOCK_MAX];
	char vsock[SUPERVISE_SOCK_MAX];
	char hvc0[PATH_MAX];		/* the virtio console's output */
	char log[PATH_MAX];		/* vmm-run's stdout and stderr */
	char log_old[PATH_MAX];		/* the previous run's */
	char pid[PATH_MAX];
};

/* 0, or -ENAMETOOLONG when a socket path would not fit. */
int supervise_paths(const char *runtime_dir, const char *name,
		    struct vm_paths *ret);

/* The console history vmm-run keeps for def: its console.history rounded
 * up to KiB, within vmm-run's 4K..16M. */
size_t supervise_console_ring(const struct vmdef *def);

/*
 * vmm-run's argv for def (NULL-terminated, new; supervise_argv_free()).
 * Returns 0, -EINVAL with err naming the field vmm-run's option syntax
 * cannot carry (a comma in a disk path), or -ENOMEM.
 */
int supervise_argv(const char *vmm_run, const struct vmdef *def,
		   const struct vm_paths *p, char ***ret, char *err,
		   size_t errlen);
void supervise_argv_free(char **argv);

/*
 * Start a stopped or failed VM: files checked, the process spawned, state
 * starting; VM_WAIT_STARTED waiters learn how it ended. why is the state
 * change's reason. Returns 0, or a negative errno with err and nothing
 * changed: -EBUSY (wrong state), -EINVAL (a file check), others.
 */
int supervise_start(struct vm *vm, const char *why, char *err,
		    size_t errlen);

/*
 * vm.stop: the ACPI power button (a paused VM is resumed first), then up to
 * timeout_sec for the process to end; after that, with force, SIGKILL,
 * without, the VM goes back to running and fn gets -ETIMEDOUT. fn is
 * called once: err 0 when the process is gone (forced: it was killed).
 * Returns 0, or -EBUSY (the VM is not running or paused) / -ENOMEM and fn
 * is not called.
 */
typedef void (*supervise_stop_fn)(struct vm *vm, void *arg, int err,
				  bool forced, const char *msg);
int supervise_stop(struct vm *vm, unsigned int timeout_sec, bool force,
		   supervise_stop_fn fn, void *arg);

/*
 * SIGKILL the process; why becomes the reason of the state change when it
 * is gone (wait for VM_WAIT_EXIT). 0, or -ESRCH without a process.
 */
int supervise_kill(struct vm *vm, const char *why);

/*
 * At the daemon's start: adopt the VM's process if its pid file names a
 * live vmm-run of this VM. Returns 1 (state starting until its control
 * socket answers), 0 (no such process), or a negative errno.
 */
int supervise_reattach(struct vm *vm);

/* SIGCHLD: reap every exited child and handle its VM's exit. */
void supervise_reap(struct vmmd *d);

/* The daemon is going away: stop watching the process (never touching
 * it) and drop what refers to the event loop. */
void supervise_detach(struct vm *vm);

/*
 * The last non-empty line of a log file (at most len - 1 bytes, control
 * characters replaced), or "" when there is none. Returns buf.
 */
char *supervise_log_tail(const char *path, char *buf, size_t len);

/*
 * Whether /proc/PID/cmdline is a vmm-run with --name name. Fills ring with
 * its console history when given (0 if not found). 1, 0, or -errno.
 */
int supervise_proc_is_vm(pid_t pid, const char *name, size_t *ring);

#endif
