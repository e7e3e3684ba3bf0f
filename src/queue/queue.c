/*
 * queue.c - the spool folders and the writing side of a message: records
 * streamed into SPOOL/incoming/QID, committed by END, the image into the
 * journal, rename into SPOOL/queue, and the journal's group commit for a
 * batch on a job thread (STYLE R16).
 * Owns: struct queue, struct queue_msg, file names, the commit batches.
 * Never: speaks SMTP, acknowledges anything itself; done(ok) comes only
 * after a journal sync that covers the message's image has finished.
 * Untrusted: none here (envelope strings were validated by the caller).
 *
 * Durability.  The layout stays one file per message (SPOOL/queue/QID,
 * records appended as delivery goes on): the queue commands, the crash
 * test and an operator's `ls` read it directly, and delivery needs no
 * compaction.  What makes a commit durable is the journal (journal.c):
 * the file's image is appended there and one fdatasync of the journal
 * covers every commit that came before it; the file itself is written,
 * renamed into queue/ and never synced while its image is in the
 * journal.  Measured on the 2-core test machine (ext4, 1 KB, 50 clients,
 * relaying to smtp-sink): an fdatasync of every file and a shared fsync
 * of the folder, 2,200-2,600 messages/s at 0.45-0.57 ms of gateway CPU
 * each, most of it the kernel's I/O path; syncfs(2) instead was 7-25%
 * slower with another program writing on the same file system (it writes
 * back everything dirty); no sync at all (measured only as the bound),
 * 4,000-4,700/s; with the journal and one sync job per loop and batch,
 * 4,245/s at 0.23 ms in `make bench`.  A failed sync fails its messages
 * (their files are removed, their clients get 4xx).
 * Delivered files are not unlinked but renamed into SPOOL/spare
 * (queue_retire) and written over by later messages (queue_spare_open):
 * no inode is allocated or freed per message.
 */
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ids.h"
#include "../lib/job.h"
#include "../lib/log.h"
#include "../obs/obs.h"
#include "journal.h"
#include "queue.h"
#include "queue_rec.h"

#define QUEUE_WBUF_SIZE		65536	/* user-space write buffer */
#define QUEUE_SPARE_MAX		1024	/* files kept for reuse */
#define QUEUE_SPARE_SIZE_MAX	(1024 * 1024)	/* larger ones: unlinked */
#define QUEUE_BATCHES_MAX	258	/* one per loop (WORKER_MAX 256) */
#define QUEUE_DIR_MODE		0700
#define QUEUE_FILE_MODE		0600

/* The messages one loop committed that wait for the journal's sync. */
struct queue_batch {
	struct queue		*q;
	struct job_pool		*pool;		/* the loop's commit pool */
	struct queue_msg	*head, *tail;	/* for the next job */
	struct queue_msg	*run;		/* the running job's */
	bool			 busy;		/* a job is out */
};

struct queue {
	char		*spool;
	char		*incoming;	/* SPOOL/incoming */
	char		*qdir;		/* SPOOL/queue */
	struct job_pool	*pool;
	struct journal	*j;		/* what makes a commit durable */
	pthread_mutex_t	 batch_mu;	/* batches[], their lists, synced */
	uint64_t	 synced;	/* stats: messages a sync covered */
	struct obs_hist	 batch_hist;	/* messages per batch job's sync */
	struct queue_batch batches[QUEUE_BATCHES_MAX];
	size_t		 nbatches;
	/* spare files (SPOOL/spare/XXXXXXXX) for reuse, under spare_mu */
	char		*sparedir;
	pthread_mutex_t	 spare_mu;
	uint32_t	 spares[QUEUE_SPARE_MAX];
	size_t		 nspare;	/* ready in spares[] */
	size_t		 spare_held;	/* renamed, not yet put back */
	uint32_t	 spare_next;	/* next name */
	uint64_t	 reused;	/* stats: messages in a spare */
	/* free space (queue_space_ok): the last statvfs and its log */
	pthread_mutex_t	 space_mu;	/* one statvfs at a time */
	_Atomic uint64_t space_free;	/* bytes, as of space_at */
	_Atomic int64_t	 space_at;	/* monotonic ms; 0: never */
	_Atomic int64_t	 space_logged;	/* last state=low line */
	_Atomic uint64_t space_refused;	/* since the last line */
	_Atomic bool	 space_low;	/* a state=low line is out */
};

