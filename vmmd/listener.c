/* SPDX-License-Identifier: MIT */
/* The UNIX and TLS listeners and peer identities (listener.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proto/errors.h"
#include "proto/frame.h"
#include "proto/jsonrpc.h"
#include "proto/policy.h"
#include "proto/tls.h"
#include "vmmd/conn.h"
#include "vmmd/daemon.h"
#include "vmmd/listener.h"
#include "vmmd/log.h"

/* Peer groups read from SO_PEERGROUPS. */
#define LISTENER_GROUPS_MAX	256

struct listener {
	struct vmmd *d;
	struct evconnlistener *evl;
	bool tls;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static int
listener_set_identity(struct identity *ret, const char *name,
		      enum policy_role role, const char *tenant)
{
	char *t = NULL;

	if (tenant && !(t = strdup(tenant)))
		return -ENOMEM;
	free(ret->tenant);
	snprintf(ret->name, sizeof(ret->name), "%s", name);
	ret->role = role;
	ret->tenant = t;
	return 0;
}

int
listener_local_identity(uid_t uid, gid_t gid, const gid_t *groups,
			size_t nr_groups, bool has_admin_gid, gid_t admin_gid,
			const struct policy *policy, struct identity *ret,
			char *deny, size_t denylen)
{
	enum policy_role role = POLICY_ROLE_NONE;
	const char *tenant = NULL;
	char name[32];
	size_t i;
	bool admin = uid == 0;

	snprintf(name, sizeof(name), "uid:%u", (unsigned int)uid);
	if (has_admin_gid) {
		admin = admin || gid == admin_gid;
		for (i = 0; i < nr_groups && !admin; i++)
			admin = groups[i] == admin_gid;
	}
	if (admin)
		return listener_set_identity(ret, name, POLICY_ROLE_ADMIN, NULL);
	listener_set_identity(ret, name, POLICY_ROLE_NONE, NULL);
	if (!policy || policy_lookup(policy, name, &role, &tenant) < 0) {
		snprintf(deny, denylen, "%s may not use vmmd: not root, not in "
			 "the socket group%s", name, policy ?
			 ", not in the access policy" :
			 " (and no access policy is configured)");
		return -EACCES;
	}
	if (role == POLICY_ROLE_NONE) {
		snprintf(deny, denylen, "%s has no role in the access policy",
			 name);
		return -EACCES;
	}
	return listener_set_identity(ret, name, role, tenant);
}

int
listener_cert_identity(const char *name, const struct policy *policy,
		       struct identity *ret, char *deny, size_t denylen)
{
	enum policy_role role = POLICY_ROLE_NONE;
	const char *tenant = NULL;
	char safe[TLS_IDENTITY_MAX];

	log_scrub(name, safe, sizeof(safe));
	listener_set_identity(ret, safe, POLICY_ROLE_NONE, NULL);
	if (!policy || policy_lookup(policy, name, &role, &tenant) < 0) {
		snprintf(deny, denylen, "\"%s\" is not in the access policy",
			 safe);
		return -EACCES;
	}
	if (role == POLICY_ROLE_NONE) {
		snprintf(deny, denylen, "\"%s\" has no role in the access "
			 "policy", safe);
		return -EACCES;
	}
	return listener_set_identity(ret, safe, role, tenant);
}

/* Too many clients: say so in a frame and hang up, without a conn. */
static void
listener_refuse_full(int fd, unsigned int max)
{
	json_t *e = jsonrpc_error_newf(NULL, PROTO_ERR_LIMIT_EXCEEDED,
				       "too many clients (limit %u)", max);
	uint8_t *buf;
	size_t len;

	if (e && frame_encode_json(e, 0, &buf, &len) == 0) {
		if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* It will see the close instead. */
		}
		free(buf);
	}
	json_decref(e);
	close(fd);
}

