/*
 * relay.h - the relay decision (DESIGN 2.4): a recipient's domain is
 * ours, or the client may relay, or "Relay access denied".
 * Never: looks at the local part; routing tricks (%, !, quoted @, source
 * routes) are plain local-part text by the time they get here, so they
 * can never route anything anywhere.
 */
#ifndef MXGATE_RELAY_H
#define MXGATE_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

struct config;
struct domain_conf;

enum relay_verdict {
	RELAY_LOCAL,	/* one of our domains: *dc is set */
	RELAY_CLIENT,	/* not ours, but this client may relay */
	RELAY_DENIED,
};

/* authenticated: the client passed SMTP AUTH (it may relay). */
enum relay_verdict relay_check(const struct config *,
		    const struct sockaddr *client, bool authenticated,
		    const char *domain, size_t dlen, bool literal,
		    const struct domain_conf **dc);
const char	*relay_verdict_name(enum relay_verdict);

#endif
