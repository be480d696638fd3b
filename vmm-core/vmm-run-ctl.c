/* SPDX-License-Identifier: MIT */
/*
 * vmm-run's control socket: JSON-RPC 2.0 in length-prefixed frames
 * (proto/PROTOCOL.md, "vmm-run control socket"). The daemon is the usual
 * client; by hand, anything that speaks the framing can use it. One thread
 * serves every client with poll(); requests are answered in order, and
 * nothing a client sends can make it allocate more than one frame's
 * maximum or block the VM.
 */
#include "vmm-run.h"
#include "log.h"
#include "dev/acpi_pm.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/net.h"
#include "virtio/vsock.h"
#include "ratelimit.h"

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "proto/size.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_CLIENTS	8
#define CTL_FRAME_MAX	(64u * 1024u)	/* requests are small */
#define CTL_READ_CHUNK	4096

struct ctl_client {
	int fd;
	struct frame_decoder dec;
	bool subscribed;	/* gets "event" notifications */
};

struct vmm_ctl {
	struct vmm *m;
	int listen_fd;
	char path[108];
	int wake_fd;
	pthread_t thread;
	pthread_mutex_t lock;	/* clients' subscribed flags and fds */
	bool stopping;
	struct ctl_client clients[CTL_MAX_CLIENTS];
	unsigned int nr_clients;
};

/* One request, as a handler sees it. */
struct ctl_call {
	struct vmm_ctl *c;
	struct ctl_client *cl;
	json_t *params;		/* checked against the method's list */
	char *err;		/* a message naming the problem, on errors */
	size_t errlen;
};

/* A handler fills *ret_result (a new reference) or returns a negative
 * errno with a message in call->err. */
typedef int (*ctl_handler)(struct ctl_call *call, json_t **ret_result);

static const char *
ctl_state(struct vmm *m)
{
	if (vm_stop_reason(m->vm) != VM_STOP_NONE)
		return "stopping";
	return vm_is_paused(m->vm) ? "paused" : "running";
}

