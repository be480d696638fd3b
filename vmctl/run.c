/* SPDX-License-Identifier: MIT */
/* Running a parsed command: connect, request, show, exit status. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "proto/errors.h"
#include "vmctl/client.h"
#include "vmctl/cmd.h"
#include "vmctl/config.h"
#include "vmctl/console.h"
#include "vmctl/output.h"
#include "vmctl/run.h"
#include "vmctl/vmctl.h"

/* How long a console may take to answer while we read its history. */
#define RUN_LOGS_QUIET_MS 10000

/* Set by SIGINT/SIGTERM where a command ends cleanly on them (events). */
static volatile sig_atomic_t run_stop;

static void
run_on_stop(int sig)
{
	(void)sig;
	run_stop = 1;
}

/* Catch SIGINT, SIGTERM and SIGHUP without SA_RESTART: waits end with EINTR. */
static void
run_catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static const char *
local_str(const struct run_ctx *ctx, const char *key)
{
	return json_string_value(json_object_get(ctx->call->local, key));
}

static bool
local_true(const struct run_ctx *ctx, const char *key)
{
	return json_is_true(json_object_get(ctx->call->local, key));
}

/*
 * Connect; on failure msg says why and the exit status says whether it was
 * the configuration (VMCTL_EXIT_USAGE) or the connection.
 */
static int
run_connect_msg(struct run_ctx *ctx, char *msg, size_t msglen)
{
	struct config_input in = {
		.connect = local_str(ctx, "connect"),
		.context = local_str(ctx, "context"),
		.cert = local_str(ctx, "cert"),
		.key = local_str(ctx, "key"),
		.ca = local_str(ctx, "ca"),
		.env_connect = getenv("VMCTL_CONNECT"),
	};
	struct config_target t = { 0 };
	struct client_uri uri;
	char path[4096], err[512] = "";
	int r, status = VMCTL_EXIT_OK;

	if (in.env_connect && !in.env_connect[0])
		in.env_connect = NULL;
	/* VMCTL_CONFIG names another config file (tests, several setups). */
	if (getenv("VMCTL_CONFIG") && getenv("VMCTL_CONFIG")[0])
		in.config_path = getenv("VMCTL_CONFIG");
	else if (config_default_path(path, sizeof(path)) == 0)
		in.config_path = path;
	r = config_resolve(&in, &t, err, sizeof(err));
	if (r < 0) {
		snprintf(msg, msglen, "%s", err);
		return VMCTL_EXIT_USAGE;
	}
	if (client_uri_parse(t.uri, &uri, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "bad URI %s", err);
		status = VMCTL_EXIT_USAGE;
		goto out;
	}
	r = client_connect(t.uri, t.cert, t.key, t.ca, &ctx->client, err,
			   sizeof(err));
	if (r < 0) {
		snprintf(msg, msglen, "cannot connect to %s: %s", t.uri, err);
		status = VMCTL_EXIT_CONNECT;
	}
out:
	config_target_clear(&t);
	return status;
}

int
run_connect(struct run_ctx *ctx)
{
	char msg[1024];
	int r = run_connect_msg(ctx, msg, sizeof(msg));

	if (r != VMCTL_EXIT_OK)
		fprintf(ctx->errf, "vmctl: %s\n", msg);
	return r;
}

/* Print a daemon error or a transport failure; the exit status for it. */
static int
run_report(struct run_ctx *ctx, int r, const struct client_rpc_error *rpc,
	   const char *err)
{
	const char *name;

	if (r == 1) {
		name = proto_err_name(rpc->code);
		if (name)
			fprintf(ctx->errf, "vmctl: %s (%s)\n", rpc->message,
				name);
		else
			fprintf(ctx->errf, "vmctl: %s (code %d)\n",
				rpc->message, rpc->code);
		return VMCTL_EXIT_DAEMON;
	}
	fprintf(ctx->errf, "vmctl: %s: %s\n", client_uri_text(ctx->client),
		err);
	return VMCTL_EXIT_CONNECT;
}

/* Send the call's request; 0 with *ret_result, else the exit status. */
static int
run_request(struct run_ctx *ctx, json_t **ret_result)
{
	const struct cmd *cmd = ctx->call->cmd;
	struct client_rpc_error rpc;
	char err[512] = "";
	int r;

	r = client_call(ctx->client, cmd->method,
			json_deep_copy(ctx->call->params), -1, ret_result,
			&rpc, err, sizeof(err));
	if (r == 0)
		return 0;
	return run_report(ctx, r, &rpc, err);
}

