/*
 * guard_dom.c - per-domain rates of unknown recipients over all clients,
 * for the distributed-harvest switch (guard_store.h): a one-minute
 * two-bucket window per domain and a hot flag with hysteresis.
 * Never: policy or logging (guard.c decides and logs through fn).
 * Untrusted: none; the domains counted are ours (relay control came
 * first), and at most GUARD_DOM_MAX of them are kept anyway.
 */
#include <stdlib.h>
#include <string.h>

#include "guard_store.h"

#define GUARD_DOM_BUCKETS 256

struct guard_dom_entry {
	struct guard_dom_entry	*next;
	uint64_t		 start_ms;	/* the current bucket began */
	uint32_t		 cur, old;	/* unknown recipients */
	bool			 hot;
	uint8_t			 len;
	char			 name[];	/* lower case, not terminated */
};

struct guard_dom {
	struct guard_hkey	 key;
	struct guard_dom_entry	*b[GUARD_DOM_BUCKETS];
	size_t			 n, nhot;
};

struct guard_dom *
guard_dom_new(const struct guard_hkey *key)
{
	struct guard_dom	*d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->key = *key;
	return d;
}

void
guard_dom_free(struct guard_dom *d)
{
	struct guard_dom_entry	*e, *next;
	size_t			 i;

	if (d == NULL)
		return;
	for (i = 0; i < GUARD_DOM_BUCKETS; i++)
		for (e = d->b[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(d);
}

/* Domain names compare without ASCII case (RFC 5321 2.4). */
static size_t
guard_dom_fold(const char *name, size_t len, char *out)
{
	size_t	i;

	for (i = 0; i < len; i++)
		out[i] = name[i] >= 'A' && name[i] <= 'Z' ?
		    (char)(name[i] - 'A' + 'a') : name[i];
	return len;
}

static unsigned
guard_dom_rate(struct guard_dom_entry *e, uint64_t now)
{
	const uint64_t	w = GUARD_DOM_WINDOW_MS;
	uint64_t	el = now > e->start_ms ? now - e->start_ms : 0;

	if (el >= w) {
		e->old = el < 2 * w ? e->cur : 0;
		e->cur = 0;
		e->start_ms = el < 2 * w ? e->start_ms + w : now;
		el = now > e->start_ms ? now - e->start_ms : 0;
	}
	return (unsigned)(e->cur + (uint64_t)e->old * (w - el) / w);
}

static void
guard_dom_switch(struct guard_dom *d, struct guard_dom_entry *e,
    unsigned rate, unsigned on_rate, unsigned off_rate, guard_dom_fn *fn,
    void *arg)
{
	bool	hot = e->hot;

	if (!hot && on_rate > 0 && rate > on_rate)
		hot = true;
	else if (hot && (on_rate == 0 || rate <= off_rate))
		hot = false;
	if (hot == e->hot)
		return;
	e->hot = hot;
	if (hot)
		d->nhot++;
	else
		d->nhot--;
	if (fn != NULL)
		fn(arg, e->name, e->len, rate, hot);
}

bool
guard_dom_update(struct guard_dom *d, const char *name, size_t len,
    uint64_t now, unsigned n, unsigned on_rate, unsigned off_rate,
    guard_dom_fn *fn, void *arg)
{
	char			 key[GUARD_DOM_NAME_MAX];
	struct guard_dom_entry	*e;
	size_t			 i;
	uint64_t		 v;

	if (len == 0 || len > GUARD_DOM_NAME_MAX)
		return false;
	guard_dom_fold(name, len, key);
	i = (size_t)guard_hash(&d->key, key, len) % GUARD_DOM_BUCKETS;
	for (e = d->b[i]; e != NULL; e = e->next)
		if (e->len == len && memcmp(e->name, key, len) == 0)
			break;
	if (e == NULL) {
		if (n == 0 || d->n >= GUARD_DOM_MAX ||
		    (e = calloc(1, sizeof(*e) + len)) == NULL)
			return false;
		memcpy(e->name, key, len);
		e->len = (uint8_t)len;
		e->start_ms = now;
		e->next = d->b[i];
		d->b[i] = e;
		d->n++;
	}
	(void)guard_dom_rate(e, now);
	v = (uint64_t)e->cur + n;
	e->cur = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
	guard_dom_switch(d, e, guard_dom_rate(e, now), on_rate, off_rate, fn,
	    arg);
	return e->hot;
}

void
guard_dom_tick(struct guard_dom *d, uint64_t now, unsigned on_rate,
    unsigned off_rate, guard_dom_fn *fn, void *arg)
{
	struct guard_dom_entry	**pp, *e;
	unsigned		  rate;
	size_t			  i;

	for (i = 0; i < GUARD_DOM_BUCKETS; i++)
		for (pp = &d->b[i]; (e = *pp) != NULL; ) {
			rate = guard_dom_rate(e, now);
			guard_dom_switch(d, e, rate, on_rate, off_rate, fn,
			    arg);
			if (rate == 0 && !e->hot) {
				*pp = e->next;	/* idle: forget it */
				free(e);
				d->n--;
			} else
				pp = &e->next;
		}
}

size_t
guard_dom_hot_count(const struct guard_dom *d)
{
	return d->nhot;
}
