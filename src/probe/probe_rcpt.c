/*
 * probe_rcpt.c - how the server answers recipients: `unknown-recipient`
 * (reject / accept / tempfail / uniform after N), `timing-oracle` (the
 * two-sample Kolmogorov-Smirnov test of RCPT reply times, known vs
 * invented) and `harvest` (names per connection and per minute, tarpit,
 * cut-off, uniform answers), bounded by --max-rcpt.
 * Owns: the RCPT budget of these three.
 * Never: DATA (probe_ndr.c does the one intrusive message).
 * Untrusted: replies and their timing.  RFC 5321 3.3, 4.2.2.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "probe.h"

#define UNKNOWN_NAMES		3	/* invented names for the verdict */
#define TIMING_N		15	/* samples of each kind, at most */
#define TIMING_BUDGET_MS	40000	/* for the timing samples */
#define HARVEST_BUDGET_MS	45000	/* for the harvest run */
#define HARVEST_CONNS_MAX	20
#define HARVEST_KNOWN_EVERY	10	/* a known name among invented ones */
#define HARVEST_SLOW_PER_S	1.0	/* tarpitted below this: throttled */
#define HARVEST_TARPIT_MS	150	/* slower than this and 5x the first */

static const char *const fix_unknown[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_reject_unlisted_recipient = yes and "
	    "a complete relay_recipient_maps / local_recipient_maps",
	[PROBE_MTA_EXIM] = "acl_smtp_rcpt: require verify = recipient",
	[PROBE_MTA_SENDMAIL] = "FEATURE(`virtusertable') with error:nouser "
	    "for unknown names; no catch-all @domain entry",
	[PROBE_MTA_OPENSMTPD] = "action \"local\" with a virtual <table> "
	    "of real names; no catch-all",
	[PROBE_MTA_EXCHANGE] = "Set-TransportConfig -RecipientValidation"
	    "Enabled $true (Edge: Recipient Filtering)",
	[PROBE_MTA_MXGATE] = "unknown_recipient = reject (the default) per "
	    "domain, with the harvest guard on (harvest_guard = enforce)",
};

static const char *const fix_harvest[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_soft_error_limit = 3, "
	    "smtpd_error_sleep_time = 5s, smtpd_hard_error_limit = 10, "
	    "smtpd_recipient_limit; anvil: smtpd_client_recipient_rate_limit",
	[PROBE_MTA_EXIM] = "a ratelimit ACL on unknown recipients and "
	    "smtp_accept_max_per_host; delay = 5s in the RCPT ACL after "
	    "failures",
	[PROBE_MTA_SENDMAIL] = "define(`confBAD_RCPT_THROTTLE', `3')dnl",
	[PROBE_MTA_OPENSMTPD] = "filter: a rate limit on failed RCPTs "
	    "(smtpd has none built in)",
	[PROBE_MTA_EXCHANGE] = "Set-ReceiveConnector -TarpitInterval "
	    "00:00:05 and Recipient Filtering with directory lookup",
	[PROBE_MTA_MXGATE] = "harvest_guard = enforce, "
	    "harvest_tarpit_after = 3, harvest_session_limit = 10, "
	    "harvest_threshold = 25",
};

static const char *const fix_timing[PROBE_MTA_N] = {
	[PROBE_MTA_MXGATE] = "rcpt_reply_floor (every RCPT answered no "
	    "sooner than the floor) and a directory back-end in memory",
};

struct rcpt_sess {
	struct probe_conn	c;
	bool			in_tx;
};

static int
rcpt_tx(struct probe_run *run, struct rcpt_sess *s, struct buf *tr)
{
	if (s->c.dead) {
		probe_conn_close(&s->c);
		s->in_tx = false;
		if (probe_conn_open(&s->c, run, tr) == -1 ||
		    probe_conn_ehlo(&s->c) == -1)
			return -1;
	}
	s->c.tr = tr;
	if (s->in_tx)
		return 0;
	if (probe_cmd(&s->c, "MAIL FROM:<probe@example.net>") == -1 ||
	    s->c.r.code / 100 != 2)
		return -1;
	s->in_tx = true;
	return 0;
}

/* One RCPT; the reply in s->c.r; -1 when no answer. */
static int
rcpt_one(struct probe_run *run, struct rcpt_sess *s, const char *to)
{
	run->nrcpts++;
	if (probe_cmd(&s->c, "RCPT TO:<%s>", to) == -1)
		return -1;
	if (s->c.r.code == 452) {	/* too many recipients: a new one */
		(void)probe_cmd(&s->c, "RSET");
		s->in_tx = false;
	}
	return 0;
}

