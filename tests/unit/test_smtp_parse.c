/*
 * test_smtp_parse.c - case tables for src/smtp/smtp_parse.c: command
 * lines, paths (RFC 5321 4.1.2), MAIL/RCPT arguments and ESMTP
 * parameters, limits at and one over each bound, smtp_local_canon and
 * span_eq_ci; UTF-8 paths (RFC 6531 3.3: strict UTF-8 or SMTP_ARG_UTF8)
 * and envelope_syntax = lenient (bare addresses, and what stays refused);
 * the longer line bound of MAIL and RCPT.  Every input is copied into a
 * heap block of its exact length, so ASan catches a parser that reads one
 * byte too far.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parse.h"

enum tc_kind { TK_CMD, TK_PATH, TK_PATHNULL, TK_MAIL, TK_RCPT, TK_MAILL,
    TK_RCPTL };

#define F_NULL		0x01
#define F_QUOTED	0x02
#define F_LITERAL	0x04
#define F_ROUTED	0x08
#define F_UTF8		0x10	/* addr.utf8 */
#define F_BARE		0x20	/* lenient: given without <> */
#define NOCHK		(-1)

/*
 * The input is pre + nrep * rep + post (so limits can be hit exactly),
 * or the first len bytes of pre when len is set (for embedded NULs).
 * a/b: CMD verb/arg, otherwise local/domain; NULL skips the check, and
 * alen then checks the length of a instead (NOCHK: nothing).
 */
struct tc {
	enum tc_kind		 kind;
	const char		*pre;
	const char		*rep;
	int			 nrep;
	const char		*post;
	size_t			 len;
	enum parse_rc		 rc;
	enum smtp_arg_err	 err;
	const char		*a;
	const char		*b;
	int			 alen;
	unsigned		 flags;
	int			 nparams;
	const char		*param0;	/* "KEY" or "KEY=VALUE" */
};

#define CMD(in, rc, verb, arg) \
	{ TK_CMD, in, NULL, 0, "", 0, rc, 0, verb, arg, NOCHK, 0, NOCHK, NULL }
#define CMDR(pre, rep, n, post, rc, vlen) \
	{ TK_CMD, pre, rep, n, post, 0, rc, 0, NULL, NULL, vlen, 0, NOCHK, \
	    NULL }
#define CMDN(in, len, rc) \
	{ TK_CMD, in, NULL, 0, "", len, rc, 0, NULL, NULL, NOCHK, 0, NOCHK, \
	    NULL }
#define PATH(in, rc, l, d, fl) \
	{ TK_PATH, in, NULL, 0, "", 0, rc, 0, l, d, NOCHK, fl, NOCHK, NULL }
#define PATHNUL(in, rc, l, d, fl) \
	{ TK_PATHNULL, in, NULL, 0, "", 0, rc, 0, l, d, NOCHK, fl, NOCHK, NULL }
#define PATHR(pre, rep, n, post, rc, llen, fl) \
	{ TK_PATH, pre, rep, n, post, 0, rc, 0, NULL, NULL, llen, fl, NOCHK, \
	    NULL }
#define PATHN(in, len, rc) \
	{ TK_PATH, in, NULL, 0, "", len, rc, 0, NULL, NULL, NOCHK, 0, NOCHK, \
	    NULL }
#define MAIL(in, rc, err, l, d, fl, np, p0) \
	{ TK_MAIL, in, NULL, 0, "", 0, rc, err, l, d, NOCHK, fl, np, p0 }
#define MAILR(pre, rep, n, post, rc, err, np) \
	{ TK_MAIL, pre, rep, n, post, 0, rc, err, NULL, NULL, NOCHK, 0, np, \
	    NULL }
#define RCPT(in, rc, err, l, d, fl, np, p0) \
	{ TK_RCPT, in, NULL, 0, "", 0, rc, err, l, d, NOCHK, fl, np, p0 }
/* envelope_syntax = lenient */
#define MAILL(in, rc, err, l, d, fl, np) \
	{ TK_MAILL, in, NULL, 0, "", 0, rc, err, l, d, NOCHK, fl, np, NULL }
#define RCPTL(in, rc, err, l, d, fl, np) \
	{ TK_RCPTL, in, NULL, 0, "", 0, rc, err, l, d, NOCHK, fl, np, NULL }
#define RCPTLR(pre, rep, n, post, rc, err) \
	{ TK_RCPTL, pre, rep, n, post, 0, rc, err, NULL, NULL, NOCHK, F_BARE, \
	    NOCHK, NULL }

/* "abcdefghi." is 10 bytes: 24 of them make a 240-byte run of labels. */
#define L10	"abcdefghi."
#define A10	"aaaaaaaaaa"

