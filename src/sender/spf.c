/*
 * spf.c - SPF check_host() (RFC 7208 4-6) as an explicit state machine
 * over a resolver function table: one DNS question at a time, each answer
 * moves the evaluation on until it has a result.
 * Owns: record selection (4.5), term parsing with the whole record checked
 * before any term runs (4.6), every mechanism and modifier, include and
 * redirect frames, the budget (10 lookups, 2 void lookups, 10 MX/PTR
 * names; 4.6.4), the explanation (6.2), %{p} validation (5.5).
 * Never: sockets, timers, clocks (the caller's deadline ends an
 * evaluation through spf_eval_expire()), more than one query in flight.
 * Untrusted: every record and DNS answer, the sender and HELO names.
 */
#include <sys/socket.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../dns/dns_msg.h"
#include "spf.h"

#define SPF_FRAMES_MAX	(SPF_LOOKUPS_MAX + 2)	/* includes nest by lookups */

enum spf_kind {
	T_ALL, T_INCLUDE, T_A, T_MX, T_PTR, T_IP4, T_IP6, T_EXISTS,
	T_REDIRECT, T_EXP, T_MODIFIER,
};

struct spf_term {
	uint8_t		kind;
	char		qual;		/* + - ~ ? */
	uint16_t	off, len;	/* the term in the record */
	uint16_t	doff, dlen;	/* its domain-spec; dlen 0: none */
	uint8_t		cidr4, cidr6;
	uint8_t		addr[16];	/* ip4, ip6 */
};

struct spf_frame {
	char		domain[SPF_DOMAIN_MAX + 1];	/* <domain> */
	char		rec[SPF_RECORD_MAX + 1];
	size_t		reclen;
	struct spf_term	t[SPF_TERMS_MAX];
	size_t		nt, next;	/* terms; the one running */
	int		redirect, exp;	/* term index, -1: none */
	bool		include;	/* an include's target: none -> permerror */
	bool		redirected;	/* a redirect's target: the same */
	bool		counted;	/* t[next]'s lookup is already counted */
};

enum spf_state {
	S_RECORD,	/* TXT of the top frame's domain */
	S_ADDR,		/* A/AAAA of an "a" target, A of an "exists" target */
	S_MX,		/* MX of an "mx" target */
	S_MX_ADDR,	/* A/AAAA of names[k] */
	S_PTR,		/* PTR of the client address */
	S_PTR_ADDR,	/* A/AAAA of names[k], to validate it */
	S_EXP,		/* TXT of the exp= target */
	S_DONE,
};

/* After the %{p} look-up, where the evaluation goes on. */
enum spf_resume { R_TERMS, R_EXP_DOMAIN, R_EXP_TEXT };

struct spf_eval {
	struct dns_lookup	 r;
	uint64_t		 id;
	spf_done_fn		*done;
	void			*arg;
	enum spf_state		 st;
	int			 family;
	uint8_t			 ip[16];
	char			 local[SPF_SENDER_MAX], sdomain[256];
	char			 helo[256], receiver[256];
	time_t			 now;
	/* frames made as includes nest: most records need one */
	struct spf_frame	*f[SPF_FRAMES_MAX];
	size_t			 depth;		/* f[depth - 1] runs */
	char			 target[SPF_DOMAIN_MAX + 1];
	char			 names[SPF_NAMES_MAX][256];
	bool			 valid[SPF_NAMES_MAX];
	size_t			 nnames, k;
	bool			 ptr_macro;	/* S_PTR* is for %{p} */
	enum spf_resume		 resume;
	bool			 have_p;
	char			 pname[256];
	char			 expl[SPF_RECORD_MAX + 1];	/* exp TXT, as is */
	struct spf_outcome	 out;
};

static const char *const spf_names[] = {
	[SPF_NONE] = "none", [SPF_NEUTRAL] = "neutral", [SPF_PASS] = "pass",
	[SPF_FAIL] = "fail", [SPF_SOFTFAIL] = "softfail",
	[SPF_TEMPERROR] = "temperror", [SPF_PERMERROR] = "permerror",
};

static bool	spf_domain_ok(const char *);
static bool	spf_spec_ok(const char *, size_t);
static bool	spf_cidr(const char *, size_t, unsigned, uint8_t *);
static void	spf_cut_cidr(const char *, size_t *, uint8_t *, uint8_t *,
		    bool *, bool *);
static int	spf_parse_term(struct spf_frame *, const char *, size_t,
		    char *, size_t);
static int	spf_parse(struct spf_frame *, char *, size_t);
static void	spf_finish(struct spf_eval *, enum spf_result, const char *,
		    ...) __attribute__((format(printf, 3, 4)));
static void	spf_ask(struct spf_eval *, enum spf_state, const char *,
		    uint16_t);
static void	spf_answer(void *, uint64_t, const struct dns_rrset *);
static void	spf_fetch(struct spf_eval *, const char *, bool, bool);
static void	spf_record(struct spf_eval *, const struct dns_rrset *);
static void	spf_run(struct spf_eval *);
static int	spf_target(struct spf_eval *, const struct spf_frame *,
		    const struct spf_term *, enum spf_resume);
