/*
 * queue_file.c - the reading side of a committed queue file: read it
 * whole (one read for a typical message; files past QUEUE_FILE_READ_MAX
 * are mapped instead), check every record (queue_rec.c), and append D
 * records as recipients finish (durable at queue_file_sync).
 * Why read and not always mmap: the process has many threads, and every
 * munmap of a small mapping costs a TLB shoot-down on each core that runs
 * one of them; one read(2) of a few KB is cheaper, and the outbound
 * client references the bytes without copying them again.  Owns: struct queue_file.  Never: writes anything
 * but D records, delivers, or trusts the file (a torn or tampered file is
 * EINVAL, never a guess).  Untrusted: the file's bytes.
 */
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue.h"
#include "queue_rec.h"

#define QUEUE_FILE_READ_MAX	(1024 * 1024)	/* larger files: mmap */

static int	queue_file_fill(struct queue_file *, const char *,
		    const struct queue_rec_file *);
static int	queue_file_fill_rcpts(struct queue_file *,
		    const struct queue_rec_file *);

static char *
queue_file_strdup(const struct queue_rec *r)
{
	return strndup((const char *)r->payload, r->len);
}

/* An N record: the DSN parameters of the recipient just read. */
static int
queue_file_fill_dsn(struct queue_file *qf, const struct queue_rec *r)
{
	struct queue_rec_dsn	d;
	size_t			i = qf->nrcpts - 1;

	if (qf->nrcpts == 0 || queue_rec_dsn_rcpt(r, &d) == -1)
		return -1;	/* cannot happen: parsed before */
	qf->dsn_notify[i] = d.notify;
	if (d.textlen > 0 && (qf->dsn_orcpt[i] = strndup((const char *)d.text,
	    d.textlen)) == NULL)
		return -1;
	return 0;
}

/* R (and N) records, then D, A and W: all already checked by the parser. */
static int
queue_file_fill_rcpts(struct queue_file *qf, const struct queue_rec_file *f)
{
	const uint8_t		*p = qf->map;
	struct queue_rec	 r;
	size_t			 off, i;

	if ((qf->rcpts = calloc(f->nrcpts, sizeof(char *))) == NULL ||
	    (qf->done = calloc(f->nrcpts, sizeof(bool))) == NULL ||
	    (qf->dsn_notify = calloc(f->nrcpts, sizeof(unsigned))) == NULL ||
	    (qf->dsn_orcpt = calloc(f->nrcpts, sizeof(char *))) == NULL)
		return -1;
	for (off = f->rcpt_off; ; off += r.size) {
		if (queue_rec_parse(p + off, f->validlen - off, &r) !=
		    PARSE_OK)
			return -1;	/* cannot happen: parsed before */
		if (r.type == QUEUE_REC_T_BODY)
			break;
		if (r.type == QUEUE_REC_T_DSN_RCPT) {
			if (queue_file_fill_dsn(qf, &r) == -1)
				return -1;
			continue;
		}
		if (r.type != QUEUE_REC_T_RCPT || qf->nrcpts == f->nrcpts ||
		    (qf->rcpts[qf->nrcpts] = queue_file_strdup(&r)) == NULL)
			return -1;
		qf->nrcpts++;
	}
	for (off = f->done_off; off < f->validlen; off += r.size) {
		if (queue_rec_parse(p + off, f->validlen - off, &r) !=
		    PARSE_OK)
			return -1;
		if (r.type == QUEUE_REC_T_ATTEMPT ||
		    r.type == QUEUE_REC_T_WARNED ||
		    r.type == QUEUE_REC_T_LASTERR)
			continue;	/* the last one is in f already */
		if (queue_rec_done_index(&r, qf->nrcpts, &i) == -1)
			return -1;
		qf->done[i] = true;
	}
	qf->attempts = f->attempts;
	qf->next_attempt = f->next_attempt;
	if (f->lasterr_len > 0) {
		qf->last_error = strndup((const char *)f->lasterr_text,
		    f->lasterr_len);
		if (qf->last_error == NULL)
			return -1;
		qf->last_error_time = f->lasterr_time;
	}
	qf->delay_warned = f->warned;
	return 0;
}

/* The M record, if any: RET and ENVID. */
static int
queue_file_fill_dsn_msg(struct queue_file *qf, const struct queue_rec_file *f)
{
	struct queue_rec_dsn	d;

	if (f->dsn_msg.payload == NULL)
		return 0;
	if (queue_rec_dsn_msg(&f->dsn_msg, &d) == -1)
		return -1;
	qf->dsn_ret = d.ret;
	if (d.textlen > 0 && (qf->dsn_envid = strndup((const char *)d.text,
	    d.textlen)) == NULL)
		return -1;
	return 0;
}

