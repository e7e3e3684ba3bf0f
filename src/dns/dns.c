/*
 * dns.c - asynchronous MX and A/AAAA resolution, and single record sets
 * (A, AAAA, MX, TXT, PTR, TLSA; the AD bit kept) with a small cache, over
 * UDP on libevent.
 * Owns: one UDP socket per query (random port and id), retransmission,
 * timeouts, matching answers to questions, MX order, CNAME following,
 * the record-set cache (TTL-bounded, failures never kept).
 * Never: blocks, uses TCP, trusts a datagram before it matches the query
 * (source, id, question), calls back from inside a dns_resolve_* call.
 * Untrusted: every datagram.  RFC 1035, 2181, 3596, 5321 5.1, 5452, 7505.
 */
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../lib/log.h"
#include "dns.h"
#include "dns_msg.h"

#define DNS_PORT		53
#define DNS_RESOLV_CONF		"/etc/resolv.conf"
#define DNS_RESOLV_LINE_MAX	512
#define DNS_QUERIES_MAX		(2 * DNS_MX_MAX)	/* A, AAAA per host */
#define DNS_TRIES_MAX		2	/* first send and one retransmission */
#define DNS_CHASE_MAX		1	/* queries that follow a CNAME target */
#define DNS_READS_MAX		16	/* datagrams read per wake-up */
#define DNS_WHY_MAX		128
#define DNS_OOM_MAX		64	/* callbacks owed after malloc failed */

enum dns_kind { DNS_KIND_MX, DNS_KIND_HOST, DNS_KIND_RR };

enum dns_qres {
	DNS_Q_IDLE,		/* slot never used */
	DNS_Q_PENDING,		/* in flight, counted in npending */
	DNS_Q_ANSWER,
	DNS_Q_NXDOMAIN,
	DNS_Q_TEMPFAIL,
};

struct dns_req;

/* One question to the server, sent on its own connected UDP socket. */
struct dns_query {
	struct dns_req	*req;
	int		 fd;		/* -1 when closed */
	struct event	*rd;
	struct event	*tmo;		/* retransmission, then timeout */
	uint16_t	 txid;
	uint16_t	 qtype;
	unsigned	 tries;
	unsigned	 chases;
	enum dns_qres	 res;
	const char	*bad;		/* why the last datagram was ignored */
	char		 qname[DNS_MSG_NAME_BUF];
	uint8_t		 pkt[DNS_MSG_QUERY_MAX];
	size_t		 pktlen;
	uint8_t		 addr[DNS_ADDR_MAX][16];	/* A or AAAA answers */
	size_t		 naddr;
	char		 why[DNS_WHY_MAX];
};

/* One dns_resolve_* call, from the call to its callback. */
struct dns_req {
	TAILQ_ENTRY(dns_req)	 entry;
	struct dns_resolver	*res;
	enum dns_kind		 kind;
	uint64_t		 id;
	dns_done_fn		*cb;
	dns_rr_fn		*rrcb;	/* DNS_KIND_RR */
	void			*arg;
	struct event		*now;	/* zero-delay: runs the callback */
	struct dns_rrset	*rrs;	/* DNS_KIND_RR: the answer */
	uint16_t		 rrtype;
	bool			 implicit;	/* no MX: the domain itself */
	unsigned		 npending;	/* queries in flight */
	char			 name[DNS_MSG_NAME_BUF];
	struct dns_query	 q[DNS_QUERIES_MAX];
	struct dns_result	 r;
};

struct dns_oom {
	uint64_t	 id;
	dns_done_fn	*cb;
	dns_rr_fn	*rrcb;	/* instead of cb when set */
	void		*arg;
};

/* One cached record set; rrs NULL: a free slot. */
struct dns_cached {
	struct dns_rrset	*rrs;
	char			 name[DNS_MSG_NAME_BUF];
	uint64_t		 expires_ms;	/* monotonic */
};

struct dns_resolver {
	struct event_base	*base;
	struct sockaddr_storage	 server;
	socklen_t		 serverlen;
	unsigned		 timeout_ms;
	TAILQ_HEAD(, dns_req)	 reqs;
	struct event		*oom_ev;
	struct dns_oom		 oom[DNS_OOM_MAX];
	size_t			 noom;
	struct dns_cached	 cache[DNS_CACHE_MAX];
};

/* What a caller gets when not even a request could be allocated. */
static const struct dns_result dns_oom_result = {
	.status = DNS_TEMPFAIL,
	.why = "out of memory",
};
static const struct dns_rrset dns_oom_rrset = {
	.status = DNS_TEMPFAIL,
	.why = "out of memory",
};

static int	dns_server_parse(const char *, struct sockaddr_storage *,
		    socklen_t *, char *, size_t);
