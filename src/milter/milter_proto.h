/*
 * milter_proto.h - the milter protocol (version 6, as libmilter 8.14+ and
 * rspamd speak it) as a pure codec: packet framing, command encoders, the
 * option negotiation and a decoder for every reply a filter may send.
 * Owns: the wire constants, the packet bound, reply validation (SMTP
 * reply codes, edit sizes).  Never: I/O, timers, allocation beyond the
 * caller's struct buf.  Untrusted: every byte a filter sends.
 */
#ifndef MXGATE_MILTER_PROTO_H
#define MXGATE_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "../lib/parse.h"

#define MILTER_VERSION		6
#define MILTER_PACKET_MAX	(256 * 1024)	/* one reply, cmd byte incl. */
#define MILTER_CHUNK_MAX	65535	/* a body chunk (libmilter's size) */
#define MILTER_REPLY_MAX	2048	/* an SMTP reply text from a filter */
#define MILTER_HDR_NAME_MAX	256	/* a header name in an edit */
#define MILTER_HDR_VALUE_MAX	65536	/* a header value in an edit */
#define MILTER_ADDR_MAX		512	/* an address in an envelope edit */
#define MILTER_MACROS_MAX	4096	/* a SETSYMLIST list */

/* Commands (MTA to filter). */
#define MILTER_C_ABORT		'A'
#define MILTER_C_BODY		'B'
#define MILTER_C_CONNECT	'C'
#define MILTER_C_MACRO		'D'
#define MILTER_C_EOB		'E'
#define MILTER_C_HELO		'H'
#define MILTER_C_HEADER		'L'
#define MILTER_C_MAIL		'M'
#define MILTER_C_EOH		'N'
#define MILTER_C_OPTNEG		'O'
#define MILTER_C_QUIT		'Q'
#define MILTER_C_RCPT		'R'
#define MILTER_C_DATA		'T'

/* Actions the MTA offers (SMFIF_*). */
#define MILTER_A_ADDHDRS	0x001u
#define MILTER_A_CHGBODY	0x002u
#define MILTER_A_ADDRCPT	0x004u
#define MILTER_A_DELRCPT	0x008u
#define MILTER_A_CHGHDRS	0x010u
#define MILTER_A_QUARANTINE	0x020u
#define MILTER_A_CHGFROM	0x040u
#define MILTER_A_ADDRCPT_PAR	0x080u
#define MILTER_A_SETSYMLIST	0x100u
#define MILTER_A_ALL		0x1ffu

/* Protocol steps (SMFIP_*): events the filter need not get, replies
 * it will not send. */
#define MILTER_P_NOCONNECT	0x000001u
#define MILTER_P_NOHELO		0x000002u
#define MILTER_P_NOMAIL		0x000004u
#define MILTER_P_NORCPT		0x000008u
#define MILTER_P_NOBODY		0x000010u
#define MILTER_P_NOHDRS		0x000020u
#define MILTER_P_NOEOH		0x000040u
#define MILTER_P_NR_HDR		0x000080u
#define MILTER_P_NOUNKNOWN	0x000100u
#define MILTER_P_NODATA		0x000200u
#define MILTER_P_SKIP		0x000400u
#define MILTER_P_RCPT_REJ	0x000800u
#define MILTER_P_NR_CONN	0x001000u
#define MILTER_P_NR_HELO	0x002000u
#define MILTER_P_NR_MAIL	0x004000u
#define MILTER_P_NR_RCPT	0x008000u
#define MILTER_P_NR_DATA	0x010000u
#define MILTER_P_NR_UNKN	0x020000u
#define MILTER_P_NR_EOH		0x040000u
#define MILTER_P_NR_BODY	0x080000u
#define MILTER_P_HDR_LEADSPC	0x100000u
/* what mxgate offers: every step may be left out or left unanswered,
 * but not RCPT_REJ (we send only recipients we took) nor HDR_LEADSPC */
#define MILTER_P_OFFER		(0x1fffffu & ~(MILTER_P_RCPT_REJ | \
				    MILTER_P_HDR_LEADSPC))

/* Macro stages of SETSYMLIST. */
enum milter_stage {
	MILTER_M_CONNECT, MILTER_M_HELO, MILTER_M_MAIL, MILTER_M_RCPT,
	MILTER_M_DATA, MILTER_M_EOM, MILTER_M_EOH, MILTER_M_STAGES
};

/* One packet: its command byte and payload (a span of the input). */
struct milter_frame {
	char		 cmd;
	const uint8_t	*data;
	size_t		 len;
};

