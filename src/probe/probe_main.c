/*
 * probe_main.c - `mxgate probe`: arguments, the order of the families of
 * findings, the exit status (0 no high finding, 1 a high one, 2 could not
 * run).
 * Owns: struct probe_run, invented names, identifying the MTA.
 * Never: speaks SMTP itself (probe_conn.c and the families do).
 * Untrusted: argv.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "probe.h"

#define PROBE_RATE_DEFAULT	5
#define PROBE_MAX_RCPT_DEFAULT	200
#define PROBE_TIMEOUT_DEFAULT	30000	/* ms */
#define PROBE_FACTS_MAX		4096

static const char usage_text[] =
    "usage: mxgate probe HOST[:PORT] --domain DOMAIN [--known ADDR]... "
    "[--intrusive]\n"
    "             [--source IP]... [--rate N/s] [--max-rcpt N] "
    "[--timeout DUR]\n"
    "             [--starttls] [--ndr-listen IP:PORT] [--ndr-domain D] "
    "[--json]\n"
    "             [--html FILE]\n";

static const char *const mta_names[] = {
	[PROBE_MTA_UNKNOWN] = "unknown", [PROBE_MTA_POSTFIX] = "Postfix",
	[PROBE_MTA_EXIM] = "Exim", [PROBE_MTA_SENDMAIL] = "Sendmail",
	[PROBE_MTA_OPENSMTPD] = "OpenSMTPD",
	[PROBE_MTA_EXCHANGE] = "Exchange", [PROBE_MTA_MXGATE] = "mxgate",
};

const char *
probe_mta_name(enum probe_mta m)
{
	return mta_names[m];
}

static int
args_uint(const char *s, unsigned long max, unsigned *out)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || v == 0 || v > max)
		return -1;
	if (*end != '\0' && strcmp(end, "/s") != 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* "30", "30s", "500ms", "2m": into ms; 100 ms to 10 min. */
static int
args_duration(const char *s, unsigned *ms)
{
	char		*end;
	unsigned long	 v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || v > 600000)
		return -1;
	if (strcmp(end, "ms") == 0)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		v *= 1000;
	else if (strcmp(end, "m") == 0)
		v *= 60000;
	else
		return -1;
	if (v < 100 || v > 600000)
		return -1;
	*ms = (unsigned)v;
	return 0;
}

/* HOST, HOST:PORT, [V6], [V6]:PORT. */
static int
args_host(const char *s, struct probe_opts *o)
{
	const char	*colon, *end;
	size_t		 hl;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return -1;
		hl = (size_t)(end - s - 1);
		s++;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strrchr(s, ':');
		if (colon != NULL && strchr(s, ':') != colon)
			colon = NULL;		/* a bare IPv6 address */
		hl = colon != NULL ? (size_t)(colon - s) : strlen(s);
	}
	if (hl == 0 || hl >= sizeof(o->host))
		return -1;
	memcpy(o->host, s, hl);
	o->host[hl] = '\0';
	if (colon != NULL) {
		unsigned p;
		if (args_uint(colon + 1, 65535, &p) == -1)
			return -1;
		snprintf(o->port, sizeof(o->port), "%u", p);
	}
	return 0;
}

static int
args_source(const char *s, struct probe_opts *o)
{
	struct sockaddr_in	*s4;
	struct sockaddr_in6	*s6;
	size_t			 i = o->nsource;

	if (i >= PROBE_SOURCE_MAX)
		return -1;
	memset(&o->source[i], 0, sizeof(o->source[i]));
	s4 = (struct sockaddr_in *)&o->source[i];
	s6 = (struct sockaddr_in6 *)&o->source[i];
	if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		o->sourcelen[i] = sizeof(*s4);
	} else if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		o->sourcelen[i] = sizeof(*s6);
	} else
		return -1;
	o->nsource++;
	return 0;
}

static bool
args_addr_ok(const char *a)
{
	const char	*at = strrchr(a, '@');
	size_t		 i;

	if (at == NULL || at == a || at[1] == '\0' ||
	    strlen(a) >= PROBE_ADDR_MAX - 2)
		return false;
	for (i = 0; a[i] != '\0'; i++)
		if ((unsigned char)a[i] <= ' ' || a[i] == '<' || a[i] == '>' ||
		    (unsigned char)a[i] >= 0x7f)
			return false;
	return true;
}

