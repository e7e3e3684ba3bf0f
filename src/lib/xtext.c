/*
 * xtext.c - RFC 3461 4 xtext (see xtext.h).
 * Owns: the grammar.  Never: reads past the span, writes past outsz.
 * Untrusted: every byte.
 */
#include "xtext.h"

static int
xtext_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;		/* RFC 3461 4: hexchar is uppercase */
}

/* One decoded byte at p[*i]; -1 if the xtext is malformed there. */
static int
xtext_next(const uint8_t *p, size_t len, size_t *i)
{
	int	hi, lo;
	uint8_t	c = p[*i];

	if (c == '+') {
		if (len - *i < 3 || (hi = xtext_hexval(p[*i + 1])) < 0 ||
		    (lo = xtext_hexval(p[*i + 2])) < 0)
			return -1;
		*i += 3;
		return hi << 4 | lo;
	}
	if (c < '!' || c > '~' || c == '=')
		return -1;
	(*i)++;
	return c;
}

int
xtext_decode(const uint8_t *p, size_t len, char *out, size_t outsz)
{
	size_t	i = 0, o = 0;
	int	c;

	if (out != NULL && outsz == 0)
		return -1;
	while (i < len) {
		if ((c = xtext_next(p, len, &i)) < ' ' || c > '~')
			return -1;	/* malformed, or not printable */
		if (out != NULL) {
			if (o + 1 >= outsz)
				return -1;
			out[o] = (char)c;
		}
		o++;
	}
	if (out != NULL)
		out[o] = '\0';
	return (int)o;
}

bool
xtext_valid(const uint8_t *p, size_t len)
{
	return xtext_decode(p, len, NULL, 0) >= 0;
}
