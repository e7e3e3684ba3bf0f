/*
 * fprint.c - certificate fingerprint pins (see fprint.h).
 * Owns: the "sha256:HEX" list grammar and digest comparison.
 * Never: I/O, allocation, globals.
 * Untrusted: the pin text; bounded by FPRINT_TEXT_MAX and FPRINT_PINS_MAX.
 */
#include <string.h>
#include <strings.h>

#include "fprint.h"

static bool
fprint_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One "sha256:HEX" at p[*i]; advances *i past it.  -1: bad at *i. */
static int
fprint_one(const char *p, size_t len, size_t *i, uint8_t d[FPRINT_SHA256_LEN])
{
	size_t	k = *i, n = 0;
	int	hi, lo;

	if (len - k < 7 || strncasecmp(p + k, "sha256:", 7) != 0)
		return -1;
	k += 7;
	while (n < FPRINT_SHA256_LEN) {
		if (n > 0 && k < len && p[k] == ':')
			k++;		/* AB:CD:... */
		if (len - k < 2 || (hi = parse_hex_digit(p[k])) < 0 ||
		    (lo = parse_hex_digit(p[k + 1])) < 0) {
			*i = k;
			return -1;
		}
		d[n++] = (uint8_t)(hi << 4 | lo);
		k += 2;
	}
	*i = k;
	return 0;
}

enum parse_rc
fprint_parse(const char *p, size_t len, struct fprint_pins *out,
    size_t *bad_at)
{
	struct fprint_pins	pins;
	size_t			i = 0;

	*bad_at = 0;
	if (len > FPRINT_TEXT_MAX)
		return PARSE_TOOLONG;
	memset(&pins, 0, sizeof(pins));
	while (i < len && fprint_blank(p[i]))
		i++;
	while (i < len) {
		if (pins.n == FPRINT_PINS_MAX)
			return PARSE_TOOLONG;
		if (fprint_one(p, len, &i, pins.d[pins.n]) == -1) {
			*bad_at = i;
			return PARSE_BAD;
		}
		pins.n++;
		while (i < len && fprint_blank(p[i]))
			i++;
		if (i == len)
			break;
		if (p[i] != ',') {
			*bad_at = i;
			return PARSE_BAD;
		}
		i++;
		while (i < len && fprint_blank(p[i]))
			i++;
		if (i == len) {		/* a trailing comma */
			*bad_at = i;
			return PARSE_BAD;
		}
	}
	*out = pins;
	return PARSE_OK;
}

bool
fprint_match(const struct fprint_pins *pins,
    const uint8_t digest[FPRINT_SHA256_LEN])
{
	size_t	i, k;
	uint8_t	diff;
	bool	found = false;

	for (i = 0; i < pins->n && i < FPRINT_PINS_MAX; i++) {
		for (diff = 0, k = 0; k < FPRINT_SHA256_LEN; k++)
			diff |= pins->d[i][k] ^ digest[k];
		found |= diff == 0;
	}
	return found;
}

void
fprint_format(const uint8_t digest[FPRINT_SHA256_LEN],
    char out[FPRINT_STR_LEN])
{
	static const char	hex[] = "0123456789abcdef";
	size_t			k;

	memcpy(out, "sha256:", 7);
	for (k = 0; k < FPRINT_SHA256_LEN; k++) {
		out[7 + 2 * k] = hex[digest[k] >> 4];
		out[8 + 2 * k] = hex[digest[k] & 15];
	}
	out[FPRINT_STR_LEN - 1] = '\0';
}
