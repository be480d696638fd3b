/* SPDX-License-Identifier: MIT */
/* The asynchronous client of a vmm-run control socket (vmmrun.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "vmmd/queue.h"
#include "vmmd/vmmrun.h"

struct vmmrun_call {
	TAILQ_ENTRY(vmmrun_call) entry;
	int64_t id;
	json_t *msg;		/* the request, until it is written */
	vmmrun_reply_fn fn;	/* NULL: our own events.subscribe */
	void *arg;
};

TAILQ_HEAD(vmmrun_calls, vmmrun_call);

enum vmmrun_conn {
	VMMRUN_IDLE,
	VMMRUN_CONNECTING,
	VMMRUN_CONNECTED,
};

struct vmmrun {
	struct event_base *base;
	struct sockaddr_un sa;
	struct bufferevent *bev;
	enum vmmrun_conn conn;
	int64_t next_id;
	struct vmmrun_calls queue;	/* not written yet */
	struct vmmrun_calls sent;	/* waiting for their answer */
	struct event *pump;
	vmmrun_event_fn on_event;
	void *event_arg;
	unsigned int busy;	/* inside a callback of ours */
	bool dead;		/* freed while busy */
};

static void vmmrun_pump(evutil_socket_t fd, short what, void *arg);

int
vmmrun_new(struct event_base *base, const char *path, vmmrun_event_fn on_event,
	   void *event_arg, struct vmmrun **ret)
{
	struct vmmrun *c;

	if (strlen(path) >= sizeof(c->sa.sun_path))
		return -ENAMETOOLONG;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base = base;
	c->sa.sun_family = AF_UNIX;
	strcpy(c->sa.sun_path, path);
	c->next_id = 1;
	TAILQ_INIT(&c->queue);
	TAILQ_INIT(&c->sent);
	c->on_event = on_event;
	c->event_arg = event_arg;
	c->pump = event_new(base, -1, 0, vmmrun_pump, c);
	if (!c->pump) {
		free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

static void
vmmrun_release(struct vmmrun *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->pump);
	free(c);
}

/* Answer every call of list with err; fn may free c (busy defers it). */
static void
vmmrun_fail_list(struct vmmrun *c, struct vmmrun_calls *list, int err,
		 const char *msg)
{
	struct vmmrun_call *call;

	while ((call = TAILQ_FIRST(list))) {
		TAILQ_REMOVE(list, call, entry);
		json_decref(call->msg);
		if (call->fn)
			call->fn(call->arg, err, NULL, msg);
		free(call);
	}
	(void)c;
}

/* The socket is gone: every call fails, the next one reconnects. */
static void
vmmrun_disconnect(struct vmmrun *c, int err, const char *msg)
{
	struct vmmrun_calls all;

	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->conn = VMMRUN_IDLE;
	TAILQ_INIT(&all);
	TAILQ_CONCAT(&all, &c->sent, entry);
	TAILQ_CONCAT(&all, &c->queue, entry);
	c->busy++;
	vmmrun_fail_list(c, &all, err, msg);
	c->busy--;
	if (c->dead && !c->busy)
		vmmrun_release(c);
}

void
vmmrun_free(struct vmmrun *c)
{
	struct vmmrun_calls all;

	if (!c || c->dead)
		return;
	c->dead = true;
	TAILQ_INIT(&all);
	TAILQ_CONCAT(&all, &c->sent, entry);
	TAILQ_CONCAT(&all, &c->queue, entry);
	c->busy++;
	vmmrun_fail_list(c, &all, -ECANCELED, "the VM process went away");
	c->busy--;
	if (!c->busy)
		vmmrun_release(c);
}

unsigned int
vmmrun_pending(const struct vmmrun *c)
{
	const struct vmmrun_call *call;
	unsigned int n = 0;

	TAILQ_FOREACH(call, &c->queue, entry)
		n += call->fn != NULL;
	TAILQ_FOREACH(call, &c->sent, entry)
		n += call->fn != NULL;
	return n;
}

/* Bound the wait for answers only while answers are due. */
static void
vmmrun_timeouts(struct vmmrun *c)
{
	struct timeval tv = { VMMRUN_CALL_TIMEOUT_SEC, 0 };

	if (c->bev)
		bufferevent_set_timeouts(c->bev, TAILQ_EMPTY(&c->sent) ?
					 NULL : &tv, NULL);
}

static void
vmmrun_flush(struct vmmrun *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct vmmrun_call *call;

	while ((call = TAILQ_FIRST(&c->queue))) {
		TAILQ_REMOVE(&c->queue, call, entry);
		if (frame_evbuffer_add_json(out, call->msg,
					    VMMRUN_FRAME_MAX) < 0) {
			struct vmmrun_calls one;

			TAILQ_INIT(&one);
			TAILQ_INSERT_TAIL(&one, call, entry);
			vmmrun_fail_list(c, &one, -ENOMEM, "cannot frame the "
					 "request");
			continue;
		}
		json_decref(call->msg);
		call->msg = NULL;
		TAILQ_INSERT_TAIL(&c->sent, call, entry);
	}
	vmmrun_timeouts(c);
}

static void
vmmrun_handle(struct vmmrun *c, const char *payload, size_t len)
{
	struct jsonrpc_msg msg;
	struct vmmrun_call *call;

	if (jsonrpc_parse(payload, len, &msg, NULL) < 0)
		return;
	if (msg.kind == JSONRPC_NOTIFICATION) {
		if (c->on_event && strcmp(msg.method, "event") == 0 &&
		    json_is_object(msg.params))
			c->on_event(c->event_arg, msg.params);
		jsonrpc_msg_clear(&msg);
		return;
	}
	if (msg.kind != JSONRPC_RESULT && msg.kind != JSONRPC_ERROR) {
		jsonrpc_msg_clear(&msg);
		return;
	}
	TAILQ_FOREACH(call, &c->sent, entry)
		if (json_is_integer(msg.id) &&
		    json_integer_value(msg.id) == call->id)
			break;
	if (call) {
		TAILQ_REMOVE(&c->sent, call, entry);
		vmmrun_timeouts(c);
		if (call->fn && msg.kind == JSONRPC_RESULT)
			call->fn(call->arg, 0, msg.result, NULL);
		else if (call->fn)
			call->fn(call->arg, proto_err_to_errno(msg.error_code),
				 NULL, msg.error_message);
		free(call);
	}
	jsonrpc_msg_clear(&msg);
}

static void
vmmrun_read_cb(struct bufferevent *bev, void *arg)
{
	struct vmmrun *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	c->busy++;
	while (!c->dead && c->bev == bev) {
		char *payload;
		size_t len;
		int r = frame_evbuffer_take(in, VMMRUN_FRAME_MAX, &payload,
					    &len);

		if (r == 0)
			break;
		if (r < 0) {
			vmmrun_disconnect(c, -EPROTO, "bad frame from vmm-run");
			break;
		}
		vmmrun_handle(c, payload, len);
		free(payload);
	}
	c->busy--;
	if (c->dead && !c->busy)
		vmmrun_release(c);
}

static void
vmmrun_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct vmmrun *c = arg;
	char msg[160];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		c->conn = VMMRUN_CONNECTED;
		bufferevent_enable(c->bev, EV_READ);
		if (c->on_event) {
			struct vmmrun_call *sub = calloc(1, sizeof(*sub));

			if (sub) {
				sub->id = c->next_id++;
				sub->msg = jsonrpc_request_new(sub->id,
							"events.subscribe",
							NULL);
				if (sub->msg)
					TAILQ_INSERT_HEAD(&c->queue, sub, entry);
				else
					free(sub);
			}
		}
		vmmrun_flush(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		vmmrun_disconnect(c, -ETIMEDOUT, "vmm-run did not answer in "
				  "time");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		vmmrun_disconnect(c, -ECONNRESET, "vmm-run closed its control "
				  "socket");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		if (!e)
			e = ECONNRESET;
		snprintf(msg, sizeof(msg), "control socket %s: %s",
			 c->sa.sun_path, strerror(e));
		vmmrun_disconnect(c, -e, msg);
	}
}

