/*
 * test_cidr.c - cidr_parse, cidr_match and the list functions, by table:
 * IPv4, IPv6, host bits, bad prefixes, and IPv4-mapped IPv6 clients.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "lib/cidr.h"

struct parse_case {
	const char	*text;
	int		 rc;
	int		 family;
	unsigned	 prefix;
	const char	*net;		/* network as inet_ntop prints it */
};

static const struct parse_case parse_cases[] = {
	{ "10.0.0.0/8",		0, AF_INET, 8, "10.0.0.0" },
	{ "10.1.2.3/8",		0, AF_INET, 8, "10.0.0.0" },	/* host bits */
	{ "192.168.1.200/25",	0, AF_INET, 25, "192.168.1.128" },
	{ "127.0.0.1",		0, AF_INET, 32, "127.0.0.1" },
	{ "0.0.0.0/0",		0, AF_INET, 0, "0.0.0.0" },
	{ "1.2.3.4/0",		0, AF_INET, 0, "0.0.0.0" },
	{ "1.2.3.4/32",		0, AF_INET, 32, "1.2.3.4" },
	{ "1.2.3.4/33",		-1, 0, 0, NULL },
	{ "1.2.3.4/",		-1, 0, 0, NULL },
	{ "1.2.3.4/-1",		-1, 0, 0, NULL },
	{ "1.2.3.4/+8",		-1, 0, 0, NULL },
	{ "1.2.3.4/1a",		-1, 0, 0, NULL },
	{ "1.2.3.4/0008",	-1, 0, 0, NULL },
	{ "1.2.3.4/8/8",	-1, 0, 0, NULL },
	{ "/8",			-1, 0, 0, NULL },
	{ "",			-1, 0, 0, NULL },
	{ "1.2.3/8",		-1, 0, 0, NULL },
	{ "1.2.3.4.5",		-1, 0, 0, NULL },
	{ "256.0.0.1",		-1, 0, 0, NULL },
	{ " 1.2.3.4",		-1, 0, 0, NULL },
	{ "1.2.3.4 ",		-1, 0, 0, NULL },
	{ "mx.example.org",	-1, 0, 0, NULL },
	{ "::1",		0, AF_INET6, 128, "::1" },
	{ "::/0",		0, AF_INET6, 0, "::" },
	{ "2001:db8::/32",	0, AF_INET6, 32, "2001:db8::" },
	{ "2001:db8:ffff::1/32", 0, AF_INET6, 32, "2001:db8::" },
	{ "2001:db8::1/127",	0, AF_INET6, 127, "2001:db8::" },
	{ "2001:db8::/129",	-1, 0, 0, NULL },
	{ "2001:db8::/1000",	-1, 0, 0, NULL },
	{ "fe80::1%eth0",	-1, 0, 0, NULL },
	{ "2001:db8:::1",	-1, 0, 0, NULL },
	{ "[::1]",		-1, 0, 0, NULL },
	/* IPv4-mapped networks become IPv4 (RFC 4291 2.5.5.2) */
	{ "::ffff:10.0.0.0/104", 0, AF_INET, 8, "10.0.0.0" },
	{ "::ffff:192.0.2.1",	0, AF_INET, 32, "192.0.2.1" },
	{ "::ffff:0:0/96",	0, AF_INET, 0, "0.0.0.0" },
	{ "::ffff:10.0.0.0/80",	0, AF_INET6, 80, "::" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", 0, AF_INET6,
	  128, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
	{ "0000:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128", 0, AF_INET6,
	  128, "0:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },	/* longest */
	{ "0000:ffff:ffff:ffff:ffff:ffff:255.255.255.255/0128", -1, 0, 0,
	  NULL },			/* over CIDR_TEXT_MAX */
};

static void
test_cidr_parse_table(void **state)
{
	const struct parse_case	*c;
	struct cidr		 n;
	char			 text[INET6_ADDRSTRLEN];
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		c = &parse_cases[i];
		memset(&n, 0xa5, sizeof(n));
		rc = cidr_parse(c->text, strlen(c->text), &n);
		if (rc != c->rc)
			fail_msg("cidr_parse(\"%s\") = %d, want %d", c->text,
			    rc, c->rc);
		if (rc != 0)
			continue;
		assert_int_equal(n.family, c->family);
		assert_int_equal(n.prefix, c->prefix);
		assert_non_null(inet_ntop(n.family, n.addr, text,
		    sizeof(text)));
		if (strcmp(text, c->net) != 0)
			fail_msg("cidr_parse(\"%s\"): network %s, want %s",
			    c->text, text, c->net);
	}
}

/* len bounds the text: it need not be NUL-terminated. */
static void
test_cidr_parse_len(void **state)
{
	struct cidr	n;

	(void)state;
	assert_int_equal(cidr_parse("10.0.0.0/8xyz", 10, &n), 0);
	assert_int_equal(n.prefix, 8);
	assert_int_equal(cidr_parse("10.0.0.0/8xyz", 13, &n), -1);
	assert_int_equal(cidr_parse("10.0.0.1\0/8", 11, &n), -1);
}

/* Client address: "v4" as sockaddr_in, anything else as sockaddr_in6. */
static void
test_sa(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(25);
		return;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(25);
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
		fail_msg("bad test address %s", text);
}

struct match_case {
	const char	*net;
	const char	*addr;
	bool		 match;
};

static const struct match_case match_cases[] = {
	{ "10.0.0.0/8",		"10.255.1.2",		true },
	{ "10.0.0.0/8",		"11.0.0.1",		false },
	{ "10.0.0.0/8",		"::ffff:10.1.2.3",	true },	/* mapped */
	{ "10.0.0.0/8",		"::ffff:11.1.2.3",	false },
	{ "10.0.0.0/8",		"::a01:203",		false }, /* compat */
	{ "192.168.1.128/25",	"192.168.1.127",	false },
	{ "192.168.1.128/25",	"192.168.1.128",	true },
	{ "192.168.1.128/25",	"192.168.1.255",	true },
	{ "192.168.1.128/25",	"::ffff:192.168.1.130",	true },
	{ "0.0.0.0/0",		"1.2.3.4",		true },
	{ "0.0.0.0/0",		"::ffff:1.2.3.4",	true },
	{ "0.0.0.0/0",		"::1",			false },
	{ "::/0",		"1.2.3.4",		false },
	{ "::/0",		"::ffff:1.2.3.4",	false }, /* IPv4 */
	{ "::/0",		"2001:db8::1",		true },
	{ "2001:db8::/32",	"2001:db8:1::1",	true },
	{ "2001:db8::/32",	"2001:db9::1",		false },
	{ "2001:db8::/33",	"2001:db8:8000::1",	false },
	{ "2001:db8::/33",	"2001:db8:7fff::1",	true },
	{ "2001:db8::/31",	"2001:db9::1",		true },
	{ "::1",		"::1",			true },
	{ "::1",		"::2",			false },
	{ "::1",		"127.0.0.1",		false },
	{ "::ffff:10.0.0.0/104", "10.9.9.9",		true },
	{ "::ffff:10.0.0.0/104", "::ffff:10.9.9.9",	true },
	{ "127.0.0.1",		"127.0.0.1",		true },
	{ "127.0.0.1",		"127.0.0.2",		false },
	{ "127.0.0.1/31",	"127.0.0.0",		true },
};

static void
test_cidr_match_table(void **state)
{
	const struct match_case		*c;
	struct sockaddr_storage		 ss;
	struct cidr			 n;
	size_t				 i;
	bool				 got;

	(void)state;
	for (i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		c = &match_cases[i];
		assert_int_equal(cidr_parse(c->net, strlen(c->net), &n), 0);
		test_sa(c->addr, &ss);
		got = cidr_match(&n, (struct sockaddr *)&ss);
		if (got != c->match)
			fail_msg("%s in %s: %d, want %d", c->addr, c->net,
			    got, c->match);
	}
}

static void
test_cidr_match_other(void **state)
{
	struct sockaddr_un	sun;
	struct cidr		n;

	(void)state;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	assert_int_equal(cidr_parse("0.0.0.0/0", 9, &n), 0);
	assert_false(cidr_match(&n, (struct sockaddr *)&sun));
	assert_false(cidr_match(&n, NULL));
	assert_false(cidr_list_match(NULL, NULL));
}

struct list_case {
	const char	*text;
	int		 rc;
	size_t		 n;		/* items, when rc == 0 */
	size_t		 bad;		/* offset of *bad, when rc == -1 */
};

static const struct list_case list_cases[] = {
	{ "",				0, 0, 0 },
	{ "  \t ",			0, 0, 0 },
	{ "10.0.0.0/8",			0, 1, 0 },
	{ " 10.0.0.0/8 , ::1 ",		0, 2, 0 },
	{ "10.0.0.0/8,::1,192.0.2.0/24", 0, 3, 0 },
	{ "10.0.0.0/8,",		-1, 0, 11 },
	{ ",10.0.0.0/8",		-1, 0, 0 },
	{ "10.0.0.0/8, bogus, ::1",	-1, 0, 12 },
	{ "10.0.0.0/8,,::1",		-1, 0, 11 },
	{ "10.0.0.0/8 ::1",		-1, 0, 0 },
	{ "1.2.3.4/33",			-1, 0, 0 },
};

static void
test_cidr_list_parse_table(void **state)
{
	const struct list_case	*c;
	struct cidr_list	 l;
	const char		*bad;
	size_t			 i;
	int			 rc;

	(void)state;
	for (i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
		c = &list_cases[i];
		bad = NULL;
		rc = cidr_list_parse(c->text, &l, &bad);
		if (rc != c->rc)
			fail_msg("cidr_list_parse(\"%s\") = %d, want %d",
			    c->text, rc, c->rc);
		if (rc == 0) {
			assert_int_equal(l.n, c->n);
			assert_true(c->n == 0 || l.v != NULL);
		} else {
			assert_non_null(bad);
			if ((size_t)(bad - c->text) != c->bad)
				fail_msg("\"%s\": bad at %td, want %zu", c->text,
				    bad - c->text, c->bad);
			assert_null(l.v);
			assert_int_equal(l.n, 0);
		}
		cidr_list_free(&l);
		assert_null(l.v);
	}
}

static void
test_cidr_list_match(void **state)
{
	static const struct {
		const char	*addr;
		bool		 match;
	} cases[] = {
		{ "10.1.1.1", true }, { "::1", true }, { "1.1.1.1", false },
		{ "::ffff:10.2.2.2", true }, { "::2", false },
		{ "192.0.2.77", true },
	};
	struct sockaddr_storage	ss;
	struct cidr_list	l;
	size_t			i;

	(void)state;
	assert_int_equal(cidr_list_parse("10.0.0.0/8, ::1, 192.0.2.0/24", &l,
	    NULL), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_sa(cases[i].addr, &ss);
		if (cidr_list_match(&l, (struct sockaddr *)&ss) !=
		    cases[i].match)
			fail_msg("list match %s: want %d", cases[i].addr,
			    cases[i].match);
	}
	cidr_list_free(&l);
	assert_int_equal(cidr_list_parse("", &l, NULL), 0);
	test_sa("10.1.1.1", &ss);
	assert_false(cidr_list_match(&l, (struct sockaddr *)&ss));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse_table),
		cmocka_unit_test(test_cidr_parse_len),
		cmocka_unit_test(test_cidr_match_table),
		cmocka_unit_test(test_cidr_match_other),
		cmocka_unit_test(test_cidr_list_parse_table),
		cmocka_unit_test(test_cidr_list_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
