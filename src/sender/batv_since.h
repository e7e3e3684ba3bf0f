/*
 * batv_since.h - when BATV was switched on, kept in the spool
 * (SPOOL/batv.since, one decimal Unix time), so that a restart does not
 * start batv_grace again.  Switching BATV off removes the file: the next
 * switch-on starts a new grace, since mail sent meanwhile was unsigned.
 * Owns: that file.  Never: decides on mail.  Untrusted: the file's bytes.
 */
#ifndef MXGATE_BATV_SINCE_H
#define MXGATE_BATV_SINCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define BATV_SINCE_FILE		"batv.since"

/*
 * on: read the time, or write now as the time when there is none (or
 * it does not parse).  off: remove the file.  Blocking (start, reload).
 * 0 with *since set (0 when off), or -1 with why.
 */
int	batv_since_load(const char *spool, bool on, time_t now,
	    time_t *since, char *why, size_t whylen);

#endif
