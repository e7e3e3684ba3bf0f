/*
 * qmgr.c - the queue manager (see qmgr.h).  One attempt of one message:
 * load and lock its queue file (job thread), group the unfinished
 * recipients by next hop, deliver each group (Maildir on a job thread,
 * SMTP/LMTP via client.c after an async DNS look-up), then on a job thread
 * record the outcome durably: D for delivered and failed-and-reported
 * recipients, A with the next attempt time for the rest, and remove the
 * file when nothing is left.  With dane = may, mail by MX first asks
 * for each MX host's TLSA and picks the hosts and the TLS policy from
 * the answers.  RFC 5321 4.5.4.1 (retry), 5 (MX), RFC 7505, RFC 7672 2.2.
 * Never: blocks the loop; trusts a TLSA RRset without the AD bit; removes a message before every recipient is
 * finished for good; reports a failure the backscatter guard refuses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../conf/conf.h"
#include "../ctl/ctl.h"
#include "../dir/dir.h"
#include "../lib/buf.h"
#include "../lib/ids.h"
#include "../lib/job.h"
#include "../lib/log.h"
#include "../obs/log_hash.h"
#include "../lib/utf8.h"
#include "../net/worker.h"
#include "../obs/obs.h"
#include "../policy/backscatter.h"
#include "../queue/queue.h"
#include "../queue/queue_admin.h"
#include "../sender/batv.h"
#include "client.h"
#include "dane.h"
#include "deliver.h"
#include "../dns/dns.h"
#include "../dns/dns_msg.h"
#include "dsn.h"
#include "outbound.h"
#include "qmgr.h"

#define QMGR_BUCKETS		1024	/* active-message table, power of 2 */
#define QMGR_LOCKED_RETRY_MS	1000	/* an admin holds the file */
#define QMGR_RECORD_THREADS	4	/* outcomes; they share group commits */
#define QMGR_GROUPS_MAX		64	/* next hops per message and attempt */
#define QMGR_DSN_MAX		(256 * 1024)	/* one report, at most */
#define QMGR_SMTP_PORT		25
#define QMGR_LASTERR_MAX	1024	/* a reply line; the L record cuts it */
#define QMGR_FLUSH_LOG_IDS	32	/* ids named in flush's log line */

enum qres { QR_PENDING, QR_OK, QR_TEMP, QR_PERM };

struct qmsg;
struct qdane;

/* The recipients of one message that share a next hop. */
struct qgroup {
	struct qmsg		*m;
	uint64_t		 id;		/* for DNS, never reused */
	bool			 maildir;
	const struct domain_conf *dc;		/* local domain, or NULL */
	char			 domain[256];	/* remote: for MX */
	struct client_dest	 dest;
	bool			 relay;		/* to the relayhost */
	const char		*need_ca;	/* a CA file to load first */
	char			 ca_why[300];	/* why it did not load */
	size_t			*idx;		/* recipients (indexes) */
	const char		**rcpts;
	unsigned		*notify;	/* RFC 3461, per recipient */
	const char		**orcpt;
	size_t			 n;
	struct client_msg	 cm;
	struct client_rcpt_result *res;
	struct qdane		*dane;		/* TLSA look-ups under way */
	char			 batv_sender[BATV_ADDR_MAX + 1]; /* signed */
};

/*
 * DANE (dane = may, RFC 7672 2.2): the TLSA look-ups of one MX group,
 * one per MX host, all at once; the group goes on when all are back.
 */
enum qdane_state {
	QD_PENDING,
	QD_PLAIN,	/* no TLSA, or not secure: as without DANE */
	QD_DANE,	/* a secure TLSA RRset: TLS, and the records */
	QD_FAIL,	/* the look-up failed (a bogus answer: SERVFAIL) */
};
struct qdane_host {
	struct qgroup		*g;
	enum qdane_state	 st;
	size_t			 usable;
	char			 why[DNS_MSG_NAME_BUF + 64];
};
struct qdane {
	struct dns_result	 r;		/* the MX answer */
	struct qdane_host	 host[DNS_MX_MAX];
	unsigned		 pending;
	struct dane_tlsa	 tlsa[DANE_TLSA_MAX];	/* host[0]'s usable */
	size_t			 ntlsa;
};

struct qmsg {
	struct qmsg		*hnext;		/* active table */
	struct qmgr		*q;
	char			 qid[ID_STRLEN + 1];
	char			*path;
	struct config		*conf;		/* snapshot (ref) */
	struct dir		*dir;		/* directory then (ref) */
	struct queue_file	 qf;
	bool			 opened;
	int			 load_errno;
	bool			 forced;	/* ignore next_attempt */
	bool			 early;		/* before its retry time */
	bool			 again;		/* notified while active */
	struct qgroup		*groups;	/* grown while routing only */
	size_t			 ngroups, groups_cap;
	unsigned		 pending;	/* groups not finished */
	enum qres		*state;		/* per recipient */
	struct client_rcpt_result *res;		/* per recipient */
	bool			*report;	/* failed and reported */
	bool			*written;	/* its D record written ahead */
	time_t			 next;		/* for the A record, 0 none */
	bool			 warn;		/* a delay warning went out:
						 * write the W record */
	unsigned		 ndeferred;
	bool			 removed;
	uint32_t		 spare;		/* its file, kept for reuse */
};

/* A message waiting for its retry time. */
struct qwait {
	struct qwait		*next, *prev;
	struct qwait		*hnext;		/* wait_tab: one per qid */
	struct qmgr		*q;
	struct event		*ev;
	char			 qid[ID_STRLEN + 1];
};

struct qmgr {
	struct worker		*w;
	struct job_pool		*jobs;		/* loads, Maildir copies */
	struct job_pool		*record_jobs;	/* outcomes: never behind
						 * a queue of deliveries */
	struct client_pool	*client;
	struct dns_resolver	*dns;
	/* dns's server is on loopback, so its AD bit may be trusted; fixed
	 * with dns at start (a reload does not move the resolver) */
	bool			 dane_ok;
	struct backscatter	*bs;
	struct outbound		*ob;		/* TLS context, CAs, logins */
	struct qmsg		*active[QMGR_BUCKETS];
	unsigned		 nactive;
	struct qwait		*waiting;
	struct qwait		*wait_tab[QMGR_BUCKETS];
	unsigned		 nwaiting;
	bool			 stopping;
	/* from other event loops (qmgr_submit), guarded by xmu */
	pthread_mutex_t		 xmu;
	struct qnote		*xnotes, **xtail;	/* FIFO */
	struct event		*xev;		/* drains xnotes on our loop */
	pthread_mutex_t		 bs_mu;		/* the backscatter guard */
};

/* A committed message announced by another loop. */
struct qnote {
	struct qnote		*next;
	char			 qid[ID_STRLEN + 1];
};

static void	qmsg_loaded(void *);
static void	qmsg_finish(struct qmsg *);
static void	qgroup_done(struct qgroup *);
static bool	qmgr_client_trusted(const struct config *, const char *);
static void	qmgr_wait(struct qmgr *, const char *qid, unsigned ms);
static void	qmgr_unwait(struct qmgr *, const char *qid);

static void	qmgr_drain(evutil_socket_t, short, void *);

static size_t
qmgr_bucket(const char *qid)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *qid; qid++)
		h = (h ^ (uint8_t)*qid) * 1099511628211ULL;
	return (size_t)(h & (QMGR_BUCKETS - 1));
}

static struct qmsg *
qmgr_find(struct qmgr *q, const char *qid)
{
	struct qmsg	*m;

	for (m = q->active[qmgr_bucket(qid)]; m != NULL; m = m->hnext)
		if (strcmp(m->qid, qid) == 0)
			return m;
	return NULL;
}

static void
qmgr_unlink(struct qmgr *q, struct qmsg *m)
{
	struct qmsg	**pp = &q->active[qmgr_bucket(m->qid)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			q->nactive--;
			return;
		}
	panic("qmgr_unlink: %s not active", m->qid);
}

static void
qmsg_free(struct qmsg *m)
{
	size_t	i;

	for (i = 0; i < m->ngroups; i++) {
		explicit_bzero(&m->groups[i].dest.tls,
		    sizeof(m->groups[i].dest.tls));	/* a login */
		free(m->groups[i].idx);
		free(m->groups[i].rcpts);
		free(m->groups[i].res);
		free(m->groups[i].notify);
		free(m->groups[i].orcpt);
		free(m->groups[i].dane);
	}
	free(m->groups);
	if (m->opened)
		queue_file_close(&m->qf);
	conf_unref(m->conf);
	if (m->dir)
		dir_unref(m->dir);
	free(m->state);
	free(m->res);
	free(m->report);
	free(m->written);
	free(m->path);
	free(m);
}

