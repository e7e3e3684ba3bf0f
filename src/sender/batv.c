/*
 * batv.c - the "prvs=" tag (see batv.h).
 * Owns: the tag's form and its HMAC.  Never: I/O, allocation, globals.
 * Untrusted: every local part and domain given to it.
 * draft-levine-smtp-batv-01 (the prvs form), RFC 2104 (HMAC).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "batv.h"

#define BATV_DAY	86400
#define BATV_DAYS_MOD	1000

static char
batv_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool
batv_tagged(const char *local, size_t len)
{
	size_t	i;

	if (len < BATV_PREFIX_LEN)
		return false;
	for (i = 0; i < BATV_PREFIX_LEN; i++)
		if (batv_lower(local[i]) != BATV_PREFIX[i])
			return false;
	return true;
}

/* The original local part: printable ASCII, no '@' or blank. */
static bool
batv_local_ok(const char *p, size_t n)
{
	size_t	i;

	if (n == 0 || n > BATV_LOCAL_MAX)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
		    p[i] == '@')
			return false;
	return true;
}

enum parse_rc
batv_parse(const char *local, size_t len, struct batv_tag *out)
{
	const char	*t = local + BATV_PREFIX_LEN;
	size_t		 i;
	int		 hi, lo;

	memset(out, 0, sizeof(*out));
	if (len > BATV_TAGGED_MAX)
		return PARSE_TOOLONG;
	if (!batv_tagged(local, len) ||
	    len < BATV_PREFIX_LEN + BATV_TAG_LEN + 2 ||
	    t[BATV_TAG_LEN] != '=')
		return PARSE_BAD;
	for (i = 0; i < 4; i++)
		if (t[i] < '0' || t[i] > '9')
			return PARSE_BAD;
	out->key = (unsigned)(t[0] - '0');
	out->day = (unsigned)((t[1] - '0') * 100 + (t[2] - '0') * 10 +
	    (t[3] - '0'));
	for (i = 0; i < 3; i++) {
		if ((hi = parse_hex_digit(t[4 + 2 * i])) < 0 ||
		    (lo = parse_hex_digit(t[5 + 2 * i])) < 0)
			return PARSE_BAD;
		out->mac[i] = (uint8_t)(hi << 4 | lo);
	}
	out->local = t + BATV_TAG_LEN + 1;
	out->llen = len - BATV_PREFIX_LEN - BATV_TAG_LEN - 1;
	if (!batv_local_ok(out->local, out->llen))
		return PARSE_BAD;
	return PARSE_OK;
}

/* Today's day number mod 1000 (UTC). */
static unsigned
batv_today(time_t now)
{
	return now < 0 ? 0 : (unsigned)((now / BATV_DAY) % BATV_DAYS_MOD);
}

/* HMAC-SHA1 over "KDDD" lower(local@domain), its first 3 bytes; -1 if
 * the input does not fit or the HMAC fails. */
static int
batv_mac(const struct keyring_key *k, unsigned day, const char *local,
    size_t llen, const char *domain, size_t dlen, uint8_t mac[3])
{
	char		in[4 + BATV_ADDR_MAX];
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned	mdlen = 0;
	size_t		i, n;

	if (llen + 1 + dlen > BATV_ADDR_MAX)
		return -1;
	snprintf(in, sizeof(in), "%u%03u", k->id, day % BATV_DAYS_MOD);
	n = 4;
	for (i = 0; i < llen; i++)
		in[n++] = batv_lower(local[i]);
	in[n++] = '@';
	for (i = 0; i < dlen; i++)
		in[n++] = batv_lower(domain[i]);
	if (HMAC(EVP_sha1(), k->secret, (int)k->len, (const unsigned char *)in,
	    n, md, &mdlen) == NULL || mdlen < 3)
		return -1;
	memcpy(mac, md, 3);
	return 0;
}

int
batv_sign(const struct keyring *ring, const char *addr, time_t now,
    char *out, size_t outlen)
{
	const char	*at = strrchr(addr, '@');
	unsigned	 day = (batv_today(now) + BATV_VALID_DAYS) % BATV_DAYS_MOD;
	uint8_t		 mac[3];
	size_t		 llen;
	int		 n;

	if (ring == NULL || ring->n == 0 || at == NULL || at == addr ||
	    at[1] == '\0')
		return -1;
	llen = (size_t)(at - addr);
	if (batv_tagged(addr, llen) || !batv_local_ok(addr, llen) ||
	    batv_mac(&ring->k[0], day, addr, llen, at + 1, strlen(at + 1),
	    mac) == -1)
		return -1;
	n = snprintf(out, outlen, "%s%u%03u%02x%02x%02x=%s", BATV_PREFIX,
	    ring->k[0].id, day, mac[0], mac[1], mac[2], addr);
	if (n < 0 || (size_t)n >= outlen || (size_t)n > BATV_ADDR_MAX)
		return -1;
	return 0;
}

enum batv_result
batv_verify(const struct keyring *ring, const char *local, size_t llen,
    const char *domain, size_t dlen, time_t now, struct batv_tag *tag)
{
	const struct keyring_key	*k;
	uint8_t				 mac[3];
	unsigned			 ahead;

	if (!batv_tagged(local, llen)) {
		memset(tag, 0, sizeof(*tag));
		tag->local = local;
		tag->llen = llen;
		return BATV_NONE;
	}
	if (batv_parse(local, llen, tag) != PARSE_OK)
		return BATV_MALFORMED;
	if ((k = keyring_find(ring, tag->key)) == NULL)
		return BATV_NOKEY;
	if (batv_mac(k, tag->day, tag->local, tag->llen, domain, dlen,
	    mac) == -1 || CRYPTO_memcmp(mac, tag->mac, sizeof(mac)) != 0)
		return BATV_BADSIG;
	/* days from today to the expiry day, mod 1000: 0..7 is valid, and
	 * 8 for a gateway whose clock is behind the signer's across a
	 * midnight; a past expiry wraps to 992..999 */
	ahead = (tag->day + BATV_DAYS_MOD - batv_today(now)) % BATV_DAYS_MOD;
	if (ahead > BATV_VALID_DAYS + BATV_SKEW_DAYS)
		return BATV_EXPIRED;
	return BATV_PASS;
}

const char *
batv_result_name(enum batv_result r)
{
	switch (r) {
	case BATV_NONE:
		return "none";
	case BATV_MALFORMED:
		return "malformed";
	case BATV_NOKEY:
		return "nokey";
	case BATV_BADSIG:
		return "badsig";
	case BATV_EXPIRED:
		return "expired";
	case BATV_PASS:
		return "pass";
	}
	return "?";
}
