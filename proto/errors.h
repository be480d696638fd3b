/* SPDX-License-Identifier: MIT */
/*
 * The protocol's error codes: one table of stable numbers and names that
 * every error response on the wire comes from. The JSON-RPC 2.0 standard
 * codes keep their standard numbers; ours sit in the server range
 * -32000..-32099 and never change once released (PROTOCOL.md lists them).
 * Handlers return negative errnos; proto_err_from_errno() turns them into
 * a code once, around every handler.
 */
#ifndef PROTO_ERRORS_H
#define PROTO_ERRORS_H

enum proto_err {
	PROTO_ERR_PARSE			= -32700,
	PROTO_ERR_INVALID_REQUEST	= -32600,
	PROTO_ERR_METHOD_NOT_FOUND	= -32601,
	PROTO_ERR_INVALID_PARAMS	= -32602,
	PROTO_ERR_INTERNAL		= -32603,
	PROTO_ERR_NOT_FOUND		= -32001,
	PROTO_ERR_ALREADY_EXISTS	= -32002,
	PROTO_ERR_INVALID_STATE		= -32003,
	PROTO_ERR_PERMISSION_DENIED	= -32004,
	PROTO_ERR_LIMIT_EXCEEDED	= -32005,
	PROTO_ERR_TIMEOUT		= -32006,
};

/* Number of codes in the table (for iterating with proto_err_at()). */
#define PROTO_ERR_COUNT 11

/*
 * The stable snake_case name of a code ("not_found"), or NULL when the
 * code is not in the table. Static string.
 */
const char *proto_err_name(int code);

/*
 * The default human message of a code ("Not found"; the standard codes use
 * the JSON-RPC specification's wording), or "Unknown error" for a code not
 * in the table. Static string. Handlers should send a message naming the
 * object or field instead whenever they can.
 */
const char *proto_err_message(int code);

/* Code for a name from the table. Returns 0, or -ENOENT for other names. */
int proto_err_from_name(const char *name, int *ret_code);

/* The idx-th code of the table (0 <= idx < PROTO_ERR_COUNT), or 0. */
int proto_err_at(unsigned int idx);

/*
 * The code for an errno (negative or positive, as handlers return them):
 * ENOENT -> not_found, EEXIST -> already_exists, EBUSY, EALREADY,
 * EINPROGRESS -> invalid_state, EACCES, EPERM -> permission_denied,
 * ENOSPC, EMFILE, ENFILE, E2BIG, EDQUOT -> limit_exceeded, EINVAL, ERANGE,
 * ENAMETOOLONG -> invalid_params, ENOSYS, EOPNOTSUPP -> method_not_found,
 * ETIMEDOUT -> timeout; anything else (and 0) -> internal_error. The
 * parse_error and invalid_request codes come from jsonrpc_parse() only: a
 * handler's EBADMSG (say, a corrupt stored file) is an internal error.
 */
int proto_err_from_errno(int err);

/*
 * The inverse, for clients and relays that turn a code back into an errno:
 * a negative errno (the first one listed above for the code; -EBADMSG for
 * parse_error, -EPROTO for invalid_request), -EIO for internal_error and
 * for codes not in the table.
 */
int proto_err_to_errno(int code);

#endif
