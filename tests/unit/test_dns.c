/*
 * test_dns.c - src/dns/dns_msg.c case tables (compression, pointer
 * loops, truncation, bad counts, oversize names, null MX, CNAME, EDNS0)
 * and src/dns/dns.c end to end: against a real dnsmasq started on
 * 127.0.0.1 at a free high port (skipped, with a message, if it is not
 * installed), and against scripted UDP servers in the test's own event
 * loop (silence, retransmission, TC, SERVFAIL, spoofed datagrams, CNAME
 * chase, oversize MX sets, an unreachable port).
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "dns/dns_msg.h"

#ifndef DNSMASQ
#define DNSMASQ		"/usr/sbin/dnsmasq"
#endif
#define WAIT_MS		5000	/* bound on any loop run */

/* ---------------------------------------------------------------- */
/* A byte writer for hand-built messages. */

struct wb {
	uint8_t	b[DNS_MSG_MAX + 256];
	size_t	n;
};

static void
wb_u8(struct wb *w, unsigned v)
{
	assert_true(w->n < sizeof(w->b));
	w->b[w->n++] = (uint8_t)v;
}

static void
wb_u16(struct wb *w, unsigned v)
{
	wb_u8(w, v >> 8);
	wb_u8(w, v & 0xff);
}

static void
wb_u32(struct wb *w, uint32_t v)
{
	wb_u16(w, v >> 16);
	wb_u16(w, v & 0xffff);
}

/* Hex digits; blanks are skipped. */
static void
wb_hex(struct wb *w, const char *h)
{
	unsigned	v;

	for (; *h != '\0'; h++) {
		if (*h == ' ')
			continue;
		assert_int_equal(sscanf(h, "%2x", &v), 1);
		wb_u8(w, v);
		h++;
	}
}

/* A text name, uncompressed. */
static void
wb_name(struct wb *w, const char *name)
{
	const char	*dot;
	size_t		 l;

	while (*name != '\0') {
		dot = strchr(name, '.');
		l = dot != NULL ? (size_t)(dot - name) : strlen(name);
		wb_u8(w, (unsigned)l);
		memcpy(w->b + w->n, name, l);
		w->n += l;
		name += l + (dot != NULL);
	}
	wb_u8(w, 0);
}

static void
wb_hdr(struct wb *w, unsigned id, unsigned flags, unsigned qd, unsigned an,
    unsigned ns, unsigned ar)
{
	w->n = 0;
	wb_u16(w, id);
	wb_u16(w, flags);
	wb_u16(w, qd);
	wb_u16(w, an);
	wb_u16(w, ns);
	wb_u16(w, ar);
}

static void
wb_rr(struct wb *w, const char *owner, unsigned type, uint32_t ttl)
{
	wb_name(w, owner);
	wb_u16(w, type);
	wb_u16(w, DNS_MSG_C_IN);
	wb_u32(w, ttl);
}

static void
wb_rr_addr(struct wb *w, const char *owner, const char *addr)
{
	uint8_t	a[16];

	if (strchr(addr, ':') != NULL) {
		assert_int_equal(inet_pton(AF_INET6, addr, a), 1);
		wb_rr(w, owner, DNS_MSG_T_AAAA, 60);
		wb_u16(w, 16);
		memcpy(w->b + w->n, a, 16);
		w->n += 16;
	} else {
		assert_int_equal(inet_pton(AF_INET, addr, a), 1);
		wb_rr(w, owner, DNS_MSG_T_A, 60);
		wb_u16(w, 4);
		memcpy(w->b + w->n, a, 4);
		w->n += 4;
	}
}

/* MX (pref set) or CNAME (pref < 0) with an uncompressed target. */
static void
wb_rr_name(struct wb *w, const char *owner, int pref, const char *target)
{
	size_t	at;

	wb_rr(w, owner, pref < 0 ? DNS_MSG_T_CNAME : DNS_MSG_T_MX, 60);
	at = w->n;
	wb_u16(w, 0);
	if (pref >= 0)
		wb_u16(w, (unsigned)pref);
	wb_name(w, target);
	w->b[at] = (uint8_t)((w->n - at - 2) >> 8);
	w->b[at + 1] = (uint8_t)((w->n - at - 2) & 0xff);
}

/* Parse exactly w->n bytes from their own heap block (ASan sees overreads). */
static enum parse_rc
parse_exact(const struct wb *w, struct dns_msg *m)
{
	uint8_t		*p = malloc(w->n ? w->n : 1);
	enum parse_rc	 rc;

	assert_non_null(p);
	memcpy(p, w->b, w->n);
	rc = dns_msg_parse(p, w->n, m);
	free(p);
	return rc;
}

/* ---------------------------------------------------------------- */
/* Parser: hand-built messages. */

struct ptc {
	const char	*what;
	const char	*hex;
	enum parse_rc	 rc;
	int		 nan;		/* -1: not checked */
	const char	*qname;		/* NULL: not checked */
	int		 rr;		/* record to check, -1 none */
	unsigned	 type;
	const char	*name;
	int		 pref;
	const char	*target;
	const char	*addr;
};

#define HDR(id, fl, qd, an, ns, ar) \
	id " " fl " " qd " " an " " ns " " ar " "
#define Q_MXTEST	"026d78 0474657374 00 000f 0001 "	/* mx.test MX */
#define Q_ATEST		"0161 0474657374 00 0001 0001 "		/* a.test A */
#define TTL		"00000e10 "

