/*
 * test_smtp_data.c - the DATA scanner: end of data, dot-unstuffing, bare
 * CR/LF (SMTP smuggling), NUL.  Every case is also fed split at every byte
 * position, and one byte at a time, to prove the scanner is resumable.
 * The same for BDAT content (smtp_data_raw), and the BDAT argument parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "smtp/smtp_data.h"

struct data_case {
	const char	*in;
	const char	*out;		/* message bytes */
	int		 end;		/* bytes up to the end mark, -1 none */
	bool		 bad;
};

static const struct data_case cases[] = {
	{ ".\r\n", "", 3, false },
	{ "a\r\n.\r\n", "a\r\n", 6, false },
	{ "a\r\n.\r\nMAIL", "a\r\n", 6, false },
	{ "..x\r\n.\r\n", ".x\r\n", 8, false },
	{ "...\r\n.\r\n", "..\r\n", 8, false },
	{ ".a\r\n.\r\n", "a\r\n", 7, false },
	{ "a\r\nb\r\n", "a\r\nb\r\n", -1, false },
	{ "a.\r\n.\r\n", "a.\r\n", 7, false },
	/* smuggling: none of these ends the message, all mark it bad */
	{ "a\n.\nMAIL FROM:<x>\r\n", NULL, -1, true },
	{ "a\r\n.\nMAIL FROM:<x>\r\n", NULL, -1, true },
	{ "a\n.\r\nMAIL", NULL, -1, true },
	{ "a\r.\r\n", NULL, -1, true },
	{ "a\r\n.\rMAIL\r\n", NULL, -1, true },
	{ "a\n.\n\r\n.\r\n", NULL, 9, true },
	{ "bare\rcr\r\n.\r\n", NULL, 12, true },
	{ "\n.\r\n", NULL, -1, true },
	{ "\r\n.\r\n", "\r\n", 5, false },
};

struct sink {
	struct buf	b;
};

static void
sink_out(void *arg, const uint8_t *p, size_t n)
{
	struct sink	*k = arg;

	assert_int_equal(buf_add(&k->b, p, n), 0);
}

/* Feed in as chunks of at most step bytes, split first at cut. */
static void
run_case(const struct data_case *c, size_t cut, size_t step)
{
	struct smtp_data	d;
	struct sink		k;
	size_t			len = strlen(c->in), off = 0, used, n;
	int			end = -1;

	buf_init(&k.b, 4096);
	smtp_data_init(&d);
	while (off < len) {
		n = off < cut ? cut - off : step;
		if (n == 0 || n > len - off)
			n = len - off;
		if (smtp_data_scan(&d, (const uint8_t *)c->in + off, n, &used,
		    sink_out, &k) == PARSE_OK) {
			end = (int)(off + used);
			break;
		}
		assert_int_equal(used, n);
		off += n;
	}
	assert_int_equal(end, c->end);
	assert_int_equal(d.bad_eol, c->bad);
	if (c->out != NULL) {
		assert_int_equal(k.b.len, strlen(c->out));
		assert_memory_equal(buf_cstr(&k.b), c->out, k.b.len);
	}
	buf_free(&k.b);
}

static void
test_cases(void **state)
{
	size_t	i, cut;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (cut = 0; cut <= strlen(cases[i].in); cut++)
			run_case(&cases[i], cut, 4096);
		run_case(&cases[i], 0, 1);
	}
}

/* NUL anywhere marks the message (RFC 5322 2.1); it never ends it. */
struct nul_case {
	const char	*in;
	size_t		 len;
	int		 end;		/* bytes up to the end mark, -1 none */
	bool		 nul;
	bool		 bad;		/* bare CR/LF as well */
};

#define NC(s, end, nul, bad)	{ s, sizeof(s) - 1, end, nul, bad }

static const struct nul_case nul_cases[] = {
	NC("a\r\n\0.\r\n.\r\n", 10, true, false),
	NC("a\r\n.\0\r\n.\r\n", 10, true, false),
	NC("a\0b\r\n.\r\n", 8, true, false),
	NC("\0\r\n.\r\n", 6, true, false),
	NC(".\0\r\n.\r\n", 7, true, false),
	NC("a\r\n.\r\n\0", 6, false, false),	/* after the end: not ours */
	NC("a\r\n\0\n.\r\n", -1, true, true),
	NC("a\r\0\n.\r\n", -1, true, true),
	NC("a\r\n.\r\n", 6, false, false),
};

