/*
 * fuzz_dane.c - libFuzzer target for src/deliver/dane.c's TLSA RDATA
 * parser.  Each input is one RDATA: a parse that succeeds must keep the
 * three fields and exactly the data after them, within DANE_DATA_MAX,
 * with a digest of the length its matching type says; a record is usable
 * only for usages 2/3, selectors 0/1, types 0/1/2; matching it against
 * the input itself (as certificate and SPKI) must not crash, and a
 * full-data record matches its own data.  Untrusted: all of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/dane.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct dane_tlsa	t;
	enum parse_rc		rc;

	rc = dane_tlsa_parse(p, len, &t);
	fz_require(rc == PARSE_OK || rc == PARSE_BAD || rc == PARSE_TOOLONG);
	if (rc != PARSE_OK) {
		fz_require(len < 4 || len - 3 > DANE_DATA_MAX ||
		    p[2] == DANE_MT_SHA256 || p[2] == DANE_MT_SHA512);
		return 0;
	}
	fz_require(len >= 4 && t.len == len - 3 && t.len <= DANE_DATA_MAX);
	fz_require(t.usage == p[0] && t.selector == p[1] && t.mtype == p[2]);
	fz_require(memcmp(t.data, p + 3, t.len) == 0);
	fz_require(t.mtype != DANE_MT_SHA256 || t.len == 32);
	fz_require(t.mtype != DANE_MT_SHA512 || t.len == 64);
	fz_require(dane_usable(&t) == ((t.usage == 2 || t.usage == 3) &&
	    t.selector <= 1 && t.mtype <= 2));
	(void)dane_match(&t, p, len, p, len);
	if (dane_usable(&t) && t.mtype == DANE_MT_FULL)
		fz_require(dane_match(&t, t.data, t.len, t.data, t.len));
	fz_require(dane_same(&t, 1, &t, 1));
	return 0;
}
