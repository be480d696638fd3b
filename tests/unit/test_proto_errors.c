/* SPDX-License-Identifier: MIT */
/* The error code table: stable numbers, names, messages, errno mapping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proto/errors.h"

/* The wire contract: these numbers and names never change. */
static const struct {
	int code;
	const char *name;
	const char *message;
} stable[] = {
	{ -32700, "parse_error", "Parse error" },
	{ -32600, "invalid_request", "Invalid Request" },
	{ -32601, "method_not_found", "Method not found" },
	{ -32602, "invalid_params", "Invalid params" },
	{ -32603, "internal_error", "Internal error" },
	{ -32001, "not_found", "Not found" },
	{ -32002, "already_exists", "Already exists" },
	{ -32003, "invalid_state", "Invalid state" },
	{ -32004, "permission_denied", "Permission denied" },
	{ -32005, "limit_exceeded", "Limit exceeded" },
	{ -32006, "timeout", "Timed out" },
};

static void
test_table(void **state)
{
	size_t i;
	int code;

	(void)state;
	assert_int_equal(PROTO_ERR_COUNT, sizeof(stable) / sizeof(stable[0]));
	for (i = 0; i < PROTO_ERR_COUNT; i++) {
		assert_int_equal(proto_err_at((unsigned int)i), stable[i].code);
		assert_string_equal(proto_err_name(stable[i].code),
				    stable[i].name);
		assert_string_equal(proto_err_message(stable[i].code),
				    stable[i].message);
		code = 0;
		assert_int_equal(proto_err_from_name(stable[i].name, &code), 0);
		assert_int_equal(code, stable[i].code);
	}
	assert_int_equal(PROTO_ERR_NOT_FOUND, -32001);
	assert_int_equal(PROTO_ERR_LIMIT_EXCEEDED, -32005);
	assert_int_equal(proto_err_at(PROTO_ERR_COUNT), 0);
	assert_null(proto_err_name(0));
	assert_null(proto_err_name(-32000));
	assert_null(proto_err_name(42));
	assert_string_equal(proto_err_message(-31999), "Unknown error");
	code = 7;
	assert_int_equal(proto_err_from_name("not found", &code), -ENOENT);
	assert_int_equal(proto_err_from_name("", &code), -ENOENT);
	assert_int_equal(proto_err_from_name(NULL, &code), -ENOENT);
	assert_int_equal(code, 7);
}

static void
test_from_errno(void **state)
{
	static const struct {
		int err;
		int code;
	} map[] = {
		{ ENOENT, PROTO_ERR_NOT_FOUND },
		{ EEXIST, PROTO_ERR_ALREADY_EXISTS },
		{ EBUSY, PROTO_ERR_INVALID_STATE },
		{ EALREADY, PROTO_ERR_INVALID_STATE },
		{ EINPROGRESS, PROTO_ERR_INVALID_STATE },
		{ EACCES, PROTO_ERR_PERMISSION_DENIED },
		{ EPERM, PROTO_ERR_PERMISSION_DENIED },
		{ ENOSPC, PROTO_ERR_LIMIT_EXCEEDED },
		{ EMFILE, PROTO_ERR_LIMIT_EXCEEDED },
		{ ENFILE, PROTO_ERR_LIMIT_EXCEEDED },
		{ E2BIG, PROTO_ERR_LIMIT_EXCEEDED },
		{ EDQUOT, PROTO_ERR_LIMIT_EXCEEDED },
		{ EINVAL, PROTO_ERR_INVALID_PARAMS },
		{ ERANGE, PROTO_ERR_INVALID_PARAMS },
		{ ENAMETOOLONG, PROTO_ERR_INVALID_PARAMS },
		{ ENOSYS, PROTO_ERR_METHOD_NOT_FOUND },
		{ EOPNOTSUPP, PROTO_ERR_METHOD_NOT_FOUND },
		{ ETIMEDOUT, PROTO_ERR_TIMEOUT },
		{ ENOMEM, PROTO_ERR_INTERNAL },
		{ EIO, PROTO_ERR_INTERNAL },
		{ EBADMSG, PROTO_ERR_INTERNAL },
		{ EPROTO, PROTO_ERR_INTERNAL },
		{ 0, PROTO_ERR_INTERNAL },
		{ 100000, PROTO_ERR_INTERNAL },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(proto_err_from_errno(-map[i].err), map[i].code);
		/* Positive errnos work the same. */
		assert_int_equal(proto_err_from_errno(map[i].err), map[i].code);
	}
}

static void
test_to_errno(void **state)
{
	size_t i;
	int code, err;

	(void)state;
	assert_int_equal(proto_err_to_errno(PROTO_ERR_NOT_FOUND), -ENOENT);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_ALREADY_EXISTS), -EEXIST);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_INVALID_STATE), -EBUSY);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_PERMISSION_DENIED),
			 -EACCES);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_LIMIT_EXCEEDED), -ENOSPC);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_INVALID_PARAMS), -EINVAL);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_METHOD_NOT_FOUND),
			 -ENOSYS);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_TIMEOUT), -ETIMEDOUT);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_PARSE), -EBADMSG);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_INVALID_REQUEST), -EPROTO);
	assert_int_equal(proto_err_to_errno(PROTO_ERR_INTERNAL), -EIO);
	assert_int_equal(proto_err_to_errno(-32099), -EIO);
	assert_int_equal(proto_err_to_errno(0), -EIO);
	/* Ours round-trip through errno (the standard -32700/-32600 do not). */
	for (i = 0; i < PROTO_ERR_COUNT; i++) {
		code = proto_err_at((unsigned int)i);
		if (code == PROTO_ERR_PARSE || code == PROTO_ERR_INVALID_REQUEST)
			continue;
		err = proto_err_to_errno(code);
		assert_true(err < 0);
		assert_int_equal(proto_err_from_errno(err), code);
	}
}

static void
test_unique_and_ranged(void **state)
{
	size_t i, k;
	int a;

	(void)state;
	for (i = 0; i < PROTO_ERR_COUNT; i++) {
		a = proto_err_at((unsigned int)i);
		/* Standard codes, or ours in the server range. */
		assert_true((a >= -32099 && a <= -32000) ||
			    (a >= -32768 && a <= -32600));
		for (k = 0; k < i; k++) {
			assert_int_not_equal(a, proto_err_at((unsigned int)k));
			assert_string_not_equal(proto_err_name(a),
				proto_err_name(proto_err_at((unsigned int)k)));
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_from_errno),
		cmocka_unit_test(test_to_errno),
		cmocka_unit_test(test_unique_and_ranged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
