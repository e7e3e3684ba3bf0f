/*
 * guard.c - the harvest guard's policy: signals to verdicts (DESIGN 3).
 * Owns: the majority rule, tarpit slots and delays (one queue of delayed
 * replies per host), uniform marks, the distributed-harvest switch, the
 * event=harvest log lines, and the one lock every public function holds.
 * Never: timers, sleeping or I/O but its log lines (the caller delays);
 * never calls the caller back while locked; never keeps a recipient
 * name, only a keyed hash of it.  Counters: guard_store.h.
 * Untrusted: client addresses and recipient names.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fleet/fleet.h"
#include "../lib/log.h"
#include "guard.h"
#include "guard_store.h"

/*
 * Defaults (issue 4).  Tarpit after 3 unknown at 1 s doubling to 10 s,
 * cut-off after 10: between Postfix's smtpd_soft_error_limit 10 (1 s
 * sleeps) and hard limit 20, and Exchange's 5 s tarpit.  25 distinct
 * names an hour per host is Cisco's 25 invalid recipients per hour.
 * The longest delay is 10 s, not the 5 s first chosen: the delays of
 * one host are served one after the other over all its connections, so
 * the longest delay is what a harvester pays per name from one address,
 * and issue 4's target is 10 s a name (bench/harvest.py measured 5.5 s a
 * name with 5 s, 10.7 s with 10 s).
 */
#define GUARD_DEF_WINDOW_MS	(60 * 60 * 1000)
#define GUARD_DEF_TTL_MS	(24 * 60 * 60 * 1000)
/*
 * 300 unknown recipients a minute for one domain: an organization taking
 * ten million messages a day with 3% stale recipients sees about 210 a
 * minute, while 200 harvesting sources at one name per 10 s tarpit delay
 * make 1,200.
 */
#define GUARD_DEF_GLOBAL_RATE	300
/* 2,000 held sessions at the 8 KB target cost 16 MB and leave file
 * descriptors for honest clients under a 4,096 limit. */
#define GUARD_DEF_MAX_TARPITTED	2000
/* 60 s: the default cut-off is reached after 1+2+4+8+10*3 = 45 s; only
 * a session padding its unknown names with valid ones, or waiting behind
 * its host's other sessions, gets this far. */
#define GUARD_DEF_SESSION_DELAY	60000
#define GUARD_DEF_MAX_CLIENTS	100000
/* A net's tarpit starts at the share of its threshold a host's does
 * (3 of 25 -> 12 of 100); this ratio when a threshold is off. */
#define GUARD_NET_RATIO		4
#define GUARD_NAME_MAX		512	/* local@domain hashed, at most */
#define GUARD_NET_TEXT		(INET6_ADDRSTRLEN + 4)
#define GUARD_SHIFT_MAX		20	/* doublings; the cap ends it */

_Static_assert(GUARD_THRESHOLD_MAX <= GUARD_SET_MAX,
    "a threshold must fit in a distinct set");

/* Shared by every event loop: mu is held inside each public function,
 * around everything below it. */
struct guard {
	pthread_mutex_t		 mu;
	struct guard_conf	 conf;
	struct guard_mem	*mem;
	struct guard_dom	*dom;
	struct guard_hkey	 key;
	size_t			 ntarpitted;
	struct fleet		*fleet;		/* NULL: counts alone */
	struct guard_hkey	 fleet_key;	/* the fleet's name hashes */
};

/* Fleet counts older than this are asked for again (never waited for). */
#define GUARD_FLEET_REFRESH_MS	1000

static void	guard_mark_check(struct guard *, const struct guard_net *,
		    const struct guard_counts *, unsigned, uint64_t);

/* A client's host and net, and what they asked for in the window. */
struct guard_peer {
	struct guard_net	 host, net;
	struct guard_counts	 hc, nc;
};

/* Weight of each signal in quarter units of an unknown recipient: a
 * protocol error is often an honest client's bug, so only a quarter. */
static const unsigned guard_signal_q[] = {
	[GUARD_SIG_VRFY] = GUARD_Q,
	[GUARD_SIG_EXPN] = GUARD_Q,
	[GUARD_SIG_PROTO] = 1,
	[GUARD_SIG_AUTH] = GUARD_Q,
};

static const char *const guard_verdict_names[] = {
	[GUARD_PASS] = "pass",
	[GUARD_TARPIT] = "tarpit",
	[GUARD_UNIFORM] = "uniform",
	[GUARD_CUTOFF] = "cutoff",
};

static void
guard_lock(struct guard *g)
{
	if (pthread_mutex_lock(&g->mu) != 0)
		panic("guard_lock: cannot lock the guard");
}

static void
guard_unlock(struct guard *g)
{
	if (pthread_mutex_unlock(&g->mu) != 0)
		panic("guard_unlock: cannot unlock the guard");
}

