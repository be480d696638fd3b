/* SPDX-License-Identifier: MIT */
#include "vm.h"
#include "layout.h"
#include "log.h"
#include "x86/cpuid.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where KVM on VT-x hosts keeps its real-mode TSS and identity page: the
 * top of the 32-bit hole, clear of the IOAPIC and LAPIC. */
#define VM_IDENTITY_MAP_ADDR	0xfeffc000ULL
#define VM_TSS_ADDR		0xfeffd000ULL

int vcpu_init(struct vm *vm, struct vcpu *v, unsigned int index, char *err,
	      size_t errlen);
void vcpu_destroy(struct vcpu *v);
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *v);

static const char *const stop_names[VM_STOP_MAX] = {
	[VM_STOP_NONE] = "none",
	[VM_STOP_POWEROFF] = "poweroff",
	[VM_STOP_REBOOT] = "reboot",
	[VM_STOP_CRASH] = "crash",
	[VM_STOP_SIGNAL] = "signal",
	[VM_STOP_ERROR] = "error",
};

bool
vm_host_is_pvm(void)
{
	struct stat st;

	return stat("/sys/module/kvm_pvm", &st) == 0;
}

static void
vm_platform_irq_line(void *opaque, uint32_t gsi, int level)
{
	(void)vm_irq_line(opaque, gsi, level);
}

static void
vm_platform_request_stop(void *opaque, enum vm_stop_reason reason)
{
	vm_request_stop(opaque, reason, "requested by a device (%s)",
			reason < VM_STOP_MAX ? stop_names[reason] : "?");
}

static int
vm_open_kvm(char *err, size_t errlen)
{
	int fd, r;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			snprintf(err, errlen, "no /dev/kvm: this host has no KVM "
				 "(load kvm_intel or kvm_amd, or enable nested "
				 "virtualization)");
		else if (r == -EACCES || r == -EPERM)
			snprintf(err, errlen, "no permission to open /dev/kvm "
				 "(run as root or join the kvm group)");
		else
			snprintf(err, errlen, "cannot open /dev/kvm: %s",
				 strerror(-r));
		return r;
	}
	r = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (r < 0) {
		r = -errno;
		snprintf(err, errlen, "/dev/kvm is not a KVM device "
			 "(KVM_GET_API_VERSION: %s)", strerror(-r));
		close(fd);
		return r;
	}
	if (r != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm speaks API version %d, we need %d",
			 r, KVM_API_VERSION);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/*
 * On PVM an unmodified guest's user-mode SYSCALL lands on the kernel's
 * entry point (LSTAR) still in user mode, and the kernel takes the fault
 * that follows for a bad jump. vmm-run finishes such a SYSCALL itself
 * (the syscall bridge, vcpu.c), from a breakpoint on the guest's #PF
 * handler that it sets once the guest has set LSTAR: LSTAR writes come to
 * userspace through an MSR filter. Without the filter the bridge stays
 * off and the guest's user mode cannot make system calls.
 */
#define MSR_LSTAR 0xc0000082u

static void
vm_setup_syscall_bridge(struct vm *vm)
{
	static uint8_t deny;	/* bit 0 clear: LSTAR writes exit */
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args[0] = KVM_MSR_EXIT_REASON_FILTER,
	};
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };

	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) <= 0 ||
	    ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG) <= 0) {
		log_warn("PVM host without MSR filters or guest debugging: "
			 "guest user mode will not reach its kernel by SYSCALL");
		return;
	}
	f.ranges[0] = (struct kvm_msr_filter_range){
		.flags = KVM_MSR_FILTER_WRITE, .nmsrs = 1, .base = MSR_LSTAR,
		.bitmap = &deny,
	};
	if (ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) < 0 ||
	    ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0) {
		log_warn("PVM host: cannot trap LSTAR writes (%s): guest user "
			 "mode will not reach its kernel by SYSCALL",
			 strerror(errno));
		return;
	}
	vm->syscall_bridge = true;
}

static int
vm_check_caps(struct vm *vm, char *err, size_t errlen)
{
	static const struct { int cap; const char *name; } need[] = {
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	};
	unsigned int i;
	int max;

	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			snprintf(err, errlen, "/dev/kvm lacks %s", need[i].name);
			return -ENOTSUP;
		}
	}
	max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max > 0 && vm->cfg.nr_vcpus > (unsigned int)max) {
		snprintf(err, errlen, "%u vCPUs asked, this host's KVM allows %d",
			 vm->cfg.nr_vcpus, max);
		return -EINVAL;
	}
	return 0;
}

