/*
 * dir_chain.c - the rule of a `directory` chain (dir_chain.h).
 * Owns: folding verdicts.  Never: asks a back-end, guesses: a verdict it
 * does not know counts as TEMPFAIL.
 */
#include "dir_chain.h"

bool
dir_chain_take(struct dir_chain_acc *a, enum dir_verdict v)
{
	switch (v) {
	case DIR_VALID:
		a->valid = true;
		return true;
	case DIR_UNKNOWN:
		return false;
	case DIR_TEMPFAIL:
	case DIR_PENDING:	/* a back-end's bug: never a 550 */
	default:
		a->tempfail = true;
		return false;
	}
}

enum dir_verdict
dir_chain_verdict(const struct dir_chain_acc *a)
{
	if (a->valid)
		return DIR_VALID;
	return a->tempfail ? DIR_TEMPFAIL : DIR_UNKNOWN;
}
