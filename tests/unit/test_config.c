/* test_config.c — config_parse on valid configs (every field and default, v1 and v2),
 * config_parse_route, references and lookups (cmocka).
 *
 * The bad configs and their exact messages are in test_config_errors.c; files, keys,
 * warnings, secrets and the schema in test_config_keys.c.  Every route-table row is its
 * own cmocka test, named in the table. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_test.h"

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

/* ---- config v2 fields ---- */

/* Every v2 default, on the minimal config. */
static void test_v2_defaults(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(MINIMAL);
    const rf_provider *p = &cfg->providers[0];
    assert_int_equal(p->stream, 1);
    assert_int_equal(p->first_token_timeout_ms, 0);
    assert_int_equal(p->stall_timeout_ms, 0);
    assert_int_equal(p->failure_threshold, 5);
    assert_int_equal(p->cooldown_ms, 30000);
    assert_int_equal(p->is_free, 0);
    const rf_tier *t = &cfg->tiers[0];
    assert_int_equal(t->first_token_timeout_ms, 30000);
    assert_int_equal(t->stall_timeout_ms, 15000);
    assert_int_equal(t->retry_on_timeout, 0);
    assert_int_equal(t->openrouter_models, 0);
    assert_int_equal(t->openrouter_metadata, 0);
    assert_null(t->service_tier);
    assert_null(t->session_id);
    assert_int_equal(cfg->activity_days, 90);
    assert_int_equal(cfg->resend_in_flight, 1);
    assert_null(cfg->shared);
    config_unref(cfg);

    /* a tier timeout below a default lowers the default to it; an explicit 0 stays off */
    cfg = parse_ok("{" P_OR ", 'tiers': {'a': {'route': 'm', 'timeout_ms': 5000},"
                   " 'b': {'route': 'm', 'timeout_ms': 20000},"
                   " 'c': {'route': 'm', 'timeout_ms': 100, 'first_token_timeout_ms': 0,"
                   "       'stall_timeout_ms': 100}}}");
    assert_int_equal(config_tier(cfg, "a")->first_token_timeout_ms, 5000);
    assert_int_equal(config_tier(cfg, "a")->stall_timeout_ms, 5000);
    assert_int_equal(config_tier(cfg, "b")->first_token_timeout_ms, 20000);
    assert_int_equal(config_tier(cfg, "b")->stall_timeout_ms, 15000);
    assert_int_equal(config_tier(cfg, "c")->first_token_timeout_ms, 0);
    assert_int_equal(config_tier(cfg, "c")->stall_timeout_ms, 100);
    config_unref(cfg);
}

