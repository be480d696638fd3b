/* SPDX-License-Identifier: MIT */
/* What every part of vmctl, the command-line client, agrees on. */
#ifndef VMCTL_VMCTL_H
#define VMCTL_VMCTL_H

#define VMCTL_VERSION		"0.1.0"
/* The protocol version this client speaks (daemon.info's "protocol"). */
#define VMCTL_PROTOCOL		1
#define VMCTL_DEFAULT_URI	"unix:///run/vmmd/vmmd.sock"
#define VMCTL_TLS_DEFAULT_PORT	"7443"

/* Exit statuses: scripts branch on them, so they never change. */
enum vmctl_exit {
	VMCTL_EXIT_OK		= 0,
	VMCTL_EXIT_DAEMON	= 1,	/* the daemon answered with an error */
	VMCTL_EXIT_USAGE	= 2,	/* bad command line, config or definition */
	VMCTL_EXIT_CONNECT	= 3,	/* no connection, or it broke */
};

#endif
