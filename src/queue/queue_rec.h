/*
 * queue_rec.h - the queue file record format and its pure parsers.
 * A record is: type byte, 16 lowercase hex digits of payload length, ':',
 * the payload, '\n'.  A file is V I T C H S [M] [U] [P] (R [N])... B [F]
 * [P] E, then D, A and W records (M, N and W: the DSN extension; P:
 * proofs about the sender, once, before R or after B; F: header fields
 * known only at the end of data; older files lack them).
 * Owns: the format, its limits, the order of records.  Never: I/O,
 * allocation, globals.  Untrusted: every byte of a file on disk.
 */
#ifndef MXGATE_QUEUE_REC_H
#define MXGATE_QUEUE_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../lib/parse.h"

#define QUEUE_REC_HDRLEN	18	/* type + 16 hex + ':' */
#define QUEUE_REC_LENDIGITS	16	/* hex digits of the length */
#define QUEUE_REC_META_MAX	65536	/* payload of any record but B */
#define QUEUE_REC_BODY_MAX	((uint64_t)1 << 32)	/* payload of B */
#define QUEUE_REC_TIME_DIGITS	20	/* decimal digits of T */
#define QUEUE_REC_VERSION	"mxgate-queue 1"

/* Record types, in the order a file holds them. */
#define QUEUE_REC_T_VERSION	'V'
#define QUEUE_REC_T_ID		'I'
#define QUEUE_REC_T_TIME	'T'
#define QUEUE_REC_T_CLIENT	'C'
#define QUEUE_REC_T_HELO	'H'
#define QUEUE_REC_T_SENDER	'S'
#define QUEUE_REC_T_RCPT	'R'
#define QUEUE_REC_T_BODY	'B'
#define QUEUE_REC_T_END		'E'
#define QUEUE_REC_T_DONE	'D'
#define QUEUE_REC_T_ATTEMPT	'A'	/* "ATTEMPTS NEXT_TIME"; last wins */
#define QUEUE_REC_T_SMTPUTF8	'U'	/* empty; at most once, after S and
					 * before R: received with SMTPUTF8 */
/* RFC 3461 (DSN), optional: */
#define QUEUE_REC_T_DSN_MSG	'M'	/* "RET SP ENVID", after S */
#define QUEUE_REC_T_DSN_RCPT	'N'	/* "NOTIFY [SP ORCPT]", after its R */
#define QUEUE_REC_T_WARNED	'W'	/* a delay warning went out */
#define QUEUE_REC_DSN_ENVID_MAX	100	/* RFC 3461 4.4 */
#define QUEUE_REC_DSN_ORCPT_MAX	500	/* RFC 3461 4.2 */
#define QUEUE_REC_T_LASTERR	'L'	/* "TIME TEXT": the last delivery
					 * error (for the operator); last
					 * wins */
#define QUEUE_REC_LASTERR_MAX	512	/* TEXT of an L record we write */
/*
 * Proofs about the sender, found at receipt (issue 14), optional: at most
 * once, after S and before R.  Words "KEY=VALUE" separated by one space,
 * each of [a-z0-9.=_-]; a reader takes the keys it knows and skips the
 * others, so later proofs (DKIM, BATV) add keys, not records.  Keys:
 * spf=RESULT (RFC 7208 2.6 name), spf.identity=mailfrom|helo, auth=1
 * (the client had authenticated; absent: it had not), batv=pass (MAIL
 * FROM carried a valid prvs= tag made with our key).
 */
#define QUEUE_REC_T_PROOF	'P'
#define QUEUE_REC_PROOF_MAX	512
/*
 * Header fields found at the end of data (Authentication-Results with
 * the DKIM results, Received-SPF), optional, at most once, after B: the
 * message as delivered is F's bytes then B's (queue_file_open joins
 * them).  Whole CRLF-ended lines, at most QUEUE_REC_PREFIX_MAX bytes.
 */
