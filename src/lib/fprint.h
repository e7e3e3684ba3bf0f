/*
 * fprint.h - certificate fingerprint pins ("sha256:HEX, ..."): a pure,
 * bounded parser and the match of a digest against the list.
 * Owns: the pin syntax.  Never: I/O, allocation, globals, OpenSSL (the
 * caller computes the digest).
 * Untrusted: the pin text (a config value).
 */
#ifndef MXGATE_FPRINT_H
#define MXGATE_FPRINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parse.h"

#define FPRINT_SHA256_LEN	32	/* octets of one SHA-256 digest */
#define FPRINT_PINS_MAX		8	/* pins in one list */
#define FPRINT_TEXT_MAX		(FPRINT_PINS_MAX * 110)	/* the list's text */
#define FPRINT_HEX_LEN		(FPRINT_SHA256_LEN * 2)

struct fprint_pins {
	uint8_t	 d[FPRINT_PINS_MAX][FPRINT_SHA256_LEN];
	size_t	 n;		/* 0: no pins */
};

/*
 * "sha256:HEX[, sha256:HEX ...]": the prefix in any case, 64 hex digits in
 * any case, optionally with ':' between the octets (as `openssl x509
 * -fingerprint` prints them), items separated by ',' and blanks.  An
 * empty text is an empty list.  PARSE_OK with out filled; PARSE_BAD with
 * *bad_at the offset of the first bad byte; PARSE_TOOLONG past
 * FPRINT_TEXT_MAX octets or FPRINT_PINS_MAX pins (out untouched then).
 */
enum parse_rc	fprint_parse(const char *p, size_t len, struct fprint_pins *out,
		    size_t *bad_at);
/* Whether digest is one of the pins (constant time over each pin). */
bool	fprint_match(const struct fprint_pins *,
	    const uint8_t digest[FPRINT_SHA256_LEN]);
/* "sha256:" and 64 lower-case hex digits, NUL-ended (out: 72 octets). */
#define FPRINT_STR_LEN		(7 + FPRINT_HEX_LEN + 1)
void	fprint_format(const uint8_t digest[FPRINT_SHA256_LEN],
	    char out[FPRINT_STR_LEN]);

#endif
