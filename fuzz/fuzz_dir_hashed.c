/*
 * fuzz_dir_hashed.c - libFuzzer target for the hashed back-end.
 * The input is tried as one line (dir_hashed_parse_line: a PARSE_OK
 * non-empty line is 64 hex digits, its digest round-trips) and as a whole
 * file (dir_hashed_load_mem): a file with a bad line fails with an error;
 * a good file has no more digests than lines.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir/dir_hashed.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || strlen(msg) >= 512)
		abort();
	(*(unsigned *)arg)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t	 key[16] = "fuzz-key-0123456";
	struct dir_hashed	*h;
	uint8_t			 mac[DIR_HASHED_MAC];
	char			 hex[DIR_HASHED_HEX + 1];
	const char		*why;
	enum parse_rc		 rc;
	unsigned		 nerr = 0;
	size_t			 i, lines = 1;
	bool			 empty;

	rc = dir_hashed_parse_line(data, size, &empty, mac, &why);
	if (rc != PARSE_OK) {
		if (why == NULL || (rc == PARSE_TOOLONG) !=
		    (size > DIR_HASHED_LINE_MAX))
			abort();
	} else if (!empty) {
		for (i = 0; i < DIR_HASHED_MAC; i++)
			snprintf(hex + 2 * i, 3, "%02x", mac[i]);
		/* the digits are in the line, in some case */
		for (i = 0; i + DIR_HASHED_HEX <= size; i++)
			if (strncasecmp((const char *)data + i, hex,
			    DIR_HASHED_HEX) == 0)
				break;
		if (i + DIR_HASHED_HEX > size)
			abort();
	}
	for (i = 0; i < size; i++)
		lines += data[i] == '\n';
	h = dir_hashed_load_mem(data, size, "fuzz", key, sizeof(key),
	    fuzz_err, &nerr);
	if ((h == NULL) != (nerr > 0))
		abort();
	if (h != NULL && dir_hashed_count(h) > lines)
		abort();
	dir_hashed_free(h);
	return 0;
}
