/*
 * conf_milter.c - the `milters` key: a list of content filters spoken to
 * with the milter protocol (src/milter/), in order, each
 *   inet:IPV4:PORT | inet:[IPV6]:PORT | unix:/ABSOLUTE/PATH
 * optionally followed by overrides in braces:
 *   {default_action=accept, connect_timeout=2s, command_timeout=10s,
 *    eom_timeout=30s}
 * Owns: the syntax and its error messages.  Never: connects (numeric
 * addresses only, so loading a config never waits for DNS).
 */
#include <sys/un.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include "conf_keys.h"

#define CM_MAX	16	/* filters in the chain */

static const struct { const char *w; int v; } cm_actions[] = {
	{ "tempfail", CONF_MILTER_TEMPFAIL }, { "accept", CONF_MILTER_ACCEPT },
	{ "reject", CONF_MILTER_REJECT },
};

int
conf_milter_action(const char *w, size_t n)
{
	size_t	i;

	for (i = 0; i < sizeof(cm_actions) / sizeof(cm_actions[0]); i++)
		if (strlen(cm_actions[i].w) == n &&
		    strncmp(cm_actions[i].w, w, n) == 0)
			return cm_actions[i].v;
	return -1;
}

const char *
conf_milter_action_name(int v)
{
	size_t	i;

	for (i = 0; i < sizeof(cm_actions) / sizeof(cm_actions[0]); i++)
		if (cm_actions[i].v == v)
			return cm_actions[i].w;
	return "?";
}

static const char *
cm_trim(const char *p, const char *e, const char **end)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*end = e;
	return p;
}

/* The address part: "inet:..." or "unix:...". */
static int
cm_addr(struct conf_milter *m, const char *p, size_t n, struct buf *why)
{
	char		 t[256];
	const char	*c;
	char		*end;
	unsigned long	 port;

	if (n >= sizeof(t))
		goto bad;
	memcpy(t, p, n);
	t[n] = '\0';
	if (strncmp(t, "unix:", 5) == 0) {
		if (t[5] != '/' || n - 5 >= sizeof(m->path))
			goto bad;
		memcpy(m->path, t + 5, n - 5 + 1);
		m->family = AF_UNIX;
		return 0;
	}
	if (strncmp(t, "inet:", 5) != 0 || (c = strrchr(t + 5, ':')) == NULL)
		goto bad;
	port = strtoul(c + 1, &end, 10);
	if (c[1] == '\0' || *end != '\0' || port == 0 || port > 65535)
		goto bad;
	m->port = (uint16_t)port;
	*(char *)c = '\0';
	if (t[5] == '[' && c[-1] == ']') {
		((char *)c)[-1] = '\0';
		if (inet_pton(AF_INET6, t + 6, &m->a6) != 1)
			goto bad;
		m->family = AF_INET6;
	} else if (inet_pton(AF_INET, t + 5, &m->a4) == 1)
		m->family = AF_INET;
	else
		goto bad;
	return 0;
bad:
	(void)buf_addf(why, "expected inet:IPV4:PORT, inet:[IPV6]:PORT or "
	    "unix:/PATH, got '%.*s'", (int)(n > 64 ? 64 : n), p);
	return -1;
}

/* One "name=value" of the braces. */
static int
cm_opt(struct conf_milter *m, const char *p, const char *e,
    struct buf *why)
{
	static const struct { const char *name; size_t off; } ts[] = {
		{ "connect_timeout", offsetof(struct conf_milter, connect_ms) },
		{ "command_timeout", offsetof(struct conf_milter, command_ms) },
		{ "eom_timeout", offsetof(struct conf_milter, eom_ms) },
	};
	const struct conf_key	 k = { "timeout", CT_MSEC, 0, 0, "", 100,
				    3600 * 1000ull, "" };
	const char		*eq = memchr(p, '=', (size_t)(e - p)), *ve;
	const char		*ne, *v;
	char			 val[64];
	size_t			 i;
	int			 a;

