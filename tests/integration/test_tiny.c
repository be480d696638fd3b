/* SPDX-License-Identifier: MIT */
/*
 * Trap-and-emulate with tiny guests: each guest (tests/guest/tiny/NAME.S,
 * built to $BUILD/guest-tests/tiny/NAME.bin) runs in flat 32-bit protected
 * mode at 0x1000 on one vCPU without an in-kernel irqchip, so that HLT comes
 * back to us. Test devices on the port I/O and MMIO buses record every
 * access; the test checks what they saw, the exit counters, and how the
 * guest stopped.
 *
 * Needs /dev/kvm; without it every test is skipped, saying why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm.h"

#define TINY_LOAD_GPA	0x1000ULL
#define TINY_STACK	0x8000ULL
#define TINY_RAM	(2ULL << 20)
#define TINY_MAX_BIN	(64 * 1024)
/* Each guest makes at most a handful of exits; a runaway one stops here. */
#define TINY_MAX_RUNS	64

/* The guests' ports: out.S writes to +0, in.S reads +1, results go to +2. */
#define TESTDEV_PORT	0x500
#define TESTDEV_PORTS	8
#define TESTDEV_MMIO	0xd0000000ULL
#define TESTDEV_MMIO_LEN 0x1000

#define REC_MAX 16

struct rec_access {
	uint64_t offset;
	uint32_t len;
	bool is_write;
	uint64_t value;		/* written, or returned for a read */
};

struct testdev {
	const char *name;
	unsigned int n;
	unsigned int dropped;	/* accesses beyond REC_MAX */
	struct rec_access acc[REC_MAX];
	/* What a read of 1, 2, 4 or 8 bytes returns, indexed by length. */
	uint64_t read_value[9];
	/* Add the number of accesses recorded so far to what a read returns,
	 * so that repeated reads return different values. */
	bool count_reads;
};

struct tiny {
	struct vm *vm;
	struct vcpu *v;
	struct testdev pio;
	struct testdev mmio;
	int last;		/* the last vcpu_run_once() result */
	unsigned int runs;
	bool pvm_workarounds;	/* as vmm-run sets it */
};

static void
testdev_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	   bool is_write)
{
	struct testdev *d = opaque;
	uint64_t value = 0;
	uint32_t i;

	if (is_write) {
		for (i = 0; i < len && i < 8; i++)
			value |= (uint64_t)data[i] << (8 * i);
	} else {
		value = len <= 8 ? d->read_value[len] : 0;
		if (d->count_reads)
			value += d->n;
		for (i = 0; i < len; i++)
			data[i] = i < 8 ? (uint8_t)(value >> (8 * i)) : 0;
	}
	if (d->n >= REC_MAX) {
		d->dropped++;
		return;
	}
	d->acc[d->n++] = (struct rec_access){
		.offset = offset, .len = len, .is_write = is_write,
		.value = value,
	};
}

static void
testdev_dump(const struct testdev *d)
{
	unsigned int i;

	print_error("  %s saw %u access(es)%s:\n", d->name, d->n,
		    d->dropped ? " (and dropped more)" : "");
	for (i = 0; i < d->n; i++)
		print_error("    %s offset 0x%" PRIx64 " len %u value 0x%"
			    PRIx64 "\n", d->acc[i].is_write ? "write" : "read ",
			    d->acc[i].offset, d->acc[i].len, d->acc[i].value);
}

static void
stats_dump(const struct vcpu *v)
{
	int k;

	print_error("  exit counters (%" PRIu64 " KVM_RUN calls):", v->stats.runs);
	for (k = 0; k < VCPU_EXIT_MAX; k++)
		if (v->stats.exits[k])
			print_error(" %s=%" PRIu64, vcpu_exit_kind_name(k),
				    v->stats.exits[k]);
	print_error("\n");
}

static const char *
kind_name(int k)
{
	static char buf[80];

	if (k < 0) {
		snprintf(buf, sizeof(buf), "error %d (%s)", k, strerror(-k));
		return buf;
	}
	return vcpu_exit_kind_name(k);
}

/* Fail naming what was expected and what was seen, with the whole story. */
#define CHECK_EQ(t, what, expected, seen) \
	check_eq((t), (what), (uint64_t)(expected), (uint64_t)(seen), \
		 __FILE__, __LINE__)

