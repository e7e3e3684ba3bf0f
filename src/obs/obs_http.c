/*
 * obs_http.c - the metrics listener (see obs_http.h).
 * The connection cap: evhttp (2.1) has none of its own.  Each
 * connection's bufferevent is made here (evhttp_set_bevcb), which counts
 * it, and the connection gets a close callback as soon as evhttp has set
 * it up; at OBS_HTTP_CONN_MAX the listeners stop accepting (the kernel's
 * backlog holds the rest) until one closes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "../lib/log.h"
#include "../lib/sock_listen.h"
#include "obs_http.h"

#define OBS_HTTP_BACKLOG	64
#define OBS_HTTP_BOUND_MAX	16	/* addresses in metrics_listen */
#define OBS_HTTP_FRESH_MAX	(2 * OBS_HTTP_CONN_MAX)	/* accepted in one
					 * loop pass, at most, before adopted */

struct obs_http {
	struct event_base		*base;
	struct evhttp			*http;
	struct obs_http_routes		 routes;
	struct evhttp_bound_socket	*bound[OBS_HTTP_BOUND_MAX];
	size_t				 nbound;
	unsigned			 nconn;
	bool				 paused;
	bool				 closing;	/* freed with the
							 * last connection */
	struct event			*adopt_ev;	/* obs_http_adopt */
	time_t				 full_logged;	/* last state=full */
	struct bufferevent		*fresh[OBS_HTTP_FRESH_MAX];
	size_t				 nfresh;	/* not adopted yet */
};

static void
obs_http_pause(struct obs_http *h, bool pause)
{
	size_t	i;

	if (pause == h->paused)
		return;
	h->paused = pause;
	for (i = 0; i < h->nbound; i++) {
		struct evconnlistener	*l =
		    evhttp_bound_socket_get_listener(h->bound[i]);

		if (pause)
			evconnlistener_disable(l);
		else
			evconnlistener_enable(l);
	}
	/* once a minute at most: a flood would flip it at every close */
	if (pause && time(NULL) >= h->full_logged + 60) {
		h->full_logged = time(NULL);
		log_event(LOG_LVL_WARNING, "metrics_http", "state=full "
		    "connections=%u max=%u msg=\"new connections wait\"",
		    h->nconn, OBS_HTTP_CONN_MAX);
	}
}

/* evhttp let a connection go (its close callback). */
static void
obs_http_conn_gone(struct evhttp_connection *evcon, void *arg)
{
	struct obs_http	*h = arg;

	(void)evcon;
	if (h->nconn > 0)
		h->nconn--;
	if (h->closing) {
		if (h->nconn == 0)
			free(h);
		return;
	}
	if (h->nconn < OBS_HTTP_CONN_MAX)
		obs_http_pause(h, false);
}

/*
 * Right after evhttp set a new connection up (in the same loop pass as
 * its accept, before any of its I/O can run): its bufferevent's
 * callback argument is the connection, which gets our close callback.
 * We hold a reference on each bufferevent until then, so one that evhttp
 * already let go (it could not allocate the rest of the connection) is
 * still there to look at: freed, it has no callbacks, and its slot is
 * given back here.
 */
static void
obs_http_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct obs_http		*h = arg;
	struct bufferevent	*bev;
	void			*evcon;
	size_t			 i, n = h->nfresh;
	bool			 closing = h->closing;

	(void)fd;
	(void)what;
	h->nfresh = 0;
	for (i = 0; i < n; i++) {
		bev = h->fresh[i];
		evcon = NULL;
		bufferevent_getcb(bev, NULL, NULL, NULL, &evcon);
		if (evcon != NULL)
			evhttp_connection_set_closecb(evcon, obs_http_conn_gone,
			    h);
		else if (h->nconn > 0)
			h->nconn--;
		bufferevent_decref(bev);
	}
	if (!closing && h->nconn < OBS_HTTP_CONN_MAX)
		obs_http_pause(h, false);
}

/* evhttp's new connection: counted here, adopted just after. */
static struct bufferevent *
obs_http_bev(struct event_base *base, void *arg)
{
	struct obs_http		*h = arg;
	struct bufferevent	*bev;

	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;		/* evhttp tries on its own, uncounted */
	if (h->nfresh == OBS_HTTP_FRESH_MAX)
		return bev;		/* accepts in one burst past the cap */
	bufferevent_incref(bev);	/* until obs_http_adopt */
	h->fresh[h->nfresh++] = bev;
	event_active(h->adopt_ev, EV_READ, 0);
	if (++h->nconn >= OBS_HTTP_CONN_MAX)
		obs_http_pause(h, true);
	return bev;
}

