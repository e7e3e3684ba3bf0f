/*
 * outbound.c - TLS context, CA stores and smarthost logins for delivery
 * (see outbound.h).  Issue 20.
 * Owns: the checks that tie the outbound keys together; the store cache
 * (by path, filled at start and, after a reload names a new file, by a
 * job; never emptied before outbound_free, so a policy's store pointer
 * stays valid); the translation of a config into a client_tls_policy.
 * Never: blocks the loop (files are read at start or on a job); logs or
 * copies a password anywhere but into the policy handed to client.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../auth/relay_cred.h"
#include "client_tls.h"
#include "outbound.h"

#define OUTBOUND_STORES_MAX	256	/* CA files in one process's life */

struct outbound_store {
	char	*path;
	void	*store;		/* X509_STORE * */
};

struct outbound {
	void			*ctx;		/* SSL_CTX * */
	struct relay_creds	*creds;		/* NULL: none */
	pthread_mutex_t		 mu;		/* stores */
	struct outbound_store	 stores[OUTBOUND_STORES_MAX];
	size_t			 nstores;
};

static void
ob_err(conf_err_fn *err, void *arg, const struct config *c, const char *msg)
{
	err(arg, c->file, 0, msg);
}

/* A level above may needs a TCP hop: maildir and unix sockets have none. */
static bool
ob_check_domain(const struct config *c, const struct domain_conf *d,
    conf_err_fn *err, void *arg)
{
	char	msg[400];

	if (d->tls.level < CONF_TLS_ENCRYPT || (d->hop.kind != HOP_MAILDIR &&
	    d->hop.path == NULL))
		return true;
	snprintf(msg, sizeof(msg), "domain %s: next_hop_tls = %s needs an "
	    "smtp: or lmtp:HOST:PORT next hop (maildir and unix sockets "
	    "never use TLS)", d->name ? d->name : "(global)",
	    d->tls.level == CONF_TLS_VERIFY ? "verify" : "encrypt");
	ob_err(err, arg, c, msg);
	return false;
}

