/* SPDX-License-Identifier: MIT */
/*
 * vmctl's command line, from its command table. Most cases are golden
 * files: tests/unit/golden/vmctl/args/NAME.args holds one command line
 * (after "vmctl"; words split on blanks, '...' and "..." quote), and
 * NAME.out what parsing it gives:
 *   - the request it sends, as {"method", "params"} plus the client-side
 *     "local" settings when there are any (JSON, sorted keys, indent 2);
 *   - "error: <usage error>" for a command line vmctl refuses (exit 2);
 *   - the help text, for --help.
 * The working directory in the output is written as $CWD, so relative
 * paths can be tested. ok_* cases must parse, err_* must not, help_* must
 * ask for help. VMCTL_GOLDEN_UPDATE=1 rewrites the .out files (review the
 * diff!). After the golden cases: the table itself, and --file from stdin.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/jsonrpc.h"
#include "vmctl/cmd.h"

#define GOLDEN_DIR "tests/unit/golden/vmctl/args"
#define GOLDEN_MAX 512
#define ARGV_MAX 64

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* Split line into argv[1..] in place; argv[0] is "vmctl". Returns argc. */
static int
split_words(char *line, char **argv)
{
	int argc = 1;
	char *r = line, *w;
	char q;

	argv[0] = (char *)(uintptr_t)"vmctl";
	for (;;) {
		while (*r == ' ' || *r == '\t' || *r == '\n')
			r++;
		if (!*r)
			break;
		assert_true(argc < ARGV_MAX - 1);
		argv[argc++] = w = r;
		while (*r && *r != ' ' && *r != '\t' && *r != '\n') {
			if (*r == '\'' || *r == '"') {
				q = *r++;
				while (*r && *r != q)
					*w++ = *r++;
				if (!*r)
					fail_msg("unterminated quote in %s", line);
				r++;
			} else {
				*w++ = *r++;
			}
		}
		if (*r)
			r++;
		*w = '\0';
	}
	argv[argc] = NULL;
	return argc;
}

/* Replace every occurrence of the working directory with $CWD. */
static char *
cwd_to_var(char *s)
{
	char cwd[PATH_MAX], *out, *p, *hit;
	size_t clen, cap;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	clen = strlen(cwd);
	cap = strlen(s) + 1;
	out = malloc(cap);
	assert_non_null(out);
	out[0] = '\0';
	for (p = s; (hit = strstr(p, cwd)); p = hit + clen) {
		strncat(out, p, (size_t)(hit - p));
		strcat(out, "$CWD");
	}
	strcat(out, p);
	free(s);
	return out;
}

/* What a golden case produces. */
static char *
golden_result(char *line, int *ret_kind)
{
	struct cmd_call call = { 0 };
	char *argv[ARGV_MAX], err[1024] = "", *out = NULL, *buf = NULL;
	size_t len = 0;
	json_t *j;
	FILE *f;
	int argc, r;

	argc = split_words(line, argv);
	r = cmd_parse(argc, argv, &call, err, sizeof(err));
	if (r < 0) {
		assert_int_equal(r, -EINVAL);
		assert_null(call.params);
		assert_true(err[0] != '\0');
		assert_null(strchr(err, '\n'));
		assert_int_not_equal(asprintf(&out, "error: %s", err), -1);
		*ret_kind = 'e';
		return cwd_to_var(out);
	}
	assert_true(json_is_object(call.params));
	assert_true(json_is_object(call.local));
	if (json_is_true(json_object_get(call.local, "help"))) {
		f = open_memstream(&buf, &len);
		assert_non_null(f);
		assert_int_equal(cmd_usage(f, call.cmd), 0);
		fclose(f);
		/* The golden file keeps one final newline. */
		while (len && buf[len - 1] == '\n')
			buf[--len] = '\0';
		cmd_call_clear(&call);
		*ret_kind = 'h';
		return buf;
	}
	assert_non_null(call.cmd);
	/* Every request we would send is a valid JSON-RPC request. */
	if (call.cmd->method) {
		json_t *req = jsonrpc_request_new(1, call.cmd->method,
						  json_deep_copy(call.params));
		assert_non_null(req);
		json_decref(req);
	}
	j = json_pack("{s:s?,s:O}", "method", call.cmd->method, "params",
		      call.params);
	assert_non_null(j);
	if (json_object_size(call.local))
		json_object_set(j, "local", call.local);
	out = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2));
	assert_non_null(out);
	json_decref(j);
	cmd_call_clear(&call);
	*ret_kind = 'o';
	return cwd_to_var(out);
}