/* Only these keys may appear in params (NULL-terminated list). */
static int
ctl_check_params(json_t *params, const char *const *allowed, char *err,
		 size_t errlen)
{
	const char *key;
	json_t *v;

	if (!params)
		return 0;
	if (!json_is_object(params)) {
		snprintf(err, errlen, "params: must be an object");
		return -EINVAL;
	}
	json_object_foreach(params, key, v) {
		const char *const *a;

		for (a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (!*a) {
			snprintf(err, errlen, "params.%s: unknown field", key);
			return -EINVAL;
		}
	}
	return 0;
}

static const char *const no_params[] = { NULL };

static int
ctl_vm_info(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	struct vmm *m = c->m;

	*ret = json_pack("{s:s, s:i, s:s, s:i, s:I, s:I, s:b, s:s?}",
			 "name", m->opt.name ? m->opt.name : "",
			 "pid", (int)getpid(),
			 "state", ctl_state(m),
			 "vcpus", (int)m->vm->nr_vcpus,
			 "memory", (json_int_t)m->opt.memory,
			 "uptime_ms", (json_int_t)((vmm_now_ns() - m->start_ns)
						    / 1000000),
			 "pvm_host", m->vm->is_pvm,
			 "console_socket", m->opt.console_socket);
	return *ret ? 0 : -ENOMEM;
}

/* Nanoseconds a thread spent on a CPU (/proc/self/task/TID/schedstat). */
static uint64_t
ctl_thread_cpu_ns(pid_t tid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	if (tid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

/* Resident bytes of this process. */
static uint64_t
ctl_rss_bytes(void)
{
	unsigned long long size, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* KVM's own counters of one vCPU, or NULL when the host has none. */
static json_t *
ctl_vcpu_kvm_stats(const struct vcpu *v)
{
	struct kvm_stats_values ks;
	json_t *o;
	int k;

	if (vcpu_kvm_stats(v, &ks) < 0)
		return NULL;
	o = json_object();
	for (k = 0; o && k < KVM_STATS_MAX; k++)
		if (ks.present & (1u << k))
			json_object_set_new(o, kvm_stats_name(k),
				json_integer((json_int_t)ks.value[k]));
	return o;
}

static json_t *
ctl_vcpu_stats(struct vmm *m)
{
	json_t *arr = json_array();
	unsigned int i, k;

	for (i = 0; arr && i < m->vm->nr_vcpus; i++) {
		const struct vcpu *v = &m->vm->vcpus[i];
		json_t *exits = json_object(), *o;
		pid_t tid = __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE);

		for (k = 0; exits && k < VCPU_EXIT_MAX; k++)
			json_object_set_new(exits, vcpu_exit_kind_name(k),
				json_integer((json_int_t)__atomic_load_n(
					&v->stats.exits[k], __ATOMIC_RELAXED)));
		o = json_pack("{s:i, s:i, s:I, s:I, s:I, s:o*, s:o*}",
			      "index", (int)i, "tid", (int)tid,
			      "cpu_ns", (json_int_t)ctl_thread_cpu_ns(tid),
			      "runs", (json_int_t)__atomic_load_n(&v->stats.runs,
							__ATOMIC_RELAXED),
			      "pvm_syscalls", (json_int_t)__atomic_load_n(
					&v->stats.pvm_syscalls, __ATOMIC_RELAXED),
			      "exits", exits, "kvm", ctl_vcpu_kvm_stats(v));
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int
ctl_vm_stats(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	struct vmm *m = c->m;
	json_t *res, *disks, *nics;
	struct timespec ts;
	unsigned int i;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	disks = json_array();
	nics = json_array();
	for (i = 0; disks && i < m->opt.nr_disks; i++) {
		struct blk_stats s;

		if (!m->blks[i])
			continue;
		blk_get_stats(m->blks[i], &s);
		json_array_append_new(disks, json_pack(
			"{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"index", (int)i, "reads", (json_int_t)s.reads,
			"throttled", (json_int_t)s.throttled,
			"throttled_ns", (json_int_t)s.throttled_ns,
			"read_bytes", (json_int_t)s.read_bytes,
			"writes", (json_int_t)s.writes,
			"write_bytes", (json_int_t)s.write_bytes,
			"flushes", (json_int_t)s.flushes,
			"discards", (json_int_t)(s.discards + s.write_zeroes),
			"errors", (json_int_t)s.errors,
			"inflight", (json_int_t)s.inflight));
	}
	for (i = 0; nics && i < m->opt.nr_nets; i++) {
		struct net_stats s;

		if (!m->nics[i])
			continue;
		net_get_stats(m->nics[i], &s);
		json_array_append_new(nics, json_pack(
			"{s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I, s:I}",
			"index", (int)i, "tap", net_ifname(m->nics[i]),
			"rx_packets", (json_int_t)s.rx_packets,
			"rx_bytes", (json_int_t)s.rx_bytes,
			"rx_dropped", (json_int_t)s.rx_dropped,
			"tx_packets", (json_int_t)s.tx_packets,
			"tx_bytes", (json_int_t)s.tx_bytes,
			"tx_errors", (json_int_t)s.tx_errors,
			"rx_throttled", (json_int_t)s.rx_throttled,
			"rx_throttled_ns", (json_int_t)s.rx_throttled_ns,
			"tx_throttled", (json_int_t)s.tx_throttled,
			"tx_throttled_ns", (json_int_t)s.tx_throttled_ns));
	}
	res = json_pack("{s:s, s:I, s:o*, s:{s:I, s:I}, s:o*, s:o*, "
			"s:{s:I, s:I}}",
			"state", ctl_state(m),
			"cpu_ns", (json_int_t)((uint64_t)ts.tv_sec * 1000000000ull
					       + (uint64_t)ts.tv_nsec),
			"vcpus", ctl_vcpu_stats(m),
			"memory", "guest_bytes", (json_int_t)m->opt.memory,
			"rss_bytes", (json_int_t)ctl_rss_bytes(),
			"disks", disks, "nics", nics,
			"unowned", "pio",
			(json_int_t)bus_unowned_count(&m->vm->pio),
			"mmio", (json_int_t)bus_unowned_count(&m->vm->mmio));
	if (res && m->vsock) {
		struct vsock_stats vs;

		vsock_get_stats(m->vsock, &vs);
		json_object_set_new(res, "vsock", json_pack(
			"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			"s:I}",
			"conns", (json_int_t)vs.conns,
			"guest_connects", (json_int_t)vs.guest_connects,
			"host_connects", (json_int_t)vs.host_connects,
			"refused", (json_int_t)vs.refused,
			"rx_bytes", (json_int_t)vs.rx_bytes,
			"tx_bytes", (json_int_t)vs.tx_bytes,
			"rst_sent", (json_int_t)vs.rst_sent,
			"cmd_timeouts", (json_int_t)vs.cmd_timeouts,
			"connect_timeouts", (json_int_t)vs.connect_timeouts,
			"shutdown_timeouts", (json_int_t)vs.shutdown_timeouts,
			"tx_copied", (json_int_t)vs.tx_copied));
	}
	if (res && m->hub) {
		struct conhub_stats hs;

		conhub_get_stats(m->hub, &hs);
		json_object_set_new(res, "console", json_pack(
			"{s:I, s:I, s:i}", "bytes", (json_int_t)hs.written,
			"skipped", (json_int_t)hs.skipped,
			"clients", (int)hs.clients));
	}
	*ret = res;
	return res ? 0 : -ENOMEM;
}

static void ctl_broadcast_state(struct vmm_ctl *c, const char *state);

static int
ctl_vm_pause(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	char *err = call->err;
	size_t errlen = call->errlen;
	int r;

	if (vm_is_paused(c->m->vm)) {
		snprintf(err, errlen, "the VM is already paused");
		return -EALREADY;
	}
	r = vm_pause(c->m->vm);
	if (r < 0) {
		snprintf(err, errlen, "the VM is stopping");
		return -EBUSY;
	}
	ctl_broadcast_state(c, "paused");
	*ret = json_pack("{s:s}", "state", "paused");
	return 0;
}

static int
ctl_vm_resume(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	char *err = call->err;
	size_t errlen = call->errlen;

	if (!vm_is_paused(c->m->vm)) {
		snprintf(err, errlen, "the VM is not paused");
		return -EALREADY;
	}
	vm_resume(c->m->vm);
	ctl_broadcast_state(c, "running");
	*ret = json_pack("{s:s}", "state", "running");
	return 0;
}

/* The ACPI power button: a guest that listens shuts down by itself. */
static int
ctl_vm_powerdown(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	char *err = call->err;
	size_t errlen = call->errlen;

	if (!c->m->pm) {
		snprintf(err, errlen, "this VM has no ACPI power button");
		return -ENOENT;
	}
	if (vm_is_paused(c->m->vm)) {
		snprintf(err, errlen, "the VM is paused: resume it first");
		return -EBUSY;
	}
	acpi_pm_power_button(c->m->pm);
	*ret = json_pack("{s:b}", "sci_enabled",
			 acpi_pm_sci_asserted(c->m->pm));
	return 0;
}

/* Stop now, as SIGTERM would (exit status 143). */
static int
ctl_vm_quit(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;

	c->m->signo = SIGTERM;
	vm_request_stop(c->m->vm, VM_STOP_SIGNAL, "vm.quit on the control "
			"socket");
	*ret = json_pack("{s:s}", "state", "stopping");
	return 0;
}

static int
ctl_balloon_info_obj(struct vmm *m, json_t **ret)
{
	struct balloon_stats s;
	uint64_t target, actual;
	json_t *guest;
	static const char *const tags[] = {
		"swap_in", "swap_out", "major_faults", "minor_faults",
		"free_memory", "total_memory", "available_memory",
		"disk_caches", "hugetlb_allocations", "hugetlb_failures",
	};
	unsigned int t;

	balloon_get_info(m->balloon, &target, &actual, &s);
	guest = json_object();
	for (t = 0; guest && t < BALLOON_STAT_TAGS &&
	     t < sizeof(tags) / sizeof(tags[0]); t++)
		if (s.guest_valid & (1u << t))
			json_object_set_new(guest, tags[t],
					    json_integer((json_int_t)s.guest[t]));
	*ret = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o*}",
			 "target_bytes", (json_int_t)target,
			 "actual_bytes", (json_int_t)actual,
			 "inflated_pages", (json_int_t)s.inflated_pages,
			 "deflated_pages", (json_int_t)s.deflated_pages,
			 "reported_pages", (json_int_t)s.reported_pages,
			 "stats_updates", (json_int_t)s.guest_updates,
			 "guest_stats", guest);
	return *ret ? 0 : -ENOMEM;
}

static int
ctl_balloon_info(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	char *err = call->err;
	size_t errlen = call->errlen;

	if (!c->m->balloon) {
		snprintf(err, errlen, "this VM has no balloon (--balloon)");
		return -ENOENT;
	}
	/* Fresh numbers for next time; the guest answers asynchronously. */
	balloon_request_stats(c->m->balloon);
	return ctl_balloon_info_obj(c->m, ret);
}

/* params.target: the guest memory to leave the guest, a size or bytes. */
static int
ctl_balloon_set(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	json_t *params = call->params;
	char *err = call->err;
	size_t errlen = call->errlen;
	json_t *t;
	uint64_t bytes;
	int r;

	if (!c->m->balloon) {
		snprintf(err, errlen, "this VM has no balloon (--balloon)");
		return -ENOENT;
	}
	t = params ? json_object_get(params, "target") : NULL;
	if (json_is_integer(t) && json_integer_value(t) >= 0) {
		bytes = (uint64_t)json_integer_value(t);
	} else if (json_is_string(t)) {
		if (size_parse(json_string_value(t), &bytes) < 0) {
			snprintf(err, errlen, "params.target: '%s' is not a "
				 "size", json_string_value(t));
			return -EINVAL;
		}
	} else {
		snprintf(err, errlen, "params.target: required, a size such "
			 "as \"512M\" or a byte count");
		return -EINVAL;
	}
	if (bytes > c->m->opt.memory) {
		snprintf(err, errlen, "params.target: %llu bytes is more than "
			 "the VM's memory (%llu)", (unsigned long long)bytes,
			 (unsigned long long)c->m->opt.memory);
		return -ERANGE;
	}
	r = balloon_set_target(c->m->balloon, bytes);
	if (r < 0) {
		snprintf(err, errlen, "balloon: %s", strerror(-r));
		return r;
	}
	return ctl_balloon_info_obj(c->m, ret);
}

/* The console history, base64 (the guest's bytes need not be UTF-8). */
static int
ctl_console_history(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	char *err = call->err;
	size_t errlen = call->errlen;
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t *buf;
	size_t len, i, o = 0;
	char *out;
	int r;

	if (!c->m->hub) {
		snprintf(err, errlen, "this VM has no console socket "
			 "(--console-socket)");
		return -ENOENT;
	}
	r = conhub_history(c->m->hub, &buf, &len);
	if (r < 0)
		return r;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out) {
		free(buf);
		return -ENOMEM;
	}
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)buf[i] << 16 | (uint32_t)buf[i + 1] << 8 |
			     buf[i + 2];

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)buf[i] << 16 |
			     (i + 1 < len ? (uint32_t)buf[i + 1] << 8 : 0);

		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	*ret = json_pack("{s:I, s:s}", "bytes", (json_int_t)len, "data", out);
	free(out);
	free(buf);
	return *ret ? 0 : -ENOMEM;
}

