/* test_budget.c — budget.c in memory: reservations against caps (daily, monthly, per
 * tier), EAGAIN vs EDQUOT, UTC windows and their rollovers on an injected clock,
 * admission, the worst case, spend.json, the status line, and concurrent reservations
 * (cmocka).  Rebuilding the tallies from the state store is in test_budget_store.c.
 *
 * Every test gets a fresh state directory with a started store and a budget opened on it
 * (budget_test.h); settled requests are also committed to the store, so reopen() checks
 * that the store gives back what was counted.  Configs are built by hand: budget.c reads
 * only caps and tiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "budget_test.h"

/* ---- reservations ---- */

static void test_reserve_up_to_cap(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    long ids[100];
    for (int i = 0; i < 100; i++)            /* 100 x $0.05 = exactly $5.00 */
        ids[i] = reserve_ok(fx, &cfg, "slow", 0.05);
    for (int i = 1; i < 100; i++)
        assert_true(ids[i] > ids[i - 1]);
    expect_totals(fx, 0, 0, 5.00);
    reserve_refused(fx, &cfg, "slow", 0.01, "daily cap $5.00 reached: $0.00 spent, $5.00 reserved");

    budget_release(fx->b, ids[7]);           /* frees exactly one slot */
    expect_totals(fx, 0, 0, 4.95);
    long again = reserve_ok(fx, &cfg, "slow", 0.05);
    assert_true(again > ids[99]);
    reserve_refused(fx, &cfg, "slow", 0.05, "daily cap $5.00 reached: $0.00 spent, $5.00 reserved");

    budget_release(fx->b, ids[7]);           /* twice, and unknown ids: ignored */
    budget_release(fx->b, 999999);
    budget_release(fx->b, 0);
    budget_release(fx->b, -1);
    expect_totals(fx, 0, 0, 5.00);
}

static void test_refusal_code_waits_for_reservations(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(1.00, -1);
    rf_err err;
    long a = reserve_ok(fx, &cfg, "slow", 0.60);
    rf_err_clear(&err);
    /* 0 spent + 0.60 would fit: only the reservation in flight is in the way */
    assert_int_equal(budget_reserve(fx->b, &cfg, "slow", 0.60, &err), -1);
    assert_int_equal(err.code, EAGAIN);
    /* nothing is spent yet, so a new prompt is admitted */
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), 0);
    settle(fx, a, "job-a", "slow", 0.60);
    rf_err_clear(&err);
    /* 0.60 spent + 0.60 can never fit */
    assert_int_equal(budget_reserve(fx->b, &cfg, "slow", 0.60, &err), -1);
    assert_int_equal(err.code, EDQUOT);
    settle(fx, 0, "job-b", "slow", 0.40);
    /* spent reached the cap: admission refuses */
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), -1);
    assert_int_equal(err.code, EDQUOT);
}

static void test_refusal_message(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, 100.00);
    settle(fx, 0, "r1", "slow", 4.97);
    long id = reserve_ok(fx, &cfg, "slow", 0.03);     /* 4.97 + 0.03 = the cap: allowed */
    reserve_refused(fx, &cfg, "slow", 0.01, "daily cap $5.00 reached: $4.97 spent, $0.03 reserved");
    budget_release(fx->b, id);
    reserve_refused(fx, &cfg, "slow", 0.05, "daily cap $5.00 reached: $4.97 spent, $0.00 reserved");
    reserve_ok(fx, &cfg, "slow", 0.03);
}

static void test_small_cap_uses_four_decimals(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(0.50, -1);
    settle(fx, 0, "r1", "slow", 0.499);
    reserve_ok(fx, &cfg, "slow", 0.0005);
    reserve_refused(fx, &cfg, "slow", 0.0006,
                    "daily cap $0.5000 reached: $0.4990 spent, $0.0005 reserved");
}

static void test_settle_replaces_reservation(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    long a = reserve_ok(fx, &cfg, "slow", 3.00);
    long b = reserve_ok(fx, &cfg, "slow", 2.00);
    reserve_refused(fx, &cfg, "slow", 0.01, "daily cap $5.00 reached: $0.00 spent, $5.00 reserved");
    settle(fx, a, "job-a", "slow", 0.25);               /* the real cost was much lower */
    expect_totals(fx, 0.25, 0.25, 2.00);
    reserve_ok(fx, &cfg, "slow", 2.75);                  /* 0.25 + 2.00 + 2.75 = 5.00 */
    reserve_refused(fx, &cfg, "slow", 0.01, "daily cap $5.00 reached: $0.25 spent, $4.75 reserved");
    settle(fx, b, "job-b", "slow", -1);                  /* unknown price: costs nothing known */
    expect_totals(fx, 0.25, 0.25, 2.75);
    settle(fx, a, "job-a2", "slow", 0.10);               /* an already-released id: no effect */
    expect_totals(fx, 0.35, 0.35, 2.75);
}

