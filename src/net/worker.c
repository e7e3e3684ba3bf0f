/*
 * worker.c - the event loops: listeners, the hand-off of new connections
 * to the least busy loop, signals, the session tables, reloads reaching
 * every loop, and an orderly stop (see worker.h for who owns what).
 * Owns: listening sockets, the current config and directory pointers
 * (swapped whole on SIGHUP; sessions keep the snapshot they started with).
 * Never: speaks SMTP or touches queue files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <event2/listener.h>

#include "../conf/conf.h"
#include "../ctl/ctl.h"
#include "../deliver/qmgr.h"
#include "../dir/dir.h"
#include "../dns/dns.h"
#include "../fleet/fleet.h"
#include "../guard/guard.h"
#include "../lib/job.h"
#include "../lib/log.h"
#include "../lib/sock_listen.h"
#include "../lib/sdnotify.h"
#include "../queue/queue.h"
#include "../auth/passwd.h"
#include "../sender/batv_since.h"
#include "../auth/sender_map.h"
#include "../smtp/smtp_session.h"
#include "climit.h"
#include "tls.h"
#include "worker.h"

#define WORKER_BACKLOG		1024
#define WORKER_STOP_GRACE_MS	5000	/* sessions get this long to end */

/* A connection admitted by worker 0, waiting in another loop's inbox. */
struct worker_conn {
	struct worker_conn	*next;
	evutil_socket_t		 fd;
	struct sockaddr_storage	 sa;
	int			 socklen;
	enum smtp_listener	 kind;
};

/* A listening socket of worker 0: what it is for, where. */
struct worker_listener {
	struct worker		*w;
	struct evconnlistener	*lev;
	enum smtp_listener	 kind;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 text[80];	/* as configured, for logs */
};

/* The config keys that carry addresses, by listener kind. */
static const struct {
	enum smtp_listener	 kind;
	const char		*key;		/* config key */
	const char		*name;		/* listener= in the log */
} worker_kinds[] = {
	{ SMTP_LISTENER_MX, "listen", "smtp" },
	{ SMTP_LISTENER_TLS, "tls_required_listen", "smtp_tls_required" },
	{ SMTP_LISTENER_SUBMISSION, "submission_listen", "submission" },
};
#define WORKER_NKINDS	(sizeof(worker_kinds) / sizeof(worker_kinds[0]))

static void	worker_stop(struct worker *);

static size_t
worker_bucket(uint64_t id)
{
	id ^= id >> 29;
	id *= 0xbf58476d1ce4e5b9ULL;
	id ^= id >> 32;
	return (size_t)(id & (WORKER_SESSION_BUCKETS - 1));
}

void
worker_session_add(struct worker *w, struct smtp_session *s)
{
	size_t	b = worker_bucket(s->id);

	s->hnext = w->sessions[b];
	w->sessions[b] = s;
	w->nsessions++;
	obs_add(&w->obs.sessions_started, 1);
}

void
worker_session_del(struct worker *w, struct smtp_session *s)
{
	struct smtp_session	**pp = &w->sessions[worker_bucket(s->id)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			w->nsessions--;
			atomic_fetch_sub(&w->grp->nsessions, 1);
			climit_release(w->climit,
			    (const struct sockaddr *)&s->peer);
			return;
		}
	panic("worker_session_del: session %016llx not in table",
	    (unsigned long long)s->id);
}

struct smtp_session *
worker_session_find(struct worker *w, uint64_t id)
{
	struct smtp_session	*s;

	for (s = w->sessions[worker_bucket(id)]; s != NULL; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

/*
 * Stress mode: on at 80% of max_connections, off below 70% (so that it
 * does not flap); on, every session's timeouts shrink at once, so clients
 * that sit idle cannot keep the gateway full.
 */
bool
worker_stressed(struct worker *w)
{
	size_t			 total = atomic_load(&w->grp->nsessions);
	size_t			 pct = total * 100 /
				    (w->conf->max_connections ?
				    w->conf->max_connections : 1);
	bool			 now = w->stressed ? pct >= 70 : pct >= 80;
	struct smtp_session	*s;
	size_t			 i;

	if (now == w->stressed)
		return now;
	w->stressed = now;
	log_event(LOG_LVL_WARNING, "stress", "state=%s sessions=%zu "
	    "max_connections=%u loop=%u", now ? "on" : "off", total,
	    w->conf->max_connections, w->idx);
	/* Entering it, every open session gets the short timeouts; leaving
	 * it, only new sessions and state changes get the long ones back, so
	 * a flood that ebbs cannot park its last connections for minutes. */
	for (i = 0; now && i < WORKER_SESSION_BUCKETS; i++)
		for (s = w->sessions[i]; s != NULL; s = s->hnext)
			smtp_session_retime(s);
	return now;
}

/*
 * Connection limits, checked before a session exists: a refused client
 * gets one 421 line written straight to the socket (best effort, it is
 * non-blocking) and the connection is closed.  The session's release in
 * worker_session_del balances the count taken here.
 */
static bool
worker_admit(struct worker *w, evutil_socket_t fd, struct sockaddr *sa)
{
	const struct config	*c = w->conf;
	enum climit_verdict	 v = CLIMIT_TOO_MANY;
	char			 line[300], client[INET6_ADDRSTRLEN + 8];
	size_t			 open = atomic_load(&w->grp->nsessions);
	int			 n;

	if (open >= c->max_connections ||
	    (v = climit_admit(w->climit, sa, c->max_connections_per_client,
	    c->max_connection_rate_per_client, smtp_now_ms())) != CLIMIT_OK) {
		n = snprintf(line, sizeof(line), "421 4.7.0 %s Error: %s, try "
		    "again later\r\n", c->hostname, open >=
		    c->max_connections ? "too many connections" :
		    v == CLIMIT_TOO_FAST ? "too many connections from you "
		    "per minute" : "too many connections from you");
		(void)send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
		evutil_closesocket(fd);
		obs_session_end(&w->obs, OBS_SESS_REFUSED);
		if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->
			    sin6_addr, client, sizeof(client));
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->
			    sin_addr, client, sizeof(client));
		log_event(LOG_LVL_INFO, "refused", "client=%s reason=%s "
		    "sessions=%zu", client, open >= c->max_connections ?
		    "max_connections" : climit_verdict_name(v), open);
		return false;
	}
	atomic_fetch_add(&w->grp->nsessions, 1);
	(void)worker_stressed(w);
	return true;
}

