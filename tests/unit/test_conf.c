/*
 * test_conf.c - the config loader, by table: every key with good and bad
 * values (message and line), sections, relative paths, defaults, all
 * errors collected in line order, conf_domain(), refcount, the key dump.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/conf_keys.h"

#define DIR	"/etc/mxgate"
#define B	"domains = example.org\ndirectory = file:users\n" /* 2 lines */
#define ERRS_MAX 64
#define SIZE_WANT(k)	k ": expected a size like 512K, 25M or 2G (bytes, " \
			"or K, M, G, T: powers of 1024; no B, KB or MB), got "

struct errs {
	size_t		 n;
	unsigned	 line[ERRS_MAX];
	char		 msg[ERRS_MAX][1200];
	char		 file[256];
};

static void
errs_add(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs	*e = arg;

	if (e->n < ERRS_MAX) {
		e->line[e->n] = line;
		(void)snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
	}
	(void)snprintf(e->file, sizeof(e->file), "%s", file);
	e->n++;
}

static struct config *
load(const char *text, struct errs *e)
{
	memset(e, 0, sizeof(*e));
	return conf_load_mem(text, strlen(text), "t.conf", DIR, errs_add, e);
}

static struct config *
load_ok(const char *text)
{
	struct errs	 e;
	struct config	*cfg;

	cfg = load(text, &e);
	if (cfg == NULL || e.n != 0)
		fail_msg("config should load:\n%s\nfirst error: line %u: %s",
		    text, e.line[0], e.n ? e.msg[0] : "(none)");
	return cfg;
}

static void
test_conf_defaults(void **state)
{
	struct config	*cfg;
	char		 host[256];
	const struct sockaddr_in *sin;

	(void)state;
	cfg = load_ok(B);
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(cfg->hostname, host);
	assert_string_equal(cfg->file, "t.conf");
	assert_string_equal(cfg->dirname, DIR);
	assert_int_equal(cfg->nlisten, 1);
	assert_string_equal(cfg->listen[0].text, "127.0.0.1:2525");
	sin = (const struct sockaddr_in *)&cfg->listen[0].ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 2525);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(cfg->listen[0].sslen, sizeof(struct sockaddr_in));
	assert_string_equal(cfg->spool, DIR "/var/spool");
	assert_int_equal(cfg->directory.kind, DIR_KIND_FILE);
	assert_string_equal(cfg->directory.path, DIR "/users");
	assert_int_equal(cfg->relay_networks.n, 0);
	assert_int_equal(cfg->max_message_size, 25 * 1024 * 1024);
	assert_int_equal(cfg->spool_min_free, 100 * 1024 * 1024);
	assert_int_equal(cfg->max_recipients, 100);
	assert_int_equal(cfg->log_level, LOG_LVL_INFO);
	assert_false(cfg->localpart_case_sensitive);
	assert_int_equal(cfg->max_errors, 20);
	assert_int_equal(cfg->greeting_delay_ms, 0);
	assert_int_equal(cfg->command_timeout_ms, 5 * 60 * 1000);
	assert_int_equal(cfg->data_timeout_ms, 10 * 60 * 1000);
	assert_int_equal(cfg->retry_min_ms, 60 * 1000);
	assert_int_equal(cfg->dflt.unknown, UNKNOWN_REJECT);
	assert_int_equal(cfg->dflt.hop.kind, HOP_MAILDIR);
	assert_string_equal(cfg->dflt.hop.path, DIR "/var/mail");
	assert_string_equal(cfg->dflt.delim, "+");
	assert_int_equal(cfg->ndomains, 1);
	assert_string_equal(cfg->domains[0].name, "example.org");
	assert_int_equal(cfg->domains[0].unknown, UNKNOWN_REJECT);
	assert_string_equal(cfg->domains[0].hop.path, DIR "/var/mail");
	assert_string_equal(cfg->domains[0].delim, "+");
	assert_int_equal(cfg->refs, 1);
	conf_unref(cfg);
}

/* What a good case checks, and where. */
enum chk { C_UINT, C_U64, C_BOOL, C_ENUM, C_STR, C_PATH, C_NCIDR,
	   C_DENUM, C_DPATH, C_DSTR };

#define CF(f)	offsetof(struct config, f)
#define DF(f)	offsetof(struct domain_conf, f)

struct good_case {
	const char	*text;
	enum chk	 kind;
	size_t		 off;	/* in struct config, or domain_conf for C_D* */
	uint64_t	 num;
	const char	*str;
};

