/*
 * report.c - `mxgate report`: read mxgate log lines (text or JSON, as
 * log_format writes them), count what an administrator asks first, print
 * a summary (see report.h).
 * Owns: the log line parser for reading logs back, the counters.
 * Never: trusts a line: every field is bounded, a line it cannot read is
 * counted and skipped.  Untrusted: the log's bytes (peer bytes in them).
 * RFC 8259 (JSON).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log_json.h"
#include "report.h"

/* ---- the line parser ---- */

struct obs_out {
	struct obs_rec	*rec;
	size_t		 o;		/* used of rec->buf */
};

static char *
obs_out_begin(struct obs_out *w)
{
	return w->rec->buf + w->o;
}

static bool
obs_out_byte(struct obs_out *w, char c)
{
	if (w->o >= sizeof(w->rec->buf) - 1)
		return false;
	w->rec->buf[w->o++] = c;
	return true;
}

static bool
obs_out_end(struct obs_out *w)
{
	return obs_out_byte(w, '\0');
}

static bool
obs_field_add(struct obs_rec *r, const char *k, const char *v)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, k) == 0)
			return true;	/* the first one counts */
	if (r->n == OBS_REPORT_FIELDS)
		return true;		/* more keys: ignored */
	r->f[r->n].key = k;
	r->f[r->n].val = v;
	r->n++;
	return true;
}

static void
obs_utf8_put(struct obs_out *w, uint32_t c, bool *ok)
{
	if (c < 0x80)
		*ok &= obs_out_byte(w, (char)c);
	else if (c < 0x800) {
		*ok &= obs_out_byte(w, (char)(0xc0 | c >> 6));
		*ok &= obs_out_byte(w, (char)(0x80 | (c & 0x3f)));
	} else if (c < 0x10000) {
		*ok &= obs_out_byte(w, (char)(0xe0 | c >> 12));
		*ok &= obs_out_byte(w, (char)(0x80 | (c >> 6 & 0x3f)));
		*ok &= obs_out_byte(w, (char)(0x80 | (c & 0x3f)));
	} else {
		*ok &= obs_out_byte(w, (char)(0xf0 | c >> 18));
		*ok &= obs_out_byte(w, (char)(0x80 | (c >> 12 & 0x3f)));
		*ok &= obs_out_byte(w, (char)(0x80 | (c >> 6 & 0x3f)));
		*ok &= obs_out_byte(w, (char)(0x80 | (c & 0x3f)));
	}
}

static int
obs_hex4(const char *p, const char *end, uint32_t *v)
{
	int	i, d;

	*v = 0;
	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = p[i];

		d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
		    c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

/* One JSON escape after the backslash at *pp; false if bad. */
static bool
obs_json_esc(const char **pp, const char *end, struct obs_out *w)
{
	const char	*p = *pp;
	uint32_t	 c, lo;
	bool		 ok = true;

	if (p >= end)
		return false;
	switch (*p++) {
	case '"': c = '"'; break;
	case '\\': c = '\\'; break;
	case '/': c = '/'; break;
	case 'b': c = '\b'; break;
	case 'f': c = '\f'; break;
	case 'n': c = '\n'; break;
	case 'r': c = '\r'; break;
	case 't': c = '\t'; break;
	case 'u':
		if (obs_hex4(p, end, &c) == -1)
			return false;
		p += 4;
		if (c >= 0xd800 && c <= 0xdbff && end - p >= 6 &&
		    p[0] == '\\' && p[1] == 'u' &&
		    obs_hex4(p + 2, end, &lo) == 0 && lo >= 0xdc00 &&
		    lo <= 0xdfff) {
			c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		} else if (c >= 0xd800 && c <= 0xdfff)
			c = 0xfffd;	/* a lone surrogate */
		break;
	default:
		return false;
	}
	obs_utf8_put(w, c, &ok);
	*pp = p;
	return ok;
}

/* A JSON string at *pp (its opening quote); decoded into w. */
static const char *
obs_json_string(const char **pp, const char *end, struct obs_out *w)
{
	const char	*p = *pp, *s;

	if (p >= end || *p != '"')
		return NULL;
	p++;
	s = obs_out_begin(w);
	while (p < end && *p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;	/* RFC 8259 7: must be escaped */
		if (*p == '\\') {
			p++;
			if (!obs_json_esc(&p, end, w))
				return NULL;
		} else if (!obs_out_byte(w, *p++))
			return NULL;
	}
	if (p >= end || !obs_out_end(w))
		return NULL;
	*pp = p + 1;
	return s;
}

/* A number, true, false or null: copied as written. */
static const char *
obs_json_scalar(const char **pp, const char *end, struct obs_out *w)
{
	const char	*p = *pp, *s = obs_out_begin(w);

	while (p < end && *p != ',' && *p != '}' && *p != ' ' &&
	    *p != '\t') {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		    *p == '-' || *p == '+' || *p == '.' || *p == 'E'))
			return NULL;	/* an object, an array: not ours */
		if (!obs_out_byte(w, *p++))
			return NULL;
	}
	if (p == *pp || !obs_out_end(w))
		return NULL;
	*pp = p;
	return s;
}

