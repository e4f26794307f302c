/* router.c — routing policy: what an attempt's outcome means, how long to wait before
 * retrying, which providers/models are healthy enough to try, and which hop goes next.
 *
 * No I/O here.  The runner reports attempts and asks for decisions; everything that
 * decides "retry, fall back or fail" lives in router_classify's rule table, and
 * everything that decides "which hop" lives in router_next_hop.
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
#include "jsonfmt.h"
#include "router.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------- */
/* Outcomes                                                                            */
/* ---------------------------------------------------------------------------------- */

const char *router_outcome_name(rf_outcome o)
{
    switch (o) {
    case RF_OUT_SUCCESS:       return "success";
    case RF_OUT_RETRY:         return "retry";
    case RF_OUT_NEXT_HOP:      return "next-hop";
    case RF_OUT_NEXT_HOP_DOWN: return "next-hop-down";
    case RF_OUT_FAIL_JOB:      return "fail-job";
    }
    return "unknown";
}

/* Modifiers on a status rule. */
enum {
    RULE_PLAIN = 0,
    RULE_CHECK_BODY,        /* 2xx: a body that did not parse is the provider's failure */
    RULE_RETRY_AFTER,       /* 429/503: a Retry-After over the tier's cap means go elsewhere */
    RULE_REQUEST_ERROR      /* 400/413/422: context-length and unsupported-parameter errors
                               are about this hop, not the request, so fall back */
};

/* The status table: the first rule whose range holds the status wins. */
static const struct status_rule {
    long lo, hi;
    rf_outcome outcome;
    int modifier;
} status_rules[] = {
    { 200, 299, RF_OUT_SUCCESS,       RULE_CHECK_BODY    },
    { 400, 400, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 401, 404, RF_OUT_NEXT_HOP_DOWN, RULE_PLAIN         }, /* auth, billing, forbidden, not found */
    { 408, 408, RF_OUT_RETRY,         RULE_PLAIN         }, /* request timeout: transient */
    { 413, 413, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 422, 422, RF_OUT_FAIL_JOB,      RULE_REQUEST_ERROR },
    { 429, 429, RF_OUT_RETRY,         RULE_RETRY_AFTER   },
    { 400, 499, RF_OUT_FAIL_JOB,      RULE_PLAIN         }, /* any other request error */
    { 503, 503, RF_OUT_RETRY,         RULE_RETRY_AFTER   },
    { 500, 599, RF_OUT_RETRY,         RULE_PLAIN         }, /* 500, 502, 504, ... */
    { LONG_MIN, LONG_MAX, RF_OUT_NEXT_HOP, RULE_PLAIN    }, /* 1xx, 3xx, nonsense */
};

/* Transport failures, indexed by rf_transport_error. */
static const rf_outcome transport_rules[] = {
    [RF_TE_NONE]        = RF_OUT_SUCCESS,  /* unused: NONE goes to the status table */
    [RF_TE_CONNECT]     = RF_OUT_RETRY,
    [RF_TE_TIMEOUT]     = RF_OUT_RETRY,
    [RF_TE_TRUNCATED]   = RF_OUT_RETRY,
    [RF_TE_TOO_LARGE]   = RF_OUT_NEXT_HOP, /* the same hop would send the same huge body */
    [RF_TE_OTHER]       = RF_OUT_RETRY,
    [RF_TE_FIRST_TOKEN] = RF_OUT_RETRY,    /* the three timeouts alike */
    [RF_TE_STALL]       = RF_OUT_RETRY,
    [RF_TE_RESET]       = RF_OUT_RETRY,    /* like a refused connection */
    [RF_TE_TLS]         = RF_OUT_RETRY,
    [RF_TE_ABORTED]     = RF_OUT_NEXT_HOP, /* the caller refused the stream, like a
                                              2xx body that does not parse */
};

