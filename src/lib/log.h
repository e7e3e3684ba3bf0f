/*
 * log.h - one line per event, key=value, to stderr, a file or syslog.
 * Owns: levels, timestamps, escaping of untrusted bytes, fatal/panic.
 * Three tiers (STYLE R10): a peer error is logged by its caller at info;
 * an environment failure is a warning; a broken invariant is panic().
 * fatal() is for startup only.
 */
#ifndef MXGATE_LOG_H
#define MXGATE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARNING, LOG_LVL_INFO, LOG_LVL_DEBUG };

void	log_set_level(enum log_level);
int	log_level_parse(const char *, enum log_level *);	/* 0 or -1 */
const char *log_level_name(enum log_level);
int	log_enabled(enum log_level);

/* "event=NAME" then the formatted key=value pairs. */
void	log_event(enum log_level, const char *event, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	log_eventv(enum log_level, const char *event, const char *prefix,
	    const char *fmt, va_list);

/*
 * A renderer turns one text line (NUL-ended, no newline) into what is
 * written: at most cap bytes into out, and their count; 0 writes the
 * text line itself (for syslog: without its timestamp).  For syslog it
 * may name the program in the tag ("smtpd": TAG/smtpd[PID]).  The JSON
 * format and the Postfix-style syslog lines live in src/obs/.
 */
typedef size_t	log_render_fn(const char *line, size_t len, bool syslog,
		    const char **prog, char *out, size_t cap);
void	log_set_render(log_render_fn *);

/*
 * Destinations, chosen once at start (default: stderr).  A file is
 * opened O_APPEND and reopened by log_reopen() (SIGHUP, logrotate).
 * Syslog: one datagram a line to the unix socket sock (/dev/log), with
 * facility (a number, 2 = mail) and tag; never blocks.  0 or -1 (err).
 */
int	log_to_file(const char *path, char *err, size_t errlen);
int	log_to_syslog(const char *sock, int facility, const char *tag,
	    char *err, size_t errlen);
int	log_reopen(void);
unsigned long log_dropped_count(void);	/* syslog lines dropped */

/*
 * Escape untrusted bytes for a log value: printable ASCII other than
 * space, '"', '\\' and '=' is kept, anything else becomes \xHH; at most
 * max input bytes are shown, then "...".  The result lives in a small
 * per-thread ring (8 slots), valid until 8 more calls on that thread.
 */
const char *log_esc(const void *, size_t len, size_t max);

/* The same for a value shown inside "...": spaces are kept. */
const char *log_text(const void *, size_t len, size_t max);

void	fatal(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	panic(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
