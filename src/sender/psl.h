/*
 * psl.h - the Public Suffix List (publicsuffix.org; Debian's package
 * publicsuffix): the organizational domain of a name (RFC 7489 3.2),
 * for "does this DKIM d= align with the MAIL FROM domain".
 * Owns: the rules read once at start, immutable after (shared by every
 * loop without locks).
 * Never: reloads, DNS, IDN conversion (rules in UTF-8 match only names in
 * UTF-8; an A-label TLD falls to the default rule "*").
 * Untrusted: the names asked about; the file is the administrator's.
 */
#ifndef MXGATE_PSL_H
#define MXGATE_PSL_H

#include <stdbool.h>
#include <stddef.h>

#define PSL_FILE_MAX	(8u << 20)	/* bytes read; more: refused */
#define PSL_RULES_MAX	65536		/* rules kept; more: refused */

struct psl;

/* NULL with err filled (missing, unreadable, too big, no rules). */
struct psl	*psl_load(const char *path, char *err, size_t errlen);
/* From text in memory (len bytes, any content); NULL: no rule. */
struct psl	*psl_parse(const char *text, size_t len);
void		 psl_free(struct psl *);
size_t		 psl_count(const struct psl *);

/*
 * The organizational domain of name (lower case, no trailing dot) into
 * out: the public suffix and one label more; name itself when it is a
 * public suffix or when psl is NULL.  NULL when it does not fit.
 */
const char	*psl_org_domain(const struct psl *, const char *name,
		    char *out, size_t outlen);
/* a and b (case-insensitive) have the same organizational domain; with
 * psl NULL only a == b aligns (strict). */
bool		 psl_aligned(const struct psl *, const char *a, const char *b);

#endif