static const struct good_case good_cases[] = {
	{ B "hostname = mx.example.org", C_STR, CF(hostname), 0,
	  "mx.example.org" },
	{ B "hostname = MX1", C_STR, CF(hostname), 0, "MX1" },
	{ B "  hostname\t=\tmx-2.example.org  ", C_STR, CF(hostname), 0,
	  "mx-2.example.org" },
	{ B "spool = q", C_PATH, CF(spool), 0, DIR "/q" },
	{ B "spool = /var/spool/mx", C_PATH, CF(spool), 0, "/var/spool/mx" },
	{ B "spool = ../q", C_PATH, CF(spool), 0, DIR "/../q" },
	{ "directory = FILE:/etc/users\ndomains = a.org", C_PATH,
	  CF(directory.path), 0, "/etc/users" },
	{ "directory = file:/etc/u , Hashed:h\ndomains = a.org", C_PATH,
	  CF(directory.v[1].path), 0, DIR "/h" },
	{ B "relay_networks = 10.0.0.0/8, ::1", C_NCIDR, CF(relay_networks), 2,
	  NULL },
	{ B "relay_networks =", C_NCIDR, CF(relay_networks), 0, NULL },
	{ B "max_message_size = 1K", C_U64, CF(max_message_size), 1024, NULL },
	{ B "max_message_size = 1024", C_U64, CF(max_message_size), 1024,
	  NULL },
	{ B "max_message_size = 10 M", C_U64, CF(max_message_size),
	  10 << 20, NULL },
	{ B "max_message_size = 2G", C_U64, CF(max_message_size), 2ull << 30,
	  NULL },
	{ B "spool_min_free = 0", C_U64, CF(spool_min_free), 0, NULL },
	{ B "spool_min_free = 1000T", C_U64, CF(spool_min_free),
	  1000ull << 40, NULL },
	{ B "spool_min_free = 2t", C_U64, CF(spool_min_free), 2ull << 40,
	  NULL },
	{ B "max_recipients = 1", C_UINT, CF(max_recipients), 1, NULL },
	{ B "max_recipients = 100000", C_UINT, CF(max_recipients), 100000,
	  NULL },
	{ B "max_recipients = 007", C_UINT, CF(max_recipients), 7, NULL },
	{ B "log_level = debug", C_ENUM, CF(log_level), LOG_LVL_DEBUG, NULL },
	{ B "log_level = ERROR", C_ENUM, CF(log_level), LOG_LVL_ERROR, NULL },
	{ B "log_level = warning", C_ENUM, CF(log_level), LOG_LVL_WARNING,
	  NULL },
	{ B "localpart_case_sensitive = yes", C_BOOL,
	  CF(localpart_case_sensitive), 1, NULL },
	{ B "localpart_case_sensitive = On", C_BOOL,
	  CF(localpart_case_sensitive), 1, NULL },
	{ B "localpart_case_sensitive = 1", C_BOOL,
	  CF(localpart_case_sensitive), 1, NULL },
	{ B "localpart_case_sensitive = TRUE", C_BOOL,
	  CF(localpart_case_sensitive), 1, NULL },
	{ B "localpart_case_sensitive = off", C_BOOL,
	  CF(localpart_case_sensitive), 0, NULL },
	{ B "localpart_case_sensitive = false", C_BOOL,
	  CF(localpart_case_sensitive), 0, NULL },
	{ B "localpart_case_sensitive = 0", C_BOOL,
	  CF(localpart_case_sensitive), 0, NULL },
	{ B "max_errors_per_session = 1", C_UINT, CF(max_errors), 1, NULL },
	{ B "max_errors_per_session = 1000", C_UINT, CF(max_errors), 1000,
	  NULL },
	{ B "greeting_delay = 60s", C_UINT, CF(greeting_delay_ms), 60000,
	  NULL },
	{ B "greeting_delay = 1m", C_UINT, CF(greeting_delay_ms), 60000,
	  NULL },
	{ B "greeting_delay = 500ms", C_UINT, CF(greeting_delay_ms), 500,
	  NULL },
	{ B "greeting_delay = 30", C_UINT, CF(greeting_delay_ms), 30000,
	  NULL },
	{ B "greeting_delay = 0", C_UINT, CF(greeting_delay_ms), 0, NULL },
	{ B "command_timeout = 1s", C_UINT, CF(command_timeout_ms), 1000,
	  NULL },
	{ B "command_timeout = 1H", C_UINT, CF(command_timeout_ms), 3600000,
	  NULL },
	{ B "command_timeout = 90", C_UINT, CF(command_timeout_ms), 90000,
	  NULL },
	{ B "data_timeout = 60m", C_UINT, CF(data_timeout_ms), 3600000, NULL },
	{ B "data_timeout = 1500ms", C_UINT, CF(data_timeout_ms), 1500, NULL },
	{ B "retry_min = 1d", C_UINT, CF(retry_min_ms), 86400000, NULL },
	{ B "retry_min = 24h", C_UINT, CF(retry_min_ms), 86400000, NULL },
	{ B "retry_min = 1 s", C_UINT, CF(retry_min_ms), 1000, NULL },
	/* per-domain keys set globally: in dflt and in every domain */
	{ B "unknown_recipient = discard", C_DENUM, DF(unknown),
	  UNKNOWN_DISCARD, NULL },
	{ B "unknown_recipient = Reject", C_DENUM, DF(unknown),
	  UNKNOWN_REJECT, NULL },
	{ B "next_hop = maildir:/srv/mail", C_DPATH, DF(hop.path), 0,
	  "/srv/mail" },
	{ B "next_hop = MailDir:mail", C_DPATH, DF(hop.path), 0, DIR "/mail" },
	{ B "recipient_delimiter =", C_DSTR, DF(delim), 0, "" },
	{ B "recipient_delimiter = +-_=.~", C_DSTR, DF(delim), 0, "+-_=.~" },
	{ B "recipient_delimiter = #", C_DSTR, DF(delim), 0, "#" },
	{ B "recipient_delimiter = 12345678", C_DSTR, DF(delim), 0,
	  "12345678" },
	{ B "unknown_recipient = bounce", C_DENUM, DF(unknown),
	  UNKNOWN_BOUNCE, NULL },
	{ B "next_hop = smtp:mail.example.org:25", C_DENUM, DF(hop.kind),
	  HOP_SMTP, NULL },
	{ B "next_hop = smtp:Mail.Example.ORG:25", C_DPATH, DF(hop.host), 0,
	  "Mail.Example.ORG" },
	{ B "next_hop = lmtp:127.0.0.1:24", C_DENUM, DF(hop.kind), HOP_LMTP,
	  NULL },
	{ B "next_hop = lmtp:[::1]:24", C_DPATH, DF(hop.host), 0, "::1" },
	{ B "next_hop = lmtp:unix:run/lmtp", C_DPATH, DF(hop.path), 0,
	  DIR "/run/lmtp" },
	{ B "next_hop = lmtp:unix:/run/lmtp", C_DENUM, DF(hop.kind), HOP_LMTP,
	  NULL },
	{ B "relayhost = 127.0.0.1:2530", C_STR, CF(relayhost.host), 0,
	  "127.0.0.1" },
	{ B "null_sender_rate = 3/90s", C_UINT, CF(null_sender_rate.window_ms),
	  90000, NULL },
	{ B "null_sender_rate = 3/90s", C_UINT, CF(null_sender_rate.count), 3,
	  NULL },
	{ B "harvest_uniform_reply = 550 5.7.1 No", C_STR,
	  CF(harvest_uniform_reply), 0, "550 5.7.1 No" },
	{ B "harvest_tarpit_max = 2s", C_UINT, CF(harvest_tarpit_max_ms), 2000,
	  NULL },
};

static void
good_check_domain(const struct good_case *c, const char *dom)
{
	const char	*f = dom + c->off;
	int		 v;

	switch (c->kind) {
	case C_DENUM:
		memcpy(&v, f, sizeof(v));
		assert_int_equal(v, c->num);
		break;
	case C_DPATH:
		assert_string_equal(*(char *const *)f, c->str);
		break;
	case C_DSTR:
		assert_string_equal(f, c->str);
		break;
	default:
		fail_msg("bad kind %d", c->kind);
	}
}

static void
good_check(const struct good_case *c, const struct config *cfg)
{
	const char	*f = (const char *)cfg + c->off;
	int		 v;

	switch (c->kind) {
	case C_UINT:
		assert_int_equal(*(const unsigned *)f, c->num);
		break;
	case C_U64:
		assert_int_equal(*(const uint64_t *)f, c->num);
		break;
	case C_BOOL:
		assert_int_equal(*(const bool *)f, c->num != 0);
		break;
	case C_ENUM:
		memcpy(&v, f, sizeof(v));
		assert_int_equal(v, c->num);
		break;
	case C_STR:
	case C_PATH:
		assert_string_equal(*(char *const *)f, c->str);
		break;
	case C_NCIDR:
		assert_int_equal(((const struct cidr_list *)f)->n, c->num);
		break;
	default:
		good_check_domain(c, (const char *)&cfg->dflt);
		assert_true(cfg->ndomains > 0);
		good_check_domain(c, (const char *)&cfg->domains[0]);
	}
}

static void
test_conf_good_values(void **state)
{
	struct config	*cfg;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
		cfg = load_ok(good_cases[i].text);
		good_check(&good_cases[i], cfg);
		conf_unref(cfg);
	}
}

struct bad_case {
	const char	*text;
	unsigned	 line;
	const char	*msg;		/* exact; a final '*' matches a prefix */
};

#define BAD_DELIM	"cannot be a delimiter (any printable character " \
			"but '@', '\"' and space)"
