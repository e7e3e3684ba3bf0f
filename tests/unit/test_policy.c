/*
 * test_policy.c - the relay decision and the unknown-recipient policy, by
 * table: which client may relay where, which domains are ours (case,
 * trailing dot, address literals), and what each verdict leads to under
 * each policy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "policy/policy.h"
#include "policy/relay.h"

static const char conf_text[] =
    "domains = example.test, Other.Example\n"
    "directory = file:users\n"
    "relay_networks = 127.0.0.2/32, 10.1.0.0/16, 2001:db8::/32\n"
    "unknown_recipient = reject\n"
    "[domain other.example]\n"
    "unknown_recipient = discard\n"
    "[domain example.test]\n"
    "unknown_recipient = reject\n";

static const char conf_bounce[] =
    "domains = b.test\n"
    "directory = file:users\n"
    "unknown_recipient = bounce\n";

static struct config *
load(void)
{
	struct config	*c;

	c = conf_load_mem(conf_text, sizeof(conf_text) - 1, "t.conf", "/tmp",
	    NULL, NULL);
	assert_non_null(c);
	return c;
}

static void
client(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
}

static const struct {
	const char		*client;
	const char		*domain;
	bool			 literal;
	enum relay_verdict	 want;
} relay_cases[] = {
	{ "127.0.0.1", "example.test", false, RELAY_LOCAL },
	{ "127.0.0.1", "EXAMPLE.TEST", false, RELAY_LOCAL },
	{ "127.0.0.1", "other.example", false, RELAY_LOCAL },
	{ "127.0.0.1", "sub.example.test", false, RELAY_DENIED },
	{ "127.0.0.1", "example.test.evil", false, RELAY_DENIED },
	{ "127.0.0.1", "elsewhere.test", false, RELAY_DENIED },
	{ "127.0.0.1", "[192.0.2.1]", true, RELAY_DENIED },
	{ "127.0.0.1", "[127.0.0.1]", true, RELAY_DENIED },
	{ "127.0.0.2", "elsewhere.test", false, RELAY_CLIENT },
	{ "127.0.0.2", "[192.0.2.1]", true, RELAY_CLIENT },
	{ "127.0.0.2", "example.test", false, RELAY_LOCAL },
	{ "127.0.0.3", "elsewhere.test", false, RELAY_DENIED },
	{ "10.1.200.3", "elsewhere.test", false, RELAY_CLIENT },
	{ "10.2.0.1", "elsewhere.test", false, RELAY_DENIED },
	{ "::ffff:127.0.0.2", "elsewhere.test", false, RELAY_CLIENT },
	{ "::ffff:127.0.0.1", "elsewhere.test", false, RELAY_DENIED },
	{ "2001:db8::5", "elsewhere.test", false, RELAY_CLIENT },
	{ "2001:db9::5", "elsewhere.test", false, RELAY_DENIED },
	{ "::1", "elsewhere.test", false, RELAY_DENIED },
};

static void
test_relay(void **state)
{
	struct config			*c = load();
	const struct domain_conf	*dc;
	struct sockaddr_storage		 ss;
	size_t				 i;

	(void)state;
	for (i = 0; i < sizeof(relay_cases) / sizeof(relay_cases[0]); i++) {
		client(relay_cases[i].client, &ss);
		if (relay_check(c, (struct sockaddr *)&ss, false,
		    relay_cases[i].domain, strlen(relay_cases[i].domain),
		    relay_cases[i].literal, &dc) != relay_cases[i].want)
			fail_msg("case %zu: %s -> %s", i,
			    relay_cases[i].client, relay_cases[i].domain);
		assert_true((dc != NULL) ==
		    (relay_cases[i].want == RELAY_LOCAL));
	}
	/* An authenticated client relays anywhere; ours stay ours. */
	client("127.0.0.3", &ss);
	assert_int_equal(relay_check(c, (struct sockaddr *)&ss, true,
	    "elsewhere.test", 14, false, &dc), RELAY_CLIENT);
	assert_int_equal(relay_check(c, (struct sockaddr *)&ss, true,
	    "[192.0.2.1]", 11, true, &dc), RELAY_CLIENT);
	assert_int_equal(relay_check(c, (struct sockaddr *)&ss, true,
	    "example.test", 12, false, &dc), RELAY_LOCAL);
	conf_unref(c);
}

static const struct {
	const char		*domain;
	enum relay_verdict	 rv;
	enum dir_verdict	 v;
	enum rcpt_action	 want;
} policy_cases[] = {
	{ "example.test", RELAY_LOCAL, DIR_VALID, RCPT_ACCEPT },
	{ "example.test", RELAY_LOCAL, DIR_UNKNOWN, RCPT_REJECT },
	{ "example.test", RELAY_LOCAL, DIR_TEMPFAIL, RCPT_TEMPFAIL },
	{ "other.example", RELAY_LOCAL, DIR_VALID, RCPT_ACCEPT },
	{ "other.example", RELAY_LOCAL, DIR_UNKNOWN, RCPT_DISCARD },
	{ "other.example", RELAY_LOCAL, DIR_TEMPFAIL, RCPT_TEMPFAIL },
	{ NULL, RELAY_CLIENT, DIR_UNKNOWN, RCPT_RELAY },
	{ NULL, RELAY_CLIENT, DIR_VALID, RCPT_RELAY },
	{ NULL, RELAY_DENIED, DIR_VALID, RCPT_DENY },
	{ NULL, RELAY_DENIED, DIR_UNKNOWN, RCPT_DENY },
};

static void
test_policy(void **state)
{
	struct config			*c = load();
	const struct domain_conf	*dc;
	enum rcpt_action		 a;
	size_t				 i;

	(void)state;
	for (i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		dc = policy_cases[i].domain ? conf_domain(c,
		    policy_cases[i].domain,
		    strlen(policy_cases[i].domain)) : NULL;
		a = policy_rcpt(policy_cases[i].rv, policy_cases[i].v, dc);
		if (a != policy_cases[i].want)
			fail_msg("case %zu: got %s", i, policy_action_name(a));
	}
	/* discard must look exactly like accept; nothing else may */
	assert_true(policy_looks_valid(RCPT_DISCARD));
	assert_true(policy_looks_valid(RCPT_BOUNCE));
	assert_true(policy_looks_valid(RCPT_ACCEPT));
	assert_false(policy_looks_valid(RCPT_REJECT));
	assert_false(policy_looks_valid(RCPT_TEMPFAIL));
	assert_false(policy_looks_valid(RCPT_DENY));
	conf_unref(c);
}

static void
test_policy_bounce(void **state)
{
	struct config			*c;
	const struct domain_conf	*dc;

	(void)state;
	c = conf_load_mem(conf_bounce, sizeof(conf_bounce) - 1, "t.conf",
	    "/tmp", NULL, NULL);
	assert_non_null(c);
	dc = conf_domain(c, "b.test", 6);
	assert_non_null(dc);
	assert_int_equal(policy_rcpt(RELAY_LOCAL, DIR_UNKNOWN, dc),
	    RCPT_BOUNCE);
	assert_int_equal(policy_rcpt(RELAY_LOCAL, DIR_VALID, dc), RCPT_ACCEPT);
	assert_int_equal(policy_rcpt(RELAY_LOCAL, DIR_TEMPFAIL, dc),
	    RCPT_TEMPFAIL);
	conf_unref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relay),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_policy_bounce),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
