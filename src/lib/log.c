/*
 * log.c - key=value event lines (see log.h), to stderr, a file or a
 * syslog socket.
 * Each line goes out in one write(2) or send(2), so lines from the job
 * threads never interleave.  A file is reopened with dup2() onto the same
 * descriptor, so a writer on another thread never sees it closed.  The
 * syslog socket is non-blocking: a full socket drops the line (counted)
 * rather than stall an event loop.
 * Never: logs an untrusted byte unescaped (callers use log_esc()).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX	4096	/* one event line, with its newline */
#define LOG_OUT_MAX	8192	/* rendered (JSON escapes it grows) */

static enum log_level	log_max = LOG_LVL_INFO;	/* set once at start */

/*
 * Where lines go: set once at start, before any thread but main runs
 * (log_to_file, log_to_syslog, log_set_render); then only log_reopen()
 * changes the file behind log_fd, with dup2() onto the same number.
 */
static int		 log_fd = STDERR_FILENO;
static char		 log_path[1024];	/* "" : stderr or syslog */
static log_render_fn	*log_render;		/* NULL: the text line */
static bool		 log_syslog;
static int		 log_facility;		/* LOG_FAC_* << 3 */
static char		 log_tag[64];
static struct sockaddr_un log_sun;
static pthread_mutex_t	 log_sys_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_ulong	 log_dropped;		/* syslog socket full/gone */

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

/* The syslog header (RFC 3164 4.1, as the local socket takes it):
 * "<PRI>Mmm dd hh:mm:ss TAG[PID]: ", local time. */
static size_t
log_syslog_head(char *out, size_t cap, enum log_level l,
    const struct timespec *ts, const char *prog)
{
	static const int	sev[] = { 3, 4, 6, 7 };	/* err .. debug */
	struct tm		tm;
	size_t			n;
	int			r;

	localtime_r(&ts->tv_sec, &tm);
	r = snprintf(out, cap, "<%d>", log_facility | sev[l]);
	n = r > 0 ? (size_t)r : 0;
	n += strftime(out + n, cap - n, "%b %e %H:%M:%S ", &tm);
	r = snprintf(out + n, cap - n, "%s%s%s[%ld]: ", log_tag,
	    prog ? "/" : "", prog ? prog : "", (long)getpid());
	if (r > 0)
		n += (size_t)r < cap - n ? (size_t)r : cap - n - 1;
	return n;
}

static int
log_syslog_connect(void)
{
	int	fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&log_sun, sizeof(log_sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One datagram a line; a socket that went away (syslog restarted) is
 * connected again once, then the line is dropped and counted. */
static void
log_syslog_send(const char *msg, size_t len)
{
	int	fd;

	pthread_mutex_lock(&log_sys_mu);
	if (log_fd == -1 || send(log_fd, msg, len, MSG_NOSIGNAL) == -1) {
		if (log_fd != -1 && errno == EAGAIN)
			fd = -1;	/* full: never wait */
		else {
			if (log_fd != -1)
				close(log_fd);
			log_fd = fd = log_syslog_connect();
		}
		if (fd == -1 || send(fd, msg, len, MSG_NOSIGNAL) == -1)
			atomic_fetch_add(&log_dropped, 1);
	}
	pthread_mutex_unlock(&log_sys_mu);
}

/* Past "TIMESTAMP " and "level=L ": what a syslog line carries. */
static const char *
log_level_of(const char *line, enum log_level *l)
{
	const char	*p = strchr(line, ' ');
	size_t		 i;

	*l = LOG_LVL_INFO;
	if (p == NULL)
		return line;
	p++;
	for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strncmp(p, "level=", 6) == 0 &&
		    strncmp(p + 6, log_names[i], strlen(log_names[i])) == 0)
			*l = (enum log_level)i;
	return p;
}

static void
log_emit(const char *line, size_t n, const struct timespec *ts)
{
	char		 out[LOG_OUT_MAX];
	const char	*prog = NULL, *msg;
	enum log_level	 l;
	size_t		 k = 0, h;

	if (log_syslog) {
		msg = log_level_of(line, &l);
		h = log_syslog_head(out, sizeof(out), l, ts, NULL);
		if (log_render != NULL)
			k = log_render(line, n, true, &prog, out + h,
			    sizeof(out) - h);
		if (prog != NULL) {	/* the tag names a program: redo */
			char	tmp[LOG_OUT_MAX];

			memcpy(tmp, out + h, k);
			h = log_syslog_head(out, sizeof(out), l, ts, prog);
			if (k > sizeof(out) - h)
				k = sizeof(out) - h;
			memcpy(out + h, tmp, k);
		}
		if (k == 0) {
			k = strlen(msg);
			if (k > sizeof(out) - h)
				k = sizeof(out) - h;
			memcpy(out + h, msg, k);
		}
		log_syslog_send(out, h + k);
		return;
	}
	if (log_render != NULL)
		k = log_render(line, n, false, &prog, out, sizeof(out) - 1);
	if (k > 0) {
		out[k++] = '\n';
		(void)write(log_fd, out, k);
		return;
	}
	memcpy(out, line, n);
	out[n++] = '\n';
	(void)write(log_fd, out, n);
}

void
log_set_render(log_render_fn *fn)
{
	log_render = fn;
}

static int
log_open_path(const char *path, char *err, size_t errlen)
{
	int	fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1)
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
	return fd;
}

int
log_to_file(const char *path, char *err, size_t errlen)
{
	int	fd;

	if (strlen(path) >= sizeof(log_path)) {
		snprintf(err, errlen, "log file path too long");
		return -1;
	}
	if ((fd = log_open_path(path, err, errlen)) == -1)
		return -1;
	snprintf(log_path, sizeof(log_path), "%s", path);
	log_fd = fd;
	return 0;
}

int
log_to_syslog(const char *sock, int facility, const char *tag, char *err,
    size_t errlen)
{
	if (strlen(sock) >= sizeof(log_sun.sun_path)) {
		snprintf(err, errlen, "syslog socket path too long");
		return -1;
	}
	memset(&log_sun, 0, sizeof(log_sun));
	log_sun.sun_family = AF_UNIX;
	memcpy(log_sun.sun_path, sock, strlen(sock));
	log_facility = facility << 3;
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
	/* Not there yet is not fatal: each line tries again. */
	log_fd = log_syslog_connect();
	log_syslog = true;
	return 0;
}

int
log_reopen(void)
{
	char	err[256];
	int	fd;

	if (log_syslog) {
		pthread_mutex_lock(&log_sys_mu);
		if (log_fd != -1)
			close(log_fd);
		log_fd = log_syslog_connect();
		pthread_mutex_unlock(&log_sys_mu);
		return 0;
	}
	if (log_path[0] == '\0')
		return 0;
	if ((fd = log_open_path(log_path, err, sizeof(err))) == -1) {
		log_event(LOG_LVL_WARNING, "log", "msg=\"%s; still writing "
		    "to the old file\"", err);
		return -1;
	}
	/* The descriptor's number stays: no writer sees a closed one. */
	if (dup2(fd, log_fd) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	log_event(LOG_LVL_INFO, "log", "msg=\"reopened\" file=%s",
	    log_esc(log_path, strlen(log_path), 256));
	return 0;
}

unsigned long
log_dropped_count(void)
{
	return atomic_load(&log_dropped);
}

void
log_eventv(enum log_level l, const char *event, const char *prefix,
    const char *fmt, va_list ap)
{
	char		 line[LOG_LINE_MAX];
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
	line[n] = '\0';
	log_emit(line, n, &ts);
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