#define QUEUE_REC_T_PREFIX	'F'
#define QUEUE_REC_PREFIX_MAX	16384

struct queue_rec {
	int		 type;		/* one of QUEUE_REC_T_* */
	const uint8_t	*payload;	/* into the caller's bytes */
	size_t		 len;		/* payload length */
	size_t		 size;		/* header + payload + '\n' */
};

/* Where the parts of a whole file are: spans into the caller's bytes. */
struct queue_rec_file {
	struct queue_rec id, client, helo, sender, body;
	time_t		 arrival;
	size_t		 nrcpts;
	size_t		 rcpt_off;	/* offset of the first R record */
	size_t		 rcpt_bytes;	/* sum of R payload lengths */
	size_t		 done_off;	/* offset just past the E record */
	size_t		 validlen;	/* past the last complete record */
	size_t		 ndone;		/* D records seen */
	unsigned	 attempts;	/* from the last A record */
	time_t		 next_attempt;	/* from the last A record, 0 none */
	bool		 smtputf8;	/* a U record was there */
	struct queue_rec dsn_msg;	/* M record; len 0 if none */
	bool		 warned;	/* a W record is there */
	struct queue_rec lasterr;	/* the last L record (len 0: none) */
	struct queue_rec proof;		/* the P record (len 0: none) */
	struct queue_rec prefix;	/* the F record (len 0: none) */
	time_t		 lasterr_time;
	const uint8_t	*lasterr_text;	/* into lasterr's payload */
	size_t		 lasterr_len;
};

/* What an M or an N record says (spans into the record). */
struct queue_rec_dsn {
	int		 ret;		/* QUEUE_DSN_RET_* */
	unsigned	 notify;	/* QUEUE_NOTIFY_* bits, 0: unset */
	const uint8_t	*text;		/* ENVID or ORCPT as received */
	size_t		 textlen;
};

/*
 * One record at the start of p.  PARSE_MORE: a valid prefix.
 * PARSE_TOOLONG: the length is over the type's bound.
 */
enum parse_rc	queue_rec_parse(const uint8_t *p, size_t len,
		    struct queue_rec *out);
/*
 * A whole file.  PARSE_OK only for a complete file (E present) whose
 * records all hold; a truncated trailing D record is ignored (validlen
 * stops before it).  PARSE_MORE: torn (no E yet).
 */
enum parse_rc	queue_rec_parse_file(const uint8_t *p, size_t len,
		    struct queue_rec_file *out);
/* The recipient index of a D record's payload; -1 if malformed. */
int		queue_rec_done_index(const struct queue_rec *, size_t nrcpts,
		    size_t *out);
/* ATTEMPTS and NEXT_TIME of an A record's payload; -1 if malformed. */
int		queue_rec_attempt(const struct queue_rec *, unsigned *attempts,
		    time_t *next);
/* The payload of an M or N record; -1 if malformed. */
int		queue_rec_dsn_msg(const struct queue_rec *,
		    struct queue_rec_dsn *);
int		queue_rec_dsn_rcpt(const struct queue_rec *,
		    struct queue_rec_dsn *);
/* TIME and TEXT (a span of the payload) of an L record; -1 if
 * malformed (TEXT empty or holding a NUL or a line break). */
int		queue_rec_lasterr(const struct queue_rec *, time_t *when,
		    const uint8_t **text, size_t *textlen);
/*
 * The value of KEY in a P record's payload: a span of it, or NULL when
 * the key is not there.  queue_rec_proof_valid(): the payload's form.
 */
const uint8_t	*queue_rec_proof_get(const struct queue_rec *, const char *key,
		    size_t *vlen);
bool		queue_rec_proof_valid(const uint8_t *, size_t);
/* Writes the 18-byte header (no NUL) for a record. */
void		queue_rec_header(char out[QUEUE_REC_HDRLEN], int type,
		    uint64_t len);

#endif
