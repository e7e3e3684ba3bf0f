/*
 * sdnotify.h - tell a service manager how the daemon is doing: the
 * sd_notify datagram protocol (a "KEY=VALUE\n..." datagram to the unix
 * socket named by $NOTIFY_SOCKET; '@' first: the abstract namespace).
 * Never: blocks (MSG_DONTWAIT), or fails the caller: no socket, no word.
 */
#ifndef MXGATE_SDNOTIFY_H
#define MXGATE_SDNOTIFY_H

#define SDNOTIFY_STATE_MAX	512	/* bytes of one datagram */

/*
 * Send state ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..." lines)
 * to $NOTIFY_SOCKET.  1 sent, 0 no $NOTIFY_SOCKET, -1 it could not be
 * sent (errno).  RELOADING=1 gets the MONOTONIC_USEC= line newer service
 * managers ask for.
 */
int	sdnotify(const char *state);

#endif
