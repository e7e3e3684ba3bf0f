/*
 * smtp_session.h - one inbound SMTP session (see smtp_session.c).
 * The struct is shared by the files of src/smtp/ only: smtp_session.c
 * (lifecycle, input, replies), smtp_cmd.c (the command table),
 * smtp_rcpt.c (the RCPT pipeline), smtp_tx.c (MAIL..DATA..queued),
 * smtp_spf.c (SPF at MAIL FROM), smtp_dkim.c (DKIM at end of data) and
 * smtp_dnsbl.c (DNS lists at connect).
 */
#ifndef MXGATE_SMTP_SESSION_H
#define MXGATE_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <event2/util.h>
#include <netinet/in.h>

#include "../guard/guard.h"
#include "../lib/buf.h"
#include "../lib/log.h"
#include "../obs/obs.h"
#include "../sender/dnsbl.h"
#include "../sender/dkim.h"
#include "../sender/spf.h"
#include "smtp_auth.h"
#include "smtp_data.h"
#include "smtp_hold.h"
#include "smtp_dsn_param.h"
#include "smtp_parse.h"
#include "smtp_reply.h"

#define SMTP_MSGID_MAX	128	/* Message-ID bytes logged; more: cut */
#define SMTP_REPLY_MAX	1024	/* one reply line */

struct worker;
struct config;
struct bufferevent;
struct event;
struct queue_msg;
struct smtp_hold;
struct milter_run;

enum smtp_state {
	ST_PREGREET	= 1 << 0,	/* greeting not sent yet */
	ST_CONNECTED	= 1 << 1,	/* greeted, no HELO/EHLO yet */
	ST_READY	= 1 << 2,	/* HELO/EHLO done, no transaction */
	ST_MAIL		= 1 << 3,	/* MAIL accepted, no recipient yet */
	ST_RCPT		= 1 << 4,	/* at least one recipient accepted */
	ST_DATA		= 1 << 5,	/* reading the message */
	ST_COMMIT	= 1 << 6,	/* waiting for the spool */
	ST_WAIT		= 1 << 8,	/* waiting for a directory answer,
					 * a password check, a tarpit */
	ST_CLOSING	= 1 << 7,	/* last reply queued; closing */
	ST_AUTH		= 1 << 9,	/* AUTH: reading a 334 response */
};

#define ST_ANY	(ST_CONNECTED | ST_READY | ST_MAIL | ST_RCPT)

/* A RCPT whose directory answer is pending. */
struct smtp_rcpt_wait {
	enum smtp_state		 resume;	/* state to go back to */
	const void		*dc;		/* struct domain_conf */
	uint64_t		 arrive_us;	/* command read (the floor) */
	uint64_t		 tarpit_us;	/* tarpit: not before; 0: none */
	uint64_t		 dir_us;	/* directory asked (a pending
						 * answer's time) */
	char			 addr[SMTP_PATH_MAX + 3];	/* "<a@b>" */
	char			 key[SMTP_PATH_MAX + 1];	/* "a@b" */
	unsigned		 dsn_notify;	/* RFC 3461 NOTIFY, 0: none */
	char			 dsn_orcpt[SMTP_DSN_ORCPT_MAX + 1];
	/* the decision line (issue 18) */
	bool			 asked;		/* the directory was asked */
	const char		*would;		/* shadow: what a control
						 * would have done; NULL */
	char			 would_delay[32]; /* " would_delay_ms=N" */
	/* waiting for the milters (issue 16): the decision so far */
	int			 m_action;	/* enum rcpt_action */
	bool			 m_hides;
	bool			 m_hot_discard;
	const char		*m_verdict;
};

/* A BDAT chunk being read (RFC 3030 2): smtp_tx.c. */
struct smtp_chunk {
	bool			 reading;	/* its octets come now */
	bool			 last;		/* BDAT n LAST */
	uint64_t		 len;		/* its chunk-size */
	uint64_t		 left;		/* octets still to read */
	enum reply_id		 refuse;	/* R_NONE, or the answer after */
	enum smtp_state		 resume;	/* the state after a 503 */
};

