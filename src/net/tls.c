/*
 * tls.c - OpenSSL contexts and the STARTTLS upgrade (see tls.h).
 * Owns: the SSL_CTX settings (protocols, ciphers, options), the filter
 * bufferevent's setup, and its teardown: close_notify, then a bounded
 * linger so the last reply leaves before the socket closes.
 * Never: reads application data; keeps a session pointer.
 * Untrusted: the TLS handshake.  RFC 3207, RFC 8996 (no TLS < 1.2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../conf/conf.h"
#include "tls.h"

#define TLS_LINGER_MS	5000	/* a closing socket's last bytes */

struct tls_ctx {
	SSL_CTX		*ssl;
	_Atomic int	 refs;
};

/* After the filter is freed: the socket's own bufferevent and the SSL,
 * until the close_notify and last reply have left. */
struct tls_linger {
	struct bufferevent	*bev;
	SSL			*ssl;
};

static void	tls_linger_end(struct tls_linger *);

const char *
tls_err_text(char *why, size_t len, const char *what)
{
	unsigned long	e = ERR_get_error();
	char		eb[256];

	if (e == 0)
		snprintf(why, len, "%s", what);
	else {
		ERR_error_string_n(e, eb, sizeof(eb));
		snprintf(why, len, "%s: %s", what, eb);
	}
	ERR_clear_error();
	return why;
}

/* Keys that only make sense together (DESIGN 2.2: AUTH after TLS). */
static int
tls_conf_check(const struct config *c, char *why, size_t len)
{
	bool	cert = c->tls_cert != NULL, auth = c->submission.n > 0 ||
		    c->auth_on_smtp;

	if (cert != (c->tls_key != NULL))
		snprintf(why, len, "tls_cert and tls_key go together: set "
		    "both or neither");
	else if (c->tls_required && !cert)
		snprintf(why, len, "tls_required needs tls_cert and tls_key");
	else if (c->tls_listen.n > 0 && !cert)
		snprintf(why, len, "tls_required_listen needs tls_cert and "
		    "tls_key");
	else if (auth && !cert)
		snprintf(why, len, "AUTH is offered only under TLS: "
		    "submission_listen and auth_on_smtp need tls_cert and "
		    "tls_key");
	else if (auth && c->passwd_file == NULL)
		snprintf(why, len, "submission_listen and auth_on_smtp need "
		    "passwd_file");
	else
		return 0;
	return -1;
}

static int
tls_ctx_setup(SSL_CTX *ssl, const struct config *c, char *why, size_t len)
{
	int	lo = c->tls_protocols & CONF_TLS_V1_2 ? TLS1_2_VERSION :
		    TLS1_3_VERSION;
	int	hi = c->tls_protocols & CONF_TLS_V1_3 ? TLS1_3_VERSION :
		    TLS1_2_VERSION;

	if (SSL_CTX_set_min_proto_version(ssl, lo) != 1 ||
	    SSL_CTX_set_max_proto_version(ssl, hi) != 1) {
		tls_err_text(why, len, "tls_protocols");
		return -1;
	}
	/* The list covers TLS 1.2; TLS 1.3 suites are all strong. */
	if (SSL_CTX_set_cipher_list(ssl, c->tls_ciphers) != 1) {
		tls_err_text(why, len, "tls_ciphers: no usable cipher");
		return -1;
	}
	SSL_CTX_set_options(ssl, SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_dh_auto(ssl, 1);
	(void)SSL_CTX_set_session_id_context(ssl,
	    (const unsigned char *)"mxgate", 6);
	if (SSL_CTX_use_certificate_chain_file(ssl, c->tls_cert) != 1) {
		tls_err_text(why, len, "tls_cert: cannot load");
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl, c->tls_key,
	    SSL_FILETYPE_PEM) != 1) {
		tls_err_text(why, len, "tls_key: cannot load");
		return -1;
	}
	if (SSL_CTX_check_private_key(ssl) != 1) {
		tls_err_text(why, len, "tls_key does not match tls_cert");
		return -1;
	}
	return 0;
}

