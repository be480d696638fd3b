/* SPDX-License-Identifier: MIT */
/*
 * The console relay of `vmctl console` and `vmctl logs`: bytes from the
 * daemon to out_fd, and from in_fd to the daemon when we are the writer.
 *
 * On a terminal, in_fd goes into raw mode for the session and Ctrl-]
 * detaches. The terminal is restored on every way out: return, exit(),
 * SIGTERM, SIGHUP, SIGINT, SIGQUIT (then the signal's default action
 * runs) and across SIGTSTP/SIGCONT.
 */
#ifndef VMCTL_CONSOLE_H
#define VMCTL_CONSOLE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

/* The detach key: Ctrl-] (GS), as telnet and virsh use. */
#define CONSOLE_ESCAPE 0x1d

struct console_opts {
	int in_fd;		/* -1: no input at all */
	int out_fd;
	bool write;		/* we are the writer: send what in_fd gives */
	bool tty;		/* in_fd is a terminal: raw mode, Ctrl-] */
	/*
	 * Without a terminal, once in_fd ends: stop after this long without
	 * output from the daemon (negative: go on until it closes).
	 */
	int linger_ms;
	/* Stop after this many bytes of output (logs); 0: no limit. */
	uint64_t limit;
	/* With a limit: give up when nothing comes for this long (negative: never). */
	int quiet_ms;
	/* Set by a signal handler: stop at once (may be NULL). */
	volatile sig_atomic_t *stop;
};

/* Why console_relay() returned 0. */
enum console_end {
	CONSOLE_END_DETACHED,	/* Ctrl-] */
	CONSOLE_END_CLOSED,	/* the daemon closed the connection */
	CONSOLE_END_INPUT,	/* input ended and output went quiet */
	CONSOLE_END_LIMIT,	/* limit bytes printed */
	CONSOLE_END_STOPPED,	/* *stop was set */
	CONSOLE_END_OUTPUT,	/* out_fd's reader went away (EPIPE: | head) */
	CONSOLE_END_MAX,
};

/*
 * Relay until one of the ends above. Returns 0 with *ret_end set, or a
 * negative errno with err (the connection broke, out_fd failed, the
 * terminal could not be set up, -ETIMEDOUT when quiet_ms passed).
 */
int console_relay(struct client *c, const struct console_opts *o,
		  enum console_end *ret_end, char *err, size_t errlen);

/*
 * Put fd (a terminal) in raw mode and arrange for it to be restored
 * (atexit and the signals above). 0 or a negative errno.
 */
int console_tty_raw(int fd);

/* Restore the terminal; a no-op when console_tty_raw() was not called. */
void console_tty_restore(void);

#endif
