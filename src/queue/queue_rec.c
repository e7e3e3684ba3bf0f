/*
 * queue_rec.c - parse queue file records and whole files (queue_rec.h).
 * Owns: the record grammar and the order V I T C H S [M] (R [N])... B E,
 * then D, A and W.
 * Never: I/O, allocation, globals; it only points into the caller's bytes.
 * Untrusted: a file on disk may be torn, truncated or tampered with; every
 * length is checked against a named bound before it is used.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../lib/xtext.h"
#include "queue.h"
#include "queue_rec.h"

/* The header records, in file order; each appears exactly once. */
static const char	queue_rec_meta_order[] = "VITCHS";

enum queue_rec_stage {
	QUEUE_REC_ST_META,	/* in queue_rec_meta_order */
	QUEUE_REC_ST_RCPT,	/* R records, then B */
	QUEUE_REC_ST_END,	/* E must follow B */
	QUEUE_REC_ST_DONE,	/* complete: only D, A, L records follow */
};

struct queue_rec_cursor {
	enum queue_rec_stage	 stage;
	size_t			 meta;	/* index into queue_rec_meta_order */
	int			 last;	/* type of the record before */
};

static int
queue_rec_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;		/* uppercase too: one spelling per length */
}

static bool
queue_rec_type_known(uint8_t c)
{
	return c != '\0' && memchr("VITCHSRBEDAU" "MNW" "L" "P" "F", c, 18) != NULL;
}

enum parse_rc
queue_rec_parse(const uint8_t *p, size_t len, struct queue_rec *out)
{
	uint64_t	v = 0, max;
	size_t		i, n;
	int		d;

	if (len == 0)
		return PARSE_MORE;
	if (!queue_rec_type_known(p[0]))
		return PARSE_BAD;
	n = len < QUEUE_REC_HDRLEN ? len : QUEUE_REC_HDRLEN;
	for (i = 1; i < n && i <= QUEUE_REC_LENDIGITS; i++) {
		if ((d = queue_rec_hexval(p[i])) < 0)
			return PARSE_BAD;
		v = v << 4 | (uint64_t)d;
	}
	if (n < QUEUE_REC_HDRLEN)
		return PARSE_MORE;
	if (p[QUEUE_REC_HDRLEN - 1] != ':')
		return PARSE_BAD;
	max = p[0] == QUEUE_REC_T_BODY ? QUEUE_REC_BODY_MAX :
	    QUEUE_REC_META_MAX;
	if (v > max)
		return PARSE_TOOLONG;
	/* v is bounded, so HDRLEN + v + 1 cannot wrap */
	if (len - QUEUE_REC_HDRLEN <= v)
		return PARSE_MORE;	/* payload or its '\n' not there yet */
	if (p[QUEUE_REC_HDRLEN + v] != '\n')
		return PARSE_BAD;
	out->type = p[0];
	out->payload = p + QUEUE_REC_HDRLEN;
	out->len = (size_t)v;
	out->size = QUEUE_REC_HDRLEN + (size_t)v + 1;
	return PARSE_OK;
}

void
queue_rec_header(char out[QUEUE_REC_HDRLEN], int type, uint64_t len)
{
	static const char	hex[] = "0123456789abcdef";
	int			i;

	out[0] = (char)type;
	for (i = QUEUE_REC_LENDIGITS; i >= 1; i--) {
		out[i] = hex[len & 15];
		len >>= 4;
	}
	out[QUEUE_REC_HDRLEN - 1] = ':';
}

