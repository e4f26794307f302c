/* openrouter.h — what OpenRouter itself knows, fetched once, in one place.
 *
 * For every OpenRouter-kind provider of the config in force (rf_provider.kind ==
 * RF_KIND_OPENROUTER), one background thread ("rfs-openrouter", its own blocking libcurl
 * easy handle; no other thread ever waits on these fetches) keeps:
 *   - the published prices: GET {base_url}/models at start, every 24 h and on demand,
 *     handed to prices_set_published (prices.h keeps them in the state store);
 *   - the key's real limits: GET {base_url}/key at start, every 5 minutes and on demand
 *     (or_key_refresh, after a 402/403), kept in memory (or_key_snapshot, or_key_json)
 *     and in the store as the named value "openrouter.key.<provider>";
 *   - per-hop truth: GET {base_url}/generation?id=ID for each or_enrich, retried while
 *     OpenRouter has no record yet, then merged into the finished job's meta as its
 *     "openrouter" object (sp_meta_merge, store_prompts.h).
 *
 * The parsers are pure functions (openrouter_parse.c: no I/O, no globals), fuzzed by
 * tests/fuzz/fuzz_openrouter.c.  A failed or nonsense fetch changes nothing and is logged
 * once (until a fetch of the same kind works again).  The API key is only ever in the
 * request's header list; bodies go through redact_inplace before they are parsed or
 * logged, and the key's "label" (a shortened copy of the key) is never kept.
 *
 * Threads: every or_* function of the second half may be called from any thread and
 * returns at once (a mutex held for list operations only, never across a fetch or a
 * store call).  Lock order: the module's lock is a leaf; current_config() is called
 * without it. */
#ifndef RF_OPENROUTER_H
#define RF_OPENROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "prices.h"

/* ---------------------------------------------------------------- parsers (pure) */

/* Published prices above these are nonsense (the priciest models listed in 2026 cost a
 * few hundred USD per million tokens): a list holding one is refused whole. */
#define OR_PRICE_MAX_PER_M 10000.0     /* USD per million prompt or completion tokens */
#define OR_REQUEST_PRICE_MAX 100.0     /* USD per request */
#define OR_MODEL_ID_MAX 256            /* bytes; a longer id is skipped */

typedef struct or_models {
    published_price *rows;   /* owned array; each rows[i].model is owned too */
    size_t n;
    size_t skipped;          /* entries left out: no usable id, no prompt/completion price,
                                OpenRouter's "-1" (price decided per request, e.g.
                                openrouter/auto), or a repeated id (the first one wins) */
} or_models;

/* A /models body: {"data": [{"id", "pricing": {"prompt", "completion", "request"?}}...]}
 * with prices as decimal strings (or numbers) of USD per token / per request, converted
 * to USD per million tokens without rounding noise ("0.000003" -> 3).  0 with *out
 * filled (free with or_models_free), or -1 with err (EINVAL, one line, e.g.
 * "data[3] (a/b): pricing.prompt \"-2\" is negative") and *out zeroed when the body is
 * not such a document, a price is negative (other than -1), not finite, not a number,
 * above the bounds, or no model has a price at all (an empty list would wipe them). */
int or_parse_models(const char *body, size_t len, or_models *out, rf_err *err);
void or_models_free(or_models *m);

#define OR_KEY_EXTRA_MAX 2048

/* GET /key's data.  Amounts in USD. */
typedef struct or_key_info {
    int has_limit;           /* 0: "limit" null = no limit on the key */
    double limit;
    int has_limit_remaining; /* 0: null (no limit) */
    double limit_remaining;  /* a negative value (over the limit) is kept as 0 */
    char limit_reset[16];    /* "daily", "weekly", "monthly", or "" (never resets) */
    double usage;            /* all time */
    double usage_daily, usage_weekly, usage_monthly;   /* -1 when absent */
    int is_free_tier;        /* 0/1, -1 when absent */
    char extra_json[OR_KEY_EXTRA_MAX]; /* every other field that is a number, a boolean or
                                a flat object of numbers / booleans / short strings (e.g.
                                byok_usage, rate_limit, per-scope budgets such as
                                free_model_daily_requests), as one compact JSON object; ""
                                when none.  Fields that do not fit are left out. */
    int64_t fetched_ms;      /* wall clock of the fetch; 0 = not set by the parser */
} or_key_info;

/* A /key body {"data": {...}}: 0 with *out, or -1 with err (EINVAL) and *out zeroed when
 * it is not one, "usage" is not a number, "limit" is neither a number nor null, or an
 * amount is not finite or beyond 1e12 USD. */
int or_parse_key(const char *body, size_t len, or_key_info *out, rf_err *err);
/* The key info as one compact JSON object, what spend.json and the store show:
 * {"limit", "limit_remaining", "limit_reset", "usage", "usage_daily", "usage_weekly",
 *  "usage_monthly", "is_free_tier", ...extra fields, "fetched_at" (ISO 8601 UTC),
 *  "fetched_ms"} (null for what is unknown).  malloc'd; NULL when out of memory. */
char *or_key_info_json(const or_key_info *k);
/* Read back what or_key_info_json wrote (the stored value): 0, or -1 with err. */
int or_key_info_from_json(const char *text, size_t len, or_key_info *out, rf_err *err);

#define OR_PROVIDER_RESPONSES_MAX 64
#define OR_STRING_MAX 256

