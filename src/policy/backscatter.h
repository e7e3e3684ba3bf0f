/*
 * backscatter.h - the backscatter guard (DESIGN 4): may a non-delivery
 * report (NDR/DSN) be sent at all?  The one decision every NDR passes.
 * Owns: the per-sender and per-domain NDR rate tables.
 * Never: builds or sends the report (dsn.h), looks anything up itself.
 * Untrusted: the original envelope sender.  RFC 3464, 3834, 5321 4.5.5.
 */
#ifndef MXGATE_BACKSCATTER_H
#define MXGATE_BACKSCATTER_H

#include <stdbool.h>
#include <stdint.h>

#define BACKSCATTER_WINDOW_MS	(60u * 60 * 1000)	/* per hour */
#define BACKSCATTER_KEYS_MAX	65536	/* keys remembered, each */
#define BACKSCATTER_SENDER_MAX	512	/* RFC 5321 4.5.3.1.3: 256 */

enum ndr_verdict { NDR_SEND, NDR_SUPPRESS };

/*
 * Proofs that the reverse-path is real, recorded with the message at
 * receipt (the queue file's P record; issue 14 part 3).  One is enough.
 * A later proof (DKIM pass aligned with MAIL FROM, a valid BATV tag) is
 * one more bit here, set by the caller from its P record key; the rule
 * below does not change.
 */
#define NDR_PROOF_SPF		0x1u	/* SPF pass for the MAIL FROM identity */
#define NDR_PROOF_TRUSTED	0x2u	/* authenticated, or relay_networks */
#define NDR_PROOF_DKIM		0x4u	/* a DKIM pass (whole body, not t=y)
					 * whose d= has the organizational
					 * domain of MAIL FROM (P record
					 * dkim.aligned=1) */
#define NDR_PROOF_BATV		0x8u	/* MAIL FROM had our valid prvs= tag;
					 * also vouches for a sender at one
					 * of our domains (we signed it) */

/* ndr_require_auth: suppress without a proof, only say so, or neither */
enum ndr_require { NDR_REQUIRE_YES, NDR_REQUIRE_SHADOW, NDR_REQUIRE_NO };

struct backscatter;	/* owns two rate tables */

/*
 * Limits are NDRs per hour; 0 allows none.  NULL when memory is short.
 */
struct backscatter *backscatter_new(unsigned per_sender_per_hour,
		    unsigned per_domain_per_hour);
void	backscatter_free(struct backscatter *);

struct ndr_query {
	/* the original envelope sender, "" for <> */
	const char	*sender;
	/* its domain is one of our domains */
	bool		 sender_is_ours;
	/* the client was in relay_networks or authenticated */
	bool		 client_trusted;
	/* the original is itself a DSN/NDR (null sender, or Auto-Submitted
	 * or multipart/report: dsn_is_report()) */
	bool		 about_dsn;
	/* NDR_PROOF_* bits (client_trusted implies NDR_PROOF_TRUSTED) */
	unsigned	 proofs;
	enum ndr_require require;
};

/*
 * NDR_SEND counts against both rate limits (NDR_SUPPRESS counts nothing);
 * *reason is a short static token for logs: "null_sender", "dsn_loop",
 * "forged_local_sender", "bad_sender" (longer than BACKSCATTER_SENDER_MAX),
 * "unauthenticated_sender" (no proof, require = NDR_REQUIRE_YES),
 * "rate_sender", "rate_domain", or "ok" with NDR_SEND.  *shadow is set to
 * "unauthenticated_sender" when require = NDR_REQUIRE_SHADOW and that rule
 * would have suppressed the report (which then goes on to the rates),
 * else to NULL.
 */
enum ndr_verdict backscatter_check(struct backscatter *,
		    const struct ndr_query *, uint64_t now_ms,
		    const char **reason, const char **shadow);

#endif
