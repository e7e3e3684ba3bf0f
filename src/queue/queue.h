/*
 * queue.h - the durable spool.  A message is written to
 * SPOOL/incoming/QID while DATA streams in, then committed: END record,
 * the file's image into the journal (journal.h), rename to
 * SPOOL/queue/QID, the journal's group commit; only then does the done
 * callback say ok, and only then may anyone send 250 (DESIGN 2.5, STYLE
 * R16).  Files in incoming/ at start were never acknowledged and are
 * removed; queue files the journal holds are checked and put back.
 * Owns: the spool folders, file names, the record format (queue_rec.h).
 * Never: speaks SMTP or delivers (deliver/ reads what queue_file_open()
 * gives it).
 */
#ifndef MXGATE_QUEUE_H
#define MXGATE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../lib/ids.h"

struct job_pool;
struct queue;
struct queue_msg;

#define QUEUE_RCPT_MAX		100000	/* recipients one file may hold */

/* RFC 3461 DSN parameters as stored (M and N records). */
#define QUEUE_DSN_RET_UNSET	0
#define QUEUE_DSN_RET_FULL	1
#define QUEUE_DSN_RET_HDRS	2
#define QUEUE_NOTIFY_NEVER	0x01u	/* 0 (unset): FAILURE,DELAY */
#define QUEUE_NOTIFY_SUCCESS	0x02u
#define QUEUE_NOTIFY_FAILURE	0x04u
#define QUEUE_NOTIFY_DELAY	0x08u

/* The envelope, known when DATA starts. */
struct queue_env {
	const char	*client;	/* client address text */
	const char	*helo;		/* as given, already escaped/validated */
	const char	*sender;	/* "" for the null sender */
	const char *const *rcpts;	/* "local@domain", canonical */
	size_t		 nrcpts;
	time_t		 arrival;
	bool		 smtputf8;	/* received with SMTPUTF8: record U */
	/* DSN (RFC 3461); all optional */
	int		 dsn_ret;	/* QUEUE_DSN_RET_* */
	const char	*dsn_envid;	/* xtext as received, or NULL */
	const unsigned	*dsn_notify;	/* per rcpt, or NULL */
	const char *const *dsn_orcpt;	/* per rcpt (NULL or ""), or NULL */
	const char	*proof;		/* P record payload (queue_rec.h), or
					 * NULL: nothing proven or checked */
};

typedef void	queue_done_fn(void *arg, uint64_t sid, bool ok,
		    const char *qid);

/* Creates SPOOL/incoming and SPOOL/queue, removes stale incoming files. */
struct queue	*queue_open(const char *spool, struct job_pool *,
		    char *err, size_t errlen);
void		 queue_close(struct queue *);
/* mkdir -p, 0700 for every folder it creates.  0 or -1 (errno set). */
int		 queue_mkdirs(const char *path);
const char	*queue_dir(const struct queue *);	/* SPOOL/queue */

/*
 * Is there room for mail: at least min_free bytes free for unprivileged
 * writers (statvfs f_bavail * f_frsize) on the spool's file system?
 * Cheap enough for every MAIL: the figure is refreshed at most every
 * QUEUE_SPACE_CHECK_MS by whichever thread asks first, the others read
 * it.  A refusal is counted and logged once a minute at most
 * (spool_space state=low), the return of space once (state=ok).  min_free
 * 0: always true.  Thread-safe.
 */
#define QUEUE_SPACE_CHECK_MS	200
#define QUEUE_SPACE_LOG_MS	60000
bool		 queue_space_ok(struct queue *, uint64_t min_free);

/*
 * Start a message; writes the envelope records.  NULL on I/O error (errno
 * set).  The queue id is assigned here and is never reused.
 */
struct queue_msg *queue_msg_new(struct queue *, const struct queue_env *);
const char	*queue_msg_id(const struct queue_msg *);
/* Append body bytes (buffered).  -1 on an I/O error; sticky. */
int		 queue_msg_write(struct queue_msg *, const void *, size_t);
/*
 * Commit: called on the loop of pool (NULL: the queue's own), which
 * writes the file's last bytes and its image into the journal at once;
 * the journal's sync then runs on one of pool's threads for every message
 * that loop committed meanwhile, and done(arg, sid, ok, qid) runs on the
 * loop.  On failure the partial file is already removed.  The message is
 * freed either way.  Only when no job can be queued (out of memory, or
 * the pool is being freed) does done run before queue_msg_commit()
 * returns: the sync is then waited for here.
 */
void		 queue_msg_commit(struct queue_msg *, struct job_pool *,
		    uint64_t sid, queue_done_fn *done, void *arg);
/*
 * Journal syncs run, the batch jobs that waited for them, the messages
 * those covered, and the syncs' microseconds.
 */
void		 queue_sync_stats(struct queue *, uint64_t *syncs,
		    uint64_t *waiters, uint64_t *msgs, uint64_t *us);
/*
 * Messages each batch job's journal sync made durable, as a histogram
 * (obs.h, obs_batch_messages); its counters are read with relaxed loads
 * by any thread.
 */
