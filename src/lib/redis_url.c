/*
 * redis_url.c - parse the shared_state URL (see redis_url.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <string.h>

#include "redis_url.h"

#define RU_DIRECT	"redis://"
#define RU_SENTINEL	"redis-sentinel://"
#define RU_TLS		"rediss://"

static int
ru_fail(const char **why, const char *msg)
{
	*why = msg;
	return -1;
}

static int
ru_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* Decimal 1..max from p[0..len); -1 if not. */
static long
ru_number(const char *p, size_t len, long max)
{
	long	v = 0;
	size_t	i;

	if (len == 0 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v > max ? -1 : v;
}

/* One HOST[:PORT] in p[0..len). */
static int
ru_host(const char *p, size_t len, uint16_t defport,
    struct redis_url_host *h, const char **why)
{
	unsigned char	a[sizeof(struct in6_addr)];
	const char	*colon;
	size_t		 hl, i;
	long		 port = defport;

	if (len > 0 && p[0] == '[') {
		colon = memchr(p, ']', len);
		if (colon == NULL)
			return ru_fail(why, "an IPv6 address lacks its ']'");
		hl = (size_t)(colon - p) - 1;
		if (hl == 0 || hl > REDIS_URL_HOST_MAX)
			return ru_fail(why, "bad IPv6 address");
		memcpy(h->host, p + 1, hl);
		h->host[hl] = '\0';
		if (inet_pton(AF_INET6, h->host, a) != 1)
			return ru_fail(why, "bad IPv6 address");
		colon++;
		if (colon < p + len && *colon != ':')
			return ru_fail(why, "junk after ']'");
	} else {
		colon = memchr(p, ':', len);
		hl = colon != NULL ? (size_t)(colon - p) : len;
		if (hl == 0 || hl > REDIS_URL_HOST_MAX)
			return ru_fail(why, "missing or overlong host");
		for (i = 0; i < hl; i++)
			if (!ru_name_char(p[i]))
				return ru_fail(why, "bad character in host");
		memcpy(h->host, p, hl);
		h->host[hl] = '\0';
		if (colon == NULL)
			colon = p + len;
	}
	if (colon < p + len) {
		colon++;
		port = ru_number(colon, (size_t)(p + len - colon), 65535);
		if (port <= 0)
			return ru_fail(why, "port must be 1 to 65535");
	}
	h->port = (uint16_t)port;
	return 0;
}

static int
ru_direct(const char *p, size_t len, struct redis_url *u, const char **why)
{
	const char	*slash = memchr(p, '/', len);
	size_t		 hl = slash != NULL ? (size_t)(slash - p) : len;
	long		 db = 0;

	if (ru_host(p, hl, 6379, &u->hosts[0], why) == -1)
		return -1;
	u->nhosts = 1;
	if (slash != NULL && slash + 1 < p + len) {
		db = ru_number(slash + 1, (size_t)(p + len - slash - 1),
		    REDIS_URL_DB_MAX);
		if (db < 0)
			return ru_fail(why, "database must be 0 to 9999");
	}
	u->db = (unsigned)db;
	return 0;
}

static int
ru_sentinel(const char *p, size_t len, struct redis_url *u, const char **why)
{
	const char	*slash = memchr(p, '/', len), *q, *end, *comma;
	size_t		 nl, i;

	if (slash == NULL || slash + 1 == p + len)
		return ru_fail(why, "redis-sentinel:// needs /MASTERNAME");
	nl = (size_t)(p + len - slash - 1);
	if (nl > REDIS_URL_NAME_MAX)
		return ru_fail(why, "master name longer than 64");
	for (i = 0; i < nl; i++)
		if (!ru_name_char(slash[1 + i]))
			return ru_fail(why, "bad character in master name");
	memcpy(u->master, slash + 1, nl);
	u->master[nl] = '\0';
	for (q = p, end = slash; q <= end; q = comma + 1) {
		comma = memchr(q, ',', (size_t)(end - q));
		if (comma == NULL)
			comma = end;
		if (u->nhosts == REDIS_URL_HOSTS_MAX)
			return ru_fail(why, "more than 8 sentinels");
		if (ru_host(q, (size_t)(comma - q), 26379,
		    &u->hosts[u->nhosts], why) == -1)
			return -1;
		u->nhosts++;
		if (comma == end)
			break;
	}
	return 0;
}

int
redis_url_parse(const char *s, size_t len, struct redis_url *u,
    const char **why)
{
	memset(u, 0, sizeof(*u));
	*why = "";
	if (len > REDIS_URL_MAX)
		return ru_fail(why, "longer than 1024 characters");
	if (len >= sizeof(RU_SENTINEL) - 1 &&
	    memcmp(s, RU_SENTINEL, sizeof(RU_SENTINEL) - 1) == 0) {
		u->kind = REDIS_URL_SENTINEL;
		return ru_sentinel(s + sizeof(RU_SENTINEL) - 1,
		    len - (sizeof(RU_SENTINEL) - 1), u, why);
	}
	if (len >= sizeof(RU_DIRECT) - 1 &&
	    memcmp(s, RU_DIRECT, sizeof(RU_DIRECT) - 1) == 0) {
		u->kind = REDIS_URL_DIRECT;
		return ru_direct(s + sizeof(RU_DIRECT) - 1,
		    len - (sizeof(RU_DIRECT) - 1), u, why);
	}
	if (len >= sizeof(RU_TLS) - 1 &&
	    memcmp(s, RU_TLS, sizeof(RU_TLS) - 1) == 0)
		return ru_fail(why, "rediss:// (TLS) is not supported yet");
	return ru_fail(why, "expected redis://HOST:PORT[/DB] or "
	    "redis-sentinel://HOST:PORT[,...]/MASTER");
}
