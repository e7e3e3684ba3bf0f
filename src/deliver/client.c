/*
 * client.c - outbound SMTP/LMTP client: a pool of connections per
 * destination on the loop, and one state table for the whole dialogue.
 * Owns: sockets, timers, reuse, the mapping of replies to recipients.
 * The TLS level of a destination (client_tls.c judges a handshake) and
 * its AUTH (client_auth.c encodes it) are applied here, at the states
 * where they matter: after EHLO (STARTTLS offered?), after the handshake
 * (certificate), after the EHLO under TLS (AUTH).
 * Never: calls done() inside client_send() or a connection callback (a
 * zero-delay event does), resolves names, sends mail in clear to a
 * destination whose level is encrypt or verify, sends AUTH outside TLS,
 * logs a password.
 * Untrusted: every reply byte (bounded lines, escaped before it is kept).
 * RFC 5321, 2920 (pipelining), 3207 (STARTTLS), 1870, 6152, 2033 (LMTP),
 * 3030 (BDAT), 4954 (AUTH).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#ifdef MXGATE_TLS
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#endif

#include "../lib/ids.h"
#include "../lib/log.h"
#include "../net/tls.h"
#include "client.h"
#include "client_auth.h"
#include "client_tls.h"

#define CLIENT_CONCURRENCY_DEF	20
#define CLIENT_CONNECT_TMO_DEF	30000
#define CLIENT_CMD_TMO_DEF	300000	/* RFC 5321 4.5.3.2: 5 minutes */
#define CLIENT_DATA_TMO_DEF	600000	/* 4.5.3.2.6: 10 minutes for "." */
#define CLIENT_IDLE_DEF		5000
#define CLIENT_MSGS_DEF		100
#define CLIENT_PATH_MAX		254	/* RFC 5321 4.5.3.1.3: 256 with <> */
#define CLIENT_HELO_MAX		255
#define CLIENT_READ_HIGH	16384	/* input held before we parse it */
#define CLIENT_COPY_MIN		256	/* body runs shorter than this: copy */
#define CLIENT_KEY_MAX		(sizeof(((struct client_dest *)0)->key) - 1)

enum client_state {
	CS_CONNECT, CS_GREETING, CS_EHLO, CS_HELO, CS_STARTTLS, CS_TLS,
	CS_AUTH,
	CS_IDLE,		/* below: setting up; from here: ready */
	CS_MAIL, CS_RCPT, CS_DATA, CS_BODY, CS_RSET, CS_QUIT,
};

enum client_tmo { TMO_CONN, TMO_CMD, TMO_DATA, TMO_IDLE };

enum client_fail {
	CF_CONNECT,	/* refused, unreachable, connect timeout */
	CF_LOST,	/* EOF or error once connected */
	CF_TIMEOUT,	/* no reply in time */
	CF_PROTO,	/* a reply that breaks the grammar or the bounds */
	CF_LOCAL,	/* our own trouble (memory) */
	CF_SHUTDOWN,	/* client_pool_free() */
};

enum client_rstate { RS_PENDING, RS_ACCEPTED, RS_DONE };

struct client_pool;
struct client_dq;

struct client_job {
	TAILQ_ENTRY(client_job)	 entry;
	struct client_msg	*msg;
	size_t			 npending;	/* recipients not done */
	bool			 eightbit;
	const char		*utf8_esc;	/* needs SMTPUTF8: 5.6.7/5.6.9 */
	size_t			*order;		/* recipients sent, in order */
	size_t			 norder;
	uint8_t			*rstate;	/* enum client_rstate */
	bool			 tcp;		/* not unix: the TLS words */
	enum client_tls_level	 level;
	char			 tls[160];	/* what the last connection
						 * that had it negotiated */
};
TAILQ_HEAD(client_jobs, client_job);

struct client_conn {
	TAILQ_ENTRY(client_conn) entry;
	struct client_dq	*dq;
	struct bufferevent	*bev;
	struct event		*tmo;
	struct evbuffer_cb_entry *out_cb;	/* body progress */
	enum client_state	 state;
	size_t			 addr_i;	/* address being tried */
	char			 peer[320];	/* "name[addr]:port" */
	char			 mta[256];	/* for results */
	bool			 connected;	/* this socket */
	bool			 ever_connected;	/* any address */
	bool			 tls;
	bool			 notls;		/* TLS failed: no STARTTLS */
	bool			 authed;	/* AUTH succeeded */
	enum client_auth_mech	 auth_mech;
	unsigned		 auth_step;	/* LOGIN: responses sent */
	struct client_tls_info	 ti;		/* valid while tls */
	unsigned		 ext;		/* CLIENT_EXT_* */
	unsigned long		 size_max;
	unsigned		 nmsgs;		/* transactions started */
	struct client_job	*job;
	struct client_rcpt_result fail;	/* the last setup failure */
	/* the transaction in progress */
	bool			 pipelined;
	bool			 tx_failed;	/* MAIL refused */
	bool			 tx_replied;	/* any reply since MAIL */
	bool			 empty_data;	/* "." sent without a body */
	bool			 bdat;		/* body as one BDAT n LAST */
	size_t			 nrcpt, rcpt_got, naccepted;
	size_t			 lmtp_left, lmtp_cur;
	struct client_reply	 reply;		/* being parsed */
};
TAILQ_HEAD(client_conns, client_conn);

/* One destination key: its waiting messages and its connections. */
struct client_dq {
	TAILQ_ENTRY(client_dq)	 entry;
	struct client_pool	*pool;
	struct client_dest	 dest;
	struct client_jobs	 waiting;
	struct client_conns	 conns;
	unsigned		 nconns;
	bool			 dirty;		/* dispatch at the next kick */
};

struct client_pool {
	struct event_base	*base;
	struct client_opts	 opts;
	char			 helo[CLIENT_HELO_MAX + 1];
	TAILQ_HEAD(, client_dq)	 dqs;
	struct client_jobs	 done;		/* done() not yet called */
	struct event		*kick;		/* dispatch dirty dests */
	struct event		*done_ev;	/* call done() */
	unsigned long		 connects;
	bool			 in_done;	/* inside done() callbacks */
	bool			 free_pending;	/* freed inside done() */
	bool			 closing;
};

/* One row per state: what we wait for, and what each event means. */
struct client_step {
	const char	*name;
	int		(*on_reply)(struct client_conn *,
			    const struct client_reply *);
	enum client_tmo	 tmo;
	void		(*on_timeout)(struct client_conn *);
	void		(*on_lost)(struct client_conn *, int);
};

static const struct {
	unsigned	 code;
	const char	*esc;
} client_fail_codes[] = {
	[CF_CONNECT] = { 421, "4.4.1" },
	[CF_LOST] = { 421, "4.4.2" },
	[CF_TIMEOUT] = { 421, "4.4.2" },
	[CF_PROTO] = { 451, "4.5.0" },
	[CF_LOCAL] = { 451, "4.3.0" },
	[CF_SHUTDOWN] = { 421, "4.3.2" },
};

static int	on_greet(struct client_conn *, const struct client_reply *);
static int	on_ehlo(struct client_conn *, const struct client_reply *);
static int	on_helo(struct client_conn *, const struct client_reply *);
static int	on_stls(struct client_conn *, const struct client_reply *);
static int	on_auth(struct client_conn *, const struct client_reply *);
static int	on_idle(struct client_conn *, const struct client_reply *);
static int	on_mail(struct client_conn *, const struct client_reply *);
static int	on_rcpt(struct client_conn *, const struct client_reply *);
static int	on_data(struct client_conn *, const struct client_reply *);
static int	on_final(struct client_conn *, const struct client_reply *);
static int	on_rset(struct client_conn *, const struct client_reply *);
static int	on_quit(struct client_conn *, const struct client_reply *);
static int	on_none(struct client_conn *, const struct client_reply *);
static void	tmo_conn(struct client_conn *);
static void	tmo_reply(struct client_conn *);
static void	tmo_tls(struct client_conn *);
static void	tmo_idle(struct client_conn *);
static void	tmo_close(struct client_conn *);
static void	lost_conn(struct client_conn *, int);
static void	lost_tx(struct client_conn *, int);
static void	lost_tls(struct client_conn *, int);
static void	lost_quiet(struct client_conn *, int);
static void	conn_connect(struct client_conn *);
static void	conn_note_tls(struct client_conn *);
static void	conn_log_clear(struct client_conn *);
static int	conn_auth_start(struct client_conn *);
static int	conn_auth_fail(struct client_conn *,
		    const struct client_reply *, const char *);
