/*
 * test_dnsbl.c - sender/dnsbl.c by table: the dnsbl_sites parser (good
 * and bad entries, bounds), query names (IPv4 reversed, IPv6 nibbles,
 * v4-mapped as IPv4, too long), answer classes and filters, the score
 * (weights, allowlists, error codes never listing), and the cache over a
 * fake resolver: a question asked once and shared, answers reused, the
 * deadline, cancel, a full set.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "sender/dnsbl.h"
#include "dns/dns_msg.h"

struct parse_case {
	const char	*text;
	int		 rc;
	size_t		 n, nzones;
	int		 w0;		/* weight of the first entry */
	const char	*why;		/* a word of the error */
};

static const struct parse_case parse_cases[] = {
	{ "", 0, 0, 0, 0, NULL },
	{ " , ,\t", 0, 0, 0, 0, NULL },
	{ "zen.example", 0, 1, 1, 1, NULL },
	{ "ZEN.Example.", 0, 1, 1, 1, NULL },
	{ "zen.example*2", 0, 1, 1, 2, NULL },
	{ "wl.example*-2", 0, 1, 1, -2, NULL },
	{ "wl.example*+3", 0, 1, 1, 3, NULL },
	{ "bl.example=127.0.0.2", 0, 1, 1, 1, NULL },
	{ "bl.example=127.0.0.[2..11]*1", 0, 1, 1, 1, NULL },
	{ "bl.example=127.0.[0..255].[1..255]*-2", 0, 1, 1, -2, NULL },
	{ "bl.example=127.0.0.[2;4;10..11]", 0, 1, 1, 1, NULL },
	{ "a.example b.example,c.example", 0, 3, 3, 1, NULL },
	/* one zone, two entries: asked once */
	{ "zen.example=127.0.0.[2..3]*3, zen.example=127.0.0.[10..11]*-1",
	  0, 2, 1, 3, NULL },
	{ "zen.example*0", -1, 0, 0, 0, "weight" },
	{ "zen.example*101", -1, 0, 0, 0, "weight" },
	{ "zen.example*", -1, 0, 0, 0, "weight" },
	{ "zen.example*2x", -1, 0, 0, 0, "weight" },
	{ "zen.example*--2", -1, 0, 0, 0, "weight" },
	{ "zen.example*2=127.0.0.2", -1, 0, 0, 0, "before" },
	{ "bl.example=127.0.0.256", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.2.5", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.[2..1]", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.[2..]", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.[2", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.[]", -1, 0, 0, 0, "filter" },
	{ "bl.example=127.0.0.0002", -1, 0, 0, 0, "filter" },
	{ "bl.example=", -1, 0, 0, 0, "filter" },
	{ "=127.0.0.2", -1, 0, 0, 0, "domain" },
	{ "bl..example", -1, 0, 0, 0, "domain" },
	{ ".bl.example", -1, 0, 0, 0, "domain" },
	{ "bl.exa!mple", -1, 0, 0, 0, "domain" },
	{ "*2", -1, 0, 0, 0, "domain" },
};

static void
test_dnsbl_parse_table(void **state)
{
	struct dnsbl_list	l;
	char			why[256];
	size_t			i;
	int			rc;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];

		why[0] = '\0';
		rc = dnsbl_list_parse(c->text, strlen(c->text), &l, why,
		    sizeof(why));
		if (rc != c->rc)
			fail_msg("\"%s\": rc %d, want %d (%s)", c->text, rc,
			    c->rc, why);
		if (rc == -1) {
			if (strstr(why, c->why) == NULL)
				fail_msg("\"%s\": why \"%s\" lacks \"%s\"",
				    c->text, why, c->why);
			continue;
		}
		if (l.n != c->n || l.nzones != c->nzones)
			fail_msg("\"%s\": %zu entries %zu zones", c->text, l.n,
			    l.nzones);
		if (l.n > 0 && l.site[0].weight != c->w0)
			fail_msg("\"%s\": weight %d", c->text,
			    l.site[0].weight);
	}
	assert_int_equal(dnsbl_list_parse("ZEN.Example.", 12, &l, NULL, 0), 0);
	assert_string_equal(l.site[0].zone, "zen.example");
}

