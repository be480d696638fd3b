/* SPDX-License-Identifier: MIT */
/*
 * KVM's own per-vCPU counters, read from the binary stats file descriptor
 * (KVM_GET_STATS_FD, KVM_CAP_BINARY_STATS_FD): how often the vCPU left the
 * guest and why, how many instructions the host emulated (on a PVM host
 * every guest kernel instruction), page faults, injected interrupts.
 *
 * The file's header and descriptors are read once, when it is opened; a
 * fixed set of counters is looked up there by the names KVM gives them
 * and their offsets kept. A counter the host does not have is absent, not
 * zero. Only plain counters are taken (cumulative or instant, one value):
 * histograms and anything else under a known name are ignored. Whatever
 * the file says is checked (sizes, names, offsets) before it is used: a
 * file that does not make sense leaves the stats unavailable.
 *
 * Threads: kvm_stats_open() and kvm_stats_close() belong to the owner;
 * kvm_stats_read() may be called from any thread at any time in between.
 */
#ifndef VMM_KVM_STATS_H
#define VMM_KVM_STATS_H

#include <stdbool.h>
#include <stdint.h>

/* The counters we report, in the order they are printed. */
enum kvm_stats_counter {
	KVM_STATS_EXITS,
	KVM_STATS_IO_EXITS,
	KVM_STATS_MMIO_EXITS,
	KVM_STATS_HALT_EXITS,
	KVM_STATS_IRQ_EXITS,
	KVM_STATS_SIGNAL_EXITS,
	KVM_STATS_INSN_EMULATION,
	KVM_STATS_INSN_EMULATION_FAIL,
	KVM_STATS_PF_TAKEN,
	KVM_STATS_PF_FIXED,
	KVM_STATS_PF_GUEST,
	KVM_STATS_IRQ_INJECTIONS,
	KVM_STATS_HYPERCALLS,
	KVM_STATS_HALT_WAIT_NS,
	KVM_STATS_MAX,
};

/* Limits on what a stats file may declare before we allocate for it. */
#define KVM_STATS_NAME_SIZE_MAX	1024u
#define KVM_STATS_NUM_DESC_MAX	4096u
#define KVM_STATS_DESC_BYTES_MAX (1u << 20)
/* Counters closer together than this are read with one pread. */
#define KVM_STATS_SPAN_MAX	4096u

struct kvm_stats_values {
	uint32_t present;	/* bit c set: value[c] was read */
	uint64_t value[KVM_STATS_MAX];
};

struct kvm_stats {
	int fd;			/* -1: unavailable */
	uint32_t present;	/* bit c set: the host has counter c */
	uint64_t pos[KVM_STATS_MAX];	/* file offset of counter c */
	uint64_t span_pos;	/* one read of span_len bytes at span_pos */
	uint32_t span_len;	/* covers them all; 0: one read each */
};

/* A kvm_stats that is unavailable until opened. */
void kvm_stats_init(struct kvm_stats *ks);

/*
 * Read the header and descriptors of the stats file fd and find our
 * counters in it. Takes the fd in any case: on failure it is closed and
 * ks stays unavailable. Returns 0, -EOPNOTSUPP when the file has none of
 * our counters, -EINVAL when it does not make sense, or another negative
 * errno from reading it.
 */
int kvm_stats_open(struct kvm_stats *ks, int fd);

/* Close the file; ks is unavailable again. A no-op on one never opened. */
void kvm_stats_close(struct kvm_stats *ks);

bool kvm_stats_available(const struct kvm_stats *ks);

/*
 * The present counters' current values into *ret (written only on
 * success). Returns 0, -EOPNOTSUPP when unavailable, or -EIO/-errno when
 * the read fails.
 */
int kvm_stats_read(const struct kvm_stats *ks, struct kvm_stats_values *ret);

/* KVM's name of counter c ("exits", "insn_emulation", ...). */
const char *kvm_stats_name(enum kvm_stats_counter c);

#endif
