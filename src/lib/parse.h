/*
 * parse.h - the return codes every pure parser in mxgate shares (STYLE R6).
 */
#ifndef MXGATE_PARSE_H
#define MXGATE_PARSE_H

enum parse_rc {
	PARSE_OK,	/* complete and valid */
	PARSE_MORE,	/* valid so far; needs more bytes */
	PARSE_BAD,	/* invalid */
	PARSE_TOOLONG,	/* over the parser's bound */
};

#endif
