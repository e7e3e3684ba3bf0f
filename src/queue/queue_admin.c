/*
 * queue_admin.c - list, show, delete, hold and release queue files (see
 * queue_admin.h), by path, beside a running gateway.
 * Owns: SPOOL/hold, the operator's listing format, and the tombstone in
 * SPOOL/journal that keeps a deleted or held message from being written
 * back at the next start.  Never: writes a
 * queue file, touches incoming/, acts on a file it has not locked, or
 * builds a path from anything but a checked queue id.
 * Untrusted: the id typed by the operator; every byte of a queue file
 * (parsed by queue_file_open(), escaped when printed).
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/fsync_dir.h"
#include "../lib/ids.h"
#include "../lib/log.h"
#include "journal.h"
#include "queue.h"
#include "queue_admin.h"

#define QA_QUEUE	"queue"
#define QA_DIR_MODE	0700

struct qa_name {
	char	qid[ID_STRLEN + 1];
	bool	held;
};

struct qa_names {
	struct qa_name	*v;
	size_t		 n, cap;
};

static enum queue_admin_rc qa_fail(char *, size_t, enum queue_admin_rc,
		    const char *, ...) __attribute__((format(printf, 4, 5)));

static enum queue_admin_rc
qa_fail(char *err, size_t errlen, enum queue_admin_rc rc, const char *fmt,
    ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

/* SPOOL/SUB or SPOOL/SUB/QID; -1 if it does not fit (PATH_MAX). */
static int
qa_path(char out[PATH_MAX], const char *spool, const char *sub,
    const char *qid)
{
	int	n;

	if (qid == NULL)
		n = snprintf(out, PATH_MAX, "%s/%s", spool, sub);
	else
		n = snprintf(out, PATH_MAX, "%s/%s/%s", spool, sub, qid);
	if (n < 0 || n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static bool
qa_exists(const char *path)
{
	struct stat	st;

	return lstat(path, &st) == 0;
}


/* Printable ASCII and TAB as they are, '\\' doubled, the rest \xHH. */
static void
qa_put(FILE *out, const void *vp, size_t len)
{
	const uint8_t	*p = vp;
	size_t		 i;

	for (i = 0; i < len; i++) {
		if (p[i] == '\\')
			fputs("\\\\", out);
		else if ((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\t')
			putc(p[i], out);
		else
			fprintf(out, "\\x%02x", p[i]);
	}
}

static void
qa_puts(FILE *out, const char *s)
{
	qa_put(out, s, strlen(s));
}

static const char *
qa_time(time_t t, char buf[32])
{
	struct tm	tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, 32, "@%lld", (long long)t);
	return buf;
}

int
queue_admin_canon_id(const char *in, char out[ID_STRLEN + 1])
{
	uint64_t	v;
	size_t		i;

	if (in == NULL || strlen(in) != ID_STRLEN)
		return -1;
	for (i = 0; i < ID_STRLEN; i++)
		out[i] = in[i] >= 'a' && in[i] <= 'f' ? (char)(in[i] - 'a' +
		    'A') : in[i];
	out[ID_STRLEN] = '\0';
	return id_parse(out, &v);
}

static enum queue_admin_rc
qa_check_id(const char *qid, char *err, size_t errlen)
{
	uint64_t	v;

	if (qid == NULL || id_parse(qid, &v) == -1)
		return qa_fail(err, errlen, QUEUE_ADMIN_BADID,
		    "not a queue id: %s", qid ? log_esc(qid, strlen(qid), 64) :
		    "(none)");
	return QUEUE_ADMIN_OK;
}

/*
 * Lock path (LOCK_EX, polling LOCK_NB until wait_ms) and make sure the
 * name still leads to the locked file: a delivery may have removed it,
 * or another operator moved it, while we waited.
 */
static enum queue_admin_rc
qa_lock(const char *path, const char *qid, unsigned wait_ms, int *fdp,
    char *err, size_t errlen)
{
	struct timespec	step = { 0, QUEUE_ADMIN_LOCK_POLL_MS * 1000000L };
	struct stat	fst, pst;
	unsigned	waited = 0;
	int		fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return errno == ENOENT ? qa_fail(err, errlen,
		    QUEUE_ADMIN_NOTFOUND, "no such message: %s", qid) :
		    qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s: %s", path,
		    strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int	e = errno;

		if ((e != EWOULDBLOCK && e != EINTR) || waited >= wait_ms) {
			close(fd);
			if (e == EWOULDBLOCK || e == EINTR)
				return qa_fail(err, errlen, QUEUE_ADMIN_BUSY,
				    "busy: being delivered, try again");
			return qa_fail(err, errlen, QUEUE_ADMIN_ERROR,
			    "%s: lock: %s", path, strerror(e));
		}
		nanosleep(&step, NULL);
		waited += QUEUE_ADMIN_LOCK_POLL_MS;
	}
	if (fstat(fd, &fst) == -1 || lstat(path, &pst) == -1 ||
	    fst.st_nlink == 0 || fst.st_dev != pst.st_dev ||
	    fst.st_ino != pst.st_ino) {
		close(fd);
		return qa_fail(err, errlen, QUEUE_ADMIN_NOTFOUND,
		    "no such message: %s (delivered or removed meanwhile)",
		    qid);
	}
	*fdp = fd;
	return QUEUE_ADMIN_OK;
}

/* Where qid is: SPOOL/queue/QID or SPOOL/hold/QID. */
static enum queue_admin_rc
qa_locate(const char *spool, const char *qid, char path[PATH_MAX],
    bool *held, char *err, size_t errlen)
{
	enum queue_admin_rc	rc;

	if ((rc = qa_check_id(qid, err, errlen)) != QUEUE_ADMIN_OK)
		return rc;
	if (qa_path(path, spool, QA_QUEUE, qid) == -1)
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR,
		    "spool path too long");
	*held = false;
	if (qa_exists(path))
		return QUEUE_ADMIN_OK;
	(void)qa_path(path, spool, QUEUE_ADMIN_HOLD, qid);
	*held = true;
	if (qa_exists(path))
		return QUEUE_ADMIN_OK;
	return qa_fail(err, errlen, QUEUE_ADMIN_NOTFOUND,
	    "no such message: %s", qid);
}

enum queue_admin_rc
queue_admin_delete(const char *spool, const char *qid, unsigned wait_ms,
    char *err, size_t errlen)
{
	enum queue_admin_rc	rc;
	char			path[PATH_MAX], dir[PATH_MAX];
	bool			held;
	int			fd;
	char			id[ID_STRLEN + 1];

	if (queue_admin_canon_id(qid, id) == 0)
		qid = id;	/* else qa_check_id says why */
	if ((rc = qa_locate(spool, qid, path, &held, err, errlen)) !=
	    QUEUE_ADMIN_OK ||
	    (rc = qa_lock(path, qid, wait_ms, &fd, err, errlen)) !=
	    QUEUE_ADMIN_OK)
		return rc;
	(void)qa_path(dir, spool, held ? QUEUE_ADMIN_HOLD : QA_QUEUE, NULL);
	rc = QUEUE_ADMIN_OK;
	/* first tell the journal, or a restart would write it back */
	if (journal_tombstone(spool, qid) == -1 || unlink(path) == -1 ||
	    fsync_dir(dir) == -1)
		rc = qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s: %s", path,
		    strerror(errno));
	close(fd);		/* the lock goes only once the name is gone */
	return rc;
}