/*
 * One packet from in[0..len): a 4-byte big-endian length (of the command
 * byte and payload), then the command.  PARSE_MORE: not all here yet;
 * PARSE_TOOLONG: the length is over max; PARSE_BAD: length 0.  *used is
 * the packet's size on PARSE_OK.
 */
enum parse_rc	milter_frame_parse(const uint8_t *in, size_t len, size_t max,
		    struct milter_frame *, size_t *used);

/* Encoders: append one packet to b.  0, or -1 (b's max; b unchanged). */
int	milter_enc(struct buf *, char cmd, const void *, size_t);
int	milter_enc_optneg(struct buf *, uint32_t version, uint32_t actions,
	    uint32_t protocol);
/* family: '4', '6', 'L' (unix), 'U' (unknown); port in host order. */
int	milter_enc_connect(struct buf *, const char *host, char family,
	    uint16_t port, const char *addr);
/* args: n NUL-ended strings (first the address in <>). */
int	milter_enc_strings(struct buf *, char cmd, const char *const *args,
	    size_t n);
int	milter_enc_header(struct buf *, const char *name, size_t nlen,
	    const char *value, size_t vlen);
/* A macro packet for command cmd: n name/value pairs (names without
 * braces are sent as given). */
int	milter_enc_macros(struct buf *, char cmd, const char *const *names,
	    const char *const *values, size_t n);

/* The filter's answer to OPTNEG. */
struct milter_neg {
	uint32_t	version;
	uint32_t	actions;
	uint32_t	protocol;
	/* SETSYMLIST: per stage, a span of "name name ..." or len 0 */
	const uint8_t	*macros[MILTER_M_STAGES];
	size_t		 macros_len[MILTER_M_STAGES];
	bool		 macros_set[MILTER_M_STAGES];
};

/*
 * Check a filter's OPTNEG reply against what we offered: PARSE_BAD when
 * it is malformed, wants a version other than 2..6, actions or protocol
 * steps not offered.
 */
enum parse_rc	milter_neg_parse(const struct milter_frame *,
		    uint32_t offered_actions, uint32_t offered_protocol,
		    struct milter_neg *);

enum milter_reply_kind {
	MILTER_R_CONTINUE, MILTER_R_ACCEPT, MILTER_R_REJECT,
	MILTER_R_TEMPFAIL, MILTER_R_DISCARD, MILTER_R_REPLYCODE,
	MILTER_R_QUARANTINE, MILTER_R_PROGRESS, MILTER_R_SKIP,
	MILTER_R_ADDHEADER, MILTER_R_INSHEADER, MILTER_R_CHGHEADER,
	MILTER_R_ADDRCPT, MILTER_R_DELRCPT, MILTER_R_CHGFROM,
	MILTER_R_REPLBODY, MILTER_R_SHUTDOWN, MILTER_R_CONNFAIL,
	MILTER_R_KINDS
};

/* A decoded reply; spans into the frame (strings without their NUL). */
struct milter_reply {
	enum milter_reply_kind	 kind;
	uint32_t		 action;	/* MILTER_A_* it needs; 0 */
	uint32_t		 index;		/* insheader, chgheader */
	const char		*name;		/* header name */
	size_t			 nlen;
	const char		*text;		/* header value, address,
						 * reply text, reason, body */
	size_t			 tlen;
	const char		*args;		/* addrcpt_par, chgfrom */
	size_t			 alen;
	unsigned		 code;		/* replycode: 421..599 */
};

/*
 * Decode a reply frame.  PARSE_BAD: an unknown command, a missing NUL, a
 * NUL inside a string, a header name that is not RFC 5322 ftext, an
 * empty address, a replycode that milter_reply_code_check() refuses;
 * PARSE_TOOLONG: an edit over its bound.
 */
enum parse_rc	milter_reply_parse(const struct milter_frame *,
		    struct milter_reply *);

/*
 * An SMTP reply a filter asks us to give: "NNN[ X.Y.Z] text", lines
 * separated by CRLF, each "NNN-" but the last "NNN "; the same code on
 * every line, 4xx or 5xx; an enhanced code (if any) of the same class
 * (RFC 3463: 4.x.x with 4yz); printable bytes only.  The first code.
 */
enum parse_rc	milter_reply_code_check(const char *, size_t, unsigned *code);

const char	*milter_reply_name(enum milter_reply_kind);
/* Which action a reply kind needs offered and negotiated; 0: none. */
uint32_t	 milter_reply_action(enum milter_reply_kind);

#endif
