/*
 * dir_hashed.c - the hashed back-end (dir_hashed.h): a sorted array of
 * digests, searched by halves; the query is hashed with the key first.
 * Owns: reading the file in one go, the key file's mode check.
 * Never: keeps a half-loaded table (one bad line fails the whole load).
 * Untrusted: the hashed file.  RFC 2104, FIPS 180-4.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "dir_hashed.h"
#include "../lib/secret_file.h"

struct dir_hashed {
	uint8_t		(*v)[DIR_HASHED_MAC];	/* sorted, distinct */
	size_t		 n;
	uint8_t		 key[DIR_HASHED_KEY_MAX];
	size_t		 keylen;
};

static int
dir_hashed_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum parse_rc
dir_hashed_parse_line(const uint8_t *p, size_t len, bool *empty,
    uint8_t mac[DIR_HASHED_MAC], const char **why)
{
	size_t	i, b, e;
	int	hi, lo;

	*empty = false;
	*why = NULL;
	if (len > DIR_HASHED_LINE_MAX) {
		*why = "line too long";
		return PARSE_TOOLONG;
	}
	for (b = 0; b < len && (p[b] == ' ' || p[b] == '\t'); b++)
		;
	for (e = len; e > b && (p[e - 1] == ' ' || p[e - 1] == '\t' ||
	    p[e - 1] == '\r'); e--)
		;
	if (b == e || p[b] == '#') {
		*empty = true;
		return PARSE_OK;
	}
	if (e - b != DIR_HASHED_HEX) {
		*why = "expected 64 hex digits (HMAC-SHA256); plaintext "
		    "addresses belong in a file: directory";
		return PARSE_BAD;
	}
	for (i = 0; i < DIR_HASHED_MAC; i++) {
		hi = dir_hashed_hexval(p[b + 2 * i]);
		lo = dir_hashed_hexval(p[b + 2 * i + 1]);
		if (hi < 0 || lo < 0) {
			*why = "not a hex digit";
			return PARSE_BAD;
		}
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return PARSE_OK;
}

int
dir_hashed_key_read(const char *path, uint8_t key[DIR_HASHED_KEY_MAX],
    size_t *keylen, char *err, size_t errlen)
{
	char	*text;
	size_t	 n;

	if ((text = secret_file_read(path, DIR_HASHED_KEY_MAX,
	    "directory_key_file", "key", &n, err, errlen)) == NULL)
		return -1;
	if (n < DIR_HASHED_KEY_MIN) {
		snprintf(err, errlen, "directory_key_file %s: a key is 16 to "
		    "1024 bytes", path);
		OPENSSL_cleanse(text, n);
		free(text);
		return -1;
	}
	memcpy(key, text, n);
	OPENSSL_cleanse(text, n);
	free(text);
	*keylen = n;
	return 0;
}

int
dir_hashed_mac(const uint8_t *key, size_t keylen, const uint8_t *s,
    size_t n, uint8_t out[DIR_HASHED_MAC])
{
	unsigned int	mdlen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, s, n, out, &mdlen) ==
	    NULL || mdlen != DIR_HASHED_MAC)
		return -1;
	return 0;
}

static int
dir_hashed_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DIR_HASHED_MAC);
}

/* Error reporting for one load. */
struct dir_hashed_ctx {
	const char	*name;
	dir_err_fn	*err;
	void		*arg;
	unsigned	 nbad;
};

static void
dir_hashed_report(struct dir_hashed_ctx *c, unsigned line, const char *msg)
{
	c->nbad++;
	if (c->err != NULL && c->nbad <= DIR_HASHED_ERRORS_MAX)
		c->err(c->arg, c->name, line, msg);
}

