/* test_openrouter.c — the OpenRouter parsers (/models, /key, /generation) on tables of
 * real-looking and nonsense bodies, sp_meta_merge against a real state store, and
 * `routefs prices` on a state directory.  The thread against routefs-sim is
 * test_openrouter_sim.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_prices.h"
#include "config.h"
#include "openrouter.h"
#include "prices.h"
#include "store.h"
#include "store_ledger.h"
#include "store_prompts.h"

/* ---------------------------------------------------------------- /models */

/* The shape of OpenRouter's list (fields trimmed, values as published). */
static const char MODELS_BODY[] =
    "{\"data\": ["
    "{\"id\": \"openai/gpt-4o\", \"canonical_slug\": \"openai/gpt-4o\", \"name\": \"OpenAI: GPT-4o\","
    " \"created\": 1715367049, \"context_length\": 128000,"
    " \"architecture\": {\"modality\": \"text+image->text\", \"tokenizer\": \"GPT\"},"
    " \"pricing\": {\"prompt\": \"0.0000025\", \"completion\": \"0.00001\", \"request\": \"0\","
    "   \"image\": \"0.003613\", \"web_search\": \"0\", \"internal_reasoning\": \"0\","
    "   \"input_cache_read\": \"0.00000125\"},"
    " \"top_provider\": {\"context_length\": 128000, \"max_completion_tokens\": 16384,"
    "   \"is_moderated\": true}, \"per_request_limits\": null,"
    " \"supported_parameters\": [\"max_tokens\", \"temperature\"]},"
    "{\"id\": \"anthropic/claude-3.5-sonnet\","
    " \"pricing\": {\"prompt\": \"0.000003\", \"completion\": \"0.000015\"}},"
    "{\"id\": \"google/gemma-2-9b-it:free\", \"pricing\": {\"prompt\": \"0\", \"completion\": \"0\"}},"
    "{\"id\": \"openrouter/auto\", \"pricing\": {\"prompt\": \"-1\", \"completion\": \"-1\"}},"
    "{\"id\": \"perplexity/sonar\", \"pricing\": {\"prompt\": \"0.000001\", \"completion\": \"0.000001\","
    "   \"request\": \"0.005\"}},"
    "{\"id\": \"no/pricing\"},"
    "{\"id\": \"anthropic/claude-3.5-sonnet\", \"pricing\": {\"prompt\": \"0.00001\", \"completion\": \"0.00001\"}},"
    "{\"id\": \"num/bers\", \"pricing\": {\"prompt\": 3e-06, \"completion\": 1.5e-5}}"
    "]}";

static const published_price *find_row(const or_models *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->rows[i].model, id))
            return &m->rows[i];
    return NULL;
}

static void test_models_real_body(void **state)
{
    or_models m;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(or_parse_models(MODELS_BODY, strlen(MODELS_BODY), &m, &err), 0);
    assert_int_equal(m.n, 5);
    assert_int_equal(m.skipped, 3);   /* auto (-1), no pricing, the repeated id */
    const published_price *p = find_row(&m, "openai/gpt-4o");
    assert_non_null(p);
    /* exact: the decimal point moves in the text, no 2.4999999999999996 */
    assert_true(p->prompt_per_m == 2.5);
    assert_true(p->completion_per_m == 10.0);
    assert_true(p->request_usd == 0);
    p = find_row(&m, "anthropic/claude-3.5-sonnet");
    assert_true(p && p->prompt_per_m == 3.0 && p->completion_per_m == 15.0);   /* first wins */
    p = find_row(&m, "google/gemma-2-9b-it:free");
    assert_true(p && p->prompt_per_m == 0 && p->completion_per_m == 0);
    p = find_row(&m, "perplexity/sonar");
    assert_true(p && p->prompt_per_m == 1.0 && p->request_usd == 0.005);
    p = find_row(&m, "num/bers");
    assert_true(p && fabs(p->prompt_per_m - 3.0) < 1e-12 && fabs(p->completion_per_m - 15) < 1e-12);
    assert_null(find_row(&m, "openrouter/auto"));
    or_models_free(&m);
    assert_null(m.rows);
    assert_int_equal(m.n, 0);
}

