/* SPDX-License-Identifier: MIT */
/*
 * TLS contexts and peer identities on OpenSSL 3. We read the PEM files
 * ourselves rather than through SSL_CTX_use_*_file(): that way a missing
 * file, a directory, an empty file or a key that needs a passphrase each
 * get an error that names the file and says what is wrong, a file's size
 * is bounded, and nothing ever prompts on a terminal.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

#define TLS_LABEL_CERT	"tls.cert"
#define TLS_LABEL_KEY	"tls.key"
#define TLS_LABEL_CA	"tls.ca"

/*
 * TLS 1.2 only: forward secrecy (ECDHE) and AEAD. TLS 1.3's suites all
 * qualify; they are listed so that a system-wide configuration cannot
 * widen them.
 */
#define TLS_CIPHERS_12 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_CIPHERS_13 \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
	"TLS_CHACHA20_POLY1305_SHA256"

/* Leaf, intermediates and root: real deployments need far fewer. */
#define TLS_VERIFY_DEPTH	8
/* Security level 2: 112-bit keys, no SHA-1 signatures. */
#define TLS_SECURITY_LEVEL	2

static const char tls_session_ctx[] = "vmmd";

static int
tls_fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
tls_fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		proto_text_scrub(err);
	}
	ERR_clear_error();
	return r;
}

/*
 * Text of OpenSSL error e with its detail (data, when flags say it is a
 * string): "unsupported protocol", "bad decrypt (Verify error:...)".
 */
static void
tls_err_text(unsigned long e, const char *data, int flags, char *buf,
	     size_t len)
{
	const char *reason = ERR_reason_error_string(e);

	if (!data || !(flags & ERR_TXT_STRING) || !*data)
		data = NULL;
	if (reason && data)
		snprintf(buf, len, "%s (%s)", reason, data);
	else if (reason)
		snprintf(buf, len, "%s", reason);
	else if (data)
		snprintf(buf, len, "%s", data);
	else
		snprintf(buf, len, "OpenSSL error %08lx", e);
	proto_text_scrub(buf);
}

/* The oldest queued error as text, or dflt; empties the queue. */
static void
tls_queue_text(char *buf, size_t len, const char *dflt)
{
	const char *data = NULL;
	unsigned long e;
	int flags = 0;

	e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
	if (e == 0)
		snprintf(buf, len, "%s", dflt);
	else
		tls_err_text(e, data, flags, buf, len);
	ERR_clear_error();
}

/* Fail with "LABEL PATH: WHAT: <OpenSSL's reason>". */
static int
tls_fail_ssl(char *err, size_t errlen, int r, const char *label,
	     const char *path, const char *what)
{
	char reason[160];

	tls_queue_text(reason, sizeof(reason), "unknown error");
	return tls_fail(err, errlen, r, "%s %s: %s: %s", label, path, what,
			reason);
}

void
tls_handshake_error(const SSL *ssl, unsigned long e, char *buf, size_t len)
{
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (!buf || len == 0) {
		if (e == 0)
			ERR_clear_error();
		return;
	}
	if (v != X509_V_OK) {
		snprintf(buf, len, "%s", X509_verify_cert_error_string(v));
		if (e == 0)
			ERR_clear_error();
	} else if (e == 0) {
		tls_queue_text(buf, len, "no OpenSSL error");
	} else {
		tls_err_text(e, NULL, 0, buf, len);
	}
}

const char *
tls_last_error(void)
{
	static __thread char buf[256];

	tls_queue_text(buf, sizeof(buf), "no OpenSSL error");
	return buf;
}

static const char *
tls_errno_text(int e)
{
	switch (e) {
	case ENOENT:
		return "no such file";
	case EACCES:
		return "permission denied";
	case EISDIR:
		return "is a directory";
	case ENOTDIR:
		return "a component of the path is not a directory";
	default:
		return strerror(e);
	}
}

/*
 * Read a whole regular file of at most TLS_FILE_MAX bytes. *ret_data is
 * NUL-terminated for safety; the caller cleanses (keys) and frees it.
 */
