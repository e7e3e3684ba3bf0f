/*
 * outbound.h - what delivery needs to meet next_hop_tls, relayhost_tls
 * and relayhost_auth_file: the TLS client context, the CA stores by file,
 * the smarthost logins; and the policy of one destination from a config
 * snapshot; whether dane = may may trust the resolver.
 * Owns: the cross-key checks of those keys (check-config tells them),
 * and the loaded objects until outbound_free.
 * Never: talks to the network; logs a password.
 */
#ifndef MXGATE_OUTBOUND_H
#define MXGATE_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include "../conf/conf.h"
#include "client.h"

struct outbound;

/*
 * Check the keys together and load the TLS context, every CA file the
 * config names and the auth file.  NULL after reporting each problem to
 * err.  Blocking (reads files): at start and by check-config.
 */
struct outbound	*outbound_load(const struct config *, conf_err_fn *err,
		    void *arg);
void		 outbound_free(struct outbound *);
void		*outbound_ssl_ctx(const struct outbound *);	/* SSL_CTX * */
size_t		 outbound_logins(const struct outbound *);

/*
 * The policy for mail to dc's next hop (dc NULL: the relayhost if relay,
 * else MX, which stays at may).  0 with out filled; 1 when a CA file
 * named since start (a reload) must be loaded first, *ca its path:
 * outbound_load_ca on a job, then ask again.  The logins are those read
 * at start (relayhost_auth_file is a restart key).
 */
int		 outbound_policy(struct outbound *, const struct config *,
		    const struct domain_conf *dc, bool relay,
		    struct client_tls_policy *out, const char **ca);
/*
 * dane = may trusts the AD bit of dns_server's answers: only a resolver
 * on a loopback address (127.0.0.0/8, ::1) named by dns_server will do
 * (not resolv.conf's).  outbound_load refuses the config otherwise; a
 * reload that makes it so leaves DANE off (qmgr.c logs it).
 */
bool		 outbound_dane_ok(const struct config *);
/* Load path's CAs into the cache; 0, or -1 with why.  Blocking; any
 * thread. */
int		 outbound_load_ca(struct outbound *, const char *path,
		    char *why, size_t whylen);

#endif
