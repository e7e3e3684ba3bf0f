/*
 * redis_url.h - the shared_state key's value: redis://HOST:PORT[/DB] or
 * redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME.
 * Pure and bounded: no I/O, no allocation, no globals (STYLE R6).
 * HOST is an IPv4 address, [IPv6] or a DNS name; PORT defaults to 6379
 * (26379 for sentinels).  Untrusted: config text.
 */
#ifndef MXGATE_REDIS_URL_H
#define MXGATE_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_URL_MAX		1024	/* the whole value */
#define REDIS_URL_HOSTS_MAX	8	/* sentinels listed */
#define REDIS_URL_HOST_MAX	255	/* RFC 1035 2.3.4 */
#define REDIS_URL_NAME_MAX	64	/* a Sentinel master name */
#define REDIS_URL_DB_MAX	9999

enum redis_url_kind {
	REDIS_URL_DIRECT,	/* redis:// */
	REDIS_URL_SENTINEL,	/* redis-sentinel:// */
};

struct redis_url_host {
	char		 host[REDIS_URL_HOST_MAX + 1];	/* no brackets */
	uint16_t	 port;
};

struct redis_url {
	enum redis_url_kind	 kind;
	struct redis_url_host	 hosts[REDIS_URL_HOSTS_MAX];
	size_t			 nhosts;	/* 1 for redis:// */
	unsigned		 db;		/* redis:// only */
	char			 master[REDIS_URL_NAME_MAX + 1];
};

/* 0, or -1 with *why (static text) saying what is wrong. */
int	redis_url_parse(const char *, size_t len, struct redis_url *,
	    const char **why);

#endif
