/*
 * test_dkim.c - src/sender/dkim_parse.c, dkim.c and psl.c: the tag-list
 * parser (good lists, FWS, duplicates, bounds), signature and key record
 * checks, simple and relaxed canonicalisation of header fields and of the
 * body (the RFC 6376 3.4.5 examples, fed whole and a byte at a time),
 * whole verifications of a message signed by dkimpy (Ed25519,
 * relaxed/relaxed) through a stub resolver: pass, a changed body, a
 * changed header, no key, a temporary DNS failure, expiry, the deadline,
 * the cap on signatures; and organizational domains from Debian's
 * public_suffix_list.dat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/dns_msg.h"
#include "sender/dkim.h"
#include "sender/psl.h"

#define PSL_FILE	"/usr/share/publicsuffix/public_suffix_list.dat"

/* Signed by tests/dkim_sign.py (dkimpy) with the key below. */
static const char signed_msg[] =
	"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=signed.test;\r\n"
	" i=@signed.test; q=dns/txt; s=ed; t=1796697383; h=from : to : subject :\r\n"
	" date : message-id; bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=;\r\n"
	" b=gXO/fnmzNMte4o6sDQievyqlYJrbBeGBKvQ0Fa+dvruin7WMuRQW83z49Gk1j2ydZUwOQ\r\n"
	" ZP0WO5608cZG1HuCw==\r\n"
	"From: Joe <joe@signed.test>\r\n"
	"To: alice@example.test\r\n"
	"Subject: unit  test\r\n"
	"\tfolded\r\n"
	"Date: Tue, 08 Dec 2026 02:00:00 +0000\r\n"
	"Message-ID: <unit@signed.test>\r\n"
	"\r\n"
	"Hello,\r\n"
	"\r\n"
	"  spaced \t line \r\n"
	"\r\n"
	"\r\n"
;
static const char ed_key[] =
    "v=DKIM1; k=ed25519; p=jXmeapWPKNyDl/4uALK6pyn/DgLylRZoj314dMHApOs=";
static const time_t signed_at = 1796697383;

/* ---------------------------------------------------------------- */

static void
test_tags(void **st)
{
	static const struct {
		const char	*in;
		enum parse_rc	 rc;
		size_t		 n;
	} cases[] = {
		{ "a=b", PARSE_OK, 1 },
		{ "a=b;", PARSE_OK, 1 },
		{ " v = 1 ;\r\n\ta=rsa-sha256 ; ", PARSE_OK, 2 },
		{ "b=abc\r\n def; x_1=", PARSE_OK, 2 },
		{ "", PARSE_BAD, 0 },
		{ ";", PARSE_BAD, 0 },
		{ "a", PARSE_BAD, 0 },
		{ "1a=b", PARSE_BAD, 0 },
		{ "a=b;a=c", PARSE_BAD, 0 },	/* twice */
		{ "a=b;;c=d", PARSE_BAD, 0 },
		{ "a=b\x01", PARSE_BAD, 0 },
	};
	struct dkim_tags	tl;
	char			many[400];
	size_t			i, k = 0;

	(void)st;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum parse_rc rc = dkim_tags_parse((const uint8_t *)cases[i].in,
		    strlen(cases[i].in), &tl);

		if (rc != cases[i].rc || (rc == PARSE_OK && tl.n != cases[i].n))
			fail_msg("case %zu \"%s\": rc %d n %zu", i, cases[i].in,
			    rc, tl.n);
	}
	/* FWS around a value is trimmed; inside it is kept */
	assert_int_equal(dkim_tags_parse((const uint8_t *)" b = ab\r\n cd ;",
	    14, &tl), PARSE_OK);
	assert_int_equal(tl.t[0].vlen, 7);
	assert_memory_equal(tl.t[0].value, "ab\r\n cd", 7);
	assert_int_equal(tl.t[0].voff, 4);
	assert_int_equal(tl.t[0].vend, 13);
	assert_non_null(dkim_tags_get(&tl, "b"));
	assert_null(dkim_tags_get(&tl, "bh"));
	for (i = 0; i <= DKIM_TAGS_MAX; i++)
		k += (size_t)snprintf(many + k, sizeof(many) - k, "t%zu=v;", i);
	assert_int_equal(dkim_tags_parse((const uint8_t *)many, k, &tl),
	    PARSE_TOOLONG);
}

