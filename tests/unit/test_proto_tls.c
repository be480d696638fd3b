/* SPDX-License-Identifier: MIT */
/*
 * TLS contexts and peer identities: real handshakes between a client and a
 * server SSL over a socketpair, driven step by step in one thread, with
 * certificates made by tests/integration/lib/mkcerts.sh (and a few odd ones
 * made here with OpenSSL's API). Run from the source tree, or with
 * VMMD_SRCDIR pointing at it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "proto/tls.h"

static struct {
	bool have;		/* certificates were made */
	char dir[64];
} certs;

/* Rotating buffers for paths: a few may be live in one call. */
static const char *
path(const char *name, const char *ext)
{
	static char bufs[8][128];
	static unsigned int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s%s", certs.dir, name, ext);
	return b;
}

#define CRT(n) path(n, ".crt")
#define KEY(n) path(n, ".key")

static bool
in_path(const char *prog)
{
	char buf[PATH_MAX];
	const char *p = getenv("PATH"), *end;
	size_t n;

	for (; p && *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		n = (size_t)(end - p);
		if (n == 0 || n + strlen(prog) + 2 > sizeof(buf))
			continue;
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

static int
group_setup(void **state)
{
	const char *src = getenv("VMMD_SRCDIR");
	char script[PATH_MAX], cmd[PATH_MAX + 128];
	int r;

	(void)state;
	if (!in_path("openssl")) {
		print_message("# openssl not found (apt-get install openssl): "
			      "cannot make test certificates; skipping every "
			      "TLS test\n");
		return 0;
	}
	snprintf(script, sizeof(script), "%s/tests/integration/lib/mkcerts.sh",
		 src ? src : ".");
	if (access(script, X_OK) != 0) {
		print_error("%s not found: run from the source tree or set "
			    "VMMD_SRCDIR\n", script);
		return -1;
	}
	strcpy(certs.dir, "/tmp/test_proto_tls.XXXXXX");
	if (!mkdtemp(certs.dir)) {
		print_error("mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "'%s' '%s'", script, certs.dir);
	r = system(cmd);
	if (r != 0) {
		print_error("%s failed (status %d)\n", cmd, r);
		return -1;
	}
	certs.have = true;
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (!certs.dir[0])
		return 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certs.dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
need_certs(void)
{
	if (!certs.have)
		skip();
}

static SSL_CTX *
server_ctx(const char *name)
{
	char err[512] = "";
	SSL_CTX *ctx = NULL;
	int r;

	r = tls_server_ctx_new(CRT(name), KEY(name), CRT("ca"), &ctx, err,
			       sizeof(err));
	if (r != 0)
		fail_msg("tls_server_ctx_new(%s): %d: %s", name, r, err);
	return ctx;
}

/* A client context with name's certificate (NULL: none), trusting ca. */
static SSL_CTX *
client_ctx(const char *name, const char *ca)
{
	char err[512] = "";
	SSL_CTX *ctx = NULL;
	int r;

	r = tls_client_ctx_new(name ? CRT(name) : NULL,
			       name ? KEY(name) : NULL, CRT(ca), &ctx, err,
			       sizeof(err));
	if (r != 0)
		fail_msg("tls_client_ctx_new(%s): %d: %s", name ? name : "-",
			 r, err);
	return ctx;
}

/* --- a handshake over a socketpair --- */

struct conn {
	SSL *c, *s;
	int cfd, sfd;
	int c_done, s_done;		/* 1 ok, -1 failed, 0 not yet */
	unsigned long c_err, s_err;	/* the first OpenSSL error, on failure */
};

static void
conn_open(struct conn *x, SSL_CTX *sctx, SSL_CTX *cctx, const char *host)
{
	int sv[2];

	memset(x, 0, sizeof(*x));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
				    SOCK_CLOEXEC, 0, sv), 0);
	x->cfd = sv[0];
	x->sfd = sv[1];
	x->c = SSL_new(cctx);
	x->s = SSL_new(sctx);
	assert_non_null(x->c);
	assert_non_null(x->s);
	assert_int_equal(SSL_set_fd(x->c, x->cfd), 1);
	assert_int_equal(SSL_set_fd(x->s, x->sfd), 1);
	SSL_set_connect_state(x->c);
	SSL_set_accept_state(x->s);
	if (host)
		assert_int_equal(tls_client_set_host(x->c, host), 0);
}

static void
conn_step(SSL *ssl, int fd, int *done, unsigned long *err)
{
	int r, e;

	if (*done)
		return;
	ERR_clear_error();
	r = SSL_do_handshake(ssl);
	if (r == 1) {
		*done = 1;
		return;
	}
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*done = -1;
	*err = ERR_peek_error();
	ERR_clear_error();
	/* The alert is on its way; EOF after it so the peer cannot wait. */
	shutdown(fd, SHUT_WR);
}

/* Run both ends until each has finished or failed. */
static void
conn_handshake(struct conn *x)
{
	int i;

	for (i = 0; i < 100 && (!x->c_done || !x->s_done); i++) {
		conn_step(x->c, x->cfd, &x->c_done, &x->c_err);
		conn_step(x->s, x->sfd, &x->s_done, &x->s_err);
	}
	if (!x->c_done || !x->s_done)
		fail_msg("handshake stalled: client %d, server %d", x->c_done,
			 x->s_done);
}

static void
conn_close(struct conn *x)
{
	SSL_free(x->c);
	SSL_free(x->s);
	close(x->cfd);
	close(x->sfd);
	ERR_clear_error();
}

static int
conn_read(SSL *ssl, char *buf, int len)
{
	int i, r = -1;

	for (i = 0; i < 10; i++) {
		r = SSL_read(ssl, buf, len);
		if (r > 0 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
			break;
	}
	return r;
}

/* Both ends finished; bytes go both ways. */
static void
expect_ok(struct conn *x, const char *what)
{
	char buf[16];

	if (x->c_done != 1 || x->s_done != 1) {
		char ce[128], se[128];

		tls_handshake_error(x->c, x->c_err, ce, sizeof(ce));
		tls_handshake_error(x->s, x->s_err, se, sizeof(se));
		fail_msg("%s: handshake failed: client %d (%s), server %d (%s)",
			 what, x->c_done, ce, x->s_done, se);
	}
	assert_int_equal(SSL_write(x->c, "ping", 4), 4);
	assert_int_equal(conn_read(x->s, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(SSL_write(x->s, "pong", 4), 4);
	assert_int_equal(conn_read(x->c, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
}

/*
 * The server refused the client, with verification error verr (X509_V_OK:
 * not a verification failure) and, for that case, the handshake error
 * text want. The client learns of it at once (TLS 1.2) or at its first
 * read (TLS 1.3: its handshake ends before the server has checked it).
 */
static void
expect_server_refused(struct conn *x, long verr, const char *want,
		      const char *what)
{
	char text[256], buf[16], id[TLS_IDENTITY_MAX];
	int r;

	if (x->s_done != -1)
		fail_msg("%s: the server accepted the client", what);
	assert_int_equal(SSL_get_verify_result(x->s), verr);
	tls_handshake_error(x->s, x->s_err, text, sizeof(text));
	if (strcmp(text, want) != 0)
		fail_msg("%s: tls_handshake_error: expected \"%s\", got \"%s\"",
			 what, want, text);
	assert_int_equal(tls_peer_identity(x->s, id, sizeof(id)), -EACCES);
	if (x->c_done == 1) {
		r = conn_read(x->c, buf, sizeof(buf));
		assert_true(r <= 0);
		assert_int_equal(SSL_get_error(x->c, r), SSL_ERROR_SSL);
	} else {
		assert_int_equal(x->c_done, -1);
	}
}

/* The client refused the server with verification error verr. */
static void
expect_client_refused(struct conn *x, long verr, const char *what)
{
	char id[TLS_IDENTITY_MAX];

	if (x->c_done != -1)
		fail_msg("%s: the client accepted the server", what);
	if (SSL_get_verify_result(x->c) != verr)
		fail_msg("%s: verify result %ld (%s), expected %ld (%s)", what,
			 SSL_get_verify_result(x->c),
			 X509_verify_cert_error_string(
				 SSL_get_verify_result(x->c)),
			 verr, X509_verify_cert_error_string(verr));
	assert_int_equal(x->s_done, -1);
	assert_int_equal(tls_peer_identity(x->c, id, sizeof(id)), -EACCES);
}

/* --- tests --- */

static void
test_good_clients(void **state)
{
	static const struct {
		const char *name;
		const char *identity;
	} clients[] = {
		{ "admin1", "admin1" },
		{ "operator-a", "operator-a" },
		{ "operator-b", "operator-b" },
		{ "viewer1", "viewer1" },
		{ "unknown1", "unknown1" },
		{ "sanonly", "sanonly@example.com" },
	};
	char id[TLS_IDENTITY_MAX];
	SSL_CTX *sctx, *cctx;
	struct conn x;
	size_t i;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
		cctx = client_ctx(clients[i].name, "ca");
		conn_open(&x, sctx, cctx, "localhost");
		conn_handshake(&x);
		expect_ok(&x, clients[i].name);
		assert_int_equal(SSL_version(x.s), TLS1_3_VERSION);
		assert_int_equal(SSL_version(x.c), TLS1_3_VERSION);
		strcpy(id, "untouched");
		assert_int_equal(tls_peer_identity(x.s, id, sizeof(id)), 0);
		assert_string_equal(id, clients[i].identity);
		/* The client's view of the server, too. */
		assert_int_equal(tls_peer_identity(x.c, id, sizeof(id)), 0);
		assert_string_equal(id, "localhost");
		assert_string_equal(SSL_get_servername(x.s,
						       TLSEXT_NAMETYPE_host_name),
				    "localhost");
		conn_close(&x);
		SSL_CTX_free(cctx);
	}

	/* The identity's buffer: exactly enough, one byte short. */
	cctx = client_ctx("admin1", "ca");
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_ok(&x, "admin1");
	strcpy(id, "untouched");
	assert_int_equal(tls_peer_identity(x.s, id, 6), -ENAMETOOLONG);
	assert_string_equal(id, "untouched");
	assert_int_equal(tls_peer_identity(x.s, id, 0), -ENAMETOOLONG);
	assert_int_equal(tls_peer_identity(x.s, id, 7), 0);
	assert_string_equal(id, "admin1");
	conn_close(&x);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_no_client_cert(void **state)
{
	SSL_CTX *sctx, *cctx;
	struct conn x;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	cctx = client_ctx(NULL, "ca");
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_server_refused(&x, X509_V_OK, "peer did not return a certificate",
			      "no client certificate");
	assert_int_equal(ERR_GET_REASON(x.s_err),
			 SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE);
	conn_close(&x);

	/* The same over TLS 1.2, where the client hears of it at once. */
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION),
			 1);
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	assert_int_equal(x.c_done, -1);
	expect_server_refused(&x, X509_V_OK, "peer did not return a certificate",
			      "no client certificate, TLS 1.2");
	conn_close(&x);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void
test_refused_clients(void **state)
{
	static const struct {
		const char *name;
		long verr;
		const char *text;
	} bad[] = {
		{ "foreign", X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
		  "unable to get local issuer certificate" },
		{ "expired", X509_V_ERR_CERT_HAS_EXPIRED,
		  "certificate has expired" },
		{ "notyet", X509_V_ERR_CERT_NOT_YET_VALID,
		  "certificate is not yet valid" },
		{ "serveronly", X509_V_ERR_INVALID_PURPOSE,
		  "unsuitable certificate purpose" },
		/* Ours: a client certificate must say it is one. */
		{ "noeku", X509_V_ERR_INVALID_PURPOSE,
		  "unsuitable certificate purpose" },
	};
	SSL_CTX *sctx, *cctx;
	struct conn x;
	size_t i;
	int v;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	for (v = 0; v < 2; v++) {
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			/* The client trusts the server; the server must not
			 * trust it. */
			cctx = client_ctx(bad[i].name, "ca");
			if (v == 1)
				assert_int_equal(SSL_CTX_set_max_proto_version(
						 cctx, TLS1_2_VERSION), 1);
			conn_open(&x, sctx, cctx, "localhost");
			conn_handshake(&x);
			expect_server_refused(&x, bad[i].verr, bad[i].text,
					      bad[i].name);
			if (v == 1)
				assert_int_equal(x.c_done, -1);
			conn_close(&x);
			SSL_CTX_free(cctx);
		}
	}
	SSL_CTX_free(sctx);
}

static void
test_versions(void **state)
{
	const SSL_CIPHER *cipher;
	char id[TLS_IDENTITY_MAX], text[256];
	SSL_CTX *sctx, *cctx;
	struct conn x;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	assert_int_equal(SSL_CTX_get_min_proto_version(sctx), TLS1_2_VERSION);

	/* TLS 1.2 still works, with ECDHE and an AEAD. */
	cctx = client_ctx("operator-a", "ca");
	assert_int_equal(SSL_CTX_get_min_proto_version(cctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_ok(&x, "TLS 1.2");
	assert_int_equal(SSL_version(x.s), TLS1_2_VERSION);
	cipher = SSL_get_current_cipher(x.s);
	assert_non_null(cipher);
	assert_int_equal(SSL_CIPHER_get_kx_nid(cipher), NID_kx_ecdhe);
	assert_true(SSL_CIPHER_is_aead(cipher));
	assert_int_equal(tls_peer_identity(x.s, id, sizeof(id)), 0);
	assert_string_equal(id, "operator-a");
	conn_close(&x);

	/* A TLS 1.2 client that offers only CBC suites finds none. */
	assert_int_equal(SSL_CTX_set_cipher_list(cctx,
			 "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"), 1);
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_server_refused(&x, X509_V_OK, "no shared cipher", "CBC only");
	conn_close(&x);
	SSL_CTX_free(cctx);

	/*
	 * A client that goes no higher than TLS 1.1. Its security level is
	 * lowered so that it does offer 1.1 and the refusal is the server's.
	 */
	cctx = client_ctx("operator-a", "ca");
	SSL_CTX_set_security_level(cctx, 0);
	assert_int_equal(SSL_CTX_set_cipher_list(cctx, "ALL:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_set_min_proto_version(cctx, TLS1_VERSION), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION), 1);
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_server_refused(&x, X509_V_OK, "unsupported protocol", "TLS 1.1");
	assert_int_equal(ERR_GET_REASON(x.s_err), SSL_R_UNSUPPORTED_PROTOCOL);
	assert_int_equal(x.c_done, -1);
	conn_close(&x);
	SSL_CTX_free(cctx);

	/* And no resumption: the server issues no session tickets. */
	cctx = client_ctx("admin1", "ca");
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_ok(&x, "tickets");
	assert_int_equal(SSL_get_num_tickets(x.s), 0);
	assert_false(SSL_SESSION_is_resumable(SSL_get_session(x.c)));
	conn_close(&x);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);

	tls_handshake_error(NULL, 0, text, sizeof(text));
	assert_string_equal(text, "no OpenSSL error");
}

static void
test_server_name(void **state)
{
	static const struct {
		const char *host;
		long verr;		/* X509_V_OK: accepted */
		bool sni;
	} hosts[] = {
		{ "localhost", X509_V_OK, true },
		{ "LOCALHOST", X509_V_OK, true },
		{ "127.0.0.1", X509_V_OK, false },
		{ "otherhost", X509_V_ERR_HOSTNAME_MISMATCH, true },
		{ "localhost.example", X509_V_ERR_HOSTNAME_MISMATCH, true },
		{ "127.0.0.2", X509_V_ERR_IP_ADDRESS_MISMATCH, false },
		{ "::1", X509_V_ERR_IP_ADDRESS_MISMATCH, false },
		{ "[::1]", X509_V_ERR_IP_ADDRESS_MISMATCH, false },
	};
	SSL_CTX *sctx, *cctx;
	struct conn x;
	size_t i;
	SSL *ssl;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	cctx = client_ctx("admin1", "ca");
	for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		conn_open(&x, sctx, cctx, hosts[i].host);
		conn_handshake(&x);
		if (hosts[i].verr == X509_V_OK) {
			expect_ok(&x, hosts[i].host);
			if (hosts[i].sni)
				assert_non_null(SSL_get_servername(x.s,
						TLSEXT_NAMETYPE_host_name));
			else
				assert_null(SSL_get_servername(x.s,
						TLSEXT_NAMETYPE_host_name));
		} else {
			expect_client_refused(&x, hosts[i].verr, hosts[i].host);
		}
		conn_close(&x);
	}

	/*
	 * A server whose CA the client does not trust. (The server sends its
	 * CA along: OpenSSL completes its chain from the store it has.)
	 */
	SSL_CTX_free(cctx);
	cctx = client_ctx("admin1", "otherca");
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_client_refused(&x, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
			      "other CA");
	conn_close(&x);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);

	/* A server with a client certificate is no server. */
	sctx = server_ctx("admin1");
	cctx = client_ctx("admin1", "ca");
	conn_open(&x, sctx, cctx, NULL);
	conn_handshake(&x);
	expect_client_refused(&x, X509_V_ERR_INVALID_PURPOSE, "clientAuth server");
	conn_close(&x);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);

	/* Names that cannot be checked are refused before any handshake. */
	cctx = client_ctx(NULL, "ca");
	ssl = SSL_new(cctx);
	assert_non_null(ssl);
	assert_int_equal(tls_client_set_host(ssl, NULL), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, ""), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "a b"), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "a\nb"), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "[zz]"), -EINVAL);
	assert_int_equal(tls_client_set_host(ssl, "[127.0.0.1]"), -EINVAL);
	assert_int_equal(tls_client_set_host(NULL, "localhost"), -EINVAL);
	SSL_free(ssl);
	SSL_CTX_free(cctx);
}

/* Expect fn's err and return code, with *ret untouched and no queue left. */
static void
expect_ctx_error(int r, SSL_CTX *ctx, const char *err, int want_r,
		 const char *want_err)
{
	if (r != want_r || strcmp(err, want_err) != 0)
		fail_msg("expected %d \"%s\"\n  got %d \"%s\"", want_r,
			 want_err, r, err);
	assert_ptr_equal(ctx, (SSL_CTX *)0x1);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
write_file(const char *p, const char *a, const char *b)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cat %s %s > '%s'", a, b ? b : "", p);
	assert_int_equal(system(cmd), 0);
}

static void
test_ctx_errors(void **state)
{
	SSL_CTX *ctx;
	char err[512], want[512], p[128];
	int fd, r;

	(void)state;
	need_certs();

#define SERVER(c, k, a) (ctx = (SSL_CTX *)0x1, err[0] = '\0', \
	tls_server_ctx_new(c, k, a, &ctx, err, sizeof(err)))
#define CLIENT(c, k, a) (ctx = (SSL_CTX *)0x1, err[0] = '\0', \
	tls_client_ctx_new(c, k, a, &ctx, err, sizeof(err)))

	r = SERVER(path("missing", ".crt"), KEY("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s/missing.crt: no such file",
		 certs.dir);
	expect_ctx_error(r, ctx, err, -ENOENT, want);

	r = SERVER(CRT("server"), path("missing", ".key"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.key %s/missing.key: no such file",
		 certs.dir);
	expect_ctx_error(r, ctx, err, -ENOENT, want);

	r = SERVER(CRT("server"), KEY("server"), path("missing", ".crt"));
	snprintf(want, sizeof(want), "tls.ca %s/missing.crt: no such file",
		 certs.dir);
	expect_ctx_error(r, ctx, err, -ENOENT, want);

	r = SERVER(certs.dir, KEY("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s: is a directory", certs.dir);
	expect_ctx_error(r, ctx, err, -EISDIR, want);

	/* The key that goes with another certificate. */
	r = SERVER(CRT("server"), KEY("admin1"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.key %s/admin1.key: does not match "
		 "the certificate", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);
	r = CLIENT(CRT("admin1"), KEY("viewer1"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.key %s/viewer1.key: does not match "
		 "the certificate", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);

	/* Files of the wrong kind. */
	r = SERVER(KEY("server"), KEY("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s/server.key: no PEM "
		 "certificate in the file", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);
	r = SERVER(CRT("server"), CRT("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.key %s/server.crt: no PEM private "
		 "key in the file", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);
	r = SERVER(CRT("server"), NULL, CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s/server.crt: no PEM private "
		 "key in the file", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);
	r = SERVER(CRT("server"), KEY("server"), CRT("server"));
	snprintf(want, sizeof(want), "tls.ca %s/server.crt: certificate 1 is "
		 "not a CA certificate", certs.dir);
	expect_ctx_error(r, ctx, err, -EINVAL, want);

	snprintf(p, sizeof(p), "%s/empty.pem", certs.dir);
	write_file(p, "/dev/null", NULL);
	r = SERVER(p, KEY("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s: no PEM certificate in the "
		 "file", p);
	expect_ctx_error(r, ctx, err, -EINVAL, want);

	/* A certificate whose base64 is broken. */
	snprintf(p, sizeof(p), "%s/broken.pem", certs.dir);
	snprintf(want, sizeof(want), "sed 's/^M/!/' '%s' > '%s'", CRT("server"),
		 p);
	assert_int_equal(system(want), 0);
	r = SERVER(p, KEY("server"), CRT("ca"));
	snprintf(want, sizeof(want), "tls.cert %s: bad certificate: ", p);
	if (r != -EINVAL || strncmp(err, want, strlen(want)) != 0)
		fail_msg("expected -EINVAL \"%s...\", got %d \"%s\"", want, r,
			 err);
	assert_ptr_equal(ctx, (SSL_CTX *)0x1);
	assert_int_equal(ERR_peek_error(), 0);

	/* An encrypted key is refused, never prompted for. */
	snprintf(p, sizeof(p), "%s/encrypted.key", certs.dir);
	snprintf(want, sizeof(want), "openssl pkey -in '%s' -aes256 -passout "
		 "pass:secret -out '%s'", KEY("server"), p);
	assert_int_equal(system(want), 0);
	r = SERVER(CRT("server"), p, CRT("ca"));
	snprintf(want, sizeof(want), "tls.key %s: the key is encrypted; an "
		 "unencrypted key is needed", p);
	expect_ctx_error(r, ctx, err, -EINVAL, want);

	/* Too large, refused on its size (sparse: nothing is read). */
	snprintf(p, sizeof(p), "%s/huge.pem", certs.dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, TLS_FILE_MAX + 1), 0);
	close(fd);
	r = SERVER(CRT("server"), KEY("server"), p);
	snprintf(want, sizeof(want), "tls.ca %s: too large (%u bytes, at most "
		 "%u)", p, TLS_FILE_MAX + 1, TLS_FILE_MAX);
	expect_ctx_error(r, ctx, err, -EFBIG, want);

	/* Required arguments. */
	r = SERVER(NULL, KEY("server"), CRT("ca"));
	expect_ctx_error(r, ctx, err, -EINVAL, "tls.cert: required");
	r = SERVER(CRT("server"), KEY("server"), NULL);
	expect_ctx_error(r, ctx, err, -EINVAL, "tls.ca: required (client "
			 "certificates are verified against it)");
	r = CLIENT(NULL, KEY("admin1"), CRT("ca"));
	expect_ctx_error(r, ctx, err, -EINVAL, "tls.key: given without tls.cert");
	/* err may be NULL with 0. */
	ctx = (SSL_CTX *)0x1;
	assert_int_equal(tls_server_ctx_new(NULL, NULL, NULL, &ctx, NULL, 0),
			 -EINVAL);
	assert_ptr_equal(ctx, (SSL_CTX *)0x1);

	/* What does work: the key in the certificate's file (either order),
	 * the CA appended as the chain, a client without a certificate. */
	snprintf(p, sizeof(p), "%s/combined.pem", certs.dir);
	write_file(p, KEY("server"), CRT("server"));
	r = SERVER(p, NULL, CRT("ca"));
	assert_int_equal(r, 0);
	SSL_CTX_free(ctx);
	write_file(p, CRT("server"), KEY("server"));
	r = SERVER(p, NULL, CRT("ca"));
	assert_int_equal(r, 0);
	SSL_CTX_free(ctx);
	snprintf(p, sizeof(p), "%s/chain.pem", certs.dir);
	write_file(p, CRT("server"), CRT("ca"));
	r = SERVER(p, KEY("server"), CRT("ca"));
	assert_int_equal(r, 0);
	SSL_CTX_free(ctx);
	r = CLIENT(NULL, NULL, CRT("ca"));
	assert_int_equal(r, 0);
	SSL_CTX_free(ctx);
	/* Several CAs in one file. */
	snprintf(p, sizeof(p), "%s/cas.pem", certs.dir);
	write_file(p, CRT("otherca"), CRT("ca"));
	r = SERVER(CRT("server"), KEY("server"), p);
	assert_int_equal(r, 0);
	SSL_CTX_free(ctx);
	assert_int_equal(ERR_peek_error(), 0);
#undef SERVER
#undef CLIENT
}

/*
 * A clientAuth certificate signed by the test CA, with a subject of the
 * given CNs (raw UTF-8 bytes) and a subjectAltName (NULL: none), written
 * to DIR/name.crt and DIR/name.key. Made here because no openssl command
 * line makes a control character in a CN easy.
 */
static void
make_cert(const char *name, const char *const *cns, size_t ncns,
	  const char *san)
{
	X509 *ca, *x;
	EVP_PKEY *cakey, *key;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	X509_NAME *subj;
	FILE *fp;
	size_t i;

	fp = fopen(CRT("ca"), "r");
	assert_non_null(fp);
	ca = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	fp = fopen(KEY("ca"), "r");
	assert_non_null(fp);
	cakey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(ca);
	assert_non_null(cakey);

	key = EVP_EC_gen("P-256");
	x = X509_new();
	assert_non_null(key);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x),
					  (long)getpid() ^ (long)random()), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	subj = X509_get_subject_name(x);
	for (i = 0; i < ncns; i++)
		assert_int_equal(X509_NAME_add_entry_by_NID(subj,
				 NID_commonName, MBSTRING_UTF8,
				 (const unsigned char *)cns[i], -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(ca)),
			 1);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "clientAuth");
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
	if (san) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
					  san);
		assert_non_null(ext);
		assert_int_equal(X509_add_ext(x, ext, -1), 1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, cakey, EVP_sha256()) > 0);

	fp = fopen(CRT(name), "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_X509(fp, x), 1);
	fclose(fp);
	fp = fopen(KEY(name), "w");
	assert_non_null(fp);
	assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL,
					      NULL), 1);
	fclose(fp);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
}

static void
test_identity_rules(void **state)
{
	static const struct {
		const char *cns[2];
		size_t ncns;
		const char *san;
		int r;
		const char *identity;
	} cases[] = {
		{ { "uid:0" }, 1, NULL, -EINVAL, NULL },
		{ { "UID:1000" }, 1, NULL, -EINVAL, NULL },
		{ { "bad\001cn" }, 1, NULL, -EINVAL, NULL },
		{ { "tab\tcn" }, 1, NULL, -EINVAL, NULL },
		{ { "caf\xc3\xa9" }, 1, NULL, -EINVAL, NULL },
		{ { "first", "second" }, 2, NULL, -EINVAL, NULL },
		{ { "John Doe" }, 1, NULL, 0, "John Doe" },
		/* The CN wins over any SAN. */
		{ { "the-cn" }, 1, "DNS:the-san.example", 0, "the-cn" },
		{ { NULL }, 0, "IP:10.0.0.1, DNS:first.example, "
		  "email:a@example.com", 0, "first.example" },
		{ { NULL }, 0, "URI:spiffe://x/y, IP:10.0.0.1", -ENOENT, NULL },
		{ { NULL }, 0, "email:uid:0", -EINVAL, NULL },
	};
	char name[32], id[TLS_IDENTITY_MAX];
	SSL_CTX *sctx, *cctx;
	struct conn x;
	size_t i;
	int r;

	(void)state;
	need_certs();
	sctx = server_ctx("server");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(name, sizeof(name), "made%zu", i);
		make_cert(name, cases[i].cns, cases[i].ncns, cases[i].san);
		cctx = client_ctx(name, "ca");
		conn_open(&x, sctx, cctx, "localhost");
		conn_handshake(&x);
		/* The certificate is fine; only its identity is not. */
		expect_ok(&x, name);
		strcpy(id, "untouched");
		r = tls_peer_identity(x.s, id, sizeof(id));
		if (r != cases[i].r)
			fail_msg("case %zu (CN %s, SAN %s): tls_peer_identity "
				 "returned %d, expected %d", i,
				 cases[i].cns[0] ? cases[i].cns[0] : "-",
				 cases[i].san ? cases[i].san : "-", r,
				 cases[i].r);
		assert_string_equal(id, cases[i].identity ? cases[i].identity
							  : "untouched");
		conn_close(&x);
		SSL_CTX_free(cctx);
	}
	SSL_CTX_free(sctx);
}

