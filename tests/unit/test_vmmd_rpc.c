/* SPDX-License-Identifier: MIT */
/*
 * The method table's role checks and parameter schema, the identities of
 * local and TLS peers, and the frame around every handler driven through
 * a real connection (a libevent bufferevent pair): malformed frames, the
 * error codes, a refused peer, events pushed to a subscriber.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/policy.h"
#include "vmmd/config.h"
#include "vmmd/conn.h"
#include "vmmd/daemon.h"
#include "vmmd/listener.h"
#include "vmmd/log.h"
#include "vmmd/registry.h"
#include "vmmd/rpc.h"

static const struct {
	const char *name;
	enum policy_role role;
} expected_roles[] = {
	{ "daemon.info", POLICY_ROLE_VIEWER },
	{ "vm.create", POLICY_ROLE_OPERATOR },
	{ "vm.delete", POLICY_ROLE_OPERATOR },
	{ "vm.start", POLICY_ROLE_OPERATOR },
	{ "vm.stop", POLICY_ROLE_OPERATOR },
	{ "vm.kill", POLICY_ROLE_OPERATOR },
	{ "vm.pause", POLICY_ROLE_OPERATOR },
	{ "vm.resume", POLICY_ROLE_OPERATOR },
	{ "vm.restart", POLICY_ROLE_OPERATOR },
	{ "vm.list", POLICY_ROLE_VIEWER },
	{ "vm.info", POLICY_ROLE_VIEWER },
	{ "vm.set", POLICY_ROLE_OPERATOR },
	{ "vm.stats", POLICY_ROLE_VIEWER },
	{ "vm.console", POLICY_ROLE_VIEWER },
	{ "events.subscribe", POLICY_ROLE_VIEWER },
};

#define NR_EXPECTED (sizeof(expected_roles) / sizeof(expected_roles[0]))

static void
test_table_roles(void **state)
{
	struct identity who = { .name = "uid:1000" };
	enum policy_role r;
	char err[256];
	size_t i;

	(void)state;
	/* PROTOCOL.md's table, every row, nothing more. */
	assert_int_equal(rpc_nr_methods, NR_EXPECTED);
	for (i = 0; i < NR_EXPECTED; i++) {
		const struct rpc_method *m =
			rpc_method_find(expected_roles[i].name);

		assert_non_null(m);
		assert_int_equal(m->role, expected_roles[i].role);
		assert_true(m->fn != NULL);
		/* Only vm.console turns the connection into a byte stream. */
		assert_int_equal(m->upgrades,
				 strcmp(m->name, "vm.console") == 0);
		for (r = POLICY_ROLE_NONE; r <= POLICY_ROLE_ADMIN; r++) {
			int rc;

			who.role = r;
			/* Parameters the schema accepts for every method
			 * with a name; none for the others. */
			rc = rpc_check(m, &who, NULL, err, sizeof(err));
			if (r < m->role) {
				if (rc != -EACCES)
					fail_msg("%s as %s: expected -EACCES, "
						 "got %d", m->name,
						 policy_role_name(r), rc);
			} else if (rc == -EACCES) {
				fail_msg("%s as %s: refused", m->name,
					 policy_role_name(r));
			}
		}
	}
	assert_null(rpc_method_find("vm.frobnicate"));
	assert_null(rpc_method_find(NULL));

	who.role = POLICY_ROLE_VIEWER;
	assert_int_equal(rpc_check(rpc_method_find("vm.start"), &who, NULL,
				   err, sizeof(err)), -EACCES);
	assert_string_equal(err, "vm.start needs the operator role; uid:1000 "
			    "is viewer");
	who.role = POLICY_ROLE_OPERATOR;
	assert_int_equal(rpc_check(rpc_method_find("vm.start"), &who, NULL,
				   err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "name: required");
}

static void
expect_params(const char *method, const char *params, int rc,
	      const char *message)
{
	struct identity who = { .name = "uid:0", .role = POLICY_ROLE_ADMIN };
	json_t *p = params ? json_loads(params, 0, NULL) : NULL;
	char err[256] = "";
	int r;

	r = rpc_check(rpc_method_find(method), &who, p, err, sizeof(err));
	json_decref(p);
	if (r != rc || (message && strcmp(err, message) != 0))
		fail_msg("%s %s: expected %d \"%s\", got %d \"%s\"", method,
			 params ? params : "(none)", rc, message ? message : "",
			 r, err);
}

