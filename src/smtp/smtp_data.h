/*
 * smtp_data.h - the DATA stream as a pure, resumable state machine
 * (RFC 5321 4.1.1.4, 4.5.2).  The only end of data is <CRLF>.<CRLF>,
 * where the first CRLF may be the one that ended the DATA command.  A bare
 * LF or bare CR anywhere marks the message bad but never ends it, so
 * "<LF>.<LF>" or "<CR><LF>.<LF>" can never split one message into two
 * (SMTP smuggling).  Dot-unstuffing happens here.  A NUL anywhere marks
 * the message bad too: RFC 5322 and 8BITMIME (RFC 6152) exclude it, and we
 * offer no BINARYMIME.
 * BDAT content (RFC 3030) is raw: no dot, no stuffing; smtp_data_raw()
 * applies the same bare CR/LF and NUL rules to it, across chunks.  The
 * BDAT argument parser lives here too.
 * Never: I/O, allocation; output is handed to a callback as runs of the
 * input bytes (zero-copy).  Untrusted: every byte.
 */
#ifndef MXGATE_SMTP_DATA_H
#define MXGATE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

struct smtp_data {
	int		st;		/* private: scanner state */
	bool		bad_eol;	/* a bare CR or LF was seen */
	bool		nul;		/* a NUL byte was seen */
	bool		lenient;	/* strict_framing = shadow: a bare CR
					 * or LF is output as CRLF (it still
					 * sets bad_eol, never ends data) */
};

/* out(arg, p, n): n message bytes at p (a run of the input). */
typedef void	smtp_data_out_fn(void *arg, const uint8_t *p, size_t n);

void		smtp_data_init(struct smtp_data *);	/* not lenient */
/*
 * Scan len bytes.  PARSE_OK: the end-of-data mark ended at in[*used - 1]
 * (bytes after it belong to the next command).  PARSE_MORE: all len bytes
 * were consumed (*used == len) and the mark has not been seen yet.
 */
enum parse_rc	smtp_data_scan(struct smtp_data *, const uint8_t *in,
		    size_t len, size_t *used, smtp_data_out_fn *out,
		    void *arg);

/*
 * BDAT content: output all len bytes (one run), noting bare CR/LF and
 * NUL; resumable at any byte.  smtp_data_raw_end() at the LAST chunk: a
 * CR still waiting for its LF is a bare CR; returns true when the content
 * ends at a line end (or is empty), false when its last line has no CRLF.
 */
void		smtp_data_raw(struct smtp_data *, const uint8_t *in,
		    size_t len, smtp_data_out_fn *out, void *arg);
bool		smtp_data_raw_end(struct smtp_data *);

#define SMTP_BDAT_DIGITS	20	/* chunk-size fits a uint64_t */

/*
 * The argument of BDAT (RFC 3030 2): chunk-size [SP "LAST"], nothing else
 * (LAST in any case).  PARSE_BAD: no digits, a byte that is not a digit,
 * anything after LAST, more than one blank; PARSE_TOOLONG: more than
 * SMTP_BDAT_DIGITS digits or a value over UINT64_MAX.
 */
enum parse_rc	smtp_data_bdat_arg(const uint8_t *, size_t, uint64_t *size,
		    bool *last);

#endif
