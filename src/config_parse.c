/* config_parse.c — JSON -> rf_config: config.json section by section.
 *
 * Providers come first (routes and prices refer to them), then prices, budget, shared,
 * the top-level scalars and tiers.  Every object is checked for unknown and duplicate
 * keys (cfg_check_keys, against the field tables below) before its fields are read with the
 * typed getters of config_json.c; rules beyond a type or a range are in config_check.c.
 * The config is built into a zeroed rf_config that the caller frees whole on the first
 * error, so a caller gets a complete, valid config or none.
 *
 * Secrets: a config names keys (api_key_env / api_key_file) but never holds one; a literal
 * "api_key" is refused, and so are credentials inside base_url or shared.redis. */
#include "config_impl.h"
#include "jsonfmt.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define TIER_NAME_MAX      64

#define TIER_DEFAULT_MAX_TOKENS         1024
#define TIER_DEFAULT_RETRIES            2
#define TIER_MAX_RETRIES                20
#define TIER_DEFAULT_RETRY_BASE_MS      250
#define TIER_DEFAULT_RETRY_CAP_MS       8000
#define TIER_DEFAULT_RETRY_AFTER_MAX_MS 30000
#define TIER_DEFAULT_TIMEOUT_MS         60000
#define TIER_DEFAULT_FIRST_TOKEN_MS     30000
#define TIER_DEFAULT_STALL_MS           15000
#define TIER_DEFAULT_CONCURRENCY        16
#define TIER_MAX_CONCURRENCY            10000
#define TIER_SESSION_ID_MAX             256

#define PROVIDER_DEFAULT_FAILURE_THRESHOLD 5
#define PROVIDER_MAX_FAILURE_THRESHOLD     1000
#define PROVIDER_DEFAULT_COOLDOWN_MS       30000
#define PROVIDER_MIN_COOLDOWN_MS           100
#define PROVIDER_MAX_COOLDOWN_MS           3600000

#define DEFAULT_ACTIVITY_DAYS 90
#define MAX_ACTIVITY_DAYS     36500

#define SHARED_DEFAULT_PREFIX          "routefs"
#define SHARED_PREFIX_MAX              128
#define SHARED_DEFAULT_LOCAL_SHARE     0.5
#define SHARED_DEFAULT_RESERVATION_TTL 600000
#define SHARED_MIN_RESERVATION_TTL     1000
#define SHARED_MAX_RESERVATION_TTL     86400000
#define SHARED_DEFAULT_BREAKER_SYNC    500
#define SHARED_MIN_BREAKER_SYNC        50
#define SHARED_MAX_BREAKER_SYNC        60000

static const long default_park_schedule_ms[] = {60000, 300000, 900000};

/* Files at the mount root: a tier directory may not take one of these names. */
static const char *const root_file_names[] = {
    "config.json", "spend.json", "providers.json", "activity.jsonl", "status", "metrics.prom",
    NULL
};

/* The fields each kind of object accepts (config_fields exposes them, and the schema test
 * holds config_schema_json to them).  "api_key" is accepted only to be refused by name. */
static const char *const top_level_fields[] = {
    "providers", "tiers", "prices", "budget", "shared", "activity_days", "resend_in_flight",
    "$schema", "comment", "_comment", NULL
};
static const char *const provider_fields[] = {
    "base_url", "api_key_env", "api_key_file", "api_key", "kind", "rpm", "max_concurrent",
    "timeout_ms", "first_token_timeout_ms", "stall_timeout_ms", "stream", "failure_threshold",
    "cooldown_ms", "free", "supported_parameters", "comment", NULL
};
static const char *const tier_fields[] = {
    "route", "provider", "max_tokens", "retries", "retry_base_ms", "retry_cap_ms",
    "retry_after_max_ms", "timeout_ms", "first_token_timeout_ms", "stall_timeout_ms",
    "retry_on_timeout", "openrouter_models", "service_tier", "session_id",
    "openrouter_metadata", "concurrency", "system_prompt", "on_exhausted",
    "park_schedule_ms", "daily_usd", "require_price", "comment", NULL
};
static const char *const hop_fields[] = {"provider", "model", NULL};
static const char *const price_fields[] = {"prompt", "completion", "provider", "comment", NULL};
static const char *const budget_fields[] = {"daily_usd", "monthly_usd", "comment", NULL};
static const char *const shared_fields[] = {
    "redis", "password_env", "prefix", "on_shared_down", "local_share", "reservation_ttl_ms",
    "breaker_sync_ms", "comment", NULL
};

