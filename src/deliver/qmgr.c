/*
 * qmgr.c - delivery manager (see qmgr.h).  One job per message: open the
 * queue file, deliver every recipient not yet done, mark each one done
 * durably, remove the file when all are.  What is left is retried after
 * retry_min.  A crash between a Maildir link and its done mark leads to a
 * second attempt, which the deterministic Maildir name turns into a no-op.
 * Never: touches a session; runs blocking work on the loop.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../conf/conf.h"
#include "../dir/dir.h"
#include "../lib/ids.h"
#include "../lib/job.h"
#include "../lib/log.h"
#include "../net/worker.h"
#include "../queue/queue.h"
#include "deliver.h"
#include "qmgr.h"

struct qmgr {
	struct worker	*w;
	struct job_pool	*jobs;
	struct qretry	*retries;	/* waiting for their timer */
};

/* One delivery attempt of one message. */
struct qjob {
	struct qmgr	*q;
	struct config	*conf;		/* snapshot for this attempt (ref) */
	struct dir	*dir;		/* the directory then (ref) */
	char		 qid[ID_STRLEN + 1];
	char		*path;
	bool		 again;		/* some recipient is left */
};

struct qretry {
	struct qretry	*next;
	struct qretry	*prev;
	struct qmgr	*q;
	struct event	*ev;
	char		 qid[ID_STRLEN + 1];
};

struct qmgr *
qmgr_new(struct worker *w, unsigned nthreads)
{
	struct qmgr	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->w = w;
	if ((q->jobs = job_pool_new(w->base, nthreads)) == NULL) {
		free(q);
		return NULL;
	}
	return q;
}

/*
 * The mailbox of a recipient: its local part if the directory knows it,
 * else the part before the recipient delimiter (alice+news -> alice).
 */
static void
qjob_mailbox(struct qjob *j, const struct domain_conf *dc, const char *rcpt,
    const char *at, char *out, size_t outlen)
{
	struct dir_query	q = {
		.local = rcpt, .llen = (size_t)(at - rcpt),
		.domain = at + 1, .dlen = strlen(at + 1), .delim = "",
	};
	size_t			n = q.llen;

	if (dir_lookup(j->dir, &q, 0, NULL, NULL) != DIR_VALID)
		n = strcspn(rcpt, dc->delim);
	if (n == 0 || n > q.llen)
		n = q.llen;
	snprintf(out, outlen, "%.*s", (int)n, rcpt);
}

/* One recipient; 0 when it is finished for good. */
static int
qjob_rcpt(struct qjob *j, struct queue_file *qf, size_t i)
{
	const struct domain_conf	*dc;
	const char			*rcpt = qf->rcpts[i], *at;
	char				 err[256], mbox[256];

	at = strrchr(rcpt, '@');
	dc = at ? conf_domain(j->conf, at + 1, strlen(at + 1)) : NULL;
	if (dc == NULL) {
		log_event(LOG_LVL_INFO, "deferred", "qid=%s to=<%s> "
		    "reason=\"no route: delivery to other domains needs a "
		    "relay transport\"", j->qid, log_esc(rcpt,
		    strlen(rcpt), 256));
		return -1;
	}
	qjob_mailbox(j, dc, rcpt, at, mbox, sizeof(mbox));
	if (deliver_maildir(dc->hop.path, mbox, j->conf->hostname, qf, i,
	    err, sizeof(err)) == -1) {
		log_event(LOG_LVL_WARNING, "deferred", "qid=%s to=<%s> "
		    "reason=\"%s\"", j->qid, log_esc(rcpt, strlen(rcpt), 256),
		    log_text(err, strlen(err), 200));
		return -1;
	}
	if (queue_file_mark_done(qf, i) == -1)
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot mark "
		    "recipient done: %m\"", j->qid);
	log_event(LOG_LVL_INFO, "delivered", "qid=%s to=<%s> relay=maildir",
	    j->qid, log_esc(rcpt, strlen(rcpt), 256));
	return 0;
}

/* On a job thread. */
static void
qjob_run(void *arg)
{
	struct qjob		*j = arg;
	struct queue_file	 qf;
	size_t			 i;

	if (queue_file_open(j->path, &qf) == -1) {
		log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot open "
		    "queue file: %m\"", j->qid);
		j->again = true;
		return;
	}
	for (i = 0; i < qf.nrcpts; i++)
		if (!qf.done[i] && qjob_rcpt(j, &qf, i) == -1)
			j->again = true;
	if (queue_file_all_done(&qf)) {
		if (queue_file_remove(&qf) == -1)
			log_event(LOG_LVL_WARNING, "queue", "qid=%s msg=\"cannot "
			    "remove queue file: %m\"", j->qid);
		else
			log_event(LOG_LVL_INFO, "removed", "qid=%s", j->qid);
	}
	queue_file_close(&qf);
}

static void	qmgr_retry_fire(evutil_socket_t, short, void *);

static void
qmgr_retry_later(struct qmgr *q, const char *qid, unsigned ms)
{
	struct qretry	*r;
	struct timeval	 tv = { .tv_sec = ms / 1000,
			    .tv_usec = (ms % 1000) * 1000 };

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->ev = evtimer_new(q->w->base, qmgr_retry_fire, r)) == NULL)
		panic("qmgr_retry_later: out of memory");
	r->q = q;
	memcpy(r->qid, qid, sizeof(r->qid));
	r->next = q->retries;
	if (q->retries)
		q->retries->prev = r;
	q->retries = r;
	evtimer_add(r->ev, &tv);
}

static void
qmgr_retry_unlink(struct qretry *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		r->q->retries = r->next;
	if (r->next)
		r->next->prev = r->prev;
	event_free(r->ev);
}

static void
qmgr_retry_fire(evutil_socket_t fd, short what, void *arg)
{
	struct qretry	*r = arg;

	(void)fd;
	(void)what;
	qmgr_retry_unlink(r);
	qmgr_notify(r->q, r->qid);
	free(r);
}

/* On the loop. */
static void
qjob_done(void *arg)
{
	struct qjob	*j = arg;

	if (j->again && !j->q->w->stopping)
		qmgr_retry_later(j->q, j->qid, j->conf->retry_min_ms);
	conf_unref(j->conf);
	dir_unref(j->dir);
	free(j->path);
	free(j);
}

void
qmgr_notify(struct qmgr *q, const char *qid)
{
	struct qjob	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->path = queue_path(q->w->queue, qid)) == NULL)
		panic("qmgr_notify: out of memory");
	j->q = q;
	j->conf = conf_ref(q->w->conf);
	j->dir = q->w->dir ? dir_ref(q->w->dir) : NULL;
	snprintf(j->qid, sizeof(j->qid), "%s", qid);
	if (job_submit(q->jobs, qjob_run, qjob_done, j) == -1)
		panic("qmgr_notify: out of memory");
}

static void
qmgr_scan_one(void *arg, const char *qid)
{
	qmgr_notify(arg, qid);
}

void
qmgr_start(struct qmgr *q)
{
	if (queue_scan(q->w->queue, qmgr_scan_one, q) == -1)
		log_event(LOG_LVL_WARNING, "queue", "msg=\"cannot scan the "
		    "spool: %m\"");
}

void
qmgr_free(struct qmgr *q)
{
	struct qretry	*r;

	if (q == NULL)
		return;
	while ((r = q->retries) != NULL) {
		qmgr_retry_unlink(r);
		free(r);
	}
	job_pool_free(q->jobs);
	free(q);
}
