/*
 * test_dir.c - the recipient directory: users-file parser and loader,
 * lookups (case, delimiter, bounds), bad files, refcounting; UTF-8
 * entries and queries compared in NFC (RFC 6531 3.3).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dir/dir.h"
#include "dir/dir_file.h"

#define ERRS_MAX	64

/* What the loader reported. */
struct errs {
	unsigned	n;
	unsigned	line[ERRS_MAX];
	char		msg[ERRS_MAX][600];
	char		file[ERRS_MAX][256];
};

static void
errs_note(void *arg, const char *file, unsigned line, const char *msg)
{
	struct errs	*e = arg;

	if (e->n < ERRS_MAX) {
		e->line[e->n] = line;
		(void)snprintf(e->msg[e->n], sizeof(e->msg[0]), "%s", msg);
		(void)snprintf(e->file[e->n], sizeof(e->file[0]), "%s", file);
	}
	e->n++;
}

/* A temp users file holding text; the caller unlinks path. */
static void
file_make(char *path, size_t size, const char *text)
{
	FILE	*fp;
	int	 fd;

	(void)snprintf(path, size, "/tmp/test_dir.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd != -1);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
	assert_int_equal(fclose(fp), 0);
}

static struct dir *
dir_from_text(const char *text, bool local_case, struct errs *e)
{
	struct config	 cfg;
	struct dir	*d;
	char		 path[64];

	memset(&cfg, 0, sizeof(cfg));
	file_make(path, sizeof(path), text);
	cfg.directory.kind = DIR_KIND_FILE;
	cfg.directory.path = path;
	cfg.localpart_case_sensitive = local_case;
	d = dir_open(&cfg, errs_note, e);
	(void)unlink(path);
	return d;
}

static enum dir_verdict
lookup(struct dir *d, const char *local, const char *domain,
    const char *delim)
{
	struct dir_query	q = { local, strlen(local), domain,
				    strlen(domain), delim };

	return dir_lookup(d, &q, 1, NULL, NULL);
}

/* --- the line parser ----------------------------------------------- */

struct parse_case {
	const char	*line;
	enum parse_rc	 rc;
	bool		 empty;
	const char	*local;		/* PARSE_OK and not empty */
	const char	*domain;
};

static const struct parse_case parse_cases[] = {
	{ "alice@example.org", PARSE_OK, false, "alice", "example.org" },
	{ "  alice@example.org \t", PARSE_OK, false, "alice", "example.org" },
	{ "Alice@Example.ORG.\r", PARSE_OK, false, "Alice", "Example.ORG" },
	{ "a.b.c@x", PARSE_OK, false, "a.b.c", "x" },
	{ "!#$%&'*+-/=?^_`{|}~@x-1.y2.org", PARSE_OK, false,
	    "!#$%&'*+-/=?^_`{|}~", "x-1.y2.org" },
	{ "", PARSE_OK, true, NULL, NULL },
	{ " \t ", PARSE_OK, true, NULL, NULL },
	{ "# a comment", PARSE_OK, true, NULL, NULL },
	{ "   #x@", PARSE_OK, true, NULL, NULL },
	{ "x@", PARSE_BAD, false, NULL, NULL },
	{ "@example.org", PARSE_BAD, false, NULL, NULL },
	{ "alice", PARSE_BAD, false, NULL, NULL },
	{ "a..b@x.org", PARSE_BAD, false, NULL, NULL },
	{ ".a@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a.@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a b@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a@b@x.org", PARSE_BAD, false, NULL, NULL },
	{ "\"a b\"@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a,b@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a@-x.org", PARSE_BAD, false, NULL, NULL },
	{ "a@x-.org", PARSE_BAD, false, NULL, NULL },
	{ "a@x..org", PARSE_BAD, false, NULL, NULL },
	{ "a@x.org..", PARSE_BAD, false, NULL, NULL },
	{ "a@.", PARSE_BAD, false, NULL, NULL },
	{ "a@.x.org", PARSE_BAD, false, NULL, NULL },
	{ "a@x_y.org", PARSE_BAD, false, NULL, NULL },
	{ "a@[192.0.2.1]", PARSE_BAD, false, NULL, NULL },
	{ "\xc3\xa9@x.org", PARSE_OK, false, "\xc3\xa9", "x.org" },
	{ "jos\xc3\xa9@b\xc3\xbc" "cher.test", PARSE_OK, false, "jos\xc3\xa9",
	    "b\xc3\xbc" "cher.test" },
	{ "\xe9@x.org", PARSE_BAD, false, NULL, NULL },
	{ "\xc0\xa9@x.org", PARSE_BAD, false, NULL, NULL },
	{ "\xed\xa0\x80@x.org", PARSE_BAD, false, NULL, NULL },
	{ "\xc2\x85@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a\xc3@x.org", PARSE_BAD, false, NULL, NULL },
	{ "a@x\xff.org", PARSE_BAD, false, NULL, NULL },
	{ "a@\xc3\xa9-.org", PARSE_BAD, false, NULL, NULL },
	{ "a@x.org # trailing comment", PARSE_BAD, false, NULL, NULL },
};

static void
test_parse_table(void **state)
{
	struct dir_file_line	 ln;
	const struct parse_case	*c;
	enum parse_rc		 rc;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		c = &parse_cases[i];
		rc = dir_file_parse_line((const uint8_t *)c->line,
		    strlen(c->line), &ln);
		print_message("case %zu: '%s'\n", i, c->line);
		assert_int_equal(rc, c->rc);
		if (rc != PARSE_OK) {
			assert_non_null(ln.why);
			continue;
		}
		assert_int_equal(ln.empty, c->empty);
		if (c->empty)
			continue;
		assert_int_equal(ln.llen, strlen(c->local));
		assert_memory_equal(c->line + ln.loff, c->local, ln.llen);
		assert_int_equal(ln.dlen, strlen(c->domain));
		assert_memory_equal(c->line + ln.doff, c->domain, ln.dlen);
	}
}

