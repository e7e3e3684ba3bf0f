/*
 * job.h - the one off-loop work pool: blocking work (fsync, file loads,
 * Maildir writes) runs on a pool thread; its done callback runs back on
 * the event loop that submitted it.  No other module creates threads.
 */
#ifndef MXGATE_JOB_H
#define MXGATE_JOB_H

struct event_base;
struct job_pool;

typedef void	job_fn(void *arg);		/* runs on a pool thread */
typedef void	job_done_fn(void *arg);		/* runs on the loop */

struct job_pool *job_pool_new(struct event_base *, unsigned nthreads);
/* Waits for queued and running jobs, runs their done callbacks, frees. */
void	job_pool_free(struct job_pool *);
/* 0, or -1 (out of memory, or the pool is being freed: nothing was
 * queued). */
int	job_submit(struct job_pool *, job_fn *, job_done_fn *, void *arg);
/* Jobs submitted and not yet completed (for shutdown and stats). */
unsigned job_pending(const struct job_pool *);

#endif
