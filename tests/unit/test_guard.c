/*
 * test_guard.c - the harvest guard on a fake clock: tarpit, cut-off,
 * uniform marks, the majority rule (list server, provider /24), net and
 * IPv6 grouping, distinct names, decay, expiry, unmark, exempt, slot and
 * delay caps, distributed harvests, eviction, signals, and its log lines;
 * one reply queue per host over its sessions (and the caps counting its
 * wait), uniform replies no cheaper than the tarpit, valid names counted
 * once per host, and one guard shared by several threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <pthread.h>

#include <cmocka.h>

#include "guard/guard.h"
#include "guard/guard_store.h"
#include "lib/log.h"

#define MIN_MS		(60ULL * 1000)
#define HOUR_MS		(60 * MIN_MS)
#define DOM		"example.org"

/* Helpers: addresses, one RCPT, log capture (info lines are captured
 * where a test reads them, and not shown otherwise). */

static struct sockaddr_storage
sa_of(const char *text)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr),
		    1);
		sin6->sin6_family = AF_INET6;
	}
	return ss;
}

#define SA(ss)	((const struct sockaddr *)&(ss))

/* Check, then (if the caller would ask the directory) note. */
static enum guard_verdict
rcpt(struct guard *g, const struct sockaddr *sa, struct guard_session *s,
    uint64_t now, bool unknown, const char *local, unsigned *delay)
{
	enum guard_verdict	v;
	unsigned		d;

	v = guard_rcpt_check(g, sa, s, now, &d);
	if (delay != NULL)
		*delay = d;
	if (v == GUARD_PASS || v == GUARD_TARPIT)
		(void)guard_rcpt_note(g, sa, s, unknown, local, strlen(local),
		    DOM, strlen(DOM), now + d);
	return v;
}

static const char *
name_n(const char *prefix, unsigned n)
{
	static char	buf[8][64];
	static unsigned	slot;
	char		*b = buf[slot++ % 8];

	snprintf(b, 64, "%s%u", prefix, n);
	return b;
}

struct logcap {
	int	 saved;
	FILE	*f;
	char	*text;
};

static void
cap_start(struct logcap *c)
{
	log_set_level(LOG_LVL_INFO);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_true(dup2(fileno(c->f), STDERR_FILENO) >= 0);
	c->text = NULL;
}

static const char *
cap_stop(struct logcap *c)
{
	long	n;

	assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
	close(c->saved);
	log_set_level(LOG_LVL_WARNING);
	n = ftell(c->f);
	assert_true(n >= 0);
	c->text = calloc(1, (size_t)n + 1);
	rewind(c->f);
	assert_int_equal(fread(c->text, 1, (size_t)n, c->f), (size_t)n);
	fclose(c->f);
	return c->text;
}

static unsigned
count_of(const char *hay, const char *needle)
{
	unsigned	n = 0;

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay++;
	}
	return n;
}

static struct guard *
guard_with(void (*tweak)(struct guard_conf *))
{
	struct guard_conf	c;
	struct guard		*g;

	guard_conf_defaults(&c);
	if (tweak != NULL)
		tweak(&c);
	g = guard_new(&c);
	assert_non_null(g);
	return g;
}

struct listed {
	unsigned	 n;
	char		 net[8][64];
	char		 state[8][16];
	unsigned	 distinct[8];
	uint64_t	 expires[8];
};

static void
list_cb(void *arg, const char *net, const char *state, unsigned distinct,
    unsigned valid, uint64_t expires)
{
	struct listed	*l = arg;

	(void)valid;
	if (l->n < 8) {
		snprintf(l->net[l->n], sizeof(l->net[0]), "%s", net);
		snprintf(l->state[l->n], sizeof(l->state[0]), "%s", state);
		l->distinct[l->n] = distinct;
		l->expires[l->n] = expires;
	}
	l->n++;
}

static unsigned
list_count(struct guard *g, uint64_t now, const char *state)
{
	struct listed	l;
	unsigned	i, n = 0;

	memset(&l, 0, sizeof(l));
	guard_list(g, now, list_cb, &l);
	for (i = 0; i < l.n && i < 8; i++)
		n += state == NULL || strcmp(l.state[i], state) == 0;
	return state == NULL ? l.n : n;
}

/* Names from one address, in sessions of one RCPT, each session opened
 * when the one before got its reply; returns the time of the last reply. */
static uint64_t
harvest_from(struct guard *g, const char *addr, unsigned n, uint64_t now)
{
	struct sockaddr_storage	a = sa_of(addr);
	struct guard_session	s;
	unsigned		i, d;

	for (i = 0; i < n; i++) {
		memset(&s, 0, sizeof(s));
		(void)rcpt(g, SA(a), &s, now, true, name_n(addr, i), &d);
		guard_session_end(g, &s);
		now += d;
	}
	return now;
}

static enum guard_verdict
check_at(struct guard *g, const char *addr, uint64_t now)
{
	struct sockaddr_storage	a = sa_of(addr);
	struct guard_session	s;
	enum guard_verdict	v;
	unsigned		d;

	memset(&s, 0, sizeof(s));
	v = guard_rcpt_check(g, SA(a), &s, now, &d);
	guard_session_end(g, &s);
	return v;
}

/* Tests. */