/* Bounds: local 64, label 63, domain 255, line 1024; a NUL inside. */
static void
test_parse_bounds(void **state)
{
	struct dir_file_line	ln;
	char			line[DIR_FILE_LINE_MAX + 2];
	size_t			n;

	(void)state;
	memset(line, 'a', 64);
	memcpy(line + 64, "@x.org", 6);
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 70, &ln),
	    PARSE_OK);
	memset(line, 'a', 65);
	memcpy(line + 65, "@x.org", 6);
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 71, &ln),
	    PARSE_BAD);

	memcpy(line, "a@", 2);
	memset(line + 2, 'b', 63);
	memcpy(line + 65, ".org", 4);
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 69, &ln),
	    PARSE_OK);
	memset(line + 2, 'b', 64);
	memcpy(line + 66, ".org", 4);
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 70, &ln),
	    PARSE_BAD);

	/* Domains of 255 octets (4 labels of 63) and 256 ("...c.cc"). */
	memcpy(line, "a@", 2);
	for (n = 0; n < 4; n++) {
		memset(line + 2 + n * 64, 'c', 63);
		line[2 + n * 64 + 63] = '.';
	}
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 2 + 255, &ln),
	    PARSE_OK);
	assert_int_equal(ln.dlen, 255);
	/* ... and 255 plus the trailing dot is fine ... */
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 2 + 256, &ln),
	    PARSE_OK);
	assert_int_equal(ln.dlen, 255);
	/* ... but 256 is not. */
	memcpy(line + 2 + 253, ".cc", 3);
	assert_int_equal(dir_file_parse_line((uint8_t *)line, 2 + 256, &ln),
	    PARSE_BAD);
	assert_non_null(strstr(ln.why, "255"));

	memset(line, ' ', sizeof(line));
	memcpy(line, "a@x.org", 7);
	assert_int_equal(dir_file_parse_line((uint8_t *)line,
	    DIR_FILE_LINE_MAX, &ln), PARSE_OK);
	assert_int_equal(dir_file_parse_line((uint8_t *)line,
	    DIR_FILE_LINE_MAX + 1, &ln), PARSE_TOOLONG);

	assert_int_equal(dir_file_parse_line((const uint8_t *)"a\0b@x.org", 9,
	    &ln), PARSE_BAD);
	assert_int_equal(dir_file_parse_line((const uint8_t *)"a@x\0.org", 8,
	    &ln), PARSE_BAD);
}

/* --- lookups ------------------------------------------------------- */

static const char users[] =
    "# our users\n"
    "\n"
    "Alice@Example.ORG\n"
    "   bob@example.org\t\n"
    "  # carol moved\n"
    "carol@sub.example.org.\r\n"
    "+plus@example.org\n"
    "a-b@example.org\n"
    "CamelCase@example.org\n"
    "x@example.net";			/* no final newline */

