/*
 * fuzz_smtp_parse.c - libFuzzer target for src/smtp/smtp_parse.c.
 * Feeds every input to the command-line, MAIL, RCPT and path parsers
 * (null path allowed and not; strict and lenient envelope syntax) and
 * checks what they promise: spans inside the input, lengths within the
 * named limits (a longer line bound for MAIL and RCPT only),
 * smtp_local_canon never writing past its bound, a UTF-8 address only
 * when its bytes are strict UTF-8, lenient accepting all strict accepts.
 * Untrusted: the whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/utf8.h"
#include "smtp/smtp_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_span(struct span s, const uint8_t *p, size_t len)
{
	if (s.len == 0)
		return;
	fz_require(s.p != NULL && s.p >= p && s.p <= p + len);
	fz_require(s.len <= (size_t)(p + len - s.p));
}

/* Canonical form: bounded by outlen, never longer than the local part. */
static void
fz_canon(const struct smtp_addr *a, size_t outlen)
{
	char	out[SMTP_LOCAL_MAX + 8];
	size_t	k;
	int	n;

	if (outlen > SMTP_LOCAL_MAX)
		outlen = SMTP_LOCAL_MAX;
	memset(out, '#', sizeof(out));
	n = smtp_local_canon(a, out, outlen);
	fz_require(n >= -1 && (n == -1 || (size_t)n <= outlen));
	fz_require(n == -1 || (size_t)n <= a->local.len);
	for (k = outlen; k < sizeof(out); k++)
		fz_require(out[k] == '#');
	/* with room for the whole local part it always fits */
	fz_require(smtp_local_canon(a, out, SMTP_LOCAL_MAX) >= 0);
}

