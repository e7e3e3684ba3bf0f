/*
 * conf.h - the configuration: an immutable, refcounted snapshot built from
 * one file of "key = value" lines with [domain NAME] sections.
 * Owns: the descriptor table (conf_keys.c) that drives parsing, defaults,
 * bounds, check-config and the documentation dump.
 * Never: opens sockets or reads the users file (dir.h does that).
 * Untrusted: the config file (bounded lines, every error with its line).
 */
#ifndef MXGATE_CONF_H
#define MXGATE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <sys/socket.h>
#include <netinet/in.h>

#include "../lib/cidr.h"
#include "../lib/fprint.h"
#include "../lib/keyring.h"
#include "../lib/log.h"

#define CONF_LINE_MAX		4096	/* longer config lines are errors */
#define CONF_DELIM_MAX		8	/* recipient_delimiter characters */
#define CONF_FILE_MAX		(1024 * 1024)	/* larger files are errors */

enum unknown_policy {
	UNKNOWN_REJECT,		/* 550 5.1.1 at RCPT */
	UNKNOWN_DISCARD,	/* valid reply, never queued */
	UNKNOWN_BOUNCE,		/* valid reply; an NDR if the backscatter
				 * guard allows it */
};

enum hop_kind {
	HOP_MAILDIR,		/* maildir:DIR */
	HOP_SMTP,		/* smtp:HOST:PORT */
	HOP_LMTP,		/* lmtp:HOST:PORT or lmtp:unix:PATH */
};

struct next_hop {
	enum hop_kind	 kind;
	char		*path;		/* maildir or unix socket; absolute */
	char		*host;		/* TCP: name or IP literal, no [] */
	uint16_t	 port;
};

/* HOST:PORT, with [IPv6]:PORT; host NULL when unset. */
struct host_port {
	char		*host;
	uint16_t	 port;
};

/* COUNT/DURATION, e.g. 10/10m. */
struct rate_spec {
	unsigned	 count;
	unsigned	 window_ms;
};

enum dir_kind {
	DIR_KIND_FILE,		/* file:PATH */
	DIR_KIND_HASHED,	/* hashed:PATH, keyed by directory_key_file */
	DIR_KIND_LDAP,		/* ldap: the ldap_* keys */
};
#define DIR_KIND_LAST	DIR_KIND_LDAP	/* obs.h: one histogram each */
#define DIR_CHAIN_MAX	4	/* back-ends in one `directory` chain */

/* One back-end of the chain. */
struct dir_link {
	enum dir_kind	 kind;
	char		*path;		/* absolute */
};

/* `directory`: back-ends asked in order; kind and path: the first's. */
struct dir_spec {
	enum dir_kind	 kind;
	char		*path;		/* v[0].path, not owned */
	struct dir_link	 v[DIR_CHAIN_MAX];
	size_t		 n;
};

struct listen_addr {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*text;		/* as written, for logs */
};

struct listen_set {
	struct listen_addr	*addr;
	size_t			 n;
};

#define CONF_TLS_V1_2	0x01	/* tls_protocols: TLSv1.2 */
#define CONF_TLS_V1_3	0x02	/* TLSv1.3 */

/* Outbound TLS (issue 20): what a next hop or the relayhost must give. */
enum conf_tls_level {
	CONF_TLS_NONE,		/* never STARTTLS */
	CONF_TLS_MAY,		/* STARTTLS when offered, else in clear */
	CONF_TLS_ENCRYPT,	/* TLS or defer (4.7.5) */
	CONF_TLS_VERIFY,	/* TLS with a verified certificate or defer */
};

struct out_tls_conf {
	enum conf_tls_level	 level;
	char			*ca_file;	/* absolute; NULL: system's */
	char			*name;		/* NULL: the hop's host */
	struct fprint_pins	 pins;		/* n 0: none */
};

enum { CONF_LOG_TEXT, CONF_LOG_JSON };
/* A control rolled out in steps: enforce it, only log what it would do
 * (shadow), or leave it off. */
