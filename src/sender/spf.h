/*
 * spf.h - SPF (RFC 7208): may this client IP send mail for this domain?
 * Owns: record selection and parsing, the check_host() state machine,
 * macro expansion (spf_macro.c), the lookup budget of one evaluation.
 * Never: sockets, timers, blocking, globals; it only asks its resolver
 * (a function table) and is told the answers, so the unit tests and the
 * suite driver feed it zones without a network.
 * Untrusted: every record and every DNS answer; the sender and HELO.
 */
#ifndef MXGATE_SPF_H
#define MXGATE_SPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../dns/dns.h"

#define SPF_LOOKUPS_MAX	10	/* RFC 7208 4.6.4: terms that query DNS */
#define SPF_VOIDS_MAX	2	/* 4.6.4: answers with no record, or NXDOMAIN */
#define SPF_NAMES_MAX	10	/* 4.6.4: MX names, PTR names per term */
#define SPF_TERMS_MAX	128	/* terms per record; more: permerror */
#define SPF_RECORD_MAX	DNS_TXT_MAX	/* longer records: permerror */
#define SPF_EXPAND_MAX	2048	/* one macro expansion; longer: permerror */
#define SPF_EXPL_MAX	256	/* explanation kept (cut, never overrun) */
#define SPF_DOMAIN_MAX	253	/* a name to query (7.3: cut from the left) */
#define SPF_SENDER_MAX	512

enum spf_result {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL,
	SPF_TEMPERROR, SPF_PERMERROR,
};

/* The identity checked and its context (RFC 7208 2.2-2.4, 7.2). */
struct spf_request {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		ip[16];		/* IPv4: the first 4 bytes */
	const char	*mailfrom;	/* reverse-path without <>; "" if null */
	const char	*helo;		/* HELO/EHLO argument */
	const char	*receiver;	/* %{r}: our host name */
	time_t		now;		/* %{t} */
};

struct spf_outcome {
	enum spf_result	result;
	bool		helo_identity;	/* the HELO identity was checked */
	char		sender[SPF_SENDER_MAX];	/* <sender> as checked */
	char		domain[256];	/* the domain checked first */
	char		mech[64];	/* the matching term, "default", or "" */
	char		expl[SPF_EXPL_MAX];	/* exp= text (fail only) or "" */
	char		why[160];	/* a reason, for logs and headers */
	unsigned	lookups, voids;
};

typedef void	spf_done_fn(void *arg, const struct spf_outcome *);

struct spf_eval;

/*
 * Start check_host() for mailfrom (or for postmaster@helo when mailfrom
 * is ""; RFC 7208 2.4).  NULL: finished at once, *out filled (a malformed
 * domain, an address literal, no memory).  Otherwise done() runs exactly
 * once, from a resolver callback, unless spf_eval_cancel() comes first;
 * the evaluation frees itself after done() returns.
 */
struct spf_eval *spf_eval_start(const struct dns_lookup *,
	    const struct spf_request *, uint64_t id, spf_done_fn *done,
	    void *arg, struct spf_outcome *out);
void	spf_eval_cancel(struct spf_eval *);	/* done() not called */
/* the caller's deadline passed: done() now, with temperror */
void	spf_eval_expire(struct spf_eval *);

const char *spf_result_name(enum spf_result);	/* "pass", "fail", ... */
bool	spf_result_parse(const char *, enum spf_result *);

/* The resolver table over an event-loop resolver (dns.h). */

/*
 * Macro expansion (RFC 7208 7), spf_macro.c.  pname NULL means %{p} is
 * not known yet: the expansion stops with SPF_MACRO_NEED_P so the caller
 * can look it up and expand again.
 */
struct spf_macro_ctx {
	const char	*sender, *local, *sdomain;	/* %{s} %{l} %{o} */
	const char	*domain;			/* %{d} */
	const char	*helo;				/* %{h} */
	const char	*pname;				/* %{p} or NULL */
	const char	*receiver;			/* %{r} */
	int		 family;
	const uint8_t	*ip;				/* %{i} %{c} %{v} */
	time_t		 now;				/* %{t} */
};

enum spf_macro_rc {
	SPF_MACRO_OK,
	SPF_MACRO_SYNTAX,	/* permerror */
	SPF_MACRO_TOOLONG,	/* over outlen: permerror */
	SPF_MACRO_NEED_P,
};

/*
 * Expand in[0..len) into out (outlen bytes with the NUL).  explain: the
 * text of an exp= record (spaces allowed, %{c} %{r} %{t} allowed).
 */
enum spf_macro_rc spf_macro_expand(const struct spf_macro_ctx *,
	    const char *in, size_t len, bool explain, char *out, size_t outlen,
	    size_t *outlenp);
/* only the syntax of a macro-string, as spf_macro_expand() checks it */
bool	spf_macro_valid(const char *in, size_t len, bool explain);

#endif
