/* metrics.c — see metrics.h.  Series are kept in a small map from "name{labels}" to a
 * 64-bit counter (a count, or nano-USD for spend); the histogram has fixed buckets, per
 * tier and provider.  Rendering sorts the series so that the text is stable. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "strbuf.h"

/* Upper bounds in ms; a last implicit +Inf bucket. */
static const long bucket_ms[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
#define NBUCKETS (sizeof bucket_ms / sizeof bucket_ms[0])

typedef struct histogram {
    unsigned long long buckets[NBUCKETS + 1];   /* non-cumulative; rendered cumulative */
    unsigned long long count;
    double sum_seconds;
} histogram;

/* The counter families, in rendering order.  nano: the value is nano-units (USD). */
static const struct family {
    const char *name, *help;
    int nano;
    int unlabelled;   /* one series without labels, rendered as 0 before its first sample */
} families[] = {
    {"routefs_jobs_total", "Jobs ended, by tier and outcome (done, failed).", 0, 0},
    {"routefs_attempts_total",
     "Attempts sent, by tier, provider and outcome (success, retry, next-hop, "
     "next-hop-down, fail-job).", 0, 0},
    {"routefs_retries_total", "Attempts that led to a retry of the same hop.", 0, 0},
    {"routefs_fallbacks_total", "Jobs that fell back from a provider to a later hop.", 0, 0},
    {"routefs_spend_usd_total",
     "Settled spend in USD, by tier, serving provider and model (monotonic).", 1, 0},
    {"routefs_breaker_transitions_total",
     "Circuit breaker state changes, by provider, model (empty: provider-wide) and new "
     "state (open, half_open, closed).", 0, 0},
    {"routefs_store_failures_total", "State-store operations that failed.", 0, 1},
};
#define NFAMILIES (sizeof families / sizeof families[0])

static pthread_mutex_t M_lock = PTHREAD_MUTEX_INITIALIZER;
static hmap *M_counters;      /* "name{labels}" -> uint64_t * (owned) */
static hmap *M_histograms;    /* "{labels" (unterminated) -> histogram * (owned) */

/* `name="value"` with the value escaped as the exposition format says: backslash,
 * double quote and line feed become \\, \" and \n.  Label values come from config names,
 * model names and provider responses, so anything may be in them. */
static void sb_label(strbuf *b, const char *name, const char *value)
{
    if (b->len && b->data[b->len - 1] != '{')
        sb_put(b, ",");
    sb_put(b, name);
    sb_put(b, "=\"");
    const char *v = value ? value : "";
    const char *run = v;
    for (; *v; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (!esc)
            continue;
        sb_putn(b, run, (size_t)(v - run));
        sb_put(b, esc);
        run = v + 1;
    }
    sb_putn(b, run, (size_t)(v - run));
    sb_put(b, "\"");
}

char *metrics_label_value(const char *value)
{
    strbuf b = {0};
    sb_put(&b, "{");   /* sb_label's "first label" marker, dropped below */
    sb_label(&b, "v", value);
    char *s = sb_take(&b, NULL);
    if (!s)
        return NULL;
    size_t n = strlen(s);   /* {v="..." -> ... */
    memmove(s, s + 4, n - 5);
    s[n - 5] = '\0';
    return s;
}

/* ---- counting (M_lock held) ---- */

static void counter_add(const char *series, uint64_t amount)
{
    if (!series || (!M_counters && !(M_counters = hmap_new())))
        return;
    uint64_t *c = hmap_get(M_counters, series);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c || hmap_put(M_counters, series, c) < 0) {
            free(c);
            return;
        }
    }
    *c = *c > UINT64_MAX - amount ? UINT64_MAX : *c + amount;   /* never wraps backwards */
}

/* "name{l1="v1",l2="v2",...}" from NULL-terminated name/value pairs; owned or NULL. */
static char *series_key(const char *name, const char *const *labels)
{
    strbuf b = {0};
    sb_put(&b, name);
    sb_put(&b, "{");
    for (size_t i = 0; labels[i]; i += 2)
        sb_label(&b, labels[i], labels[i + 1]);
    sb_put(&b, "}");
    return sb_take(&b, NULL);
}

static void count(const char *name, const char *const *labels, uint64_t amount)
{
    char *key = series_key(name, labels);
    pthread_mutex_lock(&M_lock);
    counter_add(key, amount);
    pthread_mutex_unlock(&M_lock);
    free(key);
}

void metrics_attempt(const char *tier, const char *provider, const char *outcome,
                     long latency_ms)
{
    const char *labels[] = {"tier", tier, "provider", provider, "outcome", outcome, NULL};
    count("routefs_attempts_total", labels, 1);
    if (outcome && strcmp(outcome, "retry") == 0) {
        const char *rl[] = {"tier", tier, "provider", provider, NULL};
        count("routefs_retries_total", rl, 1);
    }
    if (latency_ms < 0)
        return;
    strbuf b = {0};
    sb_put(&b, "{");
    sb_label(&b, "tier", tier);
    sb_label(&b, "provider", provider);
    char *key = sb_take(&b, NULL);
    if (!key)
        return;
    pthread_mutex_lock(&M_lock);
    if (M_histograms || (M_histograms = hmap_new())) {
        histogram *h = hmap_get(M_histograms, key);
        if (!h) {
            h = calloc(1, sizeof *h);
            if (h && hmap_put(M_histograms, key, h) < 0) {
                free(h);
                h = NULL;
            }
        }
        if (h) {
            size_t i = 0;
            while (i < NBUCKETS && latency_ms > bucket_ms[i])
                i++;
            h->buckets[i]++;
            h->count++;
            h->sum_seconds += (double)latency_ms / 1000.0;
        }
    }
    pthread_mutex_unlock(&M_lock);
    free(key);
}

