/*
 * smtp_auth.c - the AUTH PLAIN / AUTH LOGIN exchange and base64 (see
 * smtp_auth.h).  Owns: the mechanism table, the LOGIN prompts, the PLAIN
 * message layout "[authzid] NUL authcid NUL passwd".
 * Never: I/O, allocation, logging; decoded secrets live only in the
 * caller's struct until smtp_auth_clear() wipes them.
 * Untrusted: all input.  RFC 4954 4, RFC 4616 2, RFC 4648 4.
 */
#include <string.h>

#include "smtp_auth.h"

#define AUTH_B64_BAD	0xff

/* RFC 4954 4: LOGIN is not standardised; these prompts are what every
 * client expects ("Username:", "Password:"). */
#define AUTH_LOGIN_USER	"VXNlcm5hbWU6"
#define AUTH_LOGIN_PASS	"UGFzc3dvcmQ6"

static const struct {
	const char		*name;
	enum smtp_auth_mech	 mech;
} auth_mechs[] = {
	{ "PLAIN", SMTP_AUTH_PLAIN },
	{ "LOGIN", SMTP_AUTH_LOGIN },
	{ NULL, SMTP_AUTH_NONE },
};

static enum smtp_auth_rc	auth_plain(struct smtp_auth *,
				    const uint8_t *, size_t);
static enum smtp_auth_rc	auth_login(struct smtp_auth *,
				    const uint8_t *, size_t);

static uint8_t
auth_b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return (uint8_t)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (uint8_t)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (uint8_t)(c - '0' + 52);
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return AUTH_B64_BAD;
}

enum parse_rc
smtp_auth_b64_decode(const uint8_t *in, size_t len, uint8_t *out,
    size_t outmax, size_t *outlen)
{
	size_t		i, j, o = 0, pad = 0;
	uint8_t		v[4];
	uint32_t	q;

	*outlen = 0;
	if (len % 4 != 0)
		return PARSE_BAD;
	if (len > 0 && in[len - 1] == '=')
		pad = len > 1 && in[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > outmax)
		return PARSE_TOOLONG;
	for (i = 0; i < len; i += 4) {
		for (j = 0; j < 4; j++) {
			if (i + j >= len - pad)
				v[j] = 0;	/* the final padding */
			else if ((v[j] = auth_b64_value(in[i + j])) ==
			    AUTH_B64_BAD)
				return PARSE_BAD;
		}
		q = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | v[3];
		out[o++] = (uint8_t)(q >> 16);
		if (i + 4 < len || pad < 2)
			out[o++] = (uint8_t)(q >> 8);
		if (i + 4 < len || pad < 1)
			out[o++] = (uint8_t)q;
	}
	*outlen = o;
	return PARSE_OK;
}

/* A response line decoded into dec; SMTP_AUTH_READY means "decoded". */
static enum smtp_auth_rc
auth_decode(const uint8_t *line, size_t len, uint8_t *dec, size_t *dlen)
{
	if (len == 1 && line[0] == '*')
		return SMTP_AUTH_CANCEL;	/* RFC 4954 4 */
	if (len > SMTP_AUTH_LINE_MAX)
		return SMTP_AUTH_TOO_LONG;
	switch (smtp_auth_b64_decode(line, len, dec, SMTP_AUTH_DECODED_MAX,
	    dlen)) {
	case PARSE_OK:
		return SMTP_AUTH_READY;
	case PARSE_TOOLONG:
		return SMTP_AUTH_TOO_LONG;
	default:
		return SMTP_AUTH_BAD_B64;
	}
}

/* An identity: 1..SMTP_AUTH_USER_MAX bytes, no NUL (RFC 4616 2). */
static bool
auth_set_user(struct smtp_auth *a, const uint8_t *p, size_t n)
{
	if (n == 0 || n > SMTP_AUTH_USER_MAX || memchr(p, '\0', n) != NULL)
		return false;
	memcpy(a->user, p, n);
	a->user[n] = '\0';
	a->ulen = n;
	return true;
}

static bool
auth_set_pass(struct smtp_auth *a, const uint8_t *p, size_t n)
{
	if (n == 0 || n > SMTP_AUTH_PASS_MAX || memchr(p, '\0', n) != NULL)
		return false;
	memcpy(a->pass, p, n);
	a->pass[n] = '\0';
	a->plen = n;
	return true;
}

/* RFC 4616 2: [authzid] NUL authcid NUL passwd.  An authzid other than
 * the authcid would be acting for someone else: refused. */
