/* SPDX-License-Identifier: MIT */
/* The method table and the frame around every handler (rpc.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proto/errors.h"
#include "proto/jsonrpc.h"
#include "vmmd/conn.h"
#include "vmmd/daemon.h"
#include "vmmd/log.h"
#include "vmmd/rpc.h"

#define P_END { NULL, 0, false, 0, 0 }
#define P_NAME { "name", RPC_STRING, true, 0, 0 }

static const struct rpc_param p_none[] = { P_END };
static const struct rpc_param p_name[] = { P_NAME, P_END };
static const struct rpc_param p_create[] = {
	{ "definition", RPC_OBJECT, true, 0, 0 },
	{ "start", RPC_BOOL, false, 0, 0 },
	{ "replace", RPC_BOOL, false, 0, 0 },
	P_END,
};
static const struct rpc_param p_delete[] = {
	P_NAME,
	{ "force", RPC_BOOL, false, 0, 0 },
	P_END,
};
static const struct rpc_param p_stop[] = {
	P_NAME,
	{ "force", RPC_BOOL, false, 0, 0 },
	{ "timeout", RPC_INT, false, 0, 3600 },
	P_END,
};
static const struct rpc_param p_list[] = {
	{ "state", RPC_STRING, false, 0, 0 },
	P_END,
};
static const struct rpc_param p_set[] = {
	P_NAME,
	{ "changes", RPC_OBJECT, true, 0, 0 },
	P_END,
};
static const struct rpc_param p_console[] = {
	P_NAME,
	{ "write", RPC_BOOL, false, 0, 0 },
	{ "history", RPC_BOOL, false, 0, 0 },
	P_END,
};
static const struct rpc_param p_subscribe[] = {
	{ "types", RPC_ARRAY, false, 0, 0 },
	{ "names", RPC_ARRAY, false, 0, 0 },
	P_END,
};

/* PROTOCOL.md's method table; one row per method. */
const struct rpc_method rpc_methods[] = {
	{ "daemon.info", POLICY_ROLE_VIEWER, rpc_daemon_info, p_none, false },
	{ "vm.create", POLICY_ROLE_OPERATOR, rpc_vm_create, p_create, false },
	{ "vm.delete", POLICY_ROLE_OPERATOR, rpc_vm_delete, p_delete, false },
	{ "vm.start", POLICY_ROLE_OPERATOR, rpc_vm_start, p_name, false },
	{ "vm.stop", POLICY_ROLE_OPERATOR, rpc_vm_stop, p_stop, false },
	{ "vm.kill", POLICY_ROLE_OPERATOR, rpc_vm_kill, p_name, false },
	{ "vm.pause", POLICY_ROLE_OPERATOR, rpc_vm_pause, p_name, false },
	{ "vm.resume", POLICY_ROLE_OPERATOR, rpc_vm_resume, p_name, false },
	{ "vm.restart", POLICY_ROLE_OPERATOR, rpc_vm_restart, p_stop, false },
	{ "vm.list", POLICY_ROLE_VIEWER, rpc_vm_list, p_list, false },
	{ "vm.info", POLICY_ROLE_VIEWER, rpc_vm_info, p_name, false },
	{ "vm.set", POLICY_ROLE_OPERATOR, rpc_vm_set, p_set, false },
	{ "vm.stats", POLICY_ROLE_VIEWER, rpc_vm_stats, p_name, false },
	/* Writing to the console needs operator: the handler checks. */
	{ "vm.console", POLICY_ROLE_VIEWER, rpc_vm_console, p_console, true },
	{ "events.subscribe", POLICY_ROLE_VIEWER, rpc_events_subscribe,
	  p_subscribe, false },
};

const size_t rpc_nr_methods = sizeof(rpc_methods) / sizeof(rpc_methods[0]);

const struct rpc_method *
rpc_method_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < rpc_nr_methods; i++)
		if (strcmp(rpc_methods[i].name, name) == 0)
			return &rpc_methods[i];
	return NULL;
}

static const char *
rpc_type_name(enum rpc_type t)
{
	switch (t) {
	case RPC_STRING: return "a string";
	case RPC_BOOL: return "a boolean";
	case RPC_INT: return "an integer";
	case RPC_OBJECT: return "an object";
	case RPC_ARRAY: return "an array";
	}
	return "?";
}

static bool
rpc_type_ok(enum rpc_type t, json_t *v)
{
	switch (t) {
	case RPC_STRING: return json_is_string(v);
	case RPC_BOOL: return json_is_boolean(v);
	case RPC_INT: return json_is_integer(v);
	case RPC_OBJECT: return json_is_object(v);
	case RPC_ARRAY: return json_is_array(v);
	}
	return false;
}