struct queue_msg {
	struct queue	*q;
	char		 qid[ID_STRLEN + 1];
	char		*inpath;
	char		*qpath;
	int		 fd;
	int		 err;		/* sticky errno; 0 while healthy */
	uint64_t	 off;		/* bytes written plus bytes buffered */
	uint64_t	 blen_off;	/* file offset of B's length digits */
	bool		 flushed;	/* some bytes are in the file already */
	uint64_t	 bodylen;
	/* filled in by queue_msg_commit() */
	struct queue_msg *next;		/* in its batch */
	uint64_t	 pos;		/* its image's end in the journal */
	uint64_t	 sid;
	queue_done_fn	*done;
	void		*arg;
	int		 ok;
	bool		 reused;	/* a spare file: cut it at commit */
	bool		 late_put;	/* its image goes to the journal on
					   the batch job (larger than buf) */
	uint8_t		*late_hdr;	/* the F record (queue_msg_late) */
	size_t		 late_hdrlen;
	char		*late_proof;	/* the P record after B */
	size_t		 buflen;
	uint8_t		 buf[QUEUE_WBUF_SIZE];
};

static char	*queue_join(const char *, const char *);
static int	 queue_clean_incoming(const char *);
static int	 queue_msg_flush(struct queue_msg *);
static int	 queue_msg_put(struct queue_msg *, const void *, size_t);
static int	 queue_msg_rec(struct queue_msg *, int, const void *, size_t);
static int	 queue_msg_envelope(struct queue_msg *,
		    const struct queue_env *);
static int	 queue_env_check(const struct queue_env *);
static void	 queue_msg_free(struct queue_msg *);

static char *
queue_join(const char *dir, const char *name)
{
	size_t	 n = strlen(dir) + 1 + strlen(name) + 1;
	char	*s;

	if ((s = malloc(n)) == NULL)
		return NULL;
	snprintf(s, n, "%s/%s", dir, name);
	return s;
}

/* mkdir -p with QUEUE_DIR_MODE for every folder it creates. */
int
queue_mkdirs(const char *path)
{
	char	*p, *s;
	int	 rc = 0;

	if (path[0] == '\0') {
		errno = ENOENT;
		return -1;
	}
	if ((p = strdup(path)) == NULL)
		return -1;
	for (s = p + 1; rc == 0; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		if (s[-1] != '/') {
			char	c = *s;

			*s = '\0';
			if (mkdir(p, QUEUE_DIR_MODE) == -1 && errno != EEXIST)
				rc = -1;
			*s = c;
		}
		if (*s == '\0')
			break;
	}
	free(p);
	return rc;
}

/* Files left in incoming/ were never acknowledged: drop them. */
static int
queue_clean_incoming(const char *incoming)
{
	struct dirent	*de;
	DIR		*d;

	if ((d = opendir(incoming)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1) {
			log_event(LOG_LVL_WARNING, "spool_cleanup",
			    "dir=%s file=%s error=\"%s\"",
			    log_esc(incoming, strlen(incoming), 256),
			    log_esc(de->d_name, strlen(de->d_name), 256),
			    strerror(errno));
			continue;
		}
		log_event(LOG_LVL_INFO, "spool_cleanup",
		    "dir=%s file=%s reason=never_acknowledged",
		    log_esc(incoming, strlen(incoming), 256),
		    log_esc(de->d_name, strlen(de->d_name), 256));
	}
	closedir(d);
	return 0;
}

/* Spare files hold old messages' bytes and no message: empty the folder. */
static int
queue_clean_spare(const char *dir)
{
	struct dirent	*de;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return 0;
}

static void
queue_spare_path(const struct queue *q, uint32_t id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%08" PRIx32, q->sparedir, id);
}

/*
 * Reuse a spare file for a new message: renamed into incoming/ and
 * written from its start, so the file system allocates no inode (and, up
 * to the old size, no block).  Creating and deleting thousands of files
 * a second is where the kernel spent most of the gateway's CPU (inode
 * allocation), more than in the writes.  -1 when there is none.
 */
