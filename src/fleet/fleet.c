/*
 * fleet.c - shared harvest state in Redis (see fleet.h).
 * One connection, on the fleet's own event loop and thread: the SMTP
 * loops hand it operations through a locked queue (fleet_note_*), and
 * read what it last learnt from a locked cache (fleet_view).  Nothing
 * here ever makes an SMTP loop wait for Redis.  Every FLEET_BATCH_MS the
 * loop sends what is queued, one EVAL per source (pipelined), and checks
 * the replies' deadlines; a reply later than shared_state_timeout is
 * ignored (PATTERNS: keep a per-command deadline, map late replies to
 * unknown), and FLEET_TIMEOUTS_DOWN late replies in a row, an error, a
 * malformed reply or a lost connection replace the connection.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>

#include "../lib/log.h"
#include "../lib/redis_url.h"
#include "fleet.h"
#include "../lib/secret_file.h"

#define FLEET_CACHE_N		16384	/* slots; a power of two */
#define FLEET_NAMES_PER_EVAL	256	/* names in one script call */
#define FLEET_ARGV_FIXED	11	/* EVAL script 5 k1..k5 a1..a5 */
#define FLEET_KEY_MAX		(FLEET_SRC_MAX + 128)
#define FLEET_PASSWORD_MAX	512
#define FLEET_CONNECT_MIN_MS	1000	/* connect, AUTH: at least this */
#define FLEET_STUCK_MIN_MS	1000	/* a reply this late: reconnect */

/*
 * One source's batch: add names to the window's set (up to cap), add to
 * the valid count, raise the mark; answer the distinct names over this
 * window and the last, the valid count, the mark.  Atomic, so no key is
 * written without its expiry (PATTERNS: separate increment-then-expire
 * calls left keys that never expire).
 * KEYS: u:i u:i-1 v:i v:i-1 m.  ARGV: expire-at, cap, valid delta,
 * mark until (unix ms, 0: none), gateway, names...
 */
static const char fleet_script[] =
    "local n = #ARGV\n"
    "if n >= 6 then\n"
    "  local c = redis.call('SCARD', KEYS[1])\n"
    "  local cap = tonumber(ARGV[2])\n"
    "  for i = 6, n do\n"
    "    if c >= cap then break end\n"
    "    c = c + redis.call('SADD', KEYS[1], ARGV[i])\n"
    "  end\n"
    "  if c > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end\n"
    "end\n"
    "local dv = tonumber(ARGV[3])\n"
    "if dv > 0 then\n"
    "  redis.call('INCRBY', KEYS[3], dv)\n"
    "  redis.call('PEXPIREAT', KEYS[3], ARGV[1])\n"
    "end\n"
    "local mu = tonumber(ARGV[4])\n"
    "if mu > 0 then\n"
    "  local old = redis.call('GET', KEYS[5])\n"
    "  local ou = 0\n"
    "  if old then ou = tonumber(string.match(old, '^(%d+)')) or 0 end\n"
    "  if mu > ou then\n"
    "    redis.call('SET', KEYS[5], ARGV[4] .. ' ' .. ARGV[5], 'PXAT',"
    " ARGV[4])\n"
    "  end\n"
    "end\n"
    "local d\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  d = #redis.call('SUNION', KEYS[1], KEYS[2])\n"
    "else\n"
    "  d = redis.call('SCARD', KEYS[1])\n"
    "end\n"
    "local v = tonumber(redis.call('GET', KEYS[3]) or '0') +"
    " tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "return {d, v, redis.call('GET', KEYS[5]) or ''}\n";

enum fleet_op_kind { FOP_UNKNOWN, FOP_VALID, FOP_MARK, FOP_FETCH };

struct fleet_op {
	char		 src[FLEET_SRC_MAX];
	uint64_t	 a;		/* name hash, or mark until (wall) */
	unsigned	 cap;
	uint8_t		 kind;
};

struct fleet_slot {
	char		 src[FLEET_SRC_MAX];	/* "": free */
	unsigned	 distinct, valid;
	unsigned	 pending;	/* our names not yet answered for */
	uint64_t	 mark_until;	/* unix ms */
	char		 marker[FLEET_GW_MAX];
	uint64_t	 fetched;	/* unix ms; 0: never answered */
	uint64_t	 asked;		/* unix ms of the last fetch asked */
};

/* One script in flight, in the order sent (Redis answers in order). */
struct fleet_req {
	struct fleet	*f;
	struct fleet_req *next;
	uint64_t	 sent;		/* monotonic ms */
	unsigned	 nnames;
	bool		 late;
	bool		 setup;		/* AUTH, SELECT or ROLE */
	bool		 role;		/* ROLE: must say master */
	char		 src[FLEET_SRC_MAX];
};