static void
check_eq(const struct tiny *t, const char *what, uint64_t expected,
	 uint64_t seen, const char *file, int line)
{
	if (expected == seen)
		return;
	print_error("%s:%d: %s: expected 0x%" PRIx64 " (%" PRIu64 "), saw 0x%"
		    PRIx64 " (%" PRIu64 ")\n", file, line, what, expected,
		    expected, seen, seen);
	if (t) {
		print_error("  guest stopped with %s after %u vcpu_run_once "
			    "call(s)\n", kind_name(t->last), t->runs);
		testdev_dump(&t->pio);
		testdev_dump(&t->mmio);
		if (t->v)
			stats_dump(t->v);
	}
	fail();
}

static void
check_access(const struct tiny *t, const struct testdev *d, unsigned int i,
	     bool is_write, uint64_t offset, uint32_t len, uint64_t value)
{
	char what[96];

	snprintf(what, sizeof(what), "%s access #%u: %s", d->name, i,
		 is_write ? "write" : "read");
	if (i >= d->n)
		CHECK_EQ(t, what, i + 1, d->n);	/* "expected more accesses" */
	snprintf(what, sizeof(what), "%s access #%u: direction (1 = write)",
		 d->name, i);
	CHECK_EQ(t, what, is_write, d->acc[i].is_write);
	snprintf(what, sizeof(what), "%s access #%u: offset", d->name, i);
	CHECK_EQ(t, what, offset, d->acc[i].offset);
	snprintf(what, sizeof(what), "%s access #%u: size", d->name, i);
	CHECK_EQ(t, what, len, d->acc[i].len);
	snprintf(what, sizeof(what), "%s access #%u: value", d->name, i);
	CHECK_EQ(t, what, value, d->acc[i].value);
}

static void
check_exits(const struct tiny *t, enum vcpu_exit_kind k, uint64_t expected)
{
	char what[64];

	snprintf(what, sizeof(what), "stats.exits[%s]", vcpu_exit_kind_name(k));
	CHECK_EQ(t, what, expected, t->v->stats.exits[k]);
}

/* Skip (loudly) when this host cannot run a VM at all. */
static bool
kvm_usable(const char *test)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		printf("# test_tiny: skipping %s: cannot open /dev/kvm: %s%s\n",
		       test, strerror(e),
		       e == ENOENT ? " (no KVM on this host)" :
		       e == EACCES ? " (not root, not in the kvm group)" : "");
		fprintf(stderr, "test_tiny: skipping %s: cannot open /dev/kvm: "
			"%s\n", test, strerror(e));
		fflush(stdout);
		return false;
	}
	close(fd);
	return true;
}

static const char *
build_dir(void)
{
	const char *b = getenv("BUILD");

	return b && *b ? b : "build";
}

/* Read $BUILD/guest-tests/tiny/NAME.bin into a new buffer. */
static uint8_t *
tiny_read_bin(const char *name, size_t *ret_len)
{
	char path[512];
	uint8_t *buf;
	struct stat st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/guest-tests/tiny/%s.bin", build_dir(),
		 name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		print_error("cannot open tiny guest %s: %s (built by `make "
			    "test-build` with the same BUILD=)\n", path,
			    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0 ||
	    st.st_size > TINY_MAX_BIN) {
		print_error("tiny guest %s: expected 1..%d bytes, found %lld\n",
			    path, TINY_MAX_BIN, (long long)st.st_size);
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return NULL;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		print_error("short read of %s: %zd of %lld bytes\n", path, n,
			    (long long)st.st_size);
		free(buf);
		return NULL;
	}
	*ret_len = (size_t)n;
	return buf;
}

/*
 * Create the VM with the test devices, load the guest, set up the vCPU.
 * Returns false (after skip()) when there is no KVM; fails the test on
 * anything else.
 */