/* GET /generation's data, sanitised for the meta. */
typedef struct or_generation {
    char *json;              /* owned: a compact JSON object with OpenRouter's own names:
                                id, upstream_id, model, provider_name, provider_responses
                                [{provider_name, model_permaslug, endpoint_id, status,
                                latency, is_byok}], total_cost, cache_discount,
                                upstream_inference_cost, usage, tokens_prompt,
                                tokens_completion, native_tokens_prompt,
                                native_tokens_completion, native_tokens_reasoning,
                                native_tokens_cached, native_tokens_completion_images,
                                num_media_prompt, num_media_completion, num_search_results,
                                finish_reason, native_finish_reason, service_tier, latency,
                                moderation_latency, generation_time, created_at, router,
                                api_type, streamed, cancelled, is_byok — those present with
                                the right type (null kept); strings valid UTF-8 without
                                control characters, at most OR_STRING_MAX bytes; numbers
                                finite and >= 0 */
    char provider_name[OR_STRING_MAX + 1];   /* "" when absent */
    int has_total_cost;
    double total_cost;       /* USD */
    long latency_ms, generation_time_ms;     /* -1 when absent */
    long native_tokens_prompt, native_tokens_completion;   /* -1 when absent */
    size_t n_provider_responses;
} or_generation;

/* A /generation body {"data": {...}}: 0 with *out (free with or_generation_free), or -1
 * with err (EINVAL) and *out zeroed when it is not one or, with expected_id set, its
 * data.id is another generation's. */
int or_parse_generation(const char *body, size_t len, const char *expected_id,
                        or_generation *out, rf_err *err);
void or_generation_free(or_generation *g);

/* ---------------------------------------------------------------- the thread */

typedef struct store store;
typedef struct rf_config rf_config;

/* Start the thread.  current_config returns a new reference to the config in force
 * (config_unref'd after use) or NULL; it is called from the thread, without this module's
 * lock.  Known key limits are read back from st first (status works offline); the
 * published prices are prices.c's (prices_init before this).  0, or -1 with err. */
int or_start(store *st, rf_config *(*current_config)(void), rf_err *err);
/* Stop: a fetch in progress is aborted (within about a second), pending lookups are
 * forgotten (freed), the thread joined.  Safe to call when not started, and twice.  Call
 * it before prices_shutdown and store_close (the thread writes to both). */
void or_stop(void);

/* The config changed: re-scan providers; new OpenRouter providers get their key (and
 * the prices) fetched at once; removed ones stop being fetched and shown. */
void or_config_changed(void);

/* Fetch the prices now (on demand). */
void or_prices_refresh(void);
/* Fetch provider's key limits now (after a 402/403).  Requests within 5 s of the last
 * fetch of that key are folded into it. */
void or_key_refresh(const char *provider);

/* The last known key limits of provider: 1 with *out, 0 when none is known. */
int or_key_snapshot(const char *provider, or_key_info *out);
/* What the key may still spend, in nano-USD, and how old that is (ms since the fetch,
 * wall clock): 1 when the key has a limit and it is known, 0 when the key has no limit
 * or nothing is known.  For reservations: one more cap. */
int or_key_remaining_nusd(const char *provider, int64_t *nusd, int64_t *age_ms);
/* For spend.json: a malloc'd JSON object {PROVIDER: or_key_info_json + "age_ms"} of the
 * providers in the config whose key limits are known ("{}" when none); NULL when out of
 * memory. */
char *or_key_json(void);

/* Queue the enrichment of generation gen's meta with OpenRouter's record generation_id
 * (the answer's "id") on provider.  Never blocks: the lookup is tried 0.5 s later, then
 * after 1, 2, 4, 8, 16, 20, 20 ... s while OpenRouter answers 404, 429, 5xx or nothing,
 * for up to 2 minutes; then merged with sp_meta_merge(st, gen, "openrouter", ...).  Call
 * it once the job's commit is in the store (a merge that finds no meta yet is tried
 * again at the next step, twice).  At most 10000 lookups wait: past that the oldest is
 * dropped (logged).  Before or_start and after or_stop it does nothing. */
void or_enrich(const char *provider, const char *generation_id, int64_t gen);

/* Called on the openrouter thread after each merge (g borrowed for the call), e.g. to
 * add the upstream breakdown to activity and spend or to invalidate a cached NAME.meta.
 * fn NULL = none.  Set before or_start. */
void or_set_enriched_listener(void (*fn)(const char *provider, int64_t gen,
                                         const or_generation *g, void *ud),
                              void *ud);

/* Counters, for status and tests. */
typedef struct or_stats {
    size_t pending;             /* lookups waiting */
    uint64_t enriched;          /* merged into a meta */
    uint64_t gave_up;           /* lookups that ran out of time or got a final error */
    uint64_t dropped;           /* lookups dropped: queue full */
    uint64_t generation_gets;   /* GET /generation sent */
    uint64_t key_fetches, key_failures;
    uint64_t prices_fetches, prices_failures;
    int64_t prices_fetched_ms;  /* wall clock of the last list taken; 0 = none this run */
} or_stats;
void or_stats_get(or_stats *out);

/* Test hook: the intervals, in ms (0 = keep the default).  Before or_start. */
typedef struct or_timing {
    long key_interval_ms;       /* default 300000 */
    long key_min_gap_ms;        /* default 5000: or_key_refresh folding */
    long prices_interval_ms;    /* default 86400000 */
    long prices_retry_ms;       /* after a failed list; default 900000 */
    long gen_first_ms;          /* first lookup after or_enrich; default 500 */
    long gen_cap_ms;            /* longest delay between lookups; default 20000 */
    long gen_deadline_ms;       /* no lookup starts later than this; default 120000 */
    long queue_max;             /* default 10000 */
    long http_timeout_ms;       /* one GET; default 30000 */
} or_timing;
void or_set_timing(const or_timing *t);

#endif
