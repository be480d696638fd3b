/* SPDX-License-Identifier: MIT */
/*
 * The VM state machine (every allowed and refused transition), the
 * registry, waiters, and the vm.state / vm.created events it emits with
 * their filters (types, names, tenants) and drop accounting.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "vmmd/config.h"
#include "vmmd/daemon.h"
#include "vmmd/events.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"

/* A subscriber standing in for a connection: it collects what it gets. */
struct sink {
	json_t *got[32];
	unsigned int nr;
	bool full;		/* refuse like a client that does not read */
};

static int
sink_send(struct conn *c, json_t *msg)
{
	struct sink *s = (struct sink *)c;

	if (s->full)
		return -ENOBUFS;
	assert_true(s->nr < 32);
	s->got[s->nr++] = json_incref(msg);
	return 0;
}

static void
sink_clear(struct sink *s)
{
	unsigned int i;

	for (i = 0; i < s->nr; i++)
		json_decref(s->got[i]);
	s->nr = 0;
}

static json_t *
sink_params(struct sink *s, unsigned int i)
{
	assert_true(i < s->nr);
	assert_string_equal(json_string_value(json_object_get(s->got[i],
							      "method")),
			    "event");
	return json_object_get(s->got[i], "params");
}

struct fixture {
	struct event_base *base;
	struct config *cfg;
	struct vmmd *d;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	log_set_level(LOG_LEVEL_ERROR);
	f->base = event_base_new();
	if (!f->base || config_new(&f->cfg) < 0 ||
	    daemon_new_bare(f->base, f->cfg, &f->d) < 0)
		return -1;
	f->d->events.send = sink_send;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	daemon_free_bare(f->d);
	config_free(f->cfg);
	event_base_free(f->base);
	free(f);
	return 0;
}