/* A session that could not start gives back what admitting it took. */
static void
worker_unadmit(struct worker *w, const struct sockaddr *sa)
{
	atomic_fetch_sub(&w->grp->nsessions, 1);
	climit_release(w->climit, sa);
}

static void
worker_start_session(struct worker *w, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, enum smtp_listener kind)
{
	if (smtp_session_accept(w, fd, sa, socklen, kind) == -1)
		worker_unadmit(w, sa);
}

/* The loop with the fewest sessions; among equals, the next in turn. */
static struct worker *
worker_pick(struct worker *w0)
{
	struct worker_group	*g = w0->grp;
	struct worker		*best = NULL;
	size_t			 i, k, n, least = SIZE_MAX;

	for (i = 0; i < g->n; i++) {
		k = (g->next + i) % g->n;
		if ((n = atomic_load(&g->w[k]->nsessions)) < least) {
			least = n;
			best = g->w[k];
		}
	}
	g->next = (g->next + 1) % g->n;
	return best;
}

/* Worker 0: queue a connection for another loop and wake it. */
static void
worker_hand_off(struct worker *to, evutil_socket_t fd, struct sockaddr *sa,
    int socklen, enum smtp_listener kind)
{
	struct worker_conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (size_t)socklen > sizeof(c->sa)) {
		free(c);
		evutil_closesocket(fd);
		worker_unadmit(to, sa);
		return;
	}
	c->fd = fd;
	memcpy(&c->sa, sa, (size_t)socklen);
	c->socklen = socklen;
	c->kind = kind;
	pthread_mutex_lock(&to->mbox_mu);
	*(to->inbox ? to->inbox_tail : &to->inbox) = c;
	to->inbox_tail = &c->next;
	pthread_mutex_unlock(&to->mbox_mu);
	event_active(to->wake_ev, EV_READ, 0);
}

/* Drop one loop's references to a snapshot (any of them may be NULL). */
static void
worker_snap_drop(struct config *conf, struct dir *dir, struct tls_ctx *tls,
    struct passwd_file *pw)
{
	if (conf)
		conf_unref(conf);
	if (dir)
		dir_unref(dir);
	tls_ctx_free(tls);
	passwd_unref(pw);
}

/* On a loop of idx > 0: whatever worker 0 left in the mailbox. */
static void
worker_wake(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct worker_conn	*in, *next;
	struct config		*conf = NULL;
	struct dir		*dir = NULL;
	struct tls_ctx		*tls = NULL;
	struct passwd_file	*pw = NULL;
	bool			 swap, stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->mbox_mu);
	in = w->inbox;
	w->inbox = NULL;
	if ((swap = w->mbox_swap)) {
		conf = w->mbox_conf;
		dir = w->mbox_dir;
		tls = w->mbox_tls;
		pw = w->mbox_pw;
		w->mbox_swap = false;
	}
	stop = w->mbox_stop;
	pthread_mutex_unlock(&w->mbox_mu);
	if (swap) {
		worker_snap_drop(w->conf, w->dir, w->tls, w->passwd);
		w->conf = conf;
		w->dir = dir;
		w->tls = tls;
		w->passwd = pw;
	}
	for (; in != NULL; in = next) {
		next = in->next;
		if (w->stopping) {
			evutil_closesocket(in->fd);
			worker_unadmit(w, (struct sockaddr *)&in->sa);
		} else
			worker_start_session(w, in->fd,
			    (struct sockaddr *)&in->sa, in->socklen,
			    in->kind);
		free(in);
	}
	if (stop)
		worker_stop(w);
}

/* Worker 0, after a reload: every other loop gets the new snapshot. */
static void
worker_post_snapshot(struct worker *w0)
{
	struct worker	*w;
	unsigned	 i;

	for (i = 1; i < w0->grp->n; i++) {
		w = w0->grp->w[i];
		pthread_mutex_lock(&w->mbox_mu);
		if (w->mbox_swap)		/* never picked up: drop it */
			worker_snap_drop(w->mbox_conf, w->mbox_dir,
			    w->mbox_tls, w->mbox_pw);
		w->mbox_conf = conf_ref(w0->conf);
		w->mbox_dir = w0->dir ? dir_ref(w0->dir) : NULL;
		w->mbox_tls = tls_ctx_ref(w0->tls);
		w->mbox_pw = w0->passwd ? passwd_ref(w0->passwd) : NULL;
		w->mbox_swap = true;
		pthread_mutex_unlock(&w->mbox_mu);
		event_active(w->wake_ev, EV_READ, 0);
	}
}

static void
worker_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct worker_listener	*wl = arg;
	struct worker		*w = wl->w, *to;

	(void)l;
	if (w->stopping) {
		evutil_closesocket(fd);
		return;
	}
	if (!worker_admit(w, fd, sa))
		return;
	if ((to = worker_pick(w)) == w)
		worker_start_session(w, fd, sa, socklen, wl->kind);
	else
		worker_hand_off(to, fd, sa, socklen, wl->kind);
}

static int
worker_bind(const struct listen_addr *la)
{
	return sock_listen((const struct sockaddr *)&la->ss, la->sslen,
	    WORKER_BACKLOG);
}

/* The addresses of one kind in a config. */
static void
worker_addrs(const struct config *c, enum smtp_listener kind,
    const struct listen_addr **v, size_t *n)
{
	switch (kind) {
	case SMTP_LISTENER_MX:
		*v = c->listen;
		*n = c->nlisten;
		return;
	case SMTP_LISTENER_TLS:
		*v = c->tls_listen.addr;
		*n = c->tls_listen.n;
		return;
	case SMTP_LISTENER_SUBMISSION:
		*v = c->submission.addr;
		*n = c->submission.n;
		return;
	}
	panic("worker_addrs: kind %d", (int)kind);
}

static const char *
worker_kind_name(enum smtp_listener kind)
{
	size_t	i;

	for (i = 0; i < WORKER_NKINDS; i++)
		if (worker_kinds[i].kind == kind)
			return worker_kinds[i].name;
	panic("worker_kind_name: kind %d", (int)kind);
}

static bool
worker_same_addr(const struct worker_listener *wl, enum smtp_listener kind,
    const struct listen_addr *la)
{
	return wl->kind == kind && wl->sslen == la->sslen &&
	    memcmp(&wl->ss, &la->ss, la->sslen) == 0;
}

/* Bind la and listen on it; the new listener goes into w->listeners,
 * which has room. */
