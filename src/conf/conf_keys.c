/*
 * conf_keys.c - the one descriptor table for the config (STYLE R13): every
 * key's type, field, default, bounds, scope and doc, and the value types.
 * Never: reads files or sockets; conf.c splits lines, this file judges one
 * value.  Untrusted: config values (echoed capped and escaped, never raw).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../lib/log.h"
#include "../lib/redis_url.h"
#include "../lib/utf8.h"
#include "../sender/dnsbl.h"	/* a pure parser, like lib/cidr */
#include "conf_keys.h"

#define CONF_LISTEN_TEXT_MAX	(INET6_ADDRSTRLEN + 8) /* "[v6]:65535" */

#define G(f)	offsetof(struct config, f)
#define D(f)	offsetof(struct domain_conf, f)
#define U_K	1024ull			/* sizes are powers of 1024 */
#define U_S	1000ull			/* durations are in ms */
#define U_M	(60 * U_S)
#define U_H	(60 * U_M)
#define U_D	(24 * U_H)

/* key, type, field, flags, default, min, max, doc */
const struct conf_key conf_keys[] = {
	{ "hostname", CT_HOSTNAME, G(hostname), CK_SYSHOST, NULL, 0, 0,
	  "host name in the greeting, the EHLO reply and Received headers" },
	{ "listen", CT_LISTEN, G(listen), 0, "127.0.0.1:2525", 0, 0,
	  "addresses to accept SMTP on: IPv4:PORT or [IPv6]:PORT, "
	  "comma-separated" },
	{ "spool", CT_PATH, G(spool), 0, "var/spool", 0, 0,
	  "folder of the mail queue; relative to the config file's folder" },
	{ "domains", CT_DOMAINS, G(domains), CK_REQUIRED, "", 0, 0,
	  "the domains we accept mail for, comma-separated" },
	{ "directory", CT_DIRECTORY, G(directory), CK_REQUIRED, "", 0, 0,
	  "the valid recipients: back-ends asked in order, comma-separated: "
	  "file:PATH, hashed:PATH (paths relative to the config), ldap" },
	{ "directory_key_file", CT_OPTPATH, G(directory_key_file), 0, "", 0,
	  0, "the HMAC key of hashed: directories (mxgate directory hash "
	  "--new-key); refused if group or world can read it" },
	{ "ldap_uri", CT_OPTTEXT, G(ldap_uri), 0, "", 0, 0,
	  "directory = ldap: servers, space-separated, tried in order "
	  "(ldap://HOST:PORT or ldaps://HOST:PORT)" },
	{ "ldap_base", CT_OPTTEXT, G(ldap_base), 0, "", 0, 0,
	  "directory = ldap: the search base DN" },
	{ "ldap_filter", CT_TEXT, G(ldap_filter), 0,
	  "(|(mail=%s)(mailAlternateAddress=%s))", 0, 0,
	  "directory = ldap: the search filter; %s the address, %u the "
	  "local part, %d the domain, each escaped (RFC 4515); %% a %" },
	{ "ldap_bind_dn", CT_OPTTEXT, G(ldap_bind_dn), 0, "", 0, 0,
	  "directory = ldap: the DN to bind as (empty: anonymous)" },
	{ "ldap_bind_password_file", CT_OPTPATH, G(ldap_bind_password_file),
	  0, "", 0, 0, "directory = ldap: a file holding the bind password; "
	  "refused if group or world can read it" },
	{ "ldap_timeout", CT_MSEC, G(ldap_timeout_ms), 0, "2s", 100, 60 * U_S,
	  "directory = ldap: connect and per-operation time limit" },
	{ "ldap_starttls", CT_BOOL, G(ldap_starttls), 0, "no", 0, 0,
	  "directory = ldap: STARTTLS on ldap:// servers (required: a "
	  "failure is a connection failure)" },
	{ "ldap_tls_ca_file", CT_OPTPATH, G(ldap_tls_ca_file), 0, "", 0, 0,
	  "directory = ldap: CA certificates for ldaps:// and STARTTLS "
	  "(empty: the system's)" },
	{ "ldap_sync", CT_CHOICE, G(ldap_sync), 0, "persist", 0, 0,
	  "directory = ldap: persist (RFC 4533 refreshAndPersist: the valid "
	  "addresses held in memory as keyed hashes), poll or no" },
	{ "ldap_sync_interval", CT_MSEC, G(ldap_sync_interval_ms), 0, "60s",
	  U_S, U_D, "directory = ldap, ldap_sync = poll: time between full "
	  "refreshes" },
	{ "relay_networks", CT_CIDRS, G(relay_networks), 0, "", 0, 0,
	  "client networks that may relay, e.g. 10.0.0.0/8, ::1 "
	  "(empty: none)" },
	{ "unknown_recipient", CT_UNKNOWN, D(unknown), CK_DOMAIN, "reject",
	  0, 0,
	  "unknown recipient: reject (550 5.1.1 at RCPT), discard (accept, "
	  "never deliver) or bounce (accept; NDR if the backscatter guard "
	  "allows)" },
	{ "next_hop", CT_HOP, D(hop), CK_DOMAIN, "maildir:var/mail", 0, 0,
	  "where accepted mail goes: maildir:DIR, smtp:HOST:PORT, "
	  "lmtp:HOST:PORT or lmtp:unix:PATH" },
	{ "recipient_delimiter", CT_DELIM, D(delim), CK_DOMAIN, "+", 0, 0,
	  "characters that start an address extension, as in user+tag "
	  "(empty: none)" },
	{ "max_message_size", CT_SIZE, G(max_message_size), 0, "25M",
	  U_K, 2 * U_K * U_K * U_K,
	  "largest message accepted, in bytes or with K, M, G "
	  "(powers of 1024)" },
	{ "max_recipients", CT_UINT, G(max_recipients), 0, "100", 1, 100000,
	  "recipients per message; more get 452 4.5.3" },
	{ "log_level", CT_LOGLEVEL, G(log_level), 0, "info", 0, 0,
	  "least severe level logged: error, warning, info or debug" },
	{ "localpart_case_sensitive", CT_BOOL, G(localpart_case_sensitive), 0,
	  "no", 0, 0,
	  "whether User@ and user@ are different recipients (yes or no)" },
	{ "max_errors_per_session", CT_UINT, G(max_errors), 0, "20", 1, 1000,
	  "protocol errors a client may make before 421 and close" },
	{ "greeting_delay", CT_MSEC, G(greeting_delay_ms), 0, "0", 0, 60 * U_S,
	  "wait before the 220 greeting; a client that talks first is "
	  "dropped" },
	{ "rcpt_reply_floor", CT_MSEC, G(rcpt_reply_floor_ms), 0, "5ms", 0,
	  U_S, "a RCPT reply that hides validity (discard, bounce, uniform "
	  "mode) goes out this long after the command was read, or at the "
	  "next multiple; 0: off" },
	{ "command_timeout", CT_MSEC, G(command_timeout_ms), 0, "5m",
	  U_S, U_H, "idle time allowed while waiting for a command" },
	{ "data_timeout", CT_MSEC, G(data_timeout_ms), 0, "10m", U_S, U_H,
	  "idle time allowed while receiving message data" },
	{ "retry_min", CT_MSEC, G(retry_min_ms), 0, "1m", U_S, U_D,
	  "first wait before a deferred delivery is retried" },
	{ "retry_max", CT_MSEC, G(retry_max_ms), 0, "1h", U_S, U_D,
	  "longest wait between delivery attempts (the wait doubles)" },
	{ "queue_lifetime", CT_MSEC, G(queue_lifetime_ms), 0, "5d", U_S,
	  30 * U_D, "how long a message is retried before it is returned" },
	{ "relayhost", CT_HOSTPORT, G(relayhost), 0, "", 0, 0,
	  "send mail for other domains (and DSNs) here instead of to their "
	  "MX hosts (empty: use MX)" },
	{ "dns_server", CT_HOSTPORT, G(dns_server), 0, "", 0, 0,
	  "DNS server for MX look-ups, IP:PORT (empty: /etc/resolv.conf)" },
	{ "next_hop_concurrency", CT_UINT, G(next_hop_concurrency), 0, "20",
	  1, 1000, "connections at most to one next hop" },
	{ "smtp_connect_timeout", CT_MSEC, G(smtp_connect_timeout_ms), 0,
	  "30s", 100, 10 * U_M, "outbound: time to connect and get the "
	  "greeting" },
	{ "smtp_timeout", CT_MSEC, G(smtp_timeout_ms), 0, "5m", 100, U_H,
	  "outbound: time to wait for each reply" },
	{ "ndr_rate_per_sender", CT_UINT, G(ndr_rate_per_sender), 0, "5", 0,
	  100000, "non-delivery reports per hour to one sender address, at "
	  "most (0: none)" },
	{ "ndr_rate_per_domain", CT_UINT, G(ndr_rate_per_domain), 0, "50", 0,
	  1000000, "non-delivery reports per hour to one sender domain, at "
	  "most (0: none)" },
	{ "delay_warning_time", CT_MSEC, G(delay_warning_time_ms), 0, "0", 0,
	  30 * U_D, "send one \"delayed\" report (DSN) per message once it "
	  "has waited this long, e.g. 4h (0: off)" },
	{ "ndr_return_full", CT_BOOL, G(ndr_return_full), 0, "no", 0, 0,
	  "honour RET=FULL: return the whole message in a failure report "
	  "(no: headers only, as the backscatter guard prefers)" },
	{ "null_sender_rate", CT_RATE, G(null_sender_rate), 0, "10/10m", 0, 0,
	  "bounces (null sender) one recipient may receive in the time "
	  "given; more get 450 4.7.1" },
	{ "harvest_window", CT_MSEC, G(harvest_window_ms), 0, "1h", U_M, U_D,
	  "harvest guard: how long a client's signals count" },
	{ "harvest_tarpit_after", CT_UINT, G(harvest_tarpit_after), 0, "3", 1,
	  1000, "harvest guard: unknown recipients before RCPT replies are "
	  "delayed" },
	{ "harvest_tarpit_delay", CT_MSEC, G(harvest_tarpit_delay_ms), 0, "1s",
	  1, U_M, "harvest guard: first delay; it doubles" },
	{ "harvest_tarpit_max", CT_MSEC, G(harvest_tarpit_max_ms), 0, "10s",
	  1, U_M, "harvest guard: longest delay of one reply" },
	{ "harvest_session_limit", CT_UINT, G(harvest_session_limit), 0, "10",
	  1, 100000, "harvest guard: unknown recipients in one session "
	  "before 421 4.7.0" },
	{ "harvest_threshold", CT_UINT, G(harvest_threshold), 0, "25", 1,
	  2048, "harvest guard: distinct unknown names from one address "
	  "(IPv6 /64) in the window before uniform answers" },
	{ "harvest_threshold_net", CT_UINT, G(harvest_threshold_net), 0, "100",
	  1, 2048, "harvest guard: the same for its /24 (IPv6 /48)" },
	{ "harvest_ttl", CT_MSEC, G(harvest_ttl_ms), 0, "24h", U_S, 30 * U_D,
	  "harvest guard: how long a client stays in uniform mode" },
	{ "harvest_uniform_reply", CT_REPLY, G(harvest_uniform_reply), 0,
	  "450 4.7.1 Try again later", 0, 0,
	  "harvest guard: the one reply every RCPT of a marked client gets" },
	{ "harvest_global_rate", CT_UINT, G(harvest_global_rate), 0, "300", 0,
	  1000000, "harvest guard: unknown recipients per minute for one "
	  "domain, over all clients, above which unknown names are answered "
	  "as under discard (0: off)" },
	{ "harvest_max_tarpitted", CT_UINT, G(harvest_max_tarpitted), 0,
	  "2000", 1, 1000000, "harvest guard: sessions tarpitted at once; "
	  "past it 421 4.7.0 at once" },
	{ "harvest_session_delay_max", CT_MSEC,
	  G(harvest_session_delay_max_ms), 0, "60s", U_S, U_H,
	  "harvest guard: total delay one session may be given; past it 421" },
	{ "harvest_exempt", CT_CIDRS, G(harvest_exempt), 0, "", 0, 0,
	  "harvest guard: client networks never tarpitted or marked" },
	{ "harvest_max_clients", CT_UINT, G(harvest_max_clients), 0,
	  "100000", 2, 10000000, "harvest guard: client addresses and "
	  "networks remembered at once (about 130 to 200 bytes each)" },
	{ "user", CT_USER, G(user), 0, "", 0, 0,
	  "started as root, run as this user once the ports are bound "
	  "(empty: stay as started)" },
	{ "workers", CT_UINT, G(workers), 0, "0", 0, 256,
	  "event loops, each on its own thread (0: one per CPU core)" },
	{ "max_connections", CT_UINT, G(max_connections), 0, "5000", 1,
	  1000000, "sessions at once; more get 421 4.7.0 at connect" },
	{ "max_connections_per_client", CT_UINT,
	  G(max_connections_per_client), 0, "50", 1, 1000000,
	  "sessions at once from one client address" },
	{ "max_connection_rate_per_client", CT_UINT,
	  G(max_connection_rate_per_client), 0, "600", 0, 10000000,
	  "new sessions a minute from one client address (0: no limit)" },
	{ "max_commands_per_session", CT_UINT, G(max_commands_per_session), 0,
	  "10000", 10, 10000000, "commands in one session; then 421 4.7.0" },
	{ "max_header_size", CT_SIZE, G(max_header_size), 0, "256K", U_K,
	  64 * U_K * U_K, "largest header section of a message; larger "
	  "get 552 5.3.4" },
	{ "max_line_length", CT_UINT, G(max_line_length), 0, "10000", 1000,
	  10000000, "longest line of message data, with its CRLF; longer "
	  "get 552 5.3.4 (RFC 5321 asks for 1000 at least)" },
	{ "session_timeout", CT_MSEC, G(session_timeout_ms), 0, "1h", U_S,
	  24 * U_H, "longest a session may last, however busy" },
	{ "stress_command_timeout", CT_MSEC, G(stress_command_timeout_ms), 0,
	  "10s", U_S, U_H, "command and data timeout while sessions exceed "
	  "80% of max_connections (stress mode)" },
	{ "tls_cert", CT_OPTPATH, G(tls_cert), 0, "", 0, 0,
	  "PEM certificate chain for STARTTLS, relative to the config "
	  "file's folder (empty: no STARTTLS); needs tls_key" },
	{ "tls_key", CT_OPTPATH, G(tls_key), 0, "", 0, 0,
	  "PEM private key of tls_cert" },
	{ "tls_protocols", CT_TLSPROTO, G(tls_protocols), 0,
	  "TLSv1.2,TLSv1.3", 0, 0,
	  "TLS versions offered: TLSv1.2, TLSv1.3 (older ones never)" },
	{ "tls_ciphers", CT_TEXT, G(tls_ciphers), 0,
	  "HIGH:!aNULL:!MD5:!RC4:!3DES", 0, 0,
	  "OpenSSL cipher list for TLS 1.2 (TLS 1.3 has only strong "
	  "suites)" },
	{ "tls_required", CT_BOOL, G(tls_required), 0, "no", 0, 0,
	  "on the listen addresses, MAIL before STARTTLS gets 530 5.7.0 "
	  "(submission_listen always needs TLS: AUTH does)" },
	{ "tls_required_listen", CT_LISTENS, G(tls_listen), 0, "", 0, 0,
	  "more SMTP addresses, like listen, where MAIL before STARTTLS "
	  "always gets 530 5.7.0 (e.g. a port for partners who must use "
	  "TLS; empty: none)" },
	{ "submission_listen", CT_LISTENS, G(submission), 0, "", 0, 0,
	  "addresses for message submission (e.g. port 587): AUTH PLAIN "
	  "and LOGIN after STARTTLS, mail from authenticated users only "
	  "(empty: none)" },
	{ "auth_on_smtp", CT_BOOL, G(auth_on_smtp), 0, "no", 0, 0,
	  "offer AUTH (after STARTTLS) on the listen addresses too" },
	{ "passwd_file", CT_OPTPATH, G(passwd_file), 0, "", 0, 0,
	  "AUTH users: one user:hash a line, from `mxgate passwd USER`; "
	  "relative to the config file's folder" },
	/* envelope syntax (issue 12, point 9) */
	{ "envelope_syntax", CT_ENVSYNTAX, G(envelope_lenient), 0, "strict",
	  0, 0, "MAIL FROM/RCPT TO paths: strict (<user@dom> only) or "
	  "lenient (also a bare user@dom, without parameters)" },
	{ "spool_min_free", CT_SIZE, G(spool_min_free), 0, "100M", 0,
	  1024 * U_K * U_K * U_K * U_K,
	  "free space the spool's file system keeps: below it MAIL and the "
	  "end of data get 452 4.3.1 until space returns (0: none)" },
	/* outbound TLS and smarthost AUTH (issue 20, deliver/client_tls.c) */
	{ "next_hop_tls", CT_TLSLEVEL, D(tls.level), CK_DOMAIN, "may", 0, 0,
	  "TLS toward an smtp: or lmtp:HOST:PORT next hop: none, may "
	  "(STARTTLS when offered), encrypt (TLS or defer with 4.7.5) or "
	  "verify (TLS with a certificate that chains to "
	  "next_hop_tls_ca_file and names next_hop_tls_name, or matches "
	  "next_hop_tls_fingerprint; else defer)" },
	{ "next_hop_tls_ca_file", CT_OPTPATH, D(tls.ca_file), CK_DOMAIN, "",
	  0, 0, "verify: PEM file of the CAs a next hop's certificate must "
	  "chain to (empty: the system's store)" },
	{ "next_hop_tls_name", CT_OPTHOST, D(tls.name), CK_DOMAIN, "", 0, 0,
	  "verify: the name (or IP) the next hop's certificate must carry "
	  "(empty: the host in next_hop); also sent as SNI" },
	{ "next_hop_tls_fingerprint", CT_PINS, D(tls.pins), CK_DOMAIN, "", 0,
	  0, "verify: sha256:HEX[, ...] of accepted next-hop certificates; "
	  "a match passes without the CA check" },
	{ "relayhost_tls", CT_TLSLEVEL, G(relayhost_tls.level), 0, "may", 0, 0,
	  "TLS toward the relayhost, as next_hop_tls (relayhost_auth_file "
	  "makes it at least encrypt)" },
	{ "relayhost_tls_ca_file", CT_OPTPATH, G(relayhost_tls.ca_file), 0, "",
	  0, 0, "verify: PEM file of the CAs for the relayhost (empty: the "
	  "system's store)" },
	{ "relayhost_tls_name", CT_OPTHOST, G(relayhost_tls.name), 0, "", 0, 0,
	  "verify: the name the relayhost's certificate must carry (empty: "
	  "the host in relayhost)" },
	{ "relayhost_tls_fingerprint", CT_PINS, G(relayhost_tls.pins), 0, "",
	  0, 0, "verify: sha256:HEX[, ...] of accepted relayhost "
	  "certificates" },
	{ "relayhost_auth_file", CT_OPTPATH, G(relayhost_auth_file), 0, "", 0,
	  0, "smarthost logins: one \"host:port user password\" a line; "
	  "the file must not be readable by group or others; AUTH PLAIN or "
	  "LOGIN, only under TLS" },
	/* running as a daemon (issue 18, parts 4 and 5) */
	{ "pid_file", CT_OPTPATH, G(pid_file), 0, "", 0, 0,
	  "file the running gateway writes its process id to, relative to "
	  "the config file's folder (empty: mxgate.pid in the spool)" },
	/* metrics and the status page (issue 18, parts 1 and 6) */
	{ "metrics_listen", CT_LISTENS, G(metrics_listen), 0, "", 0, 0,
	  "addresses for GET /metrics (Prometheus text format) and GET / "
	  "(the status page), e.g. 127.0.0.1:9125; a management address "
	  "only: there is no authentication (empty: off)" },
	/* decision log and shadow mode (issue 18, parts 2 and 3) */
	{ "log_format", CT_CHOICE, G(log_format), 0, "text", 0, 0,
	  "log lines: text (key=value) or json (one JSON object a line)" },
	{ "log_file", CT_OPTPATH, G(log_file), 0, "", 0, 0,
	  "write the log to this file (reopened on SIGHUP, for logrotate) "
	  "instead of stderr; relative to the config file's folder" },
	{ "log_syslog", CT_CHOICE, G(log_syslog), 0, "", 0, 0,
	  "log to syslog with this facility instead (mail, daemon, user, "
	  "local0..local7; empty: no syslog)" },
	{ "log_syslog_socket", CT_PATH, G(log_syslog_socket), 0, "/dev/log",
	  0, 0, "the local syslog socket (a unix datagram socket)" },
	{ "log_recipients", CT_CHOICE, G(log_recipients), 0, "plain", 0, 0,
	  "recipients in RCPT lines: plain, or hashed (HMAC-SHA256 with "
	  "log_hash_key_file's key, so lines can be matched, not read)" },
	{ "log_hash_key_file", CT_OPTPATH, G(log_hash_key_file), 0, "", 0, 0,
	  "the key for log_recipients = hashed (its bytes; empty: "
	  "SPOOL/log_hash.key, made at the first start)" },
	/* a fleet sharing harvest state in Redis (issue 17, src/fleet/) */
	{ "shared_state", CT_REDISURL, G(shared_state), 0, "", 0, 0,
	  "share harvest counts and marks with the other gateways: "
	  "redis://HOST:PORT[/DB] or redis-sentinel://HOST:PORT[,...]/MASTER "
	  "(asked every second who the master is; empty: off, every "
	  "gateway counts alone)" },
	{ "shared_state_password_file", CT_OPTPATH,
	  G(shared_state_password_file), 0, "", 0, 0,
	  "file holding the Redis password (AUTH); it must not be readable "
	  "by group or others (empty: no AUTH)" },
	{ "shared_state_timeout", CT_MSEC, G(shared_state_timeout_ms), 0,
	  "50ms", 1, 10 * U_S, "longest wait for a Redis reply; later "
	  "replies are ignored, and three in a row mark Redis down" },
	{ "shared_state_prefix", CT_TEXT, G(shared_state_prefix), 0,
	  "mxgate:", 0, 0, "prefix of every Redis key (no braces: the "
	  "source in braces is the key's hash tag)" },
	{ "harvest_guard", CT_CHOICE, G(harvest_guard), 0, "enforce", 0, 0,
	  "harvest guard: enforce, shadow (log what it would do, do "
	  "nothing) or off" },
	{ "strict_framing", CT_CHOICE, G(strict_framing), 0, "enforce", 0, 0,
	  "bare CR or LF in commands and data: enforce (refuse) or shadow "
	  "(take a bare LF as CRLF, as without the control, and log it)" },
	/* DANE for mail sent by MX (issue 20, deliver/dane.c) */
	{ "dane", CT_CHOICE, G(dane), 0, "no", 0, 0,
	  "DANE (RFC 7672) for mail sent by MX: no, or may (needs "
	  "dns_server to be a local DNSSEC-validating resolver: an MX host "
	  "with a secure TLSA RRset at _25._tcp.HOST gets TLS with a "
	  "certificate matching it, or the mail waits with 4.7.5)" },
	/* SPF (issue 14, part 1) */
	{ "spf_policy", CT_CHOICE, G(spf_policy), 0, "tag", 0, 0,
	  "SPF (RFC 7208) of MAIL FROM, or of HELO for <>: none (not "
	  "checked), tag (Received-SPF and Authentication-Results headers) "
	  "or reject (also 550 5.7.23 to fail, 451 4.4.3 to temperror); "
	  "never for authenticated or relay_networks clients" },
	{ "spf_timeout", CT_MSEC, G(spf_timeout_ms), 0, "10s", 100, 60 * U_S,
	  "longest time one SPF evaluation may take (its DNS look-ups, "
	  "through dns_server); past it the result is temperror" },
	/* DKIM (issue 14, part 2; sender/dkim.c, smtp/smtp_dkim.c) */
	{ "dkim_verify", CT_BOOL, G(dkim_verify), 0, "yes", 0, 0,
	  "verify DKIM signatures (RFC 6376; rsa-sha256, ed25519-sha256) "
	  "at the end of data, before the 250: results in "
	  "Authentication-Results, an aligned pass is a proof for reports" },
	{ "dkim_timeout", CT_MSEC, G(dkim_timeout_ms), 0, "5s", 100,
	  60 * U_S, "longest time the key look-ups of one message may take "
	  "(through dns_server); past it those signatures are temperror" },
	{ "public_suffix_file", CT_OPTPATH, G(public_suffix_file), 0,
	  "/usr/share/publicsuffix/public_suffix_list.dat", 0, 0,
	  "the Public Suffix List (Debian: publicsuffix), read at start, "
	  "for DKIM alignment (same organizational domain); missing or "
	  "empty: d= must equal the MAIL FROM domain" },
	/* reports only to proven senders (issue 14, part 3) */
	{ "ndr_require_auth", CT_CHOICE, G(ndr_require_auth), 0, "yes", 0, 0,
	  "an NDR or DSN is sent only with a proof, found at receipt, that "
	  "its sender is real (SPF pass for MAIL FROM, a DKIM pass aligned "
	  "with it, authenticated, or relay_networks): yes, shadow (send it "
	  "and log would=suppress) or no" },
	/* authenticated senders (issue 14, part 6, auth/sender_map.c) */
	{ "sender_login_map", CT_FILEMAP, G(sender_login_map), 0, "", 0, 0,
	  "more MAIL FROM addresses an AUTH user may use: file:PATH, lines "
	  "\"address user[,user...]\" (relative to the config file's "
	  "folder); without it a user owns its own address (an AUTH name "
	  "with '@') or user@ each of domains" },
	/* BATV (issue 14, part 5, sender/batv.h) */
	{ "batv_domains", CT_BATVDOMS, G(batv_ndomains), 0, "", 0, 0,
	  "BATV: our domains whose users' envelope senders are signed "
	  "(prvs=) on mail relayed out for them, and whose bounces must then "
	  "carry a valid tag; each one of domains; needs batv_key_file "
	  "(empty: off; it breaks some mailing lists)" },
	{ "batv_key_file", CT_OPTPATH, G(batv_key_file), 0, "", 0, 0,
	  "BATV keys: lines \"N SECRET\" (N 0..9, SECRET 16..256 "
	  "characters); the first line signs, every line verifies; mode "
	  "600 (not readable by group or others)" },
	{ "batv_grace", CT_MSEC, G(batv_grace_ms), 0, "7d", 0, 30 * U_D,
	  "BATV: for this long after batv_domains was first set (the time "
	  "is kept in the spool), a bounce without a valid tag is still "
	  "taken and logged" },
	/* DNSBL and DNSWL at connect (issue 14, part 4, sender/dnsbl.c) */
	{ "dnsbl_sites", CT_DNSBL, G(dnsbl_sites), 0, "", 0, 0,
	  "DNS lists asked about each client at connect, postscreen's "
	  "syntax: zone[=filter][*weight], e.g. zen.example*2, "
	  "bl.example=127.0.0.[2..11], wl.example*-2 (a negative weight: "
	  "an allowlist); at most 16 (empty: off)" },
	{ "dnsbl_threshold", CT_UINT, G(dnsbl_threshold), 0, "1", 1, 1000,
	  "a client whose dnsbl_sites weights add up to this is listed" },
	{ "dnsbl_action", CT_CHOICE, G(dnsbl_action), 0, "reject", 0, 0,
	  "a listed client: reject (554 5.7.1 naming the lists to its first "
	  "command but QUIT), tag (an X-DNSBL header on its mail) or shadow "
	  "(tag, and log would=reject)" },
	{ "dnsbl_timeout", CT_MSEC, G(dnsbl_timeout_ms), 0, "1s", 10, U_S,
	  "how long the greeting waits for the lists' answers at most; a "
	  "list that has not answered by then is skipped" },
	{ "harvest_exempt_dnswl", CT_BOOL, G(harvest_exempt_dnswl), 0, "no",
	  0, 0, "a client a negative-weight dnsbl_sites entry lists (or "
	  "whose total is negative) is exempt from the harvest guard (its "
	  "tarpit), as harvest_exempt networks are" },
	/* milters (issue 16, src/milter/) */
	{ "milters", CT_MILTERS, G(milters), 0, "", 0, 0,
	  "content filters spoken to with the milter protocol (at MAIL, "
	  "each RCPT and the end of data), in order: inet:IPV4:PORT, inet:[IPV6]:PORT or unix:/PATH, "
	  "each optionally followed by {default_action=..., "
	  "connect_timeout=..., command_timeout=..., eom_timeout=...}" },
	{ "milter_connect_timeout", CT_MSEC, G(milter_connect_timeout_ms), 0,
	  "5s", 100, 60 * U_S, "longest wait to connect to a milter and "
	  "negotiate" },
	{ "milter_command_timeout", CT_MSEC, G(milter_command_timeout_ms), 0,
	  "30s", 100, 10 * U_M, "longest wait for a milter's reply to one "
	  "command" },
	{ "milter_eom_timeout", CT_MSEC, G(milter_eom_timeout_ms), 0, "60s",
	  100, 30 * U_M, "longest wait for a milter's answer at the end of "
	  "the message (progress replies extend it, up to 5 times)" },
	{ "milter_default_action", CT_CHOICE, G(milter_default_action), 0,
	  "tempfail", 0, 0, "what a milter that is down, slow or speaks "
	  "garbage means for the message: tempfail (451 4.7.1), accept "
	  "(as if it had said continue) or reject (550 5.7.1)" },
};
_Static_assert(sizeof(conf_keys) / sizeof(conf_keys[0]) == CONF_NKEYS,
    "CONF_NKEYS in conf_keys.h must count the rows of conf_keys[]");

