/*
 * test_obs_log.c - the log formats of src/obs/: the JSON string escaper
 * (control characters, quotes, strict UTF-8, bytes that are not UTF-8,
 * a buffer too small), the text-line tokenizer, a text line as a JSON
 * object, the Postfix-style syslog forms, the client's prefix, the keyed
 * recipient hash, and `mxgate report`'s line parser on text and JSON
 * lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/log.h"
#include "obs/log_hash.h"
#include "obs/log_json.h"
#include "obs/report.h"

struct esc_case {
	const char	*in;
	size_t		 len;
	const char	*out;
};

#define EC(s, o)	{ s, sizeof(s) - 1, o }

static const struct esc_case esc_cases[] = {
	EC("", "\"\""),
	EC("plain", "\"plain\""),
	EC("a\"b\\c", "\"a\\\"b\\\\c\""),
	EC("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\""),
	EC("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\""),
	EC("nul\0x", "\"nul\\u0000x\""),
	EC("caf\xc3\xa9", "\"caf\xc3\xa9\""),		/* UTF-8 kept */
	EC("\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xe2\x82\xac\xf0\x9f\x98\x80\""),
	EC("\x80", "\"\\ufffd\""),			/* lone continuation */
	EC("\xff\xfe", "\"\\ufffd\\ufffd\""),
	EC("\xc0\xaf", "\"\\ufffd\\ufffd\""),		/* overlong '/' */
	EC("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""),	/* surrogate */
	EC("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""), /* >10FFFF */
	EC("\xc3", "\"\\ufffd\""),			/* cut short */
	EC("a\xe2\x82", "\"a\\ufffd\\ufffd\""),
	EC("\xe2\x80\xa8", "\"\\u2028\""),		/* JS line separator */
};

static void
test_escape(void **state)
{
	char	out[256];
	size_t	i;
	int	n;

	(void)state;
	for (i = 0; i < sizeof(esc_cases) / sizeof(esc_cases[0]); i++) {
		n = obs_json_escape((const uint8_t *)esc_cases[i].in,
		    esc_cases[i].len, out, sizeof(out));
		assert_int_equal(n, (int)strlen(esc_cases[i].out));
		assert_memory_equal(out, esc_cases[i].out, (size_t)n);
	}
}

/* Every buffer size from 0 up: -1 until it fits, never a byte past. */
static void
test_escape_small(void **state)
{
	const char	*in = "a\x01\xff\xc3\xa9\"";
	char		 out[64];
	size_t		 cap;
	int		 n, full;

	(void)state;
	full = obs_json_escape((const uint8_t *)in, strlen(in), out,
	    sizeof(out));
	assert_true(full > 0);
	for (cap = 0; cap < sizeof(out); cap++) {
		memset(out, 'Z', sizeof(out));
		n = obs_json_escape((const uint8_t *)in, strlen(in), out, cap);
		if ((int)cap <= full)
			assert_int_equal(n, -1);
		else
			assert_int_equal(n, full);
		assert_int_equal(out[cap], 'Z');
	}
}

static void
test_kv(void **state)
{
	const char	*line = " a=1 b=\"x y\" bare c= d=\"open";
	const char	*p = line, *end = line + strlen(line);
	struct obs_kv	 kv;
	uint8_t		 v[16];

	(void)state;
	assert_true(obs_kv_next(&p, end, &kv));
	assert_int_equal(kv.klen, 1);
	assert_memory_equal(kv.val, "1", 1);
	assert_true(obs_kv_next(&p, end, &kv));
	assert_int_equal(kv.vlen, 3);
	assert_memory_equal(kv.val, "x y", 3);
	assert_true(obs_kv_next(&p, end, &kv));
	assert_int_equal(kv.klen, 0);			/* a bare word */
	assert_true(obs_kv_next(&p, end, &kv));
	assert_int_equal(kv.vlen, 0);
	assert_true(obs_kv_next(&p, end, &kv));
	assert_int_equal(kv.vlen, 4);			/* unclosed: to the end */
	assert_false(obs_kv_next(&p, end, &kv));
	assert_int_equal(obs_kv_unescape("a\\x41\\x0\\xzz", 12, v,
	    sizeof(v)), 9);
	assert_memory_equal(v, "aA\\x0\\xzz", 9);
}

static void
test_line_json(void **state)
{
	const char	*line = "2026-01-02T03:04:05.678Z level=info event=rcpt "
	    "sid=00066213229D944E client=192.0.2.7 to=<a\\x01\\xff@x> "
	    "latency_ms=12 size=012 reply=\"550 5.1.1 no\" to=dup bare";
	const char	*want = "{\"time\":\"2026-01-02T03:04:05.678Z\","
	    "\"level\":\"info\",\"event\":\"rcpt\",\"sid\":\"00066213229D944E\","
	    "\"client\":\"192.0.2.7\",\"to\":\"<a\\u0001\\ufffd@x>\","
	    "\"latency_ms\":12,\"size\":\"012\",\"reply\":\"550 5.1.1 no\","
	    "\"text\":\"bare\"}";
	char		 out[512];
	size_t		 n, cap;

	(void)state;
	n = obs_log_json(line, strlen(line), out, sizeof(out));
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	for (cap = 0; cap <= strlen(want); cap++)	/* no room: 0 */
		assert_int_equal(obs_log_json(line, strlen(line), out, cap), 0);
	assert_int_equal(obs_log_json("nospace", 7, out, sizeof(out)), 0);
}

static void
test_postfix(void **state)
{
	static const struct {
		const char	*line, *want;
	} cases[] = {
		{ "T level=info event=connect sid=1 client=192.0.2.7 loop=0",
		  "connect from unknown[192.0.2.7]" },
		{ "T level=info event=disconnect sid=1 client=2001:db8::1 "
		  "messages=0", "disconnect from unknown[2001:db8::1]" },
		{ "T level=info event=rcpt sid=1 client=192.0.2.7 helo=h.test "
		  "from=<a@b> to=<x@ex> verdict=unknown action=reject "
		  "reply=\"550 5.1.1 <x@ex>: Recipient address rejected: "
		  "User unknown\"",
		  "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.1.1 "
		  "<x@ex>: Recipient address rejected: User unknown; "
		  "from=<a@b> to=<x@ex> proto=ESMTP helo=<h.test>" },
		{ "T level=info event=rcpt sid=1 client=192.0.2.7 helo=- "
		  "from=<> to=<x@ex> action=uniform "
		  "reply=\"450 4.7.1 Try again later\"",
		  "NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 450 4.7.1 "
		  "<x@ex>: Try again later; from=<> to=<x@ex> proto=ESMTP "
		  "helo=<->" },
		/* accepted, or not a session line: no Postfix form */
		{ "T level=info event=rcpt sid=1 client=192.0.2.7 to=<x@ex> "
		  "reply=\"250 2.1.5 Ok\"", NULL },
		{ "T level=info event=queued sid=1 client=192.0.2.7", NULL },
		{ "T level=info event=connect", NULL },
	};
	char	out[512];
	size_t	i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = obs_log_postfix(cases[i].line, strlen(cases[i].line), out,
		    sizeof(out));
		if (cases[i].want == NULL) {
			assert_int_equal(n, 0);
			continue;
		}
		assert_int_equal(n, strlen(cases[i].want));
		assert_memory_equal(out, cases[i].want, n);
	}
}

