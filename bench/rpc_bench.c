/* SPDX-License-Identifier: MIT */
/*
 * The daemon's side of issue #5: RPC round-trip latency and throughput of
 * vm.list, and how fast VMs get created, started and booted through vmmd.
 * It starts nothing itself: bench/run.sh starts a vmmd and points this at
 * its UNIX socket or its TLS listener.
 *
 *	rpc_bench list   -u URI [-n CLIENTS] [-t SECONDS]
 *	rpc_bench define -u URI -g KERNEL [-N COUNT] [-x PREFIX]
 *	rpc_bench start  -u URI -g KERNEL [-N COUNT] [-j THREADS] [-x PREFIX]
 *			 [-m MEMORY] [-w MARKER]
 *	rpc_bench delete -u URI [-x PREFIX]
 *
 *	common: [-c CERT -k KEY -a CA] [-o RESULTS] [-K KEY_PREFIX]
 *		[-T TIMEOUT_S]
 *
 * URI is unix:///path or tls://HOST:PORT (then -c/-k/-a are the client
 * certificate, its key and the CA that signed the daemon's certificate).
 *
 * list: CLIENTS threads, each with its own connection (connected and, for
 * TLS, handshaken before the clock starts), send vm.list in a loop for
 * SECONDS: one request, wait for its response, the next (no pipelining).
 * Every round trip is timed with CLOCK_MONOTONIC from before the request is
 * written until its whole response frame is read (the JSON is parsed and
 * checked after the clock stops). Prints p50, p99, max and requests/s of
 * all clients together.
 *
 * define: COUNT stopped VMs PREFIX-NN of KERNEL (64M, 1 vCPU), so that
 * vm.list has something to list.
 *
 * start: COUNT VMs PREFIX-NN of KERNEL (MEMORY, 1 vCPU, command line
 * "testguest.action=hang") created with vm.create {start: true} from
 * THREADS threads, each with its own connection, each sending its share of
 * the VMs one after the other (VM i goes to thread i % THREADS). The clock
 * starts just before the first request. A VM is running when its vm.create
 * is answered (the daemon answers a create with start once the VM's vCPUs
 * entered the guest). Right then a watcher thread opens a connection of its
 * own, attaches to the VM's console with vm.console {write: false,
 * history: true} and reads until MARKER (TESTGUEST-READY, the test guest's
 * first output) shows up: the history replay makes sure nothing printed
 * before the attach is missed, and the time noted is when the watcher saw
 * the marker, so a slight upper bound of when the guest printed it.
 * Reports the times until every VM was running and until every guest had
 * printed, and both as VMs per second per host CPU (the CPUs this process
 * may run on).
 *
 * delete: vm.delete {force: true} of every VM whose name starts with
 * "PREFIX-" (all of them with -x '').
 *
 * With -o, key=value results appended to RESULTS under KEY_PREFIX
 * (default "rpc"): for list p50_us, p99_us, max_us, rps, requests,
 * clients, seconds; for start vms, threads, cpus, running_s, ready_s,
 * running_per_core_s, ready_per_core_s, create_median_ms, create_max_ms.
 * Exit status 0, or 1 when the measurement could not be taken (a request
 * failed, a guest never printed its marker within the timeout).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "proto/tls.h"

#define RB_ERR_MAX		512
#define RB_NAME_MAX		64
#define RB_MARKER_MAX		64
/* Responses we read: vm.list of a few VMs, a definition; far below this. */
#define RB_FRAME_MAX		(1024u * 1024u)

enum rb_kind {
	RB_UNIX,
	RB_TLS,
};

/* Where the daemon is and how to reach it; shared by every thread. */
struct rb_target {
	enum rb_kind kind;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char host[128];
	char port[8];
	SSL_CTX *ctx;
	int timeout_s;
};

/* One blocking connection: a socket, and an SSL on it for TLS. */
struct rb_conn {
	int fd;
	SSL *ssl;
	int64_t next_id;
};

static uint64_t
rb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
rb_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* --- URI and connections ------------------------------------------------- */