#define BAD_LISTEN	"is not ADDRESS:PORT with a port 1-65535 " \
			"(e.g. 127.0.0.1:2525 or [::1]:2525)"
#define BAD_HOST	"is not a valid host name (letters, digits, '-' " \
			"and '.', at most 255)"
#define BAD_NET		"is not a network like 10.0.0.0/8 or 2001:db8::/32"
#define BAD_DUR		"expected a duration like 500ms, 30s, 5m, 1h or " \
			"1d (a bare number is seconds), got "
#define PER_DOMAIN	"cannot be set per domain; global keys go before " \
			"the first [domain] section"

static const struct bad_case bad_cases[] = {
	/* lines and keys */
	{ B "max_recipients", 3, "expected 'key = value', got "
	  "'max_recipients'" },
	{ B "= 5", 3, "missing key before '='" },
	{ B "foo = bar", 3, "unknown key 'foo'" },
	{ "# c\n\n  # c\n" B "Max_Recipients = 5", 6,
	  "unknown key 'Max_Recipients'; did you mean 'max_recipients'?" },
	/* a typo: the one key close enough, never a far or tied guess */
	{ B "unknown_recipeint = reject", 3, "unknown key "
	  "'unknown_recipeint'; did you mean 'unknown_recipient'?" },
	{ B "max_recipient = 5", 3,
	  "unknown key 'max_recipient'; did you mean 'max_recipients'?" },
	{ B "harvest_treshold = 5", 3, "unknown key 'harvest_treshold'; "
	  "did you mean 'harvest_threshold'?" },
	{ B "lisen = 127.0.0.1:25", 3,
	  "unknown key 'lisen'; did you mean 'listen'?" },
	{ B "colour = blue", 3, "unknown key 'colour'" },
	{ B "max_size = 5", 3, "unknown key 'max_size'" },
	{ B "max_recipients = 5 # five", 3,
	  "max_recipients: expected a whole number, got '5 # five'" },
	{ B "max_recipients = 5\nmax_recipients = 6", 4,
	  "duplicate key 'max_recipients' (first set on line 3)" },
	{ B "log_level = info\x01", 3, "control character \\x01 in column 17" },
	{ B "log_level = in\rfo", 3, "control character \\x0d in column 15" },
	{ B "hostname = \xff", 3, "hostname: '\\xff' " BAD_HOST },
	/* each key */
	{ B "hostname = mx_1.example.org", 3,
	  "hostname: 'mx_1.example.org' " BAD_HOST },
	{ B "hostname = mx.example.org.", 3,
	  "hostname: 'mx.example.org.' " BAD_HOST },
	{ B "hostname =", 3, "hostname: '' " BAD_HOST },
	{ B "hostname = -mx.org", 3, "hostname: '-mx.org' " BAD_HOST },
	{ B "hostname = mx..org", 3, "hostname: 'mx..org' " BAD_HOST },
	{ B "hostname = a.b c", 3, "hostname: 'a.b c' " BAD_HOST },
	{ B "listen =", 3, "listen: at least one address is required" },
	{ B "listen = 127.0.0.1", 3, "listen: '127.0.0.1' " BAD_LISTEN },
	{ B "listen = 127.0.0.1:0", 3, "listen: '127.0.0.1:0' " BAD_LISTEN },
	{ B "listen = 127.0.0.1:65536", 3, "listen: '127.0.0.1:65536' "
	  BAD_LISTEN },
	{ B "listen = 127.0.0.1:+25", 3, "listen: '127.0.0.1:+25' "
	  BAD_LISTEN },
	{ B "listen = ::1:25", 3, "listen: '::1:25' " BAD_LISTEN },
	{ B "listen = [::1]25", 3, "listen: '[::1]25' " BAD_LISTEN },
	{ B "listen = [127.0.0.1]:25", 3, "listen: '[127.0.0.1]:25' "
	  BAD_LISTEN },
	{ B "listen = localhost:25", 3, "listen: 'localhost:25' " BAD_LISTEN },
	{ B "listen = 127.0.0.1:25,", 3, "listen: '' " BAD_LISTEN },
	{ B "listen = 127.0.0.1:25, 127.0.0.1:025", 3,
	  "listen: '127.0.0.1:025' is listed twice" },
	{ B "spool =", 3, "spool: the path is empty" },
	{ "directory = file:u\ndomains =", 2,
	  "domains: at least one domain is required" },
	{ "directory = file:u\ndomains = a..b", 2,
	  "domains: 'a..b' is not a valid domain name" },
	{ "directory = file:u\ndomains = a.org, A.ORG.", 2,
	  "domains: 'A.ORG.' is listed twice" },
	{ "directory = file:u\ndomains = a.org,", 2,
	  "domains: '' is not a valid domain name" },
	{ "directory = file:u\ndomains = a.org..", 2,
	  "domains: 'a.org..' is not a valid domain name" },
	{ "directory = file:u\ndomains = .", 2,
	  "domains: '.' is not a valid domain name" },
	{ "directory = file:u\ndomains = a-.org", 2,
	  "domains: 'a-.org' is not a valid domain name" },
	{ "directory = file:u\ndomains = a_b.org", 2,
	  "domains: 'a_b.org' is not a valid domain name" },
	{ "directory = file:u\ndomains = a.org b.org", 2,
	  "domains: 'a.org b.org' is not a valid domain name" },
	{ "directory = file:u\ndomains = "
	  "a234567890123456789012345678901234567890123456789012345678901234.org",
	  2, "domains: 'a2345678901234567890123456789012345678901234567890"
	  "12345678901234...' is not a valid domain name" },
	{ "domains = a.org\ndirectory = ldap://ldap.example.org", 2,
	  "directory: write `ldap` here and the servers in ldap_uri, got "
	  "'ldap://ldap.example.org'" },
	{ "domains = a.org\ndirectory = users", 2,
	  "directory: expected file:PATH, hashed:PATH or ldap, got 'users'" },
	{ "domains = a.org\ndirectory = file:u,", 2,
	  "directory: empty or over-long entry in the list" },
	{ "domains = a.org\ndirectory = file:u, ,hashed:h", 2,
	  "directory: empty or over-long entry in the list" },
	{ "domains = a.org\ndirectory = file:a,file:b,file:c,file:d,file:e", 2,
	  "directory: more than 4 back-ends" },
	{ "domains = a.org\ndirectory = file:u, nis:x", 2,
	  "directory: unsupported back-end 'nis' (supported: file, hashed, ldap)" },
	{ "domains = a.org\ndirectory = file:", 2,
	  "directory: the path is empty" },
	{ "domains = a.org\ndirectory =", 2, "directory: required" },
	{ B "relay_networks = 10.0.0.0/33", 3,
	  "relay_networks: '10.0.0.0/33' " BAD_NET },
	{ B "relay_networks = 10.0.0.0/8, bogus , ::1", 3,
	  "relay_networks: 'bogus ' " BAD_NET },
	{ B "unknown_recipient = x", 3,
	  "unknown_recipient: expected reject, discard or bounce, got 'x'" },
	{ B "next_hop = smtp:relay.example.org", 3, "next_hop: expected "
	  "HOST:PORT (e.g. mail.example.org:25 or [::1]:24), got "
	  "'relay.example.org'" },
	{ B "next_hop = smtp:relay..example.org:25", 3, "next_hop: expected "
	  "HOST:PORT (e.g. mail.example.org:25 or [::1]:24), got "
	  "'relay..example.org:25'" },
	{ B "next_hop = lmtp:[::1:24", 3, "next_hop: expected "
	  "HOST:PORT (e.g. mail.example.org:25 or [::1]:24), got "
	  "'[::1:24'" },
	{ B "next_hop = smtp:a.org:65536", 3, "next_hop: expected "
	  "HOST:PORT (e.g. mail.example.org:25 or [::1]:24), got "
	  "'a.org:65536'" },
	{ B "next_hop = /var/mail", 3,
	  "next_hop: expected maildir:DIR, smtp:HOST:PORT, lmtp:HOST:PORT or "
	  "lmtp:unix:PATH, got '/var/mail'" },
	{ B "relayhost = nohost", 3, "relayhost: expected "
	  "HOST:PORT (e.g. mail.example.org:25 or [::1]:24), got 'nohost'" },
	{ B "null_sender_rate = 10", 3, "null_sender_rate: expected "
	  "COUNT/DURATION like 10/10m (count 1 to 1000000, duration 1s to 7d),"
	  " got '10'" },
	{ B "null_sender_rate = 0/1m", 3, "null_sender_rate: expected "
	  "COUNT/DURATION like 10/10m (count 1 to 1000000, duration 1s to 7d),"
	  " got '0/1m'" },
	{ B "harvest_uniform_reply = 250 2.0.0 ok", 3, "harvest_uniform_reply: "
	  "expected a 4xx or 5xx reply with an enhanced status code, like "
	  "'450 4.7.1 Try again later', got '250 2.0.0 ok'" },
	{ B "harvest_uniform_reply = 450 5.7.1 mismatch", 3,
	  "harvest_uniform_reply: expected a 4xx or 5xx reply with an enhanced "
	  "status code, like '450 4.7.1 Try again later', got "
	  "'450 5.7.1 mismatch'" },
	{ B "next_hop = maildir:", 3, "next_hop: the path is empty" },
	{ B "recipient_delimiter = 123456789", 3,
	  "recipient_delimiter: at most 8 characters, got '123456789'" },
	{ B "recipient_delimiter = +@", 3, "recipient_delimiter: '@' "
	  BAD_DELIM },
	{ B "recipient_delimiter = + -", 3, "recipient_delimiter: ' ' "
	  BAD_DELIM },
	{ B "recipient_delimiter = \"", 3, "recipient_delimiter: '\"' "
	  BAD_DELIM },
	{ B "recipient_delimiter = \xc3\xa9", 3,
	  "recipient_delimiter: '\\xc3' " BAD_DELIM },
	/* K, M, G, T are powers of 1024; "MB" would be misread by someone */
	{ B "max_message_size = 50MB", 3, SIZE_WANT("max_message_size")
	  "'50MB'" },
	{ B "max_message_size = 1kb", 3, SIZE_WANT("max_message_size")
	  "'1kb'" },
	{ B "max_message_size = 2 GB", 3, SIZE_WANT("max_message_size")
	  "'2 GB'" },
	{ B "max_message_size = 100B", 3, SIZE_WANT("max_message_size")
	  "'100B'" },
	{ B "max_message_size = 512", 3,
	  "max_message_size: '512' is below the minimum 1K" },
	{ B "max_message_size = 3G", 3,
	  "max_message_size: '3G' is above the maximum 2G" },
	{ B "max_message_size = 2049M", 3,
	  "max_message_size: '2049M' is above the maximum 2G" },
	{ B "max_message_size = 18014398509481984G", 3,
	  "max_message_size: '18014398509481984G' is above the maximum 2G" },
	{ B "max_message_size = 99999999999999999999999", 3,
	  "max_message_size: '99999999999999999999999' is above the "
	  "maximum 2G" },
	{ B "max_message_size = 10T", 3,
	  "max_message_size: '10T' is above the maximum 2G" },
	{ B "max_message_size = 10P", 3, SIZE_WANT("max_message_size")
	  "'10P'" },
	{ B "spool_min_free = 1025T", 3,
	  "spool_min_free: '1025T' is above the maximum 1024T" },
	{ B "spool_min_free = lots", 3, SIZE_WANT("spool_min_free") "'lots'" },
	{ B "max_message_size = -1", 3, SIZE_WANT("max_message_size") "'-1'" },
	{ B "max_message_size = M", 3, SIZE_WANT("max_message_size") "'M'" },
	{ B "max_recipients = 0", 3,
	  "max_recipients: '0' is below the minimum 1" },
	{ B "max_recipients = 100001", 3,
	  "max_recipients: '100001' is above the maximum 100000" },
	{ B "max_recipients = 10x", 3,
	  "max_recipients: expected a whole number, got '10x'" },
	{ B "max_recipients = -5", 3,
	  "max_recipients: expected a whole number, got '-5'" },
	{ B "max_recipients =", 3,
	  "max_recipients: expected a whole number, got ''" },
	{ B "log_level = verbose", 3, "log_level: expected error, warning, "
	  "info or debug, got 'verbose'" },
	{ B "localpart_case_sensitive = maybe", 3,
	  "localpart_case_sensitive: expected yes or no, got 'maybe'" },
	{ B "max_errors_per_session = 1001", 3,
	  "max_errors_per_session: '1001' is above the maximum 1000" },
	{ B "max_errors_per_session = 0", 3,
	  "max_errors_per_session: '0' is below the minimum 1" },
	{ B "greeting_delay = 61s", 3,
	  "greeting_delay: '61s' is above the maximum 1m" },
	{ B "greeting_delay = 5 minutes", 3,
	  "greeting_delay: " BAD_DUR "'5 minutes'" },
	{ B "command_timeout = 500ms", 3,
	  "command_timeout: '500ms' is below the minimum 1s" },
	{ B "command_timeout = 2h", 3,
	  "command_timeout: '2h' is above the maximum 1h" },
	{ B "data_timeout = 0", 3, "data_timeout: '0' is below the minimum 1s" },
	{ B "retry_min = 2d", 3, "retry_min: '2d' is above the maximum 1d" },
	{ B "retry_min = 1w", 3, "retry_min: " BAD_DUR "'1w'" },
	/* sections */
	{ B "[domain example.org", 3, "malformed section header "
	  "'[domain example.org'; expected [domain NAME]" },
	{ B "[domains example.org]", 3, "malformed section header "
	  "'[domains example.org]'; expected [domain NAME]" },
	{ B "[domain]", 3, "malformed section header '[domain]'; expected "
	  "[domain NAME]" },
	{ B "[domain a b]", 3, "malformed section header '[domain a b]'; "
	  "expected [domain NAME]" },
	{ B "[domain example.org] # x", 3, "malformed section header "
	  "'[domain example.org] # x'; expected [domain NAME]" },
	{ B "[", 3, "malformed section header '['; expected [domain NAME]" },
	{ B "[]", 3, "malformed section header '[]'; expected [domain NAME]" },
	{ B "[domain example.org]]", 3, "malformed section header "
	  "'[domain example.org]]'; expected [domain NAME]" },
	{ B "[domain\texample.org]x]", 3, "malformed section header "
	  "'[domain\\x09example.org]x]'; expected [domain NAME]" },
	{ B "[domain example.org..]", 3,
	  "invalid domain name 'example.org..' in section header" },
	{ B "[domain bad..name]", 3,
	  "invalid domain name 'bad..name' in section header" },
	{ B "[domain other.org]", 3,
	  "domain section 'other.org' is not listed in domains" },
	{ B "[domain example.org]\n[domain EXAMPLE.ORG.]", 4,
	  "duplicate section for domain 'example.org' (first on line 3)" },
	{ B "[domain example.org]\nmax_recipients = 5", 4,
	  "key max_recipients " PER_DOMAIN },
	{ B "[domain example.org]\nhostname = x", 4,
	  "key hostname " PER_DOMAIN },
	{ B "[domain example.org]\nnext_hop = smtp:x", 4,
	  "next_hop: expected HOST:PORT (e.g. mail.example.org:25 or "
	  "[::1]:24), got 'x'" },
	{ B "[domain example.org]\nnext_hop = maildir:a\nnext_hop = maildir:b",
	  5, "duplicate key 'next_hop' (first set on line 4)" },
	{ B "unknown_recipient = reject\n[domain example.org]\n"
	  "unknown_recipient = maybe", 5,
	  "unknown_recipient: expected reject, discard or bounce, got "
	  "'maybe'" },
	/* missing required keys: not tied to a line */
	{ "domains = a.org", 0, "directory: required" },
	{ "directory = file:u", 0, "domains: at least one domain is required" },
};

