/*
 * worker_obs.c - what GET /metrics and GET / show (issue 18, parts 1 and
 * 6): on worker 0's loop, every loop's counters summed (relaxed loads,
 * obs.h says what that guarantees), the guard's, the spool's and the
 * delivery manager's figures read there, written as the Prometheus text
 * format (obs_expo.h) or the status page (obs_status.h).
 * Owns: the list of metric families, their names, help and labels.
 * Never: a label value that is not from a fixed table (obs.c), so no
 * scrape ever carries a client address, domain or recipient.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../conf/conf.h"
#include "../deliver/qmgr.h"
#include "../dir/dir.h"
#include "../guard/guard.h"
#include "../lib/log.h"
#include "../obs/obs_expo.h"
#include "../obs/obs_http.h"
#include "../obs/obs_status.h"
#include "../queue/queue.h"
#include "../fleet/fleet.h"
#include "../smtp/smtp_session.h"
#include "worker.h"

#ifndef MXGATE_VERSION
#define MXGATE_VERSION "dev"
#endif

/* What one scrape reads besides the loops' counters. */
struct wobs_view {
	struct obs_totals	 t;
	struct guard_stats	 gs;
	struct fleet_stats	 fs;
	uint64_t		 syncs;
	unsigned		 active, deferred;
	uint64_t		 oldest_id;	/* 0: none */
	uint64_t		 now_us;	/* wall clock */
};

void
worker_obs_totals(const struct worker *w, struct obs_totals *t)
{
	unsigned	i;

	for (i = 0; i < w->grp->n; i++)
		obs_totals_add(t, &w->grp->w[i]->obs);
}

