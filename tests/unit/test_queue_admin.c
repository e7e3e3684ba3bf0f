/*
 * test_queue_admin.c - the operator's side of the spool on files written
 * by the real queue API (job pool, event loop): list (states, order,
 * escaping, unreadable files), show (envelope, header only, escaping, the
 * header cap), delete, hold and release (folders, fsync'd moves, refusals),
 * and the lock: a file locked by another fd is "busy" after the wait; a
 * file removed while we waited is "not found".
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "lib/buf.h"
#include "lib/job.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

#define T_ARRIVAL	1700000000	/* 2023-11-14T22:13:20Z */
#define T_NOW		1700000600
#define T_ISO		"2023-11-14T22:13:20Z"

struct fx {
	char			 tmp[64];
	char			 spool[128];
	struct event_base	*base;
	struct job_pool		*pool;
	struct queue		*q;
	char			 err[512];
};

struct commit_res {
	bool	fired;
	bool	ok;
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static int
fx_setup(void **state)
{
	struct fx	*fx = calloc(1, sizeof(*fx));
	char		 err[256];

	assert_non_null(fx);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/mxqa.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->tmp);
	assert_non_null(fx->base = event_base_new());
	assert_non_null(fx->pool = job_pool_new(fx->base, 1));
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
	nftw(fx->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void
commit_cb(void *arg, uint64_t sid, bool ok, const char *qid)
{
	struct commit_res	*r = arg;

	(void)sid;
	(void)qid;
	r->fired = true;
	r->ok = ok;
}

/* A committed message; its id in qid. */
static void
msg_add(struct fx *fx, const char *sender, const char *const *rcpts,
    size_t nrcpts, const char *body, size_t blen, char qid[ID_STRLEN + 1])
{
	struct queue_env	 env = {
		.client = "192.0.2.7", .helo = "client.example",
		.sender = sender, .rcpts = rcpts, .nrcpts = nrcpts,
		.arrival = T_ARRIVAL,
	};
	struct timeval		 tv = { 0, 100000 };
	struct queue_msg	*m;
	struct commit_res	 r = { false, false };
	int			 i;

	assert_non_null(m = queue_msg_new(fx->q, &env));
	snprintf(qid, ID_STRLEN + 1, "%s", queue_msg_id(m));
	assert_int_equal(queue_msg_write(m, body, blen), 0);
	queue_msg_commit(m, NULL, 1, commit_cb, &r);
	for (i = 0; i < 100 && !r.fired; i++) {
		event_base_loopexit(fx->base, &tv);
		event_base_dispatch(fx->base);
	}
	assert_true(r.fired && r.ok);
}

static const char *const rcpts3[] = {
	"alice@example.org", "bob@example.org", "carol@example.org",
};
static const char	body1[] = "Received: from x\r\n\tby y\r\n"
			    "Subject: one\r\n\r\nSECRET BODY\r\n";

static void
spool_path(struct fx *fx, char *out, size_t len, const char *sub,
    const char *qid)
{
	snprintf(out, len, "%s/%s/%s", fx->spool, sub, qid);
}

static bool
exists(const char *p)
{
	struct stat	st;

	return stat(p, &st) == 0;
}

/* Run fn's output into a string (open_memstream). */
static char *
capture_list(struct fx *fx, enum queue_admin_rc want)
{
	char	*s = NULL;
	size_t	 n = 0;
	FILE	*f = open_memstream(&s, &n);

	assert_non_null(f);
	assert_int_equal(queue_admin_list(fx->spool, T_NOW, f, fx->err,
	    sizeof(fx->err)), want);
	fclose(f);
	return s;
}

static char *
capture_show(struct fx *fx, const char *qid, enum queue_admin_rc want)
{
	char	*s = NULL;
	size_t	 n = 0;
	FILE	*f = open_memstream(&s, &n);

	assert_non_null(f);
	assert_int_equal(queue_admin_show(fx->spool, qid, T_NOW, f, fx->err,
	    sizeof(fx->err)), want);
	fclose(f);
	return s;
}

static void
mark(struct fx *fx, const char *qid, long done, unsigned attempts,
    time_t next)
{
	struct queue_file	qf;
	char			p[256];

	spool_path(fx, p, sizeof(p), "queue", qid);
	assert_int_equal(queue_file_open(p, &qf), 0);
	if (done >= 0)
		assert_int_equal(queue_file_mark_done(&qf, (size_t)done), 0);
	if (attempts > 0)
		assert_int_equal(queue_file_mark_attempt(&qf, attempts, next),
		    0);
	queue_file_close(&qf);
}

/* An L record, as a deferred delivery writes it. */
static void
mark_error(struct fx *fx, const char *qid, time_t when, const char *text)
{
	struct queue_file	qf;
	char			p[256];

	spool_path(fx, p, sizeof(p), "queue", qid);
	assert_int_equal(queue_file_open(p, &qf), 0);
	assert_int_equal(queue_file_mark_error(&qf, when, text), 0);
	assert_string_equal(qf.last_error, text);
	queue_file_close(&qf);
}

static void
test_list(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], b[ID_STRLEN + 1], c[ID_STRLEN + 1];
	char		 d[ID_STRLEN + 1], want[2048], p[256], *got;
	int		 fd;

	got = capture_list(fx, QUEUE_ADMIN_OK);
	assert_string_equal(got, "0 messages\n");
	free(got);
	msg_add(fx, "", rcpts3, 3, body1, sizeof(body1) - 1, a);
	msg_add(fx, "we\x01ird\\@x.example", rcpts3, 1, "x\r\n", 3, b);
	msg_add(fx, "s@x.example", rcpts3 + 1, 2, "yy\r\n", 4, c);
	msg_add(fx, "t@x.example", rcpts3 + 2, 1, "z\r\n", 3, d);
	mark(fx, a, 1, 0, 0);				/* bob is done */
	mark(fx, b, -1, 2, T_NOW + 3600);		/* deferred */
	mark_error(fx, b, T_NOW - 60, "451 4.3.0 busy \x01");
	mark(fx, d, -1, 1, T_NOW - 10);			/* due: active */
	assert_int_equal(queue_admin_hold(fx->spool, c, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	/* a file with a queue id's name that is no queue file */
	spool_path(fx, p, sizeof(p), "queue", "0000000000000001");
	assert_true((fd = open(p, O_WRONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	snprintf(want, sizeof(want),
	    "0000000000000001 unreadable: Invalid argument\n"
	    "%s " T_ISO " %zu <> active\n"
	    "  <alice@example.org>\n  <carol@example.org>\n"
	    "%s " T_ISO " 3 <we\\x01ird\\\\@x.example> deferred: "
	    "attempts 2, next attempt 2023-11-14T23:23:20Z\n"
	    "  last error 2023-11-14T22:22:20Z: 451 4.3.0 busy \\x01\n"
	    "  <alice@example.org>\n"
	    "%s " T_ISO " 4 <s@x.example> held\n"
	    "  <bob@example.org>\n  <carol@example.org>\n"
	    "%s " T_ISO " 3 <t@x.example> active\n"
	    "  <carol@example.org>\n"
	    "5 messages\n", a, sizeof(body1) - 1, b, c, d);
	got = capture_list(fx, QUEUE_ADMIN_OK);
	assert_string_equal(got, want);
	free(got);
}

static void
test_show(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], want[2048], *got;
	static const char body[] = "Received: from x\r\n\tby y\r\n"
	    "Subject: caf\xc3\xa9 \x01\\\r\nX-Bare: lf\n\r\nSECRET BODY\r\n";

	msg_add(fx, "s@x.example", rcpts3, 3, body, sizeof(body) - 1, a);
	mark(fx, a, 2, 3, T_NOW + 60);
	snprintf(want, sizeof(want),
	    "id: %s\nstate: deferred\narrival: " T_ISO "\nsize: %zu\n"
	    "client: 192.0.2.7\nhelo: client.example\nsender: <s@x.example>\n"
	    "recipient: <alice@example.org> pending\n"
	    "recipient: <bob@example.org> pending\n"
	    "recipient: <carol@example.org> done\n"
	    "attempts: 3\nnext attempt: 2023-11-14T22:24:20Z\n"
	    "last error: none\n\n"
	    "Received: from x\n\tby y\n"
	    "Subject: caf\\xc3\\xa9 \\x01\\\\\nX-Bare: lf\n", a,
	    sizeof(body) - 1);
	got = capture_show(fx, a, QUEUE_ADMIN_OK);
	assert_string_equal(got, want);
	assert_null(strstr(got, "SECRET"));
	free(got);

	/* held: "none (held)"; the next attempt does not apply */
	assert_int_equal(queue_admin_hold(fx->spool, a, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	got = capture_show(fx, a, QUEUE_ADMIN_OK);
	assert_non_null(strstr(got, "\nstate: held\n"));
	assert_non_null(strstr(got, "\nnext attempt: none (held)\n"));
	free(got);
}

/* A header section with no end is cut at QUEUE_ADMIN_HEADER_MAX. */
static void
test_show_header_cap(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], *got, *body;
	size_t		 len = 3 * QUEUE_ADMIN_HEADER_MAX, i;

	assert_non_null(body = malloc(len));
	for (i = 0; i < len; i++)
		body[i] = i % 10 == 9 ? '\n' : 'X';
	msg_add(fx, "", rcpts3, 1, body, len, a);
	got = capture_show(fx, a, QUEUE_ADMIN_OK);
	assert_non_null(strstr(got, "\nattempts: 0\nnext attempt: now\n"));
	assert_non_null(strstr(got, "[header section cut at 65536 bytes]\n"));
	assert_true(strlen(got) < QUEUE_ADMIN_HEADER_MAX + 1024);
	free(got);
	free(body);
}

/* Refusals, table-driven: which op, which id, what answer. */
enum op { OP_SHOW, OP_DELETE, OP_HOLD, OP_RELEASE };

static const struct {
	enum op			 op;
	const char		*qid;	/* "A": a queued one, "H": a held one */
	enum queue_admin_rc	 rc;
	const char		*err;	/* prefix */
} refusals[] = {
	{ OP_SHOW, "0123456789abcdef", QUEUE_ADMIN_NOTFOUND, "no such" },
	{ OP_SHOW, "0123456789abcdeg", QUEUE_ADMIN_BADID, "not a queue id" },
	{ OP_SHOW, "../queue/A", QUEUE_ADMIN_BADID, "not a queue id" },
	{ OP_DELETE, "", QUEUE_ADMIN_BADID, "not a queue id" },
	{ OP_DELETE, "0123456789ABCDEF0", QUEUE_ADMIN_BADID, "not a queue" },
	{ OP_HOLD, "0123456789ABCDE", QUEUE_ADMIN_BADID, "not a queue id" },
	{ OP_RELEASE, "/etc/passwd", QUEUE_ADMIN_BADID, "not a queue id" },
	{ OP_SHOW, "0123456789ABCDEF", QUEUE_ADMIN_NOTFOUND, "no such" },
	{ OP_DELETE, "0123456789ABCDEF", QUEUE_ADMIN_NOTFOUND, "no such" },
	{ OP_HOLD, "0123456789ABCDEF", QUEUE_ADMIN_NOTFOUND, "no such" },
	{ OP_RELEASE, "0123456789ABCDEF", QUEUE_ADMIN_NOTFOUND, "no such" },
	{ OP_HOLD, "H", QUEUE_ADMIN_STATE, "" },
	{ OP_RELEASE, "A", QUEUE_ADMIN_STATE, "" },
};

static enum queue_admin_rc
run_op(struct fx *fx, enum op op, const char *qid)
{
	char	*out = NULL;
	size_t	 n = 0;
	FILE	*f;
	enum queue_admin_rc rc;

	switch (op) {
	case OP_SHOW:
		assert_non_null(f = open_memstream(&out, &n));
		rc = queue_admin_show(fx->spool, qid, T_NOW, f, fx->err,
		    sizeof(fx->err));
		fclose(f);
		free(out);
		return rc;
	case OP_DELETE:
		return queue_admin_delete(fx->spool, qid, 0, fx->err,
		    sizeof(fx->err));
	case OP_HOLD:
		return queue_admin_hold(fx->spool, qid, 0, fx->err,
		    sizeof(fx->err));
	case OP_RELEASE:
		return queue_admin_release(fx->spool, qid, 0, fx->err,
		    sizeof(fx->err));
	}
	return QUEUE_ADMIN_ERROR;
}

static void
test_refusals(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], h[ID_STRLEN + 1], *got;
	const char	*qid;
	size_t		 i;

	msg_add(fx, "", rcpts3, 1, "a\r\n", 3, a);
	msg_add(fx, "", rcpts3, 1, "h\r\n", 3, h);
	assert_int_equal(queue_admin_hold(fx->spool, h, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		qid = strcmp(refusals[i].qid, "A") == 0 ? a :
		    strcmp(refusals[i].qid, "H") == 0 ? h : refusals[i].qid;
		fx->err[0] = '\0';
		if (run_op(fx, refusals[i].op, qid) != refusals[i].rc)
			fail_msg("case %zu: rc %d, want %d (%s)", i,
			    run_op(fx, refusals[i].op, qid), refusals[i].rc,
			    fx->err);
		if (strncmp(fx->err, refusals[i].err,
		    strlen(refusals[i].err)) != 0 || fx->err[0] == '\0')
			fail_msg("case %zu: err \"%s\"", i, fx->err);
	}
	/* nothing moved or vanished */
	got = capture_list(fx, QUEUE_ADMIN_OK);
	assert_non_null(strstr(got, "\n2 messages\n"));
	free(got);
}

static void
test_delete(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], h[ID_STRLEN + 1], p[256], *got;

	msg_add(fx, "", rcpts3, 2, "a\r\n", 3, a);
	msg_add(fx, "", rcpts3, 2, "h\r\n", 3, h);
	assert_int_equal(queue_admin_hold(fx->spool, h, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_int_equal(queue_admin_delete(fx->spool, a, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	spool_path(fx, p, sizeof(p), "queue", a);
	assert_false(exists(p));
	assert_int_equal(queue_admin_delete(fx->spool, a, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_NOTFOUND);
	assert_int_equal(queue_admin_delete(fx->spool, h, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	spool_path(fx, p, sizeof(p), "hold", h);
	assert_false(exists(p));
	got = capture_list(fx, QUEUE_ADMIN_OK);
	assert_string_equal(got, "0 messages\n");
	free(got);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	struct stat	st;
	uint8_t		*p;
	int		 fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_non_null(p = malloc((size_t)st.st_size + 1));
	assert_int_equal(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static void
scan_cb(void *arg, const char *qid)
{
	(void)qid;
	(*(size_t *)arg)++;
}

static void
test_hold_release(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], qp[256], hp[256];
	uint8_t		*before, *after;
	size_t		 blen, alen, n = 0;
	struct stat	 st;

	msg_add(fx, "s@x.example", rcpts3, 3, body1, sizeof(body1) - 1, a);
	spool_path(fx, qp, sizeof(qp), "queue", a);
	spool_path(fx, hp, sizeof(hp), "hold", a);
	before = slurp(qp, &blen);
	snprintf(fx->err, sizeof(fx->err), "%s/hold", fx->spool);
	assert_false(exists(fx->err));
	assert_int_equal(queue_admin_hold(fx->spool, a, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	snprintf(fx->err, sizeof(fx->err), "%s/hold", fx->spool);
	assert_int_equal(stat(fx->err, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_false(exists(qp));
	assert_true(exists(hp));
	/* the gateway's scan does not see it */
	assert_int_equal(queue_scan(fx->q, scan_cb, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(queue_admin_release(fx->spool, a, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_true(exists(qp));
	assert_false(exists(hp));
	after = slurp(qp, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(after, before, blen);
	assert_int_equal(queue_scan(fx->q, scan_cb, &n), 0);
	assert_int_equal(n, 1);
	free(before);
	free(after);
}

/* Queue ids are accepted in any case (issue 12). */
static void
test_any_case(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], low[ID_STRLEN + 1], canon[ID_STRLEN + 1];
	char		 qp[256], hp[256], *got;
	size_t		 i;
	int		 tries;

	/* an id may be all digits (its high part is the time): take the
	 * first message whose id holds a hex letter, the others stay */
	for (tries = 0; tries < 64; tries++) {
		msg_add(fx, "s@x.example", rcpts3, 1, "a\r\n", 3, a);
		for (i = 0; i <= ID_STRLEN; i++)
			low[i] = (char)tolower((unsigned char)a[i]);
		if (strcmp(low, a) != 0)
			break;
	}
	assert_string_not_equal(low, a);	/* one had a letter */
	assert_int_equal(queue_admin_canon_id(low, canon), 0);
	assert_string_equal(canon, a);
	assert_int_equal(queue_admin_canon_id("0123456789abcdeg", canon), -1);
	assert_int_equal(queue_admin_canon_id("0123456789abcde", canon), -1);
	spool_path(fx, qp, sizeof(qp), "queue", a);
	spool_path(fx, hp, sizeof(hp), "hold", a);
	got = capture_show(fx, low, QUEUE_ADMIN_OK);
	assert_non_null(strstr(got, a));
	free(got);
	assert_int_equal(queue_admin_hold(fx->spool, low, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_true(exists(hp));
	assert_int_equal(queue_admin_release(fx->spool, low, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_true(exists(qp));
	assert_int_equal(queue_admin_delete(fx->spool, low, 0, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_false(exists(qp));
}

/* The last error: one line, the last L record wins, `show` prints it. */
static void
test_last_error(void **state)
{
	struct fx		*fx = *state;
	struct queue_file	 qf;
	char			 a[ID_STRLEN + 1], qp[256], *got;

	msg_add(fx, "s@x.example", rcpts3, 1, "a\r\n", 3, a);
	mark_error(fx, a, T_NOW - 120, "first");
	spool_path(fx, qp, sizeof(qp), "queue", a);
	assert_int_equal(queue_file_open(qp, &qf), 0);
	assert_int_equal(queue_file_mark_error(&qf, T_NOW - 60,
	    "421 4.4.2 gone\r\nDATA"), 0);
	queue_file_close(&qf);
	assert_int_equal(queue_file_open(qp, &qf), 0);
	assert_string_equal(qf.last_error, "421 4.4.2 gone??DATA");
	assert_int_equal(qf.last_error_time, T_NOW - 60);
	queue_file_close(&qf);
	got = capture_show(fx, a, QUEUE_ADMIN_OK);
	assert_non_null(strstr(got, "\nlast error: 2023-11-14T22:22:20Z "
	    "421 4.4.2 gone??DATA\n"));
	free(got);
}

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Another fd holds the lock (as a delivery would): busy after the wait. */
static void
test_busy(void **state)
{
	struct fx	*fx = *state;
	char		 a[ID_STRLEN + 1], qp[256], hp[256];
	double		 t0, dt;
	int		 fd, i;
	enum queue_admin_rc (*ops[])(const char *, const char *, unsigned,
	    char *, size_t) = { queue_admin_delete, queue_admin_hold };

	msg_add(fx, "", rcpts3, 1, "a\r\n", 3, a);
	spool_path(fx, qp, sizeof(qp), "queue", a);
	spool_path(fx, hp, sizeof(hp), "hold", a);
	assert_true((fd = open(qp, O_RDONLY)) >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	for (i = 0; i < 2; i++) {
		t0 = now_s();
		assert_int_equal(ops[i](fx->spool, a, 300, fx->err,
		    sizeof(fx->err)), QUEUE_ADMIN_BUSY);
		dt = now_s() - t0;
		assert_string_equal(fx->err,
		    "busy: being delivered, try again");
		assert_true(dt >= 0.25 && dt < 3.0);
		assert_true(exists(qp));
		assert_false(exists(hp));
	}
	/* released by its holder: the same call goes through */
	assert_int_equal(flock(fd, LOCK_UN), 0);
	assert_int_equal(queue_admin_hold(fx->spool, a, 300, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
	assert_true(exists(hp));
	/* release takes the lock too */
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(queue_admin_release(fx->spool, a, 100, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_BUSY);
	assert_true(exists(hp));
	close(fd);
	assert_int_equal(queue_admin_release(fx->spool, a, 100, fx->err,
	    sizeof(fx->err)), QUEUE_ADMIN_OK);
}

struct holder {
	char	path[256];
	int	fd;
};

/* A delivery that finishes while we wait: it removes the file, unlocks. */
static void *
holder_run(void *arg)
{
	struct holder	*h = arg;
	struct timespec	 ts = { 0, 200 * 1000000L };

	nanosleep(&ts, NULL);
	unlink(h->path);
	close(h->fd);
	return NULL;
}

static void
test_gone_while_waiting(void **state)
{
	struct fx	*fx = *state;
	struct holder	 h;
	pthread_t	 t;
	char		 a[ID_STRLEN + 1];
	int		 i;

	for (i = 0; i < 2; i++) {
		msg_add(fx, "", rcpts3, 1, "a\r\n", 3, a);
		spool_path(fx, h.path, sizeof(h.path), "queue", a);
		assert_true((h.fd = open(h.path, O_RDONLY)) >= 0);
		assert_int_equal(flock(h.fd, LOCK_EX), 0);
		assert_int_equal(pthread_create(&t, NULL, holder_run, &h), 0);
		assert_int_equal((i == 0 ? queue_admin_delete :
		    queue_admin_hold)(fx->spool, a, 5000, fx->err,
		    sizeof(fx->err)), QUEUE_ADMIN_NOTFOUND);
		assert_non_null(strstr(fx->err, "meanwhile"));
		pthread_join(t, NULL);
		snprintf(h.path, sizeof(h.path), "%s/hold/%s", fx->spool, a);
		assert_false(exists(h.path));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_show, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_show_header_cap, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_any_case, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_last_error, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_delete, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_hold_release, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_busy, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_gone_while_waiting,
		    fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
