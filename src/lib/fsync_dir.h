/*
 * fsync_dir.h - make a folder's entries durable: open, fsync, close.
 */
#ifndef MXGATE_FSYNC_DIR_H
#define MXGATE_FSYNC_DIR_H

/* 0, or -1 with errno (of the open or the fsync). */
int	fsync_dir(const char *path);

#endif