static void test_models_nonsense_refused(void **state)
{
    static const struct {
        const char *body, *why;
    } cases[] = {
        {"", "not a JSON document"},
        {"<html>502 Bad Gateway</html>", "not a JSON document"},
        {"{\"data\": []} trailing", "not a JSON document"},
        {"[]", "no \"data\""},
        {"{\"models\": []}", "no \"data\""},
        {"{\"data\": {}}", "not an array"},
        {"{\"data\": []}", "no model has a price"},
        {"{\"data\": [{\"id\": \"a\"}, {\"id\": \"b\", \"pricing\": {\"prompt\": \"-1\", "
         "\"completion\": \"-1\"}}]}", "no model has a price"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"-0.000001\", "
         "\"completion\": \"0\"}}]}", "negative"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"0\", \"completion\": "
         "\"1e999\"}}]}", "not finite"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": 1e999, \"completion\": 0}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"0.02\", \"completion\": "
         "\"0\"}}]}", "absurdly high"},   /* 20000 USD per million tokens */
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"0\", \"completion\": \"0\", "
         "\"request\": \"101\"}}]}", "absurdly high"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"abc\", \"completion\": \"0\"}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"NaN\", \"completion\": \"0\"}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \"0x10\", \"completion\": \"0\"}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": \" 1\", \"completion\": \"0\"}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"a\", \"pricing\": {\"prompt\": {}, \"completion\": \"0\"}}]}",
         "not a number"},
        {"{\"data\": [{\"id\": \"ok\", \"pricing\": {\"prompt\": \"0.000001\", \"completion\": "
         "\"0.000001\"}}, {\"id\": \"bad\", \"pricing\": {\"prompt\": \"-5\", \"completion\": "
         "\"0\"}}]}", "data[1] (bad): pricing.prompt \"-5\" is negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        or_models m;
        rf_err err;
        rf_err_clear(&err);
        int r = or_parse_models(cases[i].body, strlen(cases[i].body), &m, &err);
        if (r != -1 || err.code != EINVAL || !strstr(err.msg, cases[i].why))
            fail_msg("case %zu: r=%d code=%d msg=\"%s\", want \"%s\"", i, r, err.code, err.msg,
                     cases[i].why);
        assert_null(m.rows);
        assert_int_equal(m.n, 0);
    }
}