struct fleet {
	/* fixed at start */
	struct redis_url	 url;
	char			*password;
	char			*prefix;
	char			 gateway[FLEET_GW_MAX];
	unsigned		 timeout_ms, window_ms;
	uint64_t		 hk0, hk1;
	/* under mu: the SMTP loops' side */
	pthread_mutex_t		 mu;
	struct fleet_op		*q;
	size_t			 nq, capq;
	struct fleet_slot	*cache;
	struct fleet_stats	 st;
	/* the fleet loop's own */
	pthread_t		 thread;
	struct event_base	*base;
	struct event		*tick;
	struct event		*wake;		/* a fetch asked: flush now */
	redisAsyncContext	*ac;
	bool			 connected;	/* connect completed */
	bool			 announced;	/* shared_state=up said */
	uint64_t		 conn_started;	/* monotonic ms */
	uint64_t		 next_try;	/* monotonic ms */
	unsigned		 backoff_ms;
	unsigned		 late_row;
	bool			 kill;		/* drop the connection */
	const char		*kill_why;
	bool			 down_logged;
	uint64_t		 down_since, down_last_log;
	struct fleet_req	*head, *tail;
	struct fleet_op		*held;		/* marks made while down */
	size_t			 nheld;
	struct fleet_op		*batch;		/* swapped with q */
	size_t			 capbatch;
	/* redis-sentinel://: the master, as the sentinels last said */
	redisAsyncContext	*sq;		/* a question to a sentinel */
	uint64_t		 sq_started, next_poll;
	size_t			 si;		/* the sentinel asked */
	char			 master_host[REDIS_URL_HOST_MAX + 1];
	uint16_t		 master_port;
	bool			 have_master;
};

#define FLEET_SENTINEL_POLL_MS	1000	/* who is master, asked again */

static uint64_t
fleet_mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
fleet_wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
fleet_lock(struct fleet *f)
{
	if (pthread_mutex_lock(&f->mu) != 0)
		panic("fleet_lock: cannot lock");
}

static void
fleet_unlock(struct fleet *f)
{
	if (pthread_mutex_unlock(&f->mu) != 0)
		panic("fleet_unlock: cannot unlock");
}

