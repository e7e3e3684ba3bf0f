/*
 * smtp_session.c - one inbound SMTP session, greeting to QUIT.
 * Owns: session lifecycle, the input loop (command lines, DATA bytes),
 * reply writing and ordering, per-state timeouts, deferred free.
 * Never: disk I/O, directory access, sleeping; see smtp_tx.c (spool),
 * smtp_rcpt.c (directory, policy).
 * Untrusted: every byte from the peer; input is capped where it arrives
 * (SMTP_INPUT_MAX buffered; a line SMTP_CMDLINE_MAX, more for MAIL and
 * RCPT: smtp_parse.h).  RFC 5321, 2920, 3461 3.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../lib/ids.h"
#include "../obs/log_json.h"
#include "../net/tls.h"
#include "../net/worker.h"
#include "smtp_session.h"

#define SMTP_INPUT_MAX	(64 * 1024)	/* buffered input per session */
#define SMTP_OUTPUT_MAX	(64 * 1024)	/* unread replies before we stop */
#define SMTP_DATA_IOV	8		/* evbuffer chunks per DATA scan */

static void	session_read(struct bufferevent *, void *);
static void	session_write(struct bufferevent *, void *);
static void	session_flush(struct smtp_session *);
static void	session_input(struct smtp_session *);
static void	session_event(struct bufferevent *, short, void *);
static void	session_process(struct smtp_session *);
static void	session_greet(evutil_socket_t, short, void *);
static void	session_free_cb(evutil_socket_t, short, void *);
static void	session_timeouts(struct smtp_session *);

void
smtp_log(struct smtp_session *s, enum log_level l, const char *event,
    const char *fmt, ...)
{
	char	prefix[96], sid[ID_STRLEN + 1];
	va_list	ap;

	if (!log_enabled(l))
		return;
	/* The queue id's alphabet (upper-case hex), so that one grep -i
	 * or one case-sensitive search finds both kinds of id alike. */
	id_format(s->id, sid);
	snprintf(prefix, sizeof(prefix), "sid=%s client=%s", sid,
	    s->client);
	va_start(ap, fmt);
	log_eventv(l, event, prefix, fmt, ap);
	va_end(ap);
}

static void
session_client_text(struct smtp_session *s)
{
	const struct sockaddr_in6	*sin6;
	const struct sockaddr_in	*sin;

	if (s->peer.ss_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)&s->peer;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12],
			    s->client, sizeof(s->client));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, s->client,
			    sizeof(s->client));
	} else if (s->peer.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)&s->peer;
		inet_ntop(AF_INET, &sin->sin_addr, s->client,
		    sizeof(s->client));
	} else
		snprintf(s->client, sizeof(s->client), "unknown");
	/* the decision line's prefix= (issue 18) */
	obs_client_prefix(s->client, s->prefix, sizeof(s->prefix));
}

int
smtp_session_accept(struct worker *w, int fd, const struct sockaddr *sa,
    int socklen, enum smtp_listener kind)
{
	struct smtp_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_event(LOG_LVL_WARNING, "accept", "msg=\"out of memory\"");
		evutil_closesocket(fd);
		return -1;
	}
	s->id = id_next();
	s->start_ms = smtp_now_ms();
	s->end = OBS_SESS_DISCONNECTED;		/* unless a reply closes it */
	s->w = w;
	s->submission = kind == SMTP_LISTENER_SUBMISSION;
	/* the submission listener asks for AUTH, which needs TLS anyway */
	s->tls_required = kind == SMTP_LISTENER_TLS ||
	    (kind == SMTP_LISTENER_MX && w->conf->tls_required);
	s->conf = conf_ref(w->conf);
	if ((size_t)socklen <= sizeof(s->peer))
		memcpy(&s->peer, sa, (size_t)socklen);
	session_client_text(s);
	smtp_tx_init(s);
	s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->free_ev = event_new(w->base, -1, 0, session_free_cb, s);
	if (s->bev == NULL || s->free_ev == NULL)
		panic("smtp_session_accept: libevent allocation failed");
	bufferevent_setcb(s->bev, session_read, session_write, session_event,
	    s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SMTP_INPUT_MAX);
	/* replies are written by session_flush, not by an output event */
	s->direct = true;
	bufferevent_disable(s->bev, EV_WRITE);
	worker_session_add(w, s);
	smtp_log(s, LOG_LVL_INFO, "connect", "loop=%u", w->idx);
	guard_peer_hello(w->guard, (struct sockaddr *)&s->peer);
	s->state = ST_PREGREET;
	session_timeouts(s);
	bufferevent_enable(s->bev, EV_READ);
	smtp_dnsbl_start(s);	/* runs during the greeting delay */
	if (s->conf->greeting_delay_ms > 0)
		smtp_timer(s, s->conf->greeting_delay_ms, session_greet);
	else
		session_greet(-1, 0, s);
	return 0;
}

