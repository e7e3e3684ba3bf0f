/*
 * fuzz_smtp_data.c - the DATA scanner: any bytes, any split.  Checks that
 * the output never exceeds the input, that the end mark is found at the
 * same place whether the input comes whole or in two pieces, and that a
 * message with a bare CR or LF is flagged either way.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"

struct count {
	size_t	n;
};

static void
count_out(void *arg, const uint8_t *p, size_t n)
{
	struct count	*c = arg;

	(void)p;
	c->n += n;
}

static size_t
scan(const uint8_t *p, size_t len, size_t cut, struct count *c, bool *bad)
{
	struct smtp_data	d;
	size_t			used;

	smtp_data_init(&d);
	if (cut > len)
		cut = len;
	if (smtp_data_scan(&d, p, cut, &used, count_out, c) == PARSE_OK) {
		*bad = d.bad_eol;
		return used;
	}
	if (smtp_data_scan(&d, p + cut, len - cut, &used, count_out, c) ==
	    PARSE_OK) {
		*bad = d.bad_eol;
		return cut + used;
	}
	*bad = d.bad_eol;
	return SIZE_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct count	a = { 0 }, b = { 0 };
	bool		bad_a, bad_b;
	size_t		ea, eb;

	ea = scan(p, len, len, &a, &bad_a);
	eb = scan(p, len, len / 2, &b, &bad_b);
	if (ea != eb || bad_a != bad_b || a.n > len)
		abort();
	if (ea != SIZE_MAX && a.n != b.n)
		abort();
	return 0;
}
