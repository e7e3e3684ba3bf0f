/*
 * dir_chain.h - the rule of a `directory` chain: back-ends asked in
 * order, the first VALID wins; UNKNOWN only if every back-end says so;
 * any TEMPFAIL with no VALID is TEMPFAIL (451 4.3.0): an absent answer
 * from one back-end never becomes a 550 while another could not answer.
 * Owns: the rule alone, pure.  Never: asks a back-end.
 */
#ifndef MXGATE_DIR_CHAIN_H
#define MXGATE_DIR_CHAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "dir.h"

/* What the chain has learned so far. */
struct dir_chain_acc {
	bool	tempfail;	/* a back-end could not answer */
	bool	valid;		/* a back-end knows the address: stop */
};

/*
 * Take one back-end's final verdict (never DIR_PENDING).  true: stop
 * asking (the answer is VALID).
 */
bool		 dir_chain_take(struct dir_chain_acc *, enum dir_verdict);
/* The chain's verdict once it stopped or every back-end answered. */
enum dir_verdict dir_chain_verdict(const struct dir_chain_acc *);

#endif
