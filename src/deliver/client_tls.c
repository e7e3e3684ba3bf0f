/*
 * client_tls.c - outbound TLS policy over OpenSSL (see client_tls.h).
 * Owns: the client SSL_CTX settings (as inbound: TLS 1.2+, tls_ciphers),
 * SNI, the verification parameters (X509_VERIFY_PARAM host or IP), the
 * certificate's subject and fingerprint, and the verdict: chain and name
 * (OpenSSL's verify result, collected after the handshake so the reason
 * can be told) or a pinned sha256 fingerprint; for DANE, a TLSA record
 * that matches the leaf (DANE-EE, no name or date check: RFC 7672
 * 3.1.1) or a certificate of the chain the leaf then chains to, with the
 * MX host's name (DANE-TA, RFC 7672 3.1.2, 3.2).
 * Never: fails the handshake itself (SSL_VERIFY_NONE: client.c defers
 * with the reason); falls back to plaintext (client.c decides by level).
 * Untrusted: the peer's certificate (parsed by OpenSSL; its subject is
 * escaped and cut before it is logged).  RFC 3207, 6125, 8996, 7817,
 * 7672.
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
#include "../net/tls.h"
#include "client_tls.h"
#include "dane.h"

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
	case CLIENT_TLS_DANE:
		return "dane";
	}
	return "?";
}

void *
client_tls_ctx_new(bool tls12, bool tls13, const char *ciphers, char *why,
    size_t whylen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		(void)tls_err_text(why, whylen, "cannot create a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, tls12 ? TLS1_2_VERSION :
	    TLS1_3_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx,
	    tls13 ? TLS1_3_VERSION : TLS1_2_VERSION) != 1) {
		(void)tls_err_text(why, whylen, "tls_protocols");
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (ciphers != NULL && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		(void)tls_err_text(why, whylen, "tls_ciphers: no usable cipher");
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
		(void)tls_err_text(why, whylen, "cannot load the CA file");
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

/* Does t match x?  Its DER and SPKI DER are made here. */
static bool
client_tls_dane_match(const struct dane_tlsa *t, X509 *x)
{
	uint8_t	*cert = NULL, *spki = NULL;
	int	 certlen, spkilen;
	bool	 ok;

	certlen = i2d_X509(x, &cert);
	spkilen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
	ok = certlen > 0 && spkilen > 0 && dane_match(t, cert,
	    (size_t)certlen, spki, (size_t)spkilen);
	OPENSSL_free(cert);
	OPENSSL_free(spki);
	return ok;
}

/*
 * DANE-TA: ta (a certificate the server sent that a usage-2 record
 * matched) is the one trust anchor; the leaf must chain to it (the
 * certificates between taken from what the server sent) and carry name.
 * 0 when it does, else OpenSSL's verify error.
 */
static long
client_tls_dane_ta(X509 *leaf, STACK_OF(X509) *chain, X509 *ta,
    const char *name)
{
	X509_STORE		*st;
	X509_STORE_CTX		*xc = NULL;
	X509_VERIFY_PARAM	*vp;
	long			 vr = X509_V_ERR_UNSPECIFIED;

	if ((st = X509_STORE_new()) == NULL || X509_STORE_add_cert(st, ta)
	    != 1 || (xc = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(xc, st, leaf, chain) != 1)
		goto done;
	vp = X509_STORE_CTX_get0_param(xc);
	/* the anchor need not be self-signed (RFC 7671 5.2.2) */
	X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_PARTIAL_CHAIN);
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_host(vp, name, 0) != 1)
		goto done;
	vr = X509_verify_cert(xc) == 1 ? X509_V_OK :
	    X509_STORE_CTX_get_error(xc);
done:
	X509_STORE_CTX_free(xc);
	X509_STORE_free(st);
	ERR_clear_error();
	return vr;
}

/* The DANE verdict for leaf: "dane-ee", "dane-ta", or fail with why. */
static bool
client_tls_dane(SSL *ssl, X509 *leaf, const struct client_tls_policy *p,
    const char *name, struct client_tls_info *ti)
{
	STACK_OF(X509)	*chain = SSL_get_peer_cert_chain(ssl);
	X509		*x;
	long		 vr = X509_V_OK;
	size_t		 i;
	int		 k;

	for (i = 0; i < p->ntlsa; i++)
		if (p->tlsa[i].usage == DANE_USAGE_DANE_EE &&
		    client_tls_dane_match(&p->tlsa[i], leaf)) {
			ti->verified = "dane-ee";
			return true;
		}
	for (k = 0; chain != NULL && k < sk_X509_num(chain); k++) {
		x = sk_X509_value(chain, k);
		for (i = 0; i < p->ntlsa; i++) {
			if (p->tlsa[i].usage != DANE_USAGE_DANE_TA ||
			    !client_tls_dane_match(&p->tlsa[i], x))
				continue;
			if ((vr = client_tls_dane_ta(leaf, chain, x, name)) ==
			    X509_V_OK) {
				ti->verified = "dane-ta";
				return true;
			}
		}
	}
	if (vr != X509_V_OK)
		snprintf(ti->why, sizeof(ti->why), "DANE-TA: %s",
		    X509_verify_cert_error_string(vr));
	else
		snprintf(ti->why, sizeof(ti->why), "no TLSA record of %s "
		    "matches the certificate (%zu usable)",
		    log_esc(name, strlen(name), 120), p->ntlsa);
	return false;
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

	bool		 dane = false;

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
		if (p->level == CLIENT_TLS_DANE)
			dane = client_tls_dane(ssl, peer, p,
			    client_tls_name(p, dest_name), ti);
		X509_free(peer);
	}
	ERR_clear_error();
	if (p->level < CLIENT_TLS_VERIFY)
		return true;
	if (p->level == CLIENT_TLS_DANE && !dane) {
		ti->verified = "fail";
		if (peer == NULL)
			snprintf(ti->why, sizeof(ti->why), "no server "
			    "certificate");
		return false;
	}
	if (dane)
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
