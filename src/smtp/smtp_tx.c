/*
 * smtp_tx.c - one mail transaction: MAIL FROM, DATA, the end of data and
 * the commit that alone may answer "250 Ok: queued".
 * Owns: the envelope, the Received header, size accounting while
 * streaming, the reply after the commit.
 * Never: writes files itself (queue.h does, off the loop), or answers 250
 * before the queue's done callback says the message is on stable storage.
 * Untrusted: MAIL arguments and message bytes.  RFC 5321 4.1.1.2,
 * 4.1.1.4, 4.4 (Received); RFC 1870 (SIZE), RFC 6152 (8BITMIME),
 * RFC 3030 (BDAT: the same end of data, reached by counted chunks),
 * RFC 3461 (DSN: RET, ENVID, NOTIFY, ORCPT).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../auth/passwd.h"
#include "../auth/sender_map.h"
#include "../conf/conf.h"
#include "../deliver/dsn.h"
#include "../deliver/qmgr.h"
#include "../lib/ids.h"
#include "../lib/job.h"
#include "../milter/milter.h"
#include "../net/worker.h"
#include "../policy/backscatter.h"
#include "../queue/queue.h"
#include "../sender/batv.h"
#include "../queue/queue_rec.h"
#include "../queue/queue_admin.h"
#include "smtp_session.h"

#define SMTP_SIZE_DIGITS	20	/* RFC 1870: size-value is 1*20DIGIT */
#define SMTP_DSN_KEEP_MAX	(SMTP_DSN_ORCPT_MAX + 4)	/* "f ORCPT\0" */

_Static_assert(SMTP_DSN_NOTIFY_NEVER == QUEUE_NOTIFY_NEVER &&
    SMTP_DSN_NOTIFY_SUCCESS == QUEUE_NOTIFY_SUCCESS &&
    SMTP_DSN_NOTIFY_FAILURE == QUEUE_NOTIFY_FAILURE &&
    SMTP_DSN_NOTIFY_DELAY == QUEUE_NOTIFY_DELAY &&
    (int)SMTP_DSN_RET_FULL == QUEUE_DSN_RET_FULL &&
    (int)SMTP_DSN_RET_HDRS == QUEUE_DSN_RET_HDRS, "DSN values differ");

static void	tx_committed(void *, uint64_t, bool, const char *);
static void	tx_mail_batv(struct smtp_session *);
static void	tx_commit(struct smtp_session *, queue_done_fn *, void *);
static bool	tx_finish(struct smtp_session *, queue_done_fn *, void *);
static void	tx_reply_committed(struct worker *, uint64_t, bool,
		    const char *);

static void	tx_held_committed(void *, uint64_t, bool, const char *);

_Static_assert((int)MILTER_O_CONTINUE == OBS_MILTER_CONTINUE &&
    (int)MILTER_O_REPLYCODE == OBS_MILTER_REPLYCODE &&
    (int)MILTER_O_ERROR == OBS_MILTER_ERROR &&
    OBS_MILTER_MAX == MILTER_O_ERROR + 1, "milter outcomes differ");

/* A message a milter quarantined: held (SPOOL/hold) before the 250. */
struct tx_hold {
	struct worker	*w;
	uint64_t	 sid;
	char		*spool;
	char		 qid[ID_STRLEN + 1];
	char		 why[128];
	bool		 ok;		/* committed */
	enum queue_admin_rc rc;
	char		 err[256];
};
static int	tx_open(struct smtp_session *);

void
smtp_tx_free(struct smtp_session *s)
{
	smtp_spf_stop(s);
	smtp_dkim_free(s);
	if (s->tx.mrun != NULL) {
		milter_run_cancel(s->tx.mrun);
		s->tx.mrun = NULL;
	}
	/* a big message's copy is not kept for the next one */
	buf_free(&s->tx.mcopy);
	buf_init(&s->tx.mcopy, s->conf->max_message_size);
	if (s->tx.msg != NULL) {
		queue_msg_abort(s->tx.msg);
		s->tx.msg = NULL;
	}
}

void
smtp_tx_init(struct smtp_session *s)
{
	size_t	n = (size_t)s->conf->max_recipients * (SMTP_PATH_MAX + 3);

	buf_init(&s->tx.sender, SMTP_PATH_MAX);
	buf_init(&s->tx.rcpts, n);
	buf_init(&s->tx.bounced, n);
	buf_init(&s->tx.head, DSN_HEADERS_MAX);
	n = (size_t)s->conf->max_recipients * SMTP_DSN_KEEP_MAX;
	buf_init(&s->tx.rcpt_dsn, n);
	buf_init(&s->tx.bounced_dsn, n);
	buf_init(&s->tx.mcopy, s->conf->max_message_size);
}

void
smtp_tx_fini(struct smtp_session *s)
{
	smtp_tx_free(s);
	buf_free(&s->tx.sender);
	buf_free(&s->tx.rcpts);
	buf_free(&s->tx.bounced);
	buf_free(&s->tx.head);
	buf_free(&s->tx.rcpt_dsn);
	buf_free(&s->tx.bounced_dsn);
	buf_free(&s->tx.mcopy);
}

void
smtp_tx_reset(struct smtp_session *s)
{
	smtp_tx_free(s);
	buf_reset(&s->tx.sender);
	buf_reset(&s->tx.rcpts);
	buf_reset(&s->tx.bounced);
	buf_reset(&s->tx.head);
	buf_reset(&s->tx.rcpt_dsn);
	buf_reset(&s->tx.bounced_dsn);
	s->tx.dsn_ret = QUEUE_DSN_RET_UNSET;
	s->tx.dsn_envid[0] = '\0';
	s->tx.nqueued = s->tx.naccepted = s->tx.nbounced = 0;
	s->tx.size_declared = 0;
	s->tx.bytes = s->tx.hdr_bytes = 0;
	s->tx.line_len = 0;
	s->tx.in_body = s->tx.hdr_too_big = s->tx.line_too_long = false;
	s->tx.too_big = s->tx.io_error = false;
	s->tx.bdat = false;
	s->tx.smtputf8 = false;
	s->tx.batv_pass = false;
	s->tx.hline_len = 0;
	s->tx.msgid[0] = '\0';
	smtp_spf_reset(s);
}

/*
 * SIZE=, BODY=, and RET= and ENVID= (RFC 3461 4.3, 4.4: bad syntax or
 * given twice is 501 5.5.4); anything else is not supported.  R_NONE if
 * fine.
 */
