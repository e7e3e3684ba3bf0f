/*
 * worker.h - one event loop and everything it owns: the config snapshot,
 * the directory, the spool, the job pools, the session table, the
 * delivery manager.  Passed explicitly everywhere (no globals, STYLE R12);
 * one per core later.
 * Never: speaks SMTP (smtp/), writes queue files (queue/).
 */
#ifndef MXGATE_WORKER_H
#define MXGATE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct config;
struct dir;
struct queue;
struct job_pool;
struct qmgr;
struct smtp_session;
struct evconnlistener;

#define WORKER_SESSION_BUCKETS	4096	/* power of two */

struct worker {
	struct event_base	*base;
	struct config		*conf;		/* current snapshot (ref held) */
	struct dir		*dir;		/* current directory (ref held) */
	struct queue		*queue;
	struct job_pool		*commit_jobs;	/* spool fsyncs */
	struct job_pool		*misc_jobs;	/* reloads */
	struct qmgr		*qmgr;
	struct evconnlistener	**listeners;
	size_t			 nlisteners;
	struct smtp_session	*sessions[WORKER_SESSION_BUCKETS];
	size_t			 nsessions;
	bool			 stopping;
	bool			 reloading;
	struct event		*sig_ev[4];
	struct event		*stop_ev;	/* polls for the last session */
	unsigned		 stop_ticks;
};

/* Session table: by id, never by raw pointer across async hops (R14). */
void	worker_session_add(struct worker *, struct smtp_session *);
void	worker_session_del(struct worker *, struct smtp_session *);
struct smtp_session *worker_session_find(struct worker *, uint64_t id);

/* Bind every listen address; 0, or -1 with a message logged. */
int	worker_listen(struct worker *);
/* Run the loop until a stop signal; then drain and return. */
int	worker_run(struct worker *);

#endif