static bool
tiny_boot(struct tiny *t, const char *name)
{
	struct vm_config cfg = {
		.nr_vcpus = 1,
		.ram_size = TINY_RAM,
		.no_irqchip = true,
		.pvm_workarounds = t->pvm_workarounds,
	};
	char err[256] = "";
	uint8_t *bin;
	size_t len = 0;
	int r;

	bool pvm_workarounds = t->pvm_workarounds;

	memset(t, 0, sizeof(*t));
	t->pvm_workarounds = pvm_workarounds;
	t->pio.name = "port I/O test device at 0x500";
	t->mmio.name = "MMIO test device at 0xd0000000";
	t->last = -1;
	if (!kvm_usable(name)) {
		skip();
		return false;
	}
	bin = tiny_read_bin(name, &len);
	if (!bin)
		fail_msg("tiny guest %s not found or unreadable", name);

	r = vm_new(&cfg, &t->vm, err, sizeof(err));
	if (r < 0) {
		free(bin);
		fail_msg("vm_new(nr_vcpus=1, ram_size=2 MiB, no_irqchip): %d "
			 "(%s): %s", r, strerror(-r), err);
	}
	assert_non_null(t->vm);
	CHECK_EQ(NULL, "vm->nr_vcpus", 1, t->vm->nr_vcpus);
	t->v = &t->vm->vcpus[0];

	r = bus_register(&t->vm->pio, TESTDEV_PORT, TESTDEV_PORTS, testdev_io,
			 &t->pio, "testdev");
	if (r < 0)
		fail_msg("bus_register(pio, 0x%x, %d): %s", TESTDEV_PORT,
			 TESTDEV_PORTS, strerror(-r));
	r = bus_register(&t->vm->mmio, TESTDEV_MMIO, TESTDEV_MMIO_LEN,
			 testdev_io, &t->mmio, "testdev");
	if (r < 0)
		fail_msg("bus_register(mmio, 0x%llx, 0x%x): %s", TESTDEV_MMIO,
			 TESTDEV_MMIO_LEN, strerror(-r));

	r = guest_mem_write(&t->vm->mem, TINY_LOAD_GPA, bin, len);
	free(bin);
	if (r < 0)
		fail_msg("guest_mem_write(0x%llx, %zu bytes): %s",
			 TINY_LOAD_GPA, len, strerror(-r));
	r = vcpu_setup_flat32(t->v, TINY_LOAD_GPA, TINY_STACK);
	if (r < 0)
		fail_msg("vcpu_setup_flat32(0x%llx, 0x%llx): %s",
			 TINY_LOAD_GPA, TINY_STACK, strerror(-r));
	return true;
}

/* Run until the guest halts or shuts down, within TINY_MAX_RUNS exits. */
static int
tiny_run(struct tiny *t)
{
	int r = -1;

	while (t->runs < TINY_MAX_RUNS) {
		r = vcpu_run_once(t->v);
		t->runs++;
		t->last = r;
		if (r < 0 || r == VCPU_EXIT_HLT || r == VCPU_EXIT_SHUTDOWN ||
		    r == VCPU_EXIT_INTERNAL_ERROR || r == VCPU_EXIT_FAIL_ENTRY)
			break;
	}
	if (r >= 0 && r != VCPU_EXIT_HLT && r != VCPU_EXIT_SHUTDOWN &&
	    t->runs >= TINY_MAX_RUNS)
		print_error("guest still running after %u vcpu_run_once "
			    "calls (last exit %s)\n", t->runs, kind_name(r));
	return r;
}

/* The guest's RIP, to check that it stopped where the source says. */
static uint64_t
tiny_rip(const struct tiny *t)
{
	struct kvm_regs regs;

	if (ioctl(t->v->fd, KVM_GET_REGS, &regs) < 0)
		fail_msg("KVM_GET_REGS: %s", strerror(errno));
	return regs.rip;
}

static void
tiny_check_stop(const struct tiny *t, int expected_kind)
{
	if (t->last != expected_kind) {
		print_error("guest stop: expected %s, saw %s\n",
			    kind_name(expected_kind), kind_name(t->last));
		CHECK_EQ(t, "last vcpu_run_once() result", expected_kind,
			 (uint64_t)(int64_t)t->last);
	}
}

static int
tiny_setup(void **state)
{
	*state = calloc(1, sizeof(struct tiny));
	return *state ? 0 : -1;
}

/* Runs after a failed check too, so that a failure leaks no VM. */
static int
tiny_teardown(void **state)
{
	struct tiny *t = *state;

	if (t)
		vm_free(t->vm);
	free(t);
	*state = NULL;
	return 0;
}

