/* SPDX-License-Identifier: MIT */
/* Client connections: frames in, responses and events out (conn.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "vmmd/conn.h"
#include "vmmd/console.h"
#include "vmmd/daemon.h"
#include "vmmd/events.h"
#include "vmmd/listener.h"
#include "vmmd/log.h"
#include "vmmd/rpc.h"

/* A TLS client has this long to finish its handshake, a refused one to
 * send the request it is refused on. */
#define CONN_HANDSHAKE_SEC	10
/* Output still unwritten this long after a close is given up on. */
#define CONN_LINGER_SEC		5

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_free_cb(evutil_socket_t fd, short what, void *arg);
static void conn_kick_cb(evutil_socket_t fd, short what, void *arg);

int
identity_copy(struct identity *dst, const struct identity *src)
{
	char *t = NULL;

	if (src->tenant && !(t = strdup(src->tenant)))
		return -ENOMEM;
	free(dst->tenant);
	memcpy(dst->name, src->name, sizeof(dst->name));
	dst->role = src->role;
	dst->tenant = t;
	return 0;
}

void
identity_clear(struct identity *id)
{
	free(id->tenant);
	id->tenant = NULL;
	id->role = POLICY_ROLE_NONE;
	id->name[0] = '\0';
}

static void
conn_set_timeout(struct conn *c, unsigned int sec)
{
	struct timeval tv = { sec, 0 };

	bufferevent_set_timeouts(c->bev, sec ? &tv : NULL, NULL);
}

int
conn_new(struct vmmd *d, struct bufferevent *bev, bool tls, struct conn **ret)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		bufferevent_free(bev);
		return -ENOMEM;
	}
	c->free_ev = event_new(d->base, -1, 0, conn_free_cb, c);
	c->kick_ev = event_new(d->base, -1, 0, conn_kick_cb, c);
	if (!c->free_ev || !c->kick_ev) {
		if (c->free_ev)
			event_free(c->free_ev);
		if (c->kick_ev)
			event_free(c->kick_ev);
		free(c);
		bufferevent_free(bev);
		return -ENOMEM;
	}
	c->d = d;
	c->id = ++d->next_conn_id;
	c->bev = bev;
	c->tls = tls;
	c->mode = tls ? CONN_HANDSHAKE : CONN_FRAMES;
	TAILQ_INIT(&c->calls);
	snprintf(c->logname, sizeof(c->logname), "client %llu",
		 (unsigned long long)c->id);
	TAILQ_INSERT_TAIL(&d->conns, c, entry);
	d->nr_conns++;
	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	if (tls) {
		conn_set_timeout(c, CONN_HANDSHAKE_SEC);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	}
	*ret = c;
	return 0;
}

void
conn_ready(struct conn *c)
{
	char safe[sizeof(c->who.name)];

	c->mode = CONN_FRAMES;
	snprintf(c->logname, sizeof(c->logname), "client %llu (%s)",
		 (unsigned long long)c->id,
		 log_scrub(c->who.name, safe, sizeof(safe)));
	conn_set_timeout(c, c->deny[0] ? CONN_HANDSHAKE_SEC :
			 c->d->cfg->idle_timeout_sec);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		conn_read_cb(c->bev, c);
}

static void
conn_schedule_free(struct conn *c)
{
	event_active(c->free_ev, EV_TIMEOUT, 0);
}

void
conn_close(struct conn *c, bool flush)
{
	if (!c->closing) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		events_unsubscribe(c->sub);
		c->sub = NULL;
	}
	if (flush && evbuffer_get_length(bufferevent_get_output(c->bev))) {
		/* conn_write_cb frees it once the output is out. */
		bufferevent_set_timeouts(c->bev, NULL,
			&(struct timeval){ CONN_LINGER_SEC, 0 });
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	conn_schedule_free(c);
}

static void
conn_free(struct conn *c)
{
	struct rpc_call *call, *t;

	TAILQ_FOREACH_SAFE(call, &c->calls, entry, t) {
		TAILQ_REMOVE(&c->calls, call, entry);
		rpc_call_detach(call);
	}
	events_unsubscribe(c->sub);
	if (c->console)
		console_client_gone(c->console);
	TAILQ_REMOVE(&c->d->conns, c, entry);
	c->d->nr_conns--;
	log_debug(c->logname, "closed");
	bufferevent_free(c->bev);
	event_free(c->free_ev);
	event_free(c->kick_ev);
	identity_clear(&c->who);
	free(c);
}

static void
conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_free(arg);
}

void
conn_close_all(struct vmmd *d)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&d->conns)))
		conn_free(c);
}

