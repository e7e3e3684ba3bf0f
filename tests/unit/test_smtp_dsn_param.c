/*
 * test_smtp_dsn_param.c - case tables for src/smtp/smtp_dsn_param.c and
 * src/lib/xtext.c: RET, ENVID, NOTIFY, ORCPT (RFC 3461 4.1-4.4), a
 * parameter given twice, the bounds at and one over, xtext decoding.
 * Values are copied into heap blocks of their exact length, so ASan
 * catches a parser that reads one byte too far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/xtext.h"
#include "smtp/smtp_dsn_param.h"

struct tc {
	bool		 rcpt;		/* RCPT parameter, else MAIL */
	const char	*key;
	const char	*value;		/* NULL: no "=" */
	int		 vrep;		/* value = vrep times value */
	enum smtp_dsn_rc rc;
	unsigned	 notify;	/* RCPT: expected bits */
	int		 ret;		/* MAIL: expected RET */
};

#define M(k, v, rc, ret)	{ false, k, v, 1, rc, 0, ret }
#define MR(k, v, n, rc)		{ false, k, v, n, rc, 0, 0 }
#define R(k, v, rc, bits)	{ true, k, v, 1, rc, bits, 0 }
#define RR(k, v, n, rc)		{ true, k, v, n, rc, 0, 0 }

static const struct tc cases[] = {
	M("RET", "FULL", SMTP_DSN_TAKEN, SMTP_DSN_RET_FULL),
	M("ret", "hdrs", SMTP_DSN_TAKEN, SMTP_DSN_RET_HDRS),
	M("RET", "ALL", SMTP_DSN_BAD, 0),
	M("RET", NULL, SMTP_DSN_BAD, 0),
	M("ENVID", "QQ314159", SMTP_DSN_TAKEN, 0),
	M("ENVID", "a+2Bb+3Dc", SMTP_DSN_TAKEN, 0),
	M("ENVID", "a+2bb", SMTP_DSN_BAD, 0),	/* lowercase hex */
	M("ENVID", "a+2", SMTP_DSN_BAD, 0),	/* short hexchar */
	M("ENVID", "a+0Db", SMTP_DSN_BAD, 0),	/* decodes to CR */
	M("ENVID", NULL, SMTP_DSN_BAD, 0),
	MR("ENVID", "x", 100, SMTP_DSN_TAKEN),
	MR("ENVID", "x", 101, SMTP_DSN_BAD),
	M("SIZE", "100", SMTP_DSN_OTHER, 0),
	M("NOTIFY", "NEVER", SMTP_DSN_OTHER, 0),	/* RCPT only */
	R("NOTIFY", "NEVER", SMTP_DSN_TAKEN, SMTP_DSN_NOTIFY_NEVER),
	R("notify", "success,delay", SMTP_DSN_TAKEN,
	    SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_DELAY),
	R("NOTIFY", "SUCCESS,FAILURE,DELAY", SMTP_DSN_TAKEN,
	    SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_FAILURE |
	    SMTP_DSN_NOTIFY_DELAY),
	R("NOTIFY", "NEVER,FAILURE", SMTP_DSN_BAD, 0),
	R("NOTIFY", "FAILURE,", SMTP_DSN_BAD, 0),
	R("NOTIFY", ",FAILURE", SMTP_DSN_BAD, 0),
	R("NOTIFY", "ALWAYS", SMTP_DSN_BAD, 0),
	R("NOTIFY", NULL, SMTP_DSN_BAD, 0),
	R("ORCPT", "rfc822;bob@example.test", SMTP_DSN_TAKEN, 0),
	R("ORCPT", "rfc822;b+2Bob@example.test", SMTP_DSN_TAKEN, 0),
	R("ORCPT", "bob@example.test", SMTP_DSN_BAD, 0),	/* no type */
	R("ORCPT", ";bob@example.test", SMTP_DSN_BAD, 0),
	R("ORCPT", "rfc822;", SMTP_DSN_BAD, 0),
	R("ORCPT", "rfc822;a+ZZ", SMTP_DSN_BAD, 0),
	R("ORCPT", "rfc(822;a", SMTP_DSN_BAD, 0),		/* not an atom */
	R("ORCPT", NULL, SMTP_DSN_BAD, 0),
	RR("ORCPT", "x", 500, SMTP_DSN_BAD),		/* no ";" */
	R("RET", "FULL", SMTP_DSN_OTHER, 0),		/* MAIL only */
	R("FOO", "1", SMTP_DSN_OTHER, 0),
};

static char *
tc_value(const struct tc *t, const char *prefix)
{
	size_t	n = strlen(t->value), p = strlen(prefix), i;
	char	*v = malloc(p + n * (size_t)t->vrep);

	assert_non_null(v);
	memcpy(v, prefix, p);
	for (i = 0; i < (size_t)t->vrep; i++)
		memcpy(v + p + i * n, t->value, n);
	return v;
}

