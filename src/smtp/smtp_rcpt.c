/*
 * smtp_rcpt.c - the RCPT pipeline, in DESIGN 2.4's order, one step a
 * function (STYLE R5): syntax, relay, guard (its verdict comes from the
 * client's history, so it is asked before the directory and its delay
 * covers the look-up too), directory, policy, limits.
 * Owns: the verdict-to-reply mapping for recipients, and when each reply
 * may go out (rcpt_release: the tarpit and the reply floor).
 * Never: a reply that tells a harvester more than the domain's policy
 * says; under `discard` an unknown name gets the valid reply's bytes,
 * and (rcpt_reply_floor, issue 12) at the same time.
 * Untrusted: the RCPT argument.  RFC 5321 4.1.1.3, 3.6 (relay), 4.5.3.1.8.
 */
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../dir/dir.h"
#include "../guard/guard.h"
#include "../lib/rate.h"
#include "../lib/utf8.h"
#include "../net/worker.h"
#include "../obs/log_hash.h"
#include "../policy/policy.h"
#include "../policy/relay.h"
#include "../sender/batv.h"
#include "smtp_session.h"

static bool	rcpt_batv(struct smtp_session *);
static void	rcpt_dir_done(void *, uint64_t, enum dir_verdict);
static void	rcpt_dir_time(struct smtp_session *);
static void	rcpt_guard(struct smtp_session *);
static void	rcpt_lookup(struct smtp_session *);
static void	rcpt_take(struct smtp_session *, enum rcpt_action, bool,
		    bool, bool, const char *);
static void	rcpt_proceed(struct smtp_session *, enum relay_verdict,
		    enum dir_verdict);

/* RFC 5321 4.1.1.3: "RCPT TO:<Postmaster>" without a domain must work. */
static bool
rcpt_is_postmaster(struct span arg)
{
	static const char	pm[] = "TO:<postmaster>";
	size_t			n = sizeof(pm) - 1;

	while (arg.len > n && arg.p[arg.len - 1] == ' ')
		arg.len--;
	return arg.len == n && span_eq_ci(arg, pm);
}

/*
 * A UTF-8 address (SMTPUTF8 given): the key is its canonical form, NFC
 * local part and NFC lower-case domain, so that every spelling of one
 * name is one recipient for the directory, the guard, the duplicate
 * check and the mailbox it lands in.  The reply echoes what was sent
 * (strict UTF-8, which RFC 6531 3.7.1 allows in replies).
 */
static bool
rcpt_syntax_utf8(struct smtp_session *s, struct smtp_addr *a,
    const char *local, size_t llen)
{
	uint8_t	key[sizeof(s->rw.key)];
	int	n, m;

	n = utf8_nfc((const uint8_t *)local, llen, false, key,
	    sizeof(key) - 2);
	m = n < 0 ? -1 : utf8_nfc(a->domain.p, a->domain.len, true,
	    key + n + 1, sizeof(key) - 2 - (size_t)n);
	if (m < 0) {
		smtp_error(s, R_UTF8_BAD);
		return false;
	}
	key[n] = '@';
	memcpy(s->rw.key, key, (size_t)n + 1 + (size_t)m);
	s->rw.key[n + 1 + m] = '\0';
	snprintf(s->rw.addr, sizeof(s->rw.addr), "<%.*s@%.*s>",
	    (int)a->local.len, (const char *)a->local.p,
	    (int)a->domain.len, (const char *)a->domain.p);
	a->domain.p = (const uint8_t *)s->rw.key + n + 1;
	a->domain.len = (size_t)m;
	return true;
}

