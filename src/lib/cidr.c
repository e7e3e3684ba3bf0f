/*
 * cidr.c - IPv4/IPv6 networks: parse "ADDR[/LEN]", match socket addresses.
 * Owns: prefix arithmetic; IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4 on
 * both sides, so a dual-stack listener and an IPv4 one decide alike.
 * Never: resolves names, logs, or allocates except for a list's array.
 * Untrusted: network text from the config (each item <= CIDR_TEXT_MAX).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"

/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" is 49 bytes. */
#define CIDR_TEXT_MAX	(INET6_ADDRSTRLEN + 4)
#define CIDR_MAPPED_BITS 96	/* ::ffff:0:0/96, RFC 4291 2.5.5.2 */

static const uint8_t cidr_mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* Clear every bit past prefix, so equal networks compare equal. */
static void
cidr_clear_host(uint8_t *a, size_t alen, unsigned prefix)
{
	size_t	i;

	for (i = 0; i < alen; i++) {
		if (prefix >= 8) {
			prefix -= 8;
			continue;
		}
		a[i] &= (uint8_t)(0xffu << (8 - prefix));
		prefix = 0;
	}
}

/* Decimal prefix length, 1 to 3 digits; -1 if not that. */
static int
cidr_parse_prefix(const char *s, unsigned *out)
{
	unsigned	v = 0;
	size_t		i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == 3 || s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0)
		return -1;
	*out = v;
	return 0;
}

int
cidr_parse(const char *s, size_t len, struct cidr *out)
{
	char		 text[CIDR_TEXT_MAX + 1], *slash;
	struct cidr	 c;
	unsigned	 maxbits;

	if (len == 0 || len > CIDR_TEXT_MAX || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(&c, 0, sizeof(c));
	c.family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
	maxbits = c.family == AF_INET ? 32 : 128;
	c.prefix = maxbits;			/* no "/LEN": one host */
	if ((slash = strchr(text, '/')) != NULL) {
		*slash = '\0';
		if (cidr_parse_prefix(slash + 1, &c.prefix) == -1)
			return -1;
	}
	if (c.prefix > maxbits || inet_pton(c.family, text, c.addr) != 1)
		return -1;
	cidr_clear_host(c.addr, maxbits / 8, c.prefix);
	if (c.family == AF_INET6 && c.prefix >= CIDR_MAPPED_BITS &&
	    memcmp(c.addr, cidr_mapped_prefix, 12) == 0) {
		/* ::ffff:10.0.0.0/104 is 10.0.0.0/8: clients are normalized
		 * the same way in cidr_match(). */
		c.family = AF_INET;
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.prefix -= CIDR_MAPPED_BITS;
	}
	*out = c;
	return 0;
}

/* The address bytes of sa; a v4-mapped IPv6 address counts as IPv4. */
static int
cidr_sa_bytes(const struct sockaddr *sa, uint8_t a[16])
{
	const char	*p = (const char *)sa;

	if (sa == NULL)
		return AF_UNSPEC;
	if (sa->sa_family == AF_INET) {
		memcpy(a, p + offsetof(struct sockaddr_in, sin_addr), 4);
		return AF_INET;
	}
	if (sa->sa_family != AF_INET6)
		return AF_UNSPEC;
	memcpy(a, p + offsetof(struct sockaddr_in6, sin6_addr), 16);
	if (memcmp(a, cidr_mapped_prefix, 12) == 0) {
		memmove(a, a + 12, 4);
		return AF_INET;
	}
	return AF_INET6;
}

bool
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	uint8_t		a[16];
	unsigned	full, rest;

	if (c == NULL || cidr_sa_bytes(sa, a) != c->family)
		return false;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ c->addr[full]) &
	    (uint8_t)(0xffu << (8 - rest))) == 0;
}

bool
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	size_t	i;

	if (l == NULL)
		return false;
	for (i = 0; i < l->n; i++)
		if (cidr_match(&l->v[i], sa))
			return true;
	return false;
}

static int
cidr_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int
cidr_list_parse(const char *s, struct cidr_list *l, const char **bad)
{
	const char	*p, *item, *end;
	size_t		 n = 1;

	l->v = NULL;
	l->n = 0;
	for (p = s; cidr_is_blank(*p); p++)
		;
	if (*p == '\0')
		return 0;			/* empty string: empty list */
	for (p = s; *p != '\0'; p++)
		n += *p == ',';
	if ((l->v = calloc(n, sizeof(*l->v))) == NULL) {
		if (bad != NULL)
			*bad = s;
		return -1;
	}
	for (p = s; l->n < n; p = end + 1) {
		while (cidr_is_blank(*p))
			p++;
		item = p;
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		while (end > item && cidr_is_blank(end[-1]))
			end--;
		if (cidr_parse(item, (size_t)(end - item), &l->v[l->n]) == -1) {
			if (bad != NULL)
				*bad = item;
			cidr_list_free(l);
			return -1;
		}
		l->n++;
		while (*end != ',' && *end != '\0')
			end++;			/* past trimmed blanks */
	}
	return 0;
}

void
cidr_list_free(struct cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