static void
listener_unix_accept(struct evconnlistener *evl, evutil_socket_t fd,
		     struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct vmmd *d = l->d;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[LISTENER_GROUPS_MAX];
	socklen_t glen = sizeof(groups);
	size_t nr_groups = 0;
	struct bufferevent *bev;
	struct conn *c;
	int r;

	(void)evl;
	(void)sa;
	(void)salen;
	if (d->nr_conns >= d->cfg->max_clients) {
		log_warn("listener", "client refused: %u clients already",
			 d->nr_conns);
		listener_refuse_full(fd, d->cfg->max_clients);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("listener", "SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
#ifdef SO_PEERGROUPS
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
		nr_groups = glen / sizeof(gid_t);
#endif
	bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	if (conn_new(d, bev, false, &c) < 0)
		return;
	r = listener_local_identity(cred.uid, cred.gid, groups, nr_groups,
				    d->has_admin_gid, d->admin_gid, d->policy,
				    &c->who, c->deny, sizeof(c->deny));
	if (r < 0 && r != -EACCES) {
		conn_close(c, false);
		return;
	}
	conn_ready(c);
	if (r == -EACCES)
		log_info(c->logname, "refused (pid %d): %s", (int)cred.pid,
			 c->deny);
	else
		log_debug(c->logname, "connected (pid %d), role %s%s%s",
			  (int)cred.pid, policy_role_name(c->who.role),
			  c->who.tenant ? ", tenant " : "",
			  c->who.tenant ? c->who.tenant : "");
}

static void
listener_error(struct evconnlistener *evl, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();

	(void)evl;
	(void)arg;
	/* EMFILE and friends: accept() is retried on the next event. */
	log_warn("listener", "accept: %s", strerror(e));
}

int
listener_unix_new(struct vmmd *d, const char *path, struct listener **ret,
		  char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct listener *l;
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket %s: longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "socket %s: exists and is not a "
				 "socket", path);
			return -EEXIST;
		}
		/* A live daemon answers; a dead one's file is ours. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa,
					  sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, errlen, "socket %s: another vmmd is "
				 "listening there", path);
			return -EADDRINUSE;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0660) < 0 ||
	    (d->has_admin_gid && chown(path, (uid_t)-1, d->admin_gid) < 0) ||
	    listen(fd, 128) < 0) {
		r = -errno;
		snprintf(err, errlen, "socket %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	l->d = d;
	strcpy(l->path, path);
	l->evl = evconnlistener_new(d->base, listener_unix_accept, l,
				    LEV_OPT_CLOSE_ON_FREE |
				    LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!l->evl) {
		close(fd);
		unlink(path);
		free(l);
		snprintf(err, errlen, "socket %s: cannot listen", path);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l->evl, listener_error);
	*ret = l;
	return 0;
}

static void
listener_tls_accept(struct evconnlistener *evl, evutil_socket_t fd,
		    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct vmmd *d = l->d;
	struct bufferevent *bev;
	struct conn *c;
	char addr[INET6_ADDRSTRLEN + 8] = "?";
	SSL *ssl;

	(void)evl;
	(void)salen;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr,
			  sizeof(addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
			  addr, sizeof(addr));
	if (d->nr_conns >= d->cfg->max_clients) {
		log_warn("listener", "TLS client %s refused: %u clients "
			 "already", addr, d->nr_conns);
		close(fd);
		return;
	}
	ssl = SSL_new(d->ssl_ctx);
	if (!ssl) {
		ERR_clear_error();
		close(fd);
		return;
	}
	bev = bufferevent_openssl_socket_new(d->base, fd, ssl,
					     BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	/* A client that just closes its socket is gone, not an attacker. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	if (conn_new(d, bev, true, &c) < 0)
		return;
	snprintf(c->logname, sizeof(c->logname), "client %llu (tls %s)",
		 (unsigned long long)c->id, addr);
}

void
listener_tls_established(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char name[TLS_IDENTITY_MAX];
	int r;

	r = ssl ? tls_peer_identity(ssl, name, sizeof(name)) : -EACCES;
	if (r < 0) {
		snprintf(c->deny, sizeof(c->deny), "the client certificate "
			 "names no usable identity (%s)", strerror(-r));
		snprintf(c->who.name, sizeof(c->who.name), "tls:unknown");
	} else {
		listener_cert_identity(name, c->d->policy, &c->who, c->deny,
				       sizeof(c->deny));
	}
	conn_ready(c);
	if (c->deny[0])
		log_info(c->logname, "refused: %s", c->deny);
	else
		log_debug(c->logname, "TLS identity, role %s%s%s",
			  policy_role_name(c->who.role),
			  c->who.tenant ? ", tenant " : "",
			  c->who.tenant ? c->who.tenant : "");
}

void
listener_tls_failed(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char why[200];

	tls_handshake_error(ssl, bufferevent_get_openssl_error(c->bev), why,
			    sizeof(why));
	log_info(c->logname, "TLS handshake failed: %s", why);
	/* Other errors of this connection must not show up as another's. */
	ERR_clear_error();
}

int
listener_tls_new(struct vmmd *d, const char *address, unsigned int port,
		 struct listener **ret, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct listener *l;
	int fd, r, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, address,
		      &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sslen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, address,
			     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sslen = sizeof(struct sockaddr_in6);
	} else {
		snprintf(err, errlen, "tls.address: \"%s\" is not a numeric "
			 "IPv4 or IPv6 address", address);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "tls: socket: %s", strerror(-r));
		return r;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 ||
	    listen(fd, 128) < 0) {
		r = -errno;
		snprintf(err, errlen, "tls: %s port %u: %s", address, port,
			 strerror(-r));
		close(fd);
		return r;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->d = d;
	l->tls = true;
	l->evl = evconnlistener_new(d->base, listener_tls_accept, l,
				    LEV_OPT_CLOSE_ON_FREE |
				    LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (!l->evl) {
		close(fd);
		free(l);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l->evl, listener_error);
	*ret = l;
	return 0;
}

void
listener_free(struct listener *l)
{
	if (!l)
		return;
	evconnlistener_free(l->evl);
	if (!l->tls && l->path[0])
		unlink(l->path);
	free(l);
}
