/*
 * dane.c - TLSA records and their matching (see dane.h).
 * Owns: the RDATA bounds, usability for SMTP, the digest comparison.
 * Never: I/O, allocation beyond OpenSSL's digest context, trusting a
 * length.  Untrusted: the record and the certificate bytes.
 * RFC 6698 2.1, 7218, 7672 3.1.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dane.h"

#define DANE_SHA256_LEN	32
#define DANE_SHA512_LEN	64

enum parse_rc
dane_tlsa_parse(const uint8_t *p, size_t len, struct dane_tlsa *t)
{
	memset(t, 0, offsetof(struct dane_tlsa, data));
	t->len = 0;
	if (len < 4)
		return PARSE_BAD;
	t->usage = p[0];
	t->selector = p[1];
	t->mtype = p[2];
	if (len - 3 > DANE_DATA_MAX)
		return PARSE_TOOLONG;
	if ((t->mtype == DANE_MT_SHA256 && len - 3 != DANE_SHA256_LEN) ||
	    (t->mtype == DANE_MT_SHA512 && len - 3 != DANE_SHA512_LEN))
		return PARSE_BAD;
	memcpy(t->data, p + 3, len - 3);
	t->len = len - 3;
	return PARSE_OK;
}

bool
dane_usable(const struct dane_tlsa *t)
{
	return (t->usage == DANE_USAGE_DANE_TA ||
	    t->usage == DANE_USAGE_DANE_EE) &&
	    (t->selector == DANE_SEL_CERT || t->selector == DANE_SEL_SPKI) &&
	    t->mtype <= DANE_MT_SHA512 && t->len > 0 &&
	    t->len <= DANE_DATA_MAX;
}

bool
dane_match(const struct dane_tlsa *t, const uint8_t *cert, size_t certlen,
    const uint8_t *spki, size_t spkilen)
{
	const uint8_t	*in = t->selector == DANE_SEL_CERT ? cert : spki;
	size_t		 inlen = t->selector == DANE_SEL_CERT ? certlen :
			    spkilen;
	uint8_t		 md[EVP_MAX_MD_SIZE];
	unsigned	 mdlen = 0;

	if (!dane_usable(t) || in == NULL || inlen == 0)
		return false;
	if (t->mtype == DANE_MT_FULL)
		return inlen == t->len && CRYPTO_memcmp(in, t->data, inlen) == 0;
	if (EVP_Digest(in, inlen, md, &mdlen, t->mtype == DANE_MT_SHA256 ?
	    EVP_sha256() : EVP_sha512(), NULL) != 1 || mdlen != t->len)
		return false;
	return CRYPTO_memcmp(md, t->data, mdlen) == 0;
}

bool
dane_same(const struct dane_tlsa *a, size_t na, const struct dane_tlsa *b,
    size_t nb)
{
	size_t	i;

	if (na != nb)
		return false;
	for (i = 0; i < na && i < DANE_TLSA_MAX; i++)
		if (a[i].usage != b[i].usage || a[i].selector !=
		    b[i].selector || a[i].mtype != b[i].mtype ||
		    a[i].len != b[i].len || a[i].len > DANE_DATA_MAX ||
		    memcmp(a[i].data, b[i].data, a[i].len) != 0)
			return false;
	return true;
}

const char *
dane_usage_name(uint8_t u)
{
	switch (u) {
	case DANE_USAGE_PKIX_TA:
		return "pkix-ta";
	case DANE_USAGE_PKIX_EE:
		return "pkix-ee";
	case DANE_USAGE_DANE_TA:
		return "dane-ta";
	case DANE_USAGE_DANE_EE:
		return "dane-ee";
	}
	return "unknown";
}