static int
queue_spare_open(struct queue *q, const char *inpath)
{
	char		path[PATH_MAX];
	uint32_t	id;
	int		fd;

	pthread_mutex_lock(&q->spare_mu);
	if (q->nspare == 0) {
		pthread_mutex_unlock(&q->spare_mu);
		return -1;
	}
	id = q->spares[--q->nspare];
	pthread_mutex_unlock(&q->spare_mu);
	queue_spare_path(q, id, path, sizeof(path));
	if (rename(path, inpath) == -1) {
		(void)unlink(path);
		return -1;
	}
	if ((fd = open(inpath, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		(void)unlink(inpath);
		return -1;
	}
	pthread_mutex_lock(&q->spare_mu);
	q->reused++;
	pthread_mutex_unlock(&q->spare_mu);
	return fd;
}

int
queue_retire(struct queue *q, struct queue_file *qf, uint32_t *spare)
{
	char		path[PATH_MAX];
	uint32_t	id;
	int		rc;

	*spare = QUEUE_NO_SPARE;
	pthread_mutex_lock(&q->spare_mu);
	if (qf->maplen > QUEUE_SPARE_SIZE_MAX ||
	    q->nspare + q->spare_held >= QUEUE_SPARE_MAX) {
		pthread_mutex_unlock(&q->spare_mu);
		rc = unlink(qf->path);
		goto out;
	}
	id = q->spare_next++;
	q->spare_held++;
	pthread_mutex_unlock(&q->spare_mu);
	queue_spare_path(q, id, path, sizeof(path));
	if ((rc = rename(qf->path, path)) == 0) {
		*spare = id;
		goto out;
	}
	pthread_mutex_lock(&q->spare_mu);
	q->spare_held--;
	pthread_mutex_unlock(&q->spare_mu);
	rc = unlink(qf->path);
out:
	/* recovery must not bring it back */
	if (rc == 0)
		journal_gone(q->j, qf->qid);
	return rc;
}

void
queue_spare_put(struct queue *q, uint32_t spare)
{
	if (spare == QUEUE_NO_SPARE)
		return;
	pthread_mutex_lock(&q->spare_mu);
	q->spare_held--;
	q->spares[q->nspare++] = spare;	/* held counted it: room is there */
	pthread_mutex_unlock(&q->spare_mu);
}

uint64_t
queue_spare_reused(struct queue *q)
{
	uint64_t	n;

	pthread_mutex_lock(&q->spare_mu);
	n = q->reused;
	pthread_mutex_unlock(&q->spare_mu);
	return n;
}

/* For recovery: the records appended after the image must parse too. */
static bool
queue_file_whole(const uint8_t *p, size_t len)
{
	struct queue_rec_file	f;

	return queue_rec_parse_file(p, len, &f) == PARSE_OK;
}

struct queue *
queue_open(const char *spool, struct job_pool *pool, char *err,
    size_t errlen)
{
	struct queue	*q;
	struct journal_recovery rec;
	const char	*what = "out of memory";

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "queue: %s", what);
		return NULL;
	}
	q->pool = pool;
	pthread_mutex_init(&q->space_mu, NULL);
	pthread_mutex_init(&q->spare_mu, NULL);
	pthread_mutex_init(&q->batch_mu, NULL);
	if ((q->spool = strdup(spool)) == NULL ||
	    (q->incoming = queue_join(spool, "incoming")) == NULL ||
	    (q->qdir = queue_join(spool, "queue")) == NULL ||
	    (q->sparedir = queue_join(spool, "spare")) == NULL)
		goto fail;
	errno = 0;
	what = q->spool;
	if (queue_mkdirs(q->spool) == -1)
		goto fail;
	what = q->incoming;
	if (mkdir(q->incoming, QUEUE_DIR_MODE) == -1 && errno != EEXIST)
		goto fail;
	if (queue_clean_incoming(q->incoming) == -1)
		goto fail;
	what = q->sparedir;
	if ((mkdir(q->sparedir, QUEUE_DIR_MODE) == -1 && errno != EEXIST) ||
	    queue_clean_spare(q->sparedir) == -1)
		goto fail;
	what = q->qdir;
	if (mkdir(q->qdir, QUEUE_DIR_MODE) == -1 && errno != EEXIST)
		goto fail;
	/* recovery: puts back what the journal holds and queue/ lacks */
	if ((q->j = journal_open(spool, queue_file_whole, &rec, err,
	    errlen)) == NULL) {
		queue_close(q);
		return NULL;
	}
	if (rec.segments > 0)
		log_event(rec.restored ? LOG_LVL_WARNING : LOG_LVL_INFO,
		    "journal", "segments=%" PRIu64 " images=%" PRIu64
		    " kept=%" PRIu64 " restored=%" PRIu64 " deleted=%" PRIu64
		    " torn=%" PRIu64, rec.segments, rec.images, rec.kept,
		    rec.restored, rec.skipped, rec.torn);
	return q;
fail:
	snprintf(err, errlen, "queue: %s%s%s", what, errno ? ": " : "",
	    errno ? strerror(errno) : "");
	queue_close(q);
	return NULL;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	journal_close(q->j);
	pthread_mutex_destroy(&q->batch_mu);
	pthread_mutex_destroy(&q->spare_mu);
	pthread_mutex_destroy(&q->space_mu);
	free(q->sparedir);
	free(q->spool);
	free(q->incoming);
	free(q->qdir);
	free(q);
}

