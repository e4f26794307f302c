/* breakers.c — the circuit breakers' state machine (see breakers.h); providers.json and
 * health are in breakers_json.c.
 *
 * One breaker per provider (provider-wide) and one per provider+model, created on their
 * first recorded attempt.  An attempt needs both to admit it.  A breaker:
 *   CLOSED     counts consecutive failures; at the provider's failure_threshold it opens,
 *              or at once on a 401-404 ("down").
 *   OPEN       refuses everything until open_until (now + cooldown).
 *   HALF_OPEN  (an OPEN breaker whose cooldown has passed) admits one probe at a time;
 *              the probe's success closes it, its failure opens it again.
 * Cooldowns: the provider's cooldown_ms; a 429/503 with a Retry-After opens for that long
 * instead (at most RETRY_AFTER_CAP x cooldown_ms: a server asking for a day does not get
 * it).  The n-th consecutive failed probe re-opens for cooldown_ms x 1, 1.5, 2, 2, ... so a
 * primary that flaps is probed about once per cooldown and is back within about one
 * cooldown of recovering, never more than two.
 *
 * The settings come with each record (the config in force then), so a live config edit
 * applies from the next failure on.  The API carries no per-attempt token, so a result is
 * taken to be the probe's when the breaker is half-open with its probe out.  A result that
 * arrives while a breaker is open (an attempt admitted before it opened) is counted in the
 * statistics but does not move the breaker.  A probe whose result is never recorded would
 * keep the breaker half-open for ever, so a probe slot is a lease: after PROBE_LEASE_MS
 * another probe is let through.
 *
 * Transitions are collected under the lock and logged and passed to the listener after it
 * is released (events_flush), so the listener may call back in.  breakers_ready_at and the
 * views only look (breaker_state_at), so routing decisions made under the jobs lock never
 * run the listener.  The remote view is asked without the lock too. */
#include "breakers.h"
#include "breakers_int.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "router.h"   /* rf_transport_error */

#define DEFAULT_THRESHOLD    5
#define DEFAULT_COOLDOWN_MS  30000L
#define RETRY_AFTER_CAP      10     /* a Retry-After opens a breaker for at most 10 x cooldown */
#define PROBE_RECHECK_MS     1000   /* while a probe is out, "ready" is re-asked this often */
#define PROBE_LEASE_MS       300000 /* a probe not heard of for this long is presumed lost */
#define EVENTS_MAX           6      /* transitions one call can make: 4 (two breakers, each
                                       open -> half-open -> closed/open) */

/* ---------------------------------------------------------------------------------- */
/* Scope                                                                               */
/* ---------------------------------------------------------------------------------- */

breaker_scope breakers_scope_of(int transport, long http_status, int parse_failed)
{
    switch (transport) {
    case RF_TE_NONE:
        break;
    case RF_TE_CONNECT:   /* refused, unreachable, DNS */
    case RF_TE_RESET:     /* closed before any response byte */
    case RF_TE_TLS:
        return BREAKER_SCOPE_PROVIDER;
    default:              /* timeouts of every kind, cut or oversized answers, a stream the
                             parser refused: the model may be the one at fault */
        return BREAKER_SCOPE_MODEL;
    }
    if (http_status >= 200 && http_status <= 299)
        return parse_failed ? BREAKER_SCOPE_MODEL : BREAKER_SCOPE_NONE;
    if (http_status >= 401 && http_status <= 403)   /* key, credit, access: every model */
        return BREAKER_SCOPE_PROVIDER;
    if (http_status == 404 || http_status == 408 || http_status == 429)
        return BREAKER_SCOPE_MODEL;
    if (http_status >= 400 && http_status <= 499)   /* the request's own fault */
        return BREAKER_SCOPE_NONE;
    return BREAKER_SCOPE_MODEL;                      /* 5xx, and 1xx/3xx nonsense */
}

/* ---------------------------------------------------------------------------------- */
/* Transition events                                                                   */
/* ---------------------------------------------------------------------------------- */

typedef struct evbatch {
    breaker_listener_fn fn;      /* copied under the lock */
    void *ud;
    size_t n;
    breaker_event ev[EVENTS_MAX];
    char reason[EVENTS_MAX][BREAKER_REASON_MAX];
} evbatch;