static const struct ptc ptcs[] = {
	{ "MX with compression", HDR("1234", "8180", "0001", "0002", "0000",
	    "0000") Q_MXTEST
	    "c00c 000f 0001" TTL "0006 000a 0161 c00c "
	    "c00c 000f 0001" TTL "0007 0014 026262 c00c",
	    PARSE_OK, 2, "mx.test", 1, DNS_MSG_T_MX, "mx.test", 20,
	    "bb.mx.test", NULL },
	{ "MX first record", HDR("1234", "8180", "0001", "0002", "0000",
	    "0000") Q_MXTEST
	    "c00c 000f 0001" TTL "0006 000a 0161 c00c "
	    "c00c 000f 0001" TTL "0007 0014 026262 c00c",
	    PARSE_OK, 2, NULL, 0, DNS_MSG_T_MX, "mx.test", 10, "a.mx.test",
	    NULL },
	{ "A", HDR("0001", "8180", "0001", "0001", "0000", "0000") Q_ATEST
	    "c00c 0001 0001" TTL "0004 c0000201",
	    PARSE_OK, 1, "a.test", 0, DNS_MSG_T_A, "a.test", 0, "",
	    "192.0.2.1" },
	{ "AAAA", HDR("0001", "8180", "0001", "0001", "0000", "0000")
	    "0161 0474657374 00 001c 0001 "
	    "c00c 001c 0001" TTL "0010 20010db8000000000000000000000001",
	    PARSE_OK, 1, "a.test", 0, DNS_MSG_T_AAAA, "a.test", 0, "",
	    "2001:db8::1" },
	{ "CNAME then A, pointers into rdata", HDR("0002", "8180", "0001",
	    "0002", "0000", "0000")
	    "03777777 0474657374 00 0001 0001 "
	    "c00c 0005 0001" TTL "0004 0168 c010 "
	    "c026 0001 0001" TTL "0004 c0000207",
	    PARSE_OK, 2, "www.test", 0, DNS_MSG_T_CNAME, "www.test", 0,
	    "h.test", NULL },
	{ "A owned by the CNAME target", HDR("0002", "8180", "0001", "0002",
	    "0000", "0000")
	    "03777777 0474657374 00 0001 0001 "
	    "c00c 0005 0001" TTL "0004 0168 c010 "
	    "c026 0001 0001" TTL "0004 c0000207",
	    PARSE_OK, 2, NULL, 1, DNS_MSG_T_A, "h.test", 0, "", "192.0.2.7" },
	{ "null MX", HDR("0003", "8180", "0001", "0001", "0000", "0000")
	    "026e6d 0474657374 00 000f 0001 "
	    "c00c 000f 0001" TTL "0003 0000 00",
	    PARSE_OK, 1, "nm.test", 0, DNS_MSG_T_MX, "nm.test", 0, "", NULL },
	{ "upper case folded", HDR("0003", "8180", "0001", "0000", "0000",
	    "0000") "02 4d58 04 54655354 00 000f 0001",
	    PARSE_OK, 0, "mx.test", -1, 0, NULL, 0, NULL, NULL },
	{ "TXT kept by type only", HDR("0003", "8180", "0001", "0001", "0000",
	    "0000") Q_ATEST "c00c 0010 0001" TTL "0003 02 6869",
	    PARSE_OK, 1, NULL, 0, 16, "a.test", 0, "", NULL },
	{ "SERVFAIL, no question", HDR("000a", "8182", "0000", "0000", "0000",
	    "0000"), PARSE_OK, 0, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "NXDOMAIN with SOA in authority", HDR("000b", "8183", "0001",
	    "0000", "0001", "0000") Q_MXTEST
	    "c00f 0006 0001" TTL "0004 deadbeef",
	    PARSE_OK, 0, "mx.test", -1, 0, NULL, 0, NULL, NULL },
	{ "TC: question only, the rest ignored", HDR("0008", "8380", "0001",
	    "0005", "0000", "0000") Q_ATEST "ffffff",
	    PARSE_OK, 0, "a.test", -1, 0, NULL, 0, NULL, NULL },

	/* compression abuse */
	{ "pointer to itself", HDR("0004", "8180", "0001", "0000", "0000",
	    "0000") "c00c 0001 0001", PARSE_BAD, -1, NULL, -1, 0, NULL, 0,
	    NULL, NULL },
	{ "pointer forward", HDR("0004", "8180", "0001", "0000", "0000",
	    "0000") "c00e 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0, NULL, 0,
	    NULL, NULL },
	{ "label then pointer back to its own start", HDR("0004", "8180",
	    "0001", "0000", "0000", "0000") "0161 c00c 0001 0001",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "pointer into the header", HDR("0004", "8180", "0001", "0000",
	    "0000", "0000") "0161 c002 0001 0001",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "answer owner: label, then a pointer to its own start", HDR("0004",
	    "8180", "0001", "0001", "0000", "0000") Q_ATEST
	    "0162 c018 0001 0001" TTL "0000",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "pointer cut in half", HDR("0004", "8180", "0001", "0000", "0000",
	    "0000") "0161 c0", PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL,
	    NULL },
	{ "extended label type 0x40", HDR("0004", "8180", "0001", "0000",
	    "0000", "0000") "41 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0,
	    NULL, 0, NULL, NULL },
	{ "label type 0x80", HDR("0004", "8180", "0001", "0000", "0000",
	    "0000") "8100 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0, NULL, 0,
	    NULL, NULL },

	/* truncation and counts */
	{ "short header", "0005 8180 0001", PARSE_BAD, -1, NULL, -1, 0, NULL,
	    0, NULL, NULL },
	{ "empty", "", PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "question cut", HDR("0005", "8180", "0001", "0000", "0000", "0000")
	    "0161 04746573", PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL,
	    NULL },
	{ "question without type", HDR("0005", "8180", "0001", "0000", "0000",
	    "0000") "0161 0474657374 00 0001", PARSE_BAD, -1, NULL, -1, 0,
	    NULL, 0, NULL, NULL },
	{ "rdata cut", HDR("0005", "8180", "0001", "0001", "0000", "0000")
	    Q_ATEST "c00c 0001 0001" TTL "0004 c000",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "record header cut", HDR("0005", "8180", "0001", "0001", "0000",
	    "0000") Q_ATEST "c00c 0001 0001 0000",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "ANCOUNT 2, one record", HDR("0006", "8180", "0001", "0002", "0000",
	    "0000") Q_ATEST "c00c 0001 0001" TTL "0004 c0000201",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "ANCOUNT 65535, no records", HDR("0006", "8180", "0001", "ffff",
	    "0000", "0000") Q_ATEST, PARSE_BAD, -1, NULL, -1, 0, NULL, 0,
	    NULL, NULL },
	{ "ARCOUNT 1, nothing", HDR("0006", "8180", "0001", "0000", "0000",
	    "0001") Q_ATEST, PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "QDCOUNT 2", HDR("0006", "8180", "0002", "0000", "0000", "0000")
	    Q_ATEST Q_ATEST, PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "authority rdata past the end", HDR("0006", "8183", "0001", "0000",
	    "0001", "0000") Q_ATEST "c00c 0006 0001" TTL "0010 dead",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },

	/* record contents */
	{ "A with RDLENGTH 5", HDR("0007", "8180", "0001", "0001", "0000",
	    "0000") Q_ATEST "c00c 0001 0001" TTL "0005 c000020100",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "AAAA with RDLENGTH 4", HDR("0007", "8180", "0001", "0001", "0000",
	    "0000") Q_ATEST "c00c 001c 0001" TTL "0004 c0000201",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "MX name runs past RDATA", HDR("0007", "8180", "0001", "0001",
	    "0000", "0000") Q_MXTEST "c00c 000f 0001" TTL "0004 000a 0161 "
	    "c00c", PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "MX name shorter than RDATA", HDR("0007", "8180", "0001", "0001",
	    "0000", "0000") Q_MXTEST "c00c 000f 0001" TTL "0005 000a 00 ffff",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "MX RDATA of 2", HDR("0007", "8180", "0001", "0001", "0000", "0000")
	    Q_MXTEST "c00c 000f 0001" TTL "0002 000a",
	    PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL, NULL },
	{ "CNAME with a dot inside a label", HDR("0007", "8180", "0001",
	    "0001", "0000", "0000") Q_ATEST "c00c 0005 0001" TTL
	    "0005 03 612e62 00", PARSE_BAD, -1, NULL, -1, 0, NULL, 0, NULL,
	    NULL },
	{ "space in a label", HDR("0007", "8180", "0001", "0000", "0000",
	    "0000") "03 612062 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0,
	    NULL, 0, NULL, NULL },
	{ "backslash in a label", HDR("0007", "8180", "0001", "0000", "0000",
	    "0000") "03 615c62 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0,
	    NULL, 0, NULL, NULL },
	{ "8-bit byte in a label", HDR("0007", "8180", "0001", "0000", "0000",
	    "0000") "03 61e962 00 0001 0001", PARSE_BAD, -1, NULL, -1, 0,
	    NULL, 0, NULL, NULL },
	{ "odd bytes in authority names are only walked", HDR("0007", "8183",
	    "0001", "0000", "0001", "0000") Q_ATEST "03 612062 00 0006 0001"
	    TTL "0000", PARSE_OK, 0, "a.test", -1, 0, NULL, 0, NULL, NULL },

	/* EDNS0 */
	{ "OPT: two of them", HDR("0009", "8180", "0001", "0000", "0000",
	    "0002") Q_ATEST "00 0029 1000 00000000 0000 "
	    "00 0029 1000 00000000 0000", PARSE_BAD, -1, NULL, -1, 0, NULL, 0,
	    NULL, NULL },
	{ "OPT: owner not root", HDR("0009", "8180", "0001", "0000", "0000",
	    "0001") Q_ATEST "c00c 0029 1000 00000000 0000", PARSE_BAD, -1,
	    NULL, -1, 0, NULL, 0, NULL, NULL },
};

