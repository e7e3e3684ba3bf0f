/*
 * dns_msg.c - build DNS queries and parse answers, on the wire.
 * Owns: name compression and its bounds, the record formats of A, AAAA,
 * MX, CNAME, PTR, TXT, TLSA (kept raw) and OPT.  Never: I/O, allocation, globals, trusting a count.
 * Untrusted: every byte of an answer.  RFC 1035 3-4, 2181, 3596, 6891.
 */
#include <string.h>

#include "dns_msg.h"

static uint16_t	dns_msg_rd16(const uint8_t *);
static uint32_t	dns_msg_rd32(const uint8_t *);
static enum parse_rc dns_msg_label_text(const uint8_t *, size_t, char *,
		    size_t *);
static enum parse_rc dns_msg_read_name(const uint8_t *, size_t, size_t *,
		    char *);
static enum parse_rc dns_msg_read_question(const uint8_t *, size_t,
		    size_t *, struct dns_msg *);
static enum parse_rc dns_msg_read_txt(const uint8_t *, size_t, size_t,
		    struct dns_msg_rr *);
static enum parse_rc dns_msg_read_rdata(const uint8_t *, size_t, size_t,
		    struct dns_msg_rr *);
static enum parse_rc dns_msg_read_answer(const uint8_t *, size_t, size_t *,
		    struct dns_msg *);
static enum parse_rc dns_msg_read_other(const uint8_t *, size_t, size_t *,
		    struct dns_msg *);

#define DNS_MSG_RR_FIXED	10	/* type, class, TTL, RDLENGTH */
#define DNS_MSG_PTR		0xc0	/* RFC 1035 4.1.4 */

static uint16_t
dns_msg_rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
dns_msg_rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* Append one label to out (at *n) in lower case, after a '.' if needed. */
static enum parse_rc
dns_msg_label_text(const uint8_t *l, size_t llen, char *out, size_t *n)
{
	size_t	i;
	uint8_t	c;

	if (*n > 0)
		out[(*n)++] = '.';
	for (i = 0; i < llen; i++) {
		c = l[i];
		if (c < '!' || c > '~' || c == '.' || c == '\\')
			return PARSE_BAD;
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		out[(*n)++] = (char)c;
	}
	return PARSE_OK;
}

/*
 * Read the name at *offp into out (DNS_MSG_NAME_BUF bytes; NULL: check
 * its form only) and move *offp past it.  A compression pointer may only
 * point before the start of the run of labels that holds it (RFC 1035
 * 4.1.4: "a prior occurrence"), so every jump lowers that start and no
 * loop can form; DNS_MSG_JUMPS_MAX caps the work besides.
 */
static enum parse_rc
dns_msg_read_name(const uint8_t *p, size_t len, size_t *offp, char *out)
{
	size_t		 pos = *offp, seg = *offp, wire = 1, n = 0, ptr;
	unsigned	 jumps = 0;
	bool		 jumped = false;
	uint8_t		 c;

	for (;;) {
		if (pos >= len)
			return PARSE_BAD;
		if ((c = p[pos]) == 0)
			break;
		if ((c & DNS_MSG_PTR) == DNS_MSG_PTR) {
			if (len - pos < 2)
				return PARSE_BAD;
			ptr = (size_t)(c & ~DNS_MSG_PTR) << 8 | p[pos + 1];
			if (ptr < DNS_MSG_HDR_LEN || ptr >= seg ||
			    ++jumps > DNS_MSG_JUMPS_MAX)
				return PARSE_BAD;
			if (!jumped)
				*offp = pos + 2;
			jumped = true;
			pos = seg = ptr;
			continue;
		}
		if ((c & DNS_MSG_PTR) != 0)	/* RFC 6891 5: no other types */
			return PARSE_BAD;
		if ((wire += 1 + (size_t)c) > DNS_MSG_NAME_MAX)
			return PARSE_TOOLONG;
		if (c > len - pos - 1)
			return PARSE_BAD;
		if (out != NULL &&
		    dns_msg_label_text(p + pos + 1, c, out, &n) != PARSE_OK)
			return PARSE_BAD;
		pos += 1 + (size_t)c;
	}
	if (!jumped)
		*offp = pos + 1;
	if (out != NULL)
		out[n] = '\0';
	return PARSE_OK;
}

static enum parse_rc
dns_msg_read_question(const uint8_t *p, size_t len, size_t *off,
    struct dns_msg *m)
{
	enum parse_rc	rc;

	if (m->qdcount == 0)
		return PARSE_OK;
	if (m->qdcount > 1)		/* nobody sends more (RFC 9619) */
		return PARSE_BAD;
	if ((rc = dns_msg_read_name(p, len, off, m->qname)) != PARSE_OK)
		return rc;
	if (len - *off < 4)
		return PARSE_BAD;
	m->qtype = dns_msg_rd16(p + *off);
	m->qclass = dns_msg_rd16(p + *off + 2);
	*off += 4;
	m->has_question = true;
	return PARSE_OK;
}

