/*
 * test_ctl.c - the control socket: a real ctl_open() on an event loop in
 * this process, clients (ctl_call() or raw sockets) in a forked child
 * while the loop runs.  Covers: the request/reply table (words, errors,
 * escaping, "ok" look-alikes, big output, help, stats providers), the
 * line cap at 1024 bytes, CRLF and split lines, the idle timeout, the
 * 64-connection cap, stale/live/foreign socket files, mode 0600, removal
 * at close, a spool path too long for sun_path, registration refusals,
 * ctl_call() with no server, and the pure line parser's case table.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "ctl/ctl.h"
#include "lib/log.h"

struct fx {
	char			 tmp[64];
	char			 spool[512];
	struct event_base	*base;
	struct ctl		*ctl;
};

typedef void	client_fn(struct fx *, const void *arg, FILE *res);

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* ---------------------------------------------------------- handlers */

static int
h_echo(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	int	i;

	(void)arg;
	for (i = 0; i < argc; i++)
		ctl_printf(cn, "%s", argv[i]);
	return 0;
}

static int
h_fail(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	(void)arg;
	ctl_printf(cn, "partial");
	ctl_error(cn, "it broke: %s", argc > 0 ? argv[0] : "");
	ctl_error(cn, "second error is ignored");
	return -1;
}

static int
h_silent_fail(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	(void)arg;
	(void)cn;
	(void)argc;
	(void)argv;
	return -1;
}

static int
h_lookalike(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	(void)arg;
	(void)argc;
	(void)argv;
	ctl_printf(cn, "ok");
	ctl_printf(cn, "error: fake");
	return 0;
}

static int
h_ctrl(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	(void)arg;
	(void)argc;
	(void)argv;
	ctl_printf(cn, "a\nb\x01%c\xff", 'c');
	return 0;
}

#define BIG_LINES	20000

static int
h_big(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	int	i;

	(void)arg;
	(void)argc;
	(void)argv;
	for (i = 0; i < BIG_LINES; i++)
		ctl_printf(cn, "line %d of a long answer", i);
	return 0;
}

static int
h_long(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	char	s[CTL_REPLY_LINE_MAX + 101];

	(void)arg;
	(void)argc;
	(void)argv;
	memset(s, 'x', sizeof(s) - 1);
	s[sizeof(s) - 1] = '\0';
	ctl_printf(cn, "%s", s);
	return 0;
}

static int
h_stats(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	ctl_printf(cn, "test_counter %d", *(int *)arg);
	return 0;
}

static int	stat_value = 7;

/* ctl_log: fields for the request's one log line; a flood is cut. */
static int
h_logged(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	int	i;

	(void)arg;
	if (argc == 1 && strcmp(argv[0], "flood") == 0) {
		for (i = 0; i < 1000; i++)
			ctl_log(cn, " f%d=%s", i, "xxxxxxxxxxxxxxxx");
		return 0;
	}
	for (i = 0; i < argc; i++)
		ctl_log(cn, " qid=%s", argv[i]);
	return 0;
}

static void
fx_register(struct ctl *c)
{
	assert_int_equal(ctl_register(c, "echo", NULL, h_echo, NULL,
	    "print the words"), 0);
	assert_int_equal(ctl_register(c, "test", "fail", h_fail, NULL,
	    "fail"), 0);
	assert_int_equal(ctl_register(c, "test", "silent-fail",
	    h_silent_fail, NULL, "fail silently"), 0);
	assert_int_equal(ctl_register(c, "test", "ok-lines", h_lookalike,
	    NULL, "print status look-alikes"), 0);
	assert_int_equal(ctl_register(c, "test", "ctrl", h_ctrl, NULL,
	    "control bytes"), 0);
	assert_int_equal(ctl_register(c, "test", "big", h_big, NULL, "big"),
	    0);
	assert_int_equal(ctl_register(c, "test", "long", h_long, NULL,
	    "long"), 0);
	assert_int_equal(ctl_register(c, "stats", NULL, h_stats, &stat_value,
	    NULL), 0);
	assert_int_equal(ctl_register(c, "test", "logged", h_logged, NULL,
	    "log fields"), 0);
}