static void	spf_ptr_start(struct spf_eval *, bool);
static void	spf_ptr_next(struct spf_eval *);
static void	spf_ptr_end(struct spf_eval *);
static bool	spf_addr_match(const struct spf_eval *,
		    const struct dns_rrset *, const struct spf_term *);
static bool	spf_void(struct spf_eval *, const struct dns_rrset *);
static void	spf_next(struct spf_eval *);
static void	spf_match(struct spf_eval *, const struct spf_term *);
static void	spf_frame_done(struct spf_eval *, enum spf_result);
static void	spf_exp_start(struct spf_eval *);
static void	spf_exp_text(struct spf_eval *);
static void	spf_macro_ctx(const struct spf_eval *, struct spf_macro_ctx *);
static bool	spf_is_sub(const char *, const char *);
static void	spf_copy(char *, size_t, const char *);

/* Copy what fits of src, NUL-terminated; a longer value is cut. */
static void
spf_copy(char *dst, size_t len, const char *src)
{
	size_t	n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

const char *
spf_result_name(enum spf_result r)
{
	if ((size_t)r >= sizeof(spf_names) / sizeof(spf_names[0]))
		return "?";
	return spf_names[r];
}

bool
spf_result_parse(const char *s, enum spf_result *r)
{
	size_t	i;

	for (i = 0; i < sizeof(spf_names) / sizeof(spf_names[0]); i++)
		if (strcasecmp(s, spf_names[i]) == 0) {
			*r = (enum spf_result)i;
			return true;
		}
	return false;
}

/*
 * RFC 7208 4.3: a domain we check must be a multi-label name with labels
 * of 1..63 octets and at most 253 in all (one trailing dot allowed); an
 * address literal is not one.
 */
static bool
spf_domain_ok(const char *d)
{
	size_t	len = strlen(d), label = 0, i, labels = 1;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_DOMAIN_MAX || d[0] == '[')
		return false;
	for (i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (++label > DNS_MSG_LABEL_MAX)
			return false;
	}
	return label > 0 && labels > 1;
}

/*
 * domain-spec = macro-string domain-end; domain-end = "." toplabel ["."]
 * or a macro-expand (4.6.1, 7.1).
 */
static bool
spf_spec_ok(const char *s, size_t len)
{
	size_t	i, end, start;
	bool	last_macro = false, alpha = false, dash = false;
	const char *close;

	if (len == 0 || !spf_macro_valid(s, len, false))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			last_macro = false;
			continue;
		}
		last_macro = true;
		if (s[i + 1] == '{') {
			close = memchr(s + i, '}', len - i);
			i = (size_t)(close - s);
		} else
			i++;
	}
	if (last_macro)
		return true;
	end = len;
	if (s[end - 1] == '.')
		end--;
	for (start = end; start > 0 && s[start - 1] != '.'; start--)
		continue;
	if (start == 0 || start == end)
		return false;		/* no "." toplabel */
	if (!((s[start] >= 'a' && s[start] <= 'z') ||
	    (s[start] >= 'A' && s[start] <= 'Z') ||
	    (s[start] >= '0' && s[start] <= '9')) || s[end - 1] == '-')
		return false;
	for (i = start; i < end; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z'))
			alpha = true;
		else if (s[i] == '-')
			dash = true;
		else if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return alpha || dash;
}

/* A CIDR length: digits without a leading zero, at most max. */
static bool
spf_cidr(const char *s, size_t len, unsigned max, uint8_t *out)
{
	unsigned	v = 0;
	size_t		i;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (uint8_t)v;
	return true;
}

/*
 * dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ], taken
 * from the end of s[0..*len): "//N" and then "/N" when what follows the
 * slashes is all digits.  *len shrinks to what is left; *bad when digits
 * are there but not a valid length.
 */