struct qmgr *
qmgr_new(struct worker *w, struct outbound *ob, unsigned nthreads, char *err,
    size_t errlen)
{
	struct qmgr		*q;
	struct client_opts	 o;
	char			 server[300];
	const struct config	*c = w->conf;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->w = w;
	q->ob = ob;
	pthread_mutex_init(&q->xmu, NULL);
	pthread_mutex_init(&q->bs_mu, NULL);
	if ((q->xev = event_new(w->base, -1, 0, qmgr_drain, q)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o = (struct client_opts){
		.helo = c->hostname,
		.concurrency = c->next_hop_concurrency,
		.connect_timeout_ms = c->smtp_connect_timeout_ms,
		.command_timeout_ms = c->smtp_timeout_ms,
		.data_timeout_ms = c->smtp_timeout_ms * 2,
		.idle_ms = 5000,
		.max_msgs_per_conn = 100,
		/* next_hop_tls and relayhost_tls decide per destination
		 * (outbound.c); `may` is RFC 3207's opportunistic TLS */
		.ssl_ctx = outbound_ssl_ctx(ob),
	};
	if (c->dns_server.host)
		snprintf(server, sizeof(server), strchr(c->dns_server.host,
		    ':') ? "[%s]:%u" : "%s:%u", c->dns_server.host,
		    c->dns_server.port);
	q->jobs = job_pool_new(w->base, nthreads);
	q->record_jobs = job_pool_new(w->base, QMGR_RECORD_THREADS);
	q->client = client_pool_new(w->base, &o);
	q->bs = backscatter_new(c->ndr_rate_per_sender,
	    c->ndr_rate_per_domain);
	if (q->jobs == NULL || q->record_jobs == NULL || q->client == NULL ||
	    q->bs == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	q->dns = dns_resolver_new(w->base, c->dns_server.host ? server : NULL,
	    5000, err, errlen);
	q->dane_ok = q->dns != NULL && outbound_dane_ok(c);
	if (q->dns == NULL)
		log_event(LOG_LVL_WARNING, "dns", "msg=\"%s; mail to other "
		    "domains waits in the queue\"", log_text(err, strlen(err),
		    200));
	return q;
}

/* ---- loading: a job opens and locks the file ---- */

static void
qmsg_load(void *arg)
{
	struct qmsg	*m = arg;

	if (queue_file_open(m->path, &m->qf) == -1) {
		m->load_errno = errno;
		return;
	}
	m->opened = true;
	if (queue_file_lock(&m->qf) == -1) {
		m->load_errno = errno;
		queue_file_close(&m->qf);
		m->opened = false;
	}
}

/*
 * Start delivering qid.  A message just committed is loaded here, on the
 * loop (fresh): its file is in the page cache and loading it is a few
 * microseconds, less than handing it to a job thread and back; any other
 * (at start, on retry, on an operator's flush) is loaded by a job.
 */
static void
qmsg_begin(struct qmgr *q, const char *qid, bool fresh)
{
	struct qmsg	*m;

	if (q->stopping)
		return;
	qmgr_unwait(q, qid);	/* started now: its timer is moot */
	if ((m = qmgr_find(q, qid)) != NULL) {
		m->again = true;	/* once this attempt is over */
		return;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->path = queue_path(q->w->queue, qid)) == NULL) {
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "schedule: %s\"", log_esc(qid, strlen(qid), 32),
		    m ? "bad queue id" : "out of memory");
		free(m);
		return;
	}
	m->q = q;
	m->spare = QUEUE_NO_SPARE;
	snprintf(m->qid, sizeof(m->qid), "%s", qid);
	m->conf = conf_ref(q->w->conf);
	m->dir = q->w->dir ? dir_ref(q->w->dir) : NULL;
	m->forced = true;
	m->hnext = q->active[qmgr_bucket(m->qid)];
	q->active[qmgr_bucket(m->qid)] = m;
	q->nactive++;
	if (fresh) {
		qmsg_load(m);
		qmsg_loaded(m);
	} else if (job_submit(q->jobs, qmsg_load, qmsg_loaded, m) == -1)
		panic("qmgr_notify: out of memory");
}

void
qmgr_notify(struct qmgr *q, const char *qid)
{
	qmsg_begin(q, qid, false);
}

/*
 * From any loop's thread: a message was committed.  Queued under xmu and
 * picked up on our loop, in order; with libevent's thread support on,
 * event_active wakes our loop from another thread.
 */
void
qmgr_submit(struct qmgr *q, const char *qid)
{
	struct qnote	*n;

	if ((n = malloc(sizeof(*n))) == NULL) {
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "schedule: out of memory (delivered at the next start or "
		    "flush)\"", log_esc(qid, strlen(qid), 32));
		return;
	}
	n->next = NULL;
	snprintf(n->qid, sizeof(n->qid), "%s", qid);
	pthread_mutex_lock(&q->xmu);
	*(q->xnotes ? q->xtail : &q->xnotes) = n;
	q->xtail = &n->next;
	pthread_mutex_unlock(&q->xmu);
	event_active(q->xev, EV_READ, 0);
}

static void
qmgr_drain(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr	*q = arg;
	struct qnote	*n, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&q->xmu);
	n = q->xnotes;
	q->xnotes = NULL;
	pthread_mutex_unlock(&q->xmu);
	for (; n != NULL; n = next) {
		next = n->next;
		qmsg_begin(q, n->qid, true);
		free(n);
	}
}

/* ---- routing ---- */

static struct qgroup *
qmsg_group(struct qmsg *m, const struct domain_conf *dc, const char *domain)
{
	const struct config	*c = m->conf;
	struct qgroup		*g;
	char			 key[300];
	size_t			 i;

	if (dc != NULL && dc->hop.kind == HOP_MAILDIR)
		snprintf(key, sizeof(key), "maildir:%s", dc->hop.path);
	else if (dc != NULL && dc->hop.path != NULL)
		snprintf(key, sizeof(key), "lmtp:unix:%s", dc->hop.path);
	else if (dc != NULL)
		snprintf(key, sizeof(key), "%s:%s:%u",
		    dc->hop.kind == HOP_LMTP ? "lmtp" : "smtp", dc->hop.host,
		    dc->hop.port);
	else if (c->relayhost.host != NULL)
		snprintf(key, sizeof(key), "relay:%s:%u", c->relayhost.host,
		    c->relayhost.port);
	else
		snprintf(key, sizeof(key), "mx:%s", domain);
	for (i = 0; i < m->ngroups; i++)
		if (strcmp(m->groups[i].dest.key, key) == 0)
			return &m->groups[i];
	if (m->ngroups == QMGR_GROUPS_MAX)
		return NULL;
	if (m->ngroups == m->groups_cap) {
		/* usually one next hop: a message's struct stays small */
		i = m->groups_cap ? m->groups_cap * 2 : 1;
		if ((g = realloc(m->groups, i * sizeof(*g))) == NULL)
			panic("qmsg_group: out of memory");
		memset(g + m->groups_cap, 0, (i - m->groups_cap) * sizeof(*g));
		m->groups = g;
		m->groups_cap = i;
	}
	g = &m->groups[m->ngroups++];
	g->m = m;
	g->id = id_next();
	g->dc = dc;
	g->maildir = dc != NULL && dc->hop.kind == HOP_MAILDIR;
	snprintf(g->dest.key, sizeof(g->dest.key), "%s", key);
	snprintf(g->domain, sizeof(g->domain), "%s", domain);
	g->dest.lmtp = dc != NULL && dc->hop.kind == HOP_LMTP;
	if (dc != NULL && !g->maildir && dc->hop.path != NULL) {
		g->dest.unix_sock = true;
		snprintf(g->dest.path, sizeof(g->dest.path), "%s",
		    dc->hop.path);
	}
	g->relay = dc == NULL && c->relayhost.host != NULL;
	if (!g->maildir && !g->dest.unix_sock)	/* 1: need_ca is set */
		(void)outbound_policy(m->q->ob, c, dc, g->relay, &g->dest.tls,
		    &g->need_ca);
	g->idx = calloc(m->qf.nrcpts, sizeof(*g->idx));
	g->rcpts = calloc(m->qf.nrcpts, sizeof(*g->rcpts));
	g->res = calloc(m->qf.nrcpts, sizeof(*g->res));
	g->notify = calloc(m->qf.nrcpts, sizeof(*g->notify));
	g->orcpt = calloc(m->qf.nrcpts, sizeof(*g->orcpt));
	if (g->idx == NULL || g->rcpts == NULL || g->res == NULL ||
	    g->notify == NULL || g->orcpt == NULL)
		panic("qmsg_group: out of memory");
	return g;
}

static void
qmsg_result(struct qmsg *m, size_t i, unsigned code, const char *esc,
    const char *text, const char *mta)
{
	struct client_rcpt_result	*r = &m->res[i];

	r->code = code;
	snprintf(r->esc, sizeof(r->esc), "%s", esc);
	snprintf(r->text, sizeof(r->text), "%s", text);
	snprintf(r->mta, sizeof(r->mta), "%s", mta ? mta : "");
	snprintf(r->relay, sizeof(r->relay), "none");
	m->state[i] = code >= 500 ? QR_PERM : code >= 400 ? QR_TEMP : QR_OK;
}

/* A whole group gets one result (DNS failure, no route). */
static void
qgroup_fail(struct qgroup *g, unsigned code, const char *esc,
    const char *text)
{
	size_t	i;

	for (i = 0; i < g->n; i++)
		qmsg_result(g->m, g->idx[i], code, esc, text, NULL);
	qgroup_done(g);
}