static int
fx_setup(void **state)
{
	struct fx	*fx = calloc(1, sizeof(*fx));
	char		 err[512];

	assert_non_null(fx);
	signal(SIGPIPE, SIG_IGN);	/* as the server does */
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/mxctl.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->spool, sizeof(fx->spool), "%s", fx->tmp);
	assert_non_null(fx->base = event_base_new());
	if ((fx->ctl = ctl_open(fx->base, fx->spool, err,
	    sizeof(err))) == NULL)
		fail_msg("ctl_open: %s", err);
	fx_register(fx->ctl);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*fx = *state;

	ctl_close(fx->ctl);
	event_base_free(fx->base);
	nftw(fx->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ------------------------------------------------------ client runner */

struct pipe_rd {
	struct event_base	*base;
	char			*buf;
	size_t			 len;
};

static void
pipe_read(evutil_socket_t fd, short what, void *arg)
{
	struct pipe_rd	*rd = arg;
	char		 tmp[65536];
	ssize_t		 r;

	(void)what;
	r = read(fd, tmp, sizeof(tmp));
	if (r <= 0) {
		event_base_loopbreak(rd->base);
		return;
	}
	assert_non_null(rd->buf = realloc(rd->buf, rd->len + (size_t)r + 1));
	memcpy(rd->buf + rd->len, tmp, (size_t)r);
	rd->len += (size_t)r;
	rd->buf[rd->len] = '\0';
}

/*
 * Run fn in a child while this process runs the loop; returns what the
 * child wrote (malloc'ed, NUL-terminated).
 */
static char *
run_client(struct fx *fx, client_fn *fn, const void *arg)
{
	struct pipe_rd	 rd = { fx->base, NULL, 0 };
	struct timeval	 limit = { 20, 0 };
	struct event	*ev;
	int		 p[2], status;
	pid_t		 pid;
	FILE		*res;

	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0) {
		close(p[0]);
		if ((res = fdopen(p[1], "w")) == NULL)
			_exit(3);
		fn(fx, arg, res);
		fclose(res);
		_exit(0);
	}
	close(p[1]);
	ev = event_new(fx->base, p[0], EV_READ | EV_PERSIST, pipe_read, &rd);
	assert_non_null(ev);
	event_add(ev, NULL);
	event_base_loopexit(fx->base, &limit);
	event_base_dispatch(fx->base);
	event_free(ev);
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (rd.buf == NULL)
		rd.buf = strdup("");
	return rd.buf;
}

/* The child: one ctl_call(), reported as "rc errno\nerr\n--\nout". */
static void
call_client(struct fx *fx, const void *arg, FILE *res)
{
	char	*out = NULL, err[1024] = "";
	size_t	 n = 0;
	FILE	*f = open_memstream(&out, &n);
	int	 rc, e;

	rc = ctl_call(fx->spool, arg, f, err, sizeof(err));
	e = rc == 0 ? 0 : errno;
	fclose(f);
	fprintf(res, "%d %d\n%s\n--\n%s", rc, e, err, out);
	free(out);
}

static char *
call(struct fx *fx, const char *line)
{
	return run_client(fx, call_client, line);
}

/* ------------------------------------------------------------- tests */

#define W16	"echo 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15"	/* 16 words */

static const struct {
	const char	*line;
	int		 rc;
	int		 err_no;	/* on -1 */
	const char	*err;
	const char	*out;
} calls[] = {
	{ "echo a b c", 0, 0, "", "a\nb\nc\n" },
	{ "echo", 0, 0, "", "" },
	{ "  echo \t x  ", 0, 0, "", "x\n" },
	{ "test fail now", -1, EPROTO, "it broke: now", "partial\n" },
	{ "test silent-fail", -1, EPROTO, "command failed", "" },
	{ "test ok-lines", 0, 0, "", "ok\nerror: fake\n" },
	{ "test ctrl", 0, 0, "", "a\\x0ab\\x01c\\xff\n" },
	{ "nosuch", -1, EPROTO, "unknown command: nosuch (try help)", "" },
	{ "test nosuch x", -1, EPROTO,
	    "unknown command: test nosuch (try help)", "" },
	{ "Echo", -1, EPROTO, "unknown command: Echo (try help)", "" },
	{ "", -1, EPROTO, "empty request (try help)", "" },
	{ "   ", -1, EPROTO, "empty request (try help)", "" },
	{ "echo \x01", -1, EPROTO,
	    "bad byte in request (printable ASCII only)", "" },
	{ "echo caf\xc3\xa9", -1, EPROTO,
	    "bad byte in request (printable ASCII only)", "" },
	{ W16 " 16", -1, EPROTO, "too many words (at most 16)", "" },
	{ W16, 0, 0, "", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n"
	    "14\n15\n" },
	{ "echo two words", 0, 0, "", "two\nwords\n" },
};

