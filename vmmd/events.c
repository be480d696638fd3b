/* SPDX-License-Identifier: MIT */
/* Event notifications to subscribers (events.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/jsonrpc.h"
#include "vmmd/events.h"
#include "vmmd/registry.h"

static const char *const event_names[EVENT_TYPE_MAX] = {
	[EVENT_VM_CREATED] = "vm.created",
	[EVENT_VM_DELETED] = "vm.deleted",
	[EVENT_VM_UPDATED] = "vm.updated",
	[EVENT_VM_STATE] = "vm.state",
};

void
events_init(struct events *ev)
{
	memset(ev, 0, sizeof(*ev));
	TAILQ_INIT(&ev->subs);
}

void
events_fini(struct events *ev)
{
	struct events_sub *s, *t;

	TAILQ_FOREACH_SAFE(s, &ev->subs, entry, t)
		events_unsubscribe(s);
}

int
event_type_parse(const char *s, enum event_type *ret)
{
	unsigned int i;

	for (i = 0; s && i < EVENT_TYPE_MAX; i++)
		if (strcmp(s, event_names[i]) == 0) {
			*ret = (enum event_type)i;
			return 0;
		}
	return -EINVAL;
}

const char *
event_type_name(enum event_type t)
{
	return (unsigned int)t < EVENT_TYPE_MAX ? event_names[t] : NULL;
}

int
events_subscribe(struct events *ev, struct conn *conn, unsigned int types,
		 json_t *names, const char *tenant, struct events_sub **ret)
{
	struct events_sub *s = calloc(1, sizeof(*s));
	size_t i;
	json_t *n;

	if (!s)
		return -ENOMEM;
	s->ev = ev;
	s->conn = conn;
	s->types = types & EVENT_TYPES_ALL;
	if (tenant && !(s->tenant = strdup(tenant)))
		goto oom;
	if (names) {
		s->names = calloc(json_array_size(names) + 1,
				  sizeof(*s->names));
		if (!s->names)
			goto oom;
		json_array_foreach(names, i, n) {
			if (!json_is_string(n))
				continue;
			s->names[s->nr_names] = strdup(json_string_value(n));
			if (!s->names[s->nr_names])
				goto oom;
			s->nr_names++;
		}
	}
	TAILQ_INSERT_TAIL(&ev->subs, s, entry);
	*ret = s;
	return 0;
oom:
	s->ev = NULL;
	events_unsubscribe(s);
	return -ENOMEM;
}

void
events_unsubscribe(struct events_sub *s)
{
	unsigned int i;

	if (!s)
		return;
	if (s->ev)
		TAILQ_REMOVE(&s->ev->subs, s, entry);
	for (i = 0; i < s->nr_names; i++)
		free(s->names[i]);
	free(s->names);
	free(s->tenant);
	free(s);
}

void
events_format_time(const struct timespec *ts, bool ms, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	if (ms)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts->tv_nsec / 1000000);
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool
events_wanted(const struct events_sub *s, enum event_type t,
	      const struct vm *vm)
{
	unsigned int i;

	if (!(s->types & (1u << t)))
		return false;
	if (!vm_visible(vm, s->tenant))
		return false;
	if (!s->names)
		return true;
	for (i = 0; i < s->nr_names; i++)
		if (strcmp(s->names[i], vm->name) == 0)
			return true;
	return false;
}

uint64_t
events_emit(struct events *ev, enum event_type t, const struct vm *vm,
	    json_t *extra)
{
	struct events_sub *s, *tmp;
	struct timespec now;
	char when[40];
	uint64_t seq = ++ev->seq;
	json_t *params;

	clock_gettime(CLOCK_REALTIME, &now);
	events_format_time(&now, true, when, sizeof(when));
	params = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)seq,
			   "time", when, "type", event_type_name(t),
			   "name", vm->name);
	if (params && extra)
		json_object_update_missing(params, extra);
	json_decref(extra);
	if (!params)
		return seq;
	TAILQ_FOREACH_SAFE(s, &ev->subs, entry, tmp) {
		json_t *msg;

		if (!events_wanted(s, t, vm))
			continue;
		if (s->dropped)
			json_object_set_new(params, "dropped",
				json_integer((json_int_t)s->dropped));
		else
			json_object_del(params, "dropped");
		msg = jsonrpc_notification_new("event", json_incref(params));
		if (!msg || !ev->send || ev->send(s->conn, msg) < 0)
			s->dropped++;
		else
			s->dropped = 0;
		json_decref(msg);
	}
	json_decref(params);
	return seq;
}
