/*
 * milter.h - the milter chain for one transaction: each filter of
 * `milters` gets its own conversation on the event loop, in three
 * phases (MAIL: connect, negotiate, connect/helo/mail; each RCPT mxgate
 * took; the message: data/headers/eoh/body/eom, quit), its connection
 * set aside between them.  In each phase the filters are asked in order,
 * each sees the message as the ones before it left it, and the first
 * answer that is not "continue" ends the phase.  A filter that is down,
 * slow or speaks garbage gets its default action (milter_default_action
 * or its own {default_action=...}), with a log line saying so.
 * Owns: the sockets, timers and buffers of the conversations.
 * Never: speaks SMTP, writes the spool, blocks.  Untrusted: every byte a
 * filter sends (decoded by milter_proto.c).
 */
#ifndef MXGATE_MILTER_H
#define MXGATE_MILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "milter_msg.h"

struct event_base;

#define MILTER_CHAIN_MAX	16	/* filters in `milters` (conf_milter.c) */

/* How one filter's conversation ended (for counters: obs.h's order). */
enum milter_outcome {
	MILTER_O_CONTINUE, MILTER_O_ACCEPT, MILTER_O_REJECT, MILTER_O_TEMPFAIL,
	MILTER_O_DISCARD, MILTER_O_REPLYCODE, MILTER_O_TIMEOUT, MILTER_O_ERROR
};
/* Told once per filter: its place in the chain, outcome, microseconds. */
typedef void	milter_note_fn(void *arg, size_t idx, enum milter_outcome,
		    uint64_t us);
struct config;
struct milter_run;

/* What the filters are told (macros, envelope, the message).  The
 * strings and the message must live as long as the run (the session's);
 * log_prefix is copied. */
struct milter_env {
	const char		*log_prefix;	/* "sid=... client=..." */
	const char		*hostname;	/* j */
	const char		*client_addr;	/* text */
	int			 client_family;	/* AF_INET, AF_INET6 */
	uint16_t		 client_port;
	const char		*client_name;	/* "unknown" without a name */
	const char		*helo;
	const char		*tls_version;	/* "" without TLS */
	const char		*cipher;
	const char		*auth_user;	/* "" without AUTH */
	const char		*qid;		/* i */
	const char		*sender;	/* "" for <> */
	const char *const	*rcpts;
	size_t			 nrcpts;
	const uint8_t		*msg;		/* the client's bytes; kept by
						 * the caller for the run */
	size_t			 msglen;
	milter_note_fn		*note;		/* or NULL */
	void			*note_arg;
};

enum milter_verdict {
	MILTER_V_ACCEPT,	/* take it (the edits in the message) */
	MILTER_V_REJECT,	/* 5xx: reply holds it */
	MILTER_V_TEMPFAIL,	/* 4xx: reply holds it */
	MILTER_V_DISCARD,	/* answer 250, store nothing */
	MILTER_V_QUARANTINE,	/* take it, hold it in the queue */
};

typedef void	milter_done_fn(void *arg, uint64_t sid, struct milter_run *);

/*
 * One transaction, in three phases; each one's done(arg, sid, run) runs
 * later on the loop (never inside the call), once, and the verdict and
 * reply are that phase's.  Start: at MAIL (its checks passed, before its
 * reply): connect, negotiate, connect, helo, mail with each filter.
 * NULL: out of memory (the caller answers 451).  env->msg is not used
 * yet.
 */
struct milter_run *milter_run_start(struct event_base *,
		    const struct config *, const struct milter_env *,
		    uint64_t sid, milter_done_fn *, void *arg);
/* A recipient mxgate took (before its 250): REJECT/TEMPFAIL refuse this
 * recipient only; ACCEPT: it is in the message the filters edit.  0, or
 * -1 (too long: nothing started). */
int		 milter_run_rcpt(struct milter_run *, const char *rcpt,
		    milter_done_fn *, void *arg);
/* The message (the client's bytes, kept by the caller), before the
 * 250: data, headers, body, eom.  0, or -1 (out of memory). */
int		 milter_run_eom(struct milter_run *, const uint8_t *msg,
		    size_t len, const char *qid, milter_done_fn *, void *arg);
/* Stop it (RSET, a new MAIL, the client left): no callback; frees it. */
void		 milter_run_cancel(struct milter_run *);
void		 milter_run_free(struct milter_run *);

enum milter_verdict milter_run_verdict(const struct milter_run *);
/* The SMTP reply to give for REJECT and TEMPFAIL ("550 5.7.1 ..."). */
const char	*milter_run_reply(const struct milter_run *);
/* The name of the filter that decided, or "-". */
const char	*milter_run_by(const struct milter_run *);
/* The message as the chain left it. */
struct milter_msg *milter_run_msg(struct milter_run *);
const char	*milter_verdict_name(enum milter_verdict);

#endif
