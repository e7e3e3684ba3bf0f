/*
 * obs.c - the label tables, fixed buckets, sums and the minute ring of
 * obs.h.  Owns: every label value the metrics may carry.
 * Never: locks, allocates, or reads anything a peer chose.
 */
#include <string.h>

#include "obs.h"

/* RCPT decision time: from the command read to the answer chosen. */
static const uint64_t obs_rcpt_le[] = {
	50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 5000000, 10000000,
};
/* One directory look-up (the file back-end answers in microseconds;
 * a network back-end in milliseconds to seconds). */
static const uint64_t obs_dir_le[] = {
	1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000, 100000, 500000,
	1000000, 5000000,
};
/* Messages one journal sync made durable (group commit). */
static const uint64_t obs_batch_le[] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
};

/* One milter conversation, connect to its last answer (us). */
static const uint64_t obs_milter_le[] = {
	1000, 5000, 10000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000,
};

#define N(a)	(sizeof(a) / sizeof((a)[0]))
_Static_assert(N(obs_milter_le) <= OBS_HIST_BOUNDS_MAX, "obs_milter_le");
_Static_assert(N(obs_rcpt_le) <= OBS_HIST_BOUNDS_MAX, "obs_rcpt_le");
_Static_assert(N(obs_dir_le) <= OBS_HIST_BOUNDS_MAX, "obs_dir_le");
_Static_assert(N(obs_batch_le) <= OBS_HIST_BOUNDS_MAX, "obs_batch_le");

const struct obs_hist_spec obs_rcpt_seconds = {
	obs_rcpt_le, N(obs_rcpt_le), 1e-6 };
const struct obs_hist_spec obs_dir_seconds = {
	obs_dir_le, N(obs_dir_le), 1e-6 };
const struct obs_hist_spec obs_milter_seconds = {
	obs_milter_le, N(obs_milter_le), 1e-6 };
const struct obs_hist_spec obs_batch_messages = {
	obs_batch_le, N(obs_batch_le), 1 };

static const struct {
	const char	*decision, *reason;
} obs_rcpt_names[OBS_RCPT_MAX] = {
	[OBS_RCPT_ACCEPT_VALID] = { "accept", "valid" },
	[OBS_RCPT_ACCEPT_RELAY] = { "accept", "relay_allowed" },
	[OBS_RCPT_REJECT_UNKNOWN] = { "reject", "unknown" },
	[OBS_RCPT_REJECT_RELAY] = { "reject", "relay" },
	[OBS_RCPT_REJECT_SYNTAX] = { "reject", "syntax" },
	[OBS_RCPT_REJECT_NULL_SENDER] = { "reject", "null_sender" },
	[OBS_RCPT_TEMPFAIL_DIRECTORY] = { "tempfail", "directory" },
	[OBS_RCPT_TEMPFAIL_LIMIT] = { "tempfail", "recipient_limit" },
	[OBS_RCPT_TEMPFAIL_NULL_SENDER] = { "tempfail", "null_sender_rate" },
	[OBS_RCPT_TEMPFAIL_HARVEST] = { "tempfail", "harvest" },
	[OBS_RCPT_DISCARD_UNKNOWN] = { "discard", "unknown" },
	[OBS_RCPT_DISCARD_HARVEST] = { "discard", "harvest" },
	[OBS_RCPT_BOUNCE_UNKNOWN] = { "bounce", "unknown" },
	[OBS_RCPT_UNIFORM_HARVEST] = { "uniform", "harvest" },
	[OBS_RCPT_TARPIT_HARVEST] = { "tarpit", "harvest" },
	[OBS_RCPT_REJECT_BATV] = { "reject", "batv" },
	[OBS_RCPT_REJECT_MILTER] = { "reject", "milter" },
	[OBS_RCPT_TEMPFAIL_MILTER] = { "tempfail", "milter" },
};

static const char *const obs_session_names[OBS_SESS_MAX] = {
	[OBS_SESS_QUIT] = "quit",
	[OBS_SESS_DISCONNECTED] = "disconnected",
	[OBS_SESS_TIMEOUT] = "timeout",
	[OBS_SESS_ERRORS] = "too_many_errors",
	[OBS_SESS_HARVEST] = "harvest_cutoff",
	[OBS_SESS_COMMANDS] = "too_many_commands",
	[OBS_SESS_EARLY_TALKER] = "early_talker",
	[OBS_SESS_SHUTDOWN] = "shutdown",
	[OBS_SESS_REFUSED] = "refused",
	[OBS_SESS_DNSBL] = "dnsbl",
};

