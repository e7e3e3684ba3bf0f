/*
 * queue_admin.h - `mxgate queue`: list, show, delete, hold and release
 * queue files by path, beside a running gateway.  Deliveries hold
 * flock(LOCK_EX) on a file; so do delete/hold/release, and they check the
 * name still leads to the locked file.  SPOOL/hold: never delivered.
 * Never: queue_open() (it cleans incoming/, which a gateway is writing),
 * writes records, or takes a name that is not a queue id.
 */
#ifndef MXGATE_QUEUE_ADMIN_H
#define MXGATE_QUEUE_ADMIN_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "../lib/ids.h"

#define QUEUE_ADMIN_LOCK_WAIT_MS	10000	/* then "busy" */
#define QUEUE_ADMIN_LOCK_POLL_MS	50	/* flock(LOCK_NB) retry step */
#define QUEUE_ADMIN_HEADER_MAX		65536	/* header bytes `show` prints */
#define QUEUE_ADMIN_HOLD		"hold"	/* SPOOL/hold */

enum queue_admin_rc {
	QUEUE_ADMIN_OK,
	QUEUE_ADMIN_BADID,	/* not a queue id */
	QUEUE_ADMIN_NOTFOUND,	/* no such message (or it just went away) */
	QUEUE_ADMIN_STATE,	/* hold of a held one, release of an active */
	QUEUE_ADMIN_BUSY,	/* still locked by a delivery after wait_ms */
	QUEUE_ADMIN_ERROR,	/* I/O error */
};

/*
 * Every function fills err with a one-line message unless it returns
 * QUEUE_ADMIN_OK; now is the current time (deferred or due?).  A queue
 * id is accepted in any case (ids are upper-case hex on disk).
 */

/* in upper-cased into out; 0, or -1 if it is not a queue id. */
int		 queue_admin_canon_id(const char *in, char out[ID_STRLEN + 1]);

/*
 * One line per message of SPOOL/queue and SPOOL/hold, oldest first:
 * "QID ARRIVAL SIZE <SENDER> STATE", STATE being "active", "deferred:
 * attempts N, next attempt TIME" or "held", then "  last error TIME:
 * TEXT" if an attempt failed, then "  <RCPT>" for each recipient not yet
 * done; last "N messages".  Times: ISO 8601, UTC.
 */
enum queue_admin_rc queue_admin_list(const char *spool, time_t now,
		    FILE *out, char *err, size_t errlen);
/* The envelope, attempts, "last error: TIME TEXT" (or "none"), then the
 * header section (never the body). */
enum queue_admin_rc queue_admin_show(const char *spool, const char *qid,
		    time_t now, FILE *out, char *err, size_t errlen);
/* Lock (waiting up to wait_ms), unlink, fsync the folder. */
enum queue_admin_rc queue_admin_delete(const char *spool, const char *qid,
		    unsigned wait_ms, char *err, size_t errlen);
/* Lock, rename SPOOL/queue/QID to SPOOL/hold/QID, fsync both folders. */
enum queue_admin_rc queue_admin_hold(const char *spool, const char *qid,
		    unsigned wait_ms, char *err, size_t errlen);
/* The reverse; the gateway learns of it by "queue schedule QID". */
enum queue_admin_rc queue_admin_release(const char *spool, const char *qid,
		    unsigned wait_ms, char *err, size_t errlen);

#endif
