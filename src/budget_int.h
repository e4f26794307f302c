/* budget_int.h — what budget.c (reservations, caps, tallies) shares with budget_report.c
 * (spend.json, the status line, providers that ran out of money).  Not a public API.
 *
 * Money is integer nano-dollars (int64_t "nusd") inside; dollars only at the edges. */
#ifndef RF_BUDGET_INT_H
#define RF_BUDGET_INT_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "budget.h"
#include "hmap.h"

#define MS_PER_DAY 86400000LL
#define NUSD_PER_USD 1e9
#define NUSD_MAX 1000000000000000000LL   /* $1e9: larger amounts are clamped */

/* ---- money and windows ---- */

static inline int64_t to_nusd(double usd)
{
    if (usd >= (double)NUSD_MAX / NUSD_PER_USD)
        return NUSD_MAX;
    if (usd <= -(double)NUSD_MAX / NUSD_PER_USD)
        return -NUSD_MAX;
    return (int64_t)llround(usd * NUSD_PER_USD);
}

static inline double to_usd(int64_t nusd)
{
    return (double)nusd / NUSD_PER_USD;
}

/* Sums never overflow, however absurd the amounts. */
static inline int64_t add_nusd(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int64_t day_key(int64_t ms)
{
    return floor_div(ms, MS_PER_DAY);
}

static inline int64_t month_key(int64_t ms)
{
    time_t secs = (time_t)floor_div(ms, 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return INT64_MIN;     /* out of range: a window of its own, never "now" */
    return ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
}

/* Cap messages use cents, or hundredths of a cent when the cap is under a dollar. */
static inline int cap_decimals(double cap)
{
    return cap < 1.0 ? 4 : 2;
}

/* ---- tallies: sums overall and per day / month ---- */

typedef struct period {
    int64_t key;             /* day_key or month_key */
    int64_t nusd;
    long requests;
} period;

typedef struct series {
    period *v;               /* sorted by key; mostly appended at the end */
    size_t len, cap;
} series;

typedef struct tally {
    int64_t nusd;
    long requests;
    long unpriced;           /* requests whose cost was unknown */
    long estimated;          /* requests billed at routefs's estimate */
    series days, months;
} tally;

/* The window's sums, zero when nothing was spent in it (or t is NULL). */
period tally_window(const tally *t, int monthly, int64_t key);
int64_t tally_day(const tally *t, int64_t day);
int64_t tally_month(const tally *t, int64_t month);

/* ---- the budget ---- */

enum { BY_TIER, BY_TAG, BY_PROVIDER, BY_MODEL, BY_UPSTREAM, BY_COUNT };
extern const char *const budget_by_names[BY_COUNT];

typedef struct tier_hold {   /* reservations in flight for one tier */
    int64_t nusd;
    long count;
} tier_hold;

/* A provider that said the money is gone (402, a key limit), until when and why. */
typedef struct funds_out {
    int64_t until_ms;        /* wall clock */
    char why[240];
} funds_out;

/* Answers whose reported cost was not believed, per "provider\x1fmodel". */
typedef struct cost_warning {
    long count;
    char last[240];
} cost_warning;

struct budget {
    pthread_mutex_t lock;    /* guards everything below */
    budget_clock_fn clock;
    tally all;
    hmap *by[BY_COUNT];      /* name -> tally* (owned) */
    hmap *reservations;      /* "%ld" id -> held* (owned) */
    hmap *holds;             /* tier -> tier_hold* (owned), only tiers with reservations */
    hmap *funds;             /* provider -> funds_out* (owned) */
    hmap *warnings;          /* "provider\x1fmodel" -> cost_warning* (owned) */
    int64_t reserved_nusd;
    long next_id;
};

/* Now on the budget's clock (wall ms).  Lock not needed. */
int64_t budget_clock_now(const budget *b);
/* The tally for name in a breakdown, created when create is set; NULL if absent or OOM.
 * Lock held. */
tally *budget_breakdown(budget *b, int which, const char *name, int create);

#endif
