/* jsonfmt.h — JSON as people read it.
 *
 * Every JSON file routefs shows (config.json, NAME.meta, spend.json, providers.json) is
 * printed the way jq prints: two-space indent, "key": value, with short arrays of scalars
 * kept on one line.  config.json in particular is edited with sed, so its layout must be
 * the predictable one people expect. */
#ifndef RF_JSONFMT_H
#define RF_JSONFMT_H

#include <cjson/cJSON.h>

/* malloc'd text without a trailing newline; NULL on allocation failure. */
char *json_print_pretty(const cJSON *doc);

#endif
