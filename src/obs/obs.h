/*
 * obs.h - the gateway's counters and histograms (issue 18, DESIGN 10).
 * Owns: struct obs_loop, one per event loop, written only by that loop's
 * thread with a relaxed load and a relaxed store (no atomic read-modify-
 * write, no lock, no shared cache line on the hot path); the fixed label
 * sets (enums with their names), the fixed histogram buckets, the sums a
 * scrape takes, and the per-minute ring the status page draws.
 * Never: labels from the peer (client address, domain, recipient): every
 * label value is a name from a table here, so a series count is fixed.
 * Consistency: each value is read whole (relaxed atomic loads: never
 * torn), and each series only grows, so a sum over loops only grows too.
 * A scrape is not an instant across series: a RCPT counted while it runs
 * may be in one family and not yet in another; a histogram's _count is
 * the sum of the buckets as read, so _count and le="+Inf" always agree,
 * while _sum may lag them by an observation in flight.
 */
#ifndef MXGATE_OBS_H
#define MXGATE_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../conf/conf.h"

typedef _Atomic uint64_t obs_ctr;

/* One writer: a relaxed load and store, a plain add in machine code. */
static inline void
obs_add(obs_ctr *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) +
	    n, memory_order_relaxed);
}

static inline uint64_t
obs_get(const obs_ctr *c)
{
	return atomic_load_explicit((obs_ctr *)c, memory_order_relaxed);
}

/*
 * mxgate_rcpt_total{decision,reason}: each RCPT counts once, under the
 * answer it got.  A RCPT whose answer the harvest guard delayed counts as
 * tarpit (its answer is in the log); one in uniform mode as uniform.
 */
enum obs_rcpt {
	OBS_RCPT_ACCEPT_VALID,		/* ours, in the directory */
	OBS_RCPT_ACCEPT_RELAY,		/* not ours; the client may relay */
	OBS_RCPT_REJECT_UNKNOWN,	/* 550 5.1.1 */
	OBS_RCPT_REJECT_RELAY,		/* 554 5.7.1 relay access denied */
	OBS_RCPT_REJECT_SYNTAX,		/* 501, 553, 555: the argument */
	OBS_RCPT_REJECT_NULL_SENDER,	/* a bounce to several recipients */
	OBS_RCPT_TEMPFAIL_DIRECTORY,	/* 451 4.3.0: no answer */
	OBS_RCPT_TEMPFAIL_LIMIT,	/* 452 4.5.3: max_recipients */
	OBS_RCPT_TEMPFAIL_NULL_SENDER,	/* 450 4.7.1: null_sender_rate */
	OBS_RCPT_TEMPFAIL_HARVEST,	/* 421 4.7.0: the guard's cut-off */
	OBS_RCPT_DISCARD_UNKNOWN,	/* unknown_recipient = discard */
	OBS_RCPT_DISCARD_HARVEST,	/* reject turned discard: the domain
					 * is under a distributed harvest */
	OBS_RCPT_BOUNCE_UNKNOWN,	/* unknown_recipient = bounce */
	OBS_RCPT_UNIFORM_HARVEST,	/* a marked client: the one reply */
	OBS_RCPT_TARPIT_HARVEST,	/* answered after the guard's delay */
	OBS_RCPT_REJECT_BATV,		/* 553 5.7.1: a bounce, no valid tag */
	OBS_RCPT_REJECT_MILTER,		/* a milter refused it (5xx) */
	OBS_RCPT_TEMPFAIL_MILTER,	/* a milter (or its failure): 4xx */
	OBS_RCPT_MAX
};

/* mxgate_sessions_total{result}: how each SMTP connection ended. */
/* BATV decisions (issue 14, part 5): mxgate_batv_total{result} */
enum obs_batv {
	OBS_BATV_PASS,		/* a bounce with a valid tag: taken */
	OBS_BATV_GRACE,		/* a bounce without one, in the grace */
	OBS_BATV_REJECT,	/* a bounce without one: 553 5.7.1 */
	OBS_BATV_STRIP,		/* mail with a sender to a tagged address */
	OBS_BATV_SIGNED,	/* an envelope sender signed on the way out */
	OBS_BATV_MAX
};

enum obs_session {
	OBS_SESS_QUIT,			/* 221 after QUIT */
	OBS_SESS_DISCONNECTED,		/* the client went without QUIT */
	OBS_SESS_TIMEOUT,		/* 421 4.4.2 */
	OBS_SESS_ERRORS,		/* 421: max_errors_per_session */
	OBS_SESS_HARVEST,		/* 421: the guard's cut-off */
	OBS_SESS_COMMANDS,		/* 421: too many commands */
	OBS_SESS_EARLY_TALKER,		/* talked before the greeting */
	OBS_SESS_SHUTDOWN,		/* 421 4.3.2: the gateway stopped */
	OBS_SESS_REFUSED,		/* at connect: connection limits */
	OBS_SESS_DNSBL,			/* 554 5.7.1: listed (dnsbl_sites) */
	OBS_SESS_MAX
};