static int
tls_read_file(const char *label, const char *path, char **ret_data,
	      size_t *ret_len, char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0, size;
	struct stat st;
	ssize_t n;
	int fd, r;

	/* O_NONBLOCK: a FIFO must not hang the daemon's start-up. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		return tls_fail(err, errlen, r, "%s %s: %s", label, path,
				tls_errno_text(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		tls_fail(err, errlen, r, "%s %s: %s", label, path,
			 tls_errno_text(-r));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		r = tls_fail(err, errlen, -EISDIR, "%s %s: is a directory",
			     label, path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = tls_fail(err, errlen, -EINVAL,
			     "%s %s: not a regular file", label, path);
		goto out;
	}
	if (st.st_size > (off_t)TLS_FILE_MAX) {
		r = tls_fail(err, errlen, -EFBIG,
			     "%s %s: too large (%lld bytes, at most %u)",
			     label, path, (long long)st.st_size, TLS_FILE_MAX);
		goto out;
	}
	/* A file that grows while we read it is cut at the size we saw. */
	size = (size_t)st.st_size;
	data = malloc(size + 1);
	if (!data) {
		r = tls_fail(err, errlen, -ENOMEM, "%s %s: out of memory",
			     label, path);
		goto out;
	}
	while (len < size) {
		n = read(fd, data + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			tls_fail(err, errlen, r, "%s %s: %s", label, path,
				 tls_errno_text(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	data[len] = '\0';
	*ret_data = data;
	*ret_len = len;
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
	return r;
}

/* Passphrase callback: we never prompt; note that one was wanted. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u)
		*(bool *)u = true;
	return -1;
}

/* Every certificate of a PEM file, in the file's order (at least one). */
static int
tls_load_certs(const char *label, const char *path,
	       STACK_OF(X509) **ret, char *err, size_t errlen)
{
	STACK_OF(X509) *certs = NULL;
	char *data = NULL;
	BIO *bio = NULL;
	unsigned long e;
	size_t len;
	X509 *x;
	int r;

	r = tls_read_file(label, path, &data, &len, err, errlen);
	if (r < 0)
		return r;
	certs = sk_X509_new_null();
	bio = BIO_new_mem_buf(data, (int)len);
	if (!certs || !bio) {
		r = tls_fail(err, errlen, -ENOMEM, "%s %s: out of memory",
			     label, path);
		goto out;
	}
	ERR_clear_error();
	for (;;) {
		x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase, NULL);
		if (!x) {
			e = ERR_peek_last_error();
			if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
				ERR_clear_error();
				break;
			}
			r = tls_fail_ssl(err, errlen, -EINVAL, label, path,
					 "bad certificate");
			goto out;
		}
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			r = tls_fail(err, errlen, -ENOMEM,
				     "%s %s: out of memory", label, path);
			goto out;
		}
	}
	if (sk_X509_num(certs) == 0) {
		r = tls_fail(err, errlen, -EINVAL,
			     "%s %s: no PEM certificate in the file",
			     label, path);
		goto out;
	}
	*ret = certs;
	certs = NULL;
	r = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	free(data);
	return r;
}

/* The first private key of a PEM file. */
static int
tls_load_key(const char *label, const char *path, EVP_PKEY **ret,
	     char *err, size_t errlen)
{
	bool wanted_passphrase = false;
	EVP_PKEY *pkey = NULL;
	char *data = NULL;
	BIO *bio = NULL;
	size_t len = 0;
	int r;

	r = tls_read_file(label, path, &data, &len, err, errlen);
	if (r < 0)
		return r;
	bio = BIO_new_mem_buf(data, (int)len);
	if (!bio) {
		r = tls_fail(err, errlen, -ENOMEM, "%s %s: out of memory",
			     label, path);
		goto out;
	}
	ERR_clear_error();
	pkey = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase,
				       &wanted_passphrase);
	if (!pkey && wanted_passphrase) {
		r = tls_fail(err, errlen, -EINVAL,
			     "%s %s: the key is encrypted; an unencrypted "
			     "key is needed", label, path);
		goto out;
	}
	if (!pkey) {
		r = tls_fail(err, errlen, -EINVAL,
			     "%s %s: no PEM private key in the file",
			     label, path);
		goto out;
	}
	*ret = pkey;
	r = 0;
out:
	BIO_free(bio);
	if (data)
		OPENSSL_cleanse(data, len);
	free(data);
	return r;
}

