/*
 * probe_relay.c - `open-relay` (the classic relay forms, each stopped at
 * RCPT with RSET) and `null-sender` (many recipients for MAIL FROM:<>).
 * Owns: the relay form table.
 * Never: DATA to any address outside the tested domain; DATA at all.
 * Untrusted: replies.  RFC 5321 3.6, 3.6.1 (source routes), 4.1.2;
 * RFC 2505 (anti-relay recommendations).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <string.h>

#include "probe.h"

#define RELAY_LOCAL	"relaytest"
#define NULL_RCPTS_MAX	5
#define RELAY_BUDGET_MS	60000	/* a tarpitting server: measured, not fought */

/*
 * Placeholders: %L local part, %X the outside domain, %D the tested
 * domain, %I the server's address literal, %H the greeting's host name.
 * The sender: E outside, N null, L local (postmaster@D), I at %I.
 */
struct relay_form {
	char		 sender;
	const char	*rcpt;
};

static const struct relay_form relay_forms[] = {
	{ 'E', "%L@%X" },
	{ 'N', "%L@%X" },
	{ 'L', "%L@%X" },
	{ 'I', "%L@%X" },
	{ 'E', "%L@%X." },
	{ 'E', "%L@[192.0.2.1]" },
	{ 'E', "%L%%%X@%D" },
	{ 'E', "%L%%%X@%H" },
	{ 'E', "%L%%%X@%I" },
	{ 'L', "%L%%%X@%D" },
	{ 'E', "%X!%L@%D" },
	{ 'E', "%X!%L@%H" },
	{ 'E', "%X!%L@%I" },
	{ 'E', "%X!%L" },
	{ 'E', "\"%L@%X\"@%D" },
	{ 'E', "\"%L@%X\"@%I" },
	{ 'E', "\"%L@%X\"" },
	{ 'E', "\"%L%%%X\"" },
	{ 'E', "%L@%X@%D" },
	{ 'E', "%L@%X@%I" },
	{ 'E', "@%D:%L@%X" },
	{ 'E', "@%H:%L@%X" },
	{ 'E', "@%I:%L@%X" },
	{ 'E', "@%D,@%X:%L@%X" },
	{ 'L', "@%D:%L@%X" },
	{ 'E', "%L@%X%%%D" },
	{ 'E', "%X:%L@%D" },
	{ 'N', "%L%%%X@%D" },
};
#define RELAY_NFORMS	(sizeof(relay_forms) / sizeof(relay_forms[0]))

static const char *const fix_relay[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_relay_restrictions = "
	    "permit_mynetworks, permit_sasl_authenticated, "
	    "reject_unauth_destination; allow_percent_hack = no; "
	    "swap_bangpath = no",
	[PROBE_MTA_EXIM] = "acl_smtp_rcpt: require verify = recipient and "
	    "deny !hosts = +relay_from_hosts !domains = +local_domains "
	    "(the default ACL); no percent_hack_domains",
	[PROBE_MTA_SENDMAIL] = "remove FEATURE(`promiscuous_relay') and "
	    "FEATURE(`loose_relay_check'); RELAY only in access for your "
	    "networks",
	[PROBE_MTA_OPENSMTPD] = "match from any for domain <yours> action "
	    "\"local\" only; relay only \"from local\" or \"auth\"",
	[PROBE_MTA_EXCHANGE] = "remove Ms-Exch-SMTP-Accept-Any-Recipient "
	    "from Anonymous on the Internet receive connector",
	[PROBE_MTA_MXGATE] = "domains = only your domains; relay_networks "
	    "only your own networks",
};

static const char *const fix_null[PROBE_MTA_N] = {
	[PROBE_MTA_POSTFIX] = "smtpd_null_access_maps or a "
	    "check_sender_access rule for <> that rejects a second "
	    "recipient (reject_multi_recipient_bounce)",
	[PROBE_MTA_EXIM] = "acl_smtp_rcpt: deny senders = : condition = "
	    "${if >{$rcpt_count}{1}}",
	[PROBE_MTA_SENDMAIL] = "a check_rcpt rule refusing more than one "
	    "recipient for <>",
	[PROBE_MTA_MXGATE] = "mxgate refuses a second recipient for <> "
	    "(550 5.7.1) by default",
};

