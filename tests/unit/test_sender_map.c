/*
 * test_sender_map.c - the sender login map (auth/sender_map.c): the line
 * parser, loading with line-numbered errors, and the ownership rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/sender_map.h"

static const struct {
	const char	*line;
	enum parse_rc	 rc;
	const char	*addr;		/* PARSE_OK: NULL for nothing */
	const char	*users;
} line_cases[] = {
	{ "", PARSE_OK, NULL, NULL },
	{ "   \t", PARSE_OK, NULL, NULL },
	{ "# comment", PARSE_OK, NULL, NULL },
	{ "  # indented comment", PARSE_OK, NULL, NULL },
	{ "ceo@example.test anna", PARSE_OK, "ceo@example.test", "anna" },
	{ "ceo@example.test\tanna,bob@x.test \r", PARSE_OK,
	  "ceo@example.test", "anna,bob@x.test" },
	{ " a@b.c  u ", PARSE_OK, "a@b.c", "u" },
	{ "ceo@example.test", PARSE_BAD, NULL, NULL },
	{ "ceo@example.test   ", PARSE_BAD, NULL, NULL },
	{ "noat anna", PARSE_BAD, NULL, NULL },
	{ "a@@b anna", PARSE_BAD, NULL, NULL },
	{ "a@b@c anna", PARSE_BAD, NULL, NULL },
	{ "@b.c anna", PARSE_BAD, NULL, NULL },
	{ "a@ anna", PARSE_BAD, NULL, NULL },
	{ "a@b..c anna", PARSE_BAD, NULL, NULL },
	{ "a@b. anna", PARSE_BAD, NULL, NULL },
	{ "a@b_c anna", PARSE_BAD, NULL, NULL },
	{ "a@b.c anna,", PARSE_BAD, NULL, NULL },
	{ "a@b.c ,anna", PARSE_BAD, NULL, NULL },
	{ "a@b.c anna,,bob", PARSE_BAD, NULL, NULL },
	{ "a@b.c an na", PARSE_BAD, NULL, NULL },
	{ "a@b.c an!na", PARSE_BAD, NULL, NULL },
	{ "a,b@c.d anna", PARSE_BAD, NULL, NULL },
};

static void
test_parse_line(void **state)
{
	struct sender_map_line	 l;
	const char		*why;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const char	*s = line_cases[i].line;
		enum parse_rc	 rc = sender_map_parse_line(s, strlen(s), &l,
				    &why);

		if (rc != line_cases[i].rc)
			fail_msg("line %zu %s: rc %d", i, s, rc);
		if (rc != PARSE_OK) {
			assert_non_null(why);
			continue;
		}
		if (line_cases[i].addr == NULL) {
			assert_int_equal(l.alen, 0);
			continue;
		}
		assert_int_equal(l.alen, strlen(line_cases[i].addr));
		assert_memory_equal(s + l.aoff, line_cases[i].addr, l.alen);
		assert_int_equal(l.ulen, strlen(line_cases[i].users));
		assert_memory_equal(s + l.uoff, line_cases[i].users, l.ulen);
	}
}

static void
test_line_bound(void **state)
{
	char			 buf[SENDER_MAP_LINE_MAX + 2];
	struct sender_map_line	 l;
	const char		*why;

	(void)state;
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "x@y.z u", 7);
	assert_int_equal(sender_map_parse_line(buf, SENDER_MAP_LINE_MAX + 1,
	    &l, &why), PARSE_TOOLONG);
	assert_non_null(why);
	/* a 65-byte local part */
	memset(buf, 'a', 65);
	memcpy(buf + 65, "@b.c u", 6);
	assert_int_equal(sender_map_parse_line(buf, 71, &l, &why), PARSE_BAD);
}

struct errs {
	unsigned	n;
	unsigned	line[32];
	char		first[256];
};

static void
collect(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs	*e = arg;

	if (e->n == 0)
		snprintf(e->first, sizeof(e->first), "%s:%u: %s", file, line,
		    msg);
	if (e->n < 32)
		e->line[e->n] = line;
	e->n++;
}