/* FNV-1a: only picks a cache slot; a collision only forgets. */
static uint64_t
fleet_fnv(const void *p, size_t len, uint64_t h)
{
	const uint8_t	*b = p;
	size_t		 i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static struct fleet_slot *
fleet_slot(struct fleet *f, const char *src, bool make)
{
	struct fleet_slot	*s;
	size_t			 len = strnlen(src, FLEET_SRC_MAX - 1);

	s = &f->cache[fleet_fnv(src, len, f->hk0) & (FLEET_CACHE_N - 1)];
	if (strncmp(s->src, src, FLEET_SRC_MAX) == 0)
		return s;
	if (!make)
		return NULL;
	memset(s, 0, sizeof(*s));
	memcpy(s->src, src, len);
	return s;
}

/* Under mu. */
static void
fleet_push(struct fleet *f, enum fleet_op_kind kind, const char *src,
    uint64_t a, unsigned cap)
{
	struct fleet_op	*op;
	size_t		 ncap;

	if (f->nq == f->capq) {
		ncap = f->capq == 0 ? 256 : f->capq * 2;
		if (ncap > FLEET_QUEUE_MAX || (op = reallocarray(f->q, ncap,
		    sizeof(*op))) == NULL) {
			f->st.dropped++;
			return;
		}
		f->q = op;
		f->capq = ncap;
	}
	op = &f->q[f->nq++];
	memset(op->src, 0, sizeof(op->src));
	memcpy(op->src, src, strnlen(src, FLEET_SRC_MAX - 1));
	op->a = a;
	op->cap = cap;
	op->kind = (uint8_t)kind;
}

void
fleet_hash_key(const struct fleet *f, uint64_t *k0, uint64_t *k1)
{
	*k0 = f->hk0;
	*k1 = f->hk1;
}

void
fleet_note_unknown(struct fleet *f, const char *src, uint64_t name,
    unsigned cap)
{
	struct fleet_slot	*s;

	fleet_lock(f);
	fleet_push(f, FOP_UNKNOWN, src, name, cap);
	s = fleet_slot(f, src, true);
	s->pending += s->pending < UINT32_MAX;
	fleet_unlock(f);
}

void
fleet_note_valid(struct fleet *f, const char *src)
{
	fleet_lock(f);
	fleet_push(f, FOP_VALID, src, 0, 0);
	fleet_unlock(f);
}

void
fleet_note_mark(struct fleet *f, const char *src, uint64_t left_ms)
{
	fleet_lock(f);
	fleet_push(f, FOP_MARK, src, fleet_wall_ms() + left_ms, 0);
	fleet_unlock(f);
}

void
fleet_want(struct fleet *f, const char *src, uint64_t max_age_ms)
{
	struct fleet_slot	*s;
	uint64_t		 now = fleet_wall_ms();
	bool			 wake = false;

	fleet_lock(f);
	s = fleet_slot(f, src, true);
	if ((s->fetched == 0 || now - s->fetched > max_age_ms) &&
	    (s->asked == 0 || now - s->asked > f->timeout_ms)) {
		s->asked = now;
		fleet_push(f, FOP_FETCH, src, 0, 0);
		wake = true;
	}
	fleet_unlock(f);
	if (wake)	/* thread-safe (evthread); the next loop turn */
		event_active(f->wake, EV_TIMEOUT, 0);
}

bool
fleet_view(struct fleet *f, const char *src, struct fleet_view *v)
{
	struct fleet_slot	*s;
	uint64_t		 now = fleet_wall_ms();
	bool			 ok = false;

	memset(v, 0, sizeof(*v));
	fleet_lock(f);
	if ((s = fleet_slot(f, src, false)) != NULL && s->fetched != 0 &&
	    now - s->fetched < 2 * (uint64_t)f->window_ms) {
		v->distinct = s->distinct + s->pending;
		v->valid = s->valid;
		if (s->mark_until > now) {
			v->mark_left_ms = s->mark_until - now;
			memcpy(v->marker, s->marker, sizeof(v->marker));
		}
		v->age_ms = now > s->fetched ? now - s->fetched : 0;
		ok = true;
	}
	fleet_unlock(f);
	return ok;
}

size_t
fleet_walk_marks(struct fleet *f, fleet_mark_fn *fn, void *arg)
{
	struct fleet_view	*v;
	char			(*src)[FLEET_SRC_MAX];
	uint64_t		 now = fleet_wall_ms();
	size_t			 i, n = 0, cap = 64;

	/* copied under the lock, told after it: fn may take its time */
	v = calloc(cap, sizeof(*v));
	src = calloc(cap, sizeof(*src));
	fleet_lock(f);
	for (i = 0; v != NULL && src != NULL && i < FLEET_CACHE_N; i++) {
		const struct fleet_slot *s = &f->cache[i];

		if (s->src[0] == '\0' || s->mark_until <= now)
			continue;
		if (n == cap) {
			void	*nv, *ns;

			cap *= 2;
			nv = reallocarray(v, cap, sizeof(*v));
			if (nv != NULL)
				v = nv;
			ns = reallocarray(src, cap, sizeof(*src));
			if (ns != NULL)
				src = ns;
			if (nv == NULL || ns == NULL)
				break;
		}
		memcpy(src[n], s->src, FLEET_SRC_MAX);
		v[n].distinct = s->distinct;
		v[n].valid = s->valid;
		v[n].mark_left_ms = s->mark_until - now;
		memcpy(v[n].marker, s->marker, FLEET_GW_MAX);
		v[n].age_ms = now > s->fetched ? now - s->fetched : 0;
		n++;
	}
	fleet_unlock(f);
	for (i = 0; i < n; i++)
		fn(arg, src[i], &v[i]);
	free(v);
	free(src);
	return n;
}

void
fleet_get_stats(struct fleet *f, struct fleet_stats *st)
{
	fleet_lock(f);
	*st = f->st;
	fleet_unlock(f);
}

/* ---- the fleet loop ---- */

static void
fleet_set_up(struct fleet *f, bool up, const char *why)
{
	uint64_t	now = fleet_mono_ms();

	fleet_lock(f);
	f->st.up = up;
	if (!up && !f->down_logged)
		f->st.downs++;
	fleet_unlock(f);
	if (up) {
		if (f->down_logged)
			log_event(LOG_LVL_INFO, "fleet", "shared_state=up "
			    "down_ms=%" PRIu64 " held_marks=%zu",
			    now - f->down_since, f->nheld);
		else
			log_event(LOG_LVL_INFO, "fleet", "shared_state=up");
		f->down_logged = false;
		return;
	}
	if (!f->down_logged) {
		f->down_logged = true;
		f->down_since = f->down_last_log = now;
		log_event(LOG_LVL_WARNING, "fleet", "shared_state=down "
		    "reason=\"%s\" msg=\"deciding on local counts\"", why);
	}
}

/* A script's names will not be answered for (late, lost, refused):
 * they stop counting as pending; the local counts still have them. */
static void
fleet_unpend(struct fleet *f, const struct fleet_req *q)
{
	struct fleet_slot	*s;

	if (q->nnames == 0)
		return;
	fleet_lock(f);
	if ((s = fleet_slot(f, q->src, false)) != NULL)
		s->pending = s->pending > q->nnames ? s->pending - q->nnames :
		    0;
	fleet_unlock(f);
}

static void
fleet_req_free_all(struct fleet *f)
{
	struct fleet_req	*r, *n;

	for (r = f->head; r != NULL; r = n) {
		n = r->next;
		fleet_unpend(f, r);
		r->f = NULL;		/* its callback frees it */
	}
	f->head = f->tail = NULL;
}

/* From the tick only, never inside a hiredis callback. */
static void
fleet_conn_drop(struct fleet *f, const char *why)
{
	redisAsyncContext	*ac = f->ac;

	f->ac = NULL;
	f->connected = false;
	f->announced = false;
	f->kill = false;
	f->late_row = 0;
	fleet_req_free_all(f);
	if (ac != NULL)
		redisAsyncFree(ac);	/* callbacks see NULL replies */
	fleet_set_up(f, false, why);
	f->next_try = fleet_mono_ms() + f->backoff_ms;
	f->backoff_ms = f->backoff_ms * 2 > FLEET_BACKOFF_MAX_MS ?
	    FLEET_BACKOFF_MAX_MS : f->backoff_ms * 2;
}

static void
fleet_req_unlink(struct fleet *f, struct fleet_req *r)
{
	struct fleet_req	**pp, *prev = NULL;

	for (pp = &f->head; *pp != NULL; prev = *pp, pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			if (f->tail == r)
				f->tail = prev;
			return;
		}
}

static void
fleet_bad(struct fleet *f, const char *why)
{
	fleet_lock(f);
	f->st.errors++;
	fleet_unlock(f);
	f->kill = true;
	f->kill_why = why;
}

static bool
fleet_reply_int(const redisReply *r, unsigned *out)
{
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 0)
		return false;
	*out = r->integer > UINT32_MAX ? UINT32_MAX : (unsigned)r->integer;
	return true;
}

