/*
 * smtp_dsn_param.c - the DSN extension's MAIL and RCPT parameters and
 * xtext (see smtp_dsn_param.h).
 * Owns: the RFC 3461 4.1-4.4 grammar and its bounds.  Never: I/O,
 * allocation, globals, or reading past the span it was given.
 * Untrusted: every byte.  RFC 3461 4 (xtext), 4.1 NOTIFY, 4.2 ORCPT,
 * 4.3 RET, 4.4 ENVID.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/xtext.h"
#include "smtp_dsn_param.h"

#define DSN_NOTIFY_WORDS	4

static const struct {
	const char	*word;
	unsigned	 bit;
} dsn_notify_words[DSN_NOTIFY_WORDS] = {
	{ "NEVER",	SMTP_DSN_NOTIFY_NEVER },
	{ "SUCCESS",	SMTP_DSN_NOTIFY_SUCCESS },
	{ "FAILURE",	SMTP_DSN_NOTIFY_FAILURE },
	{ "DELAY",	SMTP_DSN_NOTIFY_DELAY },
};

/* RFC 3461 4.1: "NEVER", or a comma list of the other three. */
int
smtp_dsn_notify_parse(const uint8_t *p, size_t len, unsigned *out)
{
	struct span	w;
	unsigned	bits = 0, b;
	size_t		i = 0, k, j;

	while (i <= len) {
		for (k = i; k < len && p[k] != ','; k++)
			;
		w = (struct span){ p + i, k - i };
		for (b = 0, j = 0; j < DSN_NOTIFY_WORDS; j++)
			if (span_eq_ci(w, dsn_notify_words[j].word))
				b = dsn_notify_words[j].bit;
		if (b == 0)
			return -1;	/* empty or unknown element */
		bits |= b;
		i = k + 1;
	}
	if ((bits & SMTP_DSN_NOTIFY_NEVER) && bits != SMTP_DSN_NOTIFY_NEVER)
		return -1;
	*out = bits;
	return 0;
}

void
smtp_dsn_notify_format(unsigned bits, char *out, size_t outsz)
{
	size_t	j, o = 0;
	int	n;

	if (outsz > 0)
		out[0] = '\0';
	for (j = 0; j < DSN_NOTIFY_WORDS; j++) {
		if (!(bits & dsn_notify_words[j].bit))
			continue;
		n = snprintf(out + o, outsz - o, "%s%s", o ? "," : "",
		    dsn_notify_words[j].word);
		if (n < 0 || (size_t)n >= outsz - o)
			return;
		o += (size_t)n;
	}
}

/* addr-type = atom (RFC 3461 4.2), then ";" and xtext. */
static bool
dsn_orcpt_valid(struct span v)
{
	static const char	specials[] = "!#$%&'*+-/=?^_`{|}~";
	const uint8_t		*semi;
	size_t			 i, tl;

	if (v.len > SMTP_DSN_ORCPT_MAX ||
	    (semi = memchr(v.p, ';', v.len)) == NULL)
		return false;
	tl = (size_t)(semi - v.p);
	if (tl == 0 || tl + 1 == v.len)
		return false;	/* no type, or no address */
	for (i = 0; i < tl; i++) {
		uint8_t	c = v.p[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') ||
		    memchr(specials, c, sizeof(specials) - 1) != NULL))
			return false;
	}
	return xtext_valid(semi + 1, v.len - tl - 1);
}

enum smtp_dsn_rc
smtp_dsn_mail_param(const struct smtp_param *pa, struct smtp_dsn_mail *d)
{
	if (span_eq_ci(pa->key, "RET")) {
		if (d->ret != SMTP_DSN_RET_UNSET || pa->value.p == NULL)
			return SMTP_DSN_BAD;
		if (span_eq_ci(pa->value, "FULL"))
			d->ret = SMTP_DSN_RET_FULL;
		else if (span_eq_ci(pa->value, "HDRS"))
			d->ret = SMTP_DSN_RET_HDRS;
		else
			return SMTP_DSN_BAD;
		return SMTP_DSN_TAKEN;
	}
	if (!span_eq_ci(pa->key, "ENVID"))
		return SMTP_DSN_OTHER;
	if (d->has_envid || pa->value.p == NULL ||
	    pa->value.len > SMTP_DSN_ENVID_MAX ||
	    !xtext_valid(pa->value.p, pa->value.len))
		return SMTP_DSN_BAD;
	d->envid = pa->value;
	d->has_envid = true;
	return SMTP_DSN_TAKEN;
}

enum smtp_dsn_rc
smtp_dsn_rcpt_param(const struct smtp_param *pa, struct smtp_dsn_rcpt *d)
{
	unsigned	bits;

	if (span_eq_ci(pa->key, "NOTIFY")) {
		if (d->notify != 0 || pa->value.p == NULL ||
		    smtp_dsn_notify_parse(pa->value.p, pa->value.len,
		    &bits) == -1)
			return SMTP_DSN_BAD;
		d->notify = bits;
		return SMTP_DSN_TAKEN;
	}
	if (!span_eq_ci(pa->key, "ORCPT"))
		return SMTP_DSN_OTHER;
	if (d->has_orcpt || pa->value.p == NULL || !dsn_orcpt_valid(pa->value))
		return SMTP_DSN_BAD;
	d->orcpt = pa->value;
	d->has_orcpt = true;
	return SMTP_DSN_TAKEN;
}