/* The P record, if any (validated by the parser). */
static void
queue_file_fill_proof(struct queue_file *qf, const struct queue_rec_file *f)
{
	const uint8_t	*v;
	size_t		 n;

	qf->spf[0] = '\0';
	qf->spf_helo = false;
	if ((v = queue_rec_proof_get(&f->proof, "spf", &n)) != NULL &&
	    n < sizeof(qf->spf)) {
		memcpy(qf->spf, v, n);
		qf->spf[n] = '\0';
	}
	v = queue_rec_proof_get(&f->proof, "spf.identity", &n);
	qf->spf_helo = v != NULL && n == 4 && memcmp(v, "helo", 4) == 0;
	v = queue_rec_proof_get(&f->proof, "auth", &n);
	qf->auth = v != NULL && n == 1 && *v == '1';
	v = queue_rec_proof_get(&f->proof, "batv", &n);
	qf->batv = v != NULL && n == 4 && memcmp(v, "pass", 4) == 0;
	v = queue_rec_proof_get(&f->proof, "dkim.aligned", &n);
	qf->dkim_aligned = v != NULL && n == 1 && *v == '1';
}

static int
queue_file_fill(struct queue_file *qf, const char *path,
    const struct queue_rec_file *f)
{
	memcpy(qf->qid, f->id.payload, ID_STRLEN);
	qf->qid[ID_STRLEN] = '\0';
	qf->arrival = f->arrival;
	qf->smtputf8 = f->smtputf8;
	queue_file_fill_proof(qf, f);
	qf->body = f->body.payload;
	qf->bodylen = f->body.len;
	qf->endoff = f->validlen;
	if (f->prefix.len > 0) {	/* F's header fields, then B */
		if ((qf->joined = malloc(f->prefix.len + f->body.len)) ==
		    NULL)
			return -1;
		memcpy(qf->joined, f->prefix.payload, f->prefix.len);
		memcpy(qf->joined + f->prefix.len, f->body.payload,
		    f->body.len);
		qf->body = qf->joined;
		qf->bodylen = f->prefix.len + f->body.len;
	}
	if ((qf->path = strdup(path)) == NULL ||
	    (qf->client = queue_file_strdup(&f->client)) == NULL ||
	    (qf->helo = queue_file_strdup(&f->helo)) == NULL ||
	    (qf->sender = queue_file_strdup(&f->sender)) == NULL ||
	    queue_file_fill_dsn_msg(qf, f) == -1)
		return -1;
	return queue_file_fill_rcpts(qf, f);
}

