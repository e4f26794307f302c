/* test_budget_report.c — budget_report.c: providers that said their money is gone (marked
 * out of budget until a time, shown in providers.json and status), answers whose cost was
 * not stored, and the status lines about estimates and observed prices; and cost.c's
 * helpers the runner uses (cancelled requests, what an answer teaches, the reason an
 * unpriced hop is skipped) (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cost.h"
#include "budget_test.h"

/* ---- providers out of budget ---- */

static void test_provider_out_until_its_time(void **state)
{
    fixture *fx = *state;
    char why[300] = "";
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 0);
    budget_provider_out(fx->b, "or", 3000, "HTTP 402: Insufficient credits");
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 1);
    assert_string_equal(why, "provider or is out of budget until 2024-03-10T12:00:03.000Z: "
                             "HTTP 402: Insufficient credits");
    assert_int_equal(budget_provider_blocked(fx->b, "cheap", why, sizeof why), 0);
    /* an answer still in flight with a shorter Retry-After never shortens it */
    g_now += 1000;
    budget_provider_out(fx->b, "or", 500, "HTTP 402: again");
    g_now += 1999;
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 1);
    assert_non_null(strstr(why, "12:00:03.000Z: HTTP 402: again"));
    g_now += 1;
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 0);
    /* once over, a new mark starts from now; no Retry-After: the default wait */
    budget_provider_out(fx->b, "or", 0, "HTTP 403: Key limit exceeded");
    g_now += BUDGET_FUNDS_WAIT_MS - 1;
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 1);
    g_now += 1;
    assert_int_equal(budget_provider_blocked(fx->b, "or", why, sizeof why), 0);
}

static void test_mark_providers(void **state)
{
    fixture *fx = *state;
    const char *text = "{\"providers\": {\"or\": {\"state\": \"down\", \"breaker\": \"open\"},"
                       " \"b\": {\"state\": \"ok\"}}}";
    /* nothing marked: the text as it was */
    char *in = strdup(text);
    char *out = budget_mark_providers(fx->b, in);
    assert_ptr_equal(out, in);
    free(out);
    budget_provider_out(fx->b, "or", 60000, "HTTP 402: no credits");
    budget_provider_out(fx->b, "fresh", 60000, "HTTP 403: Key limit exceeded");
    out = budget_mark_providers(fx->b, strdup(text));
    cJSON *doc = cJSON_Parse(out);
    assert_non_null(doc);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "providers");
    const cJSON *or = cJSON_GetObjectItemCaseSensitive(p, "or");
    assert_string_equal(or->child->string, "state");   /* replaced in its place */
    assert_string_equal(or->child->valuestring, "out of budget");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(or, "breaker")->valuestring, "open");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(or, "out_of_budget_until")->valuestring,
                        "2024-03-10T12:01:00.000Z");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(or, "out_of_budget_reason")->valuestring,
                        "HTTP 402: no credits");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "b"), "state")
            ->valuestring, "ok");
    /* a provider the breakers never saw gets an entry of its own */
    const cJSON *fresh = cJSON_GetObjectItemCaseSensitive(p, "fresh");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(fresh, "state")->valuestring,
                        "out of budget");
    cJSON_Delete(doc);
    free(out);
    /* not the breakers' JSON: shown as it is */
    in = strdup("not json");
    out = budget_mark_providers(fx->b, in);
    assert_ptr_equal(out, in);
    free(out);
    /* time passed: unmarked */
    g_now += 60000;
    in = strdup(text);
    out = budget_mark_providers(fx->b, in);
    assert_ptr_equal(out, in);
    free(out);
    assert_null(budget_mark_providers(fx->b, NULL));
}

/* ---- status lines ---- */

static rf_provider g_providers[] = {
    { .name = "or", .kind = RF_KIND_OPENAI },
};
static rf_price g_prices[] = {
    { .provider = NULL, .model = "m-low", .prompt_per_m = 1, .completion_per_m = 1 },
    { .provider = NULL, .model = "m-ok", .prompt_per_m = 100, .completion_per_m = 100 },
};
static rf_hop g_route_a[] = { { "or", "m-low" }, { "or", "m-unpriced" }, { "or", "m-ok" } };
static rf_hop g_route_b[] = { { "or", "m-low" } };
static rf_tier g_status_tiers[] = {
    { .name = "a", .route = g_route_a, .route_len = 3, .daily_usd = -1 },
    { .name = "b", .route = g_route_b, .route_len = 1, .daily_usd = -1 },
};

static void test_status_lines(void **state)
{
    fixture *fx = *state;
    rf_err err;
    assert_int_equal(prices_init(NULL, &err), 0);
    rf_config cfg = { .providers = g_providers, .providers_len = 1, .prices = g_prices,
                      .prices_len = 2, .tiers = g_status_tiers, .tiers_len = 2,
                      .daily_usd = -1, .monthly_usd = -1, .refcount = 1 };
    char *text = budget_status_line(fx->b, &cfg);
    assert_string_equal(text, "spend: today $0.00 (no daily cap), this month $0.00 (no monthly "
                              "cap), $0.00 reserved");
    free(text);
    settle_full(fx, 0, "e1", "a", NULL, "or", "m-ok", NULL, 0.5, 1, test_clock());
    budget_warn_cost(fx->b, "or", "m-ok", "provider reported an absurd cost ($1e+300): billed "
                                          "the worst case");
    budget_warn_cost(fx->b, "or", "m-ok", "provider reported a cost that is not a number >= 0: "
                                          "billed the worst case");
    budget_provider_out(fx->b, "or", 5000, "HTTP 402: no credits");
    /* m-low charged 10x its price; m-unpriced has a rate it was seen to charge */
    assert_int_equal(prices_observe("or", "m-low", 0.01, 500, 500, 0, 0), 1);
    assert_int_equal(prices_observe("or", "m-unpriced", 0.002, 1000, 1000, 0, 0), 1);
    text = budget_status_line(fx->b, &cfg);
    assert_string_equal(
        text,
        "spend: today $0.50 (no daily cap), this month $0.50 (no monthly cap), $0.00 reserved; "
        "1 request billed at routefs's estimate (no usage reported, or a cost that was not "
        "believed)\n"
        "spend: provider or is out of budget until 2024-03-10T12:00:05.000Z: HTTP 402: no "
        "credits\n"
        "spend: warning: m-ok on or: 2 answers with a cost that was not stored (last: provider "
        "reported a cost that is not a number >= 0: billed the worst case)\n"
        "spend: warning: m-low on or charged more than its configured price allows ($1/$1 per "
        "million tokens): the configured price is too low; reservations use the observed rate "
        "($10/$10); raise its price in config.json\n"
        "spend: m-unpriced on or has no configured price: reservations use the highest rate it "
        "was seen to charge ($1/$1 per million tokens)");
    free(text);
    prices_shutdown();
}

