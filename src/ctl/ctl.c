/*
 * ctl.c - the control socket's server side (see ctl.h): a unix-socket
 * listener on the worker's loop, the command table, one request line per
 * connection, text replies, then close.
 * Owns: SPOOL/control.sock, the command table, control connections.
 * Never: does a command's work (handlers do), blocks the loop, or echoes
 * a request byte unescaped.  Untrusted: the request line (bounded by
 * CTL_LINE_MAX before it is parsed; printable ASCII only).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "../lib/log.h"
#include "ctl.h"

#define CTL_SOCKET_MODE		0600
#define CTL_STATS_MAX		16	/* ("stats", NULL) handlers */

struct ctl_cmd {
	char		 verb1[CTL_VERB_MAX + 1];
	char		 verb2[CTL_VERB_MAX + 1];	/* "": one word */
	ctl_handler_fn	*fn;
	void		*arg;
	char		*help;
};

struct ctl_conn {
	struct ctl		*ctl;
	struct bufferevent	*bev;
	struct ctl_conn		*next;
	struct ctl_conn		*prev;
	bool			 done;		/* status line queued */
	bool			 failed;
	char			 errmsg[CTL_ERROR_MAX];
	/* who asked (SO_PEERCRED, from the kernel: cannot be forged) */
	bool			 cred;
	uid_t			 uid;
	pid_t			 pid;
	char			 logx[CTL_LOG_MAX];	/* ctl_log() */
	size_t			 logxlen;
	bool			 logcut;
	uint64_t		 id;		/* ctl_defer(): never 0 */
	const struct ctl_cmd	*cmd;		/* being answered */
};

struct ctl {
	struct event_base	*base;
	struct evconnlistener	*lev;
	char			*spool;
	int			 spoolfd;	/* the spool folder */
	struct sockaddr_un	 sun;
	dev_t			 dev;		/* of our socket file */
	ino_t			 ino;
	struct ctl_cmd		 cmds[CTL_CMDS_MAX];
	size_t			 ncmds;
	struct ctl_cmd		 stats[CTL_STATS_MAX];
	size_t			 nstats;
	struct ctl_conn		*conns;
	size_t			 nconns;
	unsigned		 idle_ms;
	uint64_t		 served;	/* requests answered */
	uint64_t		 refused;	/* over CTL_CONN_MAX */
	uint64_t		 last_id;	/* of a deferred answer */
	struct timespec		 started;
};

static int	ctl_help(void *, struct ctl_conn *, int, char **);
static int	ctl_stats(void *, struct ctl_conn *, int, char **);
static void	ctl_conn_free(struct ctl_conn *);

void
ctl_socket_addr(const char *spool, int spoolfd, struct sockaddr_un *sun)
{
	int	n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", spool,
	    CTL_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		/* sun_path holds 108 bytes; the fd's magic link is short */
		snprintf(sun->sun_path, sizeof(sun->sun_path),
		    "/proc/self/fd/%d/%s", spoolfd, CTL_SOCKET_NAME);
}

static int
ctl_fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "control socket %s/%s: %s%s%s", path,
	    CTL_SOCKET_NAME, what, errno ? ": " : "", errno ?
	    strerror(errno) : "");
	return -1;
}

/*
 * A socket file left by a process that died is removed; one that a live
 * process answers on, or anything that is not a socket, stays.
 */
