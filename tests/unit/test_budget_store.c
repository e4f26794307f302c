/* test_budget_store.c — budget.c and the state store: the tallies rebuilt at open from
 * the store's daily totals give what was counted (today, month, every breakdown, unpriced
 * and estimated counts), a request answered after its prompt moved on is still billed,
 * only spend_days is read, and reopening after 1e5 ledger rows over 400 days is fast
 * (cmocka). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "budget_test.h"
#include "store_prompts.h"

static void snapshot(fixture *fx, const rf_config *cfg, char **json, char **line)
{
    *json = budget_spend_json(fx->b, cfg);
    *line = budget_status_line(fx->b, cfg);
    assert_non_null(*json);
    assert_non_null(*line);
}

static void expect_same(fixture *fx, const rf_config *cfg, const char *json, const char *line)
{
    char *j, *l;
    snapshot(fx, cfg, &j, &l);
    assert_string_equal(j, json);
    assert_string_equal(l, line);
    free(j);
    free(l);
}

static void test_reopen_same_totals(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, 100.00);
    spend_some(fx);
    /* more of the same keys on the same days, and a request of long ago */
    settle_full(fx, 0, "s6", "fast", "docs", "or", "m-a", "Up1", 0.05, 1, test_clock() - 1000);
    settle_full(fx, 0, "s7", "slow", "docs", "cheap", "m-a", NULL, -1, 0, test_clock() - 2000);
    settle_full(fx, 0, "s8", "slow", NULL, "or", "m-b", NULL, 0.01, 0, utc(2023, 1, 1, 0, 0, 0, 0));
    char *json, *line;
    snapshot(fx, &cfg, &json, &line);
    reopen(fx);
    expect_same(fx, &cfg, json, line);
    /* the totals are the real ones, not just equal */
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_usd(num(o, "total"), 8.86);
    assert_usd(num(o, "today"), 0.35);
    assert_usd(num(o, "this_month"), 1.85);
    assert_int_equal(num(o, "requests.total"), 8);
    assert_int_equal(num(o, "requests.today"), 5);
    assert_int_equal(num(o, "requests.unpriced"), 2);
    assert_int_equal(num(o, "requests.estimated"), 3);
    assert_usd(num(o, "by_tag.docs.total"), 0.15);
    assert_int_equal(num(o, "by_tag.docs.requests"), 4);
    assert_usd(num(o, "by_upstream.Up1.today"), 0.15);
    assert_usd(num(o, "by_provider.cheap.this_month"), 1.50);
    assert_usd(num(o, "by_model.m-b.total"), 7.21);
    cJSON_Delete(o);
    /* days later, from the store alone: the windows moved on */
    g_now += 40LL * 86400000;
    reopen(fx);
    double today = -1, month = -1;
    budget_totals(fx->b, &today, &month, NULL);
    assert_usd(today, 0);
    assert_usd(month, 0);
    g_now -= 40LL * 86400000;
    expect_same(fx, &cfg, json, line);
    free(json);
    free(line);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1), 8);
}

/* Several ledger rows in one job commit (a job that fell back after a billed answer). */
static void test_one_commit_many_rows(void **state)
{
    fixture *fx = *state;
    job_commit *c = job_commit_new();
    c->ledger = calloc(3, sizeof *c->ledger);
    c->ledger[0] = tst_row("j#1", test_clock(), "fast", NULL, "or", "m-a", NULL, 0.25, 0);
    c->ledger[1] = tst_row("j#2", test_clock(), "fast", NULL, "cheap", "m-b", NULL, -1, 0);
    c->ledger[2] = tst_row("j#3", test_clock(), "fast", NULL, "cheap", "m-b", "U", 0.5, 1);
    c->nledger = 3;
    for (size_t i = 0; i < 3; i++)
        budget_settle(fx->b, 0, &c->ledger[i]);
    char *json, *line;
    rf_config cfg = make_cfg(-1, -1);
    snapshot(fx, &cfg, &json, &line);
    sl_submit(fx->st, c);
    reopen(fx);
    expect_same(fx, &cfg, json, line);
    free(json);
    free(line);
    expect_totals(fx, 0.75, 0.75, 0);
}

