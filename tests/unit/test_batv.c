/*
 * test_batv.c - BATV (sender/batv.c) and its key file (lib/keyring.c):
 * sign/verify round trip, expiry, wrong key, rotation, malformed tags,
 * the prvs prefix in any case, the key file's lines and mode check, the
 * switch-on time in the spool.
 */
#include <sys/stat.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/keyring.h"
#include "sender/batv.h"
#include "sender/batv_since.h"

#define DAY	86400
#define T0	((time_t)1765000000)	/* a fixed "now" */

struct errs {
	unsigned	n;
	unsigned	line;		/* of the last one */
	char		msg[300];
};

static void
collect(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs	*e = arg;

	(void)file;
	e->n++;
	e->line = line;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
}

static struct keyring *
ring(const char *text)
{
	struct errs	 e = { 0 };
	struct keyring	*k = keyring_load_mem(text, strlen(text), "keys",
			    collect, &e);

	assert_non_null(k);
	assert_int_equal(e.n, 0);
	return k;
}

/* local@domain of a tagged address, verified at now */
static enum batv_result
verify(const struct keyring *k, const char *addr, time_t now,
    struct batv_tag *t)
{
	const char	*at = strrchr(addr, '@');

	return batv_verify(k, addr, (size_t)(at - addr), at + 1,
	    strlen(at + 1), now, t);
}

static void
test_round_trip(void **state)
{
	struct keyring	*k = ring("3 first-secret-0123456789\n");
	struct batv_tag	 t;
	char		 out[BATV_ADDR_MAX + 1];

	(void)state;
	assert_int_equal(batv_sign(k, "joe@example.test", T0, out,
	    sizeof(out)), 0);
	/* prvs=K DDD SSSSSS =local@domain; DDD the expiry day mod 1000 */
	assert_int_equal(strlen(out), strlen("prvs=3000aabbcc=joe@example.test"));
	assert_memory_equal(out, "prvs=3", 6);
	assert_int_equal((out[6] - '0') * 100 + (out[7] - '0') * 10 +
	    (out[8] - '0'), (int)((T0 / DAY + 7) % 1000));
	assert_string_equal(out + 15, "=joe@example.test");
	assert_int_equal(verify(k, out, T0, &t), BATV_PASS);
	assert_int_equal(t.key, 3);
	assert_int_equal(t.llen, 3);
	assert_memory_equal(t.local, "joe", 3);
	/* case does not matter: not in the prefix, the hex or the address */
	{
		char	up[sizeof(out)];
		size_t	i;

		for (i = 0; out[i] != '\0'; i++)
			up[i] = out[i] >= 'a' && out[i] <= 'z' ?
			    (char)(out[i] - 32) : out[i];
		up[i] = '\0';
		assert_int_equal(verify(k, up, T0, &t), BATV_PASS);
		memcpy(up, "PrVs=", 5);
		assert_int_equal(verify(k, up, T0, &t), BATV_PASS);
		assert_true(batv_tagged("PRVS=x", 6));
	}
	/* an address already tagged, no '@', an over-long local part */
	assert_int_equal(batv_sign(k, out, T0, out, sizeof(out)), -1);
	assert_int_equal(batv_sign(k, "joe", T0, out, sizeof(out)), -1);
	assert_int_equal(batv_sign(k, "@example.test", T0, out, sizeof(out)),
	    -1);
	assert_int_equal(batv_sign(k,
	    "a123456789b123456789c123456789d123456789e12345678@x.test", T0,
	    out, sizeof(out)), -1);			/* 49 octets */
	assert_int_equal(batv_sign(k,
	    "a123456789b123456789c123456789d123456789e1234567@x.test", T0,
	    out, sizeof(out)), 0);			/* 48 fit */
	assert_int_equal(strchr(out, '@') - out, 64);
	assert_int_equal(batv_sign(k, "joe@example.test", T0, out, 20), -1);
	assert_int_equal(batv_sign(NULL, "joe@example.test", T0, out,
	    sizeof(out)), -1);
	keyring_free(k);
}

static void
test_expiry(void **state)
{
	struct keyring	*k = ring("0 the-only-secret-here\n");
	struct batv_tag	 t;
	char		 out[BATV_ADDR_MAX + 1];
	time_t		 start = T0 - T0 % DAY;	/* midnight */
	int		 d;

	(void)state;
	assert_int_equal(batv_sign(k, "joe@example.test", start, out,
	    sizeof(out)), 0);
	for (d = 0; d <= 7; d++) {
		assert_int_equal(verify(k, out, start + d * DAY, &t),
		    BATV_PASS);
		assert_int_equal(verify(k, out, start + d * DAY + DAY - 1, &t),
		    BATV_PASS);
	}
	/* DDD is mod 1000: after 999 days (one of skew) the form repeats */
	for (d = 8; d < 999; d += 37)
		assert_int_equal(verify(k, out, start + d * DAY, &t),
		    BATV_EXPIRED);
	/* a tag from "the future" (more than 8 days ahead) is not ours;
	 * one day of clock skew is */
	assert_int_equal(verify(k, out, start - 2 * DAY, &t), BATV_EXPIRED);
	assert_int_equal(verify(k, out, start - DAY, &t), BATV_PASS);
	keyring_free(k);
}

