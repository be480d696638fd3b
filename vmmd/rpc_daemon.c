/* SPDX-License-Identifier: MIT */
/* daemon.info and events.subscribe (rpc.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "vmmd/conn.h"
#include "vmmd/daemon.h"
#include "vmmd/events.h"
#include "vmmd/registry.h"
#include "vmmd/rpc.h"

int
rpc_daemon_info(struct rpc_call *call, json_t *params)
{
	struct vmmd *d = call->d;
	char host[256] = "";
	struct sysinfo si;
	unsigned int defined = 0, running = 0;
	uint64_t mem = 0;
	struct vm *vm;
	json_t *res, *ident;

	(void)params;
	gethostname(host, sizeof(host) - 1);
	if (sysinfo(&si) == 0)
		mem = (uint64_t)si.totalram * si.mem_unit;
	TAILQ_FOREACH(vm, &d->reg.vms, entry) {
		if (!vm_visible(vm, call->who.tenant))
			continue;
		defined++;
		running += vm->state == VM_STATE_RUNNING ||
			   vm->state == VM_STATE_PAUSED;
	}
	ident = json_pack("{s:s, s:s}", "name", call->who.name, "role",
			  policy_role_name(call->who.role));
	if (ident && call->who.tenant)
		json_object_set_new(ident, "tenant",
				    json_string(call->who.tenant));
	res = json_pack("{s:s, s:i, s:s, s:I, s:{s:i, s:I}, s:{s:i, s:i}, "
			"s:o*}",
			"version", VMMD_VERSION,
			"protocol", VMMD_PROTOCOL,
			"hostname", host,
			"frame_max", (json_int_t)d->cfg->frame_max,
			"host", "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
			"memory", (json_int_t)mem,
			"vms", "defined", (int)defined, "running", (int)running,
			"identity", ident);
	if (!res)
		return -ENOMEM;
	rpc_reply(call, res);
	return 0;
}

int
rpc_events_subscribe(struct rpc_call *call, json_t *params)
{
	json_t *types = json_object_get(params, "types");
	json_t *names = json_object_get(params, "names");
	json_t *v, *res;
	unsigned int mask = 0, i;
	size_t idx;
	struct events_sub *sub;
	int r;

	if (types) {
		json_array_foreach(types, idx, v) {
			enum event_type t;

			if (!json_is_string(v))
				return rpc_fail(call, -EINVAL, "types[%zu]: "
						"must be a string", idx);
			if (event_type_parse(json_string_value(v), &t) < 0)
				return rpc_fail(call, -EINVAL, "types[%zu]: "
						"unknown event type", idx);
			mask |= 1u << t;
		}
	} else {
		mask = EVENT_TYPES_ALL;
	}
	if (names)
		json_array_foreach(names, idx, v)
			if (!json_is_string(v))
				return rpc_fail(call, -EINVAL, "names[%zu]: "
						"must be a string", idx);
	if (!call->conn)
		return rpc_fail(call, -ECANCELED, "client gone");
	r = events_subscribe(&call->d->events, call->conn, mask, names,
			     call->who.tenant, &sub);
	if (r < 0)
		return r;
	/* A second subscribe replaces the first. */
	events_unsubscribe(call->conn->sub);
	call->conn->sub = sub;
	res = json_pack("{s:[]}", "types");
	for (i = 0; res && i < EVENT_TYPE_MAX; i++)
		if (mask & (1u << i))
			json_array_append_new(json_object_get(res, "types"),
				json_string(event_type_name((enum event_type)i)));
	if (!res)
		return -ENOMEM;
	rpc_reply(call, res);
	return 0;
}