static void
test_hash_vectors(void **state)
{
	struct guard_hkey	k = { 0x0706050403020100ULL,
				      0x0f0e0d0c0b0a0908ULL };
	uint8_t			m[15];
	size_t			i;

	(void)state;
	for (i = 0; i < sizeof(m); i++)
		m[i] = (uint8_t)i;
	/* SipHash-2-4 reference vectors (Aumasson and Bernstein) */
	assert_true(guard_hash(&k, m, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(guard_hash(&k, m, 8) == 0x93f5f5799a932462ULL);
	assert_true(guard_hash(&k, m, 15) == 0xa129ca6149be45e5ULL);
}

static void
test_defaults(void **state)
{
	struct guard_conf	c;

	(void)state;
	guard_conf_defaults(&c);
	assert_int_equal(c.window_ms, 3600000);
	assert_int_equal(c.tarpit_after, 3);
	assert_int_equal(c.tarpit_base_ms, 1000);
	assert_int_equal(c.tarpit_max_ms, 10000);
	assert_int_equal(c.session_limit, 10);
	assert_int_equal(c.threshold, 25);
	assert_int_equal(c.threshold_net, 100);
	assert_int_equal(c.ttl_ms, 86400000);
	assert_int_equal(c.global_rate, 300);
	assert_int_equal(c.max_tarpitted, 2000);
	assert_int_equal(c.session_delay_max_ms, 60000);
	assert_int_equal(c.max_clients, 100000);
	assert_null(c.exempt);
	assert_string_equal(guard_verdict_name(GUARD_CUTOFF), "cutoff");
}

/*
 * One harvesting address, defaults: 3 answered at once, then 1,2,4,8,10 s
 * delays, 421 after the 10th unknown; reconnecting, delayed from the
 * first RCPT at the cap, and cut when the next 10 s would pass the
 * session's 60 s; uniform after 25 distinct names, no sooner than the
 * tarpit.
 */
static void
test_harvester_one_address(void **state)
{
	static const unsigned	 want[] = { 0, 0, 0, 1000, 2000, 4000, 8000,
					    10000, 10000, 10000 };
	struct sockaddr_storage	 a = sa_of("192.0.2.7");
	struct guard_session	 s;
	struct guard		*g = guard_with(NULL);
	struct logcap		 cap;
	const char		*log;
	uint64_t		 now = 1000;
	unsigned		 i, d, tried = 0;
	enum guard_verdict	 v;

	(void)state;
	cap_start(&cap);
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 10; i++) {
		assert_int_equal(rcpt(g, SA(a), &s, now, true,
		    name_n("h", tried++), &d), want[i] ? GUARD_TARPIT :
		    GUARD_PASS);
		assert_int_equal(d, want[i]);
		now += d + 100;
	}
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_CUTOFF);
	assert_int_equal(s.delay_total_ms, 45000);
	guard_session_end(g, &s);
	/* reconnect: 10 distinct in the window, so 10 s from the first */
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 6; i++) {
		assert_int_equal(rcpt(g, SA(a), &s, now, true,
		    name_n("h", tried++), &d), GUARD_TARPIT);
		assert_int_equal(d, 10000);
		now += d;
	}
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_CUTOFF);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	while (tried < 25) {
		v = rcpt(g, SA(a), &s, now, true, name_n("h", tried), &d);
		if (v == GUARD_CUTOFF) {	/* 60 s spent: reconnect */
			guard_session_end(g, &s);
			memset(&s, 0, sizeof(s));
			continue;
		}
		assert_int_equal(v, GUARD_TARPIT);
		tried++;
		now += d;
	}
	/* marked: every RCPT, valid or not, gets the uniform answer, and
	 * no sooner than a tarpitted one */
	assert_int_equal(rcpt(g, SA(a), &s, now, false, "alice", &d),
	    GUARD_UNIFORM);
	assert_int_equal(d, 10000);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now + HOUR_MS, &d),
	    GUARD_UNIFORM);
	log = cap_stop(&cap);
	assert_int_equal(count_of(log, "event=harvest state=tarpit "
	    "net=192.0.2.7 unknown=3 valid=0 distinct=3 delay_ms=1000"), 1);
	assert_int_equal(count_of(log, "state=cutoff net=192.0.2.7 "
	    "unknown=10 valid=0 distinct=10 delay_total_ms=45000 "
	    "reason=limit"), 1);
	assert_int_equal(count_of(log, "state=cutoff net=192.0.2.7 "
	    "unknown=6 valid=0 distinct=16 delay_total_ms=60000 "
	    "reason=delay"), 1);
	assert_int_equal(count_of(log, "state=uniform net=192.0.2.7 "), 1);
	assert_int_equal(count_of(log, "distinct=25 signals=0 ttl_ms="
	    "86400000"), 1);
	assert_int_equal(list_count(g, now, "uniform"), 1);
	free(cap.text);
	guard_free(g);
}

struct delay_case {
	unsigned	 base, max, after;
	unsigned	 want[8];
};

static const struct delay_case delay_cases[] = {
	{ 1000, 5000, 3, { 1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000 } },
	{ 500, 60000, 3, { 500, 1000, 2000, 4000, 8000, 16000, 32000,
	    60000 } },
	{ 1000, 1000, 2, { 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000 } },
	{ 3000, 2000, 2, { 2000, 2000, 2000, 2000, 2000, 2000, 2000, 2000 } },
};

static const struct delay_case *delay_cur;

static void
delay_tweak(struct guard_conf *c)
{
	c->tarpit_base_ms = delay_cur->base;
	c->tarpit_max_ms = delay_cur->max;
	c->tarpit_after = delay_cur->after;
	c->session_limit = 100;
	c->session_delay_max_ms = 0;
}

/*
 * Two clients with the same history; from the tarpit's start one asks
 * only for unknown names, the other alternates valid and unknown: the
 * delays are the same, step by step, so a delay never tells the verdict
 * of the recipient answered (nor of the one before).
 */
static void
test_delay_sequence(void **state)
{
	struct sockaddr_storage	 a = sa_of("192.0.2.1"), b = sa_of("10.0.0.1");
	struct guard_session	 sa, sb;
	struct guard		*g;
	uint64_t		 now;
	unsigned		 i, k, da, db;

	(void)state;
	for (i = 0; i < sizeof(delay_cases) / sizeof(delay_cases[0]); i++) {
		delay_cur = &delay_cases[i];
		g = guard_with(delay_tweak);
		memset(&sa, 0, sizeof(sa));
		memset(&sb, 0, sizeof(sb));
		now = 5000;
		for (k = 0; k < delay_cur->after; k++) {
			assert_int_equal(rcpt(g, SA(a), &sa, now, true,
			    name_n("a", k), &da), GUARD_PASS);
			assert_int_equal(rcpt(g, SA(b), &sb, now, true,
			    name_n("b", k), &db), GUARD_PASS);
		}
		for (k = 0; k < 8; k++) {
			assert_int_equal(rcpt(g, SA(a), &sa, now, true,
			    name_n("a", 100 + k), &da), GUARD_TARPIT);
			assert_int_equal(rcpt(g, SA(b), &sb, now, k % 2 == 1,
			    name_n("b", 100 + k), &db), GUARD_TARPIT);
			assert_int_equal(da, delay_cur->want[k]);
			assert_int_equal(db, da);
			now += da;
		}
		guard_session_end(g, &sa);
		guard_session_end(g, &sb);
		guard_free(g);
	}
}

/* A tiny deterministic generator, so every run sees the same mail. */
static unsigned
lcg(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned)(*x >> 33);
}

struct list_case {
	const char	*what;
	bool		 reconnect;	/* a connection per message */
	bool		 stale_first;	/* worst order, from message 2 */
};

static const struct list_case list_cases[] = {
	{ "one connection, random order", false, false },
	{ "a connection per message", true, false },
	{ "a connection per message, stale names first", true, true },
};

/* Is recipient i of 100 one of the message's 5 stale names? */
static bool
list_is_stale(const struct list_case *lc, unsigned msg, unsigned i,
    const bool *stale)
{
	if (lc->stale_first && msg > 0)
		return i < 5;
	return stale[i];
}

static void
list_pick(uint64_t *seed, bool stale[100])
{
	unsigned	n = 0, i;

	memset(stale, 0, 100 * sizeof(stale[0]));
	while (n < 5)
		if (!stale[i = lcg(seed) % 100]) {
			stale[i] = true;
			n++;
		}
}

/* 20 messages of 100 recipients, 5% stale, new stale names each time:
 * never delayed, cut off or marked. */
static void
test_majority_list_server(void **state)
{
	struct sockaddr_storage	 a = sa_of("198.51.100.25");
	const struct list_case	*lc;
	struct guard_session	 s;
	struct guard		*g;
	bool			 stale[100];
	uint64_t		 seed = 42, now;
	unsigned		 c, m, i, d, nstale;

	(void)state;
	for (c = 0; c < sizeof(list_cases) / sizeof(list_cases[0]); c++) {
		lc = &list_cases[c];
		g = guard_with(NULL);
		memset(&s, 0, sizeof(s));
		now = 1000;
		for (m = 0, nstale = 0; m < 20; m++, now += MIN_MS) {
			if (lc->reconnect && m > 0) {
				guard_session_end(g, &s);
				memset(&s, 0, sizeof(s));
			}
			list_pick(&seed, stale);
			for (i = 0; i < 100; i++) {
				bool u = list_is_stale(lc, m, i, stale);

				assert_int_equal(rcpt(g, SA(a), &s, now, u, u ?
				    name_n("stale", nstale++) :
				    name_n("user", i), &d), GUARD_PASS);
				assert_int_equal(d, 0);
			}
		}
		assert_int_equal(nstale, 100);	/* > threshold: majority */
		assert_int_equal(list_count(g, now, NULL), 0);
		guard_session_end(g, &s);
		guard_free(g);
	}
}

