/*
 * obs_status.c - the status page (see obs_status.h).
 * Never: a <script>, a <form>, a link or an image from elsewhere; text
 * that is not ours unescaped (obs_html_escape).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "obs_status.h"

#define ST_CHART_W	720	/* the chart's drawing area, px */
#define ST_CHART_H	180
#define ST_CHART_X0	48	/* room for the y labels */
#define ST_CHART_Y0	12

/* One colour per decision/reason pair: greens accept, reds reject,
 * ambers tempfail, greys discard, purple bounce, blues the guard. */
static const char *const st_colour[OBS_RCPT_MAX] = {
	[OBS_RCPT_ACCEPT_VALID] = "#2e7d32",
	[OBS_RCPT_ACCEPT_RELAY] = "#81c784",
	[OBS_RCPT_REJECT_UNKNOWN] = "#c62828",
	[OBS_RCPT_REJECT_RELAY] = "#ef5350",
	[OBS_RCPT_REJECT_SYNTAX] = "#f48fb1",
	[OBS_RCPT_REJECT_NULL_SENDER] = "#ad1457",
	[OBS_RCPT_TEMPFAIL_DIRECTORY] = "#ef6c00",
	[OBS_RCPT_TEMPFAIL_LIMIT] = "#ffb74d",
	[OBS_RCPT_TEMPFAIL_NULL_SENDER] = "#ffe082",
	[OBS_RCPT_TEMPFAIL_HARVEST] = "#8d6e63",
	[OBS_RCPT_DISCARD_UNKNOWN] = "#757575",
	[OBS_RCPT_DISCARD_HARVEST] = "#bdbdbd",
	[OBS_RCPT_BOUNCE_UNKNOWN] = "#7b1fa2",
	[OBS_RCPT_UNIFORM_HARVEST] = "#1565c0",
	[OBS_RCPT_TARPIT_HARVEST] = "#64b5f6",
	[OBS_RCPT_REJECT_BATV] = "#6a1b9a",
};

