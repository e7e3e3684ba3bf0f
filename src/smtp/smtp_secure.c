/*
 * smtp_secure.c - STARTTLS and AUTH on a session: the two commands, the
 * AUTH exchange's lines, the EHLO keywords, the MAIL gate (tls_required,
 * submission), the handshake's end, and the Received header's protocol.
 * Owns: when TLS and AUTH are offered; the session reset after STARTTLS;
 * the delay of a failed AUTH; the password check's hop to a job thread
 * and back by session id (STYLE R14).
 * Never: touches OpenSSL (tls.c does) or the password file (passwd.c);
 * logs a password; acts on plaintext sent before the handshake.
 * Untrusted: the AUTH argument and responses.  RFC 3207, 4954, 3848.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../auth/passwd.h"
#include "../conf/conf.h"
#include "../lib/job.h"
#include "../net/tls.h"
#include "../net/worker.h"
#include "smtp_session.h"

#define SECURE_OUTPUT_MAX	(64 * 1024)	/* TLS records not yet sent */
#define SECURE_FAIL_DELAY_MS	1000	/* before 535: brute force costs */
#define SECURE_JOBS_MAX		64	/* checks queued at once, per loop */

_Static_assert(SMTP_AUTH_USER_MAX == PASSWD_USER_MAX &&
    SMTP_AUTH_PASS_MAX == PASSWD_PASS_MAX, "AUTH and passwd bounds agree");

/* A password check in flight; it carries the session's id, not s. */
struct secure_job {
	struct worker		*w;
	uint64_t		 sid;
	struct passwd_file	*pf;		/* ref held */
	bool			 ok;
	char			 user[SMTP_AUTH_USER_MAX + 1];
	char			 pass[SMTP_AUTH_PASS_MAX + 1];
};

static void	secure_auth_next(struct smtp_session *, enum smtp_auth_rc);
static void	secure_fail(struct smtp_session *, const char *why);

/* DESIGN 2.2: AUTH only on a listener that allows it (and after TLS). */
static bool
secure_auth_offered(const struct smtp_session *s)
{
	return (s->submission || s->conf->auth_on_smtp) &&
	    s->w->passwd != NULL;
}

void
smtp_secure_ehlo(struct smtp_session *s, struct evbuffer *out)
{
	if (s->w->tls != NULL && !s->tls)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	if (s->tls && secure_auth_offered(s))
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
}

enum reply_id
smtp_secure_mail_check(const struct smtp_session *s)
{
	if (s->submission && s->auth_user[0] == '\0')
		return R_AUTH_REQUIRED;
	if (s->tls_required && !s->tls)
		return R_TLS_REQUIRED;
	return R_NONE;
}