int
conn_send(struct conn *c, json_t *msg, bool event)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t queued = evbuffer_get_length(out);
	size_t max = c->d->cfg->output_max;
	int r;

	if (c->closing || c->mode == CONN_CONSOLE)
		return -EPIPE;
	if (event && queued > max)
		return -ENOBUFS;
	if (!event && queued > 2 * max) {
		log_warn(c->logname, "does not read its responses (%zu bytes "
			 "queued): dropped", queued);
		conn_close(c, false);
		return -ENOBUFS;
	}
	r = frame_evbuffer_add_json(out, msg, c->d->cfg->frame_max);
	if (r == -EMSGSIZE && !event) {
		json_t *e = jsonrpc_error_new(json_object_get(msg, "id"),
			PROTO_ERR_LIMIT_EXCEEDED, "the result is larger than "
			"the maximum frame size", NULL);

		if (e)
			r = frame_evbuffer_add_json(out, e,
						    c->d->cfg->frame_max);
		json_decref(e);
	}
	return r;
}

int
conn_send_event(struct conn *c, json_t *msg)
{
	return conn_send(c, msg, true);
}

/* Read and dispatch whole frames while the in-flight limit allows. */
static void
conn_read_frames(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t max = c->d->cfg->frame_max;

	while (!c->closing && c->mode == CONN_FRAMES) {
		char *payload;
		size_t len;
		int r;

		if (c->inflight >= c->d->cfg->requests_in_flight) {
			/* Read again once a call finishes. */
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		r = frame_evbuffer_take(in, max, &payload, &len);
		if (r == 0)
			break;
		if (r == -EMSGSIZE || r == -EBADMSG) {
			uint8_t hdr[PROTO_FRAME_HDR];
			json_t *e;

			evbuffer_copyout(in, hdr, sizeof(hdr));
			if (r == -EMSGSIZE)
				e = jsonrpc_error_newf(NULL,
					PROTO_ERR_LIMIT_EXCEEDED, "frame of "
					"%u bytes is larger than the maximum "
					"(%zu)", (unsigned int)hdr[0] << 24 |
					(unsigned int)hdr[1] << 16 |
					(unsigned int)hdr[2] << 8 | hdr[3],
					max);
			else
				e = jsonrpc_error_new(NULL,
					PROTO_ERR_INVALID_REQUEST,
					"zero-length frame", NULL);
			if (e)
				conn_send(c, e, false);
			json_decref(e);
			log_info(c->logname, "%s: closing",
				 r == -EMSGSIZE ? "oversized frame" :
				 "zero-length frame");
			conn_close(c, true);
			return;
		}
		if (r < 0) {
			conn_close(c, false);
			return;
		}
		rpc_dispatch(c, payload, len);
		free(payload);
	}
	if (!c->closing && c->mode == CONN_FRAMES)
		bufferevent_enable(c->bev, EV_READ);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	switch (c->mode) {
	case CONN_HANDSHAKE:
	case CONN_UPGRADING:
		/* Kept for later. */
		break;
	case CONN_CONSOLE:
		console_client_input(c->console, in);
		break;
	case CONN_FRAMES:
		conn_read_frames(c);
		break;
	}
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->closing) {
		conn_schedule_free(c);
		return;
	}
	if (c->mode == CONN_CONSOLE && c->console)
		console_client_drained(c->console);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake is done. */
		listener_tls_established(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->closing) {
			conn_schedule_free(c);
			return;
		}
		if (c->mode == CONN_HANDSHAKE) {
			log_info(c->logname, "TLS handshake timed out");
			conn_close(c, false);
			return;
		}
		if (!c->deny[0] && (c->sub || c->inflight ||
				    c->mode != CONN_FRAMES)) {
			/* Waiting for events or answers is not idling. */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		log_info(c->logname, "idle for too long: closed");
		conn_close(c, false);
		return;
	}
	if (what & BEV_EVENT_ERROR && c->mode == CONN_HANDSHAKE)
		listener_tls_failed(c);
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->closing) {
			conn_schedule_free(c);
			return;
		}
		if (what & BEV_EVENT_EOF &&
		    evbuffer_get_length(bufferevent_get_input(bev)) &&
		    c->mode == CONN_FRAMES)
			log_info(c->logname, "closed in the middle of a frame");
		conn_close(c, false);
	}
}

/* A call finished: maybe read again (from the loop, not from inside the
 * handler that answered). */
static void
conn_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	if (!c->closing && c->mode == CONN_FRAMES)
		conn_read_frames(c);
}

void
conn_call_done(struct conn *c)
{
	bool was_full = c->inflight >= c->d->cfg->requests_in_flight;

	if (c->inflight)
		c->inflight--;
	if (was_full && !c->closing && c->mode == CONN_FRAMES)
		event_active(c->kick_ev, EV_TIMEOUT, 0);
}

void
conn_enter_console(struct conn *c, struct console *con)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	c->mode = CONN_CONSOLE;
	c->console = con;
	events_unsubscribe(c->sub);
	c->sub = NULL;
	/* A console may be quiet for days. */
	conn_set_timeout(c, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(in))
		console_client_input(con, in);
}

void
conn_leave_upgrade(struct conn *c)
{
	if (c->mode != CONN_UPGRADING)
		return;
	c->mode = CONN_FRAMES;
	if (!c->closing)
		event_active(c->kick_ev, EV_TIMEOUT, 0);
}