static void
test_dnsbl_parse_bounds(void **state)
{
	struct dnsbl_list	l;
	char			text[DNSBL_TEXT_MAX + 64], why[256];
	size_t			n = 0, i;

	(void)state;
	for (i = 0; i < DNSBL_SITES_MAX; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, "l%zu.ex ",
		    i);
	assert_int_equal(dnsbl_list_parse(text, n, &l, why, sizeof(why)), 0);
	assert_int_equal(l.n, DNSBL_SITES_MAX);
	n += (size_t)snprintf(text + n, sizeof(text) - n, "one.more");
	assert_int_equal(dnsbl_list_parse(text, n, &l, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "more than"));
	/* a zone of DNSBL_ZONE_MAX bytes fits, one more does not */
	memset(text, 'a', sizeof(text));
	for (i = 63; i < DNSBL_ZONE_MAX; i += 64)
		text[i] = '.';
	assert_int_equal(dnsbl_list_parse(text, DNSBL_ZONE_MAX, &l, why,
	    sizeof(why)), 0);
	assert_int_equal(dnsbl_list_parse(text, DNSBL_ZONE_MAX + 1, &l, why,
	    sizeof(why)), -1);
	/* a label of 64 */
	memset(text, 'a', 64);
	memcpy(text + 64, ".ex", 3);
	assert_int_equal(dnsbl_list_parse(text, 64 + 3, &l, why,
	    sizeof(why)), -1);
	assert_int_equal(dnsbl_list_parse(text + 1, 63 + 3, &l, why,
	    sizeof(why)), 0);
	assert_int_equal(dnsbl_list_parse(text, DNSBL_TEXT_MAX + 1, &l, why,
	    sizeof(why)), -1);
}

static void
test_dnsbl_query_names(void **state)
{
	uint8_t		ip[16] = { 0 };
	char		out[DNSBL_QNAME_MAX + 1], zone[DNSBL_ZONE_MAX + 1];
	int		n;

	(void)state;
	inet_pton(AF_INET, "192.0.2.99", ip);
	n = dnsbl_query_name(AF_INET, ip, "zen.example", out, sizeof(out));
	assert_string_equal(out, "99.2.0.192.zen.example");
	assert_int_equal(n, (int)strlen(out));
	inet_pton(AF_INET6, "2001:db8:1:2::abcd", ip);	/* RFC 5782 2.4 */
	dnsbl_query_name(AF_INET6, ip, "bl.example", out, sizeof(out));
	assert_string_equal(out, "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0."
	    "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example");
	inet_pton(AF_INET6, "::ffff:192.0.2.7", ip);
	dnsbl_query_name(AF_INET6, ip, "bl.example", out, sizeof(out));
	assert_string_equal(out, "7.2.0.192.bl.example");
	/* the longest zone fits with the IPv6 nibbles */
	memset(zone, 'a', DNSBL_ZONE_MAX);
	zone[63] = zone[127] = '.';
	zone[DNSBL_ZONE_MAX] = '\0';
	inet_pton(AF_INET6, "2001:db8::1", ip);
	assert_int_equal(dnsbl_query_name(AF_INET6, ip, zone, out,
	    sizeof(out)), DNSBL_QNAME_MAX);
	assert_int_equal(dnsbl_query_name(AF_INET6, ip, zone, out, 100), -1);
	assert_int_equal(dnsbl_query_name(AF_UNIX, ip, "x", out, sizeof(out)),
	    -1);
}

