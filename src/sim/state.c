/* state.c — installed behaviours and per-model statistics of routefs-sim.
 *
 * One mutex guards everything here.  Critical sections stay short: request bodies are
 * copied before the lock is taken and the copies they replace are freed after it is
 * released.  Models live in a fixed-size chained hash table; a test or benchmark uses a
 * handful of them, and a few thousand would still be cheap. */
#include "sim.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODEL_BUCKETS 1024
#define ARRIVALS_KEPT 2000   /* arrival times kept per model for /stats */

/* Everything the sim knows about one model name. */
typedef struct model_entry {
    struct model_entry *next;   /* hash chain */
    char *name;
    sim_behaviour *behaviour;   /* own behaviour, or NULL to use the default "*" */
    uint64_t requests;
    char *last_body;            /* NUL-terminated, at most SIM_LAST_BODY_MAX bytes */
    char *last_auth;            /* Authorization header value, or NULL when absent */
    int64_t rps_second;         /* wall-clock second of rps_count */
    uint64_t rps_count;         /* requests within rps_second */
    uint64_t max_rps;
    uint64_t fail_generation;   /* behaviour generation that fail_count counts against */
    uint64_t fail_count;        /* requests since that behaviour was installed */
    uint64_t streams, cancelled, tokens_sent;
    double charged_usd;
    int64_t in_flight, max_in_flight;
    uint64_t *arrivals;         /* ring of ARRIVALS_KEPT ms-since-start, or NULL */
    size_t arrivals_next, arrivals_len;
} model_entry;

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static model_entry *models[MODEL_BUCKETS];
static sim_behaviour *default_behaviour;   /* "*"; never NULL after init */
static uint64_t total_requests;
static uint64_t serial_counter;
static uint64_t generation_counter;
static int64_t total_rps_second;
static uint64_t total_rps_count, total_max_rps;
static double total_charged_usd;

/* Requests to the OpenRouter endpoints, by name. */
static const char *const endpoint_names[] = {"/api/v1/models", "/api/v1/key",
                                             "/api/v1/generation"};
#define ENDPOINTS (sizeof endpoint_names / sizeof endpoint_names[0])
static uint64_t endpoint_counts[ENDPOINTS];

/* Kept to rebuild the startup behaviours on /control/reset. */
static cJSON *startup_script;
static long startup_latency_ms = -1;

/* ---------------------------------------------------------------- model table */

static size_t model_bucket(const char *name)
{
    uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % MODEL_BUCKETS);
}

/* Find model, creating it when create is set; NULL when absent or out of memory.
 * Caller holds state_lock. */
static model_entry *model_lookup(const char *name, bool create)
{
    size_t bucket = model_bucket(name);
    for (model_entry *m = models[bucket]; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    if (!create)
        return NULL;
    model_entry *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (!(m->name = strdup(name))) {
        free(m);
        return NULL;
    }
    m->next = models[bucket];
    models[bucket] = m;
    return m;
}

/* Drop every model and the default behaviour.  Caller holds state_lock (or is alone). */
static void models_clear(void)
{
    for (size_t i = 0; i < MODEL_BUCKETS; i++) {
        model_entry *m = models[i];
        while (m) {
            model_entry *next = m->next;
            sim_behaviour_release(m->behaviour);
            free(m->name);
            free(m->last_body);
            free(m->last_auth);
            free(m->arrivals);
            free(m);
            m = next;
        }
        models[i] = NULL;
    }
    sim_behaviour_release(default_behaviour);
    default_behaviour = NULL;
    total_requests = 0;
    total_rps_second = 0;
    total_rps_count = total_max_rps = 0;
    total_charged_usd = 0;
    memset(endpoint_counts, 0, sizeof endpoint_counts);
}

/* Stamp b as installed now.  Caller holds state_lock. */
static void behaviour_stamp(sim_behaviour *b)
{
    b->installed_ns = sim_now_ns();
    b->generation = ++generation_counter;
}

/* Install b for model ("*" = default).  Caller holds state_lock.  Returns the behaviour it
 * replaced (to be released outside the lock), or b itself when out of memory. */
static sim_behaviour *install_locked(const char *model, sim_behaviour *b)
{
    sim_behaviour *old;
    behaviour_stamp(b);
    if (strcmp(model, "*") == 0) {
        old = default_behaviour;
        default_behaviour = b;
        return old;
    }
    model_entry *m = model_lookup(model, true);
    if (!m)
        return b;
    old = m->behaviour;
    m->behaviour = b;
    return old;
}

/* Build the startup behaviours into the (empty) table.  Caller holds state_lock. */
static int install_startup_locked(char *err, size_t errlen)
{
    const cJSON *item;
    bool have_default = false;
    cJSON_ArrayForEach(item, startup_script) {
        if (strcmp(item->string, "models") == 0)   /* the /api/v1/models list */
            continue;
        sim_behaviour *b = sim_behaviour_parse(item, false, err, errlen);
        if (!b) {
            char why[200];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "\"%.64s\": %s", item->string, why);
            return -1;
        }
        bool is_default = strcmp(item->string, "*") == 0;
        if (is_default) {
            have_default = true;
            if (startup_latency_ms >= 0)
                b->latency_ms = startup_latency_ms;   /* --latency-ms wins over the script */
        }
        sim_behaviour *old = install_locked(item->string, b);
        if (old == b) {
            sim_behaviour_release(b);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        sim_behaviour_release(old);
    }
    if (!have_default) {
        sim_behaviour *b = sim_behaviour_new();
        if (!b) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (startup_latency_ms > 0)
            b->latency_ms = startup_latency_ms;
        install_locked("*", b);
    }
    return 0;
}

int sim_state_init(const cJSON *script, long default_latency_ms, char *err, size_t errlen)
{
    startup_script = script ? cJSON_Duplicate(script, true) : cJSON_CreateObject();
    if (!startup_script) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!cJSON_IsObject(startup_script)) {
        snprintf(err, errlen, "the script must be a JSON object mapping model names to behaviours");
        return -1;
    }
    startup_latency_ms = default_latency_ms;
    pthread_mutex_lock(&state_lock);
    int rc = install_startup_locked(err, errlen);
    pthread_mutex_unlock(&state_lock);
    return rc;
}

