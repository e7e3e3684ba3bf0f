/*
 * test_smtp_data.c - the DATA scanner: end of data, dot-unstuffing, bare
 * CR/LF (SMTP smuggling).  Every case is also fed split at every byte
 * position, and one byte at a time, to prove the scanner is resumable.
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
