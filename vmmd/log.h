/* SPDX-License-Identifier: MIT */
/*
 * vmmd's log: one line per message on stderr, which systemd hands to
 * journald. A line is "LEVEL: SUBSYSTEM: message", the subsystem naming
 * the object ("vm \"web1\"", "client 12 (uid:1000)"); under journald the
 * line starts with the syslog priority ("<4>") instead, so that journald
 * files it at the right level. Messages never carry request bodies; text a
 * peer chose is scrubbed of control characters before it is logged.
 */
#ifndef VMMD_LOG_H
#define VMMD_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_MAX,
};

/* "error", "warn", "info", "debug" (also "warning"). 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret);

/* The name of a level, or NULL out of range. */
const char *log_level_name(enum log_level l);

/* Messages above l are dropped. The default is LOG_LEVEL_INFO. */
void log_set_level(enum log_level l);
enum log_level log_get_level(void);

/* One line; subsys may be NULL. */
void log_msg(enum log_level l, const char *subsys, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level l, const char *subsys, const char *fmt,
	      va_list ap) __attribute__((format(printf, 3, 0)));

#define log_error(subsys, ...)	log_msg(LOG_LEVEL_ERROR, subsys, __VA_ARGS__)
#define log_warn(subsys, ...)	log_msg(LOG_LEVEL_WARN, subsys, __VA_ARGS__)
#define log_info(subsys, ...)	log_msg(LOG_LEVEL_INFO, subsys, __VA_ARGS__)
#define log_debug(subsys, ...)	log_msg(LOG_LEVEL_DEBUG, subsys, __VA_ARGS__)

/*
 * Copy s into buf (len bytes, NUL-terminated, truncated) with every byte
 * outside printable ASCII replaced by '?': for names and messages a peer
 * chose. Returns buf.
 */
char *log_scrub(const char *s, char *buf, unsigned int len);

#endif