/* SPF of the transaction's sender: smtp_spf.c. */
struct smtp_spf {
	struct spf_eval		*ev;		/* running, or NULL */
	bool			 checked;	/* out holds a result */
	uint64_t		 start_ms;
	struct spf_outcome	 out;
};

/* DNS lists about the client, at connect: smtp_dnsbl.c. */
struct smtp_dnsbl {
	struct dnsbl_check	*ck;		/* running, or NULL */
	struct event		*timer;		/* dnsbl_timeout */
	struct dnsbl_outcome	*out;		/* NULL: not asked */
	uint64_t		 start_ms;
	bool			 checked;	/* out holds the result */
	bool			 greet_due;	/* the greeting waits for it */
	bool			 listed;	/* score >= dnsbl_threshold */
	bool			 refuse;	/* 554 to the first command */
	bool			 exempt;	/* harvest_exempt_dnswl */
};

/* DKIM of the transaction's message: smtp_dkim.c. */
struct smtp_dkim {
	struct dkim_msg		*m;		/* fed during DATA, or NULL */
	bool			 checked;	/* verified at the end */
	bool			 waiting;	/* ST_WAIT for its keys */
	bool			 sync;		/* no resolver: decided now */
	uint64_t		 start_ms;
};

/* One message transaction, MAIL to the end of DATA. */
struct smtp_tx {
	struct buf		 sender;	/* "" for <> */
	struct buf		 rcpts;		/* queued: "a@b\0c@d\0" */
	size_t			 nqueued;	/* recipients to queue */
	struct buf		 bounced;	/* unknown under bounce: "a@b\0" */
	size_t			 nbounced;
	struct buf		 head;		/* the message's first bytes,
						 * kept for an NDR only */
	size_t			 naccepted;	/* incl. discarded ones */
	/* RFC 3461: RET, ENVID; per queued and per bounced recipient
	 * "NOTIFY-hex ORCPT\0" in the order of rcpts and bounced */
	int			 dsn_ret;	/* QUEUE_DSN_RET_* */
	char			 dsn_envid[SMTP_DSN_ENVID_MAX + 1];
	struct buf		 rcpt_dsn;
	struct buf		 bounced_dsn;
	uint64_t		 size_declared;	/* SIZE=, 0 if none */
	struct queue_msg	*msg;		/* during DATA */
	struct smtp_data	 data;
	uint64_t		 bytes;		/* message bytes seen */
	uint64_t		 hdr_bytes;	/* of the header section */
	unsigned		 line_len;	/* of the current line so far */
	bool			 in_body;	/* past the header section */
	bool			 hdr_too_big;
	bool			 line_too_long;
	bool			 too_big;
	bool			 io_error;
	bool			 bdat;		/* BDAT began: no DATA/RCPT */
	/* The Message-ID header, for the queued line (issue 18): the
	 * start of the current header line, then its value. */
	char			 hline[SMTP_MSGID_MAX + 16];
	unsigned		 hline_len;
	char			 msgid[SMTP_MSGID_MAX + 2];	/* "": none;
					 * one byte more than is logged marks
					 * a longer one ("...") */
	bool			 smtputf8;	/* MAIL ... SMTPUTF8 (RFC 6531) */
	bool			 batv_pass;	/* MAIL FROM: our valid tag */
	struct smtp_spf		 spf;
	struct smtp_dkim	 dkim;
	/* milters (issue 16): the client's bytes, kept for the chain at
	 * the end of data (max_message_size), and the chain running */
	struct buf		 mcopy;
	struct milter_run	*mrun;
};