/*
 * The session's own majority: a client with a bad history whose session
 * asks mostly for valid names (11 valid, then 10 unknown) is delayed at
 * most on its first RCPT, and neither tarpitted nor cut off after it.
 */
static void
test_majority_session(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a = sa_of("192.0.2.80");
	struct guard_session	 s;
	unsigned		 i, d;

	(void)state;
	harvest_from(g, "192.0.2.80", 5, 1000);
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 11; i++)
		assert_int_equal(rcpt(g, SA(a), &s, 2000, false,
		    name_n("user", i), &d), i == 0 ? GUARD_TARPIT : GUARD_PASS);
	for (i = 0; i < 10; i++)
		assert_int_equal(rcpt(g, SA(a), &s, 2000, true,
		    name_n("gone", i), &d), GUARD_PASS);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, 2000, &d), GUARD_PASS);
	/* 11 to 11 is no majority (history tarpits it); 12 to 11 is */
	assert_int_equal(rcpt(g, SA(a), &s, 2000, true, "gone.10", &d),
	    GUARD_PASS);
	assert_int_equal(rcpt(g, SA(a), &s, 2000, true, "gone.11", &d),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, 2000, &d),
	    GUARD_CUTOFF);
	guard_session_end(g, &s);
	guard_free(g);
}

/* 50 addresses of one /24, 2,000 messages an hour of 3 recipients for
 * three hours, 3% stale: the /24 sees more than threshold_net distinct
 * stale names an hour, and is never delayed or marked. */
static void
test_majority_provider_net(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a;
	struct guard_session	 s;
	char			 addr[32];
	uint64_t		 seed = 7, now = 1000;
	unsigned		 m, i, d, nstale = 0, last_hour = 0;
	bool			 u;

	(void)state;
	for (m = 0; m < 6000; m++, now += 1800) {
		snprintf(addr, sizeof(addr), "203.0.113.%u", 10 + lcg(&seed) %
		    50);
		a = sa_of(addr);
		memset(&s, 0, sizeof(s));
		for (i = 0; i < 3; i++) {
			u = lcg(&seed) % 100 < 3;
			assert_int_equal(rcpt(g, SA(a), &s, now, u, u ?
			    name_n("gone", nstale) : name_n("user", lcg(&seed) %
			    500), &d), GUARD_PASS);
			nstale += u;
			last_hour += u && m >= 4000;
		}
		guard_session_end(g, &s);
		if (m % 500 == 0)
			guard_tick(g, now);
	}
	assert_true(last_hour > 100);
	assert_int_equal(list_count(g, now, NULL), 0);
	guard_free(g);
}

/* 200 addresses of one /24, one name each: the /24 is tarpitted from
 * the 13th (12 of 100 = 3 of 25) and marked at 100. */
static void
test_harvest_spread_net(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a, other = sa_of("192.0.3.1");
	struct guard_session	 s;
	enum guard_verdict	 v, want;
	char			 addr[32];
	uint64_t		 now = 1000;
	unsigned		 i, d;

	(void)state;
	for (i = 0; i < 200; i++, now += 2000) {
		snprintf(addr, sizeof(addr), "192.0.2.%u", i + 1);
		a = sa_of(addr);
		memset(&s, 0, sizeof(s));
		v = rcpt(g, SA(a), &s, now, true, name_n("n", i), &d);
		want = i < 12 ? GUARD_PASS : i < 100 ? GUARD_TARPIT :
		    GUARD_UNIFORM;
		assert_int_equal(v, want);
		if (i == 12)
			assert_int_equal(d, 1000);
		if (i == 13)
			assert_int_equal(d, 2000);
		guard_session_end(g, &s);
	}
	assert_int_equal(list_count(g, now, "uniform"), 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(other), &s, now, &d),
	    GUARD_PASS);
	guard_free(g);
}

/* IPv6 clients count per /64 (and /48); IPv4-mapped ones as IPv4. */
static void
test_ipv6_grouping(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a, same48 = sa_of("2001:db8:1:3::1");
	struct sockaddr_storage	 far = sa_of("2001:db8:2::1");
	struct guard_session	 s;
	struct listed		 l;
	char			 addr[64];
	uint64_t		 now = 1000;
	unsigned		 i, d;
	int			 n;

	(void)state;
	for (i = 0; i < 25; i++, now += d + 1000) {	/* one /64 */
		snprintf(addr, sizeof(addr), "2001:db8:1:2::%x", i + 1);
		a = sa_of(addr);
		memset(&s, 0, sizeof(s));
		assert_int_equal(rcpt(g, SA(a), &s, now, true, name_n("v", i),
		    &d), i < 3 ? GUARD_PASS : GUARD_TARPIT);
		guard_session_end(g, &s);
	}
	memset(&s, 0, sizeof(s));
	a = sa_of("2001:db8:1:2:ffff::99");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_UNIFORM);
	/* its /48 has 25 of 12 to tarpit, not 100 to mark */
	assert_int_equal(guard_rcpt_check(g, SA(same48), &s, now, &d),
	    GUARD_TARPIT);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(far), &s, now, &d),
	    GUARD_PASS);
	memset(&l, 0, sizeof(l));
	guard_list(g, now, list_cb, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.net[0], "2001:db8:1:2::/64");
	assert_string_equal(l.state[0], "uniform");
	assert_string_equal(l.net[1], "2001:db8:1::/48");
	assert_string_equal(l.state[1], "tarpit");
	/* ::ffff:192.0.2.9 is 192.0.2.9 */
	a = sa_of("::ffff:192.0.2.9");
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 3; i++)
		(void)rcpt(g, SA(a), &s, now, true, name_n("m", i), &d);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	a = sa_of("192.0.2.9");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_TARPIT);
	guard_session_end(g, &s);
	/* a tarpit lifted is counted too (it printed 0 entries) */
	memset(&l, 0, sizeof(l));
	n = guard_unmark(g, "::ffff:192.0.2.9", now, list_cb, &l);
	assert_true(n >= 1);
	assert_int_equal(l.n, (unsigned)n);
	for (i = 0; i < l.n && strcmp(l.net[i], "192.0.2.9") != 0; i++)
		;
	assert_true(i < l.n);
	assert_string_equal(l.state[i], "tarpit");
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d), GUARD_PASS);
	guard_free(g);
}

/* An MTA retrying one stale address (case aside) counts it once. */
static void
test_retry_same_name(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a = sa_of("192.0.2.44");
	struct guard_session	 s;
	uint64_t		 now = 1000;
	unsigned		 i, d;

	(void)state;
	for (i = 0; i < 100; i++, now += 30000) {
		memset(&s, 0, sizeof(s));
		assert_int_equal(rcpt(g, SA(a), &s, now, true,
		    i % 2 ? "Old.Colleague" : "old.colleague", &d), GUARD_PASS);
		assert_int_equal(d, 0);
		guard_session_end(g, &s);
	}
	assert_int_equal(list_count(g, now, NULL), 0);
	/* two more distinct names make three: now it is a harvest */
	memset(&s, 0, sizeof(s));
	(void)rcpt(g, SA(a), &s, now, true, "x1", &d);
	(void)rcpt(g, SA(a), &s, now, true, "x2", &d);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_TARPIT);
	guard_session_end(g, &s);
	guard_free(g);
}

