/* test_budget.c — budget.c: reservations against caps, UTC windows, the ledger's replay,
 * dedup and torn-line recovery, spend.json and the status line (cmocka).
 *
 * Every test gets a fresh state directory and a budget on an injected clock (g_now).
 * Configs are built by hand: budget.c reads only caps, tiers and prices. */
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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "store.h"

/* ---- the clock ---- */

static int64_t g_now;

static int64_t test_clock(void)
{
    return __atomic_load_n(&g_now, __ATOMIC_RELAXED);
}

/* Milliseconds since the epoch for a UTC date and time. */
static int64_t utc(int year, int mon, int day, int h, int m, int s, int ms)
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

static rf_price g_prices[] = {
    { .provider = NULL, .model = "m-any", .prompt_per_m = 3.0, .completion_per_m = 15.0 },
    { .provider = "cheap", .model = "m-any", .prompt_per_m = 0.5, .completion_per_m = 1.0 },
};

/* Caps: daily, monthly (< 0 = none); the tiers and prices above. */
static rf_config make_cfg(double daily, double monthly)
{
    return (rf_config){ .tiers = g_tiers, .tiers_len = 2, .prices = g_prices,
                        .prices_len = 2, .daily_usd = daily, .monthly_usd = monthly,
                        .refcount = 1 };
}

/* ---- fixture: a state directory and a budget on it ---- */

