/* SPDX-License-Identifier: MIT */
/*
 * The parser of KVM's binary stats file (kvm_stats.c) on synthetic files
 * in a memfd, laid out as KVM lays them out (header, id, descriptors,
 * data), no KVM needed: every counter we report found and read, one the
 * file lacks absent rather than zero, histograms, peaks and arrays under
 * our names ignored, odd name sizes (unaligned descriptors), counters too
 * far apart for one read, values read live; and files that do not make
 * sense (no names, absurd counts, blocks beyond the end of the file or
 * overlapping, values outside the data, names without their NUL, every
 * header and descriptor byte garbled in turn) leaving the stats
 * unavailable, without a read out of bounds (this runs under ASan too).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_stats.h"

#define NAME_SIZE	48	/* what KVM uses */
#define ID_SIZE		64
#define CUM		KVM_STATS_TYPE_CUMULATIVE
#define INST		KVM_STATS_TYPE_INSTANT

struct fake_desc {
	const char *name;
	uint32_t flags;
	uint16_t size;
	uint32_t offset;	/* bytes into the data block */
};

struct fake {
	struct kvm_stats_header h;	/* what the header says */
	struct kvm_stats_header lay;	/* where things really are */
	const struct fake_desc *d;
	unsigned int n;
	uint64_t data[2048];
	size_t data_len;	/* bytes of data written */
};

/* A header for n descriptors of name_size, blocks one after the other. */
static void
fake_layout(struct fake *f, const struct fake_desc *d, unsigned int n,
	    uint32_t name_size)
{
	unsigned int i;

	memset(f, 0, sizeof(*f));
	f->d = d;
	f->n = n;
	f->h.name_size = name_size;
	f->h.num_desc = n;
	f->h.id_offset = sizeof(f->h);
	f->h.desc_offset = sizeof(f->h) + ID_SIZE;
	f->h.data_offset = f->h.desc_offset + n *
			   (uint32_t)(sizeof(struct kvm_stats_desc) + name_size);
	f->lay = f->h;
	for (i = 0; i < n; i++) {
		size_t end = d[i].offset + d[i].size * sizeof(uint64_t);

		if (end > f->data_len && end <= sizeof(f->data))
			f->data_len = end;
	}
	for (i = 0; i < sizeof(f->data) / sizeof(f->data[0]); i++)
		f->data[i] = 1000 + i;
}

static void
pwrite_all(int fd, const void *buf, size_t len, off_t pos)
{
	assert_int_equal(pwrite(fd, buf, len, pos), (ssize_t)len);
}

/* The file as f lays it out, with f's header, in a new memfd. */
static int
fake_fd(const struct fake *f)
{
	size_t dsize = sizeof(struct kvm_stats_desc) + f->lay.name_size;
	uint8_t *buf = calloc(1, dsize);
	char id[ID_SIZE] = "kvm-1234/vcpu_0";
	unsigned int i;
	int fd;

	assert_non_null(buf);
	fd = memfd_create("kvm_stats_test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	pwrite_all(fd, &f->h, sizeof(f->h), 0);
	pwrite_all(fd, id, sizeof(id), f->lay.id_offset);
	for (i = 0; i < f->n; i++) {
		struct kvm_stats_desc d = {
			.flags = f->d[i].flags,
			.size = f->d[i].size,
			.offset = f->d[i].offset,
		};

		memset(buf, 0, dsize);
		memcpy(buf, &d, sizeof(d));
		strncpy((char *)buf + sizeof(d), f->d[i].name,
			f->lay.name_size);
		pwrite_all(fd, buf, dsize,
			   (off_t)(f->lay.desc_offset + (uint64_t)i * dsize));
	}
	if (f->data_len)
		pwrite_all(fd, f->data, f->data_len, f->lay.data_offset);
	free(buf);
	return fd;
}

static bool
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Open must fail with err, close the fd, and leave ks unavailable. */
static void
expect_unavailable(const struct fake *f, int err)
{
	struct kvm_stats ks;
	struct kvm_stats_values v = { .present = 0xdead };
	int fd = fake_fd(f);

	assert_int_equal(kvm_stats_open(&ks, fd), err);
	assert_false(fd_is_open(fd));
	assert_false(kvm_stats_available(&ks));
	assert_int_equal(kvm_stats_read(&ks, &v), -EOPNOTSUPP);
	assert_int_equal(v.present, 0xdead);	/* untouched on failure */
	kvm_stats_close(&ks);
}

/* Roughly what an x86 host lists, in its order, with extras we skip. */
static const struct fake_desc x86[] = {
	{ "halt_successful_poll", CUM, 1, 0 },
	{ "halt_wait_ns", CUM | KVM_STATS_UNIT_SECONDS, 1, 48 },
	{ "halt_wait_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS,
	  32, 56 },
	{ "blocking", INST | KVM_STATS_UNIT_BOOLEAN, 1, 312 },
	{ "pf_taken", CUM, 1, 320 },
	{ "pf_fixed", CUM, 1, 328 },
	{ "pf_guest", CUM, 1, 336 },
	{ "exits", CUM, 1, 344 },
	{ "io_exits", CUM, 1, 352 },
	{ "mmio_exits", CUM, 1, 360 },
	{ "signal_exits", CUM, 1, 368 },
	{ "halt_exits", CUM, 1, 376 },
	{ "irq_exits", CUM, 1, 384 },
	{ "insn_emulation", CUM, 1, 392 },
	{ "insn_emulation_fail", CUM, 1, 400 },
	{ "hypercalls", CUM, 1, 408 },
	{ "irq_injections", CUM, 1, 416 },
	{ "guest_mode", INST | KVM_STATS_UNIT_BOOLEAN, 1, 424 },
};
#define NX86 (sizeof(x86) / sizeof(x86[0]))
#define ALL ((1u << KVM_STATS_MAX) - 1)

/* The value fake_layout() put at a byte offset of the data block. */
static uint64_t
fake_value(uint32_t offset)
{
	return 1000 + offset / 8;
}

static uint32_t
offset_of(const struct fake_desc *d, unsigned int n, const char *name)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return d[i].offset;
	fail_msg("no descriptor %s", name);
	return 0;
}

