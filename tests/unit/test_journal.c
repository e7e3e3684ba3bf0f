/*
 * test_journal.c - the spool's write-ahead journal (src/queue/journal.c):
 * the entry parser's case table; recovery that keeps a whole file, writes
 * back a missing or different one, honours G entries and tombstones,
 * survives a torn tail and removes the old segments; the fd path of
 * journal_put; group commit from 8 threads; rotation and checkpoints;
 * the map of live ids where probes wrap; failed syncs (fdatasync is
 * replaced below so that a test can make it fail); a failed append (a
 * full file system, here RLIMIT_FSIZE) leaves no half entry.
 * Every test works in its own temporary spool under /tmp.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/ids.h"
#include "lib/log.h"
#include "queue/journal.h"

#define T_QID_A		"0000018B2E5C1A01"
#define T_QID_B		"0000018B2E5C1A02"
#define T_QID_C		"0000018B2E5C1A03"
#define T_QID_Z		"0000018B2E5C1A04"	/* hidden in an image */
#define T_FSIZE		65536	/* the failed-write test's file limit */
#define T_CRAFT		(2 * T_FSIZE)
#define T_THREADS	8
#define T_PER_THREAD	200
#define T_BIG		(1u << 20)	/* one image in the rotation test */
#define T_BIG_N		80
#define T_BIG_PINNED	4	/* the first ones: never gone */
#define T_BIG_TAIL	2	/* the last ones: never gone either */

struct fx {
	char	tmp[64];
	char	spool[128];
};

/*
 * This program's fdatasync: the real one, or (t_sync_errno not 0) a
 * failure with that errno, as a dying disk gives.  journal.c, linked in,
 * calls this one.
 */
static _Atomic int	t_sync_errno;

int
fdatasync(int fd)
{
	int	e = atomic_load(&t_sync_errno);

	if (e != 0) {
		errno = e;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
fx_setup(void **state)
{
	struct fx	*fx = calloc(1, sizeof(*fx));
	char		 path[256];

	assert_non_null(fx);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/mxj.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->tmp);
	assert_int_equal(mkdir(fx->spool, 0700), 0);
	snprintf(path, sizeof(path), "%s/queue", fx->spool);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/incoming", fx->spool);
	assert_int_equal(mkdir(path, 0700), 0);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*fx = *state;

	rm_tree(fx->tmp);
	free(fx);
	return 0;
}

static struct journal *
jopen_check(struct fx *fx, journal_check_fn *check,
    struct journal_recovery *rec)
{
	struct journal	*j;
	char		 err[256];

	memset(rec, 0xa5, sizeof(*rec));	/* journal_open fills it */
	j = journal_open(fx->spool, check, rec, err, sizeof(err));
	if (j == NULL)
		fail_msg("journal_open: %s", err);
	return j;
}

static struct journal *
jopen(struct fx *fx, struct journal_recovery *rec)
{
	return jopen_check(fx, NULL, rec);
}

static void
qfile_path(struct fx *fx, const char *qid, char *buf, size_t len)
{
	snprintf(buf, len, "%s/queue/%s", fx->spool, qid);
}

static void
file_write(const char *path, const void *p, size_t len)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd != -1);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void
file_append(const char *path, const void *p, size_t len)
{
	int	fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	assert_true(fd != -1);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* The whole file, or NULL when it does not exist. */
static uint8_t *
file_read(const char *path, size_t *lenp)
{
	struct stat	 st;
	uint8_t		*p;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		assert_int_equal(errno, ENOENT);
		return NULL;
	}
	assert_int_equal(fstat(fd, &st), 0);
	assert_non_null(p = malloc((size_t)st.st_size + 1));
	assert_int_equal(read(fd, p, (size_t)st.st_size),
	    (ssize_t)st.st_size);
	close(fd);
	*lenp = (size_t)st.st_size;
	return p;
}

static void
file_expect(const char *path, const void *p, size_t len)
{
	uint8_t	*got;
	size_t	 n = 0;

	got = file_read(path, &n);
	if (got == NULL)
		fail_msg("%s: missing", path);
	assert_int_equal(n, len);
	assert_memory_equal(got, p, len);
	free(got);
}

static bool
file_exists(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0;
}

/*
 * Names in SPOOL/sub ending in suffix ("" for all): how many; the last
 * one seen in *name (when name is not NULL).
 */