struct lookup_case {
	bool			 local_case;
	const char		*local;
	const char		*domain;
	const char		*delim;
	enum dir_verdict	 want;
};

static const struct lookup_case lookup_cases[] = {
	{ false, "alice", "example.org", "", DIR_VALID },
	{ false, "ALICE", "EXAMPLE.ORG", "", DIR_VALID },
	{ false, "Alice", "example.org.", "", DIR_VALID },
	{ false, "bob", "example.org", NULL, DIR_VALID },
	{ false, "carol", "SUB.example.org", "", DIR_VALID },
	{ false, "carol", "example.org", "", DIR_UNKNOWN },
	{ false, "x", "example.net", "", DIR_VALID },
	{ false, "camelcase", "example.org", "", DIR_VALID },
	{ false, "dave", "example.org", "+", DIR_UNKNOWN },
	{ false, "alice", "example.com", "+", DIR_UNKNOWN },
	/* The recipient delimiter. */
	{ false, "alice+news", "example.org", "+", DIR_VALID },
	{ false, "Alice+News", "example.org", "+", DIR_VALID },
	{ false, "alice+news", "example.org", "", DIR_UNKNOWN },
	{ false, "alice+news", "example.org", NULL, DIR_UNKNOWN },
	{ false, "alice+news", "example.org", "-", DIR_UNKNOWN },
	{ false, "alice-news", "example.org", "+-", DIR_VALID },
	{ false, "alice-x+y", "example.org", "+-", DIR_VALID },
	{ false, "alice+", "example.org", "+", DIR_VALID },
	{ false, "+alice", "example.org", "+", DIR_UNKNOWN },
	{ false, "+plus", "example.org", "+", DIR_VALID },
	{ false, "+", "example.org", "+", DIR_UNKNOWN },
	{ false, "a-b", "example.org", "-", DIR_VALID },
	{ false, "a-b+x", "example.org", "+", DIR_VALID },
	{ false, "a-c", "example.org", "-", DIR_UNKNOWN },
	{ false, "dave+alice", "example.org", "+", DIR_UNKNOWN },
	/* Not Dot-string text, or over RFC 5321's sizes: no match. */
	{ false, "a b", "example.org", "", DIR_UNKNOWN },
	{ false, "alice@example.org", "example.org", "", DIR_UNKNOWN },
	{ false, "", "example.org", "", DIR_UNKNOWN },
	{ false, "alice", "", "", DIR_UNKNOWN },
	{ false, "alice", ".", "", DIR_UNKNOWN },
	/* Case-sensitive local parts; domains are folded all the same. */
	{ true, "Alice", "example.org", "", DIR_VALID },
	{ true, "Alice", "EXAMPLE.ORG", "", DIR_VALID },
	{ true, "alice", "example.org", "", DIR_UNKNOWN },
	{ true, "ALICE", "example.org", "", DIR_UNKNOWN },
	{ true, "CamelCase", "example.org", "", DIR_VALID },
	{ true, "camelcase", "example.org", "", DIR_UNKNOWN },
	{ true, "Alice+x", "example.org", "+", DIR_VALID },
	{ true, "alice+x", "example.org", "+", DIR_UNKNOWN },
	{ true, "bob", "Example.Org", "", DIR_VALID },
};

static void
test_lookup_table(void **state)
{
	const struct lookup_case	*c;
	struct dir			*d[2];
	struct errs			 e;
	size_t				 i;

	(void)state;
	memset(&e, 0, sizeof(e));
	d[0] = dir_from_text(users, false, &e);
	d[1] = dir_from_text(users, true, &e);
	assert_int_equal(e.n, 0);
	assert_non_null(d[0]);
	assert_non_null(d[1]);
	assert_int_equal(dir_count(d[0]), 7);
	assert_int_equal(dir_count(d[1]), 7);
	for (i = 0; i < sizeof(lookup_cases) / sizeof(lookup_cases[0]); i++) {
		c = &lookup_cases[i];
		print_message("case %zu: %s@%s delim '%s' %s\n", i, c->local,
		    c->domain, c->delim ? c->delim : "(null)",
		    c->local_case ? "case-sensitive" : "folded");
		assert_string_equal(dir_verdict_name(lookup(d[c->local_case],
		    c->local, c->domain, c->delim)),
		    dir_verdict_name(c->want));
	}
	dir_unref(d[0]);
	dir_unref(d[1]);
}

