/*
 * dnsbl.h - client reputation from DNS lists (issue 14, part 4): DNSBL
 * and DNSWL at connect, in postscreen's dnsbl_sites syntax.
 * Owns: the list parser (site[=filter][*weight]), query names (RFC 5782
 * 2.1 reversed IPv4 octets, 2.4 IPv6 nibbles), answer matching against a
 * filter, the score; the per-loop answer cache with in-flight sharing and
 * the per-client check over a resolver table.
 * Never: sockets, timers, globals, blocking; the caller owns the deadline
 * (dnsbl_check_expire); the cache reads the monotonic clock.
 * Untrusted: every DNS answer; config values (bounded, checked).
 * An answer in 127.255.255.0/24 (list error codes, e.g. "query refused")
 * or outside 127.0.0.0/8 is never a listing: it is "unknown" plus an
 * alert (RFC 5782 2.3 keeps 127.0.0.0/8 for list codes).
 */
#ifndef MXGATE_DNSBL_H
#define MXGATE_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../dns/dns.h"

#define DNSBL_SITES_MAX		16	/* entries in dnsbl_sites */
#define DNSBL_TEXT_MAX		4096	/* bytes of the dnsbl_sites value */
#define DNSBL_ZONE_MAX		189	/* a list's domain: 253 - 64 (the
					 * IPv6 nibbles and their dots) */
#define DNSBL_QNAME_MAX		253	/* RFC 1035 2.3.4 */
#define DNSBL_WEIGHT_MAX	100	/* |weight| */
#define DNSBL_ADDRS_MAX		4	/* A records kept per answer */
#define DNSBL_TTL_MIN_S		60	/* cache clamp (an NXDOMAIN's TTL
					 * is not known: it gets the min) */
#define DNSBL_TTL_MAX_S		3600
#define DNSBL_ERROR_TTL_S	10	/* a failed list is not asked again
					 * for this long (no wait either) */
#define DNSBL_CACHE_WAYS	8
#define DNSBL_CACHE_DEFAULT	16384	/* entries per loop (~1.3 MB) */

/* One entry of dnsbl_sites: a list, its answer filter and weight. */
struct dnsbl_site {
	char		 zone[DNSBL_ZONE_MAX + 1];	/* lower case */
	size_t		 zi;		/* index of its zone in zones[] */
	bool		 filtered;	/* a filter was given */
	uint8_t		 oct[4][32];	/* filter: allowed values per octet,
					 * bit v of byte v / 8 */
	int		 weight;	/* default 1; < 0: an allowlist */
};

struct dnsbl_list {
	struct dnsbl_site site[DNSBL_SITES_MAX];
	size_t		 n;
	/* distinct zones, each queried once whatever its entries */
	const char	*zones[DNSBL_SITES_MAX];	/* into site[].zone */
	size_t		 nzones;
};

/*
 * Parse a dnsbl_sites value: entries separated by commas and/or blanks,
 * each "zone[=a.b.c.d][*weight]", an octet of the filter being N or
 * [N..M;N;...] (0..255).  An empty value is an empty list.  0, or -1 with
 * why filled (the caller adds the key and line).
 */
int	dnsbl_list_parse(const char *s, size_t len, struct dnsbl_list *,
	    char *why, size_t whylen);

/*
 * The query name of ip (family AF_INET: 4 bytes; AF_INET6: 16; a v4-
 * mapped IPv6 address is asked as IPv4) in zone: length, or -1 if it
 * does not fit out (at most DNSBL_QNAME_MAX + 1).
 */
int	dnsbl_query_name(int family, const uint8_t ip[16], const char *zone,
	    char *out, size_t outlen);

/* What an A record in a list's answer means. */
enum dnsbl_code {
	DNSBL_CODE_LISTING,	/* 127.0.0.0/8 but 127.255.255.0/24 */
	DNSBL_CODE_ERROR,	/* 127.255.255.0/24: the list's error code */
	DNSBL_CODE_BOGUS,	/* outside 127.0.0.0/8: never a listing */
};
enum dnsbl_code dnsbl_code_class(const uint8_t a[4]);
/* A listing code that the entry's filter (if any) admits. */
bool	dnsbl_site_match(const struct dnsbl_site *, const uint8_t a[4]);