/* Suffixes for sizes and durations; show: used when printing a value. */
struct conf_unit {
	const char	*name;
	uint64_t	 mult;
	bool		 show;
};

/*
 * K, M, G and T are powers of 1024.  "MB" and the like are refused, not
 * read as "M": to many a megabyte is 10^6 bytes, and a limit the gateway
 * reads otherwise than its administrator meant is worse than an error.
 */
static const struct conf_unit conf_size_units[] = {	/* any case */
	{ "", 1, true }, { "K", U_K, true }, { "M", U_K * U_K, true },
	{ "G", U_K * U_K * U_K, true }, { "T", U_K * U_K * U_K * U_K, true },
	{ NULL, 0, false }
};

static const struct conf_unit conf_msec_units[] = {	/* any case */
	{ "", U_S, false }, { "ms", 1, true }, { "s", U_S, true },
	{ "m", U_M, true }, { "h", U_H, true }, { "d", U_D, true },
	{ NULL, 0, false }
};

struct conf_word {
	const char	*word;
	int		 value;
};

static const struct conf_word conf_bool_words[] = {
	{ "yes", 1 }, { "no", 0 }, { "true", 1 }, { "false", 0 },
	{ "on", 1 }, { "off", 0 }, { "1", 1 }, { "0", 0 }, { NULL, 0 }
};

