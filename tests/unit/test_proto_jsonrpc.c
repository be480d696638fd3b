/* SPDX-License-Identifier: MIT */
/*
 * JSON-RPC 2.0 messages: every validation rule of the parser, with the
 * code and the message it must give, and the builders' exact output.
 * Golden cases: every tests/unit/golden/jsonrpc/NAME.json is parsed and
 * described in one line, compared with NAME.out: "request id=.. method=..
 * params=..", "notification ..", "result ..", "error ..", or for a
 * rejected message "reject " and the error response a server sends.
 * PROTO_GOLDEN_UPDATE=1 rewrites the .out files.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proto/errors.h"
#include "proto/jsonrpc.h"

/* Parse text, expect a rejection with code and message; returns perr.id. */
static void
expect_reject(const char *text, int code, const char *message,
	      const char *want_id)
{
	struct jsonrpc_msg m = { 0 };
	struct jsonrpc_perr perr = { 0 };
	char *id;
	int r;

	r = jsonrpc_parse(text, strlen(text), &m, &perr);
	if (r != (code == PROTO_ERR_PARSE ? -EBADMSG : -EPROTO))
		fail_msg("%s: returned %d, message \"%s\"", text, r,
			 perr.message);
	assert_null(m.root);
	assert_int_equal(perr.code, code);
	if (strcmp(perr.message, message) != 0)
		fail_msg("%s: expected \"%s\", got \"%s\"", text, message,
			 perr.message);
	if (!want_id) {
		assert_null(perr.id);
	} else {
		assert_non_null(perr.id);
		id = json_dumps(perr.id, JSON_ENCODE_ANY);
		assert_string_equal(id, want_id);
		free(id);
	}
	jsonrpc_perr_clear(&perr);
	assert_null(perr.id);
}

static void
parse_ok(const char *text, struct jsonrpc_msg *m)
{
	struct jsonrpc_perr perr = { 0 };
	int r;

	r = jsonrpc_parse(text, strlen(text), m, &perr);
	if (r != 0)
		fail_msg("%s: returned %d: %s", text, r, perr.message);
	assert_null(perr.id);
}

static void
test_parse_errors(void **state)
{
	struct jsonrpc_msg m = { 0 };
	struct jsonrpc_perr perr = { 0 };

	(void)state;
	expect_reject("{\"jsonrpc\":\"2.0\",", PROTO_ERR_PARSE,
		      "invalid JSON at byte 17: string or '}' expected near end of file",
		      NULL);
	expect_reject("", PROTO_ERR_PARSE,
		      "invalid JSON at byte 0: unexpected token near end of file",
		      NULL);
	expect_reject("{\"id\":1,\"id\":2}", PROTO_ERR_PARSE,
		      "invalid JSON at byte 12: duplicate object key near '\"id\"'",
		      NULL);
	/* perr may be NULL. */
	assert_int_equal(jsonrpc_parse("nope", 4, &m, NULL), -EBADMSG);
	assert_int_equal(jsonrpc_parse("[]", 2, &m, NULL), -EPROTO);
	/* A NUL inside the payload is not JSON. */
	assert_int_equal(jsonrpc_parse("{}\0{}", 5, &m, &perr), -EBADMSG);
	assert_int_equal(perr.code, PROTO_ERR_PARSE);
	jsonrpc_perr_clear(&perr);
}

