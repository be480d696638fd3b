/* SPDX-License-Identifier: MIT */
/*
 * The vmctl program (run_main()) against a scripted daemon on a UNIX
 * socket: what it prints on stdout and stderr, the exit status (0, 1 for a
 * daemon error, 2 for usage, 3 for no connection) and the requests that
 * reached the daemon (logged by it, one JSON line each).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "vmctl/run.h"
#include "vmctl/vmctl.h"

static char tmpdir[64];
static char sock_path[96];
static char log_path[128];
static pid_t daemon_pid;

/* --- the scripted daemon ----------------------------------------------------- */

static void
send_raw(int fd, const char *s, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

static void
reply(int fd, json_t *msg)
{
	frame_write_fd(fd, msg);
	json_decref(msg);
}

/* Answer one request; false when the connection is to be closed. */
static bool
daemon_handle(int fd, json_t *req)
{
	struct jsonrpc_msg m;
	const char *method, *name;
	json_t *p, *id;
	char buf[256];
	ssize_t n;
	FILE *log;

	if (jsonrpc_classify(req, &m, NULL) < 0)
		return false;
	log = fopen(log_path, "a");
	if (log) {
		json_dumpf(req, log, JSON_COMPACT | JSON_SORT_KEYS);
		fputc('\n', log);
		fclose(log);
	}
	method = m.method;
	p = m.params;
	id = m.id;
	name = json_string_value(json_object_get(p, "name"));
	if (strcmp(method, "vm.list") == 0) {
		reply(fd, jsonrpc_result_new(id, json_pack(
			"{s:[{s:s,s:s,s:i,s:s,s:i,s:i}]}", "vms", "name", "t1",
			"state", "running", "vcpus", 1, "memory", "64M", "pid",
			42, "uptime_sec", 75)));
	} else if (strcmp(method, "vm.info") == 0 && strcmp(name, "nope") == 0) {
		reply(fd, jsonrpc_error_newf(id, -32001, "vm \"%s\" not found",
					     name));
	} else if (strcmp(method, "vm.kill") == 0) {
		reply(fd, jsonrpc_error_new(id, -32099, "odd", NULL));
	} else if (strcmp(method, "vm.create") == 0) {
		reply(fd, jsonrpc_result_new(id, json_pack("{s:O,s:s,s:O}",
			"name", json_object_get(json_object_get(p, "definition"),
						"name"),
			"state", "stopped", "definition",
			json_object_get(p, "definition"))));
	} else if (strcmp(method, "vm.stop") == 0) {
		reply(fd, jsonrpc_result_new(id, json_pack("{s:s,s:s,s:b}",
			"name", name, "state", "stopped", "forced", 1)));
	} else if (strcmp(method, "vm.pause") == 0) {
		jsonrpc_msg_clear(&m);
		return false;	/* hang up without an answer */
	} else if (strcmp(method, "daemon.info") == 0) {
		reply(fd, jsonrpc_result_new(id, json_pack(
			"{s:s,s:i,s:s,s:i}", "version", "0.1.0", "protocol", 1,
			"hostname", "fake", "frame_max", 1048576)));
	} else if (strcmp(method, "vm.console") == 0) {
		bool logs = json_is_false(json_object_get(p, "write"));

		reply(fd, jsonrpc_result_new(id, json_pack("{s:s,s:b,s:i}",
			"name", name, "writer", !logs, "history_bytes", 6)));
		send_raw(fd, "HIST\r\n", 6);
		if (logs)
			send_raw(fd, "LIVE", 4);
		/* Echo what is typed until the client leaves. */
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			send_raw(fd, buf, (size_t)n);
		jsonrpc_msg_clear(&m);
		return false;
	} else if (strcmp(method, "events.subscribe") == 0) {
		reply(fd, jsonrpc_result_new(id, json_pack("{s:[s]}", "types",
							   "vm.state")));
		reply(fd, jsonrpc_notification_new("event", json_pack(
			"{s:i,s:s,s:s,s:s,s:s,s:s}", "seq", 1, "time",
			"2024-05-01T12:00:00Z", "type", "vm.state", "name", "t1",
			"state", "running", "previous", "starting")));
		reply(fd, jsonrpc_notification_new("event", json_pack(
			"{s:i,s:s,s:s,s:s}", "seq", 3, "time",
			"2024-05-01T12:00:05Z", "type", "vm.deleted", "name",
			"t2")));
		jsonrpc_msg_clear(&m);
		return false;
	} else {
		reply(fd, jsonrpc_error_newf(id, -32601, "%s: unknown method",
					     method));
	}
	jsonrpc_msg_clear(&m);
	return true;
}

static void
daemon_main(int lfd)
{
	json_t *req;
	int fd;

	for (;;) {
		fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		while (frame_read_fd(fd, 0, 10000, &req) == 1) {
			bool more = daemon_handle(fd, req);

			json_decref(req);
			if (!more)
				break;
		}
		close(fd);
	}
}

static int
setup(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char uri[160];
	int lfd;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vmctl-run.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(sock_path, sizeof(sock_path), "%s/d.sock", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/requests.log", tmpdir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	fflush(NULL);
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		signal(SIGPIPE, SIG_IGN);
		daemon_main(lfd);
		_exit(0);
	}
	close(lfd);
	snprintf(uri, sizeof(uri), "unix://%s", sock_path);
	setenv("VMCTL_CONNECT", uri, 1);
	/* Never the user's own config. */
	setenv("VMCTL_CONFIG", "/nonexistent/vmctl/config.json", 1);
	return 0;
}

static int
teardown(void **state)
{
	char path[160];

	(void)state;
	kill(daemon_pid, SIGKILL);
	waitpid(daemon_pid, NULL, 0);
	unlink(sock_path);
	unlink(log_path);
	snprintf(path, sizeof(path), "%s/out", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/err", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return 0;
}

/* --- running vmctl ---------------------------------------------------------------- */

struct outcome {
	int status;
	char out[8192];
	char err[4096];
};

static void
slurp_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Run vmctl with the words of line (no quoting) and input on stdin. */
static void
vmctl(struct outcome *o, const char *input, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
vmctl(struct outcome *o, const char *input, const char *fmt, ...)
{
	char line[1024], *argv[64], *save = NULL, *w, outp[160], errp[160];
	int argc = 0, so, se, si, fo, fe, in[2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	argv[argc++] = (char *)(uintptr_t)"vmctl";
	for (w = strtok_r(line, " ", &save); w; w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc] = NULL;

	snprintf(outp, sizeof(outp), "%s/out", tmpdir);
	snprintf(errp, sizeof(errp), "%s/err", tmpdir);
	fflush(NULL);
	so = dup(STDOUT_FILENO);
	se = dup(STDERR_FILENO);
	si = dup(STDIN_FILENO);
	fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(so >= 0 && se >= 0 && si >= 0 && fo >= 0 && fe >= 0);
	assert_int_equal(pipe(in), 0);
	if (input)
		assert_int_equal(write(in[1], input, strlen(input)),
				 (ssize_t)strlen(input));
	close(in[1]);
	dup2(fo, STDOUT_FILENO);
	dup2(fe, STDERR_FILENO);
	dup2(in[0], STDIN_FILENO);
	close(fo);
	close(fe);
	close(in[0]);

	o->status = run_main(argc, argv);

	fflush(NULL);
	dup2(so, STDOUT_FILENO);
	dup2(se, STDERR_FILENO);
	dup2(si, STDIN_FILENO);
	close(so);
	close(se);
	close(si);
	clearerr(stdin);
	slurp_file(outp, o->out, sizeof(o->out));
	slurp_file(errp, o->err, sizeof(o->err));
}

static void
expect(const struct outcome *o, int status, const char *out, const char *err)
{
	if (o->status != status || (out && strcmp(o->out, out) != 0) ||
	    (err && strcmp(o->err, err) != 0))
		fail_msg("expected status %d, stdout \"%s\", stderr \"%s\"\n"
			 "got status %d, stdout \"%s\", stderr \"%s\"", status,
			 out ? out : "(any)", err ? err : "(any)", o->status,
			 o->out, o->err);
}

/* The last request the daemon got, or NULL; and how many there were. */
static json_t *
last_request(int *ret_count)
{
	char buf[65536], *p, *line = NULL;
	int n = 0;

	slurp_file(log_path, buf, sizeof(buf));
	for (p = strtok(buf, "\n"); p; p = strtok(NULL, "\n")) {
		line = p;
		n++;
	}
	if (ret_count)
		*ret_count = n;
	return line ? json_loads(line, 0, NULL) : NULL;
}

/* --- the cases ----------------------------------------------------------------------- */

static void
test_list(void **state)
{
	struct outcome o;
	json_t *req, *got;

	(void)state;
	vmctl(&o, NULL, "list");
	expect(&o, VMCTL_EXIT_OK,
	       "NAME  STATE    VCPUS  MEMORY  PID  UPTIME\n"
	       "t1    running  1      64M     42   1m15s\n", "");
	req = last_request(NULL);
	assert_string_equal(json_string_value(json_object_get(req, "method")),
			    "vm.list");
	assert_int_equal(json_object_size(json_object_get(req, "params")), 0);
	json_decref(req);

	vmctl(&o, NULL, "list --state running --json");
	expect(&o, VMCTL_EXIT_OK, NULL, "");
	got = json_loads(o.out, 0, NULL);
	assert_non_null(got);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(
		json_object_get(got, "vms"), 0), "pid")), 42);
	json_decref(got);
	/* Pretty-printed with sorted keys. */
	assert_non_null(strstr(o.out, "{\n  \"vms\": [\n    {\n      \"memory\""));
	req = last_request(NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
		req, "params"), "state")), "running");
	json_decref(req);
}