/* "UNTIL GATEWAY", or "". */
static bool
fleet_reply_mark(const redisReply *r, uint64_t *until, char *gw)
{
	size_t		 i, n;
	uint64_t	 v = 0;

	*until = 0;
	gw[0] = '\0';
	if (r->type != REDIS_REPLY_STRING || r->len > FLEET_REPLY_MAX)
		return false;
	if (r->len == 0)
		return true;
	for (i = 0; i < r->len && r->str[i] >= '0' && r->str[i] <= '9' &&
	    i < 19; i++)
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	if (i == 0 || i >= r->len || r->str[i] != ' ')
		return false;
	n = r->len - i - 1;
	if (n >= FLEET_GW_MAX)
		n = FLEET_GW_MAX - 1;
	for (size_t j = 0; j < n; j++) {
		char c = r->str[i + 1 + j];
		gw[j] = c > 0x20 && c < 0x7f ? c : '?';
	}
	gw[n] = '\0';
	*until = v;
	return true;
}

static void
fleet_store(struct fleet *f, const struct fleet_req *q, unsigned d,
    unsigned v, uint64_t until, const char *gw)
{
	struct fleet_slot	*s;

	fleet_lock(f);
	s = fleet_slot(f, q->src, true);
	s->distinct = d;
	s->valid = v;
	s->mark_until = until;
	memcpy(s->marker, gw, FLEET_GW_MAX);
	s->pending = s->pending > q->nnames ? s->pending - q->nnames : 0;
	s->fetched = fleet_wall_ms();
	fleet_unlock(f);
}

static void
fleet_on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleet_req	*q = priv;
	struct fleet		*f = q->f;
	const redisReply	*r = reply;
	unsigned		 d, v;
	uint64_t		 until;
	char			 gw[FLEET_GW_MAX];

	(void)ac;
	if (f != NULL && r != NULL && r->type == REDIS_REPLY_ERROR)
		fleet_unpend(f, q);
	if (f == NULL || r == NULL) {	/* dropped, or freed with it */
		if (f != NULL) {
			fleet_req_unlink(f, q);
			fleet_unpend(f, q);
		}
		free(q);
		return;
	}
	fleet_req_unlink(f, q);
	if (q->late)
		fleet_unpend(f, q);
	if (r->type == REDIS_REPLY_ERROR)
		fleet_bad(f, "error reply");
	else if (q->role) {
		/* ROLE: ["master", ...]; a replica is never written */
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    strcmp(r->element[0]->str, "master") != 0)
			fleet_bad(f, "not a master");
	} else if (q->setup) {
		if (r->type != REDIS_REPLY_STATUS)
			fleet_bad(f, "bad AUTH or SELECT reply");
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    !fleet_reply_int(r->element[0], &d) ||
	    !fleet_reply_int(r->element[1], &v) ||
	    !fleet_reply_mark(r->element[2], &until, gw)) {
		fleet_unpend(f, q);
		fleet_bad(f, "malformed reply");
	}
	else if (!q->late) {
		f->late_row = 0;
		fleet_store(f, q, d, v, until, gw);
	}
	free(q);
}

static struct fleet_req *
fleet_req_new(struct fleet *f, const char *src, unsigned nnames, bool setup)
{
	struct fleet_req	*q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->f = f;
	q->sent = fleet_mono_ms();
	q->nnames = nnames;
	q->setup = setup;
	if (src != NULL)
		memcpy(q->src, src, strnlen(src, FLEET_SRC_MAX - 1));
	if (f->tail != NULL)
		f->tail->next = q;
	else
		f->head = q;
	f->tail = q;
	return q;
}

static void
fleet_send_argv(struct fleet *f, struct fleet_req *q, int argc,
    const char **argv, const size_t *lens)
{
	if (redisAsyncCommandArgv(f->ac, fleet_on_reply, q, argc, argv,
	    lens) != REDIS_OK) {
		fleet_req_unlink(f, q);
		fleet_unpend(f, q);
		free(q);
		fleet_bad(f, "cannot send");
	}
}

static void
fleet_on_connect(const redisAsyncContext *ac, int status)
{
	struct fleet	*f = ac->data;

	if (f == NULL || ac != f->ac)
		return;
	if (status != REDIS_OK) {
		f->ac = NULL;		/* hiredis frees it */
		f->kill = true;
		f->kill_why = "cannot connect";
		return;
	}
	f->connected = true;
}

