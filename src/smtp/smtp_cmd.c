/*
 * smtp_cmd.c - the command table and dispatch (STYLE R4): one table gives
 * each verb its handler, the states it is allowed in and its flags; no
 * switch repeats it.  Handlers for the simple verbs live here; MAIL/DATA
 * are in smtp_tx.c, RCPT in smtp_rcpt.c.
 * Never: touches the spool or the directory.
 * Untrusted: the command line (already bounded, CRLF-checked).  RFC 5321
 * 4.1.1, 4.1.4 (sequencing), 3.5.3 (VRFY), RFC 2920, 1870, 6152, 2034,
 * 3030 (BDAT).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "../conf/conf.h"
#include "../net/worker.h"
#include "smtp_session.h"

enum {
	CF_NOARG	= 1 << 0,	/* arguments are a syntax error */
	CF_NEEDARG	= 1 << 1,	/* no argument is a syntax error */
};

struct smtp_cmd {
	const char	*verb;
	void		(*fn)(struct smtp_session *, struct span);
	unsigned	 states;	/* allowed in */
	unsigned	 flags;
	enum reply_id	 syntax;	/* reply for CF_NOARG / CF_NEEDARG */
};

static void	cmd_ehlo(struct smtp_session *, struct span);
static void	cmd_helo(struct smtp_session *, struct span);
static void	cmd_mail(struct smtp_session *, struct span);
static void	cmd_rcpt(struct smtp_session *, struct span);
static void	cmd_data(struct smtp_session *, struct span);
static void	cmd_rset(struct smtp_session *, struct span);
static void	cmd_noop(struct smtp_session *, struct span);
static void	cmd_quit(struct smtp_session *, struct span);
static void	cmd_help(struct smtp_session *, struct span);
static void	cmd_vrfy(struct smtp_session *, struct span);
static void	cmd_expn(struct smtp_session *, struct span);
static void	cmd_bdat(struct smtp_session *, struct span);

static const struct smtp_cmd smtp_cmds[] = {
	/* verb    handler    allowed in        flags       syntax reply */
	{ "EHLO", cmd_ehlo, ST_ANY,		CF_NEEDARG, R_HELO_SYNTAX },
	{ "HELO", cmd_helo, ST_ANY,		CF_NEEDARG, R_HELO_SYNTAX },
	{ "MAIL", cmd_mail, ST_READY,		CF_NEEDARG, R_MAIL_SYNTAX },
	{ "RCPT", cmd_rcpt, ST_MAIL | ST_RCPT,	CF_NEEDARG, R_RCPT_SYNTAX },
	{ "DATA", cmd_data, ST_RCPT,		CF_NOARG, R_NOARG_SYNTAX },
	{ "RSET", cmd_rset, ST_ANY,		CF_NOARG, R_NOARG_SYNTAX },
	{ "NOOP", cmd_noop, ST_ANY,		0, R_NONE },
	{ "QUIT", cmd_quit, ST_ANY,		CF_NOARG, R_NOARG_SYNTAX },
	{ "HELP", cmd_help, ST_ANY,		0, R_NONE },
	{ "VRFY", cmd_vrfy, ST_ANY,		0, R_NONE },
	{ "EXPN", cmd_expn, ST_ANY,		0, R_NONE },
	/* RFC 3030: in any state, so that its octets are always read */
	{ "BDAT", cmd_bdat, ST_ANY,		CF_NEEDARG, R_BDAT_SYNTAX },
	/* smtp_secure.c: RFC 3207, RFC 4954 */
	{ "STARTTLS", smtp_secure_starttls, ST_ANY, CF_NOARG, R_NOARG_SYNTAX },
	{ "AUTH", smtp_secure_auth, ST_ANY,	CF_NEEDARG, R_AUTH_SYNTAX },
	{ NULL, NULL, 0, 0, R_NONE },
};

/*
 * The 503 for a command out of sequence, from the order of the states:
 * before HELO, then MAIL, then RCPT (RFC 5321 4.1.4).
 */
static enum reply_id
cmd_state_reply(unsigned allowed, enum smtp_state st)
{
	if (st == ST_CONNECTED)
		return R_NEED_HELO;
	if (allowed == ST_READY)
		return R_NESTED_MAIL;
	if (st == ST_MAIL)
		return R_NEED_RCPT;
	return R_NEED_MAIL;
}

void
smtp_cmd_dispatch(struct smtp_session *s, const uint8_t *line, size_t len)
{
	const struct smtp_cmd	*c;
	struct smtp_cmdline	 cl;
	enum parse_rc		 rc;

	if (s->state == ST_AUTH) {	/* a response to 334, no command */
		smtp_secure_line(s, line, len);
		return;
	}
	if (++s->ncmds > s->conf->max_commands_per_session) {
		smtp_log(s, LOG_LVL_INFO, "too_many_commands", "commands=%u",
		    s->ncmds);
		smtp_reply(s, R_TOO_MANY_COMMANDS, s->conf->hostname);
		return;
	}
	rc = smtp_parse_cmdline(line, len, &cl);
	/* a listed client's first command but QUIT: 554 (smtp_dnsbl.c) */
	if (smtp_dnsbl_refuse(s, rc == PARSE_OK ? cl.verb :
	    (struct span){ NULL, 0 }))
		return;
	if (rc != PARSE_OK) {
		smtp_log(s, LOG_LVL_INFO, "bad_command", "line=%s",
		    log_esc(line, len, 64));
		smtp_error(s, R_BAD_CMD_SYNTAX);
		return;
	}
	for (c = smtp_cmds; c->verb != NULL; c++)
		if (span_eq_ci(cl.verb, c->verb))
			break;
	if (c->verb == NULL) {
		smtp_log(s, LOG_LVL_INFO, "unknown_command", "verb=%s",
		    log_esc(cl.verb.p, cl.verb.len, 16));
		smtp_error(s, R_UNKNOWN_CMD);
		return;
	}
	if (!(c->states & s->state)) {
		smtp_error(s, cmd_state_reply(c->states, s->state));
		return;
	}
	if (((c->flags & CF_NOARG) && cl.arg.len > 0) ||
	    ((c->flags & CF_NEEDARG) && cl.arg.len == 0)) {
		smtp_error(s, c->syntax);
		return;
	}
	c->fn(s, cl.arg);
}

