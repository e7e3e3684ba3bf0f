/*
 * probe_info.c - findings from what the server says about itself:
 * `banner-leak` (software, version, table names) and `vrfy-expn`.
 * Also identifies the MTA for the concrete fixes of every finding.
 * Owns: the run's first connection (it failing means "could not run").
 * Never: sends mail.  Untrusted: the texts it reads.  RFC 5321 3.5, 7.3.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "probe.h"

struct info_sig {
	const char	*word;
	enum probe_mta	 mta;
};

/* Words in a greeting, EHLO or HELP text that name the software. */
static const struct info_sig info_sigs[] = {
	{ "mxgate",	PROBE_MTA_MXGATE },
	{ "postfix",	PROBE_MTA_POSTFIX },
	{ "exim",	PROBE_MTA_EXIM },
	{ "sendmail",	PROBE_MTA_SENDMAIL },
	{ "opensmtpd",	PROBE_MTA_OPENSMTPD },
	{ "microsoft",	PROBE_MTA_EXCHANGE },
	{ "exchange",	PROBE_MTA_EXCHANGE },
};

static const char *const fix_banner[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_banner = $myhostname ESMTP",
	[PROBE_MTA_EXIM] = "smtp_banner = $smtp_active_hostname ESMTP",
	[PROBE_MTA_SENDMAIL] = "define(`confSMTP_LOGIN_MSG', `$j')dnl in "
	    "sendmail.mc; confHELP_FILE empty",
	[PROBE_MTA_OPENSMTPD] = "listen on ... hostname NAME (the version "
	    "is not shown by default)",
	[PROBE_MTA_EXCHANGE] = "Set-ReceiveConnector -Banner \"220 "
	    "mail.example.com\"",
	[PROBE_MTA_MXGATE] = "mxgate shows its name, never a version; "
	    "nothing to change",
};

static const char *const fix_vrfy[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "disable_vrfy_command = yes",
	[PROBE_MTA_EXIM] = "acl_smtp_vrfy = deny and acl_smtp_expn = deny "
	    "(the defaults; remove any accept)",
	[PROBE_MTA_SENDMAIL] = "define(`confPRIVACY_FLAGS', "
	    "`goaway')dnl (novrfy,noexpn)",
	[PROBE_MTA_OPENSMTPD] = "VRFY and EXPN are not implemented; "
	    "nothing to change",
	[PROBE_MTA_EXCHANGE] = "VRFY/EXPN answer 252 by default; remove any "
	    "transport agent that answers them",
	[PROBE_MTA_MXGATE] = "VRFY always answers 252 and EXPN 502; "
	    "nothing to change",
};

static void
info_identify(struct probe_run *run, const struct probe_conn *c,
    const struct probe_reply *help)
{
	const char	*texts[3] = { c->greeting.text, c->ehlo.text,
			    help->text };
	size_t		 i, j;

	for (i = 0; i < 3; i++)
		for (j = 0; j < sizeof(info_sigs) / sizeof(info_sigs[0]);
		    j++) {
			if (strcasestr(texts[i], info_sigs[j].word) == NULL)
				continue;
			run->mta = info_sigs[j].mta;
			snprintf(run->mta_text, sizeof(run->mta_text),
			    "\"%s\" in the %s", info_sigs[j].word, i == 0 ?
			    "greeting" : i == 1 ? "EHLO reply" : "HELP reply");
			return;
		}
}

/* A version: digits, a dot, digits ("3.7.11", "4.96", "8.15.2"). */
static bool
info_version(const char *t, char *out, size_t outlen)
{
	size_t	i, j;

	for (i = 0; t[i] != '\0'; i++) {
		if (!isdigit((unsigned char)t[i]) || (i > 0 &&
		    (isalnum((unsigned char)t[i - 1]) || t[i - 1] == '.')))
			continue;
		for (j = i; isdigit((unsigned char)t[j]); j++)
			;
		if (t[j] != '.' || !isdigit((unsigned char)t[j + 1]))
			continue;
		for (j++; isdigit((unsigned char)t[j]) || t[j] == '.' ||
		    t[j] == '-' || isalpha((unsigned char)t[j]); j++)
			;
		/* an IPv4 address is no version */
		if (memchr(t + i, '.', j - i) != NULL && j - i >= 7 &&
		    strspn(t + i, "0123456789.") == j - i &&
		    t[i + strcspn(t + i, ".")] == '.') {
			size_t dots = 0, k;
			for (k = i; k < j; k++)
				dots += t[k] == '.';
			if (dots == 3) {
				i = j;
				continue;
			}
		}
		snprintf(out, outlen, "%.*s", (int)(j - i), t + i);
		return true;
	}
	return false;
}

/* Each line past its reply code and enhanced status code, which are
 * numbers with dots but no version. */