/* On a job thread: every recipient of a Maildir group. */
static void
qgroup_maildir(void *arg)
{
	struct qgroup	*g = arg;
	struct qmsg	*m = g->m;
	char		 err[256], mbox[256];
	size_t		 k, i, n;

	for (k = 0; k < g->n; k++) {
		const char		*rcpt = g->rcpts[k];
		const char		*at = strrchr(rcpt, '@');
		struct dir_query	 dq = {
			.local = rcpt, .llen = (size_t)(at - rcpt),
			.domain = at + 1, .dlen = strlen(at + 1), .delim = "",
		};

		i = g->idx[k];
		/* The mailbox: the local part if the directory knows it,
		 * else the part before the delimiter (alice+news). */
		n = dq.llen;
		if (dir_lookup(m->dir, &dq, 0, NULL, NULL) != DIR_VALID &&
		    (n = strcspn(rcpt, g->dc->delim)) == 0)
			n = dq.llen;
		if (n > dq.llen)
			n = dq.llen;
		snprintf(mbox, sizeof(mbox), "%.*s", (int)n, rcpt);
		if (deliver_maildir(g->dc->hop.path, mbox, m->conf->hostname,
		    &m->qf, i, err, sizeof(err)) == -1)
			qmsg_result(m, i, 451, "4.3.0", err, NULL);
		else
			qmsg_result(m, i, 250, "2.0.0", "delivered to "
			    "maildir", NULL);
		snprintf(m->res[i].relay, sizeof(m->res[i].relay), "maildir");
	}
}

static void
qgroup_maildir_done(void *arg)
{
	qgroup_done(arg);
}

static void
qgroup_sent(void *arg, struct client_msg *cm)
{
	struct qgroup	*g = arg;
	size_t		 k;

	for (k = 0; k < g->n; k++) {
		qmsg_result(g->m, g->idx[k], cm->results[k].code,
		    cm->results[k].esc, cm->results[k].text,
		    cm->results[k].mta);
		g->m->res[g->idx[k]].hop_dsn = cm->results[k].hop_dsn;
		memcpy(g->m->res[g->idx[k]].tls, cm->results[k].tls,
		    sizeof(cm->results[k].tls));
		/* the connection, else (none made) the destination */
		snprintf(g->m->res[g->idx[k]].relay,
		    sizeof(g->m->res[g->idx[k]].relay), "%s",
		    cm->results[k].relay[0] ? cm->results[k].relay :
		    g->dest.key);
	}
	qgroup_done(g);
}

/*
 * BATV (issue 14, part 5): the envelope sender of mail relayed outward
 * (to a domain not ours) for our own user -- one of batv_domains, and
 * the mail came from an authenticated client or relay_networks -- goes
 * out tagged (prvs=), so that a bounce to it can be told from
 * backscatter.  Any other sender goes out as it came.
 */
static const char *
qgroup_sender(struct qgroup *g)
{
	struct qmsg			*m = g->m;
	const struct config		*c = m->conf;
	const char			*snd = m->qf.sender;
	const char			*at = strrchr(snd, '@');
	const struct domain_conf	*sd;

	if (g->dc != NULL || c->batv_keys == NULL || c->batv_ndomains == 0 ||
	    at == NULL || (sd = conf_domain(c, at + 1, strlen(at + 1))) ==
	    NULL || !sd->batv || !(m->qf.auth ||
	    qmgr_client_trusted(c, m->qf.client)))
		return snd;
	if (batv_sign(c->batv_keys, snd, time(NULL), g->batv_sender,
	    sizeof(g->batv_sender)) == -1) {
		log_event(LOG_LVL_INFO, "batv", "qid=%s from=<%s> "
		    "action=unsigned reason=cannot_sign", m->qid,
		    log_esc(snd, strlen(snd), 256));
		return snd;
	}
	log_event(LOG_LVL_INFO, "batv", "qid=%s from=<%s> action=sign "
	    "mail_from=<%s>", m->qid, log_esc(snd, strlen(snd), 256),
	    log_esc(g->batv_sender, strlen(g->batv_sender), 256));
	obs_batv(&m->q->w->obs, OBS_BATV_SIGNED);
	return g->batv_sender;
}

static void
qgroup_send(struct qgroup *g)
{
	struct qmsg	*m = g->m;

	g->cm = (struct client_msg){
		.id = g->id,
		.sender = qgroup_sender(g),
		.rcpts = g->rcpts,
		.nrcpts = g->n,
		.smtputf8 = m->qf.smtputf8,
		.body = m->qf.body,
		.bodylen = m->qf.bodylen,
		.dsn_ret = m->qf.dsn_ret,
		.dsn_envid = m->qf.dsn_envid,
		.dsn_notify = g->notify,
		.dsn_orcpt = (const char *const *)g->orcpt,
		.results = g->res,
		.done = qgroup_sent,
		.arg = g,
	};
	client_send(m->q->client, &g->dest, &g->cm);
}

/* The addresses of r's first nhosts hosts, in order, for g's dest. */
static void
qgroup_fill(struct qgroup *g, const struct dns_result *r, size_t nhosts)
{
	uint16_t	 port;
	size_t		 h, a;

	port = g->dc != NULL ? g->dc->hop.port :
	    g->m->conf->relayhost.host != NULL ?
	    g->m->conf->relayhost.port : QMGR_SMTP_PORT;
	snprintf(g->dest.name, sizeof(g->dest.name), "%s", r->hosts[0].name);
	for (h = 0; h < nhosts; h++)
		for (a = 0; a < r->hosts[h].naddrs &&
		    g->dest.naddrs < CLIENT_ADDR_MAX; a++) {
			struct sockaddr_storage *ss =
			    &g->dest.addrs[g->dest.naddrs++];

			*ss = r->hosts[h].addrs[a];
			if (ss->ss_family == AF_INET)
				((struct sockaddr_in *)ss)->sin_port =
				    htons(port);
			else
				((struct sockaddr_in6 *)ss)->sin6_port =
				    htons(port);
		}
}

static const char *
qdane_state_name(enum qdane_state st)
{
	switch (st) {
	case QD_PENDING:
		return "pending";
	case QD_PLAIN:
		return "none";
	case QD_DANE:
		return "dane";
	case QD_FAIL:
		return "fail";
	}
	return "?";
}

/*
 * Every TLSA look-up is back.  The MX hosts are tried in order as long
 * as none has DANE; the first host with a secure TLSA RRset (or whose
 * look-up failed) ends that list, and when it is the first host the
 * mail goes to it alone, under DANE (or waits, 4.7.5: RFC 7672 2.2).
 * Such a host is never replaced by a later one without DANE: that
 * would be the downgrade DANE is there to stop.
 */
static void
qgroup_dane_done(struct qgroup *g)
{
	struct qdane	*d = g->dane;
	char		 text[400];
	size_t		 n, k;

	for (n = 0; n < d->r.nhosts && d->host[n].st == QD_PLAIN; n++)
		continue;
	g->dane = NULL;
	if (n > 0) {
		qgroup_fill(g, &d->r, n);
	} else if (d->host[0].st == QD_DANE) {
		qgroup_fill(g, &d->r, 1);
		g->dest.tls.level = d->ntlsa > 0 ? CLIENT_TLS_DANE :
		    CLIENT_TLS_ENCRYPT;	/* RFC 7672 2.2: none usable */
		snprintf(g->dest.tls.name, sizeof(g->dest.tls.name), "%s",
		    d->r.hosts[0].name);
		memcpy(g->dest.tls.tlsa, d->tlsa, sizeof(d->tlsa));
		g->dest.tls.ntlsa = d->ntlsa;
	} else {
		snprintf(text, sizeof(text), "TLS required (dane): %s",
		    d->host[0].why);
		free(d);
		for (k = 0; k < g->n; k++) {
			qmsg_result(g->m, g->idx[k], 454, "4.7.5", text, NULL);
			snprintf(g->m->res[g->idx[k]].tls,
			    sizeof(g->m->res[0].tls),
			    "tls_required=dane tls=none");
		}
		qgroup_done(g);
		return;
	}
	free(d);
	qgroup_send(g);
}

/* One MX host's TLSA RRset (RFC 7672 2.2, 3.1.3). */
static void
qgroup_tlsa(void *arg, uint64_t id, const struct dns_rrset *rs)
{
	struct qdane_host	*hh = arg;
	struct qgroup		*g = hh->g;
	struct qdane		*d = g->dane;
	struct dane_tlsa	 t;
	size_t			 h = (size_t)(hh - d->host), i, unusable = 0;
	const char		*name = d->r.hosts[h].name;

	(void)id;
	if (rs->status == DNS_TEMPFAIL) {
		hh->st = QD_FAIL;
		snprintf(hh->why, sizeof(hh->why), "TLSA look-up of "
		    "_25._tcp.%s failed: %s", name, rs->why);
	} else if (rs->status != DNS_OK || rs->n == 0) {
		hh->st = QD_PLAIN;
		snprintf(hh->why, sizeof(hh->why), "no TLSA records");
	} else if (!rs->secure) {
		hh->st = QD_PLAIN;
		snprintf(hh->why, sizeof(hh->why), "TLSA records not "
		    "DNSSEC-secure (no AD bit)");
	} else {
		hh->st = QD_DANE;
		for (i = 0; i < rs->n; i++) {
			if (rs->rr[i].txtlong || dane_tlsa_parse(
			    (const uint8_t *)rs->rr[i].txt, rs->rr[i].txtlen,
			    &t) != PARSE_OK || !dane_usable(&t)) {
				unusable++;
				continue;
			}
			hh->usable++;
			if (h == 0 && d->ntlsa < DANE_TLSA_MAX)
				d->tlsa[d->ntlsa++] = t;
		}
		snprintf(hh->why, sizeof(hh->why), "%zu TLSA records, %zu "
		    "usable", hh->usable + unusable + (rs->total - rs->n),
		    hh->usable);
	}
	log_event(LOG_LVL_INFO, "dane", "qid=%s dest=%s host=%s state=%s "
	    "usable=%zu reason=\"%s\"", g->m->qid, log_esc(g->dest.key,
	    strlen(g->dest.key), 100), log_esc(name, strlen(name), 120),
	    qdane_state_name(hh->st), hh->usable, log_text(hh->why,
	    strlen(hh->why), 300));
	if (--d->pending == 0)
		qgroup_dane_done(g);
}