static enum reply_id
tx_mail_params(struct smtp_session *s, const struct smtp_path_arg *pa)
{
	struct smtp_dsn_mail	dm = { .ret = SMTP_DSN_RET_UNSET };
	size_t			i, j;

	for (i = 0; i < pa->nparams; i++) {
		const struct smtp_param	*p = &pa->params[i];
		uint64_t		 v = 0;

		switch (smtp_dsn_mail_param(p, &dm)) {
		case SMTP_DSN_BAD:
			return R_PARAM_SYNTAX;
		case SMTP_DSN_TAKEN:
			continue;
		case SMTP_DSN_OTHER:
			break;
		}
		if (span_eq_ci(p->key, "SIZE") && p->value.p != NULL) {
			if (p->value.len > SMTP_SIZE_DIGITS)
				return R_SIZE_EXCEEDED;
			for (j = 0; j < p->value.len; j++) {
				if (p->value.p[j] < '0' || p->value.p[j] > '9')
					return R_PARAM_SYNTAX;
				if (v > (UINT64_MAX - 9) / 10)
					return R_SIZE_EXCEEDED;
				v = v * 10 + (uint64_t)(p->value.p[j] - '0');
			}
			if (v > s->conf->max_message_size)
				return R_SIZE_EXCEEDED;
			s->tx.size_declared = v;
		} else if (span_eq_ci(p->key, "BODY") && p->value.p != NULL &&
		    (span_eq_ci(p->value, "7BIT") ||
		    span_eq_ci(p->value, "8BITMIME"))) {
			continue;
		} else if (span_eq_ci(p->key, "SMTPUTF8") && p->value.p == NULL &&
		    s->esmtp) {
			s->tx.smtputf8 = true;	/* RFC 6531 3.4 */
		} else
			return R_PARAM_UNSUPPORTED;
	}
	s->tx.dsn_ret = (int)dm.ret;
	if (dm.has_envid)	/* bounded by SMTP_DSN_ENVID_MAX */
		snprintf(s->tx.dsn_envid, sizeof(s->tx.dsn_envid), "%.*s",
		    (int)dm.envid.len, (const char *)dm.envid.p);
	return R_NONE;
}

enum reply_id
smtp_tx_rcpt_params(struct smtp_session *s, const struct smtp_path_arg *pa)
{
	struct smtp_dsn_rcpt	dr = { .notify = 0 };
	size_t			i;

	s->rw.dsn_notify = 0;
	s->rw.dsn_orcpt[0] = '\0';
	for (i = 0; i < pa->nparams; i++)
		switch (smtp_dsn_rcpt_param(&pa->params[i], &dr)) {
		case SMTP_DSN_BAD:
			return R_PARAM_SYNTAX;
		case SMTP_DSN_OTHER:
			return R_PARAM_UNSUPPORTED;
		case SMTP_DSN_TAKEN:
			break;
		}
	s->rw.dsn_notify = dr.notify;
	if (dr.has_orcpt)	/* bounded by SMTP_DSN_ORCPT_MAX */
		snprintf(s->rw.dsn_orcpt, sizeof(s->rw.dsn_orcpt), "%.*s",
		    (int)dr.orcpt.len, (const char *)dr.orcpt.p);
	return R_NONE;
}

void
smtp_tx_rcpt_dsn_keep(struct smtp_session *s, bool queued, bool bounced)
{
	char	rec[SMTP_DSN_KEEP_MAX];
	int	n;

	n = snprintf(rec, sizeof(rec), "%x %s", s->rw.dsn_notify & 0xf,
	    s->rw.dsn_orcpt);
	if (n < 0 || (size_t)n >= sizeof(rec) ||
	    (queued && buf_add(&s->tx.rcpt_dsn, rec, (size_t)n + 1) == -1) ||
	    (bounced && buf_add(&s->tx.bounced_dsn, rec, (size_t)n + 1) == -1))
		panic("smtp_tx_rcpt_dsn_keep: buffer sized too small");
}

/* "f ORCPT" as kept above: the NOTIFY bits, the ORCPT ("" if none). */
static unsigned
tx_dsn_split(const char *rec, const char **orcpt)
{
	unsigned	v = (unsigned)(rec[0] >= 'a' ? rec[0] - 'a' + 10 :
			    rec[0] - '0');

	*orcpt = rec + 2;
	return v;
}

/*
 * An authenticated client may only be itself (issue 14, part 6): the
 * address, its recipient_delimiter extension cut, must be the AUTH name
 * (if that is an address), USER@ one of our domains, or given to USER by
 * sender_login_map.  The null sender is let through, as Postfix does:
 * bounces and vacation replies from a submitting client carry <>, and
 * it impersonates nobody.  Address literals never belong to a user.
 */
static bool
tx_mail_owned(struct smtp_session *s, const struct smtp_addr *a)
{
	const struct domain_conf	*dc;
	char				 local[SMTP_LOCAL_MAX + 1];
	char				 arg[SMTP_LOCAL_MAX + 256 +
					     SMTP_AUTH_USER_MAX + 64];
	const char			*dom;
	int				 llen;

	if (s->auth_user[0] == '\0' || a->null)
		return true;
	dom = (const char *)a->domain.p;
	dc = conf_domain(s->conf, dom, a->domain.len);
	llen = smtp_local_canon(a, local, sizeof(local));
	if (llen > 0 && !a->literal && sender_owns(passwd_senders(
	    s->w->passwd), s->auth_user, local, (size_t)llen, dom,
	    a->domain.len, dc != NULL, s->conf->localpart_case_sensitive,
	    dc != NULL ? dc->delim : s->conf->dflt.delim))
		return true;
	smtp_log(s, LOG_LVL_WARNING, "sender_login", "from=<%s@%s> user=%s "
	    "result=not_owned", log_esc(a->local.p, a->local.len, 128),
	    log_esc(a->domain.p, a->domain.len, 256),
	    log_esc(s->auth_user, strlen(s->auth_user), 256));
	snprintf(arg, sizeof(arg), "<%.*s@%.*s>: Sender address rejected: "
	    "not owned by user %s", (int)a->local.len, (const char *)a->local.p,
	    (int)a->domain.len, dom, s->auth_user);
	smtp_reply(s, R_SENDER_LOGIN, arg);
	return false;
}

