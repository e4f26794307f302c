/* fs.h — the FUSE low-level operations: a thin map from mount paths to the modules.
 *
 * Mount paths: "" (root), "config.json" etc. (vfiles.c), scratch files at the root
 * (store root/), "<tier>" directories, and inside a tier: prompts, tag directories and
 * temp files (store tiers/), and results NAME.out|.meta|.err (jobs.c / store). */
#ifndef RF_FS_H
#define RF_FS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "budget.h"
#include "config.h"
#include "err.h"
#include "store.h"

/* Create the session (not yet mounted).  args: fuse options (e.g. -o, -d). */
struct fuse_session *fs_session_new(struct fuse_args *args, store *st, budget *spend,
                                    rf_err *err);

/* Callback for jobs_init: answer a reader whose job ended. */
void fs_wake_reader(void *req, const char *key, off_t off, size_t size);

/* From now on, woken readers are answered EINTR (the daemon is going away). */
void fs_shutting_down(void);

/* Destroy the session (after unmounting) and free the inode table. */
void fs_session_destroy(void);

/* Make sure every tier of the current config has its directory in the store. */
void fs_sync_tier_dirs(void);

#endif
