/* config.c — the routing map: parse config.json, validate every field, fill an rf_config.
 *
 * config_parse reads the document with cJSON (syntax errors report line and column), then
 * walks it section by section: providers first (routes and prices refer to them), then
 * prices, budget and tiers.  Every object is checked for unknown and duplicate keys
 * (check_keys) before its fields are read with typed getters that name the failing path,
 * e.g. "tiers.fast.max_tokens: expected a positive integer".  The config is built into a
 * zeroed rf_config and freed whole on the first error, so a caller gets a complete, valid
 * config or none.  Defaults are the TIER_DEFAULT_* values below.
 *
 * Secrets: a config names keys (api_key_env / api_key_file) but never holds one; a literal
 * "api_key" is refused.  config_provider_key reads the key and never puts it in a message. */
#include "config.h"
#include "jsonfmt.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONFIG_MAX_BYTES   (1024 * 1024)
#define KEY_FILE_MAX_BYTES (64 * 1024)
#define TIER_NAME_MAX      64
#define PATH_LEN           256      /* a field path in a message; longer ones are cut */

#define TIER_DEFAULT_MAX_TOKENS         1024
#define TIER_DEFAULT_RETRIES            2
#define TIER_MAX_RETRIES                20
#define TIER_DEFAULT_RETRY_BASE_MS      250
#define TIER_DEFAULT_RETRY_CAP_MS       8000
#define TIER_DEFAULT_RETRY_AFTER_MAX_MS 30000
#define TIER_DEFAULT_TIMEOUT_MS         60000
#define TIER_DEFAULT_CONCURRENCY        16
#define TIER_MAX_CONCURRENCY            10000

static const long default_park_schedule_ms[] = {60000, 300000, 900000};

/* Files at the mount root: a tier directory may not take one of these names. */
static const char *const root_file_names[] = {
    "config.json", "spend.json", "providers.json", "activity.jsonl", "status", "metrics.prom",
    NULL
};

static const char *const top_level_fields[] = {
    "providers", "tiers", "prices", "budget", "$schema", "comment", "_comment", NULL
};
static const char *const provider_fields[] = {
    "base_url", "api_key_env", "api_key_file", "api_key", "kind", "rpm", "max_concurrent",
    "timeout_ms", "supported_parameters", "comment", NULL
};
static const char *const tier_fields[] = {
    "route", "provider", "max_tokens", "retries", "retry_base_ms", "retry_cap_ms",
    "retry_after_max_ms", "timeout_ms", "concurrency", "system_prompt", "on_exhausted",
    "park_schedule_ms", "daily_usd", "require_price", "comment", NULL
};
static const char *const hop_fields[] = {"provider", "model", NULL};
static const char *const price_fields[] = {"prompt", "completion", "provider", "comment", NULL};
static const char *const budget_fields[] = {"daily_usd", "monthly_usd", "comment", NULL};

/* ---- errors and paths ---- */

/* Fail with EINVAL and "PATH: message", or just "message" when path is "" (top level). */
__attribute__((format(printf, 3, 4)))
static int fail_at(rf_err *err, const char *path, const char *fmt, ...)
{
    char msg[sizeof ((rf_err *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path[0] == '\0')
        return rf_err_set(err, EINVAL, "%s", msg);
    return rf_err_set(err, EINVAL, "%s: %s", path, msg);
}

static int out_of_memory(rf_err *err)
{
    return rf_err_set(err, ENOMEM, "out of memory");
}

/* A path cut short by PATH_LEN ends in "...". */
static void mark_if_cut(char *dst, int written)
{
    if (written < 0 || written >= PATH_LEN)
        memcpy(dst + PATH_LEN - 4, "...", 4);
}

/* dst = "parent.key" (or "key" at the top level). */
static void path_key(char *dst, const char *parent, const char *key)
{
    mark_if_cut(dst, snprintf(dst, PATH_LEN, "%s%s%s", parent, parent[0] ? "." : "", key));
}

/* dst = "parent[i]". */
static void path_index(char *dst, const char *parent, size_t i)
{
    mark_if_cut(dst, snprintf(dst, PATH_LEN, "%s[%zu]", parent, i));
}

/* ---- small helpers ---- */

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* *dst = copy of src (NULL stays NULL). */
static int dup_into(char **dst, const char *src, rf_err *err)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : out_of_memory(err);
}

/* A copy of s[0..len) without leading and trailing whitespace, or NULL (out of memory). */
static char *dup_trimmed(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)s[0])) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return strndup(s, len);
}

