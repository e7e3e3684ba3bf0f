/*
 * guard.h - the harvest guard: directory-harvest signals to verdicts
 * (pass, tarpit, uniform answers, cut-off), per client and per domain.
 * Owns: per-client decaying counts, marks, tarpit slots and per-host
 * reply queues, domain rates.
 * Never: I/O, timers, sleeping; the caller delays, replies and closes.
 * Untrusted: client addresses and recipient names (hashed, never kept).
 * Thread-safe: one guard shared by every event loop; each public function
 * holds the guard's one lock and never calls back while holding it.
 * A guard_session belongs to one loop.  DESIGN.md 3, issue 4.
 */
#ifndef MXGATE_GUARD_H
#define MXGATE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "../lib/cidr.h"

/*
 * How it decides (issue 4 defaults in brackets).
 * - Counts are kept per client at two levels, the host (IPv4 /32, IPv6
 *   /64) and its net (IPv4 /24, IPv6 /48); IPv4-mapped IPv6 is IPv4.
 *   Over the window: unknown and valid recipients and signals (two-bucket
 *   sliding estimate), and the distinct unknown recipients (local@domain,
 *   case folded; exact, from up to 2 * threshold keyed hashes, so an MTA
 *   retrying one stale address counts once).  A client's score is its
 *   distinct names plus its signals: VRFY, EXPN and a failed AUTH weigh
 *   one unknown recipient, a protocol error a quarter.
 * - Majority rule: tarpit and cut-off need the session's unknown (with
 *   signals) to outnumber its valid recipients, and the host's window not
 *   to be mostly valid; a mark needs the host's (net's) unknown to
 *   outnumber its valid.  A list server or a provider's /24 with a few
 *   stale names is never delayed, cut off or marked.  A valid name counts
 *   once per session for the session, and once per window for the host
 *   (its last 16 valid names are kept), so a harvester padding each
 *   guess with one real address, even reconnecting for each, stays
 *   "mostly unknown".
 * - Tarpit [3; 1 s doubling to 10 s]: once the session has tarpit_after
 *   unknown, or the host's score reaches tarpit_after (the net's reaches
 *   tarpit_after * threshold_net / threshold [12]) and the session is not
 *   mostly valid, or the session noted a hot domain and has an unknown.
 *   The k-th delayed reply of a session waits base * 2^(k + k0), capped,
 *   where k0 is the history's excess over the trigger when the tarpit
 *   started, or base * 2^n if that is more, n the host's delayed replies
 *   in the window: no delay ever depends on any recipient's verdict.  A
 *   host's delayed replies are queued one after the other over all its
 *   sessions: each is released its delay after the one before, so
 *   parallel connections buy a harvester nothing; the wait in that queue
 *   counts toward the session's total delay.
 * - Uniform replies of a marked client whose history would tarpit it
 *   wait tarpit_max, in the same queue: never cheaper than the tarpit.
 * - Cut-off [10]: session_limit unknown in the session; also when
 *   max_tarpitted sessions are held or the next delay (with its wait in
 *   the host's queue) would take the session past session_delay_max_ms.
 *   A cut session stays cut.
 * - Uniform [25 per host, 100 per net, 24 h]: a host or net whose score
 *   reaches its threshold is marked for ttl_ms; every address inside a
 *   marked net is uniform too.  Thresholds above GUARD_THRESHOLD_MAX are
 *   never reached.
 * - Distributed harvest [300/min]: a domain is hot while its unknown
 *   recipients over all clients, in a sliding minute, went above
 *   global_rate and have not fallen to half of it.
 * A zero count or limit turns its measure off, except where noted.
 */
#define GUARD_THRESHOLD_MAX	2048	/* distinct names kept per entry */
/*
 * A valid name counts once per session: a harvester that pads every guess
 * with the one real address it knows must not look "mostly valid".  The
 * last GUARD_VALID_SEEN distinct valid names of a session are remembered
 * (hashes); a list server's recipients are all distinct anyway.
 */
#define GUARD_VALID_SEEN	8

struct guard_conf {
	unsigned	 window_ms;	/* decaying window, 1h */
	unsigned	 tarpit_after;	/* unknown rcpts before the tarpit, 3 */
	unsigned	 tarpit_base_ms; /* first delay, 1000; doubles */
	unsigned	 tarpit_max_ms;	/* cap of one delay, 5000 */
	unsigned	 session_limit;	/* unknown in a session: 421, 10 */
	unsigned	 threshold;	/* distinct unknown per host, 25 */
	unsigned	 threshold_net;	/* ... per net, 100; uniform mode */
	unsigned	 ttl_ms;	/* how long a mark lasts, 24h */
	unsigned	 global_rate;	/* unknown/min for one domain, 300 */
	unsigned	 max_tarpitted;	/* sessions tarpitted at once, 2000;
					 * 0: no cap */
	unsigned	 session_delay_max_ms; /* total delay of a session,
					 * 60000; 0: no cap */
	size_t		 max_clients;	/* table entries (hosts + nets), 100000;
					 * at least 2 */
	const struct cidr_list *exempt;	/* borrowed, may be NULL */
};

enum guard_verdict {
	GUARD_PASS,	/* answer normally, now */
	GUARD_TARPIT,	/* answer normally after *delay_ms */
	GUARD_UNIFORM,	/* the uniform reply, whatever the recipient; the
			 * caller skips the directory */
	GUARD_CUTOFF,	/* 421 4.7.0 and close */
};

