/*
 * backscatter.c - NDR allow/deny (see backscatter.h): null sender, loops,
 * forged local senders, a proof that the sender is real, then
 * per-sender and per-domain rates.
 * Never: counts a suppressed NDR; trusts the sender's case.
 * Untrusted: the envelope sender (compared and counted in lower case).
 */
#include <stdlib.h>
#include <string.h>

#include "../lib/rate.h"
#include "backscatter.h"

struct backscatter {
	struct rate_table	*by_sender;	/* key: lower-cased */
	struct rate_table	*by_domain;	/* key: lower-case domain */
	unsigned		 per_sender;
	unsigned		 per_domain;
};

struct backscatter *
backscatter_new(unsigned per_sender_per_hour, unsigned per_domain_per_hour)
{
	struct backscatter	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->per_sender = per_sender_per_hour;
	b->per_domain = per_domain_per_hour;
	b->by_sender = rate_table_new(BACKSCATTER_WINDOW_MS,
	    BACKSCATTER_KEYS_MAX);
	b->by_domain = rate_table_new(BACKSCATTER_WINDOW_MS,
	    BACKSCATTER_KEYS_MAX);
	if (b->by_sender == NULL || b->by_domain == NULL) {
		backscatter_free(b);
		return NULL;
	}
	return b;
}

void
backscatter_free(struct backscatter *b)
{
	if (b == NULL)
		return;
	rate_table_free(b->by_sender);
	rate_table_free(b->by_domain);
	free(b);
}

/*
 * The rate rules.  Keys are lower case: Bob@X and bob@x are one sender
 * to a spammer forging them, whatever RFC 5321 2.4 says about local parts.
 * A sender without '@' counts under the empty domain: one shared bucket,
 * the strict side.  Evicting a key under a flood of distinct senders
 * forgets its count; each of those NDRs still counts for its domain.
 */
static enum ndr_verdict
backscatter_rate(struct backscatter *b, const char *sender, uint64_t now,
    const char **reason)
{
	char		 key[BACKSCATTER_SENDER_MAX];
	const char	*at;
	size_t		 i, len, dom;

	len = strnlen(sender, BACKSCATTER_SENDER_MAX + 1);
	if (len > BACKSCATTER_SENDER_MAX) {
		*reason = "bad_sender";
		return NDR_SUPPRESS;
	}
	for (i = 0; i < len; i++)
		key[i] = (sender[i] >= 'A' && sender[i] <= 'Z') ?
		    (char)(sender[i] - 'A' + 'a') : sender[i];
	at = memrchr(key, '@', len);
	dom = at != NULL ? (size_t)(at + 1 - key) : len;
	if (rate_peek(b->by_sender, key, len, now) >= b->per_sender) {
		*reason = "rate_sender";
		return NDR_SUPPRESS;
	}
	if (rate_peek(b->by_domain, key + dom, len - dom, now) >=
	    b->per_domain) {
		*reason = "rate_domain";
		return NDR_SUPPRESS;
	}
	(void)rate_hit(b->by_sender, key, len, now, 1);
	(void)rate_hit(b->by_domain, key + dom, len - dom, now, 1);
	*reason = "ok";
	return NDR_SEND;
}

enum ndr_verdict
backscatter_check(struct backscatter *b, const struct ndr_query *q,
    uint64_t now_ms, const char **reason, const char **shadow)
{
	const char	*sender = q->sender != NULL ? q->sender : "";
	unsigned	 proofs = q->proofs |
			    (q->client_trusted ? NDR_PROOF_TRUSTED : 0);

	*shadow = NULL;
	/* RFC 5321 4.5.5: never a report about a report. */
	if (*sender == '\0') {
		*reason = "null_sender";
		return NDR_SUPPRESS;
	}
	/* RFC 3834 2, RFC 3464 1: nor about an auto-reply or a DSN. */
	if (q->about_dsn) {
		*reason = "dsn_loop";
		return NDR_SUPPRESS;
	}
	/* Our own users come in trusted; a stranger using our domain in
	 * MAIL FROM is forging it, and the NDR would land on our user --
	 * unless the address carries our own valid BATV tag: then it is
	 * our user's mail coming back (a forwarder), not a forgery. */
	if (q->sender_is_ours && !q->client_trusted &&
	    !(q->proofs & NDR_PROOF_BATV)) {
		*reason = "forged_local_sender";
		return NDR_SUPPRESS;
	}
	/*
	 * A claim is not a proof: a report goes only to a sender shown to
	 * be real at receipt (NDR_PROOF_*: SPF pass for MAIL FROM, never for
	 * HELO; authenticated or relay_networks; later DKIM, BATV).  Before
	 * the rates, so that a refused NDR never counts against a sender.
	 */
	if (proofs == 0 && q->require != NDR_REQUIRE_NO) {
		if (q->require == NDR_REQUIRE_YES) {
			*reason = "unauthenticated_sender";
			return NDR_SUPPRESS;
		}
		*shadow = "unauthenticated_sender";
	}
	return backscatter_rate(b, sender, now_ms, reason);
}