/* Queries longer than RFC 5321 allows never match (and never overflow). */
static void
test_lookup_long(void **state)
{
	struct dir	*d;
	struct errs	 e;
	char		 local[200], domain[600], text[400];

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(local, 'a', 64);
	local[64] = '\0';
	(void)snprintf(text, sizeof(text), "%s@x.org\n", local);
	d = dir_from_text(text, false, &e);
	assert_non_null(d);
	assert_int_equal(lookup(d, local, "x.org", ""), DIR_VALID);
	memset(local, 'a', sizeof(local) - 1);
	local[sizeof(local) - 1] = '\0';
	assert_int_equal(lookup(d, local, "x.org", ""), DIR_UNKNOWN);
	local[65] = '\0';
	assert_int_equal(lookup(d, local, "x.org", ""), DIR_UNKNOWN);
	/* A long local part whose prefix before '+' is known. */
	local[64] = '+';
	assert_int_equal(lookup(d, local, "x.org", "+"), DIR_UNKNOWN);
	memset(domain, 'b', sizeof(domain) - 1);
	domain[sizeof(domain) - 1] = '\0';
	assert_int_equal(lookup(d, "a", domain, ""), DIR_UNKNOWN);
	domain[256] = '\0';
	assert_int_equal(lookup(d, "a", domain, ""), DIR_UNKNOWN);
	dir_unref(d);
}

/* --- loading ------------------------------------------------------- */

struct bad_case {
	const char	*text;
	unsigned	 nerr;
	unsigned	 lines[4];
	const char	*first;		/* substring of the first message */
};

static const struct bad_case bad_cases[] = {
	{ "a@x.org\nx@\nb@x.org\n", 1, { 2 }, "bad address 'x@'" },
	{ "# c\n\na@x.org\nno-at\n\nb@x.org\nc@-x.org\n", 2, { 4, 7 },
	    "no '@'" },
	{ "a..b@x.org", 1, { 1 }, "two dots" },
	{ "a@x.org\n\n\n\n\n\nz@\n", 1, { 7 }, "line 7" },
	{ "\n\xff@x.org\r\n", 1, { 2 }, "bad address '\\xff@x.org\\x0d'" },
};

static void
test_bad_lines(void **state)
{
	const struct bad_case	*c;
	struct dir		*d;
	struct errs		 e;
	char			 msg[700];
	size_t			 i, j;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		c = &bad_cases[i];
		print_message("case %zu\n", i);
		memset(&e, 0, sizeof(e));
		d = dir_from_text(c->text, false, &e);
		assert_null(d);
		assert_int_equal(e.n, c->nerr);
		for (j = 0; j < c->nerr; j++)
			assert_int_equal(e.line[j], c->lines[j]);
		(void)snprintf(msg, sizeof(msg), "line %u: %s", e.line[0],
		    e.msg[0]);
		assert_non_null(strstr(msg, c->first));
		assert_non_null(strstr(e.file[0], "/tmp/test_dir."));
	}
}

/* Past DIR_FILE_ERRORS_MAX bad lines, one line tells how many more. */
static void
test_bad_lines_capped(void **state)
{
	struct errs	 e;
	char		 text[4096], long_line[DIR_FILE_LINE_MAX + 2];
	size_t		 o = 0, i;

	(void)state;
	memset(&e, 0, sizeof(e));
	for (i = 0; i < 25; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		    "ok%zu@x.org\nbad%zu@\n", i, i);
	assert_null(dir_file_load_mem(text, o, "users", false, errs_note,
	    &e));
	assert_int_equal(e.n, DIR_FILE_ERRORS_MAX + 1);
	for (i = 0; i < DIR_FILE_ERRORS_MAX; i++)
		assert_int_equal(e.line[i], 2 * i + 2);
	assert_int_equal(e.line[DIR_FILE_ERRORS_MAX], 0);
	assert_non_null(strstr(e.msg[DIR_FILE_ERRORS_MAX], "5 more"));
	assert_string_equal(e.file[0], "users");

	memset(&e, 0, sizeof(e));
	memset(long_line, 'a', sizeof(long_line));
	long_line[DIR_FILE_LINE_MAX + 1] = '\n';
	assert_null(dir_file_load_mem(long_line, sizeof(long_line), "users",
	    false, errs_note, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 1);
	assert_non_null(strstr(e.msg[0], "1024"));
}

static void
test_missing_file(void **state)
{
	struct config	 cfg;
	struct errs	 e;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&e, 0, sizeof(e));
	cfg.directory.kind = DIR_KIND_FILE;
	cfg.directory.path = "/nonexistent/mxgate-users";
	assert_null(dir_open(&cfg, errs_note, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 0);
	assert_string_equal(e.file[0], "/nonexistent/mxgate-users");
	assert_non_null(strstr(e.msg[0], "No such file"));

	memset(&e, 0, sizeof(e));
	cfg.directory.path = "/tmp";		/* a folder: read fails */
	assert_null(dir_open(&cfg, errs_note, &e));
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 0);

	memset(&e, 0, sizeof(e));
	assert_null(dir_open(NULL, errs_note, &e));
	assert_int_equal(e.n, 1);
	assert_null(dir_open(NULL, NULL, NULL));	/* no callback: fine */
}