static void
test_dnsbl_codes_and_filters(void **state)
{
	static const struct {
		const char	*a;
		enum dnsbl_code	 code;
		bool		 any;	/* no filter */
		bool		 f;	/* 127.0.0.[2..11] */
	} cases[] = {
		{ "127.0.0.2", DNSBL_CODE_LISTING, true, true },
		{ "127.0.0.11", DNSBL_CODE_LISTING, true, true },
		{ "127.0.0.12", DNSBL_CODE_LISTING, true, false },
		{ "127.0.0.1", DNSBL_CODE_LISTING, true, false },
		{ "127.0.1.2", DNSBL_CODE_LISTING, true, false },
		{ "127.255.255.254", DNSBL_CODE_ERROR, false, false },
		{ "127.255.255.252", DNSBL_CODE_ERROR, false, false },
		{ "127.255.255.255", DNSBL_CODE_ERROR, false, false },
		{ "127.255.254.1", DNSBL_CODE_LISTING, true, false },
		{ "10.0.0.2", DNSBL_CODE_BOGUS, false, false },
		{ "192.0.2.1", DNSBL_CODE_BOGUS, false, false },
	};
	struct dnsbl_list	l;
	uint8_t			a[4];
	size_t			i;
	const char		*txt = "any.example, f.example=127.0.0.[2..11]";

	(void)state;
	assert_int_equal(dnsbl_list_parse(txt, strlen(txt), &l, NULL, 0), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		inet_pton(AF_INET, cases[i].a, a);
		if (dnsbl_code_class(a) != cases[i].code ||
		    dnsbl_site_match(&l.site[0], a) != cases[i].any ||
		    dnsbl_site_match(&l.site[1], a) != cases[i].f)
			fail_msg("%s", cases[i].a);
	}
}

static struct dnsbl_zanswer
za_of(const char *a1, const char *a2)
{
	struct dnsbl_zanswer	z = { .res = DNSBL_Z_UNLISTED };

	if (a1 != NULL) {
		z.res = DNSBL_Z_ANSWER;
		inet_pton(AF_INET, a1, z.addrs[z.naddrs++]);
	}
	if (a2 != NULL)
		inet_pton(AF_INET, a2, z.addrs[z.naddrs++]);
	return z;
}

static void
test_dnsbl_score(void **state)
{
	const char		*txt = "zen.example*2, "
				    "bl.example=127.0.0.[2..11], "
				    "wl.example=127.0.[0..255].[1..255]*-2, "
				    "zen.example=127.0.0.10*1";
	struct dnsbl_list	 l;
	struct dnsbl_zanswer	 za[DNSBL_SITES_MAX];
	struct dnsbl_outcome	 o;

	(void)state;
	assert_int_equal(dnsbl_list_parse(txt, strlen(txt), &l, NULL, 0), 0);
	assert_int_equal(l.nzones, 3);	/* zen, bl, wl */
	/* zen lists 127.0.0.10: both zen entries match; bl unlisted */
	za[0] = za_of("127.0.0.10", NULL);
	za[1] = za_of(NULL, NULL);
	za[2] = za_of(NULL, NULL);
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.score, 3);
	assert_string_equal(o.listed, "zen.example");
	assert_false(o.allowed);
	assert_int_equal(o.zv[0], DNSBL_V_LISTED);
	assert_int_equal(o.zv[1], DNSBL_V_UNLISTED);
	/* the allowlist cancels zen */
	za[2] = za_of("127.0.10.1", NULL);
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.score, 1);
	assert_true(o.allowed);
	assert_string_equal(o.allow, "wl.example");
	/* an error code never lists, and alerts; a bogus answer likewise */
	za[0] = za_of("127.255.255.254", NULL);
	za[1] = za_of("10.1.2.3", NULL);
	za[2].res = DNSBL_Z_TIMEOUT;
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.score, 0);
	assert_string_equal(o.listed, "");
	assert_string_equal(o.alert, "zen.example=127.255.255.254,"
	    "bl.example=10.1.2.3");
	assert_int_equal(o.zv[0], DNSBL_V_ERROR);
	assert_int_equal(o.zv[1], DNSBL_V_ERROR);
	assert_int_equal(o.zv[2], DNSBL_V_TIMEOUT);
	assert_string_equal(o.skipped, "zen.example:error,bl.example:error,"
	    "wl.example:timeout");
	/* an error code beside a real code: the real one counts */
	za[0] = za_of("127.255.255.254", "127.0.0.4");
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.score, 2);
	assert_int_equal(o.zv[0], DNSBL_V_LISTED);
	/* a code outside bl's filter: unlisted there */
	za[1] = za_of("127.0.0.99", NULL);
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.zv[1], DNSBL_V_UNLISTED);
	assert_int_equal(o.score, 2);
	za[1].res = DNSBL_Z_ERROR;
	dnsbl_score(&l, za, &o);
	assert_int_equal(o.zv[1], DNSBL_V_ERROR);
}

/* ---- the cache over a fake resolver ---- */