void metrics_job(const char *tier, const char *outcome)
{
    const char *labels[] = {"tier", tier, "outcome", outcome, NULL};
    count("routefs_jobs_total", labels, 1);
}

void metrics_fallback(const char *tier, const char *provider)
{
    const char *labels[] = {"tier", tier, "from", provider, NULL};
    count("routefs_fallbacks_total", labels, 1);
}

void metrics_spend(const char *tier, const char *provider, const char *model, double usd)
{
    /* !(usd >= 0) also catches NaN; more than a billion dollars is nonsense, and would
     * overflow the conversion. */
    if (!(usd >= 0) || usd > 1e9)
        return;
    const char *labels[] = {"tier", tier, "provider", provider, "model", model, NULL};
    count("routefs_spend_usd_total", labels, (uint64_t)llround(usd * 1e9));
}

void metrics_breaker(const char *provider, const char *model, const char *to)
{
    const char *labels[] = {"provider", provider, "model", model ? model : "", "to", to, NULL};
    count("routefs_breaker_transitions_total", labels, 1);
}

void metrics_store_failure(void)
{
    pthread_mutex_lock(&M_lock);
    counter_add("routefs_store_failures_total", 1);
    pthread_mutex_unlock(&M_lock);
}

/* ---- rendering (M_lock held) ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of m that start with prefix (borrowed from the map), sorted; *n of them.
 * NULL with *n = 0 when there are none; *failed = 1 when out of memory. */
static const char **sorted_keys(const hmap *m, const char *prefix, size_t *n, int *failed)
{
    *n = 0;
    if (!m || !hmap_len(m))
        return NULL;
    const char **keys = malloc(hmap_len(m) * sizeof *keys);
    if (!keys) {
        *failed = 1;
        return NULL;
    }
    size_t plen = strlen(prefix);
    for (hmap_iter it = {0}; hmap_next(m, &it);)
        if (strncmp(it.key, prefix, plen) == 0)
            keys[(*n)++] = it.key;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

static void put_value(strbuf *o, uint64_t v, int nano)
{
    char num[64];
    if (!nano) {
        snprintf(num, sizeof num, "%" PRIu64, v);
    } else {
        /* exact decimal of v / 1e9, trailing zeros dropped: 1.5, 0.000123, 2 */
        int n = snprintf(num, sizeof num, "%" PRIu64 ".%09" PRIu64, v / 1000000000u,
                         v % 1000000000u);
        while (n > 0 && num[n - 1] == '0')
            num[--n] = '\0';
        if (n > 0 && num[n - 1] == '.')
            num[--n] = '\0';
    }
    sb_put(o, num);
}

static void render_family(strbuf *o, const struct family *f, int *failed)
{
    sb_put(o, "# HELP ");
    sb_put(o, f->name);
    sb_put(o, " ");
    sb_put(o, f->help);
    sb_put(o, "\n# TYPE ");
    sb_put(o, f->name);
    sb_put(o, " counter\n");
    if (f->unlabelled) {
        uint64_t *c = M_counters ? hmap_get(M_counters, f->name) : NULL;
        sb_put(o, f->name);
        sb_put(o, " ");
        put_value(o, c ? *c : 0, f->nano);
        sb_put(o, "\n");
        return;
    }
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s{", f->name);
    size_t n;
    const char **keys = sorted_keys(M_counters, prefix, &n, failed);
    for (size_t i = 0; i < n; i++) {
        sb_put(o, keys[i]);
        sb_put(o, " ");
        put_value(o, *(uint64_t *)hmap_get(M_counters, keys[i]), f->nano);
        sb_put(o, "\n");
    }
    free(keys);
}

static void render_histograms(strbuf *o, int *failed)
{
    sb_put(o, "# HELP routefs_attempt_duration_seconds Latency of attempts.\n"
              "# TYPE routefs_attempt_duration_seconds histogram\n");
    size_t n;
    const char **keys = sorted_keys(M_histograms, "", &n, failed);
    char line[128];
    for (size_t k = 0; k < n; k++) {
        const histogram *h = hmap_get(M_histograms, keys[k]);
        unsigned long long cumulative = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cumulative += h->buckets[b];
            sb_put(o, "routefs_attempt_duration_seconds_bucket");
            sb_put(o, keys[k]);
            if (b < NBUCKETS)
                snprintf(line, sizeof line, ",le=\"%g\"} %llu\n",
                         (double)bucket_ms[b] / 1000.0, cumulative);
            else
                snprintf(line, sizeof line, ",le=\"+Inf\"} %llu\n", cumulative);
            sb_put(o, line);
        }
        sb_put(o, "routefs_attempt_duration_seconds_sum");
        sb_put(o, keys[k]);
        snprintf(line, sizeof line, "} %.3f\n", h->sum_seconds);
        sb_put(o, line);
        sb_put(o, "routefs_attempt_duration_seconds_count");
        sb_put(o, keys[k]);
        snprintf(line, sizeof line, "} %llu\n", h->count);
        sb_put(o, line);
    }
    free(keys);
}

char *metrics_render(void)
{
    strbuf o = {0};
    int failed = 0;
    sb_put(&o, "");
    pthread_mutex_lock(&M_lock);
    for (size_t i = 0; i < NFAMILIES; i++)
        render_family(&o, &families[i], &failed);
    render_histograms(&o, &failed);
    pthread_mutex_unlock(&M_lock);
    if (failed)
        o.failed = 1;
    return sb_take(&o, NULL);
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
