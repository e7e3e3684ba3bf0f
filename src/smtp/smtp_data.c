/*
 * smtp_data.c - DATA end-of-data scanner and dot-unstuffer (see
 * smtp_data.h).  RFC 5321 4.5.2 (transparency); the bare CR/LF rules
 * follow the SMTP smuggling advisories of 2023: only CRLF is a line end.
 */
#include "smtp_data.h"

enum {
	D_BOL,		/* at the beginning of a line */
	D_BOL_DOT,	/* "." at the beginning of a line */
	D_BOL_DOT_CR,	/* ".<CR>" at the beginning of a line */
	D_MID,		/* inside a line */
	D_CR,		/* <CR> inside a line, waiting for <LF> */
};

void
smtp_data_init(struct smtp_data *d)
{
	d->st = D_BOL;
	d->bad_eol = false;
	d->nul = false;
	d->lenient = false;
}

static void
data_flush(const uint8_t *in, size_t from, size_t to,
    smtp_data_out_fn *out, void *arg)
{
	if (to > from)
		out(arg, in + from, to - from);
}

/*
 * Lenient (strict_framing = shadow): the bare line end at in[i] is
 * output as CRLF, so that the spool, and so the next hop, never sees a
 * bare CR or LF (a lenient next hop could take "<LF>.<LF>" as the end).
 * A bare LF is replaced; a bare CR (already in the pending run) gets its
 * LF.  It is still not a line end here: no dot is unstuffed after it and
 * no end of data follows it.  Returns the new start of the pending run.
 */
static size_t
data_fix(const struct smtp_data *d, const uint8_t *in, size_t run, size_t i,
    bool lf, smtp_data_out_fn *out, void *arg)
{
	if (!d->lenient)
		return run;
	data_flush(in, run, i, out, arg);
	out(arg, (const uint8_t *)(lf ? "\r\n" : "\n"), lf ? 2 : 1);
	return lf ? i + 1 : i;
}

/* One byte in a line (not at its start). */
static int
data_mid(struct smtp_data *d, uint8_t c)
{
	if (c == '\0')
		d->nul = true;	/* read on: refused at the end of data */
	if (c == '\r')
		return D_CR;
	if (c == '\n') {
		d->bad_eol = true;	/* bare LF: not a line end at all */
		return D_MID;
	}
	return D_MID;
}

enum parse_rc
smtp_data_scan(struct smtp_data *d, const uint8_t *in, size_t len,
    size_t *used, smtp_data_out_fn *out, void *arg)
{
	size_t	i, run = 0;	/* bytes in[run..i) are pending output */

	for (i = 0; i < len; i++) {
		uint8_t	c = in[i];

		if (c == '\n' && d->lenient && (d->st == D_BOL ||
		    d->st == D_BOL_DOT || d->st == D_MID)) {
			d->bad_eol = true;	/* a bare LF, stored as CRLF */
			if (d->st == D_BOL_DOT)	/* a line ".": kept */
				out(arg, (const uint8_t *)".", 1);
			run = data_fix(d, in, run, i, true, out, arg);
			d->st = D_MID;
			continue;
		}
		switch (d->st) {
		case D_BOL:
			if (c == '.') {
				data_flush(in, run, i, out, arg);
				run = i + 1;	/* the dot is never output */
				d->st = D_BOL_DOT;
			} else
				d->st = data_mid(d, c);
			break;
		case D_BOL_DOT:
			if (c == '\r')
				d->st = D_BOL_DOT_CR;
			else
				d->st = data_mid(d, c);	/* unstuffed */
			break;
		case D_BOL_DOT_CR:
			if (c == '\n') {
				d->st = D_BOL;
				*used = i + 1;
				return PARSE_OK;
			}
			d->bad_eol = true;	/* ".<CR>x": bare CR */
			if (d->lenient)	/* not a stuffed dot: kept */
				out(arg, (const uint8_t *)".", 1);
			if (i == 0)	/* the CR held back at the last chunk's end */
				out(arg, (const uint8_t *)"\r", 1);
			run = data_fix(d, in, run, i, false, out, arg);
			d->st = data_mid(d, c);
			break;
		case D_MID:
			d->st = data_mid(d, c);
			break;
		case D_CR:
			if (c == '\n')
				d->st = D_BOL;
			else {
				d->bad_eol = true;	/* bare CR */
				run = data_fix(d, in, run, i, false, out, arg);
				d->st = data_mid(d, c);
			}
			break;
		}
	}
	/* A ".<CR>" pending at the end: its CR is not output yet. */
	if (d->st == D_BOL_DOT_CR && len > 0 && run < len)
		data_flush(in, run, len - 1, out, arg);
	else
		data_flush(in, run, len, out, arg);
	*used = len;
	return PARSE_MORE;
}

void
smtp_data_raw(struct smtp_data *d, const uint8_t *in, size_t len,
    smtp_data_out_fn *out, void *arg)
{
	size_t	i, run = 0;

	for (i = 0; i < len; i++) {
		uint8_t	c = in[i];

		if (d->st == D_CR) {
			if (c == '\n') {
				d->st = D_BOL;
				continue;
			}
			d->bad_eol = true;	/* bare CR */
			run = data_fix(d, in, run, i, false, out, arg);
		}
		if (c == '\n' && d->lenient) {
			d->bad_eol = true;	/* a bare LF, stored as CRLF */
			run = data_fix(d, in, run, i, true, out, arg);
			d->st = D_BOL;	/* no dot or end mark in BDAT */
			continue;
		}
		d->st = data_mid(d, c);
	}
	data_flush(in, run, len, out, arg);
}

bool
smtp_data_raw_end(struct smtp_data *d)
{
	if (d->st == D_CR) {
		d->bad_eol = true;	/* the content ended in a bare CR */
		d->st = D_MID;
	}
	return d->st == D_BOL;
}

enum parse_rc
smtp_data_bdat_arg(const uint8_t *p, size_t len, uint64_t *size,
    bool *last)
{
	static const char	kw[] = "LAST";
	size_t			i, j;
	uint64_t		v = 0;

	*size = 0;
	*last = false;
	for (i = 0; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
		if (i >= SMTP_BDAT_DIGITS ||
		    v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return PARSE_TOOLONG;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (i == 0)
		return PARSE_BAD;
	*size = v;
	if (i == len)
		return PARSE_OK;
	if (p[i] != ' ' || len - i - 1 != sizeof(kw) - 1)
		return PARSE_BAD;
	for (j = 0; j < sizeof(kw) - 1; j++)
		if ((p[i + 1 + j] & ~0x20) != kw[j])
			return PARSE_BAD;
	*last = true;
	return PARSE_OK;
}
