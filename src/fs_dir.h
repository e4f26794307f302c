/* fs_dir.h — directory listings of the mount, for fs.c's opendir/readdir.
 *
 * A listing shows what is ready: a prompt's NAME.out and NAME.meta (and NAME.err when it
 * failed) appear only once its job has ended, so tar, rsync, grep -r and find never copy
 * half a job; NAME.live is never listed (open it by name).  The small parts of a listing
 * (the root, tag directories, scratch files) are read at opendir; the prompts of a tier
 * are read from the store a page at a time as readdir goes, so a tier with a million
 * prompts costs no memory to list. */
#ifndef RF_FS_DIR_H
#define RF_FS_DIR_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "store.h"

typedef struct dirlist dirlist;

void fs_dir_init(store *st);

/* A listing of the mount directory at path (kind as paths_classify says: root, tier, tag
 * directory, scratch directory).  -errno on failure. */
int fs_dir_open(const char *path, dirlist **out);
void fs_dir_read(fuse_req_t req, dirlist *dl, size_t size, off_t off);
void fs_dir_close(dirlist *dl);
/* Free every listing still open (a lazy unmount never releases them). */
void fs_dir_close_all(void);

#endif
