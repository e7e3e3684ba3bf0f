/*
 * policy.c - the per-domain unknown-recipient policy (see policy.h).
 * A directory TEMPFAIL is never turned into a guess, whatever the policy.
 */
#include "../conf/conf.h"
#include "../lib/log.h"
#include "policy.h"

enum rcpt_action
policy_rcpt(enum relay_verdict rv, enum dir_verdict v,
    const struct domain_conf *dc)
{
	if (rv == RELAY_DENIED)
		return RCPT_DENY;
	if (rv == RELAY_CLIENT)
		return RCPT_RELAY;
	switch (v) {
	case DIR_VALID:
		return RCPT_ACCEPT;
	case DIR_UNKNOWN:
		return dc->unknown == UNKNOWN_DISCARD ? RCPT_DISCARD :
		    dc->unknown == UNKNOWN_BOUNCE ? RCPT_BOUNCE : RCPT_REJECT;
	case DIR_TEMPFAIL:
		return RCPT_TEMPFAIL;
	default:
		panic("policy_rcpt: verdict %d", (int)v);
	}
}

const char *
policy_action_name(enum rcpt_action a)
{
	static const char *const names[] = {
		[RCPT_ACCEPT] = "accept",
		[RCPT_RELAY] = "relay",
		[RCPT_DISCARD] = "discard",
		[RCPT_BOUNCE] = "bounce",
		[RCPT_REJECT] = "reject",
		[RCPT_TEMPFAIL] = "tempfail",
		[RCPT_DENY] = "relay_denied",
		[RCPT_UNIFORM] = "uniform",
		[RCPT_CUTOFF] = "cutoff",
	};

	return names[a];
}

bool
policy_looks_valid(enum rcpt_action a)
{
	return a == RCPT_ACCEPT || a == RCPT_RELAY || a == RCPT_DISCARD ||
	    a == RCPT_BOUNCE;
}
