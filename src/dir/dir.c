/*
 * dir.c - the recipient directory: one interface over its back-ends.
 * Owns: struct dir (refcounted, shared read-only by every worker), the
 * back-end table, query normalisation (case, trailing dot, delimiter,
 * Unicode NFC for UTF-8 addresses: RFC 6531 3.3, RFC 6530 10.1).
 * Never: decides policy, guesses: no directory answers DIR_TEMPFAIL.
 * Untrusted: the query, a peer's RCPT address (already parsed).
 * RFC 5321 2.4 (local parts may be case-sensitive), 4.5.3.1.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/utf8.h"
#include "dir.h"
#include "dir_chain.h"
#include "dir_file.h"
#include "dir_hashed.h"
#include "dir_ldap.h"

#define DIR_QUERY_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define DIR_QUERY_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define DIR_QUERY_KEY_MAX	(DIR_QUERY_LOCAL_MAX + 1 + DIR_QUERY_DOMAIN_MAX)
#define DIR_QUERY_KEYS		2	/* full local part, then before delim */

/* A normalised "local@domain" key. */
struct dir_key {
	const uint8_t	*p;
	size_t		 len;
};

/*
 * What a back-end provides.  lookup is handed the keys in order and
 * answers VALID if any of them is known; all at once, so that a remote
 * back-end can ask one question (an LDAP filter with an OR) and answer
 * DIR_PENDING, calling done(arg, id, verdict) later on the loop.
 */
struct dir_ops {
	const char	*name;
	/* open one link of the chain */
	void		*(*open)(const struct config *, const struct dir_link *,
			    dir_err_fn *, void *);
	enum dir_verdict (*lookup)(void *, const struct dir_key *, size_t,
			    uint64_t, dir_done_fn *, void *);
	size_t		 (*count)(const void *);
	void		 (*close)(void *);
	void		 (*each)(const void *, dir_each_fn *, void *);
	bool		 (*settle)(void *, unsigned ms);	/* NULL: ready */
};

/* One back-end of the chain. */
struct dir_be {
	const struct dir_ops	*ops;
	void			*be;		/* the back-end's own state */
};

struct dir {
	atomic_int		 refs;
	struct dir_be		 v[DIR_CHAIN_MAX];	/* asked in order */
	size_t			 n;
	char			 name[DIR_CHAIN_MAX * 8];  /* "file,hashed" */
	bool			 local_case;	/* keep the local part's case */
};

static void	*dir_be_file_open(const struct config *,
		    const struct dir_link *, dir_err_fn *, void *);
static enum dir_verdict dir_be_file_lookup(void *, const struct dir_key *,
		    size_t, uint64_t, dir_done_fn *, void *);
static size_t	 dir_be_file_count(const void *);
static void	 dir_be_file_close(void *);
static void	 dir_be_file_each(const void *, dir_each_fn *, void *);
static void	*dir_be_hashed_open(const struct config *,
		    const struct dir_link *, dir_err_fn *, void *);
static enum dir_verdict dir_be_hashed_lookup(void *, const struct dir_key *,
		    size_t, uint64_t, dir_done_fn *, void *);
static size_t	 dir_be_hashed_count(const void *);
static void	 dir_be_hashed_close(void *);
static void	*dir_be_ldap_open(const struct config *,
		    const struct dir_link *, dir_err_fn *, void *);
static enum dir_verdict dir_be_ldap_lookup(void *, const struct dir_key *,
		    size_t, uint64_t, dir_done_fn *, void *);
static size_t	 dir_be_ldap_count(const void *);
static void	 dir_be_ldap_close(void *);
static bool	 dir_be_ldap_settle(void *, unsigned);
static size_t	 dir_key_make(uint8_t *, const char *, size_t, const char *,
		    size_t, bool);
static size_t	 dir_delim_cut(const char *, size_t, const char *);

/* One row per enum dir_kind; LDAP and callout add theirs here. */
static const struct dir_ops dir_backends[] = {
	[DIR_KIND_FILE] = { "file", dir_be_file_open, dir_be_file_lookup,
	    dir_be_file_count, dir_be_file_close, dir_be_file_each, NULL },
	[DIR_KIND_HASHED] = { "hashed", dir_be_hashed_open,
	    dir_be_hashed_lookup, dir_be_hashed_count, dir_be_hashed_close,
	    NULL, NULL },
	[DIR_KIND_LDAP] = { "ldap", dir_be_ldap_open, dir_be_ldap_lookup,
	    dir_be_ldap_count, dir_be_ldap_close, NULL, dir_be_ldap_settle },
};

static const char *const dir_verdict_names[] = {
	[DIR_VALID] = "valid",
	[DIR_UNKNOWN] = "unknown",
	[DIR_TEMPFAIL] = "tempfail",
	[DIR_PENDING] = "pending",
};