static int	conn_send_bdat(struct client_conn *);
static int	conn_send_body(struct client_conn *, int);
static void	conn_close(struct client_conn *, const char *);
static void	conn_next(struct client_conn *);
static int	conn_tls_failed(struct client_conn *, const char *);
static int	conn_policy_fail(struct client_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	conn_read_cb(struct bufferevent *, void *);
static void	conn_event_cb(struct bufferevent *, short, void *);
static void	conn_tls_done(struct client_conn *);
static void	conn_tmo_cb(evutil_socket_t, short, void *);
static void	conn_out_cb(struct evbuffer *, const struct evbuffer_cb_info *,
		    void *);
static void	conn_fail(struct client_conn *, enum client_fail,
		    const char *, ...) __attribute__((format(printf, 3, 4)));

static const struct client_step client_steps[] = {
	/* [state] = { name, on reply, timeout, on timeout, on lost } */
	[CS_CONNECT] = { "connect", on_none, TMO_CONN, tmo_conn, lost_conn },
	[CS_GREETING] = { "greeting", on_greet, TMO_CMD, tmo_reply, lost_tx },
	[CS_EHLO] = { "EHLO", on_ehlo, TMO_CMD, tmo_reply, lost_tx },
	[CS_HELO] = { "HELO", on_helo, TMO_CMD, tmo_reply, lost_tx },
	[CS_STARTTLS] = { "STARTTLS", on_stls, TMO_CMD, tmo_reply, lost_tx },
	[CS_TLS] = { "TLS handshake", on_none, TMO_CMD, tmo_tls, lost_tls },
	[CS_AUTH] = { "AUTH", on_auth, TMO_CMD, tmo_reply, lost_tx },
	[CS_IDLE] = { "idle", on_idle, TMO_IDLE, tmo_idle, lost_quiet },
	[CS_MAIL] = { "MAIL", on_mail, TMO_CMD, tmo_reply, lost_tx },
	[CS_RCPT] = { "RCPT", on_rcpt, TMO_CMD, tmo_reply, lost_tx },
	[CS_DATA] = { "DATA", on_data, TMO_CMD, tmo_reply, lost_tx },
	[CS_BODY] = { "end of data", on_final, TMO_DATA, tmo_reply, lost_tx },
	[CS_RSET] = { "RSET", on_rset, TMO_CMD, tmo_close, lost_quiet },
	[CS_QUIT] = { "QUIT", on_quit, TMO_CMD, tmo_close, lost_quiet },
};

/* Results */

/* Escaped, truncated without cutting an escape "\xHH" in half. */
static void
result_text(char *dst, size_t dstlen, const char *src, size_t len)
{
	const char	*e = log_text(src, len, CLIENT_LINE_MAX);
	size_t		 n = strlen(e), k;

	if (n >= dstlen) {
		n = dstlen - 1;
		for (k = n > 3 ? n - 3 : 0; k < n; k++)
			if (e[k] == '\\') {
				n = k;
				break;
			}
	}
	memcpy(dst, e, n);
	dst[n] = '\0';
}

static void
result_set(struct client_rcpt_result *res, unsigned code, const char *esc,
    const char *mta, const char *text, size_t len)
{
	res->code = code;
	res->relay[0] = '\0';		/* conn_relay() fills it in */
	snprintf(res->esc, sizeof(res->esc), "%s", esc);
	snprintf(res->mta, sizeof(res->mta), "%s", mta);
	result_text(res->text, sizeof(res->text), text, len);
}

static void
result_failv(struct client_rcpt_result *res, enum client_fail f,
    const char *mta, const char *fmt, va_list ap)
{
	char	text[512];
	int	n;

	n = vsnprintf(text, sizeof(text), fmt, ap);
	if (n < 0)
		n = 0;
	result_set(res, client_fail_codes[f].code, client_fail_codes[f].esc,
	    mta, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

static void
result_fail(struct client_rcpt_result *res, enum client_fail f,
    const char *mta, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	result_failv(res, f, mta, fmt, ap);
	va_end(ap);
}

/* A server reply; without an enhanced code, the class alone (X.0.0). */
static void
result_reply(struct client_rcpt_result *res, const struct client_reply *r,
    const char *mta)
{
	char	esc[12];

	if (r->esc[0] != '\0')
		snprintf(esc, sizeof(esc), "%s", r->esc);
	else
		snprintf(esc, sizeof(esc), "%c.0.0",
		    (char)('0' + r->code / 100));
	result_set(res, r->code, esc, mta, r->line, r->linelen);
}

/* Jobs: one message and its per-recipient progress */

static bool
client_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s & 0x80)
			return false;
	return true;
}

/* No control bytes: a CR or LF in a path would inject a command. */
static bool
client_path_ok(const char *s)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f ||
		    i >= CLIENT_PATH_MAX)
			return false;
	return true;
}

/*
 * Whether a message received with SMTPUTF8 needs it on the next hop too
 * (RFC 6531 3.2): a non-ASCII envelope address (then 5.6.7), or an 8-bit
 * byte in the header section (5.6.9); NULL when neither, so an ASCII
 * message goes to any hop, without the parameter (3.4: SHOULD NOT).
 */
static const char *
job_utf8_needed(const struct client_msg *m)
{
	const uint8_t	*p = m->body, *end = m->body + m->bodylen;
	size_t		 i;

	if (!m->smtputf8)
		return NULL;
	if (m->sender != NULL && !client_ascii(m->sender))
		return "5.6.7";
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i] != NULL && !client_ascii(m->rcpts[i]))
			return "5.6.7";
	for (; p < end; p++) {
		if (*p & 0x80)
			return "5.6.9";
		if (*p == '\n' && end - p >= 3 && p[1] == '\r' && p[2] == '\n')
			break;			/* the empty line: the body */
	}
	return NULL;
}

static struct client_job *
job_new(struct client_msg *m)
{
	struct client_job	*job;
	size_t			 i;

	job = calloc(1, sizeof(*job) + m->nrcpts * (sizeof(size_t) + 1));
	if (job == NULL)
		panic("client_send: out of memory");
	job->msg = m;
	job->order = (size_t *)(job + 1);
	job->rstate = (uint8_t *)(job->order + m->nrcpts);
	job->npending = m->nrcpts;
	for (i = 0; i < m->bodylen && !job->eightbit; i++)
		job->eightbit = (m->body[i] & 0x80) != 0;
	job->utf8_esc = job_utf8_needed(m);
	if (m->nrcpts > 0)
		memset(m->results, 0, m->nrcpts * sizeof(*m->results));
	return job;
}

static void
job_set(struct client_job *job, size_t i, const struct client_rcpt_result *r)
{
	if (job->rstate[i] == RS_DONE)
		return;
	job->msg->results[i] = *r;
	job->msg->results[i].tls[0] = '\0';	/* job_finish() says */
	job->rstate[i] = RS_DONE;
	job->npending--;
}

/* Every recipient still in state st (or not done, if st is RS_DONE). */
static void
job_set_all(struct client_job *job, enum client_rstate st,
    const struct client_rcpt_result *r)
{
	size_t	i;

	for (i = 0; i < job->msg->nrcpts; i++)
		if (st == RS_DONE || job->rstate[i] == st)
			job_set(job, i, r);
}

/* Recipients our own syntax check refuses never reach the server. */
static void
job_check_paths(struct client_job *job)
{
	struct client_msg		*m = job->msg;
	struct client_rcpt_result	 r;
	size_t				 i;

	if (m->sender == NULL || !client_path_ok(m->sender)) {
		result_set(&r, 553, "5.1.7", "", "bad sender address syntax",
		    25);
		job_set_all(job, RS_DONE, &r);
		return;
	}
	result_set(&r, 553, "5.1.3", "", "bad recipient address syntax", 29);
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i] == NULL || m->rcpts[i][0] == '\0' ||
		    !client_path_ok(m->rcpts[i]))
			job_set(job, i, &r);
}

static void
job_finish(struct client_pool *pool, struct client_job *job, const char *key)
{
	struct client_msg	*m = job->msg;
	char			 id[ID_STRLEN + 1];
	size_t			 i, n[3] = { 0, 0, 0 };

	for (i = 0; i < m->nrcpts && job->tcp; i++)
		if (m->results[i].tls[0] == '\0') {
			if (job->tls[0] != '\0')
				snprintf(m->results[i].tls,
				    sizeof(m->results[i].tls), "%s", job->tls);
			else
				snprintf(m->results[i].tls,
				    sizeof(m->results[i].tls),
				    "tls_required=%s tls=none",
				    client_tls_level_name(job->level));
		}
	if (log_enabled(LOG_LVL_DEBUG)) {
		for (i = 0; i < m->nrcpts; i++)
			n[m->results[i].code >= 500 ? 2 :
			    m->results[i].code >= 400 ? 1 : 0]++;
		id_format(m->id, id);
		log_event(LOG_LVL_DEBUG, "client_msg", "id=%s dest=%s "
		    "rcpts=%zu delivered=%zu deferred=%zu failed=%zu", id,
		    log_esc(key, strnlen(key, CLIENT_KEY_MAX), 100), m->nrcpts,
		    n[0], n[1], n[2]);
	}
	TAILQ_INSERT_TAIL(&pool->done, job, entry);
	if (!pool->closing)
		event_active(pool->done_ev, EV_TIMEOUT, 1);
}

/* Destinations */

static void
dq_touch(struct client_dq *dq)
{
	dq->dirty = true;
	if (!dq->pool->closing)
		event_active(dq->pool->kick, EV_TIMEOUT, 1);
}

static struct client_dq *
dq_find(const struct client_pool *pool, const char *key)
{
	struct client_dq	*dq;

	TAILQ_FOREACH(dq, &pool->dqs, entry)
		if (strcmp(dq->dest.key, key) == 0)
			return dq;
	return NULL;
}

/* The same TLS level, names, CAs, pins and login: a connection made
 * under one policy never carries mail of another (a reload). */