static void
fleet_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct fleet	*f = ac->data;

	(void)status;
	if (f == NULL || ac != f->ac)
		return;
	f->ac = NULL;			/* hiredis frees it */
	f->kill = true;
	f->kill_why = "connection lost";
}

/* AUTH and SELECT, pipelined before anything else. */
static void
fleet_setup(struct fleet *f)
{
	const char		*argv[2];
	size_t			 lens[2];
	char			 db[8];
	struct fleet_req	*q;

	if (f->password != NULL && (q = fleet_req_new(f, NULL, 0,
	    true)) != NULL) {
		argv[0] = "AUTH";
		argv[1] = f->password;
		lens[0] = 4;
		lens[1] = strlen(f->password);
		fleet_send_argv(f, q, 2, argv, lens);
	}
	if (f->url.db != 0 && (q = fleet_req_new(f, NULL, 0,
	    true)) != NULL) {
		snprintf(db, sizeof(db), "%u", f->url.db);
		argv[0] = "SELECT";
		argv[1] = db;
		lens[0] = 6;
		lens[1] = strlen(db);
		fleet_send_argv(f, q, 2, argv, lens);
	}
	if (f->url.kind == REDIS_URL_SENTINEL && (q = fleet_req_new(f, NULL,
	    0, true)) != NULL) {
		q->role = true;
		argv[0] = "ROLE";
		lens[0] = 4;
		fleet_send_argv(f, q, 1, argv, lens);
	}
}

static void
fleet_connect(struct fleet *f)
{
	redisAsyncContext	*ac;
	const struct redis_url_host *h = &f->url.hosts[0];

	if (f->url.kind == REDIS_URL_SENTINEL)
		ac = redisAsyncConnect(f->master_host, f->master_port);
	else
		ac = redisAsyncConnect(h->host, h->port);
	if (ac == NULL || ac->err != 0) {
		if (ac != NULL)
			redisAsyncFree(ac);
		fleet_conn_drop(f, "cannot connect");
		return;
	}
	ac->data = f;
	f->ac = ac;
	f->connected = false;
	f->conn_started = fleet_mono_ms();
	if (redisLibeventAttach(ac, f->base) != REDIS_OK ||
	    redisAsyncSetConnectCallback(ac, fleet_on_connect) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, fleet_on_disconnect) !=
	    REDIS_OK) {
		fleet_conn_drop(f, "cannot attach");
		return;
	}
	fleet_setup(f);
}

static int
fleet_op_cmp(const void *a, const void *b)
{
	return strncmp(((const struct fleet_op *)a)->src,
	    ((const struct fleet_op *)b)->src, FLEET_SRC_MAX);
}

/* One EVAL for ops[0..n) of one source (at most FLEET_NAMES_PER_EVAL
 * names among them). */
static void
fleet_send_group(struct fleet *f, const struct fleet_op *ops, size_t n,
    uint64_t now_wall)
{
	const char	*argv[FLEET_ARGV_FIXED + FLEET_NAMES_PER_EVAL];
	size_t		 lens[FLEET_ARGV_FIXED + FLEET_NAMES_PER_EVAL];
	char		 keys[5][FLEET_KEY_MAX], a[4][24];
	char		 names[FLEET_NAMES_PER_EVAL][24];
	uint64_t	 w = f->window_ms, i = now_wall / w, until = 0;
	unsigned	 cap = 0, valid = 0, nn = 0;
	size_t		 k;
	struct fleet_req *q;

	for (k = 0; k < n; k++) {
		if (ops[k].kind == FOP_UNKNOWN && nn < FLEET_NAMES_PER_EVAL) {
			/* 63 bits: Redis keeps integers in an intset */
			snprintf(names[nn++], sizeof(names[0]), "%" PRId64,
			    (int64_t)(ops[k].a >> 1));
			cap = ops[k].cap > cap ? ops[k].cap : cap;
		} else if (ops[k].kind == FOP_VALID)
			valid++;
		else if (ops[k].kind == FOP_MARK && ops[k].a > until)
			until = ops[k].a;
	}
	snprintf(keys[0], FLEET_KEY_MAX, "%s{%s}:u:%" PRIu64, f->prefix,
	    ops[0].src, i);
	snprintf(keys[1], FLEET_KEY_MAX, "%s{%s}:u:%" PRIu64, f->prefix,
	    ops[0].src, i - 1);
	snprintf(keys[2], FLEET_KEY_MAX, "%s{%s}:v:%" PRIu64, f->prefix,
	    ops[0].src, i);
	snprintf(keys[3], FLEET_KEY_MAX, "%s{%s}:v:%" PRIu64, f->prefix,
	    ops[0].src, i - 1);
	snprintf(keys[4], FLEET_KEY_MAX, "%s{%s}:m", f->prefix, ops[0].src);
	snprintf(a[0], sizeof(a[0]), "%" PRIu64, (i + 2) * w);
	snprintf(a[1], sizeof(a[1]), "%u", cap);
	snprintf(a[2], sizeof(a[2]), "%u", valid);
	snprintf(a[3], sizeof(a[3]), "%" PRIu64, until > now_wall ? until :
	    0);
	argv[0] = "EVAL";
	argv[1] = fleet_script;
	argv[2] = "5";
	for (k = 0; k < 5; k++)
		argv[3 + k] = keys[k];
	for (k = 0; k < 4; k++)
		argv[8 + k] = a[k];
	argv[12] = f->gateway;
	for (k = 0; k < nn; k++)
		argv[13 + k] = names[k];
	for (k = 0; k < 13 + nn; k++)
		lens[k] = strlen(argv[k]);
	if ((q = fleet_req_new(f, ops[0].src, nn, false)) == NULL) {
		fleet_lock(f);
		f->st.dropped += n;
		fleet_unlock(f);
		return;
	}
	fleet_send_argv(f, q, (int)(13 + nn), argv, lens);
	fleet_lock(f);
	f->st.sent++;
	fleet_unlock(f);
}