static void test_v2_every_field(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(
        "{'activity_days': 36500, 'resend_in_flight': false,"
        " 'shared': {'redis': 'rediss://cache.internal:6380/3', 'password_env': 'REDIS_PASSWORD',"
        "            'prefix': 'team-a:llm', 'on_shared_down': 'local', 'local_share': 1,"
        "            'reservation_ttl_ms': 1000, 'breaker_sync_ms': 60000, 'comment': 'x'},"
        " 'providers': {"
        "   'local': {'base_url': 'http://127.0.0.1:11434/v1', 'stream': false,"
        "             'first_token_timeout_ms': 2000, 'stall_timeout_ms': 0,"
        "             'failure_threshold': 1000, 'cooldown_ms': 100, 'free': true},"
        "   'or': {'base_url': 'https://openrouter.ai/api/v1', 'free': false,"
        "          'failure_threshold': 1, 'cooldown_ms': 3600000, 'stall_timeout_ms': 7},"
        "   'proxy': {'base_url': 'https://openrouter.ai/api/v1', 'kind': 'openai', 'free': true}},"
        " 'tiers': {'t': {'route': 'm', 'timeout_ms': 90000, 'first_token_timeout_ms': 90000,"
        "   'stall_timeout_ms': 0, 'retry_on_timeout': true, 'openrouter_models': true,"
        "   'service_tier': 'flex', 'session_id': 'batch-{tag}', 'openrouter_metadata': true},"
        "  'long-session': {'route': 'm', 'session_id': '" SESSION_256 "', 'service_tier': null,"
        "   'first_token_timeout_ms': null}}}");
    assert_int_equal(cfg->activity_days, 36500);
    assert_int_equal(cfg->resend_in_flight, 0);

    const rf_shared_cfg *sh = cfg->shared;
    assert_non_null(sh);
    assert_string_equal(sh->redis_url, "rediss://cache.internal:6380/3");
    assert_int_equal(sh->tls, 1);
    assert_string_equal(sh->host, "cache.internal");
    assert_int_equal(sh->port, 6380);
    assert_int_equal(sh->db, 3);
    assert_string_equal(sh->password_env, "REDIS_PASSWORD");
    assert_string_equal(sh->prefix, "team-a:llm");
    assert_int_equal(sh->on_shared_down, RF_SHARED_DOWN_LOCAL);
    assert_true(sh->local_share == 1.0);
    assert_int_equal(sh->reservation_ttl_ms, 1000);
    assert_int_equal(sh->breaker_sync_ms, 60000);

    const rf_provider *local = config_provider(cfg, "local");
    assert_int_equal(local->stream, 0);
    assert_int_equal(local->first_token_timeout_ms, 2000);
    assert_int_equal(local->stall_timeout_ms, 0);
    assert_int_equal(local->failure_threshold, 1000);
    assert_int_equal(local->cooldown_ms, 100);
    assert_int_equal(local->is_free, 1);
    const rf_provider *or = config_provider(cfg, "or");
    assert_int_equal(or->kind, RF_KIND_OPENROUTER);
    assert_int_equal(or->is_free, 0);
    assert_int_equal(or->failure_threshold, 1);
    assert_int_equal(or->cooldown_ms, 3600000);
    assert_int_equal(or->stall_timeout_ms, 7);
    assert_int_equal(config_provider(cfg, "proxy")->is_free, 1);   /* kind openai: allowed */

    const rf_tier *t = config_tier(cfg, "t");
    assert_int_equal(t->first_token_timeout_ms, 90000);
    assert_int_equal(t->stall_timeout_ms, 0);
    assert_int_equal(t->retry_on_timeout, 1);
    assert_int_equal(t->openrouter_models, 1);
    assert_string_equal(t->service_tier, "flex");
    assert_string_equal(t->session_id, "batch-{tag}");
    assert_int_equal(t->openrouter_metadata, 1);
    const rf_tier *ls = config_tier(cfg, "long-session");
    assert_int_equal(strlen(ls->session_id), 256);
    assert_null(ls->service_tier);
    assert_int_equal(ls->first_token_timeout_ms, 30000);

    /* config.json reads back and parses to the same */
    rf_config *again = NULL;
    rf_err err;
    assert_int_equal(config_parse(cfg->source_json, strlen(cfg->source_json), &again, &err), 0);
    assert_string_equal(again->shared->host, "cache.internal");
    config_unref(again);
    config_unref(cfg);
}

typedef struct redis_case {
    const char *url;
    int tls;
    const char *host;
    int port, db;
} redis_case;

