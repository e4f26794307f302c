/* config.h — the routing map: parse, validate, serialise.
 *
 * A parsed rf_config is immutable and reference-counted: a job holds the config it
 * started under (config_ref), so an edit applies to new jobs while jobs in flight keep
 * their route.  Validation is complete before a config is returned: a caller that gets
 * a config back can use every field without further checks — with one exception that
 * needs the file system: key files.  config_parse is given the text only, so it checks
 * what the text says; config_check_key_files checks the files the config names.
 * config_load_file runs both.  A caller that parses text itself (liveconf, for a config
 * written through the mount) must call config_check_key_files before it applies the
 * config, and refuse it on failure.
 *
 * Schema (every field, with defaults, is documented in README.md "Config reference";
 * config_schema_json() is the same as a JSON Schema):
 *   { "providers": { NAME: {base_url, api_key_env?, api_key_file?, kind?, rpm?,
 *                           max_concurrent?, timeout_ms?, first_token_timeout_ms?,
 *                           stall_timeout_ms?, stream?, failure_threshold?, cooldown_ms?,
 *                           free?, supported_parameters?} },
 *     "prices":    { MODEL: {prompt, completion, provider?} or an array of them },
 *     "budget":    { daily_usd?, monthly_usd? },
 *     "shared":    { redis, password_env?, prefix?, on_shared_down?, local_share?,
 *                    reservation_ttl_ms?, breaker_sync_ms? },
 *     "activity_days"?, "resend_in_flight"?,
 *     "tiers":     { NAME: {route, provider?, max_tokens?, retries?, timeout_ms?,
 *                           first_token_timeout_ms?, stall_timeout_ms?, concurrency?,
 *                           system_prompt?, on_exhausted?, service_tier?, session_id?,
 *                           ...} } }
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
    char *base_url;          /* no trailing slash; POST base_url + "/chat/completions";
                                never holds credentials (user:pw@ is refused) */
    char *api_key_env;       /* env var holding the key, or NULL */
    char *api_key_file;      /* file holding the key, or NULL (see config_check_key_files) */
    rf_provider_kind kind;   /* "kind": "openrouter" | "openai" (default "openai",
                                but "openrouter" when base_url contains openrouter.ai) */
    int rpm;                 /* requests per minute kept client-side; 0 = unlimited */
    int max_concurrent;      /* requests in flight; 0 = unlimited */
    long timeout_ms;         /* per-attempt timeout cap; 0 = no cap (the tier's applies) */
    long first_token_timeout_ms; /* cap on the tier's first-token timeout; default 0 = no cap */
    long stall_timeout_ms;   /* cap on the tier's stall timeout; default 0 = no cap */
    int stream;              /* "stream": default 1; 0 = send non-streaming requests */
    int failure_threshold;   /* consecutive failures that open a breaker: 1..1000, default 5 */
    long cooldown_ms;        /* breaker cooldown: 100..3600000, default 30000 */
    int is_free;             /* "free": default 0; 1 = every model here costs nothing
                                (refused on kind openrouter) */
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
    long first_token_timeout_ms; /* request sent -> first token; 0 = off; default 30000,
                                    or timeout_ms when that is smaller; never > timeout_ms */
    long stall_timeout_ms;   /* longest gap between chunks; 0 = off; default 15000, or
                                timeout_ms when that is smaller; never > timeout_ms */
    int retry_on_timeout;    /* retry a hop whose attempt timed out; default 0 (next hop) */
    int openrouter_models;   /* send consecutive OpenRouter hops as one request with
                                "models"; default 0 */
    char *service_tier;      /* "service_tier" sent as is ("auto", "flex", ...), or NULL */
    char *session_id;        /* or NULL; <= 256 bytes; "{tag}" in it is replaced by the
                                pipeline tag at send time (stored verbatim here) */
    int openrouter_metadata; /* "openrouter_metadata": default 0 */
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
    double prompt_per_m;     /* USD per million prompt tokens; 0 = free (not unknown) */
    double completion_per_m; /* USD per million completion tokens; 0 = free */
} rf_price;

typedef enum {
    RF_SHARED_DOWN_WAIT = 0, /* Redis unreachable: sends wait until it is back (default) */
    RF_SHARED_DOWN_LOCAL     /* spend at most local_share of each cap locally meanwhile */
} rf_on_shared_down;

/* "shared": budget, limits and breakers shared by every host on the same Redis prefix. */
typedef struct rf_shared_cfg {
    char *redis_url;         /* as written: redis://[HOST][:PORT][/DB] or rediss://...;
                                never holds credentials */
    int tls;                 /* 1 for rediss:// */
    char *host;              /* from the URL; default "127.0.0.1" ([] of IPv6 removed) */
    int port;                /* from the URL; default 6379 */
    int db;                  /* from the URL; default 0 */
    char *password_env;      /* env var holding the Redis password, or NULL (no AUTH) */
    char *prefix;            /* key prefix; default "routefs"; no whitespace or control
                                characters, at most 128 bytes */
    rf_on_shared_down on_shared_down; /* default wait */
    double local_share;      /* 0 < x <= 1; default 0.5 */
    long reservation_ttl_ms; /* 1000..86400000; default 600000 */
    long breaker_sync_ms;    /* 50..60000; default 500 */
} rf_shared_cfg;

