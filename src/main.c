/*
 * main.c - the mxgate command: serve, check-config, --help, --version.
 * Owns: argv, wiring the modules together, process-wide signal settings.
 * Never: protocol or policy logic.
 */
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth/passwd.h"
#include "conf/conf.h"
#include "ctl/ctl.h"
#include "deliver/qmgr.h"
#include "dir/dir.h"
#include "dns/dns.h"
#include "guard/guard.h"
#include "lib/job.h"
#include "lib/log.h"
#include "lib/rate.h"
#include "net/climit.h"
#include "net/tls.h"
#include "net/worker.h"
#include "queue/queue.h"
#include "queue/queue_lock.h"

#ifndef MXGATE_VERSION
#define MXGATE_VERSION "dev"
#endif

#define MAIN_COMMIT_THREADS	16	/* each waits in a group commit */
#define MAIN_DELIVERY_THREADS	2
#define MAIN_AUTH_THREADS	2	/* crypt(3) checks for AUTH */
#define MAIN_RATE_KEYS		100000	/* recipients tracked for bounces */

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mxgate serve -c FILE          run the gateway (foreground)\n"
	    "       mxgate check-config -c FILE   validate a config file\n"
	    "       mxgate passwd USER            print a passwd_file line "
	    "for USER\n");
	ctl_cli_usage(f);
	fprintf(f,
	    "       mxgate --help | --version\n"
	    "\n"
	    "Config keys (key = value; [domain NAME] sections override the\n"
	    "keys marked per-domain):\n");
	conf_dump_keys(f);
}

