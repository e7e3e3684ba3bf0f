/*
 * dsn.c - RFC 3464 delivery reports, and the header scanners they need
 * (see dsn.h).  Owns: report text, MIME layout, the boundary choice, the
 * RFC 6533 forms for UTF-8 addresses.
 * Never: copies a byte of the original's body unless asked to (full:
 * RET=FULL with ndr_return_full); lets a CR or LF from a recipient, a
 * sender or a remote reply into a header field; lets a byte that is not
 * strict UTF-8 into a report.
 * Untrusted: the original message, addresses, remote replies.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../lib/utf8.h"
#include "../lib/xtext.h"
#include "../queue/queue.h"
#include "dsn.h"

#define DSN_BOUNDARY_MAX	70	/* RFC 2046 5.1.1 */
#define DSN_BOUNDARY_TRIES	8
/* Seed and host shown in a boundary: 20 + 1 + 20 + 1 + 24 <= 70. */
#define DSN_SEED_MAX		20
#define DSN_HOST_SHOWN		24
#define QUEUE_REC_XTEXT_SHOWN	512	/* ENVID 100, ORCPT 500 */
/* An address shown in a global report: each octet of DSN_ADDR_MAX may
 * become "\x{HH}" (RFC 6533 3), and "..." marks a cut. */
#define DSN_ADDR8_MAX		(DSN_ADDR_MAX * 6 + 4)

/* The three body parts, built before the boundary can be chosen. */
struct dsn_parts {
	struct buf	 human;		/* text/plain */
	struct buf	 status;	/* message/[global-]delivery-status */
	struct buf	 headers;	/* text/rfc822-headers, message/global-
					 * headers, or the whole message */
	bool		 eight;		/* 8-bit bytes in headers */
	bool		 global;	/* RFC 6533: UTF-8 addresses or headers
					 * of a message received with SMTPUTF8 */
};

static bool	dsn_is_ws(uint8_t);
static bool	dsn_is_sep(char);
static size_t	dsn_skip_cfws(const uint8_t *, size_t, size_t);
static size_t	dsn_token_end(const uint8_t *, size_t, size_t);
static bool	dsn_span_is(const uint8_t *, size_t, const char *);
static bool	dsn_field_is_report(const uint8_t *, size_t, size_t, size_t,
		    size_t);
static int	dsn_put_text(struct buf *, size_t, const char *, const char *,
		    size_t, const char *);
static int	dsn_put_textx(struct buf *, size_t, const char *, const char *,
		    size_t, const char *, bool);
static bool	dsn_addr_is_utf8(const char *);
static bool	dsn_wants_global(const struct dsn_input *);
static size_t	dsn_utf8_copy(const char *, char *, size_t, bool);
static int	dsn_put_addr(struct buf *, size_t, const char *, const char *,
		    const char *, bool, bool);
static bool	dsn_has_eight(const struct buf *);
static int	dsn_put_field(struct buf *, const char *, const char *,
		    const char *, size_t);
static size_t	dsn_clean_name(const char *, char *, size_t, const char *);
static int	dsn_put_date(struct buf *, const char *, time_t);
static const char *dsn_action(const char *);
static bool	dsn_is_success(const char *);
static size_t	dsn_count_success(const struct dsn_input *);
static int	dsn_put_xtext_field(struct buf *, const char *, const char *,
		    const char *);
static int	dsn_put_full(const struct dsn_input *, struct dsn_parts *);
static void	dsn_status(const struct dsn_rcpt *, char *, size_t);
static size_t	dsn_count_delayed(const struct dsn_input *);
static int	dsn_put_human(const struct dsn_input *, struct buf *, bool,
		    bool);
static int	dsn_put_status(const struct dsn_input *, struct buf *, bool);
static int	dsn_put_returned(const struct dsn_input *,
		    struct dsn_parts *);
static bool	dsn_parts_hold(const struct dsn_parts *, const char *);
static int	dsn_pick_boundary(const struct dsn_input *,
		    const struct dsn_parts *, char *, size_t);
static int	dsn_put_top(const struct dsn_input *, struct buf *,
		    const char *, const struct dsn_parts *);
static int	dsn_put_part(struct buf *, const char *, const char *,
		    const char *, const struct buf *);
static int	dsn_put_parts(struct buf *, const char *,
		    const struct dsn_input *, const struct dsn_parts *);

