/*
 * fuzz_smtp_parse.c - libFuzzer target for src/smtp/smtp_parse.c.
 * Feeds every input to the command-line, MAIL, RCPT and path parsers
 * (null path allowed and not) and checks what they promise: spans inside
 * the input, lengths within the named limits, smtp_local_canon never
 * writing past its bound.  Untrusted: the whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
		fz_require(a->domain.p[a->domain.len] == '>');
		fz_require(!a->literal || a->domain.p[0] == '[');
	}
	fz_canon(a, outlen);
}

static void
fz_cmdline(const uint8_t *p, size_t len)
{
	struct smtp_cmdline	cl;
	size_t			k;

	if (smtp_parse_cmdline(p, len, &cl) != PARSE_OK)
		return;
	fz_require(len + 2 <= SMTP_CMDLINE_MAX);
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
		fz_addr(&a, p, len, false, outlen);
		fz_require(rcnull == PARSE_OK && !b.null);
	}
	if (rcnull == PARSE_OK) {
		fz_addr(&b, p, len, true, outlen);
		fz_require(b.null || rc == PARSE_OK);
	}
}

static void
fz_arg(const uint8_t *p, size_t len, bool mail, size_t outlen)
{
	struct smtp_path_arg	arg;
	enum parse_rc		rc;
	size_t			k;

	rc = mail ? smtp_parse_mail_arg(p, len, &arg) :
	    smtp_parse_rcpt_arg(p, len, &arg);
	fz_require((rc == PARSE_OK) == (arg.err == SMTP_ARG_OK));
	fz_require(rc == PARSE_OK || rc == PARSE_BAD || rc == PARSE_TOOLONG);
	if (rc != PARSE_OK)
		return;
	fz_addr(&arg.addr, p, len, mail, outlen);
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
	fz_arg(data, size, true, outlen);
	fz_arg(data, size, false, outlen);
	return 0;
}
