/*
 * smtp_parse.c - pure, bounded parsers for SMTP command lines, MAIL/RCPT
 * paths and ESMTP parameters (see smtp_parse.h).
 * Owns: the RFC 5321 4.1.2 grammar.  Never: I/O, allocation, globals, or
 * reading past a named limit; a path is never scanned past SMTP_PATH_MAX.
 * Untrusted: every byte.  RFC 5321 4.1.1, 4.1.2, 4.1.3, 4.5.3.1; RFC 6531
 * 3.3 (UTF-8 in atext, qtextSMTP and sub-domain; RFC 6532 3.1).
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <string.h>
#include <strings.h>

#include "../lib/utf8.h"
#include "smtp_parse.h"

/* Longest IPv6 literal text (with an embedded IPv4 part) plus NUL. */
#define SMTP_LITERAL_TEXT_MAX	INET6_ADDRSTRLEN

/*
 * A cursor over a path.  lim is min(len, SMTP_PATH_MAX): the scanners
 * never look past it, and capped says they wanted to, which turns the
 * failure into PARSE_TOOLONG (the path did not end within its limit).
 */
struct path_cur {
	const uint8_t	*p;
	size_t		 len;
	size_t		 lim;
	size_t		 i;
	bool		 capped;
	bool		 bad_utf8;	/* stopped at bytes that are no UTF-8 */
};

static int		 cur_peek(struct path_cur *);
static bool		 cur_eat(struct path_cur *, int);
static int		 cur_utf8(struct path_cur *);
static bool		 char_is_alpha(int);
static bool		 char_is_letdig(int);
static bool		 char_is_atext(int);
static bool		 char_is_qtext(int);
static bool		 char_is_dcontent(int);
static bool		 char_is_vchar(int);
static enum parse_rc	 path_scan_domain(struct path_cur *);
static enum parse_rc	 path_scan_route(struct path_cur *);
static enum parse_rc	 path_scan_dotstring(struct path_cur *);
static enum parse_rc	 path_scan_quoted(struct path_cur *);
static enum parse_rc	 path_scan_local(struct path_cur *, struct smtp_addr *);
static bool		 path_literal_general(const uint8_t *, size_t);
static bool		 path_literal_valid(const uint8_t *, size_t);
static enum parse_rc	 path_scan_literal(struct path_cur *);
static enum parse_rc	 path_scan_mailbox(struct path_cur *,
			    struct smtp_addr *);
static enum parse_rc	 path_scan(const uint8_t *, size_t, bool,
			    struct smtp_addr *, size_t *, bool *);
static enum parse_rc	 path_scan_bare(const uint8_t *, size_t,
			    struct smtp_addr *, size_t *, bool *);
static size_t		 arg_scan_param(const uint8_t *, size_t,
			    struct smtp_param *);

/* The next byte, or -1 at the end (or at the limit: then mark capped). */
static int
cur_peek(struct path_cur *c)
{
	if (c->i < c->lim)
		return c->p[c->i];
	if (c->lim < c->len)
		c->capped = true;
	return -1;
}

static bool
cur_eat(struct path_cur *c, int ch)
{
	if (cur_peek(c) != ch)
		return false;
	c->i++;
	return true;
}

/*
 * UTF8-non-ascii at the cursor (RFC 6532 3.1): eats it and returns its
 * length; 0 if the byte there is ASCII or the end; -1 if it is no strict
 * UTF-8 (marked bad_utf8), or a character the limit cuts (marked capped).
 */
static int
cur_utf8(struct path_cur *c)
{
	int	ch = cur_peek(c), n;

	if (ch < 0x80)
		return 0;
	n = utf8_char(c->p + c->i, c->lim - c->i);
	if (n == 0 && c->lim < c->len)
		c->capped = true;
	else if (n <= 0)
		c->bad_utf8 = true;
	if (n <= 0)
		return -1;
	c->i += (size_t)n;
	return n;
}

/* ASCII only: the C library's ctype would follow the locale. */
static bool
char_is_alpha(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool
char_is_letdig(int ch)
{
	return char_is_alpha(ch) || (ch >= '0' && ch <= '9');
}

/* RFC 5322 3.2.3 atext, as RFC 5321 4.1.2 borrows it. */
static bool
char_is_atext(int ch)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";

	if (char_is_letdig(ch))
		return true;
	return ch > 0 && memchr(specials, ch, sizeof(specials) - 1) != NULL;
}

