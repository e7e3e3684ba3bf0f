/*
 * dkim.c - DKIM verification of one message (RFC 6376 6): the header
 * section kept as it streams in, signatures parsed at its end, the body
 * hashed on the fly (one state per distinct body canonicalisation and
 * l=), then per signature: expiry, body hash, key record, b=.
 * Owns: the message's DKIM state, the OpenSSL calls (SHA-256, RSA
 * PKCS#1 v1.5, Ed25519 per RFC 8463).
 * Never: sockets, timers, clocks, more than DKIM_SIGS_MAX signatures.
 * Untrusted: every byte of the message and every key record.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "../dns/dns_msg.h"
#include "dkim.h"

#define DKIM_BH_BUF	2048	/* canonical body bytes hashed at once */

struct dkim_bh {
	enum dkim_canon		 canon;
	bool			 has_l;
	uint64_t		 l;
	uint64_t		 n;		/* canonical bytes, all of them */
	EVP_MD_CTX		*md;
	struct dkim_body_canon	 bc;
	uint8_t			 buf[DKIM_BH_BUF];
	size_t			 buflen;
	uint8_t			 digest[32];
	bool			 failed;	/* OpenSSL said no */
};

struct dkim_one {
	struct dkim_msg		*m;
	struct dkim_sig		 sig;
	struct dkim_outcome	 out;
	size_t			 field;		/* its header field */
	int			 bh;		/* its body hash, -1: none */
	bool			 pending;	/* key asked, no answer yet */
};

struct dkim_field {
	size_t	off, len;		/* in head, with its CRLF */
	size_t	nlen;			/* the name, WSP before ':' cut */
};

struct dkim_msg {
	uint8_t			*head;
	size_t			 headlen, headcap, headmax;
	bool			 head_over;	/* more than headmax */
	bool			 in_body;
	bool			 ended;		/* dkim_msg_end() ran */
	unsigned		 lpos;		/* bytes of the line so far */
	uint8_t			 prev;
	struct dkim_field	*f;
	size_t			 nf;
	bool			 f_over;
	struct dkim_one		 sig[DKIM_SIGS_MAX];
	size_t			 nsig, found;
	struct dkim_bh		 bh[DKIM_SIGS_MAX];
	size_t			 nbh;
	struct dns_lookup	 r;
	uint64_t		 id;
	dkim_done_fn		*done;
	void			*arg;
	size_t			 npending;
};

static void	dkim_headers_end(struct dkim_msg *);
static void	dkim_key_answer(void *, uint64_t, const struct dns_rrset *);

static const char *dkim_names[] = {
	"none", "pass", "fail", "neutral", "policy", "temperror", "permerror",
};

const char *
dkim_result_name(enum dkim_result r)
{
	return (size_t)r < sizeof(dkim_names) / sizeof(dkim_names[0]) ?
	    dkim_names[r] : "permerror";
}

struct dkim_msg *
dkim_msg_new(size_t head_max)
{
	struct dkim_msg	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	m->headmax = head_max;
	return m;
}

void
dkim_msg_free(struct dkim_msg *m)
{
	size_t	i;

	if (m == NULL)
		return;
	dkim_verify_cancel(m);
	for (i = 0; i < m->nbh; i++)
		EVP_MD_CTX_free(m->bh[i].md);
	free(m->head);
	free(m->f);
	free(m);
}

/* Keep header bytes, up to headmax; beyond it the signatures fail. */
static void
dkim_head_add(struct dkim_msg *m, const uint8_t *p, size_t n)
{
	size_t	cap;
	uint8_t	*nh;

	if (m->head_over)
		return;
	if (n > m->headmax - m->headlen) {
		m->head_over = true;
		return;
	}
	if (m->headlen + n > m->headcap) {
		cap = m->headcap ? m->headcap : 4096;
		while (cap < m->headlen + n)
			cap *= 2;
		if (cap > m->headmax)
			cap = m->headmax;
		if ((nh = realloc(m->head, cap)) == NULL) {
			m->head_over = true;
			return;
		}
		m->head = nh;
		m->headcap = cap;
	}
	memcpy(m->head + m->headlen, p, n);
	m->headlen += n;
}

