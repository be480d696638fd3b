/* SPDX-License-Identifier: MIT */
/* The connection to vmmd: UNIX socket or TLS, framed JSON-RPC, raw bytes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "proto/tls.h"
#include "vmctl/client.h"
#include "vmctl/vmctl.h"

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char *uri;
	int64_t next_id;
	json_t *queue;		/* notifications read while awaiting a response */
	short want;		/* what the last -EAGAIN waits for: POLLIN/POLLOUT */
	volatile sig_atomic_t *stop;
	char ioerr[256];	/* why the last I/O call failed */
};

/* --- URIs ----------------------------------------------------------------- */

int
client_uri_parse(const char *uri, struct client_uri *ret, char *err,
		 size_t errlen)
{
	struct client_uri u = { 0 };
	const char *p, *hend, *port = NULL;
	size_t hlen, i;

	if (strncmp(uri, "unix://", 7) == 0 || uri[0] == '/') {
		p = uri[0] == '/' ? uri : uri + 7;
		if (p[0] != '/') {
			snprintf(err, errlen,
				 "\"%s\": a unix URI needs an absolute path (unix:///path)",
				 uri);
			return -EINVAL;
		}
		if (strlen(p) >= sizeof(u.path)) {
			snprintf(err, errlen,
				 "\"%s\": socket path longer than %zu bytes",
				 uri, sizeof(u.path) - 1);
			return -EINVAL;
		}
		u.kind = CLIENT_URI_UNIX;
		snprintf(u.path, sizeof(u.path), "%s", p);
		*ret = u;
		return 0;
	}
	if (strncmp(uri, "tls://", 6) != 0) {
		snprintf(err, errlen,
			 "\"%s\": not a URI vmctl knows (unix:///path or tls://host:port)",
			 uri);
		return -EINVAL;
	}
	p = uri + 6;
	if (p[0] == '[') {
		hend = strchr(p, ']');
		if (!hend) {
			snprintf(err, errlen, "\"%s\": missing ']'", uri);
			return -EINVAL;
		}
		p++;
		hlen = (size_t)(hend - p);
		hend++;
	} else {
		hend = p + strcspn(p, ":/");
		hlen = (size_t)(hend - p);
	}
	if (hend[0] == ':')
		port = hend + 1;
	else if (hend[0] != '\0' && strcmp(hend, "/") != 0) {
		snprintf(err, errlen, "\"%s\": unexpected \"%s\" after the host",
			 uri, hend);
		return -EINVAL;
	}
	if (hlen == 0 || hlen >= sizeof(u.host)) {
		snprintf(err, errlen, "\"%s\": %s host", uri,
			 hlen ? "too long a" : "missing");
		return -EINVAL;
	}
	memcpy(u.host, p, hlen);
	if (port) {
		size_t plen = strcspn(port, "/");
		unsigned long n = 0;

		if (plen == 0 || plen > 5 || (port[plen] && strcmp(port + plen, "/")))
			goto bad_port;
		for (i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9')
				goto bad_port;
			n = n * 10 + (unsigned long)(port[i] - '0');
		}
		if (n < 1 || n > 65535)
			goto bad_port;
		snprintf(u.port, sizeof(u.port), "%lu", n);
	} else {
		snprintf(u.port, sizeof(u.port), "%s", VMCTL_TLS_DEFAULT_PORT);
	}
	u.kind = CLIENT_URI_TLS;
	*ret = u;
	return 0;
bad_port:
	snprintf(err, errlen, "\"%s\": the port must be 1..65535", uri);
	return -EINVAL;
}

/* --- waiting -------------------------------------------------------------- */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/*
 * Wait until fd has events or the deadline (-1: none) passes. 0 when
 * ready, -ETIMEDOUT, -EINTR once the stop flag is set, or poll's errno.
 */
static int
wait_fd(int fd, short events, int64_t deadline, volatile sig_atomic_t *stop)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		if (stop && *stop)
			return -EINTR;
		left = deadline < 0 ? -1 : deadline - now_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* --- raw I/O -------------------------------------------------------------- */

