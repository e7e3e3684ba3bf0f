/*
 * test_queue.c - the spool: write, commit (on a real job pool and event
 * loop), reopen byte-exact, torn files, D records (complete and torn),
 * incoming cleanup, abort, write errors (RLIMIT_FSIZE), scan, and the
 * record and file parsers' case tables, the spool lock, the reserve.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "lib/job.h"
#include "queue/queue.h"
#include "queue/queue_lock.h"
#include "queue/queue_rec.h"

#define T_ARRIVAL	1700000000

struct fx {
	char			 tmp[64];
	char			 spool[128];
	struct event_base	*base;
	struct job_pool		*pool;
	struct queue		*q;
};

struct commit_res {
	bool		fired;
	bool		ok;
	uint64_t	sid;
	char		qid[ID_STRLEN + 1];
};

static const char *const t_rcpts[] = {
	"alice@example.org", "Bob.Smith@example.org", "c@d.example",
};

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

static bool
file_exists(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0;
}

static size_t
dir_count(const char *path)
{
	char	cmd[512];
	FILE	*p;
	size_t	n = 0;
	int	c;

	snprintf(cmd, sizeof(cmd), "ls -A '%s'", path);
	if ((p = popen(cmd, "r")) == NULL)
		return (size_t)-1;
	while ((c = fgetc(p)) != EOF)
		if (c == '\n')
			n++;
	pclose(p);
	return n;
}

static int
fx_setup(void **state)
{
	struct fx	*fx = calloc(1, sizeof(*fx));
	char		 err[256];

	assert_non_null(fx);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/mxq.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	/* two levels that do not exist yet: queue_open is mkdir -p */
	snprintf(fx->spool, sizeof(fx->spool), "%s/var/spool", fx->tmp);
	assert_non_null(fx->base = event_base_new());
	assert_non_null(fx->pool = job_pool_new(fx->base, 2));
	fx->q = queue_open(fx->spool, fx->pool, err, sizeof(err));
	if (fx->q == NULL)
		fail_msg("queue_open: %s", err);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*fx = *state;

	job_pool_free(fx->pool);
	queue_close(fx->q);
	event_base_free(fx->base);
	rm_tree(fx->tmp);
	free(fx);
	return 0;
}

static void
commit_cb(void *arg, uint64_t sid, bool ok, const char *qid)
{
	struct commit_res	*r = arg;

	r->fired = true;
	r->ok = ok;
	r->sid = sid;
	snprintf(r->qid, sizeof(r->qid), "%s", qid);
}

/* Commit and run the loop until the done callback (at most ~10 s). */
static void
commit_wait(struct event_base *base, struct queue_msg *m, uint64_t sid,
    struct commit_res *r)
{
	struct timeval	tv = { 0, 100000 };
	int		i;