/* check-config prints FILE:LINE: message, as compilers do. */
static void
print_err(void *arg, const char *file, unsigned line, const char *msg)
{
	unsigned	*n = arg;

	(*n)++;
	if (line > 0)
		fprintf(stderr, "%s:%u: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static int
cmd_check(const char *file)
{
	struct config		*c;
	struct dir		*d;
	struct tls_ctx		*tls;
	struct passwd_file	*pw;
	unsigned		 nerr = 0;

	if ((c = conf_load(file, print_err, &nerr)) == NULL)
		return 1;
	if ((d = dir_open(c, print_err, &nerr)) == NULL) {
		conf_unref(c);
		return 1;
	}
	if (worker_secure_load(c, &tls, &pw, print_err, &nerr) == -1) {
		dir_unref(d);
		conf_unref(c);
		return 1;
	}
	printf("%s: ok (%zu domains, %zu directory entries, STARTTLS %s, "
	    "%zu AUTH users)\n", file, c->ndomains, dir_count(d),
	    tls != NULL ? "on" : "off", passwd_count(pw));
	tls_ctx_free(tls);
	passwd_unref(pw);
	dir_unref(d);
	conf_unref(c);
	return 0;
}

/* chown one path (no symlinks followed); nftw callback.  nftw takes no
 * argument, so the ids are file-scope: set once, at start, single thread
 * of control on this path. */
static uid_t	drop_uid;
static gid_t	drop_gid;

static int
drop_chown(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (lchown(path, drop_uid, drop_gid) == -1)
		log_event(LOG_LVL_WARNING, "privileges", "path=%s msg=\"chown: "
		    "%s\"", log_text(path, strlen(path), 200), strerror(errno));
	return 0;
}

/*
 * Started as root: the ports are bound, so become `user` for good.  The
 * spool (0700 folders, 0600 files) and the Maildir roots become its own
 * first, so that no other local user can read queued mail.
 */
static void
drop_privileges(const struct config *c)
{
	const struct passwd	*pw;
	size_t			 i;

	if (geteuid() != 0)
		return;
	if (c->user == NULL) {
		log_event(LOG_LVL_WARNING, "privileges", "user=root msg=\"still "
		    "running as root: set user = NAME to drop privileges\"");
		return;
	}
	if ((pw = getpwnam(c->user)) == NULL)
		fatal("msg=\"no such user %s\"", c->user);
	drop_uid = pw->pw_uid;
	drop_gid = pw->pw_gid;
	(void)nftw(c->spool, drop_chown, 16, FTW_PHYS);
	for (i = 0; i < c->ndomains; i++)
		if (c->domains[i].hop.kind == HOP_MAILDIR &&
		    (mkdir(c->domains[i].hop.path, 0700) == 0 ||
		    errno == EEXIST))
			(void)nftw(c->domains[i].hop.path, drop_chown, 16,
			    FTW_PHYS);
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1)
		fatal("msg=\"cannot become %s: %s\"", c->user,
		    strerror(errno));
	if (setuid(0) != -1)
		fatal("msg=\"could regain root after dropping it\"");
	/* Fail now, not with 452s later: the folders above must let it in. */
	if (access(c->spool, R_OK | W_OK | X_OK) == -1)
		fatal("msg=\"as %s, cannot use the spool %s: %s (check the "
		    "modes of the folders above it)\"", c->user, c->spool,
		    strerror(errno));
	log_event(LOG_LVL_INFO, "privileges", "user=%s uid=%u gid=%u",
	    c->user, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
}

static int
cmd_serve(const char *file)
{
	struct worker	 w;
	struct worker_group grp;
	struct guard_conf gc;
	struct ctl	*ctl;
	char		 err[512];
	unsigned	 nerr = 0, nloops, i;
	long		 ncpu;
	pid_t		 holder;
	int		 spool_lock;

	memset(&w, 0, sizeof(w));
	memset(&grp, 0, sizeof(grp));
	grp.w[0] = &w;
	grp.n = 1;
	w.grp = &grp;
	pthread_mutex_init(&w.mbox_mu, NULL);
	if ((w.conf = conf_load(file, print_err, &nerr)) == NULL)
		return 1;
	log_set_level(w.conf->log_level);
	/*
	 * A users file that is missing or bad at start is fatal, told as
	 * check-config tells it (FILE:LINE: message): a gateway that answers
	 * 451 to every recipient looks alive while it refuses all mail.  At
	 * reload the old directory stays (worker.c).
	 */
	if ((w.dir = dir_open(w.conf, print_err, &nerr)) == NULL) {
		log_event(LOG_LVL_ERROR, "directory", "file=%s msg=\"cannot "
		    "load the users file: see above\"", log_esc(
		    w.conf->directory.path, strlen(w.conf->directory.path),
		    200));
		conf_unref(w.conf);
		return 1;
	}
	log_event(LOG_LVL_INFO, "directory", "entries=%zu", dir_count(w.dir));
	/* Before anything reads or changes the spool: one gateway per spool
	 * (a second one's clean-up would delete what the first receives). */
	if ((spool_lock = queue_lock_take(w.conf->spool, &holder, err,
	    sizeof(err))) == -1)
		fatal("msg=\"%s\"", err);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* a file-size limit is an I/O error */
	/* loops wake each other (event_active across threads) */
	if (evthread_use_pthreads() == -1 ||
	    (w.base = event_base_new()) == NULL)
		fatal("msg=\"cannot create the event loop\"");
	if (worker_secure_load(w.conf, &w.tls, &w.passwd, print_err,
	    &nerr) == -1)
		fatal("msg=\"STARTTLS or AUTH settings: see above\"");
	log_event(LOG_LVL_INFO, "secure", "starttls=%s auth_users=%zu",
	    w.tls != NULL ? "on" : "off", passwd_count(w.passwd));
	w.commit_jobs = job_pool_new(w.base, MAIN_COMMIT_THREADS);
	w.misc_jobs = job_pool_new(w.base, 1);
	w.auth_jobs = job_pool_new(w.base, MAIN_AUTH_THREADS);
	if (w.commit_jobs == NULL || w.misc_jobs == NULL ||
	    w.auth_jobs == NULL)
		fatal("msg=\"cannot start job threads\"");
	if ((w.climit = climit_new()) == NULL)
		fatal("msg=\"out of memory\"");
	worker_guard_conf(w.conf, &gc);
	if ((w.guard = guard_new(&gc)) == NULL)
		fatal("msg=\"out of memory\"");
	w.null_rate = rate_table_new(w.conf->null_sender_rate.window_ms,
	    MAIN_RATE_KEYS);
	if (w.null_rate == NULL)
		fatal("msg=\"out of memory\"");
	if ((w.queue = queue_open(w.conf->spool, w.commit_jobs, err,
	    sizeof(err))) == NULL)
		fatal("msg=\"spool: %s\"", err);
	if ((w.qmgr = qmgr_new(&w, MAIN_DELIVERY_THREADS, err,
	    sizeof(err))) == NULL)
		fatal("msg=\"cannot start the delivery manager: %s\"", err);
	if ((ctl = ctl_open(w.base, w.conf->spool, err, sizeof(err))) == NULL)
		fatal("msg=\"%s\"", err);
	worker_ctl_register(&w, ctl);
	qmgr_ctl_register(w.qmgr, ctl);
	if (worker_signals(&w) == -1)
		fatal("msg=\"cannot install signal handlers\"");
	if (worker_listen(&w) == -1)
		fatal("msg=\"cannot listen\"");
	drop_privileges(w.conf);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	nloops = w.conf->workers ? w.conf->workers : ncpu > 0 ?
	    (unsigned)(ncpu < WORKER_MAX ? ncpu : WORKER_MAX) : 1;
	for (i = 1; i < nloops; i++)
		if (worker_spawn(&w, i, MAIN_COMMIT_THREADS,
		    MAIN_AUTH_THREADS) == -1)
			fatal("msg=\"cannot start event loop %u\"", i);
	log_event(LOG_LVL_INFO, "start", "version=%s hostname=%s workers=%u",
	    MXGATE_VERSION, w.conf->hostname, nloops);
	qmgr_start(w.qmgr);
	worker_run(&w);
	worker_join_all(&w);	/* the other loops' sessions end first */
	job_pool_free(w.auth_jobs);	/* answers to sessions still here */
	ctl_close(ctl);		/* its handlers point into w */
	/* Commits in flight finish first; then deliveries stop. */
	qmgr_stop(w.qmgr);
	job_pool_free(w.commit_jobs);
	qmgr_free(w.qmgr);
	job_pool_free(w.misc_jobs);
	rate_table_free(w.null_rate);
	guard_free(w.guard);
	climit_free(w.climit);
	queue_close(w.queue);
	close(spool_lock);	/* the spool is free for another gateway */
	if (w.dir)
		dir_unref(w.dir);
	tls_ctx_free(w.tls);
	passwd_unref(w.passwd);
	conf_unref(w.conf);
	dns_resolver_free(w.dns);
	event_base_free(w.base);
	pthread_mutex_destroy(&w.mbox_mu);
	log_event(LOG_LVL_INFO, "stopped", NULL);
	return 0;
}

int
main(int argc, char **argv)
{
	const char	*file = NULL;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("mxgate %s\n", MXGATE_VERSION);
		return 0;
	}
	if (argc >= 2 && ctl_cli_handles(argv[1]))
		return ctl_cli_main(argc - 1, argv + 1);
	if (argc == 3 && strcmp(argv[1], "passwd") == 0)
		return passwd_cli_main(argv[2]);
	if (argc == 4 && strcmp(argv[2], "-c") == 0)
		file = argv[3];
	if (file != NULL && strcmp(argv[1], "serve") == 0)
		return cmd_serve(file);
	if (file != NULL && strcmp(argv[1], "check-config") == 0)
		return cmd_check(file);
	usage(stderr);
	return 2;
}