struct obs_hist;
const struct obs_hist *queue_batch_hist(const struct queue *);
/*
 * What only the end of data knows, written at commit after the body (the
 * F and P records, queue_rec.h): header fields the message is delivered
 * with before its bytes (hdr, hdrlen; 0: none) and the proofs (NULL:
 * none; env->proof must then be NULL).  Copied.  0, or -1 (too long,
 * a bad proof, no memory): nothing kept.
 */
int		 queue_msg_late(struct queue_msg *, const void *hdr,
		    size_t hdrlen, const char *proof);
/* Give up on a message: remove the partial file and free it. */
void		 queue_msg_abort(struct queue_msg *);

/* A committed queue file, read-only (read whole, or mapped if large). */
struct queue_file {
	char		 qid[ID_STRLEN + 1];
	char		*path;
	time_t		 arrival;
	char		*client;
	char		*helo;
	char		*sender;
	char	       **rcpts;
	size_t		 nrcpts;
	bool		 smtputf8;	/* received with SMTPUTF8 (RFC 6531) */
	bool		*done;		/* per recipient: finished for good */
	unsigned	 attempts;	/* delivery attempts so far */
	time_t		 next_attempt;	/* when the next is due; 0: now */
	/* DSN (RFC 3461): unset in files written before it */
	int		 dsn_ret;	/* QUEUE_DSN_RET_* */
	char		*dsn_envid;	/* xtext, or NULL */
	unsigned	*dsn_notify;	/* per rcpt, 0: unset */
	char	       **dsn_orcpt;	/* per rcpt, NULL: none */
	bool		 delay_warned;	/* a W record: warned once already */
	/* proofs about the sender (P record); "" in files without one */
	char		 spf[16];	/* SPF result: "pass", "fail", ... */
	bool		 spf_helo;	/* it was for the HELO identity */
	bool		 auth;		/* came by authenticated submission */
	bool		 batv;		/* MAIL FROM had our valid BATV tag */
	bool		 dkim_aligned;	/* a DKIM pass aligned with MAIL FROM */
	uint8_t		*joined;	/* F then B, when F is there */
	char		*last_error;	/* last delivery error; NULL none */
	time_t		 last_error_time;
	const uint8_t	*body;		/* CRLF lines, dot-unstuffed */
	size_t		 bodylen;
	/* private */
	void		*map;
	size_t		 maplen;
	bool		 mapped;	/* map is mmap(2)ed, else heap */
	int		 fd;
	size_t		 endoff;	/* past the last complete record */
};

/* Open and parse.  -1 (errno set; EINVAL: torn or malformed file). */
int		 queue_file_open(const char *path, struct queue_file *);
void		 queue_file_close(struct queue_file *);
/*
 * Take the file's delivery lock (flock, released at close) without
 * waiting; -1 with EWOULDBLOCK if an admin command holds it, ENOENT if
 * the file was deleted or held since it was opened.
 */
int		 queue_file_lock(struct queue_file *);
/*
 * Record that recipient i is finished (appended; durable after
 * queue_file_sync, which the caller runs once for all its records).
 */
int		 queue_file_mark_done(struct queue_file *, size_t i);
/*
 * Append recipient i's done record without marking it done in memory:
 * a record written ahead, while the message is still being worked on;
 * the caller does not mark it again.
 */
int		 queue_file_write_done(struct queue_file *, size_t i);
bool		 queue_file_all_done(const struct queue_file *);
/* Record the retry schedule (durable after queue_file_sync); last wins. */
int		 queue_file_mark_attempt(struct queue_file *, unsigned attempts,
		    time_t next);
/* Record that a delay warning went out (durable after queue_file_sync). */
int		 queue_file_mark_warned(struct queue_file *);
/* Record the last delivery error (one line, cut at QUEUE_REC_LASTERR_MAX)
 * for `queue list|show`; durable after queue_file_sync; last wins. */
int		 queue_file_mark_error(struct queue_file *, time_t when,
		    const char *text);
/* Make the records appended so far durable (fdatasync).  0 or -1. */
int		 queue_file_sync(struct queue_file *);
/*
 * Remove a finished file from the queue, keeping it for a later message
 * if it may: it is renamed into
 * SPOOL/spare (or unlinked when it is large or enough are kept), which
 * takes it out of the queue as surely as an unlink, and the journal is
 * told (not synced: after a crash it may be delivered again, never
 * lost).  *spare names it; hand it to queue_spare_put once the file is
 * closed.  0, or -1 (errno set).  Thread-safe.
 */
#define QUEUE_NO_SPARE	UINT32_MAX
int		 queue_retire(struct queue *, struct queue_file *,
		    uint32_t *spare);
void		 queue_spare_put(struct queue *, uint32_t spare);
/* Messages written into a reused file since the queue was opened. */
uint64_t	 queue_spare_reused(struct queue *);

/*
 * Call cb for every file in SPOOL/queue whose name is a queue id, oldest
 * id first.  The names are read before the first call, so cb may remove
 * files.  0, or -1 (errno set).
 */
int		 queue_scan(struct queue *,
		    void (*cb)(void *arg, const char *qid), void *arg);
/* SPOOL/queue/QID, malloc'ed; NULL (EINVAL) if qid is not a queue id. */
char		*queue_path(const struct queue *, const char *qid);

#endif
