/*
 * dns.h - asynchronous DNS over UDP on the caller's event loop (libevent's
 * evdns has no MX nor TXT): mail routing (MX, then A/AAAA) for delivery,
 * and one record set of a name (A, AAAA, MX, TXT, PTR, TLSA) for SPF, the
 * other sender checks and DANE, with the AD bit of the answer, with a small TTL-bounded cache of those.
 * Owns: queries, retransmission, timeouts, answer matching, MX ordering,
 * the record-set cache.
 * Never: blocks, calls back from inside a dns_resolve_* call, uses TCP.
 * Untrusted: every datagram.  RFC 1035, 2181, 3596, 5321 5.1, 7505.
 */
#ifndef MXGATE_DNS_H
#define MXGATE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#define DNS_MX_MAX	16	/* MX hosts kept per domain */
#define DNS_ADDR_MAX	8	/* addresses kept per host */
#define DNS_TIMEOUT_DEFAULT_MS	5000	/* timeout_ms 0 means this */
#define DNS_TIMEOUT_MAX_MS	60000

struct event_base;
struct dns_resolver;

struct dns_host {
	char			name[256];	/* lower case, no trailing dot */
	unsigned		pref;		/* MX preference (0 for implicit MX/A) */
	struct sockaddr_storage	addrs[DNS_ADDR_MAX];	/* port 0; caller sets it */
	size_t			naddrs;
};

enum dns_status {
	DNS_OK,		/* hosts[] filled, sorted by preference, equal prefs shuffled */
	DNS_NOTFOUND,	/* NXDOMAIN, or no MX and no A/AAAA: permanent */
	DNS_NULLMX,	/* RFC 7505 null MX ("0 ."): the domain takes no mail: permanent */
	DNS_TEMPFAIL,	/* timeout, SERVFAIL, unreachable server, truncated beyond use */
};

struct dns_result {
	enum dns_status	status;
	struct dns_host	hosts[DNS_MX_MAX];
	size_t		nhosts;
	bool		secure;		/* the MX answer had the AD bit: the
					 * server (a validating resolver we
					 * trust, dns_server) says DNSSEC
					 * proved it (RFC 4035 3.2.3) */
	char		why[128];	/* human-readable reason for logs */
};

typedef void	dns_done_fn(void *arg, uint64_t id, const struct dns_result *);

/*
 * server: "IP:PORT" or "[IPv6]:PORT" (":PORT" may be left out: 53), or
 * NULL to use the first "nameserver" of /etc/resolv.conf (port 53).
 * timeout_ms: per query, with one retransmission at half of it; 0 means
 * DNS_TIMEOUT_DEFAULT_MS.  NULL on error (err filled).
 */
struct dns_resolver *dns_resolver_new(struct event_base *, const char *server,
	    unsigned timeout_ms, char *err, size_t errlen);
void	dns_resolver_free(struct dns_resolver *);	/* pending callbacks are NOT called */

/*
 * Mail routing for a domain (RFC 5321 5.1): MX records by preference,
 * each host's A and AAAA addresses; no MX -> the domain's own A/AAAA as
 * an implicit MX (pref 0); null MX -> DNS_NULLMX; a CNAME in the answer
 * is followed (by the answer section or one more query).  An address
 * literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]") answers at once,
 * like dns_resolve_host().  Hosts whose look-ups found no address are
 * left out; addresses alternate IPv4 and IPv6, IPv4 first.
 */
void	dns_resolve_mx(struct dns_resolver *, const char *domain, uint64_t id,
	    dns_done_fn *, void *arg);

/*
 * A/AAAA of one host name (for next_hop = smtp:HOST:PORT); an IP literal
 * string (bare or in brackets) answers at once (via a zero-delay event,
 * never inside the call).  Result has one host.
 */
void	dns_resolve_host(struct dns_resolver *, const char *host, uint64_t id,
	    dns_done_fn *, void *arg);

/*
 * One record set: the records of qtype at name (after the CNAME chain the
 * answer holds, or one more query for its target).  status DNS_OK with
 * n == 0 is "no data"; DNS_NOTFOUND is NXDOMAIN (or a name that cannot be
 * a DNS name); DNS_TEMPFAIL as above.  Only the first DNS_RR_MAX records
 * are kept, total counts them all.
 */
#define DNS_RR_MAX		16
#define DNS_TXT_MAX		1024	/* text kept per TXT record */
#define DNS_CACHE_MAX		64	/* record sets cached per resolver */
#define DNS_CACHE_TTL_MAX	3600	/* seconds a record set is kept at most */

struct dns_rr {
	uint16_t	type;
	uint32_t	ttl;
	uint16_t	pref;				/* MX */
	char		name[256];	/* MX exchange, PTR target: lower case */
	uint8_t		addr[16];	/* A: first 4 bytes; AAAA: all 16 */
	char		txt[DNS_TXT_MAX + 1];	/* TXT strings joined, NUL after;
						 * TLSA: the raw RDATA */
	size_t		txtlen;
	bool		txtlong;	/* text longer than DNS_TXT_MAX: cut */
};

struct dns_rrset {
	enum dns_status	status;
	uint16_t	qtype;
	size_t		n, total;
	struct dns_rr	rr[DNS_RR_MAX];
	bool		secure;		/* DNS_OK: the answer had the AD bit */
	char		why[128];
};

typedef void	dns_rr_fn(void *arg, uint64_t id, const struct dns_rrset *);

/*
 * Ask for the qtype (DNS_MSG_T_A, _AAAA, _MX, _TXT, _PTR, _TLSA) records of name;
 * the callback runs once, from the event loop, never inside the call.  A
 * cached answer younger than its TTL (at most DNS_CACHE_TTL_MAX; a failure
 * is never cached) is given again without a query.
 */
void	dns_query_rr(struct dns_resolver *, const char *name, uint16_t qtype,
	    uint64_t id, dns_rr_fn *, void *arg);

/* cancel every pending query with this id (callback not called) */
void	dns_cancel(struct dns_resolver *, uint64_t id);

const char *dns_status_name(enum dns_status);	/* "ok", "notfound", ... */

/*
 * The look-ups of an evaluator that speaks DNS (SPF, DKIM, DNS lists):
 * dns_query_rr and dns_cancel behind a table, so tests and fuzz targets
 * can answer from their own.  query() answers once through cb (never from
 * inside the call); cancel() drops every pending question of an id
 * without calling back.  dns_lookup_of() fills it for a resolver.
 */
struct dns_lookup {
	void	(*query)(void *ctx, const char *name, uint16_t qtype,
		    uint64_t id, dns_rr_fn *cb, void *arg);
	void	(*cancel)(void *ctx, uint64_t id);
	void	*ctx;
};
void	dns_lookup_of(struct dns_lookup *, struct dns_resolver *);

#endif