static void
dkim_bh_flush(struct dkim_bh *h)
{
	if (h->buflen > 0 && !h->failed &&
	    EVP_DigestUpdate(h->md, h->buf, h->buflen) != 1)
		h->failed = true;
	h->buflen = 0;
}

/* Canonical body bytes: hashed up to l= (3.5), all counted. */
static void
dkim_bh_emit(void *arg, const uint8_t *p, size_t n)
{
	struct dkim_bh	*h = arg;
	size_t		 k;

	if (h->has_l) {
		k = h->n >= h->l ? 0 : h->l - h->n < n ? (size_t)(h->l - h->n) :
		    n;
	} else
		k = n;
	h->n += n;
	while (k > 0) {
		size_t	room = sizeof(h->buf) - h->buflen;
		size_t	c = k < room ? k : room;

		memcpy(h->buf + h->buflen, p, c);
		h->buflen += c;
		p += c;
		k -= c;
		if (h->buflen == sizeof(h->buf))
			dkim_bh_flush(h);
	}
}

static void
dkim_body_feed(struct dkim_msg *m, const uint8_t *p, size_t n)
{
	size_t	i;

	for (i = 0; i < m->nbh; i++)
		dkim_body_canon_feed(&m->bh[i].bc, p, n);
}

void
dkim_msg_feed(struct dkim_msg *m, const uint8_t *p, size_t n)
{
	size_t	i, start = 0;

	if (m->ended)
		return;
	if (m->in_body) {
		dkim_body_feed(m, p, n);
		return;
	}
	for (i = 0; i < n; i++) {
		m->lpos++;
		if (p[i] == '\n') {
			if (m->lpos == 2 && m->prev == '\r') {
				/* the empty line: not part of the header */
				dkim_head_add(m, p + start, i + 1 - start);
				if (!m->head_over)
					m->headlen -= 2;
				m->in_body = true;
				dkim_headers_end(m);
				dkim_body_feed(m, p + i + 1, n - i - 1);
				return;
			}
			m->lpos = 0;
		}
		m->prev = p[i];
	}
	dkim_head_add(m, p + start, n - start);
}

/* Split the header section into fields (RFC 5322 2.2). */
static void
dkim_fields(struct dkim_msg *m)
{
	const uint8_t	*h = m->head;
	size_t		 i = 0, s, e;

	if ((m->f = calloc(DKIM_FIELDS_MAX, sizeof(*m->f))) == NULL) {
		m->f_over = true;
		return;
	}
	while (i < m->headlen) {
		s = i;
		do {
			while (i < m->headlen && h[i] != '\n')
				i++;
			if (i < m->headlen)
				i++;
		} while (i < m->headlen && (h[i] == ' ' || h[i] == '\t'));
		if (m->nf == DKIM_FIELDS_MAX) {
			m->f_over = true;
			return;
		}
		m->f[m->nf].off = s;
		m->f[m->nf].len = i - s;
		for (e = s; e < i && h[e] != ':'; e++)
			;
		while (e > s && (h[e - 1] == ' ' || h[e - 1] == '\t'))
			e--;
		m->f[m->nf].nlen = e - s;
		m->nf++;
	}
}

static bool
dkim_field_is(const struct dkim_msg *m, size_t i, const uint8_t *name,
    size_t n)
{
	return m->f[i].nlen == n && strncasecmp((const char *)m->head +
	    m->f[i].off, (const char *)name, n) == 0 &&
	    memchr(m->head + m->f[i].off, ':', m->f[i].len) != NULL;
}

/* A body hash state for sig (shared when canon and l= are the same). */
static int
dkim_bh_get(struct dkim_msg *m, const struct dkim_sig *sig)
{
	struct dkim_bh	*h;
	size_t		 i;

	for (i = 0; i < m->nbh; i++)
		if (m->bh[i].canon == sig->bcanon &&
		    m->bh[i].has_l == sig->has_l &&
		    (!sig->has_l || m->bh[i].l == sig->l))
			return (int)i;
	h = &m->bh[m->nbh];
	h->canon = sig->bcanon;
	h->has_l = sig->has_l;
	h->l = sig->l;
	if ((h->md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->md);
		h->md = NULL;
		return -1;
	}
	dkim_body_canon_init(&h->bc, h->canon, dkim_bh_emit, h);
	return (int)m->nbh++;
}