/* One zone's answer for one client. */
enum dnsbl_zres {
	DNSBL_Z_PENDING,
	DNSBL_Z_UNLISTED,	/* NXDOMAIN or no A record */
	DNSBL_Z_ANSWER,		/* A records: addrs[] */
	DNSBL_Z_TIMEOUT,	/* no answer within the caller's bound */
	DNSBL_Z_ERROR,		/* SERVFAIL, unreachable, no cache room */
};

struct dnsbl_zanswer {
	enum dnsbl_zres	 res;
	uint8_t		 addrs[DNSBL_ADDRS_MAX][4];
	size_t		 naddrs;
};

/* Per zone, for the metrics: what the check made of it. */
enum dnsbl_zverdict {
	DNSBL_V_LISTED,		/* an entry's filter matched */
	DNSBL_V_UNLISTED,	/* no record, or none its entries admit */
	DNSBL_V_TIMEOUT,
	DNSBL_V_ERROR,		/* failure or only error/bogus codes */
	DNSBL_V_MAX
};

#define DNSBL_TEXT_OUT	512

struct dnsbl_outcome {
	int		 score;		/* weights of the matched entries */
	bool		 allowed;	/* a negative-weight entry matched */
	char		 listed[DNSBL_TEXT_OUT];	/* zones with a positive
					 * match, comma-separated; "" none */
	char		 allow[DNSBL_TEXT_OUT];	/* zones with a negative one */
	char		 detail[DNSBL_TEXT_OUT]; /* "zone=127.0.0.2*2,..." */
	char		 skipped[DNSBL_TEXT_OUT]; /* "zone:timeout,..." */
	char		 alert[DNSBL_TEXT_OUT];	/* "zone=127.255.255.254,..."
					 * error or bogus codes seen */
	unsigned	 asked;		/* zones this check sent a query for */
	unsigned	 shared;	/* joined a query in flight */
	unsigned	 cached;	/* answered from the cache */
	enum dnsbl_zverdict zv[DNSBL_SITES_MAX];	/* per zones[] */
	struct dnsbl_zanswer za[DNSBL_SITES_MAX];
};

/* The score from each zone's answer (za[] per zones[]); pure (the
 * asked, shared, cached counts are the check's, left 0). */
void	dnsbl_score(const struct dnsbl_list *, const struct dnsbl_zanswer *,
	    struct dnsbl_outcome *);

/*
 * The per-loop cache: answers by (client address, zone), kept for their
 * TTL clamped to DNSBL_TTL_MIN_S..DNSBL_TTL_MAX_S (failures for
 * DNSBL_ERROR_TTL_S), in a fixed table of max entries (rounded up to
 * DNSBL_CACHE_WAYS); a question in flight is shared by every client
 * that asks it meanwhile.  Its queries carry ids with the top bit set.
 */
struct dnsbl_cache;
struct dnsbl_cache *dnsbl_cache_new(const struct dns_lookup *,
	    size_t max);
/* Pending queries are cancelled; no check may be running. */
void	dnsbl_cache_free(struct dnsbl_cache *);

struct dnsbl_check;
typedef void	dnsbl_done_fn(void *arg, const struct dnsbl_outcome *);

/*
 * Ask every zone of l about ip.  NULL: decided at once (every answer
 * cached, or no zones), *out filled.  Otherwise done() runs once, from a
 * resolver callback or from dnsbl_check_expire(), unless
 * dnsbl_check_cancel() comes first; the check frees itself after done().
 * l must outlive the check.
 */
struct dnsbl_check *dnsbl_check_start(struct dnsbl_cache *,
	    const struct dnsbl_list *l, int family, const uint8_t ip[16],
	    dnsbl_done_fn *done, void *arg,
	    struct dnsbl_outcome *out);
/* The caller's bound passed: zones still pending are timeouts; done(). */
void	dnsbl_check_expire(struct dnsbl_check *);
void	dnsbl_check_cancel(struct dnsbl_check *);	/* done() not called */

const char *dnsbl_zverdict_name(enum dnsbl_zverdict);

#endif