/*
 * TXT RDATA: one or more <character-string>s (RFC 1035 3.3.14), each a
 * length byte and that many bytes, filling RDATA exactly (an empty
 * RDATA, which RFC 1035 does not allow, reads as an empty text).
 */
static enum parse_rc
dns_msg_read_txt(const uint8_t *p, size_t off, size_t rdlen,
    struct dns_msg_rr *rr)
{
	size_t	end = off + rdlen, l, keep;

	while (off < end) {
		l = p[off++];
		if (l > end - off)
			return PARSE_BAD;
		keep = DNS_MSG_TXT_MAX - rr->txtlen;
		if (l > keep)
			rr->txtlong = true;
		else
			keep = l;
		memcpy(rr->txt + rr->txtlen, p + off, keep);
		rr->txtlen += keep;
		off += l;
	}
	rr->txt[rr->txtlen] = '\0';
	return PARSE_OK;
}

/* The RDATA at off (checked to lie in the message); names fill it exactly. */
static enum parse_rc
dns_msg_read_rdata(const uint8_t *p, size_t off, size_t rdlen,
    struct dns_msg_rr *rr)
{
	size_t		end = off + rdlen;
	enum parse_rc	rc;

	switch (rr->type) {
	case DNS_MSG_T_A:
	case DNS_MSG_T_AAAA:
		if (rdlen != (rr->type == DNS_MSG_T_A ? 4u : 16u))
			return PARSE_BAD;
		memcpy(rr->addr, p + off, rdlen);
		return PARSE_OK;
	case DNS_MSG_T_MX:
		if (rdlen < 3)
			return PARSE_BAD;
		rr->pref = dns_msg_rd16(p + off);
		off += 2;
		/* FALLTHROUGH */
	case DNS_MSG_T_CNAME:
	case DNS_MSG_T_PTR:
		/* the name may not run past RDATA, even through a pointer */
		if ((rc = dns_msg_read_name(p, end, &off, rr->target)) !=
		    PARSE_OK)
			return rc;
		return off == end ? PARSE_OK : PARSE_BAD;
	case DNS_MSG_T_TXT:
		return dns_msg_read_txt(p, off, rdlen, rr);
	case DNS_MSG_T_TLSA:
		/* raw: deliver/dane.c reads it; longer than we keep: cut
		 * and marked, never taken for the whole */
		rr->txtlen = rdlen > DNS_MSG_TXT_MAX ? DNS_MSG_TXT_MAX : rdlen;
		rr->txtlong = rdlen > DNS_MSG_TXT_MAX;
		memcpy(rr->txt, p + off, rr->txtlen);
		rr->txt[rr->txtlen] = '\0';
		return PARSE_OK;
	default:
		return PARSE_OK;	/* kept by type only */
	}
}

/* One answer record: kept while an[] has room, checked all the same. */
static enum parse_rc
dns_msg_read_answer(const uint8_t *p, size_t len, size_t *off,
    struct dns_msg *m)
{
	struct dns_msg_rr	 spare, *rr;
	size_t			 rdlen;
	enum parse_rc		 rc;

	rr = m->nan < DNS_MSG_RR_MAX ? &m->an[m->nan] : &spare;
	memset(rr, 0, sizeof(*rr));
	if ((rc = dns_msg_read_name(p, len, off, rr->name)) != PARSE_OK)
		return rc;
	if (len - *off < DNS_MSG_RR_FIXED)
		return PARSE_BAD;
	rr->type = dns_msg_rd16(p + *off);
	rr->rclass = dns_msg_rd16(p + *off + 2);
	rr->ttl = dns_msg_rd32(p + *off + 4);
	rdlen = dns_msg_rd16(p + *off + 8);
	*off += DNS_MSG_RR_FIXED;
	if (rdlen > len - *off)
		return PARSE_BAD;
	if ((rc = dns_msg_read_rdata(p, *off, rdlen, rr)) != PARSE_OK)
		return rc;
	*off += rdlen;
	if (rr == &spare)
		m->an_dropped++;
	else
		m->nan++;
	return PARSE_OK;
}

/* An authority or additional record: form only, but OPT is read. */
static enum parse_rc
dns_msg_read_other(const uint8_t *p, size_t len, size_t *off,
    struct dns_msg *m)
{
	size_t		start = *off, rdlen;
	uint16_t	type;
	enum parse_rc	rc;

	if ((rc = dns_msg_read_name(p, len, off, NULL)) != PARSE_OK)
		return rc;
	if (len - *off < DNS_MSG_RR_FIXED)
		return PARSE_BAD;
	type = dns_msg_rd16(p + *off);
	rdlen = dns_msg_rd16(p + *off + 8);
	if (rdlen > len - *off - DNS_MSG_RR_FIXED)
		return PARSE_BAD;
	if (type == DNS_MSG_T_OPT) {
		/* RFC 6891 6.1.1: one OPT, owned by the root */
		if (m->edns || p[start] != 0)
			return PARSE_BAD;
		m->edns = true;
		m->edns_udp = dns_msg_rd16(p + *off + 2);
		m->rcode |= (unsigned)p[*off + 4] << 4;
	}
	*off += DNS_MSG_RR_FIXED + rdlen;
	return PARSE_OK;
}

