/* kcache.h — telling the kernel to forget what it cached when routefs itself changes a
 * file: a job's results appear or change, a config edit adds or removes a tier.
 *
 * fuse_lowlevel_notify_inval_inode can block on the kernel's page locks, which a read in
 * progress may hold while it waits for us (and inval_entry on the root cannot be sent
 * from inside a rename of config.json, which holds the root's lock); so notices go
 * through a queue to a thread of their own and never block a FUSE worker or the job
 * machinery.  Best effort: attributes of results time out at once anyway. */
#ifndef RF_KCACHE_H
#define RF_KCACHE_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include "config.h"
#include "err.h"

int kcache_start(struct fuse_session *se, rf_err *err);
/* Drop what is queued and join the thread. */
void kcache_stop(void);

/* The results of prompt key (NAME.out/.meta/.err) changed: a jobs_changed_fn. */
void kcache_results_changed(const char *key);

/* The tiers changed from old to new config (either may be NULL): forget the cached root
 * entries of every tier name in either. */
void kcache_tiers_changed(const rf_config *old, const rf_config *new_cfg);

#endif