void
smtp_tx_mail(struct smtp_session *s, struct span arg)
{
	struct smtp_path_arg	pa;
	enum reply_id		r;
	char			local[SMTP_LOCAL_MAX + 1];
	int			llen;

	if (smtp_parse_path_arg(arg.p, arg.len, SMTP_PA_MAIL |
	    (s->conf->envelope_lenient ? SMTP_PA_LENIENT : 0), &pa) !=
	    PARSE_OK) {
		r = pa.err == SMTP_ARG_KEYWORD ? R_MAIL_SYNTAX :
		    pa.err == SMTP_ARG_PATH ? R_BAD_SENDER :
		    pa.err == SMTP_ARG_UTF8 ? R_UTF8_BAD : R_PARAM_SYNTAX;
		smtp_log(s, LOG_LVL_INFO, "mail", "arg=%s result=syntax",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, r);
		return;
	}
	smtp_tx_reset(s);
	if ((r = tx_mail_params(s, &pa)) != R_NONE) {
		smtp_log(s, LOG_LVL_INFO, "mail", "arg=%s result=param",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, r);
		return;
	}
	if (pa.addr.utf8 && !s->tx.smtputf8) {
		smtp_log(s, LOG_LVL_INFO, "mail", "arg=%s result=utf8",
		    log_esc(arg.p, arg.len, 64));
		smtp_tx_reset(s);
		smtp_error(s, R_UTF8_NEEDED);
		return;
	}
	if (!tx_mail_owned(s, &pa.addr)) {
		smtp_tx_reset(s);
		return;
	}
	/* spool_min_free: the queue logs it, once a minute, not per MAIL */
	if (!queue_space_ok(s->w->queue, s->conf->spool_min_free)) {
		smtp_reply(s, R_STORAGE, NULL);		/* 452 4.3.1 */
		return;
	}
	if (!pa.addr.null) {
		llen = smtp_local_canon(&pa.addr, local, sizeof(local));
		if (llen < 0 ||
		    buf_add(&s->tx.sender, local, (size_t)llen) == -1 ||
		    buf_addc(&s->tx.sender, '@') == -1 ||
		    buf_add(&s->tx.sender, pa.addr.domain.p,
		    pa.addr.domain.len) == -1) {
			smtp_error(s, R_BAD_SENDER);
			return;
		}
	}
	tx_mail_batv(s);
	/* SPF (smtp_spf.c) may wait for DNS; it calls smtp_tx_mail_end */
	if (smtp_spf_start(s))
		return;
	smtp_tx_mail_end(s);
}

static bool	tx_milter_mail(struct smtp_session *);
static void	tx_mail_ok(struct smtp_session *);

void
smtp_tx_mail_end(struct smtp_session *s)
{
	enum reply_id	r;
	char		arg[SPF_EXPL_MAX + 64], spf[256];

	r = smtp_spf_verdict(s, arg, sizeof(arg));
	smtp_spf_log(s, spf, sizeof(spf));
	if (r != R_NONE) {
		smtp_log(s, LOG_LVL_INFO, "mail", "from=<%s> result=spf%s",
		    log_esc(s->tx.sender.data, s->tx.sender.len, 256), spf);
		smtp_tx_reset(s);
		smtp_reply(s, r, arg);
		return;
	}
	/* the milters (issue 16) have their say before the reply */
	if (s->conf->milters.n > 0 && tx_milter_mail(s))
		return;
	tx_mail_ok(s);
}

static void
tx_mail_ok(struct smtp_session *s)
{
	char	spf[256];

	smtp_spf_log(s, spf, sizeof(spf));
	smtp_set_state(s, ST_MAIL);
	smtp_log(s, LOG_LVL_INFO, "mail", "from=<%s> size=%" PRIu64 "%s%s",
	    log_esc(s->tx.sender.data, s->tx.sender.len, 256),
	    s->tx.size_declared, s->tx.smtputf8 ? " smtputf8=yes" : "", spf);
	smtp_reply(s, R_MAIL_OK, NULL);
}

/* RFC 5321 4.4: where it came from, who took it, when, for whom. */
static int
tx_received(struct smtp_session *s, const char *qid, const char *rcpt0)
{
	char		date[64], hdr[4096], with[512];
	const char	*w = smtp_secure_with(s, with, sizeof(with));
	struct tm	tm;
	time_t		now = time(NULL);
	int		n;

	/* Authentication-Results and Received-SPF come at the end of data
	 * (tx_late): delivered above this field (RFC 7208 9.1, 8601 5) */
	/* dnsbl_action = tag: the lists' verdict for the next filter */
	if ((n = smtp_dnsbl_header(s, hdr, sizeof(hdr))) == -1 ||
	    (n > 0 && queue_msg_write(s->tx.msg, hdr, (size_t)n) == -1))
		return -1;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(hdr, sizeof(hdr),
	    "Received: from %s (unknown [%s])\r\n"
	    "\tby %s (mxgate) with %s%s id %s%s%s%s;\r\n\t%s\r\n",
	    log_esc(s->helo, strlen(s->helo), 64), s->client,
	    s->conf->hostname,
	    /* RFC 6531 3.7.3: ESMTP[S][A] becomes UTF8SMTP[S][A] */
	    s->tx.smtputf8 ? "UTF8" : "", s->tx.smtputf8 ? w + 1 : w, qid,
	    rcpt0 ? "\r\n\tfor <" : "", rcpt0 ? rcpt0 : "",
	    rcpt0 ? ">" : "", date);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -1;
	return queue_msg_write(s->tx.msg, hdr, (size_t)n);
}

/*
 * The P record: SPF's words, DKIM's, auth=1 for an authenticated client
 * and batv=pass for a sender tagged with our key (proofs for reports,
 * backscatter.h); NULL when there is nothing to say.
 */
static const char *
tx_proof(const struct smtp_session *s, char *out, size_t len)
{
	char		 spf[96], dkim[QUEUE_REC_PROOF_MAX - 128];
	const char	*p = smtp_spf_proof(s, spf, sizeof(spf));
	const char	*d = smtp_dkim_proof(s, dkim, sizeof(dkim));
	bool		 auth = s->auth_user[0] != '\0';
	bool		 batv = s->tx.batv_pass;

	if (p == NULL && d == NULL && !auth && !batv)
		return NULL;
	snprintf(out, len, "%s%s%s%s%s%s%s", p ? p : "", p && d ? " " : "",
	    d ? d : "", (p || d) && auth ? " " : "", auth ? "auth=1" : "",
	    (p || d || auth) && batv ? " " : "", batv ? "batv=pass" : "");
	return out;
}

/*
 * A proof for reports (issue 14, part 3): MAIL FROM carries a valid
 * prvs= tag made with our key, so we sent mail from this address in the
 * last 7 days and a report to it reaches someone real.  Only while BATV
 * is on (batv_domains).
 */
