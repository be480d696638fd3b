/* SPDX-License-Identifier: MIT */
/*
 * KVM's binary per-vCPU statistics: the file is a header, descriptors
 * (each a struct kvm_stats_desc followed by name_size bytes of name) and
 * a data block of 64-bit values, which a descriptor locates by its byte
 * offset from the block's start.
 */
#include "kvm_stats.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(KVM_STATS_MAX <= 32, "present is a 32-bit mask");

static const char *const kvm_stats_names[KVM_STATS_MAX] = {
	[KVM_STATS_EXITS] = "exits",
	[KVM_STATS_IO_EXITS] = "io_exits",
	[KVM_STATS_MMIO_EXITS] = "mmio_exits",
	[KVM_STATS_HALT_EXITS] = "halt_exits",
	[KVM_STATS_IRQ_EXITS] = "irq_exits",
	[KVM_STATS_SIGNAL_EXITS] = "signal_exits",
	[KVM_STATS_INSN_EMULATION] = "insn_emulation",
	[KVM_STATS_INSN_EMULATION_FAIL] = "insn_emulation_fail",
	[KVM_STATS_PF_TAKEN] = "pf_taken",
	[KVM_STATS_PF_FIXED] = "pf_fixed",
	[KVM_STATS_PF_GUEST] = "pf_guest",
	[KVM_STATS_IRQ_INJECTIONS] = "irq_injections",
	[KVM_STATS_HYPERCALLS] = "hypercalls",
	[KVM_STATS_HALT_WAIT_NS] = "halt_wait_ns",
};

const char *
kvm_stats_name(enum kvm_stats_counter c)
{
	return (unsigned int)c < KVM_STATS_MAX ? kvm_stats_names[c] : "?";
}

void
kvm_stats_init(struct kvm_stats *ks)
{
	memset(ks, 0, sizeof(*ks));
	ks->fd = -1;
}

bool
kvm_stats_available(const struct kvm_stats *ks)
{
	return ks->fd >= 0;
}

void
kvm_stats_close(struct kvm_stats *ks)
{
	if (ks->fd >= 0)
		close(ks->fd);
	kvm_stats_init(ks);
}