static void
test_parse_table(void **state)
{
	const struct ptc	*t;
	struct dns_msg		*m = malloc(sizeof(*m));
	struct wb		 w;
	char			 a[INET6_ADDRSTRLEN];
	size_t			 i;

	(void)state;
	assert_non_null(m);
	for (i = 0; i < sizeof(ptcs) / sizeof(ptcs[0]); i++) {
		t = &ptcs[i];
		print_message("parse: %s\n", t->what);
		w.n = 0;
		wb_hex(&w, t->hex);
		assert_int_equal(parse_exact(&w, m), t->rc);
		if (t->rc != PARSE_OK)
			continue;
		if (t->nan >= 0)
			assert_int_equal(m->nan, t->nan);
		if (t->qname != NULL)
			assert_string_equal(m->qname, t->qname);
		if (t->rr < 0)
			continue;
		assert_int_equal(m->an[t->rr].type, t->type);
		assert_string_equal(m->an[t->rr].name, t->name);
		if (t->type == DNS_MSG_T_MX)
			assert_int_equal(m->an[t->rr].pref, t->pref);
		if (t->type == DNS_MSG_T_MX || t->type == DNS_MSG_T_CNAME)
			assert_string_equal(m->an[t->rr].target, t->target);
		if (t->addr != NULL) {
			inet_ntop(t->type == DNS_MSG_T_A ? AF_INET : AF_INET6,
			    m->an[t->rr].addr, a, sizeof(a));
			assert_string_equal(a, t->addr);
		}
	}
	free(m);
}

/* Header fields, flags, EDNS0 and the extended RCODE. */
static void
test_parse_header(void **state)
{
	struct dns_msg	*m = malloc(sizeof(*m));
	struct wb	 w;

	(void)state;
	assert_non_null(m);
	w.n = 0;
	wb_hex(&w, HDR("beef", "8583", "0001", "0000", "0000", "0001") Q_ATEST
	    "00 0029 04d0 01000000 0000");
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->id, 0xbeef);
	assert_true(m->flags & DNS_MSG_F_QR);
	assert_true(m->flags & DNS_MSG_F_AA);
	assert_false(m->flags & DNS_MSG_F_TC);
	assert_true(m->edns);
	assert_int_equal(m->edns_udp, 1232);
	assert_int_equal(m->rcode, 3 | 1 << 4);
	assert_true(m->has_question);
	assert_int_equal(m->qtype, DNS_MSG_T_A);
	assert_int_equal(m->qclass, DNS_MSG_C_IN);
	free(m);
}

/* TLSA (RFC 6698): the RDATA kept as sent; AD read from the header. */
static void
test_parse_tlsa(void **state)
{
	struct dns_msg	*m = malloc(sizeof(*m));
	struct wb	 w;

	(void)state;
	assert_non_null(m);
	wb_hdr(&w, 7, 0x81a0, 1, 2, 0, 0);	/* QR RD RA AD */
	wb_name(&w, "_25._tcp.mx.test");
	wb_u16(&w, DNS_MSG_T_TLSA);
	wb_u16(&w, DNS_MSG_C_IN);
	wb_rr(&w, "_25._tcp.mx.test", DNS_MSG_T_TLSA, 300);
	wb_u16(&w, 5);
	wb_hex(&w, "030101 abcd");
	/* a second record longer than DNS_MSG_TXT_MAX: cut and marked */
	wb_rr(&w, "_25._tcp.mx.test", DNS_MSG_T_TLSA, 300);
	wb_u16(&w, DNS_MSG_TXT_MAX + 10);
	memset(w.b + w.n, 0x5a, DNS_MSG_TXT_MAX + 10);
	w.n += DNS_MSG_TXT_MAX + 10;
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_true(m->flags & DNS_MSG_F_AD);
	assert_int_equal(m->nan, 2);
	assert_int_equal(m->an[0].type, DNS_MSG_T_TLSA);
	assert_int_equal(m->an[0].txtlen, 5);
	assert_false(m->an[0].txtlong);
	assert_memory_equal(m->an[0].txt, "\x03\x01\x01\xab\xcd", 5);
	assert_int_equal(m->an[1].txtlen, DNS_MSG_TXT_MAX);
	assert_true(m->an[1].txtlong);
	/* an RDLENGTH past the message is malformed, as for any type */
	w.b[w.n - DNS_MSG_TXT_MAX - 12] = 0xff;
	assert_int_equal(parse_exact(&w, m), PARSE_BAD);
	free(m);
}

/* A name of n wire octets (labels of 63, then the rest) at w's end. */
static void
wb_long_name(struct wb *w, size_t wire)
{
	size_t	left = wire - 1, l;

	while (left > 0) {
		l = left - 1 > 63 ? 63 : left - 1;
		if (left - (l + 1) == 1)	/* never leave a 1-octet rest */
			l--;
		wb_u8(w, (unsigned)l);
		memset(w->b + w->n, 'x', l);
		w->n += l;
		left -= l + 1;
	}
	wb_u8(w, 0);
}

/* TXT (strings joined, the DNS_MSG_TXT_MAX bound) and PTR records. */
static void
test_parse_txt_ptr(void **state)
{
	struct dns_msg	*m = malloc(sizeof(*m));
	struct wb	 w;
	size_t		 i;

	(void)state;
	assert_non_null(m);
	/* two strings, joined without a blank (RFC 7208 3.3); an empty one */
	wb_hdr(&w, 1, 0x8180, 1, 2, 0, 0);
	wb_name(&w, "d.test");
	wb_u16(&w, DNS_MSG_T_TXT);
	wb_u16(&w, 1);
	wb_rr(&w, "d.test", DNS_MSG_T_TXT, 30);
	wb_hex(&w, "000d 06 763d73706631 05 206d78202d");
	wb_rr(&w, "d.test", DNS_MSG_T_TXT, 30);
	wb_hex(&w, "0001 00");
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->nan, 2);
	assert_int_equal(m->an[0].txtlen, 11);
	assert_string_equal(m->an[0].txt, "v=spf1 mx -");
	assert_false(m->an[0].txtlong);
	assert_int_equal(m->an[0].ttl, 30);
	assert_int_equal(m->an[1].txtlen, 0);
	/* a string running past RDATA */
	wb_hdr(&w, 1, 0x8180, 1, 1, 0, 0);
	wb_name(&w, "d.test");
	wb_u16(&w, DNS_MSG_T_TXT);
	wb_u16(&w, 1);
	wb_rr(&w, "d.test", DNS_MSG_T_TXT, 30);
	wb_hex(&w, "0003 05 6162");
	assert_int_equal(parse_exact(&w, m), PARSE_BAD);
	/* 6 strings of 255: kept up to DNS_MSG_TXT_MAX, marked long */
	wb_hdr(&w, 1, 0x8180, 1, 1, 0, 0);
	wb_name(&w, "d.test");
	wb_u16(&w, DNS_MSG_T_TXT);
	wb_u16(&w, 1);
	wb_rr(&w, "d.test", DNS_MSG_T_TXT, 30);
	wb_u16(&w, 6 * 256);
	for (i = 0; i < 6; i++) {
		wb_u8(&w, 255);
		memset(w.b + w.n, 'a' + (int)i, 255);
		w.n += 255;
	}
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->an[0].txtlen, DNS_MSG_TXT_MAX);
	assert_true(m->an[0].txtlong);
	assert_int_equal(m->an[0].txt[DNS_MSG_TXT_MAX], '\0');
	/* PTR with a compressed target */
	wb_hdr(&w, 1, 0x8180, 1, 1, 0, 0);
	wb_name(&w, "1.2.0.192.in-addr.arpa");
	wb_u16(&w, DNS_MSG_T_PTR);
	wb_u16(&w, 1);
	wb_hex(&w, "c00c 000c 0001 0000003c 0005 026d78 c00c");
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->an[0].type, DNS_MSG_T_PTR);
	assert_string_equal(m->an[0].target, "mx.1.2.0.192.in-addr.arpa");
	free(m);
}