static const struct conf_word conf_envsyntax_words[] = {
	{ "strict", 0 }, { "lenient", 1 }, { NULL, 0 }
};

static const struct conf_word conf_spfpolicy_words[] = {
	{ "none", CONF_SPF_NONE }, { "tag", CONF_SPF_TAG },
	{ "reject", CONF_SPF_REJECT }, { NULL, 0 }
};

static const struct conf_word conf_unknown_words[] = {
	{ "reject", UNKNOWN_REJECT }, { "discard", UNKNOWN_DISCARD },
	{ "bounce", UNKNOWN_BOUNCE }, { NULL, 0 }
};

/* CT_CHOICE (issue 18): a key's words, and the int each stands for. */
static const struct conf_word conf_logfmt_words[] = {
	{ "text", CONF_LOG_TEXT }, { "json", CONF_LOG_JSON }, { NULL, 0 }
};
static const struct conf_word conf_facility_words[] = {
	{ "", -1 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 },
	{ "local0", 16 }, { "local1", 17 }, { "local2", 18 },
	{ "local3", 19 }, { "local4", 20 }, { "local5", 21 },
	{ "local6", 22 }, { "local7", 23 }, { NULL, 0 }
};
static const struct conf_word conf_ldapsync_words[] = {
	{ "persist", CONF_LDAP_SYNC_PERSIST }, { "poll", CONF_LDAP_SYNC_POLL },
	{ "no", CONF_LDAP_SYNC_NO }, { NULL, 0 }
};
static const struct conf_word conf_logrcpt_words[] = {
	{ "plain", 0 }, { "hashed", 1 }, { NULL, 0 }
};
static const struct conf_word conf_control_words[] = {
	{ "enforce", CONF_CONTROL_ENFORCE }, { "shadow", CONF_CONTROL_SHADOW },
	{ "off", CONF_CONTROL_OFF }, { NULL, 0 }
};
static const struct conf_word conf_control2_words[] = {	/* no "off" */
	{ "enforce", CONF_CONTROL_ENFORCE }, { "shadow", CONF_CONTROL_SHADOW },
	{ NULL, 0 }
};
static const struct conf_word conf_dane_words[] = {
	{ "no", CONF_DANE_NO }, { "may", CONF_DANE_MAY }, { NULL, 0 }
};
static const struct conf_word conf_dnsbl_words[] = {
	{ "reject", CONF_DNSBL_REJECT }, { "tag", CONF_DNSBL_TAG },
	{ "shadow", CONF_DNSBL_SHADOW }, { NULL, 0 }
};
static const struct conf_word conf_ndrauth_words[] = {
	{ "yes", CONF_CONTROL_ENFORCE }, { "shadow", CONF_CONTROL_SHADOW },
	{ "no", CONF_CONTROL_OFF }, { NULL, 0 }
};
static const struct conf_word conf_milteract_words[] = {
	{ "tempfail", CONF_MILTER_TEMPFAIL }, { "accept", CONF_MILTER_ACCEPT },
	{ "reject", CONF_MILTER_REJECT }, { NULL, 0 }
};
/* A new shadow-able control (ndr_require_auth, dnsbl_action,
 * milter_mode) is one row here and one in conf_keys[]. */