static void
run_nul(const struct nul_case *c, size_t cut)
{
	struct smtp_data	d;
	struct sink		k;
	size_t			used, off = 0, n;
	int			end = -1;

	buf_init(&k.b, 4096);
	smtp_data_init(&d);
	while (off < c->len) {
		n = off < cut ? cut - off : c->len - off;
		if (smtp_data_scan(&d, (const uint8_t *)c->in + off, n, &used,
		    sink_out, &k) == PARSE_OK) {
			end = (int)(off + used);
			break;
		}
		off += n;
	}
	assert_int_equal(end, c->end);
	assert_int_equal(d.nul, c->nul);
	assert_int_equal(d.bad_eol, c->bad);
	buf_free(&k.b);
}

static void
test_nul(void **state)
{
	size_t	i, cut;

	(void)state;
	for (i = 0; i < sizeof(nul_cases) / sizeof(nul_cases[0]); i++)
		for (cut = 0; cut <= nul_cases[i].len; cut++)
			run_nul(&nul_cases[i], cut);
}

/* BDAT content: every byte is output; the flags and the line end. */
struct raw_case {
	const char	*in;
	size_t		 len;
	bool		 bad;
	bool		 nul;
	bool		 eol;		/* ends at a line end (or empty) */
};

#define RC(s, bad, nul, eol)	{ s, sizeof(s) - 1, bad, nul, eol }

static const struct raw_case raw_cases[] = {
	RC("", false, false, true),
	RC("a\r\n", false, false, true),
	RC(".\r\n..\r\n.\r\n", false, false, true),	/* no dots special */
	RC("a\r\nb", false, false, false),
	RC("a\r\nb\r", true, false, false),		/* CR at the end */
	RC("a\nb\r\n", true, false, true),
	RC("a\rb\r\n", true, false, true),
	RC("a\r\r\n", true, false, true),
	RC("\n", true, false, false),
	RC("a\0\r\n", false, true, true),
	RC("\0", false, true, false),
	RC("\r\n\0.\r\n", false, true, true),
};

static void
run_raw(const struct raw_case *c, size_t cut)
{
	struct smtp_data	d;
	struct sink		k;
	bool			eol;

	buf_init(&k.b, 4096);
	smtp_data_init(&d);
	if (cut > c->len)
		cut = c->len;
	smtp_data_raw(&d, (const uint8_t *)c->in, cut, sink_out, &k);
	smtp_data_raw(&d, (const uint8_t *)c->in + cut, c->len - cut,
	    sink_out, &k);
	eol = smtp_data_raw_end(&d);
	assert_int_equal(eol, c->eol);
	assert_int_equal(d.bad_eol, c->bad);
	assert_int_equal(d.nul, c->nul);
	assert_int_equal(k.b.len, c->len);
	if (c->len > 0)
		assert_memory_equal(k.b.data, c->in, c->len);
	buf_free(&k.b);
}

static void
test_raw(void **state)
{
	size_t	i, cut;

	(void)state;
	for (i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++)
		for (cut = 0; cut <= raw_cases[i].len; cut++)
			run_raw(&raw_cases[i], cut);
}

/* The BDAT argument (RFC 3030 2): chunk-size [SP "LAST"]. */
struct bdat_case {
	const char	*arg;
	enum parse_rc	 rc;
	uint64_t	 size;
	bool		 last;
};

static const struct bdat_case bdat_cases[] = {
	{ "0", PARSE_OK, 0, false },
	{ "0 LAST", PARSE_OK, 0, true },
	{ "1000 LAST", PARSE_OK, 1000, true },
	{ "1000 last", PARSE_OK, 1000, true },
	{ "1000 LaSt", PARSE_OK, 1000, true },
	{ "007", PARSE_OK, 7, false },
	{ "18446744073709551615", PARSE_OK, UINT64_MAX, false },
	{ "18446744073709551616", PARSE_TOOLONG, 0, false },
	{ "99999999999999999999", PARSE_TOOLONG, 0, false },
	{ "000000000000000000001", PARSE_TOOLONG, 0, false },
	{ "", PARSE_BAD, 0, false },
	{ "LAST", PARSE_BAD, 0, false },
	{ " 10", PARSE_BAD, 0, false },
	{ "10 ", PARSE_BAD, 0, false },
	{ "10  LAST", PARSE_BAD, 0, false },
	{ "10 LAST ", PARSE_BAD, 0, false },
	{ "10 LASTX", PARSE_BAD, 0, false },
	{ "10 LAS", PARSE_BAD, 0, false },
	{ "10 FIRST", PARSE_BAD, 0, false },
	{ "10\tLAST", PARSE_BAD, 0, false },
	{ "-1", PARSE_BAD, 0, false },
	{ "+1", PARSE_BAD, 0, false },
	{ "1e3", PARSE_BAD, 0, false },
	{ "10 ,AST", PARSE_BAD, 0, false },
};

