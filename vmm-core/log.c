/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <pthread.h>

static enum log_level log_level = LOG_LEVEL_INFO;
static const char *log_tag = "vmm";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_names[LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_set_level(enum log_level level)
{
	if (level < LOG_LEVEL_MAX)
		log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

void
log_set_tag(const char *tag)
{
	log_tag = tag ? tag : "vmm";
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	int n;

	if (level > log_level || level >= LOG_LEVEL_MAX)
		return;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	/* One line per message: strip a trailing newline, the caller's or ours. */
	n = (int)strnlen(buf, sizeof(buf));
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s: %s: %s\n", log_tag, log_names[level], buf);
	pthread_mutex_unlock(&log_lock);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
