/* breakers.c — circuit breakers and provider health statistics (see breakers.h).
 *
 * Circuit breakers.  There is one breaker per provider and, once a model has failed on
 * its own account (404 model, 400 unsupported parameter), one per provider+model.  An
 * attempt needs both to admit it.  A breaker:
 *   CLOSED     counts consecutive failures; at `threshold` it opens.
 *   OPEN       refuses everything until open_until (now + cooldown).
 *   HALF_OPEN  (an OPEN breaker whose cooldown has passed) admits exactly one probe at a
 *              time; the probe's success closes it, its failure opens it again with the
 *              cooldown doubled, up to 8x the configured one.
 * mark_down (auth, billing, not found) opens a breaker at once; providers.json shows such
 * a breaker as "down" rather than "cooling down".
 *
 * The API carries no per-attempt token, so a result is taken to be the probe's when the
 * breaker is half-open with its probe out.  A result that arrives while a breaker is open
 * (an attempt admitted before it opened) is counted in the statistics but does not move
 * the breaker: it says nothing about the provider after the failures that opened it.
 * A probe whose result is never recorded (its job was deleted mid-flight, say) would keep
 * the breaker half-open for ever, so a probe slot is a lease: after PROBE_LEASE_MS another
 * probe is let through.
 *
 * Statistics: requests and failures count every recorded attempt; latency percentiles are
 * over successful attempts only (a refused connection is fast and a timeout is the tier's
 * setting, neither is the provider's speed), and a latency_ms < 0 records no sample. */
#include "breakers.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonfmt.h"

/* ---------------------------------------------------------------------------------- */
/* Circuit breakers                                                                    */
/* ---------------------------------------------------------------------------------- */

#define DEFAULT_THRESHOLD    5
#define DEFAULT_COOLDOWN_MS  30000L
#define MAX_COOLDOWN_SHIFT   3      /* a failed probe doubles the cooldown, up to 8x */
#define PROBE_RECHECK_MS     1000   /* while a probe is out, "ready" is re-asked this often */
#define PROBE_LEASE_MS       300000 /* a probe not heard of for this long is presumed lost */
#define LATENCY_SAMPLES      256
#define LAST_ERROR_MAX       200

typedef struct breaker {
    char *provider;
    char *model;                 /* NULL: the provider-level breaker */
    struct breaker *hnext;       /* hash chain */

    rf_breaker_state state;      /* OPEN becomes HALF_OPEN lazily, see refresh() */
    int down;                    /* opened by mark_down */
    int probe_out;               /* HALF_OPEN: the one probe has been admitted */
    int64_t probe_since_ms;      /* when it was */
    int consecutive_failures;
    int cooldown_shift;          /* 0..MAX_COOLDOWN_SHIFT */
    int64_t open_until_ms;

    uint64_t requests, failures;
    uint64_t fallbacks;          /* jobs that gave up on this provider for a later hop */
    char last_error[LAST_ERROR_MAX + 1];
    int has_error;
    long latency[LATENCY_SAMPLES];  /* ring of successful attempts' latencies */
    size_t latency_len, latency_next;
} breaker;

struct rf_breakers {
    pthread_mutex_t lock;
    int threshold;
    long cooldown_ms;
    breaker **buckets;           /* chained hash on provider (+ "\x1f" + model) */
    size_t nbuckets;             /* power of two */
    breaker **order;             /* insertion order, for a stable providers.json */
    size_t len, cap;
};

rf_breakers *breakers_new(int threshold, long cooldown_ms)
{
    rf_breakers *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->threshold = threshold > 0 ? threshold : DEFAULT_THRESHOLD;
    b->cooldown_ms = cooldown_ms > 0 ? cooldown_ms : DEFAULT_COOLDOWN_MS;
    b->nbuckets = 64;
    b->buckets = calloc(b->nbuckets, sizeof *b->buckets);
    if (!b->buckets || pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b->buckets);
        free(b);
        return NULL;
    }
    return b;
}

