/*
 * dir_ldap.c - the LDAP back-end, sync mode (dir_ldap.h).
 * The thread: connect to ldap_uri[cur] (bounded by ldap_timeout; on
 * failure the next URI, each switch counted and logged), STARTTLS if
 * asked, bind, then one refreshAndPersist search (RFC 4533 2, no cookie:
 * every (re)connection is a full refresh, and entries not seen in it are
 * swept, so deletions made while we were away are not missed).  Results
 * are drained on readability until none remain (buffered TLS data does
 * not signal the socket again); each operation before the persist stage
 * has its own deadline, abandoned on expiry.
 * Owns: the thread, the connection, the set, the snapshot file.
 * Never: a plaintext address in memory past one entry, or on disk.
 * Untrusted: everything the server sends.  RFC 4533, RFC 4511, RFC 4515.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <ldap.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "../lib/log.h"
#include "../lib/utf8.h"
#include "dir_file.h"
#include "dir_hashed.h"
#include "dir_ldap.h"
#include "../lib/secret_file.h"
#include "dir_ldap_filter.h"

#define DL_URIS_MAX		8
#define DL_ADDRS_PER_ENTRY	64	/* values kept per entry, at most */
#define DL_ENTRIES_MAX		(1u << 24)	/* entries held, at most */
#define DL_BACKOFF_MIN_MS	250
#define DL_BACKOFF_MAX_MS	10000
#define DL_SNAP_DELAY_MS	1000	/* changes batched into one write */
#define DL_PASSWORD_MAX		512

/* One valid address: its digest, and how many entries name it. */
struct dl_addr {
	struct dl_addr	*next;
	uint8_t		 mac[DIR_HASHED_MAC];
	uint32_t	 refs;
};

/* One directory entry, by entryUUID, with the digests it gave. */
struct dl_entry {
	struct dl_entry	*next;
	uint8_t		 uuid[16];
	uint32_t	 gen;		/* the refresh that last saw it */
	uint16_t	 n;
	uint8_t		(*macs)[DIR_HASHED_MAC];
};

/* A chained hash table of either (the first fields are the same). */
struct dl_tab {
	void		**b;
	size_t		  mask;		/* buckets - 1 */
	size_t		  n;
};

enum dl_state { DL_IDLE, DL_BIND, DL_REFRESH, DL_PERSIST };

#define DL_CACHE_MAX		100000	/* entries; full: emptied */
#define DL_POS_TTL_MS		(3600u * 1000)	/* positive: 1 h */
#define DL_NEG_TTL_MS		(300u * 1000)	/* negative: 5 min */
#define DL_BREAKER_FAILS	5	/* failures in a row open it */
#define DL_BREAKER_MS		30000	/* for this long */
#define DL_QUEUE_MAX		10000	/* lookups waiting, at most */

/* Lookup mode: one cached answer, by the digest of the full address. */
struct dl_cached {
	struct dl_cached	*next;
	uint8_t			 mac[DIR_HASHED_MAC];
	uint64_t		 expires_ms;
	bool			 valid;
};

/* Lookup mode: one question, from a worker's loop to the LDAP thread. */
struct dl_req {
	struct dl_req		*next;
	struct dir_ldap		*l;
	uint8_t			 key[2][DIR_FILE_KEY_MAX];
	size_t			 len[2], n;
	uint8_t			 mac[DIR_HASHED_MAC];
	uint64_t		 id;
	dir_done_fn		*done;
	void			*arg;
	struct event_base	*reply;		/* NULL: a waiting caller */
	struct event		*deadline;
	int			 msgid;
	bool			 found, answered;
	enum dir_verdict	 v;
};

static _Thread_local struct event_base	*dl_loop;	/* dir_loop_enter */

/*
 * The loops that run (dir_loop_enter .. dir_loop_leave): an answer goes
 * only to a loop still in this list, checked and posted under dl_loops_mu,
 * so an answer never reaches a loop that stopped (and may be freed).
 */
#define DL_LOOPS_MAX	256
static pthread_mutex_t		 dl_loops_mu = PTHREAD_MUTEX_INITIALIZER;
static struct event_base	*dl_loops[DL_LOOPS_MAX];

struct dir_ldap {
	/* set up at open, read-only after */
	char			*uris[DL_URIS_MAX];
	size_t			 nuris;
	char			*base, *bind_dn, *ca_file, *snap_path;
	char			 password[DL_PASSWORD_MAX];
	char			 filter[DIR_LDAP_FILTER_MAX];
	struct dir_ldap_attr	 attrs[DIR_LDAP_ATTRS_MAX];
	size_t			 nattrs;
	uint8_t			 key[DIR_HASHED_KEY_MAX];
	size_t			 keylen;
	unsigned		 timeout_ms;
	bool			 starttls, local_case, lookup_mode;
	bool			 bound;		/* lookup mode: once (mu) */
	bool			 poll_mode;	/* ldap_sync = poll */
	unsigned		 interval_ms;
	struct berval		*page_cookie;	/* poll: the next page */
	unsigned		 pages;		/* poll: this refresh's */

	/* lookup mode: cache and breaker (cmu), queue (mu) */
	pthread_mutex_t		 cmu;
	struct dl_tab		 cache;		/* struct dl_cached */
	unsigned		 fails;		/* in a row */
	uint64_t		 open_until_ms;	/* breaker open until */
	struct dl_req		*qhead, **qtail;
	size_t			 qlen;
	int			 q_fd[2];
	struct event		*q_ev;
	struct dl_req		*inflight;	/* the thread's */

	/* the set: written by the thread under the write lock */
	pthread_rwlock_t	 lock;
	struct dl_tab		 addrs;		/* struct dl_addr */
	struct dl_tab		 entries;	/* struct dl_entry */
	bool			 ready;		/* a full refresh done */
	_Atomic bool		 lost;		/* out of memory or over a cap
						 * since the last refresh began:
						 * UNKNOWN becomes TEMPFAIL */
	unsigned		 nlost, nlost_start;	/* thread's */
	struct dir_hashed	*snap;		/* until ready; NULL none */
	pthread_mutex_t		 mu;		/* with cv: settle */
	pthread_cond_t		 cv;

	/* the thread's own */
	pthread_t		 thread;
	struct event_base	*base_ev;
	struct event		*rd, *timer, *snap_timer, *stop_ev;
	int			 stop_fd[2];
	LDAP			*ld;
	int			 msgid;
	enum dl_state		 state;
	size_t			 cur;		/* index into uris */
	unsigned		 backoff_ms;
	uint32_t		 gen;
	uint64_t		 switches, refresh_us;
	size_t			 seen;		/* entries this refresh */
};

static void	dl_connect(struct dir_ldap *);
static void	dl_answer(struct dl_req *, enum dir_verdict);
static void	dl_fail_all(struct dir_ldap *);
static int	dl_poll_search(struct dir_ldap *);
static void	dl_deadline(struct dir_ldap *);
static void	dl_fail(struct dir_ldap *, const char *why, int rc);

static uint64_t
dl_now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------ tables */

static uint64_t
dl_hash(const uint8_t *p, size_t n)
{
	uint64_t	h = 0;

	memcpy(&h, p, n < 8 ? n : 8);	/* digests and UUIDs are uniform */
	return h;
}

static int
dl_tab_init(struct dl_tab *t, size_t buckets)
{
	if ((t->b = calloc(buckets, sizeof(*t->b))) == NULL)
		return -1;
	t->mask = buckets - 1;
	t->n = 0;
	return 0;
}

/* The bucket slot for key (klen bytes at offset koff of each node). */
static void **
dl_tab_find(struct dl_tab *t, const uint8_t *k, size_t klen, size_t koff)
{
	void	**pp = &t->b[dl_hash(k, klen) & t->mask];

	while (*pp != NULL && memcmp((uint8_t *)*pp + koff, k, klen) != 0)
		pp = (void **)*pp;	/* next is the first field */
	return pp;
}

