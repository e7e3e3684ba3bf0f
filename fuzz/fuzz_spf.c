/*
 * fuzz_spf.c - libFuzzer target for src/sender/spf.c and spf_macro.c.
 * The first byte picks the case.  Even: the rest is a macro-string,
 * expanded (as a domain-spec and as explanation text) into buffers of
 * sizes the next byte picks; an OK expansion must fit with its NUL, a
 * failed one must leave the buffer terminated within it.  Odd: the rest
 * is the TXT record of the domain checked and of every name the
 * evaluation asks TXT of, while A/AAAA/MX/PTR questions get small fixed
 * answers chosen by the input's length; the evaluation must end, once,
 * within a bounded number of questions, with a known result and its
 * look-up counts within the RFC 7208 limits.  Untrusted: all of it.
 */
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns_msg.h"
#include "sender/spf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fz {
	const uint8_t		*rec;
	size_t			 reclen;
	bool			 pending, done;
	uint16_t		 qtype;
	dns_rr_fn		*cb;
	void			*arg;
	struct spf_outcome	 out;
};

static struct dns_rrset	fz_set;

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_query(void *ctx, const char *name, uint16_t qtype, uint64_t id,
    dns_rr_fn *cb, void *arg)
{
	struct fz	*f = ctx;

	(void)id;
	fz_require(!f->pending);
	fz_require(strlen(name) <= SPF_DOMAIN_MAX + 20);	/* PTR names */
	f->pending = true;
	f->qtype = qtype;
	f->cb = cb;
	f->arg = arg;
}

static void
fz_cancel(void *ctx, uint64_t id)
{
	struct fz	*f = ctx;

	(void)id;
	f->pending = false;
}

static void
fz_done(void *arg, const struct spf_outcome *o)
{
	struct fz	*f = arg;

	fz_require(!f->done);
	f->done = true;
	f->out = *o;
}

static void
fz_answer(struct fz *f)
{
	struct dns_rrset	*s = &fz_set;
	size_t			 i, n;

	memset(s, 0, sizeof(*s));
	s->qtype = f->qtype;
	s->status = DNS_OK;
	n = f->reclen % 4;
	switch (f->qtype) {
	case DNS_MSG_T_TXT:
		n = 1;
		s->rr[0].type = DNS_MSG_T_TXT;
		s->rr[0].txtlen = f->reclen < DNS_TXT_MAX ? f->reclen :
		    DNS_TXT_MAX;
		s->rr[0].txtlong = f->reclen > DNS_TXT_MAX;
		memcpy(s->rr[0].txt, f->rec, s->rr[0].txtlen);
		break;
	case DNS_MSG_T_A:
	case DNS_MSG_T_AAAA:
		for (i = 0; i < n; i++) {
			s->rr[i].type = f->qtype;
			s->rr[i].addr[0] = 192;
			s->rr[i].addr[3] = (uint8_t)i;
		}
		break;
	case DNS_MSG_T_MX:
	case DNS_MSG_T_PTR:
		n = f->reclen % 13;
		for (i = 0; i < n; i++) {
			s->rr[i].type = f->qtype;
			memcpy(s->rr[i].name, "h.example", 10);
		}
		break;
	}
	if (f->reclen % 7 == 3 && f->qtype != DNS_MSG_T_TXT)
		s->status = f->reclen % 2 ? DNS_NOTFOUND : DNS_TEMPFAIL;
	s->n = s->total = n;
	f->pending = false;
	f->cb(f->arg, 1, s);
}

static void
fz_eval(const uint8_t *data, size_t size)
{
	struct fz		 f = { data, size, false, false, 0, NULL, NULL,
				    { 0 } };
	struct dns_lookup	 r = { fz_query, fz_cancel, &f };
	struct spf_request	 req = { .family = size % 2 ? AF_INET : AF_INET6,
				    .ip = { 192, 0, 0, 1 }, .mailfrom =
				    "a.b@example.test", .helo = "h.example",
				    .receiver = "mx.example" };
	struct spf_outcome	 now;
	struct spf_eval		*ev;
	unsigned		 steps = 0;

	ev = spf_eval_start(&r, &req, 1, fz_done, &f, &now);
	fz_require(ev != NULL);
	while (!f.done) {
		fz_require(f.pending);
		/* look-ups, names and the exp and %{p} extras, bounded */
		fz_require(++steps < 400);
		fz_answer(&f);
	}
	fz_require(!f.pending);
	fz_require(f.out.result <= SPF_PERMERROR);
	fz_require(f.out.lookups <= SPF_LOOKUPS_MAX + 1);
	fz_require(f.out.voids <= SPF_VOIDS_MAX + 1);
	fz_require(strnlen(f.out.expl, sizeof(f.out.expl)) <
	    sizeof(f.out.expl));
}

static void
fz_macro(const uint8_t *data, size_t size)
{
	static const uint8_t	ip[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct spf_macro_ctx	c = {
		.sender = "local.part@example.test", .local = "local.part",
		.sdomain = "example.test", .domain = "sub.example.test",
		.helo = "h.example", .pname = size % 3 ? "p.example" : NULL,
		.receiver = "mx.example", .family = size % 2 ? AF_INET :
		    AF_INET6, .ip = ip, .now = 1,
	};
	char			*out;
	size_t			 outlen, n;
	enum spf_macro_rc	 rc;
	int			 explain;

	if (size < 1)
		return;
	outlen = 1 + data[0] * 8;
	if ((out = malloc(outlen)) == NULL)
		return;
	for (explain = 0; explain < 2; explain++) {
		n = 0;
		rc = spf_macro_expand(&c, (const char *)data + 1, size - 1,
		    explain, out, outlen, &n);
		fz_require(strnlen(out, outlen) < outlen);
		if (rc == SPF_MACRO_OK)
			fz_require(n == strlen(out) && n < outlen);
		fz_require((rc == SPF_MACRO_SYNTAX) ==
		    !spf_macro_valid((const char *)data + 1, size - 1,
		    explain) || rc == SPF_MACRO_TOOLONG || rc ==
		    SPF_MACRO_NEED_P);
	}
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] % 2 == 0)
		fz_macro(data + 1, size - 1);
	else
		fz_eval(data + 1, size - 1);
	return 0;
}
