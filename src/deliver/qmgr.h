/*
 * qmgr.h - the queue manager: takes committed queue ids, routes each
 * recipient to its next hop (Maildir on a job thread; SMTP/LMTP through
 * the outbound client on the loop; other domains to relayhost or their MX
 * hosts), records what is finished, retries the rest with exponential
 * backoff until queue_lifetime, and returns failures in a DSN when the
 * backscatter guard allows (DESIGN 4, 5).  At start it picks up what is
 * on disk, and the schedule resumes from the queue files' A records.
 * Never: speaks inbound SMTP, or removes a file before every recipient is
 * finished for good (delivered durably, or failed and reported).
 */
#ifndef MXGATE_QMGR_H
#define MXGATE_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct worker;
struct qmgr;
struct ctl;
struct dsn_rcpt;
struct obs_loop;

struct outbound;
/* ob: the outbound TLS context, CA stores and logins (outbound.h); the
 * caller frees it after qmgr_free. */
struct qmgr	*qmgr_new(struct worker *, struct outbound *ob,
		    unsigned nthreads, char *err, size_t errlen);
/* Queue every committed message found in the spool. */
void		 qmgr_start(struct qmgr *);
/* A message to work on now (or at its scheduled time, if not forced). */
void		 qmgr_notify(struct qmgr *, const char *qid);
/* The same from any event loop's thread (queued for the qmgr's loop). */
void		 qmgr_submit(struct qmgr *, const char *qid);
/*
 * Every message waiting for a retry and still in queue/: now, once each
 * (fn, if not NULL, hears each id); returns how many.  Such a try before
 * the retry time keeps the message's attempt count and retry time if it
 * defers again (see qmsg_finish).
 */
unsigned	 qmgr_flush(struct qmgr *, void (*fn)(void *arg,
		    const char *qid), void *arg);
/* Take no new work (call before draining the spool's commit jobs). */
void		 qmgr_stop(struct qmgr *);
/* Stop timers and deliveries (messages stay queued), free. */
void		 qmgr_free(struct qmgr *);

/* What a report is about. */
struct qmgr_report {
	const char		*orig_qid;	/* for logs; may be "" */
	const char		*sender;	/* the report goes here */
	bool			 client_trusted; /* relay_networks or auth */
	unsigned		 proofs;	/* more NDR_PROOF_* bits */
	const uint8_t		*msg;		/* original (headers suffice) */
	size_t			 msglen;
	time_t			 arrival;
	const struct dsn_rcpt	*rcpts;
	size_t			 nrcpts;
	const struct config	*conf;		/* the caller's snapshot */
	/* RFC 3461: ENVID (xtext) or NULL; RET=FULL was asked for (honoured
	 * only for failures and with ndr_return_full = yes) */
	const char		*envid;
	bool			 ret_full;
	/* the original came with SMTPUTF8: an 8-bit header section
	 * returned in the report makes it global (RFC 6533 6) */
	bool			 smtputf8;
	/* the calling loop's counters: the report is counted there, sent
	 * or suppressed (mxgate_ndr_total) */
	struct obs_loop		*obs;
};

/*
 * Send a DSN/NDR about rcpts to the sender if, and only if, the
 * backscatter guard allows it; logs event=dsn or ndr=suppressed with the
 * reason.  Everything needed is copied before it returns.  Callable from
 * any event loop's thread (the backscatter guard is locked; the report
 * commits on the queue's own pool).  0 if a report
 * was queued (committed later), -1 if suppressed or on a local error.
 */
int		 qmgr_report(struct qmgr *, const struct qmgr_report *);

/* "queue flush", "queue schedule QID" and the queue's "stats" lines. */
void		 qmgr_ctl_register(struct qmgr *, struct ctl *);

/* For stats. */
unsigned	 qmgr_active(const struct qmgr *);
unsigned	 qmgr_waiting(const struct qmgr *);
/* The lowest queue id among active and waiting messages (an id is its
 * creation time in microseconds, lib/ids.h), 0 when there is none;
 * O(messages), on the qmgr's loop. */
uint64_t	 qmgr_oldest_id(const struct qmgr *);

#endif
