/*
 * smtp_dkim.c - DKIM at the end of data (issue 14, part 2): the message
 * is fed to the verifier as it streams in (sender/dkim.h hashes the body
 * on the fly); at the end of data the session waits (ST_WAIT, input off)
 * for the key look-ups, at most dkim_timeout, then smtp_tx.c goes on to
 * the commit and the 250.  Results go into Authentication-Results (RFC
 * 8601 2.7.1), the P record and the message's log line; a pass whose d=
 * has the organizational domain of MAIL FROM (sender/psl.h) is a proof
 * for reports (NDR_PROOF_DKIM).
 * Not checked: dkim_verify = no, authenticated or relay_networks clients
 * (as SPF: their mail is ours to vouch for).
 * Owns: s->tx.dkim.  Never: blocks, replies itself.
 * Untrusted: the message and everything DNS says.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../lib/cidr.h"
#include "../net/worker.h"
#include "../sender/psl.h"
#include "smtp_session.h"

static void	dkim_done(void *);
static void	dkim_deadline(evutil_socket_t, short, void *);

void
smtp_dkim_begin(struct smtp_session *s)
{
	struct smtp_dkim	*dk = &s->tx.dkim;

	smtp_dkim_free(s);
	if (!s->conf->dkim_verify || s->auth_user[0] != '\0' ||
	    cidr_list_match(&s->conf->relay_networks,
	    (const struct sockaddr *)&s->peer))
		return;
	/* no memory: not checked (the message is taken, untagged) */
	dk->m = dkim_msg_new(s->conf->max_header_size);
}

void
smtp_dkim_feed(struct smtp_session *s, const uint8_t *p, size_t n)
{
	if (s->tx.dkim.m != NULL)
		dkim_msg_feed(s->tx.dkim.m, p, n);
}

static void
dkim_noop_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	(void)ctx, (void)name, (void)qtype, (void)id, (void)cb, (void)arg;
}

static void
dkim_noop_cancel(void *ctx, uint64_t id)
{
	(void)ctx, (void)id;
}

bool
smtp_dkim_start(struct smtp_session *s)
{
	struct smtp_dkim	*dk = &s->tx.dkim;
	struct dns_lookup	 r = { dkim_noop_query, dkim_noop_cancel,
				    NULL };
	struct dns_resolver	*res;

	if (dk->m == NULL)
		return false;
	dk->checked = true;
	dk->start_ms = smtp_now_ms();
	if (dkim_msg_end(dk->m) == 0)
		return false;		/* no signature: no look-up */
	if ((res = smtp_sender_resolver(s)) != NULL)
		dns_lookup_of(&r, res);
	dk->sync = res == NULL;
	if (!dkim_verify_start(dk->m, &r, s->id, time(NULL), dkim_done, s))
		return false;
	if (dk->sync) {		/* no resolver: the keys are temperror */
		dkim_verify_expire(dk->m);
		return false;
	}
	dk->waiting = true;
	smtp_set_state(s, ST_WAIT);
	bufferevent_disable(s->bev, EV_READ);
	smtp_timer(s, s->conf->dkim_timeout_ms, dkim_deadline);
	return true;
}

/* Every key answered (or the deadline): finish the end of data. */
static void
dkim_done(void *arg)
{
	struct smtp_session	*s = arg;

	if (!s->tx.dkim.waiting)
		return;		/* decided inside smtp_dkim_start */
	s->tx.dkim.waiting = false;
	if (s->timer != NULL)
		evtimer_del(s->timer);
	if (s->dead || s->state != ST_WAIT)
		return;
	smtp_set_state(s, ST_DATA);
	smtp_tx_end_go(s);
	if (s->state == ST_READY)
		smtp_resume(s);
}

static void
dkim_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session	*s = arg;

	(void)fd;
	(void)what;
	if (s->tx.dkim.m != NULL && s->tx.dkim.waiting) {
		smtp_log(s, LOG_LVL_WARNING, "dkim", "msg=\"key look-ups "
		    "took longer than dkim_timeout; temperror\"");
		dkim_verify_expire(s->tx.dkim.m);	/* calls dkim_done */
	}
}

void
smtp_dkim_free(struct smtp_session *s)
{
	struct smtp_dkim	*dk = &s->tx.dkim;

	if (dk->waiting && s->timer != NULL)
		evtimer_del(s->timer);
	dkim_msg_free(dk->m);	/* cancels its questions */
	*dk = (struct smtp_dkim){ 0 };
}

/* The MAIL FROM domain ("" for <>). */
static const char *
dkim_from_domain(const struct smtp_session *s)
{
	const char	*p = (const char *)s->tx.sender.data, *at;

	if (p == NULL || s->tx.sender.len == 0)
		return "";
	at = memrchr(p, '@', s->tx.sender.len);
	return at != NULL ? at + 1 : "";
}

/* Counts for reports: a pass over the whole body with a real key. */
static bool
dkim_trusted(const struct dkim_outcome *o)
{
	return o->result == DKIM_PASS && !o->partial && !o->testing;
}

