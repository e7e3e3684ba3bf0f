/*
 * conf_keys.h - private to src/conf: the one descriptor table (STYLE R13)
 * and the value types it uses.  conf.c reads lines and sections; every
 * fact about a key (type, field, default, bounds, scope, doc) is here.
 */
#ifndef MXGATE_CONF_KEYS_H
#define MXGATE_CONF_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/buf.h"
#include "conf.h"

#define CONF_NKEYS	121	/* rows of conf_keys[] (static assert) */
#define CONF_WHY_MAX	1024	/* one error message */
#define CONF_QUOTE_MAX	64	/* bytes of a bad value in a message */
#define CONF_NAME_MAX	255	/* host, domain names: RFC 1035 2.3.4 */
#define CONF_LABEL_MAX	63	/* one label, RFC 1035 2.3.4 */
#define CONF_TEXT_MAX	512	/* CT_TEXT values */

/* A key's scope and how its default is found. */
#define CK_DOMAIN	0x01	/* per domain: field in domain_conf */
#define CK_REQUIRED	0x02	/* no default; the setter refuses "" */
#define CK_SYSHOST	0x04	/* default is gethostname() */

enum conf_type {
	CT_HOSTNAME, CT_LISTEN, CT_PATH, CT_DOMAINS, CT_DIRECTORY, CT_CIDRS,
	CT_UNKNOWN, CT_HOP, CT_DELIM, CT_SIZE, CT_UINT, CT_LOGLEVEL, CT_BOOL,
	CT_MSEC, CT_HOSTPORT, CT_RATE, CT_REPLY, CT_USER, CT_OPTPATH,
	CT_TLSPROTO, CT_TEXT, CT_LISTENS,
	CT_ENVSYNTAX,
	CT_TLSLEVEL, CT_OPTHOST, CT_PINS,	/* issue 20 */
	CT_CHOICE,	/* one of a key's words, stored as int (issue 18) */
	CT_FILEMAP,	/* "file:PATH" or "": absolute path (issue 14) */
	CT_BATVDOMS,	/* some of domains, marked (issue 14, part 5) */
	CT_DNSBL,	/* dnsbl_sites: sender/dnsbl.h's parser (issue 14) */
	CT_MILTERS,	/* milter specs (issue 16, conf_milter.c) */
	CT_REDISURL,	/* shared_state: redis_url.h, or "" (issue 17) */
	CT_OPTTEXT,	/* like CT_TEXT; "": NULL (issue 13) */
	CT_COUNT
};

struct conf_key {
	const char	*name;
	enum conf_type	 type;
	size_t		 off;	/* CK_DOMAIN: in domain_conf */
	unsigned	 flags;
	const char	*dflt;	/* parsed like a file value */
	uint64_t	 min, max;	/* CT_UINT, CT_SIZE, CT_MSEC */
	const char	*doc;
};

/* What a setter may need besides the value. */
struct conf_env {
	struct config	*cfg;	/* CT_LISTEN, CT_DOMAINS: 2 fields */
	const char	*dir;	/* absolute folder for relative paths */
};

/*
 * Parse val into field.  0, or -1 with the reason in why (the caller adds
 * "key: " and the line) and field untouched, so it can always be freed.
 */
typedef int	conf_set_fn(const struct conf_key *, const char *val,
		    void *field, const struct conf_env *, struct buf *why);
typedef void	conf_free_fn(struct config *, void *field);

/*
 * A type whose free is NULL holds plain data (no pointer) of at most 64
 * bytes, and its setter uses neither env->cfg nor env->dir:
 * conf_value_same() parses two texts into zeroed scratch fields and
 * compares them byte by byte.
 */
struct conf_type_ops {
	const char	*name;		/* for conf_dump_keys() */
	conf_set_fn	*set;
	conf_free_fn	*free;		/* NULL: nothing to free */
};

/* conf_milter.c */
conf_set_fn	conf_set_milters;
conf_free_fn	conf_free_milters;

extern const struct conf_key	  conf_keys[];	/* CONF_NKEYS rows */
extern const struct conf_type_ops conf_types[CT_COUNT];

/* Index of the key named name, or -1. */
int	conf_key_find(const char *name);
/* Edits between a and b, case-insensitive (optimal string alignment:
 * a swap of neighbours is one edit); UINT_MAX past CONF_SUGGEST_LEN. */
#define CONF_SUGGEST_LEN	64
unsigned conf_edit_distance(const char *a, const char *b);
/* Index of the one key close enough to name to be the one meant, or -1. */
int	conf_key_suggest(const char *name);
/* Do two texts of key k set the same value?  Plain values (numbers,
 * sizes, durations, words) are compared parsed, others as written with
 * the blanks around commas dropped. */
bool	conf_value_same(const struct conf_key *k, const char *a,
	    const char *b);
/* Lower-case, drop one trailing dot, check the syntax (letters, digits,
 * '-'; labels 1..63; total <= 255).  Length written to out, or -1. */
int	conf_domain_norm(const char *s, size_t len,
	    char out[CONF_NAME_MAX + 1]);
/* The same for a domain we accept mail for, which may also be made of
 * U-labels (RFC 6531 3.3): strict UTF-8, stored in NFC and lower case as
 * RCPT keys are; -1 also if that form is longer than as written. */
int	conf_udomain_norm(const char *s, size_t len,
	    char out[CONF_NAME_MAX + 1]);
/* 'value' for a message: capped, non-printable bytes as \xHH. */
const char *conf_quote(char *dst, size_t dstlen, const char *s, size_t len);
#define CONF_QUOTE_BUF	(CONF_QUOTE_MAX * 4 + 8)

#endif