static void
test_param_schema(void **state)
{
	(void)state;
	expect_params("daemon.info", NULL, 0, NULL);
	expect_params("daemon.info", "{}", 0, NULL);
	expect_params("daemon.info", "{\"verbose\": true}", -EINVAL,
		      "verbose: unknown parameter");
	expect_params("vm.list", "[\"running\"]", -EINVAL,
		      "params: must be an object");
	expect_params("vm.stop", "{\"name\": \"a\", \"forse\": true}", -EINVAL,
		      "forse: unknown parameter");
	expect_params("vm.stop", "{\"name\": \"a\", \"force\": 1}", -EINVAL,
		      "force: must be a boolean");
	expect_params("vm.stop", "{\"name\": 5}", -EINVAL,
		      "name: must be a string");
	expect_params("vm.stop", "{\"name\": \"a\", \"timeout\": 3601}",
		      -EINVAL, "timeout: must be an integer 0..3600");
	expect_params("vm.stop", "{\"name\": \"a\", \"timeout\": -1}",
		      -EINVAL, "timeout: must be an integer 0..3600");
	expect_params("vm.stop", "{\"name\": \"a\", \"timeout\": 1.5}",
		      -EINVAL, "timeout: must be an integer");
	expect_params("vm.stop", "{\"name\": \"a\", \"timeout\": 0, "
		      "\"force\": true}", 0, NULL);
	expect_params("vm.create", "{}", -EINVAL, "definition: required");
	expect_params("vm.create", "{\"definition\": []}", -EINVAL,
		      "definition: must be an object");
	expect_params("vm.create", "{\"definition\": {}, \"start\": true, "
		      "\"replace\": false}", 0, NULL);
	expect_params("vm.set", "{\"name\": \"a\"}", -EINVAL,
		      "changes: required");
	expect_params("vm.console", "{\"name\": \"a\", \"write\": false, "
		      "\"history\": false}", 0, NULL);
	expect_params("events.subscribe", "{\"types\": \"vm.state\"}",
		      -EINVAL, "types: must be an array");
	expect_params("events.subscribe", "{\"types\": [], \"names\": []}", 0,
		      NULL);
}

static struct policy *
test_policy(void)
{
	json_t *j = json_loads(
		"{\"identities\": {"
		"\"uid:1000\": {\"role\": \"viewer\", \"tenant\": \"team-b\"},"
		"\"uid:1001\": {\"role\": \"operator\"},"
		"\"ops-a\": {\"role\": \"operator\", \"tenant\": \"team-a\"}"
		"}}", 0, NULL);
	struct policy *p;
	char err[256];

	assert_non_null(j);
	if (policy_from_json(j, &p, err, sizeof(err)) < 0)
		fail_msg("policy: %s", err);
	json_decref(j);
	return p;
}

static void
test_local_identity(void **state)
{
	struct policy *p = test_policy();
	struct identity who = { 0 };
	gid_t groups[] = { 10, 27, 100 };
	char deny[256];

	(void)state;
	/* Root and the admin group are admins, policy or not. */
	assert_int_equal(listener_local_identity(0, 0, NULL, 0, false, 0, NULL,
						 &who, deny, sizeof(deny)), 0);
	assert_string_equal(who.name, "uid:0");
	assert_int_equal(who.role, POLICY_ROLE_ADMIN);
	assert_null(who.tenant);
	assert_int_equal(listener_local_identity(1000, 27, NULL, 0, true, 27,
						 p, &who, deny, sizeof(deny)),
			 0);
	assert_int_equal(who.role, POLICY_ROLE_ADMIN);
	assert_null(who.tenant);
	assert_int_equal(listener_local_identity(1005, 1005, groups, 3, true,
						 100, NULL, &who, deny,
						 sizeof(deny)), 0);
	assert_int_equal(who.role, POLICY_ROLE_ADMIN);
	/* Not in the group: the policy decides. */
	assert_int_equal(listener_local_identity(1000, 1000, groups, 3, true,
						 4242, p, &who, deny,
						 sizeof(deny)), 0);
	assert_string_equal(who.name, "uid:1000");
	assert_int_equal(who.role, POLICY_ROLE_VIEWER);
	assert_string_equal(who.tenant, "team-b");
	assert_int_equal(listener_local_identity(1001, 1001, NULL, 0, false, 0,
						 p, &who, deny, sizeof(deny)),
			 0);
	assert_int_equal(who.role, POLICY_ROLE_OPERATOR);
	assert_null(who.tenant);
	/* Unknown, or no policy at all: refused, and told why. */
	assert_int_equal(listener_local_identity(65534, 65534, NULL, 0, false,
						 0, p, &who, deny,
						 sizeof(deny)), -EACCES);
	assert_string_equal(who.name, "uid:65534");
	assert_int_equal(who.role, POLICY_ROLE_NONE);
	assert_string_equal(deny, "uid:65534 may not use vmmd: not root, not "
			    "in the socket group, not in the access policy");
	assert_int_equal(listener_local_identity(1000, 1000, NULL, 0, false, 0,
						 NULL, &who, deny,
						 sizeof(deny)), -EACCES);
	assert_non_null(strstr(deny, "no access policy"));

	/* A certificate's identity. */
	assert_int_equal(listener_cert_identity("ops-a", p, &who, deny,
						sizeof(deny)), 0);
	assert_int_equal(who.role, POLICY_ROLE_OPERATOR);
	assert_string_equal(who.tenant, "team-a");
	assert_int_equal(listener_cert_identity("ops-b", p, &who, deny,
						sizeof(deny)), -EACCES);
	assert_string_equal(deny, "\"ops-b\" is not in the access policy");
	assert_int_equal(who.role, POLICY_ROLE_NONE);
	identity_clear(&who);
	policy_free(p);
}

