/* SPDX-License-Identifier: MIT */
/*
 * Running a parsed command: connect (vmctl/config.h picks where), send the
 * request, show the result or the error, and turn the outcome into vmctl's
 * exit status (vmctl/vmctl.h). Messages for people go to stderr as
 * "vmctl: <message>", a daemon error as "vmctl: <message> (<code name>)".
 */
#ifndef VMCTL_RUN_H
#define VMCTL_RUN_H

#include <stdio.h>

struct cmd_call;
struct client;

struct run_ctx {
	const struct cmd_call *call;
	struct client *client;	/* once run_connect() succeeded */
	FILE *out;		/* results (stdout) */
	FILE *errf;		/* messages (stderr) */
	int json;		/* --json */
	int out_fd;		/* raw console bytes (stdout's fd) */
	int in_fd;		/* console input (stdin's fd) */
};

/*
 * Connect as the call's local settings and config file say. Returns
 * VMCTL_EXIT_OK, or prints why and returns VMCTL_EXIT_USAGE (a bad config)
 * or VMCTL_EXIT_CONNECT.
 */
int run_connect(struct run_ctx *ctx);

/* The row runners of the command table. */
int run_call(struct run_ctx *ctx);	/* one request, its result shown */
int run_help(struct run_ctx *ctx);
int run_console(struct run_ctx *ctx);
int run_logs(struct run_ctx *ctx);
int run_events(struct run_ctx *ctx);
int run_version(struct run_ctx *ctx);

/* The whole program: parse argv, run, return the exit status. */
int run_main(int argc, char *argv[]);

#endif