static void
tx_mail_batv(struct smtp_session *s)
{
	const char		*snd = buf_cstr(&s->tx.sender);
	const char		*at = strrchr(snd, '@');
	struct batv_tag		 tag;
	enum batv_result	 r;

	if (s->conf->batv_keys == NULL || s->conf->batv_ndomains == 0 ||
	    at == NULL || !batv_tagged(snd, (size_t)(at - snd)))
		return;
	r = batv_verify(s->conf->batv_keys, snd, (size_t)(at - snd), at + 1,
	    strlen(at + 1), time(NULL), &tag);
	s->tx.batv_pass = r == BATV_PASS;
	smtp_log(s, LOG_LVL_INFO, "batv", "from=<%s> result=%s proof=%s",
	    log_esc(snd, strlen(snd), 256), batv_result_name(r),
	    r == BATV_PASS ? "yes" : "no");
}

/*
 * What the end of data knows, written after the body (queue.h
 * queue_msg_late): Authentication-Results with SPF's and DKIM's results
 * and Received-SPF, delivered above the Received field; the P record.
 */
static int
tx_late(struct smtp_session *s)
{
	char	hdr[8192], dkim[4096], proof[QUEUE_REC_PROOF_MAX + 1];
	int	n;

	if (smtp_dkim_resinfo(s, dkim, sizeof(dkim)) <= 0)
		dkim[0] = '\0';
	if ((n = smtp_spf_headers(s, dkim, hdr, sizeof(hdr))) == -1)
		return -1;
	return queue_msg_late(s->tx.msg, hdr, (size_t)n, tx_proof(s, proof,
	    sizeof(proof)));
}

static int
tx_open(struct smtp_session *s)
{
	struct queue_env	 env;
	const char		**rcpts, **orcpt;
	unsigned		*notify;
	const char		*p, *d;
	size_t			 i;
	int			 rc;

	rcpts = calloc(s->tx.nqueued, sizeof(*rcpts));
	orcpt = calloc(s->tx.nqueued, sizeof(*orcpt));
	notify = calloc(s->tx.nqueued, sizeof(*notify));
	if (rcpts == NULL || orcpt == NULL || notify == NULL) {
		free(rcpts);
		free(orcpt);
		free(notify);
		return -1;
	}
	for (i = 0, p = (const char *)s->tx.rcpts.data,
	    d = (const char *)s->tx.rcpt_dsn.data; i < s->tx.nqueued;
	    i++, p += strlen(p) + 1, d += strlen(d) + 1) {
		rcpts[i] = p;
		notify[i] = tx_dsn_split(d, &orcpt[i]);
	}
	env = (struct queue_env){
		.client = s->client,
		.helo = s->helo,
		.sender = buf_cstr(&s->tx.sender),
		.rcpts = rcpts,
		.nrcpts = s->tx.nqueued,
		.arrival = time(NULL),
		.smtputf8 = s->tx.smtputf8,
		.dsn_ret = s->tx.dsn_ret,
		.dsn_envid = s->tx.dsn_envid[0] ? s->tx.dsn_envid : NULL,
		.dsn_notify = notify,
		.dsn_orcpt = orcpt,
		.proof = NULL,		/* tx_late: after the body */
	};
	s->tx.msg = queue_msg_new(s->w->queue, &env);
	rc = s->tx.msg == NULL ? -1 :
	    tx_received(s, queue_msg_id(s->tx.msg),
	    s->tx.nqueued == 1 ? rcpts[0] : NULL);
	free(rcpts);
	free(orcpt);
	free(notify);
	return rc;
}

void
smtp_tx_data(struct smtp_session *s)
{
	if (s->tx.nqueued > 0 && tx_open(s) == -1) {
		smtp_log(s, LOG_LVL_WARNING, "spool", "msg=\"cannot create "
		    "queue file: %m\"");
		smtp_tx_reset(s);
		smtp_set_state(s, ST_READY);
		smtp_reply(s, R_LOCAL_ERROR, NULL);	/* 451 4.3.0 */
		return;
	}
	smtp_data_init(&s->tx.data);
	s->tx.data.lenient = s->conf->strict_framing == CONF_CONTROL_SHADOW;
	smtp_dkim_begin(s);
	smtp_set_state(s, ST_DATA);
	smtp_reply(s, R_DATA_GO, NULL);
}

/*
 * BDAT n [LAST] (RFC 3030 2).  The n octets are read whatever happens, so
 * the session stays in step with the client: out of sequence they earn a
 * 503 once read, past max_message_size a 552 (and the transaction ends).
 * The first chunk opens the queue file, as DATA does.
 */
void
smtp_tx_bdat(struct smtp_session *s, struct span arg)
{
	struct smtp_chunk	*ck = &s->chunk;
	uint64_t		 len;
	bool			 last;

	if (smtp_data_bdat_arg(arg.p, arg.len, &len, &last) != PARSE_OK) {
		smtp_log(s, LOG_LVL_INFO, "bdat", "arg=%s result=syntax",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, R_BDAT_SYNTAX);
		return;
	}
	smtp_log(s, LOG_LVL_DEBUG, "bdat", "size=%" PRIu64 " last=%s", len,
	    last ? "yes" : "no");
	*ck = (struct smtp_chunk){ .reading = true, .last = last,
	    .len = len, .left = len, .refuse = R_NONE, .resume = s->state };
	if (s->state != ST_RCPT)
		ck->refuse = s->state == ST_CONNECTED ? R_NEED_HELO :
		    s->state == ST_MAIL ? R_NEED_RCPT : R_NEED_MAIL;
	else if (!s->tx.bdat && s->tx.nqueued > 0 && tx_open(s) == -1) {
		smtp_log(s, LOG_LVL_WARNING, "spool", "msg=\"cannot create "
		    "queue file: %m\"");
		ck->refuse = R_LOCAL_ERROR;	/* 451 4.3.0, as DATA */
	} else if (len > s->conf->max_message_size - s->tx.bytes)
		ck->refuse = R_DATA_TOO_BIG;	/* read on, store nothing */
	if (ck->refuse == R_NONE && !s->tx.bdat) {
		smtp_data_init(&s->tx.data);
		s->tx.data.lenient =
		    s->conf->strict_framing == CONF_CONTROL_SHADOW;
		s->tx.bdat = true;
		smtp_dkim_begin(s);
	}
	smtp_set_state(s, ST_DATA);
	if (len == 0)
		smtp_tx_end(s);
}

/*
 * The Message-ID (RFC 5322 3.6.4) for the queued line: the first such
 * header's value on its first line, blanks trimmed, at most
 * SMTP_MSGID_MAX bytes (escaped when logged).  A header line is kept
 * only up to sizeof(hline), which holds the name and the longest value
 * logged.
 */