static void
obs_skip_ws(const char **pp, const char *end)
{
	while (*pp < end && (**pp == ' ' || **pp == '\t' || **pp == '\r'))
		(*pp)++;
}

static enum parse_rc
obs_parse_json(const char *p, const char *end, struct obs_rec *r)
{
	struct obs_out	 w = { r, 0 };
	const char	*k, *v;

	p++;			/* '{' */
	obs_skip_ws(&p, end);
	if (p < end && *p == '}')
		return PARSE_OK;
	for (;;) {
		obs_skip_ws(&p, end);
		if ((k = obs_json_string(&p, end, &w)) == NULL)
			return PARSE_BAD;
		obs_skip_ws(&p, end);
		if (p >= end || *p++ != ':')
			return PARSE_BAD;
		obs_skip_ws(&p, end);
		v = p < end && *p == '"' ? obs_json_string(&p, end, &w) :
		    obs_json_scalar(&p, end, &w);
		if (v == NULL)
			return PARSE_BAD;
		obs_field_add(r, k, v);
		obs_skip_ws(&p, end);
		if (p >= end)
			return PARSE_BAD;
		if (*p == '}')
			break;
		if (*p++ != ',')
			return PARSE_BAD;
	}
	p++;
	obs_skip_ws(&p, end);
	return p == end ? PARSE_OK : PARSE_BAD;
}

/* A copy of n bytes of s, NUL-ended, into w; NULL if no room. */
static const char *
obs_out_copy(struct obs_out *w, const char *s, size_t n, bool unescape)
{
	char	*d = obs_out_begin(w);
	size_t	 room = sizeof(w->rec->buf) - w->o, k;

	if (room < n + 1)
		return NULL;
	k = unescape ? obs_kv_unescape(s, n, (uint8_t *)d, n) : n;
	if (!unescape)
		memcpy(d, s, n);
	d[k] = '\0';
	w->o += k + 1;
	return d;
}

static enum parse_rc
obs_parse_text(const char *line, const char *end, struct obs_rec *r)
{
	struct obs_out	 w = { r, 0 };
	struct obs_kv	 kv;
	const char	*p = memchr(line, ' ', (size_t)(end - line));
	const char	*k, *v;

	/* "2026-01-02T03:04:05.678Z level=..." */
	if (p == NULL || p - line < 13 || line[4] != '-' || line[10] != 'T')
		return PARSE_BAD;
	if ((v = obs_out_copy(&w, line, (size_t)(p - line), false)) == NULL)
		return PARSE_BAD;
	obs_field_add(r, "time", v);
	while (obs_kv_next(&p, end, &kv)) {
		if (kv.klen == 0)
			continue;	/* a bare word */
		if ((k = obs_out_copy(&w, kv.key, kv.klen, false)) == NULL ||
		    (v = obs_out_copy(&w, kv.val, kv.vlen, true)) == NULL)
			return PARSE_BAD;
		obs_field_add(r, k, v);
	}
	return obs_rec_get(r, "event") != NULL ? PARSE_OK : PARSE_BAD;
}

