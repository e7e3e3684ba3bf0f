/*
 * sock_listen.c - a listening socket (see sock_listen.h); the SMTP
 * listeners and the metrics listener open theirs alike.
 * Owns: the fd until it is returned.  Never: accepts, or keeps state.
 * Untrusted: none (the address is the config's).
 */
#include <netinet/in.h>

#include <errno.h>
#include <unistd.h>

#include "sock_listen.h"

int
sock_listen(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int	fd, on = 1, e;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
		    sizeof(on));
	if (bind(fd, sa, len) == -1 || listen(fd, backlog) == -1) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}
