/*
 * buf.h - length-tracked byte strings with a hard maximum.
 * Owns: growth policy.  Never: truncates silently; buf_add() past max fails
 * and adds nothing.  Knows nothing about mail.
 */
#ifndef MXGATE_BUF_H
#define MXGATE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t	*data;
	size_t	 len;		/* bytes in use */
	size_t	 cap;		/* bytes allocated */
	size_t	 max;		/* hard limit: buf_add() fails beyond it */
};

void	buf_init(struct buf *, size_t max);
void	buf_free(struct buf *);
void	buf_reset(struct buf *);
int	buf_add(struct buf *, const void *, size_t);	/* 0, or -1 */
int	buf_addc(struct buf *, int);
int	buf_addf(struct buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
const char *buf_cstr(struct buf *);	/* NUL-terminated view, or "" */

#endif