/* --- through a connection ------------------------------------------------ */

struct fixture {
	struct event_base *base;
	struct config *cfg;
	struct vmmd *d;
	struct bufferevent *peer;	/* the client's end */
	struct conn *c;
	bool eof;
};

static void
peer_event(struct bufferevent *bev, short what, void *arg)
{
	struct fixture *f = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		f->eof = true;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct bufferevent *pair[2];

	log_set_level(LOG_LEVEL_ERROR);
	f->base = event_base_new();
	if (!f->base || config_new(&f->cfg) < 0 ||
	    daemon_new_bare(f->base, f->cfg, &f->d) < 0 ||
	    bufferevent_pair_new(f->base, 0, pair) < 0)
		return -1;
	f->peer = pair[1];
	bufferevent_setcb(f->peer, NULL, NULL, peer_event, f);
	bufferevent_enable(f->peer, EV_READ | EV_WRITE);
	if (conn_new(f->d, pair[0], false, &f->c) < 0)
		return -1;
	snprintf(f->c->who.name, sizeof(f->c->who.name), "uid:1000");
	f->c->who.role = POLICY_ROLE_VIEWER;
	conn_ready(f->c);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	daemon_free_bare(f->d);
	bufferevent_free(f->peer);
	config_free(f->cfg);
	event_base_free(f->base);
	free(f);
	return 0;
}

static void
spin(struct fixture *f)
{
	int i;

	for (i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void
send_raw(struct fixture *f, const void *buf, size_t len)
{
	bufferevent_write(f->peer, buf, len);
	spin(f);
}

static void
send_text(struct fixture *f, const char *json)
{
	uint8_t hdr[PROTO_FRAME_HDR];

	frame_put_header(hdr, (uint32_t)strlen(json));
	bufferevent_write(f->peer, hdr, sizeof(hdr));
	send_raw(f, json, strlen(json));
}

/* The next frame from the daemon (a new reference), or NULL. */
static json_t *
recv_msg(struct fixture *f)
{
	char *payload;
	size_t len;
	json_t *j;

	spin(f);
	if (frame_evbuffer_take(bufferevent_get_input(f->peer), 0, &payload,
				&len) != 1)
		return NULL;
	j = json_loadb(payload, len, 0, NULL);
	free(payload);
	return j;
}

static int
err_code(json_t *msg)
{
	return (int)json_integer_value(json_object_get(json_object_get(msg,
		"error"), "code"));
}

static const char *
err_message(json_t *msg)
{
	return json_string_value(json_object_get(json_object_get(msg, "error"),
						 "message"));
}

static void
test_dispatch_codes(void **state)
{
	struct fixture *f = *state;
	json_t *m;

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.info\"}");
	m = recv_msg(f);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m,
		"result"), "protocol")), 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		json_object_get(m, "result"), "identity"), "role")), "viewer");
	json_decref(m);

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"vm.start\","
		  "\"params\":{\"name\":\"a\"}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_PERMISSION_DENIED);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 2);
	json_decref(m);

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"vm.info\","
		  "\"params\":{\"name\":\"nope\"}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_NOT_FOUND);
	assert_string_equal(err_message(m), "vm \"nope\" not found");
	assert_string_equal(json_string_value(json_object_get(m, "id")), "x");
	json_decref(m);

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"vm.frob\"}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_METHOD_NOT_FOUND);
	assert_string_equal(err_message(m), "method \"vm.frob\" not found");
	json_decref(m);

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"vm.list\","
		  "\"params\":{\"state\":\"sleepy\"}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_INVALID_PARAMS);
	assert_string_equal(err_message(m), "state: not a VM state");
	json_decref(m);

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"vm.list\"}");
	m = recv_msg(f);
	assert_int_equal(json_array_size(json_object_get(json_object_get(m,
		"result"), "vms")), 0);
	json_decref(m);

	/* Not JSON: parse error, and the connection stays. */
	send_text(f, "{{{{");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_PARSE);
	assert_true(json_is_null(json_object_get(m, "id")));
	json_decref(m);
	/* JSON, not a request: invalid request with its id. */
	send_text(f, "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"vm.list\"}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_INVALID_REQUEST);
	json_decref(m);
	/* A notification is never answered. */
	send_text(f, "{\"jsonrpc\":\"2.0\",\"method\":\"vm.list\"}");
	assert_null(recv_msg(f));
	assert_false(f->eof);

	/* A viewer reads the console but cannot write to it. */
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"vm.console\","
		  "\"params\":{\"name\":\"nope\",\"write\":true}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_NOT_FOUND);
	json_decref(m);
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"vm.list\"}");
	m = recv_msg(f);
	assert_non_null(json_object_get(m, "result"));
	json_decref(m);
}

