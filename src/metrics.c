/* metrics.c — see metrics.h.  Series are kept in a small map from a label set to a
 * counter; the histogram has fixed buckets, per tier and provider. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

/* Upper bounds in ms; a last implicit +Inf bucket. */
static const long bucket_ms[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
#define NBUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

typedef struct histogram {
    unsigned long long buckets[NBUCKETS + 1];   /* non-cumulative; rendered cumulative */
    unsigned long long count;
    double sum_seconds;
} histogram;

static pthread_mutex_t M_lock = PTHREAD_MUTEX_INITIALIZER;
static hmap *M_counters;      /* "name{labels}" -> unsigned long long * */
static hmap *M_histograms;    /* "{labels}" -> histogram * */

/* Label values may come from config names: escape \ " and newline as the format says. */
static void escape_label(char *out, size_t len, const char *v)
{
    size_t n = 0;
    for (; v && *v && n + 2 < len; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[n++] = '\\';
            out[n++] = *v == '\n' ? 'n' : *v;
        } else {
            out[n++] = *v;
        }
    }
    out[n] = '\0';
}

static void counter_add(const char *series)
{
    if (!M_counters && !(M_counters = hmap_new()))
        return;
    unsigned long long *c = hmap_get(M_counters, series);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c || hmap_put(M_counters, series, c) < 0) {
            free(c);
            return;
        }
    }
    (*c)++;
}

void metrics_attempt(const char *tier, const char *provider, const char *outcome,
                     long latency_ms)
{
    char t[256], p[256], series[700];
    escape_label(t, sizeof t, tier);
    escape_label(p, sizeof p, provider);
    pthread_mutex_lock(&M_lock);
    snprintf(series, sizeof series,
             "routefs_attempts_total{tier=\"%s\",provider=\"%s\",outcome=\"%s\"}", t, p, outcome);
    counter_add(series);
    if (strcmp(outcome, "retry") == 0) {
        snprintf(series, sizeof series, "routefs_retries_total{tier=\"%s\",provider=\"%s\"}", t, p);
        counter_add(series);
    }
    if (latency_ms >= 0 && (M_histograms || (M_histograms = hmap_new()))) {
        snprintf(series, sizeof series, "{tier=\"%s\",provider=\"%s\"", t, p);
        histogram *h = hmap_get(M_histograms, series);
        if (!h) {
            h = calloc(1, sizeof *h);
            if (h && hmap_put(M_histograms, series, h) < 0) {
                free(h);
                h = NULL;
            }
        }
        if (h) {
            size_t b = 0;
            while (b < NBUCKETS && latency_ms > bucket_ms[b])
                b++;
            h->buckets[b]++;
            h->count++;
            h->sum_seconds += (double)latency_ms / 1000.0;
        }
    }
    pthread_mutex_unlock(&M_lock);
}

void metrics_job(const char *tier, const char *outcome)
{
    char t[256], series[400];
    escape_label(t, sizeof t, tier);
    pthread_mutex_lock(&M_lock);
    snprintf(series, sizeof series, "routefs_jobs_total{tier=\"%s\",outcome=\"%s\"}", t, outcome);
    counter_add(series);
    pthread_mutex_unlock(&M_lock);
}

void metrics_fallback(const char *tier, const char *provider)
{
    char t[256], p[256], series[600];
    escape_label(t, sizeof t, tier);
    escape_label(p, sizeof p, provider);
    pthread_mutex_lock(&M_lock);
    snprintf(series, sizeof series, "routefs_fallbacks_total{tier=\"%s\",from=\"%s\"}", t, p);
    counter_add(series);
    pthread_mutex_unlock(&M_lock);
}

/* A growing string; on allocation failure the rendering is cut short, never wrong. */
typedef struct out_buf {
    char *data;
    size_t len, cap;
} out_buf;

static void put(out_buf *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap + n + 1) * 2;
        char *d = realloc(o->data, cap);
        if (!d)
            return;
        o->data = d;
        o->cap = cap;
    }
    memcpy(o->data + o->len, s, n + 1);
    o->len += n;
}

/* Every counter whose series starts with name{, under one HELP/TYPE header. */
static void render_family(out_buf *o, const char *name, const char *help)
{
    char line[900];
    size_t nlen = strlen(name);
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    put(o, line);
    for (hmap_iter it = {0}; M_counters && hmap_next(M_counters, &it);) {
        if (strncmp(it.key, name, nlen) || it.key[nlen] != '{')
            continue;
        snprintf(line, sizeof line, "%s %llu\n", it.key, *(unsigned long long *)it.value);
        put(o, line);
    }
}

char *metrics_render(void)
{
    out_buf o = {0};
    put(&o, "");
    pthread_mutex_lock(&M_lock);
    render_family(&o, "routefs_jobs_total", "Jobs ended, by tier and outcome (done, failed).");
    render_family(&o, "routefs_attempts_total",
                  "Attempts sent, by tier, provider and outcome (success, retry, next-hop, "
                  "next-hop-down, fail-job).");
    render_family(&o, "routefs_retries_total", "Attempts that led to a retry of the same hop.");
    render_family(&o, "routefs_fallbacks_total", "Jobs that fell back from a provider to a later hop.");
    put(&o, "# HELP routefs_attempt_duration_seconds Latency of attempts.\n"
            "# TYPE routefs_attempt_duration_seconds histogram\n");
    char line[900];
    for (hmap_iter it = {0}; M_histograms && hmap_next(M_histograms, &it);) {
        const histogram *h = it.value;
        unsigned long long cumulative = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cumulative += h->buckets[b];
            char le[32];
            if (b < NBUCKETS)
                snprintf(le, sizeof le, "%g", (double)bucket_ms[b] / 1000.0);
            else
                snprintf(le, sizeof le, "+Inf");
            snprintf(line, sizeof line, "routefs_attempt_duration_seconds_bucket%s,le=\"%s\"} %llu\n",
                     it.key, le, cumulative);
            put(&o, line);
        }
        snprintf(line, sizeof line, "routefs_attempt_duration_seconds_sum%s} %.3f\n"
                                    "routefs_attempt_duration_seconds_count%s} %llu\n",
                 it.key, h->sum_seconds, it.key, h->count);
        put(&o, line);
    }
    pthread_mutex_unlock(&M_lock);
    return o.data;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&M_lock);
    for (hmap_iter it = {0}; M_counters && hmap_next(M_counters, &it);)
        free(it.value);
    for (hmap_iter it = {0}; M_histograms && hmap_next(M_histograms, &it);)
        free(it.value);
    hmap_free(M_counters);
    hmap_free(M_histograms);
    M_counters = M_histograms = NULL;
    pthread_mutex_unlock(&M_lock);
}
