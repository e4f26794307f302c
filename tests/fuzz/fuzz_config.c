/* fuzz_config.c — libFuzzer target for the config parser and validator (src/config.c).
 *
 * The input is a config.json document.  Every input goes through:
 *   - config_parse: on failure the error must be EINVAL (or ENOMEM) with a one-line,
 *     NUL-terminated message; on success every guarantee config.h makes is checked
 *     (routes non-empty, hops on known providers, defaults in range, ...), the lookups
 *     are run over every tier, provider and price, and the pretty-printed source_json
 *     must parse again to the same config (config.json is what users edit and write back);
 *   - config_parse_route: on the document itself and on every tiers.*.route in it, with
 *     a default provider and without one.
 *
 * A broken invariant aborts (a crash for libFuzzer, a failed test for test_fuzz_corpus.c,
 * which includes this file with LLVMFuzzerTestOneInput renamed).  Built by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lookups are linear, so checking each of n entries by lookup is O(n^2): only the first
 * FC_LOOKUP_MAX entries of each kind are looked up (large inputs stay fast). */
#define FC_LOOKUP_MAX 256

#define FC_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* An error as err.h promises it: a code, one NUL-terminated line. */
static void fc_check_err(const rf_err *err)
{
    FC_CHECK(err->code == EINVAL || err->code == ENOMEM);
    size_t len = strnlen(err->msg, sizeof err->msg);
    FC_CHECK(len < sizeof err->msg);
    FC_CHECK(len > 0);
    FC_CHECK(!memchr(err->msg, '\n', len) && !memchr(err->msg, '\r', len));
}

static int fc_has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void fc_check_hops(const rf_hop *hops, size_t n)
{
    FC_CHECK(hops && n >= 1);
    for (size_t i = 0; i < n; i++) {
        FC_CHECK(hops[i].provider && hops[i].provider[0]);
        FC_CHECK(hops[i].model && hops[i].model[0]);
        FC_CHECK(!fc_has_control_chars(hops[i].model));
    }
}