/* Distinct names leave the window after window_ms; every count has
 * decayed after two, and the entries are freed. */
static void
test_window_decay(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a = sa_of("192.0.2.50");
	struct guard_session	 s;
	struct guard_stats	 st;
	uint64_t		 now = 10000;
	unsigned		 i, d;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 5; i++)
		(void)rcpt(g, SA(a), &s, now, true, name_n("w", i), &d);
	guard_session_end(g, &s);
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now + HOUR_MS - 1000,
	    &d), GUARD_TARPIT);
	guard_session_end(g, &s);
	assert_int_equal(list_count(g, now + HOUR_MS - 1000, "tarpit"), 1);
	now += HOUR_MS + 5000;
	memset(&s, 0, sizeof(s));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d), GUARD_PASS);
	assert_int_equal(list_count(g, now, NULL), 0);
	guard_tick(g, now);
	guard_get_stats(g, &st);
	assert_int_equal(st.entries, 2);	/* host and /24, decaying */
	guard_tick(g, now + 2 * HOUR_MS);
	guard_get_stats(g, &st);
	assert_int_equal(st.entries, 0);
	guard_free(g);
}

static void
small_marks(struct guard_conf *c)
{
	c->threshold = 5;
	c->threshold_net = 8;
	c->ttl_ms = 10 * MIN_MS;
	c->window_ms = MIN_MS;
	c->session_limit = 0;
	c->session_delay_max_ms = 0;
}

static void
test_ttl_expiry(void **state)
{
	struct guard	*g = guard_with(small_marks);
	struct logcap	 cap;
	struct listed	 l;
	const char	*log;
	uint64_t	 now = 1000;

	(void)state;
	assert_int_equal(harvest_from(g, "192.0.2.7", 5, now), now + 3000);
	assert_int_equal(check_at(g, "192.0.2.7", now), GUARD_UNIFORM);
	memset(&l, 0, sizeof(l));
	guard_list(g, now, list_cb, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.net[0], "192.0.2.7");
	assert_string_equal(l.state[0], "uniform");
	/* marked when the 5th name was noted, after the 4th's 1 s delay
	 * and its own 2 s */
	assert_true(l.expires[0] == now + 3000 + 10 * MIN_MS);
	assert_string_equal(l.net[1], "192.0.2.0/24");	/* 5 of 5 */
	assert_string_equal(l.state[1], "tarpit");
	now = l.expires[0];
	guard_tick(g, now - 1);
	assert_int_equal(check_at(g, "192.0.2.7", now - 1), GUARD_UNIFORM);
	cap_start(&cap);
	guard_tick(g, now);
	log = cap_stop(&cap);
	assert_int_equal(count_of(log, "state=expired net=192.0.2.7 "), 1);
	assert_int_equal(check_at(g, "192.0.2.7", now), GUARD_PASS);
	assert_int_equal(list_count(g, now, NULL), 0);
	free(cap.text);
	guard_free(g);
}

struct unmark_case {
	const char	*text;
	int		 rc;		/* entries removed */
	unsigned	 uniform;	/* of them, marked */
	enum guard_verdict host7, host8;	/* afterwards */
};

static const struct unmark_case unmark_cases[] = {
	/* .7 marked (5 names), .8 tarpitted (3), the /24 marked (8) */
	{ "192.0.2.7", 2, 2, GUARD_PASS, GUARD_TARPIT },
	{ "::ffff:192.0.2.7", 2, 2, GUARD_PASS, GUARD_TARPIT },
	{ "192.0.2.0/24", 3, 2, GUARD_PASS, GUARD_PASS },
	{ "192.0.0.0/16", 3, 2, GUARD_PASS, GUARD_PASS },
	{ "192.0.2.8", 2, 1, GUARD_UNIFORM, GUARD_PASS },
	{ "198.51.100.7", 0, 0, GUARD_UNIFORM, GUARD_UNIFORM },
	{ "2001:db8::/32", 0, 0, GUARD_UNIFORM, GUARD_UNIFORM },
	{ "192.0.2.7/33", -1, 0, GUARD_UNIFORM, GUARD_UNIFORM },
	{ "harvester", -1, 0, GUARD_UNIFORM, GUARD_UNIFORM },
	{ "", -1, 0, GUARD_UNIFORM, GUARD_UNIFORM },
};

static void
test_unmark(void **state)
{
	const struct unmark_case	*uc;
	struct guard			*g;
	struct logcap			 cap;
	const char			*log;
	uint64_t			 now = 1000;
	size_t				 i;

	(void)state;
	for (i = 0; i < sizeof(unmark_cases) / sizeof(unmark_cases[0]); i++) {
		uc = &unmark_cases[i];
		g = guard_with(small_marks);
		harvest_from(g, "192.0.2.7", 5, now);
		harvest_from(g, "192.0.2.8", 3, now);
		assert_int_equal(check_at(g, "192.0.2.7", now), GUARD_UNIFORM);
		assert_int_equal(check_at(g, "192.0.2.8", now), GUARD_UNIFORM);
		cap_start(&cap);
		assert_int_equal(guard_unmark(g, uc->text, now, NULL, NULL),
		    uc->rc);
		log = cap_stop(&cap);
		assert_int_equal(count_of(log, "state=unmarked"),
		    uc->rc < 0 ? 0 : (unsigned)count_of(log, "net="));
		assert_int_equal(count_of(log, "was=uniform"), uc->uniform);
		assert_int_equal(count_of(log, "state=unmarked"),
		    uc->rc < 0 ? 0 : (unsigned)uc->rc);
		assert_int_equal(check_at(g, "192.0.2.7", now), uc->host7);
		assert_int_equal(check_at(g, "192.0.2.8", now), uc->host8);
		free(cap.text);
		guard_free(g);
	}
	assert_int_equal(guard_unmark(g = guard_with(NULL), NULL, now, NULL,
	    NULL), -1);
	guard_free(g);
}

static struct cidr_list exempt_nets;

static void
with_exempt(struct guard_conf *c)
{
	c->exempt = &exempt_nets;
	c->global_rate = 1;
}

static void
test_exempt(void **state)
{
	struct guard		*g;
	struct sockaddr_storage	 a = sa_of("192.0.2.5");
	struct sockaddr_storage	 b = sa_of("2001:db8::5");
	struct sockaddr_un	 un;
	struct guard_session	 s;
	struct guard_stats	 st;
	unsigned		 i, d;
	const char		*bad;

	(void)state;
	assert_int_equal(cidr_list_parse("192.0.2.0/24, 2001:db8::/32",
	    &exempt_nets, &bad), 0);
	g = guard_with(with_exempt);
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 40; i++) {
		assert_int_equal(rcpt(g, SA(a), &s, 1000, true, name_n("e", i),
		    &d), GUARD_PASS);
		assert_int_equal(rcpt(g, SA(b), &s, 1000, true, name_n("e", i),
		    &d), GUARD_PASS);
		guard_note_signal(g, SA(a), &s, GUARD_SIG_VRFY, 1000);
	}
	assert_int_equal(s.unknown, 0);
	assert_false(guard_rcpt_note(g, SA(a), &s, true, "x", 1, DOM,
	    strlen(DOM), 1000));
	assert_false(guard_domain_hot(g, DOM, strlen(DOM), 1000));
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	assert_int_equal(guard_rcpt_check(g, (struct sockaddr *)&un, &s,
	    1000, &d), GUARD_PASS);
	assert_int_equal(guard_rcpt_check(g, NULL, &s, 1000, &d), GUARD_PASS);
	guard_get_stats(g, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(list_count(g, 1000, NULL), 0);
	guard_free(g);
	cidr_list_free(&exempt_nets);
}