static int	dns_server_resolv(char *, size_t, char *, size_t);
static bool	dns_literal(const char *, bool, struct sockaddr_storage *);
static int	dns_name_norm(const char *, char *);
static void	dns_why(char *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static struct dns_req *dns_req_new(struct dns_resolver *, enum dns_kind,
		    uint64_t, dns_done_fn *, void *);
static void	dns_req_free(struct dns_req *);
static void	dns_req_finish(struct dns_req *, enum dns_status,
		    const char *);
static void	dns_req_run(evutil_socket_t, short, void *);
static void	dns_req_literal(struct dns_req *, const char *,
		    const struct sockaddr_storage *);
static void	dns_req_mx_done(struct dns_req *, struct dns_query *,
		    const struct dns_msg *, const char *);
static size_t	dns_req_mx_pick(struct dns_req *, const struct dns_msg *,
		    const char *, size_t *);
static void	dns_req_addr_start(struct dns_req *);
static void	dns_req_addr_done(struct dns_req *);
static size_t	dns_host_fill(struct dns_host *, const struct dns_query *,
		    const struct dns_query *);
static int	dns_query_start(struct dns_req *, struct dns_query *,
		    const char *, uint16_t, unsigned);
static void	dns_query_close(struct dns_query *);
static void	dns_query_end(struct dns_query *, enum dns_qres,
		    const char *, const struct dns_msg *, const char *);
static void	dns_query_report(struct dns_query *, const struct dns_msg *,
		    const char *);
static void	dns_query_chase(struct dns_query *, const char *);
static void	dns_query_read(evutil_socket_t, short, void *);
static void	dns_query_timer(evutil_socket_t, short, void *);
static bool	dns_query_match(struct dns_query *, const uint8_t *, size_t,
		    struct dns_msg *);
static void	dns_query_answer(struct dns_query *, const struct dns_msg *);
static bool	dns_from_server(const struct dns_resolver *,
		    const struct sockaddr_storage *, socklen_t);
static const char *dns_canon(const struct dns_msg *, const char *);
static bool	dns_has_type(const struct dns_msg *, const char *, uint16_t);
static void	dns_oom_add(struct dns_resolver *, uint64_t, dns_done_fn *,
		    void *);
static void	dns_oom_run(evutil_socket_t, short, void *);
static const char *dns_type_name(uint16_t);
static void	dns_req_rr_done(struct dns_req *, struct dns_query *,
		    const struct dns_msg *, const char *);
static uint64_t	dns_now_ms(void);
static const struct dns_rrset *dns_cache_get(struct dns_resolver *,
		    const char *, uint16_t);
static void	dns_cache_put(struct dns_resolver *, const char *,
		    const struct dns_rrset *);

const char *
dns_status_name(enum dns_status s)
{
	static const char *const names[] = {
		[DNS_OK] = "ok", [DNS_NOTFOUND] = "notfound",
		[DNS_NULLMX] = "nullmx", [DNS_TEMPFAIL] = "tempfail",
	};

	if ((size_t)s >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[s];
}

static const char *
dns_type_name(uint16_t t)
{
	switch (t) {
	case DNS_MSG_T_MX:	return "MX";
	case DNS_MSG_T_A:	return "A";
	case DNS_MSG_T_AAAA:	return "AAAA";
	case DNS_MSG_T_TXT:	return "TXT";
	case DNS_MSG_T_PTR:	return "PTR";
	case DNS_MSG_T_TLSA:	return "TLSA";
	default:		return "?";
	}
}

static void
dns_why(char *out, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, DNS_WHY_MAX, fmt, ap);	/* log text: may cut */
	va_end(ap);
}

/* "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT"; numeric only, no look-up. */
static int
dns_server_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errlen)
{
	struct addrinfo	 hints, *ai;
	char		 host[INET6_ADDRSTRLEN + 32], *end;
	const char	*port = NULL, *p, *colon = strchr(s, ':');
	size_t		 hlen;
	unsigned long	 pn = DNS_PORT;

	if (s[0] == '[') {
		if ((p = strchr(s, ']')) == NULL ||
		    (p[1] != '\0' && p[1] != ':'))
			goto bad;
		hlen = (size_t)(p - s - 1);
		s++;
		port = p[1] == ':' ? p + 2 : NULL;
	} else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		hlen = (size_t)(colon - s);		/* IPv4:PORT */
		port = colon + 1;
	} else
		hlen = strlen(s);			/* IPv4 or bare IPv6 */
	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (port != NULL) {
		errno = 0;
		pn = strtoul(port, &end, 10);
		if (port[0] < '0' || port[0] > '9' || *end != '\0' ||
		    errno != 0 || pn == 0 || pn > 65535)
			goto bad;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(host, NULL, &hints, &ai) != 0)
		goto bad;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)pn);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)pn);
	return 0;
bad:
	snprintf(err, errlen, "dns: bad server address \"%s\"",
	    log_text(s, strlen(s), 64));
	return -1;
}

/* The first "nameserver" line of resolv.conf(5). */
static int
dns_server_resolv(char *out, size_t outlen, char *err, size_t errlen)
{
	FILE	*f;
	char	 line[DNS_RESOLV_LINE_MAX], *p, *e;
	int	 rc = -1;

	if ((f = fopen(DNS_RESOLV_CONF, "re")) == NULL) {
		snprintf(err, errlen, "dns: %s: %s", DNS_RESOLV_CONF,
		    strerror(errno));
		return -1;
	}
	while (rc == -1 && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "nameserver", 10) != 0 ||
		    (line[10] != ' ' && line[10] != '\t'))
			continue;
		p = line + 10 + strspn(line + 10, " \t");
		e = p + strcspn(p, " \t\r\n#;");
		if (e == p || (size_t)(e - p) >= outlen)
			continue;
		memcpy(out, p, (size_t)(e - p));
		out[e - p] = '\0';
		rc = 0;
	}
	fclose(f);
	if (rc == -1)
		snprintf(err, errlen, "dns: no nameserver in %s",
		    DNS_RESOLV_CONF);
	return rc;
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const char *server,
    unsigned timeout_ms, char *err, size_t errlen)
{
	struct dns_resolver	*res;
	char			 conf[INET6_ADDRSTRLEN + 32];

	if (server == NULL) {
		if (dns_server_resolv(conf, sizeof(conf), err, errlen) == -1)
			return NULL;
		server = conf;
	}
	if (timeout_ms > DNS_TIMEOUT_MAX_MS) {
		snprintf(err, errlen, "dns: timeout %u ms over %u", timeout_ms,
		    DNS_TIMEOUT_MAX_MS);
		return NULL;
	}
	if ((res = calloc(1, sizeof(*res))) == NULL ||
	    (res->oom_ev = evtimer_new(base, dns_oom_run, res)) == NULL) {
		snprintf(err, errlen, "dns: out of memory");
		free(res);
		return NULL;
	}
	if (dns_server_parse(server, &res->server, &res->serverlen, err,
	    errlen) == -1) {
		event_free(res->oom_ev);
		free(res);
		return NULL;
	}
	res->base = base;
	res->timeout_ms = timeout_ms == 0 ? DNS_TIMEOUT_DEFAULT_MS :
	    timeout_ms;
	TAILQ_INIT(&res->reqs);
	return res;
}