static int valid_env_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* http:// or https://, something after it, no spaces or control characters. */
static int valid_base_url(const char *url)
{
    size_t scheme;
    if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else
        return 0;
    if (url[scheme] == '\0' || url[scheme] == '/')
        return 0;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* Read a whole file of at most max bytes into a malloc'd NUL-terminated buffer.
 * Returns 0, or an errno value (EFBIG when the file is larger than max). */
static int read_whole_file(const char *path, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    char *buf = malloc(max + 2);
    if (!buf) {
        close(fd);
        return ENOMEM;
    }
    size_t len = 0;
    while (len <= max) {
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > max) {
        free(buf);
        return EFBIG;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* ---- JSON syntax ---- */

/* 1-based line and column (in characters) of byte offset `offset`. */
static void line_column(const char *text, size_t offset, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *column = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            (*column)++;
        }
    }
}

/* Parse exactly one JSON value filling text[0..len) (surrounding whitespace allowed).
 * The position in a syntax error is cJSON's.  cJSON gets a NUL-terminated copy one byte
 * longer, so a document cut short fails just past its end rather than on its last
 * character. */
static cJSON *parse_document(const char *text, size_t len, rf_err *err)
{
    size_t line, column;
    size_t start = 0;
    while (start < len && (unsigned char)text[start] <= ' ' && text[start] != '\0')
        start++;
    if (start == len)
        return fail_at(err, "", "config is empty"), NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul) {   /* cJSON would take it for whitespace */
        line_column(text, (size_t)(nul - text), &line, &column);
        return fail_at(err, "", "line %zu, column %zu: invalid JSON (NUL byte)", line, column),
               NULL;
    }

    char *copy = malloc(len + 1);
    if (!copy)
        return out_of_memory(err), NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
    size_t offset = end ? (size_t)(end - copy) : 0;
    free(copy);
    if (doc) {
        while (offset < len && (unsigned char)text[offset] <= ' ')
            offset++;
        if (offset >= len)
            return doc;
        cJSON_Delete(doc);
    }
    line_column(text, offset < len ? offset : len, &line, &column);
    fail_at(err, "", "line %zu, column %zu: invalid JSON", line, column);
    return NULL;
}

/* ---- structure and typed fields ---- */

/* Every key of obj must be in `allowed` (NULL: any key) and appear once.  `what` names a
 * key in the duplicate message: "field", "provider", "tier", "model". */
static int check_keys(const cJSON *obj, const char *path, const char *const *allowed,
                      const char *what, rf_err *err)
{
    unsigned char *repeated = json_repeated_keys(obj);
    if (!repeated)
        return out_of_memory(err);
    int rc = 0;
    size_t i = 0;
    for (const cJSON *item = obj->child; item && rc == 0; item = item->next, i++) {
        if (repeated[i])
            rc = fail_at(err, path, "duplicate %s \"%s\"", what, item->string);
        else if (allowed && !in_list(allowed, item->string))
            rc = fail_at(err, path, "unknown field \"%s\"", item->string);
    }
    free(repeated);
    return rc;
}

/* The same duplicate check through a whole subtree (objects passed through unvalidated). */
static int check_no_duplicates_deep(const cJSON *item, const char *path, rf_err *err)
{
    if (cJSON_IsObject(item) && check_keys(item, path, NULL, "field", err) < 0)
        return -1;
    size_t i = 0;
    for (const cJSON *child = item->child; child; child = child->next, i++) {
        char child_path[PATH_LEN];
        if (cJSON_IsObject(item))
            path_key(child_path, path, child->string);
        else
            path_index(child_path, path, i);
        if (check_no_duplicates_deep(child, child_path, err) < 0)
            return -1;
    }
    return 0;
}

/* obj[key], with JSON null counted as absent. */
static const cJSON *field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

enum { FIELD_REQUIRED = 1, FIELD_NONEMPTY = 2 };

/* *out = obj[key] (borrowed) or NULL when absent. */
static int get_string(const cJSON *obj, const char *path, const char *key, int flags,
                      const char **out, rf_err *err)
{
    const cJSON *v = field(obj, key);
    *out = NULL;
    if (!v)
        return (flags & FIELD_REQUIRED)
               ? fail_at(err, path, "missing required field \"%s\"", key) : 0;
    char p[PATH_LEN];
    path_key(p, path, key);
    if (!cJSON_IsString(v) || ((flags & FIELD_NONEMPTY) && v->valuestring[0] == '\0'))
        return fail_at(err, p, (flags & FIELD_NONEMPTY) ? "expected a non-empty string"
                                                        : "expected a string");
    *out = v->valuestring;
    return 0;
}

