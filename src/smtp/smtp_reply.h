/*
 * smtp_reply.h - the reply catalogue (STYLE R9): every reply the server
 * sends is named here with its code, enhanced status code (RFC 3463) and
 * text.  Handlers name a reply id and never spell out text, which is what
 * makes "byte-identical answers" checkable.
 * Never: decides which reply to send.
 */
#ifndef MXGATE_SMTP_REPLY_H
#define MXGATE_SMTP_REPLY_H

#include <stdbool.h>

enum reply_id {
	R_NONE,
	R_GREETING,		/* 220 <host> ESMTP mxgate */
	R_HELO_OK,		/* 250 <host> */
	R_PLAIN_OK,			/* 250 2.0.0 Ok */
	R_MAIL_OK,
	R_RCPT_OK,
	R_DATA_GO,
	R_QUEUED,		/* 250 2.0.0 Ok: queued as %s */
	R_QUIT,
	R_HELP,
	R_VRFY,
	R_EXPN,
	R_UNKNOWN_CMD,
	R_LINE_TOO_LONG,
	R_BARE_EOL_CMD,
	R_BAD_CMD_SYNTAX,
	R_NEED_HELO,
	R_NEED_MAIL,
	R_NEED_RCPT,
	R_NESTED_MAIL,
	R_HELO_SYNTAX,
	R_MAIL_SYNTAX,
	R_RCPT_SYNTAX,
	R_NOARG_SYNTAX,
	R_BAD_SENDER,
	R_BAD_RCPT,
	R_PARAM_UNSUPPORTED,
	R_PARAM_SYNTAX,
	R_SIZE_EXCEEDED,
	R_TOO_MANY_RCPTS,
	R_NULL_SENDER_MULTI,
	R_NULL_SENDER_RATE,
	R_RELAY_DENIED,		/* %s: <addr> */
	R_RCPT_UNKNOWN,		/* %s: <addr> */
	R_DIR_TEMPFAIL,
	R_DATA_BARE_EOL,
	R_DATA_TOO_BIG,
	R_STORAGE,
	R_LOCAL_ERROR,
	R_TOO_MANY_ERRORS,
	R_HARVEST_CUTOFF,
	R_TOO_MANY_COMMANDS,
	R_HEADER_TOO_BIG,
	R_LINE_TOO_BIG,
	R_TIMEOUT,
	R_EARLY_TALKER,
	R_SHUTDOWN,
	/* STARTTLS (RFC 3207) and AUTH (RFC 4954) */
	R_TLS_READY,		/* 220 2.0.0 Ready to start TLS */
	R_TLS_UNAVAILABLE,	/* 502: no certificate */
	R_TLS_ACTIVE,		/* 503: STARTTLS twice */
	R_TLS_TEMP,		/* 454: cannot start TLS now */
	R_TLS_REQUIRED,		/* 530 5.7.0 before MAIL */
	R_IN_TX,		/* 503: STARTTLS or AUTH inside a transaction */
	R_AUTH_CHALLENGE,	/* 334 %s */
	R_AUTH_OK,
	R_AUTH_FAILED,
	R_AUTH_NEED_TLS,	/* 538 5.7.11 */
	R_AUTH_DISABLED,	/* 503: not offered on this listener */
	R_AUTH_TWICE,
	R_AUTH_SYNTAX,
	R_AUTH_BAD_B64,
	R_AUTH_MECH,
	R_AUTH_CANCEL,
	R_AUTH_TOO_LONG,
	R_AUTH_TEMP,		/* 454: verification unavailable */
	R_AUTH_REQUIRED,	/* 530 5.7.0: submission without AUTH */
	/* NUL (RFC 5322, 6152) and BDAT (RFC 3030) */
	R_DATA_NUL,		/* 554 5.6.0 Message contains NUL characters */
	R_NUL_CMD,		/* 500 5.5.2: NUL in a command line */
	R_BDAT_OK,		/* 250 2.0.0 %s octets received */
	R_BDAT_SYNTAX,		/* 501 5.5.4 */
	R_BDAT_SEQ,		/* 503 5.5.1: DATA or RCPT after BDAT */
	R_UTF8_BAD,		/* 553 5.6.7: 8-bit path, not UTF-8 */
	R_UTF8_NEEDED,		/* 553 5.6.7: UTF-8 path, no SMTPUTF8 */
	R_SPF_FAIL,		/* 550 5.7.23 %s: explanation (RFC 7372) */
	R_SPF_TEMP,		/* 451 4.4.3 %s: the domain */
	R_SENDER_LOGIN,		/* 553 5.7.1 %s: "<addr>: ... user U" */
	R_BATV_REFUSED,		/* 553 5.7.1 %s: the address */
	R_DNSBL_REJECT,		/* 554 5.7.1 %s: "[ip] blocked using L" */
	R_MAX
};

struct smtp_reply {
	unsigned short	 code;
	const char	*esc;	/* enhanced status code, NULL for 220/221's host */
	const char	*text;	/* may hold one %s (the argument) */
	bool		 closes;	/* the session ends after it */
};

const struct smtp_reply *smtp_reply_get(enum reply_id);

#endif