/* token: the backscatter guard's reason (backscatter.h), or NULL. */
static const struct {
	const char	*action, *reason, *token;
} obs_ndr_names[OBS_NDR_MAX] = {
	[OBS_NDR_SENT_FAILURE] = { "sent", "failure", NULL },
	[OBS_NDR_SENT_DELAY] = { "sent", "delay", NULL },
	[OBS_NDR_SENT_SUCCESS] = { "sent", "success", NULL },
	[OBS_NDR_SUP_NULL_SENDER] = { "suppressed", "null_sender",
	    "null_sender" },
	[OBS_NDR_SUP_DSN_LOOP] = { "suppressed", "dsn_loop", "dsn_loop" },
	[OBS_NDR_SUP_FORGED_LOCAL] = { "suppressed", "forged_local_sender",
	    "forged_local_sender" },
	[OBS_NDR_SUP_BAD_SENDER] = { "suppressed", "bad_sender",
	    "bad_sender" },
	[OBS_NDR_SUP_RATE_SENDER] = { "suppressed", "rate_sender",
	    "rate_sender" },
	[OBS_NDR_SUP_RATE_DOMAIN] = { "suppressed", "rate_domain",
	    "rate_domain" },
	[OBS_NDR_SUP_NOTIFY] = { "suppressed", "notify", "notify" },
	[OBS_NDR_SUP_UNAUTH] = { "suppressed", "unauthenticated_sender",
	    "unauthenticated_sender" },
	[OBS_NDR_SUP_OTHER] = { "suppressed", "other", NULL },
	[OBS_NDR_SUP_LOCAL_ERROR] = { "suppressed", "local_error",
	    "local_error" },
};

static const char *const obs_hop_names[OBS_HOP_MAX] = {
	[OBS_HOP_SMTP] = "smtp", [OBS_HOP_LMTP] = "lmtp",
	[OBS_HOP_MAILDIR] = "maildir",
};

static const char *const obs_dlv_names[OBS_DLV_MAX] = {
	[OBS_DLV_DELIVERED] = "delivered", [OBS_DLV_DEFERRED] = "deferred",
	[OBS_DLV_FAILED] = "failed",
};

static const char *const obs_dir_kind_names[OBS_DIR_KINDS] = {
	[DIR_KIND_FILE] = "file",
	[DIR_KIND_HASHED] = "hashed",
	[DIR_KIND_LDAP] = "ldap",
};

static const char *const obs_milter_names[OBS_MILTER_MAX] = {
	"continue", "accept", "reject", "tempfail", "discard", "replycode",
	"timeout", "error",
};

const char *
obs_milter_name(enum obs_milter v)
{
	return (unsigned)v < OBS_MILTER_MAX ? obs_milter_names[v] : "error";
}

const char *
obs_rcpt_decision(enum obs_rcpt r)
{
	return obs_rcpt_names[r].decision;
}

const char *
obs_rcpt_reason(enum obs_rcpt r)
{
	return obs_rcpt_names[r].reason;
}

const char *
obs_session_name(enum obs_session r)
{
	return obs_session_names[r];
}

const char *
obs_ndr_action(enum obs_ndr r)
{
	return obs_ndr_names[r].action;
}

const char *
obs_ndr_reason(enum obs_ndr r)
{
	return obs_ndr_names[r].reason;
}

const char *
obs_hop_name(enum obs_hop h)
{
	return obs_hop_names[h];
}

const char *
obs_dlv_name(enum obs_dlv d)
{
	return obs_dlv_names[d];
}

static const char *const obs_batv_names[OBS_BATV_MAX] = {
	[OBS_BATV_PASS] = "pass", [OBS_BATV_GRACE] = "grace",
	[OBS_BATV_REJECT] = "reject", [OBS_BATV_STRIP] = "strip",
	[OBS_BATV_SIGNED] = "signed",
};

const char *
obs_batv_name(enum obs_batv b)
{
	return obs_batv_names[b];
}

const char *
obs_dir_kind_name(unsigned kind)
{
	return kind < OBS_DIR_KINDS ? obs_dir_kind_names[kind] : "unknown";
}

void
obs_ndr_note(struct obs_loop *o, bool sent, const char *action,
    const char *reason)
{
	enum obs_ndr	r = OBS_NDR_SUP_OTHER;
	size_t		i;

	if (o == NULL)
		return;
	if (sent)
		r = action != NULL && strcmp(action, "delayed") == 0 ?
		    OBS_NDR_SENT_DELAY : action != NULL &&
		    (strcmp(action, "delivered") == 0 ||
		    strcmp(action, "relayed") == 0) ? OBS_NDR_SENT_SUCCESS :
		    OBS_NDR_SENT_FAILURE;
	else
		for (i = 0; reason != NULL && i < OBS_NDR_MAX; i++)
			if (obs_ndr_names[i].token != NULL &&
			    strcmp(obs_ndr_names[i].token, reason) == 0) {
				r = (enum obs_ndr)i;
				break;
			}
	obs_add(&o->ndr[r], 1);
}

void
obs_hist_note(struct obs_hist *h, const struct obs_hist_spec *sp,
    uint64_t v)
{
	size_t	i;

	for (i = 0; i < sp->nle && v > sp->le[i]; i++)
		;
	obs_add(&h->n[i], 1);
	obs_add(&h->sum, v);
}

