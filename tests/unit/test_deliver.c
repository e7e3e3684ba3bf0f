/*
 * test_deliver.c - Maildir delivery: folder layout and lower-casing, the
 * deterministic file name, CRLF to LF, no second copy on redelivery (in
 * new/ or moved to cur/), recipient delimiters, unsafe names refused,
 * and a write error reported with its cause.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
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

#include "deliver/deliver.h"
#include "queue/queue.h"

#define T_QID		"00061234ABCDEF01"
#define T_ARRIVAL	1700000000
#define T_HOST		"mx.example"
#define T_NAME(i)	"1700000000.M" T_QID "R" i "." T_HOST

struct fx {
	char			 root[128];
	char			 tmp[64];
	struct queue_file	 qf;
	char			*rcpts[8];
	bool			 done[8];
};

static const char	t_body[] = "Received: from c.example\r\n"
	"\tby mx.example\r\nSubject: hi\r\n\r\nline one\r\n"
	"bare\rcr stays\r\n\r\n.dot line\r\nlast\r\n";
static const char	t_body_lf[] = "Received: from c.example\n"
	"\tby mx.example\nSubject: hi\n\nline one\n"
	"bare\rcr stays\n\n.dot line\nlast\n";

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

/* Recipients for the fake queue file; NULL-terminated list. */
static void
fx_rcpts(struct fx *fx, const char *const *rcpts)
{
	size_t	i;

	for (i = 0; i < fx->qf.nrcpts; i++)
		free(fx->rcpts[i]);
	for (i = 0; rcpts[i] != NULL && i < 8; i++)
		assert_non_null(fx->rcpts[i] = strdup(rcpts[i]));
	fx->qf.nrcpts = i;
}

static int
fx_setup(void **state)
{
	static const char *const	 rcpts[] = { "alice@example.org",
	    "Bob.Smith@Example.ORG", NULL };
	struct fx			*fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/mxd.XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	snprintf(fx->root, sizeof(fx->root), "%s/mail", fx->tmp);
	snprintf(fx->qf.qid, sizeof(fx->qf.qid), "%s", T_QID);
	fx->qf.arrival = T_ARRIVAL;
	fx->qf.rcpts = fx->rcpts;
	fx->qf.done = fx->done;
	fx->qf.body = (const uint8_t *)t_body;
	fx->qf.bodylen = sizeof(t_body) - 1;
	fx->qf.fd = -1;
	fx_rcpts(fx, rcpts);
	*state = fx;
	return 0;
}

