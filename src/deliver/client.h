/*
 * client.h - outbound SMTP/LMTP client on the event loop, with a pool of
 * reusable connections per destination.
 * Owns: connections, the dialogue, per-recipient results, reuse, timeouts.
 * Never: reads queue files, resolves names (the caller fills addrs), or
 * loads certificates (the caller hands a loaded CA store); sends a
 * password outside TLS.
 * Untrusted: every reply byte.  RFC 5321, 2920, 3207, 1870, 6152, 2033,
 * 6531 (SMTPUTF8).
 */
#ifndef MXGATE_CLIENT_H
#define MXGATE_CLIENT_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/fprint.h"
#include "../lib/parse.h"
#include "dane.h"

struct event_base;

#define CLIENT_ADDR_MAX 8
struct client_pool;
struct client_opts {
	const char	*helo;		/* our name for EHLO/LHLO */
	unsigned	 concurrency;	/* max connections per destination (next_hop_concurrency, default 20) */
	unsigned	 connect_timeout_ms, command_timeout_ms, data_timeout_ms;
	unsigned	 idle_ms;	/* keep an idle connection this long for reuse (e.g. 5000) */
	unsigned	 max_msgs_per_conn;	/* e.g. 100, then QUIT and reconnect */
	void		*ssl_ctx;	/* SSL_CTX * for STARTTLS (TLS 1.2+; the verify store of dests without their own), or NULL for none */
};
/* What TLS a destination must give (next_hop_tls, relayhost_tls). */
enum client_tls_level {
	CLIENT_TLS_NONE = -1,	/* never STARTTLS */
	CLIENT_TLS_MAY = 0,	/* STARTTLS when offered; a failed handshake:
				 * once more in clear.  0: a dest set up
				 * without a policy gets RFC 3207's default */
	CLIENT_TLS_ENCRYPT,	/* TLS or the message is deferred (4.7.5) */
	CLIENT_TLS_VERIFY,	/* TLS, and the certificate chains to store
				 * and names name, or matches a pin */
	CLIENT_TLS_DANE,	/* an MX host with a DNSSEC-secure TLSA RRset
				 * (dane = may): TLS, and the certificate
				 * matches one of tlsa[] (RFC 7672) */
};
#define CLIENT_AUTH_MAX		255	/* user, password: RFC 4616 2 */
struct client_tls_policy {
	enum client_tls_level	 level;
	char			 name[256];	/* verify: the name (or IP) to
						 * match; "" the dest's name */
	void			*store;		/* X509_STORE *: the CAs; NULL:
						 * the context's (system) */
	struct fprint_pins	 pins;
	struct dane_tlsa	 tlsa[DANE_TLSA_MAX];	/* dane: usable records */
	size_t			 ntlsa;
	bool			 auth;		/* AUTH PLAIN/LOGIN, TLS only */
	char			 user[CLIENT_AUTH_MAX + 1];
	char			 pass[CLIENT_AUTH_MAX + 1];
};
struct client_dest {
	char			 key[300];	/* pool key, e.g. "smtp:127.0.0.1:2530", "lmtp:unix:/x", "mx:example.org" */
	bool			 lmtp;
	bool			 unix_sock;
	char			 path[108];	/* unix socket path */
	struct sockaddr_storage	 addrs[CLIENT_ADDR_MAX];	/* tried in order (ports set) */
	size_t			 naddrs;
	char			 name[256];	/* host name for logs / TLS SNI */
	struct client_tls_policy tls;		/* connections are reused only
						 * under the same policy */
};
struct client_rcpt_result {
	unsigned	code;		/* 2xx delivered, 4xx temporary, 5xx permanent */
	char		esc[12];	/* enhanced status, e.g. "5.1.1"; synthesized if the server gave none ("4.4.1" connect failure, "4.4.2" timeout / lost connection, "4.3.0" other) */
	char		text[256];	/* the server's reply line (escaped/printable), or our reason */
	char		mta[256];	/* the host that answered, for DSNs ("" if none) */
	bool		hop_dsn;	/* that host offered DSN (RFC 3461): NOTIFY went with the RCPT */
	char		tls[160];	/* "tls_required=L tls=VERSION tls_cipher=C tls_verified=V" (log words; "" over a unix socket) */
	char		relay[320];	/* for logs: "name[addr]:port" of the connection that answered, "" if none */
};
struct client_msg {
	uint64_t			 id;		/* caller's id, for logs */
	const char			*sender;	/* "" = null sender <> */
	const char *const		*rcpts;
	size_t				 nrcpts;
	bool				 smtputf8;	/* received with SMTPUTF8: see client.c */
	const uint8_t			*body;		/* CRLF lines, NOT dot-stuffed: the client stuffs */
	size_t				 bodylen;
	/* RFC 3461, sent only to a hop that offers DSN: RET (QUEUE_DSN_RET_*), ENVID (xtext or NULL); per recipient NOTIFY bits (0: none) and ORCPT (NULL: none); the arrays may be NULL */
	int				 dsn_ret;
	const char			*dsn_envid;
	const unsigned			*dsn_notify;
	const char *const		*dsn_orcpt;
	struct client_rcpt_result	*results;	/* nrcpts slots, filled before done */
	void	(*done)(void *arg, struct client_msg *);	/* on the loop, exactly once, never inside client_send */
	void				*arg;
};
struct client_pool *client_pool_new(struct event_base *, const struct client_opts *);
/* Queue msg for dest; it goes out on an idle connection, a new one (up to concurrency), or waits. body/rcpts must stay valid until done. */
void	client_send(struct client_pool *, const struct client_dest *, struct client_msg *);
/* QUIT idle connections, fail queued and in-flight messages with 4.3.2 "shutting down" (done called), free. */
void	client_pool_free(struct client_pool *);
/* For stats/tests: connections open to a destination key. */
unsigned client_pool_conns(const struct client_pool *, const char *key);

