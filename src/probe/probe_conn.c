/*
 * probe_conn.c - the probe's client core: one SMTP connection, every
 * wait bounded by --timeout, commands paced by --rate, the transcript.
 * Owns: sockets, poll(2) deadlines, STARTTLS (dropping plaintext that
 * arrived before the handshake), QUIT on every close, the per-run
 * connection bound.
 * Never: sleeps without a bound, reads past PROBE_LINE_MAX.
 * Untrusted: every byte from the server.  RFC 5321, 3207.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "probe.h"

#define PROBE_QUIT_MS	2000	/* the wait for QUIT's reply, at most */

static int	conn_wait(struct probe_conn *, short, int64_t deadline);
static int	conn_write(struct probe_conn *, const void *, size_t);
static int	conn_fill(struct probe_conn *, int64_t deadline);
static void	conn_pace(struct probe_run *);
static void	conn_fail(struct probe_conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

int64_t
probe_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
probe_note(struct buf *tr, const char *fmt, ...)
{
	va_list	ap;
	char	line[1024];

	if (tr == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (tr->len + strlen(line) + 40 >= tr->max) {
		if (tr->len + 30 < tr->max)
			buf_addf(tr, "(transcript cut here)\n");
		return;
	}
	buf_addf(tr, "%s\n", line);
}

static void
conn_line(struct buf *tr, const char *who, const char *p, size_t len)
{
	if (tr == NULL || tr->len + 64 >= tr->max)
		return;
	if (len > 400) {
		buf_addf(tr, "%s", who);
		probe_escape(tr, p, 400);
		buf_addf(tr, "... (%zu octets)\n", len);
		return;
	}
	buf_addf(tr, "%s", who);
	probe_escape(tr, p, len);
	buf_addc(tr, '\n');
}

static void
conn_fail(struct probe_conn *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	probe_note(c->tr, "-- %s", c->err);
	c->dead = true;
}

static int
conn_wait(struct probe_conn *c, short ev, int64_t deadline)
{
	struct pollfd	pfd = { .fd = c->fd, .events = ev };
	int64_t		left;
	int		n;

	for (;;) {
		left = deadline - probe_now_ms();
		if (left <= 0)
			return 0;
		n = poll(&pfd, 1, (int)left);
		if (n >= 0 || errno != EINTR)
			return n > 0 ? 1 : n;
	}
}

/* One connection to HOST:PORT from the next --source; the greeting. */
static int
conn_connect(struct probe_conn *c, struct probe_run *run)
{
	struct addrinfo	 hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	const struct probe_opts *o = &run->o;
	int64_t		 deadline = probe_now_ms() + o->timeout_ms;
	int		 e, fd = -1, soerr;
	socklen_t	 sl;
	size_t		 si;

	if ((e = getaddrinfo(o->host, o->port, &hints, &res)) != 0) {
		conn_fail(c, "cannot resolve %s: %s", o->host, gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0)) == -1)
			continue;
		if (o->nsource > 0) {
			si = run->src_next++ % o->nsource;
			if (o->source[si].ss_family != ai->ai_family ||
			    bind(fd, (const struct sockaddr *)&o->source[si],
			    o->sourcelen[si]) == -1) {
				conn_fail(c, "cannot bind source %zu: %s", si,
				    strerror(errno));
				close(fd);
				fd = -1;
				continue;
			}
		}
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && conn_wait(c, POLLOUT,
		    deadline) == 1)) {
			sl = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr,
			    &sl) == 0 && soerr == 0)
				break;
			errno = soerr;
		} else if (errno == EINPROGRESS)
			errno = ETIMEDOUT;
		conn_fail(c, "cannot connect to %s port %s: %s", o->host,
		    o->port, strerror(errno));
		close(fd);
		fd = c->fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		return -1;
	c->dead = false;
	c->err[0] = '\0';
	return 0;
}

int
probe_conn_open(struct probe_conn *c, struct probe_run *run, struct buf *tr)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->run = run;
	c->tr = tr;
	c->dead = true;
	if (run->nconns >= PROBE_CONN_MAX) {
		conn_fail(c, "connection bound reached (%u)", PROBE_CONN_MAX);
		return -1;
	}
	run->nconns++;
	if (conn_connect(c, run) == -1)
		return -1;
	probe_note(tr, "-- connected to %s port %s", run->o.host,
	    run->o.port);
	if (probe_read_reply(c, &c->greeting) == -1)
		return -1;
	if (c->greeting.code != 220) {
		conn_fail(c, "greeting was %u, not 220", c->greeting.code);
		return -1;
	}
	return 0;
}

