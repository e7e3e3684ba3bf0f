/*
 * test_rate.c - src/lib/rate.c by script: each case is a table size and
 * a list of hits and peeks at given times with the estimate expected,
 * covering the sliding window over a fake clock, window boundaries,
 * distinct keys, LRU eviction at max_keys, long (hashed) keys.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/rate.h"

enum step_op { HIT, PEEK, COUNT, END };

struct step {
	enum step_op	 op;
	const char	*key;
	uint64_t	 now;
	unsigned	 n;		/* HIT: events added */
	unsigned	 want;		/* estimate; COUNT: keys */
};

struct script {
	const char	*name;
	unsigned	 window;
	size_t		 max_keys;
	struct step	 steps[16];
};

static const struct script scripts[] = {
	{ "same window adds up", 1000, 8, {
		{ HIT, "a", 0, 1, 1 }, { HIT, "a", 500, 1, 2 },
		{ HIT, "a", 999, 3, 5 }, { PEEK, "a", 999, 0, 5 },
		{ COUNT, NULL, 0, 0, 1 }, { END, NULL, 0, 0, 0 } } },
	{ "previous window fades linearly", 1000, 8, {
		{ HIT, "a", 0, 10, 10 }, { PEEK, "a", 1000, 0, 10 },
		{ PEEK, "a", 1250, 0, 7 }, { PEEK, "a", 1500, 0, 5 },
		{ PEEK, "a", 1999, 0, 0 }, { PEEK, "a", 2000, 0, 0 },
		{ END, NULL, 0, 0, 0 } } },
	{ "hit across the boundary", 1000, 8, {
		{ HIT, "a", 100, 10, 10 }, { HIT, "a", 1500, 1, 6 },
		{ HIT, "a", 1900, 2, 4 }, { HIT, "a", 2000, 0, 3 },
		{ PEEK, "a", 2500, 0, 1 }, { END, NULL, 0, 0, 0 } } },
	{ "a skipped window forgets all", 1000, 8, {
		{ HIT, "a", 0, 5, 5 }, { HIT, "a", 2500, 1, 1 },
		{ HIT, "a", 9000, 1, 1 }, { END, NULL, 0, 0, 0 } } },
	{ "distinct keys, case and empty", 1000, 8, {
		{ HIT, "a", 0, 1, 1 }, { HIT, "A", 0, 2, 2 },
		{ HIT, "", 0, 3, 3 }, { HIT, "ab", 0, 4, 4 },
		{ PEEK, "a", 10, 0, 1 }, { PEEK, "", 10, 0, 3 },
		{ PEEK, "b", 10, 0, 0 }, { COUNT, NULL, 0, 0, 4 },
		{ END, NULL, 0, 0, 0 } } },
	{ "eviction of the least recently hit", 1000, 2, {
		{ HIT, "a", 0, 1, 1 }, { HIT, "b", 0, 1, 1 },
		{ HIT, "a", 1, 1, 2 }, { HIT, "c", 2, 1, 1 },
		{ COUNT, NULL, 0, 0, 2 }, { PEEK, "b", 3, 0, 0 },
		{ PEEK, "a", 3, 0, 2 }, { PEEK, "c", 3, 0, 1 },
		{ HIT, "b", 4, 1, 1 }, { PEEK, "a", 5, 0, 0 },
		{ END, NULL, 0, 0, 0 } } },
	{ "peek neither creates nor refreshes", 1000, 2, {
		{ PEEK, "x", 0, 0, 0 }, { COUNT, NULL, 0, 0, 0 },
		{ HIT, "a", 0, 1, 1 }, { HIT, "b", 0, 1, 1 },
		{ PEEK, "a", 1, 0, 1 }, { HIT, "c", 2, 1, 1 },
		{ PEEK, "a", 3, 0, 0 }, { PEEK, "b", 3, 0, 1 },
		{ END, NULL, 0, 0, 0 } } },
	{ "clock going back counts it all", 1000, 8, {
		{ HIT, "a", 1000, 4, 4 }, { HIT, "a", 2500, 2, 4 },
		{ HIT, "a", 500, 1, 7 }, { PEEK, "a", 2999, 0, 3 },
		{ END, NULL, 0, 0, 0 } } },
	{ "saturation", 1000, 8, {
		{ HIT, "a", 0, UINT_MAX - 1, UINT_MAX - 1 },
		{ HIT, "a", 0, 5, UINT_MAX }, { HIT, "a", 1000, 7, UINT_MAX },
		{ END, NULL, 0, 0, 0 } } },
	{ "one-hour window", 3600000, 8, {
		{ HIT, "s", 0, 3, 3 }, { PEEK, "s", 3599999, 0, 3 },
		{ PEEK, "s", 5400000, 0, 1 }, { PEEK, "s", 7200000, 0, 0 },
		{ END, NULL, 0, 0, 0 } } },
};

