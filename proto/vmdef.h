/* SPDX-License-Identifier: MIT */
/*
 * The VM definition: its JSON schema, validated into struct vmdef and
 * written back in a canonical form. PROTOCOL.md documents every field.
 *
 * Errors name the field the way a user would find it in their JSON:
 * "disks[1].path: no such file", "memory: must be at least 64M",
 * "disks[0].sise: unknown field". Functions that parse take an err buffer
 * (err may be NULL when errlen is 0) and return -EINVAL with the message in
 * it when the input is wrong, or -ENOMEM.
 *
 * In a definition, null is the same as leaving the field out (its default
 * applies); in an update (vmdef_update()), null resets a field to unset.
 */
#ifndef PROTO_VMDEF_H
#define PROTO_VMDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cpulist.h"

#define VMDEF_NAME_MAX			63
#define VMDEF_VCPUS_MAX			255
#define VMDEF_VCPUS_DEFAULT		1
#define VMDEF_MEMORY_MIN		(UINT64_C(64) << 20)
#define VMDEF_MEMORY_MAX		(UINT64_C(1) << 40)
#define VMDEF_MEMORY_DEFAULT		(UINT64_C(512) << 20)
#define VMDEF_MEMORY_ALIGN		(UINT64_C(1) << 20)
#define VMDEF_PATH_MAX			4095
#define VMDEF_CMDLINE_MAX		2047
#define VMDEF_DISKS_MAX			16
#define VMDEF_NICS_MAX			8
#define VMDEF_SERIAL_MAX		20
#define VMDEF_TAP_MAX			15
#define VMDEF_CONSOLE_HISTORY_DEFAULT	(UINT64_C(64) << 10)
#define VMDEF_CONSOLE_HISTORY_MAX	(UINT64_C(16) << 20)
#define VMDEF_VSOCK_CID_MIN		3u
#define VMDEF_VSOCK_CID_MAX		0xfffffffeu
#define VMDEF_VSOCK_CID_DEFAULT		3u
#define VMDEF_CPU_WEIGHT_MIN		1u
#define VMDEF_CPU_WEIGHT_MAX		10000u
/* cpu_quota is kept in thousandths of a CPU. */
#define VMDEF_CPU_QUOTA_SCALE		1000u
/* Rates, bursts and memory_limit: what a JSON integer can hold. */
#define VMDEF_LIMIT_MAX			((uint64_t)INT64_MAX)
#define VMDEF_MAX_RESTARTS_DEFAULT	5u
#define VMDEF_MAX_RESTARTS_MAX		1000u
#define VMDEF_WINDOW_SEC_DEFAULT	60u
#define VMDEF_WINDOW_SEC_MAX		86400u

/* Flags of vmdef_from_json() and vmdef_from_string(). */
#define VMDEF_CHECK_FILES	(1u << 0)	/* kernel, initrd, firmware and disks exist */

/*
 * A token bucket: rate per second and burst (the bucket's size); 0 is
 * unset. A burst without a rate is an error; a rate without a burst lets
 * the device pick (one second's worth).
 */
struct vmdef_bucket {
	uint64_t rate;
	uint64_t burst;
};

struct vmdef_disk_limits {
	struct vmdef_bucket bytes;	/* bytes_per_sec, bytes_burst */
	struct vmdef_bucket ops;	/* ops_per_sec, ops_burst */
};

struct vmdef_disk {
	char *path;			/* absolute */
	bool readonly;
	bool direct;			/* O_DIRECT */
	char serial[VMDEF_SERIAL_MAX + 1];	/* "" when unset */
	struct vmdef_disk_limits limits;
};

struct vmdef_nic_limits {
	struct vmdef_bucket rx_bytes;	/* rx_bytes_per_sec, rx_bytes_burst */
	struct vmdef_bucket rx_packets;
	struct vmdef_bucket tx_bytes;
	struct vmdef_bucket tx_packets;
};

struct vmdef_nic {
	char tap[VMDEF_TAP_MAX + 1];
	bool has_mac;			/* false: vmm-run derives one */
	uint8_t mac[6];
	struct vmdef_nic_limits limits;
};

