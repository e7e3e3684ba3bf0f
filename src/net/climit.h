/*
 * climit.h - per-client connection limits at accept: sessions at once and
 * new sessions a minute from one client (an IPv4 address; IPv6: its /64,
 * which one host typically owns whole).
 * Owns: the table of current counts (entries vanish at zero).
 * Never: replies or closes; the caller does.  Thread-safe (one mutex):
 * the accepting loop admits, the session's loop releases.
 */
#ifndef MXGATE_CLIMIT_H
#define MXGATE_CLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct climit;
struct rate_table;

enum climit_verdict {
	CLIMIT_OK,		/* admitted and counted */
	CLIMIT_TOO_MANY,	/* max_conc sessions open already */
	CLIMIT_TOO_FAST,	/* more than max_rate new sessions a minute */
};

struct climit	*climit_new(void);
void		 climit_free(struct climit *);
/* max_rate 0: no rate limit.  Only CLIMIT_OK counts the session. */
enum climit_verdict climit_admit(struct climit *, const struct sockaddr *,
		    unsigned max_conc, unsigned max_rate, uint64_t now_ms);
void		 climit_release(struct climit *, const struct sockaddr *);
size_t		 climit_clients(struct climit *);
const char	*climit_verdict_name(enum climit_verdict);

#endif