static void
test_parse_limits(void **state)
{
	struct dns_msg	*m = malloc(sizeof(*m));
	struct wb	 w;
	size_t		 i, ladder[DNS_MSG_JUMPS_MAX + 2];

	(void)state;
	assert_non_null(m);
	/* 255 octets: the longest name; 256: one too long */
	wb_hdr(&w, 1, 0x8180, 1, 0, 0, 0);
	wb_long_name(&w, DNS_MSG_NAME_MAX);
	wb_u16(&w, 1);
	wb_u16(&w, 1);
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(strlen(m->qname), 253);
	wb_hdr(&w, 1, 0x8180, 1, 0, 0, 0);
	wb_long_name(&w, DNS_MSG_NAME_MAX + 1);
	wb_u16(&w, 1);
	wb_u16(&w, 1);
	assert_int_equal(parse_exact(&w, m), PARSE_TOOLONG);

	/* the bound holds across a pointer: 60 + 200 octets */
	wb_hdr(&w, 1, 0x8180, 1, 1, 0, 0);
	wb_long_name(&w, 200);
	wb_u16(&w, 1);
	wb_u16(&w, 1);
	wb_hex(&w, "3b");
	memset(w.b + w.n, 'y', 59);
	w.n += 59;
	wb_hex(&w, "c00c 0001 0001 00000000 0004 7f000001");
	assert_int_equal(parse_exact(&w, m), PARSE_TOOLONG);

	/* a ladder of pointers, each to the one before: 16 jumps, then 17 */
	wb_hdr(&w, 1, 0x8180, 1, 2, 0, 0);
	wb_hex(&w, Q_ATEST "c00c 0063 0001 00000000");
	wb_u16(&w, 2 * (DNS_MSG_JUMPS_MAX + 1));
	ladder[0] = 12;
	for (i = 1; i <= DNS_MSG_JUMPS_MAX + 1; i++) {
		ladder[i] = w.n;
		wb_u16(&w, 0xc000 | (unsigned)ladder[i - 1]);
	}
	wb_u16(&w, 0xc000 | (unsigned)ladder[DNS_MSG_JUMPS_MAX - 1]);
	wb_hex(&w, "0001 0001 00000000 0004 7f000001");
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_string_equal(m->an[1].name, "a.test");
	w.b[w.n - 15] = ladder[DNS_MSG_JUMPS_MAX] & 0xff;
	assert_int_equal(parse_exact(&w, m), PARSE_BAD);

	/* over DNS_MSG_MAX bytes: refused before any parsing */
	wb_hdr(&w, 1, 0x8180, 0, 0, 0, 0);
	memset(w.b + w.n, 0, DNS_MSG_MAX + 1 - w.n);
	w.n = DNS_MSG_MAX + 1;
	assert_int_equal(parse_exact(&w, m), PARSE_TOOLONG);
	w.n = DNS_MSG_MAX;
	assert_int_equal(parse_exact(&w, m), PARSE_OK);	/* trailing zeros */

	/* more answers than DNS_MSG_RR_MAX: kept up to it, all checked */
	wb_hdr(&w, 1, 0x8180, 1, DNS_MSG_RR_MAX + 8, 0, 0);
	wb_hex(&w, Q_ATEST);
	for (i = 0; i < DNS_MSG_RR_MAX + 8; i++)
		wb_hex(&w, "c00c 0001 0001 00000000 0004 7f000001");
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->nan, DNS_MSG_RR_MAX);
	assert_int_equal(m->an_dropped, 8);
	w.b[w.n - 1] = 0;
	w.n -= 1;			/* the last one, past the bound, cut */
	assert_int_equal(parse_exact(&w, m), PARSE_BAD);
	free(m);
}

/* ---------------------------------------------------------------- */
/* Builder. */

struct btc {
	const char	*name;
	enum parse_rc	 rc;
	const char	*hex;		/* expected wire form, or NULL */
};

static void
test_build_table(void **state)
{
	static const struct btc	 btcs[] = {
		{ "Example.COM", PARSE_OK, "076578616d706c6503636f6d00" },
		{ "example.com.", PARSE_OK, "076578616d706c6503636f6d00" },
		{ "", PARSE_OK, "00" },
		{ ".", PARSE_OK, "00" },
		{ "a..b", PARSE_BAD, NULL },
		{ ".a", PARSE_BAD, NULL },
		{ "a.b..", PARSE_BAD, NULL },
		{ "a b", PARSE_BAD, NULL },
		{ "a\\.b", PARSE_BAD, NULL },
		{ "caf\xc3\xa9.test", PARSE_BAD, NULL },
		{ "_25._tcp.mx.test", PARSE_OK, NULL },
	};
	struct wb		 w;
	uint8_t			 out[DNS_MSG_QUERY_MAX];
	char			 name[300];
	size_t			 i, len;

	(void)state;
	for (i = 0; i < sizeof(btcs) / sizeof(btcs[0]); i++) {
		print_message("encode: \"%s\"\n", btcs[i].name);
		assert_int_equal(dns_msg_name_encode(btcs[i].name, out,
		    sizeof(out), &len), btcs[i].rc);
		if (btcs[i].hex == NULL)
			continue;
		w.n = 0;
		wb_hex(&w, btcs[i].hex);
		assert_int_equal(len, w.n);
		assert_memory_equal(out, w.b, len);
	}
	/* label 63 ok, 64 too long; name 253 ok (255 octets), 254 not */
	memset(name, 'a', 64);
	name[63] = '\0';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_OK);
	name[63] = 'a';
	name[64] = '\0';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_TOOLONG);
	memset(name, 'a', sizeof(name));
	for (i = 63; i < 253; i += 64)
		name[i] = '.';
	name[253] = '\0';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_OK);
	assert_int_equal(len, 255);
	name[253] = '.';			/* trailing dot: still fine */
	name[254] = '\0';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_OK);
	name[253] = 'a';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_TOOLONG);
	name[300 - 1] = '\0';
	assert_int_equal(dns_msg_name_encode(name, out, sizeof(out), &len),
	    PARSE_TOOLONG);
	/* out too small */
	assert_int_equal(dns_msg_name_encode("abc.test", out, 9, &len),
	    PARSE_TOOLONG);
	assert_int_equal(dns_msg_name_encode("abc.test", out, 10, &len),
	    PARSE_OK);
}

/* A query parses back to what was asked, with RD and EDNS0. */
static void
test_build_query(void **state)
{
	struct dns_msg	*m = malloc(sizeof(*m));
	struct wb	 w;
	size_t		 len;

	(void)state;
	assert_non_null(m);
	assert_int_equal(dns_msg_build_query(w.b, DNS_MSG_QUERY_MAX, &len,
	    0xabcd, "Mail.Example.TEST.", DNS_MSG_T_MX, true), PARSE_OK);
	w.n = len;
	assert_int_equal(parse_exact(&w, m), PARSE_OK);
	assert_int_equal(m->id, 0xabcd);
	assert_int_equal(m->flags, DNS_MSG_F_RD | DNS_MSG_F_AD);
	assert_string_equal(m->qname, "mail.example.test");
	assert_int_equal(m->qtype, DNS_MSG_T_MX);
	assert_int_equal(m->qclass, DNS_MSG_C_IN);
	assert_true(m->edns);
	assert_int_equal(m->edns_udp, DNS_MSG_EDNS_UDP);
	assert_int_equal(m->arcount, 1);
	assert_int_equal(dns_msg_build_query(w.b, DNS_MSG_QUERY_MAX, &len,
	    1, "a.test", DNS_MSG_T_A, false), PARSE_OK);
	assert_int_equal(len, 12 + 8 + 4);
	assert_int_equal(dns_msg_build_query(w.b, 12 + 8 + 3, &len, 1,
	    "a.test", DNS_MSG_T_A, false), PARSE_TOOLONG);
	assert_int_equal(dns_msg_build_query(w.b, DNS_MSG_QUERY_MAX, &len,
	    1, "a..test", DNS_MSG_T_A, true), PARSE_BAD);
	free(m);
}

