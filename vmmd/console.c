/* SPDX-License-Identifier: MIT */
/* Console attachments: a client spliced to the VM's console hub
 * (console.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "vmmd/conn.h"
#include "vmmd/console.h"
#include "vmmd/daemon.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"
#include "vmmd/rpc.h"
#include "vmmd/supervise.h"
#include "vmmd/vmmrun.h"

/* Queued towards the client before the hub is read no more. */
#define CONSOLE_CLIENT_HIGH	(256u * 1024u)
/* Queued towards the guest before the client is read no more. */
#define CONSOLE_HUB_HIGH	(64u * 1024u)

struct console {
	TAILQ_ENTRY(console) entry;	/* in vm->consoles */
	struct vm *vm;			/* a reference */
	struct conn *conn;		/* NULL once it is gone */
	struct rpc_call *call;		/* until answered */
	struct bufferevent *hub;
	bool writer;
	bool history;
	bool attached;			/* the result went out */
	size_t history_bytes;
	size_t skip;			/* hub bytes still to drop */
};

size_t
console_history_bytes(unsigned long long written, size_t ring)
{
	return written < ring ? (size_t)written : ring;
}

static void
console_free(struct console *con)
{
	struct vm *vm = con->vm;

	if (con->hub)
		bufferevent_free(con->hub);
	TAILQ_REMOVE(&vm->consoles, con, entry);
	vm->nr_consoles--;
	if (vm->writer == con)
		vm->writer = NULL;
	vm_unref(vm);
	free(con);
}

/* Before the result went out: answer the call with err, free. */
static void
console_fail(struct console *con, int err, const char *msg)
{
	struct rpc_call *call = con->call;

	con->call = NULL;
	console_free(con);
	rpc_fail(call, err, "%s", msg);
}

static void
console_hub_read(struct bufferevent *bev, void *arg)
{
	struct console *con = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out;

	if (con->skip) {
		size_t n = evbuffer_get_length(in);

		if (n > con->skip)
			n = con->skip;
		evbuffer_drain(in, n);
		con->skip -= n;
	}
	if (!con->attached || !con->conn) {
		/* Not spliced yet: kept until then. */
		return;
	}
	out = bufferevent_get_output(con->conn->bev);
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) > CONSOLE_CLIENT_HIGH)
		bufferevent_disable(bev, EV_READ);
}

static void
console_hub_write(struct bufferevent *bev, void *arg)
{
	struct console *con = arg;

	(void)bev;
	/* The guest took what the writer sent: read the writer again. */
	if (con->attached && con->conn && !con->conn->closing)
		bufferevent_enable(con->conn->bev, EV_READ);
}

static void
console_reply(struct console *con)
{
	struct rpc_call *call = con->call;
	struct conn *c = call->conn;
	json_t *res;

	if (!c || c->closing) {
		/* Nobody to attach. */
		con->call = NULL;
		rpc_reply(call, NULL);
		console_free(con);
		return;
	}
	res = json_pack("{s:s, s:b, s:I}", "name", con->vm->name,
			"writer", con->writer,
			"history_bytes", (json_int_t)(con->history ?
						      con->history_bytes : 0));
	con->call = NULL;
	con->conn = c;
	con->attached = true;
	rpc_reply(call, res);
	conn_enter_console(c, con);
	log_info(c->logname, "console of vm \"%s\" attached (%s)",
		 con->vm->name, con->writer ? "writer" : "reader");
	/* What the hub sent while the result was on its way. */
	if (evbuffer_get_length(bufferevent_get_input(con->hub)))
		console_hub_read(con->hub, con);
}

static void
console_hub_event(struct bufferevent *bev, short what, void *arg)
{
	struct console *con = arg;
	struct conn *c = con->conn;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		bufferevent_enable(con->hub, EV_READ | EV_WRITE);
		console_reply(con);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (con->call) {
		char msg[200];

		snprintf(msg, sizeof(msg), "vm \"%s\": cannot connect to its "
			 "console: %s", con->vm->name,
			 what & BEV_EVENT_EOF ? "closed" :
			 strerror(EVUTIL_SOCKET_ERROR()));
		console_fail(con, -EIO, msg);
		return;
	}
	/* The VM ended (or its hub dropped us): the client gets what was
	 * said, then the end of the stream. */
	if (c) {
		c->console = NULL;
		console_hub_read(bev, con);
		conn_close(c, true);
	}
	console_free(con);
}

