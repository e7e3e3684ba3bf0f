/*
 * psl.c - Public Suffix List rules (publicsuffix.org/list, "Formal
 * algorithm"): normal, wildcard ("*.") and exception ("!") rules in one
 * sorted array, looked up by binary search for each suffix of a name.
 * Owns: the file's bytes and the rule index.  Never: writes after load.
 * Untrusted: the names asked about.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "psl.h"

enum { PSL_NORMAL = 'n', PSL_WILD = 'w', PSL_EXCEPT = 'e' };

struct psl_rule {
	const char	*s;		/* into text, NUL terminated */
	char		 kind;
};

struct psl {
	char		*text;
	struct psl_rule	*r;
	size_t		 n;
};

static int
psl_cmp(const void *a, const void *b)
{
	const struct psl_rule	*x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->s, y->s);
}

static bool
psl_has(const struct psl *p, char kind, const char *s)
{
	struct psl_rule	key = { s, kind };

	return bsearch(&key, p->r, p->n, sizeof(*p->r), psl_cmp) != NULL;
}

/* One line: "// comment", blank, or a rule up to the first white space. */
static void
psl_line(struct psl *p, char *l)
{
	char	*e, kind = PSL_NORMAL;

	while (*l == ' ' || *l == '\t')
		l++;
	if (*l == '\0' || (l[0] == '/' && l[1] == '/'))
		return;
	for (e = l; *e != '\0' && *e != ' ' && *e != '\t' && *e != '\r'; e++)
		if (*e >= 'A' && *e <= 'Z')
			*e += 32;
	*e = '\0';
	if (l[0] == '!') {
		kind = PSL_EXCEPT;
		l++;
	} else if (l[0] == '*' && l[1] == '.') {
		kind = PSL_WILD;
		l += 2;
	}
	if (*l == '\0' || *l == '.' || p->n == PSL_RULES_MAX)
		return;
	p->r[p->n].s = l;
	p->r[p->n++].kind = kind;
}

struct psl *
psl_parse(const char *text, size_t len)
{
	struct psl	*p;
	char		*l, *nl;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->text = malloc(len + 1)) == NULL ||
	    (p->r = calloc(PSL_RULES_MAX, sizeof(*p->r))) == NULL) {
		psl_free(p);
		return NULL;
	}
	memcpy(p->text, text, len);
	p->text[len] = '\0';
	for (l = p->text; l < p->text + len; l = nl + 1) {
		if ((nl = memchr(l, '\n', (size_t)(p->text + len - l))) ==
		    NULL)
			nl = p->text + len;
		*nl = '\0';
		psl_line(p, l);
	}
	if (p->n == 0) {
		psl_free(p);
		return NULL;
	}
	qsort(p->r, p->n, sizeof(*p->r), psl_cmp);
	return p;
}

struct psl *
psl_load(const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	struct psl	*p = NULL;
	char		*buf = NULL;
	size_t		 got = 0;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)PSL_FILE_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		snprintf(err, errlen, "%s: not a file, too big or no memory",
		    path);
		close(fd);
		return NULL;
	}
	while (got < (size_t)st.st_size &&
	    (r = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)r;
	close(fd);
	if ((p = psl_parse(buf, got)) == NULL)
		snprintf(err, errlen, "%s: no rules in it", path);
	free(buf);
	return p;
}

void
psl_free(struct psl *p)
{
	if (p == NULL)
		return;
	free(p->text);
	free(p->r);
	free(p);
}

size_t
psl_count(const struct psl *p)
{
	return p ? p->n : 0;
}

const char *
psl_org_domain(const struct psl *p, const char *name, char *out,
    size_t outlen)
{
	const char	*c, *ps = NULL, *parent, *org;
	size_t		 len = strlen(name);

	if (len == 0 || len >= outlen)
		return NULL;
	/* the longest matching rule wins; an exception names its parent */
	for (c = name; p != NULL && c != NULL && ps == NULL;
	    c = (c = strchr(c, '.')) ? c + 1 : NULL) {
		parent = strchr(c, '.');
		if (psl_has(p, PSL_EXCEPT, c))
			ps = parent ? parent + 1 : c;
		else if (psl_has(p, PSL_NORMAL, c) ||
		    (parent != NULL && psl_has(p, PSL_WILD, parent + 1)))
			ps = c;
	}
	if (ps == NULL)		/* the default rule "*": the last label */
		ps = (c = strrchr(name, '.')) ? c + 1 : name;
	if (p == NULL || ps == name)
		org = name;
	else {
		for (org = ps - 1; org > name && org[-1] != '.'; org--)
			;
	}
	memcpy(out, org, strlen(org) + 1);
	return out;
}

bool
psl_aligned(const struct psl *p, const char *a, const char *b)
{
	char	la[256], lb[256], oa[256], ob[256];
	size_t	i;

	for (i = 0; a[i] != '\0' && i < sizeof(la) - 1; i++)
		la[i] = (char)(a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i]);
	la[i] = '\0';
	if (a[i] != '\0')
		return false;
	for (i = 0; b[i] != '\0' && i < sizeof(lb) - 1; i++)
		lb[i] = (char)(b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i]);
	lb[i] = '\0';
	if (b[i] != '\0')
		return false;
	if (p == NULL)
		return strcmp(la, lb) == 0;
	return psl_org_domain(p, la, oa, sizeof(oa)) != NULL &&
	    psl_org_domain(p, lb, ob, sizeof(ob)) != NULL &&
	    strcmp(oa, ob) == 0;
}