/* Step 1: syntax.  Fills s->rw.addr ("<a@b>") and s->rw.key ("a@b"). */
static bool
rcpt_syntax(struct smtp_session *s, struct span arg, struct smtp_addr *a)
{
	struct smtp_path_arg	pa;
	char			local[SMTP_LOCAL_MAX + 1];
	int			llen;
	enum reply_id		r;

	s->rw.dsn_notify = 0;
	s->rw.dsn_orcpt[0] = '\0';
	if (rcpt_is_postmaster(arg)) {
		const char *d = s->conf->domains[0].name;

		snprintf(s->rw.key, sizeof(s->rw.key), "postmaster@%s", d);
		snprintf(s->rw.addr, sizeof(s->rw.addr), "<%s>", s->rw.key);
		*a = (struct smtp_addr){
			.local = { (const uint8_t *)"postmaster", 10 },
			.domain = { (const uint8_t *)d, strlen(d) },
		};
		return true;
	}
	if (smtp_parse_path_arg(arg.p, arg.len, s->conf->envelope_lenient ?
	    SMTP_PA_LENIENT : 0, &pa) != PARSE_OK) {
		smtp_log(s, LOG_LVL_INFO, "rcpt", "arg=%s result=syntax",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, pa.err == SMTP_ARG_KEYWORD ? R_RCPT_SYNTAX :
		    pa.err == SMTP_ARG_PATH ? R_BAD_RCPT :
		    pa.err == SMTP_ARG_UTF8 ? R_UTF8_BAD : R_PARAM_SYNTAX);
		return false;
	}
	if (pa.addr.utf8 && !s->tx.smtputf8) {	/* RFC 6531 3.5 */
		smtp_log(s, LOG_LVL_INFO, "rcpt", "arg=%s result=utf8",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, R_UTF8_NEEDED);
		return false;
	}
	if ((r = smtp_tx_rcpt_params(s, &pa)) != R_NONE) {	/* RFC 3461 */
		smtp_error(s, r);
		return false;
	}
	*a = pa.addr;
	llen = smtp_local_canon(a, local, sizeof(local));
	if (llen < 0) {
		smtp_error(s, R_BAD_RCPT);
		return false;
	}
	if (a->utf8)
		return rcpt_syntax_utf8(s, a, local, (size_t)llen);
	/* The parser let only printable ASCII through: safe to echo. */
	snprintf(s->rw.key, sizeof(s->rw.key), "%.*s@%.*s", llen, local,
	    (int)a->domain.len, (const char *)a->domain.p);
	snprintf(s->rw.addr, sizeof(s->rw.addr), "<%.*s@%.*s>",
	    (int)a->local.len, (const char *)a->local.p,
	    (int)a->domain.len, (const char *)a->domain.p);
	return true;
}

/*
 * mxgate_rcpt_total and the decision time (issue 18): once per RCPT, when
 * its answer is chosen (a tarpit's wait comes after, and is not in it).
 * A RCPT the guard delays counts as tarpit, whatever its answer; one a
 * control in shadow would have answered otherwise counts as shadow too.
 * `mxgate stats` reads the same counters.
 */
static void
rcpt_count(struct smtp_session *s, enum obs_rcpt r)
{
	struct obs_loop	*o = &s->w->obs;
	uint64_t	 now = smtp_now_us();

	if (s->rw.tarpit_us != 0 && r != OBS_RCPT_UNIFORM_HARVEST)
		r = OBS_RCPT_TARPIT_HARVEST;
	obs_rcpt(o, r);
	if (s->rw.would != NULL)
		obs_add(&o->rcpt_shadow, 1);
	obs_hist_note(&o->rcpt_seconds, &obs_rcpt_seconds,
	    now > s->rw.arrive_us ? now - s->rw.arrive_us : 0);
}

/*
 * The decision line (issue 18): who asked (the prefix is the network the
 * harvest guard counts too), the envelope, what the directory said
 * (verdict) and what was done (action), who answered (source), how long
 * the decision took (not counting a tarpit or the reply floor), the
 * reply, and under a shadow control what it would have done instead.
 */
