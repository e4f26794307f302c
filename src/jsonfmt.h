/* jsonfmt.h — JSON helpers shared by the modules: printing JSON as people read it, and
 * finding repeated keys (which cJSON keeps silently).
 *
 * Every JSON file routefs shows (config.json, NAME.meta, spend.json, providers.json) is
 * printed the way jq prints: two-space indent, "key": value, with short arrays of scalars
 * kept on one line.  config.json in particular is edited with sed, so its layout must be
 * the predictable one people expect. */
#ifndef RF_JSONFMT_H
#define RF_JSONFMT_H

#include <cjson/cJSON.h>

#include "strbuf.h"

/* malloc'd text without a trailing newline; NULL on allocation failure. */
char *json_print_pretty(const cJSON *doc);
/* The same appended to b, for a value that sits depth levels deep in a pretty document
 * (its inner lines are indented to match; json_print_pretty is depth 0). */
void json_put_pretty(strbuf *b, const cJSON *item, int depth);

/* The document as one file's worth of text ending in '\n': pretty (json_print_pretty) or
 * compact (one line, for .jsonl).  malloc'd; NULL on allocation failure. */
char *json_print_line(const cJSON *doc, int pretty);

/* flags[i] = 1 when obj's i-th key repeats an earlier one; malloc'd (NULL when out of
 * memory).  Sorting keeps this O(n log n): a 1 MiB document can hold ~100k keys in one
 * object, and comparing each key with every earlier one took tens of seconds. */
unsigned char *json_repeated_keys(const cJSON *obj);

/* 1 when text parses as JSON (0 also when out of memory). */
int json_parses(const char *text);

#endif
