/*
 * relay_cred.c - relayhost_auth_file (see relay_cred.h).
 * Owns: the line grammar, the table and its wiping (secret_file.c: the
 * mode check).
 * Never: logs or returns a password in an error; keeps the file's text.
 * Untrusted: every byte of the file: lines, fields and entries bounded.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "relay_cred.h"
#include "../lib/secret_file.h"

struct relay_creds {
	struct relay_cred	*v;
	size_t			 n, cap;	/* cap: lines, at most _MAX */
};

struct relay_cred_ld {
	const char		*file;
	relay_cred_err_fn	*err;
	void			*arg;
	unsigned		 nbad;
};

static void	relay_cred_err(struct relay_cred_ld *, unsigned, const char *,
		    ...) __attribute__((format(printf, 3, 4)));

static void
relay_cred_err(struct relay_cred_ld *ld, unsigned line, const char *fmt, ...)
{
	char	msg[300];
	va_list	ap;

	ld->nbad++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err != NULL)
		ld->err(ld->arg, ld->file, line, msg);
}

static bool
rc_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Letters, digits, '-', '.', and for an IP literal ':' (inside []). */
static bool
rc_host_ok(const char *h, size_t n, bool v6)
{
	size_t	i;

	if (n == 0 || n > RELAY_CRED_HOST_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		    (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '-' ||
		    h[i] == '.' || (v6 && h[i] == ':')))
			return false;
	return true;
}

/* "host:port" or "[v6]:port" in p[0..n). */
static bool
rc_hostport(const char *p, size_t n, struct relay_cred_line *out)
{
	const char	*colon;
	size_t		 hl, i;
	unsigned long	 port = 0;
	bool		 v6 = n > 0 && p[0] == '[';

	if (v6) {
		const char *rb = memchr(p, ']', n);

		if (rb == NULL || (size_t)(rb - p) + 1 >= n || rb[1] != ':')
			return false;
		out->host = p + 1;
		hl = (size_t)(rb - p) - 1;
		colon = rb + 1;
	} else {
		if ((colon = memchr(p, ':', n)) == NULL)
			return false;
		out->host = p;
		hl = (size_t)(colon - p);
	}
	if (!rc_host_ok(out->host, hl, v6))
		return false;
	i = (size_t)(colon - p) + 1;
	if (i >= n || n - i > 5)
		return false;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		port = port * 10 + (unsigned long)(p[i] - '0');
	}
	if (port == 0 || port > 65535)
		return false;
	out->hlen = hl;
	out->port = (uint16_t)port;
	return true;
}

enum parse_rc
relay_cred_parse_line(const char *p, size_t len, struct relay_cred_line *out,
    const char **why)
{
	size_t	i = 0, s;

	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > RELAY_CRED_LINE_MAX) {
		*why = "line too long";
		return PARSE_TOOLONG;
	}
	while (i < len && rc_blank(p[i]))
		i++;
	if (i == len || p[i] == '#')
		return PARSE_OK;
	for (s = i; i < len && !rc_blank(p[i]); i++)
		;
	if (!rc_hostport(p + s, i - s, out)) {
		*why = "expected host:port (or [IPv6]:port) first";
		return PARSE_BAD;
	}
	while (i < len && rc_blank(p[i]))
		i++;
	for (s = i; i < len && !rc_blank(p[i]); i++)
		if ((unsigned char)p[i] < 0x21 || p[i] == 0x7f) {
			*why = "control character in the user name";
			return PARSE_BAD;
		}
	out->user = p + s;
	out->ulen = i - s;
	while (i < len && rc_blank(p[i]))
		i++;
	out->pass = p + i;
	out->plen = len - i;
	for (; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			*why = "control character in the password";
			return PARSE_BAD;
		}
	if (out->ulen == 0 || out->plen == 0) {
		*why = "expected host:port user password";
		return PARSE_BAD;
	}
	if (out->ulen > RELAY_CRED_USER_MAX || out->plen >
	    RELAY_CRED_PASS_MAX) {
		*why = "user or password longer than 255 octets";
		return PARSE_TOOLONG;
	}
	return PARSE_OK;
}