/* The answer to an older generation of a prompt (rewritten meanwhile) is not installed,
 * but its bill is recorded: the provider charged for it. */
static void test_moved_prompt_still_billed(void **state)
{
    fixture *fx = *state;
    rf_err err;
    prompt_attrs a = {.mode = 0644};
    assert_int_equal(sp_install(fx->st, "fast/p", "v1", 2, 1, 10, PS_PENDING, &a, 1, &err), 0);
    assert_int_equal(sp_replace_content(fx->st, "fast/p", 10, "v2", 2, 2, 11, PS_PENDING, 1, 1,
                                        &err), 0);
    job_commit *c = job_commit_new();
    c->path = tst_dup("fast/p");
    c->gen = 10;
    c->state = PS_DONE;
    c->out = tst_dup("old answer");
    c->out_len = 10;
    c->meta = tst_dup("{}");
    c->ledger = calloc(2, sizeof *c->ledger);
    c->ledger[0] = tst_row("fast/p#10#1", test_clock(), "fast", NULL, "or", "m-a", NULL, 0.30, 0);
    c->ledger[1] = tst_row("fast/p#10#2", test_clock(), "fast", NULL, "or", "m-a", NULL, 0.20, 0);
    c->nledger = 2;
    for (size_t i = 0; i < 2; i++)
        budget_settle(fx->b, 0, &c->ledger[i]);
    tst_outcome o = {0};
    c->on_done = tst_commit_done;
    c->ud = &o;
    sl_submit(fx->st, c);
    assert_int_equal(store_flush(fx->st), 0);
    assert_int_equal(tst_calls(&o), 1);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.installed, 0);
    prompt_row row;
    assert_int_equal(sp_get(fx->st, "fast/p", &row, &err), 0);
    assert_int_equal(row.gen, 11);
    assert_int_equal(row.out_size, 0);
    expect_totals(fx, 0.50, 0.50, 0);
    reopen(fx);
    expect_totals(fx, 0.50, 0.50, 0);
    rf_config cfg = make_cfg(-1, -1);
    rf_err_clear(&err);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "fast", &err), 0);
    settle(fx, 0, "fast/q#1", "fast", 0.50);        /* the tier's $1.00 cap is used up */
    reopen(fx);
    assert_int_equal(budget_check_admission(fx->b, &cfg, "fast", &err), -1);
    assert_string_equal(err.msg, "tier fast daily cap $1.00 reached: $1.00 spent, $0.00 reserved");
}

/* Only the daily totals are read at open: the ledger's rows themselves are not needed. */
static void test_open_reads_spend_days_only(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5, 100);
    spend_some(fx);
    char *json, *line;
    snapshot(fx, &cfg, &json, &line);
    budget_close(fx->b);
    fx->b = NULL;
    store_close(fx->st);
    tst_raw_exec(fx->dir, "DELETE FROM ledger");
    fx->st = tst_open(fx->dir);
    reopen(fx);
    expect_same(fx, &cfg, json, line);
    free(json);
    free(line);
    budget_close(fx->b);
    fx->b = NULL;
    store_close(fx->st);
    tst_raw_exec(fx->dir, "DELETE FROM spend_days");
    fx->st = tst_open(fx->dir);
    reopen(fx);
    expect_totals(fx, 0, 0, 0);
}