/* The file's bytes, as of its size at open: read whole, or mapped. */
static int
queue_file_load(struct queue_file *qf)
{
	size_t	got = 0;
	ssize_t	r;

	if (qf->maplen > QUEUE_FILE_READ_MAX) {
		qf->map = mmap(NULL, qf->maplen, PROT_READ, MAP_SHARED, qf->fd,
		    0);
		if (qf->map == MAP_FAILED) {
			qf->map = NULL;
			return -1;
		}
		qf->mapped = true;
		return 0;
	}
	if ((qf->map = malloc(qf->maplen)) == NULL)
		return -1;
	while (got < qf->maplen) {
		r = pread(qf->fd, (uint8_t *)qf->map + got, qf->maplen - got,
		    (off_t)got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EINVAL;	/* cut short under us */
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

int
queue_file_open(const char *path, struct queue_file *qf)
{
	struct queue_rec_file	f;
	struct stat		st;
	int			saved;

	memset(qf, 0, sizeof(*qf));
	/* O_APPEND: D records always land at the end (mark_done) */
	if ((qf->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(qf->fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
		errno = EINVAL;
		goto fail;
	}
	qf->maplen = (size_t)st.st_size;
	if (queue_file_load(qf) == -1)
		goto fail;
	if (queue_rec_parse_file(qf->map, qf->maplen, &f) != PARSE_OK) {
		errno = EINVAL;
		goto fail;
	}
	if (queue_file_fill(qf, path, &f) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	queue_file_close(qf);
	errno = saved;
	return -1;
}

int
queue_file_lock(struct queue_file *qf)
{
	struct stat	a, b;

	if (flock(qf->fd, LOCK_EX | LOCK_NB) == -1)
		return -1;		/* EWOULDBLOCK: an admin has it */
	/* deleted or moved to hold/ between our open and our lock? */
	if (fstat(qf->fd, &a) == -1 || stat(qf->path, &b) == -1 ||
	    a.st_ino != b.st_ino || a.st_dev != b.st_dev || a.st_nlink == 0) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

void
queue_file_close(struct queue_file *qf)
{
	size_t	i;

	if (qf->map != NULL && qf->mapped)
		munmap(qf->map, qf->maplen);
	else
		free(qf->map);
	if (qf->fd != -1)
		close(qf->fd);
	if (qf->rcpts != NULL)
		for (i = 0; i < qf->nrcpts; i++)
			free(qf->rcpts[i]);
	if (qf->dsn_orcpt != NULL)
		for (i = 0; i < qf->nrcpts; i++)
			free(qf->dsn_orcpt[i]);
	free(qf->rcpts);
	free(qf->dsn_orcpt);
	free(qf->dsn_notify);
	free(qf->dsn_envid);
	free(qf->done);
	free(qf->path);
	free(qf->client);
	free(qf->helo);
	free(qf->sender);
	free(qf->last_error);
	free(qf->joined);
	memset(qf, 0, sizeof(*qf));
	qf->fd = -1;
}

/* Append one record after END, durably (fdatasync). */
static int
queue_file_append(struct queue_file *qf, int type, const char *payload,
    size_t plen)
{
	char		rec[QUEUE_REC_HDRLEN + QUEUE_REC_LASTERR_MAX + 32];
	struct stat	st;
	ssize_t		r;
	size_t		n = QUEUE_REC_HDRLEN + plen + 1;

	if (n > sizeof(rec)) {
		errno = EINVAL;
		return -1;
	}
	if (fstat(qf->fd, &st) == -1)
		return -1;
	if ((uint64_t)st.st_size < qf->endoff) {
		errno = EIO;		/* someone cut the file short */
		return -1;
	}
	/* a torn record from a crash would swallow the one we append */
	if ((uint64_t)st.st_size > qf->endoff &&
	    ftruncate(qf->fd, (off_t)qf->endoff) == -1)
		return -1;
	queue_rec_header(rec, type, plen);
	memcpy(rec + QUEUE_REC_HDRLEN, payload, plen);
	rec[n - 1] = '\n';
	do {
		r = pwrite(qf->fd, rec, n, (off_t)qf->endoff);
	} while (r == -1 && errno == EINTR);
	if (r != (ssize_t)n) {
		if (r >= 0)
			errno = EIO;
		return -1;	/* a partial record is dropped next time */
	}
	qf->endoff += n;	/* durable at the caller's queue_file_sync() */
	return 0;
}

int
queue_file_mark_done(struct queue_file *qf, size_t i)
{
	if (i >= qf->nrcpts) {
		errno = EINVAL;
		return -1;
	}
	if (qf->done[i])
		return 0;
	if (queue_file_write_done(qf, i) == -1)
		return -1;
	qf->done[i] = true;
	return 0;
}

int
queue_file_write_done(struct queue_file *qf, size_t i)
{
	char	p[24];
	int	n;

	if (i >= qf->nrcpts) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(p, sizeof(p), "%zu", i);
	return queue_file_append(qf, QUEUE_REC_T_DONE, p, (size_t)n);
}

int
queue_file_mark_attempt(struct queue_file *qf, unsigned attempts,
    time_t next)
{
	char	p[48];
	int	n;

	n = snprintf(p, sizeof(p), "%u %lld", attempts, (long long)next);
	if (queue_file_append(qf, QUEUE_REC_T_ATTEMPT, p, (size_t)n) == -1)
		return -1;
	qf->attempts = attempts;
	qf->next_attempt = next;
	return 0;
}

int
queue_file_mark_warned(struct queue_file *qf)
{
	if (qf->delay_warned)
		return 0;
	if (queue_file_append(qf, QUEUE_REC_T_WARNED, "", 0) == -1)
		return -1;
	qf->delay_warned = true;
	return 0;
}

/* Bytes that would break the line (or the C string) become '?'. */
int
queue_file_mark_error(struct queue_file *qf, time_t when, const char *text)
{
	char	p[QUEUE_REC_LASTERR_MAX + 32], *copy;
	int	n, k;

	if (text == NULL || text[0] == '\0')
		text = "(no reply text)";
	n = snprintf(p, sizeof(p), "%lld ", (long long)when);
	if (n < 0 || (size_t)n >= sizeof(p))
		return -1;
	for (k = 0; text[k] != '\0' && k < QUEUE_REC_LASTERR_MAX; k++)
		p[n + k] = text[k] == '\r' || text[k] == '\n' ? '?' : text[k];
	if (queue_file_append(qf, QUEUE_REC_T_LASTERR, p, (size_t)(n + k)) ==
	    -1)
		return -1;
	if ((copy = strndup(p + n, (size_t)k)) != NULL) {
		free(qf->last_error);
		qf->last_error = copy;
		qf->last_error_time = when;
	}
	return 0;
}

bool
queue_file_all_done(const struct queue_file *qf)
{
	size_t	i;

	for (i = 0; i < qf->nrcpts; i++)
		if (!qf->done[i])
			return false;
	return true;
}

int
queue_file_sync(struct queue_file *qf)
{
	return fdatasync(qf->fd);
}