static void
test_out(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "out"))
		return;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	CHECK_EQ(t, "port accesses seen", 3, t->pio.n);
	check_access(t, &t->pio, 0, true, 0, 1, 0x11);
	check_access(t, &t->pio, 1, true, 0, 2, 0x2233);
	check_access(t, &t->pio, 2, true, 0, 4, 0x44556677);
	CHECK_EQ(t, "MMIO accesses seen", 0, t->mmio.n);

	check_exits(t, VCPU_EXIT_IO_OUT, 3);
	check_exits(t, VCPU_EXIT_IO_IN, 0);
	check_exits(t, VCPU_EXIT_MMIO_READ, 0);
	check_exits(t, VCPU_EXIT_MMIO_WRITE, 0);
	check_exits(t, VCPU_EXIT_HLT, 1);
	check_exits(t, VCPU_EXIT_SHUTDOWN, 0);
	CHECK_EQ(t, "stats.runs (one KVM_RUN per exit)", 4, t->v->stats.runs);
	CHECK_EQ(t, "unowned port accesses", 0, bus_unowned_count(&t->vm->pio));
	/* out.S: the HLT at 0x1013 is one byte long. */
	CHECK_EQ(t, "RIP after HLT", 0x1014, tiny_rip(t));
}

static void
test_in(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "in"))
		return;
	/* Values whose increment carries across a byte: a truncated or
	 * zero-extended read shows as a different result. */
	t->pio.read_value[1] = 0x41;
	t->pio.read_value[2] = 0x12ff;
	t->pio.read_value[4] = 0x89abffff;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	CHECK_EQ(t, "port accesses seen", 6, t->pio.n);
	check_access(t, &t->pio, 0, false, 1, 1, 0x41);
	check_access(t, &t->pio, 1, true, 2, 1, 0x42);
	check_access(t, &t->pio, 2, false, 1, 2, 0x12ff);
	check_access(t, &t->pio, 3, true, 2, 2, 0x1300);
	check_access(t, &t->pio, 4, false, 1, 4, 0x89abffff);
	check_access(t, &t->pio, 5, true, 2, 4, 0x89ac0000);

	check_exits(t, VCPU_EXIT_IO_IN, 3);
	check_exits(t, VCPU_EXIT_IO_OUT, 3);
	check_exits(t, VCPU_EXIT_MMIO_READ, 0);
	check_exits(t, VCPU_EXIT_MMIO_WRITE, 0);
	check_exits(t, VCPU_EXIT_HLT, 1);
	CHECK_EQ(t, "unowned port accesses", 0, bus_unowned_count(&t->vm->pio));
	CHECK_EQ(t, "RIP after HLT", 0x101c, tiny_rip(t));
}

static void
test_mmio(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "mmio"))
		return;
	t->mmio.read_value[4] = 0xcafef00d;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	CHECK_EQ(t, "MMIO accesses seen", 2, t->mmio.n);
	check_access(t, &t->mmio, 0, true, 0, 4, 0xdeadbeef);
	check_access(t, &t->mmio, 1, false, 4, 4, 0xcafef00d);
	CHECK_EQ(t, "port accesses seen", 1, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 4, 0xcafef00d);

	check_exits(t, VCPU_EXIT_MMIO_WRITE, 1);
	check_exits(t, VCPU_EXIT_MMIO_READ, 1);
	check_exits(t, VCPU_EXIT_IO_OUT, 1);
	check_exits(t, VCPU_EXIT_IO_IN, 0);
	check_exits(t, VCPU_EXIT_HLT, 1);
	CHECK_EQ(t, "unowned MMIO accesses", 0, bus_unowned_count(&t->vm->mmio));
	/* Nothing but the device's register may have changed. */
	{
		uint32_t word = 0;

		CHECK_EQ(t, "guest_mem_read(0x1000)", 0,
			 guest_mem_read(&t->vm->mem, 0x1000, &word, 4));
		CHECK_EQ(t, "first code word at 0x1000 (movl opcode)",
			 0x000005c7, word);
	}
	CHECK_EQ(t, "RIP after HLT", 0x1015, tiny_rip(t));
}