static bool
dq_same_policy(const struct client_tls_policy *a,
    const struct client_tls_policy *b)
{
	return a->level == b->level && strcmp(a->name, b->name) == 0 &&
	    a->store == b->store && a->pins.n == b->pins.n &&
	    memcmp(a->pins.d, b->pins.d, sizeof(a->pins.d)) == 0 &&
	    dane_same(a->tlsa, a->ntlsa, b->tlsa, b->ntlsa) &&
	    a->auth == b->auth && strcmp(a->user, b->user) == 0 &&
	    strcmp(a->pass, b->pass) == 0;
}

static struct client_dq *
dq_find_dest(const struct client_pool *pool, const char *key,
    const struct client_tls_policy *tls)
{
	struct client_dq	*dq;

	TAILQ_FOREACH(dq, &pool->dqs, entry)
		if (strcmp(dq->dest.key, key) == 0 &&
		    dq_same_policy(&dq->dest.tls, tls))
			return dq;
	return NULL;
}

/* The newest copy of dest is used once no connection relies on the old. */
static struct client_dq *
dq_get(struct client_pool *pool, const struct client_dest *dest)
{
	struct client_dq	*dq;
	char			 key[sizeof(dest->key)];

	snprintf(key, sizeof(key), "%.*s", (int)sizeof(key) - 1, dest->key);
	if ((dq = dq_find_dest(pool, key, &dest->tls)) == NULL) {
		if ((dq = calloc(1, sizeof(*dq))) == NULL)
			panic("client_send: out of memory");
		dq->pool = pool;
		TAILQ_INIT(&dq->waiting);
		TAILQ_INIT(&dq->conns);
		TAILQ_INSERT_TAIL(&pool->dqs, dq, entry);
	} else if (dq->nconns > 0)
		return dq;
	dq->dest = *dest;
	dq->dest.key[sizeof(dq->dest.key) - 1] = '\0';
	dq->dest.path[sizeof(dq->dest.path) - 1] = '\0';
	dq->dest.name[sizeof(dq->dest.name) - 1] = '\0';
	dq->dest.tls.name[sizeof(dq->dest.tls.name) - 1] = '\0';
	dq->dest.tls.user[sizeof(dq->dest.tls.user) - 1] = '\0';
	dq->dest.tls.pass[sizeof(dq->dest.tls.pass) - 1] = '\0';
	if (dq->dest.tls.pins.n > FPRINT_PINS_MAX)
		dq->dest.tls.pins.n = FPRINT_PINS_MAX;
	if (dq->dest.tls.ntlsa > DANE_TLSA_MAX)
		dq->dest.tls.ntlsa = DANE_TLSA_MAX;
	/* RFC 4954 4: a password goes under TLS only */
	if (dq->dest.tls.auth && dq->dest.tls.level < CLIENT_TLS_ENCRYPT)
		dq->dest.tls.level = CLIENT_TLS_ENCRYPT;
	if (dq->dest.naddrs > CLIENT_ADDR_MAX)
		dq->dest.naddrs = CLIENT_ADDR_MAX;
	return dq;
}

/* A login's password does not outlive its destination. */
static void
dq_free(struct client_dq *dq)
{
	explicit_bzero(&dq->dest.tls, sizeof(dq->dest.tls));
	free(dq);
}

static struct client_conn *
dq_idle_conn(struct client_dq *dq)
{
	struct client_conn	*c;

	TAILQ_FOREACH(c, &dq->conns, entry)
		if (c->state == CS_IDLE && c->job == NULL)
			return c;
	return NULL;
}

/* No address answered: the messages waiting here would fare no better. */
static void
dq_fail_waiting(struct client_dq *dq, const struct client_rcpt_result *r)
{
	struct client_job	*job;
	struct client_conn	*c;

	TAILQ_FOREACH(c, &dq->conns, entry)
		if (c->connected)
			return;
	while ((job = TAILQ_FIRST(&dq->waiting)) != NULL) {
		TAILQ_REMOVE(&dq->waiting, job, entry);
		job_set_all(job, RS_DONE, r);
		job_finish(dq->pool, job, dq->dest.key);
	}
}

/* Connections */

static enum client_tls_level
conn_level(const struct client_conn *c)
{
	return c->dq->dest.unix_sock ? CLIENT_TLS_NONE : c->dq->dest.tls.level;
}

/* The job's TLS words ("tls_required=L tls=..."), from this connection. */
static void
conn_note_tls(struct client_conn *c)
{
	const char	*req = client_tls_level_name(conn_level(c));

	if (c->job == NULL || c->dq->dest.unix_sock)
		return;
	if (c->tls)
		snprintf(c->job->tls, sizeof(c->job->tls), "tls_required=%s "
		    "tls=%s tls_cipher=%s tls_verified=%s", req,
		    c->ti.version, c->ti.cipher, c->ti.verified);
	else
		snprintf(c->job->tls, sizeof(c->job->tls),
		    "tls_required=%s tls=none", req);
}

static size_t
conn_naddrs(const struct client_conn *c)
{
	return c->dq->dest.unix_sock ? 1 : c->dq->dest.naddrs;
}

static unsigned
conn_ms(const struct client_conn *c, enum client_tmo t)
{
	const struct client_opts	*o = &c->dq->pool->opts;

	switch (t) {
	case TMO_CONN:
		return o->connect_timeout_ms;
	case TMO_DATA:
		return o->data_timeout_ms;
	case TMO_IDLE:
		return o->idle_ms;
	default:
		return o->command_timeout_ms;
	}
}

static void
conn_arm(struct client_conn *c, unsigned ms)
{
	struct timeval	tv = { ms / 1000, (long)(ms % 1000) * 1000 };

	evtimer_add(c->tmo, &tv);
}

static void
conn_enter(struct client_conn *c, enum client_state st)
{
	c->state = st;
	conn_arm(c, conn_ms(c, client_steps[st].tmo));
}

static void
conn_cmd(struct client_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
conn_cmd(struct client_conn *c, const char *fmt, ...)
{
	char	line[CLIENT_CMD_MAX];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		panic("conn_cmd: command over %d octets", CLIENT_CMD_MAX);
	log_event(LOG_LVL_DEBUG, "client_cmd", "dest=%s cmd=\"%s\"",
	    log_esc(c->dq->dest.key, strlen(c->dq->dest.key), 100),
	    log_text(line, (size_t)n, 100));
	memcpy(line + n, "\r\n", 2);
	if (bufferevent_write(c->bev, line, (size_t)n + 2) == -1)
		log_event(LOG_LVL_WARNING, "client_cmd",
		    "msg=\"write failed\"");
}

/* A command that holds a credential: logged as `shown` only. */
static void
conn_cmd_secret(struct client_conn *c, const char *shown, char *line)
{
	size_t	n = strlen(line);

	log_event(LOG_LVL_DEBUG, "client_cmd", "dest=%s cmd=\"%s\"",
	    log_esc(c->dq->dest.key, strlen(c->dq->dest.key), 100), shown);
	if (n + 2 >= CLIENT_CMD_MAX)
		panic("conn_cmd_secret: command over %d octets",
		    CLIENT_CMD_MAX);
	memcpy(line + n, "\r\n", 2);
	if (bufferevent_write(c->bev, line, n + 2) == -1)
		log_event(LOG_LVL_WARNING, "client_cmd",
		    "msg=\"write failed\"");
	explicit_bzero(line, n + 2);
}

/* "name[addr]:port" for logs and reasons; mta: name, else the address. */
static void
conn_describe(struct client_conn *c, const struct sockaddr_storage *ss)
{
	const struct client_dest	*d = &c->dq->dest;
	char				 a[INET6_ADDRSTRLEN] = "?";
	unsigned			 port = 0;

	if (d->unix_sock) {
		snprintf(c->peer, sizeof(c->peer), "unix:%s", d->path);
		snprintf(c->mta, sizeof(c->mta), "%.255s", d->name[0] ?
		    d->name : c->peer);
		return;
	}
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		port = ntohs(sin6->sin6_port);
	}
	snprintf(c->peer, sizeof(c->peer), "%s[%s]:%u", d->name, a, port);
	if (d->name[0] != '\0')
		snprintf(c->mta, sizeof(c->mta), "%s", d->name);
	else
		snprintf(c->mta, sizeof(c->mta), "[%s]", a);
}

