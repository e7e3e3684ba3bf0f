/*
 * probe_report.c - the probe's three reports: text (a summary table of
 * verdicts, then each finding's details), JSON (one document, schema
 * "mxgate-probe/1" in README.md) and HTML (one self-contained page: no
 * external resource, colours, each finding foldable with <details>).
 * Owns: the words for verdicts and severities, escaping for JSON/HTML.
 * Never: talks to the server.  Untrusted: server text inside facts and
 * evidence (already ASCII-escaped in evidence; escaped again here).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "probe.h"

static const char *const verdict_words[] = {
	[PROBE_PASS] = "pass", [PROBE_FAIL] = "fail",
	[PROBE_INCONCLUSIVE] = "inconclusive",
	[PROBE_NOT_MEASURED] = "not-measured", [PROBE_ERROR] = "error",
};
static const char *const sev_words[] = {
	[PROBE_SEV_INFO] = "info", [PROBE_SEV_LOW] = "low",
	[PROBE_SEV_MEDIUM] = "medium", [PROBE_SEV_HIGH] = "high",
};

static const char *
report_sev(const struct probe_finding *f)
{
	return f->verdict == PROBE_FAIL ? sev_words[f->sev] : "-";
}

static unsigned
report_highs(const struct probe_run *run)
{
	unsigned	n = 0;
	size_t		i;

	for (i = 0; i < run->nf; i++)
		n += run->f[i].verdict == PROBE_FAIL &&
		    run->f[i].sev == PROBE_SEV_HIGH;
	return n;
}

/* Lines of a buffer, each written by fn; the buffer is not changed. */
static void
report_lines(const struct buf *b, void (*fn)(FILE *, const char *, size_t,
    bool), FILE *out)
{
	const char	*p = (const char *)b->data, *nl;
	size_t		 left = b->len;
	bool		 first = true;

	while (left > 0) {
		nl = memchr(p, '\n', left);
		fn(out, p, nl != NULL ? (size_t)(nl - p) : left, first);
		first = false;
		if (nl == NULL)
			break;
		left -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
}

static void
text_line(FILE *out, const char *p, size_t len, bool first)
{
	size_t	i;

	(void)first;
	fputs("    ", out);
	for (i = 0; i < len; i++)
		fputc((unsigned char)p[i] >= 0x20 && (unsigned char)p[i] <
		    0x7f ? p[i] : '?', out);
	fputc('\n', out);
}

void
probe_report_text(const struct probe_run *run, FILE *out)
{
	const struct probe_finding	*f;
	size_t				 i;

	fprintf(out, "mxgate probe: %s port %s, domain %s\n", run->o.host,
	    run->o.port, run->o.domain);
	fprintf(out, "software: %s%s%s\n", probe_mta_name(run->mta),
	    run->mta_text[0] ? ", " : "", run->mta_text);
	fprintf(out, "connections: %u, RCPTs: %u, commands: %u, %.1f s\n",
	    run->nconns, run->nrcpts, run->ncmds, (double)(probe_now_ms() -
	    run->started_ms) / 1000.0);
	if (run->fatal[0] != '\0')
		fprintf(out, "COULD NOT RUN: %s\n", run->fatal);
	fprintf(out, "\n%-18s %-13s %-8s %s\n", "FINDING", "VERDICT",
	    "SEVERITY", "SUMMARY");
	for (i = 0; i < run->nf; i++) {
		f = &run->f[i];
		fprintf(out, "%-18s %-13s %-8s %s\n", f->id,
		    verdict_words[f->verdict], report_sev(f), f->summary);
	}
	fprintf(out, "\nhigh findings: %u\n", report_highs(run));
	for (i = 0; i < run->nf; i++) {
		f = &run->f[i];
		fprintf(out, "\n== %s: %s\nverdict: %s%s%s%s\nsummary: %s\n",
		    f->id, f->title, verdict_words[f->verdict],
		    f->verdict == PROBE_FAIL ? " (" : "",
		    f->verdict == PROBE_FAIL ? sev_words[f->sev] : "",
		    f->verdict == PROBE_FAIL ? ")" : "", f->summary);
		if (f->facts.len > 0) {
			fputs("facts:\n", out);
			report_lines(&f->facts, text_line, out);
		}
		if (f->evidence.len > 0) {
			fputs("evidence:\n", out);
			report_lines(&f->evidence, text_line, out);
		}
		if (f->fix != NULL)
			fprintf(out, "fix: %s\n", f->fix);
		if (f->fix_mta[0] != '\0')
			fprintf(out, "fix (%s): %s\n", probe_mta_name(run->mta),
			    f->fix_mta);
	}
}

/* ---- JSON */

static void
json_str(FILE *out, const char *p, size_t len)
{
	size_t		i;
	unsigned char	c;

	fputc('"', out);
	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void
json_cstr(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_str(out, s, strlen(s));
}

static void
json_line(FILE *out, const char *p, size_t len, bool first)
{
	fputs(first ? "\n      " : ",\n      ", out);
	json_str(out, p, len);
}

void
probe_report_json(const struct probe_run *run, FILE *out)
{
	const struct probe_finding	*f;
	size_t				 i;

	fputs("{\n  \"schema\": \"mxgate-probe/1\",\n  \"target\": {"
	    "\"host\": ", out);
	json_cstr(out, run->o.host);
	fprintf(out, ", \"port\": %s, \"domain\": ", run->o.port);
	json_cstr(out, run->o.domain);
	fputs("},\n  \"software\": ", out);
	json_cstr(out, probe_mta_name(run->mta));
	fputs(", \"identified_by\": ", out);
	json_cstr(out, run->mta_text[0] ? run->mta_text : NULL);
	fprintf(out, ",\n  \"connections\": %u, \"rcpts\": %u, "
	    "\"commands\": %u, \"duration_ms\": %lld,\n", run->nconns,
	    run->nrcpts, run->ncmds, (long long)(probe_now_ms() -
	    run->started_ms));
	fprintf(out, "  \"intrusive\": %s, \"high\": %u, \"status\": %d, "
	    "\"error\": ", run->o.intrusive ? "true" : "false",
	    report_highs(run), run->fatal[0] ? 2 : report_highs(run) ? 1 : 0);
	json_cstr(out, run->fatal[0] ? run->fatal : NULL);
	fputs(",\n  \"findings\": [", out);
	for (i = 0; i < run->nf; i++) {
		f = &run->f[i];
		fprintf(out, "%s\n    {\"id\": \"%s\", \"title\": ",
		    i ? "," : "", f->id);
		json_cstr(out, f->title);
		fprintf(out, ", \"verdict\": \"%s\", \"severity\": \"%s\",\n"
		    "     \"summary\": ", verdict_words[f->verdict],
		    f->verdict == PROBE_FAIL ? sev_words[f->sev] : "none");
		json_cstr(out, f->summary);
		fputs(",\n     \"facts\": [", out);
		report_lines(&f->facts, json_line, out);
		fputs("],\n     \"evidence\": [", out);
		report_lines(&f->evidence, json_line, out);
		fputs("],\n     \"fix\": {\"generic\": ", out);
		json_cstr(out, f->fix);
		fputs(", \"software\": ", out);
		json_cstr(out, f->fix_mta[0] ? probe_mta_name(run->mta) :
		    NULL);
		fputs(", \"software_fix\": ", out);
		json_cstr(out, f->fix_mta[0] ? f->fix_mta : NULL);
		fputs("}}", out);
	}
	fputs("\n  ]\n}\n", out);
}

/* ---- HTML */

static void
html_str(FILE *out, const char *p, size_t len)
{
	size_t		i;
	unsigned char	c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)p[i];
		if (c == '<')
			fputs("&lt;", out);
		else if (c == '>')
			fputs("&gt;", out);
		else if (c == '&')
			fputs("&amp;", out);
		else if (c == '"')
			fputs("&quot;", out);
		else if (c < 0x20 || c >= 0x7f)
			fputc('?', out);
		else
			fputc(c, out);
	}
}