void
dns_resolver_free(struct dns_resolver *res)
{
	struct dns_req	*req;
	size_t		 i;

	if (res == NULL)
		return;
	while ((req = TAILQ_FIRST(&res->reqs)) != NULL)
		dns_req_free(req);
	for (i = 0; i < DNS_CACHE_MAX; i++)
		free(res->cache[i].rrs);
	event_free(res->oom_ev);
	free(res);
}

void
dns_cancel(struct dns_resolver *res, uint64_t id)
{
	struct dns_req	*req, *next;
	size_t		 i, n = 0;

	for (req = TAILQ_FIRST(&res->reqs); req != NULL; req = next) {
		next = TAILQ_NEXT(req, entry);
		if (req->id == id)
			dns_req_free(req);
	}
	for (i = 0; i < res->noom; i++)
		if (res->oom[i].id != id)
			res->oom[n++] = res->oom[i];
	res->noom = n;
}

/*
 * No memory for a request: the callback is still owed, from the loop.
 * The owed list is fixed, so this cannot fail in turn short of
 * DNS_OOM_MAX callers in one loop turn, which is a broken invariant.
 */
static void
dns_oom_add(struct dns_resolver *res, uint64_t id, dns_done_fn *cb,
    void *arg)
{
	static const struct timeval	zero = { 0, 0 };

	log_event(LOG_LVL_WARNING, "dns_oom", "msg=\"out of memory\"");
	if (res->noom == DNS_OOM_MAX)
		panic("dns_oom_add: %d callbacks owed", DNS_OOM_MAX);
	res->oom[res->noom].id = id;
	res->oom[res->noom].cb = cb;
	res->oom[res->noom].rrcb = NULL;
	res->oom[res->noom].arg = arg;
	res->noom++;
	evtimer_add(res->oom_ev, &zero);
}

static void
dns_oom_run(evutil_socket_t fd, short ev, void *arg)
{
	static const struct timeval	 zero = { 0, 0 };
	struct dns_resolver		*res = arg;
	struct dns_oom			 o;

	(void)fd;
	(void)ev;
	if (res->noom == 0)
		return;
	o = res->oom[--res->noom];
	if (res->noom > 0)	/* the callback may free res: re-arm first */
		evtimer_add(res->oom_ev, &zero);
	if (o.rrcb != NULL)
		o.rrcb(o.arg, o.id, &dns_oom_rrset);
	else
		o.cb(o.arg, o.id, &dns_oom_result);
}

/* Lower case, no trailing dot, and encodable; 0 or -1. */
static int
dns_name_norm(const char *in, char *out)
{
	uint8_t	wire[DNS_MSG_NAME_MAX];
	size_t	len, i, wlen;

	len = strnlen(in, DNS_MSG_NAME_BUF);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len >= DNS_MSG_NAME_BUF)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ?
		    (char)(in[i] + ('a' - 'A')) : in[i];
	out[len] = '\0';
	if (dns_msg_name_encode(out, wire, sizeof(wire), &wlen) != PARSE_OK)
		return -1;
	return 0;
}

/*
 * An IP address literal: "[192.0.2.1]", "[IPv6:2001:db8::1]" (RFC 5321
 * 4.1.3), or, when bare is set, the address alone.  Port left 0.
 */
static bool
dns_literal(const char *s, bool bare, struct sockaddr_storage *ss)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 a[INET6_ADDRSTRLEN + 8];
	size_t			 len = strnlen(s, sizeof(a) + 8);

	if (s[0] == '[' && len >= 2 && s[len - 1] == ']') {
		s++;
		len -= 2;
		if (strncasecmp(s, "IPv6:", 5) == 0) {
			s += 5;
			len -= 5;
		}
	} else if (!bare)
		return false;
	if (len == 0 || len >= sizeof(a))
		return false;
	memcpy(a, s, len);
	a[len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, a, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, a, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return true;
	}
	return false;
}

static struct dns_req *
dns_req_new(struct dns_resolver *res, enum dns_kind kind, uint64_t id,
    dns_done_fn *cb, void *arg)
{
	struct dns_req	*req;
	size_t		 i;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	if ((req->now = evtimer_new(res->base, dns_req_run, req)) == NULL) {
		free(req);
		return NULL;
	}
	req->res = res;
	req->kind = kind;
	req->id = id;
	req->cb = cb;
	req->arg = arg;
	for (i = 0; i < DNS_QUERIES_MAX; i++)
		req->q[i].fd = -1;
	TAILQ_INSERT_TAIL(&res->reqs, req, entry);
	return req;
}

static void
dns_req_free(struct dns_req *req)
{
	size_t	i;

	for (i = 0; i < DNS_QUERIES_MAX; i++)
		dns_query_close(&req->q[i]);
	TAILQ_REMOVE(&req->res->reqs, req, entry);
	event_free(req->now);
	free(req->rrs);
	free(req);
}