static void
test_oversized_frame_closes(void **state)
{
	struct fixture *f = *state;
	static const uint8_t hdr[] = { 0x00, 0x20, 0x00, 0x00 };
	json_t *m;

	/* 2 MiB announced: refused before anything is read or allocated. */
	send_raw(f, hdr, sizeof(hdr));
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_LIMIT_EXCEEDED);
	assert_true(json_is_null(json_object_get(m, "id")));
	assert_string_equal(err_message(m), "frame of 2097152 bytes is larger "
			    "than the maximum (1048576)");
	json_decref(m);
	/* Closed once the answer is out. */
	spin(f);
	assert_int_equal(f->d->nr_conns, 0);
}

static void
test_zero_frame_closes(void **state)
{
	struct fixture *f = *state;
	static const uint8_t hdr[] = { 0, 0, 0, 0 };
	json_t *m;

	send_raw(f, hdr, sizeof(hdr));
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_INVALID_REQUEST);
	assert_string_equal(err_message(m), "zero-length frame");
	json_decref(m);
	spin(f);
	assert_int_equal(f->d->nr_conns, 0);
}

static void
test_refused_peer(void **state)
{
	struct fixture *f = *state;
	json_t *m;

	snprintf(f->c->deny, sizeof(f->c->deny), "uid:65534 may not use vmmd");
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.list\"}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_PERMISSION_DENIED);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	assert_string_equal(err_message(m), "uid:65534 may not use vmmd");
	json_decref(m);
	spin(f);
	assert_int_equal(f->d->nr_conns, 0);
}

static void
test_events_to_subscriber(void **state)
{
	struct fixture *f = *state;
	struct vmdef *def;
	struct vm *vm;
	char err[128];
	json_t *m, *j;

	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
		  "\"events.subscribe\",\"params\":{\"types\":[\"vm.state\","
		  "\"vm.bogus\"]}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_INVALID_PARAMS);
	assert_string_equal(err_message(m), "types[1]: unknown event type");
	json_decref(m);
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
		  "\"events.subscribe\",\"params\":{\"types\":[\"vm.state\"]}}");
	m = recv_msg(f);
	assert_string_equal(json_string_value(json_array_get(json_object_get(
		json_object_get(m, "result"), "types"), 0)), "vm.state");
	assert_int_equal(json_array_size(json_object_get(json_object_get(m,
		"result"), "types")), 1);
	json_decref(m);

	j = json_pack("{s:s, s:s}", "name", "ev1", "kernel", "/k");
	assert_int_equal(vmdef_from_json(j, 0, &def, err, sizeof(err)), 0);
	json_decref(j);
	assert_int_equal(registry_add(&f->d->reg, f->d, def, NULL, &vm), 0);
	events_emit(&f->d->events, EVENT_VM_CREATED, vm, NULL);
	vm_set_state(vm, VM_STATE_STARTING, "test");
	m = recv_msg(f);
	assert_non_null(m);
	assert_string_equal(json_string_value(json_object_get(m, "method")),
			    "event");
	assert_null(json_object_get(m, "id"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		m, "params"), "type")), "vm.state");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		m, "params"), "state")), "starting");
	json_decref(m);
	/* Nothing else: vm.created was not asked for. */
	assert_null(recv_msg(f));

	/* vm.list shows it to an identity without a tenant. */
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"vm.list\"}");
	m = recv_msg(f);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(json_object_get(m, "result"), "vms"), 0),
		"state")), "starting");
	json_decref(m);
	/* A tenant-bound identity does not see it at all. */
	f->c->who.tenant = strdup("team-a");
	send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"vm.info\","
		  "\"params\":{\"name\":\"ev1\"}}");
	m = recv_msg(f);
	assert_int_equal(err_code(m), PROTO_ERR_NOT_FOUND);
	json_decref(m);
	vm->state = VM_STATE_STOPPED;
}