static void
test_hash(void **state)
{
	char	dir[] = "/tmp/test_obs_hashXXXXXX", key[64], a[OBS_HASH_TEXT];
	char	b[OBS_HASH_TEXT], err[256];
	FILE	*f;

	(void)state;
	assert_string_equal(obs_hash_rcpt("a@b", 3, a), "-");	/* no key */
	assert_non_null(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s/k", dir);
	f = fopen(key, "w");
	fputs("0123456789abcdef-key", f);
	fclose(f);
	assert_int_equal(obs_hash_init(key, NULL, err, sizeof(err)), 0);
	obs_hash_rcpt("alice@example.test", 18, a);
	obs_hash_rcpt("alice@example.test", 18, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), OBS_HASH_TEXT - 1);
	assert_memory_equal(a, "hmac:", 5);
	obs_hash_rcpt("bob@example.test", 16, b);
	assert_string_not_equal(a, b);
	f = fopen(key, "w");
	fputs("short", f);
	fclose(f);
	assert_int_equal(obs_hash_init(key, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "at least 16 bytes"));
	/* no file named: made in the spool once, then the same */
	assert_int_equal(obs_hash_init(NULL, dir, err, sizeof(err)), 0);
	obs_hash_rcpt("alice@example.test", 18, a);
	assert_int_equal(obs_hash_init(NULL, dir, err, sizeof(err)), 0);
	obs_hash_rcpt("alice@example.test", 18, b);
	assert_string_equal(a, b);
	snprintf(key, sizeof(key), "%s/log_hash.key", dir);
	unlink(key);
	snprintf(key, sizeof(key), "%s/k", dir);
	unlink(key);
	rmdir(dir);
}