static void
test_invalid_requests(void **state)
{
	const int ir = PROTO_ERR_INVALID_REQUEST;
	char text[300], method[130];

	(void)state;
	expect_reject("5", ir, "message: must be an object", NULL);
	expect_reject("\"x\"", ir, "message: must be an object", NULL);
	expect_reject("[{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1}]", ir,
		      "batch requests are not supported", NULL);
	/* A bad id is not echoed; a good one is, whatever else is wrong. */
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":1.5}", ir,
		      "id: must be an integer, a string or null", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":true}", ir,
		      "id: must be an integer, a string or null", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":{}}", ir,
		      "id: must be an integer, a string or null", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"id\":7,\"param\":{}}",
		      ir, "param: unknown member", "7");
	expect_reject("{\"method\":\"a\",\"id\":\"x-1\"}", ir,
		      "jsonrpc: required", "\"x-1\"");
	expect_reject("{\"jsonrpc\":\"1.0\",\"method\":\"a\",\"id\":2}", ir,
		      "jsonrpc: must be \"2.0\"", "2");
	expect_reject("{\"jsonrpc\":2.0,\"method\":\"a\",\"id\":2}", ir,
		      "jsonrpc: must be \"2.0\"", "2");
	expect_reject("{\"jsonrpc\":\"2.0 \",\"method\":\"a\"}", ir,
		      "jsonrpc: must be \"2.0\"", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"result\":{},\"id\":3}",
		      ir, "result: not allowed in a request", "3");
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"error\":{},\"id\":3}",
		      ir, "error: not allowed in a request", "3");
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":5,\"id\":3}", ir,
		      "method: must be a string", "3");
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":null}", ir,
		      "method: must be 1 to 128 bytes without NUL", "null");
	memset(method, 'm', 129);
	method[129] = '\0';
	snprintf(text, sizeof(text),
		 "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":4}", method);
	expect_reject(text, ir, "method: must be 1 to 128 bytes without NUL",
		      "4");
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":\"x\",\"id\":5}",
		      ir, "params: must be an object or an array", "5");
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":null}",
		      ir, "params: must be an object or an array", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":3,\"id\":5}",
		      ir, "params: must be an object or an array", "5");
	expect_reject("{\"jsonrpc\":\"2.0\",\"id\":6}", ir,
		      "method: required (or result or error in a response)",
		      "6");
	/* Responses. */
	expect_reject("{\"jsonrpc\":\"2.0\",\"result\":{},\"error\":{},\"id\":6}",
		      ir, "result and error: a response has exactly one", "6");
	expect_reject("{\"jsonrpc\":\"2.0\",\"result\":{},\"params\":{},\"id\":6}",
		      ir, "params: not allowed in a response", "6");
	expect_reject("{\"jsonrpc\":\"2.0\",\"result\":{}}", ir,
		      "id: required in a response", NULL);
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":\"bad\",\"id\":8}", ir,
		      "error: must be an object", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"message\":\"m\"},\"id\":8}",
		      ir, "error.code: required", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":\"1\",\"message\":\"m\"},\"id\":8}",
		      ir, "error.code: must be an integer", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1.0,"
		      "\"message\":\"m\"},\"id\":8}",
		      ir, "error.code: must be an integer", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":4294967296,"
		      "\"message\":\"m\"},\"id\":8}",
		      ir, "error.code: out of range", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001},\"id\":8}",
		      ir, "error.message: required", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,"
		      "\"message\":null},\"id\":8}",
		      ir, "error.message: must be a string", "8");
	expect_reject("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,"
		      "\"message\":\"m\",\"extra\":1},\"id\":8}",
		      ir, "error.extra: unknown member", "8");
}

static void
test_valid_messages(void **state)
{
	struct jsonrpc_msg m = { 0 };
	char method[129];
	char text[300];

	(void)state;
	parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"vm.start\","
		 "\"params\":{\"name\":\"web1\"},\"id\":42}", &m);
	assert_int_equal(m.kind, JSONRPC_REQUEST);
	assert_string_equal(m.method, "vm.start");
	assert_true(json_is_object(m.params));
	assert_string_equal(json_string_value(json_object_get(m.params, "name")),
			    "web1");
	assert_int_equal(json_integer_value(m.id), 42);
	assert_null(m.result);
	jsonrpc_msg_clear(&m);
	assert_null(m.root);
	jsonrpc_msg_clear(&m);	/* twice is fine */

	/* Array params, string id, members in any order. */
	parse_ok("{\"id\":\"abc\",\"params\":[1,2],\"method\":\"x\","
		 "\"jsonrpc\":\"2.0\"}", &m);
	assert_int_equal(m.kind, JSONRPC_REQUEST);
	assert_string_equal(json_string_value(m.id), "abc");
	assert_int_equal(json_array_size(m.params), 2);
	jsonrpc_msg_clear(&m);

	/* A null id is still a request (to be answered with null). */
	parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"id\":null}", &m);
	assert_int_equal(m.kind, JSONRPC_REQUEST);
	assert_true(json_is_null(m.id));
	assert_null(m.params);
	jsonrpc_msg_clear(&m);

	parse_ok("{\"jsonrpc\":\"2.0\",\"method\":\"event\"}", &m);
	assert_int_equal(m.kind, JSONRPC_NOTIFICATION);
	assert_null(m.id);
	jsonrpc_msg_clear(&m);

	memset(method, 'm', 128);
	method[128] = '\0';
	snprintf(text, sizeof(text), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\"}",
		 method);
	parse_ok(text, &m);
	assert_int_equal(strlen(m.method), 128);
	jsonrpc_msg_clear(&m);

	parse_ok("{\"jsonrpc\":\"2.0\",\"result\":{\"vms\":[]},\"id\":1}", &m);
	assert_int_equal(m.kind, JSONRPC_RESULT);
	assert_true(json_is_object(m.result));
	jsonrpc_msg_clear(&m);
	/* Any JSON value is a result as far as the parser cares. */
	parse_ok("{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":1}", &m);
	assert_int_equal(m.kind, JSONRPC_RESULT);
	assert_true(json_is_null(m.result));
	jsonrpc_msg_clear(&m);

	parse_ok("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32001,"
		 "\"message\":\"vm \\\"x\\\" not found\",\"data\":{\"name\":\"x\"}},"
		 "\"id\":null}", &m);
	assert_int_equal(m.kind, JSONRPC_ERROR);
	assert_int_equal(m.error_code, PROTO_ERR_NOT_FOUND);
	assert_string_equal(m.error_message, "vm \"x\" not found");
	assert_true(json_is_object(m.error_data));
	assert_true(json_is_null(m.id));
	jsonrpc_msg_clear(&m);

	parse_ok("{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32601,"
		 "\"message\":\"\"},\"id\":\"q\"}", &m);
	assert_int_equal(m.error_code, -32601);
	assert_null(m.error_data);
	jsonrpc_msg_clear(&m);
}