static void test_models_bound_and_ids(void **state)
{
    /* At the bound is accepted; an id with a control character, or too long, is skipped. */
    char body[2048];
    char long_id[OR_MODEL_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    snprintf(body, sizeof body,
             "{\"data\": [{\"id\": \"max\", \"pricing\": {\"prompt\": \"0.01\", \"completion\": "
             "\"1e-2\", \"request\": \"100\"}}, {\"id\": \"a\\u0001b\", \"pricing\": {\"prompt\": "
             "\"0\", \"completion\": \"0\"}}, {\"id\": \"%s\", \"pricing\": {\"prompt\": \"0\", "
             "\"completion\": \"0\"}}, {\"id\": \"\", \"pricing\": {\"prompt\": \"0\", "
             "\"completion\": \"0\"}}]}", long_id);
    or_models m;
    rf_err err;
    assert_int_equal(or_parse_models(body, strlen(body), &m, &err), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.skipped, 3);
    assert_true(m.rows[0].prompt_per_m == OR_PRICE_MAX_PER_M);
    assert_true(m.rows[0].completion_per_m == OR_PRICE_MAX_PER_M);
    assert_true(m.rows[0].request_usd == OR_REQUEST_PRICE_MAX);
    or_models_free(&m);
}

/* ---------------------------------------------------------------- /key */

/* OpenRouter's documented shape, with the fields a real key shows. */
static const char KEY_BODY[] =
    "{\"data\": {\"label\": \"sk-or-v1-116...0ce\", \"limit\": 5, \"limit_reset\": \"monthly\","
    " \"limit_remaining\": 4.8984355238, \"include_byok_in_limit\": false,"
    " \"usage\": 0.1015644762, \"usage_daily\": 0.01, \"usage_weekly\": 0.05,"
    " \"usage_monthly\": 0.1015644762, \"byok_usage\": 0, \"byok_usage_daily\": 0,"
    " \"is_free_tier\": false, \"is_provisioning_key\": false,"
    " \"rate_limit\": {\"requests\": 50, \"interval\": \"10s\"},"
    " \"free_model_daily_requests\": {\"used\": 3, \"limit\": 1000, \"remaining\": 997},"
    " \"expires_at\": null, \"nested\": {\"deep\": {\"x\": 1}}, \"list\": [1, 2]}}";

static void test_key_real_body(void **state)
{
    or_key_info k;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(or_parse_key(KEY_BODY, strlen(KEY_BODY), &k, &err), 0);
    assert_true(k.has_limit && k.limit == 5);
    assert_true(k.has_limit_remaining && k.limit_remaining == 4.8984355238);
    assert_string_equal(k.limit_reset, "monthly");
    assert_true(k.usage == 0.1015644762 && k.usage_daily == 0.01 && k.usage_weekly == 0.05);
    assert_int_equal(k.is_free_tier, 0);
    /* unknown fields kept generically; the label (a copy of the key) never */
    assert_null(strstr(k.extra_json, "label"));
    assert_null(strstr(k.extra_json, "sk-or"));
    cJSON *x = cJSON_Parse(k.extra_json);
    assert_non_null(x);
    assert_int_equal(cJSON_GetObjectItem(x, "byok_usage")->valueint, 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(x, "include_byok_in_limit")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(x, "expires_at")));
    cJSON *rl = cJSON_GetObjectItem(x, "rate_limit");
    assert_string_equal(cJSON_GetObjectItem(rl, "interval")->valuestring, "10s");
    cJSON *scope = cJSON_GetObjectItem(x, "free_model_daily_requests");
    assert_int_equal(cJSON_GetObjectItem(scope, "remaining")->valueint, 997);
    cJSON *nested = cJSON_GetObjectItem(x, "nested");   /* flat objects only: deep is dropped */
    assert_non_null(nested);
    assert_null(cJSON_GetObjectItem(nested, "deep"));
    assert_null(cJSON_GetObjectItem(x, "list"));
    cJSON_Delete(x);

    /* the stored form reads back to the same info */
    k.fetched_ms = 1764590400123LL;
    char *text = or_key_info_json(&k);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"fetched_at\":\"2025-12-01T12:00:00.123Z\""));
    or_key_info back;
    assert_int_equal(or_key_info_from_json(text, strlen(text), &back, &err), 0);
    assert_memory_equal(&back, &k, sizeof k);
    free(text);
}

static void test_key_unlimited_and_sim(void **state)
{
    /* what routefs-sim answers for a key without a limit */
    static const char body[] =
        "{\"data\":{\"label\":\"sim-key\",\"limit\":null,\"limit_reset\":null,"
        "\"limit_remaining\":null,\"include_byok_in_limit\":false,\"usage\":0.75,"
        "\"usage_daily\":0.75,\"usage_weekly\":0.75,\"usage_monthly\":0.75,\"byok_usage\":0,"
        "\"is_free_tier\":true,\"is_provisioning_key\":false,"
        "\"rate_limit\":{\"requests\":-1,\"interval\":\"10s\"},\"expires_at\":null}}";
    or_key_info k;
    rf_err err;
    assert_int_equal(or_parse_key(body, strlen(body), &k, &err), 0);
    assert_false(k.has_limit);
    assert_false(k.has_limit_remaining);
    assert_string_equal(k.limit_reset, "");
    assert_true(k.usage == 0.75);
    assert_int_equal(k.is_free_tier, 1);
    char *text = or_key_info_json(&k);
    cJSON *o = cJSON_Parse(text);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "limit")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "limit_remaining")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "fetched_at")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "is_free_tier")));
    cJSON_Delete(o);
    free(text);

    /* over the limit: remaining is kept as 0; missing period fields are -1 */
    static const char over[] = "{\"data\":{\"limit\":1,\"limit_remaining\":-0.5,\"usage\":1.5}}";
    assert_int_equal(or_parse_key(over, strlen(over), &k, &err), 0);
    assert_true(k.has_limit_remaining && k.limit_remaining == 0);
    assert_true(k.usage_daily == -1 && k.usage_monthly == -1);
    assert_int_equal(k.is_free_tier, -1);
    assert_string_equal(k.extra_json, "");
}