typedef struct fixture {
    char dir[64];
    char ledger[128];
    store *st;
    budget *b;
} fixture;

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void reopen(fixture *fx)
{
    budget_close(fx->b);
    rf_err err;
    rf_err_clear(&err);
    fx->b = budget_open(fx->st, test_clock, &err);
    if (!fx->b)
        fail_msg("budget_open: %s", err.msg);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    strcpy(fx->dir, "/tmp/rfs-budget.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->ledger, sizeof fx->ledger, "%s/ledger.jsonl", fx->dir);
    rf_err err;
    rf_err_clear(&err);
    fx->st = store_open(fx->dir, &err);
    assert_non_null(fx->st);
    g_now = utc(2024, 3, 10, 12, 0, 0, 0);
    reopen(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    budget_close(fx->b);
    store_close(fx->st);
    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

#define assert_usd(got, want) assert_true(fabs((got) - (want)) < 1e-9)

static long reserve_ok(fixture *fx, const rf_config *cfg, const char *tier, double amount)
{
    rf_err err;
    rf_err_clear(&err);
    long id = budget_reserve(fx->b, cfg, tier, amount, &err);
    if (id <= 0)
        fail_msg("reserve %g on %s refused: %s", amount, tier ? tier : "(none)", err.msg);
    return id;
}

static void reserve_refused(fixture *fx, const rf_config *cfg, const char *tier,
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


/* Settle a record; cost < 0 means "price unknown". */
static void settle_at(fixture *fx, long reservation, const char *id, const char *tier,
                      const char *tag, const char *provider, const char *model, double cost,
                      int64_t at_ms)
{
    budget_record rec = { .id = id, .tier = tier, .tag = tag, .provider = provider,
                          .model = model, .cost = cost < 0 ? 0 : cost, .has_cost = cost >= 0,
                          .prompt_tokens = 100, .completion_tokens = 20, .at_ms = at_ms };
    rf_err err;
    rf_err_clear(&err);
    if (budget_settle(fx->b, reservation, &rec, &err) != 0)
        fail_msg("settle %s: %s", id, err.msg);
}

static void settle(fixture *fx, long reservation, const char *id, const char *tier, double cost)
{
    settle_at(fx, reservation, id, tier, NULL, "or", "m-any", cost, test_clock());
}

static void expect_totals(fixture *fx, double today, double month, double reserved)
{
    double t = -1, m = -1, r = -1;
    budget_totals(fx->b, &t, &m, &r);
    if (fabs(t - today) > 1e-9 || fabs(m - month) > 1e-9 || fabs(r - reserved) > 1e-9)
        fail_msg("totals: today %.9f month %.9f reserved %.9f; want %.9f %.9f %.9f", t, m, r,
                 today, month, reserved);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap * 2 + 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void append_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "ab");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static long count_lines(const char *path)
{
    char *text = read_file(path, NULL);
    long n = 0;
    for (char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* Capture what is logged (to stderr) between capture_start and capture_end. */
typedef struct capture {
    int saved_fd;
    char path[64];
} capture;

static void capture_start(capture *c)
{
    strcpy(c->path, "/tmp/rfs-budget-log.XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved_fd = dup(2);
    assert_true(c->saved_fd >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

static char *capture_end(capture *c)
{
    fflush(stderr);
    assert_true(dup2(c->saved_fd, 2) >= 0);
    close(c->saved_fd);
    char *text = read_file(c->path, NULL);
    unlink(c->path);
    return text;
}

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

static void test_worst_case(void **state)
{
    rf_config cfg = make_cfg(-1, -1);
    rf_hop any = { .provider = "or", .model = "m-any" };
    rf_hop cheap = { .provider = "cheap", .model = "m-any" };
    rf_hop unknown = { .provider = "or", .model = "m-unpriced" };
    int known = -1;
    /* (3000/3 + 16) * 3.0 + 1000 * 15.0 = 3048 + 15000 per million */
    assert_usd(budget_worst_case(&cfg, &any, 3000, 1000, &known), 0.018048);
    assert_int_equal(known, 1);
    /* integer division of the bytes: 3002/3 = 1000 */
    assert_usd(budget_worst_case(&cfg, &any, 3002, 1000, &known), 0.018048);
    /* the provider-specific price wins: (0 + 16) * 0.5 + 256 * 1.0 */
    assert_usd(budget_worst_case(&cfg, &cheap, 0, 256, &known), 0.000264);
    assert_int_equal(known, 1);
    known = -1;
    assert_usd(budget_worst_case(&cfg, &unknown, 3000, 1000, &known), 0);
    assert_int_equal(known, 0);
}

/* ---- the ledger ---- */

static void test_ledger_record_format(void **state)
{
    fixture *fx = *state;
    g_now = utc(2024, 3, 10, 12, 34, 56, 789);
    budget_record rec = { .id = "job-1", .tier = "fast", .tag = "docs", .provider = "or",
                          .model = "vendor/model:free", .cost = 0.00125, .has_cost = 1,
                          .prompt_tokens = 1200, .completion_tokens = -1, .at_ms = 0 };
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(budget_settle(fx->b, 0, &rec, &err), 0);
    budget_record unpriced = { .id = "job-2", .tier = "slow", .provider = "p", .model = "m",
                               .has_cost = 0, .prompt_tokens = -1, .completion_tokens = 7,
                               .at_ms = g_now };
    assert_int_equal(budget_settle(fx->b, 0, &unpriced, &err), 0);

    char *text = read_file(fx->ledger, NULL);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, "job-1");
    assert_string_equal(cJSON_GetObjectItem(o, "time")->valuestring, "2024-03-10T12:34:56.789Z");
    assert_true(cJSON_GetObjectItem(o, "at_ms")->valuedouble == (double)g_now);
    assert_string_equal(cJSON_GetObjectItem(o, "tier")->valuestring, "fast");
    assert_string_equal(cJSON_GetObjectItem(o, "tag")->valuestring, "docs");
    assert_string_equal(cJSON_GetObjectItem(o, "provider")->valuestring, "or");
    assert_string_equal(cJSON_GetObjectItem(o, "model")->valuestring, "vendor/model:free");
    assert_true(cJSON_GetObjectItem(o, "cost")->valuedouble == 0.00125);
    assert_int_equal(cJSON_GetObjectItem(o, "prompt_tokens")->valueint, 1200);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "completion_tokens")));
    cJSON_Delete(o);

    o = cJSON_Parse(nl + 1);
    assert_non_null(o);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "tag")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "cost")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "prompt_tokens")));
    assert_int_equal(cJSON_GetObjectItem(o, "completion_tokens")->valueint, 7);
    cJSON_Delete(o);
    free(text);

    struct stat sb;
    assert_int_equal(stat(fx->ledger, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void test_bad_records_refused(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5, -1);
    long id = reserve_ok(fx, &cfg, "slow", 1.00);
    budget_record rec = { .id = NULL, .tier = "slow", .has_cost = 1, .cost = 0.5 };
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(budget_settle(fx->b, id, &rec, &err), -1);
    assert_int_equal(err.code, EINVAL);
    expect_totals(fx, 0, 0, 0);                          /* the reservation is released anyway */
    rec.id = "x";
    rec.cost = -1;
    assert_int_equal(budget_settle(fx->b, 0, &rec, &err), -1);
    assert_int_equal(err.code, EINVAL);
    rec.cost = NAN;
    assert_int_equal(budget_settle(fx->b, 0, &rec, &err), -1);
    assert_int_equal(budget_settle(fx->b, 0, NULL, &err), -1);
    expect_totals(fx, 0, 0, 0);
    assert_int_equal(count_lines(fx->ledger), 0);
}

/* Spend in a spread of tiers, tags, providers, models and days. */
static void spend_some(fixture *fx)
{
    int64_t today = test_clock();
    settle_at(fx, 0, "s1", "fast", "docs", "or", "m-a", 0.10, today);
    settle_at(fx, 0, "s2", "fast", NULL, "or", "m-b", 0.20, today - 3600000);
    settle_at(fx, 0, "s3", "slow", "docs/api", "cheap", "m-a", 1.50, today - 86400000);
    settle_at(fx, 0, "s4", "slow", "docs", "cheap", "m-a", -1, today);       /* unpriced */
    settle_at(fx, 0, "s5", "slow", NULL, "or", "m-b", 7.00, utc(2024, 2, 20, 0, 0, 0, 0));
}

static void test_replay_same_totals(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, 100.00);
    spend_some(fx);
    char *before = budget_spend_json(fx->b, &cfg);
    char *line_before = budget_status_line(fx->b, &cfg);
    assert_non_null(before);
    assert_non_null(line_before);
    reopen(fx);
    char *after = budget_spend_json(fx->b, &cfg);
    char *line_after = budget_status_line(fx->b, &cfg);
    assert_string_equal(after, before);
    assert_string_equal(line_after, line_before);
    free(before);
    free(after);
    free(line_before);
    free(line_after);
    /* a replayed id is still known: settling it again changes nothing */
    settle(fx, 0, "s1", "fast", 0.10);
    assert_int_equal(count_lines(fx->ledger), 5);
    expect_totals(fx, 0.10 + 0.20, 0.10 + 0.20 + 1.50, 0);
}

static void test_settle_same_id_twice(void **state)
{
    fixture *fx = *state;
    rf_config cfg = make_cfg(5.00, -1);
    long a = reserve_ok(fx, &cfg, "slow", 1.00);
    long b = reserve_ok(fx, &cfg, "slow", 1.00);
    settle(fx, a, "dup", "slow", 0.40);
    settle(fx, b, "dup", "slow", 0.40);                  /* releases b, counts nothing */
    expect_totals(fx, 0.40, 0.40, 0);
    assert_int_equal(count_lines(fx->ledger), 1);
}

static void test_duplicated_line_counts_once(void **state)
{
    fixture *fx = *state;
    settle(fx, 0, "one", "slow", 0.40);
    settle(fx, 0, "two", "slow", 0.02);
    budget_close(fx->b);
    fx->b = NULL;
    char *text = read_file(fx->ledger, NULL);
    char *second = strchr(text, '\n') + 1;              /* append line 1 again, then line 2 */
    append_file(fx->ledger, text);
    *second = '\0';
    append_file(fx->ledger, text);
    free(text);
    assert_int_equal(count_lines(fx->ledger), 5);
    reopen(fx);
    expect_totals(fx, 0.42, 0.42, 0);
    char *json = budget_spend_json(fx->b, NULL);
    cJSON *o = cJSON_Parse(json);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "requests"), "total")->valueint, 2);
    cJSON_Delete(o);
    free(json);
}

