/* breakers_json.c — what the breakers look like from outside: providers.json and the
 * health rows of status and metrics (see breakers.h).  Only looks: the state shown is
 * breaker_state_at's, so rendering never moves a breaker or calls the listener.
 *
 * Statistics: requests and failures count every recorded attempt; latency percentiles are
 * over successful attempts only (a refused connection is fast and a timeout is the tier's
 * setting, neither is the provider's speed), and a latency_ms < 0 records no sample. */
#include "breakers.h"
#include "breakers_int.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonfmt.h"

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
    long sorted[BREAKER_LATENCY_SAMPLES];
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

/* What an operator reads: "ok", "cooling down", "down" (opened by a 401-404) or
 * "half-open" (cooldown over, waiting for or watching its probe). */
static const char *breaker_health(const breaker *br, rf_breaker_state s)
{
    switch (s) {
    case RF_BREAKER_CLOSED:    return "ok";
    case RF_BREAKER_HALF_OPEN: return "half-open";
    default:                   return br->down ? "down" : "cooling down";
    }
}

/* reopens_at: the monotonic open_until as a wall-clock ISO time; "" when it fails. */
static void wall_time(int64_t until_mono, int64_t now_mono, int64_t now_wall, char *buf,
                      size_t len)
{
    buf[0] = '\0';
    int64_t left = until_mono - now_mono;           /* > 0: the breaker is open */
    if (left < 0 || now_wall > INT64_MAX - left)
        return;
    time_t t = (time_t)((now_wall + left) / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        buf[0] = '\0';
}

/* Fill obj with one breaker's fields; 0 on allocation failure.  Lock held. */
static int breaker_json(const rf_breakers *b, cJSON *obj, const breaker *br, int64_t now_ms,
                        int64_t now_wall_ms)
{
    static const char *const breaker_names[] = {
        [RF_BREAKER_CLOSED] = "closed", [RF_BREAKER_OPEN] = "open",
        [RF_BREAKER_HALF_OPEN] = "half-open",
    };
    rf_breaker_state s = breaker_state_at(br, now_ms);
    char reopens[32] = "";
    if (s == RF_BREAKER_OPEN)
        wall_time(br->open_until_ms, now_ms, now_wall_ms, reopens, sizeof reopens);

    long p50, p95;
    breaker_percentiles(br, &p50, &p95);

    int ok = cJSON_AddStringToObject(obj, "state", breaker_health(br, s)) &&
             cJSON_AddStringToObject(obj, "breaker", breaker_names[s]) &&
             (reopens[0] ? cJSON_AddStringToObject(obj, "reopens_at", reopens)
                         : cJSON_AddNullToObject(obj, "reopens_at")) &&
             cJSON_AddNumberToObject(obj, "consecutive_failures", br->consecutive_failures) &&
             cJSON_AddNumberToObject(obj, "cooldown_ms",
                                     (double)breaker_cooldown_now(b, br, now_ms)) &&
             cJSON_AddNumberToObject(obj, "opened", (double)br->opened) &&
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

static int breakers_fill_json(const rf_breakers *b, cJSON *providers, int64_t now_ms,
                              int64_t now_wall_ms)
{
    /* Provider records come before their models' in `order` (record creates the
     * provider first), so each model finds its provider's object already there. */
    for (size_t i = 0; i < b->len; i++) {
        const breaker *br = b->order[i];
        if (br->model)
            continue;
        cJSON *obj = cJSON_AddObjectToObject(providers, br->provider);
        if (!obj || !breaker_json(b, obj, br, now_ms, now_wall_ms) ||
            !cJSON_AddObjectToObject(obj, "models"))
            return 0;
    }
    for (size_t i = 0; i < b->len; i++) {
        const breaker *br = b->order[i];
        if (!br->model)
            continue;
        cJSON *pobj = cJSON_GetObjectItemCaseSensitive(providers, br->provider);
        cJSON *models = pobj ? cJSON_GetObjectItemCaseSensitive(pobj, "models") : NULL;
        cJSON *obj = models ? cJSON_AddObjectToObject(models, br->model) : NULL;
        if (!obj || !breaker_json(b, obj, br, now_ms, now_wall_ms))
            return 0;
    }
    return 1;
}

char *breakers_to_json(rf_breakers *b, int64_t now_ms, int64_t now_wall_ms)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *providers = root ? cJSON_AddObjectToObject(root, "providers") : NULL;
    int ok = providers != NULL;
    if (ok && b) {
        pthread_mutex_lock(&b->lock);
        ok = breakers_fill_json(b, providers, now_ms, now_wall_ms);
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
        free(h[i].model);
        free(h[i].last_error);
    }
    free(h);
}

/* One row; 0 when out of memory. */
static int health_row(const breaker *br, int64_t now_ms, rf_provider_health *ph)
{
    rf_breaker_state s = breaker_state_at(br, now_ms);
    ph->provider = strdup(br->provider);
    ph->model = br->model ? strdup(br->model) : NULL;
    ph->last_error = br->has_error ? strdup(br->last_error) : NULL;
    ph->state = breaker_health(br, s);
    ph->breaker_closed = s == RF_BREAKER_CLOSED;
    ph->requests = br->requests;
    ph->failures = br->failures;
    return ph->provider && (!br->model || ph->model) && (!br->has_error || ph->last_error);
}

long breakers_health(rf_breakers *b, int64_t now_ms, int with_models, rf_provider_health **out)
{
    *out = NULL;
    if (!b)
        return 0;
    pthread_mutex_lock(&b->lock);
    rf_provider_health *h = calloc(b->len ? b->len : 1, sizeof *h);
    size_t n = 0;
    /* providers first, then (with_models) their models, each in first-seen order */
    for (int pass = 0; h && pass < (with_models ? 2 : 1); pass++) {
        for (size_t i = 0; h && i < b->len; i++) {
            const breaker *br = b->order[i];
            if ((br->model != NULL) != pass)
                continue;
            if (!health_row(br, now_ms, &h[n++])) {
                breakers_health_free(h, n);
                h = NULL;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!h)
        return -1;
    *out = h;
    return (long)n;
}