static void
test_hlt(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "hlt"))
		return;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);
	CHECK_EQ(t, "vcpu_run_once calls until HLT", 1, t->runs);
	check_exits(t, VCPU_EXIT_HLT, 1);
	check_exits(t, VCPU_EXIT_IO_OUT, 0);
	check_exits(t, VCPU_EXIT_IO_IN, 0);
	check_exits(t, VCPU_EXIT_MMIO_READ, 0);
	check_exits(t, VCPU_EXIT_MMIO_WRITE, 0);
	check_exits(t, VCPU_EXIT_SHUTDOWN, 0);
	CHECK_EQ(t, "stats.runs", 1, t->v->stats.runs);
	CHECK_EQ(t, "port accesses seen", 0, t->pio.n);
	CHECK_EQ(t, "RIP after HLT", 0x1001, tiny_rip(t));

	/* Running again goes on to the next HLT, and counts it. */
	t->last = vcpu_run_once(t->v);
	t->runs++;
	tiny_check_stop(t, VCPU_EXIT_HLT);
	check_exits(t, VCPU_EXIT_HLT, 2);
	CHECK_EQ(t, "RIP after the second HLT", 0x1002, tiny_rip(t));
}

static void
test_unowned(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "unowned"))
		return;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	/* The reads from nothing reach our device only as the results. */
	CHECK_EQ(t, "port accesses seen by the test device", 3, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 1, 0xff);
	check_access(t, &t->pio, 1, true, 2, 4, 0xffffffff);
	check_access(t, &t->pio, 2, true, 2, 4, 0xffffffff);
	CHECK_EQ(t, "MMIO accesses seen by the test device", 0, t->mmio.n);

	CHECK_EQ(t, "bus_unowned_count(pio)", 2, bus_unowned_count(&t->vm->pio));
	CHECK_EQ(t, "bus_unowned_count(mmio)", 1,
		 bus_unowned_count(&t->vm->mmio));
	check_exits(t, VCPU_EXIT_IO_IN, 2);
	check_exits(t, VCPU_EXIT_IO_OUT, 3);
	check_exits(t, VCPU_EXIT_MMIO_READ, 1);
	check_exits(t, VCPU_EXIT_MMIO_WRITE, 0);
	check_exits(t, VCPU_EXIT_HLT, 1);
	CHECK_EQ(t, "RIP after HLT", 0x101f, tiny_rip(t));
}

static void
test_triple(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "triple"))
		return;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_SHUTDOWN);
	check_exits(t, VCPU_EXIT_SHUTDOWN, 1);
	check_exits(t, VCPU_EXIT_HLT, 0);
	/* It got as far as the marker before the breakpoint, and no further. */
	CHECK_EQ(t, "port accesses seen", 1, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 1, 0x03);
	check_exits(t, VCPU_EXIT_IO_OUT, 1);
	/*
	 * Where the host could not emulate int3 (PVM), each such exit must
	 * have been carried out by the VMM, which is what let the #BP reach
	 * the empty IDT.
	 */
	CHECK_EQ(t, "stats.exits[emulated_insn] == stats.exits[internal_error]",
		 t->v->stats.exits[VCPU_EXIT_INTERNAL_ERROR],
		 t->v->stats.exits[VCPU_EXIT_EMULATED]);
}

static void
test_triple_ud(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "triple_ud"))
		return;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_SHUTDOWN);
	check_exits(t, VCPU_EXIT_SHUTDOWN, 1);
	check_exits(t, VCPU_EXIT_HLT, 0);
	check_exits(t, VCPU_EXIT_INTERNAL_ERROR, 0);
	CHECK_EQ(t, "port accesses seen", 1, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 1, 0x04);
	check_exits(t, VCPU_EXIT_IO_OUT, 1);
	CHECK_EQ(t, "vcpu_run_once calls (OUT, then the shutdown)", 2, t->runs);
}