static void
dkim_one_set(struct dkim_one *o, enum dkim_result r, const char *why)
{
	o->out.result = r;
	o->out.why = why;
}

/* The header section is whole: find and parse the signatures. */
static void
dkim_headers_end(struct dkim_msg *m)
{
	static const uint8_t	name[] = "dkim-signature";
	struct dkim_one		*o;
	const uint8_t		*v;
	const char		*why;
	size_t			 i, vlen;

	if (!m->head_over)
		dkim_fields(m);
	for (i = 0; i < m->nf; i++) {
		if (!dkim_field_is(m, i, name, sizeof(name) - 1))
			continue;
		if (m->found++ >= DKIM_SIGS_MAX)
			continue;	/* the cap: not evaluated */
		o = &m->sig[m->nsig++];
		o->m = m;
		o->field = i;
		o->bh = -1;
		v = memchr(m->head + m->f[i].off, ':', m->f[i].len) + 1;
		vlen = m->f[i].len - (size_t)(v - (m->head + m->f[i].off));
		if (vlen >= 2 && v[vlen - 2] == '\r' && v[vlen - 1] == '\n')
			vlen -= 2;
		if (m->f[i].len > DKIM_SIG_FIELD_MAX) {
			dkim_one_set(o, DKIM_PERMERROR, "signature too long");
			continue;
		}
		if (dkim_sig_parse(v, vlen, &o->sig, &why) != DKIM_NONE) {
			dkim_one_set(o, DKIM_PERMERROR, why);
			continue;
		}
		memcpy(o->out.d, o->sig.d, sizeof(o->out.d));
		memcpy(o->out.s, o->sig.s, sizeof(o->out.s));
		memcpy(o->out.b8, o->sig.b8, sizeof(o->out.b8));
		o->out.partial = o->sig.has_l;
		if ((o->bh = dkim_bh_get(m, &o->sig)) == -1)
			dkim_one_set(o, DKIM_TEMPERROR, "out of memory");
	}
}

/*
 * The data signed (3.7): each h= field, taken from the bottom up, then
 * the signature field with b='s value removed and no final CRLF; its
 * SHA-256 into dig.  -1: no memory, or OpenSSL failed.
 */
static int
dkim_header_hash(struct dkim_msg *m, struct dkim_one *o, uint8_t dig[32])
{
	const struct dkim_sig	*sig = &o->sig;
	const struct dkim_field	*sf = &m->f[o->field];
	bool			*used;
	uint8_t			*tmp, *raw;
	EVP_MD_CTX		*md;
	size_t			 i, j, vstart;
	long			 n;
	unsigned		 dl;
	int			 rc = -1;

	used = calloc(m->nf + 1, sizeof(*used));
	tmp = malloc(m->headlen + 2);
	raw = malloc(sf->len + 1);
	md = EVP_MD_CTX_new();
	if (used == NULL || tmp == NULL || raw == NULL || md == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < sig->nh; i++) {
		for (j = m->nf; j-- > 0;)
			if (!used[j] && dkim_field_is(m, j, sig->h[i].p,
			    sig->h[i].n))
				break;
		if (j == (size_t)-1)
			continue;	/* 5.4: a name not there signs "" */
		used[j] = true;
		n = dkim_canon_header(sig->hcanon, m->head + m->f[j].off,
		    m->f[j].len, tmp, m->headlen + 2);
		if (n < 0 || EVP_DigestUpdate(md, tmp, (size_t)n) != 1)
			goto out;
	}
	vstart = (size_t)((const uint8_t *)memchr(m->head + sf->off, ':',
	    sf->len) + 1 - (m->head + sf->off));
	memcpy(raw, m->head + sf->off, vstart + sig->boff);
	memcpy(raw + vstart + sig->boff, m->head + sf->off + vstart +
	    sig->bend, sf->len - vstart - sig->bend);
	n = dkim_canon_header(sig->hcanon, raw, sf->len - (sig->bend -
	    sig->boff), tmp, m->headlen + 2);
	if (n >= 2 && tmp[n - 2] == '\r' && tmp[n - 1] == '\n')
		n -= 2;
	if (n < 0 || EVP_DigestUpdate(md, tmp, (size_t)n) != 1 ||
	    EVP_DigestFinal_ex(md, dig, &dl) != 1 || dl != 32)
		goto out;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	free(used);
	free(tmp);
	free(raw);
	return rc;
}