static void test_torn_line_recovery(void **state)
{
    fixture *fx = *state;
    settle(fx, 0, "t1", "slow", 0.10);
    settle(fx, 0, "t2", "slow", 0.20);
    budget_close(fx->b);
    fx->b = NULL;
    struct stat sb;
    assert_int_equal(stat(fx->ledger, &sb), 0);
    off_t good = sb.st_size;
    append_file(fx->ledger, "{\"id\":\"t3\",\"time\":\"2024-03-10T12:00:00.000Z\",\"at_ms\":17");

    capture c;
    capture_start(&c);
    reopen(fx);
    char *log = capture_end(&c);
    if (!strstr(log, "warn") || !strstr(log, "torn"))
        fail_msg("no torn-line warning in: %s", log);
    free(log);
    expect_totals(fx, 0.30, 0.30, 0);
    assert_int_equal(stat(fx->ledger, &sb), 0);
    assert_int_equal(sb.st_size, good);                  /* cut back to the last full line */

    settle(fx, 0, "t3", "slow", 0.40);                   /* the torn id was never counted */
    expect_totals(fx, 0.70, 0.70, 0);
    capture_start(&c);
    reopen(fx);
    log = capture_end(&c);
    assert_null(strstr(log, "warn"));                    /* the file is clean again */
    free(log);
    expect_totals(fx, 0.70, 0.70, 0);
    assert_int_equal(count_lines(fx->ledger), 3);
}