static int
worker_listen_one(struct worker *w, const struct listen_addr *la,
    enum smtp_listener kind)
{
	struct worker_listener	*wl;
	int			 fd;

	if ((fd = worker_bind(la)) == -1) {
		log_event(LOG_LVL_ERROR, "listen", "addr=%s listener=%s "
		    "msg=\"%m\"", la->text, worker_kind_name(kind));
		return -1;
	}
	if ((wl = calloc(1, sizeof(*wl))) == NULL) {
		close(fd);
		return -1;
	}
	wl->w = w;
	wl->kind = kind;
	memcpy(&wl->ss, &la->ss, la->sslen);
	wl->sslen = la->sslen;
	snprintf(wl->text, sizeof(wl->text), "%s", la->text);
	wl->lev = evconnlistener_new(w->base, worker_accept, wl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (wl->lev == NULL) {
		close(fd);
		free(wl);
		return -1;
	}
	w->listeners[w->nlisteners++] = wl;
	log_event(LOG_LVL_INFO, "listening", "addr=%s listener=%s", la->text,
	    worker_kind_name(kind));
	return 0;
}

static void
worker_listener_free(struct worker_listener *wl)
{
	evconnlistener_free(wl->lev);
	free(wl);
}

static size_t
worker_naddrs(const struct config *c)
{
	return c->nlisten + c->tls_listen.n + c->submission.n;
}

int
worker_listen(struct worker *w)
{
	const struct listen_addr	*v;
	size_t				 i, k, n;

	w->listeners = calloc(worker_naddrs(w->conf) + 1,
	    sizeof(*w->listeners));
	if (w->listeners == NULL)
		return -1;
	for (k = 0; k < WORKER_NKINDS; k++) {
		worker_addrs(w->conf, worker_kinds[k].kind, &v, &n);
		for (i = 0; i < n; i++)
			if (worker_listen_one(w, &v[i],
			    worker_kinds[k].kind) == -1)
				return -1;
	}
	return 0;
}

/* Add key to a "KEY,KEY" list, once. */
static void
worker_note_key(char *list, size_t len, const char *key)
{
	size_t	n = strlen(list), k = strlen(key);
	const char *p;

	for (p = list; (p = strstr(p, key)) != NULL; p += k)
		if ((p == list || p[-1] == ',') && (p[k] == ',' ||
		    p[k] == '\0'))
			return;
	if (n + (n > 0) + k + 1 <= len)
		snprintf(list + n, len - n, "%s%s", n > 0 ? "," : "", key);
}

/* Is la held by one of our listeners of another kind? */
static bool
worker_held_elsewhere(struct worker_listener **v, size_t n,
    enum smtp_listener kind, const struct listen_addr *la)
{
	size_t	j;