static void
test_mmio_sizes(void **state)
{
	struct tiny *t = *state;

	if (!tiny_boot(t, "mmio_sizes"))
		return;
	t->mmio.read_value[1] = 0xc4;
	t->mmio.read_value[2] = 0xb00b;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	CHECK_EQ(t, "MMIO accesses seen", 4, t->mmio.n);
	check_access(t, &t->mmio, 0, true, 0x10, 1, 0x5a);
	check_access(t, &t->mmio, 1, true, 0x12, 2, 0x1234);
	check_access(t, &t->mmio, 2, false, 0x20, 1, 0xc4);
	check_access(t, &t->mmio, 3, false, 0x22, 2, 0xb00b);
	CHECK_EQ(t, "port accesses seen", 2, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 1, 0xc4);
	check_access(t, &t->pio, 1, true, 2, 2, 0xb00b);
	check_exits(t, VCPU_EXIT_MMIO_WRITE, 2);
	check_exits(t, VCPU_EXIT_MMIO_READ, 2);
	check_exits(t, VCPU_EXIT_IO_OUT, 2);
}

static void
test_strio(void **state)
{
	struct tiny *t = *state;
	uint16_t words[3] = { 0 };
	uint64_t outs, ins;
	unsigned int i;

	if (!tiny_boot(t, "strio"))
		return;
	/* The reads come after the four writes: 0x7000 + 4, + 5, + 6. */
	t->pio.read_value[2] = 0x7000;
	t->pio.count_reads = true;
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);

	CHECK_EQ(t, "port accesses seen", 7, t->pio.n);
	check_access(t, &t->pio, 0, true, 2, 1, 0xa1);
	check_access(t, &t->pio, 1, true, 2, 1, 0xb2);
	check_access(t, &t->pio, 2, true, 2, 1, 0xc3);
	check_access(t, &t->pio, 3, true, 2, 1, 0xd4);
	for (i = 0; i < 3; i++)
		check_access(t, &t->pio, 4 + i, false, 1, 2, 0x7004 + i);
	CHECK_EQ(t, "guest_mem_read(0x2000, 6)", 0,
		 guest_mem_read(&t->vm->mem, 0x2000, words, sizeof(words)));
	for (i = 0; i < 3; i++) {
		char what[48];

		snprintf(what, sizeof(what), "word %u stored by rep insw", i);
		CHECK_EQ(t, what, 0x7004 + i, words[i]);
	}
	/* However KVM batched them: at least one exit each, at most one per
	 * element. */
	outs = t->v->stats.exits[VCPU_EXIT_IO_OUT];
	ins = t->v->stats.exits[VCPU_EXIT_IO_IN];
	if (outs < 1 || outs > 4 || ins < 1 || ins > 3) {
		print_error("string I/O exits: expected 1..4 io_out and 1..3 "
			    "io_in, saw %" PRIu64 " and %" PRIu64 "\n", outs, ins);
		CHECK_EQ(t, "io_out exits within 1..4", 1, outs >= 1 && outs <= 4);
		CHECK_EQ(t, "io_in exits within 1..3", 1, ins >= 1 && ins <= 3);
	}
}

static uint32_t
spin_counter(const struct tiny *t)
{
	uint32_t c = 0;

	if (guest_mem_read(&t->vm->mem, 0x2000, &c, sizeof(c)) < 0)
		fail_msg("guest_mem_read(0x2000, 4) failed");
	return __atomic_load_n(&c, __ATOMIC_RELAXED);
}

/* Wait up to 10 s for the spinning guest's counter to move past c. */
static bool
spin_moves(const struct tiny *t, uint32_t c)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (spin_counter(t) != c)
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * vm_pause stops every vCPU outside KVM_RUN until vm_resume: a guest that
 * counts in memory without ever exiting stands still while paused.
 */