static int
rb_target_parse(const char *uri, struct rb_target *t, char *err,
		size_t errlen)
{
	const char *p, *colon;
	size_t hlen;

	if (strncmp(uri, "unix://", 7) == 0) {
		p = uri + 7;
		if (p[0] != '/' || strlen(p) >= sizeof(t->path)) {
			snprintf(err, errlen,
				 "\"%s\": want unix:///absolute/path (at most %zu bytes)",
				 uri, sizeof(t->path) - 1);
			return -EINVAL;
		}
		t->kind = RB_UNIX;
		snprintf(t->path, sizeof(t->path), "%s", p);
		return 0;
	}
	if (strncmp(uri, "tls://", 6) != 0) {
		snprintf(err, errlen,
			 "\"%s\": want unix:///path or tls://host:port", uri);
		return -EINVAL;
	}
	p = uri + 6;
	colon = strrchr(p, ':');
	if (!colon || colon == p || colon[1] == '\0' ||
	    strlen(colon + 1) >= sizeof(t->port) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		snprintf(err, errlen, "\"%s\": want tls://host:port", uri);
		return -EINVAL;
	}
	hlen = (size_t)(colon - p);
	if (p[0] == '[' && hlen >= 2 && p[hlen - 1] == ']') {
		p++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(t->host)) {
		snprintf(err, errlen, "\"%s\": bad host", uri);
		return -EINVAL;
	}
	memcpy(t->host, p, hlen);
	t->host[hlen] = '\0';
	snprintf(t->port, sizeof(t->port), "%s", colon + 1);
	t->kind = RB_TLS;
	return 0;
}