static void test_shared_redis_urls(void **state)
{
    (void)state;
    static const redis_case cases[] = {
        {"redis://", 0, "127.0.0.1", 6379, 0},
        {"redis://localhost", 0, "localhost", 6379, 0},
        {"REDIS://h:1", 0, "h", 1, 0},
        {"redis://:6380", 0, "127.0.0.1", 6380, 0},
        {"redis://h/", 0, "h", 6379, 0},
        {"redis://h/15", 0, "h", 6379, 15},
        {"redis:///2", 0, "127.0.0.1", 6379, 2},
        {"rediss://[::1]:65535/0", 1, "::1", 65535, 0},
        {"rediss://[fe80::1%eth0]", 1, "fe80::1%eth0", 6379, 0},
        {"redis://10.0.0.5:7000/2147483647", 0, "10.0.0.5", 7000, 2147483647},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "{" P_OR ", " T_FAST ", 'shared': {'redis': '%s'}}",
                 cases[i].url);
        rf_config *cfg = parse_ok(text);
        const rf_shared_cfg *sh = cfg->shared;
        if (sh->tls != cases[i].tls || strcmp(sh->host, cases[i].host) != 0 ||
            sh->port != cases[i].port || sh->db != cases[i].db)
            fail_msg("%s: tls %d host %s port %d db %d", cases[i].url, sh->tls, sh->host,
                     sh->port, sh->db);
        assert_string_equal(sh->redis_url, cases[i].url);
        /* the defaults of everything else */
        assert_null(sh->password_env);
        assert_string_equal(sh->prefix, "routefs");
        assert_int_equal(sh->on_shared_down, RF_SHARED_DOWN_WAIT);
        assert_true(sh->local_share == 0.5);
        assert_int_equal(sh->reservation_ttl_ms, 600000);
        assert_int_equal(sh->breaker_sync_ms, 500);
        config_unref(cfg);
    }
}

static void test_price_is_free(void **state)
{
    (void)state;
    rf_config *cfg = parse_ok(
        "{'providers': {'or': {'base_url': 'https://openrouter.ai/api/v1'},"
        "               'local': {'base_url': 'http://127.0.0.1:8080/v1', 'free': true}},"
        " 'prices': {'meta/llama:free': {'prompt': 0, 'completion': 0},"
        "            'half': {'prompt': 0, 'completion': 0.5},"
        "            'split': [{'prompt': 0, 'completion': 0, 'provider': 'or'},"
        "                      {'prompt': 1, 'completion': 1}]},"
        " 'tiers': {'t': {'route': 'm'}}}");
    /* a zero price is known, and free */
    const rf_price *zero = config_price(cfg, "or", "meta/llama:free");
    assert_non_null(zero);
    assert_true(zero->prompt_per_m == 0 && zero->completion_per_m == 0);
    assert_int_equal(config_price_is_free(cfg, "or", "meta/llama:free"), 1);
    assert_int_equal(config_price_is_free(cfg, NULL, "meta/llama:free"), 1);
    /* unknown is not free */
    assert_null(config_price(cfg, "or", "unpriced"));
    assert_int_equal(config_price_is_free(cfg, "or", "unpriced"), 0);
    assert_int_equal(config_price_is_free(cfg, "or", "half"), 0);
    /* a free provider makes every model free, priced or not */
    assert_int_equal(config_price_is_free(cfg, "local", "unpriced"), 1);
    assert_int_equal(config_price_is_free(cfg, "local", "half"), 1);
    /* the provider's own entry wins */
    assert_int_equal(config_price_is_free(cfg, "or", "split"), 1);
    assert_int_equal(config_price_is_free(cfg, "nope", "split"), 0);
    config_unref(cfg);
}

/* ---- main: fixed tests, then one test per route ---- */

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
        cmocka_unit_test(test_v2_defaults),
        cmocka_unit_test(test_v2_every_field),
        cmocka_unit_test(test_shared_redis_urls),
        cmocka_unit_test(test_price_is_free),
    };
    const size_t n_fixed = sizeof fixed / sizeof fixed[0];
    const size_t n_routes = sizeof route_cases / sizeof route_cases[0];
    struct CMUnitTest tests[sizeof fixed / sizeof fixed[0] + sizeof route_cases / sizeof route_cases[0]];
    size_t n = 0;
    for (size_t i = 0; i < n_fixed; i++)
        tests[n++] = fixed[i];
    for (size_t i = 0; i < n_routes; i++)
        tests[n++] = (struct CMUnitTest){route_cases[i].name, test_route_case, NULL, NULL,
                                         (void *)&route_cases[i]};
    return _cmocka_run_group_tests("config", tests, n, NULL, NULL);
}
