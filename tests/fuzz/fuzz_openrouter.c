/* fuzz_openrouter.c — libFuzzer target for OpenRouter's own endpoints
 * (src/openrouter_parse.c).
 *
 * The input is whatever OpenRouter (or something pretending to be it) can answer.  Every
 * input goes through:
 *   - or_parse_models, as a GET /models body: 0 means at least one row, every id
 *     non-empty valid UTF-8 without control characters within OR_MODEL_ID_MAX and never
 *     twice, every price finite and within [0, OR_PRICE_MAX_PER_M] (request within
 *     [0, OR_REQUEST_PRICE_MAX]); -1 means EINVAL/ENOMEM with one line and a zeroed result;
 *   - or_parse_key, as a GET /key body: sane flags and amounts, limit_reset one of the
 *     four values, extra_json "" or a JSON object of valid UTF-8 that never holds the
 *     label or a known field; then or_key_info_json -> or_key_info_from_json gives the same
 *     info back; -1 means a zeroed result;
 *   - or_key_info_from_json on the input itself (a stored value), by the same rules;
 *   - or_parse_generation, as a GET /generation body, without and with an expected id:
 *     json is a JSON object of valid UTF-8 holding only the documented fields with their
 *     types (strings clean and bounded, numbers finite in [0, 1e15]), provider_responses
 *     at most OR_PROVIDER_RESPONSES_MAX objects of the documented hop fields, and the
 *     struct's summary fields agree with it.
 *
 * FUZZ_OPENROUTER_ONLY=models|key|generation in the environment runs only that parser
 * (a campaign focused on one); unset, every input goes through all of them.
 *
 * A broken invariant aborts (a crash for libFuzzer, a failed test for test_fuzz_corpus.c,
 * which includes this file with LLVMFuzzerTestOneInput renamed).  Built by tests/fuzz/fuzz.mk. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "openai.h"
#include "openrouter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FR_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_openrouter: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                    \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FR_ID "gen-fuzz"

/* Valid UTF-8 without control characters, at most max bytes. */
static int fr_clean(const char *s, size_t max)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return len <= max && openai_valid_utf8(s, len);
}

static void fr_check_error(const rf_err *err)
{
    FR_CHECK(err->code == EINVAL || err->code == ENOMEM);
    size_t len = strnlen(err->msg, sizeof err->msg);
    FR_CHECK(len > 0 && len < sizeof err->msg);
    FR_CHECK(!memchr(err->msg, '\n', len) && !memchr(err->msg, '\r', len));
}

static int fr_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int fr_by_model(const void *a, const void *b)
{
    return strcmp(((const published_price *)a)->model, ((const published_price *)b)->model);
}

static void fr_models(const char *text, size_t size)
{
    or_models m;
    rf_err err;
    rf_err_clear(&err);
    if (or_parse_models(text, size, &m, &err) < 0) {
        fr_check_error(&err);
        FR_CHECK(fr_zero(&m, sizeof m));
        return;
    }
    FR_CHECK(m.n >= 1 && m.rows);
    for (size_t i = 0; i < m.n; i++) {
        const published_price *p = &m.rows[i];
        FR_CHECK(p->model && p->model[0] && fr_clean(p->model, OR_MODEL_ID_MAX));
        FR_CHECK(isfinite(p->prompt_per_m) && p->prompt_per_m >= 0 &&
                 p->prompt_per_m <= OR_PRICE_MAX_PER_M);
        FR_CHECK(isfinite(p->completion_per_m) && p->completion_per_m >= 0 &&
                 p->completion_per_m <= OR_PRICE_MAX_PER_M);
        FR_CHECK(isfinite(p->request_usd) && p->request_usd >= 0 &&
                 p->request_usd <= OR_REQUEST_PRICE_MAX);
    }
    published_price *sorted = malloc(m.n * sizeof *sorted);
    FR_CHECK(sorted);
    memcpy(sorted, m.rows, m.n * sizeof *sorted);
    qsort(sorted, m.n, sizeof *sorted, fr_by_model);
    for (size_t i = 1; i < m.n; i++)
        FR_CHECK(strcmp(sorted[i - 1].model, sorted[i].model) != 0);
    free(sorted);
    or_models_free(&m);
    FR_CHECK(fr_zero(&m, sizeof m));
}

static int fr_amount(double v, int unknown_ok)
{
    return (unknown_ok && v == -1) || (isfinite(v) && v >= 0 && v <= 1e12);
}

