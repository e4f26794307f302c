/* test_config.c — config_parse, config_parse_route, lookups, files and keys (cmocka).
 *
 * JSON in these tables is written with ' for " (dq() converts) so it stays readable.
 * Every table row (route or bad config) is its own cmocka test, named in the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- helpers ---- */

/* A malloc'd copy of s with every ' turned into ". */
static char *dq(const char *s)
{
    char *copy = strdup(s);
    assert_non_null(copy);
    for (char *p = copy; *p; p++)
        if (*p == '\'')
            *p = '"';
    return copy;
}

/* Parse s (with ' for "), failing the test with the message when it does not parse. */
static rf_config *parse_ok(const char *s)
{
    char *text = dq(s);
    rf_config *cfg = NULL;
    rf_err err;
    rf_err_clear(&err);
    int rc = config_parse(text, strlen(text), &cfg, &err);
    free(text);
    if (rc != 0)
        fail_msg("config did not parse: %s", err.msg);
    assert_non_null(cfg);
    return cfg;
}

/* Parse s and expect failure with EINVAL and exactly `message`. */
static void expect_parse_error(const char *s, const char *message)
{
    char *text = dq(s);
    size_t len = strlen(text);
    /* an exact-size copy: config_parse must not read past len */
    char *exact = malloc(len ? len : 1);
    assert_non_null(exact);
    memcpy(exact, text, len);
    free(text);
    rf_config *cfg = (rf_config *)&cfg;
    rf_err err;
    rf_err_clear(&err);
    int rc = config_parse(exact, len, &cfg, &err);
    free(exact);
    assert_int_equal(rc, -1);
    assert_null(cfg);
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, message);
}