/* Why an SSL call failed, for messages; empties OpenSSL's error queue. */
static int
ssl_failure(struct client *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
		c->want = POLLIN;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want = POLLOUT;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || errno == EPIPE || errno == ECONNRESET) {
			ERR_clear_error();
			snprintf(c->ioerr, sizeof(c->ioerr),
				 "connection closed by the daemon");
			return errno == 0 ? 0 : -ECONNRESET;
		}
		snprintf(c->ioerr, sizeof(c->ioerr), "%s", strerror(errno));
		ERR_clear_error();
		return -errno;
	default:
		snprintf(c->ioerr, sizeof(c->ioerr), "TLS: %s",
			 tls_last_error());
		return -EPROTO;
	}
}

/* One read: >0 bytes, 0 at the end, -EAGAIN (c->want says for what), -errno. */
static ssize_t
io_read_once(struct client *c, void *buf, size_t len)
{
	ssize_t n;
	int r;

	if (c->ssl) {
		ERR_clear_error();
		r = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
		if (r > 0)
			return r;
		return ssl_failure(c, r);
	}
	for (;;) {
		n = read(c->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLIN;
			return -EAGAIN;
		}
		if (errno == ECONNRESET) {
			snprintf(c->ioerr, sizeof(c->ioerr),
				 "connection reset by the daemon");
			return -ECONNRESET;
		}
		snprintf(c->ioerr, sizeof(c->ioerr), "%s", strerror(errno));
		return -errno;
	}
}

static ssize_t
io_write_once(struct client *c, const void *buf, size_t len)
{
	ssize_t n;
	int r;

	if (c->ssl) {
		ERR_clear_error();
		r = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
		if (r > 0)
			return r;
		r = ssl_failure(c, r);
		return r == 0 ? -EPIPE : r;
	}
	for (;;) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			c->want = POLLOUT;
			return -EAGAIN;
		}
		if (errno == EPIPE || errno == ECONNRESET)
			snprintf(c->ioerr, sizeof(c->ioerr),
				 "connection closed by the daemon");
		else
			snprintf(c->ioerr, sizeof(c->ioerr), "%s",
				 strerror(errno));
		return -errno;
	}
}

static void
set_err(char *err, size_t errlen, const char *s)
{
	if (errlen)
		snprintf(err, errlen, "%s", s);
}

ssize_t
client_read_raw(struct client *c, void *buf, size_t len, int timeout_ms,
		char *err, size_t errlen)
{
	int64_t deadline = deadline_of(timeout_ms);
	ssize_t n;
	int r;

	for (;;) {
		n = io_read_once(c, buf, len);
		if (n != -EAGAIN) {
			if (n < 0)
				set_err(err, errlen, c->ioerr);
			return n;
		}
		if (timeout_ms == 0)
			return -EAGAIN;
		r = wait_fd(c->fd, c->want, deadline, c->stop);
		if (r == -ETIMEDOUT)
			return -EAGAIN;
		if (r < 0) {
			set_err(err, errlen, r == -EINTR ? "interrupted" :
				strerror(-r));
			return r;
		}
	}
}

/* Write all of buf before the deadline. */
static int
write_all(struct client *c, const void *buf, size_t len, int64_t deadline,
	  char *err, size_t errlen)
{
	const uint8_t *p = buf;
	ssize_t n;
	int r;

	while (len) {
		n = io_write_once(c, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n != -EAGAIN) {
			set_err(err, errlen, c->ioerr);
			return n < 0 ? (int)n : -EPIPE;
		}
		r = wait_fd(c->fd, c->want, deadline, c->stop);
		if (r < 0) {
			set_err(err, errlen, r == -ETIMEDOUT ?
				"timed out writing to the daemon" :
				r == -EINTR ? "interrupted" : strerror(-r));
			return r;
		}
	}
	return 0;
}

int
client_write_raw(struct client *c, const void *buf, size_t len, char *err,
		 size_t errlen)
{
	return write_all(c, buf, len, -1, err, errlen);
}