enum parse_rc
obs_report_parse(const char *line, size_t len, struct obs_rec *r)
{
	const char	*end = line + len;

	r->n = 0;
	if (len > OBS_REPORT_LINE_MAX)
		return PARSE_TOOLONG;
	while (end > line && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (end > line && line[0] == '{')
		return obs_parse_json(line, end, r) == PARSE_OK &&
		    obs_rec_get(r, "event") != NULL ? PARSE_OK : PARSE_BAD;
	return obs_parse_text(line, end, r);
}

const char *
obs_rec_get(const struct obs_rec *r, const char *key)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->f[i].key, key) == 0)
			return r->f[i].val;
	return NULL;
}

/* ---- counting ---- */

#define OBS_NAME_MAX	64

struct obs_count {
	char		 name[OBS_NAME_MAX];
	unsigned long	 n;
};

/* A bounded name -> count table; past its size, "(other)". */
struct obs_table {
	struct obs_count *c;
	size_t		  n, max;
	unsigned long	  other;
};

struct obs_hour {
	char		 hour[16];	/* "2026-01-02T03" */
	unsigned long	 received, delivered, deferred, refused;
};

struct obs_report {
	unsigned long	 lines, bad;
	unsigned long	 messages, rcpt_ok, rcpt_refused, connections;
	unsigned long	 ndr_sent, ndr_suppressed;
	struct obs_table refused_by;	/* "action (verdict)" */
	struct obs_table sources;	/* client of refused RCPTs */
	struct obs_table marked;	/* harvest state=uniform net= */
	struct obs_table suppressed_by;
	struct obs_table deliveries;	/* delivered, deferred, failed */
	struct obs_table shadow;	/* "event would" */
	struct obs_hour	*hours;
	size_t		 nhours;
};

static void
obs_table_hit(struct obs_table *t, const char *name)
{
	size_t	i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->c[i].name, name) == 0) {
			t->c[i].n++;
			return;
		}
	if (t->n == t->max) {
		t->other++;
		return;
	}
	snprintf(t->c[t->n].name, sizeof(t->c[t->n].name), "%s", name);
	t->c[t->n++].n = 1;
}

static int
obs_table_init(struct obs_table *t, size_t max)
{
	t->n = 0;
	t->max = max;
	t->other = 0;
	return (t->c = calloc(max, sizeof(*t->c))) == NULL ? -1 : 0;
}

struct obs_report *
obs_report_new(void)
{
	struct obs_report	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if (obs_table_init(&r->refused_by, OBS_REPORT_KINDS) == -1 ||
	    obs_table_init(&r->sources, OBS_REPORT_SOURCES) == -1 ||
	    obs_table_init(&r->marked, OBS_REPORT_SOURCES) == -1 ||
	    obs_table_init(&r->suppressed_by, OBS_REPORT_KINDS) == -1 ||
	    obs_table_init(&r->deliveries, OBS_REPORT_KINDS) == -1 ||
	    obs_table_init(&r->shadow, OBS_REPORT_KINDS) == -1 ||
	    (r->hours = calloc(OBS_REPORT_HOURS, sizeof(*r->hours))) == NULL) {
		obs_report_free(r);
		return NULL;
	}
	return r;
}

void
obs_report_free(struct obs_report *r)
{
	if (r == NULL)
		return;
	free(r->refused_by.c);
	free(r->sources.c);
	free(r->marked.c);
	free(r->suppressed_by.c);
	free(r->deliveries.c);
	free(r->shadow.c);
	free(r->hours);
	free(r);
}

/* The hour bucket of a line ("YYYY-MM-DDTHH"); NULL if none fits. */
static struct obs_hour *
obs_hour_of(struct obs_report *r, const char *t)
{
	char	h[16];
	size_t	i;

	if (t == NULL || strlen(t) < 13 || t[10] != 'T')
		return NULL;
	memcpy(h, t, 13);
	h[13] = '\0';
	for (i = r->nhours; i > 0; i--)	/* logs are in order: last first */
		if (strcmp(r->hours[i - 1].hour, h) == 0)
			return &r->hours[i - 1];
	if (r->nhours == OBS_REPORT_HOURS)
		return NULL;
	memcpy(r->hours[r->nhours].hour, h, 14);
	return &r->hours[r->nhours++];
}