static void
test_pause_resume(void **state)
{
	struct tiny *t = *state;
	uint32_t c1, c2;
	int r;

	if (!tiny_boot(t, "spin"))
		return;
	r = vm_start(t->vm);
	if (r < 0)
		fail_msg("vm_start: %s", strerror(-r));
	if (!spin_moves(t, 0)) {
		vm_request_stop(t->vm, VM_STOP_SIGNAL, "test");
		vm_wait(t->vm);
		fail_msg("the spinning guest's counter never moved");
	}
	r = vm_pause(t->vm);
	CHECK_EQ(t, "vm_pause()", 0, (uint64_t)(int64_t)r);
	assert_true(vm_is_paused(t->vm));
	c1 = spin_counter(t);
	usleep(200000);
	c2 = spin_counter(t);
	if (c1 != c2) {
		vm_request_stop(t->vm, VM_STOP_SIGNAL, "test");
		vm_wait(t->vm);
		fail_msg("paused guest ran on: counter %u -> %u", c1, c2);
	}
	/* A second pause is a no-op. */
	CHECK_EQ(t, "vm_pause() again", 0, (uint64_t)(int64_t)vm_pause(t->vm));
	vm_resume(t->vm);
	assert_false(vm_is_paused(t->vm));
	if (!spin_moves(t, c2)) {
		vm_request_stop(t->vm, VM_STOP_SIGNAL, "test");
		vm_wait(t->vm);
		fail_msg("resumed guest did not run on: counter stays %u", c2);
	}
	/* Pausing a VM that is stopping ends at once with -ESRCH. */
	vm_request_stop(t->vm, VM_STOP_SIGNAL, "test");
	CHECK_EQ(t, "vm_pause() on a stopped VM", (uint64_t)(int64_t)-ESRCH,
		 (uint64_t)(int64_t)vm_pause(t->vm));
	vm_wait(t->vm);
}

/*
 * A ring-3 SYSCALL into the guest kernel's entry and SYSRETQ back, twice.
 * On a host with VT-x/AMD-V the CPU does it; on PVM only vmm-run's
 * syscall bridge (vcpu.c) gets the entry to run in ring 0.
 */
static void
test_syscall(void **state)
{
	struct tiny *t = *state;
	unsigned int i;

	t->pvm_workarounds = true;
	if (!tiny_boot(t, "syscall"))
		return;
	tiny_run(t);
	if (t->pio.n != 8)
		testdev_dump(&t->pio);
	tiny_check_stop(t, VCPU_EXIT_HLT);
	CHECK_EQ(t, "port writes from the syscall entry", 8, t->pio.n);
	for (i = 0; i < 2; i++) {
		const struct rec_access *a = &t->pio.acc[4 * i];

		CHECK_EQ(t, "RAX at the entry", 0x5e1 + i, a[0].value);
		/* Ring 0 in the kernel's code segment, STAR[47:32]. */
		CHECK_EQ(t, "CS at the entry", 0x10, a[1].value);
		/* RCX: the user RIP after SYSCALL, in the guest's code. */
		if (a[2].value < 0x1000 || a[2].value >= 0x1200)
			fail_msg("RCX at the entry 0x%" PRIx64 ": not a return "
				 "address in the guest's code", a[2].value);
		/* RFLAGS: SFMASK took IF away; bit 1 is always set. */
		CHECK_EQ(t, "RFLAGS at the entry & (IF | bit 1)", 0x2,
			 a[3].value & 0x202);
	}
	/* The calls are 7 bytes apart: mov $0x5e2, %eax; syscall. */
	CHECK_EQ(t, "RCX of the second call - RCX of the first", 7,
		 t->pio.acc[6].value - t->pio.acc[2].value);
	check_exits(t, VCPU_EXIT_SHUTDOWN, 0);
	check_exits(t, VCPU_EXIT_HLT, 1);
	if (t->vm->is_pvm) {
		/* LSTAR's write came to us, and both calls were carried. */
		CHECK_EQ(t, "syscall bridge on", 1, t->vm->syscall_bridge);
		check_exits(t, VCPU_EXIT_MSR, 1);
		CHECK_EQ(t, "stats.pvm_syscalls", 2, t->v->stats.pvm_syscalls);
		/* A breakpoint stop and a single step per call. */
		check_exits(t, VCPU_EXIT_DEBUG, 4);
	} else {
		CHECK_EQ(t, "syscall bridge on", 0, t->vm->syscall_bridge);
		check_exits(t, VCPU_EXIT_DEBUG, 0);
		CHECK_EQ(t, "stats.pvm_syscalls", 0, t->v->stats.pvm_syscalls);
	}
}

/* A KVM counter that must be there: its value, or the test fails. */
static uint64_t
kvm_counter(const struct tiny *t, const struct kvm_stats_values *ks,
	    enum kvm_stats_counter c)
{
	if (!(ks->present & (1u << c))) {
		print_error("KVM stats of vCPU 0 lack %s (present mask 0x%x)\n",
			    kvm_stats_name(c), ks->present);
		CHECK_EQ(t, "KVM counter present", 1, 0);
	}
	return ks->value[c];
}

