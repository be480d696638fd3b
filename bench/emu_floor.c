/* SPDX-License-Identifier: MIT */
/*
 * emu_floor: what one guest kernel instruction costs on this host, with
 * raw KVM ioctls and nothing else. On a host with hardware virtualization
 * guest kernel code runs natively (a fraction of a nanosecond per
 * instruction); where KVM is PVM (../shared/HOST.md) every instruction the
 * guest runs at CPL 0 is emulated by the host, and that cost bounds how
 * fast any VMM can boot an unmodified kernel. bench/run.sh puts it beside
 * vmm-run's own cost per emulated instruction on the way to the Debian
 * kernel's first log line (vmm-run --stats: KVM's insn_emulation).
 *
 * usage: emu_floor [-n ITERATIONS] [-r RUNS]
 *
 * One VM, one vCPU in 64-bit mode at CPL 0 (an identity-mapped 2 MiB
 * page), no irqchip. Three loops, generated into guest memory, each ends
 * with an OUT that stops the measurement:
 *   reg   add $1,%rax; dec %rcx; jnz          3 instructions per iteration
 *   mem   mov (%rbx),%rdx; mov %rdx,8(%rbx); dec %rcx; jnz             4
 *   call  call f (f: ret); dec %rcx; jnz                               4
 * The kernel's early boot is mostly the last two kinds (loads, stores,
 * calls through its sort()'s callbacks).
 *
 * Prints one line per loop:
 *   kind=reg insns=N ns_per_insn=X emulated=E
 * with the median of RUNS runs; emulated is KVM's insn_emulation counter
 * for the vCPU over the last run (-1 where the host has no binary stats),
 * which says whether the host emulated the loop (about insns) or ran it
 * natively (about 0). Exit 1, naming the ioctl, when a measurement could
 * not be taken; 2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_RAM	(2UL << 20)
#define FLOOR_PML4	0x1000UL
#define FLOOR_PDPT	0x2000UL
#define FLOOR_PD	0x3000UL
#define FLOOR_DATA	0x8000UL
#define FLOOR_STACK	0x9000UL
#define FLOOR_CODE	0x10000UL
#define FLOOR_FUNC	0x10800UL
#define FLOOR_PORT	0x80
#define FLOOR_RUNS_MAX	99

enum floor_kind { FLOOR_REG, FLOOR_MEM, FLOOR_CALL, FLOOR_KINDS };

static const char *const floor_name[FLOOR_KINDS] = { "reg", "mem", "call" };
static const unsigned int floor_per_iter[FLOOR_KINDS] = { 3, 4, 4 };

struct floor_vm {
	int kvm, vm, vcpu, stats;
	uint64_t emul_off;	/* insn_emulation's offset in the stats data */
	struct kvm_run *run;
	uint8_t *ram;
};

static int
floor_fail(const char *what)
{
	fprintf(stderr, "emu_floor: %s: %s\n", what, strerror(errno));
	return 1;
}

static uint64_t
floor_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The vCPU's binary stats fd and insn_emulation's place in it; -1 where
 * the host has none (the counter is then reported as -1). */
static void
floor_stats_open(struct floor_vm *f)
{
	struct kvm_stats_header h;
	struct kvm_stats_desc *d;
	size_t dsz;
	uint8_t *descs;
	uint32_t i;

	f->stats = -1;
	if (ioctl(f->kvm, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) <= 0)
		return;
	f->stats = ioctl(f->vcpu, KVM_GET_STATS_FD, 0);
	if (f->stats < 0)
		return;
	if (pread(f->stats, &h, sizeof(h), 0) != sizeof(h) ||
	    h.name_size == 0 || h.name_size > 4096 || h.num_desc > 4096)
		goto none;
	dsz = sizeof(*d) + h.name_size;
	descs = calloc(h.num_desc, dsz);
	if (!descs)
		goto none;
	if (pread(f->stats, descs, dsz * h.num_desc, h.desc_offset) !=
	    (ssize_t)(dsz * h.num_desc)) {
		free(descs);
		goto none;
	}
	for (i = 0; i < h.num_desc; i++) {
		d = (struct kvm_stats_desc *)(descs + i * dsz);
		d->name[h.name_size - 1] = '\0';
		if (strcmp(d->name, "insn_emulation") == 0 && d->size == 1) {
			f->emul_off = h.data_offset + d->offset;
			free(descs);
			return;
		}
	}
	free(descs);
none:
	close(f->stats);
	f->stats = -1;
}

