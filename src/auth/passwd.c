/*
 * passwd.c - the password file (see passwd.h): the line parser, the
 * sorted table, crypt(3) verification and hashing through libcrypt.
 * Owns: the file's text (entries point into one copy of it).
 * Never: logs a password or a hash; compares hashes in variable time.
 * Untrusted: the identity and password given to passwd_verify().
 */
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passwd.h"
#include "sender_map.h"

/* For an empty file: a setting that costs what a SHA-512-crypt does. */
#define PASSWD_DUMMY	"$6$mxgateDummySalt"

struct passwd_ent {
	const char	*user;		/* NUL-ended, into text */
	const char	*hash;
};

struct passwd_file {
	_Atomic int		 refs;
	char			*text;		/* the file, cut up in place */
	struct passwd_ent	*v;		/* sorted by user */
	size_t			 n;
	const char		*dummy;		/* setting for unknown users */
	struct sender_map	*senders;	/* sender_login_map; or NULL */
};

struct passwd_ld {
	const char	*name;
	passwd_err_fn	*err;
	void		*arg;
	unsigned	 nbad;
};

static void
passwd_err(struct passwd_ld *ld, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
passwd_err(struct passwd_ld *ld, unsigned line, const char *fmt, ...)
{
	char	msg[256];
	va_list	ap;

	if (++ld->nbad > PASSWD_ERRORS_MAX || ld->err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->err(ld->arg, ld->name, line, msg);
}

bool
passwd_user_valid(const char *u, size_t len)
{
	size_t	i;
	char	c;

	if (len == 0 || len > PASSWD_USER_MAX)
		return false;
	for (i = 0; i < len; i++) {
		c = u[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("._%+-@", c) != NULL) ||
		    c == '\0')
			return false;
	}
	return true;
}

/* A crypt(3) hash: "$id$...", printable, no ':' or blank. */
static bool
passwd_hash_syntax(const char *h, size_t len)
{
	size_t	i;

	if (len < 4 || len > PASSWD_HASH_MAX || h[0] != '$')
		return false;
	for (i = 0; i < len; i++)
		if (h[i] <= ' ' || h[i] >= 0x7f || h[i] == ':')
			return false;
	return true;
}

enum parse_rc
passwd_parse_line(const char *s, size_t len, struct passwd_line *pl,
    const char **why)
{
	const char	*colon;

	memset(pl, 0, sizeof(*pl));
	*why = NULL;
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > PASSWD_LINE_MAX) {
		*why = "line too long";
		return PARSE_TOOLONG;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	if (len == 0 || *s == '#')
		return PARSE_OK;
	if ((colon = memchr(s, ':', len)) == NULL) {
		*why = "expected user:hash";
		return PARSE_BAD;
	}
	pl->user = s;
	pl->ulen = (size_t)(colon - s);
	pl->hash = colon + 1;
	pl->hlen = len - pl->ulen - 1;
	if (!passwd_user_valid(pl->user, pl->ulen)) {
		*why = "bad user name (1 to 255 of letters, digits, "
		    "\"._%+-@\")";
		return PARSE_BAD;
	}
	if (!passwd_hash_syntax(pl->hash, pl->hlen)) {
		*why = "bad hash (expected a crypt(3) hash such as $y$... "
		    "from `mxgate passwd USER`)";
		return PARSE_BAD;
	}
	return PARSE_OK;
}

static int
passwd_ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct passwd_ent *)a)->user,
	    ((const struct passwd_ent *)b)->user);
}

/* One parsed line into the table; NUL-ends its fields in place. */
static void
passwd_add(struct passwd_file *pf, struct passwd_ld *ld,
    struct passwd_line *pl, unsigned line)
{
	int	cs;

	((char *)pl->user)[pl->ulen] = '\0';
	((char *)pl->hash)[pl->hlen] = '\0';
	cs = crypt_checksalt(pl->hash);
	if (cs == CRYPT_SALT_METHOD_LEGACY) {
		passwd_err(ld, line, "user %s: weak hash method; make a new "
		    "hash with `mxgate passwd USER`", pl->user);
		return;
	}
	if (cs != CRYPT_SALT_OK) {
		passwd_err(ld, line, "user %s: hash method not supported by "
		    "libcrypt", pl->user);
		return;
	}
	pf->v[pf->n].user = pl->user;
	pf->v[pf->n].hash = pl->hash;
	pf->n++;
}

/* Split pf->text (len bytes, NUL after) into lines and entries. */
static void
passwd_parse_text(struct passwd_file *pf, struct passwd_ld *ld, size_t len)
{
	struct passwd_line	 pl;
	const char		*why;
	char			*p = pf->text, *end = pf->text + len, *nl;
	unsigned		 line = 0;
	size_t			 llen;

	while (p < end) {
		line++;
		nl = memchr(p, '\n', (size_t)(end - p));
		llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (memchr(p, '\0', llen) != NULL)
			passwd_err(ld, line, "NUL byte in line");
		else if (passwd_parse_line(p, llen, &pl, &why) != PARSE_OK)
			passwd_err(ld, line, "%s", why);
		else if (pl.ulen > 0)
			passwd_add(pf, ld, &pl, line);
		p += llen + 1;
	}
}

