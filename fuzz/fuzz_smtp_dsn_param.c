/*
 * fuzz_smtp_dsn_param.c - libFuzzer target for src/smtp/smtp_dsn_param.c
 * and src/lib/xtext.c.  The input is one MAIL or RCPT argument; every
 * parameter the SMTP parser finds goes to the DSN parsers (MAIL and RCPT
 * side, twice, as a client may repeat one), and the whole input to the
 * xtext decoder.  Checks: spans inside the input, the RFC 3461 bounds,
 * a parameter is never taken twice, NOTIFY=NEVER stands alone, decoding
 * never writes past its bound and yields printable ASCII only.
 * Untrusted: the whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xtext.h"
#include "smtp/smtp_dsn_param.h"
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
	fz_require(s.p >= p && s.p + s.len <= p + len);
}

static void
fz_params(const struct smtp_path_arg *pa, const uint8_t *p, size_t len)
{
	struct smtp_dsn_mail	dm = { .ret = SMTP_DSN_RET_UNSET };
	struct smtp_dsn_rcpt	dr = { .notify = 0 };
	enum smtp_dsn_rc	rc;
	size_t			i;

	for (i = 0; i < pa->nparams; i++) {
		if ((rc = smtp_dsn_mail_param(&pa->params[i], &dm)) ==
		    SMTP_DSN_TAKEN)
			fz_require(smtp_dsn_mail_param(&pa->params[i], &dm) ==
			    SMTP_DSN_BAD);
		if ((rc = smtp_dsn_rcpt_param(&pa->params[i], &dr)) ==
		    SMTP_DSN_TAKEN)
			fz_require(smtp_dsn_rcpt_param(&pa->params[i], &dr) ==
			    SMTP_DSN_BAD);
	}
	fz_span(dm.envid, p, len);
	fz_span(dr.orcpt, p, len);
	fz_require(dm.envid.len <= SMTP_DSN_ENVID_MAX);
	fz_require(dr.orcpt.len <= SMTP_DSN_ORCPT_MAX);
	fz_require((dr.notify & ~SMTP_DSN_NOTIFY_ALL) == 0);
	fz_require(!(dr.notify & SMTP_DSN_NOTIFY_NEVER) ||
	    dr.notify == SMTP_DSN_NOTIFY_NEVER);
	fz_require(!dm.has_envid || xtext_valid(dm.envid.p, dm.envid.len));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_path_arg	pa;
	char			out[64 + 8];
	size_t			k;
	int			n;

	if (smtp_parse_mail_arg(data, size, &pa) == PARSE_OK)
		fz_params(&pa, data, size);
	if (smtp_parse_rcpt_arg(data, size, &pa) == PARSE_OK)
		fz_params(&pa, data, size);
	memset(out, '#', sizeof(out));
	n = xtext_decode(data, size, out, 64);
	fz_require(n >= -1 && n < 64);
	for (k = 64; k < sizeof(out); k++)
		fz_require(out[k] == '#');
	for (k = 0; n > 0 && k < (size_t)n; k++)
		fz_require(out[k] >= ' ' && out[k] <= '~');
	fz_require(n < 0 || xtext_valid(data, size));
	return 0;
}
