/*
 * ctl.h - the control socket SPOOL/control.sock (unix stream, 0600) on
 * the worker's loop, and the `mxgate queue|harvest|stats` subcommands.
 * Protocol: one line "VERB [VERB2] ARG...\n" in; zero or more lines out,
 * then "ok" or "error: MESSAGE", then close: the last line is the status.
 * Never: knows the modules it serves (they register handlers).
 * Untrusted: the request line (CTL_LINE_MAX, printable ASCII only).
 */
#ifndef MXGATE_CTL_H
#define MXGATE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sys/un.h>

#include "../lib/parse.h"

#define CTL_SOCKET_NAME		"control.sock"	/* in the spool folder */
#define CTL_LINE_MAX		1024	/* request line, its LF included */
#define CTL_ARGS_MAX		16	/* words in a request */
#define CTL_CONN_MAX		64	/* control connections at once */
#define CTL_IDLE_MS		5000	/* no byte in or out: closed */
#define CTL_CMDS_MAX		32	/* registered commands */
#define CTL_VERB_MAX		32	/* bytes of a verb */
#define CTL_ERROR_MAX		512	/* bytes of an "error: " message */
#define CTL_REPLY_LINE_MAX	4096	/* output line before escaping; cut,
					 * and marked, past it */
#define CTL_CALL_TIMEOUT_MS	10000	/* client: silence from the server */
#define CTL_LOG_MAX		1024	/* fields a handler adds to the log */

struct event_base;
struct ctl;
struct ctl_conn;

/* A request line's words: spans into the caller's bytes. */
struct ctl_words {
	size_t	 n;
	struct {
		size_t	 off;
		size_t	 len;
	}	 w[CTL_ARGS_MAX];
};

/*
 * Split a request line (LF, and a CR before it, already cut) into words
 * separated by blanks (space, TAB).  PARSE_BAD: a byte that is neither
 * printable ASCII nor a blank (NUL included); PARSE_TOOLONG: over
 * CTL_LINE_MAX - 1 bytes or CTL_ARGS_MAX words.  Pure.
 */
enum parse_rc	 ctl_parse_line(const uint8_t *p, size_t len,
		    struct ctl_words *out);

/* A line writer, as the interface names it (ctl_printf() is the way). */
typedef void	ctl_reply_fn(struct ctl_conn *, const char *line);

/*
 * A handler runs on the loop and answers synchronously: ctl_printf() for
 * each output line, then 0 ("ok"), or ctl_error() and -1.  argv holds
 * the words after the verb(s); the conn is gone once it returns.
 */
typedef int	ctl_handler_fn(void *arg, struct ctl_conn *, int argc,
		    char **argv);

/*
 * Listen on SPOOL/control.sock.  A stale socket left by a dead process is
 * replaced; a socket some live process answers on is not (NULL, "another
 * process serves ..."), nor is anything but a socket.
 */
struct ctl	*ctl_open(struct event_base *, const char *spool, char *err,
		    size_t errlen);
/*
 * verb2 NULL: a one-word command.  0, or -1 (duplicate, bad verb, table
 * full).  "help" and "stats" are built in; "stats" prints the control
 * socket's own counters, then calls every handler registered as
 * ("stats", NULL) in order, so each module adds its own lines (their
 * help is not listed).
 */
int		 ctl_register(struct ctl *, const char *verb1,
		    const char *verb2, ctl_handler_fn *, void *arg,
		    const char *help);
/* One output line; control bytes and newlines are escaped (\xHH). */
void		 ctl_printf(struct ctl_conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/* The "error: " status; the first call wins. */
void		 ctl_error(struct ctl_conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * Add " key=value ..." fields to the one log line of this request
 * (event=control cmd=... uid=... pid=... FIELDS result=...); the caller
 * escapes what it did not make.  Past CTL_LOG_MAX the rest is dropped and
 * the line says log_cut=yes.
 */
void		 ctl_log(struct ctl_conn *, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * An answer that needs the loop to turn first (a reload): the handler
 * calls ctl_defer() for the request's id (never 0) and returns
 * CTL_DEFERRED.  Later, ctl_resume() finds the connection again (NULL:
 * the client left), ctl_printf() adds lines, and ctl_finish() sends the
 * status (rc 0 or -1) and writes the request's log line.
 */
#define CTL_DEFERRED	1
#define CTL_DEFER_MS	300000	/* the connection's limit meanwhile */
uint64_t	 ctl_defer(struct ctl_conn *);
struct ctl_conn	*ctl_resume(struct ctl *, uint64_t id);
void		 ctl_finish(struct ctl_conn *, int rc);
/* For tests and config: the idle timeout of new connections. */
void		 ctl_set_idle_timeout(struct ctl *, unsigned ms);
/* Close every connection, remove the socket file (if still ours), free. */
void		 ctl_close(struct ctl *);

/*
 * Client side.  Send line (no LF), copy the output lines to out, return 0
 * on "ok".  -1 otherwise, err filled and errno: ENOENT or ECONNREFUSED
 * when no gateway runs on this spool, EPROTO when it answered "error:"
 * (err is its message), anything else for I/O trouble.
 */
int		 ctl_call(const char *spool, const char *line, FILE *out,
		    char *err, size_t errlen);
/* The same, waiting up to timeout_ms for the answer. */
int		 ctl_call_wait(const char *spool, const char *line, FILE *out,
		    char *err, size_t errlen, unsigned timeout_ms);
#define CTL_RELOAD_WAIT_MS	(CTL_DEFER_MS + 5000)	/* `mxgate reload` */
#define CTL_STOP_WAIT_MS	30000	/* `mxgate stop`: until it exited */
/*
 * The socket's address: SPOOL/control.sock, or, when that is too long for
 * sun_path (108 bytes), /proc/self/fd/SPOOLFD/control.sock through the
 * open spool folder.
 */
void		 ctl_socket_addr(const char *spool, int spoolfd,
		    struct sockaddr_un *);

/*
 * The subcommands (main.c dispatches to them): argv[0] is the first word
 * after "mxgate".  Exit status: 0 ok, 1 error (one line on stderr), 2
 * usage.
 */
bool		 ctl_cli_handles(const char *word);
int		 ctl_cli_main(int argc, char **argv);
void		 ctl_cli_usage(FILE *);

#endif
