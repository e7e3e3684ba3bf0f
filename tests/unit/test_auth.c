/*
 * test_auth.c - the AUTH exchange (smtp_auth.c: PLAIN, LOGIN, base64) and
 * the password file (passwd.c: lines, load, verify, hash), table-driven.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/passwd.h"
#include "smtp/smtp_auth.h"

/* ---- base64 ---- */

static const struct {
	const char	*in;
	enum parse_rc	 rc;
	const char	*out;		/* PARSE_OK */
	size_t		 outlen;
} b64_cases[] = {
	{ "", PARSE_OK, "", 0 },
	{ "Zg==", PARSE_OK, "f", 1 },
	{ "Zm8=", PARSE_OK, "fo", 2 },
	{ "Zm9v", PARSE_OK, "foo", 3 },
	{ "Zm9vYg==", PARSE_OK, "foob", 4 },
	{ "Zm9vYmE=", PARSE_OK, "fooba", 5 },
	{ "Zm9vYmFy", PARSE_OK, "foobar", 6 },
	{ "AGFsaWNlAHNlY3JldA==", PARSE_OK, "\0alice\0secret", 13 },
	{ "+/+/", PARSE_OK, "\xfb\xff\xbf", 3 },
	{ "Zg=", PARSE_BAD, NULL, 0 },		/* not a multiple of 4 */
	{ "Zg", PARSE_BAD, NULL, 0 },
	{ "Z===", PARSE_BAD, NULL, 0 },		/* three pads */
	{ "====", PARSE_BAD, NULL, 0 },
	{ "Zg==Zg==", PARSE_BAD, NULL, 0 },	/* pad inside */
	{ "Zm9 v", PARSE_BAD, NULL, 0 },
	{ "Zm9v\r\n", PARSE_BAD, NULL, 0 },
	{ "Zm-v", PARSE_BAD, NULL, 0 },		/* base64url is not base64 */
	{ "Zm9vYmFyYmF6Zm9vYmFyYmF6", PARSE_TOOLONG, NULL, 0 }, /* 18 > 16 */
	{ "Zm9vYmFyYmF6Zm9vYmFyYmE=", PARSE_TOOLONG, NULL, 0 }, /* 17 */
	{ "Zm9vYmFyYmF6Zm9vYmFyYg==", PARSE_OK, "foobarbazfoobarb", 16 },
};

static void
test_b64(void **state)
{
	uint8_t	out[16];
	size_t	i, n;

	(void)state;
	for (i = 0; i < sizeof(b64_cases) / sizeof(b64_cases[0]); i++) {
		enum parse_rc rc = smtp_auth_b64_decode(
		    (const uint8_t *)b64_cases[i].in, strlen(b64_cases[i].in),
		    out, sizeof(out), &n);

		if (rc != b64_cases[i].rc)
			fail_msg("case %zu (%s): rc %d, want %d", i,
			    b64_cases[i].in, rc, b64_cases[i].rc);
		if (rc == PARSE_OK) {
			assert_int_equal(n, b64_cases[i].outlen);
			assert_memory_equal(out, b64_cases[i].out, n);
		}
	}
}

/* ---- the exchange ---- */

#define END	NULL

/* One exchange: the AUTH argument, then response lines, each step's
 * expected result, and the credentials at the end. */