int
tls_ctx_load(const struct config *c, struct tls_ctx **out, char *why,
    size_t whylen)
{
	struct tls_ctx	*t;

	*out = NULL;
	if (tls_conf_check(c, why, whylen) == -1)
		return -1;
	if (c->tls_cert == NULL)
		return 0;
	if ((t = calloc(1, sizeof(*t))) != NULL)
		atomic_init(&t->refs, 1);
	if (t == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if ((t->ssl = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_err_text(why, whylen, "cannot create a TLS context");
		free(t);
		return -1;
	}
	if (tls_ctx_setup(t->ssl, c, why, whylen) == -1) {
		tls_ctx_free(t);
		return -1;
	}
	*out = t;
	return 0;
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *t)
{
	if (t != NULL)
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

/* Sessions' SSL objects hold their own reference to the SSL_CTX. */
void
tls_ctx_free(struct tls_ctx *t)
{
	if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1,
	    memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(t->ssl);
	free(t);
}

struct bufferevent *
tls_starttls(struct tls_ctx *t, struct bufferevent *plain, size_t out_max)
{
	struct evbuffer		*in = bufferevent_get_input(plain);
	struct bufferevent	*bev;
	bufferevent_data_cb	 rcb, wcb;
	bufferevent_event_cb	 ecb;
	void			*arg;
	size_t			 lo = 0, hi = 0;
	SSL			*ssl;

	/* CVE-2011-0411: what came before the handshake is not TLS data
	 * and never a command: drop it unread. */
	evbuffer_drain(in, evbuffer_get_length(in));
	if (t == NULL || (ssl = SSL_new(t->ssl)) == NULL)
		return NULL;
	bufferevent_getcb(plain, &rcb, &wcb, &ecb, &arg);
	(void)bufferevent_getwatermark(plain, EV_READ, &lo, &hi);
	/*
	 * Deferred callbacks: libevent then reports the handshake's end
	 * (BEV_EVENT_CONNECTED) before the data that came with the client's
	 * Finished; run at once, the read would come first and its EHLO
	 * would be answered as if still in clear.  No BEV_OPT_CLOSE_ON_FREE:
	 * tls_bev_free() lets plain linger.
	 */
	bev = bufferevent_openssl_filter_new(bufferevent_get_base(plain),
	    plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_set_timeouts(plain, NULL, NULL);	/* the filter's count */
	bufferevent_setwatermark(plain, EV_WRITE, 0, out_max);
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	bufferevent_setcb(bev, rcb, wcb, ecb, arg);
	bufferevent_setwatermark(bev, EV_READ, lo, hi);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return bev;
}

bool
tls_bev_info(struct bufferevent *bev, const char **version,
    const char **cipher)
{
	SSL	*ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return false;
	*version = SSL_get_version(ssl);
	*cipher = SSL_get_cipher_name(ssl);
	return *version != NULL && *cipher != NULL;
}

const char *
tls_bev_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long	e = bufferevent_get_openssl_error(bev);

	if (e == 0)
		snprintf(buf, len, "connection closed or not TLS");
	else
		ERR_error_string_n(e, buf, len);
	while (bufferevent_get_openssl_error(bev) != 0)
		;			/* the rest belongs to this one */
	return buf;
}

static void
tls_linger_end(struct tls_linger *l)
{
	bufferevent_free(l->bev);
	SSL_free(l->ssl);
	free(l);
}

static void
tls_linger_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	tls_linger_end(arg);
}

static void
tls_linger_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	tls_linger_end(arg);
}

void
tls_bev_free(struct bufferevent *bev)
{
	struct bufferevent	*plain = bufferevent_get_underlying(bev);
	struct timeval		 tv = { TLS_LINGER_MS / 1000,
				    TLS_LINGER_MS % 1000 * 1000 };
	struct tls_linger	*l;
	SSL			*ssl;

	if (plain == NULL || (ssl = bufferevent_openssl_get_ssl(bev)) ==
	    NULL) {
		bufferevent_free(bev);
		return;
	}
	if (SSL_is_init_finished(ssl))
		(void)SSL_shutdown(ssl);	/* close_notify, into plain */
	ERR_clear_error();
	bufferevent_free(bev);			/* plain and ssl stay */
	if ((l = malloc(sizeof(*l))) == NULL) {
		bufferevent_free(plain);
		SSL_free(ssl);
		return;
	}
	l->bev = plain;
	l->ssl = ssl;
	bufferevent_setcb(plain, NULL, tls_linger_write, tls_linger_event, l);
	bufferevent_setwatermark(plain, EV_WRITE, 0, 0);
	bufferevent_set_timeouts(plain, NULL, &tv);
	bufferevent_disable(plain, EV_READ);
	bufferevent_enable(plain, EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(plain)) == 0)
		tls_linger_end(l);
}