static void test_key_nonsense_refused(void **state)
{
    static const char *const bodies[] = {
        "", "not json", "{}", "{\"data\": null}", "{\"data\": []}",
        "{\"data\": {\"usage\": 1}}",                             /* no limit */
        "{\"data\": {\"limit\": \"5\", \"usage\": 1}}",
        "{\"data\": {\"limit\": 5}}",                             /* no usage */
        "{\"data\": {\"limit\": 5, \"usage\": \"1\"}}",
        "{\"data\": {\"limit\": 1e999, \"usage\": 1}}",
        "{\"data\": {\"limit\": -5, \"usage\": 1}}",
        "{\"data\": {\"limit\": null, \"usage\": -1}}",
        "{\"data\": {\"limit\": null, \"usage\": 1e13}}",
        "{\"data\": {\"limit\": null, \"usage\": 1, \"usage_daily\": true}}",
        "{\"data\": {\"limit\": 5, \"usage\": 1, \"limit_remaining\": \"4\"}}",
        "{\"data\": {\"limit\": null, \"usage\": 1}} {}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        or_key_info k;
        memset(&k, 0x5a, sizeof k);
        rf_err err;
        rf_err_clear(&err);
        int r = or_parse_key(bodies[i], strlen(bodies[i]), &k, &err);
        if (r != -1 || err.code != EINVAL || !err.msg[0])
            fail_msg("body %zu accepted: %s", i, bodies[i]);
        or_key_info zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&k, &zero, sizeof k);
    }
}

static void test_key_extras_bounded(void **state)
{
    /* 400 unknown fields: what fits in OR_KEY_EXTRA_MAX is kept, and it stays JSON */
    size_t cap = 64 * 1024;
    char *body = malloc(cap);
    size_t n = (size_t)snprintf(body, cap, "{\"data\":{\"limit\":null,\"usage\":0");
    for (int i = 0; i < 400; i++)
        n += (size_t)snprintf(body + n, cap - n, ",\"budget_scope_%03d\":%d.5", i, i);
    snprintf(body + n, cap - n, "}}");
    or_key_info k;
    rf_err err;
    assert_int_equal(or_parse_key(body, strlen(body), &k, &err), 0);
    size_t len = strlen(k.extra_json);
    assert_true(len > 1000 && len < OR_KEY_EXTRA_MAX);
    cJSON *x = cJSON_Parse(k.extra_json);
    assert_non_null(x);
    assert_true(cJSON_GetObjectItem(x, "budget_scope_000")->valuedouble == 0.5);
    assert_null(cJSON_GetObjectItem(x, "budget_scope_399"));
    cJSON_Delete(x);
    free(body);
}

/* ---------------------------------------------------------------- /generation */

/* OpenRouter's documented record, with the fields it has shown over time. */
static const char GEN_BODY[] =
    "{\"data\": {\"id\": \"gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG\","
    " \"upstream_id\": \"chatcmpl-791bcf62-080e-4568-87d0-94c72e3b4946\","
    " \"total_cost\": 0.0015, \"cache_discount\": 0.0002, \"upstream_inference_cost\": 0.0012,"
    " \"created_at\": \"2024-07-15T23:33:19.433273+00:00\", \"model\": \"sao10k/l3-stheno-8b\","
    " \"app_id\": 12345, \"streamed\": true, \"cancelled\": false, \"provider_name\": \"Infermatic\","
    " \"latency\": 1250, \"moderation_latency\": 50, \"generation_time\": 1200,"
    " \"finish_reason\": \"stop\", \"native_finish_reason\": \"STOP\", \"tokens_prompt\": 10,"
    " \"tokens_completion\": 25, \"native_tokens_prompt\": 10, \"native_tokens_completion\": 25,"
    " \"native_tokens_completion_images\": 0, \"native_tokens_reasoning\": 5,"
    " \"native_tokens_cached\": 3, \"num_media_prompt\": 1, \"num_media_completion\": 0,"
    " \"num_search_results\": 5, \"origin\": \"https://openrouter.ai/\", \"usage\": 0.0015,"
    " \"is_byok\": false, \"external_user\": \"pipeline:nightly\", \"api_type\": \"completions\","
    " \"router\": null, \"service_tier\": \"priority\", \"user_agent\": \"x\","
    " \"provider_responses\": ["
    "   {\"endpoint_id\": \"e1\", \"model_permaslug\": \"sao10k/l3-stheno-8b\","
    "    \"provider_name\": \"DeepInfra\", \"status\": 503, \"latency\": 220, \"is_byok\": false,"
    "    \"secret\": \"x\"},"
    "   {\"provider_name\": \"Infermatic\", \"status\": 200, \"latency\": 1030}]}}";

