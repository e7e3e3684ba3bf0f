/*
 * probe.h - `mxgate probe`, the assessor's audit of any SMTP server.
 * Owns: the run's options, the connection core (probe_conn.c), findings
 * and their report (probe_report.c); one file per family of findings.
 * Never: the server side (src/smtp/), DATA to an address outside the
 * tested domain, an unbounded wait or read.
 * Untrusted: every byte the server sends.  RFC 5321, 3207, 2920.
 *
 * Synchronous by design: one connection at a time, poll(2) with a
 * deadline for every wait.  It is a command-line tool, not the gateway's
 * event loop, and one connection at a time is also the polite choice.
 */
#ifndef MXGATE_PROBE_H
#define MXGATE_PROBE_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../deliver/client.h"
#include "../lib/buf.h"
#include "../lib/parse.h"

#define PROBE_KNOWN_MAX		16	/* --known */
#define PROBE_SOURCE_MAX	8	/* --source */
#define PROBE_CONN_MAX		60	/* connections in one run */
#define PROBE_LINE_MAX		4096	/* a reply line we read (RFC: 512) */
#define PROBE_REPLY_LINES_MAX	100	/* lines in one reply */
#define PROBE_TEXT_MAX		2048	/* reply text kept for findings */
#define PROBE_EVIDENCE_MAX	(24 * 1024)	/* transcript per finding */
#define PROBE_ADDR_MAX		320	/* RFC 5321 4.5.3.1.3: 256 + slack */
#define PROBE_FINDINGS_MAX	16

enum probe_mta {
	PROBE_MTA_UNKNOWN, PROBE_MTA_POSTFIX, PROBE_MTA_EXIM,
	PROBE_MTA_SENDMAIL, PROBE_MTA_OPENSMTPD, PROBE_MTA_EXCHANGE,
	PROBE_MTA_MXGATE,
};

struct probe_opts {
	char			 host[256];
	char			 port[8];
	char			 domain[256];
	const char		*known[PROBE_KNOWN_MAX];
	size_t			 nknown;
	struct sockaddr_storage	 source[PROBE_SOURCE_MAX];
	socklen_t		 sourcelen[PROBE_SOURCE_MAX];
	size_t			 nsource;
	bool			 intrusive, starttls, json;
	unsigned		 rate;		/* commands a second */
	unsigned		 max_rcpt;
	unsigned		 timeout_ms;	/* every single wait */
	char			 ndr_listen[300];	/* "" none */
	char			 ndr_domain[256];	/* sender domain for it */
	const char		*html;		/* file or NULL */
	char			 helo[256];	/* our EHLO name */
};

enum probe_sev { PROBE_SEV_INFO, PROBE_SEV_LOW, PROBE_SEV_MEDIUM,
	PROBE_SEV_HIGH };
enum probe_verdict { PROBE_PASS, PROBE_FAIL, PROBE_INCONCLUSIVE,
	PROBE_NOT_MEASURED, PROBE_ERROR };

struct probe_finding {
	const char		*id;
	const char		*title;
	enum probe_sev		 sev;		/* meaningful when FAIL */
	enum probe_verdict	 verdict;
	char			 summary[512];
	struct buf		 facts;		/* "key: value" lines */
	struct buf		 evidence;	/* "C: ..." / "S: ..." lines */
	const char		*fix;		/* generic */
	char			 fix_mta[768];	/* for the identified MTA */
};

struct probe_reply {
	unsigned	code;		/* 0: none (see probe_conn.err) */
	char		esc[12];
	unsigned	ext;		/* CLIENT_EXT_* from EHLO */
	unsigned	nlines;
	char		text[PROBE_TEXT_MAX];	/* all lines, '\n' between */
	int64_t		ms;		/* from the command to the reply */
	struct client_reply cr;	/* the parser's state */
};

struct probe_run;