static const struct conf_choice {
	const char		*key;
	const struct conf_word	*words;
	const char		*expect;
} conf_choices[] = {
	{ "log_format", conf_logfmt_words, "text or json" },
	{ "log_syslog", conf_facility_words,
	  "mail, daemon, user, local0..local7 or empty" },
	{ "log_recipients", conf_logrcpt_words, "plain or hashed" },
	{ "harvest_guard", conf_control_words, "enforce, shadow or off" },
	{ "strict_framing", conf_control2_words, "enforce or shadow" },
	{ "dane", conf_dane_words, "no or may" },
	{ "spf_policy", conf_spfpolicy_words, "none, tag or reject" },
	{ "ndr_require_auth", conf_ndrauth_words, "yes, shadow or no" },
	{ "dnsbl_action", conf_dnsbl_words, "reject, tag or shadow" },
	{ "milter_default_action", conf_milteract_words,
	  "tempfail, accept or reject" },
	{ "ldap_sync", conf_ldapsync_words, "persist, poll or no" },
};

static bool
conf_isblank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
conf_isalnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

int
conf_key_find(const char *name)
{
	size_t	i;

	for (i = 0; i < CONF_NKEYS; i++)
		if (strcmp(conf_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static char
conf_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/*
 * Optimal string alignment distance (Damerau-Levenshtein without
 * substrings edited twice), case-insensitive: insertions, deletions,
 * substitutions and swaps of two neighbours cost 1.  Three rows of
 * CONF_SUGGEST_LEN + 1; a longer string is never "close".
 */
unsigned
conf_edit_distance(const char *a, const char *b)
{
	unsigned	rows[3][CONF_SUGGEST_LEN + 1], *pp, *p, *c, v;
	size_t		la = strlen(a), lb = strlen(b), i, j;

	if (la > CONF_SUGGEST_LEN || lb > CONF_SUGGEST_LEN)
		return UINT_MAX;
	for (j = 0; j <= lb; j++)
		rows[0][j] = (unsigned)j;	/* row i lives in rows[i % 3] */
	for (i = 1; i <= la; i++) {
		c = rows[i % 3];
		p = rows[(i + 2) % 3];		/* row i - 1 */
		pp = rows[(i + 1) % 3];		/* row i - 2 (i > 1) */
		c[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			bool	same = conf_lower(a[i - 1]) ==
				    conf_lower(b[j - 1]);

			v = p[j - 1] + (same ? 0 : 1);
			if (p[j] + 1 < v)
				v = p[j] + 1;
			if (c[j - 1] + 1 < v)
				v = c[j - 1] + 1;
			if (i > 1 && j > 1 && conf_lower(a[i - 1]) ==
			    conf_lower(b[j - 2]) && conf_lower(a[i - 2]) ==
			    conf_lower(b[j - 1]) && pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;
			c[j] = v;
		}
	}
	return rows[la % 3][lb];
}

/*
 * The key closest to name, if close enough to be the one meant: at most
 * 1 edit for names under 8 bytes, 2 up to 15, 3 beyond.  A tie between
 * two keys suggests nothing rather than the wrong one.  -1: none.
 */
int
conf_key_suggest(const char *name)
{
	unsigned	d, best = UINT_MAX, limit;
	size_t		i, len = strlen(name);
	int		found = -1;
	bool		tie = false;

	limit = len < 8 ? 1 : len < 16 ? 2 : 3;
	for (i = 0; i < CONF_NKEYS; i++) {
		d = conf_edit_distance(name, conf_keys[i].name);
		if (d < best) {
			best = d;
			found = (int)i;
			tie = false;
		} else if (d == best)
			tie = true;
	}
	if (found == -1 || best > limit || tie)
		return -1;
	return found;
}

const char *
conf_key_nearest(const char *name)
{
	int	i = conf_key_suggest(name);

	return i >= 0 ? conf_keys[i].name : NULL;
}

bool
conf_key_known(const char *name)
{
	return conf_key_find(name) >= 0;
}

const char *
conf_quote(char *dst, size_t dstlen, const char *s, size_t len)
{
	static const char	hex[] = "0123456789abcdef";
	size_t			i, o = 0;

	if (dstlen < CONF_QUOTE_BUF)
		return "'?'";
	dst[o++] = '\'';
	for (i = 0; i < len && i < CONF_QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f)
			dst[o++] = (char)c;
		else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	if (i < len) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o++] = '\'';
	dst[o] = '\0';
	return dst;
}

/* Shorthand: the whole NUL-terminated value, quoted. */
#define Q(qb, s)	conf_quote((qb), sizeof(qb), (s), strlen(s))

int
conf_domain_norm(const char *s, size_t len, char out[CONF_NAME_MAX + 1])
{
	size_t	i, label = 0;
	char	c, prev = '.';

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > CONF_NAME_MAX)
		return -1;
	for (i = 0; i < len; i++, prev = c) {
		c = s[i];
		if (c == '.') {
			/* RFC 1123 2.1: no empty label, no '-' at either end */
			if (label == 0 || prev == '-')
				return -1;
			label = 0;
		} else if (conf_isalnum(c) || (c == '-' && label > 0)) {
			if (++label > CONF_LABEL_MAX)
				return -1;
		} else
			return -1;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	if (label == 0 || prev == '-')
		return -1;			/* "a.." or "a-" */
	out[len] = '\0';
	return (int)len;
}

int
conf_udomain_norm(const char *s, size_t len, char out[CONF_NAME_MAX + 1])
{
	size_t	i, label = 0;
	int	n;

	if (utf8_is_ascii((const uint8_t *)s, len))
		return conf_domain_norm(s, len, out);
	if (len > 0 && s[len - 1] == '.')
		len--;
	n = utf8_nfc((const uint8_t *)s, len, true, (uint8_t *)out,
	    CONF_NAME_MAX);
	if (n <= 0 || (size_t)n > len)
		return -1;
	/* labels of letters, digits, '-' (not at an end) and UTF-8 */
	for (i = 0; i <= (size_t)n; i++) {
		if (i == (size_t)n || out[i] == '.') {
			if (label == 0 || out[i - 1] == '-')
				return -1;
			label = 0;
		} else if ((out[i] == '-' && label == 0) ||
		    ++label > CONF_LABEL_MAX || (!conf_isalnum(out[i]) &&
		    out[i] != '-' && !((unsigned char)out[i] & 0x80)))
			return -1;
	}
	out[n] = '\0';
	return n;
}

/* Leading decimal digits of s; -1 if none or over UINT64_MAX. */
static int
conf_digits(const char *s, const char **end, uint64_t *out)
{
	uint64_t	v = 0;
	const char	*p;

	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -1;
	*end = p;
	*out = v;
	return 0;
}

/* "NUMBER[ ]SUFFIX" scaled by the unit: 0, -1 bad syntax, -2 overflow. */
static int
conf_scaled(const char *s, const struct conf_unit *u, uint64_t *out)
{
	const char	*p;
	uint64_t	 v;

	if (*s < '0' || *s > '9')
		return -1;
	if (conf_digits(s, &p, &v) == -1)
		return -2;
	while (conf_isblank(*p))
		p++;
	for (; u->name != NULL; u++)
		if (strcasecmp(p, u->name) == 0) {
			if (v > UINT64_MAX / u->mult)
				return -2;
			*out = v * u->mult;
			return 0;
		}
	return -1;
}

/* v with the largest shown unit that divides it: 2G, 90s, 1500ms. */
static const char *
conf_fmt(char *dst, size_t dstlen, uint64_t v, const struct conf_unit *u)
{
	const struct conf_unit	*best = NULL;

	for (; u != NULL && v != 0 && u->name != NULL; u++)
		if (u->show && v % u->mult == 0 &&
		    (best == NULL || u->mult > best->mult))
			best = u;
	if (best == NULL)
		(void)snprintf(dst, dstlen, "%llu", (unsigned long long)v);
	else
		(void)snprintf(dst, dstlen, "%llu%s",
		    (unsigned long long)(v / best->mult), best->name);
	return dst;
}

static const struct conf_unit *
conf_units_of(const struct conf_key *k)
{
	if (k->type == CT_SIZE)
		return conf_size_units;
	if (k->type == CT_MSEC)
		return conf_msec_units;
	return NULL;
}

/* rc from conf_scaled or conf_digits; -2 (overflow) is "too big". */
static int
conf_check_bounds(const struct conf_key *k, int rc, uint64_t v,
    const char *val, struct buf *why)
{
	const struct conf_unit	*u = conf_units_of(k);
	char			 qb[CONF_QUOTE_BUF], nb[32];

	if (rc == 0 && v < k->min) {
		(void)buf_addf(why, "%s is below the minimum %s", Q(qb, val),
		    conf_fmt(nb, sizeof(nb), k->min, u));
		return -1;
	}
	if (rc == -2 || v > k->max) {
		(void)buf_addf(why, "%s is above the maximum %s", Q(qb, val),
		    conf_fmt(nb, sizeof(nb), k->max, u));
		return -1;
	}
	return 0;
}

static int
conf_set_uint(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	const char	*end;
	uint64_t	 v = 0;
	int		 rc;
	char		 qb[CONF_QUOTE_BUF];

	(void)env;
	if (*val < '0' || *val > '9') {
		(void)buf_addf(why, "expected a whole number, got %s",
		    Q(qb, val));
		return -1;
	}
	rc = conf_digits(val, &end, &v) == -1 ? -2 : 0;
	if (rc == 0 && *end != '\0') {
		(void)buf_addf(why, "expected a whole number, got %s",
		    Q(qb, val));
		return -1;
	}
	if (conf_check_bounds(k, rc, v, val, why) == -1)
		return -1;
	*(unsigned *)field = (unsigned)v;
	return 0;
}

/* A number with a unit suffix (sizes, durations), checked against k. */
static int
conf_scaled_value(const struct conf_key *k, const char *val,
    const struct conf_unit *units, const char *expect, uint64_t *v,
    struct buf *why)
{
	int	rc;
	char	qb[CONF_QUOTE_BUF];

	*v = 0;
	if ((rc = conf_scaled(val, units, v)) == -1) {
		(void)buf_addf(why, "expected %s, got %s", expect, Q(qb, val));
		return -1;
	}
	return conf_check_bounds(k, rc, *v, val, why);
}

static int
conf_set_size(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	uint64_t	v;

	(void)env;
	if (conf_scaled_value(k, val, conf_size_units,
	    "a size like 512K, 25M or 2G (bytes, or K, M, G, T: powers of "
	    "1024; no B, KB or MB)", &v, why) == -1)
		return -1;
	*(uint64_t *)field = v;
	return 0;
}

static int
conf_set_msec(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	uint64_t	v;

	(void)env;
	if (conf_scaled_value(k, val, conf_msec_units, "a duration like "
	    "500ms, 30s, 5m, 1h or 1d (a bare number is seconds)", &v,
	    why) == -1)
		return -1;
	*(unsigned *)field = (unsigned)v;	/* every max fits */
	return 0;
}

static int
conf_word_find(const struct conf_word *w, const char *val, int *out)
{
	for (; w->word != NULL; w++)
		if (strcasecmp(w->word, val) == 0) {
			*out = w->value;
			return 0;
		}
	return -1;
}

static int
conf_set_bool(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	int	v;
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_word_find(conf_bool_words, val, &v) == -1) {
		(void)buf_addf(why, "expected yes or no, got %s", Q(qb, val));
		return -1;
	}
	*(bool *)field = v != 0;
	return 0;
}

static int
conf_set_loglevel(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	enum log_level	l;
	char		qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (log_level_parse(val, &l) == -1) {
		(void)buf_addf(why, "expected error, warning, info or debug, "
		    "got %s", Q(qb, val));
		return -1;
	}
	*(enum log_level *)field = l;
	return 0;
}

static int
conf_set_unknown(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	int	v;
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_word_find(conf_unknown_words, val, &v) == -1) {
		(void)buf_addf(why, "expected reject, discard or bounce, got %s",
		    Q(qb, val));
		return -1;
	}
	*(enum unknown_policy *)field = (enum unknown_policy)v;
	return 0;
}

static int
conf_set_envsyntax(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	int	v;
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_word_find(conf_envsyntax_words, val, &v) == -1) {
		(void)buf_addf(why, "expected strict or lenient, got %s",
		    Q(qb, val));
		return -1;
	}
	*(bool *)field = v != 0;
	return 0;
}

