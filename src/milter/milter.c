/*
 * milter.c - the milter chain for one transaction (see milter.h): one
 * conversation per filter, asked one after the other in each phase, on
 * the event loop.
 * Owns: connections (the active one, and the others set aside with
 * their input off), the three deadlines (connect and negotiation, each
 * command, the end of message; "progress" extends only the last, up to
 * MC_PROGRESS_MAX times), the default action on failure.
 * Never: blocks, speaks SMTP, writes files.  Untrusted: the filters.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "../conf/conf.h"
#include "../lib/log.h"
#include "milter.h"
#include "milter_proto.h"

#define MC_OUT_MAX	(256 * 1024)	/* output queued before we wait */
#define MC_PROGRESS_MAX	5		/* eom deadline extensions */
#define MC_CMDBUF_MAX	(MILTER_CHUNK_MAX + 64 * 1024)

/* Where the chain is: MAIL (connect, helo, mail), one RCPT, or the
 * message (data to eom). */
enum mc_phase { PH_MAIL, PH_RCPT, PH_EOM };

/* The steps of one conversation, in order. */
enum mc_step {
	MC_NEG, MC_CONNECT, MC_HELO, MC_MAIL, MC_RCPT, MC_DATA, MC_HEADER,
	MC_EOH, MC_BODY, MC_EOM, MC_QUIT
};

/* A filter's conversation while another one's turn it is. */
struct mc_saved {
	struct bufferevent	*bev;		/* open, input off; or NULL */
	struct milter_neg	 neg;
	int			 step;		/* enum mc_step */
	bool			 over;		/* said accept (or failed under
						 * accept): asked no more */
	int			 failed;	/* CONF_MILTER_* it failed
						 * under; -1: it did not */
};

struct milter_run {
	struct event_base	*base;
	const struct config	*conf;
	struct milter_env	 env;
	uint64_t		 sid;
	milter_done_fn		*done;		/* of the phase running */
	void			*arg;
	enum mc_phase		 phase;
	struct mc_saved		 sv[MILTER_CHAIN_MAX];
	char			 rcpt[MILTER_ADDR_MAX + 1];	/* PH_RCPT */
	bool			 rcpt_done;	/* sent (and answered) */
	bool			 discard;	/* a filter said discard */
	struct event		*done_ev;
	struct milter_msg	 msg;
	size_t			 cur;		/* the filter talked to */
	enum milter_verdict	 verdict;
	char			 reply[MILTER_REPLY_MAX + 1];
	const char		*by;
	char			 port[8];
	char			 prefix[128];	/* the caller's log prefix */
	char			 conn_name[INET6_ADDRSTRLEN + 8];
	/* the conversation with filter cur */
	struct bufferevent	*bev;
	struct event		*tmo;
	struct milter_neg	 neg;
	enum mc_step		 step;
	size_t			 idx;		/* rcpt, header, body offset */
	bool			 waiting;	/* for a reply */
	bool			 eom_body;	/* a replbody came this eom */
	unsigned		 progress;
	unsigned		 nedits;
	uint64_t		 start_ms;
	struct buf		 out;		/* one command's packets */
	struct buf		 val;		/* scratch: a header value */
	struct buf		 in;		/* the frame being handled */
};

static void	mc_begin(struct milter_run *);
static void	mc_chain_next(struct milter_run *);
static void	mc_next(struct milter_run *);
static void	mc_fail(struct milter_run *, const char *why);

static uint64_t
mc_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct conf_milter *
mc_spec(const struct milter_run *r)
{
	return &r->conf->milters.m[r->cur];
}

static void
mc_log(const struct milter_run *r, enum log_level l, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
mc_log(const struct milter_run *r, enum log_level l, const char *fmt, ...)
{
	va_list	ap;

	if (!log_enabled(l))
		return;
	va_start(ap, fmt);
	log_eventv(l, "milter", r->env.log_prefix, fmt, ap);
	va_end(ap);
}

static unsigned
mc_ms(const struct milter_run *r, enum mc_step st)
{
	const struct conf_milter	*m = mc_spec(r);

	if (st == MC_NEG)
		return m->connect_ms ? m->connect_ms :
		    r->conf->milter_connect_timeout_ms;
	if (st == MC_EOM)
		return m->eom_ms ? m->eom_ms : r->conf->milter_eom_timeout_ms;
	return m->command_ms ? m->command_ms :
	    r->conf->milter_command_timeout_ms;
}

static void
mc_arm(struct milter_run *r, unsigned ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(r->tmo, &tv);
}

static void
mc_note(struct milter_run *r, enum milter_outcome o)
{
	if (r->env.note != NULL)
		r->env.note(r->env.note_arg, r->cur, o,
		    (mc_now_ms() - r->start_ms) * 1000);
}

static const char *const mc_step_names[] = {
	"negotiate", "connect", "helo", "mail", "rcpt", "data", "header",
	"eoh", "body", "eom", "quit"
};

/* Close the conversation with the current filter. */
static void
mc_close(struct milter_run *r)
{
	if (r->bev != NULL) {
		bufferevent_free(r->bev);
		r->bev = NULL;
	}
	if (r->tmo != NULL)
		evtimer_del(r->tmo);
	r->waiting = false;
}

static void
mc_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_run	*r = arg;

	(void)fd;
	(void)what;
	r->done(r->arg, r->sid, r);
}

