/* budget_test.h — helpers shared by test_budget.c and test_budget_store.c: the injected
 * clock, hand-built configs, and a fixture holding a started state store and a budget
 * opened on it.  Settling goes both ways, as in the daemon: budget_settle counts the row
 * in memory and a job_commit (sl_submit) writes it to the store, so reopening the budget
 * from the store must give the same totals.
 *
 * Include after <cmocka.h>; every function is static, each test binary has its copy. */
#ifndef RF_BUDGET_TEST_H
#define RF_BUDGET_TEST_H

#include <cjson/cJSON.h>
#include <math.h>

#include "budget.h"
#include "store_test.h"

/* ---- the clock ---- */

static int64_t g_now;

TST_UNUSED int64_t test_clock(void)
{
    return __atomic_load_n(&g_now, __ATOMIC_RELAXED);
}

/* Milliseconds since the epoch for a UTC date and time. */
TST_UNUSED int64_t utc(int year, int mon, int day, int h, int m, int s, int ms)
{
    struct tm tm = { .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day,
                     .tm_hour = h, .tm_min = m, .tm_sec = s };
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- configs ---- */

static rf_tier g_tiers[] = {
    { .name = "fast", .daily_usd = 1.0 },
    { .name = "slow", .daily_usd = -1 },
};

/* Caps: daily, monthly (< 0 = none); the tiers above. */
TST_UNUSED rf_config make_cfg(double daily, double monthly)
{
    return (rf_config){ .tiers = g_tiers, .tiers_len = 2, .daily_usd = daily,
                        .monthly_usd = monthly, .refcount = 1 };
}

/* ---- fixture: a state directory, its store, a budget on it ---- */

typedef struct fixture {
    char dir[64];
    store *st;
    budget *b;
    long committed;            /* ledger rows handed to sl_submit */
} fixture;

/* Close the budget and open it again from what the store holds. */
TST_UNUSED void reopen(fixture *fx)
{
    budget_close(fx->b);
    fx->b = NULL;
    assert_int_equal(store_flush(fx->st), 0);
    rf_err err;
    rf_err_clear(&err);
    fx->b = budget_open(fx->st, test_clock, &err);
    if (!fx->b)
        fail_msg("budget_open: %s", err.msg);
}

TST_UNUSED int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    tst_tempdir(fx->dir, sizeof fx->dir, "budget");
    fx->st = tst_open(fx->dir);
    g_now = utc(2024, 3, 10, 12, 0, 0, 0);
    reopen(fx);
    *state = fx;
    return 0;
}

TST_UNUSED int teardown(void **state)
{
    fixture *fx = *state;
    budget_close(fx->b);
    store_close(fx->st);
    tst_rmrf(fx->dir);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

#define assert_usd(got, want) assert_true(fabs((got) - (want)) < 1e-9)

TST_UNUSED long reserve_ok(fixture *fx, const rf_config *cfg, const char *tier, double amount)
{
    rf_err err;
    rf_err_clear(&err);
    long id = budget_reserve(fx->b, cfg, tier, amount, &err);
    if (id <= 0)
        fail_msg("reserve %g on %s refused: %s", amount, tier ? tier : "(none)", err.msg);
    return id;
}

TST_UNUSED void reserve_refused(fixture *fx, const rf_config *cfg, const char *tier,
                                double amount, const char *message)
{
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(budget_reserve(fx->b, cfg, tier, amount, &err), -1);
    /* EDQUOT: can never fit; EAGAIN: fits once what is reserved settles (see
     * test_refusal_code_waits_for_reservations for which is which) */
    assert_true(err.code == EDQUOT || err.code == EAGAIN);
    assert_string_equal(err.msg, message);
}

/* Write row to the store in a job commit of its own (ledger rows only), as the daemon
 * does with every settled request. */
TST_UNUSED void commit_row(fixture *fx, const ledger_row *row)
{
    job_commit *c = job_commit_new();
    assert_non_null(c);
    c->ledger = calloc(1, sizeof *c->ledger);
    assert_non_null(c->ledger);
    c->ledger[0] = tst_row(row->ref, row->at_ms, row->tier, row->tag, row->provider, row->model,
                           row->upstream, -1, row->estimated);
    c->ledger[0].has_cost = row->has_cost;
    c->ledger[0].cost_nusd = row->cost_nusd;
    c->nledger = 1;
    sl_submit(fx->st, c);
    __atomic_add_fetch(&fx->committed, 1, __ATOMIC_RELAXED);
}

/* Settle a request: cost < 0 means "price unknown"; at_ms 0 = the clock's now. */
TST_UNUSED void settle_full(fixture *fx, long reservation, const char *id, const char *tier,
                            const char *tag, const char *provider, const char *model,
                            const char *upstream, double cost, int estimated, int64_t at_ms)
{
    ledger_row row = { .ref = (char *)id, .at_ms = at_ms, .tier = (char *)tier,
                       .tag = (char *)tag, .provider = (char *)provider, .model = (char *)model,
                       .upstream = (char *)upstream, .has_cost = cost >= 0,
                       .cost_nusd = cost >= 0 ? llround(cost * 1e9) : 0, .estimated = estimated,
                       .prompt_tokens = 100, .completion_tokens = 20 };
    budget_settle(fx->b, reservation, &row);
    row.at_ms = at_ms > 0 ? at_ms : test_clock();
    commit_row(fx, &row);
}

TST_UNUSED void settle_at(fixture *fx, long reservation, const char *id, const char *tier,
                          const char *tag, const char *provider, const char *model, double cost,
                          int64_t at_ms)
{
    settle_full(fx, reservation, id, tier, tag, provider, model, NULL, cost, 0, at_ms);
}

TST_UNUSED void settle(fixture *fx, long reservation, const char *id, const char *tier,
                       double cost)
{
    settle_at(fx, reservation, id, tier, NULL, "or", "m-any", cost, test_clock());
}

TST_UNUSED void expect_totals(fixture *fx, double today, double month, double reserved)
{
    double t = -1, m = -1, r = -1;
    budget_totals(fx->b, &t, &m, &r);
    if (fabs(t - today) > 1e-9 || fabs(m - month) > 1e-9 || fabs(r - reserved) > 1e-9)
        fail_msg("totals: today %.9f month %.9f reserved %.9f; want %.9f %.9f %.9f", t, m, r,
                 today, month, reserved);
}

/* Spend in a spread of tiers, tags, providers, upstreams, models and days. */
TST_UNUSED void spend_some(fixture *fx)
{
    int64_t today = test_clock();
    settle_full(fx, 0, "s1", "fast", "docs", "or", "m-a", "Up1", 0.10, 0, today);
    settle_full(fx, 0, "s2", "fast", NULL, "or", "m-b", "Up2", 0.20, 1, today - 3600000);
    settle_full(fx, 0, "s3", "slow", "docs/api", "cheap", "m-a", NULL, 1.50, 0, today - 86400000);
    settle_full(fx, 0, "s4", "slow", "docs", "cheap", "m-a", NULL, -1, 0, today);  /* unpriced */
    settle_full(fx, 0, "s5", "slow", NULL, "or", "m-b", "Up1", 7.00, 1,
                utc(2024, 2, 20, 0, 0, 0, 0));
}

/* The number at a dotted path of o ("caps.daily.cap"); fails when it is not one. */
TST_UNUSED double num(const cJSON *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *save = NULL, *part = strtok_r(buf, ".", &save); part;
         part = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, part);
    if (!cJSON_IsNumber(v))
        fail_msg("%s is not a number", path);
    return v->valuedouble;
}

#endif
