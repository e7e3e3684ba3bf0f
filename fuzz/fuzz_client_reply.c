/*
 * fuzz_client_reply.c - the reply parser of the outbound client: any
 * bytes, cut into lines at LF as the client does.  Checks that a complete
 * reply has a code of 200-599, that every line of it had that code, that
 * its enhanced code is well formed and of the same class, and that the
 * bounds on line length and line count hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/client.h"

static void
check_esc(const struct client_reply *r)
{
	size_t	i, dots = 0;

	if (r->esc[0] == '\0')
		return;
	if (r->esc[0] != (char)('0' + r->code / 100) || strlen(r->esc) > 9)
		abort();
	for (i = 0; r->esc[i] != '\0'; i++)
		if (r->esc[i] == '.')
			dots++;
		else if (r->esc[i] < '0' || r->esc[i] > '9')
			abort();
	if (dots != 2)
		abort();
}

static void
check_done(const struct client_reply *r, enum parse_rc rc)
{
	if (rc == PARSE_OK) {
		if (r->code < 200 || r->code > 599 || r->nlines == 0 ||
		    r->nlines > CLIENT_REPLY_LINES_MAX ||
		    r->linelen + 2 > CLIENT_LINE_MAX ||
		    strlen(r->line) > r->linelen)
			abort();
		check_esc(r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct client_reply	 r;
	enum parse_rc		 rc;
	const uint8_t		*nl;
	size_t			 off = 0, n;

	client_reply_init(&r);
	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (p + off)) : len - off;
		rc = client_reply_line(&r, (const char *)p + off,
		    n > 0 && p[off + n - 1] == '\r' ? n - 1 : n);
		if (rc == PARSE_OK && n + 1 > CLIENT_LINE_MAX)
			abort();
		if ((rc == PARSE_OK || rc == PARSE_MORE) && (n < 3 ||
		    (unsigned)(p[off] - '0') * 100 + (unsigned)(p[off + 1] -
		    '0') * 10 + (unsigned)(p[off + 2] - '0') != r.code))
			abort();
		check_done(&r, rc);
		if (rc != PARSE_MORE)
			client_reply_init(&r);
		off += n + 1;
	}
	return 0;
}
