/*
 * passwd.h - the password file of SMTP AUTH (passwd_file): one
 * "user:hash" a line, the hash as crypt(3) writes it (yescrypt "$y$" or
 * SHA-512-crypt "$6$"; any method libcrypt deems current), '#' comments
 * and blank lines allowed.  Loaded whole into an immutable, refcounted
 * table, so a reload swaps it while a check in flight keeps its own.
 * Never: logs or keeps a password; a user not in the file costs the same
 * crypt(3) time as a wrong password.  Untrusted: the AUTH identity and
 * password (the file is the administrator's, still checked line by line).
 */
#ifndef MXGATE_PASSWD_H
#define MXGATE_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/parse.h"

#define PASSWD_USER_MAX		255	/* RFC 4616 2 */
#define PASSWD_PASS_MAX		255	/* RFC 4616 2 */
#define PASSWD_HASH_MAX		383	/* CRYPT_OUTPUT_SIZE - 1 */
#define PASSWD_LINE_MAX		1024	/* longer lines are errors */
#define PASSWD_FILE_MAX		(16 * 1024 * 1024)
#define PASSWD_ERRORS_MAX	20	/* bad lines reported, then a total */

struct passwd_file;

/* Errors met while loading: the file, its line (0: none), why. */
typedef void	passwd_err_fn(void *arg, const char *file, unsigned line,
		    const char *msg);

/* One parsed line; ulen 0 for a blank or comment line. */
struct passwd_line {
	const char	*user;
	size_t		 ulen;
	const char	*hash;
	size_t		 hlen;
};

/*
 * One line, without its LF (a CR before it is ignored).  PARSE_OK (an
 * entry, or ulen 0), PARSE_BAD or PARSE_TOOLONG with *why set.  Pure.
 */
enum parse_rc	passwd_parse_line(const char *, size_t,
		    struct passwd_line *, const char **why);
/* A user name: 1..PASSWD_USER_MAX of letters, digits and "._%+-@". */
bool		passwd_user_valid(const char *, size_t);

/* Load (blocking: at start or on a job); NULL after reporting every
 * problem to err.  refs == 1. */
struct passwd_file *passwd_load(const char *path, passwd_err_fn *,
		    void *arg);
struct passwd_file *passwd_load_mem(const char *text, size_t len,
		    const char *name, passwd_err_fn *, void *arg);
struct passwd_file *passwd_ref(struct passwd_file *);
void		passwd_unref(struct passwd_file *);
size_t		passwd_count(const struct passwd_file *);

/* The sender login map loaded with this file (sender_map.h), so a
 * reload swaps both at once; the file takes it and frees it last. */
struct sender_map;
void		passwd_set_senders(struct passwd_file *, struct sender_map *);
const struct sender_map *passwd_senders(const struct passwd_file *);

/* Blocking (crypt_r, tens of ms): call on a job thread.  NUL-ended. */
bool		passwd_verify(const struct passwd_file *, const char *user,
		    const char *pass);
/* A new hash of pass: yescrypt, or SHA-512-crypt where yescrypt is
 * missing.  0, or -1. */
int		passwd_hash(const char *pass, char *out, size_t outlen);

/* passwd_cli.c: `mxgate passwd USER`; returns the exit status. */
int		passwd_cli_main(const char *user);

#endif