/*
 * The answer is ready: stop every query and run the callback from a
 * zero-delay timer, so it never runs inside dns_resolve_* nor under a
 * query's own event, and it may free the resolver or cancel anything.
 */
static void
dns_req_finish(struct dns_req *req, enum dns_status st, const char *why)
{
	static const struct timeval	zero = { 0, 0 };
	size_t				i;

	for (i = 0; i < DNS_QUERIES_MAX; i++)
		dns_query_close(&req->q[i]);
	req->r.status = st;
	if (st != DNS_OK)
		req->r.nhosts = 0;
	if (why != req->r.why)
		dns_why(req->r.why, "%s", why);
	if (req->rrs != NULL) {
		req->rrs->status = st;
		if (st != DNS_OK)
			req->rrs->n = req->rrs->total = 0;
		if (why != req->rrs->why)
			dns_why(req->rrs->why, "%s", why);
	}
	evtimer_add(req->now, &zero);
}

static void
dns_req_run(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_req	*req = arg;

	(void)fd;
	(void)ev;
	TAILQ_REMOVE(&req->res->reqs, req, entry);
	event_free(req->now);
	if (req->kind == DNS_KIND_RR)	/* may free the resolver */
		req->rrcb(req->arg, req->id, req->rrs);
	else
		req->cb(req->arg, req->id, &req->r);
	free(req->rrs);
	free(req);
}

static void
dns_req_literal(struct dns_req *req, const char *text,
    const struct sockaddr_storage *ss)
{
	struct dns_host	*h = &req->r.hosts[0];
	size_t		 i, len = strnlen(text, sizeof(h->name) - 1);

	for (i = 0; i < len; i++)
		h->name[i] = (text[i] >= 'A' && text[i] <= 'Z') ?
		    (char)(text[i] + ('a' - 'A')) : text[i];
	h->name[len] = '\0';
	h->addrs[0] = *ss;
	h->naddrs = 1;
	req->r.nhosts = 1;
	dns_req_finish(req, DNS_OK, "address literal");
}

void
dns_resolve_mx(struct dns_resolver *res, const char *domain, uint64_t id,
    dns_done_fn *cb, void *arg)
{
	struct dns_req		*req;
	struct sockaddr_storage	 ss;

	if ((req = dns_req_new(res, DNS_KIND_MX, id, cb, arg)) == NULL) {
		dns_oom_add(res, id, cb, arg);
		return;
	}
	if (dns_literal(domain, false, &ss)) {
		dns_req_literal(req, domain, &ss);
		return;
	}
	if (dns_name_norm(domain, req->name) == -1) {
		dns_req_finish(req, DNS_NOTFOUND, "invalid domain name");
		return;
	}
	if (dns_query_start(req, &req->q[0], req->name, DNS_MSG_T_MX, 0) ==
	    -1)
		dns_req_finish(req, DNS_TEMPFAIL, req->q[0].why);
}

void
dns_resolve_host(struct dns_resolver *res, const char *host, uint64_t id,
    dns_done_fn *cb, void *arg)
{
	struct dns_req		*req;
	struct sockaddr_storage	 ss;

	if ((req = dns_req_new(res, DNS_KIND_HOST, id, cb, arg)) == NULL) {
		dns_oom_add(res, id, cb, arg);
		return;
	}
	if (dns_literal(host, true, &ss)) {
		dns_req_literal(req, host, &ss);
		return;
	}
	if (dns_name_norm(host, req->name) == -1) {
		dns_req_finish(req, DNS_NOTFOUND, "invalid host name");
		return;
	}
	memcpy(req->r.hosts[0].name, req->name, sizeof(req->name));
	req->r.nhosts = 1;
	dns_req_addr_start(req);
}

/*
 * The MX query ended.  RFC 5321 5.1: no MX means the domain itself is
 * the one host (implicit MX); RFC 7505: only null MX records ("0 .")
 * mean the domain takes no mail.
 */
static void
dns_req_mx_done(struct dns_req *req, struct dns_query *q,
    const struct dns_msg *m, const char *canon)
{
	size_t	nmx, nnull;

	if (q->res == DNS_Q_NXDOMAIN) {
		dns_req_finish(req, DNS_NOTFOUND, q->why);
		return;
	}
	if (q->res != DNS_Q_ANSWER) {
		dns_req_finish(req, DNS_TEMPFAIL, q->why);
		return;
	}
	req->r.secure = (m->flags & DNS_MSG_F_AD) != 0;
	nmx = dns_req_mx_pick(req, m, canon, &nnull);
	if (nmx == 0 && nnull > 0) {
		dns_why(req->r.why, "null MX: %s accepts no mail", canon);
		dns_req_finish(req, DNS_NULLMX, req->r.why);
		return;
	}
	if (nmx == 0) {
		/* canon may live in q, which the address queries reuse */
		memcpy(req->r.hosts[0].name, canon, strlen(canon) + 1);
		req->r.hosts[0].pref = 0;
		req->r.nhosts = 1;
		req->implicit = true;
	}
	dns_req_addr_start(req);
}

/*
 * Keep the best DNS_MX_MAX usable MX of canon in r.hosts: shuffle, then
 * a stable sort by preference, so equal preferences come out in random
 * order (RFC 5321 5.1) and ties at the cut are dropped at random.
 * Duplicate names and null MX targets are skipped (*nnull counts those).
 * Only the first DNS_MSG_RR_MAX answer records are seen; a domain with
 * more MX than that loses some of its choice, never its mail.
 */