static void
test_bdat_arg(void **state)
{
	const struct bdat_case	*c;
	uint64_t		 size;
	bool			 last;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
		c = &bdat_cases[i];
		assert_int_equal(smtp_data_bdat_arg((const uint8_t *)c->arg,
		    strlen(c->arg), &size, &last), c->rc);
		if (c->rc == PARSE_OK) {
			assert_true(size == c->size);
			assert_int_equal(last, c->last);
		}
	}
}

/*
 * strict_framing = shadow (issue 18): bare CR and LF are output as CRLF,
 * still flag the message, and never end it or unstuff a dot.
 */
static const struct data_case lenient_cases[] = {
	{ "a\nb\r\n.\r\n", "a\r\nb\r\n", 8, true },
	{ "a\rb\r\n.\r\n", "a\r\nb\r\n", 8, true },
	{ "a\n.\nMAIL\r\n.\r\n", "a\r\n.\r\nMAIL\r\n", 13, true },
	{ "a\r\n.\nb\r\n.\r\n", "a\r\n.\r\nb\r\n", 11, true },
	{ "a\r\n.\rb\r\n.\r\n", "a\r\n.\r\nb\r\n", 11, true },
	{ "\n..\r\n.\r\n", "\r\n..\r\n", 8, true },
	{ "a\r\r\n.\r\n", "a\r\n\r\n", 7, true },
	{ "a\r\n.\r\n", "a\r\n", 6, false },
	{ "a\n.\n", "a\r\n.\r\n", -1, true },	/* never an end */
};

static void
run_lenient(const struct data_case *c, size_t cut)
{
	struct smtp_data	d;
	struct sink		k;
	size_t			len = strlen(c->in), off = 0, used, n;
	int			end = -1;

	buf_init(&k.b, 4096);
	smtp_data_init(&d);
	d.lenient = true;
	while (off < len) {
		n = off < cut ? cut - off : len - off;
		if (smtp_data_scan(&d, (const uint8_t *)c->in + off, n, &used,
		    sink_out, &k) == PARSE_OK) {
			end = (int)(off + used);
			break;
		}
		off += n;
	}
	assert_int_equal(end, c->end);
	assert_int_equal(d.bad_eol, c->bad);
	assert_int_equal(k.b.len, strlen(c->out));
	assert_memory_equal(buf_cstr(&k.b), c->out, k.b.len);
	buf_free(&k.b);
}

static void
test_lenient(void **state)
{
	static const struct {
		const char	*in, *out;
	} raw[] = {
		{ "a\nb\r\n", "a\r\nb\r\n" },
		{ "a\rb\r\n", "a\r\nb\r\n" },
		{ "\n.\n", "\r\n.\r\n" },
		{ "a\r\r\n", "a\r\n\r\n" },
	};
	struct smtp_data	d;
	struct sink		k;
	size_t			i, cut, len;

	(void)state;
	for (i = 0; i < sizeof(lenient_cases) / sizeof(lenient_cases[0]); i++)
		for (cut = 0; cut <= strlen(lenient_cases[i].in); cut++)
			run_lenient(&lenient_cases[i], cut);
	for (i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
		for (cut = 0; cut <= strlen(raw[i].in); cut++) {
			len = strlen(raw[i].in);
			buf_init(&k.b, 4096);
			smtp_data_init(&d);
			d.lenient = true;
			smtp_data_raw(&d, (const uint8_t *)raw[i].in, cut,
			    sink_out, &k);
			smtp_data_raw(&d, (const uint8_t *)raw[i].in + cut,
			    len - cut, sink_out, &k);
			assert_true(smtp_data_raw_end(&d));
			assert_true(d.bad_eol);
			assert_int_equal(k.b.len, strlen(raw[i].out));
			assert_memory_equal(buf_cstr(&k.b), raw[i].out, k.b.len);
			buf_free(&k.b);
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_lenient),
		cmocka_unit_test(test_bdat_arg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