/* ---- cost.c helpers ---- */

static const hop_price PRICE = { 1000, 1000, 0, "config" };

static void test_cost_of_cancelled(void **state)
{
    (void)state;
    cost_result c;
    cost_of_cancelled(&PRICE, 0.038, 0, -1, 18, &c);
    assert_int_equal(c.has_cost, 1);
    assert_int_equal(c.nusd, 38000000);
    assert_int_equal(c.estimated, 1);
    assert_string_equal(c.note, "cancelled in flight: billed the worst case");
    cost_of_cancelled(NULL, 0, 0, -1, 18, &c);   /* unpriced: unknown */
    assert_int_equal(c.has_cost, 0);
    /* streamed: the tokens seen, (18/3 + 16) prompt tokens + 4 */
    cost_of_cancelled(&PRICE, 0.038, 1, 4, 18, &c);
    assert_int_equal(c.nusd, 26000000);
    assert_int_equal(c.estimated, 1);
}

static openai_completion answer(double cost, long pt, long ct)
{
    openai_completion comp;
    memset(&comp, 0, sizeof comp);
    comp.has_cost = cost >= 0;
    comp.cost = cost;
    comp.prompt_tokens = pt;
    comp.completion_tokens = ct;
    return comp;
}

static void test_cost_learn(void **state)
{
    fixture *fx = *state;
    rf_err err;
    assert_int_equal(prices_init(NULL, &err), 0);
    rf_config cfg = { .providers = g_providers, .providers_len = 1, .daily_usd = -1,
                      .monthly_usd = -1, .refcount = 1 };
    hop_price p;
    cost_result c;
    /* within the reservation: nothing learnt */
    openai_completion comp = answer(0.01, 5, 8);
    cost_of_answer(&comp, &PRICE, 0.038, 18, &c);
    cost_learn(fx->b, "or", "m", &PRICE, 0.038, &comp, &c, 18, 16);
    assert_int_equal(prices_lookup(&cfg, "or", "m", &p), 0);
    /* over it: the observed rate, cost over tokens */
    comp = answer(0.152, 5, 8);
    cost_of_answer(&comp, &PRICE, 0.038, 18, &c);
    assert_int_equal(c.over_reservation, 1);
    cost_learn(fx->b, "or", "m", &PRICE, 0.038, &comp, &c, 18, 16);
    assert_int_equal(prices_lookup(&cfg, "or", "m", &p), 1);
    assert_true(fabs(p.prompt_per_m - 0.152 / 13 * 1e6) < 1e-6);
    assert_string_equal(p.source, "observed");
    assert_true(budget_worst_case(&p, 18, 16) >= 0.152);
    /* unpriced, with a reported cost: priced by it from now on */
    comp = answer(0.0123, 3, 6);
    cost_of_answer(&comp, NULL, 0, 9, &c);
    cost_learn(fx->b, "or", "m-x", NULL, 0, &comp, &c, 9, 16);
    assert_int_equal(prices_lookup(&cfg, "or", "m-x", &p), 1);
    assert_true(fabs(p.completion_per_m - 0.0123 / 9 * 1e6) < 1e-6);
    /* a cost not believed: not learnt, counted for status */
    comp = answer(1e300, 3, 6);
    cost_of_answer(&comp, &PRICE, 0.035, 10, &c);
    assert_int_equal(c.nonsense, 1);
    cost_learn(fx->b, "or", "m-y", &PRICE, 0.035, &comp, &c, 10, 16);
    assert_int_equal(prices_lookup(&cfg, "or", "m-y", &p), 0);
    char *text = budget_status_line(fx->b, NULL);
    assert_non_null(strstr(text, "spend: warning: m-y on or: 1 answer with a cost that was not "
                                 "stored (last: provider reported an absurd cost"));
    free(text);
    prices_shutdown();
}

static void test_unpriced_reason(void **state)
{
    (void)state;
    char buf[600];
    cost_unpriced_reason(buf, sizeof buf, "sim", "sim/x", 1);
    assert_string_equal(buf, "no price known for sim/x on sim while a spend cap applies: add "
                             "\"prices\": {\"sim/x\": {\"prompt\": USD_PER_M, \"completion\": "
                             "USD_PER_M}} to config.json (a price of 0, or \"free\": true on "
                             "its provider, for a free model)");
    cost_unpriced_reason(buf, sizeof buf, "sim", "sim/x", 0);
    assert_non_null(strstr(buf, "while the tier has require_price:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_provider_out_until_its_time),
        T(test_mark_providers),
        T(test_status_lines),
        cmocka_unit_test(test_cost_of_cancelled),
        T(test_cost_learn),
        cmocka_unit_test(test_unpriced_reason),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
