/* breakers.h — circuit breakers per provider+model and per provider, and the health
 * statistics that providers.json, status and metrics show.  Thread-safe.
 *
 * Two levels.  A provider+model breaker opens on failures that may be the model's own
 * (5xx, timeouts of every kind, 408/429 overload, a 404 for the model, empty, broken or
 * cut answers); the provider-wide breaker only on failures that cannot be
 * model-specific (connection refused, reset before any byte, DNS, TLS, 401/402/403).  An
 * attempt needs both to admit it, so with one provider serving many models (OpenRouter),
 * one model's outage never blocks another.  breakers_scope_of is the one place that
 * decides which level a failure counts against.
 *
 * Every time in this API is the monotonic clock (now_mono_ms, clock.h); the only wall-clock
 * value is providers.json's reopens_at, converted at render. */
#ifndef RF_BREAKERS_H
#define RF_BREAKERS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RF_BREAKER_CLOSED = 0, RF_BREAKER_OPEN, RF_BREAKER_HALF_OPEN } rf_breaker_state;

typedef struct rf_breakers rf_breakers;   /* thread-safe */

/* ---- which breaker an attempt counts against ---- */

typedef enum {
    BREAKER_SCOPE_NONE = 0,  /* nothing against anyone: a success, or a request the
                                provider rightly refused (400, 413, 422, other 4xx) */
    BREAKER_SCOPE_MODEL,     /* the provider+model breaker */
    BREAKER_SCOPE_PROVIDER   /* the provider-wide breaker */
} breaker_scope;

/* transport: an rf_transport_error (router.h; an int here because router.h includes this
 * header).  http_status: 0 when there was none.  parse_failed: a 2xx whose body or stream
 * was unusable (malformed, error object, no choices, empty). */
breaker_scope breakers_scope_of(int transport, long http_status, int parse_failed);

/* ---- the breakers ---- */

/* Defaults for calls that pass no per-provider setting (<= 0): threshold consecutive
 * failures open a breaker (5 when <= 0), cooldown_ms before a probe (30000 when <= 0). */
rf_breakers *breakers_new(int threshold, long cooldown_ms);
void breakers_free(rf_breakers *b);

/* May an attempt go to provider/model now?  Both breakers must admit it (model NULL: the
 * provider's only), and a remote view (breakers_set_remote) must not hold either open.
 * A half-open breaker admits one probe at a time: the slot is a lease, presumed lost after
 * five minutes.  On 1 the caller must later call breakers_record or breakers_release. */
int breakers_allow(rf_breakers *b, const char *provider, const char *model, int64_t now_ms);

/* The facts of one attempt, for breakers_record.  Strings borrowed for the call. */
typedef struct breaker_result {
    breaker_scope scope;     /* breakers_scope_of(...) */
    int transport;           /* rf_transport_error; 0 = none (an HTTP answer) */
    long http_status;        /* 0 = none */
    long retry_after_ms;     /* the answer's Retry-After; -1 = none.  Used on 429/503. */
    long latency_ms;         /* < 0: no latency sample */
    const char *error;       /* one line for last_error, or NULL */
    int failure_threshold;   /* the provider's setting now; <= 0 = breakers_new's */
    long cooldown_ms;        /* the provider's setting now; <= 0 = breakers_new's */
} breaker_result;

/* Record an attempt admitted by breakers_allow.  Rules (README "Circuit breakers"):
 *   NONE      success for both breakers.
 *   MODEL     a failure of the provider+model breaker.  The provider answered when
 *             http_status != 0, which counts as the provider's success; otherwise the
 *             attempt says nothing of it (its probe slot is given back).
 *   PROVIDER  a failure of the provider-wide breaker; nothing of the model.
 * A failure opens a closed breaker at failure_threshold consecutive failures, or at once
 * for 401-404 (state "down").  It opens for cooldown_ms; a 429/503 with a Retry-After opens
 * it for that long instead, at most 10 x cooldown_ms.  A failed half-open probe re-opens
 * it: the n-th consecutive failed probe for cooldown_ms x 1, 1.5, then 2 (never more); a
 * successful probe closes it and resets that growth.  A result that arrives while the
 * breaker is open (admitted before it opened) counts in the statistics only. */
void breakers_record(rf_breakers *b, const char *provider, const char *model,
                     const breaker_result *r, int64_t now_ms);

/* An attempt admitted by breakers_allow was never sent, or was cancelled: give back the
 * probe slots it may hold, without counting anything. */