static void
test_daemon_errors(void **state)
{
	struct outcome o;

	(void)state;
	vmctl(&o, NULL, "info nope");
	expect(&o, VMCTL_EXIT_DAEMON, "",
	       "vmctl: vm \"nope\" not found (not_found)\n");
	vmctl(&o, NULL, "kill t1");
	expect(&o, VMCTL_EXIT_DAEMON, "", "vmctl: odd (code -32099)\n");
	vmctl(&o, NULL, "stats t1");
	expect(&o, VMCTL_EXIT_DAEMON, "",
	       "vmctl: vm.stats: unknown method (method_not_found)\n");
}

static void
test_create_and_stop(void **state)
{
	struct outcome o;
	json_t *req, *def;
	int before, after;

	(void)state;
	vmctl(&o, NULL, "create --name t1 --kernel /k --memory 64M --cmdline "
	      "testguest.action=echo");
	expect(&o, VMCTL_EXIT_OK, "t1: created, stopped\n", "");
	req = last_request(&before);
	def = json_object_get(json_object_get(req, "params"), "definition");
	assert_string_equal(json_string_value(json_object_get(def, "kernel")),
			    "/k");
	assert_string_equal(json_string_value(json_object_get(def, "memory")),
			    "64M");
	json_decref(req);

	/* A bad definition never reaches the daemon. */
	vmctl(&o, NULL, "create --name t1 --kernel /k --memory 65K");
	expect(&o, VMCTL_EXIT_USAGE, "",
	       "vmctl: create: invalid definition: memory: must be at least "
	       "64M\n");
	json_decref(last_request(&after));
	assert_int_equal(after, before);

	vmctl(&o, NULL, "stop t1 --force --timeout 0");
	expect(&o, VMCTL_EXIT_OK, "t1: stopped (forced)\n", "");
	req = last_request(NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
		req, "params"), "timeout")), 0);
	json_decref(req);
}