static enum smtp_auth_rc
auth_plain_message(struct smtp_auth *a, const uint8_t *m, size_t n)
{
	const uint8_t	*nul1, *nul2, *cid;
	size_t		 zlen, clen;

	if ((nul1 = memchr(m, '\0', n)) == NULL)
		return SMTP_AUTH_MALFORMED;
	cid = nul1 + 1;
	if ((nul2 = memchr(cid, '\0', n - (size_t)(cid - m))) == NULL)
		return SMTP_AUTH_MALFORMED;
	zlen = (size_t)(nul1 - m);
	clen = (size_t)(nul2 - cid);
	if (!auth_set_user(a, cid, clen))
		return SMTP_AUTH_MALFORMED;
	if (zlen > 0 && (zlen != clen || memcmp(m, cid, clen) != 0))
		return SMTP_AUTH_MALFORMED;
	if (!auth_set_pass(a, nul2 + 1, n - (size_t)(nul2 + 1 - m)))
		return SMTP_AUTH_MALFORMED;
	return SMTP_AUTH_READY;
}

static enum smtp_auth_rc
auth_plain(struct smtp_auth *a, const uint8_t *line, size_t len)
{
	uint8_t			dec[SMTP_AUTH_DECODED_MAX];
	size_t			dlen;
	enum smtp_auth_rc	rc;

	if ((rc = auth_decode(line, len, dec, &dlen)) == SMTP_AUTH_READY)
		rc = auth_plain_message(a, dec, dlen);
	explicit_bzero(dec, sizeof(dec));
	return rc;
}

static enum smtp_auth_rc
auth_login(struct smtp_auth *a, const uint8_t *line, size_t len)
{
	uint8_t			dec[SMTP_AUTH_DECODED_MAX];
	size_t			dlen;
	enum smtp_auth_rc	rc;

	rc = auth_decode(line, len, dec, &dlen);
	if (rc == SMTP_AUTH_READY && a->want_pass)
		rc = auth_set_pass(a, dec, dlen) ? SMTP_AUTH_READY :
		    SMTP_AUTH_MALFORMED;
	else if (rc == SMTP_AUTH_READY && auth_set_user(a, dec, dlen)) {
		a->want_pass = true;
		a->challenge = AUTH_LOGIN_PASS;
		rc = SMTP_AUTH_CHALLENGE;
	} else if (rc == SMTP_AUTH_READY)
		rc = SMTP_AUTH_MALFORMED;
	explicit_bzero(dec, sizeof(dec));
	return rc;
}

static bool
auth_ieq(const uint8_t *p, size_t n, const char *s)
{
	size_t	i;
	uint8_t	c;

	if (n != strlen(s))
		return false;
	for (i = 0; i < n; i++) {
		c = p[i] >= 'a' && p[i] <= 'z' ? (uint8_t)(p[i] - 32) : p[i];
		if (c != (uint8_t)s[i])
			return false;
	}
	return true;
}

enum smtp_auth_rc
smtp_auth_start(struct smtp_auth *a, const uint8_t *arg, size_t len)
{
	const uint8_t	*sp, *ir;
	size_t		 mlen, irlen, i;

	smtp_auth_clear(a);
	sp = memchr(arg, ' ', len);
	mlen = sp != NULL ? (size_t)(sp - arg) : len;
	if (mlen == 0 || mlen > SMTP_AUTH_MECH_MAX)
		return mlen == 0 ? SMTP_AUTH_SYNTAX : SMTP_AUTH_BAD_MECH;
	for (i = 0; auth_mechs[i].name != NULL; i++)
		if (auth_ieq(arg, mlen, auth_mechs[i].name))
			break;
	if ((a->mech = auth_mechs[i].mech) == SMTP_AUTH_NONE)
		return SMTP_AUTH_BAD_MECH;
	if (sp == NULL) {
		a->challenge = a->mech == SMTP_AUTH_PLAIN ? "" :
		    AUTH_LOGIN_USER;
		return SMTP_AUTH_CHALLENGE;
	}
	ir = sp + 1;
	irlen = len - mlen - 1;
	if (irlen == 0 || memchr(ir, ' ', irlen) != NULL)
		return SMTP_AUTH_SYNTAX;
	if (irlen == 1 && ir[0] == '=')
		irlen = 0;		/* RFC 4954 4: "=" is empty */
	return smtp_auth_step(a, ir, irlen);
}

enum smtp_auth_rc
smtp_auth_step(struct smtp_auth *a, const uint8_t *line, size_t len)
{
	switch (a->mech) {
	case SMTP_AUTH_PLAIN:
		return auth_plain(a, line, len);
	case SMTP_AUTH_LOGIN:
		return auth_login(a, line, len);
	default:
		return SMTP_AUTH_BAD_MECH;
	}
}

void
smtp_auth_clear(struct smtp_auth *a)
{
	explicit_bzero(a, sizeof(*a));
	a->mech = SMTP_AUTH_NONE;
	a->challenge = "";
}

const char *
smtp_auth_mech_name(enum smtp_auth_mech m)
{
	size_t	i;

	for (i = 0; auth_mechs[i].name != NULL; i++)
		if (auth_mechs[i].mech == m)
			return auth_mechs[i].name;
	return "none";
}