	for (j = 0; j < n; j++)
		if (v[j]->kind != kind &&
		    v[j]->sslen == la->sslen &&
		    memcmp(&v[j]->ss, &la->ss, la->sslen) == 0)
			return true;
	return false;
}

/* An address of the new config that another kind's listener holds. */
struct worker_moved {
	size_t				 k;	/* worker_kinds[k] */
	const struct listen_addr	*la;
};

/*
 * Open c's addresses of kind k that none of old[0..nold) serves; those
 * held by a listener of another kind go to moved[] for later.  false if
 * any failed to open.
 */
static bool
worker_open_new(struct worker *w, const struct config *c, size_t k,
    struct worker_listener **old, size_t nold, struct worker_moved *moved,
    size_t *nmoved, char *restart, size_t restartlen)
{
	const struct listen_addr	*v;
	enum smtp_listener		 kind = worker_kinds[k].kind;
	size_t				 i, j, n;
	bool				 have, ok = true;

	worker_addrs(c, kind, &v, &n);
	for (i = 0; i < n; i++) {
		for (j = 0, have = false; j < nold && !have; j++)
			have = worker_same_addr(old[j], kind, &v[i]);
		for (j = 0; j < w->nlisteners && !have; j++)
			have = worker_same_addr(w->listeners[j], kind, &v[i]);
		if (have)
			continue;
		if (worker_held_elsewhere(old, nold, kind, &v[i])) {
			moved[*nmoved].k = k;
			moved[(*nmoved)++].la = &v[i];
		} else if (worker_listen_one(w, &v[i], kind) == -1) {
			worker_note_key(restart, restartlen,
			    worker_kinds[k].key);
			ok = false;
		}
	}
	return ok;
}

/*
 * Open what the new config added, then close what it dropped (sessions
 * accepted on a closed listener go on and end as they would have), then
 * open the addresses that moved from one key to another.  When a new
 * address of a key cannot be opened, the listeners that key dropped stay
 * open, so the gateway stays reachable until the restart it asks for.
 */
void
worker_relisten(struct worker *w, const struct config *c, char *restart,
    size_t restartlen)
{
	struct worker_listener		**old = w->listeners, *wl;
	struct worker_moved		 *moved;
	const struct listen_addr	 *v;
	size_t				  nold = w->nlisteners, nmoved = 0;
	size_t				  i, j, k, n;
	bool				  failed[WORKER_NKINDS], keep;

	w->listeners = calloc(nold + worker_naddrs(c) + 1,
	    sizeof(*w->listeners));
	moved = calloc(worker_naddrs(c) + 1, sizeof(*moved));
	if (w->listeners == NULL || moved == NULL) {
		log_event(LOG_LVL_WARNING, "reload", "msg=\"out of memory: "
		    "listeners left as they were\"");
		worker_note_key(restart, restartlen, "listen");
		free(w->listeners);
		free(moved);
		w->listeners = old;
		return;
	}
	w->nlisteners = 0;
	for (k = 0; k < WORKER_NKINDS; k++)
		failed[k] = !worker_open_new(w, c, k, old, nold, moved,
		    &nmoved, restart, restartlen);
	for (j = 0; j < nold; j++) {
		wl = old[j];
		for (k = 0; worker_kinds[k].kind != wl->kind; k++)
			;
		worker_addrs(c, wl->kind, &v, &n);
		for (i = 0, keep = false; i < n && !keep; i++)
			keep = worker_same_addr(wl, wl->kind, &v[i]);
		if (!keep && failed[k])
			log_event(LOG_LVL_WARNING, "listen_kept", "addr=%s "
			    "listener=%s reason=\"a new %s address could not "
			    "be opened\"", wl->text, worker_kind_name(wl->kind),
			    worker_kinds[k].key);
		if (keep || failed[k]) {
			w->listeners[w->nlisteners++] = wl;
			continue;
		}
		log_event(LOG_LVL_INFO, "listen_closed", "addr=%s listener=%s",
		    wl->text, worker_kind_name(wl->kind));
		worker_listener_free(wl);
	}
	for (i = 0; i < nmoved; i++)
		if (worker_listen_one(w, moved[i].la,
		    worker_kinds[moved[i].k].kind) == -1)
			worker_note_key(restart, restartlen,
			    worker_kinds[moved[i].k].key);
	free(moved);
	free(old);
}

void
worker_guard_conf(const struct config *c, struct guard_conf *g)
{
	guard_conf_defaults(g);
	g->window_ms = c->harvest_window_ms;
	g->tarpit_after = c->harvest_tarpit_after;
	g->tarpit_base_ms = c->harvest_tarpit_delay_ms;
	g->tarpit_max_ms = c->harvest_tarpit_max_ms;
	g->session_limit = c->harvest_session_limit;
	g->threshold = c->harvest_threshold;
	g->threshold_net = c->harvest_threshold_net;
	g->ttl_ms = c->harvest_ttl_ms;
	g->global_rate = c->harvest_global_rate;
	g->max_tarpitted = c->harvest_max_tarpitted;
	g->session_delay_max_ms = c->harvest_session_delay_max_ms;
	g->max_clients = c->harvest_max_clients;
	g->exempt = &c->harvest_exempt;
}

/* A reload runs off the loop (loading a large users file takes time). */
struct reload {
	struct worker		*w;
	char			*file;
	struct config		*conf;
	struct dir		*dir;
	bool			 secure;	/* tls and pw loaded */
	struct tls_ctx		*tls;
	struct passwd_file	*pw;
	char			 why[256];	/* the first error, for ctl */
};

int
worker_secure_load(const struct config *c, struct tls_ctx **tls,
    struct passwd_file **pw, void (*err)(void *, const char *, unsigned,
    const char *), void *arg)
{
	char	why[512];

	*tls = NULL;
	*pw = NULL;
	if (tls_ctx_load(c, tls, why, sizeof(why)) == -1) {
		err(arg, c->file, 0, why);
		return -1;
	}
	if (c->passwd_file != NULL &&
	    (*pw = passwd_load(c->passwd_file, err, arg)) == NULL) {
		tls_ctx_free(*tls);
		*tls = NULL;
		return -1;
	}
	/* the sender login map rides with the AUTH users it speaks of;
	 * without passwd_file it is still checked, then dropped */
	if (c->sender_login_map != NULL) {
		struct sender_map	*m;

		if ((m = sender_map_load(c->sender_login_map,
		    c->localpart_case_sensitive, err, arg)) == NULL) {
			passwd_unref(*pw);
			*pw = NULL;
			tls_ctx_free(*tls);
			*tls = NULL;
			return -1;
		}
		if (*pw != NULL)
			passwd_set_senders(*pw, m);
		else
			sender_map_free(m);
	}
	return 0;
}

void
worker_batv_since(struct config *c)
{
	char	why[512];
	bool	on = c->batv_ndomains > 0;

	if (batv_since_load(c->spool, on, time(NULL), &c->batv_since, why,
	    sizeof(why)) == -1) {
		/* unknown: bounces are taken as during the grace */
		log_event(LOG_LVL_WARNING, "batv", "msg=\"%s\"",
		    log_text(why, strlen(why), 300));
		return;
	}
	if (on)
		log_event(LOG_LVL_INFO, "batv", "state=on domains=%u "
		    "since=%lld grace_ends=%lld", c->batv_ndomains,
		    (long long)c->batv_since, (long long)c->batv_since +
		    (long long)(c->batv_grace_ms / 1000));
}

static void
reload_conf_err(void *arg, const char *file, unsigned line, const char *msg)
{
	struct reload	*r = arg;

	if (r->why[0] == '\0' && line > 0)
		snprintf(r->why, sizeof(r->why), "%s:%u: %s", file, line, msg);
	else if (r->why[0] == '\0')
		snprintf(r->why, sizeof(r->why), "%s: %s", file, msg);
	log_event(LOG_LVL_WARNING, "reload", "file=%s line=%u msg=\"%s\"",
	    log_esc(file, strlen(file), 200), line,
	    log_text(msg, strlen(msg), 200));
}

static void
reload_run(void *arg)
{
	struct reload	*r = arg;

	if ((r->conf = conf_load(r->file, reload_conf_err, r)) != NULL)
		r->dir = dir_open(r->conf, reload_conf_err, r);
	if (r->dir != NULL)
		r->secure = worker_secure_load(r->conf, &r->tls, &r->pw,
		    reload_conf_err, r) == 0;
	if (r->secure)
		worker_batv_since(r->conf);
}

static bool
worker_str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

static bool
worker_set_differs(const struct listen_set *a, const struct listen_set *b)
{
	size_t	i;

	if (a->n != b->n)
		return true;
	for (i = 0; i < a->n; i++)
		if (a->addr[i].sslen != b->addr[i].sslen ||
		    memcmp(&a->addr[i].ss, &b->addr[i].ss, a->addr[i].sslen))
			return true;
	return false;
}

/*
 * The keys a reload cannot apply, because what they set was built once at
 * start: the spool and its lock, the user dropped to, the loops, and the
 * delivery manager's client pool, resolver and report rates (qmgr_new),
 * the bounce-rate table's window (main.c), the relayhost logins
 * (outbound.c: read at start, they hold passwords).  hostname applies to
 * the greeting, EHLO and Received; outbound EHLO keeps the old one.
 */
static void
worker_restart_keys(const struct config *o, const struct config *n,
    char *out, size_t len)
{
	const struct {
		const char	*key;
		bool		 differs;
	} keys[] = {
		{ "spool", worker_str_differs(o->spool, n->spool) },
		{ "user", worker_str_differs(o->user, n->user) },
		{ "workers", o->workers != n->workers },
		{ "hostname", worker_str_differs(o->hostname, n->hostname) },
		{ "dns_server", worker_str_differs(o->dns_server.host,
		    n->dns_server.host) || o->dns_server.port !=
		    n->dns_server.port },
		{ "next_hop_concurrency", o->next_hop_concurrency !=
		    n->next_hop_concurrency },
		{ "smtp_connect_timeout", o->smtp_connect_timeout_ms !=
		    n->smtp_connect_timeout_ms },
		{ "smtp_timeout", o->smtp_timeout_ms != n->smtp_timeout_ms },
		{ "ndr_rate_per_sender", o->ndr_rate_per_sender !=
		    n->ndr_rate_per_sender },
		{ "ndr_rate_per_domain", o->ndr_rate_per_domain !=
		    n->ndr_rate_per_domain },
		{ "null_sender_rate", o->null_sender_rate.window_ms !=
		    n->null_sender_rate.window_ms },
		{ "relayhost_auth_file", worker_str_differs(
		    o->relayhost_auth_file, n->relayhost_auth_file) },
		{ "metrics_listen", worker_set_differs(&o->metrics_listen,
		    &n->metrics_listen) },
	};
	size_t	i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (keys[i].differs)
			worker_note_key(out, len, keys[i].key);
}

/* Keys a reload changed, as "key" or "key[domain]", comma-separated. */
struct reload_changes {
	char	list[1024];
};

static void
reload_note_change(void *arg, const char *key, const char *domain)
{
	struct reload_changes	*c = arg;
	char			 item[320];

	if (domain != NULL)
		snprintf(item, sizeof(item), "%s[%s]", key, domain);
	else
		snprintf(item, sizeof(item), "%s", key);
	worker_note_key(c->list, sizeof(c->list), item);
}

/* Is key (or key[domain]) one of the comma-separated restart keys? */
static bool
reload_needs_restart(const char *restart, const char *item)
{
	size_t		 k = strcspn(item, "[");
	const char	*p;

	for (p = restart; *p != '\0'; p += strcspn(p, ","), p += *p == ',')
		if (strncmp(p, item, k) == 0 && (p[k] == ',' || p[k] == '\0'))
			return true;
	return false;
}

/*
 * The answer to `mxgate reload`: what it did, the keys it applied and
 * those that need a restart, the users file's size before and after.
 */
static void
reload_answer(struct worker *w, struct reload *r, const char *result,
    const char *changed, const char *restart, size_t users_before)
{
	struct ctl_conn	*cn;
	char		 applied[1024] = "";
	const char	*p;
	char		 item[320];
	size_t		 n;

	if (w->reload_ctl == 0 || w->ctl == NULL)
		return;		/* none waits, or the socket is closed */
	cn = ctl_resume(w->ctl, w->reload_ctl);
	w->reload_ctl = 0;
	if (cn == NULL)
		return;				/* the client left */
	for (p = changed; *p != '\0'; p += n + (p[n] == ',')) {
		n = strcspn(p, ",");
		snprintf(item, sizeof(item), "%.*s", (int)n, p);
		if (!reload_needs_restart(restart, item))
			worker_note_key(applied, sizeof(applied), item);
	}
	ctl_printf(cn, "result %s", result);
	if (strcmp(result, "dropped") == 0) {
		ctl_error(cn, "the gateway is stopping; nothing was applied");
		ctl_finish(cn, -1);
		return;
	}
	if (strcmp(result, "kept_old") == 0) {
		ctl_printf(cn, "reason %s", r->why[0] ? r->why :
		    "see event=reload in the log");
		ctl_error(cn, "reload failed; the old configuration stays");
		ctl_log(cn, " result_reload=kept_old");
		ctl_finish(cn, -1);
		return;
	}
	ctl_printf(cn, "applied %s", applied[0] ? applied : "-");
	ctl_printf(cn, "restart_needed %s", restart[0] ? restart : "-");
	ctl_printf(cn, "users %zu (before %zu)", dir_count(w->dir),
	    users_before);
	ctl_printf(cn, "domains %zu", w->conf->ndomains);
	ctl_log(cn, " result_reload=%s", result);
	ctl_finish(cn, 0);
}

static void
reload_done(void *arg)
{
	struct reload	*r = arg;
	struct worker	*w = r->w;
	size_t		 users_before = w->dir ? dir_count(w->dir) : 0;

	w->reloading = false;
	if (w->stopping) {
		/* the new files would serve no one; what runs is being torn
		 * down (boot_conf may be released already) */
		log_event(LOG_LVL_INFO, "reload", "result=dropped "
		    "reason=stopping");
		reload_answer(w, r, "dropped", "", "", users_before);
		tls_ctx_free(r->tls);
		passwd_unref(r->pw);
		if (r->dir)
			dir_unref(r->dir);
		if (r->conf)
			conf_unref(r->conf);
		free(r->file);
		free(r);
		return;
	}
	if (r->conf == NULL || r->dir == NULL || !r->secure) {
		log_event(LOG_LVL_WARNING, "reload", "result=kept_old "
		    "reason=%s", r->conf == NULL ? "config" : r->dir == NULL ?
		    "directory" : "tls_or_passwd");
		reload_answer(w, r, "kept_old", "", "", users_before);
		if (r->dir)
			dir_unref(r->dir);
		if (r->conf)
			conf_unref(r->conf);
	} else {
		struct guard_conf gc;
		struct reload_changes ch;
		char		  restart[512] = "";

		ch.list[0] = '\0';
		conf_diff(w->conf, r->conf, reload_note_change, &ch);

		/* what runs was built from the first snapshot, not the last */
		if (w->boot_conf == NULL)
			w->boot_conf = conf_ref(w->conf);
		worker_restart_keys(w->boot_conf, r->conf, restart,
		    sizeof(restart));
		if (!w->stopping)
			worker_relisten(w, r->conf, restart,
			    sizeof(restart));
		worker_guard_conf(r->conf, &gc);
		guard_set_conf(w->guard, &gc);	/* exempt: the new snapshot */
		conf_unref(w->conf);
		w->conf = r->conf;
		if (w->dir)
			dir_unref(w->dir);
		w->dir = r->dir;
		tls_ctx_free(w->tls);		/* sessions hold their SSL */
		w->tls = r->tls;
		passwd_unref(w->passwd);	/* checks in flight hold it */
		w->passwd = r->pw;
		worker_post_snapshot(w);
		log_set_level(w->conf->log_level);
		if (restart[0] != '\0')
			log_event(LOG_LVL_WARNING, "reload", "result=partial "
			    "restart_needed=%s users=%zu domains=%zu", restart,
			    dir_count(w->dir), w->conf->ndomains);
		else
			log_event(LOG_LVL_INFO, "reload", "result=ok users=%zu "
			    "domains=%zu", dir_count(w->dir),
			    w->conf->ndomains);
		reload_answer(w, r, restart[0] ? "partial" : "ok", ch.list,
		    restart, users_before);
	}
	(void)sdnotify("READY=1\nSTATUS=serving");
	free(r->file);
	free(r);
}

static void
worker_reload(struct worker *w)
{
	struct reload	*r;

	if (w->reloading) {
		log_event(LOG_LVL_INFO, "reload", "result=busy");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->file = strdup(w->conf->file)) == NULL) {
		free(r);
		log_event(LOG_LVL_WARNING, "reload", "msg=\"out of memory\"");
		return;
	}
	r->w = w;
	w->reloading = true;
	(void)sdnotify("RELOADING=1\nSTATUS=reloading");
	if (job_submit(w->misc_jobs, reload_run, reload_done, r) == -1)
		panic("worker_reload: out of memory");
}

