/*
 * test_obs.c - src/obs/: the exposition writer (escaping, grouping,
 * histogram buckets cumulative with _count equal to +Inf, the final
 * newline, names checked), the fixed buckets' edges, the sum over loops,
 * the NDR reason mapping (an unknown token is "other", never a new
 * label), the minute ring, and the status page's escaping and its
 * refusal of anything active (no script, form or outside resource).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "obs/obs.h"
#include "obs/obs_expo.h"
#include "obs/obs_status.h"

static const char *
out_str(struct buf *b)
{
	return buf_cstr(b);
}

/* Label values: backslash, quote and newline escaped; others kept. */
static void
test_escape(void **state)
{
	static const struct {
		const char	*in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "a\\b", "a\\\\b" },
		{ "say \"hi\"", "say \\\"hi\\\"" },
		{ "two\nlines", "two\\nlines" },
		{ "\\\"\n", "\\\\\\\"\\n" },
		{ "utf-8 \xc3\xa9 kept", "utf-8 \xc3\xa9 kept" },
	};
	struct buf	b;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_init(&b, 1024);
		assert_int_equal(obs_expo_escape(&b, cases[i].in), 0);
		assert_string_equal(out_str(&b), cases[i].want);
		buf_free(&b);
	}
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(obs_expo_name_ok("mxgate_rcpt_total", 0));
	assert_true(obs_expo_name_ok("a:b_c9", 0));
	assert_false(obs_expo_name_ok("a:b", 1));	/* no colon in labels */
	assert_false(obs_expo_name_ok("9lives", 0));
	assert_false(obs_expo_name_ok("", 0));
	assert_false(obs_expo_name_ok("with-dash", 0));
	assert_false(obs_expo_name_ok("__reserved", 1));
	assert_true(obs_expo_name_ok("_ok", 1));
}

/* One family: HELP, TYPE, samples with labels in order, a newline each. */
static void
test_family(void **state)
{
	struct obs_label	l[2] = { { "decision", "reject" },
				    { "reason", "a\"b" } };
	struct buf		b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(obs_expo_family(&b, "x_total", "counter",
	    "help with \\ and\nnewline"), 0);
	assert_int_equal(obs_expo_u64(&b, "x_total", l, 2, 42), 0);
	assert_int_equal(obs_expo_u64(&b, "x_total", NULL, 0, 0), 0);
	assert_int_equal(obs_expo_f64(&b, "x_total", l, 1, 0.5), 0);
	assert_int_equal(obs_expo_f64(&b, "x_total", NULL, 0, 37e-6), 0);
	assert_int_equal(obs_expo_f64(&b, "x_total", NULL, 0, 0.1 + 0.2), 0);
	assert_string_equal(out_str(&b),
	    "# HELP x_total help with \\\\ and\\nnewline\n"
	    "# TYPE x_total counter\n"
	    "x_total{decision=\"reject\",reason=\"a\\\"b\"} 42\n"
	    "x_total 0\n"
	    "x_total{decision=\"reject\"} 0.5\n"
	    "x_total 3.7e-05\n"
	    "x_total 0.30000000000000004\n");
	buf_free(&b);
}

