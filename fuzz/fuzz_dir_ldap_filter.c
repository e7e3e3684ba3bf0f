/*
 * fuzz_dir_ldap_filter.c - libFuzzer target for LDAP filter templates
 * and the LDAP snapshot header.  The input is split at its first NUL:
 * a template, and an address.  Checked: the escaper's output has no
 * unescaped * ( ) or NUL and decodes back to the input; an expanded
 * filter has exactly the template's parentheses (the address adds none)
 * and a good template with room always expands; the sync filter and attributes stay in bounds; the
 * snapshot header parser never reads past its input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dir/dir_ldap.h"
#include "dir/dir_ldap_filter.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
hexv(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ?
	    c - 'a' + 10 : -1;
}

static size_t
count(const char *s, char c)
{
	size_t	n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

static void
check_escape(const uint8_t *s, size_t n)
{
	char	out[3 * 300 + 1];
	long	len;
	size_t	i, o;

	if (n > 300)
		n = 300;
	if ((len = dir_ldap_escape(s, n, out, sizeof(out))) < 0)
		abort();	/* 3n + 1 always fits */
	for (i = 0, o = 0; o < (size_t)len; i++) {
		if (out[o] == '*' || out[o] == '(' || out[o] == ')' ||
		    out[o] == '\0')
			abort();
		if (out[o] == '\\') {
			if (hexv(out[o + 1]) < 0 || hexv(out[o + 2]) < 0 ||
			    (uint8_t)(hexv(out[o + 1]) << 4 |
			    hexv(out[o + 2])) != s[i])
				abort();
			o += 3;
		} else if ((uint8_t)out[o++] != s[i])
			abort();
	}
	if (i != n || out[len] != '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dir_ldap_attr	 v[DIR_LDAP_ATTRS_MAX];
	char			 tmpl[1024], f[DIR_LDAP_FILTER_MAX];
	const uint8_t		*addr, *at;
	const char		*why;
	uint8_t			 chk[32];
	uint64_t		 t;
	size_t			 tlen, alen, n, i;
	long			 r;

	(void)dir_ldap_snap_header(data, size, &t, chk);
	check_escape(data, size);
	addr = memchr(data, '\0', size);
	tlen = addr != NULL ? (size_t)(addr - data) : size;
	if (tlen >= sizeof(tmpl))
		return 0;
	memcpy(tmpl, data, tlen);
	tmpl[tlen] = '\0';
	addr = addr != NULL ? addr + 1 : data + size;
	alen = (size_t)(data + size - addr);
	at = memchr(addr, '@', alen);
	i = at != NULL ? (size_t)(at - addr) : alen;
	r = dir_ldap_filter_expand(tmpl, addr, i, at != NULL ? at + 1 : addr,
	    at != NULL ? alen - i - 1 : 0, f, sizeof(f));
	if (r >= 0) {
		if ((size_t)r != strlen(f) || count(f, '(') !=
		    count(tmpl, '(') || count(f, ')') != count(tmpl, ')'))
			abort();
	} else if (dir_ldap_filter_check(tmpl, &why) == 0 &&
	    count(tmpl, '%') * 3 * (alen + 1) + tlen + 1 < sizeof(f))
		abort();	/* a good template with room cannot fail */
	if (dir_ldap_filter_sync(tmpl, v, &n, f, sizeof(f), &why) == 0) {
		if (n == 0 || n > DIR_LDAP_ATTRS_MAX || strlen(f) >= sizeof(f))
			abort();
		for (i = 0; i < n; i++)
			if (v[i].name[0] == '\0' ||
			    strlen(v[i].name) > DIR_LDAP_ATTR_MAX ||
			    strlen(v[i].prefix) > DIR_LDAP_PREFIX_MAX)
				abort();
	} else if (why == NULL)
		abort();
	return 0;
}