static void
test_case_table(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct tc		*t = &cases[i];
		struct smtp_dsn_mail	 dm = { .ret = SMTP_DSN_RET_UNSET };
		struct smtp_dsn_rcpt	 dr = { .notify = 0 };
		struct smtp_param	 pa;
		char			*v = NULL;
		enum smtp_dsn_rc	 rc;

		pa.key = (struct span){ (const uint8_t *)t->key,
		    strlen(t->key) };
		pa.value = (struct span){ NULL, 0 };
		if (t->value != NULL) {
			v = tc_value(t, "");
			pa.value = (struct span){ (const uint8_t *)v,
			    strlen(t->value) * (size_t)t->vrep };
		}
		rc = t->rcpt ? smtp_dsn_rcpt_param(&pa, &dr) :
		    smtp_dsn_mail_param(&pa, &dm);
		if (rc != t->rc)
			fail_msg("case %zu (%s=%s): rc %d, want %d", i, t->key,
			    t->value ? t->value : "(none)", rc, t->rc);
		if (rc == SMTP_DSN_TAKEN && t->rcpt)
			assert_int_equal(dr.notify, t->notify);
		if (rc == SMTP_DSN_TAKEN && !t->rcpt && t->ret != 0)
			assert_int_equal(dm.ret, t->ret);
		/* RFC 3461: each parameter at most once per command */
		if (rc == SMTP_DSN_TAKEN)
			assert_int_equal(t->rcpt ?
			    smtp_dsn_rcpt_param(&pa, &dr) :
			    smtp_dsn_mail_param(&pa, &dm), SMTP_DSN_BAD);
		free(v);
	}
}

/* ORCPT's bound is on the value as sent: 500 fits, 501 does not. */
static void
test_orcpt_bound(void **state)
{
	struct smtp_dsn_rcpt	dr;
	struct smtp_param	pa = { { (const uint8_t *)"ORCPT", 5 },
				    { NULL, 0 } };
	char			*v;
	size_t			 n;

	(void)state;
	for (n = 499; n <= 501; n++) {
		memset(&dr, 0, sizeof(dr));
		assert_non_null(v = malloc(n));
		memcpy(v, "rfc822;", 7);
		memset(v + 7, 'a', n - 7);
		pa.value = (struct span){ (const uint8_t *)v, n };
		assert_int_equal(smtp_dsn_rcpt_param(&pa, &dr), n <= 500 ?
		    SMTP_DSN_TAKEN : SMTP_DSN_BAD);
		if (n <= 500)
			assert_int_equal(dr.orcpt.len, n);
		free(v);
	}
}

static void
test_xtext_decode(void **state)
{
	char	out[16];

	(void)state;
	assert_int_equal(xtext_decode((const uint8_t *)"a+2Bb", 5, out,
	    sizeof(out)), 3);
	assert_string_equal(out, "a+b");
	assert_int_equal(xtext_decode((const uint8_t *)"+20", 3, out,
	    sizeof(out)), 1);
	assert_string_equal(out, " ");
	assert_int_equal(xtext_decode((const uint8_t *)"", 0, out,
	    sizeof(out)), 0);
	/* does not fit: 4 bytes and a NUL into 4 */
	assert_int_equal(xtext_decode((const uint8_t *)"abcd", 4, out, 4), -1);
	assert_int_equal(xtext_decode((const uint8_t *)"abc", 3, out, 4), 3);
	assert_false(xtext_valid((const uint8_t *)"a b", 3));
	assert_false(xtext_valid((const uint8_t *)"a=b", 3));
	assert_false(xtext_valid((const uint8_t *)"a+7F", 4));	/* DEL */
	assert_false(xtext_valid((const uint8_t *)"\xc3\xa9", 2));
	assert_true(xtext_valid((const uint8_t *)"+7E", 3));
}

static void
test_notify_format(void **state)
{
	char		out[40];
	unsigned	bits;

	(void)state;
	smtp_dsn_notify_format(SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_DELAY,
	    out, sizeof(out));
	assert_string_equal(out, "SUCCESS,DELAY");
	assert_int_equal(smtp_dsn_notify_parse((const uint8_t *)out,
	    strlen(out), &bits), 0);
	assert_int_equal(bits, SMTP_DSN_NOTIFY_SUCCESS | SMTP_DSN_NOTIFY_DELAY);
	smtp_dsn_notify_format(0, out, sizeof(out));
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_table),
		cmocka_unit_test(test_orcpt_bound),
		cmocka_unit_test(test_xtext_decode),
		cmocka_unit_test(test_notify_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