static void
rb_conn_close(struct rb_conn *c)
{
	if (c->ssl) {
		/* A quiet close: we are done and do not wait for the peer's. */
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int
rb_socket_tcp(const struct rb_target *t, char *err, size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res, *ai;
	int fd = -1, r, one = 1;

	r = getaddrinfo(t->host, t->port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", t->host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	r = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "connect %s:%s: %s", t->host, t->port,
			 strerror(-r));
		return r;
	}
	/* One small request at a time: Nagle would only add delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
rb_socket_unix(const struct rb_target *t, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		snprintf(err, errlen, "connect %s: %s", t->path,
			 strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

/*
 * Connect (and for TLS, handshake) with blocking I/O; every read and write
 * gives up after the target's timeout.
 */
static int
rb_conn_open(const struct rb_target *t, struct rb_conn *c, char *err,
	     size_t errlen)
{
	struct timeval tv = { .tv_sec = t->timeout_s };
	int r;

	c->ssl = NULL;
	c->next_id = 1;
	c->fd = t->kind == RB_UNIX ? rb_socket_unix(t, err, errlen) :
		rb_socket_tcp(t, err, errlen);
	if (c->fd < 0)
		return c->fd;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (t->kind == RB_UNIX)
		return 0;
	ERR_clear_error();
	c->ssl = SSL_new(t->ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
		snprintf(err, errlen, "SSL_new: %s", tls_last_error());
		r = -ENOMEM;
		goto fail;
	}
	r = tls_client_set_host(c->ssl, t->host);
	if (r < 0) {
		snprintf(err, errlen, "server name \"%s\": %s", t->host,
			 strerror(-r));
		goto fail;
	}
	if (SSL_connect(c->ssl) != 1) {
		tls_handshake_error(c->ssl, 0, err, errlen);
		r = -EPROTO;
		goto fail;
	}
	return 0;
fail:
	rb_conn_close(c);
	return r;
}

/* Why an SSL call failed; empties this thread's OpenSSL error queue. */
static int
rb_ssl_error(struct rb_conn *c, int ret, char *err, size_t errlen)
{
	int e = SSL_get_error(c->ssl, ret);

	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		return 0;
	}
	if (e == SSL_ERROR_SYSCALL) {
		int saved = errno ? errno : ECONNRESET;

		ERR_clear_error();
		snprintf(err, errlen, "%s", saved == EAGAIN ?
			 "timed out" : strerror(saved));
		return saved == EAGAIN ? -ETIMEDOUT : -saved;
	}
	snprintf(err, errlen, "TLS: %s", tls_last_error());
	return -EPROTO;
}

/* Some bytes: >0, 0 at the end of the stream, or a negative errno. */
static ssize_t
rb_read_some(struct rb_conn *c, void *buf, size_t len, char *err,
	     size_t errlen)
{
	ssize_t n;
	int r;

	if (c->ssl) {
		ERR_clear_error();
		r = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		if (r > 0)
			return r;
		return rb_ssl_error(c, r, err, errlen);
	}
	do {
		n = read(c->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		snprintf(err, errlen, "timed out");
		return -ETIMEDOUT;
	}
	snprintf(err, errlen, "read: %s", strerror(errno));
	return -errno;
}

static int
rb_write_all(struct rb_conn *c, const void *buf, size_t len, char *err,
	     size_t errlen)
{
	const uint8_t *p = buf;
	ssize_t n;
	int r;

	while (len) {
		if (c->ssl) {
			ERR_clear_error();
			r = SSL_write(c->ssl, p, len > INT32_MAX ? INT32_MAX :
				      (int)len);
			if (r <= 0) {
				r = rb_ssl_error(c, r, err, errlen);
				return r ? r : -EPIPE;
			}
			n = r;
		} else {
			n = send(c->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				snprintf(err, errlen, "write: %s",
					 strerror(errno));
				return -errno;
			}
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Exactly len bytes: 0, or a negative errno (-EPIPE at an early end). */
static int
rb_read_exact(struct rb_conn *c, void *buf, size_t len, char *err,
	      size_t errlen)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = rb_read_some(c, p, len, err, errlen);
		if (n == 0) {
			snprintf(err, errlen, "the daemon closed the connection");
			return -EPIPE;
		}
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Send one request frame already encoded in req[0, len) (header included)
 * and read one response frame into a new malloc'd, NUL-terminated buffer.
 * This is what a round trip is; it is timed around this call.
 */
static int
rb_round_trip(struct rb_conn *c, const uint8_t *req, size_t len,
	      char **ret_payload, size_t *ret_len, char *err, size_t errlen)
{
	uint8_t hdr[PROTO_FRAME_HDR];
	size_t plen;
	char *buf;
	int r;

	r = rb_write_all(c, req, len, err, errlen);
	if (r < 0)
		return r;
	r = rb_read_exact(c, hdr, sizeof(hdr), err, errlen);
	if (r < 0)
		return r;
	r = frame_check_header(hdr, RB_FRAME_MAX, &plen);
	if (r < 0) {
		snprintf(err, errlen, "bad response frame header: %s",
			 strerror(-r));
		return r;
	}
	buf = malloc(plen + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = rb_read_exact(c, buf, plen, err, errlen);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[plen] = '\0';
	*ret_payload = buf;
	*ret_len = plen;
	return 0;
}

/*
 * Check a response payload: the id we sent and a result object. Returns 0
 * with a new reference to the result in *ret_result (may be NULL), or
 * -EPROTO with the error's message in err.
 */
static int
rb_check_response(const char *payload, size_t len, int64_t id,
		  json_t **ret_result, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *rid, *result, *error;
	int r = -EPROTO;

	root = json_loadb(payload, len, PROTO_JSON_DECODE_FLAGS, &jerr);
	if (!root) {
		snprintf(err, errlen, "response is not JSON: %s", jerr.text);
		return -EPROTO;
	}
	rid = json_object_get(root, "id");
	result = json_object_get(root, "result");
	error = json_object_get(root, "error");
	if (error) {
		snprintf(err, errlen, "error %lld: %s",
			 (long long)json_integer_value(json_object_get(error,
								       "code")),
			 json_string_value(json_object_get(error, "message")) ?:
			 "(no message)");
	} else if (!json_is_integer(rid) || json_integer_value(rid) != id) {
		snprintf(err, errlen, "response to id %lld, not %lld",
			 (long long)json_integer_value(rid), (long long)id);
	} else if (!json_is_object(result)) {
		snprintf(err, errlen, "response without a result object");
	} else {
		if (ret_result)
			*ret_result = json_incref(result);
		r = 0;
	}
	json_decref(root);
	return r;
}

/* One call: method with params (stolen, may be NULL); result as above. */
static int
rb_call(struct rb_conn *c, const char *method, json_t *params,
	json_t **ret_result, char *err, size_t errlen)
{
	int64_t id = c->next_id++;
	json_t *req = jsonrpc_request_new(id, method, params);
	uint8_t *frame = NULL;
	size_t flen, plen;
	char *payload;
	int r;

	if (!req) {
		snprintf(err, errlen, "%s: cannot build the request", method);
		return -ENOMEM;
	}
	r = frame_encode_json(req, RB_FRAME_MAX, &frame, &flen);
	json_decref(req);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot encode: %s", method,
			 strerror(-r));
		return r;
	}
	r = rb_round_trip(c, frame, flen, &payload, &plen, err, errlen);
	free(frame);
	if (r < 0)
		return r;
	r = rb_check_response(payload, plen, id, ret_result, err, errlen);
	free(payload);
	return r;
}

/* --- results ------------------------------------------------------------- */

struct rb_opts {
	const char *mode;
	const char *uri;
	const char *cert, *key, *ca;
	const char *results;
	const char *key_prefix;
	const char *kernel;
	const char *prefix;
	const char *memory;
	const char *marker;
	int clients;
	double seconds;
	int count;
	int threads;
	int timeout_s;
};

static FILE *
rb_results_open(const struct rb_opts *o)
{
	FILE *f;

	if (!o->results)
		return NULL;
	f = fopen(o->results, "a");
	if (!f)
		fprintf(stderr, "rpc_bench: %s: %s\n", o->results,
			strerror(errno));
	return f;
}

static int
rb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0, n), n > 0. */
static uint64_t
rb_percentile(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* --- list ---------------------------------------------------------------- */

struct rb_list_client {
	const struct rb_target *t;
	pthread_barrier_t *ready, *go;
	const uint64_t *end_at;		/* set between ready and go */
	struct rb_conn conn;
	bool connected;
	uint64_t *lat;
	size_t n, cap;
	int error;
	char err[RB_ERR_MAX];
	pthread_t tid;
};

static int
rb_list_one(struct rb_list_client *lc)
{
	uint8_t frame[160];
	int64_t id = lc->conn.next_id++;
	char *payload;
	size_t plen;
	uint64_t t0, t1;
	int len, r;

	/* Encoded by hand: a request as a client library would write it. */
	len = snprintf((char *)frame + PROTO_FRAME_HDR,
		       sizeof(frame) - PROTO_FRAME_HDR,
		       "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"vm.list\","
		       "\"params\":{}}", (long long)id);
	frame_put_header(frame, (uint32_t)len);
	t0 = rb_now_ns();
	r = rb_round_trip(&lc->conn, frame, PROTO_FRAME_HDR + (size_t)len,
			  &payload, &plen, lc->err, sizeof(lc->err));
	t1 = rb_now_ns();
	if (r < 0)
		return r;
	r = rb_check_response(payload, plen, id, NULL, lc->err,
			      sizeof(lc->err));
	free(payload);
	if (r < 0)
		return r;
	if (lc->n == lc->cap) {
		size_t cap = lc->cap ? lc->cap * 2 : 4096;
		uint64_t *v = realloc(lc->lat, cap * sizeof(*v));

		if (!v) {
			snprintf(lc->err, sizeof(lc->err), "out of memory");
			return -ENOMEM;
		}
		lc->lat = v;
		lc->cap = cap;
	}
	lc->lat[lc->n++] = t1 - t0;
	return 0;
}

static void *
rb_list_thread(void *arg)
{
	struct rb_list_client *lc = arg;
	int r;

	r = rb_conn_open(lc->t, &lc->conn, lc->err, sizeof(lc->err));
	lc->connected = r == 0;
	if (r < 0)
		lc->error = r;
	/* Everyone connected (or failed) before the clock starts. */
	pthread_barrier_wait(lc->ready);
	pthread_barrier_wait(lc->go);
	if (!lc->connected)
		return NULL;
	while (rb_now_ns() < *lc->end_at) {
		r = rb_list_one(lc);
		if (r < 0) {
			lc->error = r;
			break;
		}
	}
	rb_conn_close(&lc->conn);
	return NULL;
}

static int
rb_mode_list(const struct rb_opts *o, const struct rb_target *t)
{
	struct rb_list_client *lc;
	pthread_barrier_t ready, go;
	uint64_t end_at = UINT64_MAX, start, stop, *all = NULL;
	size_t total = 0, k;
	int i, ret = 1, failed = 0;
	double secs, rps;
	FILE *f;

	lc = calloc((size_t)o->clients, sizeof(*lc));
	if (!lc || pthread_barrier_init(&ready, NULL,
					(unsigned)o->clients + 1) != 0 ||
	    pthread_barrier_init(&go, NULL, (unsigned)o->clients + 1) != 0) {
		fprintf(stderr, "rpc_bench: out of memory\n");
		free(lc);
		return 1;
	}
	for (i = 0; i < o->clients; i++) {
		lc[i].t = t;
		lc[i].ready = &ready;
		lc[i].go = &go;
		lc[i].end_at = &end_at;
		if (pthread_create(&lc[i].tid, NULL, rb_list_thread,
				   &lc[i]) != 0) {
			fprintf(stderr, "rpc_bench: pthread_create failed\n");
			exit(1);
		}
	}
	/*
	 * Every client has connected; end_at is written before the go
	 * barrier, which orders it before the clients read it.
	 */
	pthread_barrier_wait(&ready);
	start = rb_now_ns();
	end_at = start + (uint64_t)(o->seconds * 1e9);
	pthread_barrier_wait(&go);
	for (i = 0; i < o->clients; i++)
		pthread_join(lc[i].tid, NULL);
	stop = rb_now_ns();
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);

	for (i = 0; i < o->clients; i++) {
		if (lc[i].error) {
			fprintf(stderr, "rpc_bench: client %d: %s\n", i,
				lc[i].err);
			failed++;
		}
		total += lc[i].n;
	}
	if (failed || total == 0) {
		if (!failed)
			fprintf(stderr, "rpc_bench: no request completed\n");
		goto out;
	}
	all = malloc(total * sizeof(*all));
	if (!all) {
		fprintf(stderr, "rpc_bench: out of memory\n");
		goto out;
	}
	for (i = 0, k = 0; i < o->clients; i++) {
		memcpy(all + k, lc[i].lat, lc[i].n * sizeof(*all));
		k += lc[i].n;
	}
	qsort(all, total, sizeof(*all), rb_cmp_u64);
	secs = (double)(stop - start) / 1e9;
	rps = (double)total / secs;
	printf("vm.list over %s, %d client%s, %.2f s: %zu requests, %.0f/s; "
	       "round trip p50 %.1f us, p99 %.1f us, max %.1f us\n",
	       t->kind == RB_UNIX ? "UNIX socket" : "TLS", o->clients,
	       o->clients == 1 ? "" : "s", secs, total, rps,
	       (double)rb_percentile(all, total, 50) / 1e3,
	       (double)rb_percentile(all, total, 99) / 1e3,
	       (double)all[total - 1] / 1e3);
	f = rb_results_open(o);
	if (f) {
		fprintf(f, "%s.clients=%d\n%s.seconds=%.3f\n%s.requests=%zu\n"
			"%s.rps=%.1f\n%s.p50_us=%.1f\n%s.p99_us=%.1f\n"
			"%s.max_us=%.1f\n",
			o->key_prefix, o->clients, o->key_prefix, secs,
			o->key_prefix, total, o->key_prefix, rps,
			o->key_prefix,
			(double)rb_percentile(all, total, 50) / 1e3,
			o->key_prefix,
			(double)rb_percentile(all, total, 99) / 1e3,
			o->key_prefix, (double)all[total - 1] / 1e3);
		fclose(f);
	}
	ret = 0;
out:
	free(all);
	for (i = 0; i < o->clients; i++)
		free(lc[i].lat);
	free(lc);
	return ret;
}

/* --- define, start, delete ----------------------------------------------- */

static json_t *
rb_definition(const struct rb_opts *o, const char *name, const char *cmdline)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", name,
			 "kernel", o->kernel, "cmdline", cmdline,
			 "memory", o->memory, "vcpus", 1);
}

static int
rb_mode_define(const struct rb_opts *o, const struct rb_target *t)
{
	char err[RB_ERR_MAX], name[RB_NAME_MAX];
	struct rb_conn c;
	json_t *params;
	int i, r;

	r = rb_conn_open(t, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "rpc_bench: %s\n", err);
		return 1;
	}
	for (i = 0; i < o->count; i++) {
		snprintf(name, sizeof(name), "%s-%02d", o->prefix, i);
		params = json_pack("{s:o}", "definition",
				   rb_definition(o, name,
						 "testguest.action=hang"));
		r = rb_call(&c, "vm.create", params, NULL, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "rpc_bench: vm.create %s: %s\n", name,
				err);
			break;
		}
	}
	rb_conn_close(&c);
	if (r < 0)
		return 1;
	printf("defined %d VMs %s-NN (stopped)\n", o->count, o->prefix);
	return 0;
}

