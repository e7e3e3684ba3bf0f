/*
 * smtp_dnsbl.c - DNSBL and DNSWL at connect (issue 14, part 4): every
 * list of dnsbl_sites asked at once on the loop's resolver, through the
 * loop's cache (sender/dnsbl.h); the greeting waits for the answers at
 * most dnsbl_timeout, and a list still silent then is skipped.  A listed
 * client (score >= dnsbl_threshold) under dnsbl_action = reject gets
 * 554 5.7.1 naming the lists to its first command but QUIT, then the
 * session closes; under tag its mail gets an X-DNSBL header; under
 * shadow both the header and a would=reject line.
 * Not checked: an empty dnsbl_sites (no query at all), relay_networks.
 * Owns: s->dnsbl, the loop's DNSBL cache (created at first use), the
 * mxgate_dnsbl_total counters.
 * Never: blocks; holds the greeting past dnsbl_timeout.
 * Untrusted: DNS answers (classified by dnsbl.c before any use).
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../conf/conf.h"
#include "../lib/cidr.h"
#include "../net/worker.h"
#include "smtp_session.h"

_Static_assert(OBS_DNSBL_ZONES == DNSBL_SITES_MAX &&
    OBS_DNSBL_RESULTS == DNSBL_V_MAX, "obs.h's DNSBL counters: dnsbl.h");

static void	dnsbl_done(void *, const struct dnsbl_outcome *);
static void	dnsbl_deadline(evutil_socket_t, short, void *);

static struct dnsbl_cache *
dnsbl_cache(struct smtp_session *s)
{
	struct dns_lookup	 r;
	struct dns_resolver	*res;

	if (s->w->dnsbl != NULL)
		return s->w->dnsbl;
	if ((res = smtp_sender_resolver(s)) == NULL)
		return NULL;
	dns_lookup_of(&r, res);
	if ((s->w->dnsbl = dnsbl_cache_new(&r, DNSBL_CACHE_DEFAULT)) == NULL)
		log_event(LOG_LVL_WARNING, "dnsbl", "msg=\"out of memory for "
		    "the cache; lists are skipped\"");
	return s->w->dnsbl;
}

void
smtp_dnsbl_start(struct smtp_session *s)
{
	struct smtp_dnsbl		*d = &s->dnsbl;
	const struct dnsbl_list		*l = s->conf->dnsbl_sites;
	const struct sockaddr_in	*sin;
	uint8_t				 ip[16] = { 0 };
	int				 fam = s->peer.ss_family;
	unsigned			 ms = s->conf->dnsbl_timeout_ms;
	struct timeval			 tv = { ms / 1000, (ms % 1000) * 1000 };

	if (l == NULL || (fam != AF_INET && fam != AF_INET6))
		return;
	if (cidr_list_match(&s->conf->relay_networks,
	    (const struct sockaddr *)&s->peer)) {
		smtp_log(s, LOG_LVL_DEBUG, "dnsbl", "verdict=skipped "
		    "why=relay_networks");
		return;
	}
	if ((d->out = calloc(1, sizeof(*d->out))) == NULL) {
		smtp_log(s, LOG_LVL_WARNING, "dnsbl", "verdict=skipped "
		    "why=\"out of memory\"");
		return;
	}
	if (fam == AF_INET) {
		sin = (const struct sockaddr_in *)&s->peer;
		memcpy(ip, &sin->sin_addr, 4);
	} else
		memcpy(ip, &((const struct sockaddr_in6 *)&s->peer)->sin6_addr,
		    16);
	d->start_ms = smtp_now_ms();
	d->ck = dnsbl_check_start(dnsbl_cache(s), l, fam, ip, dnsbl_done, s,
	    d->out);
	if (d->ck == NULL) {
		dnsbl_done(s, d->out);	/* every answer was at hand */
		return;
	}
	d->timer = evtimer_new(s->w->base, dnsbl_deadline, s);
	if (d->timer == NULL || evtimer_add(d->timer, &tv) == -1)
		panic("smtp_dnsbl_start: cannot arm the DNSBL timer");
}

/* dnsbl_timeout passed: the lists still silent are skipped. */
static void
dnsbl_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	if (s->dnsbl.ck != NULL)
		dnsbl_check_expire(s->dnsbl.ck);	/* calls dnsbl_done */
}

/* Per zone: mxgate_dnsbl_total, and a line for a list skipped or
 * answering an error code. */