/* Everything config.h says a returned config guarantees. */
static void fc_check_config(const rf_config *cfg)
{
    FC_CHECK(cfg->refcount == 1);
    FC_CHECK(cfg->providers_len >= 1 && cfg->providers);
    FC_CHECK(cfg->tiers_len >= 1 && cfg->tiers);
    FC_CHECK(cfg->source_json);
    FC_CHECK(cfg->daily_usd == -1 || (isfinite(cfg->daily_usd) && cfg->daily_usd >= 0));
    FC_CHECK(cfg->monthly_usd == -1 || (isfinite(cfg->monthly_usd) && cfg->monthly_usd >= 0));

    for (size_t i = 0; i < cfg->providers_len; i++) {
        const rf_provider *p = &cfg->providers[i];
        FC_CHECK(p->name && p->name[0] && !fc_has_control_chars(p->name));
        if (i < FC_LOOKUP_MAX)
            FC_CHECK(config_provider(cfg, p->name) == p);   /* names are unique */
        FC_CHECK(p->base_url);
        FC_CHECK(strncasecmp(p->base_url, "http://", 7) == 0 ||
                 strncasecmp(p->base_url, "https://", 8) == 0);
        size_t url_len = strlen(p->base_url);
        FC_CHECK(url_len > 0 && p->base_url[url_len - 1] != '/');
        FC_CHECK(!(p->api_key_env && p->api_key_file));
        FC_CHECK(p->kind == RF_KIND_OPENAI || p->kind == RF_KIND_OPENROUTER);
        FC_CHECK(p->rpm >= 0 && p->max_concurrent >= 0);
        FC_CHECK(p->timeout_ms >= 0 && p->timeout_ms <= INT_MAX);
        FC_CHECK(p->first_token_timeout_ms >= 0 && p->stall_timeout_ms >= 0);
        FC_CHECK(p->stream == 0 || p->stream == 1);
        FC_CHECK(p->failure_threshold >= 1 && p->failure_threshold <= 1000);
        FC_CHECK(p->cooldown_ms >= 100 && p->cooldown_ms <= 3600000);
        FC_CHECK(p->is_free == 0 || (p->is_free == 1 && p->kind != RF_KIND_OPENROUTER));
        const char *authority = strstr(p->base_url, "://") + 3;   /* no user:pw@ */
        FC_CHECK(!memchr(authority, '@', strcspn(authority, "/?#")));
        for (size_t j = 0; j < p->supported_params_len; j++)
            FC_CHECK(p->supported_params[j] && p->supported_params[j][0]);
    }

    for (size_t i = 0; i < cfg->prices_len; i++) {
        const rf_price *pr = &cfg->prices[i];
        FC_CHECK(pr->model && pr->model[0]);
        FC_CHECK(isfinite(pr->prompt_per_m) && pr->prompt_per_m >= 0);
        FC_CHECK(isfinite(pr->completion_per_m) && pr->completion_per_m >= 0);
        if (i >= FC_LOOKUP_MAX)
            continue;
        if (pr->provider) {
            FC_CHECK(config_provider(cfg, pr->provider) != NULL);
            FC_CHECK(config_price(cfg, pr->provider, pr->model) == pr);
        } else {
            FC_CHECK(config_price(cfg, NULL, pr->model) == pr);
        }
    }

    for (size_t i = 0; i < cfg->tiers_len; i++) {
        const rf_tier *t = &cfg->tiers[i];
        FC_CHECK(t->name && t->name[0] && t->name[0] != '.');
        FC_CHECK(strlen(t->name) <= 64 && !strchr(t->name, '/'));
        FC_CHECK(!fc_has_control_chars(t->name));
        if (i < FC_LOOKUP_MAX)
            FC_CHECK(config_tier(cfg, t->name) == t);   /* names are unique */
        fc_check_hops(t->route, t->route_len);
        for (size_t j = 0; j < t->route_len && j < FC_LOOKUP_MAX; j++) {
            FC_CHECK(config_provider(cfg, t->route[j].provider) != NULL);
            (void)config_price(cfg, t->route[j].provider, t->route[j].model);
        }
        FC_CHECK(t->allow_fallbacks == 0 || t->allow_fallbacks == 1);
        FC_CHECK(t->require_parameters == 0 || t->require_parameters == 1);
        FC_CHECK(t->require_price == 0 || t->require_price == 1);
        FC_CHECK(t->max_tokens >= 1);
        FC_CHECK(t->retries >= 0 && t->retries <= 20);
        FC_CHECK(t->retry_base_ms >= 0 && t->retry_cap_ms >= 0 && t->retry_after_max_ms >= 0);
        FC_CHECK(t->timeout_ms >= 1);
        FC_CHECK(t->first_token_timeout_ms >= 0 && t->first_token_timeout_ms <= t->timeout_ms);
        FC_CHECK(t->stall_timeout_ms >= 0 && t->stall_timeout_ms <= t->timeout_ms);
        FC_CHECK(t->retry_on_timeout == 0 || t->retry_on_timeout == 1);
        FC_CHECK(t->openrouter_models == 0 || t->openrouter_models == 1);
        FC_CHECK(t->openrouter_metadata == 0 || t->openrouter_metadata == 1);
        FC_CHECK(!t->service_tier || (t->service_tier[0] && !fc_has_control_chars(t->service_tier)));
        FC_CHECK(!t->session_id || (t->session_id[0] && strlen(t->session_id) <= 256 &&
                                    !fc_has_control_chars(t->session_id)));
        FC_CHECK(t->concurrency >= 1 && t->concurrency <= 10000);
        FC_CHECK(!t->system_prompt || t->system_prompt[0]);
        FC_CHECK(t->on_exhausted == RF_EXHAUSTED_FAIL || t->on_exhausted == RF_EXHAUSTED_QUEUE);
        FC_CHECK(t->park_schedule_ms && t->park_schedule_len >= 1);
        for (size_t j = 0; j < t->park_schedule_len; j++)
            FC_CHECK(t->park_schedule_ms[j] >= 1);
        FC_CHECK(t->daily_usd == -1 || (isfinite(t->daily_usd) && t->daily_usd >= 0));
        if (t->provider_prefs_json) {
            cJSON *prefs = cJSON_Parse(t->provider_prefs_json);
            FC_CHECK(cJSON_IsObject(prefs));
            cJSON_Delete(prefs);
        }
    }
    FC_CHECK(config_tier(cfg, "") == NULL);

    FC_CHECK(cfg->activity_days >= 1 && cfg->activity_days <= 36500);
    FC_CHECK(cfg->resend_in_flight == 0 || cfg->resend_in_flight == 1);
    const rf_shared_cfg *sh = cfg->shared;
    if (sh) {
        FC_CHECK(sh->redis_url && !strchr(sh->redis_url, '@'));
        FC_CHECK(sh->host && sh->port >= 1 && sh->port <= 65535 && sh->db >= 0);
        FC_CHECK(sh->tls == 0 || sh->tls == 1);
        FC_CHECK(sh->prefix && sh->prefix[0] && !strchr(sh->prefix, ' ') &&
                 !fc_has_control_chars(sh->prefix));
        FC_CHECK(sh->local_share > 0 && sh->local_share <= 1);
        FC_CHECK(sh->reservation_ttl_ms >= 1000 && sh->reservation_ttl_ms <= 86400000);
        FC_CHECK(sh->breaker_sync_ms >= 50 && sh->breaker_sync_ms <= 60000);
        FC_CHECK(sh->on_shared_down == RF_SHARED_DOWN_WAIT ||
                 sh->on_shared_down == RF_SHARED_DOWN_LOCAL);
    }
    for (size_t i = 0; i < cfg->tiers_len && i < FC_LOOKUP_MAX; i++)
        for (size_t j = 0; j < cfg->tiers[i].route_len && j < FC_LOOKUP_MAX; j++) {
            const rf_hop *h = &cfg->tiers[i].route[j];
            int is_free = config_price_is_free(cfg, h->provider, h->model);
            FC_CHECK(is_free == 0 || is_free == 1);
        }
}