static enum dkim_result
sig(const char *v, const char **why)
{
	static struct dkim_sig	s;

	return dkim_sig_parse((const uint8_t *)v, strlen(v), &s, why);
}

#define SIG_OK	"v=1; a=rsa-sha256; d=ex.test; s=sel; h=from:to; " \
		"bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=AAAA"

static void
test_sig_checks(void **st)
{
	static const struct {
		const char	*in;
		const char	*why;	/* NULL: fine */
	} cases[] = {
		{ SIG_OK, NULL },
		{ SIG_OK "; c=relaxed", NULL },
		{ SIG_OK "; c=simple/relaxed; l=10; t=5; x=6; i=a@sub.ex.test",
		  NULL },
		{ "v=1; a=rsa-sha256; d=ex.test; s=sel; h=from; b=AAAA",
		  "a required tag is missing" },
		{ "v=2; a=rsa-sha256; d=ex.test; s=sel; h=from; "
		  "bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=AAAA",
		  "v= is not 1" },
		{ "v=1; a=rsa-sha1; d=ex.test; s=sel; h=from; "
		  "bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=AAAA",
		  "rsa-sha1 is not accepted (RFC 8301)" },
		{ "v=1; a=rsa-sha256; d=ex.test; s=sel; h=to:subject; "
		  "bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=AAAA",
		  "h= does not sign From" },
		{ SIG_OK "; i=a@other.test", "i= is not within d=" },
		{ SIG_OK "; i=a@xex.test", "i= is not within d=" },
		{ SIG_OK "; t=10; x=9", "x= is before t=" },
		{ SIG_OK "; c=loose", "bad c= tag" },
		{ SIG_OK "; q=http", "q= has no dns/txt" },
		{ SIG_OK "; l=1x", "bad l= tag" },
		{ "v=1; a=rsa-sha256; d=ex.test; s=sel; h=from; bh=AAAA; b=AAAA",
		  "bad bh= tag" },
		{ "v=1; a=rsa-sha256; d=ex..test; s=sel; h=from; "
		  "bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=AAAA",
		  "bad d= tag" },
		{ "v=1; a=rsa-sha256; d=ex.test; s=sel; h=from; "
		  "bh=x4coMpLgYAlVelXhIJx1VZXoiL0gzsvu+Cy/AqAEtMM=; b=A*AA",
		  "bad b= tag" },
		{ "v=1; v=1", "signature syntax" },
	};
	const char	*why;
	size_t		 i;

	(void)st;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum dkim_result r = sig(cases[i].in, &why);

		if (cases[i].why == NULL ? r != DKIM_NONE :
		    r != DKIM_PERMERROR || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu \"%s\": %s (%s)", i, cases[i].in,
			    dkim_result_name(r), r == DKIM_NONE ? "-" : why);
	}
}