/* mxgate_ndr_total{action,reason}: reports (DSN/NDR) made or not. */
enum obs_ndr {
	OBS_NDR_SENT_FAILURE,		/* a failure report was queued */
	OBS_NDR_SENT_DELAY,		/* a delay warning */
	OBS_NDR_SENT_SUCCESS,		/* NOTIFY=SUCCESS */
	OBS_NDR_SUP_NULL_SENDER,	/* backscatter guard: <> */
	OBS_NDR_SUP_DSN_LOOP,		/* about a report */
	OBS_NDR_SUP_FORGED_LOCAL,	/* our domain, untrusted client */
	OBS_NDR_SUP_BAD_SENDER,
	OBS_NDR_SUP_RATE_SENDER,	/* ndr_rate_per_sender */
	OBS_NDR_SUP_RATE_DOMAIN,	/* ndr_rate_per_domain */
	OBS_NDR_SUP_NOTIFY,		/* the recipient's NOTIFY said no */
	OBS_NDR_SUP_UNAUTH,		/* no proof the sender is real */
	OBS_NDR_SUP_OTHER,		/* another guard reason */
	OBS_NDR_SUP_LOCAL_ERROR,	/* could not build or queue it */
	OBS_NDR_MAX
};

/* mxgate_delivery_total{hop,result}, per recipient and attempt. */
enum obs_hop { OBS_HOP_SMTP, OBS_HOP_LMTP, OBS_HOP_MAILDIR, OBS_HOP_MAX };
enum obs_dlv {
	OBS_DLV_DELIVERED, OBS_DLV_DEFERRED, OBS_DLV_FAILED, OBS_DLV_MAX
};

/*
 * A histogram with fixed buckets: counts per bucket (not cumulative; the
 * last one is +Inf) and the sum, in the spec's unit (microseconds, or
 * messages).  One writer, or writers serialised by a lock of theirs.
 */
#define OBS_HIST_BOUNDS_MAX	16
struct obs_hist {
	obs_ctr		 n[OBS_HIST_BOUNDS_MAX + 1];
	obs_ctr		 sum;
};

struct obs_hist_spec {
	const uint64_t	*le;		/* upper bounds, increasing */
	size_t		 nle;		/* <= OBS_HIST_BOUNDS_MAX */
	double		 scale;		/* exported value = unit * scale */
};

extern const struct obs_hist_spec obs_rcpt_seconds;	/* us */
extern const struct obs_hist_spec obs_dir_seconds;	/* us */
extern const struct obs_hist_spec obs_batch_messages;	/* messages */

void	obs_hist_note(struct obs_hist *, const struct obs_hist_spec *,
	    uint64_t v);
/* dst += src, bucket by bucket (a scrape's sum over loops). */
void	obs_hist_sum(struct obs_hist *dst, const struct obs_hist *src);

#define OBS_DIR_KINDS	(DIR_KIND_LAST + 1)	/* one histogram each */

/* mxgate_dnsbl_total{site,result}: per zone of dnsbl_sites (by its
 * place in the list; the label is its name in the current config) and
 * per check: listed, unlisted, timeout, error (sender/dnsbl.h). */
#define OBS_DNSBL_ZONES		16
#define OBS_DNSBL_RESULTS	4
/* mxgate_milter_replies_total{milter,verdict} (issue 16): per filter of
 * `milters` (its place in the chain; the label is its configured
 * address), how its conversation about a message ended; timeout and
 * error are failures, answered by its default action. */
#define OBS_MILTER_SLOTS	16	/* conf_milter.c's CM_MAX */
enum obs_milter {
	OBS_MILTER_CONTINUE, OBS_MILTER_ACCEPT, OBS_MILTER_REJECT,
	OBS_MILTER_TEMPFAIL, OBS_MILTER_DISCARD, OBS_MILTER_REPLYCODE,
	OBS_MILTER_TIMEOUT, OBS_MILTER_ERROR, OBS_MILTER_MAX
};
extern const struct obs_hist_spec obs_milter_seconds;	/* us */
const char *obs_milter_name(enum obs_milter);