static void test_zero_and_invalid_amounts(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(1.00, -1);
    settle(fx, 0, "r1", "slow", 1.00);                   /* cap used up */
    rf_err err;
    rf_err_clear(&err);
    long id = budget_reserve(fx->b, &cfg, "slow", 0, &err);
    assert_true(id > 0);                                 /* nothing to reserve: fine */
    budget_release(fx->b, id);
    expect_totals(fx, 1.00, 1.00, 0);
    assert_int_equal(budget_reserve(fx->b, &cfg, "slow", -0.5, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(budget_reserve(fx->b, &cfg, "slow", NAN, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(budget_reserve(fx->b, &cfg, "slow", INFINITY, &err), -1);
    assert_int_equal(err.code, EINVAL);
    /* no config, or no caps: anything goes */
    reserve_ok(fx, NULL, "slow", 1000);
    rf_config none = make_cfg(-1, -1);
    reserve_ok(fx, &none, NULL, 1000);
}

static void test_absurd_amounts_do_not_overflow(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 9; i++)                          /* $1e9 each once clamped */
        reserve_ok(fx, NULL, "slow", 1e12);
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(budget_reserve(fx->b, NULL, "slow", 1e12, &err), -1);
    assert_int_equal(err.code, EDQUOT);
    reserve_ok(fx, NULL, "slow", 0.01);
}

static void test_tier_cap(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(-1, -1);                    /* "fast" has a $1.00 daily cap */
    long a = reserve_ok(fx, &cfg, "fast", 0.60);
    reserve_refused(fx, &cfg, "fast", 0.60,
                    "tier fast daily cap $1.00 reached: $0.00 spent, $0.60 reserved");
    reserve_ok(fx, &cfg, "slow", 0.60);                  /* other tiers are not affected */
    budget_release(fx->b, reserve_ok(fx, &cfg, "other", 50));   /* a tier with no config */
    settle(fx, a, "f1", "fast", 0.70);
    reserve_ok(fx, &cfg, "fast", 0.30);
    reserve_refused(fx, &cfg, "fast", 0.01,
                    "tier fast daily cap $1.00 reached: $0.70 spent, $0.30 reserved");
    g_now += 86400000;                                   /* the tier cap is daily */
    settle(fx, 0, "s1", "slow", 9.00);                   /* spend elsewhere does not count */
    reserve_ok(fx, &cfg, "fast", 0.69);
    reserve_refused(fx, &cfg, "fast", 0.02,
                    "tier fast daily cap $1.00 reached: $0.00 spent, $0.99 reserved");
    /* the global daily cap is checked first and named when both are over */
    rf_config both = make_cfg(9.50, -1);
    reserve_refused(fx, &both, "fast", 0.02,
                    "daily cap $9.50 reached: $9.00 spent, $1.59 reserved");
}

static void test_monthly_cap(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(-1, 100.00);
    settle_at(fx, 0, "m1", "slow", NULL, "or", "m-any", 60.00, utc(2024, 1, 3, 10, 0, 0, 0));
    settle_at(fx, 0, "m2", "slow", NULL, "or", "m-any", 39.00, utc(2024, 1, 20, 10, 0, 0, 0));
    settle_at(fx, 0, "m0", "slow", NULL, "or", "m-any", 500.0, utc(2023, 12, 31, 23, 0, 0, 0));
    g_now = utc(2024, 1, 25, 8, 0, 0, 0);
    expect_totals(fx, 0, 99.00, 0);
    long id = reserve_ok(fx, &cfg, "slow", 1.00);
    reserve_refused(fx, &cfg, "slow", 0.01,
                    "monthly cap $100.00 reached: $99.00 spent, $1.00 reserved");
    budget_release(fx->b, id);
    reserve_refused(fx, &cfg, "slow", 2.00,
                    "monthly cap $100.00 reached: $99.00 spent, $0.00 reserved");
    g_now = utc(2024, 2, 1, 0, 0, 0, 0);                 /* a new month */
    expect_totals(fx, 0, 0, 0);
    reserve_ok(fx, &cfg, "slow", 100.00);
}

/* ---- windows ---- */

static void test_day_rollover(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, 100.00);
    rf_err err;
    g_now = utc(2024, 3, 10, 23, 59, 59, 999);
    settle(fx, 0, "d1", "slow", 5.00);
    reserve_refused(fx, &cfg, "slow", 0.01, "daily cap $5.00 reached: $5.00 spent, $0.00 reserved");
    rf_err_clear(&err);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), -1);
    assert_int_equal(err.code, EDQUOT);
    g_now += 1;                                          /* 2024-03-11T00:00:00.000Z */
    expect_totals(fx, 0, 5.00, 0);
    rf_err_clear(&err);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), 0);
    reserve_ok(fx, &cfg, "slow", 5.00);
    g_now -= 1;                                          /* back a millisecond: spent again */
    expect_totals(fx, 5.00, 5.00, 5.00);
}