/* ---------------------------------------------------------------- */
/* The resolver: shared loop helpers. */

struct slot {
	bool			 called;
	int			 ncalls;
	struct dns_result	 r;
};

struct ctx {
	struct event_base	*base;
	struct dns_resolver	*res;
	struct slot		*slots;		/* indexed by id */
	size_t			 nslots;
	int			 pending;
	bool			 in_call;	/* inside a dns_resolve_* */
	bool			 called_inside;
	uint64_t		 free_on;	/* its callback frees res */
	bool			 timed_out;
};

static void
ctx_done(void *arg, uint64_t id, const struct dns_result *r)
{
	struct ctx	*c = arg;

	if (c->in_call)
		c->called_inside = true;
	assert_true(id < c->nslots);
	c->slots[id].called = true;
	c->slots[id].ncalls++;
	c->slots[id].r = *r;
	c->pending--;
	if (c->free_on != 0 && id == c->free_on) {
		dns_resolver_free(c->res);	/* from inside a callback */
		c->res = NULL;
		c->pending = 0;			/* nothing else may come */
	}
}

static void
ctx_deadline(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	((struct ctx *)arg)->timed_out = true;
}

/* Run the loop until every pending callback came, or ms passed. */
static void
ctx_run(struct ctx *c, unsigned ms)
{
	struct event	*t = evtimer_new(c->base, ctx_deadline, c);
	struct timeval	 tv = { ms / 1000, ms % 1000 * 1000 };

	assert_non_null(t);
	c->timed_out = false;
	evtimer_add(t, &tv);
	while (c->pending > 0 && !c->timed_out)
		event_base_loop(c->base, EVLOOP_ONCE);
	event_free(t);
}

static void
ctx_init(struct ctx *c, size_t nslots)
{
	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	assert_non_null(c->base);
	c->slots = calloc(nslots, sizeof(*c->slots));
	assert_non_null(c->slots);
	c->nslots = nslots;
}

static void
ctx_fini(struct ctx *c)
{
	dns_resolver_free(c->res);
	event_base_free(c->base);
	free(c->slots);
}

static void
ctx_resolve(struct ctx *c, bool mx, const char *name, uint64_t id)
{
	c->pending++;
	c->in_call = true;
	if (mx)
		dns_resolve_mx(c->res, name, id, ctx_done, c);
	else
		dns_resolve_host(c->res, name, id, ctx_done, c);
	c->in_call = false;
	assert_false(c->called_inside);
}

static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    out, (socklen_t)len);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)ss)->sin6_addr, out,
		    (socklen_t)len);
	else
		snprintf(out, len, "family %d", ss->ss_family);
}

/* "name/pref=addr,addr name/pref=addr" for one result. */
static void
result_text(const struct dns_result *r, char *out, size_t len)
{
	char	a[INET6_ADDRSTRLEN];
	size_t	i, j, n = 0;

	out[0] = '\0';
	for (i = 0; i < r->nhosts && n < len; i++) {
		n += (size_t)snprintf(out + n, len - n, "%s%s/%u=",
		    i ? " " : "", r->hosts[i].name, r->hosts[i].pref);
		for (j = 0; j < r->hosts[i].naddrs && n < len; j++) {
			addr_text(&r->hosts[i].addrs[j], a, sizeof(a));
			n += (size_t)snprintf(out + n, len - n, "%s%s",
			    j ? "," : "", a);
		}
	}
}

/* ---------------------------------------------------------------- */
/* Against dnsmasq. */

struct dnsmasq {
	pid_t		pid;
	unsigned	port;
};

static unsigned
free_udp_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* Answered a query within 100 ms? */
static bool
dnsmasq_answers(unsigned port)
{
	struct sockaddr_in	sin;
	struct timeval		tv = { 0, 100000 };
	uint8_t			q[DNS_MSG_QUERY_MAX], a[512];
	size_t			len;
	int			fd = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t			n;

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(dns_msg_build_query(q, sizeof(q), &len, 7,
	    "mx.test", DNS_MSG_T_MX, false), PARSE_OK);
	n = -1;
	if (sendto(fd, q, len, 0, (struct sockaddr *)&sin, sizeof(sin)) ==
	    (ssize_t)len)
		n = recv(fd, a, sizeof(a), 0);
	close(fd);
	return n > 12;
}

static const char *const dnsmasq_records[] = {
	"--local=/test/",
	"--mx-host=mx.test,mail1.mx.test,10",
	"--mx-host=mx.test,mail3.mx.test,10",
	"--mx-host=mx.test,mail2.mx.test,20",
	"--host-record=mail1.mx.test,127.0.0.10,::10",
	"--host-record=mail2.mx.test,127.0.0.11",
	"--host-record=mail3.mx.test,127.0.0.12",
	"--host-record=aonly.test,127.0.0.20",
	"--host-record=v6only.test,::20",
	"--dns-rr=nullmx.test,15,000000",
	"--cname=alias.test,mx.test",
	"--mx-host=deadmx.test,nohost.test,10",
	"--mx-host=mixed.test,nohost.test,1",
	"--mx-host=mixed.test,mail2.mx.test,5",
	"--mx-host=cnamemx.test,halias.test,5",
	"--cname=halias.test,mail1.mx.test",
	"--txt-record=txtonly.test,nothing here",
};

