/* SPDX-License-Identifier: MIT */
/* JSON-RPC 2.0 messages: builders, and a parser that validates everything. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "frame.h"
#include "jsonrpc.h"
#include "util.h"

static bool
jsonrpc_id_valid(const json_t *id)
{
	return json_is_integer(id) || json_is_string(id) || json_is_null(id);
}

static int
jsonrpc_fail(struct jsonrpc_perr *perr, int code, json_t *id,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Fill perr (when wanted) and return the errno for code. id is borrowed
 * and only kept when it is a valid id.
 */
static int
jsonrpc_fail(struct jsonrpc_perr *perr, int code, json_t *id,
	     const char *fmt, ...)
{
	va_list ap;

	if (perr) {
		perr->code = code;
		va_start(ap, fmt);
		vsnprintf(perr->message, sizeof(perr->message), fmt, ap);
		va_end(ap);
		proto_text_scrub(perr->message);
		perr->id = id && jsonrpc_id_valid(id) ? json_incref(id) : NULL;
	}
	return code == PROTO_ERR_PARSE ? -EBADMSG : -EPROTO;
}

static bool
jsonrpc_method_valid(const json_t *m)
{
	size_t len = json_string_length(m);

	return len > 0 && len <= JSONRPC_METHOD_MAX &&
	       strlen(json_string_value(m)) == len;
}

static int
jsonrpc_check_error_obj(json_t *error, json_t *id, struct jsonrpc_msg *m,
			struct jsonrpc_perr *perr)
{
	const int code_ir = PROTO_ERR_INVALID_REQUEST;
	json_t *code, *message, *v;
	const char *key;
	json_int_t c;

	if (!json_is_object(error))
		return jsonrpc_fail(perr, code_ir, id,
				    "error: must be an object");
	json_object_foreach(error, key, v) {
		if (strcmp(key, "code") && strcmp(key, "message") &&
		    strcmp(key, "data"))
			return jsonrpc_fail(perr, code_ir, id,
					    "error.%s: unknown member", key);
	}
	code = json_object_get(error, "code");
	message = json_object_get(error, "message");
	if (!code)
		return jsonrpc_fail(perr, code_ir, id, "error.code: required");
	if (!json_is_integer(code))
		return jsonrpc_fail(perr, code_ir, id,
				    "error.code: must be an integer");
	c = json_integer_value(code);
	if (c < INT_MIN || c > INT_MAX)
		return jsonrpc_fail(perr, code_ir, id,
				    "error.code: out of range");
	if (!message)
		return jsonrpc_fail(perr, code_ir, id,
				    "error.message: required");
	if (!json_is_string(message))
		return jsonrpc_fail(perr, code_ir, id,
				    "error.message: must be a string");
	m->error_code = (int)c;
	m->error_message = json_string_value(message);
	m->error_data = json_object_get(error, "data");
	return 0;
}

int
jsonrpc_classify(json_t *root, struct jsonrpc_msg *ret_msg,
		 struct jsonrpc_perr *perr)
{
	const int code_ir = PROTO_ERR_INVALID_REQUEST;
	struct jsonrpc_msg m = { 0 };
	json_t *ver, *id, *method, *params, *result, *error, *v;
	const char *key;
	int r;

	if (json_is_array(root))
		return jsonrpc_fail(perr, code_ir, NULL,
				    "batch requests are not supported");
	if (!json_is_object(root))
		return jsonrpc_fail(perr, code_ir, NULL,
				    "message: must be an object");
	/* The id first, so that later errors can be answered with it. */
	id = json_object_get(root, "id");
	if (id && !jsonrpc_id_valid(id))
		return jsonrpc_fail(perr, code_ir, NULL,
				    "id: must be an integer, a string or null");
	json_object_foreach(root, key, v) {
		if (strcmp(key, "jsonrpc") && strcmp(key, "id") &&
		    strcmp(key, "method") && strcmp(key, "params") &&
		    strcmp(key, "result") && strcmp(key, "error"))
			return jsonrpc_fail(perr, code_ir, id,
					    "%s: unknown member", key);
	}
	ver = json_object_get(root, "jsonrpc");
	if (!ver)
		return jsonrpc_fail(perr, code_ir, id, "jsonrpc: required");
	if (!json_is_string(ver) || json_string_length(ver) != 3 ||
	    strcmp(json_string_value(ver), "2.0") != 0)
		return jsonrpc_fail(perr, code_ir, id,
				    "jsonrpc: must be \"2.0\"");
	method = json_object_get(root, "method");
	params = json_object_get(root, "params");
	result = json_object_get(root, "result");
	error = json_object_get(root, "error");

	if (method) {
		if (result || error)
			return jsonrpc_fail(perr, code_ir, id,
					    "%s: not allowed in a request",
					    result ? "result" : "error");
		if (!json_is_string(method))
			return jsonrpc_fail(perr, code_ir, id,
					    "method: must be a string");
		if (!jsonrpc_method_valid(method))
			return jsonrpc_fail(perr, code_ir, id,
					    "method: must be 1 to %d bytes without NUL",
					    JSONRPC_METHOD_MAX);
		if (params && !json_is_object(params) &&
		    !json_is_array(params))
			return jsonrpc_fail(perr, code_ir, id,
					    "params: must be an object or an array");
		m.kind = id ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
		m.method = json_string_value(method);
		m.params = params;
	} else if (result || error) {
		if (result && error)
			return jsonrpc_fail(perr, code_ir, id,
					    "result and error: a response has exactly one");
		if (params)
			return jsonrpc_fail(perr, code_ir, id,
					    "params: not allowed in a response");
		if (!id)
			return jsonrpc_fail(perr, code_ir, id,
					    "id: required in a response");
		if (result) {
			m.kind = JSONRPC_RESULT;
			m.result = result;
		} else {
			m.kind = JSONRPC_ERROR;
			r = jsonrpc_check_error_obj(error, id, &m, perr);
			if (r < 0)
				return r;
		}
	} else {
		return jsonrpc_fail(perr, code_ir, id,
				    "method: required (or result or error in a response)");
	}
	m.id = id;
	m.root = json_incref(root);
	*ret_msg = m;
	return 0;
}

