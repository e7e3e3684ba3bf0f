/*
 * guard_mem.c - the harvest guard's per-host and per-net counters in
 * memory, for one node (guard_store.h): a keyed hash table bounded by
 * max_entries, two LRU lists so unmarked entries are evicted before
 * marked ones, two-bucket decaying counters, bounded distinct-name sets,
 * a host's last valid names and the end of its queue of delayed replies.
 * Never: policy or logging (guard.c); never sees a recipient name.
 * Untrusted: client addresses choose the hash chain, hence SipHash.
 */
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "guard_store.h"

#define GUARD_SET_MIN	4	/* first allocation of a distinct set */
#define GUARD_BUCKETS_MIN 64

/* cap 64-bit hashes, then cap 32-bit "last seen" times in seconds. */
struct guard_set {
	uint32_t	 n, cap;
	uint64_t	 h[];
};

/*
 * A ring of a host's last valid names: 16 bits of each hash (never 0; a
 * collision only forgoes counting a valid name) and the minute it was
 * last counted, modulo 2^16 (45 days; a window is at most a day).
 */
struct guard_vseen {
	uint16_t	 h[GUARD_VSEEN];
	uint16_t	 t[GUARD_VSEEN];
	uint8_t		 next;
};

struct guard_entry {
	struct guard_entry	*hnext;		/* hash chain */
	struct guard_entry	*lprev, *lnext;	/* plain or marked list */
	struct guard_set	*set;		/* NULL until an unknown name */
	struct guard_vseen	*vseen;		/* NULL until a valid name */
	uint64_t		 start_ms;	/* the current bucket began */
	uint64_t		 last_ms;
	uint64_t		 marked_until;	/* 0: on the plain list */
	uint64_t		 busy_until;	/* delayed replies queued until */
	uint32_t		 cur[GUARD_CTR_MAX];
	uint32_t		 old[GUARD_CTR_MAX];	/* the bucket before */
	struct guard_net	 net;
};

struct guard_lru {
	struct guard_entry	*head, *tail;	/* most recent first */
	size_t			 n;
	size_t			 nnets;		/* of n: nets, not hosts */
};

struct guard_mem {
	struct guard_hkey	 key;
	struct guard_entry	**b;
	size_t			 nb;		/* a power of two */
	size_t			 n, max;
	unsigned		 window_ms;
	struct guard_lru	 plain, marked;
	size_t			 evicted, bytes;
	uint64_t		 clock;		/* the latest now seen */
	guard_mem_fn		*evicted_fn;
	void			*evicted_arg;
};

static uint64_t
guard_rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void
guard_sipround(uint64_t v[4], int rounds)
{
	while (rounds-- > 0) {
		v[0] += v[1]; v[1] = guard_rotl(v[1], 13); v[1] ^= v[0];
		v[0] = guard_rotl(v[0], 32);
		v[2] += v[3]; v[3] = guard_rotl(v[3], 16); v[3] ^= v[2];
		v[0] += v[3]; v[3] = guard_rotl(v[3], 21); v[3] ^= v[0];
		v[2] += v[1]; v[1] = guard_rotl(v[1], 17); v[1] ^= v[2];
		v[2] = guard_rotl(v[2], 32);
	}
}