struct fake_q {
	char		 name[DNSBL_QNAME_MAX + 1];
	uint64_t	 id;
	dns_rr_fn	*cb;
	void		*arg;
	bool		 live;
};

struct fake {
	struct fake_q	 q[64];
	size_t		 n;
	unsigned	 cancels;
};

static void
fake_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	struct fake	*f = ctx;
	struct fake_q	*q = &f->q[f->n++];

	assert_int_equal(qtype, DNS_MSG_T_A);
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->id = id;
	q->cb = cb;
	q->arg = arg;
	q->live = true;
}

static void
fake_cancel(void *ctx, uint64_t id)
{
	struct fake	*f = ctx;
	size_t		 i;

	for (i = 0; i < f->n; i++)
		if (f->q[i].id == id && f->q[i].live) {
			f->q[i].live = false;
			f->cancels++;
		}
}

/* Answer question i: an A record (a), NXDOMAIN (a NULL), or SERVFAIL. */
static void
fake_answer(struct fake *f, size_t i, const char *a, bool servfail)
{
	static struct dns_rrset	rs;

	memset(&rs, 0, sizeof(rs));
	rs.qtype = DNS_MSG_T_A;
	rs.status = servfail ? DNS_TEMPFAIL : a ? DNS_OK : DNS_NOTFOUND;
	if (a != NULL && !servfail) {
		rs.n = rs.total = 1;
		rs.rr[0].type = DNS_MSG_T_A;
		rs.rr[0].ttl = 0;
		inet_pton(AF_INET, a, rs.rr[0].addr);
	}
	assert_true(f->q[i].live);
	f->q[i].live = false;
	f->q[i].cb(f->q[i].arg, f->q[i].id, &rs);
}

struct done_rec {
	unsigned		 calls;
	struct dnsbl_outcome	 last;
};

static void
on_done(void *arg, const struct dnsbl_outcome *o)
{
	struct done_rec	*d = arg;

	d->calls++;
	d->last = *o;
}

static void
test_dnsbl_cache_shared(void **state)
{
	const char		*txt = "bl.example*2, wl.example*-1";
	struct fake		 f = { .n = 0 };
	struct dns_lookup	 r = { fake_query, fake_cancel, &f };
	struct dnsbl_list	 l;
	struct dnsbl_cache	*c;
	struct dnsbl_check	*k1, *k2;
	struct dnsbl_outcome	 o1, o2, o3;
	struct done_rec		 d1 = { 0 }, d2 = { 0 }, d3 = { 0 };
	uint8_t			 ip[16] = { 0 };

	(void)state;
	assert_int_equal(dnsbl_list_parse(txt, strlen(txt), &l, NULL, 0), 0);
	assert_non_null(c = dnsbl_cache_new(&r, 64));
	inet_pton(AF_INET, "192.0.2.5", ip);
	k1 = dnsbl_check_start(c, &l, AF_INET, ip, on_done, &d1, &o1);
	assert_non_null(k1);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.q[0].name, "5.2.0.192.bl.example");
	assert_true((f.q[0].id >> 63) == 1);	/* never a session id */
	/* a second client of that address: no new question */
	k2 = dnsbl_check_start(c, &l, AF_INET, ip, on_done, &d2, &o2);
	assert_non_null(k2);
	assert_int_equal(f.n, 2);
	fake_answer(&f, 0, "127.0.0.2", false);
	assert_int_equal(d1.calls + d2.calls, 0);
	fake_answer(&f, 1, NULL, false);
	assert_int_equal(d1.calls, 1);
	assert_int_equal(d2.calls, 1);
	assert_int_equal(d1.last.score, 2);
	assert_int_equal(d1.last.asked, 2);
	assert_int_equal(d2.last.shared, 2);
	/* a third, later: answered at once from the cache (TTL 0 is
	 * clamped up to DNSBL_TTL_MIN_S) */
	assert_null(dnsbl_check_start(c, &l, AF_INET, ip, on_done, &d3, &o3));
	assert_int_equal(d3.calls, 0);
	assert_int_equal(o3.score, 2);
	assert_int_equal(o3.cached, 2);
	assert_int_equal(f.n, 2);
	dnsbl_cache_free(c);
}

