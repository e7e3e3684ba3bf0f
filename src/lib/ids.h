/*
 * ids.h - 64-bit identifiers that are never reused: session ids and queue
 * ids.  Time-based (microseconds), strictly increasing within a process,
 * so a restart never hands out an id already on disk.
 */
#ifndef MXGATE_IDS_H
#define MXGATE_IDS_H

#include <stdint.h>

#define ID_STRLEN	16	/* hex digits, without NUL */

uint64_t id_next(void);		/* thread-safe */
void	id_format(uint64_t, char out[ID_STRLEN + 1]);
int	id_parse(const char *, uint64_t *);	/* 0, or -1 */

#endif