const char *const config_field_objects[] = {
    "", "provider", "tier", "hop", "price", "budget", "shared", NULL
};

const char *const *config_fields(const char *object)
{
    static const char *const *const tables[] = {
        top_level_fields, provider_fields, tier_fields, hop_fields, price_fields,
        budget_fields, shared_fields
    };
    for (size_t i = 0; config_field_objects[i]; i++)
        if (object && strcmp(object, config_field_objects[i]) == 0)
            return tables[i];
    return NULL;
}

/* ---- routes ---- */

static int check_model_name(const char *model, const char *path, rf_err *err)
{
    if (model[0] == '\0')
        return cfg_fail_at(err, path, "empty model name");
    if (cfg_has_control_chars(model))
        return cfg_fail_at(err, path, "model name must not contain control characters");
    return 0;
}

/* Fill hop from a model name on the default provider. */
static int hop_on_default(rf_hop *hop, const char *model, const char *default_provider,
                          const char *path, rf_err *err)
{
    if (check_model_name(model, path, err) < 0)
        return -1;
    if (!default_provider)
        return cfg_fail_at(err, path, "no default provider for model \"%s\"", model);
    if (cfg_dup_into(&hop->provider, default_provider, err) < 0 ||
        cfg_dup_into(&hop->model, model, err) < 0)
        return -1;
    return 0;
}

static int hop_from_object(rf_hop *hop, const cJSON *obj, const char *default_provider,
                           const char *path, rf_err *err)
{
    const char *provider, *model;
    if (cfg_check_keys(obj, path, hop_fields, "field", err) < 0 ||
        cfg_get_string(obj, path, "provider", FIELD_NONEMPTY, &provider, err) < 0 ||
        cfg_get_string(obj, path, "model", FIELD_REQUIRED | FIELD_NONEMPTY, &model, err) < 0)
        return -1;
    char model_path[PATH_LEN];
    cfg_path_key(model_path, path, "model");
    if (!provider)
        return hop_on_default(hop, model, default_provider, model_path, err);
    if (check_model_name(model, model_path, err) < 0)
        return -1;
    if (cfg_dup_into(&hop->provider, provider, err) < 0 ||
        cfg_dup_into(&hop->model, model, err) < 0)
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
        char *model = cfg_dup_trimmed(s, len);
        if (!model)
            return cfg_out_of_memory(err);
        char hop_path[PATH_LEN];
        cfg_path_index(hop_path, path, i);
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
        cfg_path_index(hop_path, path, i);
        int rc;
        if (cJSON_IsString(item))
            rc = hop_on_default(&hops[i], item->valuestring, default_provider, hop_path, err);
        else if (cJSON_IsObject(item))
            rc = hop_from_object(&hops[i], item, default_provider, hop_path, err);
        else
            rc = cfg_fail_at(err, hop_path,
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
            return cfg_fail_at(err, path, "empty route");
        n = 1;
        for (; *s; s++)
            n += (*s == ',');
    } else if (cJSON_IsArray(route)) {
        n = (size_t)cJSON_GetArraySize(route);
        if (n == 0)
            return cfg_fail_at(err, path, "empty route");
    } else {
        return cfg_fail_at(err, path, "expected an array of hops or a comma-separated string");
    }

    rf_hop *hops = calloc(n, sizeof *hops);
    if (!hops)
        return cfg_out_of_memory(err);
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
    const cJSON *list = cfg_field(obj, "supported_parameters");
    if (!list)
        return 0;
    char list_path[PATH_LEN];
    cfg_path_key(list_path, path, "supported_parameters");
    if (!cJSON_IsArray(list))
        return cfg_fail_at(err, list_path, "expected an array of strings");
    size_t n = (size_t)cJSON_GetArraySize(list);
    p->supported_params = calloc(n + 1, sizeof *p->supported_params);  /* non-NULL when n = 0 */
    if (!p->supported_params)
        return cfg_out_of_memory(err);
    for (const cJSON *item = list->child; item; item = item->next) {
        if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
            char item_path[PATH_LEN];
            cfg_path_index(item_path, list_path, p->supported_params_len);
            return cfg_fail_at(err, item_path, "expected a non-empty string");
        }
        if (cfg_dup_into(&p->supported_params[p->supported_params_len], item->valuestring, err) < 0)
            return -1;
        p->supported_params_len++;
    }
    return 0;
}

