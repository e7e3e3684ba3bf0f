/*
 * fleet.h - state shared by a fleet of gateways in Redis (issue 17,
 * DESIGN 6 and 10): per-source distinct unknown names, valid counts and
 * uniform marks, for the harvest guard.
 * Owns: one Redis connection (hiredis, async, on its own libevent loop
 * in its own thread; with redis-sentinel://, the sentinels are asked who
 * the master is before each connect and every second, and ROLE must say
 * master), the batch of increments waiting to be sent, and
 * the last fleet counts known per source (a bounded, direct-mapped
 * cache).  Every SMTP loop reaches it through this header's calls,
 * which take one short lock and never wait on Redis: a decision uses
 * the local counts plus the last fleet counts known.
 * Never: policy (guard.c decides); a blocking call on an SMTP loop.
 * Untrusted: whatever Redis answers (checked type by type, bounded).
 * Thread-safe: every function but fleet_start/fleet_stop.
 *
 * Key schema (W = harvest_window in ms, i = floor(unix ms / W),
 * P = shared_state_prefix, S = the source: "198.51.100.7/32",
 * "198.51.100.0/24", "2001:db8:1:2::/64"; the braces are the Redis
 * Cluster hash tag, so one source's keys live in one slot):
 *   P{S}:u:i  set of distinct unknown names (63-bit keyed hashes, so an
 *             intset), at most 2 * threshold members; expires at the
 *             end of window i + 1 (PEXPIREAT (i + 2) * W)
 *   P{S}:v:i  valid recipients counted in window i; same expiry
 *   P{S}:m    "UNTIL_MS GATEWAY": marked for uniform answers until
 *             UNTIL_MS (unix ms) by GATEWAY; expires then (PXAT)
 * Distinct = |u:i U u:(i-1)|, valid = v:i + v:(i-1): over one to two
 * windows.  Every batch for a source is one EVAL (atomic: no key is
 * ever written without its expiry).
 */
#ifndef MXGATE_FLEET_H
#define MXGATE_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLEET_SRC_MAX		52	/* "ffff:...:ffff/128" and a NUL */
#define FLEET_GW_MAX		64	/* gateway name kept with a mark */
#define FLEET_BATCH_MS		20	/* increments wait at most this */
#define FLEET_QUEUE_MAX		65536	/* operations waiting to be sent */
#define FLEET_CACHE_SLOTS	65536	/* fleet counts remembered */
#define FLEET_HELD_MAX		4096	/* marks made while Redis is down */
#define FLEET_TIMEOUTS_DOWN	3	/* late replies in a row: down */
#define FLEET_DOWN_LOG_MS	60000	/* shared_state=down repeated */
#define FLEET_BACKOFF_MIN_MS	100	/* reconnect wait; doubles */
#define FLEET_BACKOFF_MAX_MS	5000
#define FLEET_REPLY_MAX		4096	/* bytes of a mark value kept */
#define FLEET_PASSWORD_BUF	514	/* a password of 512 bytes, LF */

struct fleet_conf {
	const char	*url;		/* shared_state */
	const char	*password;	/* NULL: no AUTH */
	const char	*prefix;	/* shared_state_prefix */
	const char	*gateway;	/* this gateway's name, in marks */
	unsigned	 timeout_ms;	/* shared_state_timeout */
	unsigned	 window_ms;	/* harvest_window: the same fleet-wide */
};

/* What the fleet last told about a source. */
struct fleet_view {
	unsigned	 distinct;	/* distinct unknown names, fleet-wide,
					 * plus ours not yet confirmed */
	unsigned	 valid;		/* valid recipients, fleet-wide */
	uint64_t	 mark_left_ms;	/* 0: not marked */
	char		 marker[FLEET_GW_MAX];	/* who marked it */
	uint64_t	 age_ms;	/* since Redis said so */
};

struct fleet_stats {
	bool		 up;
	uint64_t	 downs;		/* up -> down transitions */
	uint64_t	 timeouts;	/* replies later than the timeout */
	uint64_t	 errors;	/* error or malformed replies */
	uint64_t	 dropped;	/* increments lost (queue full, down) */
	uint64_t	 sent;		/* scripts sent */
	uint64_t	 pushed_held;	/* marks made while down, pushed */
};

struct fleet;

/* Reads the password file (refused if group or world may read it);
 * 0, or -1 with err.  fleet_check: the URL and prefix, without
 * connecting.  fleet_start: checks, then connects from its own thread. */
int	fleet_password_load(const char *path, char *out, size_t outlen,
	    char *err, size_t errlen);
int	fleet_check(const struct fleet_conf *, char *err, size_t errlen);
struct fleet *fleet_start(const struct fleet_conf *, char *err,
	    size_t errlen);
void	fleet_stop(struct fleet *);	/* NULL: nothing */

/* The two 64-bit halves of the fleet's name-hash key: the same on every
 * gateway with the same prefix and password. */
void	fleet_hash_key(const struct fleet *, uint64_t *k0, uint64_t *k1);

/* Queue increments; never wait.  cap bounds the distinct set. */
void	fleet_note_unknown(struct fleet *, const char *src, uint64_t name,
	    unsigned cap);
void	fleet_note_valid(struct fleet *, const char *src);
void	fleet_note_mark(struct fleet *, const char *src, uint64_t left_ms);
/* Ask for the source's fleet counts if they are older than max_age_ms
 * (or unknown). */
void	fleet_want(struct fleet *, const char *src, uint64_t max_age_ms);
/* The last fleet counts known; false if none. */
bool	fleet_view(struct fleet *, const char *src, struct fleet_view *);
void	fleet_get_stats(struct fleet *, struct fleet_stats *);
/* Each source the cache knows as marked fleet-wide; returns how many. */
typedef void	fleet_mark_fn(void *arg, const char *src,
		    const struct fleet_view *);
size_t	fleet_walk_marks(struct fleet *, fleet_mark_fn *, void *arg);

#endif
