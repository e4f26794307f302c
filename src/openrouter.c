/* openrouter.c — the rfs-openrouter thread: prices, key limits and generation lookups for
 * every OpenRouter-kind provider (see openrouter.h).
 *
 * One loop, one task at a time, in this order of urgency: a config re-scan, a key fetch
 * that is due (on demand or every key_interval), the price list when due, then the
 * generation lookup due soonest.  Between tasks it sleeps on a condition variable
 * (CLOCK_MONOTONIC) until the next deadline or until someone asks for something.  Tasks
 * run without the lock: a lookup being fetched is off the queue, owned by the thread. */
#include "openrouter.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "openrouter_int.h"
#include "store.h"
#include "store_ledger.h"
#include "store_prompts.h"

#define MODELS_MAX_BODY (64u * 1024 * 1024)   /* the real list is ~2 MB */
#define SMALL_MAX_BODY (1024u * 1024)         /* /key, /generation */
#define MERGE_TRIES 3                         /* a lookup whose meta is not there yet */

typedef struct or_prov {
    struct or_prov *next;
    char *name;                 /* owned */
    int present;                /* an OpenRouter provider of the config in force */
    int64_t key_next_ms;        /* monotonic: when the key is fetched next */
    int64_t key_last_ms;        /* monotonic: the last fetch (0 = none yet) */
    int key_now;                /* or_key_refresh asked */
    int has_key;
    or_key_info key;
    int key_fail_logged;
} or_prov;

typedef struct lookup {
    struct lookup *prev, *next; /* the queue, oldest first */
    char *provider, *id;        /* owned */
    int64_t gen;
    int64_t queued_ms, due_ms;  /* monotonic */
    long delay_ms;              /* the next delay */
    int attempts, merge_tries;
    or_generation g;            /* fetched, waiting for its meta (json NULL = not yet) */
} lookup;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int running;
    int stop;                   /* atomic: read by the transfer's progress callback */
    store *st;
    rf_config *(*current_config)(void);
    or_timing t;
    or_prov *provs;
    int rescan;
    int prices_now;
    int64_t prices_next_ms;     /* monotonic; 0 = at once */
    int prices_fail_logged;
    lookup *head, *tail;
    int64_t dropped_logged_at;  /* count of drops when last logged */
    or_stats stats;
    void (*on_enriched)(const char *, int64_t, const or_generation *, void *);
    void *on_enriched_ud;
} O = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const or_timing defaults = {
    .key_interval_ms = 300000, .key_min_gap_ms = 5000, .prices_interval_ms = 86400000,
    .prices_retry_ms = 900000, .gen_first_ms = 500, .gen_cap_ms = 20000,
    .gen_deadline_ms = 120000, .queue_max = 10000, .http_timeout_ms = 30000};

void or_set_timing(const or_timing *t)
{
    pthread_mutex_lock(&O.lock);
    O.t = defaults;
#define TAKE(f) (O.t.f = t && t->f > 0 ? t->f : defaults.f)
    TAKE(key_interval_ms), TAKE(key_min_gap_ms), TAKE(prices_interval_ms);
    TAKE(prices_retry_ms), TAKE(gen_first_ms), TAKE(gen_cap_ms), TAKE(gen_deadline_ms);
    TAKE(queue_max), TAKE(http_timeout_ms);
#undef TAKE
    pthread_mutex_unlock(&O.lock);
}

void or_set_enriched_listener(void (*fn)(const char *, int64_t, const or_generation *, void *),
                              void *ud)
{
    pthread_mutex_lock(&O.lock);
    O.on_enriched = fn;
    O.on_enriched_ud = ud;
    pthread_mutex_unlock(&O.lock);
}

static void signal_locked(void)
{
    pthread_cond_signal(&O.wake);
}

/* ---------------------------------------------------------------- providers */

