/*
 * dkim_parse.c - the pure parts of DKIM (RFC 6376): the tag-list (3.2),
 * DKIM-Signature values (3.5), key records (3.6.1), and simple and
 * relaxed canonicalisation of header fields and of the body (3.4).
 * Owns: every bound named in dkim.h for these.
 * Never: I/O, allocation, globals, crypto (dkim.c does that).
 * Untrusted: all of it.  RFC 6376, 8301 (no rsa-sha1), 8463 (ed25519).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dkim.h"

static bool	dkim_wsp(uint8_t);
static bool	dkim_fws(uint8_t);
static long	dkim_b64(const uint8_t *, size_t, uint8_t *, size_t);
static bool	dkim_eq(const struct dkim_tag *, const char *);
static bool	dkim_list_has(const uint8_t *, size_t, const char *);
static bool	dkim_domain_copy(const uint8_t *, size_t, char *, size_t);
static bool	dkim_number(const uint8_t *, size_t, uint64_t *);

static bool
dkim_wsp(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* FWS bytes (RFC 5322 3.2.2): white space and the CRLF of a fold */
static bool
dkim_fws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
dkim_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
dkim_alnum(uint8_t c)
{
	return dkim_alpha(c) || (c >= '0' && c <= '9');
}

enum parse_rc
dkim_tags_parse(const uint8_t *p, size_t len, struct dkim_tags *out)
{
	struct dkim_tag	*t;
	size_t		 i = 0, k, last;

	out->n = 0;
	for (;;) {
		while (i < len && dkim_fws(p[i]))
			i++;
		if (i == len)	/* empty, or after a final ';' */
			return out->n > 0 ? PARSE_OK : PARSE_BAD;
		if (!dkim_alpha(p[i]))
			return PARSE_BAD;
		if (out->n == DKIM_TAGS_MAX)
			return PARSE_TOOLONG;
		t = &out->t[out->n];
		t->name = p + i;
		while (i < len && (dkim_alnum(p[i]) || p[i] == '_'))
			i++;
		t->nlen = (size_t)(p + i - t->name);
		while (i < len && dkim_fws(p[i]))
			i++;
		if (i == len || p[i] != '=')
			return PARSE_BAD;
		t->voff = ++i;
		while (i < len && dkim_fws(p[i]))
			i++;
		t->value = p + i;
		last = i;
		for (; i < len && p[i] != ';'; i++) {
			if (dkim_fws(p[i]))
				continue;
			if (p[i] < 0x21 || p[i] == 0x7f)
				return PARSE_BAD;	/* VALCHAR, or UTF-8 */
			last = i + 1;
		}
		t->vlen = last > (size_t)(t->value - p) ? last -
		    (size_t)(t->value - p) : 0;
		t->vend = i;
		for (k = 0; k < out->n; k++)	/* 3.2: a tag twice is bad */
			if (out->t[k].nlen == t->nlen &&
			    memcmp(out->t[k].name, t->name, t->nlen) == 0)
				return PARSE_BAD;
		out->n++;
		if (i == len)
			return PARSE_OK;
		i++;		/* ';' */
	}
}

const struct dkim_tag *
dkim_tags_get(const struct dkim_tags *tl, const char *name)
{
	size_t	i, n = strlen(name);

	for (i = 0; i < tl->n; i++)
		if (tl->t[i].nlen == n && memcmp(tl->t[i].name, name, n) == 0)
			return &tl->t[i];
	return NULL;
}

static bool
dkim_eq(const struct dkim_tag *t, const char *s)
{
	return t->vlen == strlen(s) && strncasecmp((const char *)t->value, s,
	    t->vlen) == 0;
}

