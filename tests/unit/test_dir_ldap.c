/*
 * test_dir_ldap.c - LDAP filter templates: the RFC 4515 escaper (every
 * special byte escaped, bounds), expansion of %s %u %d %%, the template
 * checks, the sync filter and its attributes; the snapshot header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dir/dir_ldap.h"
#include "dir/dir_ldap_filter.h"

static const char *
esc(const char *s, size_t n)
{
	static char	out[512];

	if (dir_ldap_escape((const uint8_t *)s, n, out, sizeof(out)) < 0)
		return "(overflow)";
	return out;
}

static void
test_escape(void **state)
{
	char	small[4];

	(void)state;
	assert_string_equal(esc("alice", 5), "alice");
	assert_string_equal(esc("*", 1), "\\2a");
	assert_string_equal(esc("a)(mail=*", 9), "a\\29\\28mail=\\2a");
	assert_string_equal(esc("\\2a", 3), "\\5c2a");
	assert_string_equal(esc("a\0b", 3), "a\\00b");
	assert_string_equal(esc("\xc3\xa9", 2), "\\c3\\a9");
	assert_string_equal(esc("\x7f\x1f", 2), "\\7f\\1f");
	assert_string_equal(esc("", 0), "");
	/* bounds: the NUL needs room, and an escape is all or nothing */
	assert_int_equal(dir_ldap_escape((const uint8_t *)"abc", 3, small, 4),
	    3);
	assert_int_equal(dir_ldap_escape((const uint8_t *)"abcd", 4, small,
	    4), -1);
	assert_string_equal(small, "");
	assert_int_equal(dir_ldap_escape((const uint8_t *)"a*", 2, small, 4),
	    -1);
	assert_int_equal(dir_ldap_escape((const uint8_t *)"*", 1, small, 4),
	    3);
	assert_int_equal(dir_ldap_escape((const uint8_t *)"a", 1, small, 0),
	    -1);
}

static void
test_expand(void **state)
{
	static const char	dflt[] = "(|(mail=%s)(mailAlternateAddress=%s))";
	char			out[DIR_LDAP_FILTER_MAX];

	(void)state;
	assert_int_equal(dir_ldap_filter_expand(dflt, (const uint8_t *)"al",
	    2, (const uint8_t *)"example.test", 12, out, sizeof(out)),
	    (long)strlen("(|(mail=al@example.test)(mailAlternateAddress="
	    "al@example.test))"));
	assert_string_equal(out, "(|(mail=al@example.test)"
	    "(mailAlternateAddress=al@example.test))");
	assert_true(dir_ldap_filter_expand("(&(uid=%u)(dc=%d)(x=100%%))",
	    (const uint8_t *)"a*", 2, (const uint8_t *)"b)", 2, out,
	    sizeof(out)) > 0);
	assert_string_equal(out, "(&(uid=a\\2a)(dc=b\\29)(x=100%))");
	/* the injection attempts from the issue: never an unescaped * ( ) */
	assert_true(dir_ldap_filter_expand("(mail=%s)", (const uint8_t *)
	    "a)(mail=*", 9, (const uint8_t *)"example.test", 12, out,
	    sizeof(out)) > 0);
	assert_string_equal(out, "(mail=a\\29\\28mail=\\2a@example.test)");
	assert_true(dir_ldap_filter_expand("(mail=%s)", (const uint8_t *)"*",
	    1, (const uint8_t *)"example.test", 12, out, sizeof(out)) > 0);
	assert_string_equal(out, "(mail=\\2a@example.test)");
	/* too small an output */
	assert_int_equal(dir_ldap_filter_expand(dflt, (const uint8_t *)"al",
	    2, (const uint8_t *)"example.test", 12, out, 20), -1);
	assert_string_equal(out, "");
}