static void test_torn_line_only(void **state)
{
    fixture *fx = *state;
    budget_close(fx->b);
    fx->b = NULL;
    append_file(fx->ledger, "{\"id\":");
    capture c;
    capture_start(&c);
    reopen(fx);
    free(capture_end(&c));
    struct stat sb;
    assert_int_equal(stat(fx->ledger, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    settle(fx, 0, "first", "slow", 0.01);
    reopen(fx);
    expect_totals(fx, 0.01, 0.01, 0);
}

static void test_unparsable_lines_skipped(void **state)
{
    fixture *fx = *state;
    budget_close(fx->b);
    fx->b = NULL;
    int64_t now = test_clock();
    char text[2048];
    snprintf(text, sizeof text,
             "{\"id\":\"g1\",\"at_ms\":%lld,\"tier\":\"slow\",\"cost\":0.5}\n"
             "this is not json\n"
             "\n"
             "[1,2,3]\n"
             "{\"at_ms\":%lld,\"cost\":9}\n"
             "{\"id\":\"bad-cost\",\"at_ms\":%lld,\"cost\":\"lots\"}\n"
             "{\"id\":\"no-time\",\"cost\":9}\n"
             "{\"id\":\"g0\",\"at_ms\":%lld,\"cost\":9} trailing\n"
             "{\"id\":\"g2\",\"at_ms\":%lld,\"tier\":\"fast\",\"cost\":0.25,\"extra\":[1]}\n"
             "{\"id\":\"g3\",\"at_ms\":%lld,\"tier\":\"fast\",\"cost\":null}\n",
             (long long)now, (long long)now, (long long)now, (long long)now, (long long)now,
             (long long)now);
    append_file(fx->ledger, text);
    capture c;
    capture_start(&c);
    reopen(fx);
    char *log = capture_end(&c);
    for (int line = 2; line <= 8; line++) {
        if (line == 3)
            continue;                                    /* a blank line is no error */
        char want[64];
        snprintf(want, sizeof want, "ledger.jsonl line %d:", line);
        if (!strstr(log, want))
            fail_msg("no warning for line %d in: %s", line, log);
    }
    assert_null(strstr(log, "line 3:"));
    assert_null(strstr(log, "line 9:"));
    free(log);
    expect_totals(fx, 0.75, 0.75, 0);
    settle(fx, 0, "g4", "slow", 0.05);                   /* appends still work */
    reopen(fx);
    expect_totals(fx, 0.80, 0.80, 0);
}

/* ---- reports ---- */

static double num(const cJSON *o, const char *path)
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
    free(text);

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
    cJSON_Delete(o);
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
                char rec_id[32];
                snprintf(rec_id, sizeof rec_id, "w%d-%d", w->index, i);
                budget_record rec = { .id = rec_id, .tier = "slow", .provider = "or",
                                      .model = "m-a", .cost = 0.01, .has_cost = 1,
                                      .prompt_tokens = 1, .completion_tokens = 1 };
                if (budget_settle(w->fx->b, id, &rec, &err) != 0)
                    w->overshoot = 1;
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
    assert_int_equal(count_lines(fx->ledger), granted);
    reopen(fx);
    expect_totals(fx, granted * 0.01, granted * 0.01, 0);
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
        T(test_ledger_record_format),
        T(test_bad_records_refused),
        T(test_replay_same_totals),
        T(test_settle_same_id_twice),
        T(test_duplicated_line_counts_once),
        T(test_torn_line_recovery),
        T(test_torn_line_only),
        T(test_unparsable_lines_skipped),
        T(test_spend_json),
        T(test_spend_json_without_config),
        T(test_status_line),
        T(test_concurrent_reserve),
        T(test_concurrent_settle),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