/* ---- free space ---- */

static int64_t
queue_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One statvfs, by one thread, when the last is older than the period. */
static void
queue_space_refresh(struct queue *q, int64_t now)
{
	struct statvfs	sv;
	char		ebuf[128];

	if (now - atomic_load(&q->space_at) < QUEUE_SPACE_CHECK_MS ||
	    pthread_mutex_trylock(&q->space_mu) != 0)
		return;		/* fresh, or another thread is at it */
	if (now - atomic_load(&q->space_at) >= QUEUE_SPACE_CHECK_MS) {
		if (statvfs(q->spool, &sv) == 0)
			atomic_store(&q->space_free,
			    (uint64_t)sv.f_bavail * sv.f_frsize);
		else {
			/* unknown is not full: a failing write still gets
			 * 451 4.3.0, never a 250 */
			if (atomic_load(&q->space_free) != UINT64_MAX)
				log_event(LOG_LVL_WARNING, "spool_space",
				    "msg=\"statvfs %s: %s\"",
				    log_text(q->spool, strlen(q->spool), 200),
				    strerror_r(errno, ebuf, sizeof(ebuf)));
			atomic_store(&q->space_free, UINT64_MAX);
		}
		atomic_store(&q->space_at, now);
	}
	pthread_mutex_unlock(&q->space_mu);
}

bool
queue_space_ok(struct queue *q, uint64_t min_free)
{
	int64_t		now, last;
	uint64_t	avail;

	if (min_free == 0)
		return true;
	now = queue_now_ms();
	queue_space_refresh(q, now);
	/* never measured yet (another loop holds the first statvfs):
	 * unknown is not full */
	if (atomic_load(&q->space_at) == 0)
		return true;
	avail = atomic_load(&q->space_free);
	if (avail >= min_free) {
		if (atomic_load(&q->space_low) &&
		    atomic_exchange(&q->space_low, false))
			log_event(LOG_LVL_INFO, "spool_space", "state=ok "
			    "free=%" PRIu64 " min_free=%" PRIu64 " refused=%"
			    PRIu64, avail, min_free,
			    atomic_exchange(&q->space_refused, 0));
		return true;
	}
	atomic_fetch_add(&q->space_refused, 1);
	last = atomic_load(&q->space_logged);
	if ((last == 0 || now - last >= QUEUE_SPACE_LOG_MS) &&
	    atomic_compare_exchange_strong(&q->space_logged, &last, now)) {
		atomic_store(&q->space_low, true);
		log_event(LOG_LVL_WARNING, "spool_space", "state=low "
		    "free=%" PRIu64 " min_free=%" PRIu64 " refused=%" PRIu64
		    " msg=\"452 4.3.1 to new mail until space returns\"",
		    avail, min_free, atomic_exchange(&q->space_refused, 0));
	}
	return false;
}

const char *
queue_dir(const struct queue *q)
{
	return q->qdir;
}

char *
queue_path(const struct queue *q, const char *qid)
{
	uint64_t	v;

	/* a qid may come from an operator's command: never a path */
	if (qid == NULL || id_parse(qid, &v) == -1) {
		errno = EINVAL;
		return NULL;
	}
	return queue_join(q->qdir, qid);
}

static int
queue_scan_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ID_STRLEN);
}

int
queue_scan(struct queue *q, void (*cb)(void *arg, const char *qid),
    void *arg)
{
	char		(*ids)[ID_STRLEN + 1] = NULL, (*tmp)[ID_STRLEN + 1];
	size_t		 n = 0, cap = 0, i;
	struct dirent	*de;
	uint64_t	 v;
	DIR		*d;
	int		 saved;

	if ((d = opendir(q->qdir)) == NULL)
		return -1;
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if ((de->d_type != DT_REG && de->d_type != DT_UNKNOWN) ||
		    id_parse(de->d_name, &v) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = reallocarray(ids, cap, sizeof(*ids));
			if (tmp == NULL)
				break;
			ids = tmp;
		}
		memcpy(ids[n++], de->d_name, ID_STRLEN + 1);
	}
	saved = errno;
	closedir(d);
	if (saved != 0) {
		free(ids);
		errno = saved;
		return -1;
	}
	/* fixed-width uppercase hex: byte order is id order is age order */
	if (n > 0)
		qsort(ids, n, sizeof(*ids), queue_scan_cmp);
	for (i = 0; i < n; i++)
		cb(arg, ids[i]);
	free(ids);
	return 0;
}

