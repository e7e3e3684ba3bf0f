/*
 * conf.c - load a config file into an immutable, refcounted snapshot.
 * Owns: lines, [domain NAME] sections, scope rules, defaults, collecting
 * every error (reported in line order), the refcount, domain lookup.
 * Never: judges a value (conf_keys.c does); opens anything but the file.
 * Untrusted: the file; lines <= CONF_LINE_MAX, file <= CONF_FILE_MAX.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf_keys.h"

/*
 * Syntax.  One "key = value" per line; blanks around both are dropped.
 * '#' starts a comment only as the first non-blank of a line: a value runs
 * to the end of its line, so "max_recipients = 50 # more" is an error, not
 * a value silently cut at '#' (and a path or delimiter may hold '#').
 * Global keys come first; "[domain NAME]" then overrides per-domain keys
 * for one domain listed in `domains`.  A CR before LF is ignored; other
 * control characters are errors.
 */

#define CONF_READ_CHUNK	4096

struct conf_scope {
	const char	*name;		/* NULL: global or bad header */
	unsigned	 line;		/* of the section header */
	const char	*val[CONF_NKEYS];	/* into the loader's copy */
	unsigned	 vline[CONF_NKEYS];	/* 0: not set here */
};

struct conf_msg {
	unsigned	 line;
	size_t		 seq;		/* order within one line */
	char		*text;
};

struct conf_ld {
	struct config		*cfg;
	struct conf_scope	*scopes;	/* [0] global, then sections */
	size_t			 nscopes;
	const struct conf_scope	**owner;	/* per domain: section */
	struct conf_msg		*msgs;
	size_t			 nmsgs;
	bool			 nomem;
};

static void	conf_free(struct config *);
static void	conf_texts_free(char **, unsigned *);