static void
rcpt_leak_tables(struct probe_run *run, const char *text)
{
	struct probe_finding	*f = probe_finding_find(run, "banner-leak");
	static const char	*const words[] = { "table", "map", "lookup",
				    "ldap", "mysql", "pgsql", "hash:" };
	size_t			 i;

	if (f == NULL)
		return;
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasestr(text, words[i]) == NULL)
			continue;
		probe_fact(f, "rejection text names a table or map: %.200s",
		    text);
		if (f->verdict != PROBE_FAIL)
			probe_finding_set(f, PROBE_FAIL, PROBE_SEV_LOW, "a "
			    "rejection names the table it looked in");
		return;
	}
}

static void
rcpt_unknown(struct probe_run *run, struct probe_finding *f,
    struct rcpt_sess *s)
{
	char		to[PROBE_ADDR_MAX];
	unsigned	codes[UNKNOWN_NAMES], kcode = 0, n = 0, i;

	if (run->o.nknown > 0 && rcpt_tx(run, s, &f->evidence) == 0 &&
	    rcpt_one(run, s, run->o.known[0]) == 0)
		kcode = s->c.r.code;
	for (i = 0; i < UNKNOWN_NAMES; i++) {
		probe_invent(run, to, sizeof(to));
		if (rcpt_tx(run, s, &f->evidence) == -1 ||
		    rcpt_one(run, s, to) == -1)
			break;
		codes[n++] = s->c.r.code;
		if (s->c.r.code / 100 == 5)
			rcpt_leak_tables(run, s->c.r.text);
	}
	if (n == 0) {
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "no RCPT "
		    "answered: %s", s->c.err);
		return;
	}
	if (kcode != 0)
		probe_fact(f, "known %s: %u", run->o.known[0], kcode);
	for (i = 0; i < n; i++)
		probe_fact(f, "invented name %u: %u", i + 1, codes[i]);
	if (codes[0] / 100 == 5 && codes[n - 1] == codes[0])
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "reject at "
		    "RCPT (%u): the sender learns at once; names can be "
		    "told apart (see harvest)", codes[0]);
	else if (codes[0] / 100 == 5)
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "reject at "
		    "RCPT (%u), then uniform %u after %u names", codes[0],
		    codes[n - 1], n - 1);
	else if (codes[0] / 100 == 4)
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO,
		    "tempfail (%u) for invented names%s", codes[0], kcode ==
		    codes[0] ? ", and for the known one (uniform)" : "");
	else
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "accept "
		    "(%u) for invented people: the mail is dropped (a "
		    "mistyped sender never learns) or bounced later "
		    "(backscatter); --intrusive --ndr-listen tells which",
		    codes[0]);
	probe_fix(f, run, "Reject unknown recipients at RCPT with 550 5.1.1 "
	    "(the same text for every name) and take the harvester's "
	    "signal away with a tarpit and uniform answers.", fix_unknown);
}

static int
rcpt_cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Two-sample Kolmogorov-Smirnov: D = sup |F1 - F2|, the asymptotic
 * p-value with Stephens' small-sample correction (Numerical Recipes
 * 14.3).  Sorts its inputs.
 */
double
probe_ks_pvalue(const double *a0, size_t n, const double *b0, size_t m,
    double *dout)
{
	double	a[64], b[64], d = 0, en, lam, p = 0, term, sign = 1;
	size_t	i = 0, j = 0, k;

	if (n == 0 || m == 0 || n > 64 || m > 64) {
		*dout = 0;
		return 1;
	}
	memcpy(a, a0, n * sizeof(*a));
	memcpy(b, b0, m * sizeof(*b));
	qsort(a, n, sizeof(*a), rcpt_cmp);
	qsort(b, m, sizeof(*b), rcpt_cmp);
	while (i < n && j < m) {
		double x = a[i] <= b[j] ? a[i] : b[j];
		while (i < n && a[i] <= x)
			i++;
		while (j < m && b[j] <= x)
			j++;
		if (fabs((double)i / n - (double)j / m) > d)
			d = fabs((double)i / n - (double)j / m);
	}
	*dout = d;
	en = sqrt((double)n * m / (double)(n + m));
	lam = (en + 0.12 + 0.11 / en) * d;
	if (lam < 1e-3)
		return 1;
	for (k = 1; k <= 100; k++) {
		term = sign * 2 * exp(-2 * (double)k * k * lam * lam);
		p += term;
		if (fabs(term) < 1e-10)
			break;
		sign = -sign;
	}
	return p < 0 ? 0 : p > 1 ? 1 : p;
}

static void
rcpt_timing(struct probe_run *run, struct probe_finding *f,
    struct rcpt_sess *s, unsigned budget)
{
	double		kt[TIMING_N], ut[TIMING_N], d, p;
	size_t		nk = 0, nu = 0, i;
	char		to[PROBE_ADDR_MAX];
	int64_t		end = probe_now_ms() + TIMING_BUDGET_MS;