static void
dl_tab_grow(struct dl_tab *t, size_t klen, size_t koff)
{
	struct dl_tab	 nt;
	void		*e, *next;
	size_t		 i;

	if (t->n <= t->mask || dl_tab_init(&nt, 2 * (t->mask + 1)) == -1)
		return;		/* no memory: longer chains, still right */
	for (i = 0; i <= t->mask; i++)
		for (e = t->b[i]; e != NULL; e = next) {
			next = *(void **)e;
			*(void **)e = nt.b[dl_hash((uint8_t *)e + koff, klen) &
			    nt.mask];
			nt.b[dl_hash((uint8_t *)e + koff, klen) & nt.mask] = e;
		}
	nt.n = t->n;
	free(t->b);
	*t = nt;
}

#define ADDR_K	DIR_HASHED_MAC, offsetof(struct dl_addr, mac)
#define ENTRY_K	16, offsetof(struct dl_entry, uuid)

static void
dl_addr_ref(struct dir_ldap *l, const uint8_t *mac)
{
	void		**pp = dl_tab_find(&l->addrs, mac, ADDR_K);
	struct dl_addr	 *a;

	if (*pp != NULL) {
		((struct dl_addr *)*pp)->refs++;
		return;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		l->lost = true;	/* never a 550 for what we could not hold */
		l->nlost++;
		return;
	}
	memcpy(a->mac, mac, DIR_HASHED_MAC);
	a->refs = 1;
	*pp = a;
	l->addrs.n++;
	dl_tab_grow(&l->addrs, ADDR_K);
}

static void
dl_addr_unref(struct dir_ldap *l, const uint8_t *mac)
{
	void		**pp = dl_tab_find(&l->addrs, mac, ADDR_K);
	struct dl_addr	 *a = *pp;

	if (a == NULL || --a->refs > 0)
		return;
	*pp = a->next;
	free(a);
	l->addrs.n--;
}

/* Drop an entry's digests from the set (under the write lock). */
static void
dl_entry_clear(struct dir_ldap *l, struct dl_entry *e)
{
	uint16_t	i;

	for (i = 0; i < e->n; i++)
		dl_addr_unref(l, e->macs[i]);
	free(e->macs);
	e->macs = NULL;
	e->n = 0;
}

static void
dl_entry_del(struct dir_ldap *l, const uint8_t uuid[16])
{
	void		**pp = dl_tab_find(&l->entries, uuid, ENTRY_K);
	struct dl_entry	 *e = *pp;

	if (e == NULL)
		return;
	dl_entry_clear(l, e);
	*pp = e->next;
	free(e);
	l->entries.n--;
}

/* The entry's digests become macs[0..n) (taken over). */
static void
dl_entry_set(struct dir_ldap *l, const uint8_t uuid[16],
    uint8_t (*macs)[DIR_HASHED_MAC], uint16_t n)
{
	void		**pp = dl_tab_find(&l->entries, uuid, ENTRY_K);
	struct dl_entry	 *e = *pp;
	uint16_t	  i;

	if (e == NULL) {
		if (l->entries.n >= DL_ENTRIES_MAX ||
		    (e = calloc(1, sizeof(*e))) == NULL) {
			l->lost = true;
			l->nlost++;
			free(macs);
			return;
		}
		memcpy(e->uuid, uuid, 16);
		*pp = e;
		l->entries.n++;
		dl_tab_grow(&l->entries, ENTRY_K);
	} else
		dl_entry_clear(l, e);
	e->gen = l->gen;
	e->macs = macs;
	e->n = n;
	for (i = 0; i < n; i++)
		dl_addr_ref(l, macs[i]);
}

/* After a full refresh: entries it did not name are gone. */
static size_t
dl_sweep(struct dir_ldap *l)
{
	struct dl_entry	**pp, *e;
	size_t		  i, n = 0;

	for (i = 0; i <= l->entries.mask; i++)
		for (pp = (struct dl_entry **)&l->entries.b[i];
		    (e = *pp) != NULL; ) {
			if (e->gen == l->gen) {
				pp = &e->next;
				continue;
			}
			dl_entry_clear(l, e);
			*pp = e->next;
			free(e);
			l->entries.n--;
			n++;
		}
	return n;
}

/* ------------------------------------------------------------ snapshot */

static const char	dl_snap_check_text[] = "mxgate ldap snapshot";

int
dir_ldap_snap_header(const uint8_t *p, size_t n, uint64_t *time,
    uint8_t check[32])
{
	static const char	pre[] = "# mxgate ldap snapshot v1 time=";
	static const char	mid[] = " check=";
	size_t			i = sizeof(pre) - 1, d;
	uint64_t		t = 0;
	bool			empty;
	const char		*why;

	if (n > DIR_LDAP_HEADER_MAX || n < i || memcmp(p, pre, i) != 0)
		return -1;
	for (d = 0; i < n && p[i] >= '0' && p[i] <= '9' && d < 19; i++, d++)
		t = t * 10 + (uint64_t)(p[i] - '0');
	if (d == 0 || n - i < sizeof(mid) - 1 ||
	    memcmp(p + i, mid, sizeof(mid) - 1) != 0)
		return -1;
	i += sizeof(mid) - 1;
	if (n - i != DIR_HASHED_HEX || dir_hashed_parse_line(p + i, n - i,
	    &empty, check, &why) != PARSE_OK || empty)
		return -1;
	*time = t;
	return 0;
}

/* Write the set (thread only: no lock needed to read it). */
static void
dl_snap_write(struct dir_ldap *l)
{
	struct dl_addr	*a;
	uint8_t		 chk[DIR_HASHED_MAC];
	char		 tmp[4200];
	size_t		 i, j;
	FILE		*f;
	int		 fd, ok;

	if (l->snap_path == NULL || snprintf(tmp, sizeof(tmp), "%s.tmp",
	    l->snap_path) >= (int)sizeof(tmp) ||
	    dir_hashed_mac(l->key, l->keylen,
	    (const uint8_t *)dl_snap_check_text,
	    sizeof(dl_snap_check_text) - 1, chk) == -1)
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		if (fd != -1)
			close(fd);
		log_event(LOG_LVL_WARNING, "ldap", "msg=\"cannot write the "
		    "snapshot: %s\"", strerror(errno));
		return;
	}
	fprintf(f, "# mxgate ldap snapshot v1 time=%lld check=",
	    (long long)time(NULL));
	for (j = 0; j < DIR_HASHED_MAC; j++)
		fprintf(f, "%02x", chk[j]);
	fputc('\n', f);
	for (i = 0; i <= l->addrs.mask; i++)
		for (a = l->addrs.b[i]; a != NULL; a = a->next) {
			for (j = 0; j < DIR_HASHED_MAC; j++)
				fprintf(f, "%02x", a->mac[j]);
			fputc('\n', f);
		}
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, l->snap_path) == -1) {
		unlink(tmp);
		log_event(LOG_LVL_WARNING, "ldap", "msg=\"cannot write the "
		    "snapshot\"");
	}
}

/* At open: the snapshot, if there is one made with this key. */
static void
dl_snap_load(struct dir_ldap *l)
{
	uint8_t		 chk[DIR_HASHED_MAC], got[DIR_HASHED_MAC], *buf;
	struct stat	 st;
	const uint8_t	*nl;
	uint64_t	 t;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(l->snap_path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > DIR_HASHED_BYTES_MAX ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return;
	}
	r = read(fd, buf, (size_t)st.st_size);
	close(fd);
	if (r != st.st_size || (nl = memchr(buf, '\n', (size_t)r)) == NULL ||
	    dir_ldap_snap_header(buf, (size_t)(nl - buf), &t, got) == -1 ||
	    dir_hashed_mac(l->key, l->keylen,
	    (const uint8_t *)dl_snap_check_text,
	    sizeof(dl_snap_check_text) - 1, chk) == -1 ||
	    CRYPTO_memcmp(chk, got, sizeof(chk)) != 0) {
		log_event(LOG_LVL_WARNING, "ldap", "file=%s msg=\"snapshot "
		    "unreadable or made with another key: not used\"",
		    log_esc(l->snap_path, strlen(l->snap_path), 200));
		free(buf);
		return;
	}
	l->snap = dir_hashed_load_mem(buf, (size_t)r, l->snap_path, l->key,
	    l->keylen, NULL, NULL);
	free(buf);
	if (l->snap != NULL)
		log_event(LOG_LVL_INFO, "ldap", "snapshot=loaded entries=%zu "
		    "age_s=%lld msg=\"answering from the snapshot until LDAP "
		    "is synced\"", dir_hashed_count(l->snap),
		    (long long)time(NULL) - (long long)t);
}