static void
test_golden_case(void **state)
{
	const char *name = *state;
	char path[512], *line, *want, *got;
	size_t wlen;
	int kind = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.args", GOLDEN_DIR, name);
	line = read_file(path);
	if (!line)
		fail_msg("cannot read %s", path);
	got = golden_result(line, &kind);
	snprintf(path, sizeof(path), "%s/%s.out", GOLDEN_DIR, name);
	if (getenv("VMCTL_GOLDEN_UPDATE")) {
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "%s\n", got);
		fclose(f);
	}
	want = read_file(path);
	if (!want)
		fail_msg("cannot read %s (VMCTL_GOLDEN_UPDATE=1 writes it)",
			 path);
	wlen = strlen(want);
	while (wlen && want[wlen - 1] == '\n')
		want[--wlen] = '\0';
	if (strcmp(want, got) != 0)
		fail_msg("%s: expected\n%s\nbut got\n%s", name, want, got);
	/* The name says what the case must be. */
	if (strncmp(name, "err_", 4) == 0)
		assert_int_equal(kind, 'e');
	else if (strncmp(name, "help_", 5) == 0)
		assert_int_equal(kind, 'h');
	else if (strncmp(name, "ok_", 3) == 0)
		assert_int_equal(kind, 'o');
	else
		fail_msg("%s: a case is named ok_*, err_* or help_*", name);
	free(want);
	free(got);
	free(line);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t
golden_list(char **names, size_t max)
{
	DIR *d = opendir(GOLDEN_DIR);
	struct dirent *e;
	size_t n = 0, len;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".args") == 0)
			names[n++] = strndup(e->d_name, len - 5);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	return n;
}

/* --- the table ------------------------------------------------------------ */

static int
parse_words(const char *line, struct cmd_call *call, char *err, size_t errlen)
{
	char *copy = strdup(line), *argv[ARGV_MAX];
	int argc, r;

	assert_non_null(copy);
	argc = split_words(copy, argv);
	r = cmd_parse(argc, argv, call, err, errlen);
	free(copy);
	return r;
}

/* Every command has a help text naming it and each of its options. */
static void
test_every_command_has_help(void **state)
{
	const struct cmd_opt *o;
	char *buf = NULL, needle[96];
	size_t len = 0, i;
	FILE *f;

	(void)state;
	assert_true(cmd_table_len >= 17);
	for (i = 0; i < cmd_table_len; i++) {
		const struct cmd *cmd = &cmd_table[i];

		assert_ptr_equal(cmd_find(cmd->name), cmd);
		assert_non_null(cmd->summary);
		assert_non_null(cmd->run);
		f = open_memstream(&buf, &len);
		assert_int_equal(cmd_usage(f, cmd), 0);
		fclose(f);
		snprintf(needle, sizeof(needle), "usage: vmctl %s", cmd->name);
		if (!strstr(buf, needle))
			fail_msg("help of %s lacks \"%s\":\n%s", cmd->name,
				 needle, buf);
		for (o = cmd->opts; o && o->name; o++) {
			snprintf(needle, sizeof(needle), "--%s", o->name);
			if (!strstr(buf, needle))
				fail_msg("help of %s lacks %s", cmd->name,
					 needle);
			assert_non_null(o->help);
			assert_true(o->kind < CMD_OPT_KIND_MAX);
			if (o->kind == CMD_OPT_FUNC)
				assert_non_null(o->parse);
			if (o->kind != CMD_OPT_FUNC)
				assert_non_null(o->key);
			/* Flags and valued options never mix up. */
			if (o->kind == CMD_OPT_FLAG || o->kind == CMD_OPT_FALSE)
				assert_null(o->metavar);
			else
				assert_non_null(o->metavar);
		}
		free(buf);
		buf = NULL;
	}
	/* The program's help lists every command. */
	f = open_memstream(&buf, &len);
	assert_int_equal(cmd_usage(f, NULL), 0);
	fclose(f);
	for (i = 0; i < cmd_table_len; i++) {
		snprintf(needle, sizeof(needle), "\n  %s ", cmd_table[i].name);
		if (!strstr(buf, needle))
			fail_msg("vmctl --help lacks %s", cmd_table[i].name);
	}
	assert_non_null(strstr(buf, "Exit status: 0 success, 1 an error from"));
	free(buf);
	assert_null(cmd_find("frobnicate"));
	assert_null(cmd_find(""));
}