/* The HELO/EHLO name: the first word, printable ASCII, bounded. */
static bool
cmd_helo_name(struct smtp_session *s, struct span arg)
{
	size_t	i;

	for (i = 0; i < arg.len && arg.p[i] != ' '; i++)
		if (arg.p[i] < 0x21 || arg.p[i] > 0x7e)
			return false;
	if (i == 0 || i > SMTP_DOMAIN_MAX)
		return false;
	memcpy(s->helo, arg.p, i);
	s->helo[i] = '\0';
	return true;
}

static bool
cmd_greet(struct smtp_session *s, struct span arg, bool esmtp)
{
	if (!cmd_helo_name(s, arg)) {
		smtp_error(s, R_HELO_SYNTAX);
		return false;
	}
	smtp_tx_reset(s);		/* RFC 5321 4.1.4: like RSET */
	s->esmtp = esmtp;
	smtp_set_state(s, ST_READY);
	smtp_log(s, LOG_LVL_INFO, "helo", "helo=%s esmtp=%s",
	    log_esc(s->helo, strlen(s->helo), 64), esmtp ? "yes" : "no");
	return true;
}

static void
cmd_ehlo(struct smtp_session *s, struct span arg)
{
	struct evbuffer	*out = smtp_out(s);	/* behind held replies */

	if (!cmd_greet(s, arg, true))
		return;
	evbuffer_add_printf(out,
	    "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n"
	    "250-CHUNKING\r\n"
	    "250-DSN\r\n",
	    s->conf->hostname,
	    (unsigned long long)s->conf->max_message_size);
	evbuffer_add_printf(out, "250-SMTPUTF8\r\n");	/* RFC 6531 */
	smtp_secure_ehlo(s, out);
	evbuffer_add_printf(out, "250 ENHANCEDSTATUSCODES\r\n");
}

static void
cmd_helo(struct smtp_session *s, struct span arg)
{
	if (cmd_greet(s, arg, false))
		smtp_reply(s, R_HELO_OK, s->conf->hostname);
}

static void
cmd_mail(struct smtp_session *s, struct span arg)
{
	enum reply_id	r;

	if ((r = smtp_secure_mail_check(s)) != R_NONE)
		smtp_error(s, r);
	else
		smtp_tx_mail(s, arg);
}

static void
cmd_rcpt(struct smtp_session *s, struct span arg)
{
	if (s->tx.bdat)		/* the queue file has its recipients */
		smtp_error(s, R_BDAT_SEQ);
	else
		smtp_rcpt(s, arg);
}

static void
cmd_data(struct smtp_session *s, struct span arg)
{
	(void)arg;
	if (s->tx.bdat)		/* RFC 3030 2: 503, RSET needed */
		smtp_error(s, R_BDAT_SEQ);
	else
		smtp_tx_data(s);
}

static void
cmd_bdat(struct smtp_session *s, struct span arg)
{
	smtp_tx_bdat(s, arg);
}

static void
cmd_rset(struct smtp_session *s, struct span arg)
{
	(void)arg;
	smtp_tx_reset(s);
	if (s->state != ST_CONNECTED)
		smtp_set_state(s, ST_READY);
	smtp_reply(s, R_PLAIN_OK, NULL);
}

static void
cmd_noop(struct smtp_session *s, struct span arg)
{
	(void)arg;
	smtp_reply(s, R_PLAIN_OK, NULL);
}

static void
cmd_quit(struct smtp_session *s, struct span arg)
{
	(void)arg;
	smtp_reply(s, R_QUIT, NULL);
}

static void
cmd_help(struct smtp_session *s, struct span arg)
{
	(void)arg;
	smtp_reply(s, R_HELP, NULL);
}

/* VRFY reveals nothing: one fixed answer whatever the argument. */
static void
cmd_vrfy(struct smtp_session *s, struct span arg)
{
	smtp_log(s, LOG_LVL_INFO, "vrfy", "arg=%s",
	    log_esc(arg.p, arg.len, 64));
	smtp_guard_signal(s, GUARD_SIG_VRFY);
	smtp_reply(s, R_VRFY, NULL);
}

static void
cmd_expn(struct smtp_session *s, struct span arg)
{
	smtp_log(s, LOG_LVL_INFO, "expn", "arg=%s",
	    log_esc(arg.p, arg.len, 64));
	smtp_guard_signal(s, GUARD_SIG_EXPN);
	smtp_reply(s, R_EXPN, NULL);
}