static int
rb_mode_delete(const struct rb_opts *o, const struct rb_target *t)
{
	char err[RB_ERR_MAX];
	struct rb_conn c;
	json_t *res = NULL, *vm;
	size_t i, plen = strlen(o->prefix);
	int r, deleted = 0, failed = 0;
	const char *name;

	r = rb_conn_open(t, &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "rpc_bench: %s\n", err);
		return 1;
	}
	r = rb_call(&c, "vm.list", NULL, &res, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "rpc_bench: vm.list: %s\n", err);
		rb_conn_close(&c);
		return 1;
	}
	json_array_foreach(json_object_get(res, "vms"), i, vm) {
		name = json_string_value(json_object_get(vm, "name"));
		if (!name || (plen && (strncmp(name, o->prefix, plen) != 0 ||
				       name[plen] != '-')))
			continue;
		r = rb_call(&c, "vm.delete", json_pack("{s:s, s:b}", "name",
						       name, "force", 1),
			    NULL, err, sizeof(err));
		if (r < 0) {
			fprintf(stderr, "rpc_bench: vm.delete %s: %s\n", name,
				err);
			failed++;
		} else {
			deleted++;
		}
	}
	json_decref(res);
	rb_conn_close(&c);
	printf("deleted %d VMs\n", deleted);
	return failed ? 1 : 0;
}