static int
ctl_events_subscribe(struct ctl_call *call, json_t **ret)
{
	struct vmm_ctl *c = call->c;
	struct ctl_client *cl = call->cl;
	pthread_mutex_lock(&c->lock);
	cl->subscribed = true;
	pthread_mutex_unlock(&c->lock);
	*ret = json_pack("{s:s}", "state", ctl_state(c->m));
	return *ret ? 0 : -ENOMEM;
}

/* NIC limit fields of vm.set, in the order of ctl_nic_fields(). */
static const char *const ctl_nic_limit_names[] = {
	"rx_bytes_per_sec", "rx_bytes_burst", "rx_packets_per_sec",
	"rx_packets_burst", "tx_bytes_per_sec", "tx_bytes_burst",
	"tx_packets_per_sec", "tx_packets_burst",
};

static void
ctl_nic_fields(struct ratelimit_limits *rx, struct ratelimit_limits *tx,
	       uint64_t *ret[8])
{
	ret[0] = &rx->bytes_per_sec;
	ret[1] = &rx->bytes_burst;
	ret[2] = &rx->ops_per_sec;
	ret[3] = &rx->ops_burst;
	ret[4] = &tx->bytes_per_sec;
	ret[5] = &tx->bytes_burst;
	ret[6] = &tx->ops_per_sec;
	ret[7] = &tx->ops_burst;
}