/* qtextSMTP: %d32-33 / %d35-91 / %d93-126 (no DQUOTE, no backslash). */
static bool
char_is_qtext(int ch)
{
	return ch >= 32 && ch <= 126 && ch != '"' && ch != '\\';
}

/* dcontent: %d33-90 / %d94-126 (no "[", "\", "]"). */
static bool
char_is_dcontent(int ch)
{
	return (ch >= 33 && ch <= 90) || (ch >= 94 && ch <= 126);
}

/* esmtp-value: %d33-60 / %d62-126 (printable, no "="). */
static bool
char_is_vchar(int ch)
{
	return ch >= 33 && ch <= 126 && ch != '=';
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str].
 * A label may not end with "-"; a trailing dot is an error (there is no
 * empty label).  Labels and the whole name are bounded (RFC 1035 2.3.4,
 * RFC 5321 4.5.3.1.2).
 */
static enum parse_rc
path_scan_domain(struct path_cur *c)
{
	size_t	start = c->i, label;
	int	ch, last;

	for (;;) {
		label = c->i;
		if (char_is_letdig(last = cur_peek(c)))
			c->i++;
		else if (cur_utf8(c) <= 0)	/* a U-label may start so */
			return c->capped ? PARSE_TOOLONG : PARSE_BAD;
		for (;;) {
			if (char_is_letdig(ch = cur_peek(c)) || ch == '-')
				c->i++;
			else if (ch < 0x80 || cur_utf8(c) <= 0)
				break;
			last = ch;
			if (c->i - label > SMTP_LABEL_MAX ||
			    c->i - start > SMTP_DOMAIN_MAX)
				return PARSE_TOOLONG;
		}
		if (c->bad_utf8)
			return PARSE_BAD;
		if (c->capped)
			return PARSE_TOOLONG;
		if (last == '-')
			return PARSE_BAD;
		if (!cur_eat(c, '.'))
			return PARSE_OK;
	}
}

/*
 * A-d-l = At-domain *( "," At-domain ) ":"; RFC 5321 4.1.2 and C.6 say
 * to accept and ignore it.  It routes nothing, but it must parse.
 */
static enum parse_rc
path_scan_route(struct path_cur *c)
{
	enum parse_rc	rc;

	do {
		if (!cur_eat(c, '@'))
			return c->capped ? PARSE_TOOLONG : PARSE_BAD;
		if ((rc = path_scan_domain(c)) != PARSE_OK)
			return rc;
	} while (cur_eat(c, ','));
	if (!cur_eat(c, ':'))
		return c->capped ? PARSE_TOOLONG : PARSE_BAD;
	return PARSE_OK;
}

/* One atext or UTF8-non-ascii character (RFC 6531 3.3); false if none. */
static bool
path_eat_atext(struct path_cur *c)
{
	int	ch = cur_peek(c);

	if (char_is_atext(ch)) {
		c->i++;
		return true;
	}
	return ch >= 0x80 && cur_utf8(c) > 0;
}

/* Dot-string = Atom *("." Atom); Atom = 1*atext. */
static enum parse_rc
path_scan_dotstring(struct path_cur *c)
{
	do {
		if (!path_eat_atext(c))
			return c->capped ? PARSE_TOOLONG : PARSE_BAD;
		while (path_eat_atext(c))
			;
		if (c->bad_utf8)
			return PARSE_BAD;
	} while (cur_eat(c, '.'));
	return PARSE_OK;
}

/* Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE. */
static enum parse_rc
path_scan_quoted(struct path_cur *c)
{
	int	ch;

	c->i++;				/* the opening DQUOTE */
	for (;;) {
		ch = cur_peek(c);
		if (ch == '"') {
			c->i++;
			return PARSE_OK;
		}
		if (ch == '\\') {
			/* quoted-pairSMTP = "\" %d32-126 */
			c->i++;
			ch = cur_peek(c);
			if (ch < 32 || ch > 126)
				break;
		} else if (ch >= 0x80) {
			if (cur_utf8(c) <= 0)	/* qtextSMTP =/ UTF-8 */
				break;
			continue;
		} else if (!char_is_qtext(ch))
			break;
		c->i++;
	}
	return c->capped ? PARSE_TOOLONG : PARSE_BAD;
}