/* While down: marks wait for Redis (bounded), the rest is lost (the
 * local counts still decide). */
static void
fleet_hold(struct fleet *f, const struct fleet_op *ops, size_t n)
{
	struct fleet_slot	*s;
	size_t			 k, lost = 0;

	fleet_lock(f);
	for (k = 0; k < n; k++) {
		if (ops[k].kind == FOP_FETCH)
			continue;
		if (ops[k].kind == FOP_MARK && f->nheld < FLEET_HELD_MAX) {
			f->held[f->nheld++] = ops[k];
			continue;
		}
		lost++;
		/* never to be answered for: the local count has it */
		if (ops[k].kind == FOP_UNKNOWN && (s = fleet_slot(f,
		    ops[k].src, false)) != NULL && s->pending > 0)
			s->pending--;
	}
	f->st.dropped += lost;
	fleet_unlock(f);
}

static void
fleet_flush(struct fleet *f)
{
	struct fleet_op	*b;
	size_t		 n, cap, k, start, names;
	uint64_t	 now_wall = fleet_wall_ms();

	fleet_lock(f);
	b = f->q;
	n = f->nq;
	cap = f->capq;
	f->q = f->batch;
	f->capq = f->capbatch;
	f->nq = 0;
	f->batch = b;
	f->capbatch = cap;
	fleet_unlock(f);
	if (n == 0)
		return;
	if (f->ac == NULL || !f->connected) {
		fleet_hold(f, b, n);
		return;
	}
	qsort(b, n, sizeof(*b), fleet_op_cmp);
	for (start = 0, names = 0, k = 0; k < n; k++) {
		names += b[k].kind == FOP_UNKNOWN;
		if (k + 1 == n || fleet_op_cmp(&b[k], &b[k + 1]) != 0 ||
		    names == FLEET_NAMES_PER_EVAL) {
			fleet_send_group(f, b + start, k + 1 - start, now_wall);
			start = k + 1;
			names = 0;
		}
	}
}

/* Marks made while down go first once Redis is back. */
static void
fleet_unhold(struct fleet *f)
{
	size_t	k;

	if (f->nheld == 0)
		return;
	fleet_lock(f);
	for (k = 0; k < f->nheld; k++)
		fleet_push(f, FOP_MARK, f->held[k].src, f->held[k].a, 0);
	f->st.pushed_held += f->nheld;
	fleet_unlock(f);
	log_event(LOG_LVL_INFO, "fleet", "shared_state=resync marks=%zu",
	    f->nheld);
	f->nheld = 0;
}

static void
fleet_deadlines(struct fleet *f, uint64_t now)
{
	struct fleet_req	*r;
	uint64_t		 stuck = (uint64_t)f->timeout_ms * 10;

	if (stuck < FLEET_STUCK_MIN_MS)
		stuck = FLEET_STUCK_MIN_MS;
	for (r = f->head; r != NULL; r = r->next) {
		if (now - r->sent > stuck) {
			f->kill = true;
			f->kill_why = "no reply";
			return;
		}
		if (r->late || now - r->sent <= f->timeout_ms)
			continue;
		r->late = true;
		fleet_lock(f);
		f->st.timeouts++;
		fleet_unlock(f);
		if (++f->late_row >= FLEET_TIMEOUTS_DOWN) {
			f->kill = true;
			f->kill_why = "timeouts";
			return;
		}
	}
}

static void
fleet_down_log(struct fleet *f, uint64_t now)
{
	if (!f->down_logged || now - f->down_last_log < FLEET_DOWN_LOG_MS)
		return;
	f->down_last_log = now;
	log_event(LOG_LVL_WARNING, "fleet", "shared_state=down down_s=%" PRIu64
	    " held_marks=%zu msg=\"deciding on local counts\"",
	    (now - f->down_since) / 1000, f->nheld);
}

/* ---- Sentinel: ask who the master is, at start and every second ---- */

static void
fleet_sq_next(struct fleet *f)
{
	f->si = (f->si + 1) % f->url.nhosts;
}