static void
tx_header_keep(struct smtp_session *s, const uint8_t *p, size_t k,
    bool eol)
{
	static const char	name[] = "message-id:";
	const size_t		nlen = sizeof(name) - 1;
	size_t			room = sizeof(s->tx.hline) - s->tx.hline_len;
	const char		*v, *e;

	if (s->tx.msgid[0] == '\0' && room > 0) {
		if (k > room)
			k = room;
		memcpy(s->tx.hline + s->tx.hline_len, p, k);
		s->tx.hline_len += (unsigned)k;
	}
	if (!eol)
		return;
	if (s->tx.msgid[0] == '\0' && s->tx.hline_len > nlen &&
	    strncasecmp(s->tx.hline, name, nlen) == 0) {
		v = s->tx.hline + nlen;
		e = s->tx.hline + s->tx.hline_len;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\r' || e[-1] == '\n' ||
		    e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e - v > SMTP_MSGID_MAX + 1)
			e = v + SMTP_MSGID_MAX + 1;
		memcpy(s->tx.msgid, v, (size_t)(e - v));
		s->tx.msgid[e - v] = '\0';
	}
	s->tx.hline_len = 0;
}

/*
 * Line and header-section limits (max_line_length, max_header_size):
 * counted on the message bytes as they stream, a line at a time; the
 * header section ends at the first empty line (RFC 5322 2.1).
 */
static void
tx_lines(struct smtp_session *s, const uint8_t *p, size_t n)
{
	const uint8_t	*nl;
	size_t		 k;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) + 1 : n;
		if (s->tx.line_len + k > s->conf->max_line_length)
			s->tx.line_too_long = true;
		else
			s->tx.line_len += (unsigned)k;
		if (!s->tx.in_body && (s->tx.hdr_bytes += k) >
		    s->conf->max_header_size)
			s->tx.hdr_too_big = true;
		if (!s->tx.in_body)
			tx_header_keep(s, p, k, nl != NULL);
		if (nl != NULL) {
			if (s->tx.line_len == 2)
				s->tx.in_body = true;
			s->tx.line_len = 0;
		}
		p += k;
		n -= k;
	}
}

static void
tx_out(void *arg, const uint8_t *p, size_t n)
{
	struct smtp_session	*s = arg;

	tx_lines(s, p, n);

	s->tx.bytes += n;
	/* An NDR quotes the header section only: keep the first bytes. */
	if (s->tx.nbounced > 0 && s->tx.head.len < s->tx.head.max)
		(void)buf_add(&s->tx.head, p, n < s->tx.head.max -
		    s->tx.head.len ? n : s->tx.head.max - s->tx.head.len);
	if (s->tx.bytes > s->conf->max_message_size) {
		s->tx.too_big = true;	/* read on, store no more */
		return;
	}
	smtp_dkim_feed(s, p, n);	/* the body hashed as it streams */
	if (s->tx.msg != NULL && !s->tx.io_error &&
	    (queue_msg_write(s->tx.msg, p, n) == -1 ||
	    (s->conf->milters.n > 0 && buf_add(&s->tx.mcopy, p, n) == -1)))
		s->tx.io_error = true;
}

bool
smtp_tx_feed(struct smtp_session *s, const uint8_t *p, size_t n,
    size_t *used)
{
	if (s->chunk.reading) {		/* BDAT: raw, counted */
		if (n > s->chunk.left)
			n = (size_t)s->chunk.left;
		if (s->chunk.refuse == R_NONE)
			smtp_data_raw(&s->tx.data, p, n, tx_out, s);
		s->chunk.left -= n;
		*used = n;
		return s->chunk.left == 0;
	}
	return smtp_data_scan(&s->tx.data, p, n, used, tx_out, s) ==
	    PARSE_OK;
}

/*
 * unknown_recipient = bounce: the message was taken; report its unknown
 * recipients to the sender if the backscatter guard allows (DESIGN 4).
 */
static void
tx_bounce(struct smtp_session *s, const char *qid)
{
	const struct smtp_reply	*r = smtp_reply_get(R_RCPT_UNKNOWN);
	struct dsn_rcpt		*dr;
	struct qmgr_report	 rep;
	char			(*diag)[SMTP_PATH_MAX + 80];
	const char		*p, *d, *orcpt;
	size_t			 i, n = 0;

	if (s->tx.nbounced == 0)
		return;
	dr = calloc(s->tx.nbounced, sizeof(*dr));
	diag = calloc(s->tx.nbounced, sizeof(*diag));
	if (dr == NULL || diag == NULL)
		panic("tx_bounce: out of memory");
	for (i = 0, p = buf_cstr(&s->tx.bounced),
	    d = (const char *)s->tx.bounced_dsn.data; i < s->tx.nbounced;
	    i++, p += strlen(p) + 1, d += strlen(d) + 1) {
		/* RFC 3461 4.1: NOTIFY=NEVER, or a list without FAILURE */
		if (!dsn_notify_wants(tx_dsn_split(d, &orcpt), DSN_EV_FAILURE)) {
			smtp_log(s, LOG_LVL_INFO, "dsn", "qid=%s to=<%s> "
			    "ndr=suppressed reason=notify", qid,
			    log_esc(p, strlen(p), 256));
			obs_ndr_note(&s->w->obs, false, NULL, "notify");
			continue;
		}
		snprintf(diag[n], sizeof(diag[n]), "%u %s <%s>: %s", r->code,
		    r->esc, p, "Recipient address rejected: User unknown");
		dr[n] = (struct dsn_rcpt){ .rcpt = p, .action = "failed",
		    .status = r->esc, .diag = diag[n], .orcpt = orcpt[0] ?
		    orcpt : NULL };
		n++;
	}
	if (n == 0) {
		free(diag);
		free(dr);
		return;
	}
	rep = (struct qmgr_report){
		.orig_qid = qid,
		.sender = buf_cstr(&s->tx.sender),
		.client_trusted = s->auth_user[0] != '\0' ||
		    cidr_list_match(&s->conf->relay_networks,
		    (const struct sockaddr *)&s->peer),
		.proofs = (smtp_spf_passed(s) ? NDR_PROOF_SPF : 0) |
		    (s->tx.batv_pass ? NDR_PROOF_BATV : 0) |
		    (smtp_dkim_aligned(s) ? NDR_PROOF_DKIM : 0),
		.msg = s->tx.head.data,
		.msglen = s->tx.head.len,
		.arrival = time(NULL),
		.rcpts = dr,
		.nrcpts = n,
		.conf = s->conf,
		.ret_full = s->tx.dsn_ret == QUEUE_DSN_RET_FULL,
		.envid = s->tx.dsn_envid[0] ? s->tx.dsn_envid : NULL,
		.smtputf8 = s->tx.smtputf8,
		.obs = &s->w->obs,
	};
	(void)qmgr_report(s->w->qmgr, &rep);
	free(diag);
	free(dr);
}