/* A non-blocking socket already connecting to address addr_i. */
static int
conn_socket(struct client_conn *c)
{
	const struct client_dest	*d = &c->dq->dest;
	const struct sockaddr_storage	*ss = &d->addrs[c->addr_i];
	struct sockaddr_un		 sun;
	const struct sockaddr		*sa = (const void *)ss;
	socklen_t			 sl;
	int				 fd, e;

	conn_describe(c, ss);
	if (d->unix_sock) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (strlen(d->path) >= sizeof(sun.sun_path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(sun.sun_path, d->path, strlen(d->path));
		sa = (const void *)&sun;
		sl = sizeof(sun);
	} else if (ss->ss_family == AF_INET)
		sl = sizeof(struct sockaddr_in);
	else if (ss->ss_family == AF_INET6)
		sl = sizeof(struct sockaddr_in6);
	else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	if (connect(fd, sa, sl) == -1 && errno != EINPROGRESS) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Reading starts once connected: no reply can come before that. */
static void
conn_bev_setup(struct client_conn *c, short enable)
{
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CLIENT_READ_HIGH);
	bufferevent_enable(c->bev, enable);
}

/* Try address addr_i: 0 if the connect is under way. */
static int
conn_connect_one(struct client_conn *c)
{
	struct client_pool	*pool = c->dq->pool;
	int			 fd;

	pool->connects++;
	if ((fd = conn_socket(c)) == -1) {
		result_fail(&c->fail, CF_CONNECT, c->mta, "connect to %s: %s",
		    c->peer, strerror(errno));
		log_event(LOG_LVL_INFO, "client_connect_fail", "dest=%s "
		    "peer=%s reason=\"%s\"", log_esc(c->dq->dest.key,
		    strlen(c->dq->dest.key), 100), log_esc(c->peer,
		    strlen(c->peer), 200), c->fail.text);
		return -1;
	}
	c->bev = bufferevent_socket_new(pool->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL || bufferevent_socket_connect(c->bev, NULL, 0)) {
		if (c->bev != NULL)
			bufferevent_free(c->bev);
		else
			close(fd);
		c->bev = NULL;
		result_fail(&c->fail, CF_CONNECT, c->mta, "connect to %s: "
		    "out of memory", c->peer);
		return -1;
	}
	conn_bev_setup(c, EV_WRITE);
	conn_enter(c, CS_CONNECT);
	return 0;
}

/* Close the socket, keep the conn and its job (a retry may follow). */
static void
conn_drop(struct client_conn *c, const char *reason)
{
	const char	*key = c->dq->dest.key;

	if (c->out_cb != NULL && c->bev != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		    c->out_cb);
	c->out_cb = NULL;
	if (c->connected)
		log_event(LOG_LVL_INFO, "client_close", "dest=%s peer=%s "
		    "msgs=%u tls=%s reason=\"%s\"", log_esc(key, strlen(key),
		    100), log_esc(c->peer, strlen(c->peer), 200), c->nmsgs,
		    c->tls ? "yes" : "no", log_text(reason, strlen(reason),
		    200));
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	c->connected = false;
	c->tls = false;
	c->authed = false;
	c->auth_mech = CLIENT_AUTH_NONE;
	c->auth_step = 0;
	c->ext = 0;
	c->size_max = 0;
	evtimer_del(c->tmo);
	client_reply_init(&c->reply);
}

static struct client_conn *
conn_new(struct client_dq *dq, struct client_job *job)
{
	struct client_conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->tmo = evtimer_new(dq->pool->base, conn_tmo_cb, c)) == NULL)
		panic("client: out of memory");
	c->dq = dq;
	c->job = job;
	result_fail(&c->fail, CF_CONNECT, "", "%s: no address to connect to",
	    dq->dest.key);
	TAILQ_INSERT_TAIL(&dq->conns, c, entry);
	dq->nconns++;
	return c;
}

/* Which connection answered, for the delivered/deferred lines. */
static void
conn_relay(struct client_conn *c)
{
	struct client_msg	*m = c->job->msg;
	size_t			 i;

	for (i = 0; i < m->nrcpts; i++)
		if (m->results[i].relay[0] == '\0')
			snprintf(m->results[i].relay,
			    sizeof(m->results[i].relay), "%s", c->peer);
}

/* Free the conn; its job, if any, must have been settled or re-queued. */
static void
conn_close(struct client_conn *c, const char *reason)
{
	struct client_dq		*dq = c->dq;
	struct client_rcpt_result	 r;

	conn_drop(c, reason);
	if (c->job != NULL) {
		result_fail(&r, CF_LOST, c->mta, "%s: connection closed: %s",
		    c->peer, reason);
		job_set_all(c->job, RS_DONE, &r);
		conn_relay(c);
		job_finish(dq->pool, c->job, dq->dest.key);
	}
	TAILQ_REMOVE(&dq->conns, c, entry);
	dq->nconns--;
	event_free(c->tmo);
	free(c);
	dq_touch(dq);
}

/* Hand the job back if every recipient has its result. */
static void
conn_settle(struct client_conn *c)
{
	size_t	i;

	if (c->job != NULL && c->job->npending == 0) {
		for (i = 0; i < c->job->msg->nrcpts; i++)
			c->job->msg->results[i].hop_dsn =
			    (c->ext & CLIENT_EXT_DSN) != 0;
		conn_relay(c);
		job_finish(c->dq->pool, c->job, c->dq->dest.key);
		c->job = NULL;
	}
}

/* Every address failed: the job gets the last failure. */
static void
conn_give_up(struct client_conn *c)
{
	struct client_dq		*dq = c->dq;
	struct client_rcpt_result	 r = c->fail;
	bool				 dead = !c->ever_connected;

	if (c->job != NULL) {
		job_set_all(c->job, RS_DONE, &r);
		conn_settle(c);
	}
	conn_close(c, r.text);
	if (dead)
		dq_fail_waiting(dq, &r);
}

static void
conn_connect(struct client_conn *c)
{
	while (c->addr_i < conn_naddrs(c)) {
		if (conn_connect_one(c) == 0)
			return;
		c->addr_i++;
		c->notls = false;
	}
	conn_give_up(c);
}

/* A failure before the first transaction: maybe the next address. */
static void
conn_setup_fail(struct client_conn *c, const struct client_rcpt_result *r,
    bool try_next)
{
	conn_note_tls(c);
	c->fail = *r;
	conn_drop(c, r->text);
	if (try_next) {
		c->addr_i++;
		c->notls = false;
	} else
		c->addr_i = conn_naddrs(c);
	conn_connect(c);
}

static void
conn_fail(struct client_conn *c, enum client_fail f, const char *fmt, ...)
{
	struct client_rcpt_result	r;
	va_list				ap;

	va_start(ap, fmt);
	result_failv(&r, f, c->mta, fmt, ap);
	va_end(ap);
	if (c->state < CS_IDLE) {
		conn_setup_fail(c, &r, true);
		return;
	}
	/* A cached connection the server dropped before our first command
	 * was answered: the message has lost nothing, try it afresh. */
	if (c->job != NULL && f == CF_LOST && c->nmsgs > 1 && !c->tx_replied) {
		TAILQ_INSERT_HEAD(&c->dq->waiting, c->job, entry);
		c->job = NULL;
	} else if (c->job != NULL) {
		job_set_all(c->job, RS_DONE, &r);
		conn_settle(c);
	}
	conn_close(c, r.text);
}

/* Reading replies */

/* One line without its CRLF; a bare LF ends a line too (lenient). */
static enum parse_rc
conn_read_line(struct bufferevent *bev, char *line, size_t *lenp)
{
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 eol;
	size_t			 eol_len = 0, n;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos < 0)
		return evbuffer_get_length(in) >= CLIENT_LINE_MAX ?
		    PARSE_TOOLONG : PARSE_MORE;
	n = (size_t)eol.pos + eol_len;
	if (n > CLIENT_LINE_MAX)
		return PARSE_TOOLONG;
	if (evbuffer_remove(in, line, n) != (int)n)
		return PARSE_BAD;
	n -= eol_len;
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	*lenp = n;
	return PARSE_OK;
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct client_conn	*c = arg;
	struct client_reply	 r;
	char			 line[CLIENT_LINE_MAX];
	size_t			 len;
	enum parse_rc		 rc;

	while (bev == c->bev) {
		if ((rc = conn_read_line(bev, line, &len)) == PARSE_MORE)
			return;
		if (rc == PARSE_OK)
			rc = client_reply_line(&c->reply, line, len);
		if (rc == PARSE_MORE)
			continue;
		if (rc != PARSE_OK) {
			conn_fail(c, CF_PROTO, "%s: %s in reply to %s",
			    c->peer, rc == PARSE_TOOLONG ? "reply too long" :
			    "malformed reply", client_steps[c->state].name);
			return;
		}
		r = c->reply;
		client_reply_init(&c->reply);
		/* 3xx only after DATA (and AUTH), and DATA only with 3xx, 4xx,
		 * 5xx: a 250 to DATA would count a body never sent as
		 * delivered. */
		if (c->state == CS_DATA ? r.code / 100 == 2 :
		    c->state != CS_AUTH && r.code / 100 == 3) {
			conn_fail(c, CF_PROTO, "%s: unexpected reply to %s: "
			    "%.3s", c->peer, client_steps[c->state].name,
			    r.line);
			return;
		}
		log_event(LOG_LVL_DEBUG, "client_reply", "dest=%s step=%s "
		    "reply=\"%s\"", log_esc(c->dq->dest.key,
		    strlen(c->dq->dest.key), 100), client_steps[c->state].name,
		    log_text(r.line, r.linelen, 200));
		if (client_steps[c->state].on_reply(c, &r) == -1)
			return;
	}
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client_conn	*c = arg;
	int			 e = errno;

	if (bev != c->bev)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CS_TLS) {
			conn_tls_done(c);
			return;
		}
		c->connected = c->ever_connected = true;
		log_event(LOG_LVL_INFO, "client_connect", "dest=%s peer=%s",
		    log_esc(c->dq->dest.key, strlen(c->dq->dest.key), 100),
		    log_esc(c->peer, strlen(c->peer), 200));
		bufferevent_enable(bev, EV_READ);
		conn_enter(c, CS_GREETING);
		return;
	}
	client_steps[c->state].on_lost(c, (what & BEV_EVENT_ERROR) ? e : 0);
}

static void
conn_tmo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client_conn	*c = arg;

	(void)fd;
	(void)what;
	client_steps[c->state].on_timeout(c);
}

