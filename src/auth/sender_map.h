/*
 * sender_map.h - which MAIL FROM addresses an authenticated user owns
 * (issue 14, part 6; sender_login_map = file:PATH).  The file has one
 * "address user[,user...]" a line, '#' comments and blank lines skipped.
 * Owns: the line parser, the sorted table, the ownership rule.
 * Never: decides the SMTP reply or logs (smtp_tx.c does both).
 * Untrusted: the MAIL FROM address and the AUTH name given to
 * sender_owns() (the file is the administrator's, checked line by line).
 */
#ifndef MXGATE_SENDER_MAP_H
#define MXGATE_SENDER_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/parse.h"
#include "passwd.h"

#define SENDER_MAP_LINE_MAX	1024	/* longer lines are errors */
#define SENDER_MAP_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define SENDER_MAP_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define SENDER_MAP_ADDR_MAX	(SENDER_MAP_LOCAL_MAX + 1 + \
				    SENDER_MAP_DOMAIN_MAX)
#define SENDER_MAP_FILE_MAX	(64 * 1024 * 1024)
#define SENDER_MAP_ERRORS_MAX	20	/* bad lines reported, then a total */

/* One parsed line: spans into the caller's bytes; alen 0: nothing. */
struct sender_map_line {
	size_t		 aoff, alen;	/* the address */
	size_t		 uoff, ulen;	/* "user[,user...]" */
};

struct sender_map;

/* One line without its LF (a CR before it is ignored).  PARSE_OK (an
 * entry, or alen 0), PARSE_BAD or PARSE_TOOLONG with *why set.  Pure. */
enum parse_rc	sender_map_parse_line(const char *, size_t,
		    struct sender_map_line *, const char **why);

/*
 * Load (blocking: at start or on the reload job), or the same text from
 * memory (name is used in errors).  NULL after reporting every bad line
 * (FILE, line number, why) to err.  local_case: compare local parts as
 * written (localpart_case_sensitive), else ASCII letters fold.
 */
struct sender_map *sender_map_load(const char *path, bool local_case,
		    passwd_err_fn *, void *arg);
struct sender_map *sender_map_load_mem(const char *text, size_t len,
		    const char *name, bool local_case, passwd_err_fn *,
		    void *arg);
void		sender_map_free(struct sender_map *);
size_t		sender_map_count(const struct sender_map *);	/* lines */

/*
 * May user (the AUTH name, NUL-ended) send as local@domain?  Yes when
 * the address as written, or else with its recipient_delimiter extension
 * cut (first character of delim found in the local part; delim "" or
 * NULL: none), equals:
 * the AUTH name itself when it holds an '@'; else user@D when ours
 * says domain is one of ours (the caller knows `domains`); or an address
 * the map (may be NULL) gives to user.  Domains compare without case,
 * local parts as local_case says.
 */
bool		sender_owns(const struct sender_map *, const char *user,
		    const char *local, size_t llen, const char *domain,
		    size_t dlen, bool ours, bool local_case, const char *delim);

#endif
