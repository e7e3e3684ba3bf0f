/*
 * fuzz_dsn.c - dsn_header_len, dsn_is_report and dsn_build over any
 * original message and any recipient, sender and reply text.  Input:
 * a flags byte, a length byte k, k bytes of text, then the message.
 * Checks: the header length honours every cap; only the header section
 * decides dsn_is_report and dsn_build (the same output with the body cut
 * off, so no body byte can leak); the report has CRLF lines of at most
 * 998 octets, no NUL, its boundary nowhere in the body but where it
 * belongs, and a bounded size; before the returned headers, only ASCII,
 * or strict UTF-8 in a global report (RFC 6533: UTF-8 addresses, or
 * the odd length of the text standing for an SMTPUTF8 original).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/dsn.h"
#include "lib/utf8.h"

#define OUT_MAX		(1024 * 1024)
#define FIXED_SLACK	(32 * 1024)	/* report text but the headers */

static size_t
fuzz_count(const struct buf *b, const char *s, size_t n)
{
	const uint8_t	*p = b->data, *end = b->data + b->len, *q;
	size_t		 c = 0;

	while ((q = memmem(p, (size_t)(end - p), s, n)) != NULL) {
		c++;
		p = q + 1;
	}
	return c;
}

static void
fuzz_check_lines(const struct buf *b)
{
	const uint8_t	*p = b->data, *nl;
	size_t		 i, n;

	if (b->len < 2 || p[b->len - 1] != '\n')
		abort();
	for (i = 0; i < b->len; i = (size_t)(nl - p) + 1) {
		if ((nl = memchr(p + i, '\n', b->len - i)) == NULL)
			abort();
		n = (size_t)(nl - (p + i));
		if (n == 0 || p[i + n - 1] != '\r' || n - 1 > DSN_LINE_MAX ||
		    memchr(p + i, '\r', n - 1) != NULL ||
		    memchr(p + i, '\0', n) != NULL)
			abort();
	}
}

/* The boundary, declared by our Content-Type, and its count in the body;
 * the offset where the returned headers (or the close) start. */
static size_t
fuzz_check_boundary(const struct buf *b)
{
	struct buf	 body;
	const uint8_t	*hend;
	const char	*q, *e;
	char		 d[96];
	size_t		 n, parts;

	if ((hend = memmem(b->data, b->len, "\r\n\r\n", 4)) == NULL ||
	    (q = memmem(b->data, (size_t)(hend - b->data), "\r\n\tboundary=\"",
	    13)) == NULL)
		abort();
	q += 13;
	if ((e = memchr(q, '"', (size_t)((const char *)hend - q))) == NULL ||
	    e == q || e - q > 70)
		abort();
	n = (size_t)(e - q);
	body.data = (uint8_t *)hend + 2;
	body.len = b->len - (size_t)(body.data - b->data);
	d[0] = '\r'; d[1] = '\n'; d[2] = '-'; d[3] = '-';
	memcpy(d + 4, q, n);
	d[4 + n] = '\r';
	d[5 + n] = '\n';
	parts = fuzz_count(&body, d, n + 6);
	if (parts < 2 || parts > 3 || fuzz_count(&body, q, n) != parts + 1)
		abort();
	if (parts == 2)
		return b->len;
	e = memmem(body.data, body.len, d, n + 6);
	e = memmem(e + 1, body.len - (size_t)((const uint8_t *)e + 1 -
	    body.data), d, n + 6);
	e = memmem(e + 1, body.len - (size_t)((const uint8_t *)e + 1 -
	    body.data), d, n + 6);
	if (e == NULL)
		abort();
	return (size_t)((const uint8_t *)e - b->data);
}

/* Up to end: ASCII, or strict UTF-8 when the report is global. */
static void
fuzz_check_text(const struct buf *b, size_t end)
{
	bool	global = memmem(b->data, b->len, "report-type=global-", 19) !=
		    NULL;
	size_t	i;
	int	k;

	for (i = 0; i < end; i += (size_t)k) {
		k = 1;
		if (b->data[i] < 0x80)
			continue;
		if (!global || (k = utf8_char(b->data + i, end - i)) <= 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dsn_rcpt	 r = { "x@example.org", "failed", "5.1.1", NULL,
			    NULL };
	struct dsn_input in;
	struct buf	 a, b;
	char		 text[256];
	const uint8_t	*msg;
	size_t		 k, len, hl, full;
	unsigned	 flags;

	if (size < 2)
		return 0;
	flags = data[0];
	k = data[1] < size - 2 ? data[1] : size - 2;
	memcpy(text, data + 2, k);
	text[k] = '\0';
	msg = data + 2 + k;
	len = size - 2 - k;

	full = dsn_header_len(msg, len, len);
	hl = dsn_header_len(msg, len, DSN_HEADERS_MAX);
	if (full > len ||
	    hl != (full < DSN_HEADERS_MAX ? full : DSN_HEADERS_MAX) ||
	    dsn_header_len(msg, len, len / 2) != (full < len / 2 ? full :
	    len / 2))
		abort();
	if (dsn_is_report(msg, len) != dsn_is_report(msg, hl))
		abort();

	memset(&in, 0, sizeof(in));
	in.reporting_mta = (flags & 0x20) ? text : "gw.example.org";
	in.qid = in.boundary_seed = (flags & 0x40) ? text : "Q1";
	in.arrival = 1700000000;
	in.now = (flags & 0x80) ? (time_t)-1 : 1700003600;
	in.sender = (flags & 0x01) && text[0] != '\0' ? text : "a@b.test";
	in.msg = msg;
	in.msglen = len;
	in.rcpts = &r;
	in.nrcpts = 1;
	in.smtputf8 = (k & 1) != 0;
	if (flags & 0x02)
		r.rcpt = text;
	if (flags & 0x04)
		r.diag = text;
	if (flags & 0x08)
		r.mta = text;
	if (flags & 0x10) {
		r.action = "delayed";
		r.status = text;
	}
	buf_init(&a, OUT_MAX);
	buf_init(&b, OUT_MAX);
	if (dsn_build(&in, &a) != 0)
		abort();
	in.msglen = hl;
	if (dsn_build(&in, &b) != 0 || a.len != b.len ||
	    memcmp(a.data, b.data, a.len) != 0)
		abort();
	fuzz_check_lines(&a);
	fuzz_check_text(&a, fuzz_check_boundary(&a));
	if (a.len > hl + 3 * (hl / (DSN_LINE_MAX - 1) + 1) + FIXED_SLACK)
		abort();
	buf_free(&a);
	buf_free(&b);
	return 0;
}