/* At the last millisecond of a day spend x; one millisecond later both the day and (when
 * month_ends) the month start over. */
static void check_boundary(fixture *fx, int64_t last_ms, int month_ends, const char *id)
{
    double today, month;
    g_now = last_ms;
    budget_totals(fx->b, NULL, &month, NULL);
    settle(fx, 0, id, "slow", 1.25);
    budget_totals(fx->b, &today, NULL, NULL);
    double before_month = month + 1.25;
    expect_totals(fx, today, before_month, 0);
    assert_true(today >= 1.25 - 1e-9);
    g_now = last_ms + 1;
    expect_totals(fx, 0, month_ends ? 0 : before_month, 0);
}

static void test_month_rollovers(void **state)
{
    fixture *fx = *state;
    check_boundary(fx, utc(2024, 1, 31, 23, 59, 59, 999), 1, "jan31");
    check_boundary(fx, utc(2024, 12, 31, 23, 59, 59, 999), 1, "dec31");   /* year change */
    check_boundary(fx, utc(2024, 2, 28, 23, 59, 59, 999), 0, "feb28-leap"); /* -> Feb 29 */
    check_boundary(fx, utc(2024, 2, 29, 23, 59, 59, 999), 1, "feb29");
    check_boundary(fx, utc(2023, 2, 28, 23, 59, 59, 999), 1, "feb28");     /* -> Mar 1 */
    check_boundary(fx, utc(2024, 4, 30, 23, 59, 59, 999), 1, "apr30");
    /* the whole of February 2024 (leap): two records */
    g_now = utc(2024, 2, 15, 0, 0, 0, 0);
    expect_totals(fx, 0, 2.50, 0);
    g_now = utc(2024, 3, 1, 0, 0, 0, 0);
    expect_totals(fx, 0, 0, 0);
    /* and the windows survive a replay */
    reopen(fx);
    g_now = utc(2024, 2, 29, 23, 59, 59, 999);
    expect_totals(fx, 1.25, 2.50, 0);
    g_now = utc(2025, 1, 1, 0, 0, 0, 0);
    expect_totals(fx, 0, 0, 0);
}

static void test_late_record_counts_in_its_own_day(void **state)
{
    fixture *fx = *state;
    g_now = utc(2024, 3, 10, 0, 0, 5, 0);
    settle_at(fx, 0, "late", "slow", NULL, "or", "m-any", 2.00,
              utc(2024, 3, 9, 23, 59, 58, 0));
    expect_totals(fx, 0, 2.00, 0);
    settle_at(fx, 0, "now", "slow", NULL, "or", "m-any", 1.00, 0);   /* 0: the clock's now */
    expect_totals(fx, 1.00, 3.00, 0);
}

/* ---- admission ---- */

static void test_admission(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(1.00, -1);
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), 0);
    settle(fx, 0, "a1", "slow", 0.99);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), 0);
    long id = reserve_ok(fx, &cfg, "slow", 0.01);
    /* money only reserved may come back: the prompt is admitted and waits at send time */
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), 0);
    settle(fx, id, "a2", "slow", 0.01);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "slow", &err), -1);
    assert_int_equal(err.code, EDQUOT);
    assert_string_equal(err.msg, "daily cap $1.00 reached: $1.00 spent, $0.00 reserved");

    /* the tier cap, for its own tier only */
    rf_config tiers_only = make_cfg(-1, -1);
    settle(fx, 0, "f1", "fast", 1.00);
    assert_int_equal(budget_check_admission(fx->b, &tiers_only, "fast", &err), -1);
    assert_string_equal(err.msg, "tier fast daily cap $1.00 reached: $1.00 spent, $0.00 reserved");
    assert_int_equal(budget_check_admission(fx->b, &tiers_only, "slow", &err), 0);
    assert_int_equal(budget_check_admission(fx->b, NULL, "fast", &err), 0);

    /* the monthly cap; a zero cap admits nothing */
    rf_config monthly = make_cfg(-1, 1.99);
    assert_int_equal(budget_check_admission(fx->b, &monthly, "slow", &err), -1);
    assert_string_equal(err.msg, "monthly cap $1.99 reached: $2.00 spent, $0.00 reserved");
    rf_config zero = make_cfg(0, -1);
    assert_int_equal(budget_check_admission(fx->b, &zero, "slow", &err), -1);
    assert_string_equal(err.msg, "daily cap $0.0000 reached: $2.0000 spent, $0.0000 reserved");
}

