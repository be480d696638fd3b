/* SPDX-License-Identifier: MIT */
/*
 * vmctl's connection against a scripted daemon on the other end of a
 * socketpair (a forked child): requests as sent on the wire, results,
 * error responses, notifications that arrive first, a daemon that hangs
 * up, sends garbage or an oversized frame, or never answers; and the
 * console relay: history, echo, a byte limit, Ctrl-], a closing daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "vmctl/client.h"
#include "vmctl/console.h"

/* --- the scripted daemon ----------------------------------------------------- */

/* Exit statuses of the child: 0 fine, others say which check failed. */
#define DAEMON_BAD_REQUEST 10

static json_t *
daemon_read(int fd)
{
	json_t *j = NULL;

	if (frame_read_fd(fd, 0, 5000, &j) != 1)
		_exit(DAEMON_BAD_REQUEST);
	return j;
}

static void
daemon_send(int fd, json_t *msg)
{
	if (!msg || frame_write_fd(fd, msg) < 0)
		_exit(DAEMON_BAD_REQUEST + 1);
	json_decref(msg);
}

static void
daemon_send_raw(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n <= 0)
			_exit(DAEMON_BAD_REQUEST + 2);
		p += n;
		len -= (size_t)n;
	}
}

/* The request must be method with an integer id; returns the id. */
static json_t *
daemon_expect(int fd, const char *method, json_t **ret_params)
{
	json_t *req = daemon_read(fd), *id;
	struct jsonrpc_msg msg;

	if (jsonrpc_classify(req, &msg, NULL) < 0 ||
	    msg.kind != JSONRPC_REQUEST || strcmp(msg.method, method) != 0 ||
	    !json_is_integer(msg.id))
		_exit(DAEMON_BAD_REQUEST + 3);
	id = json_incref(msg.id);
	if (ret_params)
		*ret_params = msg.params ? json_incref(msg.params) : NULL;
	jsonrpc_msg_clear(&msg);
	json_decref(req);
	return id;
}

/* Wait for the peer to close (so nothing is lost before we exit). */
static void
daemon_drain(int fd)
{
	char buf[256];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

struct peer {
	struct client *c;
	pid_t pid;
};

/* Fork a daemon running script(fd) and a client on the other end. */
static void
peer_start(struct peer *p, void (*script)(int fd))
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	fflush(NULL);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		close(sv[0]);
		script(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	assert_int_equal(client_from_fd(sv[0], &p->c), 0);
}

/* Close our end and check how the daemon's script ended. */
static void
peer_finish(struct peer *p)
{
	int status;

	client_free(p->c);
	assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the scripted daemon failed: status %#x", status);
}

/* --- requests ------------------------------------------------------------------- */

static void
script_list(int fd)
{
	json_t *params = NULL, *id;

	id = daemon_expect(fd, "vm.list", &params);
	if (!json_is_object(params) ||
	    strcmp(json_string_value(json_object_get(params, "state")),
		   "running") != 0)
		_exit(20);
	/* An event first: the client must keep it for later. */
	daemon_send(fd, jsonrpc_notification_new("event",
		json_pack("{s:i,s:s,s:s}", "seq", 1, "type", "vm.created",
			  "name", "a")));
	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:[{s:s}]}", "vms",
							  "name", "a")));
	json_decref(id);
	json_decref(params);
	id = daemon_expect(fd, "daemon.info", NULL);
	/* A stale answer to an older id is skipped. */
	daemon_send(fd, jsonrpc_result_new(json_integer(1), NULL));
	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:i}", "protocol",
							  1)));
	json_decref(id);
	daemon_drain(fd);
}

static void
test_call_result(void **state)
{
	struct client_rpc_error rpc;
	struct peer p;
	json_t *r = NULL, *n = NULL;
	char err[256] = "";

	(void)state;
	peer_start(&p, script_list);
	assert_int_equal(client_call(p.c, "vm.list",
				     json_pack("{s:s}", "state", "running"),
				     5000, &r, &rpc, err, sizeof(err)), 0);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(r, "vms"), 0), "name")), "a");
	json_decref(r);
	assert_int_equal(client_call(p.c, "daemon.info", NULL, 5000, &r, &rpc,
				     err, sizeof(err)), 0);
	assert_int_equal(json_integer_value(json_object_get(r, "protocol")), 1);
	json_decref(r);
	/* The event that came before the first answer was kept. */
	assert_int_equal(client_next_notification(p.c, 0, &n, err,
						  sizeof(err)), 1);
	assert_string_equal(json_string_value(json_object_get(n, "method")),
			    "event");
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(n, "params"), "seq")), 1);
	json_decref(n);
	peer_finish(&p);
}