void breakers_free(rf_breakers *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->len; i++) {
        free(b->order[i]->provider);
        free(b->order[i]->model);
        free(b->order[i]);
    }
    free(b->order);
    free(b->buckets);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* FNV-1a over provider, a 0x1f separator and model. */
static size_t breaker_hash(const char *provider, const char *model)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = provider; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    if (model) {
        h = (h ^ 0x1f) * 1099511628211ULL;
        for (const char *p = model; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return (size_t)h;
}

static breaker *breaker_find(rf_breakers *b, const char *provider, const char *model)
{
    breaker *br = b->buckets[breaker_hash(provider, model) & (b->nbuckets - 1)];
    for (; br; br = br->hnext) {
        if (strcmp(br->provider, provider) != 0)
            continue;
        if (model ? br->model && strcmp(br->model, model) == 0 : !br->model)
            return br;
    }
    return NULL;
}

static void breakers_rehash(rf_breakers *b)
{
    size_t n = b->nbuckets * 2;
    breaker **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;  /* keep the old table: longer chains, still correct */
    for (size_t i = 0; i < b->len; i++) {
        breaker *br = b->order[i];
        size_t slot = breaker_hash(br->provider, br->model) & (n - 1);
        br->hnext = nb[slot];
        nb[slot] = br;
    }
    free(b->buckets);
    b->buckets = nb;
    b->nbuckets = n;
}

/* NULL only when out of memory. */
static breaker *breaker_get(rf_breakers *b, const char *provider, const char *model)
{
    breaker *br = breaker_find(b, provider, model);
    if (br)
        return br;
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        breaker **order = realloc(b->order, cap * sizeof *order);
        if (!order)
            return NULL;
        b->order = order;
        b->cap = cap;
    }
    br = calloc(1, sizeof *br);
    if (!br)
        return NULL;
    br->provider = strdup(provider);
    br->model = model ? strdup(model) : NULL;
    if (!br->provider || (model && !br->model)) {
        free(br->provider);
        free(br->model);
        free(br);
        return NULL;
    }
    br->state = RF_BREAKER_CLOSED;
    b->order[b->len++] = br;
    size_t slot = breaker_hash(provider, model) & (b->nbuckets - 1);
    br->hnext = b->buckets[slot];
    b->buckets[slot] = br;
    if (b->len > b->nbuckets)
        breakers_rehash(b);
    return br;
}

/* An OPEN breaker whose cooldown is over is HALF_OPEN with no probe out. */
static void breaker_refresh(breaker *br, int64_t now_ms)
{
    if (br->state == RF_BREAKER_OPEN && now_ms >= br->open_until_ms) {
        br->state = RF_BREAKER_HALF_OPEN;
        br->probe_out = 0;
    }
}

static int probe_lost(const breaker *br, int64_t now_ms)
{
    return now_ms - br->probe_since_ms >= PROBE_LEASE_MS;
}

static int breaker_admits(breaker *br, int64_t now_ms)
{
    if (!br)
        return 1;
    breaker_refresh(br, now_ms);
    switch (br->state) {
    case RF_BREAKER_CLOSED:    return 1;
    case RF_BREAKER_HALF_OPEN: return !br->probe_out || probe_lost(br, now_ms);
    default:                   return 0;
    }
}

static void breaker_take_probe(breaker *br, int64_t now_ms)
{
    if (br && br->state == RF_BREAKER_HALF_OPEN) {
        br->probe_out = 1;
        br->probe_since_ms = now_ms;
    }
}

static void breaker_open(rf_breakers *b, breaker *br, int down, int64_t now_ms)
{
    long cooldown = b->cooldown_ms;
    for (int i = 0; i < br->cooldown_shift && cooldown <= LONG_MAX / 2; i++)
        cooldown *= 2;
    br->state = RF_BREAKER_OPEN;
    br->down = down;
    br->probe_out = 0;
    br->open_until_ms = now_ms > INT64_MAX - cooldown ? INT64_MAX : now_ms + cooldown;
}