static void
test_wrong_key(void **state)
{
	struct keyring	*a = ring("1 secret-of-gateway-a-xx\n");
	struct keyring	*b = ring("1 secret-of-gateway-b-yy\n");
	struct keyring	*c = ring("2 secret-of-gateway-a-xx\n");
	struct batv_tag	 t;
	char		 out[BATV_ADDR_MAX + 1], bad[BATV_ADDR_MAX + 1];

	(void)state;
	assert_int_equal(batv_sign(a, "joe@example.test", T0, out,
	    sizeof(out)), 0);
	assert_int_equal(verify(b, out, T0, &t), BATV_BADSIG);
	assert_int_equal(verify(c, out, T0, &t), BATV_NOKEY);
	/* another address, another day, a changed digit: all bad */
	snprintf(bad, sizeof(bad), "%.*s=ann@example.test", 15, out);
	assert_int_equal(verify(a, bad, T0, &t), BATV_BADSIG);
	snprintf(bad, sizeof(bad), "%s", out);
	bad[8] = bad[8] == '9' ? '0' : (char)(bad[8] + 1);
	assert_int_equal(verify(a, bad, T0, &t), BATV_BADSIG);
	snprintf(bad, sizeof(bad), "%s", out);
	bad[14] = bad[14] == 'f' ? '0' : 'f';
	assert_int_equal(verify(a, bad, T0, &t), BATV_BADSIG);
	keyring_free(a);
	keyring_free(b);
	keyring_free(c);
}

/* README: add the new key as the first line, keep the old for 7 days */
static void
test_rotation(void **state)
{
	struct keyring	*old = ring("1 the-old-secret-1111111\n");
	struct keyring	*both = ring("2 the-new-secret-2222222\n"
			    "1 the-old-secret-1111111\n");
	struct keyring	*anew = ring("2 the-new-secret-2222222\n");
	struct batv_tag	 t;
	char		 o[BATV_ADDR_MAX + 1], n[BATV_ADDR_MAX + 1];

	(void)state;
	assert_int_equal(batv_sign(old, "joe@example.test", T0, o,
	    sizeof(o)), 0);
	assert_int_equal(batv_sign(both, "joe@example.test", T0, n,
	    sizeof(n)), 0);
	assert_int_equal(n[5], '2');		/* the first line signs */
	assert_int_equal(verify(both, o, T0, &t), BATV_PASS);
	assert_int_equal(verify(both, n, T0, &t), BATV_PASS);
	assert_int_equal(verify(anew, n, T0, &t), BATV_PASS);
	assert_int_equal(verify(anew, o, T0, &t), BATV_NOKEY);
	keyring_free(old);
	keyring_free(both);
	keyring_free(anew);
}

static const struct {
	const char	*local;
	enum parse_rc	 rc;
} tag_cases[] = {
	{ "prvs=1234abcdef=joe", PARSE_OK },
	{ "PRVS=1234ABCDEF=joe", PARSE_OK },
	{ "prvs=1234abcdef=a.b-c+d", PARSE_OK },
	{ "prvs=1234abcdef=", PARSE_BAD },		/* empty original */
	{ "prvs=1234abcdef", PARSE_BAD },
	{ "prvs=1234abcde=joe", PARSE_BAD },		/* 5 hex digits */
	{ "prvs=1234abcdeg=joe", PARSE_BAD },		/* not hex */
	{ "prvs=a234abcdef=joe", PARSE_BAD },		/* K not a digit */
	{ "prvs=12x4abcdef=joe", PARSE_BAD },		/* DDD not digits */
	{ "prvs=1234abcdef-joe", PARSE_BAD },
	{ "prvs=1234abcdef=jo e", PARSE_BAD },
	{ "prvs=1234abcdef=jo@e", PARSE_BAD },
	{ "prvs=", PARSE_BAD },
	{ "prv=1234abcdef=joe", PARSE_BAD },
	{ "joe", PARSE_BAD },
	{ "", PARSE_BAD },
	{ "prvs=1234abcdef=a123456789b123456789c123456789d123456789e1234567",
	  PARSE_OK },					/* 64 octets */
	{ "prvs=1234abcdef=a123456789b123456789c123456789d123456789e12345678",
	  PARSE_TOOLONG },
};