struct smtp_session {
	uint64_t		 id;
	struct smtp_session	*hnext;		/* worker session table */
	struct worker		*w;
	struct config		*conf;		/* snapshot at connect (ref) */
	struct bufferevent	*bev;
	struct event		*timer;		/* greeting delay */
	struct event		*free_ev;	/* deferred free (R14) */
	struct sockaddr_storage	 peer;
	char			 client[INET6_ADDRSTRLEN];
	char			 prefix[INET6_ADDRSTRLEN + 4];	/* its /24, /48 */
	char			 helo[SMTP_DOMAIN_MAX + 1];
	bool			 esmtp;
	bool			 skipping;	/* rest of an overlong line */
	bool			 dead;		/* free pending */
	bool			 direct;	/* we write replies (plain) */
	bool			 in_process;	/* replies wait for its end */
	enum smtp_state		 state;
	unsigned		 errors;
	unsigned		 nmsgs;
	unsigned		 ncmds;		/* max_commands_per_session */
	uint64_t		 start_ms;	/* session_timeout */
	uint64_t		 partial_ms;	/* a command line began here */
	struct smtp_tx		 tx;
	struct smtp_chunk	 chunk;		/* BDAT */
	struct smtp_rcpt_wait	 rw;		/* RCPT waiting in ST_WAIT */
	struct guard_session	 gs;		/* harvest guard's view */
	struct smtp_dnsbl	 dnsbl;		/* DNS lists, at connect */
	/* STARTTLS and AUTH: smtp_secure.c */
	bool			 submission;	/* on submission_listen */
	bool			 tls_required;	/* MAIL needs STARTTLS first */
	bool			 tls;		/* handshake done */
	bool			 tls_handshake;	/* STARTTLS given, running */
	char			 tls_version[16];
	char			 tls_cipher[64];
	struct smtp_auth	*auth;		/* exchange in ST_AUTH */
	char			 auth_user[SMTP_AUTH_USER_MAX + 1]; /* "": no */
	enum obs_session	 end;		/* how it ends: the first
						 * closing reply says */
	/* Reply timing (issue 12): smtp_hold.c */
	uint64_t		 read_us;	/* last input read, monotonic */
	struct smtp_hold	*hold;		/* held replies, or NULL */
};

/* smtp_session.c */
/* Which kind of address a connection came in on. */
enum smtp_listener {
	SMTP_LISTENER_MX,		/* listen: tls_required applies */
	SMTP_LISTENER_TLS,		/* tls_required_listen */
	SMTP_LISTENER_SUBMISSION,	/* submission_listen */
};
/* 0, or -1 (out of memory; the socket is closed, nothing counted). */
int	smtp_session_accept(struct worker *, int fd,
	    const struct sockaddr *, int socklen, enum smtp_listener);
void	smtp_session_shutdown(struct smtp_session *);
/* Apply the timeouts again (stress mode changed). */
void	smtp_session_retime(struct smtp_session *);
void	smtp_reply(struct smtp_session *, enum reply_id, const char *arg);
/* The reply's line (no CRLF) into line; its length. */
size_t	smtp_reply_fmt(enum reply_id, const char *arg, char *line,
	    size_t cap);
/* A reply configured by the administrator ("450 4.7.1 text"). */
void	smtp_reply_line(struct smtp_session *, const char *line);
/* The session's one timer (greeting delay, tarpit): ms from now. */
void	smtp_timer(struct smtp_session *, unsigned ms,
	    void (*)(evutil_socket_t, short, void *));
uint64_t smtp_now_ms(void);	/* monotonic */
/* A protocol error: reply, count it, close at max_errors_per_session. */
void	smtp_error(struct smtp_session *, enum reply_id);
/* A harvest signal (VRFY, EXPN, failed AUTH, protocol error) for the
 * guard, unless harvest_guard = off. */