static int parse_provider(const cJSON *obj, const char *path, rf_provider *p, rf_err *err)
{
    if (cfg_check_object(obj, path, provider_fields, err) < 0)
        return -1;
    if (cfg_field(obj, "api_key")) {
        char key_path[PATH_LEN];
        cfg_path_key(key_path, path, "api_key");
        return cfg_fail_at(err, key_path,
                           "literal API keys are not allowed; use api_key_env or api_key_file");
    }

    const char *base_url, *key_env, *key_file, *kind;
    if (cfg_get_string(obj, path, "base_url", FIELD_REQUIRED, &base_url, err) < 0 ||
        cfg_get_string(obj, path, "api_key_env", 0, &key_env, err) < 0 ||
        cfg_get_string(obj, path, "api_key_file", FIELD_NONEMPTY, &key_file, err) < 0 ||
        cfg_get_string(obj, path, "kind", 0, &kind, err) < 0)
        return -1;

    char p_path[PATH_LEN];
    cfg_path_key(p_path, path, "base_url");
    if (cfg_check_base_url(base_url, p_path, err) < 0)
        return -1;
    if (cfg_dup_into(&p->base_url, base_url, err) < 0)
        return -1;
    size_t len = strlen(p->base_url);
    while (len > 0 && p->base_url[len - 1] == '/')
        p->base_url[--len] = '\0';

    if (key_env && !cfg_valid_env_name(key_env)) {
        cfg_path_key(p_path, path, "api_key_env");
        return cfg_fail_at(err, p_path, "\"%s\" is not a valid environment variable name", key_env);
    }
    if (key_env && key_file)
        return cfg_fail_at(err, path, "use either api_key_env or api_key_file, not both");
    if (cfg_dup_into(&p->api_key_env, key_env, err) < 0 ||
        cfg_dup_into(&p->api_key_file, key_file, err) < 0)
        return -1;

    if (!kind) {
        p->kind = strstr(base_url, "openrouter.ai") ? RF_KIND_OPENROUTER : RF_KIND_OPENAI;
    } else if (strcmp(kind, "openai") == 0) {
        p->kind = RF_KIND_OPENAI;
    } else if (strcmp(kind, "openrouter") == 0) {
        p->kind = RF_KIND_OPENROUTER;
    } else {
        cfg_path_key(p_path, path, "kind");
        return cfg_fail_at(err, p_path, "expected \"openai\" or \"openrouter\"");
    }

    if (cfg_get_int_field(obj, path, "rpm", 0, INT_MAX, 0, &p->rpm, err) < 0 ||
        cfg_get_int_field(obj, path, "max_concurrent", 0, INT_MAX, 0, &p->max_concurrent,
                          err) < 0 ||
        cfg_get_int(obj, path, "timeout_ms", 0, INT_MAX, 0, &p->timeout_ms, err) < 0 ||
        cfg_get_int(obj, path, "first_token_timeout_ms", 0, INT_MAX, 0, &p->first_token_timeout_ms,
                    err) < 0 ||
        cfg_get_int(obj, path, "stall_timeout_ms", 0, INT_MAX, 0, &p->stall_timeout_ms, err) < 0 ||
        cfg_get_bool(obj, path, "stream", 1, &p->stream, err) < 0 ||
        cfg_get_int_field(obj, path, "failure_threshold", 1, PROVIDER_MAX_FAILURE_THRESHOLD,
                          PROVIDER_DEFAULT_FAILURE_THRESHOLD, &p->failure_threshold, err) < 0 ||
        cfg_get_int(obj, path, "cooldown_ms", PROVIDER_MIN_COOLDOWN_MS, PROVIDER_MAX_COOLDOWN_MS,
                    PROVIDER_DEFAULT_COOLDOWN_MS, &p->cooldown_ms, err) < 0 ||
        cfg_get_bool(obj, path, "free", 0, &p->is_free, err) < 0 ||
        cfg_check_provider_free(p, path, err) < 0)
        return -1;
    return parse_supported_params(obj, path, p, err);
}