/* Local-part = Dot-string / Quoted-string, at most SMTP_LOCAL_MAX. */
static enum parse_rc
path_scan_local(struct path_cur *c, struct smtp_addr *a)
{
	enum parse_rc	rc;
	size_t		start = c->i;

	a->quoted = cur_peek(c) == '"';
	rc = a->quoted ? path_scan_quoted(c) : path_scan_dotstring(c);
	if (rc != PARSE_OK)
		return rc;
	if (c->i - start > SMTP_LOCAL_MAX)
		return PARSE_TOOLONG;
	a->local.p = c->p + start;
	a->local.len = c->i - start;
	return PARSE_OK;
}

/*
 * General-address-literal = Standardized-tag ":" 1*dcontent, with
 * Standardized-tag = Ldh-str.  Accepted for syntax only: no tag but IPv6
 * is registered, and such a domain is never one of ours.  The tag must
 * start with a letter (registered tags are names), so a bare IPv6
 * address such as [2001:db8::1] is refused rather than read as a tag.
 */
static bool
path_literal_general(const uint8_t *s, size_t n)
{
	const uint8_t	*colon;
	size_t		 k, taglen;

	if ((colon = memchr(s, ':', n)) == NULL)
		return false;
	taglen = (size_t)(colon - s);
	if (taglen == 0 || taglen + 1 == n || !char_is_alpha(s[0]) ||
	    s[taglen - 1] == '-')
		return false;
	for (k = 0; k < taglen; k++)
		if (!char_is_letdig(s[k]) && s[k] != '-')
			return false;
	return true;		/* the rest is dcontent already */
}

/* The text between the brackets; inet_pton wants a NUL-terminated copy. */
static bool
path_literal_valid(const uint8_t *s, size_t n)
{
	char		text[SMTP_LITERAL_TEXT_MAX];
	uint8_t		bin[sizeof(struct in6_addr)];
	int		af = AF_INET;

	if (n >= 5 && strncasecmp((const char *)s, "IPv6:", 5) == 0) {
		af = AF_INET6;
		s += 5;
		n -= 5;
	} else if (memchr(s, ':', n) != NULL)
		return path_literal_general(s, n);
	if (n >= sizeof(text))
		return false;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(af, text, bin) == 1;
}

/* address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]" */
static enum parse_rc
path_scan_literal(struct path_cur *c)
{
	size_t	start = c->i + 1;

	c->i++;				/* "[" */
	while (char_is_dcontent(cur_peek(c)))
		c->i++;
	if (!cur_eat(c, ']'))
		return c->capped ? PARSE_TOOLONG : PARSE_BAD;
	if (c->i - start + 1 > SMTP_DOMAIN_MAX)
		return PARSE_TOOLONG;
	if (!path_literal_valid(c->p + start, c->i - start - 1))
		return PARSE_BAD;
	return PARSE_OK;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ) */