/* RSA (PKCS#1 v1.5 over SHA-256) or Ed25519 (RFC 8463 3: the digest). */
static enum dkim_result
dkim_crypto(const struct dkim_key *k, const struct dkim_sig *sig,
    const uint8_t dig[32], const char **why)
{
	const unsigned char	*pp = k->p;
	EVP_PKEY		*key;
	EVP_PKEY_CTX		*ctx = NULL;
	EVP_MD_CTX		*md = NULL;
	int			 ok = 0;

	if (k->ed25519) {
		if (k->plen != 32) {
			*why = "bad ed25519 key";
			return DKIM_PERMERROR;
		}
		key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL,
		    k->p, 32);
	} else if ((key = d2i_PUBKEY(NULL, &pp, (long)k->plen)) == NULL) {
		pp = k->p;	/* a bare RSAPublicKey, as some publish */
		key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &pp, (long)k->plen);
	}
	if (key == NULL || (!k->ed25519 && EVP_PKEY_base_id(key) !=
	    EVP_PKEY_RSA)) {
		EVP_PKEY_free(key);
		*why = "bad key p=";
		return DKIM_PERMERROR;
	}
	if (!k->ed25519 && EVP_PKEY_bits(key) < DKIM_RSA_BITS_MIN) {
		EVP_PKEY_free(key);
		*why = "RSA key under 1024 bits (RFC 8301)";
		return DKIM_PERMERROR;
	}
	if (k->ed25519) {
		if ((md = EVP_MD_CTX_new()) != NULL &&
		    EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1)
			ok = EVP_DigestVerify(md, sig->b, sig->blen, dig, 32);
	} else if ((ctx = EVP_PKEY_CTX_new(key, NULL)) != NULL &&
	    EVP_PKEY_verify_init(ctx) == 1 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1)
		ok = EVP_PKEY_verify(ctx, sig->b, sig->blen, dig, 32);
	EVP_MD_CTX_free(md);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(key);
	if (ok == 1) {
		*why = sig->has_l ? "valid, but l= signs part of the body" :
		    "valid";
		return sig->has_l ? DKIM_POLICY : DKIM_PASS;
	}
	*why = "signature does not verify";
	return DKIM_FAIL;
}

/* A key answer in hand: check b=. */
static void
dkim_verify_one(struct dkim_one *o, const struct dns_rrset *rs)
{
	struct dkim_key	 k;
	uint8_t		 dig[32];
	const char	*why = "no key record";
	size_t		 i;
	enum dkim_result r = DKIM_PERMERROR;

	if (rs->status == DNS_TEMPFAIL) {
		dkim_one_set(o, DKIM_TEMPERROR, "key lookup failed");
		return;
	}
	for (i = 0; rs->status == DNS_OK && i < rs->n; i++) {
		if (rs->rr[i].type != DNS_MSG_T_TXT || rs->rr[i].txtlong)
			continue;
		r = dkim_key_parse((const uint8_t *)rs->rr[i].txt,
		    rs->rr[i].txtlen, &k, &why);
		if (r == DKIM_NONE)
			break;
	}
	if (r != DKIM_NONE) {
		dkim_one_set(o, DKIM_PERMERROR, why);
		return;
	}
	if (k.ed25519 != (o->sig.alg == DKIM_ED25519_SHA256)) {
		dkim_one_set(o, DKIM_PERMERROR, "key type does not match a=");
		return;
	}
	if (k.strict && o->sig.i_sub) {
		dkim_one_set(o, DKIM_PERMERROR, "t=s key, i= in a subdomain");
		return;
	}
	if (dkim_header_hash(o->m, o, dig) == -1) {
		dkim_one_set(o, DKIM_TEMPERROR, "out of memory");
		return;
	}
	r = dkim_crypto(&k, &o->sig, dig, &why);
	o->out.testing = k.testing;
	dkim_one_set(o, r, why);
}

