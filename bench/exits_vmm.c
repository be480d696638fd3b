/* SPDX-License-Identifier: MIT */
/*
 * exits_vmm: port-I/O exits handled in userspace through vmm-core, the way
 * vmm-run's vCPU threads handle them: vm_new, vcpu_setup_flat32, then
 * vcpu_run_once in a loop, each OUT dispatched on the port I/O bus to a
 * registered device. bench/exits_bare.c runs the same guest with raw
 * ioctls; the ratio of the two is the cost of our exit path.
 *
 * usage: exits_vmm GUEST.bin [ITERATIONS]
 * Prints one line: "exits=N ns=T exits_per_s=R". Exits 1 (saying what
 * failed) when the measurement could not be taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vm.h"

#define EXITS_RAM	(2ULL << 20)
#define EXITS_LOAD_GPA	0x1000ULL
#define EXITS_STACK	0x8000ULL
#define EXITS_PORT	0x80
#define EXITS_MAX_BIN	(64 * 1024)

/* The device on port 0x80: counts writes, keeps the last value. */
struct exits_dev {
	uint64_t writes;
	uint8_t last;
};

static void
exits_dev_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write)
{
	struct exits_dev *d = opaque;

	(void)offset;
	if (is_write) {
		d->writes++;
		d->last = data[0];
	} else {
		memset(data, 0xff, len);
	}
}

static uint64_t
exits_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int
exits_load(struct vm *vm, const char *path)
{
	uint8_t *buf;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, "exits_vmm: %s: %s\n", path, strerror(-r));
		return r;
	}
	buf = malloc(EXITS_MAX_BIN);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, EXITS_MAX_BIN);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "exits_vmm: %s: empty or unreadable\n", path);
		free(buf);
		return -EIO;
	}
	r = guest_mem_write(&vm->mem, EXITS_LOAD_GPA, buf, (size_t)n);
	free(buf);
	if (r < 0)
		fprintf(stderr, "exits_vmm: guest_mem_write: %s\n", strerror(-r));
	return r;
}

int
main(int argc, char **argv)
{
	struct vm_config cfg = {
		.nr_vcpus = 1,
		.ram_size = EXITS_RAM,
		.no_irqchip = true,	/* HLT comes back to us */
	};
	struct exits_dev dev = { 0 };
	struct kvm_regs regs;
	struct vcpu *v;
	struct vm *vm;
	unsigned long iters = 0;
	uint64_t t0, t1, outs;
	char err[256] = "";
	int r;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: exits_vmm GUEST.bin [ITERATIONS]\n");
		return 2;
	}
	if (argc == 3)
		iters = strtoul(argv[2], NULL, 10);

	r = vm_new(&cfg, &vm, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "exits_vmm: vm_new: %s\n", err);
		return 1;
	}
	v = &vm->vcpus[0];
	r = bus_register(&vm->pio, EXITS_PORT, 1, exits_dev_io, &dev, "bench");
	if (r < 0) {
		fprintf(stderr, "exits_vmm: bus_register: %s\n", strerror(-r));
		goto fail;
	}
	r = exits_load(vm, argv[1]);
	if (r < 0)
		goto fail;
	r = vcpu_setup_flat32(v, EXITS_LOAD_GPA, EXITS_STACK);
	if (r < 0) {
		fprintf(stderr, "exits_vmm: vcpu_setup_flat32: %s\n",
			strerror(-r));
		goto fail;
	}
	/* The iteration count goes to the guest in ECX. */
	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0) {
		fprintf(stderr, "exits_vmm: KVM_GET_REGS: %s\n", strerror(errno));
		goto fail;
	}
	regs.rcx = iters;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0) {
		fprintf(stderr, "exits_vmm: KVM_SET_REGS: %s\n", strerror(errno));
		goto fail;
	}

	t0 = exits_now_ns();
	do {
		r = vcpu_run_once(v);
	} while (r == VCPU_EXIT_IO_OUT || r == VCPU_EXIT_INTR);
	t1 = exits_now_ns();
	if (r != VCPU_EXIT_HLT) {
		fprintf(stderr, "exits_vmm: guest stopped with %s after %llu "
			"port writes\n", r < 0 ? strerror(-r) :
			vcpu_exit_kind_name(r), (unsigned long long)dev.writes);
		goto fail;
	}
	outs = v->stats.exits[VCPU_EXIT_IO_OUT];
	if (dev.writes == 0 || (iters && dev.writes != iters) ||
	    outs != dev.writes) {
		fprintf(stderr, "exits_vmm: device saw %llu writes, %llu io_out "
			"exits, expected %lu\n", (unsigned long long)dev.writes,
			(unsigned long long)outs, iters);
		goto fail;
	}
	printf("exits=%llu ns=%llu exits_per_s=%.0f\n",
	       (unsigned long long)dev.writes, (unsigned long long)(t1 - t0),
	       (double)dev.writes * 1e9 / (double)(t1 - t0));
	vm_free(vm);
	return 0;
fail:
	vm_free(vm);
	return 1;
}
