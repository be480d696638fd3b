/* SPDX-License-Identifier: MIT */
/*
 * One client connection, local or TLS: its identity (role and tenant), the
 * frames it sends (each checked against the maximum before anything is
 * allocated), the requests it has in flight (answered in any order, at
 * most requests_in_flight at a time: past that, it is not read until one
 * finishes), its event subscription, and, after vm.console, the raw console
 * bytes it exchanges instead of frames.
 *
 * A connection is never freed inside one of its callbacks' callees:
 * conn_close() marks it and frees it from the event loop.
 */
#ifndef VMMD_CONN_H
#define VMMD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "proto/policy.h"
#include "proto/tls.h"
#include "vmmd/queue.h"

struct bufferevent;
struct console;
struct event;
struct events_sub;
struct rpc_call;
struct vmmd;

struct identity {
	char name[TLS_IDENTITY_MAX + 16];	/* "uid:1000", a CN */
	enum policy_role role;
	char *tenant;		/* NULL: not bound to a tenant */
};

/* Copy src into dst (dst's old tenant is freed). 0 or -ENOMEM. */
int identity_copy(struct identity *dst, const struct identity *src);
void identity_clear(struct identity *id);

enum conn_mode {
	CONN_HANDSHAKE,		/* TLS: identity not known yet */
	CONN_FRAMES,		/* JSON-RPC frames */
	CONN_UPGRADING,		/* vm.console is attaching: input waits */
	CONN_CONSOLE,		/* raw console bytes */
};

struct conn {
	TAILQ_ENTRY(conn) entry;
	struct vmmd *d;
	uint64_t id;
	struct bufferevent *bev;
	bool tls;
	enum conn_mode mode;
	struct identity who;
	char deny[200];		/* set: the first request gets this refusal */
	unsigned int inflight;
	TAILQ_HEAD(, rpc_call) calls;
	struct events_sub *sub;
	struct console *console;
	struct event *free_ev;
	struct event *kick_ev;	/* read frames again, from the loop */
	bool closing;		/* no more input; freed once output is out */
	char logname[TLS_IDENTITY_MAX + 48];	/* "client 7 (uid:0)" */
};

/*
 * A connection on bev (taken: freed with the connection). tls: it is a TLS
 * bufferevent whose handshake is under way. Returns 0 and the connection,
 * which the daemon lists, or -ENOMEM.
 */
int conn_new(struct vmmd *d, struct bufferevent *bev, bool tls,
	     struct conn **ret);

/* The identity is known (the UNIX socket's peer, a verified certificate):
 * frames are read from now on. */
void conn_ready(struct conn *c);

/*
 * Queue msg (borrowed) as one frame. A response (event false) is always
 * queued, unless the client already has more than twice output_max unread,
 * which drops the client; an event is refused with -ENOBUFS past
 * output_max. Returns 0, -EPIPE on a closing connection, -ENOBUFS.
 */
int conn_send(struct conn *c, json_t *msg, bool event);

/* For events.send. */
int conn_send_event(struct conn *c, json_t *msg);

/* Close: after what is queued is written (flush), or at once. */
void conn_close(struct conn *c, bool flush);

/* A call of c finished: it may be read again. */
void conn_call_done(struct conn *c);

/*
 * The console is attached: from now on the connection carries its bytes.
 * Whatever the client sent after the vm.console request is console input.
 */
void conn_enter_console(struct conn *c, struct console *con);

/* vm.console failed: back to frames. */
void conn_leave_upgrade(struct conn *c);

/* Close every connection (the daemon is stopping). */
void conn_close_all(struct vmmd *d);

#endif