static const char *state_name(rf_breaker_state s)
{
    switch (s) {
    case RF_BREAKER_CLOSED:    return "closed";
    case RF_BREAKER_OPEN:      return "open";
    case RF_BREAKER_HALF_OPEN: return "half-open";
    }
    return "?";
}

/* Lock held. */
static void event_add(evbatch *ev, const breaker *br, rf_breaker_state from, int64_t at_ms,
                      const char *reason)
{
    if (ev->n == EVENTS_MAX)
        return;  /* cannot happen: EVENTS_MAX covers the most one call makes */
    size_t i = ev->n++;
    snprintf(ev->reason[i], sizeof ev->reason[i], "%s", reason);
    int opened = br->state == RF_BREAKER_OPEN;
    ev->ev[i] = (breaker_event){
        .provider = br->provider, .model = br->model, .from = from, .to = br->state,
        .reason = ev->reason[i], .down = opened && br->down,
        .cooldown_ms = opened ? br->cooldown_ms : 0,
        .until_ms = opened ? br->open_until_ms : 0, .at_ms = at_ms,
    };
}

/* Without the lock: log each transition, then tell the listener. */
static void events_flush(const evbatch *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        const breaker_event *e = &ev->ev[i];
        char who[300];
        if (e->model)
            snprintf(who, sizeof who, "breaker of %.120s on %.120s", e->model, e->provider);
        else
            snprintf(who, sizeof who, "provider-wide breaker of %.120s", e->provider);
        if (e->to == RF_BREAKER_OPEN)
            LOG_WARN("%s: %s -> open%s: %s; cooldown %ld ms", who, state_name(e->from),
                     e->down ? " (down)" : "", e->reason, e->cooldown_ms);
        else
            LOG_INFO("%s: %s -> %s: %s", who, state_name(e->from), state_name(e->to),
                     e->reason);
        if (ev->fn)
            ev->fn(e, ev->ud);
    }
}

/* What an attempt's failure was, briefly, for reasons ("HTTP 503", "TLS failure").
 * Built from the facts, never from provider text, so it is safe to log. */
static void describe_result(const breaker_result *r, char *buf, size_t len)
{
    static const char *const transport_names[] = {
        [RF_TE_CONNECT] = "connection failed", [RF_TE_TIMEOUT] = "timeout",
        [RF_TE_TRUNCATED] = "answer cut off", [RF_TE_TOO_LARGE] = "answer too large",
        [RF_TE_OTHER] = "transport error", [RF_TE_FIRST_TOKEN] = "first-token timeout",
        [RF_TE_STALL] = "stream stalled", [RF_TE_RESET] = "connection reset",
        [RF_TE_TLS] = "TLS failure", [RF_TE_ABORTED] = "unusable stream",
    };
    size_t n = sizeof transport_names / sizeof transport_names[0];
    if (r->transport > 0 && (size_t)r->transport < n && transport_names[r->transport])
        snprintf(buf, len, "%s", transport_names[r->transport]);
    else if (r->transport != 0)
        snprintf(buf, len, "transport error");
    else if (r->http_status >= 200 && r->http_status <= 299)
        snprintf(buf, len, "HTTP %ld with an unusable answer", r->http_status);
    else
        snprintf(buf, len, "HTTP %ld", r->http_status);
}

/* ---------------------------------------------------------------------------------- */
/* Records                                                                             */
/* ---------------------------------------------------------------------------------- */

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

/* Find or create; NULL only when out of memory.  Records never move once made. */
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

/* ---------------------------------------------------------------------------------- */
/* One breaker                                                                         */
/* ---------------------------------------------------------------------------------- */

rf_breaker_state breaker_state_at(const breaker *br, int64_t now_ms)
{
    if (br->state == RF_BREAKER_OPEN && now_ms >= br->open_until_ms)
        return RF_BREAKER_HALF_OPEN;
    return br->state;
}

static long base_cooldown(const rf_breakers *b, const breaker *br)
{
    return br->base_cooldown_ms > 0 ? br->base_cooldown_ms : b->cooldown_ms;
}

