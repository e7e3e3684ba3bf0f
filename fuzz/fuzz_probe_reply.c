/*
 * fuzz_probe_reply.c - the probe's reply reader (probe_line.c): any
 * bytes, framed into lines by probe_line_next() with the PROBE_LINE_MAX
 * bound and fed to probe_reply_line() as probe_conn.c does, then escaped
 * for the transcript.  Checks the bounds: a line never longer than the
 * bound, the kept text NUL-terminated within its array, no more than
 * PROBE_REPLY_LINES_MAX lines in a reply, a complete reply's code 200-599,
 * and escaped text printable ASCII only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
check_escape(const char *p, size_t len)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, 16 * PROBE_LINE_MAX);
	probe_escape(&b, p, len);
	for (i = 0; i < b.len; i++)
		if (b.data[i] < 0x20 || b.data[i] >= 0x7f)
			abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct probe_reply	r;
	enum parse_rc		rc;
	size_t			off = 0, linelen, used;

	probe_reply_init(&r);
	while (off < len) {
		rc = probe_line_next(p + off, len - off, PROBE_LINE_MAX,
		    &linelen, &used);
		if (rc == PARSE_MORE || rc == PARSE_TOOLONG) {
			if (rc == PARSE_TOOLONG && len - off < PROBE_LINE_MAX)
				abort();
			break;
		}
		if (used == 0 || used > len - off || linelen >= used ||
		    linelen > PROBE_LINE_MAX)
			abort();
		check_escape((const char *)p + off, linelen);
		rc = probe_reply_line(&r, (const char *)p + off, linelen);
		if (memchr(r.text, '\0', sizeof(r.text)) == NULL ||
		    r.nlines > PROBE_REPLY_LINES_MAX)
			abort();
		if (rc == PARSE_OK && (r.code < 200 || r.code > 599))
			abort();
		if (rc != PARSE_MORE)
			probe_reply_init(&r);
		off += used;
	}
	return 0;
}
