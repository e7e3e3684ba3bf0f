/*
 * log_syslog.c - the renderer lib/log.c calls for every line
 * (obs_log_setup): JSON when log_format = json, and for syslog the
 * connect, disconnect and refused-RCPT lines in the form Postfix's own
 * log readers match (pflogsumm, fail2ban's postfix filter):
 *   connect from unknown[192.0.2.7]
 *   disconnect from unknown[192.0.2.7]
 *   NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 550 5.1.1 <x@ex>:
 *     Recipient address rejected; from=<a@b> to=<x@ex> proto=ESMTP
 *     helo=<h>
 * mxgate does no reverse DNS look-up, so the host is always "unknown".
 * Owns: which events have a Postfix form.  Never: allocates.
 */
#include <stdio.h>
#include <string.h>

#include "../lib/log.h"
#include "log_json.h"

static enum obs_log_format	obs_fmt;	/* set once at start */

/* The first value of key in the line, unescaped into out (NUL-ended). */
static bool
obs_line_get(const char *line, size_t len, const char *key, char *out,
    size_t cap)
{
	const char	*p = memchr(line, ' ', len), *end = line + len;
	struct obs_kv	 kv;
	size_t		 n;

	if (p == NULL)
		return false;
	while (obs_kv_next(&p, end, &kv))
		if (kv.klen == strlen(key) && memcmp(kv.key, key,
		    kv.klen) == 0) {
			n = obs_kv_unescape(kv.val, kv.vlen, (uint8_t *)out,
			    cap - 1);
			out[n] = '\0';
			return true;
		}
	return false;
}

/* "<x>" for a value that may or may not have its angle brackets. */
static const char *
obs_angle(char *buf, size_t cap, const char *v)
{
	size_t	n = strlen(v);

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>')
		return v;
	snprintf(buf, cap, "<%s>", v);
	return buf;
}

size_t
obs_log_postfix(const char *line, size_t len, char *out, size_t cap)
{
	char	ev[32], client[64], action[32], reply[600], to[600];
	char	from[600], helo[300], b1[610], b2[610], b3[310];
	const char *text;
	int	r = -1;

	if (!obs_line_get(line, len, "event", ev, sizeof(ev)) ||
	    !obs_line_get(line, len, "client", client, sizeof(client)))
		return 0;
	if (strcmp(ev, "connect") == 0)
		r = snprintf(out, cap, "connect from unknown[%s]", client);
	else if (strcmp(ev, "disconnect") == 0)
		r = snprintf(out, cap, "disconnect from unknown[%s]", client);
	else if (strcmp(ev, "rcpt") == 0 &&
	    obs_line_get(line, len, "reply", reply, sizeof(reply)) &&
	    (reply[0] == '4' || reply[0] == '5') &&
	    obs_line_get(line, len, "to", to, sizeof(to))) {
		if (!obs_line_get(line, len, "from", from, sizeof(from)))
			from[0] = '\0';
		if (!obs_line_get(line, len, "helo", helo, sizeof(helo)))
			helo[0] = '\0';
		if (!obs_line_get(line, len, "action", action,
		    sizeof(action)))
			action[0] = '\0';
		/* reply: "550 5.1.1 text"; Postfix puts the address
		 * after the codes: ours do too, else it is added */
		text = strlen(reply) > 10 ? reply + 10 : action;
		r = snprintf(out, cap, "NOQUEUE: reject: RCPT from "
		    "unknown[%s]: %.9s %s%s%s; from=%s to=%s proto=ESMTP "
		    "helo=%s", client, reply, text[0] == '<' ? "" :
		    obs_angle(b1, sizeof(b1), to), text[0] == '<' ? "" : ": ",
		    text, obs_angle(b2, sizeof(b2), from),
		    obs_angle(b1, sizeof(b1), to),
		    obs_angle(b3, sizeof(b3), helo));
	}
	if (r <= 0)
		return 0;
	return (size_t)r < cap ? (size_t)r : cap - 1;
}

static size_t
obs_render(const char *line, size_t len, bool syslog, const char **prog,
    char *out, size_t cap)
{
	size_t	n;

	if (syslog) {
		if (memmem(line, len, " sid=", 5) != NULL)
			*prog = "smtpd";
		if ((n = obs_log_postfix(line, len, out, cap)) > 0)
			return n;
	}
	if (obs_fmt == OBS_LOG_JSON)
		return obs_log_json(line, len, out, cap);
	return 0;
}

void
obs_log_setup(enum obs_log_format f, bool syslog)
{
	obs_fmt = f;
	if (f == OBS_LOG_JSON || syslog)
		log_set_render(obs_render);
}