/*
 * KVM's own counters (vcpu_kvm_stats(), KVM_GET_STATS_FD) after out.S's
 * three port writes and HLT: every exit that reached us was an exit from
 * the guest first. Values that depend on the host are not checked: on
 * hardware io_exits counts each OUT and insn_emulation may stay 0; a PVM
 * host emulates the guest's code instruction by instruction, OUT
 * included, and counts them in insn_emulation, not in io_exits.
 */
static void
test_kvm_counters(void **state)
{
	struct tiny *t = *state;
	struct kvm_stats_values ks;
	uint64_t exits, io_exits, ours;
	int r;

	if (!tiny_boot(t, "out"))
		return;
	if (!t->vm->binary_stats) {
		printf("# test_tiny: skipping test_kvm_counters: this host's "
		       "KVM lacks KVM_CAP_BINARY_STATS_FD (Linux < 5.14)\n");
		skip();
		return;
	}
	tiny_run(t);
	tiny_check_stop(t, VCPU_EXIT_HLT);
	CHECK_EQ(t, "port writes seen", 3, t->pio.n);

	r = vcpu_kvm_stats(t->v, &ks);
	if (r < 0)
		fail_msg("vcpu_kvm_stats(vCPU 0): %d (%s), on a host with "
			 "KVM_CAP_BINARY_STATS_FD", r, strerror(-r));
	exits = kvm_counter(t, &ks, KVM_STATS_EXITS);
	io_exits = kvm_counter(t, &ks, KVM_STATS_IO_EXITS);
	(void)kvm_counter(t, &ks, KVM_STATS_INSN_EMULATION_FAIL);
	print_message("# KVM counters: exits=%" PRIu64 " io_exits=%" PRIu64
		      " insn_emulation=%" PRIu64 " (host: %s)\n", exits,
		      io_exits, ks.value[KVM_STATS_INSN_EMULATION],
		      t->vm->is_pvm ? "PVM" : "hardware virtualization");
	/* The OUTs and the HLT that came to us left the guest first. */
	ours = t->v->stats.exits[VCPU_EXIT_IO_OUT] +
	       t->v->stats.exits[VCPU_EXIT_HLT];
	CHECK_EQ(t, "our OUT and HLT exits", 4, ours);
	if (exits < ours)
		CHECK_EQ(t, "KVM exits >= our OUT and HLT exits", ours, exits);
	if (exits < io_exits)
		CHECK_EQ(t, "KVM exits >= KVM io_exits", io_exits, exits);
	if (!t->vm->is_pvm && io_exits < 3)
		CHECK_EQ(t, "KVM io_exits >= the guest's 3 OUTs", 3, io_exits);
}

/*
 * The recording device itself, without a VM: if it mangled values, every
 * other test here would check the wrong thing.
 */
static void
test_testdev_records(void **state)
{
	struct testdev d = { .name = "selftest" };
	uint8_t data[4] = { 0x78, 0x56, 0x34, 0x12 };

	(void)state;
	d.read_value[2] = 0xabcd;
	testdev_io(&d, 3, data, 4, true);
	testdev_io(&d, 5, data, 2, false);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.acc[0].value, 0x12345678);
	assert_int_equal(d.acc[0].offset, 3);
	assert_int_equal(d.acc[1].value, 0xabcd);
	assert_int_equal(data[0], 0xcd);
	assert_int_equal(data[1], 0xab);
	assert_int_equal(data[2], 0x34);	/* beyond len: untouched */
}

#define TINY_TEST(f) \
	cmocka_unit_test_setup_teardown(f, tiny_setup, tiny_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_testdev_records),
		TINY_TEST(test_out),
		TINY_TEST(test_syscall),
		TINY_TEST(test_in),
		TINY_TEST(test_mmio),
		TINY_TEST(test_mmio_sizes),
		TINY_TEST(test_strio),
		TINY_TEST(test_hlt),
		TINY_TEST(test_unowned),
		TINY_TEST(test_triple_ud),
		TINY_TEST(test_triple),
		TINY_TEST(test_pause_resume),
		TINY_TEST(test_kvm_counters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