static void
check_values(const struct kvm_stats_values *v, const struct fake_desc *d,
	     unsigned int n)
{
	uint64_t want;
	int c;

	for (c = 0; c < KVM_STATS_MAX; c++) {
		if (!(v->present & (1u << c)))
			continue;
		want = fake_value(offset_of(d, n, kvm_stats_name(c)));
		if (v->value[c] != want)
			fail_msg("%s: expected %llu, read %llu",
				 kvm_stats_name(c), (unsigned long long)want,
				 (unsigned long long)v->value[c]);
	}
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(kvm_stats_name(KVM_STATS_EXITS), "exits");
	assert_string_equal(kvm_stats_name(KVM_STATS_INSN_EMULATION),
			    "insn_emulation");
	assert_string_equal(kvm_stats_name(KVM_STATS_HALT_WAIT_NS),
			    "halt_wait_ns");
	assert_string_equal(kvm_stats_name(KVM_STATS_MAX), "?");
}

static void
test_normal(void **state)
{
	struct fake f;
	struct kvm_stats ks;
	struct kvm_stats_values v;
	uint64_t big = 0x123456789abcdefULL;
	int fd;

	(void)state;
	fake_layout(&f, x86, NX86, NAME_SIZE);
	fd = fake_fd(&f);
	assert_int_equal(kvm_stats_open(&ks, fd), 0);
	assert_true(kvm_stats_available(&ks));
	assert_int_equal(ks.present, ALL);
	/* The wanted counters are close together: one read covers them. */
	assert_int_equal(ks.span_len, 424 - 48);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.present, ALL);
	check_values(&v, x86, NX86);
	assert_int_equal(v.value[KVM_STATS_EXITS], fake_value(344));

	/* Values are read as they are now, not as they were at open. */
	pwrite_all(fd, &big, sizeof(big), f.h.data_offset + 392);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.value[KVM_STATS_INSN_EMULATION], big);
	assert_int_equal(v.value[KVM_STATS_EXITS], fake_value(344));

	kvm_stats_close(&ks);
	assert_false(fd_is_open(fd));
	assert_false(kvm_stats_available(&ks));
	assert_int_equal(kvm_stats_read(&ks, &v), -EOPNOTSUPP);
	kvm_stats_close(&ks);	/* twice: a no-op */
}

/* A counter the host lacks is absent, the others are there. */
static void
test_missing(void **state)
{
	static const struct fake_desc d[] = {
		{ "exits", CUM, 1, 0 },
		{ "mmio_exits", CUM, 1, 8 },
		{ "insn_emulation_fail", CUM, 1, 16 },
	};
	struct fake f;
	struct kvm_stats ks;
	struct kvm_stats_values v;

	(void)state;
	fake_layout(&f, d, 3, NAME_SIZE);
	assert_int_equal(kvm_stats_open(&ks, fake_fd(&f)), 0);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.present, (1u << KVM_STATS_EXITS) |
			 (1u << KVM_STATS_MMIO_EXITS) |
			 (1u << KVM_STATS_INSN_EMULATION_FAIL));
	assert_false(v.present & (1u << KVM_STATS_IO_EXITS));
	check_values(&v, d, 3);
	kvm_stats_close(&ks);
}

