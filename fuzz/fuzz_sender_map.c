/*
 * fuzz_sender_map.c - libFuzzer target for the sender login map
 * (auth/sender_map.c).  The input is a map file.  Checks: each line's
 * spans lie inside it and an entry's address has one '@'; PARSE_TOOLONG
 * only past the bound; the file loads exactly when no line is bad; once
 * loaded, every (address, user) pair of the text is owned, with the
 * domain in upper case too, and an address nobody is given is not.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sender_map.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_err(void *arg, const char *file, unsigned line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || *msg == '\0')
		abort();
	(*(unsigned *)arg)++;
}

/* Every user of the entry owns its address. */
static void
fuzz_pairs(const struct sender_map *m, const char *s,
    const struct sender_map_line *l, bool local_case)
{
	char		 user[PASSWD_USER_MAX + 1], dom[SENDER_MAP_DOMAIN_MAX];
	const char	*a = s + l->aoff, *at = memchr(a, '@', l->alen);
	const char	*u = s + l->uoff, *c;
	size_t		 ll = (size_t)(at - a), dl = l->alen - ll - 1, i, n;

	for (i = 0; i < dl; i++)
		dom[i] = at[1 + i] >= 'a' && at[1 + i] <= 'z' ?
		    (char)(at[1 + i] - 'a' + 'A') : at[1 + i];
	while (u < s + l->uoff + l->ulen) {
		c = memchr(u, ',', (size_t)(s + l->uoff + l->ulen - u));
		n = c != NULL ? (size_t)(c - u) :
		    (size_t)(s + l->uoff + l->ulen - u);
		if (n == 0 || n > PASSWD_USER_MAX)
			abort();
		memcpy(user, u, n);
		user[n] = '\0';
		if (!sender_owns(m, user, a, ll, at + 1, dl, false,
		    local_case, "") ||
		    !sender_owns(m, user, a, ll, dom, dl, false, local_case,
		    NULL))
			abort();
		/* "x_y" is no domain the parser takes: the map gives it to
		 * nobody (a user named "zz@x_y" owns it by name) */
		if (strchr(user, '@') == NULL && sender_owns(m, user, "zz", 2,
		    "x_y", 3, false, local_case, ""))
			abort();
		u += n + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *)data, *end = s + size, *nl;
	struct sender_map_line	 l;
	struct sender_map	*m;
	const char		*why;
	enum parse_rc		 rc;
	unsigned		 nerr = 0, bad = 0;
	bool			 local_case = size > 0 && (data[0] & 1);
	size_t			 n;

	m = sender_map_load_mem(s, size, "fuzz", local_case, fuzz_err, &nerr);
	if ((m == NULL) != (nerr > 0))
		abort();
	for (; s < end; s = nl + 1) {
		if ((nl = memchr(s, '\n', (size_t)(end - s))) == NULL)
			nl = end;
		n = (size_t)(nl - s);
		rc = sender_map_parse_line(s, n, &l, &why);
		if (memchr(s, '\0', n) != NULL) {
			bad++;
			continue;
		}
		if (rc != PARSE_OK) {
			if (why == NULL || (rc == PARSE_TOOLONG) !=
			    (n > SENDER_MAP_LINE_MAX))
				abort();
			bad++;
			continue;
		}
		if (l.alen == 0)
			continue;
		if (l.aoff + l.alen > n || l.uoff + l.ulen > n ||
		    l.ulen == 0 || memchr(s + l.aoff, '@', l.alen) == NULL)
			abort();
		if (m != NULL)
			fuzz_pairs(m, s, &l, local_case);
	}
	if ((bad > 0) != (m == NULL))
		abort();
	sender_map_free(m);
	return 0;
}