static void
rcpt_log(struct smtp_session *s, const char *verdict, const char *action,
    const char *reply, enum obs_rcpt m)
{
	char		 to[OBS_HASH_TEXT];
	uint64_t	 now = smtp_now_us();
	const char	*rcpt = s->conf->log_recipients ? obs_hash_rcpt(
			    s->rw.key, strlen(s->rw.key), to) :
			    log_esc(s->rw.addr, strlen(s->rw.addr), 256);

	smtp_log(s, LOG_LVL_INFO, "rcpt", "prefix=%s helo=%s from=<%s> "
	    "to=%s verdict=%s action=%s source=%s latency_ms=%llu%s%s%s "
	    "reply=\"%s\"", s->prefix, s->helo[0] ? log_esc(s->helo,
	    strlen(s->helo), 64) : "-", log_esc(s->tx.sender.data,
	    s->tx.sender.len, 256), rcpt, verdict, action,
	    s->rw.asked ? dir_name(s->w->dir) : "none",
	    (unsigned long long)(now > s->rw.arrive_us ?
	    (now - s->rw.arrive_us) / 1000 : 0),
	    s->rw.would ? " shadow=1 would=" : "",
	    s->rw.would ? s->rw.would : "", s->rw.would_delay,
	    log_text(reply, strlen(reply), 200));
	rcpt_count(s, m);
}

/* Log a decision, then give its reply (a catalogue reply, with arg). */
static void
rcpt_answer(struct smtp_session *s, const char *verdict, const char *action,
    enum obs_rcpt m, enum reply_id r, const char *arg)
{
	char	line[SMTP_REPLY_MAX], h[OBS_HASH_TEXT], a[OBS_HASH_TEXT + 2];

	/* hashed: the address the reply echoes is not logged either */
	if (s->conf->log_recipients && arg == s->rw.addr) {
		snprintf(a, sizeof(a), "<%s>", obs_hash_rcpt(s->rw.key,
		    strlen(s->rw.key), h));
		smtp_reply_fmt(r, a, line, sizeof(line));
	} else
		smtp_reply_fmt(r, arg, line, sizeof(line));
	rcpt_log(s, verdict, action, line, m);
	smtp_reply(s, r, arg);
}

/*
 * Whether a control's verdict is carried out (issue 18, part 3): under
 * enforce it is; under shadow it is not, the client sees what it would
 * without the control, and the decision line says shadow=1 would=WHAT.
 * A control that can be rolled out in shadow calls this once, e.g.
 * `if (rcpt_control(s, s->conf->dnsbl_action, "reject")) ...`.
 */
static bool
rcpt_control(struct smtp_session *s, int mode, const char *would)
{
	if (mode == CONF_CONTROL_SHADOW) {
		if (s->rw.would == NULL)	/* the first one counts */
			s->rw.would = would;
		return false;
	}
	return mode == CONF_CONTROL_ENFORCE;
}

/*
 * Step 2b, BATV (issue 14, part 5), for a domain in batv_domains: a
 * tagged recipient loses its tag here, before the directory, the guard
 * and the queue see it (the delivered copy's recipient is the plain
 * address).  A bounce (null sender) must carry a valid tag once
 * batv_grace has run since BATV was switched on (c->batv_since); during
 * the grace one without is taken, and logged.  Mail with a sender is
 * not a bounce: its tag, if well formed, is only removed.  The answer
 * is the same for every name, so it tells a harvester nothing.
 */
