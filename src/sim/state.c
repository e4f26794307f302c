/* state.c — behaviours and per-model statistics of routefs-sim.
 *
 * One mutex guards everything here.  Critical sections stay short: request bodies are
 * copied before the lock is taken and the copies they replace are freed after it is
 * released.  Models live in a fixed-size chained hash table; a test or benchmark uses a
 * handful of them, and a few thousand would still be cheap. */
#include "sim.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODEL_BUCKETS 1024

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
} model_entry;

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static model_entry *models[MODEL_BUCKETS];
static sim_behaviour *default_behaviour;   /* "*"; never NULL after init */
static uint64_t total_requests;
static uint64_t serial_counter;
static uint64_t generation_counter;
static int64_t total_rps_second;
static uint64_t total_rps_count, total_max_rps;

/* Kept to rebuild the startup behaviours on /control/reset. */
static cJSON *startup_script;
static long startup_latency_ms = -1;

/* ---------------------------------------------------------------- behaviours */

static const struct {
    const char *name;
    enum sim_mode mode;
} mode_names[] = {
    {"ok", SIM_MODE_OK},
    {"hang", SIM_MODE_HANG},
    {"close", SIM_MODE_CLOSE},
    {"malformed", SIM_MODE_MALFORMED},
    {"truncated", SIM_MODE_TRUNCATED},
    {"error_object", SIM_MODE_ERROR_OBJECT},
    {"finish_error", SIM_MODE_FINISH_ERROR},
    {"no_choices", SIM_MODE_NO_CHOICES},
    {"empty_content", SIM_MODE_EMPTY_CONTENT},
    {"html", SIM_MODE_HTML},
    {"missing_choices", SIM_MODE_MISSING_CHOICES},
    {"choices_not_array", SIM_MODE_CHOICES_NOT_ARRAY},
    {"message_not_object", SIM_MODE_MESSAGE_NOT_OBJECT},
    {"content_number", SIM_MODE_CONTENT_NUMBER},
    {"invalid_utf8", SIM_MODE_INVALID_UTF8},
    {"nul_content", SIM_MODE_NUL_CONTENT},
    {"dup_keys", SIM_MODE_DUP_KEYS},
    {"usage_garbage", SIM_MODE_USAGE_GARBAGE},
    {"top_array", SIM_MODE_TOP_ARRAY},
    {"object_error", SIM_MODE_OBJECT_ERROR},
    {"empty_body", SIM_MODE_EMPTY_BODY},
    {"trailing_garbage", SIM_MODE_TRAILING_GARBAGE},
    {"bom", SIM_MODE_BOM},
    {"binary_body", SIM_MODE_BINARY_BODY},
    {"deep_nesting", SIM_MODE_DEEP_NESTING},
    {"text_plain", SIM_MODE_TEXT_PLAIN},
    {"gzip", SIM_MODE_GZIP},
    {"sse", SIM_MODE_SSE},
    {"redirect", SIM_MODE_REDIRECT},
    {"retry_after_years", SIM_MODE_RETRY_AFTER_YEARS},
    {"status_204", SIM_MODE_STATUS_204},
    {"status_304", SIM_MODE_STATUS_304},
    {"interim_only", SIM_MODE_INTERIM_ONLY},
    {"headers_only", SIM_MODE_HEADERS_ONLY},
    {"short_length", SIM_MODE_SHORT_LENGTH},
    {"conflicting_length", SIM_MODE_CONFLICTING_LENGTH},
    {"reset", SIM_MODE_RESET},
    {"huge", SIM_MODE_HUGE},
    {"huge_chunked", SIM_MODE_HUGE_CHUNKED},
    {"drip", SIM_MODE_DRIP},
    {"chunked_forever", SIM_MODE_CHUNKED_FOREVER},
    {"long_header", SIM_MODE_LONG_HEADER},
    {"no_status_line", SIM_MODE_NO_STATUS_LINE},
};

static void behaviour_destroy(sim_behaviour *b)
{
    free(b->retry_after);
    free(b->error_message);
    free(b->content);
    free(b->provider);
    free(b->served_model);
    free(b);
}

void sim_behaviour_release(sim_behaviour *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        behaviour_destroy(b);
}