/* Timeouts and lost connections, per state (see client_steps) */

static void
tmo_conn(struct client_conn *c)
{
	conn_fail(c, CF_CONNECT, "connect to %s: timed out", c->peer);
}

static void
tmo_reply(struct client_conn *c)
{
	conn_fail(c, CF_TIMEOUT, "%s: timeout waiting for reply to %s",
	    c->peer, client_steps[c->state].name);
}

static void
tmo_tls(struct client_conn *c)
{
	conn_tls_failed(c, "TLS handshake timed out");
}

static void
tmo_idle(struct client_conn *c)
{
	conn_cmd(c, "QUIT");
	conn_enter(c, CS_QUIT);
}

static void
tmo_close(struct client_conn *c)
{
	conn_close(c, "timeout");
}

static void
lost_conn(struct client_conn *c, int e)
{
	conn_fail(c, CF_CONNECT, "connect to %s: %s", c->peer,
	    e != 0 ? strerror(e) : "connection failed");
}

static void
lost_tx(struct client_conn *c, int e)
{
	conn_fail(c, CF_LOST, "%s: connection lost waiting for reply to "
	    "%s%s%s", c->peer, client_steps[c->state].name, e ? ": " : "",
	    e ? strerror(e) : "");
}

static void
lost_tls(struct client_conn *c, int e)
{
	char	eb[200], why[240];

	(void)e;
	snprintf(why, sizeof(why), "TLS handshake failed: %s",
	    tls_bev_error(c->bev, eb, sizeof(eb)));
	conn_tls_failed(c, why);
}

static void
lost_quiet(struct client_conn *c, int e)
{
	conn_close(c, e ? strerror(e) : "closed by server");
}

/* Setting up: greeting, EHLO/LHLO, HELO, STARTTLS */

static int
conn_hello(struct client_conn *c, const char *verb, enum client_state st)
{
	conn_cmd(c, "%s %s", verb, c->dq->pool->helo);
	conn_enter(c, st);
	return 0;
}

/* A refusal while setting up: 4xx tries the next address, 5xx is final
 * for every recipient (RFC 5321 3.1, 4.2.5). */
static int
conn_setup_reply(struct client_conn *c, const struct client_reply *r)
{
	struct client_rcpt_result	res;

	result_reply(&res, r, c->mta);
	conn_setup_fail(c, &res, r->code / 100 != 5);
	return -1;
}

static int
conn_ready(struct client_conn *c)
{
	struct client_job	*job = c->job;

	if (!c->tls && !c->dq->dest.unix_sock)
		conn_log_clear(c);
	c->job = NULL;
	c->state = CS_IDLE;
	if (job != NULL) {
		TAILQ_INSERT_HEAD(&c->dq->waiting, job, entry);
	}
	conn_next(c);
	return 0;
}

/* "the session is not encrypted, and why" (the `may` and `none` levels). */
static void
conn_log_clear(struct client_conn *c)
{
	const char	*why = conn_level(c) == CLIENT_TLS_NONE ?
			    "TLS not wanted (none)" : c->notls ?
			    "TLS handshake failed before" :
			    !(c->ext & CLIENT_EXT_STARTTLS) ?
			    "STARTTLS not offered" : "STARTTLS refused";

	log_event(LOG_LVL_INFO, "client_tls", "dest=%s peer=%s required=%s "
	    "encrypted=no reason=\"%s\"", log_esc(c->dq->dest.key,
	    strlen(c->dq->dest.key), 100), log_esc(c->peer, strlen(c->peer),
	    200), client_tls_level_name(conn_level(c)), why);
}

static int
on_greet(struct client_conn *c, const struct client_reply *r)
{
	if (r->code / 100 != 2)
		return conn_setup_reply(c, r);
	return conn_hello(c, c->dq->dest.lmtp ? "LHLO" : "EHLO", CS_EHLO);
}

static bool
conn_want_tls(const struct client_conn *c)
{
#ifdef MXGATE_TLS
	return c->dq->pool->opts.ssl_ctx != NULL && !c->tls && !c->notls &&
	    conn_level(c) >= CLIENT_TLS_MAY && (c->ext & CLIENT_EXT_STARTTLS);
#else
	(void)c;
	return false;
#endif
}

/* EHLO answered, TLS as the level wants: AUTH if we log in, else ready. */
static int
conn_after_hello(struct client_conn *c)
{
	if (!c->tls && conn_level(c) >= CLIENT_TLS_ENCRYPT)
		return conn_policy_fail(c, "%s %s", c->peer,
		    c->dq->pool->opts.ssl_ctx == NULL ? "needs TLS, but we "
		    "have no TLS client context" : (c->ext &
		    CLIENT_EXT_STARTTLS) ? "offered STARTTLS we cannot use" :
		    "did not offer STARTTLS");
	if (c->dq->dest.tls.auth && !c->authed)
		return conn_auth_start(c);
	return conn_ready(c);
}

static int
on_ehlo(struct client_conn *c, const struct client_reply *r)
{
	if (r->code / 100 == 2) {
		c->ext = r->ext;
		c->size_max = r->size_max;
		if (conn_want_tls(c)) {
			conn_cmd(c, "STARTTLS");
			conn_enter(c, CS_STARTTLS);
			return 0;
		}
		return conn_after_hello(c);
	}
	/* RFC 5321 3.2: a server that does not know EHLO may know HELO;
	 * LMTP has no HELO (RFC 2033 4.1). */
	if (r->code / 100 == 5 && !c->dq->dest.lmtp)
		return conn_hello(c, "HELO", CS_HELO);
	return conn_setup_reply(c, r);
}

static int
on_helo(struct client_conn *c, const struct client_reply *r)
{
	if (r->code / 100 != 2)
		return conn_setup_reply(c, r);
	c->ext = 0;
	c->size_max = 0;
	return conn_after_hello(c);
}

/*
 * Put TLS under the connection.  Whatever the server sent after its 220
 * is thrown away: it came before TLS and cannot be trusted (RFC 3207
 * 4.2; the client side of CVE-2011-0411).  SNI and the name to verify
 * come from the destination's policy (client_tls.c).
 */