void
guard_conf_defaults(struct guard_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->window_ms = GUARD_DEF_WINDOW_MS;
	c->tarpit_after = 3;
	c->tarpit_base_ms = 1000;
	c->tarpit_max_ms = 10000;
	c->session_limit = 10;
	c->threshold = 25;
	c->threshold_net = 100;
	c->ttl_ms = GUARD_DEF_TTL_MS;
	c->global_rate = GUARD_DEF_GLOBAL_RATE;
	c->max_tarpitted = GUARD_DEF_MAX_TARPITTED;
	c->session_delay_max_ms = GUARD_DEF_SESSION_DELAY;
	c->max_clients = GUARD_DEF_MAX_CLIENTS;
}

const char *
guard_verdict_name(enum guard_verdict v)
{
	if ((unsigned)v >= sizeof(guard_verdict_names) /
	    sizeof(guard_verdict_names[0]))
		return "?";
	return guard_verdict_names[v];
}

static bool
guard_net_is_host(const struct guard_net *n)
{
	return n->prefix == (n->family == AF_INET ? 32 : 64);
}

static void
guard_net_text(const struct guard_net *n, char *buf, size_t len)
{
	char	a[INET6_ADDRSTRLEN];

	if (inet_ntop(n->family, n->addr, a, sizeof(a)) == NULL)
		a[0] = '\0';
	if (n->family == AF_INET && n->prefix == 32)
		snprintf(buf, len, "%s", a);
	else
		snprintf(buf, len, "%s/%u", a, (unsigned)n->prefix);
}

static void
guard_net_set(struct guard_net *n, int family, const uint8_t *a,
    unsigned prefix)
{
	unsigned	i;

	memset(n, 0, sizeof(*n));
	n->family = (uint8_t)family;
	n->prefix = (uint8_t)prefix;
	memcpy(n->addr, a, family == AF_INET ? 4 : 16);
	for (i = prefix / 8; i < sizeof(n->addr); i++)
		n->addr[i] &= i == prefix / 8 ?
		    (uint8_t)(0xffu << (8 - prefix % 8)) : 0;
}

/* The client's host and net; false for a non-IP or an exempt client. */
static bool
guard_peer_get(const struct guard *g, const struct sockaddr *sa,
    struct guard_peer *p)
{
	static const uint8_t	 mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	const uint8_t		*a;

	memset(p, 0, sizeof(*p));
	if (sa == NULL || cidr_list_match(g->conf.exempt, sa))
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof(sin));
		a = (const uint8_t *)&sin.sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof(sin6));
		a = (const uint8_t *)&sin6.sin6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) != 0) {
			guard_net_set(&p->host, AF_INET6, a, 64);
			guard_net_set(&p->net, AF_INET6, a, 48);
			return true;
		}
		a += sizeof(mapped);		/* ::ffff:a.b.c.d is IPv4 */
	} else
		return false;
	guard_net_set(&p->host, AF_INET, a, 32);
	guard_net_set(&p->net, AF_INET, a, 24);
	return true;
}

/* "198.51.100.7/32": a source's name in the fleet's keys. */
static void
guard_net_src(const struct guard_net *n, char *buf, size_t len)
{
	char	text[GUARD_NET_TEXT];
	int	rc;

	guard_net_text(n, text, sizeof(text));
	rc = snprintf(buf, len, strchr(text, '/') != NULL ? "%s" : "%s/32",
	    text);
	if (rc < 0 || (size_t)rc >= len)
		buf[0] = '\0';		/* cannot happen: FLEET_SRC_MAX */
}

/*
 * The local counts plus the last fleet counts known (issue 17): never
 * waits; a stale or missing view is asked for and used next time.  The
 * fleet's distinct names and valid count stand in for ours when higher
 * (its distinct names are the unknown recipients it saw), and its mark
 * is ours.
 */
static void
guard_fleet_merge(struct guard *g, const struct guard_net *n,
    struct guard_counts *c, uint64_t now)
{
	char			src[FLEET_SRC_MAX];
	struct fleet_view	v;
	uint64_t		q;

	if (g->fleet == NULL)
		return;
	guard_net_src(n, src, sizeof(src));
	fleet_want(g->fleet, src, 0);
	if (!fleet_view(g->fleet, src, &v))
		return;
	if (v.distinct > c->distinct)
		c->distinct = v.distinct;
	q = (uint64_t)v.distinct * GUARD_Q;
	if (q > c->ctr[GUARD_CTR_UNKNOWN])
		c->ctr[GUARD_CTR_UNKNOWN] = q > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)q;
	q = (uint64_t)v.valid * GUARD_Q;
	if (q > c->ctr[GUARD_CTR_VALID])
		c->ctr[GUARD_CTR_VALID] = q > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)q;
	if (v.mark_left_ms > 0 && now + v.mark_left_ms > c->marked_until)
		c->marked_until = now + v.mark_left_ms;
}

static void
guard_peer_read(struct guard *g, struct guard_peer *p, uint64_t now)
{
	(void)guard_mem_read(g->mem, &p->host, now, &p->hc);
	(void)guard_mem_read(g->mem, &p->net, now, &p->nc);
	guard_fleet_merge(g, &p->host, &p->hc, now);
	guard_fleet_merge(g, &p->net, &p->nc, now);
}