/* One frame from a blocking client socket, running the loop meanwhile. */
static json_t *
client_recv(struct event_base *base, int fd, bool *ret_eof)
{
	uint8_t buf[4096];
	size_t have = 0;
	time_t end = time(NULL) + 5;

	*ret_eof = false;
	while (time(NULL) < end) {
		const uint8_t *payload;
		size_t len, used;
		ssize_t n;

		event_base_loop(base, EVLOOP_NONBLOCK);
		n = recv(fd, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
		if (n == 0) {
			*ret_eof = true;
			return NULL;
		}
		if (n > 0)
			have += (size_t)n;
		if (frame_decode(buf, have, 0, &payload, &len, &used) == 1)
			return json_loadb((const char *)payload, len, 0, NULL);
		usleep(1000);
	}
	return NULL;
}

static int
client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void
test_listener_limits_and_peercred(void **state)
{
	char dir[] = "/tmp/test_vmmd_listener.XXXXXX", path[128], err[256];
	static const char req[] =
		"\0\0\0\x2f{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"daemon.info\"}";
	struct event_base *base = event_base_new();
	struct listener *l;
	struct config *cfg;
	struct vmmd *d;
	char name[32];
	bool eof;
	json_t *m;
	int a, b;

	(void)state;
	log_set_level(LOG_LEVEL_ERROR);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vmmd.sock", dir);
	assert_int_equal(config_new(&cfg), 0);
	cfg->max_clients = 1;
	assert_int_equal(daemon_new_bare(base, cfg, &d), 0);
	assert_int_equal(listener_unix_new(d, path, &l, err, sizeof(err)), 0);

	a = client_connect(path);
	assert_int_equal(send(a, req, sizeof(req) - 1, 0), sizeof(req) - 1);
	m = client_recv(base, a, &eof);
	assert_non_null(m);
	/* SO_PEERCRED names this process's uid. */
	snprintf(name, sizeof(name), "uid:%u", (unsigned int)getuid());
	if (getuid() == 0) {
		assert_string_equal(json_string_value(json_object_get(
			json_object_get(json_object_get(m, "result"),
					"identity"), "name")), name);
		assert_string_equal(json_string_value(json_object_get(
			json_object_get(json_object_get(m, "result"),
					"identity"), "role")), "admin");
	} else {
		/* Not root, no policy: refused, naming the uid. */
		assert_int_equal(err_code(m), PROTO_ERR_PERMISSION_DENIED);
		assert_non_null(strstr(err_message(m), name));
	}
	json_decref(m);
	if (getuid() == 0) {
		/* One client is the limit: the next is told and dropped. */
		b = client_connect(path);
		m = client_recv(base, b, &eof);
		assert_int_equal(err_code(m), PROTO_ERR_LIMIT_EXCEEDED);
		assert_string_equal(err_message(m), "too many clients (limit 1)");
		json_decref(m);
		m = client_recv(base, b, &eof);
		assert_null(m);
		assert_true(eof);
		close(b);
		/* The first one is still served. */
		assert_int_equal(send(a, req, sizeof(req) - 1, 0),
				 sizeof(req) - 1);
		m = client_recv(base, a, &eof);
		assert_non_null(json_object_get(m, "result"));
		json_decref(m);
	}
	/* A live listener on the path is not replaced by a second one. */
	{
		struct listener *l2;

		assert_int_equal(listener_unix_new(d, path, &l2, err,
						   sizeof(err)), -EADDRINUSE);
		assert_non_null(strstr(err, "another vmmd"));
	}
	close(a);
	listener_free(l);
	assert_int_equal(access(path, F_OK), -1);
	daemon_free_bare(d);
	config_free(cfg);
	event_base_free(base);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_roles),
		cmocka_unit_test(test_param_schema),
		cmocka_unit_test(test_local_identity),
		cmocka_unit_test_setup_teardown(test_dispatch_codes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_oversized_frame_closes,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_frame_closes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refused_peer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_events_to_subscriber,
						setup, teardown),
		cmocka_unit_test(test_listener_limits_and_peercred),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