static int
queue_msg_flush(struct queue_msg *m)
{
	size_t	done = 0;
	ssize_t	r;

	while (done < m->buflen) {
		r = write(m->fd, m->buf + done, m->buflen - done);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			m->err = errno;
			return -1;
		}
		done += (size_t)r;
	}
	if (m->buflen > 0)
		m->flushed = true;
	m->buflen = 0;
	return 0;
}

static int
queue_msg_put(struct queue_msg *m, const void *vp, size_t len)
{
	const uint8_t	*p = vp;
	size_t		 n;

	while (len > 0) {
		if (m->err != 0) {
			errno = m->err;
			return -1;
		}
		n = sizeof(m->buf) - m->buflen;
		if (n > len)
			n = len;
		memcpy(m->buf + m->buflen, p, n);
		m->buflen += n;
		m->off += n;
		p += n;
		len -= n;
		if (m->buflen == sizeof(m->buf) && queue_msg_flush(m) == -1)
			return -1;
	}
	return 0;
}

static int
queue_msg_rec(struct queue_msg *m, int type, const void *p, size_t len)
{
	char	hdr[QUEUE_REC_HDRLEN];

	queue_rec_header(hdr, type, len);
	if (queue_msg_put(m, hdr, sizeof(hdr)) == -1 ||
	    queue_msg_put(m, p, len) == -1 ||
	    queue_msg_put(m, "\n", 1) == -1)
		return -1;
	return 0;
}

static int
queue_env_check(const struct queue_env *env)
{
	size_t	i;

	if (env->nrcpts == 0 || env->nrcpts > QUEUE_RCPT_MAX ||
	    env->rcpts == NULL || env->arrival < 0 ||
	    (env->client && strlen(env->client) > QUEUE_REC_META_MAX) ||
	    (env->helo && strlen(env->helo) > QUEUE_REC_META_MAX) ||
	    (env->sender && strlen(env->sender) > QUEUE_REC_META_MAX))
		return -1;
	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i] == NULL || env->rcpts[i][0] == '\0' ||
		    strlen(env->rcpts[i]) > QUEUE_REC_META_MAX)
			return -1;
	return 0;
}

/*
 * The DSN records (RFC 3461), only when a parameter was given: M after
 * S, N after its R.  Their payloads were validated by the SMTP parser;
 * lengths are checked again here.
 */
static int
queue_msg_dsn_msg(struct queue_msg *m, const struct queue_env *env)
{
	char	p[8 + QUEUE_REC_DSN_ENVID_MAX];
	int	n;

	if (env->dsn_ret == QUEUE_DSN_RET_UNSET && env->dsn_envid == NULL)
		return 0;
	n = snprintf(p, sizeof(p), "%s %s",
	    env->dsn_ret == QUEUE_DSN_RET_FULL ? "FULL" :
	    env->dsn_ret == QUEUE_DSN_RET_HDRS ? "HDRS" : "-",
	    env->dsn_envid ? env->dsn_envid : "");
	if (n < 0 || (size_t)n >= sizeof(p))
		return -1;
	return queue_msg_rec(m, QUEUE_REC_T_DSN_MSG, p, (size_t)n);
}

static int
queue_msg_dsn_rcpt(struct queue_msg *m, const struct queue_env *env,
    size_t i)
{
	const char	*o = env->dsn_orcpt ? env->dsn_orcpt[i] : NULL;
	unsigned	 notify = env->dsn_notify ? env->dsn_notify[i] : 0;
	char		 p[4 + QUEUE_REC_DSN_ORCPT_MAX];
	int		 n;

	if (o != NULL && o[0] == '\0')
		o = NULL;
	if (notify == 0 && o == NULL)
		return 0;
	n = snprintf(p, sizeof(p), "%x%s%s", notify & 0xf, o ? " " : "",
	    o ? o : "");
	if (n < 0 || (size_t)n >= sizeof(p))
		return -1;
	return queue_msg_rec(m, QUEUE_REC_T_DSN_RCPT, p, (size_t)n);
}

