/*
 * parse.h - the return codes every pure parser in mxgate shares (STYLE R6),
 * and the small character tests more than one of them needs.
 */
#ifndef MXGATE_PARSE_H
#define MXGATE_PARSE_H

enum parse_rc {
	PARSE_OK,	/* complete and valid */
	PARSE_MORE,	/* valid so far; needs more bytes */
	PARSE_BAD,	/* invalid */
	PARSE_TOOLONG,	/* over the parser's bound */
};

/* A hexadecimal digit's value, either case; -1 for any other byte. */
static inline int
parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
