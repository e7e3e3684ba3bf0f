/*
 * fuzz_ctl_line.c - libFuzzer target for ctl_parse_line() (src/ctl/ctl.c),
 * the parser of a control request line.  Checks what it promises: on
 * PARSE_OK the words are the maximal runs of non-blank bytes, in order,
 * inside the input, at most CTL_ARGS_MAX of them, every byte printable
 * ASCII or a blank; PARSE_BAD only for a byte outside those; PARSE_TOOLONG
 * only over the line or word bound.  Untrusted: the whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctl/ctl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static bool
fz_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool
fz_ok_byte(uint8_t c)
{
	return fz_blank(c) || (c >= 0x20 && c < 0x7f);
}

/* The words a reference splitter finds; -1 past CTL_ARGS_MAX. */
static int
fz_count_words(const uint8_t *p, size_t len)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < len; i++)
		if (!fz_blank(p[i]) && (i == 0 || fz_blank(p[i - 1])))
			n++;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct ctl_words	ws;
	enum parse_rc		rc = ctl_parse_line(p, len, &ws);
	bool			bad = false;
	size_t			i, prev_end = 0;

	for (i = 0; i < len; i++)
		bad |= !fz_ok_byte(p[i]);
	if (len > CTL_LINE_MAX - 1) {
		fz_require(rc == PARSE_TOOLONG);
		return 0;
	}
	if (bad) {
		fz_require(rc == PARSE_BAD);
		return 0;
	}
	if (fz_count_words(p, len) > CTL_ARGS_MAX) {
		fz_require(rc == PARSE_TOOLONG);
		return 0;
	}
	fz_require(rc == PARSE_OK);
	fz_require((int)ws.n == fz_count_words(p, len));
	for (i = 0; i < ws.n; i++) {
		size_t	off = ws.w[i].off, n = ws.w[i].len, j;

		fz_require(n > 0 && off >= prev_end && off + n <= len);
		fz_require(off == 0 || fz_blank(p[off - 1]));
		fz_require(off + n == len || fz_blank(p[off + n]));
		for (j = off; j < off + n; j++)
			fz_require(!fz_blank(p[j]));
		for (j = prev_end; j < off; j++)
			fz_require(fz_blank(p[j]));
		prev_end = off + n;
	}
	for (i = prev_end; i < len; i++)
		fz_require(fz_blank(p[i]));
	return 0;
}