	if (run->o.nknown == 0) {
		probe_finding_set(f, PROBE_NOT_MEASURED, PROBE_SEV_INFO, "not "
		    "measured: needs --known (a real recipient to compare "
		    "with)");
		return;
	}
	for (i = 0; i < 2 * TIMING_N && i < budget &&
	    probe_now_ms() < end; i++) {
		if (i % 2 == 0)
			snprintf(to, sizeof(to), "%s", run->o.known[(i / 2) %
			    run->o.nknown]);
		else
			probe_invent(run, to, sizeof(to));
		if (rcpt_tx(run, s, &f->evidence) == -1 ||
		    rcpt_one(run, s, to) == -1 || s->c.r.code == 421)
			continue;
		if (i % 2 == 0)
			kt[nk++] = (double)s->c.r.ms;
		else
			ut[nu++] = (double)s->c.r.ms;
		if (f->evidence.len > PROBE_EVIDENCE_MAX / 2)
			s->c.tr = NULL;		/* enough shown */
	}
	p = probe_ks_pvalue(kt, nk, ut, nu, &d);
	probe_fact(f, "samples: %zu known, %zu invented", nk, nu);
	probe_fact(f, "ks_d: %.3f", d);
	probe_fact(f, "p_value: %.4f", p);
	if (nk < 5 || nu < 5)
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO, "too "
		    "few samples (%zu known, %zu invented)", nk, nu);
	else if (p < 0.01)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "reply "
		    "times tell known from invented names (KS D=%.2f, "
		    "p=%.4f, n=%zu/%zu)", d, p, nk, nu);
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "no timing "
		    "difference found (KS D=%.2f, p=%.4f, n=%zu/%zu)", d, p,
		    nk, nu);
	probe_fix(f, run, "Answer every RCPT after the same time, "
	    "whatever the directory costs (a reply floor).", fix_timing);
}

struct harvest_stats {
	unsigned	names, conns, per_conn_max, cur;
	unsigned	cutoffs, tarpitted, known_diff, known_same;
	int64_t		slowest_ms, started;
	unsigned	first_code, last_code;
};

/* Tarpitted: slower than HARVEST_TARPIT_MS and 5 times the fastest
 * reply of the run (a tarpit keyed to the client's history delays even
 * the first RCPT of a fresh connection). */
static void
harvest_note(struct harvest_stats *h, const struct probe_run *run,
    const struct probe_reply *r)
{
	int64_t	base = run->min_reply_ms < 0 ? 0 : run->min_reply_ms;

	if (r->ms > h->slowest_ms)
		h->slowest_ms = r->ms;
	if (r->ms > HARVEST_TARPIT_MS && r->ms > 5 * (base + 10))
		h->tarpitted++;
	if (h->first_code == 0)
		h->first_code = r->code;
	h->last_code = r->code;
}

static void
harvest_verdict(struct probe_run *run, struct probe_finding *f,
    const struct harvest_stats *h)
{
	double	secs = (double)(probe_now_ms() - h->started) / 1000.0;
	double	rate = secs > 0 ? h->names / secs : 0;

	probe_fact(f, "invented names tried: %u over %u connections",
	    h->names, h->conns);
	probe_fact(f, "names per connection (most): %u", h->per_conn_max);
	probe_fact(f, "names per minute: %.0f (one source)", rate * 60);
	probe_fact(f, "names per second: %.2f", rate);
	probe_fact(f, "cut-offs (421 or close): %u", h->cutoffs);
	probe_fact(f, "tarpitted replies (> %u ms): %u, slowest %lld ms",
	    HARVEST_TARPIT_MS, h->tarpitted, (long long)h->slowest_ms);
	probe_fact(f, "first / last invented reply: %u / %u", h->first_code,
	    h->last_code);
	if (run->o.nknown > 0)
		probe_fact(f, "known name late in the run: %u differing, "
		    "%u same as invented", h->known_diff, h->known_same);
	if (h->names == 0) {
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "no RCPT "
		    "answered");
		return;
	}
	if (run->o.nknown == 0 && h->tarpitted == 0 && h->cutoffs == 0 &&
	    h->last_code / 100 == 5)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "%u "
		    "invented names rejected at %.1f/s with no tarpit or "
		    "cut-off (--known tells whether real names differ)",
		    h->names, rate);
	else if (run->o.nknown == 0)
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO,
		    "%.1f names/s; tarpit %s, cut-off %s; needs --known to "
		    "see whether answers still differ", rate, h->tarpitted ?
		    "yes" : "no", h->cutoffs ? "yes" : "no");
	else if (h->known_diff == 0 && h->known_same == 0 &&
	    h->tarpitted > 0 && rate < HARVEST_SLOW_PER_S)
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "harvest "
		    "throttled: %.0f names a minute from one source (%u of %u "
		    "replies tarpitted, slowest %lld ms)", rate * 60,
		    h->tarpitted, h->names, (long long)h->slowest_ms);
	else if (h->known_diff == 0 && h->known_same == 0)
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO,
		    "%u names in the time budget at %.2f/s (tarpit %u, "
		    "cut-offs %u); the known name was not reached", h->names,
		    rate, h->tarpitted, h->cutoffs);
	else if (h->known_diff == 0)
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "after %u "
		    "invented names, the known one gets the same answer "
		    "(uniform); %.1f names/s", h->names, rate);
	else if (h->tarpitted == 0 && h->cutoffs == 0)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "harvest "
		    "possible: %u names at %.1f/s, real names still told "
		    "apart, no tarpit, no cut-off", h->names, rate);
	else
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_LOW, "harvest "
		    "slowed (tarpit %u, cut-offs %u) but real names still "
		    "told apart after %u names, %.1f names/s", h->tarpitted,
		    h->cutoffs, h->names, rate);
}

