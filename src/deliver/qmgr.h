/*
 * qmgr.h - the delivery manager: takes committed queue ids, delivers each
 * recipient to its domain's next hop on a job thread, records what is
 * finished, removes the queue file when every recipient is, and retries
 * the rest after retry_min.  At start it picks up what is on disk.
 * Never: speaks SMTP inbound, or removes a file before every recipient's
 * copy is durable.
 */
#ifndef MXGATE_QMGR_H
#define MXGATE_QMGR_H

struct worker;
struct qmgr;

struct qmgr	*qmgr_new(struct worker *, unsigned nthreads);
/* Queue every committed message found in the spool. */
void		 qmgr_start(struct qmgr *);
void		 qmgr_notify(struct qmgr *, const char *qid);
/* Stop retry timers, wait for deliveries in flight, free. */
void		 qmgr_free(struct qmgr *);

#endif
