/*
 * test_dane.c - deliver/dane.c: the TLSA RDATA parser (bounds, digest
 * lengths), which records are usable for SMTP (RFC 7672 3.1.3), and
 * matching against a certificate made here with OpenSSL: each selector
 * with each matching type, a wrong digest, another key, a PKIX usage.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "deliver/dane.h"

/* A self-signed EC certificate: its DER and its SPKI's DER. */
struct tcert {
	uint8_t	*der, *spki;
	int	 derlen, spkilen;
};

static void
tcert_make(struct tcert *c, const char *cn)
{
	EVP_PKEY	*k = EVP_EC_gen("P-256");
	X509		*x = X509_new();
	X509_NAME	*n;

	assert_non_null(k);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	c->der = c->spki = NULL;
	c->derlen = i2d_X509(x, &c->der);
	c->spkilen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &c->spki);
	assert_true(c->derlen > 0 && c->spkilen > 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
tcert_free(struct tcert *c)
{
	OPENSSL_free(c->der);
	OPENSSL_free(c->spki);
}

/* The RDATA of usage/selector/mtype for c (the digest made here). */
static size_t
rdata_for(const struct tcert *c, uint8_t u, uint8_t sel, uint8_t mt,
    uint8_t *out)
{
	const uint8_t	*in = sel == 0 ? c->der : c->spki;
	size_t		 inlen = (size_t)(sel == 0 ? c->derlen : c->spkilen);
	unsigned	 mdlen = 0;

	out[0] = u;
	out[1] = sel;
	out[2] = mt;
	if (mt == 0) {
		memcpy(out + 3, in, inlen);
		return 3 + inlen;
	}
	assert_int_equal(EVP_Digest(in, inlen, out + 3, &mdlen, mt == 1 ?
	    EVP_sha256() : EVP_sha512(), NULL), 1);
	return 3 + mdlen;
}

static bool
matches(const uint8_t *rd, size_t len, const struct tcert *c)
{
	struct dane_tlsa	t;

	assert_int_equal(dane_tlsa_parse(rd, len, &t), PARSE_OK);
	return dane_match(&t, c->der, (size_t)c->derlen, c->spki,
	    (size_t)c->spkilen);
}

static void
test_match_each_selector_and_type(void **state)
{
	struct tcert	a, b;
	uint8_t		rd[3 + DANE_DATA_MAX];
	size_t		len;
	uint8_t		u, sel, mt;

	(void)state;
	tcert_make(&a, "mx.dane.test");
	tcert_make(&b, "other.test");
	for (u = 2; u <= 3; u++)
		for (sel = 0; sel <= 1; sel++)
			for (mt = 0; mt <= 2; mt++) {
				len = rdata_for(&a, u, sel, mt, rd);
				assert_true(matches(rd, len, &a));
				assert_false(matches(rd, len, &b));
				rd[len - 1] ^= 1;	/* one bit off */
				assert_false(matches(rd, len, &a));
			}
	/* PKIX-TA(0) and PKIX-EE(1): unusable for SMTP, never a match */
	for (u = 0; u <= 1; u++) {
		len = rdata_for(&a, u, 1, 1, rd);
		assert_false(matches(rd, len, &a));
	}
	/* an unknown selector or matching type: never a match */
	len = rdata_for(&a, 3, 1, 1, rd);
	rd[1] = 2;
	assert_false(matches(rd, len, &a));
	len = rdata_for(&a, 3, 1, 1, rd);
	rd[2] = 255;
	assert_false(matches(rd, len, &a));
	/* the digest of the SPKI is not the digest of the certificate */
	len = rdata_for(&a, 3, 1, 1, rd);
	rd[1] = 0;
	assert_false(matches(rd, len, &a));
	tcert_free(&a);
	tcert_free(&b);
}

struct pcase {
	const char	*what;
	size_t		 len;		/* RDATA bytes: 3 + data */
	uint8_t		 u, sel, mt;
	enum parse_rc	 rc;
	bool		 usable;
};

static const struct pcase pcases[] = {
	{ "empty", 0, 3, 1, 1, PARSE_BAD, false },
	{ "no data", 3, 3, 1, 1, PARSE_BAD, false },
	{ "one byte of data, full", 4, 3, 1, 0, PARSE_OK, true },
	{ "sha256 of 32", 3 + 32, 3, 1, 1, PARSE_OK, true },
	{ "sha256 of 31", 3 + 31, 3, 1, 1, PARSE_BAD, false },
	{ "sha256 of 33", 3 + 33, 3, 1, 1, PARSE_BAD, false },
	{ "sha512 of 64", 3 + 64, 2, 0, 2, PARSE_OK, true },
	{ "sha512 of 32", 3 + 32, 2, 0, 2, PARSE_BAD, false },
	{ "full at the bound", 3 + DANE_DATA_MAX, 3, 0, 0, PARSE_OK, true },
	{ "full over the bound", 4 + DANE_DATA_MAX, 3, 0, 0, PARSE_TOOLONG,
	  false },
	{ "PKIX-TA", 3 + 32, 0, 1, 1, PARSE_OK, false },
	{ "PKIX-EE", 3 + 32, 1, 1, 1, PARSE_OK, false },
	{ "usage 4", 3 + 32, 4, 1, 1, PARSE_OK, false },
	{ "selector 2", 3 + 32, 3, 2, 1, PARSE_OK, false },
	{ "matching type 3", 3 + 32, 3, 1, 3, PARSE_OK, false },
	{ "private matching type 255", 3 + 5, 3, 1, 255, PARSE_OK, false },
};

static void
test_parse_table(void **state)
{
	static uint8_t		rd[4 + DANE_DATA_MAX];
	struct dane_tlsa	t;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];

		memset(rd, 0xa5, sizeof(rd));
		rd[0] = c->u;
		rd[1] = c->sel;
		rd[2] = c->mt;
		print_message("%s\n", c->what);
		assert_int_equal(dane_tlsa_parse(rd, c->len, &t), c->rc);
		if (c->rc != PARSE_OK)
			continue;
		assert_int_equal(t.usage, c->u);
		assert_int_equal(t.selector, c->sel);
		assert_int_equal(t.mtype, c->mt);
		assert_int_equal(t.len, c->len - 3);
		assert_memory_equal(t.data, rd + 3, t.len);
		assert_int_equal(dane_usable(&t), c->usable);
	}
}

static void
test_same_and_names(void **state)
{
	struct dane_tlsa	a[2], b[2];
	uint8_t			rd[3 + 32];

	(void)state;
	memset(rd, 7, sizeof(rd));
	rd[0] = 3;
	rd[1] = 1;
	rd[2] = 1;
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd), &a[0]), PARSE_OK);
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd), &b[0]), PARSE_OK);
	rd[0] = 2;
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd), &a[1]), PARSE_OK);
	rd[5] = 8;
	assert_int_equal(dane_tlsa_parse(rd, sizeof(rd), &b[1]), PARSE_OK);
	assert_true(dane_same(a, 1, b, 1));
	assert_false(dane_same(a, 2, b, 2));
	assert_false(dane_same(a, 1, b, 2));
	assert_true(dane_same(a, 0, b, 0));
	assert_string_equal(dane_usage_name(3), "dane-ee");
	assert_string_equal(dane_usage_name(2), "dane-ta");
	assert_string_equal(dane_usage_name(1), "pkix-ee");
	assert_string_equal(dane_usage_name(9), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_match_each_selector_and_type),
		cmocka_unit_test(test_same_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