static sim_behaviour *behaviour_ref(sim_behaviour *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

static sim_behaviour *behaviour_new(void)
{
    sim_behaviour *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->fail_first = -1;
    b->fail_for_ms = -1;
    atomic_init(&b->refs, 1);
    return b;
}

/* A whole number in [lo, hi] from a JSON number; false when it is anything else. */
static bool json_whole(const cJSON *item, double lo, double hi, long *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return false;
    *out = (long)v;
    return true;
}

/* Copy a JSON string field into *dst; false (with err) when it is not a string. */
static bool json_string_field(const cJSON *item, char **dst, char *err, size_t errlen)
{
    if (!cJSON_IsString(item)) {
        snprintf(err, errlen, "\"%s\" must be a string", item->string);
        return false;
    }
    free(*dst);
    *dst = strdup(item->valuestring);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

sim_behaviour *sim_behaviour_parse(const cJSON *obj, bool skip_model, char *err, size_t errlen)
{
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "a behaviour must be a JSON object");
        return NULL;
    }
    sim_behaviour *b = behaviour_new();
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        const char *key = item->string;
        long whole;
        if (skip_model && strcmp(key, "model") == 0) {
            continue;
        } else if (strcmp(key, "latency_ms") == 0) {
            if (!json_whole(item, 0, 86400000.0, &whole))
                goto bad_number;
            b->latency_ms = whole;
        } else if (strcmp(key, "status") == 0) {
            if (!json_whole(item, 100, 599, &whole))
                goto bad_number;
            b->status = (int)whole;
        } else if (strcmp(key, "fail_first") == 0) {
            if (!json_whole(item, 0, 1e15, &whole))
                goto bad_number;
            b->fail_first = whole;
        } else if (strcmp(key, "fail_for_ms") == 0) {
            if (!json_whole(item, 0, 1e15, &whole))
                goto bad_number;
            b->fail_for_ms = whole;
        } else if (strcmp(key, "cost") == 0) {
            if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
                snprintf(err, errlen, "\"cost\" must be a number");
                goto fail;
            }
            b->has_cost = true;
            b->cost = item->valuedouble;
        } else if (strcmp(key, "mode") == 0) {
            size_t i, n = sizeof mode_names / sizeof mode_names[0];
            if (!cJSON_IsString(item)) {
                snprintf(err, errlen, "\"mode\" must be a string");
                goto fail;
            }
            for (i = 0; i < n && strcmp(mode_names[i].name, item->valuestring) != 0; i++)
                ;
            if (i == n) {
                snprintf(err, errlen, "unknown mode \"%.64s\"", item->valuestring);
                goto fail;
            }
            b->mode = mode_names[i].mode;
        } else if (strcmp(key, "retry_after") == 0) {
            /* Accept a number too: Retry-After is seconds either way. */
            if (json_whole(item, 0, 1e9, &whole)) {
                char text[32];
                snprintf(text, sizeof text, "%ld", whole);
                free(b->retry_after);
                if (!(b->retry_after = strdup(text))) {
                    snprintf(err, errlen, "out of memory");
                    goto fail;
                }
            } else if (!json_string_field(item, &b->retry_after, err, errlen)) {
                goto fail;
            }
        } else if (strcmp(key, "error_message") == 0) {
            if (!json_string_field(item, &b->error_message, err, errlen))
                goto fail;
        } else if (strcmp(key, "content") == 0) {
            if (!json_string_field(item, &b->content, err, errlen))
                goto fail;
        } else if (strcmp(key, "provider") == 0) {
            if (!json_string_field(item, &b->provider, err, errlen))
                goto fail;
        } else if (strcmp(key, "served_model") == 0) {
            if (!json_string_field(item, &b->served_model, err, errlen))
                goto fail;
        } else {
            snprintf(err, errlen, "unknown behaviour field \"%.64s\"", key);
            goto fail;
        }
        continue;
    bad_number:
        snprintf(err, errlen, "\"%s\" must be a whole number in range", key);
        goto fail;
    }
    return b;
fail:
    behaviour_destroy(b);
    return NULL;
}

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
        sim_behaviour *b = behaviour_new();
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

void sim_state_record_invalid(void)
{
    int64_t now_s = (int64_t)time(NULL);
    pthread_mutex_lock(&state_lock);
    total_requests++;
    serial_counter++;
    rps_count(now_s, &total_rps_second, &total_rps_count, &total_max_rps);
    pthread_mutex_unlock(&state_lock);
}

void sim_state_record(const char *model, const char *body, size_t body_len, const char *auth,
                      sim_verdict *out)
{
    /* Copies made before taking the lock; NULL on allocation failure just loses the
     * "last" value, never the count. */
    size_t keep = sim_utf8_cut(body, body_len, SIM_LAST_BODY_MAX);
    char *body_copy = malloc(keep + 1);
    if (body_copy) {
        memcpy(body_copy, body, keep);
        body_copy[keep] = '\0';
    }
    char *auth_copy = auth ? strdup(auth) : NULL;
    int64_t now_s = (int64_t)time(NULL);
    uint64_t now_ns = sim_now_ns();

    pthread_mutex_lock(&state_lock);
    total_requests++;
    out->serial = ++serial_counter;
    rps_count(now_s, &total_rps_second, &total_rps_count, &total_max_rps);
    model_entry *m = model_lookup(model, true);
    sim_behaviour *b = m && m->behaviour ? m->behaviour : default_behaviour;
    out->behaviour = behaviour_ref(b);
    out->failing = true;
    if (m) {
        m->requests++;
        rps_count(now_s, &m->rps_second, &m->rps_count, &m->max_rps);
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
        m->fail_count++;
        if (b->fail_first >= 0 && m->fail_count > (uint64_t)b->fail_first)
            out->failing = false;
    }
    pthread_mutex_unlock(&state_lock);

    if (b->fail_for_ms >= 0 && now_ns - b->installed_ns >= (uint64_t)b->fail_for_ms * 1000000ULL)
        out->failing = false;
    free(body_copy);
    free(auth_copy);
}

/* ---------------------------------------------------------------- stats */

char *sim_state_stats_json(void)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *per_model = cJSON_CreateObject();
    bool ok = doc && per_model;

    pthread_mutex_lock(&state_lock);
    ok = ok && cJSON_AddNumberToObject(doc, "total", (double)total_requests);
    ok = ok && cJSON_AddNumberToObject(doc, "max_rps", (double)total_max_rps);
    for (size_t i = 0; ok && i < MODEL_BUCKETS; i++) {
        for (model_entry *m = models[i]; ok && m; m = m->next) {
            if (m->requests == 0)   /* known only through a behaviour: not a model seen */
                continue;
            cJSON *entry = cJSON_AddObjectToObject(per_model, m->name);
            ok = entry && cJSON_AddNumberToObject(entry, "requests", (double)m->requests) &&
                 (m->last_body ? cJSON_AddStringToObject(entry, "last_body", m->last_body)
                               : cJSON_AddNullToObject(entry, "last_body")) &&
                 (m->last_auth ? cJSON_AddStringToObject(entry, "last_auth", m->last_auth)
                               : cJSON_AddNullToObject(entry, "last_auth")) &&
                 cJSON_AddNumberToObject(entry, "max_rps", (double)m->max_rps);
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