static int
fx_teardown(void **state)
{
	struct fx	*fx = *state;
	size_t		 i;

	for (i = 0; i < fx->qf.nrcpts; i++)
		free(fx->rcpts[i]);
	nftw(fx->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* The names in a folder (not . and ..), at most 8, and their count. */
static size_t
dir_names(const char *path, char names[8][256])
{
	struct dirent	*de;
	DIR		*d;
	size_t		 n = 0;

	if ((d = opendir(path)) == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n < 8)
			snprintf(names[n], 256, "%s", de->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static void
assert_content(const char *path, const char *want)
{
	char	buf[1024];
	ssize_t	n;
	int	fd;

	assert_true((fd = open(path, O_RDONLY)) >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, strlen(want));
}

static void
deliver_ok(struct fx *fx, const char *delim, const char *host, size_t i)
{
	char	err[256] = "";

	if (deliver_maildir(fx->root, delim, host, &fx->qf, i, err,
	    sizeof(err)) != 0)
		fail_msg("deliver %zu: %s", i, err);
}

static void
test_deliver_basic(void **state)
{
	struct fx	*fx = *state;
	char		 p[512], names[8][256];
	struct stat	 st;

	deliver_ok(fx, "", T_HOST, 0);
	deliver_ok(fx, "", T_HOST, 1);
	snprintf(p, sizeof(p), "%s/example.org/alice/new", fx->root);
	assert_int_equal(dir_names(p, names), 1);
	assert_string_equal(names[0], T_NAME("0"));
	snprintf(p, sizeof(p), "%s/example.org/alice/new/%s", fx->root,
	    T_NAME("0"));
	assert_content(p, t_body_lf);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(p, sizeof(p), "%s/example.org/alice/tmp", fx->root);
	assert_int_equal(dir_names(p, names), 0);
	snprintf(p, sizeof(p), "%s/example.org/alice/cur", fx->root);
	assert_int_equal(dir_names(p, names), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* folders are lower-cased; the index is in the name */
	snprintf(p, sizeof(p), "%s/example.org/bob.smith/new/%s", fx->root,
	    T_NAME("1"));
	assert_content(p, t_body_lf);
	snprintf(p, sizeof(p), "%s", fx->root);
	assert_int_equal(dir_names(p, names), 1);	/* example.org only */
}

struct racer {
	struct fx		*fx;
	pthread_barrier_t	*go;
	char			 root[160];
	size_t			 i;
	int			 rc;
	char			 err[256];
};

static void *
racer_run(void *arg)
{
	struct racer	*r = arg;

	pthread_barrier_wait(r->go);
	r->rc = deliver_maildir(r->root, NULL, T_HOST, &r->fx->qf, r->i,
	    r->err, sizeof(r->err));
	return NULL;
}

/*
 * Two deliveries at once into a Maildir root that does not exist yet:
 * both must succeed, whichever creates it (the loser's mkdir gets
 * EEXIST).  Many rounds, each on a fresh root, to meet the race.
 */
static void
test_deliver_root_race(void **state)
{
	struct fx		*fx = *state;
	struct racer		 r[2];
	pthread_t		 t[2];
	pthread_barrier_t	 go;
	int			 round, k;

	for (round = 0; round < 300; round++) {
		assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
		for (k = 0; k < 2; k++) {
			r[k] = (struct racer){ .fx = fx, .go = &go,
			    .i = (size_t)k };
			snprintf(r[k].root, sizeof(r[k].root), "%s/race%d",
			    fx->tmp, round);
			assert_int_equal(pthread_create(&t[k], NULL,
			    racer_run, &r[k]), 0);
		}
		for (k = 0; k < 2; k++)
			assert_int_equal(pthread_join(t[k], NULL), 0);
		pthread_barrier_destroy(&go);
		for (k = 0; k < 2; k++)
			if (r[k].rc != 0)
				fail_msg("round %d, delivery %d: %s", round, k,
				    r[k].err);
	}
}

static void
test_deliver_twice(void **state)
{
	struct fx	*fx = *state;
	char		 p[512], names[8][256];

	deliver_ok(fx, NULL, T_HOST, 0);
	deliver_ok(fx, NULL, T_HOST, 0);
	snprintf(p, sizeof(p), "%s/example.org/alice/new", fx->root);
	assert_int_equal(dir_names(p, names), 1);
	snprintf(p, sizeof(p), "%s/example.org/alice/tmp", fx->root);
	assert_int_equal(dir_names(p, names), 0);
}

/* The MUA moved it to cur/ and added flags: still delivered. */
static void
test_deliver_moved(void **state)
{
	struct fx	*fx = *state;
	char		 from[512], to[512], names[8][256];

	deliver_ok(fx, "", T_HOST, 0);
	snprintf(from, sizeof(from), "%s/example.org/alice/new/%s", fx->root,
	    T_NAME("0"));
	snprintf(to, sizeof(to), "%s/example.org/alice/cur/%s:2,S", fx->root,
	    T_NAME("0"));
	assert_int_equal(rename(from, to), 0);
	deliver_ok(fx, "", T_HOST, 0);
	snprintf(from, sizeof(from), "%s/example.org/alice/new", fx->root);
	assert_int_equal(dir_names(from, names), 0);
	snprintf(from, sizeof(from), "%s/example.org/alice/cur", fx->root);
	assert_int_equal(dir_names(from, names), 1);
	/* a name that only starts the same is another message */
	snprintf(from, sizeof(from), "%s/example.org/alice/cur/%s:2,S",
	    fx->root, T_NAME("0"));
	snprintf(to, sizeof(to), "%s/example.org/alice/cur/%s", fx->root,
	    "1700000000.M" T_QID "R00." T_HOST ":2,");
	assert_int_equal(rename(from, to), 0);
	deliver_ok(fx, "", T_HOST, 0);
	snprintf(from, sizeof(from), "%s/example.org/alice/new", fx->root);
	assert_int_equal(dir_names(from, names), 1);
}

/* Hostnames with '/' and ':' are escaped as Maildir asks. */
static void
test_deliver_hostname(void **state)
{
	struct fx	*fx = *state;
	char		 p[512], names[8][256];

	deliver_ok(fx, "", "a/b:c", 0);
	snprintf(p, sizeof(p), "%s/example.org/alice/new", fx->root);
	assert_int_equal(dir_names(p, names), 1);
	assert_string_equal(names[0],
	    "1700000000.M" T_QID "R0.a\\057b\\072c");
}

static const struct {
	const char	*rcpt;
	const char	*mailbox;
	const char	*folder;	/* under ROOT */
} delim_cases[] = {
	{ "alice+news@example.org", "alice", "example.org/alice" },
	{ "alice-x+y@example.org", "Alice", "example.org/alice" },
	{ "alice+news@example.org", "", "example.org/alice+news" },
	{ "alice+news@example.org", NULL, "example.org/alice+news" },
	{ "+news@example.org", NULL, "example.org/+news" },
	{ "a@b@example.org", "", "example.org/a@b" },	/* last '@' */
	{ "X@EXAMPLE.NET", "", "example.net/x" },
};

static void
test_deliver_delim(void **state)
{
	struct fx	*fx = *state;
	const char	*rcpts[2] = { NULL, NULL };
	char		 p[512], names[8][256];
	size_t		 i;

	for (i = 0; i < sizeof(delim_cases) / sizeof(delim_cases[0]); i++) {
		rcpts[0] = delim_cases[i].rcpt;
		fx_rcpts(fx, rcpts);
		deliver_ok(fx, delim_cases[i].mailbox, T_HOST, 0);
		snprintf(p, sizeof(p), "%s/%s/new", fx->root,
		    delim_cases[i].folder);
		if (dir_names(p, names) != 1)
			fail_msg("case %zu: nothing in %s", i, p);
		snprintf(p, sizeof(p), "%s/%s", fx->root,
		    delim_cases[i].folder);
		nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static const struct {
	const char	*rcpt;
	const char	*why;		/* in the error text */
} unsafe_cases[] = {
	{ "../x@example.org", "unsafe local part" },
	{ "..@example.org", "unsafe local part" },
	{ ".@example.org", "unsafe local part" },
	{ ".hidden@example.org", "unsafe local part" },
	{ "a/b@example.org", "unsafe local part" },
	{ "a\001b@example.org", "unsafe local part" },
	{ "a\177b@example.org", "unsafe local part" },
	{ "a\nb@example.org", "unsafe local part" },
	{ "@example.org", "unsafe local part" },
	{ "x@..", "unsafe domain" },
	{ "x@.", "unsafe domain" },
	{ "x@a/../..", "unsafe domain" },
	{ "x@", "unsafe domain" },
	{ "nodomain", "no domain" },
};

static void
test_deliver_unsafe(void **state)
{
	struct fx	*fx = *state;
	const char	*rcpts[2] = { NULL, NULL };
	char		 err[256], names[8][256];
	size_t		 i;

	for (i = 0; i < sizeof(unsafe_cases) / sizeof(unsafe_cases[0]); i++) {
		rcpts[0] = unsafe_cases[i].rcpt;
		fx_rcpts(fx, rcpts);
		err[0] = '\0';
		if (deliver_maildir(fx->root, "", T_HOST, &fx->qf, 0, err,
		    sizeof(err)) != -1)
			fail_msg("case %zu: delivered", i);
		if (strncmp(err, "maildir: ", 9) != 0 ||
		    strstr(err, unsafe_cases[i].why) == NULL)
			fail_msg("case %zu: error \"%s\"", i, err);
	}
	/* nothing was created anywhere: not even the root */
	assert_int_equal(dir_names(fx->tmp, names), 0);
	err[0] = '\0';
	assert_int_equal(deliver_maildir(fx->root, "", T_HOST, &fx->qf, 1,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no recipient 1"));
}

/* A write error names the step and the cause, and leaves nothing. */
static int
fsize_child(struct fx *fx)
{
	struct rlimit	rl = { 16, 16 };
	char		err[512], p[512], names[8][256];

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		return 10;
	if (deliver_maildir(fx->root, "", T_HOST, &fx->qf, 0, err,
	    sizeof(err)) != -1)
		return 11;
	snprintf(p, sizeof(p), "maildir: write tmp/%s: %s", T_NAME("0"),
	    strerror(EFBIG));
	if (strcmp(err, p) != 0) {
		fprintf(stderr, "got \"%s\"\n", err);
		return 12;
	}
	snprintf(p, sizeof(p), "%s/example.org/alice/tmp", fx->root);
	if (dir_names(p, names) != 0)
		return 13;
	snprintf(p, sizeof(p), "%s/example.org/alice/new", fx->root);
	if (dir_names(p, names) != 0)
		return 14;
	return 0;
}

static void
test_deliver_write_error(void **state)
{
	struct fx	*fx = *state;
	pid_t		 pid;
	int		 status;

	fflush(NULL);
	assert_true((pid = fork()) >= 0);
	if (pid == 0)
		_exit(fsize_child(fx));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* and with the limit gone, the same delivery works */
	deliver_ok(fx, "", T_HOST, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_basic, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_twice, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_root_race, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_moved, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_hostname,
		    fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_delim, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_unsafe, fx_setup,
		    fx_teardown),
		cmocka_unit_test_setup_teardown(test_deliver_write_error,
		    fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