static void
test_key_records(void **st)
{
	static const struct {
		const char	*in;
		const char	*why;
	} cases[] = {
		{ "v=DKIM1; k=rsa; p=AAAA", NULL },
		{ "p=AAAA", NULL },
		{ "v=DKIM1; k=ed25519; h=sha256; s=email; t=y:s; p=AAAA", NULL },
		{ "k=rsa; v=DKIM1; p=AAAA", "key v= is not DKIM1" },
		{ "v=DKIM2; p=AAAA", "key v= is not DKIM1" },
		{ "v=DKIM1; h=sha1; p=AAAA", "key h= excludes sha256" },
		{ "v=DKIM1; k=dsa; p=AAAA", "unknown key type" },
		{ "v=DKIM1; s=web; p=AAAA", "key is not for email" },
		{ "v=DKIM1; k=rsa", "key has no p=" },
		{ "v=DKIM1; p=", "key revoked" },
		{ "v=DKIM1; p=A?AA", "bad key p=" },
		{ "v=spf1 -all", "key v= is not DKIM1" },
		{ "v=DKIM1; p=AAAA; p=AAAA", "key record syntax" },
	};
	struct dkim_key	 k;
	const char	*why;
	size_t		 i;

	(void)st;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum dkim_result r = dkim_key_parse((const uint8_t *)cases[i].in,
		    strlen(cases[i].in), &k, &why);

		if (cases[i].why == NULL ? r != DKIM_NONE :
		    r != DKIM_PERMERROR || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu \"%s\": %s", i, cases[i].in,
			    dkim_result_name(r));
	}
	assert_int_equal(dkim_key_parse((const uint8_t *)cases[2].in,
	    strlen(cases[2].in), &k, &why), DKIM_NONE);
	assert_true(k.ed25519 && k.testing && k.strict);
	assert_int_equal(k.plen, 3);
}

/* RFC 6376 3.4.5, and folding, colons and case. */
static void
test_header_canon(void **st)
{
	static const struct {
		enum dkim_canon	 c;
		const char	*in, *out;
	} cases[] = {
		{ DKIM_RELAXED, "A: X\r\n", "a:X\r\n" },
		{ DKIM_RELAXED, "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n" },
		{ DKIM_RELAXED, "Subject:  a : b\r\n", "subject:a : b\r\n" },
		{ DKIM_RELAXED, "X-Y:\r\n", "x-y:\r\n" },
		{ DKIM_SIMPLE, "B : Y\t\r\n\tZ  \r\n", "B : Y\t\r\n\tZ  \r\n" },
	};
	uint8_t	out[64];
	size_t	i;
	long	n;

	(void)st;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = dkim_canon_header(cases[i].c, (const uint8_t *)cases[i].in,
		    strlen(cases[i].in), out, sizeof(out));
		if (n != (long)strlen(cases[i].out) ||
		    memcmp(out, cases[i].out, (size_t)n) != 0)
			fail_msg("case %zu: %ld \"%.*s\"", i, n, (int)(n > 0 ?
			    n : 0), out);
	}
	assert_int_equal(dkim_canon_header(DKIM_RELAXED,
	    (const uint8_t *)"A: X\r\n", 6, out, 6), -1);
	assert_int_equal(dkim_canon_header(DKIM_RELAXED,
	    (const uint8_t *)"no colon\r\n", 10, out, sizeof(out)), -1);
}

struct sink {
	char	buf[256];
	size_t	len;
};

static void
sink_emit(void *arg, const uint8_t *p, size_t n)
{
	struct sink	*k = arg;

	assert_true(k->len + n < sizeof(k->buf));
	memcpy(k->buf + k->len, p, n);
	k->len += n;
}

static void
body_canon(enum dkim_canon c, const char *in, size_t step, struct sink *k)
{
	struct dkim_body_canon	b;
	size_t			i, n = strlen(in);

	k->len = 0;
	dkim_body_canon_init(&b, c, sink_emit, k);
	for (i = 0; i < n; i += step)
		dkim_body_canon_feed(&b, (const uint8_t *)in + i,
		    n - i < step ? n - i : step);
	dkim_body_canon_end(&b);
	k->buf[k->len] = '\0';
}

