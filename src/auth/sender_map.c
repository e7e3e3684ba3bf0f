/*
 * sender_map.c - the sender login map (see sender_map.h): the line
 * parser, a table of (address, user) pairs sorted for bsearch, and the
 * ownership rule of an authenticated MAIL FROM.
 * Owns: one copy of the file's text; the pairs point into it.
 * Never: logs, replies, or knows about sessions.
 * Untrusted: the address and AUTH name given to sender_owns().
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sender_map.h"

struct sender_pair {
	const char	*addr;		/* NUL-ended key, into text */
	const char	*user;		/* NUL-ended, into text */
};

struct sender_map {
	char			*text;	/* the file, cut up in place */
	struct sender_pair	*v;	/* sorted by (addr, user) */
	size_t			 n;
	size_t			 lines;	/* lines with an entry */
};

struct sender_ld {
	const char	*name;
	passwd_err_fn	*err;
	void		*arg;
	unsigned	 nerr;
};

static void
sender_err(struct sender_ld *ld, unsigned line, const char *fmt, ...)
{
	char	msg[256];
	va_list	ap;

	if (ld->nerr++ >= SENDER_MAP_ERRORS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ld->err(ld->arg, ld->name, line, msg);
}

static bool
sender_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* Printable ASCII except the blank and the separators of a line. */
static bool
sender_addr_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != ',' && c != '#';
}

/* local@domain: one '@', parts 1..RFC 5321 sizes, domain of labels. */
static const char *
sender_addr_check(const char *p, size_t n)
{
	const char	*at;
	size_t		 i, ll, dl, lab = 0;

	for (i = 0; i < n; i++)
		if (!sender_addr_char((unsigned char)p[i]))
			return "bad character in the address";
	if ((at = memchr(p, '@', n)) == NULL)
		return "the address has no '@'";
	ll = (size_t)(at - p);
	dl = n - ll - 1;
	if (memchr(at + 1, '@', dl) != NULL)
		return "the address has more than one '@'";
	if (ll == 0 || ll > SENDER_MAP_LOCAL_MAX)
		return "the local part is empty or over 64 bytes";
	if (dl == 0 || dl > SENDER_MAP_DOMAIN_MAX)
		return "the domain is empty or over 255 bytes";
	for (i = 0; i < dl; i++) {
		char	c = at[1 + i];

		if (c == '.') {
			if (lab == 0)
				return "empty label in the domain";
			lab = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-') {
			if (++lab > 63)
				return "a domain label is over 63 bytes";
		} else
			return "bad character in the domain";
	}
	if (lab == 0)
		return "empty label in the domain";
	return NULL;
}

enum parse_rc
sender_map_parse_line(const char *p, size_t n, struct sender_map_line *l,
    const char **why)
{
	size_t	i = 0, s, e, u;

	memset(l, 0, sizeof(*l));
	*why = NULL;
	if (n > SENDER_MAP_LINE_MAX) {
		*why = "line longer than 1024 bytes";
		return PARSE_TOOLONG;
	}
	if (n > 0 && p[n - 1] == '\r')
		n--;
	while (i < n && sender_ws(p[i]))
		i++;
	if (i == n || p[i] == '#')
		return PARSE_OK;
	s = i;
	while (i < n && !sender_ws(p[i]))
		i++;
	if ((*why = sender_addr_check(p + s, i - s)) != NULL)
		return PARSE_BAD;
	l->aoff = s;
	l->alen = i - s;
	while (i < n && sender_ws(p[i]))
		i++;
	e = n;
	while (e > i && sender_ws(p[e - 1]))
		e--;
	if (i == e) {
		*why = "expected: address user[,user...]";
		l->alen = 0;
		return PARSE_BAD;
	}
	/* users: comma-separated, each a valid AUTH name, none empty */
	for (u = i; u <= e; u++) {
		if (u < e && p[u] != ',')
			continue;
		if (!passwd_user_valid(p + i, u - i)) {
			*why = u == i ? "empty user name" :
			    "bad user name (letters, digits and ._%+-@)";
			l->alen = 0;
			return PARSE_BAD;
		}
		i = u + 1;
	}
	l->uoff = l->aoff + l->alen;
	while (sender_ws(p[l->uoff]))
		l->uoff++;
	l->ulen = e - l->uoff;
	return PARSE_OK;
}

/* The key of an address: domain lower case, local part folded unless
 * local_case.  out holds SENDER_MAP_ADDR_MAX + 1. */
static void
sender_key(char *out, const char *local, size_t ll, const char *dom,
    size_t dl, bool local_case)
{
	size_t	i;

	for (i = 0; i < ll; i++)
		out[i] = local_case || local[i] < 'A' || local[i] > 'Z' ?
		    local[i] : (char)(local[i] - 'A' + 'a');
	out[ll] = '@';
	for (i = 0; i < dl; i++)
		out[ll + 1 + i] = dom[i] < 'A' || dom[i] > 'Z' ? dom[i] :
		    (char)(dom[i] - 'A' + 'a');
	out[ll + 1 + dl] = '\0';
}

static int
sender_pair_cmp(const void *a, const void *b)
{
	const struct sender_pair	*x = a, *y = b;
	int				 c = strcmp(x->addr, y->addr);

	return c != 0 ? c : strcmp(x->user, y->user);
}