/* rename(2) that never replaces an existing file. */
static int
qa_rename(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* no RENAME_NOREPLACE here; ids are never reused, so check once */
	if (qa_exists(to)) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/* Lock SPOOL/FROM/QID, rename it to SPOOL/TO/QID, fsync both folders. */
static enum queue_admin_rc
qa_move(const char *spool, const char *qid, const char *from,
    const char *to, unsigned wait_ms, char *err, size_t errlen)
{
	enum queue_admin_rc	rc;
	char			src[PATH_MAX], dst[PATH_MAX];
	char			sdir[PATH_MAX], ddir[PATH_MAX];
	int			fd;

	if (qa_path(src, spool, from, qid) == -1 ||
	    qa_path(dst, spool, to, qid) == -1)
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR,
		    "spool path too long");
	(void)qa_path(sdir, spool, from, NULL);
	(void)qa_path(ddir, spool, to, NULL);
	if (mkdir(ddir, QA_DIR_MODE) == -1 && errno != EEXIST)
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s: %s", ddir,
		    strerror(errno));
	if ((rc = qa_lock(src, qid, wait_ms, &fd, err, errlen)) !=
	    QUEUE_ADMIN_OK)
		return rc;
	/*
	 * The file may so far be durable only as its image in the journal:
	 * sync it, and tell the journal not to write it back into queue/.
	 */
	if (fdatasync(fd) == -1 || journal_tombstone(spool, qid) == -1 ||
	    qa_rename(src, dst) == -1 || fsync_dir(ddir) == -1 ||
	    fsync_dir(sdir) == -1)
		rc = qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s -> %s: %s",
		    src, dst, strerror(errno));
	close(fd);
	return rc;
}

