/* SPDX-License-Identifier: MIT */
/*
 * exits_bare: the floor for a port-I/O exit handled in userspace. Raw KVM
 * ioctls and nothing else: one VM, one memory slot, one vCPU in flat
 * 32-bit protected mode, and a KVM_RUN loop that only reads run->io on
 * each exit. bench/exits_vmm.c runs the same guest through vmm-core.
 *
 * usage: exits_bare GUEST.bin [ITERATIONS]
 * Prints one line: "exits=N ns=T exits_per_s=R". Exits 1 (with a message
 * naming the ioctl) when the measurement could not be taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define BARE_RAM	(2UL << 20)
#define BARE_LOAD_GPA	0x1000UL
#define BARE_STACK	0x8000UL
#define BARE_PORT	0x80
#define BARE_MAX_BIN	(64 * 1024)

static int
bare_fail(const char *what)
{
	fprintf(stderr, "exits_bare: %s: %s\n", what, strerror(errno));
	return 1;
}

static uint64_t
bare_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
bare_seg(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->db = 1;
}

int
main(int argc, char **argv)
{
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	unsigned long iters = 0;
	uint64_t exits = 0, t0, t1;
	volatile uint8_t sink = 0;
	uint8_t *ram;
	ssize_t n;
	long run_size;
	int kvm, vmfd, vcpu, fd;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: exits_bare GUEST.bin [ITERATIONS]\n");
		return 2;
	}
	if (argc == 3)
		iters = strtoul(argv[2], NULL, 10);

	ram = mmap(NULL, BARE_RAM, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ram == MAP_FAILED)
		return bare_fail("mmap guest RAM");
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return bare_fail(argv[1]);
	n = read(fd, ram + BARE_LOAD_GPA, BARE_MAX_BIN);
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "exits_bare: %s: empty or unreadable\n", argv[1]);
		return 1;
	}

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return bare_fail("/dev/kvm");
	vmfd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vmfd < 0)
		return bare_fail("KVM_CREATE_VM");
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = BARE_RAM,
		.userspace_addr = (uint64_t)(uintptr_t)ram,
	};
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return bare_fail("KVM_SET_USER_MEMORY_REGION");
	vcpu = ioctl(vmfd, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		return bare_fail("KVM_CREATE_VCPU");
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return bare_fail("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu, 0);
	if (run == MAP_FAILED)
		return bare_fail("mmap kvm_run");

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return bare_fail("KVM_GET_SREGS");
	bare_seg(&sregs.cs, 0x08, 0xb);
	bare_seg(&sregs.ds, 0x10, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 = (1u << 0) | (1u << 4);	/* PE ET */
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return bare_fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = BARE_LOAD_GPA;
	regs.rsp = BARE_STACK;
	regs.rcx = iters;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return bare_fail("KVM_SET_REGS");

	t0 = bare_now_ns();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return bare_fail("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			sink = *((uint8_t *)run + run->io.data_offset);
			if (run->io.port == BARE_PORT &&
			    run->io.direction == KVM_EXIT_IO_OUT)
				exits += run->io.count;
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		fprintf(stderr, "exits_bare: unexpected exit reason %u after "
			"%llu port writes\n", run->exit_reason,
			(unsigned long long)exits);
		return 1;
	}
	t1 = bare_now_ns();
	(void)sink;
	if (exits == 0 || (iters && exits != iters)) {
		fprintf(stderr, "exits_bare: saw %llu port writes, expected "
			"%lu\n", (unsigned long long)exits, iters);
		return 1;
	}
	printf("exits=%llu ns=%llu exits_per_s=%.0f\n",
	       (unsigned long long)exits, (unsigned long long)(t1 - t0),
	       (double)exits * 1e9 / (double)(t1 - t0));
	return 0;
}