static void
test_body_canon(void **st)
{
	static const struct {
		enum dkim_canon	 c;
		const char	*in, *out;
	} cases[] = {
		{ DKIM_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n" },
		{ DKIM_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n" },
		{ DKIM_SIMPLE, "", "\r\n" },
		{ DKIM_SIMPLE, "\r\n\r\n", "\r\n" },
		{ DKIM_RELAXED, "", "" },
		{ DKIM_RELAXED, "\r\n \t\r\n", "" },
		{ DKIM_SIMPLE, "a\r\n\r\nb", "a\r\n\r\nb\r\n" },
		{ DKIM_RELAXED, "a\rb  \r\n  \r\nc\r\n", "a\rb\r\n\r\nc\r\n" },
		{ DKIM_RELAXED, "x\r", "x\r\r\n" },
	};
	struct sink	k;
	size_t		i, step;

	(void)st;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (step = 1; step <= 64; step *= 4) {
			body_canon(cases[i].c, cases[i].in, step, &k);
			if (strcmp(k.buf, cases[i].out) != 0)
				fail_msg("case %zu step %zu: \"%s\"", i, step,
				    k.buf);
		}
}

/* ---------------------------------------------------------------- */
/* Whole verifications through a stub resolver. */

struct stub {
	const char	*txt;		/* the record; NULL: NXDOMAIN */
	enum dns_status	 status;
	dns_rr_fn	*cb[8];
	void		*arg[8];
	char		 name[8][256];
	size_t		 n;
	unsigned	 cancels, done;
};

static void
stub_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	struct stub	*s = ctx;

	(void)id;
	assert_int_equal(qtype, DNS_MSG_T_TXT);
	assert_true(s->n < 8);
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
	s->cb[s->n] = cb;
	s->arg[s->n++] = arg;
}

static void
stub_cancel(void *ctx, uint64_t id)
{
	(void)id;
	((struct stub *)ctx)->cancels++;
}

static void
stub_done(void *arg)
{
	((struct stub *)arg)->done++;
}

static void
stub_answer(struct stub *s)
{
	static struct dns_rrset	rs;
	size_t			i;

	memset(&rs, 0, sizeof(rs));
	rs.status = s->status;
	if (s->status == DNS_OK && s->txt != NULL) {
		rs.n = 1;
		rs.rr[0].type = DNS_MSG_T_TXT;
		rs.rr[0].txtlen = strlen(s->txt);
		memcpy(rs.rr[0].txt, s->txt, rs.rr[0].txtlen);
	}
	for (i = 0; i < s->n; i++)
		s->cb[i](s->arg[i], 1, &rs);
}

/* Verify msg (fed step bytes at a time); the first signature's result. */
static enum dkim_result
verify(const char *msg, size_t step, struct stub *s, time_t now,
    const char **why)
{
	struct dkim_msg			*m = dkim_msg_new(65536);
	struct dns_lookup		 r = { stub_query, stub_cancel, s };
	const struct dkim_outcome	*o;
	size_t				 i, n = strlen(msg);
	enum dkim_result		 res;

	assert_non_null(m);
	for (i = 0; i < n; i += step)
		dkim_msg_feed(m, (const uint8_t *)msg + i, n - i < step ?
		    n - i : step);
	if (dkim_verify_start(m, &r, 1, now, stub_done, s)) {
		assert_int_equal(s->done, 0);	/* never inside the call */
		stub_answer(s);
		assert_int_equal(s->done, 1);
	}
	if ((o = dkim_msg_outcome(m, 0)) == NULL) {
		dkim_msg_free(m);
		*why = "";
		return DKIM_NONE;
	}
	res = o->result;
	*why = o->why;
	assert_string_equal(o->d, "signed.test");
	dkim_msg_free(m);
	return res;
}

static char *
replace(const char *in, const char *from, const char *to)
{
	const char	*p = strstr(in, from);
	size_t		 n = strlen(in) + strlen(to) + 1;
	char		*out = malloc(n);

	assert_non_null(p);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(p - in), in, to, p + strlen(from));
	return out;
}

