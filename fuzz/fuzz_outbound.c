/*
 * fuzz_outbound.c - libFuzzer target for the parsers of outbound trust
 * (issue 20): fingerprint pins (fprint.c) and the smarthost credentials
 * file (relay_cred.c).  The whole input goes to fprint_parse and to
 * relay_creds_load_mem; each line to relay_cred_parse_line.  Checks:
 * results in range, spans inside the line and within their bounds,
 * entries bounded, NUL-ended and found again by their host and port.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/relay_cred.h"
#include "lib/fprint.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static bool
fuzz_inside(const char *base, size_t len, const char *p, size_t n)
{
	return n == 0 || (p >= base && p + n <= base + len);
}

static void
fuzz_pins(const char *p, size_t len)
{
	struct fprint_pins	pins;
	size_t			at = 0, i;
	enum parse_rc		rc;

	rc = fprint_parse(p, len, &pins, &at);
	if (rc == PARSE_OK) {
		if (pins.n > FPRINT_PINS_MAX)
			abort();
		for (i = 0; i < pins.n; i++)
			if (!fprint_match(&pins, pins.d[i]))
				abort();
	} else if (rc == PARSE_BAD && at > len)
		abort();
	else if (rc == PARSE_MORE)
		abort();
}

static void
fuzz_cred_lines(const char *p, size_t len)
{
	struct relay_cred_line	 l;
	const char		*nl, *end = p + len, *why;
	size_t			 n;
	enum parse_rc		 rc;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		rc = relay_cred_parse_line(p, n, &l, &why);
		if (rc == PARSE_OK && l.hlen > 0 && (!fuzz_inside(p, n, l.host,
		    l.hlen) || !fuzz_inside(p, n, l.user, l.ulen) ||
		    !fuzz_inside(p, n, l.pass, l.plen) || l.port == 0 ||
		    l.hlen > RELAY_CRED_HOST_MAX || l.ulen == 0 ||
		    l.ulen > RELAY_CRED_USER_MAX || l.plen == 0 ||
		    l.plen > RELAY_CRED_PASS_MAX))
			abort();
		if (rc != PARSE_OK && (rc == PARSE_MORE || why == NULL))
			abort();
		p += n + (nl != NULL);
	}
}

/* Every line of a file that loaded is found again by its host and port. */
static void
fuzz_cred_find(const struct relay_creds *t, const char *p, size_t len)
{
	struct relay_cred_line	 l;
	const struct relay_cred	*c;
	const char		*nl, *end = p + len, *why;
	char			 host[RELAY_CRED_HOST_MAX + 1];
	size_t			 n;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (relay_cred_parse_line(p, n, &l, &why) == PARSE_OK &&
		    l.hlen > 0 && memchr(l.host, '\0', l.hlen) == NULL) {
			memcpy(host, l.host, l.hlen);
			host[l.hlen] = '\0';
			c = relay_creds_find(t, host, l.port);
			if (c == NULL || c->port != l.port ||
			    strcasecmp(c->host, host) != 0 ||
			    memchr(c->user, '\0', sizeof(c->user)) == NULL ||
			    memchr(c->pass, '\0', sizeof(c->pass)) == NULL)
				abort();
		}
		p += n + (nl != NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char		*p = (const char *)data;
	struct relay_creds	*t;

	fuzz_pins(p, len);
	fuzz_cred_lines(p, len);
	if ((t = relay_creds_load_mem(p, len, "fuzz", NULL, NULL)) != NULL) {
		if (relay_creds_count(t) > RELAY_CRED_MAX)
			abort();
		fuzz_cred_find(t, p, len);
		relay_creds_free(t);
	}
	return 0;
}