struct rb_vm {
	char name[RB_NAME_MAX];
	uint64_t t_req, t_running, t_ready;	/* 0: not reached */
	pthread_t watcher;
	bool watching;
	char err[RB_ERR_MAX];
};

struct rb_start {
	const struct rb_opts *o;
	const struct rb_target *t;
	struct rb_vm *vms;
	pthread_barrier_t go;
};

struct rb_start_thread {
	struct rb_start *s;
	int index;
	pthread_t tid;
	char err[RB_ERR_MAX];
	bool connected;
};

struct rb_watch {
	struct rb_start *s;
	struct rb_vm *vm;
};

/* Attach to vm's console (history first) and read until the marker. */
static void *
rb_watch_thread(void *arg)
{
	struct rb_watch *w = arg;
	struct rb_vm *vm = w->vm;
	const struct rb_target *t = w->s->t;
	const char *marker = w->s->o->marker;
	size_t mlen = strlen(marker), have = 0;
	char buf[4096 + RB_MARKER_MAX];
	struct rb_conn c;
	ssize_t n;
	int r;

	free(w);
	r = rb_conn_open(t, &c, vm->err, sizeof(vm->err));
	if (r < 0)
		return NULL;
	r = rb_call(&c, "vm.console", json_pack("{s:s, s:b, s:b}", "name",
						 vm->name, "write", 0,
						 "history", 1),
		    NULL, vm->err, sizeof(vm->err));
	if (r < 0)
		goto out;
	/* Raw console bytes from here on; keep a marker's length of tail. */
	for (;;) {
		n = rb_read_some(&c, buf + have, sizeof(buf) - have - 1,
				 vm->err, sizeof(vm->err));
		if (n <= 0) {
			if (n == 0)
				snprintf(vm->err, sizeof(vm->err),
					 "console closed before \"%s\"",
					 marker);
			break;
		}
		have += (size_t)n;
		if (memmem(buf, have, marker, mlen)) {
			vm->t_ready = rb_now_ns();
			break;
		}
		if (have >= mlen) {
			memmove(buf, buf + have - (mlen - 1), mlen - 1);
			have = mlen - 1;
		}
	}
out:
	rb_conn_close(&c);
	return NULL;
}