struct dir *
dir_open(const struct config *cfg, dir_err_fn *err, void *arg)
{
	const struct dir_ops	*ops;
	const struct dir_link	*links;
	struct dir_link		 one;
	struct dir		*d;
	size_t			 i, k, n;

	if (cfg == NULL) {
		if (err != NULL)
			err(arg, "", 0, "no usable directory configured");
		return NULL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		if (err != NULL)
			err(arg, "", 0, "out of memory");
		return NULL;
	}
	atomic_init(&d->refs, 1);
	d->local_case = cfg->localpart_case_sensitive;
	/* A spec with kind and path alone (made by hand) is a chain of one. */
	links = cfg->directory.v;
	if ((n = cfg->directory.n) == 0) {
		one = (struct dir_link){ cfg->directory.kind,
		    cfg->directory.path };
		links = &one;
		n = 1;
	}
	for (i = 0; i < n && i < DIR_CHAIN_MAX; i++) {
		k = (size_t)links[i].kind;
		if (k >= sizeof(dir_backends) / sizeof(dir_backends[0]) ||
		    dir_backends[k].open == NULL) {
			if (err != NULL)
				err(arg, "", 0, "no usable directory "
				    "configured");
			goto bad;
		}
		ops = &dir_backends[k];
		if ((d->v[i].be = ops->open(cfg, &links[i], err, arg)) ==
		    NULL)
			goto bad;
		d->v[i].ops = ops;
		d->n = i + 1;
		k = strlen(d->name);
		(void)snprintf(d->name + k, sizeof(d->name) - k, "%s%s",
		    i > 0 ? "," : "", ops->name);
	}
	return d;
bad:
	for (i = 0; i < d->n; i++)
		d->v[i].ops->close(d->v[i].be);
	free(d);
	return NULL;
}

struct dir *
dir_ref(struct dir *d)
{
	if (d != NULL)
		atomic_fetch_add_explicit(&d->refs, 1, memory_order_relaxed);
	return d;
}

void
dir_unref(struct dir *d)
{
	int	old;
	size_t	i;

	if (d == NULL)
		return;
	old = atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel);
	if (old <= 0)
		panic("dir_unref: refs %d", old);
	if (old > 1)
		return;
	for (i = 0; i < d->n; i++)
		d->v[i].ops->close(d->v[i].be);
	free(d);
}

size_t
dir_count(const struct dir *d)
{
	size_t	i, n = 0;

	for (i = 0; d != NULL && i < d->n; i++)
		n += d->v[i].ops->count(d->v[i].be);
	return n;
}

/* Domains of the entries that are not ours, with a count each. */
struct dir_foreign {
	const struct config	*cfg;
	struct {
		char		 first[DIR_QUERY_KEY_MAX + 1];
		size_t		 dlen;		/* domain: the tail of first */
		unsigned	 n;
	}			 v[DIR_FOREIGN_MAX];
	unsigned		 nv;
	unsigned		 more;		/* entries of domains past nv */
};

static void
dir_foreign_one(void *arg, const char *key, size_t len)
{
	struct dir_foreign	*f = arg;
	const char		*at = memrchr(key, '@', len);
	size_t			 dlen, i;

	if (at == NULL || len > DIR_QUERY_KEY_MAX)
		return;
	dlen = len - (size_t)(at + 1 - key);
	if (conf_domain(f->cfg, at + 1, dlen) != NULL)
		return;
	for (i = 0; i < f->nv; i++)
		if (f->v[i].dlen == dlen && memcmp(f->v[i].first +
		    strlen(f->v[i].first) - dlen, at + 1, dlen) == 0) {
			f->v[i].n++;
			return;
		}
	if (f->nv == DIR_FOREIGN_MAX) {
		f->more++;
		return;
	}
	memcpy(f->v[f->nv].first, key, len);
	f->v[f->nv].first[len] = '\0';
	f->v[f->nv].dlen = dlen;
	f->v[f->nv++].n = 1;
}

unsigned
dir_foreign_domains(const struct dir *d, const struct config *cfg,
    dir_err_fn *warn, void *arg)
{
	struct dir_foreign	*f;
	char			 msg[2 * DIR_QUERY_KEY_MAX + 256];
	const char		*first;
	unsigned		 i, n;

	size_t			 j;

	if (d == NULL || (f = calloc(1, sizeof(*f))) == NULL)
		return 0;
	f->cfg = cfg;
	for (j = 0; j < d->n; j++)
		if (d->v[j].ops->each != NULL)
			d->v[j].ops->each(d->v[j].be, dir_foreign_one, f);
	for (i = 0; i < f->nv; i++) {
		first = f->v[i].first;
		snprintf(msg, sizeof(msg), "warning: %u entr%s for domain "
		    "'%s', which is not in domains, can never match (e.g. "
		    "%s)", f->v[i].n, f->v[i].n == 1 ? "y" : "ies",
		    log_text(first + strlen(first) - f->v[i].dlen,
		    f->v[i].dlen, 255), log_text(first, strlen(first), 320));
		warn(arg, cfg->directory.path, 0, msg);
	}
	if (f->more > 0) {
		snprintf(msg, sizeof(msg), "warning: %u more entries for "
		    "other domains not in domains", f->more);
		warn(arg, cfg->directory.path, 0, msg);
	}
	n = f->nv;
	free(f);
	return n;
}

