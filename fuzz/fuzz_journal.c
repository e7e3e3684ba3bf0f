/*
 * fuzz_journal.c - libFuzzer target for journal_parse() (src/queue/
 * journal.c), the reader of SPOOL/journal segments at recovery.  Walks the
 * input entry by entry from offset 0, as recovery does; checks that the
 * offset only grows and stays in the input, that each entry's image lies
 * inside it, that its qid parses, and that only a canonical header (the
 * one journal_header() and journal_crc() would write) is accepted.
 * Untrusted: the whole input (a segment on disk).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ids.h"
#include "queue/journal.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_entry(const uint8_t *p, size_t n, size_t at, size_t off,
    const struct journal_ent *e)
{
	uint8_t		hdr[JOURNAL_HDRLEN];
	uint64_t	id;
	uint32_t	crc;

	fz_require(off > at && off <= n);
	fz_require(e->type == JOURNAL_T_MSG || e->type == JOURNAL_T_GONE);
	fz_require(e->type == JOURNAL_T_MSG || e->len == 0);
	fz_require(e->len <= JOURNAL_LEN_MAX);
	/* the image: right after the header, inside the input */
	fz_require(e->data == p + at + JOURNAL_HDRLEN);
	fz_require(e->data >= p && e->data <= p + n);
	fz_require(e->len <= (uint64_t)(p + n - e->data));
	fz_require(off - at == JOURNAL_HDRLEN + e->len);
	fz_require(e->qid[ID_STRLEN] == '\0');
	fz_require(id_parse(e->qid, &id) == 0);
	/* what was accepted is exactly what the writer would produce */
	journal_header(hdr, e->type, e->qid, e->len, 0);
	crc = journal_crc(journal_crc(0, hdr, 32), e->data, (size_t)e->len);
	journal_header(hdr, e->type, e->qid, e->len, crc);
	fz_require(memcmp(hdr, p + at, JOURNAL_HDRLEN) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t n)
{
	struct journal_ent	e;
	size_t			off = 0, at, count = 0;

	for (;;) {
		at = off;
		memset(&e, 0, sizeof(e));
		if (journal_parse(p, n, &off, &e) != 1) {
			fz_require(off == at);	/* a refusal moves nothing */
			break;
		}
		fz_entry(p, n, at, off, &e);
		fz_require(++count <= n / JOURNAL_HDRLEN);
	}
	/* past the end: refused, off unchanged */
	at = n + 1;
	fz_require(journal_parse(p, n, &at, &e) == 0 && at == n + 1);
	return 0;
}
