/*
 * milter_msg.c - the message the milter chain edits (see milter_msg.h).
 * Owns: the header split and edit rules.  Never: I/O.  Untrusted: the
 * message and every edit.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "milter_msg.h"

static char *
mm_dup(const void *p, size_t n)
{
	char	*s = malloc(n + 1);

	if (s != NULL) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* Insert a field (raw taken over) at position at. */
static int
mm_hdr_insert(struct milter_msg *m, size_t at, char *raw, size_t len,
    size_t nlen)
{
	struct milter_hdr	*h;

	if (m->nh >= MILTER_MSG_HDRS_MAX ||
	    (h = realloc(m->h, (m->nh + 1) * sizeof(*h))) == NULL)
		return -1;
	m->h = h;
	if (at > m->nh)
		at = m->nh;
	memmove(&h[at + 1], &h[at], (m->nh - at) * sizeof(*h));
	h[at] = (struct milter_hdr){ raw, len, nlen };
	m->nh++;
	return 0;
}

/* A field name line: ftext then ':' (RFC 5322 3.6.8). */
static size_t
mm_name_len(const uint8_t *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n && p[i] > 32 && p[i] < 127 && p[i] != ':'; i++)
		;
	return i > 0 && i < n && p[i] == ':' ? i : 0;
}

/* The end of the line at p (past its LF), or e. */
static const uint8_t *
mm_eol(const uint8_t *p, const uint8_t *e)
{
	const uint8_t	*nl = memchr(p, '\n', (size_t)(e - p));

	return nl ? nl + 1 : e;
}

static int
mm_split(struct milter_msg *m, const uint8_t *p, size_t len)
{
	const uint8_t	*e = p + len, *q, *f;
	size_t		 nlen;
	char		*raw;

	while (p < e) {
		if (e - p >= 2 && p[0] == '\r' && p[1] == '\n') {
			m->sep = true;
			p += 2;
			break;
		}
		if ((nlen = mm_name_len(p, (size_t)(e - p))) == 0)
			break;		/* not a field: the body starts here */
		f = p;
		q = mm_eol(p, e);
		while (q < e && (*q == ' ' || *q == '\t'))
			q = mm_eol(q, e);
		if ((raw = mm_dup(f, (size_t)(q - f))) == NULL ||
		    mm_hdr_insert(m, m->nh, raw, (size_t)(q - f), nlen) == -1) {
			free(raw);
			return -1;
		}
		p = q;
	}
	m->body = p;
	m->bodylen = (size_t)(e - p);
	return 0;
}

int
milter_msg_init(struct milter_msg *m, const uint8_t *msg, size_t len,
    const char *sender, const char *const *rcpts, size_t nrcpts,
    uint64_t max)
{
	size_t	i;

	memset(m, 0, sizeof(*m));
	m->max = max;
	buf_init(&m->repl, max);
	if (nrcpts > MILTER_MSG_RCPTS_MAX ||
	    (m->sender = mm_dup(sender, strlen(sender))) == NULL ||
	    (m->r = calloc(nrcpts + 1, sizeof(*m->r))) == NULL)
		goto bad;
	for (i = 0; i < nrcpts; i++, m->nr++) {
		if ((m->r[i].addr = mm_dup(rcpts[i], strlen(rcpts[i]))) ==
		    NULL)
			goto bad;
		m->r[i].orig = (int)i;
		m->norig++;
	}
	if (mm_split(m, msg, len) == -1)
		goto bad;
	return 0;
bad:
	milter_msg_free(m);
	return -1;
}

int
milter_msg_set_content(struct milter_msg *m, const uint8_t *msg, size_t len)
{
	size_t	i;

	for (i = 0; i < m->nh; i++)
		free(m->h[i].raw);
	m->nh = 0;
	m->sep = false;
	return mm_split(m, msg, len);
}

int
milter_msg_add_rcpt(struct milter_msg *m, const char *addr)
{
	struct milter_rcpt	*nr;
	char			*a;

	if (m->nr >= MILTER_MSG_RCPTS_MAX ||
	    (nr = realloc(m->r, (m->nr + 1) * sizeof(*nr))) == NULL)
		return -1;
	m->r = nr;
	if ((a = mm_dup(addr, strlen(addr))) == NULL)
		return -1;
	m->r[m->nr] = (struct milter_rcpt){ a, (int)m->norig++ };
	m->nr++;
	return 0;
}

