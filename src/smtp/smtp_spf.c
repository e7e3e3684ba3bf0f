/*
 * smtp_spf.c - SPF at MAIL FROM (issue 14, part 1): start the evaluation
 * on the loop's resolver, hold the session (ST_WAIT, input off) until the
 * result or the spf_timeout deadline, then let smtp_tx.c answer MAIL; the
 * result's reply under spf_policy = reject, its headers (RFC 7208 9.1
 * Received-SPF, RFC 8601 Authentication-Results) and its queue record.
 * Not checked: spf_policy = none, authenticated clients (AUTH), clients in
 * relay_networks: their mail is ours to vouch for, not the domain's.
 * Owns: s->tx.spf, the loop's SMTP-side resolver (created at first use).
 * Never: blocks; replies to MAIL itself (smtp_tx_mail_end does).
 * Untrusted: the sender, the HELO name and everything DNS says; what goes
 * into a header or a reply is reduced to safe characters first.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../dns/dns.h"
#include "../lib/cidr.h"
#include "../net/worker.h"
#include "smtp_session.h"

static void	spf_done(void *, const struct spf_outcome *);
static void	spf_deadline(evutil_socket_t, short, void *);
static void	spf_safe(char *, size_t, const char *, bool);
static const char *spf_comment(const struct smtp_session *, char *,
		    size_t);

/*
 * The loop's resolver for sender checks (SPF, DKIM; dns_server, else
 * resolv.conf).  A failure to make it (resolv.conf without a nameserver
 * yet, at boot) is tried again SPF_RESOLVER_RETRY_MS later, not kept
 * until a restart.
 */
#define SPF_RESOLVER_RETRY_MS	10000

struct dns_resolver *
smtp_sender_resolver(struct smtp_session *s)
{
	const struct config	*c = s->conf;
	char			 server[300], err[256];
	uint64_t		 now = smtp_now_ms();

	if (s->w->dns != NULL || (s->w->dns_failed_ms != 0 &&
	    now - s->w->dns_failed_ms < SPF_RESOLVER_RETRY_MS))
		return s->w->dns;
	if (c->dns_server.host)
		snprintf(server, sizeof(server), strchr(c->dns_server.host,
		    ':') ? "[%s]:%u" : "%s:%u", c->dns_server.host,
		    c->dns_server.port);
	s->w->dns = dns_resolver_new(s->w->base, c->dns_server.host ? server :
	    NULL, 0, err, sizeof(err));
	if (s->w->dns == NULL) {
		s->w->dns_failed_ms = now != 0 ? now : 1;
		log_event(LOG_LVL_WARNING, "dns", "msg=\"%s; SPF and DKIM "
		    "results are temperror (DNS lists skipped), tried again in %u s\"", log_text(err,
		    strlen(err), 200), SPF_RESOLVER_RETRY_MS / 1000);
	}
	return s->w->dns;
}

bool
smtp_spf_start(struct smtp_session *s)
{
	struct smtp_spf		*sp = &s->tx.spf;
	struct dns_lookup	 r;
	struct spf_request	 req = { 0 };
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	struct dns_resolver	*res;

	sp->checked = false;
	if (s->conf->spf_policy == CONF_SPF_NONE ||
	    s->auth_user[0] != '\0' ||
	    cidr_list_match(&s->conf->relay_networks,
	    (const struct sockaddr *)&s->peer))
		return false;
	sp->checked = true;
	if (s->peer.ss_family == AF_INET) {
		sin = (const struct sockaddr_in *)&s->peer;
		req.family = AF_INET;
		memcpy(req.ip, &sin->sin_addr, 4);
	} else {
		sin6 = (const struct sockaddr_in6 *)&s->peer;
		req.family = AF_INET6;
		memcpy(req.ip, &sin6->sin6_addr, 16);	/* v4-mapped: spf.c */
	}
	req.mailfrom = buf_cstr(&s->tx.sender);
	req.helo = s->helo;
	req.receiver = s->conf->hostname;
	req.now = time(NULL);
	sp->start_ms = smtp_now_ms();
	if ((res = smtp_sender_resolver(s)) == NULL) {
		memset(&sp->out, 0, sizeof(sp->out));
		sp->out.result = SPF_TEMPERROR;
		sp->out.helo_identity = req.mailfrom[0] == '\0';
		snprintf(sp->out.why, sizeof(sp->out.why), "no DNS resolver");
		return false;
	}
	dns_lookup_of(&r, res);
	sp->ev = spf_eval_start(&r, &req, s->id, spf_done, s, &sp->out);
	if (sp->ev == NULL)
		return false;		/* decided without DNS */
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	smtp_timer(s, s->conf->spf_timeout_ms, spf_deadline);
	return true;
}