static void
session_greet(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	if (s->dead || smtp_dnsbl_hold_greeting(s))
		return;
	smtp_greet(s);
}

void
smtp_greet(struct smtp_session *s)
{
	if (s->dead || s->state != ST_PREGREET)
		return;
	smtp_set_state(s, ST_CONNECTED);
	smtp_reply(s, R_GREETING, s->conf->hostname);
}

void
smtp_timer(struct smtp_session *s, unsigned ms,
    void (*cb)(evutil_socket_t, short, void *))
{
	struct timeval	tv = { .tv_sec = ms / 1000,
			    .tv_usec = (ms % 1000) * 1000 };

	if (s->timer == NULL)
		s->timer = evtimer_new(s->w->base, cb, s);
	else
		event_assign(s->timer, s->w->base, -1, 0, cb, s);
	if (s->timer == NULL || evtimer_add(s->timer, &tv) == -1)
		panic("smtp_timer: cannot arm the session timer");
}

/* The idle time allowed now: DATA gets its own (RFC 5321 4.5.3.2.6);
 * stress mode (near max_connections) shortens both. */
static unsigned
session_idle_ms(struct smtp_session *s)
{
	unsigned	ms = s->state == ST_DATA ? s->conf->data_timeout_ms :
			    s->conf->command_timeout_ms;

	if (worker_stressed(s->w) && ms > s->conf->stress_command_timeout_ms)
		ms = s->conf->stress_command_timeout_ms;
	return ms;
}

/* The read timeout follows the state; the write timeout catches clients
 * that never read. */