static void
rc_lower(char *dst, const char *src, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		dst[i] = src[i] >= 'A' && src[i] <= 'Z' ?
		    (char)(src[i] - 'A' + 'a') : src[i];
	dst[n] = '\0';
}

static void
rc_add(struct relay_creds *t, struct relay_cred_ld *ld, unsigned lineno,
    const struct relay_cred_line *l)
{
	struct relay_cred	*e;
	size_t			 i;

	if (t->n == t->cap) {
		relay_cred_err(ld, lineno, "more than %d entries",
		    RELAY_CRED_MAX);
		return;
	}
	e = &t->v[t->n];
	rc_lower(e->host, l->host, l->hlen);
	e->port = l->port;
	memcpy(e->user, l->user, l->ulen);
	e->user[l->ulen] = '\0';
	memcpy(e->pass, l->pass, l->plen);
	e->pass[l->plen] = '\0';
	for (i = 0; i < t->n; i++)
		if (t->v[i].port == e->port &&
		    strcmp(t->v[i].host, e->host) == 0) {
			relay_cred_err(ld, lineno, "a second entry for %s:%u",
			    e->host, e->port);
			explicit_bzero(e, sizeof(*e));
			return;
		}
	t->n++;
}

struct relay_creds *
relay_creds_load_mem(const char *text, size_t len, const char *name,
    relay_cred_err_fn *err, void *arg)
{
	struct relay_cred_ld	 ld = { name ? name : "-", err, arg, 0 };
	struct relay_cred_line	 l;
	struct relay_creds	*t;
	const char		*p = text, *end = text + len, *nl, *why;
	unsigned		 lineno = 0;
	size_t			 n, lines = 1;

	for (n = 0; n < len; n++)
		lines += text[n] == '\n';
	if (len > RELAY_CRED_FILE_MAX) {
		relay_cred_err(&ld, 0, "the file is larger than %d bytes",
		    RELAY_CRED_FILE_MAX);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) != NULL)
		t->cap = lines < RELAY_CRED_MAX ? lines : RELAY_CRED_MAX;
	if (t == NULL || (t->v = calloc(t->cap, sizeof(*t->v))) == NULL) {
		free(t);
		relay_cred_err(&ld, 0, "out of memory");
		return NULL;
	}
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (memchr(p, '\0', n) != NULL)
			relay_cred_err(&ld, lineno, "NUL byte in the line");
		else if (relay_cred_parse_line(p, n, &l, &why) != PARSE_OK)
			relay_cred_err(&ld, lineno, "%s", why);
		else if (l.hlen > 0)
			rc_add(t, &ld, lineno, &l);
		p += n + (nl != NULL);
	}
	if (ld.nbad > 0) {
		relay_creds_free(t);
		return NULL;
	}
	return t;
}

struct relay_creds *
relay_creds_load(const char *path, relay_cred_err_fn *err, void *arg)
{
	struct relay_cred_ld	 ld = { path, err, arg, 0 };
	struct relay_creds	*t;
	char			*text, why[400];
	size_t			 n;

	if ((text = secret_file_read(path, RELAY_CRED_FILE_MAX,
	    "relayhost_auth_file", "passwords", &n, why,
	    sizeof(why))) == NULL) {
		relay_cred_err(&ld, 0, "%s", why);
		return NULL;
	}
	t = relay_creds_load_mem(text, n, path, err, arg);
	explicit_bzero(text, n);
	free(text);
	return t;
}

void
relay_creds_free(struct relay_creds *t)
{
	if (t == NULL)
		return;
	if (t->v != NULL)
		explicit_bzero(t->v, t->cap * sizeof(*t->v));
	free(t->v);
	free(t);
}

size_t
relay_creds_count(const struct relay_creds *t)
{
	return t != NULL ? t->n : 0;
}

const struct relay_cred *
relay_creds_find(const struct relay_creds *t, const char *host, uint16_t port)
{
	size_t	i;

	for (i = 0; t != NULL && i < t->n; i++)
		if (t->v[i].port == port && strcasecmp(t->v[i].host,
		    host) == 0)
			return &t->v[i];
	return NULL;
}