static void
html_cstr(FILE *out, const char *s)
{
	html_str(out, s, strlen(s));
}

static void
html_line(FILE *out, const char *p, size_t len, bool first)
{
	(void)first;
	html_str(out, p, len);
	fputc('\n', out);
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<title>mxgate probe report</title>\n<style>\n"
    "body{font-family:sans-serif;margin:2em;color:#222;background:#fff}\n"
    "table{border-collapse:collapse;margin:1em 0}\n"
    "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}\n"
    "th{background:#eee}\n"
    ".pass{background:#d4f4d4}.fail-high{background:#f8b4b4}\n"
    ".fail-medium{background:#fbd7a8}.fail-low{background:#fcf3b0}\n"
    ".fail-info{background:#fcf3b0}\n"
    ".inconclusive,.not-measured{background:#e4e4f4}"
    ".error{background:#ddd}\n"
    "details{border:1px solid #bbb;margin:.5em 0;padding:.3em .6em}\n"
    "summary{cursor:pointer;font-weight:bold}\n"
    "pre{background:#f6f6f6;padding:.5em;overflow-x:auto;"
    "font-size:90%}\n"
    "</style></head><body>\n";

static const char *
html_class(const struct probe_finding *f, char *b, size_t blen)
{
	if (f->verdict != PROBE_FAIL)
		return verdict_words[f->verdict];
	snprintf(b, blen, "fail-%s", sev_words[f->sev]);
	return b;
}

static void
html_finding(FILE *out, const struct probe_finding *f, enum probe_mta mta)
{
	char	cls[32];

	fprintf(out, "<details class=\"%s\" id=\"%s\"%s><summary>%s: ",
	    html_class(f, cls, sizeof(cls)), f->id, f->verdict == PROBE_FAIL
	    ? " open" : "", f->id);
	html_cstr(out, f->title);
	fprintf(out, " &mdash; %s</summary>\n<p>", verdict_words[f->verdict]);
	html_cstr(out, f->summary);
	fputs("</p>\n", out);
	if (f->facts.len > 0) {
		fputs("<h4>Facts</h4><pre>", out);
		report_lines(&f->facts, html_line, out);
		fputs("</pre>\n", out);
	}
	if (f->evidence.len > 0) {
		fputs("<h4>Evidence</h4><pre>", out);
		report_lines(&f->evidence, html_line, out);
		fputs("</pre>\n", out);
	}
	if (f->fix != NULL) {
		fputs("<h4>Fix</h4><p>", out);
		html_cstr(out, f->fix);
		fputs("</p>\n", out);
	}
	if (f->fix_mta[0] != '\0') {
		fputs("<p><b>", out);
		html_cstr(out, probe_mta_name(mta));
		fputs(":</b> ", out);
		html_cstr(out, f->fix_mta);
		fputs("</p>\n", out);
	}
	fputs("</details>\n", out);
}

int
probe_report_html(const struct probe_run *run, const char *path)
{
	const struct probe_finding	*f;
	FILE				*out;
	char				 cls[32];
	size_t				 i;
	int				 e;

	if ((out = fopen(path, "w")) == NULL)
		return -1;
	fputs(html_head, out);
	fputs("<h1>mxgate probe: ", out);
	html_cstr(out, run->o.host);
	fprintf(out, " port %s</h1>\n<p>Domain ", run->o.port);
	html_cstr(out, run->o.domain);
	fputs("; software: ", out);
	html_cstr(out, probe_mta_name(run->mta));
	fprintf(out, "; %u connections, %u RCPTs; high findings: %u.</p>\n",
	    run->nconns, run->nrcpts, report_highs(run));
	if (run->fatal[0] != '\0') {
		fputs("<p class=\"error\">Could not run: ", out);
		html_cstr(out, run->fatal);
		fputs("</p>\n", out);
	}
	fputs("<table><tr><th>Finding</th><th>Verdict</th><th>Severity</th>"
	    "<th>Summary</th></tr>\n", out);
	for (i = 0; i < run->nf; i++) {
		f = &run->f[i];
		fprintf(out, "<tr class=\"%s\"><td><a href=\"#%s\">%s</a></td>"
		    "<td>%s</td><td>%s</td><td>", html_class(f, cls,
		    sizeof(cls)), f->id, f->id, verdict_words[f->verdict],
		    report_sev(f));
		html_cstr(out, f->summary);
		fputs("</td></tr>\n", out);
	}
	fputs("</table>\n", out);
	for (i = 0; i < run->nf; i++)
		html_finding(out, &run->f[i], run->mta);
	fputs("</body></html>\n", out);
	e = ferror(out);
	if (fclose(out) != 0 || e) {
		errno = errno ? errno : EIO;
		return -1;
	}
	return 0;
}