static void test_generation_real_body(void **state)
{
    or_generation g;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(or_parse_generation(GEN_BODY, strlen(GEN_BODY),
                                         "gen-3bhGkxlo4XFrqiabUM7NDtwDzWwG", &g, &err), 0);
    assert_string_equal(g.provider_name, "Infermatic");
    assert_true(g.has_total_cost && g.total_cost == 0.0015);
    assert_int_equal(g.latency_ms, 1250);
    assert_int_equal(g.generation_time_ms, 1200);
    assert_int_equal(g.native_tokens_prompt, 10);
    assert_int_equal(g.native_tokens_completion, 25);
    assert_int_equal(g.n_provider_responses, 2);
    cJSON *o = cJSON_Parse(g.json);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "native_finish_reason")->valuestring, "STOP");
    assert_string_equal(cJSON_GetObjectItem(o, "service_tier")->valuestring, "priority");
    assert_true(cJSON_GetObjectItem(o, "cache_discount")->valuedouble == 0.0002);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "router")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "streamed")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "cancelled")));
    assert_string_equal(cJSON_GetObjectItem(o, "upstream_id")->valuestring,
                        "chatcmpl-791bcf62-080e-4568-87d0-94c72e3b4946");
    /* not kept: who asked (external_user), from where (origin, user_agent), app_id */
    assert_null(cJSON_GetObjectItem(o, "external_user"));
    assert_null(cJSON_GetObjectItem(o, "origin"));
    assert_null(cJSON_GetObjectItem(o, "user_agent"));
    assert_null(cJSON_GetObjectItem(o, "app_id"));
    cJSON *hops = cJSON_GetObjectItem(o, "provider_responses");
    assert_int_equal(cJSON_GetArraySize(hops), 2);
    cJSON *h0 = cJSON_GetArrayItem(hops, 0);
    assert_string_equal(cJSON_GetObjectItem(h0, "provider_name")->valuestring, "DeepInfra");
    assert_int_equal(cJSON_GetObjectItem(h0, "status")->valueint, 503);
    assert_int_equal(cJSON_GetObjectItem(h0, "latency")->valueint, 220);
    assert_null(cJSON_GetObjectItem(h0, "secret"));
    cJSON_Delete(o);
    or_generation_free(&g);
    assert_null(g.json);
}

static void test_generation_sanitised(void **state)
{
    /* wrong types and nonsense numbers are left out, one field at a time */
    char body[16384];
    size_t n = (size_t)snprintf(body, sizeof body,
        "{\"data\": {\"id\": \"g1\", \"total_cost\": -0.5, \"latency\": \"fast\","
        " \"generation_time\": 1e300, \"provider_name\": \"bad\\u0007name\", \"model\": 42,"
        " \"finish_reason\": \"\xff\xfe\", \"streamed\": \"yes\", \"native_tokens_prompt\": null,"
        " \"provider_responses\": [1, \"x\", null");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, ", {\"status\": %d}", 200 + i);
    snprintf(body + n, sizeof body - n, "]}}");
    or_generation g;
    rf_err err;
    assert_int_equal(or_parse_generation(body, strlen(body), NULL, &g, &err), 0);
    cJSON *o = cJSON_Parse(g.json);
    assert_non_null(o);
    static const char *const gone[] = {"total_cost", "latency", "generation_time",
                                       "provider_name", "model", "finish_reason", "streamed"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        if (cJSON_GetObjectItem(o, gone[i]))
            fail_msg("%s kept", gone[i]);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "native_tokens_prompt")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "provider_responses")),
                     OR_PROVIDER_RESPONSES_MAX);
    assert_int_equal(g.n_provider_responses, OR_PROVIDER_RESPONSES_MAX);
    assert_false(g.has_total_cost);
    assert_int_equal(g.latency_ms, -1);
    assert_int_equal(g.native_tokens_prompt, -1);
    assert_string_equal(g.provider_name, "");
    cJSON_Delete(o);
    or_generation_free(&g);
}

