/*
 * obs_status.h - the status page (GET / on metrics_listen): one small
 * self-contained HTML document, its chart an inline SVG; no script, no
 * form, no external resource; every text that is not a literal of ours
 * is escaped.  Read-only: it shows what the view holds.
 * Owns: the page's layout.  Never: gathers the numbers (the collector
 * fills struct obs_status_view, net/worker_obs.c).
 */
#ifndef MXGATE_OBS_STATUS_H
#define MXGATE_OBS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "obs.h"

struct obs_status_view {
	const char	*hostname;		/* escaped on output */
	const char	*version;
	uint64_t	 uptime_s;
	unsigned	 workers;
	uint64_t	 sessions_open;
	uint64_t	 sessions_started;
	uint64_t	 tarpitted;
	uint64_t	 messages_accepted;
	uint64_t	 marked_hosts, marked_nets, hot_domains;
	uint64_t	 queue_active, queue_deferred;
	bool		 queue_has_oldest;
	uint64_t	 queue_oldest_s;
	const char	*dir_backend;
	bool		 dir_up;
	uint64_t	 dir_entries;
	bool		 shared_configured;	/* no shared state yet: false */
	uint64_t	 rcpt_total[OBS_RCPT_MAX];	/* since start */
	/* the last hour, per minute, oldest first (obs_ring_minutes) */
	size_t		 nrows;
	uint64_t	 rows[OBS_RING_MINUTES][OBS_RCPT_MAX];
};

/* The page into out; 0, or -1 when out is full. */
int	obs_status_page(struct buf *out, const struct obs_status_view *);
/* Text escaped for HTML element content and attribute values. */
int	obs_html_escape(struct buf *out, const char *s);

#endif