static void
test_calls(void **state)
{
	struct fx	*fx = *state;
	char		 want[1024], *got;
	size_t		 i;

	for (i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		got = call(fx, calls[i].line);
		snprintf(want, sizeof(want), "%d %d\n%s\n--\n%s", calls[i].rc,
		    calls[i].err_no, calls[i].err, calls[i].out);
		if (strcmp(got, want) != 0)
			fail_msg("case %zu (%s): got\n%s\nwant\n%s", i,
			    calls[i].line, got, want);
		free(got);
	}
}

/* The child: one ctl_call(), then its own pid. */
static void
pid_client(struct fx *fx, const void *arg, FILE *res)
{
	char	err[1024];

	(void)ctl_call(fx->spool, arg, NULL, err, sizeof(err));
	fprintf(res, "%d", (int)getpid());
}

/* One control line per request: who asked (SO_PEERCRED), what. */
static void
test_log_line(void **state)
{
	struct fx	*fx = *state;
	char		*pid, *text, want[128];
	FILE		*f;
	long		 n;
	int		 saved;

	log_set_level(LOG_LVL_INFO);
	assert_non_null(f = tmpfile());
	assert_true((saved = dup(STDERR_FILENO)) >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	pid = run_client(fx, pid_client, "test logged AAAA BBBB");
	free(run_client(fx, pid_client, "test logged flood"));
	free(run_client(fx, pid_client, "test fail x"));
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	log_set_level(LOG_LVL_WARNING);
	assert_true((n = ftell(f)) > 0);
	assert_non_null(text = calloc(1, (size_t)n + 1));
	rewind(f);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	snprintf(want, sizeof(want), "event=control cmd=test_logged uid=%u "
	    "pid=%s qid=AAAA qid=BBBB result=ok\n", (unsigned)getuid(), pid);
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, " log_cut=yes result=ok\n"));
	assert_non_null(strstr(text, "cmd=test_fail uid="));
	assert_non_null(strstr(text, " result=error reason=\"it broke: "
	    "x\"\n"));
	free(pid);
	free(text);
}

static void
test_help_stats(void **state)
{
	struct fx	*fx = *state;
	char		*got;

	got = call(fx, "help");
	assert_true(strncmp(got, "0 0\n\n--\n", 8) == 0);
	assert_non_null(strstr(got, "\nhelp                 list the "
	    "commands\n"));
	assert_non_null(strstr(got, "\necho                 print the "
	    "words\n"));
	assert_non_null(strstr(got, "\ntest silent-fail     fail "
	    "silently\n"));
	free(got);
	got = call(fx, "stats");
	assert_true(strncmp(got, "0 0\n\n--\nuptime_seconds ", 23) == 0);
	/* help was the first request; this is the second */
	assert_non_null(strstr(got, "\ncontrol_requests_total 2\n"));
	assert_non_null(strstr(got, "\ncontrol_connections 1\n"));
	assert_non_null(strstr(got, "\ncontrol_refused_total 0\n"));
	assert_non_null(strstr(got, "\ntest_counter 7\n"));
	free(got);
}