static bool
msg_matches(const char *want, const char *got)
{
	size_t	n = strlen(want);

	if (n > 0 && want[n - 1] == '*')
		return strncmp(want, got, n - 1) == 0;
	return strcmp(want, got) == 0;
}

static void
test_conf_bad_values(void **state)
{
	const struct bad_case	*c;
	struct config		*cfg;
	struct errs		 e;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		c = &bad_cases[i];
		cfg = load(c->text, &e);
		if (cfg != NULL)
			fail_msg("config should fail:\n%s", c->text);
		if (e.n != 1 || e.line[0] != c->line ||
		    !msg_matches(c->msg, e.msg[0]))
			fail_msg("config:\n%s\nwant 1 error, line %u: %s\n"
			    "got %zu, first line %u: %s", c->text, c->line,
			    c->msg, e.n, e.line[0], e.msg[0]);
		assert_string_equal(e.file, "t.conf");
	}
}

static void
test_conf_sections(void **state)
{
	static const struct {
		const char		*name;
		enum unknown_policy	 unknown;
		const char		*delim;
		const char		*hop;
	} want[] = {
		{ "example.org", UNKNOWN_DISCARD, "-", DIR "/mail" },
		{ "example.net", UNKNOWN_REJECT, "", DIR "/mail" },
		{ "example.com", UNKNOWN_DISCARD, "-", "/srv/com" },
	};
	struct config	*cfg;
	size_t		 i;

	(void)state;
	cfg = load_ok(
	    "domains = example.org, Example.NET, example.com.\n"
	    "directory = file:users\n"
	    "unknown_recipient = discard\n"
	    "recipient_delimiter = -\n"
	    "next_hop = maildir:mail\n"
	    "\n"
	    "[domain example.NET.]\n"
	    "# a comment inside a section\n"
	    "unknown_recipient = reject\n"
	    "recipient_delimiter =\n"
	    "\t[ domain   example.com ]  \n"
	    "next_hop = maildir:/srv/com\n");
	assert_int_equal(cfg->ndomains, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(cfg->domains[i].name, want[i].name);
		assert_int_equal(cfg->domains[i].unknown, want[i].unknown);
		assert_string_equal(cfg->domains[i].delim, want[i].delim);
		assert_string_equal(cfg->domains[i].hop.path, want[i].hop);
		/* each domain owns its strings */
		assert_ptr_not_equal(cfg->domains[i].hop.path,
		    cfg->dflt.hop.path);
	}
	assert_null(cfg->dflt.name);
	assert_int_equal(cfg->dflt.unknown, UNKNOWN_DISCARD);
	assert_string_equal(cfg->dflt.delim, "-");
	assert_string_equal(cfg->dflt.hop.path, DIR "/mail");
	conf_unref(cfg);
}

