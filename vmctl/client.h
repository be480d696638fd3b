/* SPDX-License-Identifier: MIT */
/*
 * vmctl's connection to vmmd: a UNIX socket or TLS over TCP, both driven
 * with blocking-style calls on a non-blocking socket (poll() waits, so a
 * timeout or a signal can end any wait). Requests are framed JSON-RPC
 * (proto/frame.h, proto/jsonrpc.h); after vm.console the connection
 * carries raw bytes, read and written with client_read_raw() and
 * client_write_raw().
 */
#ifndef VMCTL_CLIENT_H
#define VMCTL_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* The largest frame we accept from the daemon (vm.list of many VMs). */
#define CLIENT_FRAME_MAX	(64u * 1024 * 1024)
/* Notifications queued while waiting for a response, before dropping. */
#define CLIENT_QUEUE_MAX	4096
/* How long connecting (TCP and the TLS handshake) may take. */
#define CLIENT_CONNECT_TIMEOUT_MS 10000

enum client_uri_kind {
	CLIENT_URI_UNIX,
	CLIENT_URI_TLS,
	CLIENT_URI_KIND_MAX,
};

struct client_uri {
	enum client_uri_kind kind;
	char path[108];		/* unix: the socket (sun_path's size) */
	char host[256];		/* tls: name or address, without brackets */
	char port[6];		/* tls: VMCTL_TLS_DEFAULT_PORT when omitted */
};

/*
 * "unix:///run/vmmd/vmmd.sock", "/run/vmmd/vmmd.sock" (a bare absolute
 * path), "tls://host:7443", "tls://[::1]:7443", "tls://host". Returns 0 or
 * -EINVAL with the reason in err.
 */
int client_uri_parse(const char *uri, struct client_uri *ret, char *err,
		     size_t errlen);

/* An error response from the daemon. */
struct client_rpc_error {
	int code;
	char message[512];	/* scrubbed of control characters */
};

struct client;

/*
 * Connect to uri; cert, key and ca are for tls:// (cert and key may be
 * NULL: no client certificate; ca NULL: the system's trust store). On
 * failure err says why without the URI ("No such file or directory",
 * "certificate verify failed"). Returns 0 with a new client, -EINVAL for
 * a bad URI or TLS file, or the negative errno of what failed.
 */
int client_connect(const char *uri, const char *cert, const char *key,
		   const char *ca, struct client **ret, char *err,
		   size_t errlen);

/* A client on an fd that is already connected (tests); takes the fd. */
int client_from_fd(int fd, struct client **ret);

/* Close and free; NULL is fine. */
void client_free(struct client *c);

/*
 * A signal flag: while it is zero, a wait interrupted by a signal goes on;
 * once set, the wait returns -EINTR. NULL (the default): always go on.
 */
void client_set_stop_flag(struct client *c, volatile sig_atomic_t *flag);

/*
 * Send a request (params stolen, may be NULL) and wait for its response,
 * queueing notifications that come first. timeout_ms bounds the wait
 * (negative: none). Returns 0 with a new reference to the result object in
 * *ret_result; 1 with *ret_error filled for an error response; or a
 * negative errno with err filled for a broken connection (-EPIPE or
 * -ECONNRESET: closed by the daemon, -EPROTO: not a valid response,
 * -ETIMEDOUT, -EINTR).
 */
int client_call(struct client *c, const char *method, json_t *params,
		int timeout_ms, json_t **ret_result,
		struct client_rpc_error *ret_error, char *err, size_t errlen);

/*
 * The next notification (queued or read now): 1 with a new reference to
 * the whole message in *ret_msg, 0 when the daemon closed the connection,
 * or a negative errno with err (-ETIMEDOUT, -EINTR, -EPROTO...).
 */
int client_next_notification(struct client *c, int timeout_ms,
			     json_t **ret_msg, char *err, size_t errlen);

/*
 * Raw bytes (after vm.console): up to len bytes, waiting at most
 * timeout_ms (0: do not wait, negative: forever). Returns the count, 0 at
 * the end of the stream, -EAGAIN when nothing came in time, -EINTR, or
 * another negative errno with err.
 */
ssize_t client_read_raw(struct client *c, void *buf, size_t len,
			int timeout_ms, char *err, size_t errlen);

/* Write all of buf. Returns 0 or a negative errno with err. */
int client_write_raw(struct client *c, const void *buf, size_t len,
		     char *err, size_t errlen);

/* The socket, for poll(); and the events to wait for on it. */
int client_fd(const struct client *c);
short client_poll_events(const struct client *c);

/* True when bytes are already buffered (TLS): read before polling. */
bool client_has_buffered(const struct client *c);

/* The URI as connected ("unix:///run/vmmd/vmmd.sock"), for messages. */
const char *client_uri_text(const struct client *c);

#endif