/* ---- control commands (ctl.h) ---- */

static int
worker_ctl_reload(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct worker	*w = arg;

	(void)argv;
	if (argc != 0) {
		ctl_error(cn, "usage: reload");
		return -1;
	}
	if (w->reloading) {
		ctl_error(cn, "a reload is already running");
		return -1;
	}
	worker_reload(w);
	if (!w->reloading)
		return -1;			/* out of memory: logged */
	w->reload_ctl = ctl_defer(cn);
	return CTL_DEFERRED;		/* reload_answer() ends it */
}

static int
worker_ctl_stop(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct worker	*w = arg;

	(void)argv;
	if (argc != 0) {
		ctl_error(cn, "usage: stop");
		return -1;
	}
	ctl_printf(cn, "stopping pid %ld, %zu session%s open",
	    (long)getpid(), worker_sessions_open(w),
	    worker_sessions_open(w) == 1 ? "" : "s");
	worker_stop(w);
	return 0;
}

/*
 * The RCPT decisions an administrator asks for first, from the counters
 * /metrics shows (mxgate_rcpt_total), grouped as a person reads them.
 */
static void
worker_ctl_rcpt_stats(struct ctl_conn *cn, const struct obs_totals *t)
{
	const uint64_t	*r = t->rcpt;

	ctl_printf(cn, "rcpt_accepted_total %llu", (unsigned long long)(
	    r[OBS_RCPT_ACCEPT_VALID] + r[OBS_RCPT_ACCEPT_RELAY]));
	ctl_printf(cn, "rcpt_discarded_total %llu", (unsigned long long)(
	    r[OBS_RCPT_DISCARD_UNKNOWN] + r[OBS_RCPT_DISCARD_HARVEST]));
	ctl_printf(cn, "rcpt_bounced_total %llu",
	    (unsigned long long)r[OBS_RCPT_BOUNCE_UNKNOWN]);
	ctl_printf(cn, "rcpt_rejected_unknown_total %llu",
	    (unsigned long long)r[OBS_RCPT_REJECT_UNKNOWN]);
	ctl_printf(cn, "rcpt_relay_denied_total %llu",
	    (unsigned long long)r[OBS_RCPT_REJECT_RELAY]);
	ctl_printf(cn, "rcpt_tempfail_total %llu",
	    (unsigned long long)r[OBS_RCPT_TEMPFAIL_DIRECTORY]);
	ctl_printf(cn, "rcpt_uniform_total %llu",
	    (unsigned long long)r[OBS_RCPT_UNIFORM_HARVEST]);
	ctl_printf(cn, "rcpt_tarpit_total %llu",
	    (unsigned long long)r[OBS_RCPT_TARPIT_HARVEST]);
	ctl_printf(cn, "rcpt_cutoff_total %llu",
	    (unsigned long long)r[OBS_RCPT_TEMPFAIL_HARVEST]);
	ctl_printf(cn, "rcpt_limit_total %llu", (unsigned long long)(
	    r[OBS_RCPT_TEMPFAIL_LIMIT] + r[OBS_RCPT_REJECT_NULL_SENDER] +
	    r[OBS_RCPT_TEMPFAIL_NULL_SENDER]));
	ctl_printf(cn, "rcpt_syntax_total %llu",
	    (unsigned long long)r[OBS_RCPT_REJECT_SYNTAX]);
	ctl_printf(cn, "rcpt_shadow_total %llu",
	    (unsigned long long)t->rcpt_shadow);
}