/* The evaluation ended (it frees itself once this returns). */
static void
spf_done(void *arg, const struct spf_outcome *o)
{
	struct smtp_session	*s = arg;

	s->tx.spf.ev = NULL;
	s->tx.spf.out = *o;
	if (s->timer != NULL)
		evtimer_del(s->timer);
	if (s->dead || s->state != ST_WAIT)
		return;
	smtp_set_state(s, ST_READY);
	smtp_tx_mail_end(s);
	if (s->state != ST_WAIT)	/* else the milters have it now */
		smtp_resume(s);
}

/* spf_timeout passed: temperror now; the DNS questions are dropped. */
static void
spf_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	if (s->tx.spf.ev != NULL)
		spf_eval_expire(s->tx.spf.ev);	/* calls spf_done */
}

void
smtp_spf_stop(struct smtp_session *s)
{
	if (s->tx.spf.ev == NULL)
		return;
	spf_eval_cancel(s->tx.spf.ev);
	s->tx.spf.ev = NULL;
	if (s->timer != NULL)
		evtimer_del(s->timer);
}

void
smtp_spf_reset(struct smtp_session *s)
{
	smtp_spf_stop(s);
	s->tx.spf.checked = false;
}

/*
 * Copy src into dst (size n) keeping printable ASCII (and UTF-8 bytes
 * when utf8), others become '?'; in a comment ( ) \ become '?' too, in a
 * quoted-string " and \ get a backslash.
 */
static void
spf_safe(char *dst, size_t n, const char *src, bool quoted)
{
	size_t		 k = 0;
	unsigned char	 c;

	for (; *src != '\0' && k + 3 < n; src++) {
		c = (unsigned char)*src;
		if (c < 0x20 || c == 0x7f)
			c = '?';
		if (quoted && (c == '"' || c == '\\'))
			dst[k++] = '\\';
		else if (!quoted && (c == '(' || c == ')' || c == '\\'))
			c = '?';
		dst[k++] = (char)c;
	}
	dst[k] = '\0';
}

/* Received-SPF's comment (RFC 7208 9.1): what the result means. */
static const char *
spf_comment(const struct smtp_session *s, char *out, size_t len)
{
	const struct spf_outcome	*o = &s->tx.spf.out;
	char				 who[600], why[200];
	const char			*what = o->helo_identity ? "helo" :
					    "domain of";

	spf_safe(who, sizeof(who), o->helo_identity ? s->helo : o->sender,
	    false);
	spf_safe(why, sizeof(why), o->why, false);
	switch (o->result) {
	case SPF_PASS:
		snprintf(out, len, "%s: %s %s designates %s as permitted "
		    "sender", s->conf->hostname, what, who, s->client);
		break;
	case SPF_FAIL:
		snprintf(out, len, "%s: %s %s does not designate %s as "
		    "permitted sender", s->conf->hostname, what, who,
		    s->client);
		break;
	case SPF_SOFTFAIL:
		snprintf(out, len, "%s: %s transitioning %s does not designate "
		    "%s as permitted sender", s->conf->hostname, what, who,
		    s->client);
		break;
	case SPF_NEUTRAL:
		snprintf(out, len, "%s: %s is neither permitted nor denied by "
		    "%s %s", s->conf->hostname, s->client, what, who);
		break;
	case SPF_NONE:
		snprintf(out, len, "%s: %s %s does not publish SPF: %s",
		    s->conf->hostname, what, who, why);
		break;
	default:
		snprintf(out, len, "%s: %s %s: %s", s->conf->hostname,
		    o->result == SPF_TEMPERROR ? "temporary error checking" :
		    "permanent error in the SPF of", who, why);
		break;
	}
	return out;
}

