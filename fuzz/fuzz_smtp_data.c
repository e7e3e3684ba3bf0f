/*
 * fuzz_smtp_data.c - the DATA scanner: any bytes, any split.  Checks that
 * the output never exceeds the input, that the end mark is found at the
 * same place whether the input comes whole or in two pieces, and that a
 * message with a bare CR, LF or NUL is flagged either way.  The same for
 * BDAT content (smtp_data_raw: every byte out, same flags however split)
 * and the BDAT argument parser on the input's first line.  Lenient
 * (strict_framing = shadow): the same end of data, and no bare CR or LF
 * in what is stored.
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
		*bad = d.bad_eol || d.nul;
		return used;
	}
	if (smtp_data_scan(&d, p + cut, len - cut, &used, count_out, c) ==
	    PARSE_OK) {
		*bad = d.bad_eol || d.nul;
		return cut + used;
	}
	*bad = d.bad_eol || d.nul;
	return SIZE_MAX;
}

/* BDAT content in two pieces: flags, line end and count as one piece. */
static unsigned
raw(const uint8_t *p, size_t len, size_t cut)
{
	struct smtp_data	d;
	struct count		c = { 0 };
	bool			eol;

	smtp_data_init(&d);
	smtp_data_raw(&d, p, cut, count_out, &c);
	smtp_data_raw(&d, p + cut, len - cut, count_out, &c);
	eol = smtp_data_raw_end(&d);
	if (c.n != len)
		abort();
	return (unsigned)d.bad_eol | (unsigned)d.nul << 1 |
	    (unsigned)eol << 2;
}

static void
bdat_arg(const uint8_t *p, size_t len)
{
	const uint8_t	*nl = memchr(p, '\n', len);
	uint64_t	 size;
	bool		 last;
	size_t		 i, n = nl ? (size_t)(nl - p) : len;

	if (smtp_data_bdat_arg(p, n, &size, &last) != PARSE_OK)
		return;
	/* OK: digits, then nothing or " LAST" */
	for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (i == 0 || i > SMTP_BDAT_DIGITS || (last ? n - i != 5 : i != n))
		abort();
}

/* strict_framing = shadow: what is output, kept whole. */
struct keep {
	uint8_t	*b;
	size_t	 n, cap;
};

static void
keep_out(void *arg, const uint8_t *p, size_t n)
{
	struct keep	*k = arg;

	if (k->n + n > k->cap)
		abort();		/* more than 2 bytes out per byte in */
	memcpy(k->b + k->n, p, n);
	k->n += n;
}

/*
 * Lenient: the end of data is where strict framing finds it (a bare LF
 * never ends a message), and what is output has no bare LF and no bare
 * CR, however the input is split; only a CR last may wait for its LF.
 */
static void
lenient(const uint8_t *p, size_t len, size_t cut, size_t strict_end)
{
	struct smtp_data	d;
	struct keep		k;
	size_t			used, end = SIZE_MAX, i;

	if ((k.b = malloc(2 * len + 2)) == NULL)
		return;
	k.n = 0;
	k.cap = 2 * len + 2;
	smtp_data_init(&d);
	d.lenient = true;
	if (cut > len)
		cut = len;
	if (smtp_data_scan(&d, p, cut, &used, keep_out, &k) == PARSE_OK)
		end = used;
	else if (smtp_data_scan(&d, p + cut, len - cut, &used, keep_out,
	    &k) == PARSE_OK)
		end = cut + used;
	if (end != strict_end)
		abort();
	for (i = 0; i < k.n; i++)
		if ((k.b[i] == '\n' && (i == 0 || k.b[i - 1] != '\r')) ||
		    (k.b[i] == '\r' && i + 1 < k.n && k.b[i + 1] != '\n'))
			abort();
	free(k.b);
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
	lenient(p, len, len, ea);
	lenient(p, len, len / 2, ea);
	if (raw(p, len, len) != raw(p, len, len / 2))
		abort();
	bdat_arg(p, len);
	return 0;
}