static int
worker_ctl_stats(void *arg, struct ctl_conn *cn, int argc, char **argv)
{
	struct worker		*w = arg;
	struct guard_stats	 st;
	struct obs_totals	 t;
	uint64_t		 syncs, synced, sync_msgs, sync_us;

	(void)argc;
	(void)argv;

	memset(&t, 0, sizeof(t));
	worker_obs_totals(w, &t);	/* the counters /metrics shows */
	worker_ctl_rcpt_stats(cn, &t);
	ctl_printf(cn, "workers %u", w->grp->n);
	ctl_printf(cn, "sessions_open %zu", worker_sessions_open(w));
	ctl_printf(cn, "sessions_total %llu",
	    (unsigned long long)t.sessions_started);
	ctl_printf(cn, "messages_queued_total %llu",
	    (unsigned long long)t.messages_accepted);
	ctl_printf(cn, "directory_entries %zu", w->dir ? dir_count(w->dir) :
	    (size_t)0);
	queue_sync_stats(w->queue, &syncs, &synced, &sync_msgs, &sync_us);
	ctl_printf(cn, "spool_syncs_total %llu", (unsigned long long)syncs);
	ctl_printf(cn, "spool_sync_calls_total %llu",
	    (unsigned long long)synced);
	ctl_printf(cn, "spool_synced_messages_total %llu",
	    (unsigned long long)sync_msgs);
	ctl_printf(cn, "spool_sync_microseconds_total %llu",
	    (unsigned long long)sync_us);
	ctl_printf(cn, "spool_files_reused_total %llu",
	    (unsigned long long)queue_spare_reused(w->queue));
	guard_get_stats(w->guard, &st);
	ctl_printf(cn, "harvest_entries %zu", st.entries);
	ctl_printf(cn, "harvest_marked %zu", st.marked);
	ctl_printf(cn, "harvest_tarpitted %zu", st.tarpitted);
	ctl_printf(cn, "harvest_hot_domains %zu", st.hot_domains);
	ctl_printf(cn, "log_lines_dropped_total %lu", log_dropped_count());
	return 0;
}

struct worker_harvest_out {
	struct ctl_conn	*cn;
	uint64_t	 now;
	unsigned	 n;
	struct fleet	*fleet;		/* NULL: no scope= */
	char		(*seen)[FLEET_SRC_MAX];	/* listed sources */
	size_t		 nseen, capseen;
};