bool
dsn_notify_wants(unsigned notify, enum dsn_event ev)
{
	if (notify == 0)		/* RFC 3461 4.1: not given */
		notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY;
	if (notify & QUEUE_NOTIFY_NEVER)
		return false;
	switch (ev) {
	case DSN_EV_FAILURE:
		return (notify & QUEUE_NOTIFY_FAILURE) != 0;
	case DSN_EV_DELAY:
		return (notify & QUEUE_NOTIFY_DELAY) != 0;
	case DSN_EV_SUCCESS:
		return (notify & QUEUE_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

/*
 * The scanners.
 */

size_t
dsn_header_len(const uint8_t *msg, size_t len, size_t max)
{
	const uint8_t	*nl;
	size_t		 lim = len < max ? len : max, i = 0, n;

	while (i < lim) {
		if ((nl = memchr(msg + i, '\n', lim - i)) == NULL)
			return lim;
		n = (size_t)(nl - (msg + i));
		if (n == 0 || (n == 1 && msg[i] == '\r'))
			return (size_t)(nl - msg) + 1;
		i = (size_t)(nl - msg) + 1;
	}
	return lim;
}

/* Inside a field's value a CR or LF can only be part of a fold. */
static bool
dsn_is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Past folding white space and (nested (comments)), RFC 5322 3.2.2. */
static size_t
dsn_skip_cfws(const uint8_t *p, size_t end, size_t i)
{
	size_t	depth;

	for (;;) {
		while (i < end && dsn_is_ws(p[i]))
			i++;
		if (i >= end || p[i] != '(')
			return i;
		for (depth = 0; i < end; i++) {
			if (p[i] == '\\' && i + 1 < end)
				i++;
			else if (p[i] == '(')
				depth++;
			else if (p[i] == ')' && --depth == 0) {
				i++;
				break;
			}
		}
	}
}

/* RFC 2045 5.1 token: no space, control or tspecial. */
static size_t
dsn_token_end(const uint8_t *p, size_t end, size_t i)
{
	while (i < end && p[i] > ' ' && p[i] < 0x7f &&
	    strchr("()<>@,;:\\\"/[]?=", p[i]) == NULL)
		i++;
	return i;
}

static bool
dsn_span_is(const uint8_t *p, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp((const char *)p, word, n) == 0;
}

/* One field: name in [i, ne), value in [v, end). */
static bool
dsn_field_is_report(const uint8_t *p, size_t i, size_t ne, size_t v,
    size_t end)
{
	size_t	t;

	if (dsn_span_is(p + i, ne - i, "Auto-Submitted")) {
		/* RFC 3834 5: anything but "no" is automatic, even junk. */
		v = dsn_skip_cfws(p, end, v);
		t = dsn_token_end(p, end, v);
		return !dsn_span_is(p + v, t - v, "no");
	}
	if (!dsn_span_is(p + i, ne - i, "Content-Type"))
		return false;
	v = dsn_skip_cfws(p, end, v);
	t = dsn_token_end(p, end, v);
	if (!dsn_span_is(p + v, t - v, "multipart"))
		return false;
	v = dsn_skip_cfws(p, end, t);
	if (v >= end || p[v] != '/')
		return false;
	v = dsn_skip_cfws(p, end, v + 1);
	t = dsn_token_end(p, end, v);
	return dsn_span_is(p + v, t - v, "report");
}

bool
dsn_is_report(const uint8_t *msg, size_t len)
{
	const uint8_t	*nl, *colon;
	size_t		 hlen, i = 0, end, ne;

	hlen = dsn_header_len(msg, len, DSN_HEADERS_MAX);
	while (i < hlen) {
		/* The field runs on over lines that start with WSP. */
		end = i;
		do {
			nl = memchr(msg + end, '\n', hlen - end);
			end = nl != NULL ? (size_t)(nl - msg) + 1 : hlen;
		} while (end < hlen && (msg[end] == ' ' || msg[end] == '\t'));
		nl = memchr(msg + i, '\n', end - i);
		colon = memchr(msg + i, ':',
		    (nl != NULL ? (size_t)(nl - msg) : end) - i);
		if (colon != NULL && msg[i] != ' ' && msg[i] != '\t') {
			ne = (size_t)(colon - msg);
			while (ne > i && (msg[ne - 1] == ' ' ||
			    msg[ne - 1] == '\t'))
				ne--;	/* RFC 5322 4.5.8 obs-field */
			if (dsn_field_is_report(msg, i, ne,
			    (size_t)(colon - msg) + 1, end))
				return true;
		}
		i = end;
	}
	return false;
}

/*
 * Cleaning and folding of untrusted text.
 */

static bool
dsn_is_sep(char c)
{
	return (unsigned char)c <= ' ' || c == 0x7f;
}

/*
 * Append at most max bytes of s as words: any run of blanks and control
 * characters (CR and LF included) is one space, an 8-bit byte is '?'.
 * Lines are folded before col would pass DSN_FOLD_AT, and a longer word
 * is cut so no line passes DSN_LINE_MAX; each new line starts with cont.
 * "..." marks a cut at max, then the trusted tail and CRLF end the line.
 */
static int
dsn_put_text(struct buf *b, size_t col, const char *cont, const char *s,
    size_t max, const char *tail)
{
	return dsn_put_textx(b, col, cont, s, max, tail, false);
}

/*
 * The same; keep8: s is strict UTF-8 (dsn_utf8_copy made it so) and its
 * 8-bit bytes are kept, a long word never cut inside a character.
 */
static int
dsn_put_textx(struct buf *b, size_t col, const char *cont,
    const char *s, size_t max, const char *tail, bool keep8)
{
	size_t	n, i = 0, w, wl, j, k, hard, clen = strlen(cont);
	bool	cut, first = true;

	n = s != NULL ? strnlen(s, max) : 0;
	cut = s != NULL && n == max && s[n] != '\0';
	hard = DSN_LINE_MAX - strlen(tail) - (cut ? 3 : 0);
	while (i < n) {
		while (i < n && dsn_is_sep(s[i]))
			i++;
		for (w = i; i < n && !dsn_is_sep(s[i]); i++)
			;
		if ((wl = i - w) == 0)
			break;
		if (!first && col + 1 + wl > DSN_FOLD_AT) {
			if (buf_addf(b, "\r\n%s", cont) == -1)
				return -1;
			col = clen;
		} else if (!first) {
			if (buf_addc(b, ' ') == -1)
				return -1;
			col++;
		}
		for (; wl > 0; wl -= k, w += k) {
			if (col >= hard) {
				if (buf_addf(b, "\r\n%s", cont) == -1)
					return -1;
				col = clen;
			}
			k = wl < hard - col ? wl : hard - col;
			while (keep8 && k > 0 && k < wl &&
			    ((unsigned char)s[w + k] & 0xc0) == 0x80)
				k--;	/* a UTF-8 character stays whole */
			for (j = 0; j < k; j++)
				if (buf_addc(b, (unsigned char)s[w + j] >=
				    0x80 && !keep8 ? '?' : s[w + j]) == -1)
					return -1;
			col = k > 0 ? col + k : hard;	/* no room: fold */
		}
		first = false;
	}
	return buf_addf(b, "%s%s\r\n", cut ? "..." : "", tail);
}

/* "Name: prefix value" as one folded header field. */
static int
dsn_put_field(struct buf *b, const char *name, const char *prefix,
    const char *value, size_t max)
{
	if (buf_addf(b, "%s: %s", name, prefix) == -1)
		return -1;
	return dsn_put_text(b, strlen(name) + 2 + strlen(prefix), " ", value,
	    max, "");
}

/*
 * RFC 6533: UTF-8 addresses.
 */

/* Not ASCII, and strict UTF-8 (no C1 controls) within DSN_ADDR_MAX. */
static bool
dsn_addr_is_utf8(const char *a)
{
	const uint8_t	*p = (const uint8_t *)a;
	size_t		 i, n = a != NULL ? strnlen(a, DSN_ADDR_MAX) : 0;
	bool		 eight = false;
	int		 k;

	for (i = 0; i < n; i += (size_t)k) {
		k = 1;
		if (p[i] < 0x80)
			continue;
		if ((k = utf8_char(p + i, n - i)) <= 0)
			return false;
		eight = true;
	}
	return eight;
}

/*
 * A global report (RFC 6533 6) when an address it names is UTF-8: such
 * an address was taken only with MAIL ... SMTPUTF8 (smtp_tx.c refuses it
 * otherwise, 553 5.6.7), so the addresses say it of themselves.
 */
static bool
dsn_wants_global(const struct dsn_input *in)
{
	size_t	i;

	if (dsn_addr_is_utf8(in->sender))
		return true;
	for (i = 0; i < in->nrcpts; i++)
		if (dsn_addr_is_utf8(in->rcpts[i].rcpt))
			return true;
	return false;
}

/*
 * At most DSN_ADDR_MAX bytes of s into out (NUL-terminated), cut only
 * between characters, "..." after a cut.  Strict UTF-8 characters are
 * kept and any other 8-bit byte becomes '?'.  unitext: RFC 6533 3
 * utf-8-addr-unitext, where an ASCII byte that is not a QCHAR (a control,
 * SP, '\', '+', '=', DEL) is written "\x{HH}"; else ASCII is copied and
 * dsn_put_text deals with blanks.  The length written.
 */
static size_t
dsn_utf8_copy(const char *s, char *out, size_t outsz, bool unitext)
{
	const uint8_t	*p = (const uint8_t *)s;
	size_t		 n = s != NULL ? strnlen(s, DSN_ADDR_MAX + 1) : 0;
	size_t		 i, o = 0, end = n > DSN_ADDR_MAX ? DSN_ADDR_MAX : n;
	int		 k;

	for (i = 0; i < end && o + 8 < outsz; i += (size_t)k) {
		k = p[i] < 0x80 ? 1 : utf8_char(p + i, end - i);
		if (k <= 0) {
			if (k == 0 && n > end)
				break;		/* a character the cut split */
			out[o++] = '?';
			k = 1;
		} else if (k > 1) {
			memcpy(out + o, p + i, (size_t)k);
			o += (size_t)k;
		} else if (unitext && (p[i] <= ' ' || p[i] == '\\' ||
		    p[i] == '+' || p[i] == '=' || p[i] == 0x7f))
			o += (size_t)snprintf(out + o, outsz - o, "\\x{%02X}",
			    p[i]);
		else
			out[o++] = (char)p[i];
	}
	if (i < n && o + 3 < outsz) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

/*
 * An address as words (dsn_put_text), then tail: in a global report a
 * UTF-8 address keeps its characters, as unitext when asked (RFC 6533 3,
 * the "utf-8" address type); any other address is cleaned as ever.
 */
static int
dsn_put_addr(struct buf *b, size_t col, const char *cont, const char *a,
    const char *tail, bool global, bool unitext)
{
	char	enc[DSN_ADDR8_MAX];

	if (!global || !dsn_addr_is_utf8(a))
		return dsn_put_text(b, col, cont, a, DSN_ADDR_MAX, tail);
	(void)dsn_utf8_copy(a, enc, sizeof(enc), unitext);
	return dsn_put_textx(b, col, cont, enc, sizeof(enc), tail, true);
}

static bool
dsn_has_eight(const struct buf *b)
{
	size_t	i;

	for (i = 0; i < b->len; i++)
		if (b->data[i] >= 0x80)
			return true;
	return false;
}

/*
 * Keep only letters, digits and the bytes in extra, at most
 * DSN_NAME_MAX of s and outsz - 1 in all; the length kept.
 */
static size_t
dsn_clean_name(const char *s, char *out, size_t outsz, const char *extra)
{
	size_t	i, o = 0, n = s != NULL ? strnlen(s, DSN_NAME_MAX) : 0;

	for (i = 0; i < n && o + 1 < outsz; i++)
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i]) != NULL)
			out[o++] = s[i];
	out[o] = '\0';
	return o;
}

/* RFC 5322 3.3 date-time, in UTC; names spelt out, whatever the locale. */
static int
dsn_put_date(struct buf *b, const char *name, time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed",
		"Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
		"May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	 tm;
	time_t		 zero = 0;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_year > 9999 - 1900 ||
	    tm.tm_year < 0)
		(void)gmtime_r(&zero, &tm);
	return buf_addf(b, "%s: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
	    name, days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * What each recipient's report says.
 */

/* RFC 3464 2.3.3; anything else is reported as a failure. */
static const char *
dsn_action(const char *a)
{
	static const char *const actions[] = { "failed", "delayed",
		"delivered", "relayed", "expanded" };
	size_t	i;

	for (i = 0; a != NULL && i < sizeof(actions) / sizeof(actions[0]); i++)
		if (strcasecmp(a, actions[i]) == 0)
			return actions[i];
	return "failed";
}

/* RFC 3463 2: class "." 1*3digit "." 1*3digit, else X.0.0 by action. */
static void
dsn_status(const struct dsn_rcpt *r, char *out, size_t outsz)
{
	const char	*s = r->status != NULL ? r->status : "";
	size_t		 i = 2, part = 0, ok;

	if ((s[0] == '2' || s[0] == '4' || s[0] == '5') && s[1] == '.') {
		for (part = 0; part < 2; part++) {
			for (ok = 0; s[i] >= '0' && s[i] <= '9' && ok < 4; i++)
				ok++;
			if (ok == 0 || ok > 3 || s[i] != (part ? '\0' : '.'))
				break;
			i++;
		}
	}
	if (part == 2 && i <= outsz)
		(void)snprintf(out, outsz, "%s", s);
	else
		(void)snprintf(out, outsz, "%s",
		    strcmp(dsn_action(r->action), "delayed") == 0 ? "4.0.0" :
		    dsn_is_success(r->action) ? "2.0.0" : "5.0.0");
}

/* RFC 3464 2.3.3: "delivered" and "relayed" report a success. */
static bool
dsn_is_success(const char *a)
{
	const char	*s = dsn_action(a);

	return strcmp(s, "delivered") == 0 || strcmp(s, "relayed") == 0;
}

static size_t
dsn_count_success(const struct dsn_input *in)
{
	size_t	i, n = 0;

	for (i = 0; i < in->nrcpts; i++)
		n += dsn_is_success(in->rcpts[i].action);
	return n;
}

static size_t
dsn_count_delayed(const struct dsn_input *in)
{
	size_t	i, n = 0;

	for (i = 0; i < in->nrcpts; i++)
		if (strcmp(dsn_action(in->rcpts[i].action), "delayed") == 0)
			n++;
	return n;
}

/*
 * The three parts (RFC 6522 3): for people, for programs, and the
 * original's header section.
 */

static int
dsn_put_human(const struct dsn_input *in, struct buf *b, bool headers,
    bool global)
{
	const struct dsn_rcpt	*r;
	char			 host[DSN_NAME_MAX + 1], tail[64], st[12];
	size_t			 i, ndelayed = dsn_count_delayed(in);
	size_t			 nok = dsn_count_success(in);
	const char		*intro;

	if (nok == in->nrcpts)
		intro = "Your message was delivered to the recipients below, "
		    "or passed on (\"relayed\")\r\nto a mail system that "
		    "sends no further reports.\r\n";
	else if (ndelayed == in->nrcpts)
		intro = "Your message could not be delivered yet to the "
		    "recipients below.\r\nThe mail system will keep trying; "
		    "you need not send it again.\r\n";
	else if (ndelayed > 0)
		intro = "Your message could not be delivered to the recipients "
		    "below.\r\nThose marked \"delayed\" are still being "
		    "retried.\r\n";
	else
		intro = "Your message could not be delivered to the recipients "
		    "below.\r\n";
	(void)dsn_clean_name(in->reporting_mta, host, sizeof(host), ".-[]:");
	if (buf_addf(b, "This is the mail system at host %s.\r\n\r\n%s%s",
	    host, intro, headers && !in->full ? "Only the header section of "
	    "your message is returned below.\r\n" : "") == -1)
		return -1;
	for (i = 0; i < in->nrcpts; i++) {
		r = &in->rcpts[i];
		dsn_status(r, st, sizeof(st));
		(void)snprintf(tail, sizeof(tail), ">: %s, status %s",
		    dsn_action(r->action), st);
		if (buf_add(b, "\r\n<", 3) == -1 ||
		    dsn_put_addr(b, 1, "    ", r->rcpt, tail, global, false) ==
		    -1)
			return -1;
		if (r->mta != NULL && (buf_addf(b, "    remote host: ") == -1 ||
		    dsn_put_text(b, 17, "      ", r->mta, DSN_NAME_MAX, "") ==
		    -1))
			return -1;
		if (r->diag != NULL && (buf_addf(b, "    reply: ") == -1 ||
		    dsn_put_text(b, 11, "      ", r->diag, DSN_DIAG_MAX, "") ==
		    -1))
			return -1;
	}
	return 0;
}

/*
 * RFC 3464 2.2.1 Original-Envelope-Id (ENVID), 2.3.1 Original-Recipient
 * ("type;" then the ORCPT address): xtext decoded (RFC 3461 4.2, 4.4:
 * printable US-ASCII once decoded, so nothing here can break a line);
 * type NULL: the value is "type;xtext" and only the address is decoded.
 * Nothing when v is NULL or does not decode.
 */
static int
dsn_put_xtext_field(struct buf *b, const char *name, const char *type,
    const char *v)
{
	char		 dec[QUEUE_REC_XTEXT_SHOWN + 1], pre[64];
	const char	*semi, *x = v;

	if (v == NULL || v[0] == '\0')
		return 0;
	if (type == NULL) {
		if ((semi = strchr(v, ';')) == NULL ||
		    (size_t)(semi - v) >= sizeof(pre) - 2)
			return 0;
		(void)snprintf(pre, sizeof(pre), "%.*s;", (int)(semi - v), v);
		x = semi + 1;
	} else
		(void)snprintf(pre, sizeof(pre), "%s", type);
	if (xtext_decode((const uint8_t *)x, strlen(x), dec, sizeof(dec)) < 0)
		return 0;
	return dsn_put_field(b, name, pre, dec, QUEUE_REC_XTEXT_SHOWN);
}

/*
 * RFC 3464 2.1: per-message fields, then a group per recipient.  global:
 * a UTF-8 Final-Recipient is of the "utf-8" type (RFC 6533 3, in the
 * unitext form that message/global-delivery-status carries); an ASCII
 * one stays "rfc822".
 */
static int
dsn_put_status(const struct dsn_input *in, struct buf *b, bool global)
{
	const struct dsn_rcpt	*r;
	char			 st[12];
	size_t			 i;
	bool			 u8;

	if (dsn_put_xtext_field(b, "Original-Envelope-Id", "", in->envid) ==
	    -1 ||
	    dsn_put_field(b, "Reporting-MTA", "dns; ", in->reporting_mta,
	    DSN_NAME_MAX) == -1 ||
	    dsn_put_field(b, "X-Mxgate-Queue-ID", "", in->qid,
	    DSN_NAME_MAX) == -1 ||
	    dsn_put_date(b, "Arrival-Date", in->arrival) == -1)
		return -1;
	for (i = 0; i < in->nrcpts; i++) {
		r = &in->rcpts[i];
		dsn_status(r, st, sizeof(st));
		u8 = global && dsn_addr_is_utf8(r->rcpt);
		if (buf_add(b, "\r\n", 2) == -1 ||
		    dsn_put_xtext_field(b, "Original-Recipient", NULL,
		    r->orcpt) == -1 ||
		    buf_addf(b, "Final-Recipient: %s; ", u8 ? "utf-8" :
		    "rfc822") == -1 ||
		    dsn_put_addr(b, u8 ? 24 : 25, " ", r->rcpt, "", u8, true) ==
		    -1 ||
		    buf_addf(b, "Action: %s\r\nStatus: %s\r\n",
		    dsn_action(r->action), st) == -1)
			return -1;
		if (r->mta != NULL && dsn_put_field(b, "Remote-MTA", "dns; ",
		    r->mta, DSN_NAME_MAX) == -1)
			return -1;
		if (r->diag != NULL && dsn_put_field(b, "Diagnostic-Code",
		    "smtp; ", r->diag, DSN_DIAG_MAX) == -1)
			return -1;
	}
	return 0;
}

/*
 * The header section, never a byte past it: line ends become CRLF, the
 * ending empty line is dropped, a control byte other than HTAB becomes
 * '?', and a line past DSN_LINE_MAX is folded (CRLF SP) where it is cut.
 */
static int
dsn_put_returned(const struct dsn_input *in, struct dsn_parts *pp)
{
	const uint8_t	*p = in->msg, *nl;
	struct buf	*b = &pp->headers;
	size_t		 hlen, i = 0, n, j, col;
	uint8_t		 c;

	hlen = p != NULL ? dsn_header_len(p, in->msglen, DSN_HEADERS_MAX) : 0;
	while (i < hlen) {
		nl = memchr(p + i, '\n', hlen - i);
		n = (nl != NULL ? (size_t)(nl - p) : hlen) - i;
		j = i;
		i += n + 1;
		if (n > 0 && p[j + n - 1] == '\r' && nl != NULL)
			n--;
		if (n == 0)
			break;	/* the empty line ending the section */
		for (col = 0; n > 0; n--, j++, col++) {
			if (col == DSN_LINE_MAX) {
				if (buf_add(b, "\r\n ", 3) == -1)
					return -1;
				col = 1;
			}
			if ((c = p[j]) >= 0x80)
				pp->eight = true;
			else if ((c < ' ' && c != '\t') || c == 0x7f)
				c = '?';
			if (buf_addc(b, c) == -1)
				return -1;
		}
		if (buf_add(b, "\r\n", 2) == -1)
			return -1;
	}
	return 0;
}

/*
 * RET=FULL (RFC 3461 4.3), when the administrator allows it: the whole
 * message, as stored (CRLF lines), into the third part.  -1 if it does
 * not fit; the caller then returns the header section.
 */
static int
dsn_put_full(const struct dsn_input *in, struct dsn_parts *pp)
{
	size_t	i;

	if (in->msg == NULL || in->msglen == 0 ||
	    buf_add(&pp->headers, in->msg, in->msglen) == -1)
		return -1;
	for (i = 0; i < in->msglen; i++)
		if (in->msg[i] >= 0x80)
			pp->eight = true;
	if (in->msglen < 2 || memcmp(in->msg + in->msglen - 2, "\r\n", 2))
		return buf_add(&pp->headers, "\r\n", 2);
	return 0;
}

/*
 * The MIME layout.
 */

static bool
dsn_parts_hold(const struct dsn_parts *pp, const char *s)
{
	size_t	n = strlen(s);

	return (pp->human.len > 0 && memmem(pp->human.data, pp->human.len, s,
	    n) != NULL) || (pp->status.len > 0 && memmem(pp->status.data,
	    pp->status.len, s, n) != NULL) || (pp->headers.len > 0 &&
	    memmem(pp->headers.data, pp->headers.len, s, n) != NULL);
}

/*
 * "SEED.NOW/HOST", and if the returned headers happen to hold it (they
 * are the sender's bytes), variants carrying a hash of all three parts,
 * which a sender cannot write into the very bytes it is a hash of.
 */
static int
dsn_pick_boundary(const struct dsn_input *in, const struct dsn_parts *pp,
    char *out, size_t outsz)
{
	const struct buf	*parts[3] = { &pp->human, &pp->status,
				    &pp->headers };
	char			 seed[DSN_SEED_MAX + 1];
	char			 host[DSN_HOST_SHOWN + 1];
	uint64_t		 h = 0xcbf29ce484222325ULL;	/* FNV-1a */
	int			 n;
	size_t			 i, j;

	(void)dsn_clean_name(in->boundary_seed, seed, sizeof(seed), "-_");
	(void)dsn_clean_name(in->reporting_mta, host, sizeof(host), ".-");
	for (i = 0; i < 3; i++)
		for (j = 0; j < parts[i]->len; j++)
			h = (h ^ parts[i]->data[j]) * 0x100000001b3ULL;
	for (i = 0; i < DSN_BOUNDARY_TRIES; i++) {
		if (i == 0)
			n = snprintf(out, outsz, "%s.%lld/%s", seed,
			    (long long)in->now, host);
		else
			n = snprintf(out, outsz, "%s.%016llx/%s", seed,
			    (unsigned long long)(h + i * 0x9e3779b97f4a7c15ULL),
			    host);
		if (n < 0 || (size_t)n >= outsz)
			return -1;	/* cannot happen: see DSN_SEED_MAX */
		if (!dsn_parts_hold(pp, out))
			return 0;
	}
	return -1;
}

static int
dsn_put_top(const struct dsn_input *in, struct buf *b, const char *bnd,
    const struct dsn_parts *pp)
{
	char	host[DSN_NAME_MAX + 1], qid[DSN_NAME_MAX + 1];
	bool	eight = pp->eight || dsn_has_eight(&pp->human) ||
		    dsn_has_eight(&pp->status);

	if (dsn_clean_name(in->reporting_mta, host, sizeof(host), ".-[]:") ==
	    0)
		(void)snprintf(host, sizeof(host), "localhost");
	if (dsn_clean_name(in->qid, qid, sizeof(qid), "-_") == 0)
		(void)snprintf(qid, sizeof(qid), "0");
	if (buf_addf(b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n"
	    "To: <", host) == -1 ||
	    dsn_put_addr(b, 5, " ", in->sender, ">", pp->global, false) ==
	    -1 ||
	    buf_addf(b, "Subject: %s\r\n", dsn_count_delayed(in) == in->nrcpts ?
	    "Delayed Mail (still being retried)" :
	    dsn_count_success(in) == in->nrcpts ?
	    "Successful Mail Delivery Report" :
	    "Undelivered Mail Returned to Sender") == -1 ||
	    dsn_put_date(b, "Date", in->now) == -1)
		return -1;
	/* RFC 3834 5: auto-replied, so no one auto-replies to it. */
	return buf_addf(b, "Message-ID: <%s.%lld.dsn@%s>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=%sdelivery-status;"
	    "\r\n\tboundary=\"%s\"\r\n"
	    "%s"
	    "\r\n"
	    "This is a MIME-encapsulated message.\r\n", qid,
	    (long long)in->now, host, pp->global ? "global-" : "", bnd,
	    eight ? "Content-Transfer-Encoding: 8bit\r\n" : "");
}

static int
dsn_put_part(struct buf *b, const char *bnd, const char *desc,
    const char *type, const struct buf *content)
{
	if (buf_addf(b, "\r\n--%s\r\nContent-Description: %s\r\n"
	    "Content-Type: %s\r\n\r\n", bnd, desc, type) == -1)
		return -1;
	return buf_add(b, content->data, content->len);
}

/*
 * The parts in order (RFC 6522 3; the third is optional, and left out
 * when there is nothing to return).  A global report (RFC 6533 6) has
 * UTF-8 text, message/global-delivery-status and message/global-headers
 * (or message/global, RFC 6532 3.7, for the whole message); a part with
 * 8-bit bytes says so.
 */
static int
dsn_put_parts(struct buf *b, const char *bnd, const struct dsn_input *in,
    const struct dsn_parts *pp)
{
	static const char	cte[] = "\r\nContent-Transfer-Encoding: 8bit";
	char			type[96];
	const char		*third;

	(void)snprintf(type, sizeof(type), "text/plain; charset=%s%s",
	    pp->global ? "utf-8" : "us-ascii",
	    dsn_has_eight(&pp->human) ? cte : "");
	if (dsn_put_part(b, bnd, "Notification", type, &pp->human) == -1)
		return -1;
	(void)snprintf(type, sizeof(type), "message/%sdelivery-status%s",
	    pp->global ? "global-" : "",
	    dsn_has_eight(&pp->status) ? cte : "");
	if (dsn_put_part(b, bnd, "Delivery report", type, &pp->status) == -1)
		return -1;
	if (pp->headers.len == 0)
		return 0;
	if (in->full)
		third = pp->global ? "message/global" : "message/rfc822";
	else
		third = pp->global ? "message/global-headers" :
		    "text/rfc822-headers";
	(void)snprintf(type, sizeof(type), "%s%s", third, pp->eight ? cte :
	    "");
	return dsn_put_part(b, bnd, in->full ? "Undelivered Message" :
	    "Undelivered Message Headers", type, &pp->headers);
}

int
dsn_build(const struct dsn_input *in, struct buf *out)
{
	struct dsn_parts	 pp;
	char			 bnd[DSN_BOUNDARY_MAX + 1];
	size_t			 mark = out->len;
	int			 rc = -1;

	if (in->nrcpts == 0 || in->sender == NULL || in->sender[0] == '\0')
		return -1;
	memset(&pp, 0, sizeof(pp));
	buf_init(&pp.human, out->max);
	buf_init(&pp.status, out->max);
	buf_init(&pp.headers, out->max);
	if (in->full && dsn_put_full(in, &pp) == -1) {
		buf_reset(&pp.headers);
		pp.eight = false;
	}
	if (pp.headers.len == 0 && dsn_put_returned(in, &pp) == -1)
		goto done;
	/* RFC 6533 6: UTF-8 addresses, or the UTF-8 header fields (RFC
	 * 6532) of a message received with SMTPUTF8 */
	pp.global = dsn_wants_global(in) || (in->smtputf8 && pp.eight);
	if (dsn_put_human(in, &pp.human, pp.headers.len > 0, pp.global) ==
	    -1 || dsn_put_status(in, &pp.status, pp.global) == -1 ||
	    dsn_pick_boundary(in, &pp, bnd, sizeof(bnd)) == -1)
		goto done;
	if (dsn_put_top(in, out, bnd, &pp) == -1 ||
	    dsn_put_parts(out, bnd, in, &pp) == -1)
		goto done;
	rc = buf_addf(out, "\r\n--%s--\r\n", bnd);
done:
	if (rc == -1 && out->data != NULL) {
		out->len = mark;
		out->data[mark] = '\0';
	}
	buf_free(&pp.human);
	buf_free(&pp.status);
	buf_free(&pp.headers);
	return rc;
}