/* Bucket edges: a value equal to a bound falls in that bound's bucket. */
static void
test_hist(void **state)
{
	static const uint64_t	le[] = { 10, 100, 1000 };
	struct obs_hist_spec	sp = { le, 3, 1e-6 };
	struct obs_hist		h;
	struct obs_label	l = { "backend", "file" };
	struct buf		b;
	const uint64_t		vals[] = { 0, 10, 11, 100, 999, 1000, 1001,
				    5000000 };
	size_t			i;

	(void)state;
	memset(&h, 0, sizeof(h));
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
		obs_hist_note(&h, &sp, vals[i]);
	assert_int_equal(obs_get(&h.n[0]), 2);		/* 0, 10 */
	assert_int_equal(obs_get(&h.n[1]), 2);		/* 11, 100 */
	assert_int_equal(obs_get(&h.n[2]), 2);		/* 999, 1000 */
	assert_int_equal(obs_get(&h.n[3]), 2);		/* the rest */
	buf_init(&b, 4096);
	assert_int_equal(obs_expo_hist(&b, "d_seconds", &l, 1, &h, &sp), 0);
	assert_int_equal(strncmp(out_str(&b),
	    "d_seconds_bucket{backend=\"file\",le=\"1e-05\"} 2\n"
	    "d_seconds_bucket{backend=\"file\",le=\"0.0001\"} 4\n"
	    "d_seconds_bucket{backend=\"file\",le=\"0.001\"} 6\n"
	    "d_seconds_bucket{backend=\"file\",le=\"+Inf\"} 8\n"
	    "d_seconds_sum{backend=\"file\"} 5.00312", 221), 0);
	assert_non_null(strstr(out_str(&b),
	    "\nd_seconds_count{backend=\"file\"} 8\n"));
	buf_free(&b);
	/* without labels, le is the only one */
	buf_init(&b, 4096);
	memset(&h, 0, sizeof(h));
	assert_int_equal(obs_expo_hist(&b, "m", NULL, 0, &h,
	    &obs_batch_messages), 0);
	assert_non_null(strstr(out_str(&b), "m_bucket{le=\"1\"} 0\n"));
	assert_non_null(strstr(out_str(&b), "m_bucket{le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(out_str(&b), "m_count 0\n"));
	buf_free(&b);
}

/* The fixed specs: increasing bounds, within the maximum. */
static void
test_specs(void **state)
{
	const struct obs_hist_spec *sp[] = { &obs_rcpt_seconds,
	    &obs_dir_seconds, &obs_batch_messages };
	size_t	i, j;

	(void)state;
	for (i = 0; i < 3; i++) {
		assert_true(sp[i]->nle > 0 && sp[i]->nle <= OBS_HIST_BOUNDS_MAX);
		for (j = 1; j < sp[i]->nle; j++)
			assert_true(sp[i]->le[j] > sp[i]->le[j - 1]);
	}
}

/* A buf too small: -1, never a cut sample silently passed as done. */
static void
test_full(void **state)
{
	struct buf	b;

	(void)state;
	buf_init(&b, 20);
	assert_int_equal(obs_expo_family(&b, "a_long_metric_name_total",
	    "counter", "help"), -1);
	buf_free(&b);
}

static void
test_totals(void **state)
{
	static struct obs_loop	a, b;
	struct obs_totals	t;

	(void)state;
	memset(&t, 0, sizeof(t));
	obs_rcpt(&a, OBS_RCPT_ACCEPT_VALID);
	obs_rcpt(&a, OBS_RCPT_ACCEPT_VALID);
	obs_rcpt(&b, OBS_RCPT_ACCEPT_VALID);
	obs_rcpt(&b, OBS_RCPT_REJECT_UNKNOWN);
	obs_session_end(&b, OBS_SESS_QUIT);
	obs_hist_note(&a.rcpt_seconds, &obs_rcpt_seconds, 60);
	obs_hist_note(&b.rcpt_seconds, &obs_rcpt_seconds, 60);
	obs_totals_add(&t, &a);
	obs_totals_add(&t, &b);
	assert_int_equal(t.rcpt[OBS_RCPT_ACCEPT_VALID], 3);
	assert_int_equal(t.rcpt[OBS_RCPT_REJECT_UNKNOWN], 1);
	assert_int_equal(t.sessions[OBS_SESS_QUIT], 1);
	assert_int_equal(obs_get(&t.rcpt_seconds.n[1]), 2);	/* <= 100 us */
	assert_int_equal(obs_get(&t.rcpt_seconds.sum), 120);
}

/* Every label value a table holds is a well-formed, fixed word. */
static void
test_label_tables(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < OBS_RCPT_MAX; i++) {
		assert_true(obs_expo_name_ok(obs_rcpt_decision(i), 1));
		assert_true(obs_expo_name_ok(obs_rcpt_reason(i), 1));
	}
	for (i = 0; i < OBS_SESS_MAX; i++)
		assert_true(obs_expo_name_ok(obs_session_name(i), 1));
	for (i = 0; i < OBS_NDR_MAX; i++) {
		assert_true(obs_expo_name_ok(obs_ndr_action(i), 1));
		assert_true(obs_expo_name_ok(obs_ndr_reason(i), 1));
	}
	assert_string_equal(obs_rcpt_decision(OBS_RCPT_TARPIT_HARVEST),
	    "tarpit");
	assert_string_equal(obs_dir_kind_name(99), "unknown");
}

static void
test_ndr_reasons(void **state)
{
	static struct obs_loop	o;

	(void)state;
	obs_ndr_note(&o, false, NULL, "rate_sender");
	obs_ndr_note(&o, false, NULL, "forged_local_sender");
	obs_ndr_note(&o, false, NULL, "<script>");	/* not a label */
	obs_ndr_note(&o, false, NULL, NULL);
	obs_ndr_note(&o, true, "failed", NULL);
	obs_ndr_note(&o, true, "delayed", NULL);
	obs_ndr_note(&o, true, "relayed", NULL);
	obs_ndr_note(NULL, true, "failed", NULL);	/* nowhere: no crash */
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SUP_RATE_SENDER]), 1);
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SUP_FORGED_LOCAL]), 1);
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SUP_OTHER]), 2);
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SENT_FAILURE]), 1);
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SENT_DELAY]), 1);
	assert_int_equal(obs_get(&o.ndr[OBS_NDR_SENT_SUCCESS]), 1);
}

