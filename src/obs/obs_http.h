/*
 * obs_http.h - the metrics listener (metrics_listen): GET /metrics (the
 * Prometheus text format) and GET / (the status page), with libevent's
 * evhttp on one event loop.  Anything else: 404, or 405 for a method
 * other than GET and HEAD.
 * Owns: the listening sockets, the connection cap, timeouts and size caps.
 * Never: builds a page itself (the routes' callbacks do, on the same
 * loop); reads a request body; serves files.
 * Untrusted: every byte of a request (evhttp parses it within the caps
 * below; only the parsed path is compared, whole, with two strings).
 * Meant for a management address: it has no authentication of its own
 * (README: behind a reverse proxy with authentication).
 */
#ifndef MXGATE_OBS_HTTP_H
#define MXGATE_OBS_HTTP_H

#include <stddef.h>

#include "../conf/conf.h"
#include "../lib/buf.h"

#define OBS_HTTP_CONN_MAX	32		/* at once; then the listener
						 * pauses until one closes */
#define OBS_HTTP_TIMEOUT_S	10		/* read and write, each */
#define OBS_HTTP_HEADERS_MAX	8192		/* request line + headers */
#define OBS_HTTP_BODY_MAX	1024		/* GET has none */
#define OBS_HTTP_OUT_MAX	(8u << 20)	/* one page, at most */

struct event_base;
struct obs_http;

/* Fill out with the page; 0, or -1 (answered 500). */
typedef int	obs_page_fn(void *arg, struct buf *out);

struct obs_http_routes {
	obs_page_fn	*metrics;	/* GET /metrics */
	obs_page_fn	*status;	/* GET / */
	void		*arg;
};

/*
 * Listen on every address of ls (bound now: call before dropping
 * privileges).  NULL with err filled if one cannot be bound.
 */
struct obs_http	*obs_http_open(struct event_base *, const struct listen_set *,
		    const struct obs_http_routes *, char *err, size_t errlen);
void		 obs_http_close(struct obs_http *);
/* Connections open now (tests, the status page). */
unsigned	 obs_http_connections(const struct obs_http *);

#endif