/* tls_peer_identity() wants a verified peer, not just a certificate. */
static void
test_identity_unverified(void **state)
{
	char id[TLS_IDENTITY_MAX];
	SSL_CTX *sctx, *cctx;
	struct conn x;

	(void)state;
	need_certs();
	/* A client that does not verify talks to a server from another CA. */
	sctx = server_ctx("server");
	cctx = client_ctx("admin1", "otherca");
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	conn_open(&x, sctx, cctx, "localhost");
	conn_handshake(&x);
	expect_ok(&x, "unverified");
	assert_non_null(SSL_get0_peer_certificate(x.c));
	assert_int_equal(tls_peer_identity(x.c, id, sizeof(id)), -EACCES);
	/* The server did verify the client. */
	assert_int_equal(tls_peer_identity(x.s, id, sizeof(id)), 0);
	assert_string_equal(id, "admin1");
	conn_close(&x);

	/* Before any handshake, and without an SSL. */
	conn_open(&x, sctx, cctx, "localhost");
	assert_int_equal(tls_peer_identity(x.s, id, sizeof(id)), -EACCES);
	conn_close(&x);
	assert_int_equal(tls_peer_identity(NULL, id, sizeof(id)), -EACCES);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void
test_last_error(void **state)
{
	const char *s;
	BIO *bio;
	X509 *x;

	(void)state;
	ERR_clear_error();
	assert_string_equal(tls_last_error(), "no OpenSSL error");
	bio = BIO_new_mem_buf("not a certificate", -1);
	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_null(x);
	BIO_free(bio);
	assert_int_not_equal(ERR_peek_error(), 0);
	s = tls_last_error();
	if (!strstr(s, "no start line"))
		fail_msg("tls_last_error(): \"%s\"", s);
	assert_int_equal(ERR_peek_error(), 0);
	assert_string_equal(tls_last_error(), "no OpenSSL error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_clients),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_refused_clients),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_server_name),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_identity_rules),
		cmocka_unit_test(test_identity_unverified),
		cmocka_unit_test(test_last_error),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