static void
passwd_check_dups(struct passwd_file *pf, struct passwd_ld *ld)
{
	size_t	i;

	for (i = 1; i < pf->n; i++)
		if (strcmp(pf->v[i - 1].user, pf->v[i].user) == 0)
			passwd_err(ld, 0, "user %s is listed twice",
			    pf->v[i].user);
}

struct passwd_file *
passwd_load_mem(const char *text, size_t len, const char *name,
    passwd_err_fn *err, void *arg)
{
	struct passwd_ld	 ld = { name ? name : "-", err, arg, 0 };
	struct passwd_file	*pf;

	if (len > PASSWD_FILE_MAX) {
		passwd_err(&ld, 0, "the file is larger than %d bytes",
		    PASSWD_FILE_MAX);
		return NULL;
	}
	if ((pf = calloc(1, sizeof(*pf))) == NULL) {
		passwd_err(&ld, 0, "out of memory");
		return NULL;
	}
	atomic_init(&pf->refs, 1);
	/* An entry takes 6 bytes at least ("u:$y$x"). */
	if ((pf->text = malloc(len + 1)) == NULL ||
	    (pf->v = calloc(len / 6 + 1, sizeof(*pf->v))) == NULL) {
		passwd_err(&ld, 0, "out of memory");
		passwd_unref(pf);
		return NULL;
	}
	if (len > 0)
		memcpy(pf->text, text, len);
	pf->text[len] = '\0';
	passwd_parse_text(pf, &ld, len);
	qsort(pf->v, pf->n, sizeof(*pf->v), passwd_ent_cmp);
	passwd_check_dups(pf, &ld);
	if (ld.nbad > PASSWD_ERRORS_MAX)
		passwd_err(&ld, 0, "%u errors in all", ld.nbad - 1);
	if (ld.nbad > 0) {
		passwd_unref(pf);
		return NULL;
	}
	pf->dummy = pf->n > 0 ? pf->v[0].hash : PASSWD_DUMMY;
	return pf;
}

struct passwd_file *
passwd_load(const char *path, passwd_err_fn *err, void *arg)
{
	struct passwd_ld	 ld = { path, err, arg, 0 };
	struct passwd_file	*pf = NULL;
	struct stat		 st;
	FILE			*fp;
	char			*text = NULL;
	size_t			 n = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		passwd_err(&ld, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode))
		passwd_err(&ld, 0, "not a regular file");
	else if (st.st_size > PASSWD_FILE_MAX)
		passwd_err(&ld, 0, "the file is larger than %d bytes",
		    PASSWD_FILE_MAX);
	else if ((text = malloc((size_t)st.st_size + 1)) == NULL)
		passwd_err(&ld, 0, "out of memory");
	else if ((n = fread(text, 1, (size_t)st.st_size, fp)) <
	    (size_t)st.st_size && ferror(fp))
		passwd_err(&ld, 0, "cannot read: %s", strerror(errno));
	else
		pf = passwd_load_mem(text, n, path, err, arg);
	if (text != NULL)
		explicit_bzero(text, n);
	free(text);
	fclose(fp);
	return pf;
}

struct passwd_file *
passwd_ref(struct passwd_file *pf)
{
	atomic_fetch_add_explicit(&pf->refs, 1, memory_order_relaxed);
	return pf;
}

void
passwd_unref(struct passwd_file *pf)
{
	if (pf == NULL || atomic_fetch_sub_explicit(&pf->refs, 1,
	    memory_order_acq_rel) > 1)
		return;
	if (pf->text != NULL)
		explicit_bzero(pf->text, strlen(pf->text));
	free(pf->text);
	free(pf->v);
	sender_map_free(pf->senders);
	free(pf);
}

void
passwd_set_senders(struct passwd_file *pf, struct sender_map *m)
{
	sender_map_free(pf->senders);
	pf->senders = m;
}

const struct sender_map *
passwd_senders(const struct passwd_file *pf)
{
	return pf != NULL ? pf->senders : NULL;
}

size_t
passwd_count(const struct passwd_file *pf)
{
	return pf != NULL ? pf->n : 0;
}

/* Equal strings, in a time that depends on their lengths only. */
static bool
passwd_same(const char *a, const char *b)
{
	size_t		la = strlen(a), lb = strlen(b), i;
	unsigned char	d = la != lb;

	for (i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool
passwd_verify(const struct passwd_file *pf, const char *user,
    const char *pass)
{
	struct passwd_ent	 key = { user, NULL }, *e = NULL;
	struct crypt_data	*cd;
	const char		*h;
	bool			 ok = false;

	if (pf != NULL && pf->n > 0)
		e = bsearch(&key, pf->v, pf->n, sizeof(*pf->v),
		    passwd_ent_cmp);
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return false;
	/* An unknown user is hashed too: no timing tells who exists. */
	h = crypt_r(pass, e != NULL ? e->hash : pf != NULL ? pf->dummy :
	    PASSWD_DUMMY, cd);
	if (h != NULL && h[0] == '$' && e != NULL)
		ok = passwd_same(h, e->hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int
passwd_hash(const char *pass, char *out, size_t outlen)
{
	char			 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data	*cd;
	const char		*h;
	int			 rc = -1;

	if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof(salt)) == NULL &&
	    crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt)) == NULL)
		return -1;
	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return -1;
	h = crypt_r(pass, salt, cd);
	if (h != NULL && h[0] == '$' && strlen(h) < outlen) {
		memcpy(out, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}
