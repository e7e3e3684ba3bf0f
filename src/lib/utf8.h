/*
 * utf8.h - strict UTF-8 (RFC 3629) and Unicode NFC for short strings.
 * Owns: the decoder (no overlongs, no surrogates, nothing past U+10FFFF,
 * no C1 controls), NFC through Debian's libutf8proc, bounded buffers.
 * Never: allocates, reads past the length given, knows about mail.
 * Untrusted: every byte.
 */
#ifndef MXGATE_UTF8_H
#define MXGATE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_NORM_MAX	512	/* longest input utf8_nfc accepts, octets */

/*
 * One non-ASCII character at p (p[0] >= 0x80): its length 2..4.  0 when
 * avail ends inside a sequence that is valid so far; -1 when the bytes
 * are not strict UTF-8 or encode a C1 control (U+0080..U+009F).
 */
int	utf8_char(const uint8_t *p, size_t avail);

/* True if p holds only bytes below 0x80. */
bool	utf8_is_ascii(const uint8_t *p, size_t len);

/*
 * NFC of p into out (outmax octets, no NUL), lower-cased first when fold
 * (simple per-character mapping, not full case folding).
 * Returns the length, or -1 when p is not strict UTF-8 (or holds a
 * control character), is over UTF8_NORM_MAX, or the result does not fit.
 * ASCII input is copied as is (its NFC is itself).
 */
int	utf8_nfc(const uint8_t *p, size_t len, bool fold, uint8_t *out,
	    size_t outmax);

#endif