static bool
obs_is(const char *v, const char *want)
{
	return v != NULL && strcmp(v, want) == 0;
}

/* A RCPT's action that gives the valid reply (the mail is taken). */
static bool
obs_action_taken(const char *a)
{
	return obs_is(a, "accept") || obs_is(a, "relay") ||
	    obs_is(a, "discard") || obs_is(a, "bounce");
}

static void
obs_report_rcpt(struct obs_report *r, const struct obs_rec *rec,
    struct obs_hour *h)
{
	const char	*a = obs_rec_get(rec, "action");
	const char	*v = obs_rec_get(rec, "verdict");
	const char	*c = obs_rec_get(rec, "client");
	char		 name[OBS_NAME_MAX];

	if (a == NULL)		/* a syntax error: result=, no action */
		return;
	if (obs_action_taken(a)) {
		r->rcpt_ok++;
		return;
	}
	r->rcpt_refused++;
	if (h != NULL)
		h->refused++;
	snprintf(name, sizeof(name), "%.30s (%.30s)", a, v ? v : "-");
	obs_table_hit(&r->refused_by, name);
	obs_table_hit(&r->sources, c ? c : "-");
}

void
obs_report_add(struct obs_report *r, const struct obs_rec *rec)
{
	const char	*ev = obs_rec_get(rec, "event");
	const char	*w = obs_rec_get(rec, "would");
	struct obs_hour	*h = obs_hour_of(r, obs_rec_get(rec, "time"));
	char		 name[OBS_NAME_MAX];

	r->lines++;
	if (ev == NULL)
		return;
	if (w != NULL && obs_is(obs_rec_get(rec, "shadow"), "1")) {
		snprintf(name, sizeof(name), "%.24s would %.30s", ev, w);
		obs_table_hit(&r->shadow, name);
	}
	if (obs_is(ev, "connect"))
		r->connections++;
	else if (obs_is(ev, "rcpt"))
		obs_report_rcpt(r, rec, h);
	else if (obs_is(ev, "queued") && obs_rec_get(rec, "qid") != NULL &&
	    !obs_is(obs_rec_get(rec, "qid"), "-")) {
		r->messages++;
		if (h != NULL)
			h->received++;
	} else if (obs_is(ev, "delivered") || obs_is(ev, "deferred") ||
	    obs_is(ev, "failed")) {
		obs_table_hit(&r->deliveries, ev);
		if (h != NULL && obs_is(ev, "delivered"))
			h->delivered++;
		else if (h != NULL && obs_is(ev, "deferred"))
			h->deferred++;
	} else if (obs_is(ev, "harvest") &&
	    obs_is(obs_rec_get(rec, "state"), "uniform"))
		obs_table_hit(&r->marked, obs_rec_get(rec, "net") ?
		    obs_rec_get(rec, "net") : "-");
	else if (obs_is(ev, "dsn") && obs_rec_get(rec, "dsn_qid") != NULL)
		r->ndr_sent++;
	else if (obs_is(ev, "dsn") &&
	    obs_is(obs_rec_get(rec, "ndr"), "suppressed")) {
		r->ndr_suppressed++;
		obs_table_hit(&r->suppressed_by, obs_rec_get(rec, "reason") ?
		    obs_rec_get(rec, "reason") : "-");
	}
}

void
obs_report_bad_line(struct obs_report *r)
{
	r->bad++;
}