static int parse_providers(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(section) || !section->child)
        return cfg_fail_at(err, "providers", "expected a non-empty object");
    if (cfg_check_keys(section, "providers", NULL, "provider", err) < 0)
        return -1;
    cfg->providers = calloc((size_t)cJSON_GetArraySize(section), sizeof *cfg->providers);
    if (!cfg->providers)
        return cfg_out_of_memory(err);
    for (const cJSON *item = section->child; item; item = item->next) {
        const char *name = item->string;
        if (name[0] == '\0')
            return cfg_fail_at(err, "providers", "provider name must not be empty");
        if (cfg_has_control_chars(name))
            return cfg_fail_at(err, "providers",
                               "provider name must not contain control characters");
        rf_provider *p = &cfg->providers[cfg->providers_len++];
        char path[PATH_LEN];
        cfg_path_key(path, "providers", name);
        if (cfg_dup_into(&p->name, name, err) < 0 || parse_provider(item, path, p, err) < 0)
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
    if (cfg_check_object(obj, path, price_fields, err) < 0 ||
        cfg_get_amount(obj, path, "prompt", FIELD_REQUIRED, 0, &price->prompt_per_m, err) < 0 ||
        cfg_get_amount(obj, path, "completion", FIELD_REQUIRED, 0, &price->completion_per_m,
                       err) < 0 ||
        cfg_get_string(obj, path, "provider", FIELD_NONEMPTY, &provider, err) < 0)
        return -1;
    if (provider && !config_provider(cfg, provider)) {
        char p[PATH_LEN];
        cfg_path_key(p, path, "provider");
        return cfg_fail_at(err, p, "unknown provider \"%s\"", provider);
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
            return cfg_fail_at(err, path, "duplicate price for provider \"%s\"", provider);
        return cfg_fail_at(err, path, "duplicate price without \"provider\"");
    }
    cfg->prices_len++;
    if (cfg_dup_into(&price->model, model, err) < 0 ||
        cfg_dup_into(&price->provider, provider, err) < 0)
        return -1;
    return 0;
}