struct relay_ctx {
	char	ext[64];
	char	lit[64];
	char	host[256];
	bool	catchall;		/* invented names at D get 2xx */
	char	base[PROBE_TEXT_MAX];	/* that reply, address removed */
};

/* A reply's text without its first <...> (the address echoed). */
static void
relay_norm(const char *t, char *out, size_t outlen)
{
	const char	*lt = strchr(t, '<'), *gt;

	if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
		snprintf(out, outlen, "%.*s%s", (int)(lt - t), t, gt + 1);
	else
		snprintf(out, outlen, "%s", t);
}

/* Does the domain take any name?  Then a relay form that ends at the
 * domain and gets the very answer an invented name gets is no proof. */
static void
relay_catchall(struct probe_run *run, struct probe_finding *f,
    struct probe_conn *c, struct relay_ctx *x)
{
	char	inv[PROBE_ADDR_MAX];

	probe_invent(run, inv, sizeof(inv));
	if (probe_cmd(c, "MAIL FROM:<probe@%s>", x->ext) == -1 ||
	    c->r.code / 100 != 2)
		return;
	run->nrcpts++;
	if (probe_cmd(c, "RCPT TO:<%s>", inv) == 0 && c->r.code / 100 == 2) {
		x->catchall = true;
		relay_norm(c->r.text, x->base, sizeof(x->base));
		probe_fact(f, "the domain accepts invented names (%u): a "
		    "form through it counts only if answered differently",
		    c->r.code);
	}
	(void)probe_cmd(c, "RSET");
}

static bool
relay_ambiguous(const struct relay_ctx *x, const char *rcpt,
    const struct probe_reply *r)
{
	char	norm[PROBE_TEXT_MAX];

	if (!x->catchall || strchr(rcpt, '@') == NULL ||
	    strstr(rcpt, x->ext) == rcpt + strlen(rcpt) - strlen(x->ext))
		return false;		/* the outside domain is last */
	relay_norm(r->text, norm, sizeof(norm));
	return strcmp(norm, x->base) == 0;
}

static void
relay_expand(const struct probe_run *run, const struct relay_ctx *x,
    const char *tpl, char *out, size_t outlen)
{
	struct buf	b;
	size_t		i;

	buf_init(&b, outlen - 1);
	for (i = 0; tpl[i] != '\0'; i++) {
		if (tpl[i] != '%' || tpl[i + 1] == '\0') {
			buf_addc(&b, tpl[i]);
			continue;
		}
		switch (tpl[++i]) {
		case 'L': buf_addf(&b, "%s", RELAY_LOCAL); break;
		case 'X': buf_addf(&b, "%s", x->ext); break;
		case 'D': buf_addf(&b, "%s", run->o.domain); break;
		case 'I': buf_addf(&b, "%s", x->lit); break;
		case 'H': buf_addf(&b, "%s", x->host); break;
		default: buf_addc(&b, tpl[i]); break;
		}
	}
	snprintf(out, outlen, "%s", buf_cstr(&b));
	buf_free(&b);
}

static void
relay_sender(const struct probe_run *run, const struct relay_ctx *x,
    char kind, char *out, size_t outlen)
{
	switch (kind) {
	case 'N': out[0] = '\0'; break;
	case 'L': snprintf(out, outlen, "postmaster@%s", run->o.domain); break;
	case 'I': snprintf(out, outlen, "probe@%s", x->lit); break;
	default: snprintf(out, outlen, "probe@%s", x->ext); break;
	}
}

/* The server's address literal and the name in its greeting. */
static void
relay_ctx_fill(const struct probe_run *run, const struct probe_conn *c,
    struct relay_ctx *x)
{
	struct sockaddr_storage	ss;
	socklen_t		sl = sizeof(ss);
	char			a[INET6_ADDRSTRLEN];
	const char		*g = c->greeting.text + 4;
	size_t			n;