static bool
rcpt_batv(struct smtp_session *s)
{
	const struct config	*c = s->conf;
	const char		*at = strrchr(s->rw.key, '@');
	char			 plain[sizeof(s->rw.key)];
	struct batv_tag		 tag;
	enum batv_result	 r;
	time_t			 now = time(NULL);
	bool			 bounce = s->tx.sender.len == 0, grace;
	const char		*action;

	if (c->batv_keys == NULL || at == NULL)
		return true;
	r = batv_verify(c->batv_keys, s->rw.key, (size_t)(at - s->rw.key),
	    at + 1, strlen(at + 1), now, &tag);
	if (r == BATV_NONE && !bounce)
		return true;			/* nothing to say */
	grace = c->batv_since == 0 ||
	    now < c->batv_since + (time_t)(c->batv_grace_ms / 1000);
	/* a malformed tag is left in place: the directory decides */
	action = !bounce ? (r == BATV_MALFORMED ? "keep" : "strip") :
	    r == BATV_PASS ? "accept" : grace ? "accept_grace" : "reject";
	smtp_log(s, LOG_LVL_INFO, "batv", "to=%s bounce=%s result=%s "
	    "action=%s", log_esc(s->rw.addr, strlen(s->rw.addr), 256),
	    bounce ? "yes" : "no", batv_result_name(r), action);
	if (bounce || r != BATV_MALFORMED)
		obs_batv(&s->w->obs, bounce ? (r == BATV_PASS ?
		    OBS_BATV_PASS : grace ? OBS_BATV_GRACE :
		    OBS_BATV_REJECT) : OBS_BATV_STRIP);
	if (bounce && r != BATV_PASS && !grace) {
		rcpt_answer(s, "batv", "reject", OBS_RCPT_REJECT_BATV,
		    R_BATV_REFUSED, s->rw.addr);
		return false;
	}
	if (r != BATV_NONE && r != BATV_MALFORMED) {
		snprintf(plain, sizeof(plain), "%.*s@%s", (int)tag.llen,
		    tag.local, at + 1);
		memcpy(s->rw.key, plain, strlen(plain) + 1);
		snprintf(s->rw.addr, sizeof(s->rw.addr), "<%s>", plain);
	}
	return true;
}

void
smtp_rcpt(struct smtp_session *s, struct span arg)
{
	const struct domain_conf	*dc;
	struct smtp_addr		 a;
	enum relay_verdict		 rv;

	s->rw.arrive_us = s->read_us;
	s->rw.tarpit_us = 0;
	if (!rcpt_syntax(s, arg, &a)) {
		rcpt_count(s, OBS_RCPT_REJECT_SYNTAX);
		return;
	}
	rv = relay_check(s->conf, (const struct sockaddr *)&s->peer,
	    s->auth_user[0] != '\0', (const char *)a.domain.p, a.domain.len,
	    a.literal, &dc);
	s->rw.dc = dc;
	s->rw.resume = s->state;
	s->rw.asked = false;
	s->rw.would = NULL;
	s->rw.would_delay[0] = '\0';
	if (rv != RELAY_LOCAL) {
		rcpt_proceed(s, rv, DIR_UNKNOWN);	/* not ours to look up */
		return;
	}
	if (dc->batv && !rcpt_batv(s))
		return;
	rcpt_guard(s);
}

/*
 * When this RCPT's reply may go out: the one place (issue 12).  The
 * tarpit's time, and for a reply that hides validity the floor: a fixed
 * time after the command was read, or the next multiple of it when the
 * decision took longer; whichever is later.  A tarpitted session reads
 * nothing more until its reply is out (the delay is the client's to
 * pay, one reply at a time); a floored one reads on, and replies to
 * commands read with it (a pipelined group) leave together, in order.
 * An honest client whose replies hide nothing (reject mode) pays
 * nothing: then only the tarpit, if any, holds the reply.
 */
static void
rcpt_release(struct smtp_session *s, bool hides)
{
	uint64_t	at = s->rw.tarpit_us, f;

	if (hides && (f = smtp_floor_at(s->rw.arrive_us, smtp_now_us(),
	    (uint64_t)s->conf->rcpt_reply_floor_ms * 1000)) > at)
		at = f;
	smtp_hold(s, at, s->rw.tarpit_us != 0);
}

/* A guard delay: from now, the reply waits at least delay ms. */
static void
rcpt_tarpit(struct smtp_session *s, unsigned delay)
{
	s->rw.tarpit_us = smtp_now_us() + (uint64_t)delay * 1000;
	smtp_log(s, LOG_LVL_DEBUG, "tarpit", "delay_ms=%u", delay);
}

/* The uniform reply: one answer for every name; no directory asked. */
static void
rcpt_uniform(struct smtp_session *s)
{
	rcpt_log(s, "uniform", policy_action_name(RCPT_UNIFORM),
	    s->conf->harvest_uniform_reply, OBS_RCPT_UNIFORM_HARVEST);
	rcpt_release(s, true);
	smtp_reply_line(s, s->conf->harvest_uniform_reply);
}