/* dane = may and a secure MX RRset: ask for each host's TLSA. */
static bool
qgroup_dane_start(struct qgroup *g, const struct dns_result *r)
{
	struct qdane	*d;
	char		 qname[DNS_MSG_NAME_BUF + 16];
	size_t		 h;

	if (g->m->conf->dane != CONF_DANE_MAY || g->dc != NULL || g->relay)
		return false;
	if (!g->m->q->dane_ok) {	/* only after a reload */
		log_event(LOG_LVL_WARNING, "dane", "qid=%s dest=%s state=off "
		    "reason=\"dane = may needs dns_server on a loopback "
		    "address: DANE not used\"", g->m->qid, log_esc(g->dest.key,
		    strlen(g->dest.key), 100));
		return false;
	}
	if (!r->secure) {
		log_event(LOG_LVL_INFO, "dane", "qid=%s dest=%s host=%s "
		    "state=none usable=0 reason=\"MX RRset not DNSSEC-secure "
		    "(no AD bit)\"", g->m->qid, log_esc(g->dest.key,
		    strlen(g->dest.key), 100), log_esc(r->hosts[0].name,
		    strlen(r->hosts[0].name), 120));
		return false;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		panic("qgroup_dane_start: out of memory");
	d->r = *r;
	d->pending = (unsigned)r->nhosts;
	g->dane = d;
	for (h = 0; h < r->nhosts; h++)
		d->host[h].g = g;
	/* every callback comes from the loop, never inside the call */
	for (h = 0; h < r->nhosts; h++) {
		snprintf(qname, sizeof(qname), "_25._tcp.%s",
		    r->hosts[h].name);
		dns_query_rr(g->m->q->dns, qname, DNS_MSG_T_TLSA, g->id,
		    qgroup_tlsa, &d->host[h]);
	}
	return true;
}

/* DNS answered for a group: fill its destination and send. */
static void
qgroup_resolved(void *arg, uint64_t id, const struct dns_result *r)
{
	struct qgroup	*g = arg;

	(void)id;
	if (r->status == DNS_NULLMX) {
		qgroup_fail(g, 556, "5.1.10", "recipient domain does not "
		    "accept mail (null MX)");
		return;
	}
	if (r->status == DNS_NOTFOUND) {
		qgroup_fail(g, 550, "5.1.2", r->why[0] ? r->why :
		    "recipient domain not found");
		return;
	}
	if (r->status != DNS_OK || r->nhosts == 0) {
		qgroup_fail(g, 451, "4.4.3", r->why[0] ? r->why :
		    "DNS look-up failed");
		return;
	}
	if (qgroup_dane_start(g, r))
		return;
	qgroup_fill(g, r, r->nhosts);
	qgroup_send(g);
}

/* On a job thread: a CA file a reload named (outbound.c caches it). */
static void
qgroup_ca_load(void *arg)
{
	struct qgroup	*g = arg;

	if (outbound_load_ca(g->m->q->ob, g->need_ca, g->ca_why,
	    sizeof(g->ca_why)) == 0)
		g->ca_why[0] = '\0';
}

static void	qgroup_start(struct qgroup *);

static void
qgroup_ca_loaded(void *arg)
{
	struct qgroup	*g = arg;
	struct qmsg	*m = g->m;
	char		 text[600];
	size_t		 k;

	if (g->ca_why[0] == '\0' && outbound_policy(m->q->ob, m->conf, g->dc,
	    g->relay, &g->dest.tls, &g->need_ca) == 0) {
		qgroup_start(g);
		return;
	}
	snprintf(text, sizeof(text), "TLS required (verify): CA file %s: %s",
	    g->need_ca, g->ca_why[0] ? g->ca_why : "not loaded");
	g->need_ca = NULL;
	for (k = 0; k < g->n; k++) {
		qmsg_result(m, g->idx[k], 454, "4.7.5", text, NULL);
		snprintf(m->res[g->idx[k]].tls, sizeof(m->res[0].tls),
		    "tls_required=verify tls=none");
	}
	qgroup_done(g);
}

static void
qgroup_start(struct qgroup *g)
{
	struct qmsg	*m = g->m;

	if (g->need_ca != NULL) {
		if (job_submit(m->q->jobs, qgroup_ca_load, qgroup_ca_loaded,
		    g) == -1)
			panic("qgroup_start: out of memory");
	} else if (g->maildir) {
		if (job_submit(m->q->jobs, qgroup_maildir, qgroup_maildir_done,
		    g) == -1)
			panic("qgroup_start: out of memory");
	} else if (g->dest.unix_sock)
		qgroup_send(g);
	else if (m->q->dns == NULL)
		qgroup_fail(g, 451, "4.4.3", "no DNS resolver");
	else if (g->dc != NULL)
		dns_resolve_host(m->q->dns, g->dc->hop.host, g->id,
		    qgroup_resolved, g);
	else if (m->conf->relayhost.host != NULL)
		dns_resolve_host(m->q->dns, m->conf->relayhost.host, g->id,
		    qgroup_resolved, g);
	else
		dns_resolve_mx(m->q->dns, g->domain, g->id, qgroup_resolved,
		    g);
}

/*
 * A group is done.  While other groups of its message are still at work,
 * its delivered recipients' D records are written at once (not synced,
 * as a removal's journal note is not): a crash before the message is
 * finished then redelivers only what it must.  The last group's outcome
 * is recorded with the message's (qmsg_finish).
 */
static void
qgroup_done(struct qgroup *g)
{
	struct qmsg	*m = g->m;
	size_t		 k, i;

	if (--m->pending == 0) {
		qmsg_finish(m);
		return;
	}
	for (k = 0; k < g->n && !m->q->stopping; k++) {
		i = g->idx[k];
		if (m->state[i] != QR_OK)
			continue;
		if (queue_file_write_done(&m->qf, i) == 0)
			m->written[i] = true;
		else
			log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
			    "mark recipient done: %s\"", m->qid,
			    strerror(errno));
	}
}

static bool
qmsg_expired(const struct qmsg *m)
{
	return (uint64_t)(time(NULL) - m->qf.arrival) * 1000 >
	    m->conf->queue_lifetime_ms;
}

/* Group the unfinished recipients by next hop and start each group. */
static void
qmsg_route(struct qmsg *m)
{
	const struct domain_conf	*dc;
	struct qgroup			*g;
	const char			*at;
	size_t				 i, ngroups;
	bool				 expired = qmsg_expired(m);

	for (i = 0; i < m->qf.nrcpts; i++) {
		if (m->qf.done[i])
			continue;
		at = strrchr(m->qf.rcpts[i], '@');
		if (expired || at == NULL) {
			qmsg_result(m, i, 550, "4.4.7", "delivery time expired",
			    NULL);
			continue;
		}
		dc = conf_domain(m->conf, at + 1, strlen(at + 1));
		if ((g = qmsg_group(m, dc, at + 1)) == NULL) {
			qmsg_result(m, i, 451, "4.3.0", "too many next hops "
			    "for one attempt", NULL);
			continue;
		}
		g->idx[g->n] = i;
		g->notify[g->n] = m->qf.dsn_notify[i];
		g->orcpt[g->n] = m->qf.dsn_orcpt[i];
		g->rcpts[g->n++] = m->qf.rcpts[i];
	}
	ngroups = m->ngroups;
	m->pending = (unsigned)ngroups + 1;	/* +1: until all started */
	for (i = 0; i < ngroups; i++)
		qgroup_start(&m->groups[i]);
	if (--m->pending == 0)
		qmsg_finish(m);
}

static void
qmsg_loaded(void *arg)
{
	struct qmsg	*m = arg;
	struct qmgr	*q = m->q;
	time_t		 now = time(NULL);
	size_t		 n;

	if (q->stopping) {
		qmgr_unlink(q, m);
		qmsg_free(m);
		return;
	}
	if (!m->opened) {
		if (m->load_errno == EWOULDBLOCK)
			qmgr_wait(q, m->qid, QMGR_LOCKED_RETRY_MS);
		else if (m->load_errno != ENOENT)
			log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
			    "open queue file: %s\"", m->qid,
			    strerror(m->load_errno));
		qmgr_unlink(q, m);
		qmsg_free(m);
		return;
	}
	if (!m->forced && m->qf.next_attempt > now && !qmsg_expired(m)) {
		qmgr_wait(q, m->qid, (unsigned)(m->qf.next_attempt - now) *
		    1000);
		qmgr_unlink(q, m);
		qmsg_free(m);
		return;
	}
	/*
	 * A flush or a release before the retry time: an extra try.  The
	 * second of slack keeps a retry timer that fires a hair early (the
	 * loop's clock is not the wall clock) an ordinary, counted attempt.
	 */
	m->early = m->qf.attempts > 0 && m->qf.next_attempt > now + 1;
	n = m->qf.nrcpts;
	m->state = calloc(n, sizeof(*m->state));
	m->res = calloc(n, sizeof(*m->res));
	m->report = calloc(n, sizeof(*m->report));
	m->written = calloc(n, sizeof(*m->written));
	if (m->state == NULL || m->res == NULL || m->report == NULL ||
	    m->written == NULL)
		panic("qmsg_loaded: out of memory");
	qmsg_route(m);
}