void
milter_msg_free(struct milter_msg *m)
{
	size_t	i;

	for (i = 0; i < m->nh; i++)
		free(m->h[i].raw);
	free(m->h);
	for (i = 0; i < m->nr; i++)
		free(m->r[i].addr);
	free(m->r);
	free(m->sender);
	free(m->quarantine);
	buf_free(&m->repl);
	memset(m, 0, sizeof(*m));
}

int
milter_msg_hdr_value(const struct milter_hdr *h, struct buf *v)
{
	const char	*p = h->raw + h->nlen + 1, *e = h->raw + h->len;

	buf_reset(v);
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	if (e - p >= 2 && e[-2] == '\r' && e[-1] == '\n')
		e -= 2;
	else if (e > p && e[-1] == '\n')
		e--;
	for (; p < e; p++) {
		if (*p == '\r' && p + 1 < e && p[1] == '\n')
			continue;
		if (buf_addc(v, *p) == -1)
			return -1;
	}
	return 0;
}

/* "Name: value\r\n" from a filter's name and value (LF folds: CRLF). */
static char *
mm_render_field(const struct milter_reply *r, size_t *len)
{
	struct buf	b;
	size_t		i;
	bool		lead = r->tlen > 0 && (r->text[0] == ' ' ||
			    r->text[0] == '\t');

	buf_init(&b, MILTER_HDR_NAME_MAX + 2 * MILTER_HDR_VALUE_MAX + 8);
	if (buf_add(&b, r->name, r->nlen) == -1 || buf_addc(&b, ':') == -1 ||
	    (!lead && buf_addc(&b, ' ') == -1))
		goto bad;
	for (i = 0; i < r->tlen; i++) {
		if (r->text[i] == '\r')
			continue;
		if (r->text[i] == '\n' && buf_addc(&b, '\r') == -1)
			goto bad;
		if (buf_addc(&b, r->text[i]) == -1)
			goto bad;
	}
	if (buf_add(&b, "\r\n", 2) == -1 || buf_addc(&b, 0) == -1)
		goto bad;
	*len = b.len - 1;
	return (char *)b.data;
bad:
	buf_free(&b);
	return NULL;
}

/* The index-th (1-based) field named like r's; m->nh if none. */
static size_t
mm_nth(const struct milter_msg *m, const struct milter_reply *r)
{
	size_t		i;
	uint32_t	k = 0;

	for (i = 0; i < m->nh; i++)
		if (m->h[i].nlen == r->nlen &&
		    strncasecmp(m->h[i].raw, r->name, r->nlen) == 0 &&
		    ++k == (r->index ? r->index : 1))
			return i;
	return m->nh;
}

static int
mm_header(struct milter_msg *m, const struct milter_reply *r)
{
	size_t	len, at;
	char	*raw;

	if (r->kind == MILTER_R_CHGHEADER) {
		at = mm_nth(m, r);
		if (r->tlen == 0) {	/* delete; none there: nothing */
			if (at < m->nh) {
				free(m->h[at].raw);
				memmove(&m->h[at], &m->h[at + 1],
				    (m->nh - at - 1) * sizeof(m->h[0]));
				m->nh--;
				m->hdrs_changed = true;
			}
			return 0;
		}
		if ((raw = mm_render_field(r, &len)) == NULL)
			return -1;
		if (at < m->nh) {
			free(m->h[at].raw);
			m->h[at] = (struct milter_hdr){ raw, len, r->nlen };
			m->hdrs_changed = true;
			return 0;
		}
		at = m->nh;		/* libmilter: a missing one is added */
	} else {
		if ((raw = mm_render_field(r, &len)) == NULL)
			return -1;
		at = r->kind == MILTER_R_INSHEADER ? r->index : m->nh;
	}
	if (mm_hdr_insert(m, at, raw, len, r->nlen) == -1) {
		free(raw);
		return -1;
	}
	m->hdrs_changed = true;
	return 0;
}