rf_outcome router_classify(const rf_attempt *a, long retry_after_max_ms)
{
    if (a->transport != RF_TE_NONE) {
        if ((size_t)a->transport < sizeof transport_rules / sizeof transport_rules[0])
            return transport_rules[a->transport];
        return RF_OUT_RETRY;
    }

    const struct status_rule *r = status_rules;
    while (a->http_status < r->lo || a->http_status > r->hi)
        r++;  /* the last rule matches everything */

    switch (r->modifier) {
    case RULE_CHECK_BODY:
        /* Malformed, error object, no choices, empty: the provider failed.  Retrying the
         * same hop would likely fail again and may be billed again. */
        return a->parse_status != 0 ? RF_OUT_NEXT_HOP : r->outcome;
    case RULE_RETRY_AFTER:
        return a->retry_after_ms > retry_after_max_ms ? RF_OUT_NEXT_HOP : r->outcome;
    case RULE_REQUEST_ERROR:
        return a->context_length || a->unsupported_param ? RF_OUT_NEXT_HOP : r->outcome;
    default:
        return r->outcome;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Backoff and Retry-After                                                             */
/* ---------------------------------------------------------------------------------- */

long router_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms,
                       unsigned *seed)
{
    if (retry_after_ms >= 0)
        return retry_after_ms;
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;

    /* ceiling = min(cap, base * 2^attempt), doubling step by step so it cannot overflow */
    long ceiling = base_ms < cap_ms ? base_ms : cap_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;

    unsigned local_seed = (unsigned)time(NULL);
    if (!seed)
        seed = &local_seed;
    /* rand_r yields 31 bits; two draws make the modulo bias negligible for any ceiling */
    uint64_t r = ((uint64_t)(unsigned)rand_r(seed) << 31) ^ (uint64_t)(unsigned)rand_r(seed);
    return (long)(r % ((uint64_t)ceiling + 1));
}

/* Retry-After values are clamped to this (~68 years) so callers can add them to a
 * timestamp without overflow. */
#define RETRY_AFTER_MAX_SECONDS ((int64_t)INT32_MAX)

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return s;
}

static long seconds_to_ms(int64_t seconds)
{
    if (seconds < 0)
        return 0;
    if (seconds > RETRY_AFTER_MAX_SECONDS)
        seconds = RETRY_AFTER_MAX_SECONDS;
    return (long)(seconds * 1000);
}

long router_parse_retry_after(const char *value, int64_t now_unix)
{
    if (!value)
        return -1;
    const char *s = skip_space(value);
    if (!*s)
        return -1;

    if (*s >= '0' && *s <= '9') {  /* delta-seconds */
        int64_t seconds = 0;
        for (; *s >= '0' && *s <= '9'; s++)
            if (seconds <= RETRY_AFTER_MAX_SECONDS)
                seconds = seconds * 10 + (*s - '0');
        return *skip_space(s) ? -1 : seconds_to_ms(seconds);
    }

    /* HTTP-date: the IMF-fixdate every server sends, and the two obsolete forms RFC 9110
     * still asks recipients to accept. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",   /* Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT",   /* Sunday, 06-Nov-94 08:49:37 GMT */
        "%a %b %d %H:%M:%S %Y",        /* Sun Nov  6 08:49:37 1994 */
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(s, formats[i], &tm);
        if (!end || *skip_space(end))
            continue;
        time_t when = timegm(&tm);
        if (when == (time_t)-1)
            continue;
        int64_t delta = (int64_t)when - now_unix;
        return seconds_to_ms(delta);  /* past dates: 0, retry now */
    }
    return -1;
}

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
static const rf_provider *find_provider(const rf_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->providers_len; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

/* Parameters every chat-completions endpoint takes, listed or not. */
static int implicit_param(const char *name)
{
    return strcmp(name, "model") == 0 || strcmp(name, "messages") == 0 ||
           strcmp(name, "stream") == 0;
}

int router_hop_supports(const rf_config *cfg, const rf_hop *hop,
                        char *const *params, size_t nparams)
{
    const rf_provider *p = find_provider(cfg, hop->provider);
    if (!p)
        return 0;
    if (!p->supported_params)
        return 1;  /* unknown list: assume everything */
    for (size_t i = 0; i < nparams; i++) {
        if (implicit_param(params[i]))
            continue;
        size_t j = 0;
        while (j < p->supported_params_len && strcmp(p->supported_params[j], params[i]) != 0)
            j++;
        if (j == p->supported_params_len)
            return 0;
    }
    return 1;
}

int router_next_hop(rf_breakers *b, const rf_config *cfg, const rf_tier *tier, size_t start,
                    char *const *params, size_t nparams, int64_t now_ms, long *wait_ms)
{
    if (wait_ms)
        *wait_ms = 0;
    size_t end = tier->allow_fallbacks ? tier->route_len : (tier->route_len > 0 ? 1 : 0);
    int best = -1;
    int64_t best_at = 0;
    for (size_t i = start; i < end; i++) {
        const rf_hop *hop = &tier->route[i];
        if (tier->require_parameters && !router_hop_supports(cfg, hop, params, nparams))
            continue;
        /* ready_at only looks: the half-open probe slot is taken by breakers_allow */
        int64_t at = breakers_ready_at(b, hop->provider, hop->model, now_ms);
        if (at <= now_ms)
            return (int)i;
        if (best < 0 || at < best_at) {
            best = (int)i;
            best_at = at;
        }
    }
    if (best >= 0 && wait_ms) {
        int64_t wait = best_at - now_ms;
        *wait_ms = wait > LONG_MAX ? LONG_MAX : (long)wait;
    }
    return best;
}
