/* SPDX-License-Identifier: MIT */
/*
 * vmm-run's own state, shared by its files: vmm-run.c (options, set-up,
 * the run) and vmm-run-ctl.c (the control socket).
 */
#ifndef VMM_RUN_H
#define VMM_RUN_H

#include "vm.h"
#include "conhub.h"
#include "virtio/virtio_pci.h"

#include <stdbool.h>
#include <stdint.h>
#include <termios.h>
#include <time.h>

/* Exit codes, documented in the README. */
enum {
	EXIT_POWEROFF = 0,	/* the guest powered off */
	EXIT_INTERNAL = 1,	/* an error of the VMM while running */
	EXIT_USAGE = 2,		/* bad arguments or set-up error */
	EXIT_REBOOT = 3,	/* the guest asked to reboot */
	EXIT_CRASH = 4,		/* the guest crashed (triple fault, ...) */
	/* 128 + N after signal N (130 SIGINT, 143 SIGTERM). */
};

#define VMM_MAX_DISKS 16
#define VMM_MAX_NICS 8

struct options {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	const char *firmware;		/* --firmware: boot a BIOS image */
	const char *firmware_log;	/* --firmware-log: its debug port */
	unsigned int cpus;
	uint64_t memory;
	const char *console;
	bool stats;
	bool classic;
	bool no_pvm_cmdline;
	bool no_syscall_bridge;	/* PVM: leave guest SYSCALLs to the host */
	const char *virtio_console;	/* NULL, "stdio" or "file:PATH" */
	const char *disks[VMM_MAX_DISKS];	/* --disk arguments, in order */
	unsigned int nr_disks;
	const char *nets[VMM_MAX_NICS];		/* --net arguments, in order */
	unsigned int nr_nets;
	bool no_rng;
	bool balloon;
	const char *vsock;		/* "cid=N,uds=PATH" */
	const char *name;		/* --name: the VM's name */
	const char *control;		/* --control: control socket path */
	const char *console_socket;	/* --console-socket: its path */
	uint64_t console_history;	/* its history, bytes */
	const char *definition;		/* --definition: a VM definition file */
};

struct vmm {
	struct options opt;
	struct vm *vm;
	struct uart8250 *uart;
	struct i8042 *i8042;
	struct rtc *rtc;
	struct pci_host *pci;
	struct acpi_pm *pm;
	struct firmware *fw;
	struct irq_router *router;
	struct vcon *vcon;
	struct rng *rng;
	struct balloon *balloon;
	struct vsock *vsock;
	struct blk *blks[VMM_MAX_DISKS];
	struct vnet *nics[VMM_MAX_NICS];
	int vcon_in[2];		/* stdin -> virtio-console, when it has stdio */
	int console_fd;
	bool tty_raw;
	struct termios tty_saved;
	int signo;
	struct conhub *hub;	/* --console-socket */
	struct vmm_ctl *ctl;	/* --control */
	uint64_t start_ns;	/* CLOCK_MONOTONIC when the VM started */
};

/*
 * The control socket (vmm-run-ctl.c): JSON-RPC over length-framed messages
 * (proto/PROTOCOL.md, "vmm-run control socket"), served on a thread of its
 * own. Returns 0 or a negative errno, with a one-line reason in err.
 */
struct vmm_ctl;
int vmm_ctl_start(struct vmm *m, const char *path, char *err, size_t errlen);
/* Tell subscribers the VM's state changed ("running", "paused", ...). */
void vmm_ctl_notify_state(struct vmm_ctl *c, const char *state);
void vmm_ctl_stop(struct vmm_ctl *c);

static inline uint64_t
vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