static int
queue_msg_envelope(struct queue_msg *m, const struct queue_env *env)
{
	const char	*client = env->client ? env->client : "";
	const char	*helo = env->helo ? env->helo : "";
	const char	*sender = env->sender ? env->sender : "";
	char		 t[32], hdr[QUEUE_REC_HDRLEN];
	size_t		 i;
	int		 n;

	n = snprintf(t, sizeof(t), "%" PRIdMAX, (intmax_t)env->arrival);
	if (queue_msg_rec(m, QUEUE_REC_T_VERSION, QUEUE_REC_VERSION,
	    sizeof(QUEUE_REC_VERSION) - 1) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_ID, m->qid, ID_STRLEN) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_TIME, t, (size_t)n) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_CLIENT, client,
	    strlen(client)) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_HELO, helo, strlen(helo)) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_SENDER, sender, strlen(sender)) == -1 ||
	    queue_msg_dsn_msg(m, env) == -1 ||	/* M right after S */
	    (env->smtputf8 &&
	    queue_msg_rec(m, QUEUE_REC_T_SMTPUTF8, "", 0) == -1) ||
	    (env->proof != NULL && (!queue_rec_proof_valid((const uint8_t *)
	    env->proof, strlen(env->proof)) || queue_msg_rec(m,
	    QUEUE_REC_T_PROOF, env->proof, strlen(env->proof)) == -1)))
		return -1;
	for (i = 0; i < env->nrcpts; i++)
		if (queue_msg_rec(m, QUEUE_REC_T_RCPT, env->rcpts[i],
		    strlen(env->rcpts[i])) == -1 ||
		    queue_msg_dsn_rcpt(m, env, i) == -1)
			return -1;
	/*
	 * The body length is patched in at commit.  Until then it reads as
	 * all f's, over QUEUE_REC_BODY_MAX: a torn file can never pass.
	 */
	queue_rec_header(hdr, QUEUE_REC_T_BODY, UINT64_MAX);
	m->blen_off = m->off + 1;
	return queue_msg_put(m, hdr, sizeof(hdr));
}

struct queue_msg *
queue_msg_new(struct queue *q, const struct queue_env *env)
{
	struct queue_msg	*m;
	int			 saved;

	if (queue_env_check(env) == -1) {
		errno = EINVAL;
		return NULL;
	}
	/* the 64 KB write buffer is not zeroed: only buflen bytes are read */
	if ((m = malloc(sizeof(*m))) == NULL)
		return NULL;
	memset(m, 0, offsetof(struct queue_msg, buf));
	m->q = q;
	m->fd = -1;
	id_format(id_next(), m->qid);
	if ((m->inpath = queue_join(q->incoming, m->qid)) == NULL ||
	    (m->qpath = queue_join(q->qdir, m->qid)) == NULL) {
		queue_msg_free(m);
		errno = ENOMEM;
		return NULL;
	}
	if ((m->fd = queue_spare_open(q, m->inpath)) != -1)
		m->reused = true;
	else
		m->fd = open(m->inpath, O_RDWR | O_CREAT | O_EXCL |
		    O_CLOEXEC, QUEUE_FILE_MODE);
	if (m->fd == -1) {
		saved = errno;
		queue_msg_free(m);
		errno = saved;
		return NULL;
	}
	if (queue_msg_envelope(m, env) == -1) {
		saved = errno;
		queue_msg_abort(m);
		errno = saved;
		return NULL;
	}
	return m;
}

const char *
queue_msg_id(const struct queue_msg *m)
{
	return m->qid;
}

int
queue_msg_write(struct queue_msg *m, const void *p, size_t len)
{
	if (m->err == 0 && len > QUEUE_REC_BODY_MAX - m->bodylen)
		m->err = EFBIG;
	if (m->err != 0) {
		errno = m->err;
		return -1;
	}
	m->bodylen += len;
	return queue_msg_put(m, p, len);
}

int
queue_msg_late(struct queue_msg *m, const void *hdr, size_t hdrlen,
    const char *proof)
{
	if (hdrlen > QUEUE_REC_PREFIX_MAX || (hdrlen > 0 &&
	    ((const uint8_t *)hdr)[hdrlen - 1] != '\n') || (proof != NULL &&
	    !queue_rec_proof_valid((const uint8_t *)proof, strlen(proof))))
		return -1;
	free(m->late_hdr);
	free(m->late_proof);
	m->late_hdr = NULL;
	m->late_proof = NULL;
	m->late_hdrlen = 0;
	if ((hdrlen > 0 && (m->late_hdr = malloc(hdrlen)) == NULL) ||
	    (proof != NULL && (m->late_proof = strdup(proof)) == NULL))
		return -1;
	if (hdrlen > 0)
		memcpy(m->late_hdr, hdr, hdrlen);
	m->late_hdrlen = hdrlen;
	return 0;
}