/* Step 3: the harvest guard (DESIGN 3).  Its delay runs while the
 * directory is asked, so the look-up's cost hides inside it.  Under
 * harvest_guard = shadow it counts as under enforce, so what it would
 * do is what it would have done, but nothing is applied. */
static void
rcpt_guard(struct smtp_session *s)
{
	int		mode = s->conf->harvest_guard;
	unsigned	delay = 0;
	enum guard_verdict v;

	/* DESIGN 3: authenticated users are on the allowlist; so is a
	 * client a DNSWL lists, under harvest_exempt_dnswl. */
	if (s->auth_user[0] != '\0' || mode == CONF_CONTROL_OFF ||
	    smtp_dnsbl_exempt(s)) {
		rcpt_lookup(s);
		return;
	}
	v = guard_rcpt_check(s->w->guard, (struct sockaddr *)&s->peer,
	    &s->gs, smtp_now_ms(), &delay);
	if (v != GUARD_PASS && !rcpt_control(s, mode, guard_verdict_name(v))) {
		if (delay > 0)
			snprintf(s->rw.would_delay, sizeof(s->rw.would_delay),
			    " would_delay_ms=%u", delay);
		v = GUARD_PASS;
	}
	switch (v) {
	case GUARD_PASS:
		rcpt_lookup(s);
		break;
	case GUARD_TARPIT:
		rcpt_tarpit(s, delay);
		rcpt_lookup(s);
		break;
	case GUARD_UNIFORM:
		if (delay > 0)		/* never cheaper than the tarpit */
			rcpt_tarpit(s, delay);
		rcpt_uniform(s);
		break;
	case GUARD_CUTOFF:
		rcpt_answer(s, "cutoff", policy_action_name(RCPT_CUTOFF),
		    OBS_RCPT_TEMPFAIL_HARVEST, R_HARVEST_CUTOFF,
		    s->conf->hostname);
		break;
	}
}

/* mxgate_directory_lookup_seconds{backend}: this look-up's time. */
static void
rcpt_dir_time(struct smtp_session *s)
{
	unsigned	k = s->conf->directory.kind;
	uint64_t	now = smtp_now_us();

	if (k < OBS_DIR_KINDS)
		obs_hist_note(&s->w->obs.dir_seconds[k], &obs_dir_seconds,
		    now > s->rw.dir_us ? now - s->rw.dir_us : 0);
}

/* Step 4: the directory. */
static void
rcpt_lookup(struct smtp_session *s)
{
	const struct domain_conf	*dc = s->rw.dc;
	const char			*at = strrchr(s->rw.key, '@');
	struct dir_query		 q = {
		.local = s->rw.key, .llen = (size_t)(at - s->rw.key),
		.domain = at + 1, .dlen = strlen(at + 1), .delim = dc->delim,
	};
	enum dir_verdict		 v;

	s->rw.dir_us = smtp_now_us();
	s->rw.asked = true;
	v = dir_lookup(s->w->dir, &q, s->id, rcpt_dir_done, s->w);
	if (v == DIR_PENDING) {
		smtp_set_state(s, ST_WAIT);
		bufferevent_disable(s->bev, EV_READ);
		return;
	}
	rcpt_dir_time(s);
	rcpt_proceed(s, RELAY_LOCAL, v);
}

static void
rcpt_dir_done(void *arg, uint64_t sid, enum dir_verdict v)
{
	struct smtp_session	*s;

	if ((s = worker_session_find(arg, sid)) == NULL || s->dead ||
	    s->state != ST_WAIT)
		return;			/* the client left; drop it */
	smtp_set_state(s, s->rw.resume);
	rcpt_dir_time(s);
	rcpt_proceed(s, RELAY_LOCAL, v);
	if (s->state != ST_WAIT)	/* else a tarpit holds its input */
		smtp_resume(s);
}