	memset(r, 0, sizeof(*r));
	queue_msg_commit(m, NULL, sid, commit_cb, r);
	for (i = 0; i < 100 && !r->fired; i++) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static void
env_init(struct queue_env *env, size_t nrcpts)
{
	memset(env, 0, sizeof(*env));
	env->client = "192.0.2.7";
	env->helo = "client.example";
	env->sender = "";
	env->rcpts = t_rcpts;
	env->nrcpts = nrcpts;
	env->arrival = T_ARRIVAL;
}

/* A body that crosses the 64 KiB buffer and holds record look-alikes. */
static uint8_t *
body_make(size_t *lenp)
{
	struct buf	b;
	unsigned	i;

	buf_init(&b, 1 << 20);
	assert_int_equal(buf_addf(&b, "Received: from client.example\r\n"
	    "\tby mx.example; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
	    "Subject: hi\r\n\r\n"), 0);
	assert_int_equal(buf_add(&b, "\nE0000000000000000:\n\0\xff\r\n", 24),
	    0);
	for (i = 0; i < 9000; i++)
		assert_int_equal(buf_addf(&b, "line %u of the body\r\n", i), 0);
	*lenp = b.len;
	return b.data;
}

/* Write a message with body in uneven chunks; commit; return its qid. */
static void
msg_commit_body(struct fx *fx, const uint8_t *body, size_t len,
    size_t nrcpts, char qid[ID_STRLEN + 1])
{
	static const size_t	 chunks[] = { 1, 7, 65536, 3, 70000 };
	struct queue_env	 env;
	struct queue_msg	*m;
	struct commit_res	 r;
	size_t			 off = 0, i = 0, n;

	env_init(&env, nrcpts);
	assert_non_null(m = queue_msg_new(fx->q, &env));
	snprintf(qid, ID_STRLEN + 1, "%s", queue_msg_id(m));
	while (off < len) {
		n = chunks[i++ % 5];
		if (n > len - off)
			n = len - off;
		assert_int_equal(queue_msg_write(m, body + off, n), 0);
		off += n;
	}
	commit_wait(fx->base, m, 42, &r);
	assert_true(r.fired);
	assert_true(r.ok);
	assert_int_equal(r.sid, 42);
	assert_string_equal(r.qid, qid);
}

static char *
qpath(struct fx *fx, const char *qid)
{
	char	*p = queue_path(fx->q, qid);

	assert_non_null(p);
	return p;
}

static void
test_commit_reopen(void **state)
{
	struct fx		*fx = *state;
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path, head[256];
	uint8_t			*body;
	size_t			 len, i;
	struct stat		 st;
	FILE			*f;

	body = body_make(&len);
	assert_true(len > 2 * 65536);
	msg_commit_body(fx, body, len, 3, qid);
	path = qpath(fx, qid);
	/* incoming, queue, spare, journal */
	assert_int_equal(dir_count(fx->spool), 4);
	snprintf(head, sizeof(head), "%s/incoming", fx->spool);
	assert_int_equal(dir_count(head), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(f = fopen(path, "r"));
	assert_int_equal(fread(head, 1, 51, f), 51);
	fclose(f);
	assert_memory_equal(head, "V000000000000000e:mxgate-queue 1\n"
	    "I0000000000000010:", 51);

	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_string_equal(qf.qid, qid);
	assert_string_equal(qf.path, path);
	assert_int_equal(qf.arrival, T_ARRIVAL);
	assert_string_equal(qf.client, "192.0.2.7");
	assert_string_equal(qf.helo, "client.example");
	assert_string_equal(qf.sender, "");
	assert_int_equal(qf.nrcpts, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(qf.rcpts[i], t_rcpts[i]);
		assert_false(qf.done[i]);
	}
	assert_false(queue_file_all_done(&qf));
	assert_int_equal(qf.bodylen, len);
	assert_memory_equal(qf.body, body, len);
	queue_file_close(&qf);
	free(path);
	free(body);
}

/* The sender's proofs go into a P record and come back; none: "".
 * auth=1 (issue 14 part 3) alone or after SPF; absent or other: false. */
static void
test_commit_proof(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_msg	*m;
	struct commit_res	 r;
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path;
	int			 k;

	static const char *const proofs[] = {
		"spf=pass spf.identity=mailfrom", "spf=none spf.identity=helo",
		NULL, "auth=1", "spf=pass spf.identity=mailfrom auth=1",
		"auth=0",
	};

	for (k = 0; k < 6; k++) {
		env_init(&env, 1);
		env.proof = proofs[k];
		assert_non_null(m = queue_msg_new(fx->q, &env));
		snprintf(qid, sizeof(qid), "%s", queue_msg_id(m));
		assert_int_equal(queue_msg_write(m, "x\r\n", 3), 0);
		commit_wait(fx->base, m, 7, &r);
		assert_true(r.ok);
		path = qpath(fx, qid);
		assert_int_equal(queue_file_open(path, &qf), 0);
		assert_string_equal(qf.spf, k == 0 || k == 4 ? "pass" :
		    k == 1 ? "none" : "");
		assert_int_equal(qf.spf_helo, k == 1);
		assert_int_equal(qf.auth, k == 3 || k == 4);
		queue_file_close(&qf);
		free(path);
	}
	/* a payload the parser would refuse is never written */
	env_init(&env, 1);
	env.proof = "spf=PASS";
	assert_null(queue_msg_new(fx->q, &env));
}

/*
 * What only the end of data knows (queue_msg_late): the F record's header
 * fields come before the body's bytes when the file is read, and the P
 * record after B is read as the one before R is.
 */
static void
test_commit_late(void **state)
{
	static const char	 hdr[] = "Authentication-Results: mx;\r\n"
				     "\tdkim=pass header.d=d.test\r\n";
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_msg	*m;
	struct commit_res	 r;
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path;
	int			 k;

	for (k = 0; k < 3; k++) {
		env_init(&env, 1);
		assert_non_null(m = queue_msg_new(fx->q, &env));
		snprintf(qid, sizeof(qid), "%s", queue_msg_id(m));
		assert_int_equal(queue_msg_write(m, "Subject: x\r\n\r\nx\r\n",
		    17), 0);
		/* refused: not whole lines, a bad proof; nothing kept */
		assert_int_equal(queue_msg_late(m, "X: y", 4, NULL), -1);
		assert_int_equal(queue_msg_late(m, NULL, 0, "dkim=PASS"), -1);
		assert_int_equal(queue_msg_late(m, k == 1 ? NULL : hdr, k == 1 ?
		    0 : sizeof(hdr) - 1, k == 2 ? NULL : "spf=pass "
		    "spf.identity=mailfrom dkim=pass dkim.d=d.test "
		    "dkim.aligned=1"), 0);
		commit_wait(fx->base, m, 7, &r);
		assert_true(r.ok);
		path = qpath(fx, qid);
		assert_int_equal(queue_file_open(path, &qf), 0);
		if (k == 1) {
			assert_int_equal(qf.bodylen, 17);
			assert_memory_equal(qf.body, "Subject: x\r\n", 12);
		} else {
			assert_int_equal(qf.bodylen, sizeof(hdr) - 1 + 17);
			assert_memory_equal(qf.body, hdr, sizeof(hdr) - 1);
			assert_memory_equal(qf.body + sizeof(hdr) - 1,
			    "Subject: x\r\n\r\nx\r\n", 17);
		}
		assert_string_equal(qf.spf, k == 2 ? "" : "pass");
		assert_int_equal(qf.dkim_aligned, k != 2);
		queue_file_close(&qf);
		free(path);
	}
}

static void
file_write(const char *path, const void *p, size_t len, int flags)
{
	int	fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static uint8_t *
file_read(const char *path, size_t *lenp)
{
	struct stat	st;
	uint8_t		*p;
	int		fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_non_null(p = malloc((size_t)st.st_size + 1));
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*lenp = (size_t)st.st_size;
	return p;
}

/*
 * A delivered file is kept as a spare and the next message is written
 * into it: the queue no longer has it, and the shorter new message has
 * none of the old bytes after its end.
 */
static void
test_spare_reuse(void **state)
{
	struct fx		*fx = *state;
	struct queue_file	 qf;
	char			 qid1[ID_STRLEN + 1], qid2[ID_STRLEN + 1];
	char			*path1, *path2, spare[512];
	static const uint8_t	 small[] = "Subject: short\r\n\r\nhi\r\n";
	uint8_t			*body;
	size_t			 len;
	uint32_t		 id;
	struct stat		 st;

	snprintf(spare, sizeof(spare), "%s/spare", fx->spool);
	body = body_make(&len);
	msg_commit_body(fx, body, len, 3, qid1);
	path1 = qpath(fx, qid1);
	assert_int_equal(queue_file_open(path1, &qf), 0);
	assert_int_equal(queue_retire(fx->q, &qf, &id), 0);
	assert_int_not_equal(id, QUEUE_NO_SPARE);
	assert_int_equal(stat(path1, &st), -1);		/* out of the queue */
	assert_int_equal(dir_count(spare), 1);
	queue_file_close(&qf);
	queue_spare_put(fx->q, id);

	msg_commit_body(fx, small, sizeof(small) - 1, 1, qid2);
	assert_int_equal(dir_count(spare), 0);		/* taken again */
	assert_int_equal(queue_spare_reused(fx->q), 1);
	path2 = qpath(fx, qid2);
	assert_int_equal(stat(path2, &st), 0);
	assert_true(st.st_size < 1024);			/* cut at its end */
	assert_int_equal(queue_file_open(path2, &qf), 0);
	assert_string_equal(qf.qid, qid2);
	assert_int_equal(qf.nrcpts, 1);
	assert_int_equal(qf.bodylen, sizeof(small) - 1);
	assert_memory_equal(qf.body, small, sizeof(small) - 1);
	queue_file_close(&qf);
	free(path1);
	free(path2);
	free(body);
}

static void
test_torn(void **state)
{
	struct fx		*fx = *state;
	static const char	 body[] = "Subject: x\r\n\r\nhello\r\n";
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path, cut[256];
	uint8_t			*raw;
	size_t			 len, i;

	msg_commit_body(fx, (const uint8_t *)body, sizeof(body) - 1, 2, qid);
	path = qpath(fx, qid);
	raw = file_read(path, &len);
	{
		/* before E, inside E, after B's '\n', mid-body, mid-header */
		const size_t	cuts[] = { len - 1, len - 10, len - 19,
		    len - 20, len - 25, 40, 18, 1, 0 };

		snprintf(cut, sizeof(cut), "%s/cut", fx->tmp);
		for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			file_write(cut, raw, cuts[i], O_TRUNC);
			errno = 0;
			assert_int_equal(queue_file_open(cut, &qf), -1);
			assert_int_equal(errno, EINVAL);
		}
		/* the whole file still opens */
		file_write(cut, raw, len, O_TRUNC);
		assert_int_equal(queue_file_open(cut, &qf), 0);
		queue_file_close(&qf);
	}
	free(raw);
	free(path);
}

static void
test_mark_done(void **state)
{
	struct fx		*fx = *state;
	static const char	 body[] = "a\r\n";
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path;
	uint32_t		 id;

	msg_commit_body(fx, (const uint8_t *)body, 3, 3, qid);
	path = qpath(fx, qid);
	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_int_equal(queue_file_mark_done(&qf, 1), 0);
	assert_true(qf.done[1]);
	assert_int_equal(queue_file_mark_done(&qf, 1), 0);	/* no-op */
	errno = 0;
	assert_int_equal(queue_file_mark_done(&qf, 3), -1);
	assert_int_equal(errno, EINVAL);
	queue_file_close(&qf);

	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_false(qf.done[0]);
	assert_true(qf.done[1]);
	assert_false(qf.done[2]);
	assert_false(queue_file_all_done(&qf));
	assert_int_equal(queue_file_mark_done(&qf, 2), 0);
	assert_int_equal(queue_file_mark_done(&qf, 0), 0);
	assert_true(queue_file_all_done(&qf));
	queue_file_close(&qf);

	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_true(queue_file_all_done(&qf));
	assert_memory_equal(qf.body, "a\r\n", 3);
	assert_int_equal(queue_retire(fx->q, &qf, &id), 0);
	assert_false(file_exists(path));
	queue_file_close(&qf);
	queue_spare_put(fx->q, id);
	free(path);
}

/* A D record written ahead: on disk at once, not done in memory. */
static void
test_write_done(void **state)
{
	struct fx		*fx = *state;
	static const char	 body[] = "a\r\n";
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path;

	msg_commit_body(fx, (const uint8_t *)body, 3, 2, qid);
	path = qpath(fx, qid);
	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_int_equal(queue_file_write_done(&qf, 0), 0);
	assert_false(qf.done[0]);
	errno = 0;
	assert_int_equal(queue_file_write_done(&qf, 2), -1);
	assert_int_equal(errno, EINVAL);
	/* the next record goes after it, not over it */
	assert_int_equal(queue_file_mark_attempt(&qf, 1, 1000), 0);
	queue_file_close(&qf);

	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_true(qf.done[0]);
	assert_false(qf.done[1]);
	assert_int_equal(qf.attempts, 1);
	queue_file_close(&qf);
	free(path);
}

/* What may follow a complete file, and whether it still opens. */
static const struct {
	const char	*tail;
	size_t		 len;
	bool		 opens;
	size_t		 keep;	/* bytes of complete D records in tail */
} tails[] = {
	{ "D", 1, true, 0 },
	{ "D00000000", 9, true, 0 },
	{ "D0000000000000001", 17, true, 0 },
	{ "D0000000000000001:", 18, true, 0 },
	{ "D0000000000000001:1", 19, true, 0 },
	{ "D0000000000000001:1\nD00", 23, true, 20 },
	{ "D0000000000000001:7\n", 20, false, 0 },	/* no recipient 7 */
	{ "D0000000000000001:x\n", 20, false, 0 },
	{ "D0000000000000002:01\n", 21, false, 0 },	/* not canonical */
	{ "R0000000000000001:", 18, false, 0 },
	{ "E0000000000000000:\n", 19, false, 0 },
	{ "X", 1, false, 0 },
	{ "\0\0\0\0", 4, false, 0 },
	{ "D000000000000000G", 17, false, 0 },
};

static void
test_trailing_d(void **state)
{
	struct fx		*fx = *state;
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path, tpath[256];
	uint8_t			*raw, *after;
	size_t			 len, alen, i;

	msg_commit_body(fx, (const uint8_t *)"b\r\n", 3, 3, qid);
	path = qpath(fx, qid);
	raw = file_read(path, &len);
	snprintf(tpath, sizeof(tpath), "%s/%s", queue_dir(fx->q), qid);
	for (i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		file_write(tpath, raw, len, O_TRUNC);
		file_write(tpath, tails[i].tail, tails[i].len, O_APPEND);
		errno = 0;
		if (!tails[i].opens) {
			assert_int_equal(queue_file_open(tpath, &qf), -1);
			assert_int_equal(errno, EINVAL);
			continue;
		}
		assert_int_equal(queue_file_open(tpath, &qf), 0);
		assert_false(qf.done[2]);
		/* the torn record is cut off before the new one goes on */
		assert_int_equal(queue_file_mark_done(&qf, 2), 0);
		queue_file_close(&qf);
		after = file_read(tpath, &alen);
		assert_int_equal(alen, len + tails[i].keep + 20);
		assert_memory_equal(after, raw, len);
		assert_memory_equal(after + len, tails[i].tail, tails[i].keep);
		assert_memory_equal(after + len + tails[i].keep,
		    "D0000000000000001:2\n", 20);
		free(after);
		assert_int_equal(queue_file_open(tpath, &qf), 0);
		assert_true(qf.done[2]);
		assert_false(qf.done[0]);
		assert_int_equal(qf.done[1], tails[i].keep > 0);
		queue_file_close(&qf);
	}
	free(raw);
	free(path);
}

static void
test_incoming_cleanup(void **state)
{
	struct fx	*fx = *state;
	char		 p[256], err[256];

	queue_close(fx->q);
	snprintf(p, sizeof(p), "%s/incoming/0000000000000001", fx->spool);
	file_write(p, "V", 1, 0);
	snprintf(p, sizeof(p), "%s/incoming/junk", fx->spool);
	file_write(p, "x", 1, 0);
	snprintf(p, sizeof(p), "%s/incoming", fx->spool);
	assert_int_equal(dir_count(p), 2);
	fx->q = queue_open(fx->spool, fx->pool, err, sizeof(err));
	assert_non_null(fx->q);
	assert_int_equal(dir_count(p), 0);
	assert_int_equal(dir_count(queue_dir(fx->q)), 0);
}

static void
test_abort(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_msg	*m;
	char			 p[256];

	env_init(&env, 1);
	assert_non_null(m = queue_msg_new(fx->q, &env));
	snprintf(p, sizeof(p), "%s/incoming/%s", fx->spool, queue_msg_id(m));
	assert_int_equal(queue_msg_write(m, "x\r\n", 3), 0);
	assert_true(file_exists(p));
	queue_msg_abort(m);
	assert_false(file_exists(p));
	assert_int_equal(dir_count(queue_dir(fx->q)), 0);
}

static void
test_msg_new_refuses(void **state)
{
	struct fx		*fx = *state;
	struct queue_env	 env;
	const char		*bad[1];
	char			*big;
	char			 p[256];

	env_init(&env, 0);
	errno = 0;
	assert_null(queue_msg_new(fx->q, &env));
	assert_int_equal(errno, EINVAL);
	assert_non_null(big = malloc(QUEUE_REC_META_MAX + 2));
	memset(big, 'a', QUEUE_REC_META_MAX + 1);
	big[QUEUE_REC_META_MAX + 1] = '\0';
	bad[0] = big;
	env_init(&env, 1);
	env.rcpts = bad;
	errno = 0;
	assert_null(queue_msg_new(fx->q, &env));
	assert_int_equal(errno, EINVAL);
	env_init(&env, 1);
	env.helo = big;
	assert_null(queue_msg_new(fx->q, &env));
	free(big);
	snprintf(p, sizeof(p), "%s/incoming", fx->spool);
	assert_int_equal(dir_count(p), 0);
}

/* Write errors, run in a child so RLIMIT_FSIZE stays there. */
static const struct {
	rlim_t		limit;
	size_t		body;
	bool		write_fails;	/* else only the commit does */
} fsize_cases[] = {
	{ 100 * 1024, 300 * 1024, true },	/* a buffer flush hits it */
	{ 100 * 1024, 101 * 1024, false },	/* the final flush does */
	{ 1024, 1024, false },			/* all was buffered */
	{ 100 * 1024, 100 * 1024 - 320, false },	/* E's '\n' is over */
};

static int
fsize_child(const char *spool, rlim_t limit, size_t bodylen,
    bool write_fails)
{
	struct rlimit		 rl = { limit, limit };
	struct event_base	*base;
	struct job_pool		*pool;
	struct queue		*q;
	struct queue_env	 env;
	struct queue_msg	*m;
	struct commit_res	 r;
	char			 err[256], p[512], chunk[4096];
	size_t			 off;
	int			 failed = 0;

	signal(SIGXFSZ, SIG_IGN);	/* as the server does: EFBIG instead */
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1 ||
	    (base = event_base_new()) == NULL ||
	    (pool = job_pool_new(base, 1)) == NULL ||
	    (q = queue_open(spool, pool, err, sizeof(err))) == NULL)
		return 10;
	env_init(&env, 3);
	if ((m = queue_msg_new(q, &env)) == NULL)
		return 11;
	memset(chunk, 'x', sizeof(chunk));
	for (off = 0; off < bodylen && !failed; off += sizeof(chunk))
		if (queue_msg_write(m, chunk, bodylen - off < sizeof(chunk) ?
		    bodylen - off : sizeof(chunk)) == -1) {
			if (errno != EFBIG)
				return 12;
			failed = 1;
		}
	if (failed != write_fails)
		return 13;
	if (failed && (queue_msg_write(m, "y", 1) != -1 || errno != EFBIG))
		return 14;		/* the error is sticky */
	commit_wait(base, m, 7, &r);
	if (!r.fired || r.ok || r.sid != 7)
		return 15;
	snprintf(p, sizeof(p), "%s/incoming", spool);
	if (dir_count(p) != 0 || dir_count(queue_dir(q)) != 0)
		return 16;
	job_pool_free(pool);
	queue_close(q);
	event_base_free(base);
	return 0;
}

static void
test_write_error(void **state)
{
	struct fx	*fx = *state;
	size_t		 i;
	pid_t		 pid;
	int		 status;

	for (i = 0; i < sizeof(fsize_cases) / sizeof(fsize_cases[0]); i++) {
		fflush(NULL);
		assert_true((pid = fork()) >= 0);
		if (pid == 0)
			_exit(fsize_child(fx->spool, fsize_cases[i].limit,
			    fsize_cases[i].body, fsize_cases[i].write_fails));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) != 0)
			fail_msg("case %zu: child check %d failed", i,
			    WEXITSTATUS(status));
	}
}

