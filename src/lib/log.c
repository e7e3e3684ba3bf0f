/*
 * log.c - key=value event lines on stderr (see log.h).
 * Each line goes out in one write(2), so lines from the job threads never
 * interleave.  Never: logs an untrusted byte unescaped (callers use
 * log_esc()).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level	log_max = LOG_LVL_INFO;	/* set once at start */

static const char *const log_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARNING] = "warning",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void
log_set_level(enum log_level l)
{
	log_max = l;
}

int
log_enabled(enum log_level l)
{
	return l <= log_max;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t	i;

	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

const char *
log_level_name(enum log_level l)
{
	return log_names[l];
}

void
log_eventv(enum log_level l, const char *event, const char *prefix,
    const char *fmt, va_list ap)
{
	char		 line[4096];
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	if (!log_enabled(l))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s event=%s%s%s",
	    ts.tv_nsec / 1000000, log_names[l], event,
	    prefix && *prefix ? " " : "", prefix ? prefix : "");
	if (r > 0)
		n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
	if (fmt && *fmt && n < sizeof(line) - 2) {
		line[n++] = ' ';
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n ?
			    (size_t)r : sizeof(line) - n - 1;
	}
	line[n++] = '\n';
	(void)write(STDERR_FILENO, line, n);
}

void
log_event(enum log_level l, const char *event, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_eventv(l, event, NULL, fmt, ap);
	va_end(ap);
}

static const char *
log_escape(const void *vp, size_t len, size_t max, bool keep_space)
{
	static _Thread_local char	ring[8][1100];
	static _Thread_local unsigned	slot;
	static const char		hex[] = "0123456789abcdef";
	const unsigned char		*p = vp;
	char				*out;
	size_t				 i, o = 0;

	out = ring[slot++ % 8];
	if (max > 256)
		max = 256;
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = p[i];

		if ((c > 0x20 || (c == 0x20 && keep_space)) && c < 0x7f &&
		    c != '"' && c != '\\' && (c != '=' || keep_space))
			out[o++] = (char)c;
		else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

const char *
log_esc(const void *p, size_t len, size_t max)
{
	return log_escape(p, len, max, false);
}

const char *
log_text(const void *p, size_t len, size_t max)
{
	return log_escape(p, len, max, true);
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_eventv(LOG_LVL_ERROR, "fatal", NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

void
panic(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_eventv(LOG_LVL_ERROR, "panic", NULL, fmt, ap);
	va_end(ap);
	abort();
}
