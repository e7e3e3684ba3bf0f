/*
 * rate.c - sliding-window event counts per key (see rate.h).
 * Owns: a chained hash table and an LRU list over the same entries.
 * Never: allocates on a hit for a known key; holds more than max_keys.
 * Untrusted: key bytes, hashed with SipHash-2-4 under a random key.
 */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/random.h>
#include <sys/types.h>

#include "rate.h"

struct rate_entry {
	struct rate_entry	*hnext;		/* hash chain */
	struct rate_entry	*lprev;		/* LRU: newer */
	struct rate_entry	*lnext;		/* LRU: older */
	uint64_t		 hash;
	uint64_t		 widx;		/* window cur counts */
	unsigned		 cur;
	unsigned		 prev;		/* window widx - 1 */
	size_t			 klen;		/* full length */
	size_t			 kcap;		/* bytes in key[] */
	uint8_t			 key[];		/* its start */
};

struct rate_table {
	struct rate_entry	**buckets;
	size_t			 mask;		/* buckets - 1 */
	size_t			 count;
	size_t			 max_keys;
	unsigned		 window_ms;
	struct rate_entry	*newest;	/* LRU head */
	struct rate_entry	*oldest;	/* evicted first */
	uint64_t		 sipkey[2];
	pthread_mutex_t		 mu;	/* every public call holds it */
};

static uint64_t	rate_hash(const struct rate_table *, const uint8_t *,
		    size_t);
static struct rate_entry *rate_find(struct rate_table *, const uint8_t *,
		    size_t, uint64_t);
static struct rate_entry *rate_insert(struct rate_table *, const uint8_t *,
		    size_t, uint64_t, uint64_t);
static void	rate_unlink(struct rate_table *, struct rate_entry *);
static void	rate_push(struct rate_table *, struct rate_entry *);
static unsigned	rate_estimate(const struct rate_table *,
		    const struct rate_entry *, uint64_t);

#define ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

static void
rate_sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = ROTL(v[1], 13); v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3]; v[3] = ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = ROTL(v[1], 17); v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