static void
dnsbl_note(struct smtp_session *s, const struct dnsbl_outcome *o)
{
	const struct dnsbl_list	*l = s->conf->dnsbl_sites;
	size_t			 zi;

	for (zi = 0; zi < l->nzones; zi++) {
		obs_add(&s->w->obs.dnsbl[zi][o->zv[zi]], 1);
		if (o->zv[zi] == DNSBL_V_TIMEOUT || o->zv[zi] == DNSBL_V_ERROR)
			smtp_log(s, LOG_LVL_WARNING, "dnsbl_skip", "site=%s "
			    "why=%s", l->zones[zi],
			    dnsbl_zverdict_name(o->zv[zi]));
	}
	if (o->alert[0] != '\0')
		smtp_log(s, LOG_LVL_WARNING, "dnsbl_alert", "answers=%s "
		    "msg=\"a list's error code or an answer outside "
		    "127.0.0.0/8: not a listing; check the list's terms and "
		    "dns_server\"", o->alert);
}

/* The answers are in (or the bound passed): decide, log, greet. */
static void
dnsbl_done(void *arg, const struct dnsbl_outcome *o)
{
	struct smtp_session	*s = arg;
	struct smtp_dnsbl	*d = &s->dnsbl;
	const char		*verdict, *action = "none";
	char			 detail[DNSBL_TEXT_OUT + 32];

	d->ck = NULL;
	if (d->timer != NULL)
		evtimer_del(d->timer);
	d->checked = true;
	d->listed = o->score >= (int)s->conf->dnsbl_threshold;
	d->exempt = s->conf->harvest_exempt_dnswl && (o->allowed ||
	    o->score < 0);
	dnsbl_note(s, o);
	verdict = d->listed ? "listed" : o->allowed ? "allowed" : "clean";
	if (d->listed) {
		snprintf(detail, sizeof(detail), "sites=%s", o->listed);
		action = "tag";
		if (s->conf->dnsbl_action == CONF_DNSBL_REJECT ||
		    (s->conf->dnsbl_action == CONF_DNSBL_SHADOW &&
		    smtp_control(s, CONF_CONTROL_SHADOW, "dnsbl", "reject",
		    detail))) {
			d->refuse = true;
			action = "reject";
		}
	}
	smtp_log(s, LOG_LVL_INFO, "dnsbl", "verdict=%s action=%s score=%d "
	    "threshold=%u sites=%s allow=%s detail=%s skipped=%s asked=%u "
	    "shared=%u cached=%u ms=%llu%s",
	    verdict, action, o->score, s->conf->dnsbl_threshold,
	    o->listed[0] ? o->listed : "-", o->allow[0] ? o->allow : "-",
	    o->detail[0] ? o->detail : "-", o->skipped[0] ? o->skipped : "-",
	    o->asked, o->shared, o->cached,
	    (unsigned long long)(smtp_now_ms() - d->start_ms),
	    d->exempt ? " harvest_exempt=1" : "");
	if (d->greet_due && !s->dead) {
		d->greet_due = false;
		smtp_greet(s);
	}
}

bool
smtp_dnsbl_hold_greeting(struct smtp_session *s)
{
	if (s->dnsbl.ck == NULL)
		return false;
	s->dnsbl.greet_due = true;
	return true;
}

bool
smtp_dnsbl_refuse(struct smtp_session *s, struct span verb)
{
	char	arg[DNSBL_TEXT_OUT + INET6_ADDRSTRLEN + 32];

	if (!s->dnsbl.refuse || span_eq_ci(verb, "QUIT"))
		return false;
	snprintf(arg, sizeof(arg), "[%s] blocked using %s", s->client,
	    s->dnsbl.out->listed);
	smtp_log(s, LOG_LVL_INFO, "dnsbl_reject", "sites=%s",
	    s->dnsbl.out->listed);
	smtp_reply(s, R_DNSBL_REJECT, arg);
	return true;
}

bool
smtp_dnsbl_exempt(const struct smtp_session *s)
{
	return s->dnsbl.exempt;
}

int
smtp_dnsbl_header(const struct smtp_session *s, char *out, size_t len)
{
	const struct smtp_dnsbl	*d = &s->dnsbl;
	int			 n;

	if (!d->checked || !d->listed || d->refuse)
		return 0;
	n = snprintf(out, len, "X-DNSBL: listed score=%d threshold=%u "
	    "client=%s sites=%s (%s)\r\n", d->out->score,
	    s->conf->dnsbl_threshold, s->client, d->out->listed,
	    s->conf->hostname);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

void
smtp_dnsbl_free(struct smtp_session *s)
{
	struct smtp_dnsbl	*d = &s->dnsbl;

	if (d->ck != NULL)
		dnsbl_check_cancel(d->ck);
	d->ck = NULL;
	if (d->timer != NULL)
		event_free(d->timer);
	d->timer = NULL;
	free(d->out);
	d->out = NULL;
}