/*
 * Read exactly len bytes. Returns 1, 0 when the stream ended before the
 * first byte, -EPROTO when it ended later, or a negative errno.
 */
static int
read_exact(struct client *c, void *buf, size_t len, int64_t deadline,
	   char *err, size_t errlen)
{
	uint8_t *p = buf;
	size_t got = 0;
	ssize_t n;
	int r;

	while (got < len) {
		n = io_read_once(c, p + got, len - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			if (got == 0)
				return 0;
			set_err(err, errlen,
				"the daemon closed the connection inside a message");
			return -EPROTO;
		}
		if (n != -EAGAIN) {
			set_err(err, errlen, c->ioerr);
			return (int)n;
		}
		r = wait_fd(c->fd, c->want, deadline, c->stop);
		if (r < 0) {
			set_err(err, errlen, r == -ETIMEDOUT ?
				"timed out waiting for the daemon" :
				r == -EINTR ? "interrupted" : strerror(-r));
			return r;
		}
	}
	return 1;
}

/* One framed JSON message: 1 with a new reference, 0 at a clean end. */
static int
read_msg(struct client *c, int64_t deadline, json_t **ret, char *err,
	 size_t errlen)
{
	uint8_t hdr[PROTO_FRAME_HDR];
	json_error_t jerr;
	char *buf;
	size_t len;
	json_t *j;
	int r;

	r = read_exact(c, hdr, sizeof(hdr), deadline, err, errlen);
	if (r <= 0)
		return r;
	r = frame_check_header(hdr, CLIENT_FRAME_MAX, &len);
	if (r < 0) {
		snprintf(err, errlen, "the daemon sent a frame of %s",
			 r == -EBADMSG ? "length 0" : "more than 64M");
		return -EPROTO;
	}
	buf = malloc(len);
	if (!buf) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = read_exact(c, buf, len, deadline, err, errlen);
	if (r == 0) {
		set_err(err, errlen,
			"the daemon closed the connection inside a message");
		r = -EPROTO;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	j = json_loadb(buf, len, PROTO_JSON_DECODE_FLAGS, &jerr);
	free(buf);
	if (!j) {
		snprintf(err, errlen, "the daemon sent invalid JSON: %s",
			 jerr.text);
		return -EPROTO;
	}
	*ret = j;
	return 1;
}

/* --- connecting ----------------------------------------------------------- */

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int
client_alloc(int fd, const char *uri, struct client **ret)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->uri = strdup(uri);
	c->queue = json_array();
	c->want = POLLIN;
	if (!c->uri || !c->queue) {
		c->fd = -1;
		client_free(c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

int
client_from_fd(int fd, struct client **ret)
{
	int r = set_nonblock(fd);

	if (r < 0)
		return r;
	return client_alloc(fd, "fd", ret);
}

static int
connect_unix(const struct client_uri *u, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", u->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s", strerror(errno));
		close(fd);
		return r;
	}
	r = set_nonblock(fd);
	if (r < 0) {
		snprintf(err, errlen, "fcntl: %s", strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

static int
connect_tcp(const struct client_uri *u, int64_t deadline, char *err,
	    size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG,
	};
	struct addrinfo *res, *ai;
	int fd = -1, r, e, one = 1;
	socklen_t elen;

	r = getaddrinfo(u->host, u->port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve \"%s\": %s", u->host,
			 r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -EHOSTUNREACH;
	}
	r = -EHOSTUNREACH;
	snprintf(err, errlen, "no address for \"%s\"", u->host);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "socket: %s", strerror(errno));
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			r = wait_fd(fd, POLLOUT, deadline, NULL);
			elen = sizeof(e);
			if (r == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
						 &elen) == 0) {
				if (e == 0)
					break;
				r = -e;
			} else if (r == 0) {
				r = -errno;
			}
		} else {
			r = -errno;
		}
		snprintf(err, errlen, "%s", r == -ETIMEDOUT ?
			 "timed out connecting" : strerror(-r));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return r;
	/* Requests are small and answered one at a time: do not delay them. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
tls_handshake(struct client *c, const struct client_uri *u, const char *cert,
	      const char *key, const char *ca, int64_t deadline, char *err,
	      size_t errlen)
{
	char why[256];
	int r, n;

	r = tls_client_ctx_new(cert, key, ca, &c->ctx, err, errlen);
	if (r < 0)
		return r;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl) {
		snprintf(err, errlen, "TLS: %s", tls_last_error());
		return -ENOMEM;
	}
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
		     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* A daemon that closes without close_notify has still closed. */
	SSL_set_options(c->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	r = tls_client_set_host(c->ssl, u->host);
	if (r < 0) {
		snprintf(err, errlen, "TLS: bad host name \"%s\"", u->host);
		return r;
	}
	if (!SSL_set_fd(c->ssl, c->fd)) {
		snprintf(err, errlen, "TLS: %s", tls_last_error());
		return -EIO;
	}
	for (;;) {
		ERR_clear_error();
		n = SSL_connect(c->ssl);
		if (n == 1)
			return 0;
		r = SSL_get_error(c->ssl, n);
		if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE) {
			r = wait_fd(c->fd, r == SSL_ERROR_WANT_READ ? POLLIN :
				    POLLOUT, deadline, NULL);
			if (r < 0) {
				snprintf(err, errlen, "TLS handshake: %s",
					 r == -ETIMEDOUT ? "timed out" :
					 strerror(-r));
				return r;
			}
			continue;
		}
		if (r == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			snprintf(err, errlen, "TLS handshake: %s",
				 errno ? strerror(errno) :
				 "connection closed by the daemon");
			return -ECONNRESET;
		}
		tls_handshake_error(c->ssl, 0, why, sizeof(why));
		snprintf(err, errlen, "TLS handshake: %s", why);
		return -EPROTO;
	}
}