/* ---- the outcome ---- */

static bool
qmgr_client_trusted(const struct config *c, const char *client)
{
	struct sockaddr_in	sin = { .sin_family = AF_INET };
	struct sockaddr_in6	sin6 = { .sin6_family = AF_INET6 };

	if (inet_pton(AF_INET, client, &sin.sin_addr) == 1)
		return cidr_list_match(&c->relay_networks,
		    (struct sockaddr *)&sin);
	if (inet_pton(AF_INET6, client, &sin6.sin6_addr) == 1)
		return cidr_list_match(&c->relay_networks,
		    (struct sockaddr *)&sin6);
	return false;
}

static unsigned
qmsg_backoff_ms(const struct qmsg *m)
{
	uint64_t	ms = m->conf->retry_min_ms;
	unsigned	i;

	for (i = 0; i < m->qf.attempts && ms < m->conf->retry_max_ms; i++)
		ms *= 2;
	return ms > m->conf->retry_max_ms ? m->conf->retry_max_ms :
	    (unsigned)ms;
}

/*
 * One line per recipient and attempt (issue 18): where it went (relay:
 * "name[addr]:port", "maildir", or the destination when no connection
 * was made), the time since arrival (delay_s), the attempts so far and
 * the reply.  The qid ties it to the queued line.
 */
static void
qmsg_log(struct qmsg *m, size_t i, unsigned next_ms)
{
	const struct client_rcpt_result	*r = &m->res[i];
	const char			*rcpt = m->qf.rcpts[i];
	const char			*sender = m->qf.sender ? m->qf.sender : "";
	char				 h[OBS_HASH_TEXT];
	time_t				 now = time(NULL);
	long long			 delay = now > m->qf.arrival ?
					    (long long)(now - m->qf.arrival) : 0;
	char				 common[1024];

	snprintf(common, sizeof(common), "from=<%s> relay=%s delay_s=%lld "
	    "attempts=%u status=%s", log_esc(sender, strlen(sender), 256),
	    log_esc(r->relay, strlen(r->relay), 200), delay,
	    m->qf.attempts + (m->early ? 0 : 1), r->esc);
	if (m->conf->log_recipients)	/* hashed, as in the RCPT line */
		rcpt = obs_hash_rcpt(rcpt, strlen(rcpt), h);
	switch (m->state[i]) {
	case QR_OK:
		log_event(LOG_LVL_INFO, "delivered", "qid=%s to=<%s> %s "
		    "reply=\"%s\"%s%s", m->qid, log_esc(rcpt, strlen(rcpt),
		    256), common, log_text(r->text, strlen(r->text), 200),
		    r->tls[0] ? " " : "", r->tls);
		break;
	case QR_TEMP:
		log_event(LOG_LVL_INFO, "deferred", "qid=%s to=<%s> %s "
		    "reply=\"%s\" next_attempt_s=%u%s%s%s", m->qid,
		    log_esc(rcpt, strlen(rcpt), 256), common,
		    log_text(r->text, strlen(r->text), 200), next_ms / 1000,
		    m->early ? " early=yes" : "", r->tls[0] ? " " : "",
		    r->tls);
		break;
	case QR_PERM:
		log_event(LOG_LVL_INFO, "failed", "qid=%s to=<%s> %s "
		    "reply=\"%s\"%s%s", m->qid, log_esc(rcpt, strlen(rcpt),
		    256), common, log_text(r->text, strlen(r->text), 200),
		    r->tls[0] ? " " : "", r->tls);
		break;
	default:
		panic("qmsg_log: recipient %zu of %s has no result", i,
		    m->qid);
	}
}

/* The report about some of m's recipients, through qmgr_report. */
static void
qmsg_report(struct qmsg *m, const struct dsn_rcpt *dr, size_t n, bool full)
{
	struct qmgr_report	rep;

	if (n == 0)
		return;
	rep = (struct qmgr_report){
		.orig_qid = m->qid,
		.sender = m->qf.sender,
		.client_trusted = m->qf.auth ||
		    qmgr_client_trusted(m->conf, m->qf.client),
		/* RFC 7208 2.4: only the MAIL FROM identity vouches for the
		 * reverse-path; a HELO pass says nothing about it */
		.proofs = (strcmp(m->qf.spf, "pass") == 0 &&
		    !m->qf.spf_helo ? NDR_PROOF_SPF : 0) |
		    (m->qf.dkim_aligned ? NDR_PROOF_DKIM : 0) |
		    (m->qf.batv ? NDR_PROOF_BATV : 0),
		.msg = m->qf.body,
		.msglen = m->qf.bodylen,
		.arrival = m->qf.arrival,
		.rcpts = dr,
		.nrcpts = n,
		.conf = m->conf,
		.envid = m->qf.dsn_envid,
		.ret_full = full && m->qf.dsn_ret == QUEUE_DSN_RET_FULL,
		.smtputf8 = m->qf.smtputf8,
		.obs = &m->q->w->obs,
	};
	(void)qmgr_report(m->q, &rep);
}

/* The reply as a Diagnostic-Code: the server's line, or ours with code. */
static void
qmsg_diag(const struct qmsg *m, size_t i, char *out, size_t outsz)
{
	const char	*t = m->res[i].text;

	if (t[0] >= '2' && t[0] <= '5' && t[1] >= '0' && t[1] <= '9' &&
	    t[2] >= '0' && t[2] <= '9')
		snprintf(out, outsz, "%s", t);
	else
		snprintf(out, outsz, "%u %s %s", m->res[i].code,
		    m->res[i].esc, t);
}

/* RFC 3461 4.1: does recipient i want a report of this kind? */
static bool
qmsg_wants(const struct qmsg *m, size_t i, enum dsn_event ev)
{
	return dsn_notify_wants(m->qf.dsn_notify[i], ev);
}

/* The recipients one report is about, as the three kinds collect them. */
struct qreport {
	struct dsn_rcpt	*dr;
	char		(*diag)[300];
	size_t		 n;
};

static void
qreport_init(struct qreport *r, const struct qmsg *m)
{
	r->n = 0;
	if ((r->dr = calloc(m->qf.nrcpts, sizeof(*r->dr))) == NULL ||
	    (r->diag = calloc(m->qf.nrcpts, sizeof(*r->diag))) == NULL)
		panic("qreport_init: out of memory");
}

/* Recipient i, with its next hop's reply as the Diagnostic-Code if asked. */
static void
qreport_add(struct qreport *r, const struct qmsg *m, size_t i,
    const char *action, const char *status, bool with_diag)
{
	qmsg_diag(m, i, r->diag[r->n], sizeof(r->diag[r->n]));
	r->dr[r->n] = (struct dsn_rcpt){
		.rcpt = m->qf.rcpts[i],
		.action = action,
		.status = status,
		.diag = with_diag ? r->diag[r->n] : NULL,
		.mta = m->res[i].mta[0] ? m->res[i].mta : NULL,
		.orcpt = m->qf.dsn_orcpt[i],
	};
	r->n++;
}

/* Sends the report (if it names anyone: qmsg_report) and frees r. */
static void
qreport_send(struct qreport *r, struct qmsg *m, bool full)
{
	qmsg_report(m, r->dr, r->n, full);
	free(r->diag);
	free(r->dr);
}

/*
 * Failed recipients get one report, if the guard allows, and unless
 * their NOTIFY says NEVER (or lacks FAILURE).
 */
static void
qmsg_report_failures(struct qmsg *m)
{
	struct qreport	r;
	size_t		i;

	qreport_init(&r, m);
	for (i = 0; i < m->qf.nrcpts; i++) {
		if (m->state[i] != QR_PERM)
			continue;
		m->report[i] = true;	/* finished for good either way */
		if (!qmsg_wants(m, i, DSN_EV_FAILURE)) {
			log_event(LOG_LVL_INFO, "dsn", "qid=%s to=<%s> "
			    "ndr=suppressed reason=notify", m->qid,
			    log_esc(m->qf.rcpts[i], strlen(m->qf.rcpts[i]),
			    256));
			obs_ndr_note(&m->q->w->obs, false, NULL, "notify");
			continue;
		}
		qreport_add(&r, m, i, "failed", m->res[i].esc, true);
	}
	qreport_send(&r, m, true);
}

/*
 * NOTIFY=SUCCESS (RFC 3461 4.1, RFC 3464 2.3.3): "delivered" when we put
 * it in the mailbox (Maildir, LMTP), "relayed" when the next hop took it
 * without offering DSN; a hop that offers DSN got NOTIFY and reports.
 */
