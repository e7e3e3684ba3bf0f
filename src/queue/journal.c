/*
 * journal.c - the spool's write-ahead journal (see journal.h).
 *
 * Why a journal.  A file per message made durable on its own costs, per
 * message, an fdatasync of the file (data, inode and a cache flush: three
 * device requests) and a share of an fsync of the queue folder, and
 * another folder sync when the file is removed.  On the 2-core test
 * machine (ext4, 1 KB messages, 50 clients, relaying to smtp-sink) that
 * held the gateway near 2,200-2,600 messages/s with 0.45-0.57 ms of CPU
 * each, most of it in the kernel's I/O path; with every sync left out
 * (not durable, measured only to know the bound) it took 4,000-4,700/s at
 * 0.24-0.27 ms.  Here a commit appends the file's image to one segment,
 * and one fdatasync of the segment covers every commit that came before
 * it: the queue files stay one per message, written but never synced
 * while the journal holds their image.
 *
 * Layout: SPOOL/journal/NNNNNNNNNNNNNNNN.seg, append-only, entries of a
 * 40-byte header ("MXJ1", type, queue id, length, CRC-32 of header and
 * image) and the image.  M: a committed queue file's bytes up to END.
 * G: that message has left the queue (delivered or bounced; not synced:
 * a lost G only means the message may be delivered again after a crash).
 * A failed append (a full disk) is cut off again at once (jtail_cut),
 * so that no half entry is left for a later one to half cover.
 * A segment is rotated at JOURNAL_SEG_MAX; an old segment is removed
 * once none of its messages is left (after an fsync of the queue folder,
 * so no removed queue file comes back), and when more than
 * JOURNAL_SEGS_KEEP are on disk the oldest is checkpointed: its remaining
 * queue files are fdatasynced with their folder and it is dropped.
 *
 * Recovery (journal_open): the images not followed by a G are compared
 * with SPOOL/queue/QID; a missing or different file is written back from
 * the image.  Then the queue files are synced (syncfs: once, at start)
 * and the old segments removed.  Records a delivery appended to a queue
 * file after its image (done recipients, attempts) are kept when the
 * file's first bytes are the image; a file written back has lost them,
 * and its recipients may get the message twice: at least once, never
 * lost.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../lib/fsync_dir.h"
#include "../lib/log.h"
#include "journal.h"

#define JOURNAL_SEG_MAX		(16u * 1024 * 1024)	/* rotate past this */
#define JOURNAL_SEGS_KEEP	4	/* more: checkpoint the oldest */
#define JOURNAL_CHUNK		65536
#define JOURNAL_DIR_MODE	0700
#define JOURNAL_FILE_MODE	0600
#define JOURNAL_MAGIC		"MXJ1"

struct jseg {
	uint64_t	no;
	uint64_t	live;		/* images not yet gone */
};

/* qid -> segment, open addressing (ids are never 0) */
struct jmap_ent {
	uint64_t	id;
	uint64_t	seg;
};

struct journal {
	char		*dir;		/* SPOOL/journal */
	char		*qdir;		/* SPOOL/queue */
	char		*incoming;	/* SPOOL/incoming */
	int		 dirfd, qdirfd;
	journal_check_fn *check;	/* recovery: is a queue file whole */
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	/* the current segment, written under mu */
	int		 fd;
	uint64_t	 segno;
	uint64_t	 off;		/* its size */
	uint64_t	 written;	/* bytes ever appended (positions) */
	/* group commit, under mu */
	uint64_t	 synced;	/* positions up to here are durable */
	uint64_t	 fail_from, fail_to;	/* (from, to]: a failed sync */
	int		 fail_errno;
	bool		 busy;		/* a sync is running */
	bool		 tail_dirty;	/* bytes of a failed write past off */
	bool		 ckpt_busy;	/* a checkpoint is running */
	/* segments on disk, oldest first; the last is the current one */
	struct jseg	*segs;
	size_t		 nsegs, segcap;
	struct jmap_ent	*map;
	size_t		 mapcap, maplen;	/* power of two; in use */
	struct journal_stats st;
};

static int	 jmap_put(struct journal *, uint64_t id, uint64_t seg);
static bool	 jmap_del(struct journal *, uint64_t id, uint64_t *seg);
static struct jseg *jseg_find(struct journal *, uint64_t no);

