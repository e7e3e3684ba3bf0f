/*
 * dir_ldap_filter.c - LDAP filter templates (dir_ldap_filter.h).
 * Owns: RFC 4515 escaping and the template grammar.  Never: allocates.
 * Untrusted: the address.  RFC 4515 3 (string representation), 4.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "dir_ldap_filter.h"

long
dir_ldap_escape(const uint8_t *s, size_t n, char *out, size_t outlen)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			i, o = 0;
	uint8_t			c;

	if (outlen == 0)
		return -1;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '*' && c != '(' &&
		    c != ')' && c != '\\') {
			if (o + 1 >= outlen)
				goto full;
			out[o++] = (char)c;
			continue;
		}
		if (o + 3 >= outlen)
			goto full;
		out[o++] = '\\';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return (long)o;
full:
	out[0] = '\0';
	return -1;
}

int
dir_ldap_filter_check(const char *tmpl, const char **why)
{
	size_t	i;
	long	depth = 0;

	if (tmpl == NULL || tmpl[0] != '(') {
		*why = "a filter starts with '('";
		return -1;
	}
	for (i = 0; tmpl[i] != '\0'; i++) {
		if (i >= DIR_LDAP_FILTER_MAX / 2) {
			*why = "filter template too long";
			return -1;
		}
		if (tmpl[i] == '(')
			depth++;
		else if (tmpl[i] == ')' && --depth < 0)
			break;
		else if (tmpl[i] == '%') {
			if (strchr("sud%", tmpl[i + 1]) == NULL ||
			    tmpl[i + 1] == '\0') {
				*why = "'%' must be followed by s, u, d or %";
				return -1;
			}
			i++;
		}
		if (depth == 0 && tmpl[i + 1] != '\0') {
			*why = "text after the filter's closing ')'";
			return -1;
		}
	}
	if (depth != 0) {
		*why = "unbalanced parentheses";
		return -1;
	}
	return 0;
}

long
dir_ldap_filter_expand(const char *tmpl, const uint8_t *local, size_t llen,
    const uint8_t *domain, size_t dlen, char *out, size_t outlen)
{
	const char	*why;
	size_t		 i, o = 0;
	long		 n;

	if (outlen == 0 || dir_ldap_filter_check(tmpl, &why) == -1)
		return -1;
	for (i = 0; tmpl[i] != '\0'; i++) {
		if (tmpl[i] != '%' || tmpl[i + 1] == '%') {
			if (o + 1 >= outlen)
				goto full;
			out[o++] = tmpl[i];
			i += tmpl[i] == '%';
			continue;
		}
		i++;
		switch (tmpl[i]) {
		case 'u':
			n = dir_ldap_escape(local, llen, out + o, outlen - o);
			break;
		case 'd':
			n = dir_ldap_escape(domain, dlen, out + o, outlen - o);
			break;
		default:	/* 's' (checked above) */
			if ((n = dir_ldap_escape(local, llen, out + o,
			    outlen - o)) == -1)
				break;
			o += (size_t)n;
			if (o + 1 >= outlen)
				goto full;
			out[o++] = '@';
			n = dir_ldap_escape(domain, dlen, out + o, outlen - o);
			break;
		}
		if (n == -1)
			goto full;
		o += (size_t)n;
	}
	out[o] = '\0';
	return (long)o;
full:
	out[0] = '\0';
	return -1;
}

static bool
dir_ldap_attrchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == ';' || c == '.';
}

int
dir_ldap_filter_sync(const char *tmpl, struct dir_ldap_attr *v, size_t *n,
    char *filter, size_t flen, const char **why)
{
	const char	*p, *eq, *open;
	size_t		 i, o = 0, alen, plen;

	*n = 0;
	if (flen == 0 || dir_ldap_filter_check(tmpl, why) == -1)
		return -1;
	for (p = tmpl; *p != '\0'; p++) {
		if (*p != '%') {
			if (o + 1 >= flen)
				goto long_;
			filter[o++] = *p;
			continue;
		}
		if (p[1] == '%') {
			if (o + 1 >= flen)
				goto long_;
			filter[o++] = '%';	/* "%%": one literal '%' */
			p++;
			continue;
		}
		if (p[1] != 's') {
			*why = "ldap_sync needs a filter without %u and %d "
			    "(use %s, or ldap_sync = no)";
			return -1;
		}
		/* back to "(ATTR=PREFIX" */
		for (eq = p; eq > tmpl && eq[-1] != '=' && eq[-1] != '('; eq--)
			;
		if (eq == tmpl || eq[-1] != '=' || p[2] != ')')
			goto shape;
		for (open = eq - 1; open > tmpl && dir_ldap_attrchar(open[-1]);
		    open--)
			;
		if (open == tmpl || open[-1] != '(')
			goto shape;
		alen = (size_t)(eq - 1 - open);
		plen = (size_t)(p - eq);
		if (alen == 0 || alen > DIR_LDAP_ATTR_MAX ||
		    plen > DIR_LDAP_PREFIX_MAX ||
		    memchr(eq, '*', plen) != NULL ||
		    memchr(eq, '\\', plen) != NULL)
			goto shape;
		for (i = 0; i < *n; i++)
			if (strlen(v[i].name) == alen && strncasecmp(v[i].name,
			    open, alen) == 0 && strlen(v[i].prefix) == plen &&
			    strncasecmp(v[i].prefix, eq, plen) == 0)
				break;
		if (i == *n) {
			if (*n == DIR_LDAP_ATTRS_MAX) {
				*why = "too many %s in the filter";
				return -1;
			}
			memcpy(v[i].name, open, alen);
			v[i].name[alen] = '\0';
			memcpy(v[i].prefix, eq, plen);
			v[i].prefix[plen] = '\0';
			(*n)++;
		}
		if (o + 1 >= flen)
			goto long_;
		filter[o++] = '*';
		p++;
	}
	if (*n == 0) {
		*why = "ldap_sync needs %s in the filter";
		return -1;
	}
	filter[o] = '\0';
	return 0;
shape:
	*why = "ldap_sync needs each %s as (ATTR=%s) or (ATTR=PREFIX%s)";
	return -1;
long_:
	*why = "sync filter too long";
	return -1;
}
