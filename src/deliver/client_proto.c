/*
 * client_proto.c - pure parser for the replies of an SMTP/LMTP server.
 * Owns: reply syntax (RFC 5321 4.2), enhanced status codes (RFC 3463,
 * 2034), EHLO keywords (RFC 5321 4.1.1.1, 1870, 2920, 3207, 6152,
 * 3030, 4954 AUTH mechanisms).
 * Never: I/O, allocation, state beyond one reply.
 * Untrusted: every byte; lines and line counts are bounded here.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "client.h"

#define REPLY_ESC_PART_MAX	3	/* digits in subject and detail */

struct reply_kw {
	const char	*name;
	unsigned	 flag;
};

static const struct reply_kw reply_kws[] = {
	{ "PIPELINING",		 CLIENT_EXT_PIPELINING },
	{ "SIZE",		 CLIENT_EXT_SIZE },
	{ "8BITMIME",		 CLIENT_EXT_8BITMIME },
	{ "STARTTLS",		 CLIENT_EXT_STARTTLS },
	{ "ENHANCEDSTATUSCODES", CLIENT_EXT_ENHANCED },
	{ "DSN",		 CLIENT_EXT_DSN },
	{ "CHUNKING",		 CLIENT_EXT_CHUNKING },
	{ "SMTPUTF8",		 CLIENT_EXT_SMTPUTF8 },
};

static bool
reply_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "2yz".."5yz" with y in 0..5 (RFC 5321 4.2.1); 1yz is not used in SMTP. */
static bool
reply_code(const char *p, unsigned *code)
{
	if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' ||
	    !reply_digit(p[2]))
		return false;
	*code = (unsigned)(p[0] - '0') * 100 + (unsigned)(p[1] - '0') * 10 +
	    (unsigned)(p[2] - '0');
	return true;
}

/* 1 to 3 digits at *i; advances *i. */
static bool
reply_esc_part(const char *p, size_t len, size_t *i)
{
	size_t	n = 0;

	while (*i < len && reply_digit(p[*i]) && n < REPLY_ESC_PART_MAX) {
		(*i)++;
		n++;
	}
	return n > 0 && (*i == len || !reply_digit(p[*i]));
}

/*
 * "class.subject.detail" followed by a space or the end (RFC 3463 2);
 * the class must agree with the reply code, else it is ignored.
 */
static void
reply_esc(struct client_reply *r, const char *p, size_t len)
{
	size_t	i;

	if (len < 5 || p[0] != (char)('0' + r->code / 100) || p[1] != '.')
		return;
	i = 2;
	if (!reply_esc_part(p, len, &i) || i >= len || p[i++] != '.')
		return;
	if (!reply_esc_part(p, len, &i) || (i < len && p[i] != ' '))
		return;
	memcpy(r->esc, p, i);		/* i <= 9 < sizeof(r->esc) */
	r->esc[i] = '\0';
}

/* SIZE's argument: decimal, bounded; an unparsable one means no limit. */
static unsigned long
reply_size_arg(const char *p, size_t len)
{
	unsigned long	v = 0;
	size_t		i;

	for (i = 0; i < len && reply_digit(p[i]); i++) {
		if (v > (~0UL - 9) / 10)
			return 0;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return i == len ? v : 0;
}

/* "AUTH PLAIN LOGIN ...": the mechanisms we can use (RFC 4954 3). */
static void
reply_auth_mechs(struct client_reply *r, const char *p, size_t len)
{
	size_t	i = 0, s;

	while (i < len) {
		while (i < len && p[i] == ' ')
			i++;
		for (s = i; i < len && p[i] != ' '; i++)
			;
		if (i - s == 5 && strncasecmp(p + s, "PLAIN", 5) == 0)
			r->ext |= CLIENT_EXT_AUTH_PLAIN;
		else if (i - s == 5 && strncasecmp(p + s, "LOGIN", 5) == 0)
			r->ext |= CLIENT_EXT_AUTH_LOGIN;
	}
}

static void
reply_keyword(struct client_reply *r, const char *p, size_t len)
{
	size_t	i, kl;

	for (kl = 0; kl < len && p[kl] != ' '; kl++)
		;
	if (kl == 4 && strncasecmp(p, "AUTH", 4) == 0) {
		reply_auth_mechs(r, p + kl, len - kl);
		return;
	}
	for (i = 0; i < sizeof(reply_kws) / sizeof(reply_kws[0]); i++) {
		if (strlen(reply_kws[i].name) != kl ||
		    strncasecmp(p, reply_kws[i].name, kl) != 0)
			continue;
		r->ext |= reply_kws[i].flag;
		if (reply_kws[i].flag == CLIENT_EXT_SIZE && kl < len)
			r->size_max = reply_size_arg(p + kl + 1, len - kl - 1);
		return;
	}
}

void
client_reply_init(struct client_reply *r)
{
	memset(r, 0, sizeof(*r));
}

enum parse_rc
client_reply_line(struct client_reply *r, const char *p, size_t len)
{
	unsigned	code;
	bool		last;

	if (len + 2 > CLIENT_LINE_MAX || r->nlines >= CLIENT_REPLY_LINES_MAX)
		return PARSE_TOOLONG;
	if (len < 3 || !reply_code(p, &code))
		return PARSE_BAD;
	if (len == 3 || p[3] == ' ')
		last = true;
	else if (p[3] == '-')
		last = false;
	else
		return PARSE_BAD;
	if (r->nlines > 0 && code != r->code)
		return PARSE_BAD;
	if (r->nlines == 0) {
		r->code = code;
		memcpy(r->line, p, len);
		r->line[len] = '\0';
		r->linelen = len;
		if (len > 4)
			reply_esc(r, p + 4, len - 4);
	} else if (len > 4)
		reply_keyword(r, p + 4, len - 4);
	r->nlines++;
	return last ? PARSE_OK : PARSE_MORE;
}