/*
 * params.nics[i].limits into rx[i], tx[i] (from the NIC's current ones),
 * all checked; the same rules as the disks'. 0 or -EINVAL with call->err.
 */
static int
ctl_nics_parse(struct ctl_call *call, json_t *nics,
	       struct ratelimit_limits *rx, struct ratelimit_limits *tx)
{
	struct vmm *m = call->c->m;
	uint64_t *field[8];
	json_t *d, *lim, *v;
	const char *key;
	char what[48];
	unsigned int k;
	size_t i;

	if (!json_is_array(nics)) {
		snprintf(call->err, call->errlen, "params.nics: an array with "
			 "one entry per NIC");
		return -EINVAL;
	}
	if (json_array_size(nics) > m->opt.nr_nets) {
		snprintf(call->err, call->errlen, "params.nics: %zu entries "
			 "for %u NIC(s)", json_array_size(nics),
			 m->opt.nr_nets);
		return -EINVAL;
	}
	json_array_foreach(nics, i, d) {
		lim = json_object_get(d, "limits");
		net_get_limits(m->nics[i], &rx[i], &tx[i]);
		if (!json_is_object(d) || json_object_size(d) >
		    (lim ? 1u : 0u)) {
			snprintf(call->err, call->errlen, "params.nics[%zu]: "
				 "an object with only \"limits\"", i);
			return -EINVAL;
		}
		if (json_is_null(lim)) {
			memset(&rx[i], 0, sizeof(rx[i]));
			memset(&tx[i], 0, sizeof(tx[i]));
			continue;
		}
		if (!lim)
			continue;
		if (!json_is_object(lim)) {
			snprintf(call->err, call->errlen, "params.nics[%zu]."
				 "limits: must be an object or null", i);
			return -EINVAL;
		}
		ctl_nic_fields(&rx[i], &tx[i], field);
		json_object_foreach(lim, key, v) {
			for (k = 0; k < 8; k++)
				if (strcmp(key, ctl_nic_limit_names[k]) == 0)
					break;
			if (k == 8) {
				snprintf(call->err, call->errlen, "params.nics"
					 "[%zu].limits.%s: unknown field", i,
					 key);
				return -EINVAL;
			}
			if (json_is_null(v)) {
				*field[k] = 0;
			} else if (json_is_integer(v) &&
				   json_integer_value(v) >= 0) {
				*field[k] = (uint64_t)json_integer_value(v);
			} else {
				snprintf(call->err, call->errlen, "params.nics"
					 "[%zu].limits.%s: must be an integer "
					 ">= 0 or null", i, key);
				return -EINVAL;
			}
		}
		/* Named as the client named them; the check below, for
		 * values too large, says bytes_ and ops_. */
		for (k = 0; k < 8; k += 2) {
			if (*field[k + 1] && !*field[k]) {
				snprintf(call->err, call->errlen, "params.nics"
					 "[%zu].limits.%s: given without %s",
					 i, ctl_nic_limit_names[k + 1],
					 ctl_nic_limit_names[k]);
				return -EINVAL;
			}
		}
		/* The check names bytes_/ops_; say which direction. */
		snprintf(what, sizeof(what), "params.nics[%zu].limits rx_", i);
		if (ratelimit_limits_check(&rx[i], what, call->err,
					   call->errlen) < 0)
			return -EINVAL;
		snprintf(what, sizeof(what), "params.nics[%zu].limits tx_", i);
		if (ratelimit_limits_check(&tx[i], what, call->err,
					   call->errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Apply what ctl_nics_parse() checked; the limits now in force. */
static json_t *
ctl_nics_apply(struct ctl_call *call, json_t *nics,
	       const struct ratelimit_limits *rx,
	       const struct ratelimit_limits *tx)
{
	struct vmm *m = call->c->m;
	struct ratelimit_limits nrx, ntx;
	json_t *out = json_array(), *d, *lim;
	uint64_t *field[8];
	unsigned int k;
	size_t i;

	json_array_foreach(nics, i, d) {
		(void)d;
		/* Checked already: cannot be refused. */
		(void)net_set_limits(m->nics[i], &rx[i], &tx[i]);
		net_get_limits(m->nics[i], &nrx, &ntx);
		ctl_nic_fields(&nrx, &ntx, field);
		lim = json_object();
		for (k = 0; lim && k < 8; k++)
			json_object_set_new(lim, ctl_nic_limit_names[k],
					    json_integer((json_int_t)*field[k]));
		json_array_append_new(out, json_pack("{s:i, s:o*}", "index",
						     (int)i, "limits", lim));
	}
	return out;
}

/*
 * params.disks[i].limits: the I/O limits of disk i; params.nics[i].limits
 * those of NIC i (rx_ and tx_ bytes_per_sec, bytes_burst, packets_per_sec,
 * packets_burst). Members given replace the current ones (0 or null:
 * none); an entry {} leaves a device alone; limits null lifts them all.
 * One of disks and nics is required. All are checked before any is
 * applied.
 */
static int
ctl_vm_set(struct ctl_call *call, json_t **ret)
{
	static const char *const names[] = {
		"bytes_per_sec", "bytes_burst", "ops_per_sec", "ops_burst",
	};
	struct vmm *m = call->c->m;
	struct ratelimit_limits want[VMM_MAX_DISKS];
	struct ratelimit_limits nrx[VMM_MAX_NICS], ntx[VMM_MAX_NICS];
	json_t *disks = json_object_get(call->params, "disks"), *d, *out;
	json_t *nics = json_object_get(call->params, "nics");
	size_t i;
	unsigned int k;

	if (!disks && !nics) {
		snprintf(call->err, call->errlen, "params.disks or params.nics: "
			 "required, an array with one entry per device");
		return -EINVAL;
	}
	if (nics && ctl_nics_parse(call, nics, nrx, ntx) < 0)
		return -EINVAL;
	/* Without disks, the loops below see an empty array. */
	if (disks && !json_is_array(disks)) {
		snprintf(call->err, call->errlen, "params.disks: an array with "
			 "one entry per disk");
		return -EINVAL;
	}
	if (json_array_size(disks) > m->opt.nr_disks) {
		snprintf(call->err, call->errlen, "params.disks: %zu entries "
			 "for %u disk(s)", json_array_size(disks),
			 m->opt.nr_disks);
		return -EINVAL;
	}
	json_array_foreach(disks, i, d) {
		json_t *lim = json_object_get(d, "limits");
		const char *key;
		json_t *v;
		char what[48];

		blk_get_limits(m->blks[i], &want[i]);
		if (!json_is_object(d) || json_object_size(d) >
		    (lim ? 1u : 0u)) {
			snprintf(call->err, call->errlen, "params.disks[%zu]: "
				 "an object with only \"limits\"", i);
			return -EINVAL;
		}
		if (json_is_null(lim)) {
			memset(&want[i], 0, sizeof(want[i]));
			continue;
		}
		if (!lim)
			continue;
		if (!json_is_object(lim)) {
			snprintf(call->err, call->errlen, "params.disks[%zu]."
				 "limits: must be an object or null", i);
			return -EINVAL;
		}
		json_object_foreach(lim, key, v) {
			uint64_t *field[] = {
				&want[i].bytes_per_sec, &want[i].bytes_burst,
				&want[i].ops_per_sec, &want[i].ops_burst,
			};

			for (k = 0; k < 4; k++)
				if (strcmp(key, names[k]) == 0)
					break;
			if (k == 4) {
				snprintf(call->err, call->errlen, "params.disks"
					 "[%zu].limits.%s: unknown field", i, key);
				return -EINVAL;
			}
			if (json_is_null(v)) {
				*field[k] = 0;
			} else if (json_is_integer(v) &&
				   json_integer_value(v) >= 0) {
				*field[k] = (uint64_t)json_integer_value(v);
			} else {
				snprintf(call->err, call->errlen, "params.disks"
					 "[%zu].limits.%s: must be an integer "
					 ">= 0 or null", i, key);
				return -EINVAL;
			}
		}
		snprintf(what, sizeof(what), "params.disks[%zu].limits", i);
		if (ratelimit_limits_check(&want[i], what, call->err,
					   call->errlen) < 0)
			return -EINVAL;
	}
	out = json_array();
	json_array_foreach(disks, i, d) {
		struct ratelimit_limits now;

		if (blk_set_limits(m->blks[i], &want[i]) < 0) {
			json_decref(out);
			snprintf(call->err, call->errlen, "disk %zu: limits "
				 "refused", i);
			return -EINVAL;
		}
		blk_get_limits(m->blks[i], &now);
		json_array_append_new(out, json_pack(
			"{s:i, s:{s:I, s:I, s:I, s:I}}", "index", (int)i,
			"limits", names[0], (json_int_t)now.bytes_per_sec,
			names[1], (json_int_t)now.bytes_burst,
			names[2], (json_int_t)now.ops_per_sec,
			names[3], (json_int_t)now.ops_burst));
	}
	*ret = json_object();
	if (*ret && disks)
		json_object_set(*ret, "disks", out);
	json_decref(out);
	if (*ret && nics)
		json_object_set_new(*ret, "nics",
				    ctl_nics_apply(call, nics, nrx, ntx));
	return *ret ? 0 : -ENOMEM;
}

static const char *const vm_set_params[] = { "disks", "nics", NULL };
static const char *const balloon_set_params[] = { "target", NULL };

/* The method table: the parameters each takes are checked once, here. */
static const struct {
	const char *name;
	ctl_handler fn;
	const char *const *params;
} ctl_methods[] = {
	{ "vm.info", ctl_vm_info, no_params },
	{ "vm.stats", ctl_vm_stats, no_params },
	{ "vm.pause", ctl_vm_pause, no_params },
	{ "vm.resume", ctl_vm_resume, no_params },
	{ "vm.powerdown", ctl_vm_powerdown, no_params },
	{ "vm.quit", ctl_vm_quit, no_params },
	{ "vm.set", ctl_vm_set, vm_set_params },
	{ "balloon.info", ctl_balloon_info, no_params },
	{ "balloon.set", ctl_balloon_set, balloon_set_params },
	{ "console.history", ctl_console_history, no_params },
	{ "events.subscribe", ctl_events_subscribe, no_params },
};

/* Send without waiting long: a client that does not read is dropped. */
static int
ctl_send(int fd, json_t *msg)
{
	uint8_t *buf;
	size_t len, off = 0;
	int r = frame_encode_json(msg, CTL_FRAME_MAX * 16, &buf, &len);

	if (r < 0)
		return r;
	while (off < len) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n = send(fd, buf + off, len - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (poll(&p, 1, 1000) != 1) {
				r = -ETIMEDOUT;
				break;
			}
			continue;
		}
		if (n < 0) {
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	return r;
}

static void
ctl_broadcast_state(struct vmm_ctl *c, const char *state)
{
	json_t *n = jsonrpc_notification_new("event", json_pack("{s:s, s:s}",
					     "type", "state", "state", state));
	unsigned int i;

	if (!n)
		return;
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->nr_clients; i++)
		if (c->clients[i].subscribed)
			ctl_send(c->clients[i].fd, n);
	pthread_mutex_unlock(&c->lock);
	json_decref(n);
}

void
vmm_ctl_notify_state(struct vmm_ctl *c, const char *state)
{
	if (c)
		ctl_broadcast_state(c, state);
}

/* Answer one request payload. Returns 0, or -1 to drop the client. */
static int
ctl_handle(struct vmm_ctl *c, struct ctl_client *cl, const char *payload,
	   size_t len)
{
	struct jsonrpc_msg msg;
	struct jsonrpc_perr perr = { 0 };
	char err[256] = "";
	json_t *reply = NULL, *result = NULL;
	size_t i;
	int r, code;

	r = jsonrpc_parse(payload, len, &msg, &perr);
	if (r < 0) {
		reply = r == -ENOMEM ? NULL : jsonrpc_error_from_perr(&perr);
		jsonrpc_perr_clear(&perr);
		goto send;
	}
	if (msg.kind != JSONRPC_REQUEST && msg.kind != JSONRPC_NOTIFICATION) {
		jsonrpc_msg_clear(&msg);
		return 0;	/* responses from a client: nothing to do */
	}
	for (i = 0; i < sizeof(ctl_methods) / sizeof(ctl_methods[0]); i++)
		if (strcmp(ctl_methods[i].name, msg.method) == 0)
			break;
	if (i == sizeof(ctl_methods) / sizeof(ctl_methods[0])) {
		snprintf(err, sizeof(err), "method '%s' not found", msg.method);
		code = PROTO_ERR_METHOD_NOT_FOUND;
	} else {
		struct ctl_call call = {
			.c = c, .cl = cl, .params = msg.params,
			.err = err, .errlen = sizeof(err),
		};

		r = ctl_check_params(msg.params, ctl_methods[i].params, err,
				     sizeof(err));
		if (r == 0)
			r = ctl_methods[i].fn(&call, &result);
		code = r < 0 ? proto_err_from_errno(r) : 0;
		if (r < 0 && !err[0])
			snprintf(err, sizeof(err), "%s: %s", msg.method,
				 strerror(-r));
	}
	if (msg.kind == JSONRPC_NOTIFICATION) {
		json_decref(result);
		jsonrpc_msg_clear(&msg);
		return 0;
	}
	if (code) {
		json_decref(result);
		reply = jsonrpc_error_new(msg.id, code, err, NULL);
	} else {
		reply = jsonrpc_result_new(msg.id, result);
	}
	jsonrpc_msg_clear(&msg);
send:
	if (!reply)
		return -1;
	pthread_mutex_lock(&c->lock);
	r = ctl_send(cl->fd, reply);
	pthread_mutex_unlock(&c->lock);
	json_decref(reply);
	return r < 0 ? -1 : 0;
}

/* Read what the client sent and answer every complete request. */
static int
ctl_read(struct vmm_ctl *c, struct ctl_client *cl)
{
	uint8_t buf[CTL_READ_CHUNK];
	ssize_t n = read(cl->fd, buf, sizeof(buf));
	size_t off = 0;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;
	while (off < (size_t)n) {
		char *payload;
		size_t used, len;
		int r = frame_decoder_feed(&cl->dec, buf + off, (size_t)n - off,
					   &used, &payload, &len);

		off += used;
		if (r < 0) {
			/* A bad header: say so, then hang up. */
			json_t *e = jsonrpc_error_new(NULL,
				PROTO_ERR_INVALID_REQUEST, r == -EMSGSIZE ?
				"frame larger than the maximum" :
				"zero-length frame", NULL);

			if (e) {
				pthread_mutex_lock(&c->lock);
				ctl_send(cl->fd, e);
				pthread_mutex_unlock(&c->lock);
				json_decref(e);
			}
			return -1;
		}
		if (r == 0)
			break;
		r = ctl_handle(c, cl, payload, len);
		free(payload);
		if (r < 0)
			return -1;
	}
	return 0;
}

static void
ctl_drop(struct vmm_ctl *c, unsigned int i)
{
	pthread_mutex_lock(&c->lock);
	close(c->clients[i].fd);
	frame_decoder_reset(&c->clients[i].dec);
	c->clients[i] = c->clients[--c->nr_clients];
	pthread_mutex_unlock(&c->lock);
}

static void *
ctl_thread(void *arg)
{
	struct vmm_ctl *c = arg;

	for (;;) {
		struct pollfd pfd[CTL_MAX_CLIENTS + 2];
		int fds[CTL_MAX_CLIENTS];
		unsigned int i, n;

		pfd[0] = (struct pollfd){ .fd = c->wake_fd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
		n = c->nr_clients;
		for (i = 0; i < n; i++) {
			fds[i] = c->clients[i].fd;
			pfd[2 + i] = (struct pollfd){ .fd = fds[i],
						      .events = POLLIN };
		}
		if (poll(pfd, 2 + n, -1) < 0)
			continue;
		if (pfd[0].revents & POLLIN)
			break;
		for (i = n; i-- > 0;) {
			if (!pfd[2 + i].revents || i >= c->nr_clients ||
			    c->clients[i].fd != fds[i])
				continue;
			if (ctl_read(c, &c->clients[i]) < 0)
				ctl_drop(c, i);
		}
		if (pfd[1].revents & POLLIN) {
			int fd = accept4(c->listen_fd, NULL, NULL,
					 SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (fd < 0)
				continue;
			pthread_mutex_lock(&c->lock);
			if (c->nr_clients == CTL_MAX_CLIENTS) {
				pthread_mutex_unlock(&c->lock);
				close(fd);
				log_warn("control socket: more than %d clients, "
					 "one refused", CTL_MAX_CLIENTS);
				continue;
			}
			c->clients[c->nr_clients].fd = fd;
			c->clients[c->nr_clients].subscribed = false;
			frame_decoder_init(&c->clients[c->nr_clients].dec,
					   CTL_FRAME_MAX);
			c->nr_clients++;
			pthread_mutex_unlock(&c->lock);
		}
	}
	return NULL;
}

int
vmm_ctl_start(struct vmm *m, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vmm_ctl *c;
	int r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "path longer than %zu bytes",
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->m = m;
	c->listen_fd = c->wake_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	strcpy(c->path, path);
	strcpy(sa.sun_path, path);
	c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
			      SOCK_CLOEXEC, 0);
	if (c->wake_fd < 0 || c->listen_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		goto fail;
	}
	/* A socket file left by a VM of the same name that died is ours to
	 * replace; anything else there is not. */
	{
		struct stat st;

		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "exists and is not a socket");
			r = -EEXIST;
			goto fail;
		}
	}
	unlink(path);
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(c->listen_fd, 8) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		goto fail;
	}
	r = -pthread_create(&c->thread, NULL, ctl_thread, c);
	if (r < 0) {
		snprintf(err, errlen, "cannot start its thread: %s",
			 strerror(-r));
		unlink(path);
		goto fail;
	}
	m->ctl = c;
	return 0;
fail:
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

void
vmm_ctl_stop(struct vmm_ctl *c)
{
	unsigned int i;

	if (!c)
		return;
	if (write(c->wake_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		return;
	pthread_join(c->thread, NULL);
	for (i = 0; i < c->nr_clients; i++) {
		close(c->clients[i].fd);
		frame_decoder_reset(&c->clients[i].dec);
	}
	close(c->listen_fd);
	close(c->wake_fd);
	unlink(c->path);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
