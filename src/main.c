/*
 * main.c - the mxgate command: serve, check-config, config, --help,
 * --version (the control subcommands are ctl_client.c's).
 * Owns: argv, wiring the modules together, process-wide signal settings,
 * the pid file, telling the service manager (sd_notify) we are ready.
 * Never: protocol or policy logic.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "deliver/outbound.h"
#include "deliver/qmgr.h"
#include "dir/dir.h"
#include "dir/dir_cli.h"
#include "dns/dns.h"
#include "sender/dnsbl.h"
#include "fleet/fleet.h"
#include "guard/guard.h"
#include "lib/job.h"
#include "lib/log.h"
#include "lib/rate.h"
#include "lib/sdnotify.h"
#include "net/climit.h"
#include "net/tls.h"
#include "net/worker.h"
#include "obs/log_hash.h"
#include "obs/log_json.h"
#include "obs/report.h"
#include "probe/probe.h"
#include "queue/queue.h"
#include "queue/queue_lock.h"
#include "sender/psl.h"

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
	    "usage: mxgate serve [-c FILE]          run the gateway "
	    "(foreground)\n"
	    "       mxgate check-config [-c FILE]   validate a config file\n"
	    "       mxgate config [-c FILE] [-n] [KEY...]\n"
	    "                                       the configuration in "
	    "force (-n: what\n"
	    "                                       differs from the "
	    "defaults)\n"
	    "       mxgate passwd USER              read a password on "
	    "stdin (no echo on\n"
	    "                                       a terminal), print a "
	    "passwd_file line\n"
	    "       mxgate report [LOGFILE...]      summary of text or JSON "
	    "logs (none or -: stdin)\n"
	    "       mxgate probe HOST[:PORT] --domain D [...]\n"
	    "                                       audit any SMTP server "
	    "(probe --help)\n"
	    "       mxgate directory lookup [-c FILE] ADDR\n"
	    "                                       ask the directory: "
	    "verdict, back-end, time\n"
	    "       mxgate directory hash [--keep-case] --key-file KEY "
	    "[USERS]\n"
	    "       mxgate directory hash --new-key --key-file KEY\n"
	    "                                       a hashed directory, "
	    "its key\n");
	ctl_cli_usage(f);
	fprintf(f,
	    "       mxgate --help | --version\n"
	    "\n"
	    "FILE: -c, else $MXGATE_CONF, else %s.\n"
	    "Config keys (key = value; [domain NAME] sections override the\n"
	    "keys marked per-domain):\n", CONF_DEFAULT_PATH);
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

/* shared_state's settings into fc (pw holds the password); 0, or -1
 * with err. */
static int
main_fleet_conf(const struct config *c, struct fleet_conf *fc, char *pw,
    size_t pwlen, char *err, size_t errlen)
{
	memset(fc, 0, sizeof(*fc));
	fc->url = c->shared_state;
	fc->prefix = c->shared_state_prefix;
	fc->gateway = c->hostname;
	fc->timeout_ms = c->shared_state_timeout_ms;
	fc->window_ms = c->harvest_window_ms;
	if (c->shared_state_password_file != NULL) {
		if (fleet_password_load(c->shared_state_password_file, pw,
		    pwlen, err, errlen) == -1)
			return -1;
		fc->password = pw;
	}
	return fleet_check(fc, err, errlen);
}

static int
main_fleet_check(const struct config *c, unsigned *nerr)
{
	struct fleet_conf	fc;
	char			pw[FLEET_PASSWORD_BUF], err[512];
	int			rc;

	if (c->shared_state == NULL)
		return 0;
	rc = main_fleet_conf(c, &fc, pw, sizeof(pw), err, sizeof(err));
	explicit_bzero(pw, sizeof(pw));
	if (rc == -1)
		print_err(nerr, c->file, 0, err);
	return rc;
}

/* One connection for every loop, on the fleet's own thread. */
static struct fleet *
main_fleet_start(const struct config *c)
{
	struct fleet_conf	 fc;
	struct fleet		*f;
	char			 pw[FLEET_PASSWORD_BUF], err[512];

	if (main_fleet_conf(c, &fc, pw, sizeof(pw), err, sizeof(err)) == -1 ||
	    (f = fleet_start(&fc, err, sizeof(err))) == NULL)
		fatal("msg=\"%s\"", err);
	explicit_bzero(pw, sizeof(pw));
	return f;
}