static pid_t
dnsmasq_spawn(unsigned port)
{
	char	 portarg[32];
	char	*argv[32];
	size_t	 n = 0, i;
	pid_t	 pid;
	int	 fd;

	snprintf(portarg, sizeof(portarg), "--port=%u", port);
	argv[n++] = (char *)DNSMASQ;
	argv[n++] = (char *)"--no-daemon";
	argv[n++] = portarg;
	argv[n++] = (char *)"--listen-address=127.0.0.1";
	argv[n++] = (char *)"--bind-interfaces";
	argv[n++] = (char *)"--no-resolv";
	argv[n++] = (char *)"--no-hosts";
	argv[n++] = (char *)"--conf-file=/dev/null";
	argv[n++] = (char *)"--pid-file=";
	argv[n++] = (char *)"--log-facility=-";
	for (i = 0; i < sizeof(dnsmasq_records) / sizeof(char *); i++)
		argv[n++] = (char *)dnsmasq_records[i];
	argv[n] = NULL;
	assert_true(n < sizeof(argv) / sizeof(argv[0]));
	if ((pid = fork()) == 0) {
		if ((fd = open("/dev/null", O_RDWR)) >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(DNSMASQ, argv);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

static void
dnsmasq_stop(struct dnsmasq *d)
{
	if (d->pid <= 0)
		return;
	kill(d->pid, SIGTERM);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

/* Start it at a free port; a few tries in case the port got taken. */
static bool
dnsmasq_start(struct dnsmasq *d)
{
	int	try, i;

	for (try = 0; try < 5; try++) {
		d->port = free_udp_port();
		d->pid = dnsmasq_spawn(d->port);
		for (i = 0; i < 50; i++) {
			if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
				d->pid = 0;
				break;
			}
			if (dnsmasq_answers(d->port))
				return true;
		}
		dnsmasq_stop(d);
	}
	return false;
}

static int
dnsmasq_setup(void **state)
{
	struct dnsmasq	*d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -1;
	*state = d;
	if (access(DNSMASQ, X_OK) != 0) {
		print_message("SKIP: %s not installed: dnsmasq tests skipped\n",
		    DNSMASQ);
		return 0;
	}
	if (!dnsmasq_start(d)) {
		print_message("dnsmasq did not start\n");
		return -1;
	}
	return 0;
}

static int
dnsmasq_teardown(void **state)
{
	struct dnsmasq	*d = *state;

	if (d != NULL)
		dnsmasq_stop(d);
	free(d);
	return 0;
}

static void
ctx_dnsmasq(struct ctx *c, void **state, size_t nslots)
{
	struct dnsmasq	*d = *state;
	char		 server[64], err[256];

	if (d->pid <= 0)
		skip();
	ctx_init(c, nslots);
	snprintf(server, sizeof(server), "127.0.0.1:%u", d->port);
	c->res = dns_resolver_new(c->base, server, 2000, err, sizeof(err));
	if (c->res == NULL)
		fail_msg("dns_resolver_new: %s", err);
}

struct rtc {
	bool		 mx;
	const char	*name;
	enum dns_status	 status;
	const char	*hosts;		/* result_text(), NULL: not checked */
	const char	*why;		/* substring of why, or NULL */
};

static const struct rtc dnsmasq_cases[] = {
	{ true, "aonly.test", DNS_OK, "aonly.test/0=127.0.0.20",
	    "implicit MX" },
	{ true, "v6only.test", DNS_OK, "v6only.test/0=::20", NULL },
	{ true, "nullmx.test", DNS_NULLMX, "", "null MX" },
	{ true, "nope.test", DNS_NOTFOUND, "", "NXDOMAIN" },
	{ true, "txtonly.test", DNS_NOTFOUND, "", "no MX and no A" },
	{ true, "deadmx.test", DNS_NOTFOUND, "", "no MX host" },
	{ true, "mixed.test", DNS_OK, "mail2.mx.test/5=127.0.0.11",
	    "1 of 2 MX" },
	{ true, "cnamemx.test", DNS_OK,
	    "halias.test/5=127.0.0.10,::10", NULL },
	{ true, "[192.0.2.1]", DNS_OK, "[192.0.2.1]/0=192.0.2.1", "literal" },
	{ true, "[IPv6:2001:DB8::1]", DNS_OK,
	    "[ipv6:2001:db8::1]/0=2001:db8::1", "literal" },
	{ true, "a..test", DNS_NOTFOUND, "", "invalid" },
	{ true, "", DNS_NOTFOUND, "", "invalid" },
	{ false, "mail1.mx.test", DNS_OK, "mail1.mx.test/0=127.0.0.10,::10",
	    NULL },
	{ false, "MAIL2.mx.test.", DNS_OK, "mail2.mx.test/0=127.0.0.11",
	    NULL },
	{ false, "halias.test", DNS_OK, "halias.test/0=127.0.0.10,::10",
	    NULL },
	{ false, "nope.test", DNS_NOTFOUND, "", "NXDOMAIN" },
	{ false, "txtonly.test", DNS_NOTFOUND, "", "no A or AAAA" },
	{ false, "127.0.0.5", DNS_OK, "127.0.0.5/0=127.0.0.5", "literal" },
	{ false, "[::1]", DNS_OK, "[::1]/0=::1", "literal" },
	{ false, "::1", DNS_OK, "::1/0=::1", "literal" },
	{ false, "bad name.test", DNS_NOTFOUND, "", "invalid" },
};

#define NDNSMASQ	(sizeof(dnsmasq_cases) / sizeof(dnsmasq_cases[0]))

/* Every case at once, so they also run concurrently on one resolver. */
static void
test_dnsmasq_table(void **state)
{
	const struct rtc	*t;
	struct ctx		 c;
	char			 text[1024];
	size_t			 i;

	ctx_dnsmasq(&c, state, NDNSMASQ + 1);
	for (i = 0; i < NDNSMASQ; i++) {
		ctx_resolve(&c, dnsmasq_cases[i].mx, dnsmasq_cases[i].name,
		    i + 1);
		assert_false(c.slots[i + 1].called);	/* never inside */
	}
	ctx_run(&c, WAIT_MS);
	for (i = 0; i < NDNSMASQ; i++) {
		t = &dnsmasq_cases[i];
		result_text(&c.slots[i + 1].r, text, sizeof(text));
		print_message("%s %s: %s %s [%s]\n", t->mx ? "mx" : "host",
		    t->name, dns_status_name(c.slots[i + 1].r.status), text,
		    c.slots[i + 1].r.why);
		assert_int_equal(c.slots[i + 1].ncalls, 1);
		assert_int_equal(c.slots[i + 1].r.status, t->status);
		if (t->hosts != NULL)
			assert_string_equal(text, t->hosts);
		if (t->why != NULL)
			assert_non_null(strstr(c.slots[i + 1].r.why, t->why));
	}
	ctx_fini(&c);
}

/* mail1 and mail3 share preference 10: both orders must show up. */
static void
test_dnsmasq_mx_order(void **state)
{
	struct ctx		 c;
	const struct dns_result	*r;
	size_t			 i;
	int			 first1 = 0, first3 = 0;
	const char		*mx = "mx.test";

	ctx_dnsmasq(&c, state, 41);
	for (i = 1; i <= 40; i++)
		ctx_resolve(&c, true, i % 2 ? mx : "ALIAS.test", i);
	ctx_run(&c, WAIT_MS);
	for (i = 1; i <= 40; i++) {
		r = &c.slots[i].r;
		assert_int_equal(r->status, DNS_OK);
		assert_int_equal(r->nhosts, 3);
		assert_int_equal(r->hosts[0].pref, 10);
		assert_int_equal(r->hosts[1].pref, 10);
		assert_string_equal(r->hosts[2].name, "mail2.mx.test");
		assert_int_equal(r->hosts[2].pref, 20);
		if (strcmp(r->hosts[0].name, "mail1.mx.test") == 0) {
			first1++;
			assert_string_equal(r->hosts[1].name, "mail3.mx.test");
			assert_int_equal(r->hosts[0].naddrs, 2);
			assert_int_equal(r->hosts[0].addrs[0].ss_family,
			    AF_INET);
			assert_int_equal(r->hosts[0].addrs[1].ss_family,
			    AF_INET6);
		} else {
			first3++;
			assert_string_equal(r->hosts[0].name, "mail3.mx.test");
		}
	}
	print_message("mail1 first %d times, mail3 first %d times\n", first1,
	    first3);
	assert_true(first1 > 0 && first3 > 0);
	ctx_fini(&c);
}

/* Cancelled queries never call back; freeing with queries in flight or
 * from inside a callback is fine. */
static void
test_dnsmasq_cancel_free(void **state)
{
	struct ctx	c;

	ctx_dnsmasq(&c, state, 8);
	ctx_resolve(&c, true, "mx.test", 1);
	ctx_resolve(&c, false, "127.0.0.1", 2);	/* a zero-delay answer */
	ctx_resolve(&c, true, "mx.test", 2);
	ctx_resolve(&c, true, "aonly.test", 3);
	dns_cancel(c.res, 1);
	dns_cancel(c.res, 2);
	c.pending -= 3;
	ctx_run(&c, WAIT_MS);
	assert_false(c.slots[1].called);
	assert_false(c.slots[2].called);
	assert_int_equal(c.slots[3].r.status, DNS_OK);
	/* let a few ms pass: still no callback for the cancelled ones */
	c.pending = 1;
	ctx_run(&c, 100);
	assert_false(c.slots[1].called);
	assert_false(c.slots[2].called);

	/* the first callback frees the resolver: the others never come */
	c.pending = 0;
	c.free_on = 4;
	ctx_resolve(&c, false, "127.0.0.4", 4);
	ctx_resolve(&c, true, "mx.test", 5);
	ctx_resolve(&c, true, "nope.test", 6);
	ctx_run(&c, WAIT_MS);
	assert_true(c.slots[4].called);
	assert_null(c.res);
	c.pending = 1;
	ctx_run(&c, 200);
	assert_false(c.slots[5].called);
	assert_false(c.slots[6].called);
	ctx_fini(&c);

	/* freed with queries in flight (ASan checks nothing leaks) */
	ctx_dnsmasq(&c, state, 8);
	ctx_resolve(&c, true, "mx.test", 1);
	ctx_resolve(&c, false, "mail1.mx.test", 2);
	dns_resolver_free(c.res);
	c.res = NULL;
	c.pending = 1;
	ctx_run(&c, 100);
	assert_false(c.slots[1].called);
	assert_false(c.slots[2].called);
	ctx_fini(&c);
}

/* ---------------------------------------------------------------- */
/* Scripted servers in the test's own loop. */

enum fk_mode {
	FK_DROP,	/* never answers */
	FK_SECOND,	/* answers only a retransmission */
	FK_TC,		/* TC set */
	FK_SERVFAIL,
	FK_SPOOF,	/* wrong port, id, question, cut; then the answer */
	FK_CHASE,	/* CNAME without its target's records */
	FK_BIGMX,	/* 20 MX in reverse order */
	FK_OVERSIZE,	/* only answers over 4096 bytes */
	FK_GARBAGE,	/* only malformed answers */
};

struct fake {
	enum fk_mode	 mode;
	int		 fd, fd2;	/* fd2: a second port, for spoofing */
	unsigned	 port;
	struct event	*ev;
	unsigned	 nqueries;
	uint16_t	 seen[64];	/* query ids seen once */
	size_t		 nseen;
};

static void
fk_send(struct fake *f, int fd, const struct wb *w,
    const struct sockaddr_storage *to, socklen_t tolen)
{
	assert_int_equal(sendto(fd, w->b, w->n, 0, (const struct sockaddr *)to,
	    tolen), (ssize_t)w->n);
	(void)f;
}

/* The normal answer: A 127.0.0.99 or the records of the chase script. */
static void
fk_answer(struct wb *w, const struct dns_msg *q)
{
	char	name[64];
	int	i;

	wb_hdr(w, q->id, 0x8180, 1, 0, 0, 0);
	wb_name(w, q->qname);
	wb_u16(w, q->qtype);
	wb_u16(w, DNS_MSG_C_IN);
	if (q->qtype == DNS_MSG_T_MX && strcmp(q->qname, "c.test") == 0) {
		w->b[7] = 1;
		wb_rr_name(w, "c.test", -1, "t.test");
	} else if (q->qtype == DNS_MSG_T_MX && strcmp(q->qname, "t.test") ==
	    0) {
		w->b[7] = 1;
		wb_rr_name(w, "t.test", 10, "mx.t.test");
	} else if (q->qtype == DNS_MSG_T_MX) {
		w->b[7] = 20;
		for (i = 19; i >= 0; i--) {
			snprintf(name, sizeof(name), "mx%02d.big.test", i);
			wb_rr_name(w, q->qname, i, name);
		}
	} else if (q->qtype == DNS_MSG_T_A) {
		w->b[7] = 1;
		if (strncmp(q->qname, "mx", 2) == 0 &&
		    strstr(q->qname, ".big.test") != NULL) {
			snprintf(name, sizeof(name), "127.0.1.%lu",
			    strtoul(q->qname + 2, NULL, 10) + 1);
			wb_rr_addr(w, q->qname, name);
		} else if (strcmp(q->qname, "mx.t.test") == 0)
			wb_rr_addr(w, q->qname, "127.0.0.7");
		else
			wb_rr_addr(w, q->qname, "127.0.0.99");
	}
}

static bool
fk_seen(struct fake *f, uint16_t id)
{
	size_t	i;

	for (i = 0; i < f->nseen; i++)
		if (f->seen[i] == id)
			return true;
	if (f->nseen < sizeof(f->seen) / sizeof(f->seen[0]))
		f->seen[f->nseen++] = id;
	return false;
}

/*
 * Every kind of datagram a resolver must ignore, each saying NXDOMAIN so
 * that taking one would show in the result; then the real answer.
 */
static void
fk_spoof(struct fake *f, const struct dns_msg *q,
    const struct sockaddr_storage *from, socklen_t fromlen)
{
	struct wb	good, bad;

	fk_answer(&good, q);
	bad = good;
	bad.b[3] = 0x83;
	fk_send(f, f->fd2, &bad, from, fromlen);	/* another port */
	bad.b[0] ^= 0x55;				/* another id */
	fk_send(f, f->fd, &bad, from, fromlen);
	bad.b[0] ^= 0x55;
	bad.b[2] &= 0x7f;				/* QR clear */
	fk_send(f, f->fd, &bad, from, fromlen);
	bad.b[2] |= 0x80;
	bad.b[13] ^= 0x01;				/* another question */
	fk_send(f, f->fd, &bad, from, fromlen);
	bad.b[13] ^= 0x01;
	bad.n -= 3;					/* cut short */
	fk_send(f, f->fd, &bad, from, fromlen);
	fk_send(f, f->fd, &good, from, fromlen);
}

static void
fk_read(evutil_socket_t fd, short ev, void *arg)
{
	struct fake		*f = arg;
	struct dns_msg		*q = malloc(sizeof(*q));
	struct sockaddr_storage	 from;
	socklen_t		 fromlen = sizeof(from);
	struct wb		 w;
	ssize_t			 n;

	(void)ev;
	assert_non_null(q);
	n = recvfrom(fd, w.b, sizeof(w.b), 0, (struct sockaddr *)&from,
	    &fromlen);
	if (n <= 0) {
		free(q);
		return;
	}
	w.n = (size_t)n;
	f->nqueries++;
	assert_int_equal(dns_msg_parse(w.b, w.n, q), PARSE_OK);
	assert_true(q->flags & DNS_MSG_F_RD);
	assert_true(q->edns);
	switch (f->mode) {
	case FK_DROP:
		break;
	case FK_SECOND:
		if (fk_seen(f, q->id)) {
			fk_answer(&w, q);
			fk_send(f, f->fd, &w, &from, fromlen);
		}
		break;
	case FK_TC:
	case FK_SERVFAIL:
		wb_hdr(&w, q->id, f->mode == FK_TC ? 0x8380 : 0x8182, 1, 0, 0,
		    0);
		wb_name(&w, q->qname);
		wb_u16(&w, q->qtype);
		wb_u16(&w, DNS_MSG_C_IN);
		fk_send(f, f->fd, &w, &from, fromlen);
		break;
	case FK_SPOOF:
		fk_spoof(f, q, &from, fromlen);
		break;
	case FK_CHASE:
	case FK_BIGMX:
		fk_answer(&w, q);
		fk_send(f, f->fd, &w, &from, fromlen);
		break;
	case FK_OVERSIZE:
		fk_answer(&w, q);
		memset(w.b + w.n, 0, DNS_MSG_MAX + 100 - w.n);
		w.n = DNS_MSG_MAX + 100;
		fk_send(f, f->fd, &w, &from, fromlen);
		break;
	case FK_GARBAGE:
		fk_answer(&w, q);
		w.b[6] = 1;			/* ANCOUNT 256 more: a lie */
		fk_send(f, f->fd, &w, &from, fromlen);
		break;
	}
	free(q);
}

static int
fk_socket(unsigned *port)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK,
				    0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (port != NULL)
		*port = ntohs(sin.sin_port);
	return fd;
}

static void
fk_start(struct fake *f, struct event_base *base, enum fk_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->fd = fk_socket(&f->port);
	f->fd2 = fk_socket(NULL);
	f->ev = event_new(base, f->fd, EV_READ | EV_PERSIST, fk_read, f);
	assert_non_null(f->ev);
	event_add(f->ev, NULL);
}

static void
fk_stop(struct fake *f)
{
	event_free(f->ev);
	close(f->fd);
	close(f->fd2);
}

struct ftc {
	const char	*what;
	enum fk_mode	 mode;
	bool		 mx;
	const char	*name;
	enum dns_status	 status;
	const char	*hosts;
	const char	*why;
	unsigned	 minq;		/* queries the server must have seen */
	unsigned	 min_ms;	/* the answer may not come earlier */
};

static const struct ftc ftcs[] = {
	{ "silence: timeout after one retransmission", FK_DROP, false,
	    "a.test", DNS_TEMPFAIL, "", "timeout", 4, 380 },
	{ "answer to the retransmission", FK_SECOND, false, "a.test", DNS_OK,
	    "a.test/0=127.0.0.99", NULL, 4, 180 },
	{ "TC set", FK_TC, true, "a.test", DNS_TEMPFAIL, "", "truncated", 1,
	    0 },
	{ "SERVFAIL", FK_SERVFAIL, true, "a.test", DNS_TEMPFAIL, "",
	    "SERVFAIL", 1, 0 },
	{ "spoofed datagrams ignored", FK_SPOOF, false, "a.test", DNS_OK,
	    "a.test/0=127.0.0.99", NULL, 2, 0 },
	{ "CNAME chased with one more query", FK_CHASE, true, "c.test",
	    DNS_OK, "mx.t.test/10=127.0.0.7", "1 of 1 MX", 4, 0 },
	{ "20 MX: the best 16, sorted", FK_BIGMX, true, "big.test", DNS_OK,
	    NULL, "16 of 16 MX", 33, 0 },
	{ "answers over 4096 bytes ignored", FK_OVERSIZE, false, "a.test",
	    DNS_TEMPFAIL, "", "over 4096", 4, 380 },
	{ "malformed answers ignored", FK_GARBAGE, true, "a.test",
	    DNS_TEMPFAIL, "", "malformed", 2, 380 },
};

static void
test_fake_table(void **state)
{
	const struct ftc	*t;
	struct ctx		 c;
	struct fake		 f;
	struct timeval		 t0, t1;
	char			 server[64], err[256], text[2048];
	unsigned		 ms;
	size_t			 i, k;

	(void)state;
	for (i = 0; i < sizeof(ftcs) / sizeof(ftcs[0]); i++) {
		t = &ftcs[i];
		print_message("fake: %s\n", t->what);
		ctx_init(&c, 2);
		fk_start(&f, c.base, t->mode);
		snprintf(server, sizeof(server), "127.0.0.1:%u", f.port);
		c.res = dns_resolver_new(c.base, server, 400, err, sizeof(err));
		assert_non_null(c.res);
		gettimeofday(&t0, NULL);
		ctx_resolve(&c, t->mx, t->name, 1);
		ctx_run(&c, WAIT_MS);
		gettimeofday(&t1, NULL);
		ms = (unsigned)((t1.tv_sec - t0.tv_sec) * 1000 +
		    (t1.tv_usec - t0.tv_usec) / 1000);
		result_text(&c.slots[1].r, text, sizeof(text));
		print_message("  %s %s [%s] %u queries, %u ms\n",
		    dns_status_name(c.slots[1].r.status), text,
		    c.slots[1].r.why, f.nqueries, ms);
		assert_int_equal(c.slots[1].ncalls, 1);
		assert_int_equal(c.slots[1].r.status, t->status);
		if (t->hosts != NULL)
			assert_string_equal(text, t->hosts);
		if (t->why != NULL)
			assert_non_null(strstr(c.slots[1].r.why, t->why));
		assert_true(f.nqueries >= t->minq);
		assert_true(ms >= t->min_ms);
		assert_true(ms < 2000);
		if (t->mode == FK_BIGMX) {
			assert_int_equal(c.slots[1].r.nhosts, DNS_MX_MAX);
			for (k = 0; k < DNS_MX_MAX; k++) {
				assert_int_equal(c.slots[1].r.hosts[k].pref, k);
				assert_int_equal(c.slots[1].r.hosts[k].naddrs,
				    1);
			}
		}
		fk_stop(&f);
		ctx_fini(&c);
	}
}

/* A closed port: ICMP port unreachable ends the query at once. */
static void
test_unreachable(void **state)
{
	struct ctx	c;
	char		server[64], err[256];
	int		fd;
	unsigned	port;

	(void)state;
	ctx_init(&c, 2);
	fd = fk_socket(&port);
	close(fd);
	snprintf(server, sizeof(server), "127.0.0.1:%u", port);
	c.res = dns_resolver_new(c.base, server, 3000, err, sizeof(err));
	assert_non_null(c.res);
	ctx_resolve(&c, true, "a.test", 1);
	ctx_run(&c, 1000);
	assert_true(c.slots[1].called);
	assert_int_equal(c.slots[1].r.status, DNS_TEMPFAIL);
	assert_non_null(strstr(c.slots[1].r.why, "unreachable"));
	ctx_fini(&c);
}

static void
test_resolver_new(void **state)
{
	static const struct {
		const char	*server;
		bool		 ok;
	} cases[] = {
		{ "127.0.0.1:53", true }, { "127.0.0.1", true },
		{ "[::1]:5353", true }, { "[::1]", true }, { "::1", true },
		{ "127.0.0.1:0", false }, { "127.0.0.1:65536", false },
		{ "127.0.0.1:x", false }, { "127.0.0.1:", false },
		{ "127.0.0.1:+53", false }, { "localhost:53", false },
		{ "[::1", false }, { "[::1]x", false }, { "", false },
		{ "[]:53", false }, { "1.2.3.4.5", false },
	};
	struct event_base	*base = event_base_new();
	struct dns_resolver	*r;
	char			 err[256];
	size_t			 i;

	(void)state;
	assert_non_null(base);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		r = dns_resolver_new(base, cases[i].server, 100, err,
		    sizeof(err));
		print_message("server \"%s\": %s\n", cases[i].server,
		    r != NULL ? "ok" : err);
		assert_int_equal(r != NULL, cases[i].ok);
		if (r == NULL)
			assert_true(err[0] != '\0');
		dns_resolver_free(r);
	}
	assert_null(dns_resolver_new(base, "127.0.0.1", DNS_TIMEOUT_MAX_MS + 1,
	    err, sizeof(err)));
	/* resolv.conf: either a resolver or a reason */
	err[0] = '\0';
	r = dns_resolver_new(base, NULL, 0, err, sizeof(err));
	assert_true(r != NULL || err[0] != '\0');
	dns_resolver_free(r);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest parser[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_header),
		cmocka_unit_test(test_parse_tlsa),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_parse_txt_ptr),
		cmocka_unit_test(test_build_table),
		cmocka_unit_test(test_build_query),
		cmocka_unit_test(test_resolver_new),
		cmocka_unit_test(test_fake_table),
		cmocka_unit_test(test_unreachable),
	};
	const struct CMUnitTest dnsmasq[] = {
		cmocka_unit_test(test_dnsmasq_table),
		cmocka_unit_test(test_dnsmasq_mx_order),
		cmocka_unit_test(test_dnsmasq_cancel_free),
	};
	int	rc;

	signal(SIGPIPE, SIG_IGN);
	rc = cmocka_run_group_tests_name("dns_msg and scripted servers",
	    parser, NULL, NULL);
	rc += cmocka_run_group_tests_name("dnsmasq", dnsmasq, dnsmasq_setup,
	    dnsmasq_teardown);
	return rc;
}
