/*
 * test_client.c - the outbound SMTP/LMTP client against real servers.
 * Each test starts what it needs on 127.0.0.1 (a free port, or a unix
 * socket in a temp dir) and stops it by PID at the end:
 *  - Postfix smtp-sink (/usr/sbin/smtp-sink; "-u nobody" when root):
 *    delivery, connection reuse, and whole-command refusals (-f/-r make
 *    every RCPT, DATA, "." or MAIL fail with 5xx/4xx; they imply -p, no
 *    PIPELINING).  smtp-sink cannot refuse one recipient and not another.
 *  - fk_*: a scripted SMTP server forked from this test.  Per-recipient
 *    replies by local part (rej* 550 5.1.1, tmp* 450 4.2.1); per-sender
 *    behaviour: mail4* refuses MAIL, drop* hangs up in DATA, early*
 *    replies before the end of data, data250* answers DATA with 250,
 *    slow* never answers ".", stale* hangs up at MAIL on a reused
 *    connection, final5* refuses the message; modes: no PIPELINING, no
 *    EHLO, STARTTLS answered with junk, overlong or too many reply lines,
 *    CHUNKING offered (BDAT chunks recorded raw, after their command).
 *    It writes each transaction (MAIL, RCPTs, whether MAIL..DATA came in
 *    one pipelined group, the raw DATA bytes) to a file in the temp dir.
 *  - Dovecot (dovecot -F -c CONF, the LMTP service only, on TCP and on a
 *    unix socket; passwd-file with alice and bob, so unknown users get
 *    550 5.1.1; Maildirs under the temp dir).  As root it runs with
 *    default_internal_user=dovecot, default_login_user=dovenull and the
 *    mail users as nobody (first_valid_uid=1); otherwise as the caller.
 *  - A socket that listens but never accepts (a silent server), one whose
 *    accept queue is full (connect timeout), a closed port (refused).
 * A test skips, saying why, only when a server binary is missing.  With
 * -DMXGATE_TLS (and -lssl -lcrypto -levent_openssl) STARTTLS is tested
 * against Dovecot and the junk-answering fake server.  Set
 * TEST_CLIENT_DEBUG=1 to see the dialogues.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#ifdef MXGATE_TLS
#include <openssl/ssl.h>
#endif

#include "deliver/client.h"
#include "lib/log.h"

#define T_SINK		"/usr/sbin/smtp-sink"
#define T_DOVECOT	"/usr/sbin/dovecot"
#define T_OPENSSL	"/usr/bin/openssl"
#define T_RCPTS_MAX	8
#define T_PIDS_MAX	4
#define T_RECS_MAX	32
#define T_RUN_MS	60000	/* a bound on a test's loop, never a claim */

struct t_env {
	struct event_base	*base;
	struct client_pool	*pool;
	struct client_opts	 opts;
	char			 dir[64];
	pid_t			 pids[T_PIDS_MAX];
	size_t			 npids;
	int			 silent_fd;
	int			 fake_port;
	unsigned		 fake_flags;
	unsigned		 ndone, want, max_conns;
	bool			 in_send;
	const char		*key;
	void			*ssl_ctx;
};

struct t_msg {
	struct client_msg		 m;
	struct client_rcpt_result	 res[T_RCPTS_MAX];
	const char			*rcpts[T_RCPTS_MAX];
	struct t_env			*env;
	unsigned			 ndone;
};

/* One transaction as the fake server saw it. */
struct t_rec {
	char	 mail[512];
	char	 rcpts[1024];	/* "<a> 250\n<b> 550\n" */
	bool	 pipelined;
	char	*data;		/* raw DATA bytes, with the final "." */
	size_t	 datalen;
};

/* Helpers: processes, ports, files */

static void
t_skip(const char *why)
{
	print_message("skipped: %s\n", why);
	skip();
}