static void
spf_cut_cidr(const char *s, size_t *len, uint8_t *c4, uint8_t *c6,
    bool *has, bool *bad)
{
	size_t	n = *len, i;

	*has = *bad = false;
	for (i = n; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--)
		continue;
	if (i >= 2 && i < n && s[i - 1] == '/' && s[i - 2] == '/') {
		*has = true;
		if (!spf_cidr(s + i, n - i, 128, c6))
			*bad = true;
		n = i - 2;
		for (i = n; i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9'; i--)
			continue;
	}
	if (i >= 1 && s[i - 1] == '/' && !(i >= 2 && s[i - 2] == '/')) {
		*has = true;
		if (!spf_cidr(s + i, n - i, 32, c4))
			*bad = true;
		n = i - 1;
	}
	*len = n;
}

/* One term at t[0..len) of f->rec; 0, or -1 with why. */
static int
spf_parse_term(struct spf_frame *f, const char *t, size_t len, char *why,
    size_t whylen)
{
	static const struct { const char *name; enum spf_kind kind; } mech[] = {
		{ "all", T_ALL }, { "include", T_INCLUDE }, { "a", T_A },
		{ "mx", T_MX }, { "ptr", T_PTR }, { "ip4", T_IP4 },
		{ "ip6", T_IP6 }, { "exists", T_EXISTS },
	};
	struct spf_term	*term;
	size_t		 i = 0, nlen, rlen;
	const char	*rest;
	char		 ipbuf[64];
	bool		 has, bad;
	const char	*slash;

	if (f->nt == SPF_TERMS_MAX) {
		snprintf(why, whylen, "more than %d terms", SPF_TERMS_MAX);
		return -1;
	}
	term = &f->t[f->nt];
	memset(term, 0, sizeof(*term));
	term->off = (uint16_t)(t - f->rec);
	term->len = (uint16_t)len;
	term->qual = '+';
	term->cidr4 = 32;
	term->cidr6 = 128;
	if (strchr("+-~?", t[0]) != NULL) {
		term->qual = t[0];
		i = 1;
	}
	for (nlen = i; nlen < len && t[nlen] != ':' && t[nlen] != '/' &&
	    t[nlen] != '='; nlen++)
		continue;
	rest = t + nlen;
	rlen = len - nlen;
	nlen -= i;
	if (rlen > 0 && rest[0] == '=') {	/* a modifier */
		if (i != 0 || nlen == 0 || !((t[0] >= 'a' && t[0] <= 'z') ||
		    (t[0] >= 'A' && t[0] <= 'Z')))
			goto bad;
		for (i = 0; i < nlen; i++)
			if (!((t[i] >= 'a' && t[i] <= 'z') ||
			    (t[i] >= 'A' && t[i] <= 'Z') ||
			    (t[i] >= '0' && t[i] <= '9') || t[i] == '-' ||
			    t[i] == '_' || t[i] == '.'))
				goto bad;
		term->doff = (uint16_t)(rest + 1 - f->rec);
		term->dlen = (uint16_t)(rlen - 1);
		if (nlen == 8 && strncasecmp(t, "redirect", 8) == 0)
			term->kind = T_REDIRECT;
		else if (nlen == 3 && strncasecmp(t, "exp", 3) == 0)
			term->kind = T_EXP;
		else
			term->kind = T_MODIFIER;
		if (term->kind == T_MODIFIER) {
			if (!spf_macro_valid(rest + 1, rlen - 1, false))
				goto bad;
		} else if (!spf_spec_ok(rest + 1, rlen - 1))
			goto bad;
		if (term->kind == T_REDIRECT || term->kind == T_EXP) {
			int	*slot = term->kind == T_REDIRECT ?
				    &f->redirect : &f->exp;

			if (*slot != -1) {
				snprintf(why, whylen, "%.*s= given twice",
				    (int)nlen, t);
				return -1;
			}
			*slot = (int)f->nt;
		}
		f->nt++;
		return 0;
	}
	for (i = 0; i < sizeof(mech) / sizeof(mech[0]); i++)
		if (strlen(mech[i].name) == nlen &&
		    strncasecmp(t + (rest - t - nlen), mech[i].name, nlen) == 0)
			break;
	if (i == sizeof(mech) / sizeof(mech[0]))
		goto bad;
	term->kind = (uint8_t)mech[i].kind;
	switch (term->kind) {
	case T_ALL:
		if (rlen != 0)
			goto bad;
		break;
	case T_INCLUDE:
	case T_EXISTS:
	case T_PTR:
		if (rlen == 0 && term->kind == T_PTR)
			break;
		if (rlen < 2 || rest[0] != ':' || !spf_spec_ok(rest + 1,
		    rlen - 1))
			goto bad;
		term->doff = (uint16_t)(rest + 1 - f->rec);
		term->dlen = (uint16_t)(rlen - 1);
		break;
	case T_A:
	case T_MX:
		spf_cut_cidr(rest, &rlen, &term->cidr4, &term->cidr6, &has,
		    &bad);
		if (bad)
			goto bad;
		if (rlen == 0)
			break;
		if (rlen < 2 || rest[0] != ':' || !spf_spec_ok(rest + 1,
		    rlen - 1))
			goto bad;
		term->doff = (uint16_t)(rest + 1 - f->rec);
		term->dlen = (uint16_t)(rlen - 1);
		break;
	case T_IP4:
	case T_IP6:
		if (rlen < 2 || rest[0] != ':')
			goto bad;
		rest++;
		rlen--;
		slash = memchr(rest, '/', rlen);
		nlen = slash != NULL ? (size_t)(slash - rest) : rlen;
		if (nlen == 0 || nlen >= sizeof(ipbuf))
			goto bad;
		memcpy(ipbuf, rest, nlen);
		ipbuf[nlen] = '\0';
		if (inet_pton(term->kind == T_IP4 ? AF_INET : AF_INET6, ipbuf,
		    term->addr) != 1)
			goto bad;
		if (slash != NULL && !spf_cidr(slash + 1, rlen - nlen - 1,
		    term->kind == T_IP4 ? 32 : 128, term->kind == T_IP4 ?
		    &term->cidr4 : &term->cidr6))
			goto bad;
		break;
	}
	f->nt++;
	return 0;
bad:
	snprintf(why, whylen, "bad term \"%.*s\"", (int)(len > 60 ? 60 : len),
	    t);
	return -1;
}

/* rec is "v=spf1" and its terms (4.5); the whole record is checked. */
static int
spf_parse(struct spf_frame *f, char *why, size_t whylen)
{
	size_t	i, start;

	f->nt = f->next = 0;
	f->redirect = f->exp = -1;
	f->counted = false;
	for (i = 0; i < f->reclen; i++)
		if ((unsigned char)f->rec[i] > 0x7e ||
		    (unsigned char)f->rec[i] < 0x20) {
			snprintf(why, whylen, "record not in 7-bit ASCII");
			return -1;
		}
	for (i = 6; i < f->reclen;) {
		if (f->rec[i] == ' ') {
			i++;
			continue;
		}
		if (f->rec[i - 1] != ' ') {
			snprintf(why, whylen, "no space before a term");
			return -1;
		}
		for (start = i; i < f->reclen && f->rec[i] != ' '; i++)
			continue;
		if (spf_parse_term(f, f->rec + start, i - start, why, whylen) ==
		    -1)
			return -1;
	}
	return 0;
}

struct spf_eval *
spf_eval_start(const struct dns_lookup *r, const struct spf_request *req,
    uint64_t id, spf_done_fn *done, void *arg, struct spf_outcome *out)
{
	struct spf_eval	*ev;
	const char	*at, *from = req->mailfrom;
	char		 mf[SPF_SENDER_MAX];
	size_t		 n;

	memset(out, 0, sizeof(*out));
	if (from == NULL || from[0] == '\0') {
		out->helo_identity = true;
		snprintf(mf, sizeof(mf), "postmaster@%s",
		    req->helo != NULL ? req->helo : "");
	} else
		snprintf(mf, sizeof(mf), "%s", from);
	at = strrchr(mf, '@');
	spf_copy(out->domain, sizeof(out->domain), at != NULL ? at + 1 : mf);
	if (strlen(at != NULL ? at + 1 : mf) >= sizeof(out->domain)) {
		out->result = SPF_NONE;
		snprintf(out->why, sizeof(out->why), "domain too long");
		return NULL;
	}
	n = strlen(out->domain);
	if (n > 0 && out->domain[n - 1] == '.')
		out->domain[n - 1] = '\0';
	if (at == mf || at == NULL)	/* 4.3: no local-part: postmaster */
		snprintf(out->sender, sizeof(out->sender), "postmaster@%s",
		    out->domain);
	else
		snprintf(out->sender, sizeof(out->sender), "%s", mf);
	if (!spf_domain_ok(out->domain)) {
		out->result = SPF_NONE;
		snprintf(out->why, sizeof(out->why),
		    "not a domain SPF can check");
		return NULL;
	}
	if ((ev = calloc(1, sizeof(*ev))) == NULL ||
	    (ev->f[0] = calloc(1, sizeof(*ev->f[0]))) == NULL) {
		free(ev);
		out->result = SPF_TEMPERROR;
		snprintf(out->why, sizeof(out->why), "out of memory");
		return NULL;
	}
	ev->r = *r;
	ev->id = id;
	ev->done = done;
	ev->arg = arg;
	ev->out = *out;
	ev->family = req->family;
	memcpy(ev->ip, req->ip, 16);
	if (req->family == AF_INET6 && memcmp(req->ip,
	    "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		ev->family = AF_INET;	/* IPv4-mapped: the IPv4 address */
		memmove(ev->ip, req->ip + 12, 4);
		memset(ev->ip + 4, 0, 12);
	}
	at = strrchr(ev->out.sender, '@');
	n = (size_t)(at - ev->out.sender);
	memcpy(ev->local, ev->out.sender, n);
	ev->local[n] = '\0';
	snprintf(ev->sdomain, sizeof(ev->sdomain), "%s", ev->out.domain);
	snprintf(ev->helo, sizeof(ev->helo), "%s",
	    req->helo != NULL ? req->helo : "");
	snprintf(ev->receiver, sizeof(ev->receiver), "%s",
	    req->receiver != NULL ? req->receiver : "");
	ev->now = req->now;
	spf_fetch(ev, ev->out.domain, false, false);
	return ev;
}

static void
spf_eval_free(struct spf_eval *ev)
{
	size_t	i;

	for (i = 0; i < SPF_FRAMES_MAX && ev->f[i] != NULL; i++)
		free(ev->f[i]);
	free(ev);
}

void
spf_eval_cancel(struct spf_eval *ev)
{
	if (ev == NULL)
		return;
	ev->r.cancel(ev->r.ctx, ev->id);
	spf_eval_free(ev);
}

void
spf_eval_expire(struct spf_eval *ev)
{
	ev->r.cancel(ev->r.ctx, ev->id);
	spf_finish(ev, SPF_TEMPERROR, "deadline passed");
}

static void
spf_finish(struct spf_eval *ev, enum spf_result res, const char *fmt, ...)
{
	va_list	ap;

	ev->st = S_DONE;
	ev->out.result = res;
	if (fmt != NULL) {
		va_start(ap, fmt);
		(void)vsnprintf(ev->out.why, sizeof(ev->out.why), fmt, ap);
		va_end(ap);
	}
	ev->done(ev->arg, &ev->out);
	spf_eval_free(ev);
}

static void
spf_ask(struct spf_eval *ev, enum spf_state st, const char *name,
    uint16_t qtype)
{
	ev->st = st;
	ev->r.query(ev->r.ctx, name, qtype, ev->id, spf_answer, ev);
}

static void
spf_answer(void *arg, uint64_t id, const struct dns_rrset *s)
{
	struct spf_eval		*ev = arg;
	struct spf_frame	*f = ev->f[ev->depth - 1];
	struct spf_term		*t = &f->t[f->next];
	size_t			 i;

	(void)id;
	switch (ev->st) {
	case S_RECORD:
		spf_record(ev, s);
		return;
	case S_ADDR:
		if (s->status == DNS_TEMPFAIL) {
			spf_finish(ev, SPF_TEMPERROR, "%s", s->why);
			return;
		}
		if (spf_void(ev, s))
			return;
		if (t->kind == T_EXISTS ? s->n > 0 : spf_addr_match(ev, s, t))
			spf_match(ev, t);
		else
			spf_next(ev);
		return;
	case S_MX:
		if (s->status == DNS_TEMPFAIL) {
			spf_finish(ev, SPF_TEMPERROR, "%s", s->why);
			return;
		}
		if (spf_void(ev, s))
			return;
		if (s->total > SPF_NAMES_MAX) {
			spf_finish(ev, SPF_PERMERROR, "%s has %zu MX records "
			    "(limit %d)", ev->target, s->total, SPF_NAMES_MAX);
			return;
		}
		ev->nnames = ev->k = 0;
		for (i = 0; i < s->n; i++)
			if (s->rr[i].name[0] != '\0')
				memcpy(ev->names[ev->nnames++], s->rr[i].name,
				    sizeof(ev->names[0]));
		if (ev->nnames == 0) {
			spf_next(ev);
			return;
		}
		spf_ask(ev, S_MX_ADDR, ev->names[0], ev->family == AF_INET ?
		    DNS_MSG_T_A : DNS_MSG_T_AAAA);
		return;
	case S_MX_ADDR:
		if (s->status == DNS_TEMPFAIL) {
			spf_finish(ev, SPF_TEMPERROR, "%s", s->why);
			return;
		}
		if (spf_addr_match(ev, s, t)) {
			spf_match(ev, t);
			return;
		}
		if (++ev->k == ev->nnames) {
			spf_next(ev);
			return;
		}
		spf_ask(ev, S_MX_ADDR, ev->names[ev->k],
		    ev->family == AF_INET ? DNS_MSG_T_A : DNS_MSG_T_AAAA);
		return;
	case S_PTR:
		/* 5.5: a DNS error on the PTR look-up is "no match" */
		ev->nnames = ev->k = 0;
		if (!ev->ptr_macro && s->status != DNS_TEMPFAIL &&
		    spf_void(ev, s))
			return;
		for (i = 0; s->status == DNS_OK && i < s->n &&
		    ev->nnames < SPF_NAMES_MAX; i++)
			if (s->rr[i].name[0] != '\0') {
				ev->valid[ev->nnames] = false;
				memcpy(ev->names[ev->nnames++], s->rr[i].name,
				    sizeof(ev->names[0]));
			}
		spf_ptr_next(ev);
		return;
	case S_PTR_ADDR:
		/* 5.5: a DNS error here skips the name */
		for (i = 0; s->status == DNS_OK && i < s->n; i++)
			if (memcmp(s->rr[i].addr, ev->ip,
			    ev->family == AF_INET ? 4 : 16) == 0)
				ev->valid[ev->k] = true;
		ev->k++;
		spf_ptr_next(ev);
		return;
	case S_EXP:
		ev->expl[0] = '\0';
		if (s->status == DNS_OK && s->n == 1 && !s->rr[0].txtlong)
			spf_copy(ev->expl, sizeof(ev->expl), s->rr[0].txt);
		if (ev->expl[0] == '\0') {
			spf_finish(ev, SPF_FAIL, NULL);
			return;
		}
		spf_exp_text(ev);
		return;
	case S_DONE:
		return;
	}
}

/*
 * Fetch the record of domain into a frame: a new one for an include, the
 * same one for a redirect (its exp= and terms replace the old ones).
 */
static void
spf_fetch(struct spf_eval *ev, const char *domain, bool include,
    bool redirect)
{
	struct spf_frame	*f;

	if (!redirect) {
		if (ev->f[ev->depth] == NULL && (ev->f[ev->depth] =
		    calloc(1, sizeof(*f))) == NULL) {
			spf_finish(ev, SPF_TEMPERROR, "out of memory");
			return;
		}
		ev->depth++;
	}
	f = ev->f[ev->depth - 1];
	snprintf(f->domain, sizeof(f->domain), "%s", domain);
	if (!redirect)
		f->include = include;
	f->redirected = redirect;
	f->nt = f->next = 0;
	spf_ask(ev, S_RECORD, f->domain, DNS_MSG_T_TXT);
}

/* 4.5: exactly one TXT record starting "v=spf1" and then SP or its end. */
static void
spf_record(struct spf_eval *ev, const struct dns_rrset *s)
{
	struct spf_frame	*f = ev->f[ev->depth - 1];
	const struct dns_rr	*pick = NULL;
	size_t			 i, n = 0;
	char			 why[128];

	if (s->status == DNS_TEMPFAIL) {
		spf_finish(ev, SPF_TEMPERROR, "%s", s->why);
		return;
	}
	for (i = 0; s->status == DNS_OK && i < s->n; i++)
		if (s->rr[i].txtlen >= 6 &&
		    strncasecmp(s->rr[i].txt, "v=spf1", 6) == 0 &&
		    (s->rr[i].txtlen == 6 || s->rr[i].txt[6] == ' ')) {
			pick = &s->rr[i];
			n++;
		}
	if (n > 1) {
		spf_finish(ev, SPF_PERMERROR, "%s has %zu SPF records",
		    f->domain, n);
		return;
	}
	if (n == 0) {
		if (ev->depth > 1 || f->redirected)
			spf_finish(ev, SPF_PERMERROR, "%s%s has no SPF record",
			    f->include ? "include:" : "redirect=", f->domain);
		else
			spf_finish(ev, SPF_NONE, "%s has no SPF record",
			    f->domain);
		return;
	}
	if (pick->txtlong || pick->txtlen > SPF_RECORD_MAX) {
		spf_finish(ev, SPF_PERMERROR, "SPF record of %s too long",
		    f->domain);
		return;
	}
	memcpy(f->rec, pick->txt, pick->txtlen);
	f->rec[pick->txtlen] = '\0';
	f->reclen = pick->txtlen;
	/* a NUL inside the text is not ASCII text either */
	if (strlen(f->rec) != f->reclen) {
		spf_finish(ev, SPF_PERMERROR, "SPF record of %s not in 7-bit "
		    "ASCII", f->domain);
		return;
	}
	if (spf_parse(f, why, sizeof(why)) == -1) {
		spf_finish(ev, SPF_PERMERROR, "%s: %s", f->domain, why);
		return;
	}
	spf_run(ev);
}

static void
spf_macro_ctx(const struct spf_eval *ev, struct spf_macro_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->sender = ev->out.sender;
	c->local = ev->local;
	c->sdomain = ev->sdomain;
	c->domain = ev->f[ev->depth - 1]->domain;
	c->helo = ev->helo;
	c->pname = ev->have_p ? ev->pname : NULL;
	c->receiver = ev->receiver;
	c->family = ev->family;
	c->ip = ev->ip;
	c->now = ev->now;
}

/*
 * ev->target = the term's domain (its expanded domain-spec, or <domain>),
 * cut from the left to SPF_DOMAIN_MAX (7.3).  0; 1: the %{p} look-up has
 * started and the evaluation resumes as told; -1: finished (permerror).
 */
static int
spf_target(struct spf_eval *ev, const struct spf_frame *f,
    const struct spf_term *t, enum spf_resume resume)
{
	struct spf_macro_ctx	 c;
	char			 buf[SPF_EXPAND_MAX];
	const char		*p;
	size_t			 len;
	enum spf_macro_rc	 rc;

	if (t->dlen == 0) {
		snprintf(ev->target, sizeof(ev->target), "%s", f->domain);
		return 0;
	}
	spf_macro_ctx(ev, &c);
	rc = spf_macro_expand(&c, f->rec + t->doff, t->dlen, false, buf,
	    sizeof(buf), &len);
	if (rc == SPF_MACRO_NEED_P) {
		ev->resume = resume;
		spf_ptr_start(ev, true);
		return 1;
	}
	if (rc != SPF_MACRO_OK && resume == R_EXP_DOMAIN) {
		spf_finish(ev, SPF_FAIL, NULL);	/* 6.2: no explanation */
		return -1;
	}
	if (rc != SPF_MACRO_OK) {
		spf_finish(ev, SPF_PERMERROR, "%s: macro %s in \"%.*s\"",
		    f->domain, rc == SPF_MACRO_TOOLONG ? "too long" : "error",
		    (int)(t->len > 60 ? 60 : t->len), f->rec + t->off);
		return -1;
	}
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
	for (p = buf; len > SPF_DOMAIN_MAX && (p = strchr(p, '.')) != NULL;) {
		p++;
		len = strlen(p);
	}
	if (p == NULL) {
		if (resume == R_EXP_DOMAIN)
			spf_finish(ev, SPF_FAIL, NULL);
		else
			spf_finish(ev, SPF_PERMERROR, "%s: expanded name too "
			    "long", f->domain);
		return -1;
	}
	spf_copy(ev->target, sizeof(ev->target), p);	/* fits: len <= 253 */
	return 0;
}

/* Run terms of the top frame from f->next until one needs DNS or ends. */
static void
spf_run(struct spf_eval *ev)
{
	struct spf_frame	*f;
	struct spf_term		*t;
	int			 rc;
	bool			 hit;

	for (;;) {
		f = ev->f[ev->depth - 1];
		while (f->next < f->nt && f->t[f->next].kind >= T_REDIRECT)
			f->next++;	/* modifiers do not run in order */
		if (f->next == f->nt) {
			if (f->redirect == -1) {
				spf_frame_done(ev, SPF_NEUTRAL);
				return;
			}
			t = &f->t[f->redirect];
		} else
			t = &f->t[f->next];
		if (t->kind == T_IP4 || t->kind == T_IP6 || t->kind == T_ALL) {
			hit = t->kind == T_ALL;
			if (t->kind == T_IP4 && ev->family == AF_INET) {
				uint32_t a, b, m;

				memcpy(&a, ev->ip, 4);
				memcpy(&b, t->addr, 4);
				m = t->cidr4 == 0 ? 0 :
				    htonl(~0u << (32 - t->cidr4));
				hit = (a & m) == (b & m);
			} else if (t->kind == T_IP6 && ev->family == AF_INET6) {
				unsigned	bits = t->cidr6, i;

				hit = true;
				for (i = 0; i < 16 && bits > 0; i++, bits =
				    bits > 8 ? bits - 8 : 0) {
					uint8_t	m = (uint8_t)(bits >= 8 ? 0xff :
						    0xff << (8 - bits));

					if ((ev->ip[i] & m) != (t->addr[i] & m))
						hit = false;
				}
			}
			if (hit) {
				spf_match(ev, t);
				return;
			}
			f->next++;
			continue;
		}
		/* every other term costs one of the 10 look-ups */
		if (!f->counted) {
			f->counted = true;
			if (++ev->out.lookups > SPF_LOOKUPS_MAX) {
				spf_finish(ev, SPF_PERMERROR, "more than %d DNS "
				    "look-ups", SPF_LOOKUPS_MAX);
				return;
			}
		}
		if ((rc = spf_target(ev, f, t, R_TERMS)) != 0)
			return;
		switch (t->kind) {
		case T_A:
			spf_ask(ev, S_ADDR, ev->target, ev->family == AF_INET ?
			    DNS_MSG_T_A : DNS_MSG_T_AAAA);
			return;
		case T_EXISTS:
			spf_ask(ev, S_ADDR, ev->target, DNS_MSG_T_A);
			return;
		case T_MX:
			spf_ask(ev, S_MX, ev->target, DNS_MSG_T_MX);
			return;
		case T_PTR:
			spf_ptr_start(ev, false);
			return;
		case T_INCLUDE:
			if (ev->depth == SPF_FRAMES_MAX) {	/* not reached */
				spf_finish(ev, SPF_PERMERROR, "includes too deep");
				return;
			}
			spf_fetch(ev, ev->target, true, false);
			return;
		case T_REDIRECT:
			f->redirect = -1;
			spf_fetch(ev, ev->target, false, true);
			return;
		}
		spf_finish(ev, SPF_PERMERROR, "internal: term kind %u", t->kind);
		return;
	}
}

/* The PTR names of the client address, for "ptr" or for %{p}. */
static void
spf_ptr_start(struct spf_eval *ev, bool macro)
{
	static const char	hex[] = "0123456789abcdef";
	char			name[128];
	size_t			n = 0;
	int			i;

	ev->ptr_macro = macro;
	if (ev->family == AF_INET)
		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa",
		    ev->ip[3], ev->ip[2], ev->ip[1], ev->ip[0]);
	else {
		for (i = 15; i >= 0; i--) {
			name[n++] = hex[ev->ip[i] & 15];
			name[n++] = '.';
			name[n++] = hex[ev->ip[i] >> 4];
			name[n++] = '.';
		}
		memcpy(name + n, "ip6.arpa", sizeof("ip6.arpa"));
	}
	spf_ask(ev, S_PTR, name, DNS_MSG_T_PTR);
}

static void
spf_ptr_next(struct spf_eval *ev)
{
	if (ev->k < ev->nnames) {
		spf_ask(ev, S_PTR_ADDR, ev->names[ev->k],
		    ev->family == AF_INET ? DNS_MSG_T_A : DNS_MSG_T_AAAA);
		return;
	}
	spf_ptr_end(ev);
}

/* a is b or a name below it, case aside */
static bool
spf_is_sub(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b);

	if (la == lb)
		return strcasecmp(a, b) == 0;
	return la > lb && a[la - lb - 1] == '.' &&
	    strcasecmp(a + la - lb, b) == 0;
}