/*
 * Embedded in each SMTP session and zeroed at connect.  Never reset on
 * RSET, a new transaction or a delivered message: the counts are the
 * session's, not the transaction's.
 */
struct guard_session {
	unsigned	 valid;		/* recipients found valid */
	unsigned	 unknown;	/* recipients found unknown */
	unsigned	 delay_total_ms; /* tarpit delay given so far */
	bool		 tarpitted;	/* holds one of max_tarpitted slots */
	bool		 hot;		/* noted a recipient of a hot domain */
	bool		 cut;		/* got GUARD_CUTOFF: stays cut */
	unsigned	 signal_q;	/* VRFY etc., in quarter units */
	unsigned	 tarpit_n;	/* replies delayed so far */
	unsigned	 tarpit_k0;	/* doublings owed to history at start */
	uint32_t	 valid_seen[GUARD_VALID_SEEN]; /* recent valid names */
	unsigned	 valid_next;	/* ring position in valid_seen */
};

enum guard_signal {
	GUARD_SIG_VRFY,		/* counts as one unknown recipient */
	GUARD_SIG_EXPN,		/* one */
	GUARD_SIG_PROTO,	/* a protocol error: a quarter */
	GUARD_SIG_AUTH,		/* a failed AUTH: one */
};

struct guard_stats {
	size_t		 entries;	/* hosts and nets in the table */
	size_t		 marked;	/* of those, in uniform mode */
	size_t		 marked_nets;	/* of those, nets (/24, /48) */
	size_t		 tarpitted;	/* sessions holding a tarpit slot */
	size_t		 hot_domains;	/* under a distributed harvest */
	size_t		 evicted;	/* entries dropped for max_clients */
	size_t		 bytes;		/* heap held by the table, estimate */
};

/* The defaults of issue 4 (harvest_* keys in conf_keys.c). */
void	guard_conf_defaults(struct guard_conf *);

struct guard *guard_new(const struct guard_conf *);	/* copies the conf */
void	guard_set_conf(struct guard *, const struct guard_conf *); /* keeps
								    * state */
void	guard_free(struct guard *);
const char *guard_verdict_name(enum guard_verdict);

/*
 * Before a RCPT is answered; call exactly once per RCPT.  Decided from
 * the client's and the session's history only, never from this recipient
 * (a delay only on unknown names would itself tell them apart).  A
 * non-IP or exempt client always passes.  For GUARD_TARPIT, and for
 * GUARD_UNIFORM when it is not 0, *delay_ms is how long the reply waits
 * (the host's queue included); the caller must not answer sooner.
 */
enum guard_verdict guard_rcpt_check(struct guard *, const struct sockaddr *,
	    struct guard_session *, uint64_t now_ms, unsigned *delay_ms);

/*
 * After the directory answered valid or unknown (not in uniform mode):
 * count it.  local@domain is the canonical recipient; only a keyed hash
 * of it is kept.  Returns true if the domain is under a distributed
 * harvest, i.e. its unknown names must be answered as under discard
 * (always false for an exempt client).
 */
bool	guard_rcpt_note(struct guard *, const struct sockaddr *,
	    struct guard_session *, bool unknown, const char *local,
	    size_t llen, const char *domain, size_t dlen, uint64_t now_ms);

/* Whether the domain is under a distributed harvest now. */
bool	guard_domain_hot(struct guard *, const char *domain, size_t dlen,
	    uint64_t now_ms);

void	guard_note_signal(struct guard *, const struct sockaddr *,
	    struct guard_session *, enum guard_signal, uint64_t now_ms);

/* At session end: releases the tarpit slot; idempotent. */
void	guard_session_end(struct guard *, struct guard_session *);

/* About once a second: expires marks and stale entries, switches hot
 * domains off; logs state=expired and state=global_off. */
void	guard_tick(struct guard *, uint64_t now_ms);

/*
 * Operator interface.  guard_list reports each host or net in uniform
 * mode (state "uniform", expires_ms when the mark ends) and each one
 * whose history tarpits its sessions (state "tarpit", expires_ms when
 * that history has aged out at the latest).  guard_unmark forgets every
 * entry overlapping an address or CIDR prefix (an address also frees its
 * marked /24 or /48, which would otherwise keep it uniform); returns the
 * number of entries removed, whatever their state, or -1 if the text is
 * not an address or prefix; fn (may be NULL) gets each removed entry with
 * the state it had: "uniform", "tarpit" or "counted" (counts alone).
 */
typedef void	guard_list_fn(void *arg, const char *net, const char *state,
		    unsigned distinct_unknown, unsigned valid,
		    uint64_t expires_ms);
void	guard_list(struct guard *, uint64_t now_ms, guard_list_fn *,
	    void *arg);
int	guard_unmark(struct guard *, const char *addr_or_cidr,
	    uint64_t now_ms, guard_list_fn *, void *arg);
void	guard_get_stats(struct guard *, struct guard_stats *);

/*
 * A fleet (issue 17, src/fleet/): counts and marks are shared through it,
 * and each decision adds the fleet's last known counts to the local ones
 * without waiting.  NULL: alone.  The fleet outlives its use here.
 */
struct fleet;
void	guard_set_fleet(struct guard *, struct fleet *);
/* At connect: asks the fleet for the client's counts, so that they are
 * known by its first RCPT. */
void	guard_peer_hello(struct guard *, const struct sockaddr *);

#endif
