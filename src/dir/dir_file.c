/*
 * dir_file.c - the users-file back-end: a text file of "local@domain"
 * lines loaded into one key arena plus an open-addressing hash table.
 * Owns: reading the whole file in one go, the line parser, the table.
 * Never: keeps a half-loaded table (one bad line fails the whole load).
 * Untrusted: the users file.  RFC 5321 4.1.2, 4.5.3.1; RFC 1035 2.3.1;
 * RFC 6531 3.3 (UTF-8 entries are stored in NFC, see dir_file_key_utf8).
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/utf8.h"
#include "dir_file.h"

/*
 * One slot of the table: the key's length and arena offset (48 bits, far
 * more than DIR_FILE_BYTES_MAX needs) and the hash's high half as a tag,
 * so a probe only calls memcmp when 32 more bits of hash agree.  A length
 * of 0 marks an empty slot: no key is shorter than "a@b".
 */
struct dir_file_slot {
	uint32_t	tag;
	uint32_t	lenhi;		/* bits 0-15 length; 16-31 off >> 32 */
	uint32_t	offlo;		/* offset, low 32 bits */
};

struct dir_file {
	uint8_t			*arena;		/* keys back to back, no NUL */
	size_t			 arenalen;
	struct dir_file_slot	*slots;		/* mmap()ed */
	size_t			 slotbytes;
	size_t			 mask;		/* number of slots - 1 */
	size_t			 count;		/* distinct keys */
	bool			 local_case;
};

/* A key hashed and prefetched, waiting for its insertion. */
struct dir_file_pending {
	size_t		 off, len;
	uint64_t	 h;
};

/* Error reporting state for one load. */
struct dir_file_ctx {
	const char	*name;
	dir_err_fn	*err;
	void		*arg;
	unsigned	 nbad;			/* bad lines seen */
};

#define DIR_FILE_SLOTS_MIN	16
#define DIR_FILE_READ_MIN	4096
#define DIR_FILE_AHEAD		16	/* keys prefetched ahead of insertion */
#define DIR_FILE_HUGE_MIN	((size_t)4 << 20)	/* ask for huge pages */