static int
args_copy(char *dst, size_t dstlen, const char *v)
{
	if (strlen(v) >= dstlen)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int
args_one(struct probe_opts *o, const char *name, const char *v, char *err,
    size_t errlen)
{
	bool	bad = false;

	if (strcmp(name, "--domain") == 0)
		bad = args_copy(o->domain, sizeof(o->domain), v) == -1 ||
		    strchr(v, '@') != NULL || v[0] == '\0';
	else if (strcmp(name, "--known") == 0) {
		if (o->nknown >= PROBE_KNOWN_MAX || !args_addr_ok(v))
			bad = true;
		else
			o->known[o->nknown++] = v;
	} else if (strcmp(name, "--source") == 0)
		bad = args_source(v, o) == -1;
	else if (strcmp(name, "--rate") == 0)
		bad = args_uint(v, 1000, &o->rate) == -1;
	else if (strcmp(name, "--max-rcpt") == 0)
		bad = args_uint(v, 10000, &o->max_rcpt) == -1;
	else if (strcmp(name, "--timeout") == 0)
		bad = args_duration(v, &o->timeout_ms) == -1;
	else if (strcmp(name, "--ndr-listen") == 0)
		bad = args_copy(o->ndr_listen, sizeof(o->ndr_listen), v) ==
		    -1 || strrchr(v, ':') == NULL;
	else if (strcmp(name, "--ndr-domain") == 0)
		bad = args_copy(o->ndr_domain, sizeof(o->ndr_domain), v) == -1;
	else if (strcmp(name, "--html") == 0)
		o->html = v;
	else {
		snprintf(err, errlen, "unknown option %s", name);
		return -1;
	}
	if (bad)
		snprintf(err, errlen, "bad value for %s: %s", name, v);
	return bad ? -1 : 0;
}

int
probe_parse_args(int argc, char **argv, struct probe_opts *o, char *err,
    size_t errlen)
{
	const char	*eq, *v;
	char		 name[32];
	int		 i;
	bool		 host = false;

	memset(o, 0, sizeof(*o));
	memcpy(o->port, "25", 3);
	o->rate = PROBE_RATE_DEFAULT;
	o->max_rcpt = PROBE_MAX_RCPT_DEFAULT;
	o->timeout_ms = PROBE_TIMEOUT_DEFAULT;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--intrusive") == 0)
			o->intrusive = true;
		else if (strcmp(argv[i], "--starttls") == 0)
			o->starttls = true;
		else if (strcmp(argv[i], "--json") == 0)
			o->json = true;
		else if (strncmp(argv[i], "--", 2) == 0) {
			if ((eq = strchr(argv[i], '=')) != NULL) {
				v = eq + 1;
				snprintf(name, sizeof(name), "%.*s",
				    (int)(eq - argv[i]), argv[i]);
			} else if (i + 1 < argc) {
				snprintf(name, sizeof(name), "%s", argv[i]);
				v = argv[++i];
			} else {
				snprintf(err, errlen, "%s needs a value",
				    argv[i]);
				return -1;
			}
			if (args_one(o, name, v, err, errlen) == -1)
				return -1;
		} else if (!host) {
			if (args_host(argv[i], o) == -1) {
				snprintf(err, errlen, "bad HOST[:PORT]: %s",
				    argv[i]);
				return -1;
			}
			host = true;
		} else {
			snprintf(err, errlen, "unexpected argument %s",
			    argv[i]);
			return -1;
		}
	}
	if (!host || o->domain[0] == '\0') {
		snprintf(err, errlen, "%s", !host ? "HOST is required" :
		    "--domain is required");
		return -1;
	}
	if (o->ndr_listen[0] != '\0' && !o->intrusive) {
		snprintf(err, errlen, "--ndr-listen needs --intrusive");
		return -1;
	}
	if (o->ndr_listen[0] != '\0' && o->ndr_domain[0] == '\0') {
		snprintf(err, errlen, "--ndr-listen needs --ndr-domain (the "
		    "sender domain whose MX is the listener)");
		return -1;
	}
	if (gethostname(o->helo, sizeof(o->helo)) != 0 || o->helo[0] == '\0'
	    || strchr(o->helo, '.') == NULL)
		snprintf(o->helo, sizeof(o->helo), "probe.mxgate.invalid");
	return 0;
}

/* "probe-" and 10 letters and digits from xorshift64: never a real name
 * from a list (PATTERNS.md, probe). */
void
probe_invent(struct probe_run *run, char *out, size_t outlen)
{
	static const char	 al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	char			 local[17];
	size_t			 i;

	memcpy(local, "probe-", 6);
	for (i = 6; i < 16; i++) {
		run->rnd ^= run->rnd << 13;
		run->rnd ^= run->rnd >> 7;
		run->rnd ^= run->rnd << 17;
		local[i] = al[run->rnd % (sizeof(al) - 1)];
	}
	local[16] = '\0';
	snprintf(out, outlen, "%s@%s", local, run->o.domain);
}