uint64_t
guard_hash(const struct guard_hkey *k, const void *vp, size_t len)
{
	const uint8_t	*p = vp;
	uint64_t	 v[4], m;
	size_t		 i, j;

	v[0] = k->k0 ^ 0x736f6d6570736575ULL;
	v[1] = k->k1 ^ 0x646f72616e646f6dULL;
	v[2] = k->k0 ^ 0x6c7967656e657261ULL;
	v[3] = k->k1 ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= len; i += 8) {
		for (m = 0, j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v[3] ^= m;
		guard_sipround(v, 2);
		v[0] ^= m;
	}
	for (m = (uint64_t)len << 56, j = 0; i + j < len; j++)
		m |= (uint64_t)p[i + j] << (8 * j);
	v[3] ^= m;
	guard_sipround(v, 2);
	v[0] ^= m;
	v[2] ^= 0xff;
	guard_sipround(v, 4);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Distinct sets: a name is alive while seen within the window. */

static uint32_t *
guard_set_times(struct guard_set *s)
{
	return (uint32_t *)(void *)(s->h + s->cap);
}

static bool
guard_set_alive(uint32_t t, uint32_t now_s, uint32_t win_s)
{
	return now_s < t || now_s - t < win_s;	/* clock went back: alive */
}

static unsigned
guard_set_count(struct guard_set *s, uint32_t now_s, uint32_t win_s)
{
	uint32_t	*t = guard_set_times(s);
	unsigned	 i, n = 0;

	for (i = 0; i < s->n; i++)
		n += guard_set_alive(t[i], now_s, win_s);
	return n;
}

static void
guard_set_purge(struct guard_set *s, uint32_t now_s, uint32_t win_s)
{
	uint32_t	*t = guard_set_times(s);
	unsigned	 i, o = 0;

	for (i = 0; i < s->n; i++)
		if (guard_set_alive(t[i], now_s, win_s)) {
			s->h[o] = s->h[i];
			t[o++] = t[i];
		}
	s->n = o;
}

static int
guard_set_grow(struct guard_mem *m, struct guard_set **sp, uint32_t cap)
{
	struct guard_set	*s = *sp;
	uint32_t		 ocap = s != NULL ? s->cap : 0;
	uint32_t		 n = s != NULL ? s->n : 0;

	s = realloc(s, sizeof(*s) + (size_t)cap * (sizeof(uint64_t) +
	    sizeof(uint32_t)));
	if (s == NULL)
		return -1;
	/* The times sat after ocap hashes; they now sit after cap. */
	memmove(s->h + cap, s->h + ocap, n * sizeof(uint32_t));
	s->n = n;
	s->cap = cap;
	m->bytes += (size_t)(cap - ocap) * (sizeof(uint64_t) +
	    sizeof(uint32_t)) + (ocap == 0 ? sizeof(*s) : 0);
	*sp = s;
	return 0;
}

/* Seen again: refreshed, never counted twice.  Full: the oldest goes. */
static int
guard_set_add(struct guard_mem *m, struct guard_set **sp, uint64_t h,
    uint32_t now_s, uint32_t win_s, unsigned max)
{
	struct guard_set	*s = *sp;
	uint32_t		*t, cap;
	unsigned		 i, o;

	if (max > GUARD_SET_MAX)
		max = GUARD_SET_MAX;
	if (s != NULL) {
		for (i = 0, t = guard_set_times(s); i < s->n; i++)
			if (s->h[i] == h) {
				t[i] = now_s;
				return 0;
			}
		if (s->n == s->cap)
			guard_set_purge(s, now_s, win_s);
	}
	if (s == NULL || (s->n == s->cap && s->cap < max)) {
		cap = s == NULL ? GUARD_SET_MIN : s->cap * 2;
		cap = cap > max ? max : cap;
		if (guard_set_grow(m, sp, cap < 1 ? 1 : cap) == -1 && s == NULL)
			return -1;
		s = *sp;
	}
	t = guard_set_times(s);
	if (s->n < s->cap) {
		s->h[s->n] = h;
		t[s->n++] = now_s;
		return 0;
	}
	for (i = 1, o = 0; i < s->n; i++)
		if (t[i] < t[o])
			o = i;
	s->h[o] = h;
	t[o] = now_s;
	return 0;
}

/* Two-bucket sliding window: the bucket before weighs what is left of
 * it inside the window, so a count fades out over one more window. */
static void
guard_entry_roll(struct guard_entry *e, uint64_t now, unsigned w)
{
	uint64_t	el;

	if (now <= e->start_ms || (el = now - e->start_ms) < w)
		return;
	if (el < 2 * (uint64_t)w) {
		memcpy(e->old, e->cur, sizeof(e->old));
		e->start_ms += w;
	} else {
		memset(e->old, 0, sizeof(e->old));
		e->start_ms = now;
	}
	memset(e->cur, 0, sizeof(e->cur));
}

static void
guard_entry_counts(struct guard_mem *m, struct guard_entry *e, uint64_t now,
    struct guard_counts *c)
{
	unsigned	w = m->window_ms;
	uint64_t	el, v;
	uint32_t	now_s = (uint32_t)(now / 1000);
	int		i;

	guard_entry_roll(e, now, w);
	el = now > e->start_ms ? now - e->start_ms : 0;
	for (i = 0; i < GUARD_CTR_MAX; i++) {
		v = e->cur[i] + (uint64_t)e->old[i] * (w - el) / w;
		c->ctr[i] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	}
	c->distinct = e->set == NULL ? 0 :
	    guard_set_count(e->set, now_s, (w + 999) / 1000);
	c->marked_until = e->marked_until;
	c->last_ms = e->last_ms;
	c->busy_until = e->busy_until;
}

/* A host (/32, /64) rather than its net (/24, /48). */
static bool
guard_entry_is_host(const struct guard_entry *e)
{
	return e->net.prefix == (e->net.family == AF_INET ? 32 : 64);
}

static void
guard_lru_unlink(struct guard_lru *l, struct guard_entry *e)
{
	if (e->lprev != NULL)
		e->lprev->lnext = e->lnext;
	else
		l->head = e->lnext;
	if (e->lnext != NULL)
		e->lnext->lprev = e->lprev;
	else
		l->tail = e->lprev;
	e->lprev = e->lnext = NULL;
	l->n--;
	l->nnets -= !guard_entry_is_host(e);
}

static void
guard_lru_push(struct guard_lru *l, struct guard_entry *e)
{
	e->lprev = NULL;
	e->lnext = l->head;
	if (l->head != NULL)
		l->head->lprev = e;
	else
		l->tail = e;
	l->head = e;
	l->n++;
	l->nnets += !guard_entry_is_host(e);
}

static struct guard_lru *
guard_entry_lru(struct guard_mem *m, const struct guard_entry *e)
{
	return e->marked_until != 0 ? &m->marked : &m->plain;
}

static void
guard_entry_touch(struct guard_mem *m, struct guard_entry *e, uint64_t now)
{
	struct guard_lru	*l = guard_entry_lru(m, e);

	if (now > e->last_ms)
		e->last_ms = now;
	if (now > m->clock)
		m->clock = now;
	guard_lru_unlink(l, e);
	guard_lru_push(l, e);
}

static size_t
guard_mem_bucket(const struct guard_mem *m, const struct guard_net *net)
{
	return (size_t)guard_hash(&m->key, net, sizeof(*net)) & (m->nb - 1);
}

/* The link that points at net's entry, or at the end of its chain. */
static struct guard_entry **
guard_mem_slot(struct guard_mem *m, const struct guard_net *net)
{
	struct guard_entry	**pp = &m->b[guard_mem_bucket(m, net)];

	while (*pp != NULL && memcmp(&(*pp)->net, net, sizeof(*net)) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void
guard_mem_remove(struct guard_mem *m, struct guard_entry *e)
{
	struct guard_entry	**pp = guard_mem_slot(m, &e->net);

	*pp = e->hnext;
	guard_lru_unlink(guard_entry_lru(m, e), e);
	if (e->set != NULL)
		m->bytes -= sizeof(*e->set) + (size_t)e->set->cap *
		    (sizeof(uint64_t) + sizeof(uint32_t));
	if (e->vseen != NULL)
		m->bytes -= sizeof(*e->vseen);
	m->bytes -= sizeof(*e);
	free(e->set);
	free(e->vseen);
	free(e);
	m->n--;
}

/* The least recently seen unmarked entry goes; a marked one only when
 * every other entry is marked (or was made this instant: a host's new
 * entry must not go to make room for its net's). */
static int
guard_mem_evict(struct guard_mem *m, uint64_t now)
{
	struct guard_entry	*e = m->plain.tail;
	struct guard_counts	 c;

	if ((e == NULL || e->last_ms >= now) && m->marked.tail != NULL)
		e = m->marked.tail;
	if (e == NULL)
		return -1;
	if (e->marked_until != 0 && m->evicted_fn != NULL) {
		guard_entry_counts(m, e, now, &c);
		m->evicted_fn(m->evicted_arg, &e->net, &c);
	}
	guard_mem_remove(m, e);
	m->evicted++;
	return 0;
}

static void
guard_mem_rehash(struct guard_mem *m, size_t nb)
{
	struct guard_entry	**ob = m->b, **nbv, *e, *next;
	size_t			  onb = m->nb, i;

	if ((nbv = calloc(nb, sizeof(*nbv))) == NULL)
		return;			/* longer chains, still correct */
	m->b = nbv;
	m->nb = nb;
	for (i = 0; i < onb; i++)
		for (e = ob[i]; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = m->b[guard_mem_bucket(m, &e->net)];
			m->b[guard_mem_bucket(m, &e->net)] = e;
		}
	m->bytes += (nb - onb) * sizeof(*nbv);
	free(ob);
}

static struct guard_entry *
guard_mem_create(struct guard_mem *m, const struct guard_net *net,
    uint64_t now)
{
	struct guard_entry	*e;
	size_t			 i;

	while (m->n >= m->max)
		if (guard_mem_evict(m, now) == -1)
			break;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	e->net = *net;
	e->start_ms = e->last_ms = now;
	if (m->n >= m->nb)
		guard_mem_rehash(m, m->nb * 2);
	i = guard_mem_bucket(m, net);
	e->hnext = m->b[i];
	m->b[i] = e;
	guard_lru_push(&m->plain, e);
	m->n++;
	m->bytes += sizeof(*e);
	return e;
}

struct guard_mem *
guard_mem_new(size_t max_entries, unsigned window_ms,
    const struct guard_hkey *key, guard_mem_fn *evicted, void *arg)
{
	struct guard_mem	*m;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return NULL;
	if ((m->b = calloc(GUARD_BUCKETS_MIN, sizeof(*m->b))) == NULL) {
		free(m);
		return NULL;
	}
	m->nb = GUARD_BUCKETS_MIN;
	m->bytes = sizeof(*m) + m->nb * sizeof(*m->b);
	m->key = *key;
	m->evicted_fn = evicted;
	m->evicted_arg = arg;
	guard_mem_set_limits(m, max_entries, window_ms);
	return m;
}

void
guard_mem_free(struct guard_mem *m)
{
	if (m == NULL)
		return;
	while (m->plain.head != NULL)
		guard_mem_remove(m, m->plain.head);
	while (m->marked.head != NULL)
		guard_mem_remove(m, m->marked.head);
	free(m->b);
	free(m);
}

void
guard_mem_set_limits(struct guard_mem *m, size_t max_entries,
    unsigned window_ms)
{
	m->max = max_entries < 2 ? 2 : max_entries;	/* a host and its net */
	m->window_ms = window_ms < 1 ? 1 : window_ms;
	while (m->n > m->max)			/* nothing made this instant */
		if (guard_mem_evict(m, m->clock + 1) == -1)
			break;
}

bool
guard_mem_read(struct guard_mem *m, const struct guard_net *net,
    uint64_t now, struct guard_counts *c)
{
	struct guard_entry	*e;

	if ((e = *guard_mem_slot(m, net)) == NULL) {
		memset(c, 0, sizeof(*c));
		return false;
	}
	guard_entry_touch(m, e, now);
	guard_entry_counts(m, e, now, c);
	return true;
}

/* The net's entry, made if it has none; touched.  NULL out of memory. */
static struct guard_entry *
guard_mem_get(struct guard_mem *m, const struct guard_net *net, uint64_t now)
{
	struct guard_entry	*e;

	if ((e = *guard_mem_slot(m, net)) == NULL &&
	    (e = guard_mem_create(m, net, now)) == NULL)
		return NULL;
	guard_entry_touch(m, e, now);
	return e;
}

int
guard_mem_add(struct guard_mem *m, const struct guard_net *net, uint64_t now,
    enum guard_ctr ctr, unsigned q, const uint64_t *name, unsigned set_max,
    struct guard_counts *c)
{
	struct guard_entry	*e;
	uint64_t		 v;
	int			 rc = 0;

	if ((e = guard_mem_get(m, net, now)) == NULL) {
		memset(c, 0, sizeof(*c));
		return -1;
	}
	guard_entry_roll(e, now, m->window_ms);
	v = (uint64_t)e->cur[ctr] + q;
	e->cur[ctr] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	if (name != NULL)
		rc = guard_set_add(m, &e->set, *name, (uint32_t)(now / 1000),
		    (m->window_ms + 999) / 1000, set_max);
	guard_entry_counts(m, e, now, c);
	return rc;
}

/*
 * Seen less than a window ago: not new.  Seen before that: new again, so
 * a sender writing to the same few people all day keeps them counted.
 * Full: the oldest remembered name goes.
 */
int
guard_mem_valid_new(struct guard_mem *m, const struct guard_net *net,
    uint64_t now, uint64_t name)
{
	struct guard_entry	*e;
	struct guard_vseen	*v;
	uint16_t		 h = (uint16_t)(name ^ (name >> 16) ^
				    (name >> 32) ^ (name >> 48)) | 1;
	uint16_t		 now_m = (uint16_t)(now / 60000);
	unsigned		 win_m = (m->window_ms + 59999) / 60000;
	unsigned		 i;

	if ((e = guard_mem_get(m, net, now)) == NULL)
		return -1;
	if ((v = e->vseen) == NULL) {
		if ((v = calloc(1, sizeof(*v))) == NULL)
			return -1;
		e->vseen = v;
		m->bytes += sizeof(*v);
	}
	for (i = 0; i < GUARD_VSEEN; i++)
		if (v->h[i] == h) {
			if ((uint16_t)(now_m - v->t[i]) < win_m)
				return 0;
			v->t[i] = now_m;
			return 1;
		}
	i = v->next++ % GUARD_VSEEN;
	v->h[i] = h;
	v->t[i] = now_m;
	return 1;
}

int
guard_mem_reserve(struct guard_mem *m, const struct guard_net *net,
    uint64_t now, uint64_t until)
{
	struct guard_entry	*e;

	if ((e = guard_mem_get(m, net, now)) == NULL)
		return -1;
	if (until > e->busy_until)
		e->busy_until = until;
	return 0;
}

int
guard_mem_mark(struct guard_mem *m, const struct guard_net *net,
    uint64_t until)
{
	struct guard_entry	*e;

	if ((e = *guard_mem_slot(m, net)) == NULL)
		return -1;
	guard_lru_unlink(guard_entry_lru(m, e), e);
	e->marked_until = until;
	guard_lru_push(guard_entry_lru(m, e), e);
	return 0;
}

/* Two networks overlap when they agree on the shorter prefix. */
static bool
guard_net_overlaps(const struct guard_net *n, const struct cidr *c)
{
	unsigned	p = n->prefix < c->prefix ? n->prefix : c->prefix;
	unsigned	full = p / 8, rest = p % 8;

	if (n->family != c->family || memcmp(n->addr, c->addr, full) != 0)
		return false;
	return rest == 0 || ((n->addr[full] ^ c->addr[full]) &
	    (uint8_t)(0xffu << (8 - rest))) == 0;
}

static size_t
guard_mem_forget_list(struct guard_mem *m, struct guard_lru *l,
    const struct cidr *cidr, uint64_t now, guard_mem_fn *fn, void *arg)
{
	struct guard_entry	*e, *next;
	struct guard_counts	 c;
	size_t			 n = 0;

	for (e = l->head; e != NULL; e = next) {
		next = e->lnext;
		if (!guard_net_overlaps(&e->net, cidr))
			continue;
		if (fn != NULL) {
			guard_entry_counts(m, e, now, &c);
			fn(arg, &e->net, &c);
		}
		guard_mem_remove(m, e);
		n++;
	}
	return n;
}

size_t
guard_mem_forget(struct guard_mem *m, const struct cidr *cidr, uint64_t now,
    guard_mem_fn *fn, void *arg)
{
	return guard_mem_forget_list(m, &m->marked, cidr, now, fn, arg) +
	    guard_mem_forget_list(m, &m->plain, cidr, now, fn, arg);
}

void
guard_mem_walk(struct guard_mem *m, uint64_t now, guard_mem_fn *fn,
    void *arg)
{
	struct guard_lru	*lists[2] = { &m->marked, &m->plain };
	struct guard_entry	*e;
	struct guard_counts	 c;
	int			 i;

	for (i = 0; i < 2; i++)
		for (e = lists[i]->head; e != NULL; e = e->lnext) {
			guard_entry_counts(m, e, now, &c);
			fn(arg, &e->net, &c);
		}
}

void
guard_mem_expire(struct guard_mem *m, uint64_t now, guard_mem_fn *fn,
    void *arg)
{
	struct guard_entry	*e, *next;
	struct guard_counts	 c;
	uint64_t		 stale = 2 * (uint64_t)m->window_ms;

	for (e = m->marked.head; e != NULL; e = next) {
		next = e->lnext;
		if (e->marked_until > now)
			continue;
		guard_entry_counts(m, e, now, &c);
		guard_lru_unlink(&m->marked, e);
		e->marked_until = 0;
		guard_lru_push(&m->plain, e);
		if (fn != NULL)
			fn(arg, &e->net, &c);
	}
	/* Untouched for two windows: every count and name has decayed. */
	while ((e = m->plain.tail) != NULL && now >= e->last_ms + stale)
		guard_mem_remove(m, e);
}

void
guard_mem_stats(const struct guard_mem *m, size_t *entries, size_t *marked,
    size_t *marked_nets, size_t *evicted, size_t *bytes)
{
	*entries = m->n;
	*marked = m->marked.n;
	*marked_nets = m->marked.nnets;
	*evicted = m->evicted;
	*bytes = m->bytes;
}