/* ---- entries ---- */

uint32_t
journal_crc(uint32_t crc, const void *p, size_t len)
{
	const Bytef	*b = p;
	uLong		 c = crc;

	while (len > 0) {
		uInt	n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, b, n);
		b += n;
		len -= n;
	}
	return (uint32_t)c;
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t	v = 0;
	int		i;

	for (i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void
journal_header(uint8_t hdr[JOURNAL_HDRLEN], int type, const char *qid,
    uint64_t len, uint32_t crc)
{
	memset(hdr, 0, JOURNAL_HDRLEN);
	memcpy(hdr, JOURNAL_MAGIC, 4);
	hdr[4] = (uint8_t)type;
	memcpy(hdr + 8, qid, ID_STRLEN);
	put_le(hdr + 24, len, 8);
	put_le(hdr + 32, crc, 4);
}

int
journal_parse(const uint8_t *p, size_t n, size_t *off, struct journal_ent *e)
{
	const uint8_t	*h;
	uint64_t	 len, id;
	uint32_t	 crc;
	size_t		 i;

	if (*off > n || n - *off < JOURNAL_HDRLEN)
		return 0;
	h = p + *off;
	if (memcmp(h, JOURNAL_MAGIC, 4) != 0 ||
	    (h[4] != JOURNAL_T_MSG && h[4] != JOURNAL_T_GONE) ||
	    h[5] != 0 || h[6] != 0 || h[7] != 0 ||
	    h[36] != 0 || h[37] != 0 || h[38] != 0 || h[39] != 0)
		return 0;
	for (i = 0; i < ID_STRLEN; i++)
		e->qid[i] = (char)h[8 + i];
	e->qid[ID_STRLEN] = '\0';
	if (id_parse(e->qid, &id) == -1)
		return 0;
	len = get_le(h + 24, 8);
	if (len > JOURNAL_LEN_MAX || len > n - *off - JOURNAL_HDRLEN ||
	    (h[4] == JOURNAL_T_GONE && len != 0))
		return 0;
	crc = journal_crc(0, h, 32);
	crc = journal_crc(crc, h + JOURNAL_HDRLEN, (size_t)len);
	if (crc != (uint32_t)get_le(h + 32, 4))
		return 0;
	e->type = h[4];
	e->data = h + JOURNAL_HDRLEN;
	e->len = len;
	*off += JOURNAL_HDRLEN + (size_t)len;
	return 1;
}

/* ---- small helpers ---- */

static char *
jpath(const char *dir, const char *name)
{
	char	*p;

	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

static int
pwrite_all(int fd, const void *vp, size_t len, uint64_t off)
{
	const uint8_t	*p = vp;
	ssize_t		 r;

	while (len > 0) {
		r = pwrite(fd, p, len, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? EIO : errno;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int
pread_all(int fd, void *vp, size_t len, uint64_t off)
{
	uint8_t	*p = vp;
	ssize_t	 r;

	while (len > 0) {
		r = pread(fd, p, len, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? EIO : errno;	/* shorter than said */
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static uint64_t
elapsed_us(const struct timespec *t0)
{
	struct timespec	t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000);
}

static void
seg_name(uint64_t no, char *buf, size_t len)
{
	snprintf(buf, len, "%016" PRIx64 ".seg", no);
}

/* ---- the map of live images ---- */

static int
jmap_grow(struct journal *j)
{
	struct jmap_ent	*old = j->map, *nm;
	size_t		 oldcap = j->mapcap, cap = oldcap ? oldcap * 2 : 1024;
	size_t		 i, k;

	if ((nm = calloc(cap, sizeof(*nm))) == NULL)
		return -1;
	for (i = 0; i < oldcap; i++) {
		if (old[i].id == 0)
			continue;
		for (k = old[i].id & (cap - 1); nm[k].id != 0;
		    k = (k + 1) & (cap - 1))
			;
		nm[k] = old[i];
	}
	free(old);
	j->map = nm;
	j->mapcap = cap;
	return 0;
}

/* Map id to seg; an earlier image of id no longer counts in its seg. */
static int
jmap_put(struct journal *j, uint64_t id, uint64_t seg)
{
	struct jseg	*old;
	size_t		 k;

	if ((j->maplen + 1) * 2 > j->mapcap && jmap_grow(j) == -1)
		return -1;
	for (k = id & (j->mapcap - 1); j->map[k].id != 0;
	    k = (k + 1) & (j->mapcap - 1))
		if (j->map[k].id == id) {
			if ((old = jseg_find(j, j->map[k].seg)) != NULL &&
			    old->live > 0)
				old->live--;
			j->map[k].seg = seg;
			return 0;
		}
	j->map[k].id = id;
	j->map[k].seg = seg;
	j->maplen++;
	return 0;
}

/* Remove id (backward-shift deletion keeps probes short). */
static bool
jmap_del(struct journal *j, uint64_t id, uint64_t *seg)
{
	size_t	k, i, h, mask = j->mapcap - 1;

	if (j->mapcap == 0)
		return false;
	for (k = id & mask; j->map[k].id != id; k = (k + 1) & mask)
		if (j->map[k].id == 0)
			return false;
	*seg = j->map[k].seg;
	j->map[k].id = 0;
	j->maplen--;
	for (i = (k + 1) & mask; j->map[i].id != 0; i = (i + 1) & mask) {
		h = j->map[i].id & mask;
		/* move i back to k unless its home lies in (k, i] */
		if ((i > k && (h <= k || h > i)) ||
		    (i < k && (h <= k && h > i))) {
			j->map[k] = j->map[i];
			j->map[i].id = 0;
			k = i;
		}
	}
	return true;
}

static struct jseg *
jseg_find(struct journal *j, uint64_t no)
{
	size_t	i;

	for (i = 0; i < j->nsegs; i++)
		if (j->segs[i].no == no)
			return &j->segs[i];
	return NULL;
}

static int
jseg_add(struct journal *j, uint64_t no)
{
	struct jseg	*ns;

	if (j->nsegs == j->segcap) {
		size_t	cap = j->segcap ? j->segcap * 2 : 8;

		if ((ns = reallocarray(j->segs, cap, sizeof(*ns))) == NULL)
			return -1;
		j->segs = ns;
		j->segcap = cap;
	}
	j->segs[j->nsegs++] = (struct jseg){ .no = no };
	return 0;
}

/* Create segment no and make it the current one (under mu). */
static int
jseg_create(struct journal *j, uint64_t no)
{
	char	name[64];
	int	fd;

	seg_name(no, name, sizeof(name));
	if ((fd = openat(j->dirfd, name, O_RDWR | O_CREAT | O_EXCL |
	    O_CLOEXEC, JOURNAL_FILE_MODE)) == -1)
		return errno;
	if (jseg_add(j, no) == -1) {
		close(fd);
		(void)unlinkat(j->dirfd, name, 0);
		return ENOMEM;
	}
	j->fd = fd;
	j->segno = no;
	j->off = 0;
	return 0;
}

/* ---- writing ---- */

/*
 * Cut what a failed write left past off (under mu).  A half entry must
 * not stay: a later, shorter entry would cover only its start, and
 * recovery, reading on after it, would parse what follows, the middle
 * of an image whose bytes a client chose, as entries of their own.
 * Until the cut succeeds nothing more is appended.  0 or an errno.
 */
static int
jtail_cut(struct journal *j)
{
	if (ftruncate(j->fd, (off_t)j->off) == -1) {
		if (!j->tail_dirty)
			log_event(LOG_LVL_WARNING, "journal", "msg=\"cannot cut "
			    "a failed write from segment %016" PRIx64 ": %s\"",
			    j->segno, strerror(errno));
		j->tail_dirty = true;
		return errno;
	}
	j->tail_dirty = false;
	return 0;
}

int
journal_put(struct journal *j, const char *qid, const void *mem, int fd,
    uint64_t len, uint64_t *pos)
{
	uint8_t		 hdr[JOURNAL_HDRLEN], *chunk = NULL;
	uint64_t	 id, done;
	uint32_t	 crc;
	size_t		 n;
	int		 e = 0;

	/* id 0 marks a free slot of the map; id_next() never gives it */
	if (id_parse(qid, &id) == -1 || id == 0 || len > JOURNAL_LEN_MAX)
		return EINVAL;
	journal_header(hdr, JOURNAL_T_MSG, qid, len, 0);
	crc = journal_crc(0, hdr, 32);
	if (mem != NULL)
		crc = journal_crc(crc, mem, (size_t)len);
	else {
		if ((chunk = malloc(JOURNAL_CHUNK)) == NULL)
			return ENOMEM;
		for (done = 0; done < len && e == 0; done += n) {
			n = len - done > JOURNAL_CHUNK ? JOURNAL_CHUNK :
			    (size_t)(len - done);
			if ((e = pread_all(fd, chunk, n, done)) == 0)
				crc = journal_crc(crc, chunk, n);
		}
		if (e != 0) {
			free(chunk);
			return e;
		}
	}
	put_le(hdr + 32, crc, 4);

	pthread_mutex_lock(&j->mu);
	if (j->fd == -1)
		e = EIO;
	else if (j->tail_dirty && (e = jtail_cut(j)) != 0)
		;	/* still cannot: refuse, as a failed write would */
	else if ((e = pwrite_all(j->fd, hdr, sizeof(hdr), j->off)) == 0) {
		if (mem != NULL)
			e = pwrite_all(j->fd, mem, (size_t)len,
			    j->off + sizeof(hdr));
		else
			for (done = 0; done < len && e == 0; done += n) {
				n = len - done > JOURNAL_CHUNK ?
				    JOURNAL_CHUNK : (size_t)(len - done);
				if ((e = pread_all(fd, chunk, n, done)) == 0)
					e = pwrite_all(j->fd, chunk, n,
					    j->off + sizeof(hdr) + done);
			}
	}
	if (e == 0 && jmap_put(j, id, j->segno) == -1)
		e = ENOMEM;
	if (e == 0) {
		jseg_find(j, j->segno)->live++;
		j->off += sizeof(hdr) + len;
		j->written += sizeof(hdr) + len;
		*pos = j->written;
	}
	if (e != 0 && j->fd != -1)
		(void)jtail_cut(j);	/* no half entry stays behind */
	pthread_mutex_unlock(&j->mu);
	free(chunk);
	return e;
}

void
journal_gone(struct journal *j, const char *qid)
{
	uint8_t		 hdr[JOURNAL_HDRLEN];
	uint64_t	 id, seg;
	struct jseg	*s;

	if (id_parse(qid, &id) == -1 || id == 0)
		return;
	journal_header(hdr, JOURNAL_T_GONE, qid, 0, 0);
	put_le(hdr + 32, journal_crc(0, hdr, 32), 4);
	pthread_mutex_lock(&j->mu);
	if (jmap_del(j, id, &seg)) {
		if ((s = jseg_find(j, seg)) != NULL && s->live > 0)
			s->live--;
		/* lost, it may deliver the message again: never lose it */
		if (j->fd != -1 && !j->tail_dirty &&
		    pwrite_all(j->fd, hdr, sizeof(hdr), j->off) == 0) {
			j->off += sizeof(hdr);
			j->written += sizeof(hdr);
		} else if (j->fd != -1)
			(void)jtail_cut(j);
	}
	pthread_mutex_unlock(&j->mu);
}

/* ---- old segments ---- */

static int
fsync_path(int dirfd)
{
	return fsync(dirfd) == -1 ? errno : 0;
}

/*
 * Sync the queue files still live in segment no, with their folder, then
 * forget them: the segment no longer holds anything recovery needs.
 * Called with mu held and ckpt_busy set; drops mu while it syncs.
 */
static void
jseg_checkpoint(struct journal *j, uint64_t no)
{
	uint64_t	*ids = NULL, seg;
	size_t		 n = 0, i;
	char		 qid[ID_STRLEN + 1];
	int		 fd, e = 0;
	struct jseg	*s;

	s = jseg_find(j, no);
	if (s == NULL || s->live == 0 ||
	    (ids = calloc(s->live, sizeof(*ids))) == NULL)
		return;
	for (i = 0; i < j->mapcap && n < s->live; i++)
		if (j->map[i].id != 0 && j->map[i].seg == no)
			ids[n++] = j->map[i].id;
	pthread_mutex_unlock(&j->mu);
	for (i = 0; i < n && e == 0; i++) {
		id_format(ids[i], qid);
		if ((fd = openat(j->qdirfd, qid, O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW)) == -1) {
			if (errno != ENOENT)
				e = errno;
			continue;	/* gone meanwhile */
		}
		if (fdatasync(fd) == -1)
			e = errno;
		close(fd);
	}
	if (e == 0)
		e = fsync_path(j->qdirfd);
	pthread_mutex_lock(&j->mu);
	if (e != 0) {
		log_event(LOG_LVL_WARNING, "journal", "msg=\"cannot checkpoint "
		    "segment %016" PRIx64 ": %s\"", no, strerror(e));
		free(ids);
		return;
	}
	for (i = 0; i < n; i++)
		if (jmap_del(j, ids[i], &seg) &&
		    (s = jseg_find(j, seg)) != NULL && s->live > 0) {
			s->live--;
			j->st.checkpoints++;
		}
	free(ids);
}

/*
 * Remove the oldest segment if nothing in it is live, or checkpoint it
 * when too many are kept.  mu held, ckpt_busy set; drops mu meanwhile.
 */
static void
jseg_reap(struct journal *j)
{
	char		 name[64];
	uint64_t	 no;
	int		 e;

	while (j->nsegs > 1) {
		no = j->segs[0].no;
		if (j->segs[0].live > 0) {
			if (j->nsegs <= JOURNAL_SEGS_KEEP)
				return;
			jseg_checkpoint(j, no);
			if (j->nsegs == 0 || j->segs[0].no != no ||
			    j->segs[0].live > 0)
				return;
		}
		/* no removed queue file may come back once it is gone */
		pthread_mutex_unlock(&j->mu);
		e = fsync_path(j->qdirfd);
		seg_name(no, name, sizeof(name));
		if (e == 0 && unlinkat(j->dirfd, name, 0) == -1)
			e = errno;
		if (e == 0)
			e = fsync_path(j->dirfd);
		pthread_mutex_lock(&j->mu);
		if (e != 0) {
			log_event(LOG_LVL_WARNING, "journal", "msg=\"cannot "
			    "remove segment %s: %s\"", name, strerror(e));
			return;
		}
		memmove(&j->segs[0], &j->segs[1],
		    (j->nsegs - 1) * sizeof(j->segs[0]));
		j->nsegs--;
	}
}

/* ---- group commit ---- */

int
journal_sync(struct journal *j, uint64_t pos)
{
	struct timespec	t0;
	uint64_t	target;
	int		oldfd, fd, e, rc;
	bool		rotated;

	pthread_mutex_lock(&j->mu);
	j->st.sync_calls++;
	while (j->synced < pos) {
		if (j->busy) {
			pthread_cond_wait(&j->cv, &j->mu);
			continue;
		}
		j->busy = true;
		target = j->written;
		fd = j->fd;
		oldfd = -1;
		rotated = false;
		if (j->off >= JOURNAL_SEG_MAX) {
			/* writes after target go to a new segment */
			oldfd = fd;
			if ((e = jseg_create(j, j->segno + 1)) != 0) {
				j->fd = oldfd;	/* keep appending here */
				oldfd = -1;
				log_event(LOG_LVL_WARNING, "journal",
				    "msg=\"cannot start a segment: %s\"",
				    strerror(e));
			} else
				rotated = true;
		}
		pthread_mutex_unlock(&j->mu);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		e = fdatasync(fd) == -1 ? errno : 0;
		if (e == 0 && rotated)
			e = fsync_path(j->dirfd);	/* the new name */
		if (oldfd != -1)
			close(oldfd);
		pthread_mutex_lock(&j->mu);
		j->st.sync_us += elapsed_us(&t0);
		j->st.syncs++;
		if (e != 0) {
			/*
			 * Every failure since the first is reported: a caller
			 * may ask only after a later sync failed too.  Too
			 * many errors is safe (the client retries); a 250
			 * for bytes a failed sync covered is not.
			 */
			if (j->fail_errno == 0)
				j->fail_from = j->synced;
			j->fail_to = target;
			j->fail_errno = e;
		}
		j->synced = target;
		j->busy = false;
		pthread_cond_broadcast(&j->cv);
		if (rotated && !j->ckpt_busy) {
			j->ckpt_busy = true;
			jseg_reap(j);
			j->ckpt_busy = false;
		}
	}
	rc = pos > j->fail_from && pos <= j->fail_to ? j->fail_errno : 0;
	pthread_mutex_unlock(&j->mu);
	return rc;
}

void
journal_stats(struct journal *j, struct journal_stats *st)
{
	pthread_mutex_lock(&j->mu);
	*st = j->st;
	st->segments = j->nsegs;
	st->live = j->maplen;
	pthread_mutex_unlock(&j->mu);
}

/* ---- tombstones ---- */

int
journal_tombstone(const char *spool, const char *qid)
{
	char		dir[PATH_MAX], path[PATH_MAX];
	int		fd;
	uint64_t	v;

	if (id_parse(qid, &v) == -1) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", spool, JOURNAL_DIR) >=
	    sizeof(dir) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s.del", dir, qid) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(dir, JOURNAL_DIR_MODE) == -1 && errno != EEXIST)
		return -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    JOURNAL_FILE_MODE)) == -1)
		return -1;
	close(fd);
	return fsync_dir(dir);
}

/* ---- recovery ---- */

struct jrec {
	uint64_t	 id;
	size_t		 seq;		/* order of reading: later wins */
	const uint8_t	*data;		/* in a mapped segment */
	uint64_t	 len;
	bool		 gone;
};

struct jrecs {
	struct jrec	*v;
	size_t		 n, cap;
};

static int
jrec_cmp(const void *a, const void *b)
{
	const struct jrec	*x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* By id, then in the order read (qsort is not stable by itself). */
static int
jrec_order(const void *a, const void *b)
{
	const struct jrec	*x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
segno_cmp(const void *a, const void *b)
{
	const uint64_t	*x = a, *y = b;

	return *x < *y ? -1 : *x > *y;
}

static struct jrec *
jrec_find(struct jrecs *r, uint64_t id)
{
	struct jrec	key = { .id = id };

	return r->n ? bsearch(&key, r->v, r->n, sizeof(*r->v), jrec_cmp) :
	    NULL;
}

/*
 * Is the queue file whole: its content begins with exactly the image,
 * and what follows (records appended by delivery, never synced) passes
 * the queue's check?
 */
static bool
file_intact(struct journal *j, int fd, const uint8_t *p, uint64_t len)
{
	struct stat	 st;
	uint8_t		*f;
	size_t		 n;
	bool		 ok;

	if (fstat(fd, &st) == -1 || st.st_size < 0 ||
	    (uint64_t)st.st_size < len || len == 0)
		return false;
	n = (size_t)st.st_size;
	if ((f = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		return false;
	ok = memcmp(f, p, (size_t)len) == 0 &&
	    (n == len || j->check == NULL || j->check(f, n));
	munmap(f, n);
	return ok;
}

/* Write the image back: incoming/QID, fdatasync, rename to queue/QID. */
static int
jrec_restore(struct journal *j, const char *qid, const struct jrec *r)
{
	char	*in = NULL, *qp = NULL;
	int	 fd = -1, e = 0;

	if ((in = jpath(j->incoming, qid)) == NULL ||
	    (qp = jpath(j->qdir, qid)) == NULL) {
		e = ENOMEM;
		goto out;
	}
	if ((fd = open(in, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, JOURNAL_FILE_MODE)) == -1) {
		e = errno;
		goto out;
	}
	if ((e = pwrite_all(fd, r->data, (size_t)r->len, 0)) == 0 &&
	    fdatasync(fd) == -1)
		e = errno;
	close(fd);
	if (e == 0 && rename(in, qp) == -1)
		e = errno;
	if (e != 0)
		(void)unlink(in);
out:
	free(in);
	free(qp);
	return e;
}

struct jmapped {
	void	*p;
	size_t	 len;
};

static int
jrecover(struct journal *j, struct journal_recovery *rec, char *err,
    size_t errlen)
{
	struct jrecs	 recs = { 0 };
	struct jmapped	*maps = NULL;
	uint64_t	*segnos = NULL, *dels = NULL, no, id;
	size_t		 nseg = 0, segcap = 0, ndel = 0, delcap = 0, i, k;
	struct dirent	*de;
	struct journal_ent e;
	struct jrec	*r;
	struct stat	 st;
	DIR		*d;
	char		 qid[ID_STRLEN + 1], *end;
	int		 fd, rc = -1, er = 0;
	size_t		 off;

	memset(rec, 0, sizeof(*rec));
	if ((d = fdopendir(dup(j->dirfd))) == NULL) {
		snprintf(err, errlen, "journal: %s: %s", j->dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t	nl = strlen(de->d_name);

		if (nl == 16 + 4 && strcmp(de->d_name + 16, ".seg") == 0) {
			errno = 0;
			no = strtoull(de->d_name, &end, 16);
			if (errno != 0 || end != de->d_name + 16)
				continue;
			if (nseg == segcap) {
				segcap = segcap ? segcap * 2 : 16;
				segnos = reallocarray(segnos, segcap,
				    sizeof(*segnos));
				if (segnos == NULL)
					goto oom;
			}
			segnos[nseg++] = no;
		} else if (nl == ID_STRLEN + 4 &&
		    strcmp(de->d_name + ID_STRLEN, ".del") == 0) {
			memcpy(qid, de->d_name, ID_STRLEN);
			qid[ID_STRLEN] = '\0';
			if (id_parse(qid, &id) == -1)
				continue;
			if (ndel == delcap) {
				delcap = delcap ? delcap * 2 : 16;
				dels = reallocarray(dels, delcap,
				    sizeof(*dels));
				if (dels == NULL)
					goto oom;
			}
			dels[ndel++] = id;
		}
	}
	closedir(d);
	d = NULL;
	/* oldest segment first: a later G cancels an earlier M */
	if (nseg > 1)
		qsort(segnos, nseg, sizeof(*segnos), segno_cmp);
	if (nseg > 0 && (maps = calloc(nseg, sizeof(*maps))) == NULL)
		goto oom;
	for (i = 0; i < nseg; i++) {
		char	name[64];

		seg_name(segnos[i], name, sizeof(name));
		if ((fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(fd, &st) == -1) {
			snprintf(err, errlen, "journal: %s/%s: %s", j->dir,
			    name, strerror(errno));
			if (fd != -1)
				close(fd);
			goto out;
		}
		rec->segments++;
		if (st.st_size > 0) {
			maps[i].len = (size_t)st.st_size;
			maps[i].p = mmap(NULL, maps[i].len, PROT_READ,
			    MAP_PRIVATE, fd, 0);
			if (maps[i].p == MAP_FAILED) {
				maps[i].p = NULL;
				snprintf(err, errlen, "journal: %s/%s: %s",
				    j->dir, name, strerror(errno));
				close(fd);
				goto out;
			}
		}
		close(fd);
		for (off = 0; journal_parse(maps[i].p, maps[i].len, &off,
		    &e) == 1;) {
			(void)id_parse(e.qid, &id);
			if (recs.n == recs.cap) {
				struct jrec	*nv;

				recs.cap = recs.cap ? recs.cap * 2 : 256;
				nv = reallocarray(recs.v, recs.cap,
				    sizeof(*nv));
				if (nv == NULL)
					goto oom;
				recs.v = nv;
			}
			recs.v[recs.n] = (struct jrec){ .id = id,
			    .seq = recs.n, .data = e.data, .len = e.len,
			    .gone = e.type == JOURNAL_T_GONE };
			recs.n++;
		}
		if (off < maps[i].len)
			rec->torn++;
	}
	/*
	 * Keep the last entry of each id (a G after its M, or an M written
	 * twice): sorted by id and reading order, the last of each run wins.
	 */
	if (recs.n > 1)
		qsort(recs.v, recs.n, sizeof(*recs.v), jrec_order);
	for (i = 0, k = 0; i < recs.n; i++)
		if (i + 1 == recs.n || recs.v[i + 1].id != recs.v[i].id)
			recs.v[k++] = recs.v[i];
	recs.n = k;
	for (i = 0; i < ndel; i++)
		if ((r = jrec_find(&recs, dels[i])) != NULL && !r->gone) {
			r->gone = true;
			rec->skipped++;
		}
	for (i = 0; i < recs.n && er == 0; i++) {
		r = &recs.v[i];
		if (r->gone)
			continue;
		rec->images++;
		id_format(r->id, qid);
		fd = openat(j->qdirfd, qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd != -1 && file_intact(j, fd, r->data, r->len)) {
			rec->kept++;
			close(fd);
			continue;
		}
		if (fd != -1)
			close(fd);
		if ((er = jrec_restore(j, qid, r)) == 0) {
			rec->restored++;
			log_event(LOG_LVL_WARNING, "journal_restore", "qid=%s "
			    "msg=\"queue file written back from the journal\"",
			    qid);
		}
	}
	if (er != 0) {
		snprintf(err, errlen, "journal: cannot restore %s: %s", qid,
		    strerror(er));
		goto out;
	}
	/* every queue file on stable storage: the segments are not needed */
	if ((nseg > 0 || ndel > 0) && (syncfs(j->qdirfd) == -1 ||
	    fsync(j->qdirfd) == -1)) {
		snprintf(err, errlen, "journal: sync %s: %s", j->qdir,
		    strerror(errno));
		goto out;
	}
	for (i = 0; i < nseg; i++) {
		char	name[64];

		seg_name(segnos[i], name, sizeof(name));
		(void)unlinkat(j->dirfd, name, 0);
		if (segnos[i] >= j->segno)
			j->segno = segnos[i] + 1;
	}
	for (i = 0; i < ndel; i++) {
		char	name[ID_STRLEN + 8];

		id_format(dels[i], qid);
		snprintf(name, sizeof(name), "%s.del", qid);
		(void)unlinkat(j->dirfd, name, 0);
	}
	/* an old segment that came back would replay what is done now */
	if ((nseg > 0 || ndel > 0) && fsync(j->dirfd) == -1) {
		snprintf(err, errlen, "journal: sync %s: %s", j->dir,
		    strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "journal: out of memory");
out:
	if (d != NULL)
		closedir(d);
	for (i = 0; maps != NULL && i < nseg; i++)
		if (maps[i].p != NULL)
			munmap(maps[i].p, maps[i].len);
	free(maps);
	free(recs.v);
	free(segnos);
	free(dels);
	return rc;
}

/* ---- open, close ---- */

struct journal *
journal_open(const char *spool, journal_check_fn *check,
    struct journal_recovery *rec, char *err, size_t errlen)
{
	struct journal	*j;
	struct journal_recovery	dummy;
	int		 e;

	if (rec == NULL)
		rec = &dummy;
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(err, errlen, "journal: out of memory");
		return NULL;
	}
	j->fd = j->dirfd = j->qdirfd = -1;
	j->check = check;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	if ((j->dir = jpath(spool, JOURNAL_DIR)) == NULL ||
	    (j->qdir = jpath(spool, "queue")) == NULL ||
	    (j->incoming = jpath(spool, "incoming")) == NULL) {
		snprintf(err, errlen, "journal: out of memory");
		goto fail;
	}
	if ((mkdir(j->dir, JOURNAL_DIR_MODE) == -1 && errno != EEXIST) ||
	    (j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "journal: %s: %s", j->dir,
		    strerror(errno));
		goto fail;
	}
	if ((j->qdirfd = open(j->qdir, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "journal: %s: %s", j->qdir,
		    strerror(errno));
		goto fail;
	}
	j->segno = 1;
	if (jrecover(j, rec, err, errlen) == -1)
		goto fail;
	if ((e = jseg_create(j, j->segno)) != 0 ||
	    (e = fsync_path(j->dirfd)) != 0) {
		snprintf(err, errlen, "journal: new segment in %s: %s",
		    j->dir, strerror(e));
		goto fail;
	}
	return j;
fail:
	journal_close(j);
	return NULL;
}

void
journal_close(struct journal *j)
{
	if (j == NULL)
		return;
	if (j->fd != -1)
		close(j->fd);
	if (j->dirfd != -1)
		close(j->dirfd);
	if (j->qdirfd != -1)
		close(j->qdirfd);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	free(j->segs);
	free(j->map);
	free(j->dir);
	free(j->qdir);
	free(j->incoming);
	free(j);
}