static int
cmd_check(const char *file)
{
	struct config		*c;
	struct dir		*d;
	struct tls_ctx		*tls;
	struct passwd_file	*pw;
	struct outbound		*ob;
	unsigned		 nerr = 0, nwarn;

	if ((c = conf_load(file, print_err, &nerr)) == NULL)
		return 1;
	if (main_fleet_check(c, &nerr) == -1 ||
	    (d = dir_open(c, print_err, &nerr)) == NULL) {
		conf_unref(c);
		return 1;
	}
	if (worker_secure_load(c, &tls, &pw, print_err, &nerr) == -1) {
		dir_unref(d);
		conf_unref(c);
		return 1;
	}
	if ((ob = outbound_load(c, print_err, &nerr)) == NULL) {
		tls_ctx_free(tls);
		passwd_unref(pw);
		dir_unref(d);
		conf_unref(c);
		return 1;
	}
	nwarn = dir_foreign_domains(d, c, print_err, &nerr);
	printf("%s: ok (%zu domains, %zu directory entries, STARTTLS %s, "
	    "%zu AUTH users, %zu relayhost logins%s)\n", file, c->ndomains,
	    dir_count(d), tls != NULL ? "on" : "off", passwd_count(pw),
	    outbound_logins(ob), nwarn > 0 ? ", warnings above" : "");
	outbound_free(ob);
	tls_ctx_free(tls);
	passwd_unref(pw);
	dir_unref(d);
	conf_unref(c);
	return 0;
}

/*
 * `mxgate config [-n] [KEY...]`: every key with the value in force, as
 * postconf prints them; an unknown KEY is an error (with a suggestion).
 * `config --man` is the build's: the key list for mxgate.conf(5).
 */
static int
cmd_config(const char *file, bool nondefault, char **keys, size_t nkeys)
{
	struct config	*c;
	const char	*near;
	unsigned	 nerr = 0;
	size_t		 i;
	int		 bad = 0;

	for (i = 0; i < nkeys; i++) {
		if (conf_key_known(keys[i]))
			continue;
		near = conf_key_nearest(keys[i]);
		fprintf(stderr, "mxgate config: unknown key '%s'%s%s%s\n",
		    log_esc(keys[i], strlen(keys[i]), 64),
		    near ? "; did you mean '" : "", near ? near : "",
		    near ? "'?" : "");
		bad = 1;
	}
	if (bad)
		return 1;
	if ((c = conf_load(file, print_err, &nerr)) == NULL)
		return 1;
	conf_print(stdout, c, nondefault, keys, nkeys);
	conf_unref(c);
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * The pid file: SPOOL/mxgate.pid unless pid_file says where, written
 * once the spool is ours (after its lock: a second gateway never
 * overwrites the first one's), removed at exit if it still holds ours.
 */
static char *
pid_file_path(const struct config *c)
{
	char	*p;

	if (c->pid_file != NULL)
		return strdup(c->pid_file);
	if (asprintf(&p, "%s/mxgate.pid", c->spool) == -1)
		return NULL;
	return p;
}

static int
pid_file_write(const char *path)
{
	char	line[32];
	int	fd, n, e;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0644)) == -1)
		return -1;
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (write(fd, line, (size_t)n) != n) {
		e = errno;
		close(fd);
		errno = e ? e : EIO;
		return -1;
	}
	return close(fd);
}

static void
pid_file_remove(const char *path)
{
	char	line[32];
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n <= 0)
		return;
	line[n] = '\0';
	if (strtol(line, NULL, 10) == (long)getpid() && unlink(path) == -1)
		log_event(LOG_LVL_WARNING, "pid_file", "path=%s msg=\"cannot "
		    "remove: %s\"", log_text(path, strlen(path), 200),
		    strerror(errno));
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
	if (c->log_file != NULL)	/* reopened as the user on SIGHUP */
		(void)drop_chown(c->log_file, NULL, 0, NULL);
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

