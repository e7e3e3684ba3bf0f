/*
 * ctl_client.c - the operator's side: ctl_call() (one request over
 * SPOOL/control.sock) and the `mxgate queue|harvest|stats` subcommands,
 * which work on the spool directly (queue_admin.h) or ask the gateway.
 * Owns: the subcommand table, exit statuses (0 ok, 1 error, 2 usage).
 * Never: opens the spool with queue_open(), or trusts the server's bytes
 * (lines are bounded; the last line before EOF is the status).
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../conf/conf.h"
#include "../lib/cidr.h"
#include "../lib/log.h"
#include "../queue/queue_admin.h"
#include "ctl.h"

/* A reply line may have been escaped to 4 bytes per byte, then marked. */
#define CTL_CLIENT_LINE_MAX	(4 * CTL_REPLY_LINE_MAX + 64)
#define CTL_CLI_WORDS_MAX	4	/* positional words of a subcommand */

struct ctl_rd {
	char	buf[CTL_CLIENT_LINE_MAX + 1];
	size_t	len;
	char	last[CTL_CLIENT_LINE_MAX + 1];	/* held back: the status? */
	bool	has_last;
};

static int	ctl_call_fail(char *, size_t, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

/* Fill err, set errno to e, return -1. */
static int
ctl_call_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	errno = e;
	return -1;
}

static int
ctl_connect(const char *spool, char *err, size_t errlen)
{
	struct timeval		tv = { CTL_CALL_TIMEOUT_MS / 1000,
				    (CTL_CALL_TIMEOUT_MS % 1000) * 1000 };
	struct sockaddr_un	sun;
	int			dfd, fd, e;

	if ((dfd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		e = errno;
		snprintf(err, errlen, "no running gateway (cannot connect to "
		    "%s/%s: %s)", spool, CTL_SOCKET_NAME, strerror(e));
		errno = e;
		return -1;
	}
	ctl_socket_addr(spool, dfd, &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		e = errno;
		close(dfd);
		return ctl_call_fail(err, errlen, e, "socket: %s",
		    strerror(e));
	}
	/* SO_SNDTIMEO also bounds a connect() to a full backlog */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		e = errno;
		close(fd);
		close(dfd);
		if (e == ENOENT || e == ECONNREFUSED)
			snprintf(err, errlen, "no running gateway (cannot "
			    "connect to %s/%s)", spool, CTL_SOCKET_NAME);
		else
			snprintf(err, errlen, "cannot connect to %s/%s: %s",
			    spool, CTL_SOCKET_NAME, strerror(e));
		errno = e;
		return -1;
	}
	close(dfd);
	return fd;
}

static int
ctl_send_line(int fd, const char *line, char *err, size_t errlen)
{
	char	buf[CTL_LINE_MAX];
	size_t	n = strlen(line), off = 0;
	ssize_t	r;

	memcpy(buf, line, n);
	buf[n++] = '\n';
	while (off < n) {
		r = send(fd, buf + off, n - off, MSG_NOSIGNAL);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return ctl_call_fail(err, errlen, errno, "send: %s",
			    strerror(errno));
		off += (size_t)r;
	}
	return 0;
}

/* Every complete line but the last goes to out; the last is kept. */
static int
ctl_rd_lines(struct ctl_rd *rd, FILE *out)
{
	char	*nl;
	size_t	 n;

	while ((nl = memchr(rd->buf, '\n', rd->len)) != NULL) {
		if (rd->has_last && out != NULL)
			fprintf(out, "%s\n", rd->last);
		n = (size_t)(nl - rd->buf);
		memcpy(rd->last, rd->buf, n);
		rd->last[n] = '\0';
		rd->has_last = true;
		memmove(rd->buf, nl + 1, rd->len - n - 1);
		rd->len -= n + 1;
	}
	return rd->len < CTL_CLIENT_LINE_MAX ? 0 : -1;
}

