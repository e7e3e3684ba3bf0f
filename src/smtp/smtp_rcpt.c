/*
 * smtp_rcpt.c - the RCPT pipeline, in DESIGN 2.4's order, one step a
 * function (STYLE R5): syntax, relay, directory, policy, limits.  The
 * harvest guard will sit between directory and policy.
 * Owns: the verdict-to-reply mapping for recipients.
 * Never: a reply that tells a harvester more than the domain's policy
 * says; under `discard` an unknown name gets the valid reply's bytes.
 * Untrusted: the RCPT argument.  RFC 5321 4.1.1.3, 3.6 (relay), 4.5.3.1.8.
 */
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../dir/dir.h"
#include "../net/worker.h"
#include "../policy/policy.h"
#include "../policy/relay.h"
#include "smtp_session.h"

static void	rcpt_dir_done(void *, uint64_t, enum dir_verdict);
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

/* Step 1: syntax.  Fills s->rw.addr ("<a@b>") and s->rw.key ("a@b"). */
static bool
rcpt_syntax(struct smtp_session *s, struct span arg, struct smtp_addr *a)
{
	struct smtp_path_arg	pa;
	char			local[SMTP_LOCAL_MAX + 1];
	int			llen;

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
	if (smtp_parse_rcpt_arg(arg.p, arg.len, &pa) != PARSE_OK) {
		smtp_log(s, LOG_LVL_INFO, "rcpt", "arg=%s result=syntax",
		    log_esc(arg.p, arg.len, 64));
		smtp_error(s, pa.err == SMTP_ARG_KEYWORD ? R_RCPT_SYNTAX :
		    pa.err == SMTP_ARG_PATH ? R_BAD_RCPT : R_PARAM_SYNTAX);
		return false;
	}
	if (pa.nparams > 0) {
		smtp_error(s, R_PARAM_UNSUPPORTED);
		return false;
	}
	*a = pa.addr;
	llen = smtp_local_canon(a, local, sizeof(local));
	if (llen < 0) {
		smtp_error(s, R_BAD_RCPT);
		return false;
	}
	/* The parser let only printable ASCII through: safe to echo. */
	snprintf(s->rw.key, sizeof(s->rw.key), "%.*s@%.*s", llen, local,
	    (int)a->domain.len, (const char *)a->domain.p);
	snprintf(s->rw.addr, sizeof(s->rw.addr), "<%.*s@%.*s>",
	    (int)a->local.len, (const char *)a->local.p,
	    (int)a->domain.len, (const char *)a->domain.p);
	return true;
}

static void
rcpt_log(struct smtp_session *s, const char *verdict, enum rcpt_action a)
{
	smtp_log(s, LOG_LVL_INFO, "rcpt", "to=%s verdict=%s action=%s",
	    log_esc(s->rw.addr, strlen(s->rw.addr), 256), verdict,
	    policy_action_name(a));
}

void
smtp_rcpt(struct smtp_session *s, struct span arg)
{
	const struct domain_conf	*dc;
	struct smtp_addr		 a;
	struct dir_query		 q;
	enum relay_verdict		 rv;
	enum dir_verdict		 v;
	const char			*at;

	if (!rcpt_syntax(s, arg, &a))
		return;
	rv = relay_check(s->conf, (const struct sockaddr *)&s->peer,
	    (const char *)a.domain.p, a.domain.len, a.literal, &dc);
	s->rw.dc = dc;
	s->rw.resume = s->state;
	if (rv != RELAY_LOCAL) {
		rcpt_proceed(s, rv, DIR_UNKNOWN);	/* not ours to look up */
		return;
	}
	at = strrchr(s->rw.key, '@');
	q = (struct dir_query){
		.local = s->rw.key, .llen = (size_t)(at - s->rw.key),
		.domain = at + 1, .dlen = strlen(at + 1),
		.delim = dc->delim,
	};
	v = dir_lookup(s->w->dir, &q, s->id, rcpt_dir_done, s->w);
	if (v == DIR_PENDING) {
		smtp_set_state(s, ST_WAIT);
		bufferevent_disable(s->bev, EV_READ);
		return;
	}
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
	rcpt_proceed(s, RELAY_LOCAL, v);
	smtp_resume(s);
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
	bool			 queue = a == RCPT_ACCEPT || a == RCPT_RELAY;

	if (!policy_looks_valid(a)) {
		rcpt_log(s, verdict, a);
		smtp_reply(s, a == RCPT_DENY ? R_RELAY_DENIED :
		    a == RCPT_REJECT ? R_RCPT_UNKNOWN : R_DIR_TEMPFAIL,
		    s->rw.addr);
		return;
	}
	if (s->tx.naccepted >= s->conf->max_recipients) {
		smtp_log(s, LOG_LVL_INFO, "rcpt", "to=%s verdict=%s "
		    "action=too_many", log_esc(s->rw.addr, strlen(s->rw.addr),
		    256), verdict);
		smtp_reply(s, R_TOO_MANY_RCPTS, NULL);
		return;
	}
	if (queue && buf_add(&s->tx.rcpts, s->rw.key,
	    strlen(s->rw.key) + 1) == -1)
		panic("rcpt_proceed: recipient buffer sized too small");
	s->tx.nqueued += queue;
	s->tx.naccepted++;
	rcpt_log(s, verdict, a);
	smtp_set_state(s, ST_RCPT);
	smtp_reply(s, R_RCPT_OK, NULL);
}