static void
queue_msg_free(struct queue_msg *m)
{
	free(m->late_hdr);
	free(m->late_proof);
	if (m->fd != -1)
		close(m->fd);
	free(m->inpath);
	free(m->qpath);
	free(m);
}

void
queue_msg_abort(struct queue_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	unlink(m->inpath);
	queue_msg_free(m);
}

const struct obs_hist *
queue_batch_hist(const struct queue *q)
{
	return &q->batch_hist;
}

void
queue_sync_stats(struct queue *q, uint64_t *syncs, uint64_t *waiters,
    uint64_t *msgs, uint64_t *us)
{
	struct journal_stats	st;

	journal_stats(q->j, &st);
	*syncs = st.syncs;
	*waiters = st.sync_calls;
	*us = st.sync_us;
	pthread_mutex_lock(&q->batch_mu);
	*msgs = q->synced;
	pthread_mutex_unlock(&q->batch_mu);
}

/*
 * The file part of a commit, on the loop: flush, patch the body length,
 * END, the image into the journal, rename into queue/.  All of it goes
 * to the page cache; only the journal's sync waits for the disk, and that
 * runs on a job thread for a whole batch (queue_batch_job).  0 or an
 * errno; a crash before the journal's sync can leave the file in
 * incoming/ (removed at start) or in queue/ (delivered, though never
 * acknowledged: the client retries, as after any lost 250).
 */
static int
queue_msg_prepare(struct queue_msg *m)
{
	char		hdr[QUEUE_REC_HDRLEN];
	ssize_t		r;
	int		fd, e;
	bool		inbuf;

	if (m->err != 0 || queue_msg_put(m, "\n", 1) == -1 ||
	    (m->late_hdrlen > 0 && queue_msg_rec(m, QUEUE_REC_T_PREFIX,
	    m->late_hdr, m->late_hdrlen) == -1) ||
	    (m->late_proof != NULL && queue_msg_rec(m, QUEUE_REC_T_PROOF,
	    m->late_proof, strlen(m->late_proof)) == -1) ||
	    queue_msg_rec(m, QUEUE_REC_T_END, "", 0) == -1)
		return m->err ? m->err : EIO;
	queue_rec_header(hdr, QUEUE_REC_T_BODY, m->bodylen);
	/* most messages are still whole in the buffer: patch them there */
	if ((inbuf = !m->flushed))
		memcpy(m->buf + m->blen_off, hdr + 1, QUEUE_REC_LENDIGITS);
	if (queue_msg_flush(m) == -1)
		return m->err ? m->err : EIO;
	if (!inbuf) {
		do {
			r = pwrite(m->fd, hdr + 1, QUEUE_REC_LENDIGITS,
			    (off_t)m->blen_off);
		} while (r == -1 && errno == EINTR);
		if (r != QUEUE_REC_LENDIGITS)
			return r == -1 ? errno : EIO;
	}
	/* a spare file may be longer than this message: cut the rest */
	if (m->reused && ftruncate(m->fd, (off_t)m->off) == -1)
		return errno;
	/*
	 * A message larger than the buffer is read back from its file for
	 * the journal: that is the batch job's work, off the loop (a 25 MB
	 * message is two 25 MB passes).  The file stays open until then.
	 */
	if (!inbuf) {
		m->late_put = true;
		return rename(m->inpath, m->qpath) == -1 ? errno : 0;
	}
	if ((e = journal_put(m->q->j, m->qid, m->buf, -1, m->off,
	    &m->pos)) != 0)
		return e;
	fd = m->fd;
	m->fd = -1;
	if (close(fd) == -1 || rename(m->inpath, m->qpath) == -1) {
		e = errno;
		journal_gone(m->q->j, m->qid);
		return e;
	}
	return 0;
}

/* On the batch job: the image of a large message, then its file closed. */
static int
queue_msg_late_put(struct queue_msg *m)
{
	int	e, fd = m->fd;

	m->late_put = false;
	m->fd = -1;
	e = journal_put(m->q->j, m->qid, NULL, fd, m->off, &m->pos);
	if (close(fd) == -1 && e == 0) {
		e = errno;
		journal_gone(m->q->j, m->qid);
	}
	return e;
}

static void
queue_msg_failed(struct queue_msg *m, int e)
{
	char	ebuf[128];

	m->ok = 0;
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	unlink(m->inpath);
	log_event(LOG_LVL_WARNING, "queue_commit_failed", "qid=%s error=\"%s\"",
	    m->qid, strerror_r(e, ebuf, sizeof(ebuf)));
}

