/* liveconf.h — the live config: validate a new text, persist it, put it in force.
 *
 * One path for every way a config changes: the config.json file in the mount (written,
 * renamed onto, fsync'd by an editor), SIGHUP, and start-up.  A refused config changes
 * nothing: the previous one stays in force and the reason shows in `status` and the log. */
#ifndef RF_LIVECONF_H
#define RF_LIVECONF_H

#include <stddef.h>
#include "err.h"

/* persist_path: the --config file, or STATE/config.json when there is none (absolute). */
void liveconf_init(const char *persist_path);

/* Validate text; when valid, write it atomically to persist_path and apply it.  When
 * invalid, returns -1 with err (EINVAL + the validator's message, prefixed by origin)
 * and records the error for `status`. */
int liveconf_apply_text(const char *text, size_t len, const char *origin, rf_err *err);

/* SIGHUP: re-read persist_path and apply it (no write-back). */
int liveconf_reload(rf_err *err);

#endif
