/*
 * journal.h - the spool's write-ahead journal (SPOOL/journal): what makes
 * a committed message durable.  A commit appends the image of its queue
 * file (every byte up to END) to the current segment; one fdatasync of the
 * segment covers every image appended before it began (group commit), and
 * only then may the message be acknowledged.  The queue file itself is
 * written but not synced: after a crash, journal_open() puts back every
 * file whose image is in the journal and that is missing or differs.
 * Owns: SPOOL/journal, its segments (NNNNNNNNNNNNNNNN.seg) and tombstones
 * (QID.del), the entry format, checkpoints.
 * Never: parses queue records (an image is opaque bytes here), delivers,
 * or removes a queue file.
 * Untrusted: every byte of a segment at start (bounded, checksummed).
 */
#ifndef MXGATE_JOURNAL_H
#define MXGATE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../lib/ids.h"

#define JOURNAL_DIR		"journal"
#define JOURNAL_HDRLEN		40
#define JOURNAL_T_MSG		'M'	/* a queue file's image */
#define JOURNAL_T_GONE		'G'	/* that message left the queue */
#define JOURNAL_LEN_MAX		((uint64_t)1 << 40)	/* one image, at most */

struct journal;

/* What journal_open() found and did. */
struct journal_recovery {
	uint64_t	segments;	/* read */
	uint64_t	images;		/* live images in them */
	uint64_t	kept;		/* their queue file was whole */
	uint64_t	restored;	/* written back from the image */
	uint64_t	skipped;	/* tombstoned by an operator */
	uint64_t	torn;		/* segments that ended in a torn entry */
};

/* Is this whole queue file readable (image plus what was appended)? */
typedef bool	journal_check_fn(const uint8_t *file, size_t len);

/*
 * Open SPOOL/journal (created if missing).  First recovery: every live
 * image is checked against SPOOL/queue/QID and written back when that file
 * is missing, differs, or has bytes after the image that check (if not
 * NULL) refuses (through incoming/, then renamed); then the queue files
 * are synced (syncfs) with their folder, and the old segments and
 * tombstones removed.  NULL with err filled on failure.
 */
struct journal	*journal_open(const char *spool, journal_check_fn *check,
		    struct journal_recovery *, char *err, size_t errlen);
void		 journal_close(struct journal *);

/*
 * Append the image of qid's queue file: len bytes, from mem, or (mem
 * NULL) read from fd at offset 0.  *pos is what journal_sync() needs.
 * 0, or an errno.  Thread-safe.
 */
int		 journal_put(struct journal *, const char *qid, const void *mem,
		    int fd, uint64_t len, uint64_t *pos);
/*
 * Return once an fdatasync covering pos has finished: 0, or the errno of
 * that sync (then the message is not durable).  Callers on many threads
 * share syncs.  Old segments are rotated, checkpointed and removed here.
 */
int		 journal_sync(struct journal *, uint64_t pos);
/* qid left the queue (delivered, bounced, or never acknowledged). */
void		 journal_gone(struct journal *, const char *qid);

struct journal_stats {
	uint64_t	syncs;		/* fdatasyncs of a segment */
	uint64_t	sync_calls;	/* journal_sync() calls they covered */
	uint64_t	sync_us;	/* time in them */
	uint64_t	checkpoints;	/* messages synced to free a segment */
	uint64_t	segments;	/* on disk now */
	uint64_t	live;		/* images not yet gone */
};
void		 journal_stats(struct journal *, struct journal_stats *);

/*
 * For an operator's command beside a running gateway: SPOOL/journal/
 * QID.del, durable, so that recovery does not bring back a message that
 * was deleted or put on hold.  0, or -1 with errno.
 */
int		 journal_tombstone(const char *spool, const char *qid);

/*
 * One entry at p[*off..n): 1 and *off advanced past it, or 0 at the end
 * or at a torn or corrupt entry (nothing after it is trusted).  Pure; the
 * fuzz target drives it.
 */
struct journal_ent {
	int		 type;
	char		 qid[ID_STRLEN + 1];
	const uint8_t	*data;
	uint64_t	 len;
};
int		 journal_parse(const uint8_t *p, size_t n, size_t *off,
		    struct journal_ent *);
/* The header of an entry (for journal_put and tests). */
void		 journal_header(uint8_t hdr[JOURNAL_HDRLEN], int type,
		    const char *qid, uint64_t len, uint32_t crc);
uint32_t	 journal_crc(uint32_t crc, const void *, size_t);

#endif