static unsigned
guard_q_units(uint64_t q)
{
	q = (q + GUARD_Q / 2) / GUARD_Q;
	return q > UINT32_MAX ? UINT32_MAX : (unsigned)q;
}

/* The majority rule, for a host or net in the window. */
static bool
guard_counts_unknown_heavy(const struct guard_counts *c)
{
	return (uint64_t)c->ctr[GUARD_CTR_UNKNOWN] + c->ctr[GUARD_CTR_SIGNAL] >
	    c->ctr[GUARD_CTR_VALID];
}

static bool
guard_counts_valid_heavy(const struct guard_counts *c)
{
	return c->ctr[GUARD_CTR_VALID] > (uint64_t)c->ctr[GUARD_CTR_UNKNOWN] +
	    c->ctr[GUARD_CTR_SIGNAL];
}

/* Distinct names plus signals: what thresholds are compared with. */
static uint64_t
guard_counts_score(const struct guard_counts *c)
{
	return (uint64_t)c->distinct * GUARD_Q + c->ctr[GUARD_CTR_SIGNAL];
}

static uint64_t
guard_sess_unknown_q(const struct guard_session *s)
{
	return (uint64_t)s->unknown * GUARD_Q + s->signal_q;
}

/* The majority rule, for the session. */
static bool
guard_sess_unknown_heavy(const struct guard_session *s)
{
	return guard_sess_unknown_q(s) > (uint64_t)s->valid * GUARD_Q;
}

static bool
guard_sess_valid_heavy(const struct guard_session *s)
{
	return (uint64_t)s->valid * GUARD_Q > guard_sess_unknown_q(s);
}

