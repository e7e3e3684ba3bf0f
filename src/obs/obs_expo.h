/*
 * obs_expo.h - the Prometheus text exposition format, version 0.0.4
 * (what `promtool check metrics` reads): one HELP and one TYPE line per
 * family, then its samples, grouped; label values escaped (\\, \", \n);
 * the output ends with a newline.
 * Owns: the syntax of a scrape.  Never: chooses what to export (the
 * collector does, net/worker_obs.c); I/O.
 * Names and label names are ours, checked against the format's grammar
 * ([a-zA-Z_:][a-zA-Z0-9_:]*; labels without ':'): a bad one is a bug and
 * panics.  Every writer returns 0, or -1 when out grew past its max (the
 * caller answers 500 rather than a cut scrape).
 */
#ifndef MXGATE_OBS_EXPO_H
#define MXGATE_OBS_EXPO_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "obs.h"

struct obs_label {
	const char	*name;
	const char	*value;		/* escaped on output */
};

/* "# HELP name help" and "# TYPE name type" (counter, gauge,
 * histogram). */
int	obs_expo_family(struct buf *, const char *name, const char *type,
	    const char *help);
/* "name{labels} value" with an integer or a float value. */
int	obs_expo_u64(struct buf *, const char *name,
	    const struct obs_label *, size_t nlabels, uint64_t v);
int	obs_expo_f64(struct buf *, const char *name,
	    const struct obs_label *, size_t nlabels, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum, name_count. */
int	obs_expo_hist(struct buf *, const char *name,
	    const struct obs_label *, size_t nlabels, const struct obs_hist *,
	    const struct obs_hist_spec *);

/* A label value written into out as the format escapes it; pure. */
int	obs_expo_escape(struct buf *out, const char *s);
/* Whether a metric (colons allowed) or label name is well formed. */
int	obs_expo_name_ok(const char *, int label);

#endif