static int
vm_map_memory(struct vm *vm, char *err, size_t errlen)
{
	int i, r;

	r = guest_mem_init(&vm->mem, vm->cfg.ram_size);
	if (r < 0) {
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM: %s",
			 (unsigned long long)(vm->cfg.ram_size >> 20),
			 strerror(-r));
		return r;
	}
	for (i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_mem_region *g = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = (uint32_t)i,
			.guest_phys_addr = g->gpa,
			.memory_size = g->size,
			.userspace_addr = (uint64_t)(uintptr_t)(vm->mem.hva +
								 g->offset),
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
			r = -errno;
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %d "
				 "(%llu MiB at 0x%llx): %s", i,
				 (unsigned long long)(g->size >> 20),
				 (unsigned long long)g->gpa, strerror(-r));
			return r;
		}
	}
	return 0;
}

static int
vm_setup_irqchip(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	int r;

	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR,
		  &(uint64_t){ VM_IDENTITY_MAP_ADDR }) < 0 && errno != EINVAL) {
		r = -errno;
		snprintf(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR: %s",
			 strerror(-r));
		return r;
	}
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(-r));
		return r;
	}
	if (vm->cfg.no_irqchip)
		return 0;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(-r));
		return r;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(-r));
		return r;
	}
	return 0;
}

int
vm_new(const struct vm_config *cfg, struct vm **ret, char *err, size_t errlen)
{
	struct vm *vm;
	unsigned int i;
	int r;

	if (cfg->nr_vcpus == 0 || cfg->nr_vcpus > VM_MAX_VCPUS) {
		snprintf(err, errlen, "vCPU count %u out of range 1..%u",
			 cfg->nr_vcpus, VM_MAX_VCPUS);
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->stop_eventfd = -1;
	vm->mem.fd = -1;
	pthread_mutex_init(&vm->stop_lock, NULL);
	pthread_cond_init(&vm->stop_cond, NULL);
	vm->platform = (struct platform_ops){
		.irq_line = vm_platform_irq_line,
		.request_stop = vm_platform_request_stop,
		.opaque = vm,
	};
	vm->is_pvm = vm_host_is_pvm();
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	vm->stop_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_eventfd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-r));
		goto fail;
	}
	r = vm_open_kvm(err, errlen);
	if (r < 0)
		goto fail;
	vm->kvm_fd = r;
	r = vm_check_caps(vm, err, errlen);
	if (r < 0)
		goto fail;
	do {
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	} while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(-r));
		goto fail;
	}
	if (vm->is_pvm && cfg->pvm_workarounds && !cfg->no_syscall_bridge)
		vm_setup_syscall_bridge(vm);
	r = vm_map_memory(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vm_setup_irqchip(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = cpuid_get_supported(vm->kvm_fd, &vm->cpuid);
	if (r < 0) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-r));
		goto fail;
	}
	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(vm->vcpus[0]));
	if (!vm->vcpus) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < cfg->nr_vcpus; i++) {
		r = vcpu_init(vm, &vm->vcpus[i], i, err, errlen);
		if (r < 0) {
			/* vm_free() frees only the vCPUs made whole: this
			 * one's fd and kvm_run mapping go here. */
			vcpu_destroy(&vm->vcpus[i]);
			goto fail;
		}
		vm->nr_vcpus++;
	}
	*ret = vm;
	return 0;
fail:
	vm_free(vm);
	return r;
}

void
vm_free(struct vm *vm)
{
	unsigned int i;

	if (!vm)
		return;
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->stop_eventfd >= 0)
		close(vm->stop_eventfd);
	guest_mem_destroy(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	pthread_mutex_destroy(&vm->stop_lock);
	pthread_cond_destroy(&vm->stop_cond);
	free(vm);
}

int
vm_irq_line(struct vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	if (vm->cfg.no_irqchip)
		return -ENODEV;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		return -errno;
	return 0;
}

