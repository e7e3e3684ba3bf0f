/*
 * sock_listen.h - a non-blocking TCP listening socket on one address.
 */
#ifndef MXGATE_SOCK_LISTEN_H
#define MXGATE_SOCK_LISTEN_H

#include <sys/socket.h>

/*
 * socket, SO_REUSEADDR, IPV6_V6ONLY for an IPv6 address (so [::] and
 * 0.0.0.0 can both be listened on), bind, listen(backlog).  The fd
 * (non-blocking, close-on-exec), or -1 with errno of the call that failed.
 */
int	sock_listen(const struct sockaddr *sa, socklen_t len, int backlog);

#endif