static void
test_classify(void **state)
{
	struct jsonrpc_msg m = { 0 };
	struct jsonrpc_perr perr = { 0 };
	json_t *root;

	(void)state;
	root = json_pack("{s:s,s:s,s:i}", "jsonrpc", "2.0", "method", "m",
			 "id", 3);
	assert_int_equal(jsonrpc_classify(root, &m, &perr), 0);
	/* Borrowed: the message holds its own reference. */
	assert_int_equal(root->refcount, 2);
	json_decref(root);
	assert_string_equal(m.method, "m");
	jsonrpc_msg_clear(&m);

	/* A NUL inside a method built in code. */
	root = json_pack("{s:s,s:i}", "jsonrpc", "2.0", "id", 3);
	json_object_set_new(root, "method", json_stringn("a\0b", 3));
	assert_int_equal(jsonrpc_classify(root, &m, &perr), -EPROTO);
	assert_string_equal(perr.message,
			    "method: must be 1 to 128 bytes without NUL");
	assert_int_equal(root->refcount, 1);
	jsonrpc_perr_clear(&perr);
	/* A member name with a newline cannot break a log line. */
	json_object_set_new(root, "method", json_string("a"));
	json_object_set_new(root, "x\ny", json_true());
	assert_int_equal(jsonrpc_classify(root, &m, &perr), -EPROTO);
	assert_string_equal(perr.message, "x?y: unknown member");
	jsonrpc_perr_clear(&perr);
	json_decref(root);
}