/* Snapshots once a minute; rows are the counts of each minute, the
 * last one the minute in progress; older than an hour falls off. */
static void
test_ring(void **state)
{
	static struct obs_ring	r;
	static uint64_t		rows[OBS_RING_MINUTES][OBS_RCPT_MAX];
	uint64_t		v[OBS_RCPT_MAX] = { 0 }, first;
	size_t			n, m;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(obs_ring_minutes(&r, v, 0, rows, &first), 0);
	assert_true(obs_ring_tick(&r, 0, v));
	assert_false(obs_ring_tick(&r, 59999, v));	/* same minute */
	v[OBS_RCPT_ACCEPT_VALID] = 5;
	n = obs_ring_minutes(&r, v, 30000, rows, &first);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0][OBS_RCPT_ACCEPT_VALID], 5);
	assert_true(obs_ring_tick(&r, 60000, v));
	v[OBS_RCPT_ACCEPT_VALID] = 7;
	v[OBS_RCPT_REJECT_UNKNOWN] = 2;
	n = obs_ring_minutes(&r, v, 90000, rows, &first);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0][OBS_RCPT_ACCEPT_VALID], 5);
	assert_int_equal(rows[1][OBS_RCPT_ACCEPT_VALID], 2);
	assert_int_equal(rows[1][OBS_RCPT_REJECT_UNKNOWN], 2);
	/* two hours of one RCPT a minute: the last 60 minutes only */
	for (m = 2; m < 120; m++) {
		v[OBS_RCPT_ACCEPT_VALID]++;
		assert_true(obs_ring_tick(&r, m * 60000, v));
	}
	n = obs_ring_minutes(&r, v, 119 * 60000 + 10, rows, &first);
	assert_int_equal(n, OBS_RING_MINUTES);
	assert_int_equal(first, 119 - OBS_RING_MINUTES + 1 + 1);
	assert_int_equal(rows[0][OBS_RCPT_ACCEPT_VALID], 1);
	assert_int_equal(rows[OBS_RING_MINUTES - 2][OBS_RCPT_ACCEPT_VALID], 1);
	assert_int_equal(rows[OBS_RING_MINUTES - 1][OBS_RCPT_ACCEPT_VALID], 0);
	/* a gap (nothing ticked for 10 minutes): those minutes are empty */
	v[OBS_RCPT_ACCEPT_VALID] += 3;
	n = obs_ring_minutes(&r, v, 129 * 60000, rows, &first);
	assert_int_equal(n, OBS_RING_MINUTES);
	assert_int_equal(rows[OBS_RING_MINUTES - 1][OBS_RCPT_ACCEPT_VALID], 0);
	assert_int_equal(rows[OBS_RING_MINUTES - 11][OBS_RCPT_ACCEPT_VALID],
	    3);
}

static void
test_status_page(void **state)
{
	static struct obs_status_view	v;
	struct buf			b;
	const char			*p;

	(void)state;
	memset(&v, 0, sizeof(v));
	v.hostname = "<script>alert('x')</script>&\"";
	v.version = "1.0";
	v.dir_backend = "file";
	v.dir_up = true;
	v.uptime_s = 3 * 86400 + 4 * 3600 + 5 * 60;
	v.rcpt_total[OBS_RCPT_ACCEPT_VALID] = 4;
	v.nrows = 2;
	v.rows[1][OBS_RCPT_ACCEPT_VALID] = 3;
	v.rows[1][OBS_RCPT_REJECT_UNKNOWN] = 1;
	buf_init(&b, 1 << 20);
	assert_int_equal(obs_status_page(&b, &v), 0);
	p = out_str(&b);
	assert_null(strstr(p, "<script"));
	assert_null(strstr(p, "<form"));
	assert_null(strstr(p, "src="));
	assert_null(strstr(p, "href="));
	assert_null(strstr(p, "url("));
	/* the one address on the page names the SVG namespace */
	assert_ptr_equal(strstr(p, "://"), strstr(p, "http://www.w3.org/") + 4);
	assert_null(strstr(strstr(p, "://") + 1, "://"));
	assert_non_null(strstr(p, "&lt;script&gt;alert(&#39;x&#39;)"
	    "&lt;/script&gt;&amp;&quot;"));
	assert_non_null(strstr(p, "3d 4h 5m"));
	assert_non_null(strstr(p, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
	assert_non_null(strstr(p, "reject/unknown"));
	assert_int_equal(p[b.len - 1], '\n');
	buf_free(&b);
	/* a page that does not fit: -1 */
	buf_init(&b, 512);
	assert_int_equal(obs_status_page(&b, &v), -1);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_hist),
		cmocka_unit_test(test_specs),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_totals),
		cmocka_unit_test(test_label_tables),
		cmocka_unit_test(test_ndr_reasons),
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_status_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