/*
 * One job per loop at a time waits for the journal's sync on behalf of
 * every message that loop committed meanwhile: one hand-off to a job
 * thread and back per batch, not per message (measured before: 9
 * context switches per relayed message, 4 of them for the commit).
 */
static struct queue_batch *
queue_batch_get(struct queue *q, struct job_pool *pool)
{
	struct queue_batch	*b = NULL;
	size_t			 i;

	pthread_mutex_lock(&q->batch_mu);
	for (i = 0; i < q->nbatches; i++)
		if (q->batches[i].pool == pool)
			b = &q->batches[i];
	if (b == NULL) {
		/* one commit pool per loop, and loops are at most WORKER_MAX */
		if (q->nbatches == QUEUE_BATCHES_MAX)
			panic("queue: more commit pools than %d",
			    QUEUE_BATCHES_MAX);
		b = &q->batches[q->nbatches++];
		b->q = q;
		b->pool = pool;
	}
	pthread_mutex_unlock(&q->batch_mu);
	return b;
}

/* On a job thread: one sync for the batch. */
static void
queue_batch_job(void *arg)
{
	struct queue_batch	*b = arg;
	struct queue_msg	*m;
	uint64_t		 pos = 0, n = 0;
	int			 e = 0;

	pthread_mutex_lock(&b->q->batch_mu);
	b->run = b->head;
	b->head = b->tail = NULL;
	pthread_mutex_unlock(&b->q->batch_mu);
	for (m = b->run; m != NULL; m = m->next)
		if (m->ok && m->late_put && (e = queue_msg_late_put(m)) != 0) {
			unlink(m->qpath);
			queue_msg_failed(m, e);
			e = 0;
		}
	for (m = b->run; m != NULL; m = m->next)
		if (m->ok) {
			pos = m->pos > pos ? m->pos : pos;
			n++;
		}
	if (pos > 0)
		e = journal_sync(b->q->j, pos);
	pthread_mutex_lock(&b->q->batch_mu);
	b->q->synced += n;
	if (pos > 0)		/* one writer at a time: under batch_mu */
		obs_hist_note(&b->q->batch_hist, &obs_batch_messages, n);
	pthread_mutex_unlock(&b->q->batch_mu);
	for (m = b->run; m != NULL; m = m->next) {
		if (!m->ok || e == 0)
			continue;
		/* not durable, so not acknowledged: it must not be delivered */
		unlink(m->qpath);
		journal_gone(b->q->j, m->qid);
		queue_msg_failed(m, e);
	}
}

/* On the loop: the batch's answers; true if more wait for a job. */
static bool
queue_batch_finish(struct queue_batch *b)
{
	struct queue_msg	*m, *next;
	bool			 more;

	for (m = b->run, b->run = NULL; m != NULL; m = next) {
		next = m->next;
		m->done(m->arg, m->sid, m->ok != 0, m->qid);
		queue_msg_free(m);
	}
	pthread_mutex_lock(&b->q->batch_mu);
	if (!(more = b->head != NULL))
		b->busy = false;
	pthread_mutex_unlock(&b->q->batch_mu);
	return more;
}

static void	queue_batch_done(void *);

/* Send the batch to a job; when none can be queued, do it here. */
static void
queue_batch_kick(struct queue_batch *b)
{
	while (job_submit(b->pool, queue_batch_job, queue_batch_done,
	    b) == -1) {
		queue_batch_job(b);
		if (!queue_batch_finish(b))
			return;
	}
}

static void
queue_batch_done(void *arg)
{
	struct queue_batch	*b = arg;

	if (queue_batch_finish(b))
		queue_batch_kick(b);
}

void
queue_msg_commit(struct queue_msg *m, struct job_pool *pool, uint64_t sid,
    queue_done_fn *done, void *arg)
{
	struct queue_batch	*b;
	bool			 kick;
	int			 e;

	m->sid = sid;
	m->done = done;
	m->arg = arg;
	m->next = NULL;
	if ((e = queue_msg_prepare(m)) == 0)
		m->ok = 1;
	else
		queue_msg_failed(m, e);
	b = queue_batch_get(m->q, pool != NULL ? pool : m->q->pool);
	pthread_mutex_lock(&m->q->batch_mu);
	*(b->head != NULL ? &b->tail->next : &b->head) = m;
	b->tail = m;
	if ((kick = !b->busy))
		b->busy = true;
	pthread_mutex_unlock(&m->q->batch_mu);
	if (kick)
		queue_batch_kick(b);
}