/* Canonical decimal: digits only, no leading zero, at most maxdigits. */
static int
queue_rec_decimal(const uint8_t *p, size_t len, size_t maxdigits,
    uint64_t max, uint64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	if (len == 0 || len > maxdigits || (len > 1 && p[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

int
queue_rec_done_index(const struct queue_rec *r, size_t nrcpts, size_t *out)
{
	uint64_t	v;

	if (r->type != QUEUE_REC_T_DONE ||
	    queue_rec_decimal(r->payload, r->len, 20, UINT64_MAX, &v) == -1 ||
	    v >= nrcpts)
		return -1;
	*out = (size_t)v;
	return 0;
}

int
queue_rec_attempt(const struct queue_rec *r, unsigned *attempts, time_t *next)
{
	const uint8_t	*sp;
	uint64_t	 a, t;

	if (r->type != QUEUE_REC_T_ATTEMPT ||
	    (sp = memchr(r->payload, ' ', r->len)) == NULL ||
	    queue_rec_decimal(r->payload, (size_t)(sp - r->payload), 10,
	    UINT32_MAX, &a) == -1 ||
	    queue_rec_decimal(sp + 1, r->len - (size_t)(sp + 1 - r->payload),
	    QUEUE_REC_TIME_DIGITS, INT64_MAX, &t) == -1)
		return -1;
	*attempts = (unsigned)a;
	*next = (time_t)t;
	return 0;
}

int
queue_rec_lasterr(const struct queue_rec *r, time_t *when,
    const uint8_t **text, size_t *textlen)
{
	const uint8_t	*sp;
	uint64_t	 t;
	size_t		 n;

	if (r->type != QUEUE_REC_T_LASTERR ||
	    (sp = memchr(r->payload, ' ', r->len)) == NULL ||
	    queue_rec_decimal(r->payload, (size_t)(sp - r->payload),
	    QUEUE_REC_TIME_DIGITS, INT64_MAX, &t) == -1)
		return -1;
	n = r->len - (size_t)(sp + 1 - r->payload);
	if (n == 0 || memchr(sp + 1, '\0', n) != NULL ||
	    memchr(sp + 1, '\n', n) != NULL || memchr(sp + 1, '\r', n) != NULL)
		return -1;
	*when = (time_t)t;
	*text = sp + 1;
	*textlen = n;
	return 0;
}

/* Payloads that become C strings must not hide a NUL. */
static bool
queue_rec_is_text(const struct queue_rec *r)
{
	return memchr(r->payload, '\0', r->len) == NULL;
}

static bool
queue_rec_is_qid(const struct queue_rec *r)
{
	size_t	i;

	if (r->len != ID_STRLEN)
		return false;
	for (i = 0; i < r->len; i++) {
		uint8_t	c = r->payload[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

static int
queue_rec_take_meta(struct queue_rec_file *f, const struct queue_rec *r)
{
	uint64_t	t;

	switch (r->type) {
	case QUEUE_REC_T_VERSION:
		if (r->len != sizeof(QUEUE_REC_VERSION) - 1 ||
		    memcmp(r->payload, QUEUE_REC_VERSION, r->len) != 0)
			return -1;
		return 0;
	case QUEUE_REC_T_ID:
		f->id = *r;
		return queue_rec_is_qid(r) ? 0 : -1;
	case QUEUE_REC_T_TIME:
		if (queue_rec_decimal(r->payload, r->len,
		    QUEUE_REC_TIME_DIGITS, INT64_MAX, &t) == -1)
			return -1;
		f->arrival = (time_t)t;
		return 0;
	case QUEUE_REC_T_CLIENT:
		f->client = *r;
		break;
	case QUEUE_REC_T_HELO:
		f->helo = *r;
		break;
	case QUEUE_REC_T_SENDER:
		f->sender = *r;
		break;
	default:
		return -1;
	}
	return queue_rec_is_text(r) ? 0 : -1;
}

static int
queue_rec_take_rcpt(struct queue_rec_file *f, const struct queue_rec *r,
    size_t off)
{
	if (r->len == 0 || !queue_rec_is_text(r) ||
	    f->nrcpts >= QUEUE_RCPT_MAX)
		return -1;
	if (f->nrcpts == 0)
		f->rcpt_off = off;
	f->nrcpts++;
	f->rcpt_bytes += r->len;
	return 0;
}

/* "FULL" / "HDRS" / "-", SP, ENVID (xtext, may be empty). */
int
queue_rec_dsn_msg(const struct queue_rec *r, struct queue_rec_dsn *d)
{
	const uint8_t	*sp;
	size_t		 tl;

	memset(d, 0, sizeof(*d));
	if (r->type != QUEUE_REC_T_DSN_MSG ||
	    (sp = memchr(r->payload, ' ', r->len)) == NULL)
		return -1;
	tl = (size_t)(sp - r->payload);
	if (tl == 4 && memcmp(r->payload, "FULL", 4) == 0)
		d->ret = QUEUE_DSN_RET_FULL;
	else if (tl == 4 && memcmp(r->payload, "HDRS", 4) == 0)
		d->ret = QUEUE_DSN_RET_HDRS;
	else if (!(tl == 1 && r->payload[0] == '-'))
		return -1;
	d->text = sp + 1;
	d->textlen = r->len - tl - 1;
	if (d->textlen > QUEUE_REC_DSN_ENVID_MAX ||
	    !xtext_valid(d->text, d->textlen))
		return -1;
	return 0;
}

/* One lowercase hex digit of NOTIFY bits, then SP ORCPT ("type;xtext"). */
int
queue_rec_dsn_rcpt(const struct queue_rec *r, struct queue_rec_dsn *d)
{
	const uint8_t	*semi;
	int		 v;

	memset(d, 0, sizeof(*d));
	if (r->type != QUEUE_REC_T_DSN_RCPT || r->len == 0 ||
	    (v = queue_rec_hexval(r->payload[0])) < 0 ||
	    ((v & QUEUE_NOTIFY_NEVER) && v != QUEUE_NOTIFY_NEVER))
		return -1;
	d->notify = (unsigned)v;
	if (r->len == 1)
		return 0;
	if (r->payload[1] != ' ' || r->len - 2 > QUEUE_REC_DSN_ORCPT_MAX)
		return -1;
	d->text = r->payload + 2;
	d->textlen = r->len - 2;
	if ((semi = memchr(d->text, ';', d->textlen)) == NULL ||
	    semi == d->text)
		return -1;
	return xtext_valid(d->text, d->textlen) ? 0 : -1;
}

bool
queue_rec_proof_valid(const uint8_t *p, size_t len)
{
	size_t	i;
	bool	eq = false;

	if (len == 0 || len > QUEUE_REC_PROOF_MAX || p[0] == ' ' ||
	    p[len - 1] == ' ')
		return false;
	for (i = 0; i < len; i++) {
		if (p[i] == ' ') {
			if (!eq || p[i - 1] == ' ')
				return false;
			eq = false;
			continue;
		}
		if (p[i] == '=')
			eq = true;
		else if (!((p[i] >= 'a' && p[i] <= 'z') ||
		    (p[i] >= '0' && p[i] <= '9') || p[i] == '.' ||
		    p[i] == '_' || p[i] == '-'))
			return false;
	}
	return eq;
}

const uint8_t *
queue_rec_proof_get(const struct queue_rec *r, const char *key, size_t *vlen)
{
	const uint8_t	*p = r->payload, *end = r->payload + r->len, *w, *e;
	size_t		 klen = strlen(key);

	if (r->type != QUEUE_REC_T_PROOF || p == NULL)
		return NULL;
	for (w = p; w < end; w = e + 1) {
		if ((e = memchr(w, ' ', (size_t)(end - w))) == NULL)
			e = end;
		if ((size_t)(e - w) > klen && memcmp(w, key, klen) == 0 &&
		    w[klen] == '=') {
			*vlen = (size_t)(e - w) - klen - 1;
			return w + klen + 1;
		}
	}
	return NULL;
}

/* Take one complete record at offset off; -1 if it is out of place. */
static int
queue_rec_take(struct queue_rec_file *f, struct queue_rec_cursor *c,
    const struct queue_rec *r, size_t off)
{
	struct queue_rec_dsn	d;
	size_t			i;

	switch (c->stage) {
	case QUEUE_REC_ST_META:
		if (r->type != queue_rec_meta_order[c->meta] ||
		    queue_rec_take_meta(f, r) == -1)
			return -1;
		if (queue_rec_meta_order[++c->meta] == '\0')
			c->stage = QUEUE_REC_ST_RCPT;
		return 0;
	case QUEUE_REC_ST_RCPT:
		if (r->type == QUEUE_REC_T_RCPT)
			return queue_rec_take_rcpt(f, r, off);
		if (r->type == QUEUE_REC_T_SMTPUTF8 && r->len == 0 &&
		    f->nrcpts == 0 && !f->smtputf8) {
			f->smtputf8 = true;	/* RFC 6531: see queue_rec.h */
			return 0;
		}
		if (r->type == QUEUE_REC_T_PROOF) {	/* once, before R */
			if (f->nrcpts != 0 || f->proof.payload != NULL ||
			    !queue_rec_proof_valid(r->payload, r->len))
				return -1;
			f->proof = *r;
			return 0;
		}
		if (r->type == QUEUE_REC_T_DSN_MSG) {
			f->dsn_msg = *r;	/* once, before any R */
			return c->last != QUEUE_REC_T_SENDER ||
			    queue_rec_dsn_msg(r, &d) == -1 ? -1 : 0;
		}
		if (r->type == QUEUE_REC_T_DSN_RCPT)	/* once per R */
			return c->last != QUEUE_REC_T_RCPT ||
			    queue_rec_dsn_rcpt(r, &d) == -1 ? -1 : 0;
		if (r->type != QUEUE_REC_T_BODY || f->nrcpts == 0)
			return -1;
		f->body = *r;
		c->stage = QUEUE_REC_ST_END;
		return 0;
	case QUEUE_REC_ST_END:
		if (r->type == QUEUE_REC_T_PREFIX) {	/* once, then P or E */
			if (f->prefix.payload != NULL || c->last !=
			    QUEUE_REC_T_BODY || r->len == 0 ||
			    r->len > QUEUE_REC_PREFIX_MAX ||
			    r->payload[r->len - 1] != '\n')
				return -1;
			f->prefix = *r;
			return 0;
		}
		if (r->type == QUEUE_REC_T_PROOF) {	/* once, after B */
			if (f->proof.payload != NULL ||
			    !queue_rec_proof_valid(r->payload, r->len))
				return -1;
			f->proof = *r;
			return 0;
		}
		if (r->type != QUEUE_REC_T_END || r->len != 0)
			return -1;
		f->done_off = off + r->size;
		c->stage = QUEUE_REC_ST_DONE;
		return 0;
	case QUEUE_REC_ST_DONE:
		if (r->type == QUEUE_REC_T_WARNED) {
			f->warned = true;
			return r->len == 0 ? 0 : -1;
		}
		if (r->type == QUEUE_REC_T_ATTEMPT)
			return queue_rec_attempt(r, &f->attempts,
			    &f->next_attempt);
		if (r->type == QUEUE_REC_T_LASTERR) {
			f->lasterr = *r;
			return queue_rec_lasterr(r, &f->lasterr_time,
			    &f->lasterr_text, &f->lasterr_len);
		}
		if (queue_rec_done_index(r, f->nrcpts, &i) == -1)
			return -1;
		f->ndone++;
		return 0;
	}
	return -1;
}

enum parse_rc
queue_rec_parse_file(const uint8_t *p, size_t len, struct queue_rec_file *f)
{
	struct queue_rec_cursor	c = { QUEUE_REC_ST_META, 0, 0 };
	struct queue_rec	r;
	enum parse_rc		rc;
	size_t			off = 0;

	memset(f, 0, sizeof(*f));
	while (off < len) {
		rc = queue_rec_parse(p + off, len - off, &r);
		/*
		 * A crash while appending a D record leaves a prefix of it;
		 * that recipient is simply not finished yet.
		 */
		if (rc == PARSE_MORE && c.stage == QUEUE_REC_ST_DONE) {
			if (p[off] != QUEUE_REC_T_DONE &&
			    p[off] != QUEUE_REC_T_ATTEMPT &&
			    p[off] != QUEUE_REC_T_WARNED &&
			    p[off] != QUEUE_REC_T_LASTERR)
				return PARSE_BAD;
			break;
		}
		if (rc != PARSE_OK)
			return rc;
		if (queue_rec_take(f, &c, &r, off) == -1)
			return PARSE_BAD;
		c.last = r.type;
		off += r.size;
		f->validlen = off;
	}
	return c.stage == QUEUE_REC_ST_DONE ? PARSE_OK : PARSE_MORE;
}