struct scan_res {
	size_t	n;
	char	ids[8][ID_STRLEN + 1];
};

static void
scan_cb(void *arg, const char *qid)
{
	struct scan_res	*s = arg;

	if (s->n < 8)
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", qid);
	s->n++;
}

static void
test_scan_path(void **state)
{
	struct fx	*fx = *state;
	struct scan_res	 s;
	char		 qids[3][ID_STRLEN + 1], p[256], *qp;
	size_t		 i;

	for (i = 0; i < 3; i++)
		msg_commit_body(fx, (const uint8_t *)"z\r\n", 3, 1, qids[i]);
	snprintf(p, sizeof(p), "%s/README", queue_dir(fx->q));
	file_write(p, "x", 1, 0);
	snprintf(p, sizeof(p), "%s/0123456789abcdef", queue_dir(fx->q));
	file_write(p, "x", 1, 0);
	snprintf(p, sizeof(p), "%s/0123456789ABCDEF0", queue_dir(fx->q));
	file_write(p, "x", 1, 0);
	snprintf(p, sizeof(p), "%s/0000000000000000", queue_dir(fx->q));
	assert_int_equal(mkdir(p, 0700), 0);	/* a folder is no message */
	memset(&s, 0, sizeof(s));
	assert_int_equal(queue_scan(fx->q, scan_cb, &s), 0);
	assert_int_equal(s.n, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(s.ids[i], qids[i]);
	assert_true(strcmp(qids[0], qids[1]) < 0);

	qp = qpath(fx, qids[1]);
	snprintf(p, sizeof(p), "%s/var/spool/queue/%s", fx->tmp, qids[1]);
	assert_string_equal(qp, p);
	free(qp);
	errno = 0;
	assert_null(queue_path(fx->q, "../../etc/passwd"));
	assert_int_equal(errno, EINVAL);
	assert_null(queue_path(fx->q, "0123456789abcdef"));
	assert_null(queue_path(fx->q, ""));
}

/* One record at the start of the bytes. */
#define R(s)	(const uint8_t *)(s), sizeof(s) - 1
static const struct {
	const uint8_t	*in;
	size_t		 len;
	enum parse_rc	 rc;
	int		 type;
	size_t		 plen;
} rec_cases[] = {
	{ R("V000000000000000e:mxgate-queue 1\n"), PARSE_OK, 'V', 14 },
	{ R("E0000000000000000:\n"), PARSE_OK, 'E', 0 },
	{ R("E0000000000000000:\nV0"), PARSE_OK, 'E', 0 },
	{ R("S0000000000000000:\n"), PARSE_OK, 'S', 0 },
	{ R("R0000000000000003:a\nb\n"), PARSE_OK, 'R', 3 },	/* framed */
	{ R(""), PARSE_MORE, 0, 0 },
	{ R("V"), PARSE_MORE, 0, 0 },
	{ R("V00000"), PARSE_MORE, 0, 0 },
	{ R("V000000000000000e"), PARSE_MORE, 0, 0 },
	{ R("V000000000000000e:"), PARSE_MORE, 0, 0 },
	{ R("V000000000000000e:mxgate-queue 1"), PARSE_MORE, 0, 0 },
	{ R("C0000000000010000:"), PARSE_MORE, 0, 0 },	/* 64 KiB: ok */
	{ R("B0000000100000000:"), PARSE_MORE, 0, 0 },	/* 4 GiB: ok */
	{ R("X0000000000000000:\n"), PARSE_BAD, 0, 0 },
	{ R("v0000000000000000:\n"), PARSE_BAD, 0, 0 },
	{ R("\0"), PARSE_BAD, 0, 0 },
	{ R("Vg"), PARSE_BAD, 0, 0 },
	{ R("V000000000000000E:mxgate-queue 1\n"), PARSE_BAD, 0, 0 },
	{ R("V 00000000000000e:mxgate-queue 1\n"), PARSE_BAD, 0, 0 },
	{ R("V000000000000000e;mxgate-queue 1\n"), PARSE_BAD, 0, 0 },
	{ R("V000000000000000e:mxgate-queue 1X"), PARSE_BAD, 0, 0 },
	{ R("E0000000000000000:X"), PARSE_BAD, 0, 0 },
	{ R("C0000000000010001:"), PARSE_TOOLONG, 0, 0 },
	{ R("Rffffffffffffffff:"), PARSE_TOOLONG, 0, 0 },
	{ R("B0000000100000001:"), PARSE_TOOLONG, 0, 0 },
	{ R("Bffffffffffffffff:"), PARSE_TOOLONG, 0, 0 },
};

static void
test_rec_parse(void **state)
{
	struct queue_rec	r;
	enum parse_rc		rc;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(rec_cases) / sizeof(rec_cases[0]); i++) {
		memset(&r, 0, sizeof(r));
		rc = queue_rec_parse(rec_cases[i].in, rec_cases[i].len, &r);
		if (rc != rec_cases[i].rc)
			fail_msg("case %zu: rc %d, want %d", i, rc,
			    rec_cases[i].rc);
		if (rc != PARSE_OK)
			continue;
		assert_int_equal(r.type, rec_cases[i].type);
		assert_int_equal(r.len, rec_cases[i].plen);
		assert_ptr_equal(r.payload, rec_cases[i].in + QUEUE_REC_HDRLEN);
		assert_int_equal(r.size, QUEUE_REC_HDRLEN + r.len + 1);
	}
}

