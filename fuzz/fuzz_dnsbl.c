/*
 * fuzz_dnsbl.c - libFuzzer target for sender/dnsbl.c: the dnsbl_sites
 * parser and the answer matching.  The input is "TEXT\0ANSWERS": TEXT a
 * dnsbl_sites value, ANSWERS bytes taken 5 at a time (zone index, then
 * an A record's 4 bytes).  Checks: a parsed list is within its bounds
 * (entries, zones, names lower case and short enough, weights nonzero
 * and bounded, each entry's zone index right); the query names fit;
 * the score equals the weights of the entries whose filter admits a
 * listing code; an error code (127.255.255.0/24) or an address outside
 * 127.0.0.0/8 never matches; the texts are NUL-terminated in bounds.
 */
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sender/dnsbl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check_list(const struct dnsbl_list *l)
{
	const struct dnsbl_site	*st;
	size_t			 i, n;

	if (l->n > DNSBL_SITES_MAX || l->nzones > l->n)
		abort();
	for (i = 0; i < l->n; i++) {
		st = &l->site[i];
		n = strlen(st->zone);
		if (n == 0 || n > DNSBL_ZONE_MAX || st->weight == 0 ||
		    abs(st->weight) > DNSBL_WEIGHT_MAX || st->zi >= l->nzones ||
		    strcmp(l->zones[st->zi], st->zone) != 0 ||
		    strpbrk(st->zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZ=*, ") != NULL)
			abort();
	}
}

static void
fuzz_names(const struct dnsbl_list *l)
{
	uint8_t	ip[16];
	char	out[DNSBL_QNAME_MAX + 1];
	size_t	zi;

	memset(ip, 0xab, sizeof(ip));
	for (zi = 0; zi < l->nzones; zi++)
		if (dnsbl_query_name(AF_INET, ip, l->zones[zi], out,
		    sizeof(out)) == -1 || dnsbl_query_name(AF_INET6, ip,
		    l->zones[zi], out, sizeof(out)) == -1 ||
		    strlen(out) > DNSBL_QNAME_MAX)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dnsbl_list	 l;
	struct dnsbl_zanswer	 za[DNSBL_SITES_MAX];
	struct dnsbl_outcome	 o;
	const uint8_t		*nul = memchr(data, '\0', size);
	size_t			 tlen = nul ? (size_t)(nul - data) : size, i, k;
	const uint8_t		*a = nul ? nul + 1 : data + size;
	const uint8_t		*end = data + size;
	char			 why[256];
	int			 want = 0;
	bool			 hit;

	if (dnsbl_list_parse((const char *)data, tlen, &l, why,
	    sizeof(why)) == -1) {
		if (memchr(why, '\0', sizeof(why)) == NULL || why[0] == '\0')
			abort();
		return 0;
	}
	fuzz_check_list(&l);
	fuzz_names(&l);
	memset(za, 0, sizeof(za));
	for (i = 0; i < l.nzones; i++)
		za[i].res = DNSBL_Z_UNLISTED;
	for (; end - a >= 5 && l.nzones > 0; a += 5) {
		i = a[0] % l.nzones;
		if (za[i].naddrs == DNSBL_ADDRS_MAX)
			continue;
		za[i].res = DNSBL_Z_ANSWER;
		memcpy(za[i].addrs[za[i].naddrs++], a + 1, 4);
		if ((a[1] != 127 || (a[2] == 255 && a[3] == 255)) &&
		    (dnsbl_code_class(a + 1) == DNSBL_CODE_LISTING))
			abort();
	}
	for (i = 0; i < l.n; i++) {
		hit = false;
		for (k = 0; k < za[l.site[i].zi].naddrs; k++) {
			const uint8_t *x = za[l.site[i].zi].addrs[k];

			if (dnsbl_site_match(&l.site[i], x)) {
				if (x[0] != 127 || (x[1] == 255 && x[2] == 255))
					abort();
				hit = true;
			}
		}
		if (hit)
			want += l.site[i].weight;
	}
	dnsbl_score(&l, za, &o);
	if (o.score != want ||
	    memchr(o.listed, '\0', sizeof(o.listed)) == NULL ||
	    memchr(o.detail, '\0', sizeof(o.detail)) == NULL ||
	    memchr(o.alert, '\0', sizeof(o.alert)) == NULL ||
	    memchr(o.skipped, '\0', sizeof(o.skipped)) == NULL)
		abort();
	return 0;
}
