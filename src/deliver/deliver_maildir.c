/*
 * deliver_maildir.c - local delivery into ROOT/<domain>/<local>/ by the
 * Maildir protocol (write tmp/, fsync, link into new/, fsync new/).
 * Owns: the folder layout and the deterministic file name that makes a
 * redelivery after a crash a no-op.  Never: touches the queue file or any
 * path outside ROOT; a recipient that is not a safe folder name fails.
 * Untrusted: the recipient address (validated again here) and the body.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/log.h"
#include "deliver.h"

#define MAILDIR_MODE		0700
#define MAILDIR_FILE_MODE	0600
#define MAILDIR_WBUF_SIZE	65536

struct maildir_box {
	int	root, domain, box, tmp, new, cur;
};

struct maildir_out {
	int	fd;
	size_t	len;
	uint8_t	buf[MAILDIR_WBUF_SIZE];
};

static int	maildir_fail(char *, size_t, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

static int
maildir_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
	char	what[768], ebuf[128];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (e != 0)
		snprintf(err, errlen, "maildir: %s: %s", what,
		    strerror_r(e, ebuf, sizeof(ebuf)));
	else
		snprintf(err, errlen, "maildir: %s", what);
	return -1;
}

/* A folder name we create under ROOT: nothing that can climb or hide. */
static bool
maildir_name_safe(const char *s)
{
	if (s[0] == '\0' || s[0] == '.')	/* also "." and ".." */
		return false;
	for (; *s != '\0'; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void
maildir_lower(char *dst, const char *src, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ?
		    (char)(src[i] - 'A' + 'a') : src[i];
	dst[n] = '\0';
}

/*
 * "local@domain", split at the last '@', lower-cased, checked; the
 * mailbox, when given, replaces the local part as the folder name.
 */
static int
maildir_split(const char *rcpt, const char *mailbox, char *local,
    char *domain, char *err, size_t errlen)
{
	const char	*at = strrchr(rcpt, '@');
	size_t		 llen, dlen;

	if (at == NULL)
		return maildir_fail(err, errlen, 0, "no domain in %s",
		    log_text(rcpt, strlen(rcpt), 64));
	llen = (size_t)(at - rcpt);
	if (mailbox != NULL && mailbox[0] != '\0') {
		llen = strlen(mailbox);
		rcpt = mailbox;
	}
	dlen = strlen(at + 1);
	if (llen > DELIVER_MAILDIR_NAME_MAX || dlen > DELIVER_MAILDIR_NAME_MAX)
		return maildir_fail(err, errlen, 0, "address too long: %s",
		    log_text(rcpt, strlen(rcpt), 64));
	maildir_lower(local, rcpt, llen);
	maildir_lower(domain, at + 1, dlen);
	if (!maildir_name_safe(local))
		return maildir_fail(err, errlen, 0, "unsafe local part %s",
		    log_text(local, llen, 64));
	if (!maildir_name_safe(domain))
		return maildir_fail(err, errlen, 0, "unsafe domain %s",
		    log_text(domain, dlen, 64));
	return 0;
}

/* <arrival>.M<qid>R<index>.<hostname>, '/' and ':' escaped (Maildir). */
static int
maildir_name(const struct queue_file *qf, size_t idx, const char *host,
    char *out, size_t outlen)
{
	int	n;
	size_t	o;

	n = snprintf(out, outlen, "%jd.M%sR%zu.", (intmax_t)qf->arrival,
	    qf->qid, idx);
	if (n < 0 || (size_t)n >= outlen)
		return -1;
	for (o = (size_t)n; *host != '\0'; host++) {
		const char	*rep = *host == '/' ? "\\057" :
		    *host == ':' ? "\\072" : NULL;
		size_t		 rlen = rep ? 4 : 1;

		if (o + rlen >= outlen)
			return -1;
		memcpy(out + o, rep ? rep : host, rlen);
		o += rlen;
	}
	out[o] = '\0';
	return 0;
}

/* Open parent/name as a folder, creating it (and making that durable). */
static int
maildir_subdir(int parent, const char *name)
{
	if (mkdirat(parent, name, MAILDIR_MODE) == 0) {
		if (fsync(parent) == -1)
			return -1;
	} else if (errno != EEXIST)
		return -1;
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int
maildir_open_box(const char *root, const char *domain, const char *local,
    struct maildir_box *b, char *err, size_t errlen)
{
	b->root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* EEXIST: another delivery made it between our open and mkdir */
	if (b->root == -1 && errno == ENOENT &&
	    (mkdir(root, MAILDIR_MODE) == 0 || errno == EEXIST))
		b->root = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->root == -1)
		return maildir_fail(err, errlen, errno, "open %s", root);
	if ((b->domain = maildir_subdir(b->root, domain)) == -1)
		return maildir_fail(err, errlen, errno, "mkdir %s", domain);
	if ((b->box = maildir_subdir(b->domain, local)) == -1)
		return maildir_fail(err, errlen, errno, "mkdir %s/%s", domain,
		    log_esc(local, strlen(local), 64));
	if ((b->tmp = maildir_subdir(b->box, "tmp")) == -1 ||
	    (b->new = maildir_subdir(b->box, "new")) == -1 ||
	    (b->cur = maildir_subdir(b->box, "cur")) == -1)
		return maildir_fail(err, errlen, errno,
		    "mkdir %s/%s/{tmp,new,cur}", domain,
		    log_esc(local, strlen(local), 64));
	return 0;
}

static void
maildir_box_close(struct maildir_box *b)
{
	int	*fds[] = { &b->root, &b->domain, &b->box, &b->tmp, &b->new,
		    &b->cur };
	size_t	 i;

	for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] != -1) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

/*
 * 1: already delivered (in new/, or moved to cur/ by the MUA, which adds
 * ":2,FLAGS"); 0: not; -1: cannot tell (errno set), so do not guess.
 */
static int
maildir_seen(const struct maildir_box *b, const char *name)
{
	struct stat	 st;
	struct dirent	*de;
	size_t		 n = strlen(name);
	DIR		*d;
	int		 fd, e, seen = 0;

	if (fstatat(b->new, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	if (errno != ENOENT)
		return -1;
	if ((fd = dup(b->cur)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	for (errno = 0; seen == 0 && (de = readdir(d)) != NULL; errno = 0)
		if (strncmp(de->d_name, name, n) == 0 &&
		    (de->d_name[n] == ':' || de->d_name[n] == '\0'))
			seen = 1;
	if (seen == 0 && errno != 0)
		seen = -1;
	e = errno;
	closedir(d);
	errno = e;
	return seen;
}

static int
maildir_out_flush(struct maildir_out *o)
{
	size_t	done = 0;
	ssize_t	r;

	while (done < o->len) {
		r = write(o->fd, o->buf + done, o->len - done);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			return -1;
		done += (size_t)r;
	}
	o->len = 0;
	return 0;
}

static int
maildir_out_put(struct maildir_out *o, const uint8_t *p, size_t len)
{
	size_t	n;

	while (len > 0) {
		if (o->len == sizeof(o->buf) && maildir_out_flush(o) == -1)
			return -1;
		n = sizeof(o->buf) - o->len;
		if (n > len)
			n = len;
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* The body has CRLF line ends; Maildir files have LF.  A lone CR stays. */
static int
maildir_copy_lf(struct maildir_out *o, const uint8_t *p, size_t len)
{
	const uint8_t	*cr;
	size_t		 i = 0, end;

	while (i < len) {
		cr = memchr(p + i, '\r', len - i);
		end = cr ? (size_t)(cr - p) : len;
		if (maildir_out_put(o, p + i, end - i) == -1)
			return -1;
		if (cr == NULL)
			break;
		if (end + 1 >= len || p[end + 1] != '\n')
			if (maildir_out_put(o, cr, 1) == -1)
				return -1;
		i = end + 1;
	}
	return maildir_out_flush(o);
}

static int
maildir_write_tmp(const struct maildir_box *b, const char *name,
    const struct queue_file *qf, char *err, size_t errlen)
{
	struct maildir_out	*o;
	int			 e = 0;

	if ((o = malloc(sizeof(*o))) == NULL)
		return maildir_fail(err, errlen, errno, "write tmp/%s", name);
	o->len = 0;
	/* O_TRUNC: a tmp file left by a crash has this very name */
	o->fd = openat(b->tmp, name, O_WRONLY | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, MAILDIR_FILE_MODE);
	if (o->fd == -1)
		e = errno;
	else if (maildir_copy_lf(o, qf->body, qf->bodylen) == -1)
		e = errno;
	else if (fsync(o->fd) == -1)
		e = errno;
	if (o->fd != -1 && close(o->fd) == -1 && e == 0)
		e = errno;
	free(o);
	if (e == 0)
		return 0;
	unlinkat(b->tmp, name, 0);
	return maildir_fail(err, errlen, e, "write tmp/%s", name);
}

static int
maildir_store(const struct maildir_box *b, const char *name,
    const struct queue_file *qf, char *err, size_t errlen)
{
	int	e;

	if (maildir_write_tmp(b, name, qf, err, errlen) == -1)
		return -1;
	/* EEXIST: a copy is already in new/, and it is complete */
	if (linkat(b->tmp, name, b->new, name, 0) == -1 && errno != EEXIST) {
		e = errno;
		unlinkat(b->tmp, name, 0);
		return maildir_fail(err, errlen, e, "link tmp/%s new/%s", name,
		    name);
	}
	unlinkat(b->tmp, name, 0);	/* a leftover in tmp/ harms nobody */
	if (fsync(b->new) == -1)
		return maildir_fail(err, errlen, errno, "fsync new/");
	return 0;
}

int
deliver_maildir(const char *maildir_root, const char *mailbox,
    const char *hostname, const struct queue_file *qf, size_t rcpt_index,
    char *err, size_t errlen)
{
	struct maildir_box	b = { -1, -1, -1, -1, -1, -1 };
	char			local[DELIVER_MAILDIR_NAME_MAX + 1];
	char			domain[DELIVER_MAILDIR_NAME_MAX + 1];
	char			name[DELIVER_MAILDIR_NAME_MAX + 1];
	int			rc = -1;

	if (rcpt_index >= qf->nrcpts)
		return maildir_fail(err, errlen, 0, "no recipient %zu in %s",
		    rcpt_index, qf->qid);
	if (hostname == NULL || hostname[0] == '\0')
		hostname = "localhost";
	if (maildir_split(qf->rcpts[rcpt_index], mailbox, local, domain, err,
	    errlen) == -1)
		return -1;
	if (maildir_name(qf, rcpt_index, hostname, name, sizeof(name)) == -1)
		return maildir_fail(err, errlen, 0, "file name too long");
	if (maildir_open_box(maildir_root, domain, local, &b, err,
	    errlen) == -1)
		goto out;
	switch (maildir_seen(&b, name)) {
	case 0:
		rc = maildir_store(&b, name, qf, err, errlen);
		break;
	case 1:
		rc = 0;		/* delivered before a crash or a retry */
		break;
	default:
		maildir_fail(err, errlen, errno, "look for %s in new/, cur/",
		    name);
		break;
	}
out:
	maildir_box_close(&b);
	return rc;
}
