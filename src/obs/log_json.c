/*
 * log_json.c - the JSON line format and the Postfix-style syslog lines
 * (see log_json.h); renderers that lib/log.c calls for every line.
 * Owns: JSON string escaping, the text line's tokenizer, which keys are
 * numbers.  Never: allocates, or writes past the caller's buffer.
 * Untrusted: the values in a line (peer bytes, escaped by log_esc()).
 * RFC 8259 (JSON), RFC 3629 (UTF-8).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "../lib/parse.h"
#include "log_json.h"

/* Length of a valid UTF-8 sequence at p (RFC 3629 4), or 0. */
static size_t
obs_utf8_len(const uint8_t *p, size_t n, uint32_t *cp)
{
	size_t		need, i;
	uint32_t	c = p[0], min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (n < need + 1)
		return 0;
	for (i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;	/* overlong, too large, a surrogate */
	*cp = c;
	return need + 1;
}

int
obs_json_escape(const uint8_t *p, size_t n, char *out, size_t cap)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			i = 0, o = 0, k;
	uint32_t		cp;
	char			e[8];
	size_t			elen;

	if (cap < 2)
		return -1;
	out[o++] = '"';
	while (i < n) {
		k = obs_utf8_len(p + i, n - i, &cp);
		elen = 0;
		if (k == 0) {		/* not UTF-8: U+FFFD */
			memcpy(e, "\\ufffd", 6);
			elen = 6;
			k = 1;
		} else if (cp == '"' || cp == '\\') {
			e[0] = '\\';
			e[1] = (char)cp;
			elen = 2;
		} else if (cp < 0x20 || cp == 0x7f || cp == 0x2028 ||
		    cp == 0x2029) {
			e[0] = '\\';
			switch (cp) {
			case '\n': e[1] = 'n'; elen = 2; break;
			case '\r': e[1] = 'r'; elen = 2; break;
			case '\t': e[1] = 't'; elen = 2; break;
			case '\b': e[1] = 'b'; elen = 2; break;
			case '\f': e[1] = 'f'; elen = 2; break;
			default:
				e[1] = 'u';
				e[2] = hex[cp >> 12 & 15];
				e[3] = hex[cp >> 8 & 15];
				e[4] = hex[cp >> 4 & 15];
				e[5] = hex[cp & 15];
				elen = 6;
			}
		}
		if (elen == 0) {	/* as it is */
			if (o + k >= cap)
				return -1;
			memcpy(out + o, p + i, k);
			o += k;
		} else {
			if (o + elen >= cap)
				return -1;
			memcpy(out + o, e, elen);
			o += elen;
		}
		i += k;
	}
	if (o + 1 >= cap)
		return -1;
	out[o++] = '"';
	return (int)o;
}

bool
obs_kv_next(const char **pp, const char *end, struct obs_kv *kv)
{
	const char	*p = *pp, *eq;

	while (p < end && *p == ' ')
		p++;
	if (p >= end)
		return false;
	kv->key = p;
	while (p < end && *p != ' ' && *p != '=')
		p++;
	if (p >= end || *p == ' ') {	/* a bare word */
		kv->val = kv->key;
		kv->vlen = (size_t)(p - kv->key);
		kv->klen = 0;
		*pp = p;
		return true;
	}
	eq = p++;
	kv->klen = (size_t)(eq - kv->key);
	if (p < end && *p == '"') {
		kv->val = ++p;
		while (p < end && *p != '"')
			p++;
		kv->vlen = (size_t)(p - kv->val);
		if (p < end)
			p++;		/* the closing quote */
	} else {
		kv->val = p;
		while (p < end && *p != ' ')
			p++;
		kv->vlen = (size_t)(p - kv->val);
	}
	*pp = p;
	return true;
}

size_t
obs_kv_unescape(const char *v, size_t n, uint8_t *out, size_t cap)
{
	size_t	i = 0, o = 0;
	int	h, l;

	while (i < n && o < cap) {
		if (v[i] == '\\' && i + 3 < n && v[i + 1] == 'x' &&
		    (h = parse_hex_digit(v[i + 2])) >= 0 &&
		    (l = parse_hex_digit(v[i + 3])) >= 0) {
			out[o++] = (uint8_t)(h << 4 | l);
			i += 4;
		} else
			out[o++] = (uint8_t)v[i++];
	}
	return o;
}

