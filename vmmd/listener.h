/* SPDX-License-Identifier: MIT */
/*
 * The daemon's listeners and how a connection gets its identity:
 *
 * - the UNIX socket (mode 0660, group socket_group): the peer's
 *   credentials from the kernel (SO_PEERCRED, SO_PEERGROUPS). uid 0 and
 *   members of socket_group are admins; any other uid is "uid:N" in the
 *   access policy, and refused when it is not there;
 * - TLS (when configured): libevent's OpenSSL bufferevents with the
 *   context of proto/tls.h, which requires a client certificate chaining
 *   to the configured CA; its identity (subject CN, else first SAN) is
 *   looked up in the policy, and an unknown identity is refused.
 *
 * A refused client is told so (permission_denied) on its first request,
 * and the connection is closed.
 */
#ifndef VMMD_LISTENER_H
#define VMMD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct conn;
struct identity;
struct listener;
struct policy;
struct vmmd;

/* Listen on the UNIX socket at path. 0 or -errno with err. */
int listener_unix_new(struct vmmd *d, const char *path,
		      struct listener **ret, char *err, size_t errlen);

/* Listen for TLS on address:port with d->ssl_ctx. 0 or -errno with err. */
int listener_tls_new(struct vmmd *d, const char *address, unsigned int port,
		     struct listener **ret, char *err, size_t errlen);

/* Stop listening (a UNIX socket's file is removed). NULL is a no-op. */
void listener_free(struct listener *l);

/*
 * The identity of a local peer: uid 0 or a member of the admin group
 * (has_admin_gid, admin_gid; the peer's primary gid and groups[0, nr)) is
 * admin; else "uid:N" looked up in policy (may be NULL). Returns 0 with
 * *ret filled, or -EACCES with deny saying why (ret->name still set).
 */
int listener_local_identity(uid_t uid, gid_t gid, const gid_t *groups,
			    size_t nr_groups, bool has_admin_gid,
			    gid_t admin_gid, const struct policy *policy,
			    struct identity *ret, char *deny, size_t denylen);

/*
 * The identity of a TLS peer named name by its certificate: looked up in
 * policy. 0, or -EACCES with deny.
 */
int listener_cert_identity(const char *name, const struct policy *policy,
			   struct identity *ret, char *deny, size_t denylen);

/* From the connection's event callback: the handshake finished / failed. */
void listener_tls_established(struct conn *c);
void listener_tls_failed(struct conn *c);

#endif
