/*
 * test_probe.c - the pure parts of `mxgate probe` (src/probe/), by table:
 * argument parsing (the fixed interface of issue 15: HOST[:PORT] with the
 * default port 25, --domain required, the value checks), the line framer
 * (CRLF, bare LF, the PROBE_LINE_MAX bound), the reply accumulator
 * (multi-line, code changes, the line count bound, 1 MB lines kept
 * truncated), the transcript escaping, the two-sample Kolmogorov-Smirnov
 * p-value, invented names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe/probe.h"

struct arg_case {
	const char	*argv[12];
	int		 rc;
	const char	*host, *port, *err;
};

static const struct arg_case arg_cases[] = {
	{ { "mx.example.org", "--domain", "example.org" }, 0,
	  "mx.example.org", "25", NULL },
	{ { "192.0.2.1:2525", "--domain=example.org" }, 0, "192.0.2.1",
	  "2525", NULL },
	{ { "[2001:db8::1]:26", "--domain", "d" }, 0, "2001:db8::1", "26",
	  NULL },
	{ { "2001:db8::1", "--domain", "d" }, 0, "2001:db8::1", "25", NULL },
	{ { "h", "--domain", "d", "--rate", "10/s", "--max-rcpt", "5",
	    "--timeout", "500ms" }, 0, "h", "25", NULL },
	{ { "h" }, -1, NULL, NULL, "--domain is required" },
	{ { "--domain", "d" }, -1, NULL, NULL, "HOST is required" },
	{ { "h", "--domain", "a@b" }, -1, NULL, NULL, "bad value" },
	{ { "h", "--domain", "d", "--rate", "0" }, -1, NULL, NULL,
	  "bad value for --rate" },
	{ { "h", "--domain", "d", "--timeout", "1h" }, -1, NULL, NULL,
	  "bad value for --timeout" },
	{ { "h", "--domain", "d", "--known", "nobody" }, -1, NULL, NULL,
	  "bad value for --known" },
	{ { "h", "--domain", "d", "--source", "not-an-ip" }, -1, NULL, NULL,
	  "bad value for --source" },
	{ { "h:99999", "--domain", "d" }, -1, NULL, NULL, "bad HOST" },
	{ { "h", "--domain", "d", "--ndr-listen", "127.0.0.1:1" }, -1, NULL,
	  NULL, "needs --intrusive" },
	{ { "h", "--domain", "d", "--intrusive", "--ndr-listen",
	    "127.0.0.1:1" }, -1, NULL, NULL, "needs --ndr-domain" },
	{ { "h", "--domain", "d", "--timeout" }, -1, NULL, NULL,
	  "needs a value" },
	{ { "h", "h2", "--domain", "d" }, -1, NULL, NULL, "unexpected" },
};

static void
test_args(void **state)
{
	struct probe_opts	o;
	char			err[256];
	size_t			i;
	int			argc;

	(void)state;
	for (i = 0; i < sizeof(arg_cases) / sizeof(arg_cases[0]); i++) {
		const struct arg_case *c = &arg_cases[i];
		for (argc = 0; c->argv[argc] != NULL; argc++)
			;
		err[0] = '\0';
		assert_int_equal(probe_parse_args(argc, (char **)c->argv, &o,
		    err, sizeof(err)), c->rc);
		if (c->rc == 0) {
			assert_string_equal(o.host, c->host);
			assert_string_equal(o.port, c->port);
		} else
			assert_non_null(strstr(err, c->err));
	}
	assert_int_equal(probe_parse_args(9, (char **)arg_cases[4].argv, &o,
	    err, sizeof(err)), 0);
	assert_int_equal(o.rate, 10);
	assert_int_equal(o.max_rcpt, 5);
	assert_int_equal(o.timeout_ms, 500);
	assert_int_equal(probe_parse_args(3, (char **)arg_cases[0].argv, &o,
	    err, sizeof(err)), 0);
	assert_int_equal(o.rate, 5);		/* the defaults */
	assert_int_equal(o.max_rcpt, 200);
	assert_int_equal(o.timeout_ms, 30000);
}

static void
test_line_next(void **state)
{
	uint8_t		big[PROBE_LINE_MAX + 10];
	size_t		ll = 99, used = 99;

	(void)state;
	assert_int_equal(probe_line_next((const uint8_t *)"250 ok\r\nx", 9,
	    PROBE_LINE_MAX, &ll, &used), PARSE_OK);
	assert_int_equal(ll, 6);
	assert_int_equal(used, 8);
	assert_int_equal(probe_line_next((const uint8_t *)"250 ok\n", 7,
	    PROBE_LINE_MAX, &ll, &used), PARSE_OK);
	assert_int_equal(ll, 6);
	assert_int_equal(probe_line_next((const uint8_t *)"250 ok", 6,
	    PROBE_LINE_MAX, &ll, &used), PARSE_MORE);
	memset(big, 'x', sizeof(big));
	assert_int_equal(probe_line_next(big, sizeof(big), PROBE_LINE_MAX,
	    &ll, &used), PARSE_TOOLONG);
	big[PROBE_LINE_MAX - 1] = '\n';
	assert_int_equal(probe_line_next(big, sizeof(big), PROBE_LINE_MAX,
	    &ll, &used), PARSE_OK);
	assert_int_equal(ll, PROBE_LINE_MAX - 1);
}