static void
fleet_sq_on_connect(const redisAsyncContext *ac, int status)
{
	struct fleet	*f = ac->data;

	if (f == NULL || ac != f->sq || status == REDIS_OK)
		return;
	f->sq = NULL;			/* hiredis frees it */
	fleet_sq_next(f);
}

static void
fleet_sq_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct fleet	*f = ac->data;

	(void)status;
	if (f != NULL && ac == f->sq)
		f->sq = NULL;		/* hiredis frees it */
}

/* The master's address: [host, port]; a change replaces the connection
 * (the master moved: +switch-master, seen by asking). */
static void
fleet_sq_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	struct fleet		*f = priv;
	const redisReply	*r = reply;
	long			 port = 0;
	char			*end;

	if (r == NULL || ac != f->sq)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING &&
	    r->element[0]->len > 0 && r->element[0]->len <= REDIS_URL_HOST_MAX)
		port = strtol(r->element[1]->str, &end, 10);
	if (port <= 0 || port > 65535) {
		fleet_sq_next(f);
	} else if (!f->have_master ||
	    strcmp(f->master_host, r->element[0]->str) != 0 ||
	    f->master_port != (uint16_t)port) {
		if (f->have_master)
			log_event(LOG_LVL_INFO, "fleet", "shared_state=switch "
			    "master=%s:%ld was=%s:%u", r->element[0]->str, port,
			    f->master_host, f->master_port);
		snprintf(f->master_host, sizeof(f->master_host), "%s",
		    r->element[0]->str);
		f->master_port = (uint16_t)port;
		f->have_master = true;
		if (f->ac != NULL) {
			f->kill = true;
			f->kill_why = "switch-master";
		}
		f->backoff_ms = FLEET_BACKOFF_MIN_MS;
		f->next_try = 0;	/* the new master at once */
	}
	redisAsyncDisconnect(ac);	/* allowed in a callback */
}

static void
fleet_sq_start(struct fleet *f)
{
	const struct redis_url_host *h = &f->url.hosts[f->si];
	redisAsyncContext	*ac;

	ac = redisAsyncConnect(h->host, h->port);
	if (ac == NULL || ac->err != 0) {
		if (ac != NULL)
			redisAsyncFree(ac);
		fleet_sq_next(f);
		return;
	}
	ac->data = f;
	f->sq = ac;
	f->sq_started = fleet_mono_ms();
	if (redisLibeventAttach(ac, f->base) != REDIS_OK ||
	    redisAsyncSetConnectCallback(ac, fleet_sq_on_connect) != REDIS_OK ||
	    redisAsyncSetDisconnectCallback(ac, fleet_sq_on_disconnect) !=
	    REDIS_OK || redisAsyncCommand(ac, fleet_sq_reply, f,
	    "SENTINEL get-master-addr-by-name %s", f->url.master) !=
	    REDIS_OK) {
		f->sq = NULL;
		redisAsyncFree(ac);
		fleet_sq_next(f);
	}
}

static void
fleet_sentinel_tick(struct fleet *f, uint64_t now, uint64_t cto)
{
	redisAsyncContext	*ac;

	if ((ac = f->sq) != NULL && now - f->sq_started > cto) {
		f->sq = NULL;
		redisAsyncFree(ac);
		fleet_sq_next(f);
	}
	if (f->sq == NULL && now >= f->next_poll) {
		f->next_poll = now + FLEET_SENTINEL_POLL_MS;
		fleet_sq_start(f);
	}
}

static void
fleet_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fleet	*f = arg;
	uint64_t	 now = fleet_mono_ms();
	uint64_t	 cto = (uint64_t)f->timeout_ms * 10;

	(void)fd;
	(void)what;
	if (cto < FLEET_CONNECT_MIN_MS)
		cto = FLEET_CONNECT_MIN_MS;
	if (f->url.kind == REDIS_URL_SENTINEL)
		fleet_sentinel_tick(f, now, cto);
	if (f->ac != NULL && !f->connected && now - f->conn_started > cto)
		fleet_conn_drop(f, "connect timeout");
	fleet_deadlines(f, now);
	if (f->kill)
		fleet_conn_drop(f, f->kill_why != NULL ? f->kill_why :
		    "error");
	if (f->ac == NULL && now >= f->next_try &&
	    (f->url.kind != REDIS_URL_SENTINEL || f->have_master))
		fleet_connect(f);
	if (f->ac != NULL && f->connected && !f->announced) {
		f->announced = true;
		f->backoff_ms = FLEET_BACKOFF_MIN_MS;
		fleet_set_up(f, true, NULL);
		fleet_unhold(f);
	}
	fleet_flush(f);
	fleet_down_log(f, now);
}

static void
fleet_wake(evutil_socket_t fd, short what, void *arg)
{
	struct fleet	*f = arg;

	(void)fd;
	(void)what;
	if (f->ac != NULL && f->connected && f->announced)
		fleet_flush(f);
}