/* An integral number in [min, max] (max is at most INT_MAX). */
static int int_value(const cJSON *v, const char *path, long min, long max, long *out,
                     rf_err *err)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (d == floor(d) && d >= (double)min && d <= (double)max) {
        *out = (long)d;
        return 0;
    }
    if (max == INT_MAX && d == floor(d) && d > (double)max)
        return fail_at(err, path, "too large (at most %d)", INT_MAX);
    if (max == INT_MAX)
        return fail_at(err, path, "expected a %s integer", min > 0 ? "positive" : "non-negative");
    return fail_at(err, path, "expected an integer from %ld to %ld", min, max);
}

static int get_int(const cJSON *obj, const char *path, const char *key, long min, long max,
                   long dflt, long *out, rf_err *err)
{
    const cJSON *v = field(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    char p[PATH_LEN];
    path_key(p, path, key);
    return int_value(v, p, min, max, out, err);
}

/* An int-typed field: get_int through a long. */
static int get_int_field(const cJSON *obj, const char *path, const char *key, int min, int max,
                         int dflt, int *out, rf_err *err)
{
    long v;
    if (get_int(obj, path, key, min, max, dflt, &v, err) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

/* A finite number >= 0 (USD amounts, prices). */
static int get_amount(const cJSON *obj, const char *path, const char *key, int flags,
                      double dflt, double *out, rf_err *err)
{
    const cJSON *v = field(obj, key);
    *out = dflt;
    if (!v)
        return (flags & FIELD_REQUIRED)
               ? fail_at(err, path, "missing required field \"%s\"", key) : 0;
    char p[PATH_LEN];
    path_key(p, path, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
        return fail_at(err, p, "expected a non-negative number");
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *obj, const char *path, const char *key, int dflt, int *out,
                    rf_err *err)
{
    const cJSON *v = field(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        char p[PATH_LEN];
        path_key(p, path, key);
        return fail_at(err, p, "expected true or false");
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An object-valued section/entry: must be an object, keys checked. */
static int check_object(const cJSON *obj, const char *path, const char *const *allowed,
                        rf_err *err)
{
    if (!cJSON_IsObject(obj))
        return fail_at(err, path, "expected an object");
    return check_keys(obj, path, allowed, "field", err);
}

/* ---- freeing ---- */

void config_free_hops(rf_hop *hops, size_t n)
{
    if (!hops)
        return;
    for (size_t i = 0; i < n; i++) {
        free(hops[i].provider);
        free(hops[i].model);
    }
    free(hops);
}

static void free_provider(rf_provider *p)
{
    free(p->name);
    free(p->base_url);
    free(p->api_key_env);
    free(p->api_key_file);
    for (size_t i = 0; i < p->supported_params_len; i++)
        free(p->supported_params[i]);
    free(p->supported_params);
}

static void free_tier(rf_tier *t)
{
    free(t->name);
    config_free_hops(t->route, t->route_len);
    free(t->provider_prefs_json);
    free(t->system_prompt);
    free(t->park_schedule_ms);
}

/* Frees a config in any state of construction (everything starts zeroed). */
static void config_free(rf_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->providers_len; i++)
        free_provider(&cfg->providers[i]);
    free(cfg->providers);
    for (size_t i = 0; i < cfg->tiers_len; i++)
        free_tier(&cfg->tiers[i]);
    free(cfg->tiers);
    for (size_t i = 0; i < cfg->prices_len; i++) {
        free(cfg->prices[i].provider);
        free(cfg->prices[i].model);
    }
    free(cfg->prices);
    free(cfg->source_json);
    free(cfg);
}

/* ---- routes ---- */

static int check_model_name(const char *model, const char *path, rf_err *err)
{
    if (model[0] == '\0')
        return fail_at(err, path, "empty model name");
    if (has_control_chars(model))
        return fail_at(err, path, "model name must not contain control characters");
    return 0;
}

/* Fill hop from a model name on the default provider. */
static int hop_on_default(rf_hop *hop, const char *model, const char *default_provider,
                          const char *path, rf_err *err)
{
    if (check_model_name(model, path, err) < 0)
        return -1;
    if (!default_provider)
        return fail_at(err, path, "no default provider for model \"%s\"", model);
    if (dup_into(&hop->provider, default_provider, err) < 0 || dup_into(&hop->model, model, err) < 0)
        return -1;
    return 0;
}

static int hop_from_object(rf_hop *hop, const cJSON *obj, const char *default_provider,
                           const char *path, rf_err *err)
{
    const char *provider, *model;
    if (check_keys(obj, path, hop_fields, "field", err) < 0 ||
        get_string(obj, path, "provider", FIELD_NONEMPTY, &provider, err) < 0 ||
        get_string(obj, path, "model", FIELD_REQUIRED | FIELD_NONEMPTY, &model, err) < 0)
        return -1;
    char model_path[PATH_LEN];
    path_key(model_path, path, "model");
    if (!provider)
        return hop_on_default(hop, model, default_provider, model_path, err);
    if (check_model_name(model, model_path, err) < 0)
        return -1;
    if (dup_into(&hop->provider, provider, err) < 0 || dup_into(&hop->model, model, err) < 0)
        return -1;
    return 0;
}

/* "a, b,c": each element trimmed; an empty element is an error. */
static int route_from_string(const char *s, const char *default_provider, const char *path,
                             rf_hop *hops, size_t n, rf_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char *model = dup_trimmed(s, len);
        if (!model)
            return out_of_memory(err);
        char hop_path[PATH_LEN];
        path_index(hop_path, path, i);
        int rc = hop_on_default(&hops[i], model, default_provider, hop_path, err);
        free(model);
        if (rc < 0)
            return -1;
        s = comma ? comma + 1 : s + len;
    }
    return 0;
}

static int route_from_array(const cJSON *arr, const char *default_provider, const char *path,
                            rf_hop *hops, rf_err *err)
{
    size_t i = 0;
    for (const cJSON *item = arr->child; item; item = item->next, i++) {
        char hop_path[PATH_LEN];
        path_index(hop_path, path, i);
        int rc;
        if (cJSON_IsString(item))
            rc = hop_on_default(&hops[i], item->valuestring, default_provider, hop_path, err);
        else if (cJSON_IsObject(item))
            rc = hop_from_object(&hops[i], item, default_provider, hop_path, err);
        else
            rc = fail_at(err, hop_path,
                         "expected a model name or an object with \"provider\" and \"model\"");
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* config_parse_route with the route's path for messages ("tiers.x.route"). */
static int parse_route(const cJSON *route, const char *default_provider, const char *path,
                       rf_hop **hops_out, size_t *n_out, rf_err *err)
{
    *hops_out = NULL;
    *n_out = 0;
    size_t n;
    if (cJSON_IsString(route)) {
        const char *s = route->valuestring;
        if (s[strspn(s, " \t\r\n")] == '\0')
            return fail_at(err, path, "empty route");
        n = 1;
        for (; *s; s++)
            n += (*s == ',');
    } else if (cJSON_IsArray(route)) {
        n = (size_t)cJSON_GetArraySize(route);
        if (n == 0)
            return fail_at(err, path, "empty route");
    } else {
        return fail_at(err, path, "expected an array of hops or a comma-separated string");
    }

    rf_hop *hops = calloc(n, sizeof *hops);
    if (!hops)
        return out_of_memory(err);
    int rc = cJSON_IsString(route)
             ? route_from_string(route->valuestring, default_provider, path, hops, n, err)
             : route_from_array(route, default_provider, path, hops, err);
    if (rc < 0) {
        config_free_hops(hops, n);
        return -1;
    }
    *hops_out = hops;
    *n_out = n;
    return 0;
}

int config_parse_route(const void *route_cjson, const char *default_provider,
                       rf_hop **hops, size_t *n, rf_err *err)
{
    return parse_route(route_cjson, default_provider, "route", hops, n, err);
}

/* ---- providers ---- */

static int parse_supported_params(const cJSON *obj, const char *path, rf_provider *p,
                                  rf_err *err)
{
    const cJSON *list = field(obj, "supported_parameters");
    if (!list)
        return 0;
    char list_path[PATH_LEN];
    path_key(list_path, path, "supported_parameters");
    if (!cJSON_IsArray(list))
        return fail_at(err, list_path, "expected an array of strings");
    size_t n = (size_t)cJSON_GetArraySize(list);
    p->supported_params = calloc(n + 1, sizeof *p->supported_params);  /* non-NULL when n = 0 */
    if (!p->supported_params)
        return out_of_memory(err);
    for (const cJSON *item = list->child; item; item = item->next) {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
            char item_path[PATH_LEN];
            path_index(item_path, list_path, p->supported_params_len);
            return fail_at(err, item_path, "expected a non-empty string");
        }
        if (dup_into(&p->supported_params[p->supported_params_len], item->valuestring, err) < 0)
            return -1;
        p->supported_params_len++;
    }
    return 0;
}

static int parse_provider(const cJSON *obj, const char *path, rf_provider *p, rf_err *err)
{
    if (check_object(obj, path, provider_fields, err) < 0)
        return -1;
    if (field(obj, "api_key")) {
        char key_path[PATH_LEN];
        path_key(key_path, path, "api_key");
        return fail_at(err, key_path,
                       "literal API keys are not allowed; use api_key_env or api_key_file");
    }

    const char *base_url, *key_env, *key_file, *kind;
    if (get_string(obj, path, "base_url", FIELD_REQUIRED, &base_url, err) < 0 ||
        get_string(obj, path, "api_key_env", 0, &key_env, err) < 0 ||
        get_string(obj, path, "api_key_file", FIELD_NONEMPTY, &key_file, err) < 0 ||
        get_string(obj, path, "kind", 0, &kind, err) < 0)
        return -1;

    char p_path[PATH_LEN];
    path_key(p_path, path, "base_url");
    if (!valid_base_url(base_url))
        return fail_at(err, p_path, "expected an http:// or https:// URL");
    if (dup_into(&p->base_url, base_url, err) < 0)
        return -1;
    size_t len = strlen(p->base_url);
    while (len > 0 && p->base_url[len - 1] == '/')
        p->base_url[--len] = '\0';

    if (key_env && !valid_env_name(key_env)) {
        path_key(p_path, path, "api_key_env");
        return fail_at(err, p_path, "\"%s\" is not a valid environment variable name", key_env);
    }
    if (key_env && key_file)
        return fail_at(err, path, "use either api_key_env or api_key_file, not both");
    if (dup_into(&p->api_key_env, key_env, err) < 0 ||
        dup_into(&p->api_key_file, key_file, err) < 0)
        return -1;

    if (!kind) {
        p->kind = strstr(base_url, "openrouter.ai") ? RF_KIND_OPENROUTER : RF_KIND_OPENAI;
    } else if (strcmp(kind, "openai") == 0) {
        p->kind = RF_KIND_OPENAI;
    } else if (strcmp(kind, "openrouter") == 0) {
        p->kind = RF_KIND_OPENROUTER;
    } else {
        path_key(p_path, path, "kind");
        return fail_at(err, p_path, "expected \"openai\" or \"openrouter\"");
    }

    if (get_int_field(obj, path, "rpm", 0, INT_MAX, 0, &p->rpm, err) < 0 ||
        get_int_field(obj, path, "max_concurrent", 0, INT_MAX, 0, &p->max_concurrent, err) < 0 ||
        get_int(obj, path, "timeout_ms", 0, INT_MAX, 0, &p->timeout_ms, err) < 0)
        return -1;
    return parse_supported_params(obj, path, p, err);
}

static int parse_providers(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(section) || !section->child)
        return fail_at(err, "providers", "expected a non-empty object");
    if (check_keys(section, "providers", NULL, "provider", err) < 0)
        return -1;
    cfg->providers = calloc((size_t)cJSON_GetArraySize(section), sizeof *cfg->providers);
    if (!cfg->providers)
        return out_of_memory(err);
    for (const cJSON *item = section->child; item; item = item->next) {
        const char *name = item->string;
        if (name[0] == '\0')
            return fail_at(err, "providers", "provider name must not be empty");
        if (has_control_chars(name))
            return fail_at(err, "providers", "provider name must not contain control characters");
        rf_provider *p = &cfg->providers[cfg->providers_len++];
        char path[PATH_LEN];
        path_key(path, "providers", name);
        if (dup_into(&p->name, name, err) < 0 || parse_provider(item, path, p, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- prices ---- */

static int parse_price(const cJSON *obj, const char *path, const char *model, rf_config *cfg,
                       rf_err *err)
{
    const char *provider;
    rf_price *price = &cfg->prices[cfg->prices_len];
    if (check_object(obj, path, price_fields, err) < 0 ||
        get_amount(obj, path, "prompt", FIELD_REQUIRED, 0, &price->prompt_per_m, err) < 0 ||
        get_amount(obj, path, "completion", FIELD_REQUIRED, 0, &price->completion_per_m, err) < 0 ||
        get_string(obj, path, "provider", FIELD_NONEMPTY, &provider, err) < 0)
        return -1;
    if (provider && !config_provider(cfg, provider)) {
        char p[PATH_LEN];
        path_key(p, path, "provider");
        return fail_at(err, p, "unknown provider \"%s\"", provider);
    }
    /* the same model twice for one provider (or twice for any provider) is ambiguous;
     * a model's entries are the last ones added (model keys are unique) */
    for (size_t i = cfg->prices_len; i-- > 0;) {
        const rf_price *other = &cfg->prices[i];
        if (strcmp(other->model, model) != 0)
            break;
        if (!other->provider != !provider || (provider && strcmp(other->provider, provider) != 0))
            continue;
        if (provider)
            return fail_at(err, path, "duplicate price for provider \"%s\"", provider);
        return fail_at(err, path, "duplicate price without \"provider\"");
    }
    cfg->prices_len++;
    if (dup_into(&price->model, model, err) < 0 || dup_into(&price->provider, provider, err) < 0)
        return -1;
    return 0;
}

static int parse_prices(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!section)
        return 0;
    if (!cJSON_IsObject(section))
        return fail_at(err, "prices", "expected an object");
    if (check_keys(section, "prices", NULL, "model", err) < 0)
        return -1;
    size_t n = 0;
    for (const cJSON *item = section->child; item; item = item->next)
        n += cJSON_IsArray(item) ? (size_t)cJSON_GetArraySize(item) : 1;
    cfg->prices = calloc(n ? n : 1, sizeof *cfg->prices);
    if (!cfg->prices)
        return out_of_memory(err);

    for (const cJSON *item = section->child; item; item = item->next) {
        const char *model = item->string;
        char path[PATH_LEN];
        path_key(path, "prices", model);
        if (model[0] == '\0')
            return fail_at(err, "prices", "model name must not be empty");
        if (!cJSON_IsArray(item)) {
            if (parse_price(item, path, model, cfg, err) < 0)
                return -1;
            continue;
        }
        if (!item->child)
            return fail_at(err, path, "expected a price object or a non-empty array of them");
        size_t i = 0;
        for (const cJSON *entry = item->child; entry; entry = entry->next, i++) {
            char entry_path[PATH_LEN];
            path_index(entry_path, path, i);
            if (parse_price(entry, entry_path, model, cfg, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* ---- budget ---- */

static int parse_budget(const cJSON *section, rf_config *cfg, rf_err *err)
{
    cfg->daily_usd = -1;
    cfg->monthly_usd = -1;
    if (!section)
        return 0;
    if (check_object(section, "budget", budget_fields, err) < 0 ||
        get_amount(section, "budget", "daily_usd", 0, -1, &cfg->daily_usd, err) < 0 ||
        get_amount(section, "budget", "monthly_usd", 0, -1, &cfg->monthly_usd, err) < 0)
        return -1;
    return 0;
}

/* ---- tiers ---- */

/* A tier is a directory at the mount root. */
static int check_tier_name(const char *name, rf_err *err)
{
    if (name[0] == '\0')
        return fail_at(err, "tiers", "tier name must not be empty");
    if (strlen(name) > TIER_NAME_MAX)
        return fail_at(err, "tiers", "tier name \"%s\" is too long (at most %d bytes)", name,
                       TIER_NAME_MAX);
    if (has_control_chars(name))
        return fail_at(err, "tiers", "tier name must not contain control characters");
    if (strchr(name, '/'))
        return fail_at(err, "tiers", "tier name \"%s\" must not contain '/'", name);
    if (name[0] == '.')
        return fail_at(err, "tiers", "tier name \"%s\" must not start with '.'", name);
    if (in_list(root_file_names, name))
        return fail_at(err, "tiers", "tier name \"%s\" is taken by a file at the mount root", name);
    return 0;
}

/* The tier's "provider" object: passed through as JSON; two fields are read. */
static int parse_provider_prefs(const cJSON *obj, const char *path, rf_tier *t, rf_err *err)
{
    const cJSON *prefs = field(obj, "provider");
    t->allow_fallbacks = 1;
    t->require_parameters = 0;
    if (!prefs)
        return 0;
    char prefs_path[PATH_LEN];
    path_key(prefs_path, path, "provider");
    if (!cJSON_IsObject(prefs))
        return fail_at(err, prefs_path, "expected an object");
    if (check_no_duplicates_deep(prefs, prefs_path, err) < 0 ||
        get_bool(prefs, prefs_path, "allow_fallbacks", 1, &t->allow_fallbacks, err) < 0 ||
        get_bool(prefs, prefs_path, "require_parameters", 0, &t->require_parameters, err) < 0)
        return -1;
    t->provider_prefs_json = cJSON_PrintUnformatted(prefs);
    return t->provider_prefs_json ? 0 : out_of_memory(err);
}

static int parse_park_schedule(const cJSON *obj, const char *path, rf_tier *t, rf_err *err)
{
    const cJSON *list = field(obj, "park_schedule_ms");
    const size_t default_len = sizeof default_park_schedule_ms / sizeof default_park_schedule_ms[0];
    size_t n = list ? (size_t)cJSON_GetArraySize(list) : default_len;
    char list_path[PATH_LEN];
    path_key(list_path, path, "park_schedule_ms");
    if (list && (!cJSON_IsArray(list) || n == 0))
        return fail_at(err, list_path, "expected a non-empty array of positive integers");
    t->park_schedule_ms = calloc(n, sizeof *t->park_schedule_ms);
    if (!t->park_schedule_ms)
        return out_of_memory(err);
    if (!list) {
        memcpy(t->park_schedule_ms, default_park_schedule_ms, sizeof default_park_schedule_ms);
        t->park_schedule_len = n;
        return 0;
    }
    for (const cJSON *item = list->child; item; item = item->next) {
        char item_path[PATH_LEN];
        path_index(item_path, list_path, t->park_schedule_len);
        if (int_value(item, item_path, 1, INT_MAX, &t->park_schedule_ms[t->park_schedule_len],
                      err) < 0)
            return -1;
        t->park_schedule_len++;
    }
    return 0;
}

static int parse_tier(const cJSON *obj, const char *path, rf_config *cfg, rf_tier *t,
                      rf_err *err)
{
    if (check_object(obj, path, tier_fields, err) < 0)
        return -1;

    const cJSON *route = field(obj, "route");
    if (!route)
        return fail_at(err, path, "missing required field \"route\"");
    char route_path[PATH_LEN];
    path_key(route_path, path, "route");
    if (parse_route(route, cfg->providers[0].name, route_path, &t->route, &t->route_len, err) < 0)
        return -1;
    for (size_t i = 0; i < t->route_len; i++) {
        if (!config_provider(cfg, t->route[i].provider)) {
            char hop_path[PATH_LEN];
            path_index(hop_path, route_path, i);
            return fail_at(err, hop_path, "unknown provider \"%s\"", t->route[i].provider);
        }
    }

    const char *system_prompt, *on_exhausted;
    if (parse_provider_prefs(obj, path, t, err) < 0 ||
        get_int_field(obj, path, "max_tokens", 1, INT_MAX, TIER_DEFAULT_MAX_TOKENS,
                      &t->max_tokens, err) < 0 ||
        get_int_field(obj, path, "retries", 0, TIER_MAX_RETRIES, TIER_DEFAULT_RETRIES,
                      &t->retries, err) < 0 ||
        get_int(obj, path, "retry_base_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_BASE_MS,
                &t->retry_base_ms, err) < 0 ||
        get_int(obj, path, "retry_cap_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_CAP_MS,
                &t->retry_cap_ms, err) < 0 ||
        get_int(obj, path, "retry_after_max_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_AFTER_MAX_MS,
                &t->retry_after_max_ms, err) < 0 ||
        get_int(obj, path, "timeout_ms", 1, INT_MAX, TIER_DEFAULT_TIMEOUT_MS,
                &t->timeout_ms, err) < 0 ||
        get_int_field(obj, path, "concurrency", 1, TIER_MAX_CONCURRENCY,
                      TIER_DEFAULT_CONCURRENCY, &t->concurrency, err) < 0 ||
        get_string(obj, path, "system_prompt", 0, &system_prompt, err) < 0 ||
        get_string(obj, path, "on_exhausted", 0, &on_exhausted, err) < 0 ||
        parse_park_schedule(obj, path, t, err) < 0 ||
        get_amount(obj, path, "daily_usd", 0, -1, &t->daily_usd, err) < 0 ||
        get_bool(obj, path, "require_price", 0, &t->require_price, err) < 0)
        return -1;

    /* an empty system prompt is no system prompt */
    if (system_prompt && system_prompt[0] && dup_into(&t->system_prompt, system_prompt, err) < 0)
        return -1;
    if (!on_exhausted || strcmp(on_exhausted, "fail") == 0) {
        t->on_exhausted = RF_EXHAUSTED_FAIL;
    } else if (strcmp(on_exhausted, "queue") == 0) {
        t->on_exhausted = RF_EXHAUSTED_QUEUE;
    } else {
        char p[PATH_LEN];
        path_key(p, path, "on_exhausted");
        return fail_at(err, p, "expected \"fail\" or \"queue\"");
    }
    return 0;
}

static int parse_tiers(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(section) || !section->child)
        return fail_at(err, "tiers", "expected a non-empty object");
    if (check_keys(section, "tiers", NULL, "tier", err) < 0)
        return -1;
    cfg->tiers = calloc((size_t)cJSON_GetArraySize(section), sizeof *cfg->tiers);
    if (!cfg->tiers)
        return out_of_memory(err);
    for (const cJSON *item = section->child; item; item = item->next) {
        if (check_tier_name(item->string, err) < 0)
            return -1;
        rf_tier *t = &cfg->tiers[cfg->tiers_len++];
        char path[PATH_LEN];
        path_key(path, "tiers", item->string);
        if (dup_into(&t->name, item->string, err) < 0 || parse_tier(item, path, cfg, t, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- the document ---- */

static int parse_config(const cJSON *doc, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(doc))
        return fail_at(err, "", "config must be a JSON object");
    if (check_keys(doc, "", top_level_fields, "field", err) < 0)
        return -1;
    const cJSON *providers = field(doc, "providers");
    const cJSON *tiers = field(doc, "tiers");
    if (!providers)
        return fail_at(err, "", "missing required field \"providers\"");
    if (!tiers)
        return fail_at(err, "", "missing required field \"tiers\"");
    if (parse_providers(providers, cfg, err) < 0 ||
        parse_prices(field(doc, "prices"), cfg, err) < 0 ||
        parse_budget(field(doc, "budget"), cfg, err) < 0 ||
        parse_tiers(tiers, cfg, err) < 0)
        return -1;
    cfg->source_json = json_print_pretty(doc);
    return cfg->source_json ? 0 : out_of_memory(err);
}

int config_parse(const char *text, size_t len, rf_config **out, rf_err *err)
{
    *out = NULL;
    cJSON *doc = parse_document(text, len, err);
    if (!doc)
        return -1;
    rf_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        cJSON_Delete(doc);
        return out_of_memory(err);
    }
    int rc = parse_config(doc, cfg, err);
    cJSON_Delete(doc);
    if (rc < 0) {
        config_free(cfg);
        return -1;
    }
    cfg->refcount = 1;
    *out = cfg;
    return 0;
}

int config_load_file(const char *path, rf_config **out, rf_err *err)
{
    *out = NULL;
    char *text;
    size_t len;
    int e = read_whole_file(path, CONFIG_MAX_BYTES, &text, &len);
    if (e == EFBIG)
        return rf_err_set(err, EINVAL, "%s: config too large (more than %d bytes)", path,
                          CONFIG_MAX_BYTES);
    if (e) {
        char buf[128];
        return rf_err_set(err, e, "cannot read %s: %s", path, strerror_r(e, buf, sizeof buf));
    }
    rf_err parse_err;
    rf_err_clear(&parse_err);
    int rc = config_parse(text, len, out, &parse_err);
    free(text);
    if (rc < 0)
        return rf_err_set(err, parse_err.code, "%s: %s", path, parse_err.msg);
    return 0;
}

/* ---- references and lookups ---- */

rf_config *config_ref(rf_config *cfg)
{
    if (cfg)
        __atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
    return cfg;
}

void config_unref(rf_config *cfg)
{
    if (cfg && __atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

const rf_tier *config_tier(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->tiers_len; i++)
        if (strcmp(cfg->tiers[i].name, name) == 0)
            return &cfg->tiers[i];
    return NULL;
}

const rf_provider *config_provider(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->providers_len; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

const rf_price *config_price(const rf_config *cfg, const char *provider, const char *model)
{
    const rf_price *any_provider = NULL;
    for (size_t i = 0; i < cfg->prices_len; i++) {
        const rf_price *p = &cfg->prices[i];
        if (strcmp(p->model, model) != 0)
            continue;
        if (!p->provider)
            any_provider = p;
        else if (provider && strcmp(p->provider, provider) == 0)
            return p;
    }
    return any_provider;
}

/* ---- API keys ---- */

int config_provider_key(const rf_provider *p, char **key_out, rf_err *err)
{
    *key_out = NULL;
    char *key;
    if (p->api_key_env) {
        const char *value = getenv(p->api_key_env);
        key = dup_trimmed(value ? value : "", value ? strlen(value) : 0);
        if (!key)
            return out_of_memory(err);
        if (key[0] == '\0') {
            free(key);
            return rf_err_set(err, EINVAL, "provider \"%s\": environment variable %s is not set",
                              p->name, p->api_key_env);
        }
    } else if (p->api_key_file) {
        char *text;
        size_t len;
        int e = read_whole_file(p->api_key_file, KEY_FILE_MAX_BYTES, &text, &len);
        if (e) {
            char buf[128];
            return rf_err_set(err, e == EFBIG ? EINVAL : e,
                              "provider \"%s\": cannot read key file %s: %s", p->name,
                              p->api_key_file,
                              e == EFBIG ? "file too large" : strerror_r(e, buf, sizeof buf));
        }
        key = dup_trimmed(text, len);
        free(text);
        if (!key)
            return out_of_memory(err);
        if (key[0] == '\0') {
            free(key);
            return rf_err_set(err, EINVAL, "provider \"%s\": key file %s is empty", p->name,
                              p->api_key_file);
        }
    } else {
        return 0;
    }
    /* a key goes into an HTTP header: a line break in it would inject another header */
    if (has_control_chars(key)) {
        free(key);
        return rf_err_set(err, EINVAL, "provider \"%s\": API key contains control characters",
                          p->name);
    }
    *key_out = key;
    return 0;
}