static void
test_prefix(void **state)
{
	static const struct {
		const char	*client, *want;
	} cases[] = {
		{ "192.0.2.7", "192.0.2.0/24" },
		{ "10.1.2.255", "10.1.2.0/24" },
		{ "2001:db8:1:2:3:4:5:6", "2001:db8:1::/48" },
		{ "2001:db8:ffff:ffff::1", "2001:db8:ffff::/48" },
		{ "::1", "::/48" },
		{ "unknown", "-" },
		{ "", "-" },
	};
	char	out[64];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		obs_client_prefix(cases[i].client, out, sizeof(out));
		assert_string_equal(out, cases[i].want);
	}
}

static void
test_report_parse(void **state)
{
	static struct obs_rec	r;
	const char		*t = "2026-01-02T03:04:05.678Z level=info "
	    "event=rcpt client=192.0.2.7 to=<a\\x41@x> reply=\"550 x y\"";
	const char		*j = "{\"time\":\"2026-01-02T03:04:05Z\", "
	    "\"event\":\"rcpt\",\"to\":\"<a\\u0041\\ud83d\\ude00@x>\","
	    "\"latency_ms\":12,\"shadow\":1,\"ok\":true}";

	(void)state;
	assert_int_equal(obs_report_parse(t, strlen(t), &r), PARSE_OK);
	assert_string_equal(obs_rec_get(&r, "time"),
	    "2026-01-02T03:04:05.678Z");
	assert_string_equal(obs_rec_get(&r, "to"), "<aA@x>");
	assert_string_equal(obs_rec_get(&r, "reply"), "550 x y");
	assert_int_equal(obs_report_parse(j, strlen(j), &r), PARSE_OK);
	assert_string_equal(obs_rec_get(&r, "to"), "<aA\xf0\x9f\x98\x80@x>");
	assert_string_equal(obs_rec_get(&r, "latency_ms"), "12");
	assert_string_equal(obs_rec_get(&r, "ok"), "true");
	assert_null(obs_rec_get(&r, "missing"));
#define BAD(s)	assert_int_equal(obs_report_parse(s, strlen(s), &r), PARSE_BAD)
	BAD("");
	BAD("junk");
	BAD("{");
	BAD("{\"event\":\"x\"");
	BAD("{\"event\":[1]}");
	BAD("{\"event\":{\"a\":1}}");
	BAD("{\"event\":\"x\"} trailing");
	BAD("{\"event\":\"a\x01\"}");
	BAD("{\"event\":\"\\q\"}");
	BAD("{\"event\":\"\\u12\"}");
	BAD("{\"a\":1}");			/* no event */
	BAD("2026-01-02T03:04:05Z level=info");	/* no event */
#undef BAD
	{
		char	*big = malloc(OBS_REPORT_LINE_MAX + 2);

		memset(big, 'a', OBS_REPORT_LINE_MAX + 1);
		assert_int_equal(obs_report_parse(big, OBS_REPORT_LINE_MAX + 1,
		    &r), PARSE_TOOLONG);
		free(big);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_escape_small),
		cmocka_unit_test(test_kv),
		cmocka_unit_test(test_line_json),
		cmocka_unit_test(test_postfix),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_report_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