static void
two_slots(struct guard_conf *c)
{
	c->max_tarpitted = 2;
	c->tarpit_max_ms = 5000;
}

/* Three unknown names in a session from a fresh address. */
static void
open_tarpit(struct guard *g, const char *addr, struct guard_session *s)
{
	struct sockaddr_storage	a = sa_of(addr);
	unsigned		i, d;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < 3; i++)
		assert_int_equal(rcpt(g, SA(a), s, 1000, true, name_n(addr, i),
		    &d), GUARD_PASS);
}

static void
test_max_tarpitted(void **state)
{
	struct guard		*g = guard_with(two_slots);
	struct guard_session	 s[4];
	struct sockaddr_storage	 a;
	struct guard_stats	 st;
	struct logcap		 cap;
	unsigned		 d;

	(void)state;
	open_tarpit(g, "192.0.2.1", &s[0]);
	open_tarpit(g, "198.51.100.1", &s[1]);
	open_tarpit(g, "203.0.113.1", &s[2]);
	open_tarpit(g, "10.1.1.1", &s[3]);
	a = sa_of("192.0.2.1");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[0], 1000, &d),
	    GUARD_TARPIT);
	a = sa_of("198.51.100.1");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[1], 1000, &d),
	    GUARD_TARPIT);
	cap_start(&cap);
	a = sa_of("203.0.113.1");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[2], 1000, &d),
	    GUARD_CUTOFF);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[2], 1000, &d),
	    GUARD_CUTOFF);		/* cut stays cut, logged once */
	assert_int_equal(count_of(cap_stop(&cap), "reason=slots"), 1);
	free(cap.text);
	guard_get_stats(g, &st);
	assert_int_equal(st.tarpitted, 2);
	guard_session_end(g, &s[0]);
	guard_session_end(g, &s[0]);	/* idempotent */
	guard_session_end(g, &s[2]);	/* held none */
	guard_get_stats(g, &st);
	assert_int_equal(st.tarpitted, 1);
	a = sa_of("10.1.1.1");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[3], 1000, &d),
	    GUARD_TARPIT);
	guard_session_end(g, &s[1]);
	guard_session_end(g, &s[3]);
	guard_get_stats(g, &st);
	assert_int_equal(st.tarpitted, 0);
	guard_free(g);
}

static void
short_budget(struct guard_conf *c)
{
	c->session_delay_max_ms = 10000;
	c->session_limit = 100;
	c->tarpit_max_ms = 5000;
}

static void
test_session_delay_max(void **state)
{
	static const unsigned	 want[] = { 1000, 2000, 4000 };
	struct guard		*g = guard_with(short_budget);
	struct sockaddr_storage	 a = sa_of("192.0.2.1");
	struct guard_session	 s;
	struct logcap		 cap;
	uint64_t		 now = 1000;
	unsigned		 i, d;

	(void)state;
	open_tarpit(g, "192.0.2.1", &s);
	for (i = 0; i < 3; i++) {
		assert_int_equal(rcpt(g, SA(a), &s, now, true, name_n("z", i),
		    &d), GUARD_TARPIT);
		assert_int_equal(d, want[i]);
		now += d;
	}
	cap_start(&cap);
	/* 7 s given; 5 s more would pass 10 s */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s, now, &d),
	    GUARD_CUTOFF);
	assert_int_equal(d, 0);
	assert_int_equal(count_of(cap_stop(&cap), "delay_total_ms=7000 "
	    "reason=delay"), 1);
	free(cap.text);
	guard_session_end(g, &s);
	guard_free(g);
}

static void
rate_five(struct guard_conf *c)
{
	c->global_rate = 5;
}

/* One unknown name each from clients in different /24s. */
static bool
spread_unknown(struct guard *g, unsigned from, unsigned n, const char *dom,
    uint64_t now)
{
	struct sockaddr_storage	a;
	struct guard_session	s;
	char			addr[32];
	unsigned		i;
	bool			hot = false;

	for (i = from; i < from + n; i++) {
		snprintf(addr, sizeof(addr), "10.%u.%u.1", i / 200, i % 200);
		a = sa_of(addr);
		memset(&s, 0, sizeof(s));
		hot = guard_rcpt_note(g, SA(a), &s, true, name_n("g", i), 3,
		    dom, strlen(dom), now);
		assert_int_equal(s.hot, hot);
		guard_session_end(g, &s);
	}
	return hot;
}

static void
test_global_rate(void **state)
{
	struct guard		*g = guard_with(rate_five);
	struct sockaddr_storage	 a = sa_of("192.0.2.1"), b = sa_of("192.0.2.2");
	struct guard_session	 s;
	struct guard_stats	 st;
	struct logcap		 cap;
	const char		*log;
	uint64_t		 now = 1000;
	unsigned		 d;

	(void)state;
	cap_start(&cap);
	assert_false(spread_unknown(g, 0, 5, DOM, now));
	assert_false(guard_domain_hot(g, DOM, strlen(DOM), now));
	assert_true(spread_unknown(g, 5, 1, DOM, now));	/* 6 > 5 */
	assert_true(guard_domain_hot(g, "EXAMPLE.org", 11, now));
	assert_false(guard_domain_hot(g, "example.net", 11, now));
	assert_false(spread_unknown(g, 100, 3, "example.net", now));
	guard_get_stats(g, &st);
	assert_int_equal(st.hot_domains, 1);
	/* an unknown-heavy session is delayed from its first unknown */
	memset(&s, 0, sizeof(s));
	assert_int_equal(rcpt(g, SA(a), &s, now, true, "who", &d), GUARD_PASS);
	assert_true(s.hot);
	assert_int_equal(rcpt(g, SA(a), &s, now, false, "alice", &d),
	    GUARD_TARPIT);
	assert_int_equal(d, 1000);
	guard_session_end(g, &s);
	/* an honest one is not */
	memset(&s, 0, sizeof(s));
	assert_int_equal(rcpt(g, SA(b), &s, now, false, "alice", &d),
	    GUARD_PASS);
	assert_int_equal(rcpt(g, SA(b), &s, now, false, "bob", &d),
	    GUARD_PASS);
	guard_session_end(g, &s);
	/* hot while the minute's rate stays above 5/2, off once it falls */
	guard_tick(g, now + 50000);
	assert_true(guard_domain_hot(g, DOM, strlen(DOM), now + 50000));
	guard_tick(g, now + 3 * MIN_MS);
	assert_false(guard_domain_hot(g, DOM, strlen(DOM), now + 3 * MIN_MS));
	log = cap_stop(&cap);
	assert_int_equal(count_of(log, "state=global_on domain=example.org "
	    "rate=6 limit=5"), 1);
	assert_int_equal(count_of(log, "state=global_off domain=example.org"),
	    1);
	assert_int_equal(count_of(log, "example.net"), 0);
	free(cap.text);
	guard_get_stats(g, &st);
	assert_int_equal(st.hot_domains, 0);
	guard_free(g);
	/* 0 turns it off */
	g = guard_with(NULL);
	guard_set_conf(g, &(struct guard_conf){ .window_ms = 1000,
	    .max_clients = 100, .global_rate = 0 });
	assert_false(spread_unknown(g, 0, 50, DOM, now));
	guard_free(g);
}