static void
vmmrun_connect(struct vmmrun *c)
{
	char msg[160];
	int e;

	c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		vmmrun_disconnect(c, -ENOMEM, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, vmmrun_read_cb, NULL, vmmrun_event_cb, c);
	c->conn = VMMRUN_CONNECTING;
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->sa,
				       sizeof(c->sa)) < 0) {
		e = EVUTIL_SOCKET_ERROR();
		if (!e)
			e = ECONNREFUSED;
		snprintf(msg, sizeof(msg), "control socket %s: %s",
			 c->sa.sun_path, strerror(e));
		vmmrun_disconnect(c, -e, msg);
	}
}

static void
vmmrun_pump(evutil_socket_t fd, short what, void *arg)
{
	struct vmmrun *c = arg;

	(void)fd;
	(void)what;
	if (c->dead || TAILQ_EMPTY(&c->queue))
		return;
	c->busy++;
	if (c->conn == VMMRUN_IDLE)
		vmmrun_connect(c);
	else if (c->conn == VMMRUN_CONNECTED)
		vmmrun_flush(c);
	c->busy--;
	if (c->dead && !c->busy)
		vmmrun_release(c);
}

int
vmmrun_call(struct vmmrun *c, const char *method, json_t *params,
	    vmmrun_reply_fn fn, void *arg)
{
	struct vmmrun_call *call;

	if (!c || c->dead) {
		json_decref(params);
		return -ENOTCONN;
	}
	call = calloc(1, sizeof(*call));
	if (!call) {
		json_decref(params);
		return -ENOMEM;
	}
	call->id = c->next_id++;
	call->fn = fn;
	call->arg = arg;
	call->msg = jsonrpc_request_new(call->id, method, params);
	if (!call->msg) {
		free(call);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&c->queue, call, entry);
	/* Sent from the loop, so that fn never runs inside this call. */
	event_active(c->pump, EV_TIMEOUT, 0);
	return 0;
}
