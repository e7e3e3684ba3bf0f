/*
 * obs_expo.c - the text exposition writer (see obs_expo.h).
 * Never: writes a sample before its family's HELP and TYPE lines (the
 * collector calls obs_expo_family first), or an unescaped value.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/log.h"
#include "obs_expo.h"

int
obs_expo_name_ok(const char *s, int label)
{
	size_t	i;
	char	c;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; (c = s[i]) != '\0'; i++)
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_' || (c == ':' && !label) ||
		    (i > 0 && c >= '0' && c <= '9')))
			return 0;
	/* names beginning with __ are reserved for Prometheus itself */
	return !(label && s[0] == '_' && s[1] == '_');
}

static void
obs_expo_check(const char *name, int label)
{
	if (!obs_expo_name_ok(name, label))
		panic("obs_expo: bad %s name \"%s\"", label ? "label" :
		    "metric", name ? name : "(null)");
}

int
obs_expo_escape(struct buf *out, const char *s)
{
	size_t	i, run = 0;

	for (i = 0;; i++) {
		const char	*esc = s[i] == '\\' ? "\\\\" : s[i] == '"' ?
				    "\\\"" : s[i] == '\n' ? "\\n" : NULL;

		if (esc == NULL && s[i] != '\0') {
			run++;
			continue;
		}
		if (run > 0 && buf_add(out, s + i - run, run) == -1)
			return -1;
		run = 0;
		if (s[i] == '\0')
			return 0;
		if (buf_add(out, esc, 2) == -1)
			return -1;
	}
}

/* HELP text: backslash and newline escaped (no quotes). */
static int
obs_expo_help(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++)
		if ((*s == '\\' && buf_add(out, "\\\\", 2) == -1) ||
		    (*s == '\n' && buf_add(out, "\\n", 2) == -1) ||
		    (*s != '\\' && *s != '\n' && buf_addc(out, *s) == -1))
			return -1;
	return 0;
}

int
obs_expo_family(struct buf *out, const char *name, const char *type,
    const char *help)
{
	obs_expo_check(name, 0);
	if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0 &&
	    strcmp(type, "histogram") != 0)
		panic("obs_expo_family: type %s", type);
	if (buf_addf(out, "# HELP %s ", name) == -1 ||
	    obs_expo_help(out, help) == -1 ||
	    buf_addf(out, "\n# TYPE %s %s\n", name, type) == -1)
		return -1;
	return 0;
}

/* name{a="x",b="y"[,le="..."]} and the space before the value. */
static int
obs_expo_head(struct buf *out, const char *name, const char *suffix,
    const struct obs_label *l, size_t n, const char *le)
{
	size_t	i;

	obs_expo_check(name, 0);
	if (buf_addf(out, "%s%s", name, suffix) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		obs_expo_check(l[i].name, 1);
		if (buf_addf(out, "%c%s=\"", i == 0 ? '{' : ',',
		    l[i].name) == -1 || obs_expo_escape(out, l[i].value) ==
		    -1 || buf_addc(out, '"') == -1)
			return -1;
	}
	if (le != NULL && buf_addf(out, "%sle=\"%s\"", n > 0 ? "," : "{",
	    le) == -1)
		return -1;
	if ((n > 0 || le != NULL) && buf_addc(out, '}') == -1)
		return -1;
	return buf_addc(out, ' ');
}

int
obs_expo_u64(struct buf *out, const char *name, const struct obs_label *l,
    size_t n, uint64_t v)
{
	if (obs_expo_head(out, name, "", l, n, NULL) == -1)
		return -1;
	return buf_addf(out, "%" PRIu64 "\n", v);
}

/* A float as the format spells it (Go's ParseFloat reads C's %g): the
 * shorter %.15g when it reads back as the same double, else %.17g; NaN
 * and the infinities have their own words. */
static int
obs_expo_float(struct buf *out, double v)
{
	char	b[40];

	if (isnan(v))
		return buf_add(out, "NaN", 3);
	if (isinf(v))
		return v > 0 ? buf_add(out, "+Inf", 4) : buf_add(out, "-Inf", 4);
	snprintf(b, sizeof(b), "%.15g", v);
	if (strtod(b, NULL) != v)
		snprintf(b, sizeof(b), "%.17g", v);
	return buf_add(out, b, strlen(b));
}

int
obs_expo_f64(struct buf *out, const char *name, const struct obs_label *l,
    size_t n, double v)
{
	if (obs_expo_head(out, name, "", l, n, NULL) == -1 ||
	    obs_expo_float(out, v) == -1)
		return -1;
	return buf_addc(out, '\n');
}

int
obs_expo_hist(struct buf *out, const char *name, const struct obs_label *l,
    size_t n, const struct obs_hist *h, const struct obs_hist_spec *sp)
{
	char		le[40];
	uint64_t	cum = 0;
	size_t		i;

	if (sp->nle > OBS_HIST_BOUNDS_MAX)
		panic("obs_expo_hist: %zu bounds", sp->nle);
	for (i = 0; i <= sp->nle; i++) {
		cum += obs_get(&h->n[i]);
		if (i < sp->nle)
			snprintf(le, sizeof(le), "%.10g",
			    (double)sp->le[i] * sp->scale);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (obs_expo_head(out, name, "_bucket", l, n, le) == -1 ||
		    buf_addf(out, "%" PRIu64 "\n", cum) == -1)
			return -1;
	}
	if (obs_expo_head(out, name, "_sum", l, n, NULL) == -1 ||
	    obs_expo_float(out, (double)obs_get(&h->sum) * sp->scale) == -1 ||
	    buf_addc(out, '\n') == -1 ||
	    obs_expo_head(out, name, "_count", l, n, NULL) == -1 ||
	    buf_addf(out, "%" PRIu64 "\n", cum) == -1)
		return -1;
	return 0;
}