static void
tiny_table(struct guard_conf *c)
{
	c->max_clients = 6;
	c->threshold = 3;
}

static void
all_marked(struct guard_conf *c)
{
	c->max_clients = 4;
	c->threshold = 3;
	c->threshold_net = 3;
}

/* The table never outgrows max_clients; unmarked entries go first. */
static void
test_max_clients(void **state)
{
	struct guard		*g = guard_with(tiny_table);
	struct guard_stats	 st;
	struct logcap		 cap;
	char			 addr[32];
	unsigned		 i;

	(void)state;
	harvest_from(g, "192.0.2.1", 3, 1000);		/* host marked */
	for (i = 0; i < 30; i++) {
		snprintf(addr, sizeof(addr), "10.0.%u.1", i);
		harvest_from(g, addr, 1, 2000 + i);
		guard_get_stats(g, &st);
		assert_true(st.entries <= 6);
	}
	assert_true(st.evicted >= 25);
	assert_int_equal(st.marked, 1);
	assert_int_equal(st.marked_nets, 0);	/* the host only */
	assert_int_equal(check_at(g, "192.0.2.1", 3000), GUARD_UNIFORM);
	guard_free(g);

	g = guard_with(all_marked);
	harvest_from(g, "192.0.2.1", 3, 1000);
	harvest_from(g, "198.51.100.1", 3, 1000);
	guard_get_stats(g, &st);
	assert_int_equal(st.marked, 4);
	assert_int_equal(st.marked_nets, 2);	/* two hosts, their /24s */
	cap_start(&cap);
	harvest_from(g, "203.0.113.1", 1, 2000);
	assert_int_equal(count_of(cap_stop(&cap), "reason=evicted"), 2);
	free(cap.text);
	guard_get_stats(g, &st);
	assert_int_equal(st.entries, 4);
	assert_int_equal(st.marked, 2);
	assert_true(st.marked_nets <= st.marked);
	guard_free(g);

	/* a reload that shrinks the table keeps the marks too */
	g = guard_with(NULL);
	harvest_from(g, "192.0.2.1", 25, 1000);
	for (i = 0; i < 10; i++) {
		snprintf(addr, sizeof(addr), "10.0.%u.1", i);
		harvest_from(g, addr, 1, 2000 + i);
	}
	guard_set_conf(g, &(struct guard_conf){ .window_ms = 3600000,
	    .max_clients = 3, .threshold = 25, .ttl_ms = 86400000 });
	guard_get_stats(g, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.marked, 1);
	assert_int_equal(check_at(g, "192.0.2.1", 3000), GUARD_UNIFORM);
	guard_free(g);
}

struct signal_case {
	enum guard_signal	 sig;
	unsigned		 n;
	enum guard_verdict	 want;
};

static const struct signal_case signal_cases[] = {
	{ GUARD_SIG_VRFY, 2, GUARD_PASS },
	{ GUARD_SIG_VRFY, 3, GUARD_TARPIT },
	{ GUARD_SIG_EXPN, 3, GUARD_TARPIT },
	{ GUARD_SIG_AUTH, 3, GUARD_TARPIT },
	{ GUARD_SIG_PROTO, 3, GUARD_PASS },
	{ GUARD_SIG_PROTO, 11, GUARD_PASS },
	{ GUARD_SIG_PROTO, 12, GUARD_TARPIT },
	{ GUARD_SIG_VRFY, 10, GUARD_CUTOFF },
	{ GUARD_SIG_VRFY, 25, GUARD_UNIFORM },
};

static void
test_signals(void **state)
{
	const struct signal_case	*sc;
	struct sockaddr_storage		 a = sa_of("192.0.2.9");
	struct guard_session		 s;
	struct guard			*g;
	size_t				 i;
	unsigned			 k, d;

	(void)state;
	for (i = 0; i < sizeof(signal_cases) / sizeof(signal_cases[0]); i++) {
		sc = &signal_cases[i];
		g = guard_with(NULL);
		memset(&s, 0, sizeof(s));
		for (k = 0; k < sc->n; k++)
			guard_note_signal(g, SA(a), &s, sc->sig, 1000);
		assert_int_equal(guard_rcpt_check(g, SA(a), &s, 1000, &d),
		    sc->want);
		guard_session_end(g, &s);
		guard_free(g);
	}
}

/* A delivered message does not wash a harvester's history. */
static void
test_delivery_keeps_counts(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a = sa_of("192.0.2.60");
	struct guard_session	 s;
	uint64_t		 now;
	unsigned		 i, d;

	(void)state;
	now = harvest_from(g, "192.0.2.60", 10, 1000);
	memset(&s, 0, sizeof(s));
	assert_int_equal(rcpt(g, SA(a), &s, now, false, "alice", &d),
	    GUARD_TARPIT);
	assert_int_equal(d, 10000);
	guard_session_end(g, &s);	/* message delivered */
	for (i = 0; i < 3; i++)
		assert_int_equal(check_at(g, "192.0.2.60", now + 12000 + i),
		    GUARD_TARPIT);
	guard_free(g);
}

/* A reload keeps the counts and applies the new numbers. */
static void
test_reload(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct guard_conf	 c;
	uint64_t		 now;

	(void)state;
	now = harvest_from(g, "192.0.2.70", 6, 1000);
	assert_int_equal(check_at(g, "192.0.2.70", now), GUARD_TARPIT);
	guard_conf_defaults(&c);
	c.threshold = 7;
	guard_set_conf(g, &c);
	assert_int_equal(check_at(g, "192.0.2.70", now + 5000), GUARD_TARPIT);
	/* 6 seen, one new */
	now = harvest_from(g, "192.0.2.70", 7, now + 10000);
	assert_int_equal(check_at(g, "192.0.2.70", now), GUARD_UNIFORM);
	now = harvest_from(g, "198.51.100.72", 3, now);
	assert_int_equal(check_at(g, "198.51.100.72", now), GUARD_TARPIT);
	c.tarpit_after = 0;			/* tarpit off */
	guard_set_conf(g, &c);
	assert_int_equal(check_at(g, "198.51.100.72", now + 5000),
	    GUARD_PASS);
	guard_free(g);
}

/* Memory per entry, measured: the reported estimate stays small. */
static void
test_memory_per_entry(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a;
	struct guard_session	 s;
	struct guard_stats	 st0, st1, st2;
	char			 addr[32];
	unsigned		 i;

	(void)state;
	guard_get_stats(g, &st0);
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "10.%u.%u.1", i / 250, i % 250);
		a = sa_of(addr);
		memset(&s, 0, sizeof(s));
		(void)guard_rcpt_note(g, SA(a), &s, false, "alice", 5, DOM,
		    strlen(DOM), 1000);
	}
	guard_get_stats(g, &st1);
	assert_int_equal(st1.entries, 2000);
	for (i = 0; i < 1000; i++) {
		snprintf(addr, sizeof(addr), "10.%u.%u.1", i / 250, i % 250);
		a = sa_of(addr);
		(void)guard_rcpt_note(g, SA(a), &s, true, "nobody", 6, DOM,
		    strlen(DOM), 1000);
	}
	guard_get_stats(g, &st2);
	print_message("bytes per entry: %zu counts only, %zu with one "
	    "unknown name\n", (st1.bytes - st0.bytes) / st1.entries,
	    (st2.bytes - st0.bytes) / st2.entries);
	assert_true((st1.bytes - st0.bytes) / st1.entries < 200);
	assert_true((st2.bytes - st0.bytes) / st2.entries < 300);
	guard_free(g);
}