/* Exactly len bytes at pos, or an error: a short read is -EIO. */
static int
kvm_stats_pread(int fd, void *buf, size_t len, uint64_t pos)
{
	ssize_t n;

	if (pos > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	do {
		n = pread(fd, buf, len, (off_t)pos);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int
kvm_stats_lookup(const char *name)
{
	int c;

	for (c = 0; c < KVM_STATS_MAX; c++)
		if (strcmp(name, kvm_stats_names[c]) == 0)
			return c;
	return -1;
}

/* A single value we can report: a counter or a gauge, not a histogram
 * (nor a peak, which is not what the names we look for mean). */
static bool
kvm_stats_plain(const struct kvm_stats_desc *d)
{
	uint32_t type = d->flags & KVM_STATS_TYPE_MASK;

	return d->size == 1 && (type == KVM_STATS_TYPE_CUMULATIVE ||
				type == KVM_STATS_TYPE_INSTANT);
}

/*
 * Walk the descriptors in buf, note where our counters are, and how far
 * the data block reaches (the header does not say: it ends after the last
 * value any descriptor places in it).
 */
static int
kvm_stats_scan(struct kvm_stats *ks, const struct kvm_stats_header *h,
	       const uint8_t *buf, uint64_t *ret_data_len)
{
	size_t dsize = sizeof(struct kvm_stats_desc) + h->name_size;
	struct kvm_stats_desc d;
	uint64_t data_len = 0, end;
	uint32_t i;
	int c;

	for (i = 0; i < h->num_desc; i++) {
		const uint8_t *p = buf + (size_t)i * dsize;
		const char *name = (const char *)p + sizeof(d);

		/* Descriptors need not be aligned in buf: copy the fixed
		 * part out. */
		memcpy(&d, p, sizeof(d));
		if (!memchr(name, '\0', h->name_size))
			return -EINVAL;
		end = (uint64_t)d.offset + (uint64_t)d.size * sizeof(uint64_t);
		if (end > data_len)
			data_len = end;
		if (!kvm_stats_plain(&d))
			continue;
		c = kvm_stats_lookup(name);
		if (c < 0 || (ks->present & (1u << c)))
			continue;
		/* The data block is an array of 64-bit values. */
		if (d.offset % sizeof(uint64_t))
			return -EINVAL;
		ks->pos[c] = (uint64_t)h->data_offset + d.offset;
		ks->present |= 1u << c;
	}
	*ret_data_len = data_len;
	return 0;
}

/* Whether [a, a + alen) and [b, b + blen) overlap. */
static bool
kvm_stats_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int
kvm_stats_open(struct kvm_stats *ks, int fd)
{
	struct kvm_stats_header h;
	struct kvm_stats_values probe;
	uint64_t desc_len, data_len, lo = UINT64_MAX, hi = 0;
	uint8_t *buf = NULL;
	int c, r;

	kvm_stats_init(ks);
	if (fd < 0)
		return -EBADF;
	r = kvm_stats_pread(fd, &h, sizeof(h), 0);
	if (r < 0)
		goto fail;
	r = -EINVAL;
	if (h.name_size == 0 || h.name_size > KVM_STATS_NAME_SIZE_MAX ||
	    h.num_desc == 0 || h.num_desc > KVM_STATS_NUM_DESC_MAX)
		goto fail;
	desc_len = (uint64_t)h.num_desc *
		   (sizeof(struct kvm_stats_desc) + h.name_size);
	if (desc_len > KVM_STATS_DESC_BYTES_MAX ||
	    h.desc_offset < sizeof(h) || h.data_offset < sizeof(h))
		goto fail;
	buf = malloc(desc_len);
	if (!buf) {
		r = -ENOMEM;
		goto fail;
	}
	r = kvm_stats_pread(fd, buf, desc_len, h.desc_offset);
	if (r < 0) {
		if (r == -EIO)
			r = -EINVAL;	/* descriptors beyond the file */
		goto fail;
	}
	r = kvm_stats_scan(ks, &h, buf, &data_len);
	if (r < 0)
		goto fail;
	r = -EINVAL;
	if (kvm_stats_overlap(h.desc_offset, desc_len, h.data_offset, data_len))
		goto fail;
	if (!ks->present) {
		r = -EOPNOTSUPP;
		goto fail;
	}
	for (c = 0; c < KVM_STATS_MAX; c++) {
		if (!(ks->present & (1u << c)))
			continue;
		if (ks->pos[c] < lo)
			lo = ks->pos[c];
		if (ks->pos[c] + sizeof(uint64_t) > hi)
			hi = ks->pos[c] + sizeof(uint64_t);
	}
	if (hi - lo <= KVM_STATS_SPAN_MAX) {
		ks->span_pos = lo;
		ks->span_len = (uint32_t)(hi - lo);
	}
	/* Only a read shows whether the values are where the descriptors
	 * say: the header gives no size for the data block. */
	ks->fd = fd;
	r = kvm_stats_read(ks, &probe);
	if (r < 0) {
		if (r == -EIO)
			r = -EINVAL;
		goto fail;
	}
	free(buf);
	return 0;
fail:
	free(buf);
	kvm_stats_init(ks);
	close(fd);
	return r;
}

int
kvm_stats_read(const struct kvm_stats *ks, struct kvm_stats_values *ret)
{
	uint64_t span[KVM_STATS_SPAN_MAX / sizeof(uint64_t)];
	struct kvm_stats_values s = { .present = ks->present };
	int c, r;

	if (ks->fd < 0)
		return -EOPNOTSUPP;
	if (ks->span_len) {
		r = kvm_stats_pread(ks->fd, span, ks->span_len, ks->span_pos);
		if (r < 0)
			return r;
		for (c = 0; c < KVM_STATS_MAX; c++)
			if (s.present & (1u << c))
				s.value[c] = span[(ks->pos[c] - ks->span_pos) /
						  sizeof(uint64_t)];
	} else {
		for (c = 0; c < KVM_STATS_MAX; c++) {
			if (!(s.present & (1u << c)))
				continue;
			r = kvm_stats_pread(ks->fd, &s.value[c],
					    sizeof(s.value[c]), ks->pos[c]);
			if (r < 0)
				return r;
		}
	}
	*ret = s;
	return 0;
}