/* ------------------------------------------------------------ entries */

/* "local@domain" as dir.c keys it, into out; 0 if it cannot match. */
static size_t
dl_canon(const struct dir_ldap *l, const uint8_t *v, size_t n,
    uint8_t out[DIR_FILE_KEY_MAX])
{
	const uint8_t	*at = NULL;
	size_t		 i, llen, dlen;

	for (i = n; i > 0; i--)
		if (v[i - 1] == '@') {
			at = v + i - 1;
			break;
		}
	if (at == NULL)
		return 0;
	llen = (size_t)(at - v);
	dlen = n - llen - 1;
	if (dlen > 0 && at[dlen] == '.')
		dlen--;
	if (llen == 0 || llen > DIR_FILE_LOCAL_MAX || dlen == 0 ||
	    dlen > DIR_FILE_DOMAIN_MAX)
		return 0;
	if (!utf8_is_ascii(v, n))
		return dir_file_key_utf8(v, llen, at + 1, dlen, l->local_case,
		    out);
	for (i = 0; i < llen; i++)
		out[i] = !l->local_case && v[i] >= 'A' && v[i] <= 'Z' ?
		    (uint8_t)(v[i] | 0x20) : v[i];
	out[llen] = '@';
	for (i = 0; i < dlen; i++)
		out[llen + 1 + i] = at[1 + i] >= 'A' && at[1 + i] <= 'Z' ?
		    (uint8_t)(at[1 + i] | 0x20) : at[1 + i];
	return llen + 1 + dlen;
}

/* The digests of one entry's addresses; *n of them (malloc'ed). */
static uint8_t (*dl_entry_macs(struct dir_ldap *l, LDAPMessage *msg,
    uint16_t *n))[DIR_HASHED_MAC]
{
	uint8_t		(*macs)[DIR_HASHED_MAC], (*shrunk)[DIR_HASHED_MAC];
	uint8_t		  k[DIR_FILE_KEY_MAX];
	struct berval	**vals;
	size_t		  a, i, plen, klen;

	*n = 0;
	if ((macs = calloc(DL_ADDRS_PER_ENTRY, DIR_HASHED_MAC)) == NULL) {
		l->lost = true;
		l->nlost++;
		return NULL;
	}
	for (a = 0; a < l->nattrs; a++) {
		if ((vals = ldap_get_values_len(l->ld, msg,
		    l->attrs[a].name)) == NULL)
			continue;
		plen = strlen(l->attrs[a].prefix);
		for (i = 0; vals[i] != NULL && *n < DL_ADDRS_PER_ENTRY; i++) {
			if (vals[i]->bv_len <= plen || strncasecmp(
			    vals[i]->bv_val, l->attrs[a].prefix, plen) != 0)
				continue;
			klen = dl_canon(l, (const uint8_t *)vals[i]->bv_val +
			    plen, vals[i]->bv_len - plen, k);
			if (klen > 0 && dir_hashed_mac(l->key, l->keylen, k,
			    klen, macs[*n]) == 0)
				(*n)++;
			OPENSSL_cleanse(k, sizeof(k));
		}
		ldap_value_free_len(vals);
	}
	/* keep what the entry holds, not the room for DL_ADDRS_PER_ENTRY */
	if (*n == 0) {
		free(macs);
		return calloc(1, 1);	/* an entry with no address */
	}
	if ((shrunk = realloc(macs, (size_t)*n * DIR_HASHED_MAC)) != NULL)
		macs = shrunk;
	return macs;
}

static void
dl_on_entry(struct dir_ldap *l, LDAPMessage *msg)
{
	LDAPControl	**ctrls = NULL, *c;
	BerElement	 *ber;
	struct berval	  uuid;
	uint8_t		(*macs)[DIR_HASHED_MAC];
	ber_int_t	  state;
	uint16_t	  n;

	if (ldap_get_entry_controls(l->ld, msg, &ctrls) != LDAP_SUCCESS ||
	    (c = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL)) ==
	    NULL || (ber = ber_init(&c->ldctl_value)) == NULL) {
		ldap_controls_free(ctrls);
		return;		/* not a sync entry: ignored */
	}
	if (ber_scanf(ber, "{em", &state, &uuid) == LBER_ERROR ||
	    uuid.bv_len != 16) {
		ber_free(ber, 1);
		ldap_controls_free(ctrls);
		return;
	}
	l->seen++;
	if (state == LDAP_SYNC_DELETE) {
		pthread_rwlock_wrlock(&l->lock);
		dl_entry_del(l, (const uint8_t *)uuid.bv_val);
		pthread_rwlock_unlock(&l->lock);
	} else if ((macs = dl_entry_macs(l, msg, &n)) != NULL) {
		pthread_rwlock_wrlock(&l->lock);
		dl_entry_set(l, (const uint8_t *)uuid.bv_val, macs, n);
		pthread_rwlock_unlock(&l->lock);
	}
	ber_free(ber, 1);
	ldap_controls_free(ctrls);
	if (l->state == DL_PERSIST && !evtimer_pending(l->snap_timer, NULL)) {
		struct timeval	tv = { DL_SNAP_DELAY_MS / 1000,
		    (DL_SNAP_DELAY_MS % 1000) * 1000 };

		evtimer_add(l->snap_timer, &tv);
	}
}

static void
dl_refresh_done(struct dir_ldap *l)
{
	struct dir_hashed	*old;
	size_t			 gone;

	pthread_rwlock_wrlock(&l->lock);
	gone = dl_sweep(l);
	l->ready = true;
	if (l->nlost == l->nlost_start)
		l->lost = false;	/* this refresh held everything */
	old = l->snap;
	l->snap = NULL;
	pthread_rwlock_unlock(&l->lock);
	dir_hashed_free(old);
	l->state = DL_PERSIST;
	evtimer_del(l->timer);		/* persist: no deadline */
	l->backoff_ms = 0;
	pthread_mutex_lock(&l->mu);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	log_event(LOG_LVL_INFO, "ldap", "synced=yes uri=%s entries=%zu "
	    "addresses=%zu swept=%zu pages=%u ms=%llu", l->uris[l->cur],
	    l->entries.n, l->addrs.n, gone, l->poll_mode ? l->pages : 0,
	    (unsigned long long)((dl_now_us() - l->refresh_us) / 1000));
	dl_snap_write(l);
	if (l->poll_mode) {	/* the next full refresh */
		struct timeval	tv = { l->interval_ms / 1000,
		    (l->interval_ms % 1000) * 1000 };

		evtimer_add(l->timer, &tv);
	}
}