/*
 * A host's delayed replies wait in one queue over all its sessions, and
 * ramp up as the host's: two sessions asking at once get the host's
 * first and second delays (1 s, then 2 s after it), and each later reply
 * comes its own delay after the host's previous one.  Another host is
 * neither queued behind it nor further up the ramp.
 */
static void
ramp_to_five(struct guard_conf *c)
{
	c->tarpit_base_ms = 1000;
	c->tarpit_max_ms = 5000;
}

static void
test_serialized_sessions(void **state)
{
	struct guard		*g = guard_with(ramp_to_five);
	struct sockaddr_storage	 a = sa_of("192.0.2.30");
	struct sockaddr_storage	 b = sa_of("198.51.100.30");
	struct guard_session	 s1, s2, sb;
	uint64_t		 now;
	unsigned		 d1, d2, db;

	(void)state;
	now = harvest_from(g, "192.0.2.30", 3, 1000);	/* history: 3 */
	(void)harvest_from(g, "198.51.100.30", 3, 1000);
	now += 10000;
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	memset(&sb, 0, sizeof(sb));
	/* (the guard is not told the verdicts: the history stays at 3) */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s1, now, &d1),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s2, now, &d2),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(b), &sb, now, &db),
	    GUARD_TARPIT);
	assert_int_equal(d1, 1000);		/* first in the queue */
	assert_int_equal(d2, 1000 + 2000);	/* after s1's reply */
	assert_int_equal(db, 1000);		/* its own queue and ramp */
	/* s1 asks again when its reply came (now + 1 s): the host's third
	 * delay, 4 s, starts when s2's reply has gone (now + 3 s) */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s1, now + 1000, &d1),
	    GUARD_TARPIT);
	assert_int_equal(d1, 2000 + 4000);	/* now + 7 s */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s2, now + 3000, &d2),
	    GUARD_TARPIT);
	assert_int_equal(d2, 4000 + 5000);	/* capped; now + 12 s */
	assert_int_equal(s1.delay_total_ms, 1000 + 6000);
	assert_int_equal(s2.delay_total_ms, 3000 + 9000);
	/* an idle queue adds no wait */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s1, now + 60000, &d1),
	    GUARD_TARPIT);
	assert_int_equal(d1, 5000);
	assert_int_equal(guard_rcpt_check(g, SA(b), &sb, now + 1000, &db),
	    GUARD_TARPIT);
	assert_int_equal(db, 2000);
	guard_session_end(g, &s1);
	guard_session_end(g, &s2);
	guard_session_end(g, &sb);
	guard_free(g);
}

/*
 * The caps count the wait in the queue: with 10 s per session, a third
 * session of one host waiting behind two 5 s replies is cut at once, and
 * so is a session whose next reply would wait past its budget; the slot
 * cap holds whatever host asks.
 */
static void
test_serialized_caps(void **state)
{
	struct guard		*g = guard_with(short_budget);
	struct sockaddr_storage	 a = sa_of("192.0.2.31");
	struct guard_session	 s[4];
	struct logcap		 cap;
	uint64_t		 now;
	unsigned		 i, d[4];

	(void)state;
	now = harvest_from(g, "192.0.2.31", 10, 1000) + 60000;
	for (i = 0; i < 4; i++)
		memset(&s[i], 0, sizeof(s[i]));
	cap_start(&cap);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[0], now, &d[0]),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[1], now, &d[1]),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[2], now, &d[2]),
	    GUARD_CUTOFF);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[3], now, &d[3]),
	    GUARD_CUTOFF);
	assert_int_equal(d[0], 5000);
	assert_int_equal(d[1], 10000);		/* exactly the budget */
	assert_int_equal(d[2], 0);
	/* s[0] again when its reply came: 5 s wait + 5 s > 10 s - 5 s */
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[0], now + 5000, &d[0]),
	    GUARD_CUTOFF);
	assert_int_equal(count_of(cap_stop(&cap), "reason=delay"), 3);
	free(cap.text);
	for (i = 0; i < 4; i++)
		guard_session_end(g, &s[i]);
	guard_free(g);

	g = guard_with(two_slots);
	now = harvest_from(g, "192.0.2.31", 10, 1000) + 60000;
	(void)harvest_from(g, "198.51.100.31", 10, 1000);
	for (i = 0; i < 3; i++)
		memset(&s[i], 0, sizeof(s[i]));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[0], now, &d[0]),
	    GUARD_TARPIT);
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[1], now, &d[1]),
	    GUARD_TARPIT);
	assert_int_equal(d[1], 10000);
	assert_int_equal(check_at(g, "198.51.100.31", now), GUARD_CUTOFF);
	guard_session_end(g, &s[0]);
	a = sa_of("198.51.100.31");
	assert_int_equal(guard_rcpt_check(g, SA(a), &s[2], now, &d[2]),
	    GUARD_TARPIT);
	assert_int_equal(d[2], 5000);		/* not behind 192.0.2.31 */
	guard_session_end(g, &s[1]);
	guard_session_end(g, &s[2]);
	guard_free(g);
}

static void
mark_at_three(struct guard_conf *c)
{
	c->threshold = 3;
	c->tarpit_max_ms = 5000;
}

static void
mark_untarpitted(struct guard_conf *c)
{
	c->threshold = 3;
	c->tarpit_after = 1000;
	c->session_limit = 1000;
}

/*
 * A marked client's uniform replies wait the longest tarpit delay, in
 * the host's queue, valid name or not; where its history would not
 * tarpit it (tarpit_after above the threshold), they are not delayed.
 */
static void
test_uniform_delayed(void **state)
{
	struct guard		*g = guard_with(mark_at_three);
	struct sockaddr_storage	 a = sa_of("192.0.2.32");
	struct guard_session	 s1, s2;
	uint64_t		 now;
	unsigned		 d1, d2;

	(void)state;
	now = harvest_from(g, "192.0.2.32", 3, 1000) + 1000;
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	assert_int_equal(rcpt(g, SA(a), &s1, now, false, "alice", &d1),
	    GUARD_UNIFORM);
	assert_int_equal(rcpt(g, SA(a), &s2, now, true, "nobody", &d2),
	    GUARD_UNIFORM);
	assert_int_equal(d1, 5000);
	assert_int_equal(d2, 10000);
	assert_int_equal(rcpt(g, SA(a), &s1, now + d1, true, "nobody", &d1),
	    GUARD_UNIFORM);
	assert_int_equal(d1, 10000);		/* behind s2's */
	guard_session_end(g, &s1);
	guard_session_end(g, &s2);
	assert_int_equal(check_at(g, "198.51.100.32", now), GUARD_PASS);
	guard_free(g);

	g = guard_with(mark_untarpitted);
	now = harvest_from(g, "192.0.2.32", 3, 1000);
	memset(&s1, 0, sizeof(s1));
	assert_int_equal(guard_rcpt_check(g, SA(a), &s1, now, &d1),
	    GUARD_UNIFORM);
	assert_int_equal(d1, 0);
	assert_false(s1.tarpitted);
	guard_session_end(g, &s1);
	guard_free(g);
}