static size_t
dir_names(struct fx *fx, const char *sub, const char *suffix, char *name,
    size_t namelen)
{
	char		 path[256];
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0, nl, sl = strlen(suffix);

	snprintf(path, sizeof(path), "%s/%s", fx->spool, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		nl = strlen(de->d_name);
		if (nl < sl || strcmp(de->d_name + nl - sl, suffix) != 0)
			continue;
		n++;
		if (name != NULL)
			snprintf(name, namelen, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* SPOOL/journal/NAME of the only segment on disk. */
static void
seg_only(struct fx *fx, char *path, size_t len)
{
	char	name[256];

	assert_int_equal(dir_names(fx, JOURNAL_DIR, ".seg", name,
	    sizeof(name)), 1);
	snprintf(path, len, "%s/%s/%s", fx->spool, JOURNAL_DIR, name);
}

static void
put_sync(struct journal *j, const char *qid, const void *p, size_t len)
{
	uint64_t	pos = 0;

	assert_int_equal(journal_put(j, qid, p, -1, len, &pos), 0);
	assert_true(pos > 0);
	assert_int_equal(journal_sync(j, pos), 0);
}

/* An image: a queue-file-like text, different for each seed. */
static size_t
image_make(uint8_t *p, size_t cap, unsigned seed)
{
	int	n;

	n = snprintf((char *)p, cap, "V000000000000000e:mxgate-queue 1\n"
	    "S0000000000000010:a@sender.example\n"
	    "R0000000000000011:alice@example.org\n"
	    "B0000000000000014:message %08u\n\nE0000000000000000:\n", seed);
	assert_true(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* One sealed entry at p: its size. */
static size_t
ent_make(uint8_t *p, int type, const char *qid, const void *data,
    size_t len)
{
	uint32_t	crc;

	journal_header(p, type, qid, len, 0);
	if (len > 0)
		memcpy(p + JOURNAL_HDRLEN, data, len);
	crc = journal_crc(journal_crc(0, p, 32), data, len);
	journal_header(p, type, qid, len, crc);
	return JOURNAL_HDRLEN + len;
}

/* Recompute the CRC of the entry at p after an edit of its header. */
static void
ent_reseal(uint8_t *p, size_t len)
{
	uint32_t	crc;

	crc = journal_crc(journal_crc(0, p, 32), p + JOURNAL_HDRLEN, len);
	p[32] = (uint8_t)crc;
	p[33] = (uint8_t)(crc >> 8);
	p[34] = (uint8_t)(crc >> 16);
	p[35] = (uint8_t)(crc >> 24);
}

static void
rec_expect(const struct journal_recovery *rec, uint64_t images,
    uint64_t kept, uint64_t restored, uint64_t skipped, uint64_t torn)
{
	assert_int_equal(rec->images, images);
	assert_int_equal(rec->kept, kept);
	assert_int_equal(rec->restored, restored);
	assert_int_equal(rec->skipped, skipped);
	assert_int_equal(rec->torn, torn);
}

/* ---- 1. the entry parser ---- */

/* off must not move, and the parser must refuse */
static void
parse_refused(const uint8_t *p, size_t n, size_t start)
{
	struct journal_ent	e;
	size_t			off = start;

	assert_int_equal(journal_parse(p, n, &off, &e), 0);
	assert_int_equal(off, start);
}

static void
test_parse(void **state)
{
	static const char	data[] = "V000000000000000e:mxgate-queue 1\n";
	uint8_t			buf[512], t[512];
	struct journal_ent	e;
	size_t			n, m, off;

	(void)state;
	n = ent_make(buf, JOURNAL_T_MSG, T_QID_A, data, sizeof(data) - 1);
	assert_int_equal(n, JOURNAL_HDRLEN + sizeof(data) - 1);
	assert_memory_equal(buf, "MXJ1", 4);

	/* M round trip */
	off = 0;
	memset(&e, 0, sizeof(e));
	assert_int_equal(journal_parse(buf, n, &off, &e), 1);
	assert_int_equal(off, n);
	assert_int_equal(e.type, JOURNAL_T_MSG);
	assert_string_equal(e.qid, T_QID_A);
	assert_ptr_equal(e.data, buf + JOURNAL_HDRLEN);
	assert_int_equal(e.len, sizeof(data) - 1);
	assert_memory_equal(e.data, data, e.len);
	/* the end: nothing more, off stays */
	parse_refused(buf, n, n);
	parse_refused(buf, n, n + 1);

	/* M then G back to back, then a zero-length M */
	m = n + ent_make(buf + n, JOURNAL_T_GONE, T_QID_B, NULL, 0);
	m += ent_make(buf + m, JOURNAL_T_MSG, T_QID_C, NULL, 0);
	off = 0;
	assert_int_equal(journal_parse(buf, m, &off, &e), 1);
	assert_int_equal(e.type, JOURNAL_T_MSG);
	assert_string_equal(e.qid, T_QID_A);
	assert_int_equal(off, n);
	assert_int_equal(journal_parse(buf, m, &off, &e), 1);
	assert_int_equal(e.type, JOURNAL_T_GONE);
	assert_string_equal(e.qid, T_QID_B);
	assert_int_equal(e.len, 0);
	assert_ptr_equal(e.data, buf + n + JOURNAL_HDRLEN);
	assert_int_equal(off, n + JOURNAL_HDRLEN);
	assert_int_equal(journal_parse(buf, m, &off, &e), 1);
	assert_int_equal(e.type, JOURNAL_T_MSG);
	assert_string_equal(e.qid, T_QID_C);
	assert_int_equal(e.len, 0);
	assert_int_equal(off, m);
	parse_refused(buf, m, m);
	/* the second entry alone, from its own offset */
	parse_refused(buf, m, n + 1);

	/* a bad CRC: one byte of the image, or of the stored CRC */
	memcpy(t, buf, n);
	t[JOURNAL_HDRLEN + 3] ^= 0x01;
	parse_refused(t, n, 0);
	memcpy(t, buf, n);
	t[33] ^= 0x80;
	parse_refused(t, n, 0);
	/* a CRC that covers the qid: an edited qid without a reseal */
	memcpy(t, buf, n);
	t[8 + 15] = '9';
	parse_refused(t, n, 0);

	/* bad magic, even with a CRC that matches */
	memcpy(t, buf, n);
	t[3] = '2';
	ent_reseal(t, n - JOURNAL_HDRLEN);
	parse_refused(t, n, 0);
	/* an unknown type */
	memcpy(t, buf, n);
	t[4] = 'X';
	ent_reseal(t, n - JOURNAL_HDRLEN);
	parse_refused(t, n, 0);
	/* non-zero reserved bytes: 5..7 (under the CRC), 36..39 (after it) */
	for (off = 5; off < 8; off++) {
		memcpy(t, buf, n);
		t[off] = 1;
		ent_reseal(t, n - JOURNAL_HDRLEN);
		parse_refused(t, n, 0);
	}
	for (off = 36; off < 40; off++) {
		memcpy(t, buf, n);
		t[off] = 1;
		parse_refused(t, n, 0);
	}
	/* a qid that id_parse refuses (lower case), sealed */
	memcpy(t, buf, n);
	t[8 + 15] = 'a';
	ent_reseal(t, n - JOURNAL_HDRLEN);
	parse_refused(t, n, 0);
	/* the sealed original still parses: the edits above were the cause */
	memcpy(t, buf, n);
	ent_reseal(t, n - JOURNAL_HDRLEN);
	off = 0;
	assert_int_equal(journal_parse(t, n, &off, &e), 1);

	/* a G with a length, correctly sealed */
	m = ent_make(t, JOURNAL_T_GONE, T_QID_A, "x", 1);
	parse_refused(t, m, 0);
	/* a length past the buffer: the image is cut short */
	parse_refused(buf, n - 1, 0);
	parse_refused(buf, JOURNAL_HDRLEN, 0);
	/* a truncated header */
	parse_refused(buf, JOURNAL_HDRLEN - 1, 0);
	parse_refused(buf, 0, 0);
	/* a length beyond JOURNAL_LEN_MAX, sealed */
	memcpy(t, buf, n);
	t[24 + 7] = 0x01;
	ent_reseal(t, 0);
	parse_refused(t, n, 0);
	/* a good entry after a torn one is not reached */
	memcpy(t, buf, n);
	t[JOURNAL_HDRLEN] ^= 0xff;
	m = n + ent_make(t + n, JOURNAL_T_GONE, T_QID_A, NULL, 0);
	off = 0;
	assert_int_equal(journal_parse(t, m, &off, &e), 0);
	assert_int_equal(off, 0);
}

/* journal_header lays out what journal_parse reads. */
static void
test_header_layout(void **state)
{
	uint8_t	h[JOURNAL_HDRLEN];
	size_t	i;

	(void)state;
	journal_header(h, JOURNAL_T_MSG, T_QID_A, 0x0102030405ULL,
	    0xa1b2c3d4u);
	assert_memory_equal(h, "MXJ1M\0\0\0", 8);
	assert_memory_equal(h + 8, T_QID_A, ID_STRLEN);
	assert_memory_equal(h + 24, "\x05\x04\x03\x02\x01\0\0\0", 8);
	assert_memory_equal(h + 32, "\xd4\xc3\xb2\xa1", 4);
	for (i = 36; i < JOURNAL_HDRLEN; i++)
		assert_int_equal(h[i], 0);
	/* zlib's CRC-32 */
	assert_int_equal(journal_crc(0, "123456789", 9), 0xcbf43926u);
	assert_int_equal(journal_crc(journal_crc(0, "1234", 4), "56789", 5),
	    0xcbf43926u);
}

/* ---- 2. recovery keeps a whole file ---- */

static void
test_recover_keeps(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 img[512], img2[512], withd[600];
	size_t			 n, n2, nd;
	char			 path[256], path2[256];
	static const char	 drec[] = "D0000000000000001:0\n";

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 0);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	n = image_make(img, sizeof(img), 1);
	n2 = image_make(img2, sizeof(img2), 2);
	put_sync(j, T_QID_A, img, n);
	put_sync(j, T_QID_B, img2, n2);
	qfile_path(fx, T_QID_A, path, sizeof(path));
	qfile_path(fx, T_QID_B, path2, sizeof(path2));
	file_write(path, img, n);
	/* B: the image, then a delivery record appended to it */
	memcpy(withd, img2, n2);
	memcpy(withd + n2, drec, sizeof(drec) - 1);
	nd = n2 + sizeof(drec) - 1;
	file_write(path2, withd, nd);
	journal_close(j);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 1);
	rec_expect(&rec, 2, 2, 0, 0, 0);
	journal_close(j);
	file_expect(path, img, n);
	file_expect(path2, withd, nd);
	assert_int_equal(dir_names(fx, "incoming", "", NULL, 0), 0);
}

/* ---- 2b. bytes after the image that the queue's check refuses ---- */

static bool
t_check_no_nul(const uint8_t *p, size_t len)
{
	return memchr(p, '\0', len) == NULL;
}

static void
test_recover_check(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 img[512], withz[600];
	size_t			 n;
	char			 path[256];

	j = jopen(fx, &rec);
	n = image_make(img, sizeof(img), 1);
	put_sync(j, T_QID_A, img, n);
	qfile_path(fx, T_QID_A, path, sizeof(path));
	/* an append that never reached the disk: zeros after the image */
	memcpy(withz, img, n);
	memset(withz + n, 0, 20);
	file_write(path, withz, n + 20);
	journal_close(j);

	j = jopen_check(fx, t_check_no_nul, &rec);
	rec_expect(&rec, 1, 0, 1, 0, 0);
	journal_close(j);
	file_expect(path, img, n);
}

/* ---- 3. recovery writes back a missing, shorter or different file ---- */

static void
test_recover_restores(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a[512], b[512], c[512];
	size_t			 na, nb, nc;
	char			 pa[256], pb[256], pc[256];

	j = jopen(fx, &rec);
	na = image_make(a, sizeof(a), 10);
	nb = image_make(b, sizeof(b), 11);
	nc = image_make(c, sizeof(c), 12);
	put_sync(j, T_QID_A, a, na);
	put_sync(j, T_QID_B, b, nb);
	put_sync(j, T_QID_C, c, nc);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	qfile_path(fx, T_QID_B, pb, sizeof(pb));
	qfile_path(fx, T_QID_C, pc, sizeof(pc));
	/* A: never renamed into queue/; B: cut short; C: one byte differs */
	file_write(pb, b, nb - 1);
	c[nc / 2] ^= 0x20;
	file_write(pc, c, nc);
	c[nc / 2] ^= 0x20;
	journal_close(j);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 1);
	rec_expect(&rec, 3, 0, 3, 0, 0);
	journal_close(j);
	file_expect(pa, a, na);
	file_expect(pb, b, nb);
	file_expect(pc, c, nc);
	assert_int_equal(dir_names(fx, "incoming", "", NULL, 0), 0);
	assert_int_equal(dir_names(fx, "queue", "", NULL, 0), 3);

	/* written back once: the next start keeps them */
	j = jopen(fx, &rec);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	journal_close(j);
	file_expect(pa, a, na);
}

/* ---- 4. a G entry: not written back ---- */

static void
test_gone(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal_stats	 st;
	struct journal		*j;
	uint8_t			 a[512], b[512];
	size_t			 na, nb;
	char			 pa[256], pb[256];

	j = jopen(fx, &rec);
	na = image_make(a, sizeof(a), 20);
	nb = image_make(b, sizeof(b), 21);
	put_sync(j, T_QID_A, a, na);
	put_sync(j, T_QID_B, b, nb);
	journal_stats(j, &st);
	assert_int_equal(st.live, 2);
	journal_gone(j, T_QID_A);
	journal_stats(j, &st);
	assert_int_equal(st.live, 1);
	/* a second G, and one for an id never put, change nothing */
	journal_gone(j, T_QID_A);
	journal_gone(j, T_QID_C);
	journal_gone(j, "not-a-qid");
	journal_stats(j, &st);
	assert_int_equal(st.live, 1);
	journal_close(j);

	j = jopen(fx, &rec);
	/* only B is live, and its file is missing too */
	rec_expect(&rec, 1, 0, 1, 0, 0);
	journal_close(j);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	qfile_path(fx, T_QID_B, pb, sizeof(pb));
	assert_false(file_exists(pa));
	file_expect(pb, b, nb);
}

/* ---- 5. a tombstone: skipped, then removed ---- */

static void
test_tombstone(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a[512], b[512];
	size_t			 na, nb;
	char			 pa[256], pb[256], del[256];

	j = jopen(fx, &rec);
	na = image_make(a, sizeof(a), 30);
	nb = image_make(b, sizeof(b), 31);
	put_sync(j, T_QID_A, a, na);
	put_sync(j, T_QID_B, b, nb);
	assert_int_equal(journal_tombstone(fx->spool, T_QID_A), 0);
	/* a tombstone for an id the journal does not hold */
	assert_int_equal(journal_tombstone(fx->spool, T_QID_C), 0);
	errno = 0;
	assert_int_equal(journal_tombstone(fx->spool, "../x"), -1);
	assert_int_equal(errno, EINVAL);
	snprintf(del, sizeof(del), "%s/%s/%s.del", fx->spool, JOURNAL_DIR,
	    T_QID_A);
	assert_true(file_exists(del));
	assert_int_equal(dir_names(fx, JOURNAL_DIR, ".del", NULL, 0), 2);
	journal_close(j);

	j = jopen(fx, &rec);
	rec_expect(&rec, 1, 0, 1, 1, 0);
	journal_close(j);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	qfile_path(fx, T_QID_B, pb, sizeof(pb));
	assert_false(file_exists(pa));
	file_expect(pb, b, nb);
	assert_false(file_exists(del));
	assert_int_equal(dir_names(fx, JOURNAL_DIR, ".del", NULL, 0), 0);
}

/* ---- 6. a torn tail ---- */

static void
test_torn_tail(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a[512], b[512], ent[600];
	size_t			 na, nb, ne;
	char			 pa[256], pb[256], seg[512];
	static const uint8_t	 junk[] = "MXJ1M\0\0\0garbage after the end";

	j = jopen(fx, &rec);
	na = image_make(a, sizeof(a), 40);
	nb = image_make(b, sizeof(b), 41);
	put_sync(j, T_QID_A, a, na);
	put_sync(j, T_QID_B, b, nb);
	journal_close(j);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	qfile_path(fx, T_QID_B, pb, sizeof(pb));
	file_write(pb, b, nb);		/* B whole, A missing */
	seg_only(fx, seg, sizeof(seg));
	file_append(seg, junk, sizeof(junk) - 1);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 1);
	rec_expect(&rec, 2, 1, 1, 0, 1);
	journal_close(j);
	file_expect(pa, a, na);
	file_expect(pb, b, nb);

	/* an entry cut inside its image: the one before it still counts */
	assert_int_equal(unlink(pa), 0);
	assert_int_equal(unlink(pb), 0);
	j = jopen(fx, &rec);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	put_sync(j, T_QID_A, a, na);
	journal_close(j);
	seg_only(fx, seg, sizeof(seg));
	ne = ent_make(ent, JOURNAL_T_MSG, T_QID_B, b, nb);
	file_append(seg, ent, ne - 5);
	j = jopen(fx, &rec);
	rec_expect(&rec, 1, 0, 1, 0, 1);
	journal_close(j);
	file_expect(pa, a, na);
	assert_false(file_exists(pb));
}

/* ---- 7. old segments removed; a second start has nothing to do ---- */

static void
test_segments_removed(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a[512];
	size_t			 na;
	char			 pa[256], seg1[512], seg2[512], seg3[512];
	struct stat		 st;

	j = jopen(fx, &rec);
	na = image_make(a, sizeof(a), 50);
	put_sync(j, T_QID_A, a, na);
	journal_close(j);
	seg_only(fx, seg1, sizeof(seg1));
	assert_int_equal(stat(seg1, &st), 0);
	assert_int_equal(st.st_size, JOURNAL_HDRLEN + na);

	j = jopen(fx, &rec);
	rec_expect(&rec, 1, 0, 1, 0, 0);
	/* one segment on disk: a new, empty one with a higher number */
	seg_only(fx, seg2, sizeof(seg2));
	assert_true(strcmp(seg2, seg1) > 0);
	assert_int_equal(stat(seg2, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_false(file_exists(seg1));
	journal_close(j);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 1);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	seg_only(fx, seg3, sizeof(seg3));
	assert_true(strcmp(seg3, seg2) > 0);
	journal_close(j);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	file_expect(pa, a, na);
}

/* Segments written by hand: read oldest first, a later entry wins. */
static void
test_segment_order(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a1[512], a2[512], b[512], ent[1200];
	size_t			 na1, na2, nb, ne;
	char			 path[512], pa[256], pb[256], seg[512];

	snprintf(path, sizeof(path), "%s/%s", fx->spool, JOURNAL_DIR);
	assert_int_equal(mkdir(path, 0700), 0);
	na1 = image_make(a1, sizeof(a1), 60);
	na2 = image_make(a2, sizeof(a2), 61);
	nb = image_make(b, sizeof(b), 62);
	/* 0x10: M(A) new and G(B); 0x9: M(A) old, M(B) (written first) */
	ne = ent_make(ent, JOURNAL_T_MSG, T_QID_A, a2, na2);
	ne += ent_make(ent + ne, JOURNAL_T_GONE, T_QID_B, NULL, 0);
	snprintf(path, sizeof(path), "%s/%s/0000000000000010.seg", fx->spool,
	    JOURNAL_DIR);
	file_write(path, ent, ne);
	ne = ent_make(ent, JOURNAL_T_MSG, T_QID_A, a1, na1);
	ne += ent_make(ent + ne, JOURNAL_T_MSG, T_QID_B, b, nb);
	snprintf(path, sizeof(path), "%s/%s/0000000000000009.seg", fx->spool,
	    JOURNAL_DIR);
	file_write(path, ent, ne);
	/* and names recovery must leave alone */
	snprintf(path, sizeof(path), "%s/%s/notes.txt", fx->spool,
	    JOURNAL_DIR);
	file_write(path, "x", 1);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 2);
	rec_expect(&rec, 1, 0, 1, 0, 0);
	seg_only(fx, seg, sizeof(seg));
	journal_close(j);
	snprintf(path, sizeof(path), "%s/%s/0000000000000011.seg", fx->spool,
	    JOURNAL_DIR);
	assert_string_equal(seg, path);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	qfile_path(fx, T_QID_B, pb, sizeof(pb));
	file_expect(pa, a2, na2);
	assert_false(file_exists(pb));
	snprintf(path, sizeof(path), "%s/%s/notes.txt", fx->spool,
	    JOURNAL_DIR);
	assert_true(file_exists(path));
}

/* Many ids, each put twice and some gone: the last entry of each wins. */
static void
test_last_wins(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 img[512];
	size_t			 n;
	char			 qid[ID_STRLEN + 1], path[256];
	unsigned		 i, round, nids = 300;
	uint64_t		 base = 0x18b2e5c0000ULL;

	j = jopen(fx, &rec);
	for (round = 0; round < 2; round++)
		for (i = 0; i < nids; i++) {
			/* reverse order in round 1: ids interleave */
			id_format(base + (round ? nids - 1 - i : i), qid);
			n = image_make(img, sizeof(img),
			    round * 1000 + (round ? nids - 1 - i : i));
			put_sync(j, qid, img, n);
			if (round == 1 && (nids - 1 - i) % 3 == 0)
				journal_gone(j, qid);
		}
	journal_close(j);

	/* a warning per file written back: 200 lines nobody reads */
	log_set_level(LOG_LVL_ERROR);
	j = jopen(fx, &rec);
	log_set_level(LOG_LVL_INFO);
	rec_expect(&rec, nids - nids / 3, 0, nids - nids / 3, 0, 0);
	journal_close(j);
	for (i = 0; i < nids; i++) {
		id_format(base + i, qid);
		qfile_path(fx, qid, path, sizeof(path));
		if (i % 3 == 0) {
			assert_false(file_exists(path));
			continue;
		}
		n = image_make(img, sizeof(img), 1000 + i);
		file_expect(path, img, n);
	}
}

/* ---- 8. journal_put from an fd ---- */

static void
test_put_fd(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			*big;
	size_t			 len = 3 * 65536 + 12345, i;
	uint64_t		 pos;
	char			 src[256], pa[256];
	int			 fd;

	assert_non_null(big = malloc(len));
	for (i = 0; i < len; i++)
		big[i] = (uint8_t)(i * 131 + (i >> 16));
	snprintf(src, sizeof(src), "%s/incoming/%s", fx->spool, T_QID_A);
	file_write(src, big, len);
	assert_true((fd = open(src, O_RDONLY | O_CLOEXEC)) != -1);
	/* the fd's offset does not matter: the image is read from 0 */
	assert_int_equal(lseek(fd, 1000, SEEK_SET), 1000);

	j = jopen(fx, &rec);
	assert_int_equal(journal_put(j, T_QID_A, NULL, fd, len, &pos), 0);
	assert_int_equal(journal_sync(j, pos), 0);
	/* a file shorter than the length given */
	assert_int_not_equal(journal_put(j, T_QID_B, NULL, fd, len + 1, &pos),
	    0);
	/* a bad qid */
	assert_int_equal(journal_put(j, "0000018b2e5c1a01", big, -1, 10,
	    &pos), EINVAL);
	close(fd);
	assert_int_equal(unlink(src), 0);
	journal_close(j);

	j = jopen(fx, &rec);
	rec_expect(&rec, 1, 0, 1, 0, 0);
	journal_close(j);
	qfile_path(fx, T_QID_A, pa, sizeof(pa));
	file_expect(pa, big, len);
	qfile_path(fx, T_QID_B, pa, sizeof(pa));
	assert_false(file_exists(pa));
	free(big);
}

/* ---- 9. group commit from several threads ---- */

struct tput {
	struct journal	*j;
	unsigned	 no;
	uint64_t	 ids[T_PER_THREAD];
	int		 put_err, sync_err;
	unsigned	 done;
};

static void *
tput_run(void *arg)
{
	struct tput	*t = arg;
	uint8_t		 img[512];
	char		 qid[ID_STRLEN + 1];
	uint64_t	 pos;
	size_t		 n;
	unsigned	 i;
	int		 e;

	for (i = 0; i < T_PER_THREAD; i++) {
		t->ids[i] = id_next();
		id_format(t->ids[i], qid);
		n = image_make(img, sizeof(img), t->no * 10000 + i);
		if ((e = journal_put(t->j, qid, img, -1, n, &pos)) != 0) {
			t->put_err = e;
			break;
		}
		if ((e = journal_sync(t->j, pos)) != 0) {
			t->sync_err = e;
			break;
		}
		t->done++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal_stats	 st;
	struct journal		*j;
	struct tput		*t;
	pthread_t		 th[T_THREADS];
	char			 qid[ID_STRLEN + 1];
	unsigned		 i, k;

	assert_non_null(t = calloc(T_THREADS, sizeof(*t)));
	j = jopen(fx, &rec);
	for (i = 0; i < T_THREADS; i++) {
		t[i].j = j;
		t[i].no = i;
		assert_int_equal(pthread_create(&th[i], NULL, tput_run, &t[i]),
		    0);
	}
	for (i = 0; i < T_THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (i = 0; i < T_THREADS; i++) {
		assert_int_equal(t[i].put_err, 0);
		assert_int_equal(t[i].sync_err, 0);
		assert_int_equal(t[i].done, T_PER_THREAD);
	}
	journal_stats(j, &st);
	assert_int_equal(st.sync_calls, T_THREADS * T_PER_THREAD);
	assert_true(st.syncs >= 1);
	assert_true(st.syncs <= st.sync_calls);
	assert_int_equal(st.live, T_THREADS * T_PER_THREAD);
	assert_int_equal(st.segments, 1);
	print_message("journal: %u syncs for %u calls, %llu us in them\n",
	    (unsigned)st.syncs, (unsigned)st.sync_calls,
	    (unsigned long long)st.sync_us);
	for (i = 0; i < T_THREADS; i++)
		for (k = 0; k < T_PER_THREAD; k++) {
			id_format(t[i].ids[k], qid);
			journal_gone(j, qid);
		}
	journal_stats(j, &st);
	assert_int_equal(st.live, 0);
	journal_close(j);

	j = jopen(fx, &rec);
	assert_int_equal(rec.segments, 1);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	journal_close(j);
	assert_int_equal(dir_names(fx, "queue", "", NULL, 0), 0);
	free(t);
}

/* ---- 10. rotation and checkpoints ---- */

static void
big_image(uint8_t *p, unsigned i)
{
	memset(p, 'a' + (int)(i % 26), T_BIG);
	memcpy(p, &i, sizeof(i));
	memcpy(p + T_BIG - sizeof(i), &i, sizeof(i));
}

static void
test_rotation(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal_stats	 st;
	struct journal		*j;
	uint8_t			*img;
	char			 qid[ID_STRLEN + 1], path[256];
	uint64_t		 base = 0x18b2e5d0000ULL, maxsegs = 0;
	unsigned		 i;
	bool			 live;

	assert_non_null(img = malloc(T_BIG));
	j = jopen(fx, &rec);
	for (i = 0; i < T_BIG_N; i++) {
		id_format(base + i, qid);
		big_image(img, i);
		qfile_path(fx, qid, path, sizeof(path));
		file_write(path, img, T_BIG);
		put_sync(j, qid, img, T_BIG);
		journal_stats(j, &st);
		if (st.segments > maxsegs)
			maxsegs = st.segments;
		/* what the journal counts is what is on disk */
		assert_int_equal(dir_names(fx, JOURNAL_DIR, ".seg", NULL, 0),
		    st.segments);
	}
	journal_stats(j, &st);
	print_message("journal: %u images of %u bytes: at most %u segments,"
	    " %u now, %u checkpointed, %u live\n", T_BIG_N, T_BIG,
	    (unsigned)maxsegs, (unsigned)st.segments,
	    (unsigned)st.checkpoints, (unsigned)st.live);
	/* 80 MB went through: more than 4 segments of 16 MB */
	assert_true(maxsegs >= 4);
	assert_true(maxsegs <= 5);
	assert_true(st.checkpoints > 0);
	assert_int_equal(st.live + st.checkpoints, T_BIG_N);
	/* all but the pinned and the last few leave the queue */
	for (i = T_BIG_PINNED; i < T_BIG_N - T_BIG_TAIL; i++) {
		id_format(base + i, qid);
		qfile_path(fx, qid, path, sizeof(path));
		assert_int_equal(unlink(path), 0);
		journal_gone(j, qid);
	}
	journal_stats(j, &st);
	assert_int_equal(st.live, T_BIG_TAIL);
	journal_close(j);

	j = jopen(fx, &rec);
	/* the tail is still in the journal and whole on disk */
	assert_true(rec.segments >= 1 && rec.segments <= 5);
	rec_expect(&rec, T_BIG_TAIL, T_BIG_TAIL, 0, 0, 0);
	journal_close(j);
	for (i = 0; i < T_BIG_N; i++) {
		id_format(base + i, qid);
		qfile_path(fx, qid, path, sizeof(path));
		live = i < T_BIG_PINNED || i >= T_BIG_N - T_BIG_TAIL;
		assert_int_equal(file_exists(path), live);
		if (live) {
			big_image(img, i);
			file_expect(path, img, T_BIG);
			assert_int_equal(unlink(path), 0);
		}
	}
	assert_int_equal(dir_names(fx, JOURNAL_DIR, ".seg", NULL, 0), 1);
	free(img);
}

/* ---- the map of live ids: probes that wrap past the table's end ---- */

static void
test_map_wrap(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal_stats	 st;
	struct journal		*j;
	static const unsigned	 order[] = { 0, 3, 1, 5, 2, 4 };
	char			 qid[ID_STRLEN + 1];
	uint8_t			 img[512];
	size_t			 n;
	unsigned		 i;

	/* every id ends in 20 one-bits: the same last slot of any table */
	j = jopen(fx, &rec);
	for (i = 0; i < 6; i++) {
		id_format(((uint64_t)(i + 1) << 20) | 0xfffff, qid);
		n = image_make(img, sizeof(img), 70 + i);
		put_sync(j, qid, img, n);
	}
	journal_stats(j, &st);
	assert_int_equal(st.live, 6);
	/* each gone must find its id: live drops by one every time */
	for (i = 0; i < 6; i++) {
		id_format(((uint64_t)(order[i] + 1) << 20) | 0xfffff, qid);
		journal_gone(j, qid);
		journal_stats(j, &st);
		assert_int_equal(st.live, 5 - i);
	}
	journal_close(j);
	j = jopen(fx, &rec);
	rec_expect(&rec, 0, 0, 0, 0, 0);
	journal_close(j);
	assert_int_equal(dir_names(fx, "queue", "", NULL, 0), 0);
}

/* ---- failed writes ---- */

/*
 * In a child whose files may not grow past T_FSIZE (EFBIG, as ENOSPC on
 * a full disk): A is committed; the image of C, too large, fails part of
 * the way, after bytes that a client chose (a whole journal entry for
 * Z, placed where the end of the shorter B will fall); B is committed.
 * Exit status: 0, or the number of the check that failed.
 */
static int
put_fails_child(struct fx *fx, const uint8_t *a, size_t na,
    const uint8_t *b, size_t nb, const uint8_t *c, size_t nc)
{
	struct rlimit		 rl = { T_FSIZE, T_FSIZE };
	struct journal_recovery	 rec;
	struct journal		*j;
	char			 err[256];
	uint64_t		 pos;

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		return 10;
	if ((j = journal_open(fx->spool, NULL, &rec, err,
	    sizeof(err))) == NULL)
		return 11;
	if (journal_put(j, T_QID_A, a, -1, na, &pos) != 0 ||
	    journal_sync(j, pos) != 0)
		return 12;
	if (journal_put(j, T_QID_C, c, -1, nc, &pos) != EFBIG)
		return 13;
	if (journal_put(j, T_QID_B, b, -1, nb, &pos) != 0 ||
	    journal_sync(j, pos) != 0)
		return 14;
	journal_close(j);
	return 0;
}

static void
test_put_fails(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 a[512], b[512], z[512], *c;
	size_t			 na, nb, nz, zoff;
	char			 path[256], seg[512];
	struct stat		 st;
	pid_t			 pid;
	int			 status;

	na = image_make(a, sizeof(a), 90);
	nb = image_make(b, sizeof(b), 91);
	nz = image_make(z, sizeof(z), 92);
	/* C's entry starts where B's will; B ends inside C's image */
	assert_non_null(c = malloc(T_CRAFT));
	memset(c, 'x', T_CRAFT);
	zoff = nb;
	(void)ent_make(c + zoff, JOURNAL_T_MSG, T_QID_Z, z, nz);
	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		_exit(put_fails_child(fx, a, na, b, nb, c, T_CRAFT));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("child check %d failed", WEXITSTATUS(status));
	free(c);
	/* the segment holds A and B, whole, and nothing after them */
	seg_only(fx, seg, sizeof(seg));
	assert_int_equal(stat(seg, &st), 0);
	assert_int_equal(st.st_size, 2 * JOURNAL_HDRLEN + na + nb);
	j = jopen(fx, &rec);
	rec_expect(&rec, 2, 0, 2, 0, 0);
	journal_close(j);
	qfile_path(fx, T_QID_A, path, sizeof(path));
	file_expect(path, a, na);
	qfile_path(fx, T_QID_B, path, sizeof(path));
	file_expect(path, b, nb);
	qfile_path(fx, T_QID_C, path, sizeof(path));
	assert_false(file_exists(path));
	qfile_path(fx, T_QID_Z, path, sizeof(path));
	assert_false(file_exists(path));	/* the client's entry: never */
}

/* ---- failed syncs ---- */

/* A failed fdatasync is reported to the commits it covered, only them. */
static void
test_sync_fails(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 img[512];
	uint64_t		 pa, pb, pc;
	size_t			 n;

	j = jopen(fx, &rec);
	n = image_make(img, sizeof(img), 80);
	assert_int_equal(journal_put(j, T_QID_A, img, -1, n, &pa), 0);
	assert_int_equal(journal_put(j, T_QID_B, img, -1, n, &pb), 0);
	atomic_store(&t_sync_errno, EIO);
	assert_int_equal(journal_sync(j, pb), EIO);
	atomic_store(&t_sync_errno, 0);
	/* A was covered by that sync: it learns of the failure too */
	assert_int_equal(journal_sync(j, pa), EIO);
	/* a later commit gets a sync of its own */
	assert_int_equal(journal_put(j, T_QID_C, img, -1, n, &pc), 0);
	assert_int_equal(journal_sync(j, pc), 0);
	assert_int_equal(journal_sync(j, pb), EIO);
	journal_gone(j, T_QID_A);
	journal_gone(j, T_QID_B);
	journal_gone(j, T_QID_C);
	journal_close(j);
}

/*
 * Two failed syncs in a row (a disk that fails every write): a commit
 * covered by the first, whose caller reaches journal_sync only after the
 * second (queue_msg_finish renames between put and sync), must still get
 * the error; 0 would let its message be acknowledged, never durable.
 */
static void
test_sync_fails_twice(void **state)
{
	struct fx		*fx = *state;
	struct journal_recovery	 rec;
	struct journal		*j;
	uint8_t			 img[512];
	uint64_t		 pa, pb, pc;
	size_t			 n;
	int			 ea;

	j = jopen(fx, &rec);
	n = image_make(img, sizeof(img), 81);
	assert_int_equal(journal_put(j, T_QID_A, img, -1, n, &pa), 0);
	atomic_store(&t_sync_errno, EIO);
	assert_int_equal(journal_put(j, T_QID_B, img, -1, n, &pb), 0);
	assert_int_equal(journal_sync(j, pb), EIO);
	assert_int_equal(journal_put(j, T_QID_C, img, -1, n, &pc), 0);
	assert_int_equal(journal_sync(j, pc), EIO);
	/* now A's committer asks: its bytes went out with the first sync */
	ea = journal_sync(j, pa);
	atomic_store(&t_sync_errno, 0);
	journal_close(j);
	assert_int_equal(ea, EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_header_layout),
		cmocka_unit_test_setup_teardown(test_recover_keeps, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_recover_check, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_recover_restores,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_gone, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_tombstone, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_segments_removed,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_segment_order, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_last_wins, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_put_fd, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_threads, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_rotation, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_map_wrap, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_put_fails, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_fails, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_fails_twice,
		    fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