static void
test_big_and_long(void **state)
{
	struct fx	*fx = *state;
	char		*got, *p, want[64];
	size_t		 n = 0;

	got = call(fx, "test big");
	assert_true(strncmp(got, "0 0\n\n--\nline 0 of a long answer\n",
	    32) == 0);
	for (p = got; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	assert_int_equal(n, 3 + BIG_LINES);
	snprintf(want, sizeof(want), "\nline %d of a long answer\n",
	    BIG_LINES - 1);
	assert_non_null(strstr(got, want));
	free(got);
	got = call(fx, "test long");
	assert_non_null(strstr(got, "xxx...[100 bytes cut]\n"));
	assert_int_equal(strlen(got), 8 + CTL_REPLY_LINE_MAX +
	    strlen("...[100 bytes cut]\n"));
	free(got);
}

/* A raw exchange: send the bytes (two parts, a pause between), read all. */
struct raw {
	const char	*a;
	size_t		 alen;
	const char	*b;		/* NULL: none */
	size_t		 blen;
};

static void
raw_client(struct fx *fx, const void *arg, FILE *res)
{
	const struct raw	*r = arg;
	struct sockaddr_un	 sun;
	struct timespec		 pause = { 0, 50 * 1000000L };
	char			 buf[4096];
	ssize_t			 n;
	int			 fd, dfd;

	dfd = open(fx->spool, O_RDONLY | O_DIRECTORY);
	ctl_socket_addr(fx->spool, dfd, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(res, "connect: %s", strerror(errno));
		return;
	}
	close(dfd);
	if (r->alen > 0)
		(void)send(fd, r->a, r->alen, MSG_NOSIGNAL);
	if (r->b != NULL) {
		nanosleep(&pause, NULL);
		(void)send(fd, r->b, r->blen, MSG_NOSIGNAL);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, res);
	fprintf(res, "<EOF>");
	close(fd);
}

static void
test_line_limit(void **state)
{
	struct fx	*fx = *state;
	char		 line[CTL_LINE_MAX + 2], *got;
	struct raw	 r;

	/* exactly CTL_LINE_MAX bytes with the LF: served */
	memset(line, 'x', sizeof(line));
	memcpy(line, "echo ", 5);
	line[CTL_LINE_MAX - 1] = '\n';
	r = (struct raw){ line, CTL_LINE_MAX, NULL, 0 };
	got = run_client(fx, raw_client, &r);
	assert_int_equal(strlen(got), CTL_LINE_MAX - 5 + 3 + 5);
	assert_string_equal(got + CTL_LINE_MAX - 5, "ok\n<EOF>");
	free(got);
	/* one more: refused, whether the LF came or not */
	line[CTL_LINE_MAX - 1] = 'x';
	line[CTL_LINE_MAX] = '\n';
	r = (struct raw){ line, CTL_LINE_MAX + 1, NULL, 0 };
	got = run_client(fx, raw_client, &r);
	assert_string_equal(got, "error: line too long (at most 1024 "
	    "bytes)\n<EOF>");
	free(got);
	r = (struct raw){ line, CTL_LINE_MAX, NULL, 0 };
	got = run_client(fx, raw_client, &r);
	assert_string_equal(got, "error: line too long (at most 1024 "
	    "bytes)\n<EOF>");
	free(got);
}

static const struct {
	struct raw	 r;
	const char	*want;
} raws[] = {
	{ { "echo a\r\n", 8, NULL, 0 }, "a\nok\n<EOF>" },
	{ { "ec", 2, "ho z\n", 5 }, "z\nok\n<EOF>" },
	{ { "echo 1\necho 2\n", 14, NULL, 0 }, "1\nok\n<EOF>" },
	{ { "echo \0x\n", 8, NULL, 0 },
	    "error: bad byte in request (printable ASCII only)\n<EOF>" },
	{ { "", 0, "", 0 }, "<EOF>" },		/* idle: closed, no reply */
};

static void
test_raw(void **state)
{
	struct fx	*fx = *state;
	char		*got;
	size_t		 i;

	ctl_set_idle_timeout(fx->ctl, 300);
	for (i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
		got = run_client(fx, raw_client, &raws[i].r);
		if (strcmp(got, raws[i].want) != 0)
			fail_msg("case %zu: got \"%s\"", i, got);
		free(got);
	}
}

/* 64 open connections; the 65th is told and closed; then room again. */
static void
limit_client(struct fx *fx, const void *arg, FILE *res)
{
	struct sockaddr_un	 sun;
	struct timespec		 pause = { 0, 20 * 1000000L };
	int			 fds[CTL_CONN_MAX + 1], dfd, i;
	char			 buf[256];
	ssize_t			 n;

	(void)arg;
	dfd = open(fx->spool, O_RDONLY | O_DIRECTORY);
	ctl_socket_addr(fx->spool, dfd, &sun);
	for (i = 0; i <= CTL_CONN_MAX; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fds[i], (struct sockaddr *)&sun,
		    sizeof(sun)) == -1) {
			fprintf(res, "connect %d: %s\n", i, strerror(errno));
			return;
		}
		nanosleep(&pause, NULL);	/* accepted in this order */
	}
	n = read(fds[CTL_CONN_MAX], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	fprintf(res, "65th: %s", buf);
	close(fds[0]);
	for (i = 0; i < 50; i++) {
		char	err[256];

		nanosleep(&pause, NULL);
		if (ctl_call(fx->spool, "echo again", res, err,
		    sizeof(err)) == 0)
			break;
	}
	for (i = 1; i <= CTL_CONN_MAX; i++)
		close(fds[i]);
	close(dfd);
}