/* SipHash-2-4 (Aumasson, Bernstein 2012): keys come from peers. */
static uint64_t
rate_hash(const struct rate_table *t, const uint8_t *p, size_t len)
{
	uint64_t	v[4], m;
	size_t		i, j, tail;

	v[0] = t->sipkey[0] ^ 0x736f6d6570736575ULL;
	v[1] = t->sipkey[1] ^ 0x646f72616e646f6dULL;
	v[2] = t->sipkey[0] ^ 0x6c7967656e657261ULL;
	v[3] = t->sipkey[1] ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= len; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v[3] ^= m;
		rate_sipround(v);
		rate_sipround(v);
		v[0] ^= m;
	}
	tail = len - i;
	for (m = (uint64_t)len << 56, j = 0; j < tail; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	v[3] ^= m;
	rate_sipround(v);
	rate_sipround(v);
	v[0] ^= m;
	v[2] ^= 0xff;
	for (j = 0; j < 4; j++)
		rate_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

struct rate_table *
rate_table_new(unsigned window_ms, size_t max_keys)
{
	struct rate_table	*t;
	size_t			 n = 16;

	if (window_ms == 0 || max_keys == 0 || max_keys > RATE_KEYS_MAX)
		return NULL;
	while (n < max_keys)
		n *= 2;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	t->mask = n - 1;
	t->max_keys = max_keys;
	t->window_ms = window_ms;
	/* Without getrandom() the hash is still keyed, just guessable. */
	if (getrandom(t->sipkey, sizeof(t->sipkey), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->sipkey)) {
		t->sipkey[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
		t->sipkey[1] = (uint64_t)clock() ^ 0x9e3779b97f4a7c15ULL;
	}
	return t;
}

void
rate_table_free(struct rate_table *t)
{
	struct rate_entry	*e, *next;

	if (t == NULL)
		return;
	for (e = t->newest; e != NULL; e = next) {
		next = e->lnext;
		free(e);
	}
	pthread_mutex_destroy(&t->mu);
	free(t->buckets);
	free(t);
}

size_t
rate_table_count(const struct rate_table *t)
{
	return t->count;
}

static struct rate_entry *
rate_find(struct rate_table *t, const uint8_t *key, size_t klen, uint64_t h)
{
	struct rate_entry	*e;
	size_t			 stored;

	stored = klen < RATE_KEY_MAX ? klen : RATE_KEY_MAX;
	for (e = t->buckets[h & t->mask]; e != NULL; e = e->hnext)
		if (e->hash == h && e->klen == klen &&
		    (stored == 0 || memcmp(e->key, key, stored) == 0))
			return e;
	return NULL;
}

/* Take e off its hash chain and the LRU list; the count is the caller's. */
static void
rate_unlink(struct rate_table *t, struct rate_entry *e)
{
	struct rate_entry	**pp;

	for (pp = &t->buckets[e->hash & t->mask]; *pp != e; pp = &(*pp)->hnext)
		;
	*pp = e->hnext;
	if (e->lprev != NULL)
		e->lprev->lnext = e->lnext;
	else
		t->newest = e->lnext;
	if (e->lnext != NULL)
		e->lnext->lprev = e->lprev;
	else
		t->oldest = e->lprev;
	e->hnext = e->lprev = e->lnext = NULL;
}

/* Link e as the newest entry, on its hash chain. */
static void
rate_push(struct rate_table *t, struct rate_entry *e)
{
	size_t	 b = e->hash & t->mask;

	e->hnext = t->buckets[b];
	t->buckets[b] = e;
	e->lprev = NULL;
	e->lnext = t->newest;
	if (t->newest != NULL)
		t->newest->lprev = e;
	t->newest = e;
	if (t->oldest == NULL)
		t->oldest = e;
}

/*
 * A new entry; at max_keys the oldest one is recycled, so a flood of
 * fresh keys costs no memory beyond the bound (and no allocation at all
 * once the recycled entries are large enough).
 */
static struct rate_entry *
rate_insert(struct rate_table *t, const uint8_t *key, size_t klen,
    uint64_t h, uint64_t widx)
{
	struct rate_entry	*e = NULL, *ne;
	size_t			 stored;

	stored = klen < RATE_KEY_MAX ? klen : RATE_KEY_MAX;
	if (t->count >= t->max_keys) {
		e = t->oldest;
		rate_unlink(t, e);
		t->count--;
		if (e->kcap < stored) {
			if ((ne = realloc(e, sizeof(*e) + stored)) == NULL) {
				free(e);
				return NULL;
			}
			e = ne;
			e->kcap = stored;
		}
	} else {
		if ((e = malloc(sizeof(*e) + stored)) == NULL)
			return NULL;
		e->kcap = stored;
	}
	e->hash = h;
	e->klen = klen;
	if (stored > 0)
		memcpy(e->key, key, stored);
	e->widx = widx;
	e->cur = e->prev = 0;
	rate_push(t, e);
	t->count++;
	return e;
}

static unsigned
rate_sat_add(unsigned a, uint64_t b)
{
	return b >= (uint64_t)(UINT_MAX - a) ? UINT_MAX : a + (unsigned)b;
}

/* The estimate for e at now, without changing e. */
static unsigned
rate_estimate(const struct rate_table *t, const struct rate_entry *e,
    uint64_t now)
{
	uint64_t	w = now / t->window_ms;
	uint64_t	left = t->window_ms - (now - w * t->window_ms);

	if (w < e->widx)		/* clock went back: count it all */
		return rate_sat_add(e->cur, e->prev);
	if (w == e->widx)
		return rate_sat_add(e->cur, (uint64_t)e->prev * left /
		    t->window_ms);
	if (w == e->widx + 1)
		return (unsigned)((uint64_t)e->cur * left / t->window_ms);
	return 0;
}

static unsigned
rate_hit_locked(struct rate_table *t, const void *key, size_t klen,
    uint64_t now_ms, unsigned n)
{
	struct rate_entry	*e;
	uint64_t		 h, w = now_ms / t->window_ms;

	h = rate_hash(t, key, klen);
	if ((e = rate_find(t, key, klen, h)) == NULL) {
		/* No memory: nothing is counted, the estimate is n alone. */
		if ((e = rate_insert(t, key, klen, h, w)) == NULL)
			return n;
	} else if (t->newest != e) {
		rate_unlink(t, e);
		rate_push(t, e);
	}
	if (w == e->widx + 1) {
		e->prev = e->cur;
		e->cur = 0;
		e->widx = w;
	} else if (w > e->widx + 1) {
		e->prev = e->cur = 0;
		e->widx = w;
	}
	e->cur = rate_sat_add(e->cur, n);
	return rate_estimate(t, e, now_ms);
}

unsigned
rate_hit(struct rate_table *t, const void *key, size_t klen,
    uint64_t now_ms, unsigned n)
{
	unsigned	r;

	pthread_mutex_lock(&t->mu);
	r = rate_hit_locked(t, key, klen, now_ms, n);
	pthread_mutex_unlock(&t->mu);
	return r;
}

unsigned
rate_peek(struct rate_table *t, const void *key, size_t klen, uint64_t now_ms)
{
	struct rate_entry	*e;
	unsigned		 r = 0;

	pthread_mutex_lock(&t->mu);
	if ((e = rate_find(t, key, klen, rate_hash(t, key, klen))) != NULL)
		r = rate_estimate(t, e, now_ms);
	pthread_mutex_unlock(&t->mu);
	return r;
}
