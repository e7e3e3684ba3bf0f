/*
 * spf_macro.c - SPF macro expansion (RFC 7208 7) into a bounded buffer.
 * Owns: the macro-string grammar, transformers, delimiters, URL escaping
 * of upper-case macros, the %{i} forms of IPv4 and IPv6.
 * Never: writes past outlen (every byte goes through spf_put), looks up
 * anything (%{p} is asked of the caller), allocates.
 * Untrusted: the macro-string (from DNS) and every value it names.
 */
#include <sys/socket.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <string.h>

#include "spf.h"

#define SPF_PARTS_MAX	128	/* parts a value splits into (7.3: >= 128) */

struct spf_out {
	char	*buf;
	size_t	 len, cap;	/* cap counts the NUL */
	bool	 over;
};

static void	spf_put(struct spf_out *, const char *, size_t);
static void	spf_put_escaped(struct spf_out *, const char *, size_t);
static enum spf_macro_rc spf_macro_value(const struct spf_macro_ctx *, char,
		    bool, char *, size_t);
static enum spf_macro_rc spf_macro_one(const struct spf_macro_ctx *,
		    const char *, size_t, bool, struct spf_out *);

static void
spf_put(struct spf_out *o, const char *s, size_t n)
{
	if (o->over || n > o->cap - 1 - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* RFC 3986 unreserved characters pass; every other byte becomes %XX. */
static void
spf_put_escaped(struct spf_out *o, const char *s, size_t n)
{
	static const char	hex[] = "0123456789ABCDEF";
	char			e[3];
	unsigned char		c;
	size_t			i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			spf_put(o, s + i, 1);
			continue;
		}
		e[0] = '%';
		e[1] = hex[c >> 4];
		e[2] = hex[c & 15];
		spf_put(o, e, 3);
	}
}

/* The value of one macro letter (lower case) into v. */
static enum spf_macro_rc
spf_macro_value(const struct spf_macro_ctx *c, char letter, bool explain,
    char *v, size_t vlen)
{
	static const char	hex[] = "0123456789abcdef";
	const char		*s = NULL;
	size_t			 i, n = 0;

	switch (letter) {
	case 's': s = c->sender; break;
	case 'l': s = c->local; break;
	case 'o': s = c->sdomain; break;
	case 'd': s = c->domain; break;
	case 'h': s = c->helo; break;
	case 'v': s = c->family == AF_INET ? "in-addr" : "ip6"; break;
	case 'p':
		if (c->pname == NULL)
			return SPF_MACRO_NEED_P;
		s = c->pname;
		break;
	case 'i':
		if (c->family == AF_INET)
			break;		/* dotted quad, as %{c} */
		for (i = 0; i < 16 && n + 4 < vlen; i++) {
			v[n++] = hex[c->ip[i] >> 4];
			v[n++] = '.';
			v[n++] = hex[c->ip[i] & 15];
			v[n++] = i == 15 ? '\0' : '.';
		}
		return SPF_MACRO_OK;
	case 'c':
		if (!explain)
			return SPF_MACRO_SYNTAX;
		break;
	case 'r':
		if (!explain)
			return SPF_MACRO_SYNTAX;
		s = c->receiver != NULL && c->receiver[0] != '\0' ?
		    c->receiver : "unknown";
		break;
	case 't':
		if (!explain)
			return SPF_MACRO_SYNTAX;
		(void)snprintf(v, vlen, "%lld", (long long)c->now);
		return SPF_MACRO_OK;
	default:
		return SPF_MACRO_SYNTAX;
	}
	if (s == NULL) {	/* i (IPv4) and c: the address as text */
		if (inet_ntop(c->family, c->ip, v, (socklen_t)vlen) == NULL)
			v[0] = '\0';
		return SPF_MACRO_OK;
	}
	if (strlen(s) >= vlen)
		return SPF_MACRO_TOOLONG;
	memcpy(v, s, strlen(s) + 1);
	return SPF_MACRO_OK;
}

/*
 * One "%{" letter *DIGIT ["r"] *delimiter "}" (body is what lies between
 * the braces): split the value on the delimiters ("." when none), reverse
 * when asked, keep the rightmost DIGIT parts, join them with ".".
 */
