/*
 * queue_lock.c - one gateway per spool (see queue_lock.h).
 * Owns: SPOOL/lock, its pid text.
 * Never: waits for the lock, removes the file, or touches anything else
 * in the spool.
 * Untrusted: the file's bytes (another process wrote them): at most
 * QUEUE_LOCK_PID_MAX bytes are read, and only digits count.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"
#include "queue_lock.h"

#define QUEUE_LOCK_MODE		0600
#define QUEUE_LOCK_PID_MAX	24	/* "4294967295\n" and then some */
#define QUEUE_LOCK_READ_TRIES	50	/* the holder writes its pid just */
#define QUEUE_LOCK_READ_NS	2000000	/* after it locks: 100 ms at most */

/* The pid in the file, or 0 if it holds no pid (yet). */
static pid_t
queue_lock_read_pid(int fd)
{
	char		buf[QUEUE_LOCK_PID_MAX + 1];
	ssize_t		n;
	long long	v = 0;
	ssize_t		i;

	do {
		n = pread(fd, buf, QUEUE_LOCK_PID_MAX, 0);
	} while (n == -1 && errno == EINTR);
	if (n <= 0)
		return 0;
	for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
		v = v * 10 + (buf[i] - '0');
		if (v > INT_MAX)
			return 0;
	}
	if (i == 0 || (i < n && buf[i] != '\n'))
		return 0;
	return (pid_t)v;
}

/* Who holds it: the pid, read again for a moment if not written yet. */
static pid_t
queue_lock_holder(int fd)
{
	struct timespec	ts = { 0, QUEUE_LOCK_READ_NS };
	pid_t		pid;
	int		i;

	for (i = 0; i < QUEUE_LOCK_READ_TRIES; i++) {
		if ((pid = queue_lock_read_pid(fd)) > 0)
			return pid;
		(void)nanosleep(&ts, NULL);
	}
	return 0;
}

static int
queue_lock_write_pid(int fd)
{
	char	buf[QUEUE_LOCK_PID_MAX];
	int	n;
	ssize_t	r;

	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1)
		return -1;
	do {
		r = pwrite(fd, buf, (size_t)n, 0);
	} while (r == -1 && errno == EINTR);
	if (r != n) {
		if (r >= 0)
			errno = ENOSPC;
		return -1;
	}
	return 0;
}

int
queue_lock_take(const char *spool, pid_t *holder, char *err, size_t errlen)
{
	char	path[PATH_MAX];
	int	fd, e;

	*holder = 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", spool,
	    QUEUE_LOCK_NAME) >= sizeof(path)) {
		snprintf(err, errlen, "spool %s: path too long", spool);
		return -1;
	}
	if (queue_mkdirs(spool) == -1) {
		snprintf(err, errlen, "spool %s: %s", spool, strerror(errno));
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    QUEUE_LOCK_MODE)) == -1) {
		snprintf(err, errlen, "spool lock %s: %s", path,
		    strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		e = errno;
		if (e == EWOULDBLOCK)
			*holder = queue_lock_holder(fd);
		close(fd);
		if (*holder > 0)
			snprintf(err, errlen, "spool %s is in use by pid %ld",
			    spool, (long)*holder);
		else if (e == EWOULDBLOCK)
			snprintf(err, errlen, "spool %s is in use by another "
			    "process (no pid in %s)", spool, path);
		else
			snprintf(err, errlen, "spool lock %s: %s", path,
			    strerror(e));
		return -1;
	}
	if (queue_lock_write_pid(fd) == -1) {
		snprintf(err, errlen, "spool lock %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}
