/*
 * fuzz_report.c - libFuzzer target for `mxgate report`'s line parser
 * (src/obs/report.c): obs_report_parse() on any line, then the counters.
 * Checks what it promises: PARSE_TOOLONG exactly over the line bound; on
 * PARSE_OK an "event" field, every key and value NUL-ended inside the
 * record's buffer (a text line's "time" key is the parser's own); the counters take any parsed record.  Untrusted: the
 * whole input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/report.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct obs_rec		fz_rec;
static struct obs_report	*fz_rep;

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static bool
fz_inside(const char *s)
{
	return s >= fz_rec.buf && s < fz_rec.buf + sizeof(fz_rec.buf) &&
	    memchr(s, '\0', (size_t)(fz_rec.buf + sizeof(fz_rec.buf) - s));
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	enum parse_rc	rc;
	size_t		i;

	if (fz_rep == NULL && (fz_rep = obs_report_new()) == NULL)
		return 0;
	rc = obs_report_parse((const char *)p, len, &fz_rec);
	fz_require((rc == PARSE_TOOLONG) == (len > OBS_REPORT_LINE_MAX));
	if (rc != PARSE_OK)
		return 0;
	fz_require(obs_rec_get(&fz_rec, "event") != NULL);
	fz_require(fz_rec.n <= OBS_REPORT_FIELDS);
	for (i = 0; i < fz_rec.n; i++)
		fz_require((fz_inside(fz_rec.f[i].key) ||
		    strcmp(fz_rec.f[i].key, "time") == 0) &&
		    fz_inside(fz_rec.f[i].val));
	obs_report_add(fz_rep, &fz_rec);
	return 0;
}
