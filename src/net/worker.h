/*
 * worker.h - one event loop and everything it owns: the config snapshot,
 * the directory, the job pools, the session table.  Passed explicitly
 * everywhere (no globals, STYLE R12).
 * There is one worker per loop (`workers`, default one per core), each on
 * its own thread.  Worker 0 runs on the main thread and alone holds the
 * listeners, signals, control socket, reloads, the guard's tick and the
 * delivery manager; it admits each new connection (limits) and hands it
 * to the loop with the fewest sessions.  Shared by all loops, each
 * thread-safe on its own: the spool, the harvest guard, the per-client
 * limits, the bounce rate table, qmgr_submit/qmgr_report.  A reload
 * reaches the other loops as a snapshot in their mailbox.
 * Never: speaks SMTP (smtp/), writes queue files (queue/).
 */
#ifndef MXGATE_WORKER_H
#define MXGATE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../obs/obs.h"

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
struct fleet;
struct guard_conf;
struct climit;
struct ctl;
struct tls_ctx;
struct passwd_file;
struct dns_resolver;
struct dnsbl_cache;
struct worker_conn;
struct worker_listener;
struct worker;
struct obs_http;

#define WORKER_SESSION_BUCKETS	4096	/* power of two */
#define WORKER_MAX		256	/* event loops at most */

/* The loops of one gateway. */
struct worker_group {
	struct worker		*w[WORKER_MAX];
	unsigned		 n;
	atomic_size_t		 nsessions;	/* admitted, all loops */
	unsigned		 next;		/* round-robin among equals */
	const struct psl	*psl;		/* read at start, never after;
						 * NULL: none (sender/psl.h) */
};

struct worker {
	unsigned		 idx;		/* 0: the main loop */
	struct worker_group	*grp;
	pthread_t		 thread;	/* idx > 0 */
	struct event_base	*base;
	struct config		*conf;		/* current snapshot (ref held) */
	struct config		*boot_conf;	/* worker 0, once reloaded: the
						 * snapshot it started with */
	struct dir		*dir;		/* current directory (ref held) */
	struct queue		*queue;
	struct job_pool		*commit_jobs;	/* spool fsyncs */
	struct job_pool		*misc_jobs;	/* reloads */
	struct qmgr		*qmgr;
	struct rate_table	*null_rate;	/* bounces per recipient */
	struct guard		*guard;		/* harvest guard */
	struct fleet		*fleet;		/* shared state; NULL: off */
	struct climit		*climit;	/* per-client connections */
	bool			 stressed;	/* near max_connections */
	struct event		*tick_ev;	/* once a second: guard_tick */
	struct worker_listener	**listeners;	/* worker 0: each with its
						 * address and kind */
	size_t			 nlisteners;
	struct tls_ctx		*tls;		/* NULL: no STARTTLS */
	struct passwd_file	*passwd;	/* AUTH users (ref held) */
	struct job_pool		*auth_jobs;	/* crypt(3) checks */
	struct dns_resolver	*dns;		/* sender checks (smtp_spf.c
						 * creates it at first use) */
	uint64_t		 dns_failed_ms;	/* when creating it last
						 * failed (0: never) */
	struct dnsbl_cache	*dnsbl;		/* DNS list answers (smtp_dnsbl.c
						 * creates it at first use) */
	struct smtp_session	*sessions[WORKER_SESSION_BUCKETS];
	atomic_size_t		 nsessions;	/* this loop's; owner writes */
	struct obs_loop		 obs;		/* this loop's counters: only
						 * its thread writes them */
	/* worker 0: the metrics listener and what it keeps (worker_obs.c) */
	struct obs_http		*obs_http;	/* NULL: metrics_listen off */
	struct obs_ring		 obs_ring;	/* RCPTs per minute, an hour */
	uint64_t		 obs_start_ms;	/* monotonic, at start */
	int64_t			 obs_start_wall; /* unix time, at start */
	/* mailbox from worker 0, guarded by mbox_mu; wake_ev reads it */
	struct event		*wake_ev;
	pthread_mutex_t		 mbox_mu;
	struct worker_conn	*inbox;		/* accepted connections, */
	struct worker_conn	**inbox_tail;	/* in order (NULL: &inbox) */
	bool			 mbox_swap;	/* a reloaded snapshot: */
	struct config		*mbox_conf;
	struct dir		*mbox_dir;
	struct tls_ctx		*mbox_tls;
	struct passwd_file	*mbox_pw;
	bool			 mbox_stop;
	bool			 stopping;
	bool			 reloading;
	struct ctl		*ctl;		/* worker 0: control socket */
	uint64_t		 reload_ctl;	/* deferred `reload`, or 0 */
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

/* BATV's switch-on time (SPOOL/batv.since) into c->batv_since, logged;
 * blocking; before c is handed to the loops. */
void	worker_batv_since(struct config *);
/* The harvest guard's settings from a config snapshot. */
void	worker_guard_conf(const struct config *, struct guard_conf *);

/* Bind every listen address; 0, or -1 with a message logged. */
int	worker_listen(struct worker *);
/*
 * At reload, on worker 0: close the listeners the new config no longer
 * has (sessions accepted on them go on), then open its new addresses.
 * Adds to restart ("KEY,KEY,...") each key with an address that could
 * not be opened.  Never fails the reload.
 */
void	worker_relisten(struct worker *, const struct config *,
	    char *restart, size_t restartlen);
/* Control commands: "reload", "harvest list|unmark", "stats" lines. */
void	worker_ctl_register(struct worker *, struct ctl *);
/* Signals (stop, reload) and the guard's tick: before listening, so a
 * signal that follows "listening" is always handled. */
int	worker_signals(struct worker *);
/* Run the loop until a stop signal; then drain and return. */
int	worker_run(struct worker *);

/*
 * Another loop (idx > 0): its own base, job pools and mailbox, sharing
 * the main worker's spool, guard, limits and delivery manager, on a
 * thread of its own until worker 0 stops.  0, or -1 (nothing started).
 */
int	worker_spawn(struct worker *main, unsigned idx, unsigned commit_threads,
	    unsigned auth_threads);
/* After worker 0's loop ended: wait for the other loops, free them. */
void	worker_join_all(struct worker *main);
/* Sessions open on every loop. */
size_t	worker_sessions_open(const struct worker *);

/*
 * worker_obs.c, on worker 0: the metrics listener (metrics_listen; off
 * when empty), which sums every loop's counters and reads the guard, the
 * spool, the delivery manager and the directory on worker 0's loop when
 * scraped.  open: 0, or -1 with err; tick: once a second (the status
 * page's minute ring); close: after the loops have stopped.
 */
int	worker_obs_open(struct worker *, char *err, size_t errlen);
void	worker_obs_tick(struct worker *, uint64_t now_ms);
void	worker_obs_close(struct worker *);
/* Every loop's counters, added up (worker 0's thread). */
void	worker_obs_totals(const struct worker *, struct obs_totals *);

#endif