/*
 * The log's destination and format (issue 18), right after the config
 * is read: everything from here on goes there.  Syslog wins over a file.
 */
static void
serve_log_setup(const struct config *c)
{
	char	err[512];

	if (c->log_syslog >= 0) {
		if (log_to_syslog(c->log_syslog_socket, c->log_syslog,
		    "mxgate", err, sizeof(err)) == -1)
			fatal("msg=\"log_syslog: %s\"", err);
	} else if (c->log_file != NULL &&
	    log_to_file(c->log_file, err, sizeof(err)) == -1)
		fatal("msg=\"log_file: %s\"", err);
	obs_log_setup(c->log_format == CONF_LOG_JSON ? OBS_LOG_JSON :
	    OBS_LOG_TEXT, c->log_syslog >= 0);
}

static int
cmd_serve(const char *file)
{
	struct worker	 w;
	struct worker_group grp;
	struct psl	*psl = NULL;
	struct guard_conf gc;
	struct ctl	*ctl;
	struct outbound	*ob;
	char		 err[512];
	unsigned	 nerr = 0, nloops, i;
	long		 ncpu;
	pid_t		 holder;
	int		 spool_lock;
	char		*pidpath;

	memset(&w, 0, sizeof(w));
	memset(&grp, 0, sizeof(grp));
	grp.w[0] = &w;
	grp.n = 1;
	w.grp = &grp;
	pthread_mutex_init(&w.mbox_mu, NULL);
	if ((w.conf = conf_load(file, print_err, &nerr)) == NULL)
		return 1;
	log_set_level(w.conf->log_level);
	serve_log_setup(w.conf);
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
	/* LDAP sync: a bounded wait for the first refresh; until it ends
	 * RCPT answers 451 (or from the snapshot), never 550. */
	if (!dir_settle(w.dir, w.conf->ldap_timeout_ms))
		log_event(LOG_LVL_WARNING, "directory", "msg=\"not synced "
		    "within ldap_timeout; answering 451 or from the snapshot "
		    "until it is\"");
	log_event(LOG_LVL_INFO, "directory", "backend=%s entries=%zu",
	    dir_name(w.dir), dir_count(w.dir));
	/* read once: loops share it, a reload does not read it again */
	if (w.conf->public_suffix_file != NULL && (psl = psl_load(
	    w.conf->public_suffix_file, err, sizeof(err))) == NULL)
		log_event(LOG_LVL_WARNING, "public_suffix", "msg=\"%s; DKIM "
		    "aligns only when d= is the MAIL FROM domain itself\"",
		    log_text(err, strlen(err), 300));
	else if (psl != NULL)
		log_event(LOG_LVL_INFO, "public_suffix", "rules=%zu",
		    psl_count(psl));
	grp.psl = psl;
	/* Before anything reads or changes the spool: one gateway per spool
	 * (a second one's clean-up would delete what the first receives). */
	if ((spool_lock = queue_lock_take(w.conf->spool, &holder, err,
	    sizeof(err))) == -1)
		fatal("msg=\"%s\"", err);
	if ((pidpath = pid_file_path(w.conf)) == NULL)
		fatal("msg=\"out of memory\"");
	if (pid_file_write(pidpath) == -1)
		fatal("msg=\"cannot write the pid file %s: %s\"",
		    log_text(pidpath, strlen(pidpath), 200), strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* a file-size limit is an I/O error */
	if (w.conf->log_recipients && obs_hash_init(w.conf->log_hash_key_file,
	    w.conf->spool, err, sizeof(err)) == -1)
		fatal("msg=\"log_hash_key_file: %s\"", err);
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
	if (w.conf->shared_state != NULL &&
	    (w.fleet = main_fleet_start(w.conf)) != NULL)
		guard_set_fleet(w.guard, w.fleet);
	w.null_rate = rate_table_new(w.conf->null_sender_rate.window_ms,
	    MAIN_RATE_KEYS);
	if (w.null_rate == NULL)
		fatal("msg=\"out of memory\"");
	if ((w.queue = queue_open(w.conf->spool, w.commit_jobs, err,
	    sizeof(err))) == NULL)
		fatal("msg=\"spool: %s\"", err);
	worker_batv_since(w.conf);
	if ((ob = outbound_load(w.conf, print_err, &nerr)) == NULL)
		fatal("msg=\"outbound TLS or relayhost login settings: see "
		    "above\"");
	if ((w.qmgr = qmgr_new(&w, ob, MAIN_DELIVERY_THREADS, err,
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
	if (worker_obs_open(&w, err, sizeof(err)) == -1)
		fatal("msg=\"%s\"", err);
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
	/* every listener is open and every loop runs: connections are
	 * accepted from here on (Type=notify waits for this) */
	if (sdnotify("READY=1\nSTATUS=serving") == -1)
		log_event(LOG_LVL_WARNING, "sd_notify", "msg=\"%s\"",
		    strerror(errno));
	worker_run(&w);
	worker_join_all(&w);	/* the other loops' sessions end first */
	worker_obs_close(&w);
	job_pool_free(w.auth_jobs);	/* answers to sessions still here */
	ctl_close(ctl);		/* its handlers point into w */
	w.ctl = NULL;		/* a reload finishing below answers no one */
	/* Commits in flight finish first; then deliveries stop. */
	qmgr_stop(w.qmgr);
	job_pool_free(w.commit_jobs);
	qmgr_free(w.qmgr);
	outbound_free(ob);
	job_pool_free(w.misc_jobs);
	rate_table_free(w.null_rate);
	guard_set_fleet(w.guard, NULL);
	fleet_stop(w.fleet);
	guard_free(w.guard);
	climit_free(w.climit);
	queue_close(w.queue);
	pid_file_remove(pidpath);
	free(pidpath);
	close(spool_lock);	/* the spool is free for another gateway */
	if (w.dir)
		dir_unref(w.dir);
	tls_ctx_free(w.tls);
	passwd_unref(w.passwd);
	conf_unref(w.conf);
	dnsbl_cache_free(w.dnsbl);	/* cancels on w.dns first */
	dns_resolver_free(w.dns);
	psl_free(psl);
	event_base_free(w.base);
	pthread_mutex_destroy(&w.mbox_mu);
	log_event(LOG_LVL_INFO, "stopped", NULL);
	return 0;
}

/* "-c FILE" anywhere among argv[from..]; the others stay in order. */
static int
main_args(int argc, char **argv, int from, const char **file, char **rest,
    int *nrest)
{
	int	i;

	*file = NULL;
	*nrest = 0;
	for (i = from; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 == argc || *file != NULL)
				return -1;
			*file = argv[++i];
		} else
			rest[(*nrest)++] = argv[i];
	}
	if (*file == NULL)
		*file = conf_default_path();
	return 0;
}

int
main(int argc, char **argv)
{
	const char	*file;
	char		**rest;
	int		 nrest, i, rc = 2;
	bool		 nondefault = false;

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
	if (argc >= 2 && strcmp(argv[1], "report") == 0)
		return obs_report_main(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "probe") == 0)
		return probe_main(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "directory") == 0)
		return dir_cli_main(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "passwd") == 0)
		return passwd_cli_main(argv[2]);
	if (argc == 3 && strcmp(argv[1], "config") == 0 &&
	    strcmp(argv[2], "--man") == 0) {
		conf_man_keys(stdout);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (argc < 2 || (rest = calloc((size_t)argc, sizeof(*rest))) == NULL) {
		usage(stderr);
		return 2;
	}
	if (main_args(argc, argv, 2, &file, rest, &nrest) == 0) {
		if (strcmp(argv[1], "serve") == 0 && nrest == 0)
			rc = cmd_serve(file);
		else if (strcmp(argv[1], "check-config") == 0 && nrest == 0)
			rc = cmd_check(file);
		else if (strcmp(argv[1], "config") == 0) {
			for (i = 0; i < nrest && rest[i][0] == '-'; i++) {
				if (strcmp(rest[i], "-n") != 0)
					break;
				nondefault = true;
			}
			if (i == nrest || rest[i][0] != '-')
				rc = cmd_config(file, nondefault, rest + i,
				    (size_t)(nrest - i));
		}
	}
	if (rc == 2)
		usage(stderr);
	free(rest);
	return rc;
}
