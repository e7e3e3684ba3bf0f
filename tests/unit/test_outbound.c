/*
 * test_outbound.c - the pure parts of outbound trust (issue 20), by
 * table: fingerprint pins (fprint.c), the smarthost credentials file
 * (relay_cred.c), the AUTH PLAIN/LOGIN encoders (client_auth.c) and the
 * EHLO AUTH keyword (client_proto.c); outbound_policy over a config.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/relay_cred.h"
#include "conf/conf.h"
#include "deliver/client.h"
#include "deliver/client_auth.h"
#include "deliver/outbound.h"
#include "lib/fprint.h"

#define HEX64 "00112233445566778899aabbccddeeff" \
	"00112233445566778899aabbccddeeff"
#define COLONS "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:" \
	"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

struct pin_case {
	const char	*text;
	enum parse_rc	 rc;
	size_t		 n;
	size_t		 bad_at;
};

static const struct pin_case pin_cases[] = {
	{ "", PARSE_OK, 0, 0 },
	{ "   ", PARSE_OK, 0, 0 },
	{ "sha256:" HEX64, PARSE_OK, 1, 0 },
	{ "SHA256:" COLONS, PARSE_OK, 1, 0 },
	{ " sha256:" HEX64 " , sha256:" COLONS " ", PARSE_OK, 2, 0 },
	{ "sha256:" HEX64 ",", PARSE_BAD, 0, 72 },
	{ "sha256:" HEX64 "00", PARSE_BAD, 0, 71 },
	{ "sha256:abcd", PARSE_BAD, 0, 11 },
	{ "sha1:" HEX64, PARSE_BAD, 0, 0 },
	{ "sha256:" HEX64 " sha256:" HEX64, PARSE_BAD, 0, 72 },
	{ "sha256:0g" HEX64, PARSE_BAD, 0, 7 },
	{ "sha256::" HEX64, PARSE_BAD, 0, 7 },
	{ "sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64
	  ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64,
	  PARSE_OK, 8, 0 },
	{ "sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64
	  ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64 ",sha256:" HEX64
	  ",sha256:" HEX64, PARSE_TOOLONG, 0, 0 },
};

static void
test_fprint_parse_table(void **state)
{
	struct fprint_pins	pins;
	size_t			i, at;
	enum parse_rc		rc;

	(void)state;
	for (i = 0; i < sizeof(pin_cases) / sizeof(pin_cases[0]); i++) {
		const struct pin_case *c = &pin_cases[i];

		memset(&pins, 0x5a, sizeof(pins));
		rc = fprint_parse(c->text, strlen(c->text), &pins, &at);
		if (rc != c->rc)
			fail_msg("case %zu %s: rc %d, want %d", i, c->text, rc,
			    c->rc);
		if (rc == PARSE_OK && pins.n != c->n)
			fail_msg("case %zu: %zu pins, want %zu", i, pins.n,
			    c->n);
		if (rc == PARSE_BAD && at != c->bad_at)
			fail_msg("case %zu: bad at %zu, want %zu", i, at,
			    c->bad_at);
	}
}

static void
test_fprint_match_and_format(void **state)
{
	struct fprint_pins	pins;
	uint8_t			d[FPRINT_SHA256_LEN];
	char			s[FPRINT_STR_LEN];
	size_t			at, k;

	(void)state;
	for (k = 0; k < sizeof(d); k++)
		d[k] = (uint8_t)((k % 16) * 0x11);
	assert_int_equal(fprint_parse("sha256:" COLONS, strlen("sha256:"
	    COLONS), &pins, &at), PARSE_OK);
	assert_true(fprint_match(&pins, d));
	fprint_format(d, s);
	assert_string_equal(s, "sha256:" HEX64);
	d[31] ^= 1;			/* one bit off: no match */
	assert_false(fprint_match(&pins, d));
	pins.n = 0;
	assert_false(fprint_match(&pins, d));
}

struct cred_case {
	const char	*line;
	enum parse_rc	 rc;
	const char	*host, *user, *pass;
	unsigned	 port;
};