static void *
fleet_main(void *arg)
{
	struct fleet	*f = arg;

	redisAsyncContext	*ac;

	(void)event_base_dispatch(f->base);
	if ((ac = f->sq) != NULL) {
		f->sq = NULL;
		redisAsyncFree(ac);
	}
	if ((ac = f->ac) != NULL) {
		f->ac = NULL;
		fleet_req_free_all(f);
		redisAsyncFree(ac);
	}
	return NULL;
}

int
fleet_password_load(const char *path, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char	*text;
	size_t	 n;
	int	 rc = -1;

	if ((text = secret_file_read(path, outlen - 2, path, "password", &n,
	    err, errlen)) == NULL)
		return -1;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	if (n == 0 || memchr(text, '\n', n) != NULL)
		snprintf(err, errlen, "%s: expected one line, the password",
		    path);
	else {
		memcpy(out, text, n);
		out[n] = '\0';
		rc = 0;
	}
	explicit_bzero(text, n);
	free(text);
	return rc;
}

static void
fleet_free(struct fleet *f)
{
	if (f->tick != NULL)
		event_free(f->tick);
	if (f->wake != NULL)
		event_free(f->wake);
	if (f->base != NULL)
		event_base_free(f->base);
	if (f->password != NULL) {
		explicit_bzero(f->password, strlen(f->password));
		free(f->password);
	}
	free(f->prefix);
	free(f->q);
	free(f->batch);
	free(f->held);
	free(f->cache);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int
fleet_check(const struct fleet_conf *c, char *err, size_t errlen)
{
	struct redis_url	 u;
	const char		*why;

	if (redis_url_parse(c->url, strlen(c->url), &u, &why) == -1) {
		snprintf(err, errlen, "shared_state: %s", why);
		return -1;
	}
	if (strpbrk(c->prefix, "{} ") != NULL) {
		snprintf(err, errlen, "shared_state_prefix must not hold "
		    "braces or spaces");
		return -1;
	}
	return 0;
}

static int
fleet_init(struct fleet *f, const struct fleet_conf *c, char *err,
    size_t errlen)
{
	const char	*why;
	uint64_t	 h = 0xcbf29ce484222325ULL;

	if (fleet_check(c, err, errlen) == -1)
		return -1;
	(void)redis_url_parse(c->url, strlen(c->url), &f->url, &why);
	f->timeout_ms = c->timeout_ms;
	f->window_ms = c->window_ms > 0 ? c->window_ms : 3600000;
	snprintf(f->gateway, sizeof(f->gateway), "%s", c->gateway);
	for (char *p = f->gateway; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			*p = '_';
	/* names hash the same on every gateway of the fleet */
	h = fleet_fnv("mxgate-fleet", 12, h);
	h = fleet_fnv(c->prefix, strlen(c->prefix), h);
	if (c->password != NULL)
		h = fleet_fnv(c->password, strlen(c->password), h);
	f->hk0 = h;
	f->hk1 = fleet_fnv("k1", 2, h);
	f->backoff_ms = FLEET_BACKOFF_MIN_MS;
	if ((f->prefix = strdup(c->prefix)) == NULL ||
	    (c->password != NULL && (f->password = strdup(c->password)) ==
	    NULL) ||
	    (f->cache = calloc(FLEET_CACHE_N, sizeof(*f->cache))) == NULL ||
	    (f->held = calloc(FLEET_HELD_MAX, sizeof(*f->held))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

struct fleet *
fleet_start(const struct fleet_conf *c, char *err, size_t errlen)
{
	struct fleet	*f;
	struct timeval	 tv = { 0, FLEET_BATCH_MS * 1000 };

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (fleet_init(f, c, err, errlen) == -1) {
		fleet_free(f);
		return NULL;
	}
	if (evthread_use_pthreads() == -1 ||
	    (f->base = event_base_new()) == NULL ||
	    (f->tick = event_new(f->base, -1, EV_PERSIST, fleet_tick, f)) ==
	    NULL || event_add(f->tick, &tv) == -1 ||
	    (f->wake = event_new(f->base, -1, 0, fleet_wake, f)) == NULL) {
		snprintf(err, errlen, "cannot create the fleet's event loop");
		fleet_free(f);
		return NULL;
	}
	log_event(LOG_LVL_INFO, "fleet", "shared_state=connecting "
	    "%s=%s:%u db=%u timeout_ms=%u", f->url.kind ==
	    REDIS_URL_SENTINEL ? "sentinel" : "redis", f->url.hosts[0].host,
	    f->url.hosts[0].port, f->url.db, f->timeout_ms);
	if (f->url.kind == REDIS_URL_DIRECT)
		fleet_connect(f);
	if (pthread_create(&f->thread, NULL, fleet_main, f) != 0) {
		snprintf(err, errlen, "cannot start the fleet thread");
		if (f->ac != NULL)
			redisAsyncFree(f->ac);
		fleet_free(f);
		return NULL;
	}
	return f;
}

void
fleet_stop(struct fleet *f)
{
	if (f == NULL)
		return;
	(void)event_base_loopbreak(f->base);	/* thread-safe (evthread) */
	pthread_join(f->thread, NULL);
	fleet_free(f);
}