/* Every field 0 / false / NULL when unset (no limit). */
struct vmdef_resources {
	uint32_t cpu_weight;		/* 1..10000 */
	uint32_t cpu_quota_milli;	/* CPUs x VMDEF_CPU_QUOTA_SCALE */
	struct cpulist *cpu_pin;	/* nr_cpu_pin sets, one per vCPU */
	unsigned int nr_cpu_pin;	/* 0 or vcpus */
	bool has_device_cpus;
	struct cpulist device_cpus;
	uint64_t memory_limit;		/* bytes */
};

enum vmdef_restart_policy {
	VMDEF_RESTART_NEVER,
	VMDEF_RESTART_ON_FAILURE,
	VMDEF_RESTART_ALWAYS,
	VMDEF_RESTART_MAX,
};

struct vmdef_restart {
	enum vmdef_restart_policy policy;
	unsigned int max_restarts;	/* within window_sec; then give up */
	unsigned int window_sec;
};

struct vmdef {
	char name[VMDEF_NAME_MAX + 1];
	unsigned int vcpus;
	uint64_t memory;		/* bytes */
	char *kernel;			/* NULL when unset, like the next three */
	char *initrd;
	char *cmdline;
	char *firmware;
	unsigned int nr_disks;
	struct vmdef_disk disks[VMDEF_DISKS_MAX];
	unsigned int nr_nics;
	struct vmdef_nic nics[VMDEF_NICS_MAX];
	uint64_t console_history;	/* bytes of console output replayed */
	bool virtio_console;
	bool has_vsock;
	uint32_t vsock_cid;
	bool balloon;
	struct vmdef_resources resources;
	bool autostart;
	struct vmdef_restart restart;
};

/*
 * Parse and validate a definition (j borrowed, not modified). Returns 0
 * with a new struct in *ret_def (vmdef_free() it), -EINVAL with the
 * message in err, or -ENOMEM.
 */
int vmdef_from_json(json_t *j, unsigned int flags, struct vmdef **ret_def,
		    char *err, size_t errlen);

/* The same from JSON text (len bytes; duplicate keys are an error). */
int vmdef_from_string(const char *buf, size_t len, unsigned int flags,
		      struct vmdef **ret_def, char *err, size_t errlen);

/*
 * The canonical JSON of def: every field with its default filled in,
 * sizes as size strings ("512M"), rates as integers, unset optional fields
 * left out. A new reference, or NULL when out of memory.
 */
json_t *vmdef_to_json(const struct vmdef *def);

/*
 * Apply the changes of vm.set to def: the subset that can change while the
 * VM runs. changes is an object with any of
 *   "resources": {member: value or null, ...}  each member given replaces
 *       (null unsets) the current one;
 *   "disks": [ {"limits": {...}} or {}, ... ]  entry i changes disk i (at
 *       most as many entries as disks); members of limits replace the
 *       current ones, 0 or null unsets, "limits": null unsets them all;
 *   "nics": the same for NICs.
 * Every other field of the definition is refused ("memory: cannot be
 * changed on a running VM"), unknown ones as in a definition. The result
 * is validated as a whole; on any error def is left as it was. Returns 0,
 * -EINVAL with err, or -ENOMEM.
 */
int vmdef_update(struct vmdef *def, json_t *changes, char *err,
		 size_t errlen);

/*
 * Check that kernel, initrd and firmware are readable regular files and
 * disks readable (and, unless readonly, writable) regular files or block
 * devices: "kernel: no such file", "disks[1].path: not a regular file or
 * block device". What vmdef_from_json() does under VMDEF_CHECK_FILES; the
 * daemon calls it again before starting a VM. Returns 0 or -EINVAL.
 */
int vmdef_check_files(const struct vmdef *def, char *err, size_t errlen);

/* A deep copy, or NULL when out of memory. */
struct vmdef *vmdef_dup(const struct vmdef *def);

/* Free def and everything it owns; NULL is fine. */
void vmdef_free(struct vmdef *def);

/* True for a valid VM name: 1..63 of [A-Za-z0-9._-], not starting with . _ -. */
bool vmdef_name_valid(const char *name);

/* "52:54:00:12:34:56" (any case) to bytes. 0 or -EINVAL; any address. */
int vmdef_mac_parse(const char *s, uint8_t ret_mac[6]);

/* Lower-case "52:54:00:12:34:56" into buf (at least 18 bytes). */
void vmdef_mac_format(const uint8_t mac[6], char buf[18]);

/* "never", "on-failure", "always"; NULL for values out of range. */
const char *vmdef_restart_policy_name(enum vmdef_restart_policy p);

#endif
