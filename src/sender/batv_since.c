/*
 * batv_since.c - the switch-on time of BATV in the spool (batv_since.h).
 * Owns: SPOOL/batv.since.  Untrusted: its bytes (a number or rewritten).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/fsync_dir.h"
#include "batv_since.h"

#define BATV_SINCE_MAX	32	/* bytes of the file we read */

/* The file's time, or 0 when it is missing or does not parse. */
static time_t
batv_since_read(const char *path)
{
	char		 b[BATV_SINCE_MAX + 1], *end;
	long long	 v;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return 0;
	n = read(fd, b, BATV_SINCE_MAX);
	close(fd);
	if (n <= 0)
		return 0;
	b[n] = '\0';
	errno = 0;
	v = strtoll(b, &end, 10);
	if (errno != 0 || end == b || (*end != '\n' && *end != '\0') ||
	    v <= 0)
		return 0;
	return (time_t)v;
}

static int
batv_since_write(const char *spool, const char *path, time_t now, char *why,
    size_t whylen)
{
	char	tmp[4096 + 8], line[32];
	bool	ok;
	int	fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(line, sizeof(line), "%lld\n", (long long)now);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1) {
		snprintf(why, whylen, "cannot write %s: %s", tmp,
		    strerror(errno));
		return -1;
	}
	ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) == -1 || fsync_dir(spool) == -1) {
		snprintf(why, whylen, "cannot write %s: %s", path,
		    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	return 0;
}

int
batv_since_load(const char *spool, bool on, time_t now, time_t *since,
    char *why, size_t whylen)
{
	char	path[4096];

	*since = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", spool,
	    BATV_SINCE_FILE) >= sizeof(path)) {
		snprintf(why, whylen, "spool path too long");
		return -1;
	}
	if (!on) {
		if (unlink(path) == -1 && errno != ENOENT) {
			snprintf(why, whylen, "cannot remove %s: %s", path,
			    strerror(errno));
			return -1;
		}
		return 0;
	}
	if ((*since = batv_since_read(path)) != 0)
		return 0;
	if (batv_since_write(spool, path, now, why, whylen) == -1)
		return -1;
	*since = now;
	return 0;
}