static void
test_verify(void **st)
{
	struct stub	 s;
	const char	*why;
	char		*m;
	size_t		 step;

	(void)st;
	for (step = 1; step < sizeof(signed_msg); step = step * 3 + 1) {
		s = (struct stub){ .txt = ed_key, .status = DNS_OK };
		assert_int_equal(verify(signed_msg, step, &s, signed_at, &why),
		    DKIM_PASS);
		assert_string_equal(s.name[0], "ed._domainkey.signed.test");
	}
	/* the body changed: fail before any key is asked */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "Hello,", "Hullo,");
	assert_int_equal(verify(m, 7, &s, signed_at, &why), DKIM_FAIL);
	assert_string_equal(why, "body hash does not match");
	assert_int_equal(s.n, 0);
	free(m);
	/* white space the relaxed body ignores: still a pass */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "  spaced \t line \r\n", " spaced line\r\n");
	assert_int_equal(verify(m, 5, &s, signed_at, &why), DKIM_PASS);
	free(m);
	/* a signed header changed */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "To: alice@", "To: bob@");
	assert_int_equal(verify(m, 64, &s, signed_at, &why), DKIM_FAIL);
	assert_string_equal(why, "signature does not verify");
	free(m);
	/* the folded Subject, unfolded differently: relaxed says the same */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "unit  test\r\n\tfolded", "unit test folded");
	assert_int_equal(verify(m, 64, &s, signed_at, &why), DKIM_PASS);
	free(m);
	/* no key, a DNS failure, a key of another type, expiry */
	s = (struct stub){ .txt = NULL, .status = DNS_NOTFOUND };
	assert_int_equal(verify(signed_msg, 64, &s, signed_at, &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "no key record");
	s = (struct stub){ .txt = NULL, .status = DNS_TEMPFAIL };
	assert_int_equal(verify(signed_msg, 64, &s, signed_at, &why),
	    DKIM_TEMPERROR);
	s = (struct stub){ .txt = "v=DKIM1; p=jXmeapWPKNyDl/4uALK6pyn/Dg==",
	    .status = DNS_OK };
	assert_int_equal(verify(signed_msg, 64, &s, signed_at, &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "key type does not match a=");
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "t=1796697383;", "t=1796697383; x=1796697384;");
	assert_int_equal(verify(m, 64, &s, signed_at + 10, &why),
	    DKIM_PERMERROR);
	assert_string_equal(why, "signature expired");
	assert_int_equal(s.n, 0);
	free(m);
	/* a testing key (t=y): the result is pass, marked as testing */
	{
		struct dkim_msg		*tm = dkim_msg_new(65536);
		struct dns_lookup	 r = { stub_query, stub_cancel, &s };

		s = (struct stub){ .txt = "v=DKIM1; k=ed25519; t=y; "
		    "p=jXmeapWPKNyDl/4uALK6pyn/DgLylRZoj314dMHApOs=",
		    .status = DNS_OK };
		dkim_msg_feed(tm, (const uint8_t *)signed_msg,
		    strlen(signed_msg));
		assert_true(dkim_verify_start(tm, &r, 1, signed_at, stub_done,
		    &s));
		stub_answer(&s);
		assert_int_equal(dkim_msg_outcome(tm, 0)->result, DKIM_PASS);
		assert_true(dkim_msg_outcome(tm, 0)->testing);
		assert_false(dkim_msg_outcome(tm, 0)->partial);
		dkim_msg_free(tm);
	}
	/* no signature at all */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = replace(signed_msg, "DKIM-Signature:", "X-Old-Signature:");
	assert_int_equal(verify(m, 64, &s, signed_at, &why), DKIM_NONE);
	free(m);
}

