/*
 * report.h - `mxgate report [LOGFILE...]`: a summary of mxgate logs, text
 * or JSON lines (both may be mixed), like pflogsumm for Postfix.
 * The line parser is pure and bounded (fuzz/fuzz_report.c).
 */
#ifndef MXGATE_OBS_REPORT_H
#define MXGATE_OBS_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../lib/parse.h"

#define OBS_REPORT_LINE_MAX	8192	/* longer lines are skipped */
#define OBS_REPORT_FIELDS	64	/* keys kept from one line */
#define OBS_REPORT_SOURCES	4096	/* distinct sources counted */
#define OBS_REPORT_HOURS	744	/* hour buckets (31 days) */
#define OBS_REPORT_KINDS	64	/* distinct reasons, results */

struct obs_field {
	const char	*key, *val;	/* NUL-ended, in rec->buf */
};

/* One parsed line: its fields, decoded (no escapes left). */
struct obs_rec {
	struct obs_field f[OBS_REPORT_FIELDS];
	size_t		 n;
	char		 buf[2 * OBS_REPORT_LINE_MAX + 2 * OBS_REPORT_FIELDS];
};

/*
 * Parse one line (no newline): a JSON object of scalars, or a text line
 * "TIME key=value ...".  The text line's timestamp becomes "time".
 * PARSE_OK, PARSE_BAD (not a log line), PARSE_TOOLONG (over
 * OBS_REPORT_LINE_MAX).  Never reads past len.
 */
enum parse_rc	obs_report_parse(const char *line, size_t len,
		    struct obs_rec *);
const char	*obs_rec_get(const struct obs_rec *, const char *key);

struct obs_report;
struct obs_report *obs_report_new(void);
void		 obs_report_free(struct obs_report *);
void		 obs_report_add(struct obs_report *, const struct obs_rec *);
void		 obs_report_bad_line(struct obs_report *);
void		 obs_report_print(const struct obs_report *, FILE *);

/* The subcommand: argv are the files ("-" or none: stdin); exit code. */
int		 obs_report_main(int argc, char **argv);

#endif