/* Every non-ASCII byte of s is part of a strict UTF-8 character. */
static bool
fz_utf8_ok(struct span s)
{
	size_t	i = 0;
	int	n;

	while (i < s.len) {
		if (s.p[i] < 0x80) {
			i++;
			continue;
		}
		if ((n = utf8_char(s.p + i, s.len - i)) <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

static void
fz_addr(const struct smtp_addr *a, const uint8_t *p, size_t len,
    bool allow_null, size_t outlen)
{
	fz_span(a->local, p, len);
	fz_span(a->domain, p, len);
	fz_require(a->local.len <= SMTP_LOCAL_MAX);
	fz_require(a->domain.len <= SMTP_DOMAIN_MAX);
	if (a->null) {
		fz_require(allow_null && a->local.len == 0 &&
		    a->domain.len == 0);
		fz_require(!a->quoted && !a->literal && !a->routed);
	} else {
		fz_require(a->domain.len > 0);
		fz_require(a->quoted ? a->local.len >= 2 : a->local.len > 0);
		fz_require(a->domain.p[-1] == '@');
		fz_require(!a->literal || a->domain.p[0] == '[');
	}
	fz_require(fz_utf8_ok(a->local) && fz_utf8_ok(a->domain));
	fz_require(a->utf8 == (!utf8_is_ascii(a->local.p, a->local.len) ||
	    !utf8_is_ascii(a->domain.p, a->domain.len)));
	fz_canon(a, outlen);
}

static void
fz_cmdline(const uint8_t *p, size_t len)
{
	struct smtp_cmdline	cl;
	size_t			k, max;

	max = smtp_cmdline_max(p, len);
	fz_require(max == SMTP_CMDLINE_MAX || max == SMTP_MAIL_LINE_MAX ||
	    max == SMTP_RCPT_LINE_MAX);
	fz_require(max == smtp_cmdline_max(p, len < SMTP_LINE_HEAD ? len :
	    SMTP_LINE_HEAD));	/* the head alone decides */
	if (smtp_parse_cmdline(p, len, &cl) != PARSE_OK) {
		/* "MAIL " and "RCPT " lines fail for their length alone */
		fz_require(max == SMTP_CMDLINE_MAX || len + 2 > max);
		return;
	}
	fz_require(len + 2 <= max);
	/* only MAIL and RCPT get more than RFC 5321's 512 */
	fz_require(max == SMTP_CMDLINE_MAX || (cl.verb.len == 4 &&
	    (span_eq_ci(cl.verb, "MAIL") || span_eq_ci(cl.verb, "RCPT"))));
	fz_require(cl.verb.p == p && cl.verb.len > 0);
	fz_span(cl.arg, p, len);
	for (k = 0; k < cl.verb.len; k++)
		fz_require((p[k] | 0x20) >= 'a' && (p[k] | 0x20) <= 'z');
	fz_require(cl.verb.len == len ||
	    cl.verb.len + 1 + cl.arg.len == len);
}

static void
fz_path(const uint8_t *p, size_t len, size_t outlen)
{
	struct smtp_addr	a, b;
	enum parse_rc		rc, rcnull;

	rc = smtp_parse_path(p, len, false, &a);
	rcnull = smtp_parse_path(p, len, true, &b);
	if (rc == PARSE_OK) {
		fz_require(len <= SMTP_PATH_MAX && p[len - 1] == '>');
		fz_require(a.domain.p[a.domain.len] == '>');
		fz_addr(&a, p, len, false, outlen);
		fz_require(rcnull == PARSE_OK && !b.null);
	}
	if (rcnull == PARSE_OK) {
		fz_addr(&b, p, len, true, outlen);
		fz_require(b.null || rc == PARSE_OK);
	}
}

static void
fz_arg(const uint8_t *p, size_t len, bool mail, bool lenient, size_t outlen)
{
	struct smtp_path_arg	arg, strict;
	enum parse_rc		rc;
	size_t			k;

	rc = smtp_parse_path_arg(p, len, (mail ? SMTP_PA_MAIL : 0) |
	    (lenient ? SMTP_PA_LENIENT : 0), &arg);
	fz_require((rc == PARSE_OK) == (arg.err == SMTP_ARG_OK));
	fz_require(rc == PARSE_OK || rc == PARSE_BAD || rc == PARSE_TOOLONG);
	if (lenient && (mail ? smtp_parse_mail_arg(p, len, &strict) :
	    smtp_parse_rcpt_arg(p, len, &strict)) == PARSE_OK)
		fz_require(rc == PARSE_OK && !arg.bare &&
		    arg.addr.local.p == strict.addr.local.p &&
		    arg.addr.domain.len == strict.addr.domain.len &&
		    arg.nparams == strict.nparams);
	if (rc != PARSE_OK)
		return;
	fz_require(lenient || !arg.bare);
	fz_addr(&arg.addr, p, len, mail, outlen);
	if (arg.bare) {
		const uint8_t *e = arg.addr.domain.p + arg.addr.domain.len;

		/* a bare address: nothing after it but blanks */
		fz_require(arg.nparams == 0 && !arg.addr.null &&
		    !arg.addr.routed);
		for (; e < p + len; e++)
			fz_require(*e == ' ');
	} else if (!arg.addr.null)
		fz_require(arg.addr.domain.p[arg.addr.domain.len] == '>');
	fz_require(arg.nparams <= SMTP_PARAMS_MAX);
	for (k = 0; k < arg.nparams; k++) {
		fz_require(arg.params[k].key.len > 0);
		fz_span(arg.params[k].key, p, len);
		fz_require(arg.params[k].value.p == NULL ||
		    arg.params[k].value.len > 0);
		fz_span(arg.params[k].value, p, len);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the first byte, when there is one, also picks a canon bound */
	size_t	outlen = size > 0 ? data[0] % (SMTP_LOCAL_MAX + 2) : 0;

	fz_cmdline(data, size);
	fz_path(data, size, outlen);
	fz_arg(data, size, true, false, outlen);
	fz_arg(data, size, false, false, outlen);
	fz_arg(data, size, true, true, outlen);
	fz_arg(data, size, false, true, outlen);
	return 0;
}