static enum parse_rc
path_scan_mailbox(struct path_cur *c, struct smtp_addr *a)
{
	enum parse_rc	rc;
	size_t		start;

	if ((rc = path_scan_local(c, a)) != PARSE_OK)
		return rc;
	if (!cur_eat(c, '@'))
		return c->capped ? PARSE_TOOLONG : PARSE_BAD;
	start = c->i;
	a->literal = cur_peek(c) == '[';
	rc = a->literal ? path_scan_literal(c) : path_scan_domain(c);
	if (rc != PARSE_OK)
		return rc;
	a->domain.p = c->p + start;
	a->domain.len = c->i - start;
	a->utf8 = !utf8_is_ascii(a->local.p, a->local.len) ||
	    !utf8_is_ascii(a->domain.p, a->domain.len);
	return PARSE_OK;
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">", or "<>" when allow_null.  The
 * first error in byte order decides the answer; *end is the offset just
 * past ">" on success, *bad8 whether it was bytes that are no UTF-8.
 * Nothing past SMTP_PATH_MAX bytes is read.
 */
static enum parse_rc
path_scan(const uint8_t *p, size_t len, bool allow_null,
    struct smtp_addr *a, size_t *end, bool *bad8)
{
	struct path_cur	c = { p, len, len, 0, false, false };
	enum parse_rc	rc;

	memset(a, 0, sizeof(*a));
	if (c.lim > SMTP_PATH_MAX)
		c.lim = SMTP_PATH_MAX;
	if (!cur_eat(&c, '<'))
		return PARSE_BAD;
	if (cur_eat(&c, '>')) {
		if (!allow_null)
			return PARSE_BAD;
		a->null = true;
		a->local.p = a->domain.p = p + 1;	/* empty, in bounds */
		*end = c.i;
		return PARSE_OK;
	}
	if (cur_peek(&c) == '@') {
		rc = path_scan_route(&c);
		*bad8 = c.bad_utf8;
		if (rc != PARSE_OK)
			return rc;
		a->routed = true;
	}
	rc = path_scan_mailbox(&c, a);
	*bad8 = c.bad_utf8;
	if (rc != PARSE_OK)
		return rc;
	if (!cur_eat(&c, '>'))
		return c.capped ? PARSE_TOOLONG : PARSE_BAD;
	*end = c.i;
	return PARSE_OK;
}

/*
 * envelope_syntax = lenient: a bare Mailbox, no brackets, no route, no
 * null path; what follows it must be SP or the end (the caller allows
 * nothing after it but blanks).  The same bounds as a Path with its "<>".
 */
static enum parse_rc
path_scan_bare(const uint8_t *p, size_t len, struct smtp_addr *a,
    size_t *end, bool *bad8)
{
	struct path_cur	c = { p, len, len, 0, false, false };
	enum parse_rc	rc;

	memset(a, 0, sizeof(*a));
	if (c.lim > SMTP_PATH_MAX - 2)
		c.lim = SMTP_PATH_MAX - 2;
	rc = path_scan_mailbox(&c, a);
	*bad8 = c.bad_utf8;
	if (rc != PARSE_OK)
		return rc;
	if (c.i < len && p[c.i] != ' ')
		return c.capped ? PARSE_TOOLONG : PARSE_BAD;
	if (memchr(p, ' ', c.i) != NULL)
		return PARSE_BAD;	/* "a b"@c: no blank inside, bare */
	*end = c.i;
	return PARSE_OK;
}

enum parse_rc
smtp_parse_path(const uint8_t *p, size_t len, bool allow_null,
    struct smtp_addr *a)
{
	enum parse_rc	rc;
	size_t		end = 0;
	bool		bad8;

	if ((rc = path_scan(p, len, allow_null, a, &end, &bad8)) != PARSE_OK)
		return rc;
	return end == len ? PARSE_OK : PARSE_BAD;
}

/*
 * esmtp-param = esmtp-keyword ["=" esmtp-value]; returns the bytes used,
 * or 0 if the keyword is missing or "=" has no value.  The caller checks
 * what follows (SP or the end), so "SIZE=1=2" fails there.
 */
static size_t
arg_scan_param(const uint8_t *p, size_t len, struct smtp_param *pa)
{
	size_t	i = 0, v;

	if (len == 0 || !char_is_letdig(p[0]))
		return 0;
	while (i < len && (char_is_letdig(p[i]) || p[i] == '-'))
		i++;
	pa->key.p = p;
	pa->key.len = i;
	pa->value.p = NULL;
	pa->value.len = 0;
	if (i == len || p[i] != '=')
		return i;
	v = ++i;
	while (i < len && char_is_vchar(p[i]))
		i++;
	if (i == v)
		return 0;
	pa->value.p = p + v;
	pa->value.len = i - v;
	return i;
}

/*
 * "KEYWORD" SP* Path *(1*SP esmtp-param) *SP.  RFC 5321 4.1.1.2 has no
 * blank after the colon; most MTAs allow it, and so do we.  With
 * SMTP_PA_LENIENT also "KEYWORD" SP* Mailbox *SP: a bare address takes
 * no parameters (where it ends and they begin would be a guess).
 */
enum parse_rc
smtp_parse_path_arg(const uint8_t *p, size_t len, unsigned flags,
    struct smtp_path_arg *out)
{
	const char	*kw = flags & SMTP_PA_MAIL ? "FROM:" : "TO:";
	enum parse_rc	 rc;
	size_t		 i, n, kwlen = strlen(kw);
	bool		 bare, bad8 = false;

	memset(out, 0, sizeof(*out));
	if (len < kwlen || strncasecmp((const char *)p, kw, kwlen) != 0) {
		out->err = SMTP_ARG_KEYWORD;
		return PARSE_BAD;
	}
	for (i = kwlen; i < len && p[i] == ' '; i++)
		;
	bare = (flags & SMTP_PA_LENIENT) && i < len && p[i] != '<';
	rc = bare ? path_scan_bare(p + i, len - i, &out->addr, &n, &bad8) :
	    path_scan(p + i, len - i, flags & SMTP_PA_MAIL, &out->addr, &n,
	    &bad8);
	if (rc != PARSE_OK) {
		out->err = bad8 ? SMTP_ARG_UTF8 : SMTP_ARG_PATH;
		return rc;
	}
	out->bare = bare;
	for (i += n; i < len; i += n) {
		if (p[i] != ' ')
			goto bad_param;
		while (i < len && p[i] == ' ')
			i++;
		if (i == len)
			break;
		if (bare) {
			out->err = SMTP_ARG_PATH;
			return PARSE_BAD;
		}
		if (out->nparams == SMTP_PARAMS_MAX) {
			out->err = SMTP_ARG_TOOMANY;
			return PARSE_BAD;
		}
		n = arg_scan_param(p + i, len - i, &out->params[out->nparams]);
		if (n == 0)
			goto bad_param;
		out->nparams++;
	}
	return PARSE_OK;
bad_param:
	out->err = SMTP_ARG_PARAM;
	return PARSE_BAD;
}

enum parse_rc
smtp_parse_mail_arg(const uint8_t *p, size_t len, struct smtp_path_arg *out)
{
	return smtp_parse_path_arg(p, len, SMTP_PA_MAIL, out);
}

enum parse_rc
smtp_parse_rcpt_arg(const uint8_t *p, size_t len, struct smtp_path_arg *out)
{
	return smtp_parse_path_arg(p, len, 0, out);
}

size_t
smtp_cmdline_max(const uint8_t *p, size_t len)
{
	struct span	verb = { p, 4 };

	if (len < SMTP_LINE_HEAD || p[4] != ' ')
		return SMTP_CMDLINE_MAX;
	if (span_eq_ci(verb, "MAIL"))
		return SMTP_MAIL_LINE_MAX;
	if (span_eq_ci(verb, "RCPT"))
		return SMTP_RCPT_LINE_MAX;
	return SMTP_CMDLINE_MAX;
}

/*
 * verb [SP arg].  The bound is checked before anything else is read
 * (RFC 5321 4.5.3.1.4, raised for MAIL and RCPT: smtp_parse.h).  The
 * argument's bytes are judged by the parser of that command (an 8-bit
 * address is the address's problem, 553 5.6.7, not an unknown command);
 * the caller has already refused bare CR and LF.
 */
enum parse_rc
smtp_parse_cmdline(const uint8_t *p, size_t len, struct smtp_cmdline *out)
{
	size_t	i;

	memset(out, 0, sizeof(*out));
	if (len + 2 > smtp_cmdline_max(p, len))
		return PARSE_TOOLONG;
	for (i = 0; i < len && char_is_alpha(p[i]); i++)
		;
	if (i == 0 || (i < len && p[i] != ' '))
		return PARSE_BAD;
	out->verb.p = p;
	out->verb.len = i;
	out->arg.p = p + (i < len ? i + 1 : i);
	out->arg.len = i < len ? len - i - 1 : 0;
	return PARSE_OK;
}

/*
 * Quoted pairs are resolved and the quotes dropped, so "a\"b" and
 * "a\\"b" compare as the mailbox owner means them.  Bounded by outlen;
 * nothing is written past it.
 */
int
smtp_local_canon(const struct smtp_addr *a, char *out, size_t outlen)
{
	const uint8_t	*s = a->local.p;
	size_t		 n = a->local.len, i, o = 0;

	if (n > SMTP_LOCAL_MAX)
		return -1;
	if (!a->quoted) {
		if (n > outlen)
			return -1;
		if (n > 0)
			memcpy(out, s, n);
		return (int)n;
	}
	if (n < 2)
		return -1;
	for (i = 1; i + 1 < n; i++) {
		if (s[i] == '\\' && i + 2 < n)
			i++;
		if (o == outlen)
			return -1;
		out[o++] = (char)s[i];
	}
	return (int)o;
}

bool
span_eq_ci(struct span s, const char *word)
{
	size_t	i, n = strlen(word);
	int	a, b;

	if (s.len != n)
		return false;
	for (i = 0; i < n; i++) {
		a = s.p[i];
		b = (unsigned char)word[i];
		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
	}
	return true;
}