static int parse_prices(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!section)
        return 0;
    if (!cJSON_IsObject(section))
        return cfg_fail_at(err, "prices", "expected an object");
    if (cfg_check_keys(section, "prices", NULL, "model", err) < 0)
        return -1;
    size_t n = 0;
    for (const cJSON *item = section->child; item; item = item->next)
        n += cJSON_IsArray(item) ? (size_t)cJSON_GetArraySize(item) : 1;
    cfg->prices = calloc(n ? n : 1, sizeof *cfg->prices);
    if (!cfg->prices)
        return cfg_out_of_memory(err);

    for (const cJSON *item = section->child; item; item = item->next) {
        const char *model = item->string;
        char path[PATH_LEN];
        cfg_path_key(path, "prices", model);
        if (model[0] == '\0')
            return cfg_fail_at(err, "prices", "model name must not be empty");
        if (!cJSON_IsArray(item)) {
            if (parse_price(item, path, model, cfg, err) < 0)
                return -1;
            continue;
        }
        if (!item->child)
            return cfg_fail_at(err, path, "expected a price object or a non-empty array of them");
        size_t i = 0;
        for (const cJSON *entry = item->child; entry; entry = entry->next, i++) {
            char entry_path[PATH_LEN];
            cfg_path_index(entry_path, path, i);
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
    if (cfg_check_object(section, "budget", budget_fields, err) < 0 ||
        cfg_get_amount(section, "budget", "daily_usd", 0, -1, &cfg->daily_usd, err) < 0 ||
        cfg_get_amount(section, "budget", "monthly_usd", 0, -1, &cfg->monthly_usd, err) < 0)
        return -1;
    return 0;
}

/* ---- tiers ---- */

/* A tier is a directory at the mount root. */
static int check_tier_name(const char *name, rf_err *err)
{
    if (name[0] == '\0')
        return cfg_fail_at(err, "tiers", "tier name must not be empty");
    if (strlen(name) > TIER_NAME_MAX)
        return cfg_fail_at(err, "tiers", "tier name \"%s\" is too long (at most %d bytes)", name,
                           TIER_NAME_MAX);
    if (cfg_has_control_chars(name))
        return cfg_fail_at(err, "tiers", "tier name must not contain control characters");
    if (strchr(name, '/'))
        return cfg_fail_at(err, "tiers", "tier name \"%s\" must not contain '/'", name);
    if (name[0] == '.')
        return cfg_fail_at(err, "tiers", "tier name \"%s\" must not start with '.'", name);
    if (cfg_in_list(root_file_names, name))
        return cfg_fail_at(err, "tiers", "tier name \"%s\" is taken by a file at the mount root",
                           name);
    return 0;
}

/* The tier's "provider" object: passed through as JSON; two fields are read. */
static int parse_provider_prefs(const cJSON *obj, const char *path, rf_tier *t, rf_err *err)
{
    const cJSON *prefs = cfg_field(obj, "provider");
    t->allow_fallbacks = 1;
    t->require_parameters = 0;
    if (!prefs)
        return 0;
    char prefs_path[PATH_LEN];
    cfg_path_key(prefs_path, path, "provider");
    if (!cJSON_IsObject(prefs))
        return cfg_fail_at(err, prefs_path, "expected an object");
    if (cfg_check_no_duplicates_deep(prefs, prefs_path, err) < 0 ||
        cfg_get_bool(prefs, prefs_path, "allow_fallbacks", 1, &t->allow_fallbacks, err) < 0 ||
        cfg_get_bool(prefs, prefs_path, "require_parameters", 0, &t->require_parameters, err) < 0)
        return -1;
    t->provider_prefs_json = cJSON_PrintUnformatted(prefs);
    return t->provider_prefs_json ? 0 : cfg_out_of_memory(err);
}

static int parse_park_schedule(const cJSON *obj, const char *path, rf_tier *t, rf_err *err)
{
    const cJSON *list = cfg_field(obj, "park_schedule_ms");
    const size_t default_len = sizeof default_park_schedule_ms / sizeof default_park_schedule_ms[0];
    size_t n = list ? (size_t)cJSON_GetArraySize(list) : default_len;
    char list_path[PATH_LEN];
    cfg_path_key(list_path, path, "park_schedule_ms");
    if (list && (!cJSON_IsArray(list) || n == 0))
        return cfg_fail_at(err, list_path, "expected a non-empty array of positive integers");
    t->park_schedule_ms = calloc(n, sizeof *t->park_schedule_ms);
    if (!t->park_schedule_ms)
        return cfg_out_of_memory(err);
    if (!list) {
        memcpy(t->park_schedule_ms, default_park_schedule_ms, sizeof default_park_schedule_ms);
        t->park_schedule_len = n;
        return 0;
    }
    for (const cJSON *item = list->child; item; item = item->next) {
        char item_path[PATH_LEN];
        cfg_path_index(item_path, list_path, t->park_schedule_len);
        if (cfg_int_value(item, item_path, 1, INT_MAX, &t->park_schedule_ms[t->park_schedule_len],
                          err) < 0)
            return -1;
        t->park_schedule_len++;
    }
    return 0;
}

/* The streaming timeouts.  A default larger than the tier's timeout_ms is lowered to it;
 * a value given explicitly must fit (check_tier_timeouts). */
static int parse_tier_timeouts(const cJSON *obj, const char *path, rf_tier *t, rf_err *err)
{
    if (cfg_get_int(obj, path, "first_token_timeout_ms", 0, INT_MAX, TIER_DEFAULT_FIRST_TOKEN_MS,
                    &t->first_token_timeout_ms, err) < 0 ||
        cfg_get_int(obj, path, "stall_timeout_ms", 0, INT_MAX, TIER_DEFAULT_STALL_MS,
                    &t->stall_timeout_ms, err) < 0 ||
        cfg_get_bool(obj, path, "retry_on_timeout", 0, &t->retry_on_timeout, err) < 0)
        return -1;
    return cfg_check_tier_timeouts(t, path, cfg_field(obj, "first_token_timeout_ms") != NULL,
                                   cfg_field(obj, "stall_timeout_ms") != NULL, err);
}

/* What a tier adds to its requests: service_tier, session_id, OpenRouter's extras. */
static int parse_tier_request_extras(const cJSON *obj, const char *path, rf_tier *t,
                                     rf_err *err)
{
    const char *service_tier, *session_id;
    char p[PATH_LEN];
    if (cfg_get_bool(obj, path, "openrouter_models", 0, &t->openrouter_models, err) < 0 ||
        cfg_get_bool(obj, path, "openrouter_metadata", 0, &t->openrouter_metadata, err) < 0 ||
        cfg_get_string(obj, path, "service_tier", FIELD_NONEMPTY, &service_tier, err) < 0 ||
        cfg_get_string(obj, path, "session_id", FIELD_NONEMPTY, &session_id, err) < 0)
        return -1;
    if (service_tier) {
        cfg_path_key(p, path, "service_tier");
        if (cfg_check_plain_string(service_tier, p, 0, 0, err) < 0 ||
            cfg_dup_into(&t->service_tier, service_tier, err) < 0)
            return -1;
    }
    if (session_id) {
        cfg_path_key(p, path, "session_id");
        if (cfg_check_plain_string(session_id, p, TIER_SESSION_ID_MAX, 0, err) < 0 ||
            cfg_dup_into(&t->session_id, session_id, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_tier(const cJSON *obj, const char *path, rf_config *cfg, rf_tier *t,
                      rf_err *err)
{
    if (cfg_check_object(obj, path, tier_fields, err) < 0)
        return -1;

    const cJSON *route = cfg_field(obj, "route");
    if (!route)
        return cfg_fail_at(err, path, "missing required field \"route\"");
    char route_path[PATH_LEN];
    cfg_path_key(route_path, path, "route");
    if (parse_route(route, cfg->providers[0].name, route_path, &t->route, &t->route_len, err) < 0)
        return -1;
    for (size_t i = 0; i < t->route_len; i++) {
        if (!config_provider(cfg, t->route[i].provider)) {
            char hop_path[PATH_LEN];
            cfg_path_index(hop_path, route_path, i);
            return cfg_fail_at(err, hop_path, "unknown provider \"%s\"", t->route[i].provider);
        }
    }

    const char *system_prompt, *on_exhausted;
    if (parse_provider_prefs(obj, path, t, err) < 0 ||
        cfg_get_int_field(obj, path, "max_tokens", 1, INT_MAX, TIER_DEFAULT_MAX_TOKENS,
                          &t->max_tokens, err) < 0 ||
        cfg_get_int_field(obj, path, "retries", 0, TIER_MAX_RETRIES, TIER_DEFAULT_RETRIES,
                          &t->retries, err) < 0 ||
        cfg_get_int(obj, path, "retry_base_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_BASE_MS,
                    &t->retry_base_ms, err) < 0 ||
        cfg_get_int(obj, path, "retry_cap_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_CAP_MS,
                    &t->retry_cap_ms, err) < 0 ||
        cfg_get_int(obj, path, "retry_after_max_ms", 0, INT_MAX, TIER_DEFAULT_RETRY_AFTER_MAX_MS,
                    &t->retry_after_max_ms, err) < 0 ||
        cfg_get_int(obj, path, "timeout_ms", 1, INT_MAX, TIER_DEFAULT_TIMEOUT_MS,
                    &t->timeout_ms, err) < 0 ||
        cfg_get_int_field(obj, path, "concurrency", 1, TIER_MAX_CONCURRENCY,
                          TIER_DEFAULT_CONCURRENCY, &t->concurrency, err) < 0 ||
        cfg_get_string(obj, path, "system_prompt", 0, &system_prompt, err) < 0 ||
        cfg_get_string(obj, path, "on_exhausted", 0, &on_exhausted, err) < 0 ||
        parse_park_schedule(obj, path, t, err) < 0 ||
        cfg_get_amount(obj, path, "daily_usd", 0, -1, &t->daily_usd, err) < 0 ||
        cfg_get_bool(obj, path, "require_price", 0, &t->require_price, err) < 0 ||
        parse_tier_timeouts(obj, path, t, err) < 0 ||
        parse_tier_request_extras(obj, path, t, err) < 0)
        return -1;

    /* an empty system prompt is no system prompt */
    if (system_prompt && system_prompt[0] &&
        cfg_dup_into(&t->system_prompt, system_prompt, err) < 0)
        return -1;
    if (!on_exhausted || strcmp(on_exhausted, "fail") == 0) {
        t->on_exhausted = RF_EXHAUSTED_FAIL;
    } else if (strcmp(on_exhausted, "queue") == 0) {
        t->on_exhausted = RF_EXHAUSTED_QUEUE;
    } else {
        char p[PATH_LEN];
        cfg_path_key(p, path, "on_exhausted");
        return cfg_fail_at(err, p, "expected \"fail\" or \"queue\"");
    }
    return 0;
}

static int parse_tiers(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(section) || !section->child)
        return cfg_fail_at(err, "tiers", "expected a non-empty object");
    if (cfg_check_keys(section, "tiers", NULL, "tier", err) < 0)
        return -1;
    cfg->tiers = calloc((size_t)cJSON_GetArraySize(section), sizeof *cfg->tiers);
    if (!cfg->tiers)
        return cfg_out_of_memory(err);
    for (const cJSON *item = section->child; item; item = item->next) {
        if (check_tier_name(item->string, err) < 0)
            return -1;
        rf_tier *t = &cfg->tiers[cfg->tiers_len++];
        char path[PATH_LEN];
        cfg_path_key(path, "tiers", item->string);
        if (cfg_dup_into(&t->name, item->string, err) < 0 ||
            parse_tier(item, path, cfg, t, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- shared state ---- */

static int parse_shared(const cJSON *section, rf_config *cfg, rf_err *err)
{
    if (!section)
        return 0;
    if (cfg_check_object(section, "shared", shared_fields, err) < 0)
        return -1;
    rf_shared_cfg *s = calloc(1, sizeof *s);
    if (!s)
        return cfg_out_of_memory(err);
    cfg->shared = s;

    const char *redis, *password_env, *prefix, *on_down;
    if (cfg_get_string(section, "shared", "redis", FIELD_REQUIRED | FIELD_NONEMPTY, &redis,
                       err) < 0 ||
        cfg_get_string(section, "shared", "password_env", 0, &password_env, err) < 0 ||
        cfg_get_string(section, "shared", "prefix", FIELD_NONEMPTY, &prefix, err) < 0 ||
        cfg_get_string(section, "shared", "on_shared_down", 0, &on_down, err) < 0)
        return -1;
    if (cfg_parse_redis_url(redis, "shared.redis", s, err) < 0 ||
        cfg_dup_into(&s->redis_url, redis, err) < 0)
        return -1;
    if (password_env && !cfg_valid_env_name(password_env))
        return cfg_fail_at(err, "shared.password_env",
                           "\"%s\" is not a valid environment variable name", password_env);
    if (cfg_dup_into(&s->password_env, password_env, err) < 0)
        return -1;
    if (prefix && cfg_check_plain_string(prefix, "shared.prefix", SHARED_PREFIX_MAX, 1, err) < 0)
        return -1;
    if (cfg_dup_into(&s->prefix, prefix ? prefix : SHARED_DEFAULT_PREFIX, err) < 0)
        return -1;
    if (!on_down || strcmp(on_down, "wait") == 0)
        s->on_shared_down = RF_SHARED_DOWN_WAIT;
    else if (strcmp(on_down, "local") == 0)
        s->on_shared_down = RF_SHARED_DOWN_LOCAL;
    else
        return cfg_fail_at(err, "shared.on_shared_down", "expected \"wait\" or \"local\"");

    const cJSON *share = cfg_field(section, "local_share");
    s->local_share = share && cJSON_IsNumber(share) ? share->valuedouble
                                                    : SHARED_DEFAULT_LOCAL_SHARE;
    if (share && !(cJSON_IsNumber(share) && s->local_share > 0 && s->local_share <= 1))
        return cfg_fail_at(err, "shared.local_share",
                           "expected a number greater than 0 and at most 1");
    if (cfg_get_int(section, "shared", "reservation_ttl_ms", SHARED_MIN_RESERVATION_TTL,
                    SHARED_MAX_RESERVATION_TTL, SHARED_DEFAULT_RESERVATION_TTL,
                    &s->reservation_ttl_ms, err) < 0 ||
        cfg_get_int(section, "shared", "breaker_sync_ms", SHARED_MIN_BREAKER_SYNC,
                    SHARED_MAX_BREAKER_SYNC, SHARED_DEFAULT_BREAKER_SYNC, &s->breaker_sync_ms,
                    err) < 0)
        return -1;
    return 0;
}

/* ---- the document ---- */

int cfg_parse_config(const cJSON *doc, rf_config *cfg, rf_err *err)
{
    if (!cJSON_IsObject(doc))
        return cfg_fail_at(err, "", "config must be a JSON object");
    if (cfg_check_keys(doc, "", top_level_fields, "field", err) < 0)
        return -1;
    const cJSON *providers = cfg_field(doc, "providers");
    const cJSON *tiers = cfg_field(doc, "tiers");
    if (!providers)
        return cfg_fail_at(err, "", "missing required field \"providers\"");
    if (!tiers)
        return cfg_fail_at(err, "", "missing required field \"tiers\"");
    if (parse_providers(providers, cfg, err) < 0 ||
        parse_prices(cfg_field(doc, "prices"), cfg, err) < 0 ||
        parse_budget(cfg_field(doc, "budget"), cfg, err) < 0 ||
        parse_shared(cfg_field(doc, "shared"), cfg, err) < 0 ||
        cfg_get_int_field(doc, "", "activity_days", 1, MAX_ACTIVITY_DAYS, DEFAULT_ACTIVITY_DAYS,
                          &cfg->activity_days, err) < 0 ||
        cfg_get_bool(doc, "", "resend_in_flight", 1, &cfg->resend_in_flight, err) < 0 ||
        parse_tiers(tiers, cfg, err) < 0)
        return -1;
    cfg->source_json = json_print_pretty(doc);
    return cfg->source_json ? 0 : cfg_out_of_memory(err);
}