static bool
info_text_version(const char *t, char *out, size_t outlen)
{
	char		line[PROBE_TEXT_MAX];
	const char	*p = t, *nl;
	size_t		n, skip;

	while (*p != '\0') {
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		skip = n >= 4 ? 4 : n;
		while (skip < n && (isdigit((unsigned char)p[skip]) ||
		    p[skip] == '.') && p[skip] != ' ')
			skip++;
		snprintf(line, sizeof(line), "%.*s", (int)(n - skip),
		    p + skip);
		if (info_version(line, out, outlen))
			return true;
		p += n;
		if (*p == '\n')
			p++;
	}
	return false;
}

static void
info_banner(struct probe_run *run, struct probe_finding *f,
    const struct probe_conn *c, const struct probe_reply *help)
{
	const char	*texts[3] = { c->greeting.text, c->ehlo.text,
			    help->text };
	const char	*where[3] = { "greeting", "EHLO", "HELP" };
	char		 v[64];
	size_t		 i;
	bool		 ver = false;

	for (i = 0; i < 3; i++) {
		if (!info_text_version(texts[i], v, sizeof(v)))
			continue;
		probe_fact(f, "version in %s: %s", where[i], v);
		ver = true;
	}
	if (run->mta != PROBE_MTA_UNKNOWN)
		probe_fact(f, "software: %s (%s)", probe_mta_name(run->mta),
		    run->mta_text);
	if (ver)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_LOW, "the server "
		    "tells its software version: an attacker picks exploits "
		    "for it");
	else if (run->mta != PROBE_MTA_UNKNOWN)
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "the "
		    "software is named (%s), no version", probe_mta_name(
		    run->mta));
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "neither "
		    "software nor version shown");
	probe_fix(f, run, "Show the host name only in the greeting and "
	    "replies; no software name or version.", fix_banner);
}

/* A 2xx for the real name (250/251 show it; Postfix's 252 for a real
 * name and 550 for an invented one shows it by the code alone) and any
 * other code for the invented one. */
static bool
info_reveals(unsigned k, unsigned u)
{
	return k / 100 == 2 && u != 0 && u != k;
}

static void
info_vrfy(struct probe_run *run, struct probe_finding *f,
    struct probe_conn *c)
{
	const char	*verbs[2] = { "VRFY", "EXPN" };
	char		 known[PROBE_ADDR_MAX], inv[PROBE_ADDR_MAX];
	unsigned	 kc[2] = { 0, 0 }, uc[2] = { 0, 0 };
	size_t		 i;
	bool		 leak = false;

	if (run->o.nknown > 0)
		snprintf(known, sizeof(known), "%s", run->o.known[0]);
	else
		snprintf(known, sizeof(known), "postmaster@%s",
		    run->o.domain);
	probe_invent(run, inv, sizeof(inv));
	for (i = 0; i < 2 && !c->dead; i++) {
		if (probe_cmd(c, "%s <%s>", verbs[i], known) == 0)
			kc[i] = c->r.code;
		if (probe_cmd(c, "%s <%s>", verbs[i], inv) == 0)
			uc[i] = c->r.code;
		probe_fact(f, "%s: known (%s) %u, invented %u", verbs[i],
		    known, kc[i], uc[i]);
		if (info_reveals(kc[i], uc[i]) || (kc[i] == 0 &&
		    (uc[i] == 250 || uc[i] == 251)))
			leak = true;
	}
	if (leak)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_HIGH, "VRFY/EXPN "
		    "tell real names from invented ones: a free directory "
		    "harvest");
	else if (c->dead && kc[0] == 0)
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "no "
		    "answer: %s", c->err);
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "VRFY/EXPN "
		    "reveal nothing (%u/%u for VRFY, %u/%u for EXPN)",
		    kc[0], uc[0], kc[1], uc[1]);
	probe_fix(f, run, "Answer VRFY with 252 (cannot verify, will "
	    "accept) and refuse EXPN (502), for every name.", fix_vrfy);
}

void
probe_info_run(struct probe_run *run)
{
	struct probe_finding	*fb, *fv;
	struct probe_conn	 c;
	struct probe_reply	 help;

	fb = probe_finding_add(run, "banner-leak", "Software and version "
	    "in greeting, EHLO and replies");
	fv = probe_finding_add(run, "vrfy-expn", "What VRFY and EXPN "
	    "reveal");
	probe_reply_init(&help);
	if (probe_conn_open(&c, run, &fb->evidence) == -1 ||
	    probe_conn_ehlo(&c) == -1) {
		snprintf(run->fatal, sizeof(run->fatal), "%s", c.err);
		probe_finding_set(fb, PROBE_ERROR, PROBE_SEV_INFO, "%s",
		    c.err);
		probe_conn_close(&c);
		return;
	}
	if (probe_cmd(&c, "HELP") == 0)
		help = c.r;
	info_identify(run, &c, &help);
	info_banner(run, fb, &c, &help);
	c.tr = &fv->evidence;
	info_vrfy(run, fv, &c);
	probe_conn_close(&c);
}