struct probe_conn {
	int			 fd;
	void			*ssl;		/* SSL * after STARTTLS */
	struct probe_run	*run;
	struct buf		*tr;		/* transcript, or NULL */
	uint8_t			 in[PROBE_LINE_MAX + 2];
	size_t			 inlen;
	struct probe_reply	 greeting, ehlo, r;
	char			 err[256];	/* why the last call failed */
	bool			 dead;		/* closed or unusable */
	bool			 quit_sent;
};

struct probe_run {
	struct probe_opts	 o;
	struct probe_finding	 f[PROBE_FINDINGS_MAX];
	size_t			 nf;
	unsigned		 nconns;
	unsigned		 nrcpts;
	unsigned		 ncmds;
	int64_t			 min_reply_ms;	/* fastest reply (-1: none yet) */
	int64_t			 last_cmd_ms;
	int64_t			 started_ms;
	enum probe_mta		 mta;
	char			 mta_text[128];	/* what identified it */
	char			 fatal[512];	/* "": ran */
	unsigned		 src_next;	/* round robin over --source */
	uint64_t		 rnd;		/* invented names */
};

/* probe_main.c */
int	probe_main(int argc, char **argv);
int	probe_parse_args(int argc, char **argv, struct probe_opts *,
	    char *err, size_t errlen);
int64_t	probe_now_ms(void);
const char *probe_mta_name(enum probe_mta);
void	probe_invent(struct probe_run *, char *out, size_t outlen);
struct probe_finding *probe_finding_add(struct probe_run *, const char *id,
	    const char *title);
void	probe_finding_set(struct probe_finding *, enum probe_verdict,
	    enum probe_sev, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
void	probe_fact(struct probe_finding *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
struct probe_finding *probe_finding_find(struct probe_run *, const char *);
/* The concrete fix for the identified MTA: fixes[] has one entry per
 * enum probe_mta (NULL: none known). */
void	probe_fix(struct probe_finding *, const struct probe_run *,
	    const char *generic, const char *const fixes[]);
#define PROBE_MTA_N	7

/* probe_conn.c */
int	probe_conn_open(struct probe_conn *, struct probe_run *,
	    struct buf *tr);
int	probe_conn_ehlo(struct probe_conn *);
int	probe_cmd(struct probe_conn *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
int	probe_send_raw(struct probe_conn *, const void *, size_t,
	    const char *shown);
int	probe_read_reply(struct probe_conn *, struct probe_reply *);
/* version: 0 any, else TLS1_VERSION... exactly that one */
int	probe_conn_starttls(struct probe_conn *, int version);
int	probe_conn_starttls_after(struct probe_conn *, int version);
void	probe_conn_close(struct probe_conn *);
void	probe_note(struct buf *tr, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * The pure line framer (probe_line.c): the next line of in[0..len) that
 * ends in LF (a CR before it is dropped).  PARSE_OK: *linelen bytes of
 * line, *used bytes to consume; PARSE_MORE: no LF yet; PARSE_TOOLONG: no
 * LF within max bytes.  The reply accumulator feeds lines one by one.
 */
enum parse_rc	probe_line_next(const uint8_t *in, size_t len, size_t max,
		    size_t *linelen, size_t *used);
void		probe_reply_init(struct probe_reply *);
enum parse_rc	probe_reply_line(struct probe_reply *, const char *, size_t);
void		probe_escape(struct buf *, const char *, size_t);

/* Families of findings. */
void	probe_info_run(struct probe_run *);	/* banner-leak, vrfy-expn */
void	probe_relay_run(struct probe_run *);	/* open-relay, null-sender */
void	probe_rcpt_run(struct probe_run *);	/* unknown-recipient, harvest, timing-oracle */
void	probe_tls_run(struct probe_run *);	/* starttls */
void	probe_smuggle_run(struct probe_run *);	/* smuggling */
void	probe_rcpt_ndr(struct probe_run *, struct probe_finding *);
double	probe_ks_pvalue(const double *, size_t, const double *, size_t,
	    double *d);

/* probe_report.c */
void	probe_report_text(const struct probe_run *, FILE *);
void	probe_report_json(const struct probe_run *, FILE *);
int	probe_report_html(const struct probe_run *, const char *path);

#endif
