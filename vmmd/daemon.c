/* SPDX-License-Identifier: MIT */
/* The daemon's set-up, event loop and tear-down (daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "proto/policy.h"
#include "proto/tls.h"
#include "vmmd/conn.h"
#include "vmmd/console.h"
#include "vmmd/daemon.h"
#include "vmmd/limits.h"
#include "vmmd/listener.h"
#include "vmmd/log.h"
#include "vmmd/store.h"
#include "vmmd/supervise.h"

/* systemd's readiness protocol (sd_notify(3)), without libsystemd. */
static void
daemon_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (!path || !*path || strlen(path) >= sizeof(sa.sun_path))
		return;
	if (path[0] != '/' && path[0] != '@')
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract namespace */
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			  strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
		   (struct sockaddr *)&sa, len) < 0)
		log_debug("daemon", "sd_notify: %s", strerror(errno));
	close(fd);
}

static void
daemon_load_one(void *arg, const char *name, json_t *doc)
{
	struct vmmd *d = arg;
	struct vmdef *def;
	char *tenant = NULL, err[512];
	struct vm *vm;
	int r;

	r = vm_doc_parse(doc, name, &def, &tenant, err, sizeof(err));
	if (r < 0) {
		log_error("store", "%s/%s.json: skipped: %s", store_dir(d->store),
			  name, err);
		return;
	}
	r = registry_add(&d->reg, d, def, tenant, &vm);
	free(tenant);
	if (r < 0)
		log_error("store", "\"%s\": %s", name, strerror(-r));
}

static void
daemon_load_bad(void *arg, const char *path, const char *why)
{
	(void)arg;
	log_error("store", "%s: skipped: %s", path, why);
}

int
daemon_load_policy(struct vmmd *d, char *err, size_t errlen)
{
	struct policy *p = NULL;
	int r;

	if (d->cfg->policy) {
		r = policy_load(d->cfg->policy, &p, err, errlen);
		if (r < 0)
			return r;
	}
	policy_free(d->policy);
	d->policy = p;
	return 0;
}

static void
daemon_signal(evutil_socket_t sig, short what, void *arg)
{
	struct vmmd *d = arg;
	char err[512];

	(void)what;
	switch (sig) {
	case SIGCHLD:
		supervise_reap(d);
		break;
	case SIGHUP:
		if (daemon_load_policy(d, err, sizeof(err)) < 0)
			log_error("daemon", "SIGHUP: policy not reloaded: %s",
				  err);
		else
			log_info("daemon", "SIGHUP: access policy reloaded "
				 "(new connections use it)");
		break;
	default:
		log_info("daemon", "%s: stopping (VMs keep running)",
			 sigabbrev_np((int)sig) ? sigabbrev_np((int)sig) : "?");
		d->stopping = true;
		event_base_loopexit(d->base, NULL);
		break;
	}
}