static void
test_usage_errors(void **state)
{
	struct outcome o;
	int before, after;

	(void)state;
	json_decref(last_request(&before));
	vmctl(&o, NULL, "list --frob");
	expect(&o, VMCTL_EXIT_USAGE, "", "vmctl: list: unknown option --frob\n");
	vmctl(&o, NULL, "%s", "");
	expect(&o, VMCTL_EXIT_USAGE, "",
	       "vmctl: missing command (see vmctl --help)\n");
	vmctl(&o, NULL, "--connect http://h list");
	expect(&o, VMCTL_EXIT_USAGE, "", "vmctl: bad URI \"http://h\": not a "
	       "URI vmctl knows (unix:///path or tls://host:port)\n");
	vmctl(&o, NULL, "--context prod list");
	expect(&o, VMCTL_EXIT_USAGE, "", "vmctl: context \"prod\": no config "
	       "file at /nonexistent/vmctl/config.json\n");
	json_decref(last_request(&after));
	assert_int_equal(after, before);

	vmctl(&o, NULL, "stop --help");
	expect(&o, VMCTL_EXIT_OK, NULL, "");
	assert_true(strncmp(o.out, "usage: vmctl stop NAME [OPTIONS]\n", 33) == 0);
	vmctl(&o, NULL, "help list");
	expect(&o, VMCTL_EXIT_OK, NULL, "");
	assert_true(strncmp(o.out, "usage: vmctl list [OPTIONS]\n", 28) == 0);
}