uint64_t
smtp_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool
rcpt_guard_note(struct smtp_session *s, bool unknown)
{
	const char	*at = strrchr(s->rw.key, '@');

	if (s->auth_user[0] != '\0' ||
	    s->conf->harvest_guard == CONF_CONTROL_OFF)
		return false;		/* allowlisted: not counted */
	return guard_rcpt_note(s->w->guard, (struct sockaddr *)&s->peer,
	    &s->gs, unknown, s->rw.key, (size_t)(at - s->rw.key), at + 1,
	    strlen(at + 1), smtp_now_ms());
}

/* The same recipient twice in one transaction is delivered once. */
static bool
rcpt_queued(struct smtp_session *s)
{
	const char	*p = buf_cstr(&s->tx.rcpts);
	size_t		 i;

	for (i = 0; i < s->tx.nqueued; i++, p += strlen(p) + 1)
		if (strcasecmp(p, s->rw.key) == 0)
			return true;
	return false;
}

/*
 * Step 5, limits, for a recipient about to get the valid reply: the
 * recipient limit (RFC 5321 4.5.3.1.8), and bounces (null sender): one
 * recipient only, and at most null_sender_rate per recipient, so a
 * backscatter flood aimed at our users is refused, not stored.  The same
 * for valid and unknown names, so the answer tells nothing.
 */
static enum reply_id
rcpt_limits(struct smtp_session *s)
{
	const struct rate_spec	*ns = &s->conf->null_sender_rate;

	if (s->tx.naccepted >= s->conf->max_recipients)
		return R_TOO_MANY_RCPTS;
	if (s->tx.sender.len > 0)
		return R_NONE;
	if (s->tx.naccepted >= 1)
		return R_NULL_SENDER_MULTI;
	if (rate_peek(s->w->null_rate, s->rw.key, strlen(s->rw.key),
	    smtp_now_ms()) >= ns->count)
		return R_NULL_SENDER_RATE;
	return R_NONE;
}

/*
 * Steps 4 and 5: the domain's policy, then the recipient limit.  Every
 * action that looks valid gets the one valid reply (R_RCPT_OK), so
 * `discard` is byte-identical to a real recipient.  Recipients to queue
 * are kept as "a@b\0c@d\0" in one bounded buffer.
 */
static void
rcpt_proceed(struct smtp_session *s, enum relay_verdict rv,
    enum dir_verdict v)
{
	const char		*verdict = rv == RELAY_LOCAL ?
				    dir_verdict_name(v) : "remote";
	enum rcpt_action	 a = policy_rcpt(rv, v, s->rw.dc);
	bool			 queue, hot = false, hides, hot_discard;
	enum reply_id		 r;

	if (rv == RELAY_LOCAL && (v == DIR_VALID || v == DIR_UNKNOWN))
		hot = rcpt_guard_note(s, v == DIR_UNKNOWN);
	/* A distributed harvest: unknown names answered as under discard. */
	if (hot && !rcpt_control(s, s->conf->harvest_guard, "discard"))
		hot = false;		/* shadow: as if not hot */
	if ((hot_discard = hot && a == RCPT_REJECT))
		a = RCPT_DISCARD;
	/* Whether an unknown name here gets a valid name's answer: then
	 * every answer here, valid or not, waits for the floor. */
	hides = rv == RELAY_LOCAL && (hot || policy_looks_valid(
	    policy_rcpt(RELAY_LOCAL, DIR_UNKNOWN, s->rw.dc)));
	/* The duplicate scan runs whatever the action, so a discarded
	 * unknown name costs what a real one does (DESIGN 3: the same
	 * latency; skipping it for unknown names was measurable). */
	queue = !rcpt_queued(s) && (a == RCPT_ACCEPT || a == RCPT_RELAY);