static void
dkim_key_answer(void *arg, uint64_t id, const struct dns_rrset *rs)
{
	struct dkim_one	*o = arg;
	struct dkim_msg	*m = o->m;

	(void)id;
	if (!o->pending)
		return;
	o->pending = false;
	dkim_verify_one(o, rs);
	if (--m->npending == 0)
		m->done(m->arg);
}

/* Before the key (PATTERNS: expiry and body hash first). */
static bool
dkim_precheck(struct dkim_msg *m, struct dkim_one *o, time_t now)
{
	struct dkim_bh	*h = &m->bh[o->bh];

	if (o->sig.has_x && (uint64_t)now > o->sig.x) {
		dkim_one_set(o, DKIM_PERMERROR, "signature expired");
		return false;
	}
	if (h->failed) {
		dkim_one_set(o, DKIM_TEMPERROR, "hash failed");
		return false;
	}
	if (o->sig.has_l && o->sig.l > h->n) {
		dkim_one_set(o, DKIM_PERMERROR, "l= is beyond the body");
		return false;
	}
	if (memcmp(h->digest, o->sig.bh, 32) != 0) {
		dkim_one_set(o, DKIM_FAIL, "body hash does not match");
		return false;
	}
	return true;
}

size_t
dkim_msg_end(struct dkim_msg *m)
{
	size_t		 i;
	unsigned	 dl;

	if (m->ended)
		return m->nsig;
	m->ended = true;
	if (!m->in_body) {	/* no empty line: all header, no body */
		m->in_body = true;
		dkim_headers_end(m);
	}
	for (i = 0; i < m->nbh; i++) {
		dkim_body_canon_end(&m->bh[i].bc);
		dkim_bh_flush(&m->bh[i]);
		if (!m->bh[i].failed && (EVP_DigestFinal_ex(m->bh[i].md,
		    m->bh[i].digest, &dl) != 1 || dl != 32))
			m->bh[i].failed = true;
	}
	return m->nsig;
}

bool
dkim_verify_start(struct dkim_msg *m, const struct dns_lookup *r,
    uint64_t id, time_t now, dkim_done_fn *done, void *arg)
{
	char		 name[DNS_MSG_NAME_BUF];
	struct dkim_one	*o;
	size_t		 i;
	int		 n;

	dkim_msg_end(m);
	m->r = *r;
	m->id = id;
	m->done = done;
	m->arg = arg;
	for (i = 0; i < m->nsig; i++) {
		o = &m->sig[i];
		if (o->out.why != NULL || !dkim_precheck(m, o, now))
			continue;
		n = snprintf(name, sizeof(name), "%s._domainkey.%s", o->sig.s,
		    o->sig.d);
		if (n < 0 || (size_t)n >= sizeof(name) - 1) {
			dkim_one_set(o, DKIM_PERMERROR, "key name too long");
			continue;
		}
		o->pending = true;
		m->npending++;
		r->query(r->ctx, name, DNS_MSG_T_TXT, id, dkim_key_answer, o);
	}
	return m->npending > 0;
}

void
dkim_verify_expire(struct dkim_msg *m)
{
	size_t	i;

	if (m->npending == 0)
		return;
	m->r.cancel(m->r.ctx, m->id);
	for (i = 0; i < m->nsig; i++)
		if (m->sig[i].pending) {
			m->sig[i].pending = false;
			dkim_one_set(&m->sig[i], DKIM_TEMPERROR,
			    "key lookup timed out");
		}
	m->npending = 0;
	m->done(m->arg);
}

void
dkim_verify_cancel(struct dkim_msg *m)
{
	size_t	i;

	if (m->npending == 0)
		return;
	m->r.cancel(m->r.ctx, m->id);
	for (i = 0; i < m->nsig; i++)
		m->sig[i].pending = false;
	m->npending = 0;
}

size_t
dkim_msg_nsigs(const struct dkim_msg *m, size_t *found)
{
	if (found != NULL)
		*found = m->found;
	return m->nsig;
}

const struct dkim_outcome *
dkim_msg_outcome(const struct dkim_msg *m, size_t i)
{
	return i < m->nsig ? &m->sig[i].out : NULL;
}