static char *
dump(json_t *j)
{
	char *s;

	assert_non_null(j);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

static void
assert_dump(json_t *j, const char *want)
{
	char *s = dump(j);

	assert_string_equal(s, want);
	free(s);
}

static void
test_builders(void **state)
{
	json_t *id;

	(void)state;
	assert_dump(jsonrpc_request_new(1, "vm.list", NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"vm.list\"}");
	assert_dump(jsonrpc_request_new(INT64_MAX, "vm.stop",
					json_pack("{s:s,s:b}", "name", "a",
						  "force", 1)),
		    "{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,"
		    "\"method\":\"vm.stop\",\"params\":{\"name\":\"a\",\"force\":true}}");
	assert_dump(jsonrpc_notification_new("event", json_pack("[i]", 1)),
		    "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":[1]}");
	/* Bad arguments give NULL and still consume what was stolen. */
	assert_null(jsonrpc_request_new(1, "", json_object()));
	assert_null(jsonrpc_request_new(1, NULL, NULL));
	assert_null(jsonrpc_request_new(1, "x", json_string("params")));
	assert_null(jsonrpc_notification_new("x", json_integer(1)));

	id = json_integer(9);
	assert_dump(jsonrpc_result_new(id, json_pack("{s:i}", "n", 1)),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"n\":1}}");
	assert_dump(jsonrpc_result_new(id, NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}");
	assert_dump(jsonrpc_result_new(NULL, NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}");
	/* Results are objects, never bare arrays. */
	assert_null(jsonrpc_result_new(id, json_array()));
	assert_int_equal(id->refcount, 1);

	assert_dump(jsonrpc_error_new(id, PROTO_ERR_NOT_FOUND,
				      "vm \"web1\" not found",
				      json_pack("{s:s}", "name", "web1")),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32001,"
		    "\"message\":\"vm \\\"web1\\\" not found\",\"data\":{\"name\":\"web1\"}}}");
	assert_dump(jsonrpc_error_new(NULL, PROTO_ERR_METHOD_NOT_FOUND, NULL,
				      NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32601,"
		    "\"message\":\"Method not found\"}}");
	assert_dump(jsonrpc_error_newf(id, PROTO_ERR_INVALID_PARAMS,
				       "%s: must be at least %dM", "memory", 64),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32602,"
		    "\"message\":\"memory: must be at least 64M\"}}");
	assert_dump(jsonrpc_error_from_errno(id, -EEXIST, NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32002,"
		    "\"message\":\"Already exists\"}}");
	assert_dump(jsonrpc_error_from_errno(id, -ENOMEM, "out of memory"),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32603,"
		    "\"message\":\"out of memory\"}}");
	/* A message that is not UTF-8 is scrubbed, not lost. */
	assert_dump(jsonrpc_error_new(id, -32603, "bad \xff byte", NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32603,"
		    "\"message\":\"bad ? byte\"}}");
	json_decref(id);

	/* An id that JSON-RPC does not allow. */
	id = json_real(1.5);
	assert_null(jsonrpc_result_new(id, NULL));
	assert_null(jsonrpc_error_new(id, -32603, "x", json_object()));
	json_decref(id);
	id = json_string("s-1");
	assert_dump(jsonrpc_result_new(id, NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":\"s-1\",\"result\":{}}");
	json_decref(id);
}

static void
test_error_from_perr(void **state)
{
	struct jsonrpc_msg m = { 0 };
	struct jsonrpc_perr perr = { 0 };
	static const char bad[] = "{\"jsonrpc\":\"2.0\",\"id\":12,\"methd\":\"x\"}";

	(void)state;
	assert_int_equal(jsonrpc_parse(bad, strlen(bad), &m, &perr), -EPROTO);
	assert_dump(jsonrpc_error_from_perr(&perr),
		    "{\"jsonrpc\":\"2.0\",\"id\":12,\"error\":{\"code\":-32600,"
		    "\"message\":\"methd: unknown member\"}}");
	jsonrpc_perr_clear(&perr);
	assert_int_equal(jsonrpc_parse("{", 1, &m, &perr), -EBADMSG);
	assert_dump(jsonrpc_error_from_perr(&perr),
		    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
		    "\"message\":\"invalid JSON at byte 1: string or '}' "
		    "expected near end of file\"}}");
	jsonrpc_perr_clear(&perr);
}

/* What the builders make, the parser accepts as the right kind. */
static void
test_roundtrip(void **state)
{
	struct jsonrpc_msg m = { 0 };
	json_t *id = json_integer(5);
	json_t *msgs[4];
	enum jsonrpc_kind kinds[4] = {
		JSONRPC_REQUEST, JSONRPC_NOTIFICATION, JSONRPC_RESULT,
		JSONRPC_ERROR,
	};
	char *s;
	int i;

	(void)state;
	msgs[0] = jsonrpc_request_new(5, "vm.info", json_pack("{s:s}", "name",
							      "a"));
	msgs[1] = jsonrpc_notification_new("events.vm", NULL);
	msgs[2] = jsonrpc_result_new(id, NULL);
	msgs[3] = jsonrpc_error_new(id, PROTO_ERR_INVALID_STATE, "running",
				    json_integer(1));
	for (i = 0; i < 4; i++) {
		s = dump(msgs[i]);
		parse_ok(s, &m);
		assert_int_equal(m.kind, kinds[i]);
		jsonrpc_msg_clear(&m);
		free(s);
	}
	json_decref(id);
}

/* --- golden cases --- */

#define GOLDEN_DIR "tests/unit/golden/jsonrpc"
#define GOLDEN_MAX 256

static char *
read_file(const char *path, size_t *ret_len)
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
	if (buf) {
		buf[n] = '\0';
		*ret_len = (size_t)n;
	}
	return buf;
}

/* A value in one line, or "-" when absent. */
static char *
jtext(const json_t *j)
{
	char *s;

	if (!j)
		return strdup("-");
	s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	assert_non_null(s);
	return s;
}

static char *
describe(const char *input, size_t len)
{
	struct jsonrpc_msg m = { 0 };
	struct jsonrpc_perr perr = { 0 };
	char *out = NULL, *a, *b, *c, *d;
	json_t *resp, *mj;
	int r;

	r = jsonrpc_parse(input, len, &m, &perr);
	if (r < 0) {
		resp = jsonrpc_error_from_perr(&perr);
		a = dump(resp);
		assert_int_not_equal(asprintf(&out, "reject %s", a), -1);
		free(a);
		jsonrpc_perr_clear(&perr);
		return out;
	}
	a = jtext(m.id);
	mj = m.method ? json_string(m.method) : NULL;
	b = jtext(mj);
	json_decref(mj);
	switch (m.kind) {
	case JSONRPC_REQUEST:
	case JSONRPC_NOTIFICATION:
		c = jtext(m.params);
		if (m.kind == JSONRPC_REQUEST)
			r = asprintf(&out, "request id=%s method=%s params=%s",
				     a, b, c);
		else
			r = asprintf(&out, "notification method=%s params=%s",
				     b, c);
		free(c);
		break;
	case JSONRPC_RESULT:
		c = jtext(m.result);
		r = asprintf(&out, "result id=%s result=%s", a, c);
		free(c);
		break;
	default:
		mj = json_string(m.error_message);
		c = jtext(mj);
		json_decref(mj);
		d = jtext(m.error_data);
		r = asprintf(&out, "error id=%s code=%d message=%s data=%s", a,
			     m.error_code, c, d);
		free(c);
		free(d);
		break;
	}
	assert_int_not_equal(r, -1);
	free(a);
	free(b);
	jsonrpc_msg_clear(&m);
	return out;
}

static void
test_golden_case(void **state)
{
	const char *name = *state;
	char path[512], *input, *want, *got;
	size_t len, wlen;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.json", GOLDEN_DIR, name);
	input = read_file(path, &len);
	if (!input)
		fail_msg("cannot read %s", path);
	got = describe(input, len);
	snprintf(path, sizeof(path), "%s/%s.out", GOLDEN_DIR, name);
	if (getenv("PROTO_GOLDEN_UPDATE")) {
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f, "%s\n", got);
		fclose(f);
	}
	want = read_file(path, &wlen);
	if (!want)
		fail_msg("cannot read %s", path);
	while (wlen && want[wlen - 1] == '\n')
		want[--wlen] = '\0';
	if (strcmp(want, got) != 0)
		fail_msg("%s: expected\n%s\nbut got\n%s", name, want, got);
	assert_int_equal(strncmp(name, "err_", 4) == 0,
			 strncmp(got, "reject ", 7) == 0);
	free(want);
	free(got);
	free(input);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t
golden_list(char **names, size_t max)
{
	DIR *dir = opendir(GOLDEN_DIR);
	struct dirent *e;
	size_t n = 0, len;

	if (!dir)
		return 0;
	while ((e = readdir(dir)) && n < max) {
		len = strlen(e->d_name);
		if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
			names[n++] = strndup(e->d_name, len - 5);
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), cmp_names);
	return n;
}

int
main(void)
{
	static char *names[GOLDEN_MAX];
	static struct CMUnitTest golden[GOLDEN_MAX];
	size_t n, i;
	int fails;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_invalid_requests),
		cmocka_unit_test(test_valid_messages),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_error_from_perr),
		cmocka_unit_test(test_roundtrip),
	};

	n = golden_list(names, GOLDEN_MAX);
	if (n < 20) {
		fprintf(stderr, "only %zu golden cases in %s (run from the "
			"repository root)\n", n, GOLDEN_DIR);
		return 1;
	}
	for (i = 0; i < n; i++)
		golden[i] = (struct CMUnitTest){
			.name = names[i],
			.test_func = test_golden_case,
			.initial_state = names[i],
		};
	fails = cmocka_run_group_tests(tests, NULL, NULL);
	fails += _cmocka_run_group_tests("jsonrpc_golden", golden, n, NULL,
					 NULL);
	for (i = 0; i < n; i++)
		free(names[i]);
	return fails;
}