/* What one event loop counts.  Zeroed with its worker. */
struct obs_loop {
	obs_ctr		 rcpt[OBS_RCPT_MAX];
	obs_ctr		 rcpt_shadow;	/* a shadow control would differ */
	obs_ctr		 batv[OBS_BATV_MAX];
	obs_ctr		 sessions[OBS_SESS_MAX];	/* ended */
	obs_ctr		 sessions_started;
	obs_ctr		 messages_accepted;	/* 250 queued: on disk */
	obs_ctr		 ndr[OBS_NDR_MAX];
	obs_ctr		 delivery[OBS_HOP_MAX][OBS_DLV_MAX];
	struct obs_hist	 rcpt_seconds;
	struct obs_hist	 dir_seconds[OBS_DIR_KINDS];
	obs_ctr		 dnsbl[OBS_DNSBL_ZONES][OBS_DNSBL_RESULTS];
	obs_ctr		 milter[OBS_MILTER_SLOTS][OBS_MILTER_MAX];
	struct obs_hist	 milter_seconds[OBS_MILTER_SLOTS];
};

/* A scrape's view: every loop added up (plain numbers). */
struct obs_totals {
	uint64_t	 rcpt[OBS_RCPT_MAX];
	uint64_t	 rcpt_shadow;
	uint64_t	 batv[OBS_BATV_MAX];
	uint64_t	 sessions[OBS_SESS_MAX];
	uint64_t	 sessions_started;
	uint64_t	 messages_accepted;
	uint64_t	 ndr[OBS_NDR_MAX];
	uint64_t	 delivery[OBS_HOP_MAX][OBS_DLV_MAX];
	struct obs_hist	 rcpt_seconds;
	struct obs_hist	 dir_seconds[OBS_DIR_KINDS];
	uint64_t	 dnsbl[OBS_DNSBL_ZONES][OBS_DNSBL_RESULTS];
	uint64_t	 milter[OBS_MILTER_SLOTS][OBS_MILTER_MAX];
	struct obs_hist	 milter_seconds[OBS_MILTER_SLOTS];
};

/* totals += what loop l holds now (relaxed loads; any thread). */
void	obs_totals_add(struct obs_totals *, const struct obs_loop *);

/* The counting calls of the hot path. */
static inline void
obs_rcpt(struct obs_loop *o, enum obs_rcpt r)
{
	obs_add(&o->rcpt[r], 1);
}

static inline void
obs_batv(struct obs_loop *o, enum obs_batv r)
{
	obs_add(&o->batv[r], 1);
}

static inline void
obs_session_end(struct obs_loop *o, enum obs_session r)
{
	obs_add(&o->sessions[r], 1);
}

/* A report's fate; reason: the backscatter guard's token (any other
 * token counts as "other"), or NULL when it was sent. */
void	obs_ndr_note(struct obs_loop *, bool sent, const char *action,
	    const char *reason);

/* Label names and values, for the exposition (fixed strings). */
const char *obs_rcpt_decision(enum obs_rcpt);
const char *obs_rcpt_reason(enum obs_rcpt);
const char *obs_session_name(enum obs_session);
const char *obs_ndr_action(enum obs_ndr);
const char *obs_ndr_reason(enum obs_ndr);
const char *obs_hop_name(enum obs_hop);
const char *obs_dlv_name(enum obs_dlv);
const char *obs_batv_name(enum obs_batv);
const char *obs_dir_kind_name(unsigned kind);

/*
 * The status page's last hour: the RCPT counters summed at each minute,
 * OBS_RING_MINUTES + 1 of them, so that the newest OBS_RING_MINUTES
 * minutes each have a before and an after.  One writer (the loop that
 * ticks), read on the same loop.
 */
#define OBS_RING_MINUTES	60
struct obs_ring {
	uint64_t	 at[OBS_RING_MINUTES + 1];	/* minute number */
	uint64_t	 v[OBS_RING_MINUTES + 1][OBS_RCPT_MAX];
	size_t		 next;		/* slot for the next snapshot */
	size_t		 n;		/* snapshots held */
	uint64_t	 last_minute;	/* of the last snapshot; 0: none */
};

/* A snapshot when the minute (now_ms / 60000) changed; true if one was
 * taken. */
bool	obs_ring_tick(struct obs_ring *, uint64_t now_ms,
	    const uint64_t rcpt[OBS_RCPT_MAX]);
/*
 * Per minute, oldest first, at most OBS_RING_MINUTES rows: the RCPTs of
 * each kind between one snapshot and the next, the last row being the
 * minute in progress (now: the counters as they are).  Returns the rows
 * written; *first_minute is the minute number of row 0.
 */
size_t	obs_ring_minutes(const struct obs_ring *,
	    const uint64_t now[OBS_RCPT_MAX], uint64_t now_ms,
	    uint64_t out[OBS_RING_MINUTES][OBS_RCPT_MAX],
	    uint64_t *first_minute);

#endif
