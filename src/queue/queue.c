/*
 * queue.c - the spool folders and the writing side of a message: records
 * streamed into SPOOL/incoming/QID, committed on a job thread by END,
 * rename into SPOOL/queue and a group commit (STYLE R16).
 * Owns: struct queue, struct queue_msg, file names, the group commit.
 * Never: speaks SMTP, acknowledges anything itself; done(ok) comes only
 * after a sync that started after the message's rename has finished.
 * Untrusted: none here (envelope strings were validated by the caller).
 *
 * Group commit, and why a file per message.  The layout stays one file
 * per message (SPOOL/queue/QID, records appended as delivery goes on):
 * the queue commands, the crash test and an operator's `ls` all read it
 * directly, and delivery never needs a compaction pass.  What changed is
 * how it becomes durable: each committer (one of many job threads)
 * fdatasyncs its own file and renames it, then waits in queue_sync(),
 * where one thread at a time fsyncs the queue folder for everyone who
 * renamed before that fsync began; those who came while it ran share the
 * next one.  The file syncs of concurrent committers are merged by the
 * file system's journal, the folder syncs by us.
 * Measured on the 2-core test machine (ext4, 1 KB messages, file created,
 * written, made durable, renamed, later unlinked): one thread with
 * fsync(file) + fsync(folder) each, 1,200-1,500 messages/s; 16 threads
 * with fdatasync(file) and a shared fsync(folder), 7,800/s (800 folder
 * syncs for 3,200 messages); 16 threads with no file sync and a shared
 * syncfs(2), 11,000/s, but syncfs also writes back everything else dirty
 * on the file system: with a fuzzer writing its corpus on the same file
 * system, three alternating pairs of gateway runs (1 KB, 50 clients) gave
 * 7-25% less with syncfs than with these file syncs, so it was dropped; an append-only log with one fdatasync per batch of 10,
 * 40,000/s, far past the SMTP ceiling here (about 8,000/s), so its speed
 * would buy nothing the protocol can use, at the price of compaction and
 * a second layout.  A failed sync fails its messages (their files are
 * removed, their clients get 4xx).
 * Delivered files are not unlinked but renamed into SPOOL/spare
 * (queue_retire) and written over by later messages (queue_spare_open):
 * no inode is allocated or freed per message.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <pthread.h>
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
#include "queue.h"
#include "queue_rec.h"

#define QUEUE_WBUF_SIZE		65536	/* user-space write buffer */
#define QUEUE_SPARE_MAX		1024	/* files kept for reuse */
#define QUEUE_SPARE_SIZE_MAX	(1024 * 1024)	/* larger ones: unlinked */
#define QUEUE_DIR_MODE		0700
#define QUEUE_FILE_MODE		0600

struct queue {
	char		*spool;
	char		*incoming;	/* SPOOL/incoming */
	char		*qdir;		/* SPOOL/queue */
	int		 qdirfd;	/* kept open for the syncs */
	struct job_pool	*pool;
	/* group commit (queue_sync): guarded by sync_mu */
	pthread_mutex_t	 sync_mu;
	pthread_cond_t	 sync_cv;
	uint64_t	 sync_started;	/* syncs begun so far */
	uint64_t	 sync_done;	/* the last one finished */
	uint64_t	 sync_failed;	/* number of the last failed one */
	int		 sync_errno;	/* and its error */
	bool		 sync_busy;	/* one is running */
	uint64_t	 syncs;		/* stats: syncs run */
	uint64_t	 sync_waiters;	/* stats: calls covered by them */
	uint64_t	 sync_us;	/* stats: time spent in them */
	/* spare files (SPOOL/spare/XXXXXXXX) for reuse, under spare_mu */
	char		*sparedir;
	pthread_mutex_t	 spare_mu;
	uint32_t	 spares[QUEUE_SPARE_MAX];
	size_t		 nspare;	/* ready in spares[] */
	size_t		 spare_held;	/* renamed, not yet put back */
	uint32_t	 spare_next;	/* next name */
	uint64_t	 reused;	/* stats: messages in a spare */
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
	uint64_t	 bodylen;
	/* filled in by queue_msg_commit() */
	uint64_t	 sid;
	queue_done_fn	*done;
	void		*arg;
	int		 ok;
	bool		 reused;	/* a spare file: cut it at commit */
	size_t		 buflen;
	uint8_t		 buf[QUEUE_WBUF_SIZE];
};

