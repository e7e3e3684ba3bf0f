/*
 * climit.c - per-client connection counts and rates (see climit.h).
 * A chained hash of the clients that have sessions open, plus a bounded
 * rate table (lib/rate.c) for new sessions a minute.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/rate.h"
#include "climit.h"

#define CLIMIT_BUCKETS		4096	/* power of two */
#define CLIMIT_RATE_KEYS	100000	/* clients whose rate is tracked */
#define CLIMIT_RATE_WINDOW_MS	60000

struct climit_ent {
	struct climit_ent	*next;
	uint8_t			 key[17];	/* family byte + address */
	unsigned		 count;
};

struct climit {
	struct climit_ent	*b[CLIMIT_BUCKETS];
	struct rate_table	*rate;
	size_t			 n;
	pthread_mutex_t		 mu;
};

struct climit *
climit_new(void)
{
	struct climit	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->rate = rate_table_new(CLIMIT_RATE_WINDOW_MS,
	    CLIMIT_RATE_KEYS)) == NULL) {
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void
climit_free(struct climit *c)
{
	struct climit_ent	*e;
	size_t			 i;

	if (c == NULL)
		return;
	for (i = 0; i < CLIMIT_BUCKETS; i++)
		while ((e = c->b[i]) != NULL) {
			c->b[i] = e->next;
			free(e);
		}
	rate_table_free(c->rate);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* The client's key: IPv4 address (also when mapped), or an IPv6 /64. */
static void
climit_key(const struct sockaddr *sa, uint8_t key[17])
{
	const struct sockaddr_in6	*s6 = (const void *)sa;
	const struct sockaddr_in	*s4 = (const void *)sa;

	memset(key, 0, 17);
	if (sa->sa_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		key[0] = 6;
		memcpy(key + 1, &s6->sin6_addr, 8);
	} else if (sa->sa_family == AF_INET6) {
		key[0] = 4;
		memcpy(key + 1, &s6->sin6_addr.s6_addr[12], 4);
	} else if (sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
	}
}

static struct climit_ent **
climit_find(struct climit *c, const uint8_t key[17])
{
	struct climit_ent	**pp;
	uint64_t		  h = 1469598103934665603ULL;
	size_t			  i;

	for (i = 0; i < 17; i++)
		h = (h ^ key[i]) * 1099511628211ULL;
	pp = &c->b[h & (CLIMIT_BUCKETS - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (memcmp((*pp)->key, key, 17) == 0)
			break;
	return pp;
}

static enum climit_verdict
climit_admit_locked(struct climit *c, const struct sockaddr *sa,
    unsigned max_conc, unsigned max_rate, uint64_t now_ms)
{
	struct climit_ent	**pp, *e;
	uint8_t			  key[17];

	climit_key(sa, key);
	pp = climit_find(c, key);
	if (*pp != NULL && (*pp)->count >= max_conc)
		return CLIMIT_TOO_MANY;
	if (max_rate > 0 && rate_hit(c->rate, key, sizeof(key), now_ms, 1) >
	    max_rate)
		return CLIMIT_TOO_FAST;
	if ((e = *pp) == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return CLIMIT_TOO_MANY;	/* out of memory: refuse */
		memcpy(e->key, key, sizeof(key));
		*pp = e;
		c->n++;
	}
	e->count++;
	return CLIMIT_OK;
}

enum climit_verdict
climit_admit(struct climit *c, const struct sockaddr *sa, unsigned max_conc,
    unsigned max_rate, uint64_t now_ms)
{
	enum climit_verdict	v;

	pthread_mutex_lock(&c->mu);
	v = climit_admit_locked(c, sa, max_conc, max_rate, now_ms);
	pthread_mutex_unlock(&c->mu);
	return v;
}

void
climit_release(struct climit *c, const struct sockaddr *sa)
{
	struct climit_ent	**pp, *e;
	uint8_t			  key[17];

	climit_key(sa, key);
	pthread_mutex_lock(&c->mu);
	if ((e = *(pp = climit_find(c, key))) == NULL)
		panic("climit_release: client not counted");
	if (--e->count == 0) {
		*pp = e->next;
		free(e);
		c->n--;
	}
	pthread_mutex_unlock(&c->mu);
}

size_t
climit_clients(struct climit *c)
{
	size_t	n;

	pthread_mutex_lock(&c->mu);
	n = c->n;
	pthread_mutex_unlock(&c->mu);
	return n;
}

const char *
climit_verdict_name(enum climit_verdict v)
{
	static const char *const names[] = {
		[CLIMIT_OK] = "ok",
		[CLIMIT_TOO_MANY] = "too_many_connections",
		[CLIMIT_TOO_FAST] = "connection_rate",
	};

	return names[v];
}