/* The cooldown after the n-th consecutive failed probe (0: opening from closed). */
static long grown_cooldown(long base, int failed_probes)
{
    if (failed_probes <= 1)
        return base;
    if (base > LONG_MAX / 2)
        return LONG_MAX;
    return failed_probes == 2 ? base + base / 2 : base * 2;
}

long breaker_cooldown_now(const rf_breakers *b, const breaker *br, int64_t now_ms)
{
    switch (breaker_state_at(br, now_ms)) {
    case RF_BREAKER_OPEN:      return br->cooldown_ms;
    case RF_BREAKER_HALF_OPEN: return grown_cooldown(base_cooldown(b, br), br->failed_probes + 1);
    default:                   return base_cooldown(b, br);
    }
}

/* Store what breaker_state_at says: an OPEN breaker whose cooldown is over becomes
 * HALF_OPEN with no probe out.  Returns the state. */
static rf_breaker_state breaker_refresh(breaker *br, int64_t now_ms, evbatch *ev)
{
    if (breaker_state_at(br, now_ms) == RF_BREAKER_HALF_OPEN && br->state == RF_BREAKER_OPEN) {
        br->state = RF_BREAKER_HALF_OPEN;
        br->probe_out = 0;
        char why[64];
        snprintf(why, sizeof why, "cooldown of %ld ms over", br->cooldown_ms);
        event_add(ev, br, RF_BREAKER_OPEN, br->open_until_ms, why);
    }
    return br->state;
}

static int probe_lost(const breaker *br, int64_t now_ms)
{
    return now_ms - br->probe_since_ms >= PROBE_LEASE_MS;
}

