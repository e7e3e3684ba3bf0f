/*
 * relay_cred.h - the smarthost credentials of relayhost_auth_file: one
 * "host:port user password" a line ([IPv6]:port too), '#' comments and
 * blank lines allowed; the password is the rest of the line after the
 * blanks that follow the user (it may hold blanks itself).
 * Owns: the file's syntax, its mode check (no group or other access) and
 * the look-up by relayhost.  Never: logs a password, or a line that holds
 * one (errors name the line number only).
 * Untrusted: the file (the administrator's, still checked line by line).
 */
#ifndef MXGATE_RELAY_CRED_H
#define MXGATE_RELAY_CRED_H

#include <stddef.h>
#include <stdint.h>

#include "../lib/parse.h"

#define RELAY_CRED_HOST_MAX	255	/* RFC 1035 2.3.4 */
#define RELAY_CRED_USER_MAX	255	/* RFC 4616 2 */
#define RELAY_CRED_PASS_MAX	255	/* RFC 4616 2 */
#define RELAY_CRED_LINE_MAX	1024	/* longer lines are errors */
#define RELAY_CRED_MAX		1000	/* entries in one file */
#define RELAY_CRED_FILE_MAX	(256 * 1024)

/* One parsed line: spans into it; hlen 0 for a blank or comment line. */
struct relay_cred_line {
	const char	*host;		/* without [] */
	size_t		 hlen;
	uint16_t	 port;
	const char	*user;
	size_t		 ulen;
	const char	*pass;
	size_t		 plen;
};

struct relay_cred {
	char		 host[RELAY_CRED_HOST_MAX + 1];	/* lower case */
	uint16_t	 port;
	char		 user[RELAY_CRED_USER_MAX + 1];
	char		 pass[RELAY_CRED_PASS_MAX + 1];
};

struct relay_creds;

typedef void	relay_cred_err_fn(void *arg, const char *file, unsigned line,
		    const char *msg);

/*
 * One line without its LF (a CR before it is ignored).  PARSE_OK (an
 * entry, or hlen 0), PARSE_BAD or PARSE_TOOLONG with *why set.  Pure.
 */
enum parse_rc	relay_cred_parse_line(const char *, size_t,
		    struct relay_cred_line *, const char **why);

/*
 * Load path (blocking: at start).  Refused, with a reason through err:
 * a file group or others may read or write (mode & 077), not a regular
 * file, too large, or any bad line.  NULL then.
 */
struct relay_creds *relay_creds_load(const char *path, relay_cred_err_fn *,
		    void *arg);
struct relay_creds *relay_creds_load_mem(const char *text, size_t len,
		    const char *name, relay_cred_err_fn *, void *arg);
void		relay_creds_free(struct relay_creds *);	/* wipes passwords */
size_t		relay_creds_count(const struct relay_creds *);
/* The entry for host:port (host in any case), or NULL. */
const struct relay_cred *relay_creds_find(const struct relay_creds *,
		    const char *host, uint16_t port);

#endif
