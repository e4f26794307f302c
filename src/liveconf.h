/* liveconf.h — the live config: validate a new text, persist it, put it in force.
 *
 * One path for every way a config changes: the config.json file in the mount (written,
 * renamed onto, fsync'd by an editor), SIGHUP, and start-up.  A refused config changes
 * nothing: the previous one stays in force and the reason shows in `status` and the log. */
#ifndef RF_LIVECONF_H
#define RF_LIVECONF_H

#include <stddef.h>
#include <sys/types.h>
#include "config.h"
#include "err.h"

/* persist_path: the --config file, or STATE/config.json when there is none (absolute). */
void liveconf_init(const char *persist_path);
/* Put the config the daemon starts with in force (its secrets redacted everywhere, its key
 * warnings logged and shown in status). */
void liveconf_start(rf_config *cfg);

/* Validate text; when valid, write it atomically to persist_path and apply it.  When
 * invalid, returns -1 with err (EINVAL + the validator's message, prefixed by origin)
 * and records the error for `status`. */
int liveconf_apply_text(const char *text, size_t len, const char *origin, rf_err *err);

/* SIGHUP: re-read persist_path and apply it (no write-back). */
int liveconf_reload(rf_err *err);

/* An edit session of M/config.json: the bytes one writer puts, judged when it flushes,
 * fsyncs or closes.  Sessions are independent: each commit applies (or refuses) its own
 * whole text. */
typedef struct liveconf_edit liveconf_edit;

#define LIVECONF_MAX (1024 * 1024)   /* a config larger than this is refused (EFBIG) */

/* Start from initial (copied; NULL/0 for an empty, truncated file).  NULL when out of
 * memory.  changed: the session starts as a change (a truncation or a create) that must
 * be judged even if nothing is written. */
liveconf_edit *liveconf_edit_begin(const char *initial, size_t len, int changed);
/* 0, -EFBIG past LIVECONF_MAX, -ENOMEM. */
int liveconf_edit_write(liveconf_edit *e, const char *buf, size_t size, off_t off);
int liveconf_edit_truncate(liveconf_edit *e, off_t size);
/* The text so far (not NUL-terminated). */
const char *liveconf_edit_text(const liveconf_edit *e, size_t *len);
/* Judge the text if it changed since the last commit: 0 applied (or nothing to do),
 * -EINVAL refused (the previous config stays; the reason is in status and the log). */
int liveconf_edit_commit(liveconf_edit *e);
void liveconf_edit_free(liveconf_edit *e);

#endif
