/*
 * worker.c - one event loop: listeners, signals, the session table,
 * reloads and an orderly stop.
 * Owns: listening sockets, the current config and directory pointers
 * (swapped whole on SIGHUP; sessions keep the snapshot they started with).
 * Never: speaks SMTP or touches queue files.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "../conf/conf.h"
#include "../deliver/qmgr.h"
#include "../dir/dir.h"
#include "../lib/job.h"
#include "../lib/log.h"
#include "../smtp/smtp_session.h"
#include "worker.h"

#define WORKER_BACKLOG		1024
#define WORKER_STOP_GRACE_MS	5000	/* sessions get this long to end */

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
}

void
worker_session_del(struct worker *w, struct smtp_session *s)
{
	struct smtp_session	**pp = &w->sessions[worker_bucket(s->id)];

	for (; *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			w->nsessions--;
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

static void
worker_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int socklen, void *arg)
{
	struct worker	*w = arg;

	(void)l;
	if (w->stopping) {
		evutil_closesocket(fd);
		return;
	}
	smtp_session_accept(w, fd, sa, socklen);
}

static int
worker_bind(const struct listen_addr *la)
{
	int	fd, on = 1;

	fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (la->ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(fd, (const struct sockaddr *)&la->ss, la->sslen) == -1 ||
	    listen(fd, WORKER_BACKLOG) == -1) {
		int	e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
worker_listen(struct worker *w)
{
	const struct config	*c = w->conf;
	size_t			 i;
	int			 fd;

	w->listeners = calloc(c->nlisten, sizeof(*w->listeners));
	if (w->listeners == NULL)
		return -1;
	for (i = 0; i < c->nlisten; i++) {
		if ((fd = worker_bind(&c->listen[i])) == -1) {
			log_event(LOG_LVL_ERROR, "listen", "addr=%s msg=\"%m\"",
			    c->listen[i].text);
			return -1;
		}
		w->listeners[i] = evconnlistener_new(w->base, worker_accept, w,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
		if (w->listeners[i] == NULL) {
			close(fd);
			return -1;
		}
		w->nlisteners++;
		log_event(LOG_LVL_INFO, "listening", "addr=%s",
		    c->listen[i].text);
	}
	return 0;
}

/* A reload runs off the loop (loading a large users file takes time). */
struct reload {
	struct worker	*w;
	char		*file;
	struct config	*conf;
	struct dir	*dir;
};

static void
reload_conf_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)arg;
	log_event(LOG_LVL_WARNING, "reload", "file=%s line=%u msg=\"%s\"",
	    log_esc(file, strlen(file), 200), line,
	    log_text(msg, strlen(msg), 200));
}

static void
reload_run(void *arg)
{
	struct reload	*r = arg;

	if ((r->conf = conf_load(r->file, reload_conf_err, NULL)) != NULL)
		r->dir = dir_open(r->conf, reload_conf_err, NULL);
}

static void
reload_done(void *arg)
{
	struct reload	*r = arg;
	struct worker	*w = r->w;

	w->reloading = false;
	if (r->conf == NULL || r->dir == NULL) {
		log_event(LOG_LVL_WARNING, "reload", "result=kept_old "
		    "reason=%s", r->conf == NULL ? "config" : "directory");
		if (r->conf)
			conf_unref(r->conf);
	} else {
		conf_unref(w->conf);
		w->conf = r->conf;
		if (w->dir)
			dir_unref(w->dir);
		w->dir = r->dir;
		log_set_level(w->conf->log_level);
		log_event(LOG_LVL_INFO, "reload", "result=ok users=%zu "
		    "domains=%zu", dir_count(w->dir), w->conf->ndomains);
	}
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
	if (job_submit(w->misc_jobs, reload_run, reload_done, r) == -1)
		panic("worker_reload: out of memory");
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
	log_event(LOG_LVL_INFO, "stopping", "sessions=%zu", w->nsessions);
	for (i = 0; i < w->nlisteners; i++)
		evconnlistener_free(w->listeners[i]);
	w->nlisteners = 0;
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
	if (sig == SIGHUP)
		worker_reload(arg);
	else
		worker_stop(arg);
}

int
worker_run(struct worker *w)
{
	static const int	sigs[] = { SIGTERM, SIGINT, SIGHUP };
	size_t			i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		w->sig_ev[i] = evsignal_new(w->base, sigs[i], worker_signal, w);
		if (w->sig_ev[i] == NULL || event_add(w->sig_ev[i], NULL) == -1)
			return -1;
	}
	event_base_dispatch(w->base);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_free(w->sig_ev[i]);
	if (w->stop_ev)
		event_free(w->stop_ev);
	for (i = 0; i < w->nlisteners; i++)
		evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	return 0;
}