static void test_generation_refused(void **state)
{
    static const char *const bodies[] = {
        "", "{\"error\":{\"code\":404,\"message\":\"Generation not found\"}}", "[]",
        "{\"data\": []}", "{\"data\": \"x\"}", "{\"data\": {\"id\": \"other\"}}",
        "{\"data\": {}}", "{\"data\": {\"id\": \"g1\"}} x",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        or_generation g;
        rf_err err;
        rf_err_clear(&err);
        if (or_parse_generation(bodies[i], strlen(bodies[i]), "g1", &g, &err) != -1 ||
            err.code != EINVAL || g.json)
            fail_msg("body %zu accepted: %s", i, bodies[i]);
    }
    /* without an expected id, any record goes */
    or_generation g;
    rf_err err;
    assert_int_equal(or_parse_generation("{\"data\": {}}", 12, NULL, &g, &err), 0);
    assert_string_equal(g.json, "{}");
    or_generation_free(&g);
}

/* ---------------------------------------------------------------- a state store */

typedef struct fixture {
    char dir[64];
    store *st;
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/rfs-or.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    rf_err err;
    rf_err_clear(&err);
    fx->st = store_open(fx->dir, &err);
    if (!fx->st || store_start(fx->st, &err) < 0)
        fail_msg("store: %s", err.msg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->st)
        store_close(fx->st);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* A finished job at path with generation gen and this meta, as the jobs commit it. */
static void finished_job(store *st, const char *path, int64_t gen, const char *meta)
{
    prompt_attrs a = {.mode = 0644};
    rf_err err;
    rf_err_clear(&err);
    if (sp_install(st, path, "hi", 2, 1, gen, PS_PENDING, &a, 1000, &err) < 0)
        fail_msg("sp_install: %s", err.msg);
    job_commit *c = job_commit_new();
    assert_non_null(c);
    c->path = strdup(path);
    c->gen = gen;
    c->state = PS_DONE;
    c->finished_ms = 2000;
    c->out = strdup("answer");
    c->out_len = 6;
    c->meta = strdup(meta);
    sl_submit(st, c);
    assert_int_equal(store_flush(st), 0);
}

static cJSON *meta_of(store *st, const char *path)
{
    char *data;
    size_t len;
    rf_err err;
    if (sp_read(st, path, SP_META, 0, &data, &len, &err) < 0)
        fail_msg("sp_read: %s", err.msg);
    cJSON *o = cJSON_Parse(data);
    assert_non_null(o);
    assert_true(len > 0 && data[len - 1] == '\n');   /* a file's worth: pretty, one '\n' */
    assert_non_null(strstr(data, "\n  \""));
    free(data);
    return o;
}

static void test_meta_merge(void **state)
{
    fixture *fx = *state;
    finished_job(fx->st, "t/a", 7, "{\"tier\": \"t\", \"state\": \"done\", \"hops\": [1, 2]}\n");
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(sp_meta_merge(fx->st, 7, "openrouter",
                                   "{\"provider_name\":\"Infermatic\",\"latency\":12}", &err), 1);
    cJSON *m = meta_of(fx->st, "t/a");
    assert_string_equal(cJSON_GetObjectItem(m, "tier")->valuestring, "t");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "hops")), 2);
    cJSON *o = cJSON_GetObjectItem(m, "openrouter");
    assert_string_equal(cJSON_GetObjectItem(o, "provider_name")->valuestring, "Infermatic");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(m, "enriched")));
    cJSON_Delete(m);

    /* again: replaced, not repeated */
    assert_int_equal(sp_meta_merge(fx->st, 7, "openrouter", "{\"latency\":99}", &err), 1);
    m = meta_of(fx->st, "t/a");
    o = cJSON_GetObjectItem(m, "openrouter");
    assert_null(cJSON_GetObjectItem(o, "provider_name"));
    assert_int_equal(cJSON_GetObjectItem(o, "latency")->valueint, 99);
    int count = 0;
    for (cJSON *it = m->child; it; it = it->next)
        count += !strcmp(it->string, "openrouter") || !strcmp(it->string, "enriched");
    assert_int_equal(count, 2);
    cJSON_Delete(m);

    /* the stat size follows the new meta */
    prompt_row row;
    assert_int_equal(sp_get(fx->st, "t/a", &row, &err), 0);
    char *data;
    size_t len;
    assert_int_equal(sp_read(fx->st, "t/a", SP_META, 7, &data, &len, &err), 0);
    assert_int_equal(row.meta_size, len);
    free(data);

    /* another generation, a job still running (no meta), bad input */
    assert_int_equal(sp_meta_merge(fx->st, 8, "openrouter", "{}", &err), 0);
    prompt_attrs a = {.mode = 0644};
    assert_int_equal(sp_install(fx->st, "t/b", "x", 1, 2, 9, PS_PENDING, &a, 1, &err), 0);
    assert_int_equal(sp_meta_merge(fx->st, 9, "openrouter", "{}", &err), 0);
    assert_int_equal(sp_meta_merge(fx->st, 7, "openrouter", "[1]", &err), -EINVAL);
    assert_int_equal(sp_meta_merge(fx->st, 7, "openrouter", "{", &err), -EINVAL);
    assert_int_equal(sp_meta_merge(fx->st, 7, NULL, "{}", &err), -EINVAL);
    /* the rewritten prompt's new generation is not touched by the old one's merge */
    assert_int_equal(sp_replace_content(fx->st, "t/a", 7, "new", 3, 3, 10, PS_PENDING, 1, 1,
                                        &err), 0);
    assert_int_equal(sp_meta_merge(fx->st, 7, "openrouter", "{}", &err), 0);
    assert_int_equal(sp_meta_merge(fx->st, 10, "openrouter", "{}", &err), 0);
}