static size_t
dns_req_mx_pick(struct dns_req *req, const struct dns_msg *m,
    const char *canon, size_t *nnull)
{
	const struct dns_msg_rr	*mx[DNS_MSG_RR_MAX], *t;
	uint32_t		 rnd[DNS_MSG_RR_MAX];
	size_t			 n = 0, i, j, k = 0;
	bool			 shuffle;

	*nnull = 0;
	for (i = 0; i < m->nan; i++) {
		t = &m->an[i];
		if (t->type != DNS_MSG_T_MX || t->rclass != DNS_MSG_C_IN ||
		    strcmp(t->name, canon) != 0)
			continue;
		if (t->target[0] == '\0')
			(*nnull)++;
		else
			mx[n++] = t;
	}
	/* without randomness the order stays as sent: still correct */
	shuffle = getrandom(rnd, sizeof(rnd), 0) == (ssize_t)sizeof(rnd);
	for (i = n; shuffle && i > 1; i--) {
		j = rnd[i - 1] % i;
		t = mx[i - 1];
		mx[i - 1] = mx[j];
		mx[j] = t;
	}
	for (i = 1; i < n; i++) {
		t = mx[i];
		for (j = i; j > 0 && mx[j - 1]->pref > t->pref; j--)
			mx[j] = mx[j - 1];
		mx[j] = t;
	}
	for (i = 0; i < n && k < DNS_MX_MAX; i++) {
		for (j = 0; j < k; j++)
			if (strcmp(req->r.hosts[j].name, mx[i]->target) == 0)
				break;
		if (j < k)
			continue;
		memcpy(req->r.hosts[k].name, mx[i]->target,
		    sizeof(req->r.hosts[k].name));
		req->r.hosts[k++].pref = mx[i]->pref;
	}
	req->r.nhosts = k;
	return k;
}

/* A and AAAA for every host in r.hosts, all at once. */
static void
dns_req_addr_start(struct dns_req *req)
{
	size_t	i;

	for (i = 0; i < req->r.nhosts; i++) {
		memset(&req->q[2 * i], 0, 2 * sizeof(req->q[0]));
		req->q[2 * i].fd = req->q[2 * i + 1].fd = -1;
		(void)dns_query_start(req, &req->q[2 * i], req->r.hosts[i].name,
		    DNS_MSG_T_A, 0);
		(void)dns_query_start(req, &req->q[2 * i + 1],
		    req->r.hosts[i].name, DNS_MSG_T_AAAA, 0);
	}
	if (req->npending == 0)
		dns_req_addr_done(req);
}

/* Interleave A and AAAA answers into h: IPv4 first, then alternate. */
static size_t
dns_host_fill(struct dns_host *h, const struct dns_query *a,
    const struct dns_query *aaaa)
{
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	size_t			 i, n = 0;

	memset(h->addrs, 0, sizeof(h->addrs));
	for (i = 0; i < DNS_ADDR_MAX && n < DNS_ADDR_MAX; i++) {
		if (i < a->naddr) {
			sin = (struct sockaddr_in *)&h->addrs[n++];
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, a->addr[i], 4);
		}
		if (i < aaaa->naddr && n < DNS_ADDR_MAX) {
			sin6 = (struct sockaddr_in6 *)&h->addrs[n++];
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, aaaa->addr[i], 16);
		}
	}
	return h->naddrs = n;
}

/* Every address query ended: keep the hosts that have addresses. */
static void
dns_req_addr_done(struct dns_req *req)
{
	const struct dns_query	*a, *aaaa, *failed = NULL, *nx = NULL;
	size_t			 i, k = 0, total = req->r.nhosts;

	for (i = 0; i < total; i++) {
		a = &req->q[2 * i];
		aaaa = &req->q[2 * i + 1];
		if (failed == NULL && a->res == DNS_Q_TEMPFAIL)
			failed = a;
		if (failed == NULL && aaaa->res == DNS_Q_TEMPFAIL)
			failed = aaaa;
		if (nx == NULL && a->res == DNS_Q_NXDOMAIN)
			nx = a;
		if (dns_host_fill(&req->r.hosts[i], a, aaaa) == 0)
			continue;
		if (k != i)
			req->r.hosts[k] = req->r.hosts[i];
		k++;
	}
	req->r.nhosts = k;
	if (k > 0) {
		if (req->kind == DNS_KIND_HOST)
			dns_why(req->r.why, "address");
		else if (req->implicit)
			dns_why(req->r.why, "implicit MX (no MX records)");
		else
			dns_why(req->r.why,
			    "%zu of %zu MX hosts with addresses", k, total);
		dns_req_finish(req, DNS_OK, req->r.why);
	} else if (failed != NULL)
		dns_req_finish(req, DNS_TEMPFAIL, failed->why);
	else if (req->kind == DNS_KIND_HOST)
		dns_req_finish(req, DNS_NOTFOUND, nx != NULL ? nx->why :
		    "no A or AAAA record");
	else if (req->implicit)
		dns_req_finish(req, DNS_NOTFOUND,
		    "no MX and no A or AAAA record");
	else
		dns_req_finish(req, DNS_NOTFOUND, "no MX host has an address");
}

/*
 * Send a new query.  RFC 5452 9: a random 16-bit id and a random source
 * port (a fresh socket per query; Linux picks ephemeral UDP ports at
 * random).  connect() makes the kernel drop datagrams from any other
 * address and report ICMP unreachable as ECONNREFUSED.  0: in flight and
 * counted in npending; -1: ended at once as a temporary failure (q->why),
 * not counted.
 */
