/* budget.c — see budget.h.
 *
 * Money is kept internally as integer nano-dollars (int64_t "nusd"): reservations are
 * added and taken back thousands of times, and with doubles the sums would drift so that
 * "reserve exactly up to the cap" would depend on rounding.  Dollars appear only at the
 * edges (the ledger's "cost", spend.json, messages).
 *
 * Spend is tallied overall and per tier, tag, provider, model and upstream provider; each
 * tally keeps its sums per UTC day and per UTC month in a small sorted array, so "today"
 * and "this month" follow the clock without rescanning the ledger.  The ledger itself is
 * in the state store (store_ledger.h), written with each result; at open the tallies are
 * rebuilt from its daily totals (spend_days), which is fast however long the ledger. */
#include "jsonfmt.h"
#include "budget.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hmap.h"
#include "job.h"
#include "log.h"

#define MS_PER_DAY 86400000LL
#define NUSD_PER_USD 1e9
#define NUSD_MAX 1000000000000000000LL   /* $1e9: larger amounts are clamped */

/* ---- money and windows ---- */

static int64_t to_nusd(double usd)
{
    if (usd >= (double)NUSD_MAX / NUSD_PER_USD)
        return NUSD_MAX;
    if (usd <= -(double)NUSD_MAX / NUSD_PER_USD)
        return -NUSD_MAX;
    return (int64_t)llround(usd * NUSD_PER_USD);
}

static double to_usd(int64_t nusd)
{
    return (double)nusd / NUSD_PER_USD;
}