/*
 * Our certificate (with its chain) and its key, which must match. A NULL
 * key_file means the key is in cert_file.
 */
static int
tls_use_identity(SSL_CTX *ctx, const char *cert_file, const char *key_file,
		 char *err, size_t errlen)
{
	const char *key_label = key_file ? TLS_LABEL_KEY : TLS_LABEL_CERT;
	const char *key_path = key_file ? key_file : cert_file;
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *leaf;
	int i, r;

	r = tls_load_certs(TLS_LABEL_CERT, cert_file, &certs, err, errlen);
	if (r < 0)
		return r;
	r = tls_load_key(key_label, key_path, &pkey, err, errlen);
	if (r < 0)
		goto out;
	leaf = sk_X509_value(certs, 0);
	if (SSL_CTX_use_certificate(ctx, leaf) != 1) {
		r = tls_fail_ssl(err, errlen, -EINVAL, TLS_LABEL_CERT,
				 cert_file, "cannot use the certificate");
		goto out;
	}
	for (i = 1; i < sk_X509_num(certs); i++) {
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(certs, i))
		    != 1) {
			r = tls_fail_ssl(err, errlen, -EINVAL, TLS_LABEL_CERT,
					 cert_file, "cannot use a chain "
					 "certificate");
			goto out;
		}
	}
	/* Checked first: SSL_CTX_use_PrivateKey() files a key of another
	 * type in another slot instead of failing. */
	if (X509_check_private_key(leaf, pkey) != 1) {
		r = tls_fail(err, errlen, -EINVAL,
			     "%s %s: does not match the certificate",
			     key_label, key_path);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		r = tls_fail_ssl(err, errlen, -EINVAL, key_label, key_path,
				 "cannot use the key");
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(pkey);
	sk_X509_pop_free(certs, X509_free);
	return r;
}

/* Trust the CAs of ca_file; for a server, also name them to clients. */
static int
tls_use_ca(SSL_CTX *ctx, const char *ca_file, bool server, char *err,
	   size_t errlen)
{
	STACK_OF(X509_NAME) *names = NULL;
	STACK_OF(X509) *certs = NULL;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_NAME *name;
	X509 *x;
	int i, r;

	r = tls_load_certs(TLS_LABEL_CA, ca_file, &certs, err, errlen);
	if (r < 0)
		return r;
	names = sk_X509_NAME_new_null();
	if (!names) {
		r = tls_fail(err, errlen, -ENOMEM, "%s %s: out of memory",
			     TLS_LABEL_CA, ca_file);
		goto out;
	}
	for (i = 0; i < sk_X509_num(certs); i++) {
		x = sk_X509_value(certs, i);
		/* A leaf here is a configuration mistake (the server's own
		 * certificate as the CA, say) that would only show up as
		 * every client failing to verify. */
		if (X509_check_ca(x) == 0) {
			r = tls_fail(err, errlen, -EINVAL,
				     "%s %s: certificate %d is not a CA "
				     "certificate", TLS_LABEL_CA, ca_file,
				     i + 1);
			goto out;
		}
		if (X509_STORE_add_cert(store, x) != 1) {
			r = tls_fail_ssl(err, errlen, -EINVAL, TLS_LABEL_CA,
					 ca_file, "cannot add a CA");
			goto out;
		}
		name = X509_NAME_dup(X509_get_subject_name(x));
		if (!name || !sk_X509_NAME_push(names, name)) {
			X509_NAME_free(name);
			r = tls_fail(err, errlen, -ENOMEM,
				     "%s %s: out of memory", TLS_LABEL_CA,
				     ca_file);
			goto out;
		}
	}
	if (server) {
		SSL_CTX_set_client_CA_list(ctx, names);
		names = NULL;
	}
	r = 0;
out:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	sk_X509_pop_free(certs, X509_free);
	return r;
}