static struct vm *
add_vm(struct fixture *f, const char *name, const char *tenant)
{
	json_t *j = json_pack("{s:s, s:s}", "name", name, "kernel",
			      "/boot/vmlinuz");
	struct vmdef *def;
	struct vm *vm;
	char err[128];

	assert_int_equal(vmdef_from_json(j, 0, &def, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(registry_add(&f->d->reg, f->d, def, tenant, &vm), 0);
	return vm;
}

static void
test_state_names(void **state)
{
	enum vm_state s, back;

	(void)state;
	for (s = 0; s < VM_STATE_MAX; s++) {
		assert_int_equal(vm_state_parse(vm_state_name(s), &back), 0);
		assert_int_equal(back, s);
	}
	assert_string_equal(vm_state_name(VM_STATE_DEFINED), "defined");
	assert_string_equal(vm_state_name(VM_STATE_STOPPED), "stopped");
	assert_string_equal(vm_state_name(VM_STATE_STARTING), "starting");
	assert_string_equal(vm_state_name(VM_STATE_RUNNING), "running");
	assert_string_equal(vm_state_name(VM_STATE_PAUSED), "paused");
	assert_string_equal(vm_state_name(VM_STATE_STOPPING), "stopping");
	assert_string_equal(vm_state_name(VM_STATE_CRASHED), "crashed");
	assert_string_equal(vm_state_name(VM_STATE_MAX), "unknown");
	assert_int_equal(vm_state_parse("failed", &back), -EINVAL);
	assert_int_equal(vm_state_parse("Running", &back), -EINVAL);
	assert_int_equal(vm_state_parse(NULL, &back), -EINVAL);

	assert_false(vm_state_has_process(VM_STATE_DEFINED));
	assert_false(vm_state_has_process(VM_STATE_STOPPED));
	assert_false(vm_state_has_process(VM_STATE_CRASHED));
	assert_true(vm_state_is_down(VM_STATE_DEFINED));
	assert_true(vm_state_is_down(VM_STATE_STOPPED));
	assert_true(vm_state_is_down(VM_STATE_CRASHED));
	assert_false(vm_state_is_down(VM_STATE_STARTING));
	assert_false(vm_state_is_down(VM_STATE_STOPPING));
	assert_true(vm_state_has_process(VM_STATE_STARTING));
	assert_true(vm_state_has_process(VM_STATE_RUNNING));
	assert_true(vm_state_has_process(VM_STATE_PAUSED));
	assert_true(vm_state_has_process(VM_STATE_STOPPING));
}

static void
test_transitions(void **state)
{
	/* The whole table: [from][to], 1 where allowed. */
#define X VM_STATE_MAX
	static const char allowed[X][X] = {
		/*    defined stopped starting running paused stopping crashed */
		[VM_STATE_DEFINED]  = { 0, 0, 1, 0, 0, 0, 0 },
		[VM_STATE_STOPPED]  = { 0, 0, 1, 0, 0, 0, 0 },
		[VM_STATE_STARTING] = { 0, 1, 0, 1, 1, 0, 1 },
		[VM_STATE_RUNNING]  = { 0, 1, 1, 0, 1, 1, 1 },
		[VM_STATE_PAUSED]   = { 0, 1, 1, 1, 0, 1, 1 },
		[VM_STATE_STOPPING] = { 0, 1, 0, 1, 1, 0, 0 },
		[VM_STATE_CRASHED]  = { 0, 0, 1, 0, 0, 0, 0 },
	};
	enum vm_state from, to;

	(void)state;
	for (from = 0; from < X; from++)
		for (to = 0; to < X; to++)
			if (vm_state_allowed(from, to) != allowed[from][to])
				fail_msg("%s -> %s: expected %s",
					 vm_state_name(from), vm_state_name(to),
					 allowed[from][to] ? "allowed" :
					 "refused");
#undef X
	assert_false(vm_state_allowed(VM_STATE_MAX, VM_STATE_STOPPED));
	assert_false(vm_state_allowed(VM_STATE_STOPPED, VM_STATE_MAX));
}

static void
test_set_state_emits_events(void **state)
{
	struct fixture *f = *state;
	struct sink all = { 0 };
	struct events_sub *sub;
	struct vm *vm;
	json_t *p;

	assert_int_equal(events_subscribe(&f->d->events, (struct conn *)&all,
					  EVENT_TYPES_ALL, NULL, NULL, &sub), 0);
	vm = add_vm(f, "web1", NULL);
	assert_int_equal(vm->state, VM_STATE_DEFINED);

	/* Refused: nothing changes, nothing is emitted. */
	assert_int_equal(vm_set_state(vm, VM_STATE_RUNNING, "no"), -EINVAL);
	assert_int_equal(vm->state, VM_STATE_DEFINED);
	assert_int_equal(all.nr, 0);
	/* The same state again is no change at all. */
	assert_int_equal(vm_set_state(vm, VM_STATE_DEFINED, "again"), 0);
	assert_int_equal(all.nr, 0);

	assert_int_equal(vm_set_state(vm, VM_STATE_STARTING, "vm.%s",
				      "start"), 0);
	vm->pid = 4242;
	assert_int_equal(vm_set_state(vm, VM_STATE_RUNNING, "up"), 0);
	vm->pid = 0;
	assert_int_equal(vm_set_state(vm, VM_STATE_CRASHED, "guest crashed"),
			 0);
	assert_string_equal(vm->state_reason, "guest crashed");
	assert_int_equal(all.nr, 3);

	p = sink_params(&all, 0);
	assert_string_equal(json_string_value(json_object_get(p, "type")),
			    "vm.state");
	assert_string_equal(json_string_value(json_object_get(p, "name")),
			    "web1");
	assert_string_equal(json_string_value(json_object_get(p, "state")),
			    "starting");
	assert_string_equal(json_string_value(json_object_get(p, "previous")),
			    "defined");
	assert_string_equal(json_string_value(json_object_get(p, "reason")),
			    "vm.start");
	assert_null(json_object_get(p, "pid"));
	assert_null(json_object_get(p, "dropped"));
	/* RFC 3339, UTC, milliseconds. */
	assert_int_equal(strlen(json_string_value(json_object_get(p, "time"))),
			 24);
	assert_int_equal(json_string_value(json_object_get(p, "time"))[23],
			 'Z');
	p = sink_params(&all, 1);
	assert_string_equal(json_string_value(json_object_get(p, "state")),
			    "running");
	assert_int_equal(json_integer_value(json_object_get(p, "pid")), 4242);
	/* seq goes up by one per event of the daemon. */
	assert_int_equal(json_integer_value(json_object_get(sink_params(&all,
		1), "seq")), json_integer_value(json_object_get(
		sink_params(&all, 0), "seq")) + 1);
	assert_int_equal(json_integer_value(json_object_get(sink_params(&all,
		2), "seq")), json_integer_value(json_object_get(
		sink_params(&all, 0), "seq")) + 2);
	sink_clear(&all);
	events_unsubscribe(sub);
}

static void
test_event_filters_and_drops(void **state)
{
	struct fixture *f = *state;
	struct sink a = { 0 }, created = { 0 }, named = { 0 }, slow = { 0 };
	struct events_sub *sa, *sc, *sn, *ss;
	json_t *names = json_pack("[s]", "b1");
	struct vm *va, *vb, *vn;
	json_t *p;

	/* Tenant a's identity; only vm.created; only VM "b1"; a slow one. */
	assert_int_equal(events_subscribe(&f->d->events, (struct conn *)&a,
					  EVENT_TYPES_ALL, NULL, "a", &sa), 0);
	assert_int_equal(events_subscribe(&f->d->events,
					  (struct conn *)&created,
					  1u << EVENT_VM_CREATED, NULL, NULL,
					  &sc), 0);
	assert_int_equal(events_subscribe(&f->d->events, (struct conn *)&named,
					  EVENT_TYPES_ALL, names, NULL, &sn),
			 0);
	assert_int_equal(events_subscribe(&f->d->events, (struct conn *)&slow,
					  EVENT_TYPES_ALL, NULL, NULL, &ss), 0);
	json_decref(names);

	va = add_vm(f, "a1", "a");
	vb = add_vm(f, "b1", "b");
	vn = add_vm(f, "n1", NULL);
	assert_true(vm_visible(va, "a"));
	assert_false(vm_visible(vb, "a"));
	assert_false(vm_visible(vn, "a"));
	assert_true(vm_visible(vb, NULL));

	slow.full = true;
	events_emit(&f->d->events, EVENT_VM_CREATED, va, NULL);
	events_emit(&f->d->events, EVENT_VM_CREATED, vb, NULL);
	events_emit(&f->d->events, EVENT_VM_CREATED, vn, NULL);
	vm_set_state(vb, VM_STATE_STARTING, "x");
	vm_set_state(va, VM_STATE_STARTING, "x");

	/* Tenant a sees its own VM only, never another tenant's. */
	assert_int_equal(a.nr, 2);
	assert_string_equal(json_string_value(json_object_get(
		sink_params(&a, 0), "name")), "a1");
	assert_string_equal(json_string_value(json_object_get(
		sink_params(&a, 1), "type")), "vm.state");
	/* Only vm.created, for all three. */
	assert_int_equal(created.nr, 3);
	/* Only "b1": created and its state. */
	assert_int_equal(named.nr, 2);
	assert_string_equal(json_string_value(json_object_get(
		sink_params(&named, 1), "state")), "starting");
	/* The slow one lost five; the next one it gets says so. */
	assert_int_equal(slow.nr, 0);
	slow.full = false;
	events_emit(&f->d->events, EVENT_VM_UPDATED, vn, json_pack("{s:s}",
		    "extra", "member"));
	assert_int_equal(slow.nr, 1);
	p = sink_params(&slow, 0);
	assert_int_equal(json_integer_value(json_object_get(p, "dropped")), 5);
	assert_string_equal(json_string_value(json_object_get(p, "extra")),
			    "member");
	assert_string_equal(json_string_value(json_object_get(p, "type")),
			    "vm.updated");
	events_emit(&f->d->events, EVENT_VM_DELETED, vn, NULL);
	assert_null(json_object_get(sink_params(&slow, 1), "dropped"));
	assert_int_equal(json_integer_value(json_object_get(sink_params(&slow,
		1), "seq")), json_integer_value(json_object_get(p, "seq")) + 1);

	sink_clear(&a);
	sink_clear(&created);
	sink_clear(&named);
	sink_clear(&slow);
	events_unsubscribe(sa);
	events_unsubscribe(sc);
	events_unsubscribe(sn);
	events_unsubscribe(ss);
	events_unsubscribe(NULL);
}

static void
test_event_types(void **state)
{
	enum event_type t;

	(void)state;
	assert_int_equal(event_type_parse("vm.created", &t), 0);
	assert_int_equal(t, EVENT_VM_CREATED);
	assert_int_equal(event_type_parse("vm.state", &t), 0);
	assert_int_equal(t, EVENT_VM_STATE);
	assert_int_equal(event_type_parse("vm.crashed", &t), -EINVAL);
	assert_string_equal(event_type_name(EVENT_VM_DELETED), "vm.deleted");
	assert_null(event_type_name(EVENT_TYPE_MAX));
}

static void
test_registry(void **state)
{
	struct fixture *f = *state;
	struct vmdef *def;
	struct vm *a, *b, *c, *vm;
	char err[128];
	json_t *j;
	const char *order[3];
	unsigned int i = 0;

	c = add_vm(f, "c", NULL);
	a = add_vm(f, "a", "t");
	b = add_vm(f, "b", NULL);
	assert_int_equal(f->d->reg.count, 3);
	TAILQ_FOREACH(vm, &f->d->reg.vms, entry)
		order[i++] = vm->name;
	assert_string_equal(order[0], "a");
	assert_string_equal(order[1], "b");
	assert_string_equal(order[2], "c");
	assert_ptr_equal(registry_find(&f->d->reg, "b"), b);
	assert_null(registry_find(&f->d->reg, "d"));
	assert_null(registry_find(&f->d->reg, NULL));
	assert_string_equal(a->tenant, "t");

	j = json_pack("{s:s, s:s}", "name", "a", "kernel", "/k");
	assert_int_equal(vmdef_from_json(j, 0, &def, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(registry_add(&f->d->reg, f->d, def, NULL, &vm),
			 -EEXIST);

	c->pid = 777;
	assert_ptr_equal(registry_find_pid(&f->d->reg, 777), c);
	assert_null(registry_find_pid(&f->d->reg, 0));
	c->pid = 0;

	/* A reference keeps a removed VM alive for whoever still holds it. */
	vm_ref(b);
	registry_remove(&f->d->reg, b);
	assert_true(b->removed);
	assert_int_equal(f->d->reg.count, 2);
	assert_null(registry_find(&f->d->reg, "b"));
	registry_remove(&f->d->reg, b);
	assert_int_equal(f->d->reg.count, 2);
	assert_string_equal(b->name, "b");
	vm_unref(b);
}

struct fired {
	int calls;
	int err;
	char msg[64];
};

static void
on_fire(struct vm *vm, void *arg, int err, const char *msg)
{
	struct fired *fi = arg;

	(void)vm;
	fi->calls++;
	fi->err = err;
	snprintf(fi->msg, sizeof(fi->msg), "%s", msg ? msg : "");
}

static void
test_waiters(void **state)
{
	struct fixture *f = *state;
	struct vm *vm = add_vm(f, "w", NULL);
	struct vm_waiter w1, w2, w3;
	struct fired f1 = { 0 }, f2 = { 0 }, f3 = { 0 };

	vm_wait_add(vm, &w1, VM_WAIT_STARTED, on_fire, &f1);
	vm_wait_add(vm, &w2, VM_WAIT_EXIT, on_fire, &f2);
	vm_wait_add(vm, &w3, VM_WAIT_EXIT, on_fire, &f3);
	vm_wait_remove(vm, &w3);
	vm_wait_remove(vm, &w3);	/* not queued any more: fine */

	vm_wait_fire(vm, VM_WAIT_STARTED, -EIO, "could not start");
	assert_int_equal(f1.calls, 1);
	assert_int_equal(f1.err, -EIO);
	assert_string_equal(f1.msg, "could not start");
	assert_int_equal(f2.calls, 0);

	vm_wait_fire(vm, VM_WAIT_EXIT, 0, NULL);
	vm_wait_fire(vm, VM_WAIT_EXIT, 0, NULL);
	vm_wait_fire(vm, VM_WAIT_STARTED, 0, NULL);
	assert_int_equal(f1.calls, 1);
	assert_int_equal(f2.calls, 1);
	assert_int_equal(f2.err, 0);
	assert_int_equal(f3.calls, 0);
	assert_true(TAILQ_EMPTY(&vm->waiters));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_names),
		cmocka_unit_test(test_transitions),
		cmocka_unit_test_setup_teardown(test_set_state_emits_events,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_filters_and_drops,
						setup, teardown),
		cmocka_unit_test(test_event_types),
		cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waiters, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