/* Histograms, peaks, arrays and unknown types under our names are not
 * counters: skipped, and a plain one further on is still found. */
static void
test_skipped_kinds(void **state)
{
	static const struct fake_desc d[] = {
		{ "exits", KVM_STATS_TYPE_LINEAR_HIST, 1, 0 },
		{ "io_exits", CUM, 4, 8 },
		{ "mmio_exits", KVM_STATS_TYPE_PEAK, 1, 40 },
		{ "halt_exits", KVM_STATS_TYPE_LOG_HIST, 32, 48 },
		{ "irq_exits", 0xf, 1, 304 },
		{ "pf_taken", CUM, 0, 312 },
		{ "halt_wait_ns", INST | KVM_STATS_UNIT_SECONDS, 1, 320 },
		{ "exits", CUM, 1, 328 },
		{ "exits", CUM, 1, 336 },	/* a second one: first wins */
	};
	struct fake f;
	struct kvm_stats ks;
	struct kvm_stats_values v;

	(void)state;
	fake_layout(&f, d, 9, NAME_SIZE);
	assert_int_equal(kvm_stats_open(&ks, fake_fd(&f)), 0);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.present, (1u << KVM_STATS_HALT_WAIT_NS) |
			 (1u << KVM_STATS_EXITS));
	assert_int_equal(v.value[KVM_STATS_HALT_WAIT_NS], fake_value(320));
	assert_int_equal(v.value[KVM_STATS_EXITS], fake_value(328));
	kvm_stats_close(&ks);
}

/* A name size that leaves descriptors unaligned (UBSan would say). */
static void
test_odd_name_size(void **state)
{
	struct fake f;
	struct kvm_stats ks;
	struct kvm_stats_values v;

	(void)state;
	fake_layout(&f, x86, NX86, 21);	/* "insn_emulation_fail" + NUL fits */
	assert_int_equal(kvm_stats_open(&ks, fake_fd(&f)), 0);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.present, ALL);
	check_values(&v, x86, NX86);
	kvm_stats_close(&ks);
}

/* Counters too far apart for one read are read one by one. */
static void
test_wide_span(void **state)
{
	static const struct fake_desc d[] = {
		{ "exits", CUM, 1, 0 },
		{ "io_exits", CUM, 1, 8 },
		{ "insn_emulation", CUM, 1, 8192 },
	};
	struct fake f;
	struct kvm_stats ks;
	struct kvm_stats_values v;

	(void)state;
	fake_layout(&f, d, 3, NAME_SIZE);
	assert_int_equal(kvm_stats_open(&ks, fake_fd(&f)), 0);
	assert_int_equal(ks.span_len, 0);
	assert_int_equal(kvm_stats_read(&ks, &v), 0);
	assert_int_equal(v.present, (1u << KVM_STATS_EXITS) |
			 (1u << KVM_STATS_IO_EXITS) |
			 (1u << KVM_STATS_INSN_EMULATION));
	check_values(&v, d, 3);
	kvm_stats_close(&ks);
}

static void
test_none_of_ours(void **state)
{
	static const struct fake_desc d[] = {
		{ "halt_successful_poll", CUM, 1, 0 },
		{ "blocking", INST, 1, 8 },
	};
	struct fake f;

	(void)state;
	fake_layout(&f, d, 2, NAME_SIZE);
	expect_unavailable(&f, -EOPNOTSUPP);
}

