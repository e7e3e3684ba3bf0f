/*
 * milter_msg.h - a message as the milter chain sees and edits it: the
 * header fields, the body, the sender and recipients.  Each filter is
 * sent the message as the filters before it left it; at the end the
 * caller writes out the result (milter_msg_render) if anything changed.
 * Owns: the header split (RFC 5322 2.2, 2.2.3 folding) and the edit
 * rules (libmilter's header indexes).  Never: I/O.  Untrusted: the
 * message (a client's bytes) and every edit (a filter's).
 */
#ifndef MXGATE_MILTER_MSG_H
#define MXGATE_MILTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "milter_proto.h"

#define MILTER_MSG_HDRS_MAX	2000	/* header fields, incl. added ones */
#define MILTER_MSG_RCPTS_MAX	1000	/* recipients, incl. added ones */

struct milter_hdr {
	char	*raw;		/* "Name: value\r\n", folds as CRLF WSP */
	size_t	 len;
	size_t	 nlen;		/* the name's length */
};

struct milter_rcpt {
	char	*addr;		/* "a@b", no brackets */
	int	 orig;		/* index in the original list; -1: added */
};

struct milter_msg {
	struct milter_hdr	*h;
	size_t			 nh;
	bool			 sep;		/* an empty line ended them */
	const uint8_t		*body;		/* the original's, or repl */
	size_t			 bodylen;
	struct buf		 repl;		/* a replaced body */
	bool			 body_replaced;
	char			*sender;	/* "" for <> */
	struct milter_rcpt	*r;
	size_t			 nr;
	size_t			 norig;		/* original ones added so far */
	char			*quarantine;	/* reason, or NULL */
	bool			 hdrs_changed;
	bool			 env_changed;
	uint64_t		 max;		/* the message's size bound */
};

/* Split msg (the client's bytes, kept by the caller while m lives).
 * 0, or -1 (out of memory, too many fields). */
int	milter_msg_init(struct milter_msg *, const uint8_t *msg, size_t len,
	    const char *sender, const char *const *rcpts, size_t nrcpts,
	    uint64_t max);
void	milter_msg_free(struct milter_msg *);
/* Split msg now (after an init with none).  0, or -1. */
int	milter_msg_set_content(struct milter_msg *, const uint8_t *msg,
	    size_t len);
/* One more original recipient.  0, or -1 (MILTER_MSG_RCPTS_MAX). */
int	milter_msg_add_rcpt(struct milter_msg *, const char *addr);

/* A field's name and value as a filter is sent them: the value without
 * the blanks after ':' and its last CRLF, inner CRLF as LF, into v. */
int	milter_msg_hdr_value(const struct milter_hdr *, struct buf *v);

/* A new body: the first replbody of a filter's eom empties it. */
void	milter_msg_body_begin(struct milter_msg *);
/*
 * Apply one eom edit (addheader, insheader, chgheader, addrcpt,
 * delrcpt, chgfrom, replbody, quarantine).  0, or -1: refused (a bound,
 * or out of memory); the message is then as before this edit.
 */
int	milter_msg_apply(struct milter_msg *, const struct milter_reply *);

/* The header section and body as they now are, CRLF lines. */
int	milter_msg_render(const struct milter_msg *, struct buf *out);

#endif
