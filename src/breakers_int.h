/* breakers_int.h — the breaker records, shared by breakers.c (the state machine) and
 * breakers_json.c (providers.json and health).  Not part of the public API. */
#ifndef RF_BREAKERS_INT_H
#define RF_BREAKERS_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "breakers.h"

#define BREAKER_LATENCY_SAMPLES 256
#define BREAKER_LAST_ERROR_MAX  200
#define BREAKER_REASON_MAX      160

typedef struct breaker {
    char *provider;              /* owned; never changes */
    char *model;                 /* owned; NULL: the provider-wide breaker */
    struct breaker *hnext;       /* hash chain */

    rf_breaker_state state;      /* OPEN becomes HALF_OPEN when its cooldown ends: stored
                                    lazily by the mutating calls, see breaker_state_at */
    int down;                    /* opened at once by a 401-404 */
    int probe_out;               /* HALF_OPEN: the one probe has been admitted */
    int64_t probe_since_ms;      /* when it was */
    int consecutive_failures;
    int failed_probes;           /* consecutive failed half-open probes */
    long base_cooldown_ms;       /* the provider's setting at the last record; 0 = default */
    long cooldown_ms;            /* of the last open period */
    int64_t open_until_ms;
    uint64_t opened;             /* times it opened (from closed or half-open) */

    uint64_t requests, failures;
    uint64_t fallbacks;          /* jobs that gave up on this provider for a later hop */
    char last_error[BREAKER_LAST_ERROR_MAX + 1];
    int has_error;
    long latency[BREAKER_LATENCY_SAMPLES];  /* ring of successful attempts' latencies */
    size_t latency_len, latency_next;
} breaker;

struct rf_breakers {
    pthread_mutex_t lock;        /* guards everything below */
    int threshold;               /* defaults */
    long cooldown_ms;
    breaker **buckets;           /* chained hash on provider (+ 0x1f + model) */
    size_t nbuckets;             /* power of two */
    breaker **order;             /* insertion order, for a stable providers.json; a
                                    provider's record always precedes its models' */
    size_t len, cap;
    breaker_listener_fn listener;
    void *listener_ud;
    breaker_remote_fn remote;
    void *remote_ud;
};

/* The state at now_ms, without changing anything: an OPEN breaker whose cooldown has
 * passed is HALF_OPEN (with no probe out).  Lock held. */
rf_breaker_state breaker_state_at(const breaker *br, int64_t now_ms);

/* The cooldown the breaker's open period has (OPEN), or the next opening would have.
 * Lock held. */
long breaker_cooldown_now(const rf_breakers *b, const breaker *br, int64_t now_ms);

#endif