static char *write_temp_file(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void assert_hop(const rf_hop *hop, const char *provider, const char *model)
{
    assert_string_equal(hop->provider, provider);
    assert_string_equal(hop->model, model);
}

/* ---- valid configs ---- */

/* DESIGN.md §2, verbatim but for the quotes. */
static const char design_sketch[] =
    "{\n"
    "  'providers': {\n"
    "    'openrouter': {'base_url': 'https://openrouter.ai/api/v1', 'api_key_env': 'OPENROUTER_API_KEY',\n"
    "                   'kind': 'openrouter', 'rpm': 500, 'timeout_ms': 60000},\n"
    "    'openai':     {'base_url': 'https://api.openai.com/v1', 'api_key_env': 'OPENAI_API_KEY'},\n"
    "    'local':      {'base_url': 'http://127.0.0.1:11434/v1'}\n"
    "  },\n"
    "  'prices': {'openai/gpt-4o': {'prompt': 2.5, 'completion': 10.0}},\n"
    "  'budget': {'daily_usd': 5.0, 'monthly_usd': 100.0},\n"
    "  'tiers': {\n"
    "    'high-stakes': {\n"
    "      'route': ['anthropic/claude-3.5-sonnet', 'openai/gpt-4o'],\n"
    "      'provider': {'order': ['Anthropic', 'OpenAI'], 'allow_fallbacks': true, 'require_parameters': true},\n"
    "      'max_tokens': 1200, 'retries': 3, 'timeout_ms': 60000, 'on_exhausted': 'queue'\n"
    "    },\n"
    "    'high-volume': {'route': 'google/gemini-flash-1.5,meta-llama/llama-3-70b-instruct', 'max_tokens': 800},\n"
    "    'lightweight': {'route': ['meta-llama/llama-3-8b-instruct',\n"
    "                              {'provider': 'local', 'model': 'llama3:8b'}],\n"
    "                    'timeout_ms': 5000}\n"
    "  }\n"
    "}\n";

/* Every tier default except max_tokens, timeout_ms and the provider prefs. */
static void assert_tier_defaults(const rf_tier *t)
{
    assert_int_equal(t->retries, 2);
    assert_int_equal(t->retry_base_ms, 250);
    assert_int_equal(t->retry_cap_ms, 8000);
    assert_int_equal(t->retry_after_max_ms, 30000);
    assert_int_equal(t->concurrency, 16);
    assert_null(t->system_prompt);
    assert_int_equal(t->on_exhausted, RF_EXHAUSTED_FAIL);
    assert_int_equal(t->park_schedule_len, 3);
    assert_int_equal(t->park_schedule_ms[0], 60000);
    assert_int_equal(t->park_schedule_ms[1], 300000);
    assert_int_equal(t->park_schedule_ms[2], 900000);
    assert_true(t->daily_usd < 0);
    assert_int_equal(t->require_price, 0);
}

static void test_design_sketch(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(design_sketch);
    assert_int_equal(cfg->refcount, 1);

    assert_int_equal(cfg->providers_len, 3);
    const rf_provider *or = &cfg->providers[0], *oa = &cfg->providers[1];
    const rf_provider *local = &cfg->providers[2];
    assert_string_equal(or->name, "openrouter");
    assert_string_equal(or->base_url, "https://openrouter.ai/api/v1");
    assert_string_equal(or->api_key_env, "OPENROUTER_API_KEY");
    assert_null(or->api_key_file);
    assert_int_equal(or->kind, RF_KIND_OPENROUTER);
    assert_int_equal(or->rpm, 500);
    assert_int_equal(or->timeout_ms, 60000);
    assert_null(or->supported_params);
    assert_string_equal(oa->name, "openai");
    assert_int_equal(oa->kind, RF_KIND_OPENAI);
    assert_int_equal(oa->rpm, 0);
    assert_int_equal(oa->max_concurrent, 0);
    assert_int_equal(oa->timeout_ms, 0);
    assert_string_equal(local->base_url, "http://127.0.0.1:11434/v1");
    assert_null(local->api_key_env);
    assert_int_equal(local->kind, RF_KIND_OPENAI);
    assert_ptr_equal(config_provider(cfg, "local"), local);
    assert_null(config_provider(cfg, "Local"));

    assert_int_equal(cfg->prices_len, 1);
    const rf_price *price = config_price(cfg, "openai", "openai/gpt-4o");
    assert_non_null(price);
    assert_null(price->provider);
    assert_true(price->prompt_per_m == 2.5 && price->completion_per_m == 10.0);
    assert_null(config_price(cfg, "openai", "gpt-4o"));
    assert_true(cfg->daily_usd == 5.0 && cfg->monthly_usd == 100.0);

    assert_int_equal(cfg->tiers_len, 3);
    const rf_tier *hs = config_tier(cfg, "high-stakes");
    assert_ptr_equal(hs, &cfg->tiers[0]);
    assert_int_equal(hs->route_len, 2);
    assert_hop(&hs->route[0], "openrouter", "anthropic/claude-3.5-sonnet");
    assert_hop(&hs->route[1], "openrouter", "openai/gpt-4o");
    assert_string_equal(hs->provider_prefs_json,
                        "{\"order\":[\"Anthropic\",\"OpenAI\"],\"allow_fallbacks\":true,"
                        "\"require_parameters\":true}");
    assert_int_equal(hs->allow_fallbacks, 1);
    assert_int_equal(hs->require_parameters, 1);
    assert_int_equal(hs->max_tokens, 1200);
    assert_int_equal(hs->retries, 3);
    assert_int_equal(hs->timeout_ms, 60000);
    assert_int_equal(hs->on_exhausted, RF_EXHAUSTED_QUEUE);

    const rf_tier *hv = config_tier(cfg, "high-volume");
    assert_int_equal(hv->route_len, 2);
    assert_hop(&hv->route[0], "openrouter", "google/gemini-flash-1.5");
    assert_hop(&hv->route[1], "openrouter", "meta-llama/llama-3-70b-instruct");
    assert_int_equal(hv->max_tokens, 800);
    assert_null(hv->provider_prefs_json);
    assert_int_equal(hv->allow_fallbacks, 1);
    assert_int_equal(hv->require_parameters, 0);
    assert_int_equal(hv->timeout_ms, 60000);
    assert_tier_defaults(hv);

    const rf_tier *lw = config_tier(cfg, "lightweight");
    assert_int_equal(lw->route_len, 2);
    assert_hop(&lw->route[0], "openrouter", "meta-llama/llama-3-8b-instruct");
    assert_hop(&lw->route[1], "local", "llama3:8b");
    assert_int_equal(lw->timeout_ms, 5000);
    assert_int_equal(lw->max_tokens, 1024);
    assert_tier_defaults(lw);
    assert_null(config_tier(cfg, "nope"));

    /* config.json reads back pretty-printed and parses to the same document */
    assert_non_null(cfg->source_json);
    assert_non_null(strstr(cfg->source_json, "\n  \"tiers\": {\n"));  /* jq style, for sed -i */
    rf_config *again = NULL;
    rf_err err;
    assert_int_equal(config_parse(cfg->source_json, strlen(cfg->source_json), &again, &err), 0);
    assert_string_equal(again->source_json, cfg->source_json);
    config_unref(again);
    config_unref(cfg);
}

static void test_minimal_defaults(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok("{'providers': {'p': {'base_url': 'http://h'}}, "
                              "'tiers': {'t': {'route': 'm'}}}");
    assert_int_equal(cfg->providers_len, 1);
    assert_int_equal(cfg->providers[0].kind, RF_KIND_OPENAI);
    assert_int_equal(cfg->prices_len, 0);
    assert_null(config_price(cfg, "p", "m"));
    assert_true(cfg->daily_usd < 0 && cfg->monthly_usd < 0);
    const rf_tier *t = config_tier(cfg, "t");
    assert_int_equal(t->route_len, 1);
    assert_hop(&t->route[0], "p", "m");
    assert_int_equal(t->max_tokens, 1024);
    assert_int_equal(t->timeout_ms, 60000);
    assert_int_equal(t->allow_fallbacks, 1);
    assert_int_equal(t->require_parameters, 0);
    assert_null(t->provider_prefs_json);
    assert_tier_defaults(t);
    config_unref(cfg);
}

static void test_every_field(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(
        "{'$schema': 'x', 'comment': 'c', '_comment': {'any': ['thing']},"
        " 'providers': {"
        "   'local': {'base_url': 'HTTP://localhost:8080/v1///', 'api_key_file': '/run/key',"
        "             'rpm': 0, 'max_concurrent': 4, 'timeout_ms': 1500,"
        "             'supported_parameters': ['temperature', 'tools'], 'comment': 'gpu box'},"
        "   'proxy': {'base_url': 'https://example.com/openrouter.ai', 'kind': 'openai'},"
        "   'router': {'base_url': 'https://my.openrouter.ai/api/v1/', 'supported_parameters': []}},"
        " 'prices': {'llama3:8b': [{'prompt': 0, 'completion': 0, 'provider': 'local'},"
        "                          {'prompt': 0.1, 'completion': 0.2}],"
        "            'gpt': {'prompt': 1, 'completion': 2, 'provider': 'proxy', 'comment': 'x'}},"
        " 'budget': {'daily_usd': 0, 'comment': 'no monthly cap'},"
        " 'tiers': {'batch': {'route': ' llama3:8b , mistral/x:free ', 'max_tokens': 10,"
        "   'retries': 0, 'retry_base_ms': 0, 'retry_cap_ms': 100, 'retry_after_max_ms': 0,"
        "   'timeout_ms': 1, 'concurrency': 10000, 'system_prompt': 'Be brief.',"
        "   'on_exhausted': 'fail', 'park_schedule_ms': [1000, 2e3], 'daily_usd': 1.25,"
        "   'require_price': true,"
        "   'provider': {'allow_fallbacks': false, 'sort': 'price', 'max_price': {'prompt': 1}},"
        "   'comment': 'nightly'},"
        "  'nulls': {'route': ['m'], 'system_prompt': null, 'daily_usd': null, 'provider': null},"
        "  'empty-system': {'route': ['m'], 'system_prompt': '', 'retries': 20}}}");

    const rf_provider *local = config_provider(cfg, "local");
    assert_string_equal(local->base_url, "HTTP://localhost:8080/v1");
    assert_string_equal(local->api_key_file, "/run/key");
    assert_null(local->api_key_env);
    assert_int_equal(local->max_concurrent, 4);
    assert_int_equal(local->timeout_ms, 1500);
    assert_int_equal(local->supported_params_len, 2);
    assert_string_equal(local->supported_params[0], "temperature");
    assert_string_equal(local->supported_params[1], "tools");
    assert_int_equal(config_provider(cfg, "proxy")->kind, RF_KIND_OPENAI);
    const rf_provider *router = config_provider(cfg, "router");
    assert_int_equal(router->kind, RF_KIND_OPENROUTER);
    assert_string_equal(router->base_url, "https://my.openrouter.ai/api/v1");
    assert_non_null(router->supported_params);   /* known: supports nothing listed */
    assert_int_equal(router->supported_params_len, 0);

    assert_int_equal(cfg->prices_len, 3);
    assert_string_equal(config_price(cfg, "local", "llama3:8b")->provider, "local");
    assert_null(config_price(cfg, "proxy", "llama3:8b")->provider);
    assert_true(config_price(cfg, NULL, "llama3:8b")->completion_per_m == 0.2);
    assert_non_null(config_price(cfg, "proxy", "gpt"));
    assert_null(config_price(cfg, "local", "gpt"));
    assert_null(config_price(cfg, NULL, "gpt"));
    assert_true(cfg->daily_usd == 0 && cfg->monthly_usd < 0);

    const rf_tier *t = config_tier(cfg, "batch");
    assert_int_equal(t->route_len, 2);
    assert_hop(&t->route[0], "local", "llama3:8b");
    assert_hop(&t->route[1], "local", "mistral/x:free");
    assert_int_equal(t->max_tokens, 10);
    assert_int_equal(t->retries, 0);
    assert_int_equal(t->retry_base_ms, 0);
    assert_int_equal(t->retry_cap_ms, 100);
    assert_int_equal(t->retry_after_max_ms, 0);
    assert_int_equal(t->timeout_ms, 1);
    assert_int_equal(t->concurrency, 10000);
    assert_string_equal(t->system_prompt, "Be brief.");
    assert_int_equal(t->on_exhausted, RF_EXHAUSTED_FAIL);
    assert_int_equal(t->park_schedule_len, 2);
    assert_int_equal(t->park_schedule_ms[0], 1000);
    assert_int_equal(t->park_schedule_ms[1], 2000);
    assert_true(t->daily_usd == 1.25);
    assert_int_equal(t->require_price, 1);
    assert_int_equal(t->allow_fallbacks, 0);
    assert_int_equal(t->require_parameters, 0);
    assert_string_equal(t->provider_prefs_json,
                        "{\"allow_fallbacks\":false,\"sort\":\"price\",\"max_price\":{\"prompt\":1}}");

    const rf_tier *nulls = config_tier(cfg, "nulls");
    assert_null(nulls->provider_prefs_json);
    assert_tier_defaults(nulls);
    const rf_tier *empty = config_tier(cfg, "empty-system");
    assert_null(empty->system_prompt);
    assert_int_equal(empty->retries, 20);
    config_unref(cfg);
}

#define P_OR   "'providers': {'or': {'base_url': 'https://openrouter.ai/api/v1'}}"
#define T_FAST "'tiers': {'fast': {'route': 'm'}}"
#define MINIMAL "{" P_OR ", " T_FAST "}"

static void test_refcount(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(MINIMAL);
    assert_int_equal(cfg->refcount, 1);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_int_equal(cfg->refcount, 2);
    config_unref(cfg);
    assert_int_equal(cfg->refcount, 1);
    config_unref(cfg);          /* freed: valgrind/ASan check the rest */
    config_unref(NULL);
    assert_null(config_ref(NULL));
}

/* A config that is not NUL-terminated and ends in whitespace; a UTF-8 BOM is accepted. */
static void test_exact_length_buffer(void **state)
{
    (void)state;
    char *text = dq("\xEF\xBB\xBF" MINIMAL " \n\t");
    size_t len = strlen(text);
    char *exact = malloc(len);
    assert_non_null(exact);
    memcpy(exact, text, len);
    rf_config *cfg = NULL;
    rf_err err;
    assert_int_equal(config_parse(exact, len, &cfg, &err), 0);
    assert_int_equal(cfg->tiers_len, 1);
    config_unref(cfg);
    free(exact);
    free(text);
}

static void test_nul_byte(void **state)
{
    (void)state;
    static const char text[] = "{\n \"providers\": \0 {}}";
    rf_config *cfg = NULL;
    rf_err err;
    assert_int_equal(config_parse(text, sizeof text - 1, &cfg, &err), -1);
    assert_null(cfg);
    assert_string_equal(err.msg, "line 2, column 15: invalid JSON (NUL byte)");
}

/* A path longer than a message holds is cut and marked, not overflowed. */
static void test_long_path(void **state)
{
    (void)state;
    char name[700], text[900];
    memset(name, 'p', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(text, sizeof text, "{\"providers\": {\"%s\": {\"base_url\": 1}}, \"tiers\": {}}", name);
    rf_config *cfg = NULL;
    rf_err err;
    assert_int_equal(config_parse(text, strlen(text), &cfg, &err), -1);
    assert_int_equal(strncmp(err.msg, "providers.ppp", 13), 0);
    assert_non_null(strstr(err.msg, "...: expected a string"));
}

/* ---- routes: config_parse_route ---- */

typedef struct route_case {
    const char *name;
    const char *route;          /* JSON, ' for " */
    const char *default_provider;
    const char *hops[4][2];     /* expected {provider, model}, up to a {NULL} row */
    const char *error;          /* expected message instead, or NULL */
} route_case;

static const route_case route_cases[] = {
    {"route_list", "['a/b', 'c']", "or", {{"or", "a/b"}, {"or", "c"}}, NULL},
    {"route_single_string", "'openai/gpt-4o'", "or", {{"or", "openai/gpt-4o"}}, NULL},
    {"route_comma_string_spaces", "' google/gemini-flash-1.5 ,meta-llama/llama-3-70b-instruct  ,x'",
     "or", {{"or", "google/gemini-flash-1.5"}, {"or", "meta-llama/llama-3-70b-instruct"}, {"or", "x"}},
     NULL},
    {"route_colon_models", "['llama3:8b', 'meta-llama/llama-3-8b-instruct:free']", "local",
     {{"local", "llama3:8b"}, {"local", "meta-llama/llama-3-8b-instruct:free"}}, NULL},
    {"route_colon_in_comma_string", "'local:llama3:8b, qwen/qwen-2.5:free'", "or",
     {{"or", "local:llama3:8b"}, {"or", "qwen/qwen-2.5:free"}}, NULL},
    {"route_object_hops", "[{'provider': 'local', 'model': 'llama3:8b'}, {'model': 'm'}, 'n']", "or",
     {{"local", "llama3:8b"}, {"or", "m"}, {"or", "n"}}, NULL},
    {"route_empty_array", "[]", "or", {{NULL}}, "route: empty route"},
    {"route_empty_string", "''", "or", {{NULL}}, "route: empty route"},
    {"route_blank_string", "'  '", "or", {{NULL}}, "route: empty route"},
    {"route_empty_element", "'a,,b'", "or", {{NULL}}, "route[1]: empty model name"},
    {"route_trailing_comma", "'a, '", "or", {{NULL}}, "route[1]: empty model name"},
    {"route_empty_model_in_list", "['a', '']", "or", {{NULL}}, "route[1]: empty model name"},
    {"route_number", "5", "or", {{NULL}},
     "route: expected an array of hops or a comma-separated string"},
    {"route_hop_number", "['a', 7]", "or", {{NULL}},
     "route[1]: expected a model name or an object with \"provider\" and \"model\""},
    {"route_hop_missing_model", "[{'provider': 'or'}]", "or", {{NULL}},
     "route[0]: missing required field \"model\""},
    {"route_hop_unknown_key", "[{'model': 'm', 'weight': 2}]", "or", {{NULL}},
     "route[0]: unknown field \"weight\""},
    {"route_hop_duplicate_key", "[{'model': 'm', 'model': 'n'}]", "or", {{NULL}},
     "route[0]: duplicate field \"model\""},
    {"route_hop_model_type", "[{'model': 3}]", "or", {{NULL}},
     "route[0].model: expected a non-empty string"},
    {"route_model_control_char", "['a\\u0007b']", "or", {{NULL}},
     "route[0]: model name must not contain control characters"},
    {"route_no_default_provider", "['m']", NULL, {{NULL}},
     "route[0]: no default provider for model \"m\""},
};

static void test_route_case(void **state)
{
    const route_case *c = *state;
    char *text = dq(c->route);
    cJSON *route = cJSON_Parse(text);
    free(text);
    assert_non_null(route);
    rf_hop *hops = (rf_hop *)&hops;
    size_t n = 99;
    rf_err err;
    rf_err_clear(&err);
    int rc = config_parse_route(route, c->default_provider, &hops, &n, &err);
    cJSON_Delete(route);
    if (c->error) {
        assert_int_equal(rc, -1);
        assert_null(hops);
        assert_int_equal(n, 0);
        assert_int_equal(err.code, EINVAL);
        assert_string_equal(err.msg, c->error);
        return;
    }
    if (rc != 0)
        fail_msg("route did not parse: %s", err.msg);
    size_t expected = 0;
    while (expected < 4 && c->hops[expected][0])
        expected++;
    assert_int_equal(n, expected);
    for (size_t i = 0; i < n; i++)
        assert_hop(&hops[i], c->hops[i][0], c->hops[i][1]);
    config_free_hops(hops, n);
}

/* ---- bad configs: each row is one test ---- */

typedef struct bad_config {
    const char *name;
    const char *json;           /* ' for " */
    const char *message;        /* exact */
} bad_config;

static const bad_config bad_configs[] = {
    /* JSON syntax */
    {"syntax_missing_comma",
     "{\n  'providers': {\n    'or': {'base_url': 'x' 'kind': 1}}}",
     "line 3, column 28: invalid JSON"},
    /* cJSON places a bad object key one character late */
    {"syntax_trailing_comma", "{'tiers': {},}", "line 1, column 15: invalid JSON"},
    {"syntax_column_counts_characters", "{'\xC3\xA9': 1 'x': 2}",
     "line 1, column 9: invalid JSON"},
    {"syntax_truncated", "{'providers': {\n", "line 2, column 1: invalid JSON"},
    {"syntax_truncated_value", "{'providers': 12", "line 1, column 17: invalid JSON"},
    {"syntax_bad_last_char", "{'providers': 12]", "line 1, column 17: invalid JSON"},
    {"syntax_trailing_garbage", MINIMAL " x", "line 1, column 104: invalid JSON"},
    {"syntax_empty", " \n ", "config is empty"},
    {"not_an_object", "['providers']", "config must be a JSON object"},
    /* top level */
    {"unknown_top_level", "{" P_OR ", " T_FAST ", 'tier': {}}", "unknown field \"tier\""},
    {"duplicate_top_level", "{" P_OR ", " T_FAST ", 'budget': {}, 'budget': {}}",
     "duplicate field \"budget\""},
    {"missing_providers", "{" T_FAST "}", "missing required field \"providers\""},
    {"missing_tiers", "{" P_OR "}", "missing required field \"tiers\""},
    {"empty_providers", "{'providers': {}, " T_FAST "}", "providers: expected a non-empty object"},
    {"providers_array", "{'providers': [], " T_FAST "}", "providers: expected a non-empty object"},
    {"empty_tiers", "{" P_OR ", 'tiers': {}}", "tiers: expected a non-empty object"},
    /* providers */
    {"duplicate_provider",
     "{'providers': {'or': {'base_url': 'http://a'}, 'or': {'base_url': 'http://b'}}, " T_FAST "}",
     "providers: duplicate provider \"or\""},
    {"provider_name_empty", "{'providers': {'': {'base_url': 'http://a'}}, " T_FAST "}",
     "providers: provider name must not be empty"},
    {"provider_name_control", "{'providers': {'a\\tb': {'base_url': 'http://a'}}, " T_FAST "}",
     "providers: provider name must not contain control characters"},
    {"provider_not_object", "{'providers': {'or': 'https://openrouter.ai'}, " T_FAST "}",
     "providers.or: expected an object"},
    {"provider_unknown_field", "{'providers': {'or': {'base_url': 'http://a', 'url': 'x'}}, " T_FAST "}",
     "providers.or: unknown field \"url\""},
    {"provider_literal_key",
     "{'providers': {'openai': {'base_url': 'https://api.openai.com/v1', 'api_key': 'sk-123'}}, "
     T_FAST "}",
     "providers.openai.api_key: literal API keys are not allowed; use api_key_env or api_key_file"},
    {"provider_missing_base_url", "{'providers': {'or': {'kind': 'openai'}}, " T_FAST "}",
     "providers.or: missing required field \"base_url\""},
    {"provider_base_url_scheme", "{'providers': {'or': {'base_url': 'ftp://host'}}, " T_FAST "}",
     "providers.or.base_url: expected an http:// or https:// URL"},
    {"provider_base_url_no_host", "{'providers': {'or': {'base_url': 'https://'}}, " T_FAST "}",
     "providers.or.base_url: expected an http:// or https:// URL"},
    {"provider_base_url_space", "{'providers': {'or': {'base_url': 'http://a b'}}, " T_FAST "}",
     "providers.or.base_url: expected an http:// or https:// URL"},
    {"provider_base_url_type", "{'providers': {'or': {'base_url': 1}}, " T_FAST "}",
     "providers.or.base_url: expected a string"},
    {"provider_env_name",
     "{'providers': {'or': {'base_url': 'http://a', 'api_key_env': '1KEY'}}, " T_FAST "}",
     "providers.or.api_key_env: \"1KEY\" is not a valid environment variable name"},
    {"provider_env_and_file",
     "{'providers': {'or': {'base_url': 'http://a', 'api_key_env': 'K', 'api_key_file': '/k'}}, "
     T_FAST "}",
     "providers.or: use either api_key_env or api_key_file, not both"},
    {"provider_key_file_empty",
     "{'providers': {'or': {'base_url': 'http://a', 'api_key_file': ''}}, " T_FAST "}",
     "providers.or.api_key_file: expected a non-empty string"},
    {"provider_kind", "{'providers': {'or': {'base_url': 'http://a', 'kind': 'azure'}}, " T_FAST "}",
     "providers.or.kind: expected \"openai\" or \"openrouter\""},
    {"provider_rpm_negative", "{'providers': {'or': {'base_url': 'http://a', 'rpm': -1}}, " T_FAST "}",
     "providers.or.rpm: expected a non-negative integer"},
    {"provider_timeout_string",
     "{'providers': {'or': {'base_url': 'http://a', 'timeout_ms': '5000'}}, " T_FAST "}",
     "providers.or.timeout_ms: expected a non-negative integer"},
    {"provider_supported_params_type",
     "{'providers': {'or': {'base_url': 'http://a', 'supported_parameters': 'tools'}}, " T_FAST "}",
     "providers.or.supported_parameters: expected an array of strings"},
    {"provider_supported_params_item",
     "{'providers': {'or': {'base_url': 'http://a', 'supported_parameters': ['tools', 1]}}, "
     T_FAST "}",
     "providers.or.supported_parameters[1]: expected a non-empty string"},
    /* tiers */
    {"tier_unknown_field", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'max_token': 5}}}",
     "tiers.fast: unknown field \"max_token\""},
    {"tier_duplicate", "{" P_OR ", 'tiers': {'fast': {'route': 'm'}, 'fast': {'route': 'n'}}}",
     "tiers: duplicate tier \"fast\""},
    {"tier_duplicate_field", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'route': 'n'}}}",
     "tiers.fast: duplicate field \"route\""},
    {"tier_not_object", "{" P_OR ", 'tiers': {'fast': ['m']}}", "tiers.fast: expected an object"},
    {"tier_missing_route", "{" P_OR ", 'tiers': {'fast': {'max_tokens': 5}}}",
     "tiers.fast: missing required field \"route\""},
    {"tier_empty_route_list", "{" P_OR ", 'tiers': {'x': {'route': []}}}",
     "tiers.x.route: empty route"},
    {"tier_empty_route_string", "{" P_OR ", 'tiers': {'x': {'route': ''}}}",
     "tiers.x.route: empty route"},
    {"tier_route_empty_element", "{" P_OR ", 'tiers': {'x': {'route': 'a, ,b'}}}",
     "tiers.x.route[1]: empty model name"},
    {"tier_route_unknown_provider",
     "{" P_OR ", 'tiers': {'x': {'route': ['m', {'provider': 'nope', 'model': 'n'}]}}}",
     "tiers.x.route[1]: unknown provider \"nope\""},
    {"tier_route_hop_unknown_key",
     "{" P_OR ", 'tiers': {'x': {'route': [{'model': 'm', 'prvider': 'or'}]}}}",
     "tiers.x.route[0]: unknown field \"prvider\""},
    {"tier_route_hop_empty_provider",
     "{" P_OR ", 'tiers': {'x': {'route': [{'model': 'm', 'provider': ''}]}}}",
     "tiers.x.route[0].provider: expected a non-empty string"},
    {"tier_route_type", "{" P_OR ", 'tiers': {'x': {'route': {'model': 'm'}}}}",
     "tiers.x.route: expected an array of hops or a comma-separated string"},
    {"tier_max_tokens_string", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'max_tokens': '100'}}}",
     "tiers.fast.max_tokens: expected a positive integer"},
    {"tier_max_tokens_zero", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'max_tokens': 0}}}",
     "tiers.fast.max_tokens: expected a positive integer"},
    {"tier_max_tokens_fraction", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'max_tokens': 1.5}}}",
     "tiers.fast.max_tokens: expected a positive integer"},
    {"tier_max_tokens_huge", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'max_tokens': 1e10}}}",
     "tiers.fast.max_tokens: too large (at most 2147483647)"},
    {"tier_retries_range", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'retries': 21}}}",
     "tiers.fast.retries: expected an integer from 0 to 20"},
    {"tier_retry_base_negative", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'retry_base_ms': -1}}}",
     "tiers.fast.retry_base_ms: expected a non-negative integer"},
    {"tier_timeout_negative", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'timeout_ms': -5}}}",
     "tiers.fast.timeout_ms: expected a positive integer"},
    {"tier_timeout_zero", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'timeout_ms': 0}}}",
     "tiers.fast.timeout_ms: expected a positive integer"},
    {"tier_concurrency_range", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'concurrency': 0}}}",
     "tiers.fast.concurrency: expected an integer from 1 to 10000"},
    {"tier_system_prompt_type", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'system_prompt': ['a']}}}",
     "tiers.fast.system_prompt: expected a string"},
    {"tier_on_exhausted", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'on_exhausted': 'retry'}}}",
     "tiers.fast.on_exhausted: expected \"fail\" or \"queue\""},
    {"tier_park_schedule_item",
     "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'park_schedule_ms': [60000, 0]}}}",
     "tiers.fast.park_schedule_ms[1]: expected a positive integer"},
    {"tier_park_schedule_empty", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'park_schedule_ms': []}}}",
     "tiers.fast.park_schedule_ms: expected a non-empty array of positive integers"},
    {"tier_daily_usd_negative", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'daily_usd': -2}}}",
     "tiers.fast.daily_usd: expected a non-negative number"},
    {"tier_require_price_type", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'require_price': 1}}}",
     "tiers.fast.require_price: expected true or false"},
    {"tier_provider_type", "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'provider': ['OpenAI']}}}",
     "tiers.fast.provider: expected an object"},
    {"tier_provider_allow_fallbacks",
     "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'provider': {'allow_fallbacks': 'no'}}}}",
     "tiers.fast.provider.allow_fallbacks: expected true or false"},
    {"tier_provider_nested_duplicate",
     "{" P_OR ", 'tiers': {'fast': {'route': 'm', 'provider': {'max_price': {'prompt': 1, 'prompt': 2}}}}}",
     "tiers.fast.provider.max_price: duplicate field \"prompt\""},
    /* tier names */
    {"tier_name_reserved", "{" P_OR ", 'tiers': {'status': {'route': 'm'}}}",
     "tiers: tier name \"status\" is taken by a file at the mount root"},
    {"tier_name_reserved_config", "{" P_OR ", 'tiers': {'config.json': {'route': 'm'}}}",
     "tiers: tier name \"config.json\" is taken by a file at the mount root"},
    {"tier_name_dot", "{" P_OR ", 'tiers': {'.': {'route': 'm'}}}",
     "tiers: tier name \".\" must not start with '.'"},
    {"tier_name_dotdot", "{" P_OR ", 'tiers': {'..': {'route': 'm'}}}",
     "tiers: tier name \"..\" must not start with '.'"},
    {"tier_name_hidden", "{" P_OR ", 'tiers': {'.cache': {'route': 'm'}}}",
     "tiers: tier name \".cache\" must not start with '.'"},
    {"tier_name_slash", "{" P_OR ", 'tiers': {'a/b': {'route': 'm'}}}",
     "tiers: tier name \"a/b\" must not contain '/'"},
    {"tier_name_empty", "{" P_OR ", 'tiers': {'': {'route': 'm'}}}",
     "tiers: tier name must not be empty"},
    {"tier_name_control", "{" P_OR ", 'tiers': {'a\\nb': {'route': 'm'}}}",
     "tiers: tier name must not contain control characters"},
    {"tier_name_too_long",
     "{" P_OR ", 'tiers': {'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': {'route': 'm'}}}",
     "tiers: tier name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is too long "
     "(at most 64 bytes)"},
    /* prices and budget */
    {"price_duplicate_model",
     "{" P_OR ", 'prices': {'m': {'prompt': 1, 'completion': 1}, 'm': {'prompt': 2, 'completion': 2}}, "
     T_FAST "}",
     "prices: duplicate model \"m\""},
    {"price_negative", "{" P_OR ", 'prices': {'m': {'prompt': -1, 'completion': 1}}, " T_FAST "}",
     "prices.m.prompt: expected a non-negative number"},
    {"price_string", "{" P_OR ", 'prices': {'m': {'prompt': 1, 'completion': '1'}}, " T_FAST "}",
     "prices.m.completion: expected a non-negative number"},
    {"price_infinite", "{" P_OR ", 'prices': {'m': {'prompt': 1e999, 'completion': 1}}, " T_FAST "}",
     "prices.m.prompt: expected a non-negative number"},
    {"price_missing_completion", "{" P_OR ", 'prices': {'m': {'prompt': 1}}, " T_FAST "}",
     "prices.m: missing required field \"completion\""},
    {"price_unknown_field", "{" P_OR ", 'prices': {'m': {'prompt': 1, 'completion': 1, 'cached': 0}}, "
     T_FAST "}",
     "prices.m: unknown field \"cached\""},
    {"price_unknown_provider",
     "{" P_OR ", 'prices': {'m': {'prompt': 1, 'completion': 1, 'provider': 'nope'}}, " T_FAST "}",
     "prices.m.provider: unknown provider \"nope\""},
    {"price_array_duplicate_provider",
     "{" P_OR ", 'prices': {'m': [{'prompt': 1, 'completion': 1, 'provider': 'or'},"
     " {'prompt': 2, 'completion': 2, 'provider': 'or'}]}, " T_FAST "}",
     "prices.m[1]: duplicate price for provider \"or\""},
    {"price_array_duplicate_any",
     "{" P_OR ", 'prices': {'m': [{'prompt': 1, 'completion': 1}, {'prompt': 2, 'completion': 2}]}, "
     T_FAST "}",
     "prices.m[1]: duplicate price without \"provider\""},
    {"price_array_empty", "{" P_OR ", 'prices': {'m': []}, " T_FAST "}",
     "prices.m: expected a price object or a non-empty array of them"},
    {"price_not_object", "{" P_OR ", 'prices': {'m': 2.5}, " T_FAST "}",
     "prices.m: expected an object"},
    {"prices_type", "{" P_OR ", 'prices': [], " T_FAST "}", "prices: expected an object"},
    {"budget_negative", "{" P_OR ", 'budget': {'daily_usd': -1}, " T_FAST "}",
     "budget.daily_usd: expected a non-negative number"},
    {"budget_string", "{" P_OR ", 'budget': {'monthly_usd': '100'}, " T_FAST "}",
     "budget.monthly_usd: expected a non-negative number"},
    {"budget_unknown_field", "{" P_OR ", 'budget': {'weekly_usd': 1}, " T_FAST "}",
     "budget: unknown field \"weekly_usd\""},
};