static void
test_dnsbl_cache_expire_cancel(void **state)
{
	const char		*txt = "bl.example, slow.example";
	struct fake		 f = { .n = 0 };
	struct dns_lookup	 r = { fake_query, fake_cancel, &f };
	struct dnsbl_list	 l;
	struct dnsbl_cache	*c;
	struct dnsbl_check	*k;
	struct dnsbl_outcome	 o;
	struct done_rec		 d = { 0 }, d2 = { 0 };
	uint8_t			 ip[16] = { 0 };

	(void)state;
	assert_int_equal(dnsbl_list_parse(txt, strlen(txt), &l, NULL, 0), 0);
	assert_non_null(c = dnsbl_cache_new(&r, 64));
	inet_pton(AF_INET6, "2001:db8::7", ip);
	k = dnsbl_check_start(c, &l, AF_INET6, ip, on_done, &d, &o);
	assert_non_null(k);
	fake_answer(&f, 0, NULL, true);		/* bl: SERVFAIL */
	dnsbl_check_expire(k);			/* slow never answers */
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.last.zv[0], DNSBL_V_ERROR);
	assert_int_equal(d.last.zv[1], DNSBL_V_TIMEOUT);
	assert_int_equal(d.last.score, 0);
	/* a check cancelled while waiting is never called back */
	k = dnsbl_check_start(c, &l, AF_INET6, ip, on_done, &d2, &o);
	assert_non_null(k);
	assert_int_equal(f.n, 2);	/* bl's failure is kept a while */
	dnsbl_check_cancel(k);
	fake_answer(&f, 1, "127.0.0.2", false);	/* late: cached, no call */
	assert_int_equal(d2.calls, 0);
	assert_null(dnsbl_check_start(c, &l, AF_INET6, ip, on_done, &d2, &o));
	assert_int_equal(o.score, 1);
	/* a pending question is cancelled when the cache goes */
	inet_pton(AF_INET6, "2001:db8::8", ip);
	k = dnsbl_check_start(c, &l, AF_INET6, ip, on_done, &d2, &o);
	assert_non_null(k);
	dnsbl_check_cancel(k);
	dnsbl_cache_free(c);
	assert_int_equal(f.cancels, 2);
}

static void
test_dnsbl_cache_full_set(void **state)
{
	struct fake		 f = { .n = 0 };
	struct dns_lookup	 r = { fake_query, fake_cancel, &f };
	struct dnsbl_list	 l;
	struct dnsbl_cache	*c;
	struct dnsbl_check	*k[DNSBL_CACHE_WAYS + 1];
	struct dnsbl_outcome	 o[DNSBL_CACHE_WAYS + 1];
	struct done_rec		 d = { 0 };
	uint8_t			 ip[16] = { 0 };
	size_t			 i;

	(void)state;
	assert_int_equal(dnsbl_list_parse("bl.example", 10, &l, NULL, 0), 0);
	/* one set: the ninth client in flight finds no room, and its list
	 * is an error (skipped), never a wait without end */
	assert_non_null(c = dnsbl_cache_new(&r, 1));
	for (i = 0; i <= DNSBL_CACHE_WAYS; i++) {
		ip[3] = (uint8_t)(i + 1);
		k[i] = dnsbl_check_start(c, &l, AF_INET, ip, on_done, &d,
		    &o[i]);
	}
	for (i = 0; i < DNSBL_CACHE_WAYS; i++)
		assert_non_null(k[i]);
	assert_null(k[DNSBL_CACHE_WAYS]);
	assert_int_equal(o[DNSBL_CACHE_WAYS].zv[0], DNSBL_V_ERROR);
	for (i = 0; i < DNSBL_CACHE_WAYS; i++)
		dnsbl_check_cancel(k[i]);
	dnsbl_cache_free(c);
	assert_int_equal(f.cancels, DNSBL_CACHE_WAYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dnsbl_parse_table),
		cmocka_unit_test(test_dnsbl_parse_bounds),
		cmocka_unit_test(test_dnsbl_query_names),
		cmocka_unit_test(test_dnsbl_codes_and_filters),
		cmocka_unit_test(test_dnsbl_score),
		cmocka_unit_test(test_dnsbl_cache_shared),
		cmocka_unit_test(test_dnsbl_cache_expire_cancel),
		cmocka_unit_test(test_dnsbl_cache_full_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