static void *
rb_start_thread(void *arg)
{
	struct rb_start_thread *st = arg;
	struct rb_start *s = st->s;
	const struct rb_opts *o = s->o;
	struct rb_conn c;
	struct rb_watch *w;
	struct rb_vm *vm;
	json_t *res, *params;
	const char *state;
	int i, r;

	r = rb_conn_open(s->t, &c, st->err, sizeof(st->err));
	st->connected = r == 0;
	pthread_barrier_wait(&s->go);
	if (r < 0)
		return NULL;
	for (i = st->index; i < o->count; i += o->threads) {
		vm = &s->vms[i];
		params = json_pack("{s:o, s:b}", "definition",
				   rb_definition(o, vm->name,
						 "testguest.action=hang"),
				   "start", 1);
		res = NULL;
		vm->t_req = rb_now_ns();
		r = rb_call(&c, "vm.create", params, &res, vm->err,
			    sizeof(vm->err));
		if (r < 0)
			continue;
		state = json_string_value(json_object_get(res, "state"));
		if (!state || strcmp(state, "running") != 0) {
			snprintf(vm->err, sizeof(vm->err),
				 "vm.create answered state %s, not running",
				 state ?: "(none)");
			json_decref(res);
			continue;
		}
		vm->t_running = rb_now_ns();
		json_decref(res);
		w = malloc(sizeof(*w));
		if (!w) {
			snprintf(vm->err, sizeof(vm->err), "out of memory");
			continue;
		}
		w->s = s;
		w->vm = vm;
		if (pthread_create(&vm->watcher, NULL, rb_watch_thread, w)) {
			free(w);
			snprintf(vm->err, sizeof(vm->err),
				 "cannot start a console watcher");
			continue;
		}
		vm->watching = true;
	}
	rb_conn_close(&c);
	return NULL;
}