/* "192.0.2.7" -> "192.0.2.7/32", as the fleet names sources. */
static void
worker_harvest_src(const char *net, char *src, size_t len)
{
	int	rc;

	rc = snprintf(src, len, strchr(net, '/') != NULL ? "%s" : "%s/32",
	    net);
	if (rc < 0 || (size_t)rc >= len)
		src[0] = '\0';
}

static void
worker_harvest_seen(struct worker_harvest_out *h, const char *src)
{
	void	*v;
	size_t	 cap;

	if (h->nseen == h->capseen) {
		cap = h->capseen == 0 ? 64 : h->capseen * 2;
		if ((v = reallocarray(h->seen, cap, sizeof(*h->seen))) ==
		    NULL)
			return;
		h->seen = v;
		h->capseen = cap;
	}
	snprintf(h->seen[h->nseen++], FLEET_SRC_MAX, "%s", src);
}

/*
 * With shared_state, scope=local: the mark (or history) is this
 * gateway's own and Redis has no mark for it (yet); scope=fleet by=GW:
 * Redis holds a mark, made by gateway GW.
 */
static void
worker_harvest_line(void *arg, const char *net, const char *state,
    unsigned distinct_unknown, unsigned valid, uint64_t expires_ms)
{
	struct worker_harvest_out	*h = arg;
	char				 src[FLEET_SRC_MAX], scope[96] = "";
	struct fleet_view		 v;

	if (h->fleet != NULL) {
		worker_harvest_src(net, src, sizeof(src));
		worker_harvest_seen(h, src);
		if (fleet_view(h->fleet, src, &v) && v.mark_left_ms > 0)
			snprintf(scope, sizeof(scope), " scope=fleet by=%s",
			    v.marker);
		else
			snprintf(scope, sizeof(scope), " scope=local");
	}
	ctl_printf(h->cn, "%s %s unknown=%u valid=%u expires_in=%llus%s", net,
	    state, distinct_unknown, valid, (unsigned long long)
	    (expires_ms > h->now ? (expires_ms - h->now + 999) / 1000 : 0),
	    scope);
	h->n++;
}

/* Marks this gateway knows only from the fleet. */
static void
worker_harvest_fleet_line(void *arg, const char *src,
    const struct fleet_view *v)
{
	struct worker_harvest_out	*h = arg;
	size_t				 i, len = strlen(src);

	for (i = 0; i < h->nseen; i++)
		if (strcmp(h->seen[i], src) == 0)
			return;
	if (len > 3 && strcmp(src + len - 3, "/32") == 0)
		len -= 3;		/* an IPv4 host, as guard_list says it */
	ctl_printf(h->cn, "%.*s uniform unknown=%u valid=%u expires_in=%llus "
	    "scope=fleet by=%s", (int)len, src, v->distinct, v->valid,
	    (unsigned long long)((v->mark_left_ms + 999) / 1000), v->marker);
	h->n++;
}

static int
worker_ctl_harvest_list(void *arg, struct ctl_conn *cn, int argc,
    char **argv)
{
	struct worker			*w = arg;
	struct worker_harvest_out	 h = { cn, smtp_now_ms(), 0, w->fleet,
					    NULL, 0, 0 };

	(void)argv;
	if (argc != 0) {
		ctl_error(cn, "usage: harvest list");
		return -1;
	}
	guard_list(w->guard, h.now, worker_harvest_line, &h);
	if (w->fleet != NULL)
		(void)fleet_walk_marks(w->fleet, worker_harvest_fleet_line, &h);
	free(h.seen);
	ctl_printf(cn, "%u entr%s", h.n, h.n == 1 ? "y" : "ies");
	return 0;
}

struct worker_unmark_out {
	struct ctl_conn	*cn;
	unsigned	 uniform, tarpit, counted;
};

static void
worker_unmark_line(void *arg, const char *net, const char *state,
    unsigned distinct_unknown, unsigned valid, uint64_t expires_ms)
{
	struct worker_unmark_out	*u = arg;

	(void)expires_ms;
	ctl_printf(u->cn, "%s was=%s unknown=%u valid=%u", net, state,
	    distinct_unknown, valid);
	if (strcmp(state, "uniform") == 0)
		u->uniform++;
	else if (strcmp(state, "tarpit") == 0)
		u->tarpit++;
	else
		u->counted++;
}

/* Every entry removed is told, and counted, whatever its state. */
static int
worker_ctl_harvest_unmark(void *arg, struct ctl_conn *cn, int argc,
    char **argv)
{
	struct worker			*w = arg;
	struct worker_unmark_out	 u = { cn, 0, 0, 0 };
	int				 n;

	if (argc != 1) {
		ctl_error(cn, "usage: harvest unmark ADDR|CIDR");
		return -1;
	}
	if ((n = guard_unmark(w->guard, argv[0], smtp_now_ms(),
	    worker_unmark_line, &u)) < 0) {
		ctl_error(cn, "not an address or network: %s", argv[0]);
		return -1;
	}
	ctl_printf(cn, "unmarked %d entr%s (%u uniform, %u tarpit, %u "
	    "counted)", n, n == 1 ? "y" : "ies", u.uniform, u.tarpit,
	    u.counted);
	return 0;
}

void
worker_ctl_register(struct worker *w, struct ctl *ctl)
{
	w->ctl = ctl;
	if (ctl_register(ctl, "reload", NULL, worker_ctl_reload, w,
	    "reload the config and the users file (as SIGHUP); answers "
	    "what was applied and what needs a restart") == -1 ||
	    ctl_register(ctl, "stop", NULL, worker_ctl_stop, w,
	    "stop the gateway (as SIGTERM)") == -1 ||
	    ctl_register(ctl, "harvest", "list", worker_ctl_harvest_list, w,
	    "clients in uniform mode or tarpitted") == -1 ||
	    ctl_register(ctl, "harvest", "unmark", worker_ctl_harvest_unmark,
	    w, "ADDR|CIDR: forget what the guard holds against it") == -1 ||
	    ctl_register(ctl, "stats", NULL, worker_ctl_stats, w, NULL) == -1)
		panic("worker_ctl_register: command table full");
}

static void
worker_stop_check(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	(void)fd;
	(void)what;
	if (w->nsessions == 0 || ++w->stop_ticks * 50 >= WORKER_STOP_GRACE_MS)
		event_base_loopbreak(w->base);
}