static void test_bad_config(void **state)
{
    const bad_config *c = *state;
    expect_parse_error(c->json, c->message);
}

/* ---- files ---- */

static void test_load_file(void **state)
{
    (void)state;
    char *text = dq(MINIMAL);
    char *path = write_temp_file(text, strlen(text));
    free(text);
    rf_config *cfg = NULL;
    rf_err err;
    assert_int_equal(config_load_file(path, &cfg, &err), 0);
    assert_int_equal(cfg->tiers_len, 1);
    config_unref(cfg);
    unlink(path);
    free(path);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    rf_config *cfg = NULL;
    rf_err err;
    char expected[600];

    assert_int_equal(config_load_file("/nonexistent/routefs.json", &cfg, &err), -1);
    assert_null(cfg);
    assert_int_equal(err.code, ENOENT);
    assert_string_equal(err.msg, "cannot read /nonexistent/routefs.json: No such file or directory");

    char *path = write_temp_file("{\n  \"providers\": 1,\n  x", 23);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    assert_int_equal(err.code, EINVAL);
    snprintf(expected, sizeof expected, "%s: line 3, column 4: invalid JSON", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    char *big = malloc(1024 * 1024 + 1);
    assert_non_null(big);
    memset(big, ' ', 1024 * 1024 + 1);
    path = write_temp_file(big, 1024 * 1024 + 1);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    assert_int_equal(err.code, EINVAL);
    snprintf(expected, sizeof expected, "%s: config too large (more than 1048576 bytes)", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    /* exactly 1 MiB is allowed (and then blank) */
    path = write_temp_file(big, 1024 * 1024);
    assert_int_equal(config_load_file(path, &cfg, &err), -1);
    snprintf(expected, sizeof expected, "%s: config is empty", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);
    free(big);

    assert_int_equal(config_load_file("/", &cfg, &err), -1);
    assert_int_equal(err.code, EISDIR);
    assert_string_equal(err.msg, "cannot read /: Is a directory");
}

/* ---- API keys ---- */

static rf_provider key_provider(const char *env, const char *file)
{
    rf_provider p;
    memset(&p, 0, sizeof p);
    p.name = (char *)"openai";
    p.api_key_env = (char *)env;
    p.api_key_file = (char *)file;
    return p;
}

static void test_provider_key_env(void **state)
{
    (void)state;
    rf_provider p = key_provider("ROUTEFS_TEST_KEY", NULL);
    char *key = (char *)&key;
    rf_err err;

    unsetenv("ROUTEFS_TEST_KEY");
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_null(key);
    assert_string_equal(err.msg,
                        "provider \"openai\": environment variable ROUTEFS_TEST_KEY is not set");

    setenv("ROUTEFS_TEST_KEY", "", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_string_equal(err.msg,
                        "provider \"openai\": environment variable ROUTEFS_TEST_KEY is not set");

    setenv("ROUTEFS_TEST_KEY", "  sk-secret-1\n", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), 0);
    assert_string_equal(key, "sk-secret-1");
    free(key);

    setenv("ROUTEFS_TEST_KEY", "sk-a\r\nX-Injected: 1", 1);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_string_equal(err.msg, "provider \"openai\": API key contains control characters");
    assert_null(strstr(err.msg, "sk-a"));
    unsetenv("ROUTEFS_TEST_KEY");

    rf_provider none = key_provider(NULL, NULL);
    key = (char *)&key;
    assert_int_equal(config_provider_key(&none, &key, &err), 0);
    assert_null(key);
}

static void test_provider_key_file(void **state)
{
    (void)state;
    char *path = write_temp_file("\n sk-file-key \n\n", 16);
    rf_provider p = key_provider(NULL, path);
    char *key = NULL;
    rf_err err;
    char expected[600];

    assert_int_equal(config_provider_key(&p, &key, &err), 0);
    assert_string_equal(key, "sk-file-key");
    free(key);
    unlink(path);
    free(path);

    path = write_temp_file(" \n\t", 3);
    p = key_provider(NULL, path);
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_null(key);
    snprintf(expected, sizeof expected, "provider \"openai\": key file %s is empty", path);
    assert_string_equal(err.msg, expected);
    unlink(path);
    free(path);

    p = key_provider(NULL, "/nonexistent/key");
    assert_int_equal(config_provider_key(&p, &key, &err), -1);
    assert_int_equal(err.code, ENOENT);
    assert_string_equal(err.msg, "provider \"openai\": cannot read key file /nonexistent/key: "
                                 "No such file or directory");
}

/* ---- main: fixed tests, then one test per table row ---- */

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_design_sketch),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_exact_length_buffer),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_long_path),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_provider_key_env),
        cmocka_unit_test(test_provider_key_file),
    };
    const size_t n_fixed = sizeof fixed / sizeof fixed[0];
    const size_t n_routes = sizeof route_cases / sizeof route_cases[0];
    const size_t n_bad = sizeof bad_configs / sizeof bad_configs[0];
    struct CMUnitTest tests[sizeof fixed / sizeof fixed[0] + sizeof route_cases / sizeof route_cases[0] +
                            sizeof bad_configs / sizeof bad_configs[0]];
    size_t n = 0;
    for (size_t i = 0; i < n_fixed; i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < n_routes; i++)
        tests[n++] = (struct CMUnitTest){route_cases[i].name, test_route_case, NULL, NULL,
                                         (void *)&route_cases[i]};
    for (size_t i = 0; i < n_bad; i++)
        tests[n++] = (struct CMUnitTest){bad_configs[i].name, test_bad_config, NULL, NULL,
                                         (void *)&bad_configs[i]};
    return _cmocka_run_group_tests("config", tests, n, NULL, NULL);
}
