/*
 * fuzz_dkim.c - libFuzzer target for src/sender/dkim_parse.c, dkim.c and
 * psl.c.  The first byte picks the case: a tag-list (every span must lie
 * within the input, no tag twice); a DKIM-Signature value; a key record;
 * one header field in both canonicalisations (the output fits the bound
 * the header promises); a body in both, fed in chunks the next byte
 * sizes; a whole message (header section, body, then the key record
 * answered from the input's last line) whose verification must end with
 * done() called at most once and every result known; a Public Suffix List
 * with a name asked of it.  Untrusted: all of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_msg.h"
#include "sender/dkim.h"
#include "sender/psl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_tags(const uint8_t *p, size_t n)
{
	struct dkim_tags	tl;
	size_t			i;

	if (dkim_tags_parse(p, n, &tl) != PARSE_OK)
		return;
	fz_require(tl.n >= 1 && tl.n <= DKIM_TAGS_MAX);
	for (i = 0; i < tl.n; i++) {
		fz_require(tl.t[i].name >= p && tl.t[i].name + tl.t[i].nlen <=
		    p + n && tl.t[i].nlen > 0);
		fz_require(tl.t[i].value >= p && tl.t[i].value + tl.t[i].vlen <=
		    p + n);
		fz_require(tl.t[i].voff <= tl.t[i].vend && tl.t[i].vend <= n);
	}
}

static void
fz_emit(void *arg, const uint8_t *p, size_t n)
{
	size_t	*total = arg;

	(void)p;
	*total += n;
}

static void
fz_canon(const uint8_t *p, size_t n)
{
	uint8_t			*out = malloc(n + 2);
	struct dkim_body_canon	 b;
	size_t			 total, i, step;
	long			 k;
	int			 c;

	fz_require(out != NULL);
	k = dkim_canon_header(DKIM_SIMPLE, p, n, out, n + 2);
	fz_require(k == (long)n);
	k = dkim_canon_header(DKIM_RELAXED, p, n, out, n + 2);
	fz_require(k <= (long)n + 2);
	free(out);
	step = n > 0 ? p[0] % 16 + 1 : 1;
	for (c = 0; c < 2; c++) {
		total = 0;
		dkim_body_canon_init(&b, c ? DKIM_RELAXED : DKIM_SIMPLE,
		    fz_emit, &total);
		for (i = 0; i < n; i += step)
			dkim_body_canon_feed(&b, p + i, n - i < step ? n - i :
			    step);
		dkim_body_canon_end(&b);
		/* relaxed never grows a line; simple adds CRLF at most */
		fz_require(total <= n + 2);
	}
}

struct fz_res {
	dns_rr_fn	*cb[DKIM_SIGS_MAX + 1];
	void		*arg[DKIM_SIGS_MAX + 1];
	size_t		 n;
	unsigned	 done;
};

static void
fz_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	struct fz_res	*r = ctx;

	(void)name;
	(void)id;
	fz_require(qtype == DNS_MSG_T_TXT && r->n < DKIM_SIGS_MAX);
	r->cb[r->n] = cb;
	r->arg[r->n++] = arg;
}

static void
fz_cancel(void *ctx, uint64_t id)
{
	(void)ctx;
	(void)id;
}

static void
fz_done(void *arg)
{
	((struct fz_res *)arg)->done++;
}

/* A message; its last line (after the last LF) is the key record. */
static void
fz_message(const uint8_t *p, size_t n)
{
	static struct dns_rrset	 rs;
	struct fz_res		 r = { .n = 0 };
	struct dns_lookup	 dr = { fz_query, fz_cancel, &r };
	struct dkim_msg		*m;
	const uint8_t		*key = p;
	size_t			 i, klen = 0, step = n > 0 ? p[0] % 64 + 1 : 1;
	bool			 wait;

	for (i = n; i > 0; i--)
		if (p[i - 1] == '\n') {
			key = p + i;
			klen = n - i;
			n = i;
			break;
		}
	if ((m = dkim_msg_new(4096)) == NULL)
		return;
	for (i = 0; i < n; i += step)
		dkim_msg_feed(m, p + i, n - i < step ? n - i : step);
	wait = dkim_verify_start(m, &dr, 1, 1700000000, fz_done, &r);
	fz_require(wait == (r.n > 0) && r.done == 0);
	memset(&rs, 0, sizeof(rs));
	rs.status = klen % 7 == 3 ? DNS_TEMPFAIL : DNS_OK;
	rs.n = 1;
	rs.rr[0].type = DNS_MSG_T_TXT;
	rs.rr[0].txtlen = klen < DNS_TXT_MAX ? klen : DNS_TXT_MAX;
	memcpy(rs.rr[0].txt, key, rs.rr[0].txtlen);
	for (i = 0; i < r.n; i++)
		r.cb[i](r.arg[i], 1, &rs);
	fz_require(r.done == (wait ? 1 : 0));
	for (i = 0; i < dkim_msg_nsigs(m, NULL); i++)
		fz_require(dkim_msg_outcome(m, i)->result != DKIM_NONE);
	dkim_msg_free(m);
}

static void
fz_psl(const uint8_t *p, size_t n)
{
	const uint8_t	*nl = memchr(p, '\n', n);
	char		 name[256], out[256];
	struct psl	*l;
	size_t		 k, i;

	if (nl == NULL)
		return;
	k = (size_t)(nl - p);
	if (k == 0 || k >= sizeof(name))
		return;
	for (i = 0; i < k; i++)
		if (p[i] == '\0')
			return;
	memcpy(name, p, k);
	name[k] = '\0';
	if ((l = psl_parse((const char *)nl + 1, n - k - 1)) == NULL)
		return;
	if (psl_org_domain(l, name, out, sizeof(out)) != NULL)
		fz_require(strlen(out) <= k);
	(void)psl_aligned(l, name, out);
	psl_free(l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_sig	 sig;
	struct dkim_key	 key;
	const char	*why;

	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		fz_tags(data + 1, size - 1);
		break;
	case 1:
		if (dkim_sig_parse(data + 1, size - 1, &sig, &why) == DKIM_NONE)
			fz_require(sig.blen > 0 && sig.bhlen == 32 &&
			    sig.nh > 0 && sig.bend <= size - 1);
		else
			fz_require(why != NULL);
		break;
	case 2:
		if (dkim_key_parse(data + 1, size - 1, &key, &why) == DKIM_NONE)
			fz_require(key.plen > 0 && key.plen <= DKIM_KEY_MAX);
		break;
	case 3:
		fz_canon(data + 1, size - 1);
		break;
	case 4:
		fz_message(data + 1, size - 1);
		break;
	default:
		fz_psl(data + 1, size - 1);
		break;
	}
	return 0;
}