static void
worker_stop(struct worker *w)
{
	struct smtp_session	*s, *next;
	struct timeval		 tv = { 0, 50000 };
	size_t			 i;

	if (w->stopping)
		return;
	w->stopping = true;
	if (w->idx == 0)
		(void)sdnotify("STOPPING=1");
	log_event(LOG_LVL_INFO, "stopping", "sessions=%zu loop=%u",
	    (size_t)w->nsessions, w->idx);
	for (i = 0; i < w->nlisteners; i++)
		worker_listener_free(w->listeners[i]);
	w->nlisteners = 0;
	for (i = 1; w->idx == 0 && i < w->grp->n; i++) {
		struct worker	*o = w->grp->w[i];

		pthread_mutex_lock(&o->mbox_mu);
		o->mbox_stop = true;
		pthread_mutex_unlock(&o->mbox_mu);
		event_active(o->wake_ev, EV_READ, 0);
	}
	for (i = 0; i < WORKER_SESSION_BUCKETS; i++)
		for (s = w->sessions[i]; s != NULL; s = next) {
			next = s->hnext;
			smtp_session_shutdown(s);
		}
	w->stop_ev = event_new(w->base, -1, EV_PERSIST, worker_stop_check, w);
	if (w->stop_ev == NULL || event_add(w->stop_ev, &tv) == -1)
		event_base_loopbreak(w->base);
}

static void
worker_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	if (sig == SIGHUP) {
		(void)log_reopen();	/* logrotate: first, so the reload's
					 * lines land in the new file */
		worker_reload(arg);
	} else
		worker_stop(arg);
}

#define WORKER_NSIGS	3
static const int	worker_sigs[WORKER_NSIGS] = { SIGTERM, SIGINT, SIGHUP };

static void
worker_tick(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;

	(void)fd;
	(void)what;
	guard_tick(w->guard, smtp_now_ms());
	worker_obs_tick(w, smtp_now_ms());
}

int
worker_signals(struct worker *w)
{
	struct timeval	sec = { 1, 0 };
	size_t		i;

	w->tick_ev = event_new(w->base, -1, EV_PERSIST, worker_tick, w);
	if (w->tick_ev == NULL || event_add(w->tick_ev, &sec) == -1)
		return -1;
	for (i = 0; i < WORKER_NSIGS; i++) {
		w->sig_ev[i] = evsignal_new(w->base, worker_sigs[i],
		    worker_signal, w);
		if (w->sig_ev[i] == NULL || event_add(w->sig_ev[i], NULL) == -1)
			return -1;
	}
	return 0;
}

int
worker_run(struct worker *w)
{
	size_t	i;

	dir_loop_enter(w->base);
	event_base_dispatch(w->base);
	dir_loop_leave(w->base);
	for (i = 0; i < WORKER_NSIGS; i++)
		event_free(w->sig_ev[i]);
	if (w->stop_ev)
		event_free(w->stop_ev);
	event_free(w->tick_ev);
	if (w->boot_conf != NULL)
		conf_unref(w->boot_conf);
	for (i = 0; i < w->nlisteners; i++)
		worker_listener_free(w->listeners[i]);
	free(w->listeners);
	return 0;
}

size_t
worker_sessions_open(const struct worker *w)
{
	return atomic_load(&w->grp->nsessions);
}

static void *
worker_thread(void *arg)
{
	struct worker	*w = arg;

	dir_loop_enter(w->base);
	event_base_dispatch(w->base);
	dir_loop_leave(w->base);
	if (w->stop_ev)
		event_free(w->stop_ev);
	/* answers still due to this loop's sessions come back here */
	job_pool_free(w->auth_jobs);
	job_pool_free(w->commit_jobs);
	return NULL;
}

int
worker_spawn(struct worker *w0, unsigned idx, unsigned commit_threads,
    unsigned auth_threads)
{
	struct worker	*w;

	if (idx == 0 || idx >= WORKER_MAX || (w = calloc(1, sizeof(*w))) ==
	    NULL)
		return -1;
	w->idx = idx;
	w->grp = w0->grp;
	pthread_mutex_init(&w->mbox_mu, NULL);
	w->conf = conf_ref(w0->conf);
	w->dir = w0->dir ? dir_ref(w0->dir) : NULL;
	w->tls = tls_ctx_ref(w0->tls);
	w->passwd = w0->passwd ? passwd_ref(w0->passwd) : NULL;
	w->queue = w0->queue;
	w->qmgr = w0->qmgr;
	w->null_rate = w0->null_rate;
	w->guard = w0->guard;
	w->fleet = w0->fleet;
	w->climit = w0->climit;
	if ((w->base = event_base_new()) == NULL ||
	    (w->wake_ev = event_new(w->base, -1, EV_PERSIST, worker_wake,
	    w)) == NULL || event_add(w->wake_ev, NULL) == -1 ||
	    (w->commit_jobs = job_pool_new(w->base, commit_threads)) == NULL ||
	    (w->auth_jobs = job_pool_new(w->base, auth_threads)) == NULL)
		goto fail;
	/* wake_ev stays pending (no fd, no timeout): it keeps the loop
	 * running until worker_stop breaks it, and fires on event_active */
	if (pthread_create(&w->thread, NULL, worker_thread, w) != 0)
		goto fail;
	w0->grp->w[w0->grp->n++] = w;
	return 0;
fail:
	job_pool_free(w->auth_jobs);
	job_pool_free(w->commit_jobs);
	if (w->wake_ev)
		event_free(w->wake_ev);
	if (w->base)
		event_base_free(w->base);
	worker_snap_drop(w->conf, w->dir, w->tls, w->passwd);
	pthread_mutex_destroy(&w->mbox_mu);
	free(w);
	return -1;
}

void
worker_join_all(struct worker *w0)
{
	struct worker	*w;
	unsigned	 i;

	for (i = 1; i < w0->grp->n; i++) {
		w = w0->grp->w[i];
		pthread_join(w->thread, NULL);
		/* closes what is left in the inbox, takes any snapshot */
		worker_wake(-1, 0, w);
		event_free(w->wake_ev);
		dnsbl_cache_free(w->dnsbl);	/* cancels on w->dns first */
		dns_resolver_free(w->dns);
		event_base_free(w->base);
		worker_snap_drop(w->conf, w->dir, w->tls, w->passwd);
		pthread_mutex_destroy(&w->mbox_mu);
		free(w);
	}
	w0->grp->n = 1;
}