struct sender_map *
sender_map_load_mem(const char *text, size_t len, const char *name,
    bool local_case, passwd_err_fn *err, void *arg)
{
	struct sender_ld	 ld = { name, err, arg, 0 };
	struct sender_map	*m;
	struct sender_map_line	 l;
	const char		*why, *at;
	char			*t, *line, *nl, *end;
	size_t			 cap = 0, ll, i, s;
	unsigned		 no = 0;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->text = malloc(len + 1)) == NULL) {
		free(m);
		sender_err(&ld, 0, "out of memory");
		return NULL;
	}
	memcpy(m->text, text, len);
	m->text[len] = '\0';
	end = m->text + len;
	for (line = m->text; line < end; line = nl + 1) {
		no++;
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL)
			nl = end;
		ll = (size_t)(nl - line);
		if (memchr(line, '\0', ll) != NULL) {
			sender_err(&ld, no, "NUL byte in the line");
			continue;
		}
		if (sender_map_parse_line(line, ll, &l, &why) != PARSE_OK) {
			sender_err(&ld, no, "%s", why);
			continue;
		}
		if (l.alen == 0)
			continue;
		m->lines++;
		/* the key is never longer than the address: rewrite in place */
		t = line + l.aoff;
		at = memchr(t, '@', l.alen);
		sender_key(t, t, (size_t)(at - t), at + 1,
		    l.alen - (size_t)(at - t) - 1, local_case);
		t = line + l.uoff;
		t[l.ulen] = '\0';
		for (i = 0, s = 0; i <= l.ulen; i++) {
			if (i < l.ulen && t[i] != ',')
				continue;
			t[i] = '\0';
			if (m->n == cap) {
				struct sender_pair	*nv;

				cap = cap ? cap * 2 : 16;
				if ((nv = realloc(m->v, cap *
				    sizeof(*nv))) == NULL) {
					sender_err(&ld, 0, "out of memory");
					sender_map_free(m);
					return NULL;
				}
				m->v = nv;
			}
			m->v[m->n].addr = line + l.aoff;
			m->v[m->n].user = t + s;
			m->n++;
			s = i + 1;
		}
	}
	if (ld.nerr > SENDER_MAP_ERRORS_MAX)
		sender_err(&(struct sender_ld){ name, err, arg, 0 }, 0,
		    "%u bad lines in all", ld.nerr);
	if (ld.nerr > 0) {
		sender_map_free(m);
		return NULL;
	}
	if (m->n > 1)
		qsort(m->v, m->n, sizeof(*m->v), sender_pair_cmp);
	return m;
}

struct sender_map *
sender_map_load(const char *path, bool local_case, passwd_err_fn *err,
    void *arg)
{
	struct sender_ld	 ld = { path, err, arg, 0 };
	struct sender_map	*m = NULL;
	struct stat		 st;
	FILE			*fp;
	char			*text = NULL;
	size_t			 n = 0;

	if ((fp = fopen(path, "r")) == NULL) {
		sender_err(&ld, 0, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == -1 || !S_ISREG(st.st_mode))
		sender_err(&ld, 0, "not a regular file");
	else if (st.st_size > SENDER_MAP_FILE_MAX)
		sender_err(&ld, 0, "the file is larger than %d bytes",
		    SENDER_MAP_FILE_MAX);
	else if ((text = malloc((size_t)st.st_size + 1)) == NULL)
		sender_err(&ld, 0, "out of memory");
	else if ((n = fread(text, 1, (size_t)st.st_size, fp)) <
	    (size_t)st.st_size && ferror(fp))
		sender_err(&ld, 0, "cannot read: %s", strerror(errno));
	else
		m = sender_map_load_mem(text, n, path, local_case, err, arg);
	free(text);
	fclose(fp);
	return m;
}

void
sender_map_free(struct sender_map *m)
{
	if (m == NULL)
		return;
	free(m->text);
	free(m->v);
	free(m);
}

size_t
sender_map_count(const struct sender_map *m)
{
	return m != NULL ? m->lines : 0;
}

/* sender_owns() for one form of the local part. */
static bool
sender_owns_as(const struct sender_map *m, const char *user,
    const char *local, size_t llen, const char *domain, size_t dlen,
    bool ours, bool local_case)
{
	char			 key[SENDER_MAP_ADDR_MAX + 1];
	char			 own[SENDER_MAP_ADDR_MAX + 1];
	const char		*at;
	struct sender_pair	 q;
	size_t			 ul;

	if (llen == 0 || llen > SENDER_MAP_LOCAL_MAX || dlen == 0 ||
	    dlen > SENDER_MAP_DOMAIN_MAX)
		return false;
	sender_key(key, local, llen, domain, dlen, local_case);
	ul = strlen(user);
	if ((at = strchr(user, '@')) != NULL) {
		if ((size_t)(at - user) <= SENDER_MAP_LOCAL_MAX &&
		    ul - (size_t)(at - user) - 1 <= SENDER_MAP_DOMAIN_MAX) {
			sender_key(own, user, (size_t)(at - user), at + 1,
			    ul - (size_t)(at - user) - 1, local_case);
			if (strcmp(own, key) == 0)
				return true;
		}
	} else if (ours && ul == llen) {
		sender_key(own, user, ul, domain, dlen, local_case);
		if (strcmp(own, key) == 0)
			return true;
	}
	if (m == NULL || m->n == 0)
		return false;
	q.addr = key;
	q.user = user;
	return bsearch(&q, m->v, m->n, sizeof(*m->v), sender_pair_cmp) != NULL;
}

bool
sender_owns(const struct sender_map *m, const char *user, const char *local,
    size_t llen, const char *domain, size_t dlen, bool ours,
    bool local_case, const char *delim)
{
	size_t	i, cut = llen;

	/* the address as written first: "a+b" may be a user's own name */
	if (sender_owns_as(m, user, local, llen, domain, dlen, ours,
	    local_case))
		return true;
	if (delim != NULL && *delim != '\0')
		for (i = 0; i < llen; i++)
			if (strchr(delim, local[i]) != NULL) {
				cut = i;
				break;
			}
	return cut < llen && sender_owns_as(m, user, local, cut, domain, dlen,
	    ours, local_case);
}
