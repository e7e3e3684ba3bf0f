/*
 * dkim.h - DKIM verification (RFC 6376, 8301, 8463) of one message as it
 * streams in: the header section is kept (bounded), the body hashed on
 * the fly, one hash state per distinct (body canonicalisation, l=)
 * among the signatures; at the end each signature's key is asked of a
 * resolver and its b= checked with OpenSSL.
 * Owns: the tag-list parser (3.2), signature and key record parsing,
 * simple and relaxed canonicalisation (3.4), the signature cap.
 * Never: sockets, timers, clocks (the caller passes the time and ends a
 * slow verification with dkim_verify_expire()), blocking.
 * Untrusted: every message byte, every key record.
 */
#ifndef MXGATE_DKIM_H
#define MXGATE_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../dns/dns.h"
#include "../lib/parse.h"

#define DKIM_SIGS_MAX		5	/* signatures evaluated per message */
#define DKIM_TAGS_MAX		32	/* tags in one tag-list; more: bad */
#define DKIM_H_MAX		64	/* header names in h=; more: permerror */
#define DKIM_FIELDS_MAX		1024	/* header fields indexed; more: not */
#define DKIM_SIG_FIELD_MAX	8192	/* one DKIM-Signature field's bytes */
#define DKIM_B_MAX		1024	/* b= bytes decoded (8192-bit RSA) */
#define DKIM_KEY_MAX		2048	/* p= bytes decoded */
#define DKIM_RSA_BITS_MIN	1024	/* RFC 8301 3.2 */
#define DKIM_DOMAIN_MAX		253
#define DKIM_SELECTOR_MAX	63

enum dkim_result {
	DKIM_NONE, DKIM_PASS, DKIM_FAIL, DKIM_NEUTRAL, DKIM_POLICY,
	DKIM_TEMPERROR, DKIM_PERMERROR,
};

enum dkim_canon { DKIM_SIMPLE, DKIM_RELAXED };
enum dkim_alg { DKIM_RSA_SHA256, DKIM_ED25519_SHA256, DKIM_RSA_SHA1 };

/* One tag of a tag-list: spans into the caller's bytes. */
struct dkim_tag {
	const uint8_t	*name, *value;	/* value: FWS around it trimmed */
	size_t		 nlen, vlen;
	size_t		 voff, vend;	/* the raw value: [voff, vend) of the
					 * list, from after '=' to ';' or end */
};

struct dkim_tags {
	struct dkim_tag	t[DKIM_TAGS_MAX];
	size_t		n;
};

/*
 * RFC 6376 3.2: tag-spec *(";" tag-spec) [";"], names ALPHA *(ALNUM/_),
 * values of VALCHAR with FWS inside.  PARSE_BAD: syntax or a tag given
 * twice; PARSE_TOOLONG: more than DKIM_TAGS_MAX tags.  Pure.
 */
enum parse_rc	dkim_tags_parse(const uint8_t *, size_t, struct dkim_tags *);
/* The tag named name, or NULL. */
const struct dkim_tag *dkim_tags_get(const struct dkim_tags *,
		    const char *name);

/* A DKIM-Signature field's value, parsed (3.5). */
struct dkim_sig {
	enum dkim_alg	 alg;
	enum dkim_canon	 hcanon, bcanon;
	char		 d[DKIM_DOMAIN_MAX + 1];	/* lower case */
	char		 s[DKIM_SELECTOR_MAX + 1];
	char		 b8[9];			/* first 8 of b= (for headers) */
	uint8_t		 b[DKIM_B_MAX];
	size_t		 blen;
	uint8_t		 bh[64];
	size_t		 bhlen;
	bool		 has_l;
	uint64_t	 l;
	bool		 has_t, has_x;
	uint64_t	 t, x;
	bool		 i_sub;		/* i= is in a subdomain of d= */
	struct { const uint8_t *p; size_t n; } h[DKIM_H_MAX];
	size_t		 nh;
	size_t		 boff, bend;	/* b='s raw value in the field value */
};