typedef struct rf_config {
    rf_provider *providers;  /* in the order listed; providers[0] is the default */
    size_t providers_len;
    rf_tier *tiers;          /* in the order listed */
    size_t tiers_len;
    rf_price *prices;
    size_t prices_len;
    double daily_usd;        /* budget.daily_usd; < 0 = no cap */
    double monthly_usd;      /* budget.monthly_usd; < 0 = no cap */
    int activity_days;       /* "activity_days": lines kept in activity.jsonl, 1..36500,
                                default 90 */
    int resend_in_flight;    /* "resend_in_flight": default 1; 0 = after a crash, jobs that
                                were in flight fail with .err instead of being re-sent */
    rf_shared_cfg *shared;   /* owned; NULL when there is no "shared" section */
    char *source_json;       /* the accepted document, pretty-printed: what config.json reads */
    int refcount;            /* atomic; see config_ref/config_unref */
} rf_config;

/* Parse and validate a whole document.  On success *out holds a config with refcount 1.
 * On failure returns -1 with err->code = EINVAL and a message naming the place,
 * e.g. "line 3, column 14: expected ',' or '}'" or "tiers.fast.route[1]: unknown provider \"x\"".
 * Key files are not looked at: see config_check_key_files. */
int config_parse(const char *text, size_t len, rf_config **out, rf_err *err);

/* Read a file, config_parse it and config_check_key_files the result; errors name the
 * file ("PATH: providers.or.api_key_file /k: not owned by you"). */
int config_load_file(const char *path, rf_config **out, rf_err *err);

/* Check every providers.*.api_key_file: a regular file owned by geteuid(), no permission
 * bits for group or others (mode & 077 == 0), holding one non-empty line (a trailing
 * newline allowed) of at most 4 KiB without control characters.  0, or -1 with EINVAL
 * (ENOMEM) and a message naming the field, the file and the reason, e.g.
 * "providers.or.api_key_file /etc/shadow: not owned by you".  Never puts key text in it. */
int config_check_key_files(const rf_config *cfg, rf_err *err);

/* Problems that do not make the config invalid: an api_key_env (or shared.password_env)
 * that is unset or empty, or that names a variable that is not a secret — one of PATH,
 * HOME, USER, LOGNAME, SHELL, PWD, OLDPWD, LANG, LANGUAGE, TERM, TZ, HOSTNAME, MAIL,
 * EDITOR, VISUAL, DISPLAY, TMPDIR, or LC_*, LD_*, XDG_* — or a name without KEY, TOKEN,
 * SECRET, API, AUTH or PASS in it (case-insensitive).  *warnings = malloc'd array of
 * malloc'd one-line messages (NULL when none), e.g.
 * "providers.or.api_key_env: OPENROUTER_API_KEY is not set: requests to or will fail";
 * returns how many.  Out of memory drops the warnings that did not fit.  Free with
 * config_free_strings. */
size_t config_key_warnings(const rf_config *cfg, char ***warnings);
void config_free_strings(char **list, size_t n);     /* NULL is a no-op */

/* The secrets the config refers to, for redact_set_keys: every provider's API key (from
 * its env var or key file; unreadable ones are skipped) and the Redis password (from
 * shared.password_env), each once.  *out = malloc'd array of malloc'd strings (NULL when
 * none); returns how many (0 with *out = NULL when out of memory).  The values are never
 * logged.  Free with config_free_secrets, which wipes them first. */
size_t config_secrets(const rf_config *cfg, char ***out);
void config_free_secrets(char **secrets, size_t n);  /* NULL is a no-op */

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
 * entry.  NULL when unknown (a price of 0 is known: free). */
const rf_price *config_price(const rf_config *cfg, const char *provider, const char *model);
/* 1 when provider+model costs nothing: the provider is "free", or the price that
 * config_price finds is 0 for both prompt and completion.  0 otherwise (also unknown). */
int config_price_is_free(const rf_config *cfg, const char *provider, const char *model);

/* The API key for a provider, from its env var or key file, trimmed; malloc'd, or NULL when
 * the provider has none configured.  -1 with err when configured but unreadable/empty. */
int config_provider_key(const rf_provider *p, char **key_out, rf_err *err);

/* Do two "shared" sections (NULL = none) say the same?  The section is read at mount:
 * a live edit that changes it is refused (liveconf.c). */
int config_shared_equal(const rf_shared_cfg *a, const rf_shared_cfg *b);

/* config.json as a JSON Schema (draft 2020-12): a static text ending in '\n', what
 * `routefs schema` prints and examples/config.schema.json holds. */
const char *config_schema_json(void);

/* The field names the parser accepts in each kind of object, for tests that hold the
 * schema to the parser.  `object` is one of "" (the top level), "provider", "tier",
 * "hop", "price", "budget", "shared"; returns a NULL-terminated static list, or NULL
 * for any other name.  config_field_objects lists those names (NULL-terminated). */
const char *const *config_fields(const char *object);
extern const char *const config_field_objects[];

#endif