void	smtp_guard_signal(struct smtp_session *, enum guard_signal);
void	smtp_set_state(struct smtp_session *, enum smtp_state);
/* Send the 220 greeting now (the greeting delay and DNSBL are done). */
void	smtp_greet(struct smtp_session *);
void	smtp_resume(struct smtp_session *);
void	smtp_close(struct smtp_session *);
/* Write what the bufferevent's output holds (plain sessions). */
void	smtp_flush(struct smtp_session *);
/* Before TLS: write what is queued, then leave writing to libevent. */
void	smtp_direct_end(struct smtp_session *);
/*
 * Whether a control is carried out (issue 18, part 3): true under
 * enforce.  Under shadow it is not: the caller goes on as without the
 * control, and this logs "event=EVENT shadow=1 would=WOULD DETAIL".
 * A new control in the session is one call:
 *   if (smtp_control(s, s->conf->milter_mode, "milter", "reject", NULL))
 */
bool	smtp_control(struct smtp_session *, int mode, const char *event,
	    const char *would, const char *detail);
void	smtp_log(struct smtp_session *, enum log_level, const char *event,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* smtp_cmd.c */
void	smtp_cmd_dispatch(struct smtp_session *, const uint8_t *, size_t);

/* smtp_secure.c: STARTTLS (RFC 3207) and AUTH (RFC 4954) */
struct evbuffer;
void	smtp_secure_starttls(struct smtp_session *, struct span arg);
void	smtp_secure_auth(struct smtp_session *, struct span arg);
/* A line read in ST_AUTH: the client's response to a 334. */
void	smtp_secure_line(struct smtp_session *, const uint8_t *, size_t);
/* The longest AUTH response line (with CRLF; a command line:
 * smtp_cmdline_max); the reply past it. */
size_t	smtp_secure_line_max(const struct smtp_session *);
enum reply_id smtp_secure_too_long(struct smtp_session *);
/* EHLO keywords: STARTTLS, AUTH. */
void	smtp_secure_ehlo(struct smtp_session *, struct evbuffer *);
/* Before MAIL: tls_required, or AUTH on the submission listener. */
enum reply_id smtp_secure_mail_check(const struct smtp_session *);
/* A bufferevent event; true if it was the TLS handshake's and is
 * dealt with. */
bool	smtp_secure_event(struct smtp_session *, short what);
/* The Received header's "with" protocol (RFC 3848) and comments. */
const char *smtp_secure_with(const struct smtp_session *, char *, size_t);
void	smtp_secure_free(struct smtp_session *);

/* smtp_rcpt.c */
void	smtp_rcpt(struct smtp_session *, struct span arg);
/* The milters answered the RCPT waiting in s->rw: refusal is the reply
 * line a milter gave (or its failure's), NULL: take the recipient. */
void	smtp_rcpt_milter_done(struct smtp_session *, const char *refusal);

/* smtp_spf.c: SPF at MAIL FROM */
/* true: the session waits (ST_WAIT) and smtp_tx_mail_end() follows */
bool	smtp_spf_start(struct smtp_session *);
void	smtp_spf_stop(struct smtp_session *);	/* cancel, no callback */
void	smtp_spf_reset(struct smtp_session *);	/* stop, forget the result */
/* The MAIL reply spf_policy asks for (arg filled), or R_NONE. */
enum reply_id smtp_spf_verdict(const struct smtp_session *, char *arg,
	    size_t);
/* Authentication-Results (SPF's result, then dkim's resinfo when not
 * "") and Received-SPF: bytes written, 0 (neither checked), or -1 (did
 * not fit). */
int	smtp_spf_headers(const struct smtp_session *, const char *dkim,
	    char *, size_t);
/* The loop's resolver for sender checks (NULL: it cannot be made). */
struct dns_resolver *smtp_sender_resolver(struct smtp_session *);
/* The queue's P record payload, or NULL (not checked). */
const char *smtp_spf_proof(const struct smtp_session *, char *, size_t);
/* SPF said pass for the MAIL FROM identity (a proof for reports) */
bool	smtp_spf_passed(const struct smtp_session *);
/* " spf=... " for the MAIL log line, or "". */
const char *smtp_spf_log(const struct smtp_session *, char *, size_t);


/* smtp_dnsbl.c: DNSBL and DNSWL at connect (issue 14, part 4) */
void	smtp_dnsbl_start(struct smtp_session *);	/* at accept */
/* true: the answers are pending; smtp_greet() follows them */
bool	smtp_dnsbl_hold_greeting(struct smtp_session *);
/* true: the command got 554 5.7.1 (listed, reject) and the session
 * closes; verb: the command's (QUIT is never refused) */
bool	smtp_dnsbl_refuse(struct smtp_session *, struct span verb);
/* harvest_exempt_dnswl: an allowlist listed this client */
bool	smtp_dnsbl_exempt(const struct smtp_session *);
/* X-DNSBL for a tagged client: bytes written, 0 (none), -1 (no room) */
int	smtp_dnsbl_header(const struct smtp_session *, char *, size_t);
void	smtp_dnsbl_free(struct smtp_session *);

/* smtp_dkim.c: DKIM at end of data */
void	smtp_dkim_begin(struct smtp_session *);	/* at DATA, first BDAT */
void	smtp_dkim_feed(struct smtp_session *, const uint8_t *, size_t);
/* true: the session waits (ST_WAIT) and smtp_tx_end_go() follows */
bool	smtp_dkim_start(struct smtp_session *);
void	smtp_dkim_free(struct smtp_session *);	/* cancel, forget */
/* dkim=... resinfo for Authentication-Results: bytes, 0 (not checked),
 * -1 (did not fit) */
int	smtp_dkim_resinfo(const struct smtp_session *, char *, size_t);
/* The P record's dkim words, or NULL (not checked). */
const char *smtp_dkim_proof(const struct smtp_session *, char *, size_t);
/* a trusted pass aligned with MAIL FROM (a proof for reports) */
bool	smtp_dkim_aligned(const struct smtp_session *);
/* " dkim=..." for the message's log line, or "". */
const char *smtp_dkim_log(const struct smtp_session *, char *, size_t);

/* smtp_tx.c */
/* The milters' verdict on a recipient (smtp_rcpt.c asks through this):
 * true: the session waits (ST_WAIT) and done(s, reject_line or NULL)
 * follows; false: no milters (go on). */
bool	smtp_tx_milter_rcpt(struct smtp_session *);
void	smtp_tx_reset(struct smtp_session *);
void	smtp_tx_mail(struct smtp_session *, struct span arg);
/* MAIL's checks are done (SPF may have waited): reply to it. */
void	smtp_tx_mail_end(struct smtp_session *);
void	smtp_tx_data(struct smtp_session *);
/* BDAT n [LAST]: read the chunk (in ST_DATA), whatever the state. */
void	smtp_tx_bdat(struct smtp_session *, struct span arg);
/* Feed DATA bytes; true when the end-of-data mark (or the BDAT chunk's
 * last octet) was consumed. */
bool	smtp_tx_feed(struct smtp_session *, const uint8_t *, size_t,
	    size_t *used);
/* After the end-of-data mark: reply now, or commit and reply later. */
void	smtp_tx_end(struct smtp_session *);
/* The end of data once DKIM is done: commit (or discard) and reply. */
void	smtp_tx_end_go(struct smtp_session *);
void	smtp_tx_free(struct smtp_session *);
void	smtp_tx_init(struct smtp_session *);
void	smtp_tx_fini(struct smtp_session *);
/* RCPT parameters (RFC 3461 NOTIFY, ORCPT) into s->rw; R_NONE if fine. */
enum reply_id smtp_tx_rcpt_params(struct smtp_session *,
	    const struct smtp_path_arg *);
/* Keep s->rw's DSN parameters beside a queued and/or bounced recipient. */
void	smtp_tx_rcpt_dsn_keep(struct smtp_session *, bool queued,
	    bool bounced);

#endif