static int
ctl_read_reply(int fd, FILE *out, char *err, size_t errlen)
{
	struct ctl_rd	*rd;
	ssize_t		 r;
	int		 rc;

	if ((rd = calloc(1, sizeof(*rd))) == NULL)
		return ctl_call_fail(err, errlen, ENOMEM, "%s",
		    "out of memory");
	for (;;) {
		r = recv(fd, rd->buf + rd->len, CTL_CLIENT_LINE_MAX - rd->len,
		    0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		rd->len += (size_t)r;
		if (ctl_rd_lines(rd, out) == -1) {
			r = -2;
			break;
		}
	}
	if (r == -1)
		rc = ctl_call_fail(err, errlen, errno, "reading the reply: %s",
		    errno == EAGAIN ? "timed out" : strerror(errno));
	else if (r == -2 || rd->len > 0 || !rd->has_last)
		rc = ctl_call_fail(err, errlen, EPROTO, "%s", r == -2 ?
		    "reply line too long" : "the gateway closed the "
		    "connection without a status line");
	else if (strcmp(rd->last, "ok") == 0)
		rc = 0;
	else if (strncmp(rd->last, "error: ", 7) == 0)
		rc = ctl_call_fail(err, errlen, EPROTO, "%s", rd->last + 7);
	else
		rc = ctl_call_fail(err, errlen, EPROTO, "bad status line: %s",
		    log_text(rd->last, strlen(rd->last), 80));
	free(rd);
	return rc;
}

int
ctl_call(const char *spool, const char *line, FILE *out, char *err,
    size_t errlen)
{
	return ctl_call_wait(spool, line, out, err, errlen,
	    CTL_CALL_TIMEOUT_MS);
}

int
ctl_call_wait(const char *spool, const char *line, FILE *out, char *err,
    size_t errlen, unsigned timeout_ms)
{
	struct timeval	tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	int		fd, rc;

	if (strlen(line) + 1 > CTL_LINE_MAX || strchr(line, '\n') != NULL)
		return ctl_call_fail(err, errlen, EINVAL, "%s",
		    "request too long or not one line");
	if ((fd = ctl_connect(spool, err, errlen)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	rc = ctl_send_line(fd, line, err, errlen);
	if (rc == 0)
		rc = ctl_read_reply(fd, out, err, errlen);
	close(fd);
	if (out != NULL)
		fflush(out);
	return rc;
}

/* ------------------------------------------------------------ the CLI */

struct cli_cmd {
	const char	*verb1;
	const char	*verb2;		/* NULL: one word */
	const char	*args;		/* for usage: "ID", or "" */
	int		 nargs;
	int		(*run)(const struct cli_cmd *, const char *spool,
			    char **args);
	const char	*help;
};

static int	cli_list(const struct cli_cmd *, const char *, char **);
static int	cli_show(const struct cli_cmd *, const char *, char **);
static int	cli_move(const struct cli_cmd *, const char *, char **);
static int	cli_release(const struct cli_cmd *, const char *, char **);
static int	cli_call(const struct cli_cmd *, const char *, char **);
static int	cli_unmark(const struct cli_cmd *, const char *, char **);
static int	cli_reload(const struct cli_cmd *, const char *, char **);
static int	cli_stop(const struct cli_cmd *, const char *, char **);

static const struct cli_cmd cli_cmds[] = {
	/* verbs                 args         n  run          help */
	{ "queue", "list",	"",		0, cli_list,
	    "list queued and held messages" },
	{ "queue", "show",	"ID",		1, cli_show,
	    "envelope and header of a message" },
	{ "queue", "delete",	"ID",		1, cli_move,
	    "remove a message" },
	{ "queue", "hold",	"ID",		1, cli_move,
	    "keep a message from delivery" },
	{ "queue", "release",	"ID",		1, cli_release,
	    "deliver a held message again" },
	{ "queue", "flush",	"",		0, cli_call,
	    "retry every deferred message now" },
	{ "harvest", "list",	"",		0, cli_call,
	    "clients the harvest guard has marked" },
	{ "harvest", "unmark",	"ADDR|CIDR",	1, cli_unmark,
	    "lift the guard's marks on a client" },
	{ "stats", NULL,	"",		0, cli_call,
	    "counters of the running gateway" },
	{ "reload", NULL,	"",		0, cli_reload,
	    "reload config and users; say what changed" },
	{ "stop", NULL,		"",		0, cli_stop,
	    "stop; wait until the process is gone" },
};

#define CLI_NCMDS	(sizeof(cli_cmds) / sizeof(cli_cmds[0]))

static void
cli_usage_one(FILE *f, const struct cli_cmd *c, bool first)
{
	char	words[64];

	snprintf(words, sizeof(words), "%s%s%s%s%s [-c FILE]", c->verb1,
	    c->verb2 ? " " : "", c->verb2 ? c->verb2 : "",
	    c->args[0] ? " " : "", c->args);
	fprintf(f, "%s mxgate %-34s %s\n", first ? "usage:" : "      ",
	    words, c->help);
}

void
ctl_cli_usage(FILE *f)
{
	size_t	i;

	for (i = 0; i < CLI_NCMDS; i++)
		cli_usage_one(f, &cli_cmds[i], false);
}

bool
ctl_cli_handles(const char *word)
{
	size_t	i;

	for (i = 0; i < CLI_NCMDS; i++)
		if (strcmp(cli_cmds[i].verb1, word) == 0)
			return true;
	return false;
}

static int
cli_error(const char *msg)
{
	fprintf(stderr, "mxgate: %s\n", msg);
	return 1;
}

static int
cli_list(const struct cli_cmd *c, const char *spool, char **args)
{
	char	err[512];

	(void)c;
	(void)args;
	if (queue_admin_list(spool, time(NULL), stdout, err, sizeof(err)) !=
	    QUEUE_ADMIN_OK)
		return cli_error(err);
	return 0;
}

static int
cli_show(const struct cli_cmd *c, const char *spool, char **args)
{
	char	err[512];

	(void)c;
	if (queue_admin_show(spool, args[0], time(NULL), stdout, err,
	    sizeof(err)) != QUEUE_ADMIN_OK)
		return cli_error(err);
	return 0;
}

/*
 * Tell a running gateway what was done (verb "held", "deleted" or
 * "released"): it checks the spool, updates its schedule and logs who
 * asked.  No gateway: nothing to tell (0).
 */
static int
cli_tell(const char *spool, const char *verb, const char *qid)
{
	char	line[64], err[CTL_ERROR_MAX + 256], msg[CTL_ERROR_MAX + 400];

	snprintf(line, sizeof(line), "queue %s %s", verb, qid);
	if (ctl_call(spool, line, stdout, err, sizeof(err)) == 0)
		return 0;
	if (errno == ENOENT || errno == ECONNREFUSED) {
		if (strcmp(verb, "released") == 0)
			printf("no running gateway: it will be delivered when "
			    "one starts\n");
		return 0;
	}
	snprintf(msg, sizeof(msg), "%s %s, but the gateway did not take "
	    "note: %s", verb, qid, err);
	return cli_error(msg);
}

/* delete and hold: the same lock, then unlink or rename. */
static int
cli_move(const struct cli_cmd *c, const char *spool, char **args)
{
	enum queue_admin_rc	rc;
	char			err[512];
	bool			del = strcmp(c->verb2, "delete") == 0;

	if (del)
		rc = queue_admin_delete(spool, args[0],
		    QUEUE_ADMIN_LOCK_WAIT_MS, err, sizeof(err));
	else
		rc = queue_admin_hold(spool, args[0],
		    QUEUE_ADMIN_LOCK_WAIT_MS, err, sizeof(err));
	if (rc != QUEUE_ADMIN_OK)
		return cli_error(err);
	printf("%s %s\n", del ? "deleted" : "held", args[0]);
	fflush(stdout);
	return cli_tell(spool, del ? "deleted" : "held", args[0]);
}

static int
cli_release(const struct cli_cmd *c, const char *spool, char **args)
{
	char	err[512];

	(void)c;
	if (queue_admin_release(spool, args[0], QUEUE_ADMIN_LOCK_WAIT_MS, err,
	    sizeof(err)) != QUEUE_ADMIN_OK)
		return cli_error(err);
	printf("released %s\n", args[0]);
	fflush(stdout);
	return cli_tell(spool, "released", args[0]);
}

/* The command line is the words themselves: "queue flush", "stats". */
static int
cli_call(const struct cli_cmd *c, const char *spool, char **args)
{
	char	line[CTL_LINE_MAX], err[CTL_ERROR_MAX + 256];

	snprintf(line, sizeof(line), "%s%s%s%s%s", c->verb1,
	    c->verb2 ? " " : "", c->verb2 ? c->verb2 : "",
	    c->nargs > 0 ? " " : "", c->nargs > 0 ? args[0] : "");
	if (ctl_call(spool, line, stdout, err, sizeof(err)) == -1)
		return cli_error(err);
	return 0;
}

static int
cli_unmark(const struct cli_cmd *c, const char *spool, char **args)
{
	struct cidr	net;
	char		msg[256];

	if (strlen(args[0]) > 64 ||
	    cidr_parse(args[0], strlen(args[0]), &net) == -1) {
		snprintf(msg, sizeof(msg), "not an address or network: %s",
		    log_esc(args[0], strlen(args[0]), 64));
		return cli_error(msg);
	}
	return cli_call(c, spool, args);
}

/* The gateway reads the file again off its loop: a large users file
 * takes a while, so the answer may be long in coming. */
static int
cli_reload(const struct cli_cmd *c, const char *spool, char **args)
{
	char	err[CTL_ERROR_MAX + 256];

	(void)c;
	(void)args;
	if (ctl_call_wait(spool, "reload", stdout, err, sizeof(err),
	    CTL_RELOAD_WAIT_MS) == -1)
		return cli_error(err);
	return 0;
}

/* The pid from the answer's "pid N" line. */
static pid_t
cli_stop_pid(const char *text)
{
	const char	*p = strstr(text, "pid ");
	long		 v = 0;

	if (p == NULL)
		return 0;
	for (p += 4; *p >= '0' && *p <= '9' && v < 1L << 30; p++)
		v = v * 10 + (*p - '0');
	return (pid_t)v;
}

/*
 * Ask the gateway to stop, then wait, bounded, for its process to be
 * gone: once this returns 0 the spool and its ports are free.
 */
static int
cli_stop(const struct cli_cmd *c, const char *spool, char **args)
{
	char		 err[CTL_ERROR_MAX + 256], *out = NULL;
	size_t		 outlen = 0;
	FILE		*mem;
	pid_t		 pid;
	unsigned	 waited;
	int		 rc;

	(void)c;
	(void)args;
	if ((mem = open_memstream(&out, &outlen)) == NULL)
		return cli_error("out of memory");
	rc = ctl_call(spool, "stop", mem, err, sizeof(err));
	fclose(mem);
	if (rc == -1) {
		free(out);
		return cli_error(err);
	}
	fputs(out, stdout);
	pid = cli_stop_pid(out);
	free(out);
	for (waited = 0; pid > 0 && kill(pid, 0) == 0; waited += 50) {
		if (waited >= CTL_STOP_WAIT_MS)
			return cli_error("the gateway has not exited yet");
		usleep(50000);
	}
	printf("stopped\n");
	return 0;
}

/* Errors as check-config prints them: FILE:LINE: message. */
static void
cli_conf_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg;
	if (line > 0)
		fprintf(stderr, "%s:%u: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static const struct cli_cmd *
cli_find(char **words, int n)
{
	const struct cli_cmd	*c;
	size_t			 i;
	int			 nv;

	for (i = 0; i < CLI_NCMDS; i++) {
		c = &cli_cmds[i];
		nv = c->verb2 ? 2 : 1;
		if (n == nv + c->nargs && strcmp(c->verb1, words[0]) == 0 &&
		    (c->verb2 == NULL || strcmp(c->verb2, words[1]) == 0))
			return c;
	}
	return NULL;
}

static int
cli_usage_for(const char *verb1)
{
	size_t	i;
	bool	first = true;

	for (i = 0; i < CLI_NCMDS; i++)
		if (strcmp(cli_cmds[i].verb1, verb1) == 0) {
			cli_usage_one(stderr, &cli_cmds[i], first);
			first = false;
		}
	return 2;
}

int
ctl_cli_main(int argc, char **argv)
{
	const struct cli_cmd	*c;
	struct config		*conf;
	const char		*file = NULL;
	char			*words[CTL_CLI_WORDS_MAX];
	char			 qid[ID_STRLEN + 1];
	int			 i, n = 0, rc;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 == argc || file != NULL)
				return cli_usage_for(argv[0]);
			file = argv[++i];
		} else if (n == CTL_CLI_WORDS_MAX)
			return cli_usage_for(argv[0]);
		else
			words[n++] = argv[i];
	}
	if (n == 0 || (c = cli_find(words, n)) == NULL)
		return cli_usage_for(argv[0]);
	if (file == NULL)
		file = conf_default_path();
	/* queue ids in any case; a word that is no id is refused later */
	if (strcmp(c->args, "ID") == 0 &&
	    queue_admin_canon_id(words[n - 1], qid) == 0)
		words[n - 1] = qid;
	if ((conf = conf_load(file, cli_conf_err, NULL)) == NULL) {
		if (c->run == cli_reload)
			fprintf(stderr, "mxgate: reload: not asked for, the "
			    "config has errors (above); the running gateway "
			    "keeps its configuration\n");
		return 1;
	}
	rc = c->run(c, conf->spool, words + (c->verb2 ? 2 : 1));
	conf_unref(conf);
	return rc;
}
