/*
 * fuzz_log_json.c - libFuzzer target for the JSON log format
 * (src/obs/log_json.c): obs_json_escape() on any bytes, and obs_log_json()
 * and obs_log_postfix() on any line.  Checks what they promise: never a
 * byte past the buffer (a guard byte), the escaped string is valid UTF-8
 * with no raw control character, a quote at each end and none unescaped
 * inside; a rendered line is one object ('{' .. '}') with no newline.
 * Untrusted: the whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/log_json.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

/* Strict UTF-8 (RFC 3629), no control byte, quotes only escaped. */
static void
fz_check_string(const char *s, size_t n)
{
	size_t	i = 1, k, j;

	fz_require(n >= 2 && s[0] == '"' && s[n - 1] == '"');
	while (i < n - 1) {
		unsigned char c = (unsigned char)s[i];

		fz_require(c >= 0x20 && c != 0x7f);
		if (c == '\\') {
			fz_require(i + 1 < n - 1);
			i += s[i + 1] == 'u' ? 6 : 2;
			continue;
		}
		fz_require(c != '"');
		k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		fz_require(c < 0x80 || c >= 0xc2);
		for (j = 1; j < k; j++)
			fz_require(i + j < n - 1 &&
			    ((unsigned char)s[i + j] & 0xc0) == 0x80);
		i += k;
	}
	fz_require(i == n - 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	char	*out;
	size_t	 cap = len * 6 + 16, n;
	int	 r;

	if (len > 4096)
		return 0;
	if ((out = malloc(cap + 1)) == NULL)
		return 0;
	out[cap] = 'Z';
	r = obs_json_escape(p, len, out, cap);
	fz_require(r > 0 && (size_t)r < cap && out[cap] == 'Z');
	fz_check_string(out, (size_t)r);
	/* a buffer too small: -1, and nothing past it */
	out[len / 2] = 'Z';
	r = obs_json_escape(p, len, out, len / 2);
	fz_require(out[len / 2] == 'Z');
	n = obs_log_json((const char *)p, len, out, cap);
	fz_require(out[cap] == 'Z' && n < cap);
	if (n > 0) {
		fz_require(out[0] == '{' && out[n - 1] == '}');
		fz_require(memchr(out, '\n', n) == NULL);
	}
	n = obs_log_postfix((const char *)p, len, out, cap);
	fz_require(out[cap] == 'Z' && n < cap);
	free(out);
	return 0;
}