static const char st_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212121;"
    "background:#fafafa}"
    "h1{font-size:20px;margin:0 0 4px}"
    "h2{font-size:16px;margin:24px 0 8px}"
    ".sub{color:#616161;margin:0 0 16px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}"
    ".card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;"
    "padding:10px 14px;min-width:150px}"
    ".card .k{color:#616161;font-size:12px;text-transform:uppercase;"
    "letter-spacing:.04em}"
    ".card .v{font-size:22px;font-weight:600}"
    ".card .d{color:#616161;font-size:12px}"
    ".ok{color:#2e7d32}.bad{color:#c62828}.off{color:#757575}"
    "table{border-collapse:collapse;background:#fff}"
    "td,th{border:1px solid #e0e0e0;padding:3px 10px;text-align:left}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".sw{display:inline-block;width:10px;height:10px;margin-right:6px;"
    "border-radius:2px}"
    "svg{background:#fff;border:1px solid #e0e0e0;border-radius:6px;"
    "display:block;margin-bottom:12px}"
    ".note{color:#616161;font-size:12px;margin:4px 0 8px}";

int
obs_html_escape(struct buf *out, const char *s)
{
	const char	*e;

	for (; s != NULL && *s != '\0'; s++) {
		e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ?
		    "&gt;" : *s == '"' ? "&quot;" : *s == '\'' ? "&#39;" : NULL;
		if (e != NULL ? buf_add(out, e, strlen(e)) == -1 :
		    buf_addc(out, (unsigned char)*s) == -1)
			return -1;
	}
	return 0;
}

/* "3d 4h 5m", "4h 5m", "5m 6s" or "6s". */
static void
st_duration(char *b, size_t len, uint64_t s)
{
	if (s >= 86400)
		snprintf(b, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m",
		    s / 86400, s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(b, len, "%" PRIu64 "h %" PRIu64 "m", s / 3600,
		    s % 3600 / 60);
	else if (s >= 60)
		snprintf(b, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(b, len, "%" PRIu64 "s", s);
}

/* A card: key, value (ours or escaped), detail; cls colours the value. */
static int
st_card(struct buf *o, const char *k, const char *v, const char *cls,
    const char *d)
{
	if (buf_addf(o, "<div class=\"card\"><div class=\"k\">%s</div>"
	    "<div class=\"v%s%s\">", k, cls ? " " : "", cls ? cls : "") == -1 ||
	    obs_html_escape(o, v) == -1 ||
	    buf_add(o, "</div><div class=\"d\">", 21) == -1 ||
	    obs_html_escape(o, d ? d : "") == -1 ||
	    buf_add(o, "</div></div>\n", 13) == -1)
		return -1;
	return 0;
}

static int
st_cards(struct buf *o, const struct obs_status_view *v)
{
	char	a[64], b[128];
	int	rc = 0;

	st_duration(a, sizeof(a), v->uptime_s);
	snprintf(b, sizeof(b), "%u event loop%s", v->workers,
	    v->workers == 1 ? "" : "s");
	rc |= st_card(o, "Uptime", a, NULL, b);
	snprintf(a, sizeof(a), "%" PRIu64, v->sessions_open);
	snprintf(b, sizeof(b), "%" PRIu64 " since start, %" PRIu64
	    " tarpitted now", v->sessions_started, v->tarpitted);
	rc |= st_card(o, "Sessions open", a, NULL, b);
	snprintf(a, sizeof(a), "%" PRIu64, v->messages_accepted);
	rc |= st_card(o, "Messages accepted", a, NULL, "since start");
	snprintf(a, sizeof(a), "%" PRIu64, v->queue_active +
	    v->queue_deferred);
	snprintf(b, sizeof(b), "%" PRIu64 " active, %" PRIu64 " deferred",
	    v->queue_active, v->queue_deferred);
	rc |= st_card(o, "Queue", a, NULL, b);
	if (v->queue_has_oldest)
		st_duration(a, sizeof(a), v->queue_oldest_s);
	else
		snprintf(a, sizeof(a), "none");
	rc |= st_card(o, "Oldest message", a, NULL, v->queue_has_oldest ?
	    "waiting in the queue" : "the queue is empty");
	snprintf(a, sizeof(a), "%" PRIu64, v->marked_hosts + v->marked_nets);
	snprintf(b, sizeof(b), "%" PRIu64 " host%s, %" PRIu64 " network%s; %"
	    PRIu64 " domain%s under a distributed harvest", v->marked_hosts,
	    v->marked_hosts == 1 ? "" : "s", v->marked_nets,
	    v->marked_nets == 1 ? "" : "s", v->hot_domains,
	    v->hot_domains == 1 ? "" : "s");
	rc |= st_card(o, "Harvest: marked sources", a,
	    v->marked_hosts + v->marked_nets > 0 ? "bad" : NULL, b);
	snprintf(b, sizeof(b), "%s back-end, %" PRIu64 " entr%s",
	    v->dir_backend, v->dir_entries, v->dir_entries == 1 ? "y" : "ies");
	rc |= st_card(o, "Directory", v->dir_up ? "up" : "down",
	    v->dir_up ? "ok" : "bad", b);
	rc |= st_card(o, "Shared state", v->shared_configured ? "up" :
	    "not configured", v->shared_configured ? "ok" : "off",
	    "harvest and rate counters are this node's own");
	return rc != 0 ? -1 : 0;
}

/* A round scale top: 1, 2 or 5 times a power of ten, at least max. */
static uint64_t
st_scale(uint64_t max)
{
	uint64_t	p = 1;

	for (;;) {
		if (max <= p)
			return p;
		if (max <= 2 * p)
			return 2 * p;
		if (max <= 5 * p)
			return 5 * p;
		p *= 10;
	}
}

static int
st_chart_axes(struct buf *o, uint64_t top)
{
	int	x1 = ST_CHART_X0 + ST_CHART_W, y1 = ST_CHART_Y0 + ST_CHART_H;

	if (buf_addf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"recipient "
	    "decisions per minute, last hour\">\n", x1 + 16, y1 + 34) == -1 ||
	    buf_addf(o, "<g font-size=\"11\" fill=\"#616161\">"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%" PRIu64 "</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%" PRIu64 "</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>",
	    ST_CHART_X0 - 6, ST_CHART_Y0 + 4, top,
	    ST_CHART_X0 - 6, ST_CHART_Y0 + ST_CHART_H / 2 + 4, top / 2,
	    ST_CHART_X0 - 6, y1 + 4) == -1 ||
	    buf_addf(o, "<text x=\"%d\" y=\"%d\">-%d min</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">-30 min</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">now</text>"
	    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">RCPTs per "
	    "minute</text></g>\n", ST_CHART_X0, y1 + 16,
	    OBS_RING_MINUTES, ST_CHART_X0 + ST_CHART_W / 2, y1 + 16,
	    x1, y1 + 16, ST_CHART_X0 + ST_CHART_W / 2, y1 + 30) == -1 ||
	    buf_addf(o, "<g stroke=\"#e0e0e0\"><line x1=\"%d\" y1=\"%d\" "
	    "x2=\"%d\" y2=\"%d\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" "
	    "y2=\"%d\"/><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
	    "</g>\n", ST_CHART_X0, ST_CHART_Y0, x1, ST_CHART_Y0,
	    ST_CHART_X0, ST_CHART_Y0 + ST_CHART_H / 2, x1,
	    ST_CHART_Y0 + ST_CHART_H / 2, ST_CHART_X0, y1, x1, y1) == -1)
		return -1;
	return 0;
}

/* Stacked bars, one per minute (the newest on the right). */
static int
st_chart(struct buf *o, const struct obs_status_view *v)
{
	uint64_t	max = 0, sum, top;
	double		slot = (double)ST_CHART_W / OBS_RING_MINUTES, y, hgt;
	size_t		r, i;

	for (r = 0; r < v->nrows; r++) {
		for (i = 0, sum = 0; i < OBS_RCPT_MAX; i++)
			sum += v->rows[r][i];
		max = sum > max ? sum : max;
	}
	top = st_scale(max > 0 ? max : 1);
	if (st_chart_axes(o, top) == -1)
		return -1;
	for (r = 0; r < v->nrows; r++) {
		double	x = ST_CHART_X0 + (OBS_RING_MINUTES - v->nrows + r) *
			    slot + 1;

		y = ST_CHART_Y0 + ST_CHART_H;
		for (i = 0; i < OBS_RCPT_MAX; i++) {
			if (v->rows[r][i] == 0)
				continue;
			hgt = (double)v->rows[r][i] * ST_CHART_H / (double)top;
			y -= hgt;
			if (buf_addf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			    "height=\"%.1f\" fill=\"%s\"><title>%zu min ago: %"
			    PRIu64 " %s/%s</title></rect>\n", x, y, slot - 2,
			    hgt, st_colour[i], v->nrows - 1 - r, v->rows[r][i],
			    obs_rcpt_decision(i), obs_rcpt_reason(i)) == -1)
				return -1;
		}
	}
	return buf_add(o, "</svg>\n", 7);
}

/* The legend as a table: this hour's count and since start, per pair
 * seen at all. */
static int
st_table(struct buf *o, const struct obs_status_view *v)
{
	uint64_t	hour;
	size_t		r, i, shown = 0;

	if (buf_addf(o, "<table><tr><th>decision</th><th>reason</th>"
	    "<th>last hour</th><th>since start</th></tr>\n") == -1)
		return -1;
	for (i = 0; i < OBS_RCPT_MAX; i++) {
		for (r = 0, hour = 0; r < v->nrows; r++)
			hour += v->rows[r][i];
		if (hour == 0 && v->rcpt_total[i] == 0)
			continue;
		shown++;
		if (buf_addf(o, "<tr><td><span class=\"sw\" style=\"background:"
		    "%s\"></span>%s</td><td>%s</td><td class=\"n\">%" PRIu64
		    "</td><td class=\"n\">%" PRIu64 "</td></tr>\n",
		    st_colour[i], obs_rcpt_decision(i), obs_rcpt_reason(i),
		    hour, v->rcpt_total[i]) == -1)
			return -1;
	}
	if (shown == 0 && buf_addf(o, "<tr><td colspan=\"4\">no recipients "
	    "yet</td></tr>\n") == -1)
		return -1;
	return buf_add(o, "</table>\n", 9);
}

int
obs_status_page(struct buf *o, const struct obs_status_view *v)
{
	if (buf_addf(o, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
	    "content=\"60\"><title>mxgate on ") == -1 ||
	    obs_html_escape(o, v->hostname) == -1 ||
	    buf_addf(o, "</title><style>%s</style></head><body>\n<h1>mxgate "
	    "on ", st_style) == -1 ||
	    obs_html_escape(o, v->hostname) == -1 ||
	    buf_add(o, "</h1><p class=\"sub\">version ", 28) == -1 ||
	    obs_html_escape(o, v->version) == -1 ||
	    buf_addf(o, " &middot; read-only status; the numbers behind it are "
	    "at <code>/metrics</code></p>\n<div class=\"cards\">\n") == -1 ||
	    st_cards(o, v) == -1 ||
	    buf_addf(o, "</div>\n<h2>Recipient decisions, last hour</h2>\n"
	    "<p class=\"note\">Each bar is one minute of RCPT commands, "
	    "stacked by the answer they got; the colours are those of the "
	    "table below.</p>\n") == -1 || st_chart(o, v) == -1 ||
	    st_table(o, v) == -1 ||
	    buf_addf(o, "</body></html>\n") == -1)
		return -1;
	return 0;
}
