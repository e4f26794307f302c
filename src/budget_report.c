/* budget_report.c — what the budget looks like from outside: spend.json, the status line,
 * totals for metrics, warnings about costs that were not believed, and providers that said
 * their money is gone (see budget.h).  Shares the budget's lock and tallies (budget_int.h). */
#include "budget_int.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsonfmt.h"
#include "log.h"

/* ---- reports ---- */

void budget_spent_now(budget *b, const char *tier, int64_t *today_nusd, int64_t *month_nusd)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_clock_now(b);
    const tally *t = tier ? budget_breakdown(b, BY_TIER, tier, 0) : &b->all;
    *today_nusd = t ? tally_day(t, day_key(now)) : 0;
    *month_nusd = t ? tally_month(t, month_key(now)) : 0;
    pthread_mutex_unlock(&b->lock);
}

void budget_totals(budget *b, double *today, double *month, double *reserved)
{
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_clock_now(b);
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
    int64_t now = budget_clock_now(b);
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
        const tally *spent = budget_breakdown(b, BY_TIER, t->name, 0);
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
        ok = add_item(o, budget_by_names[i], breakdown_json(b->by[i], day, month));
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

/* A growing text of lines, for the status block. */
typedef struct lines {
    char *text;
    size_t len;
    int failed;
} lines;

static void lines_add(lines *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lines_add(lines *l, const char *fmt, ...)
{
    if (l->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    int n = vasprintf(&line, fmt, ap);
    va_end(ap);
    char *grown = n >= 0 ? realloc(l->text, l->len + (size_t)n + 2) : NULL;
    if (!grown) {
        free(line);
        l->failed = 1;
        return;
    }
    l->text = grown;
    if (l->len)
        l->text[l->len++] = '\n';
    memcpy(l->text + l->len, line, (size_t)n + 1);
    l->len += (size_t)n;
    free(line);
}

/* The hops of cfg whose effective price is an observed rate: the provider charged more
 * than the configured or published price allows, or no price is configured at all. */
static void price_lines(const rf_config *cfg, lines *out)
{
    for (size_t t = 0; cfg && t < cfg->tiers_len; t++) {
        const rf_tier *tier = &cfg->tiers[t];
        for (size_t h = 0; h < tier->route_len; h++) {
            const rf_hop *hop = &tier->route[h];
            int seen = 0;   /* the same hop in an earlier tier or position: said already */
            for (size_t t2 = 0; t2 <= t && !seen; t2++)
                for (size_t h2 = 0; h2 < (t2 == t ? h : cfg->tiers[t2].route_len) && !seen; h2++)
                    seen = !strcmp(cfg->tiers[t2].route[h2].provider, hop->provider) &&
                           !strcmp(cfg->tiers[t2].route[h2].model, hop->model);
            hop_price p;
            if (seen || !prices_lookup(cfg, hop->provider, hop->model, &p) ||
                strcmp(p.source, "observed") != 0)
                continue;
            const rf_price *conf = config_price(cfg, hop->provider, hop->model);
            if (conf)
                lines_add(out, "spend: warning: %s on %s charged more than its configured price "
                               "allows ($%g/$%g per million tokens): the configured price is "
                               "too low; reservations use the observed rate ($%g/$%g); raise "
                               "its price in config.json",
                          hop->model, hop->provider, conf->prompt_per_m, conf->completion_per_m,
                          p.prompt_per_m, p.completion_per_m);
            else
                lines_add(out, "spend: %s on %s has no configured price: reservations use the "
                               "highest rate it was seen to charge ($%g/$%g per million tokens)",
                          hop->model, hop->provider, p.prompt_per_m, p.completion_per_m);
        }
    }
}

char *budget_status_line(budget *b, const rf_config *cfg)
{
    lines out = {0};
    char first[600];
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_clock_now(b);
    int64_t today = tally_day(&b->all, day_key(now));
    int64_t month = tally_month(&b->all, month_key(now));
    int64_t reserved = b->reserved_nusd;
    long unpriced = b->all.unpriced, estimated = b->all.estimated;
    {
        char day_part[128], month_part[128], reserved_part[48], unpriced_part[96] = "",
             estimated_part[160] = "";
        format_window(day_part, sizeof day_part, "today", " daily cap", "no daily cap", today,
                      cfg ? cfg->daily_usd : -1);
        format_window(month_part, sizeof month_part, "this month", "", "no monthly cap", month,
                      cfg ? cfg->monthly_usd : -1);
        format_usd(reserved_part, sizeof reserved_part, to_usd(reserved));
        if (unpriced > 0)
            snprintf(unpriced_part, sizeof unpriced_part,
                     "; %ld request%s without a known price (cost unknown)", unpriced,
                     unpriced == 1 ? "" : "s");
        if (estimated > 0)
            snprintf(estimated_part, sizeof estimated_part,
                     "; %ld request%s billed at routefs's estimate (no usage reported, or a "
                     "cost that was not believed)", estimated, estimated == 1 ? "" : "s");
        snprintf(first, sizeof first, "spend: %s, %s, %s reserved%s%s", day_part, month_part,
                 reserved_part, unpriced_part, estimated_part);
    }
    lines_add(&out, "%s", first);
    for (hmap_iter it = {0}; hmap_next(b->funds, &it);) {
        const funds_out *f = it.value;
        if (f->until_ms <= now)
            continue;
        char until[40];
        format_time_ms(f->until_ms, until, sizeof until);
        lines_add(&out, "spend: provider %s is out of budget until %s: %s", it.key, until,
                  f->why);
    }
    for (hmap_iter it = {0}; hmap_next(b->warnings, &it);) {
        const cost_warning *w = it.value;
        const char *sep = strchr(it.key, '\x1f');
        lines_add(&out, "spend: warning: %s on %.*s: %ld answer%s with a cost that was not "
                        "stored (last: %s)", sep ? sep + 1 : it.key,
                  sep ? (int)(sep - it.key) : 0, it.key, w->count, w->count == 1 ? "" : "s",
                  w->last);
    }
    pthread_mutex_unlock(&b->lock);
    price_lines(cfg, &out);   /* prices has a lock of its own: not under the budget's */
    if (out.failed) {
        free(out.text);
        return NULL;
    }
    return out.text;
}

/* ---- providers that said the money is gone ---- */

void budget_provider_out(budget *b, const char *provider, long for_ms, const char *why)
{
    if (for_ms <= 0)
        for_ms = BUDGET_FUNDS_WAIT_MS;
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_clock_now(b), until = add_nusd(now, for_ms);
    funds_out *f = hmap_get(b->funds, provider);
    if (!f && (f = calloc(1, sizeof *f)) && hmap_put(b->funds, provider, f) < 0) {
        free(f);
        f = NULL;
    }
    if (f) {
        if (until > f->until_ms || f->until_ms <= now)
            f->until_ms = until;   /* answers still in flight never shorten it */
        snprintf(f->why, sizeof f->why, "%s", why ? why : "");
    }
    pthread_mutex_unlock(&b->lock);
    if (f)
        LOG_WARN("provider %s is out of budget for %ld s (%s): its hops are skipped until then",
                 provider, (for_ms + 999) / 1000, why ? why : "");
    else
        LOG_ERROR("budget: out of memory: provider %s is not marked out of budget", provider);
}

int budget_provider_blocked(budget *b, const char *provider, char *why, size_t len)
{
    int blocked = 0;
    pthread_mutex_lock(&b->lock);
    funds_out *f = hmap_get(b->funds, provider);
    if (f && f->until_ms > budget_clock_now(b)) {
        char until[40];
        format_time_ms(f->until_ms, until, sizeof until);
        snprintf(why, len, "provider %s is out of budget until %s: %s", provider, until, f->why);
        blocked = 1;
    } else if (f) {
        free(hmap_del(b->funds, provider));   /* its reset time has passed */
    }
    pthread_mutex_unlock(&b->lock);
    return blocked;
}

char *budget_mark_providers(budget *b, char *json)
{
    if (!json)
        return NULL;
    cJSON *doc = NULL, *providers = NULL;
    pthread_mutex_lock(&b->lock);
    int64_t now = budget_clock_now(b);
    int ok = 1;
    for (hmap_iter it = {0}; ok && hmap_next(b->funds, &it);) {
        const funds_out *f = it.value;
        if (f->until_ms <= now)
            continue;
        if (!doc) {
            doc = cJSON_Parse(json);
            providers = cJSON_GetObjectItemCaseSensitive(doc, "providers");
            if (!cJSON_IsObject(providers))
                break;   /* not ours to repair: shown as it is */
        }
        cJSON *p = cJSON_GetObjectItemCaseSensitive(providers, it.key);
        if (!p)
            p = cJSON_AddObjectToObject(providers, it.key);
        char until[40];
        format_time_ms(f->until_ms, until, sizeof until);
        cJSON *state = cJSON_CreateString("out of budget");
        if (p && cJSON_GetObjectItemCaseSensitive(p, "state"))
            ok = cJSON_ReplaceItemInObjectCaseSensitive(p, "state", state);   /* in its place */
        else
            ok = p && cJSON_AddItemToObject(p, "state", state);
        if (!ok)
            cJSON_Delete(state);
        ok = ok && cJSON_AddStringToObject(p, "out_of_budget_until", until) &&
             cJSON_AddStringToObject(p, "out_of_budget_reason", f->why);
    }
    pthread_mutex_unlock(&b->lock);
    char *text = ok && cJSON_IsObject(providers) ? json_print_pretty(doc) : NULL;
    cJSON_Delete(doc);
    if (!text)
        return json;   /* nothing marked (or out of memory): the breakers' view */
    free(json);
    return text;
}

/* ---- costs that were not believed ---- */

void budget_warn_cost(budget *b, const char *provider, const char *model, const char *note)
{
    char key[600];
    snprintf(key, sizeof key, "%s\x1f%s", provider, model);
    pthread_mutex_lock(&b->lock);
    cost_warning *w = hmap_get(b->warnings, key);
    if (!w && (w = calloc(1, sizeof *w)) && hmap_put(b->warnings, key, w) < 0) {
        free(w);
        w = NULL;
    }
    if (w) {
        w->count++;
        snprintf(w->last, sizeof w->last, "%s", note ? note : "");
    }
    pthread_mutex_unlock(&b->lock);
}