static int
conn_tls_start(struct client_conn *c)
{
#ifdef MXGATE_TLS
	struct evbuffer		*in = bufferevent_get_input(c->bev);
	struct bufferevent	*bev;
	SSL			*ssl;

	evbuffer_drain(in, evbuffer_get_length(in));
	if ((ssl = client_tls_ssl_new(c->dq->pool->opts.ssl_ctx,
	    &c->dq->dest.tls, c->dq->dest.name)) == NULL)
		return conn_tls_failed(c, "cannot set up TLS (SSL_new)");
	bev = bufferevent_openssl_filter_new(c->dq->pool->base, c->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return conn_tls_failed(c, "out of memory");
	c->bev = bev;		/* it owns the socket bufferevent now */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	conn_bev_setup(c, EV_READ | EV_WRITE);
	conn_enter(c, CS_TLS);
	return -1;		/* stop reading the plaintext bufferevent */
#else
	return conn_ready(c);
#endif
}

/* The handshake is done: judge it by the level, log it, EHLO again. */
static void
conn_tls_done(struct client_conn *c)
{
#ifdef MXGATE_TLS
	const struct client_dest	*d = &c->dq->dest;
	bool				 ok;

	c->tls = true;
	ok = client_tls_judge(bufferevent_openssl_get_ssl(c->bev), &d->tls,
	    d->name, &c->ti);
	log_event(LOG_LVL_INFO, "client_tls", "dest=%s peer=%s required=%s "
	    "encrypted=yes version=%s cipher=%s subject=\"%s\" sha256=%s "
	    "verified=%s%s%s%s", log_esc(d->key, strlen(d->key), 100),
	    log_esc(c->peer, strlen(c->peer), 200),
	    client_tls_level_name(conn_level(c)), c->ti.version,
	    c->ti.cipher, c->ti.subject, c->ti.fp + 7, c->ti.verified,
	    ok ? "" : " reason=\"", ok ? "" : c->ti.why, ok ? "" : "\"");
	if (!ok) {
		conn_policy_fail(c, "certificate of %s not verified: %s",
		    c->peer, c->ti.why);
		return;
	}
#endif
	conn_cmd(c, "%s %s", c->dq->dest.lmtp ? "LHLO" : "EHLO",
	    c->dq->pool->helo);
	conn_enter(c, CS_EHLO);
}

/*
 * At `may`, a failed handshake means once more in the clear (the next
 * connection does not try STARTTLS); at encrypt and verify, the
 * message is deferred: never in the clear.
 */
static int
conn_tls_failed(struct client_conn *c, const char *why)
{
	if (conn_level(c) >= CLIENT_TLS_ENCRYPT)
		return conn_policy_fail(c, "%s: %s", c->peer, why);
	log_event(LOG_LVL_INFO, "client_tls_fail", "dest=%s peer=%s "
	    "required=%s action=plaintext reason=\"%s\"",
	    log_esc(c->dq->dest.key, strlen(c->dq->dest.key), 100),
	    log_esc(c->peer, strlen(c->peer), 200),
	    client_tls_level_name(conn_level(c)), why);
	c->notls = true;
	conn_drop(c, why);
	conn_connect(c);
	return -1;
}

/* The level is not met: 454 4.7.5 for the job, the next address. */
static int
conn_policy_fail(struct client_conn *c, const char *fmt, ...)
{
	struct client_rcpt_result	r;
	char				text[400];
	va_list				ap;
	int				n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	log_event(LOG_LVL_INFO, "client_tls_fail", "dest=%s peer=%s "
	    "required=%s action=defer reason=\"%s\"",
	    log_esc(c->dq->dest.key, strlen(c->dq->dest.key), 100),
	    log_esc(c->peer, strlen(c->peer), 200),
	    client_tls_level_name(conn_level(c)),
	    log_text(text, strlen(text), 300));
	result_set(&r, 454, "4.7.5", c->mta, "", 0);
	snprintf(r.text, sizeof(r.text), "TLS required (%s): %s",
	    client_tls_level_name(conn_level(c)), log_text(text,
	    (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1, 200));
	conn_setup_fail(c, &r, true);
	return -1;
}

static int
on_stls(struct client_conn *c, const struct client_reply *r)
{
	if (r->code == 220)
		return conn_tls_start(c);
	if (conn_level(c) >= CLIENT_TLS_ENCRYPT)
		return conn_policy_fail(c, "%s refused STARTTLS: %s", c->peer,
		    log_text(r->line, r->linelen, 120));
	/* RFC 3207 4: a refused STARTTLS leaves the session as it was. */
	return conn_ready(c);
}

/* AUTH (RFC 4954), under TLS only: PLAIN with an initial response, or
 * LOGIN.  The credentials never reach a log line. */
static int
conn_auth_start(struct client_conn *c)
{
	const struct client_tls_policy	*p = &c->dq->dest.tls;
	char				 line[CLIENT_CMD_MAX];

	if (!c->tls)
		panic("conn_auth_start: AUTH outside TLS");
	c->auth_mech = client_auth_pick(c->ext);
	c->auth_step = 0;
	switch (c->auth_mech) {
	case CLIENT_AUTH_PLAIN:
		if (client_auth_plain(p->user, p->pass, line,
		    sizeof(line) - 2) == -1)
			return conn_auth_fail(c, NULL, "bad credentials");
		conn_cmd_secret(c, "AUTH PLAIN (credentials not logged)",
		    line);
		break;
	case CLIENT_AUTH_LOGIN:
		conn_cmd(c, "AUTH LOGIN");
		break;
	default:
		return conn_auth_fail(c, NULL, "offers no AUTH PLAIN or "
		    "LOGIN");
	}
	conn_enter(c, CS_AUTH);
	return 0;
}

static int
on_auth(struct client_conn *c, const struct client_reply *r)
{
	const struct client_tls_policy	*p = &c->dq->dest.tls;
	char				 line[CLIENT_CMD_MAX];

	if (r->code == 235) {
		c->authed = true;
		log_event(LOG_LVL_INFO, "client_auth", "dest=%s peer=%s "
		    "user=%s mech=%s result=ok", log_esc(c->dq->dest.key,
		    strlen(c->dq->dest.key), 100), log_esc(c->peer,
		    strlen(c->peer), 200), log_esc(p->user, strlen(p->user),
		    100), c->auth_mech == CLIENT_AUTH_PLAIN ? "PLAIN" :
		    "LOGIN");
		return conn_ready(c);
	}
	/* LOGIN: 334 asks for the user, then the password */
	if (r->code == 334 && c->auth_mech == CLIENT_AUTH_LOGIN &&
	    c->auth_step < 2) {
		if (client_auth_b64(c->auth_step == 0 ? p->user : p->pass,
		    line, sizeof(line) - 2) == -1)
			return conn_auth_fail(c, NULL, "bad credentials");
		conn_cmd_secret(c, c->auth_step == 0 ? "(user, base64)" :
		    "(password not logged)", line);
		c->auth_step++;
		conn_enter(c, CS_AUTH);
		return 0;
	}
	return conn_auth_fail(c, r, NULL);
}

/*
 * A refused login: deferred, never returned (the credentials or the
 * relay may be fixed); a 5xx reply becomes 454 (RFC 4954 6) with its
 * enhanced code made temporary (5.7.8: 4.7.8).  Not tried at
 * the next address: it would refuse the same login.
 */
static int
conn_auth_fail(struct client_conn *c, const struct client_reply *r,
    const char *why)
{
	const struct client_tls_policy	*p = &c->dq->dest.tls;
	struct client_rcpt_result	 res;
	char				 reply[300];

	if (r != NULL)
		snprintf(reply, sizeof(reply), "%s", log_text(r->line,
		    r->linelen, 200));
	else
		snprintf(reply, sizeof(reply), "%s", why);
	log_event(LOG_LVL_INFO, "client_auth", "dest=%s peer=%s user=%s "
	    "mech=%s result=fail reply=\"%s\"", log_esc(c->dq->dest.key,
	    strlen(c->dq->dest.key), 100), log_esc(c->peer, strlen(c->peer),
	    200), log_esc(p->user, strlen(p->user), 100),
	    c->auth_mech == CLIENT_AUTH_PLAIN ? "PLAIN" :
	    c->auth_mech == CLIENT_AUTH_LOGIN ? "LOGIN" : "none", reply);
	result_set(&res, 454, "4.7.0", c->mta, "", 0);
	if (r != NULL && r->code / 100 >= 4) {
		res.code = r->code / 100 == 5 ? 454 : r->code;
		if (r->esc[0] != '\0')
			snprintf(res.esc, sizeof(res.esc), "4%s", r->esc + 1);
	}
	if (snprintf(res.text, sizeof(res.text), "AUTH as %s at %s failed: "
	    "%s", log_esc(p->user, strlen(p->user), 60), c->peer, reply) < 0)
		res.text[0] = '\0';	/* cut to fit: the log has it whole */
	conn_setup_fail(c, &res, false);
	return -1;
}

static int
on_none(struct client_conn *c, const struct client_reply *r)
{
	(void)r;
	conn_fail(c, CF_PROTO, "%s: reply during %s", c->peer,
	    client_steps[c->state].name);
	return -1;
}

/* The body */

static int
body_run(struct evbuffer *out, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	if (n < CLIENT_COPY_MIN)
		return evbuffer_add(out, p, n);
	return evbuffer_add_reference(out, p, n, NULL, NULL);
}

/*
 * The body as it goes on the wire: a "." opening a line gets a second
 * one (RFC 5321 4.5.2), a last line without CRLF gets one, then ".".
 * Long runs between stuffed dots are referenced, not copied: the caller
 * keeps the body until done(), and no done() comes while they are queued.
 * A bare LF counts as a line end here: a receiver that is lenient about
 * LF must not see an end of data we did not mean.
 */
static int
client_body_add(struct evbuffer *out, const uint8_t *p, size_t len)
{
	const uint8_t	*nl;
	size_t		 start = 0, pos = 0;

	while (pos < len) {
		if (p[pos] == '.') {
			if (body_run(out, p + start, pos - start) == -1 ||
			    evbuffer_add(out, ".", 1) == -1)
				return -1;
			start = pos;
		}
		if ((nl = memchr(p + pos, '\n', len - pos)) == NULL)
			break;
		pos = (size_t)(nl - p) + 1;
	}
	if (body_run(out, p + start, len - start) == -1)
		return -1;
	if (len > 0 && (len < 2 || p[len - 2] != '\r' || p[len - 1] != '\n') &&
	    evbuffer_add(out, "\r\n", 2) == -1)
		return -1;
	return evbuffer_add(out, ".\r\n", 3);
}

/* Body bytes left for the socket: progress re-arms the data timeout. */
static void
conn_out_cb(struct evbuffer *out, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct client_conn	*c = arg;

	(void)out;
	if (info->n_deleted > 0 && c->state == CS_BODY)
		conn_arm(c, c->dq->pool->opts.data_timeout_ms);
}

/* Transactions */

/*
 * A DSN parameter value from the queue file goes out as it came in:
 * printable, no blank, no "=", bounded (RFC 3461 4: xtext), else not at
 * all.
 */
static bool
client_param_ok(const char *v, size_t max)
{
	size_t	i;

	for (i = 0; v[i] != '\0'; i++)
		if (v[i] <= ' ' || v[i] > '~' || v[i] == '=' || i >= max)
			return false;
	return i > 0;
}

/* RFC 3461 4.1: " NOTIFY=NEVER", " NOTIFY=SUCCESS,FAILURE,DELAY". */
static void
client_dsn_notify(unsigned bits, char *out, size_t outsz)
{
	static const char *const words[] = { "NEVER", "SUCCESS", "FAILURE",
		"DELAY" };
	size_t	j, o;
	int	n;

	o = (size_t)snprintf(out, outsz, " NOTIFY=");
	for (j = 0; j < 4; j++) {
		if (!(bits & (1u << j)))
			continue;
		n = snprintf(out + o, outsz - o, "%s%s",
		    out[o - 1] == '=' ? "" : ",", words[j]);
		if (n < 0 || (size_t)n >= outsz - o)
			break;
		o += (size_t)n;
	}
}

static void
conn_send_rcpt(struct client_conn *c, size_t k)
{
	struct client_job	*job = c->job;

	const struct client_msg	*m = job->msg;
	size_t			 i = job->order[k];
	char			 notify[40] = "", orcpt[8 + CLIENT_ORCPT_MAX] = "";

	/* The longest RCPT fits conn_cmd's line with CRLF (812 of 1024):
	 * job_check_paths caps a path at CLIENT_PATH_MAX octets, UTF-8
	 * included, and ORCPT is held to its RFC 3461 bound. */
	_Static_assert(sizeof("RCPT TO:<>") - 1 + CLIENT_PATH_MAX +
	    sizeof(notify) - 1 + sizeof(orcpt) - 1 + 3 <= CLIENT_CMD_MAX,
	    "conn_send_rcpt: CLIENT_CMD_MAX too small");
	/* RFC 3461 4.1, 4.2: only to a hop that offers DSN; verbatim */
	if ((c->ext & CLIENT_EXT_DSN) && m->dsn_notify != NULL &&
	    m->dsn_notify[i] != 0)
		client_dsn_notify(m->dsn_notify[i], notify, sizeof(notify));
	if ((c->ext & CLIENT_EXT_DSN) && m->dsn_orcpt != NULL &&
	    m->dsn_orcpt[i] != NULL && client_param_ok(m->dsn_orcpt[i],
	    CLIENT_ORCPT_MAX))
		snprintf(orcpt, sizeof(orcpt), " ORCPT=%s", m->dsn_orcpt[i]);
	conn_cmd(c, "RCPT TO:<%s>%s%s", m->rcpts[i], notify, orcpt);
}

/* Start job: MAIL, and with PIPELINING every RCPT and DATA in one write
 * (RFC 2920 3.1).  The job may be finished at once (SIZE). */
static void
conn_start_job(struct client_conn *c, struct client_job *job)
{
	struct client_msg		*m = job->msg;
	struct client_rcpt_result	 r;
	char				 size[32] = "", ret[12] = "";
	char				 envid[8 + CLIENT_ENVID_MAX] = "";
	size_t				 i, k;

	/* The longest MAIL (440 octets with CRLF) fits, as RCPT's does. */
	_Static_assert(sizeof("MAIL FROM:<>") - 1 + CLIENT_PATH_MAX +
	    sizeof(size) - 1 + sizeof(" BODY=8BITMIME") - 1 +
	    sizeof(" SMTPUTF8") - 1 + sizeof(ret) - 1 + sizeof(envid) - 1 +
	    3 <= CLIENT_CMD_MAX, "conn_start_job: CLIENT_CMD_MAX too small");
	c->job = job;
	conn_note_tls(c);
	if ((c->ext & CLIENT_EXT_SIZE) && c->size_max > 0 &&
	    m->bodylen > c->size_max) {
		result_fail(&r, CF_LOCAL, c->mta, "message size %zu exceeds "
		    "the limit of %s (%lu)", m->bodylen, c->peer, c->size_max);
		r.code = 552;
		memcpy(r.esc, "5.3.4", 6);
		job_set_all(job, RS_DONE, &r);
		conn_settle(c);
		return;
	}
	/* RFC 6531 3.2: returned as undeliverable, never downgraded */
	if (job->utf8_esc != NULL && !(c->ext & CLIENT_EXT_SMTPUTF8)) {
		result_fail(&r, CF_LOCAL, c->mta, "%s does not offer SMTPUTF8, "
		    "which this message needs", c->peer);
		r.code = job->utf8_esc[4] == '7' ? 553 : 554;
		snprintf(r.esc, sizeof(r.esc), "%s", job->utf8_esc);
		job_set_all(job, RS_DONE, &r);
		conn_settle(c);
		return;
	}
	c->nmsgs++;
	c->tx_failed = c->tx_replied = c->empty_data = false;
	c->rcpt_got = c->naccepted = c->lmtp_left = c->lmtp_cur = 0;
	for (job->norder = 0, i = 0; i < m->nrcpts; i++)
		if (job->rstate[i] == RS_PENDING)
			job->order[job->norder++] = i;
	c->nrcpt = job->norder;
	c->pipelined = (c->ext & CLIENT_EXT_PIPELINING) != 0;
	if (c->ext & CLIENT_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%zu", m->bodylen);
	/* RFC 3461 4.3, 4.4: only to a hop that offers DSN; verbatim */
	if ((c->ext & CLIENT_EXT_DSN) && m->dsn_ret != 0)
		snprintf(ret, sizeof(ret), " RET=%s", m->dsn_ret == 1 ?
		    "FULL" : "HDRS");
	if ((c->ext & CLIENT_EXT_DSN) && m->dsn_envid != NULL &&
	    client_param_ok(m->dsn_envid, CLIENT_ENVID_MAX))
		snprintf(envid, sizeof(envid), " ENVID=%s", m->dsn_envid);
	conn_cmd(c, "MAIL FROM:<%s>%s%s%s%s%s", m->sender, size,
	    job->eightbit && (c->ext & CLIENT_EXT_8BITMIME) ?
	    " BODY=8BITMIME" : "", m->smtputf8 &&
	    (c->ext & CLIENT_EXT_SMTPUTF8) ? " SMTPUTF8" : "", ret, envid);
	/* RFC 3030: raw, no dot-stuffing; LMTP stays on DATA */
	c->bdat = (c->ext & CLIENT_EXT_CHUNKING) && !c->dq->dest.lmtp;
	if (c->pipelined) {
		for (k = 0; k < c->nrcpt; k++)
			conn_send_rcpt(c, k);
		if (!c->bdat)
			conn_cmd(c, "DATA");
	}
	conn_enter(c, CS_MAIL);
}

/* Ready for a transaction: the next waiting message, QUIT, or idle. */
static void
conn_next(struct client_conn *c)
{
	struct client_job	*job;

	while (c->job == NULL) {
		if (c->nmsgs >= c->dq->pool->opts.max_msgs_per_conn) {
			conn_cmd(c, "QUIT");
			conn_enter(c, CS_QUIT);
			return;
		}
		if ((job = TAILQ_FIRST(&c->dq->waiting)) == NULL) {
			conn_enter(c, CS_IDLE);
			return;
		}
		TAILQ_REMOVE(&c->dq->waiting, job, entry);
		conn_start_job(c, job);
	}
}

/* RFC 5321 4.1.1.5: a transaction that failed part-way is reset. */
static int
conn_rset(struct client_conn *c)
{
	conn_cmd(c, "RSET");
	conn_enter(c, CS_RSET);
	return 0;
}

static void
conn_reply_all(struct client_conn *c, enum client_rstate st,
    const struct client_reply *r)
{
	struct client_rcpt_result	res;

	if (c->job == NULL)
		return;
	result_reply(&res, r, c->mta);
	job_set_all(c->job, st, &res);
	conn_settle(c);
}

static int
on_mail(struct client_conn *c, const struct client_reply *r)
{
	c->tx_replied = true;
	if (r->code / 100 == 2) {
		if (!c->pipelined)
			conn_send_rcpt(c, 0);
		conn_enter(c, CS_RCPT);
		return 0;
	}
	/* A refused MAIL refuses every recipient; with pipelining their
	 * RCPT and DATA replies are still to come (RFC 2920 3.1). */
	c->tx_failed = true;
	conn_reply_all(c, RS_PENDING, r);
	if (!c->pipelined)
		return conn_rset(c);
	conn_enter(c, CS_RCPT);
	return 0;
}

static int
on_rcpt(struct client_conn *c, const struct client_reply *r)
{
	struct client_rcpt_result	 res;
	struct client_job		*job = c->job;
	size_t				 i;

	if (job != NULL && !c->tx_failed && c->rcpt_got < job->norder) {
		i = job->order[c->rcpt_got];
		if (r->code / 100 == 2) {
			job->rstate[i] = RS_ACCEPTED;
			c->naccepted++;
		} else {
			result_reply(&res, r, c->mta);
			job_set(job, i, &res);
			conn_settle(c);
		}
	}
	if (++c->rcpt_got < c->nrcpt) {
		if (!c->pipelined)
			conn_send_rcpt(c, c->rcpt_got);
		conn_enter(c, CS_RCPT);
		return 0;
	}
	if (c->naccepted == 0 && (!c->pipelined || c->bdat))
		return conn_rset(c);	/* no DATA, no body */
	if (c->bdat)		/* after the RCPT replies: no wasted chunk */
		return conn_send_bdat(c);
	if (!c->pipelined)
		conn_cmd(c, "DATA");
	conn_enter(c, CS_DATA);
	return 0;
}

/* The whole body as one chunk (RFC 3030 2): it goes as stored. */
static int
conn_send_bdat(struct client_conn *c)
{
	struct evbuffer		*out = bufferevent_get_output(c->bev);
	const struct client_msg	*m = c->job->msg;

	conn_cmd(c, "BDAT %zu LAST", m->bodylen);
	return conn_send_body(c, body_run(out, m->body, m->bodylen));
}

/* The body is in the output buffer (queued == 0): wait for its replies. */
static int
conn_send_body(struct client_conn *c, int queued)
{
	if (queued == -1) {
		conn_fail(c, CF_LOCAL, "out of memory sending the body");
		return -1;
	}
	c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev),
	    conn_out_cb, c);
	c->lmtp_left = c->naccepted;
	conn_enter(c, CS_BODY);
	return 0;
}

static int
on_data(struct client_conn *c, const struct client_reply *r)
{
	struct evbuffer	*out = bufferevent_get_output(c->bev);

	if (r->code / 100 != 3) {
		conn_reply_all(c, RS_ACCEPTED, r);
		return conn_rset(c);
	}
	if (c->naccepted == 0) {
		/* RFC 2920 3.1: DATA was pipelined and accepted although no
		 * recipient was; end it empty.  LMTP would owe no reply. */
		if (c->dq->dest.lmtp) {
			conn_close(c, "354 without recipients");
			return -1;
		}
		c->empty_data = true;
		conn_cmd(c, ".");
		conn_enter(c, CS_BODY);
		return 0;
	}
	return conn_send_body(c, client_body_add(out, c->job->msg->body,
	    c->job->msg->bodylen));
}

/* The transaction is over (RFC 5321 4.1.1.4): no RSET needed. */
static int
conn_tx_end(struct client_conn *c)
{
	if (c->out_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		    c->out_cb);
	c->out_cb = NULL;
	conn_settle(c);
	conn_next(c);
	return 0;
}

static int
on_final(struct client_conn *c, const struct client_reply *r)
{
	struct client_rcpt_result	 res;
	struct client_job		*job = c->job;
	size_t				 i;

	/* A reply before our "." went out breaks RFC 5321 4.1.1.4, and the
	 * unsent body must not outlive done(): close first. */
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		if (r->code / 100 != 2)
			conn_reply_all(c, RS_ACCEPTED, r);
		conn_fail(c, CF_PROTO, "%s: reply before end of data",
		    c->peer);
		return -1;
	}
	if (c->bdat && r->code / 100 != 2) {
		/* RFC 3030 2: a refused chunk fails the transaction */
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
		    c->out_cb);
		c->out_cb = NULL;
		conn_reply_all(c, RS_ACCEPTED, r);
		return conn_rset(c);
	}
	if (c->empty_data || !c->dq->dest.lmtp) {
		conn_reply_all(c, RS_ACCEPTED, r);
		return conn_tx_end(c);
	}
	/* LMTP: one reply per accepted recipient, in RCPT order (RFC 2033
	 * 4.2). */
	for (i = c->lmtp_cur; job != NULL && i < job->msg->nrcpts; i++)
		if (job->rstate[i] == RS_ACCEPTED) {
			result_reply(&res, r, c->mta);
			job_set(job, i, &res);
			c->lmtp_cur = i + 1;
			conn_settle(c);
			break;
		}
	if (--c->lmtp_left > 0) {
		conn_enter(c, CS_BODY);
		return 0;
	}
	return conn_tx_end(c);
}