void sim_state_free(void)
{
    pthread_mutex_lock(&state_lock);
    models_clear();
    pthread_mutex_unlock(&state_lock);
    cJSON_Delete(startup_script);
    startup_script = NULL;
}

void sim_state_reset(void)
{
    char err[256];
    pthread_mutex_lock(&state_lock);
    models_clear();
    /* The script was validated at startup, so only memory can fail here, and a half
     * restored state would mislead the test that asked for it. */
    if (install_startup_locked(err, sizeof err) < 0) {
        fprintf(stderr, "routefs-sim: reset: %s\n", err);
        abort();
    }
    pthread_mutex_unlock(&state_lock);
}

int sim_state_set_behaviour(const char *model, sim_behaviour *b)
{
    pthread_mutex_lock(&state_lock);
    sim_behaviour *old = install_locked(model, b);
    pthread_mutex_unlock(&state_lock);
    bool failed = old == b;
    sim_behaviour_release(old);
    return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- requests */

/* Count one request in a per-second bucket and keep the busiest second. */
static void rps_count(int64_t now_s, int64_t *second, uint64_t *count, uint64_t *max)
{
    if (*second != now_s) {
        *second = now_s;
        *count = 0;
    }
    if (++*count > *max)
        *max = *count;
}

uint64_t sim_state_count_request(void)
{
    int64_t now_s = (int64_t)time(NULL);
    pthread_mutex_lock(&state_lock);
    total_requests++;
    uint64_t serial = ++serial_counter;
    rps_count(now_s, &total_rps_second, &total_rps_count, &total_max_rps);
    pthread_mutex_unlock(&state_lock);
    return serial;
}

void sim_state_record_invalid(void)
{
    (void)sim_state_count_request();
}

bool sim_verdict_is_error(const sim_verdict *v)
{
    const sim_behaviour *b = v->behaviour;
    return v->failing && (v->status >= 300 || v->mode != SIM_MODE_OK || b->key_limit ||
                          b->echo_auth != SIM_ECHO_NONE);
}

/* Decide status and mode for the n-th request (1-based) since b was installed. */
static void decide(const sim_behaviour *b, uint64_t n, uint64_t now_ns, sim_verdict *out)
{
    out->failing = true;
    out->mode = b->mode;
    out->status = (unsigned int)b->status;
    if (b->fail_first >= 0 && n > (uint64_t)b->fail_first)
        out->failing = false;
    if (b->fail_for_ms >= 0 && now_ns - b->installed_ns >= (uint64_t)b->fail_for_ms * 1000000ULL)
        out->failing = false;
    if (out->failing && b->fail_pattern_len > 0) {
        uint64_t i = n - 1;
        if (b->fail_pattern_repeat)
            i %= b->fail_pattern_len;
        if (i >= b->fail_pattern_len) {
            out->failing = false;
        } else {
            const sim_pattern_step *step = &b->fail_pattern[i];
            out->mode = step->mode;
            if (step->status)
                out->status = (unsigned int)step->status;
            if (out->mode == SIM_MODE_OK && (step->status == 0 || step->status < 300))
                out->failing = false;   /* an "ok" or 2xx entry: a plain answer */
        }
    }
    if (!out->failing) {
        out->mode = SIM_MODE_OK;
        out->status = 0;
    }
}

void sim_state_record(const char *model, uint64_t serial, const char *body, size_t body_len,
                      const char *auth, bool stream, bool refused, sim_verdict *out)
{
    /* Copies made before taking the lock; NULL on allocation failure just loses the
     * "last" value, never the count. */
    size_t keep = body ? sim_utf8_cut(body, body_len, SIM_LAST_BODY_MAX) : 0;
    char *body_copy = malloc(keep + 1);
    if (body_copy) {
        if (keep)
            memcpy(body_copy, body, keep);
        body_copy[keep] = '\0';
    }
    char *auth_copy = auth ? strdup(auth) : NULL;
    int64_t now_s = (int64_t)time(NULL);
    uint64_t now_ns = sim_now_ns();
    uint64_t arrival_ms = sim_uptime_ms();

    memset(out, 0, sizeof *out);
    out->serial = serial;
    pthread_mutex_lock(&state_lock);
    model_entry *m = model_lookup(model, true);
    sim_behaviour *b = m && m->behaviour ? m->behaviour : default_behaviour;
    out->behaviour = sim_behaviour_ref(b);
    uint64_t n = 1;
    if (m) {
        m->requests++;
        if (stream)
            m->streams++;
        rps_count(now_s, &m->rps_second, &m->rps_count, &m->max_rps);
        if (!m->arrivals)
            m->arrivals = malloc(ARRIVALS_KEPT * sizeof *m->arrivals);
        if (m->arrivals) {
            m->arrivals[m->arrivals_next] = arrival_ms;
            m->arrivals_next = (m->arrivals_next + 1) % ARRIVALS_KEPT;
            if (m->arrivals_len < ARRIVALS_KEPT)
                m->arrivals_len++;
        }
        if (body_copy) {
            char *swap = m->last_body;
            m->last_body = body_copy;
            body_copy = swap;
        }
        char *swap = m->last_auth;   /* absent header clears it: last_auth is the last one */
        m->last_auth = auth_copy;
        auth_copy = swap;
        if (m->fail_generation != b->generation) {
            m->fail_generation = b->generation;
            m->fail_count = 0;
        }
        if (!refused)
            m->fail_count++;
        n = m->fail_count ? m->fail_count : 1;
    }
    pthread_mutex_unlock(&state_lock);

    decide(b, n, now_ns, out);
    free(body_copy);
    free(auth_copy);
}

void sim_state_in_flight(const char *model, int delta)
{
    pthread_mutex_lock(&state_lock);
    model_entry *m = model_lookup(model, true);
    if (m) {
        m->in_flight += delta;
        if (m->in_flight > m->max_in_flight)
            m->max_in_flight = m->in_flight;
    }
    pthread_mutex_unlock(&state_lock);
}

void sim_state_charge(const char *model, double usd)
{
    pthread_mutex_lock(&state_lock);
    model_entry *m = model_lookup(model, true);
    if (m)
        m->charged_usd += usd;
    total_charged_usd += usd;
    pthread_mutex_unlock(&state_lock);
}

void sim_state_stream_done(const char *model, uint64_t tokens_sent, bool cancelled)
{
    pthread_mutex_lock(&state_lock);
    model_entry *m = model_lookup(model, true);
    if (m) {
        m->tokens_sent += tokens_sent;
        if (cancelled)
            m->cancelled++;
    }
    pthread_mutex_unlock(&state_lock);
}

void sim_state_count_endpoint(const char *name)
{
    pthread_mutex_lock(&state_lock);
    for (size_t i = 0; i < ENDPOINTS; i++)
        if (strcmp(endpoint_names[i], name) == 0)
            endpoint_counts[i]++;
    pthread_mutex_unlock(&state_lock);
}

/* ---------------------------------------------------------------- reports */

static int compare_ids(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(x, "id");
    const cJSON *iy = cJSON_GetObjectItemCaseSensitive(y, "id");
    return strcmp(ix->valuestring, iy->valuestring);
}

cJSON *sim_state_priced_models(void)
{
    cJSON *list = cJSON_CreateArray();
    bool ok = list != NULL;
    size_t n = 0;
    pthread_mutex_lock(&state_lock);
    for (size_t i = 0; ok && i < MODEL_BUCKETS; i++)
        for (model_entry *m = models[i]; ok && m; m = m->next) {
            if (!m->behaviour || !m->behaviour->has_price)
                continue;
            cJSON *entry = cJSON_CreateObject();
            ok = entry && cJSON_AddStringToObject(entry, "id", m->name) &&
                 cJSON_AddNumberToObject(entry, "prompt", m->behaviour->price_prompt) &&
                 cJSON_AddNumberToObject(entry, "completion", m->behaviour->price_completion) &&
                 cJSON_AddItemToArray(list, entry);
            if (!ok)
                cJSON_Delete(entry);
            n++;
        }
    pthread_mutex_unlock(&state_lock);
    /* Hash order is no order: sort by id so the list reads the same every time. */
    cJSON **items = ok && n ? malloc(n * sizeof *items) : NULL;
    if (!ok || (n && !items)) {
        cJSON_Delete(list);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = cJSON_DetachItemFromArray(list, 0);
    if (n)
        qsort(items, n, sizeof *items, compare_ids);
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(list, items[i]);   /* cannot fail for a detached item */
    free(items);
    return list;
}

/* The stats entry of m into entry.  Caller holds state_lock. */
static bool model_stats(const model_entry *m, cJSON *entry)
{
    bool ok = cJSON_AddNumberToObject(entry, "requests", (double)m->requests) &&
              (m->last_body ? cJSON_AddStringToObject(entry, "last_body", m->last_body)
                            : cJSON_AddNullToObject(entry, "last_body")) &&
              (m->last_auth ? cJSON_AddStringToObject(entry, "last_auth", m->last_auth)
                            : cJSON_AddNullToObject(entry, "last_auth")) &&
              cJSON_AddNumberToObject(entry, "max_rps", (double)m->max_rps) &&
              cJSON_AddNumberToObject(entry, "streams", (double)m->streams) &&
              cJSON_AddNumberToObject(entry, "cancelled", (double)m->cancelled) &&
              cJSON_AddNumberToObject(entry, "tokens_sent", (double)m->tokens_sent) &&
              cJSON_AddNumberToObject(entry, "charged_usd", m->charged_usd) &&
              cJSON_AddNumberToObject(entry, "in_flight", (double)m->in_flight) &&
              cJSON_AddNumberToObject(entry, "max_in_flight", (double)m->max_in_flight);
    cJSON *arrivals = ok ? cJSON_AddArrayToObject(entry, "arrivals_ms") : NULL;
    if (!arrivals)
        return false;
    size_t first = (m->arrivals_next + ARRIVALS_KEPT - m->arrivals_len) % ARRIVALS_KEPT;
    for (size_t i = 0; i < m->arrivals_len; i++) {   /* oldest first */
        cJSON *t = cJSON_CreateNumber((double)m->arrivals[(first + i) % ARRIVALS_KEPT]);
        if (!t || !cJSON_AddItemToArray(arrivals, t)) {
            cJSON_Delete(t);
            return false;
        }
    }
    return true;
}

char *sim_state_stats_json(void)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *per_model = cJSON_CreateObject();
    cJSON *endpoints = NULL;
    bool ok = doc && per_model;

    pthread_mutex_lock(&state_lock);
    ok = ok && cJSON_AddNumberToObject(doc, "total", (double)total_requests);
    ok = ok && cJSON_AddNumberToObject(doc, "max_rps", (double)total_max_rps);
    ok = ok && cJSON_AddNumberToObject(doc, "charged_usd", total_charged_usd);
    ok = ok && (endpoints = cJSON_AddObjectToObject(doc, "endpoints"));
    for (size_t i = 0; ok && i < ENDPOINTS; i++)
        ok = cJSON_AddNumberToObject(endpoints, endpoint_names[i], (double)endpoint_counts[i]);
    for (size_t i = 0; ok && i < MODEL_BUCKETS; i++) {
        for (model_entry *m = models[i]; ok && m; m = m->next) {
            if (m->requests == 0)   /* known only through a behaviour: not a model seen */
                continue;
            cJSON *entry = cJSON_AddObjectToObject(per_model, m->name);
            ok = entry && model_stats(m, entry);
        }
    }
    pthread_mutex_unlock(&state_lock);

    /* Attached last so "total" comes first in the text: easier to eyeball. */
    if (ok && cJSON_AddItemToObject(doc, "models", per_model))
        per_model = NULL;
    else
        ok = false;
    cJSON_Delete(per_model);
    char *text = ok ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return text;
}
