/*
 * keyring.c - numbered secret keys from a file (see keyring.h).
 * Owns: the line grammar, the table and its wiping (secret_file.c: the
 * mode check).
 * Never: logs or returns a secret in an error; keeps the file's text.
 * Untrusted: every byte of the file: lines, fields and entries bounded.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyring.h"
#include "secret_file.h"

struct keyring_ld {
	const char	*file;
	keyring_err_fn	*err;
	void		*arg;
	unsigned	 nbad;
};

static void	keyring_err(struct keyring_ld *, unsigned, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
keyring_err(struct keyring_ld *ld, unsigned line, const char *fmt, ...)
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
kr_blank(char c)
{
	return c == ' ' || c == '\t';
}

enum parse_rc
keyring_parse_line(const char *p, size_t len, unsigned *id,
    const char **secret, size_t *slen, const char **why)
{
	size_t	i = 0, s;

	*id = 0;
	*secret = NULL;
	*slen = 0;
	*why = NULL;
	if (len > 0 && p[len - 1] == '\r')
		len--;
	if (len > KEYRING_LINE_MAX) {
		*why = "line too long";
		return PARSE_TOOLONG;
	}
	while (i < len && kr_blank(p[i]))
		i++;
	if (i == len || p[i] == '#')
		return PARSE_OK;
	if (p[i] < '0' || p[i] > '9' || i + 1 >= len || !kr_blank(p[i + 1])) {
		*why = "expected a key number 0..9, a blank, then the secret";
		return PARSE_BAD;
	}
	*id = (unsigned)(p[i] - '0');
	for (i += 1; i < len && kr_blank(p[i]); i++)
		;
	while (len > i && kr_blank(p[len - 1]))
		len--;
	for (s = i; i < len; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			*why = "control character in the secret";
			return PARSE_BAD;
		}
	if (len - s < KEYRING_SECRET_MIN) {
		*why = "secret shorter than 16 octets";
		return PARSE_BAD;
	}
	if (len - s > KEYRING_SECRET_MAX) {
		*why = "secret longer than 256 octets";
		return PARSE_TOOLONG;
	}
	*secret = p + s;
	*slen = len - s;
	return PARSE_OK;
}

static void
kr_add(struct keyring *t, struct keyring_ld *ld, unsigned lineno,
    unsigned id, const char *secret, size_t slen)
{
	struct keyring_key	*e;

	if (keyring_find(t, id) != NULL) {
		keyring_err(ld, lineno, "a second line for key %u", id);
		return;
	}
	if (t->n == KEYRING_MAX) {		/* ids are distinct: cannot */
		keyring_err(ld, lineno, "more than %d keys", KEYRING_MAX);
		return;
	}
	e = &t->k[t->n++];
	e->id = id;
	e->len = slen;
	memcpy(e->secret, secret, slen);
}

struct keyring *
keyring_load_mem(const char *text, size_t len, const char *name,
    keyring_err_fn *err, void *arg)
{
	struct keyring_ld	 ld = { name ? name : "-", err, arg, 0 };
	struct keyring		*t;
	const char		*p = text, *end = text + len, *nl, *why, *sec;
	unsigned		 lineno = 0, id;
	size_t			 n, slen;

	if (len > KEYRING_FILE_MAX) {
		keyring_err(&ld, 0, "the file is larger than %d bytes",
		    KEYRING_FILE_MAX);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		keyring_err(&ld, 0, "out of memory");
		return NULL;
	}
	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (memchr(p, '\0', n) != NULL)
			keyring_err(&ld, lineno, "NUL byte in the line");
		else if (keyring_parse_line(p, n, &id, &sec, &slen, &why) !=
		    PARSE_OK)
			keyring_err(&ld, lineno, "%s", why);
		else if (slen > 0)
			kr_add(t, &ld, lineno, id, sec, slen);
		p += n + (nl != NULL);
	}
	if (ld.nbad == 0 && t->n == 0)
		keyring_err(&ld, 0, "no key in the file (lines \"N SECRET\")");
	if (ld.nbad > 0) {
		keyring_free(t);
		return NULL;
	}
	return t;
}

struct keyring *
keyring_load(const char *path, const char *what, keyring_err_fn *err,
    void *arg)
{
	struct keyring_ld	 ld = { path, err, arg, 0 };
	struct keyring		*t;
	char			*text, why[400];
	size_t			 n;

	if ((text = secret_file_read(path, KEYRING_FILE_MAX, what, "keys", &n,
	    why, sizeof(why))) == NULL) {
		keyring_err(&ld, 0, "%s", why);
		return NULL;
	}
	t = keyring_load_mem(text, n, path, err, arg);
	explicit_bzero(text, n);
	free(text);
	return t;
}

void
keyring_free(struct keyring *t)
{
	if (t == NULL)
		return;
	explicit_bzero(t, sizeof(*t));
	free(t);
}

const struct keyring_key *
keyring_find(const struct keyring *t, unsigned id)
{
	size_t	i;

	for (i = 0; t != NULL && i < t->n; i++)
		if (t->k[i].id == id)
			return &t->k[i];
	return NULL;
}