static void
script_error(int fd)
{
	json_t *id = daemon_expect(fd, "vm.info", NULL);

	daemon_send(fd, jsonrpc_error_new(id, -32001,
					  "vm \"nope\" not found\n\x1b[2J", NULL));
	json_decref(id);
	daemon_drain(fd);
}

static void
test_call_error(void **state)
{
	struct client_rpc_error rpc = { 0 };
	struct peer p;
	json_t *r = NULL;
	char err[256] = "";

	(void)state;
	peer_start(&p, script_error);
	assert_int_equal(client_call(p.c, "vm.info",
				     json_pack("{s:s}", "name", "nope"), 5000,
				     &r, &rpc, err, sizeof(err)), 1);
	assert_null(r);
	assert_int_equal(rpc.code, -32001);
	/* Control characters cannot reach the terminal. */
	assert_string_equal(rpc.message, "vm \"nope\" not found??[2J");
	peer_finish(&p);
}

static void
script_hang_up(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	close(fd);
}

static void
script_half_frame(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	daemon_send_raw(fd, "\0\0\0\x20{\"jsonrpc\"", 15);
	close(fd);
}

static void
script_garbage(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	daemon_send_raw(fd, "\0\0\0\x05{{{{{", 9);
	daemon_drain(fd);
}

static void
script_huge(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	daemon_send_raw(fd, "\xff\xff\xff\xff", 4);
	daemon_drain(fd);
}

static void
script_not_rpc(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	daemon_send_raw(fd, "\0\0\0\x0e{\"id\":1,\"x\":2}", 4 + 14);
	daemon_drain(fd);
}

static void
script_silent(int fd)
{
	json_decref(daemon_expect(fd, "vm.start", NULL));
	daemon_drain(fd);
}

static void
test_call_broken(void **state)
{
	static const struct {
		void (*script)(int fd);
		int ret;
		const char *why;
	} cases[] = {
		{ script_hang_up, -ECONNRESET, "closed the connection before" },
		{ script_half_frame, -EPROTO, "inside a message" },
		{ script_garbage, -EPROTO, "invalid JSON" },
		{ script_huge, -EPROTO, "more than 64M" },
		{ script_not_rpc, -EPROTO, "invalid message from the daemon" },
		{ script_silent, -ETIMEDOUT, "timed out" },
	};
	struct client_rpc_error rpc;
	struct peer p;
	json_t *r = NULL;
	char err[256];
	size_t i;
	int ret;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		peer_start(&p, cases[i].script);
		ret = client_call(p.c, "vm.start", json_pack("{s:s}", "name",
							     "a"), 300, &r,
				  &rpc, err, sizeof(err));
		if (ret != cases[i].ret || !strstr(err, cases[i].why))
			fail_msg("case %zu: expected %d \"%s\", got %d \"%s\"", i,
				 cases[i].ret, cases[i].why, ret, err);
		assert_null(r);
		peer_finish(&p);
	}
}

/* A stop flag ends a wait that a signal interrupted. */
static volatile sig_atomic_t test_stop;

static void
on_alarm(int sig)
{
	(void)sig;
	test_stop = 1;
}

static void
script_events_then_silence(int fd)
{
	json_t *id = daemon_expect(fd, "events.subscribe", NULL);

	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:[]}", "types")));
	json_decref(id);
	daemon_send(fd, jsonrpc_notification_new("event",
		json_pack("{s:i}", "seq", 5)));
	daemon_drain(fd);
}

static void
test_notifications_and_stop(void **state)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct client_rpc_error rpc;
	struct peer p;
	json_t *r = NULL, *n = NULL;
	char err[256] = "";

	(void)state;
	peer_start(&p, script_events_then_silence);
	assert_int_equal(client_call(p.c, "events.subscribe", NULL, 5000, &r,
				     &rpc, err, sizeof(err)), 0);
	json_decref(r);
	assert_int_equal(client_next_notification(p.c, 5000, &n, err,
						  sizeof(err)), 1);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(n, "params"), "seq")), 5);
	json_decref(n);
	/* Nothing more: a timeout... */
	assert_int_equal(client_next_notification(p.c, 100, &n, err,
						  sizeof(err)), -ETIMEDOUT);
	/* ...and a signal with the stop flag set ends an endless wait. */
	test_stop = 0;
	client_set_stop_flag(p.c, &test_stop);
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	ualarm(100000, 0);
	assert_int_equal(client_next_notification(p.c, -1, &n, err,
						  sizeof(err)), -EINTR);
	sigaction(SIGALRM, &old, NULL);
	peer_finish(&p);
}

/* --- the console relay ------------------------------------------------------------ */