static void fr_check_key(const or_key_info *k)
{
    FR_CHECK(k->has_limit == 0 || k->has_limit == 1);
    FR_CHECK(k->has_limit_remaining == 0 || k->has_limit_remaining == 1);
    FR_CHECK(!k->has_limit ? k->limit == 0 : fr_amount(k->limit, 0));
    FR_CHECK(!k->has_limit_remaining ? k->limit_remaining == 0
                                     : fr_amount(k->limit_remaining, 0));
    FR_CHECK(fr_amount(k->usage, 0));
    FR_CHECK(fr_amount(k->usage_daily, 1) && fr_amount(k->usage_weekly, 1) &&
             fr_amount(k->usage_monthly, 1));
    FR_CHECK(k->is_free_tier >= -1 && k->is_free_tier <= 1);
    FR_CHECK(!strcmp(k->limit_reset, "") || !strcmp(k->limit_reset, "daily") ||
             !strcmp(k->limit_reset, "weekly") || !strcmp(k->limit_reset, "monthly"));
    size_t xl = strnlen(k->extra_json, sizeof k->extra_json);
    FR_CHECK(xl < sizeof k->extra_json);
    if (xl) {
        FR_CHECK(openai_valid_utf8(k->extra_json, xl));
        cJSON *x = cJSON_Parse(k->extra_json);
        FR_CHECK(cJSON_IsObject(x) && x->child);
        static const char *const never[] = {"label", "limit", "usage", "limit_remaining",
                                            "fetched_ms", "fetched_at", "age_ms"};
        for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
            FR_CHECK(!cJSON_GetObjectItemCaseSensitive(x, never[i]));
        for (const cJSON *f = x->child; f; f = f->next) {
            FR_CHECK(!cJSON_IsString(f) && !cJSON_IsArray(f));
            for (const cJSON *g = cJSON_IsObject(f) ? f->child : NULL; g; g = g->next) {
                FR_CHECK(!cJSON_IsObject(g) && !cJSON_IsArray(g));
                FR_CHECK(!cJSON_IsString(g) || strncmp(g->valuestring, "sk-", 3) != 0);
            }
        }
        cJSON_Delete(x);
    }
}

static void fr_key_round_trip(or_key_info *k)
{
    k->fetched_ms = 1764590400123LL;
    char *text = or_key_info_json(k);
    FR_CHECK(text);
    FR_CHECK(openai_valid_utf8(text, strlen(text)));
    or_key_info back;
    rf_err err;
    rf_err_clear(&err);
    FR_CHECK(or_key_info_from_json(text, strlen(text), &back, &err) == 0);
    FR_CHECK(memcmp(&back, k, sizeof back) == 0);
    free(text);
}

static void fr_key(const char *text, size_t size)
{
    or_key_info k;
    rf_err err;
    rf_err_clear(&err);
    if (or_parse_key(text, size, &k, &err) < 0) {
        fr_check_error(&err);
        FR_CHECK(fr_zero(&k, sizeof k));
    } else {
        FR_CHECK(k.fetched_ms == 0);
        fr_check_key(&k);
        fr_key_round_trip(&k);
    }
    rf_err_clear(&err);
    if (or_key_info_from_json(text, size, &k, &err) < 0) {
        fr_check_error(&err);
        FR_CHECK(fr_zero(&k, sizeof k));
    } else {
        FR_CHECK(k.fetched_ms >= 0 && k.fetched_ms < 1000000000000000LL);
        fr_check_key(&k);
        fr_key_round_trip(&k);
    }
}

static const char *const fr_gen_strings[] = {
    "id", "upstream_id", "model", "provider_name", "finish_reason", "native_finish_reason",
    "service_tier", "created_at", "router", "api_type", NULL};
static const char *const fr_gen_bools[] = {"streamed", "cancelled", "is_byok", NULL};
static const char *const fr_gen_numbers[] = {
    "total_cost", "cache_discount", "upstream_inference_cost", "usage", "tokens_prompt",
    "tokens_completion", "native_tokens_prompt", "native_tokens_completion",
    "native_tokens_reasoning", "native_tokens_cached", "native_tokens_completion_images",
    "num_media_prompt", "num_media_completion", "num_search_results", "latency",
    "moderation_latency", "generation_time", NULL};
