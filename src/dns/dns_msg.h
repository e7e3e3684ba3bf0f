/*
 * dns_msg.h - DNS messages on the wire: build a query, parse an answer.
 * Owns: the RFC 1035 4.1 format, name compression, every bound below.
 * Never: I/O, allocation, globals; a name is never silently cut.
 * Untrusted: every byte of an answer.  RFC 1035, 2181, 3596, 6891, 7505,
 * 6698 (TLSA), 6840 (AD).
 */
#ifndef MXGATE_DNS_MSG_H
#define MXGATE_DNS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

#define DNS_MSG_MAX		4096	/* largest message taken (bytes) */
#define DNS_MSG_EDNS_UDP	1232	/* EDNS0 payload we advertise (RFC
					   6891; DNS flag day 2020) */
#define DNS_MSG_HDR_LEN		12	/* RFC 1035 4.1.1 */
#define DNS_MSG_NAME_MAX	255	/* RFC 1035 2.3.4: octets on the wire */
#define DNS_MSG_LABEL_MAX	63	/* RFC 1035 2.3.4 */
#define DNS_MSG_NAME_BUF	256	/* text form: <= 253 chars + NUL */
#define DNS_MSG_QUERY_MAX	(DNS_MSG_HDR_LEN + DNS_MSG_NAME_MAX + 4 + 11)
#define DNS_MSG_RR_MAX		32	/* answer records kept; more: dropped */
#define DNS_MSG_JUMPS_MAX	16	/* compression pointers per name */
#define DNS_MSG_TXT_MAX		1024	/* TXT text kept (its strings joined) */

#define DNS_MSG_T_A		1
#define DNS_MSG_T_CNAME		5
#define DNS_MSG_T_PTR		12
#define DNS_MSG_T_MX		15
#define DNS_MSG_T_TXT		16
#define DNS_MSG_T_AAAA		28
#define DNS_MSG_T_OPT		41
#define DNS_MSG_T_TLSA		52	/* RFC 6698 */
#define DNS_MSG_C_IN		1

#define DNS_MSG_RCODE_NOERROR	0
#define DNS_MSG_RCODE_FORMERR	1
#define DNS_MSG_RCODE_SERVFAIL	2
#define DNS_MSG_RCODE_NXDOMAIN	3
#define DNS_MSG_RCODE_REFUSED	5

/* Header flag bits (RFC 1035 4.1.1), as in struct dns_msg.flags. */
#define DNS_MSG_F_QR		0x8000
#define DNS_MSG_F_AA		0x0400
#define DNS_MSG_F_TC		0x0200
#define DNS_MSG_F_RD		0x0100
#define DNS_MSG_F_RA		0x0080
#define DNS_MSG_F_AD		0x0020	/* RFC 4035 3.2.3, 6840 5.7 */

/*
 * Names are in text form: labels joined by '.', lower case, no trailing
 * dot, "" for the root.  A label byte outside '!'..'~', or a '.' or '\\'
 * inside a label, makes the message PARSE_BAD: such names cannot be
 * written back as text without escapes, and mail routing never needs one.
 */
struct dns_msg_rr {
	uint16_t	type;
	uint16_t	rclass;
	uint32_t	ttl;
	char		name[DNS_MSG_NAME_BUF];		/* owner */
	uint16_t	pref;				/* MX */
	char		target[DNS_MSG_NAME_BUF];	/* MX exchange, CNAME, PTR */
	uint8_t		addr[16];	/* A: first 4 bytes; AAAA: all 16 */
	/* TXT: its character-strings joined (RFC 7208 3.3), any bytes, NUL
	 * terminated after txtlen; txtlong: the text was longer than
	 * DNS_MSG_TXT_MAX and txt holds only its start.  TLSA: its RDATA as
	 * sent (RFC 6698 2.1), in txt/txtlen the same way */
	char		txt[DNS_MSG_TXT_MAX + 1];
	size_t		txtlen;
	bool		txtlong;
};

struct dns_msg {
	uint16_t		id;
	uint16_t		flags;		/* DNS_MSG_F_* and opcode */
	unsigned		rcode;		/* with the EDNS0 upper bits */
	uint16_t		qdcount, ancount, nscount, arcount;
	bool			has_question;	/* qdcount == 1 */
	char			qname[DNS_MSG_NAME_BUF];
	uint16_t		qtype, qclass;
	struct dns_msg_rr	an[DNS_MSG_RR_MAX];
	size_t			nan;		/* records kept in an[] */
	size_t			an_dropped;	/* well formed, not kept */
	bool			edns;		/* an OPT record was present */
	uint16_t		edns_udp;	/* its payload size */
};

/*
 * Parse one whole datagram.  PARSE_OK: header, question (qdcount 0 or 1)
 * and answer records filled, authority and additional sections checked
 * for form (only OPT is read).  A message with TC set is read up to its
 * question only: the rest of a truncated answer is not to be used (RFC
 * 2181 9).  PARSE_BAD: malformed (short, counts beyond the data, a bad
 * label, a compression pointer that does not point back or jumps more
 * than DNS_MSG_JUMPS_MAX times); PARSE_TOOLONG: over DNS_MSG_MAX or a
 * name over DNS_MSG_NAME_MAX.  On error the struct holds whatever was
 * read and must not be used, except id and flags when len >= 12.
 */
enum parse_rc	dns_msg_parse(const uint8_t *, size_t, struct dns_msg *);

/*
 * Encode a text name (an optional trailing dot allowed) into wire form.
 * PARSE_BAD: empty label, bad byte; PARSE_TOOLONG: a label over 63, the
 * name over DNS_MSG_NAME_MAX, or more than outlen bytes needed.
 */
enum parse_rc	dns_msg_name_encode(const char *, uint8_t *out, size_t outlen,
		    size_t *len);

/*
 * A standard query (RD=1, AD=1 to ask a validating resolver for the AD
 * bit of its answer, RFC 6840 5.7; class IN) for name and qtype, with an EDNS0 OPT
 * record advertising DNS_MSG_EDNS_UDP when edns is set.  DNS_MSG_QUERY_MAX
 * bytes of out always suffice.  Return codes as dns_msg_name_encode().
 */
enum parse_rc	dns_msg_build_query(uint8_t *out, size_t outlen, size_t *len,
		    uint16_t id, const char *name, uint16_t qtype, bool edns);

#endif