	if (!policy_looks_valid(a)) {
		rcpt_release(s, hides);
		rcpt_answer(s, verdict, policy_action_name(a),
		    a == RCPT_DENY ? OBS_RCPT_REJECT_RELAY : a == RCPT_REJECT ?
		    OBS_RCPT_REJECT_UNKNOWN : OBS_RCPT_TEMPFAIL_DIRECTORY,
		    a == RCPT_DENY ? R_RELAY_DENIED : a == RCPT_REJECT ?
		    R_RCPT_UNKNOWN : R_DIR_TEMPFAIL, s->rw.addr);
		return;
	}
	if ((r = rcpt_limits(s)) != R_NONE) {
		rcpt_release(s, hides);
		rcpt_answer(s, verdict, r == R_TOO_MANY_RCPTS ? "too_many" :
		    r == R_NULL_SENDER_MULTI ? "null_sender_multi" :
		    "null_sender_rate", r == R_TOO_MANY_RCPTS ?
		    OBS_RCPT_TEMPFAIL_LIMIT : r == R_NULL_SENDER_MULTI ?
		    OBS_RCPT_REJECT_NULL_SENDER : OBS_RCPT_TEMPFAIL_NULL_SENDER,
		    r, NULL);
		return;
	}
	/* Step 6: the milters (issue 16), for a recipient to be queued */
	if (queue && s->tx.mrun != NULL) {
		s->rw.m_action = (int)a;
		s->rw.m_hides = hides;
		s->rw.m_hot_discard = hot_discard;
		s->rw.m_verdict = verdict;
		if (smtp_tx_milter_rcpt(s))
			return;		/* smtp_rcpt_milter_done follows */
	}
	rcpt_take(s, a, queue, hides, hot_discard, verdict);
}

void
smtp_rcpt_milter_done(struct smtp_session *s, const char *refusal)
{
	enum rcpt_action	a = (enum rcpt_action)s->rw.m_action;

	smtp_set_state(s, s->rw.resume);
	if (refusal != NULL) {
		rcpt_release(s, s->rw.m_hides);
		rcpt_log(s, s->rw.m_verdict, "milter", refusal,
		    refusal[0] == '5' ? OBS_RCPT_REJECT_MILTER :
		    OBS_RCPT_TEMPFAIL_MILTER);
		smtp_reply_line(s, refusal);
	} else
		rcpt_take(s, a, true, s->rw.m_hides, s->rw.m_hot_discard,
		    s->rw.m_verdict);
	if (s->state != ST_WAIT)	/* else a tarpit holds its input */
		smtp_resume(s);
}

/* The recipient is taken: kept for the queue or the NDR, answered. */
static void
rcpt_take(struct smtp_session *s, enum rcpt_action a, bool queue,
    bool hides, bool hot_discard, const char *verdict)
{
	if (s->tx.sender.len == 0)
		(void)rate_hit(s->w->null_rate, s->rw.key,
		    strlen(s->rw.key), smtp_now_ms(), 1);
	if ((queue && buf_add(&s->tx.rcpts, s->rw.key,
	    strlen(s->rw.key) + 1) == -1) || (a == RCPT_BOUNCE &&
	    buf_add(&s->tx.bounced, s->rw.key, strlen(s->rw.key) + 1) == -1))
		panic("rcpt_proceed: recipient buffer sized too small");
	smtp_tx_rcpt_dsn_keep(s, queue, a == RCPT_BOUNCE);
	s->tx.nqueued += queue;
	s->tx.nbounced += a == RCPT_BOUNCE;
	s->tx.naccepted++;
	smtp_set_state(s, ST_RCPT);
	rcpt_release(s, hides);
	rcpt_answer(s, verdict, policy_action_name(a), a == RCPT_ACCEPT ?
	    OBS_RCPT_ACCEPT_VALID : a == RCPT_RELAY ? OBS_RCPT_ACCEPT_RELAY :
	    a == RCPT_BOUNCE ? OBS_RCPT_BOUNCE_UNKNOWN : hot_discard ?
	    OBS_RCPT_DISCARD_HARVEST : OBS_RCPT_DISCARD_UNKNOWN, R_RCPT_OK,
	    NULL);
}
