/*
 * test_dsn.c - src/deliver/dsn.c: case tables for dsn_header_len (blank
 * line forms, folds, bare LF, the cap) and dsn_is_report (Content-Type
 * and Auto-Submitted, folded, commented, any case, body never scanned);
 * then dsn_build over a table of inputs, each output checked for the
 * invariants (CRLF only, lines <= 998, the boundary only where it
 * belongs, the 3 parts in order, no byte of the original body, no
 * injected header line) and for the strings each case expects; reports
 * about UTF-8 addresses or an SMTPUTF8 original's UTF-8 headers are
 * global (RFC 6533), strict UTF-8 throughout, ASCII ones as before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/dsn.h"
#include "lib/utf8.h"

/* A heap copy of exactly len bytes, so ASan sees a read past the end. */
static uint8_t *
dup_exact(const char *s, size_t len)
{
	uint8_t	*p = malloc(len ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static const struct {
	const char	*in;
	size_t		 len;		/* 0: strlen(in) */
	size_t		 max;
	size_t		 want;
} hlen_cases[] = {
	{ "A: b\r\n\r\nbody\r\n", 0, 100, 8 },
	{ "A: b\n\nbody\n", 0, 100, 6 },
	{ "A: b\r\n\nbody", 0, 100, 7 },
	{ "A: b\n\r\nbody", 0, 100, 7 },
	{ "A: b\r\nC: d\r\n", 0, 100, 12 },	/* no blank line: all */
	{ "A: b\r\nC: d", 0, 100, 10 },
	{ "", 0, 100, 0 },
	{ "\r\nbody", 0, 100, 2 },
	{ "\nbody", 0, 100, 1 },
	{ "A: b\r\n c\r\n\r\nX", 0, 100, 12 },	/* folded */
	{ "A: b\r\n \r\nX\r\n\r\nY", 0, 100, 14 },	/* WSP: no end */
	{ "A: b\r\r\n\r\nX", 0, 100, 9 },
	{ "A: b\r\rX\r\n\r\nY", 0, 100, 11 },		/* bare CR */
	{ "A:\0b\r\n\r\nX", 9, 100, 8 },
	{ "A: bbbbbbbb\r\n\r\nbody", 0, 5, 5 },	/* the cap */
	{ "A: b\r\n\r\nbody", 0, 7, 7 },	/* blank line cut by the cap */
	{ "A: b\r\n\r\nbody", 0, 8, 8 },
	{ "A: b\r\n\r\nbody", 0, 0, 0 },
};

static void
test_header_len(void **state)
{
	uint8_t	*p;
	size_t	 i, len, got;

	(void)state;
	for (i = 0; i < sizeof(hlen_cases) / sizeof(hlen_cases[0]); i++) {
		len = hlen_cases[i].len ? hlen_cases[i].len :
		    strlen(hlen_cases[i].in);
		p = dup_exact(hlen_cases[i].in, len);
		got = dsn_header_len(p, len, hlen_cases[i].max);
		if (got != hlen_cases[i].want)
			fail_msg("case %zu: got %zu, want %zu", i, got,
			    hlen_cases[i].want);
		free(p);
	}
}

static const struct {
	const char	*in;
	bool		 want;
} report_cases[] = {
	{ "Content-Type: multipart/report; report-type=delivery-status\r\n"
	    "\r\n", true },
	{ "content-type: MULTIPART/Report;x=y\r\n\r\n", true },
	{ "Content-Type:\r\n multipart/report;\r\n\treport-type=x\r\n\r\n",
	    true },
	{ "Content-Type: multipart\r\n /report\r\n\r\n", true },
	{ "Content-Type: (a (nested) comment) multipart/(c)report\r\n", true },
	{ "Content-Type : multipart/report\r\n", true },
	{ "Subject: x\nContent-Type: multipart/report\n\n", true },
	{ "Content-Type: multipart/report", true },
	{ "Content-Type: multipart/mixed; boundary=x\r\n\r\n", false },
	{ "Content-Type: multipart/reportx\r\n", false },
	{ "Content-Type: text/plain; x=\"multipart/report\"\r\n", false },
	{ "Content-Type: (multipart/report\r\n", false },
	{ "X-Content-Type: multipart/report\r\n", false },
	{ "Subject: x\r\n Content-Type: multipart/report\r\n", false },
	{ " Content-Type: multipart/report\r\n", false },
	{ "Subject: hi\r\n\r\nContent-Type: multipart/report\r\n", false },
	{ "Auto-Submitted: auto-replied\r\n\r\n", true },
	{ "auto-submitted: AUTO-GENERATED\r\n", true },
	{ "Auto-Submitted: no-thanks\r\n", true },
	{ "Auto-Submitted:\r\n\r\n", true },
	{ "Auto-Submitted: no\r\n\r\n", false },
	{ "Auto-Submitted: No (a human)\r\n", false },
	{ "Auto-Submitted:\r\n\tno\r\n", false },
	{ "Auto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n", true },
	{ "From: a@b\r\n\r\nAuto-Submitted: auto-replied\r\n", false },
	{ "Auto-Submitted auto-replied\r\n", false },
	{ "", false },
	{ "\r\nAuto-Submitted: auto-replied\r\n", false },
};

static void
test_is_report(void **state)
{
	uint8_t	*p;
	size_t	 i, len;

	(void)state;
	for (i = 0; i < sizeof(report_cases) / sizeof(report_cases[0]); i++) {
		len = strlen(report_cases[i].in);
		p = dup_exact(report_cases[i].in, len);
		if (dsn_is_report(p, len) != report_cases[i].want)
			fail_msg("case %zu: want %d: %s", i,
			    report_cases[i].want, report_cases[i].in);
		free(p);
	}
}

/*
 * Only the header section is scanned, and only its first 64 KiB (a field
 * the cap cuts is still read, so it errs towards "report").
 */
static void
test_is_report_cap(void **state)
{
	static const char	 line[] = "X-Filler: 0123456789\r\n";
	static const char	 tail[] = "Auto-Submitted: auto-replied\r\n";
	size_t			 n = 0, len;
	uint8_t			*p;

	(void)state;
	len = DSN_HEADERS_MAX + sizeof(line) + sizeof(tail);
	assert_non_null(p = malloc(len));
	while (n + sizeof(line) - 1 <= DSN_HEADERS_MAX - sizeof(tail) + 1) {
		memcpy(p + n, line, sizeof(line) - 1);
		n += sizeof(line) - 1;
	}
	memcpy(p + n, tail, sizeof(tail) - 1);
	assert_true(dsn_is_report(p, n + sizeof(tail) - 1));
	while (n < DSN_HEADERS_MAX) {	/* the tail starts past the cap */
		memcpy(p + n, line, sizeof(line) - 1);
		n += sizeof(line) - 1;
	}
	memcpy(p + n, tail, sizeof(tail) - 1);
	assert_true(n + sizeof(tail) - 1 <= len);
	assert_false(dsn_is_report(p, n + sizeof(tail) - 1));
	free(p);
}

/*
 * dsn_build.
 */

#define NOW	1700003600	/* Tue, 14 Nov 2023 23:13:20 +0000 */
#define ARRIVAL	1700000000	/* Tue, 14 Nov 2023 22:13:20 +0000 */
#define MARK	"BODYMARKER"	/* in originals' bodies; never output */

static const char std_msg[] =
    "Subject: hello\r\nFrom: alice@sender.test\r\n"
    "To: bob@example.org\r\n\r\n" MARK " line 1\r\n" MARK "\r\n";

struct build_case {
	const char	*name;
	const char	*msg;		/* NULL: none */
	size_t		 msglen;	/* 0: strlen(msg) */
	const char	*sender;
	const char	*host;		/* NULL: gw.example.org */
	struct dsn_rcpt	 rcpts[3];
	size_t		 nrcpts;
	int		 rc;
	size_t		 nparts;
	const char	*want[10];
	const char	*never[5];
	bool		 smtputf8;	/* the original came with SMTPUTF8 */
};

static const struct build_case build_cases[] = {
	{ "failed, one recipient", std_msg, 0, "alice@sender.test", NULL,
	    { { "bob@example.org", "failed", "5.1.1",
	    "550 5.1.1 User unknown", "mx.example.org", NULL } }, 1, 0, 3,
	    { "From: Mail Delivery System <MAILER-DAEMON@gw.example.org>\r\n"
	    "To: <alice@sender.test>\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "Date: Tue, 14 Nov 2023 23:13:20 +0000\r\n"
	    "Message-ID: <Q1.1700003600.dsn@gw.example.org>\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"",
	    "Content-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; gw.example.org\r\n"
	    "X-Mxgate-Queue-ID: Q1\r\n"
	    "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "\r\nFinal-Recipient: rfc822; bob@example.org\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.example.org\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--",
	    "Content-Type: text/rfc822-headers\r\n\r\n"
	    "Subject: hello\r\nFrom: alice@sender.test\r\n"
	    "To: bob@example.org\r\n\r\n--",
	    "\r\n<bob@example.org>: failed, status 5.1.1\r\n"
	    "    remote host: mx.example.org\r\n"
	    "    reply: 550 5.1.1 User unknown\r\n",
	    "Only the header section of your message is returned below." },
	    { "Content-Transfer-Encoding", "delayed" }, false },
	{ "every recipient delayed", std_msg, 0, "alice@sender.test", NULL,
	    { { "bob@example.org", "delayed", "4.4.1", NULL, NULL, NULL },
	    { "carol@example.org", "delayed", "4.4.2", NULL, NULL, NULL } }, 2, 0,
	    3, { "Subject: Delayed Mail (still being retried)\r\n",
	    "Action: delayed\r\nStatus: 4.4.1\r\n\r\n"
	    "Final-Recipient: rfc822; carol@example.org\r\n"
	    "Action: delayed\r\nStatus: 4.4.2\r\n\r\n--",
	    "will keep trying" },
	    { "Subject: Undelivered", "Remote-MTA", "Diagnostic-Code" }, false },
	{ "failed and delayed", std_msg, 0, "alice@sender.test", NULL,
	    { { "bob@example.org", "delayed", "4.4.1", NULL, NULL, NULL },
	    { "carol@example.org", "failed", "5.2.2", "552 full", NULL, NULL } },
	    2, 0, 3, { "Subject: Undelivered Mail Returned to Sender\r\n",
	    "Those marked \"delayed\"", "Action: failed\r\nStatus: 5.2.2\r\n" },
	    { "Delayed Mail" }, false },
	{ "injection everywhere", std_msg, 0,
	    "alice@sender.test>\r\nBcc: victim@else.test", "gw\r\nBcc: x",
	    { { "bob@example.org\r\nX-Evil: 1", "failed\r\nX-Evil: 2",
	    "5.1.1\r\nX-Evil: 3",
	    "550 5.1.1 no\r\n\r\nX-Evil: 4\r\n.\r\nMAIL FROM:<>",
	    "mx\r\nX-Evil: 5", NULL } }, 1, 0, 3,
	    { "To: <alice@sender.test> Bcc: victim@else.test>\r\n",
	    "Final-Recipient: rfc822; bob@example.org X-Evil: 1\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n",
	    "Diagnostic-Code: smtp; 550 5.1.1 no X-Evil: 4 . MAIL FROM:<>\r\n",
	    "Remote-MTA: dns; mx X-Evil: 5\r\n",
	    "MAILER-DAEMON@gwBcc:x>" },
	    { "\nX-Evil", "\nBcc", "\n.\r", "\nMAIL" }, false },
	{ "bare LF original", "Subject: lf\nFrom: a@b.test\n\n" MARK "\n", 0,
	    "a@b.test", NULL, { { "x@example.org", "failed", "5.1.1", NULL,
	    NULL, NULL } }, 1, 0, 3,
	    { "\r\n\r\nSubject: lf\r\nFrom: a@b.test\r\n\r\n--" }, { NULL },
	    false },
	{ "header section only, no blank line", "Subject: only\r\nX-Y: z", 0,
	    "a@b.test", NULL, { { "x@example.org", "failed", "5.1.1", NULL,
	    NULL, NULL } }, 1, 0, 3, { "\r\n\r\nSubject: only\r\nX-Y: z\r\n\r\n--" },
	    { NULL }, false },
	{ "no header section", "\r\n" MARK "\r\n", 0, "a@b.test", NULL,
	    { { "x@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0, 2,
	    { "Status: 5.1.1\r\n\r\n--" }, { "rfc822-headers",
	    "header section" }, false },
	{ "no original", NULL, 0, "a@b.test", NULL,
	    { { "x@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0, 2,
	    { "Final-Recipient" }, { "rfc822-headers", "header section" },
	    false },
	{ "the default boundary in the headers",
	    "X-Trap: Q1.1700003600/gw.example.org\r\n"
	    "--Q1.1700003600/gw.example.org\r\n\r\n" MARK, 0, "a@b.test", NULL,
	    { { "x@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0, 3,
	    { "\tboundary=\"Q1.", "X-Trap: Q1.1700003600/gw.example.org\r\n" },
	    { "boundary=\"Q1.1700003600/gw.example.org\"" }, false },
	{ "8-bit header", "Subject: caf\xc3\xa9\r\n\r\n" MARK, 0, "a@b.test",
	    NULL, { { "x@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1,
	    0, 3, { "\tboundary=\"Q1.1700003600/gw.example.org\"\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n",
	    "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\xc3\xa9\r\n" },
	    { NULL }, false },
	{ "controls in the headers", "Subject: a\0b\x01" "c\rd\x7f\r\n"
	    "X: \t\r\r\n\r\n" MARK, 38, "a@b.test", NULL,
	    { { "x@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0, 3,
	    { "\r\nSubject: a?b?c?d?\r\nX: \t?\r\n\r\n--" }, { NULL }, false },
	/* bytes that are not UTF-8 (no SMTPUTF8 took them): '?', not global */
	{ "8-bit addresses and odd status", std_msg, 0,
	    "\xe9\xe9@b.test", NULL,
	    { { "\xff@example.org", "DELAYED", "4.x.1", "\xe2\x80\x9c", NULL, NULL },
	    { "y@example.org", "bogus", "5.1", NULL, NULL, NULL },
	    { "z@example.org", NULL, "5.1234.1", NULL, NULL, NULL } }, 3, 0, 3,
	    { "To: <??@b.test>\r\n", "Final-Recipient: rfc822; ?@example.org"
	    "\r\nAction: delayed\r\nStatus: 4.0.0\r\nDiagnostic-Code: smtp; "
	    "???\r\n", "Final-Recipient: rfc822; y@example.org\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n",
	    "Final-Recipient: rfc822; z@example.org\r\n"
	    "Action: failed\r\nStatus: 5.0.0\r\n" }, { "\xff", "\xe9",
	    "global" }, false },
	/* RFC 6533: a UTF-8 recipient makes the report global */
	{ "UTF-8 recipient", std_msg, 0, "alice@sender.test", NULL,
	    { { "jos\xc3\xa9@example.org", "failed", "5.1.1",
	    "550 5.1.1 unknown", NULL, NULL } }, 1, 0, 3,
	    { "Content-Type: multipart/report; "
	    "report-type=global-delivery-status;\r\n\tboundary=\"Q1."
	    "1700003600/gw.example.org\"\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n",
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n",
	    "\r\n<jos\xc3\xa9@example.org>: failed, status 5.1.1\r\n",
	    "Content-Type: message/global-delivery-status\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\n",
	    "\r\nFinal-Recipient: utf-8; jos\xc3\xa9@example.org\r\n"
	    "Action: failed\r\nStatus: 5.1.1\r\n",
	    "Content-Type: message/global-headers\r\n\r\nSubject: hello\r\n",
	    "To: <alice@sender.test>\r\n" },
	    { "rfc822", "report-type=delivery-status", "us-ascii", "?" },
	    false },
	/* unitext (RFC 6533 3): SP, '+', '=' and '\\' as \x{HH}; an ASCII
	 * recipient stays rfc822, one that is not UTF-8 is cleaned */
	{ "UTF-8, ASCII and broken recipients", std_msg, 0, "a@b.test", NULL,
	    { { "\"j\xc3\xb6 +=\\\\x\"@example.org", "failed", "5.1.1", NULL,
	    NULL, NULL },
	    { "bob@example.org", "failed", "5.1.1", NULL, NULL, NULL },
	    { "b\xc3@example.org", "delayed", "4.4.1", NULL, NULL, NULL } }, 3,
	    0, 3, { "Final-Recipient: utf-8; "
	    "\"j\xc3\xb6\\x{20}\\x{2B}\\x{3D}\\x{5C}\\x{5C}x\"@example.org\r\n",
	    "Final-Recipient: rfc822; bob@example.org\r\n",
	    "Final-Recipient: rfc822; b?@example.org\r\n",
	    "\r\n<\"j\xc3\xb6 +=\\\\x\"@example.org>: failed, status 5.1.1",
	    "\r\n<b?@example.org>: delayed, status 4.4.1\r\n",
	    "message/global-delivery-status" }, { "\xc3@", NULL }, false },
	/* a UTF-8 sender: its report's To: keeps it (RFC 6532) */
	{ "UTF-8 sender", std_msg, 0, "jos\xc3\xa9@sender.test", NULL,
	    { { "bob@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0,
	    3, { "To: <jos\xc3\xa9@sender.test>\r\n",
	    "report-type=global-delivery-status;",
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n",
	    "Content-Type: message/global-delivery-status\r\n\r\n",
	    "Final-Recipient: rfc822; bob@example.org\r\n",
	    "Content-Type: message/global-headers\r\n\r\n" },
	    { "Content-Transfer-Encoding", "text/rfc822-headers" }, false },
	/* UTF-8 headers of an SMTPUTF8 original, ASCII addresses: global */
	{ "UTF-8 header, SMTPUTF8", "Subject: caf\xc3\xa9\r\n\r\n" MARK, 0,
	    "a@b.test", NULL, { { "x@example.org", "failed", "5.6.9", NULL,
	    NULL, NULL } }, 1, 0, 3, { "report-type=global-delivery-status;",
	    "Content-Type: message/global-headers\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n\r\nSubject: caf\xc3\xa9\r\n",
	    "Final-Recipient: rfc822; x@example.org\r\n" },
	    { "text/rfc822-headers", NULL }, true },
	/* SMTPUTF8 but nothing to show that is not ASCII: as ever */
	{ "ASCII, SMTPUTF8", std_msg, 0, "alice@sender.test", NULL,
	    { { "bob@example.org", "failed", "5.1.1", NULL, NULL, NULL } }, 1, 0,
	    3, { "report-type=delivery-status;",
	    "Content-Type: message/delivery-status\r\n\r\n",
	    "Content-Type: text/rfc822-headers\r\n\r\n" }, { "global",
	    "utf-8", "8bit" }, true },
	{ "null sender", std_msg, 0, "", NULL, { { "x@example.org", "failed",
	    "5.1.1", NULL, NULL, NULL } }, 1, -1, 0, { NULL }, { NULL }, false },
	{ "no recipient", std_msg, 0, "a@b.test", NULL, { { NULL } }, 0, -1,
	    0, { NULL }, { NULL }, false },
};

static size_t
count_of(const struct buf *b, const char *s)
{
	const uint8_t	*p = b->data, *end = b->data + b->len, *q;
	size_t		 n = 0, sl = strlen(s);

	while ((q = memmem(p, (size_t)(end - p), s, sl)) != NULL) {
		n++;
		p = q + 1;
	}
	return n;
}

static bool
starts_with_any(const uint8_t *p, size_t n, const char *const *names)
{
	size_t	i, l;

	if (n == 0 || p[0] == ' ' || p[0] == '\t')
		return true;	/* empty, or a continuation */
	for (i = 0; names[i] != NULL; i++) {
		l = strlen(names[i]);
		if (n > l && memcmp(p, names[i], l) == 0 && p[l] == ':')
			return true;
	}
	return false;
}

static const char *const top_names[] = { "From", "To", "Subject", "Date",
	"Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", NULL };
static const char *const status_names[] = { "Reporting-MTA",
	"X-Mxgate-Queue-ID", "Arrival-Date", "Final-Recipient", "Action",
	"Status", "Remote-MTA", "Diagnostic-Code", NULL };

/*
 * What every report must be: CRLF lines of at most 998 octets; only our
 * own header fields; the boundary declared once, then nparts delimiters
 * and the close, and nowhere else; in the status part only RFC 3464
 * fields; no byte of the original body.
 */
static void
check_report(const char *name, const struct buf *b, size_t nparts)
{
	const uint8_t	*p = b->data, *nl, *st, *stend;
	char		 bnd[70 + 1], delim[96];
	const char	*q, *e;
	size_t		 i, n, line = 0;
	bool		 in_top = true;

	assert_true(b->len > 2 && p[b->len - 2] == '\r' &&
	    p[b->len - 1] == '\n');
	for (i = 0; i < b->len; i = (size_t)(nl - p) + 1, line++) {
		nl = memchr(p + i, '\n', b->len - i);
		assert_non_null(nl);
		n = (size_t)(nl - (p + i));
		if (n == 0 || p[i + n - 1] != '\r')
			fail_msg("%s: line %zu: bare LF", name, line);
		n--;
		if (memchr(p + i, '\r', n) != NULL || memchr(p + i, '\0', n))
			fail_msg("%s: line %zu: bare CR or NUL", name, line);
		if (n > 998)
			fail_msg("%s: line %zu: %zu octets", name, line, n);
		if (in_top && !starts_with_any(p + i, n, top_names))
			fail_msg("%s: line %zu: foreign header", name, line);
		if (n == 0)
			in_top = false;
	}
	assert_null(memmem(p, b->len, MARK, strlen(MARK)));
	q = strstr((const char *)p, "boundary=\"");
	assert_non_null(q);
	q += 10;
	assert_non_null(e = strchr(q, '"'));
	assert_true((size_t)(e - q) <= 70 && e > q);
	memcpy(bnd, q, (size_t)(e - q));
	bnd[e - q] = '\0';
	assert_int_equal(count_of(b, bnd), nparts + 2);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s\r\n", bnd);
	assert_int_equal(count_of(b, delim), nparts);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", bnd);
	assert_int_equal(count_of(b, delim), 1);
	assert_memory_equal(p + b->len - strlen(delim), delim, strlen(delim));
	/* The delivery-status part holds RFC 3464 fields only. */
	st = memmem(p, b->len, "delivery-status\r\n", 17);
	assert_non_null(st);
	st = memmem(st, b->len - (size_t)(st - p), "\r\n\r\n", 4);
	assert_non_null(st);
	st += 4;
	(void)snprintf(delim, sizeof(delim), "\r\n--%s", bnd);
	stend = memmem(st, b->len - (size_t)(st - p), delim, strlen(delim));
	assert_non_null(stend);
	for (; st < stend; st = nl + 1) {
		nl = memchr(st, '\n', (size_t)(stend - st) + 2);
		if (!starts_with_any(st, (size_t)(nl - st) - 1, status_names))
			fail_msg("%s: foreign status line: %.40s", name, st);
	}
}

/* Every 8-bit byte of b is part of a strict UTF-8 character. */
static bool
all_utf8(const struct buf *b)
{
	size_t	i;
	int	k;

	for (i = 0; i < b->len; i += (size_t)k) {
		k = 1;
		if (b->data[i] >= 0x80 &&
		    (k = utf8_char(b->data + i, b->len - i)) <= 0)
			return false;
	}
	return true;
}

static void
build_input(const struct build_case *c, struct dsn_input *in)
{
	memset(in, 0, sizeof(*in));
	in->reporting_mta = c->host != NULL ? c->host : "gw.example.org";
	in->qid = "Q1";
	in->boundary_seed = "Q1";
	in->arrival = ARRIVAL;
	in->now = NOW;
	in->sender = c->sender;
	in->msg = (const uint8_t *)c->msg;
	in->msglen = c->msg == NULL ? 0 : c->msglen ? c->msglen :
	    strlen(c->msg);
	in->rcpts = c->rcpts;
	in->nrcpts = c->nrcpts;
	in->smtputf8 = c->smtputf8;
}

static void
test_build_cases(void **state)
{
	const struct build_case	*c;
	struct dsn_input	 in;
	struct buf		 out, again;
	size_t			 i, j;

	(void)state;
	for (i = 0; i < sizeof(build_cases) / sizeof(build_cases[0]); i++) {
		c = &build_cases[i];
		build_input(c, &in);
		buf_init(&out, 1024 * 1024);
		if (dsn_build(&in, &out) != c->rc)
			fail_msg("%s: rc", c->name);
		if (c->rc == -1) {
			assert_int_equal(out.len, 0);
			buf_free(&out);
			continue;
		}
		check_report(c->name, &out, c->nparts);
		for (j = 0; j < 10 && c->want[j] != NULL; j++)
			if (count_of(&out, c->want[j]) == 0)
				fail_msg("%s: missing: %s\n---\n%s", c->name,
				    c->want[j], buf_cstr(&out));
		for (j = 0; j < 5 && c->never[j] != NULL; j++)
			if (count_of(&out, c->never[j]) != 0)
				fail_msg("%s: has: %s", c->name, c->never[j]);
		if (count_of(&out, "global-delivery-status") > 0 &&
		    !all_utf8(&out))
			fail_msg("%s: a global report not all UTF-8", c->name);
		/* Deterministic: the same input, the same bytes. */
		buf_init(&again, 1024 * 1024);
		assert_int_equal(dsn_build(&in, &again), 0);
		assert_int_equal(again.len, out.len);
		assert_memory_equal(again.data, out.data, out.len);
		buf_free(&again);
		buf_free(&out);
	}
}

/* The value of the field name starts, unfolded, into v (reset). */
static void
unfolded_field(const struct buf *b, const char *name, struct buf *v)
{
	const uint8_t	*p, *end = b->data + b->len;

	p = memmem(b->data, b->len, name, strlen(name));
	assert_non_null(p);
	buf_reset(v);
	for (p += strlen(name); p < end; p++) {
		if (p[0] == '\r' && p + 2 < end && p[1] == '\n' &&
		    p[2] == ' ') {
			p += 2;	/* a fold: CRLF out, the space stays */
			continue;
		}
		if (p[0] == '\r')
			break;
		assert_int_equal(buf_addc(v, p[0]), 0);
	}
}

/* Overlong words and lines are cut, marked and folded, never > 998. */
static void
test_build_long(void **state)
{
	struct dsn_rcpt		 r = { "x@example.org", "failed",
				    "5.1.1", NULL, NULL, NULL };
	struct build_case	 c = { "long", NULL, 0, "a@b.test", NULL,
				    { { NULL } }, 1, 0, 3, { NULL }, { NULL },
				    false };
	struct dsn_input	 in;
	struct buf		 out, msg;
	char			*diag;

	(void)state;
	assert_non_null(diag = malloc(5001));
	memset(diag, 'd', 5000);
	diag[5000] = '\0';
	r.diag = diag;
	buf_init(&msg, 1024 * 1024);
	assert_int_equal(buf_addf(&msg, "Subject: x\r\nX-Long: "), 0);
	while (msg.len < 3000)
		assert_int_equal(buf_addc(&msg, 'h'), 0);
	assert_int_equal(buf_addf(&msg, "\r\n\r\n%s\r\n", MARK), 0);
	build_input(&c, &in);
	in.rcpts = &r;
	in.msg = msg.data;
	in.msglen = msg.len;
	buf_init(&out, 1024 * 1024);
	assert_int_equal(dsn_build(&in, &out), 0);
	check_report("long", &out, 3);
	/* the 2988-octet line: 998, then 1 + 997, then 1 + 993 */
	assert_int_equal(count_of(&out, "h\r\n h"), 2);
	/* DSN_DIAG_MAX shown, then "...", in each of parts 1 and 2 */
	assert_int_equal(count_of(&out, "ddd...\r\n"), 2);
	unfolded_field(&out, "Diagnostic-Code: ", &msg);
	assert_int_equal(msg.len, 6 + DSN_DIAG_MAX + 3);
	assert_memory_equal(msg.data, "smtp; ddd", 9);
	assert_memory_equal(msg.data + msg.len - 4, "d...", 4);
	buf_free(&out);
	buf_free(&msg);
	free(diag);
}

/* A huge original: no more than DSN_HEADERS_MAX of it comes back. */
static void
test_build_huge_headers(void **state)
{
	struct dsn_rcpt		 r = { "x@example.org", "failed",
				    "5.1.1", NULL, NULL, NULL };
	struct build_case	 c = { "huge", NULL, 0, "a@b.test", NULL,
				    { { NULL } }, 1, 0, 3, { NULL }, { NULL },
				    false };
	struct dsn_input	 in;
	struct buf		 out, msg;

	(void)state;
	buf_init(&msg, 1024 * 1024);
	while (msg.len < 200 * 1024)
		assert_int_equal(buf_addf(&msg, "X-H: %zu\r\n", msg.len), 0);
	build_input(&c, &in);
	in.rcpts = &r;
	in.msg = msg.data;
	in.msglen = msg.len;
	buf_init(&out, 1024 * 1024);
	assert_int_equal(dsn_build(&in, &out), 0);
	check_report("huge", &out, 3);
	assert_true(out.len > DSN_HEADERS_MAX);
	assert_true(out.len < DSN_HEADERS_MAX + 4096);
	buf_free(&out);
	buf_free(&msg);
}

/*
 * RFC 3461: ENVID and ORCPT come back decoded (Original-Envelope-Id,
 * Original-Recipient), a success is "relayed" or "delivered" with its own
 * subject, RET=FULL (full) returns the whole message as message/rfc822,
 * and NOTIFY decides which reports are wanted.
 */
static void
test_build_dsn_ext(void **state)
{
	static const char	 orig[] = "Subject: hi\r\n\r\n" MARK "\r\n";
	struct dsn_rcpt		 r = { "bob@example.org", "relayed", NULL,
				    "250 2.0.0 Ok", "mx.example.org",
				    "rfc822;b+2Bob@example.org" };
	struct dsn_input	 in = {
		.reporting_mta = "gw.example.org", .qid = "Q9",
		.arrival = 1700000000, .now = 1700003600,
		.sender = "alice@sender.test",
		.msg = (const uint8_t *)orig, .msglen = sizeof(orig) - 1,
		.rcpts = &r, .nrcpts = 1, .boundary_seed = "Q9",
		.envid = "QQ+2B314",
	};
	struct buf		 out;

	(void)state;
	buf_init(&out, 256 * 1024);
	assert_int_equal(dsn_build(&in, &out), 0);
	assert_non_null(strstr(buf_cstr(&out),
	    "Subject: Successful Mail Delivery Report\r\n"));
	assert_non_null(strstr(buf_cstr(&out), "\r\n\r\n"
	    "Original-Envelope-Id: QQ+314\r\nReporting-MTA: dns; "
	    "gw.example.org\r\n"));
	assert_non_null(strstr(buf_cstr(&out), "\r\n\r\n"
	    "Original-Recipient: rfc822;b+ob@example.org\r\n"
	    "Final-Recipient: rfc822; bob@example.org\r\n"
	    "Action: relayed\r\nStatus: 2.0.0\r\n"));
	assert_null(strstr(buf_cstr(&out), MARK));
	assert_null(strstr(buf_cstr(&out), "message/rfc822"));
	buf_reset(&out);

	/* delivered; full: the body comes back, as message/rfc822 */
	r.action = "delivered";
	in.full = true;
	in.envid = "bad xtext";		/* not xtext: left out */
	assert_int_equal(dsn_build(&in, &out), 0);
	assert_non_null(strstr(buf_cstr(&out), "Action: delivered\r\n"));
	assert_non_null(strstr(buf_cstr(&out),
	    "Content-Type: message/rfc822\r\n\r\nSubject: hi\r\n\r\n"
	    MARK "\r\n"));
	assert_null(strstr(buf_cstr(&out), "Original-Envelope-Id"));
	assert_null(strstr(buf_cstr(&out), "text/rfc822-headers"));
	buf_free(&out);

	assert_false(dsn_notify_wants(0x01, DSN_EV_FAILURE));	/* NEVER */
	assert_true(dsn_notify_wants(0, DSN_EV_FAILURE));
	assert_true(dsn_notify_wants(0, DSN_EV_DELAY));
	assert_false(dsn_notify_wants(0, DSN_EV_SUCCESS));
	assert_true(dsn_notify_wants(0x02, DSN_EV_SUCCESS));
	assert_false(dsn_notify_wants(0x02, DSN_EV_FAILURE));
	assert_true(dsn_notify_wants(0x0c, DSN_EV_DELAY));
}

/*
 * A global report (RFC 6533) with a UTF-8 address past DSN_ADDR_MAX
 * octets: cut between characters and marked, every line within 998
 * octets and never split inside a character, in the text, the status
 * and the To: field; RET=FULL returns message/global.
 */
static void
test_build_global(void **state)
{
	static const char	 orig[] = "Subject: hi\r\n\r\n" MARK "\r\n";
	struct dsn_rcpt		 r = { NULL, "failed", "5.1.1", NULL, NULL,
				    NULL };
	struct build_case	 c = { "global", NULL, 0, NULL, NULL,
				    { { NULL } }, 1, 0, 3, { NULL }, { NULL },
				    false };
	struct dsn_input	 in;
	struct buf		 out, addr, v;
	size_t			 i;

	(void)state;
	buf_init(&addr, 4096);
	for (i = 0; i < 400; i++)	/* 800 octets of U+00E9 */
		assert_int_equal(buf_add(&addr, "\xc3\xa9", 2), 0);
	assert_int_equal(buf_addf(&addr, "x@example.org"), 0);
	r.rcpt = buf_cstr(&addr);
	build_input(&c, &in);
	in.sender = buf_cstr(&addr);
	in.rcpts = &r;
	in.msg = (const uint8_t *)orig;
	in.msglen = sizeof(orig) - 1;
	buf_init(&out, 1024 * 1024);
	assert_int_equal(dsn_build(&in, &out), 0);
	check_report("global", &out, 3);
	assert_true(all_utf8(&out));
	assert_null(memmem(out.data, out.len, MARK, strlen(MARK)));
	/* 256 characters (DSN_ADDR_MAX octets), then the mark */
	buf_init(&v, 8192);
	unfolded_field(&out, "Final-Recipient: ", &v);
	assert_int_equal(v.len, 7 + DSN_ADDR_MAX + 3);
	assert_memory_equal(v.data, "utf-8; \xc3\xa9", 9);
	assert_memory_equal(v.data + v.len - 5, "\xc3\xa9...", 5);
	unfolded_field(&out, "To: ", &v);
	assert_int_equal(v.len, 1 + DSN_ADDR_MAX + 3 + 1);
	assert_memory_equal(v.data + v.len - 6, "\xc3\xa9...>", 6);
	assert_non_null(memmem(out.data, out.len, "\xc3\xa9...>: failed, "
	    "status 5.1.1\r\n", 27));
	assert_non_null(memmem(out.data, out.len,
	    "Content-Type: message/global-headers\r\n\r\nSubject: hi\r\n",
	    52));
	buf_reset(&out);

	/* RET=FULL: the whole message, as message/global (RFC 6532 3.7) */
	in.full = true;
	assert_int_equal(dsn_build(&in, &out), 0);
	assert_non_null(strstr(buf_cstr(&out), "Content-Type: message/global"
	    "\r\n\r\nSubject: hi\r\n\r\n" MARK "\r\n"));
	assert_null(strstr(buf_cstr(&out), "message/rfc822"));
	buf_free(&out);
	buf_free(&v);
	buf_free(&addr);
}

/* Past out's max: -1 and out exactly as it was; at the max: 0. */
static void
test_build_max(void **state)
{
	const struct build_case	*c = &build_cases[0];
	struct dsn_input	 in;
	struct buf		 out;
	size_t			 need;

	(void)state;
	build_input(c, &in);
	buf_init(&out, 1024 * 1024);
	assert_int_equal(dsn_build(&in, &out), 0);
	need = out.len;
	buf_free(&out);
	buf_init(&out, 6 + need);
	assert_int_equal(buf_addf(&out, "PREFIX"), 0);
	assert_int_equal(dsn_build(&in, &out), 0);
	assert_int_equal(out.len, 6 + need);
	buf_free(&out);
	buf_init(&out, 6 + need - 1);
	assert_int_equal(buf_addf(&out, "PREFIX"), 0);
	assert_int_equal(dsn_build(&in, &out), -1);
	assert_int_equal(out.len, 6);
	assert_string_equal(buf_cstr(&out), "PREFIX");
	buf_free(&out);
	buf_init(&out, 100);
	assert_int_equal(dsn_build(&in, &out), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_len),
		cmocka_unit_test(test_is_report),
		cmocka_unit_test(test_is_report_cap),
		cmocka_unit_test(test_build_cases),
		cmocka_unit_test(test_build_long),
		cmocka_unit_test(test_build_huge_headers),
		cmocka_unit_test(test_build_max),
		cmocka_unit_test(test_build_dsn_ext),
		cmocka_unit_test(test_build_global),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