static void
qmsg_report_success(struct qmsg *m)
{
	struct qreport		 r;
	const struct qgroup	*g;
	size_t			 gi, k, i;

	qreport_init(&r, m);
	for (gi = 0; gi < m->ngroups; gi++) {
		g = &m->groups[gi];
		for (k = 0; k < g->n; k++) {
			i = g->idx[k];
			if (m->state[i] != QR_OK || m->res[i].hop_dsn ||
			    !qmsg_wants(m, i, DSN_EV_SUCCESS))
				continue;
			qreport_add(&r, m, i, g->maildir || g->dest.lmtp ?
			    "delivered" : "relayed", m->res[i].esc[0] == '2' ?
			    m->res[i].esc : "2.0.0", !g->maildir);
		}
	}
	qreport_send(&r, m, false);
}

/* delay_warning_time has passed and no warning went out yet. */
static bool
qmsg_warning_due(const struct qmsg *m, time_t now)
{
	uint64_t	dwt = m->conf->delay_warning_time_ms;

	return dwt > 0 && !m->qf.delay_warned &&
	    (uint64_t)(now - m->qf.arrival) * 1000 >= dwt;
}

/*
 * One "delayed" report per message (RFC 3464 2.3.3), once it has waited
 * delay_warning_time, about the deferred recipients whose NOTIFY allows
 * DELAY (unset allows it).  The W record makes it once across restarts.
 */
static void
qmsg_report_delay(struct qmsg *m)
{
	struct qreport	r;
	size_t		i;

	if (m->ndeferred == 0 || !qmsg_warning_due(m, time(NULL)))
		return;
	m->warn = true;
	qreport_init(&r, m);
	for (i = 0; i < m->qf.nrcpts; i++) {
		if (m->qf.done[i] || m->state[i] != QR_TEMP ||
		    !qmsg_wants(m, i, DSN_EV_DELAY))
			continue;
		qreport_add(&r, m, i, "delayed", m->res[i].esc[0] == '4' ?
		    m->res[i].esc : "4.0.0", true);
	}
	qreport_send(&r, m, false);
}

/*
 * On a job thread: make the outcome durable.  A message whose recipients
 * are all finished now is just removed (its done records would die with
 * it; the removal is not synced: a crash may bring it back to be
 * delivered again, never lose it); otherwise its new records are
 * fdatasynced.
 */
static bool
qmsg_all_final(const struct qmsg *m)
{
	size_t	i;

	for (i = 0; i < m->qf.nrcpts; i++)
		if (!m->qf.done[i] && m->state[i] != QR_OK && !m->report[i])
			return false;
	return true;
}

/* The reply of the first recipient deferred, as a DSN would quote it. */
static const char *
qmsg_last_error(const struct qmsg *m, char *buf, size_t len)
{
	const struct client_rcpt_result	*r;
	size_t				 i;

	for (i = 0; i < m->qf.nrcpts; i++) {
		if (m->qf.done[i] || m->state[i] != QR_TEMP)
			continue;
		r = &m->res[i];
		/* and the TLS asked for and got (next_hop_tls, issue 20) */
		if (r->text[0] >= '2' && r->text[0] <= '5' &&
		    r->text[1] >= '0' && r->text[1] <= '9' &&
		    r->text[2] >= '0' && r->text[2] <= '9')
			snprintf(buf, len, "%s%s%s%s%s%s", r->text, r->mta[0] ?
			    " from " : "", r->mta, r->tls[0] ? " (" : "",
			    r->tls, r->tls[0] ? ")" : "");
		else
			snprintf(buf, len, "%u %s %s%s%s%s%s%s", r->code,
			    r->esc, r->text, r->mta[0] ? " from " : "", r->mta,
			    r->tls[0] ? " (" : "", r->tls,
			    r->tls[0] ? ")" : "");
		return buf;
	}
	return "";
}

static void
qmsg_record(void *arg)
{
	struct qmsg	*m = arg;
	char		 err[QMGR_LASTERR_MAX];
	size_t		 i;
	bool		 last = qmsg_all_final(m);

	if (last && queue_retire(m->q->w->queue, &m->qf, &m->spare) == 0)
		m->removed = true;
	else if (last)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "remove queue file: %s\"", m->qid, strerror(errno));
	for (i = 0; !m->removed && i < m->qf.nrcpts; i++)
		if ((m->state[i] == QR_OK || m->report[i]) && !m->written[i] &&
		    queue_file_mark_done(&m->qf, i) == -1)
			log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
			    "mark recipient done: %s\"", m->qid,
			    strerror(errno));
	if (!m->removed && m->warn && queue_file_mark_warned(&m->qf) == -1)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "record the delay warning: %s\"", m->qid, strerror(errno));
	if (!m->removed && m->ndeferred > 0 &&
	    queue_file_mark_error(&m->qf, time(NULL), qmsg_last_error(m,
	    err, sizeof(err))) == -1)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "record the last error: %s\"", m->qid, strerror(errno));
	/* an early try keeps the count and the schedule (qmsg_finish) */
	if (!m->removed && m->ndeferred > 0 && !m->early &&
	    queue_file_mark_attempt(&m->qf, m->qf.attempts + 1, m->next) == -1)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "record the retry time: %s\"", m->qid, strerror(errno));
	if (!m->removed && queue_file_sync(&m->qf) == -1)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
		    "sync the outcome: %s\"", m->qid, strerror(errno));
}

static void
qmsg_recorded(void *arg)
{
	struct qmsg	*m = arg;
	struct qmgr	*q = m->q;
	time_t		 now = time(NULL);
	uint32_t	 spare = m->spare;

	if (m->removed)
		log_event(LOG_LVL_INFO, "removed", "qid=%s", m->qid);
	qmgr_unlink(q, m);
	if (!q->stopping && !m->removed) {
		if (m->again)
			qmgr_notify(q, m->qid);
		else if (m->ndeferred > 0)
			qmgr_wait(q, m->qid, m->next > now ?
			    (unsigned)(m->next - now) * 1000 : 0);
	}
	qmsg_free(m);		/* closes the file: now it may be reused */
	queue_spare_put(q->w->queue, spare);
}

/* mxgate_delivery_total: this attempt's outcome per recipient, by the
 * kind of its next hop (worker 0's loop: the qmgr's). */
static void
qmsg_count(struct qmsg *m)
{
	struct obs_loop		*o = &m->q->w->obs;
	const struct qgroup	*g;
	enum obs_hop		 hop;
	size_t			 gi, k, i;

	for (gi = 0; gi < m->ngroups; gi++) {
		g = &m->groups[gi];
		hop = g->maildir ? OBS_HOP_MAILDIR : g->dest.lmtp ?
		    OBS_HOP_LMTP : OBS_HOP_SMTP;
		for (k = 0; k < g->n; k++) {
			i = g->idx[k];
			if (m->qf.done[i])
				continue;
			if (m->state[i] == QR_OK)
				obs_add(&o->delivery[hop][OBS_DLV_DELIVERED], 1);
			else if (m->state[i] == QR_TEMP)
				obs_add(&o->delivery[hop][OBS_DLV_DEFERRED], 1);
			else if (m->state[i] == QR_PERM)
				obs_add(&o->delivery[hop][OBS_DLV_FAILED], 1);
		}
	}
}

static void
qmsg_finish(struct qmsg *m)
{
	unsigned	next_ms = qmsg_backoff_ms(m);
	size_t		i;
	time_t		now = time(NULL), warn_at;

	if (m->q->stopping)
		return;		/* nothing recorded: tried again at start */
	/*
	 * The backoff rule: an attempt made when it was due counts (the
	 * attempt count grows and the wait doubles); one an operator asked
	 * for before then (flush, release) is an extra try: if it defers,
	 * the message keeps its count and its retry time.
	 */
	if (m->early && m->qf.next_attempt > now)
		next_ms = (unsigned)(m->qf.next_attempt - now) * 1000;
	else
		m->early = false;
	m->next = now + (time_t)(next_ms / 1000);
	qmsg_count(m);
	for (i = 0; i < m->qf.nrcpts; i++) {
		if (m->qf.done[i])
			continue;
		m->ndeferred += m->state[i] == QR_TEMP;
		qmsg_log(m, i, next_ms);
	}
	qmsg_report_failures(m);
	qmsg_report_success(m);
	qmsg_report_delay(m);
	/* A warning due before the next retry: try (and warn) then. */
	warn_at = m->qf.arrival + (time_t)((m->conf->delay_warning_time_ms +
	    999) / 1000);
	if (m->ndeferred > 0 && !m->warn && m->conf->delay_warning_time_ms >
	    0 && !m->qf.delay_warned && warn_at > now && warn_at < m->next)
		m->next = warn_at;
	/*
	 * Finished for good: removing the file is a rename and a journal
	 * note, no sync, so it is done here.  Records that must be synced
	 * go to a job.
	 */
	if (qmsg_all_final(m) &&
	    queue_retire(m->q->w->queue, &m->qf, &m->spare) == 0) {
		m->removed = true;
		qmsg_recorded(m);
		return;
	}
	if (job_submit(m->q->record_jobs, qmsg_record, qmsg_recorded, m) == -1)
		panic("qmsg_finish: out of memory");
}

/* ---- reports (DSN, NDR) ---- */

static void
qmgr_report_committed(void *arg, uint64_t sid, bool ok, const char *qid)
{
	struct qmgr	*q = arg;

	(void)sid;
	if (ok)
		qmgr_notify(q, qid);
	else
		log_event(LOG_LVL_WARNING, "dsn", "msg=\"cannot queue a "
		    "report\"");
}

