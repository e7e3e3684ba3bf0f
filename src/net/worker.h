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
struct rate_table;
struct guard;
struct guard_conf;
struct climit;
struct ctl;
struct tls_ctx;
struct passwd_file;

#define WORKER_SESSION_BUCKETS	4096	/* power of two */

struct worker {
	struct event_base	*base;
	struct config		*conf;		/* current snapshot (ref held) */
	struct dir		*dir;		/* current directory (ref held) */
	struct queue		*queue;
	struct job_pool		*commit_jobs;	/* spool fsyncs */
	struct job_pool		*misc_jobs;	/* reloads */
	struct qmgr		*qmgr;
	struct rate_table	*null_rate;	/* bounces per recipient */
	struct guard		*guard;		/* harvest guard */
	struct climit		*climit;	/* per-client connections */
	uint64_t		 refused_total;	/* at connect, by limits */
	bool			 stressed;	/* near max_connections */
	struct event		*tick_ev;	/* once a second: guard_tick */
	struct evconnlistener	**listeners;
	size_t			 nlisteners;
	size_t			 submission_from; /* listeners[i >= it] */
	struct tls_ctx		*tls;		/* NULL: no STARTTLS */
	struct passwd_file	*passwd;	/* AUTH users (ref held) */
	struct job_pool		*auth_jobs;	/* crypt(3) checks */
	struct smtp_session	*sessions[WORKER_SESSION_BUCKETS];
	size_t			 nsessions;
	uint64_t		 sessions_total;	/* since start */
	uint64_t		 messages_queued;	/* since start */
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

/* Stress mode: sessions above 80% of max_connections (shorter timeouts). */
bool	worker_stressed(struct worker *);

/*
 * The STARTTLS context (NULL: no certificate) and AUTH users (NULL: no
 * passwd_file) a config asks for; blocking.  0, or -1 after telling err.
 */
int	worker_secure_load(const struct config *, struct tls_ctx **,
	    struct passwd_file **, void (*err)(void *arg, const char *file,
	    unsigned line, const char *msg), void *arg);

/* The harvest guard's settings from a config snapshot. */
void	worker_guard_conf(const struct config *, struct guard_conf *);

/* Bind every listen address; 0, or -1 with a message logged. */
int	worker_listen(struct worker *);
/* Control commands: "reload", "harvest list|unmark", "stats" lines. */
void	worker_ctl_register(struct worker *, struct ctl *);
/* Signals (stop, reload) and the guard's tick: before listening, so a
 * signal that follows "listening" is always handled. */
int	worker_signals(struct worker *);
/* Run the loop until a stop signal; then drain and return. */
int	worker_run(struct worker *);

#endif
