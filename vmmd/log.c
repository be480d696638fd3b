/* SPDX-License-Identifier: MIT */
/* vmmd's one-line log on stderr (log.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmmd/log.h"

static enum log_level log_level = LOG_LEVEL_INFO;
static int log_journal = -1;	/* -1: not checked yet */

static const char *const log_names[LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

/* syslog priorities: err, warning, info, debug. */
static const int log_prio[LOG_LEVEL_MAX] = { 3, 4, 6, 7 };

int
log_level_parse(const char *s, enum log_level *ret)
{
	unsigned int i;

	if (!s)
		return -EINVAL;
	if (strcmp(s, "warning") == 0) {
		*ret = LOG_LEVEL_WARN;
		return 0;
	}
	for (i = 0; i < LOG_LEVEL_MAX; i++)
		if (strcmp(s, log_names[i]) == 0) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

const char *
log_level_name(enum log_level l)
{
	return (unsigned int)l < LOG_LEVEL_MAX ? log_names[l] : NULL;
}

void
log_set_level(enum log_level l)
{
	if ((unsigned int)l < LOG_LEVEL_MAX)
		log_level = l;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

/*
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it
 * connected stderr to; when stderr still is that stream, journald reads our
 * "<N>" prefixes and adds its own timestamps.
 */
static int
log_to_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) < 0)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

char *
log_scrub(const char *s, char *buf, unsigned int len)
{
	unsigned int i;

	if (!len)
		return buf;
	for (i = 0; s && s[i] && i + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[i] = '\0';
	return buf;
}

void
log_vmsg(enum log_level l, const char *subsys, const char *fmt, va_list ap)
{
	char msg[1024], stamp[40] = "";
	unsigned int i;

	if ((unsigned int)l >= LOG_LEVEL_MAX || l > log_level)
		return;
	if (log_journal < 0)
		log_journal = log_to_journal();
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One line, whatever went into it. */
	for (i = 0; msg[i]; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	if (log_journal) {
		fprintf(stderr, "<%d>%s%s%s\n", log_prio[l],
			subsys ? subsys : "", subsys ? ": " : "", msg);
		return;
	}
	{
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03ld ",
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 ts.tv_nsec / 1000000);
	}
	fprintf(stderr, "%svmmd: %s: %s%s%s\n", stamp, log_names[l],
		subsys ? subsys : "", subsys ? ": " : "", msg);
}

void
log_msg(enum log_level l, const char *subsys, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(l, subsys, fmt, ap);
	va_end(ap);
}