enum { CONF_CONTROL_ENFORCE, CONF_CONTROL_SHADOW, CONF_CONTROL_OFF };
enum { CONF_DANE_NO, CONF_DANE_MAY };	/* dane */

/* The keys a [domain NAME] section may override. */
struct domain_conf {
	char			*name;		/* lower case, no trailing dot */
	enum unknown_policy	 unknown;
	struct next_hop		 hop;
	char			 delim[CONF_DELIM_MAX + 1]; /* "" = none */
	struct out_tls_conf	 tls;		/* next_hop_tls* */
	bool			 batv;		/* listed in batv_domains */
	/* [CONF_NKEYS], per-domain keys: own, global or default text */
	char			**key_text;
	unsigned		*key_line;	/* 0: not set in its section */
};

/* spf_policy */
enum { CONF_SPF_NONE, CONF_SPF_TAG, CONF_SPF_REJECT };
/* dnsbl_action (issue 14, part 4) */
enum { CONF_DNSBL_REJECT, CONF_DNSBL_TAG, CONF_DNSBL_SHADOW };
struct dnsbl_list;

/* milters (issue 16, conf_milter.c): one content filter of the chain */
enum { CONF_MILTER_TEMPFAIL, CONF_MILTER_ACCEPT, CONF_MILTER_REJECT };
struct conf_milter {
	char			*name;		/* as written, for logs */
	int			 family;	/* AF_INET, AF_INET6, AF_UNIX */
	struct in_addr		 a4;
	struct in6_addr		 a6;
	uint16_t		 port;
	char			 path[108];	/* AF_UNIX */
	int			 default_action; /* CONF_MILTER_*, -1: global */
	unsigned		 connect_ms, command_ms, eom_ms; /* 0: global */
};
struct conf_milters {
	struct conf_milter	*m;
	size_t			 n;
};
int		 conf_milter_action(const char *, size_t);	/* or -1 */
const char	*conf_milter_action_name(int);
enum { CONF_LDAP_SYNC_PERSIST, CONF_LDAP_SYNC_POLL, CONF_LDAP_SYNC_NO };

struct config {
	_Atomic int		 refs;		/* see conf_ref(), conf_unref() */
	char			*file;		/* path as given */
	char			*dirname;	/* folder of file, absolute */

	char			*hostname;
	struct listen_addr	*listen;
	size_t			 nlisten;
	char			*spool;		/* absolute */
	struct dir_spec		 directory;
	struct cidr_list	 relay_networks;
	uint64_t		 max_message_size;	/* bytes */
	unsigned		 max_recipients;
	enum log_level		 log_level;
	bool			 localpart_case_sensitive;
	unsigned		 max_errors;		/* per session */
	unsigned		 greeting_delay_ms;
	unsigned		 rcpt_reply_floor_ms;	/* issue 12; 0: off */
	unsigned		 command_timeout_ms;
	unsigned		 data_timeout_ms;
	unsigned		 retry_min_ms;		/* delivery retry */
	unsigned		 retry_max_ms;
	unsigned		 queue_lifetime_ms;
	struct host_port	 relayhost;		/* host NULL: MX */
	struct host_port	 dns_server;		/* host NULL: resolv.conf */
	unsigned		 next_hop_concurrency;
	unsigned		 smtp_connect_timeout_ms;
	unsigned		 smtp_timeout_ms;
	unsigned		 ndr_rate_per_sender;	/* per hour */
	unsigned		 ndr_rate_per_domain;	/* per hour */
	struct rate_spec	 null_sender_rate;	/* per recipient */
	unsigned		 delay_warning_time_ms;	/* RFC 3461; 0: off */
	bool			 ndr_return_full;	/* honour RET=FULL */