static void
rcpt_harvest(struct probe_run *run, struct probe_finding *f,
    struct rcpt_sess *s, unsigned budget)
{
	struct harvest_stats	h;
	char			to[PROBE_ADDR_MAX];
	int64_t			end = probe_now_ms() + HARVEST_BUDGET_MS;
	unsigned		i;
	bool			known;

	memset(&h, 0, sizeof(h));
	h.started = probe_now_ms();
	probe_conn_close(&s->c);	/* fresh: counts per connection */
	s->c.dead = true;
	for (i = 0; i < budget && probe_now_ms() < end; i++) {
		if (s->c.dead) {
			if (h.conns >= HARVEST_CONNS_MAX)
				break;
			h.conns++;
			h.cur = 0;
		}
		if (rcpt_tx(run, s, &f->evidence) == -1) {
			if (!s->c.dead || strstr(s->c.err, "bound") != NULL) {
				probe_fact(f, "stopped: %s", s->c.dead ? s->c.err :
				    "MAIL FROM refused");
				break;		/* refused, not cut off */
			}
			h.cutoffs++;
			continue;
		}
		known = run->o.nknown > 0 &&
		    i % HARVEST_KNOWN_EVERY == HARVEST_KNOWN_EVERY / 2;
		if (known)
			snprintf(to, sizeof(to), "%s", run->o.known[0]);
		else
			probe_invent(run, to, sizeof(to));
		if (rcpt_one(run, s, to) == -1 || s->c.r.code == 421) {
			h.cutoffs++;
			continue;
		}
		if (known) {
			if (s->c.r.code != h.last_code)
				h.known_diff++;
			else
				h.known_same++;
			continue;
		}
		h.names++;
		h.cur++;
		if (h.cur > h.per_conn_max)
			h.per_conn_max = h.cur;
		harvest_note(&h, run, &s->c.r);
		if (f->evidence.len > PROBE_EVIDENCE_MAX / 2)
			s->c.tr = NULL;
	}
	if (s->c.tr == NULL)
		probe_note(&f->evidence, "(the rest of the run not shown)");
	if (h.conns == 0)
		h.conns = 1;
	harvest_verdict(run, f, &h);
	probe_fix(f, run, "Tarpit and then cut off a client whose "
	    "recipients are mostly unknown, and past a threshold give every "
	    "RCPT of it the same answer.", fix_harvest);
}

void
probe_rcpt_run(struct probe_run *run)
{
	struct probe_finding	*fu, *ft, *fh;
	struct rcpt_sess	 s;
	unsigned		 budget = run->o.max_rcpt, tb;

	fu = probe_finding_add(run, "unknown-recipient", "How RCPT to "
	    "invented people of the domain is answered");
	ft = probe_finding_add(run, "timing-oracle", "RCPT reply times, "
	    "known vs invented names");
	fh = probe_finding_add(run, "harvest", "Directory harvest: names "
	    "per connection and minute, tarpit, cut-off");
	memset(&s, 0, sizeof(s));
	s.c.fd = -1;
	s.c.dead = true;
	s.c.run = run;
	rcpt_unknown(run, fu, &s);
	probe_conn_close(&s.c);
	s.in_tx = false;
	tb = budget / 4 < 2 * TIMING_N ? budget / 4 : 2 * TIMING_N;
	rcpt_timing(run, ft, &s, tb);
	probe_conn_close(&s.c);
	s.in_tx = false;
	probe_rcpt_ndr(run, fu);
	rcpt_harvest(run, fh, &s, budget > tb ? budget - tb : 1);
	probe_conn_close(&s.c);
}
