/* SPDX-License-Identifier: MIT */
/*
 * TLS contexts for vmmd's listener and its clients (OpenSSL 3): TLS 1.3
 * preferred, TLS 1.2 the floor with ECDHE and AEAD ciphers only, no
 * renegotiation, no session resumption (every connection verifies the peer
 * certificate against the current CA and clock), client certificates
 * required by the server.
 *
 * Files are PEM only, read by us (so that errors name them) and at most
 * TLS_FILE_MAX bytes. A certificate file holds the leaf first, then any
 * intermediates; a CA file one or more CA certificates. Encrypted private
 * keys are refused rather than prompted for.
 *
 * Functions that take an err buffer (err may be NULL when errlen is 0) fill
 * it with one line naming the file and the reason when they fail:
 * "tls.cert /etc/vmmd/server.pem: no such file",
 * "tls.key /etc/vmmd/server.key: does not match the certificate".
 * They return 0 or a negative errno (-ENOENT, -EACCES, -EFBIG, -EINVAL for
 * a bad file or argument, -ENOMEM, -EIO for other OpenSSL failures) and
 * leave OpenSSL's error queue empty.
 */
#ifndef PROTO_TLS_H
#define PROTO_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Size limit of a certificate, key or CA file. */
#define TLS_FILE_MAX		(4u << 20)
/* A buffer of this size holds any identity tls_peer_identity() returns. */
#define TLS_IDENTITY_MAX	256

/*
 * A server context: cert_file (leaf then chain) and key_file (NULL: the key
 * is in cert_file), checked to match; clients must present a certificate
 * that chains to a CA in ca_file (required), is within its validity dates
 * and carries an extended key usage that includes clientAuth. A client
 * certificate without any extended key usage extension is refused too:
 * its certificate must say it is meant for client authentication.
 * The CAs' subjects are sent as the acceptable issuers.
 * On success *ret is a new context (SSL_CTX_free() it).
 */
int tls_server_ctx_new(const char *cert_file, const char *key_file,
		       const char *ca_file, SSL_CTX **ret, char *err,
		       size_t errlen);

/*
 * A client context that verifies the server's certificate against ca_file
 * (NULL: the system's trust store) and for the serverAuth purpose. With
 * cert_file (NULL: no client certificate), key_file (NULL: in cert_file)
 * is its key, checked to match. The server's name is checked only once
 * tls_client_set_host() is called on each SSL: do call it.
 * On success *ret is a new context (SSL_CTX_free() it).
 */
int tls_client_ctx_new(const char *cert_file, const char *key_file,
		       const char *ca_file, SSL_CTX **ret, char *err,
		       size_t errlen);

/*
 * Before the handshake of a client SSL: the name the server's certificate
 * must carry. An IP address (IPv4, IPv6, or IPv6 in brackets) must be an IP
 * SAN; anything else is a DNS name, checked against the DNS SANs (or the CN
 * when there are none; no partial wildcards) and sent as SNI.
 * Returns 0, -EINVAL for an empty or too long host, or -ENOMEM.
 */
int tls_client_set_host(SSL *ssl, const char *host);

/*
 * After a handshake that verified the peer: the identity the access policy
 * knows it by, written to buf with its NUL. That is the subject's CN, or,
 * when the subject has no CN, the first DNS or email subjectAltName (in
 * the order of the extension).
 * Returns 0; -EACCES when no peer certificate was verified (no handshake,
 * verification failed or was not asked for); -ENOENT when the certificate
 * has no CN and no DNS or email SAN; -EINVAL when the identity is not 1 to
 * TLS_IDENTITY_MAX - 1 characters of printable ASCII (0x20..0x7e), the
 * subject has more than one CN, or the identity starts with "uid:" (that
 * namespace is the UNIX socket's: a certificate must never pass for a local
 * user); -ENAMETOOLONG when it does not fit in len bytes. buf is written
 * only on success.
 */
int tls_peer_identity(SSL *ssl, char *buf, size_t len);

/*
 * One line describing why the handshake on ssl failed, for a log: when the
 * peer's certificate failed verification, the verification error
 * ("certificate has expired", "unsuitable certificate purpose"); else the
 * reason of the OpenSSL error code e ("peer did not return a certificate",
 * "unsupported protocol"), from bufferevent_get_openssl_error() or
 * ERR_get_error(); e == 0 takes the oldest error of this thread's queue
 * and empties the queue. ssl may be NULL. Always NUL-terminates (len > 0).
 */
void tls_handshake_error(const SSL *ssl, unsigned long e, char *buf,
			 size_t len);

/*
 * The oldest error of this thread's OpenSSL error queue as text (its
 * reason, and the detail OpenSSL attached, if any), or "no OpenSSL error";
 * empties the queue. The string lives in a thread-local buffer until the
 * thread's next call.
 */
const char *tls_last_error(void);

#endif
