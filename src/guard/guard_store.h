/*
 * guard_store.h - the harvest guard's counters, behind a small interface
 * so that a Redis-backed store can replace the in-memory one for a fleet.
 * guard_mem.c: per-host and per-net decaying counts, distinct-name sets
 * and marks; guard_dom.c: per-domain rates.  Internal to src/guard/.
 * Never: policy.  A store counts, decays, marks and forgets; guard.c
 * decides and logs.
 */
#ifndef MXGATE_GUARD_STORE_H
#define MXGATE_GUARD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/cidr.h"

#define GUARD_Q		4	/* counters are in quarter units */
#define GUARD_SET_MAX	2048	/* names per distinct set (24 KB) */
#define GUARD_VSEEN	16	/* valid names remembered per host */
#define GUARD_DOM_WINDOW_MS 60000	/* domain rates are per minute */
#define GUARD_DOM_MAX	4096	/* domains counted; they are ours */
#define GUARD_DOM_NAME_MAX 255	/* RFC 5321 4.5.3.1.2 */

enum guard_ctr {
	GUARD_CTR_UNKNOWN,	/* unknown recipients */
	GUARD_CTR_VALID,	/* valid recipients */
	GUARD_CTR_SIGNAL,	/* VRFY, EXPN, protocol errors, failed AUTH */
	GUARD_CTR_DELAYED,	/* tarpitted replies (hosts only) */
	GUARD_CTR_MAX,
};

/* A host (/32, /64) or net (/24, /48), host bits cleared. */
struct guard_net {
	uint8_t		 family;	/* AF_INET or AF_INET6 */
	uint8_t		 prefix;
	uint8_t		 addr[16];
};

struct guard_counts {
	uint32_t	 ctr[GUARD_CTR_MAX];	/* decayed, quarter units */
	unsigned	 distinct;	/* distinct unknown names in window */
	uint64_t	 marked_until;	/* 0: not marked */
	uint64_t	 last_ms;	/* last counted or looked at */
	uint64_t	 busy_until;	/* delayed replies queued until */
};

struct guard_hkey {
	uint64_t	 k0, k1;
};

/* SipHash-2-4: keyed, so a client cannot aim at one hash chain. */
uint64_t guard_hash(const struct guard_hkey *, const void *, size_t);

struct guard_mem;
typedef void	guard_mem_fn(void *arg, const struct guard_net *,
		    const struct guard_counts *);

/* evicted is told about each marked entry dropped for max_entries. */
struct guard_mem *guard_mem_new(size_t max_entries, unsigned window_ms,
	    const struct guard_hkey *, guard_mem_fn *evicted, void *arg);
void	guard_mem_free(struct guard_mem *);
void	guard_mem_set_limits(struct guard_mem *, size_t max_entries,
	    unsigned window_ms);
/* false (and zeroed counts) if the net has no entry. */
bool	guard_mem_read(struct guard_mem *, const struct guard_net *,
	    uint64_t now_ms, struct guard_counts *);
/* Adds q to one counter and, if name is not NULL, the name's hash to the
 * distinct set (at most set_max kept); 0, or -1 out of memory. */
int	guard_mem_add(struct guard_mem *, const struct guard_net *,
	    uint64_t now_ms, enum guard_ctr, unsigned q, const uint64_t *name,
	    unsigned set_max, struct guard_counts *);
/*
 * Whether a valid name (its hash) is new to the net in the window: then
 * it is remembered (the last GUARD_VSEEN of them) and 1 is returned; 0 if
 * it was counted less than a window ago (to the minute); -1 out of
 * memory.
 */
int	guard_mem_valid_new(struct guard_mem *, const struct guard_net *,
	    uint64_t now_ms, uint64_t name);
/* The net's delayed replies are queued until at least until_ms (never
 * moved back); 0, or -1 out of memory. */
int	guard_mem_reserve(struct guard_mem *, const struct guard_net *,
	    uint64_t now_ms, uint64_t until_ms);
/* until 0 unmarks; -1 if the net has no entry. */
int	guard_mem_mark(struct guard_mem *, const struct guard_net *,
	    uint64_t until_ms);
/* Drops every entry overlapping the prefix, telling fn first. */
size_t	guard_mem_forget(struct guard_mem *, const struct cidr *,
	    uint64_t now_ms, guard_mem_fn *, void *);
void	guard_mem_walk(struct guard_mem *, uint64_t now_ms, guard_mem_fn *,
	    void *);
/* Ends marks due by now (telling fn) and frees entries fully decayed. */
void	guard_mem_expire(struct guard_mem *, uint64_t now_ms, guard_mem_fn *,
	    void *);
void	guard_mem_stats(const struct guard_mem *, size_t *entries,
	    size_t *marked, size_t *marked_nets, size_t *evicted,
	    size_t *bytes);

struct guard_dom;
typedef void	guard_dom_fn(void *arg, const char *name, size_t len,
		    unsigned rate, bool hot);

struct guard_dom *guard_dom_new(const struct guard_hkey *);
void	guard_dom_free(struct guard_dom *);
/*
 * Counts n unknown recipients for the domain (n = 0: only looks) and
 * switches its hot flag: on above on_rate per minute, off at or below
 * off_rate (on_rate 0: never on).  A switch is told to fn.  Returns the
 * flag.
 */
bool	guard_dom_update(struct guard_dom *, const char *name, size_t len,
	    uint64_t now_ms, unsigned n, unsigned on_rate, unsigned off_rate,
	    guard_dom_fn *, void *);
/* The same switch-off for every domain; drops idle ones. */
void	guard_dom_tick(struct guard_dom *, uint64_t now_ms, unsigned on_rate,
	    unsigned off_rate, guard_dom_fn *, void *);
size_t	guard_dom_hot_count(const struct guard_dom *);

#endif