enum queue_admin_rc
queue_admin_hold(const char *spool, const char *qid, unsigned wait_ms,
    char *err, size_t errlen)
{
	enum queue_admin_rc	rc;
	char			path[PATH_MAX];
	bool			held;
	char			id[ID_STRLEN + 1];

	if (queue_admin_canon_id(qid, id) == 0)
		qid = id;	/* else qa_check_id says why */
	if ((rc = qa_locate(spool, qid, path, &held, err, errlen)) !=
	    QUEUE_ADMIN_OK)
		return rc;
	if (held)
		return qa_fail(err, errlen, QUEUE_ADMIN_STATE,
		    "%s is already held", qid);
	return qa_move(spool, qid, QA_QUEUE, QUEUE_ADMIN_HOLD, wait_ms, err,
	    errlen);
}

enum queue_admin_rc
queue_admin_release(const char *spool, const char *qid, unsigned wait_ms,
    char *err, size_t errlen)
{
	enum queue_admin_rc	rc;
	char			path[PATH_MAX];
	bool			held;
	char			id[ID_STRLEN + 1];

	if (queue_admin_canon_id(qid, id) == 0)
		qid = id;	/* else qa_check_id says why */
	if ((rc = qa_locate(spool, qid, path, &held, err, errlen)) !=
	    QUEUE_ADMIN_OK)
		return rc;
	if (!held)
		return qa_fail(err, errlen, QUEUE_ADMIN_STATE,
		    "%s is not held", qid);
	return qa_move(spool, qid, QUEUE_ADMIN_HOLD, QA_QUEUE, wait_ms, err,
	    errlen);
}

/* "active", "deferred: attempts N, next attempt TIME" or "held". */
static const char *
qa_state(const struct queue_file *qf, bool held, time_t now, char *buf,
    size_t len)
{
	char	t[32];

	if (held)
		return "held";
	if (qf->attempts == 0 || qf->next_attempt <= now)
		return "active";
	snprintf(buf, len, "deferred: attempts %u, next attempt %s",
	    qf->attempts, qa_time(qf->next_attempt, t));
	return buf;
}

static int
qa_names_add(struct qa_names *ns, const char *qid, bool held)
{
	struct qa_name	*v;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 64;
		if ((v = reallocarray(ns->v, ns->cap, sizeof(*v))) == NULL)
			return -1;
		ns->v = v;
	}
	memcpy(ns->v[ns->n].qid, qid, ID_STRLEN + 1);
	ns->v[ns->n++].held = held;
	return 0;
}

/* The queue ids in SPOOL/SUB; a folder that does not exist is empty. */
static int
qa_names_read(struct qa_names *ns, const char *spool, const char *sub)
{
	char		 dir[PATH_MAX];
	struct dirent	*de;
	uint64_t	 v;
	DIR		*d;
	int		 saved;

	if (qa_path(dir, spool, sub, NULL) == -1)
		return -1;
	if ((d = opendir(dir)) == NULL)
		return errno == ENOENT ? 0 : -1;
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if ((de->d_type != DT_REG && de->d_type != DT_UNKNOWN) ||
		    id_parse(de->d_name, &v) == -1)
			continue;
		if (qa_names_add(ns, de->d_name, strcmp(sub,
		    QUEUE_ADMIN_HOLD) == 0) == -1)
			break;
	}
	saved = errno;
	closedir(d);
	errno = saved;
	return saved == 0 ? 0 : -1;
}

/* Ids are time-ordered (ids.h): id order is arrival order. */
static int
qa_name_cmp(const void *a, const void *b)
{
	const struct qa_name	*x = a, *y = b;
	int			 c = memcmp(x->qid, y->qid, ID_STRLEN);

	return c != 0 ? c : (int)x->held - (int)y->held;
}

/* One message of the list; 0 if it went away meanwhile (not counted). */
static int
qa_list_one(FILE *out, const char *spool, const struct qa_name *nm,
    time_t now)
{
	struct queue_file	qf;
	char			path[PATH_MAX], t[32], st[128];
	size_t			i;

	(void)qa_path(path, spool, nm->held ? QUEUE_ADMIN_HOLD : QA_QUEUE,
	    nm->qid);
	if (queue_file_open(path, &qf) == -1) {
		if (errno == ENOENT)
			return 0;
		fprintf(out, "%s unreadable%s: %s\n", nm->qid,
		    nm->held ? " (held)" : "", strerror(errno));
		return 1;
	}
	fprintf(out, "%s %s %zu <", qf.qid, qa_time(qf.arrival, t),
	    qf.bodylen);
	qa_puts(out, qf.sender);
	fprintf(out, "> %s\n", qa_state(&qf, nm->held, now, st, sizeof(st)));
	if (qf.last_error != NULL) {
		fprintf(out, "  last error %s: ", qa_time(qf.last_error_time,
		    t));
		qa_puts(out, qf.last_error);
		putc('\n', out);
	}
	for (i = 0; i < qf.nrcpts; i++) {
		if (qf.done[i])
			continue;
		fputs("  <", out);
		qa_puts(out, qf.rcpts[i]);
		fputs(">\n", out);
	}
	queue_file_close(&qf);
	return 1;
}