/* The chain ends: the verdict is set; the callback runs from the loop. */
static void
mc_finish(struct milter_run *r)
{
	struct timeval	tv = { 0, 0 };

	evtimer_del(r->tmo);
	evtimer_add(r->done_ev, &tv);
}

/* The current filter is done with this message; on to the next. */
static void
mc_passed(struct milter_run *r, const char *how)
{
	mc_log(r, LOG_LVL_INFO, "milter=%s verdict=%s stage=%s edits=%u "
	    "latency_ms=%" PRIu64, mc_spec(r)->name, how,
	    mc_step_names[r->step], r->nedits, mc_now_ms() - r->start_ms);
	mc_note(r, how[0] == 'a' ? MILTER_O_ACCEPT : how[0] == 'd' ?
	    MILTER_O_DISCARD : MILTER_O_CONTINUE);
	buf_reset(&r->out);
	if (r->bev != NULL && r->step != MC_NEG && evbuffer_get_length(
	    bufferevent_get_output(r->bev)) == 0 &&
	    milter_enc(&r->out, MILTER_C_QUIT, NULL, 0) == 0)
		/* best effort, never waited for: a close says as much */
		(void)send(bufferevent_getfd(r->bev), r->out.data, r->out.len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
	buf_reset(&r->out);
	mc_close(r);
	r->sv[r->cur].over = true;
	r->cur++;
	mc_chain_next(r);
}

/* The current filter has passed this phase: keep its connection (input
 * off, no callbacks) for the next one; on to the next filter. */
static void
mc_phase_pass(struct milter_run *r)
{
	struct mc_saved	*sv = &r->sv[r->cur];

	mc_log(r, LOG_LVL_DEBUG, "milter=%s verdict=continue stage=%s "
	    "latency_ms=%" PRIu64, mc_spec(r)->name, mc_step_names[r->step],
	    mc_now_ms() - r->start_ms);
	evtimer_del(r->tmo);
	sv->bev = r->bev;
	sv->neg = r->neg;
	sv->step = (int)r->step;
	bufferevent_disable(r->bev, EV_READ);
	bufferevent_setcb(r->bev, NULL, NULL, NULL, NULL);
	r->bev = NULL;
	r->waiting = false;
	r->cur++;
	mc_chain_next(r);
}

/* A final answer that ends the chain. */
static void
mc_decide(struct milter_run *r, enum milter_verdict v, const char *reply,
    const char *how)
{
	r->verdict = v;
	r->by = mc_spec(r)->name;
	snprintf(r->reply, sizeof(r->reply), "%s", reply ? reply : "");
	mc_log(r, LOG_LVL_INFO, "milter=%s verdict=%s stage=%s latency_ms=%"
	    PRIu64 "%s%s%s", mc_spec(r)->name, how, mc_step_names[r->step],
	    mc_now_ms() - r->start_ms, r->reply[0] ? " reply=\"" : "",
	    r->reply[0] ? log_text(r->reply, strlen(r->reply), 200) : "",
	    r->reply[0] ? "\"" : "");
	mc_note(r, strcmp(how, "replycode") == 0 ? MILTER_O_REPLYCODE :
	    v == MILTER_V_REJECT ? MILTER_O_REJECT : v == MILTER_V_TEMPFAIL ?
	    MILTER_O_TEMPFAIL : MILTER_O_DISCARD);
	if (r->phase == PH_RCPT && r->bev != NULL) {
		/* a refused recipient: its conversation goes on */
		struct mc_saved	*sv = &r->sv[r->cur];

		evtimer_del(r->tmo);
		sv->bev = r->bev;
		sv->neg = r->neg;
		sv->step = (int)r->step;
		bufferevent_disable(r->bev, EV_READ);
		bufferevent_setcb(r->bev, NULL, NULL, NULL, NULL);
		r->bev = NULL;
		r->waiting = false;
	} else {
		mc_close(r);
		r->sv[r->cur].over = true;
	}
	mc_finish(r);
}

/* A filter that failed: its default action, and a line saying why. */
static void
mc_fail(struct milter_run *r, const char *why)
{
	const struct conf_milter	*m = mc_spec(r);
	int				 a = m->default_action >= 0 ?
					    m->default_action :
					    r->conf->milter_default_action;

	mc_log(r, LOG_LVL_WARNING, "milter=%s error=%s stage=%s action=%s "
	    "latency_ms=%" PRIu64, m->name, why, mc_step_names[r->step],
	    conf_milter_action_name(a), mc_now_ms() - r->start_ms);
	mc_note(r, strcmp(why, "timeout") == 0 ? MILTER_O_TIMEOUT :
	    MILTER_O_ERROR);
	mc_close(r);
	buf_reset(&r->out);
	if (a == CONF_MILTER_ACCEPT) {
		/* as if it had said accept: its edits so far stand */
		r->sv[r->cur].over = true;
		r->cur++;
		mc_chain_next(r);
		return;
	}
	r->sv[r->cur].failed = a;	/* and so in every later phase */
	r->verdict = a == CONF_MILTER_REJECT ? MILTER_V_REJECT :
	    MILTER_V_TEMPFAIL;
	r->by = m->name;
	snprintf(r->reply, sizeof(r->reply), "%s", a == CONF_MILTER_REJECT ?
	    "550 5.7.1 Message content rejected" :
	    "451 4.7.1 Content filter unavailable, try again later");
	mc_finish(r);
}

/* ---- macros (data-driven: one row per macro) ---- */

enum mc_val { V_HOST, V_DAEMON, V_UNDERSCORE, V_CADDR, V_CPORT, V_CNAME,
	V_HELO, V_TLSV, V_CIPHER, V_AUTH, V_QID, V_MAIL, V_RCPT };

static const struct mc_macro {
	enum milter_stage	stage;
	const char		*name;
	enum mc_val		val;
} mc_macros[] = {
	{ MILTER_M_CONNECT, "j", V_HOST },
	{ MILTER_M_CONNECT, "{daemon_name}", V_DAEMON },
	{ MILTER_M_CONNECT, "_", V_UNDERSCORE },
	{ MILTER_M_CONNECT, "{client_addr}", V_CADDR },
	{ MILTER_M_CONNECT, "{client_port}", V_CPORT },
	{ MILTER_M_CONNECT, "{client_name}", V_CNAME },
	{ MILTER_M_HELO, "{tls_version}", V_TLSV },
	{ MILTER_M_HELO, "{cipher}", V_CIPHER },
	{ MILTER_M_MAIL, "{auth_authen}", V_AUTH },
	{ MILTER_M_MAIL, "{mail_addr}", V_MAIL },
	{ MILTER_M_MAIL, "i", V_QID },
	{ MILTER_M_RCPT, "{rcpt_addr}", V_RCPT },
	{ MILTER_M_DATA, "i", V_QID },
	{ MILTER_M_EOH, "i", V_QID },
	{ MILTER_M_EOM, "i", V_QID },
};

static const char *
mc_macro_value(struct milter_run *r, enum mc_val v)
{
	switch (v) {
	case V_HOST:	return r->env.hostname;
	case V_DAEMON:	return "mxgate";
	case V_UNDERSCORE: return r->conn_name;
	case V_CADDR:	return r->env.client_addr;
	case V_CPORT:	return r->port;
	case V_CNAME:	return r->env.client_name;
	case V_HELO:	return r->env.helo;
	case V_TLSV:	return r->env.tls_version;
	case V_CIPHER:	return r->env.cipher;
	case V_AUTH:	return r->env.auth_user;
	case V_QID:	return r->env.qid;
	case V_MAIL:	return r->msg.sender;
	case V_RCPT:	return r->phase == PH_RCPT ? r->rcpt : "";
	}
	return "";
}

/* Whether a filter that named its macros for stage wants this one. */
static bool
mc_macro_wanted(const struct milter_run *r, enum milter_stage st,
    const char *name)
{
	const uint8_t	*p = r->neg.macros[st], *e = p + r->neg.macros_len[st];
	size_t		 n = strlen(name), k;
	const char	*bare = name;
	size_t		 bn = n;

	if (!r->neg.macros_set[st])
		return true;
	if (n > 2 && name[0] == '{') {	/* "{x}" also matches "x" */
		bare = name + 1;
		bn = n - 2;
	}
	while (p < e) {
		while (p < e && *p == ' ')
			p++;
		for (k = 0; p + k < e && p[k] != ' '; k++)
			;
		if ((k == n && memcmp(p, name, n) == 0) ||
		    (k == bn && memcmp(p, bare, bn) == 0))
			return true;
		p += k;
	}
	return false;
}

/* The macro packet of a stage, for the command cmd (sent even when the
 * command itself is left out: the filter may read them later). */
static int
mc_macros_add(struct milter_run *r, enum milter_stage st, char cmd)
{
	const char	*names[16], *vals[16];
	size_t		 i, n = 0;

	for (i = 0; i < sizeof(mc_macros) / sizeof(mc_macros[0]); i++) {
		const char	*v;

		if (mc_macros[i].stage != st ||
		    !mc_macro_wanted(r, st, mc_macros[i].name))
			continue;
		v = mc_macro_value(r, mc_macros[i].val);
		if (v == NULL || v[0] == '\0')
			continue;
		names[n] = mc_macros[i].name;
		vals[n++] = v;
	}
	if (n == 0)
		return 0;
	return milter_enc_macros(&r->out, cmd, names, vals, n);
}

/* ---- the steps ---- */

static const struct mc_step_info {
	uint32_t		 skip;		/* SMFIP_NO* */
	uint32_t		 noreply;	/* SMFIP_NR_* */
	int			 stage;		/* macros; -1: none */
	char			 cmd;
} mc_steps[] = {
	[MC_NEG] =	{ 0, 0, -1, MILTER_C_OPTNEG },
	[MC_CONNECT] =	{ MILTER_P_NOCONNECT, MILTER_P_NR_CONN,
			  MILTER_M_CONNECT, MILTER_C_CONNECT },
	[MC_HELO] =	{ MILTER_P_NOHELO, MILTER_P_NR_HELO, MILTER_M_HELO,
			  MILTER_C_HELO },
	[MC_MAIL] =	{ MILTER_P_NOMAIL, MILTER_P_NR_MAIL, MILTER_M_MAIL,
			  MILTER_C_MAIL },
	[MC_RCPT] =	{ MILTER_P_NORCPT, MILTER_P_NR_RCPT, MILTER_M_RCPT,
			  MILTER_C_RCPT },
	[MC_DATA] =	{ MILTER_P_NODATA, MILTER_P_NR_DATA, MILTER_M_DATA,
			  MILTER_C_DATA },
	[MC_HEADER] =	{ MILTER_P_NOHDRS, MILTER_P_NR_HDR, -1,
			  MILTER_C_HEADER },
	[MC_EOH] =	{ MILTER_P_NOEOH, MILTER_P_NR_EOH, MILTER_M_EOH,
			  MILTER_C_EOH },
	[MC_BODY] =	{ MILTER_P_NOBODY, MILTER_P_NR_BODY, -1,
			  MILTER_C_BODY },
	[MC_EOM] =	{ 0, 0, MILTER_M_EOM, MILTER_C_EOB },
	[MC_QUIT] =	{ 0, 0, -1, MILTER_C_QUIT },
};

/* The command of the current step (its payload), into r->out. */
static int
mc_encode(struct milter_run *r)
{
	const char	*a[2];
	char		 br[MILTER_ADDR_MAX + 3];
	size_t		 n;

	switch (r->step) {
	case MC_CONNECT:
		return milter_enc_connect(&r->out, r->env.client_name,
		    r->env.client_family == AF_INET6 ? '6' : '4',
		    r->env.client_port, r->env.client_addr);
	case MC_HELO:
		a[0] = r->env.helo;
		return milter_enc_strings(&r->out, MILTER_C_HELO, a, 1);
	case MC_MAIL:
	case MC_RCPT:
		snprintf(br, sizeof(br), "<%s>", r->step == MC_MAIL ?
		    r->msg.sender : r->rcpt);
		a[0] = br;
		return milter_enc_strings(&r->out, mc_steps[r->step].cmd, a, 1);
	case MC_HEADER:
		if (milter_msg_hdr_value(&r->msg.h[r->idx], &r->val) == -1)
			return -1;
		return milter_enc_header(&r->out, r->msg.h[r->idx].raw,
		    r->msg.h[r->idx].nlen, (const char *)r->val.data,
		    r->val.len);
	case MC_BODY:
		n = r->msg.bodylen - r->idx;
		if (n > MILTER_CHUNK_MAX)
			n = MILTER_CHUNK_MAX;
		return milter_enc(&r->out, MILTER_C_BODY, r->msg.body + r->idx,
		    n);
	default:
		return milter_enc(&r->out, mc_steps[r->step].cmd, NULL, 0);
	}
}

/* The step after the current one (repeating steps loop here). */
static void
mc_advance(struct milter_run *r)
{
	switch (r->step) {
	case MC_RCPT:
		r->rcpt_done = true;	/* one per PH_RCPT; the step stays */
		return;
	case MC_HEADER:
		if (++r->idx < r->msg.nh)
			return;
		break;
	case MC_BODY:
		r->idx += r->msg.bodylen - r->idx > MILTER_CHUNK_MAX ?
		    MILTER_CHUNK_MAX : r->msg.bodylen - r->idx;
		if (r->idx < r->msg.bodylen)
			return;
		break;
	default:
		break;
	}
	r->step++;
	r->idx = 0;
	/* steps with nothing to send */
	if ((r->step == MC_HEADER && r->msg.nh == 0) ||
	    (r->step == MC_BODY && r->msg.bodylen == 0))
		mc_advance(r);
}

/* Send commands until one wants an answer or the output is full. */
static void
mc_next(struct milter_run *r)
{
	const struct mc_step_info	*si;
	struct evbuffer			*out;
	bool				 sent;

	while (r->bev != NULL && !r->waiting) {
		out = bufferevent_get_output(r->bev);
		if (evbuffer_get_length(out) > MC_OUT_MAX) {
			mc_arm(r, mc_ms(r, r->step));	/* it must read */
			return;
		}
		if (r->step >= MC_QUIT) {
			mc_passed(r, "continue");
			return;
		}
		if ((r->phase == PH_MAIL && r->step == MC_RCPT) ||
		    (r->phase == PH_RCPT && r->rcpt_done)) {
			mc_phase_pass(r);
			return;
		}
		si = &mc_steps[r->step];
		buf_reset(&r->out);
		if (si->stage >= 0 && mc_macros_add(r,
		    (enum milter_stage)si->stage, si->cmd) == -1) {
			mc_fail(r, "encode");
			return;
		}
		sent = !(r->neg.protocol & si->skip);
		if (sent && mc_encode(r) == -1) {
			mc_fail(r, "encode");
			return;
		}
		if (r->out.len > 0 &&
		    bufferevent_write(r->bev, r->out.data, r->out.len) == -1) {
			mc_fail(r, "write");
			return;
		}
		if (sent && (r->neg.version < 6 ||
		    !(r->neg.protocol & si->noreply))) {
			r->waiting = true;
			if (r->step == MC_EOM) {
				r->eom_body = false;
				r->progress = 0;
			}
			mc_arm(r, mc_ms(r, r->step));
			return;
		}
		mc_advance(r);
	}
}

/* An end-of-message edit: allowed if negotiated, applied, counted. */
static void
mc_edit(struct milter_run *r, const struct milter_reply *rp)
{
	if (r->step != MC_EOM || (rp->action & ~r->neg.actions) != 0) {
		mc_fail(r, "edit_not_allowed");
		return;
	}
	if (rp->kind == MILTER_R_REPLBODY && !r->eom_body) {
		milter_msg_body_begin(&r->msg);
		r->eom_body = true;
	}
	if (milter_msg_apply(&r->msg, rp) == -1) {
		mc_fail(r, "edit_refused");
		return;
	}
	r->nedits++;
	mc_arm(r, mc_ms(r, MC_EOM));	/* edits are progress too */
}

static void
mc_reply(struct milter_run *r, const struct milter_reply *rp)
{
	char	code[MILTER_REPLY_MAX + 1];

	if (rp->action != 0 && rp->kind != MILTER_R_QUARANTINE) {
		mc_edit(r, rp);
		return;
	}
	switch (rp->kind) {
	case MILTER_R_CONTINUE:
		if (r->step == MC_EOM) {
			mc_passed(r, "continue");
			return;
		}
		r->waiting = false;
		evtimer_del(r->tmo);
		mc_advance(r);
		mc_next(r);
		return;
	case MILTER_R_ACCEPT:
		mc_passed(r, "accept");
		return;
	case MILTER_R_SKIP:
		if (r->step != MC_BODY) {
			mc_fail(r, "unexpected_skip");
			return;
		}
		r->waiting = false;
		r->step = MC_EOM;
		r->idx = 0;
		mc_next(r);
		return;
	case MILTER_R_PROGRESS:
		if (r->step == MC_EOM && ++r->progress <= MC_PROGRESS_MAX)
			mc_arm(r, mc_ms(r, MC_EOM));
		return;
	case MILTER_R_QUARANTINE:
		if (r->step != MC_EOM ||
		    !(r->neg.actions & MILTER_A_QUARANTINE) ||
		    milter_msg_apply(&r->msg, rp) == -1) {
			mc_fail(r, "edit_not_allowed");
			return;
		}
		r->nedits++;
		return;
	case MILTER_R_REJECT:
		mc_decide(r, MILTER_V_REJECT, "550 5.7.1 Command rejected",
		    "reject");
		return;
	case MILTER_R_TEMPFAIL:
		mc_decide(r, MILTER_V_TEMPFAIL, "451 4.7.1 Service unavailable "
		    "- try again later", "tempfail");
		return;
	case MILTER_R_DISCARD:
		if (r->phase != PH_EOM) {	/* the message will be */
			r->discard = true;
			mc_passed(r, "discard");
			return;
		}
		mc_decide(r, MILTER_V_DISCARD, NULL, "discard");
		return;
	case MILTER_R_REPLYCODE:
		memcpy(code, rp->text, rp->tlen);
		code[rp->tlen] = '\0';
		mc_decide(r, rp->code >= 500 ? MILTER_V_REJECT :
		    MILTER_V_TEMPFAIL, code, "replycode");
		return;
	default:	/* shutdown, connfail */
		mc_fail(r, milter_reply_name(rp->kind));
		return;
	}
}

static void
mc_negotiated(struct milter_run *r, const struct milter_frame *f)
{
	if (milter_neg_parse(f, MILTER_A_ALL, MILTER_P_OFFER, &r->neg) !=
	    PARSE_OK) {
		mc_fail(r, "negotiate");
		return;
	}
	r->waiting = false;
	evtimer_del(r->tmo);
	mc_advance(r);
	mc_next(r);
}

static void
mc_read_cb(struct bufferevent *bev, void *arg)
{
	struct milter_run	*r = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct milter_frame	 f;
	struct milter_reply	 rp;
	enum parse_rc		 rc;
	uint8_t			 h[4];
	size_t			 len, used;
	uint32_t		 n;

	while (r->bev == bev && (len = evbuffer_get_length(in)) >= 4) {
		evbuffer_copyout(in, h, 4);
		rc = milter_frame_parse(h, 4, MILTER_PACKET_MAX, &f, &used);
		n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
		    (uint32_t)h[2] << 8 | h[3];
		if (rc == PARSE_MORE && len < (size_t)n + 4)
			return;			/* the rest is on its way */
		if (rc == PARSE_MORE) {
			/* the frame leaves the socket's buffer before it is
			 * acted on: the connection may be set aside */
			buf_reset(&r->in);
			if (buf_add(&r->in, evbuffer_pullup(in, (ssize_t)n + 4),
			    (size_t)n + 4) == -1) {
				mc_fail(r, "out_of_memory");
				return;
			}
			evbuffer_drain(in, (size_t)n + 4);
			rc = milter_frame_parse(r->in.data, r->in.len,
			    MILTER_PACKET_MAX, &f, &used);
		}
		if (rc != PARSE_OK) {
			mc_fail(r, rc == PARSE_TOOLONG ? "packet_too_big" :
			    "bad_packet");
			return;
		}
		if (!r->waiting) {	/* nothing was asked */
			mc_log(r, LOG_LVL_INFO, "milter=%s unexpected=%c",
			    mc_spec(r)->name, f.cmd > 32 && f.cmd < 127 ?
			    f.cmd : '?');
			mc_fail(r, "unexpected_reply");
			return;
		}
		if (r->step == MC_NEG) {
			mc_negotiated(r, &f);
		} else if (milter_reply_parse(&f, &rp) != PARSE_OK) {
			mc_log(r, LOG_LVL_INFO, "milter=%s bad_reply=%s",
			    mc_spec(r)->name, log_esc(f.data, f.len < 64 ?
			    f.len : 64, 64));
			mc_fail(r, "bad_reply");
			return;
		} else
			mc_reply(r, &rp);
	}
}

static void
mc_write_cb(struct bufferevent *bev, void *arg)
{
	struct milter_run	*r = arg;

	(void)bev;
	/* not before the negotiation: a socket that connects at once (unix)
	 * may report its empty output before it reports the connect */
	if (!r->waiting && r->step > MC_NEG) {
		evtimer_del(r->tmo);
		mc_next(r);
	}
}

static void
mc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct milter_run	*r = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		/* negotiate: offer every action and step */
		buf_reset(&r->out);
		if (milter_enc_optneg(&r->out, MILTER_VERSION, MILTER_A_ALL,
		    MILTER_P_OFFER) == -1 ||
		    bufferevent_write(r->bev, r->out.data, r->out.len) == -1) {
			mc_fail(r, "write");
			return;
		}
		r->waiting = true;
		return;			/* the connect deadline runs on */
	}
	if (what & BEV_EVENT_EOF)
		mc_fail(r, "closed");
	else
		mc_fail(r, r->step == MC_NEG ? "connect" : "io");
}