/*
 * Build "local@domain" in out (DIR_QUERY_KEY_MAX bytes), folded as the
 * back-ends fold their entries: the domain always (RFC 5321 2.4: domains
 * are case-insensitive), the local part unless configured otherwise.
 * A UTF-8 address is normalised as the users file is (NFC, see
 * dir_file_key_utf8); 0 if that fails: no entry can match it then.
 */
static size_t
dir_key_make(uint8_t *out, const char *local, size_t llen,
    const char *domain, size_t dlen, bool local_case)
{
	size_t	i;
	uint8_t	c;

	if (!utf8_is_ascii((const uint8_t *)local, llen) ||
	    !utf8_is_ascii((const uint8_t *)domain, dlen))
		return dir_file_key_utf8((const uint8_t *)local, llen,
		    (const uint8_t *)domain, dlen, local_case, out);
	for (i = 0; i < llen; i++) {
		c = (uint8_t)local[i];
		out[i] = !local_case && (unsigned)(c - 'A') < 26u ?
		    (uint8_t)(c | 0x20) : c;
	}
	out[llen] = '@';
	for (i = 0; i < dlen; i++) {
		c = (uint8_t)domain[i];
		out[llen + 1 + i] = (unsigned)(c - 'A') < 26u ?
		    (uint8_t)(c | 0x20) : c;
	}
	return llen + 1 + dlen;
}

/* Where the first delimiter character is, or len if there is none. */
static size_t
dir_delim_cut(const char *local, size_t len, const char *delim)
{
	size_t	i;

	if (delim == NULL || delim[0] == '\0')
		return len;
	for (i = 0; i < len; i++)	/* strchr finds '\0' too: skip it */
		if (local[i] != '\0' && strchr(delim, local[i]) != NULL)
			return i;
	return len;
}

enum dir_verdict
dir_lookup(struct dir *d, const struct dir_query *q, uint64_t id,
    dir_done_fn *done, void *arg)
{
	return dir_lookup_by(d, q, id, done, arg, NULL);
}

enum dir_verdict
dir_lookup_by(struct dir *d, const struct dir_query *q, uint64_t id,
    dir_done_fn *done, void *arg, const char **by)
{
	uint8_t			bufs[DIR_QUERY_KEYS][DIR_QUERY_KEY_MAX];
	struct dir_key		keys[DIR_QUERY_KEYS];
	struct dir_chain_acc	acc = { false, false };
	enum dir_verdict	v;
	size_t			dlen, cut, i, n = 0;

	if (by != NULL)
		*by = "none";
	if (d == NULL)
		return DIR_TEMPFAIL;	/* no table: never guess */
	if (q == NULL || (q->llen > 0 && q->local == NULL) ||
	    (q->dlen > 0 && q->domain == NULL))
		panic("dir_lookup: bad query");
	dlen = q->dlen;
	if (dlen > 0 && q->domain[dlen - 1] == '.')
		dlen--;
	/* Over RFC 5321's sizes no entry can match. */
	if (q->llen == 0 || q->llen > DIR_QUERY_LOCAL_MAX || dlen == 0 ||
	    dlen > DIR_QUERY_DOMAIN_MAX)
		return DIR_UNKNOWN;
	keys[n].p = bufs[n];
	keys[n].len = dir_key_make(bufs[n], q->local, q->llen, q->domain,
	    dlen, d->local_case);
	n += keys[n].len > 0;
	/* "alice+news" falls back to "alice"; "+news" never to "". */
	cut = dir_delim_cut(q->local, q->llen, q->delim);
	if (cut > 0 && cut < q->llen) {
		keys[n].p = bufs[n];
		keys[n].len = dir_key_make(bufs[n], q->local, cut, q->domain,
		    dlen, d->local_case);
		n += keys[n].len > 0;
	}
	if (n == 0)
		return DIR_UNKNOWN;
	if (d->n == 1) {	/* one back-end: it may answer later */
		if (by != NULL)
			*by = d->v[0].ops->name;
		return d->v[0].ops->lookup(d->v[0].be, keys, n, id, done, arg);
	}
	/*
	 * A chain: every back-end of today answers at once.  One that
	 * answered DIR_PENDING inside a chain would count as TEMPFAIL
	 * (dir_chain_take), never as a guess.
	 */
	for (i = 0; i < d->n; i++) {
		v = d->v[i].ops->lookup(d->v[i].be, keys, n, id, done, arg);
		/* named: the VALID one, else the first TEMPFAIL, else last */
		if (by != NULL && (v == DIR_VALID || !acc.tempfail))
			*by = d->v[i].ops->name;
		if (dir_chain_take(&acc, v))
			break;
	}
	return dir_chain_verdict(&acc);
}

