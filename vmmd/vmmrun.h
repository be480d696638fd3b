/* SPDX-License-Identifier: MIT */
/*
 * The daemon's client of one vmm-run control socket (the VM's runtime
 * directory, control.sock): the same framing and JSON-RPC as vmmd's own
 * protocol, over a libevent bufferevent so that nothing waits on a VM.
 *
 * Calls are queued and sent once connected; vmm-run answers in order and
 * replies are matched by id. The client connects on its first call and
 * again after the socket closed; with an event function it subscribes to
 * vmm-run's "event" notifications on every connection.
 */
#ifndef VMMD_VMMRUN_H
#define VMMD_VMMRUN_H

#include <stddef.h>

#include <jansson.h>

struct event_base;
struct vmmrun;

/* Responses from vmm-run are ours to trust more than a client's; its
 * console.history of 16M base64 still has to fit. */
#define VMMRUN_FRAME_MAX	(32u * 1024u * 1024u)
/* A call that gets no answer in this time fails and the socket is closed. */
#define VMMRUN_CALL_TIMEOUT_SEC	10

/*
 * A reply: err 0 and result (borrowed, an object), or a negative errno and
 * a message (borrowed): vmm-run's error mapped back with
 * proto_err_to_errno(), or why the call could not be made (-ECONNREFUSED,
 * -ENOENT while the socket is not there, -ECONNRESET when it closed,
 * -ETIMEDOUT, -ECANCELED when the client is freed).
 */
typedef void (*vmmrun_reply_fn)(void *arg, int err, json_t *result,
				const char *msg);
/* A notification's params (borrowed). */
typedef void (*vmmrun_event_fn)(void *arg, json_t *params);

/* A client of the socket at path (not connected yet). 0, -ENAMETOOLONG
 * or -ENOMEM. */
int vmmrun_new(struct event_base *base, const char *path,
	       vmmrun_event_fn on_event, void *event_arg,
	       struct vmmrun **ret);

/*
 * Call method with params (stolen; NULL for none). fn is called exactly
 * once, never before vmmrun_call() returned. Returns 0, or -ENOMEM or
 * -ENOTCONN for a NULL or freed client (fn is not called then).
 */
int vmmrun_call(struct vmmrun *c, const char *method, json_t *params,
		vmmrun_reply_fn fn, void *arg);

/* Calls waiting for an answer or to be sent. */
unsigned int vmmrun_pending(const struct vmmrun *c);

/*
 * Close and free: every pending call gets -ECANCELED first (their
 * functions must not use c). Safe from within a reply or event function.
 * NULL is a no-op.
 */
void vmmrun_free(struct vmmrun *c);

#endif
