/*
 * tls.h - STARTTLS with OpenSSL 3 (RFC 3207): the server context built
 * from tls_cert, tls_key, tls_protocols and tls_ciphers, and the upgrade
 * of a session's plain bufferevent to an OpenSSL filter over it.
 * Never: speaks SMTP; reads or logs what flows through the connection.
 * Untrusted: the peer's handshake (parsed by OpenSSL); bytes the peer
 * pipelined behind STARTTLS, which are dropped unread (CVE-2011-0411).
 */
#ifndef MXGATE_TLS_H
#define MXGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct config;
struct tls_ctx;

/*
 * Check the TLS and AUTH keys that go together (tls_cert with tls_key;
 * tls_required, submission_listen and auth_on_smtp need a certificate;
 * the last two need passwd_file), then load the certificate and key.
 * 0 with *out NULL when no certificate is configured; -1 with why.
 * Blocking (reads files): at start or on a job.
 */
int	tls_ctx_load(const struct config *, struct tls_ctx **out, char *why,
	    size_t whylen);
/* "WHAT: OpenSSL's first queued error" (or WHAT) into why; the queue is
 * emptied.  For the server and the outbound client alike. */
const char *tls_err_text(char *why, size_t len, const char *what);
/* Reference counted (each event loop holds one); free drops one. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *);	/* NULL stays NULL */
void	tls_ctx_free(struct tls_ctx *);

/*
 * After "220 2.0.0 Ready to start TLS" went into plain's output: drop
 * whatever plain has read (pipelined plaintext), and return an OpenSSL
 * filter over plain, accepting, with plain's callbacks and read marks;
 * its writes into plain stop at out_max buffered bytes.  NULL on failure
 * (plain is untouched but for the dropped input).  The handshake's end
 * is BEV_EVENT_CONNECTED, or an error, on the new bufferevent.
 */
struct bufferevent *tls_starttls(struct tls_ctx *, struct bufferevent *plain,
	    size_t out_max);
/* The protocol version and cipher once the handshake is done. */
bool	tls_bev_info(struct bufferevent *, const char **version,
	    const char **cipher);
/* The OpenSSL error behind a failed handshake, or a generic text. */
const char *tls_bev_error(struct bufferevent *, char *buf, size_t len);
/* bufferevent_free(), except that a TLS one first sends close_notify
 * and lets its socket flush what it holds (bounded in time). */
void	tls_bev_free(struct bufferevent *);

#endif