static int
conf_set_choice(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	char	qb[CONF_QUOTE_BUF];
	size_t	i;
	int	v;

	(void)env;
	for (i = 0; i < sizeof(conf_choices) / sizeof(conf_choices[0]); i++)
		if (strcmp(conf_choices[i].key, k->name) == 0)
			break;
	if (i == sizeof(conf_choices) / sizeof(conf_choices[0]))
		panic("conf_set_choice: no words for %s", k->name);
	if (conf_word_find(conf_choices[i].words, val, &v) == -1) {
		(void)buf_addf(why, "expected %s, got %s",
		    conf_choices[i].expect, Q(qb, val));
		return -1;
	}
	*(int *)field = v;
	return 0;
}

static int
conf_set_hostname(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	char	 norm[CONF_NAME_MAX + 1], qb[CONF_QUOTE_BUF], *s;
	size_t	 len = strlen(val);

	(void)k;
	(void)env;
	if (len == 0 || val[len - 1] == '.' ||
	    conf_domain_norm(val, len, norm) == -1) {
		(void)buf_addf(why, "%s is not a valid host name (letters, "
		    "digits, '-' and '.', at most 255)", Q(qb, val));
		return -1;
	}
	if ((s = strdup(val)) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	*(char **)field = s;
	return 0;
}

/* rel made absolute against dir; NULL with why set. */
static char *
conf_abs_path(const char *dir, const char *rel, struct buf *why)
{
	char	*p, qb[CONF_QUOTE_BUF];
	size_t	 dlen, rlen = strlen(rel);
	bool	 slash;

	if (rlen == 0) {
		(void)buf_addf(why, "the path is empty");
		return NULL;
	}
	if (rel[0] == '/')
		dir = "";
	dlen = strlen(dir);
	slash = dlen > 0 && dir[dlen - 1] != '/';
	if (dlen + slash + rlen >= PATH_MAX) {
		(void)buf_addf(why, "path %s is longer than %d bytes",
		    Q(qb, rel), PATH_MAX - 1);
		return NULL;
	}
	if ((p = malloc(dlen + slash + rlen + 1)) == NULL) {
		(void)buf_addf(why, "out of memory");
		return NULL;
	}
	memcpy(p, dir, dlen);
	if (slash)
		p[dlen] = '/';
	memcpy(p + dlen + slash, rel, rlen + 1);
	return p;
}

static int
conf_set_path(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	char	*p;

	(void)k;
	if ((p = conf_abs_path(env->dir, val, why)) == NULL)
		return -1;
	*(char **)field = p;
	return 0;
}

/* "scheme:rest" with scheme matched case-insensitively; rest or NULL. */
static const char *
conf_scheme(const char *val, const char *scheme)
{
	size_t	n = strlen(scheme);

	if (strncasecmp(val, scheme, n) == 0 && val[n] == ':')
		return val + n + 1;
	return NULL;
}

static void
conf_free_dirlinks(struct dir_spec *d)
{
	size_t	i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].path);
		d->v[i].path = NULL;
	}
	d->n = 0;
	d->path = NULL;
}