static int breaker_admits(breaker *br, int64_t now_ms, evbatch *ev)
{
    if (!br)
        return 1;
    switch (breaker_refresh(br, now_ms, ev)) {
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

static void breaker_open(breaker *br, long cooldown, int down, const char *reason,
                         int64_t now_ms, evbatch *ev)
{
    rf_breaker_state from = br->state;
    br->state = RF_BREAKER_OPEN;
    br->down = down;
    br->probe_out = 0;
    br->cooldown_ms = cooldown;
    br->open_until_ms = now_ms > INT64_MAX - cooldown ? INT64_MAX : now_ms + cooldown;
    br->opened++;
    event_add(ev, br, from, now_ms, reason);
}

/* How long a failure opens the breaker for: a 429/503's Retry-After, else the (grown)
 * cooldown.  reason gets ", Retry-After N ms" appended when that decided. */
static long opening_cooldown(const rf_breakers *b, const breaker *br, const breaker_result *r,
                             char *reason, size_t len)
{
    long base = base_cooldown(b, br);
    long cooldown = grown_cooldown(base, br->failed_probes);
    if ((r->http_status == 429 || r->http_status == 503) && r->retry_after_ms >= 0) {
        long cap = base > LONG_MAX / RETRY_AFTER_CAP ? LONG_MAX : base * RETRY_AFTER_CAP;
        cooldown = r->retry_after_ms < cap ? r->retry_after_ms : cap;
        size_t used = strlen(reason);
        snprintf(reason + used, len - used, ", Retry-After %ld ms", r->retry_after_ms);
    }
    return cooldown;
}

static void breaker_success(breaker *br, const char *how, int64_t now_ms, evbatch *ev)
{
    rf_breaker_state s = breaker_refresh(br, now_ms, ev);
    if (s == RF_BREAKER_CLOSED) {
        br->consecutive_failures = 0;
    } else if (s == RF_BREAKER_HALF_OPEN && br->probe_out) {
        br->state = RF_BREAKER_CLOSED;   /* the probe got through: healthy again */
        br->down = 0;
        br->probe_out = 0;
        br->consecutive_failures = 0;
        br->failed_probes = 0;
        event_add(ev, br, RF_BREAKER_HALF_OPEN, now_ms, how);
    }
    /* else: a late success from before the breaker opened; stale, ignore */
}

static void breaker_failure(rf_breakers *b, breaker *br, const breaker_result *r, int threshold,
                            int64_t now_ms, evbatch *ev)
{
    rf_breaker_state s = breaker_refresh(br, now_ms, ev);
    br->consecutive_failures++;
    int at_once = r->http_status >= 401 && r->http_status <= 404;
    char what[64], reason[BREAKER_REASON_MAX];
    describe_result(r, what, sizeof what);
    if (s == RF_BREAKER_HALF_OPEN && br->probe_out) {
        br->failed_probes++;
        snprintf(reason, sizeof reason, "probe %d failed: %s", br->failed_probes, what);
        long cooldown = opening_cooldown(b, br, r, reason, sizeof reason);
        breaker_open(br, cooldown, at_once, reason, now_ms, ev);
    } else if (s == RF_BREAKER_CLOSED && (at_once || br->consecutive_failures >= threshold)) {
        if (at_once)
            snprintf(reason, sizeof reason, "%s", what);
        else
            snprintf(reason, sizeof reason, "%d consecutive failures, last %s",
                     br->consecutive_failures, what);
        long cooldown = opening_cooldown(b, br, r, reason, sizeof reason);
        breaker_open(br, cooldown, at_once, reason, now_ms, ev);
    }
    /* else: a late failure while open, or a stale one while half-open with no probe out */
}

/* The attempt told us nothing about this breaker: give its probe slot back. */
static void breaker_release_probe(breaker *br, int64_t now_ms, evbatch *ev)
{
    if (br && breaker_refresh(br, now_ms, ev) == RF_BREAKER_HALF_OPEN)
        br->probe_out = 0;
}

static void breaker_stats(breaker *br, int success, long latency_ms, const char *error_text)
{
    br->requests++;
    if (success) {
        if (latency_ms >= 0) {
            br->latency[br->latency_next] = latency_ms;
            br->latency_next = (br->latency_next + 1) % BREAKER_LATENCY_SAMPLES;
            if (br->latency_len < BREAKER_LATENCY_SAMPLES)
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

/* When br next admits an attempt, by its own state; 0 = now.  Only looks. */
static int64_t breaker_ready_at(const rf_breakers *b, const breaker *br, int64_t now_ms)
{
    if (!br)
        return 0;
    switch (breaker_state_at(br, now_ms)) {
    case RF_BREAKER_OPEN:
        return br->open_until_ms;
    case RF_BREAKER_HALF_OPEN: {
        if (br->state == RF_BREAKER_OPEN || !br->probe_out || probe_lost(br, now_ms))
            return 0;
        /* The probe's result decides; until it lands, look again shortly. */
        long base = base_cooldown(b, br);
        return now_ms + (base < PROBE_RECHECK_MS ? base : PROBE_RECHECK_MS);
    }
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------------------- */
/* The API                                                                             */
/* ---------------------------------------------------------------------------------- */

/* Take the lock and copy the listener for this call's events. */
static void lock_for_events(rf_breakers *b, evbatch *ev)
{
    pthread_mutex_lock(&b->lock);
    ev->fn = b->listener;
    ev->ud = b->listener_ud;
    ev->n = 0;
}

/* Is provider (model NULL) or provider+model open according to the remote view?  Without
 * the lock.  *until gets the later reopening time (may be <= now_ms: open, time unknown). */
static int remote_open(rf_breakers *b, const char *provider, const char *model, int64_t now_ms,
                       int64_t *until)
{
    pthread_mutex_lock(&b->lock);
    breaker_remote_fn fn = b->remote;
    void *ud = b->remote_ud;
    pthread_mutex_unlock(&b->lock);
    *until = 0;
    if (!fn)
        return 0;
    int open = 0;
    int64_t t = 0;
    if (fn(provider, NULL, now_ms, &t, ud)) {
        open = 1;
        *until = t;
    }
    t = 0;
    if (model && fn(provider, model, now_ms, &t, ud)) {
        open = 1;
        if (t > *until)
            *until = t;
    }
    return open;
}

int breakers_allow(rf_breakers *b, const char *provider, const char *model, int64_t now_ms)
{
    if (!b || !provider)
        return 1;
    int64_t until;
    if (remote_open(b, provider, model, now_ms, &until))
        return 0;
    evbatch ev;
    lock_for_events(b, &ev);
    breaker *p = breaker_find(b, provider, NULL);
    breaker *m = model ? breaker_find(b, provider, model) : NULL;
    int ok = breaker_admits(p, now_ms, &ev) && breaker_admits(m, now_ms, &ev);
    if (ok) {  /* only now take the probe slots, so a refusal by one takes nothing */
        breaker_take_probe(p, now_ms);
        breaker_take_probe(m, now_ms);
    }
    pthread_mutex_unlock(&b->lock);
    events_flush(&ev);
    return ok;
}

void breakers_record(rf_breakers *b, const char *provider, const char *model,
                     const breaker_result *r, int64_t now_ms)
{
    if (!b || !provider || !r)
        return;
    evbatch ev;
    lock_for_events(b, &ev);
    breaker *p = breaker_get(b, provider, NULL);
    breaker *m = model ? breaker_get(b, provider, model) : NULL;
    int threshold = r->failure_threshold > 0 ? r->failure_threshold : b->threshold;
    long base = r->cooldown_ms > 0 ? r->cooldown_ms : 0;
    int ok = r->scope == BREAKER_SCOPE_NONE;
    if (p) {
        p->base_cooldown_ms = base;
        breaker_stats(p, ok, r->latency_ms, r->error);
    }
    if (m) {
        m->base_cooldown_ms = base;
        breaker_stats(m, ok, r->latency_ms, r->error);
    }
    breaker_scope scope = r->scope;
    if (scope == BREAKER_SCOPE_MODEL && !model)
        scope = BREAKER_SCOPE_PROVIDER;   /* no model named: only the provider to blame */

    switch (scope) {
    case BREAKER_SCOPE_NONE:
        if (p)
            breaker_success(p, "probe succeeded", now_ms, &ev);
        if (m)
            breaker_success(m, "probe succeeded", now_ms, &ev);
        break;
    case BREAKER_SCOPE_MODEL:
        if (m)
            breaker_failure(b, m, r, threshold, now_ms, &ev);
        if (p && r->http_status != 0)   /* it answered: reachable, and it took our key */
            breaker_success(p, "probe answered (the model failed)", now_ms, &ev);
        else
            breaker_release_probe(p, now_ms, &ev);
        break;
    case BREAKER_SCOPE_PROVIDER:
        if (p)
            breaker_failure(b, p, r, threshold, now_ms, &ev);
        breaker_release_probe(m, now_ms, &ev);  /* says nothing of the model */
        break;
    }
    pthread_mutex_unlock(&b->lock);
    events_flush(&ev);
}

void breakers_release(rf_breakers *b, const char *provider, const char *model, int64_t now_ms)
{
    if (!b || !provider)
        return;
    evbatch ev;
    lock_for_events(b, &ev);
    breaker_release_probe(breaker_find(b, provider, NULL), now_ms, &ev);
    if (model)
        breaker_release_probe(breaker_find(b, provider, model), now_ms, &ev);
    pthread_mutex_unlock(&b->lock);
    events_flush(&ev);
}

void breakers_note_fallback(rf_breakers *b, const char *provider)
{
    if (!b || !provider)
        return;
    pthread_mutex_lock(&b->lock);
    breaker *br = breaker_get(b, provider, NULL);
    if (br)
        br->fallbacks++;
    pthread_mutex_unlock(&b->lock);
}

int64_t breakers_ready_at(rf_breakers *b, const char *provider, const char *model,
                          int64_t now_ms)
{
    if (!b || !provider)
        return 0;
    pthread_mutex_lock(&b->lock);
    int64_t p = breaker_ready_at(b, breaker_find(b, provider, NULL), now_ms);
    int64_t m = model ? breaker_ready_at(b, breaker_find(b, provider, model), now_ms) : 0;
    pthread_mutex_unlock(&b->lock);
    int64_t at = p > m ? p : m;
    int64_t until;
    if (remote_open(b, provider, model, now_ms, &until)) {
        if (until <= now_ms)   /* open elsewhere, for how long unknown: look again soon */
            until = now_ms + PROBE_RECHECK_MS;
        if (until > at)
            at = until;
    }
    return at <= now_ms ? 0 : at;
}

void breakers_set_listener(rf_breakers *b, breaker_listener_fn fn, void *ud)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->listener = fn;
    b->listener_ud = ud;
    pthread_mutex_unlock(&b->lock);
}

void breakers_set_remote(rf_breakers *b, breaker_remote_fn is_open, void *ud)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->remote = is_open;
    b->remote_ud = ud;
    pthread_mutex_unlock(&b->lock);
}