static void breaker_success(breaker *br, int64_t now_ms)
{
    breaker_refresh(br, now_ms);
    if (br->state == RF_BREAKER_CLOSED) {
        br->consecutive_failures = 0;
    } else if (br->state == RF_BREAKER_HALF_OPEN && br->probe_out) {
        br->state = RF_BREAKER_CLOSED;   /* the probe got through: healthy again */
        br->down = 0;
        br->probe_out = 0;
        br->consecutive_failures = 0;
        br->cooldown_shift = 0;
    }
    /* else: a late success from before the breaker opened; stale, ignore */
}

static void breaker_failure(rf_breakers *b, breaker *br, int mark_down, int64_t now_ms)
{
    breaker_refresh(br, now_ms);
    br->consecutive_failures++;
    int failed_probe = br->state == RF_BREAKER_HALF_OPEN && br->probe_out;
    if (failed_probe && br->cooldown_shift < MAX_COOLDOWN_SHIFT)
        br->cooldown_shift++;
    if (mark_down || failed_probe ||
        (br->state == RF_BREAKER_CLOSED && br->consecutive_failures >= b->threshold))
        breaker_open(b, br, mark_down, now_ms);
    /* else: still closed, or a late failure while already open */
}

/* The attempt told us nothing about this breaker: give its probe slot back. */
static void breaker_release_probe(breaker *br, int64_t now_ms)
{
    breaker_refresh(br, now_ms);
    if (br->state == RF_BREAKER_HALF_OPEN)
        br->probe_out = 0;
}

static void breaker_stats(breaker *br, int success, long latency_ms, const char *error_text)
{
    br->requests++;
    if (success) {
        if (latency_ms >= 0) {
            br->latency[br->latency_next] = latency_ms;
            br->latency_next = (br->latency_next + 1) % LATENCY_SAMPLES;
            if (br->latency_len < LATENCY_SAMPLES)
                br->latency_len++;
        }
        return;
    }
    br->failures++;
    if (error_text) {
        snprintf(br->last_error, sizeof br->last_error, "%s", error_text);
        br->has_error = 1;
    }
}

int breakers_allow(rf_breakers *b, const char *provider, const char *model, int64_t now_ms)
{
    if (!b)
        return 1;
    pthread_mutex_lock(&b->lock);
    breaker *p = breaker_find(b, provider, NULL);
    breaker *m = model ? breaker_find(b, provider, model) : NULL;
    int ok = breaker_admits(p, now_ms) && breaker_admits(m, now_ms);
    if (ok) {  /* only now take the probe slots, so a refusal by one takes nothing */
        breaker_take_probe(p, now_ms);
        breaker_take_probe(m, now_ms);
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void breakers_record(rf_breakers *b, const char *provider, const char *model, int success,
                     int mark_down, int model_specific, long latency_ms,
                     const char *error_text, int64_t now_ms)
{
    if (!b || !provider)
        return;
    if (!model)
        model_specific = 0;
    pthread_mutex_lock(&b->lock);
    breaker *p = breaker_get(b, provider, NULL);
    breaker *m = model ? breaker_find(b, provider, model) : NULL;
    if (!m && model_specific && !success)
        m = breaker_get(b, provider, model);  /* the model now has its own record */
    /* breaker_get may have rehashed; p stays valid (records never move) */

    if (p)
        breaker_stats(p, success, latency_ms, error_text);
    if (m)
        breaker_stats(m, success, latency_ms, error_text);

    if (success) {
        if (p)
            breaker_success(p, now_ms);
        if (m)
            breaker_success(m, now_ms);
    } else if (model_specific) {
        if (m)
            breaker_failure(b, m, mark_down, now_ms);
        if (p)
            breaker_release_probe(p, now_ms);  /* the provider answered; not its fault */
    } else {
        if (p)
            breaker_failure(b, p, mark_down, now_ms);
        if (m)
            breaker_release_probe(m, now_ms);  /* the provider failed; says nothing of the model */
    }
    pthread_mutex_unlock(&b->lock);
}

void breakers_release(rf_breakers *b, const char *provider, const char *model, int64_t now_ms)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    breaker *p = breaker_find(b, provider, NULL);
    breaker *m = model ? breaker_find(b, provider, model) : NULL;
    if (p)
        breaker_release_probe(p, now_ms);
    if (m)
        breaker_release_probe(m, now_ms);
    pthread_mutex_unlock(&b->lock);
}

void breakers_note_fallback(rf_breakers *b, const char *provider)
{
    pthread_mutex_lock(&b->lock);
    breaker *br = breaker_get(b, provider, NULL);
    if (br)
        br->fallbacks++;
    pthread_mutex_unlock(&b->lock);
}

static int64_t breaker_ready_at(const rf_breakers *b, breaker *br, int64_t now_ms)
{
    if (!br)
        return 0;
    breaker_refresh(br, now_ms);
    switch (br->state) {
    case RF_BREAKER_OPEN:
        return br->open_until_ms;
    case RF_BREAKER_HALF_OPEN:
        if (!br->probe_out || probe_lost(br, now_ms))
            return 0;
        /* The probe's result decides; until it lands, look again shortly. */
        return now_ms + (b->cooldown_ms < PROBE_RECHECK_MS ? b->cooldown_ms : PROBE_RECHECK_MS);
    default:
        return 0;
    }
}

int64_t breakers_ready_at(rf_breakers *b, const char *provider, const char *model,
                          int64_t now_ms)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->lock);
    int64_t p = breaker_ready_at(b, breaker_find(b, provider, NULL), now_ms);
    int64_t m = model ? breaker_ready_at(b, breaker_find(b, provider, model), now_ms) : 0;
    pthread_mutex_unlock(&b->lock);
    int64_t at = p > m ? p : m;
    return at <= now_ms ? 0 : at;
}