static void
test_conf_relative_paths(void **state)
{
	static const struct {
		const char	*dir;
		const char	*spool;
	} cases[] = {
		{ "/", "/var/spool" },
		{ "/etc/mx/", "/etc/mx/var/spool" },
		{ "/etc/mx", "/etc/mx/var/spool" },
		{ NULL, "./var/spool" },
	};
	static const char text[] = B;
	struct config	*cfg;
	struct errs	 e;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		cfg = conf_load_mem(text, sizeof(text) - 1, "x", cases[i].dir,
		    errs_add, &e);
		assert_non_null(cfg);
		assert_string_equal(cfg->spool, cases[i].spool);
		conf_unref(cfg);
	}
}

/* conf_load: the folder of the file, through realpath, is the base. */
static void
test_conf_load_file(void **state)
{
	char		 tmpl[] = "/tmp/test_conf.XXXXXX", path[PATH_MAX];
	char		 real[PATH_MAX], want[PATH_MAX + 32];
	struct config	*cfg;
	struct errs	 e;
	FILE		*fp;

	(void)state;
	assert_non_null(mkdtemp(tmpl));
	assert_non_null(realpath(tmpl, real));
	(void)snprintf(path, sizeof(path), "%s/./mx.conf", tmpl);
	assert_non_null(fp = fopen(path, "w"));
	fputs(B "next_hop = maildir:mail\r\nspool = /abs/q\r\n", fp);
	fclose(fp);
	memset(&e, 0, sizeof(e));
	cfg = conf_load(path, errs_add, &e);
	assert_non_null(cfg);
	assert_string_equal(cfg->file, path);
	assert_string_equal(cfg->dirname, real);
	(void)snprintf(want, sizeof(want), "%s/users", real);
	assert_string_equal(cfg->directory.path, want);
	(void)snprintf(want, sizeof(want), "%s/mail", real);
	assert_string_equal(cfg->domains[0].hop.path, want);
	assert_string_equal(cfg->spool, "/abs/q");
	conf_unref(cfg);

	/* a folder is not a config file */
	memset(&e, 0, sizeof(e));
	assert_null(conf_load(tmpl, errs_add, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 0);
	assert_string_equal(e.msg[0], "cannot read: Is a directory");

	assert_int_equal(unlink(path), 0);
	memset(&e, 0, sizeof(e));
	assert_null(conf_load(path, errs_add, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 0);
	assert_string_equal(e.file, path);
	assert_string_equal(e.msg[0], "cannot open: No such file or directory");
	assert_int_equal(rmdir(tmpl), 0);
}

static void
test_conf_load_too_large(void **state)
{
	char		 tmpl[] = "/tmp/test_conf.XXXXXX", path[PATH_MAX];
	char		*big;
	struct errs	 e;
	FILE		*fp;

	(void)state;
	assert_non_null(big = malloc(CONF_FILE_MAX + 1));
	memset(big, '\n', CONF_FILE_MAX + 1);
	memset(&e, 0, sizeof(e));
	assert_null(conf_load_mem(big, CONF_FILE_MAX + 1, "big", "/",
	    errs_add, &e));
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0], "the file is larger than 1048576 bytes");

	assert_non_null(mkdtemp(tmpl));
	(void)snprintf(path, sizeof(path), "%s/big.conf", tmpl);
	assert_non_null(fp = fopen(path, "w"));
	assert_int_equal(fwrite(big, 1, CONF_FILE_MAX + 1, fp),
	    CONF_FILE_MAX + 1);
	fclose(fp);
	memset(&e, 0, sizeof(e));
	assert_null(conf_load(path, errs_add, &e));
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0],
	    "the file is too large (over 1048576 bytes)");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(tmpl), 0);
	free(big);
}