/* As session_timeouts() in smtp_session.c, for the new bufferevent. */
static void
secure_timeouts(struct smtp_session *s)
{
	unsigned	ms = s->conf->command_timeout_ms;
	struct timeval	tv;

	if (worker_stressed(s->w) && ms > s->conf->stress_command_timeout_ms)
		ms = s->conf->stress_command_timeout_ms;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* RFC 3207 4.2: forget everything the client said before TLS. */
static void
secure_reset(struct smtp_session *s)
{
	smtp_tx_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->auth_user[0] = '\0';
	smtp_set_state(s, ST_CONNECTED);
}

static void
secure_starttls_later(struct smtp_session *s)
{
	smtp_secure_starttls(s, (struct span){ NULL, 0 });
}

void
smtp_secure_starttls(struct smtp_session *s, struct span arg)
{
	struct bufferevent	*bev;
	size_t			 dropped;

	(void)arg;			/* CF_NOARG: none */
	if (s->tls || s->tls_handshake) {
		smtp_error(s, R_TLS_ACTIVE);
		return;
	}
	if (s->state & (ST_MAIL | ST_RCPT)) {
		smtp_error(s, R_IN_TX);
		return;
	}
	if (s->w->tls == NULL) {
		smtp_error(s, R_TLS_UNAVAILABLE);
		return;
	}
	if (smtp_held(s)) {	/* held replies first, in clear (issue 12) */
		smtp_hold_pause(s, secure_starttls_later);
		return;
	}
	smtp_reply(s, R_TLS_READY, NULL);
	smtp_direct_end(s);		/* 220 first, in clear */
	dropped = evbuffer_get_length(bufferevent_get_input(s->bev));
	if ((bev = tls_starttls(s->w->tls, s->bev, SECURE_OUTPUT_MAX)) ==
	    NULL) {
		smtp_log(s, LOG_LVL_WARNING, "starttls", "result=fail "
		    "reason=\"cannot set up TLS\"");
		smtp_close(s);
		return;
	}
	s->bev = bev;
	s->tls_handshake = true;
	secure_reset(s);
	secure_timeouts(s);
	smtp_log(s, LOG_LVL_DEBUG, "starttls", "result=handshake "
	    "dropped_bytes=%zu", dropped);
	if (dropped > 0)		/* CVE-2011-0411: never read */
		smtp_log(s, LOG_LVL_INFO, "starttls_pipelined", "bytes=%zu "
		    "result=dropped", dropped);
}

bool
smtp_secure_event(struct smtp_session *s, short what)
{
	const char	*v, *c;
	char		 eb[256];

	if (!s->tls_handshake)
		return false;
	s->tls_handshake = false;
	if (what & BEV_EVENT_CONNECTED) {
		if (!tls_bev_info(s->bev, &v, &c))
			v = c = "unknown";
		snprintf(s->tls_version, sizeof(s->tls_version), "%s", v);
		snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", c);
		s->tls = true;
		smtp_log(s, LOG_LVL_INFO, "starttls", "result=ok version=%s "
		    "cipher=%s", s->tls_version, s->tls_cipher);
		return true;
	}
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(eb, sizeof(eb), "handshake timeout");
	else
		(void)tls_bev_error(s->bev, eb, sizeof(eb));
	smtp_log(s, LOG_LVL_INFO, "starttls", "result=fail what=%#x "
	    "reason=\"%s\"", (unsigned)what, log_text(eb, strlen(eb), 200));
	if (what & BEV_EVENT_TIMEOUT) {
		smtp_close(s);		/* nothing to say in clear text */
		return true;
	}
	return false;
}

/* Protocol for Received (RFC 3848) and comments: TLS, who sent it. */
const char *
smtp_secure_with(const struct smtp_session *s, char *buf, size_t len)
{
	bool	tls = s->tls && s->esmtp, auth = s->auth_user[0] != '\0' &&
		    s->esmtp;
	int	n;

	n = snprintf(buf, len, "%s%s%s", s->esmtp ? "ESMTP" : "SMTP",
	    tls ? "S" : "", auth ? "A" : "");
	if (tls && n >= 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, " (%s %s)",
		    s->tls_version, s->tls_cipher);
	if (auth && n >= 0 && (size_t)n < len)
		(void)snprintf(buf + n, len - (size_t)n,
		    "\r\n\t(Authenticated sender: %s)", s->auth_user);
	return buf;
}

/* ---- AUTH ---- */

static enum reply_id
secure_auth_check(const struct smtp_session *s)
{
	if (!secure_auth_offered(s))
		return R_AUTH_DISABLED;
	if (!s->tls)
		return R_AUTH_NEED_TLS;
	if (s->auth_user[0] != '\0')
		return R_AUTH_TWICE;	/* RFC 4954 4 */
	if (s->state == ST_CONNECTED)
		return R_NEED_HELO;
	if (s->state != ST_READY)
		return R_IN_TX;
	return R_NONE;
}

/* The exchange is over, whatever its end: back to ST_READY. */
static void
secure_auth_end(struct smtp_session *s)
{
	if (s->auth != NULL) {
		smtp_auth_clear(s->auth);
		free(s->auth);
		s->auth = NULL;
	}
	smtp_set_state(s, ST_READY);
}

void
smtp_secure_auth(struct smtp_session *s, struct span arg)
{
	enum reply_id	r;

	if ((r = secure_auth_check(s)) != R_NONE) {
		smtp_error(s, r);
		return;
	}
	if ((s->auth = malloc(sizeof(*s->auth))) == NULL) {
		smtp_reply(s, R_AUTH_TEMP, NULL);
		return;
	}
	secure_auth_next(s, smtp_auth_start(s->auth, arg.p, arg.len));
}

void
smtp_secure_line(struct smtp_session *s, const uint8_t *line, size_t len)
{
	if (s->auth == NULL)
		panic("smtp_secure_line: ST_AUTH without an exchange");
	secure_auth_next(s, smtp_auth_step(s->auth, line, len));
}

size_t
smtp_secure_line_max(const struct smtp_session *s)
{
	return s->state == ST_AUTH ? SMTP_AUTH_LINE_MAX + 2 : SMTP_CMDLINE_MAX;
}

enum reply_id
smtp_secure_too_long(struct smtp_session *s)
{
	if (s->state != ST_AUTH)
		return R_LINE_TOO_LONG;
	smtp_log(s, LOG_LVL_INFO, "auth", "mech=%s result=too_long",
	    smtp_auth_mech_name(s->auth->mech));
	secure_auth_end(s);
	return R_AUTH_TOO_LONG;
}

static void
secure_job_run(void *arg)
{
	struct secure_job	*j = arg;

	j->ok = passwd_verify(j->pf, j->user, j->pass);
	explicit_bzero(j->pass, sizeof(j->pass));
}

static void
secure_ok(struct smtp_session *s)
{
	memcpy(s->auth_user, s->auth->user, s->auth->ulen + 1);
	smtp_log(s, LOG_LVL_INFO, "auth", "mech=%s user=%s result=ok",
	    smtp_auth_mech_name(s->auth->mech),
	    log_esc(s->auth_user, s->auth->ulen, 64));
	secure_auth_end(s);
	smtp_reply(s, R_AUTH_OK, NULL);
}

static void
secure_job_done(void *arg)
{
	struct secure_job	*j = arg;
	struct smtp_session	*s = worker_session_find(j->w, j->sid);

	passwd_unref(j->pf);
	if (s != NULL && !s->dead && s->state == ST_WAIT && s->auth != NULL) {
		if (j->ok) {
			secure_ok(s);
			smtp_resume(s);
		} else
			secure_fail(s, "bad_credentials");
	}
	explicit_bzero(j, sizeof(*j));
	free(j);
}

/* Off the loop: crypt(3) takes tens of milliseconds. */
static void
secure_verify(struct smtp_session *s)
{
	struct secure_job	*j = NULL;

	if (s->w->passwd == NULL ||
	    job_pending(s->w->auth_jobs) >= SECURE_JOBS_MAX ||
	    (j = calloc(1, sizeof(*j))) == NULL) {
		smtp_log(s, LOG_LVL_WARNING, "auth", "result=tempfail "
		    "reason=busy");
		secure_auth_end(s);
		smtp_reply(s, R_AUTH_TEMP, NULL);
		return;
	}
	j->w = s->w;
	j->sid = s->id;
	j->pf = passwd_ref(s->w->passwd);
	memcpy(j->user, s->auth->user, s->auth->ulen + 1);
	memcpy(j->pass, s->auth->pass, s->auth->plen + 1);
	explicit_bzero(s->auth->pass, sizeof(s->auth->pass));
	if (job_submit(s->w->auth_jobs, secure_job_run, secure_job_done,
	    j) == -1)
		panic("secure_verify: cannot queue a job");
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
}

static void
secure_fail_reply(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	if (s->dead || s->state != ST_WAIT || s->auth == NULL)
		return;
	secure_auth_end(s);
	smtp_reply(s, R_AUTH_FAILED, NULL);
	if (++s->errors >= s->conf->max_errors && s->state != ST_CLOSING) {
		smtp_log(s, LOG_LVL_INFO, "too_many_errors", "errors=%u",
		    s->errors);
		smtp_reply(s, R_TOO_MANY_ERRORS, s->conf->hostname);
	}
	smtp_resume(s);
}

/* A failed AUTH: a harvest signal, and 535 only after a delay. */
static void
secure_fail(struct smtp_session *s, const char *why)
{
	smtp_log(s, LOG_LVL_INFO, "auth", "mech=%s user=%s result=fail "
	    "reason=%s", smtp_auth_mech_name(s->auth->mech),
	    s->auth->ulen > 0 ? log_esc(s->auth->user, s->auth->ulen, 64) :
	    "-", why);
	smtp_guard_signal(s, GUARD_SIG_AUTH);
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	smtp_timer(s, SECURE_FAIL_DELAY_MS, secure_fail_reply);
}

static const enum reply_id secure_rc_reply[] = {
	[SMTP_AUTH_CANCEL] = R_AUTH_CANCEL,
	[SMTP_AUTH_BAD_B64] = R_AUTH_BAD_B64,
	[SMTP_AUTH_TOO_LONG] = R_AUTH_TOO_LONG,
	[SMTP_AUTH_BAD_MECH] = R_AUTH_MECH,
	[SMTP_AUTH_SYNTAX] = R_AUTH_SYNTAX,
};

static void
secure_auth_next(struct smtp_session *s, enum smtp_auth_rc rc)
{
	static const char *const names[] = {
		[SMTP_AUTH_CANCEL] = "cancelled",
		[SMTP_AUTH_BAD_B64] = "bad_base64",
		[SMTP_AUTH_TOO_LONG] = "too_long",
		[SMTP_AUTH_BAD_MECH] = "bad_mechanism",
		[SMTP_AUTH_SYNTAX] = "syntax",
	};

	if (rc == SMTP_AUTH_CHALLENGE) {
		smtp_set_state(s, ST_AUTH);
		smtp_reply(s, R_AUTH_CHALLENGE, s->auth->challenge);
	} else if (rc == SMTP_AUTH_READY)
		secure_verify(s);
	else if (rc == SMTP_AUTH_MALFORMED)
		secure_fail(s, "malformed");
	else {
		smtp_log(s, LOG_LVL_INFO, "auth", "mech=%s result=%s",
		    smtp_auth_mech_name(s->auth->mech), names[rc]);
		secure_auth_end(s);
		if (rc == SMTP_AUTH_CANCEL)
			smtp_reply(s, R_AUTH_CANCEL, NULL);
		else
			smtp_error(s, secure_rc_reply[rc]);
	}
}

void
smtp_secure_free(struct smtp_session *s)
{
	if (s->auth != NULL) {
		smtp_auth_clear(s->auth);
		free(s->auth);
		s->auth = NULL;
	}
}
