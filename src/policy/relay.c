/*
 * relay.c - relay control (see relay.h).  An address literal is never
 * one of our domains: mail for user@[192.0.2.1] is relaying.
 */
#include "../conf/conf.h"
#include "relay.h"

enum relay_verdict
relay_check(const struct config *c, const struct sockaddr *client,
    bool authenticated, const char *domain, size_t dlen, bool literal,
    const struct domain_conf **dc)
{
	*dc = NULL;
	if (!literal && (*dc = conf_domain(c, domain, dlen)) != NULL)
		return RELAY_LOCAL;
	if (authenticated || cidr_list_match(&c->relay_networks, client))
		return RELAY_CLIENT;
	return RELAY_DENIED;
}

const char *
relay_verdict_name(enum relay_verdict v)
{
	static const char *const names[] = {
		[RELAY_LOCAL] = "local",
		[RELAY_CLIENT] = "relay",
		[RELAY_DENIED] = "relay_denied",
	};

	return names[v];
}
