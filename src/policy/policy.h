/*
 * policy.h - what happens to one recipient, given the relay decision and
 * the directory's verdict: the domain's unknown-recipient policy
 * (DESIGN 2.4, 1).  A pure function, so the harvest guard can wrap it and
 * the table of outcomes can be tested whole.
 * Never: chooses reply text (smtp_rcpt.c maps actions to replies, and
 * gives RCPT_DISCARD and RCPT_BOUNCE the very reply of RCPT_ACCEPT).
 */
#ifndef MXGATE_POLICY_H
#define MXGATE_POLICY_H

#include <stdbool.h>

#include "../dir/dir.h"
#include "relay.h"

enum rcpt_action {
	RCPT_ACCEPT,	/* ours and valid: queue it */
	RCPT_RELAY,	/* not ours, the client may relay: queue it */
	RCPT_DISCARD,	/* unknown under discard: valid reply, not queued */
	RCPT_BOUNCE,	/* unknown under bounce: valid reply, not queued,
			 * an NDR after DATA if the backscatter guard lets */
	RCPT_REJECT,	/* unknown under reject: 550 5.1.1 */
	RCPT_TEMPFAIL,	/* the directory could not answer: 451 4.3.0 */
	RCPT_DENY,	/* relay access denied: 554 5.7.1 */
	RCPT_UNIFORM,	/* harvest guard: the one uniform reply */
	RCPT_CUTOFF,	/* harvest guard: 421 4.7.0 and close */
};

enum rcpt_action policy_rcpt(enum relay_verdict, enum dir_verdict,
		    const struct domain_conf *);
const char	*policy_action_name(enum rcpt_action);
/* Whether the action is answered like a valid recipient. */
bool		 policy_looks_valid(enum rcpt_action);

#endif