/* One "scheme:PATH" of the `directory` chain into l. */
static int
conf_set_dir_link(const char *val, struct dir_link *l,
    const struct conf_env *env, struct buf *why)
{
	static const struct { const char *scheme; enum dir_kind kind; }
	    kinds[] = { { "file", DIR_KIND_FILE },
	    { "hashed", DIR_KIND_HASHED } };
	const char	*rest = NULL, *colon;
	char		 qb[CONF_QUOTE_BUF], *p;
	size_t		 i;

	if (strcasecmp(val, "ldap") == 0) {	/* its keys: ldap_* */
		l->kind = DIR_KIND_LDAP;
		l->path = NULL;
		return 0;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((rest = conf_scheme(val, kinds[i].scheme)) != NULL)
			break;
	if (rest == NULL) {
		if (strncasecmp(val, "ldap", 4) == 0 && (val[4] == ':' ||
		    val[4] == 's'))
			(void)buf_addf(why, "write `ldap` here and the "
			    "servers in ldap_uri, got %s", Q(qb, val));
		else if ((colon = strchr(val, ':')) == NULL || colon == val)
			(void)buf_addf(why, "expected file:PATH, "
			    "hashed:PATH or ldap, got %s", Q(qb, val));
		else
			(void)buf_addf(why, "unsupported back-end %s "
			    "(supported: file, hashed, ldap)", conf_quote(qb,
			    sizeof(qb), val, (size_t)(colon - val)));
		return -1;
	}
	if ((p = conf_abs_path(env->dir, rest, why)) == NULL)
		return -1;
	l->kind = kinds[i].kind;
	l->path = p;
	return 0;
}

static int
conf_set_directory(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct dir_spec	*d = field;
	struct dir_spec	 t = { 0 };
	char		 one[CONF_LINE_MAX + 1];
	const char	*p, *e;
	size_t		 len;

	(void)k;
	for (p = val; ; p = e + 1) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(e - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(one)) {
			(void)buf_addf(why, "%s", *val == '\0' ? "required" :
			    "empty or over-long entry in the list");
			goto bad;
		}
		if (t.n == DIR_CHAIN_MAX) {
			(void)buf_addf(why, "more than %d back-ends",
			    DIR_CHAIN_MAX);
			goto bad;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		if (conf_set_dir_link(one, &t.v[t.n], env, why) == -1)
			goto bad;
		t.n++;
		if (*e == '\0')
			break;
	}
	conf_free_dirlinks(d);
	*d = t;
	d->kind = d->v[0].kind;
	d->path = d->v[0].path;
	return 0;
bad:
	conf_free_dirlinks(&t);
	return -1;
}

/*
 * "HOST:PORT" or "[v6]:PORT" into host (no brackets) and port; host is a
 * name or an IP literal.  0 or -1 with why.
 */
static int
conf_hostport(const char *val, struct host_port *hp, struct buf *why)
{
	char		 t[CONF_NAME_MAX + 8], norm[CONF_NAME_MAX + 1];
	char		 qb[CONF_QUOTE_BUF], *port, *end, *host;
	unsigned long	 pn;
	size_t		 len = strlen(val);
	unsigned char	 a6[16];

	if (len == 0 || len >= sizeof(t))
		goto bad;
	memcpy(t, val, len + 1);
	if (t[0] == '[') {
		if ((end = strchr(t, ']')) == NULL || end[1] != ':')
			goto bad;
		*end = '\0';
		host = t + 1;
		port = end + 2;
		if (inet_pton(AF_INET6, host, a6) != 1)
			goto bad;
	} else {
		if ((port = strrchr(t, ':')) == NULL)
			goto bad;
		*port++ = '\0';
		host = t;
		if (inet_pton(AF_INET, host, a6) != 1 &&
		    conf_domain_norm(host, strlen(host), norm) == -1)
			goto bad;
	}
	if (*port < '0' || *port > '9' || strlen(port) > 5)
		goto bad;
	pn = strtoul(port, &end, 10);
	if (*end != '\0' || pn < 1 || pn > 65535)
		goto bad;
	if ((hp->host = strdup(host)) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	hp->port = (uint16_t)pn;
	return 0;
bad:
	(void)buf_addf(why, "expected HOST:PORT (e.g. mail.example.org:25 or "
	    "[::1]:24), got %s", Q(qb, val));
	return -1;
}

static bool	conf_is_empty(const char *);

/* Keep a checked value: a copy in a char * field.  0 or -1 with why. */
static int
conf_store_str(void *field, const char *val, struct buf *why)
{
	if ((*(char **)field = strdup(val)) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	return 0;
}

static int
conf_set_hop(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct next_hop	*h = field;
	struct host_port hp = { NULL, 0 };
	const char	*rest;
	char		 qb[CONF_QUOTE_BUF], *p;

	(void)k;
	if ((rest = conf_scheme(val, "maildir")) != NULL) {
		if ((p = conf_abs_path(env->dir, rest, why)) == NULL)
			return -1;
		h->kind = HOP_MAILDIR;
		h->path = p;
		return 0;
	}
	if ((rest = conf_scheme(val, "lmtp")) != NULL &&
	    conf_scheme(rest, "unix") != NULL) {
		if ((p = conf_abs_path(env->dir, rest + 5, why)) == NULL)
			return -1;
		if (strlen(p) >= 108) {		/* sun_path */
			(void)buf_addf(why, "socket path %s is too long",
			    Q(qb, p));
			free(p);
			return -1;
		}
		h->kind = HOP_LMTP;
		h->path = p;
		return 0;
	}
	if (rest != NULL || (rest = conf_scheme(val, "smtp")) != NULL) {
		if (conf_hostport(rest, &hp, why) == -1)
			return -1;
		h->kind = conf_scheme(val, "lmtp") ? HOP_LMTP : HOP_SMTP;
		h->host = hp.host;
		h->port = hp.port;
		return 0;
	}
	(void)buf_addf(why, "expected maildir:DIR, smtp:HOST:PORT, "
	    "lmtp:HOST:PORT or lmtp:unix:PATH, got %s", Q(qb, val));
	return -1;
}

static int
conf_set_hostport(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	(void)k;
	(void)env;
	if (conf_is_empty(val))
		return 0;		/* unset */
	return conf_hostport(val, field, why);
}

/* A local user name; it must exist (getpwnam). */
static int
conf_set_user(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_is_empty(val))
		return 0;
	if (getpwnam(val) == NULL) {
		(void)buf_addf(why, "no such user %s", Q(qb, val));
		return -1;
	}
	return conf_store_str(field, val, why);
}

/* COUNT/DURATION, e.g. 10/10m. */
static int
conf_set_rate(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct rate_spec *r = field;
	const char	*slash = strchr(val, '/'), *end;
	uint64_t	 n = 0, ms = 0;
	char		 qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (slash == NULL || *val < '0' || *val > '9' ||
	    conf_digits(val, &end, &n) == -1 || end != slash ||
	    n < 1 || n > 1000000 ||
	    conf_scaled(slash + 1, conf_msec_units, &ms) == -1 ||
	    ms < 1000 || ms > 7 * 24 * 3600 * 1000ull) {
		(void)buf_addf(why, "expected COUNT/DURATION like 10/10m "
		    "(count 1 to 1000000, duration 1s to 7d), got %s",
		    Q(qb, val));
		return -1;
	}
	r->count = (unsigned)n;
	r->window_ms = (unsigned)ms;
	return 0;
}

/* An SMTP reply: "4xx X.Y.Z text" or "5xx X.Y.Z text" (RFC 3463). */
static int
conf_set_reply(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	size_t	i, len = strlen(val);
	char	qb[CONF_QUOTE_BUF];
	bool	ok;

	(void)k;
	(void)env;
	ok = len >= 11 && len <= 200 && (val[0] == '4' || val[0] == '5') &&
	    val[1] >= '0' && val[1] <= '9' && val[2] >= '0' &&
	    val[2] <= '9' && val[3] == ' ' && val[4] == val[0] &&
	    val[5] == '.' && val[6] >= '0' && val[6] <= '9';
	for (i = 0; ok && i < len; i++)
		ok = val[i] >= 0x20 && val[i] < 0x7f;
	if (ok) {
		const char *sp = strchr(val + 4, ' ');
		size_t	    j;

		ok = sp != NULL && sp[1] != '\0';
		for (j = 4; ok && val + j < sp; j++)
			ok = (val[j] >= '0' && val[j] <= '9') || val[j] == '.';
	}
	if (!ok) {
		(void)buf_addf(why, "expected a 4xx or 5xx reply with an "
		    "enhanced status code, like '450 4.7.1 Try again later', "
		    "got %s", Q(qb, val));
		return -1;
	}
	return conf_store_str(field, val, why);
}

static int
conf_set_delim(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	size_t	i, len = strlen(val);
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (len > CONF_DELIM_MAX) {
		(void)buf_addf(why, "at most %d characters, got %s",
		    CONF_DELIM_MAX, Q(qb, val));
		return -1;
	}
	for (i = 0; i < len; i++)
		if (val[i] <= ' ' || val[i] >= 0x7f || val[i] == '@' ||
		    val[i] == '"') {
			(void)buf_addf(why, "%s cannot be a delimiter (any "
			    "printable character but '@', '\"' and space)",
			    conf_quote(qb, sizeof(qb), val + i, 1));
			return -1;
		}
	memcpy(field, val, len + 1);
	return 0;
}

static int
conf_set_cidrs(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct cidr_list	 l;
	const char		*bad = val;
	char			 qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (cidr_list_parse(val, &l, &bad) == -1) {
		(void)buf_addf(why, "%s is not a network like 10.0.0.0/8 or "
		    "2001:db8::/32", conf_quote(qb, sizeof(qb), bad,
		    strcspn(bad, ",")));
		return -1;
	}
	*(struct cidr_list *)field = l;
	return 0;
}

/*
 * Items of a comma-separated value, blanks trimmed.  *sp is NULL after the
 * last item; "a," has a second, empty item (the caller refuses it).
 */
static void
conf_item_next(const char **sp, const char **item, size_t *len)
{
	const char	*p = *sp, *end;

	while (conf_isblank(*p))
		p++;
	*item = p;
	if ((end = strchr(p, ',')) != NULL)
		*sp = end + 1;
	else {
		end = p + strlen(p);
		*sp = NULL;
	}
	while (end > p && conf_isblank(end[-1]))
		end--;
	*len = (size_t)(end - p);
}

static size_t
conf_item_count(const char *val)
{
	size_t	n = 1;

	for (; *val != '\0'; val++)
		n += *val == ',';
	return n;
}

static bool
conf_is_empty(const char *val)
{
	while (conf_isblank(*val))
		val++;
	return *val == '\0';
}

/* "1.2.3.4:25" or "[::1]:25" into a; 0 or -1. */
static int
conf_listen_one(const char *s, size_t len, struct listen_addr *a)
{
	char		 t[CONF_LISTEN_TEXT_MAX + 1], *port, *end;
	unsigned long	 pn;
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	if (len == 0 || len > CONF_LISTEN_TEXT_MAX)
		return -1;
	memcpy(t, s, len);
	t[len] = '\0';
	if (t[0] == '[') {
		if ((end = strchr(t, ']')) == NULL || end[1] != ':')
			return -1;
		*end = '\0';
		port = end + 2;
	} else {
		if ((port = strrchr(t, ':')) == NULL)
			return -1;
		*port++ = '\0';
	}
	if (*port < '0' || *port > '9' || strlen(port) > 5)
		return -1;
	pn = strtoul(port, &end, 10);
	if (*end != '\0' || pn < 1 || pn > 65535)
		return -1;
	memset(&a->ss, 0, sizeof(a->ss));
	if (t[0] == '[') {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)pn);
		if (inet_pton(AF_INET6, t + 1, &sin6.sin6_addr) != 1)
			return -1;
		memcpy(&a->ss, &sin6, sizeof(sin6));
		a->sslen = sizeof(sin6);
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)pn);
		if (inet_pton(AF_INET, t, &sin.sin_addr) != 1)
			return -1;
		memcpy(&a->ss, &sin, sizeof(sin));
		a->sslen = sizeof(sin);
	}
	return (a->text = strndup(s, len)) == NULL ? -1 : 0;
}

static void
conf_listen_free(struct listen_addr *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].text);
	free(v);
}