/* The message is not taken: say why, forget it, stay in sync. */
static void
tx_refuse(struct smtp_session *s, enum reply_id r, const char *why)
{
	smtp_log(s, LOG_LVL_INFO, "data", "bytes=%" PRIu64 " result=%s",
	    s->tx.bytes, why);
	smtp_tx_reset(s);
	smtp_set_state(s, ST_READY);
	smtp_reply(s, r, NULL);
}

/* The same with a milter's reply line (multi-line: CRLF inside). */
static void
tx_refuse_line(struct smtp_session *s, const char *line, const char *why)
{
	smtp_log(s, LOG_LVL_INFO, "data", "bytes=%" PRIu64 " result=%s "
	    "reply=\"%s\"", s->tx.bytes, why, log_text(line, strlen(line),
	    200));
	smtp_tx_reset(s);
	smtp_set_state(s, ST_READY);
	smtp_reply_line(s, line);
}

/*
 * A BDAT chunk has been read: answer it, or (LAST, nothing refused) let
 * smtp_tx_end() finish the message as it finishes DATA's.  The spool's
 * messages end in CRLF: a last line without one gets it here.
 */
static bool
tx_chunk_end(struct smtp_session *s)
{
	struct smtp_chunk	*ck = &s->chunk;
	char			 n[SMTP_BDAT_DIGITS + 1];

	ck->reading = false;
	if (ck->refuse == R_DATA_TOO_BIG || ck->refuse == R_LOCAL_ERROR) {
		s->tx.bytes += ck->len;
		tx_refuse(s, ck->refuse, ck->refuse == R_LOCAL_ERROR ?
		    "io_error" : "too_big");
		return false;
	}
	if (ck->refuse != R_NONE) {	/* out of sequence */
		smtp_set_state(s, ck->resume);
		smtp_error(s, ck->refuse);
		return false;
	}
	if (!ck->last) {
		smtp_set_state(s, ST_RCPT);
		snprintf(n, sizeof(n), "%" PRIu64, ck->len);
		smtp_reply(s, R_BDAT_OK, n);
		return false;
	}
	if (!smtp_data_raw_end(&s->tx.data))
		tx_out(s, (const uint8_t *)"\r\n", 2);
	return true;
}

/*
 * The envelope as the milters left it: sender and recipients (a kept
 * recipient keeps its DSN parameters; an added one has none).  0, or -1.
 */
static int
tx_milter_env(struct smtp_session *s, const struct milter_msg *mm)
{
	struct buf	 dsn;
	const char	*d, **old;
	size_t		 i, k;
	int		 rc = -1;

	old = calloc(s->tx.nqueued + 1, sizeof(*old));
	buf_init(&dsn, s->tx.rcpt_dsn.max);
	if (old == NULL)
		goto out;
	for (i = 0, d = (const char *)s->tx.rcpt_dsn.data; i < s->tx.nqueued;
	    i++, d += strlen(d) + 1)
		old[i] = d;
	for (i = 0; i < mm->nr; i++) {
		d = mm->r[i].orig >= 0 && (size_t)mm->r[i].orig <
		    s->tx.nqueued ? old[mm->r[i].orig] : "0 ";
		if (buf_add(&dsn, d, strlen(d) + 1) == -1)
			goto out;
	}
	buf_reset(&s->tx.rcpts);
	for (i = 0; i < mm->nr; i++)
		if (buf_add(&s->tx.rcpts, mm->r[i].addr,
		    strlen(mm->r[i].addr) + 1) == -1)
			goto out;
	k = s->tx.rcpt_dsn.max;
	buf_free(&s->tx.rcpt_dsn);
	s->tx.rcpt_dsn = dsn;
	s->tx.rcpt_dsn.max = k;
	buf_init(&dsn, 0);
	s->tx.nqueued = mm->nr;
	buf_reset(&s->tx.sender);
	rc = buf_add(&s->tx.sender, mm->sender, strlen(mm->sender));
out:
	buf_free(&dsn);
	free(old);
	return rc;
}

/* The milters changed the message: write it anew (a new queue id). */
static int
tx_milter_rewrite(struct smtp_session *s, struct milter_msg *mm)
{
	struct buf	out;
	int		rc;

	if (mm->env_changed && tx_milter_env(s, mm) == -1)
		return -1;
	if (s->tx.nqueued == 0)
		return 0;		/* every recipient removed */
	queue_msg_abort(s->tx.msg);
	s->tx.msg = NULL;
	buf_init(&out, s->conf->max_message_size + 2 * MILTER_HDR_VALUE_MAX);
	rc = tx_open(s) == -1 || milter_msg_render(mm, &out) == -1 ||
	    queue_msg_write(s->tx.msg, out.data, out.len) == -1 ? -1 : 0;
	buf_free(&out);
	return rc;
}

static void
tx_milter_done(void *arg, uint64_t sid, struct milter_run *run)
{
	struct smtp_session	*s = worker_session_find(arg, sid);
	struct milter_msg	*mm = milter_run_msg(run);
	enum milter_verdict	 v = milter_run_verdict(run);
	char			 qid[ID_STRLEN + 1];

	if (s == NULL || s->tx.mrun != run) {
		milter_run_free(run);	/* not ours any more */
		return;
	}
	smtp_log(s, LOG_LVL_INFO, "milter_result", "verdict=%s by=%s "
	    "edits=%s", milter_verdict_name(v), milter_run_by(run),
	    mm->hdrs_changed || mm->env_changed || mm->body_replaced ?
	    "yes" : "no");
	if (v == MILTER_V_REJECT || v == MILTER_V_TEMPFAIL) {
		char	line[MILTER_REPLY_MAX + 1];

		snprintf(line, sizeof(line), "%s", milter_run_reply(run));
		tx_refuse_line(s, line, "milter");
	} else if (v == MILTER_V_DISCARD || (mm->env_changed &&
	    mm->nr == 0)) {
		id_format(id_next(), qid);
		smtp_log(s, LOG_LVL_INFO, "discarded", "id=%s bytes=%" PRIu64
		    " by=milter", qid, s->tx.bytes);
		smtp_tx_reset(s);
		smtp_set_state(s, ST_READY);
		s->nmsgs++;
		smtp_reply(s, R_QUEUED, qid);
	} else if ((mm->hdrs_changed || mm->env_changed ||
	    mm->body_replaced) && tx_milter_rewrite(s, mm) == -1) {
		smtp_log(s, LOG_LVL_WARNING, "spool", "msg=\"cannot write the "
		    "filtered message\"");
		tx_refuse(s, R_LOCAL_ERROR, "io_error");
	} else {
		struct tx_hold	*h = NULL;

		if (v == MILTER_V_QUARANTINE &&
		    (h = calloc(1, sizeof(*h))) != NULL &&
		    (h->spool = strdup(s->conf->spool)) != NULL) {
			h->w = s->w;
			h->sid = s->id;
			snprintf(h->why, sizeof(h->why), "%s", mm->quarantine ?
			    mm->quarantine : "");
		} else if (h != NULL) {
			free(h);
			h = NULL;
		}
		if (v == MILTER_V_QUARANTINE && h == NULL) {
			tx_refuse(s, R_LOCAL_ERROR, "io_error");
			smtp_resume(s);
			return;
		}
		s->tx.mrun = NULL;
		milter_run_free(run);
		if (tx_finish(s, h != NULL ? tx_held_committed : tx_committed,
		    h != NULL ? (void *)h : (void *)s->w))
			return;
		if (h != NULL) {
			free(h->spool);
			free(h);
		}
	}
	smtp_resume(s);
}