static int
rb_mode_start(const struct rb_opts *o, const struct rb_target *t)
{
	struct rb_start s = { .o = o, .t = t };
	struct rb_start_thread *st;
	uint64_t t0 = UINT64_MAX, last_run = 0, last_ready = 0, *lat;
	int i, failed = 0, cpus = rb_cpus(), ret = 1;
	double run_s, ready_s;
	FILE *f;

	s.vms = calloc((size_t)o->count, sizeof(*s.vms));
	st = calloc((size_t)o->threads, sizeof(*st));
	lat = calloc((size_t)o->count, sizeof(*lat));
	if (!s.vms || !st || !lat ||
	    pthread_barrier_init(&s.go, NULL, (unsigned)o->threads + 1)) {
		fprintf(stderr, "rpc_bench: out of memory\n");
		goto out;
	}
	for (i = 0; i < o->count; i++)
		snprintf(s.vms[i].name, sizeof(s.vms[i].name), "%s-%02d",
			 o->prefix, i);
	for (i = 0; i < o->threads; i++) {
		st[i].s = &s;
		st[i].index = i;
		if (pthread_create(&st[i].tid, NULL, rb_start_thread, &st[i])) {
			fprintf(stderr, "rpc_bench: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&s.go);
	for (i = 0; i < o->threads; i++)
		pthread_join(st[i].tid, NULL);
	for (i = 0; i < o->count; i++)
		if (s.vms[i].watching)
			pthread_join(s.vms[i].watcher, NULL);
	pthread_barrier_destroy(&s.go);

	for (i = 0; i < o->threads; i++) {
		if (!st[i].connected) {
			fprintf(stderr, "rpc_bench: thread %d: %s\n", i,
				st[i].err);
			failed++;
		}
	}
	for (i = 0; i < o->count; i++) {
		struct rb_vm *vm = &s.vms[i];

		if (!vm->t_running || !vm->t_ready) {
			if (vm->t_req || vm->t_running)
				fprintf(stderr, "rpc_bench: %s: %s\n",
					vm->name, vm->err[0] ? vm->err :
					"never reached");
			failed++;
			continue;
		}
		lat[i] = vm->t_running - vm->t_req;
		if (vm->t_running > last_run)
			last_run = vm->t_running;
		if (vm->t_ready > last_ready)
			last_ready = vm->t_ready;
	}
	if (failed) {
		fprintf(stderr, "rpc_bench: %d of %d VMs (or threads) failed\n",
			failed, o->count);
		goto out;
	}
	/* The clock starts at the first request sent. */
	for (i = 0; i < o->count; i++)
		if (s.vms[i].t_req < t0)
			t0 = s.vms[i].t_req;
	qsort(lat, (size_t)o->count, sizeof(*lat), rb_cmp_u64);
	run_s = (double)(last_run - t0) / 1e9;
	ready_s = (double)(last_ready - t0) / 1e9;
	printf("%d VMs (%s, 1 vCPU) created with start from %d threads: all "
	       "running after %.3f s (%.2f VMs/s per CPU), all printed %s after "
	       "%.3f s (%.2f VMs/s per CPU); %d CPUs; vm.create round trip "
	       "median %.1f ms, max %.1f ms\n",
	       o->count, o->memory, o->threads, run_s,
	       o->count / run_s / cpus, o->marker, ready_s,
	       o->count / ready_s / cpus, cpus,
	       (double)rb_percentile(lat, (size_t)o->count, 50) / 1e6,
	       (double)lat[o->count - 1] / 1e6);
	f = rb_results_open(o);
	if (f) {
		fprintf(f, "%s.vms=%d\n%s.threads=%d\n%s.cpus=%d\n"
			"%s.running_s=%.4f\n%s.ready_s=%.4f\n"
			"%s.running_per_core_s=%.3f\n%s.ready_per_core_s=%.3f\n"
			"%s.create_median_ms=%.2f\n%s.create_max_ms=%.2f\n",
			o->key_prefix, o->count, o->key_prefix, o->threads,
			o->key_prefix, cpus, o->key_prefix, run_s,
			o->key_prefix, ready_s, o->key_prefix,
			o->count / run_s / cpus, o->key_prefix,
			o->count / ready_s / cpus, o->key_prefix,
			(double)rb_percentile(lat, (size_t)o->count, 50) / 1e6,
			o->key_prefix, (double)lat[o->count - 1] / 1e6);
		fclose(f);
	}
	ret = 0;
out:
	free(lat);
	free(st);
	free(s.vms);
	return ret;
}

/* --- main ---------------------------------------------------------------- */

static void
rb_usage(void)
{
	fprintf(stderr,
		"usage: rpc_bench list   -u URI [-n CLIENTS] [-t SECONDS]\n"
		"       rpc_bench define -u URI -g KERNEL [-N COUNT] [-x PREFIX]\n"
		"       rpc_bench start  -u URI -g KERNEL [-N COUNT] [-j THREADS]\n"
		"                        [-x PREFIX] [-m MEMORY] [-w MARKER]\n"
		"       rpc_bench delete -u URI [-x PREFIX]\n"
		"  common: [-c CERT -k KEY -a CA] [-o RESULTS] [-K KEY_PREFIX]"
		" [-T TIMEOUT_S]\n"
		"  URI: unix:///path or tls://host:port\n");
}

static int
rb_int_arg(const char *s, int lo, int hi, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

int
main(int argc, char **argv)
{
	struct rb_opts o = {
		.key_prefix = "rpc",
		.prefix = "bench",
		.memory = "64M",
		.marker = "TESTGUEST-READY",
		.clients = 1,
		.seconds = 2.0,
		.count = 20,
		.threads = 4,
		.timeout_s = 120,
	};
	struct rb_target t = { 0 };
	char err[RB_ERR_MAX], *end;
	int opt, r, ret;

	if (argc < 2 || argv[1][0] == '-') {
		rb_usage();
		return 2;
	}
	o.mode = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "u:c:k:a:o:K:T:n:t:g:N:j:x:m:w:")) !=
	       -1) {
		r = 0;
		switch (opt) {
		case 'u': o.uri = optarg; break;
		case 'c': o.cert = optarg; break;
		case 'k': o.key = optarg; break;
		case 'a': o.ca = optarg; break;
		case 'o': o.results = optarg; break;
		case 'K': o.key_prefix = optarg; break;
		case 'g': o.kernel = optarg; break;
		case 'x': o.prefix = optarg; break;
		case 'm': o.memory = optarg; break;
		case 'w': o.marker = optarg; break;
		case 'T': r = rb_int_arg(optarg, 1, 3600, &o.timeout_s); break;
		case 'n': r = rb_int_arg(optarg, 1, 1024, &o.clients); break;
		case 'N': r = rb_int_arg(optarg, 1, 1000, &o.count); break;
		case 'j': r = rb_int_arg(optarg, 1, 256, &o.threads); break;
		case 't':
			o.seconds = strtod(optarg, &end);
			if (end == optarg || *end || !(o.seconds > 0) ||
			    o.seconds > 3600)
				r = -EINVAL;
			break;
		default:
			rb_usage();
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "rpc_bench: -%c %s: out of range\n",
				opt, optarg);
			return 2;
		}
	}
	if (optind != argc || !o.uri) {
		rb_usage();
		return 2;
	}
	if (strlen(o.marker) == 0 || strlen(o.marker) >= RB_MARKER_MAX) {
		fprintf(stderr, "rpc_bench: -w: 1 to %d characters\n",
			RB_MARKER_MAX - 1);
		return 2;
	}
	if ((!strcmp(o.mode, "define") || !strcmp(o.mode, "start")) &&
	    !o.kernel) {
		fprintf(stderr, "rpc_bench: %s needs -g KERNEL\n", o.mode);
		return 2;
	}
	if (rb_target_parse(o.uri, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "rpc_bench: %s\n", err);
		return 2;
	}
	t.timeout_s = o.timeout_s;
	/* A daemon that goes away must give an error, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (t.kind == RB_TLS) {
		r = tls_client_ctx_new(o.cert, o.key, o.ca, &t.ctx, err,
				       sizeof(err));
		if (r < 0) {
			fprintf(stderr, "rpc_bench: %s\n", err);
			return 1;
		}
	}

	if (!strcmp(o.mode, "list")) {
		ret = rb_mode_list(&o, &t);
	} else if (!strcmp(o.mode, "define")) {
		ret = rb_mode_define(&o, &t);
	} else if (!strcmp(o.mode, "start")) {
		ret = rb_mode_start(&o, &t);
	} else if (!strcmp(o.mode, "delete")) {
		ret = rb_mode_delete(&o, &t);
	} else {
		rb_usage();
		ret = 2;
	}
	SSL_CTX_free(t.ctx);
	return ret;
}