struct count_case {
	const char	*text;
	bool		 local_case;
	size_t		 count;
};

static const struct count_case count_cases[] = {
	{ "", false, 0 },
	{ "\n\n# nothing\n   \n", false, 0 },
	{ "a@x.org\nA@X.ORG\n a@x.org.\na@x.org\n", false, 1 },
	{ "a@x.org\nA@x.org\na@X.org\nA@X.org.\n", true, 2 },
	{ "a@x.org\nb@x.org\na@y.org\n", false, 3 },
	{ "a@x.org\r\nb@x.org\r\n", false, 2 },
};

static void
test_count_dedup(void **state)
{
	const struct count_case	*c;
	struct dir_file		*f;
	struct errs		 e;
	size_t			 i;

	(void)state;
	for (i = 0; i < sizeof(count_cases) / sizeof(count_cases[0]); i++) {
		c = &count_cases[i];
		memset(&e, 0, sizeof(e));
		f = dir_file_load_mem(c->text, strlen(c->text), "users",
		    c->local_case, errs_note, &e);
		print_message("case %zu\n", i);
		assert_non_null(f);
		assert_int_equal(e.n, 0);
		assert_int_equal(dir_file_count(f), c->count);
		assert_int_equal(dir_file_local_case(f), c->local_case);
		dir_file_free(f);
	}
	assert_false(dir_file_has(NULL, (const uint8_t *)"a@x.org", 7));
	assert_int_equal(dir_file_count(NULL), 0);
}

/*
 * UTF-8: the users file lists josé once, in NFC or in NFD; a query in
 * either form finds it (NFC on both sides), ASCII letters fold as ever,
 * other letters do not, the domain folds (U-labels), the delimiter
 * still cuts, and invalid UTF-8 in a query matches nothing.
 */
#define JOSE_NFC	"jos\xc3\xa9"
#define JOSE_NFD	"jose\xcc\x81"

static void
test_utf8_nfc(void **state)
{
	static const char *const files[] = {
		"alice@x.org\n" JOSE_NFC "@x.org\n\xc3\xa5sa@b\xc3\xbc" "cher.test\n",
		"alice@x.org\n" JOSE_NFD "@x.org\na\xcc\x8asa@B\xc3\x9c" "CHER.test\n",
	};
	struct dir	*d;
	struct errs	 e;
	size_t		 i;

	(void)state;
	for (i = 0; i < 2; i++) {
		print_message("file %zu\n", i);
		memset(&e, 0, sizeof(e));
		d = dir_from_text(files[i], false, &e);
		assert_int_equal(e.n, 0);
		assert_non_null(d);
		assert_int_equal(dir_count(d), 3);
		assert_int_equal(lookup(d, JOSE_NFC, "x.org", "+"), DIR_VALID);
		assert_int_equal(lookup(d, JOSE_NFD, "x.org", "+"), DIR_VALID);
		assert_int_equal(lookup(d, "JOS\xc3\xa9", "X.ORG", "+"),
		    DIR_VALID);
		assert_int_equal(lookup(d, JOSE_NFD "+tag", "x.org", "+"),
		    DIR_VALID);
		/* É is not é: only ASCII letters fold in local parts */
		assert_int_equal(lookup(d, "jos\xc3\x89", "x.org", "+"),
		    DIR_UNKNOWN);
		assert_int_equal(lookup(d, "jose", "x.org", "+"), DIR_UNKNOWN);
		assert_int_equal(lookup(d, "jos\xe9", "x.org", "+"),
		    DIR_UNKNOWN);
		assert_int_equal(lookup(d, "\xc3\xa5sa", "b\xc3\xbc" "cher.test",
		    ""), DIR_VALID);
		assert_int_equal(lookup(d, "a\xcc\x8asa", "B\xc3\x9c" "cher.test",
		    ""), DIR_VALID);
		assert_int_equal(lookup(d, "\xc3\xa5sa", "bucher.test", ""),
		    DIR_UNKNOWN);
		dir_unref(d);
	}
	/* one name in both forms is one entry */
	memset(&e, 0, sizeof(e));
	d = dir_from_text(JOSE_NFC "@x.org\n" JOSE_NFD "@x.org\n", false, &e);
	assert_non_null(d);
	assert_int_equal(dir_count(d), 1);
	dir_unref(d);
	/* bad UTF-8 in the file: the line is reported */
	memset(&e, 0, sizeof(e));
	d = dir_from_text("alice@x.org\njos\xe9@x.org\n", false, &e);
	assert_null(d);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.line[0], 2);
	assert_non_null(strstr(e.msg[0], "bad UTF-8"));
	/* U+0958 is longer in NFC (a composition exclusion): refused, so
	 * that no entry is stored in a form the file does not show */
	memset(&e, 0, sizeof(e));
	d = dir_from_text("\xe0\xa5\x98@x.org\n", false, &e);
	assert_null(d);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msg[0], "longer in NFC"));
	memset(&e, 0, sizeof(e));
	d = dir_from_text("\xe0\xa4\x95\xe0\xa4\xbc@x.org\n", false, &e);
	assert_non_null(d);
	assert_int_equal(lookup(d, "\xe0\xa5\x98", "x.org", ""), DIR_VALID);
	dir_unref(d);
}