/* Added: for stats/tests, connection attempts (sockets opened) so far. */
unsigned long client_pool_connects(const struct client_pool *);

/*
 * Reply parser (client_proto.c): pure, fed one line at a time without
 * its CRLF.  A reply is "ddd-text" lines ending with "ddd text" or "ddd"
 * (RFC 5321 4.2.1), every line with the same code.
 */
#define CLIENT_LINE_MAX		512	/* octets with CRLF, RFC 5321 4.5.3.1.5 */
#define CLIENT_CMD_MAX		1024	/* a command we send: RFC 3461 lets
					 * RCPT grow by NOTIFY and ORCPT */
#define CLIENT_ENVID_MAX	100	/* RFC 3461 4.4 */
#define CLIENT_ORCPT_MAX	500	/* RFC 3461 4.2 */
#define CLIENT_REPLY_LINES_MAX	100	/* lines in one reply */

#define CLIENT_EXT_PIPELINING	0x01	/* RFC 2920 */
#define CLIENT_EXT_SIZE		0x02	/* RFC 1870 */
#define CLIENT_EXT_8BITMIME	0x04	/* RFC 6152 */
#define CLIENT_EXT_STARTTLS	0x08	/* RFC 3207 */
#define CLIENT_EXT_ENHANCED	0x10	/* RFC 2034 */
#define CLIENT_EXT_DSN		0x20	/* RFC 3461 */
#define CLIENT_EXT_CHUNKING	0x80	/* RFC 3030 (BDAT) */
#define CLIENT_EXT_SMTPUTF8	0x0100	/* RFC 6531 */
#define CLIENT_EXT_AUTH_PLAIN	0x0200	/* RFC 4954, 4616 */
#define CLIENT_EXT_AUTH_LOGIN	0x0400	/* RFC 4954, draft-murchison */

struct client_reply {
	unsigned	 code;		/* 200..599 */
	char		 esc[12];	/* of the first line, "" if none */
	char		 line[CLIENT_LINE_MAX];	/* first line, NUL-terminated */
	size_t		 linelen;
	unsigned	 nlines;
	unsigned	 ext;		/* EHLO keywords on lines 2.. */
	unsigned long	 size_max;	/* SIZE parameter; 0: none or no limit */
};

void		client_reply_init(struct client_reply *);
/* PARSE_MORE: a continuation line; PARSE_OK: the reply is complete;
 * PARSE_BAD: not a reply line or a code that changed; PARSE_TOOLONG: over
 * CLIENT_LINE_MAX or CLIENT_REPLY_LINES_MAX.  After OK/BAD/TOOLONG init
 * again before the next reply. */
enum parse_rc	client_reply_line(struct client_reply *, const char *, size_t);

#endif