static void
mc_tmo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct milter_run	*r = arg;

	(void)fd;
	(void)what;
	mc_fail(r, "timeout");
}

/* Connect to filter cur and start its conversation. */
static void
mc_begin(struct milter_run *r)
{
	const struct conf_milter	*m = mc_spec(r);
	struct sockaddr_storage		 ss;
	socklen_t			 sl;

	memset(&ss, 0, sizeof(ss));
	memset(&r->neg, 0, sizeof(r->neg));
	r->step = MC_NEG;
	r->idx = 0;
	r->nedits = 0;
	r->start_ms = mc_now_ms();
	if (m->family == AF_UNIX) {
		struct sockaddr_un	*u = (struct sockaddr_un *)&ss;

		u->sun_family = AF_UNIX;
		memcpy(u->sun_path, m->path, strlen(m->path) + 1);
		sl = sizeof(*u);
	} else if (m->family == AF_INET6) {
		struct sockaddr_in6	*s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = m->a6;
		s6->sin6_port = htons(m->port);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in	*s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr = m->a4;
		s4->sin_port = htons(m->port);
		sl = sizeof(*s4);
	}
	r->sv[r->cur].bev = NULL;
	r->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->bev == NULL) {
		mc_fail(r, "out_of_memory");
		return;
	}
	bufferevent_setcb(r->bev, mc_read_cb, mc_write_cb, mc_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	mc_arm(r, mc_ms(r, MC_NEG));
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss,
	    (int)sl) == -1)
		mc_fail(r, "connect");
}