static int
ctl_clear_stale(struct ctl *c, char *err, size_t errlen)
{
	struct stat	st;
	int		fd, r;

	if (fstatat(c->spoolfd, CTL_SOCKET_NAME, &st,
	    AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT ? 0 :
		    ctl_fail(err, errlen, "stat", c->spool);
	errno = 0;
	if (!S_ISSOCK(st.st_mode))
		return ctl_fail(err, errlen, "exists and is not a socket",
		    c->spool);
	/* non-blocking: a live server with a full backlog says EAGAIN */
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return ctl_fail(err, errlen, "socket", c->spool);
	r = connect(fd, (struct sockaddr *)&c->sun, sizeof(c->sun)) == 0 ?
	    0 : errno;
	close(fd);
	if (r == 0 || r == EAGAIN) {
		errno = 0;
		return ctl_fail(err, errlen, "another process serves it (is "
		    "mxgate already running on this spool?)", c->spool);
	}
	errno = r;
	if (r != ECONNREFUSED)
		return ctl_fail(err, errlen, "connect", c->spool);
	if (unlinkat(c->spoolfd, CTL_SOCKET_NAME, 0) == -1 && errno != ENOENT)
		return ctl_fail(err, errlen, "remove stale socket", c->spool);
	log_event(LOG_LVL_INFO, "control", "msg=\"removed a stale socket\"");
	return 0;
}

/* bind, chmod 0600, and only then listen: no one connects in between. */
static int
ctl_bind(struct ctl *c, char *err, size_t errlen)
{
	struct stat	st;
	int		fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return ctl_fail(err, errlen, "socket", c->spool);
	if (bind(fd, (struct sockaddr *)&c->sun, sizeof(c->sun)) == -1) {
		close(fd);
		return ctl_fail(err, errlen, "bind", c->spool);
	}
	if (fchmodat(c->spoolfd, CTL_SOCKET_NAME, CTL_SOCKET_MODE, 0) == -1 ||
	    fstatat(c->spoolfd, CTL_SOCKET_NAME, &st,
	    AT_SYMLINK_NOFOLLOW) == -1 || listen(fd, CTL_CONN_MAX) == -1) {
		ctl_fail(err, errlen, "listen", c->spool);
		close(fd);
		unlinkat(c->spoolfd, CTL_SOCKET_NAME, 0);
		return -1;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return fd;
}

static void	ctl_accept(struct evconnlistener *, evutil_socket_t,
		    struct sockaddr *, int, void *);

struct ctl *
ctl_open(struct event_base *base, const char *spool, char *err,
    size_t errlen)
{
	struct ctl	*c;
	int		 fd;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->spool = strdup(spool)) == NULL) {
		free(c);
		snprintf(err, errlen, "control socket: out of memory");
		return NULL;
	}
	c->base = base;
	c->spoolfd = -1;
	c->idle_ms = CTL_IDLE_MS;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->spoolfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->spoolfd == -1) {
		ctl_fail(err, errlen, "open the spool folder", spool);
		goto fail;
	}
	ctl_socket_addr(spool, c->spoolfd, &c->sun);
	if (ctl_clear_stale(c, err, errlen) == -1 ||
	    (fd = ctl_bind(c, err, errlen)) == -1)
		goto fail;
	c->lev = evconnlistener_new(base, ctl_accept, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (c->lev == NULL) {
		close(fd);
		unlinkat(c->spoolfd, CTL_SOCKET_NAME, 0);
		snprintf(err, errlen, "control socket: cannot listen");
		goto fail;
	}
	if (ctl_register(c, "help", NULL, ctl_help, c,
	    "list the commands") == 0 &&
	    ctl_register(c, "stats", NULL, ctl_stats, c,
	    "counters: uptime, sessions, queue, ...") == 0)
		return c;
	snprintf(err, errlen, "control socket: out of memory");
fail:
	ctl_close(c);
	return NULL;
}

void
ctl_set_idle_timeout(struct ctl *c, unsigned ms)
{
	c->idle_ms = ms;
}

void
ctl_close(struct ctl *c)
{
	struct stat	st;
	size_t		i;

	if (c == NULL)
		return;
	while (c->conns != NULL)
		ctl_conn_free(c->conns);
	if (c->lev != NULL) {
		evconnlistener_free(c->lev);
		/* only our own socket: a later gateway may have replaced it */
		if (fstatat(c->spoolfd, CTL_SOCKET_NAME, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlinkat(c->spoolfd, CTL_SOCKET_NAME, 0);
	}
	if (c->spoolfd != -1)
		close(c->spoolfd);
	for (i = 0; i < c->ncmds; i++)
		free(c->cmds[i].help);
	free(c->spool);
	free(c);
}

/* Lower-case letters, digits, '-' and '_'. */
static bool
ctl_verb_ok(const char *v)
{
	size_t	n = strlen(v);

	if (n == 0 || n > CTL_VERB_MAX)
		return false;
	return strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-_") == n;
}

static const struct ctl_cmd *
ctl_find(const struct ctl *c, int argc, char **argv, int *nverbs)
{
	size_t	i;

	for (i = 0; argc >= 2 && i < c->ncmds; i++)
		if (c->cmds[i].verb2[0] != '\0' &&
		    strcmp(c->cmds[i].verb1, argv[0]) == 0 &&
		    strcmp(c->cmds[i].verb2, argv[1]) == 0) {
			*nverbs = 2;
			return &c->cmds[i];
		}
	for (i = 0; argc >= 1 && i < c->ncmds; i++)
		if (c->cmds[i].verb2[0] == '\0' &&
		    strcmp(c->cmds[i].verb1, argv[0]) == 0) {
			*nverbs = 1;
			return &c->cmds[i];
		}
	return NULL;
}

int
ctl_register(struct ctl *c, const char *verb1, const char *verb2,
    ctl_handler_fn *fn, void *arg, const char *help)
{
	struct ctl_cmd	*cmd;
	char		*v[2] = { (char *)verb1, (char *)verb2 };
	int		 nv;
	bool		 stats;

	if (fn == NULL || !ctl_verb_ok(verb1) ||
	    (verb2 != NULL && !ctl_verb_ok(verb2)))
		return -1;
	stats = verb2 == NULL && strcmp(verb1, "stats") == 0 &&
	    fn != ctl_stats;
	if (stats) {
		if (c->nstats == CTL_STATS_MAX)
			return -1;
		cmd = &c->stats[c->nstats++];
	} else {
		const struct ctl_cmd	*old = ctl_find(c, verb2 ? 2 : 1, v,
					    &nv);

		if ((old != NULL && nv == (verb2 ? 2 : 1)) ||
		    c->ncmds == CTL_CMDS_MAX)
			return -1;
		cmd = &c->cmds[c->ncmds];
		if ((cmd->help = strdup(help ? help : "")) == NULL)
			return -1;
		c->ncmds++;
	}
	snprintf(cmd->verb1, sizeof(cmd->verb1), "%s", verb1);
	snprintf(cmd->verb2, sizeof(cmd->verb2), "%s", verb2 ? verb2 : "");
	cmd->fn = fn;
	cmd->arg = arg;
	return 0;
}

/* Bytes outside printable ASCII become \xHH: one reply line stays one. */
static void
ctl_put_escaped(struct evbuffer *out, const char *s, size_t len)
{
	char	hex[5];
	size_t	i, run = 0;

	for (i = 0; i < len; i++) {
		unsigned char	ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f)
			continue;
		evbuffer_add(out, s + run, i - run);
		snprintf(hex, sizeof(hex), "\\x%02x", ch);
		evbuffer_add(out, hex, 4);
		run = i + 1;
	}
	evbuffer_add(out, s + run, len - run);
}

void
ctl_printf(struct ctl_conn *cn, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(cn->bev);
	char		 line[CTL_REPLY_LINE_MAX + 1];
	va_list		 ap;
	int		 n;

	if (cn->done)
		panic("ctl_printf: the status line was sent already");
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > CTL_REPLY_LINE_MAX) {
		ctl_put_escaped(out, line, CTL_REPLY_LINE_MAX);
		evbuffer_add_printf(out, "...[%d bytes cut]", n -
		    CTL_REPLY_LINE_MAX);
	} else
		ctl_put_escaped(out, line, (size_t)n);
	evbuffer_add(out, "\n", 1);
}

void
ctl_error(struct ctl_conn *cn, const char *fmt, ...)
{
	va_list	ap;
	char	*p;

	if (cn->failed)
		return;
	cn->failed = true;
	va_start(ap, fmt);
	vsnprintf(cn->errmsg, sizeof(cn->errmsg), fmt, ap);
	va_end(ap);
	for (p = cn->errmsg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

void
ctl_log(struct ctl_conn *cn, const char *fmt, ...)
{
	va_list	ap;
	size_t	room = sizeof(cn->logx) - cn->logxlen;
	int	n;

	if (cn->logcut)
		return;
	va_start(ap, fmt);
	n = vsnprintf(cn->logx + cn->logxlen, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room) {
		cn->logx[cn->logxlen] = '\0';	/* whole fields only */
		cn->logcut = true;
		return;
	}
	cn->logxlen += (size_t)n;
}

static int
ctl_help(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct ctl	*c = arg;
	char		 name[2 * CTL_VERB_MAX + 2];
	size_t		 i;

	(void)argc;
	(void)argv;
	for (i = 0; i < c->ncmds; i++) {
		snprintf(name, sizeof(name), "%s%s%s", c->cmds[i].verb1,
		    c->cmds[i].verb2[0] ? " " : "", c->cmds[i].verb2);
		ctl_printf(cn, "%-20s %s", name, c->cmds[i].help);
	}
	return 0;
}

static int
ctl_stats(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct ctl	*c = arg;
	struct timespec	 now;
	size_t		 i;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ctl_printf(cn, "uptime_seconds %lld",
	    (long long)(now.tv_sec - c->started.tv_sec));
	ctl_printf(cn, "control_requests_total %llu",
	    (unsigned long long)c->served);
	ctl_printf(cn, "control_connections %zu", c->nconns);
	ctl_printf(cn, "control_refused_total %llu",
	    (unsigned long long)c->refused);
	for (i = 0; i < c->nstats; i++)
		if (c->stats[i].fn(c->stats[i].arg, cn, argc, argv) == -1)
			return -1;
	return 0;
}

enum parse_rc
ctl_parse_line(const uint8_t *p, size_t len, struct ctl_words *out)
{
	size_t	i = 0, start;

	out->n = 0;
	if (len > CTL_LINE_MAX - 1)
		return PARSE_TOOLONG;
	for (i = 0; i < len; i++)
		if ((p[i] < 0x20 && p[i] != '\t') || p[i] >= 0x7f)
			return PARSE_BAD;
	for (i = 0; i < len;) {
		if (p[i] == ' ' || p[i] == '\t') {
			i++;
			continue;
		}
		if (out->n == CTL_ARGS_MAX)
			return PARSE_TOOLONG;
		for (start = i; i < len && p[i] != ' ' && p[i] != '\t'; i++)
			;
		out->w[out->n].off = start;
		out->w[out->n++].len = i - start;
	}
	return PARSE_OK;
}

/* The one log line of a request: who asked, what, how it ended. */
static void
ctl_log_done(struct ctl_conn *cn)
{
	const struct ctl_cmd	*cmd = cn->cmd;
	char			 who[64];

	/* operators' actions are worth a line each: who, what */
	if (cn->cred)
		snprintf(who, sizeof(who), "uid=%u pid=%d", (unsigned)cn->uid,
		    (int)cn->pid);
	else
		snprintf(who, sizeof(who), "uid=unknown pid=unknown");
	log_event(LOG_LVL_INFO, "control", "cmd=%s%s%s %s%s%s result=%s%s%s%s",
	    cmd->verb1, cmd->verb2[0] ? "_" : "", cmd->verb2, who, cn->logx,
	    cn->logcut ? " log_cut=yes" : "", cn->failed ? "error" : "ok",
	    cn->failed ? " reason=\"" : "", cn->failed ? log_text(cn->errmsg,
	    strlen(cn->errmsg), 200) : "", cn->failed ? "\"" : "");
}

uint64_t
ctl_defer(struct ctl_conn *cn)
{
	if (cn->id == 0)
		cn->id = ++cn->ctl->last_id;
	return cn->id;
}

struct ctl_conn *
ctl_resume(struct ctl *c, uint64_t id)
{
	struct ctl_conn	*cn;

	for (cn = c->conns; cn != NULL && id != 0; cn = cn->next)
		if (cn->id == id && !cn->done)
			return cn;
	return NULL;
}

static void	ctl_conn_finish(struct ctl_conn *);

void
ctl_finish(struct ctl_conn *cn, int rc)
{
	if (rc == -1)
		ctl_error(cn, "command failed");
	ctl_log_done(cn);
	ctl_conn_finish(cn);
}

/*
 * line: n bytes, its LF and CR cut; words are NUL-terminated in place.
 * true: the handler deferred its answer (ctl_finish() sends the status).
 */
static bool
ctl_dispatch(struct ctl_conn *cn, char *line, size_t n)
{
	const struct ctl_cmd	*cmd;
	struct ctl_words	 ws;
	char			*argv[CTL_ARGS_MAX + 1];
	int			 argc, nverbs, rc;
	size_t			 i;

	cn->ctl->served++;
	switch (ctl_parse_line((const uint8_t *)line, n, &ws)) {
	case PARSE_OK:
		break;
	case PARSE_TOOLONG:	/* the length was capped on arrival */
		ctl_error(cn, "too many words (at most %d)", CTL_ARGS_MAX);
		return false;
	default:
		ctl_error(cn, "bad byte in request (printable ASCII only)");
		return false;
	}
	for (i = 0; i < ws.n; i++) {
		line[ws.w[i].off + ws.w[i].len] = '\0';
		argv[i] = line + ws.w[i].off;
	}
	argv[ws.n] = NULL;
	argc = (int)ws.n;
	if (argc == 0)
		ctl_error(cn, "empty request (try help)");
	else if ((cmd = ctl_find(cn->ctl, argc, argv, &nverbs)) == NULL)
		ctl_error(cn, "unknown command: %s%s%s (try help)",
		    log_esc(argv[0], strlen(argv[0]), 64), argc > 1 ? " " : "",
		    argc > 1 ? log_esc(argv[1], strlen(argv[1]), 64) : "");
	else {
		cn->cmd = cmd;
		rc = cmd->fn(cmd->arg, cn, argc - nverbs, argv + nverbs);
		if (rc == CTL_DEFERRED && cn->id != 0)
			return true;
		if (rc == -1)
			ctl_error(cn, "command failed");
		ctl_log_done(cn);
	}
	return false;
}

static void	ctl_conn_read(struct bufferevent *, void *);
static void	ctl_conn_drained(struct bufferevent *, void *);
static void	ctl_conn_event(struct bufferevent *, short, void *);

/* Queue the status line; the connection closes once it is written. */
static void
ctl_conn_finish(struct ctl_conn *cn)
{
	struct evbuffer	*out = bufferevent_get_output(cn->bev);

	if (cn->failed)
		evbuffer_add_printf(out, "error: %s\n", cn->errmsg);
	else
		evbuffer_add(out, "ok\n", 3);
	cn->done = true;
	bufferevent_disable(cn->bev, EV_READ);
	bufferevent_setcb(cn->bev, NULL, ctl_conn_drained, ctl_conn_event,
	    cn);
	bufferevent_enable(cn->bev, EV_WRITE);
}

static void
ctl_conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn		*cn = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	char			 line[CTL_LINE_MAX + 1];
	size_t			 n, eollen;

	/* the cap comes before any parsing (STYLE R8) */
	eol = evbuffer_search_eol(in, NULL, &eollen, EVBUFFER_EOL_LF);
	if (eol.pos == -1) {
		if (evbuffer_get_length(in) < CTL_LINE_MAX)
			return;			/* wait for the rest */
		ctl_error(cn, "line too long (at most %d bytes)",
		    CTL_LINE_MAX);
	} else if ((size_t)eol.pos + eollen > CTL_LINE_MAX) {
		ctl_error(cn, "line too long (at most %d bytes)",
		    CTL_LINE_MAX);
	} else {
		n = (size_t)eol.pos;
		evbuffer_remove(in, line, n + eollen);
		line[n] = '\0';
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = '\0';
		if (ctl_dispatch(cn, line, n)) {
			/* no more input; the answer's own time limit */
			struct timeval	tv = { CTL_DEFER_MS / 1000, 0 };

			bufferevent_disable(bev, EV_READ);
			bufferevent_set_timeouts(bev, &tv, &tv);
			return;
		}
	}
	ctl_conn_finish(cn);
}

static void
ctl_conn_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	ctl_conn_free(arg);
}

static void
ctl_conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	/* EOF, error or idle timeout: in every case we are done */
	ctl_conn_free(arg);
}

