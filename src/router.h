/* router.h — routing policy: error classes, backoff, circuit breakers, hop choice.
 *
 * Pure decisions, no I/O: the runner (runner.c) reports what happened on an attempt and
 * asks what to do next.  One function (router_classify) decides every outcome; one
 * (router_next_hop) decides which hop of a route to try; nowhere else does either. */
#ifndef RF_ROUTER_H
#define RF_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

/* Transport-level failure of an attempt, before any HTTP status. */
typedef enum {
    RF_TE_NONE = 0,
    RF_TE_CONNECT,           /* refused, unreachable, DNS, no socket (too many open files) */
    RF_TE_TIMEOUT,           /* the whole-attempt timeout hit */
    RF_TE_TRUNCATED,         /* connection closed / reset mid-response */
    RF_TE_TOO_LARGE,         /* body over the cap */
    RF_TE_OTHER,
    RF_TE_FIRST_TOKEN,       /* no first token within the first-token timeout */
    RF_TE_STALL,             /* no progress within the stall timeout, after the first token */
    RF_TE_RESET,             /* connection reset / closed before any response byte */
    RF_TE_TLS,               /* TLS handshake or certificate failure */
    RF_TE_ABORTED            /* the caller's on_data stopped the transfer */
} rf_transport_error;

/* What happened on one attempt. */
typedef struct rf_attempt {
    rf_transport_error transport;
    long http_status;        /* 0 when transport != NONE */
    int parse_status;        /* openai_status for 2xx bodies; 0 otherwise */
    int context_length;      /* 4xx body says context length exceeded */
    int unsupported_param;   /* 4xx body says a parameter is unsupported */
    long retry_after_ms;     /* from Retry-After; -1 when absent */
} rf_attempt;

typedef enum {
    RF_OUT_SUCCESS = 0,
    RF_OUT_RETRY,            /* try this hop again after a delay */
    RF_OUT_NEXT_HOP,         /* give up this hop, try the next */
    RF_OUT_NEXT_HOP_DOWN,    /* next hop, and mark the provider down (auth/billing/not found) */
    RF_OUT_FAIL_JOB          /* the request itself is at fault: no hop will do better */
} rf_outcome;

const char *router_outcome_name(rf_outcome o);

/* Classify an attempt.  retry_after_max_ms is the tier's cap: a 429/503 whose Retry-After
 * exceeds it goes to the next hop at once. */
rf_outcome router_classify(const rf_attempt *a, long retry_after_max_ms);

/* Delay before retry number `attempt` (0-based) on a hop: full jitter,
 * random in [0, min(cap, base * 2^attempt)].  A Retry-After (>= 0) overrides it.
 * seed: a caller-owned PRNG state (rand_r style). */
long router_backoff_ms(int attempt, long base_ms, long cap_ms, long retry_after_ms,
                       unsigned *seed);

/* Parse a Retry-After header value (delta-seconds or HTTP-date) into ms from now_unix;
 * -1 when unparseable. */
long router_parse_retry_after(const char *value, int64_t now_unix);

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

/* Does provider/model support every parameter in params?  A provider with no
 * supported_parameters list supports everything. */
int router_hop_supports(const rf_config *cfg, const rf_hop *hop,
                        char *const *params, size_t nparams);

/* Choose the hop to try for a job: the one place that decides fallback.
 *   start: first hop index not yet given up on.
 *   Returns -1 when no hop is left: start >= route_len, or start > 0 with
 *   allow_fallbacks false.  Skips hops that do not support params when the tier has
 *   require_parameters.  Skips hops whose breaker is open; when every remaining eligible
 *   hop is open, returns the one whose breaker admits a probe first and sets *wait_ms to
 *   how long until then (0 when it can go now). */
int router_next_hop(rf_breakers *b, const rf_config *cfg, const rf_tier *tier, size_t start,
                    char *const *params, size_t nparams, int64_t now_ms, long *wait_ms);

#endif