static void	dir_file_report(struct dir_file_ctx *, unsigned,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static const char *dir_file_check_local(const uint8_t *, size_t, bool *);
static const char *dir_file_check_domain(const uint8_t *, size_t, bool *);
static uint8_t	*dir_file_read(const char *, size_t *, struct dir_file_ctx *);
static size_t	 dir_file_scan(uint8_t *, size_t, bool, struct dir_file_ctx *,
		    size_t *);
static struct dir_file *dir_file_build(uint8_t *, size_t, size_t, bool);
static struct dir_file_slot *dir_file_slots_alloc(size_t, size_t *);
static void	 dir_file_insert(struct dir_file *,
		    const struct dir_file_pending *);
static struct dir_file *dir_file_load_buf(uint8_t *, size_t, bool,
		    struct dir_file_ctx *);
static uint64_t	 dir_file_hash(const uint8_t *, size_t);
static struct dir_file_slot *dir_file_probe(const struct dir_file *,
		    const uint8_t *, size_t, uint64_t);

/* RFC 5321 4.1.2 atext other than ALPHA and DIGIT. */
static const bool dir_file_special[256] = {
	['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true,
	['\''] = true, ['*'] = true, ['+'] = true, ['-'] = true, ['/'] = true,
	['='] = true, ['?'] = true, ['^'] = true, ['_'] = true, ['`'] = true,
	['{'] = true, ['|'] = true, ['}'] = true, ['~'] = true,
};

static inline bool
dir_file_alnum(uint8_t c)
{
	return (unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u;
}

static inline bool
dir_file_blank(uint8_t c)
{
	/* '\r' too, so a file written with CRLF line ends loads as is. */
	return c == ' ' || c == '\t' || c == '\r';
}

/* ASCII only: the table holds nothing else, and dir.c folds the same way. */
static inline uint8_t
dir_file_lower(uint8_t c)
{
	return (unsigned)(c - 'A') < 26u ? (uint8_t)(c | 0x20) : c;
}

enum parse_rc
dir_file_parse_line(const uint8_t *p, size_t len, struct dir_file_line *out)
{
	size_t		 b = 0, e = len, at;
	const char	*why;

	memset(out, 0, sizeof(*out));
	if (len > DIR_FILE_LINE_MAX) {
		out->why = "line too long";
		return PARSE_TOOLONG;
	}
	while (b < e && dir_file_blank(p[b]))
		b++;
	while (e > b && dir_file_blank(p[e - 1]))
		e--;
	if (b == e || p[b] == '#') {
		out->empty = true;
		return PARSE_OK;
	}
	/* The last '@': the local part may not hold one, but split as
	 * RFC 5321 would so the reason names the right half. */
	for (at = e; at > b && p[at - 1] != '@'; at--)
		;
	if (at == b) {
		out->why = "no '@'";
		return PARSE_BAD;
	}
	out->loff = b;
	out->llen = at - 1 - b;
	out->doff = at;
	out->dlen = e - at;
	if (out->dlen > 0 && p[e - 1] == '.')
		out->dlen--;		/* "example.org." names example.org */
	if ((why = dir_file_check_local(p + out->loff, out->llen,
	    &out->utf8)) == NULL)
		why = dir_file_check_domain(p + out->doff, out->dlen,
		    &out->utf8);
	if (why != NULL) {
		out->why = why;
		return PARSE_BAD;
	}
	return PARSE_OK;
}

/*
 * RFC 5321 4.1.2 Dot-string: atoms of atext joined by single dots; atext
 * includes UTF8-non-ascii (RFC 6531 3.3), which must be strict UTF-8.
 */
static const char *
dir_file_check_local(const uint8_t *p, size_t len, bool *utf8)
{
	size_t	i;
	int	n;

	if (len == 0)
		return "empty local part";
	if (len > DIR_FILE_LOCAL_MAX)
		return "local part over 64 octets";
	if (p[0] == '.' || p[len - 1] == '.')
		return "local part starts or ends with a dot";
	for (i = 0; i < len; i++) {
		if (p[i] == '.') {
			/* i + 1 < len, as p[len - 1] is no dot */
			if (p[i + 1] == '.')
				return "two dots in a row in the local part";
		} else if (p[i] >= 0x80) {
			if ((n = utf8_char(p + i, len - i)) <= 0)
				return "bad UTF-8 in the local part";
			i += (size_t)n - 1;
			*utf8 = true;
		} else if (!dir_file_alnum(p[i]) && !dir_file_special[p[i]])
			return "bad character in the local part";
	}
	return NULL;
}

/*
 * RFC 1035 2.3.1 labels (letters, digits, inner hyphens), RFC 5321 sizes;
 * or U-labels (RFC 6531 3.3), taken as strict UTF-8 characters.
 */
static const char *
dir_file_check_domain(const uint8_t *p, size_t len, bool *utf8)
{
	size_t	i, lab = 0;
	int	n;

	if (len == 0)
		return "empty domain";
	if (len > DIR_FILE_DOMAIN_MAX)
		return "domain over 255 octets";
	for (i = 0; i <= len; i++) {
		if (i == len || p[i] == '.') {
			if (lab == 0)
				return "empty label in the domain";
			if (p[i - 1] == '-')
				return "domain label ends with '-'";
			lab = 0;
			continue;
		}
		if (p[i] >= 0x80) {
			if ((n = utf8_char(p + i, len - i)) <= 0)
				return "bad UTF-8 in the domain";
			if ((lab += (size_t)n) > DIR_FILE_LABEL_MAX)
				return "domain label over 63 octets";
			i += (size_t)n - 1;
			*utf8 = true;
			continue;
		}
		if (!dir_file_alnum(p[i]) && p[i] != '-')
			return "bad character in the domain";
		if (lab == 0 && p[i] == '-')
			return "domain label starts with '-'";
		if (++lab > DIR_FILE_LABEL_MAX)
			return "domain label over 63 octets";
	}
	return NULL;
}

static void
dir_file_report(struct dir_file_ctx *c, unsigned line, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	if (c->err == NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->err(c->arg, c->name, line, msg);
}

/*
 * Read the whole file into one buffer with a spare byte at the end (the
 * scan may write one byte past the last line).  Sized by fstat, grown if
 * the file grows meanwhile, never past DIR_FILE_BYTES_MAX.
 */
static uint8_t *
dir_file_read(const char *path, size_t *lenp, struct dir_file_ctx *c)
{
	struct stat	 st;
	uint8_t		*buf = NULL, *nb;
	size_t		 len = 0, cap;
	ssize_t		 n;
	int		 fd;
	char		 eb[128];

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		goto fail;
	if ((uint64_t)st.st_size > DIR_FILE_BYTES_MAX)
		goto toobig;
	cap = (size_t)st.st_size + 1 < DIR_FILE_READ_MIN ?
	    DIR_FILE_READ_MIN : (size_t)st.st_size + 1;
	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (len + 1 == cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		if ((n = read(fd, buf + len, cap - 1 - len)) == 0)
			break;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if ((len += (size_t)n) > DIR_FILE_BYTES_MAX)
			goto toobig;
	}
	(void)close(fd);
	*lenp = len;
	return buf;
fail:
	dir_file_report(c, 0, "cannot read the users file: %s",
	    strerror_r(errno, eb, sizeof(eb)));
	goto out;
toobig:
	dir_file_report(c, 0, "file over %zu octets", DIR_FILE_BYTES_MAX);
out:
	if (fd != -1)
		(void)close(fd);
	free(buf);
	return NULL;
}

/* One bad line: the first DIR_FILE_ERRORS_MAX are told one by one. */
static void
dir_file_bad_line(struct dir_file_ctx *c, unsigned lineno, enum parse_rc rc,
    const uint8_t *p, size_t len, const char *why)
{
	if (++c->nbad > DIR_FILE_ERRORS_MAX)
		return;
	if (rc == PARSE_TOOLONG)
		dir_file_report(c, lineno, "line over %d octets",
		    DIR_FILE_LINE_MAX);
	else
		dir_file_report(c, lineno, "bad address '%s': %s",
		    log_text(p, len, 64), why);
}

/*
 * Parse every line, reporting each bad one.  While all is well each key
 * is normalised and moved down to the front of buf ("key\0key\0..."):
 * the write point never passes the line being read, so buf itself
 * becomes the arena.  Returns the arena length; *nkeys counts keys.
 */
static size_t
dir_file_scan(uint8_t *buf, size_t len, bool local_case,
    struct dir_file_ctx *c, size_t *nkeys)
{
	struct dir_file_line	 ln;
	enum parse_rc		 rc;
	const uint8_t		*nl, *src;
	uint8_t			 key[DIR_FILE_KEY_MAX];
	size_t			 r = 0, w = 0, end, i, klen = 0;
	unsigned		 lineno = 0;

	*nkeys = 0;
	while (r < len) {
		nl = memchr(buf + r, '\n', len - r);
		end = nl != NULL ? (size_t)(nl - buf) : len;
		lineno++;
		rc = dir_file_parse_line(buf + r, end - r, &ln);
		if (rc == PARSE_OK && ln.utf8 && ((klen = dir_file_key_utf8(
		    buf + r + ln.loff, ln.llen, buf + r + ln.doff, ln.dlen,
		    local_case, key)) == 0 || klen > ln.llen + 1 + ln.dlen)) {
			/* over its size in NFC, or longer than as written
			 * (it would not fit in place: write it in NFC) */
			rc = PARSE_BAD;
			ln.why = klen == 0 ? "address over its size in NFC" :
			    "address is longer in NFC than as written";
		}
		if (rc != PARSE_OK)
			dir_file_bad_line(c, lineno, rc, buf + r, end - r,
			    ln.why);
		else if (!ln.empty && ln.utf8 && c->nbad == 0) {
			memcpy(buf + w, key, klen);
			buf[w + klen] = '\0';
			w += klen + 1;
			(*nkeys)++;
		} else if (!ln.empty && c->nbad == 0) {
			/* w + klen <= end: the NUL lands on the '\n' at
			 * worst, or on the spare byte after the last line. */
			src = buf + r + ln.loff;
			klen = ln.llen + 1 + ln.dlen;
			for (i = 0; i < ln.llen; i++)
				buf[w + i] = local_case ? src[i] :
				    dir_file_lower(src[i]);
			for (; i < klen; i++)
				buf[w + i] = dir_file_lower(src[i]);
			buf[w + klen] = '\0';
			w += klen + 1;
			(*nkeys)++;
		}
		r = end + 1;
	}
	return w;
}

size_t
dir_file_key_utf8(const uint8_t *local, size_t llen, const uint8_t *domain,
    size_t dlen, bool local_case, uint8_t out[DIR_FILE_KEY_MAX])
{
	int	n, m, i;

	n = utf8_nfc(local, llen, false, out, DIR_FILE_LOCAL_MAX);
	m = n < 0 ? -1 : utf8_nfc(domain, dlen, true, out + n + 1,
	    DIR_FILE_DOMAIN_MAX);
	if (m <= 0 || n == 0)
		return 0;
	for (i = 0; i < n && !local_case; i++)
		out[i] = dir_file_lower(out[i]);
	out[n] = '@';
	return (size_t)n + 1 + (size_t)m;
}

static inline size_t
dir_file_slot_len(const struct dir_file_slot *s)
{
	return s->lenhi & 0xffff;
}

static inline size_t
dir_file_slot_off(const struct dir_file_slot *s)
{
	return (size_t)(s->lenhi >> 16) << 32 | s->offlo;
}

/*
 * The slot that holds key, or the empty slot where it would go.  The
 * load factor stays at or below 0.7, so an empty slot always ends the
 * probe.
 */
static struct dir_file_slot *
dir_file_probe(const struct dir_file *f, const uint8_t *key, size_t len,
    uint64_t h)
{
	struct dir_file_slot	*s;
	uint32_t		 tag = (uint32_t)(h >> 32);
	size_t			 i = (size_t)h & f->mask;

	for (;; i = (i + 1) & f->mask) {
		s = &f->slots[i];
		if (dir_file_slot_len(s) == 0)
			return s;
		if (s->tag == tag && dir_file_slot_len(s) == len &&
		    memcmp(f->arena + dir_file_slot_off(s), key, len) == 0)
			return s;
	}
}

/*
 * The slot array: anonymous memory the kernel hands out zeroed.  Huge
 * pages cut the TLB misses of random probes into a table of hundreds of
 * megabytes; where the kernel has none, madvise fails and nothing else.
 */
static struct dir_file_slot *
dir_file_slots_alloc(size_t nslots, size_t *bytes)
{
	void	*p;

	*bytes = nslots * sizeof(struct dir_file_slot);
	p = mmap(NULL, *bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (*bytes >= DIR_FILE_HUGE_MIN)
		(void)madvise(p, *bytes, MADV_HUGEPAGE);
	return p;
}

/* Move one key down to the arena's end, then add it unless it is known. */
static void
dir_file_insert(struct dir_file *f, const struct dir_file_pending *k)
{
	struct dir_file_slot	*s;
	size_t			 w = f->arenalen;

	if (k->off != w)
		memmove(f->arena + w, f->arena + k->off, k->len);
	s = dir_file_probe(f, f->arena + w, k->len, k->h);
	if (dir_file_slot_len(s) != 0)
		return;			/* a duplicate: w is reused */
	s->tag = (uint32_t)(k->h >> 32);
	s->lenhi = (uint32_t)k->len | (uint32_t)((uint64_t)w >> 32) << 16;
	s->offlo = (uint32_t)w;
	f->arenalen += k->len;
	f->count++;
}

/*
 * Second pass over the arena: hash each key into a table sized for
 * nkeys, dropping duplicates and closing the gaps (the NULs go too), then
 * give the arena's tail back.  Keys are hashed DIR_FILE_AHEAD ahead of
 * their insertion and their slots prefetched: in a big table nearly every
 * insertion is a cache miss, and this overlaps them.  Takes buf.
 */
static struct dir_file *
dir_file_build(uint8_t *buf, size_t len, size_t nkeys, bool local_case)
{
	struct dir_file_pending	 ring[DIR_FILE_AHEAD], *k;
	struct dir_file		*f;
	const uint8_t		*nul;
	uint8_t			*nb;
	size_t			 nslots = DIR_FILE_SLOTS_MIN, r = 0;
	size_t			 in = 0, out = 0;

	while (nslots / 10 * 7 < nkeys)		/* load factor <= 0.7 */
		nslots <<= 1;
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->slots = dir_file_slots_alloc(nslots, &f->slotbytes)) == NULL) {
		free(f);
		free(buf);
		return NULL;
	}
	f->arena = buf;
	f->mask = nslots - 1;
	f->local_case = local_case;
	while (r < len || out < in) {
		if (r < len && in - out < DIR_FILE_AHEAD) {
			k = &ring[in++ % DIR_FILE_AHEAD];
			nul = memchr(buf + r, '\0', len - r);
			k->off = r;
			k->len = (size_t)(nul - (buf + r));
			k->h = dir_file_hash(buf + r, k->len);
			__builtin_prefetch(&f->slots[k->h & f->mask], 1);
			r += k->len + 1;
		} else
			dir_file_insert(f, &ring[out++ % DIR_FILE_AHEAD]);
	}
	if ((nb = realloc(buf, f->arenalen > 0 ? f->arenalen : 1)) != NULL)
		f->arena = nb;
	return f;
}

/* Scan then build; takes buf (len bytes plus one spare) in every case. */
static struct dir_file *
dir_file_load_buf(uint8_t *buf, size_t len, bool local_case,
    struct dir_file_ctx *c)
{
	struct dir_file	*f;
	size_t		 alen, nkeys;

	alen = dir_file_scan(buf, len, local_case, c, &nkeys);
	if (c->nbad > DIR_FILE_ERRORS_MAX)
		dir_file_report(c, 0, "%u more bad lines not shown",
		    c->nbad - DIR_FILE_ERRORS_MAX);
	if (c->nbad > 0) {
		free(buf);
		return NULL;
	}
	if ((f = dir_file_build(buf, alen, nkeys, local_case)) == NULL)
		dir_file_report(c, 0, "out of memory for %zu keys", nkeys);
	return f;
}

struct dir_file *
dir_file_load(const char *path, bool local_case, dir_err_fn *err, void *arg)
{
	struct dir_file_ctx	 c = { path, err, arg, 0 };
	uint8_t			*buf;
	size_t			 len;

	if ((buf = dir_file_read(path, &len, &c)) == NULL)
		return NULL;
	return dir_file_load_buf(buf, len, local_case, &c);
}

struct dir_file *
dir_file_load_mem(const void *data, size_t len, const char *name,
    bool local_case, dir_err_fn *err, void *arg)
{
	struct dir_file_ctx	 c = { name, err, arg, 0 };
	uint8_t			*buf;

	if (len > DIR_FILE_BYTES_MAX) {
		dir_file_report(&c, 0, "file over %zu octets",
		    DIR_FILE_BYTES_MAX);
		return NULL;
	}
	if ((buf = malloc(len + 1)) == NULL) {
		dir_file_report(&c, 0, "out of memory");
		return NULL;
	}
	if (len > 0)
		memcpy(buf, data, len);
	return dir_file_load_buf(buf, len, local_case, &c);
}

void
dir_file_free(struct dir_file *f)
{
	if (f == NULL)
		return;
	if (f->slots != NULL)
		(void)munmap(f->slots, f->slotbytes);
	free(f->arena);
	free(f);
}

bool
dir_file_has(const struct dir_file *f, const uint8_t *key, size_t len)
{
	const struct dir_file_slot	*s;

	if (f == NULL || len == 0 || len > DIR_FILE_KEY_MAX)
		return false;
	s = dir_file_probe(f, key, len, dir_file_hash(key, len));
	return dir_file_slot_len(s) != 0;
}

void
dir_file_each(const struct dir_file *f, dir_each_fn *fn, void *arg)
{
	const struct dir_file_slot	*sl;
	size_t				 i;

	for (i = 0; f != NULL && f->slots != NULL && i <= f->mask; i++) {
		sl = &f->slots[i];
		if (dir_file_slot_len(sl) > 0)
			fn(arg, (const char *)f->arena + dir_file_slot_off(sl),
			    dir_file_slot_len(sl));
	}
}

size_t
dir_file_count(const struct dir_file *f)
{
	return f != NULL ? f->count : 0;
}

bool
dir_file_local_case(const struct dir_file *f)
{
	return f != NULL && f->local_case;
}

/*
 * A small multiply-fold hash in the manner of wyhash: 8 bytes a step,
 * each folded through a 64x64->128 multiply.  The seed is fixed: the
 * table's keys come from our own file, not from peers, so a peer cannot
 * build colliding entries, and a probe for a crafted name costs at most
 * one cluster.  The index takes the low bits, the tag the high 32.
 */
#define DIR_FILE_K0	0xa0761d6478bd642fULL
#define DIR_FILE_K1	0xe7037ed1a0b428dbULL
#define DIR_FILE_K2	0x8ebc6af09c88c6e3ULL

static inline uint64_t
dir_file_mum(uint64_t a, uint64_t b)
{
	__extension__ unsigned __int128	r = (unsigned __int128)a * b;

	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t
dir_file_hash(const uint8_t *p, size_t len)
{
	uint64_t	h = DIR_FILE_K0 ^ len, w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = dir_file_mum(h ^ w, DIR_FILE_K1);
	}
	w = 0;
	memcpy(&w, p, len);
	return dir_file_mum(dir_file_mum(h ^ w, DIR_FILE_K2) ^ DIR_FILE_K0,
	    DIR_FILE_K1);
}