static void
dl_on_intermediate(struct dir_ldap *l, LDAPMessage *msg)
{
	struct berval	*data = NULL, bv;
	BerVarray	 uuids = NULL;
	BerElement	*ber;
	char		*oid = NULL;
	ber_tag_t	 tag;
	ber_len_t	 len;
	ber_int_t	 done = 1, dels = 0;
	size_t		 i;

	if (ldap_parse_intermediate(l->ld, msg, &oid, &data, NULL, 0) !=
	    LDAP_SUCCESS || oid == NULL || strcmp(oid, LDAP_SYNC_INFO) != 0 ||
	    data == NULL || (ber = ber_init(data)) == NULL)
		goto out;
	tag = ber_peek_tag(ber, &len);
	if (tag == LDAP_TAG_SYNC_REFRESH_DELETE ||
	    tag == LDAP_TAG_SYNC_REFRESH_PRESENT) {
		if (ber_scanf(ber, "{") != LBER_ERROR) {
			tag = ber_peek_tag(ber, &len);
			if (tag == LDAP_TAG_SYNC_COOKIE)
				(void)ber_scanf(ber, "m", &bv);
			if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDONE)
				(void)ber_scanf(ber, "b", &done);
		}
		if (done && l->state == DL_REFRESH)
			dl_refresh_done(l);
	} else if (tag == LDAP_TAG_SYNC_ID_SET &&
	    ber_scanf(ber, "{") != LBER_ERROR) {
		if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE)
			(void)ber_scanf(ber, "m", &bv);
		if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDELETES)
			(void)ber_scanf(ber, "b", &dels);
		if (ber_scanf(ber, "[W]", &uuids) != LBER_ERROR && dels &&
		    uuids != NULL) {
			pthread_rwlock_wrlock(&l->lock);
			for (i = 0; uuids[i].bv_val != NULL; i++)
				if (uuids[i].bv_len == 16)
					dl_entry_del(l,
					    (const uint8_t *)uuids[i].bv_val);
			pthread_rwlock_unlock(&l->lock);
		}
		ber_bvarray_free(uuids);
	}
	ber_free(ber, 1);
out:
	ldap_memfree(oid);
	ber_bvfree(data);
}

/* ------------------------------------------------------------ the link */

static void
dl_deadline(struct dir_ldap *l)
{
	struct timeval	tv = { l->timeout_ms / 1000,
	    (l->timeout_ms % 1000) * 1000 };

	evtimer_add(l->timer, &tv);
}

static void
dl_drop(struct dir_ldap *l)
{
	if (l->rd != NULL) {
		event_free(l->rd);
		l->rd = NULL;
	}
	if (l->ld != NULL) {
		if (l->msgid >= 0)
			(void)ldap_abandon_ext(l->ld, l->msgid, NULL, NULL);
		ldap_unbind_ext(l->ld, NULL, NULL);
		l->ld = NULL;
	}
	l->msgid = -1;
	l->state = DL_IDLE;
	ber_bvfree(l->page_cookie);
	l->page_cookie = NULL;
}

/* This URI failed: the next one, after a pause once all have failed. */
static void
dl_fail(struct dir_ldap *l, const char *why, int rc)
{
	struct timeval	tv;
	size_t		from = l->cur;

	log_event(LOG_LVL_WARNING, "ldap", "uri=%s state=%s msg=\"%s: %s\"%s",
	    l->uris[l->cur], l->state == DL_PERSIST ? "persist" :
	    l->state == DL_REFRESH ? "refresh" : "connect", why,
	    ldap_err2string(rc), l->ready ? " answering=synced-set" :
	    l->snap != NULL ? " answering=snapshot" : l->lookup_mode ?
	    " answering=cache-or-tempfail" : " answering=tempfail");
	dl_fail_all(l);
	dl_drop(l);
	if (l->nuris > 1) {
		l->cur = (l->cur + 1) % l->nuris;
		l->switches++;
		log_event(LOG_LVL_WARNING, "ldap", "switch=%llu from=%s to=%s",
		    (unsigned long long)l->switches, l->uris[from],
		    l->uris[l->cur]);
	}
	if (l->cur == 0 || l->nuris == 1)	/* a round: back off */
		l->backoff_ms = l->backoff_ms == 0 ? DL_BACKOFF_MIN_MS :
		    l->backoff_ms * 2 > DL_BACKOFF_MAX_MS ? DL_BACKOFF_MAX_MS :
		    l->backoff_ms * 2;
	tv.tv_sec = l->backoff_ms / 1000;
	tv.tv_usec = (l->backoff_ms % 1000) * 1000;
	evtimer_add(l->timer, &tv);
}

static int
dl_search(struct dir_ldap *l)
{
	static char	*noattrs[] = { LDAP_NO_ATTRS, NULL };
	char		*attrs[DIR_LDAP_ATTRS_MAX + 1];
	LDAPControl	*ctrl = NULL, *ctrls[2];
	BerElement	*ber;
	struct berval	 bv;
	size_t		 i;
	int		 rc;

	if ((ber = ber_alloc_t(LBER_USE_DER)) == NULL ||
	    ber_printf(ber, "{e}", (ber_int_t)LDAP_SYNC_REFRESH_AND_PERSIST)
	    == -1 || ber_flatten2(ber, &bv, 0) == -1) {
		if (ber != NULL)
			ber_free(ber, 1);
		return LDAP_NO_MEMORY;
	}
	rc = ldap_control_create(LDAP_CONTROL_SYNC, 1, &bv, 1, &ctrl);
	ber_free(ber, 1);
	if (rc != LDAP_SUCCESS)
		return rc;
	for (i = 0; i < l->nattrs; i++)
		attrs[i] = l->attrs[i].name;
	attrs[i] = NULL;
	ctrls[0] = ctrl;
	ctrls[1] = NULL;
	rc = ldap_search_ext(l->ld, l->base, LDAP_SCOPE_SUBTREE, l->filter,
	    l->nattrs > 0 ? attrs : noattrs, 0, ctrls, NULL, NULL, 0,
	    &l->msgid);
	ldap_control_free(ctrl);
	return rc;
}


/* ------------------------------------------------------------ lookup mode */

static uint64_t
dl_now_ms(void)
{
	return dl_now_us() / 1000;
}

#define CACHE_K	DIR_HASHED_MAC, offsetof(struct dl_cached, mac)

/* Cache and breaker after an answer (never a TEMPFAIL in the cache). */
static void
dl_note(struct dir_ldap *l, const uint8_t *mac, enum dir_verdict v)
{
	struct dl_cached	**pp, *c, *cn;
	size_t			  i;
	bool			  opened = false, closed = false;

	pthread_mutex_lock(&l->cmu);
	if (v == DIR_TEMPFAIL) {
		if (++l->fails == DL_BREAKER_FAILS) {
			l->open_until_ms = dl_now_ms() + DL_BREAKER_MS;
			opened = true;
		}
		pthread_mutex_unlock(&l->cmu);
		if (opened)
			log_event(LOG_LVL_WARNING, "ldap", "breaker=open "
			    "failures=%d for_s=%d msg=\"uncached addresses "
			    "answer 451 at once\"", DL_BREAKER_FAILS,
			    DL_BREAKER_MS / 1000);
		return;
	}
	closed = l->fails >= DL_BREAKER_FAILS;
	l->fails = 0;
	l->open_until_ms = 0;
	if (l->cache.n >= DL_CACHE_MAX) {	/* full: start again */
		for (i = 0; i <= l->cache.mask; i++) {
			for (c = l->cache.b[i]; c != NULL; c = cn) {
				cn = c->next;
				free(c);
			}
			l->cache.b[i] = NULL;
		}
		l->cache.n = 0;
	}
	pp = (struct dl_cached **)dl_tab_find(&l->cache, mac, CACHE_K);
	if ((c = *pp) == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
		memcpy(c->mac, mac, DIR_HASHED_MAC);
		*pp = c;
		l->cache.n++;
		dl_tab_grow(&l->cache, CACHE_K);
	}
	if (c != NULL) {
		c->valid = v == DIR_VALID;
		c->expires_ms = dl_now_ms() + (c->valid ? DL_POS_TTL_MS :
		    DL_NEG_TTL_MS);
	}
	pthread_mutex_unlock(&l->cmu);
	if (closed)
		log_event(LOG_LVL_INFO, "ldap", "breaker=closed");
}

static void
dl_reply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dl_req	*r = arg;

	(void)fd;
	(void)what;
	r->done(r->arg, r->id, r->v);
	free(r);
}