static void
test_check(void **state)
{
	static const char *const good[] = {
		"(mail=%s)", "(|(mail=%s)(uid=%u))", "(x=%%)", "(a=b)",
		"(&(|(mail=%s)(proxyAddresses=smtp:%s))(!(userAccountControl:"
		"1.2.840.113556.1.4.803:=2)))",
	};
	static const char *const bad[] = {
		"", "mail=%s", "(mail=%s", "(mail=%s))", "(mail=%x)", "(a=%)",
		"(a=b)(c=d)", "(a=b) ", ")(",
	};
	const char	*why;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(dir_ldap_filter_check(good[i], &why), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(dir_ldap_filter_check(bad[i], &why), -1);
		assert_non_null(why);
	}
}

static void
test_sync_filter(void **state)
{
	struct dir_ldap_attr	v[DIR_LDAP_ATTRS_MAX];
	char			f[DIR_LDAP_FILTER_MAX];
	const char		*why;
	size_t			n;

	(void)state;
	assert_int_equal(dir_ldap_filter_sync(
	    "(|(mail=%s)(mailAlternateAddress=%s)(Mail=%s))", v, &n, f,
	    sizeof(f), &why), 0);
	assert_string_equal(f, "(|(mail=*)(mailAlternateAddress=*)(Mail=*))");
	assert_int_equal(n, 2);		/* mail twice, once kept */
	assert_string_equal(v[0].name, "mail");
	assert_string_equal(v[0].prefix, "");
	assert_string_equal(v[1].name, "mailAlternateAddress");
	assert_int_equal(dir_ldap_filter_sync("(&(|(mail=%s)(proxyAddresses="
	    "smtp:%s))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", v,
	    &n, f, sizeof(f), &why), 0);
	assert_string_equal(f, "(&(|(mail=*)(proxyAddresses=smtp:*))(!("
	    "userAccountControl:1.2.840.113556.1.4.803:=2)))");
	assert_int_equal(n, 2);
	assert_string_equal(v[1].name, "proxyAddresses");
	assert_string_equal(v[1].prefix, "smtp:");
	/* shapes sync mode cannot materialise */
	assert_int_equal(dir_ldap_filter_sync("(uid=%u)", v, &n, f, sizeof(f),
	    &why), -1);
	assert_int_equal(dir_ldap_filter_sync("(mail=%s*)", v, &n, f,
	    sizeof(f), &why), -1);
	assert_int_equal(dir_ldap_filter_sync("(mail=a*%s)", v, &n, f,
	    sizeof(f), &why), -1);
	assert_int_equal(dir_ldap_filter_sync("(mail:dn:=%s)", v, &n, f,
	    sizeof(f), &why), -1);
	assert_int_equal(dir_ldap_filter_sync("(objectClass=person)", v, &n,
	    f, sizeof(f), &why), -1);
	assert_int_equal(dir_ldap_filter_sync("(mail=%s)", v, &n, f, 5,
	    &why), -1);
}

static void
test_snap_header(void **state)
{
	static const char	hex[] = "00112233445566778899aabbccddeeff"
	    "00112233445566778899aabbccddeeff";
	char			line[300];
	uint8_t			chk[32];
	uint64_t		t;

	(void)state;
	snprintf(line, sizeof(line), "# mxgate ldap snapshot v1 "
	    "time=1700000000 check=%s", hex);
	assert_int_equal(dir_ldap_snap_header((const uint8_t *)line,
	    strlen(line), &t, chk), 0);
	assert_int_equal(t, 1700000000ull);
	assert_int_equal(chk[1], 0x11);
	assert_int_equal(dir_ldap_snap_header((const uint8_t *)line,
	    strlen(line) - 1, &t, chk), -1);
	snprintf(line, sizeof(line), "# mxgate ldap snapshot v1 time= "
	    "check=%s", hex);
	assert_int_equal(dir_ldap_snap_header((const uint8_t *)line,
	    strlen(line), &t, chk), -1);
	snprintf(line, sizeof(line), "# mxgate ldap snapshot v2 time=1 "
	    "check=%s", hex);
	assert_int_equal(dir_ldap_snap_header((const uint8_t *)line,
	    strlen(line), &t, chk), -1);
}

int
main(void)
{
	const struct CMUnitTest	tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_sync_filter),
		cmocka_unit_test(test_snap_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