/* ---- providers.json ---- */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the latency ring; -1 when there are no samples. */
static void breaker_percentiles(const breaker *br, long *p50, long *p95)
{
    *p50 = *p95 = -1;
    if (br->latency_len == 0)
        return;
    long sorted[LATENCY_SAMPLES];
    memcpy(sorted, br->latency, br->latency_len * sizeof sorted[0]);
    qsort(sorted, br->latency_len, sizeof sorted[0], cmp_long);
    size_t n = br->latency_len;
    *p50 = sorted[(n * 50 + 99) / 100 - 1];
    *p95 = sorted[(n * 95 + 99) / 100 - 1];
}

static int add_number_or_null(cJSON *obj, const char *name, long v)
{
    return (v < 0 ? cJSON_AddNullToObject(obj, name)
                  : cJSON_AddNumberToObject(obj, name, (double)v)) != NULL;
}

/* What an operator reads: "ok", "cooling down" or "down" (marked down by a 401-404). */
static const char *breaker_health(const breaker *br)
{
    return br->state == RF_BREAKER_CLOSED ? "ok" : br->down ? "down" : "cooling down";
}

/* Fill obj with one breaker's fields; 0 on allocation failure. */
static int breaker_json(cJSON *obj, breaker *br, int64_t now_ms)
{
    static const char *const breaker_names[] = {
        [RF_BREAKER_CLOSED] = "closed", [RF_BREAKER_OPEN] = "open",
        [RF_BREAKER_HALF_OPEN] = "half-open",
    };
    breaker_refresh(br, now_ms);
    const char *health = breaker_health(br);

    char reopens[32] = "";
    if (br->state == RF_BREAKER_OPEN) {
        /* now_ms is Unix-epoch milliseconds, so this is a wall-clock time */
        time_t t = (time_t)(br->open_until_ms / 1000);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || !strftime(reopens, sizeof reopens, "%Y-%m-%dT%H:%M:%SZ", &tm))
            reopens[0] = '\0';
    }

    long p50, p95;
    breaker_percentiles(br, &p50, &p95);

    int ok = cJSON_AddStringToObject(obj, "state", health) &&
             cJSON_AddStringToObject(obj, "breaker", breaker_names[br->state]) &&
             (reopens[0] ? cJSON_AddStringToObject(obj, "reopens_at", reopens)
                         : cJSON_AddNullToObject(obj, "reopens_at")) &&
             cJSON_AddNumberToObject(obj, "consecutive_failures", br->consecutive_failures) &&
             (br->has_error ? cJSON_AddStringToObject(obj, "last_error", br->last_error)
                            : cJSON_AddNullToObject(obj, "last_error"));
    if (!ok)
        return 0;
    cJSON *lat = cJSON_AddObjectToObject(obj, "latency_ms");
    return lat && add_number_or_null(lat, "p50", p50) && add_number_or_null(lat, "p95", p95) &&
           cJSON_AddNumberToObject(obj, "requests", (double)br->requests) &&
           cJSON_AddNumberToObject(obj, "failures", (double)br->failures) &&
           (br->model || cJSON_AddNumberToObject(obj, "fallbacks", (double)br->fallbacks));
}