/* Every PTR name looked up: the mechanism's match, or %{p}. */
static void
spf_ptr_end(struct spf_eval *ev)
{
	struct spf_frame	*f = ev->f[ev->depth - 1];
	const char		*pick = NULL;
	size_t			 i;

	if (!ev->ptr_macro) {
		for (i = 0; i < ev->nnames; i++)
			if (ev->valid[i] && spf_is_sub(ev->names[i], ev->target)) {
				spf_match(ev, &f->t[f->next]);
				return;
			}
		spf_next(ev);
		return;
	}
	/* 7.3: a name in <domain> first, then any validated name */
	for (i = 0; i < ev->nnames && pick == NULL; i++)
		if (ev->valid[i] && spf_is_sub(ev->names[i], f->domain))
			pick = ev->names[i];
	for (i = 0; i < ev->nnames && pick == NULL; i++)
		if (ev->valid[i])
			pick = ev->names[i];
	snprintf(ev->pname, sizeof(ev->pname), "%s",
	    pick != NULL ? pick : "unknown");
	ev->have_p = true;
	switch (ev->resume) {
	case R_TERMS:
		spf_run(ev);
		return;
	case R_EXP_DOMAIN:
		spf_exp_start(ev);
		return;
	case R_EXP_TEXT:
		spf_exp_text(ev);
		return;
	}
}