	if (eq == NULL)
		goto bad;
	p = cm_trim(p, eq, &ne);
	v = cm_trim(eq + 1, e, &ve);
	if ((size_t)(ne - p) == 14 && strncmp(p, "default_action", 14) == 0) {
		if ((a = conf_milter_action(v, (size_t)(ve - v))) == -1) {
			(void)buf_addf(why, "default_action: expected "
			    "tempfail, accept or reject");
			return -1;
		}
		m->default_action = a;
		return 0;
	}
	for (i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
		if (strlen(ts[i].name) == (size_t)(ne - p) &&
		    strncmp(ts[i].name, p, (size_t)(ne - p)) == 0)
			break;
	if (i == sizeof(ts) / sizeof(ts[0]) || (size_t)(ve - v) >= sizeof(val))
		goto bad;
	memcpy(val, v, (size_t)(ve - v));
	val[ve - v] = '\0';
	if (conf_types[CT_MSEC].set(&k, val, (char *)m + ts[i].off, NULL,
	    why) == -1)
		return -1;
	return 0;
bad:
	(void)buf_addf(why, "expected {default_action=..., connect_timeout=..., "
	    "command_timeout=..., eom_timeout=...}, got '%.*s'",
	    (int)(e - p > 64 ? 64 : e - p), p);
	return -1;
}

static int
cm_one(struct conf_milter *m, const char *p, const char *e, struct buf *why)
{
	const char	*b = memchr(p, '{', (size_t)(e - p)), *ae, *q, *c;

	m->default_action = -1;
	p = cm_trim(p, b ? b : e, &ae);
	if (ae == p) {
		(void)buf_addf(why, "an empty entry");
		return -1;
	}
	if (cm_addr(m, p, (size_t)(ae - p), why) == -1)
		return -1;
	m->name = malloc((size_t)(ae - p) + 1);
	if (m->name == NULL)
		return -1;
	memcpy(m->name, p, (size_t)(ae - p));
	m->name[ae - p] = '\0';
	if (b == NULL)
		return 0;
	if (e[-1] != '}') {
		(void)buf_addf(why, "'{' without its '}'");
		return -1;
	}
	for (q = b + 1; q < e - 1; q = c + 1) {
		if ((c = memchr(q, ',', (size_t)(e - 1 - q))) == NULL)
			c = e - 1;
		if (cm_opt(m, q, c, why) == -1)
			return -1;
	}
	return 0;
}

int
conf_set_milters(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct conf_milters	*ms = field, n = { NULL, 0 };
	const char		*p = val, *e, *c;
	int			 depth;

	(void)k;
	(void)env;
	if ((n.m = calloc(CM_MAX, sizeof(*n.m))) == NULL)
		return -1;
	while (*p != '\0') {
		/* a comma inside braces does not end the entry */
		for (c = p, depth = 0; *c && (depth > 0 || *c != ','); c++)
			depth += *c == '{' ? 1 : *c == '}' ? -1 : 0;
		e = c;
		if (cm_trim(p, e, &e) != e || *c == ',') {
			if (n.n == CM_MAX) {
				(void)buf_addf(why, "more than %d milters",
				    CM_MAX);
				goto bad;
			}
			if (cm_one(&n.m[n.n], p, c, why) == -1) {
				n.n++;
				goto bad;
			}
			n.n++;
		}
		p = *c ? c + 1 : c;
	}
	conf_free_milters(NULL, ms);
	*ms = n;
	return 0;
bad:
	conf_free_milters(NULL, &n);
	return -1;
}

void
conf_free_milters(struct config *cfg, void *field)
{
	struct conf_milters	*ms = field;
	size_t			 i;

	(void)cfg;
	for (i = 0; i < ms->n; i++)
		free(ms->m[i].name);
	free(ms->m);
	ms->m = NULL;
	ms->n = 0;
}