static int breakers_fill_json(rf_breakers *b, cJSON *providers, int64_t now_ms)
{
    /* Provider records come before their models' in `order` (record creates the
     * provider first), so each model finds its provider's object already there. */
    for (size_t i = 0; i < b->len; i++) {
        breaker *br = b->order[i];
        if (br->model)
            continue;
        cJSON *obj = cJSON_AddObjectToObject(providers, br->provider);
        if (!obj || !breaker_json(obj, br, now_ms) || !cJSON_AddObjectToObject(obj, "models"))
            return 0;
    }
    for (size_t i = 0; i < b->len; i++) {
        breaker *br = b->order[i];
        if (!br->model)
            continue;
        cJSON *pobj = cJSON_GetObjectItemCaseSensitive(providers, br->provider);
        cJSON *models = pobj ? cJSON_GetObjectItemCaseSensitive(pobj, "models") : NULL;
        cJSON *obj = models ? cJSON_AddObjectToObject(models, br->model) : NULL;
        if (!obj || !breaker_json(obj, br, now_ms))
            return 0;
    }
    return 1;
}

char *breakers_to_json(rf_breakers *b, int64_t now_ms)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *providers = root ? cJSON_AddObjectToObject(root, "providers") : NULL;
    int ok = providers != NULL;
    if (ok && b) {
        pthread_mutex_lock(&b->lock);
        ok = breakers_fill_json(b, providers, now_ms);
        pthread_mutex_unlock(&b->lock);
    }
    char *text = ok ? json_print_pretty(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return NULL;
    char *out = strdup(text);  /* plain malloc'd, whatever cJSON's hooks are */
    cJSON_free(text);
    return out;
}

void breakers_health_free(rf_provider_health *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        free(h[i].provider);
        free(h[i].last_error);
    }
    free(h);
}

long breakers_health(rf_breakers *b, int64_t now_ms, rf_provider_health **out)
{
    *out = NULL;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->lock);
    rf_provider_health *h = calloc(b->len ? b->len : 1, sizeof *h);
    size_t n = 0;
    for (size_t i = 0; h && i < b->len; i++) {
        breaker *br = b->order[i];
        if (br->model)
            continue;
        breaker_refresh(br, now_ms);
        rf_provider_health *ph = &h[n++];
        ph->provider = strdup(br->provider);
        ph->last_error = br->has_error ? strdup(br->last_error) : NULL;
        ph->state = breaker_health(br);
        ph->breaker_closed = br->state == RF_BREAKER_CLOSED;
        ph->requests = br->requests;
        ph->failures = br->failures;
        if (!ph->provider || (br->has_error && !ph->last_error)) {
            breakers_health_free(h, n);
            h = NULL;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!h)
        return -1;
    *out = h;
    return (long)n;
}

/* ---------------------------------------------------------------------------------- */
/* Hop choice                                                                          */
/* ---------------------------------------------------------------------------------- */

/* By name, straight from the struct, so the router does not depend on config.c. */
