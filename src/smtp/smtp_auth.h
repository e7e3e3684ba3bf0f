/*
 * smtp_auth.h - the SASL exchange of the SMTP AUTH command (RFC 4954) for
 * the PLAIN (RFC 4616) and LOGIN mechanisms: a pure, bounded state
 * machine fed one line at a time, and its base64 decoder (RFC 4648 4).
 * Never: checks a password, writes a reply, logs, or keeps a pointer to
 * a line it was given.  Untrusted: every byte of the AUTH line and of the
 * client's responses.
 */
#ifndef MXGATE_SMTP_AUTH_H
#define MXGATE_SMTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

#define SMTP_AUTH_LINE_MAX	1024	/* base64 bytes a response line */
#define SMTP_AUTH_DECODED_MAX	(SMTP_AUTH_LINE_MAX / 4 * 3)
#define SMTP_AUTH_USER_MAX	255	/* RFC 4616 2: authcid, authzid */
#define SMTP_AUTH_PASS_MAX	255	/* RFC 4616 2: passwd */
#define SMTP_AUTH_MECH_MAX	20	/* RFC 4422 3.1: mechanism names */

enum smtp_auth_mech {
	SMTP_AUTH_NONE,
	SMTP_AUTH_PLAIN,
	SMTP_AUTH_LOGIN,
};

/* What the caller does next. */
enum smtp_auth_rc {
	SMTP_AUTH_CHALLENGE,	/* "334 " + challenge; feed the next line */
	SMTP_AUTH_READY,	/* user and pass are set: verify them */
	SMTP_AUTH_CANCEL,	/* the client sent "*": 501 5.0.0 */
	SMTP_AUTH_BAD_B64,	/* not base64: 501 5.5.2 */
	SMTP_AUTH_TOO_LONG,	/* over SMTP_AUTH_LINE_MAX: 500 5.5.6 */
	SMTP_AUTH_BAD_MECH,	/* not PLAIN or LOGIN: 504 5.5.4 */
	SMTP_AUTH_SYNTAX,	/* "AUTH mech [response]" broken: 501 5.5.4 */
	SMTP_AUTH_MALFORMED,	/* decodes, but is no valid identity and
				 * password (e.g. PLAIN without its NULs,
				 * another authzid): a failed AUTH, 535 */
};

struct smtp_auth {
	enum smtp_auth_mech	 mech;
	bool			 want_pass;	/* LOGIN: user received */
	const char		*challenge;	/* base64 text after "334 " */
	size_t			 ulen;
	size_t			 plen;
	char			 user[SMTP_AUTH_USER_MAX + 1];	/* NUL-ended */
	char			 pass[SMTP_AUTH_PASS_MAX + 1];	/* NUL-ended */
};

/* The argument of AUTH: "MECHANISM [initial-response]" ("=": empty). */
enum smtp_auth_rc smtp_auth_start(struct smtp_auth *, const uint8_t *arg,
		    size_t len);
/* One response line, without its CRLF, after a SMTP_AUTH_CHALLENGE. */
enum smtp_auth_rc smtp_auth_step(struct smtp_auth *, const uint8_t *line,
		    size_t len);
/* Wipes the password (explicit_bzero) and resets the state. */
void	smtp_auth_clear(struct smtp_auth *);
const char *smtp_auth_mech_name(enum smtp_auth_mech);

/*
 * Strict base64 (RFC 4648 4): length a multiple of 4, '=' only as the
 * final padding, no blanks.  PARSE_OK, PARSE_BAD, or PARSE_TOOLONG when
 * the result would not fit outmax.
 */
enum parse_rc smtp_auth_b64_decode(const uint8_t *in, size_t len,
		    uint8_t *out, size_t outmax, size_t *outlen);

#endif