/* The answer goes back to the asking loop (or the waiting caller). */
static void
dl_answer(struct dl_req *r, enum dir_verdict v)
{
	struct dir_ldap	*l = r->l;
	struct timeval	 zero = { 0, 0 };
	size_t		 i;

	if (r->deadline != NULL) {
		event_free(r->deadline);
		r->deadline = NULL;
	}
	dl_note(l, r->mac, v);
	r->v = v;
	if (r->reply == NULL) {
		pthread_mutex_lock(&l->mu);
		r->answered = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->mu);
		return;
	}
	pthread_mutex_lock(&dl_loops_mu);
	for (i = 0; i < DL_LOOPS_MAX && dl_loops[i] != r->reply; i++)
		;
	if (i == DL_LOOPS_MAX || event_base_once(r->reply, -1, EV_TIMEOUT,
	    dl_reply_cb, r, &zero) == -1)
		free(r);	/* the loop is gone: so is its session */
	pthread_mutex_unlock(&dl_loops_mu);
}

static void
dl_inflight_drop(struct dir_ldap *l, struct dl_req *r)
{
	struct dl_req	**pp;

	for (pp = &l->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void
dl_fail_all(struct dir_ldap *l)
{
	struct dl_req	*r;

	while ((r = l->inflight) != NULL) {
		l->inflight = r->next;
		dl_answer(r, DIR_TEMPFAIL);
	}
}

static void
dl_req_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct dl_req	*r = arg;
	struct dir_ldap	*l = r->l;

	(void)fd;
	(void)what;
	if (l->ld != NULL)
		(void)ldap_abandon_ext(l->ld, r->msgid, NULL, NULL);
	dl_inflight_drop(l, r);
	log_event(LOG_LVL_WARNING, "ldap", "uri=%s msg=\"search timed out "
	    "after %u ms: abandoned; 451\"", l->uris[l->cur], l->timeout_ms);
	dl_answer(r, DIR_TEMPFAIL);
}

static void
dl_req_send(struct dir_ldap *l, struct dl_req *r)
{
	static char	*noattrs[] = { LDAP_NO_ATTRS, NULL };
	char		 f[2][DIR_LDAP_FILTER_MAX], q[2 * DIR_LDAP_FILTER_MAX +
	    4];
	struct timeval	 tv = { l->timeout_ms / 1000,
	    (l->timeout_ms % 1000) * 1000 };
	const uint8_t	*at;
	size_t		 i;
	int		 rc;

	for (i = 0; i < r->n; i++) {
		at = memrchr(r->key[i], '@', r->len[i]);
		if (at == NULL || dir_ldap_filter_expand(l->filter,
		    r->key[i], (size_t)(at - r->key[i]), at + 1,
		    r->len[i] - (size_t)(at + 1 - r->key[i]), f[i],
		    sizeof(f[i])) < 0) {
			dl_answer(r, DIR_UNKNOWN);	/* cannot match */
			return;
		}
	}
	if (r->n == 2)
		snprintf(q, sizeof(q), "(|%s%s)", f[0], f[1]);
	else
		snprintf(q, sizeof(q), "%s", f[0]);
	/* one entry is enough: a size limit of 1 */
	rc = ldap_search_ext(l->ld, l->base, LDAP_SCOPE_SUBTREE, q, noattrs,
	    1, NULL, NULL, &tv, 1, &r->msgid);
	if (rc != LDAP_SUCCESS ||
	    (r->deadline = evtimer_new(l->base_ev, dl_req_deadline, r)) ==
	    NULL) {
		dl_answer(r, DIR_TEMPFAIL);
		if (rc != LDAP_SUCCESS)
			dl_fail(l, "search", rc);
		return;
	}
	evtimer_add(r->deadline, &tv);
	r->next = l->inflight;
	l->inflight = r;
}

/* Lookups queued by the workers: sent, or answered 451 if not ready. */
static void
dl_on_queue(evutil_socket_t fd, short what, void *arg)
{
	struct dir_ldap	*l = arg;
	struct dl_req	*r, *list;
	char		 b[64];

	(void)what;
	while (read(fd, b, sizeof(b)) > 0)
		;
	pthread_mutex_lock(&l->mu);
	list = l->qhead;
	l->qhead = NULL;
	l->qtail = &l->qhead;
	l->qlen = 0;
	pthread_mutex_unlock(&l->mu);
	while ((r = list) != NULL) {
		list = r->next;
		if (l->state != DL_PERSIST || l->ld == NULL)
			dl_answer(r, DIR_TEMPFAIL);	/* LDAP is down */
		else
			dl_req_send(l, r);
	}
}

static void
dl_req_result(struct dir_ldap *l, LDAPMessage *msg)
{
	struct dl_req	*r;
	int		 id = ldap_msgid(msg), err = LDAP_OTHER;

	for (r = l->inflight; r != NULL && r->msgid != id; r = r->next)
		;
	if (r == NULL)
		return;		/* abandoned or unknown: dropped */
	if (ldap_msgtype(msg) == LDAP_RES_SEARCH_ENTRY) {
		r->found = true;
		return;
	}
	if (ldap_msgtype(msg) != LDAP_RES_SEARCH_RESULT)
		return;
	(void)ldap_parse_result(l->ld, msg, &err, NULL, NULL, NULL, NULL, 0);
	dl_inflight_drop(l, r);
	if (r->found && (err == LDAP_SUCCESS ||
	    err == LDAP_SIZELIMIT_EXCEEDED))
		dl_answer(r, DIR_VALID);
	else if (err == LDAP_SUCCESS)
		dl_answer(r, DIR_UNKNOWN);
	else {
		log_event(LOG_LVL_WARNING, "ldap", "uri=%s msg=\"search "
		    "failed: %s; 451\"", l->uris[l->cur], ldap_err2string(err));
		dl_answer(r, DIR_TEMPFAIL);
	}
}

void
dir_loop_enter(struct event_base *base)
{
	size_t	i;

	dl_loop = base;
	pthread_mutex_lock(&dl_loops_mu);
	for (i = 0; i < DL_LOOPS_MAX && dl_loops[i] != NULL; i++)
		;
	if (i < DL_LOOPS_MAX)
		dl_loops[i] = base;
	else
		dl_loop = NULL;	/* too many loops: this one answers 451 */
	pthread_mutex_unlock(&dl_loops_mu);
}

void
dir_loop_leave(struct event_base *base)
{
	size_t	i;

	pthread_mutex_lock(&dl_loops_mu);
	for (i = 0; i < DL_LOOPS_MAX; i++)
		if (dl_loops[i] == base)
			dl_loops[i] = NULL;
	pthread_mutex_unlock(&dl_loops_mu);
	dl_loop = NULL;
}

/* Lookup mode, on a worker: the cache, the breaker, else ask. */
static enum dir_verdict
dl_lookup_ask(struct dir_ldap *l, const uint8_t *const *keys,
    const size_t *lens, size_t n, uint64_t id, dir_done_fn *done,
    void *arg)
{
	struct dl_cached	*c;
	struct dl_req		*r;
	struct timespec		 ts;
	uint8_t			 mac[DIR_HASHED_MAC];
	enum dir_verdict	 v;
	uint64_t		 now = dl_now_ms();
	size_t			 i;

	if (dir_hashed_mac(l->key, l->keylen, keys[0], lens[0], mac) == -1)
		return DIR_TEMPFAIL;
	pthread_mutex_lock(&l->cmu);
	c = *(struct dl_cached **)dl_tab_find(&l->cache, mac, CACHE_K);
	if (c != NULL && c->expires_ms > now) {
		v = c->valid ? DIR_VALID : DIR_UNKNOWN;
		pthread_mutex_unlock(&l->cmu);
		return v;
	}
	if (l->open_until_ms > now) {
		pthread_mutex_unlock(&l->cmu);
		return DIR_TEMPFAIL;	/* the breaker is open */
	}
	pthread_mutex_unlock(&l->cmu);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return DIR_TEMPFAIL;
	r->l = l;
	r->n = n > 2 ? 2 : n;
	for (i = 0; i < r->n; i++) {
		memcpy(r->key[i], keys[i], lens[i]);
		r->len[i] = lens[i];
	}
	memcpy(r->mac, mac, sizeof(mac));
	r->id = id;
	r->done = done;
	r->arg = arg;
	r->reply = done != NULL ? dl_loop : NULL;
	if (done != NULL && r->reply == NULL) {
		free(r);
		return DIR_TEMPFAIL;	/* not on a loop: cannot wait */
	}
	pthread_mutex_lock(&l->mu);
	if (l->qlen >= DL_QUEUE_MAX) {
		pthread_mutex_unlock(&l->mu);
		free(r);
		return DIR_TEMPFAIL;
	}
	*l->qtail = r;
	l->qtail = &r->next;
	l->qlen++;
	pthread_mutex_unlock(&l->mu);
	(void)write(l->q_fd[1], "", 1);
	if (r->reply != NULL)
		return DIR_PENDING;
	/* a command-line caller: wait here, bounded */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2 * l->timeout_ms / 1000 + 2;
	pthread_mutex_lock(&l->mu);
	while (!r->answered && pthread_cond_timedwait(&l->cv, &l->mu, &ts) ==
	    0)
		;
	v = r->answered ? r->v : DIR_TEMPFAIL;
	pthread_mutex_unlock(&l->mu);
	if (r->answered)
		free(r);	/* else the thread still holds it: leaked */
	return v;
}


/* ------------------------------------------------------------ poll mode */

#define DL_PAGE_SIZE	500	/* entries a page (AD allows 1000) */

/*
 * One page of a full refresh (a plain search, paged, RFC 2696): for
 * servers without RFC 4533, Active Directory among them.  The first page
 * starts a new generation; the last one sweeps what it did not see.
 */
static int
dl_poll_search(struct dir_ldap *l)
{
	char		*attrs[DIR_LDAP_ATTRS_MAX + 1];
	LDAPControl	*ctrl = NULL, *ctrls[2];
	size_t		 i;
	int		 rc;

	if (l->page_cookie == NULL) {
		l->pages = 0;
		l->state = DL_REFRESH;
		l->gen++;
		l->nlost_start = l->nlost;
		l->seen = 0;
		l->refresh_us = dl_now_us();
	}
	rc = ldap_create_page_control(l->ld, DL_PAGE_SIZE, l->page_cookie, 0,
	    &ctrl);
	if (rc != LDAP_SUCCESS)
		return rc;
	for (i = 0; i < l->nattrs; i++)
		attrs[i] = l->attrs[i].name;
	attrs[i] = NULL;
	ctrls[0] = ctrl;
	ctrls[1] = NULL;
	rc = ldap_search_ext(l->ld, l->base, LDAP_SCOPE_SUBTREE, l->filter,
	    attrs, 0, ctrls, NULL, NULL, 0, &l->msgid);
	ldap_control_free(ctrl);
	if (rc == LDAP_SUCCESS)
		dl_deadline(l);
	return rc;
}

/* An entry of a poll: keyed by a keyed hash of its DN. */
static void
dl_on_poll_entry(struct dir_ldap *l, LDAPMessage *msg)
{
	uint8_t		(*macs)[DIR_HASHED_MAC], id[DIR_HASHED_MAC];
	char		 *dn;
	uint16_t	  n;
	int		  rc;

	if ((dn = ldap_get_dn(l->ld, msg)) == NULL)
		return;
	rc = dir_hashed_mac(l->key, l->keylen, (const uint8_t *)dn,
	    strlen(dn), id);
	ldap_memfree(dn);
	if (rc == -1 || (macs = dl_entry_macs(l, msg, &n)) == NULL)
		return;
	l->seen++;
	pthread_rwlock_wrlock(&l->lock);
	dl_entry_set(l, id, macs, n);	/* its first 16 bytes */
	pthread_rwlock_unlock(&l->lock);
}

static void
dl_poll_result(struct dir_ldap *l, LDAPMessage *msg)
{
	LDAPControl	**ctrls = NULL, *c;
	struct berval	  cookie = { 0, NULL };
	ber_int_t	  count = 0;
	int		  err = LDAP_OTHER, rc;

	l->msgid = -1;
	rc = ldap_parse_result(l->ld, msg, &err, NULL, NULL, NULL, &ctrls, 0);
	if (rc != LDAP_SUCCESS || err != LDAP_SUCCESS) {
		ldap_controls_free(ctrls);
		ber_bvfree(l->page_cookie);
		l->page_cookie = NULL;
		dl_fail(l, "the poll search failed (a size limit?)",
		    rc != LDAP_SUCCESS ? rc : err);
		return;
	}
	c = ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, ctrls, NULL);
	if (c != NULL)
		(void)ldap_parse_pageresponse_control(l->ld, c, &count,
		    &cookie);
	ldap_controls_free(ctrls);
	ber_bvfree(l->page_cookie);
	l->page_cookie = NULL;
	l->pages++;
	if (cookie.bv_len > 0) {	/* more pages */
		l->page_cookie = ber_bvdup(&cookie);
		ber_memfree(cookie.bv_val);
		if (l->page_cookie == NULL ||
		    (rc = dl_poll_search(l)) != LDAP_SUCCESS) {
			ber_bvfree(l->page_cookie);
			l->page_cookie = NULL;
			dl_fail(l, "poll search", LDAP_NO_MEMORY);
		}
		return;
	}
	ber_memfree(cookie.bv_val);
	dl_refresh_done(l);
}