enum parse_rc
dns_msg_parse(const uint8_t *p, size_t len, struct dns_msg *m)
{
	size_t		off = DNS_MSG_HDR_LEN, i, nother;
	enum parse_rc	rc;

	memset(m, 0, offsetof(struct dns_msg, an));
	m->nan = m->an_dropped = 0;
	m->edns = false;
	m->edns_udp = 0;
	if (len < DNS_MSG_HDR_LEN)
		return PARSE_BAD;
	m->id = dns_msg_rd16(p);
	m->flags = dns_msg_rd16(p + 2);
	m->rcode = m->flags & 0x0f;
	m->qdcount = dns_msg_rd16(p + 4);
	m->ancount = dns_msg_rd16(p + 6);
	m->nscount = dns_msg_rd16(p + 8);
	m->arcount = dns_msg_rd16(p + 10);
	if (len > DNS_MSG_MAX)
		return PARSE_TOOLONG;
	if ((rc = dns_msg_read_question(p, len, &off, m)) != PARSE_OK)
		return rc;
	if (m->flags & DNS_MSG_F_TC)
		return PARSE_OK;
	/* each record takes >= 11 bytes, so len bounds these loops too */
	for (i = 0; i < m->ancount; i++)
		if ((rc = dns_msg_read_answer(p, len, &off, m)) != PARSE_OK)
			return rc;
	nother = (size_t)m->nscount + m->arcount;
	for (i = 0; i < nother; i++)
		if ((rc = dns_msg_read_other(p, len, &off, m)) != PARSE_OK)
			return rc;
	return PARSE_OK;
}

enum parse_rc
dns_msg_name_encode(const char *name, uint8_t *out, size_t outlen,
    size_t *lenp)
{
	size_t	tlen, need, i, start, n = 0, l;
	char	c;

	tlen = strnlen(name, DNS_MSG_NAME_MAX);
	if (tlen > 0 && name[tlen - 1] == '.')
		tlen--;			/* one trailing dot: fully qualified */
	need = tlen == 0 ? 1 : tlen + 2;	/* length bytes and the root */
	if (need > DNS_MSG_NAME_MAX || need > outlen)
		return PARSE_TOOLONG;
	if (tlen > 0 && name[tlen - 1] == '.')
		return PARSE_BAD;		/* an empty last label */
	for (start = 0; start < tlen; start = i + 1) {
		for (i = start; i < tlen && name[i] != '.'; i++)
			continue;
		if ((l = i - start) == 0)
			return PARSE_BAD;
		if (l > DNS_MSG_LABEL_MAX)
			return PARSE_TOOLONG;
		out[n++] = (uint8_t)l;
		for (; start < i; start++) {
			c = name[start];
			if (c < '!' || c > '~' || c == '\\')
				return PARSE_BAD;
			if (c >= 'A' && c <= 'Z')
				c += 'a' - 'A';
			out[n++] = (uint8_t)c;
		}
	}
	out[n++] = 0;
	*lenp = n;
	return PARSE_OK;
}

enum parse_rc
dns_msg_build_query(uint8_t *out, size_t outlen, size_t *lenp, uint16_t id,
    const char *name, uint16_t qtype, bool edns)
{
	/* RFC 6891 6.1.2: root owner, type OPT, CLASS = payload size,
	 * TTL = extended RCODE 0, version 0, no DO bit; no options */
	static const uint8_t opt[] = { 0, 0, DNS_MSG_T_OPT,
	    DNS_MSG_EDNS_UDP >> 8, DNS_MSG_EDNS_UDP & 0xff, 0, 0, 0, 0, 0, 0 };
	size_t		nlen, n;
	enum parse_rc	rc;

	if (outlen < DNS_MSG_HDR_LEN)
		return PARSE_TOOLONG;
	memset(out, 0, DNS_MSG_HDR_LEN);
	out[0] = id >> 8;
	out[1] = id & 0xff;
	out[2] = DNS_MSG_F_RD >> 8;
	out[3] = DNS_MSG_F_AD;		/* RFC 6840 5.7: tell us if validated */
	out[5] = 1;			/* QDCOUNT */
	out[11] = edns ? 1 : 0;		/* ARCOUNT */
	rc = dns_msg_name_encode(name, out + DNS_MSG_HDR_LEN,
	    outlen - DNS_MSG_HDR_LEN, &nlen);
	if (rc != PARSE_OK)
		return rc;
	n = DNS_MSG_HDR_LEN + nlen;
	if (outlen - n < 4 + (edns ? sizeof(opt) : 0))
		return PARSE_TOOLONG;
	out[n++] = qtype >> 8;
	out[n++] = qtype & 0xff;
	out[n++] = 0;
	out[n++] = DNS_MSG_C_IN;
	if (edns) {
		memcpy(out + n, opt, sizeof(opt));
		n += sizeof(opt);
	}
	*lenp = n;
	return PARSE_OK;
}
