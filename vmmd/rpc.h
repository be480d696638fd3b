/* SPDX-License-Identifier: MIT */
/*
 * The method table and what is done once around every handler: decoding
 * the request, the role check, the parameter schema (unknown, missing and
 * mistyped parameters are refused naming them), and turning a handler's
 * negative errno into the protocol's error code.
 *
 * A handler answers its call exactly once, now or later, with rpc_reply()
 * or rpc_fail(); a call outlives its connection (the answer is dropped),
 * so a handler that waits need not care whether the client is still there.
 */
#ifndef VMMD_RPC_H
#define VMMD_RPC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "proto/policy.h"
#include "vmmd/conn.h"
#include "vmmd/queue.h"

struct vmmd;
struct rpc_call;

enum rpc_type {
	RPC_STRING,
	RPC_BOOL,
	RPC_INT,
	RPC_OBJECT,
	RPC_ARRAY,
};

struct rpc_param {
	const char *name;
	enum rpc_type type;
	bool required;
	long long min, max;	/* RPC_INT */
};

/* Returns 0 once it answered or will answer; a negative errno makes the
 * caller answer with a default message. */
typedef int (*rpc_handler)(struct rpc_call *call, json_t *params);

struct rpc_method {
	const char *name;
	enum policy_role role;		/* the least role */
	rpc_handler fn;
	const struct rpc_param *params;	/* NULL-name terminated */
	bool upgrades;			/* vm.console */
};

struct rpc_call {
	TAILQ_ENTRY(rpc_call) entry;
	struct conn *conn;		/* NULL once the client is gone */
	struct vmmd *d;
	json_t *id;
	const struct rpc_method *method;
	struct identity who;
};

extern const struct rpc_method rpc_methods[];
extern const size_t rpc_nr_methods;

/* The method named name, or NULL. */
const struct rpc_method *rpc_method_find(const char *name);

/*
 * The checks made before a handler runs: role (-EACCES), then params:
 * an object or absent (-EINVAL), no unknown member, the types and ranges
 * of the schema, required ones present. err names the parameter
 * ("forse: unknown parameter", "timeout: must be an integer 0..3600").
 */
int rpc_check(const struct rpc_method *m, const struct identity *who,
	      json_t *params, char *err, size_t errlen);

/* Handle one frame's payload from c. */
void rpc_dispatch(struct conn *c, const char *payload, size_t len);

/* Answer with result (stolen; an object) and free the call. */
void rpc_reply(struct rpc_call *call, json_t *result);

/*
 * Answer with the error for err (a negative errno) and a one-line message,
 * and free the call. Returns 0, for "return rpc_fail(...)" in handlers.
 */
int rpc_fail(struct rpc_call *call, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The connection is going away: its calls answer into the void. */
void rpc_call_detach(struct rpc_call *call);

/* Handlers, by family (rpc_daemon.c, rpc_vm.c). */
int rpc_daemon_info(struct rpc_call *call, json_t *params);
int rpc_events_subscribe(struct rpc_call *call, json_t *params);
int rpc_vm_create(struct rpc_call *call, json_t *params);
int rpc_vm_delete(struct rpc_call *call, json_t *params);
int rpc_vm_start(struct rpc_call *call, json_t *params);
int rpc_vm_stop(struct rpc_call *call, json_t *params);
int rpc_vm_kill(struct rpc_call *call, json_t *params);
int rpc_vm_pause(struct rpc_call *call, json_t *params);
int rpc_vm_resume(struct rpc_call *call, json_t *params);
int rpc_vm_restart(struct rpc_call *call, json_t *params);
int rpc_vm_list(struct rpc_call *call, json_t *params);
int rpc_vm_info(struct rpc_call *call, json_t *params);
int rpc_vm_set(struct rpc_call *call, json_t *params);
int rpc_vm_stats(struct rpc_call *call, json_t *params);
int rpc_vm_console(struct rpc_call *call, json_t *params);

#endif