static or_prov *prov_find(const char *name)
{
    for (or_prov *p = O.provs; p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static void kv_name(char *buf, size_t len, const char *provider)
{
    snprintf(buf, len, "openrouter.key.%s", provider);
}

/* The last stored key info of a provider new to this run (status works offline). */
static void load_stored_key(or_prov *p)
{
    char name[600];
    kv_name(name, sizeof name, p->name);
    char *text = O.st ? sl_kv_get(O.st, name, NULL) : NULL;
    rf_err err;
    or_key_info k;
    if (text && or_key_info_from_json(text, strlen(text), &k, &err) == 0) {
        p->key = k;
        p->has_key = 1;
    }
    free(text);
}

/* Mark the OpenRouter providers of cfg present; new ones are fetched at once.  Takes
 * and releases the lock; store reads happen outside it. */
static void rescan(void)
{
    rf_config *cfg = O.current_config ? O.current_config() : NULL;
    or_prov *fresh = NULL;   /* new providers, filled outside the lock */
    pthread_mutex_lock(&O.lock);
    for (or_prov *p = O.provs; p; p = p->next)
        p->present = 0;
    int added = 0;
    for (size_t i = 0; cfg && i < cfg->providers_len; i++) {
        const rf_provider *rp = &cfg->providers[i];
        if (rp->kind != RF_KIND_OPENROUTER)
            continue;
        or_prov *p = prov_find(rp->name);
        if (!p) {
            for (p = fresh; p && strcmp(p->name, rp->name); p = p->next)
                ;
        }
        if (p) {
            p->present = 1;
            continue;
        }
        if (!(p = calloc(1, sizeof *p)) || !(p->name = strdup(rp->name))) {
            free(p);
            LOG_ERROR("openrouter: out of memory adding provider %s", rp->name);
            continue;
        }
        p->present = 1;
        p->next = fresh;
        fresh = p;
        added = 1;
    }
    pthread_mutex_unlock(&O.lock);
    config_unref(cfg);
    for (or_prov *p = fresh; p; p = p->next)
        load_stored_key(p);
    pthread_mutex_lock(&O.lock);
    while (fresh) {
        or_prov *p = fresh;
        fresh = p->next;
        p->next = O.provs;
        O.provs = p;
    }
    if (added)
        O.prices_next_ms = 0;   /* a new OpenRouter provider: take its list too */
    pthread_mutex_unlock(&O.lock);
}

/* The URL and key of an OpenRouter provider of the config in force: 0, or -1 when it is
 * not one any more or its key cannot be read (logged by the caller). */
static int endpoint(const char *provider, const char *path, char **url, char **key,
                    rf_err *err)
{
    *url = *key = NULL;
    rf_config *cfg = O.current_config ? O.current_config() : NULL;
    const rf_provider *p = cfg ? config_provider(cfg, provider) : NULL;
    int r = -1;
    if (!p || p->kind != RF_KIND_OPENROUTER)
        rf_err_set(err, ENOENT, "%s is not an OpenRouter provider of the config", provider);
    else if (config_provider_key(p, key, err) < 0)
        ;
    else if (asprintf(url, "%s%s", p->base_url, path) < 0)
        *url = NULL, rf_err_set(err, ENOMEM, "out of memory");
    else
        r = 0;
    config_unref(cfg);
    if (r < 0) {
        if (*key)
            explicit_bzero(*key, strlen(*key));
        free(*key);
        *key = NULL;
    }
    return r;
}

static void free_key(char *key)
{
    if (key)
        explicit_bzero(key, strlen(key));
    free(key);
}

/* ---------------------------------------------------------------- the key */

static void fetch_key(or_http *h, const char *provider)
{
    char *url, *key;
    rf_err err;
    rf_err_clear(&err);
    or_http_result res = {0};
    or_key_info k;
    int ok = 0;
    long timeout;
    pthread_mutex_lock(&O.lock);
    timeout = O.t.http_timeout_ms;
    O.stats.key_fetches++;
    pthread_mutex_unlock(&O.lock);
    if (endpoint(provider, "/key", &url, &key, &err) == 0) {
        if (or_http_get(h, url, key, timeout, SMALL_MAX_BODY, &O.stop, &res) < 0)
            rf_err_set(&err, EIO, "%s", res.error);
        else if (res.status != 200)
            rf_err_set(&err, EIO, "HTTP %ld", res.status);
        else if (or_parse_key(res.body, res.len, &k, &err) == 0)
            ok = 1;
        free(url);
        free_key(key);
    }
    free(res.body);
    char *text = NULL;
    if (ok) {
        k.fetched_ms = now_wall_ms();
        text = or_key_info_json(&k);
    }
    pthread_mutex_lock(&O.lock);
    or_prov *p = prov_find(provider);
    int log_failure = 0, recovered = 0;
    if (p && ok) {
        p->key = k;
        p->has_key = 1;
        recovered = p->key_fail_logged;
        p->key_fail_logged = 0;
    } else if (p && !p->key_fail_logged && !__atomic_load_n(&O.stop, __ATOMIC_ACQUIRE)) {
        p->key_fail_logged = log_failure = 1;
    }
    if (!ok)
        O.stats.key_failures++;
    pthread_mutex_unlock(&O.lock);
    if (text && O.st) {
        char name[600];
        kv_name(name, sizeof name, provider);
        sl_kv_put(O.st, name, text);
    }
    free(text);
    if (log_failure)
        LOG_WARN("openrouter: %s: cannot read the key's limits: %s (the last known stay)",
                 provider, err.msg);
    if (recovered)
        LOG_INFO("openrouter: %s: the key's limits are read again", provider);
}

void or_key_refresh(const char *provider)
{
    pthread_mutex_lock(&O.lock);
    or_prov *p = provider ? prov_find(provider) : NULL;
    if (p && p->present) {
        p->key_now = 1;
        signal_locked();
    }
    pthread_mutex_unlock(&O.lock);
}

int or_key_snapshot(const char *provider, or_key_info *out)
{
    pthread_mutex_lock(&O.lock);
    or_prov *p = provider ? prov_find(provider) : NULL;
    int known = p && p->present && p->has_key;
    if (known)
        *out = p->key;
    pthread_mutex_unlock(&O.lock);
    return known;
}

int or_key_remaining_nusd(const char *provider, int64_t *nusd, int64_t *age_ms)
{
    or_key_info k;
    if (!or_key_snapshot(provider, &k) || !k.has_limit_remaining)
        return 0;
    double n = k.limit_remaining * 1e9;
    *nusd = n >= 9.2e18 ? INT64_MAX : (int64_t)llround(n);
    int64_t age = now_wall_ms() - k.fetched_ms;
    *age_ms = age > 0 ? age : 0;
    return 1;
}

char *or_key_json(void)
{
    cJSON *o = cJSON_CreateObject();
    int64_t now = now_wall_ms();
    pthread_mutex_lock(&O.lock);
    for (or_prov *p = O.provs; o && p; p = p->next) {
        if (!p->present || !p->has_key)
            continue;
        char *text = or_key_info_json(&p->key);
        cJSON *k = text ? cJSON_Parse(text) : NULL;
        free(text);
        int64_t age = p->key.fetched_ms > 0 ? now - p->key.fetched_ms : -1;
        if (!k || !(age >= 0 ? cJSON_AddNumberToObject(k, "age_ms", (double)age)
                             : cJSON_AddNullToObject(k, "age_ms")) ||
            !cJSON_AddItemToObject(o, p->name, k)) {
            cJSON_Delete(k);
            cJSON_Delete(o);
            o = NULL;
        }
    }
    pthread_mutex_unlock(&O.lock);
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* ---------------------------------------------------------------- the prices */

/* Try the OpenRouter providers in turn until one gives a sane list: 1 taken, 0 not. */
static int fetch_prices(or_http *h)
{
    rf_config *cfg = O.current_config ? O.current_config() : NULL;
    rf_err err;
    rf_err_clear(&err);
    int taken = 0, tried = 0;
    pthread_mutex_lock(&O.lock);
    long timeout = O.t.http_timeout_ms;
    pthread_mutex_unlock(&O.lock);
    for (size_t i = 0; cfg && i < cfg->providers_len && !taken; i++) {
        const rf_provider *rp = &cfg->providers[i];
        if (rp->kind != RF_KIND_OPENROUTER)
            continue;
        char *url, *key;
        or_http_result res = {0};
        or_models m = {0};
        tried++;
        if (endpoint(rp->name, "/models", &url, &key, &err) < 0)
            continue;
        if (or_http_get(h, url, key, timeout, MODELS_MAX_BODY, &O.stop, &res) < 0)
            rf_err_set(&err, EIO, "%s: %s", rp->name, res.error);
        else if (res.status != 200)
            rf_err_set(&err, EIO, "%s: HTTP %ld", rp->name, res.status);
        else if (or_parse_models(res.body, res.len, &m, &err) == 0 &&
                 prices_set_published(m.rows, m.n, &err) == 0) {
            taken = 1;
            LOG_INFO("openrouter: %zu published prices from %s (%zu entries skipped)",
                     m.n, rp->name, m.skipped);
        }
        free(url);
        free_key(key);
        free(res.body);
        or_models_free(&m);
    }
    config_unref(cfg);
    pthread_mutex_lock(&O.lock);
    int log_failure = 0;
    if (tried)
        O.stats.prices_fetches++;
    if (taken) {
        O.prices_fail_logged = 0;
        O.stats.prices_fetched_ms = now_wall_ms();
    } else if (tried) {
        O.stats.prices_failures++;
        if (!O.prices_fail_logged && !__atomic_load_n(&O.stop, __ATOMIC_ACQUIRE))
            O.prices_fail_logged = log_failure = 1;
    }
    pthread_mutex_unlock(&O.lock);
    if (log_failure)
        LOG_WARN("openrouter: the published prices were not updated: %s (the known ones "
                 "stay)", err.msg);
    return taken;
}

void or_prices_refresh(void)
{
    pthread_mutex_lock(&O.lock);
    O.prices_now = 1;
    signal_locked();
    pthread_mutex_unlock(&O.lock);
}

/* ---------------------------------------------------------------- generation lookups */

static void lookup_free(lookup *l)
{
    if (!l)
        return;
    free(l->provider);
    free(l->id);
    or_generation_free(&l->g);
    free(l);
}

static void queue_unlink(lookup *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        O.head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        O.tail = l->prev;
    l->prev = l->next = NULL;
    O.stats.pending--;
}

static void queue_append(lookup *l)
{
    l->prev = O.tail;
    l->next = NULL;
    if (O.tail)
        O.tail->next = l;
    else
        O.head = l;
    O.tail = l;
    O.stats.pending++;
}

void or_enrich(const char *provider, const char *generation_id, int64_t gen)
{
    if (!provider || !generation_id || !*generation_id || strlen(generation_id) > OR_STRING_MAX)
        return;   /* no id, or not one OpenRouter gives */
    lookup *l = calloc(1, sizeof *l);
    if (!l || !(l->provider = strdup(provider)) || !(l->id = strdup(generation_id))) {
        lookup_free(l);
        LOG_WARN("openrouter: out of memory: generation %lld is not enriched", (long long)gen);
        return;
    }
    l->gen = gen;
    l->queued_ms = now_mono_ms();
    lookup *dropped = NULL;
    uint64_t ndropped = 0;
    int log_drop = 0;
    long queue_max;
    pthread_mutex_lock(&O.lock);
    if (!O.running) {
        pthread_mutex_unlock(&O.lock);
        lookup_free(l);
        return;
    }
    l->due_ms = l->queued_ms + O.t.gen_first_ms;
    queue_max = O.t.queue_max;
    l->delay_ms = 2 * O.t.gen_first_ms;   /* 0.5 s, then 1, 2, 4 ... */
    if (O.stats.pending >= (size_t)O.t.queue_max && O.head) {
        dropped = O.head;
        queue_unlink(dropped);
        ndropped = ++O.stats.dropped;
        /* one line for the first drop, then one per thousand */
        if (ndropped == 1 || ndropped - (uint64_t)O.dropped_logged_at >= 1000) {
            O.dropped_logged_at = (int64_t)ndropped;
            log_drop = 1;
        }
    }
    queue_append(l);
    signal_locked();
    pthread_mutex_unlock(&O.lock);
    if (log_drop)
        LOG_WARN("openrouter: %lu generation lookups waiting: dropped the oldest (generation "
                 "%lld; %llu dropped so far)", (unsigned long)queue_max,
                 (long long)dropped->gen, (unsigned long long)ndropped);
    lookup_free(dropped);
}

/* After a miss: the next try, or 0 when it is out of time. */
static int reschedule(lookup *l, int64_t now)
{
    if (now + l->delay_ms - l->queued_ms > O.t.gen_deadline_ms)
        return 0;
    l->due_ms = now + l->delay_ms;
    l->delay_ms = l->delay_ms * 2 > O.t.gen_cap_ms ? O.t.gen_cap_ms : l->delay_ms * 2;
    return 1;
}

/* Is an answer of this status worth trying again (the record may appear later)? */
static int transient(long status)
{
    return status == 404 || status == 408 || status == 425 || status == 429 || status >= 500;
}

/* "/generation?id=" and the id percent-encoded (all but unreserved characters); malloc'd. */
static char *generation_path(const char *id)
{
    static const char prefix[] = "/generation?id=";
    char *out = malloc(sizeof prefix + 3 * strlen(id));
    if (!out)
        return NULL;
    char *w = out + sprintf(out, "%s", prefix);
    for (const unsigned char *c = (const unsigned char *)id; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            *c == '-' || *c == '_' || *c == '.' || *c == '~')
            *w++ = (char)*c;
        else
            w += sprintf(w, "%%%02X", *c);
    }
    *w = '\0';
    return out;
}

/* One step of a lookup the thread owns: fetch (unless fetched) and merge.  Returns 1 when
 * it must go back into the queue, 0 when it is finished (the caller frees it). */
static int run_lookup(or_http *h, lookup *l)
{
    rf_err err;
    rf_err_clear(&err);
    int retry = 0, fetched = l->g.json != NULL;
    pthread_mutex_lock(&O.lock);
    long timeout = O.t.http_timeout_ms;
    if (!fetched)
        O.stats.generation_gets++;
    pthread_mutex_unlock(&O.lock);
    if (!fetched) {
        char *url = NULL, *key = NULL, *path = NULL;
        or_http_result res = {0};
        l->attempts++;
        if (!(path = generation_path(l->id))) {
            rf_err_set(&err, ENOMEM, "out of memory");
        } else if (endpoint(l->provider, path, &url, &key, &err) == 0) {
            if (or_http_get(h, url, key, timeout, SMALL_MAX_BODY, &O.stop, &res) < 0) {
                rf_err_set(&err, EIO, "%s", res.error);
                retry = 1;
            } else if (res.status != 200) {
                rf_err_set(&err, EIO, "HTTP %ld", res.status);
                retry = transient(res.status);
            } else if (or_parse_generation(res.body, res.len, l->id, &l->g, &err) == 0) {
                fetched = 1;
            }
        }
        free(path);
        free(url);
        free_key(key);
        free(res.body);
    }
    int merged = 0;
    if (fetched && O.st) {
        int r = sp_meta_merge(O.st, l->gen, "openrouter", l->g.json, &err);
        merged = r > 0;
        if (r == 0)
            rf_err_set(&err, ENOENT, "no finished job with that generation");
        if (r <= 0 && ++l->merge_tries < MERGE_TRIES)
            retry = 1;   /* the job's commit may not be in yet, or the store is failing */
    }
    pthread_mutex_lock(&O.lock);
    int again = retry && !__atomic_load_n(&O.stop, __ATOMIC_ACQUIRE) &&
                reschedule(l, now_mono_ms());
    if (merged)
        O.stats.enriched++;
    else if (!again)
        O.stats.gave_up++;
    void (*fn)(const char *, int64_t, const or_generation *, void *) = O.on_enriched;
    void *ud = O.on_enriched_ud;
    pthread_mutex_unlock(&O.lock);
    if (merged && fn)
        fn(l->provider, l->gen, &l->g, ud);
    if (merged)
        LOG_DEBUG("openrouter: generation %lld enriched (%s, %d lookups)", (long long)l->gen,
                  l->g.provider_name[0] ? l->g.provider_name : "?", l->attempts);
    else if (!again && !__atomic_load_n(&O.stop, __ATOMIC_ACQUIRE))
        LOG_INFO("openrouter: %s: generation %lld not enriched after %d lookups: %s",
                 l->provider, (long long)l->gen, l->attempts, err.msg);
    return again;
}

/* ---------------------------------------------------------------- the loop */

enum task { T_NONE, T_RESCAN, T_KEY, T_PRICES, T_LOOKUP };

/* The next task due now (lock held), or T_NONE with *wait_ms until the next one. */
static enum task next_task(int64_t now, char **provider, lookup **l, int64_t *wait_ms)
{
    int64_t next = now + 3600000;
    if (O.rescan) {
        O.rescan = 0;
        return T_RESCAN;
    }
    int any = 0;
    for (or_prov *p = O.provs; p; p = p->next) {
        if (!p->present)
            continue;
        any = 1;
        int64_t due = p->key_next_ms;
        if (p->key_now)
            due = p->key_last_ms ? p->key_last_ms + O.t.key_min_gap_ms : 0;
        if (due <= now) {
            p->key_now = 0;
            p->key_last_ms = now;
            p->key_next_ms = now + O.t.key_interval_ms;
            *provider = strdup(p->name);
            return *provider ? T_KEY : T_NONE;
        }
        if (due < next)
            next = due;
    }
    if (any && (O.prices_now || O.prices_next_ms <= now)) {
        O.prices_now = 0;
        O.prices_next_ms = now + O.t.prices_interval_ms;   /* fetch_prices may shorten it */
        return T_PRICES;
    }
    if (any && O.prices_next_ms < next)
        next = O.prices_next_ms;
    lookup *best = NULL;
    for (lookup *q = O.head; q; q = q->next)
        if (!best || q->due_ms < best->due_ms)
            best = q;
    if (best && best->due_ms <= now) {
        queue_unlink(best);
        *l = best;
        return T_LOOKUP;
    }
    if (best && best->due_ms < next)
        next = best->due_ms;
    *wait_ms = next - now;
    return T_NONE;
}

static void wait_until(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&O.wake, &O.lock, &ts);
}

static void *loop(void *arg)
{
    (void)pthread_setname_np(pthread_self(), "rfs-openrouter");   /* cosmetic */
    or_http *h = arg;
    pthread_mutex_lock(&O.lock);
    while (!__atomic_load_n(&O.stop, __ATOMIC_ACQUIRE)) {
        char *provider = NULL;
        lookup *l = NULL;
        int64_t wait_ms = 0;
        enum task t = next_task(now_mono_ms(), &provider, &l, &wait_ms);
        if (t == T_NONE) {
            wait_until(wait_ms > 0 ? wait_ms : 1);
            continue;
        }
        pthread_mutex_unlock(&O.lock);
        if (t == T_RESCAN) {
            rescan();
        } else if (t == T_KEY) {
            fetch_key(h, provider);
        } else if (t == T_PRICES) {
            if (!fetch_prices(h)) {
                pthread_mutex_lock(&O.lock);
                int64_t retry = now_mono_ms() + O.t.prices_retry_ms;
                if (retry < O.prices_next_ms)
                    O.prices_next_ms = retry;
                pthread_mutex_unlock(&O.lock);
            }
        } else if (run_lookup(h, l)) {
            pthread_mutex_lock(&O.lock);
            queue_append(l);
            l = NULL;
            pthread_mutex_unlock(&O.lock);
        }
        free(provider);
        lookup_free(l);
        pthread_mutex_lock(&O.lock);
    }
    pthread_mutex_unlock(&O.lock);
    or_http_free(h);
    return NULL;
}

int or_start(store *st, rf_config *(*current_config)(void), rf_err *err)
{
    or_http *h = or_http_new();
    if (!h)
        return rf_err_set(err, ENOMEM, "openrouter: cannot create a curl handle");
    pthread_mutex_lock(&O.lock);
    if (O.running) {
        pthread_mutex_unlock(&O.lock);
        or_http_free(h);
        return rf_err_set(err, EBUSY, "openrouter: already started");
    }
    if (O.t.key_interval_ms == 0)
        O.t = defaults;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&O.wake, &ca);
    pthread_condattr_destroy(&ca);
    O.st = st;
    O.current_config = current_config;
    O.rescan = 0;
    O.prices_now = 0;
    O.prices_next_ms = 0;
    O.prices_fail_logged = 0;
    O.dropped_logged_at = 0;
    memset(&O.stats, 0, sizeof O.stats);
    __atomic_store_n(&O.stop, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&O.lock);
    /* The providers and their stored key limits before the first fetch: status shows
     * them offline.  The thread does not run yet, so nothing races this scan. */
    rescan();
    pthread_mutex_lock(&O.lock);
    int rc = pthread_create(&O.thread, NULL, loop, h);
    O.running = rc == 0;
    pthread_mutex_unlock(&O.lock);
    if (rc != 0) {
        or_stop();   /* frees what the scan made */
        pthread_cond_destroy(&O.wake);
        or_http_free(h);
        return rf_err_set(err, rc, "openrouter: cannot start its thread: %s", strerror(rc));
    }
    return 0;
}