static int
dns_query_start(struct dns_req *req, struct dns_query *q, const char *name,
    uint16_t qtype, unsigned chases)
{
	struct dns_resolver	*res = req->res;
	struct timeval		 tv;
	size_t			 len = strnlen(name, DNS_MSG_NAME_BUF - 1);
	const char		*fail = NULL;

	q->req = req;
	q->qtype = qtype;
	q->chases = chases;
	q->tries = 0;
	q->naddr = 0;
	q->bad = NULL;
	memmove(q->qname, name, len);
	q->qname[len] = '\0';
	if (getrandom(&q->txid, sizeof(q->txid), 0) != sizeof(q->txid))
		fail = "no random bytes";
	else if (dns_msg_build_query(q->pkt, sizeof(q->pkt), &q->pktlen,
	    q->txid, q->qname, qtype, true) != PARSE_OK)
		fail = "name not encodable";
	else if ((q->fd = socket(res->server.ss_family, SOCK_DGRAM |
	    SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(q->fd, (struct sockaddr *)&res->server, res->serverlen) ==
	    -1 ||
	    (q->rd = event_new(res->base, q->fd, EV_READ | EV_PERSIST,
	    dns_query_read, q)) == NULL ||
	    (q->tmo = evtimer_new(res->base, dns_query_timer, q)) == NULL ||
	    event_add(q->rd, NULL) == -1 ||
	    send(q->fd, q->pkt, q->pktlen, 0) == -1)
		fail = strerror(errno);
	if (fail != NULL) {
		dns_why(q->why, "%s %s: %s", dns_type_name(qtype), q->qname,
		    fail);
		q->res = DNS_Q_TEMPFAIL;
		dns_query_close(q);
		return -1;
	}
	q->res = DNS_Q_PENDING;
	req->npending++;
	q->tries = 1;
	tv.tv_sec = res->timeout_ms / 2 / 1000;
	tv.tv_usec = res->timeout_ms / 2 % 1000 * 1000;
	evtimer_add(q->tmo, &tv);
	return 0;
}

/* Release the socket and events; the outcome fields stay. */
static void
dns_query_close(struct dns_query *q)
{
	if (q->rd != NULL)
		event_free(q->rd);
	if (q->tmo != NULL)
		event_free(q->tmo);
	q->rd = q->tmo = NULL;
	if (q->fd != -1)
		close(q->fd);
	q->fd = -1;
	if (q->res == DNS_Q_PENDING) {
		q->res = DNS_Q_TEMPFAIL;	/* stopped by its request */
		q->req->npending--;
	}
}

/* An in-flight query ends; reason NULL keeps q->why.  Event context. */
static void
dns_query_end(struct dns_query *q, enum dns_qres r, const char *reason,
    const struct dns_msg *m, const char *canon)
{
	if (reason != NULL)
		dns_why(q->why, "%s %s: %s", dns_type_name(q->qtype), q->qname,
		    reason);
	q->res = r;
	q->req->npending--;
	dns_query_close(q);
	dns_query_report(q, m, canon);
}

/*
 * q has ended (q->res set, not in npending): tell its request.  m and
 * canon are the matched answer, NULL after a failure.
 */
static void
dns_query_report(struct dns_query *q, const struct dns_msg *m,
    const char *canon)
{
	struct dns_req	*req = q->req;
	size_t		 i, len;

	if (req->kind == DNS_KIND_RR) {
		dns_req_rr_done(req, q, m, canon);
		return;
	}
	if (q->qtype == DNS_MSG_T_MX) {
		dns_req_mx_done(req, q, m, canon);
		return;
	}
	len = q->qtype == DNS_MSG_T_A ? 4 : 16;
	for (i = 0; m != NULL && i < m->nan && q->naddr < DNS_ADDR_MAX; i++)
		if (m->an[i].type == q->qtype &&
		    m->an[i].rclass == DNS_MSG_C_IN &&
		    strcmp(m->an[i].name, canon) == 0)
			memcpy(q->addr[q->naddr++], m->an[i].addr, len);
	if (req->npending == 0)
		dns_req_addr_done(req);
}

/*
 * The answer holds a CNAME chain but no record of the type at its end:
 * ask once more for the target (RFC 1034 3.6.2; a recursive server
 * usually gives the whole chain, so this is rare).
 */
static void
dns_query_chase(struct dns_query *q, const char *canon)
{
	char	name[DNS_MSG_NAME_BUF];
	size_t	len = strnlen(canon, sizeof(name) - 1);

	memcpy(name, canon, len);
	name[len] = '\0';
	q->res = DNS_Q_ANSWER;
	q->req->npending--;
	dns_query_close(q);
	if (dns_query_start(q->req, q, name, q->qtype, q->chases + 1) == -1)
		dns_query_report(q, NULL, NULL);
}

static void
dns_query_timer(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_query	*q = arg;
	struct timeval		 tv;
	unsigned		 rest = q->req->res->timeout_ms -
				    q->req->res->timeout_ms / 2;

	(void)fd;
	(void)ev;
	if (q->tries < DNS_TRIES_MAX) {
		q->tries++;
		/* a lost retransmission is just a timeout later */
		(void)send(q->fd, q->pkt, q->pktlen, 0);
		tv.tv_sec = rest / 1000;
		tv.tv_usec = rest % 1000 * 1000;
		evtimer_add(q->tmo, &tv);
		return;
	}
	if (q->bad != NULL) {
		dns_why(q->why, "%s %s: timeout (ignored: %s)",
		    dns_type_name(q->qtype), q->qname, q->bad);
		dns_query_end(q, DNS_Q_TEMPFAIL, NULL, NULL, NULL);
	} else
		dns_query_end(q, DNS_Q_TEMPFAIL, "timeout", NULL, NULL);
}

static bool
dns_from_server(const struct dns_resolver *res,
    const struct sockaddr_storage *from, socklen_t fromlen)
{
	const struct sockaddr_in	*a, *b;
	const struct sockaddr_in6	*a6, *b6;

	if (from->ss_family != res->server.ss_family ||
	    fromlen < res->serverlen)
		return false;
	if (from->ss_family == AF_INET) {
		a = (const struct sockaddr_in *)from;
		b = (const struct sockaddr_in *)&res->server;
		return a->sin_port == b->sin_port &&
		    a->sin_addr.s_addr == b->sin_addr.s_addr;
	}
	a6 = (const struct sockaddr_in6 *)from;
	b6 = (const struct sockaddr_in6 *)&res->server;
	return a6->sin6_port == b6->sin6_port &&
	    memcmp(&a6->sin6_addr, &b6->sin6_addr, 16) == 0;
}

/*
 * Read what arrived.  A datagram that does not match is ignored and the
 * query goes on waiting: a spoofer can then not end it early, only the
 * real answer or the timeout can (RFC 5452 4.3, 9.1).
 */
static void
dns_query_read(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_query	*q = arg;
	struct dns_msg		 m;
	struct sockaddr_storage	 from;
	socklen_t		 fromlen;
	uint8_t			 buf[DNS_MSG_MAX];
	ssize_t			 n;
	unsigned		 i;

	(void)ev;
	for (i = 0; i < DNS_READS_MAX; i++) {
		fromlen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC,
		    (struct sockaddr *)&from, &fromlen);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n == -1) {
			dns_query_end(q, DNS_Q_TEMPFAIL, errno == ECONNREFUSED ?
			    "server unreachable" : strerror(errno), NULL,
			    NULL);
			return;
		}
		if (!dns_from_server(q->req->res, &from, fromlen))
			q->bad = "answer from another address";
		else if ((size_t)n > sizeof(buf))
			q->bad = "answer over 4096 bytes";
		else if (dns_query_match(q, buf, (size_t)n, &m)) {
			dns_query_answer(q, &m);
			return;			/* q may be reused or freed */
		}
		if (log_enabled(LOG_LVL_DEBUG))
			log_event(LOG_LVL_DEBUG, "dns_ignored",
			    "qtype=%s qname=%s why=\"%s\"",
			    dns_type_name(q->qtype), q->qname, q->bad);
	}
}