	memset(x, 0, sizeof(*x));
	snprintf(x->ext, sizeof(x->ext), "%s", strcmp(run->o.domain,
	    "example.net") == 0 ? "example.org" : "example.net");
	snprintf(x->lit, sizeof(x->lit), "[127.0.0.1]");
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET && inet_ntop(AF_INET,
		    &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof(a)))
			snprintf(x->lit, sizeof(x->lit), "[%s]", a);
		else if (ss.ss_family == AF_INET6 && inet_ntop(AF_INET6,
		    &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof(a)))
			snprintf(x->lit, sizeof(x->lit), "[IPv6:%s]", a);
	}
	n = strcspn(g, " \n\r");
	if (strlen(c->greeting.text) < 4 || n == 0 || n >= sizeof(x->host))
		snprintf(x->host, sizeof(x->host), "%s", run->o.host);
	else
		snprintf(x->host, sizeof(x->host), "%.*s", (int)n, g);
}

static int
relay_reconnect(struct probe_run *run, struct probe_conn *c, struct buf *tr)
{
	probe_conn_close(c);
	if (probe_conn_open(c, run, tr) == -1 || probe_conn_ehlo(c) == -1)
		return -1;
	return 0;
}

static void
relay_forms_run(struct probe_run *run, struct probe_finding *f,
    struct probe_conn *c, const struct relay_ctx *x)
{
	char		sender[PROBE_ADDR_MAX], rcpt[PROBE_ADDR_MAX];
	unsigned	tried = 0, accepted = 0, untested = 0, ambig = 0;
	int64_t		end = probe_now_ms() + RELAY_BUDGET_MS;
	size_t		i;

	for (i = 0; i < RELAY_NFORMS; i++) {
		if (probe_now_ms() >= end) {
			probe_fact(f, "time budget of %u s spent: forms %zu to "
			    "%zu not tried", RELAY_BUDGET_MS / 1000, i + 1,
			    RELAY_NFORMS);
			break;
		}
		if (c->dead && relay_reconnect(run, c, &f->evidence) == -1)
			break;
		relay_sender(run, x, relay_forms[i].sender, sender,
		    sizeof(sender));
		relay_expand(run, x, relay_forms[i].rcpt, rcpt, sizeof(rcpt));
		if (probe_cmd(c, "MAIL FROM:<%s>", sender) == -1)
			continue;
		if (c->r.code / 100 != 2) {
			untested++;
			probe_fact(f, "form %zu from <%s>: sender refused %u",
			    i + 1, sender, c->r.code);
			(void)probe_cmd(c, "RSET");
			continue;
		}
		run->nrcpts++;
		if (probe_cmd(c, "RCPT TO:<%s>", rcpt) == -1)
			continue;
		tried++;
		if (c->r.code / 100 == 2 && relay_ambiguous(x, rcpt, &c->r)) {
			ambig++;
			probe_fact(f, "accepted as a local name (catch-all): "
			    "<%s>", rcpt);
		} else if (c->r.code / 100 == 2) {
			accepted++;
			probe_fact(f, "ACCEPTED: from <%s> to <%s>: %u", sender,
			    rcpt, c->r.code);
		}
		(void)probe_cmd(c, "RSET");	/* never DATA */
	}
	probe_fact(f, "forms tried: %u of %zu, accepted: %u, as a local "
	    "name: %u, sender refused: %u", tried, RELAY_NFORMS, accepted,
	    ambig, untested);
	if (accepted > 0)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_HIGH, "open relay: "
		    "%u of %u relay forms accepted at RCPT (stopped there "
		    "with RSET)", accepted, tried);
	else if (ambig > 0)
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO, "no "
		    "form relayed outright; %u forms through the domain were "
		    "taken as local names (catch-all), which only DATA could "
		    "tell, and the probe never sends DATA outside", ambig);
	else if (tried == 0)
		probe_finding_set(f, PROBE_ERROR, PROBE_SEV_INFO, "no relay "
		    "form could be tried: %s", c->err[0] ? c->err :
		    "every sender refused");
	else
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "all %u relay "
		    "forms refused%s", tried, tried < RELAY_NFORMS ?
		    " (the others not tried, see facts)" : "");
	probe_fix(f, run, "Accept RCPT only for your own domains unless the "
	    "client is authenticated or in your networks; never route "
	    "%, ! or source routes.", fix_relay);
}