/*
 * The next filter's turn in this phase: one that is over is passed by,
 * one that failed gives its default action again, one set aside goes
 * on where it stopped; past the last one the phase is done.
 */
static void
mc_chain_next(struct milter_run *r)
{
	struct mc_saved	*sv;

	while (r->cur < r->conf->milters.n && r->sv[r->cur].over)
		r->cur++;
	if (r->cur >= r->conf->milters.n) {
		if (r->phase == PH_RCPT &&
		    milter_msg_add_rcpt(&r->msg, r->rcpt) == -1) {
			r->verdict = MILTER_V_TEMPFAIL;
			snprintf(r->reply, sizeof(r->reply), "452 4.5.3 Too "
			    "many recipients");
		} else if (r->phase == PH_EOM)
			r->verdict = r->discard ? MILTER_V_DISCARD :
			    r->msg.quarantine ? MILTER_V_QUARANTINE :
			    MILTER_V_ACCEPT;
		else
			r->verdict = MILTER_V_ACCEPT;
		mc_finish(r);
		return;
	}
	sv = &r->sv[r->cur];
	r->start_ms = mc_now_ms();
	r->nedits = 0;
	r->idx = 0;
	r->rcpt_done = false;
	r->waiting = false;
	if (sv->failed >= 0) {
		r->verdict = sv->failed == CONF_MILTER_REJECT ?
		    MILTER_V_REJECT : MILTER_V_TEMPFAIL;
		r->by = mc_spec(r)->name;
		snprintf(r->reply, sizeof(r->reply), "%s",
		    sv->failed == CONF_MILTER_REJECT ?
		    "550 5.7.1 Message content rejected" :
		    "451 4.7.1 Content filter unavailable, try again later");
		mc_finish(r);
		return;
	}
	if (sv->bev == NULL) {			/* its first turn */
		mc_begin(r);
		return;
	}
	r->bev = sv->bev;
	sv->bev = NULL;
	r->neg = sv->neg;
	r->step = (enum mc_step)sv->step;
	if (r->phase == PH_EOM && r->step == MC_RCPT)
		r->step = MC_DATA;
	bufferevent_setcb(r->bev, mc_read_cb, mc_write_cb, mc_event_cb, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	/* bytes that came while it was set aside: nothing was asked */
	if (evbuffer_get_length(bufferevent_get_input(r->bev)) > 0) {
		mc_fail(r, "unexpected_reply");
		return;
	}
	mc_next(r);
}

/* Start a phase with filter 0; done runs from the loop, once. */
static void
mc_phase(struct milter_run *r, enum mc_phase ph, milter_done_fn *done,
    void *arg)
{
	r->phase = ph;
	r->done = done;
	r->arg = arg;
	r->cur = 0;
	r->verdict = MILTER_V_ACCEPT;
	r->reply[0] = '\0';
	r->by = "-";
	if (ph == PH_EOM && r->discard) {	/* said at MAIL or RCPT */
		r->verdict = MILTER_V_DISCARD;
		mc_finish(r);
		return;
	}
	mc_chain_next(r);
}

struct milter_run *
milter_run_start(struct event_base *base, const struct config *conf,
    const struct milter_env *env, uint64_t sid, milter_done_fn *done,
    void *arg)
{
	struct milter_run	*r = calloc(1, sizeof(*r));
	size_t			 i;

	if (r == NULL)
		return NULL;
	r->base = base;
	r->conf = conf;
	r->env = *env;
	/* the caller's strings may live on its stack: keep the prefix */
	snprintf(r->prefix, sizeof(r->prefix), "%s", env->log_prefix);
	r->env.log_prefix = r->prefix;
	r->sid = sid;
	r->by = "-";
	for (i = 0; i < MILTER_CHAIN_MAX; i++)
		r->sv[i].failed = -1;
	buf_init(&r->out, MC_CMDBUF_MAX);
	buf_init(&r->val, MILTER_HDR_VALUE_MAX * 2);
	buf_init(&r->in, MILTER_PACKET_MAX + 4);
	snprintf(r->port, sizeof(r->port), "%u", env->client_port);
	snprintf(r->conn_name, sizeof(r->conn_name), "%s [%s]",
	    env->client_name, env->client_addr);
	if (conf->milters.n > MILTER_CHAIN_MAX ||
	    (r->done_ev = evtimer_new(base, mc_done_cb, r)) == NULL ||
	    (r->tmo = evtimer_new(base, mc_tmo_cb, r)) == NULL ||
	    milter_msg_init(&r->msg, NULL, 0, env->sender, NULL, 0,
	    conf->max_message_size) == -1) {
		milter_run_free(r);
		return NULL;
	}
	mc_phase(r, PH_MAIL, done, arg);
	return r;
}

int
milter_run_rcpt(struct milter_run *r, const char *rcpt, milter_done_fn *done,
    void *arg)
{
	if (strlen(rcpt) >= sizeof(r->rcpt))
		return -1;
	memcpy(r->rcpt, rcpt, strlen(rcpt) + 1);
	mc_phase(r, PH_RCPT, done, arg);
	return 0;
}

int
milter_run_eom(struct milter_run *r, const uint8_t *msg, size_t len,
    const char *qid, milter_done_fn *done, void *arg)
{
	r->env.msg = msg;
	r->env.msglen = len;
	r->env.qid = qid;
	if (milter_msg_set_content(&r->msg, msg, len) == -1)
		return -1;
	mc_phase(r, PH_EOM, done, arg);
	return 0;
}

void
milter_run_free(struct milter_run *r)
{
	size_t	i;

	if (r == NULL)
		return;
	mc_close(r);
	for (i = 0; i < MILTER_CHAIN_MAX; i++)
		if (r->sv[i].bev != NULL)
			bufferevent_free(r->sv[i].bev);
	if (r->tmo != NULL)
		event_free(r->tmo);
	if (r->done_ev != NULL)
		event_free(r->done_ev);
	milter_msg_free(&r->msg);
	buf_free(&r->out);
	buf_free(&r->val);
	buf_free(&r->in);
	free(r);
}

void
milter_run_cancel(struct milter_run *r)
{
	milter_run_free(r);
}

enum milter_verdict
milter_run_verdict(const struct milter_run *r)
{
	return r->verdict;
}

const char *
milter_run_reply(const struct milter_run *r)
{
	return r->reply;
}

const char *
milter_run_by(const struct milter_run *r)
{
	return r->by;
}

struct milter_msg *
milter_run_msg(struct milter_run *r)
{
	return &r->msg;
}

const char *
milter_verdict_name(enum milter_verdict v)
{
	static const char *const n[] = { "accept", "reject", "tempfail",
		"discard", "quarantine" };

	return (unsigned)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}
