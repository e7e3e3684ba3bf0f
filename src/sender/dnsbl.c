/*
 * dnsbl.c - DNS list checks of a client address (see dnsbl.h).
 * Owns: the dnsbl_sites parser, query names, answer classes and filters,
 * the score, the per-loop cache (fixed table, in-flight sharing) and the
 * per-client check.
 * Never: timers, sockets, globals; callbacks come from the resolver's
 * answers or from dnsbl_check_expire(), never from inside a start call.
 * Untrusted: config text (bounded), DNS answers.  RFC 5782.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnsbl.h"
#include "../dns/dns_msg.h"

#define DNSBL_QID_TOP	(1ull << 63)	/* never a session id (ids.c) */
#define DNSBL_QID_SLOT	0xffffffull

enum { E_EMPTY, E_PENDING, E_DONE };

struct dnsbl_wait {
	struct dnsbl_check	 *c;
	size_t			  zi;
	struct dnsbl_wait	 *next, **prevp;
	bool			  linked;
};

struct dnsbl_entry {
	uint8_t			 ip[16];
	int			 family;
	uint64_t		 zkey;		/* hash of the zone name */
	int			 state;
	uint64_t		 expires_ms;
	uint64_t		 qid;
	struct dnsbl_zanswer	 ans;
	struct dnsbl_wait	*waiters;
};

struct dnsbl_cache {
	struct dns_lookup	 r;
	struct dnsbl_entry	*e;
	size_t			 nsets;
	uint64_t		 seq;
};

struct dnsbl_check {
	struct dnsbl_cache	*cache;
	const struct dnsbl_list	*l;
	dnsbl_done_fn		*done;
	void			*arg;
	struct dnsbl_outcome	*out;
	struct dnsbl_zanswer	 za[DNSBL_SITES_MAX];
	struct dnsbl_wait	 w[DNSBL_SITES_MAX];
	size_t			 npending;
	unsigned		 asked, shared, cached;
};

