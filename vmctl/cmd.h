/* SPDX-License-Identifier: MIT */
/*
 * vmctl's command table: one row per command names its argument, its
 * options, the request it sends and how its result is shown. Parsing, the
 * --help texts and the requests all come from the table, so a command is
 * one row (plus, at most, an option callback and a formatter).
 *
 * A parsed command line is a struct cmd_call: the command, the request's
 * params and "local" settings that stay in the client (--connect, --json,
 * --wait...). Option values land at a dotted key: "definition.vcpus" in
 * params, "local.json" in the local object.
 */
#ifndef VMCTL_CMD_H
#define VMCTL_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "vmctl/output.h"

struct cmd_call;
struct run_ctx;

enum cmd_opt_kind {
	CMD_OPT_FLAG,		/* no value: key = true */
	CMD_OPT_FALSE,		/* no value: key = false (--read-only) */
	CMD_OPT_STRING,		/* key = the value */
	CMD_OPT_PATH,		/* key = the value, made absolute */
	CMD_OPT_UINT,		/* key = an integer from min to max */
	CMD_OPT_SIZE,		/* key = a size string ("512M"), checked */
	CMD_OPT_FUNC,		/* parse() does it */
	CMD_OPT_KIND_MAX,
};

/* May be given more than once. */
#define CMD_OPT_REPEAT	(1u << 0)
/* Applied before every other option, wherever it is (create --file). */
#define CMD_OPT_EARLY	(1u << 1)

struct cmd_opt {
	const char *name;	/* without "--"; NULL ends a table */
	const char *metavar;	/* the value's name in help; NULL: a flag */
	enum cmd_opt_kind kind;
	const char *key;	/* where the value goes */
	int64_t min, max;	/* CMD_OPT_UINT */
	/* CMD_OPT_FUNC: 0, or -EINVAL with the problem (without the option's name) in err. */
	int (*parse)(struct cmd_call *call, const struct cmd_opt *opt,
		     const char *value, char *err, size_t errlen);
	unsigned int flags;
	const char *help;
};

enum cmd_arg {
	CMD_ARG_NONE,
	CMD_ARG_NAME,		/* a VM name, required: params.name */
	CMD_ARG_TOPIC,		/* a command name, optional: local.topic */
	CMD_ARG_MAX,
};

struct cmd {
	const char *name;
	enum cmd_arg arg;
	const char *summary;	/* one line, for the command list */
	const char *method;	/* the request it sends; NULL: none */
	const struct cmd_opt *opts;	/* NULL or ends with a NULL name */
	/* After the options: check and complete params; as parse(). */
	int (*finish)(struct cmd_call *call, char *err, size_t errlen);
	/* Runs it (vmctl/run.c); returns an exit status. */
	int (*run)(struct run_ctx *ctx);
	output_fn format;	/* the result for people */
	const char *details;	/* a paragraph for --help, or NULL */
};

extern const struct cmd cmd_table[];
extern const size_t cmd_table_len;
/* The options every command takes (--connect, --json, --help...). */
extern const struct cmd_opt cmd_global_opts[];

struct cmd_call {
	const struct cmd *cmd;	/* NULL: no command, only global options */
	json_t *params;		/* the request's params, an object */
	json_t *local;		/* client-side settings, an object */
};

/* The row of a command, or NULL. */
const struct cmd *cmd_find(const char *name);

/*
 * Parse argv[1..argc) (argv[0] is the program): global options, the
 * command, its argument and options, in any order after the command.
 * Once --help (or -h) is seen, the rest is not looked at and local.help
 * is true. Returns 0 with *ret filled (cmd_call_clear() it), -EINVAL with
 * a usage error in err ("stop: --timeout: \"x\": must be an integer from 0
 * to 3600"), or -ENOMEM.
 */
int cmd_parse(int argc, char *const argv[], struct cmd_call *ret, char *err,
	      size_t errlen);

/* Release what a cmd_call holds; a zeroed one is fine. */
void cmd_call_clear(struct cmd_call *call);

/* The help of a command, or with NULL the program's. 0 or -EIO. */
int cmd_usage(FILE *f, const struct cmd *cmd);

#endif
