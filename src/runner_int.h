/* runner_int.h — what the runner's three files share; not for other modules.
 *
 *   runner.c          the attempt handle and its steps: begin, send, answer, cancel
 *   runner_gates.c    what an attempt must hold before it is sent and gives back after:
 *                     the provider's in-flight slot and rpm spacing, the half-open probe
 *                     and the budget reservation, locally or shared across hosts
 *   runner_request.c  the request for a hop and the verdict on its answer
 *
 * Everything here runs on the upstream loop thread, except runner_new, runner_cancel and
 * the reference count. */
#ifndef RF_RUNNER_INT_H
#define RF_RUNNER_INT_H

#include <pthread.h>

#include "breakers.h"
#include "cost.h"
#include "plimit.h"
#include "prices.h"
#include "runner.h"
#include "shared.h"
#include "stream.h"

typedef enum {
    AT_NEW,
    AT_WAIT_SLOT,      /* parked until another attempt frees a local slot */
    AT_WAIT_SHARED,    /* a request to the shared state is out; its reply resumes us */
    AT_TIMER,
    AT_IN_FLIGHT,
    AT_DONE
} attempt_phase;

/* Half-open probes claimed across hosts (attempt.probes). */
#define PROBE_PROVIDER 1
#define PROBE_MODEL    2

struct attempt {
    int refs;                  /* atomic: the runner's, the job's, and one per reply due */
    int cancelled;             /* atomic */
    attempt_plan *plan;        /* owned until reported */
    attempt_phase phase;
    long upstream_id, timer_id;
    int breaker_taken;         /* breakers_allow said yes; not yet recorded or released */
    int priced;
    hop_price price;
    double worst_usd;
    int max_tokens;
    int64_t sent_wall_ms;
    stream_parser *sp;         /* a streamed request's SSE parser (owned), or NULL */
    size_t live_len;           /* bytes of its text already in the live buffer */
    int hops_covered;          /* route hops this request covers (OpenRouter "models");
                                  0 = not decided yet (runner_plan_models) */
    const char *models[16];    /* the models sent (borrowed from plan->route_cfg) */
    size_t n_models;
    int served_offset;         /* the covered hop that served: hop_index + this */
    int funds_gone;            /* the answer said the provider's money is gone (402, a key
                                  limit): not a health failure, an out-of-budget mark */
    /* held before sending (runner_gates.c) */
    char *slot_provider;       /* holds a local in-flight slot on this provider (owned) */
    long reservation;          /* local budget reservation, 0 = none */
    int64_t key_held;          /* reserved against an OpenRouter key's limit (keycap.h) */
    char shared_res[SHARED_ID_MAX];    /* shared reservation id, "" = none */
    char shared_lease[SHARED_ID_MAX];  /* shared in-flight slot, "" = none */
    int probes;                /* PROBE_* held across hosts */
    /* the requests to the shared state that go out together (runner_gates.c) */
    int shared_pending;        /* replies still due */
    int rate_booked;           /* a shared send time is booked (rate_wait_ms from then) */
    int slot_status, rate_status, res_status;   /* their outcomes (0 = granted) */
    long slot_retry_ms, rate_wait_ms;
    char res_msg[300];         /* a refused reservation: which cap */
    int shared_res_wanted;     /* this attempt reserves in the shared windows */
    int64_t shared_res_nusd;   /* how much */
    int shared_spend;          /* settle the spend into the shared windows (caps) */
    shared_caps caps;          /* those windows */
    attempt *prev, *next;      /* the live list */
};

typedef struct runner_state {
    runner_deps d;
    plimits *limits;           /* loop thread only; NULL (out of memory): no local limits */
    pthread_mutex_t live_lock;
    attempt *live;
    size_t in_flight;          /* loop thread */
} runner_state;

extern runner_state rn;

static inline const rf_hop *plan_hop(const attempt_plan *p)
{
    return &p->tier->route[p->hop_index];
}

/* runner.c */
void runner_finish_simple(attempt *a, attempt_kind kind, const char *error, long retry_in_ms);
int runner_is_cancelled(attempt *a);
int runner_arm(attempt *a, long delay_ms, void (*fn)(void *));
void runner_step_begin(void *ud);
/* Give back everything held (slots, reservations, probes, the breaker), then begin again
 * after delay_ms: the way to wait for something that may take a while. */
void runner_back_off(attempt *a, long delay_ms);
void runner_step_send(void *ud);
void runner_send_request(attempt *a);   /* everything is held: build it and send it */

/* runner_gates.c */
void gates_limits(attempt *a);          /* slot, then rpm; then runner_step_send */
void gates_probe_and_reserve(attempt *a);   /* then runner_send_request */
void gates_release(attempt *a);         /* give back everything gates took */
/* Count what the attempt cost (row: at least tier, has_cost, cost_nusd, at_ms) in the
 * budget and in the shared windows; its reservations are used up by it. */
void gates_settle(attempt *a, const ledger_row *row);
/* The answer to a claimed probe: close the breakers it probed for every host, or open
 * them again (cooldown_ms). */
void gates_probe_done(attempt *a, int provider_ok, int model_ok, long cooldown_ms,
                      const char *why);

/* runner_request.c */
upstream_request *runner_build_request(attempt *a, const rf_provider *p, rf_err *err);
/* Decide which route hops the request covers (OpenRouter "models", once per attempt):
 * fills a->models, a->n_models and a->hops_covered. */
void runner_plan_models(attempt *a, const rf_provider *p);
/* After a success covering several hops: which one served (the answer's model). */
int runner_served_offset(const attempt *a, const char *served_model);
void runner_judge(attempt *a, const upstream_result *res, long retry_after_max_ms,
                  attempt_report *r, breaker_scope *scope);
int runner_ledger_row(const attempt *a, const cost_result *c, const openai_completion *comp,
                      ledger_row *row);

#endif