static void
test_conn_limit(void **state)
{
	struct fx	*fx = *state;
	char		*got;

	got = run_client(fx, limit_client, NULL);
	assert_string_equal(got, "65th: error: too many control "
	    "connections\nagain\n");
	free(got);
	got = call(fx, "stats");
	assert_non_null(strstr(got, "\ncontrol_refused_total 1\n"));
	free(got);
}

static void
test_socket_file(void **state)
{
	struct fx		*fx = *state;
	struct stat		 st;
	struct sockaddr_un	 sun;
	struct event_base	*b2;
	char			 path[600], err[512];
	int			 fd, dfd;

	snprintf(path, sizeof(path), "%s/%s", fx->spool, CTL_SOCKET_NAME);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* a second server on a live socket: refused; the first keeps it */
	assert_non_null(b2 = event_base_new());
	assert_null(ctl_open(b2, fx->spool, err, sizeof(err)));
	assert_non_null(strstr(err, "another process serves it"));
	assert_int_equal(lstat(path, &st), 0);
	/* closed: the file goes */
	ctl_close(fx->ctl);
	fx->ctl = NULL;
	assert_int_equal(lstat(path, &st), -1);
	/* a stale socket (bound, never served) is replaced */
	dfd = open(fx->spool, O_RDONLY | O_DIRECTORY);
	ctl_socket_addr(fx->spool, dfd, &sun);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	close(dfd);
	assert_non_null(fx->ctl = ctl_open(fx->base, fx->spool, err,
	    sizeof(err)));
	fx_register(fx->ctl);
	free(call(fx, "echo"));
	ctl_close(fx->ctl);
	/* anything but a socket stays, and is an error */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_null(fx->ctl = ctl_open(b2, fx->spool, err, sizeof(err)));
	assert_non_null(strstr(err, "exists and is not a socket"));
	assert_int_equal(rmdir(path), 0);
	assert_non_null(fx->ctl = ctl_open(fx->base, fx->spool, err,
	    sizeof(err)));
	event_base_free(b2);
}

/* A spool path over sun_path's 108 bytes still works. */
static void
test_long_path(void **state)
{
	struct fx	*fx = *state;
	char		 err[512], *got, path[600];
	struct stat	 st;
	size_t		 n;

	ctl_close(fx->ctl);
	n = (size_t)snprintf(fx->spool, sizeof(fx->spool), "%s/", fx->tmp);
	memset(fx->spool + n, 'd', 200);
	fx->spool[n + 200] = '\0';
	assert_int_equal(mkdir(fx->spool, 0700), 0);
	assert_non_null(fx->ctl = ctl_open(fx->base, fx->spool, err,
	    sizeof(err)));
	fx_register(fx->ctl);
	got = call(fx, "echo far away");
	assert_string_equal(got, "0 0\n\n--\nfar\naway\n");
	free(got);
	snprintf(path, sizeof(path), "%s/%s", fx->spool, CTL_SOCKET_NAME);
	assert_int_equal(lstat(path, &st), 0);
	ctl_close(fx->ctl);
	assert_int_equal(lstat(path, &st), -1);
	assert_non_null(fx->ctl = ctl_open(fx->base, fx->spool, err,
	    sizeof(err)));
}

/* The pure line parser, case by case ("w,l" pairs: offset, length). */
#define L(s)	(const uint8_t *)(s), sizeof(s) - 1
static const struct {
	const uint8_t	*in;
	size_t		 len;
	enum parse_rc	 rc;
	size_t		 n;
	size_t		 spans[6];
} lines[] = {
	{ L(""), PARSE_OK, 0, { 0 } },
	{ L("   \t "), PARSE_OK, 0, { 0 } },
	{ L("a"), PARSE_OK, 1, { 0, 1 } },
	{ L("  a\tbb  c "), PARSE_OK, 3, { 2, 1, 4, 2, 8, 1 } },
	{ L("queue show 0123456789ABCDEF"), PARSE_OK, 3,
	    { 0, 5, 6, 4, 11, 16 } },
	{ L("~!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"), PARSE_OK, 1, { 0, 32 } },
	{ L("a\x01"), PARSE_BAD, 0, { 0 } },
	{ L("a\0b"), PARSE_BAD, 0, { 0 } },
	{ L("a\rb"), PARSE_BAD, 0, { 0 } },
	{ L("a\nb"), PARSE_BAD, 0, { 0 } },
	{ L("\x7f"), PARSE_BAD, 0, { 0 } },
	{ L("caf\xc3\xa9"), PARSE_BAD, 0, { 0 } },
	{ L("a b c d e f g h i j k l m n o p"), PARSE_OK, 16, { 0, 1, 2, 1 } },
	{ L("a b c d e f g h i j k l m n o p q"), PARSE_TOOLONG, 0, { 0 } },
};