/* Base64 with FWS anywhere (3.5 b=, bh=; 3.6.1 p=); bytes, or -1. */
static long
dkim_b64(const uint8_t *p, size_t len, uint8_t *out, size_t outlen)
{
	uint32_t	acc = 0;
	size_t		i, n = 0, bits = 0, pad = 0;
	int		v;

	for (i = 0; i < len; i++) {
		uint8_t	c = p[i];

		if (dkim_fws(c))
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0)
			return -1;	/* data after padding */
		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == outlen)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (pad > 2 || bits >= 6)
		return -1;
	return (long)n;
}

/* Is name (case-insensitive) an item of the colon-separated list? */
static bool
dkim_list_has(const uint8_t *p, size_t len, const char *name)
{
	size_t	i = 0, s, e, n = strlen(name);

	while (i <= len) {
		s = i;
		while (i < len && p[i] != ':')
			i++;
		e = i;
		while (s < e && dkim_fws(p[s]))
			s++;
		while (e > s && dkim_fws(p[e - 1]))
			e--;
		if (e - s == n && strncasecmp((const char *)p + s, name, n) == 0)
			return true;
		i++;
	}
	return false;
}

/* A domain (or selector) of letters, digits, '-', '_', '.': lower case. */
static bool
dkim_domain_copy(const uint8_t *p, size_t len, char *out, size_t outlen)
{
	size_t	i, label = 0;

	if (len == 0 || len >= outlen || p[0] == '.' || p[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		uint8_t	c = p[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (dkim_alnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else
			return false;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[len] = '\0';
	return true;
}

static bool
dkim_number(const uint8_t *p, size_t len, uint64_t *v)
{
	size_t	i;

	*v = 0;
	if (len == 0 || len > 76)	/* 3.5: 1*76DIGIT */
		return false;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (*v > (UINT64_MAX - 9) / 10)
			*v = UINT64_MAX;	/* beyond any message */
		else
			*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	return true;
}

static bool
dkim_canon_name(const uint8_t *p, size_t len, enum dkim_canon *c)
{
	if (len == 6 && strncasecmp((const char *)p, "simple", 6) == 0)
		*c = DKIM_SIMPLE;
	else if (len == 7 && strncasecmp((const char *)p, "relaxed", 7) == 0)
		*c = DKIM_RELAXED;
	else
		return false;
	return true;
}

/* c=header[/body] (3.5); the default is simple/simple */
static bool
dkim_sig_canon(const struct dkim_tag *t, struct dkim_sig *sig)
{
	const uint8_t	*slash;

	sig->hcanon = sig->bcanon = DKIM_SIMPLE;
	if (t == NULL)
		return true;
	slash = memchr(t->value, '/', t->vlen);
	if (slash == NULL)
		return dkim_canon_name(t->value, t->vlen, &sig->hcanon);
	return dkim_canon_name(t->value, (size_t)(slash - t->value),
	    &sig->hcanon) && dkim_canon_name(slash + 1, t->vlen -
	    (size_t)(slash + 1 - t->value), &sig->bcanon);
}

/* h= (3.5): names split at ':', FWS around them dropped */
static bool
dkim_sig_h(const struct dkim_tag *t, struct dkim_sig *sig)
{
	size_t	i = 0, s, e;

	sig->nh = 0;
	while (i <= t->vlen) {
		s = i;
		while (i < t->vlen && t->value[i] != ':')
			i++;
		e = i++;
		while (s < e && dkim_fws(t->value[s]))
			s++;
		while (e > s && dkim_fws(t->value[e - 1]))
			e--;
		if (e == s || sig->nh == DKIM_H_MAX)
			return false;
		sig->h[sig->nh].p = t->value + s;
		sig->h[sig->nh++].n = e - s;
	}
	return true;
}

/* i= (3.5): its domain is d= or below it; sets i_sub */
static bool
dkim_sig_i(const struct dkim_tag *t, struct dkim_sig *sig)
{
	char		 dom[DKIM_DOMAIN_MAX + 1];
	const uint8_t	*at;
	size_t		 n, dl = strlen(sig->d);

	sig->i_sub = false;
	if (t == NULL)
		return true;
	if ((at = memchr(t->value, '@', t->vlen)) == NULL)
		return false;
	n = t->vlen - (size_t)(at + 1 - t->value);
	if (!dkim_domain_copy(at + 1, n, dom, sizeof(dom)))
		return false;
	if (strcmp(dom, sig->d) == 0)
		return true;
	n = strlen(dom);
	sig->i_sub = true;
	return n > dl && dom[n - dl - 1] == '.' && strcmp(dom + n - dl,
	    sig->d) == 0;
}

/* The numbers: l=, t=, x= (3.5) */
static const char *
dkim_sig_numbers(const struct dkim_tags *tl, struct dkim_sig *sig)
{
	const struct dkim_tag	*t;

	if ((t = dkim_tags_get(tl, "l")) != NULL) {
		sig->has_l = true;
		if (!dkim_number(t->value, t->vlen, &sig->l))
			return "bad l= tag";
	}
	if ((t = dkim_tags_get(tl, "t")) != NULL) {
		sig->has_t = true;
		if (!dkim_number(t->value, t->vlen, &sig->t))
			return "bad t= tag";
	}
	if ((t = dkim_tags_get(tl, "x")) != NULL) {
		sig->has_x = true;
		if (!dkim_number(t->value, t->vlen, &sig->x))
			return "bad x= tag";
		if (sig->has_t && sig->x < sig->t)
			return "x= is before t=";
	}
	return NULL;
}

static const char *
dkim_sig_check(const struct dkim_tags *tl, struct dkim_sig *sig)
{
	static const char	*req[] = { "v", "a", "b", "bh", "d", "h", "s" };
	const struct dkim_tag	*t;
	long			 n;
	size_t			 i, k;

	for (i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (dkim_tags_get(tl, req[i]) == NULL)
			return "a required tag is missing";
	if (!dkim_eq(dkim_tags_get(tl, "v"), "1"))
		return "v= is not 1";
	t = dkim_tags_get(tl, "a");
	if (dkim_eq(t, "rsa-sha256"))
		sig->alg = DKIM_RSA_SHA256;
	else if (dkim_eq(t, "ed25519-sha256"))
		sig->alg = DKIM_ED25519_SHA256;
	else if (dkim_eq(t, "rsa-sha1"))
		return "rsa-sha1 is not accepted (RFC 8301)";
	else
		return "unknown algorithm";
	t = dkim_tags_get(tl, "b");
	if ((n = dkim_b64(t->value, t->vlen, sig->b, sizeof(sig->b))) <= 0)
		return "bad b= tag";
	sig->blen = (size_t)n;
	sig->boff = t->voff;
	sig->bend = t->vend;
	for (i = k = 0; i < t->vlen && k < 8; i++)
		if (!dkim_fws(t->value[i]))
			sig->b8[k++] = (char)t->value[i];
	sig->b8[k] = '\0';
	t = dkim_tags_get(tl, "bh");
	if ((n = dkim_b64(t->value, t->vlen, sig->bh, sizeof(sig->bh))) != 32)
		return "bad bh= tag";
	sig->bhlen = (size_t)n;
	if (!dkim_sig_canon(dkim_tags_get(tl, "c"), sig))
		return "bad c= tag";
	t = dkim_tags_get(tl, "d");
	if (!dkim_domain_copy(t->value, t->vlen, sig->d, sizeof(sig->d)) ||
	    strchr(sig->d, '.') == NULL)
		return "bad d= tag";
	t = dkim_tags_get(tl, "s");
	if (!dkim_domain_copy(t->value, t->vlen, sig->s, sizeof(sig->s)))
		return "bad s= tag";
	if (!dkim_sig_h(dkim_tags_get(tl, "h"), sig))
		return "bad h= tag";
	for (i = 0; i < sig->nh; i++)
		if (sig->h[i].n == 4 && strncasecmp((const char *)sig->h[i].p,
		    "from", 4) == 0)
			break;
	if (i == sig->nh)
		return "h= does not sign From";
	if (!dkim_sig_i(dkim_tags_get(tl, "i"), sig))
		return "i= is not within d=";
	if ((t = dkim_tags_get(tl, "q")) != NULL &&
	    !dkim_list_has(t->value, t->vlen, "dns/txt"))
		return "q= has no dns/txt";
	return dkim_sig_numbers(tl, sig);
}

enum dkim_result
dkim_sig_parse(const uint8_t *p, size_t len, struct dkim_sig *sig,
    const char **why)
{
	struct dkim_tags	tl;

	memset(sig, 0, sizeof(*sig));
	if (dkim_tags_parse(p, len, &tl) != PARSE_OK) {
		*why = "signature syntax";
		return DKIM_PERMERROR;
	}
	if ((*why = dkim_sig_check(&tl, sig)) != NULL)
		return DKIM_PERMERROR;
	return DKIM_NONE;
}

enum dkim_result
dkim_key_parse(const uint8_t *p, size_t len, struct dkim_key *k,
    const char **why)
{
	struct dkim_tags	 tl;
	const struct dkim_tag	*t;
	long			 n;

	memset(k, 0, sizeof(*k));
	*why = "key record syntax";
	if (dkim_tags_parse(p, len, &tl) != PARSE_OK)
		return DKIM_PERMERROR;
	/* 3.6.1: v=, if there, is first and DKIM1 */
	if ((t = dkim_tags_get(&tl, "v")) != NULL && (t != &tl.t[0] ||
	    !dkim_eq(t, "DKIM1"))) {
		*why = "key v= is not DKIM1";
		return DKIM_PERMERROR;
	}
	if ((t = dkim_tags_get(&tl, "h")) != NULL &&
	    !dkim_list_has(t->value, t->vlen, "sha256")) {
		*why = "key h= excludes sha256";
		return DKIM_PERMERROR;
	}
	if ((t = dkim_tags_get(&tl, "k")) != NULL && !dkim_eq(t, "rsa")) {
		if (!dkim_eq(t, "ed25519")) {
			*why = "unknown key type";
			return DKIM_PERMERROR;
		}
		k->ed25519 = true;
	}
	if ((t = dkim_tags_get(&tl, "s")) != NULL &&
	    !dkim_list_has(t->value, t->vlen, "*") &&
	    !dkim_list_has(t->value, t->vlen, "email")) {
		*why = "key is not for email";
		return DKIM_PERMERROR;
	}
	if ((t = dkim_tags_get(&tl, "t")) != NULL) {
		k->testing = dkim_list_has(t->value, t->vlen, "y");
		k->strict = dkim_list_has(t->value, t->vlen, "s");
	}
	if ((t = dkim_tags_get(&tl, "p")) == NULL) {
		*why = "key has no p=";
		return DKIM_PERMERROR;
	}
	if ((n = dkim_b64(t->value, t->vlen, k->p, sizeof(k->p))) < 0) {
		*why = "bad key p=";
		return DKIM_PERMERROR;
	}
	if ((k->plen = (size_t)n) == 0) {
		*why = "key revoked";
		return DKIM_PERMERROR;
	}
	*why = NULL;
	return DKIM_NONE;
}

/*
 * 3.4.1 simple: the field unchanged.  3.4.2 relaxed: name in lower case,
 * unfolded, runs of WSP as one SP, WSP at the end of the value and around
 * the colon removed, then CRLF.  Relaxed output is never longer than the
 * field plus CRLF.
 */
long
dkim_canon_header(enum dkim_canon c, const uint8_t *f, size_t len,
    uint8_t *out, size_t outlen)
{
	const uint8_t	*colon;
	size_t		 i, n = 0, nend;
	bool		 sp = false, started = false;

	if (c == DKIM_SIMPLE) {
		if (len > outlen)
			return -1;
		memcpy(out, f, len);
		return (long)len;
	}
	if ((colon = memchr(f, ':', len)) == NULL || len + 2 > outlen)
		return -1;
	nend = (size_t)(colon - f);
	while (nend > 0 && dkim_wsp(f[nend - 1]))
		nend--;
	for (i = 0; i < nend; i++)
		out[n++] = (uint8_t)(f[i] >= 'A' && f[i] <= 'Z' ? f[i] + 32 :
		    f[i]);
	out[n++] = ':';
	for (i = (size_t)(colon - f) + 1; i < len; i++) {
		if (f[i] == '\r' || f[i] == '\n')
			continue;	/* unfold */
		if (dkim_wsp(f[i])) {
			sp = true;
			continue;
		}
		if (sp && started)	/* none after the colon */
			out[n++] = ' ';
		sp = false;
		started = true;
		out[n++] = f[i];
	}
	out[n++] = '\r';
	out[n++] = '\n';
	return (long)n;
}

void
dkim_body_canon_init(struct dkim_body_canon *b, enum dkim_canon c,
    dkim_emit_fn *emit, void *arg)
{
	*b = (struct dkim_body_canon){ .canon = c, .bol = true,
	    .emit = emit, .arg = arg };
}

static void
dkim_body_crlfs(struct dkim_body_canon *b)
{
	static const uint8_t	crlf[2] = { '\r', '\n' };

	for (; b->pend > 0; b->pend--)
		b->emit(b->arg, crlf, 2);
}

/* One content byte (not the CRLF that ends a line). */
static void
dkim_body_byte(struct dkim_body_canon *b, uint8_t c)
{
	static const uint8_t	sp = ' ';

	if (b->canon == DKIM_RELAXED && dkim_wsp(c)) {
		b->wsp = true;		/* 3.4.4: one SP, or none at the end */
		return;
	}
	dkim_body_crlfs(b);		/* the empty lines were not the end */
	if (b->wsp)
		b->emit(b->arg, &sp, 1);
	b->wsp = false;
	b->emit(b->arg, &c, 1);
	b->bol = false;
}

static void
dkim_body_eol(struct dkim_body_canon *b)
{
	static const uint8_t	crlf[2] = { '\r', '\n' };

	b->wsp = false;
	if (b->bol) {
		b->pend++;	/* 3.4.3, 3.4.4: empty lines at the end go */
		return;
	}
	b->emit(b->arg, crlf, 2);
	b->any = true;
	b->bol = true;
}

void
dkim_body_canon_feed(struct dkim_body_canon *b, const uint8_t *p, size_t n)
{
	size_t	i, run;

	for (i = 0; i < n; i++) {
		if (b->cr) {
			b->cr = false;
			if (p[i] == '\n') {
				dkim_body_eol(b);
				continue;
			}
			dkim_body_byte(b, '\r');
		}
		if (p[i] == '\r') {
			b->cr = true;
			continue;
		}
		/* a run of plain bytes of a simple body goes out at once */
		if (b->canon == DKIM_SIMPLE && p[i] != '\n') {
			dkim_body_byte(b, p[i]);
			for (run = i + 1; run < n && p[run] != '\r'; run++)
				;
			if (run > i + 1)
				b->emit(b->arg, p + i + 1, run - i - 1);
			i = run - 1;
			continue;
		}
		dkim_body_byte(b, p[i]);
	}
}

void
dkim_body_canon_end(struct dkim_body_canon *b)
{
	static const uint8_t	crlf[2] = { '\r', '\n' };

	if (b->cr) {
		b->cr = false;
		dkim_body_byte(b, '\r');
	}
	if (!b->bol)		/* a last line without CRLF gets one */
		dkim_body_eol(b);
	/* 3.4.3: an empty simple body is one CRLF; relaxed: nothing */
	if (b->canon == DKIM_SIMPLE && !b->any)
		b->emit(b->arg, crlf, 2);
	b->pend = 0;
}
