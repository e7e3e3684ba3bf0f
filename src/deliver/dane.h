/*
 * dane.h - TLSA records (RFC 6698) and matching them against a
 * certificate, for DANE toward MX hosts (RFC 7672).
 * Owns: the TLSA RDATA format and its bounds, which records are usable
 * for SMTP (RFC 7672 3.1.3: DANE-TA(2) and DANE-EE(3); selectors 0/1;
 * matching types 0/1/2), and whether one record matches one certificate.
 * Never: I/O, allocation, globals; builds or checks a chain (client_tls.c
 * does, with the record this file says matched).
 * Untrusted: every byte of a record and of a certificate.
 */
#ifndef MXGATE_DANE_H
#define MXGATE_DANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

#define DANE_DATA_MAX	1024	/* association data kept (a full cert
				 * over this is cut by the codec: unusable) */
#define DANE_TLSA_MAX	8	/* usable records kept per MX host */

#define DANE_USAGE_PKIX_TA	0
#define DANE_USAGE_PKIX_EE	1
#define DANE_USAGE_DANE_TA	2
#define DANE_USAGE_DANE_EE	3
#define DANE_SEL_CERT		0	/* the whole certificate, DER */
#define DANE_SEL_SPKI		1	/* its SubjectPublicKeyInfo, DER */
#define DANE_MT_FULL		0
#define DANE_MT_SHA256		1
#define DANE_MT_SHA512		2

struct dane_tlsa {
	uint8_t		usage, selector, mtype;
	uint8_t		data[DANE_DATA_MAX];
	size_t		len;
};

/*
 * One TLSA RDATA (RFC 6698 2.1): usage, selector, matching type, then
 * the association data (at least one byte).  PARSE_BAD: shorter than 4
 * bytes, or a SHA-256/SHA-512 digest of the wrong length; PARSE_TOOLONG:
 * data over DANE_DATA_MAX.  Unknown usages, selectors and types parse
 * (dane_usable says no).
 */
enum parse_rc	dane_tlsa_parse(const uint8_t *, size_t, struct dane_tlsa *);

/* RFC 7672 3.1.3: DANE-TA or DANE-EE, selector 0/1, type 0/1/2. */
bool		dane_usable(const struct dane_tlsa *);

/*
 * Does t match the certificate whose DER is cert (selector 0) and whose
 * SubjectPublicKeyInfo DER is spki (selector 1)?  Digests by OpenSSL;
 * false for an unusable record or a digest that cannot be made.
 */
bool		dane_match(const struct dane_tlsa *, const uint8_t *cert,
		    size_t certlen, const uint8_t *spki, size_t spkilen);

/* The same records in the same order (n each at most DANE_TLSA_MAX). */
bool		dane_same(const struct dane_tlsa *, size_t,
		    const struct dane_tlsa *, size_t);

const char	*dane_usage_name(uint8_t);	/* "dane-ee", "dane-ta", ... */

#endif
