/*
 * dir.h - the recipient directory: is this address one of ours?
 * One small interface that every back-end implements (file, hashed; LDAP
 * and callout later), asked as a chain (dir_chain.h).  A lookup answers VALID, UNKNOWN or TEMPFAIL, never a
 * guess; a back-end that cannot answer at once returns DIR_PENDING and
 * calls done later on the loop, carrying the caller's id (STYLE R14).
 * Owns: address normalisation for lookups (case, recipient delimiter).
 * Never: decides policy (what an UNKNOWN leads to is smtp_rcpt's job).
 */
#ifndef MXGATE_DIR_H
#define MXGATE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../conf/conf.h"

enum dir_verdict {
	DIR_VALID,
	DIR_UNKNOWN,
	DIR_TEMPFAIL,
	DIR_PENDING,	/* answer comes through the done callback */
};

struct dir;
struct event_base;

typedef void	dir_done_fn(void *arg, uint64_t id, enum dir_verdict);
/* Errors met while loading: the users file, its line (0: none), why. */
typedef void	dir_err_fn(void *arg, const char *file, unsigned line,
		    const char *msg);

struct dir_query {
	const char	*local;		/* canonical local part, not NUL-ended */
	size_t		 llen;
	const char	*domain;	/* without trailing dot */
	size_t		 dlen;
	const char	*delim;		/* recipient delimiter chars, "" none */
};

/*
 * Open the back-end the config names and load it (blocking: call at start
 * or from a job).  On a load error every problem goes to err and the
 * result is NULL.  A NULL dir is a valid argument to dir_lookup and
 * answers DIR_TEMPFAIL: a directory that failed to load never guesses.
 */
struct dir	*dir_open(const struct config *, dir_err_fn *err, void *arg);
struct dir	*dir_ref(struct dir *);
void		 dir_unref(struct dir *);
size_t		 dir_count(const struct dir *);	/* entries, for logs */
/*
 * Wait at most ms (each) for back-ends that fill themselves (LDAP sync)
 * to hold a full set; true if all do.  Until then they answer TEMPFAIL.
 */
bool		 dir_settle(struct dir *, unsigned ms);

/*
 * Look an address up.  The full local part first; if unknown and it
 * contains one of q->delim, the part before the first such character.
 */
enum dir_verdict dir_lookup(struct dir *, const struct dir_query *q,
		    uint64_t id, dir_done_fn *done, void *arg);
/*
 * A worker thread names its loop before it runs it: back-ends that
 * answer DIR_PENDING from another thread call done on that loop.
 */
void		 dir_loop_enter(struct event_base *);
/* ... and says when it stopped: no answer is sent to it after this. */
void		 dir_loop_leave(struct event_base *);
/* The same; *by: the name of the back-end that gave the verdict. */
enum dir_verdict dir_lookup_by(struct dir *, const struct dir_query *q,
		    uint64_t id, dir_done_fn *done, void *arg,
		    const char **by);
const char	*dir_verdict_name(enum dir_verdict);
/* The chain's names for logs ("file", "file,hashed"); "none" for NULL. */
const char	*dir_name(const struct dir *);

/* One entry of a back-end that can list its entries. */
typedef void	dir_each_fn(void *arg, const char *key, size_t len);
/*
 * check-config: tell warn (line 0) about each domain, DIR_FOREIGN_MAX at
 * most, that has entries but is not in `domains` (they can never match:
 * RCPT for such a domain is refused as relaying).  Returns how many
 * domains were told; 0 for a back-end that cannot list its entries.
 */
#define DIR_FOREIGN_MAX	20
unsigned	 dir_foreign_domains(const struct dir *, const struct config *,
		    dir_err_fn *warn, void *arg);

#endif
