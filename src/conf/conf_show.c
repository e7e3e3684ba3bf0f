/*
 * conf_show.c - a snapshot as text: `mxgate config` (every key with the
 * value in force, or with -n only what differs, like postconf), the keys
 * two snapshots set differently (the reload report), the default path.
 * Owns: the printed form of a snapshot.  Never: parses a value itself
 * (conf_keys.c judges values), reads files.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf_keys.h"

const char *
conf_default_path(void)
{
	const char	*e = getenv("MXGATE_CONF");

	return e != NULL && *e != '\0' ? e : CONF_DEFAULT_PATH;
}

/* The text a key has when the file does not set it. */
static const char *
conf_show_default(const struct conf_key *k, char *host, size_t hostlen)
{
	if (!(k->flags & CK_SYSHOST))
		return k->dflt;
	if (gethostname(host, hostlen - 1) == -1)
		return "";
	host[hostlen - 1] = '\0';
	return host;
}

/* Is key i among the names asked for (none asked: all are)? */
static bool
conf_show_wanted(size_t i, char *const *keys, size_t nkeys)
{
	size_t	j;

	if (nkeys == 0)
		return true;
	for (j = 0; j < nkeys; j++)
		if (strcmp(keys[j], conf_keys[i].name) == 0)
			return true;
	return false;
}

static void
conf_show_line(FILE *fp, const char *key, const char *text)
{
	fprintf(fp, "%s =%s%s\n", key, *text ? " " : "", text);
}

/* One [domain] section: what it sets (or, -n, what differs from the
 * global value it would inherit); nothing if there is nothing. */
static void
conf_show_domain(FILE *fp, const struct config *c,
    const struct domain_conf *d, bool nondefault, char *const *keys,
    size_t nkeys)
{
	const struct conf_key	*k;
	bool			 head = false;
	size_t			 i;

	for (i = 0; i < CONF_NKEYS; i++) {
		k = &conf_keys[i];
		if (!(k->flags & CK_DOMAIN) || !conf_show_wanted(i, keys,
		    nkeys) || d->key_text == NULL || d->key_text[i] == NULL)
			continue;
		if (nondefault && (d->key_line[i] == 0 || conf_value_same(k,
		    d->key_text[i], c->key_text[i])))
			continue;
		if (!head)
			fprintf(fp, "\n[domain %s]\n", d->name);
		head = true;
		conf_show_line(fp, k->name, d->key_text[i]);
	}
}

void
conf_print(FILE *fp, const struct config *c, bool nondefault,
    char *const *keys, size_t nkeys)
{
	const struct conf_key	*k;
	char			 host[CONF_NAME_MAX + 2];
	size_t			 i, j;

	/* the keys asked for in the order asked, as postconf does */
	for (j = 0; j < (nkeys ? nkeys : CONF_NKEYS); j++) {
		int	ix = nkeys ? conf_key_find(keys[j]) : (int)j;

		if (ix < 0)
			continue;
		k = &conf_keys[ix];
		if (nondefault && conf_value_same(k, c->key_text[ix],
		    conf_show_default(k, host, sizeof(host))))
			continue;
		conf_show_line(fp, k->name, c->key_text[ix]);
	}
	for (i = 0; i < c->ndomains; i++)
		conf_show_domain(fp, c, &c->domains[i], nondefault, keys,
		    nkeys);
}

void
conf_diff(const struct config *a, const struct config *b,
    conf_diff_fn *fn, void *arg)
{
	const struct conf_key	*k;
	const struct domain_conf *da;
	size_t			 i, d;

	for (i = 0; i < CONF_NKEYS; i++)
		if (!conf_value_same(&conf_keys[i], a->key_text[i],
		    b->key_text[i]))
			fn(arg, conf_keys[i].name, NULL);
	/* a domain new in b is told by "domains" above */
	for (d = 0; d < b->ndomains; d++) {
		da = conf_domain(a, b->domains[d].name,
		    strlen(b->domains[d].name));
		if (da == NULL || da->key_text == NULL ||
		    b->domains[d].key_text == NULL)
			continue;
		for (i = 0; i < CONF_NKEYS; i++) {
			k = &conf_keys[i];
			if ((k->flags & CK_DOMAIN) && !conf_value_same(k,
			    da->key_text[i], b->domains[d].key_text[i]))
				fn(arg, k->name, b->domains[d].name);
		}
	}
}
