/* SPDX-License-Identifier: MIT */
/*
 * JSON-RPC 2.0 messages (https://www.jsonrpc.org/specification) built and
 * checked with jansson. Parsing validates a message fully and classifies
 * it as a request, a notification, a result or an error response; what is
 * wrong comes back as the standard code (-32700 parse error, -32600
 * invalid request) and a message naming the member.
 *
 * Stricter than the specification, on purpose: batches (arrays) are not
 * supported, and members other than those the specification defines are
 * rejected, so a typo ("param") fails loudly instead of being ignored.
 */
#ifndef PROTO_JSONRPC_H
#define PROTO_JSONRPC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum jsonrpc_kind {
	JSONRPC_REQUEST,	/* method and id: answer it */
	JSONRPC_NOTIFICATION,	/* method, no id: never answer */
	JSONRPC_RESULT,		/* response with "result" */
	JSONRPC_ERROR,		/* response with "error" */
	JSONRPC_KIND_MAX,
};

/* Longest method name accepted. */
#define JSONRPC_METHOD_MAX 128

/*
 * A parsed message. root is owned (one reference); every other pointer is
 * borrowed from it and lives as long as the message.
 */
struct jsonrpc_msg {
	enum jsonrpc_kind kind;
	json_t *root;
	json_t *id;		/* integer, string or null; NULL for notifications */
	const char *method;	/* requests and notifications */
	json_t *params;		/* object or array, NULL when absent */
	json_t *result;		/* JSONRPC_RESULT */
	int error_code;		/* JSONRPC_ERROR */
	const char *error_message;	/* JSONRPC_ERROR */
	json_t *error_data;	/* JSONRPC_ERROR, NULL when absent */
};

/*
 * Why a message was rejected: code is PROTO_ERR_PARSE or
 * PROTO_ERR_INVALID_REQUEST, message names the member ("jsonrpc: must be
 * \"2.0\""), and id is a new reference to the message's id when it had a
 * valid one (to answer with), else NULL (answer with a null id). Release
 * with jsonrpc_perr_clear().
 */
struct jsonrpc_perr {
	int code;
	char message[160];
	json_t *id;
};

/*
 * Parse and validate one message from buf[0, len) (a frame's payload).
 * Returns 0 and fills *ret_msg (release with jsonrpc_msg_clear()), or
 * -EBADMSG (not JSON: code -32700) or -EPROTO (not a valid message: code
 * -32600) with *perr filled when perr is not NULL, or -ENOMEM.
 */
int jsonrpc_parse(const void *buf, size_t len, struct jsonrpc_msg *ret_msg,
		  struct jsonrpc_perr *perr);

/*
 * The same for a JSON value already parsed (for instance by
 * frame_read_fd()). Borrows root; on success ret_msg->root holds a new
 * reference to it. -EPROTO or -ENOMEM.
 */
int jsonrpc_classify(json_t *root, struct jsonrpc_msg *ret_msg,
		     struct jsonrpc_perr *perr);

/* Drop the message's reference; accepts a zeroed or cleared message. */
void jsonrpc_msg_clear(struct jsonrpc_msg *msg);

/* Drop perr->id; accepts a zeroed or cleared struct. */
void jsonrpc_perr_clear(struct jsonrpc_perr *perr);

/*
 * Builders. Each returns a new reference, or NULL when out of memory or
 * when an argument breaks the rules (an empty method, params neither an
 * object nor an array, a result that is not an object, an id that is not
 * an integer, a string or null). Arguments documented as "stolen" are
 * consumed even when NULL is returned, as with json_object_set_new().
 */

/* {"jsonrpc":"2.0","id":id,"method":method[,"params":params]}; params stolen, may be NULL. */
json_t *jsonrpc_request_new(int64_t id, const char *method, json_t *params);

/* A request without id; params stolen, may be NULL. */
json_t *jsonrpc_notification_new(const char *method, json_t *params);

/*
 * A result response to the request whose id is given (borrowed; NULL is
 * taken as null). result is stolen and must be an object (our methods
 * always return objects); NULL gives {}.
 */
json_t *jsonrpc_result_new(json_t *id, json_t *result);

/*
 * An error response: id borrowed (NULL: null), code, message (NULL: the
 * code's default from errors.h), data stolen, may be NULL.
 */
json_t *jsonrpc_error_new(json_t *id, int code, const char *message,
			  json_t *data);

/* The same with a printf-style message and no data. */
json_t *jsonrpc_error_newf(json_t *id, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The error response for a handler's negative errno, through
 * proto_err_from_errno(); message NULL gives the code's default.
 */
json_t *jsonrpc_error_from_errno(json_t *id, int err, const char *message);

/* The error response for a rejected message (perr from jsonrpc_parse()). */
json_t *jsonrpc_error_from_perr(const struct jsonrpc_perr *perr);

#endif