/* Sums never overflow, however absurd the amounts. */
static int64_t add_nusd(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t day_key(int64_t ms)
{
    return floor_div(ms, MS_PER_DAY);
}

static int64_t month_key(int64_t ms)
{
    time_t secs = (time_t)floor_div(ms, 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm))
        return INT64_MIN;     /* out of range: a window of its own, never "now" */
    return ((int64_t)tm.tm_year + 1900) * 12 + tm.tm_mon;
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

static const period *series_find(const series *s, int64_t key)
{
    if (s->len && s->v[s->len - 1].key == key)   /* the usual case: the current window */
        return &s->v[s->len - 1];
    size_t lo = 0, hi = s->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->len && s->v[lo].key == key ? &s->v[lo] : NULL;
}

/* Make room for one more period, so that series_add cannot fail.  -1 on OOM. */
static int series_grow(series *s)
{
    if (s->len < s->cap)
        return 0;
    size_t cap = s->cap ? s->cap * 2 : 4;
    period *v = realloc(s->v, cap * sizeof *v);
    if (!v)
        return -1;
    s->v = v;
    s->cap = cap;
    return 0;
}

static void series_add(series *s, int64_t key, int64_t nusd, long requests)
{
    size_t i = s->len;
    while (i > 0 && s->v[i - 1].key > key)       /* records arrive nearly in order */
        i--;
    if (i > 0 && s->v[i - 1].key == key) {
        s->v[i - 1].nusd = add_nusd(s->v[i - 1].nusd, nusd);
        s->v[i - 1].requests += requests;
        return;
    }
    memmove(&s->v[i + 1], &s->v[i], (s->len - i) * sizeof *s->v);
    s->v[i] = (period){ key, nusd, requests };
    s->len++;
}

/* What was spent in requests requests (unpriced and estimated of them) on day: all or
 * nothing, -1 on OOM with the tally unchanged. */
typedef struct spend_count {
    int64_t nusd;
    long requests, unpriced, estimated;
} spend_count;

static int tally_add(tally *t, int64_t day, int64_t month, const spend_count *c)
{
    if (series_grow(&t->days) < 0 || series_grow(&t->months) < 0)
        return -1;
    series_add(&t->days, day, c->nusd, c->requests);
    series_add(&t->months, month, c->nusd, c->requests);
    t->nusd = add_nusd(t->nusd, c->nusd);
    t->requests += c->requests;
    t->unpriced += c->unpriced;
    t->estimated += c->estimated;
    return 0;
}

/* The window's sums, zero when nothing was spent in it (or t is NULL). */
static period tally_window(const tally *t, int monthly, int64_t key)
{
    const period *p = t ? series_find(monthly ? &t->months : &t->days, key) : NULL;
    return p ? *p : (period){ key, 0, 0 };
}

static int64_t tally_day(const tally *t, int64_t day)
{
    return tally_window(t, 0, day).nusd;
}

static int64_t tally_month(const tally *t, int64_t month)
{
    return tally_window(t, 1, month).nusd;
}

static void tally_free(tally *t)
{
    if (!t)
        return;
    free(t->days.v);
    free(t->months.v);
}

/* ---- the budget ---- */

enum { BY_TIER, BY_TAG, BY_PROVIDER, BY_MODEL, BY_UPSTREAM, BY_COUNT };
static const char *const by_names[BY_COUNT] = {"by_tier", "by_tag", "by_provider", "by_model",
                                               "by_upstream"};

typedef struct held {        /* one reservation in flight */
    char *tier;              /* "" when none was given */
    int64_t nusd;
} held;

typedef struct tier_hold {   /* reservations in flight for one tier */
    int64_t nusd;
    long count;
} tier_hold;

struct budget {
    pthread_mutex_t lock;    /* guards everything below */
    budget_clock_fn clock;
    tally all;
    hmap *by[BY_COUNT];      /* name -> tally* (owned) */
    hmap *reservations;      /* "%ld" id -> held* (owned) */
    hmap *holds;             /* tier -> tier_hold* (owned), only tiers with reservations */
    int64_t reserved_nusd;
    long next_id;
};

static int64_t budget_now(const budget *b)
{
    return b->clock ? b->clock() : now_wall_ms();
}

/* The tally for name in a breakdown, created when create is set; NULL if absent or OOM. */
static tally *breakdown(budget *b, int which, const char *name, int create)
{
    tally *t = hmap_get(b->by[which], name);
    if (t || !create)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (hmap_put(b->by[which], name, t) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

/* Count one settled request everywhere it belongs.  NULL names are left out of their
 * breakdown (an untagged request is in no by_tag entry).  -1 only on OOM. */
static int account(budget *b, const char *names[BY_COUNT], int64_t day, const spend_count *c)
{
    int64_t month = month_key(day * MS_PER_DAY);
    if (tally_add(&b->all, day, month, c) < 0)
        return -1;
    for (int i = 0; i < BY_COUNT; i++) {
        if (!names[i] || !*names[i])
            continue;
        tally *t = breakdown(b, i, names[i], 1);
        if (!t || tally_add(t, day, month, c) < 0)
            return -1;
    }
    return 0;
}

/* ---- caps ---- */

/* Cap messages use cents, or hundredths of a cent when the cap is under a dollar. */
static int cap_decimals(double cap)
{
    return cap < 1.0 ? 4 : 2;
}

/* Is adding want to this window over cap?  For admission (want 0), a window already at
 * its cap counts as over: the next prompt could not reserve anything. */
static int over_cap(const char *label, int64_t cap, int64_t spent, int64_t reserved,
                    int64_t want, rf_err *err)
{
    /* Admission (want 0) asks whether the cap is used up by what was really spent;
     * money merely reserved may yet come back. */
    int over = want > 0 ? add_nusd(add_nusd(spent, reserved), want) > cap : spent >= cap;
    if (!over)
        return 0;
    /* Over only because of requests in flight: it may fit once they settle (EAGAIN). */
    int code = want > 0 && add_nusd(spent, want) <= cap ? EAGAIN : EDQUOT;
    int d = cap_decimals(to_usd(cap));
    return rf_err_set(err, code, "%s $%.*f reached: $%.*f spent, $%.*f reserved", label, d,
                      to_usd(cap), d, to_usd(spent), d, to_usd(reserved));
}

/* A cap scaled to this host's share (1 = the whole cap). */
static int64_t share_of(double cap_usd, double share)
{
    return to_nusd(share < 1 ? cap_usd * share : cap_usd);
}

/* Check every cap that applies to tier (global daily, monthly, the tier's daily), each
 * scaled by share (budget_reserve_share). */
static int check_caps(budget *b, const rf_config *cfg, const char *tier, int64_t want,
                      double share, rf_err *err)
{
    if (!cfg)
        return 0;
    int64_t now = budget_now(b);
    int64_t day = day_key(now);
    /* Every cap is checked: one that can never fit (EDQUOT) outranks one that only has to
     * wait for requests in flight (EAGAIN). */
    rf_err found[3];
    int nfound = 0;
    if (cfg->daily_usd >= 0 &&
        over_cap(share < 1 ? "this host's share of the daily cap" : "daily cap",
                 share_of(cfg->daily_usd, share), tally_day(&b->all, day),
                 b->reserved_nusd, want, &found[nfound]) < 0)
        nfound++;
    if (cfg->monthly_usd >= 0 &&
        over_cap(share < 1 ? "this host's share of the monthly cap" : "monthly cap",
                 share_of(cfg->monthly_usd, share), tally_month(&b->all, month_key(now)),
                 b->reserved_nusd, want, &found[nfound]) < 0)
        nfound++;
    const rf_tier *t = tier ? config_tier(cfg, tier) : NULL;
    if (t && t->daily_usd >= 0) {
        const tier_hold *hold = hmap_get(b->holds, tier);
        char label[300];
        snprintf(label, sizeof label, "%stier %.200s daily cap",
                 share < 1 ? "this host's share of the " : "", tier);
        if (over_cap(label, share_of(t->daily_usd, share),
                     tally_day(breakdown(b, BY_TIER, tier, 0), day),
                     hold ? hold->nusd : 0, want, &found[nfound]) < 0)
            nfound++;
    }
    if (nfound == 0)
        return 0;
    int pick = 0;
    for (int i = 0; i < nfound; i++)
        if (found[i].code == EDQUOT) {
            pick = i;
            break;
        }
    if (err)
        *err = found[pick];
    return -1;
}

double budget_worst_case(const hop_price *p, size_t prompt_bytes, int max_tokens)
{
    if (!p)
        return 0;
    double prompt_tokens = (double)(prompt_bytes / 3 + 16);
    double completion_tokens = max_tokens > 0 ? (double)max_tokens : 0;
    return (prompt_tokens * p->prompt_per_m + completion_tokens * p->completion_per_m) / 1e6 +
           p->request_usd;
}

int budget_caps_apply(const rf_config *cfg, const char *tier)
{
    if (!cfg)
        return 0;
    const rf_tier *t = tier ? config_tier(cfg, tier) : NULL;
    return cfg->daily_usd >= 0 || cfg->monthly_usd >= 0 || (t && t->daily_usd >= 0);
}

/* Record a reservation of want (> 0) for tier_key under id.  -1 only on OOM. */
static int hold_locked(budget *b, long id, const char *tier_key, int64_t want)
{
    char key[24];
    snprintf(key, sizeof key, "%ld", id);
    held *r = malloc(sizeof *r);
    char *tier_copy = strdup(tier_key);
    tier_hold *hold = hmap_get(b->holds, tier_key);
    tier_hold *new_hold = hold ? NULL : calloc(1, sizeof *new_hold);
    if (!r || !tier_copy || (!hold && !new_hold))
        goto oom;
    if (new_hold && hmap_put(b->holds, tier_key, new_hold) < 0)
        goto oom;
    *r = (held){ tier_copy, want };
    if (hmap_put(b->reservations, key, r) < 0) {
        if (new_hold)
            hmap_del(b->holds, tier_key);
        goto oom;
    }
    if (new_hold)
        hold = new_hold;
    hold->nusd += want;
    hold->count++;
    b->reserved_nusd += want;
    return 0;
oom:
    free(r);
    free(tier_copy);
    free(new_hold);
    return -1;
}

long budget_reserve(budget *b, const rf_config *cfg, const char *tier, double amount,
                    rf_err *err)
{
    return budget_reserve_share(b, cfg, tier, amount, 1.0, err);
}

long budget_reserve_share(budget *b, const rf_config *cfg, const char *tier, double amount,
                          double share, rf_err *err)
{
    if (!isfinite(amount) || amount < 0) {
        rf_err_set(err, EINVAL, "cannot reserve $%g", amount);
        return -1;
    }
    int64_t want = to_nusd(amount);
    pthread_mutex_lock(&b->lock);
    long id = b->next_id;
    int64_t sum;
    if (want > 0 && check_caps(b, cfg, tier, want, share, err) < 0) {
        id = -1;
    } else if (__builtin_add_overflow(b->reserved_nusd, want, &sum)) {   /* uncapped, absurd */
        rf_err_set(err, EDQUOT, "cannot reserve $%.2f: $%.2f already reserved", amount,
                   to_usd(b->reserved_nusd));
        id = -1;
    } else if (want > 0 && hold_locked(b, id, tier ? tier : "", want) < 0) {
        rf_err_set(err, ENOMEM, "out of memory");
        id = -1;
    } else {
        b->next_id++;      /* amount 0 gets an id too, one that release ignores */
    }
    pthread_mutex_unlock(&b->lock);
    return id;
}

static void release_locked(budget *b, long id)
{
    char key[24];
    snprintf(key, sizeof key, "%ld", id);
    held *r = hmap_del(b->reservations, key);
    if (!r)
        return;
    b->reserved_nusd -= r->nusd;
    tier_hold *hold = hmap_get(b->holds, r->tier);
    if (hold && --hold->count == 0) {     /* drop idle tiers so the map stays small */
        hmap_del(b->holds, r->tier);
        free(hold);
    } else if (hold) {
        hold->nusd -= r->nusd;
    }
    free(r->tier);
    free(r);
}

void budget_release(budget *b, long reservation)
{
    if (reservation <= 0)
        return;
    pthread_mutex_lock(&b->lock);
    release_locked(b, reservation);
    pthread_mutex_unlock(&b->lock);
}

int budget_check_admission(budget *b, const rf_config *cfg, const char *tier, rf_err *err)
{
    pthread_mutex_lock(&b->lock);
    int rc = check_caps(b, cfg, tier, 0, 1.0, err);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void budget_settle(budget *b, long reservation, const ledger_row *row)
{
    pthread_mutex_lock(&b->lock);
    if (reservation > 0)
        release_locked(b, reservation);
    if (row) {
        const char *names[BY_COUNT] = {row->tier, row->tag, row->provider, row->model,
                                       row->upstream};
        int64_t at_ms = row->at_ms > 0 ? row->at_ms : budget_now(b);
        spend_count c = {row->has_cost ? row->cost_nusd : 0, 1, !row->has_cost,
                         row->estimated != 0};
        if (account(b, names, day_key(at_ms), &c) < 0)
            LOG_ERROR("budget: out of memory: a settled request is missing from spend.json");
    }
    pthread_mutex_unlock(&b->lock);
}

/* One row of spend_days into the tallies. */
static int fold_day(const spend_day_row *r, void *ud)
{
    budget *b = ud;
    const char *names[BY_COUNT] = {r->tier, *r->tag ? r->tag : NULL, r->provider, r->model,
                                   *r->upstream ? r->upstream : NULL};
    spend_count c = {r->nusd, r->requests, r->unpriced, r->estimated};
    return account(b, names, r->day, &c) < 0;
}

/* ---- open / close ---- */

static void free_values(hmap *m, int tallies)
{
    if (!m)
        return;
    for (hmap_iter it = {0}; hmap_next(m, &it);) {
        if (tallies)
            tally_free(it.value);
        free(it.value);
    }
    hmap_free(m);
}

void budget_close(budget *b)
{
    if (!b)
        return;
    tally_free(&b->all);
    for (int i = 0; i < BY_COUNT; i++)
        free_values(b->by[i], 1);
    if (b->reservations) {
        for (hmap_iter it = {0}; hmap_next(b->reservations, &it);)
            free(((held *)it.value)->tier);
        free_values(b->reservations, 0);
    }
    free_values(b->holds, 0);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

budget *budget_open(store *st, budget_clock_fn clock, rf_err *err)
{
    budget *b = calloc(1, sizeof *b);
    if (!b) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    b->clock = clock;
    b->next_id = 1;
    int e = pthread_mutex_init(&b->lock, NULL);
    if (e) {
        free(b);
        rf_err_set(err, e, "budget: mutex: %s", strerror(e));
        return NULL;
    }
    b->reservations = hmap_new();
    b->holds = hmap_new();
    int ok = b->reservations && b->holds;
    for (int i = 0; i < BY_COUNT; i++)
        ok = (b->by[i] = hmap_new()) != NULL && ok;
    if (!ok) {
        rf_err_set(err, ENOMEM, "out of memory");
        goto fail;
    }
    if (st && sl_fold_spend(st, fold_day, b, err) < 0)
        goto fail;
    return b;
fail:
    budget_close(b);
    return NULL;
}

/* ---- reports ---- */

void budget_spent_now(budget *b, const char *tier, int64_t *today_nusd, int64_t *month_nusd)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_now(b);
    const tally *t = tier ? breakdown(b, BY_TIER, tier, 0) : &b->all;
    *today_nusd = t ? tally_day(t, day_key(now)) : 0;
    *month_nusd = t ? tally_month(t, month_key(now)) : 0;
    pthread_mutex_unlock(&b->lock);
}

void budget_totals(budget *b, double *today, double *month, double *reserved)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_now(b);
    if (today)
        *today = to_usd(tally_day(&b->all, day_key(now)));
    if (month)
        *month = to_usd(tally_month(&b->all, month_key(now)));
    if (reserved)
        *reserved = to_usd(b->reserved_nusd);
    pthread_mutex_unlock(&b->lock);
}

static cJSON *cap_json(int64_t cap, int64_t spent, int64_t reserved)
{
    cJSON *o = cJSON_CreateObject();
    int64_t left = cap - add_nusd(spent, reserved);
    if (o && cJSON_AddNumberToObject(o, "cap", to_usd(cap)) &&
        cJSON_AddNumberToObject(o, "spent", to_usd(spent)) &&
        cJSON_AddNumberToObject(o, "reserved", to_usd(reserved)) &&
        cJSON_AddNumberToObject(o, "remaining", to_usd(left > 0 ? left : 0)))
        return o;
    cJSON_Delete(o);
    return NULL;
}

static int cmp_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One breakdown, keys sorted so the file reads the same from run to run. */
static cJSON *breakdown_json(const hmap *m, int64_t day, int64_t month)
{
    cJSON *o = cJSON_CreateObject();
    size_t n = hmap_len(m), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    if (!o || !keys)
        goto fail;
    for (hmap_iter it = {0}; hmap_next(m, &it);)
        keys[i++] = it.key;
    qsort(keys, n, sizeof *keys, cmp_strings);
    for (i = 0; i < n; i++) {
        const tally *t = hmap_get(m, keys[i]);
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToObject(o, keys[i], e)) {
            cJSON_Delete(e);
            goto fail;
        }
        if (!cJSON_AddNumberToObject(e, "total", to_usd(t->nusd)) ||
            !cJSON_AddNumberToObject(e, "today", to_usd(tally_day(t, day))) ||
            !cJSON_AddNumberToObject(e, "this_month",
                                     to_usd(tally_month(t, month))) ||
            !cJSON_AddNumberToObject(e, "requests", (double)t->requests))
            goto fail;
    }
    free(keys);
    return o;
fail:
    free(keys);
    cJSON_Delete(o);
    return NULL;
}

/* Add item to o under name; item is consumed either way.  0 on failure. */
static int add_item(cJSON *o, const char *name, cJSON *item)
{
    if (item && cJSON_AddItemToObject(o, name, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

static cJSON *spend_json_locked(budget *b, const rf_config *cfg)
{
    int64_t now = budget_now(b);
    int64_t day = day_key(now), month = month_key(now);
    int64_t today = tally_day(&b->all, day);
    int64_t this_month = tally_month(&b->all, month);
    cJSON *o = cJSON_CreateObject();
    cJSON *caps = cJSON_CreateObject();
    cJSON *tiers = cJSON_CreateObject();
    cJSON *requests = cJSON_CreateObject();
    int ok = o && caps && tiers && requests;
    ok = ok && cJSON_AddStringToObject(o, "currency", "USD") &&
         cJSON_AddNumberToObject(o, "total", to_usd(b->all.nusd)) &&
         cJSON_AddNumberToObject(o, "today", to_usd(today)) &&
         cJSON_AddNumberToObject(o, "this_month", to_usd(this_month)) &&
         cJSON_AddNumberToObject(o, "reserved", to_usd(b->reserved_nusd));
    /* caps */
    ok = ok && add_item(caps, "daily",
                        cfg && cfg->daily_usd >= 0
                            ? cap_json(to_nusd(cfg->daily_usd), today, b->reserved_nusd)
                            : cJSON_CreateNull());
    ok = ok && add_item(caps, "monthly",
                        cfg && cfg->monthly_usd >= 0
                            ? cap_json(to_nusd(cfg->monthly_usd), this_month, b->reserved_nusd)
                            : cJSON_CreateNull());
    for (size_t i = 0; ok && cfg && i < cfg->tiers_len; i++) {
        const rf_tier *t = &cfg->tiers[i];
        if (t->daily_usd < 0)
            continue;
        const tally *spent = breakdown(b, BY_TIER, t->name, 0);
        const tier_hold *hold = hmap_get(b->holds, t->name);
        ok = add_item(tiers, t->name,
                      cap_json(to_nusd(t->daily_usd), tally_day(spent, day),
                               hold ? hold->nusd : 0));
    }
    ok = ok && add_item(caps, "tiers", tiers);
    tiers = NULL;
    ok = ok && add_item(o, "caps", caps);
    caps = NULL;
    /* requests */
    ok = ok && cJSON_AddNumberToObject(requests, "total", (double)b->all.requests) &&
         cJSON_AddNumberToObject(requests, "today",
                                 (double)tally_window(&b->all, 0, day).requests) &&
         cJSON_AddNumberToObject(requests, "this_month",
                                 (double)tally_window(&b->all, 1, month).requests) &&
         cJSON_AddNumberToObject(requests, "unpriced", (double)b->all.unpriced) &&
         cJSON_AddNumberToObject(requests, "estimated", (double)b->all.estimated);
    ok = ok && add_item(o, "requests", requests);
    requests = NULL;
    for (int i = 0; ok && i < BY_COUNT; i++)
        ok = add_item(o, by_names[i], breakdown_json(b->by[i], day, month));
    if (ok)
        return o;
    cJSON_Delete(o);
    cJSON_Delete(caps);
    cJSON_Delete(tiers);
    cJSON_Delete(requests);
    return NULL;
}

char *budget_spend_json(budget *b, const rf_config *cfg)
{
    pthread_mutex_lock(&b->lock);
    cJSON *o = spend_json_locked(b, cfg);
    pthread_mutex_unlock(&b->lock);
    char *text = o ? json_print_line(o, 1) : NULL;
    cJSON_Delete(o);
    return text;
}

/* "$0.12", or "$0.0031" for amounts too small to show in cents (no cap to scale by). */
static void format_usd(char *buf, size_t len, double usd)
{
    snprintf(buf, len, "$%.*f", usd > 0 && usd < 0.01 ? 4 : 2, usd);
}

/* "today $0.12 of $5.00 daily cap (2%)", or "today $0.12 (no daily cap)" when cap < 0. */
static void format_window(char *buf, size_t len, const char *what, const char *cap_word,
                          const char *no_cap, int64_t spent, double cap_usd)
{
    char amount[48];
    if (cap_usd < 0) {
        format_usd(amount, sizeof amount, to_usd(spent));
        snprintf(buf, len, "%s %s (%s)", what, amount, no_cap);
        return;
    }
    int64_t cap = to_nusd(cap_usd);
    int d = cap_decimals(cap_usd);
    double pct = cap > 0 ? 100.0 * (double)spent / (double)cap : 100;   /* shown rounded down */
    snprintf(buf, len, "%s $%.*f of $%.*f%s (%.0f%%)", what, d, to_usd(spent), d, cap_usd,
             cap_word, floor(pct));
}

char *budget_status_line(budget *b, const rf_config *cfg)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_now(b);
    int64_t today = tally_day(&b->all, day_key(now));
    int64_t month = tally_month(&b->all, month_key(now));
    int64_t reserved = b->reserved_nusd;
    long unpriced = b->all.unpriced;
    pthread_mutex_unlock(&b->lock);

    char day_part[128], month_part[128], reserved_part[48], unpriced_part[96] = "";
    format_window(day_part, sizeof day_part, "today", " daily cap", "no daily cap", today,
                  cfg ? cfg->daily_usd : -1);
    format_window(month_part, sizeof month_part, "this month", "", "no monthly cap", month,
                  cfg ? cfg->monthly_usd : -1);
    format_usd(reserved_part, sizeof reserved_part, to_usd(reserved));
    if (unpriced > 0)
        snprintf(unpriced_part, sizeof unpriced_part,
                 "; %ld request%s without a known price (cost unknown)", unpriced,
                 unpriced == 1 ? "" : "s");
    char *line = NULL;
    if (asprintf(&line, "spend: %s, %s, %s reserved%s", day_part, month_part, reserved_part,
                 unpriced_part) < 0)
        return NULL;
    return line;
}