static void
session_timeouts(struct smtp_session *s)
{
	unsigned	ms = session_idle_ms(s);
	struct timeval	tv = { .tv_sec = ms / 1000,
			    .tv_usec = (ms % 1000) * 1000 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void
smtp_session_retime(struct smtp_session *s)
{
	if (!s->dead && s->state != ST_CLOSING)
		session_timeouts(s);
}

void
smtp_set_state(struct smtp_session *s, enum smtp_state st)
{
	bool	data_change = (s->state == ST_DATA) != (st == ST_DATA);

	s->state = st;
	if (data_change)
		session_timeouts(s);
}

/* mxgate_sessions_total{result}: the replies that end a session. */
static const struct {
	enum reply_id		id;
	enum obs_session	result;
} session_ends[] = {
	{ R_QUIT, OBS_SESS_QUIT },
	{ R_TIMEOUT, OBS_SESS_TIMEOUT },
	{ R_TOO_MANY_ERRORS, OBS_SESS_ERRORS },
	{ R_HARVEST_CUTOFF, OBS_SESS_HARVEST },
	{ R_TOO_MANY_COMMANDS, OBS_SESS_COMMANDS },
	{ R_EARLY_TALKER, OBS_SESS_EARLY_TALKER },
	{ R_SHUTDOWN, OBS_SESS_SHUTDOWN },
	{ R_DNSBL_REJECT, OBS_SESS_DNSBL },
};

static enum obs_session
session_end_result(enum reply_id id)
{
	size_t	i;

	for (i = 0; i < sizeof(session_ends) / sizeof(session_ends[0]); i++)
		if (session_ends[i].id == id)
			return session_ends[i].result;
	return OBS_SESS_DISCONNECTED;
}

/* Write "CODE ESC TEXT\r\n", substituting the one "%s" with arg. */
bool
smtp_control(struct smtp_session *s, int mode, const char *event,
    const char *would, const char *detail)
{
	if (mode == CONF_CONTROL_SHADOW)
		smtp_log(s, LOG_LVL_INFO, event, "shadow=1 would=%s%s%s",
		    would, detail && *detail ? " " : "", detail ? detail : "");
	return mode == CONF_CONTROL_ENFORCE;
}

size_t
smtp_reply_fmt(enum reply_id id, const char *arg, char *line, size_t cap)
{
	const struct smtp_reply	*r = smtp_reply_get(id);
	const char		*pct;
	int			 n;

	if (r->esc)
		n = snprintf(line, cap, "%u %s ", r->code, r->esc);
	else
		n = snprintf(line, cap, "%u ", r->code);
	if ((pct = strstr(r->text, "%s")) != NULL)
		n += snprintf(line + n, cap - (size_t)n, "%.*s%s%s",
		    (int)(pct - r->text), r->text, arg ? arg : "", pct + 2);
	else
		n += snprintf(line + n, cap - (size_t)n, "%s", r->text);
	if ((size_t)n > cap - 3)
		n = (int)cap - 3;
	return (size_t)n;
}

void
smtp_reply(struct smtp_session *s, enum reply_id id, const char *arg)
{
	const struct smtp_reply	*r = smtp_reply_get(id);
	struct evbuffer		*out = smtp_out(s);	/* in order */
	char			 line[SMTP_REPLY_MAX];
	size_t			 n;

	if (s->dead || s->state == ST_CLOSING)
		return;
	n = smtp_reply_fmt(id, arg, line, sizeof(line));
	memcpy(line + n, "\r\n", 2);
	evbuffer_add(out, line, n + 2);
	smtp_log(s, LOG_LVL_DEBUG, "reply", "code=%u", r->code);
	if (r->closes) {
		if (s->end == OBS_SESS_DISCONNECTED)
			s->end = session_end_result(id);
		smtp_close(s);
	}
	else if (!s->in_process)
		session_flush(s);
}

void
smtp_reply_line(struct smtp_session *s, const char *line)
{
	struct evbuffer	*out = smtp_out(s);

	if (s->dead || s->state == ST_CLOSING)
		return;
	evbuffer_add(out, line, strlen(line));
	evbuffer_add(out, "\r\n", 2);
	if (!s->in_process)
		session_flush(s);
}

void
smtp_guard_signal(struct smtp_session *s, enum guard_signal sig)
{
	if (s->conf->harvest_guard != CONF_CONTROL_OFF)
		guard_note_signal(s->w->guard, (struct sockaddr *)&s->peer,
		    &s->gs, sig, smtp_now_ms());
}

void
smtp_error(struct smtp_session *s, enum reply_id id)
{
	smtp_guard_signal(s, GUARD_SIG_PROTO);
	smtp_reply(s, id, NULL);
	if (++s->errors >= s->conf->max_errors &&
	    s->state != ST_CLOSING) {
		smtp_log(s, LOG_LVL_INFO, "too_many_errors", "errors=%u",
		    s->errors);
		smtp_reply(s, R_TOO_MANY_ERRORS, s->conf->hostname);
	}
}

static void
session_schedule_free(struct smtp_session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	event_active(s->free_ev, 0, 0);
}

/* Close once every queued reply has been written. */
void
smtp_close(struct smtp_session *s)
{
	if (s->dead)
		return;
	s->state = ST_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    !smtp_held(s))
		session_schedule_free(s);
	else
		session_flush(s);	/* frees once all is written */
}

/*
 * Plain sessions write their replies themselves (s->direct): the output
 * event stays off, so a reply costs one write(2) and no epoll_ctl(2) to
 * turn the event on and off around it (measured: 22 epoll_ctl calls per
 * relayed message before, most of them for that).  Only when the client
 * does not take everything is the event turned on; session_write turns
 * it off again once drained.  Replies made while input is processed are
 * written together at its end (pipelining).
 */
static void
session_flush(struct smtp_session *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	int		 n;

	if (!s->direct || s->dead)
		return;
	while (evbuffer_get_length(out) > 0) {
		/* libevent keeps the front frozen but for its own writes */
		evbuffer_unfreeze(out, 1);
		n = evbuffer_write(out, bufferevent_getfd(s->bev));
		evbuffer_freeze(out, 1);
		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR)) {
			/* the output event writes the rest */
			bufferevent_enable(s->bev, EV_WRITE);
			return;
		}
		smtp_log(s, LOG_LVL_INFO, "lost", "what=write");
		session_schedule_free(s);
		return;
	}
	if (s->state == ST_CLOSING && !smtp_held(s))
		session_schedule_free(s);
}

void
smtp_flush(struct smtp_session *s)
{
	session_flush(s);
}

void
smtp_direct_end(struct smtp_session *s)
{
	session_flush(s);
	s->direct = false;
	if (!s->dead)
		bufferevent_enable(s->bev, EV_WRITE);
}

