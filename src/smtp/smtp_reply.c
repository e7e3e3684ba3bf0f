/*
 * smtp_reply.c - the reply catalogue (see smtp_reply.h).  RFC 5321 4.2,
 * RFC 3463 for the enhanced codes.  Texts that carry an address take it
 * as "%s" (the address, already validated and bracketed by the caller).
 */
#include <stddef.h>

#include "../lib/log.h"
#include "smtp_reply.h"

static const struct smtp_reply replies[R_MAX] = {
	[R_GREETING]	= { 220, NULL, "%s ESMTP mxgate", false },
	[R_HELO_OK]	= { 250, NULL, "%s", false },
	[R_PLAIN_OK]		= { 250, "2.0.0", "Ok", false },
	[R_MAIL_OK]	= { 250, "2.1.0", "Ok", false },
	[R_RCPT_OK]	= { 250, "2.1.5", "Ok", false },
	[R_DATA_GO]	= { 354, NULL, "End data with <CR><LF>.<CR><LF>", false },
	[R_QUEUED]	= { 250, "2.0.0", "Ok: queued as %s", false },
	[R_QUIT]	= { 221, "2.0.0", "Bye", true },
	[R_HELP]	= { 214, "2.0.0",
	    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY", false },
	[R_VRFY]	= { 252, "2.0.0",
	    "Cannot VRFY user, but will accept message and attempt delivery",
	    false },
	[R_EXPN]	= { 502, "5.5.1", "EXPN not available", false },
	[R_UNKNOWN_CMD]	= { 500, "5.5.2", "Error: command not recognized", false },
	[R_LINE_TOO_LONG] = { 500, "5.5.2", "Error: line too long", false },
	[R_BARE_EOL_CMD] = { 500, "5.5.2",
	    "Error: bare CR or LF in command refused", false },
	[R_BAD_CMD_SYNTAX] = { 500, "5.5.2", "Error: bad command syntax", false },
	[R_NEED_HELO]	= { 503, "5.5.1", "Error: send HELO/EHLO first", false },
	[R_NEED_MAIL]	= { 503, "5.5.1", "Error: need MAIL command", false },
	[R_NEED_RCPT]	= { 503, "5.5.1", "Error: need RCPT command", false },
	[R_NESTED_MAIL]	= { 503, "5.5.1", "Error: nested MAIL command", false },
	[R_HELO_SYNTAX]	= { 501, "5.5.4", "Syntax: EHLO hostname", false },
	[R_MAIL_SYNTAX]	= { 501, "5.5.4", "Syntax: MAIL FROM:<address>", false },
	[R_RCPT_SYNTAX]	= { 501, "5.5.4", "Syntax: RCPT TO:<address>", false },
	[R_NOARG_SYNTAX] = { 501, "5.5.4", "Syntax: no parameters allowed",
	    false },
	[R_BAD_SENDER]	= { 501, "5.1.7", "Bad sender address syntax", false },
	[R_BAD_RCPT]	= { 501, "5.1.3", "Bad recipient address syntax", false },
	[R_PARAM_UNSUPPORTED] = { 555, "5.5.4",
	    "Unsupported parameter", false },
	[R_PARAM_SYNTAX] = { 501, "5.5.4", "Bad parameter syntax", false },
	[R_SIZE_EXCEEDED] = { 552, "5.3.4",
	    "Message size exceeds fixed limit", false },
	[R_TOO_MANY_RCPTS] = { 452, "4.5.3", "Error: too many recipients",
	    false },
	[R_NULL_SENDER_MULTI] = { 550, "5.7.1",
	    "Error: a bounce (null sender) may have one recipient only",
	    false },
	[R_NULL_SENDER_RATE] = { 450, "4.7.1",
	    "Too many bounces for this recipient, try again later", false },
	[R_RELAY_DENIED] = { 554, "5.7.1", "%s: Relay access denied", false },
	[R_RCPT_UNKNOWN] = { 550, "5.1.1",
	    "%s: Recipient address rejected: User unknown", false },
	[R_DIR_TEMPFAIL] = { 451, "4.3.0",
	    "Directory unavailable, try again later", false },
	[R_DATA_BARE_EOL] = { 550, "5.6.0",
	    "Message refused: bare CR or LF in message", false },
	[R_DATA_TOO_BIG] = { 552, "5.3.4",
	    "Message size exceeds fixed limit", false },
	[R_STORAGE]	= { 452, "4.3.1", "Insufficient system storage", false },
	[R_LOCAL_ERROR]	= { 451, "4.3.0", "Local error, try again later",
	    false },
	[R_TOO_MANY_ERRORS] = { 421, "4.7.0",
	    "%s Error: too many errors", true },
	[R_HARVEST_CUTOFF] = { 421, "4.7.0",
	    "%s Error: too many unknown recipients, closing", true },
	[R_TOO_MANY_COMMANDS] = { 421, "4.7.0",
	    "%s Error: too many commands, closing", true },
	[R_HEADER_TOO_BIG] = { 552, "5.3.4",
	    "Message header size exceeds limit", false },
	[R_LINE_TOO_BIG] = { 552, "5.3.4",
	    "Message line length exceeds limit", false },
	[R_TIMEOUT]	= { 421, "4.4.2", "%s Error: timeout exceeded", true },
	[R_EARLY_TALKER] = { 554, "5.5.1",
	    "Error: SMTP protocol synchronization (talked before greeting)",
	    true },
	[R_SHUTDOWN]	= { 421, "4.3.2", "%s Service shutting down", true },
	[R_TLS_READY]	= { 220, "2.0.0", "Ready to start TLS", false },
	[R_TLS_UNAVAILABLE] = { 502, "5.5.1", "Error: command not implemented",
	    false },
	[R_TLS_ACTIVE]	= { 503, "5.5.1", "Error: TLS already active", false },
	[R_TLS_TEMP]	= { 454, "4.7.0",
	    "TLS not available due to temporary reason", false },
	[R_TLS_REQUIRED] = { 530, "5.7.0",
	    "Must issue a STARTTLS command first", false },
	[R_IN_TX]	= { 503, "5.5.1", "Error: MAIL transaction in progress",
	    false },
	[R_AUTH_CHALLENGE] = { 334, NULL, "%s", false },
	[R_AUTH_OK]	= { 235, "2.7.0", "Authentication successful", false },
	[R_AUTH_FAILED]	= { 535, "5.7.8", "Authentication credentials invalid",
	    false },
	[R_AUTH_NEED_TLS] = { 538, "5.7.11",
	    "Encryption required for requested authentication mechanism",
	    false },
	[R_AUTH_DISABLED] = { 503, "5.5.1", "Error: authentication not enabled",
	    false },
	[R_AUTH_TWICE]	= { 503, "5.5.1", "Error: already authenticated",
	    false },
	[R_AUTH_SYNTAX]	= { 501, "5.5.4", "Syntax: AUTH mechanism [response]",
	    false },
	[R_AUTH_BAD_B64] = { 501, "5.5.2", "Error: invalid base64 data",
	    false },
	[R_AUTH_MECH]	= { 504, "5.5.4", "Unrecognized authentication type",
	    false },
	[R_AUTH_CANCEL]	= { 501, "5.0.0", "Authentication aborted", false },
	[R_AUTH_TOO_LONG] = { 500, "5.5.6",
	    "Authentication exchange line is too long", false },
	[R_AUTH_TEMP]	= { 454, "4.7.0", "Temporary authentication failure",
	    false },
	[R_AUTH_REQUIRED] = { 530, "5.7.0", "Authentication required", false },
	[R_DATA_NUL]	= { 554, "5.6.0", "Message contains NUL characters",
	    false },
	[R_NUL_CMD]	= { 500, "5.5.2", "Error: NUL character in command",
	    false },
	[R_BDAT_OK]	= { 250, "2.0.0", "%s octets received", false },
	[R_BDAT_SYNTAX]	= { 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]",
	    false },
	[R_BDAT_SEQ]	= { 503, "5.5.1", "Error: BDAT transaction in progress",
	    false },
	/* RFC 6531 3.5: a non-ASCII address and SMTPUTF8 (RFC 6531 3.2) */
	[R_UTF8_BAD]	= { 553, "5.6.7", "Address is not valid UTF-8", false },
	[R_UTF8_NEEDED]	= { 553, "5.6.7",
	    "Non-ASCII address needs MAIL FROM with SMTPUTF8", false },
	/* RFC 7208 8.4 and RFC 7372 3.2; 8.6: temperror is 451 4.4.3 */
	[R_SPF_FAIL]	= { 550, "5.7.23", "SPF validation failed: %s", false },
	[R_SPF_TEMP]	= { 451, "4.4.3",
	    "SPF check of %s failed temporarily, try again later", false },
	/* sender_login_map (issue 14, part 6): the arg is the address and
	 * the user, both checked, in Postfix's reject_sender_login_mismatch
	 * wording "<addr>: Sender address rejected: not owned by user U" */
	[R_SENDER_LOGIN] = { 553, "5.7.1", "%s", false },
	/* BATV (issue 14, part 5): a bounce to a signed address whose tag
	 * is missing, bad or expired is not a reply to our mail */
	[R_BATV_REFUSED] = { 553, "5.7.1", "%s: Bounce rejected: the "
	    "address carries no valid BATV tag, so this is not a reply to "
	    "mail it sent", false },
	/* DNSBL at connect (issue 14, part 4), Postfix's reject_rbl_client
	 * wording; the session closes after it */
	[R_DNSBL_REJECT] = { 554, "5.7.1", "Service unavailable; Client host "
	    "%s", true },
};

const struct smtp_reply *
smtp_reply_get(enum reply_id id)
{
	if (id <= R_NONE || id >= R_MAX || replies[id].code == 0)
		panic("smtp_reply_get: no reply %d", (int)id);
	return &replies[id];
}