/* Attach, replay "HIST\r\n", then echo every byte until the client leaves. */
static void
script_console_echo(int fd)
{
	char buf[256];
	ssize_t n;
	json_t *id = daemon_expect(fd, "vm.console", NULL);

	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:s,s:b,s:i}",
		"name", "a", "writer", 1, "history_bytes", 6)));
	json_decref(id);
	daemon_send_raw(fd, "HIST\r\n", 6);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		daemon_send_raw(fd, buf, (size_t)n);
}

/* Read what is in a pipe (non-blocking) into buf, NUL-terminated. */
static size_t
slurp(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	return got;
}

static void
attach(struct peer *p, bool write, json_t **ret)
{
	struct client_rpc_error rpc;
	char err[256] = "";

	assert_int_equal(client_call(p->c, "vm.console",
				     json_pack("{s:s,s:b}", "name", "a",
					       "write", write),
				     5000, ret, &rpc, err, sizeof(err)), 0);
}

static void
test_relay_echo(void **state)
{
	struct console_opts o = { .linger_ms = 300, .quiet_ms = -1,
				  .write = true };
	enum console_end end = CONSOLE_END_MAX;
	int in[2], out[2];
	char err[256] = "", buf[256];
	struct peer p;
	json_t *r;

	(void)state;
	peer_start(&p, script_console_echo);
	/* After the fork, so the daemon holds no end of them. */
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	attach(&p, true, &r);
	assert_int_equal(json_integer_value(json_object_get(r,
						"history_bytes")), 6);
	json_decref(r);
	assert_int_equal(write(in[1], "ping-1\n", 7), 7);
	close(in[1]);
	o.in_fd = in[0];
	o.out_fd = out[1];
	/* Input ends at once; the echo still comes, then 300 ms of quiet. */
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)), 0);
	assert_int_equal(end, CONSOLE_END_INPUT);
	close(out[1]);
	slurp(out[0], buf, sizeof(buf));
	assert_string_equal(buf, "HIST\r\nping-1\n");
	close(in[0]);
	close(out[0]);
	peer_finish(&p);
}

static void
test_relay_escape(void **state)
{
	struct console_opts o = { .linger_ms = -1, .quiet_ms = -1,
				  .write = true, .tty = true };
	enum console_end end = CONSOLE_END_MAX;
	int in[2], out[2];
	char err[256] = "", buf[256];
	struct peer p;
	json_t *r;

	(void)state;
	peer_start(&p, script_console_echo);
	/* After the fork, so the daemon holds no end of them. */
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	attach(&p, true, &r);
	json_decref(r);
	/* What comes before Ctrl-] is sent; what comes after is not. */
	assert_int_equal(write(in[1], "abc\x1d" "def", 7), 7);
	o.in_fd = in[0];
	o.out_fd = out[1];
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)), 0);
	assert_int_equal(end, CONSOLE_END_DETACHED);
	/*
	 * What the relay printed, then what is still on the socket (the echo
	 * of "abc" comes after we left), is the history and "abc" only.
	 */
	close(out[1]);
	{
		size_t got = slurp(out[0], buf, sizeof(buf));
		ssize_t n;

		while (got < 9) {
			n = client_read_raw(p.c, buf + got, 9 - got, 2000, err,
					    sizeof(err));
			assert_true(n > 0);
			got += (size_t)n;
		}
		buf[got] = '\0';
		assert_string_equal(buf, "HIST\r\nabc");
		assert_int_equal(client_read_raw(p.c, buf, sizeof(buf), 200,
						 err, sizeof(err)), -EAGAIN);
	}
	close(in[0]);
	close(in[1]);
	close(out[0]);
	peer_finish(&p);
}

/* logs: history then live output; only history_bytes are printed. */
static void
script_history_then_live(int fd)
{
	json_t *id = daemon_expect(fd, "vm.console", NULL);

	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:s,s:b,s:i}",
		"name", "a", "writer", 0, "history_bytes", 12)));
	json_decref(id);
	daemon_send_raw(fd, "line1\nline2\nLIVE", 16);
	daemon_drain(fd);
}

static void
test_relay_limit(void **state)
{
	struct console_opts o = { .in_fd = -1, .linger_ms = -1,
				  .quiet_ms = 5000, .limit = 12 };
	enum console_end end = CONSOLE_END_MAX;
	char err[256] = "", buf[64];
	struct peer p;
	int out[2];
	json_t *r;

	(void)state;
	peer_start(&p, script_history_then_live);
	/* After the fork, so the daemon holds no end of them. */
	assert_int_equal(pipe(out), 0);
	attach(&p, false, &r);
	json_decref(r);
	o.out_fd = out[1];
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)), 0);
	assert_int_equal(end, CONSOLE_END_LIMIT);
	close(out[1]);
	assert_int_equal(slurp(out[0], buf, sizeof(buf)), 12);
	assert_string_equal(buf, "line1\nline2\n");
	close(out[0]);
	peer_finish(&p);
}