static unsigned
guard_after_net(const struct guard_conf *c)
{
	uint64_t	v;

	if (c->threshold == 0 || c->threshold_net == 0)
		v = (uint64_t)c->tarpit_after * GUARD_NET_RATIO;
	else
		v = ((uint64_t)c->tarpit_after * c->threshold_net +
		    c->threshold - 1) / c->threshold;
	if (v < c->tarpit_after)
		v = c->tarpit_after;
	return v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* A history that tarpits the client's sessions (host or net level). */
static bool
guard_history_due(const struct guard_conf *c, const struct guard_net *n,
    const struct guard_counts *cc, unsigned *excess)
{
	uint64_t	after, score = guard_counts_score(cc);

	after = (uint64_t)(guard_net_is_host(n) ? c->tarpit_after :
	    guard_after_net(c)) * GUARD_Q;
	if (c->tarpit_after == 0 || !guard_counts_unknown_heavy(cc) ||
	    score < after)
		return false;
	*excess = (unsigned)((score - after) / GUARD_Q);
	return true;
}

/*
 * Whether this session's replies are delayed now, and how many doublings
 * the history already owes (k0).  Every trigger holds only while unknown
 * recipients are the majority of what the session (A, C) or the client
 * (B) asked for, and never for a host whose window is mostly valid
 * names, so a list server's few stale names never count:
 * A: this session has tarpit_after unknown;
 * B: the host's (or net's) window has that many distinct unknown names,
 *    so a harvester reconnecting for each name is delayed from its first
 *    RCPT (unless this session has asked mostly for valid names);
 * C: the session noted a hot domain: delayed from its first unknown.
 */
static bool
guard_tarpit_due(const struct guard_conf *c, const struct guard_session *s,
    const struct guard_peer *p, unsigned *k0)
{
	uint64_t	su = guard_sess_unknown_q(s);
	uint64_t	after = (uint64_t)c->tarpit_after * GUARD_Q;
	bool		host_valid = guard_counts_valid_heavy(&p->hc);
	unsigned	ex;
	bool		due = false;

	*k0 = 0;
	if (c->tarpit_after == 0 || c->tarpit_base_ms == 0)
		return false;
	if (!host_valid && guard_sess_unknown_heavy(s) && (su >= after ||
	    (s->hot && su >= GUARD_Q))) {
		due = true;
		*k0 = su >= after ? (unsigned)((su - after) / GUARD_Q) : 0;
	}
	if (guard_sess_valid_heavy(s))
		return due;
	if (guard_history_due(c, &p->host, &p->hc, &ex)) {
		due = true;
		*k0 = ex > *k0 ? ex : *k0;
	}
	/* A new address in a harvesting net has no history of its own:
	 * only a host that asked mostly for valid names is spared. */
	if (!host_valid && guard_history_due(c, &p->net, &p->nc, &ex)) {
		due = true;
		*k0 = ex > *k0 ? ex : *k0;
	}
	return due;
}

static bool
guard_cutoff_due(const struct guard_conf *c, const struct guard_session *s,
    const struct guard_peer *p)
{
	return c->session_limit > 0 && guard_sess_unknown_q(s) >=
	    (uint64_t)c->session_limit * GUARD_Q &&
	    guard_sess_unknown_heavy(s) && !guard_counts_valid_heavy(&p->hc);
}

/* base * 2^k, capped; k counts doublings, never a recipient's verdict. */
static unsigned
guard_delay(const struct guard_conf *c, unsigned k)
{
	uint64_t	d = c->tarpit_base_ms;

	while (k-- > 0 && d < c->tarpit_max_ms)
		d *= 2;
	return d > c->tarpit_max_ms ? c->tarpit_max_ms : (unsigned)d;
}

static void
guard_log_session(const char *state, const struct guard_peer *p,
    const struct guard_session *s, const char *key, unsigned v,
    const char *reason)
{
	char	text[GUARD_NET_TEXT];

	guard_net_text(&p->host, text, sizeof(text));
	log_event(LOG_LVL_INFO, "harvest", "state=%s net=%s unknown=%u "
	    "valid=%u distinct=%u %s=%u%s%s", state, text, s->unknown,
	    s->valid, p->hc.distinct, key, v, reason != NULL ? " reason=" : "",
	    reason != NULL ? reason : "");
}

static void
guard_slot_release(struct guard *g, struct guard_session *s)
{
	if (!s->tarpitted)
		return;
	s->tarpitted = false;
	if (g->ntarpitted > 0)
		g->ntarpitted--;
}

/* A session held in a delay takes one of max_tarpitted slots; false
 * when they are all taken. */
static bool
guard_slot_take(struct guard *g, struct guard_session *s)
{
	if (s->tarpitted)
		return true;
	if (g->conf.max_tarpitted > 0 && g->ntarpitted >= g->conf.max_tarpitted)
		return false;
	s->tarpitted = true;
	g->ntarpitted++;
	return true;
}

static enum guard_verdict
guard_cut(struct guard *g, const struct guard_peer *p,
    struct guard_session *s, const char *reason)
{
	s->cut = true;
	guard_slot_release(g, s);	/* the session is closing */
	guard_log_session("cutoff", p, s, "delay_total_ms", s->delay_total_ms,
	    reason);
	return GUARD_CUTOFF;
}

/*
 * One delayed reply: d after the end of the host's queue of delayed
 * replies, whichever of its sessions they belong to, so a client that
 * opens more connections gets no more answers.  The wait counts toward
 * the session's total delay: past the cap, 421 at once, so a client
 * cannot keep many sessions waiting.  *delay_ms is the whole delay;
 * false for the cut-off.
 */
static bool
guard_hold(struct guard *g, const struct guard_peer *p,
    struct guard_session *s, uint64_t now, unsigned d, unsigned *delay_ms)
{
	uint64_t	cap = g->conf.session_delay_max_ms;
	uint64_t	total = d;

	if (p->hc.busy_until > now)
		total += p->hc.busy_until - now;
	if (cap > 0 && s->delay_total_ms + total > cap)
		return false;
	if (total > UINT32_MAX - (uint64_t)s->delay_total_ms)
		total = UINT32_MAX - (uint64_t)s->delay_total_ms;
	if (guard_mem_reserve(g->mem, &p->host, now, now + total) == -1)
		log_event(LOG_LVL_WARNING, "harvest", "state=nomem "
		    "msg=\"reply queue lost\"");
	s->delay_total_ms += (unsigned)total;
	*delay_ms = (unsigned)total;
	return true;
}

/*
 * The doublings a delayed reply owes: the session's own count (its
 * delayed replies plus k0), or the host's count of delayed replies in the
 * window if that is more, so the ramp is the host's too: three sessions
 * opened at once get 1, 2 and 4 s, not three times 1 s.  Both count
 * replies, never verdicts.
 */
static unsigned
guard_doublings(const struct guard_peer *p, const struct guard_session *s)
{
	unsigned	k, kh = guard_q_units(p->hc.ctr[GUARD_CTR_DELAYED]);

	k = s->tarpit_n > GUARD_SHIFT_MAX ? GUARD_SHIFT_MAX : s->tarpit_n;
	k += s->tarpit_k0 > GUARD_SHIFT_MAX ? GUARD_SHIFT_MAX : s->tarpit_k0;
	if (kh > k)
		k = kh > GUARD_SHIFT_MAX ? GUARD_SHIFT_MAX : kh;
	return k;
}

/* Past either cap, 421 at once: tarpitting must never cost the gateway
 * more than it costs the harvester. */
static enum guard_verdict
guard_tarpit(struct guard *g, const struct guard_peer *p,
    struct guard_session *s, unsigned k0, uint64_t now, unsigned *delay_ms)
{
	struct guard_counts	hc;
	bool			start = !s->tarpitted;

	if (!guard_slot_take(g, s))
		return guard_cut(g, p, s, "slots");
	if (start)
		s->tarpit_k0 = k0;
	if (!guard_hold(g, p, s, now, guard_delay(&g->conf,
	    guard_doublings(p, s)), delay_ms))
		return guard_cut(g, p, s, "delay");
	if (start)
		guard_log_session("tarpit", p, s, "delay_ms", *delay_ms, NULL);
	s->tarpit_n++;
	(void)guard_mem_add(g->mem, &p->host, now, GUARD_CTR_DELAYED, GUARD_Q,
	    NULL, 0, &hc);
	return GUARD_TARPIT;
}

/*
 * A marked client gets the uniform reply after the longest tarpit delay,
 * in its host's queue, whenever its history would tarpit it at all: a
 * uniform answer costs a harvester at least what a tarpitted one does,
 * and sooner answers would only tell it to try elsewhere.
 */
static enum guard_verdict
guard_uniform(struct guard *g, const struct guard_peer *p,
    struct guard_session *s, uint64_t now, unsigned *delay_ms)
{
	unsigned	k0;

	if (!guard_tarpit_due(&g->conf, s, p, &k0))
		return GUARD_UNIFORM;
	if (!guard_slot_take(g, s))
		return guard_cut(g, p, s, "slots");
	if (!guard_hold(g, p, s, now, guard_delay(&g->conf, GUARD_SHIFT_MAX),
	    delay_ms))
		return guard_cut(g, p, s, "delay");
	return GUARD_UNIFORM;
}

/*
 * With a fleet, the counts other gateways added since our last count
 * may pass a threshold here first: mark then, as guard_count would.
 */
static void
guard_fleet_mark_check(struct guard *g, struct guard_peer *p, uint64_t now)
{
	guard_mark_check(g, &p->host, &p->hc, g->conf.threshold, now);
	guard_mark_check(g, &p->net, &p->nc, g->conf.threshold_net, now);
	guard_peer_read(g, p, now);
}

static enum guard_verdict
guard_rcpt_check_locked(struct guard *g, const struct sockaddr *sa,
    struct guard_session *s, uint64_t now, unsigned *delay_ms)
{
	struct guard_peer	p;
	unsigned		k0;

	if (!guard_peer_get(g, sa, &p))
		return GUARD_PASS;
	if (s->cut)
		return GUARD_CUTOFF;
	guard_peer_read(g, &p, now);
	if (g->fleet != NULL)
		guard_fleet_mark_check(g, &p, now);
	if (p.hc.marked_until > now || p.nc.marked_until > now)
		return guard_uniform(g, &p, s, now, delay_ms);
	if (guard_cutoff_due(&g->conf, s, &p))
		return guard_cut(g, &p, s, "limit");
	if (!guard_tarpit_due(&g->conf, s, &p, &k0))
		return GUARD_PASS;
	return guard_tarpit(g, &p, s, k0, now, delay_ms);
}

enum guard_verdict
guard_rcpt_check(struct guard *g, const struct sockaddr *sa,
    struct guard_session *s, uint64_t now, unsigned *delay_ms)
{
	enum guard_verdict	v;

	*delay_ms = 0;
	guard_lock(g);
	v = guard_rcpt_check_locked(g, sa, s, now, delay_ms);
	guard_unlock(g);
	return v;
}

static void
guard_log_counts(const char *state, const struct guard_net *n,
    const struct guard_counts *c, const char *extra)
{
	char	text[GUARD_NET_TEXT];

	guard_net_text(n, text, sizeof(text));
	log_event(LOG_LVL_INFO, "harvest", "state=%s net=%s unknown=%u "
	    "valid=%u distinct=%u signals=%u%s", state, text,
	    guard_q_units(c->ctr[GUARD_CTR_UNKNOWN]),
	    guard_q_units(c->ctr[GUARD_CTR_VALID]), c->distinct,
	    guard_q_units(c->ctr[GUARD_CTR_SIGNAL]), extra);
}

/* Uniform mode: the threshold reached while unknown are the majority. */
static void
guard_mark_check(struct guard *g, const struct guard_net *n,
    const struct guard_counts *c, unsigned threshold, uint64_t now)
{
	char	extra[48], src[FLEET_SRC_MAX];

	if (threshold == 0 || g->conf.ttl_ms == 0 || c->marked_until > now ||
	    !guard_counts_unknown_heavy(c) ||
	    guard_counts_score(c) < (uint64_t)threshold * GUARD_Q)
		return;
	if (guard_mem_mark(g->mem, n, now + g->conf.ttl_ms) == -1)
		return;
	if (g->fleet != NULL) {
		guard_net_src(n, src, sizeof(src));
		fleet_note_mark(g->fleet, src, g->conf.ttl_ms);
	}
	snprintf(extra, sizeof(extra), " ttl_ms=%u", g->conf.ttl_ms);
	guard_log_counts("uniform", n, c, extra);
}

static unsigned
guard_set_max(unsigned threshold, unsigned after)
{
	uint64_t	v = 2 * (uint64_t)(threshold > after ? threshold :
			    after);

	return v < 2 ? 2 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

/* The same increments for the fleet, batched by fleet.c. */
static void
guard_fleet_count(struct guard *g, const struct guard_peer *p,
    enum guard_ctr ctr, const uint64_t *fname)
{
	const struct guard_conf	*c = &g->conf;
	char			 hs[FLEET_SRC_MAX], ns[FLEET_SRC_MAX];

	if (g->fleet == NULL || (ctr != GUARD_CTR_VALID &&
	    (ctr != GUARD_CTR_UNKNOWN || fname == NULL)))
		return;
	guard_net_src(&p->host, hs, sizeof(hs));
	guard_net_src(&p->net, ns, sizeof(ns));
	if (ctr == GUARD_CTR_VALID) {
		fleet_note_valid(g->fleet, hs);
		fleet_note_valid(g->fleet, ns);
		return;
	}
	fleet_note_unknown(g->fleet, hs, *fname,
	    guard_set_max(c->threshold, c->tarpit_after));
	fleet_note_unknown(g->fleet, ns, *fname,
	    guard_set_max(c->threshold_net, guard_after_net(c)));
}

/* Counts at both levels, then marks a level that passed its threshold
 * (with the fleet's counts, when there is a fleet). */
static void
guard_count(struct guard *g, const struct guard_peer *p, enum guard_ctr ctr,
    unsigned q, const uint64_t *name, const uint64_t *fname, uint64_t now)
{
	const struct guard_conf	*c = &g->conf;
	struct guard_counts	 hc, nc;
	int			 rc;

	rc = guard_mem_add(g->mem, &p->host, now, ctr, q, name,
	    guard_set_max(c->threshold, c->tarpit_after), &hc);
	rc |= guard_mem_add(g->mem, &p->net, now, ctr, q, name,
	    guard_set_max(c->threshold_net, guard_after_net(c)), &nc);
	if (rc != 0)
		log_event(LOG_LVL_WARNING, "harvest", "state=nomem "
		    "msg=\"client counts lost\"");
	guard_fleet_count(g, p, ctr, fname);
	guard_fleet_merge(g, &p->host, &hc, now);
	guard_fleet_merge(g, &p->net, &nc, now);
	guard_mark_check(g, &p->host, &hc, c->threshold, now);
	guard_mark_check(g, &p->net, &nc, c->threshold_net, now);
}

/* Names are hashed as local@domain, ASCII case folded: JOHN and john
 * are one try, and an alias domain's john is another. */
static uint64_t
guard_name_hash(const struct guard_hkey *key, const char *local, size_t llen,
    const char *domain, size_t dlen)
{
	char	buf[GUARD_NAME_MAX];
	size_t	i, n = 0;
	char	ch;

	for (i = 0; i < llen + 1 + dlen && n < sizeof(buf); i++) {
		ch = i < llen ? local[i] : i == llen ? '@' :
		    domain[i - llen - 1];
		buf[n++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	return guard_hash(key, buf, n);
}

static void
guard_log_domain(void *arg, const char *name, size_t len, unsigned rate,
    bool hot)
{
	const struct guard	*g = arg;

	log_event(LOG_LVL_INFO, "harvest", "state=%s domain=%s rate=%u "
	    "limit=%u", hot ? "global_on" : "global_off",
	    log_esc(name, len, GUARD_DOM_NAME_MAX), rate, g->conf.global_rate);
}

/* Back off at half the rate that switched a domain on, so a harvest
 * near the limit does not flip its answers every minute. */
static bool
guard_dom_switch_at(struct guard *g, const char *domain, size_t dlen,
    uint64_t now, unsigned n)
{
	return guard_dom_update(g->dom, domain, dlen, now, n,
	    g->conf.global_rate, g->conf.global_rate / 2, guard_log_domain, g);
}

/* Whether a valid name is new to this session (then remembered). */
static bool
guard_session_valid_new(struct guard_session *s, uint64_t h)
{
	uint32_t	v = (uint32_t)(h ^ (h >> 32)) | 1;	/* never 0 */
	size_t		i;

	for (i = 0; i < GUARD_VALID_SEEN; i++)
		if (s->valid_seen[i] == v)
			return false;
	s->valid_seen[s->valid_next++ % GUARD_VALID_SEEN] = v;
	return true;
}

/*
 * A valid name weighs on the majority rule once per session (the
 * session's own count) and once per window for the host (and its net),
 * so neither padding every guess with the one real address a harvester
 * knows, nor reconnecting for each such pair, makes it look mostly
 * valid.  The host remembers its last GUARD_VSEEN valid names; a list
 * server writing to more people than that has each counted again.
 */
static void
guard_note_valid(struct guard *g, const struct guard_peer *p,
    struct guard_session *s, uint64_t h, uint64_t now)
{
	if (!guard_session_valid_new(s, h))
		return;
	s->valid += s->valid < UINT32_MAX;
	if (guard_mem_valid_new(g->mem, &p->host, now, h) != 0)
		guard_count(g, p, GUARD_CTR_VALID, GUARD_Q, NULL, NULL, now);
}

bool
guard_rcpt_note(struct guard *g, const struct sockaddr *sa,
    struct guard_session *s, bool unknown, const char *local, size_t llen,
    const char *domain, size_t dlen, uint64_t now)
{
	struct guard_peer	p;
	uint64_t		h, fh;
	bool			hot = false;

	guard_lock(g);
	if (!guard_peer_get(g, sa, &p))
		goto out;
	h = guard_name_hash(&g->key, local, llen, domain, dlen);
	if (unknown) {
		s->unknown += s->unknown < UINT32_MAX;
		fh = guard_name_hash(&g->fleet_key, local, llen, domain, dlen);
		guard_count(g, &p, GUARD_CTR_UNKNOWN, GUARD_Q, &h, &fh, now);
	} else
		guard_note_valid(g, &p, s, h, now);
	if ((hot = guard_dom_switch_at(g, domain, dlen, now, unknown)))
		s->hot = true;
out:
	guard_unlock(g);
	return hot;
}

bool
guard_domain_hot(struct guard *g, const char *domain, size_t dlen,
    uint64_t now)
{
	bool	hot;

	guard_lock(g);
	hot = guard_dom_switch_at(g, domain, dlen, now, 0);
	guard_unlock(g);
	return hot;
}

void
guard_note_signal(struct guard *g, const struct sockaddr *sa,
    struct guard_session *s, enum guard_signal sig, uint64_t now)
{
	struct guard_peer	p;
	unsigned		q;

	if ((unsigned)sig >= sizeof(guard_signal_q) / sizeof(guard_signal_q[0]))
		panic("guard_note_signal: signal %d", (int)sig);
	guard_lock(g);
	if (guard_peer_get(g, sa, &p)) {
		q = guard_signal_q[sig];
		s->signal_q += s->signal_q <= UINT32_MAX - q ? q : 0;
		guard_count(g, &p, GUARD_CTR_SIGNAL, q, NULL, NULL, now);
	}
	guard_unlock(g);
}

void
guard_session_end(struct guard *g, struct guard_session *s)
{
	guard_lock(g);
	guard_slot_release(g, s);
	guard_unlock(g);
}

static void
guard_log_expired(void *arg, const struct guard_net *n,
    const struct guard_counts *c)
{
	guard_log_counts("expired", n, c, arg != NULL ? arg : "");
}

void
guard_tick(struct guard *g, uint64_t now)
{
	guard_lock(g);
	guard_mem_expire(g->mem, now, guard_log_expired, NULL);
	guard_dom_tick(g->dom, now, g->conf.global_rate,
	    g->conf.global_rate / 2, guard_log_domain, g);
	guard_unlock(g);
}

/* One line of guard_list, copied out under the lock. */
struct guard_listed {
	char		 net[GUARD_NET_TEXT];
	const char	*state;
	unsigned	 distinct, valid;
	uint64_t	 expires_ms;
};

struct guard_list_ctx {
	struct guard		*g;
	uint64_t		 now;
	struct guard_listed	*v;
	size_t			 n, cap;
	bool			 nomem;
	int			 removed;	/* guard_unmark */
};

static void
guard_list_add(struct guard_list_ctx *x, const struct guard_net *n,
    const char *state, const struct guard_counts *c, uint64_t expires)
{
	struct guard_listed	*v;
	size_t			 cap;

	if (x->n == x->cap) {
		cap = x->cap == 0 ? 64 : x->cap * 2;
		if (x->nomem || (v = reallocarray(x->v, cap,
		    sizeof(*v))) == NULL) {
			x->nomem = true;
			return;
		}
		x->v = v;
		x->cap = cap;
	}
	v = &x->v[x->n++];
	guard_net_text(n, v->net, sizeof(v->net));
	v->state = state;
	v->distinct = c->distinct;
	v->valid = guard_q_units(c->ctr[GUARD_CTR_VALID]);
	v->expires_ms = expires;
}

static void
guard_list_one(void *arg, const struct guard_net *n,
    const struct guard_counts *c)
{
	struct guard_list_ctx	*x = arg;
	unsigned		 ex;

	if (c->marked_until > x->now)
		guard_list_add(x, n, "uniform", c, c->marked_until);
	else if (guard_history_due(&x->g->conf, n, c, &ex))
		guard_list_add(x, n, "tarpit", c,
		    c->last_ms + x->g->conf.window_ms);
}

/* Copied under the lock, reported after it: fn may take its time. */
void
guard_list(struct guard *g, uint64_t now, guard_list_fn *fn, void *arg)
{
	struct guard_list_ctx	x = { .g = g, .now = now };
	size_t			i;

	guard_lock(g);
	guard_mem_walk(g->mem, now, guard_list_one, &x);
	guard_unlock(g);
	if (x.nomem)
		log_event(LOG_LVL_WARNING, "harvest", "state=nomem "
		    "msg=\"harvest list cut short\" listed=%zu", x.n);
	for (i = 0; i < x.n; i++)
		fn(arg, x.v[i].net, x.v[i].state, x.v[i].distinct,
		    x.v[i].valid, x.v[i].expires_ms);
	free(x.v);
}

static void
guard_unmark_one(void *arg, const struct guard_net *n,
    const struct guard_counts *c)
{
	struct guard_list_ctx	*x = arg;
	const char		*was = "counted";
	unsigned		 ex;

	if (c->marked_until > x->now)
		was = "uniform";
	else if (guard_history_due(&x->g->conf, n, c, &ex))
		was = "tarpit";
	guard_list_add(x, n, was, c, c->marked_until);
	x->removed++;
	guard_log_counts("unmarked", n, c, strcmp(was, "uniform") == 0 ?
	    " was=uniform" : strcmp(was, "tarpit") == 0 ? " was=tarpit" :
	    " was=counted");
}

/*
 * Every entry removed is counted, whatever held it against the client:
 * a uniform mark, a tarpitting history, or counts alone.  Reported after
 * the lock, as guard_list does.
 */
int
guard_unmark(struct guard *g, const char *text, uint64_t now,
    guard_list_fn *fn, void *arg)
{
	struct guard_list_ctx	x = { .g = g, .now = now };
	struct cidr		c;
	size_t			i;

	if (text == NULL || cidr_parse(text, strlen(text), &c) == -1)
		return -1;
	guard_lock(g);
	(void)guard_mem_forget(g->mem, &c, now, guard_unmark_one, &x);
	guard_unlock(g);
	for (i = 0; fn != NULL && i < x.n; i++)
		fn(arg, x.v[i].net, x.v[i].state, x.v[i].distinct,
		    x.v[i].valid, x.v[i].expires_ms);
	free(x.v);
	return x.removed;
}

void
guard_get_stats(struct guard *g, struct guard_stats *st)
{
	memset(st, 0, sizeof(*st));
	guard_lock(g);
	guard_mem_stats(g->mem, &st->entries, &st->marked, &st->marked_nets,
	    &st->evicted, &st->bytes);
	st->tarpitted = g->ntarpitted;
	st->hot_domains = guard_dom_hot_count(g->dom);
	guard_unlock(g);
}

static void
guard_key_init(struct guard *g)
{
	uint64_t	k[2];

	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		/* No entropy yet (early boot): still keyed per process. */
		k[0] = (uint64_t)(uintptr_t)g ^ 0x9e3779b97f4a7c15ULL;
		k[1] = (uint64_t)(uintptr_t)&k ^ 0xc2b2ae3d27d4eb4fULL;
	}
	g->key.k0 = k[0];
	g->key.k1 = k[1];
}

/* An error-checking lock: taking it twice on one thread (a callback
 * run under it) is a panic, not a silent deadlock. */
static int
guard_lock_init(struct guard *g)
{
	pthread_mutexattr_t	a;
	int			rc;

	if (pthread_mutexattr_init(&a) != 0)
		return -1;
	rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK) != 0 ||
	    pthread_mutex_init(&g->mu, &a) != 0 ? -1 : 0;
	pthread_mutexattr_destroy(&a);
	return rc;
}

struct guard *
guard_new(const struct guard_conf *c)
{
	struct guard	*g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return NULL;
	if (guard_lock_init(g) == -1) {
		free(g);
		return NULL;
	}
	g->conf = *c;
	guard_key_init(g);
	g->mem = guard_mem_new(c->max_clients, c->window_ms, &g->key,
	    guard_log_expired, " reason=evicted");
	g->dom = guard_dom_new(&g->key);
	if (g->mem == NULL || g->dom == NULL) {
		guard_free(g);
		return NULL;
	}
	return g;
}

void
guard_set_conf(struct guard *g, const struct guard_conf *c)
{
	guard_lock(g);
	g->conf = *c;
	guard_mem_set_limits(g->mem, c->max_clients, c->window_ms);
	guard_unlock(g);
}

void
guard_set_fleet(struct guard *g, struct fleet *f)
{
	guard_lock(g);
	g->fleet = f;
	if (f != NULL)
		fleet_hash_key(f, &g->fleet_key.k0, &g->fleet_key.k1);
	guard_unlock(g);
}

void
guard_peer_hello(struct guard *g, const struct sockaddr *sa)
{
	struct guard_peer	p;
	char			src[FLEET_SRC_MAX];

	guard_lock(g);
	if (g->fleet != NULL && guard_peer_get(g, sa, &p)) {
		guard_net_src(&p.host, src, sizeof(src));
		fleet_want(g->fleet, src, GUARD_FLEET_REFRESH_MS);
		guard_net_src(&p.net, src, sizeof(src));
		fleet_want(g->fleet, src, GUARD_FLEET_REFRESH_MS);
	}
	guard_unlock(g);
}

/* No other thread may use the guard any more. */
void
guard_free(struct guard *g)
{
	if (g == NULL)
		return;
	guard_mem_free(g->mem);
	guard_dom_free(g->dom);
	pthread_mutex_destroy(&g->mu);
	free(g);
}
