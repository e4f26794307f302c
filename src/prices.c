/* prices.c — see prices.h.  Published prices are keyed by model, observed ones by
 * provider + model (the same model costs what its provider charges). */
#include "prices.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "hmap.h"
#include "log.h"
#include "store_ledger.h"

typedef struct known_price {
    double prompt_per_m, completion_per_m, request_usd;
} known_price;

static struct {
    pthread_mutex_t lock;
    store *st;
    hmap *published;          /* model -> known_price* */
    hmap *observed;           /* "provider\x1fmodel" -> known_price* */
    int64_t published_ms;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void free_map(hmap *m)
{
    for (hmap_iter it = {0}; m && hmap_next(m, &it);)
        free(it.value);
    hmap_free(m);
}

static int put(hmap *m, const char *key, const known_price *p)
{
    known_price *v = hmap_get(m, key);
    if (v) {
        *v = *p;
        return 0;
    }
    if (!(v = malloc(sizeof *v)))
        return -1;
    *v = *p;
    if (hmap_put(m, key, v) < 0) {
        free(v);
        return -1;
    }
    return 0;
}

static void observed_key(char *buf, size_t len, const char *provider, const char *model)
{
    snprintf(buf, len, "%s\x1f%s", provider ? provider : "", model);
}

static int load_row(const price_row *r, void *ud)
{
    known_price p = {r->prompt_per_m, r->completion_per_m, r->request_usd};
    if (!strcmp(r->source, "openrouter")) {
        put(P.published, r->model, &p);
        if (r->updated_ms > P.published_ms)
            P.published_ms = r->updated_ms;
    } else if (!strcmp(r->source, "observed")) {
        char key[1024];
        observed_key(key, sizeof key, r->provider, r->model);
        put(P.observed, key, &p);
    }
    return 0;
}

int prices_init(store *st, rf_err *err)
{
    pthread_mutex_lock(&P.lock);
    P.st = st;
    P.published_ms = 0;               /* as loaded below: not a previous init's */
    P.published = hmap_new();
    P.observed = hmap_new();
    int r = 0;
    if (!P.published || !P.observed)
        r = rf_err_set(err, ENOMEM, "out of memory");
    else if (st)
        r = sl_prices_load(st, load_row, NULL, err) < 0 ? -1 : 0;
    pthread_mutex_unlock(&P.lock);
    return r;
}

void prices_shutdown(void)
{
    pthread_mutex_lock(&P.lock);
    free_map(P.published);
    free_map(P.observed);
    P.published = P.observed = NULL;
    P.published_ms = 0;
    P.st = NULL;
    pthread_mutex_unlock(&P.lock);
}

int prices_lookup(const rf_config *cfg, const char *provider, const char *model,
                  hop_price *out)
{
    const rf_provider *p = cfg && provider ? config_provider(cfg, provider) : NULL;
    if (p && p->is_free) {            /* README: every model on it costs nothing */
        *out = (hop_price){0, 0, 0, "free"};
        return 1;
    }
    const rf_price *conf = cfg ? config_price(cfg, provider, model) : NULL;
    int found = conf != NULL;
    if (conf)
        *out = (hop_price){conf->prompt_per_m, conf->completion_per_m, 0, "config"};
    int openrouter = p && p->kind == RF_KIND_OPENROUTER;
    pthread_mutex_lock(&P.lock);
    const known_price *k = NULL;
    if (!found && openrouter && P.published && (k = hmap_get(P.published, model))) {
        *out = (hop_price){k->prompt_per_m, k->completion_per_m, k->request_usd, "openrouter"};
        found = 1;
    }
    /* A variant ("model:nitro", ":floor", ":exacto", ...) not listed on its own: the
     * base model's published price (what is observed corrects it upwards). */
    const char *colon = !found && openrouter && P.published ? strrchr(model, ':') : NULL;
    if (colon && colon > model && (size_t)(colon - model) < 512) {
        char base[512];
        memcpy(base, model, (size_t)(colon - model));
        base[colon - model] = '\0';
        if ((k = hmap_get(P.published, base))) {
            *out = (hop_price){k->prompt_per_m, k->completion_per_m, k->request_usd,
                               "openrouter"};
            found = 1;
        }
    }
    char key[1024];
    observed_key(key, sizeof key, provider, model);
    const known_price *seen = P.observed ? hmap_get(P.observed, key) : NULL;
    if (seen && !found) {
        *out = (hop_price){seen->prompt_per_m, seen->completion_per_m, seen->request_usd,
                           "observed"};
        found = 1;
    } else if (seen && (seen->prompt_per_m > out->prompt_per_m ||
                        seen->completion_per_m > out->completion_per_m)) {
        /* The provider charged more than this price allows (prices_observe): later
         * reservations must bound what it really costs. */
        out->prompt_per_m = fmax(out->prompt_per_m, seen->prompt_per_m);
        out->completion_per_m = fmax(out->completion_per_m, seen->completion_per_m);
        out->request_usd = fmax(out->request_usd, seen->request_usd);
        out->source = "observed";
    }
    pthread_mutex_unlock(&P.lock);
    return found;
}

int prices_observe(const char *provider, const char *model, double cost_usd,
                   long prompt_tokens, long completion_tokens, size_t prompt_bytes,
                   int max_tokens)
{
    if (!isfinite(cost_usd) || cost_usd <= 0)
        return 0;
    /* A per-million rate that, applied to this request's tokens, gives at least what it
     * cost: the worst-case formula's tokens when usage is missing. */
    double pt = prompt_tokens >= 0 ? (double)prompt_tokens : (double)(prompt_bytes / 3 + 16);
    double ct = completion_tokens >= 0 ? (double)completion_tokens : (double)max_tokens;
    double tokens = pt + ct;
    if (tokens < 1)
        tokens = 1;
    double rate = cost_usd / tokens * 1e6;
    char key[1024];
    observed_key(key, sizeof key, provider, model);
    int raised = 0;
    pthread_mutex_lock(&P.lock);
    known_price *k = P.observed ? hmap_get(P.observed, key) : NULL;
    known_price now = {rate, rate, 0};
    if (!k || k->prompt_per_m < rate || k->completion_per_m < rate) {
        if (k) {
            now.prompt_per_m = fmax(k->prompt_per_m, rate);
            now.completion_per_m = fmax(k->completion_per_m, rate);
        }
        raised = P.observed && put(P.observed, key, &now) == 0;
    }
    store *st = P.st;
    pthread_mutex_unlock(&P.lock);
    if (raised && st) {
        price_row row = {model, provider, "observed", now.prompt_per_m, now.completion_per_m, 0,
                         now_wall_ms()};
        sl_price_put(st, &row);
    }
    return raised;
}

int prices_set_published(const published_price *rows, size_t n, rf_err *err)
{
    price_row *pr = calloc(n ? n : 1, sizeof *pr);
    hmap *m = hmap_new();
    if (!pr || !m) {
        free(pr);
        hmap_free(m);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    int64_t now = now_wall_ms();
    for (size_t i = 0; i < n; i++) {
        known_price p = {rows[i].prompt_per_m, rows[i].completion_per_m, rows[i].request_usd};
        if (put(m, rows[i].model, &p) < 0) {
            free(pr);
            free_map(m);
            return rf_err_set(err, ENOMEM, "out of memory");
        }
        pr[i] = (price_row){rows[i].model, "", "openrouter", p.prompt_per_m, p.completion_per_m,
                            p.request_usd, now};
    }
    pthread_mutex_lock(&P.lock);
    store *st = P.st;
    pthread_mutex_unlock(&P.lock);
    int r = st ? sl_prices_replace(st, "openrouter", pr, n, err) : 0;
    free(pr);
    if (r < 0) {
        free_map(m);
        return -1;
    }
    pthread_mutex_lock(&P.lock);
    hmap *old = P.published;
    P.published = m;
    P.published_ms = now;
    pthread_mutex_unlock(&P.lock);
    free_map(old);
    return 0;
}

size_t prices_published_count(int64_t *updated_ms)
{
    pthread_mutex_lock(&P.lock);
    size_t n = P.published ? hmap_len(P.published) : 0;
    if (updated_ms)
        *updated_ms = P.published_ms;
    pthread_mutex_unlock(&P.lock);
    return n;
}

void prices_each(const rf_config *cfg,
                 void (*fn)(const char *provider, const char *model, const hop_price *p,
                            void *ud),
                 void *ud)
{
    for (size_t i = 0; cfg && i < cfg->prices_len; i++) {
        const rf_price *c = &cfg->prices[i];
        hop_price p = {c->prompt_per_m, c->completion_per_m, 0, "config"};
        fn(c->provider, c->model, &p, ud);
    }
    pthread_mutex_lock(&P.lock);
    for (hmap_iter it = {0}; P.published && hmap_next(P.published, &it);) {
        const known_price *k = it.value;
        hop_price p = {k->prompt_per_m, k->completion_per_m, k->request_usd, "openrouter"};
        fn(NULL, it.key, &p, ud);
    }
    for (hmap_iter it = {0}; P.observed && hmap_next(P.observed, &it);) {
        const known_price *k = it.value;
        const char *sep = strchr(it.key, '\x1f');
        char provider[512];
        snprintf(provider, sizeof provider, "%.*s", sep ? (int)(sep - it.key) : 0, it.key);
        hop_price p = {k->prompt_per_m, k->completion_per_m, k->request_usd, "observed"};
        fn(provider, sep ? sep + 1 : it.key, &p, ud);
    }
    pthread_mutex_unlock(&P.lock);
}
