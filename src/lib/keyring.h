/*
 * keyring.h - numbered secret keys read from a file only its owner may
 * read: one "N SECRET" a line (N one digit 0..9, SECRET the rest of the
 * line after the blanks, 16..256 printable octets), '#' comments and
 * blank lines allowed.  The first key line is the one that signs; every
 * line's key verifies (so a new key is added as the first line while the
 * old one stays below it for as long as what it signed stays valid).
 * Owns: the line grammar, the mode check, wiping the secrets.
 * Never: logs a secret, or a line that holds one (errors name the line
 * number only).  Untrusted: the file, every line bounded.
 */
#ifndef MXGATE_KEYRING_H
#define MXGATE_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "parse.h"

#define KEYRING_MAX		10	/* key numbers 0..9 */
#define KEYRING_SECRET_MIN	16	/* octets; e.g. openssl rand -hex 32 */
#define KEYRING_SECRET_MAX	256
#define KEYRING_LINE_MAX	512
#define KEYRING_FILE_MAX	(16 * 1024)

struct keyring_key {
	unsigned	 id;		/* 0..9 */
	size_t		 len;
	uint8_t		 secret[KEYRING_SECRET_MAX];
};

/* Plain data: k[0] signs; n 0 only for an empty ring (never loaded so). */
struct keyring {
	size_t			 n;
	struct keyring_key	 k[KEYRING_MAX];
};

typedef void	keyring_err_fn(void *arg, const char *file, unsigned line,
		    const char *msg);

/*
 * One line without its LF (a CR before it is ignored).  PARSE_OK with
 * *slen 0 for a blank or comment line; PARSE_BAD or PARSE_TOOLONG with
 * *why set.  *secret is a span of the line.  Pure.
 */
enum parse_rc	keyring_parse_line(const char *, size_t, unsigned *id,
		    const char **secret, size_t *slen, const char **why);

/*
 * Load a key file (blocking).  Refused through err (what names the key,
 * e.g. "batv_key_file"): a file group or others may read or write, not
 * a regular file, too large, a bad or duplicate line, or no key at all.
 * NULL then.  keyring_free() wipes the secrets.
 */
struct keyring	*keyring_load(const char *path, const char *what,
		    keyring_err_fn *, void *arg);
struct keyring	*keyring_load_mem(const char *text, size_t len,
		    const char *name, keyring_err_fn *, void *arg);
void		 keyring_free(struct keyring *);
/* The key numbered id, or NULL. */
const struct keyring_key *keyring_find(const struct keyring *, unsigned id);

#endif
