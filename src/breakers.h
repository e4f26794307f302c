/* breakers.h — circuit breakers per provider and per provider+model, and the health
 * statistics that providers.json, status and metrics.prom show.  Thread-safe. */
#ifndef RF_BREAKERS_H
#define RF_BREAKERS_H

#include <stddef.h>
#include <stdint.h>

/* ---- circuit breakers (per provider, and per provider+model) ---- */

typedef enum { RF_BREAKER_CLOSED = 0, RF_BREAKER_OPEN, RF_BREAKER_HALF_OPEN } rf_breaker_state;

typedef struct rf_breakers rf_breakers;   /* thread-safe */

/* threshold: consecutive failures that open a breaker (default 5);
 * cooldown_ms: how long it stays open before one probe is let through (default 30000). */
rf_breakers *breakers_new(int threshold, long cooldown_ms);
void breakers_free(rf_breakers *b);

/* May an attempt go to provider/model now?  In half-open state only one probe at a time
 * is allowed.  If it returns 1, the caller must later call breakers_record for it. */
int breakers_allow(rf_breakers *b, const char *provider, const char *model, int64_t now_ms);

/* Record an attempt's result.  mark_down: auth/billing/not-found — open at once.
 * model_specific: the failure concerns the model, not the whole provider (404 model, 400
 * unsupported) — counts against provider+model only. */
void breakers_record(rf_breakers *b, const char *provider, const char *model, int success,
                     int mark_down, int model_specific, long latency_ms,
                     const char *error_text, int64_t now_ms);

/* An attempt admitted by breakers_allow was never sent (budget, missing key, ...): give
 * back the half-open probe slot it may hold, without counting anything. */
void breakers_release(rf_breakers *b, const char *provider, const char *model, int64_t now_ms);

/* A job gave up on provider and moved to a later hop (providers.json "fallbacks"). */
void breakers_note_fallback(rf_breakers *b, const char *provider);

/* When the breaker for provider/model next admits a probe (ms timestamp); 0 if now. */
int64_t breakers_ready_at(rf_breakers *b, const char *provider, const char *model,
                          int64_t now_ms);

/* providers.json body: per provider (and per model with its own state): state
 * "ok"/"cooling down"/"down", breaker, reopens_at, consecutive_failures, last_error,
 * latency_ms p50/p95, requests, failures.  malloc'd JSON text. */
char *breakers_to_json(rf_breakers *b, int64_t now_ms);

/* One provider's health, for status and metrics (provider-level breakers only). */
typedef struct rf_provider_health {
    char *provider;          /* owned */
    const char *state;       /* static: "ok", "cooling down" or "down" */
    int breaker_closed;
    char *last_error;        /* owned or NULL */
    uint64_t requests, failures;
} rf_provider_health;

/* Every provider that has had an attempt, in first-seen order: the count, with *out a
 * malloc'd array to free with breakers_health_free; -1 when out of memory. */
long breakers_health(rf_breakers *b, int64_t now_ms, rf_provider_health **out);
void breakers_health_free(rf_provider_health *h, size_t n);

#endif