static int
daemon_signals(struct vmmd *d)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	struct event **evs[] = { &d->sig_chld, &d->sig_term, &d->sig_int,
				 &d->sig_hup };
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		*evs[i] = evsignal_new(d->base, sigs[i], daemon_signal, d);
		if (!*evs[i] || event_add(*evs[i], NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

static struct vmmd *
daemon_alloc(struct event_base *base, struct config *cfg)
{
	struct vmmd *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->base = base;
	d->cfg = cfg;
	d->lock_fd = -1;
	events_init(&d->events);
	d->events.send = conn_send_event;
	registry_init(&d->reg);
	TAILQ_INIT(&d->conns);
	return d;
}

int
daemon_new_bare(struct event_base *base, struct config *cfg,
		struct vmmd **ret)
{
	struct vmmd *d = daemon_alloc(base, cfg);

	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

void
daemon_free_bare(struct vmmd *d)
{
	struct vm *vm;

	if (!d)
		return;
	conn_close_all(d);
	TAILQ_FOREACH(vm, &d->reg.vms, entry)
		supervise_detach(vm);
	registry_fini(&d->reg);
	events_fini(&d->events);
	free(d);
}

int
daemon_new(struct config *cfg, const char *self_exe, struct vmmd **ret,
	   char *err, size_t errlen)
{
	struct event_base *base;
	struct vmmd *d;
	struct vm *vm;
	char path[PATH_MAX + 16];
	unsigned int reattached = 0, started = 0;
	int r;

	log_set_level(cfg->log_level);
	base = event_base_new();
	if (!base) {
		config_free(cfg);
		snprintf(err, errlen, "cannot create the event loop");
		return -ENOMEM;
	}
	d = daemon_alloc(base, cfg);
	if (!d) {
		event_base_free(base);
		config_free(cfg);
		return -ENOMEM;
	}
	r = config_find_vmm_run(cfg, self_exe, d->vmm_run, sizeof(d->vmm_run));
	if (r < 0) {
		snprintf(err, errlen, "vmm-run: %s (set vmm_run in the "
			 "configuration)", cfg->vmm_run ? "not executable" :
			 "not found next to vmmd nor on $PATH");
		goto fail;
	}
	if (cfg->socket_group) {
		struct group *g = getgrnam(cfg->socket_group);

		if (!g) {
			snprintf(err, errlen, "socket_group: no group \"%s\"",
				 cfg->socket_group);
			r = -ENOENT;
			goto fail;
		}
		d->has_admin_gid = true;
		d->admin_gid = g->gr_gid;
	}
	/* The runtime directory: its lock says one daemon at a time. */
	snprintf(path, sizeof(path), "%s/vms", cfg->runtime_dir);
	r = store_mkdirs(cfg->runtime_dir, 0755);
	if (r == 0)
		r = store_mkdirs(path, 0700);
	if (r < 0) {
		snprintf(err, errlen, "runtime_dir %s: %s", cfg->runtime_dir,
			 strerror(-r));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/vmmd.lock", cfg->runtime_dir);
	d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, r == -EWOULDBLOCK ?
			 "another vmmd runs with this runtime_dir" :
			 strerror(-r));
		goto fail;
	}
	r = store_open(cfg->state_dir, &d->store, err, errlen);
	if (r < 0)
		goto fail;
	r = daemon_load_policy(d, err, errlen);
	if (r < 0)
		goto fail;
	if (cfg->tls.enabled) {
		r = tls_server_ctx_new(cfg->tls.cert, cfg->tls.key, cfg->tls.ca,
				       &d->ssl_ctx, err, errlen);
		if (r < 0)
			goto fail;
	}
	r = daemon_signals(d);
	if (r < 0) {
		snprintf(err, errlen, "cannot watch signals");
		goto fail;
	}

	/* Before any VM is reattached or started: on v2 this also moves
	 * vmmd into its subtree's daemon group. */
	limits_host_init(d);
	r = store_load_all(d->store, daemon_load_one, daemon_load_bad, d);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", store_dir(d->store),
			 strerror(-r));
		goto fail;
	}
	TAILQ_FOREACH(vm, &d->reg.vms, entry) {
		char sub[96];

		r = supervise_reattach(vm);
		if (r > 0)
			reattached++;
		else if (r < 0)
			log_error(vm_log_name(vm, sub, sizeof(sub)), "cannot "
				  "reattach: %s", strerror(-r));
	}

	r = listener_unix_new(d, cfg->socket, &d->unix_listener, err, errlen);
	if (r < 0)
		goto fail;
	if (cfg->tls.enabled) {
		r = listener_tls_new(d, cfg->tls.address, cfg->tls.port,
				     &d->tls_listener, err, errlen);
		if (r < 0)
			goto fail;
	}

	TAILQ_FOREACH(vm, &d->reg.vms, entry) {
		char why[512], sub[96];

		if (!vm->def->autostart || !vm_state_is_down(vm->state))
			continue;
		if (supervise_start(vm, "autostart", why, sizeof(why)) < 0)
			log_error(vm_log_name(vm, sub, sizeof(sub)),
				  "autostart: %s", why);
		else
			started++;
	}
	if (cfg->tls.enabled)
		log_info("daemon", "TLS on %s port %u", cfg->tls.address,
			 cfg->tls.port);
	log_info("daemon", "vmmd %s: %u VMs defined, %u reattached, %u "
		 "autostarted; listening on %s", VMMD_VERSION, d->reg.count,
		 reattached, started, cfg->socket);
	*ret = d;
	return 0;
fail:
	daemon_free(d);
	return r < 0 ? r : -EINVAL;
}

int
daemon_run(struct vmmd *d)
{
	daemon_notify("READY=1\nSTATUS=serving");
	if (event_base_dispatch(d->base) < 0)
		return -EIO;
	daemon_notify("STOPPING=1");
	return 0;
}

void
daemon_free(struct vmmd *d)
{
	struct vm *vm;

	if (!d)
		return;
	listener_free(d->unix_listener);
	listener_free(d->tls_listener);
	conn_close_all(d);
	TAILQ_FOREACH(vm, &d->reg.vms, entry) {
		console_close_all(vm);
		supervise_detach(vm);
	}
	/* Whatever still waits on a VM (a vm.stop's timer) goes with the
	 * process; the VMs themselves keep running. */
	registry_fini(&d->reg);
	/* The VMs' groups stay with their processes. */
	limits_host_fini(d);
	events_fini(&d->events);
	conn_close_all(d);
	if (d->sig_chld)
		event_free(d->sig_chld);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	store_free(d->store);
	policy_free(d->policy);
	if (d->ssl_ctx)
		SSL_CTX_free(d->ssl_ctx);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	config_free(d->cfg);
	event_base_free(d->base);
	free(d);
}