static void
dl_on_result(struct dir_ldap *l, LDAPMessage *msg)
{
	int	err = LDAP_OTHER, rc;

	if (l->lookup_mode && ldap_msgtype(msg) != LDAP_RES_BIND) {
		dl_req_result(l, msg);
		return;
	}
	switch (ldap_msgtype(msg)) {
	case LDAP_RES_BIND:
		rc = ldap_parse_result(l->ld, msg, &err, NULL, NULL, NULL,
		    NULL, 0);
		if (rc != LDAP_SUCCESS || err != LDAP_SUCCESS) {
			dl_fail(l, "bind refused", rc != LDAP_SUCCESS ? rc :
			    err);
			return;
		}
		if (l->lookup_mode) {
			l->state = DL_PERSIST;	/* ready for searches */
			evtimer_del(l->timer);
			l->backoff_ms = 0;
			log_event(LOG_LVL_INFO, "ldap", "uri=%s ready=yes "
			    "mode=lookup", l->uris[l->cur]);
			pthread_mutex_lock(&l->mu);
			l->bound = true;
			pthread_cond_broadcast(&l->cv);
			pthread_mutex_unlock(&l->mu);
			(void)write(l->q_fd[1], "", 1);	/* what waited */
			break;
		}
		if ((rc = l->poll_mode ? dl_poll_search(l) : dl_search(l)) !=
		    LDAP_SUCCESS) {
			dl_fail(l, "sync search", rc);
			return;
		}
		l->state = DL_REFRESH;
		l->gen++;
		l->nlost_start = l->nlost;
		l->seen = 0;
		l->refresh_us = dl_now_us();
		dl_deadline(l);
		break;
	case LDAP_RES_SEARCH_ENTRY:
		if (l->poll_mode)
			dl_on_poll_entry(l, msg);
		else
			dl_on_entry(l, msg);
		if (l->state == DL_REFRESH)
			dl_deadline(l);	/* progress: a new deadline */
		break;
	case LDAP_RES_INTERMEDIATE:
		dl_on_intermediate(l, msg);
		break;
	case LDAP_RES_SEARCH_RESULT:
		if (l->poll_mode) {
			dl_poll_result(l, msg);
			break;
		}
		(void)ldap_parse_result(l->ld, msg, &err, NULL, NULL, NULL,
		    NULL, 0);
		l->msgid = -1;
		dl_fail(l, err == LDAP_SUCCESS ? "the sync search ended" :
		    "the sync search failed (a size limit? syncprov?)", err);
		break;
	default:
		break;
	}
}

