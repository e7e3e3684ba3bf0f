/*
 * batv.h - Bounce Address Tag Validation, the "prvs=" form (issue 14,
 * part 5; draft-levine-smtp-batv-01 names it): a tagged local part is
 *	prvs=KDDDSSSSSS=LOCAL
 * K the key number (keyring.h, 0..9), DDD the UTC day number (seconds
 * since the epoch / 86400) mod 1000 of the tag's EXPIRY (the signing day
 * + BATV_VALID_DAYS), SSSSSS the first 3 bytes, in hex, of HMAC-SHA1
 * with key K over "KDDD" followed by the original address LOCAL@DOMAIN
 * in ASCII lower case.  The tag verifies through the end of its expiry
 * day, so a tag made today is good for 7 days and the rest of today
 * (and, for a verifier whose clock is behind, from the day before).
 * Owns: the tag's syntax, signing, verifying, stripping.
 * Never: I/O, allocation, globals; decides nothing about mail (smtp/ and
 * deliver/ do).  Untrusted: every local part given to it.
 */
#ifndef MXGATE_BATV_H
#define MXGATE_BATV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../lib/keyring.h"
#include "../lib/parse.h"

#define BATV_PREFIX		"prvs="
#define BATV_PREFIX_LEN		5
#define BATV_TAG_LEN		10	/* KDDDSSSSSS */
#define BATV_VALID_DAYS		7
#define BATV_SKEW_DAYS		1	/* a verifier's clock may be behind */
#define BATV_TAGGED_MAX		64	/* RFC 5321 4.5.3.1.1: a local part */
#define BATV_LOCAL_MAX		(BATV_TAGGED_MAX - BATV_PREFIX_LEN - \
				    BATV_TAG_LEN - 1)	/* the original: 48 */
#define BATV_ADDR_MAX		256	/* RFC 5321 4.5.3.1.3: a path */

/* What a local part says, checked against our keys. */
enum batv_result {
	BATV_NONE,		/* no "prvs=" prefix: not tagged */
	BATV_MALFORMED,		/* the prefix, but not the form above */
	BATV_NOKEY,		/* no key numbered K here */
	BATV_BADSIG,		/* the HMAC does not match */
	BATV_EXPIRED,		/* its expiry day is past (or too far ahead) */
	BATV_PASS,
};

/* A parsed tag: spans into the caller's local part. */
struct batv_tag {
	unsigned	 key;		/* K */
	unsigned	 day;		/* DDD */
	uint8_t		 mac[3];	/* SSSSSS */
	const char	*local;		/* the original local part */
	size_t		 llen;
};

/* Does the local part start with "prvs=" (any case)? */
bool		batv_tagged(const char *local, size_t len);
/*
 * The tag in a local part.  PARSE_OK: tagged and well formed, *out
 * filled; PARSE_BAD: not (no prefix, bad digits, empty or bad original);
 * PARSE_TOOLONG: longer than BATV_TAGGED_MAX.  Pure.
 */
enum parse_rc	batv_parse(const char *local, size_t len,
		    struct batv_tag *out);
/*
 * Sign addr ("local@domain", the envelope sender) with the ring's first
 * key at time now into out ("prvs=...=local@domain", NUL-terminated).
 * 0, or -1: no key, no '@', an address already tagged, or too long
 * (the tagged local part must fit BATV_TAGGED_MAX, so the original is at
 * most BATV_LOCAL_MAX; the result must fit BATV_ADDR_MAX and outlen);
 * such a sender goes out unsigned.
 */
int		batv_sign(const struct keyring *, const char *addr,
		    time_t now, char *out, size_t outlen);
/*
 * Check local@domain at time now: BATV_NONE (tag->local is the whole
 * local part), else the verdict, with *tag filled when the form parsed
 * (tag->local the original local part, to strip the tag).
 */
enum batv_result batv_verify(const struct keyring *, const char *local,
		    size_t llen, const char *domain, size_t dlen, time_t now,
		    struct batv_tag *tag);
/* "none", "malformed", "nokey", "badsig", "expired", "pass": log words */
const char	*batv_result_name(enum batv_result);

#endif
