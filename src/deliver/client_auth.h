/*
 * client_auth.h - private to src/deliver: the client side of SMTP AUTH
 * (RFC 4954) with PLAIN (RFC 4616) and LOGIN, as pure encoders.
 * Never: I/O, logging (what these build holds a password), allocation.
 */
#ifndef MXGATE_CLIENT_AUTH_H
#define MXGATE_CLIENT_AUTH_H

#include <stddef.h>

enum client_auth_mech { CLIENT_AUTH_NONE, CLIENT_AUTH_PLAIN,
	CLIENT_AUTH_LOGIN };

/* The mechanism to use among those the EHLO reply offered (CLIENT_EXT_*
 * bits): PLAIN, else LOGIN, else NONE. */
enum client_auth_mech	client_auth_pick(unsigned ext);
/* "AUTH PLAIN " and base64("\0user\0pass") (RFC 4616 2: no authzid), NUL-
 * ended; 0, or -1 if it does not fit or a field is empty or over 255. */
int	client_auth_plain(const char *user, const char *pass, char *out,
	    size_t outsz);
/* base64 of s (a LOGIN response), NUL-ended; 0 or -1 as above. */
int	client_auth_b64(const char *s, char *out, size_t outsz);

#endif