static void
wobs_read(struct worker *w, struct wobs_view *v)
{
	uint64_t	waiters, msgs, us;
	struct timespec	ts;

	memset(v, 0, sizeof(*v));
	worker_obs_totals(w, &v->t);
	guard_get_stats(w->guard, &v->gs);
	if (w->fleet != NULL)
		fleet_get_stats(w->fleet, &v->fs);
	queue_sync_stats(w->queue, &v->syncs, &waiters, &msgs, &us);
	v->active = qmgr_active(w->qmgr);
	v->deferred = qmgr_waiting(w->qmgr);
	v->oldest_id = qmgr_oldest_id(w->qmgr);
	clock_gettime(CLOCK_REALTIME, &ts);
	v->now_us = (uint64_t)ts.tv_sec * 1000000u +
	    (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t
wobs_oldest_s(const struct wobs_view *v)
{
	return v->oldest_id != 0 && v->now_us > v->oldest_id ?
	    (v->now_us - v->oldest_id) / 1000000u : 0;
}

/* One family with a single unlabelled sample. */
static int
wobs_one(struct buf *o, const char *name, const char *type,
    const char *help, uint64_t value)
{
	if (obs_expo_family(o, name, type, help) == -1 ||
	    obs_expo_u64(o, name, NULL, 0, value) == -1)
		return -1;
	return 0;
}

static int
wobs_rcpt(struct buf *o, const struct wobs_view *v)
{
	struct obs_label	l[2];
	size_t			i;

	if (obs_expo_family(o, "mxgate_rcpt_total", "counter",
	    "RCPT commands by the answer they got (decision) and why "
	    "(reason); a RCPT the harvest guard delayed counts as tarpit") ==
	    -1)
		return -1;
	for (i = 0; i < OBS_RCPT_MAX; i++) {
		l[0] = (struct obs_label){ "decision", obs_rcpt_decision(i) };
		l[1] = (struct obs_label){ "reason", obs_rcpt_reason(i) };
		if (obs_expo_u64(o, "mxgate_rcpt_total", l, 2, v->t.rcpt[i]) ==
		    -1)
			return -1;
	}
	if (wobs_one(o, "mxgate_rcpt_shadow_total", "counter", "RCPT "
	    "commands a control in shadow mode would have answered otherwise "
	    "(harvest_guard = shadow; the log line says what it would have "
	    "done)", v->t.rcpt_shadow) == -1)
		return -1;
	if (obs_expo_family(o, "mxgate_batv_total", "counter", "BATV "
	    "(batv_domains): bounces taken with a valid tag (pass), without "
	    "one in the grace (grace) or refused (reject), tags removed from "
	    "mail with a sender (strip), senders signed (signed)") == -1)
		return -1;
	for (i = 0; i < OBS_BATV_MAX; i++) {
		l[0] = (struct obs_label){ "result", obs_batv_name(i) };
		if (obs_expo_u64(o, "mxgate_batv_total", l, 1, v->t.batv[i]) ==
		    -1)
			return -1;
	}
	if (obs_expo_family(o, "mxgate_rcpt_decision_seconds", "histogram",
	    "time from a RCPT command read to its answer chosen (directory "
	    "included, the tarpit's wait not)") == -1 ||
	    obs_expo_hist(o, "mxgate_rcpt_decision_seconds", NULL, 0,
	    &v->t.rcpt_seconds, &obs_rcpt_seconds) == -1)
		return -1;
	return 0;
}

static int
wobs_directory(struct buf *o, struct worker *w, const struct wobs_view *v)
{
	struct obs_label	l;
	unsigned		k;

	if (obs_expo_family(o, "mxgate_directory_lookup_seconds",
	    "histogram", "time of one recipient look-up in the directory, by "
	    "back-end") == -1)
		return -1;
	for (k = 0; k < OBS_DIR_KINDS; k++) {
		l = (struct obs_label){ "backend", obs_dir_kind_name(k) };
		if (obs_expo_hist(o, "mxgate_directory_lookup_seconds", &l, 1,
		    &v->t.dir_seconds[k], &obs_dir_seconds) == -1)
			return -1;
	}
	l = (struct obs_label){ "backend",
	    obs_dir_kind_name(w->conf->directory.kind) };
	if (obs_expo_family(o, "mxgate_directory_up", "gauge", "1 when the "
	    "directory can answer look-ups, 0 when every look-up answers "
	    "451 4.3.0") == -1 ||
	    obs_expo_u64(o, "mxgate_directory_up", &l, 1, w->dir != NULL) ==
	    -1)
		return -1;
	return wobs_one(o, "mxgate_directory_entries", "gauge", "addresses "
	    "the directory holds", w->dir ? dir_count(w->dir) : 0);
}

/* Per filter of `milters`, labelled by its address (config, bounded). */
static int
wobs_milter(struct buf *o, struct worker *w, const struct wobs_view *v)
{
	struct obs_label	l[2];
	size_t			i, j, n = w->conf->milters.n;

	if (n > OBS_MILTER_SLOTS)
		n = OBS_MILTER_SLOTS;
	if (obs_expo_family(o, "mxgate_milter_replies_total", "counter",
	    "milter conversations about a message, by filter and how each "
	    "ended (timeout, error: its default action answered)") == -1)
		return -1;
	for (i = 0; i < n; i++)
		for (j = 0; j < OBS_MILTER_MAX; j++) {
			l[0] = (struct obs_label){ "milter",
			    w->conf->milters.m[i].name };
			l[1] = (struct obs_label){ "verdict",
			    obs_milter_name(j) };
			if (obs_expo_u64(o, "mxgate_milter_replies_total", l, 2,
			    v->t.milter[i][j]) == -1)
				return -1;
		}
	if (obs_expo_family(o, "mxgate_milter_seconds", "histogram",
	    "time of one milter conversation about a message, connect to "
	    "its last answer") == -1)
		return -1;
	for (i = 0; i < n; i++) {
		l[0] = (struct obs_label){ "milter", w->conf->milters.m[i].name };
		if (obs_expo_hist(o, "mxgate_milter_seconds", l, 1,
		    &v->t.milter_seconds[i], &obs_milter_seconds) == -1)
			return -1;
	}
	return 0;
}

static int
wobs_sessions(struct buf *o, struct worker *w, const struct wobs_view *v)
{
	struct obs_label	l;
	size_t			i;

	if (wobs_one(o, "mxgate_sessions_active", "gauge", "SMTP sessions "
	    "open now, all loops", worker_sessions_open(w)) == -1 ||
	    obs_expo_family(o, "mxgate_sessions_total", "counter", "SMTP "
	    "connections ended, by how (refused: by the connection limits, "
	    "before a session began)") == -1)
		return -1;
	for (i = 0; i < OBS_SESS_MAX; i++) {
		l = (struct obs_label){ "result", obs_session_name(i) };
		if (obs_expo_u64(o, "mxgate_sessions_total", &l, 1,
		    v->t.sessions[i]) == -1)
			return -1;
	}
	return wobs_one(o, "mxgate_tarpitted_sessions", "gauge", "sessions "
	    "the harvest guard holds in a delay now", v->gs.tarpitted);
}

static int
wobs_harvest(struct buf *o, const struct wobs_view *v)
{
	struct obs_label	l = { "scope", "host" };

	if (obs_expo_family(o, "mxgate_harvest_marked_sources", "gauge",
	    "clients in uniform mode now: hosts (IPv4 /32, IPv6 /64) and "
	    "networks (/24, /48)") == -1 ||
	    obs_expo_u64(o, "mxgate_harvest_marked_sources", &l, 1,
	    v->gs.marked - v->gs.marked_nets) == -1)
		return -1;
	l.value = "net";
	if (obs_expo_u64(o, "mxgate_harvest_marked_sources", &l, 1,
	    v->gs.marked_nets) == -1)
		return -1;
	return wobs_one(o, "mxgate_harvest_hot_domains", "gauge", "domains "
	    "under a distributed harvest now (their unknown recipients are "
	    "answered as under discard)", v->gs.hot_domains);
}

static int
wobs_ndr(struct buf *o, const struct wobs_view *v)
{
	struct obs_label	l[2];
	size_t			i;

	if (obs_expo_family(o, "mxgate_ndr_total", "counter", "delivery "
	    "reports (DSN/NDR): sent (queued) by kind, or suppressed by the "
	    "backscatter guard's reason") == -1)
		return -1;
	for (i = 0; i < OBS_NDR_MAX; i++) {
		l[0] = (struct obs_label){ "action", obs_ndr_action(i) };
		l[1] = (struct obs_label){ "reason", obs_ndr_reason(i) };
		if (obs_expo_u64(o, "mxgate_ndr_total", l, 2, v->t.ndr[i]) ==
		    -1)
			return -1;
	}
	return 0;
}

static int
wobs_queue(struct buf *o, struct worker *w, const struct wobs_view *v)
{
	struct obs_label	l[2] = { { "state", "active" } };
	size_t			h, r;

	if (wobs_one(o, "mxgate_messages_accepted_total", "counter",
	    "messages answered 250 at the end of data and on disk",
	    v->t.messages_accepted) == -1 ||
	    obs_expo_family(o, "mxgate_queue_messages", "gauge", "messages "
	    "in the queue: being delivered (active) or waiting for a retry "
	    "(deferred)") == -1 ||
	    obs_expo_u64(o, "mxgate_queue_messages", l, 1, v->active) == -1)
		return -1;
	l[0].value = "deferred";
	if (obs_expo_u64(o, "mxgate_queue_messages", l, 1, v->deferred) == -1 ||
	    wobs_one(o, "mxgate_queue_oldest_seconds", "gauge", "age of the "
	    "oldest message in the queue (0: empty)", wobs_oldest_s(v)) ==
	    -1 ||
	    obs_expo_family(o, "mxgate_delivery_total", "counter",
	    "delivery attempts per recipient, by the kind of next hop and "
	    "the result") == -1)
		return -1;
	for (h = 0; h < OBS_HOP_MAX; h++)
		for (r = 0; r < OBS_DLV_MAX; r++) {
			l[0] = (struct obs_label){ "hop", obs_hop_name(h) };
			l[1] = (struct obs_label){ "result", obs_dlv_name(r) };
			if (obs_expo_u64(o, "mxgate_delivery_total", l, 2,
			    v->t.delivery[h][r]) == -1)
				return -1;
		}
	if (wobs_one(o, "mxgate_journal_syncs_total", "counter", "fdatasyncs "
	    "of the spool's journal (one covers a group of messages)",
	    v->syncs) == -1 ||
	    obs_expo_family(o, "mxgate_journal_batch_messages", "histogram",
	    "messages one batch of commits made durable with one journal "
	    "sync (group commit)") == -1 ||
	    obs_expo_hist(o, "mxgate_journal_batch_messages", NULL, 0,
	    queue_batch_hist(w->queue), &obs_batch_messages) == -1)
		return -1;
	return 0;
}

/*
 * mxgate_dnsbl_total{site,result}: one sample per zone of the current
 * dnsbl_sites and result; none when it is empty.  The counters are kept
 * by the zone's place in the list, so a reload that reorders the list
 * goes on counting under the new names.
 */
static int
wobs_dnsbl(struct buf *o, struct worker *w, const struct wobs_view *v)
{
	const struct dnsbl_list	*dl = w->conf->dnsbl_sites;
	struct obs_label	 l[2];
	size_t			 zi, r;

	if (obs_expo_family(o, "mxgate_dnsbl_total", "counter", "DNS list "
	    "answers about connecting clients, per list of dnsbl_sites: "
	    "listed, unlisted, timeout (skipped past dnsbl_timeout) or "
	    "error (failure, or a list error code)") == -1)
		return -1;
	for (zi = 0; dl != NULL && zi < dl->nzones; zi++)
		for (r = 0; r < DNSBL_V_MAX; r++) {
			l[0] = (struct obs_label){ "site", dl->zones[zi] };
			l[1] = (struct obs_label){ "result",
			    dnsbl_zverdict_name(r) };
			if (obs_expo_u64(o, "mxgate_dnsbl_total", l, 2,
			    v->t.dnsbl[zi][r]) == -1)
				return -1;
		}
	return 0;
}

/* shared_state (issue 17): up, and what went wrong while not. */
static int
wobs_fleet(struct buf *o, const struct worker *w, const struct wobs_view *v)
{
	const struct fleet_stats *f = &v->fs;

	if (wobs_one(o, "mxgate_shared_state_configured", "gauge", "1 when "
	    "harvest counts and marks are shared with other gateways "
	    "(shared_state)", w->fleet != NULL) == -1)
		return -1;
	if (w->fleet == NULL)
		return 0;
	if (wobs_one(o, "mxgate_shared_state_up", "gauge", "1 while Redis "
	    "answers; 0: deciding on local counts alone", f->up) == -1 ||
	    wobs_one(o, "mxgate_shared_state_down_total", "counter", "times "
	    "Redis became unreachable (shared_state=down)", f->downs) == -1 ||
	    wobs_one(o, "mxgate_shared_state_timeouts_total", "counter",
	    "Redis replies later than shared_state_timeout (ignored)",
	    f->timeouts) == -1 ||
	    wobs_one(o, "mxgate_shared_state_errors_total", "counter", "Redis "
	    "error or malformed replies", f->errors) == -1 ||
	    wobs_one(o, "mxgate_shared_state_dropped_total", "counter",
	    "increments not shared (Redis down, queue full)", f->dropped) ==
	    -1 ||
	    wobs_one(o, "mxgate_shared_state_held_marks_pushed_total",
	    "counter", "marks made while Redis was down, pushed once it was "
	    "back", f->pushed_held) == -1)
		return -1;
	return 0;
}

static int
wobs_metrics(void *arg, struct buf *o)
{
	struct worker		*w = arg;
	struct wobs_view	 v;
	struct obs_label	 l = { "version", MXGATE_VERSION };

	wobs_read(w, &v);
	if (obs_expo_family(o, "mxgate_build_info", "gauge", "always 1; the "
	    "version built") == -1 ||
	    obs_expo_u64(o, "mxgate_build_info", &l, 1, 1) == -1 ||
	    wobs_one(o, "mxgate_start_time_seconds", "gauge", "when the "
	    "gateway started, unix time", (uint64_t)w->obs_start_wall) == -1 ||
	    wobs_one(o, "mxgate_event_loops", "gauge", "event loops serving "
	    "SMTP sessions", w->grp->n) == -1 ||
	    wobs_rcpt(o, &v) == -1 || wobs_directory(o, w, &v) == -1 ||
	    wobs_milter(o, w, &v) == -1 ||
	    wobs_sessions(o, w, &v) == -1 || wobs_harvest(o, &v) == -1 ||
	    wobs_ndr(o, &v) == -1 || wobs_queue(o, w, &v) == -1 ||
	    wobs_dnsbl(o, w, &v) == -1 ||
	    wobs_fleet(o, w, &v) == -1)
		return -1;
	return 0;
}

static int
wobs_status(void *arg, struct buf *o)
{
	struct worker		*w = arg;
	struct obs_status_view	*sv;
	struct wobs_view	 v;
	uint64_t		 first, now = smtp_now_ms();
	int			 rc;

	/* the view is about 8 KB of rows: off the stack */
	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return -1;
	wobs_read(w, &v);
	sv->hostname = w->conf->hostname;
	sv->version = MXGATE_VERSION;
	sv->uptime_s = (now - w->obs_start_ms) / 1000;
	sv->workers = w->grp->n;
	sv->sessions_open = worker_sessions_open(w);
	sv->sessions_started = v.t.sessions_started;
	sv->tarpitted = v.gs.tarpitted;
	sv->messages_accepted = v.t.messages_accepted;
	sv->marked_hosts = v.gs.marked - v.gs.marked_nets;
	sv->marked_nets = v.gs.marked_nets;
	sv->hot_domains = v.gs.hot_domains;
	sv->queue_active = v.active;
	sv->queue_deferred = v.deferred;
	sv->queue_has_oldest = v.oldest_id != 0;
	sv->queue_oldest_s = wobs_oldest_s(&v);
	sv->dir_backend = obs_dir_kind_name(w->conf->directory.kind);
	sv->dir_up = w->dir != NULL;
	sv->dir_entries = w->dir ? dir_count(w->dir) : 0;
	memcpy(sv->rcpt_total, v.t.rcpt, sizeof(sv->rcpt_total));
	sv->nrows = obs_ring_minutes(&w->obs_ring, v.t.rcpt, now, sv->rows,
	    &first);
	rc = obs_status_page(o, sv);
	free(sv);
	return rc;
}

int
worker_obs_open(struct worker *w, char *err, size_t errlen)
{
	struct obs_http_routes	r = { wobs_metrics, wobs_status, w };

	w->obs_start_ms = smtp_now_ms();
	w->obs_start_wall = (int64_t)time(NULL);
	if (w->conf->metrics_listen.n == 0)
		return 0;
	if ((w->obs_http = obs_http_open(w->base, &w->conf->metrics_listen, &r,
	    err, errlen)) == NULL)
		return -1;
	worker_obs_tick(w, w->obs_start_ms);
	return 0;
}

void
worker_obs_tick(struct worker *w, uint64_t now_ms)
{
	struct obs_totals	t;

	if (w->obs_http == NULL || now_ms / 60000 + 1 ==
	    w->obs_ring.last_minute)
		return;
	memset(&t, 0, sizeof(t));
	worker_obs_totals(w, &t);
	(void)obs_ring_tick(&w->obs_ring, now_ms, t.rcpt);
}

void
worker_obs_close(struct worker *w)
{
	obs_http_close(w->obs_http);
	w->obs_http = NULL;
}