static const struct cred_case cred_cases[] = {
	{ "smtp.example.net:587 alice s3cret", PARSE_OK, "smtp.example.net",
	  "alice", "s3cret", 587 },
	{ "[2001:db8::1]:25\tbob@x.test  pass with spaces", PARSE_OK,
	  "2001:db8::1", "bob@x.test", "pass with spaces", 25 },
	{ "relay:465 u p\r", PARSE_OK, "relay", "u", "p", 465 },
	{ "# a comment", PARSE_OK, NULL, NULL, NULL, 0 },
	{ "   ", PARSE_OK, NULL, NULL, NULL, 0 },
	{ "", PARSE_OK, NULL, NULL, NULL, 0 },
	{ "relay u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:0 u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:65536 u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:25x u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:587 alice", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:587", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "re_lay:587 u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "[::1:587 u p", PARSE_BAD, NULL, NULL, NULL, 0 },
	{ "relay:587 u p\x01x", PARSE_BAD, NULL, NULL, NULL, 0 },
};

static void
test_relay_cred_parse_table(void **state)
{
	struct relay_cred_line	 l;
	const char		*why;
	size_t			 i;
	enum parse_rc		 rc;

	(void)state;
	for (i = 0; i < sizeof(cred_cases) / sizeof(cred_cases[0]); i++) {
		const struct cred_case *c = &cred_cases[i];

		rc = relay_cred_parse_line(c->line, strlen(c->line), &l, &why);
		if (rc != c->rc)
			fail_msg("case %zu %s: rc %d, want %d", i, c->line, rc,
			    c->rc);
		if (rc != PARSE_OK) {
			assert_non_null(why);
			continue;
		}
		if (c->host == NULL) {
			assert_int_equal(l.hlen, 0);
			continue;
		}
		assert_int_equal(l.hlen, strlen(c->host));
		assert_memory_equal(l.host, c->host, l.hlen);
		assert_int_equal(l.port, c->port);
		assert_int_equal(l.ulen, strlen(c->user));
		assert_memory_equal(l.user, c->user, l.ulen);
		assert_int_equal(l.plen, strlen(c->pass));
		assert_memory_equal(l.pass, c->pass, l.plen);
	}
}

static unsigned	test_errs;
static unsigned	test_err_line;
static char	test_err_msg[300];

static void
test_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg;
	(void)file;
	test_errs++;
	test_err_line = line;
	snprintf(test_err_msg, sizeof(test_err_msg), "%s", msg);
}

static void
test_relay_creds_load(void **state)
{
	static const char	good[] = "# logins\nSMTP.Example.NET:587 alice "
				    "pw one\n\n[::1]:25 bob pw2\n";
	static const char	dup[] = "a:1 u p\nA:1 v q\n";
	static const char	bad[] = "a:1 u p\nnot a line\n";
	struct relay_creds	*t;
	const struct relay_cred	*c;

	(void)state;
	test_errs = 0;
	t = relay_creds_load_mem(good, strlen(good), "auth", test_err, NULL);
	assert_non_null(t);
	assert_int_equal(test_errs, 0);
	assert_int_equal(relay_creds_count(t), 2);
	c = relay_creds_find(t, "smtp.example.net", 587);
	assert_non_null(c);
	assert_string_equal(c->user, "alice");
	assert_string_equal(c->pass, "pw one");
	assert_null(relay_creds_find(t, "smtp.example.net", 25));
	assert_non_null(relay_creds_find(t, "::1", 25));
	relay_creds_free(t);
	assert_null(relay_creds_load_mem(dup, strlen(dup), "auth", test_err,
	    NULL));
	assert_int_equal(test_err_line, 2);
	/* the error names the line, never its password */
	assert_null(relay_creds_load_mem(bad, strlen(bad), "auth", test_err,
	    NULL));
	assert_int_equal(test_err_line, 2);
	assert_null(strstr(test_err_msg, "not a line"));
}

static void
test_client_auth_encode(void **state)
{
	char	out[CLIENT_CMD_MAX], big[300];

	(void)state;
	assert_int_equal(client_auth_plain("alice", "pw", out, sizeof(out)),
	    0);
	/* base64("\0alice\0pw") */
	assert_string_equal(out, "AUTH PLAIN AGFsaWNlAHB3");
	assert_int_equal(client_auth_b64("alice", out, sizeof(out)), 0);
	assert_string_equal(out, "YWxpY2U=");
	assert_int_equal(client_auth_plain("", "pw", out, sizeof(out)), -1);
	assert_int_equal(client_auth_plain("alice", "pw", out, 12), -1);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(client_auth_plain("alice", big, out, sizeof(out)),
	    -1);
	big[CLIENT_AUTH_MAX] = '\0';	/* 255 octets fit */
	assert_int_equal(client_auth_plain(big, big, out, sizeof(out)), 0);
	assert_int_equal(client_auth_pick(CLIENT_EXT_AUTH_LOGIN |
	    CLIENT_EXT_AUTH_PLAIN), CLIENT_AUTH_PLAIN);
	assert_int_equal(client_auth_pick(CLIENT_EXT_AUTH_LOGIN),
	    CLIENT_AUTH_LOGIN);
	assert_int_equal(client_auth_pick(CLIENT_EXT_STARTTLS),
	    CLIENT_AUTH_NONE);
}