static int
run_show(struct run_ctx *ctx, json_t *result)
{
	const struct cmd *cmd = ctx->call->cmd;
	int r;

	if (ctx->json || !cmd->format)
		r = output_json(ctx->out, result);
	else
		r = cmd->format(ctx->out, result);
	if (r == 0 && fflush(ctx->out) != 0)
		r = -EIO;
	if (r < 0) {
		fprintf(ctx->errf, "vmctl: writing the result: %s\n",
			strerror(-r));
		return VMCTL_EXIT_DAEMON;
	}
	return VMCTL_EXIT_OK;
}

int
run_call(struct run_ctx *ctx)
{
	json_t *result = NULL;
	int r;

	r = run_connect(ctx);
	if (r != VMCTL_EXIT_OK)
		return r;
	r = run_request(ctx, &result);
	if (r != 0)
		return r;
	r = run_show(ctx, result);
	json_decref(result);
	return r;
}

int
run_help(struct run_ctx *ctx)
{
	const char *topic = local_str(ctx, "topic");

	return cmd_usage(ctx->out, topic ? cmd_find(topic) : NULL) < 0 ?
		VMCTL_EXIT_DAEMON : VMCTL_EXIT_OK;
}

/* Attach to the console: the result frame, then raw bytes. */
static int
run_attach(struct run_ctx *ctx, json_t **ret_result)
{
	json_t *result = NULL;
	int r;

	r = run_connect(ctx);
	if (r != VMCTL_EXIT_OK)
		return r;
	r = run_request(ctx, &result);
	if (r != 0)
		return r;
	*ret_result = result;
	return 0;
}

static int
run_relay_end(struct run_ctx *ctx, int r, enum console_end end,
	      const char *err, bool tty)
{
	if (r < 0) {
		fprintf(ctx->errf, "%svmctl: %s: %s\n", tty ? "\r\n" : "",
			client_uri_text(ctx->client), err);
		return VMCTL_EXIT_CONNECT;
	}
	if (tty && end == CONSOLE_END_CLOSED)
		fprintf(ctx->errf, "\r\nvmctl: the console was closed\r\n");
	else if (tty)
		fprintf(ctx->errf, "\r\n");
	return VMCTL_EXIT_OK;
}

int
run_console(struct run_ctx *ctx)
{
	json_t *result = NULL, *wait = json_object_get(ctx->call->local, "wait");
	struct console_opts o = {
		.in_fd = ctx->in_fd,
		.out_fd = ctx->out_fd,
		.linger_ms = json_is_integer(wait) ?
			(int)json_integer_value(wait) * 1000 : 1000,
		.quiet_ms = -1,
		.stop = &run_stop,
	};
	enum console_end end = CONSOLE_END_CLOSED;
	char err[512] = "";
	const char *name;
	int r;

	o.tty = isatty(ctx->in_fd) && isatty(ctx->out_fd);
	r = run_attach(ctx, &result);
	if (r != 0)
		return r;
	o.write = json_is_true(json_object_get(result, "writer"));
	if (!o.tty)
		run_catch_stop_signals();
	if (o.tty) {
		name = json_string_value(json_object_get(result, "name"));
		fprintf(ctx->errf, "Connected to %s%s (detach with Ctrl-])\n",
			name ? name : "the console",
			o.write ? "" : ", read-only");
		r = console_tty_raw(ctx->in_fd);
		if (r < 0) {
			fprintf(ctx->errf, "vmctl: cannot set up the terminal: %s\n",
				strerror(-r));
			json_decref(result);
			return VMCTL_EXIT_USAGE;
		}
	}
	json_decref(result);
	r = console_relay(ctx->client, &o, &end, err, sizeof(err));
	console_tty_restore();
	return run_relay_end(ctx, r, end, err, o.tty);
}

int
run_logs(struct run_ctx *ctx)
{
	json_t *result = NULL, *hb;
	struct console_opts o = {
		.in_fd = -1,
		.out_fd = ctx->out_fd,
		.write = false,
		.tty = false,
		.linger_ms = -1,
		.quiet_ms = RUN_LOGS_QUIET_MS,
		.stop = &run_stop,
	};
	bool follow = local_true(ctx, "follow");
	enum console_end end = CONSOLE_END_CLOSED;
	char err[512] = "";
	int r;

	r = run_attach(ctx, &result);
	if (r != 0)
		return r;
	hb = json_object_get(result, "history_bytes");
	if (!json_is_integer(hb) || json_integer_value(hb) < 0) {
		fprintf(ctx->errf, "vmctl: the daemon's answer has no history_bytes\n");
		json_decref(result);
		return VMCTL_EXIT_CONNECT;
	}
	o.limit = (uint64_t)json_integer_value(hb);
	json_decref(result);
	run_catch_stop_signals();
	if (follow) {
		/* The history and then everything live: no end but ours. */
		o.limit = 0;
		o.quiet_ms = -1;
	} else if (o.limit == 0) {
		return VMCTL_EXIT_OK;
	}
	r = console_relay(ctx->client, &o, &end, err, sizeof(err));
	return run_relay_end(ctx, r, end, err, false);
}