static void	dnsbl_err(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	dnsbl_add(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
dnsbl_err(char *why, size_t len, const char *fmt, ...)
{
	va_list	ap;

	if (why == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* Append ",text" (or "text") if it fits with room for ",...", else
 * ",..." once: a cut list says so. */
static void
dnsbl_add(char *buf, size_t cap, const char *fmt, ...)
{
	char	item[DNSBL_QNAME_MAX + 32];
	size_t	n = strlen(buf), k;
	va_list	ap;

	if (n >= 4 && strcmp(buf + n - 4, ",...") == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(item, sizeof(item), fmt, ap);
	va_end(ap);
	k = strlen(item);
	if (n + 1 + k + 5 <= cap)
		snprintf(buf + n, cap - n, "%s%s", n ? "," : "", item);
	else if (n + 5 <= cap)
		snprintf(buf + n, cap - n, ",...");
}

/* ---- the dnsbl_sites parser ---- */

static bool
dnsbl_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

/* A list's domain: labels of letters, digits, '-' and '_', 1..63 each;
 * one trailing dot dropped; lower-cased into out. */
static int
dnsbl_zone(const char *p, size_t len, char *out, char *why, size_t wl)
{
	size_t	i, lab = 0;
	char	c;

	if (len > 0 && p[len - 1] == '.')
		len--;
	if (len == 0 || len > DNSBL_ZONE_MAX) {
		dnsbl_err(why, wl, "a list's domain must have 1 to %d bytes",
		    DNSBL_ZONE_MAX);
		return -1;
	}
	for (i = 0; i < len; i++) {
		c = p[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c == '.') {
			if (lab == 0)
				break;
			lab = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_') {
			if (++lab > 63)
				break;
		} else
			break;
		out[i] = c;
	}
	if (i < len || lab == 0) {
		dnsbl_err(why, wl, "\"%.*s\" is not a list's domain name",
		    (int)(len > 64 ? 64 : len), p);
		return -1;
	}
	out[len] = '\0';
	return 0;
}

/* A decimal 0..max at *pp (at most 3 digits); -1 if none. */
static int
dnsbl_num(const char **pp, const char *end, int max)
{
	const char	*p = *pp;
	int		 v = 0, nd = 0;

	while (p < end && *p >= '0' && *p <= '9' && nd < 4) {
		v = v * 10 + (*p++ - '0');
		nd++;
	}
	if (nd == 0 || nd > 3 || v > max)
		return -1;
	*pp = p;
	return v;
}

static void
dnsbl_bits(uint8_t bits[32], int lo, int hi)
{
	int	v;

	for (v = lo; v <= hi; v++)
		bits[v / 8] |= (uint8_t)(1u << (v % 8));
}

/* One octet of a filter: N, or [N..M;N;...]. */
static int
dnsbl_octet(const char **pp, const char *end, uint8_t bits[32])
{
	const char	*p = *pp;
	int		 lo, hi;

	if (p < end && *p != '[') {
		if ((lo = dnsbl_num(&p, end, 255)) == -1)
			return -1;
		dnsbl_bits(bits, lo, lo);
		*pp = p;
		return 0;
	}
	if (p == end)
		return -1;
	p++;
	for (;;) {
		if ((lo = dnsbl_num(&p, end, 255)) == -1)
			return -1;
		hi = lo;
		if (end - p >= 2 && p[0] == '.' && p[1] == '.') {
			p += 2;
			if ((hi = dnsbl_num(&p, end, 255)) == -1 || hi < lo)
				return -1;
		}
		dnsbl_bits(bits, lo, hi);
		if (p < end && *p == ';') {
			p++;
			continue;
		}
		if (p < end && *p == ']')
			break;
		return -1;
	}
	*pp = p + 1;
	return 0;
}

static int
dnsbl_filter(const char *p, const char *end, struct dnsbl_site *st,
    char *why, size_t wl)
{
	const char	*start = p;
	int		 i;

	for (i = 0; i < 4; i++) {
		if (i > 0 && (p == end || *p++ != '.'))
			break;
		if (dnsbl_octet(&p, end, st->oct[i]) == -1)
			break;
	}
	if (i < 4 || p != end) {
		dnsbl_err(why, wl, "\"%.*s\" is not an answer filter like "
		    "127.0.0.2 or 127.0.0.[2..11;20]", (int)(end - start > 64 ?
		    64 : end - start), start);
		return -1;
	}
	st->filtered = true;
	return 0;
}

static int
dnsbl_weight(const char *p, const char *end, int *w, char *why, size_t wl)
{
	const char	*q = p;
	bool		 neg = q < end && *q == '-';
	int		 v;

	if (neg || (q < end && *q == '+'))
		q++;
	v = dnsbl_num(&q, end, DNSBL_WEIGHT_MAX);
	if (v <= 0 || q != end) {
		dnsbl_err(why, wl, "\"*%.*s\": a weight is a whole number from "
		    "-%d to %d, not 0", (int)(end - p > 16 ? 16 : end - p), p,
		    DNSBL_WEIGHT_MAX, DNSBL_WEIGHT_MAX);
		return -1;
	}
	*w = neg ? -v : v;
	return 0;
}

/* "zone[=filter][*weight]" */
static int
dnsbl_entry_parse(const char *p, size_t len, struct dnsbl_site *st,
    char *why, size_t wl)
{
	const char	*end = p + len, *eq, *star;

	eq = memchr(p, '=', len);
	star = memchr(p, '*', len);
	if (eq != NULL && star != NULL && star < eq) {
		dnsbl_err(why, wl, "the filter (=...) comes before the weight "
		    "(*...)");
		return -1;
	}
	if (dnsbl_zone(p, (size_t)((eq ? eq : star ? star : end) - p),
	    st->zone, why, wl) == -1)
		return -1;
	st->weight = 1;
	if (eq != NULL && dnsbl_filter(eq + 1, star ? star : end, st, why,
	    wl) == -1)
		return -1;
	if (star != NULL && dnsbl_weight(star + 1, end, &st->weight, why,
	    wl) == -1)
		return -1;
	return 0;
}

int
dnsbl_list_parse(const char *s, size_t len, struct dnsbl_list *l, char *why,
    size_t wl)
{
	struct dnsbl_site	*st;
	size_t			 i = 0, j, k;

	memset(l, 0, sizeof(*l));
	if (len > DNSBL_TEXT_MAX) {
		dnsbl_err(why, wl, "longer than %d bytes", DNSBL_TEXT_MAX);
		return -1;
	}
	for (;;) {
		while (i < len && dnsbl_sep(s[i]))
			i++;
		if (i == len)
			return 0;
		for (j = i; j < len && !dnsbl_sep(s[j]); j++)
			;
		if (l->n == DNSBL_SITES_MAX) {
			dnsbl_err(why, wl, "more than %d lists",
			    DNSBL_SITES_MAX);
			return -1;
		}
		st = &l->site[l->n];
		if (dnsbl_entry_parse(s + i, j - i, st, why, wl) == -1) {
			memset(l, 0, sizeof(*l));
			return -1;
		}
		for (k = 0; k < l->nzones; k++)
			if (strcmp(l->zones[k], st->zone) == 0)
				break;
		if (k == l->nzones)
			l->zones[l->nzones++] = st->zone;
		st->zi = k;
		l->n++;
		i = j;
	}
}

/* ---- query names and answers ---- */

int
dnsbl_query_name(int family, const uint8_t ip[16], const char *zone,
    char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	static const uint8_t	 mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				    0xff, 0xff };
	char			 rev[72];
	size_t			 k = 0;
	int			 i, n;

	if (family == AF_INET6 && memcmp(ip, mapped, 12) == 0) {
		family = AF_INET;
		ip += 12;
	}
	if (family == AF_INET)
		k = (size_t)snprintf(rev, sizeof(rev), "%u.%u.%u.%u.", ip[3],
		    ip[2], ip[1], ip[0]);
	else if (family == AF_INET6)
		for (i = 15; i >= 0; i--) {
			rev[k++] = hex[ip[i] & 0x0f];
			rev[k++] = '.';
			rev[k++] = hex[ip[i] >> 4];
			rev[k++] = '.';
		}
	else
		return -1;
	rev[k] = '\0';
	n = snprintf(out, outlen, "%s%s", rev, zone);
	if (n < 0 || (size_t)n >= outlen || n > DNSBL_QNAME_MAX)
		return -1;
	return n;
}

enum dnsbl_code
dnsbl_code_class(const uint8_t a[4])
{
	if (a[0] != 127)
		return DNSBL_CODE_BOGUS;
	if (a[1] == 255 && a[2] == 255)
		return DNSBL_CODE_ERROR;
	return DNSBL_CODE_LISTING;
}

bool
dnsbl_site_match(const struct dnsbl_site *st, const uint8_t a[4])
{
	int	i;

	if (dnsbl_code_class(a) != DNSBL_CODE_LISTING)
		return false;
	if (!st->filtered)
		return true;
	for (i = 0; i < 4; i++)
		if (!(st->oct[i][a[i] / 8] & (1u << (a[i] % 8))))
			return false;
	return true;
}

static const char *const dnsbl_zv_names[DNSBL_V_MAX] = {
	[DNSBL_V_LISTED] = "listed", [DNSBL_V_UNLISTED] = "unlisted",
	[DNSBL_V_TIMEOUT] = "timeout", [DNSBL_V_ERROR] = "error",
};

const char *
dnsbl_zverdict_name(enum dnsbl_zverdict v)
{
	return v < DNSBL_V_MAX ? dnsbl_zv_names[v] : "?";
}

/* The entries of zone zi against its answer; the zone's verdict. */
static enum dnsbl_zverdict
dnsbl_score_zone(const struct dnsbl_list *l, size_t zi,
    const struct dnsbl_zanswer *za, struct dnsbl_outcome *o)
{
	const struct dnsbl_site	*st;
	const uint8_t		*a;
	bool			 valid = false, pos = false, neg = false;
	size_t			 i, k;

	for (k = 0; k < za->naddrs; k++) {
		a = za->addrs[k];
		if (dnsbl_code_class(a) == DNSBL_CODE_LISTING)
			valid = true;
		else
			dnsbl_add(o->alert, sizeof(o->alert), "%s=%u.%u.%u.%u",
			    l->zones[zi], a[0], a[1], a[2], a[3]);
	}
	for (i = 0; i < l->n; i++) {
		st = &l->site[i];
		if (st->zi != zi)
			continue;
		for (k = 0; k < za->naddrs; k++) {
			a = za->addrs[k];
			if (!dnsbl_site_match(st, a))
				continue;
			o->score += st->weight;
			if (st->weight < 0)
				neg = true;
			else
				pos = true;
			dnsbl_add(o->detail, sizeof(o->detail),
			    "%s=%u.%u.%u.%u*%d", st->zone, a[0], a[1], a[2],
			    a[3], st->weight);
			break;		/* an entry counts once */
		}
	}
	if (pos)
		dnsbl_add(o->listed, sizeof(o->listed), "%s", l->zones[zi]);
	if (neg) {
		o->allowed = true;
		dnsbl_add(o->allow, sizeof(o->allow), "%s", l->zones[zi]);
	}
	if (pos || neg)
		return DNSBL_V_LISTED;
	return valid || za->naddrs == 0 ? DNSBL_V_UNLISTED : DNSBL_V_ERROR;
}

void
dnsbl_score(const struct dnsbl_list *l, const struct dnsbl_zanswer *za,
    struct dnsbl_outcome *o)
{
	size_t	zi;

	memset(o, 0, sizeof(*o));
	for (zi = 0; zi < l->nzones; zi++) {
		o->za[zi] = za[zi];
		switch (za[zi].res) {
		case DNSBL_Z_ANSWER:
			o->zv[zi] = dnsbl_score_zone(l, zi, &za[zi], o);
			break;
		case DNSBL_Z_UNLISTED:
			o->zv[zi] = DNSBL_V_UNLISTED;
			break;
		case DNSBL_Z_ERROR:
			o->zv[zi] = DNSBL_V_ERROR;
			break;
		default:	/* pending at the end is a timeout */
			o->zv[zi] = DNSBL_V_TIMEOUT;
			break;
		}
		if (o->zv[zi] == DNSBL_V_TIMEOUT || o->zv[zi] == DNSBL_V_ERROR)
			dnsbl_add(o->skipped, sizeof(o->skipped), "%s:%s",
			    l->zones[zi], dnsbl_zverdict_name(o->zv[zi]));
	}
}

/* ---- the resolver table over dns.h ---- */

/* ---- the cache ---- */

static uint64_t
dnsbl_now_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
dnsbl_hash(const void *p, size_t n, uint64_t h)
{
	const uint8_t	*b = p;
	size_t		 i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;		/* FNV-1a */
	}
	return h;
}

struct dnsbl_cache *
dnsbl_cache_new(const struct dns_lookup *r, size_t max)
{
	struct dnsbl_cache	*c;
	size_t			 nsets = (max + DNSBL_CACHE_WAYS - 1) /
				    DNSBL_CACHE_WAYS;

	if (nsets == 0)
		nsets = 1;
	if (nsets * DNSBL_CACHE_WAYS > DNSBL_QID_SLOT ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->e = calloc(nsets * DNSBL_CACHE_WAYS, sizeof(*c->e))) == NULL) {
		free(c);
		return NULL;
	}
	c->r = *r;
	c->nsets = nsets;
	return c;
}

void
dnsbl_cache_free(struct dnsbl_cache *c)
{
	size_t	i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nsets * DNSBL_CACHE_WAYS; i++)
		if (c->e[i].state == E_PENDING)
			c->r.cancel(c->r.ctx, c->e[i].qid);
	free(c->e);
	free(c);
}

static void
dnsbl_wait_unlink(struct dnsbl_wait *w)
{
	if (!w->linked)
		return;
	if (w->next != NULL)
		w->next->prevp = w->prevp;
	*w->prevp = w->next;
	w->linked = false;
}

static void
dnsbl_wait_link(struct dnsbl_entry *e, struct dnsbl_wait *w)
{
	w->next = e->waiters;
	if (w->next != NULL)
		w->next->prevp = &w->next;
	w->prevp = &e->waiters;
	e->waiters = w;
	w->linked = true;
}

static void	dnsbl_check_zone(struct dnsbl_check *, size_t,
		    const struct dnsbl_zanswer *);

/* A record set became an answer: its kind, its codes, how long kept. */
static uint64_t
dnsbl_answer_fill(struct dnsbl_zanswer *za, const struct dns_rrset *rs)
{
	uint32_t	ttl = DNSBL_TTL_MAX_S;
	size_t		i;

	memset(za, 0, sizeof(*za));
	if (rs->status == DNS_NOTFOUND) {
		za->res = DNSBL_Z_UNLISTED;
		return DNSBL_TTL_MIN_S;
	}
	if (rs->status != DNS_OK) {
		za->res = DNSBL_Z_ERROR;
		return DNSBL_ERROR_TTL_S;
	}
	for (i = 0; i < rs->n; i++) {
		if (rs->rr[i].type != DNS_MSG_T_A)
			continue;
		if (rs->rr[i].ttl < ttl)
			ttl = rs->rr[i].ttl;
		if (za->naddrs < DNSBL_ADDRS_MAX)
			memcpy(za->addrs[za->naddrs++], rs->rr[i].addr, 4);
	}
	za->res = za->naddrs > 0 ? DNSBL_Z_ANSWER : DNSBL_Z_UNLISTED;
	return ttl < DNSBL_TTL_MIN_S ? DNSBL_TTL_MIN_S : ttl;
}

static void
dnsbl_cache_answer(void *arg, uint64_t id, const struct dns_rrset *rs)
{
	struct dnsbl_cache	*c = arg;
	struct dnsbl_entry	*e;
	struct dnsbl_wait	*w;
	size_t			 slot = (size_t)(id & DNSBL_QID_SLOT);
	uint64_t		 ttl;

	if (slot >= c->nsets * DNSBL_CACHE_WAYS)
		return;
	e = &c->e[slot];
	if (e->state != E_PENDING || e->qid != id)
		return;
	ttl = dnsbl_answer_fill(&e->ans, rs);
	e->state = E_DONE;
	e->expires_ms = dnsbl_now_ms() + ttl * 1000;
	while ((w = e->waiters) != NULL) {
		dnsbl_wait_unlink(w);
		dnsbl_check_zone(w->c, w->zi, &e->ans);	/* may free w's check */
	}
}

/*
 * The entry for (ip, zone): a fresh answer (E_DONE), one in flight
 * (E_PENDING), or a new one just asked (*fresh); NULL if its set is all
 * in flight.
 */
static struct dnsbl_entry *
dnsbl_cache_get(struct dnsbl_cache *c, int family, const uint8_t ip[16],
    const char *zone, const char *qname, bool *fresh)
{
	struct dnsbl_entry	*set, *e, *pick = NULL;
	uint64_t		 zkey = dnsbl_hash(zone, strlen(zone),
				    0xcbf29ce484222325ull);
	uint64_t		 h = dnsbl_hash(ip, 16,
				    zkey ^ (uint64_t)family);
	uint64_t		 now = dnsbl_now_ms();
	size_t			 i;

	*fresh = false;
	set = &c->e[(h % c->nsets) * DNSBL_CACHE_WAYS];
	for (i = 0; i < DNSBL_CACHE_WAYS; i++) {
		e = &set[i];
		if (e->state != E_EMPTY && e->zkey == zkey &&
		    e->family == family && memcmp(e->ip, ip, 16) == 0) {
			if (e->state == E_PENDING || e->expires_ms > now)
				return e;
			pick = e;		/* expired: ask again here */
			break;
		}
		if (e->state == E_PENDING)
			continue;
		if (pick == NULL || e->state == E_EMPTY ||
		    (pick->state != E_EMPTY && e->expires_ms <
		    pick->expires_ms))
			pick = e;
	}
	if (pick == NULL)
		return NULL;
	memset(pick, 0, sizeof(*pick));
	memcpy(pick->ip, ip, 16);
	pick->family = family;
	pick->zkey = zkey;
	pick->state = E_PENDING;
	*fresh = true;
	pick->qid = DNSBL_QID_TOP | (++c->seq << 24) | (uint64_t)(pick - c->e);
	c->r.query(c->r.ctx, qname, DNS_MSG_T_A, pick->qid, dnsbl_cache_answer,
	    c);
	return pick;
}

/* ---- one client's check ---- */

static void
dnsbl_check_finish(struct dnsbl_check *k)
{
	size_t	i;

	for (i = 0; i < k->l->nzones; i++)
		dnsbl_wait_unlink(&k->w[i]);
	dnsbl_score(k->l, k->za, k->out);
	k->out->asked = k->asked;
	k->out->shared = k->shared;
	k->out->cached = k->cached;
	k->done(k->arg, k->out);
	free(k);
}

static void
dnsbl_check_zone(struct dnsbl_check *k, size_t zi,
    const struct dnsbl_zanswer *za)
{
	k->za[zi] = *za;
	if (--k->npending == 0)
		dnsbl_check_finish(k);
}

struct dnsbl_check *
dnsbl_check_start(struct dnsbl_cache *c, const struct dnsbl_list *l,
    int family, const uint8_t ip[16], dnsbl_done_fn *done, void *arg,
    struct dnsbl_outcome *out)
{
	struct dnsbl_check	*k;
	struct dnsbl_entry	*e;
	char			 qname[DNSBL_QNAME_MAX + 1];
	uint8_t			 key[16] = { 0 };
	size_t			 zi;
	bool			 fresh;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		struct dnsbl_zanswer	err[DNSBL_SITES_MAX];

		memset(err, 0, sizeof(err));
		for (zi = 0; zi < DNSBL_SITES_MAX; zi++)
			err[zi].res = DNSBL_Z_ERROR;	/* every list skipped */
		dnsbl_score(l, err, out);
		return NULL;
	}
	memcpy(key, ip, family == AF_INET ? 4 : 16);
	k->cache = c;
	k->l = l;
	k->done = done;
	k->arg = arg;
	k->out = out;
	for (zi = 0; zi < l->nzones; zi++) {
		k->za[zi].res = DNSBL_Z_ERROR;
		if (c == NULL || dnsbl_query_name(family, key, l->zones[zi],
		    qname, sizeof(qname)) == -1 ||
		    (e = dnsbl_cache_get(c, family, key, l->zones[zi],
		    qname, &fresh)) == NULL)
			continue;
		if (e->state == E_DONE) {
			k->za[zi] = e->ans;
			k->cached++;
			continue;
		}
		if (fresh)
			k->asked++;
		else
			k->shared++;	/* asked before this check */
		k->za[zi].res = DNSBL_Z_PENDING;
		k->w[zi].c = k;
		k->w[zi].zi = zi;
		dnsbl_wait_link(e, &k->w[zi]);
		k->npending++;
	}
	if (k->npending > 0)
		return k;
	dnsbl_score(l, k->za, out);
	out->cached = k->cached;
	free(k);
	return NULL;
}

void
dnsbl_check_expire(struct dnsbl_check *k)
{
	size_t	zi;

	for (zi = 0; zi < k->l->nzones; zi++)
		if (k->za[zi].res == DNSBL_Z_PENDING)
			k->za[zi].res = DNSBL_Z_TIMEOUT;
	dnsbl_check_finish(k);	/* the questions stay in the cache */
}

void
dnsbl_check_cancel(struct dnsbl_check *k)
{
	size_t	zi;

	for (zi = 0; zi < k->l->nzones; zi++)
		dnsbl_wait_unlink(&k->w[zi]);
	free(k);
}