static const struct tc cases[] = {
	/* command lines */
	CMD("MAIL FROM:<a@b.c>", PARSE_OK, "MAIL", "FROM:<a@b.c>"),
	CMD("QUIT", PARSE_OK, "QUIT", ""),
	CMD("quit", PARSE_OK, "quit", ""),
	CMD("NOOP ", PARSE_OK, "NOOP", ""),
	CMD("EHLO  client.test", PARSE_OK, "EHLO", " client.test"),
	CMD("ABCDEFGHIJKLMNOPQRSTUVWXYZ x", PARSE_OK,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "x"),
	CMD("", PARSE_BAD, NULL, NULL),
	CMD(" MAIL", PARSE_BAD, NULL, NULL),
	CMD("MA1L x", PARSE_BAD, NULL, NULL),
	CMD("MAIL:x", PARSE_BAD, NULL, NULL),
	/* the argument's bytes are the command parser's business */
	CMD("NOOP \x01", PARSE_OK, "NOOP", "\x01"),
	CMD("NOOP \x7f", PARSE_OK, "NOOP", "\x7f"),
	CMD("NOOP caf\xc3\xa9", PARSE_OK, "NOOP", "caf\xc3\xa9"),
	CMD("NOOP a\tb", PARSE_OK, "NOOP", "a\tb"),
	CMDN("NOOP a\0b", 8, PARSE_OK),
	CMD("NO\xc3\xa9P x", PARSE_BAD, NULL, NULL),
	CMD("\x01NOOP", PARSE_BAD, NULL, NULL),
	CMDR("NOOP ", "x", 505, "", PARSE_OK, 4),	/* 510 + CRLF = 512 */
	CMDR("NOOP ", "x", 506, "", PARSE_TOOLONG, NOCHK),
	CMDR("", "\x01", 511, "", PARSE_TOOLONG, NOCHK), /* bound first */
	/* MAIL and RCPT: the bound their parameters raise (smtp_parse.h) */
	CMDR("MAIL ", "x", 655, "", PARSE_OK, 4),	/* 660 + CRLF = 662 */
	CMDR("mail ", "x", 656, "", PARSE_TOOLONG, NOCHK),
	CMDR("RCPT ", "x", 1005, "", PARSE_OK, 4),	/* 1010 + CRLF */
	CMDR("Rcpt ", "x", 1006, "", PARSE_TOOLONG, NOCHK),
	CMDR("RCPT TO:<a@b.test> ORCPT=rfc822;", "o", 493,
	    " NOTIFY=SUCCESS,FAILURE,DELAY", PARSE_OK, 4),
	/* any other verb, or MAIL without its SP, keeps 512 */
	CMDR("MAILX ", "x", 505, "", PARSE_TOOLONG, NOCHK),
	CMDR("RCPTTO:", "x", 504, "", PARSE_TOOLONG, NOCHK),
	CMDR("RCPT\t", "x", 506, "", PARSE_TOOLONG, NOCHK),
	CMDR("HELO ", "x", 506, "", PARSE_TOOLONG, NOCHK),
	CMDR("VRFY ", "x", 506, "", PARSE_TOOLONG, NOCHK),
	CMDR("BDAT ", "9", 506, "", PARSE_TOOLONG, NOCHK),

	/* paths: plain, quoted, routing tricks */
	PATH("<user@example.test>", PARSE_OK, "user", "example.test", 0),
	PATH("<User.Name+tag@Example.TEST>", PARSE_OK, "User.Name+tag",
	    "Example.TEST", 0),
	PATH("<a@b>", PARSE_OK, "a", "b", 0),
	PATH("<\"john doe\"@example.test>", PARSE_OK, "\"john doe\"",
	    "example.test", F_QUOTED),
	PATH("<\"user@other.test\"@example.test>", PARSE_OK,
	    "\"user@other.test\"", "example.test", F_QUOTED),
	PATH("<\"a\\\"b\"@example.test>", PARSE_OK, "\"a\\\"b\"",
	    "example.test", F_QUOTED),
	PATH("<\"\"@example.test>", PARSE_OK, "\"\"", "example.test",
	    F_QUOTED),
	PATH("<\"a\tb\"@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\"abc@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\"a\\\x01\"@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user%other.test@example.test>", PARSE_OK, "user%other.test",
	    "example.test", 0),
	PATH("<other.test!user@example.test>", PARSE_OK, "other.test!user",
	    "example.test", 0),
	PATH("<user@other.test@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@example.test:user@other.test>", PARSE_OK, "user",
	    "other.test", F_ROUTED),
	PATH("<@a.test,@b.test:user@c.test>", PARSE_OK, "user", "c.test",
	    F_ROUTED),
	PATH("<@a.test:@b.test:user@c.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@-bad.test:user@c.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@a.test.:user@c.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@a.test,user@c.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@[192.0.2.1]:user@c.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<postmaster>", PARSE_BAD, NULL, NULL, 0),
	PATH("user@example.test", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@example.test", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@>", PARSE_BAD, NULL, NULL, 0),
	PATH("<@>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@example.test> ", PARSE_BAD, NULL, NULL, 0),
	PATH("< user@example.test>", PARSE_BAD, NULL, NULL, 0),

	/* null path */
	PATH("<>", PARSE_BAD, NULL, NULL, 0),
	PATHNUL("<>", PARSE_OK, "", "", F_NULL),
	PATHNUL("<user@example.test>", PARSE_OK, "user", "example.test", 0),
	PATHNUL("<> ", PARSE_BAD, NULL, NULL, 0),
	PATHNUL("", PARSE_BAD, NULL, NULL, 0),

	/* dot-strings and domains */
	PATH("<.user@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user.@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<us..er@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<us(er@example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@example.test.>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@.example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@exa..mple.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@-example.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@example-.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@ex-am--ple.test>", PARSE_OK, "user", "ex-am--ple.test",
	    0),
	PATH("<user@exa_mple.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@123.example>", PARSE_OK, "user", "123.example", 0),

	/* address literals */
	PATH("<user@[192.0.2.1]>", PARSE_OK, "user", "[192.0.2.1]",
	    F_LITERAL),
	PATH("<user@[IPv6:2001:db8::1]>", PARSE_OK, "user",
	    "[IPv6:2001:db8::1]", F_LITERAL),
	PATH("<user@[ipv6:::ffff:192.0.2.1]>", PARSE_OK, "user",
	    "[ipv6:::ffff:192.0.2.1]", F_LITERAL),
	PATH("<user@[x-tag:some.thing]>", PARSE_OK, "user",
	    "[x-tag:some.thing]", F_LITERAL),
	PATH("<user@[192.0.2.256]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2.1 ]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[IPv6:2001:db8::g]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[IPv6:192.0.2.1]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[2001:db8::1]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[x-tag:]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2.1>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2.1]x>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2.1].test>", PARSE_BAD, NULL, NULL, 0),

	/* 8-bit and control bytes: UTF-8 parses (RFC 6531 3.3), the
	 * caller decides whether SMTPUTF8 allows it */
	PATH("<us\xc3\xa9r@example.test>", PARSE_OK, "us\xc3\xa9r",
	    "example.test", F_UTF8),
	PATH("<\"us\xc3\xa9r\"@example.test>", PARSE_OK, "\"us\xc3\xa9r\"",
	    "example.test", F_QUOTED | F_UTF8),
	PATH("<user@ex\x01" "ample.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@exampl\xe9.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@b\xc3\xbc" "cher.test>", PARSE_OK, "user",
	    "b\xc3\xbc" "cher.test", F_UTF8),
	PATH("<user@\xc3\xbc.test>", PARSE_OK, "user", "\xc3\xbc.test",
	    F_UTF8),
	PATH("<\xe6\x97\xa5\xe6\x9c\xac@\xe4\xbe\x8b" ".\xe6\x97\xa5\xe6\x9c\xac>",
	    PARSE_OK, "\xe6\x97\xa5\xe6\x9c\xac",
	    "\xe4\xbe\x8b" ".\xe6\x97\xa5\xe6\x9c\xac", F_UTF8),
	PATH("<\xf0\x9f\x98\x80@x.test>", PARSE_OK, "\xf0\x9f\x98\x80", "x.test",
	    F_UTF8),
	PATH("<jos\xc3\xa9" ".\xc3\xa9@x.test>", PARSE_OK, "jos\xc3\xa9" ".\xc3\xa9",
	    "x.test", F_UTF8),
	PATH("<us\xc3\xa9r@ex-\xc3\xa9.test>", PARSE_OK, "us\xc3\xa9r",
	    "ex-\xc3\xa9.test", F_UTF8),
	PATH("<user@\xc3\xa9-.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<user@[192.0.2.\xc3\xa9]>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\"a\\\xc3\xa9\"@x.test>", PARSE_BAD, NULL, NULL, 0),
	/* not strict UTF-8: overlong, surrogate, > U+10FFFF, C1, cut */
	PATH("<\xc0\xa9@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xc1\xbf" "@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xe0\x80\xaf" "@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xf0\x80\x80\xaf" "@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xed\xa0\x80@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xed\xbf\xbf" "@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xf4\x90\x80\x80@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xf5\x80\x80\x80@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xc2\x80@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xc2\x9f@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<\xc2\xa0" "@x.test>", PARSE_OK, "\xc2\xa0", "x.test", F_UTF8),
	PATH("<\xed\x9f\xbf" "@x.test>", PARSE_OK, "\xed\x9f\xbf", "x.test",
	    F_UTF8),
	PATH("<\xf4\x8f\xbf\xbf" "@x.test>", PARSE_OK, "\xf4\x8f\xbf\xbf",
	    "x.test", F_UTF8),
	PATH("<a\xc3@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<a\xe2\x82@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<a\x80@x.test>", PARSE_BAD, NULL, NULL, 0),
	PATH("<a@x.test\xc3" ">", PARSE_BAD, NULL, NULL, 0),
	PATHN("<user@example.test\0>", 20, PARSE_BAD),
	PATHN("<us\0er@example.test>", 20, PARSE_BAD),

	/* limits: local part 64, label 63, path 256 (incl. <>) */
	PATHR("<", "a", 64, "@b.c>", PARSE_OK, 64, 0),
	PATHR("<", "a", 65, "@b.c>", PARSE_TOOLONG, NOCHK, 0),
	PATHR("<\"", "a", 62, "\"@b.c>", PARSE_OK, 64, F_QUOTED),
	PATHR("<\"", "a", 63, "\"@b.c>", PARSE_TOOLONG, NOCHK, F_QUOTED),
	PATHR("<a@", "b", 63, ".test>", PARSE_OK, 1, 0),
	PATHR("<a@", "b", 64, ".test>", PARSE_TOOLONG, NOCHK, 0),
	PATHR("<a@", L10, 24, "abcdefghijkl>", PARSE_OK, 1, 0),	/* 256 */
	PATHR("<a@", L10, 24, "abcdefghijklm>", PARSE_TOOLONG, NOCHK, 0),
	/* a 255-byte domain cannot fit a 256-byte path: 1 + 2 + 255 + 1 */
	PATHR("<a@", L10, 25, "abcde>", PARSE_TOOLONG, NOCHK, 0),
	PATHR("<", A10, 6, "@" L10 L10 L10 L10 L10 L10 L10 L10 L10 L10
	    L10 L10 L10 L10 L10 L10 L10 L10 L10 "abc>", PARSE_OK, 60, 0),
							/* 256 */
	PATHR("<@", L10, 25, "test:a@b.c>", PARSE_TOOLONG, NOCHK, 0),
	PATHR("<a@[", "1", 260, "]>", PARSE_TOOLONG, NOCHK, 0),
	/* the first error in byte order decides */
	PATHR("<a b@", "x", 300, ">", PARSE_BAD, NOCHK, 0),
	PATHR("<a@", L10, 30, "test>", PARSE_TOOLONG, NOCHK, 0),

	/* MAIL FROM */
	MAIL("FROM:<a@b.c>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0, NULL),
	MAIL("from:<a@b.c>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0, NULL),
	MAIL("FROM: <a@b.c>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0, NULL),
	MAIL("FROM:   <a@b.c>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0,
	    NULL),
	MAIL("FROM:<>", PARSE_OK, SMTP_ARG_OK, "", "", F_NULL, 0, NULL),
	MAIL("FROM:<> SIZE=1000", PARSE_OK, SMTP_ARG_OK, "", "", F_NULL, 1,
	    "SIZE=1000"),
	MAIL("FROM:<a@b.c> SIZE=1000 BODY=8BITMIME", PARSE_OK, SMTP_ARG_OK,
	    "a", "b.c", 0, 2, "SIZE=1000"),
	MAIL("FROM:<a@b.c> BODY=8BITMIME", PARSE_OK, SMTP_ARG_OK, "a", "b.c",
	    0, 1, "BODY=8BITMIME"),
	MAIL("FROM:<a@b.c>  SIZE=1000   ", PARSE_OK, SMTP_ARG_OK, "a", "b.c",
	    0, 1, "SIZE=1000"),
	MAIL("FROM:<a@b.c> ", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0, NULL),
	MAIL("FROM:<a@b.c> SMTPUTF8", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 1,
	    "SMTPUTF8"),
	MAIL("FROM:<a@b.c> X-A=b,c<d>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0,
	    1, "X-A=b,c<d>"),
	MAIL("FROM:<a@b.c> -SIZE=1", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("FROM:<a@b.c> SI_ZE=1", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("FROM:<a@b.c> SIZE=", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("FROM:<a@b.c> SIZE=10=20", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL,
	    0, NOCHK, NULL),
	MAIL("FROM:<a@b.c> SIZE= 1000", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL,
	    0, NOCHK, NULL),
	MAIL("FROM:<a@b.c> =1000", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("FROM:<a@b.c>SIZE=1000", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL,
	    0, NOCHK, NULL),
	MAIL("FROM:<a@b.c> SIZE=1\x01", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL,
	    0, NOCHK, NULL),
	MAIL("FROM:<a@b.c> BODY=8BIT\xff", PARSE_BAD, SMTP_ARG_PARAM, NULL,
	    NULL, 0, NOCHK, NULL),
	MAIL("FROM:<a@b.c>\tSIZE=1", PARSE_BAD, SMTP_ARG_PARAM, NULL, NULL, 0,
	    NOCHK, NULL),
	MAILR("FROM:<a@b.c>", " A=1", 8, "", PARSE_OK, SMTP_ARG_OK, 8),
	MAILR("FROM:<a@b.c>", " A=1", 9, "", PARSE_BAD, SMTP_ARG_TOOMANY,
	    NOCHK),
	MAILR("FROM:<a@b.c>", " A=1", 8, "  ", PARSE_OK, SMTP_ARG_OK, 8),
	MAILR("FROM:<", "a", 65, "@b.c>", PARSE_TOOLONG, SMTP_ARG_PATH,
	    NOCHK),
	MAIL("FROM:a@b.c", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK,
	    NULL),
	MAIL("FROM:", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK, NULL),
	MAIL("FROM:<a@b.c@d.e>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("FROM:<a@b.c", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK,
	    NULL),
	MAIL("FRM:<a@b.c>", PARSE_BAD, SMTP_ARG_KEYWORD, NULL, NULL, 0, NOCHK,
	    NULL),
	MAIL("FROM <a@b.c>", PARSE_BAD, SMTP_ARG_KEYWORD, NULL, NULL, 0,
	    NOCHK, NULL),
	MAIL("TO:<a@b.c>", PARSE_BAD, SMTP_ARG_KEYWORD, NULL, NULL, 0, NOCHK,
	    NULL),
	MAIL("", PARSE_BAD, SMTP_ARG_KEYWORD, NULL, NULL, 0, NOCHK, NULL),
	/* UTF-8: parsed, flagged; bytes that are no UTF-8: SMTP_ARG_UTF8 */
	MAIL("FROM:<jos\xc3\xa9@b.c> SMTPUTF8", PARSE_OK, SMTP_ARG_OK,
	    "jos\xc3\xa9", "b.c", F_UTF8, 1, "SMTPUTF8"),
	MAIL("FROM:<jos\xc3\xa9@b.c>", PARSE_OK, SMTP_ARG_OK, "jos\xc3\xa9",
	    "b.c", F_UTF8, 0, NULL),
	MAIL("FROM:<jos\xe9" "@b.c> SMTPUTF8", PARSE_BAD, SMTP_ARG_UTF8, NULL,
	    NULL, 0, NOCHK, NULL),
	MAIL("FROM:<a@b\xc0\xae" ".c> SMTPUTF8", PARSE_BAD, SMTP_ARG_UTF8, NULL,
	    NULL, 0, NOCHK, NULL),
	MAIL("FROM:<\"\xed\xa0\x80\"@b.c>", PARSE_BAD, SMTP_ARG_UTF8, NULL,
	    NULL, 0, NOCHK, NULL),
	MAIL("FROM:<@r\xff" ".test:a@b.c>", PARSE_BAD, SMTP_ARG_UTF8, NULL,
	    NULL, 0, NOCHK, NULL),
	/* the first error decides: a bad path before a bad byte */
	MAIL("FROM:<a b\xff" "@b.c>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK, NULL),
	/* strict (the default) as it was: a blank after the colon, no
	 * bare address */
	MAIL("FROM: a@b.c", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK,
	    NULL),

	/* envelope_syntax = lenient */
	MAILL("FROM:a@b.c", PARSE_OK, SMTP_ARG_OK, "a", "b.c", F_BARE, 0),
	MAILL("FROM: a@b.c", PARSE_OK, SMTP_ARG_OK, "a", "b.c", F_BARE, 0),
	MAILL("from:  a@b.c  ", PARSE_OK, SMTP_ARG_OK, "a", "b.c", F_BARE, 0),
	MAILL("FROM: <a@b.c>", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 0),
	MAILL("FROM:<a@b.c> SIZE=10", PARSE_OK, SMTP_ARG_OK, "a", "b.c", 0, 1),
	MAILL("FROM:<>", PARSE_OK, SMTP_ARG_OK, "", "", F_NULL, 0),
	MAILL("FROM:jos\xc3\xa9@b.c", PARSE_OK, SMTP_ARG_OK, "jos\xc3\xa9",
	    "b.c", F_BARE | F_UTF8, 0),
	MAILL("FROM:\"a.b\"@c.d", PARSE_OK, SMTP_ARG_OK, "\"a.b\"", "c.d",
	    F_BARE | F_QUOTED, 0),
	MAILL("FROM:a@b.c SIZE=10", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK),
	MAILL("FROM:a b@c.d", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:\"a b\"@c.d", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK),
	MAILL("FROM:a@b.c>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:<a@b.c", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:a@b.c<", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:   ", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:a", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:@x:a@b.c", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:a@b.c@d.e", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK),
	MAILL("FROM:a@b.c\tx", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	MAILL("FROM:a\xff" "@b.c", PARSE_BAD, SMTP_ARG_UTF8, NULL, NULL, 0,
	    NOCHK),
	MAILL("FROM a@b.c", PARSE_BAD, SMTP_ARG_KEYWORD, NULL, NULL, 0, NOCHK),
	RCPTL("TO:user@example.test", PARSE_OK, SMTP_ARG_OK, "user",
	    "example.test", F_BARE, 0),
	RCPTL("TO: user@example.test ", PARSE_OK, SMTP_ARG_OK, "user",
	    "example.test", F_BARE, 0),
	RCPTL("TO: <user@example.test>", PARSE_OK, SMTP_ARG_OK, "user",
	    "example.test", 0, 0),
	RCPTL("TO:user@[192.0.2.1]", PARSE_OK, SMTP_ARG_OK, "user",
	    "[192.0.2.1]", F_BARE | F_LITERAL, 0),
	RCPTL("TO:@x:a@b", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	RCPTL("TO:<a@b", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	RCPTL("TO:a@b NOTIFY=NEVER", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK),
	RCPTL("TO:postmaster", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	RCPTL("TO:<>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	RCPTL("TO:a@b c@d", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK),
	/* the same bounds as <path>: 254 bytes bare, 64 in the local part */
	RCPTLR("TO:a@", L10, 24, "abcdefghijkl", PARSE_OK, SMTP_ARG_OK),
	RCPTLR("TO:a@", L10, 24, "abcdefghijklm", PARSE_TOOLONG,
	    SMTP_ARG_PATH),
	RCPTLR("TO:", "a", 65, "@b.c", PARSE_TOOLONG, SMTP_ARG_PATH),

	/* RCPT TO */
	RCPT("TO:<user@example.test>", PARSE_OK, SMTP_ARG_OK, "user",
	    "example.test", 0, 0, NULL),
	RCPT("to:<user@example.test> NOTIFY=NEVER", PARSE_OK, SMTP_ARG_OK,
	    "user", "example.test", 0, 1, "NOTIFY=NEVER"),
	RCPT("TO: <user@example.test>", PARSE_OK, SMTP_ARG_OK, "user",
	    "example.test", 0, 0, NULL),
	RCPT("TO:<@relay.test:user@example.test>", PARSE_OK, SMTP_ARG_OK,
	    "user", "example.test", F_ROUTED, 0, NULL),
	RCPT("TO:<\"user@other.test\"@example.test>", PARSE_OK, SMTP_ARG_OK,
	    "\"user@other.test\"", "example.test", F_QUOTED, 0, NULL),
	RCPT("TO:<user%other.test@example.test>", PARSE_OK, SMTP_ARG_OK,
	    "user%other.test", "example.test", 0, 0, NULL),
	RCPT("TO:<user@[192.0.2.1]>", PARSE_OK, SMTP_ARG_OK, "user",
	    "[192.0.2.1]", F_LITERAL, 0, NULL),
	RCPT("TO:<>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0, NOCHK, NULL),
	RCPT("TO:<postmaster>", PARSE_BAD, SMTP_ARG_PATH, NULL, NULL, 0,
	    NOCHK, NULL),
	RCPT("TO:<user@other.test@example.test>", PARSE_BAD, SMTP_ARG_PATH,
	    NULL, NULL, 0, NOCHK, NULL),
	RCPT("FROM:<user@example.test>", PARSE_BAD, SMTP_ARG_KEYWORD, NULL,
	    NULL, 0, NOCHK, NULL),
	RCPT("TO:<user@example.test> NOTIFY=", PARSE_BAD, SMTP_ARG_PARAM,
	    NULL, NULL, 0, NOCHK, NULL),
};

/* A heap block of exactly the input's length, no NUL after it. */
static uint8_t *
tc_input(const struct tc *t, size_t *lenp)
{
	size_t	 pl, rl, ql, len, i;
	uint8_t	*p;

	pl = t->len ? t->len : strlen(t->pre);
	rl = t->rep ? strlen(t->rep) : 0;
	ql = t->len ? 0 : strlen(t->post);
	len = pl + rl * (size_t)t->nrep + ql;
	p = malloc(len ? len : 1);
	assert_non_null(p);
	memcpy(p, t->pre, pl);
	for (i = 0; i < (size_t)t->nrep; i++)
		memcpy(p + pl + i * rl, t->rep, rl);
	memcpy(p + len - ql, t->post, ql);
	*lenp = len;
	return p;
}

/* Which row is running, printable whatever bytes it holds. */
static void
tc_print(size_t i, const struct tc *t)
{
	char	show[64];
	size_t	k;

	for (k = 0; k + 1 < sizeof(show) && t->pre[k] != '\0'; k++)
		show[k] = t->pre[k] >= 0x20 && t->pre[k] < 0x7f ?
		    t->pre[k] : '?';
	show[k] = '\0';
	print_message("case %zu: %s\n", i, show);
}

static void
span_check(struct span s, const uint8_t *in, size_t len, const char *want,
    int wantlen)
{
	if (s.len > 0) {
		assert_true(s.p >= in && s.p + s.len <= in + len);
	}
	if (want != NULL) {
		assert_int_equal(s.len, strlen(want));
		assert_memory_equal(s.p, want, s.len);
	} else if (wantlen != NOCHK)
		assert_int_equal(s.len, wantlen);
}

static void
addr_check(const struct tc *t, const struct smtp_addr *a,
    const uint8_t *in, size_t len)
{
	span_check(a->local, in, len, t->a, t->alen);
	span_check(a->domain, in, len, t->b, NOCHK);
	assert_int_equal(a->null, !!(t->flags & F_NULL));
	assert_int_equal(a->quoted, !!(t->flags & F_QUOTED));
	assert_int_equal(a->literal, !!(t->flags & F_LITERAL));
	assert_int_equal(a->routed, !!(t->flags & F_ROUTED));
	assert_int_equal(a->utf8, !!(t->flags & F_UTF8));
}

static void
param0_check(const struct smtp_param *pa, const char *want)
{
	char	got[128];
	int	n;

	if (pa->value.p == NULL)
		n = snprintf(got, sizeof(got), "%.*s", (int)pa->key.len,
		    (const char *)pa->key.p);
	else
		n = snprintf(got, sizeof(got), "%.*s=%.*s",
		    (int)pa->key.len, (const char *)pa->key.p,
		    (int)pa->value.len, (const char *)pa->value.p);
	assert_true(n > 0 && (size_t)n < sizeof(got));
	assert_string_equal(got, want);
}

static void
arg_check(const struct tc *t, const uint8_t *in, size_t len)
{
	struct smtp_path_arg	arg;
	enum parse_rc		rc;

	if (t->kind == TK_MAIL || t->kind == TK_RCPT)
		rc = t->kind == TK_MAIL ? smtp_parse_mail_arg(in, len, &arg) :
		    smtp_parse_rcpt_arg(in, len, &arg);
	else
		rc = smtp_parse_path_arg(in, len, SMTP_PA_LENIENT |
		    (t->kind == TK_MAILL ? SMTP_PA_MAIL : 0), &arg);
	assert_int_equal(rc, t->rc);
	assert_int_equal(arg.err, t->err);
	if (rc != PARSE_OK)
		return;
	addr_check(t, &arg.addr, in, len);
	assert_int_equal(arg.bare, !!(t->flags & F_BARE));
	if (t->nparams != NOCHK)
		assert_int_equal(arg.nparams, t->nparams);
	if (t->param0 != NULL)
		param0_check(&arg.params[0], t->param0);
}

static void
test_case_table(void **state)
{
	struct smtp_cmdline	cl;
	struct smtp_addr	a;
	const struct tc		*t;
	enum parse_rc		rc;
	uint8_t			*in;
	size_t			 i, len;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = &cases[i];
		tc_print(i, t);
		in = tc_input(t, &len);
		switch (t->kind) {
		case TK_CMD:
			rc = smtp_parse_cmdline(in, len, &cl);
			assert_int_equal(rc, t->rc);
			if (rc == PARSE_OK) {
				span_check(cl.verb, in, len, t->a, t->alen);
				span_check(cl.arg, in, len, t->b, NOCHK);
			}
			break;
		case TK_PATH:
		case TK_PATHNULL:
			rc = smtp_parse_path(in, len, t->kind == TK_PATHNULL,
			    &a);
			assert_int_equal(rc, t->rc);
			if (rc == PARSE_OK)
				addr_check(t, &a, in, len);
			break;
		case TK_MAIL:
		case TK_RCPT:
		case TK_MAILL:
		case TK_RCPTL:
			arg_check(t, in, len);
			break;
		}
		free(in);
	}
}

/* The bound from the head of a line: fewer than 5 bytes give 512. */
static void
test_cmdline_max(void **state)
{
	static const struct {
		const char	*head;
		size_t		 want;
	} mc[] = {
		{ "", SMTP_CMDLINE_MAX }, { "M", SMTP_CMDLINE_MAX },
		{ "MAIL", SMTP_CMDLINE_MAX }, { "RCPT", SMTP_CMDLINE_MAX },
		{ "MAIL ", SMTP_MAIL_LINE_MAX }, { "mAiL FROM:<>",
		SMTP_MAIL_LINE_MAX }, { "RCPT ", SMTP_RCPT_LINE_MAX },
		{ "rcpt TO:<a@b>", SMTP_RCPT_LINE_MAX },
		{ "MAIL:", SMTP_CMDLINE_MAX }, { "RCPT\t", SMTP_CMDLINE_MAX },
		{ "NOOP ", SMTP_CMDLINE_MAX }, { "XMAIL ", SMTP_CMDLINE_MAX },
		{ "M\xc3\xa1IL ", SMTP_CMDLINE_MAX },
	};
	uint8_t	*in;
	size_t	 i, len;

	(void)state;
	assert_int_equal(SMTP_MAIL_LINE_MAX, 662);
	assert_int_equal(SMTP_RCPT_LINE_MAX, 1012);
	for (i = 0; i < sizeof(mc) / sizeof(mc[0]); i++) {
		len = strlen(mc[i].head);
		in = malloc(len ? len : 1);
		assert_non_null(in);
		memcpy(in, mc[i].head, len);
		if (smtp_cmdline_max(in, len) != mc[i].want)
			fail_msg("case %zu %s: got %zu", i, mc[i].head,
			    smtp_cmdline_max(in, len));
		free(in);
	}
}

struct canon_tc {
	const char	*path;
	size_t		 outlen;
	int		 rc;
	const char	*want;
};

static const struct canon_tc canon_cases[] = {
	{ "<User.Name@x.test>", 64, 9, "User.Name" },
	{ "<\"john doe\"@x.test>", 64, 8, "john doe" },
	{ "<\"a\\\"b\"@x.test>", 64, 3, "a\"b" },
	{ "<\"a\\\\b\"@x.test>", 64, 3, "a\\b" },
	{ "<\"\\x\"@x.test>", 64, 1, "x" },
	{ "<\"user@other.test\"@x.test>", 64, 15, "user@other.test" },
	{ "<\"\"@x.test>", 64, 0, "" },
	{ "<>", 64, 0, "" },
	{ "<abcdef@x.test>", 6, 6, "abcdef" },
	{ "<abcdef@x.test>", 5, -1, NULL },
	{ "<\"abc\"@x.test>", 3, 3, "abc" },
	{ "<\"abc\"@x.test>", 2, -1, NULL },
	{ "<\"a\\bc\"@x.test>", 3, 3, "abc" },
	{ "<\"a\\bc\"@x.test>", 0, -1, NULL },
};

static void
test_local_canon(void **state)
{
	const struct canon_tc	*t;
	struct smtp_addr	 a;
	char			 out[80];
	size_t			 i, k;
	int			 n;

	(void)state;
	for (i = 0; i < sizeof(canon_cases) / sizeof(canon_cases[0]); i++) {
		t = &canon_cases[i];
		print_message("canon %zu: %s\n", i, t->path);
		assert_int_equal(smtp_parse_path((const uint8_t *)t->path,
		    strlen(t->path), true, &a), PARSE_OK);
		memset(out, '#', sizeof(out));
		n = smtp_local_canon(&a, out, t->outlen);
		assert_int_equal(n, t->rc);
		/* nothing written past outlen */
		for (k = t->outlen; k < sizeof(out); k++)
			assert_int_equal(out[k], '#');
		if (t->want != NULL)
			assert_memory_equal(out, t->want, strlen(t->want));
	}
}

struct eq_tc {
	const char	*span;
	const char	*word;
	bool		 eq;
};

static const struct eq_tc eq_cases[] = {
	{ "MAIL", "mail", true },
	{ "mail", "MAIL", true },
	{ "DaTa", "DATA", true },
	{ "", "", true },
	{ "MAI", "MAIL", false },
	{ "MAILX", "MAIL", false },
	{ "DAT@", "DATA", false },	/* '@' is 'A' - 1 */
	{ "[", "{", false },		/* equal under "| 0x20" */
	{ "\xcd" "AIL", "mail", false },
};

static void
test_span_eq_ci(void **state)
{
	const struct eq_tc	*t;
	struct span		 s;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(eq_cases) / sizeof(eq_cases[0]); i++) {
		t = &eq_cases[i];
		s.p = (const uint8_t *)t->span;
		s.len = strlen(t->span);
		assert_int_equal(span_eq_ci(s, t->word), t->eq);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_case_table),
		cmocka_unit_test(test_cmdline_max),
		cmocka_unit_test(test_local_canon),
		cmocka_unit_test(test_span_eq_ci),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
