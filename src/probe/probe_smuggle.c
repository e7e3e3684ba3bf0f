/*
 * probe_smuggle.c - `smuggling` (--intrusive, to a --known recipient
 * only): does the server take a bare-LF / bare-CR end-of-data variant as
 * the end of data (CVE-2023-51764/5/6)?  Each variant is followed by a
 * NOOP and then the real <CRLF>.<CRLF>: a server that honours the variant
 * answers twice (the message, then the NOOP).
 * Owns: the variant table.
 * Never: DATA to anyone but the first --known recipient.
 * Untrusted: replies.  RFC 5321 4.1.1.4, 2.3.8.
 */
#include <string.h>

#include "probe.h"

#define SMUGGLE_SECOND_MS	2000	/* the wait for a second reply */

struct smuggle_variant {
	const char	*name;
	const char	*eod;
};

static const struct smuggle_variant smuggle_variants[] = {
	{ "\\n.\\n",	"\n.\n" },
	{ "\\n.\\r\\n",	"\n.\r\n" },
	{ "\\r\\n.\\n",	"\r\n.\n" },
	{ "\\r\\n.\\r",	"\r\n.\r" },
	{ "\\r.\\r\\n",	"\r.\r\n" },
	{ "\\r.\\r",	"\r.\r" },
	{ "\\n.\\r",	"\n.\r" },
};
#define SMUGGLE_N (sizeof(smuggle_variants) / sizeof(smuggle_variants[0]))

static const char *const fix_smuggle[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_forbid_bare_newline = normalize "
	    "(the default from 3.9; in the 3.5 to 3.8 patch releases of "
	    "2024), smtpd_forbid_unauth_pipelining = yes",
	[PROBE_MTA_EXIM] = "Exim 4.97.1 or later (only <CR><LF>.<CR><LF> "
	    "ends data)",
	[PROBE_MTA_SENDMAIL] = "Sendmail 8.18.1 or later (srv_features "
	    "'o' off: strict CRLF)",
	[PROBE_MTA_OPENSMTPD] = "OpenSMTPD refuses bare LF; keep it current",
	[PROBE_MTA_EXCHANGE] = "keep Exchange patched; it normalises bare LF",
	[PROBE_MTA_MXGATE] = "mxgate takes only <CR><LF>.<CR><LF> and "
	    "refuses bare LF/CR (550 5.6.0); nothing to change",
};

/* 1: honoured, 0: not, -1: could not test. */
static int
smuggle_one(struct probe_run *run, struct probe_finding *f,
    const struct smuggle_variant *v, unsigned *codes)
{
	struct probe_conn	c;
	struct probe_reply	r2;
	struct buf		msg;
	unsigned		t;
	int			rc = -1;

	codes[0] = codes[1] = 0;
	if (probe_conn_open(&c, run, &f->evidence) == -1 ||
	    probe_conn_ehlo(&c) == -1 ||
	    probe_cmd(&c, "MAIL FROM:<probe@example.net>") == -1 ||
	    c.r.code / 100 != 2 ||
	    probe_cmd(&c, "RCPT TO:<%s>", run->o.known[0]) == -1 ||
	    c.r.code / 100 != 2 || probe_cmd(&c, "DATA") == -1 ||
	    c.r.code != 354)
		goto out;
	run->nrcpts++;
	buf_init(&msg, 1024);
	buf_addf(&msg, "Subject: mxgate probe: smuggling test %s\r\n"
	    "From: <probe@example.net>\r\n\r\n"
	    "This message tests the end-of-data variant %s.%s"
	    "NOOP\r\n\r\n.\r\n", v->name, v->name, v->eod);
	rc = probe_send_raw(&c, msg.data, msg.len, NULL);
	buf_free(&msg);
	if (rc == -1 || probe_read_reply(&c, &c.r) == -1)
		goto out;
	codes[0] = c.r.code;
	t = run->o.timeout_ms;
	run->o.timeout_ms = t < SMUGGLE_SECOND_MS ? t : SMUGGLE_SECOND_MS;
	rc = probe_read_reply(&c, &r2) == 0 ? 1 : 0;
	run->o.timeout_ms = t;
	codes[1] = rc == 1 ? r2.code : 0;
	if (rc == 0) {		/* silence: the expected outcome */
		c.dead = false;
		c.err[0] = '\0';
		probe_note(c.tr, "-- no second reply: the variant was data");
	}
out:
	probe_conn_close(&c);
	return rc;
}

void
probe_smuggle_run(struct probe_run *run)
{
	struct probe_finding	*f;
	unsigned		 codes[2], honoured = 0, tested = 0;
	size_t			 i;
	int			 rc;

	f = probe_finding_add(run, "smuggling", "SMTP smuggling: "
	    "end-of-data variants (CVE-2023-51764/5/6)");
	probe_fix(f, run, "Take only <CR><LF>.<CR><LF> as the end of data; "
	    "refuse or normalise bare LF and bare CR.", fix_smuggle);
	if (!run->o.intrusive || run->o.nknown == 0) {
		probe_finding_set(f, PROBE_NOT_MEASURED, PROBE_SEV_INFO, "not "
		    "measured: needs --intrusive and --known (messages go to "
		    "that recipient only)");
		return;
	}
	for (i = 0; i < SMUGGLE_N; i++) {
		rc = smuggle_one(run, f, &smuggle_variants[i], codes);
		if (rc == -1) {
			probe_fact(f, "%s: not tested", smuggle_variants[i].name);
			continue;
		}
		tested++;
		if (rc == 1)
			honoured++;
		probe_fact(f, "%s: %s (replies %u, %u)",
		    smuggle_variants[i].name, rc == 1 ? "HONOURED as end of "
		    "data" : "not end of data", codes[0], codes[1]);
	}
	if (honoured > 0)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_HIGH, "%u of %u "
		    "end-of-data variants honoured: mail can be smuggled "
		    "with forged senders", honoured, tested);
	else if (tested == 0)
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "no variant "
		    "could be tested (the --known recipient or DATA refused)");
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "none of %u "
		    "end-of-data variants honoured", tested);
}