/* Every command that takes a VM name refuses to run without one. */
static void
test_name_required(void **state)
{
	struct cmd_call call = { 0 };
	char line[64], err[512];
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < cmd_table_len; i++) {
		if (cmd_table[i].arg != CMD_ARG_NAME)
			continue;
		snprintf(line, sizeof(line), "%s", cmd_table[i].name);
		r = parse_words(line, &call, err, sizeof(err));
		assert_int_equal(r, -EINVAL);
		snprintf(line, sizeof(line), "%s: missing argument NAME",
			 cmd_table[i].name);
		assert_string_equal(err, line);
		/* And with one, the name lands in params.name. */
		if (strcmp(cmd_table[i].name, "set") == 0)
			continue;
		snprintf(line, sizeof(line), "%s vm-1.a", cmd_table[i].name);
		r = parse_words(line, &call, err, sizeof(err));
		if (r < 0)
			fail_msg("%s: %s", line, err);
		assert_string_equal(json_string_value(json_object_get(
			call.params, "name")), "vm-1.a");
		cmd_call_clear(&call);
	}
}

/* --file - reads the definition from stdin. */
static void
test_create_file_stdin(void **state)
{
	static const char def[] =
		"{\"name\":\"piped\",\"kernel\":\"/k\",\"memory\":\"128M\"}";
	struct cmd_call call = { 0 };
	char err[512];
	int p[2], saved;
	json_t *d;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], def, sizeof(def) - 1),
			 (ssize_t)sizeof(def) - 1);
	close(p[1]);
	saved = dup(STDIN_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
	close(p[0]);
	clearerr(stdin);
	assert_int_equal(parse_words("create --file - --start", &call, err,
				     sizeof(err)), 0);
	assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
	close(saved);
	clearerr(stdin);
	d = json_object_get(call.params, "definition");
	assert_string_equal(json_string_value(json_object_get(d, "name")),
			    "piped");
	assert_string_equal(json_string_value(json_object_get(d, "memory")),
			    "128M");
	assert_true(json_is_true(json_object_get(call.params, "start")));
	cmd_call_clear(&call);
}

/* A cleared call can be cleared again; a failed parse leaves nothing. */
static void
test_call_clear(void **state)
{
	struct cmd_call call = { 0 };
	char err[512];

	(void)state;
	cmd_call_clear(&call);
	assert_int_equal(parse_words("stop web1 --timeout x", &call, err,
				     sizeof(err)), -EINVAL);
	assert_null(call.cmd);
	assert_null(call.params);
	assert_null(call.local);
	cmd_call_clear(&call);
	assert_int_equal(parse_words("list", &call, err, sizeof(err)), 0);
	cmd_call_clear(&call);
	assert_null(call.params);
	cmd_call_clear(&call);
}

int
main(void)
{
	static char *names[GOLDEN_MAX];
	static struct CMUnitTest golden[GOLDEN_MAX];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_has_help),
		cmocka_unit_test(test_name_required),
		cmocka_unit_test(test_create_file_stdin),
		cmocka_unit_test(test_call_clear),
	};
	size_t n, i;
	int fails;

	n = golden_list(names, GOLDEN_MAX);
	if (n < 30) {
		fprintf(stderr, "expected at least 30 cases in %s, found %zu "
			"(run from the top of the tree)\n", GOLDEN_DIR, n);
		return 1;
	}
	for (i = 0; i < n; i++)
		golden[i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_golden_case,
			.initial_state = names[i],
		};
	fails = _cmocka_run_group_tests("vmctl_args_golden", golden, n, NULL,
					NULL);
	fails += cmocka_run_group_tests(tests, NULL, NULL);
	for (i = 0; i < n; i++)
		free(names[i]);
	return fails ? 1 : 0;
}