enum queue_admin_rc
queue_admin_list(const char *spool, time_t now, FILE *out, char *err,
    size_t errlen)
{
	struct qa_names	ns = { NULL, 0, 0 };
	size_t		i, n = 0;

	if (qa_names_read(&ns, spool, QA_QUEUE) == -1 ||
	    qa_names_read(&ns, spool, QUEUE_ADMIN_HOLD) == -1) {
		free(ns.v);
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s: %s",
		    spool, strerror(errno));
	}
	if (ns.n > 0)
		qsort(ns.v, ns.n, sizeof(*ns.v), qa_name_cmp);
	for (i = 0; i < ns.n; i++)
		n += (size_t)qa_list_one(out, spool, &ns.v[i], now);
	fprintf(out, "%zu message%s\n", n, n == 1 ? "" : "s");
	free(ns.v);
	if (fflush(out) == EOF || ferror(out))
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR,
		    "write error: %s", strerror(errno));
	return QUEUE_ADMIN_OK;
}

/* The lines before the first empty one, at most QUEUE_ADMIN_HEADER_MAX. */
static void
qa_show_header(FILE *out, const uint8_t *p, size_t len)
{
	const uint8_t	*nl;
	size_t		 off = 0, n;
	bool		 cut = len > QUEUE_ADMIN_HEADER_MAX;

	if (cut)
		len = QUEUE_ADMIN_HEADER_MAX;
	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		n = nl ? (size_t)(nl - (p + off)) : len - off;
		if (n > 0 && p[off + n - 1] == '\r')
			n--;
		if (n == 0)
			return;		/* the empty line: the body follows */
		qa_put(out, p + off, n);
		putc('\n', out);
		if (nl == NULL)
			break;
		off = (size_t)(nl - p) + 1;
	}
	if (cut)
		fprintf(out, "[header section cut at %d bytes]\n",
		    QUEUE_ADMIN_HEADER_MAX);
}

static void
qa_show_envelope(FILE *out, const struct queue_file *qf, bool held,
    time_t now)
{
	char	t[32], st[128];
	size_t	i;

	fprintf(out, "id: %s\nstate: %s\narrival: %s\nsize: %zu\nclient: ",
	    qf->qid, held ? "held" : (qf->attempts > 0 &&
	    qf->next_attempt > now) ? "deferred" : "active",
	    qa_time(qf->arrival, t), qf->bodylen);
	qa_puts(out, qf->client);
	fputs("\nhelo: ", out);
	qa_puts(out, qf->helo);
	fputs("\nsender: <", out);
	qa_puts(out, qf->sender);
	fputs(">\n", out);
	for (i = 0; i < qf->nrcpts; i++) {
		fputs("recipient: <", out);
		qa_puts(out, qf->rcpts[i]);
		fprintf(out, "> %s\n", qf->done[i] ? "done" : "pending");
	}
	fprintf(out, "attempts: %u\nnext attempt: %s\n", qf->attempts,
	    held ? "none (held)" : (qf->next_attempt > now ?
	    qa_time(qf->next_attempt, st) : "now"));
	if (qf->last_error != NULL) {
		fprintf(out, "last error: %s ", qa_time(qf->last_error_time,
		    t));
		qa_puts(out, qf->last_error);
		putc('\n', out);
	} else
		fputs("last error: none\n", out);
}

enum queue_admin_rc
queue_admin_show(const char *spool, const char *qid, time_t now, FILE *out,
    char *err, size_t errlen)
{
	struct queue_file	qf;
	enum queue_admin_rc	rc;
	char			path[PATH_MAX];
	bool			held;
	char			id[ID_STRLEN + 1];

	if (queue_admin_canon_id(qid, id) == 0)
		qid = id;	/* else qa_check_id says why */
	if ((rc = qa_locate(spool, qid, path, &held, err, errlen)) !=
	    QUEUE_ADMIN_OK)
		return rc;
	if (queue_file_open(path, &qf) == -1) {
		if (errno == ENOENT)
			return qa_fail(err, errlen, QUEUE_ADMIN_NOTFOUND,
			    "no such message: %s (delivered or removed "
			    "meanwhile)", qid);
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR, "%s: %s", path,
		    errno == EINVAL ? "torn or malformed queue file" :
		    strerror(errno));
	}
	qa_show_envelope(out, &qf, held, now);
	putc('\n', out);
	qa_show_header(out, qf.body, qf.bodylen);
	queue_file_close(&qf);
	if (fflush(out) == EOF || ferror(out))
		return qa_fail(err, errlen, QUEUE_ADMIN_ERROR,
		    "write error: %s", strerror(errno));
	return QUEUE_ADMIN_OK;
}