void breakers_release(rf_breakers *b, const char *provider, const char *model, int64_t now_ms);

/* A job gave up on provider and moved to a later hop (providers.json "fallbacks"). */
void breakers_note_fallback(rf_breakers *b, const char *provider);

/* When provider/model next admits an attempt (a monotonic ms time, the later of both
 * breakers and of the remote view); 0 if now.  Only looks: takes no probe slot, changes
 * nothing, never calls the listener. */
int64_t breakers_ready_at(rf_breakers *b, const char *provider, const char *model,
                          int64_t now_ms);

/* ---- transitions: log, listener, remote view ---- */

/* One breaker transition.  Every closed->open, open->half-open, half-open->closed and
 * half-open->open is logged (one line: WARN when it opens, INFO otherwise) and passed to
 * the listener.  open->half-open happens when its cooldown ends but is noticed (logged,
 * reported) at the next breakers_allow/record/release that touches the breaker; at_ms
 * says when it took effect. */
typedef struct breaker_event {
    const char *provider;    /* borrowed: valid until breakers_free */
    const char *model;       /* NULL = the provider-wide breaker; borrowed likewise */
    rf_breaker_state from, to;
    const char *reason;      /* one line, e.g. "5 consecutive failures, last HTTP 503";
                                valid during the call only */
    int down;                /* to OPEN at once on a 401-404: providers.json says "down" */
    long cooldown_ms;        /* to OPEN: how long it stays open; else 0 */
    int64_t until_ms;        /* to OPEN: when it admits a probe (monotonic); else 0 */
    int64_t at_ms;           /* when the transition took effect (monotonic) */
} breaker_event;

typedef void (*breaker_listener_fn)(const breaker_event *ev, void *ud);

/* Call fn for every transition from now on (NULL: none).  fn runs on the thread whose
 * breakers_allow/record/release caused the transition, after the breakers lock is
 * released, so it may call breakers_* itself; once per transition, in order per call
 * (two threads' events may interleave). */
void breakers_set_listener(rf_breakers *b, breaker_listener_fn fn, void *ud);

/* Breakers opened elsewhere (another host, through shared state).  is_open(provider,
 * model, now_ms, &until_ms, ud) -> 1 when that exact breaker (model NULL: provider-wide)
 * is open elsewhere until until_ms (monotonic, this host's clock; <= now_ms: open, end
 * unknown), else 0.  Called without the breakers lock, twice per breakers_allow and
 * breakers_ready_at; ready_at runs in routing decisions under the jobs lock, so it must be
 * cheap, must not block and must not call into jobs.  NULL: no remote view.  The remote
 * view only refuses: probes, providers.json and the listener stay local. */
typedef int (*breaker_remote_fn)(const char *provider, const char *model, int64_t now_ms,
                                 int64_t *until_ms, void *ud);
void breakers_set_remote(rf_breakers *b, breaker_remote_fn is_open, void *ud);

/* ---- providers.json, status, metrics (breakers_json.c) ---- */

/* providers.json body: {"providers": {NAME: {fields..., "fallbacks", "models": {MODEL:
 * {fields...}}}}}, fields = state ("ok", "cooling down", "down" or "half-open"), breaker
 * ("closed", "open", "half-open"), reopens_at (ISO UTC wall time, null unless open),
 * consecutive_failures, cooldown_ms (of the open period running, or of the next one),
 * opened (times opened), last_error, latency_ms {p50, p95}, requests, failures.
 * now_wall_ms is the wall clock at now_ms, for reopens_at.  malloc'd JSON text. */
char *breakers_to_json(rf_breakers *b, int64_t now_ms, int64_t now_wall_ms);

/* One breaker's health, for status and metrics. */
typedef struct rf_provider_health {
    char *provider;          /* owned */
    char *model;             /* owned; NULL = the provider-wide breaker */
    const char *state;       /* static: "ok", "cooling down", "down" or "half-open" */
    int breaker_closed;
    char *last_error;        /* owned or NULL */
    uint64_t requests, failures;
} rf_provider_health;

/* Every provider that has had an attempt, in first-seen order, and when with_models is
 * set, after them every provider+model breaker in first-seen order: the count, with *out
 * a malloc'd array to free with breakers_health_free; -1 when out of memory. */
long breakers_health(rf_breakers *b, int64_t now_ms, int with_models, rf_provider_health **out);
void breakers_health_free(rf_provider_health *h, size_t n);

#endif
