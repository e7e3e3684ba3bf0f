/*
 * test_smtp_hold.c - smtp_floor_at() (src/smtp/smtp_hold.c), the RCPT
 * reply floor's release time, by table: within the floor, exactly on a
 * multiple, just past one, far past, a clock that seems to go back (now
 * before arrival), the floor off, and large times (no overflow).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "smtp/smtp_hold.h"

struct floor_case {
	const char	*name;
	uint64_t	 arrive, now, floor, want;
};

static const struct floor_case cases[] = {
	{ "decided at once", 1000, 1000, 5000, 6000 },
	{ "decided within the floor", 1000, 3500, 5000, 6000 },
	{ "decided one us before the floor", 1000, 5999, 5000, 6000 },
	{ "decided on the floor", 1000, 6000, 5000, 6000 },
	{ "one us past the floor: the next multiple", 1000, 6001, 5000,
	    11000 },
	{ "far past: the multiple not before now", 0, 23001, 5000, 25000 },
	{ "exactly on the fourth multiple", 0, 20000, 5000, 20000 },
	{ "now before arrival: one floor", 5000, 4000, 5000, 10000 },
	{ "floor off", 1000, 2000, 0, 0 },
	{ "floor of 1 us", 10, 15, 1, 15 },
	{ "one second floor", 7, 999999, 1000000, 1000007 },
	{ "large clock", UINT64_C(1) << 50, (UINT64_C(1) << 50) + 12345,
	    1000000, (UINT64_C(1) << 50) + 1000000 },
};

static void
test_floor_table(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct floor_case *c = &cases[i];
		uint64_t got = smtp_floor_at(c->arrive, c->now, c->floor);

		if (got != c->want)
			fail_msg("%s: smtp_floor_at(%llu, %llu, %llu) = %llu, "
			    "want %llu", c->name, (unsigned long long)c->arrive,
			    (unsigned long long)c->now,
			    (unsigned long long)c->floor,
			    (unsigned long long)got,
			    (unsigned long long)c->want);
	}
}

/* Whatever the decision time, the release is a whole number of floors
 * after arrival, never before now, and less than a floor after it. */
static void
test_floor_properties(void **state)
{
	uint64_t	arrive = 123456, f = 5000, d, at;

	(void)state;
	for (d = 0; d < 40000; d += 7) {
		at = smtp_floor_at(arrive, arrive + d, f);
		assert_true(at >= arrive + f);
		assert_true(at >= arrive + d);
		assert_int_equal((at - arrive) % f, 0);
		assert_true(at - (arrive + d) <= f);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_floor_table),
		cmocka_unit_test(test_floor_properties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
