/* SPDX-License-Identifier: MIT */
/* The console relay and the raw terminal around it. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmctl/client.h"
#include "vmctl/console.h"

/*
 * A signal handler can reach only static storage, so the terminal we
 * changed is remembered here: its fd (-1 when nothing is to be restored),
 * how it was, and the raw mode to go back to after SIGCONT. One process
 * has one controlling terminal; there is nothing to gain from an object.
 */
static volatile sig_atomic_t console_tty_fd = -1;
static struct termios console_saved;
static struct termios console_raw;
static int console_hooks_set;

static const int console_signals[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP,
};

void
console_tty_restore(void)
{
	int fd = console_tty_fd;

	if (fd < 0)
		return;
	console_tty_fd = -1;
	tcsetattr(fd, TCSADRAIN, &console_saved);
}

static void
console_on_signal(int sig)
{
	int saved_errno = errno, fd = console_tty_fd;

	console_tty_restore();
	if (sig == SIGTSTP) {
		/* Stop with the terminal as the shell expects it... */
		raise(SIGSTOP);
		/* ...and take it back when continued. */
		if (fd >= 0 && tcsetattr(fd, TCSADRAIN, &console_raw) == 0)
			console_tty_fd = fd;
		errno = saved_errno;
		return;
	}
	/* The default action runs once this handler returns. */
	signal(sig, SIG_DFL);
	raise(sig);
	errno = saved_errno;
}

int
console_tty_raw(int fd)
{
	struct sigaction sa;
	size_t i;

	if (tcgetattr(fd, &console_saved) < 0)
		return -errno;
	console_raw = console_saved;
	cfmakeraw(&console_raw);
	if (!console_hooks_set) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = console_on_signal;
		sigemptyset(&sa.sa_mask);
		for (i = 0; i < sizeof(console_signals) / sizeof(console_signals[0]); i++)
			sigaddset(&sa.sa_mask, console_signals[i]);
		for (i = 0; i < sizeof(console_signals) / sizeof(console_signals[0]); i++)
			sigaction(console_signals[i], &sa, NULL);
		atexit(console_tty_restore);
		console_hooks_set = 1;
	}
	if (tcsetattr(fd, TCSADRAIN, &console_raw) < 0)
		return -errno;
	console_tty_fd = fd;
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* All of buf to fd, waiting when fd is non-blocking. */
static int
write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN) {
			poll(&pfd, 1, -1);
		} else if (n < 0 && errno != EINTR) {
			return -errno;
		}
	}
	return 0;
}

/* The earliest of two deadlines (-1: none) as a poll() timeout. */
static int
timeout_until(int64_t a, int64_t b)
{
	int64_t d = a < 0 ? b : (b < 0 ? a : (a < b ? a : b)), left;

	if (d < 0)
		return -1;
	left = d - now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int
console_relay(struct client *c, const struct console_opts *o,
	      enum console_end *ret_end, char *err, size_t errlen)
{
	bool in_open = o->in_fd >= 0 && (o->write || o->tty);
	int64_t linger_at = -1, quiet_at = -1;
	uint64_t done = 0;
	struct pollfd pfd[2];
	char buf[16384], *esc;
	size_t want;
	ssize_t n;
	int nfds, r, rc;
	bool buffered;

	if (o->limit && o->quiet_ms >= 0)
		quiet_at = now_ms() + o->quiet_ms;
	for (;;) {
		if (o->stop && *o->stop) {
			*ret_end = CONSOLE_END_STOPPED;
			return 0;
		}
		if (o->limit && done >= o->limit) {
			*ret_end = CONSOLE_END_LIMIT;
			return 0;
		}
		buffered = client_has_buffered(c);
		pfd[0].fd = client_fd(c);
		pfd[0].events = client_poll_events(c);
		pfd[0].revents = 0;
		nfds = 1;
		if (in_open) {
			pfd[1].fd = o->in_fd;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		}
		rc = poll(pfd, (nfds_t)nfds,
			  buffered ? 0 : timeout_until(linger_at, quiet_at));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			return r;
		}
		if (rc == 0 && !buffered) {
			if (linger_at >= 0 && now_ms() >= linger_at) {
				*ret_end = CONSOLE_END_INPUT;
				return 0;
			}
			if (quiet_at >= 0 && now_ms() >= quiet_at) {
				snprintf(err, errlen,
					 "the daemon sent nothing for %d s "
					 "(%llu of %llu bytes of history)",
					 o->quiet_ms / 1000,
					 (unsigned long long)done,
					 (unsigned long long)o->limit);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (buffered || pfd[0].revents) {
			want = sizeof(buf);
			if (o->limit && o->limit - done < want)
				want = (size_t)(o->limit - done);
			n = client_read_raw(c, buf, want, 0, err, errlen);
			if (n == 0) {
				*ret_end = CONSOLE_END_CLOSED;
				return 0;
			}
			if (n < 0 && n != -EAGAIN)
				return (int)n;
			if (n > 0) {
				r = write_full(o->out_fd, buf, (size_t)n);
				if (r == -EPIPE) {
					*ret_end = CONSOLE_END_OUTPUT;
					return 0;
				}
				if (r < 0) {
					snprintf(err, errlen, "output: %s",
						 strerror(-r));
					return r;
				}
				done += (size_t)n;
				if (linger_at >= 0)
					linger_at = now_ms() + o->linger_ms;
				if (quiet_at >= 0)
					quiet_at = now_ms() + o->quiet_ms;
			}
		}
		if (nfds == 2 && pfd[1].revents) {
			n = read(o->in_fd, buf, sizeof(buf));
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				r = -errno;
				snprintf(err, errlen, "input: %s",
					 strerror(errno));
				return r;
			}
			if (n == 0) {
				in_open = false;
				if (o->tty) {
					/* A terminal that hangs up has left. */
					*ret_end = CONSOLE_END_DETACHED;
					return 0;
				}
				if (o->linger_ms >= 0)
					linger_at = now_ms() + o->linger_ms;
				continue;
			}
			esc = o->tty ? memchr(buf, CONSOLE_ESCAPE, (size_t)n) :
				NULL;
			if (esc)
				n = esc - buf;
			if (o->write && n > 0) {
				r = client_write_raw(c, buf, (size_t)n, err,
						     errlen);
				if (r < 0)
					return r;
			}
			if (esc) {
				*ret_end = CONSOLE_END_DETACHED;
				return 0;
			}
		}
	}
}