int
run_events(struct run_ctx *ctx)
{
	json_t *result = NULL, *msg, *params, *seq;
	char err[512] = "";
	json_int_t last = -1, s;
	int r;

	r = run_connect(ctx);
	if (r != VMCTL_EXIT_OK)
		return r;
	run_catch_stop_signals();
	client_set_stop_flag(ctx->client, &run_stop);
	r = run_request(ctx, &result);
	if (r != 0)
		return run_stop ? VMCTL_EXIT_OK : r;
	json_decref(result);
	for (;;) {
		r = client_next_notification(ctx->client, -1, &msg, err,
					     sizeof(err));
		if (r == -EINTR || run_stop)
			return VMCTL_EXIT_OK;
		if (r == 0) {
			fprintf(ctx->errf, "vmctl: %s: the daemon closed the connection\n",
				client_uri_text(ctx->client));
			return VMCTL_EXIT_CONNECT;
		}
		if (r < 0) {
			fprintf(ctx->errf, "vmctl: %s: %s\n",
				client_uri_text(ctx->client), err);
			return VMCTL_EXIT_CONNECT;
		}
		params = json_object_get(msg, "params");
		if (strcmp(json_string_value(json_object_get(msg, "method")),
			   "event") == 0 && json_is_object(params)) {
			seq = json_object_get(params, "seq");
			if (json_is_integer(seq)) {
				s = json_integer_value(seq);
				if (last >= 0 && s > last + 1)
					fprintf(ctx->errf,
						"vmctl: %" JSON_INTEGER_FORMAT
						" events were dropped; "
						"vmctl list shows the state\n",
						s - last - 1);
				last = s;
			}
			r = output_event(ctx->out, params, ctx->json);
			if (r == 0 && fflush(ctx->out) != 0)
				r = -EIO;
			if (r < 0) {
				json_decref(msg);
				return VMCTL_EXIT_OK;	/* the reader went away */
			}
		}
		json_decref(msg);
	}
}

int
run_version(struct run_ctx *ctx)
{
	struct client_rpc_error rpc;
	json_t *info = NULL, *all;
	char err[512] = "", msg[1024] = "";
	int r, status;

	/*
	 * The client's version is the answer; the daemon's is a bonus, so
	 * not reaching it is said on stderr but is not a failure.
	 */
	status = run_connect_msg(ctx, msg, sizeof(msg));
	if (status == VMCTL_EXIT_USAGE) {
		fprintf(ctx->errf, "vmctl: %s\n", msg);
		return status;
	}
	if (status == VMCTL_EXIT_OK) {
		r = client_call(ctx->client, "daemon.info", json_object(), -1,
				&info, &rpc, err, sizeof(err));
		if (r != 0)
			status = run_report(ctx, r, &rpc, err);
	}
	if (ctx->json) {
		all = json_pack("{s:{s:s,s:i}}", "client", "version",
				VMCTL_VERSION, "protocol", VMCTL_PROTOCOL);
		if (all && info)
			json_object_set(all, "daemon", info);
		r = all ? output_json(ctx->out, all) : -ENOMEM;
		json_decref(all);
	} else {
		r = output_version(ctx->out, info);
	}
	fflush(ctx->out);
	if (msg[0])
		fprintf(ctx->errf, "vmctl: %s (no daemon version)\n", msg);
	json_decref(info);
	if (r < 0)
		return VMCTL_EXIT_DAEMON;
	return status == VMCTL_EXIT_DAEMON ? status : VMCTL_EXIT_OK;
}

int
run_main(int argc, char *argv[])
{
	struct cmd_call call = { 0 };
	struct run_ctx ctx = {
		.call = &call,
		.out = stdout,
		.errf = stderr,
		.out_fd = STDOUT_FILENO,
		.in_fd = STDIN_FILENO,
	};
	char err[1024];
	int r;

	/* A daemon that hangs up is an error to report, not a signal to die of. */
	signal(SIGPIPE, SIG_IGN);
	r = cmd_parse(argc, argv, &call, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "vmctl: %s\n", err);
		return VMCTL_EXIT_USAGE;
	}
	if (json_is_true(json_object_get(call.local, "help"))) {
		r = cmd_usage(stdout, call.cmd) < 0 ? VMCTL_EXIT_DAEMON :
			VMCTL_EXIT_OK;
		goto out;
	}
	ctx.json = json_is_true(json_object_get(call.local, "json"));
	r = call.cmd->run(&ctx);
	fflush(stdout);
out:
	client_free(ctx.client);
	cmd_call_clear(&call);
	return r;
}
