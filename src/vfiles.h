/* vfiles.h — the virtual files at the mount root: what they are called and what they say.
 *
 * config.json    the live routing map (source of the accepted config)
 * spend.json     spend so far, derived from activity records
 * providers.json provider health (circuit breakers, latency, errors)
 * activity.jsonl one line per finished job, read from the state store as it grows
 * status         a short human summary
 * metrics.prom   Prometheus text exposition
 * events         one JSON line per job as it ends, from open onwards (events.h)
 * report.html    a page to look at: spend over time, providers, failures (report.h)
 *
 * Rendering takes a snapshot: a reader sees one consistent version per open. */
#ifndef RF_VFILES_H
#define RF_VFILES_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include "budget.h"
#include "router.h"
#include "store.h"

typedef enum {
    VF_NONE = -1,
    VF_CONFIG = 0,
    VF_SPEND,
    VF_PROVIDERS,
    VF_ACTIVITY,
    VF_STATUS,
    VF_METRICS,
    VF_EVENTS,        /* read as a stream (events.h), never rendered */
    VF_REPORT,
    VF_COUNT
} vfile_id;

void vfiles_init(store *st, rf_breakers *breakers, budget *spend, const char *mountpoint);

vfile_id vfile_lookup(const char *name);   /* VF_NONE when not a virtual file name */
const char *vfile_name(vfile_id id);
/* The size of a virtual file as a reader opening it now would see it: 0, -1 on OOM. */
int vfile_size(vfile_id id, off_t *size);
/* activity.jsonl is read in place (it can be large): bytes copied, or -errno. */
long vfile_read_activity(off_t off, char *buf, size_t size);

/* Render a snapshot; malloc'd, *len set.  NULL on allocation failure. */
char *vfile_render(vfile_id id, size_t *len);

/* A new config is in force: config.json's mtime moves (editors compare it to decide
 * whether the file changed under them, so it must not move otherwise). */
void vfiles_config_applied(void);
/* Modification time of a virtual file. */
struct timespec vfile_mtime(vfile_id id);

/* The config's key warnings (copied), shown in status. */
void vfiles_set_key_warnings(const char *const *warnings, size_t n);
/* The last refused config and why (shown in status); NULL clears it. */
void vfiles_set_config_error(const char *msg);

#endif