/* CONF_LINE_MAX bytes is fine, one more is an error; NUL is an error. */
static void
test_conf_line_limits(void **state)
{
	char		*text;
	size_t		 n;
	struct config	*cfg;
	struct errs	 e;

	(void)state;
	n = CONF_LINE_MAX + 1;
	assert_non_null(text = malloc(n + sizeof(B) + 1));
	memset(text, ' ', n);
	text[0] = '#';
	memcpy(text + CONF_LINE_MAX, "\n" B, sizeof(B) + 1);
	cfg = load_ok(text);
	conf_unref(cfg);

	memset(text, ' ', n);
	text[0] = '#';
	memcpy(text + n, "\n" B, sizeof(B) + 1);
	assert_null(load(text, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 1);
	assert_string_equal(e.msg[0], "line is longer than 4096 bytes");
	free(text);

	memset(&e, 0, sizeof(e));
	assert_null(conf_load_mem(B "spool = a\0b\n", sizeof(B) + 11, "t",
	    "/", errs_add, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 3);
	assert_string_equal(e.msg[0], "control character \\x00 in column 10");
}

/* Every error is reported, in line order; file-wide ones first. */
static void
test_conf_multiple_errors(void **state)
{
	static const struct {
		unsigned	 line;
		const char	*msg;
	} want[] = {
		{ 0, "directory: required" },
		{ 1, "max_recipients: '0' is below the minimum 1" },
		{ 3, "unknown key 'colour'" },
		{ 4, "log_level: expected error, warning, info or debug, "
		  "got 'loud'" },
		{ 5, "domain section 'other.org' is not listed in domains" },
		{ 6, "unknown_recipient: expected reject, discard or bounce, "
		    "got 'x'" },
		{ 7, "key spool " PER_DOMAIN },
		{ 9, "duplicate section for domain 'a.org' (first on line 8)" },
		{ 10, "next_hop: expected maildir:DIR, smtp:HOST:PORT, "
		    "lmtp:HOST:PORT or lmtp:unix:PATH, got 'x'" },
	};
	struct errs	e;
	size_t		i;

	(void)state;
	assert_null(load(
	    "max_recipients = 0\n"		/* 1 */
	    "domains = a.org\n"
	    "colour = blue\n"
	    "log_level = loud\n"
	    "[domain other.org]\n"		/* 5 */
	    "unknown_recipient = x\n"
	    "spool = x\n"
	    "[domain a.org]\n"			/* 8 */
	    "[domain A.org]\n"			/* 9: a second one */
	    "next_hop = x\n", &e));		/* 10: checked all the same */
	if (e.n != sizeof(want) / sizeof(want[0]))
		fail_msg("got %zu errors, first: %s", e.n, e.msg[0]);
	for (i = 0; i < e.n; i++) {
		if (e.line[i] != want[i].line ||
		    strcmp(e.msg[i], want[i].msg) != 0)
			fail_msg("error %zu: line %u: %s\nwant line %u: %s",
			    i, e.line[i], e.msg[i], want[i].line, want[i].msg);
	}

	/* empty file: both required keys */
	assert_null(load("", &e));
	assert_int_equal(e.n, 2);
	assert_string_equal(e.msg[0], "domains: at least one domain is "
	    "required");
	assert_string_equal(e.msg[1], "directory: required");
}

static void
test_conf_listen(void **state)
{
	struct config			*cfg;
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	(void)state;
	cfg = load_ok(B "listen = 127.0.0.1:2525, [::1]:25,0.0.0.0:65535");
	assert_int_equal(cfg->nlisten, 3);
	assert_string_equal(cfg->listen[0].text, "127.0.0.1:2525");
	assert_string_equal(cfg->listen[1].text, "[::1]:25");
	assert_string_equal(cfg->listen[2].text, "0.0.0.0:65535");
	sin6 = (const struct sockaddr_in6 *)&cfg->listen[1].ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(cfg->listen[1].sslen, sizeof(*sin6));
	assert_int_equal(ntohs(sin6->sin6_port), 25);
	assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	sin = (const struct sockaddr_in *)&cfg->listen[2].ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 65535);
	assert_int_equal(sin->sin_addr.s_addr, 0);
	conf_unref(cfg);
}

static void
test_conf_domain_lookup(void **state)
{
	static const struct {
		const char	*q;
		size_t		 len;
		const char	*want;	/* NULL: not ours */
	} cases[] = {
		{ "example.org", 11, "example.org" },
		{ "EXAMPLE.Org", 11, "example.org" },
		{ "example.org.", 12, "example.org" },
		{ "example.org..", 13, NULL },
		{ "b.example", 9, "b.example" },
		{ "sub.example.org", 15, NULL },
		{ "example.or", 10, NULL },
		{ "xample.org", 10, NULL },
		{ "example.orgx", 11, "example.org" },	/* not NUL-ended */
		{ "example.org", 10, NULL },
		{ "", 0, NULL },
		{ ".", 1, NULL },
		{ "example.\0rg", 11, NULL },
	};
	const struct domain_conf	*d;
	struct config			*cfg;
	size_t				 i;

	(void)state;
	cfg = load_ok("domains = Example.org., b.example\n"
	    "directory = file:u\n");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d = conf_domain(cfg, cases[i].q, cases[i].len);
		if (cases[i].want == NULL && d != NULL)
			fail_msg("%s: want NULL, got %s", cases[i].q, d->name);
		if (cases[i].want != NULL && (d == NULL ||
		    strcmp(d->name, cases[i].want) != 0))
			fail_msg("%s: want %s", cases[i].q, cases[i].want);
	}
	assert_ptr_equal(conf_domain(cfg, "b.example", 9), &cfg->domains[1]);
	assert_null(conf_domain(NULL, "b.example", 9));
	conf_unref(cfg);
}

