/*
 * log_json.h - the log line formats besides key=value: one JSON object a
 * line (log_format = json), and the Postfix-style syslog lines for
 * connect, disconnect and refused recipients (log_syslog).
 * Both are renderers for lib/log.c (log_set_render): they read the text
 * line, so the keys are the same in every format.
 */
#ifndef MXGATE_OBS_LOG_JSON_H
#define MXGATE_OBS_LOG_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OBS_JSON_KEYS_MAX	64	/* keys kept from one line */

enum obs_log_format { OBS_LOG_TEXT, OBS_LOG_JSON };

/*
 * Append p[0..n) as a JSON string literal, quotes included (RFC 8259 7):
 * '"', '\\' and control characters escaped, strict UTF-8 kept, each byte
 * that is not part of a valid UTF-8 sequence written as U+FFFD; U+2028
 * and U+2029 escaped too.  Bytes written, or -1 if cap is too small
 * (nothing meaningful is left in out then).
 */
int	obs_json_escape(const uint8_t *p, size_t n, char *out, size_t cap);

/*
 * The tokens of a text line after its timestamp: "key=value", a value
 * either up to the next space or "..." (the quotes not in the span).
 * A word without '=' has an empty key.  Spans into the line; still
 * escaped (\xHH).  false at the end.  Bounded by end; never reads past.
 */
struct obs_kv {
	const char	*key, *val;
	size_t		 klen, vlen;
};
bool	obs_kv_next(const char **p, const char *end, struct obs_kv *);
/* Decode \xHH escapes of a value into out (at most cap); its length. */
size_t	obs_kv_unescape(const char *v, size_t n, uint8_t *out, size_t cap);

/*
 * One text line (as lib/log.c formats it) as a JSON object: "time",
 * "level", "event", then each key=value in order, the first of a key
 * repeated only; \xHH escapes decoded back to bytes; a value of digits
 * under a numeric key (obs_json_numeric) as a number.  Bytes written, or
 * 0 if it does not fit (the caller writes the text line).
 */
size_t	obs_log_json(const char *line, size_t len, char *out, size_t cap);
bool	obs_json_numeric(const char *key, size_t klen);

/* The Postfix form of a connect, disconnect or refused-RCPT line, for
 * syslog; its length, or 0 when the line has none. */
size_t	obs_log_postfix(const char *line, size_t len, char *out, size_t cap);

/* The decision line's prefix= for a client address (text): its /24
 * (IPv4) or /48 (IPv6), the network the harvest guard counts; "-" for
 * anything else.  cap: INET6_ADDRSTRLEN + 4 is enough. */
void	obs_client_prefix(const char *client, char *out, size_t cap);

/* Set once at start: the format of lines written, and the renderer for
 * log_set_render() that applies it (text + syslog: Postfix forms). */
void	obs_log_setup(enum obs_log_format, bool syslog);

#endif