void
smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == ST_COMMIT || s->state == ST_WAIT || s->dead)
		return;		/* finishes first; closed when it replies */
	smtp_reply(s, R_SHUTDOWN, s->conf->hostname);
}

static void
session_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	smtp_log(s, LOG_LVL_INFO, "disconnect", "messages=%u errors=%u",
	    s->nmsgs, s->errors);
	obs_session_end(&s->w->obs, s->end);
	worker_session_del(s->w, s);
	guard_session_end(s->w->guard, &s->gs);
	smtp_tx_fini(s);
	smtp_hold_free(s);
	smtp_dnsbl_free(s);
	if (s->timer)
		event_free(s->timer);
	event_free(s->free_ev);
	smtp_secure_free(s);
	tls_bev_free(s->bev);		/* a TLS one flushes first */
	conf_unref(s->conf);
	free(s);
}

static void
session_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	s->read_us = smtp_now_us();	/* the floor counts from here */
	if (s->state == ST_PREGREET) {
		/* Talking before the greeting: a ratware signature. */
		smtp_log(s, LOG_LVL_INFO, "early_talker", "bytes=%zu",
		    evbuffer_get_length(bufferevent_get_input(bev)));
		evbuffer_drain(bufferevent_get_input(bev), SMTP_INPUT_MAX);
		if (s->timer)
			evtimer_del(s->timer);
		s->state = ST_CONNECTED;
		smtp_reply(s, R_EARLY_TALKER, NULL);
		return;
	}
	/* A deadline for the whole session, however busy (slowloris). */
	if (smtp_now_ms() - s->start_ms > s->conf->session_timeout_ms) {
		smtp_log(s, LOG_LVL_INFO, "timeout", "what=session");
		evbuffer_drain(bufferevent_get_input(bev), SMTP_INPUT_MAX);
		smtp_reply(s, R_TIMEOUT, s->conf->hostname);
		return;
	}
	session_process(s);
}

static void
session_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	(void)bev;
	if (s->direct)
		bufferevent_disable(s->bev, EV_WRITE);	/* drained */
	if (s->state == ST_CLOSING && !smtp_held(s))
		session_schedule_free(s);
	else if (!s->dead && s->state != ST_COMMIT && s->state != ST_WAIT) {
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);	/* we had stopped for the output */
	}
}

static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)bev;
	if (smtp_secure_event(s, what))
		return;			/* the TLS handshake's end */
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) &&
	    s->state != ST_CLOSING) {
		smtp_log(s, LOG_LVL_INFO, "timeout", "state=%#x", s->state);
		bufferevent_enable(s->bev, EV_WRITE);
		smtp_reply(s, R_TIMEOUT, s->conf->hostname);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		smtp_log(s, LOG_LVL_INFO, "lost", "what=%#x", what);
	session_schedule_free(s);
}

/*
 * The bound of the line at the head of in, checked as its bytes arrive
 * (STYLE R8): an AUTH response's, else the one its verb picks (longer for
 * MAIL and RCPT, smtp_parse.h).  Only the first SMTP_LINE_HEAD bytes are
 * looked at, so a line is judged before it has been parsed.
 */
static size_t
session_line_max(const struct smtp_session *s, struct evbuffer *in)
{
	uint8_t		head[SMTP_LINE_HEAD];
	ev_ssize_t	n;

	if (s->state == ST_AUTH)
		return smtp_secure_line_max(s);
	n = evbuffer_copyout(in, head, sizeof(head));
	return smtp_cmdline_max(head, n > 0 ? (size_t)n : 0);
}