static void test_open_without_store(void **state)
{
    (void)state;
    rf_err err;
    budget *b = budget_open(NULL, test_clock, &err);
    assert_non_null(b);
    double today = -1, month = -1, reserved = -1;
    budget_totals(b, &today, &month, &reserved);
    assert_usd(today + month + reserved, 0);
    budget_close(b);
    budget_close(NULL);
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* 1e5 ledger rows over 400 days: opening reads a few thousand daily totals, not them. */
enum { BIG_ROWS = 100000, BIG_DAYS = 400, ROWS_PER_COMMIT = 1000 };

static void test_reopen_fast_after_many_rows(void **state)
{
    fixture *fx = *state;
    static const char *const tiers[] = {"fast", "slow", "batch"};
    static const char *const providers[] = {"or", "cheap"};
    static const char *const models[] = {"m-a", "m-b"};
    int64_t first_day = test_clock() - (int64_t)(BIG_DAYS - 1) * 86400000;
    int64_t t0 = tst_mono_ms();
    int64_t want_nusd = 0, want_today = 0;
    for (int base = 0; base < BIG_ROWS; base += ROWS_PER_COMMIT) {
        job_commit *c = job_commit_new();
        assert_non_null(c);
        c->ledger = calloc(ROWS_PER_COMMIT, sizeof *c->ledger);
        assert_non_null(c->ledger);
        for (int k = 0; k < ROWS_PER_COMMIT; k++) {
            int i = base + k;
            char ref[32];
            snprintf(ref, sizeof ref, "r%d", i);
            int64_t at = first_day + (int64_t)(i % BIG_DAYS) * 86400000 + i % 1000;
            double cost = (i % 7) * 0.001;
            c->ledger[k] = tst_row(ref, at, tiers[i % 3], i % 5 ? NULL : "tag",
                                   providers[i % 2], models[(i / 2) % 2], NULL,
                                   i % 11 ? cost : -1, i % 13 == 0);
            int64_t nusd = c->ledger[k].has_cost ? c->ledger[k].cost_nusd : 0;
            want_nusd += nusd;
            if (i % BIG_DAYS == BIG_DAYS - 1)
                want_today += nusd;
        }
        c->nledger = ROWS_PER_COMMIT;
        sl_submit(fx->st, c);
    }
    assert_int_equal(store_flush(fx->st), 0);
    int64_t wrote_ms = tst_mono_ms() - t0;
    int64_t days = tst_query_int(fx->st, "SELECT count(*) FROM spend_days", -1);
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM ledger", -1), BIG_ROWS);
    assert_true(days > 0 && days <= BIG_DAYS * 24);

    budget_close(fx->b);
    fx->b = NULL;
    rf_err err;
    int64_t u0 = now_us();
    fx->b = budget_open(fx->st, test_clock, &err);
    int64_t open_us = now_us() - u0;
    assert_non_null(fx->b);
    u0 = now_us();
    assert_int_equal(tst_query_int(fx->st, "SELECT count(*) FROM (SELECT tier, sum(cost_nusd)"
                                           " FROM ledger GROUP BY tier)", -1), 3);
    int64_t scan_us = now_us() - u0;
    print_message("1e5 ledger rows over %d days: written in %lld ms; %lld spend_days rows; "
                  "budget_open %lld us (one pass over the ledger rows alone: %lld us)\n",
                  BIG_DAYS, (long long)wrote_ms, (long long)days, (long long)open_us,
                  (long long)scan_us);
    assert_true(open_us < 2000000);        /* a few ms natively; valgrind is far slower */

    char *json = budget_spend_json(fx->b, NULL);
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    assert_usd(num(o, "total"), want_nusd / 1e9);
    assert_usd(num(o, "today"), want_today / 1e9);
    assert_int_equal(num(o, "requests.total"), BIG_ROWS);
    assert_int_equal(num(o, "requests.today"), BIG_ROWS / BIG_DAYS);
    assert_int_equal(num(o, "requests.unpriced"), BIG_ROWS / 11 + 1);
    assert_int_equal(num(o, "requests.estimated"), BIG_ROWS / 13 + 1);
    assert_int_equal(num(o, "by_tier.batch.requests"), BIG_ROWS / 3);
    assert_int_equal(num(o, "by_tag.tag.requests"), BIG_ROWS / 5);
    cJSON_Delete(o);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_reopen_same_totals),
        T(test_one_commit_many_rows),
        T(test_moved_prompt_still_billed),
        T(test_open_reads_spend_days_only),
        cmocka_unit_test(test_open_without_store),
        T(test_reopen_fast_after_many_rows),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