static void
test_rec_header(void **state)
{
	char	h[QUEUE_REC_HDRLEN];

	(void)state;
	queue_rec_header(h, 'B', 0x1234abcdULL);
	assert_memory_equal(h, "B000000001234abcd:", QUEUE_REC_HDRLEN);
	queue_rec_header(h, 'D', 0);
	assert_memory_equal(h, "D0000000000000000:", QUEUE_REC_HDRLEN);
}

/*
 * Whole files, spelled as "T:payload" records joined by '|' ('~' stands
 * for '|' and '%' for NUL inside a payload), then a raw tail.
 */
static const struct {
	const char	*recs;
	const char	*tail;
	enum parse_rc	 rc;
	size_t		 nrcpts, ndone;
} file_cases[] = {
#define HEAD	"V:mxgate-queue 1|I:0123456789ABCDEF|T:1700000000|C:192.0.2.1|" \
		"H:h.example|S:a@b.example|"
	{ HEAD "R:x@y|B:body\r\n|E:", "", PARSE_OK, 1, 0 },
	{ HEAD "R:x@y|R:z@y|B:|E:|D:1|D:0|D:1", "", PARSE_OK, 2, 3 },
	{ HEAD "R:x@y|B:b|E:|D:0", "D000", PARSE_OK, 1, 1 },
	{ HEAD "R:x@y|B:b|E:", "D0000000000000001:0", PARSE_OK, 1, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:0|C:|H:|S:|R:x|B:|E:", "",
	    PARSE_OK, 1, 0 },
	{ HEAD "R:x@y|B:body", "", PARSE_MORE, 0, 0 },
	{ HEAD "R:x@y", "", PARSE_MORE, 0, 0 },
	{ HEAD "R:x@y|B:b", "E00000", PARSE_MORE, 0, 0 },
	{ "", "", PARSE_MORE, 0, 0 },
	{ "I:0123456789ABCDEF|V:mxgate-queue 1", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 2", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789abcdef", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDE", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:-1", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:017", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:99999999999999999999", "",
	    PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:1|H:h", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:1|C:a%b", "", PARSE_BAD,
	    0, 0 },
	{ HEAD "B:b|E:", "", PARSE_BAD, 0, 0 },		/* no recipient */
	{ HEAD "R:|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x%y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|D:0|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:x", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|D:1", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|D:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|D:00", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|R:z", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:", "R000", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:", "\n", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:", "D0000000000010001:", PARSE_TOOLONG, 0, 0 },
	{ HEAD "R:x@y|B:b|E:", "Dffffffffffffffff:", PARSE_TOOLONG, 0, 0 },
	/* U (received with SMTPUTF8): empty, once, after S, before R */
	{ HEAD "U:|R:x@y|R:z@y|B:b|E:|D:1", "", PARSE_OK, 2, 1 },
	{ HEAD "U:x|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "U:|U:|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|U:|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|U:", "", PARSE_BAD, 0, 0 },
	{ HEAD "U:|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ "V:mxgate-queue 1|I:0123456789ABCDEF|T:1|C:c|H:h|U:|S:|R:x|B:|E:",
	    "", PARSE_BAD, 0, 0 },
	/* P (proofs about the sender): once, after S, before R, key=value */
	{ HEAD "P:spf=pass spf.identity=mailfrom|R:x@y|B:b|E:", "", PARSE_OK,
	    1, 0 },
	{ HEAD "U:|P:spf=fail future.key=x_1|R:x@y|B:b|E:", "", PARSE_OK,
	    1, 0 },
	{ HEAD "P:|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "P:spf|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "P:spf=pass  x=y|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "P:spf=Pass|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "P:spf=pass |R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "P:spf=pass|P:spf=pass|R:x@y|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|P:spf=pass|B:b|E:", "", PARSE_BAD, 0, 0 },
	{ HEAD "R:x@y|B:b|E:|P:spf=pass", "", PARSE_BAD, 0, 0 },
#undef HEAD
};

static void
file_build(struct buf *b, const char *recs, const char *tail)
{
	const char	*p = recs, *end;
	char		 h[QUEUE_REC_HDRLEN], pl[256];
	size_t		 n, i;

	while (*p != '\0') {
		end = strchr(p, '|');
		n = end ? (size_t)(end - p) : strlen(p);
		assert_true(n >= 2 && p[1] == ':' && n - 2 < sizeof(pl));
		for (i = 0; i < n - 2; i++)
			pl[i] = p[2 + i] == '~' ? '|' :
			    p[2 + i] == '%' ? '\0' : p[2 + i];
		queue_rec_header(h, p[0], n - 2);
		assert_int_equal(buf_add(b, h, sizeof(h)), 0);
		assert_int_equal(buf_add(b, pl, n - 2), 0);
		assert_int_equal(buf_addc(b, '\n'), 0);
		p += n + (end ? 1 : 0);
	}
	assert_int_equal(buf_add(b, tail, strlen(tail)), 0);
}

static void
test_file_parse(void **state)
{
	struct queue_rec_file	f;
	enum parse_rc		rc;
	struct buf		b;
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(file_cases) / sizeof(file_cases[0]); i++) {
		buf_init(&b, 1 << 16);
		file_build(&b, file_cases[i].recs, file_cases[i].tail);
		rc = queue_rec_parse_file(b.data, b.len, &f);
		if (rc != file_cases[i].rc)
			fail_msg("case %zu: rc %d, want %d", i, rc,
			    file_cases[i].rc);
		if (rc == PARSE_OK) {
			assert_int_equal(f.nrcpts, file_cases[i].nrcpts);
			assert_int_equal(f.ndone, file_cases[i].ndone);
			assert_int_equal(f.smtputf8,
			    strstr(file_cases[i].recs, "|U:|") != NULL);
			assert_int_equal(f.validlen,
			    b.len - strlen(file_cases[i].tail));
		}
		buf_free(&b);
	}
}

/* The P record's keys: found by name, unknown ones skipped. */
static void
test_proof_get(void **state)
{
	static const char	pl[] = "spf.identity=helo spf=softfail x=";
	struct queue_rec	r = { QUEUE_REC_T_PROOF, (const uint8_t *)pl,
				    sizeof(pl) - 1, 0 };
	const uint8_t		*v;
	size_t			 n;

	(void)state;
	assert_true(queue_rec_proof_valid(r.payload, r.len));
	v = queue_rec_proof_get(&r, "spf", &n);
	assert_non_null(v);
	assert_int_equal(n, 8);
	assert_memory_equal(v, "softfail", 8);
	v = queue_rec_proof_get(&r, "spf.identity", &n);
	assert_non_null(v);
	assert_memory_equal(v, "helo", n);
	v = queue_rec_proof_get(&r, "x", &n);
	assert_non_null(v);
	assert_int_equal(n, 0);
	assert_null(queue_rec_proof_get(&r, "dkim", &n));
	assert_null(queue_rec_proof_get(&r, "sp", &n));
	r.type = QUEUE_REC_T_SENDER;
	assert_null(queue_rec_proof_get(&r, "spf", &n));
}

/* The header bounds: exactly QUEUE_REC_META_MAX passes, one more not. */
static void
test_file_bounds(void **state)
{
	struct queue_rec_file	f;
	struct buf		b;
	char			h[QUEUE_REC_HDRLEN], *big;
	size_t			n;

	(void)state;
	assert_non_null(big = malloc(QUEUE_REC_META_MAX + 1));
	memset(big, 'h', QUEUE_REC_META_MAX + 1);
	for (n = QUEUE_REC_META_MAX; n <= QUEUE_REC_META_MAX + 1; n++) {
		buf_init(&b, 1 << 20);
		file_build(&b, "V:mxgate-queue 1|I:0123456789ABCDEF|T:5|C:c",
		    "");
		queue_rec_header(h, 'H', n);
		assert_int_equal(buf_add(&b, h, sizeof(h)), 0);
		assert_int_equal(buf_add(&b, big, n), 0);
		assert_int_equal(buf_addc(&b, '\n'), 0);
		file_build(&b, "S:|R:r|B:|E:", "");
		assert_int_equal(queue_rec_parse_file(b.data, b.len, &f),
		    n == QUEUE_REC_META_MAX ? PARSE_OK : PARSE_TOOLONG);
		if (n == QUEUE_REC_META_MAX)
			assert_int_equal(f.helo.len, n);
		buf_free(&b);
	}
	free(big);
}

/* The reserve: off at 0, met by a tiny one, never by the largest. */
static void
test_space_ok(void **state)
{
	struct fx	*fx = *state;
	int		 i;

	assert_true(queue_space_ok(fx->q, 0));
	assert_true(queue_space_ok(fx->q, 1));
	for (i = 0; i < 3; i++)		/* refused each time, cached or not */
		assert_false(queue_space_ok(fx->q, UINT64_MAX));
	assert_true(queue_space_ok(fx->q, 1));	/* and back, same figure */
}

/*
 * One holder at a time: flock belongs to the open file description, so a
 * second take in this process conflicts as another process's would.
 */
static void
test_spool_lock(void **state)
{
	struct fx	*fx = *state;
	char		 err[512], want[512], path[256], text[32];
	pid_t		 holder = -1;
	int		 fd, fd2, flags;
	ssize_t		 n;

	snprintf(path, sizeof(path), "%s/new/spool", fx->tmp);
	fd = queue_lock_take(path, &holder, err, sizeof(err));
	if (fd == -1)
		fail_msg("queue_lock_take: %s", err);
	assert_int_equal(holder, 0);
	assert_true((flags = fcntl(fd, F_GETFD)) != -1 && (flags & FD_CLOEXEC));
	assert_int_equal(queue_lock_take(path, &holder, err, sizeof(err)), -1);
	assert_int_equal(holder, getpid());
	snprintf(want, sizeof(want), "spool %s is in use by pid %ld", path,
	    (long)getpid());
	assert_string_equal(err, want);
	/* the pid, as written: nothing else in the file */
	snprintf(path, sizeof(path), "%s/new/spool/%s", fx->tmp,
	    QUEUE_LOCK_NAME);
	assert_true((fd2 = open(path, O_RDONLY)) != -1);
	n = read(fd2, text, sizeof(text) - 1);
	close(fd2);
	assert_true(n > 0);
	text[n] = '\0';
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	assert_string_equal(text, want);
	/* a pid-less file (the holder has not written yet) still refuses */
	assert_true((fd2 = open(path, O_WRONLY | O_TRUNC)) != -1);
	close(fd2);
	snprintf(path, sizeof(path), "%s/new/spool", fx->tmp);
	assert_int_equal(queue_lock_take(path, &holder, err, sizeof(err)), -1);
	assert_int_equal(holder, 0);
	assert_non_null(strstr(err, "is in use by another process"));
	close(fd);	/* released: the next one takes it */
	fd = queue_lock_take(path, &holder, err, sizeof(err));
	if (fd == -1)
		fail_msg("queue_lock_take after release: %s", err);
	close(fd);
}

/*
 * RFC 3461 records: M (RET, ENVID) and N (NOTIFY, ORCPT) written only
 * where a parameter was given, read back; W (delay warned) appended; a
 * file without them (every file before DSN) loads with them unset.
 */
static void
test_dsn_records(void **state)
{
	static const unsigned	 notify[3] = { QUEUE_NOTIFY_NEVER, 0,
				    QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_DELAY };
	static const char *const orcpt[3] = { "rfc822;a+2Bx@example.test",
				    NULL, "" };
	struct fx		*fx = *state;
	struct queue_env	 env;
	struct queue_msg	*m;
	struct commit_res	 r;
	struct queue_file	 qf;
	char			 qid[ID_STRLEN + 1], *path;

	env_init(&env, 3);
	env.dsn_ret = QUEUE_DSN_RET_FULL;
	env.dsn_envid = "QQ+2B1";
	env.dsn_notify = notify;
	env.dsn_orcpt = orcpt;
	assert_non_null(m = queue_msg_new(fx->q, &env));
	snprintf(qid, sizeof(qid), "%s", queue_msg_id(m));
	assert_int_equal(queue_msg_write(m, "Subject: x\r\n\r\nbody\r\n",
	    20), 0);
	commit_wait(fx->base, m, 1, &r);
	assert_true(r.ok);
	path = qpath(fx, qid);
	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_int_equal(qf.nrcpts, 3);
	assert_int_equal(qf.dsn_ret, QUEUE_DSN_RET_FULL);
	assert_string_equal(qf.dsn_envid, "QQ+2B1");
	assert_int_equal(qf.dsn_notify[0], QUEUE_NOTIFY_NEVER);
	assert_int_equal(qf.dsn_notify[1], 0);
	assert_int_equal(qf.dsn_notify[2], QUEUE_NOTIFY_SUCCESS |
	    QUEUE_NOTIFY_DELAY);
	assert_string_equal(qf.dsn_orcpt[0], "rfc822;a+2Bx@example.test");
	assert_null(qf.dsn_orcpt[1]);
	assert_null(qf.dsn_orcpt[2]);
	assert_string_equal(qf.rcpts[2], t_rcpts[2]);
	assert_false(qf.delay_warned);
	assert_int_equal(queue_file_mark_warned(&qf), 0);
	assert_int_equal(queue_file_mark_done(&qf, 1), 0);
	assert_int_equal(queue_file_sync(&qf), 0);
	queue_file_close(&qf);
	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_true(qf.delay_warned);
	assert_true(qf.done[1]);
	assert_int_equal(qf.dsn_notify[2], QUEUE_NOTIFY_SUCCESS |
	    QUEUE_NOTIFY_DELAY);
	queue_file_close(&qf);
	free(path);

	/* no parameters: no M or N record, and everything unset */
	env_init(&env, 2);
	assert_non_null(m = queue_msg_new(fx->q, &env));
	snprintf(qid, sizeof(qid), "%s", queue_msg_id(m));
	assert_int_equal(queue_msg_write(m, "\r\n", 2), 0);
	commit_wait(fx->base, m, 2, &r);
	assert_true(r.ok);
	path = qpath(fx, qid);
	assert_int_equal(queue_file_open(path, &qf), 0);
	assert_int_equal(qf.dsn_ret, QUEUE_DSN_RET_UNSET);
	assert_null(qf.dsn_envid);
	assert_int_equal(qf.dsn_notify[0] | qf.dsn_notify[1], 0);
	assert_false(qf.delay_warned);
	assert_memory_equal(qf.map, "V", 1);
	assert_null(memmem(qf.map, qf.endoff, "\nM0", 3));
	assert_null(memmem(qf.map, qf.endoff, "\nN0", 3));
	queue_file_close(&qf);
	free(path);
}

/* Where the DSN records may stand, and what their payloads may say. */
static void
test_dsn_rec_parse(void **state)
{
	static const struct {
		const char	*f;
		enum parse_rc	 rc;
	} cases[] = {
#define HDR "V000000000000000e:mxgate-queue 1\n" \
	    "I0000000000000010:0123456789ABCDEF\nT0000000000000001:1\n" \
	    "C0000000000000000:\nH0000000000000000:\nS0000000000000000:\n"
#define TAIL "B0000000000000000:\nE0000000000000000:\n"
		{ HDR "R0000000000000001:a\n" TAIL, PARSE_OK },	/* old */
		{ HDR "M0000000000000006:FULL x\nR0000000000000001:a\n"
		    TAIL, PARSE_OK },
		{ HDR "M0000000000000002:- \nR0000000000000001:a\n" TAIL,
		    PARSE_OK },
		{ HDR "M0000000000000006:MOST x\nR0000000000000001:a\n"
		    TAIL, PARSE_BAD },
		{ HDR "M0000000000000006:FULL x\nM0000000000000006:FULL x\n"
		    "R0000000000000001:a\n" TAIL, PARSE_BAD },	/* twice */
		{ HDR "R0000000000000001:a\nM0000000000000006:FULL x\n"
		    TAIL, PARSE_BAD },			/* after R */
		{ HDR "R0000000000000001:a\nN0000000000000001:1\n" TAIL,
		    PARSE_OK },
		{ HDR "R0000000000000001:a\nN000000000000000a:6 rfc;a+2B\n"
		    TAIL, PARSE_OK },
		{ HDR "R0000000000000001:a\nN0000000000000001:3\n" TAIL,
		    PARSE_BAD },			/* NEVER,SUCCESS */
		{ HDR "R0000000000000001:a\nN0000000000000005:6 a+b\n"
		    TAIL, PARSE_BAD },			/* no type, bad xtext */
		{ HDR "R0000000000000001:a\nN0000000000000001:4\n"
		    "N0000000000000001:4\n" TAIL, PARSE_BAD },	/* twice */
		{ HDR "N0000000000000001:4\nR0000000000000001:a\n" TAIL,
		    PARSE_BAD },			/* before its R */
		{ HDR "R0000000000000001:a\n" TAIL "W0000000000000000:\n"
		    "D0000000000000001:0\n", PARSE_OK },
		{ HDR "R0000000000000001:a\n" TAIL "W0000000000000001:x\n",
		    PARSE_BAD },
		{ HDR "R0000000000000001:a\n" TAIL "W00000000", PARSE_OK },
#undef HDR
#undef TAIL
	};
	struct queue_rec_file	f;
	size_t			i, n;
	uint8_t			*p;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = strlen(cases[i].f);
		assert_non_null(p = malloc(n));
		memcpy(p, cases[i].f, n);
		if (queue_rec_parse_file(p, n, &f) != cases[i].rc)
			fail_msg("case %zu: want %d", i, cases[i].rc);
		free(p);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_reopen, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_commit_late, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_commit_proof, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_spare_reuse, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_torn, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_mark_done, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_done, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_trailing_d, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_incoming_cleanup,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_abort, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_msg_new_refuses, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_write_error, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_scan_path, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_space_ok, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_spool_lock, fx_setup,
		    fx_teardown),
		cmocka_unit_test(test_rec_parse),
		cmocka_unit_test(test_rec_header),
		cmocka_unit_test(test_file_parse),
		cmocka_unit_test(test_proof_get),
		cmocka_unit_test(test_file_bounds),
		cmocka_unit_test_setup_teardown(test_dsn_records, fx_setup,
		    fx_teardown),
		cmocka_unit_test(test_dsn_rec_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