static void
test_parse_line(void **state)
{
	struct ctl_words	ws;
	uint8_t			big[CTL_LINE_MAX];
	size_t			i, j;

	(void)state;
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (ctl_parse_line(lines[i].in, lines[i].len, &ws) !=
		    lines[i].rc)
			fail_msg("case %zu: rc", i);
		if (lines[i].rc != PARSE_OK)
			continue;
		assert_int_equal(ws.n, lines[i].n);
		for (j = 0; j < ws.n && j < 3; j++) {
			if (lines[i].spans[2 * j + 1] == 0)
				break;
			assert_int_equal(ws.w[j].off, lines[i].spans[2 * j]);
			assert_int_equal(ws.w[j].len,
			    lines[i].spans[2 * j + 1]);
		}
	}
	memset(big, 'x', sizeof(big));
	assert_int_equal(ctl_parse_line(big, CTL_LINE_MAX - 1, &ws), PARSE_OK);
	assert_int_equal(ws.n, 1);
	assert_int_equal(ws.w[0].len, CTL_LINE_MAX - 1);
	assert_int_equal(ctl_parse_line(big, CTL_LINE_MAX, &ws),
	    PARSE_TOOLONG);
}

static void
test_register(void **state)
{
	struct fx	*fx = *state;
	char		 verb[8];
	int		 i, ok = 0;
	static const char *const bad[] = {
		"", "Echo", "a b", "x\n", "abcdefghijklmnopqrstuvwxyz0123456",
	};

	assert_int_equal(ctl_register(fx->ctl, "echo", NULL, h_echo, NULL,
	    ""), -1);
	assert_int_equal(ctl_register(fx->ctl, "help", NULL, h_echo, NULL,
	    ""), -1);
	assert_int_equal(ctl_register(fx->ctl, "test", "fail", h_echo, NULL,
	    ""), -1);
	assert_int_equal(ctl_register(fx->ctl, "echo", "two", h_echo, NULL,
	    ""), 0);		/* a two-word command beside a one-word one */
	assert_int_equal(ctl_register(fx->ctl, "x", NULL, NULL, NULL, ""),
	    -1);
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
		assert_int_equal(ctl_register(fx->ctl, bad[i], NULL, h_echo,
		    NULL, ""), -1);
		assert_int_equal(ctl_register(fx->ctl, "v", bad[i], h_echo,
		    NULL, ""), -1);
	}
	assert_int_equal(ctl_register(fx->ctl, "stats", NULL, h_stats,
	    &stat_value, NULL), 0);	/* providers may be many */
	for (i = 0; i < CTL_CMDS_MAX + 1; i++) {
		snprintf(verb, sizeof(verb), "v%d", i);
		if (ctl_register(fx->ctl, verb, NULL, h_echo, NULL, "") == 0)
			ok++;
	}
	assert_true(ok > 0 && ok < CTL_CMDS_MAX);	/* the table is full */
	free(call(fx, "help"));
}

static void
test_no_server(void **state)
{
	struct fx	*fx = *state;
	char		 err[700], want[700];
	char		 nowhere[128];

	(void)fx;
	snprintf(nowhere, sizeof(nowhere), "%s/none", fx->tmp);
	assert_int_equal(mkdir(nowhere, 0700), 0);
	errno = 0;
	assert_int_equal(ctl_call(nowhere, "stats", stdout, err, sizeof(err)),
	    -1);
	assert_int_equal(errno, ENOENT);
	snprintf(want, sizeof(want), "no running gateway (cannot connect to "
	    "%s/control.sock)", nowhere);
	assert_string_equal(err, want);
	/* not even a spool folder */
	assert_int_equal(ctl_call("/nonexistent/spool", "stats", stdout, err,
	    sizeof(err)), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(err, "no running gateway"));
	/* requests that cannot be one line are refused before connecting */
	assert_int_equal(ctl_call(nowhere, "a\nb", stdout, err, sizeof(err)),
	    -1);
	assert_int_equal(errno, EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_calls, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_log_line, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_help_stats, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_big_and_long, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_line_limit, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_raw, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_conn_limit, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_socket_file, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_long_path, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_register, fx_setup,
		    fx_teardown),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test_setup_teardown(test_no_server, fx_setup,
		    fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
