/*
 * smtp_dsn_param.h - pure, bounded parsers for the DSN extension's
 * parameters (RFC 3461 4.1-4.4): RET and ENVID on MAIL, NOTIFY and ORCPT
 * on RCPT (their xtext: lib/xtext.h).
 * They judge one struct smtp_param at a time and keep spans into the
 * caller's bytes; no I/O, no allocation, no globals.  Untrusted: every
 * byte.  Fuzzed by fuzz/fuzz_smtp_dsn_param.c.
 */
#ifndef MXGATE_SMTP_DSN_PARAM_H
#define MXGATE_SMTP_DSN_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_parse.h"

#define SMTP_DSN_ENVID_MAX	100	/* RFC 3461 4.4, as sent (xtext) */
#define SMTP_DSN_ORCPT_MAX	500	/* RFC 3461 4.2, as sent (xtext) */

/* NOTIFY bits (RFC 3461 4.1); 0 means "not given". */
#define SMTP_DSN_NOTIFY_NEVER	0x01u
#define SMTP_DSN_NOTIFY_SUCCESS	0x02u
#define SMTP_DSN_NOTIFY_FAILURE	0x04u
#define SMTP_DSN_NOTIFY_DELAY	0x08u
#define SMTP_DSN_NOTIFY_ALL	0x0fu

enum smtp_dsn_ret {
	SMTP_DSN_RET_UNSET,
	SMTP_DSN_RET_FULL,
	SMTP_DSN_RET_HDRS,
};

enum smtp_dsn_rc {
	SMTP_DSN_OTHER,		/* not a DSN parameter: the caller judges */
	SMTP_DSN_TAKEN,		/* parsed and stored */
	SMTP_DSN_BAD,		/* bad syntax, over its bound, or twice */
};

struct smtp_dsn_mail {
	enum smtp_dsn_ret	 ret;
	struct span		 envid;		/* xtext as sent; len 0: none */
	bool			 has_envid;
};

struct smtp_dsn_rcpt {
	unsigned		 notify;	/* SMTP_DSN_NOTIFY_*; 0: none */
	struct span		 orcpt;		/* "type;xtext" as sent */
	bool			 has_orcpt;
};

/* One MAIL / RCPT parameter.  The struct starts zeroed per command. */
enum smtp_dsn_rc smtp_dsn_mail_param(const struct smtp_param *,
		    struct smtp_dsn_mail *);
enum smtp_dsn_rc smtp_dsn_rcpt_param(const struct smtp_param *,
		    struct smtp_dsn_rcpt *);

/*
 * The NOTIFY bits as RFC 3461 spells them ("NEVER", "SUCCESS,DELAY"),
 * into out (at least 32 bytes); "" for 0.  And back: a stored spelling
 * to bits, -1 if malformed.
 */
void		smtp_dsn_notify_format(unsigned, char *out, size_t outsz);
int		smtp_dsn_notify_parse(const uint8_t *, size_t, unsigned *);

#endif
