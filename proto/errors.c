/* SPDX-License-Identifier: MIT */
/* The one table of protocol error codes, names, messages and errnos. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "errors.h"

struct proto_err_row {
	int code;
	const char *name;
	const char *message;
	int err;		/* canonical errno, positive */
};

static const struct proto_err_row proto_err_table[PROTO_ERR_COUNT] = {
	{ PROTO_ERR_PARSE, "parse_error", "Parse error", EBADMSG },
	{ PROTO_ERR_INVALID_REQUEST, "invalid_request", "Invalid Request",
	  EPROTO },
	{ PROTO_ERR_METHOD_NOT_FOUND, "method_not_found", "Method not found",
	  ENOSYS },
	{ PROTO_ERR_INVALID_PARAMS, "invalid_params", "Invalid params",
	  EINVAL },
	{ PROTO_ERR_INTERNAL, "internal_error", "Internal error", EIO },
	{ PROTO_ERR_NOT_FOUND, "not_found", "Not found", ENOENT },
	{ PROTO_ERR_ALREADY_EXISTS, "already_exists", "Already exists",
	  EEXIST },
	{ PROTO_ERR_INVALID_STATE, "invalid_state", "Invalid state", EBUSY },
	{ PROTO_ERR_PERMISSION_DENIED, "permission_denied",
	  "Permission denied", EACCES },
	{ PROTO_ERR_LIMIT_EXCEEDED, "limit_exceeded", "Limit exceeded",
	  ENOSPC },
	{ PROTO_ERR_TIMEOUT, "timeout", "Timed out", ETIMEDOUT },
};

static const struct proto_err_row *
proto_err_find(int code)
{
	size_t i;

	for (i = 0; i < PROTO_ERR_COUNT; i++)
		if (proto_err_table[i].code == code)
			return &proto_err_table[i];
	return NULL;
}

const char *
proto_err_name(int code)
{
	const struct proto_err_row *r = proto_err_find(code);

	return r ? r->name : NULL;
}

const char *
proto_err_message(int code)
{
	const struct proto_err_row *r = proto_err_find(code);

	return r ? r->message : "Unknown error";
}

int
proto_err_from_name(const char *name, int *ret_code)
{
	size_t i;

	if (!name)
		return -ENOENT;
	for (i = 0; i < PROTO_ERR_COUNT; i++) {
		if (strcmp(proto_err_table[i].name, name) == 0) {
			*ret_code = proto_err_table[i].code;
			return 0;
		}
	}
	return -ENOENT;
}

int
proto_err_at(unsigned int idx)
{
	return idx < PROTO_ERR_COUNT ? proto_err_table[idx].code : 0;
}

int
proto_err_from_errno(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case ENOENT:
		return PROTO_ERR_NOT_FOUND;
	case EEXIST:
		return PROTO_ERR_ALREADY_EXISTS;
	case EBUSY:
	case EALREADY:
	case EINPROGRESS:
		return PROTO_ERR_INVALID_STATE;
	case EACCES:
	case EPERM:
		return PROTO_ERR_PERMISSION_DENIED;
	case ENOSPC:
	case EMFILE:
	case ENFILE:
	case E2BIG:
	case EDQUOT:
		return PROTO_ERR_LIMIT_EXCEEDED;
	case EINVAL:
	case ERANGE:
	case ENAMETOOLONG:
		return PROTO_ERR_INVALID_PARAMS;
	case ENOSYS:
	case EOPNOTSUPP:
		return PROTO_ERR_METHOD_NOT_FOUND;
	case ETIMEDOUT:
		return PROTO_ERR_TIMEOUT;
	default:
		return PROTO_ERR_INTERNAL;
	}
}

int
proto_err_to_errno(int code)
{
	const struct proto_err_row *r = proto_err_find(code);

	return r ? -r->err : -EIO;
}