bool
obs_json_numeric(const char *k, size_t n)
{
	static const char *const	keys[] = {
		"bytes", "size", "rcpts", "attempts", "messages", "errors",
		"loop", "commands", "code", "entries", "workers", "sessions",
		"unknown", "shadow", "delivered", "deferred", "failed",
		"users", "auth_users", "uid", "gid", NULL,
	};
	size_t				i;

	if ((n > 3 && memcmp(k + n - 3, "_ms", 3) == 0) ||
	    (n > 2 && memcmp(k + n - 2, "_s", 2) == 0))
		return true;
	for (i = 0; keys[i] != NULL; i++)
		if (strlen(keys[i]) == n && memcmp(keys[i], k, n) == 0)
			return true;
	return false;
}

static bool
obs_is_number(const char *v, size_t n)
{
	size_t	i;

	if (n == 0 || n > 18 || (n > 1 && v[0] == '0'))
		return false;
	for (i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

/* Append "key": to out; -1 if it does not fit. */
static int
obs_json_put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	int	r;

	if ((r = obs_json_escape((const uint8_t *)s, n, out + *o,
	    cap - *o)) < 0)
		return -1;
	*o += (size_t)r;
	return 0;
}

static int
obs_json_raw(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
	if (*o + n >= cap)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	return 0;
}

static bool
obs_key_seen(const struct obs_kv *seen, size_t nseen, const struct obs_kv *kv)
{
	size_t	i;

	for (i = 0; i < nseen; i++)
		if (seen[i].klen == kv->klen &&
		    memcmp(seen[i].key, kv->key, kv->klen) == 0)
			return true;
	return false;
}

/* One "key":value pair, a comma before it. */
static int
obs_json_pair(char *out, size_t cap, size_t *o, const struct obs_kv *kv)
{
	uint8_t	v[1100];
	size_t	n;

	if (obs_json_raw(out, cap, o, ",", 1) == -1 ||
	    obs_json_put(out, cap, o, kv->key, kv->klen) == -1 ||
	    obs_json_raw(out, cap, o, ":", 1) == -1)
		return -1;
	if (obs_json_numeric(kv->key, kv->klen) &&
	    obs_is_number(kv->val, kv->vlen))
		return obs_json_raw(out, cap, o, kv->val, kv->vlen);
	n = obs_kv_unescape(kv->val, kv->vlen, v, sizeof(v));
	return obs_json_put(out, cap, o, (const char *)v, n);
}

size_t
obs_log_json(const char *line, size_t len, char *out, size_t cap)
{
	struct obs_kv	 seen[OBS_JSON_KEYS_MAX], kv;
	const char	*p = line, *end = line + len, *sp;
	size_t		 o = 0, nseen = 0;

	if ((sp = memchr(line, ' ', len)) == NULL)
		return 0;
	if (obs_json_raw(out, cap, &o, "{\"time\":", 8) == -1 ||
	    obs_json_put(out, cap, &o, line, (size_t)(sp - line)) == -1)
		return 0;
	p = sp;
	while (obs_kv_next(&p, end, &kv)) {
		if (kv.klen == 0) {	/* a bare word: "text" */
			kv.key = "text";
			kv.klen = 4;
		}
		if (obs_key_seen(seen, nseen, &kv))
			continue;
		if (nseen < OBS_JSON_KEYS_MAX)
			seen[nseen++] = kv;
		if (obs_json_pair(out, cap, &o, &kv) == -1)
			return 0;
	}
	if (obs_json_raw(out, cap, &o, "}", 1) == -1)
		return 0;
	return o;
}

void
obs_client_prefix(const char *client, char *out, size_t cap)
{
	struct in6_addr	a6;
	struct in_addr	a4;
	char		t[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, client, &a4) == 1) {
		a4.s_addr &= htonl(0xffffff00u);
		inet_ntop(AF_INET, &a4, t, sizeof(t));
		snprintf(out, cap, "%s/24", t);
	} else if (inet_pton(AF_INET6, client, &a6) == 1) {
		memset(a6.s6_addr + 6, 0, 10);
		inet_ntop(AF_INET6, &a6, t, sizeof(t));
		snprintf(out, cap, "%s/48", t);
	} else
		snprintf(out, cap, "-");
}