static void
test_load_errors(void **state)
{
	static const char	text[] = "# map\nok@a.test anna\nbad\n\n"
				    "x@a.test\nfine@a.test bob\n";
	struct errs		 e = { 0 };
	char			 many[64 * 30];
	size_t			 i, n = 0;

	(void)state;
	assert_null(sender_map_load_mem(text, sizeof(text) - 1, "m", false,
	    collect, &e));
	assert_int_equal(e.n, 2);
	assert_int_equal(e.line[0], 3);
	assert_int_equal(e.line[1], 5);
	assert_string_equal(e.first, "m:3: the address has no '@'");
	/* a NUL inside a line */
	memset(&e, 0, sizeof(e));
	assert_null(sender_map_load_mem("a@b.c x\0y\n", 10, "m", false,
	    collect, &e));
	assert_int_equal(e.line[0], 1);
	/* past SENDER_MAP_ERRORS_MAX: the first ones, then a total */
	for (i = 0; i < 30; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "bad\n");
	memset(&e, 0, sizeof(e));
	assert_null(sender_map_load_mem(many, n, "m", false, collect, &e));
	assert_int_equal(e.n, SENDER_MAP_ERRORS_MAX + 1);
	assert_int_equal(e.line[SENDER_MAP_ERRORS_MAX], 0);
	/* a missing file */
	memset(&e, 0, sizeof(e));
	assert_null(sender_map_load("/nonexistent/senders", false, collect,
	    &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 0);
}

static bool
owns(const struct sender_map *m, const char *user, const char *addr,
    bool local_case, const char *delim)
{
	const char	*at = strchr(addr, '@');
	const char	*dom = at + 1;
	bool		 ours = strcasecmp(dom, "example.test") == 0;

	return sender_owns(m, user, addr, (size_t)(at - addr), dom,
	    strlen(dom), ours, local_case, delim);
}

static void
test_owns(void **state)
{
	static const char	 text[] = "CEO@Example.Test anna\n"
				    "team@example.test anna,bob@example.test\n"
				    "Case@example.test Carl\n"
				    "lists+news@example.test Dora\n";
	struct errs		 e = { 0 };
	struct sender_map	*m, *mc;

	(void)state;
	m = sender_map_load_mem(text, sizeof(text) - 1, "m", false, collect,
	    &e);
	assert_non_null(m);
	assert_int_equal(sender_map_count(m), 4);
	/* default: user@ours */
	assert_true(owns(NULL, "anna", "anna@example.test", false, "+"));
	assert_true(owns(NULL, "anna", "ANNA@EXAMPLE.TEST", false, "+"));
	assert_true(owns(NULL, "anna", "anna+tag@example.test", false, "+"));
	assert_true(owns(NULL, "anna", "anna-tag@example.test", false, "+-"));
	assert_false(owns(NULL, "anna", "anna+tag@example.test", false, ""));
	assert_false(owns(NULL, "anna", "anna@bank.test", false, "+"));
	assert_false(owns(NULL, "anna", "annab@example.test", false, "+"));
	assert_false(owns(NULL, "anna", "ann@example.test", false, "+"));
	assert_false(owns(NULL, "anna", "+anna@example.test", false, "+"));
	assert_false(owns(NULL, "anna", "ANNA@example.test", true, "+"));
	assert_true(owns(NULL, "anna", "anna@EXAMPLE.test", true, "+"));
	/* an AUTH name that is an address owns only that address */
	assert_true(owns(NULL, "bob@example.test", "bob@example.test", false,
	    "+"));
	assert_true(owns(NULL, "bob@bank.test", "Bob+x@Bank.Test", false,
	    "+"));
	assert_false(owns(NULL, "bob@example.test", "bob@other.test", false,
	    "+"));
	assert_false(owns(NULL, "bob@bank.test", "bob@example.test", false,
	    "+"));
	/* a name holding the delimiter owns itself, and its extensions */
	assert_true(owns(NULL, "a+b@bank.test", "a+b@bank.test", false, "+"));
	assert_true(owns(NULL, "a+b", "a+b@example.test", false, "+"));
	assert_false(owns(NULL, "a+b@bank.test", "a+x@bank.test", false,
	    "+"));
	assert_true(owns(NULL, "a", "a+b@example.test", false, "+"));
	assert_false(owns(NULL, "a+b", "a@example.test", false, "+"));
	assert_false(owns(NULL, "a+b", "a+c@example.test", false, "+"));
	/* the map widens */
	assert_false(owns(NULL, "anna", "ceo@example.test", false, "+"));
	assert_true(owns(m, "anna", "ceo@example.test", false, "+"));
	assert_true(owns(m, "anna", "ceo+x@EXAMPLE.TEST", false, "+"));
	assert_true(owns(m, "anna", "team@example.test", false, "+"));
	assert_true(owns(m, "bob@example.test", "team@example.test", false,
	    "+"));
	assert_false(owns(m, "bob@example.test", "ceo@example.test", false,
	    "+"));
	assert_false(owns(m, "ann", "ceo@example.test", false, "+"));
	assert_false(owns(m, "Anna", "ceo@example.test", false, "+"));
	assert_false(owns(m, "anna", "spoof@bank.test", false, "+"));
	assert_true(owns(m, "Carl", "CASE@example.test", false, "+"));
	assert_true(owns(m, "Dora", "lists+news@example.test", false, "+"));
	assert_false(owns(m, "Dora", "lists@example.test", false, "+"));
	/* localpart_case_sensitive: the map keeps the local part's case */
	mc = sender_map_load_mem(text, sizeof(text) - 1, "m", true, collect,
	    &e);
	assert_non_null(mc);
	assert_true(owns(mc, "anna", "CEO@example.test", true, "+"));
	assert_false(owns(mc, "anna", "ceo@example.test", true, "+"));
	assert_true(owns(mc, "Carl", "Case@EXAMPLE.test", true, "+"));
	assert_false(owns(mc, "Carl", "case@example.test", true, "+"));
	assert_int_equal(e.n, 0);
	sender_map_free(mc);
	sender_map_free(m);
	sender_map_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_line_bound),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_owns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