static struct dir_hashed *
dir_hashed_build(const uint8_t *buf, size_t len, struct dir_hashed_ctx *c,
    const uint8_t *key, size_t keylen)
{
	struct dir_hashed	*h;
	const uint8_t		*p, *nl, *end = buf + len;
	const char		*why;
	size_t			 cap = 0, i, j;
	unsigned		 line = 0;
	char			 msg[64];
	bool			 empty;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		dir_hashed_report(c, 0, "out of memory");
		return NULL;
	}
	memcpy(h->key, key, keylen);
	h->keylen = keylen;
	/* A line holds at least 64 bytes: len / 64 + 1 digests at most. */
	cap = len / DIR_HASHED_HEX + 1;
	if ((h->v = calloc(cap, DIR_HASHED_MAC)) == NULL) {
		dir_hashed_report(c, 0, "out of memory");
		dir_hashed_free(h);
		return NULL;
	}
	for (p = buf; p < end; p = nl + 1) {
		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (dir_hashed_parse_line(p, (size_t)(nl - p), &empty,
		    h->v[h->n], &why) != PARSE_OK)
			dir_hashed_report(c, line, why);
		else if (!empty && h->n < cap)
			h->n++;
	}
	if (c->nbad > DIR_HASHED_ERRORS_MAX) {
		snprintf(msg, sizeof(msg), "%u more bad lines",
		    c->nbad - DIR_HASHED_ERRORS_MAX);
		if (c->err != NULL)
			c->err(c->arg, c->name, 0, msg);
	}
	if (c->nbad > 0) {
		dir_hashed_free(h);
		return NULL;
	}
	if (h->n > 1) {
		qsort(h->v, h->n, DIR_HASHED_MAC, dir_hashed_cmp);
		for (i = 1, j = 1; i < h->n; i++)
			if (memcmp(h->v[i], h->v[j - 1], DIR_HASHED_MAC) != 0)
				memmove(h->v[j++], h->v[i], DIR_HASHED_MAC);
		h->n = j;
	}
	return h;
}

struct dir_hashed *
dir_hashed_load_mem(const void *data, size_t len, const char *name,
    const uint8_t *key, size_t keylen, dir_err_fn *err, void *arg)
{
	struct dir_hashed_ctx	c = { name, err, arg, 0 };

	if (keylen < DIR_HASHED_KEY_MIN || keylen > DIR_HASHED_KEY_MAX) {
		dir_hashed_report(&c, 0, "a key is 16 to 1024 bytes");
		return NULL;
	}
	if (len > DIR_HASHED_BYTES_MAX) {
		dir_hashed_report(&c, 0, "file too large");
		return NULL;
	}
	return dir_hashed_build(data, len, &c, key, keylen);
}

struct dir_hashed *
dir_hashed_load(const char *path, const char *key_path, dir_err_fn *err,
    void *arg)
{
	struct dir_hashed_ctx	 c = { path, err, arg, 0 };
	struct dir_hashed	*h = NULL;
	struct stat		 st;
	uint8_t			 key[DIR_HASHED_KEY_MAX], *buf = NULL;
	size_t			 keylen, got = 0;
	ssize_t			 n;
	char			 e[512];
	int			 fd;

	if (key_path == NULL) {
		dir_hashed_report(&c, 0, "hashed: needs directory_key_file");
		return NULL;
	}
	if (dir_hashed_key_read(key_path, key, &keylen, e, sizeof(e)) == -1) {
		dir_hashed_report(&c, 0, e);
		return NULL;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(e, sizeof(e), "cannot open: %s", strerror(errno));
		dir_hashed_report(&c, 0, e);
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > DIR_HASHED_BYTES_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		dir_hashed_report(&c, 0, "not a regular file, too large, or "
		    "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size && (n = read(fd, buf + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)st.st_size) {
		dir_hashed_report(&c, 0, "short read");
		goto out;
	}
	h = dir_hashed_build(buf, got, &c, key, keylen);
out:
	if (fd != -1)
		close(fd);
	free(buf);
	OPENSSL_cleanse(key, sizeof(key));
	return h;
}

void
dir_hashed_free(struct dir_hashed *h)
{
	if (h == NULL)
		return;
	OPENSSL_cleanse(h->key, sizeof(h->key));
	free(h->v);
	free(h);
}

bool
dir_hashed_has(const struct dir_hashed *h, const uint8_t *k, size_t len)
{
	uint8_t	mac[DIR_HASHED_MAC];
	size_t	lo = 0, hi, mid;
	int	c;

	if (h == NULL || len == 0 ||
	    dir_hashed_mac(h->key, h->keylen, k, len, mac) == -1)
		return false;
	hi = h->n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = memcmp(mac, h->v[mid], DIR_HASHED_MAC)) == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

size_t
dir_hashed_count(const struct dir_hashed *h)
{
	return h != NULL ? h->n : 0;
}
