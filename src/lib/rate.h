/*
 * rate.h - a bounded keyed event counter over a sliding window.
 * Owns: the keys, their two window buckets, least-recently-used eviction.
 * Never: allocates on a hit for a key it holds; reads a clock (time is
 * passed in).  Knows nothing about mail.  Thread-safe: one mutex per
 * table, held by each call (the event loops share a table).
 * Untrusted: the keys (peer addresses, envelope senders): hashed with a
 * per-table random SipHash key, so colliding keys cannot be precomputed.
 */
#ifndef MXGATE_RATE_H
#define MXGATE_RATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Keys up to RATE_KEY_MAX bytes are stored whole and compared exactly.  A
 * longer key is never truncated (that would merge distinct keys): it is
 * stored as its length, the 64-bit hash of all its bytes and its first
 * RATE_KEY_MAX bytes; two long keys are taken as equal only when all three
 * match.
 */
#define RATE_KEY_MAX	320
#define RATE_KEYS_MAX	(1u << 22)	/* largest max_keys accepted */

struct rate_table;

/*
 * window_ms: the window; max_keys: memory bound (least recently used keys
 * are evicted past it).  NULL when window_ms is 0, max_keys is 0 or over
 * RATE_KEYS_MAX, or memory is short.
 */
struct rate_table *rate_table_new(unsigned window_ms, size_t max_keys);
void	rate_table_free(struct rate_table *);

/*
 * Add n events for key at now_ms; returns the estimated count in the
 * window ending now, including these.  The estimate is the current fixed
 * window's count plus the previous one's weighted by the part of it still
 * inside the sliding window (rounded down); it saturates at UINT_MAX.  A
 * clock that goes backwards counts both buckets whole.
 */
unsigned rate_hit(struct rate_table *, const void *key, size_t klen,
	    uint64_t now_ms, unsigned n);
/* The estimate without adding; neither creates the key nor refreshes it. */
unsigned rate_peek(struct rate_table *, const void *key, size_t klen,
	    uint64_t now_ms);
size_t	rate_table_count(const struct rate_table *);

#endif