static void
test_scripts(void **state)
{
	const struct script	*sc;
	const struct step	*st;
	struct rate_table	*t;
	size_t			 i, j;
	unsigned		 got;

	(void)state;
	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++) {
		sc = &scripts[i];
		assert_non_null(t = rate_table_new(sc->window, sc->max_keys));
		for (j = 0; sc->steps[j].op != END; j++) {
			st = &sc->steps[j];
			if (st->op == HIT)
				got = rate_hit(t, st->key, strlen(st->key),
				    st->now, st->n);
			else if (st->op == PEEK)
				got = rate_peek(t, st->key, strlen(st->key),
				    st->now);
			else
				got = (unsigned)rate_table_count(t);
			if (got != st->want)
				fail_msg("%s: step %zu: got %u, want %u",
				    sc->name, j, got, st->want);
		}
		rate_table_free(t);
	}
}

static void
test_bad_params(void **state)
{
	(void)state;
	assert_null(rate_table_new(0, 10));
	assert_null(rate_table_new(1000, 0));
	assert_null(rate_table_new(1000, (size_t)RATE_KEYS_MAX + 1));
	rate_table_free(NULL);
}

/* Keys past RATE_KEY_MAX differ by their hash and length, never merge. */
static void
test_long_keys(void **state)
{
	struct rate_table	*t;
	char			 a[RATE_KEY_MAX + 80], b[sizeof(a)];
	unsigned		 i;

	(void)state;
	memset(a, 'k', sizeof(a));
	memcpy(b, a, sizeof(b));
	b[RATE_KEY_MAX + 40] = 'x';	/* differs past the stored prefix */
	assert_non_null(t = rate_table_new(1000, 16));
	assert_int_equal(rate_hit(t, a, sizeof(a), 0, 1), 1);
	assert_int_equal(rate_hit(t, b, sizeof(b), 0, 5), 5);
	assert_int_equal(rate_hit(t, a, sizeof(a) - 1, 0, 7), 7);
	assert_int_equal(rate_hit(t, a, RATE_KEY_MAX, 0, 9), 9);
	assert_int_equal(rate_hit(t, a, sizeof(a), 0, 1), 2);
	assert_int_equal(rate_peek(t, b, sizeof(b), 0), 5);
	assert_int_equal(rate_table_count(t), 4);
	rate_table_free(t);
	/* 16 keys, 16 buckets: some share a chain, only the hash tells. */
	assert_non_null(t = rate_table_new(1000, 16));
	for (i = 0; i < 16; i++) {
		a[RATE_KEY_MAX + 40] = (char)('a' + i);
		assert_int_equal(rate_hit(t, a, sizeof(a), 0, i + 1), i + 1);
	}
	for (i = 0; i < 16; i++) {
		a[RATE_KEY_MAX + 40] = (char)('a' + i);
		assert_int_equal(rate_peek(t, a, sizeof(a), 1), i + 1);
	}
	rate_table_free(t);
}

/* A flood of fresh keys: memory stays at max_keys, the newest survive. */
static void
test_flood(void **state)
{
	struct rate_table	*t;
	char			 key[32];
	int			 i, n;

	(void)state;
	assert_non_null(t = rate_table_new(60000, 100));
	for (i = 0; i < 5000; i++) {
		n = snprintf(key, sizeof(key), "client-%d", i);
		assert_int_equal(rate_hit(t, key, (size_t)n, (uint64_t)i, 1),
		    1);
		assert_true(rate_table_count(t) <= 100);
	}
	assert_int_equal(rate_table_count(t), 100);
	for (i = 0; i < 5000; i++) {
		n = snprintf(key, sizeof(key), "client-%d", i);
		assert_int_equal(rate_peek(t, key, (size_t)n, 5000),
		    i >= 4900 ? 1 : 0);
	}
	rate_table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scripts),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_long_keys),
		cmocka_unit_test(test_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