static bool
dkim_one_aligned(const struct smtp_session *s, const struct dkim_outcome *o)
{
	const char	*dom = dkim_from_domain(s);

	return dkim_trusted(o) && dom[0] != '\0' &&
	    psl_aligned(s->w->grp->psl, o->d, dom);
}

bool
smtp_dkim_aligned(const struct smtp_session *s)
{
	const struct smtp_dkim	*dk = &s->tx.dkim;
	size_t			 i, n;

	if (!dk->checked)
		return false;
	n = dkim_msg_nsigs(dk->m, NULL);
	for (i = 0; i < n; i++)
		if (dkim_one_aligned(s, dkim_msg_outcome(dk->m, i)))
			return true;
	return false;
}

/* header.b's value: a token, or quoted when base64 has '/' or '+' */
static void
dkim_hb(const char *b8, char *out, size_t len)
{
	snprintf(out, len, strpbrk(b8, "/+=") ? "\"%s\"" : "%s", b8);
}

int
smtp_dkim_resinfo(const struct smtp_session *s, char *out, size_t len)
{
	const struct smtp_dkim		*dk = &s->tx.dkim;
	const struct dkim_outcome	*o;
	char				 hb[16], why[96];
	size_t				 i, n, k = 0;
	int				 w;

	if (!dk->checked)
		return 0;
	out[0] = '\0';
	if ((n = dkim_msg_nsigs(dk->m, NULL)) == 0)
		return 0;	/* no signature: nothing said (not dkim=none) */
	for (i = 0; i < n; i++) {
		o = dkim_msg_outcome(dk->m, i);
		dkim_hb(o->b8, hb, sizeof(hb));
		/* the reason: static text, no ( ) \ in it */
		why[0] = '\0';
		if (o->result != DKIM_PASS)
			snprintf(why, sizeof(why), " (%s)", o->why ? o->why :
			    "");
		if (o->d[0] != '\0')
			w = snprintf(out + k, len - k, "%sdkim=%s%s header.d=%s "
			    "header.s=%s header.b=%s", i ? ";\r\n\t" : "",
			    dkim_result_name(o->result), why, o->d, o->s, hb);
		else
			w = snprintf(out + k, len - k, "%sdkim=%s%s",
			    i ? ";\r\n\t" : "", dkim_result_name(o->result),
			    why);
		if (w < 0 || (size_t)w >= len - k)
			return -1;
		k += (size_t)w;
	}
	return (int)k;
}

/* pass if one is trusted, else the first one's result, or none */
static const char *
dkim_best(const struct smtp_session *s, bool *pass)
{
	const struct smtp_dkim	*dk = &s->tx.dkim;
	size_t			 i, n = dkim_msg_nsigs(dk->m, NULL);

	*pass = false;
	for (i = 0; i < n; i++)
		*pass |= dkim_trusted(dkim_msg_outcome(dk->m, i));
	return *pass ? "pass" : n > 0 ?
	    dkim_result_name(dkim_msg_outcome(dk->m, 0)->result) : "none";
}

const char *
smtp_dkim_proof(const struct smtp_session *s, char *out, size_t len)
{
	const struct smtp_dkim		*dk = &s->tx.dkim;
	const struct dkim_outcome	*o;
	size_t				 i, n, k;
	bool				 pass;

	if (!dk->checked)
		return NULL;
	n = dkim_msg_nsigs(dk->m, NULL);
	snprintf(out, len, "dkim=%s", dkim_best(s, &pass));
	/* the passing domains, an aligned one first; what fits */
	for (k = 0; k < 2; k++)
		for (i = 0; i < n; i++) {
			o = dkim_msg_outcome(dk->m, i);
			if (!dkim_trusted(o) || dkim_one_aligned(s, o) !=
			    (k == 0) || strlen(out) + strlen(o->d) + 9 >= len -
			    16)
				continue;
			snprintf(out + strlen(out), len - strlen(out),
			    " dkim.d=%s", o->d);
		}
	if (pass)
		snprintf(out + strlen(out), len - strlen(out),
		    " dkim.aligned=%d", smtp_dkim_aligned(s) ? 1 : 0);
	return out;
}

const char *
smtp_dkim_log(const struct smtp_session *s, char *out, size_t len)
{
	const struct smtp_dkim		*dk = &s->tx.dkim;
	const struct dkim_outcome	*o;
	size_t				 i, n, found, k;
	bool				 pass;

	if (!dk->checked) {
		snprintf(out, len, "%s", s->conf->dkim_verify ?
		    " dkim=skipped" : "");
		return out;
	}
	n = dkim_msg_nsigs(dk->m, &found);
	k = (size_t)snprintf(out, len, " dkim=%s dkim_sigs=%zu "
	    "dkim_aligned=%s dkim_ms=%llu", dkim_best(s, &pass), found, smtp_dkim_aligned(s) ? "yes" : "no",
	    (unsigned long long)(smtp_now_ms() - dk->start_ms));
	for (i = 0; i < n && k < len; i++) {
		o = dkim_msg_outcome(dk->m, i);
		k += (size_t)snprintf(out + k, len - k, "%s%s:%s", i ?
		    "," : " dkim_results=", dkim_result_name(o->result),
		    o->d[0] ? o->d : "-");
	}
	return out;
}
