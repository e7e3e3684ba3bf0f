/*
 * fuzz_queue_rec.c - libFuzzer target for src/queue/queue_rec.c and the
 * reading side of queue_file.c.  Feeds every input to the record parser
 * (record by record), to the whole-file parser, and, through a memfd, to
 * queue_file_open() and queue_file_mark_done(); checks that spans stay in
 * the input, bounds hold, and the file opens exactly when it parses.
 * Untrusted: the whole input (a queue file on disk).
 */
#include <sys/mman.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/queue.h"
#include "queue/queue_rec.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fz_require(bool ok)
{
	if (!ok)
		abort();
}

static void
fz_rec(const struct queue_rec *r, const uint8_t *p, size_t len)
{
	if (r->size == 0)
		return;			/* not filled in */
	fz_require(r->payload >= p && r->payload <= p + len);
	fz_require(r->len <= (size_t)(p + len - r->payload));
	fz_require(r->size == QUEUE_REC_HDRLEN + r->len + 1);
	fz_require(r->type == QUEUE_REC_T_BODY ||
	    r->len <= QUEUE_REC_META_MAX);
}

static void
fz_records(const uint8_t *p, size_t len)
{
	struct queue_rec	r;
	size_t			off = 0;

	while (off < len) {
		memset(&r, 0, sizeof(r));
		if (queue_rec_parse(p + off, len - off, &r) != PARSE_OK)
			break;
		fz_require(r.size > 0 && r.size <= len - off);
		fz_rec(&r, p + off, len - off);
		off += r.size;
	}
}

/* Through a real file: opens iff it parses, and D records stick. */
static void
fz_file(const uint8_t *p, size_t len, const struct queue_rec_file *f,
    bool ok)
{
	struct queue_file	qf;
	char			path[64];
	size_t			i;
	int			fd;

	if ((fd = memfd_create("fuzz_queue_rec", MFD_CLOEXEC)) == -1)
		return;
	if (write(fd, p, len) != (ssize_t)len)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fz_require((queue_file_open(path, &qf) == 0) == ok);
	if (ok) {
		fz_require(qf.nrcpts == f->nrcpts);
		/* the F record's header fields, then B's bytes */
		fz_require(qf.bodylen == f->prefix.len + f->body.len);
		fz_require(f->prefix.len == 0 || memcmp(qf.body,
		    f->prefix.payload, f->prefix.len) == 0);
		fz_require(memcmp(qf.body + f->prefix.len, f->body.payload,
		    f->body.len) == 0);
		fz_require((qf.last_error != NULL) == (f->lasterr_len > 0));
		fz_require(qf.last_error == NULL ||
		    (strlen(qf.last_error) == f->lasterr_len &&
		    memcmp(qf.last_error, f->lasterr_text, f->lasterr_len) ==
		    0));
		for (i = 0; i < qf.nrcpts && qf.done[i]; i++)
			;
		if (i < qf.nrcpts) {
			fz_require(queue_file_mark_done(&qf, i) == 0);
			queue_file_close(&qf);
			fz_require(queue_file_open(path, &qf) == 0);
			fz_require(qf.done[i]);
		}
		queue_file_close(&qf);
	}
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *p, size_t len)
{
	struct queue_rec_file	f;
	enum parse_rc		rc;

	fz_records(p, len);
	rc = queue_rec_parse_file(p, len, &f);
	fz_require(f.validlen <= len);
	if (rc == PARSE_OK) {
		fz_require(f.nrcpts >= 1 && f.nrcpts <= QUEUE_RCPT_MAX);
		fz_require(f.done_off <= f.validlen);
		fz_require(f.rcpt_off < f.done_off);
		fz_rec(&f.id, p, len);
		fz_rec(&f.client, p, len);
		fz_rec(&f.helo, p, len);
		fz_rec(&f.sender, p, len);
		fz_rec(&f.body, p, len);
		fz_require(f.id.len == ID_STRLEN);
		fz_rec(&f.dsn_msg, p, len);
		/* only a prefix of an appended record (D, A, W, L) may follow */
		fz_require(f.validlen == len ||
		    p[f.validlen] == QUEUE_REC_T_DONE ||
		    p[f.validlen] == QUEUE_REC_T_ATTEMPT ||
		    p[f.validlen] == QUEUE_REC_T_WARNED ||
		    p[f.validlen] == QUEUE_REC_T_LASTERR);
		if (f.lasterr_len > 0) {
			fz_rec(&f.lasterr, p, len);
			fz_require(f.lasterr_text > f.lasterr.payload &&
			    f.lasterr_text + f.lasterr_len ==
			    f.lasterr.payload + f.lasterr.len);
			fz_require(memchr(f.lasterr_text, '\n',
			    f.lasterr_len) == NULL);
		}
	}
	fz_file(p, len, &f, rc == PARSE_OK);
	return 0;
}