static void
test_reply(void **state)
{
	struct probe_reply	r;
	char			longl[PROBE_LINE_MAX];
	unsigned		i;

	(void)state;
	probe_reply_init(&r);
	assert_int_equal(probe_reply_line(&r, "250-mx.example", 14),
	    PARSE_MORE);
	assert_int_equal(probe_reply_line(&r, "250-STARTTLS", 12), PARSE_MORE);
	assert_int_equal(probe_reply_line(&r, "250 PIPELINING", 14), PARSE_OK);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_true((r.ext & CLIENT_EXT_STARTTLS) != 0);
	assert_string_equal(r.text, "250-mx.example\n250-STARTTLS\n"
	    "250 PIPELINING");

	probe_reply_init(&r);
	assert_int_equal(probe_reply_line(&r, "550 5.1.1 no", 12), PARSE_OK);
	assert_string_equal(r.esc, "5.1.1");

	probe_reply_init(&r);		/* the code changes mid-reply */
	assert_int_equal(probe_reply_line(&r, "250-a", 5), PARSE_MORE);
	assert_int_equal(probe_reply_line(&r, "550 b", 5), PARSE_BAD);
	probe_reply_init(&r);
	assert_int_equal(probe_reply_line(&r, "hello", 5), PARSE_BAD);
	probe_reply_init(&r);
	assert_int_equal(probe_reply_line(&r, "220 a\0b", 7), PARSE_BAD);

	probe_reply_init(&r);		/* endless: bounded */
	for (i = 0; i < PROBE_REPLY_LINES_MAX + 5; i++)
		if (probe_reply_line(&r, "220-more", 8) != PARSE_MORE)
			break;
	assert_true(i <= PROBE_REPLY_LINES_MAX);

	probe_reply_init(&r);		/* long: judged, kept truncated */
	memset(longl, 'y', sizeof(longl));
	memcpy(longl, "250 ", 4);
	assert_int_equal(probe_reply_line(&r, longl, sizeof(longl)), PARSE_OK);
	assert_int_equal(strlen(r.text), sizeof(r.text) - 1);
}

static void
test_escape(void **state)
{
	struct buf	b;

	(void)state;
	buf_init(&b, 1024);
	probe_escape(&b, "a\r\n\x01\\\xff", 6);
	assert_string_equal(buf_cstr(&b), "a\\r\\n\\x01\\x5c\\xff");
	buf_free(&b);
}

static void
test_ks(void **state)
{
	double	a[20], b[20], d, p;
	size_t	i;

	(void)state;
	for (i = 0; i < 20; i++) {
		a[i] = (double)i;
		b[i] = (double)i + 0.5;
	}
	p = probe_ks_pvalue(a, 20, b, 20, &d);
	assert_true(d <= 0.051 && p > 0.9);	/* the same distribution */
	for (i = 0; i < 20; i++)
		b[i] = 100.0 + (double)i;
	p = probe_ks_pvalue(a, 20, b, 20, &d);
	assert_true(d > 0.99 && p < 1e-6);	/* disjoint */
	p = probe_ks_pvalue(a, 0, b, 20, &d);
	assert_true(p == 1.0 && d == 0.0);
	for (i = 0; i < 20; i++)		/* half shifted: D = 0.5 */
		b[i] = (double)i + 10.0;
	p = probe_ks_pvalue(a, 20, b, 20, &d);
	assert_true(d > 0.49 && d < 0.51);
	assert_true(p > 0.005 && p < 0.02);	/* tables: 0.0095 */
}

static void
test_invent(void **state)
{
	struct probe_run	run;
	char			a[PROBE_ADDR_MAX], b[PROBE_ADDR_MAX];

	(void)state;
	memset(&run, 0, sizeof(run));
	memcpy(run.o.domain, "example.org", 12);
	run.rnd = 12345;
	probe_invent(&run, a, sizeof(a));
	probe_invent(&run, b, sizeof(b));
	assert_int_equal(strlen(a), strlen("probe-0123456789@example.org"));
	assert_memory_equal(a, "probe-", 6);
	assert_string_not_equal(a, b);
	assert_non_null(strstr(a, "@example.org"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_line_next),
		cmocka_unit_test(test_reply),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_ks),
		cmocka_unit_test(test_invent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
