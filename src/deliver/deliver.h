/*
 * deliver.h - delivery agents: take one recipient of a committed queue
 * file to its next hop.  Each agent blocks, so it runs on a job thread
 * (job.h), never on the loop.  Owns: the agents' protocols.  Never: marks
 * a recipient done or removes queue files (the scheduler does, after 0).
 */
#ifndef MXGATE_DELIVER_H
#define MXGATE_DELIVER_H

#include <stddef.h>

#include "../queue/queue.h"

#define DELIVER_MAILDIR_NAME_MAX	255	/* a folder or file name */

/*
 * Deliver recipient rcpt_index of qf into ROOT/<domain>/<mailbox>/ (lower-
 * cased) by the Maildir protocol: tmp/, fsync, link into new/, fsync new/.
 * mailbox is the folder the directory resolved the recipient to ("alice"
 * for alice+news@ when only alice exists); NULL or "": the recipient's
 * own local part.  The file name is derived from the queue id and
 * index, so delivering again after a crash finds the first copy (in new/
 * or cur/) and does nothing.  0 (delivered, now or before), or -1 with err
 * filled.
 */
int	deliver_maildir(const char *maildir_root, const char *mailbox,
	    const char *hostname, const struct queue_file *qf,
	    size_t rcpt_index, char *err, size_t errlen);

#endif