static void
obs_http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, struct evbuffer *body)
{
	struct evkeyvalq	*hd = evhttp_request_get_output_headers(req);

	evhttp_add_header(hd, "Content-Type", type);
	evhttp_add_header(hd, "Cache-Control", "no-store");
	evhttp_add_header(hd, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(req, code, reason, body);
}

static void
obs_http_error(struct evhttp_request *req, int code, const char *reason)
{
	struct evbuffer	*b = evbuffer_new();

	if (b != NULL)
		evbuffer_add_printf(b, "%d %s\n", code, reason);
	obs_http_reply(req, code, reason, "text/plain; charset=utf-8", b);
	if (b != NULL)
		evbuffer_free(b);
}

/* The status page may hold inline style and a data: image, nothing
 * else: no script, no request anywhere (it is read-only). */
static void
obs_http_page_headers(struct evhttp_request *req)
{
	struct evkeyvalq	*hd = evhttp_request_get_output_headers(req);

	evhttp_add_header(hd, "Content-Security-Policy", "default-src "
	    "'none'; style-src 'unsafe-inline'; img-src data:; "
	    "form-action 'none'; frame-ancestors 'none'");
	evhttp_add_header(hd, "X-Frame-Options", "DENY");
	evhttp_add_header(hd, "Referrer-Policy", "no-referrer");
}

static void
obs_http_serve(struct evhttp_request *req, obs_page_fn *fn, void *arg,
    const char *type)
{
	struct evbuffer	*b;
	struct buf	 out;

	buf_init(&out, OBS_HTTP_OUT_MAX);
	if (fn(arg, &out) == -1 || (b = evbuffer_new()) == NULL) {
		buf_free(&out);
		log_event(LOG_LVL_WARNING, "metrics_http", "status=500 "
		    "msg=\"page too large or out of memory\"");
		obs_http_error(req, 500, "Internal Server Error");
		return;
	}
	if (evbuffer_add(b, out.data ? (const char *)out.data : "",
	    out.len) == -1) {
		evbuffer_free(b);
		buf_free(&out);
		obs_http_error(req, 500, "Internal Server Error");
		return;
	}
	buf_free(&out);
	obs_http_reply(req, 200, "OK", type, b);
	evbuffer_free(b);
}

static void
obs_http_request(struct evhttp_request *req, void *arg)
{
	struct obs_http		*h = arg;
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type	 m = evhttp_request_get_command(req);
	bool			 metrics, status;

	if (path == NULL) {
		obs_http_error(req, 400, "Bad Request");
		return;
	}
	metrics = strcmp(path, "/metrics") == 0;
	status = strcmp(path, "/") == 0;
	if (!metrics && !status) {
		obs_http_error(req, 404, "Not Found");
		return;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		obs_http_error(req, 405, "Method Not Allowed");
		return;
	}
	if (metrics)
		obs_http_serve(req, h->routes.metrics, h->routes.arg,
		    "text/plain; version=0.0.4; charset=utf-8");
	else {
		obs_http_page_headers(req);
		obs_http_serve(req, h->routes.status, h->routes.arg,
		    "text/html; charset=utf-8");
	}
}

static int
obs_http_bind(const struct listen_addr *la)
{
	return sock_listen((const struct sockaddr *)&la->ss, la->sslen,
	    OBS_HTTP_BACKLOG);
}

struct obs_http *
obs_http_open(struct event_base *base, const struct listen_set *ls,
    const struct obs_http_routes *routes, char *err, size_t errlen)
{
	struct obs_http	*h;
	size_t		 i;
	int		 fd;

	if (ls->n > OBS_HTTP_BOUND_MAX) {
		snprintf(err, errlen, "metrics_listen: more than %d addresses",
		    OBS_HTTP_BOUND_MAX);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->http = evhttp_new(base)) == NULL) {
		free(h);
		snprintf(err, errlen, "metrics_listen: out of memory");
		return NULL;
	}
	h->base = base;
	h->routes = *routes;
	if ((h->adopt_ev = event_new(base, -1, 0, obs_http_adopt, h)) ==
	    NULL) {
		evhttp_free(h->http);
		free(h);
		snprintf(err, errlen, "metrics_listen: out of memory");
		return NULL;
	}
	evhttp_set_timeout(h->http, OBS_HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(h->http, OBS_HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(h->http, OBS_HTTP_BODY_MAX);
	/* every method reaches obs_http_request, which answers 405 */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_bevcb(h->http, obs_http_bev, h);
	evhttp_set_gencb(h->http, obs_http_request, h);
	for (i = 0; i < ls->n; i++) {
		if ((fd = obs_http_bind(&ls->addr[i])) == -1 ||
		    (h->bound[h->nbound] = evhttp_accept_socket_with_handle(
		    h->http, fd)) == NULL) {
			snprintf(err, errlen, "metrics_listen %s: %s",
			    ls->addr[i].text, fd == -1 ? strerror(errno) :
			    "cannot listen");
			if (fd != -1)
				close(fd);
			obs_http_close(h);
			return NULL;
		}
		h->nbound++;
		log_event(LOG_LVL_INFO, "listening", "addr=%s "
		    "listener=metrics", ls->addr[i].text);
	}
	return h;
}

unsigned
obs_http_connections(const struct obs_http *h)
{
	return h->nconn;
}

void
obs_http_close(struct obs_http *h)
{
	if (h == NULL)
		return;
	h->closing = true;
	obs_http_adopt(-1, 0, h);	/* none is left without its callback */
	event_free(h->adopt_ev);
	if (h->nconn == 0) {
		evhttp_free(h->http);
		free(h);
		return;
	}
	/* It frees the connections too, calling each one's close callback
	 * as it goes: the last one frees h. */
	evhttp_free(h->http);
}
