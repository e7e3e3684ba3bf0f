/*
 * dir_file.h - the users-file back-end of the recipient directory.
 * One address a line, "local@domain"; '#' comments and blank lines skipped.
 * Owns: the line parser, the in-memory table (one key arena plus an
 * open-addressing hash of offsets).  Never: decides what a verdict means.
 * Untrusted: the users file (bounded lines, every bad line reported).
 * RFC 5321 4.1.2 (Dot-string), 4.5.3.1 (lengths); RFC 1035 2.3.1 (labels);
 * RFC 6531 3.3 (UTF-8 local parts and U-labels, compared in NFC).
 */
#ifndef MXGATE_DIR_FILE_H
#define MXGATE_DIR_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"
#include "dir.h"

#define DIR_FILE_LINE_MAX	1024	/* longer lines are errors */
#define DIR_FILE_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define DIR_FILE_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define DIR_FILE_LABEL_MAX	63	/* RFC 1035 2.3.4 */
#define DIR_FILE_KEY_MAX	(DIR_FILE_LOCAL_MAX + 1 + DIR_FILE_DOMAIN_MAX)
#define DIR_FILE_ERRORS_MAX	20	/* bad lines reported one by one */
#define DIR_FILE_BYTES_MAX	((size_t)1 << 34)	/* 16 GiB users file */

/* One parsed line: spans into the caller's bytes, never copies. */
struct dir_file_line {
	bool		 empty;		/* blank or comment: nothing to add */
	size_t		 loff, llen;	/* local part */
	size_t		 doff, dlen;	/* domain, trailing dot left out */
	bool		 utf8;		/* not all ASCII (strict UTF-8) */
	const char	*why;		/* PARSE_BAD/TOOLONG: a static reason */
};

struct dir_file;

/*
 * Parse one line (without its '\n').  PARSE_OK with empty set for blank
 * and comment lines; PARSE_BAD or PARSE_TOOLONG (over DIR_FILE_LINE_MAX)
 * with why set otherwise.  Pure: no allocation, no globals.
 */
enum parse_rc	dir_file_parse_line(const uint8_t *, size_t,
		    struct dir_file_line *);

/*
 * Load a users file, or the same text from memory (tests, fuzzing; name
 * is used in error reports).  Every bad line goes to err (the first
 * DIR_FILE_ERRORS_MAX one by one, then a count) and the result is NULL.
 * local_case: keep the local part's case (else it is folded to lower).
 */
struct dir_file	*dir_file_load(const char *path, bool local_case,
		    dir_err_fn *err, void *arg);
struct dir_file	*dir_file_load_mem(const void *, size_t, const char *name,
		    bool local_case, dir_err_fn *err, void *arg);
void		 dir_file_free(struct dir_file *);

/*
 * The key of a UTF-8 address, for the table and for queries alike: the
 * local part in NFC (ASCII letters folded unless local_case), "@", the
 * domain in NFC and lower case.  Writes at most DIR_FILE_KEY_MAX bytes
 * to out; returns the length, or 0 if the input is not strict UTF-8 or
 * a part's normal form is over its RFC 5321 size.
 */
size_t		 dir_file_key_utf8(const uint8_t *local, size_t llen,
		    const uint8_t *domain, size_t dlen, bool local_case,
		    uint8_t out[DIR_FILE_KEY_MAX]);

/* Is this key, already normalised as "local@domain", in the table? */
bool		 dir_file_has(const struct dir_file *, const uint8_t *key,
		    size_t len);
size_t		 dir_file_count(const struct dir_file *);	/* distinct */
/* Every distinct entry (normalised "local@domain"), in no order. */
void		 dir_file_each(const struct dir_file *, dir_each_fn *,
		    void *arg);
bool		 dir_file_local_case(const struct dir_file *);

#endif
