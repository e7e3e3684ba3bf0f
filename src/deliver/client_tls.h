/*
 * client_tls.h - private to src/deliver: the outbound TLS policy of
 * client.c over OpenSSL: the client context, CA stores, a connection's
 * SSL (SNI, the name to verify), and the judgment of a finished
 * handshake against next_hop_tls / relayhost_tls.
 * Never: reads or writes the connection; decides about recipients.
 */
#ifndef MXGATE_CLIENT_TLS_H
#define MXGATE_CLIENT_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/fprint.h"
#include "client.h"

/* What a handshake gave, for the log and the results. */
struct client_tls_info {
	char		 version[16];	/* "TLSv1.3" */
	char		 cipher[64];
	char		 subject[200];	/* RFC 2253, escaped for the log */
	char		 fp[FPRINT_STR_LEN];	/* the leaf's sha256 */
	const char	*verified;	/* "ca", "pin", "fail", "unchecked" */
	char		 why[200];	/* "fail": the reason */
};

/*
 * The client context: TLS 1.2 and 1.3 as tls12/tls13 say (at least one),
 * the TLS 1.2 cipher list of tls_ciphers, no compression or
 * renegotiation, the system's CA store for verify.  NULL with why.
 * Blocking (reads the system store): at start.
 */
void		*client_tls_ctx_new(bool tls12, bool tls13, const char *ciphers,
		    char *why, size_t whylen);
void		 client_tls_ctx_free(void *);
/* The CAs of a PEM file, for client_tls_policy.store; NULL with why.
 * Blocking: at start or on a job. */
void		*client_tls_store_load(const char *path, char *why,
		    size_t whylen);
void		 client_tls_store_free(void *);

/* An SSL for one connection (SSL *), or NULL. */
void		*client_tls_ssl_new(void *ctx, const struct client_tls_policy *,
		    const char *dest_name);
/* After the handshake: fill info; whether the policy is met. */
bool		 client_tls_judge(void *ssl, const struct client_tls_policy *,
		    const char *dest_name, struct client_tls_info *);
const char	*client_tls_level_name(enum client_tls_level);

#endif
