/*
 * dir_hashed.h - the hashed back-end of the recipient directory: a file
 * of HMAC-SHA256(key, canonical address) in hex, one a line, so the
 * gateway can tell our users apart without holding their addresses.
 * The canonical address is the lookup key of dir.c: "local@domain", the
 * domain in lower case, the local part folded to lower case unless
 * localpart_case_sensitive, UTF-8 in NFC (dir_file_key_utf8).
 * Owns: the line parser, the key file (read with a mode check), the
 * sorted table of digests.  Never: sees or keeps a plaintext address
 * other than the one being asked for.
 * Untrusted: the hashed file (bounded lines, each bad line reported).
 * RFC 2104 (HMAC), FIPS 180-4 (SHA-256).
 */
#ifndef MXGATE_DIR_HASHED_H
#define MXGATE_DIR_HASHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"
#include "dir.h"

#define DIR_HASHED_MAC		32	/* bytes of one digest */
#define DIR_HASHED_HEX		(2 * DIR_HASHED_MAC)
#define DIR_HASHED_LINE_MAX	256	/* longer lines are errors */
#define DIR_HASHED_KEY_MIN	16	/* bytes of the HMAC key */
#define DIR_HASHED_KEY_MAX	1024
#define DIR_HASHED_NEWKEY	32	/* bytes --new-key makes */
#define DIR_HASHED_ERRORS_MAX	20	/* bad lines reported one by one */
#define DIR_HASHED_BYTES_MAX	((size_t)1 << 32)	/* 4 GiB file */

struct dir_hashed;

/*
 * One line (without '\n'): 64 hex digits, either case, optional spaces
 * around; '#' comments and blank lines set *empty.  PARSE_OK, or
 * PARSE_BAD / PARSE_TOOLONG with *why a static reason.  Pure.
 */
enum parse_rc	dir_hashed_parse_line(const uint8_t *, size_t, bool *empty,
		    uint8_t mac[DIR_HASHED_MAC], const char **why);

/*
 * Read an HMAC key file: its bytes (16 to 1024), refused unless a
 * regular file that neither group nor others can read.  0, or -1 with
 * the reason in err.
 */
int		 dir_hashed_key_read(const char *path,
		    uint8_t key[DIR_HASHED_KEY_MAX], size_t *keylen,
		    char *err, size_t errlen);
/* out = HMAC-SHA256(key, s[0..n)); 0, or -1 if it cannot be made. */
int		 dir_hashed_mac(const uint8_t *key, size_t keylen,
		    const uint8_t *s, size_t n, uint8_t out[DIR_HASHED_MAC]);

/*
 * Load a hashed file with the key in key_path, or the same text from
 * memory with the key given (tests, fuzzing).  Every bad line goes to
 * err and the result is NULL.
 */
struct dir_hashed *dir_hashed_load(const char *path, const char *key_path,
		    dir_err_fn *err, void *arg);
struct dir_hashed *dir_hashed_load_mem(const void *, size_t,
		    const char *name, const uint8_t *key, size_t keylen,
		    dir_err_fn *err, void *arg);
void		 dir_hashed_free(struct dir_hashed *);
/* Is this canonical key (as dir.c makes it) one of the digests? */
bool		 dir_hashed_has(const struct dir_hashed *, const uint8_t *,
		    size_t);
size_t		 dir_hashed_count(const struct dir_hashed *);	/* distinct */

#endif
