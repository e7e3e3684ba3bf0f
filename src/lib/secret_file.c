/*
 * secret_file.c - read a file of secrets (see secret_file.h).
 * Owns: the checks before a secret is read.  Never: parses it.
 * Untrusted: the file's kind, mode and size, checked on the open fd.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "secret_file.h"

char *
secret_file_read(const char *path, size_t max, const char *key,
    const char *noun, size_t *len, char *why, size_t whylen)
{
	struct stat	 st;
	char		*text = NULL;
	ssize_t		 r = -1;
	int		 fd;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		snprintf(why, whylen, "%s: cannot open: %s", key,
		    strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode))
		snprintf(why, whylen, "%s: not a regular file", key);
	else if (st.st_mode & 077)
		snprintf(why, whylen, "%s: mode %04o lets group or others at "
		    "the %s; chmod 600 it", key, (unsigned)(st.st_mode & 07777),
		    noun);
	else if ((size_t)st.st_size > max)
		snprintf(why, whylen, "%s: larger than %zu bytes", key, max);
	else if ((text = malloc((size_t)st.st_size + 1)) == NULL)
		snprintf(why, whylen, "out of memory");
	else if ((r = read(fd, text, (size_t)st.st_size)) < 0)
		snprintf(why, whylen, "%s: cannot read: %s", key,
		    strerror(errno));
	close(fd);
	if (r < 0) {
		free(text);
		return NULL;
	}
	text[r] = '\0';
	*len = (size_t)r;
	return text;
}