/* Many keys: every one found, near misses not (probing, growth). */
static void
test_many_keys(void **state)
{
	struct dir_file	*f;
	char		*text, key[64];
	size_t		 n = 200000, o = 0, i, cap = n * 40;
	int		 k;

	(void)state;
	text = malloc(cap);
	assert_non_null(text);
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(text + o, cap - o,
		    "User%zu@Dom%zu.example\n", i, i % 97);
	f = dir_file_load_mem(text, o, "many", false, NULL, NULL);
	assert_non_null(f);
	assert_int_equal(dir_file_count(f), n);
	for (i = 0; i < n; i++) {
		k = snprintf(key, sizeof(key), "user%zu@dom%zu.example", i,
		    i % 97);
		if (!dir_file_has(f, (uint8_t *)key, (size_t)k))
			fail_msg("missing %s", key);
		k = snprintf(key, sizeof(key), "user%zu@dom%zu.example", i,
		    (i + 1) % 97);
		if (dir_file_has(f, (uint8_t *)key, (size_t)k))
			fail_msg("unexpected %s", key);
	}
	dir_file_free(f);
	free(text);
}

/* --- the handle ---------------------------------------------------- */

static void
test_null_dir(void **state)
{
	(void)state;
	assert_int_equal(lookup(NULL, "alice", "example.org", "+"),
	    DIR_TEMPFAIL);
	assert_int_equal(dir_count(NULL), 0);
	assert_null(dir_ref(NULL));
	dir_unref(NULL);
}

/* The last unref frees (LeakSanitizer checks); until then it answers. */
static void
test_refcount(void **state)
{
	struct dir	*d;
	struct errs	 e;

	(void)state;
	memset(&e, 0, sizeof(e));
	d = dir_from_text("alice@example.org\n", false, &e);
	assert_non_null(d);
	assert_ptr_equal(dir_ref(d), d);
	assert_ptr_equal(dir_ref(d), d);
	dir_unref(d);
	dir_unref(d);
	assert_int_equal(lookup(d, "alice", "example.org", ""), DIR_VALID);
	assert_int_equal(dir_count(d), 1);
	dir_unref(d);
}

static void
test_verdict_names(void **state)
{
	(void)state;
	assert_string_equal(dir_verdict_name(DIR_VALID), "valid");
	assert_string_equal(dir_verdict_name(DIR_UNKNOWN), "unknown");
	assert_string_equal(dir_verdict_name(DIR_TEMPFAIL), "tempfail");
	assert_string_equal(dir_verdict_name(DIR_PENDING), "pending");
	assert_string_equal(dir_verdict_name((enum dir_verdict)99),
	    "invalid");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_bounds),
		cmocka_unit_test(test_lookup_table),
		cmocka_unit_test(test_lookup_long),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_bad_lines_capped),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_count_dedup),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_utf8_nfc),
		cmocka_unit_test(test_null_dir),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_verdict_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
