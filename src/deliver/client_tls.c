/*
 * client_tls.c - outbound TLS policy over OpenSSL (see client_tls.h).
 * Owns: the client SSL_CTX settings (as inbound: TLS 1.2+, tls_ciphers),
 * SNI, the verification parameters (X509_VERIFY_PARAM host or IP), the
 * certificate's subject and fingerprint, and the verdict: chain and name
 * (OpenSSL's verify result, collected after the handshake so the reason
 * can be told) or a pinned sha256 fingerprint.
 * Never: fails the handshake itself (SSL_VERIFY_NONE: client.c defers
 * with the reason); falls back to plaintext (client.c decides by level).
 * Untrusted: the peer's certificate (parsed by OpenSSL; its subject is
 * escaped and cut before it is logged).  RFC 3207, 6125, 8996, 7817.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "../lib/log.h"
#include "client_tls.h"

const char *
client_tls_level_name(enum client_tls_level l)
{
	switch (l) {
	case CLIENT_TLS_NONE:
		return "none";
	case CLIENT_TLS_MAY:
		return "may";
	case CLIENT_TLS_ENCRYPT:
		return "encrypt";
	case CLIENT_TLS_VERIFY:
		return "verify";
	}
	return "?";
}

static void
client_tls_why(char *why, size_t len, const char *what)
{
	unsigned long	e = ERR_get_error();
	char		eb[200];

	if (e == 0)
		snprintf(why, len, "%s", what);
	else {
		ERR_error_string_n(e, eb, sizeof(eb));
		snprintf(why, len, "%s: %s", what, eb);
	}
	ERR_clear_error();
}

void *
client_tls_ctx_new(bool tls12, bool tls13, const char *ciphers, char *why,
    size_t whylen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		client_tls_why(why, whylen, "cannot create a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, tls12 ? TLS1_2_VERSION :
	    TLS1_3_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx,
	    tls13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
		client_tls_why(why, whylen, "tls_protocols");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (ciphers != NULL && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		client_tls_why(why, whylen, "tls_ciphers: no usable cipher");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* The system's CAs, for verify without a CA file; a system without
	 * them still sends mail at may and encrypt. */
	if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		log_event(LOG_LVL_WARNING, "client_tls", "msg=\"no system CA "
		    "store: verify without a CA file will defer\"");
	ERR_clear_error();
	return ctx;
}

void
client_tls_ctx_free(void *ctx)
{
	SSL_CTX_free(ctx);
}

void *
client_tls_store_load(const char *path, char *why, size_t whylen)
{
	X509_STORE	*st;

	if ((st = X509_STORE_new()) == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	if (X509_STORE_load_file(st, path) != 1) {
		client_tls_why(why, whylen, "cannot load the CA file");
		X509_STORE_free(st);
		return NULL;
	}
	return st;
}

void
client_tls_store_free(void *st)
{
	X509_STORE_free(st);
}

static bool
client_tls_is_ip(const char *name)
{
	unsigned char	a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1;
}

static const char *
client_tls_name(const struct client_tls_policy *p, const char *dest_name)
{
	return p->name[0] != '\0' ? p->name : dest_name;
}

void *
client_tls_ssl_new(void *ctx, const struct client_tls_policy *p,
    const char *dest_name)
{
	const char		*name = client_tls_name(p, dest_name);
	X509_VERIFY_PARAM	*vp;
	SSL			*ssl;

	if (ctx == NULL || (ssl = SSL_new(ctx)) == NULL)
		return NULL;
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);	/* judged after */
	/* RFC 6066 3: a host name, never an address literal */
	if (name[0] != '\0' && !client_tls_is_ip(name))
		(void)SSL_set_tlsext_host_name(ssl, name);
	if (p->level == CLIENT_TLS_VERIFY) {
		if (p->store != NULL &&
		    SSL_set1_verify_cert_store(ssl, p->store) != 1)
			goto fail;
		vp = SSL_get0_param(ssl);
		/* RFC 6125 6.4.3: a wildcard is a whole left-most label */
		X509_VERIFY_PARAM_set_hostflags(vp,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (name[0] != '\0' && (client_tls_is_ip(name) ?
		    X509_VERIFY_PARAM_set1_ip_asc(vp, name) :
		    X509_VERIFY_PARAM_set1_host(vp, name, 0)) != 1)
			goto fail;
	}
	return ssl;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

static void
client_tls_subject(X509 *x, char *out, size_t len)
{
	BIO	*b = BIO_new(BIO_s_mem());
	char	*data;
	long	 n;

	snprintf(out, len, "?");
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
	    XN_FLAG_RFC2253) >= 0 && (n = BIO_get_mem_data(b, &data)) > 0)
		snprintf(out, len, "%s", log_text(data, (size_t)n, 120));
	BIO_free(b);
}

bool
client_tls_judge(void *sslp, const struct client_tls_policy *p,
    const char *dest_name, struct client_tls_info *ti)
{
	SSL		*ssl = sslp;
	X509		*peer;
	uint8_t		 md[EVP_MAX_MD_SIZE];
	unsigned	 mdlen = 0;
	long		 vr;
	bool		 pinned = false;

	memset(ti, 0, sizeof(*ti));
	snprintf(ti->version, sizeof(ti->version), "%s", SSL_get_version(ssl));
	snprintf(ti->cipher, sizeof(ti->cipher), "%s",
	    SSL_get_cipher_name(ssl));
	snprintf(ti->subject, sizeof(ti->subject), "none");
	snprintf(ti->fp, sizeof(ti->fp), "none");
	ti->verified = "unchecked";
	if ((peer = SSL_get1_peer_certificate(ssl)) != NULL) {
		client_tls_subject(peer, ti->subject, sizeof(ti->subject));
		if (X509_digest(peer, EVP_sha256(), md, &mdlen) == 1 &&
		    mdlen == FPRINT_SHA256_LEN) {
			fprint_format(md, ti->fp);
			pinned = fprint_match(&p->pins, md);
		}
		X509_free(peer);
	}
	ERR_clear_error();
	if (p->level != CLIENT_TLS_VERIFY)
		return true;
	ti->verified = "fail";
	if (peer == NULL) {
		snprintf(ti->why, sizeof(ti->why), "no server certificate");
		return false;
	}
	if (pinned) {
		ti->verified = "pin";
		return true;
	}
	if (client_tls_name(p, dest_name)[0] == '\0') {
		snprintf(ti->why, sizeof(ti->why), "no name to verify the "
		    "certificate against");
		return false;
	}
	if ((vr = SSL_get_verify_result(ssl)) == X509_V_OK) {
		ti->verified = "ca";
		return true;
	}
	snprintf(ti->why, sizeof(ti->why), "%s%s",
	    X509_verify_cert_error_string(vr), p->pins.n > 0 ?
	    "; fingerprint not pinned" : "");
	return false;
}