/* source_json is config.json as shown and written back: it must be accepted again, to
 * the same config, and print the same. */
static void fc_check_round_trip(const rf_config *cfg)
{
    rf_config *again = NULL;
    rf_err err;
    rf_err_clear(&err);
    size_t len = strlen(cfg->source_json);
    int rc = config_parse(cfg->source_json, len, &again, &err);
    if (rc < 0) {
        if (err.code == ENOMEM)
            return;
        fprintf(stderr, "fuzz_config: source_json rejected: %s\n", err.msg);
    }
    FC_CHECK(rc == 0 && again);
    FC_CHECK(strcmp(again->source_json, cfg->source_json) == 0);
    FC_CHECK(again->providers_len == cfg->providers_len);
    FC_CHECK(again->tiers_len == cfg->tiers_len);
    FC_CHECK(again->prices_len == cfg->prices_len);
    for (size_t i = 0; i < cfg->tiers_len; i++) {
        FC_CHECK(strcmp(again->tiers[i].name, cfg->tiers[i].name) == 0);
        FC_CHECK(again->tiers[i].route_len == cfg->tiers[i].route_len);
        for (size_t j = 0; j < cfg->tiers[i].route_len; j++) {
            FC_CHECK(strcmp(again->tiers[i].route[j].provider, cfg->tiers[i].route[j].provider) == 0);
            FC_CHECK(strcmp(again->tiers[i].route[j].model, cfg->tiers[i].route[j].model) == 0);
        }
        FC_CHECK(again->tiers[i].max_tokens == cfg->tiers[i].max_tokens);
        FC_CHECK(again->tiers[i].timeout_ms == cfg->tiers[i].timeout_ms);
        FC_CHECK(again->tiers[i].first_token_timeout_ms == cfg->tiers[i].first_token_timeout_ms);
        FC_CHECK(again->tiers[i].stall_timeout_ms == cfg->tiers[i].stall_timeout_ms);
    }
    config_unref(again);
}

static void fc_route(const cJSON *route, const char *default_provider)
{
    rf_hop *hops = (rf_hop *)1;
    size_t n = 99;
    rf_err err;
    rf_err_clear(&err);
    if (config_parse_route(route, default_provider, &hops, &n, &err) == 0) {
        fc_check_hops(hops, n);
        if (default_provider && cJSON_IsString(route))
            for (size_t i = 0; i < n; i++)
                FC_CHECK(strcmp(hops[i].provider, default_provider) == 0);
        config_free_hops(hops, n);
    } else {
        FC_CHECK(hops == NULL && n == 0);
        fc_check_err(&err);
    }
}

/* config_parse_route on the document and on each tiers.*.route in it. */
static void fc_routes(const uint8_t *data, size_t size)
{
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (!doc)
        return;
    if (cJSON_IsString(doc) || cJSON_IsArray(doc)) {
        fc_route(doc, "default");
        fc_route(doc, NULL);
    }
    const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(doc, "tiers");
    const cJSON *tier;
    if (cJSON_IsObject(tiers)) {
        cJSON_ArrayForEach(tier, tiers) {
            const cJSON *route = cJSON_GetObjectItemCaseSensitive(tier, "route");
            if (route) {
                fc_route(route, "default");
                fc_route(route, NULL);
            }
        }
    }
    cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rf_config *cfg = (rf_config *)1;
    rf_err err;
    rf_err_clear(&err);
    if (config_parse((const char *)data, size, &cfg, &err) == 0) {
        FC_CHECK(cfg != NULL);
        fc_check_config(cfg);
        FC_CHECK(config_ref(cfg) == cfg && cfg->refcount == 2);
        config_unref(cfg);
        fc_check_round_trip(cfg);
        config_unref(cfg);
    } else {
        FC_CHECK(cfg == NULL);
        fc_check_err(&err);
    }
    fc_routes(data, size);
    return 0;
}
