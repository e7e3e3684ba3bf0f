/*
 * fuzz_batv.c - libFuzzer target for BATV (sender/batv.c) and its key
 * file (lib/keyring.c).  The input is a local part and, as a whole, a
 * key file.  Checks: a parsed tag's original lies inside the input, after
 * "prvs=KDDDSSSSSS="; PARSE_TOOLONG only past the bound; verify agrees
 * with parse (BATV_NONE exactly when there is no prefix); an untagged
 * input that signs verifies as pass, and strips back to itself; the key
 * file loads exactly when no line is bad.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/keyring.h"
#include "sender/batv.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || *msg == '\0')
		abort();
	(*(unsigned *)arg)++;
}

static void
fuzz_tag(const struct keyring *k, const char *s, size_t n)
{
	struct batv_tag		 t;
	enum parse_rc		 rc = batv_parse(s, n, &t);
	enum batv_result	 r;

	if ((rc == PARSE_TOOLONG) != (n > BATV_TAGGED_MAX))
		abort();
	if (rc == PARSE_OK && (!batv_tagged(s, n) || t.local !=
	    s + BATV_PREFIX_LEN + BATV_TAG_LEN + 1 || t.llen == 0 ||
	    t.local + t.llen != s + n || t.key > 9 || t.day > 999))
		abort();
	r = batv_verify(k, s, n, "example.test", 12, 1765000000, &t);
	if ((r == BATV_NONE) != !batv_tagged(s, n))
		abort();
	if ((r == BATV_MALFORMED) != (batv_tagged(s, n) && rc != PARSE_OK))
		abort();
}

static void
fuzz_sign(const struct keyring *k, const char *s, size_t n)
{
	char			 addr[BATV_ADDR_MAX + 1], out[BATV_ADDR_MAX + 1];
	const char		*at;
	struct batv_tag		 t;

	if (n > 64 || memchr(s, '\0', n) != NULL)
		return;
	snprintf(addr, sizeof(addr), "%.*s@example.test", (int)n, s);
	if (batv_sign(k, addr, 1765000000, out, sizeof(out)) == -1)
		return;
	if ((at = strrchr(out, '@')) == NULL || batv_verify(k, out,
	    (size_t)(at - out), at + 1, strlen(at + 1), 1765000000, &t) !=
	    BATV_PASS || t.llen != n || memcmp(t.local, s, n) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*s = (const char *)data;
	struct keyring	*k, fixed = { .n = 1 };
	unsigned	 nerr = 0, bad = 0, id;
	const char	*p, *end = s + size, *nl, *why, *sec;
	size_t		 n, slen;
	enum parse_rc	 rc;

	fixed.k[0] = (struct keyring_key){ .id = 7, .len = 16 };
	memcpy(fixed.k[0].secret, "fuzz-secret-0123", 16);
	fuzz_tag(&fixed, s, size);
	fuzz_sign(&fixed, s, size);
	k = keyring_load_mem(s, size, "fuzz", fuzz_err, &nerr);
	if ((k == NULL) != (nerr > 0))
		abort();
	for (p = s; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (memchr(p, '\0', n) != NULL) {
			bad++;
			continue;
		}
		rc = keyring_parse_line(p, n, &id, &sec, &slen, &why);
		if (rc != PARSE_OK) {
			if (why == NULL)
				abort();
			bad++;
		} else if (slen > 0 && (id > 9 || sec < p || sec + slen >
		    p + n || slen < KEYRING_SECRET_MIN ||
		    slen > KEYRING_SECRET_MAX))
			abort();
	}
	if (bad > 0 && k != NULL)
		abort();
	if (k != NULL)
		fuzz_sign(k, s, size < 20 ? size : 20);
	keyring_free(k);
	return 0;
}