static enum spf_macro_rc
spf_macro_one(const struct spf_macro_ctx *c, const char *body, size_t blen,
    bool explain, struct spf_out *o)
{
	char			 val[SPF_EXPAND_MAX], delim[8];
	const char		*part[SPF_PARTS_MAX];
	size_t			 plen[SPF_PARTS_MAX], np = 0, i = 1, nd = 0, k;
	size_t			 first, vlen;
	unsigned long		 keep = 0;
	bool			 rev = false, digits = false, upper;
	char			 letter, *p, *start;
	enum spf_macro_rc	 rc;

	if (blen == 0)
		return SPF_MACRO_SYNTAX;
	letter = body[0];
	upper = letter >= 'A' && letter <= 'Z';
	if (upper)
		letter = (char)(letter - 'A' + 'a');
	while (i < blen && body[i] >= '0' && body[i] <= '9') {
		digits = true;
		if (keep < 1000)
			keep = keep * 10 + (unsigned long)(body[i] - '0');
		i++;
	}
	if (digits && keep == 0)
		return SPF_MACRO_SYNTAX;	/* 7.3: the value MUST be nonzero */
	if (i < blen && (body[i] == 'r' || body[i] == 'R')) {
		rev = true;
		i++;
	}
	for (; i < blen; i++) {
		if (strchr(".-+,/_=", body[i]) == NULL || body[i] == '\0')
			return SPF_MACRO_SYNTAX;
		if (nd < sizeof(delim) - 1 && memchr(delim, body[i], nd) == NULL)
			delim[nd++] = body[i];
	}
	if (nd == 0)
		delim[nd++] = '.';
	delim[nd] = '\0';
	if ((rc = spf_macro_value(c, letter, explain, val, sizeof(val))) !=
	    SPF_MACRO_OK)
		return rc;
	if (!digits && !rev && nd == 1 && delim[0] == '.') {
		if (upper)
			spf_put_escaped(o, val, strlen(val));
		else
			spf_put(o, val, strlen(val));
		return SPF_MACRO_OK;
	}
	/* split; past SPF_PARTS_MAX the rest stays in the last part */
	for (p = start = val;; p++) {
		if (*p != '\0' && (strchr(delim, *p) == NULL ||
		    np == SPF_PARTS_MAX - 1))
			continue;
		part[np] = start;
		plen[np++] = (size_t)(p - start);
		if (*p == '\0')
			break;
		start = p + 1;
	}
	if (rev)
		for (k = 0; k < np / 2; k++) {
			const char	*t = part[k];
			size_t		 tl = plen[k];

			part[k] = part[np - 1 - k];
			plen[k] = plen[np - 1 - k];
			part[np - 1 - k] = t;
			plen[np - 1 - k] = tl;
		}
	first = digits && keep < np ? np - keep : 0;
	for (k = first; k < np; k++) {
		if (k > first)
			spf_put(o, ".", 1);
		vlen = plen[k];
		if (upper)
			spf_put_escaped(o, part[k], vlen);
		else
			spf_put(o, part[k], vlen);
	}
	return SPF_MACRO_OK;
}

enum spf_macro_rc
spf_macro_expand(const struct spf_macro_ctx *c, const char *in, size_t len,
    bool explain, char *out, size_t outlen, size_t *outlenp)
{
	struct spf_out		 o = { out, 0, outlen, false };
	const char		*close;
	size_t			 i;
	unsigned char		 ch;
	enum spf_macro_rc	 rc;

	if (outlen == 0)
		return SPF_MACRO_TOOLONG;
	out[0] = '\0';
	for (i = 0; i < len; i++) {
		ch = (unsigned char)in[i];
		if (ch != '%') {
			/* macro-literal: %x21-24 / %x26-7E; exp text: SP too */
			if (ch > 0x7e || ch < (explain ? 0x20 : 0x21))
				return SPF_MACRO_SYNTAX;
			spf_put(&o, in + i, 1);
			continue;
		}
		if (++i == len)
			return SPF_MACRO_SYNTAX;
		switch (in[i]) {
		case '%': spf_put(&o, "%", 1); break;
		case '_': spf_put(&o, " ", 1); break;
		case '-': spf_put(&o, "%20", 3); break;
		case '{':
			close = memchr(in + i + 1, '}', len - i - 1);
			if (close == NULL)
				return SPF_MACRO_SYNTAX;
			rc = spf_macro_one(c, in + i + 1,
			    (size_t)(close - in - i - 1), explain, &o);
			if (rc != SPF_MACRO_OK)
				return rc;
			i = (size_t)(close - in);
			break;
		default:
			return SPF_MACRO_SYNTAX;
		}
		if (o.over)
			return SPF_MACRO_TOOLONG;
	}
	if (o.over)
		return SPF_MACRO_TOOLONG;
	if (outlenp != NULL)
		*outlenp = o.len;
	return SPF_MACRO_OK;
}

bool
spf_macro_valid(const char *in, size_t len, bool explain)
{
	static const uint8_t		ip[16];
	const struct spf_macro_ctx	c = {
		.sender = "", .local = "", .sdomain = "", .domain = "",
		.helo = "", .pname = "", .receiver = "", .family = AF_INET,
		.ip = ip,
	};
	char				out[SPF_EXPAND_MAX];
	enum spf_macro_rc		rc;

	rc = spf_macro_expand(&c, in, len, explain, out, sizeof(out), NULL);
	return rc != SPF_MACRO_SYNTAX;
}
