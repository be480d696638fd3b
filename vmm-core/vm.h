/* SPDX-License-Identifier: MIT */
/*
 * One KVM virtual machine: its guest RAM, its buses, its vCPUs and the
 * in-kernel irqchip and PIT. A VM is created, given devices and a boot
 * state, then run until something asks it to stop.
 */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "bus.h"
#include "kvm_stats.h"
#include "mem.h"
#include "platform.h"

#define VM_MAX_VCPUS 254	/* APIC ids fit in 8 bits, minus the IOAPIC */

enum vcpu_exit_kind {
	VCPU_EXIT_IO_IN,
	VCPU_EXIT_IO_OUT,
	VCPU_EXIT_MMIO_READ,
	VCPU_EXIT_MMIO_WRITE,
	VCPU_EXIT_HLT,
	VCPU_EXIT_SHUTDOWN,
	VCPU_EXIT_INTERNAL_ERROR,
	VCPU_EXIT_EMULATED,	/* instruction the host could not emulate, done by us */
	VCPU_EXIT_INTR,		/* KVM_RUN interrupted by a signal */
	VCPU_EXIT_FAIL_ENTRY,
	VCPU_EXIT_SYSTEM_EVENT,
	VCPU_EXIT_IRQ_WINDOW,
	VCPU_EXIT_DEBUG,	/* breakpoint or single step (PVM syscall bridge) */
	VCPU_EXIT_MSR,		/* MSR access filtered to userspace */
	VCPU_EXIT_OTHER,
	VCPU_EXIT_MAX,
};

const char *vcpu_exit_kind_name(enum vcpu_exit_kind k);

struct vcpu_stats {
	uint64_t exits[VCPU_EXIT_MAX];
	uint64_t runs;		/* KVM_RUN calls */
	uint64_t pvm_syscalls;	/* user-mode SYSCALLs carried into the kernel */
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	pid_t tid;		/* the vCPU thread's id, for its CPU time */
	struct vcpu_stats stats;	/* written by the vCPU thread only */
	struct kvm_stats kvm_stats;	/* KVM's own counters (kvm_stats.h) */
	/* Where the last emulation failure was, for rate-limited logs. */
	uint64_t last_emul_rip;
	unsigned int emul_logged;
	/* PVM syscall bridge (vcpu.c): the guest's LSTAR, the #PF handler
	 * the breakpoint sits on (0: not armed), and whether one instruction
	 * is being stepped past it. */
	uint64_t sysbp_lstar;
	uint64_t sysbp_pf;
	bool sysbp_stepping;
	bool debug_logged;
};

struct vm_config {
	unsigned int nr_vcpus;
	uint64_t ram_size;
	bool no_irqchip;	/* tiny tests: HLT exits to userspace */
	bool pvm_workarounds;	/* step in where the host cannot emulate */
	bool no_syscall_bridge;	/* PVM: without vcpu.c's syscall bridge */
};

struct vm {
	int kvm_fd;
	int vm_fd;
	struct vm_config cfg;
	struct guest_mem mem;
	struct bus pio;
	struct bus mmio;
	struct platform_ops platform;
	unsigned int nr_vcpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid;	/* supported CPUID, the template */
	bool is_pvm;			/* host KVM is kvm_pvm (no VT-x/AMD-V) */
	bool syscall_bridge;		/* LSTAR writes trapped (vcpu.c) */
	/* KVM_CAP_BINARY_STATS_FD, asked once, by the first vCPU made. */
	bool binary_stats_checked;
	bool binary_stats;

	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	enum vm_stop_reason stop_reason;	/* first reason wins */
	char stop_message[256];			/* what stopped it, for the log */
	int stop_eventfd;			/* becomes readable on stop */
	/* Pause: vCPU threads park outside KVM_RUN while pause_wanted; under
	 * stop_lock, signalled on stop_cond. */
	bool pause_wanted;
	unsigned int nr_parked;
	unsigned int nr_vcpu_threads;		/* running vCPU threads */
};

/*
 * Open /dev/kvm, create the VM, map RAM and set up the irqchip, PIT and
 * vCPUs (not yet running). On failure returns a negative errno and writes
 * a one-line reason to err.
 */
int vm_new(const struct vm_config *cfg, struct vm **ret, char *err,
	   size_t errlen);
void vm_free(struct vm *vm);

/* True when this host's KVM is PVM (software-emulated kernel mode). */
bool vm_host_is_pvm(void);

/* Boot state for a 64-bit Linux entry: flat segments, identity page tables
 * for the first 4 GiB, RIP = entry, RSI = boot_params; APs wait for SIPI. */
int vm_setup_long_mode(struct vm *vm, uint64_t entry, uint64_t boot_params);

/* Boot state for flat 32-bit protected mode without paging (tiny tests). */
int vcpu_setup_flat32(struct vcpu *v, uint64_t entry, uint64_t stack);

/*
 * Run one KVM_RUN and handle its exit (I/O dispatch, emulation). Returns
 * the kind of exit handled, or a negative errno. For tests and the vCPU
 * loop alike.
 */
int vcpu_run_once(struct vcpu *v);

/* Start every vCPU thread; returns 0 or a negative errno. */
int vm_start(struct vm *vm);
/* Wait until the VM is asked to stop, stop the vCPUs, return the reason. */
enum vm_stop_reason vm_wait(struct vm *vm);
/* Ask the VM to stop; the first reason wins. Not async-signal-safe. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason,
		     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Pause the VM: every vCPU leaves KVM_RUN and waits; returns once all have
 * (0), or -ESRCH when the VM stopped meanwhile. Devices keep running, so
 * interrupts queue up in the irqchip. vm_resume lets them go on. Both are
 * idempotent and may be called from any thread but the vCPUs'.
 */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/* Called by a vCPU thread between runs: waits while the VM is paused. */
void vm_pause_point(struct vm *vm);

/* The reason the VM was asked to stop (VM_STOP_NONE while running). */
enum vm_stop_reason vm_stop_reason(struct vm *vm);
const char *vm_stop_reason_name(enum vm_stop_reason r);

/* Set an interrupt line through the in-kernel irqchip. */
int vm_irq_line(struct vm *vm, uint32_t gsi, int level);

/*
 * KVM's own counters for this vCPU (exits, emulated instructions, page
 * faults; kvm_stats.h), read now. Any thread, any time while the VM
 * exists. Returns 0, or -EOPNOTSUPP when the host does not provide them.
 */
int vcpu_kvm_stats(const struct vcpu *v, struct kvm_stats_values *ret);

/* Sum of every vCPU's exit counters. */
void vm_stats_total(const struct vm *vm, struct vcpu_stats *ret);

#endif