int
probe_conn_ehlo(struct probe_conn *c)
{
	if (probe_cmd(c, "EHLO %s", c->run->o.helo) == -1)
		return -1;
	c->ehlo = c->r;
	if (c->r.code != 250) {
		conn_fail(c, "EHLO answered %u", c->r.code);
		return -1;
	}
	/* --starttls: every test over TLS where it is offered */
	if (c->run->o.starttls && c->ssl == NULL &&
	    (c->ehlo.ext & CLIENT_EXT_STARTTLS) != 0) {
		if (probe_conn_starttls(c, 0) == -1)
			return -1;
		return probe_conn_ehlo(c);
	}
	return 0;
}

/* --rate: at most N commands a second over the whole run. */
static void
conn_pace(struct probe_run *run)
{
	int64_t	gap, wait;

	gap = 1000 / (run->o.rate > 0 ? run->o.rate : 1);
	wait = run->last_cmd_ms + gap - probe_now_ms();
	if (wait > 0)
		poll(NULL, 0, (int)wait);
	run->last_cmd_ms = probe_now_ms();
	run->ncmds++;
}

static int
conn_write(struct probe_conn *c, const void *p, size_t len)
{
	int64_t		 deadline = probe_now_ms() + c->run->o.timeout_ms;
	const uint8_t	*b = p;
	ssize_t		 n;
	int		 e;

	while (len > 0) {
		if (c->ssl != NULL) {
			n = SSL_write(c->ssl, b, (int)len);
			if (n <= 0) {
				e = SSL_get_error(c->ssl, (int)n);
				if ((e == SSL_ERROR_WANT_WRITE || e ==
				    SSL_ERROR_WANT_READ) && conn_wait(c, e ==
				    SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
				    deadline) == 1)
					continue;
				conn_fail(c, "TLS write failed");
				return -1;
			}
		} else if ((n = send(c->fd, b, len, MSG_NOSIGNAL)) == -1) {
			if ((errno == EAGAIN || errno == EINTR) &&
			    conn_wait(c, POLLOUT, deadline) == 1)
				continue;
			conn_fail(c, "write failed: %s", errno == EAGAIN ?
			    "timeout" : strerror(errno));
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int
probe_send_raw(struct probe_conn *c, const void *p, size_t len,
    const char *shown)
{
	if (c->dead)
		return -1;
	conn_pace(c->run);
	if (shown != NULL)
		probe_note(c->tr, "C: %s", shown);
	else
		conn_line(c->tr, "C: ", p, len);
	return conn_write(c, p, len);
}

int
probe_cmd(struct probe_conn *c, const char *fmt, ...)
{
	char	line[PROBE_ADDR_MAX * 2 + 64];
	va_list	ap;
	int	n;
	int64_t	t0;

	if (c->dead) {
		if (c->err[0] == '\0')
			snprintf(c->err, sizeof(c->err), "not connected");
		return -1;
	}
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		conn_fail(c, "command too long");
		return -1;
	}
	conn_pace(c->run);
	if (strncasecmp(line, "AUTH ", 5) == 0)
		probe_note(c->tr, "C: AUTH ******");
	else
		conn_line(c->tr, "C: ", line, (size_t)n);
	memcpy(line + n, "\r\n", 2);
	t0 = probe_now_ms();
	if (conn_write(c, line, (size_t)n + 2) == -1)
		return -1;
	if (probe_read_reply(c, &c->r) == -1)
		return -1;
	c->r.ms = probe_now_ms() - t0;
	if (c->run->min_reply_ms < 0 || c->r.ms < c->run->min_reply_ms)
		c->run->min_reply_ms = c->r.ms;
	if (c->r.code == 421) {
		probe_note(c->tr, "-- the server closed the session (421)");
		c->dead = true;
		c->quit_sent = true;
	}
	return 0;
}

static int
conn_fill(struct probe_conn *c, int64_t deadline)
{
	ssize_t	n;
	int	e, w;

	for (;;) {
		if (c->ssl != NULL) {
			n = SSL_read(c->ssl, c->in + c->inlen,
			    (int)(sizeof(c->in) - c->inlen));
			if (n > 0)
				break;
			e = SSL_get_error(c->ssl, (int)n);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				n = 0;
			else {
				w = conn_wait(c, e == SSL_ERROR_WANT_READ ?
				    POLLIN : POLLOUT, deadline);
				if (w == 1)
					continue;
				n = -2;
			}
		} else {
			n = recv(c->fd, c->in + c->inlen,
			    sizeof(c->in) - c->inlen, 0);
			if (n > 0)
				break;
			if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
				if (conn_wait(c, POLLIN, deadline) == 1)
					continue;
				n = -2;
			}
		}
		if (n == -2)
			conn_fail(c, "no complete reply within %u ms",
			    c->run->o.timeout_ms);
		else if (n == 0)
			conn_fail(c, "the server closed the connection");
		else
			conn_fail(c, "read failed: %s", strerror(errno));
		return -1;
	}
	c->inlen += (size_t)n;
	return 0;
}

/* One whole reply, bounded in time (one --timeout) and size. */
int
probe_read_reply(struct probe_conn *c, struct probe_reply *r)
{
	int64_t		deadline = probe_now_ms() + c->run->o.timeout_ms;
	size_t		linelen, used;
	enum parse_rc	rc;

	probe_reply_init(r);
	if (c->dead)
		return -1;
	for (;;) {
		rc = probe_line_next(c->in, c->inlen, PROBE_LINE_MAX,
		    &linelen, &used);
		if (rc == PARSE_TOOLONG) {
			conn_fail(c, "reply line longer than %u octets",
			    PROBE_LINE_MAX);
			return -1;
		}
		if (rc == PARSE_MORE) {
			if (conn_fill(c, deadline) == -1)
				return -1;
			continue;
		}
		conn_line(c->tr, "S: ", (const char *)c->in, linelen);
		rc = probe_reply_line(r, (const char *)c->in, linelen);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		if (rc == PARSE_OK)
			return 0;
		if (rc == PARSE_BAD) {
			conn_fail(c, "malformed reply line");
			return -1;
		}
		if (rc == PARSE_TOOLONG) {
			conn_fail(c, "reply of more than %u lines",
			    PROBE_REPLY_LINES_MAX);
			return -1;
		}
	}
}

/*
 * STARTTLS (RFC 3207): after the 220, whatever plaintext is already
 * buffered is dropped (the injection defence on our side); then the
 * handshake, bounded by --timeout; certificates are looked at, never
 * trusted (the caller records the facts).
 */
int
probe_conn_starttls(struct probe_conn *c, int version)
{
	if (probe_cmd(c, "STARTTLS") == -1)
		return -1;
	if (c->r.code != 220) {
		snprintf(c->err, sizeof(c->err), "STARTTLS answered %u",
		    c->r.code);
		return -1;
	}
	return probe_conn_starttls_after(c, version);
}

/* The handshake, once the 220 to STARTTLS is in. */
int
probe_conn_starttls_after(struct probe_conn *c, int version)
{
	SSL_CTX	*ctx;
	SSL	*ssl;
	int64_t	 deadline;
	int	 n, e;

	if (c->inlen > 0) {
		probe_note(c->tr, "-- %zu plaintext octets after 220 dropped",
		    c->inlen);
		c->inlen = 0;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		conn_fail(c, "TLS context: out of memory");
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (version != 0) {	/* what the server accepts, even old ones */
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_min_proto_version(ctx, version);
		SSL_CTX_set_max_proto_version(ctx, version);
	}
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);		/* the SSL holds its reference */
	if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
		SSL_free(ssl);
		conn_fail(c, "TLS: out of memory");
		return -1;
	}
	if (c->run->o.host[0] != '\0')
		SSL_set_tlsext_host_name(ssl, c->run->o.host);
	deadline = probe_now_ms() + c->run->o.timeout_ms;
	while ((n = SSL_connect(ssl)) != 1) {
		e = SSL_get_error(ssl, n);
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
		    conn_wait(c, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    deadline) == 1)
			continue;
		SSL_free(ssl);
		ERR_clear_error();
		conn_fail(c, "TLS handshake failed%s", e ==
		    SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ?
		    " (timeout)" : "");
		return -1;
	}
	c->ssl = ssl;
	probe_note(c->tr, "-- TLS established: %s %s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return 0;
}

/* QUIT always (a polite client), its reply awaited briefly, then close. */
void
probe_conn_close(struct probe_conn *c)
{
	unsigned	t;

	if (c->fd == -1)
		return;
	if (!c->dead && !c->quit_sent) {
		t = c->run->o.timeout_ms;
		if (c->run->o.timeout_ms > PROBE_QUIT_MS)
			c->run->o.timeout_ms = PROBE_QUIT_MS;
		c->quit_sent = true;
		(void)probe_cmd(c, "QUIT");
		c->run->o.timeout_ms = t;
	}
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
	c->dead = true;
}
