/*
 * probe_line.c - the probe's pure reply reader: line framing and the
 * accumulation of one multi-line reply.
 * Owns: the bounds on a line (PROBE_LINE_MAX) and a reply's lines
 * (PROBE_REPLY_LINES_MAX); reply syntax is deliver/client_proto.c's.
 * Never: I/O, allocation.  Untrusted: every byte.  RFC 5321 4.2.
 */
#include <string.h>

#include "probe.h"

enum parse_rc
probe_line_next(const uint8_t *in, size_t len, size_t max, size_t *linelen,
    size_t *used)
{
	const uint8_t	*lf;
	size_t		 n;

	n = len < max ? len : max;
	if ((lf = memchr(in, '\n', n)) == NULL)
		return len >= max ? PARSE_TOOLONG : PARSE_MORE;
	*used = (size_t)(lf - in) + 1;
	*linelen = *used - 1;
	if (*linelen > 0 && in[*linelen - 1] == '\r')
		(*linelen)--;
	return PARSE_OK;
}

void
probe_reply_init(struct probe_reply *r)
{
	memset(r, 0, sizeof(*r));
	client_reply_init(&r->cr);
}

/*
 * One line without its end.  A line longer than the deliver parser's
 * bound is judged by its first CLIENT_LINE_MAX - 3 octets (code and
 * separator are all the syntax there is) and kept truncated.
 */
enum parse_rc
probe_reply_line(struct probe_reply *r, const char *p, size_t len)
{
	enum parse_rc	rc;
	size_t		n, room, tl;

	if (r->nlines >= PROBE_REPLY_LINES_MAX)
		return PARSE_TOOLONG;
	n = len > CLIENT_LINE_MAX - 3 ? CLIENT_LINE_MAX - 3 : len;
	if (memchr(p, '\0', n) != NULL)
		return PARSE_BAD;
	rc = client_reply_line(&r->cr, p, n);
	if (rc == PARSE_TOOLONG)	/* its own line count bound */
		return rc;
	if (rc == PARSE_BAD)
		return rc;
	tl = strlen(r->text);
	if (r->nlines > 0 && tl + 1 < sizeof(r->text))
		r->text[tl++] = '\n';
	room = sizeof(r->text) - 1 - tl;
	n = len < room ? len : room;
	memcpy(r->text + tl, p, n);
	r->text[tl + n] = '\0';
	r->nlines++;
	r->code = r->cr.code;
	memcpy(r->esc, r->cr.esc, sizeof(r->esc));
	r->ext = r->cr.ext;
	return rc;
}

/* Printable ASCII as is; anything else as \xHH (STYLE R11). */
void
probe_escape(struct buf *b, const char *p, size_t len)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf_addc(b, c);
		else if (c == '\r')
			buf_add(b, "\\r", 2);
		else if (c == '\n')
			buf_add(b, "\\n", 2);
		else
			buf_addf(b, "\\x%02x", c);
	}
}