static void
ctl_conn_free(struct ctl_conn *cn)
{
	struct ctl	*c = cn->ctl;

	if (cn->prev != NULL)
		cn->prev->next = cn->next;
	else
		c->conns = cn->next;
	if (cn->next != NULL)
		cn->next->prev = cn->prev;
	c->nconns--;
	bufferevent_free(cn->bev);
	free(cn);
}

static void
ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	static const char	 busy[] = "error: too many control "
				    "connections\n";
	struct ctl		*c = arg;
	struct ctl_conn		*cn;
	struct timeval		 tv = { c->idle_ms / 1000,
				    (c->idle_ms % 1000) * 1000 };
	struct ucred		 uc;
	socklen_t		 ul = sizeof(uc);

	(void)l;
	(void)sa;
	(void)salen;
	if (c->nconns >= CTL_CONN_MAX ||
	    (cn = calloc(1, sizeof(*cn))) == NULL) {
		c->refused++;
		(void)send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL |
		    MSG_DONTWAIT);
		evutil_closesocket(fd);
		return;
	}
	cn->ctl = c;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0 &&
	    ul == sizeof(uc)) {
		cn->cred = true;
		cn->uid = uc.uid;
		cn->pid = uc.pid;
	}
	if ((cn->bev = bufferevent_socket_new(c->base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(cn);
		return;
	}
	if ((cn->next = c->conns) != NULL)
		cn->next->prev = cn;
	c->conns = cn;
	c->nconns++;
	bufferevent_setcb(cn->bev, ctl_conn_read, NULL, ctl_conn_event, cn);
	bufferevent_set_timeouts(cn->bev, &tv, &tv);
	bufferevent_enable(cn->bev, EV_READ);
}