static void
test_malformed(void **state)
{
	struct keyring	*k = ring("1 secret-of-gateway-a-xx\n");
	struct batv_tag	 t;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(tag_cases) / sizeof(tag_cases[0]); i++) {
		const char	*s = tag_cases[i].local;
		enum parse_rc	 rc = batv_parse(s, strlen(s), &t);
		enum batv_result r = batv_verify(k, s, strlen(s), "x.test", 6,
				    T0, &t);

		if (rc != tag_cases[i].rc)
			fail_msg("case %zu %s: rc %d", i, s, rc);
		if (rc == PARSE_OK)
			assert_true(r == BATV_BADSIG || r == BATV_NOKEY);
		else if (batv_tagged(s, strlen(s)))
			assert_int_equal(r, BATV_MALFORMED);
		else
			assert_int_equal(r, BATV_NONE);
	}
	/* an untagged local part is all there is to strip */
	assert_int_equal(batv_verify(k, "joe", 3, "x.test", 6, T0, &t),
	    BATV_NONE);
	assert_int_equal(t.llen, 3);
	assert_string_equal(batv_result_name(BATV_EXPIRED), "expired");
	keyring_free(k);
}

static const struct {
	const char	*text;
	unsigned	 line;		/* of the error; 0: loads */
} file_cases[] = {
	{ "1 0123456789abcdef\n", 0 },
	{ "# keys\n\n 2\tsecret-with blanks inside\r\n", 0 },
	{ "1 0123456789abcdef\n1 another-secret-xxxxx\n", 2 },	/* twice */
	{ "1 short\n", 1 },
	{ "10 0123456789abcdef\n", 1 },
	{ "x 0123456789abcdef\n", 1 },
	{ "1\n", 1 },
	{ "1 0123456789abcdef\n\n3 0123\x01" "456789abcdef\n", 3 },
	{ "# nothing\n", 0xffff },				/* no key */
};

static void
test_key_file(void **state)
{
	char		 path[] = "/tmp/test_batv_keysXXXXXX";
	struct errs	 e;
	struct keyring	*k;
	size_t		 i;
	int		 fd;

	(void)state;
	for (i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		k = keyring_load_mem(file_cases[i].text,
		    strlen(file_cases[i].text), "keys", collect, &e);
		if (file_cases[i].line == 0) {
			assert_non_null(k);
			assert_int_equal(e.n, 0);
		} else {
			assert_null(k);
			assert_int_equal(e.line, file_cases[i].line == 0xffff ?
			    0 : file_cases[i].line);
		}
		keyring_free(k);
	}
	k = ring("5 second-key-55555555\n4 first-key-44444444\n");
	assert_int_equal(k->n, 2);
	assert_int_equal(k->k[0].id, 5);		/* the first signs */
	assert_non_null(keyring_find(k, 4));
	assert_null(keyring_find(k, 3));
	keyring_free(k);
	/* the mode check, as for relayhost_auth_file */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "1 0123456789abcdef\n", 19), 19);
	close(fd);
	assert_int_equal(chmod(path, 0640), 0);
	memset(&e, 0, sizeof(e));
	assert_null(keyring_load(path, "batv_key_file", collect, &e));
	assert_non_null(strstr(e.msg, "group or others"));
	assert_int_equal(chmod(path, 0600), 0);
	k = keyring_load(path, "batv_key_file", collect, &e);
	assert_non_null(k);
	keyring_free(k);
	unlink(path);
	memset(&e, 0, sizeof(e));
	assert_null(keyring_load(path, "batv_key_file", collect, &e));
	assert_non_null(strstr(e.msg, "cannot open"));
}

/* SPOOL/batv.since: written once, read back, rewritten if junk, removed
 * when BATV is off */
static void
test_since(void **state)
{
	char	 dir[] = "/tmp/test_batv_spoolXXXXXX", path[256], why[256];
	time_t	 since;
	FILE	*f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, BATV_SINCE_FILE);
	assert_int_equal(batv_since_load(dir, true, T0, &since, why,
	    sizeof(why)), 0);
	assert_int_equal(since, T0);
	assert_int_equal(batv_since_load(dir, true, T0 + DAY, &since, why,
	    sizeof(why)), 0);
	assert_int_equal(since, T0);		/* a restart keeps it */
	assert_non_null(f = fopen(path, "w"));
	fputs("junk\n", f);
	fclose(f);
	assert_int_equal(batv_since_load(dir, true, T0 + 2 * DAY, &since,
	    why, sizeof(why)), 0);
	assert_int_equal(since, T0 + 2 * DAY);
	assert_int_equal(batv_since_load(dir, false, T0, &since, why,
	    sizeof(why)), 0);
	assert_int_equal(since, 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(batv_since_load(dir, false, T0, &since, why,
	    sizeof(why)), 0);			/* already gone: fine */
	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(batv_since_load(dir, true, T0, &since, why,
	    sizeof(why)), -1);			/* no spool folder */
	assert_non_null(strstr(why, "cannot write"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_since),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