/* ---- worst case ---- */


/* ---- worst case ---- */

static void test_worst_case(void **state)
{
    (void)state;
    hop_price any = { .prompt_per_m = 3.0, .completion_per_m = 15.0, .source = "config" };
    hop_price cheap = { .prompt_per_m = 0.5, .completion_per_m = 1.0, .source = "config" };
    hop_price per_request = { .prompt_per_m = 3.0, .completion_per_m = 15.0,
                              .request_usd = 0.002, .source = "openrouter" };
    hop_price free_price = { .source = "free" };
    /* (3000/3 + 16) * 3.0 + 1000 * 15.0 = 3048 + 15000 per million */
    assert_usd(budget_worst_case(&any, 3000, 1000), 0.018048);
    /* integer division of the bytes: 3002/3 = 1000 */
    assert_usd(budget_worst_case(&any, 3002, 1000), 0.018048);
    /* (0 + 16) * 0.5 + 256 * 1.0 */
    assert_usd(budget_worst_case(&cheap, 0, 256), 0.000264);
    /* the price per request is added once */
    assert_usd(budget_worst_case(&per_request, 3000, 1000), 0.020048);
    /* no completion tokens asked for (or a nonsense count): the prompt alone */
    assert_usd(budget_worst_case(&any, 3000, 0), 0.003048);
    assert_usd(budget_worst_case(&any, 3000, -5), 0.003048);
    /* a free model, and no price at all */
    assert_usd(budget_worst_case(&free_price, 3000, 1000), 0);
    assert_usd(budget_worst_case(NULL, 3000, 1000), 0);
}

static void test_caps_apply(void **state)
{
    (void)state;
    rf_config none = make_cfg(-1, -1);
    assert_int_equal(budget_caps_apply(NULL, "fast"), 0);
    assert_int_equal(budget_caps_apply(&none, "slow"), 0);      /* no caps at all */
    assert_int_equal(budget_caps_apply(&none, "fast"), 1);      /* the tier's own */
    assert_int_equal(budget_caps_apply(&none, "unknown"), 0);
    assert_int_equal(budget_caps_apply(&none, NULL), 0);
    rf_config daily = make_cfg(5, -1), monthly = make_cfg(-1, 0);
    assert_int_equal(budget_caps_apply(&daily, "slow"), 1);
    assert_int_equal(budget_caps_apply(&monthly, NULL), 1);      /* a zero cap is a cap */
}

/* ---- settling ---- */

static void test_settle_without_row(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5, -1);
    long id = reserve_ok(fx, &cfg, "slow", 1.00);
    budget_settle(fx->b, id, NULL);                              /* released, nothing counted */
    expect_totals(fx, 0, 0, 0);
    budget_settle(fx->b, 0, NULL);
    budget_settle(fx->b, -1, NULL);
    char *json = budget_spend_json(fx->b, NULL);
    cJSON *o = cJSON_Parse(json);
    assert_int_equal(num(o, "requests.total"), 0);
    cJSON_Delete(o);
    free(json);
}

/* ---- reports ---- */