static bool
dns_query_match(struct dns_query *q, const uint8_t *p, size_t len,
    struct dns_msg *m)
{
	if (dns_msg_parse(p, len, m) != PARSE_OK)
		q->bad = "malformed answer";
	else if (m->id != q->txid)
		q->bad = "wrong id";
	else if (!(m->flags & DNS_MSG_F_QR) || (m->flags & 0x7800) != 0)
		q->bad = "not an answer to a query";
	else if (!m->has_question || m->qtype != q->qtype ||
	    m->qclass != DNS_MSG_C_IN || strcmp(m->qname, q->qname) != 0)
		q->bad = "wrong question";
	else
		return true;
	return false;
}

/* Where the CNAME chain from name ends in the answer (RFC 1034 3.6.2). */
static const char *
dns_canon(const struct dns_msg *m, const char *name)
{
	size_t	hops, i;

	for (hops = 0; hops < m->nan; hops++) {	/* a loop ends here too */
		for (i = 0; i < m->nan; i++)
			if (m->an[i].type == DNS_MSG_T_CNAME &&
			    m->an[i].rclass == DNS_MSG_C_IN &&
			    strcmp(m->an[i].name, name) == 0)
				break;
		if (i == m->nan)
			break;
		name = m->an[i].target;
	}
	return name;
}

static bool
dns_has_type(const struct dns_msg *m, const char *name, uint16_t type)
{
	size_t	i;

	for (i = 0; i < m->nan; i++)
		if (m->an[i].type == type && m->an[i].rclass == DNS_MSG_C_IN &&
		    strcmp(m->an[i].name, name) == 0)
			return true;
	return false;
}

/*
 * A matched answer.  TC set: a temporary failure; there is no TCP
 * fallback (RFC 7766 would want one), since MX and address answers fit
 * the 1232 bytes we advertise unless a domain publishes dozens of MX.
 */
static void
dns_query_answer(struct dns_query *q, const struct dns_msg *m)
{
	const char	*canon;
	char		 rc[32];

	if (m->flags & DNS_MSG_F_TC) {
		dns_query_end(q, DNS_Q_TEMPFAIL, "truncated", NULL, NULL);
		return;
	}
	if (m->rcode == DNS_MSG_RCODE_NXDOMAIN) {
		dns_query_end(q, DNS_Q_NXDOMAIN, "NXDOMAIN", NULL, NULL);
		return;
	}
	if (m->rcode != DNS_MSG_RCODE_NOERROR) {
		snprintf(rc, sizeof(rc), "%s (rcode %u)",
		    m->rcode == DNS_MSG_RCODE_SERVFAIL ? "SERVFAIL" :
		    m->rcode == DNS_MSG_RCODE_REFUSED ? "REFUSED" : "error",
		    m->rcode);
		dns_query_end(q, DNS_Q_TEMPFAIL, rc, NULL, NULL);
		return;
	}
	canon = dns_canon(m, q->qname);
	if (canon != q->qname && !dns_has_type(m, canon, q->qtype) &&
	    q->chases < DNS_CHASE_MAX) {
		dns_query_chase(q, canon);
		return;
	}
	dns_query_end(q, DNS_Q_ANSWER, "answered", m, canon);
}

/*
 * Record sets.
 */