/* 4.6.4: an answer with no records, or NXDOMAIN; true: finished. */
static bool
spf_void(struct spf_eval *ev, const struct dns_rrset *s)
{
	if (s->status == DNS_OK && s->n > 0)
		return false;
	if (++ev->out.voids > SPF_VOIDS_MAX) {
		spf_finish(ev, SPF_PERMERROR, "more than %d void look-ups",
		    SPF_VOIDS_MAX);
		return true;
	}
	return false;
}

static bool
spf_addr_match(const struct spf_eval *ev, const struct dns_rrset *s,
    const struct spf_term *t)
{
	unsigned	bits = ev->family == AF_INET ? t->cidr4 : t->cidr6, b, i;
	size_t		 k;
	bool		 hit;
	uint8_t		 m;

	for (k = 0; s->status == DNS_OK && k < s->n; k++) {
		if (s->rr[k].type != (ev->family == AF_INET ? DNS_MSG_T_A :
		    DNS_MSG_T_AAAA))
			continue;
		hit = true;
		for (i = 0, b = bits; i < 16 && b > 0; i++, b = b > 8 ?
		    b - 8 : 0) {
			m = (uint8_t)(b >= 8 ? 0xff : 0xff << (8 - b));
			if ((ev->ip[i] & m) != (s->rr[k].addr[i] & m))
				hit = false;
		}
		if (hit)
			return true;
	}
	return false;
}