int
smtp_spf_headers(const struct smtp_session *s, const char *dkim, char *out,
    size_t len)
{
	const struct spf_outcome	*o = &s->tx.spf.out;
	const char			*res = spf_result_name(o->result);
	char				 comment[1400], from[600], helo[600];
	char				 mech[80], id[700];
	int				 n;

	if (!s->tx.spf.checked) {
		if (dkim[0] == '\0')
			return 0;
		n = snprintf(out, len, "Authentication-Results: %s;\r\n\t%s\r\n",
		    s->conf->hostname, dkim);
		return n < 0 || (size_t)n >= len ? -1 : n;
	}
	spf_safe(from, sizeof(from), o->sender, true);
	spf_safe(helo, sizeof(helo), s->helo, true);
	spf_safe(mech, sizeof(mech), o->mech, true);
	/* RFC 8601 2.7.2: smtp.mailfrom, or smtp.helo for the HELO check */
	if (o->helo_identity)
		snprintf(id, sizeof(id), "smtp.helo=\"%s\"", helo);
	else
		snprintf(id, sizeof(id), "smtp.mailfrom=\"%s\"", from);
	n = snprintf(out, len,
	    "Authentication-Results: %s;\r\n\tspf=%s %s%s%s\r\n"
	    "Received-SPF: %s (%s)\r\n\tclient-ip=%s;\r\n"
	    "\tenvelope-from=\"%s\";\r\n\thelo=\"%s\";\r\n\treceiver=%s;\r\n"
	    "\tidentity=%s%s%s%s\r\n",
	    s->conf->hostname, res, id, dkim[0] ? ";\r\n\t" : "", dkim,
	    res, spf_comment(s, comment, sizeof(comment)), s->client,
	    from, helo, s->conf->hostname,
	    o->helo_identity ? "helo" : "mailfrom",
	    o->mech[0] != '\0' ? ";\r\n\tmechanism=\"" : "", mech,
	    o->mech[0] != '\0' ? "\"" : "");
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

const char *
smtp_spf_proof(const struct smtp_session *s, char *out, size_t len)
{
	const struct spf_outcome	*o = &s->tx.spf.out;

	if (!s->tx.spf.checked)
		return NULL;
	snprintf(out, len, "spf=%s spf.identity=%s",
	    spf_result_name(o->result), o->helo_identity ? "helo" :
	    "mailfrom");
	return out;
}

bool
smtp_spf_passed(const struct smtp_session *s)
{
	return s->tx.spf.checked && s->tx.spf.out.result == SPF_PASS &&
	    !s->tx.spf.out.helo_identity;
}

enum reply_id
smtp_spf_verdict(const struct smtp_session *s, char *arg, size_t len)
{
	const struct spf_outcome	*o = &s->tx.spf.out;
	char				 dom[300];

	if (!s->tx.spf.checked || s->conf->spf_policy != CONF_SPF_REJECT)
		return R_NONE;
	spf_safe(dom, sizeof(dom), o->domain, false);
	if (o->result == SPF_FAIL) {
		if (o->expl[0] != '\0')
			spf_safe(arg, len, o->expl, false);
		else
			snprintf(arg, len, "%s does not designate %s as "
			    "permitted sender", dom, s->client);
		return R_SPF_FAIL;
	}
	if (o->result == SPF_TEMPERROR) {
		snprintf(arg, len, "%s", dom);
		return R_SPF_TEMP;
	}
	return R_NONE;
}

/* " spf=RESULT ..." for the MAIL log line ("" when not checked). */
const char *
smtp_spf_log(const struct smtp_session *s, char *out, size_t len)
{
	const struct spf_outcome	*o = &s->tx.spf.out;

	if (!s->tx.spf.checked) {
		snprintf(out, len, "%s", s->conf->spf_policy == CONF_SPF_NONE ?
		    "" : " spf=skipped");
		return out;
	}
	snprintf(out, len, " spf=%s spf_identity=%s spf_ms=%llu "
	    "spf_lookups=%u spf_why=\"%s\"", spf_result_name(o->result),
	    o->helo_identity ? "helo" : "mailfrom",
	    (unsigned long long)(smtp_now_ms() - s->tx.spf.start_ms),
	    o->lookups, log_text(o->why, strlen(o->why), 160));
	return out;
}