static void
dl_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct dir_ldap	*l = arg;
	struct timeval	 zero = { 0, 0 };
	LDAPMessage	*msg;
	int		 rc;

	(void)fd;
	(void)what;
	/* Drain: TLS may hold more than the socket says. */
	while (l->ld != NULL) {
		msg = NULL;
		rc = ldap_result(l->ld, LDAP_RES_ANY, LDAP_MSG_ONE, &zero, &msg);
		if (rc == 0)
			break;
		if (rc == -1) {
			int	e = LDAP_SERVER_DOWN;

			(void)ldap_get_option(l->ld, LDAP_OPT_RESULT_CODE, &e);
			dl_fail(l, "connection lost", e);
			break;
		}
		dl_on_result(l, msg);
		ldap_msgfree(msg);
	}
}

static void
dl_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dir_ldap	*l = arg;

	(void)fd;
	(void)what;
	if (l->state == DL_IDLE)
		dl_connect(l);		/* the backoff ended */
	else if (l->state == DL_PERSIST && l->poll_mode) {
		int	rc;

		if ((rc = dl_poll_search(l)) != LDAP_SUCCESS)
			dl_fail(l, "poll search", rc);
	} else
		dl_fail(l, l->state == DL_BIND ? "bind timed out" :
		    "refresh stalled", LDAP_TIMEOUT);
}

