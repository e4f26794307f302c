/* fs.h — the FUSE low-level operations: a thin map from mount paths to the modules.
 *
 * Mount paths (paths.h): "" the root, config.json etc. (vfiles.c, liveconf.c), "<tier>"
 * directories; inside a tier prompts and tag directories (prompts.c), their results
 * NAME.out|.meta|.err|.live (results.c); and scratch space — editor temporaries, dot
 * files and dot directories — kept as plain files (scratch.c). */
#ifndef RF_FS_H
#define RF_FS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "err.h"
#include "store.h"

/* Create the session (not yet mounted).  args: fuse options (e.g. -o, -d). */
struct fuse_session *fs_session_new(struct fuse_args *args, store *st, rf_err *err);

/* Destroy the session (after unmounting) and free what a lazy unmount left open. */
void fs_session_destroy(void);

#endif
