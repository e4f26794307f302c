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
#include "budget_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "log.h"

/* ---- tallies: sums overall and per day / month ---- */

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

period tally_window(const tally *t, int monthly, int64_t key)
{
    const period *p = t ? series_find(monthly ? &t->months : &t->days, key) : NULL;
    return p ? *p : (period){ key, 0, 0 };
}

int64_t tally_day(const tally *t, int64_t day)
{
    return tally_window(t, 0, day).nusd;
}

int64_t tally_month(const tally *t, int64_t month)
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

const char *const budget_by_names[BY_COUNT] = {"by_tier", "by_tag", "by_provider", "by_model",
                                               "by_upstream"};


typedef struct held {        /* one reservation in flight */
    char *tier;              /* "" when none was given */
    int64_t nusd;
} held;

int64_t budget_clock_now(const budget *b)
{
    return b->clock ? b->clock() : now_wall_ms();
}

tally *budget_breakdown(budget *b, int which, const char *name, int create)
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
        tally *t = budget_breakdown(b, i, names[i], 1);
        if (!t || tally_add(t, day, month, c) < 0)
            return -1;
    }
    return 0;
}

/* ---- caps ---- */

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
    int64_t now = budget_clock_now(b);
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
                     tally_day(budget_breakdown(b, BY_TIER, tier, 0), day),
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
        int64_t at_ms = row->at_ms > 0 ? row->at_ms : budget_clock_now(b);
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
    free_values(b->funds, 0);
    free_values(b->warnings, 0);
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
    b->funds = hmap_new();
    b->warnings = hmap_new();
    int ok = b->reservations && b->holds && b->funds && b->warnings;
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