bool
outbound_dane_ok(const struct config *c)
{
	struct in_addr	a4;
	struct in6_addr	a6;
	const char	*h = c->dns_server.host;

	if (h == NULL)
		return false;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static bool
ob_check(const struct config *c, const struct relay_creds *creds,
    conf_err_fn *err, void *arg)
{
	bool	ok = true;
	char	msg[400];
	size_t	i;

	for (i = 0; i < c->ndomains; i++)
		ok &= ob_check_domain(c, &c->domains[i], err, arg);
	if (c->relayhost.host == NULL && c->relayhost_tls.level >=
	    CONF_TLS_ENCRYPT) {
		ob_err(err, arg, c, "relayhost_tls = encrypt or verify needs "
		    "relayhost (mail by MX stays at may)");
		ok = false;
	}
	if (c->dane == CONF_DANE_MAY && !outbound_dane_ok(c)) {
		ob_err(err, arg, c, "dane = may needs dns_server on a loopback "
		    "address (a local DNSSEC-validating resolver, such as "
		    "unbound): the AD bit is trusted only from there");
		ok = false;
	}
	if (c->relayhost.host == NULL && c->relayhost_auth_file != NULL) {
		ob_err(err, arg, c, "relayhost_auth_file needs relayhost");
		ok = false;
	} else if (c->relayhost_auth_file != NULL && creds != NULL &&
	    relay_creds_find(creds, c->relayhost.host,
	    c->relayhost.port) == NULL) {
		snprintf(msg, sizeof(msg), "relayhost_auth_file has no line "
		    "for the relayhost %s:%u", c->relayhost.host,
		    c->relayhost.port);
		ob_err(err, arg, c, msg);
		ok = false;
	}
	return ok;
}

static enum client_tls_level
ob_level(enum conf_tls_level l)
{
	switch (l) {
	case CONF_TLS_NONE:
		return CLIENT_TLS_NONE;
	case CONF_TLS_ENCRYPT:
		return CLIENT_TLS_ENCRYPT;
	case CONF_TLS_VERIFY:
		return CLIENT_TLS_VERIFY;
	default:
		return CLIENT_TLS_MAY;
	}
}

static void *
ob_store_find(struct outbound *ob, const char *path)
{
	void	*st = NULL;
	size_t	 i;

	pthread_mutex_lock(&ob->mu);
	for (i = 0; i < ob->nstores && st == NULL; i++)
		if (strcmp(ob->stores[i].path, path) == 0)
			st = ob->stores[i].store;
	pthread_mutex_unlock(&ob->mu);
	return st;
}

int
outbound_load_ca(struct outbound *ob, const char *path, char *why,
    size_t whylen)
{
	void	*st;
	char	*p;
	int	 rc = 0;

	if (ob_store_find(ob, path) != NULL)
		return 0;
	if ((st = client_tls_store_load(path, why, whylen)) == NULL)
		return -1;
	if ((p = strdup(path)) == NULL) {
		client_tls_store_free(st);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&ob->mu);
	if (ob->nstores == OUTBOUND_STORES_MAX) {
		snprintf(why, whylen, "more than %d CA files since start: "
		    "restart mxgate", OUTBOUND_STORES_MAX);
		rc = -1;
	} else {
		ob->stores[ob->nstores].path = p;
		ob->stores[ob->nstores++].store = st;
		p = NULL;
		st = NULL;
	}
	pthread_mutex_unlock(&ob->mu);
	free(p);
	client_tls_store_free(st);	/* a second loader's copy, or none */
	return rc;
}

static bool
ob_load_ca_key(struct outbound *ob, const struct config *c, const char *key,
    const char *name, const char *path, conf_err_fn *err, void *arg)
{
	char	why[300], msg[700];

	if (path == NULL || outbound_load_ca(ob, path, why, sizeof(why)) == 0)
		return true;
	snprintf(msg, sizeof(msg), "%s%s%s %s: %s", name ? "domain " : "",
	    name ? name : "", name ? ":" : "", key, why);
	ob_err(err, arg, c, msg);
	return false;
}

struct outbound *
outbound_load(const struct config *c, conf_err_fn *err, void *arg)
{
	struct outbound	*ob;
	char		 why[300];
	bool		 ok = true;
	size_t		 i;

	if ((ob = calloc(1, sizeof(*ob))) == NULL) {
		ob_err(err, arg, c, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&ob->mu, NULL);
	if (c->relayhost_auth_file != NULL &&
	    (ob->creds = relay_creds_load(c->relayhost_auth_file, err,
	    arg)) == NULL)
		ok = false;
	ok &= ob_check(c, ob->creds, err, arg);
	ok &= ob_load_ca_key(ob, c, "next_hop_tls_ca_file", NULL,
	    c->dflt.tls.ca_file, err, arg);
	for (i = 0; i < c->ndomains; i++)
		ok &= ob_load_ca_key(ob, c, "next_hop_tls_ca_file",
		    c->domains[i].name, c->domains[i].tls.ca_file, err, arg);
	ok &= ob_load_ca_key(ob, c, "relayhost_tls_ca_file", NULL,
	    c->relayhost_tls.ca_file, err, arg);
	if (ok && (ob->ctx = client_tls_ctx_new(c->tls_protocols &
	    CONF_TLS_V1_2, c->tls_protocols & CONF_TLS_V1_3, c->tls_ciphers,
	    why, sizeof(why))) == NULL) {
		ob_err(err, arg, c, why);
		ok = false;
	}
	if (!ok) {
		outbound_free(ob);
		return NULL;
	}
	return ob;
}

void
outbound_free(struct outbound *ob)
{
	size_t	i;

	if (ob == NULL)
		return;
	for (i = 0; i < ob->nstores; i++) {
		free(ob->stores[i].path);
		client_tls_store_free(ob->stores[i].store);
	}
	relay_creds_free(ob->creds);
	client_tls_ctx_free(ob->ctx);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}

void *
outbound_ssl_ctx(const struct outbound *ob)
{
	return ob != NULL ? ob->ctx : NULL;
}

size_t
outbound_logins(const struct outbound *ob)
{
	return ob != NULL ? relay_creds_count(ob->creds) : 0;
}

int
outbound_policy(struct outbound *ob, const struct config *c,
    const struct domain_conf *dc, bool relay, struct client_tls_policy *out,
    const char **ca)
{
	const struct out_tls_conf	*t = dc != NULL ? &dc->tls :
					    relay ? &c->relayhost_tls : NULL;
	const char			*host = dc != NULL ? dc->hop.host :
					    relay ? c->relayhost.host : NULL;
	const struct relay_cred		*cred;

	memset(out, 0, sizeof(*out));
	*ca = NULL;
	out->level = CLIENT_TLS_MAY;		/* MX: RFC 3207 opportunistic */
	if (t == NULL)
		return 0;
	out->level = ob_level(t->level);
	snprintf(out->name, sizeof(out->name), "%s", t->name != NULL ?
	    t->name : host != NULL ? host : "");
	out->pins = t->pins;
	if (out->level == CLIENT_TLS_VERIFY && t->ca_file != NULL &&
	    (out->store = ob_store_find(ob, t->ca_file)) == NULL) {
		*ca = t->ca_file;
		return 1;
	}
	if (relay && dc == NULL && c->relayhost_auth_file != NULL &&
	    (cred = relay_creds_find(ob->creds, c->relayhost.host,
	    c->relayhost.port)) != NULL) {
		out->auth = true;
		snprintf(out->user, sizeof(out->user), "%s", cred->user);
		snprintf(out->pass, sizeof(out->pass), "%s", cred->pass);
		if (out->level < CLIENT_TLS_ENCRYPT)
			out->level = CLIENT_TLS_ENCRYPT;
	}
	return 0;
}