static void
console_connect(struct console *con)
{
	struct vm_paths p;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vm *vm = con->vm;
	char msg[400];

	if (supervise_paths(vm->d->cfg->runtime_dir, vm->name, &p) < 0) {
		console_fail(con, -ENAMETOOLONG, "console socket path too "
			     "long");
		return;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p.console);
	con->hub = bufferevent_socket_new(vm->d->base, -1,
					  BEV_OPT_CLOSE_ON_FREE);
	if (!con->hub) {
		console_fail(con, -ENOMEM, "out of memory");
		return;
	}
	bufferevent_setcb(con->hub, console_hub_read, console_hub_write,
			  console_hub_event, con);
	if (bufferevent_socket_connect(con->hub, (struct sockaddr *)&sa,
				       sizeof(sa)) < 0) {
		snprintf(msg, sizeof(msg), "vm \"%s\": cannot connect to its "
			 "console %s: %s", vm->name, p.console,
			 strerror(EVUTIL_SOCKET_ERROR()));
		console_fail(con, -EIO, msg);
	}
}

static void
console_stats_done(void *arg, int err, json_t *result, const char *msg)
{
	struct console *con = arg;
	json_t *written;
	char buf[300];

	if (!con->call->conn) {
		/* The client left while we asked. */
		console_fail(con, -ECANCELED, "client gone");
		return;
	}
	if (err < 0) {
		snprintf(buf, sizeof(buf), "vm \"%s\": %s", con->vm->name,
			 msg ? msg : strerror(-err));
		console_fail(con, err == -ECANCELED ? -EBUSY : err, buf);
		return;
	}
	written = json_object_get(json_object_get(result, "console"), "bytes");
	if (!json_is_integer(written)) {
		snprintf(buf, sizeof(buf), "vm \"%s\" has no console socket",
			 con->vm->name);
		console_fail(con, -ENOENT, buf);
		return;
	}
	con->history_bytes = console_history_bytes(
		(unsigned long long)json_integer_value(written),
		con->vm->console_ring);
	con->skip = con->history ? 0 : con->history_bytes;
	console_connect(con);
}

int
console_attach(struct rpc_call *call, struct vm *vm, bool writer,
	       bool history)
{
	struct console *con;

	if (vm->state != VM_STATE_RUNNING && vm->state != VM_STATE_PAUSED &&
	    vm->state != VM_STATE_STOPPING)
		return rpc_fail(call, -EBUSY, "vm \"%s\" is %s: no console",
				vm->name, vm_state_name(vm->state));
	if (writer && vm->writer)
		return rpc_fail(call, -EBUSY, "vm \"%s\": its console already "
				"has a writer (attach with write false to "
				"read)", vm->name);
	if (vm->nr_consoles >= CONSOLE_MAX_PER_VM)
		return rpc_fail(call, -ENOSPC, "vm \"%s\": %u consoles "
				"attached already", vm->name,
				CONSOLE_MAX_PER_VM);
	con = calloc(1, sizeof(*con));
	if (!con)
		return rpc_fail(call, -ENOMEM, "out of memory");
	con->vm = vm_ref(vm);
	con->call = call;
	con->writer = writer;
	con->history = history;
	TAILQ_INSERT_TAIL(&vm->consoles, con, entry);
	vm->nr_consoles++;
	if (writer)
		vm->writer = con;
	if (vmmrun_call(vm->ctl, "vm.stats", NULL, console_stats_done,
			con) < 0) {
		console_fail(con, -EIO, "the VM's control socket is not "
			     "available");
		return 0;
	}
	return 0;
}

void
console_client_input(struct console *con, struct evbuffer *in)
{
	struct evbuffer *out;

	if (!con->writer || !con->hub) {
		/* A reader's keystrokes go nowhere. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	out = bufferevent_get_output(con->hub);
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) > CONSOLE_HUB_HIGH && con->conn)
		bufferevent_disable(con->conn->bev, EV_READ);
}

void
console_client_drained(struct console *con)
{
	if (con->hub)
		bufferevent_enable(con->hub, EV_READ);
}

void
console_client_gone(struct console *con)
{
	struct conn *c = con->conn;

	if (c)
		log_info(c->logname, "console of vm \"%s\" detached",
			 con->vm->name);
	con->conn = NULL;
	if (!con->call)
		console_free(con);
}

void
console_close_all(struct vm *vm)
{
	struct console *con, *t;

	TAILQ_FOREACH_SAFE(con, &vm->consoles, entry, t) {
		if (con->call)
			continue;	/* answered when its step returns */
		if (con->conn) {
			con->conn->console = NULL;
			conn_close(con->conn, true);
		}
		console_free(con);
	}
}
