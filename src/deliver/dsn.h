/*
 * dsn.h - delivery status notifications: the RFC 3464 report for a
 * failed, delayed, delivered or relayed message (RFC 3461 4.1 NOTIFY), and
 * the scanners it needs.
 * Owns: the report's text and layout.  Never: copies the original's body
 * (headers only, DESIGN 4), decides whether to send (backscatter.h).
 * Untrusted: the original message, recipient addresses, remote replies.
 * RFC 3464, 6522 (multipart/report), 3834 (Auto-Submitted), 5322, 2046,
 * 6533 (reports about UTF-8 addresses or headers).
 */
#ifndef MXGATE_DSN_H
#define MXGATE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../lib/buf.h"

/* At most this much of the original's header section is returned. */
#define DSN_HEADERS_MAX	(64 * 1024)
#define DSN_LINE_MAX	998	/* RFC 5322 2.1.1, octets before CRLF */
#define DSN_FOLD_AT	78	/* RFC 5322 2.1.1 "SHOULD" */
#define DSN_ADDR_MAX	512	/* address shown; RFC 5321 path: 256 */
#define DSN_DIAG_MAX	2048	/* reply text shown, then "..." */
#define DSN_NAME_MAX	255	/* host names and queue id shown */

struct dsn_rcpt {
	const char	*rcpt;		/* final recipient address */
	const char	*action;	/* "failed", "delayed", "delivered",
					 * "relayed" */
	const char	*status;	/* "5.1.1" */
	/* remote reply text, e.g. "550 5.1.1 <x@y>: User unknown", or NULL */
	const char	*diag;
	const char	*mta;		/* remote MTA name, or NULL */
	const char	*orcpt;		/* RFC 3461 ORCPT "type;xtext", or NULL */
};

struct dsn_input {
	const char		*reporting_mta;	/* our hostname */
	const char		*qid;		/* the original's */
	time_t			 arrival;
	time_t			 now;
	/* the original envelope sender: the DSN goes to it */
	const char		*sender;
	/* the original message (CRLF), or just its header section */
	const uint8_t		*msg;
	size_t			 msglen;
	const struct dsn_rcpt	*rcpts;
	size_t			 nrcpts;
	/* e.g. the qid: makes the MIME boundary unique, and deterministic
	 * for tests */
	const char		*boundary_seed;
	const char		*envid;		/* RFC 3461 ENVID (xtext), or NULL */
	/* return the whole message (message/rfc822) instead of its header
	 * section; falls back to headers when it does not fit out's max */
	bool			 full;
	/* the original was received with SMTPUTF8 (its queue file's U
	 * record): UTF-8 in its header section makes the report global */
	bool			 smtputf8;
};

/* What a report is about, for RFC 3461 4.1 NOTIFY. */
enum dsn_event { DSN_EV_FAILURE, DSN_EV_DELAY, DSN_EV_SUCCESS };

/*
 * Whether NOTIFY bits (QUEUE_NOTIFY_*) ask for a report of this kind:
 * NEVER never; unset (0) means FAILURE,DELAY (RFC 3461 4.1).
 */
bool	dsn_notify_wants(unsigned notify, enum dsn_event);

/*
 * The whole DSN message (headers + body, CRLF line ends, lines <= 998)
 * appended to out.  0, or -1 with out unchanged: out's max reached, or
 * nothing to report (no recipient, or the null sender <>).
 * Everything copied into the report is cleaned first: control characters
 * (CR, LF, NUL...) become spaces, 8-bit bytes '?', except in the returned
 * header section, which keeps 8-bit bytes (then declared 8bit) and has
 * its line ends made CRLF.
 * A report that names a UTF-8 address (strict UTF-8: only SMTPUTF8 lets
 * one in), or returns the 8-bit header section of an smtputf8 original,
 * is global (RFC 6533 6): report-type=global-delivery-status, UTF-8 text,
 * message/global-delivery-status with "Final-Recipient: utf-8; " and the
 * address as utf-8-addr-unitext (RFC 6533 3), message/global-headers
 * (message/global when full), UTF-8 addresses kept in To: and the text.
 * ASCII addresses stay "rfc822;"; a report about ASCII only is as ever.
 * Message-ID is <QID.NOW.dsn@REPORTING_MTA> (NOW in seconds) so a delay
 * notice and the later failure differ.
 */
int	dsn_build(const struct dsn_input *, struct buf *out);

/*
 * Length of the header section of msg (up to and including the empty
 * line, or all of it if none), capped at max.  Lines end with LF or CRLF;
 * an empty line is "\n" or "\r\n".  Reads at most max bytes.
 */
size_t	dsn_header_len(const uint8_t *msg, size_t len, size_t max);

/*
 * Whether a message is itself a report or an auto-reply: Content-Type
 * multipart/report, or Auto-Submitted other than "no" (RFC 3834 5),
 * scanning its header section only (the first DSN_HEADERS_MAX bytes):
 * folded fields, names in any case, comments (RFC 5322 3.2.2) skipped.
 */
bool	dsn_is_report(const uint8_t *msg, size_t len);

#endif