static void
test_bad_header(void **state)
{
	struct fake f;
	struct kvm_stats ks;
	int fd;

	(void)state;
	/* No file, an empty one, a short header. */
	assert_int_equal(kvm_stats_open(&ks, -1), -EBADF);
	assert_false(kvm_stats_available(&ks));
	fd = memfd_create("empty", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(kvm_stats_open(&ks, fd), -EIO);
	assert_false(fd_is_open(fd));
	fd = memfd_create("short", MFD_CLOEXEC);
	pwrite_all(fd, "\x30\0\0\0", 4, 0);
	assert_int_equal(kvm_stats_open(&ks, fd), -EIO);

	fake_layout(&f, x86, NX86, 0);
	f.h.name_size = 0;
	expect_unavailable(&f, -EINVAL);

	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.name_size = KVM_STATS_NAME_SIZE_MAX + 1;
	expect_unavailable(&f, -EINVAL);
	f.h.name_size = UINT32_MAX;
	expect_unavailable(&f, -EINVAL);

	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.num_desc = 0;
	expect_unavailable(&f, -EINVAL);
	f.h.num_desc = KVM_STATS_NUM_DESC_MAX + 1;
	expect_unavailable(&f, -EINVAL);
	f.h.num_desc = UINT32_MAX;
	expect_unavailable(&f, -EINVAL);
	/* Within the count limit but over the byte limit. */
	f.h.num_desc = KVM_STATS_NUM_DESC_MAX;
	f.h.name_size = KVM_STATS_NAME_SIZE_MAX;
	expect_unavailable(&f, -EINVAL);
	/* More descriptors than the file holds. */
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.num_desc = NX86 + 1;
	f.data_len = 0;
	expect_unavailable(&f, -EINVAL);

	/* Blocks inside the header, beyond the file, overlapping. */
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.desc_offset = 0;
	expect_unavailable(&f, -EINVAL);
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.data_offset = 8;
	expect_unavailable(&f, -EINVAL);
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.desc_offset = UINT32_MAX;
	expect_unavailable(&f, -EINVAL);
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.data_offset = UINT32_MAX - 64;
	expect_unavailable(&f, -EINVAL);
	fake_layout(&f, x86, NX86, NAME_SIZE);
	f.h.data_offset = f.h.desc_offset + 64;	/* inside the descriptors */
	f.data_len = 0;
	expect_unavailable(&f, -EINVAL);
}

static void
test_bad_desc(void **state)
{
	struct fake_desc d[NX86];
	struct fake f;
	unsigned int io = 8;	/* x86[8] is io_exits */

	(void)state;
	assert_string_equal(x86[io].name, "io_exits");

	/* A counter placed beyond the data the file has. */
	memcpy(d, x86, sizeof(d));
	d[io].offset = 16384;
	fake_layout(&f, d, NX86, NAME_SIZE);
	expect_unavailable(&f, -EINVAL);
	d[io].offset = UINT32_MAX & ~7u;
	fake_layout(&f, d, NX86, NAME_SIZE);
	expect_unavailable(&f, -EINVAL);
	/* Not on a value's boundary. */
	d[io].offset = 12;
	fake_layout(&f, d, NX86, NAME_SIZE);
	expect_unavailable(&f, -EINVAL);
	/* A histogram reaching into the descriptors. */
	memcpy(d, x86, sizeof(d));
	d[2].offset = UINT32_MAX - 32 * 8;
	fake_layout(&f, d, NX86, NAME_SIZE);
	f.h.data_offset = f.lay.data_offset = 0x100000;
	f.h.desc_offset = f.lay.desc_offset = 0x100000 + 0x1000;
	f.data_len = 0;
	expect_unavailable(&f, -EINVAL);
}

/* A name that fills name_size without its NUL. */
static void
test_name_not_terminated(void **state)
{
	static const struct fake_desc d[] = {
		{ "exits", CUM, 1, 0 },
		{ "abcdefghijklmnopqrstuvwxyz0123456789", CUM, 1, 8 },
	};
	struct fake f;

	(void)state;
	fake_layout(&f, d, 2, 16);
	expect_unavailable(&f, -EINVAL);
}

/*
 * Every byte of the header and the first descriptors set to a few
 * values in turn: whatever open says, nothing is read out of bounds, and
 * a stats file that opens can be read.
 */
static void
test_garbled_bytes(void **state)
{
	static const uint8_t vals[] = { 0x00, 0x01, 0x07, 0x7f, 0x80, 0xff };
	struct fake f;
	size_t dsize = sizeof(struct kvm_stats_desc) + NAME_SIZE;
	size_t len, i, j;
	unsigned int opened = 0, refused = 0;

	(void)state;
	fake_layout(&f, x86, NX86, NAME_SIZE);
	len = f.h.desc_offset + 3 * dsize;
	for (i = 0; i < len; i++) {
		if (i >= sizeof(f.h) && i < f.h.desc_offset)
			continue;	/* the id: nobody reads it */
		for (j = 0; j < sizeof(vals); j++) {
			struct kvm_stats ks;
			struct kvm_stats_values v;
			int fd = fake_fd(&f);

			pwrite_all(fd, &vals[j], 1, (off_t)i);
			if (kvm_stats_open(&ks, fd) == 0) {
				opened++;
				assert_int_equal(kvm_stats_read(&ks, &v), 0);
				assert_int_equal(v.present & ~ALL, 0);
				kvm_stats_close(&ks);
			} else {
				refused++;
				assert_false(fd_is_open(fd));
				assert_false(kvm_stats_available(&ks));
			}
		}
	}
	/* Some bytes matter, some do not (a name's tail, a high flag). */
	assert_true(opened > 0);
	assert_true(refused > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_normal),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_skipped_kinds),
		cmocka_unit_test(test_odd_name_size),
		cmocka_unit_test(test_wide_span),
		cmocka_unit_test(test_none_of_ours),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_desc),
		cmocka_unit_test(test_name_not_terminated),
		cmocka_unit_test(test_garbled_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
