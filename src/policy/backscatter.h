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
};

/*
 * NDR_SEND counts against both rate limits (NDR_SUPPRESS counts nothing);
 * *reason is a short static token for logs: "null_sender", "dsn_loop",
 * "forged_local_sender", "bad_sender" (longer than BACKSCATTER_SENDER_MAX),
 * "rate_sender", "rate_domain" (later "spf_fail"), or "ok" with NDR_SEND.
 */
enum ndr_verdict backscatter_check(struct backscatter *,
		    const struct ndr_query *, uint64_t now_ms,
		    const char **reason);

#endif