void
dns_query_rr(struct dns_resolver *res, const char *name, uint16_t qtype,
    uint64_t id, dns_rr_fn *cb, void *arg)
{
	static const struct timeval	 zero = { 0, 0 };
	struct dns_req			*req;
	const struct dns_rrset		*hit;

	req = dns_req_new(res, DNS_KIND_RR, id, NULL, arg);
	if (req != NULL && (req->rrs = calloc(1, sizeof(*req->rrs))) == NULL) {
		dns_req_free(req);
		req = NULL;
	}
	if (req == NULL) {
		dns_oom_add(res, id, NULL, arg);
		res->oom[res->noom - 1].rrcb = cb;
		return;
	}
	req->rrcb = cb;
	req->rrtype = qtype;
	req->rrs->qtype = qtype;
	if (dns_name_norm(name, req->name) == -1) {
		dns_req_finish(req, DNS_NOTFOUND, "not a valid DNS name");
		return;
	}
	if ((hit = dns_cache_get(res, req->name, qtype)) != NULL) {
		*req->rrs = *hit;
		evtimer_add(req->now, &zero);
		return;
	}
	if (dns_query_start(req, &req->q[0], req->name, qtype, 0) == -1)
		dns_req_finish(req, DNS_TEMPFAIL, req->q[0].why);
}

/* The one query of a record-set request ended. */
static void
dns_req_rr_done(struct dns_req *req, struct dns_query *q,
    const struct dns_msg *m, const char *canon)
{
	struct dns_rrset	*s = req->rrs;
	const struct dns_msg_rr	*t;
	struct dns_rr		*rr;
	size_t			 i;

	if (q->res == DNS_Q_NXDOMAIN) {
		dns_req_finish(req, DNS_NOTFOUND, q->why);
		dns_cache_put(req->res, req->name, s);
		return;
	}
	if (q->res != DNS_Q_ANSWER || m == NULL) {
		dns_req_finish(req, DNS_TEMPFAIL, q->why);
		return;
	}
	s->n = s->total = 0;
	s->secure = (m->flags & DNS_MSG_F_AD) != 0;
	for (i = 0; i < m->nan; i++) {
		t = &m->an[i];
		if (t->type != req->rrtype || t->rclass != DNS_MSG_C_IN ||
		    strcmp(t->name, canon) != 0)
			continue;
		s->total++;
		if (s->n == DNS_RR_MAX)
			continue;
		rr = &s->rr[s->n++];
		rr->type = t->type;
		rr->ttl = t->ttl;
		rr->pref = t->pref;
		memcpy(rr->name, t->target, sizeof(rr->name));
		memcpy(rr->addr, t->addr, sizeof(rr->addr));
		memcpy(rr->txt, t->txt, t->txtlen + 1);
		rr->txtlen = t->txtlen;
		rr->txtlong = t->txtlong;
	}
	s->total += m->an_dropped;	/* an upper bound: type not known */
	dns_why(s->why, "%s %s: %zu record%s", dns_type_name(req->rrtype),
	    req->name, s->total, s->total == 1 ? "" : "s");
	dns_req_finish(req, DNS_OK, s->why);
	dns_cache_put(req->res, req->name, s);
}

static uint64_t
dns_now_ms(void)
{
	struct timespec	ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const struct dns_rrset *
dns_cache_get(struct dns_resolver *res, const char *name, uint16_t qtype)
{
	struct dns_cached	*c;
	uint64_t		 now = dns_now_ms();
	size_t			 i;

	for (i = 0; i < DNS_CACHE_MAX; i++) {
		c = &res->cache[i];
		if (c->rrs == NULL || c->rrs->qtype != qtype ||
		    strcmp(c->name, name) != 0)
			continue;
		if (c->expires_ms > now)
			return c->rrs;
		free(c->rrs);
		c->rrs = NULL;
	}
	return NULL;
}

/*
 * Keep a final answer (DNS_OK or NXDOMAIN) for the smallest TTL of its
 * records, capped at DNS_CACHE_TTL_MAX; NXDOMAIN and "no data" carry no
 * TTL here (the SOA minimum is not read), so they are kept for the
 * shortest time worth having, one second.  The slot taken is a free one,
 * else an expired one, else the one nearest to expiry.
 */
static void
dns_cache_put(struct dns_resolver *res, const char *name,
    const struct dns_rrset *s)
{
	struct dns_cached	*c, *pick = NULL;
	uint64_t		 now = dns_now_ms();
	uint32_t		 ttl = DNS_CACHE_TTL_MAX;
	size_t			 i;

	if (s->status != DNS_OK && s->status != DNS_NOTFOUND)
		return;
	for (i = 0; i < s->n; i++)
		if (s->rr[i].ttl < ttl)
			ttl = s->rr[i].ttl;
	if (s->n == 0)
		ttl = 1;
	if (ttl == 0)
		return;
	for (i = 0; i < DNS_CACHE_MAX; i++) {
		c = &res->cache[i];
		if (c->rrs == NULL || c->expires_ms <= now) {
			pick = c;
			break;
		}
		if (pick == NULL || c->expires_ms < pick->expires_ms)
			pick = c;
	}
	if (pick->rrs == NULL && (pick->rrs = malloc(sizeof(*s))) == NULL)
		return;
	*pick->rrs = *s;
	memcpy(pick->name, name, strlen(name) + 1);
	pick->expires_ms = now + (uint64_t)ttl * 1000;
}

static void
dns_lookup_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	dns_query_rr(ctx, name, qtype, id, cb, arg);
}

static void
dns_lookup_cancel(void *ctx, uint64_t id)
{
	dns_cancel(ctx, id);
}

void
dns_lookup_of(struct dns_lookup *l, struct dns_resolver *res)
{
	l->query = dns_lookup_query;
	l->cancel = dns_lookup_cancel;
	l->ctx = res;
}