int
client_connect(const char *uri, const char *cert, const char *key,
	       const char *ca, struct client **ret, char *err, size_t errlen)
{
	int64_t deadline = deadline_of(CLIENT_CONNECT_TIMEOUT_MS);
	struct client_uri u;
	struct client *c;
	int fd, r;

	r = client_uri_parse(uri, &u, err, errlen);
	if (r < 0)
		return r;
	if (u.kind == CLIENT_URI_UNIX)
		fd = connect_unix(&u, err, errlen);
	else
		fd = connect_tcp(&u, deadline, err, errlen);
	if (fd < 0)
		return fd;
	r = client_alloc(fd, uri, &c);
	if (r < 0) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return r;
	}
	if (u.kind == CLIENT_URI_TLS) {
		r = tls_handshake(c, &u, cert, key, ca, deadline, err, errlen);
		if (r < 0) {
			client_free(c);
			return r;
		}
	}
	*ret = c;
	return 0;
}

void
client_free(struct client *c)
{
	if (!c)
		return;
	if (c->ssl) {
		/* Best effort: the daemon does not need our close_notify. */
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	json_decref(c->queue);
	free(c->uri);
	free(c);
	ERR_clear_error();
}

void
client_set_stop_flag(struct client *c, volatile sig_atomic_t *flag)
{
	c->stop = flag;
}

int
client_fd(const struct client *c)
{
	return c->fd;
}

short
client_poll_events(const struct client *c)
{
	return c->want ? c->want : POLLIN;
}

bool
client_has_buffered(const struct client *c)
{
	return c->ssl && SSL_has_pending(c->ssl);
}

const char *
client_uri_text(const struct client *c)
{
	return c->uri;
}

/* --- JSON-RPC ------------------------------------------------------------- */

static void
copy_scrubbed(char *dst, size_t len, const char *src)
{
	size_t i;

	snprintf(dst, len, "%s", src ? src : "");
	for (i = 0; dst[i]; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

static int
queue_notification(struct client *c, json_t *msg)
{
	/* A subscriber that never reads must not grow us without bound. */
	if (json_array_size(c->queue) >= CLIENT_QUEUE_MAX)
		json_array_remove(c->queue, 0);
	return json_array_append(c->queue, msg) < 0 ? -ENOMEM : 0;
}

int
client_call(struct client *c, const char *method, json_t *params,
	    int timeout_ms, json_t **ret_result,
	    struct client_rpc_error *ret_error, char *err, size_t errlen)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct jsonrpc_perr perr = { 0 };
	struct jsonrpc_msg msg;
	int64_t id = ++c->next_id;
	uint8_t *frame = NULL;
	size_t flen;
	json_t *req, *root;
	int r;

	req = jsonrpc_request_new(id, method, params);
	if (!req) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = frame_encode_json(req, CLIENT_FRAME_MAX, &frame, &flen);
	json_decref(req);
	if (r < 0) {
		set_err(err, errlen, r == -EMSGSIZE ? "request too large" :
			"out of memory");
		return r;
	}
	r = write_all(c, frame, flen, deadline, err, errlen);
	free(frame);
	if (r < 0)
		return r;

	for (;;) {
		r = read_msg(c, deadline, &root, err, errlen);
		if (r == 0) {
			set_err(err, errlen,
				"the daemon closed the connection before answering");
			return -ECONNRESET;
		}
		if (r < 0)
			return r;
		r = jsonrpc_classify(root, &msg, &perr);
		json_decref(root);
		if (r < 0) {
			snprintf(err, errlen, "invalid message from the daemon: %s",
				 r == -ENOMEM ? "out of memory" : perr.message);
			jsonrpc_perr_clear(&perr);
			return r == -ENOMEM ? r : -EPROTO;
		}
		if (msg.kind == JSONRPC_NOTIFICATION) {
			r = queue_notification(c, msg.root);
			jsonrpc_msg_clear(&msg);
			if (r < 0) {
				set_err(err, errlen, "out of memory");
				return r;
			}
			continue;
		}
		if (msg.kind == JSONRPC_REQUEST) {
			jsonrpc_msg_clear(&msg);
			set_err(err, errlen, "the daemon sent a request");
			return -EPROTO;
		}
		/*
		 * A response to another id is stale (we send one request at a
		 * time); an error with a null id is about our last frame.
		 */
		if (json_is_integer(msg.id) &&
		    json_integer_value(msg.id) == id)
			break;
		if (msg.kind == JSONRPC_ERROR && json_is_null(msg.id))
			break;
		jsonrpc_msg_clear(&msg);
	}
	if (msg.kind == JSONRPC_RESULT) {
		*ret_result = json_incref(msg.result);
		r = 0;
	} else {
		ret_error->code = msg.error_code;
		copy_scrubbed(ret_error->message, sizeof(ret_error->message),
			      msg.error_message);
		r = 1;
	}
	jsonrpc_msg_clear(&msg);
	return r;
}

int
client_next_notification(struct client *c, int timeout_ms, json_t **ret_msg,
			 char *err, size_t errlen)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct jsonrpc_perr perr = { 0 };
	struct jsonrpc_msg msg;
	json_t *root;
	int r;

	if (json_array_size(c->queue)) {
		*ret_msg = json_incref(json_array_get(c->queue, 0));
		json_array_remove(c->queue, 0);
		return 1;
	}
	for (;;) {
		r = read_msg(c, deadline, &root, err, errlen);
		if (r <= 0)
			return r;
		r = jsonrpc_classify(root, &msg, &perr);
		json_decref(root);
		if (r < 0) {
			snprintf(err, errlen, "invalid message from the daemon: %s",
				 r == -ENOMEM ? "out of memory" : perr.message);
			jsonrpc_perr_clear(&perr);
			return r == -ENOMEM ? r : -EPROTO;
		}
		if (msg.kind == JSONRPC_NOTIFICATION) {
			*ret_msg = json_incref(msg.root);
			jsonrpc_msg_clear(&msg);
			return 1;
		}
		/* Late responses to our own requests are of no interest here. */
		jsonrpc_msg_clear(&msg);
	}
}