	/* harvest guard (DESIGN 3) */
	unsigned		 harvest_window_ms;
	unsigned		 harvest_tarpit_after;
	unsigned		 harvest_tarpit_delay_ms;
	unsigned		 harvest_tarpit_max_ms;
	unsigned		 harvest_session_limit;
	unsigned		 harvest_threshold;
	unsigned		 harvest_threshold_net;
	unsigned		 harvest_ttl_ms;
	char			*harvest_uniform_reply;	/* "450 4.7.1 text" */
	unsigned		 harvest_global_rate;	/* per minute */
	unsigned		 harvest_max_tarpitted;
	unsigned		 harvest_session_delay_max_ms;
	struct cidr_list	 harvest_exempt;
	unsigned		 harvest_max_clients;

	/* limits and hardening (issue 5) */
	char			*user;		/* drop to it; NULL: stay */
	unsigned		 workers;	/* event loops; 0: per core */
	unsigned		 max_connections;
	unsigned		 max_connections_per_client;
	unsigned		 max_connection_rate_per_client; /* per min */
	unsigned		 max_commands_per_session;
	uint64_t		 max_header_size;
	unsigned		 max_line_length;	/* DATA, incl. CRLF */
	unsigned		 session_timeout_ms;
	unsigned		 stress_command_timeout_ms;

	/* STARTTLS and AUTH (issue 5; checked together by tls_ctx_load) */
	char			*tls_cert;	/* absolute; NULL: no TLS */
	char			*tls_key;	/* absolute; NULL: none */
	unsigned		 tls_protocols;	/* CONF_TLS_* bits */
	char			*tls_ciphers;	/* OpenSSL list, TLS 1.2 */
	bool			 tls_required;	/* on the `listen` addresses */
	struct listen_set	 submission;	/* submission_listen */
	struct listen_set	 tls_listen;	/* tls_required_listen */
	bool			 auth_on_smtp;	/* AUTH on `listen` too */
	char			*passwd_file;	/* absolute; NULL: none */
	char			*sender_login_map; /* absolute; NULL: none */
	uint64_t		 spool_min_free; /* bytes; 0: no reserve */

	bool			 envelope_lenient; /* envelope_syntax */

	/* outbound TLS and smarthost AUTH (issue 20) */
	struct out_tls_conf	 relayhost_tls;	/* relayhost_tls* */
	char			*relayhost_auth_file;	/* absolute; NULL */
	char			*pid_file;	/* NULL: SPOOL/mxgate.pid */
	/* each key's value as written, or its default ([CONF_NKEYS]; for
	 * `mxgate config` and the reload report); line 0: not in the file */
	char			**key_text;
	unsigned		*key_line;
	/* metrics and the status page (issue 18, part 1 and 6) */
	struct listen_set	 metrics_listen;	/* empty: off */

	/* decision log and shadow mode (issue 18) */
	int			 log_format;	/* CONF_LOG_* */
	char			*log_file;	/* absolute; NULL: stderr */
	int			 log_syslog;	/* facility; -1: none */
	char			*log_syslog_socket;
	int			 log_recipients; /* 1: hashed */
	char			*log_hash_key_file; /* NULL: in the spool */
	char			*directory_key_file; /* hashed: the HMAC key */
	/* directory = ldap (issue 13) */
	char			*ldap_uri;	/* space-separated; NULL none */
	char			*ldap_base;
	char			*ldap_filter;
	char			*ldap_bind_dn;	/* NULL: anonymous */
	char			*ldap_bind_password_file;
	char			*ldap_tls_ca_file;
	uint32_t		 ldap_timeout_ms;
	uint32_t		 ldap_sync_interval_ms;
	int			 ldap_sync;	/* CONF_LDAP_SYNC_* */
	bool			 ldap_starttls;
	int			 harvest_guard;	/* CONF_CONTROL_* */
	/* fleet (issue 17) */
	char			*shared_state;	/* NULL: off */
	char			*shared_state_password_file;
	unsigned		 shared_state_timeout_ms;
	char			*shared_state_prefix;
	int			 strict_framing; /* CONF_CONTROL_* */
	/* DANE for mail sent by MX (issue 20, deliver/dane.c) */
	int			 dane;		/* CONF_DANE_* */