static void
test_cap_and_expire(void **st)
{
	struct stub		 s = { .txt = ed_key, .status = DNS_OK };
	struct dns_lookup	 r = { stub_query, stub_cancel, &s };
	struct dkim_msg		*m = dkim_msg_new(65536);
	const char		*body = strstr(signed_msg, "From:");
	size_t			 i, found;

	(void)st;
	for (i = 0; i < DKIM_SIGS_MAX + 2; i++)	/* 7 copies of the field */
		dkim_msg_feed(m, (const uint8_t *)signed_msg,
		    (size_t)(body - signed_msg));
	dkim_msg_feed(m, (const uint8_t *)body, strlen(body));
	assert_true(dkim_verify_start(m, &r, 1, signed_at, stub_done, &s));
	assert_int_equal(dkim_msg_nsigs(m, &found), DKIM_SIGS_MAX);
	assert_int_equal(found, DKIM_SIGS_MAX + 2);
	assert_int_equal(s.n, DKIM_SIGS_MAX);
	/* the deadline: every pending one is temperror, done once */
	dkim_verify_expire(m);
	assert_int_equal(s.done, 1);
	assert_int_equal(s.cancels, 1);
	for (i = 0; i < DKIM_SIGS_MAX; i++) {
		assert_int_equal(dkim_msg_outcome(m, i)->result,
		    DKIM_TEMPERROR);
		assert_string_equal(dkim_msg_outcome(m, i)->b8, "gXO/fnmz");
	}
	assert_null(dkim_msg_outcome(m, DKIM_SIGS_MAX));
	dkim_msg_free(m);
	/* freed while waiting: cancelled, done never called */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = dkim_msg_new(65536);
	dkim_msg_feed(m, (const uint8_t *)signed_msg, strlen(signed_msg));
	assert_true(dkim_verify_start(m, &r, 1, signed_at, stub_done, &s));
	dkim_msg_free(m);
	assert_int_equal(s.cancels, 1);
	assert_int_equal(s.done, 0);
	/* a header section over head_max: not looked at */
	s = (struct stub){ .txt = ed_key, .status = DNS_OK };
	m = dkim_msg_new(64);
	dkim_msg_feed(m, (const uint8_t *)signed_msg, strlen(signed_msg));
	assert_false(dkim_verify_start(m, &r, 1, signed_at, stub_done, &s));
	assert_int_equal(dkim_msg_nsigs(m, NULL), 0);
	dkim_msg_free(m);
}

static void
test_psl(void **st)
{
	static const struct {
		const char	*name, *org;
	} cases[] = {
		{ "example.com", "example.com" },
		{ "a.b.example.com", "example.com" },
		{ "mail.example.co.uk", "example.co.uk" },
		{ "co.uk", "co.uk" },
		{ "www.city.kawasaki.jp", "city.kawasaki.jp" },	/* !city */
		{ "a.b.c.kawasaki.jp", "b.c.kawasaki.jp" },	/* *.kawasaki */
		{ "mail.dkhonest.test", "dkhonest.test" },	/* default "*" */
		{ "localhost", "localhost" },
	};
	struct psl	*p;
	char		 err[256], out[256];
	size_t		 i;

	(void)st;
	p = psl_load(PSL_FILE, err, sizeof(err));
	if (p == NULL)
		fail_msg("%s (Debian package publicsuffix)", err);
	assert_true(psl_count(p) > 5000);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_non_null(psl_org_domain(p, cases[i].name, out,
		    sizeof(out)));
		if (strcmp(out, cases[i].org) != 0)
			fail_msg("%s: %s, not %s", cases[i].name, out,
			    cases[i].org);
	}
	assert_true(psl_aligned(p, "Mail.Example.COM", "example.com"));
	assert_false(psl_aligned(p, "a.co.uk", "b.co.uk"));
	assert_false(psl_aligned(p, "example.com", "example.net"));
	assert_true(psl_aligned(p, "x.dkhonest.test", "y.dkhonest.test"));
	psl_free(p);
	/* no list: only the same name aligns */
	assert_true(psl_aligned(NULL, "example.com", "EXAMPLE.com"));
	assert_false(psl_aligned(NULL, "mail.example.com", "example.com"));
	assert_null(psl_load("/nonexistent/psl.dat", err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/psl.dat"));
	assert_null(psl_parse("// only a comment\n\n", 19));
	p = psl_parse("com\n*.ck\n!www.ck\n", 17);
	assert_non_null(p);
	assert_string_equal(psl_org_domain(p, "a.b.ck", out, sizeof(out)),
	    "a.b.ck");
	assert_string_equal(psl_org_domain(p, "x.www.ck", out, sizeof(out)),
	    "www.ck");
	psl_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_sig_checks),
		cmocka_unit_test(test_key_records),
		cmocka_unit_test(test_header_canon),
		cmocka_unit_test(test_body_canon),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_cap_and_expire),
		cmocka_unit_test(test_psl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