/*
 * The server's verification of a client: OpenSSL's (chain to our CAs,
 * dates, and the sslclient purpose, which a certificate without any
 * extended key usage passes), then ours: the extension must be there and
 * name clientAuth.
 */
static int
tls_verify_client(X509_STORE_CTX *sctx, void *arg)
{
	X509 *leaf;
	int ok;

	(void)arg;
	ok = X509_verify_cert(sctx);
	if (ok <= 0)
		return ok;
	leaf = X509_STORE_CTX_get0_cert(sctx);
	if (!leaf || !(X509_get_extension_flags(leaf) & EXFLAG_XKUSAGE) ||
	    !(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT)) {
		X509_STORE_CTX_set_error_depth(sctx, 0);
		X509_STORE_CTX_set_current_cert(sctx, leaf);
		X509_STORE_CTX_set_error(sctx, X509_V_ERR_INVALID_PURPOSE);
		return 0;
	}
	return 1;
}

/* What both ends share: versions, ciphers, no renegotiation, no tickets. */
static int
tls_ctx_common(SSL_CTX *ctx, char *why, size_t whylen)
{
	SSL_CTX_set_security_level(ctx, TLS_SECURITY_LEVEL);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, 0) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS_CIPHERS_13) != 1) {
		tls_queue_text(why, whylen, "unknown error");
		return -EIO;
	}
	/*
	 * No resumption: a resumed session would skip the certificate checks,
	 * so a client whose certificate expired or whose CA was replaced
	 * could carry on. Connections are long-lived; full handshakes are
	 * cheap enough.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_verify_depth(ctx, TLS_VERIFY_DEPTH);
	return 0;
}

int
tls_server_ctx_new(const char *cert_file, const char *key_file,
		   const char *ca_file, SSL_CTX **ret, char *err,
		   size_t errlen)
{
	SSL_CTX *ctx = NULL;
	char why[160];
	int r;

	if (!cert_file || !*cert_file)
		return tls_fail(err, errlen, -EINVAL, "%s: required",
				TLS_LABEL_CERT);
	if (!ca_file || !*ca_file)
		return tls_fail(err, errlen, -EINVAL,
				"%s: required (client certificates are "
				"verified against it)", TLS_LABEL_CA);
	if (key_file && !*key_file)
		key_file = NULL;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		tls_queue_text(why, sizeof(why), "unknown error");
		return tls_fail(err, errlen, -ENOMEM,
				"tls: cannot create a context: %s", why);
	}
	r = tls_ctx_common(ctx, why, sizeof(why));
	if (r < 0) {
		tls_fail(err, errlen, r, "tls: cannot set up a context: %s",
			 why);
		goto fail;
	}
	r = tls_use_identity(ctx, cert_file, key_file, err, errlen);
	if (r < 0)
		goto fail;
	r = tls_use_ca(ctx, ca_file, true, err, errlen);
	if (r < 0)
		goto fail;
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1 ||
	    SSL_CTX_set_session_id_context(ctx,
		    (const unsigned char *)tls_session_ctx,
		    sizeof(tls_session_ctx) - 1) != 1) {
		tls_queue_text(why, sizeof(why), "unknown error");
		r = tls_fail(err, errlen, -EIO,
			     "tls: cannot set up a context: %s", why);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT |
			   SSL_VERIFY_CLIENT_ONCE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, tls_verify_client, NULL);
	ERR_clear_error();
	*ret = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
tls_client_ctx_new(const char *cert_file, const char *key_file,
		   const char *ca_file, SSL_CTX **ret, char *err,
		   size_t errlen)
{
	SSL_CTX *ctx = NULL;
	char why[160];
	int r;

	if (cert_file && !*cert_file)
		cert_file = NULL;
	if (key_file && !*key_file)
		key_file = NULL;
	if (key_file && !cert_file)
		return tls_fail(err, errlen, -EINVAL, "%s: given without %s",
				TLS_LABEL_KEY, TLS_LABEL_CERT);
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		tls_queue_text(why, sizeof(why), "unknown error");
		return tls_fail(err, errlen, -ENOMEM,
				"tls: cannot create a context: %s", why);
	}
	r = tls_ctx_common(ctx, why, sizeof(why));
	if (r < 0) {
		tls_fail(err, errlen, r, "tls: cannot set up a context: %s",
			 why);
		goto fail;
	}
	if (cert_file) {
		r = tls_use_identity(ctx, cert_file, key_file, err, errlen);
		if (r < 0)
			goto fail;
	}
	if (ca_file && *ca_file) {
		r = tls_use_ca(ctx, ca_file, false, err, errlen);
		if (r < 0)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		r = tls_fail_ssl(err, errlen, -EIO, TLS_LABEL_CA,
				 "(system default)",
				 "cannot load the trust store");
		goto fail;
	}
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1) {
		tls_queue_text(why, sizeof(why), "unknown error");
		r = tls_fail(err, errlen, -EIO,
			     "tls: cannot set up a context: %s", why);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ERR_clear_error();
	*ret = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
tls_client_set_host(SSL *ssl, const char *host)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned char addr[sizeof(struct in6_addr)];
	const char *p;
	size_t n;

	if (!ssl || !host)
		return -EINVAL;
	n = strlen(host);
	if (n == 0 || n > 253)
		return -EINVAL;
	ip[0] = '\0';
	if (host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(ip)) {
		memcpy(ip, host + 1, n - 2);
		ip[n - 2] = '\0';
		if (inet_pton(AF_INET6, ip, addr) != 1)
			return -EINVAL;
	} else if (inet_pton(AF_INET, host, addr) == 1 ||
		   inet_pton(AF_INET6, host, addr) == 1) {
		memcpy(ip, host, n + 1);
	}
	if (ip[0]) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip)
		    != 1) {
			ERR_clear_error();
			return -ENOMEM;
		}
		return 0;
	}
	for (p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -EINVAL;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(ssl, host) != 1) {
		ERR_clear_error();
		return -ENOMEM;
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1) {
		ERR_clear_error();
		return -EINVAL;
	}
	return 0;
}

/*
 * Copy an identity out of a certificate (n bytes, not NUL-terminated and
 * possibly holding NULs) after checking it.
 */