int
rpc_check(const struct rpc_method *m, const struct identity *who,
	  json_t *params, char *err, size_t errlen)
{
	const struct rpc_param *p;
	const char *key;
	json_t *v;

	if (who->role < m->role) {
		snprintf(err, errlen, "%s needs the %s role; %s is %s",
			 m->name, policy_role_name(m->role), who->name,
			 policy_role_name(who->role));
		return -EACCES;
	}
	if (params && !json_is_object(params)) {
		snprintf(err, errlen, "params: must be an object");
		return -EINVAL;
	}
	if (params) {
		json_object_foreach(params, key, v) {
			char safe[64];

			for (p = m->params; p->name; p++)
				if (strcmp(p->name, key) == 0)
					break;
			if (!p->name) {
				snprintf(err, errlen, "%s: unknown parameter",
					 log_scrub(key, safe, sizeof(safe)));
				return -EINVAL;
			}
			if (!rpc_type_ok(p->type, v)) {
				snprintf(err, errlen, "%s: must be %s", p->name,
					 rpc_type_name(p->type));
				return -EINVAL;
			}
			if (p->type == RPC_INT && (json_integer_value(v) <
						   p->min ||
						   json_integer_value(v) > p->max)) {
				snprintf(err, errlen, "%s: must be an integer "
					 "%lld..%lld", p->name, p->min, p->max);
				return -EINVAL;
			}
		}
	}
	for (p = m->params; p->name; p++)
		if (p->required && (!params || !json_object_get(params,
								p->name))) {
			snprintf(err, errlen, "%s: required", p->name);
			return -EINVAL;
		}
	return 0;
}

static void
rpc_call_free(struct rpc_call *call)
{
	struct conn *c = call->conn;

	if (c) {
		TAILQ_REMOVE(&c->calls, call, entry);
		call->conn = NULL;
		conn_call_done(c);
	}
	json_decref(call->id);
	identity_clear(&call->who);
	free(call);
}

void
rpc_call_detach(struct rpc_call *call)
{
	/* The connection is being freed: it need not hear back. */
	call->conn = NULL;
}

static void
rpc_send(struct rpc_call *call, json_t *msg)
{
	if (!msg)
		return;
	if (call->conn && call->conn->mode != CONN_CONSOLE)
		conn_send(call->conn, msg, false);
	json_decref(msg);
}

void
rpc_reply(struct rpc_call *call, json_t *result)
{
	rpc_send(call, jsonrpc_result_new(call->id, result));
	rpc_call_free(call);
}

int
rpc_fail(struct rpc_call *call, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (call->method && call->method->upgrades && call->conn &&
	    call->conn->mode == CONN_UPGRADING)
		conn_leave_upgrade(call->conn);
	rpc_send(call, jsonrpc_error_from_errno(call->id, err, msg));
	log_debug(call->conn ? call->conn->logname : "client", "%s: %s",
		  call->method ? call->method->name : "?", msg);
	rpc_call_free(call);
	return 0;
}

void
rpc_dispatch(struct conn *c, const char *payload, size_t len)
{
	struct jsonrpc_msg msg;
	struct jsonrpc_perr perr = { 0 };
	const struct rpc_method *m;
	struct rpc_call *call;
	char err[512];
	int r;

	r = jsonrpc_parse(payload, len, &msg, &perr);
	if (r < 0) {
		json_t *e = r == -ENOMEM ? NULL :
			    jsonrpc_error_from_perr(&perr);

		if (e) {
			conn_send(c, e, false);
			json_decref(e);
		}
		jsonrpc_perr_clear(&perr);
		return;
	}
	if (msg.kind != JSONRPC_REQUEST) {
		/* Notifications are never answered; we send no requests,
		 * so responses from a client mean nothing. */
		jsonrpc_msg_clear(&msg);
		return;
	}
	if (c->deny[0]) {
		json_t *e = jsonrpc_error_new(msg.id,
					      PROTO_ERR_PERMISSION_DENIED,
					      c->deny, NULL);

		if (e) {
			conn_send(c, e, false);
			json_decref(e);
		}
		jsonrpc_msg_clear(&msg);
		conn_close(c, true);
		return;
	}
	m = rpc_method_find(msg.method);
	if (!m) {
		char safe[JSONRPC_METHOD_MAX + 1];
		json_t *e = jsonrpc_error_newf(msg.id,
			PROTO_ERR_METHOD_NOT_FOUND, "method \"%s\" not found",
			log_scrub(msg.method, safe, sizeof(safe)));

		if (e) {
			conn_send(c, e, false);
			json_decref(e);
		}
		jsonrpc_msg_clear(&msg);
		return;
	}
	call = calloc(1, sizeof(*call));
	if (!call || identity_copy(&call->who, &c->who) < 0) {
		json_t *e = jsonrpc_error_new(msg.id, PROTO_ERR_INTERNAL,
					      "out of memory", NULL);

		free(call);
		if (e) {
			conn_send(c, e, false);
			json_decref(e);
		}
		jsonrpc_msg_clear(&msg);
		return;
	}
	call->conn = c;
	call->d = c->d;
	call->id = json_incref(msg.id);
	call->method = m;
	TAILQ_INSERT_TAIL(&c->calls, call, entry);
	c->inflight++;
	r = rpc_check(m, &call->who, msg.params, err, sizeof(err));
	if (r < 0) {
		rpc_fail(call, r, "%s", err);
		jsonrpc_msg_clear(&msg);
		return;
	}
	log_debug(c->logname, "%s", m->name);
	/* Frames after vm.console wait until it is known whether they are
	 * frames or console input. */
	if (m->upgrades) {
		c->mode = CONN_UPGRADING;
		bufferevent_disable(c->bev, EV_READ);
	}
	r = m->fn(call, msg.params);
	if (r < 0)
		rpc_fail(call, r, "%s: %s", m->name, strerror(-r));
	jsonrpc_msg_clear(&msg);
}
