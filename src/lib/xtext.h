/*
 * xtext.h - the xtext encoding of RFC 3461 4 (ENVID, ORCPT; also AUTH=
 * of RFC 4954): pure, bounded checks and decoding.
 * Owns: the grammar.  Never: I/O, allocation, globals.
 * Untrusted: every byte.
 */
#ifndef MXGATE_XTEXT_H
#define MXGATE_XTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * xtext = *( xchar / "+" 2HEXDIG ), xchar = "!".."~" but "+" and "=",
 * HEXDIG uppercase.  Valid only if the decoded text is printable US-ASCII
 * (SP.."~"), as RFC 3461 4.2 and 4.4 require of ORCPT and ENVID.  Decode
 * writes at most outsz - 1 bytes and a NUL; returns the decoded length,
 * or -1 if invalid or it does not fit (out NULL: check only).
 */
int	xtext_decode(const uint8_t *, size_t, char *out, size_t outsz);
bool	xtext_valid(const uint8_t *, size_t);

#endif
