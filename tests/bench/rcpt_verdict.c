/*
 * rcpt_verdict.c - RCPT verdict latency inside the process: the decision
 * path of smtp_rcpt.c, timed one recipient at a time, against a loaded
 * users file.  A measuring tool with its own main, not a unit test.
 * Owns: a config snapshot from memory, the directory, one harvest guard.
 * Never: sockets, logging, timers; a tarpit verdict is timed without its
 * delay (the server looks the name up when the delay ends).
 * Each lookup times, as the server runs them for "RCPT TO:<a@b>": the
 * command line parse, the path parse and canonical key, the relay check,
 * the guard's check, the directory lookup, the guard's note and the
 * domain's policy.  Names follow the benchmark's users file: "user",
 * "1user" .. "(N-1)user" @example.test are valid, "Nuser" and up are not;
 * recipients come in sessions of -s RCPTs, each session from its own
 * client address (RV_CLIENTS of them, each in its own /24 of 10/8,
 * reused in turn).  The guard runs with its defaults but for
 * harvest_global_rate, off: a million RCPTs in seconds would be hours of
 * a real stream, and the per-domain rate would switch on.  log_level is
 * warning, so the guard's info lines are not written inside the timing.
 *
 * Build (`make bench` does it) and run, from the top of the tree:
 *   make build/bench/rcpt_verdict
 *   build/bench/rcpt_verdict -f USERS -n N [-l 1000000] [-v 80] [-s 10]
 * -n: the users file holds the N names above (bench/bench.py writes it);
 * -v: percent of valid recipients; -s: RCPTs per session.
 * Prints one key=value line; exits 1 if a verdict was not the expected one.
 */
#include <sys/socket.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "dir/dir.h"
#include "guard/guard.h"
#include "net/worker.h"
#include "policy/policy.h"
#include "policy/relay.h"
#include "smtp/smtp_parse.h"

#define RV_LOOKUPS	1000000
#define RV_LINE_MAX	SMTP_CMDLINE_MAX
#define RV_KEY_MAX	(SMTP_LOCAL_MAX + 1 + SMTP_DOMAIN_MAX + 1)
#define RV_CLIENTS	32768	/* hosts + /24s fit harvest_max_clients */

struct rv_opts {
	const char	*file;
	unsigned long	 nusers;
	unsigned long	 lookups;
	unsigned	 valid_pct;
	unsigned	 session_rcpts;
};

/* What one recipient came to, for the counts and the check. */
struct rv_counts {
	unsigned long	 guard[GUARD_CUTOFF + 1];
	unsigned long	 action[RCPT_CUTOFF + 1];
	unsigned long	 wrong;		/* verdict other than expected */
};

struct rv_env {
	struct config	*conf;
	struct dir	*dir;
	struct guard	*guard;
};

static void
rv_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg;
	fprintf(stderr, "%s:%u: %s\n", file, line, msg);
}

