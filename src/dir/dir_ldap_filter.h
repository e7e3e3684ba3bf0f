/*
 * dir_ldap_filter.h - LDAP search filters from the ldap_filter template.
 * %s is the address, %u its local part, %d its domain, each escaped per
 * RFC 4515 3 so that '*', '(', ')', '\' and NUL in an address can never
 * widen or end the assertion; %% is a '%'.  For sync mode the template
 * also gives the attributes to materialise: each %s must stand as
 * (ATTR=%s) or (ATTR=PREFIX%s), e.g. (proxyAddresses=smtp:%s); the sync
 * filter is the template with each %s turned into '*'.
 * Owns: the escaper, the expansion, the template's checks.  Pure: no
 * allocation, no globals; every output is length-checked.
 * Untrusted: the address (a peer's RCPT); the template is the admin's.
 */
#ifndef MXGATE_DIR_LDAP_FILTER_H
#define MXGATE_DIR_LDAP_FILTER_H

#include <stddef.h>
#include <stdint.h>

#define DIR_LDAP_FILTER_MAX	4096	/* an expanded filter, with NUL */
#define DIR_LDAP_ATTRS_MAX	8	/* %s assertions in one template */
#define DIR_LDAP_ATTR_MAX	64	/* an attribute name */
#define DIR_LDAP_PREFIX_MAX	32	/* a value prefix such as "smtp:" */

/*
 * s[0..n) escaped into out (outlen bytes, NUL-ended): every byte outside
 * printable ASCII and each of * ( ) \ as \XX.  Length written, or -1 if
 * out is too small (then out holds "").
 */
long	dir_ldap_escape(const uint8_t *s, size_t n, char *out,
	    size_t outlen);

/*
 * Check a template: balanced parentheses, '%' followed only by s, u, d
 * or %.  0, or -1 with *why a static reason.
 */
int	dir_ldap_filter_check(const char *tmpl, const char **why);

/*
 * The template with the address's parts escaped in.  Length, or -1 (a
 * bad template, or over outlen).
 */
long	dir_ldap_filter_expand(const char *tmpl, const uint8_t *local,
	    size_t llen, const uint8_t *domain, size_t dlen, char *out,
	    size_t outlen);

/* One attribute a sync set is made of: ATTR's values that start with
 * PREFIX (compared case-insensitively), the prefix cut off. */
struct dir_ldap_attr {
	char	name[DIR_LDAP_ATTR_MAX + 1];
	char	prefix[DIR_LDAP_PREFIX_MAX + 1];
};

/*
 * For sync mode: the attributes (distinct name+prefix pairs, *n of them)
 * and the sync filter (each %s as '*').  0, or -1 with *why.
 */
int	dir_ldap_filter_sync(const char *tmpl, struct dir_ldap_attr *v,
	    size_t *n, char *filter, size_t flen, const char **why);

#endif