struct probe_finding *
probe_finding_add(struct probe_run *run, const char *id, const char *title)
{
	struct probe_finding	*f;

	if (run->nf >= PROBE_FINDINGS_MAX)
		abort();		/* a fixed set of findings */
	f = &run->f[run->nf++];
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->title = title;
	f->verdict = PROBE_NOT_MEASURED;
	buf_init(&f->facts, PROBE_FACTS_MAX);
	buf_init(&f->evidence, PROBE_EVIDENCE_MAX);
	return f;
}

void
probe_finding_set(struct probe_finding *f, enum probe_verdict v,
    enum probe_sev sev, const char *fmt, ...)
{
	va_list	ap;

	f->verdict = v;
	f->sev = sev;
	va_start(ap, fmt);
	vsnprintf(f->summary, sizeof(f->summary), fmt, ap);
	va_end(ap);
}

void
probe_fact(struct probe_finding *f, const char *fmt, ...)
{
	va_list	ap;
	char	line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	buf_addf(&f->facts, "%s\n", line);
}

struct probe_finding *
probe_finding_find(struct probe_run *run, const char *id)
{
	size_t	i;

	for (i = 0; i < run->nf; i++)
		if (strcmp(run->f[i].id, id) == 0)
			return &run->f[i];
	return NULL;
}

void
probe_fix(struct probe_finding *f, const struct probe_run *run,
    const char *generic, const char *const fixes[])
{
	f->fix = generic;
	f->fix_mta[0] = '\0';
	if (run->mta != PROBE_MTA_UNKNOWN && fixes[run->mta] != NULL)
		snprintf(f->fix_mta, sizeof(f->fix_mta), "%s",
		    fixes[run->mta]);
}

static void
run_free(struct probe_run *run)
{
	size_t	i;

	for (i = 0; i < run->nf; i++) {
		buf_free(&run->f[i].facts);
		buf_free(&run->f[i].evidence);
	}
}

static int
run_status(const struct probe_run *run)
{
	size_t	i;

	if (run->fatal[0] != '\0')
		return 2;
	for (i = 0; i < run->nf; i++)
		if (run->f[i].verdict == PROBE_FAIL &&
		    run->f[i].sev == PROBE_SEV_HIGH)
			return 1;
	return 0;
}

int
probe_main(int argc, char **argv)
{
	static struct probe_run	 run;	/* large; one per process */
	char			 err[512];
	int			 rc;

	memset(&run, 0, sizeof(run));
	if (argc >= 1 && (strcmp(argv[0], "--help") == 0 ||
	    strcmp(argv[0], "-h") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (probe_parse_args(argc, argv, &run.o, err, sizeof(err)) == -1) {
		fprintf(stderr, "mxgate probe: %s\n%s", err, usage_text);
		return 2;
	}
	/* a server that closes mid-TLS must not kill us with SIGPIPE
	 * (OpenSSL writes with write(2), not send(MSG_NOSIGNAL)) */
	signal(SIGPIPE, SIG_IGN);
	run.started_ms = probe_now_ms();
	run.min_reply_ms = -1;
	run.rnd = (uint64_t)probe_now_ms() * 0x9e3779b97f4a7c15ULL ^
	    (uint64_t)getpid();
	if (run.rnd == 0)
		run.rnd = 1;
	probe_info_run(&run);
	/* smuggling before the RCPT families: their invented names may
	 * put us in a uniform mode that refuses the --known name too */
	if (run.fatal[0] == '\0') {
		probe_smuggle_run(&run);
		probe_relay_run(&run);
		probe_rcpt_run(&run);
		probe_tls_run(&run);
	}
	if (run.o.json)
		probe_report_json(&run, stdout);
	else
		probe_report_text(&run, stdout);
	if (run.o.html != NULL && probe_report_html(&run, run.o.html) == -1) {
		fprintf(stderr, "mxgate probe: cannot write %s: %s\n",
		    run.o.html, strerror(errno));
		if (run.fatal[0] == '\0')
			snprintf(run.fatal, sizeof(run.fatal),
			    "cannot write the HTML report");
	}
	if (run.fatal[0] != '\0')
		fprintf(stderr, "mxgate probe: could not run: %s\n",
		    run.fatal);
	rc = run_status(&run);
	run_free(&run);
	fflush(stdout);
	return rc;
}