void
vm_request_stop(struct vm *vm, enum vm_stop_reason reason, const char *fmt, ...)
{
	va_list ap;
	unsigned int i;
	bool first = false;

	pthread_mutex_lock(&vm->stop_lock);
	if (vm->stop_reason == VM_STOP_NONE) {
		vm->stop_reason = reason;
		va_start(ap, fmt);
		vsnprintf(vm->stop_message, sizeof(vm->stop_message), fmt, ap);
		va_end(ap);
		first = true;
		pthread_cond_broadcast(&vm->stop_cond);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	if (!first)
		return;
	if (write(vm->stop_eventfd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_debug("stop eventfd: %s", strerror(errno));
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

static void
vm_kick_signal(int sig)
{
	(void)sig;
}

int
vm_start(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = vm_kick_signal };
	unsigned int i;
	int r;

	/* SIGUSR1 interrupts KVM_RUN; no SA_RESTART so the ioctl returns. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		r = -pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (r < 0) {
			vm_request_stop(vm, VM_STOP_ERROR,
					"cannot start vCPU %u: %s", i, strerror(-r));
			return r;
		}
		v->thread_started = true;
		pthread_mutex_lock(&vm->stop_lock);
		vm->nr_vcpu_threads++;
		pthread_mutex_unlock(&vm->stop_lock);
	}
	return 0;
}

enum vm_stop_reason
vm_wait(struct vm *vm)
{
	enum vm_stop_reason reason;
	unsigned int i;

	pthread_mutex_lock(&vm->stop_lock);
	while (vm->stop_reason == VM_STOP_NONE)
		pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
	reason = vm->stop_reason;
	pthread_mutex_unlock(&vm->stop_lock);
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->thread_started)
			continue;
		vcpu_kick(v);
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
	return reason;
}

int
vm_pause(struct vm *vm)
{
	unsigned int i;
	int r = 0;

	pthread_mutex_lock(&vm->stop_lock);
	vm->pause_wanted = true;
	pthread_mutex_unlock(&vm->stop_lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->stop_lock);
	while (vm->nr_parked < vm->nr_vcpu_threads &&
	       vm->stop_reason == VM_STOP_NONE)
		pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
	if (vm->stop_reason != VM_STOP_NONE)
		r = -ESRCH;
	pthread_mutex_unlock(&vm->stop_lock);
	return r;
}

void
vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->stop_lock);
	vm->pause_wanted = false;
	pthread_cond_broadcast(&vm->stop_cond);
	pthread_mutex_unlock(&vm->stop_lock);
}

bool
vm_is_paused(struct vm *vm)
{
	bool p;

	pthread_mutex_lock(&vm->stop_lock);
	p = vm->pause_wanted;
	pthread_mutex_unlock(&vm->stop_lock);
	return p;
}

void
vm_pause_point(struct vm *vm)
{
	if (!__atomic_load_n(&vm->pause_wanted, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&vm->stop_lock);
	if (vm->pause_wanted && vm->stop_reason == VM_STOP_NONE) {
		vm->nr_parked++;
		pthread_cond_broadcast(&vm->stop_cond);
		while (vm->pause_wanted && vm->stop_reason == VM_STOP_NONE)
			pthread_cond_wait(&vm->stop_cond, &vm->stop_lock);
		vm->nr_parked--;
	}
	pthread_mutex_unlock(&vm->stop_lock);
}

enum vm_stop_reason
vm_stop_reason(struct vm *vm)
{
	enum vm_stop_reason r;

	pthread_mutex_lock(&vm->stop_lock);
	r = vm->stop_reason;
	pthread_mutex_unlock(&vm->stop_lock);
	return r;
}

const char *
vm_stop_reason_name(enum vm_stop_reason r)
{
	return r < VM_STOP_MAX ? stop_names[r] : "?";
}

void
vm_stats_total(const struct vm *vm, struct vcpu_stats *ret)
{
	unsigned int i, k;

	memset(ret, 0, sizeof(*ret));
	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct vcpu_stats *s = &vm->vcpus[i].stats;

		for (k = 0; k < VCPU_EXIT_MAX; k++)
			ret->exits[k] += __atomic_load_n(&s->exits[k],
							 __ATOMIC_RELAXED);
		ret->runs += __atomic_load_n(&s->runs, __ATOMIC_RELAXED);
		ret->pvm_syscalls += __atomic_load_n(&s->pvm_syscalls,
						     __ATOMIC_RELAXED);
	}
}