static int
t_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static pid_t
t_spawn(char *const argv[], const char *log)
{
	pid_t	pid;
	int	fd;

	if ((pid = fork()) == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

static void
t_stop(pid_t pid)
{
	int	i, st;

	kill(pid, SIGTERM);
	for (i = 0; i < 300; i++) {
		if (waitpid(pid, &st, WNOHANG) != 0)
			return;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static void
t_track(struct t_env *env, pid_t pid)
{
	assert_true(env->npids < T_PIDS_MAX);
	env->pids[env->npids++] = pid;
}

static int
t_listen(int *port)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	socklen_t		sl = sizeof(sin);
	int			fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A port nothing listens on (just closed): connection refused. */
static int
t_free_port(void)
{
	int	port, fd = t_listen(&port);

	close(fd);
	return port;
}

static bool
t_port_up(int port, unsigned ms)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	unsigned		i;
	int			fd, r;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	for (i = 0; i < ms / 20; i++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
		close(fd);
		if (r == 0)
			return true;
		usleep(20000);
	}
	return false;
}

static bool
t_wait_file(const char *path, unsigned ms)
{
	unsigned	i;

	for (i = 0; i < ms / 20; i++) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

static void
t_write_file(const char *path, const char *text)
{
	FILE	*f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static char *
t_read_file(const char *path, size_t *lenp)
{
	FILE	*f = fopen(path, "r");
	char	*p;
	long	 n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	if (lenp != NULL)
		*lenp = (size_t)n;
	return p;
}

/* The fake SMTP server (runs in forked children) */

#define FK_NOPIPE	0x01	/* no PIPELINING */
#define FK_NOEHLO	0x02	/* EHLO gets 502 */
#define FK_STARTTLS	0x04	/* offers STARTTLS, answers with junk */
#define FK_LONGLINE	0x08	/* a 600-octet greeting */
#define FK_MANYLINES	0x10	/* 150 EHLO lines */
#define FK_CHUNKING	0x20	/* offers CHUNKING, takes BDAT (RFC 3030) */
#define FK_SMTPUTF8	0x40	/* offers SMTPUTF8 */

struct fk {
	int		 fd;
	unsigned	 flags;
	const char	*dir;
	char		 buf[1 << 16];
	size_t		 len;
	unsigned	 ntx;
	FILE		*rec;
	char		 sender[256];
	unsigned	 naccepted;
	bool		 bdat;		/* a chunk came in this transaction */
};

/* More input within ms: 1, 0 on timeout, -1 at EOF. */
static int
fk_fill(struct fk *f, int ms)
{
	struct pollfd	pfd = { .fd = f->fd, .events = POLLIN };
	ssize_t		n;

	if (f->len == sizeof(f->buf))
		return -1;
	if (poll(&pfd, 1, ms) <= 0)
		return 0;
	n = read(f->fd, f->buf + f->len, sizeof(f->buf) - f->len);
	if (n <= 0)
		return -1;
	f->len += (size_t)n;
	return 1;
}

/* One raw line with its LF, or -1 at EOF. */
static ssize_t
fk_line(struct fk *f, char *out, size_t max)
{
	char	*nl;
	size_t	 n;

	while ((nl = memchr(f->buf, '\n', f->len)) == NULL)
		if (fk_fill(f, 10000) != 1)
			return -1;
	n = (size_t)(nl - f->buf) + 1;
	if (n >= max)
		return -1;
	memcpy(out, f->buf, n);
	out[n] = '\0';
	memmove(f->buf, f->buf + n, f->len - n);
	f->len -= n;
	return (ssize_t)n;
}

/* Does needle arrive within ms without our answering? (RFC 2920) */
static bool
fk_wait(struct fk *f, const char *needle, int ms)
{
	int	i;

	for (i = 0; i < ms / 10; i++) {
		if (memmem(f->buf, f->len, needle, strlen(needle)) != NULL)
			return true;
		if (fk_fill(f, 10) == -1)
			return false;
	}
	return memmem(f->buf, f->len, needle, strlen(needle)) != NULL;
}

static void
fk_say(struct fk *f, const char *s)
{
	size_t	off = 0, len = strlen(s);
	ssize_t	n;

	while (off < len) {
		if ((n = write(f->fd, s + off, len - off)) <= 0)
			_exit(0);
		off += (size_t)n;
	}
}

static void
fk_ehlo(struct fk *f)
{
	char	line[64];
	int	i;

	if (f->flags & FK_NOEHLO) {
		fk_say(f, "502 5.5.2 Error: command not recognized\r\n");
		return;
	}
	fk_say(f, "250-fake.test\r\n");
	if (f->flags & FK_MANYLINES)
		for (i = 0; i < 150; i++) {
			snprintf(line, sizeof(line), "250-X-FILLER-%d\r\n", i);
			fk_say(f, line);
		}
	if (!(f->flags & FK_NOPIPE))
		fk_say(f, "250-PIPELINING\r\n");
	if (f->flags & FK_STARTTLS)
		fk_say(f, "250-STARTTLS\r\n");
	if (f->flags & FK_CHUNKING)
		fk_say(f, "250-CHUNKING\r\n");
	if (f->flags & FK_SMTPUTF8)
		fk_say(f, "250-SMTPUTF8\r\n");
	fk_say(f, "250-SIZE 100000000\r\n250-8BITMIME\r\n"
	    "250 ENHANCEDSTATUSCODES\r\n");
}

static void
fk_mail(struct fk *f, const char *line)
{
	char		 path[256];
	const char	*lt = strchr(line, '<'), *gt;
	bool		 pipelined;

	/* Hold the MAIL reply: a pipelining client sends DATA meanwhile. */
	pipelined = fk_wait(f, "DATA\r\n", 300);
	f->sender[0] = '\0';
	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		snprintf(f->sender, sizeof(f->sender), "%.*s",
		    (int)(gt - lt - 1), lt + 1);
	/* A cached connection that dies under the client's next MAIL. */
	if (strncmp(f->sender, "stale", 5) == 0 && f->ntx > 0)
		_exit(0);
	f->naccepted = 0;
	f->bdat = false;
	snprintf(path, sizeof(path), "%s/tx.%d.%u", f->dir, (int)getpid(),
	    f->ntx++);
	if (f->rec != NULL)
		fclose(f->rec);
	if ((f->rec = fopen(path, "w")) == NULL)
		_exit(1);
	fprintf(f->rec, "mail=%spipelined=%d\n", line + 5, pipelined);
	fflush(f->rec);
	if (strncmp(f->sender, "mail4", 5) == 0)
		fk_say(f, "451 4.3.0 Error: try again later\r\n");
	else
		fk_say(f, "250 2.1.0 Ok\r\n");
}

static void
fk_rcpt(struct fk *f, const char *line)
{
	const char	*lt = strchr(line, '<');
	const char	*reply = "250 2.1.5 Ok\r\n";

	if (lt != NULL && strncmp(lt + 1, "rej", 3) == 0)
		reply = "550 5.1.1 <rej>: Recipient address rejected\r\n";
	else if (lt != NULL && strncmp(lt + 1, "tmp", 3) == 0)
		reply = "450 4.2.1 <tmp>: Mailbox busy\r\n";
	else
		f->naccepted++;
	if (f->rec != NULL) {
		fprintf(f->rec, "rcpt=%.*s %.3s\n", (int)strcspn(line + 8,
		    "\r\n"), line + 8, reply);
		fflush(f->rec);
	}
	fk_say(f, reply);
}

static void
fk_data(struct fk *f)
{
	char	line[4096];
	ssize_t	n;

	if (f->naccepted == 0 || f->rec == NULL) {
		fk_say(f, "554 5.5.1 Error: no valid recipients\r\n");
		return;
	}
	if (strncmp(f->sender, "data250", 7) == 0) {
		fk_say(f, "250 2.0.0 Ok\r\n");	/* not 354 */
		return;
	}
	if (strncmp(f->sender, "early", 5) == 0) {
		/* Answer before the end of data, and read nothing more. */
		fk_say(f, "354 go ahead\r\n250 2.0.0 Ok: too early\r\n");
		sleep(2);
		_exit(0);
	}
	fk_say(f, "354 End data with <CR><LF>.<CR><LF>\r\n");
	fputs("--data--\n", f->rec);
	while ((n = fk_line(f, line, sizeof(line))) > 0) {
		fwrite(line, 1, (size_t)n, f->rec);
		fflush(f->rec);
		if (strncmp(f->sender, "drop", 4) == 0)
			_exit(0);
		if (strcmp(line, ".\r\n") == 0)
			break;
	}
	fclose(f->rec);
	f->rec = NULL;
	if (strncmp(f->sender, "slow", 4) == 0) {
		sleep(3);	/* no reply to "." */
		_exit(0);
	}
	fk_say(f, strncmp(f->sender, "final5", 6) == 0 ?
	    "554 5.7.1 Error: content rejected\r\n" :
	    "250 2.0.0 Ok: queued as FAKE\r\n");
}

/* BDAT n [LAST]: n octets, recorded after the command line. */
static void
fk_bdat(struct fk *f, const char *line)
{
	char		*end, reply[64];
	unsigned long	 left = strtoul(line + 5, &end, 10);
	bool		 last = strncasecmp(end, " LAST", 5) == 0;
	size_t		 k;

	if (f->rec != NULL) {
		if (!f->bdat)
			fputs("--data--\n", f->rec);
		fputs(line, f->rec);
	}
	f->bdat = true;
	snprintf(reply, sizeof(reply), "250 2.0.0 %lu octets\r\n", left);
	while (left > 0) {
		if (f->len == 0 && fk_fill(f, 10000) != 1)
			_exit(0);
		k = f->len < left ? f->len : left;
		if (f->rec != NULL)
			fwrite(f->buf, 1, k, f->rec);
		memmove(f->buf, f->buf + k, f->len - k);
		f->len -= k;
		left -= k;
	}
	if (f->naccepted == 0 || f->rec == NULL) {
		fk_say(f, "503 5.5.1 Error: need RCPT command\r\n");
		return;
	}
	if (!last) {
		fk_say(f, reply);
		return;
	}
	fclose(f->rec);
	f->rec = NULL;
	fk_say(f, strncmp(f->sender, "final5", 6) == 0 ?
	    "554 5.7.1 Error: content rejected\r\n" :
	    "250 2.0.0 Ok: queued as FAKE\r\n");
}

/* Note a command in the connection's log (RSET, STARTTLS, ...). */
static void
fk_note(struct fk *f, const char *what)
{
	char	path[256];
	FILE	*log;

	snprintf(path, sizeof(path), "%s/conn.%d", f->dir, (int)getpid());
	if ((log = fopen(path, "a")) != NULL) {
		fprintf(log, "%s\n", what);
		fclose(log);
	}
}

static void
fk_command(struct fk *f, char *line)
{
	if (strncasecmp(line, "EHLO", 4) == 0)
		fk_ehlo(f);
	else if (strncasecmp(line, "HELO", 4) == 0)
		fk_say(f, "250 fake.test\r\n");
	else if (strncasecmp(line, "MAIL FROM:", 10) == 0)
		fk_mail(f, line);
	else if (strncasecmp(line, "RCPT TO:", 8) == 0)
		fk_rcpt(f, line);
	else if (strncasecmp(line, "DATA", 4) == 0)
		fk_data(f);
	else if (strncasecmp(line, "BDAT ", 5) == 0 &&
	    (f->flags & FK_CHUNKING))
		fk_bdat(f, line);
	else if (strncasecmp(line, "RSET", 4) == 0) {
		fk_note(f, "RSET");
		fk_say(f, "250 2.0.0 Ok\r\n");
	} else if (strncasecmp(line, "QUIT", 4) == 0) {
		fk_note(f, "QUIT");
		fk_say(f, "221 2.0.0 Bye\r\n");
		_exit(0);
	} else if (strncasecmp(line, "STARTTLS", 8) == 0 &&
	    (f->flags & FK_STARTTLS)) {
		fk_note(f, "STARTTLS");
		fk_say(f, "220 2.0.0 Ready to start TLS\r\nthis is no TLS\r\n");
		_exit(0);
	} else
		fk_say(f, "502 5.5.2 Error: command not recognized\r\n");
}

static void
fk_session(int fd, const char *dir, unsigned flags)
{
	static struct fk	f;
	char			line[4096], greet[700];

	memset(&f, 0, sizeof(f));
	f.fd = fd;
	f.dir = dir;
	f.flags = flags;
	fk_note(&f, "CONNECT");
	if (flags & FK_LONGLINE) {
		memset(greet, 'x', sizeof(greet));
		memcpy(greet, "220 ", 4);
		memcpy(greet + 600, "\r\n", 3);
		fk_say(&f, greet);
	} else
		fk_say(&f, "220 fake.test ESMTP\r\n");
	while (fk_line(&f, line, sizeof(line)) > 0)
		fk_command(&f, line);
	_exit(0);
}

/* Fork the server; a child per connection, killed with its parent. */
static void
fk_start(struct t_env *env, unsigned flags, int *port)
{
	pid_t	pid;
	int	lfd = t_listen(port), cfd;

	if ((pid = fork()) == 0) {
		signal(SIGCHLD, SIG_IGN);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			if ((cfd = accept(lfd, NULL, NULL)) == -1)
				continue;
			if (fork() == 0) {
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				close(lfd);
				fk_session(cfd, env->dir, flags);
			}
			close(cfd);
		}
	}
	assert_true(pid > 0);
	close(lfd);
	t_track(env, pid);
}

/* Load the transactions the fake server recorded. */
static size_t
fk_records(struct t_env *env, struct t_rec *recs, size_t max)
{
	DIR		*d = opendir(env->dir);
	struct dirent	*e;
	char		 path[512], *text, *p, *data;
	size_t		 n = 0, len;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL && n < max) {
		if (strncmp(e->d_name, "tx.", 3) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", env->dir, e->d_name);
		text = t_read_file(path, &len);
		memset(&recs[n], 0, sizeof(recs[n]));
		data = strstr(text, "--data--\n");
		if (data != NULL) {
			*data = '\0';
			data += 9;
			recs[n].datalen = len - (size_t)(data - text);
			recs[n].data = malloc(recs[n].datalen + 1);
			memcpy(recs[n].data, data, recs[n].datalen + 1);
		}
		if ((p = strstr(text, "mail=")) != NULL)
			snprintf(recs[n].mail, sizeof(recs[n].mail), "%.*s",
			    (int)strcspn(p + 5, "\n"), p + 5);
		recs[n].pipelined = strstr(text, "pipelined=1") != NULL;
		for (p = text; (p = strstr(p, "rcpt=")) != NULL; p += 5)
			snprintf(recs[n].rcpts + strlen(recs[n].rcpts),
			    sizeof(recs[n].rcpts) - strlen(recs[n].rcpts),
			    "%.*s\n", (int)strcspn(p + 5, "\n"), p + 5);
		free(text);
		n++;
	}
	closedir(d);
	return n;
}

static void
fk_records_free(struct t_rec *recs, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(recs[i].data);
}

/* What the fake server noted on its connections, concatenated. */
static char *
fk_notes(struct t_env *env)
{
	DIR		*d = opendir(env->dir);
	struct dirent	*e;
	char		 path[512], *all = calloc(1, 1), *t;
	size_t		 len = 0, n;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "conn.", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", env->dir, e->d_name);
		t = t_read_file(path, &n);
		all = realloc(all, len + n + 1);
		memcpy(all + len, t, n + 1);
		len += n;
		free(t);
	}
	closedir(d);
	return all;
}

static unsigned
t_count_str(const char *hay, const char *needle)
{
	unsigned	n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

/* The client side: a loop, a pool, messages */

static void
t_done(void *arg, struct client_msg *m)
{
	struct t_msg	*tm = arg;
	struct t_env	*env = tm->env;
	unsigned	 c;

	assert_ptr_equal(m, &tm->m);
	assert_false(env->in_send);	/* never inside client_send */
	tm->ndone++;
	env->ndone++;
	if (env->key != NULL && env->pool != NULL &&
	    (c = client_pool_conns(env->pool, env->key)) > env->max_conns)
		env->max_conns = c;
	if (env->ndone >= env->want)
		event_base_loopbreak(env->base);
}

static void
t_msg(struct t_msg *tm, struct t_env *env, const char *sender,
    const char *const *rcpts, const char *body)
{
	size_t	i;

	memset(tm, 0, sizeof(*tm));
	for (i = 0; rcpts[i] != NULL && i < T_RCPTS_MAX; i++)
		tm->rcpts[i] = rcpts[i];
	tm->env = env;
	tm->m = (struct client_msg){
		.id = 0x1234,
		.sender = sender,
		.rcpts = tm->rcpts,
		.nrcpts = i,
		.body = (const uint8_t *)body,
		.bodylen = strlen(body),
		.results = tm->res,
		.done = t_done,
		.arg = tm,
	};
}

static void
t_send(struct t_env *env, const struct client_dest *d, struct t_msg *tm)
{
	env->in_send = true;
	client_send(env->pool, d, &tm->m);
	env->in_send = false;
	assert_int_equal(tm->ndone, 0);
}

static void
t_loop_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

/* Run the loop until want more done() calls, or ms. */
static void
t_run(struct t_env *env, unsigned want, unsigned ms)
{
	struct event	*tmo = evtimer_new(env->base, t_loop_timeout,
			    env->base);
	struct timeval	 tv = { ms / 1000, (long)(ms % 1000) * 1000 };

	env->want = env->ndone + want;
	evtimer_add(tmo, &tv);
	if (want == 0 || env->ndone < env->want)
		event_base_dispatch(env->base);
	event_free(tmo);
}

static void
t_pool(struct t_env *env)
{
	env->opts.helo = "client.test";
	env->opts.ssl_ctx = env->ssl_ctx;
	env->pool = client_pool_new(env->base, &env->opts);
	assert_non_null(env->pool);
}

static void
t_dest_tcp(struct client_dest *d, const char *key, bool lmtp,
    const int *ports, size_t n)
{
	size_t	i;

	memset(d, 0, sizeof(*d));
	snprintf(d->key, sizeof(d->key), "%s", key);
	d->lmtp = lmtp;
	for (i = 0; i < n; i++) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&d->addrs[i];

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons((uint16_t)ports[i]);
	}
	d->naddrs = n;
}

static void
t_expect(const struct t_msg *tm, size_t i, unsigned code, const char *esc)
{
	if (tm->res[i].code != code || strcmp(tm->res[i].esc, esc) != 0)
		fail_msg("rcpt %zu: got %u %s \"%s\", want %u %s", i,
		    tm->res[i].code, tm->res[i].esc, tm->res[i].text, code,
		    esc);
}

static int
t_setup(void **state)
{
	struct t_env	*env = calloc(1, sizeof(*env));

	assert_non_null(env);
	signal(SIGPIPE, SIG_IGN);
	snprintf(env->dir, sizeof(env->dir), "/tmp/test_client.XXXXXX");
	assert_non_null(mkdtemp(env->dir));
	assert_int_equal(chmod(env->dir, 0755), 0);
	assert_non_null(env->base = event_base_new());
	env->silent_fd = -1;
	env->opts = (struct client_opts){
		.concurrency = 4,
		.connect_timeout_ms = 3000,
		.command_timeout_ms = 5000,
		.data_timeout_ms = 5000,
		.idle_ms = 300,
		.max_msgs_per_conn = 100,
	};
	*state = env;
	return 0;
}

static int
t_teardown(void **state)
{
	struct t_env	*env = *state;
	size_t		 i;

	if (env->pool != NULL)
		client_pool_free(env->pool);
	for (i = 0; i < env->npids; i++)
		t_stop(env->pids[i]);
	if (env->silent_fd != -1)
		close(env->silent_fd);
	event_base_free(env->base);
#ifdef MXGATE_TLS
	if (env->ssl_ctx != NULL)
		SSL_CTX_free(env->ssl_ctx);
#endif
	nftw(env->dir, t_rm, 16, FTW_DEPTH | FTW_PHYS);
	free(env);
	return 0;
}

/* smtp-sink */

static int
t_sink_start(struct t_env *env, const char *const *opts)
{
	char	*argv[16], addr[32], log[192];
	size_t	 n = 0, i;
	int	 port = t_free_port();

	if (access(T_SINK, X_OK) != 0)
		t_skip(T_SINK " (postfix) is not installed");
	argv[n++] = (char *)T_SINK;
	if (geteuid() == 0) {
		argv[n++] = (char *)"-u";
		argv[n++] = (char *)"nobody";
	}
	for (i = 0; opts != NULL && opts[i] != NULL && n < 12; i++)
		argv[n++] = (char *)opts[i];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	argv[n++] = addr;
	argv[n++] = (char *)"64";
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s/sink.log", env->dir);
	t_track(env, t_spawn(argv, log));
	if (!t_port_up(port, 30000))
		fail_msg("smtp-sink did not start on port %d", port);
	return port;
}

static const char *const t_three[] = { "a@example.org", "b@example.org",
    "c@example.org", NULL };
static const char	t_body[] = "Subject: test\r\n\r\nhello\r\n";

static void
test_sink_three_rcpts(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	int			 port = t_sink_start(env, NULL);
	size_t			 i;

	t_pool(env);
	t_dest_tcp(&d, "smtp:sink", false, &port, 1);
	snprintf(d.name, sizeof(d.name), "localhost");
	t_msg(&tm, env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	assert_int_equal(tm.ndone, 1);
	for (i = 0; i < 3; i++) {
		t_expect(&tm, i, 250, "2.0.0");
		assert_string_equal(tm.res[i].mta, "localhost");
		assert_non_null(strstr(tm.res[i].text, "250 2.0.0 Ok"));
	}
}

/* smtp-sink refuses a whole command: every recipient feels it. */
static const struct {
	const char	*opts[3];
	unsigned	 code;
	const char	*esc;
} t_refusals[] = {
	{ { "-f", "RCPT", NULL }, 500, "5.3.0" },
	{ { "-r", "RCPT", NULL }, 450, "4.3.0" },
	{ { "-f", "MAIL", NULL }, 500, "5.3.0" },
	{ { "-f", "DATA", NULL }, 500, "5.3.0" },
	{ { "-r", ".", NULL }, 450, "4.3.0" },
	{ { "-f", "CONNECT", NULL }, 500, "5.3.0" },
};

static void
test_sink_refusals(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	size_t			 k, i, np;
	int			 port;

	for (k = 0; k < sizeof(t_refusals) / sizeof(t_refusals[0]); k++) {
		np = env->npids;
		port = t_sink_start(env, t_refusals[k].opts);
		t_pool(env);
		t_dest_tcp(&d, "smtp:sink", false, &port, 1);
		t_msg(&tm, env, "sender@example.net", t_three, t_body);
		t_send(env, &d, &tm);
		t_run(env, 1, T_RUN_MS);
		assert_int_equal(tm.ndone, 1);
		for (i = 0; i < 3; i++)
			t_expect(&tm, i, t_refusals[k].code,
			    t_refusals[k].esc);
		client_pool_free(env->pool);
		env->pool = NULL;
		t_stop(env->pids[np]);
		env->npids = np;
	}
}

/* Ten messages, concurrency 3: connections are reused, never over 3,
 * and closed (QUIT) once idle. */
static void
test_sink_reuse(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm[10];
	int			 port = t_sink_start(env, NULL);
	size_t			 k;

	env->opts.concurrency = 3;
	t_pool(env);
	env->key = "smtp:sink";
	t_dest_tcp(&d, env->key, false, &port, 1);
	for (k = 0; k < 10; k++) {
		t_msg(&tm[k], env, "sender@example.net", t_three, t_body);
		t_send(env, &d, &tm[k]);
	}
	t_run(env, 10, T_RUN_MS);
	for (k = 0; k < 10; k++) {
		assert_int_equal(tm[k].ndone, 1);
		t_expect(&tm[k], 2, 250, "2.0.0");
	}
	assert_true(env->max_conns >= 1 && env->max_conns <= 3);
	assert_true(client_pool_connects(env->pool) <= 3);
	assert_true(client_pool_conns(env->pool, env->key) <= 3);
	t_run(env, 0, env->opts.idle_ms + 500);
	assert_int_equal(client_pool_conns(env->pool, env->key), 0);
	/* and a new message after that opens a new connection */
	t_msg(&tm[0], env, "", t_three, t_body);
	t_send(env, &d, &tm[0]);
	t_run(env, 1, T_RUN_MS);
	t_expect(&tm[0], 0, 250, "2.0.0");
}

static void
test_sink_max_msgs(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm[6];
	int			 port = t_sink_start(env, NULL);
	size_t			 k;

	env->opts.concurrency = 1;
	env->opts.max_msgs_per_conn = 2;
	t_pool(env);
	env->key = "smtp:sink";
	t_dest_tcp(&d, env->key, false, &port, 1);
	for (k = 0; k < 6; k++) {
		t_msg(&tm[k], env, "sender@example.net", t_three, t_body);
		t_send(env, &d, &tm[k]);
	}
	t_run(env, 6, T_RUN_MS);
	for (k = 0; k < 6; k++)
		t_expect(&tm[k], 0, 250, "2.0.0");
	assert_int_equal(env->max_conns, 1);
	assert_int_equal(client_pool_connects(env->pool), 3);
}

/* Connection failures */

static void
test_refused(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	int			 ports[2] = { t_free_port(), t_free_port() };
	size_t			 i;

	t_pool(env);
	t_dest_tcp(&d, "smtp:refused", false, ports, 2);
	t_msg(&tm, env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	assert_int_equal(tm.ndone, 1);
	assert_int_equal(client_pool_connects(env->pool), 2);
	for (i = 0; i < 3; i++) {
		t_expect(&tm, i, 421, "4.4.1");
		assert_non_null(strstr(tm.res[i].text, "127.0.0.1"));
		assert_non_null(strstr(tm.res[i].text, "refused"));
	}
}

/* Messages waiting for a destination none of whose addresses connects
 * fail together, with the same reason, after one round of attempts. */
static void
test_refused_waiting(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm[3];
	int			 ports[2] = { t_free_port(), t_free_port() };
	size_t			 k;

	env->opts.concurrency = 1;
	t_pool(env);
	t_dest_tcp(&d, "smtp:refused", false, ports, 2);
	for (k = 0; k < 3; k++) {
		t_msg(&tm[k], env, "sender@example.net", t_three, t_body);
		t_send(env, &d, &tm[k]);
	}
	t_run(env, 3, T_RUN_MS);
	for (k = 0; k < 3; k++)
		t_expect(&tm[k], 1, 421, "4.4.1");
	assert_int_equal(client_pool_connects(env->pool), 2);
}

/* A listener whose accept queue is full drops our SYN: connect timeout,
 * 4.4.1 (Linux drops SYNs to a full accept queue). */
static void
test_connect_timeout(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	struct sockaddr_in	 sin = { .sin_family = AF_INET };
	int			 port, fds[4], i;

	env->silent_fd = t_listen(&port);
	assert_int_equal(listen(env->silent_fd, 0), 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	for (i = 0; i < 4; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(fds[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	usleep(100000);
	env->opts.connect_timeout_ms = 300;
	t_pool(env);
	t_dest_tcp(&d, "smtp:full", false, &port, 1);
	t_msg(&tm, env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	for (i = 0; i < 4; i++)
		close(fds[i]);
	t_expect(&tm, 0, 421, "4.4.1");
	assert_non_null(strstr(tm.res[0].text, "timed out"));
}

/* The first address refuses, the second delivers. */
static void
test_next_address(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	int			 ports[2];

	ports[0] = t_free_port();
	ports[1] = t_sink_start(env, NULL);
	t_pool(env);
	t_dest_tcp(&d, "smtp:two", false, ports, 2);
	t_msg(&tm, env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_string_equal(tm.res[0].mta, "[127.0.0.1]");
}

/* A server that accepts and never speaks: 4.4.2 after the timeout. */
static void
test_silent(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	int			 port;

	env->silent_fd = t_listen(&port);
	env->opts.command_timeout_ms = 300;
	t_pool(env);
	t_dest_tcp(&d, "smtp:silent", false, &port, 1);
	t_msg(&tm, env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	assert_int_equal(tm.ndone, 1);
	t_expect(&tm, 0, 421, "4.4.2");
	t_expect(&tm, 2, 421, "4.4.2");
	assert_non_null(strstr(tm.res[0].text, "timeout"));
	assert_non_null(strstr(tm.res[0].text, "greeting"));
}

/* No address at all, and client_pool_free() with work in flight. */
static void
test_done_rules(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d, silent;
	struct t_msg		 tm[3];
	int			 port;
	size_t			 k;

	env->silent_fd = t_listen(&port);
	t_pool(env);
	t_dest_tcp(&d, "smtp:none", false, NULL, 0);
	t_msg(&tm[0], env, "sender@example.net", t_three, t_body);
	t_send(env, &d, &tm[0]);	/* asserts done() is not called */
	t_run(env, 1, T_RUN_MS);
	t_expect(&tm[0], 1, 421, "4.4.1");
	t_dest_tcp(&silent, "smtp:silent", false, &port, 1);
	for (k = 1; k < 3; k++) {
		t_msg(&tm[k], env, "sender@example.net", t_three, t_body);
		t_send(env, &silent, &tm[k]);
	}
	t_run(env, 0, 200);
	assert_int_equal(client_pool_conns(env->pool, "smtp:silent"), 2);
	client_pool_free(env->pool);
	env->pool = NULL;
	for (k = 1; k < 3; k++) {
		assert_int_equal(tm[k].ndone, 1);
		t_expect(&tm[k], 0, 421, "4.3.2");
		t_expect(&tm[k], 2, 421, "4.3.2");
	}
}

/* The fake server */

/* Start a fake server (once per test and flags) and send tm to it. */
static void
t_fake_send(struct t_env *env, unsigned flags, struct t_msg *tm)
{
	struct client_dest	d;
	int			port;

	if (env->fake_port == 0 || env->fake_flags != flags) {
		fk_start(env, flags, &env->fake_port);
		env->fake_flags = flags;
	}
	port = env->fake_port;
	if (env->pool == NULL)
		t_pool(env);
	t_dest_tcp(&d, "smtp:fake", false, &port, 1);
	t_send(env, &d, tm);
	t_run(env, 1, T_RUN_MS);
	assert_int_equal(tm->ndone, 1);
}

static void
test_fake_pipelining(void **state)
{
	static const char *const	 rcpts[] = { "a@example.org",
	    "rej@example.org", "b@example.org", NULL };
	struct t_env			*env = *state;
	struct t_msg			 tm;
	struct t_rec			 rec[T_RECS_MAX];
	size_t				 n;

	t_msg(&tm, env, "s@example.net", rcpts, t_body);
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	t_expect(&tm, 1, 550, "5.1.1");
	t_expect(&tm, 2, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_true(rec[0].pipelined);
	assert_string_equal(rec[0].mail, "FROM:<s@example.net> SIZE=24\r");
	fk_records_free(rec, n);
}

static void
test_fake_no_pipelining(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	struct t_rec	 rec[T_RECS_MAX];
	size_t		 n;

	t_msg(&tm, env, "s@example.net", t_three, t_body);
	t_fake_send(env, FK_NOPIPE, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_false(rec[0].pipelined);
	assert_non_null(rec[0].data);
	fk_records_free(rec, n);
}

/* Per-recipient results, in both modes. */
static void
test_fake_mixed(void **state)
{
	static const char *const	 rcpts[] = { "ok1@example.org",
	    "rej@example.org", "tmp@example.org", "ok2@example.org", NULL };
	static const unsigned		 modes[] = { 0, FK_NOPIPE };
	struct t_env			*env = *state;
	struct t_msg			 tm;
	size_t				 k;

	for (k = 0; k < 2; k++) {
		t_msg(&tm, env, "s@example.net", rcpts, t_body);
		t_fake_send(env, modes[k], &tm);
		t_expect(&tm, 0, 250, "2.0.0");
		t_expect(&tm, 1, 550, "5.1.1");
		assert_non_null(strstr(tm.res[1].text,
		    "550 5.1.1 <rej>: Recipient address rejected"));
		t_expect(&tm, 2, 450, "4.2.1");
		t_expect(&tm, 3, 250, "2.0.0");
	}
}

/* No recipient accepted: no body; pipelined DATA is refused, then RSET;
 * without pipelining, RSET instead of DATA. */
static void
test_fake_all_rejected(void **state)
{
	static const char *const	 rcpts[] = { "rej1@example.org",
	    "tmp@example.org", NULL };
	static const unsigned		 modes[] = { 0, FK_NOPIPE };
	struct t_env			*env = *state;
	struct t_msg			 tm;
	struct t_rec			 rec[T_RECS_MAX];
	char				*notes;
	size_t				 k, n;

	for (k = 0; k < 2; k++) {
		t_msg(&tm, env, "s@example.net", rcpts, t_body);
		t_fake_send(env, modes[k], &tm);
		t_expect(&tm, 0, 550, "5.1.1");
		t_expect(&tm, 1, 450, "4.2.1");
		t_run(env, 0, 100);	/* let the RSET go out */
	}
	n = fk_records(env, rec, T_RECS_MAX);
	assert_int_equal(n, 2);
	for (k = 0; k < n; k++)
		assert_null(rec[k].data);
	notes = fk_notes(env);
	assert_int_equal(t_count_str(notes, "RSET"), 2);
	free(notes);
	fk_records_free(rec, n);
}

static void
test_fake_sender_refusals(void **state)
{
	static const struct {
		const char	*sender;
		unsigned	 code;
		const char	*esc;
	} cases[] = {
		{ "mail4@example.net", 451, "4.3.0" },
		{ "final5@example.net", 554, "5.7.1" },
		{ "drop@example.net", 421, "4.4.2" },
		{ "data250@example.net", 451, "4.5.0" },
		{ "slow@example.net", 421, "4.4.2" },
	};
	static const char *const	 rcpts[] = { "a@example.org",
	    "rej@example.org", NULL };
	struct t_env			*env = *state;
	struct t_msg			 tm;
	size_t				 k;

	env->opts.data_timeout_ms = 500;	/* for slow@ */
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		t_msg(&tm, env, cases[k].sender, rcpts, t_body);
		t_fake_send(env, 0, &tm);
		t_expect(&tm, 0, cases[k].code, cases[k].esc);
		if (k == 0)
			t_expect(&tm, 1, 451, "4.3.0");
		else
			t_expect(&tm, 1, 550, "5.1.1");
	}
	assert_non_null(strstr(tm.res[0].text,
	    "timeout waiting for reply to end of data"));
}

/* A reused connection lost before any reply: the message is not failed
 * but tried again on a new connection. */
static void
test_fake_stale_conn(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm[2];
	char		*notes;

	t_msg(&tm[0], env, "s@example.net", t_three, t_body);
	t_fake_send(env, 0, &tm[0]);
	t_expect(&tm[0], 0, 250, "2.0.0");
	t_msg(&tm[1], env, "stale@example.net", t_three, t_body);
	t_fake_send(env, 0, &tm[1]);
	t_expect(&tm[1], 0, 250, "2.0.0");
	notes = fk_notes(env);
	assert_int_equal(t_count_str(notes, "CONNECT"), 2);
	free(notes);
}

/* Lines starting with "." go out doubled and come back intact; 8-bit
 * bodies are announced; a last line without CRLF gets one. */
static void
test_fake_dot_stuffing(void **state)
{
	static const char	 body[] = ".starts with a dot\r\n"
	    "..two dots\r\n.\r\nmiddle . dot\r\n\r\n.\r\n"
	    "caf\xc3\xa9 8-bit\r\n.last line without CRLF";
	static const char	 wire[] = "..starts with a dot\r\n"
	    "...two dots\r\n..\r\nmiddle . dot\r\n\r\n..\r\n"
	    "caf\xc3\xa9 8-bit\r\n..last line without CRLF\r\n.\r\n";
	struct t_env		*env = *state;
	struct t_msg		 tm;
	struct t_rec		 rec[T_RECS_MAX];
	size_t			 n;

	t_msg(&tm, env, "", t_three, body);
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_non_null(rec[0].data);
	assert_int_equal(rec[0].datalen, sizeof(wire) - 1);
	assert_memory_equal(rec[0].data, wire, sizeof(wire) - 1);
	assert_non_null(strstr(rec[0].mail, "FROM:<> SIZE="));
	assert_non_null(strstr(rec[0].mail, " BODY=8BITMIME"));
	fk_records_free(rec, n);
}

/* A next hop with CHUNKING gets the body as one BDAT n LAST, exactly as
 * stored: no dot-stuffing, no CRLF added (RFC 3030 2). */
static void
test_fake_bdat(void **state)
{
	static const char	 body[] = ".starts with a dot\r\n"
	    "..two dots\r\n.\r\ncaf\xc3\xa9 8-bit\r\n.last line";
	struct t_env		*env = *state;
	struct t_msg		 tm;
	struct t_rec		 rec[T_RECS_MAX];
	char			 want[256];
	size_t			 n, wlen;
	char			*notes;

	wlen = (size_t)snprintf(want, sizeof(want), "BDAT %zu LAST\r\n%s",
	    sizeof(body) - 1, body);
	t_msg(&tm, env, "s@example.net", t_three, body);
	t_fake_send(env, FK_CHUNKING, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	t_expect(&tm, 2, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_non_null(rec[0].data);
	assert_int_equal(rec[0].datalen, wlen);
	assert_memory_equal(rec[0].data, want, wlen);
	assert_non_null(strstr(rec[0].mail, " BODY=8BITMIME"));
	fk_records_free(rec, n);
	/* refused chunk: the transaction fails, RSET; none accepted: no
	 * chunk at all, RSET */
	t_msg(&tm, env, "final5@example.net", t_three, body);
	t_fake_send(env, FK_CHUNKING, &tm);
	t_expect(&tm, 0, 554, "5.7.1");
	t_msg(&tm, env, "s@example.net", (const char *const[]){
	    "rej@example.org", NULL }, body);
	t_fake_send(env, FK_CHUNKING, &tm);
	t_expect(&tm, 0, 550, "5.1.1");
	t_run(env, 0, 100);	/* let the RSET go out */
	notes = fk_notes(env);
	assert_int_equal(t_count_str(notes, "RSET"), 2);
	free(notes);
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 3);
	fk_records_free(rec, n);
}

/*
 * SMTPUTF8 (RFC 6531 3.2): a message received with it goes with it to a
 * hop that offers it; one that needs it (UTF-8 address: 5.6.7, 8-bit
 * header: 5.6.9) is never sent to a hop without it; an ASCII one goes
 * there without the parameter.
 */
static const char *const t_utf8_rcpt[] = { "jos\xc3\xa9@example.org", NULL };
static const char *const t_ascii_rcpt[] = { "a@example.org", NULL };

static void
test_fake_smtputf8_offered(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	struct t_rec	 rec[T_RECS_MAX];
	size_t		 n, i, with = 0;

	t_msg(&tm, env, "s@example.net", t_utf8_rcpt,
	    "Subject: x\r\n\r\nb\r\n");
	tm.m.smtputf8 = true;
	t_fake_send(env, FK_SMTPUTF8, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	/* not received with SMTPUTF8: never passed on, even if offered */
	t_msg(&tm, env, "s@example.net", t_ascii_rcpt,
	    "Subject: x\r\n\r\nb\r\n");
	t_fake_send(env, FK_SMTPUTF8, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 2);
	for (i = 0; i < n; i++)
		if (strstr(rec[i].mail, " SMTPUTF8") != NULL) {
			with++;
			assert_non_null(strstr(rec[i].rcpts, "jos\xc3\xa9@"));
		}
	assert_int_equal(with, 1);
	fk_records_free(rec, n);
}

static void
test_fake_smtputf8_missing(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	struct t_rec	 rec[T_RECS_MAX];
	size_t		 n;

	/* a UTF-8 address: refused here, nothing sent */
	t_msg(&tm, env, "s@example.net", t_utf8_rcpt,
	    "Subject: x\r\n\r\nb\r\n");
	tm.m.smtputf8 = true;
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 553, "5.6.7");
	assert_int_equal(fk_records(env, rec, T_RECS_MAX), 0);
	/* ASCII envelope, UTF-8 in a header */
	t_msg(&tm, env, "s@example.net", t_ascii_rcpt,
	    "Subject: caf\xc3\xa9\r\n\r\nb\r\n");
	tm.m.smtputf8 = true;
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 554, "5.6.9");
	assert_int_equal(fk_records(env, rec, T_RECS_MAX), 0);
	/* 8-bit in the body alone needs no SMTPUTF8: sent, without it */
	t_msg(&tm, env, "s@example.net", t_ascii_rcpt,
	    "Subject: x\r\n\r\ncaf\xc3\xa9\r\n");
	tm.m.smtputf8 = true;
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_null(strstr(rec[0].mail, "SMTPUTF8"));
	fk_records_free(rec, n);
}

/* A large body of referenced runs, many lines stuffed. */
static void
test_fake_big_body(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	struct t_rec	 rec[T_RECS_MAX];
	char		*body, *want, *p, *q;
	size_t		 i, n, lines = 20000;

	body = malloc(lines * 80 + 1);
	want = malloc(lines * 81 + 8);
	assert_true(body != NULL && want != NULL);
	for (i = 0, p = body, q = want; i < lines; i++) {
		if (i % 10 == 0) {
			*q++ = '.';
			n = (size_t)snprintf(p, 81, ".%077zu\r\n", i);
		} else
			n = (size_t)snprintf(p, 81, "%078zu\r\n", i);
		memcpy(q, p, n);
		p += n;
		q += n;
	}
	*p = '\0';
	memcpy(q, ".\r\n", 4);
	t_msg(&tm, env, "s@example.net", t_three, body);
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_int_equal(rec[0].datalen, strlen(want));
	assert_memory_equal(rec[0].data, want, strlen(want));
	assert_null(strstr(rec[0].mail, "BODY=8BITMIME"));
	fk_records_free(rec, n);
	free(body);
	free(want);
}

/* A reply before our "." (the body still queued): the connection is
 * closed before done(), so the caller may free the body at once. */
static void
test_fake_early_reply(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	size_t		 len = 32u << 20, i;
	char		*body = malloc(len + 1);

	assert_non_null(body);
	memset(body, 'x', len);
	for (i = 998; i < len; i += 1000)
		memcpy(body + i, "\r\n", 2);
	body[len] = '\0';
	t_msg(&tm, env, "early@example.net", t_three, body);
	t_fake_send(env, 0, &tm);
	free(body);
	t_expect(&tm, 0, 451, "4.5.0");
	assert_non_null(strstr(tm.res[0].text, "before end of data"));
	t_run(env, 0, 200);
}

static void
test_fake_helo_fallback(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	struct t_rec	 rec[T_RECS_MAX];
	size_t		 n;

	t_msg(&tm, env, "s@example.net", t_three, t_body);
	t_fake_send(env, FK_NOEHLO, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	assert_int_equal(n = fk_records(env, rec, T_RECS_MAX), 1);
	assert_false(rec[0].pipelined);
	assert_string_equal(rec[0].mail, "FROM:<s@example.net>\r");
	fk_records_free(rec, n);
}

/* Replies over the bounds: a temporary protocol error, no crash. */
static void
test_fake_bounds(void **state)
{
	static const unsigned	 modes[] = { FK_LONGLINE, FK_MANYLINES };
	struct t_env		*env = *state;
	struct t_msg		 tm;
	size_t			 k;

	for (k = 0; k < 2; k++) {
		t_msg(&tm, env, "s@example.net", t_three, t_body);
		t_fake_send(env, modes[k], &tm);
		t_expect(&tm, 0, 451, "4.5.0");
		assert_non_null(strstr(tm.res[0].text, "too long"));
	}
}

/* Local syntax checks: a CR/LF in a path never reaches the server. */
static void
test_bad_paths(void **state)
{
	static const char *const	 rcpts[] = { "a@example.org",
	    "b@example.org\r\nRSET", "", NULL };
	static const char *const	 one[] = { "a@example.org", NULL };
	struct t_env			*env = *state;
	struct client_dest		 d;
	struct t_msg			 tm;

	t_msg(&tm, env, "s@example.net", rcpts, t_body);
	t_fake_send(env, 0, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	t_expect(&tm, 1, 553, "5.1.3");
	t_expect(&tm, 2, 553, "5.1.3");
	t_msg(&tm, env, "s@example.net\r\nRSET", one, t_body);
	t_dest_tcp(&d, "smtp:unused", false, NULL, 0);
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	t_expect(&tm, 0, 553, "5.1.7");
}

/* Reply parser, line by line */

static const struct {
	const char	*lines[4];
	enum parse_rc	 rc;		/* of the last line */
	unsigned	 code;
	const char	*esc;
	unsigned	 ext;
	unsigned long	 size;
} t_replies[] = {
	{ { "250 2.1.0 Ok" }, PARSE_OK, 250, "2.1.0", 0, 0 },
	{ { "250" }, PARSE_OK, 250, "", 0, 0 },
	{ { "354 go ahead" }, PARSE_OK, 354, "", 0, 0 },
	{ { "550 4.1.1 class differs" }, PARSE_OK, 550, "", 0, 0 },
	{ { "550 5.1.1234 too long" }, PARSE_OK, 550, "", 0, 0 },
	{ { "451 4.3.0" }, PARSE_OK, 451, "4.3.0", 0, 0 },
	{ { "250-mx", "250-PIPELINING", "250-size 1000",
	    "250 STARTTLS" }, PARSE_OK, 250, "",
	    CLIENT_EXT_PIPELINING | CLIENT_EXT_SIZE | CLIENT_EXT_STARTTLS,
	    1000 },
	{ { "250-mx", "250-8BITMIME", "250 " }, PARSE_OK, 250, "",
	    CLIENT_EXT_8BITMIME, 0 },
	{ { "250-mx", "250-smtputf8", "250 " }, PARSE_OK, 250, "",
	    CLIENT_EXT_SMTPUTF8, 0 },
	{ { "250-mx", "250-SMTPUTF8X", "250 SMTPUTF" }, PARSE_OK, 250, "",
	    0, 0 },
	{ { "250-mx", "250-PIPELININGX", "250 SIZE" }, PARSE_OK, 250, "",
	    CLIENT_EXT_SIZE, 0 },
	{ { "250-mx", "250-dsn", "250 DSNX" }, PARSE_OK, 250, "",
	    CLIENT_EXT_DSN, 0 },
	{ { "250-mx", "251 x" }, PARSE_BAD, 250, "", 0, 0 },
	{ { "25" }, PARSE_BAD, 0, "", 0, 0 },
	{ { "650 x" }, PARSE_BAD, 0, "", 0, 0 },
	{ { "250_x" }, PARSE_BAD, 0, "", 0, 0 },
	{ { "1xx" }, PARSE_BAD, 0, "", 0, 0 },
	{ { "250-a" }, PARSE_MORE, 250, "", 0, 0 },
};

static void
test_reply_parse(void **state)
{
	struct client_reply	r;
	enum parse_rc		rc;
	char			line[CLIENT_LINE_MAX + 8];
	size_t			k, i;

	(void)state;
	for (k = 0; k < sizeof(t_replies) / sizeof(t_replies[0]); k++) {
		client_reply_init(&r);
		rc = PARSE_BAD;
		for (i = 0; i < 4 && t_replies[k].lines[i] != NULL; i++)
			rc = client_reply_line(&r, t_replies[k].lines[i],
			    strlen(t_replies[k].lines[i]));
		if (rc != t_replies[k].rc)
			fail_msg("case %zu: rc %d", k, rc);
		assert_int_equal(r.code, t_replies[k].code);
		assert_string_equal(r.esc, t_replies[k].esc);
		assert_int_equal(r.ext, t_replies[k].ext);
		assert_int_equal(r.size_max, t_replies[k].size);
	}
	/* bounds: 510 octets of line (512 with CRLF) pass, 511 do not */
	memset(line, 'x', sizeof(line));
	memcpy(line, "250 ", 4);
	client_reply_init(&r);
	assert_int_equal(client_reply_line(&r, line, 510), PARSE_OK);
	client_reply_init(&r);
	assert_int_equal(client_reply_line(&r, line, 511), PARSE_TOOLONG);
	client_reply_init(&r);
	for (i = 0; i < CLIENT_REPLY_LINES_MAX; i++)
		assert_int_equal(client_reply_line(&r, "250-x", 5), PARSE_MORE);
	assert_int_equal(client_reply_line(&r, "250 x", 5), PARSE_TOOLONG);
}

/* Dovecot LMTP */

static bool
t_dovecot_users(struct t_env *env, char *conf_users, size_t len)
{
	struct passwd	*pw;
	unsigned	 uid, gid;
	char		 path[256], text[512];

	if (geteuid() == 0) {
		if (getpwnam("dovecot") == NULL ||
		    getpwnam("dovenull") == NULL ||
		    (pw = getpwnam("nobody")) == NULL)
			return false;
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		snprintf(conf_users, len, "default_internal_user = dovecot\n"
		    "default_internal_group = dovecot\n"
		    "default_login_user = dovenull\nfirst_valid_uid = 1\n");
	} else {
		if ((pw = getpwuid(geteuid())) == NULL)
			return false;
		uid = pw->pw_uid;
		gid = pw->pw_gid;
		snprintf(conf_users, len, "default_internal_user = %s\n"
		    "default_internal_group = %s\ndefault_login_user = %s\n"
		    "first_valid_uid = 1\n", pw->pw_name, pw->pw_name,
		    pw->pw_name);
	}
	snprintf(path, sizeof(path), "%s/users", env->dir);
	snprintf(text, sizeof(text), "alice:{PLAIN}x:%u:%u::%s/mail/alice\n"
	    "bob:{PLAIN}x:%u:%u::%s/mail/bob\n", uid, gid, env->dir, uid, gid,
	    env->dir);
	t_write_file(path, text);
	return true;
}

#ifdef MXGATE_TLS
static void
t_make_cert(struct t_env *env)
{
	char	key[256], crt[256], log[256];
	char	*argv[] = { (char *)T_OPENSSL, (char *)"req", (char *)"-x509",
	    (char *)"-newkey", (char *)"rsa:2048", (char *)"-nodes",
	    (char *)"-subj", (char *)"/CN=localhost", (char *)"-days",
	    (char *)"2", (char *)"-keyout", key, (char *)"-out", crt, NULL };
	int	st;
	pid_t	pid;

	if (access(T_OPENSSL, X_OK) != 0)
		t_skip(T_OPENSSL " is not installed (test certificate)");
	snprintf(key, sizeof(key), "%s/key.pem", env->dir);
	snprintf(crt, sizeof(crt), "%s/cert.pem", env->dir);
	snprintf(log, sizeof(log), "%s/openssl.log", env->dir);
	pid = t_spawn(argv, log);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
#endif

/* Start Dovecot's LMTP on a TCP port and DIR/lmtp; returns the port. */
static int
t_dovecot_start(struct t_env *env, bool tls)
{
	char	conf[4096], users[512], path[256], sock[200], log[256];
	char	*argv[] = { (char *)T_DOVECOT, (char *)"-F", (char *)"-c",
	    path, NULL };
	int	port = t_free_port();

	if (access(T_DOVECOT, X_OK) != 0 ||
	    access("/usr/lib/dovecot/lmtp", X_OK) != 0)
		t_skip(T_DOVECOT " or dovecot-lmtpd is not installed");
	if (!t_dovecot_users(env, users, sizeof(users)))
		t_skip("no dovecot, dovenull or nobody user for dovecot");
	snprintf(path, sizeof(path), "%s/mail", env->dir);
	assert_int_equal(mkdir(path, 0777), 0);
	assert_int_equal(chmod(path, 0777), 0);
	snprintf(conf, sizeof(conf),
	    "protocols = lmtp\nlisten = 127.0.0.1\n"
	    "base_dir = %s/run\nstate_dir = %s/state\n"
	    "log_path = %s/dovecot.log\ninfo_log_path = %s/dovecot.log\n"
	    "%s"
	    "auth_username_format = %%Ln\n"
	    "mail_location = maildir:%s/mail/%%n/Maildir\n"
	    "passdb {\n  driver = passwd-file\n  args = %s/users\n}\n"
	    "userdb {\n  driver = passwd-file\n  args = %s/users\n}\n"
	    "service lmtp {\n  unix_listener %s/lmtp {\n    mode = 0666\n  }\n"
	    "  inet_listener lmtp {\n    address = 127.0.0.1\n"
	    "    port = %d\n  }\n}\n"
	    "service anvil {\n  chroot =\n}\n"
	    "%s",
	    env->dir, env->dir, env->dir, env->dir, users, env->dir,
	    env->dir, env->dir, env->dir, port,
	    tls ? "ssl = yes\n" : "ssl = no\n");
	if (tls)
		snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf),
		    "ssl_cert = <%s/cert.pem\nssl_key = <%s/key.pem\n",
		    env->dir, env->dir);
	snprintf(path, sizeof(path), "%s/dovecot.conf", env->dir);
	t_write_file(path, conf);
	snprintf(log, sizeof(log), "%s/dovecot.out", env->dir);
	t_track(env, t_spawn(argv, log));
	snprintf(sock, sizeof(sock), "%s/lmtp", env->dir);
	if (!t_port_up(port, 30000) || !t_wait_file(sock, 30000))
		fail_msg("dovecot did not start; see %s/dovecot.log", env->dir);
	return port;
}

static unsigned
t_maildir_count(struct t_env *env, const char *user, const char *needle)
{
	char		 path[512], file[1024], *text;
	DIR		*d;
	struct dirent	*e;
	unsigned	 n = 0;

	snprintf(path, sizeof(path), "%s/mail/%s/Maildir/new", env->dir, user);
	if ((d = opendir(path)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
		text = t_read_file(file, NULL);
		if (strstr(text, needle) != NULL)
			n++;
		free(text);
	}
	closedir(d);
	return n;
}

static const char *const t_lmtp_rcpts[] = { "alice@example.org",
    "nobody@example.org", "bob@example.org", NULL };

static void
t_lmtp_check(struct t_env *env, const struct client_dest *d,
    const char *subject, bool tls)
{
	struct t_msg	tm;
	char		body[256];

	snprintf(body, sizeof(body), "Subject: %s\r\n\r\n.hidden dot\r\n",
	    subject);
	t_msg(&tm, env, "sender@example.net", t_lmtp_rcpts, body);
	t_send(env, d, &tm);
	t_run(env, 1, T_RUN_MS);
	assert_int_equal(tm.ndone, 1);
	t_expect(&tm, 0, 250, "2.0.0");
	t_expect(&tm, 1, 550, "5.1.1");
	t_expect(&tm, 2, 250, "2.0.0");
	assert_non_null(strstr(tm.res[0].text, "<alice@example.org>"));
	assert_non_null(strstr(tm.res[2].text, "<bob@example.org>"));
	assert_int_equal(t_maildir_count(env, "alice", subject), 1);
	assert_int_equal(t_maildir_count(env, "bob", subject), 1);
	/* Dovecot's Received header names the protocol: LMTPS over TLS. */
	assert_int_equal(t_maildir_count(env, "alice", "with LMTPS"),
	    tls ? 1 : 0);
}

static void
test_lmtp_dovecot(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	struct t_msg		 tm;
	int			 port = t_dovecot_start(env, false);

	t_pool(env);
	t_dest_tcp(&d, "lmtp:tcp", true, &port, 1);
	t_lmtp_check(env, &d, "over tcp", false);
	memset(&d, 0, sizeof(d));
	snprintf(d.key, sizeof(d.key), "lmtp:unix");
	d.lmtp = d.unix_sock = true;
	snprintf(d.path, sizeof(d.path), "%s/lmtp", env->dir);
	t_lmtp_check(env, &d, "over unix", false);
	assert_int_equal(t_maildir_count(env, "alice", ".hidden dot"), 2);
	/* nobody accepted: no DATA body, RSET, and the connection goes on */
	t_msg(&tm, env, "sender@example.net", t_lmtp_rcpts + 1, t_body);
	tm.m.nrcpts = 1;
	t_send(env, &d, &tm);
	t_run(env, 1, T_RUN_MS);
	t_expect(&tm, 0, 550, "5.1.1");
	t_run(env, 0, 100);	/* the RSET; else a second connection */
	t_lmtp_check(env, &d, "after rset", false);
	assert_int_equal(client_pool_connects(env->pool), 2);
}

#ifdef MXGATE_TLS
static void
t_tls_ctx(struct t_env *env)
{
	env->ssl_ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(env->ssl_ctx);
}

static void
test_tls_dovecot(void **state)
{
	struct t_env		*env = *state;
	struct client_dest	 d;
	int			 port;

	t_make_cert(env);
	port = t_dovecot_start(env, true);
	t_tls_ctx(env);
	t_pool(env);
	t_dest_tcp(&d, "lmtp:tls", true, &port, 1);
	snprintf(d.name, sizeof(d.name), "localhost");
	t_lmtp_check(env, &d, "over tls", true);
}

/* STARTTLS answered with junk: once more in the clear, same address. */
static void
test_tls_fallback(void **state)
{
	struct t_env	*env = *state;
	struct t_msg	 tm;
	char		*notes;

	t_tls_ctx(env);
	t_msg(&tm, env, "s@example.net", t_three, t_body);
	t_fake_send(env, FK_STARTTLS, &tm);
	t_expect(&tm, 0, 250, "2.0.0");
	notes = fk_notes(env);
	assert_int_equal(t_count_str(notes, "CONNECT"), 2);
	assert_int_equal(t_count_str(notes, "STARTTLS"), 1);
	free(notes);
}
#endif

#define T(f)	cmocka_unit_test_setup_teardown(f, t_setup, t_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		T(test_sink_three_rcpts),
		T(test_sink_refusals),
		T(test_sink_reuse),
		T(test_sink_max_msgs),
		T(test_refused),
		T(test_refused_waiting),
		T(test_connect_timeout),
		T(test_next_address),
		T(test_silent),
		T(test_done_rules),
		T(test_fake_pipelining),
		T(test_fake_no_pipelining),
		T(test_fake_mixed),
		T(test_fake_all_rejected),
		T(test_fake_sender_refusals),
		T(test_fake_stale_conn),
		T(test_fake_dot_stuffing),
		T(test_fake_bdat),
		T(test_fake_smtputf8_offered),
		T(test_fake_smtputf8_missing),
		T(test_fake_big_body),
		T(test_fake_early_reply),
		T(test_fake_helo_fallback),
		T(test_fake_bounds),
		T(test_bad_paths),
		T(test_lmtp_dovecot),
#ifdef MXGATE_TLS
		T(test_tls_dovecot),
		T(test_tls_fallback),
#endif
	};

	if (getenv("TEST_CLIENT_DEBUG") != NULL)
		log_set_level(LOG_LVL_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