/* One command line; false when more input is needed. */
static bool
session_line(struct smtp_session *s, struct evbuffer *in)
{
	uint8_t			line[SMTP_AUTH_LINE_MAX + 2];
	struct evbuffer_ptr	p;
	size_t			avail = evbuffer_get_length(in), n, max;

	_Static_assert(sizeof(line) >= SMTP_RCPT_LINE_MAX &&
	    sizeof(line) >= SMTP_MAIL_LINE_MAX &&
	    sizeof(line) >= SMTP_CMDLINE_MAX, "session_line: line too short");
	if (avail == 0)
		return false;
	max = session_line_max(s, in);
	p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos < 0 && avail < max) {
		/* A line trickled in a byte at a time resets the idle timer
		 * with every byte: it must still end within the idle time. */
		uint64_t now = smtp_now_ms();

		if (s->partial_ms == 0)
			s->partial_ms = now;
		else if (now - s->partial_ms > session_idle_ms(s)) {
			smtp_log(s, LOG_LVL_INFO, "timeout", "what=line");
			evbuffer_drain(in, avail);
			smtp_reply(s, R_TIMEOUT, s->conf->hostname);
		}
		return false;
	}
	s->partial_ms = 0;
	if (p.pos < 0) {
		if (avail >= max) {
			evbuffer_drain(in, avail);
			if (!s->skipping) {
				s->skipping = true;
				smtp_error(s, smtp_secure_too_long(s));
			}
		}
		return false;
	}
	n = (size_t)p.pos + 1;
	if (s->skipping || n > max) {
		evbuffer_drain(in, n);
		if (!s->skipping)
			smtp_error(s, smtp_secure_too_long(s));
		s->skipping = false;
		return true;
	}
	evbuffer_remove(in, line, n);
	/* Only CRLF ends a line; a bare CR or LF refuses the whole line.
	 * Under strict_framing = shadow the line is taken as a lenient
	 * server takes it: a bare LF ends it, and a CR before that LF is
	 * dropped with it; a CR inside stays for the parser to judge. */
	if (n < 2 || line[n - 2] != '\r' || memchr(line, '\r', n - 2)) {
		char	detail[300];

		snprintf(detail, sizeof(detail), "where=command line=%s",
		    log_esc(line, n, 64));
		if (smtp_control(s, s->conf->strict_framing, "bare_eol",
		    "reject", detail)) {
			smtp_log(s, LOG_LVL_INFO, "bare_eol", "line=%s",
			    log_esc(line, n, 64));
			smtp_error(s, R_BARE_EOL_CMD);
			return true;
		}
		n -= n >= 2 && line[n - 2] == '\r' ? 2 : 1;
		if (s->state != ST_AUTH && memchr(line, '\0', n) != NULL) {
			smtp_error(s, R_NUL_CMD);
			return true;
		}
		smtp_cmd_dispatch(s, line, n);
		return true;
	}
	/* A NUL would cut the line short for whoever reads it as a C
	 * string; no command or argument may hold one (RFC 5321 4.1.1). */
	if (s->state != ST_AUTH && memchr(line, '\0', n - 2) != NULL) {
		smtp_log(s, LOG_LVL_INFO, "nul_command", "line=%s",
		    log_esc(line, n - 2, 64));
		smtp_error(s, R_NUL_CMD);
		return true;
	}
	smtp_cmd_dispatch(s, line, n - 2);
	return true;
}

/* DATA bytes; false when more input is needed. */
static bool
session_data(struct smtp_session *s, struct evbuffer *in)
{
	struct evbuffer_iovec	v[SMTP_DATA_IOV];
	size_t			total = 0, used;
	bool			end = false;
	int			i, n;

	n = evbuffer_peek(in, -1, NULL, v, SMTP_DATA_IOV);
	for (i = 0; i < n && i < SMTP_DATA_IOV && !end; i++) {
		end = smtp_tx_feed(s, v[i].iov_base, v[i].iov_len, &used);
		total += used;
	}
	evbuffer_drain(in, total);
	if (end)
		smtp_tx_end(s);
	return end || total > 0;
}

static void
session_process(struct smtp_session *s)
{
	if (s->in_process) {
		session_input(s);
		return;
	}
	s->in_process = true;
	session_input(s);
	s->in_process = false;
	session_flush(s);
}

static void
session_input(struct smtp_session *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	struct evbuffer	*out = bufferevent_get_output(s->bev);

	while (!s->dead && (s->state & (ST_ANY | ST_DATA | ST_AUTH))) {
		if (evbuffer_get_length(out) > SMTP_OUTPUT_MAX)
			session_flush(s);
		if (evbuffer_get_length(out) + smtp_held_len(s) >
		    SMTP_OUTPUT_MAX) {
			/* The client does not read its replies: stop
			 * reading until they drain (session_write). */
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == ST_DATA) {
			if (!session_data(s, in))
				return;
		} else if (!session_line(s, in))
			return;
	}
}

void
smtp_resume(struct smtp_session *s)
{
	if (s->dead || s->state == ST_CLOSING)
		return;
	if (s->w->stopping) {
		smtp_session_shutdown(s);
		return;
	}
	/* input left waiting (a tarpit, a look-up, a commit) is read now:
	 * the reply floor of what comes next counts from here */
	s->read_us = smtp_now_us();
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}