/* A daemon that promises more history than it sends: a timeout. */
static void
script_short_history(int fd)
{
	json_t *id = daemon_expect(fd, "vm.console", NULL);

	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:s,s:b,s:i}",
		"name", "a", "writer", 0, "history_bytes", 100)));
	json_decref(id);
	daemon_send_raw(fd, "only", 4);
	daemon_drain(fd);
}

static void
test_relay_quiet_timeout(void **state)
{
	struct console_opts o = { .in_fd = -1, .linger_ms = -1,
				  .quiet_ms = 200, .limit = 100 };
	enum console_end end = CONSOLE_END_MAX;
	char err[256] = "", buf[64];
	struct peer p;
	int out[2];
	json_t *r;

	(void)state;
	peer_start(&p, script_short_history);
	/* After the fork, so the daemon holds no end of them. */
	assert_int_equal(pipe(out), 0);
	attach(&p, false, &r);
	json_decref(r);
	o.out_fd = out[1];
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)),
			 -ETIMEDOUT);
	assert_non_null(strstr(err, "4 of 100 bytes"));
	close(out[1]);
	slurp(out[0], buf, sizeof(buf));
	assert_string_equal(buf, "only");
	close(out[0]);
	peer_finish(&p);
}

/* The VM stops: the daemon closes; the relay ends with what it got. */
static void
script_console_close(int fd)
{
	json_t *id = daemon_expect(fd, "vm.console", NULL);

	daemon_send(fd, jsonrpc_result_new(id, json_pack("{s:s,s:b,s:i}",
		"name", "a", "writer", 0, "history_bytes", 0)));
	json_decref(id);
	daemon_send_raw(fd, "bye\n", 4);
	close(fd);
}

static void
test_relay_closed(void **state)
{
	struct console_opts o = { .linger_ms = -1, .quiet_ms = -1 };
	enum console_end end = CONSOLE_END_MAX;
	char err[256] = "", buf[64];
	struct peer p;
	int out[2], in[2];
	json_t *r;

	(void)state;
	peer_start(&p, script_console_close);
	/* After the fork, so the daemon holds no end of them. */
	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(in), 0);
	attach(&p, false, &r);
	json_decref(r);
	/* A reader that is not a terminal never reads its input. */
	o.in_fd = in[0];
	o.out_fd = out[1];
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)), 0);
	assert_int_equal(end, CONSOLE_END_CLOSED);
	close(out[1]);
	slurp(out[0], buf, sizeof(buf));
	assert_string_equal(buf, "bye\n");
	close(out[0]);
	close(in[0]);
	close(in[1]);
	peer_finish(&p);
}

/* The reader of our output went away (vmctl logs | head): a quiet end. */
static void
test_relay_output_closed(void **state)
{
	struct console_opts o = { .in_fd = -1, .linger_ms = -1,
				  .quiet_ms = 5000, .limit = 12 };
	enum console_end end = CONSOLE_END_MAX;
	char err[256] = "";
	struct peer p;
	int out[2];
	json_t *r;

	(void)state;
	peer_start(&p, script_history_then_live);
	assert_int_equal(pipe(out), 0);
	close(out[0]);
	attach(&p, false, &r);
	json_decref(r);
	o.out_fd = out[1];
	assert_int_equal(console_relay(p.c, &o, &end, err, sizeof(err)), 0);
	assert_int_equal(end, CONSOLE_END_OUTPUT);
	close(out[1]);
	peer_finish(&p);
}

/* Connecting to nothing says why, naming no URI (the caller does). */
static void
test_connect_fails(void **state)
{
	struct client *c = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(client_connect("unix:///nonexistent/vmmd.sock", NULL,
					NULL, NULL, &c, err, sizeof(err)),
			 -ENOENT);
	assert_null(c);
	assert_string_equal(err, "No such file or directory");
	assert_int_equal(client_connect("ftp://x", NULL, NULL, NULL, &c, err,
					sizeof(err)), -EINVAL);
	assert_null(c);
	/* Port 1 on loopback: nothing listens there. */
	assert_true(client_connect("tls://127.0.0.1:1", NULL, NULL, NULL, &c,
				   err, sizeof(err)) < 0);
	assert_null(c);
	assert_string_equal(err, "Connection refused");
	client_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_result),
		cmocka_unit_test(test_call_error),
		cmocka_unit_test(test_call_broken),
		cmocka_unit_test(test_notifications_and_stop),
		cmocka_unit_test(test_relay_echo),
		cmocka_unit_test(test_relay_escape),
		cmocka_unit_test(test_relay_limit),
		cmocka_unit_test(test_relay_quiet_timeout),
		cmocka_unit_test(test_relay_closed),
		cmocka_unit_test(test_relay_output_closed),
		cmocka_unit_test(test_connect_fails),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