static void
test_ehlo_auth_keyword(void **state)
{
	static const struct {
		const char	*line;
		unsigned	 ext;
	} cases[] = {
		{ "250-AUTH PLAIN LOGIN", CLIENT_EXT_AUTH_PLAIN |
		  CLIENT_EXT_AUTH_LOGIN },
		{ "250-auth cram-md5 login", CLIENT_EXT_AUTH_LOGIN },
		{ "250-AUTH  XPLAIN PLAINX", 0 },
		{ "250-AUTH", 0 },
		{ "250-AUTHPLAIN", 0 },
		{ "250-AUTH=PLAIN", 0 },
	};
	struct client_reply	r;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		client_reply_init(&r);
		assert_int_equal(client_reply_line(&r, "250-mx", 6),
		    PARSE_MORE);
		assert_int_equal(client_reply_line(&r, cases[i].line,
		    strlen(cases[i].line)), PARSE_MORE);
		assert_int_equal(client_reply_line(&r, "250 SIZE", 8),
		    PARSE_OK);
		if ((r.ext & (CLIENT_EXT_AUTH_PLAIN |
		    CLIENT_EXT_AUTH_LOGIN)) != cases[i].ext)
			fail_msg("%s: ext %#x", cases[i].line, r.ext);
	}
}

static void
test_outbound_policy(void **state)
{
	static const char	text[] =
	    "domains = a.test, b.test, c.test\n"
	    "directory = file:users\n"
	    "relayhost = Relay.Example.NET:587\n"
	    "relayhost_tls = encrypt\n"
	    "next_hop = smtp:mx.a.test:25\n"
	    "[domain b.test]\n"
	    "next_hop = smtp:10.0.0.5:2525\n"
	    "next_hop_tls = verify\n"
	    "next_hop_tls_fingerprint = sha256:" HEX64 "\n"
	    "[domain c.test]\n"
	    "next_hop = maildir:mail\n";
	struct config			*c;
	struct outbound			*ob;
	struct client_tls_policy	 p;
	const char			*ca;

	(void)state;
	test_errs = 0;
	c = conf_load_mem(text, strlen(text), "t.conf", "/tmp", test_err,
	    NULL);
	assert_non_null(c);
	ob = outbound_load(c, test_err, NULL);
	assert_non_null(ob);
	assert_int_equal(outbound_policy(ob, c, conf_domain(c, "a.test", 6),
	    false, &p, &ca), 0);
	assert_int_equal(p.level, CLIENT_TLS_MAY);
	assert_string_equal(p.name, "mx.a.test");
	assert_false(p.auth);
	assert_int_equal(outbound_policy(ob, c, conf_domain(c, "b.test", 6),
	    false, &p, &ca), 0);
	assert_int_equal(p.level, CLIENT_TLS_VERIFY);
	assert_string_equal(p.name, "10.0.0.5");
	assert_int_equal(p.pins.n, 1);
	assert_null(p.store);		/* no CA file: the system's */
	/* the relayhost, no auth file: its own level */
	assert_int_equal(outbound_policy(ob, c, NULL, true, &p, &ca), 0);
	assert_int_equal(p.level, CLIENT_TLS_ENCRYPT);
	assert_string_equal(p.name, "Relay.Example.NET");
	/* MX: may, whatever relayhost_tls says */
	assert_int_equal(outbound_policy(ob, c, NULL, false, &p, &ca), 0);
	assert_int_equal(p.level, CLIENT_TLS_MAY);
	assert_string_equal(p.name, "");
	assert_int_equal(test_errs, 0);
	outbound_free(ob);
	conf_unref(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fprint_parse_table),
		cmocka_unit_test(test_fprint_match_and_format),
		cmocka_unit_test(test_relay_cred_parse_table),
		cmocka_unit_test(test_relay_creds_load),
		cmocka_unit_test(test_client_auth_encode),
		cmocka_unit_test(test_ehlo_auth_keyword),
		cmocka_unit_test(test_outbound_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