/*
 * U-labels in `domains` and [domain] headers (RFC 6531 3.3): stored in NFC
 * and lower case, found in that form; bad UTF-8, a bad label, or a name
 * longer in NFC than as written is an error with its line; envelope_syntax
 * takes strict or lenient, globally only.
 */
static void
test_conf_utf8_domains(void **state)
{
	static const char *const bad[] = {
		"domains = b\xfc" "cher.test\ndirectory = file:u\n",
		"domains = b\xc3\xbc" "cher-.test\ndirectory = file:u\n",
		"domains = b\xc3\xbc" "cher..test\ndirectory = file:u\n",
		"domains = b\xc3\xbc_x.test\ndirectory = file:u\n",
		"domains = \xe0\xa5\x98.test\ndirectory = file:u\n",
		"domains = x.test\ndirectory = file:u\nenvelope_syntax = loose\n",
	};
	const struct domain_conf	*d;
	struct config			*cfg;
	struct errs			 e;
	size_t				 i;

	(void)state;
	/* "BÜCHER.test" in NFD, and a section naming it in NFC */
	cfg = load_ok("domains = example.org, BU\xcc\x88" "CHER.test\n"
	    "directory = file:u\nenvelope_syntax = lenient\n"
	    "[domain b\xc3\xbc" "cher.test]\nunknown_recipient = discard\n");
	assert_true(cfg->envelope_lenient);
	assert_string_equal(cfg->domains[1].name, "b\xc3\xbc" "cher.test");
	d = conf_domain(cfg, "b\xc3\xbc" "cher.test", 12);
	assert_ptr_equal(d, &cfg->domains[1]);
	assert_int_equal(d->unknown, UNKNOWN_DISCARD);
	assert_null(conf_domain(cfg, "bucher.test", 11));
	conf_unref(cfg);
	cfg = load_ok("domains = x.test\ndirectory = file:u\n");
	assert_false(cfg->envelope_lenient);
	conf_unref(cfg);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("bad %zu\n", i);
		assert_null(load(bad[i], &e));
		assert_true(e.n >= 1);
		assert_int_equal(e.line[0], i == 5 ? 3 : 1);
	}
}

#define REF_THREADS	4
#define REF_ROUNDS	20000

static void *
ref_worker(void *arg)
{
	struct config	*cfg = arg;
	int		 i;

	for (i = 0; i < REF_ROUNDS; i++)
		conf_unref(conf_ref(cfg));
	return NULL;
}

static void
test_conf_refcount(void **state)
{
	pthread_t	 t[REF_THREADS];
	struct config	*cfg;
	int		 i;

	(void)state;
	cfg = load_ok(B);
	assert_ptr_equal(conf_ref(cfg), cfg);
	assert_int_equal(cfg->refs, 2);
	for (i = 0; i < REF_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, ref_worker, cfg),
		    0);
	for (i = 0; i < REF_THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(cfg->refs, 2);
	conf_unref(cfg);
	assert_int_equal(cfg->refs, 1);
	conf_unref(cfg);		/* freed: ASan would see a leak if not */
	conf_unref(NULL);
}

/* Edit distance: swaps of neighbours cost one, case is ignored. */
static void
test_conf_edit_distance(void **state)
{
	static const struct {
		const char	*a, *b;
		unsigned	 d;
	} cases[] = {
		{ "", "", 0 }, { "abc", "abc", 0 }, { "abc", "ABC", 0 },
		{ "", "abc", 3 }, { "abc", "", 3 }, { "abc", "abd", 1 },
		{ "abc", "acb", 1 }, { "ab", "ba", 1 }, { "abc", "ab", 1 },
		{ "ab", "abc", 1 }, { "ca", "abc", 3 },	/* no double edit */
		{ "kitten", "sitting", 3 },
		{ "unknown_recipeint", "unknown_recipient", 1 },
		{ "harvest_treshold", "harvest_threshold", 1 },
	};
	char	longname[CONF_SUGGEST_LEN + 2];
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (conf_edit_distance(cases[i].a, cases[i].b) != cases[i].d)
			fail_msg("distance(%s, %s) = %u, want %u", cases[i].a,
			    cases[i].b, conf_edit_distance(cases[i].a,
			    cases[i].b), cases[i].d);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(conf_edit_distance(longname, "a"), UINT_MAX);
	assert_null(conf_key_nearest(longname));
	assert_string_equal(conf_key_nearest("MAX_RECIPIENTS"),
	    "max_recipients");
	assert_string_equal(conf_key_nearest("pidfile"), "pid_file");
	assert_null(conf_key_nearest("x"));
	assert_true(conf_key_known("pid_file"));
	assert_false(conf_key_known("pidfile"));
}

static char *
print_conf(const struct config *cfg, bool nondefault, char **keys,
    size_t nkeys)
{
	char	*out = NULL;
	size_t	 len = 0;
	FILE	*fp;

	assert_non_null(fp = open_memstream(&out, &len));
	conf_print(fp, cfg, nondefault, keys, nkeys);
	fclose(fp);
	return out;
}

/* `mxgate config`: every key, or -n what differs, domains too. */
static void
test_conf_print(void **state)
{
	struct config	*cfg;
	char		*out, *keys[] = { "max_recipients", "domains" };
	char		*dom[] = { "unknown_recipient" };

	(void)state;
	cfg = load_ok("domains = example.org, b.org\ndirectory = file:users\n"
	    "max_message_size = 10M\nmax_recipients = 100\n"
	    "command_timeout = 300\nlisten = 127.0.0.1:2525 , [::1]:25\n"
	    "unknown_recipient = discard\n"
	    "[domain b.org]\nunknown_recipient = discard\n"
	    "[domain example.org]\nunknown_recipient = reject\n");
	out = print_conf(cfg, false, NULL, 0);
	assert_memory_equal(out, "hostname = ", 11);
	assert_non_null(strstr(out, "\nmax_recipients = 100\n"));
	assert_non_null(strstr(out, "\npid_file =\n"));
	assert_non_null(strstr(out, "\nlog_level = info\n"));
	assert_non_null(strstr(out, "\n[domain example.org]\n"
	    "unknown_recipient = reject\nnext_hop = maildir:var/mail\n"));
	assert_non_null(strstr(out, "\n[domain b.org]\n"
	    "unknown_recipient = discard\n"));
	free(out);
	/* -n: 100 and 300 s (5m) are the defaults; b.org's section says what
	 * the global value says, example.org's differs from it */
	out = print_conf(cfg, true, NULL, 0);
	assert_string_equal(out, "listen = 127.0.0.1:2525 , [::1]:25\n"
	    "domains = example.org, b.org\ndirectory = file:users\n"
	    "unknown_recipient = discard\nmax_message_size = 10M\n"
	    "\n[domain example.org]\nunknown_recipient = reject\n");
	free(out);
	out = print_conf(cfg, false, keys, 2);
	assert_string_equal(out, "max_recipients = 100\n"
	    "domains = example.org, b.org\n");
	free(out);
	out = print_conf(cfg, true, dom, 1);
	assert_string_equal(out, "unknown_recipient = discard\n"
	    "\n[domain example.org]\nunknown_recipient = reject\n");
	free(out);
	conf_unref(cfg);
}