static void test_spend_json(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    spend_some(fx);
    reserve_ok(fx, &cfg, "fast", 0.05);
    reserve_ok(fx, &cfg, "slow", 0.10);
    char *text = budget_spend_json(fx->b, &cfg);
    assert_non_null(text);
    assert_int_equal(text[strlen(text) - 1], '\n');
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    char *first = text;

    assert_string_equal(cJSON_GetObjectItem(o, "currency")->valuestring, "USD");
    assert_usd(num(o, "total"), 8.80);
    assert_usd(num(o, "today"), 0.30);
    assert_usd(num(o, "this_month"), 1.80);
    assert_usd(num(o, "reserved"), 0.15);

    assert_usd(num(o, "caps.daily.cap"), 5.00);
    assert_usd(num(o, "caps.daily.spent"), 0.30);
    assert_usd(num(o, "caps.daily.reserved"), 0.15);
    assert_usd(num(o, "caps.daily.remaining"), 4.55);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "caps"), "monthly")));
    const cJSON *tiers = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "caps"), "tiers");
    assert_int_equal(cJSON_GetArraySize(tiers), 1);      /* only "fast" has a cap */
    assert_usd(num(o, "caps.tiers.fast.cap"), 1.00);
    assert_usd(num(o, "caps.tiers.fast.spent"), 0.30);
    assert_usd(num(o, "caps.tiers.fast.reserved"), 0.05);
    assert_usd(num(o, "caps.tiers.fast.remaining"), 0.65);

    assert_int_equal(num(o, "requests.total"), 5);
    assert_int_equal(num(o, "requests.today"), 3);
    assert_int_equal(num(o, "requests.this_month"), 4);
    assert_int_equal(num(o, "requests.unpriced"), 1);
    assert_int_equal(num(o, "requests.estimated"), 2);

    assert_usd(num(o, "by_tier.fast.total"), 0.30);
    assert_usd(num(o, "by_tier.fast.today"), 0.30);
    assert_int_equal(num(o, "by_tier.fast.requests"), 2);
    assert_usd(num(o, "by_tier.slow.total"), 8.50);
    assert_usd(num(o, "by_tier.slow.today"), 0);
    assert_usd(num(o, "by_tier.slow.this_month"), 1.50);
    assert_int_equal(num(o, "by_tier.slow.requests"), 3);

    const cJSON *by_tag = cJSON_GetObjectItem(o, "by_tag");
    assert_int_equal(cJSON_GetArraySize(by_tag), 2);     /* untagged requests are left out */
    assert_usd(num(o, "by_tag.docs.total"), 0.10);
    assert_int_equal(num(o, "by_tag.docs.requests"), 2);
    const cJSON *api = cJSON_GetObjectItem(by_tag, "docs/api");
    assert_non_null(api);
    assert_usd(cJSON_GetObjectItem(api, "this_month")->valuedouble, 1.50);

    assert_usd(num(o, "by_provider.or.total"), 7.30);
    assert_usd(num(o, "by_provider.or.today"), 0.30);
    assert_usd(num(o, "by_provider.cheap.total"), 1.50);
    assert_int_equal(num(o, "by_provider.cheap.requests"), 2);
    assert_usd(num(o, "by_model.m-a.total"), 1.60);
    assert_usd(num(o, "by_model.m-b.total"), 7.20);
    assert_usd(num(o, "by_model.m-b.this_month"), 0.20);

    const cJSON *by_upstream = cJSON_GetObjectItem(o, "by_upstream");
    assert_int_equal(cJSON_GetArraySize(by_upstream), 2);      /* none given: left out */
    assert_usd(num(o, "by_upstream.Up1.total"), 7.10);
    assert_usd(num(o, "by_upstream.Up1.today"), 0.10);
    assert_int_equal(num(o, "by_upstream.Up1.requests"), 2);
    assert_usd(num(o, "by_upstream.Up2.this_month"), 0.20);
    cJSON_Delete(o);

    /* the same from the store */
    reopen(fx);
    reserve_ok(fx, &cfg, "fast", 0.05);
    reserve_ok(fx, &cfg, "slow", 0.10);
    char *again = budget_spend_json(fx->b, &cfg);
    assert_string_equal(again, first);
    free(again);
    free(first);
}

static void test_spend_json_without_config(void **state)
{
    fixture *fx = *state;
    char *text = budget_spend_json(fx->b, NULL);
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    free(text);
    const cJSON *caps = cJSON_GetObjectItem(o, "caps");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(caps, "daily")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(caps, "monthly")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(caps, "tiers")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(caps, "tiers")), 0);
    assert_usd(num(o, "total"), 0);
    assert_int_equal(num(o, "requests.total"), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "by_model")), 0);
    cJSON_Delete(o);
}

