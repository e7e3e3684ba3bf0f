/*
 * sdnotify.c - the sd_notify datagram (see sdnotify.h), without
 * libsystemd: one socket, one sendto, closed again.
 * Never: keeps a socket or state between calls.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sdnotify.h"

int
sdnotify(const char *state)
{
	struct sockaddr_un	 sun;
	struct timespec		 ts;
	const char		*path = getenv("NOTIFY_SOCKET");
	char			 msg[SDNOTIFY_STATE_MAX + 64];
	size_t			 plen, mlen;
	ssize_t			 n;
	int			 fd, e;

	if (path == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)
	    || strlen(state) > SDNOTIFY_STATE_MAX) {
		errno = EINVAL;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';	/* abstract: no NUL at the end */
	mlen = (size_t)snprintf(msg, sizeof(msg), "%s", state);
	if (strstr(state, "RELOADING=1") != NULL &&
	    clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
		mlen += (size_t)snprintf(msg + mlen, sizeof(msg) - mlen,
		    "\nMONOTONIC_USEC=%llu", (unsigned long long)ts.tv_sec *
		    1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	n = sendto(fd, msg, mlen, MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&sun, (socklen_t)(offsetof(struct sockaddr_un,
	    sun_path) + plen + (path[0] == '/')));
	e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)mlen ? 1 : -1;
}
