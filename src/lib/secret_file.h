/*
 * secret_file.h - read a small file that holds secrets (passwords,
 * keys), refusing one that group or others may read.
 * Owns: the open, the checks (regular file, not a link, mode & 077 == 0,
 * size bound) and the read.
 * Never: parses the text, logs it, or keeps a copy; the caller wipes
 * (explicit_bzero) and frees what it gets.
 */
#ifndef MXGATE_SECRET_FILE_H
#define MXGATE_SECRET_FILE_H

#include <stddef.h>

/*
 * The whole file, malloc'd and NUL-ended, its length in *len; NULL with
 * a reason in why ("KEY: mode 0644 lets group or others at the NOUN;
 * chmod 600 it", "KEY: not a regular file", "KEY: larger than N bytes",
 * "KEY: cannot open: ...").  key names the config key for the reason;
 * noun what the file holds ("passwords", "keys").
 */
char	*secret_file_read(const char *path, size_t max, const char *key,
	    const char *noun, size_t *len, char *why, size_t whylen);

#endif