static void test_status_line(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, 100.00);
    g_now = utc(2024, 3, 10, 12, 0, 0, 0);
    settle_at(fx, 0, "a", "slow", NULL, "or", "m-a", 3.28, utc(2024, 3, 2, 0, 0, 0, 0));
    settle_at(fx, 0, "b", "slow", NULL, "or", "m-a", 0.12, g_now);
    reserve_ok(fx, &cfg, "slow", 0.05);
    char *line = budget_status_line(fx->b, &cfg);
    assert_string_equal(line, "spend: today $0.12 of $5.00 daily cap (2%), this month $3.40 "
                              "of $100.00 (3%), $0.05 reserved");
    free(line);

    rf_config none = make_cfg(-1, -1);
    settle_at(fx, 0, "c", "slow", NULL, "or", "m-a", -1, g_now);
    line = budget_status_line(fx->b, &none);
    assert_string_equal(line, "spend: today $0.12 (no daily cap), this month $3.40 "
                              "(no monthly cap), $0.05 reserved; 1 request without a known "
                              "price (cost unknown)");
    free(line);
    settle_at(fx, 0, "d", "slow", NULL, "or", "m-a", -1, g_now);
    line = budget_status_line(fx->b, NULL);
    assert_non_null(strstr(line, "; 2 requests without a known price (cost unknown)"));
    free(line);

    rf_config small = make_cfg(0.50, -1);
    g_now = utc(2024, 3, 11, 0, 0, 0, 0);
    settle(fx, 0, "e", "slow", 0.0031);
    line = budget_status_line(fx->b, &small);
    assert_string_equal(line, "spend: today $0.0031 of $0.5000 daily cap (0%), this month $3.40 "
                              "(no monthly cap), $0.05 reserved; 2 requests without a known "
                              "price (cost unknown)");
    free(line);
}

/* ---- concurrency ---- */

enum { THREADS = 8, ROUNDS = 400 };

typedef struct worker {
    fixture *fx;
    const rf_config *cfg;
    pthread_barrier_t *start;
    int index;
    int settle;                /* settle each reservation at half its amount */
    long granted;
    int overshoot;             /* saw spent + reserved above the cap */
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < ROUNDS; i++) {
        rf_err err;
        long id = budget_reserve(w->fx->b, w->cfg, "slow", 0.02, &err);
        if (id > 0) {
            w->granted++;
            if (w->settle) {
                char ref[32];
                snprintf(ref, sizeof ref, "w%d-%d", w->index, i);
                /* counted here, and written to the store from this thread too */
                settle_full(w->fx, id, ref, "slow", NULL, "or", "m-a", NULL, 0.01, 0, 0);
            }
        } else if (err.code != EDQUOT && err.code != EAGAIN) {
            w->overshoot = 1;
        }
        double today, reserved;
        budget_totals(w->fx->b, &today, NULL, &reserved);
        if (today + reserved > 5.00 + 1e-9)
            w->overshoot = 1;
    }
    return NULL;
}

static long run_workers(fixture *fx, const rf_config *cfg, int settle)
{
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    pthread_t t[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){ fx, cfg, &start, i, settle, 0, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    long granted = 0;
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].overshoot, 0);
        granted += w[i].granted;
    }
    pthread_barrier_destroy(&start);
    return granted;
}

static void test_concurrent_reserve(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    assert_int_equal(run_workers(fx, &cfg, 0), 250);    /* $5.00 / $0.02, exactly */
    expect_totals(fx, 0, 0, 5.00);
}

static void test_concurrent_settle(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    long granted = run_workers(fx, &cfg, 1);
    /* each grant ends as $0.01 spent, and a grant needs $0.02 of room: when the last one
     * was made, the grants before it held at least $0.01 each, so at most 499 fit */
    assert_true(granted > 450 && granted <= 499);
    expect_totals(fx, granted * 0.01, granted * 0.01, 0);
    assert_int_equal(fx->committed, granted);
    reopen(fx);
    expect_totals(fx, granted * 0.01, granted * 0.01, 0);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1), granted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_reserve_up_to_cap),
        T(test_refusal_message),
        T(test_refusal_code_waits_for_reservations),
        T(test_small_cap_uses_four_decimals),
        T(test_settle_replaces_reservation),
        T(test_zero_and_invalid_amounts),
        T(test_absurd_amounts_do_not_overflow),
        T(test_tier_cap),
        T(test_monthly_cap),
        T(test_day_rollover),
        T(test_month_rollovers),
        T(test_late_record_counts_in_its_own_day),
        T(test_admission),
        cmocka_unit_test(test_worst_case),
        cmocka_unit_test(test_caps_apply),
        T(test_settle_without_row),
        T(test_spend_json),
        T(test_spend_json_without_config),
        T(test_status_line),
        T(test_concurrent_reserve),
        T(test_concurrent_settle),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