static int
on_rset(struct client_conn *c, const struct client_reply *r)
{
	if (r->code / 100 != 2) {
		conn_close(c, "RSET refused");
		return -1;
	}
	conn_next(c);
	return 0;
}

static int
on_quit(struct client_conn *c, const struct client_reply *r)
{
	(void)r;
	conn_close(c, "QUIT");
	return -1;
}

/* An idle connection has nothing to hear but its end (e.g. 421). */
static int
on_idle(struct client_conn *c, const struct client_reply *r)
{
	(void)r;
	conn_close(c, "reply while idle");
	return -1;
}

/* The pool */

/* Waiting messages go to idle connections, then to new ones. */
static void
dq_dispatch(struct client_dq *dq)
{
	struct client_job	*job;
	struct client_conn	*c;

	while ((job = TAILQ_FIRST(&dq->waiting)) != NULL) {
		if ((c = dq_idle_conn(dq)) != NULL) {
			conn_next(c);
			continue;
		}
		if (dq->nconns >= dq->pool->opts.concurrency)
			break;
		TAILQ_REMOVE(&dq->waiting, job, entry);
		conn_connect(conn_new(dq, job));
	}
}

static void
pool_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client_pool	*pool = arg;
	struct client_dq	*dq, *next;

	(void)fd;
	(void)what;
	for (dq = TAILQ_FIRST(&pool->dqs); dq != NULL; dq = next) {
		next = TAILQ_NEXT(dq, entry);
		if (!dq->dirty)
			continue;
		dq->dirty = false;
		dq_dispatch(dq);
		if (dq->nconns == 0 && TAILQ_EMPTY(&dq->waiting)) {
			TAILQ_REMOVE(&pool->dqs, dq, entry);
			dq_free(dq);
		}
	}
}