static int64_t
floor_emulated(const struct floor_vm *f)
{
	uint64_t v;

	if (f->stats < 0 || pread(f->stats, &v, sizeof(v),
				  (off_t)f->emul_off) != sizeof(v))
		return -1;
	return (int64_t)v;
}

static int
floor_vm_new(struct floor_vm *f)
{
	struct kvm_userspace_memory_region region;
	long run_size;

	f->ram = mmap(NULL, FLOOR_RAM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (f->ram == MAP_FAILED)
		return floor_fail("mmap guest RAM");
	f->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f->kvm < 0)
		return floor_fail("/dev/kvm");
	f->vm = ioctl(f->kvm, KVM_CREATE_VM, 0);
	if (f->vm < 0)
		return floor_fail("KVM_CREATE_VM");
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.memory_size = FLOOR_RAM,
		.userspace_addr = (uint64_t)(uintptr_t)f->ram,
	};
	if (ioctl(f->vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return floor_fail("KVM_SET_USER_MEMORY_REGION");
	f->vcpu = ioctl(f->vm, KVM_CREATE_VCPU, 0);
	if (f->vcpu < 0)
		return floor_fail("KVM_CREATE_VCPU");
	run_size = ioctl(f->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return floor_fail("KVM_GET_VCPU_MMAP_SIZE");
	f->run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, f->vcpu, 0);
	if (f->run == MAP_FAILED)
		return floor_fail("mmap kvm_run");
	floor_stats_open(f);
	return 0;
}

/* Identity page tables (one 2 MiB page) and the loop of kind k. */
static void
floor_guest(uint8_t *ram, enum floor_kind k, uint64_t iters)
{
	uint64_t *pml4 = (uint64_t *)(ram + FLOOR_PML4);
	uint64_t *pdpt = (uint64_t *)(ram + FLOOR_PDPT);
	uint64_t *pd = (uint64_t *)(ram + FLOOR_PD);
	uint8_t *p = ram + FLOOR_CODE, *loop;
	int32_t rel;

	pml4[0] = FLOOR_PDPT | 3;	/* present, writable */
	pdpt[0] = FLOOR_PD | 3;
	pd[0] = 0x83;			/* 2 MiB page at 0, present, writable */

	*p++ = 0x48; *p++ = 0xb9;	/* movabs $iters, %rcx */
	memcpy(p, &iters, 8);
	p += 8;
	loop = p;
	switch (k) {
	case FLOOR_REG:			/* add $1, %rax */
		memcpy(p, "\x48\x83\xc0\x01", 4);
		p += 4;
		break;
	case FLOOR_MEM:			/* mov (%rbx),%rdx; mov %rdx,8(%rbx) */
		memcpy(p, "\x48\x8b\x13\x48\x89\x53\x08", 7);
		p += 7;
		break;
	case FLOOR_CALL:		/* call FLOOR_FUNC */
		*p++ = 0xe8;
		rel = (int32_t)(FLOOR_FUNC - (uint64_t)(p + 4 - ram));
		memcpy(p, &rel, 4);
		p += 4;
		break;
	default:
		break;
	}
	memcpy(p, "\x48\xff\xc9", 3);	/* dec %rcx */
	p += 3;
	*p++ = 0x75;			/* jnz loop */
	*p = (uint8_t)(loop - (p + 1));
	p++;
	*p++ = 0xe6;			/* out %al, $FLOOR_PORT */
	*p++ = FLOOR_PORT;
	*p++ = 0xf4;			/* hlt */
	ram[FLOOR_FUNC] = 0xc3;		/* ret */
}

static void
floor_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

/* One run of kind k: ns per instruction, *emulated the counter's delta. */
static int
floor_run(struct floor_vm *f, enum floor_kind k, uint64_t iters,
	  double *ns_per_insn, int64_t *emulated)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t t0, t1;
	int64_t e0, e1;

	floor_guest(f->ram, k, iters);
	if (ioctl(f->vcpu, KVM_GET_SREGS, &sregs) < 0)
		return floor_fail("KVM_GET_SREGS");
	floor_seg(&sregs.cs, 0x08, 0xb, true);
	floor_seg(&sregs.ds, 0x10, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr3 = FLOOR_PML4;
	sregs.cr4 = 1u << 5;				/* PAE */
	sregs.cr0 = (1u << 0) | (1u << 4) | (1u << 16) | (1u << 31);
	sregs.efer = (1u << 8) | (1u << 10);		/* LME LMA */
	if (ioctl(f->vcpu, KVM_SET_SREGS, &sregs) < 0)
		return floor_fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = FLOOR_CODE;
	regs.rsp = FLOOR_STACK;
	regs.rbx = FLOOR_DATA;
	if (ioctl(f->vcpu, KVM_SET_REGS, &regs) < 0)
		return floor_fail("KVM_SET_REGS");

	e0 = floor_emulated(f);
	t0 = floor_now_ns();
	for (;;) {
		if (ioctl(f->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return floor_fail("KVM_RUN");
		}
		if (f->run->exit_reason == KVM_EXIT_IO &&
		    f->run->io.port == FLOOR_PORT)
			break;
		fprintf(stderr, "emu_floor: %s loop: unexpected exit reason "
			"%u\n", floor_name[k], f->run->exit_reason);
		return 1;
	}
	t1 = floor_now_ns();
	e1 = floor_emulated(f);
	if (ioctl(f->vcpu, KVM_GET_REGS, &regs) < 0)
		return floor_fail("KVM_GET_REGS");
	/* The loop really ran: the counter is spent (and, for the register
	 * loop, %rax counted every iteration). */
	if (regs.rcx != 0 || (k == FLOOR_REG && regs.rax != iters)) {
		fprintf(stderr, "emu_floor: %s loop stopped early: rcx=%llu "
			"rax=%llu\n", floor_name[k],
			(unsigned long long)regs.rcx,
			(unsigned long long)regs.rax);
		return 1;
	}
	*ns_per_insn = (double)(t1 - t0) /
		       (double)(iters * floor_per_iter[k]);
	*emulated = e0 >= 0 && e1 >= 0 ? e1 - e0 : -1;
	return 0;
}

static int
floor_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct floor_vm f;
	double ns[FLOOR_RUNS_MAX];
	unsigned long iters = 50000, runs = 3, i;
	int64_t emulated = -1;
	unsigned int k;
	char *end;
	int c;

	while ((c = getopt(argc, argv, "n:r:")) != -1) {
		switch (c) {
		case 'n':
			iters = strtoul(optarg, &end, 10);
			if (*end || iters == 0 || iters > (1UL << 40))
				goto usage;
			break;
		case 'r':
			runs = strtoul(optarg, &end, 10);
			if (*end || runs == 0 || runs > FLOOR_RUNS_MAX)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	memset(&f, 0, sizeof(f));
	if (floor_vm_new(&f))
		return 1;
	for (k = 0; k < FLOOR_KINDS; k++) {
		for (i = 0; i < runs; i++)
			if (floor_run(&f, k, iters, &ns[i], &emulated))
				return 1;
		qsort(ns, runs, sizeof(ns[0]), floor_cmp);
		printf("kind=%s insns=%llu ns_per_insn=%.2f emulated=%lld\n",
		       floor_name[k],
		       (unsigned long long)iters * floor_per_iter[k],
		       runs % 2 ? ns[runs / 2] :
				  (ns[runs / 2 - 1] + ns[runs / 2]) / 2,
		       (long long)emulated);
	}
	return 0;
usage:
	fprintf(stderr, "usage: emu_floor [-n ITERATIONS (1..2^40)] "
		"[-r RUNS (1..%d)]\n", FLOOR_RUNS_MAX);
	return 2;
}