/*
 * A harvester reconnecting for every guess, each session padded with the
 * one real address it knows: every session is half valid, but the host
 * counts that address once in its window, so its history tarpits it and
 * marks it at 25 distinct names.  A sender writing to the same few
 * people again after a window has them counted again.
 */
static void
test_padded_reconnecting(void **state)
{
	struct guard		*g = guard_with(NULL);
	struct sockaddr_storage	 a = sa_of("192.0.2.33");
	struct guard_session	 s;
	struct logcap		 cap;
	uint64_t		 now = 1000;
	unsigned		 i, d, tarpitted = 0;

	(void)state;
	cap_start(&cap);
	for (i = 0; i < 25; i++) {
		memset(&s, 0, sizeof(s));
		tarpitted += rcpt(g, SA(a), &s, now, false, "alice", &d) ==
		    GUARD_TARPIT;
		now += d;
		(void)rcpt(g, SA(a), &s, now, true, name_n("pad", i), &d);
		now += d;
		guard_session_end(g, &s);
	}
	assert_int_equal(count_of(cap_stop(&cap), "state=uniform "
	    "net=192.0.2.33 unknown=25 valid=1 distinct=25"), 1);
	free(cap.text);
	assert_true(tarpitted >= 20);
	assert_int_equal(check_at(g, "192.0.2.33", now), GUARD_UNIFORM);
	guard_free(g);

	/* the same few names, session after session: counted once per
	 * window, then again */
	g = guard_with(NULL);
	a = sa_of("198.51.100.33");
	for (now = 1000; now < 1000 + 3 * HOUR_MS; now += MIN_MS) {
		memset(&s, 0, sizeof(s));
		(void)rcpt(g, SA(a), &s, now, false, name_n("friend",
		    (unsigned)(now / MIN_MS % 3)), &d);
		guard_session_end(g, &s);
	}
	memset(&s, 0, sizeof(s));
	for (i = 0; i < 2; i++)		/* two stale names this hour */
		(void)rcpt(g, SA(a), &s, now, true, name_n("gone", i), &d);
	guard_session_end(g, &s);
	assert_int_equal(check_at(g, "198.51.100.33", now), GUARD_PASS);
	guard_free(g);
}

/* Several threads share one guard. */
#define T_THREADS	4
#define T_ROUNDS	1000

struct t_arg {
	struct guard	*g;
	pthread_barrier_t *start;
	unsigned	 id;
	uint64_t	 now;
	uint64_t	 release[T_ROUNDS];	/* when each reply goes */
	unsigned	 bad;
};

static void
t_list_cb(void *arg, const char *net, const char *state,
    unsigned distinct, unsigned valid, uint64_t expires)
{
	struct guard_stats	st;

	(void)net;
	(void)state;
	(void)distinct;
	(void)valid;
	(void)expires;
	guard_get_stats(arg, &st);	/* would deadlock under the lock */
}

static void *
t_main(void *vp)
{
	struct t_arg		*t = vp;
	struct sockaddr_storage	 a = sa_of("192.0.2.40");
	struct sockaddr_storage	 o;
	struct guard_session	 s;
	char			 addr[32], name[32];
	unsigned		 i, d;

	(void)pthread_barrier_wait(t->start);
	for (i = 0; i < T_ROUNDS; i++) {
		memset(&s, 0, sizeof(s));
		if (guard_rcpt_check(t->g, SA(a), &s, t->now, &d) !=
		    GUARD_TARPIT)
			t->bad++;
		t->release[i] = t->now + d;
		guard_session_end(t->g, &s);
		/* meanwhile, other clients and the operator */
		snprintf(addr, sizeof(addr), "10.%u.%u.1", t->id, i % 200);
		snprintf(name, sizeof(name), "n%u", i);
		o = sa_of(addr);
		memset(&s, 0, sizeof(s));
		(void)guard_rcpt_check(t->g, SA(o), &s, t->now, &d);
		(void)guard_rcpt_note(t->g, SA(o), &s, i % 3 != 0, name,
		    strlen(name), DOM, strlen(DOM), t->now);
		guard_note_signal(t->g, SA(o), &s, GUARD_SIG_PROTO, t->now);
		guard_session_end(t->g, &s);
		if (i % 50 == t->id) {
			guard_list(t->g, t->now, t_list_cb, t->g);
			guard_tick(t->g, t->now);
			(void)guard_unmark(t->g, addr, t->now, NULL, NULL);
			(void)guard_domain_hot(t->g, DOM, strlen(DOM), t->now);
		}
	}
	return NULL;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
no_caps(struct guard_conf *c)
{
	c->session_delay_max_ms = 0;
	c->max_tarpitted = 0;
	c->tarpit_max_ms = 5000;
}

/*
 * T_THREADS threads ask for one host's replies at the same instant while
 * others count, list, tick and unmark: every reply gets its own 5 s turn
 * in the host's queue (no two at once, none lost), and every slot taken
 * is given back.
 */
static void
test_threads(void **state)
{
	static struct t_arg	 t[T_THREADS];
	static uint64_t		 all[T_THREADS * T_ROUNDS];
	struct guard		*g = guard_with(no_caps);
	struct guard_stats	 st;
	pthread_barrier_t	 start;
	pthread_t		 th[T_THREADS];
	uint64_t		 now;
	unsigned		 i, k;

	(void)state;
	now = harvest_from(g, "192.0.2.40", 10, 1000) + 60000;
	assert_int_equal(pthread_barrier_init(&start, NULL, T_THREADS), 0);
	for (i = 0; i < T_THREADS; i++) {
		t[i] = (struct t_arg){ .g = g, .start = &start, .id = i,
		    .now = now };
		assert_int_equal(pthread_create(&th[i], NULL, t_main, &t[i]),
		    0);
	}
	for (i = 0; i < T_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].bad, 0);
		memcpy(&all[i * T_ROUNDS], t[i].release,
		    sizeof(t[i].release));
	}
	pthread_barrier_destroy(&start);
	qsort(all, T_THREADS * T_ROUNDS, sizeof(all[0]), cmp_u64);
	for (k = 0; k < T_THREADS * T_ROUNDS; k++)
		assert_true(all[k] == now + 5000 * (uint64_t)(k + 1));
	guard_get_stats(g, &st);
	assert_int_equal(st.tarpitted, 0);
	guard_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_vectors),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_harvester_one_address),
		cmocka_unit_test(test_delay_sequence),
		cmocka_unit_test(test_majority_list_server),
		cmocka_unit_test(test_majority_session),
		cmocka_unit_test(test_majority_provider_net),
		cmocka_unit_test(test_harvest_spread_net),
		cmocka_unit_test(test_ipv6_grouping),
		cmocka_unit_test(test_retry_same_name),
		cmocka_unit_test(test_window_decay),
		cmocka_unit_test(test_ttl_expiry),
		cmocka_unit_test(test_unmark),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_max_tarpitted),
		cmocka_unit_test(test_session_delay_max),
		cmocka_unit_test(test_global_rate),
		cmocka_unit_test(test_max_clients),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_delivery_keeps_counts),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_memory_per_entry),
		cmocka_unit_test(test_serialized_sessions),
		cmocka_unit_test(test_serialized_caps),
		cmocka_unit_test(test_uniform_delayed),
		cmocka_unit_test(test_padded_reconnecting),
		cmocka_unit_test(test_threads),
	};

	log_set_level(LOG_LVL_WARNING);	/* info only where captured */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
