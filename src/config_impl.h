/* config_impl.h — what the config_*.c files share; not part of the public API (config.h).
 *
 *   config.c        public entry points, reference counts, freeing, lookups, keys, secrets
 *   config_json.c   the JSON layer: syntax with line/column, keys, typed field getters
 *   config_parse.c  JSON -> rf_config, section by section, and the allowed-field tables
 *   config_check.c  rules that are more than a type or a range (URLs, strings, relations
 *                   between fields), key files and key warnings
 *   config_schema.c the JSON Schema text
 *
 * Every failure is EINVAL with "PATH: message" (cfg_fail_at), or ENOMEM. */
#ifndef RF_CONFIG_IMPL_H
#define RF_CONFIG_IMPL_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "config.h"

#define CONFIG_MAX_BYTES   (1024 * 1024)
#define KEY_FILE_MAX_BYTES (64 * 1024)    /* what config_provider_key reads at most */
#define KEY_LINE_MAX_BYTES 4096           /* what config_check_key_files accepts */
#define PATH_LEN           256            /* a field path in a message; longer ones are cut */

/* ---- errors and paths (config_json.c) ---- */

/* Fail with EINVAL and "PATH: message", or just "message" when path is "" (top level). */
int cfg_fail_at(rf_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cfg_out_of_memory(rf_err *err);
void cfg_path_key(char *dst, const char *parent, const char *key);   /* "parent.key" */
void cfg_path_index(char *dst, const char *parent, size_t i);        /* "parent[i]" */

/* ---- small helpers (config_json.c) ---- */

int cfg_in_list(const char *const *list, const char *s);
int cfg_has_control_chars(const char *s);
int cfg_dup_into(char **dst, const char *src, rf_err *err);          /* NULL stays NULL */
char *cfg_dup_trimmed(const char *s, size_t len);                    /* NULL: out of memory */
int cfg_valid_env_name(const char *s);
/* The whole file (at most max bytes) in a malloc'd NUL-terminated buffer: 0 or an errno
 * value (EFBIG when larger than max). */
int cfg_read_whole_file(const char *path, size_t max, char **out, size_t *out_len);

/* ---- JSON (config_json.c) ---- */

/* Exactly one JSON value filling text[0..len); syntax errors give line and column. */
cJSON *cfg_parse_document(const char *text, size_t len, rf_err *err);
/* Every key of obj in `allowed` (NULL: any) and once; `what` names a key in the duplicate
 * message: "field", "provider", "tier", "model". */
int cfg_check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                   const char *what, rf_err *err);
int cfg_check_no_duplicates_deep(const cJSON *item, const char *path, rf_err *err);
int cfg_check_object(const cJSON *obj, const char *path, const char *const *allowed, rf_err *err);
const cJSON *cfg_field(const cJSON *obj, const char *key);           /* JSON null = absent */

enum { FIELD_REQUIRED = 1, FIELD_NONEMPTY = 2 };
int cfg_get_string(const cJSON *obj, const char *path, const char *key, int flags,
                   const char **out, rf_err *err);
int cfg_int_value(const cJSON *v, const char *path, long min, long max, long *out, rf_err *err);
int cfg_get_int(const cJSON *obj, const char *path, const char *key, long min, long max,
                long dflt, long *out, rf_err *err);
int cfg_get_int_field(const cJSON *obj, const char *path, const char *key, int min, int max,
                      int dflt, int *out, rf_err *err);
int cfg_get_amount(const cJSON *obj, const char *path, const char *key, int flags,
                   double dflt, double *out, rf_err *err);
int cfg_get_bool(const cJSON *obj, const char *path, const char *key, int dflt, int *out,
                 rf_err *err);

/* ---- rules (config_check.c) ---- */

/* providers.NAME.base_url: http(s)://, a host, no credentials. */
int cfg_check_base_url(const char *url, const char *path, rf_err *err);
/* shared.redis: fills s->tls, host, port, db. */
int cfg_parse_redis_url(const char *url, const char *path, rf_shared_cfg *s, rf_err *err);
/* A string sent upstream or used as a key name: no control characters (and, when
 * no_space, no whitespace), at most max_bytes (0: any length). */
int cfg_check_plain_string(const char *s, const char *path, size_t max_bytes, int no_space,
                           rf_err *err);
/* Rules between fields of one tier / provider, once both are read. */
int cfg_check_tier_timeouts(rf_tier *t, const char *path, int first_token_given, int stall_given,
                            rf_err *err);
int cfg_check_provider_free(const rf_provider *p, const char *path, rf_err *err);

/* ---- parsing and freeing (config_parse.c, config.c) ---- */

int cfg_parse_config(const cJSON *doc, rf_config *cfg, rf_err *err);
void config_free(rf_config *cfg);    /* a config in any state of construction */

#endif
