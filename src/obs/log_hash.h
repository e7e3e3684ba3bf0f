/*
 * log_hash.h - recipients logged as a keyed hash (log_recipients =
 * hashed): HMAC-SHA256 over the recipient as the gateway keys it
 * ("local@domain", the canonical form), shown as "hmac:" and the first
 * 16 bytes in hex.  The same address gives the same value in every line
 * and after a restart, so lines can be matched and counted; without the
 * key a value cannot be turned back into an address by trying names.
 */
#ifndef MXGATE_OBS_LOG_HASH_H
#define MXGATE_OBS_LOG_HASH_H

#include <stddef.h>

#define OBS_HASH_KEY_MIN	16	/* bytes */
#define OBS_HASH_KEY_MAX	1024
#define OBS_HASH_TEXT		(5 + 32 + 1)	/* "hmac:" hex NUL */

/*
 * Load the key at start: the bytes of file, or (file NULL) of
 * SPOOL/log_hash.key, made with 32 random bytes (mode 0600) the first
 * time.  0, or -1 with the reason in err.
 */
int	obs_hash_init(const char *file, const char *spool, char *err,
	    size_t errlen);
/* "hmac:..." for s[0..n); "-" before obs_hash_init. */
const char *obs_hash_rcpt(const char *s, size_t n,
	    char out[OBS_HASH_TEXT]);

#endif