	/* SPF at MAIL FROM (issue 14, part 1) */
	int			 spf_policy;	/* CONF_SPF_* */
	unsigned		 spf_timeout_ms; /* one evaluation, at most */
	/* DKIM at end of data (issue 14, part 2) */
	bool			 dkim_verify;
	unsigned		 dkim_timeout_ms; /* key look-ups, at most */
	char			*public_suffix_file; /* NULL: none */
	/* reports only to proven senders (issue 14, part 3) */
	int			 ndr_require_auth; /* CONF_CONTROL_* */
	/* BATV (issue 14, part 5; sender/batv.h): off while
	 * batv_ndomains is 0 */
	char			*batv_key_file;	/* absolute; NULL: none */
	unsigned		 batv_ndomains;	/* domains with .batv set */
	unsigned		 batv_grace_ms;
	struct keyring		*batv_keys;	/* conf_load reads the file */
	time_t			 batv_since;	/* switched on; 0: unknown
						 * (set by the serving side,
						 * batv_since_load()) */
	/* DNSBL and DNSWL at connect (issue 14, part 4) */
	struct dnsbl_list	*dnsbl_sites;	/* NULL: off */
	unsigned		 dnsbl_threshold;
	int			 dnsbl_action;	/* CONF_DNSBL_* */
	unsigned		 dnsbl_timeout_ms;
	bool			 harvest_exempt_dnswl;
	/* milters (issue 16) */
	struct conf_milters	 milters;
	unsigned		 milter_connect_timeout_ms;
	unsigned		 milter_command_timeout_ms;
	unsigned		 milter_eom_timeout_ms;
	int			 milter_default_action; /* CONF_MILTER_* */

	struct domain_conf	 dflt;		/* global values */
	struct domain_conf	*domains;	/* one per `domains` entry */
	size_t			 ndomains;
};

/* Called once per error: file, 1-based line (0 = not tied to a line). */
typedef void	conf_err_fn(void *arg, const char *file, unsigned line,
		    const char *msg);

/*
 * Load and validate a config file.  Every error is reported through err
 * (all of them, not just the first); returns NULL if there was any.
 * The result has refs == 1.
 */
struct config *conf_load(const char *path, conf_err_fn *err, void *arg);
/* Parse from memory (tests, fuzzing); relative paths resolve to dir. */
struct config *conf_load_mem(const char *text, size_t len, const char *name,
		    const char *dir, conf_err_fn *err, void *arg);
struct config *conf_ref(struct config *);
void	conf_unref(struct config *);

/* The domain's settings, or NULL if it is not ours.  Case-insensitive;
 * name need not be NUL-terminated. */
const struct domain_conf *conf_domain(const struct config *,
		    const char *name, size_t len);

/* Print every key with its default and a one-line doc (mxgate --help). */
void	conf_dump_keys(FILE *);
/* The same as roff for mxgate.conf(5): one .TP entry a key, in table
 * order, with its default, scope, type and bounds (`mxgate config
 * --man`; the Makefile merges it into man/mxgate.conf.5.in). */
void	conf_man_keys(FILE *);

/* -c FILE when none is given: $MXGATE_CONF, else CONF_DEFAULT_PATH. */
#define CONF_DEFAULT_PATH	"/etc/mxgate/mxgate.conf"
const char *conf_default_path(void);

/* Is name a key?  The key close enough to name to be the one meant
 * (a typo: "did you mean"), or NULL. */
bool	conf_key_known(const char *name);
const char *conf_key_nearest(const char *name);

/*
 * `mxgate config`: "key = value" for every key (or those in keys[],
 * which must be known), then a [domain NAME] section per domain with its
 * per-domain keys.  nondefault (-n): only global keys whose value is not
 * the default, and in a section only what differs from the global value.
 */
void	conf_print(FILE *, const struct config *, bool nondefault,
	    char *const *keys, size_t nkeys);

/* Each key that a and b set differently: domain NULL for a global key,
 * else the domain (of b) whose section value changed. */
typedef void	conf_diff_fn(void *arg, const char *key, const char *domain);
void	conf_diff(const struct config *a, const struct config *b,
	    conf_diff_fn *, void *arg);

#endif
