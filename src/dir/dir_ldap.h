/*
 * dir_ldap.h - the LDAP back-end of the recipient directory (OpenLDAP,
 * Active Directory), in sync mode: the valid addresses held in memory as
 * keyed hashes, kept current by an RFC 4533 refreshAndPersist search, so
 * RCPT never waits for LDAP.  A snapshot of the set (hashed, never
 * plaintext) in the spool answers after a restart while LDAP is down.
 * Owns: one thread with its own event loop and the LDAP connection
 * (failover across ldap_uri, reconnect with backoff), the set (a read
 * lock for lookups; the thread is its only writer), the snapshot.
 * Lookup mode (ldap_sync = no): one search per address on the same
 * thread, a cache (positive 1 h, negative 5 min, tempfail never) and a
 * circuit breaker (5 failures in a row: 451 at once for 30 s).
 * Never: answers UNKNOWN before a full refresh or a snapshot: TEMPFAIL.
 * Untrusted: the server's entries and controls (bounded counts).
 */
#ifndef MXGATE_DIR_LDAP_H
#define MXGATE_DIR_LDAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../conf/conf.h"
#include "dir.h"

#define DIR_LDAP_SNAP_NAME	"ldap.snapshot"
#define DIR_LDAP_HEADER_MAX	256	/* the snapshot's first line */

struct dir_ldap;

/* Check the keys, read the password and key files, start the thread. */
struct dir_ldap	*dir_ldap_open(const struct config *, dir_err_fn *, void *);
void		 dir_ldap_close(struct dir_ldap *);
/*
 * Is one of these canonical keys valid?  Sync mode: from the set, at
 * once (DIR_TEMPFAIL until it is known).  Lookup mode (ldap_sync = no):
 * from the cache, DIR_TEMPFAIL while the breaker is open, else
 * DIR_PENDING and done(arg, id, verdict) later on the asking loop (see
 * dir_loop_enter); with done NULL the caller waits (command line).
 */
enum dir_verdict dir_ldap_lookup(struct dir_ldap *, const uint8_t *const *keys,
		    const size_t *lens, size_t n, uint64_t id, dir_done_fn *done,
		    void *arg);
size_t		 dir_ldap_count(const struct dir_ldap *);
/* Wait at most ms for the first full refresh (or a snapshot). */
bool		 dir_ldap_settle(struct dir_ldap *, unsigned ms);

/*
 * The snapshot's first line: "# mxgate ldap snapshot v1 time=UNIX
 * check=HEX64" (check: HMAC(key, "mxgate ldap snapshot")).  0 and the
 * fields, or -1.  Pure.
 */
int		 dir_ldap_snap_header(const uint8_t *, size_t, uint64_t *time,
		    uint8_t check[32]);

#endif