static char	*queue_join(const char *, const char *);
static int	 queue_mkdirs(const char *);
static int	 queue_clean_incoming(const char *);
static int	 queue_msg_flush(struct queue_msg *);
static int	 queue_msg_put(struct queue_msg *, const void *, size_t);
static int	 queue_msg_rec(struct queue_msg *, int, const void *, size_t);
static int	 queue_msg_envelope(struct queue_msg *,
		    const struct queue_env *);
static int	 queue_env_check(const struct queue_env *);
static int	 queue_msg_finish(struct queue_msg *);
static void	 queue_msg_free(struct queue_msg *);
static void	 queue_commit_job(void *);
static void	 queue_commit_done(void *);

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
static int
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
	if ((fd = open(inpath, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
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

	*spare = QUEUE_NO_SPARE;
	pthread_mutex_lock(&q->spare_mu);
	if (qf->maplen > QUEUE_SPARE_SIZE_MAX ||
	    q->nspare + q->spare_held >= QUEUE_SPARE_MAX) {
		pthread_mutex_unlock(&q->spare_mu);
		return unlink(qf->path);
	}
	id = q->spare_next++;
	q->spare_held++;
	pthread_mutex_unlock(&q->spare_mu);
	queue_spare_path(q, id, path, sizeof(path));
	if (rename(qf->path, path) == 0) {
		*spare = id;
		return 0;
	}
	pthread_mutex_lock(&q->spare_mu);
	q->spare_held--;
	pthread_mutex_unlock(&q->spare_mu);
	return unlink(qf->path);
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

void
queue_spare_drop(struct queue *q, uint32_t spare)
{
	char	path[PATH_MAX];

	if (spare == QUEUE_NO_SPARE)
		return;
	queue_spare_path(q, spare, path, sizeof(path));
	(void)unlink(path);
	pthread_mutex_lock(&q->spare_mu);
	q->spare_held--;
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

struct queue *
queue_open(const char *spool, struct job_pool *pool, char *err,
    size_t errlen)
{
	struct queue	*q;
	const char	*what = "out of memory";

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "queue: %s", what);
		return NULL;
	}
	q->qdirfd = -1;
	q->pool = pool;
	pthread_mutex_init(&q->sync_mu, NULL);
	pthread_cond_init(&q->sync_cv, NULL);
	pthread_mutex_init(&q->spare_mu, NULL);
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
	if ((mkdir(q->qdir, QUEUE_DIR_MODE) == -1 && errno != EEXIST) ||
	    (q->qdirfd = open(q->qdir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1)
		goto fail;
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
	if (q->qdirfd != -1)
		close(q->qdirfd);
	pthread_mutex_destroy(&q->sync_mu);
	pthread_cond_destroy(&q->sync_cv);
	pthread_mutex_destroy(&q->spare_mu);
	free(q->sparedir);
	free(q->spool);
	free(q->incoming);
	free(q->qdir);
	free(q);
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
	    queue_msg_rec(m, QUEUE_REC_T_SENDER, sender, strlen(sender)) == -1)
		return -1;
	for (i = 0; i < env->nrcpts; i++)
		if (queue_msg_rec(m, QUEUE_REC_T_RCPT, env->rcpts[i],
		    strlen(env->rcpts[i])) == -1)
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
		m->fd = open(m->inpath, O_WRONLY | O_CREAT | O_EXCL |
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

static void
queue_msg_free(struct queue_msg *m)
{
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

/*
 * The group commit: returns once an fsync of the queue folder that began
 * after this call has finished, so every rename into and unlink from it
 * made before the call is on stable storage.  Callers on many threads
 * share syncs: while one runs, every new caller waits for the next one,
 * which the first of them to wake starts for all.  0, or an errno.
 */
int
queue_sync(struct queue *q)
{
	struct timespec	t0, t1;
	uint64_t	need, gen;
	int		rc = 0;

	pthread_mutex_lock(&q->sync_mu);
	need = q->sync_started + 1;
	q->sync_waiters++;
	while (q->sync_done < need) {
		if (q->sync_busy) {
			pthread_cond_wait(&q->sync_cv, &q->sync_mu);
			continue;
		}
		q->sync_busy = true;
		gen = ++q->sync_started;
		pthread_mutex_unlock(&q->sync_mu);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = fsync(q->qdirfd) == -1 ? errno : 0;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_mutex_lock(&q->sync_mu);
		q->sync_us += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
		    (t1.tv_nsec - t0.tv_nsec) / 1000);
		q->sync_busy = false;
		q->sync_done = gen;
		q->syncs++;
		if (rc != 0) {
			q->sync_failed = gen;
			q->sync_errno = rc;
		}
		pthread_cond_broadcast(&q->sync_cv);
	}
	/* the first sync that covers us is number `need`: its result */
	rc = q->sync_failed >= need ? (q->sync_errno ? q->sync_errno : EIO) :
	    0;
	pthread_mutex_unlock(&q->sync_mu);
	return rc;
}

void
queue_sync_stats(struct queue *q, uint64_t *syncs, uint64_t *waiters,
    uint64_t *us)
{
	pthread_mutex_lock(&q->sync_mu);
	*syncs = q->syncs;
	*waiters = q->sync_waiters;
	*us = q->sync_us;
	pthread_mutex_unlock(&q->sync_mu);
}

/*
 * The durable part, on a job thread: flush, patch the body length, END,
 * fdatasync, rename into queue/, then the group commit of the folder.
 * Any step failing means no 250.  A crash before the folder's sync can
 * leave the file in incoming/ (removed at start) or in queue/ whole
 * (delivered, though never acknowledged: the client retries, as after
 * any lost 250).
 */
static int
queue_msg_finish(struct queue_msg *m)
{
	char	hdr[QUEUE_REC_HDRLEN];
	ssize_t	r;
	int	fd;

	if (m->err != 0 || queue_msg_put(m, "\n", 1) == -1 ||
	    queue_msg_rec(m, QUEUE_REC_T_END, "", 0) == -1 ||
	    queue_msg_flush(m) == -1)
		return m->err ? m->err : EIO;
	queue_rec_header(hdr, QUEUE_REC_T_BODY, m->bodylen);
	do {
		r = pwrite(m->fd, hdr + 1, QUEUE_REC_LENDIGITS,
		    (off_t)m->blen_off);
	} while (r == -1 && errno == EINTR);
	if (r != QUEUE_REC_LENDIGITS)
		return r == -1 ? errno : EIO;
	/* a spare file may be longer than this message: cut the rest */
	if (m->reused && ftruncate(m->fd, (off_t)m->off) == -1)
		return errno;
	if (fdatasync(m->fd) == -1)
		return errno;
	fd = m->fd;
	m->fd = -1;
	if (close(fd) == -1)
		return errno;
	if (rename(m->inpath, m->qpath) == -1)
		return errno;
	if ((r = queue_sync(m->q)) != 0) {
		/* not durable, so not acknowledged: it must not be delivered */
		unlink(m->qpath);
		return (int)r;
	}
	return 0;
}

static void
queue_commit_job(void *arg)
{
	struct queue_msg	*m = arg;
	char			 ebuf[128];
	int			 e;

	if ((e = queue_msg_finish(m)) == 0) {
		m->ok = 1;
		return;
	}
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	unlink(m->inpath);
	log_event(LOG_LVL_WARNING, "queue_commit_failed", "qid=%s error=\"%s\"",
	    m->qid, strerror_r(e, ebuf, sizeof(ebuf)));
}

static void
queue_commit_done(void *arg)
{
	struct queue_msg	*m = arg;

	m->done(m->arg, m->sid, m->ok != 0, m->qid);
	queue_msg_free(m);
}

void
queue_msg_commit(struct queue_msg *m, struct job_pool *pool, uint64_t sid,
    queue_done_fn *done, void *arg)
{
	m->sid = sid;
	m->done = done;
	m->arg = arg;
	m->ok = 0;
	if (job_submit(pool != NULL ? pool : m->q->pool, queue_commit_job,
	    queue_commit_done,
	    m) == 0)
		return;
	log_event(LOG_LVL_WARNING, "queue_commit_failed",
	    "qid=%s error=\"cannot queue job\"", m->qid);
	if (m->fd != -1) {
		close(m->fd);
		m->fd = -1;
	}
	unlink(m->inpath);
	queue_commit_done(m);
}
