/* SPDX-License-Identifier: MIT */
/*
 * The daemon: its configuration, the event loop and everything hanging off
 * it (store, registry, events, listeners, connections), set up and torn
 * down in one place. Stopping the daemon never stops a VM: their processes
 * outlive it and a new daemon reattaches to them.
 */
#ifndef VMMD_DAEMON_H
#define VMMD_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/ssl.h>

#include "vmmd/config.h"
#include "vmmd/events.h"
#include "vmmd/queue.h"
#include "vmmd/registry.h"

#define VMMD_VERSION		"0.1.0"
#define VMMD_PROTOCOL		1

struct event_base;
struct event;
struct policy;
struct store;
struct listener;
struct conn;
struct cgroup_host;

struct vmmd {
	struct event_base *base;
	struct config *cfg;
	char vmm_run[PATH_MAX];
	struct store *store;
	struct registry reg;
	struct events events;
	struct policy *policy;	/* NULL: none configured */
	SSL_CTX *ssl_ctx;	/* NULL: no TLS listener */
	struct listener *unix_listener;
	struct listener *tls_listener;
	TAILQ_HEAD(, conn) conns;
	unsigned int nr_conns;
	uint64_t next_conn_id;
	bool has_admin_gid;
	gid_t admin_gid;	/* socket_group's members are admins */
	int lock_fd;
	struct event *sig_chld, *sig_term, *sig_int, *sig_hup;
	struct event *reap_timer;
	bool stopping;
	/* NULL when detection failed: VMs whose definition sets resources
	 * that need cgroups are refused, with cgroup_err. */
	struct cgroup_host *cgroup;
	char cgroup_err[256];
};

/*
 * Set up the daemon from cfg (taken): the store, the runtime directory and
 * its lock, the policy, the listeners, the stored VMs (reattached to their
 * processes, autostarted). self_exe locates vmm-run. Returns 0 and a new
 * daemon, or a negative errno with err.
 */
int daemon_new(struct config *cfg, const char *self_exe, struct vmmd **ret,
	       char *err, size_t errlen);

/* Run the event loop until SIGTERM or SIGINT. Returns 0 or -errno. */
int daemon_run(struct vmmd *d);

/* Close everything; VM processes keep running. NULL is a no-op. */
void daemon_free(struct vmmd *d);

/*
 * A minimal daemon around base and cfg (borrowed) with an empty registry,
 * no store, no listeners: for unit tests of the modules that take one.
 */
int daemon_new_bare(struct event_base *base, struct config *cfg,
		    struct vmmd **ret);
void daemon_free_bare(struct vmmd *d);

/* (Re)load the access policy from cfg->policy. 0 or -errno with err. */
int daemon_load_policy(struct vmmd *d, char *err, size_t errlen);

#endif
