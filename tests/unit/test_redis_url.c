/*
 * test_redis_url.c - redis_url_parse by table: redis:// with and without
 * port and database, [IPv6], redis-sentinel:// lists, and the refusals
 * (bad port, database, junk, TLS, too many sentinels, overlong names).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/redis_url.h"

struct url_case {
	const char	*text;
	int		 rc;
	int		 kind;
	size_t		 nhosts;
	const char	*host0;
	unsigned	 port0;
	unsigned	 db;
	const char	*master;
};

static const struct url_case url_cases[] = {
	{ "redis://127.0.0.1:6380", 0, REDIS_URL_DIRECT, 1, "127.0.0.1",
	  6380, 0, "" },
	{ "redis://127.0.0.1", 0, REDIS_URL_DIRECT, 1, "127.0.0.1", 6379, 0,
	  "" },
	{ "redis://redis.example.org:6379/3", 0, REDIS_URL_DIRECT, 1,
	  "redis.example.org", 6379, 3, "" },
	{ "redis://[::1]:7000/15", 0, REDIS_URL_DIRECT, 1, "::1", 7000, 15,
	  "" },
	{ "redis://10.0.0.1:6379/", 0, REDIS_URL_DIRECT, 1, "10.0.0.1", 6379,
	  0, "" },
	{ "redis-sentinel://10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster",
	  0, REDIS_URL_SENTINEL, 3, "10.0.0.1", 26379, 0, "mymaster" },
	{ "redis-sentinel://s1/m", 0, REDIS_URL_SENTINEL, 1, "s1", 26379, 0,
	  "m" },
	{ "redis://127.0.0.1:0", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://127.0.0.1:65536", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://127.0.0.1:99999", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://127.0.0.1:6379/10000", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://127.0.0.1:6379/x", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://:6379", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://a b:1", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://[::1:6379", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://[zz]:6379", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis://[::1]x", -1, 0, 0, NULL, 0, 0, NULL },
	{ "rediss://127.0.0.1:6379", -1, 0, 0, NULL, 0, 0, NULL },
	{ "http://127.0.0.1", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis-sentinel://10.0.0.1:26379", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis-sentinel://10.0.0.1/", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis-sentinel://,/m", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis-sentinel://a/m!", -1, 0, 0, NULL, 0, 0, NULL },
	{ "redis-sentinel://a,b,c,d,e,f,g,h,i/m", -1, 0, 0, NULL, 0, 0,
	  NULL },
	{ "redis-sentinel://a,b,c,d,e,f,g,h/m", 0, REDIS_URL_SENTINEL, 8, "a",
	  26379, 0, "m" },
};

static void
test_url_table(void **state)
{
	struct redis_url	 u;
	const char		*why;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(url_cases) / sizeof(url_cases[0]); i++) {
		const struct url_case *c = &url_cases[i];

		rc = redis_url_parse(c->text, strlen(c->text), &u, &why);
		if (rc != c->rc)
			fail_msg("%s: rc %d, want %d (%s)", c->text, rc, c->rc,
			    why);
		if (rc == -1) {
			assert_true(why[0] != '\0');
			continue;
		}
		assert_int_equal(u.kind, c->kind);
		assert_int_equal(u.nhosts, c->nhosts);
		assert_string_equal(u.hosts[0].host, c->host0);
		assert_int_equal(u.hosts[0].port, c->port0);
		assert_int_equal(u.db, c->db);
		assert_string_equal(u.master, c->master);
	}
}

static void
test_url_bounds(void **state)
{
	char			 big[REDIS_URL_MAX + 64];
	struct redis_url	 u;
	const char		*why;

	(void)state;
	memset(big, 'a', sizeof(big));
	memcpy(big, "redis://", 8);
	assert_int_equal(redis_url_parse(big, sizeof(big), &u, &why), -1);
	/* a host of 256 characters */
	assert_int_equal(redis_url_parse(big, 8 + 256, &u, &why), -1);
	assert_int_equal(redis_url_parse(big, 8 + 255, &u, &why), 0);
	/* not NUL-terminated: only len bytes are read */
	assert_int_equal(redis_url_parse("redis://h:1xyz", 11, &u, &why), 0);
	assert_int_equal(u.hosts[0].port, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_table),
		cmocka_unit_test(test_url_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
