/*
 * fuzz_dir_file.c - libFuzzer target for the users-file back-end.
 * The input is tried as one line (dir_file_parse_line: spans in bounds,
 * sizes within RFC 5321) and as a whole file (dir_file_load_mem, both
 * case modes): a file with a bad line must fail with an error, and every
 * good line's key must then be found in the table (a UTF-8 line's in NFC:
 * one whose normal form is longer than its text is a bad line too).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dir/dir_file.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_dir_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || strlen(msg) >= 512)
		abort();
	(*(unsigned *)arg)++;
}

static void
fuzz_dir_check_line(const uint8_t *p, size_t len, enum parse_rc rc,
    const struct dir_file_line *ln)
{
	if (rc != PARSE_OK) {
		if (ln->why == NULL || (rc != PARSE_BAD && rc != PARSE_TOOLONG))
			abort();
		if ((rc == PARSE_TOOLONG) != (len > DIR_FILE_LINE_MAX))
			abort();
		return;
	}
	if (ln->empty)
		return;
	if (ln->llen == 0 || ln->llen > DIR_FILE_LOCAL_MAX ||
	    ln->dlen == 0 || ln->dlen > DIR_FILE_DOMAIN_MAX ||
	    ln->doff != ln->loff + ln->llen + 1 || ln->doff + ln->dlen > len ||
	    p[ln->loff + ln->llen] != '@' ||
	    memchr(p + ln->loff, '@', ln->llen) != NULL ||
	    memchr(p + ln->doff, '.', 1) != NULL)
		abort();
}

/* A UTF-8 line loads if its key in NFC is no longer than as written. */
static bool
fuzz_dir_nfc_fits(const uint8_t *p, const struct dir_file_line *ln)
{
	uint8_t	key[DIR_FILE_KEY_MAX];
	size_t	klen;

	klen = dir_file_key_utf8(p + ln->loff, ln->llen, p + ln->doff,
	    ln->dlen, false, key);
	return klen > 0 && klen <= ln->llen + 1 + ln->dlen;
}

static uint8_t
fuzz_dir_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Every good line of p must be in f, folded as the loader folds. */
static void
fuzz_dir_check_table(const struct dir_file *f, const uint8_t *p,
    size_t len, bool local_case)
{
	struct dir_file_line	 ln;
	const uint8_t		*nl;
	uint8_t			 key[DIR_FILE_KEY_MAX];
	size_t			 r, end, i, klen, nkeys = 0;

	for (r = 0; r < len; r = end + 1) {
		nl = memchr(p + r, '\n', len - r);
		end = nl != NULL ? (size_t)(nl - p) : len;
		if (dir_file_parse_line(p + r, end - r, &ln) != PARSE_OK)
			abort();	/* the load should have failed */
		if (ln.empty)
			continue;
		klen = ln.llen + 1 + ln.dlen;
		if (ln.utf8) {
			klen = dir_file_key_utf8(p + r + ln.loff, ln.llen,
			    p + r + ln.doff, ln.dlen, local_case, key);
			if (klen == 0 || !dir_file_has(f, key, klen))
				abort();
			nkeys++;
			continue;
		}
		for (i = 0; i < klen; i++)
			key[i] = local_case && i < ln.llen ?
			    p[r + ln.loff + i] :
			    fuzz_dir_lower(p[r + ln.loff + i]);
		if (!dir_file_has(f, key, klen))
			abort();
		nkeys++;
	}
	if (dir_file_count(f) > nkeys || (nkeys > 0 && dir_file_count(f) == 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dir_file_line	 ln;
	struct dir_file		*f;
	enum parse_rc		 rc;
	const uint8_t		*nl;
	size_t			 r, end;
	unsigned		 nerr;
	bool			 bad = false;
	int			 mode;

	rc = dir_file_parse_line(data, size, &ln);
	fuzz_dir_check_line(data, size, rc, &ln);

	for (r = 0; r < size && !bad; r = end + 1) {
		nl = memchr(data + r, '\n', size - r);
		end = nl != NULL ? (size_t)(nl - data) : size;
		rc = dir_file_parse_line(data + r, end - r, &ln);
		fuzz_dir_check_line(data + r, end - r, rc, &ln);
		bad = rc != PARSE_OK || (ln.utf8 && !fuzz_dir_nfc_fits(data + r,
		    &ln));
	}
	for (mode = 0; mode < 2; mode++) {
		nerr = 0;
		f = dir_file_load_mem(data, size, "fuzz", mode == 1,
		    fuzz_dir_err, &nerr);
		if (bad != (f == NULL) || bad != (nerr > 0) ||
		    nerr > DIR_FILE_ERRORS_MAX + 1)
			abort();
		if (f != NULL)
			fuzz_dir_check_table(f, data, size, mode == 1);
		dir_file_free(f);
	}
	return 0;
}
