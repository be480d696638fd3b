/* SPDX-License-Identifier: MIT */
/*
 * What vmctl prints: the raw result for --json (pretty, sorted keys), and
 * for people a table (list), key: value lines (info, version) or sections
 * (stats). The human formatters take whatever the daemon sent: a member
 * missing or of another type prints as "-", members this client does not
 * know are printed generically at the end, and control characters in
 * strings become '?', so a newer daemon never breaks an older client and a
 * string cannot drive the terminal.
 *
 * Every formatter borrows its JSON and returns 0 or -EIO when writing to f
 * failed.
 */
#ifndef VMCTL_OUTPUT_H
#define VMCTL_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* A result formatter as the command table names it. */
typedef int (*output_fn)(FILE *f, json_t *result);

/* v pretty-printed: two-space indent, sorted keys, a final newline. */
int output_json(FILE *f, json_t *v);

/* One compact line with sorted keys (for streams such as events). */
int output_json_line(FILE *f, json_t *v);

/* vm.list: NAME STATE VCPUS MEMORY PID UPTIME, one VM a line. */
int output_list(FILE *f, json_t *result);

/* vm.info: "key: value" lines, the definition flattened into them. */
int output_info(FILE *f, json_t *result);

/* vm.stats: a header, then cpu, memory, each disk and each NIC. */
int output_stats(FILE *f, json_t *result);

/* vm.create: "web1: created, stopped". */
int output_created(FILE *f, json_t *result);

/* vm.delete: "web1: deleted". */
int output_deleted(FILE *f, json_t *result);

/* vm.start, stop, kill, pause, resume, restart: "web1: running (pid 42)". */
int output_state(FILE *f, json_t *result);

/* vm.set: "web1: updated, applied to the running VM". */
int output_updated(FILE *f, json_t *result);

/*
 * An event notification's params: "TIME TYPE NAME [details]", or with
 * json one compact line.
 */
int output_event(FILE *f, json_t *params, int json);

/*
 * vmctl version: this client, then daemon.info's result (NULL when there
 * is no daemon to ask).
 */
int output_version(FILE *f, json_t *daemon_info);

/* "59s", "2m05s", "1h00m", "3d04h". */
void output_duration(uint64_t sec, char *buf, size_t len);

/* A byte count for people: "512", "1.5K", "2.0G" (binary units). */
void output_human_bytes(uint64_t bytes, char *buf, size_t len);

#endif