static int
conf_set_listen(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct listen_addr	*v;
	const char		*sp = val, *item;
	size_t			 n = 0, i, len;
	char			 qb[CONF_QUOTE_BUF];

	(void)k;
	(void)field;			/* fills listen and nlisten */
	if (conf_is_empty(val)) {
		(void)buf_addf(why, "at least one address is required");
		return -1;
	}
	if ((v = calloc(conf_item_count(val), sizeof(*v))) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	while (sp != NULL) {
		conf_item_next(&sp, &item, &len);
		if (conf_listen_one(item, len, &v[n]) == -1) {
			(void)buf_addf(why, "%s is not ADDRESS:PORT with a "
			    "port 1-65535 (e.g. 127.0.0.1:2525 or [::1]:2525)",
			    conf_quote(qb, sizeof(qb), item, len));
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (v[i].sslen == v[n].sslen &&
			    memcmp(&v[i].ss, &v[n].ss, v[n].sslen) == 0) {
				(void)buf_addf(why, "%s is listed twice",
				    conf_quote(qb, sizeof(qb), item, len));
				n++;
				goto fail;
			}
		n++;
	}
	env->cfg->listen = v;
	env->cfg->nlisten = n;
	return 0;
fail:
	conf_listen_free(v, n);
	return -1;
}

/* A path, or nothing: "" leaves the field NULL. */
static int
conf_set_optpath(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	if (conf_is_empty(val))
		return 0;
	return conf_set_path(k, val, field, env, why);
}

/* The shared_state URL, checked whole (redis_url.h), or "": NULL. */
static int
conf_set_redisurl(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct redis_url	 u;
	const char		*msg;
	char			 qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_is_empty(val))
		return 0;
	if (redis_url_parse(val, strlen(val), &u, &msg) == -1) {
		(void)buf_addf(why, "%s: %s", msg, Q(qb, val));
		return -1;
	}
	return conf_store_str(field, val, why);
}

/* "file:PATH" (relative to the config's folder), or "": NULL. */
static int
conf_set_filemap(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	const char	*rest;
	char		 qb[CONF_QUOTE_BUF], *p;

	(void)k;
	if (conf_is_empty(val))
		return 0;
	if ((rest = conf_scheme(val, "file")) == NULL || *rest == '\0') {
		(void)buf_addf(why, "expected file:PATH, got %s", Q(qb, val));
		return -1;
	}
	if ((p = conf_abs_path(env->dir, rest, why)) == NULL)
		return -1;
	*(char **)field = p;
	return 0;
}

/* dnsbl_sites: NULL when empty, so "off" costs one test at connect. */
static int
conf_set_dnsbl(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct dnsbl_list	*l;
	char			 msg[256], *p;

	(void)k;
	(void)env;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	if (dnsbl_list_parse(val, strlen(val), l, msg, sizeof(msg)) == -1) {
		for (p = msg; *p != '\0'; p++)	/* the message quotes val */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		(void)buf_addf(why, "%s", msg);
		free(l);
		return -1;
	}
	if (l->n == 0) {
		free(l);
		l = NULL;
	}
	*(struct dnsbl_list **)field = l;
	return 0;
}

static void
conf_free_dnsbl(struct config *cfg, void *field)
{
	(void)cfg;
	free(*(struct dnsbl_list **)field);
	*(struct dnsbl_list **)field = NULL;
}

static const struct conf_word conf_tls_words[] = {
	{ "TLSv1.2", CONF_TLS_V1_2 }, { "TLSv1.3", CONF_TLS_V1_3 },
	{ NULL, 0 }
};

/* "TLSv1.2,TLSv1.3": the versions offered; TLS 1.0 and 1.1 are not
 * (RFC 8996). */
static int
conf_set_tlsproto(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	const char	*sp = val, *item;
	char		 w[16], qb[CONF_QUOTE_BUF];
	size_t		 len;
	unsigned	 bits = 0;
	int		 v = 0;

	(void)k;
	(void)env;
	while (sp != NULL) {
		conf_item_next(&sp, &item, &len);
		if (len < sizeof(w)) {
			memcpy(w, item, len);
			w[len] = '\0';
		}
		if (len >= sizeof(w) ||
		    conf_word_find(conf_tls_words, w, &v) == -1) {
			(void)buf_addf(why, "%s is not TLSv1.2 or TLSv1.3 "
			    "(older versions are refused, RFC 8996)",
			    conf_quote(qb, sizeof(qb), item, len));
			return -1;
		}
		bits |= (unsigned)v;
	}
	*(unsigned *)field = bits;
	return 0;
}

/* Printable ASCII, 1 to CONF_TEXT_MAX bytes (passed on to a library). */
static int
conf_set_text(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	size_t	i, len = strlen(val);
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	for (i = 0; i < len; i++)
		if (val[i] < 0x20 || val[i] > 0x7e)
			break;
	if (len == 0 || len > CONF_TEXT_MAX || i < len) {
		(void)buf_addf(why, "expected 1 to %d printable characters, "
		    "got %s", CONF_TEXT_MAX, Q(qb, val));
		return -1;
	}
	return conf_store_str(field, val, why);
}

/* CT_TEXT, or "" for none (NULL). */
static int
conf_set_opttext(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	if (*val == '\0') {
		free(*(char **)field);
		*(char **)field = NULL;
		return 0;
	}
	return conf_set_text(k, val, field, env, why);
}

/*
 * Addresses like `listen`, into a listen_set; may be empty.  None may be
 * in `listen` as well (set before: its row comes first).
 */
static int
conf_set_listens(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct config		 scratch;
	struct conf_env		 senv = { &scratch, env->dir };
	struct listen_set	*ls = field;
	const struct listen_addr *a, *b;
	size_t			 i, j;

	if (conf_is_empty(val))
		return 0;
	memset(&scratch, 0, sizeof(scratch));
	if (conf_set_listen(k, val, NULL, &senv, why) == -1)
		return -1;
	for (i = 0; i < scratch.nlisten; i++)
		for (j = 0; j < env->cfg->nlisten; j++) {
			a = &scratch.listen[i];
			b = &env->cfg->listen[j];
			if (a->sslen == b->sslen &&
			    memcmp(&a->ss, &b->ss, a->sslen) == 0) {
				(void)buf_addf(why, "%s is in listen too",
				    a->text);
				conf_listen_free(scratch.listen,
				    scratch.nlisten);
				return -1;
			}
		}
	ls->addr = scratch.listen;
	ls->n = scratch.nlisten;
	return 0;
}

static void
conf_domains_free(struct domain_conf *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* Checks one domain of the list and appends it; 0 or -1 with why. */
static int
conf_domains_add(struct domain_conf *v, size_t n, const char *item,
    size_t len, struct buf *why)
{
	char	norm[CONF_NAME_MAX + 1], qb[CONF_QUOTE_BUF];
	size_t	i;

	if (conf_udomain_norm(item, len, norm) == -1) {
		(void)buf_addf(why, "%s is not a valid domain name",
		    conf_quote(qb, sizeof(qb), item, len));
		return -1;
	}
	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, norm) == 0) {
			(void)buf_addf(why, "%s is listed twice",
			    conf_quote(qb, sizeof(qb), item, len));
			return -1;
		}
	if ((v[n].name = strdup(norm)) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	return 0;
}

static int
conf_set_domains(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct domain_conf	*v;
	const char		*sp = val, *item;
	size_t			 n = 0, len;

	(void)k;
	(void)field;			/* fills domains and ndomains */
	if (conf_is_empty(val)) {
		(void)buf_addf(why, "at least one domain is required");
		return -1;
	}
	if ((v = calloc(conf_item_count(val), sizeof(*v))) == NULL) {
		(void)buf_addf(why, "out of memory");
		return -1;
	}
	while (sp != NULL) {
		conf_item_next(&sp, &item, &len);
		if (conf_domains_add(v, n, item, len, why) == -1) {
			conf_domains_free(v, n);
			return -1;
		}
		n++;
	}
	env->cfg->domains = v;
	env->cfg->ndomains = n;
	return 0;
}

/*
 * batv_domains: each must be one of domains (set before it: the table's
 * order); marks those domains (domain_conf.batv), counts them in field.
 */
static int
conf_set_batvdoms(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	struct config	*c = env->cfg;
	char		 norm[CONF_NAME_MAX + 1], qb[CONF_QUOTE_BUF];
	const char	*sp = val, *item;
	size_t		 len, i, pass;
	unsigned	 n = 0;

	(void)k;
	if (conf_is_empty(val))
		return 0;
	if (c == NULL || c->ndomains == 0) {
		(void)buf_addf(why, "set domains first");
		return -1;
	}
	/* pass 0 checks every item, pass 1 marks: field untouched on error */
	for (pass = 0; pass < 2; pass++)
		for (sp = val, n = 0; sp != NULL; n++) {
			conf_item_next(&sp, &item, &len);
			if (conf_udomain_norm(item, len, norm) == -1) {
				(void)buf_addf(why, "%s is not a valid domain "
				    "name", conf_quote(qb, sizeof(qb), item,
				    len));
				return -1;
			}
			for (i = 0; i < c->ndomains &&
			    strcmp(c->domains[i].name, norm) != 0; i++)
				continue;
			if (i == c->ndomains) {
				(void)buf_addf(why, "%s is not listed in "
				    "domains", conf_quote(qb, sizeof(qb), item,
				    len));
				return -1;
			}
			if (pass == 1 && c->domains[i].batv) {
				(void)buf_addf(why, "%s is listed twice",
				    conf_quote(qb, sizeof(qb), item, len));
				for (i = 0; i < c->ndomains; i++)
					c->domains[i].batv = false;
				return -1;
			}
			if (pass == 1)
				c->domains[i].batv = true;
		}
	*(unsigned *)field = n;
	return 0;
}

static void
conf_free_batvdoms(struct config *cfg, void *field)
{
	(void)cfg;
	*(unsigned *)field = 0;
}

static void
conf_free_str(struct config *cfg, void *field)
{
	(void)cfg;
	free(*(char **)field);
	*(char **)field = NULL;
}

static void
conf_free_listen(struct config *cfg, void *field)
{
	(void)field;
	conf_listen_free(cfg->listen, cfg->nlisten);
	cfg->listen = NULL;
	cfg->nlisten = 0;
}

static void
conf_free_listens(struct config *cfg, void *field)
{
	struct listen_set	*ls = field;

	(void)cfg;
	conf_listen_free(ls->addr, ls->n);
	ls->addr = NULL;
	ls->n = 0;
}

/* Names and array only: conf.c frees each domain's fields first. */
static void
conf_free_domains(struct config *cfg, void *field)
{
	(void)field;
	conf_domains_free(cfg->domains, cfg->ndomains);
	cfg->domains = NULL;
	cfg->ndomains = 0;
}

static void
conf_free_dirspec(struct config *cfg, void *field)
{
	(void)cfg;
	conf_free_dirlinks(field);
}

static void
conf_free_hop(struct config *cfg, void *field)
{
	conf_free_str(cfg, &((struct next_hop *)field)->path);
	conf_free_str(cfg, &((struct next_hop *)field)->host);
}

static void
conf_free_hostport(struct config *cfg, void *field)
{
	conf_free_str(cfg, &((struct host_port *)field)->host);
}

static void
conf_free_cidrs(struct config *cfg, void *field)
{
	(void)cfg;
	cidr_list_free(field);
}

/* Outbound TLS (issue 20) */

static const struct conf_word conf_tlslevel_words[] = {
	{ "none", CONF_TLS_NONE }, { "may", CONF_TLS_MAY },
	{ "encrypt", CONF_TLS_ENCRYPT }, { "verify", CONF_TLS_VERIFY },
	{ NULL, 0 }
};

static int
conf_set_tlslevel(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	int	v;
	char	qb[CONF_QUOTE_BUF];

	(void)k;
	(void)env;
	if (conf_word_find(conf_tlslevel_words, val, &v) == -1) {
		(void)buf_addf(why, "expected none, may, encrypt or verify, "
		    "got %s", Q(qb, val));
		return -1;
	}
	*(enum conf_tls_level *)field = (enum conf_tls_level)v;
	return 0;
}

/* A host name or an IP literal (no []), or empty for none. */
static int
conf_set_opthost(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	unsigned char	a[sizeof(struct in6_addr)];
	char		norm[CONF_NAME_MAX + 1], qb[CONF_QUOTE_BUF];
	size_t		len = strlen(val);

	(void)k;
	(void)env;
	if (conf_is_empty(val))
		return 0;
	if (inet_pton(AF_INET, val, a) != 1 && inet_pton(AF_INET6, val,
	    a) != 1 && (val[len - 1] == '.' ||
	    conf_domain_norm(val, len, norm) == -1)) {
		(void)buf_addf(why, "%s is not a host name or IP address",
		    Q(qb, val));
		return -1;
	}
	return conf_store_str(field, val, why);
}

static int
conf_set_pins(const struct conf_key *k, const char *val, void *field,
    const struct conf_env *env, struct buf *why)
{
	char		qb[CONF_QUOTE_BUF];
	size_t		at = 0, len = strlen(val);
	enum parse_rc	rc;

	(void)k;
	(void)env;
	rc = fprint_parse(val, len, field, &at);
	if (rc == PARSE_TOOLONG)
		(void)buf_addf(why, "at most %d fingerprints", FPRINT_PINS_MAX);
	else if (rc != PARSE_OK && at >= len)
		(void)buf_addf(why, "expected sha256:HEX (64 hex digits), "
		    "comma-separated; %s ends too soon", Q(qb, val));
	else if (rc != PARSE_OK)
		(void)buf_addf(why, "expected sha256:HEX (64 hex digits), "
		    "comma-separated; bad at %s", conf_quote(qb, sizeof(qb),
		    val + at, len - at));
	return rc == PARSE_OK ? 0 : -1;
}

const struct conf_type_ops conf_types[CT_COUNT] = {
	[CT_HOSTNAME] = { "host name", conf_set_hostname, conf_free_str },
	[CT_LISTEN] =	{ "addresses", conf_set_listen, conf_free_listen },
	[CT_PATH] =	{ "path", conf_set_path, conf_free_str },
	[CT_DOMAINS] = { "domains", conf_set_domains, conf_free_domains },
	[CT_DIRECTORY] = { "back-end", conf_set_directory, conf_free_dirspec },
	[CT_CIDRS] =	{ "networks", conf_set_cidrs, conf_free_cidrs },
	[CT_UNKNOWN] =	{ "policy", conf_set_unknown, NULL },
	[CT_HOP] =	{ "next hop", conf_set_hop, conf_free_hop },
	[CT_DELIM] =	{ "characters", conf_set_delim, NULL },
	[CT_SIZE] =	{ "size", conf_set_size, NULL },
	[CT_UINT] =	{ "number", conf_set_uint, NULL },
	[CT_LOGLEVEL] =	{ "level", conf_set_loglevel, NULL },
	[CT_BOOL] =	{ "yes/no", conf_set_bool, NULL },
	[CT_MSEC] =	{ "duration", conf_set_msec, NULL },
	[CT_HOSTPORT] =	{ "host:port", conf_set_hostport, conf_free_hostport },
	[CT_RATE] =	{ "count/time", conf_set_rate, NULL },
	[CT_REPLY] =	{ "reply", conf_set_reply, conf_free_str },
	[CT_USER] =	{ "user", conf_set_user, conf_free_str },
	[CT_OPTPATH] =	{ "path", conf_set_optpath, conf_free_str },
	[CT_TLSPROTO] = { "versions", conf_set_tlsproto, NULL },
	[CT_TEXT] =	{ "text", conf_set_text, conf_free_str },
	[CT_OPTTEXT] =	{ "text", conf_set_opttext, conf_free_str },
	[CT_LISTENS] =	{ "addresses", conf_set_listens, conf_free_listens },
	[CT_ENVSYNTAX] = { "strict/lenient", conf_set_envsyntax, NULL },
	[CT_TLSLEVEL] = { "TLS level", conf_set_tlslevel, NULL },
	[CT_OPTHOST] =	{ "host name", conf_set_opthost, conf_free_str },
	[CT_PINS] =	{ "fingerprints", conf_set_pins, NULL },
	[CT_CHOICE] =	{ "word", conf_set_choice, NULL },
	[CT_FILEMAP] =	{ "map", conf_set_filemap, conf_free_str },
	[CT_BATVDOMS] = { "domains", conf_set_batvdoms, conf_free_batvdoms },
	[CT_DNSBL] =	{ "lists", conf_set_dnsbl, conf_free_dnsbl },
	[CT_MILTERS] =	{ "milters", conf_set_milters, conf_free_milters },
	[CT_REDISURL] =	{ "Redis URL", conf_set_redisurl, conf_free_str },
};

void
conf_dump_keys(FILE *fp)
{
	const struct conf_key	*k;
	const struct conf_unit	*u;
	char			 lo[32], hi[32];
	size_t			 i;

	for (i = 0; i < CONF_NKEYS; i++) {
		k = &conf_keys[i];
		fprintf(fp, "%-25s = %-18s %-10s (%s)\n", k->name,
		    k->flags & CK_SYSHOST ? "<system host name>" :
		    k->flags & CK_REQUIRED ? "<required>" :
		    *k->dflt == '\0' ? "<empty>" : k->dflt,
		    k->flags & CK_DOMAIN ? "per-domain" : "global",
		    conf_types[k->type].name);
		fprintf(fp, "    %s", k->doc);
		if (k->max != 0) {
			u = conf_units_of(k);
			fprintf(fp, "; %s to %s",
			    conf_fmt(lo, sizeof(lo), k->min, u),
			    conf_fmt(hi, sizeof(hi), k->max, u));
		}
		fputc('\n', fp);
	}
}

/* Text for roff: backslashes doubled as \e, a leading '.' or '\''
 * (a request) disarmed with \&; bold when bold. */
static void
conf_man_text(FILE *fp, const char *s, bool bold)
{
	if (bold)
		fputs("\\fB", fp);
	if (*s == '.' || *s == '\'')
		fputs("\\&", fp);
	for (; *s != '\0'; s++)
		if (*s == '\\')
			fputs("\\e", fp);
		else if (*s == '-' && bold)
			fputs("\\-", fp);	/* a value: a minus, as typed */
		else
			fputc(*s, fp);
	if (bold)
		fputs("\\fR", fp);
}

void
conf_man_keys(FILE *fp)
{
	const struct conf_key	*k;
	const struct conf_unit	*u;
	char			 lo[32], hi[32];
	size_t			 i;

	for (i = 0; i < CONF_NKEYS; i++) {
		k = &conf_keys[i];
		fputs(".TP\n.B ", fp);
		conf_man_text(fp, k->name, false);
		/* the table's docs are phrases: a capital makes a sentence */
		fprintf(fp, "\n%c", k->doc[0] >= 'a' && k->doc[0] <= 'z' ?
		    k->doc[0] - 32 : k->doc[0]);
		conf_man_text(fp, k->doc + 1, false);
		fputs(".\n.br\nDefault: ", fp);
		if (k->flags & CK_SYSHOST)
			fputs("the system host name", fp);
		else if (k->flags & CK_REQUIRED)
			fputs("none (required)", fp);
		else if (*k->dflt == '\0')
			fputs("empty", fp);
		else
			conf_man_text(fp, k->dflt, true);
		fprintf(fp, "; %s; %s", k->flags & CK_DOMAIN ?
		    "per domain" : "global", conf_types[k->type].name);
		if (k->max != 0) {
			u = conf_units_of(k);
			fputs("; from ", fp);
			conf_man_text(fp, conf_fmt(lo, sizeof(lo), k->min, u),
			    true);
			fputs(" to ", fp);
			conf_man_text(fp, conf_fmt(hi, sizeof(hi), k->max, u),
			    true);
		}
		fputs(".\n", fp);
	}
}

/* s without the blanks next to a comma, and without a leading or
 * trailing blank; cut at CONF_TEXT_MAX * 2 bytes. */
static void
conf_canon_list(const char *s, char *out, size_t outlen)
{
	size_t	o = 0;

	for (; *s != '\0' && o + 1 < outlen; s++) {
		if (conf_isblank(*s)) {
			const char	*n = s;

			while (conf_isblank(*n))
				n++;
			if (o == 0 || *n == '\0' || *n == ',' ||
			    out[o - 1] == ',') {
				s = n - 1;
				continue;
			}
		}
		out[o++] = *s;
	}
	out[o] = '\0';
}

bool
conf_value_same(const struct conf_key *k, const char *a, const char *b)
{
	/* large enough for every plain field (a type without a free()):
	 * a new plain type whose field is larger joins this union */
	union {
		uint64_t		u[8];
		char			c[64];
		struct fprint_pins	pins;	/* CT_PINS */
	}		 fa, fb;
	struct conf_env	 env = { NULL, "/" };
	struct buf	 why;
	char		 ca[CONF_TEXT_MAX * 2], cb[CONF_TEXT_MAX * 2];
	int		 ra, rb;

	if (conf_types[k->type].free == NULL) {
		memset(&fa, 0, sizeof(fa));
		memset(&fb, 0, sizeof(fb));
		buf_init(&why, CONF_WHY_MAX);
		ra = conf_types[k->type].set(k, a, &fa, &env, &why);
		rb = conf_types[k->type].set(k, b, &fb, &env, &why);
		buf_free(&why);
		if (ra == 0 && rb == 0)
			return memcmp(&fa, &fb, sizeof(fa)) == 0;
	}
	conf_canon_list(a, ca, sizeof(ca));
	conf_canon_list(b, cb, sizeof(cb));
	return strcmp(ca, cb) == 0;
}