/* mxgate_milter_replies_total and mxgate_milter_seconds (obs.h). */
static void
tx_milter_note(void *arg, size_t idx, enum milter_outcome o, uint64_t us)
{
	struct worker	*w = arg;

	if (idx >= OBS_MILTER_SLOTS)
		return;
	obs_add(&w->obs.milter[idx][o], 1);
	obs_hist_note(&w->obs.milter_seconds[idx], &obs_milter_seconds, us);
}

/* The MAIL phase's answer (milter.h): refused, or the MAIL reply. */
static void
tx_milter_mail_done(void *arg, uint64_t sid, struct milter_run *run)
{
	struct smtp_session	*s = worker_session_find(arg, sid);
	enum milter_verdict	 v = milter_run_verdict(run);
	char			 line[MILTER_REPLY_MAX + 1];

	if (s == NULL || s->dead || s->tx.mrun != run ||
	    s->state != ST_WAIT)
		return;		/* freed with the transaction */
	smtp_set_state(s, ST_READY);
	if (v == MILTER_V_REJECT || v == MILTER_V_TEMPFAIL) {
		snprintf(line, sizeof(line), "%s", milter_run_reply(run));
		smtp_log(s, LOG_LVL_INFO, "mail", "from=<%s> result=milter "
		    "by=%s reply=\"%s\"", log_esc(s->tx.sender.data,
		    s->tx.sender.len, 256), milter_run_by(run),
		    log_text(line, strlen(line), 200));
		smtp_tx_reset(s);	/* frees run */
		smtp_reply_line(s, line);
	} else
		tx_mail_ok(s);
	smtp_resume(s);
}

/* Start the chain at MAIL; true: the session waits for it. */
static bool
tx_milter_mail(struct smtp_session *s)
{
	struct milter_env	 env;
	char			 prefix[96], sid[ID_STRLEN + 1];
	uint16_t		 port = 0;

	if (s->peer.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&s->peer)->sin_port);
	else if (s->peer.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&s->peer)->sin6_port);
	id_format(s->id, sid);
	snprintf(prefix, sizeof(prefix), "sid=%s client=%s", sid, s->client);
	env = (struct milter_env){
		.log_prefix = prefix,
		.hostname = s->conf->hostname,
		.client_addr = s->client,
		.client_family = s->peer.ss_family,
		.client_port = port,
		.client_name = "unknown",
		.helo = s->helo,
		.tls_version = s->tls ? s->tls_version : "",
		.cipher = s->tls ? s->tls_cipher : "",
		.auth_user = s->auth_user,
		.qid = "",
		.sender = buf_cstr(&s->tx.sender),
		.note = tx_milter_note,
		.note_arg = s->w,
	};
	s->tx.mrun = milter_run_start(s->w->base, s->conf, &env, s->id,
	    tx_milter_mail_done, s->w);
	if (s->tx.mrun == NULL) {
		smtp_log(s, LOG_LVL_WARNING, "milter", "msg=\"cannot start "
		    "the milter chain\"");
		smtp_tx_reset(s);
		smtp_reply_line(s, "451 4.7.1 Content filter unavailable, try "
		    "again later");
		return true;
	}
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	return true;
}

static void
tx_milter_rcpt_done(void *arg, uint64_t sid, struct milter_run *run)
{
	struct smtp_session	*s = worker_session_find(arg, sid);
	enum milter_verdict	 v = milter_run_verdict(run);
	char			 line[MILTER_REPLY_MAX + 1];

	if (s == NULL || s->dead || s->tx.mrun != run ||
	    s->state != ST_WAIT)
		return;
	snprintf(line, sizeof(line), "%s", milter_run_reply(run));
	smtp_rcpt_milter_done(s, v == MILTER_V_REJECT ||
	    v == MILTER_V_TEMPFAIL ? line : NULL);
}

bool
smtp_tx_milter_rcpt(struct smtp_session *s)
{
	if (s->tx.mrun == NULL)
		return false;
	if (milter_run_rcpt(s->tx.mrun, s->rw.key, tx_milter_rcpt_done,
	    s->w) == -1)
		return false;
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	return true;
}

/* The message is complete: the milters have their say before the 250. */
static void
tx_milter(struct smtp_session *s)
{
	if (s->tx.mrun == NULL || milter_run_eom(s->tx.mrun,
	    s->tx.mcopy.data, s->tx.mcopy.len, queue_msg_id(s->tx.msg),
	    tx_milter_done, s->w) == -1) {
		smtp_log(s, LOG_LVL_WARNING, "milter", "msg=\"cannot run "
		    "the milter chain\"");
		tx_refuse_line(s, "451 4.7.1 Content filter unavailable, try "
		    "again later", "milter");
		return;
	}
	smtp_set_state(s, ST_COMMIT);
	bufferevent_disable(s->bev, EV_READ);
}

void
smtp_tx_end(struct smtp_session *s)
{
	if (s->chunk.reading && !tx_chunk_end(s))
		return;		/* not LAST, or refused */
	if (s->tx.data.bad_eol && !smtp_control(s, s->conf->strict_framing,
	    "bare_eol", "reject", "where=data"))
		s->tx.data.bad_eol = false;	/* shadow: stored as CRLF */
	if (s->tx.data.bad_eol)
		tx_refuse(s, R_DATA_BARE_EOL, "bare_eol");
	else if (s->tx.data.nul)
		tx_refuse(s, R_DATA_NUL, "nul");
	else if (s->tx.too_big)
		tx_refuse(s, R_DATA_TOO_BIG, "too_big");
	else if (s->tx.hdr_too_big)
		tx_refuse(s, R_HEADER_TOO_BIG, "header_too_big");
	else if (s->tx.line_too_long)
		tx_refuse(s, R_LINE_TOO_BIG, "line_too_long");
	else if (s->tx.io_error) {
		smtp_log(s, LOG_LVL_WARNING, "spool",
		    "msg=\"write failed\"");
		tx_refuse(s, R_LOCAL_ERROR, "io_error");	/* 451 4.3.0 */
	} else if (s->tx.msg != NULL &&
	    !queue_space_ok(s->w->queue, s->conf->spool_min_free)) {
		tx_refuse(s, R_STORAGE, "low_space");	/* 452 4.3.1 */
	} else if (!smtp_dkim_start(s))	/* it may wait for DNS */
		smtp_tx_end_go(s);
}

