/*
 * smtp_parse.h - pure, bounded parsers for the SMTP dialogue (STYLE R6):
 * command lines, MAIL/RCPT paths (RFC 5321 4.1.2), ESMTP parameters.
 * They fill structs of spans pointing into the caller's bytes; no I/O, no
 * allocation, no globals.  Untrusted: every byte.  Each has a fuzz target.
 */
#ifndef MXGATE_SMTP_PARSE_H
#define MXGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

#define SMTP_CMDLINE_MAX	512	/* RFC 5321 4.5.3.1.4, incl. CRLF */
/*
 * MAIL and RCPT may be longer by what the parameters we offer may add
 * (RFC 5321 4.5.3.1.4 lets extensions raise the bound).  MAIL: SIZE 26
 * (RFC 1870 3 (5)), RET and ENVID 100 (RFC 3461 3), SMTPUTF8 10 (RFC
 * 6531 3.1 (5)), and 14 for " BODY=8BITMIME" (RFC 6152 names no figure).
 * RCPT: NOTIFY and ORCPT 500 (RFC 3461 3; a 500-octet ORCPT value with
 * the longest path and NOTIFY is a line of 802).  Not counted: AUTH=
 * (RFC 4954), not taken on MAIL.  The verb at the head of the line picks
 * the bound (smtp_cmdline_max); every other command keeps 512.
 */
#define SMTP_MAIL_LINE_MAX	(SMTP_CMDLINE_MAX + 26 + 100 + 10 + 14)
#define SMTP_RCPT_LINE_MAX	(SMTP_CMDLINE_MAX + 500)
#define SMTP_LINE_HEAD		5	/* "MAIL " / "RCPT ": enough to choose */
#define SMTP_VERB_MAX		16	/* longer verbs are unknown commands */
#define SMTP_LOCAL_MAX		64	/* RFC 5321 4.5.3.1.1 */
#define SMTP_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX		256	/* RFC 5321 4.5.3.1.3, incl. <> */
#define SMTP_LABEL_MAX		63	/* RFC 1035 2.3.4 */
#define SMTP_PARAMS_MAX		8	/* ESMTP parameters per MAIL/RCPT */

struct span {
	const uint8_t	*p;
	size_t		 len;
};

struct smtp_cmdline {
	struct span	verb;	/* letters only; compare case-insensitively */
	struct span	arg;	/* after one SP; len 0 if none */
};

struct smtp_addr {
	struct span	local;	  /* as written; quotes included if quoted */
	struct span	domain;	  /* as written; [brackets] if literal */
	bool		null;	  /* the null path <> */
	bool		quoted;	  /* local part is a Quoted-string */
	bool		literal;  /* domain is an address literal */
	bool		routed;	  /* a source route was given (and ignored) */
	bool		utf8;	  /* local part or domain is not ASCII */
};

struct smtp_param {
	struct span	key;
	struct span	value;	/* p == NULL when there was no "=" */
};

enum smtp_arg_err {
	SMTP_ARG_OK,
	SMTP_ARG_KEYWORD,	/* no "FROM:" / "TO:" */
	SMTP_ARG_PATH,		/* the address is malformed */
	SMTP_ARG_PARAM,		/* an ESMTP parameter is malformed */
	SMTP_ARG_TOOMANY,	/* more than SMTP_PARAMS_MAX parameters */
	SMTP_ARG_UTF8,		/* 8-bit bytes in the path, not UTF-8 */
};

struct smtp_path_arg {
	struct smtp_addr	addr;
	struct smtp_param	params[SMTP_PARAMS_MAX];
	size_t			nparams;
	enum smtp_arg_err	err;	/* why, when not PARSE_OK */
	bool			bare;	/* lenient: given without "<>" */
};

/*
 * The bound (octets with CRLF) of the command line whose first len bytes
 * are p: SMTP_MAIL_LINE_MAX or SMTP_RCPT_LINE_MAX when it starts with
 * "MAIL " or "RCPT " (any case), else SMTP_CMDLINE_MAX.  Reads at most
 * SMTP_LINE_HEAD bytes; fewer than that give SMTP_CMDLINE_MAX, which is
 * safe while so few have arrived.  Pure.
 */
size_t		smtp_cmdline_max(const uint8_t *, size_t);

/*
 * A command line without its CRLF.  PARSE_BAD: no verb, or a verb with
 * characters other than letters; the argument may hold any byte.
 * PARSE_TOOLONG: len + 2 exceeds smtp_cmdline_max() for the line.
 */
enum parse_rc	smtp_parse_cmdline(const uint8_t *, size_t,
		    struct smtp_cmdline *);

/*
 * The argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path>
 * params").  Blanks between the colon and "<" are tolerated, as most MTAs
 * do.  The null path is allowed for MAIL only; "<postmaster>" is not
 * special-cased here.  PARSE_TOOLONG: a part over its RFC 5321 limit.
 */
enum parse_rc	smtp_parse_mail_arg(const uint8_t *, size_t,
		    struct smtp_path_arg *);
enum parse_rc	smtp_parse_rcpt_arg(const uint8_t *, size_t,
		    struct smtp_path_arg *);

/*
 * Either of them, by flags: SMTP_PA_MAIL for MAIL ("FROM:", the null path
 * allowed), else RCPT; SMTP_PA_LENIENT (envelope_syntax = lenient) also
 * takes a bare "user@dom" (one address, no blanks inside, the same
 * character rules, nothing after it).  Any path may hold UTF-8 (RFC 6531
 * 3.3; addr.utf8 says so and the caller decides whether SMTPUTF8 allows
 * it); bytes that are not strict UTF-8 fail with SMTP_ARG_UTF8.
 */
#define SMTP_PA_MAIL	0x01
#define SMTP_PA_LENIENT	0x02
enum parse_rc	smtp_parse_path_arg(const uint8_t *, size_t, unsigned flags,
		    struct smtp_path_arg *);

/* One path "<...>" exactly (no parameters); for tests and tools. */
enum parse_rc	smtp_parse_path(const uint8_t *, size_t, bool allow_null,
		    struct smtp_addr *);

/*
 * The local part in canonical form: a Quoted-string is unquoted (quoted
 * pairs resolved).  Writes at most outlen bytes, no NUL; returns the
 * length, or -1 if it does not fit.  The result can still contain
 * characters (such as "@" or SP) that a Dot-string cannot.
 */
int		smtp_local_canon(const struct smtp_addr *, char *out,
		    size_t outlen);

/* Case-insensitive compare of a span with a NUL-terminated word. */
bool		span_eq_ci(struct span, const char *);

#endif