/* The running term did not match: the next one. */
static void
spf_next(struct spf_eval *ev)
{
	struct spf_frame	*f = ev->f[ev->depth - 1];

	f->next++;
	f->counted = false;
	spf_run(ev);
}

static void
spf_match(struct spf_eval *ev, const struct spf_term *t)
{
	struct spf_frame	*f = ev->f[ev->depth - 1];
	enum spf_result		 r;

	switch (t->qual) {
	case '-': r = SPF_FAIL; break;
	case '~': r = SPF_SOFTFAIL; break;
	case '?': r = SPF_NEUTRAL; break;
	default: r = SPF_PASS; break;
	}
	if (ev->depth == 1)
		snprintf(ev->out.mech, sizeof(ev->out.mech), "%.*s",
		    (int)t->len, f->rec + t->off);
	spf_frame_done(ev, r);
}

/* The top frame has its result: the caller's include, or the end. */
static void
spf_frame_done(struct spf_eval *ev, enum spf_result r)
{
	struct spf_frame	*f;

	if (ev->depth == 1) {
		if (ev->out.mech[0] == '\0')
			snprintf(ev->out.mech, sizeof(ev->out.mech), "default");
		if (r == SPF_FAIL && ev->f[0]->exp != -1) {
			spf_exp_start(ev);
			return;
		}
		spf_finish(ev, r, "%s: %s", ev->f[0]->domain,
		    spf_result_name(r));
		return;
	}
	ev->depth--;
	f = ev->f[ev->depth - 1];
	switch (r) {
	case SPF_PASS:
		spf_match(ev, &f->t[f->next]);
		return;
	case SPF_FAIL:
	case SPF_SOFTFAIL:
	case SPF_NEUTRAL:
		spf_next(ev);
		return;
	default:	/* errors end everything where they happen */
		spf_finish(ev, SPF_PERMERROR, "include: %s", spf_result_name(r));
		return;
	}
}