static const char *const fr_hop_strings[] = {"provider_name", "model_permaslug", "endpoint_id",
                                             NULL};
static const char *const fr_hop_numbers[] = {"status", "latency", NULL};
static const char *const fr_hop_bools[] = {"is_byok", NULL};

static int fr_in(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (!strcmp(list[i], name))
            return 1;
    return 0;
}

/* Every member of o is one of the lists', with its type (null allowed). */
static void fr_check_fields(const cJSON *o, const char *const *strings,
                            const char *const *numbers, const char *const *bools)
{
    for (const cJSON *f = o->child; f; f = f->next) {
        FR_CHECK(f->string);
        for (const cJSON *e = f->next; e; e = e->next)   /* no key twice */
            FR_CHECK(strcmp(f->string, e->string) != 0);
        if (cJSON_IsNull(f))
            continue;
        if (fr_in(strings, f->string))
            FR_CHECK(cJSON_IsString(f) && fr_clean(f->valuestring, OR_STRING_MAX));
        else if (fr_in(numbers, f->string))
            FR_CHECK(cJSON_IsNumber(f) && isfinite(f->valuedouble) && f->valuedouble >= 0 &&
                     f->valuedouble <= 1e15);
        else if (fr_in(bools, f->string))
            FR_CHECK(cJSON_IsBool(f));
        else
            FR_CHECK(!strcmp(f->string, "provider_responses") && strings == fr_gen_strings);
    }
}

static void fr_generation(const char *text, size_t size, const char *expected)
{
    or_generation g;
    rf_err err;
    rf_err_clear(&err);
    if (or_parse_generation(text, size, expected, &g, &err) < 0) {
        fr_check_error(&err);
        FR_CHECK(fr_zero(&g, sizeof g));
        return;
    }
    FR_CHECK(g.json && openai_valid_utf8(g.json, strlen(g.json)));
    cJSON *o = cJSON_Parse(g.json);
    FR_CHECK(cJSON_IsObject(o));
    fr_check_fields(o, fr_gen_strings, fr_gen_numbers, fr_gen_bools);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (expected)
        FR_CHECK(cJSON_IsString(id) && !strcmp(id->valuestring, expected));
    const cJSON *hops = cJSON_GetObjectItemCaseSensitive(o, "provider_responses");
    size_t n = 0;
    if (hops && !cJSON_IsNull(hops)) {
        FR_CHECK(cJSON_IsArray(hops));
        for (const cJSON *h = hops->child; h; h = h->next, n++) {
            FR_CHECK(cJSON_IsObject(h));
            fr_check_fields(h, fr_hop_strings, fr_hop_numbers, fr_hop_bools);
        }
    }
    FR_CHECK(n <= OR_PROVIDER_RESPONSES_MAX && n == g.n_provider_responses);
    const cJSON *pn = cJSON_GetObjectItemCaseSensitive(o, "provider_name");
    FR_CHECK(!strcmp(g.provider_name, cJSON_IsString(pn) ? pn->valuestring : ""));
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(o, "total_cost");
    FR_CHECK(g.has_total_cost == cJSON_IsNumber(cost));
    FR_CHECK(!g.has_total_cost || g.total_cost == cost->valuedouble);
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(o, "latency");
    FR_CHECK(cJSON_IsNumber(lat) ? g.latency_ms == (long)lat->valuedouble : g.latency_ms == -1);
    FR_CHECK(g.generation_time_ms >= -1 && g.native_tokens_prompt >= -1 &&
             g.native_tokens_completion >= -1);
    cJSON_Delete(o);
    or_generation_free(&g);
    FR_CHECK(fr_zero(&g, sizeof g));
}

/* Which parsers run: bit 1 models, 2 key, 4 generation (FUZZ_OPENROUTER_ONLY). */
static int fr_mask(void)
{
    static int mask;
    if (!mask) {
        const char *only = getenv("FUZZ_OPENROUTER_ONLY");
        mask = !only || !*only              ? 7
               : !strcmp(only, "models")     ? 1
               : !strcmp(only, "key")        ? 2
               : !strcmp(only, "generation") ? 4 : 7;
    }
    return mask;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int mask = fr_mask();
    if (mask & 1)
        fr_models(text, size);
    if (mask & 2)
        fr_key(text, size);
    if (mask & 4) {
        fr_generation(text, size, NULL);
        fr_generation(text, size, FR_ID);
    }
    return 0;
}