static const struct {
	const char		*arg;
	const char		*lines[3];
	enum smtp_auth_rc	 rc[4];		/* for arg, then each line */
	const char		*challenge;	/* after the last CHALLENGE */
	const char		*user;		/* at SMTP_AUTH_READY */
	const char		*pass;
} ex_cases[] = {
	/* PLAIN with an initial response: \0alice\0secret */
	{ "PLAIN AGFsaWNlAHNlY3JldA==", { END },
	  { SMTP_AUTH_READY }, NULL, "alice", "secret" },
	/* authzid equal to authcid */
	{ "plain YWxpY2UAYWxpY2UAc2VjcmV0", { END },
	  { SMTP_AUTH_READY }, NULL, "alice", "secret" },
	/* authzid of someone else: refused */
	{ "PLAIN Ym9iAGFsaWNlAHNlY3JldA==", { END },
	  { SMTP_AUTH_MALFORMED }, NULL, NULL, NULL },
	/* PLAIN without initial response: "334 " then the message */
	{ "PLAIN", { "AGFsaWNlAHNlY3JldA==", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_READY }, "", "alice", "secret" },
	/* one NUL only; empty user; empty password */
	{ "PLAIN YWxpY2UAc2VjcmV0", { END }, { SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	{ "PLAIN AABzZWNyZXQ=", { END }, { SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	{ "PLAIN AGFsaWNlAA==", { END }, { SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	/* a third NUL: in the password, refused */
	{ "PLAIN AGFsaWNlAHNlYwByZXQ=", { END }, { SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	/* "=" is an empty initial response */
	{ "PLAIN =", { END }, { SMTP_AUTH_MALFORMED }, NULL, NULL, NULL },
	{ "PLAIN", { "*", END }, { SMTP_AUTH_CHALLENGE, SMTP_AUTH_CANCEL },
	  NULL, NULL, NULL },
	{ "PLAIN", { "not base64!", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_BAD_B64 }, NULL, NULL, NULL },
	{ "PLAIN AGFsaWNl AHNlY3JldA==", { END }, { SMTP_AUTH_SYNTAX },
	  NULL, NULL, NULL },
	{ "PLAIN ", { END }, { SMTP_AUTH_SYNTAX }, NULL, NULL, NULL },
	{ "PLAIN Zg=", { END }, { SMTP_AUTH_BAD_B64 }, NULL, NULL, NULL },
	/* LOGIN: Username:, Password: */
	{ "LOGIN", { "YWxpY2U=", "c2VjcmV0", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_CHALLENGE, SMTP_AUTH_READY },
	  "UGFzc3dvcmQ6", "alice", "secret" },
	{ "LOGIN YWxpY2U=", { "c2VjcmV0", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_READY }, "UGFzc3dvcmQ6", "alice",
	  "secret" },
	{ "login", { "*", END }, { SMTP_AUTH_CHALLENGE, SMTP_AUTH_CANCEL },
	  "VXNlcm5hbWU6", NULL, NULL },
	{ "LOGIN", { "YWxpY2U=", "*", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_CHALLENGE, SMTP_AUTH_CANCEL },
	  NULL, NULL, NULL },
	{ "LOGIN", { "", END }, { SMTP_AUTH_CHALLENGE, SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	{ "LOGIN", { "YWxpY2U=", "", END },
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_CHALLENGE, SMTP_AUTH_MALFORMED },
	  NULL, NULL, NULL },
	{ "LOGIN", { "YQBi", END },		/* "a\0b" */
	  { SMTP_AUTH_CHALLENGE, SMTP_AUTH_MALFORMED }, NULL, NULL, NULL },
	/* mechanisms */
	{ "CRAM-MD5", { END }, { SMTP_AUTH_BAD_MECH }, NULL, NULL, NULL },
	{ "PLAINX AGFsaWNlAHNlY3JldA==", { END }, { SMTP_AUTH_BAD_MECH },
	  NULL, NULL, NULL },
	{ "XOAUTH2-WITH-A-VERY-LONG-NAME", { END }, { SMTP_AUTH_BAD_MECH },
	  NULL, NULL, NULL },
	{ " PLAIN", { END }, { SMTP_AUTH_SYNTAX }, NULL, NULL, NULL },
	{ "", { END }, { SMTP_AUTH_SYNTAX }, NULL, NULL, NULL },
};

static void
run_exchange(size_t i)
{
	struct smtp_auth	a;
	enum smtp_auth_rc	rc;
	size_t			k;
	const char		*arg = ex_cases[i].arg;

	smtp_auth_clear(&a);
	rc = smtp_auth_start(&a, (const uint8_t *)arg, strlen(arg));
	for (k = 0; ; k++) {
		if (rc != ex_cases[i].rc[k])
			fail_msg("case %zu (%s) step %zu: rc %d, want %d", i,
			    arg, k, rc, ex_cases[i].rc[k]);
		if (rc != SMTP_AUTH_CHALLENGE)
			break;
		if (ex_cases[i].lines[k] == NULL)
			fail_msg("case %zu: challenge without a line", i);
		if (ex_cases[i].challenge && ex_cases[i].lines[k + 1] == NULL)
			assert_string_equal(a.challenge,
			    ex_cases[i].challenge);
		rc = smtp_auth_step(&a, (const uint8_t *)ex_cases[i].lines[k],
		    strlen(ex_cases[i].lines[k]));
	}
	if (rc == SMTP_AUTH_READY) {
		assert_string_equal(a.user, ex_cases[i].user);
		assert_int_equal(a.ulen, strlen(ex_cases[i].user));
		assert_string_equal(a.pass, ex_cases[i].pass);
		assert_int_equal(a.plen, strlen(ex_cases[i].pass));
	}
	smtp_auth_clear(&a);
	assert_int_equal(a.plen, 0);
	assert_int_equal(a.pass[0], 0);
}

static void
test_exchange(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(ex_cases) / sizeof(ex_cases[0]); i++)
		run_exchange(i);
}

/* Response lines at and past SMTP_AUTH_LINE_MAX. */
static void
test_line_bound(void **state)
{
	struct smtp_auth	a;
	uint8_t			line[SMTP_AUTH_LINE_MAX + 4];

	(void)state;
	memset(line, 'A', sizeof(line));
	assert_int_equal(smtp_auth_start(&a, (const uint8_t *)"LOGIN", 5),
	    SMTP_AUTH_CHALLENGE);
	/* 1024 'A's decode to 768 NULs: fits, but a NUL is no user name */
	assert_int_equal(smtp_auth_step(&a, line, SMTP_AUTH_LINE_MAX),
	    SMTP_AUTH_MALFORMED);
	assert_int_equal(smtp_auth_start(&a, (const uint8_t *)"LOGIN", 5),
	    SMTP_AUTH_CHALLENGE);
	assert_int_equal(smtp_auth_step(&a, line, SMTP_AUTH_LINE_MAX + 4),
	    SMTP_AUTH_TOO_LONG);
	memset(line, 'Y', sizeof(line));	/* 'Y' x 344: 258 bytes */
	assert_int_equal(smtp_auth_start(&a, (const uint8_t *)"LOGIN", 5),
	    SMTP_AUTH_CHALLENGE);
	assert_int_equal(smtp_auth_step(&a, line, 344), SMTP_AUTH_MALFORMED);
	assert_int_equal(smtp_auth_start(&a, (const uint8_t *)"LOGIN", 5),
	    SMTP_AUTH_CHALLENGE);
	assert_int_equal(smtp_auth_step(&a, line, 340), SMTP_AUTH_CHALLENGE);
	assert_int_equal(a.ulen, 255);
	assert_string_equal(smtp_auth_mech_name(a.mech), "LOGIN");
}

/* ---- the password file ---- */

static const struct {
	const char	*line;
	enum parse_rc	 rc;
	const char	*user;		/* NULL: blank or comment */
	const char	*hash;
} line_cases[] = {
	{ "alice:$y$j9T$abc$def", PARSE_OK, "alice", "$y$j9T$abc$def" },
	{ "  bob@example.test:$6$salt$hash  \r", PARSE_OK,
	  "bob@example.test", "$6$salt$hash" },
	{ "", PARSE_OK, NULL, NULL },
	{ "   ", PARSE_OK, NULL, NULL },
	{ "# alice:$y$x", PARSE_OK, NULL, NULL },
	{ "alice", PARSE_BAD, NULL, NULL },
	{ ":$y$j9T$abc", PARSE_BAD, NULL, NULL },
	{ "al ice:$y$j9T$abc", PARSE_BAD, NULL, NULL },
	{ "alice:", PARSE_BAD, NULL, NULL },
	{ "alice:secret", PARSE_BAD, NULL, NULL },	/* plain text */
	{ "alice:$y$a b", PARSE_BAD, NULL, NULL },
	{ "alice:$y$a:b", PARSE_BAD, NULL, NULL },
	{ "al\"ice:$y$j9T$abc", PARSE_BAD, NULL, NULL },
};

static void
test_parse_line(void **state)
{
	struct passwd_line	pl;
	const char		*why;
	size_t			i;
	char			longline[PASSWD_LINE_MAX + 2];

	(void)state;
	for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const char	*l = line_cases[i].line;
		enum parse_rc	 rc = passwd_parse_line(l, strlen(l), &pl,
				    &why);

		if (rc != line_cases[i].rc)
			fail_msg("case %zu (%s): rc %d", i, l, rc);
		if (rc != PARSE_OK) {
			assert_non_null(why);
			continue;
		}
		if (line_cases[i].user == NULL) {
			assert_int_equal(pl.ulen, 0);
			continue;
		}
		assert_int_equal(pl.ulen, strlen(line_cases[i].user));
		assert_memory_equal(pl.user, line_cases[i].user, pl.ulen);
		assert_int_equal(pl.hlen, strlen(line_cases[i].hash));
		assert_memory_equal(pl.hash, line_cases[i].hash, pl.hlen);
	}
	memset(longline, 'a', sizeof(longline));
	assert_int_equal(passwd_parse_line(longline, sizeof(longline), &pl,
	    &why), PARSE_TOOLONG);
	assert_true(passwd_user_valid("a.b-c+d_e%f@g", 13));
	assert_false(passwd_user_valid("", 0));
	assert_false(passwd_user_valid("a\0b", 3));
}

struct errs {
	unsigned	n;
	unsigned	line[8];
};

static void
err_cb(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs	*e = arg;

	(void)file;
	(void)msg;
	if (e->n < 8)
		e->line[e->n] = line;
	e->n++;
}

static void
test_load_errors(void **state)
{
	static const struct {
		const char	*text;
		unsigned	 nerr;
		unsigned	 line0;		/* of the first error */
	} cases[] = {
		{ "# nobody yet\n\n", 0, 0 },
		{ "alice:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o7"
		  "Ccpz1wDdkWhSpbzFB9alDWtBu.rhGWD\n", 0, 0 },
		{ "\nalice\n", 1, 2 },
		{ "a:$1$salt$hash\n", 1, 1 },		/* MD5-crypt: weak */
		{ "a:$zz$what\n", 1, 1 },		/* unknown method */
		{ "a:$6$s$x\nb:$6$s$x\na:$6$s$y\n", 1, 0 },	/* twice */
		{ "a:$6$s$x\0\n", 1, 1 },
	};
	struct passwd_file	*pf;
	struct errs		 e;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t	len = strlen(cases[i].text);

		if (i == 6)
			len = 10;		/* with its NUL */
		memset(&e, 0, sizeof(e));
		pf = passwd_load_mem(cases[i].text, len, "t", err_cb, &e);
		if (e.n != cases[i].nerr)
			fail_msg("case %zu: %u errors, want %u", i, e.n,
			    cases[i].nerr);
		assert_true((pf != NULL) == (cases[i].nerr == 0));
		if (e.n > 0)
			assert_int_equal(e.line[0], cases[i].line0);
		passwd_unref(pf);
	}
	memset(&e, 0, sizeof(e));
	assert_null(passwd_load("/nonexistent/passwd", err_cb, &e));
	assert_int_equal(e.n, 1);
}

static void
test_verify(void **state)
{
	char			 h1[PASSWD_HASH_MAX + 1];
	char			 h2[PASSWD_HASH_MAX + 1];
	char			 text[1024];
	struct passwd_file	*pf;
	struct errs		 e = { 0, { 0 } };

	(void)state;
	assert_int_equal(passwd_hash("s3cret pass", h1, sizeof(h1)), 0);
	assert_int_equal(passwd_hash("other", h2, sizeof(h2)), 0);
	assert_true(strncmp(h1, "$y$", 3) == 0 || strncmp(h1, "$6$", 3) == 0);
	assert_int_equal(passwd_hash("x", h1, 8), -1);	/* does not fit */
	assert_int_equal(passwd_hash("s3cret pass", h1, sizeof(h1)), 0);
	snprintf(text, sizeof(text), "# users\nalice:%s\nbob@x.test:%s\n",
	    h1, h2);
	pf = passwd_load_mem(text, strlen(text), "t", err_cb, &e);
	assert_non_null(pf);
	assert_int_equal(passwd_count(pf), 2);
	assert_true(passwd_verify(pf, "alice", "s3cret pass"));
	assert_false(passwd_verify(pf, "alice", "s3cret pasS"));
	assert_false(passwd_verify(pf, "alice", "other"));
	assert_false(passwd_verify(pf, "Alice", "s3cret pass"));
	assert_true(passwd_verify(pf, "bob@x.test", "other"));
	assert_false(passwd_verify(pf, "carol", "other"));
	assert_false(passwd_verify(NULL, "alice", "s3cret pass"));
	assert_true(passwd_ref(pf) == pf);
	passwd_unref(pf);
	assert_true(passwd_verify(pf, "alice", "s3cret pass"));
	passwd_unref(pf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_exchange),
		cmocka_unit_test(test_line_bound),
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