void or_stop(void)
{
    pthread_mutex_lock(&O.lock);
    int running = O.running;
    __atomic_store_n(&O.stop, 1, __ATOMIC_RELEASE);
    if (running)
        signal_locked();
    pthread_mutex_unlock(&O.lock);
    if (running)
        pthread_join(O.thread, NULL);   /* a transfer in progress aborts within ~1 s */
    pthread_mutex_lock(&O.lock);
    O.running = 0;
    lookup *q = O.head;
    O.head = O.tail = NULL;
    O.stats.pending = 0;
    or_prov *p = O.provs;
    O.provs = NULL;
    O.st = NULL;
    O.current_config = NULL;
    pthread_mutex_unlock(&O.lock);
    if (running)
        pthread_cond_destroy(&O.wake);
    while (q) {   /* forgotten: a later mount does not enrich them */
        lookup *next = q->next;
        lookup_free(q);
        q = next;
    }
    while (p) {
        or_prov *next = p->next;
        free(p->name);
        free(p);
        p = next;
    }
}

void or_config_changed(void)
{
    pthread_mutex_lock(&O.lock);
    if (O.running) {
        O.rescan = 1;
        signal_locked();
    }
    pthread_mutex_unlock(&O.lock);
}

void or_stats_get(or_stats *out)
{
    pthread_mutex_lock(&O.lock);
    *out = O.stats;
    pthread_mutex_unlock(&O.lock);
}