static uint64_t
rv_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
rv_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* The RCPT command line for recipient i ("user" for 0). */
static size_t
rv_line(char *out, size_t size, unsigned long i)
{
	int	n;

	if (i == 0)
		n = snprintf(out, size, "RCPT TO:<user@example.test>");
	else
		n = snprintf(out, size, "RCPT TO:<%luuser@example.test>", i);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/*
 * One RCPT, the way smtp_cmd.c and smtp_rcpt.c take it: returns the
 * action, or RCPT_UNIFORM / RCPT_CUTOFF when the guard answers alone.
 */
static enum rcpt_action
rv_rcpt(const struct rv_env *e, const struct sockaddr *peer,
    struct guard_session *gs, const char *line, size_t len,
    uint64_t now_ms, enum guard_verdict *gv)
{
	const struct domain_conf	*dc;
	struct smtp_cmdline		 cl;
	struct smtp_path_arg		 pa;
	struct dir_query		 q;
	enum relay_verdict		 rv;
	enum dir_verdict		 v;
	enum rcpt_action		 a;
	bool				 hot = false;
	char				 local[SMTP_LOCAL_MAX + 1];
	char				 key[RV_KEY_MAX];
	unsigned			 delay = 0;
	int				 llen;

	if (smtp_parse_cmdline((const uint8_t *)line, len, &cl) != PARSE_OK ||
	    !span_eq_ci(cl.verb, "RCPT") ||
	    smtp_parse_rcpt_arg(cl.arg.p, cl.arg.len, &pa) != PARSE_OK ||
	    (llen = smtp_local_canon(&pa.addr, local, sizeof(local))) < 0)
		return RCPT_DENY;	/* counted as wrong by the caller */
	(void)snprintf(key, sizeof(key), "%.*s@%.*s", llen, local,
	    (int)pa.addr.domain.len, (const char *)pa.addr.domain.p);
	rv = relay_check(e->conf, peer, false, (const char *)pa.addr.domain.p,
	    pa.addr.domain.len, pa.addr.literal, &dc);
	if (rv != RELAY_LOCAL)
		return policy_rcpt(rv, DIR_UNKNOWN, dc);
	*gv = guard_rcpt_check(e->guard, peer, gs, now_ms, &delay);
	if (*gv == GUARD_UNIFORM)
		return RCPT_UNIFORM;
	if (*gv == GUARD_CUTOFF)
		return RCPT_CUTOFF;
	/* smtp_rcpt.c builds the query from the key it formatted */
	q = (struct dir_query){ .local = key, .llen = (size_t)llen,
	    .domain = key + llen + 1, .dlen = pa.addr.domain.len,
	    .delim = dc->delim };
	v = dir_lookup(e->dir, &q, 1, NULL, NULL);
	if (v == DIR_VALID || v == DIR_UNKNOWN)
		hot = guard_rcpt_note(e->guard, peer, gs, v == DIR_UNKNOWN,
		    key, (size_t)llen, key + llen + 1, pa.addr.domain.len,
		    now_ms);
	a = policy_rcpt(rv, v, dc);
	return hot && a == RCPT_REJECT ? RCPT_DISCARD : a;
}

static int
rv_cmp(const void *x, const void *y)
{
	uint32_t	a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

static uint32_t
rv_rank(const uint32_t *ns, size_t n, double q)
{
	return ns[(size_t)((double)(n - 1) * q + 0.5)];
}

/* Sort and print "NAME_p50_ns=.. NAME_p99_ns=..". */
static void
rv_print_q(const char *name, uint32_t *ns, size_t n)
{
	if (n == 0)
		return;
	qsort(ns, n, sizeof(*ns), rv_cmp);
	printf(" %s_p50_ns=%u %s_p99_ns=%u", name, rv_rank(ns, n, 0.5), name,
	    rv_rank(ns, n, 0.99));
}

static void
rv_peer(struct sockaddr_in *sin, unsigned long session)
{
	uint32_t	k = (uint32_t)(session % RV_CLIENTS);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	sin->sin_addr.s_addr = htonl(0x0a000001u | k << 8);	/* 10.a.b.1 */
}

static void
rv_count(struct rv_counts *c, enum rcpt_action a, enum guard_verdict gv,
    bool valid)
{
	c->guard[gv]++;
	c->action[a]++;
	if (a == RCPT_UNIFORM || a == RCPT_CUTOFF)
		return;		/* the directory was not asked */
	if (valid ? a != RCPT_ACCEPT : a != RCPT_REJECT && a != RCPT_DISCARD)
		c->wrong++;
}

/* Time every lookup; ns[] gets all, vns[]/uns[] the valid/unknown ones. */
static int
rv_run(const struct rv_env *e, const struct rv_opts *o, uint32_t *ns,
    uint32_t *vns, size_t *nv, uint32_t *uns, size_t *nu,
    struct rv_counts *c, double *mean)
{
	struct guard_session	 gs;
	struct sockaddr_in	 peer;
	uint64_t		 rs = 88172645463325252ULL, t0, t1, sum = 0;
	uint64_t		 now_ms = rv_ns() / 1000000, tick = now_ms;
	unsigned long		 k, i;
	enum guard_verdict	 gv;
	enum rcpt_action	 a;
	char			 line[RV_LINE_MAX];
	size_t			 len;
	bool			 valid;

	memset(&gs, 0, sizeof(gs));
	for (k = 0; k < o->lookups; k++) {
		if (k % o->session_rcpts == 0) {	/* a new session */
			guard_session_end(e->guard, &gs);
			memset(&gs, 0, sizeof(gs));
			rv_peer(&peer, k / o->session_rcpts);
			now_ms = rv_ns() / 1000000;
			if (now_ms - tick >= 1000) {
				guard_tick(e->guard, now_ms);
				tick = now_ms;
			}
		}
		valid = rv_rand(&rs) % 100 < o->valid_pct;
		i = rv_rand(&rs) % o->nusers + (valid ? 0 : o->nusers);
		if ((len = rv_line(line, sizeof(line), i)) == 0)
			return -1;
		gv = GUARD_PASS;
		t0 = rv_ns();
		a = rv_rcpt(e, (const struct sockaddr *)&peer, &gs, line, len,
		    now_ms, &gv);
		t1 = rv_ns();
		ns[k] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
		sum += t1 - t0;
		if (valid)
			vns[(*nv)++] = ns[k];
		else
			uns[(*nu)++] = ns[k];
		rv_count(c, a, gv, valid);
	}
	guard_session_end(e->guard, &gs);
	*mean = (double)sum / (double)o->lookups;
	return 0;
}

static int
rv_report(const struct rv_env *e, const struct rv_opts *o, double load_s)
{
	struct rv_counts	 c;
	uint32_t		*ns, *vns, *uns;
	size_t			 nv = 0, nu = 0;
	double			 mean = 0;
	int			 rc = -1;

	memset(&c, 0, sizeof(c));
	ns = calloc(o->lookups, sizeof(*ns));
	vns = calloc(o->lookups, sizeof(*vns));
	uns = calloc(o->lookups, sizeof(*uns));
	if (ns != NULL && vns != NULL && uns != NULL &&
	    rv_run(e, o, ns, vns, &nv, uns, &nu, &c, &mean) == 0) {
		printf("rcpt_verdict: users=%zu load_s=%.3f lookups=%lu "
		    "valid_pct=%u session_rcpts=%u mean_ns=%.0f",
		    dir_count(e->dir), load_s, o->lookups, o->valid_pct,
		    o->session_rcpts, mean);
		rv_print_q("all", ns, o->lookups);
		printf(" all_p999_ns=%u all_max_ns=%u",
		    rv_rank(ns, o->lookups, 0.999), ns[o->lookups - 1]);
		rv_print_q("valid", vns, nv);
		rv_print_q("unknown", uns, nu);
		printf(" accept=%lu reject=%lu discard=%lu uniform=%lu "
		    "cutoff=%lu guard_pass=%lu guard_tarpit=%lu wrong=%lu\n",
		    c.action[RCPT_ACCEPT], c.action[RCPT_REJECT],
		    c.action[RCPT_DISCARD],
		    c.action[RCPT_UNIFORM], c.action[RCPT_CUTOFF],
		    c.guard[GUARD_PASS], c.guard[GUARD_TARPIT], c.wrong);
		rc = c.wrong == 0 ? 0 : -1;
	}
	free(ns);
	free(vns);
	free(uns);
	return rc;
}

static int
rv_num(const char *s, unsigned long *out)
{
	char	*end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno != 0 || *end != '\0' || end == s ? -1 : 0;
}

static int
rv_args(struct rv_opts *o, int argc, char **argv)
{
	unsigned long	 v;
	int		 ch;

	while ((ch = getopt(argc, argv, "f:l:n:s:v:")) != -1) {
		if (ch == 'f') {
			o->file = optarg;
			continue;
		}
		if (ch == '?' || rv_num(optarg, &v) == -1)
			return -1;
		if (ch == 'l')
			o->lookups = v;
		else if (ch == 'n')
			o->nusers = v;
		else if (ch == 's')
			o->session_rcpts = (unsigned)v;
		else if (ch == 'v')
			o->valid_pct = (unsigned)v;
	}
	return o->file != NULL && o->nusers > 0 && o->lookups > 0 &&
	    o->valid_pct <= 100 && o->session_rcpts > 0 &&
	    strchr(o->file, '\n') == NULL ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct rv_opts		 o = { NULL, 0, RV_LOOKUPS, 80, 10 };
	struct rv_env		 e;
	struct guard_conf	 gc;
	char			 text[8192];
	uint64_t		 t0;
	double			 load_s;
	int			 n, rc;

	if (rv_args(&o, argc, argv) == -1) {
		fprintf(stderr, "usage: rcpt_verdict -f users -n count "
		    "[-l lookups] [-v valid_percent] [-s rcpts_per_session]\n");
		return 2;
	}
	n = snprintf(text, sizeof(text), "hostname = mx.example.test\n"
	    "domains = example.test\ndirectory = file:%s\n"
	    "harvest_global_rate = 0\nlog_level = warning\n", o.file);
	if (n < 0 || (size_t)n >= sizeof(text))
		return 2;
	if ((e.conf = conf_load_mem(text, (size_t)n, "rcpt_verdict.conf", ".",
	    rv_err, NULL)) == NULL)
		return 1;
	log_set_level(e.conf->log_level);
	t0 = rv_ns();
	e.dir = dir_open(e.conf, rv_err, NULL);
	load_s = (double)(rv_ns() - t0) / 1e9;
	if (e.dir == NULL)
		return 1;
	worker_guard_conf(e.conf, &gc);
	if ((e.guard = guard_new(&gc)) == NULL)
		return 1;
	rc = rv_report(&e, &o, load_s);
	guard_free(e.guard);
	dir_unref(e.dir);
	conf_unref(e.conf);
	return rc == 0 ? 0 : 1;
}