static int
tls_identity_copy(const unsigned char *s, size_t n, char *buf, size_t len)
{
	size_t i;

	if (n == 0 || n >= TLS_IDENTITY_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return -EINVAL;
	if (n >= 4 && strncasecmp((const char *)s, "uid:", 4) == 0)
		return -EINVAL;
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

int
tls_peer_identity(SSL *ssl, char *buf, size_t len)
{
	GENERAL_NAMES *gens = NULL;
	const GENERAL_NAME *g;
	unsigned char *utf8 = NULL;
	X509_NAME *subject;
	X509 *peer;
	int idx, i, n, r;

	if (!ssl || !SSL_is_init_finished(ssl))
		return -EACCES;
	peer = SSL_get0_peer_certificate(ssl);
	if (!peer || SSL_get_verify_result(ssl) != X509_V_OK)
		return -EACCES;

	subject = X509_get_subject_name(peer);
	idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	if (idx >= 0) {
		/* Which of two CNs is "the" name is a matter of opinion;
		 * refuse rather than pick. */
		if (X509_NAME_get_index_by_NID(subject, NID_commonName, idx)
		    >= 0)
			return -EINVAL;
		n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(
					X509_NAME_get_entry(subject, idx)));
		if (n < 0) {
			ERR_clear_error();
			return -EINVAL;
		}
		r = tls_identity_copy(utf8, (size_t)n, buf, len);
		OPENSSL_free(utf8);
		return r;
	}

	gens = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
	r = -ENOENT;
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS && g->type != GEN_EMAIL)
			continue;
		r = tls_identity_copy(ASN1_STRING_get0_data(g->d.ia5),
				      (size_t)ASN1_STRING_length(g->d.ia5),
				      buf, len);
		break;
	}
	GENERAL_NAMES_free(gens);
	ERR_clear_error();
	return r;
}
