/* SPDX-License-Identifier: MIT */
/*
 * Events: vm.created, vm.deleted, vm.updated and vm.state, pushed to the
 * connections that called events.subscribe as "event" notifications
 * (PROTOCOL.md). Every event of the daemon takes the next seq; a
 * subscriber that does not read fast enough loses events instead of
 * making the daemon queue them without bound, and the next event it does
 * get says how many it lost ("dropped": N) besides the gap in seq.
 */
#ifndef VMMD_EVENTS_H
#define VMMD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "vmmd/queue.h"

struct conn;
struct vm;

enum event_type {
	EVENT_VM_CREATED,
	EVENT_VM_DELETED,
	EVENT_VM_UPDATED,
	EVENT_VM_STATE,
	EVENT_TYPE_MAX,
};

#define EVENT_TYPES_ALL	((1u << EVENT_TYPE_MAX) - 1)

struct events_sub {
	TAILQ_ENTRY(events_sub) entry;
	struct events *ev;
	struct conn *conn;
	unsigned int types;	/* bit per enum event_type */
	char **names;		/* NULL: every VM the caller may see */
	unsigned int nr_names;
	char *tenant;		/* NULL: no tenant filter */
	uint64_t dropped;	/* since the last event delivered */
};

struct events {
	uint64_t seq;		/* of the last event */
	TAILQ_HEAD(, events_sub) subs;
	/* Delivery, set by the daemon (conn.c); tests put their own. Returns
	 * 0, or -ENOBUFS when the connection's queue is full. */
	int (*send)(struct conn *c, json_t *msg);
};

void events_init(struct events *ev);
/* Drops every subscription (the connections stay). */
void events_fini(struct events *ev);

/* "vm.state" to EVENT_VM_STATE; 0 or -EINVAL. */
int event_type_parse(const char *s, enum event_type *ret);
const char *event_type_name(enum event_type t);

/*
 * Subscribe conn to the types (mask) of events about the VMs named in
 * names (a JSON array of strings, borrowed; NULL for all) that tenant
 * (NULL: any) may see. Returns 0 and a new subscription, or -ENOMEM.
 */
int events_subscribe(struct events *ev, struct conn *conn,
		     unsigned int types, json_t *names, const char *tenant,
		     struct events_sub **ret);

/* Remove and free a subscription; NULL is a no-op. */
void events_unsubscribe(struct events_sub *s);

/*
 * Emit an event about vm: its members are type, name, seq, time and those
 * of extra (an object, stolen, may be NULL). Returns the event's seq.
 */
uint64_t events_emit(struct events *ev, enum event_type t,
		     const struct vm *vm, json_t *extra);

/* "2024-05-01T12:00:00.123Z" for a CLOCK_REALTIME time (buf >= 32). */
void events_format_time(const struct timespec *ts, bool ms, char *buf,
			size_t len);

#endif