static void
dl_connect(struct dir_ldap *l)
{
	struct timeval	 tv = { l->timeout_ms / 1000,
	    (l->timeout_ms % 1000) * 1000 };
	struct berval	 cred = { strlen(l->password), l->password };
	int		 v3 = LDAP_VERSION3, rc, fd = -1, demand =
	    LDAP_OPT_X_TLS_DEMAND, zero = 0;

	if ((rc = ldap_initialize(&l->ld, l->uris[l->cur])) != LDAP_SUCCESS) {
		l->ld = NULL;
		dl_fail(l, "bad URI", rc);
		return;
	}
	(void)ldap_set_option(l->ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	(void)ldap_set_option(l->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	(void)ldap_set_option(l->ld, LDAP_OPT_TIMEOUT, &tv);
	(void)ldap_set_option(l->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	(void)ldap_set_option(l->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (l->ca_file != NULL)
		(void)ldap_set_option(l->ld, LDAP_OPT_X_TLS_CACERTFILE,
		    l->ca_file);
	(void)ldap_set_option(l->ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	/*
	 * The TCP connect and STARTTLS are bounded by ldap_timeout and run
	 * on this thread's own loop, never on an SMTP loop.
	 */
	if (l->starttls && strncasecmp(l->uris[l->cur], "ldap://", 7) == 0 &&
	    (rc = ldap_start_tls_s(l->ld, NULL, NULL)) != LDAP_SUCCESS) {
		dl_fail(l, "STARTTLS", rc);
		return;
	}
	l->state = DL_BIND;
	rc = ldap_sasl_bind(l->ld, l->bind_dn != NULL ? l->bind_dn : "",
	    LDAP_SASL_SIMPLE, &cred, NULL, NULL, &l->msgid);
	if (rc != LDAP_SUCCESS) {
		dl_fail(l, "connect", rc);
		return;
	}
	if (ldap_get_option(l->ld, LDAP_OPT_DESC, &fd) != LDAP_OPT_SUCCESS ||
	    fd < 0 || (l->rd = event_new(l->base_ev, fd, EV_READ | EV_PERSIST,
	    dl_on_read, l)) == NULL || event_add(l->rd, NULL) == -1) {
		dl_fail(l, "no socket", LDAP_OTHER);
		return;
	}
	log_event(LOG_LVL_INFO, "ldap", "uri=%s connected=yes bind_dn=%s",
	    l->uris[l->cur], l->bind_dn != NULL ? "set" : "anonymous");
	dl_deadline(l);
}

static void
dl_on_snap_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dl_snap_write(arg);
}

static void
dl_on_stop(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(((struct dir_ldap *)arg)->base_ev);
}

static void *
dl_main(void *arg)
{
	struct dir_ldap	*l = arg;

	dl_connect(l);
	event_base_dispatch(l->base_ev);
	dl_drop(l);
	return NULL;
}

/* ------------------------------------------------------------ open */

static int
dl_read_secret(const char *path, const char *what, char *out, size_t max,
    char *err, size_t errlen)
{
	char	*text;
	size_t	 n;

	if ((text = secret_file_read(path, max - 2, what, "password", &n, err,
	    errlen)) == NULL)
		return -1;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		n--;
	memcpy(out, text, n);
	out[n] = '\0';
	explicit_bzero(text, n);
	free(text);
	return 0;
}

/* The key of the set: directory_key_file, else SPOOL/directory.key. */
static int
dl_key(struct dir_ldap *l, const struct config *cfg, char *err,
    size_t errlen)
{
	char	path[4096];
	uint8_t	k[DIR_HASHED_NEWKEY];
	int	fd;
	bool	ok;

	if (cfg->directory_key_file != NULL)
		return dir_hashed_key_read(cfg->directory_key_file, l->key,
		    &l->keylen, err, errlen);
	if (snprintf(path, sizeof(path), "%s/directory.key", cfg->spool) >=
	    (int)sizeof(path))
		return snprintf(err, errlen, "spool path too long"), -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1) {
		ok = RAND_bytes(k, sizeof(k)) == 1 &&
		    write(fd, k, sizeof(k)) == (ssize_t)sizeof(k) &&
		    fsync(fd) == 0;
		OPENSSL_cleanse(k, sizeof(k));
		close(fd);
		if (!ok) {
			unlink(path);
			return snprintf(err, errlen, "cannot write %.300s",
			    path), -1;
		}
	}
	return dir_hashed_key_read(path, l->key, &l->keylen, err, errlen);
}

static char *
dl_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

struct dir_ldap *
dir_ldap_open(const struct config *cfg, dir_err_fn *err, void *arg)
{
	struct dir_ldap	*l;
	const char	*why, *p, *e;
	char		 msg[1024], path[4096];
	size_t		 n;

#define DL_ERR(...) do {						\
		snprintf(msg, sizeof(msg), __VA_ARGS__);		\
		if (err != NULL)					\
			err(arg, cfg->file, 0, msg);			\
		goto bad;						\
	} while (0)
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		if (err != NULL)
			err(arg, cfg->file, 0, "out of memory");
		return NULL;
	}
	l->msgid = -1;
	l->stop_fd[0] = l->stop_fd[1] = -1;
	pthread_rwlock_init(&l->lock, NULL);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->q_fd[0] = l->q_fd[1] = -1;
	l->qtail = &l->qhead;
	pthread_mutex_init(&l->cmu, NULL);
	l->poll_mode = cfg->ldap_sync == CONF_LDAP_SYNC_POLL;
	l->interval_ms = cfg->ldap_sync_interval_ms;
	l->lookup_mode = cfg->ldap_sync == CONF_LDAP_SYNC_NO;
	if (cfg->ldap_uri == NULL)
		DL_ERR("directory = ldap needs ldap_uri");
	if (cfg->ldap_base == NULL)
		DL_ERR("directory = ldap needs ldap_base");
	for (p = cfg->ldap_uri; *p != '\0'; p = e) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e != '\0' && *e != ' '; e++)
			;
		n = (size_t)(e - p);
		if (l->nuris == DL_URIS_MAX)
			DL_ERR("ldap_uri: more than %d servers", DL_URIS_MAX);
		if (!((n > 7 && strncasecmp(p, "ldap://", 7) == 0) ||
		    (n > 8 && strncasecmp(p, "ldaps://", 8) == 0)))
			DL_ERR("ldap_uri: '%.*s' is not ldap://HOST[:PORT] or "
			    "ldaps://HOST[:PORT]", (int)(n > 200 ? 200 : n), p);
		if ((l->uris[l->nuris++] = strndup(p, n)) == NULL)
			DL_ERR("out of memory");
	}
	if (l->nuris == 0)
		DL_ERR("directory = ldap needs ldap_uri");
	if (l->lookup_mode) {
		if (dir_ldap_filter_check(cfg->ldap_filter, &why) == -1)
			DL_ERR("ldap_filter: %s", why);
		snprintf(l->filter, sizeof(l->filter), "%s", cfg->ldap_filter);
	} else if (dir_ldap_filter_sync(cfg->ldap_filter, l->attrs,
	    &l->nattrs, l->filter, sizeof(l->filter), &why) == -1)
		DL_ERR("ldap_filter: %s", why);
	if (cfg->ldap_bind_password_file != NULL && dl_read_secret(
	    cfg->ldap_bind_password_file, "ldap_bind_password_file",
	    l->password, sizeof(l->password), msg, sizeof(msg)) == -1) {
		if (err != NULL)
			err(arg, cfg->file, 0, msg);
		goto bad;
	}
	if (cfg->ldap_bind_password_file != NULL && cfg->ldap_bind_dn == NULL)
		DL_ERR("ldap_bind_password_file needs ldap_bind_dn");
	if (dl_key(l, cfg, msg, sizeof(msg)) == -1) {
		if (err != NULL)
			err(arg, cfg->file, 0, msg);
		goto bad;
	}
	if (snprintf(path, sizeof(path), "%s/%s", cfg->spool,
	    DIR_LDAP_SNAP_NAME) >= (int)sizeof(path))
		DL_ERR("spool path too long");
	if ((l->base = dl_strdup(cfg->ldap_base)) == NULL ||
	    (cfg->ldap_bind_dn != NULL &&
	    (l->bind_dn = strdup(cfg->ldap_bind_dn)) == NULL) ||
	    (cfg->ldap_tls_ca_file != NULL &&
	    (l->ca_file = strdup(cfg->ldap_tls_ca_file)) == NULL) ||
	    (l->snap_path = strdup(path)) == NULL)
		DL_ERR("out of memory");
	l->timeout_ms = cfg->ldap_timeout_ms;
	l->starttls = cfg->ldap_starttls;
	l->local_case = cfg->localpart_case_sensitive;
	if (dl_tab_init(&l->addrs, 1024) == -1 ||
	    dl_tab_init(&l->entries, 1024) == -1 ||
	    dl_tab_init(&l->cache, 1024) == -1)
		DL_ERR("out of memory");
	if (!l->lookup_mode)
		dl_snap_load(l);
	if ((l->base_ev = event_base_new()) == NULL ||
	    pipe2(l->stop_fd, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    (l->timer = evtimer_new(l->base_ev, dl_on_timer, l)) == NULL ||
	    (l->snap_timer = evtimer_new(l->base_ev, dl_on_snap_timer, l)) ==
	    NULL || (l->stop_ev = event_new(l->base_ev, l->stop_fd[0],
	    EV_READ, dl_on_stop, l)) == NULL ||
	    event_add(l->stop_ev, NULL) == -1 ||
	    pipe2(l->q_fd, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    (l->q_ev = event_new(l->base_ev, l->q_fd[0], EV_READ | EV_PERSIST,
	    dl_on_queue, l)) == NULL || event_add(l->q_ev, NULL) == -1)
		DL_ERR("cannot make the LDAP event loop");
	if (pthread_create(&l->thread, NULL, dl_main, l) != 0)
		DL_ERR("cannot start the LDAP thread");
	return l;
bad:
	l->thread = 0;
	dir_ldap_close(l);
	return NULL;
#undef DL_ERR
}

void
dir_ldap_close(struct dir_ldap *l)
{
	struct dl_entry	*e, *en;
	struct dl_addr	*a, *an;
	size_t		 i;

	if (l == NULL)
		return;
	if (l->thread != 0) {
		(void)write(l->stop_fd[1], "", 1);
		pthread_join(l->thread, NULL);
	}
	if (l->stop_ev != NULL)
		event_free(l->stop_ev);
	if (l->q_ev != NULL)
		event_free(l->q_ev);
	dl_fail_all(l);		/* in flight: 451 */
	while (l->qhead != NULL) {
		struct dl_req	*r = l->qhead;

		l->qhead = r->next;
		dl_answer(r, DIR_TEMPFAIL);
	}
	if (l->timer != NULL)
		event_free(l->timer);
	if (l->snap_timer != NULL)
		event_free(l->snap_timer);
	dl_drop(l);
	if (l->base_ev != NULL)
		event_base_free(l->base_ev);
	for (i = 0; i < 2; i++) {
		if (l->stop_fd[i] != -1)
			close(l->stop_fd[i]);
		if (l->q_fd[i] != -1)
			close(l->q_fd[i]);
	}
	for (i = 0; l->cache.b != NULL && i <= l->cache.mask; i++) {
		struct dl_cached	*c, *cn;

		for (c = l->cache.b[i]; c != NULL; c = cn) {
			cn = c->next;
			free(c);
		}
	}
	free(l->cache.b);
	pthread_mutex_destroy(&l->cmu);
	for (i = 0; l->entries.b != NULL && i <= l->entries.mask; i++)
		for (e = l->entries.b[i]; e != NULL; e = en) {
			en = e->next;
			free(e->macs);
			free(e);
		}
	for (i = 0; l->addrs.b != NULL && i <= l->addrs.mask; i++)
		for (a = l->addrs.b[i]; a != NULL; a = an) {
			an = a->next;
			free(a);
		}
	free(l->entries.b);
	free(l->addrs.b);
	dir_hashed_free(l->snap);
	for (i = 0; i < l->nuris; i++)
		free(l->uris[i]);
	free(l->base);
	free(l->bind_dn);
	free(l->ca_file);
	free(l->snap_path);
	OPENSSL_cleanse(l->password, sizeof(l->password));
	OPENSSL_cleanse(l->key, sizeof(l->key));
	pthread_rwlock_destroy(&l->lock);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

enum dir_verdict
dir_ldap_lookup(struct dir_ldap *l, const uint8_t *const *keys,
    const size_t *lens, size_t n, uint64_t id, dir_done_fn *done,
    void *arg)
{
	uint8_t			mac[DIR_HASHED_MAC];
	enum dir_verdict	v = DIR_UNKNOWN;
	size_t			i;

	if (l->lookup_mode)
		return n == 0 ? DIR_UNKNOWN : dl_lookup_ask(l, keys, lens, n,
		    id, done, arg);
	pthread_rwlock_rdlock(&l->lock);
	if (!l->ready && l->snap == NULL)
		v = DIR_TEMPFAIL;	/* never a 550 from a partial set */
	for (i = 0; i < n && v == DIR_UNKNOWN; i++) {
		if (dir_hashed_mac(l->key, l->keylen, keys[i], lens[i], mac) ==
		    -1)
			v = DIR_TEMPFAIL;
		else if (l->ready ? *dl_tab_find(&l->addrs, mac, ADDR_K) !=
		    NULL : dir_hashed_has(l->snap, keys[i], lens[i]))
			v = DIR_VALID;
	}
	if (v == DIR_UNKNOWN && l->lost)
		v = DIR_TEMPFAIL;	/* the set is missing something */
	pthread_rwlock_unlock(&l->lock);
	return v;
}

size_t
dir_ldap_count(const struct dir_ldap *l)
{
	if (l->lookup_mode)
		return 0;	/* not known: asked one by one */
	return l->ready ? l->addrs.n : dir_hashed_count(l->snap);
}

bool
dir_ldap_settle(struct dir_ldap *l, unsigned ms)
{
	struct timespec	ts;
	bool		ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&l->mu);
	/* sync: the first full refresh; lookup: the first bind */
	while (!(l->lookup_mode ? l->bound : l->ready) &&
	    pthread_cond_timedwait(&l->cv, &l->mu, &ts) == 0)
		;
	ok = l->lookup_mode ? l->bound : l->ready;
	pthread_mutex_unlock(&l->mu);
	return ok;
}
