/*
 * fsync_dir.c - make a folder's entries durable (see fsync_dir.h).
 * Owns: nothing beyond the call.  Never: keeps the folder open.
 * Untrusted: none (the path is the caller's).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fsync_dir.h"

int
fsync_dir(const char *path)
{
	int	fd, rc, saved;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}