/* An address from a filter: "<a@b>" or "a@b", into "a@b". */
static char *
mm_addr(const struct milter_reply *r)
{
	const char	*p = r->text;
	size_t		 n = r->tlen;

	if (n >= 2 && p[0] == '<' && p[n - 1] == '>') {
		p++;
		n -= 2;
	}
	return memchr(p, '<', n) || memchr(p, '>', n) ? NULL : mm_dup(p, n);
}

static int
mm_rcpt(struct milter_msg *m, const struct milter_reply *r)
{
	struct milter_rcpt	*nr;
	char			*a = mm_addr(r);
	size_t			 i;

	if (a == NULL || (r->kind == MILTER_R_ADDRCPT && a[0] == '\0'))
		goto bad;
	if (r->kind == MILTER_R_CHGFROM) {
		free(m->sender);
		m->sender = a;
		m->env_changed = true;
		return 0;
	}
	for (i = 0; i < m->nr; i++)
		if (strcasecmp(m->r[i].addr, a) == 0)
			break;
	if (r->kind == MILTER_R_DELRCPT) {
		if (i < m->nr) {
			free(m->r[i].addr);
			memmove(&m->r[i], &m->r[i + 1],
			    (m->nr - i - 1) * sizeof(m->r[0]));
			m->nr--;
			m->env_changed = true;
		}
		free(a);
		return 0;
	}
	if (i < m->nr) {		/* already there: once is enough */
		free(a);
		return 0;
	}
	if (m->nr >= MILTER_MSG_RCPTS_MAX ||
	    (nr = realloc(m->r, (m->nr + 1) * sizeof(*nr))) == NULL)
		goto bad;
	m->r = nr;
	m->r[m->nr++] = (struct milter_rcpt){ a, -1 };
	m->env_changed = true;
	return 0;
bad:
	free(a);
	return -1;
}

/* A replaced body's bytes, a bare LF or CR made CRLF (the spool's lines). */
static int
mm_body_add(struct buf *b, const char *p, size_t n)
{
	size_t	i, mark = b->len;
	bool	cr = b->len > 0 && b->data[b->len - 1] == '\r';

	for (i = 0; i < n; i++) {
		if (p[i] == '\n' && !cr && buf_addc(b, '\r') == -1)
			goto bad;
		if (cr && p[i] != '\n' && buf_addc(b, '\n') == -1)
			goto bad;
		if (buf_addc(b, p[i]) == -1)
			goto bad;
		cr = p[i] == '\r';
	}
	return 0;
bad:
	b->len = mark;
	return -1;
}

void
milter_msg_body_begin(struct milter_msg *m)
{
	buf_reset(&m->repl);
	m->body_replaced = false;
}

int
milter_msg_apply(struct milter_msg *m, const struct milter_reply *r)
{
	switch (r->kind) {
	case MILTER_R_ADDHEADER:
	case MILTER_R_INSHEADER:
	case MILTER_R_CHGHEADER:
		return mm_header(m, r);
	case MILTER_R_ADDRCPT:
	case MILTER_R_DELRCPT:
	case MILTER_R_CHGFROM:
		return mm_rcpt(m, r);
	case MILTER_R_REPLBODY:
		if (!m->body_replaced) {
			buf_reset(&m->repl);
			m->body_replaced = true;
		}
		if (mm_body_add(&m->repl, r->text, r->tlen) == -1)
			return -1;
		m->body = m->repl.data;
		m->bodylen = m->repl.len;
		return 0;
	case MILTER_R_QUARANTINE:
		free(m->quarantine);
		if ((m->quarantine = mm_dup(r->text, r->tlen)) == NULL)
			return -1;
		return 0;
	default:
		return -1;
	}
}

int
milter_msg_render(const struct milter_msg *m, struct buf *out)
{
	size_t	i;

	for (i = 0; i < m->nh; i++)
		if (buf_add(out, m->h[i].raw, m->h[i].len) == -1)
			return -1;
	if ((m->sep || m->body_replaced) && buf_add(out, "\r\n", 2) == -1)
		return -1;
	if (m->bodylen > 0 && buf_add(out, m->body, m->bodylen) == -1)
		return -1;
	/* the spool's messages end in CRLF */
	if (m->body_replaced && m->bodylen > 0 &&
	    m->body[m->bodylen - 1] != '\n' && buf_add(out, "\r\n", 2) == -1)
		return -1;
	return 0;
}
