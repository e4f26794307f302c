/* router.h — routing policy: error classes, backoff, circuit breakers, hop choice.
 *
 * Pure decisions, no I/O: the runner (runner.c) reports what happened on an attempt and
 * asks what to do next.  One function (router_classify) decides every outcome; one
 * (router_next_hop) decides which hop of a route to try; nowhere else does either. */
#ifndef RF_ROUTER_H
#define RF_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include "breakers.h"
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
    int content_policy;      /* refused for its content: the job fails, no hop will do */
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

/* ---- the decision after each attempt: the one place that decides fallback ---- */

/* The routing part of a job, as the router sees it (borrowed). */
typedef struct route_state {
    const rf_config *cfg;    /* the job's config: its route */
    const rf_tier *tier;
    size_t hop_index;        /* the current hop */
    int hop_attempts;        /* attempts already made on it */
    int hop_sent;            /* a request really left for it */
    int park_count;          /* times parked so far */
    char *const *params;     /* request parameters, for require_parameters */
    size_t nparams;
    unsigned *seed;          /* jitter PRNG state (the job's) */
} route_state;

/* How an attempt ended, as far as routing cares. */
typedef enum {
    RO_ANSWERED = 0,         /* sent and classified: see outcome */
    RO_SKIPPED,              /* not sent: this hop cannot be used now */
    RO_REFUSED               /* not sent: the job cannot run (a cap, a bad prompt) */
} route_event;

typedef struct route_outcome {
    route_event event;
    rf_outcome outcome;      /* RO_ANSWERED */
    int timed_out;           /* any timeout: retried only when the tier asks for it */
    long retry_after_ms;     /* -1 none */
    long retry_in_ms;        /* RO_SKIPPED: > 0 = the same hop again after that long */
    int hops_covered;        /* route hops the attempt covered (OpenRouter "models"), >= 1 */
} route_outcome;

typedef enum {
    RD_SEND = 0,             /* send to hop_index after delay_ms */
    RD_PARK,                 /* park for delay_ms, then start the route again */
    RD_FAIL,                 /* the job fails (the request itself is at fault) */
    RD_EXHAUSTED,            /* every hop failed and the tier does not park (again) */
    RD_SUCCESS
} route_action;

typedef struct route_decision {
    route_action action;
    size_t hop_index;        /* RD_SEND */
    int new_hop;             /* RD_SEND: a different hop: its attempts start at 0 */
    long delay_ms;           /* RD_SEND (backoff, all hops open) / RD_PARK */
    long fell_from;          /* >= 0: the job fell back from this hop (a request had
                                gone there): providers.json and metrics count it */
} route_decision;

/* The first hop of a new job, or of a parked one starting again. */
void router_first(rf_breakers *b, const route_state *s, int64_t now_ms, route_decision *d);
/* After an attempt. */
void router_after(rf_breakers *b, const route_state *s, const route_outcome *o, int64_t now_ms,
                  route_decision *d);

#endif