/* 6.2: the explanation of a fail; any trouble means none. */
static void
spf_exp_start(struct spf_eval *ev)
{
	struct spf_frame	*f = ev->f[0];
	int			 rc;

	if (snprintf(ev->out.why, sizeof(ev->out.why), "%s: fail",
	    f->domain) >= (int)sizeof(ev->out.why))
		ev->out.why[sizeof(ev->out.why) - 1] = '\0';	/* cut: a log */
	rc = spf_target(ev, f, &f->t[f->exp], R_EXP_DOMAIN);
	if (rc == 1)
		return;
	if (rc == -1)
		return;		/* finished: fail without an explanation */
	spf_ask(ev, S_EXP, ev->target, DNS_MSG_T_TXT);
}

static void
spf_exp_text(struct spf_eval *ev)
{
	struct spf_macro_ctx	 c;
	char			 buf[SPF_EXPAND_MAX];
	size_t			 len;
	enum spf_macro_rc	 rc;

	spf_macro_ctx(ev, &c);
	rc = spf_macro_expand(&c, ev->expl, strlen(ev->expl), true, buf,
	    sizeof(buf), &len);
	if (rc == SPF_MACRO_NEED_P) {
		ev->resume = R_EXP_TEXT;
		spf_ptr_start(ev, true);
		return;
	}
	if (rc == SPF_MACRO_OK)
		spf_copy(ev->out.expl, sizeof(ev->out.expl), buf);
	spf_finish(ev, SPF_FAIL, NULL);
}
