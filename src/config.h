/* config.h — the routing map: parse, validate, serialise.
 *
 * A parsed rf_config is immutable and reference-counted: a job holds the config it
 * started under (config_ref), so an edit applies to new jobs while jobs in flight keep
 * their route.  Validation is complete before a config is returned: a caller that gets
 * a config back can use every field without further checks.
 *
 * Schema (every field, with defaults, is documented in README.md "Config reference"):
 *   { "providers": { NAME: {base_url, api_key_env?, api_key_file?, kind?, rpm?,
 *                           max_concurrent?, timeout_ms?, supported_parameters?} },
 *     "prices":    { MODEL: {prompt, completion, provider?} or an array of them },
 *     "budget":    { daily_usd?, monthly_usd? },
 *     "tiers":     { NAME: {route, provider?, max_tokens?, retries?, timeout_ms?,
 *                           concurrency?, system_prompt?, on_exhausted?, ...} } }
 */
#ifndef RF_CONFIG_H
#define RF_CONFIG_H

#include <stddef.h>
#include "err.h"

typedef enum {
    RF_KIND_OPENAI = 0,     /* any OpenAI-compatible endpoint */
    RF_KIND_OPENROUTER      /* OpenRouter: provider prefs passed through, usage.cost read */
} rf_provider_kind;

typedef struct rf_provider {
    char *name;
    char *base_url;          /* no trailing slash; POST base_url + "/chat/completions" */
    char *api_key_env;       /* env var holding the key, or NULL */
    char *api_key_file;      /* file holding the key, or NULL */
    rf_provider_kind kind;   /* "kind": "openrouter" | "openai" (default "openai",
                                but "openrouter" when base_url contains openrouter.ai) */
    int rpm;                 /* requests per minute kept client-side; 0 = unlimited */
    int max_concurrent;      /* requests in flight; 0 = unlimited */
    long timeout_ms;         /* per-attempt timeout; 0 = use the tier's */
    char **supported_params; /* "supported_parameters": NULL = unknown (everything) */
    size_t supported_params_len;
} rf_provider;

typedef struct rf_hop {
    char *provider;          /* always set: the default (first listed) provider if omitted */
    char *model;             /* may contain ':' and '/' */
} rf_hop;

typedef enum {
    RF_EXHAUSTED_FAIL = 0,   /* write .err at once */
    RF_EXHAUSTED_QUEUE       /* park the job and retry the route later */
} rf_on_exhausted;

typedef struct rf_tier {
    char *name;              /* a valid directory name */
    rf_hop *route;           /* at least one hop */
    size_t route_len;
    char *provider_prefs_json; /* the tier's "provider" object, compact JSON, or NULL */
    int allow_fallbacks;     /* provider.allow_fallbacks; default 1 */
    int require_parameters;  /* provider.require_parameters; default 0 */
    int max_tokens;          /* default 1024; caps a request's own max_tokens */
    int retries;             /* extra attempts per hop on transient errors; default 2 */
    long retry_base_ms;      /* backoff base; default 250 */
    long retry_cap_ms;       /* backoff cap; default 8000 */
    long retry_after_max_ms; /* longest Retry-After honoured; default 30000 */
    long timeout_ms;         /* per attempt; default 60000 */
    int concurrency;         /* jobs in flight for the tier; default 16 */
    char *system_prompt;     /* or NULL */
    rf_on_exhausted on_exhausted; /* default fail */
    long *park_schedule_ms;  /* delays between whole-route retries when parked;
                                default 60000, 300000, 900000 */
    size_t park_schedule_len;
    double daily_usd;        /* per-tier daily cap; < 0 = none */
    int require_price;       /* "require_price": skip hops with no known price; default 0 */
} rf_tier;

typedef struct rf_price {
    char *provider;          /* NULL = any provider */
    char *model;
    double prompt_per_m;     /* USD per million prompt tokens */
    double completion_per_m; /* USD per million completion tokens */
} rf_price;

typedef struct rf_config {
    rf_provider *providers;  /* in the order listed; providers[0] is the default */
    size_t providers_len;
    rf_tier *tiers;          /* in the order listed */
    size_t tiers_len;
    rf_price *prices;
    size_t prices_len;
    double daily_usd;        /* budget.daily_usd; < 0 = no cap */
    double monthly_usd;      /* budget.monthly_usd; < 0 = no cap */
    char *source_json;       /* the accepted document, pretty-printed: what config.json reads */
    int refcount;            /* atomic; see config_ref/config_unref */
} rf_config;

/* Parse and validate a whole document.  On success *out holds a config with refcount 1.
 * On failure returns -1 with err->code = EINVAL and a message naming the place,
 * e.g. "line 3, column 14: expected ',' or '}'" or "tiers.fast.route[1]: unknown provider \"x\"". */
int config_parse(const char *text, size_t len, rf_config **out, rf_err *err);

/* Read a file and config_parse it; errors name the file. */
int config_load_file(const char *path, rf_config **out, rf_err *err);

/* Parse one route: a JSON array of hops (strings or {"provider","model"} objects) or a
 * comma-separated string.  Plain strings use default_provider.  Unknown providers are
 * not checked here (config_parse does).  On success *hops is a malloc'd array of n hops,
 * free with config_free_hops. */
int config_parse_route(const void *route_cjson, const char *default_provider,
                       rf_hop **hops, size_t *n, rf_err *err);
void config_free_hops(rf_hop *hops, size_t n);

rf_config *config_ref(rf_config *cfg);
void config_unref(rf_config *cfg);          /* frees at zero; NULL is a no-op */

const rf_tier *config_tier(const rf_config *cfg, const char *name);          /* NULL if none */
const rf_provider *config_provider(const rf_config *cfg, const char *name);  /* NULL if none */
/* The price for provider+model: an entry naming the provider wins over a model-only
 * entry.  NULL when unknown. */
const rf_price *config_price(const rf_config *cfg, const char *provider, const char *model);

/* The API key for a provider, from its env var or key file, trimmed; malloc'd, or NULL when
 * the provider has none configured.  -1 with err when configured but unreadable/empty. */
int config_provider_key(const rf_provider *p, char **key_out, rf_err *err);

#endif