int
jsonrpc_parse(const void *buf, size_t len, struct jsonrpc_msg *ret_msg,
	      struct jsonrpc_perr *perr)
{
	json_error_t jerr;
	json_t *root;
	int r;

	root = json_loadb(buf, len, PROTO_JSON_DECODE_FLAGS | JSON_DECODE_ANY,
			  &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		return jsonrpc_fail(perr, PROTO_ERR_PARSE, NULL,
				    "invalid JSON at byte %d: %s",
				    jerr.position, jerr.text);
	}
	r = jsonrpc_classify(root, ret_msg, perr);
	json_decref(root);
	return r;
}

void
jsonrpc_msg_clear(struct jsonrpc_msg *msg)
{
	json_t *root = msg->root;

	memset(msg, 0, sizeof(*msg));
	json_decref(root);
}

void
jsonrpc_perr_clear(struct jsonrpc_perr *perr)
{
	json_decref(perr->id);
	perr->id = NULL;
}

/* {"jsonrpc": "2.0"} plus the id when given (a new reference, or NULL). */
static json_t *
jsonrpc_base(json_t *id, bool with_id)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (json_object_set_new(o, "jsonrpc", json_string("2.0")) < 0)
		goto fail;
	if (with_id) {
		if (id && !jsonrpc_id_valid(id))
			goto fail;
		if (json_object_set_new(o, "id", id ? json_incref(id) :
					json_null()) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *
jsonrpc_call_new(json_t *id, const char *method, json_t *params)
{
	json_t *o = NULL, *m;

	if (!method || !*method || strlen(method) > JSONRPC_METHOD_MAX)
		goto fail;
	if (params && !json_is_object(params) && !json_is_array(params))
		goto fail;
	o = jsonrpc_base(id, id != NULL);
	if (!o)
		goto fail;
	m = json_string(method);
	if (json_object_set_new(o, "method", m) < 0)
		goto fail;
	if (params && json_object_set_new(o, "params", params) < 0) {
		params = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(params);
	json_decref(o);
	return NULL;
}

json_t *
jsonrpc_request_new(int64_t id, const char *method, json_t *params)
{
	json_t *jid = json_integer(id), *o;

	if (!jid) {
		json_decref(params);
		return NULL;
	}
	o = jsonrpc_call_new(jid, method, params);
	json_decref(jid);
	return o;
}

json_t *
jsonrpc_notification_new(const char *method, json_t *params)
{
	return jsonrpc_call_new(NULL, method, params);
}

json_t *
jsonrpc_result_new(json_t *id, json_t *result)
{
	json_t *o;

	if (!result)
		result = json_object();
	if (!json_is_object(result))
		goto fail;
	o = jsonrpc_base(id, true);
	if (!o)
		goto fail;
	if (json_object_set_new(o, "result", result) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
fail:
	json_decref(result);
	return NULL;
}

/*
 * message as a JSON string; a message that is not valid UTF-8 (built from
 * a peer's bytes, say) is sent scrubbed rather than not at all.
 */
static json_t *
jsonrpc_message_string(const char *message)
{
	json_t *s = json_string(message);
	char *copy;

	if (s)
		return s;
	copy = strdup(message);
	if (!copy)
		return NULL;
	proto_text_scrub(copy);
	s = json_string(copy);
	free(copy);
	return s;
}

json_t *
jsonrpc_error_new(json_t *id, int code, const char *message, json_t *data)
{
	json_t *o = NULL, *e;

	e = json_object();
	if (!e)
		goto fail;
	if (json_object_set_new(e, "code", json_integer(code)) < 0 ||
	    json_object_set_new(e, "message",
				jsonrpc_message_string(message ? message :
						proto_err_message(code))) < 0)
		goto fail;
	if (data) {
		if (json_object_set_new(e, "data", data) < 0) {
			data = NULL;
			goto fail;
		}
		data = NULL;
	}
	o = jsonrpc_base(id, true);
	if (!o)
		goto fail;
	if (json_object_set_new(o, "error", e) < 0) {
		e = NULL;
		goto fail;
	}
	return o;
fail:
	json_decref(data);
	json_decref(e);
	json_decref(o);
	return NULL;
}

json_t *
jsonrpc_error_newf(json_t *id, int code, const char *fmt, ...)
{
	va_list ap;
	char *s;
	json_t *o;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	o = jsonrpc_error_new(id, code, s, NULL);
	free(s);
	return o;
}

json_t *
jsonrpc_error_from_errno(json_t *id, int err, const char *message)
{
	return jsonrpc_error_new(id, proto_err_from_errno(err), message, NULL);
}

json_t *
jsonrpc_error_from_perr(const struct jsonrpc_perr *perr)
{
	return jsonrpc_error_new(perr->id, perr->code, perr->message, NULL);
}
