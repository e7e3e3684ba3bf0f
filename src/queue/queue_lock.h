/*
 * queue_lock.h - one gateway per spool.  `serve` takes SPOOL/lock
 * (flock(2), exclusive, never waiting) before anything else reads or
 * changes the spool: clean-up of incoming/, journal recovery and the
 * control socket all assume that no other process writes the same
 * folders.  The lock lives as long as the descriptor, which serve keeps
 * open to its exit (across the privilege drop and SIGHUP; close-on-exec,
 * so nothing it starts inherits it); the file says the holder's pid.
 * Owns: SPOOL/lock.
 * Never: removes the file (a process that dies drops the lock with its
 * descriptors, and the next one writes its own pid over the old one).
 * The queue commands (queue_admin.h) work beside a running gateway and
 * never take this lock.
 */
#ifndef MXGATE_QUEUE_LOCK_H
#define MXGATE_QUEUE_LOCK_H

#include <stddef.h>
#include <sys/types.h>

#define QUEUE_LOCK_NAME		"lock"

/*
 * Create the spool folder if missing (nothing in it is touched), then
 * lock SPOOL/lock and write our pid into it.  The descriptor, or -1 with
 * err filled: "spool SPOOL is in use by pid N" when another process holds
 * the lock (*holder = N, or 0 if it could not be read), else the failing
 * call and its error (*holder = 0).
 */
int	queue_lock_take(const char *spool, pid_t *holder, char *err,
	    size_t errlen);

#endif