/* ---------------------------------------------------------------- routefs prices */

/* Run prices_main with args, stdout into *out (malloc'd). */
static int run_prices(char **argv, int argc, char **out)
{
    char path[] = "/tmp/rfs-or-out.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    int rc = prices_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    *out = calloc(1, (size_t)n + 1);
    assert_int_equal(pread(fd, *out, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return rc;
}

/* A copy with every run of column padding as two spaces, to compare. */
static char *squeeze(const char *out)
{
    char *squeezed = calloc(1, strlen(out) + 1), *w = squeezed;
    for (const char *c = out; *c; c++)
        if (!(*c == ' ' && c[1] == ' ' && c[2] == ' '))
            *w++ = *c;
    return squeezed;
}

static void test_cli_prices(void **state)
{
    fixture *fx = *state;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(prices_init(fx->st, &err), 0);
    published_price rows[] = {{"openai/gpt-4o", 2.5, 10, 0}, {"b/free:free", 0, 0, 0},
                              {"perplexity/sonar", 1, 1, 0.005}};
    assert_int_equal(prices_set_published(rows, 3, &err), 0);
    assert_int_equal(prices_observe("x", "llama3", 0.002, 1000, 1000, 0, 0), 1);
    prices_shutdown();
    assert_int_equal(store_flush(fx->st), 0);
    store_close(fx->st);
    fx->st = NULL;

    char cfg_path[128];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", fx->dir);
    FILE *f = fopen(cfg_path, "w");
    fputs("{\"providers\": {\"or\": {\"base_url\": \"https://openrouter.ai/api/v1\"},"
          " \"local\": {\"base_url\": \"http://127.0.0.1:1/v1\", \"free\": true},"
          " \"x\": {\"base_url\": \"http://127.0.0.1:2/v1\"}},"
          " \"prices\": {\"openai/gpt-4o\": [{\"prompt\": 2, \"completion\": 8},"
          "   {\"provider\": \"x\", \"prompt\": 3, \"completion\": 9}]},"
          " \"tiers\": {\"t\": {\"route\": \"openai/gpt-4o\"}}}", f);
    fclose(f);

    char *out;
    char *all[] = {"prices", "--state", fx->dir};
    assert_int_equal(run_prices(all, 3, &out), 0);
    /* header, then sorted by model, the sources in the order they apply */
    const char *want[] = {"MODEL", "*  local  free", "b/free:free  *  openrouter  0  0  0  20",
                          "llama3  x  observed  1  1  0  20",
                          "openai/gpt-4o  x  config  3  9  0  -",
                          "openai/gpt-4o  *  config  2  8  0  -",
                          "openai/gpt-4o  *  openrouter  2.5  10  0  20",
                          "perplexity/sonar  *  openrouter  1  1  0.005  20"};
    char *squeezed = squeeze(out);
    const char *at = squeezed;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *hit = strstr(at, want[i]);
        if (!hit)
            fail_msg("missing or out of order: \"%s\" in\n%s", want[i], out);
        at = hit + strlen(want[i]);
    }
    int nlines = 0;
    for (const char *c = out; *c; c++)
        nlines += *c == '\n';
    assert_int_equal(nlines, 8);
    free(squeezed);
    free(out);

    char *some[] = {"prices", "--state", fx->dir, "openai/gpt-4o", "none/such"};
    assert_int_equal(run_prices(some, 5, &out), 0);
    squeezed = squeeze(out);
    /* a free provider prices any model, first: nothing it serves costs anything */
    const char *free_line = strstr(squeezed, "openai/gpt-4o  local  free");
    const char *config_line = strstr(squeezed, "openai/gpt-4o  x  config");
    assert_true(free_line && config_line && free_line < config_line);
    assert_non_null(strstr(squeezed, "none/such  local  free"));
    assert_null(strstr(squeezed, "perplexity"));
    free(squeezed);
    free(out);

    /* without a free provider, a model nobody prices is an error (exit 1) */
    char cfg2[128];
    snprintf(cfg2, sizeof cfg2, "%s/other.json", fx->dir);
    f = fopen(cfg2, "w");
    fputs("{\"providers\": {\"or\": {\"base_url\": \"https://openrouter.ai/api/v1\"}},"
          " \"tiers\": {\"t\": {\"route\": \"m\"}}}", f);
    fclose(f);
    char *missing[] = {"prices", "--state", fx->dir, "--config", cfg2, "none/such",
                       "openai/gpt-4o"};
    assert_int_equal(run_prices(missing, 7, &out), 1);
    squeezed = squeeze(out);
    assert_non_null(strstr(squeezed, "openai/gpt-4o  *  openrouter  2.5  10  0  20"));
    free(squeezed);
    assert_null(strstr(out, "none/such"));
    assert_null(strstr(out, "config"));
    free(out);

    char *one[] = {"prices", "-s", fx->dir, "perplexity/sonar"};
    assert_int_equal(run_prices(one, 4, &out), 0);
    free(out);

    char *bad_cfg[] = {"prices", "--state", fx->dir, "--config", "/nonexistent/c.json"};
    assert_int_equal(run_prices(bad_cfg, 5, &out), 1);
    free(out);
    char *nothing[] = {"prices", "--state", "/nonexistent/state"};
    assert_int_equal(run_prices(nothing, 3, &out), 1);
    free(out);
    char *usage1[] = {"prices", "--bogus"};
    assert_int_equal(run_prices(usage1, 2, &out), 2);
    free(out);
    char *usage2[] = {"prices", "--state"};
    assert_int_equal(run_prices(usage2, 2, &out), 2);
    free(out);
    char *help[] = {"prices", "--help"};
    assert_int_equal(run_prices(help, 2, &out), 0);
    assert_non_null(strstr(out, "usage: routefs prices"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_real_body),
        cmocka_unit_test(test_models_nonsense_refused),
        cmocka_unit_test(test_models_bound_and_ids),
        cmocka_unit_test(test_key_real_body),
        cmocka_unit_test(test_key_unlimited_and_sim),
        cmocka_unit_test(test_key_nonsense_refused),
        cmocka_unit_test(test_key_extras_bounded),
        cmocka_unit_test(test_generation_real_body),
        cmocka_unit_test(test_generation_sanitised),
        cmocka_unit_test(test_generation_refused),
        cmocka_unit_test_setup_teardown(test_meta_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cli_prices, setup, teardown),
    };
    return cmocka_run_group_tests_name("openrouter", tests, NULL, NULL);
}