/* NULL: send (*shadow: the rule that would have refused it, or NULL). */
static const char *
qmgr_report_verdict(struct qmgr *q, const struct qmgr_report *r,
    const char **shadow)
{
	const struct config	*c = r->conf;
	const char		*at = strrchr(r->sender, '@'), *why = NULL;
	struct ndr_query	 nq = {
		.sender = r->sender,
		.sender_is_ours = at != NULL &&
		    conf_domain(c, at + 1, strlen(at + 1)) != NULL,
		.client_trusted = r->client_trusted,
		.about_dsn = r->sender[0] == '\0' ||
		    dsn_is_report(r->msg, r->msglen),
		.proofs = r->proofs,
		.require = c->ndr_require_auth == CONF_CONTROL_ENFORCE ?
		    NDR_REQUIRE_YES : c->ndr_require_auth ==
		    CONF_CONTROL_SHADOW ? NDR_REQUIRE_SHADOW : NDR_REQUIRE_NO,
	};
	struct timespec		 ts;

	enum ndr_verdict	 v;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&q->bs_mu);
	v = backscatter_check(q->bs, &nq, (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000, &why, shadow);
	pthread_mutex_unlock(&q->bs_mu);
	if (v == NDR_SEND)
		return NULL;
	return why ? why : "refused";
}

static bool
qmgr_report_all_failed(const struct qmgr_report *r)
{
	size_t	i;

	for (i = 0; i < r->nrcpts; i++)
		if (strcmp(r->rcpts[i].action, "failed") != 0)
			return false;
	return true;
}

/*
 * Where a report to sender is queued: a sender at one of batv_domains
 * with a tag loses it (the report goes to our user's plain address, as
 * a bounce through RCPT would).
 */
static const char *
qmgr_report_rcpt(const struct config *c, const char *sender, char *plain,
    size_t len)
{
	const char			*at = strrchr(sender, '@');
	const struct domain_conf	*dc;
	struct batv_tag			 tag;

	if (at == NULL || (dc = conf_domain(c, at + 1, strlen(at + 1))) ==
	    NULL || !dc->batv || batv_parse(sender, (size_t)(at - sender),
	    &tag) != PARSE_OK)
		return sender;
	snprintf(plain, len, "%.*s%s", (int)tag.llen, tag.local, at);
	return plain;
}

int
qmgr_report(struct qmgr *q, const struct qmgr_report *r)
{
	const struct config	*c = r->conf;
	const char		*why, *shadow = NULL, *rcpts[1];
	char			 plain[BATV_ADDR_MAX + 1];
	struct queue_msg	*qm;
	struct queue_env	 env;
	struct dsn_input	 in;
	struct buf		 b;
	size_t			 i;

	if ((why = qmgr_report_verdict(q, r, &shadow)) != NULL) {
		for (i = 0; i < r->nrcpts; i++)
			log_event(LOG_LVL_INFO, "dsn", "qid=%s to=<%s> "
			    "from=<%s> ndr=suppressed reason=%s", r->orig_qid,
			    log_esc(r->rcpts[i].rcpt,
			    strlen(r->rcpts[i].rcpt), 256),
			    log_esc(r->sender, strlen(r->sender), 256), why);
		obs_ndr_note(r->obs, false, NULL, why);
		return -1;
	}
	in = (struct dsn_input){
		.reporting_mta = c->hostname,
		.qid = r->orig_qid,
		.arrival = r->arrival,
		.now = time(NULL),
		.sender = r->sender,
		.msg = r->msg,
		.msglen = r->msglen,
		.rcpts = r->rcpts,
		.nrcpts = r->nrcpts,
		.boundary_seed = r->orig_qid,
		.envid = r->envid,
		.smtputf8 = r->smtputf8,
		/* RFC 3461 4.3 RET=FULL loses to the backscatter guard's
		 * headers-only rule unless ndr_return_full = yes, and is
		 * never honoured for a success or delay report */
		.full = r->ret_full && c->ndr_return_full &&
		    qmgr_report_all_failed(r),
	};
	buf_init(&b, QMGR_DSN_MAX);
	rcpts[0] = qmgr_report_rcpt(c, r->sender, plain, sizeof(plain));
	env = (struct queue_env){
		.client = "127.0.0.1", .helo = c->hostname, .sender = "",
		.rcpts = rcpts, .nrcpts = 1, .arrival = time(NULL),
		/* RFC 6531 3.2: a report to a UTF-8 sender needs SMTPUTF8 */
		.smtputf8 = !utf8_is_ascii((const uint8_t *)r->sender,
		    strlen(r->sender)),
	};
	if (dsn_build(&in, &b) == -1 ||
	    (qm = queue_msg_new(q->w->queue, &env)) == NULL) {
		log_event(LOG_LVL_WARNING, "dsn", "qid=%s msg=\"cannot build "
		    "or queue a report\"", r->orig_qid);
		obs_ndr_note(r->obs, false, NULL, "local_error");
		buf_free(&b);
		return -1;
	}
	log_event(LOG_LVL_INFO, "dsn", "qid=%s dsn_qid=%s to=<%s> rcpts=%zu%s%s",
	    r->orig_qid, queue_msg_id(qm), log_esc(r->sender,
	    strlen(r->sender), 256), r->nrcpts, shadow ?
	    " shadow=1 would=suppress reason=" : "", shadow ? shadow : "");
	if (queue_msg_write(qm, b.data, b.len) == -1) {
		queue_msg_abort(qm);
		obs_ndr_note(r->obs, false, NULL, "local_error");
		buf_free(&b);
		return -1;
	}
	buf_free(&b);
	obs_ndr_note(r->obs, true, r->rcpts[0].action, NULL);
	queue_msg_commit(qm, NULL, 0, qmgr_report_committed, q);
	return 0;
}

/* ---- waiting for retries: at most one timer per message ---- */

static struct qwait *
qwait_find(struct qmgr *q, const char *qid)
{
	struct qwait	*r;

	for (r = q->wait_tab[qmgr_bucket(qid)]; r != NULL; r = r->hnext)
		if (strcmp(r->qid, qid) == 0)
			return r;
	return NULL;
}

static void
qwait_unlink(struct qwait *r)
{
	struct qwait	**pp = &r->q->wait_tab[qmgr_bucket(r->qid)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == r) {
			*pp = r->hnext;
			break;
		}
	if (r->prev)
		r->prev->next = r->next;
	else
		r->q->waiting = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->q->nwaiting--;
	event_free(r->ev);
}

static void
qwait_fire(evutil_socket_t fd, short what, void *arg)
{
	struct qwait	*r = arg;
	struct qmgr	*q = r->q;
	char		 qid[ID_STRLEN + 1];

	(void)fd;
	(void)what;
	memcpy(qid, r->qid, sizeof(qid));
	qwait_unlink(r);
	free(r);
	qmgr_notify(q, qid);
}

/* Wait ms before the next attempt; a message already waiting is re-armed
 * (one timer per message: a flush tries it once). */
static void
qmgr_wait(struct qmgr *q, const char *qid, unsigned ms)
{
	struct qwait	*r;
	struct timeval	 tv = { .tv_sec = ms / 1000,
			    .tv_usec = (ms % 1000) * 1000 };

	if ((r = qwait_find(q, qid)) != NULL) {
		evtimer_add(r->ev, &tv);
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->ev = evtimer_new(q->w->base, qwait_fire, r)) == NULL)
		panic("qmgr_wait: out of memory");
	r->q = q;
	snprintf(r->qid, sizeof(r->qid), "%s", qid);
	r->next = q->waiting;
	if (q->waiting)
		q->waiting->prev = r;
	q->waiting = r;
	r->hnext = q->wait_tab[qmgr_bucket(r->qid)];
	q->wait_tab[qmgr_bucket(r->qid)] = r;
	q->nwaiting++;
	evtimer_add(r->ev, &tv);
}

static void
qmgr_unwait(struct qmgr *q, const char *qid)
{
	struct qwait	*r;

	if ((r = qwait_find(q, qid)) != NULL) {
		qwait_unlink(r);
		free(r);
	}
}

/*
 * Every message waiting for a retry whose file is still in queue/ (not
 * held or deleted meanwhile) is tried now, once; fn hears of each one.
 * The others leave the waiting list without being counted.
 */
unsigned
qmgr_flush(struct qmgr *q, void (*fn)(void *, const char *), void *arg)
{
	struct qwait	*r, *next;
	struct timeval	 now = { 0, 0 };
	unsigned	 n = 0;
	char		*path;
	bool		 gone;

	for (r = q->waiting; r != NULL; r = next) {
		next = r->next;
		path = queue_path(q->w->queue, r->qid);
		gone = path == NULL || access(path, F_OK) == -1;
		free(path);
		if (gone) {
			qwait_unlink(r);
			free(r);
			continue;
		}
		if (fn != NULL)
			fn(arg, r->qid);
		evtimer_add(r->ev, &now);
		n++;
	}
	return n;
}

static void
qmgr_scan_one(void *arg, const char *qid)
{
	struct qmgr	*q = arg;
	struct qmsg	*m;

	qmgr_notify(q, qid);
	if ((m = qmgr_find(q, qid)) != NULL)
		m->forced = false;	/* resume the schedule on disk */
}

void
qmgr_start(struct qmgr *q)
{
	if (queue_scan(q->w->queue, qmgr_scan_one, q) == -1)
		log_event(LOG_LVL_WARNING, "queue", "msg=\"cannot scan the "
		    "spool: %s\"", strerror(errno));
}