static int
obs_count_cmp(const void *a, const void *b)
{
	const struct obs_count	*x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* A table, most first, at most top rows (0: all). */
static void
obs_table_print(FILE *f, const char *title, struct obs_table *t,
    size_t top)
{
	size_t	i;

	fprintf(f, "\n%s\n", title);
	if (t->n == 0 && t->other == 0) {
		fprintf(f, "  (none)\n");
		return;
	}
	qsort(t->c, t->n, sizeof(*t->c), obs_count_cmp);
	for (i = 0; i < t->n && (top == 0 || i < top); i++)
		fprintf(f, "  %-40s %8lu\n", t->c[i].name, t->c[i].n);
	if (t->other > 0)
		fprintf(f, "  %-40s %8lu\n", "(other)", t->other);
}

void
obs_report_print(const struct obs_report *rc, FILE *f)
{
	struct obs_report	*r = (struct obs_report *)rc; /* sorts */
	size_t			 i;

	fprintf(f, "mxgate report: %lu log lines, %lu not understood\n",
	    r->lines, r->bad);
	fprintf(f, "\nTotals\n");
	fprintf(f, "  %-40s %8lu\n", "connections", r->connections);
	fprintf(f, "  %-40s %8lu\n", "messages accepted", r->messages);
	fprintf(f, "  %-40s %8lu\n", "recipients accepted", r->rcpt_ok);
	fprintf(f, "  %-40s %8lu\n", "recipients refused", r->rcpt_refused);
	fprintf(f, "  %-40s %8lu\n", "reports sent", r->ndr_sent);
	fprintf(f, "  %-40s %8lu\n", "reports suppressed", r->ndr_suppressed);
	obs_table_print(f, "Refused recipients by action (verdict)",
	    &r->refused_by, 0);
	obs_table_print(f, "Top refused sources", &r->sources, 10);
	obs_table_print(f, "Harvest sources marked (uniform mode)",
	    &r->marked, 20);
	obs_table_print(f, "Reports suppressed by reason", &r->suppressed_by,
	    0);
	obs_table_print(f, "Deliveries by result", &r->deliveries, 0);
	obs_table_print(f, "Shadow controls: what they would have done",
	    &r->shadow, 0);
	fprintf(f, "\nPer hour (UTC)      received delivered deferred "
	    "refused\n");
	if (r->nhours == 0)
		fprintf(f, "  (none)\n");
	for (i = 0; i < r->nhours; i++)
		fprintf(f, "  %-16s %9lu %9lu %8lu %7lu\n", r->hours[i].hour,
		    r->hours[i].received, r->hours[i].delivered,
		    r->hours[i].deferred, r->hours[i].refused);
}

/* ---- the subcommand ---- */

/* Lines of one file; an overlong one is skipped to its newline. */
static void
obs_report_file(struct obs_report *r, FILE *fp, struct obs_rec *rec)
{
	char	line[OBS_REPORT_LINE_MAX + 2];
	size_t	n;
	bool	skipping = false;

	while (fgets(line, sizeof(line), fp) != NULL) {
		n = strlen(line);
		if (n > 0 && line[n - 1] != '\n' && !feof(fp)) {
			if (!skipping)
				obs_report_bad_line(r);
			skipping = true;	/* the rest of a long line */
			continue;
		}
		if (skipping) {
			skipping = false;
			continue;
		}
		if (obs_report_parse(line, n, rec) == PARSE_OK)
			obs_report_add(r, rec);
		else if (n > 1)
			obs_report_bad_line(r);
	}
}

int
obs_report_main(int argc, char **argv)
{
	struct obs_report	*r;
	struct obs_rec		*rec;
	FILE			*fp;
	int			 i, rc = 0;

	if ((r = obs_report_new()) == NULL ||
	    (rec = malloc(sizeof(*rec))) == NULL) {
		fprintf(stderr, "mxgate report: out of memory\n");
		obs_report_free(r);
		return 1;
	}
	if (argc == 0)
		obs_report_file(r, stdin, rec);
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			obs_report_file(r, stdin, rec);
			continue;
		}
		if ((fp = fopen(argv[i], "r")) == NULL) {
			fprintf(stderr, "mxgate report: %s: %s\n", argv[i],
			    strerror(errno));
			rc = 1;
			continue;
		}
		obs_report_file(r, fp, rec);
		fclose(fp);
	}
	obs_report_print(r, stdout);
	free(rec);
	obs_report_free(r);
	return rc;
}