static void
conf_msg(struct conf_ld *ld, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
conf_msg(struct conf_ld *ld, unsigned line, const char *fmt, ...)
{
	struct conf_msg	*v;
	char		 text[CONF_WHY_MAX + 128];
	va_list		 ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* grow by doubling: n is a power of two whenever the array is full */
	if ((ld->nmsgs & (ld->nmsgs - 1)) == 0) {
		v = reallocarray(ld->msgs, ld->nmsgs ? ld->nmsgs * 2 : 1,
		    sizeof(*v));
		if (v == NULL) {
			ld->nomem = true;
			return;
		}
		ld->msgs = v;
	}
	if ((ld->msgs[ld->nmsgs].text = strdup(text)) == NULL) {
		ld->nomem = true;
		return;
	}
	ld->msgs[ld->nmsgs].line = line;
	ld->msgs[ld->nmsgs].seq = ld->nmsgs;
	ld->nmsgs++;
}

static int
conf_msg_cmp(const void *a, const void *b)
{
	const struct conf_msg	*x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand every error to err in line order; true if there was none. */
static bool
conf_report(struct conf_ld *ld, const char *file, conf_err_fn *err,
    void *arg)
{
	size_t	i;
	bool	ok = ld->nmsgs == 0 && !ld->nomem;

	if (ld->nmsgs > 1)
		qsort(ld->msgs, ld->nmsgs, sizeof(*ld->msgs), conf_msg_cmp);
	for (i = 0; i < ld->nmsgs; i++) {
		if (err != NULL)
			err(arg, file, ld->msgs[i].line, ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	if (ld->nomem && err != NULL)
		err(arg, file, 0, "out of memory");
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = 0;
	return ok;
}

static struct conf_scope *
conf_scope_add(struct conf_ld *ld, const char *name, unsigned line)
{
	struct conf_scope	*v, *sc;

	if ((ld->nscopes & (ld->nscopes - 1)) == 0) {
		v = reallocarray(ld->scopes, ld->nscopes ? ld->nscopes * 2 : 1,
		    sizeof(*v));
		if (v == NULL) {
			ld->nomem = true;
			return NULL;
		}
		ld->scopes = v;
	}
	sc = &ld->scopes[ld->nscopes++];
	memset(sc, 0, sizeof(*sc));
	sc->name = name;
	sc->line = line;
	return sc;
}

static bool
conf_isblank(char c)
{
	return c == ' ' || c == '\t';
}

/* NAME in "[domain NAME]", blanks allowed inside the brackets; or NULL. */
static char *
conf_section_name(char *s, size_t len, size_t *nlen)
{
	char	*p, *name;

	if (len < 2 || s[len - 1] != ']')
		return NULL;
	for (p = s + 1; conf_isblank(*p); p++)
		;
	if (strncasecmp(p, "domain", 6) != 0 || !conf_isblank(p[6]))
		return NULL;
	for (name = p + 7; conf_isblank(*name); name++)
		;
	*nlen = strcspn(name, " \t]");
	for (p = name + *nlen; conf_isblank(*p); p++)
		;
	if (*nlen == 0 || p != s + len - 1)
		return NULL;
	return name;
}

/* A section header; s is trimmed.  A bad one still opens a section, so
 * the keys under it are checked as per-domain keys. */
static void
conf_parse_section(struct conf_ld *ld, char *s, unsigned line)
{
	char	 norm[CONF_NAME_MAX + 1], qb[CONF_QUOTE_BUF], *name;
	size_t	 len = strlen(s), nlen;
	int	 n;

	if ((name = conf_section_name(s, len, &nlen)) == NULL) {
		conf_msg(ld, line, "malformed section header %s; expected "
		    "[domain NAME]", conf_quote(qb, sizeof(qb), s, len));
		(void)conf_scope_add(ld, NULL, line);
		return;
	}
	if ((n = conf_udomain_norm(name, nlen, norm)) == -1) {
		conf_msg(ld, line, "invalid domain name %s in section header",
		    conf_quote(qb, sizeof(qb), name, nlen));
		(void)conf_scope_add(ld, NULL, line);
		return;
	}
	memcpy(name, norm, (size_t)n + 1);	/* n <= nlen: fits in place */
	(void)conf_scope_add(ld, name, line);
}

/* Hint for the usual slips: a key in the wrong case, or mistyped. */
static void
conf_unknown_key(struct conf_ld *ld, const char *key, unsigned line)
{
	char	qb[CONF_QUOTE_BUF];
	int	i;

	(void)conf_quote(qb, sizeof(qb), key, strlen(key));
	if ((i = conf_key_suggest(key)) >= 0)
		conf_msg(ld, line, "unknown key %s; did you mean '%s'?", qb,
		    conf_keys[i].name);
	else
		conf_msg(ld, line, "unknown key %s", qb);
}

/* "key = value"; s is trimmed, not blank, not a comment. */
static void
conf_parse_pair(struct conf_ld *ld, char *s, unsigned line)
{
	struct conf_scope	*sc = &ld->scopes[ld->nscopes - 1];
	const struct conf_key	*k;
	char			*eq, *end, *val, qb[CONF_QUOTE_BUF];
	int			 i;

	if ((eq = strchr(s, '=')) == NULL) {
		conf_msg(ld, line, "expected 'key = value', got %s",
		    conf_quote(qb, sizeof(qb), s, strlen(s)));
		return;
	}
	for (end = eq; end > s && conf_isblank(end[-1]); end--)
		;
	*end = '\0';
	for (val = eq + 1; conf_isblank(*val); val++)
		;
	if (*s == '\0') {
		conf_msg(ld, line, "missing key before '='");
		return;
	}
	if ((i = conf_key_find(s)) == -1) {
		conf_unknown_key(ld, s, line);
		return;
	}
	k = &conf_keys[i];
	if (ld->nscopes > 1 && !(k->flags & CK_DOMAIN)) {
		conf_msg(ld, line, "key %s cannot be set per domain; global "
		    "keys go before the first [domain] section", k->name);
		return;
	}
	if (sc->vline[i] != 0) {
		conf_msg(ld, line, "duplicate key '%s' (first set on line %u)",
		    k->name, sc->vline[i]);
		return;
	}
	sc->val[i] = val;
	sc->vline[i] = line;
}

/* One line, NUL-terminated in place at len (a '\n' or the end). */
static void
conf_parse_line(struct conf_ld *ld, char *s, size_t len, unsigned line)
{
	size_t		 i;
	unsigned char	 c;

	if (len > 0 && s[len - 1] == '\r')
		len--;			/* CRLF from a Windows editor */
	if (len > CONF_LINE_MAX) {
		conf_msg(ld, line, "line is longer than %d bytes",
		    CONF_LINE_MAX);
		return;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			conf_msg(ld, line, "control character \\x%02x in "
			    "column %zu", c, i + 1);
			return;
		}
	}
	while (len > 0 && conf_isblank(s[len - 1]))
		len--;
	s[len] = '\0';
	while (conf_isblank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return;
	if (*s == '[')
		conf_parse_section(ld, s, line);
	else
		conf_parse_pair(ld, s, line);
}

static void
conf_parse_text(struct conf_ld *ld, char *text, size_t len)
{
	char		*p = text, *end = text + len, *nl;
	size_t		 llen;
	unsigned	 line = 0;

	while (p < end && !ld->nomem) {
		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		conf_parse_line(ld, p, llen, line);
		p += llen + 1;
	}
}

static void *
conf_field(struct config *cfg, struct domain_conf *dom,
    const struct conf_key *k)
{
	if (k->flags & CK_DOMAIN)
		return (char *)dom + k->off;
	return (char *)cfg + k->off;
}

/*
 * Parse text into field.  Errors go to the list when report is set, or
 * when nothing else was reported (then it is news, e.g. out of memory).
 */
static int
conf_apply(struct conf_ld *ld, const struct conf_key *k, const char *text,
    void *field, unsigned line, bool report)
{
	struct conf_env	 env = { ld->cfg, ld->cfg->dirname };
	struct buf	 why;
	int		 rc;

	buf_init(&why, CONF_WHY_MAX);
	rc = conf_types[k->type].set(k, text, field, &env, &why);
	if (rc == -1 && (report || ld->nmsgs == 0))
		conf_msg(ld, line, "%s: %s", k->name,
		    why.len > 0 ? buf_cstr(&why) : "invalid value");
	buf_free(&why);
	return rc;
}

static void
conf_build_global(struct conf_ld *ld)
{
	const struct conf_scope	*g = &ld->scopes[0];
	const struct conf_key	*k;
	const char		*text;
	char			 host[CONF_NAME_MAX + 2], eb[128];
	size_t			 i;

	for (i = 0; i < CONF_NKEYS; i++) {
		k = &conf_keys[i];
		if ((text = g->val[i]) == NULL && (k->flags & CK_SYSHOST)) {
			if (gethostname(host, sizeof(host) - 1) == -1) {
				conf_msg(ld, 0, "%s: cannot read the system "
				    "host name (%s); set %s", k->name,
				    strerror_r(errno, eb, sizeof(eb)), k->name);
				continue;
			}
			host[sizeof(host) - 1] = '\0';
			text = host;
		} else if (text == NULL)
			text = k->dflt;
		(void)conf_apply(ld, k, text, conf_field(ld->cfg,
		    &ld->cfg->dflt, k), g->vline[i], true);
		if ((ld->cfg->key_text[i] = strdup(text)) == NULL)
			ld->nomem = true;
		ld->cfg->key_line[i] = g->vline[i];
	}
}

/* A domain's copy of its per-domain keys' texts: set in its section
 * (line > 0), else the global text. */
static void
conf_domain_texts(struct conf_ld *ld, struct domain_conf *dom,
    const struct conf_scope *own)
{
	size_t	i;

	dom->key_text = calloc(CONF_NKEYS, sizeof(*dom->key_text));
	dom->key_line = calloc(CONF_NKEYS, sizeof(*dom->key_line));
	if (dom->key_text == NULL || dom->key_line == NULL) {
		ld->nomem = true;
		return;
	}
	for (i = 0; i < CONF_NKEYS; i++) {
		if (!(conf_keys[i].flags & CK_DOMAIN))
			continue;
		if (own != NULL && own->val[i] != NULL) {
			dom->key_text[i] = strdup(own->val[i]);
			dom->key_line[i] = own->vline[i];
		} else
			dom->key_text[i] = strdup(ld->cfg->key_text[i] ?
			    ld->cfg->key_text[i] : "");
		if (dom->key_text[i] == NULL)
			ld->nomem = true;
	}
}

static void
conf_texts_free(char **text, unsigned *line)
{
	size_t	i;

	for (i = 0; text != NULL && i < CONF_NKEYS; i++)
		free(text[i]);
	free(text);
	free(line);
}

static ssize_t
conf_domain_index(const struct config *cfg, const char *name)
{
	size_t	i;

	for (i = 0; i < cfg->ndomains; i++)
		if (strcmp(cfg->domains[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void
conf_domain_fields_free(struct config *cfg, struct domain_conf *dom)
{
	size_t	i;

	for (i = 0; i < CONF_NKEYS; i++)
		if ((conf_keys[i].flags & CK_DOMAIN) &&
		    conf_types[conf_keys[i].type].free != NULL)
			conf_types[conf_keys[i].type].free(cfg,
			    conf_field(cfg, dom, &conf_keys[i]));
}

/* Which domain a section overrides; -1 (after saying why) if none. */
static ssize_t
conf_section_owner(struct conf_ld *ld, const struct conf_scope *sc)
{
	ssize_t	d;

	if (sc->name == NULL)
		return -1;		/* malformed; already reported */
	if ((d = conf_domain_index(ld->cfg, sc->name)) == -1) {
		/* with no domains, that is the error to fix first */
		if (ld->cfg->ndomains > 0)
			conf_msg(ld, sc->line, "domain section '%s' is not "
			    "listed in domains", sc->name);
		return -1;
	}
	if (ld->owner[d] != NULL) {
		conf_msg(ld, sc->line, "duplicate section for domain '%s' "
		    "(first on line %u)", sc->name, ld->owner[d]->line);
		return -1;
	}
	ld->owner[d] = sc;
	return d;
}

/* Apply each section's overrides; a section that owns no domain is
 * still checked, into scratch space. */
static void
conf_build_sections(struct conf_ld *ld)
{
	const struct conf_scope	*sc;
	struct domain_conf	 scratch, *dom;
	ssize_t			 d;
	size_t			 s, i;

	for (s = 1; s < ld->nscopes; s++) {
		sc = &ld->scopes[s];
		memset(&scratch, 0, sizeof(scratch));
		d = conf_section_owner(ld, sc);
		dom = d >= 0 ? &ld->cfg->domains[d] : &scratch;
		for (i = 0; i < CONF_NKEYS; i++)
			if (sc->val[i] != NULL)
				(void)conf_apply(ld, &conf_keys[i], sc->val[i],
				    conf_field(ld->cfg, dom, &conf_keys[i]),
				    sc->vline[i], true);
		conf_domain_fields_free(ld->cfg, &scratch);
	}
}

/* Every per-domain key a section did not set comes from the global
 * value (already checked, so errors are not repeated) or the default. */
static void
conf_build_domains(struct conf_ld *ld)
{
	const struct conf_scope	*g = &ld->scopes[0], *own;
	const struct conf_key	*k;
	size_t			 d, i;

	for (d = 0; d < ld->cfg->ndomains; d++) {
		own = ld->owner[d];
		conf_domain_texts(ld, &ld->cfg->domains[d], own);
		for (i = 0; i < CONF_NKEYS; i++) {
			k = &conf_keys[i];
			if (!(k->flags & CK_DOMAIN) ||
			    (own != NULL && own->val[i] != NULL))
				continue;
			(void)conf_apply(ld, k, g->val[i] ? g->val[i] : k->dflt,
			    conf_field(ld->cfg, &ld->cfg->domains[d], k),
			    g->vline[i], false);
		}
	}
}

/* BATV signs with a key: batv_domains without batv_key_file is an
 * error on batv_domains' line. */
static void
conf_check_batv(struct conf_ld *ld)
{
	int	i = conf_key_find("batv_domains");

	if (ld->cfg->batv_ndomains > 0 && ld->cfg->batv_key_file == NULL &&
	    i >= 0)
		conf_msg(ld, ld->cfg->key_line[i], "batv_domains: needs "
		    "batv_key_file (the keys tags are signed with)");
}

static void
conf_build(struct conf_ld *ld)
{
	conf_build_global(ld);
	if (ld->cfg->ndomains > 0 && (ld->owner = calloc(ld->cfg->ndomains,
	    sizeof(*ld->owner))) == NULL) {
		ld->nomem = true;
		return;
	}
	conf_build_sections(ld);
	conf_build_domains(ld);
	conf_check_batv(ld);
}

static struct config *
conf_new(const char *name, const char *dir)
{
	struct config	*cfg;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	atomic_init(&cfg->refs, 1);
	cfg->file = strdup(name != NULL ? name : "-");
	cfg->dirname = strdup(dir != NULL ? dir : ".");
	cfg->key_text = calloc(CONF_NKEYS, sizeof(*cfg->key_text));
	cfg->key_line = calloc(CONF_NKEYS, sizeof(*cfg->key_line));
	if (cfg->file == NULL || cfg->dirname == NULL ||
	    cfg->key_text == NULL || cfg->key_line == NULL) {
		conf_free(cfg);
		return NULL;
	}
	return cfg;
}

/*
 * The loader proper.  dir is used as given (conf_load passes the file's
 * folder through realpath); NULL means ".".  No file system access.
 */
struct config *
conf_load_mem(const char *text, size_t len, const char *name,
    const char *dir, conf_err_fn *err, void *arg)
{
	struct conf_ld	 ld;
	char		*copy = NULL;
	bool		 ok;

	memset(&ld, 0, sizeof(ld));
	if ((ld.cfg = conf_new(name, dir)) == NULL) {
		if (err != NULL)
			err(arg, name != NULL ? name : "-", 0, "out of memory");
		return NULL;
	}
	if (len > CONF_FILE_MAX)
		conf_msg(&ld, 0, "the file is larger than %d bytes",
		    CONF_FILE_MAX);
	else if ((copy = malloc(len + 1)) == NULL ||
	    conf_scope_add(&ld, NULL, 0) == NULL)
		ld.nomem = true;
	else {
		if (len > 0)
			memcpy(copy, text, len);
		copy[len] = '\0';
		conf_parse_text(&ld, copy, len);
		if (!ld.nomem)
			conf_build(&ld);
	}
	ok = conf_report(&ld, ld.cfg->file, err, arg);
	free(ld.owner);
	free(ld.scopes);
	free(copy);
	if (!ok) {
		conf_unref(ld.cfg);
		return NULL;
	}
	return ld.cfg;
}

static void
conf_load_err(conf_err_fn *err, void *arg, const char *path,
    const char *what, int errnum)
{
	char	eb[128], msg[256];

	if (err == NULL)
		return;
	if (errnum == 0)
		(void)snprintf(msg, sizeof(msg), "%s (over %d bytes)", what,
		    CONF_FILE_MAX);
	else
		(void)snprintf(msg, sizeof(msg), "%s: %s", what,
		    strerror_r(errnum, eb, sizeof(eb)));
	err(arg, path, 0, msg);
}

/* The absolute folder of path, for relative paths in the file. */
static char *
conf_folder(const char *path)
{
	const char	*slash = strrchr(path, '/');
	char		*d, *abs;

	if (slash == NULL)
		d = strdup(".");
	else
		d = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (d == NULL)
		return NULL;
	abs = realpath(d, NULL);
	free(d);
	return abs;
}

/* The whole file into b: 0, -1 read error (errno), 1 over b->max. */
static int
conf_read(FILE *fp, struct buf *b)
{
	char	chunk[CONF_READ_CHUNK];
	size_t	n;

	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		if (buf_add(b, chunk, n) == -1) {
			if (b->len + n > b->max)
				return 1;	/* no need to read on */
			errno = ENOMEM;
			return -1;
		}
	return ferror(fp) ? -1 : 0;
}

struct config *
conf_load(const char *path, conf_err_fn *err, void *arg)
{
	struct config	*cfg = NULL;
	struct buf	 b;
	FILE		*fp;
	char		*dir;
	int		 rc;

	if ((fp = fopen(path, "r")) == NULL) {
		conf_load_err(err, arg, path, "cannot open", errno);
		return NULL;
	}
	buf_init(&b, CONF_FILE_MAX);
	errno = 0;
	if ((rc = conf_read(fp, &b)) == -1)
		conf_load_err(err, arg, path, "cannot read",
		    errno ? errno : EIO);
	else if (rc == 1)
		conf_load_err(err, arg, path, "the file is too large", 0);
	else if ((dir = conf_folder(path)) == NULL)
		conf_load_err(err, arg, path, "cannot resolve its folder",
		    errno);
	else {
		cfg = conf_load_mem(buf_cstr(&b), b.len, path, dir, err, arg);
		free(dir);
		/* the BATV keys ride with the snapshot that names them */
		if (cfg != NULL && cfg->batv_key_file != NULL &&
		    (cfg->batv_keys = keyring_load(cfg->batv_key_file,
		    "batv_key_file", err, arg)) == NULL) {
			conf_unref(cfg);
			cfg = NULL;
		}
	}
	fclose(fp);
	buf_free(&b);
	return cfg;
}

struct config *
conf_ref(struct config *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
	return cfg;
}

void
conf_unref(struct config *cfg)
{
	int	old;

	if (cfg == NULL)
		return;
	/* release our writes; the last owner acquires everyone's */
	old = atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel);
	if (old == 1)
		conf_free(cfg);
	else if (old <= 0)
		panic("conf_unref: refs was %d", old);
}

static void
conf_free(struct config *cfg)
{
	const struct conf_key	*k;
	size_t			 i;

	for (i = 0; i < cfg->ndomains; i++) {
		conf_domain_fields_free(cfg, &cfg->domains[i]);
		conf_texts_free(cfg->domains[i].key_text,
		    cfg->domains[i].key_line);
	}
	conf_domain_fields_free(cfg, &cfg->dflt);
	conf_texts_free(cfg->key_text, cfg->key_line);
	for (i = 0; i < CONF_NKEYS; i++) {
		k = &conf_keys[i];
		if (!(k->flags & CK_DOMAIN) && conf_types[k->type].free != NULL)
			conf_types[k->type].free(cfg, conf_field(cfg, NULL, k));
	}
	keyring_free(cfg->batv_keys);
	free(cfg->file);
	free(cfg->dirname);
	free(cfg);
}

static bool
conf_ascii_ieq(const char *a, const char *b, size_t len)
{
	size_t	i;
	char	x, y;

	for (i = 0; i < len; i++) {
		x = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] + 32) : a[i];
		y = b[i] >= 'A' && b[i] <= 'Z' ? (char)(b[i] + 32) : b[i];
		if (x != y)
			return false;
	}
	return true;
}

const struct domain_conf *
conf_domain(const struct config *cfg, const char *name, size_t len)
{
	size_t	i;

	if (cfg == NULL || name == NULL)
		return NULL;
	if (len > 0 && name[len - 1] == '.')
		len--;			/* "example.org." is absolute */
	if (len == 0)
		return NULL;
	for (i = 0; i < cfg->ndomains; i++)
		if (strlen(cfg->domains[i].name) == len &&
		    conf_ascii_ieq(cfg->domains[i].name, name, len))
			return &cfg->domains[i];
	return NULL;
}