void
obs_hist_sum(struct obs_hist *dst, const struct obs_hist *src)
{
	size_t	i;

	for (i = 0; i <= OBS_HIST_BOUNDS_MAX; i++)
		obs_add(&dst->n[i], obs_get(&src->n[i]));
	obs_add(&dst->sum, obs_get(&src->sum));
}

void
obs_totals_add(struct obs_totals *t, const struct obs_loop *l)
{
	size_t	i, j;

	for (i = 0; i < OBS_RCPT_MAX; i++)
		t->rcpt[i] += obs_get(&l->rcpt[i]);
	for (i = 0; i < OBS_SESS_MAX; i++)
		t->sessions[i] += obs_get(&l->sessions[i]);
	t->sessions_started += obs_get(&l->sessions_started);
	t->messages_accepted += obs_get(&l->messages_accepted);
	t->rcpt_shadow += obs_get(&l->rcpt_shadow);
	for (i = 0; i < OBS_BATV_MAX; i++)
		t->batv[i] += obs_get(&l->batv[i]);
	for (i = 0; i < OBS_NDR_MAX; i++)
		t->ndr[i] += obs_get(&l->ndr[i]);
	for (i = 0; i < OBS_HOP_MAX; i++)
		for (j = 0; j < OBS_DLV_MAX; j++)
			t->delivery[i][j] += obs_get(&l->delivery[i][j]);
	obs_hist_sum(&t->rcpt_seconds, &l->rcpt_seconds);
	for (i = 0; i < OBS_DIR_KINDS; i++)
		obs_hist_sum(&t->dir_seconds[i], &l->dir_seconds[i]);
	for (i = 0; i < OBS_DNSBL_ZONES; i++)
		for (j = 0; j < OBS_DNSBL_RESULTS; j++)
			t->dnsbl[i][j] += obs_get(&l->dnsbl[i][j]);
	for (i = 0; i < OBS_MILTER_SLOTS; i++) {
		for (j = 0; j < OBS_MILTER_MAX; j++)
			t->milter[i][j] += obs_get(&l->milter[i][j]);
		obs_hist_sum(&t->milter_seconds[i], &l->milter_seconds[i]);
	}
}

bool
obs_ring_tick(struct obs_ring *r, uint64_t now_ms,
    const uint64_t rcpt[OBS_RCPT_MAX])
{
	uint64_t	minute = now_ms / 60000 + 1;	/* never 0 */

	if (minute == r->last_minute)
		return false;
	r->at[r->next] = minute;
	memcpy(r->v[r->next], rcpt, sizeof(r->v[0]));
	r->next = (r->next + 1) % (OBS_RING_MINUTES + 1);
	if (r->n < OBS_RING_MINUTES + 1)
		r->n++;
	r->last_minute = minute;
	return true;
}

/* Row of minute m in a window that ends at minute cur, or -1. */
static long
obs_ring_row(uint64_t m, uint64_t cur, size_t rows)
{
	if (m > cur || cur - m >= rows)
		return -1;
	return (long)(rows - 1 - (cur - m));
}

size_t
obs_ring_minutes(const struct obs_ring *r, const uint64_t now[OBS_RCPT_MAX],
    uint64_t now_ms, uint64_t out[OBS_RING_MINUTES][OBS_RCPT_MAX],
    uint64_t *first_minute)
{
	uint64_t	 cur = now_ms / 60000 + 1, oldest;
	const uint64_t	*a, *b;
	size_t		 rows, k, i, ia, ib;
	long		 row;

	*first_minute = cur;
	if (r->n == 0)
		return 0;
	ia = (r->next + OBS_RING_MINUTES + 1 - r->n) % (OBS_RING_MINUTES + 1);
	oldest = r->at[ia];
	rows = cur >= oldest && cur - oldest < OBS_RING_MINUTES ?
	    (size_t)(cur - oldest + 1) : OBS_RING_MINUTES;
	*first_minute = cur - rows + 1;
	memset(out, 0, sizeof(out[0]) * rows);
	/* each snapshot with the next one (the last with now): the RCPTs
	 * counted in the minute the earlier one began */
	for (k = 0; k < r->n; k++) {
		ia = (r->next + OBS_RING_MINUTES + 1 - r->n + k) %
		    (OBS_RING_MINUTES + 1);
		ib = (ia + 1) % (OBS_RING_MINUTES + 1);
		a = r->v[ia];
		b = k + 1 < r->n ? r->v[ib] : now;
		if ((row = obs_ring_row(r->at[ia], cur, rows)) < 0)
			continue;
		for (i = 0; i < OBS_RCPT_MAX; i++)
			out[row][i] += b[i] >= a[i] ? b[i] - a[i] : 0;
	}
	return rows;
}