struct diffs {
	char	text[512];
};

static void
diff_add(void *arg, const char *key, const char *domain)
{
	struct diffs	*d = arg;
	size_t		 n = strlen(d->text);

	(void)snprintf(d->text + n, sizeof(d->text) - n, "%s%s%s%s ", key,
	    domain ? "[" : "", domain ? domain : "", domain ? "]" : "");
}

/* The reload report's list: values compared parsed, not as written. */
/*
 * conf_value_same() parses both texts into scratch fields and compares
 * them whole: the fingerprint list is the largest plain field, so two
 * lists that differ only in their third pin (past the first 64 octets)
 * must differ; and every key's default equals itself.
 */
static void
test_conf_value_same_every_type(void **state)
{
#define PIN(c)	"sha256:" c c c c c c c c c c c c c c c c c c c c c c c c \
		c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
		c c c c c c c c c c
	static const char	abc[] = PIN("a") ", " PIN("b") ", " PIN("c"),
				abd[] = PIN("a") ", " PIN("b") ", " PIN("d");
#undef PIN
	int			i;

	(void)state;
	i = conf_key_find("next_hop_tls_fingerprint");
	assert_true(i >= 0);
	assert_true(conf_value_same(&conf_keys[i], abc, abc));
	assert_false(conf_value_same(&conf_keys[i], abc, abd));
	assert_false(conf_value_same(&conf_keys[i], abc, ""));
	for (i = 0; i < CONF_NKEYS; i++) {
		const char *d = conf_keys[i].dflt ? conf_keys[i].dflt : "";

		assert_true(conf_value_same(&conf_keys[i], d, d));
	}
}

static void
test_conf_diff(void **state)
{
	struct config	*a, *b;
	struct diffs	 d;

	(void)state;
	a = load_ok(B "max_message_size = 10M\nrelay_networks = 10.0.0.0/8,"
	    "::1\n[domain example.org]\nunknown_recipient = bounce\n");
	b = load_ok(B "max_message_size = 10240K\nrelay_networks = "
	    "10.0.0.0/8 , ::1\ncommand_timeout = 1m\n");
	memset(&d, 0, sizeof(d));
	conf_diff(a, b, diff_add, &d);
	assert_string_equal(d.text, "command_timeout "
	    "unknown_recipient[example.org] ");
	memset(&d, 0, sizeof(d));
	conf_diff(a, a, diff_add, &d);
	assert_string_equal(d.text, "");
	conf_unref(a);
	conf_unref(b);
}

/* The roff key list names every key of the table, and nothing breaks
 * roff: no line starts with a '.' that is not one of ours. */
static void
test_conf_man_keys(void **state)
{
	char	*out = NULL, *line, want[128];
	size_t	 len = 0, i, ntp = 0;
	FILE	*fp;

	(void)state;
	assert_non_null(fp = open_memstream(&out, &len));
	conf_man_keys(fp);
	fclose(fp);
	for (i = 0; i < CONF_NKEYS; i++) {
		(void)snprintf(want, sizeof(want), ".TP\n.B %s\n",
		    conf_keys[i].name);
		if (strstr(out, want) == NULL)
			fail_msg("man list lacks %s", conf_keys[i].name);
	}
	for (line = out; line != NULL && *line; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (*line == '.' && strncmp(line, ".TP\n", 4) != 0 &&
		    strncmp(line, ".B ", 3) != 0 &&
		    strncmp(line, ".br\n", 4) != 0)
			fail_msg("stray request: %.40s", line);
		ntp += strncmp(line, ".TP\n", 4) == 0;
	}
	assert_int_equal(ntp, CONF_NKEYS);
	assert_non_null(strstr(out, "Default: \\fB25M\\fR; global; size; "
	    "from \\fB1K\\fR to \\fB2G\\fR.\n"));
	assert_non_null(strstr(out, "Default: none (required); global"));
	assert_non_null(strstr(out, "Default: \\fBreject\\fR; per domain"));
	free(out);
}

static void
test_conf_default_path(void **state)
{
	(void)state;
	assert_int_equal(unsetenv("MXGATE_CONF"), 0);
	assert_string_equal(conf_default_path(), "/etc/mxgate/mxgate.conf");
	assert_int_equal(setenv("MXGATE_CONF", "", 1), 0);
	assert_string_equal(conf_default_path(), "/etc/mxgate/mxgate.conf");
	assert_int_equal(setenv("MXGATE_CONF", "/tmp/x.conf", 1), 0);
	assert_string_equal(conf_default_path(), "/tmp/x.conf");
	assert_int_equal(unsetenv("MXGATE_CONF"), 0);
}

static void
test_conf_dump_keys(void **state)
{
	static const char *const keys[] = {
		"hostname", "listen", "spool", "domains", "directory",
		"relay_networks", "unknown_recipient", "next_hop",
		"recipient_delimiter", "max_message_size", "max_recipients",
		"log_level", "localpart_case_sensitive",
		"max_errors_per_session", "greeting_delay", "command_timeout",
		"data_timeout", "retry_min",
	};
	char		*out = NULL, *p, want[64];
	size_t		 len = 0, i, ndom = 0;
	FILE		*fp;

	(void)state;
	assert_non_null(fp = open_memstream(&out, &len));
	conf_dump_keys(fp);
	fclose(fp);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		(void)snprintf(want, sizeof(want), "\n%s ", keys[i]);
		if (i > 0 && strstr(out, want) == NULL)
			fail_msg("dump lacks key %s", keys[i]);
	}
	assert_memory_equal(out, "hostname ", 9);
	for (p = out; (p = strstr(p, "per-domain")) != NULL; p++)
		ndom++;
	assert_int_equal(ndom, 7);	/* and next_hop_tls, _ca_file, _name,
					 * _fingerprint (issue 20) */
	(void)snprintf(want, sizeof(want), "\n%-25s = 100 ", "max_recipients");
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "; 1K to 2G\n"));
	assert_non_null(strstr(out, "; 1s to 1d\n"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_conf_good_values),
		cmocka_unit_test(test_conf_bad_values),
		cmocka_unit_test(test_conf_sections),
		cmocka_unit_test(test_conf_relative_paths),
		cmocka_unit_test(test_conf_load_file),
		cmocka_unit_test(test_conf_load_too_large),
		cmocka_unit_test(test_conf_line_limits),
		cmocka_unit_test(test_conf_multiple_errors),
		cmocka_unit_test(test_conf_listen),
		cmocka_unit_test(test_conf_domain_lookup),
		cmocka_unit_test(test_conf_utf8_domains),
		cmocka_unit_test(test_conf_refcount),
		cmocka_unit_test(test_conf_dump_keys),
		cmocka_unit_test(test_conf_edit_distance),
		cmocka_unit_test(test_conf_print),
		cmocka_unit_test(test_conf_diff),
		cmocka_unit_test(test_conf_value_same_every_type),
		cmocka_unit_test(test_conf_man_keys),
		cmocka_unit_test(test_conf_default_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