unsigned
qmgr_active(const struct qmgr *q)
{
	return q->nactive;
}

unsigned
qmgr_waiting(const struct qmgr *q)
{
	return q->nwaiting;
}

/* Keep the lower of *best and the id qid names (0: none yet). */
static void
qmgr_oldest_keep(uint64_t *best, const char *qid)
{
	uint64_t	id;

	if (id_parse(qid, &id) == 0 && id != 0 && (*best == 0 || id < *best))
		*best = id;
}

uint64_t
qmgr_oldest_id(const struct qmgr *q)
{
	const struct qmsg	*m;
	const struct qwait	*r;
	uint64_t		 best = 0;
	size_t			 i;

	for (i = 0; i < QMGR_BUCKETS; i++)
		for (m = q->active[i]; m != NULL; m = m->hnext)
			qmgr_oldest_keep(&best, m->qid);
	for (r = q->waiting; r != NULL; r = r->next)
		qmgr_oldest_keep(&best, r->qid);
	return best;
}

void
qmgr_stop(struct qmgr *q)
{
	struct qwait	*r;

	q->stopping = true;
	while ((r = q->waiting) != NULL) {
		qwait_unlink(r);
		free(r);
	}
}

void
qmgr_free(struct qmgr *q)
{
	struct qmsg	*m;
	size_t		 b;

	if (q == NULL)
		return;
	qmgr_stop(q);
	/* Deliveries in flight end as deferred (their results are not
	 * recorded: the files stay as they are, and are tried again). */
	if (q->client)
		client_pool_free(q->client);
	if (q->dns)
		dns_resolver_free(q->dns);
	job_pool_free(q->jobs);
	job_pool_free(q->record_jobs);
	for (b = 0; b < QMGR_BUCKETS; b++)
		while ((m = q->active[b]) != NULL) {
			q->active[b] = m->hnext;
			qmsg_free(m);
		}
	if (q->bs)
		backscatter_free(q->bs);
	if (q->xev != NULL) {
		event_free(q->xev);
		qmgr_drain(-1, 0, q);	/* stopping: frees the notes */
	}
	pthread_mutex_destroy(&q->xmu);
	pthread_mutex_destroy(&q->bs_mu);
	free(q);
}

/* ---- control commands (ctl.h) ---- */

struct qmgr_flush_log {
	struct ctl_conn	*cn;
	unsigned	 n;
};

static void
qmgr_flush_one(void *arg, const char *qid)
{
	struct qmgr_flush_log	*f = arg;

	if (f->n++ < QMGR_FLUSH_LOG_IDS)
		ctl_log(f->cn, "%s%s", f->n == 1 ? " qids=" : ",", qid);
}

static int
qmgr_ctl_flush(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct qmgr_flush_log	f = { cn, 0 };
	unsigned		n;

	(void)argv;
	if (argc != 0) {
		ctl_error(cn, "usage: queue flush");
		return -1;
	}
	n = qmgr_flush(arg, qmgr_flush_one, &f);
	if (n > QMGR_FLUSH_LOG_IDS)
		ctl_log(cn, " qids_more=%u", n - QMGR_FLUSH_LOG_IDS);
	ctl_log(cn, " scheduled=%u", n);
	ctl_printf(cn, "scheduled %u deferred message%s", n, n == 1 ? "" : "s");
	return 0;
}

/* The id of argv[0], upper-cased (ids are accepted in any case). */
static int
qmgr_ctl_qid(struct ctl_conn *cn, int argc, char **argv, const char *usage,
    char qid[ID_STRLEN + 1])
{
	if (argc != 1 || queue_admin_canon_id(argv[0], qid) == -1) {
		ctl_error(cn, "usage: %s QUEUE-ID", usage);
		return -1;
	}
	ctl_log(cn, " qid=%s", qid);
	return 0;
}

/* Where the id's file is: 'q' queue/, 'h' hold/, 0 neither; -1 error. */
static int
qmgr_ctl_where(struct qmgr *q, const char *qid)
{
	const char	*qd = queue_dir(q->w->queue), *sl = strrchr(qd, '/');
	char		*path, hold[PATH_MAX];
	int		 in_queue, n;

	if ((path = queue_path(q->w->queue, qid)) == NULL)
		return -1;
	in_queue = access(path, F_OK) == 0;
	free(path);
	if (in_queue)
		return 'q';
	/* SPOOL/hold beside SPOOL/queue (a reload may name another spool) */
	n = snprintf(hold, sizeof(hold), "%.*s/%s/%s", sl ? (int)(sl - qd) :
	    1, sl ? qd : ".", QUEUE_ADMIN_HOLD, qid);
	if (n < 0 || (size_t)n >= sizeof(hold))
		return -1;
	return access(hold, F_OK) == 0 ? 'h' : 0;
}

/* Deliver a message in queue/ now (`queue release` moved it back). */
static int
qmgr_ctl_schedule(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct qmgr	*q = arg;
	char		 qid[ID_STRLEN + 1];

	if (qmgr_ctl_qid(cn, argc, argv, "queue schedule", qid) == -1)
		return -1;
	if (qmgr_ctl_where(q, qid) != 'q') {
		ctl_error(cn, "no such message in the queue: %s", qid);
		return -1;
	}
	qmgr_notify(q, qid);
	ctl_printf(cn, "scheduled %s", qid);
	return 0;
}

/*
 * `mxgate queue hold|delete|release` did the work on the spool and tell
 * us: the claim is checked against the spool, the message's timer goes
 * (or, released, it is tried now), and the control log line says who.
 */
static int
qmgr_ctl_done(void *arg, struct ctl_conn *cn, int argc, char **argv,
    const char *what, int want)
{
	struct qmgr	*q = arg;
	char		 qid[ID_STRLEN + 1], usage[32];
	int		 where;

	snprintf(usage, sizeof(usage), "queue %s", what);
	if (qmgr_ctl_qid(cn, argc, argv, usage, qid) == -1)
		return -1;
	if ((where = qmgr_ctl_where(q, qid)) != want) {
		ctl_error(cn, "%s is %s", qid, where == 'q' ? "in the queue" :
		    where == 'h' ? "held" : "not in the spool");
		return -1;
	}
	if (want == 'q') {
		qmgr_notify(q, qid);
		ctl_printf(cn, "scheduled %s", qid);
	} else
		qmgr_unwait(q, qid);
	return 0;
}

static int
qmgr_ctl_held(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	return qmgr_ctl_done(arg, cn, argc, argv, "held", 'h');
}

static int
qmgr_ctl_deleted(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	return qmgr_ctl_done(arg, cn, argc, argv, "deleted", 0);
}

static int
qmgr_ctl_released(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	return qmgr_ctl_done(arg, cn, argc, argv, "released", 'q');
}

/* The deliveries and reports, from the counters /metrics shows. */
static int
qmgr_ctl_stats(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct qmgr		*q = arg;
	struct obs_totals	 t;
	uint64_t		 d[OBS_DLV_MAX] = { 0 }, sent = 0, sup = 0;
	size_t			 h, k;

	(void)argc;
	(void)argv;
	memset(&t, 0, sizeof(t));
	worker_obs_totals(q->w, &t);
	for (h = 0; h < OBS_HOP_MAX; h++)
		for (k = 0; k < OBS_DLV_MAX; k++)
			d[k] += t.delivery[h][k];
	for (k = 0; k < OBS_NDR_MAX; k++)
		*(strcmp(obs_ndr_action(k), "sent") == 0 ? &sent : &sup) +=
		    t.ndr[k];
	ctl_printf(cn, "queue_active %u", qmgr_active(arg));
	ctl_printf(cn, "queue_deferred %u", qmgr_waiting(arg));
	ctl_printf(cn, "delivered_total %llu",
	    (unsigned long long)d[OBS_DLV_DELIVERED]);
	ctl_printf(cn, "deferred_total %llu",
	    (unsigned long long)d[OBS_DLV_DEFERRED]);
	ctl_printf(cn, "bounced_total %llu",
	    (unsigned long long)d[OBS_DLV_FAILED]);
	ctl_printf(cn, "reports_sent_total %llu", (unsigned long long)sent);
	ctl_printf(cn, "reports_suppressed_total %llu",
	    (unsigned long long)sup);
	return 0;
}

void
qmgr_ctl_register(struct qmgr *q, struct ctl *ctl)
{
	if (ctl_register(ctl, "queue", "flush", qmgr_ctl_flush, q,
	    "retry every deferred message now") == -1 ||
	    ctl_register(ctl, "queue", "schedule", qmgr_ctl_schedule, q,
	    "QUEUE-ID: deliver this message now") == -1 ||
	    ctl_register(ctl, "queue", "held", qmgr_ctl_held, q,
	    "QUEUE-ID: mxgate queue hold moved it to hold/") == -1 ||
	    ctl_register(ctl, "queue", "deleted", qmgr_ctl_deleted, q,
	    "QUEUE-ID: mxgate queue delete removed it") == -1 ||
	    ctl_register(ctl, "queue", "released", qmgr_ctl_released, q,
	    "QUEUE-ID: mxgate queue release moved it back; deliver now") ==
	    -1 ||
	    ctl_register(ctl, "stats", NULL, qmgr_ctl_stats, q, NULL) == -1)
		panic("qmgr_ctl_register: command table full");
}