static void	pool_destroy(struct client_pool *);

static void
pool_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client_pool	*pool = arg;
	struct client_job	*job;
	struct client_msg	*m;

	(void)fd;
	(void)what;
	pool->in_done = true;
	while (!pool->free_pending &&
	    (job = TAILQ_FIRST(&pool->done)) != NULL) {
		TAILQ_REMOVE(&pool->done, job, entry);
		m = job->msg;
		free(job);
		m->done(m->arg, m);
	}
	pool->in_done = false;
	if (pool->free_pending)
		pool_destroy(pool);
}

static void
opt_default(unsigned *v, unsigned def)
{
	if (*v == 0)
		*v = def;
}

struct client_pool *
client_pool_new(struct event_base *base, const struct client_opts *o)
{
	struct client_pool	*pool;

	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	pool->base = base;
	pool->opts = *o;
	snprintf(pool->helo, sizeof(pool->helo), "%s",
	    o->helo != NULL && o->helo[0] != '\0' && client_path_ok(o->helo) ?
	    o->helo : "localhost");
	pool->opts.helo = pool->helo;
	opt_default(&pool->opts.concurrency, CLIENT_CONCURRENCY_DEF);
	opt_default(&pool->opts.connect_timeout_ms, CLIENT_CONNECT_TMO_DEF);
	opt_default(&pool->opts.command_timeout_ms, CLIENT_CMD_TMO_DEF);
	opt_default(&pool->opts.data_timeout_ms, CLIENT_DATA_TMO_DEF);
	opt_default(&pool->opts.idle_ms, CLIENT_IDLE_DEF);
	opt_default(&pool->opts.max_msgs_per_conn, CLIENT_MSGS_DEF);
	TAILQ_INIT(&pool->dqs);
	TAILQ_INIT(&pool->done);
	pool->kick = event_new(base, -1, 0, pool_kick_cb, pool);
	pool->done_ev = event_new(base, -1, 0, pool_done_cb, pool);
	if (pool->kick == NULL || pool->done_ev == NULL) {
		if (pool->kick != NULL)
			event_free(pool->kick);
		free(pool);
		return NULL;
	}
	return pool;
}

void
client_send(struct client_pool *pool, const struct client_dest *dest,
    struct client_msg *m)
{
	struct client_job		*job = job_new(m);
	struct client_rcpt_result	 r;
	struct client_dq		*dq;

	job->tcp = !dest->unix_sock;
	job->level = dest->tls.level;
	if (pool->closing || pool->free_pending) {
		result_fail(&r, CF_SHUTDOWN, "", "shutting down");
		job_set_all(job, RS_DONE, &r);
	} else
		job_check_paths(job);
	if (job->npending == 0) {
		job_finish(pool, job, dest->key);
		return;
	}
	dq = dq_get(pool, dest);
	TAILQ_INSERT_TAIL(&dq->waiting, job, entry);
	dq_touch(dq);
}

/* Best effort, never blocking: a QUIT the server may or may not see. */
static void
pool_quit_idle(struct client_conn *c)
{
	evutil_socket_t	fd;

	if (c->state != CS_IDLE || c->tls || c->bev == NULL ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 ||
	    (fd = bufferevent_getfd(c->bev)) == -1)
		return;
	(void)send(fd, "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Fail what is in flight or waiting with 4.3.2, then call every done(). */
static void
pool_destroy(struct client_pool *pool)
{
	struct client_rcpt_result	 r;
	struct client_dq		*dq;
	struct client_conn		*c;
	struct client_job		*job;
	struct client_msg		*m;

	pool->closing = true;
	result_fail(&r, CF_SHUTDOWN, "", "shutting down");
	while ((dq = TAILQ_FIRST(&pool->dqs)) != NULL) {
		while ((c = TAILQ_FIRST(&dq->conns)) != NULL) {
			pool_quit_idle(c);
			if (c->job != NULL) {
				job_set_all(c->job, RS_DONE, &r);
				conn_settle(c);
			}
			conn_close(c, "shutting down");
		}
		while ((job = TAILQ_FIRST(&dq->waiting)) != NULL) {
			TAILQ_REMOVE(&dq->waiting, job, entry);
			job_set_all(job, RS_DONE, &r);
			job_finish(pool, job, dq->dest.key);
		}
		TAILQ_REMOVE(&pool->dqs, dq, entry);
		dq_free(dq);
	}
	/* done() may call client_send(): it lands on this list too. */
	while ((job = TAILQ_FIRST(&pool->done)) != NULL) {
		TAILQ_REMOVE(&pool->done, job, entry);
		m = job->msg;
		free(job);
		m->done(m->arg, m);
	}
	event_free(pool->kick);
	event_free(pool->done_ev);
	free(pool);
}

void
client_pool_free(struct client_pool *pool)
{
	if (pool == NULL || pool->closing)
		return;
	if (pool->in_done) {
		pool->free_pending = true;
		return;
	}
	pool_destroy(pool);
}

unsigned
client_pool_conns(const struct client_pool *pool, const char *key)
{
	const struct client_dq	*dq = dq_find(pool, key);

	return dq != NULL ? dq->nconns : 0;
}

unsigned long
client_pool_connects(const struct client_pool *pool)
{
	return pool->connects;
}