/*
 * Parse and check a signature's value (the field body after the colon).
 * DKIM_NONE: fine; else the result (permerror, and why) it earns by
 * itself.  h[] points into p.
 */
enum dkim_result dkim_sig_parse(const uint8_t *p, size_t len,
		    struct dkim_sig *, const char **why);

/* A key record (3.6.1). */
struct dkim_key {
	bool		 ed25519;	/* k=ed25519; else rsa */
	bool		 strict;	/* t=s: i= must be d= exactly */
	bool		 testing;	/* t=y */
	uint8_t		 p[DKIM_KEY_MAX];
	size_t		 plen;		/* 0: revoked */
};

/* DKIM_NONE: a usable record; else permerror and why. */
enum dkim_result dkim_key_parse(const uint8_t *p, size_t len,
		    struct dkim_key *, const char **why);

/*
 * Canonicalisation (3.4), pure.  Header: one field (name:value CRLF as in
 * the message, folded lines and all) into out; the length, or -1 when it
 * does not fit.  Body: a resumable state a caller feeds bytes to; what
 * is to be hashed comes out through emit.
 */
long	dkim_canon_header(enum dkim_canon, const uint8_t *field, size_t len,
	    uint8_t *out, size_t outlen);

typedef void	dkim_emit_fn(void *arg, const uint8_t *, size_t);

struct dkim_body_canon {
	enum dkim_canon	 canon;
	unsigned	 pend;		/* empty lines held back (3.4.3, 3.4.4) */
	bool		 cr;		/* a CR seen, its LF not yet */
	bool		 wsp;		/* relaxed: white space held back */
	bool		 bol;		/* at the start of a line */
	bool		 any;		/* a non-empty line was emitted */
	dkim_emit_fn	*emit;
	void		*arg;
};

void	dkim_body_canon_init(struct dkim_body_canon *, enum dkim_canon,
	    dkim_emit_fn *, void *);
void	dkim_body_canon_feed(struct dkim_body_canon *, const uint8_t *,
	    size_t);
void	dkim_body_canon_end(struct dkim_body_canon *);

/* A signature's outcome, for headers, logs and proofs. */
struct dkim_outcome {
	enum dkim_result result;
	char		 d[DKIM_DOMAIN_MAX + 1];	/* "" if unparsable */
	char		 s[DKIM_SELECTOR_MAX + 1];
	char		 b8[9];
	bool		 partial;	/* l= given: never a proof */
	bool		 testing;	/* the key says t=y: never a proof */
	const char	*why;		/* static text */
};

struct dkim_msg;
typedef void	dkim_done_fn(void *arg);

/*
 * One message.  head_max bounds the header section kept; a longer one
 * is not looked at (no signature is found: result none).  NULL: no
 * memory.
 */
struct dkim_msg *dkim_msg_new(size_t head_max);
void	dkim_msg_free(struct dkim_msg *);	/* cancels a verification */
/* Message bytes as stored (CRLF lines, dot-unstuffed), any chunking. */
void	dkim_msg_feed(struct dkim_msg *, const uint8_t *, size_t);
/* The message ended: finish the body hashes; the signatures evaluated. */
size_t	dkim_msg_end(struct dkim_msg *);
/*
 * The message ended (dkim_msg_end, if not yet): ask for the key of each
 * signature still undecided.  false: all decided now (done not called);
 * true: done(arg) runs once from a resolver callback, unless
 * dkim_verify_cancel() or dkim_msg_free() comes first.
 */
bool	dkim_verify_start(struct dkim_msg *, const struct dns_lookup *,
	    uint64_t id, time_t now, dkim_done_fn *, void *arg);
/* the caller's deadline passed: the rest are temperror, done() now */
void	dkim_verify_expire(struct dkim_msg *);
void	dkim_verify_cancel(struct dkim_msg *);
/* Signatures evaluated (<= DKIM_SIGS_MAX), found (all of them). */
size_t	dkim_msg_nsigs(const struct dkim_msg *, size_t *found);
const struct dkim_outcome *dkim_msg_outcome(const struct dkim_msg *,
	    size_t i);

const char *dkim_result_name(enum dkim_result);

#endif