bool
dir_settle(struct dir *d, unsigned ms)
{
	size_t	i;
	bool	ok = true;

	for (i = 0; d != NULL && i < d->n; i++)
		if (d->v[i].ops->settle != NULL)
			ok = d->v[i].ops->settle(d->v[i].be, ms) && ok;
	return ok;
}

const char *
dir_name(const struct dir *d)
{
	return d != NULL ? d->name : "none";
}

const char *
dir_verdict_name(enum dir_verdict v)
{
	if ((unsigned)v >= sizeof(dir_verdict_names) /
	    sizeof(dir_verdict_names[0]))
		return "invalid";
	return dir_verdict_names[v];
}

/* The file back-end: answers at once, never DIR_PENDING. */
static void *
dir_be_file_open(const struct config *cfg, const struct dir_link *l,
    dir_err_fn *err, void *arg)
{
	if (l->path == NULL) {
		if (err != NULL)
			err(arg, "", 0, "no users file configured");
		return NULL;
	}
	return dir_file_load(l->path,
	    cfg->localpart_case_sensitive, err, arg);
}

static enum dir_verdict
dir_be_file_lookup(void *be, const struct dir_key *keys, size_t n,
    uint64_t id, dir_done_fn *done, void *arg)
{
	size_t	i;

	(void)id;
	(void)done;
	(void)arg;
	for (i = 0; i < n; i++)
		if (dir_file_has(be, keys[i].p, keys[i].len))
			return DIR_VALID;
	return DIR_UNKNOWN;
}

static size_t
dir_be_file_count(const void *be)
{
	return dir_file_count(be);
}

static void
dir_be_file_each(const void *be, dir_each_fn *fn, void *arg)
{
	dir_file_each(be, fn, arg);
}

static void
dir_be_file_close(void *be)
{
	dir_file_free(be);
}

/* The hashed back-end: answers at once, never DIR_PENDING. */
static void *
dir_be_hashed_open(const struct config *cfg, const struct dir_link *l,
    dir_err_fn *err, void *arg)
{
	if (l->path == NULL) {
		if (err != NULL)
			err(arg, "", 0, "no hashed file configured");
		return NULL;
	}
	return dir_hashed_load(l->path,
	    cfg->directory_key_file, err, arg);
}

static enum dir_verdict
dir_be_hashed_lookup(void *be, const struct dir_key *keys, size_t n,
    uint64_t id, dir_done_fn *done, void *arg)
{
	size_t	i;

	(void)id;
	(void)done;
	(void)arg;
	for (i = 0; i < n; i++)
		if (dir_hashed_has(be, keys[i].p, keys[i].len))
			return DIR_VALID;
	return DIR_UNKNOWN;
}

static size_t
dir_be_hashed_count(const void *be)
{
	return dir_hashed_count(be);
}

static void
dir_be_hashed_close(void *be)
{
	dir_hashed_free(be);
}

/* The LDAP back-end: sync mode answers at once; lookup mode may answer
 * DIR_PENDING (a chain counts that as TEMPFAIL: see dir_lookup_by). */
static void *
dir_be_ldap_open(const struct config *cfg, const struct dir_link *l,
    dir_err_fn *err, void *arg)
{
	(void)l;
	return dir_ldap_open(cfg, err, arg);
}

static enum dir_verdict
dir_be_ldap_lookup(void *be, const struct dir_key *keys, size_t n,
    uint64_t id, dir_done_fn *done, void *arg)
{
	const uint8_t	*p[DIR_QUERY_KEYS];
	size_t		 len[DIR_QUERY_KEYS], i;

	for (i = 0; i < n && i < DIR_QUERY_KEYS; i++) {
		p[i] = keys[i].p;
		len[i] = keys[i].len;
	}
	return dir_ldap_lookup(be, p, len, i, id, done, arg);
}

static size_t
dir_be_ldap_count(const void *be)
{
	return dir_ldap_count(be);
}

static void
dir_be_ldap_close(void *be)
{
	dir_ldap_close(be);
}

static bool
dir_be_ldap_settle(void *be, unsigned ms)
{
	return dir_ldap_settle(be, ms);
}
