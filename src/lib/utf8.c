/*
 * utf8.c - strict UTF-8 decoding and NFC (see utf8.h).
 * Owns: RFC 3629 4's table of well-formed sequences, plus the C1 rule.
 * Never: allocates (utf8proc works in a buffer on the stack here).
 * Untrusted: every byte.  RFC 3629, RFC 6532 3.1, UAX #15 (NFC).
 */
#include <string.h>

#include <utf8proc.h>

#include "utf8.h"

/* Code points an NFC pass may hold at once; decomposition expands. */
#define UTF8_NORM_CPS	(UTF8_NORM_MAX * 4)

static bool
utf8_cont(uint8_t c)
{
	return (c & 0xc0) == 0x80;
}

/*
 * RFC 3629 4: the second byte's range depends on the first (that is what
 * refuses overlongs, surrogates and code points past U+10FFFF); every
 * later byte is 80..BF.
 */
int
utf8_char(const uint8_t *p, size_t avail)
{
	uint8_t	c = p[0], lo = 0x80, hi = 0xbf;
	int	n, k;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return -1;		/* 80..C1, F5..FF: never a lead */
	if (avail < 2)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return -1;
	if (c == 0xc2 && p[1] <= 0x9f)
		return -1;		/* U+0080..U+009F: C1 controls */
	for (k = 2; k < n; k++) {
		if ((size_t)k >= avail)
			return 0;
		if (!utf8_cont(p[k]))
			return -1;
	}
	return n;
}

bool
utf8_is_ascii(const uint8_t *p, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (p[i] & 0x80)
			return false;
	return true;
}

/*
 * Simple lower-casing, code point by code point (UnicodeData.txt): not
 * full case folding, which would make "ß" of "ss" where IDNA2008 keeps
 * them apart.
 */
static utf8proc_int32_t
utf8_lower(utf8proc_int32_t cp, void *arg)
{
	(void)arg;
	return utf8proc_tolower(cp);
}

/* Strict UTF-8 without C0, DEL or C1 controls. */
static bool
utf8_valid_text(const uint8_t *p, size_t len)
{
	size_t	i = 0;
	int	n;

	while (i < len) {
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return false;
			i++;
			continue;
		}
		if ((n = utf8_char(p + i, len - i)) <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

int
utf8_nfc(const uint8_t *p, size_t len, bool fold, uint8_t *out,
    size_t outmax)
{
	utf8proc_int32_t	buf[UTF8_NORM_CPS + 1];
	utf8proc_option_t	opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
	utf8proc_ssize_t	n;

	if (len > UTF8_NORM_MAX || !utf8_valid_text(p, len))
		return -1;
	if (utf8_is_ascii(p, len) && !fold) {
		if (len > outmax)
			return -1;
		if (len > 0)
			memcpy(out, p, len);
		return (int)len;
	}
	/* Decompose, then compose and re-encode as UTF-8 in place: buf has
	 * the spare slot utf8proc_reencode() needs for its NUL. */
	n = utf8proc_decompose_custom(p, (utf8proc_ssize_t)len, buf,
	    UTF8_NORM_CPS, opt, fold ? utf8_lower : NULL, NULL);
	if (n < 0 || n > UTF8_NORM_CPS)
		return -1;
	if ((n = utf8proc_reencode(buf, n, opt)) < 0 || (size_t)n > outmax)
		return -1;
	memcpy(out, buf, (size_t)n);
	return (int)n;
}