void
smtp_tx_end_go(struct smtp_session *s)
{
	char	qid[ID_STRLEN + 1], dkim[512];

	smtp_dkim_log(s, dkim, sizeof(dkim));
	if (s->tx.msg == NULL) {
		/* Every recipient discarded: the same answer as ever, with
		 * an id of the same form, and nothing stored. */
		id_format(id_next(), qid);
		smtp_log(s, LOG_LVL_INFO, "discarded", "id=%s bytes=%" PRIu64
		    " rcpts=%zu%s", qid, s->tx.bytes, s->tx.naccepted, dkim);
		tx_bounce(s, qid);
		smtp_tx_reset(s);
		smtp_set_state(s, ST_READY);
		s->nmsgs++;
		smtp_reply(s, R_QUEUED, qid);
	} else if (s->conf->milters.n > 0)
		tx_milter(s);
	else
		(void)tx_finish(s, tx_committed, s->w);
}

/*
 * The message as it will be kept (the milters' copy, if they edited it):
 * what the end of data knows goes after its body, then the commit.
 * false: refused (451 4.3.0) instead.
 */
static bool
tx_finish(struct smtp_session *s, queue_done_fn *done, void *arg)
{
	if (tx_late(s) == -1) {
		smtp_log(s, LOG_LVL_WARNING, "spool", "msg=\"headers or "
		    "proofs did not fit\"");
		tx_refuse(s, R_LOCAL_ERROR, "io_error");	/* 451 4.3.0 */
		return false;
	}
	tx_commit(s, done, arg);
	return true;
}

static void
tx_commit(struct smtp_session *s, queue_done_fn *done, void *arg)
{
	struct queue_msg	*m = s->tx.msg;

	smtp_log(s, LOG_LVL_DEBUG, "data", "bytes=%" PRIu64
	    " result=commit", s->tx.bytes);
	s->tx.msg = NULL;	/* the queue owns it now */
	smtp_set_state(s, ST_COMMIT);
	bufferevent_disable(s->bev, EV_READ);
	queue_msg_commit(m, s->w->commit_jobs, s->id, done, arg);
}

/* On a pool thread: into SPOOL/hold, as `mxgate queue hold` does. */
static void
tx_hold_run(void *arg)
{
	struct tx_hold	*h = arg;

	h->rc = queue_admin_hold(h->spool, h->qid, 10000, h->err,
	    sizeof(h->err));
}

static void
tx_hold_done(void *arg)
{
	struct tx_hold	*h = arg;

	if (h->rc == QUEUE_ADMIN_OK) {
		log_event(LOG_LVL_INFO, "quarantined", "qid=%s reason=\"%s\"",
		    h->qid, log_text(h->why, strlen(h->why), 128));
		obs_add(&h->w->obs.messages_accepted, 1);
	} else {
		/* still in the queue: it is delivered, not lost */
		log_event(LOG_LVL_WARNING, "quarantined", "qid=%s error=\"%s\" "
		    "action=deliver", h->qid, log_text(h->err, strlen(h->err),
		    200));
		obs_add(&h->w->obs.messages_accepted, 1);
		qmgr_submit(h->w->qmgr, h->qid);
	}
	tx_reply_committed(h->w, h->sid, true, h->qid);
	free(h->spool);
	free(h);
}

/* Committed: hold it (off the loop), then answer. */
static void
tx_held_committed(void *arg, uint64_t sid, bool ok, const char *qid)
{
	struct tx_hold	*h = arg;

	if (!ok || qid == NULL) {
		tx_reply_committed(h->w, sid, ok, qid);
		free(h->spool);
		free(h);
		return;
	}
	snprintf(h->qid, sizeof(h->qid), "%s", qid);
	if (job_submit(h->w->commit_jobs, tx_hold_run, tx_hold_done, h) == -1) {
		h->rc = QUEUE_ADMIN_ERROR;
		snprintf(h->err, sizeof(h->err), "cannot queue the hold job");
		tx_hold_done(h);
	}
}

/* On the loop, once the spool has (or has not) made it durable. */
static void
tx_committed(void *arg, uint64_t sid, bool ok, const char *qid)
{
	struct worker		*w = arg;

	if (ok) {
		obs_add(&w->obs.messages_accepted, 1);
		qmgr_submit(w->qmgr, qid);	/* it may run on another loop */
	}
	tx_reply_committed(w, sid, ok, qid);
}

/* The reply once the message is durable (or is not). */
static void
tx_reply_committed(struct worker *w, uint64_t sid, bool ok, const char *qid)
{
	struct smtp_session	*s;
	char			 dkim[512];

	if ((s = worker_session_find(w, sid)) == NULL) {
		char	sidtext[ID_STRLEN + 1];

		id_format(sid, sidtext);
		log_event(LOG_LVL_INFO, "queued", "sid=%s qid=%s "
		    "client=gone", sidtext, ok ? qid : "-");
		return;
	}
	if (ok) {
		smtp_log(s, LOG_LVL_INFO, "queued", "qid=%s from=<%s> "
		    "rcpts=%zu bytes=%" PRIu64 " msgid=%s%s", qid,
		    log_esc(s->tx.sender.data, s->tx.sender.len, 256),
		    s->tx.nqueued, s->tx.bytes, s->tx.msgid[0] ?
		    log_esc(s->tx.msgid, strlen(s->tx.msgid), SMTP_MSGID_MAX) :
		    "-", smtp_dkim_log(s, dkim, sizeof(dkim)));
		s->nmsgs++;
		tx_bounce(s, qid);
	} else
		smtp_log(s, LOG_LVL_WARNING, "spool", "msg=\"commit failed\"");
	smtp_tx_reset(s);
	smtp_set_state(s, ST_READY);
	smtp_reply(s, ok ? R_QUEUED : R_LOCAL_ERROR, qid);	/* 451 4.3.0 */
	smtp_resume(s);
}
