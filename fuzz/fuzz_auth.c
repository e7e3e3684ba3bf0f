/*
 * fuzz_auth.c - libFuzzer target for the AUTH exchange (smtp_auth.c) and
 * the password file's line parser (passwd.c).  The input is split at LF:
 * the first line is the AUTH argument, the others are fed as responses
 * while the state machine asks for more.  Checks: results in range, the
 * credentials bounded, NUL-free and NUL-ended; base64 decoding never
 * writes past its bound and re-encodes to its input; a parsed password
 * line's spans lie inside the line.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/passwd.h"
#include "smtp/smtp_auth.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_auth_check(const struct smtp_auth *a, enum smtp_auth_rc rc)
{
	if (rc > SMTP_AUTH_MALFORMED)
		abort();
	if (rc == SMTP_AUTH_CHALLENGE && a->challenge == NULL)
		abort();
	if (rc != SMTP_AUTH_READY)
		return;
	if (a->ulen == 0 || a->ulen > SMTP_AUTH_USER_MAX ||
	    a->plen == 0 || a->plen > SMTP_AUTH_PASS_MAX ||
	    strlen(a->user) != a->ulen || strlen(a->pass) != a->plen)
		abort();
}

static void
fuzz_auth_exchange(const uint8_t *p, size_t len)
{
	struct smtp_auth	 a;
	enum smtp_auth_rc	 rc;
	const uint8_t		*nl, *end = p + len;
	size_t			 n;

	nl = memchr(p, '\n', len);
	n = nl ? (size_t)(nl - p) : len;
	rc = smtp_auth_start(&a, p, n);
	fuzz_auth_check(&a, rc);
	p += n + (nl != NULL);
	while (rc == SMTP_AUTH_CHALLENGE && p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		rc = smtp_auth_step(&a, p, n);
		fuzz_auth_check(&a, rc);
		p += n + (nl != NULL);
	}
	smtp_auth_clear(&a);
	if (a.plen != 0 || a.pass[0] != '\0')
		abort();
}

static const char fuzz_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
fuzz_auth_b64(const uint8_t *p, size_t len)
{
	uint8_t	out[64], enc[4];
	size_t	n, i, k;

	if (len > 4 * (sizeof(out) / 3 + 1))
		len = 4 * (sizeof(out) / 3 + 1);
	if (smtp_auth_b64_decode(p, len, out, sizeof(out), &n) != PARSE_OK)
		return;
	if (n > sizeof(out) || n != len / 4 * 3 - (len > 0 && p[len - 1] ==
	    '=') - (len > 1 && p[len - 2] == '='))
		abort();
	/* Re-encode whole quanta; only the last may differ (pad bits). */
	for (i = 0, k = 0; i + 3 <= n && k + 4 < len; i += 3, k += 4) {
		enc[0] = (uint8_t)fuzz_b64[out[i] >> 2];
		enc[1] = (uint8_t)fuzz_b64[(out[i] & 3) << 4 | out[i + 1] >> 4];
		enc[2] = (uint8_t)fuzz_b64[(out[i + 1] & 15) << 2 |
		    out[i + 2] >> 6];
		enc[3] = (uint8_t)fuzz_b64[out[i + 2] & 63];
		if (memcmp(enc, p + k, 4) != 0)
			abort();
	}
}

static void
fuzz_auth_passwd_line(const uint8_t *p, size_t len)
{
	struct passwd_line	 pl;
	const char		*why, *s = (const char *)p;
	enum parse_rc		 rc;

	rc = passwd_parse_line(s, len, &pl, &why);
	if (rc != PARSE_OK) {
		if (why == NULL || (rc == PARSE_TOOLONG) !=
		    (len - (len > 0 && s[len - 1] == '\r') > PASSWD_LINE_MAX))
			abort();
		return;
	}
	if (pl.ulen == 0)
		return;
	if (pl.user < s || pl.user + pl.ulen > s + len ||
	    pl.hash < s || pl.hash + pl.hlen > s + len ||
	    !passwd_user_valid(pl.user, pl.ulen) || pl.hlen > PASSWD_HASH_MAX)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_auth_exchange(data, size);
	fuzz_auth_b64(data, size);
	fuzz_auth_passwd_line(data, size);
	return 0;
}
