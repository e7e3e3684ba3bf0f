/*
 * client_auth.c - AUTH PLAIN and LOGIN responses (see client_auth.h).
 * Owns: the choice of mechanism and the encoding of the credentials.
 * Never: sends anything (client.c does, and only under TLS), logs, keeps
 * a copy: its scratch buffer is wiped before it returns.
 * RFC 4954 4 (AUTH and its initial response), RFC 4616 2 (PLAIN).
 */
#include <string.h>

#include <openssl/evp.h>

#include "client.h"
#include "client_auth.h"

enum client_auth_mech
client_auth_pick(unsigned ext)
{
	if (ext & CLIENT_EXT_AUTH_PLAIN)
		return CLIENT_AUTH_PLAIN;
	if (ext & CLIENT_EXT_AUTH_LOGIN)
		return CLIENT_AUTH_LOGIN;
	return CLIENT_AUTH_NONE;
}

/* base64 of in[0..n) after prefix into out. */
static int
client_auth_enc(const char *prefix, const unsigned char *in, size_t n,
    char *out, size_t outsz)
{
	size_t	pl = strlen(prefix), need = pl + 4 * ((n + 2) / 3) + 1;

	if (n == 0 || need > outsz)
		return -1;
	memcpy(out, prefix, pl);
	(void)EVP_EncodeBlock((unsigned char *)out + pl, in, (int)n);
	out[need - 1] = '\0';
	return 0;
}

int
client_auth_plain(const char *user, const char *pass, char *out,
    size_t outsz)
{
	unsigned char	buf[2 + 2 * CLIENT_AUTH_MAX];
	size_t		ul = strlen(user), pl = strlen(pass);
	int		rc;

	if (ul == 0 || pl == 0 || ul > CLIENT_AUTH_MAX ||
	    pl > CLIENT_AUTH_MAX)
		return -1;
	buf[0] = '\0';
	memcpy(buf + 1, user, ul);
	buf[1 + ul] = '\0';
	memcpy(buf + 2 + ul, pass, pl);
	rc = client_auth_enc("AUTH PLAIN ", buf, 2 + ul + pl, out, outsz);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

int
client_auth_b64(const char *s, char *out, size_t outsz)
{
	size_t	n = strlen(s);

	if (n > CLIENT_AUTH_MAX)
		return -1;
	return client_auth_enc("", (const unsigned char *)s, n, out, outsz);
}