static void
relay_null(struct probe_run *run, struct probe_finding *f,
    struct probe_conn *c)
{
	char		rcpt[PROBE_ADDR_MAX];
	unsigned	accepted = 0, tried = 0, first = 0;
	bool		refused_as_null = false;
	size_t		i;

	if (probe_cmd(c, "MAIL FROM:<>") == -1 || c->r.code / 100 != 2) {
		probe_finding_set(f, c->dead ? PROBE_ERROR : PROBE_PASS,
		    PROBE_SEV_INFO, "MAIL FROM:<> %s", c->dead ? c->err :
		    "refused (bounces to this server cannot be delivered "
		    "either: RFC 5321 4.5.5 wants it accepted)");
		return;
	}
	for (i = 0; i < NULL_RCPTS_MAX && !c->dead; i++) {
		if (i < run->o.nknown)
			snprintf(rcpt, sizeof(rcpt), "%s", run->o.known[i]);
		else
			probe_invent(run, rcpt, sizeof(rcpt));
		run->nrcpts++;
		if (probe_cmd(c, "RCPT TO:<%s>", rcpt) == -1)
			break;
		tried++;
		if (c->r.code / 100 == 2) {
			accepted++;
			if (first == 0)
				first = (unsigned)i + 1;
		} else if (accepted > 0 && (strncmp(c->r.esc, "5.7.", 4) ==
		    0 || strncmp(c->r.esc, "4.7.", 4) == 0 || c->r.code == 452))
			refused_as_null = true;	/* policy, not "unknown" */
	}
	(void)probe_cmd(c, "RSET");
	probe_fact(f, "recipients for <>: %u tried, %u accepted", tried,
	    accepted);
	if (accepted >= 2)
		probe_finding_set(f, PROBE_FAIL, PROBE_SEV_MEDIUM, "a null "
		    "sender may address %u recipients in one transaction: "
		    "a bounce flood can be sent through it", accepted);
	else if (accepted == 1 && refused_as_null)
		probe_finding_set(f, PROBE_PASS, PROBE_SEV_INFO, "a null "
		    "sender gets one recipient only (the next refused by "
		    "policy)");
	else
		probe_finding_set(f, PROBE_INCONCLUSIVE, PROBE_SEV_INFO,
		    "%u recipient(s) accepted for <>, the others refused as "
		    "unknown names; a second --known name would tell",
		    accepted);
	probe_fix(f, run, "Accept one recipient per transaction for the "
	    "null sender (a real bounce has one).", fix_null);
}

void
probe_relay_run(struct probe_run *run)
{
	struct probe_finding	*fr, *fn;
	struct probe_conn	 c;
	struct relay_ctx	 x;

	fr = probe_finding_add(run, "open-relay", "Open relay, with the "
	    "classic tricks");
	fn = probe_finding_add(run, "null-sender", "Null sender with many "
	    "recipients");
	if (probe_conn_open(&c, run, &fr->evidence) == -1 ||
	    probe_conn_ehlo(&c) == -1) {
		probe_finding_set(fr, PROBE_ERROR, PROBE_SEV_INFO, "%s", c.err);
		probe_finding_set(fn, PROBE_ERROR, PROBE_SEV_INFO, "%s", c.err);
		probe_conn_close(&c);
		return;
	}
	relay_ctx_fill(run, &c, &x);
	relay_catchall(run, fr, &c, &x);
	relay_forms_run(run, fr, &c, &x);
	probe_conn_close(&c);
	if (probe_conn_open(&c, run, &fn->evidence) == -1 ||
	    probe_conn_ehlo(&c) == -1)
		probe_finding_set(fn, PROBE_ERROR, PROBE_SEV_INFO, "%s", c.err);
	else
		relay_null(run, fn, &c);
	probe_conn_close(&c);
}