static void
test_no_daemon(void **state)
{
	struct outcome o;

	(void)state;
	vmctl(&o, NULL, "--connect unix:///nonexistent/vmmd.sock start t1");
	expect(&o, VMCTL_EXIT_CONNECT, "", "vmctl: cannot connect to "
	       "unix:///nonexistent/vmmd.sock: No such file or directory\n");
	/* The version is the client's even without a daemon. */
	vmctl(&o, NULL, "version --connect unix:///nonexistent/vmmd.sock");
	expect(&o, VMCTL_EXIT_OK, "client: vmctl " VMCTL_VERSION
	       " (protocol 1)\n", "vmctl: cannot connect to "
	       "unix:///nonexistent/vmmd.sock: No such file or directory "
	       "(no daemon version)\n");
	vmctl(&o, NULL, "version");
	expect(&o, VMCTL_EXIT_OK, "client:    vmctl " VMCTL_VERSION
	       " (protocol 1)\ndaemon:    vmmd 0.1.0 (protocol 1) on fake\n"
	       "frame max: 1048576\n", "");
	/* A daemon that hangs up in the middle: exit 3, saying so. */
	vmctl(&o, NULL, "pause t1");
	expect(&o, VMCTL_EXIT_CONNECT, "", NULL);
	assert_non_null(strstr(o.err, "closed the connection before answering"));
}

static void
test_console_and_logs(void **state)
{
	struct outcome o;
	json_t *req;

	(void)state;
	/* Piped: history, then the echo of what we typed; --wait 1 (s). */
	vmctl(&o, "ping-1\n", "console t1 --wait 1");
	expect(&o, VMCTL_EXIT_OK, "HIST\r\nping-1\n", "");
	req = last_request(NULL);
	assert_null(json_object_get(json_object_get(req, "params"), "write"));
	json_decref(req);
	/* logs: exactly the history, not the live output after it. */
	vmctl(&o, NULL, "logs t1");
	expect(&o, VMCTL_EXIT_OK, "HIST\r\n", "");
	req = last_request(NULL);
	assert_true(json_is_false(json_object_get(json_object_get(req,
							"params"), "write")));
	json_decref(req);
}

static void
test_events(void **state)
{
	struct outcome o;

	(void)state;
	vmctl(&o, NULL, "events --type vm.state");
	expect(&o, VMCTL_EXIT_CONNECT,
	       "2024-05-01T12:00:00Z vm.state t1 starting -> running\n"
	       "2024-05-01T12:00:05Z vm.deleted t2\n", NULL);
	assert_non_null(strstr(o.err, "vmctl: 1 events were dropped"));
	assert_non_null(strstr(o.err, "the daemon closed the connection"));
	vmctl(&o, NULL, "events --json");
	assert_int_equal(o.status, VMCTL_EXIT_CONNECT);
	assert_non_null(strstr(o.out, "{\"name\":\"t1\",\"previous\":\"starting\","
			       "\"seq\":1,"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_daemon_errors),
		cmocka_unit_test(test_create_and_stop),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_no_daemon),
		cmocka_unit_test(test_console_and_logs),
		cmocka_unit_test(test_events),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
