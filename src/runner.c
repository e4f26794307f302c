/* runner.c — see runner.h.
 *
 * One attempt, step by step, all on the upstream loop thread:
 *   begin     the store must be working (no answer is bought that could not be kept),
 *             then the provider's limits (runner_gates.c: in-flight slot, rpm spacing);
 *   send      the breaker, then the half-open probe and the reservation under the caps
 *             in force now (runner_gates.c), the request (runner_request.c), off it goes;
 *   on_answer classify, record the breaker, settle the cost, report.
 * Any step can end the attempt with a report (finish); a cancelled attempt ends at the
 * next step it reaches, or at once when it is in flight (aborted on the wire).  A step
 * that waits on the shared state (Redis) is resumed by its reply, hopped to this thread.
 *
 * Threads: runner_new and runner_cancel may be called from any thread; everything else
 * runs on the loop thread, so an attempt's fields need no lock.  The list of live
 * attempts (for shutdown) has a small lock of its own. */
#include "runner_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cost.h"
#include "log.h"
#include "metrics.h"
#include "openrouter.h"
#include "store_prompts.h"

#define PROBE_BUSY_DELAY_MS 200          /* another job holds a half-open breaker's probe */
#define STORE_WAIT_MS 500                /* the store is failing: no sends until it works */

runner_state rn = {.live_lock = PTHREAD_MUTEX_INITIALIZER};

void attempt_plan_free(attempt_plan *p)
{
    if (!p)
        return;
    free(p->key);
    free(p->tier_name);
    free(p->tag);
    blob_unref(p->prompt);
    for (size_t i = 0; i < p->nparams; i++)
        free(p->params[i]);
    free(p->params);
    config_unref(p->route_cfg);
    live_unref(p->live);
    free(p);
}

void attempt_report_clear(attempt_report *r)
{
    openai_completion_free(&r->comp);
    ledger_row_clear(&r->ledger);
}

void runner_init(const runner_deps *deps)
{
    rn.d = *deps;
    rn.limits = plimits_new();   /* NULL (out of memory): provider limits do not apply */
}

size_t runner_in_flight(void)
{
    return __atomic_load_n(&rn.in_flight, __ATOMIC_RELAXED);
}

/* ---- the attempt handle ---- */

attempt *runner_new(attempt_plan *plan)
{
    attempt *a = calloc(1, sizeof *a);
    if (!a) {
        attempt_plan_free(plan);
        return NULL;
    }
    a->refs = 2;
    a->plan = plan;
    pthread_mutex_lock(&rn.live_lock);
    a->next = rn.live;
    if (rn.live)
        rn.live->prev = a;
    rn.live = a;
    pthread_mutex_unlock(&rn.live_lock);
    return a;
}

void runner_release(attempt *a)
{
    if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_lock(&rn.live_lock);
    if (a->prev)
        a->prev->next = a->next;
    else if (rn.live == a)
        rn.live = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&rn.live_lock);
    attempt_plan_free(a->plan);
    free(a->slot_provider);
    stream_free(a->sp);
    free(a);
}

/* ---- ending an attempt ---- */

static void release_all(attempt *a)
{
    gates_release(a);
    if (a->breaker_taken) {
        const rf_hop *hop = plan_hop(a->plan);
        breakers_release(rn.d.breakers, hop->provider, hop->model, now_mono_ms());
        a->breaker_taken = 0;
    }
}

void runner_back_off(attempt *a, long delay_ms)
{
    release_all(a);
    runner_arm(a, delay_ms, runner_step_begin);
}

/* The attempt ends: report it (the report callback takes the plan) and drop the
 * runner's reference. */
static void finish(attempt *a, attempt_report *r)
{
    release_all(a);
    a->phase = AT_DONE;
    attempt_plan *plan = a->plan;
    a->plan = NULL;
    rn.d.report(a, plan, r);
    runner_release(a);
}

void runner_finish_simple(attempt *a, attempt_kind kind, const char *error, long retry_in_ms)
{
    attempt_report r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.retry_after_ms = -1;
    r.tokens = -1;
    r.retry_in_ms = retry_in_ms;
    r.sent_ms = now_wall_ms();
    snprintf(r.error, sizeof r.error, "%s", error ? error : "");
    finish(a, &r);
}

static void finish_cancelled(attempt *a)
{
    runner_finish_simple(a, AR_CANCELLED, "cancelled", 0);
}

int runner_is_cancelled(attempt *a)
{
    return __atomic_load_n(&a->cancelled, __ATOMIC_ACQUIRE);
}

int runner_arm(attempt *a, long delay_ms, void (*fn)(void *))
{
    rf_err err;
    long id = upstream_after(rn.d.up, delay_ms, fn, a, &err);
    if (id < 0) {
        LOG_ERROR("%s: cannot schedule: %s", a->plan->key, err.msg);
        runner_finish_simple(a, AR_SKIPPED, "internal error: cannot schedule the request", 0);
        return -1;
    }
    a->timer_id = id;
    a->phase = AT_TIMER;
    return 0;
}

/* ---- the steps ---- */

void runner_go(attempt *a)
{
    rf_err err;
    if (upstream_after(rn.d.up, 0, runner_step_begin, a, &err) < 0) {
        /* The loop is gone (shutdown): the attempt never runs; runner_shutdown frees it. */
        LOG_DEBUG("%s: not started: %s", a->plan ? a->plan->key : "?", err.msg);
    }
}

void runner_step_begin(void *ud)
{
    attempt *a = ud;
    a->timer_id = 0;
    if (runner_is_cancelled(a)) {
        finish_cancelled(a);
        return;
    }
    live_reset(a->plan->live);   /* a new attempt shows from the start in NAME.live */
    if (store_admit(rn.d.store) < 0) {
        runner_arm(a, STORE_WAIT_MS, runner_step_begin);   /* an answer now could not be kept */
        return;
    }
    gates_limits(a);
}

static void on_answer(upstream_result *res, void *ud);

void runner_step_send(void *ud)
{
    attempt *a = ud;
    a->timer_id = 0;
    if (runner_is_cancelled(a)) {
        finish_cancelled(a);
        return;
    }
    const rf_hop *hop = plan_hop(a->plan);
    if (!a->breaker_taken) {
        if (!breakers_allow(rn.d.breakers, hop->provider, hop->model, now_mono_ms())) {
            runner_finish_simple(a, AR_SKIPPED, "the breaker's probe is out",
                                 PROBE_BUSY_DELAY_MS);
            return;
        }
        a->breaker_taken = 1;
    }
    gates_probe_and_reserve(a);
}

void runner_send_request(attempt *a)
{
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    const rf_provider *p = config_provider(pl->route_cfg, hop->provider);
    rf_err err;
    rf_err_clear(&err);
    upstream_request *rq = runner_build_request(a, p, &err);
    if (!rq) {
        runner_finish_simple(a, err.code == EINVAL || err.code == EILSEQ ? AR_REFUSED : AR_SKIPPED,
                             err.msg, 0);
        return;
    }
    a->sent_wall_ms = now_wall_ms();
    LOG_DEBUG("%s: attempt %d on %s/%s (reserved $%.6f)", pl->key, pl->attempt_no,
              hop->provider, hop->model, a->worst_usd);
    sp_mark_sent(rn.d.store, pl->key, pl->gen);
    long id = upstream_submit(rn.d.up, rq, on_answer, a, &err);
    if (id < 0) {
        runner_finish_simple(a, AR_SKIPPED, err.msg, 0);
        return;
    }
    a->upstream_id = id;
    a->phase = AT_IN_FLIGHT;
    rn.in_flight++;
}

/* ---- the answer ---- */

/* The provider's breaker settings in the config in force now, so that a live edit applies
 * from the next failure on; the job's config when there is none.  0 = the defaults. */
static void breaker_settings(const attempt_plan *pl, const char *provider, int *threshold,
                             long *cooldown_ms)
{
    rf_config *now = rn.d.current_config ? rn.d.current_config() : NULL;
    const rf_provider *p = config_provider(now ? now : pl->route_cfg, provider);
    *threshold = p ? p->failure_threshold : 0;
    *cooldown_ms = p ? p->cooldown_ms : 0;
    config_unref(now);
}

static void settle(attempt *a, attempt_report *r, const cost_result *c,
                   const openai_completion *comp)
{
    if (c->has_cost)
        metrics_spend(a->plan->tier_name, plan_hop(a->plan)->provider, plan_hop(a->plan)->model,
                      cost_nusd_to_usd(c->nusd));
    if (runner_ledger_row(a, c, comp, &r->ledger) == 0) {
        r->billed = 1;
        gates_settle(a, &r->ledger);
    } else {
        ledger_row tmp = {.tier = a->plan->tier_name, .has_cost = c->has_cost,
                          .cost_nusd = c->nusd, .at_ms = now_wall_ms()};
        gates_settle(a, &tmp);   /* the caps still see it */
        LOG_ERROR("%s: out of memory: a billed request is missing from the ledger",
                  a->plan->key);
    }
}

static void on_answer(upstream_result *res, void *ud)
{
    attempt *a = ud;
    rn.in_flight--;
    a->upstream_id = 0;
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    attempt_report r;
    memset(&r, 0, sizeof r);
    r.kind = AR_ANSWER;
    r.http_status = res->http_status;
    r.retry_after_ms = res->retry_after_ms;
    r.latency_ms = res->latency_ms;
    r.sent_ms = a->sent_wall_ms;
    r.tokens = -1;
    r.hops_covered = a->hops_covered > 0 ? a->hops_covered : 1;
    breaker_scope scope = BREAKER_SCOPE_NONE;
    runner_judge(a, res, pl->tier->retry_after_max_ms, &r, &scope);
    LOG_DEBUG("%s: %s/%s answered %ld in %ld ms: %s", pl->key, hop->provider, hop->model,
              res->http_status, res->latency_ms, router_outcome_name(r.outcome));
    metrics_attempt(pl->tier_name, hop->provider, router_outcome_name(r.outcome),
                    res->latency_ms);
    breaker_result br = {.scope = scope, .transport = res->transport,
                         .http_status = res->http_status, .retry_after_ms = res->retry_after_ms,
                         .latency_ms = res->latency_ms,
                         .error = scope == BREAKER_SCOPE_NONE ? NULL : r.error};
    breaker_settings(pl, hop->provider, &br.failure_threshold, &br.cooldown_ms);
    breakers_record(rn.d.breakers, hop->provider, hop->model, &br, now_mono_ms());
    a->breaker_taken = 0;
    const rf_provider *p = config_provider(pl->route_cfg, hop->provider);
    if (p && p->kind == RF_KIND_OPENROUTER &&
        (res->http_status == 402 || res->http_status == 403))
        or_key_refresh(hop->provider);   /* out of credit or over the key's limit: look */
    if (a->funds_gone)   /* skipped until its Retry-After, or for a cooldown without one */
        budget_provider_out(rn.d.budget, hop->provider,
                            res->retry_after_ms >= 0 ? res->retry_after_ms : br.cooldown_ms,
                            r.error);
    if (a->probes)   /* this host probed for all: tell them how it went */
        gates_probe_done(a, res->http_status != 0 && scope != BREAKER_SCOPE_PROVIDER,
                         scope == BREAKER_SCOPE_NONE, br.cooldown_ms, r.error);
    if (r.outcome == RF_OUT_SUCCESS) {
        cost_result c;
        if (a->hops_covered > 1) {   /* OpenRouter's "models": priced as what served */
            a->served_offset = runner_served_offset(a, r.comp.model);
            r.served_offset = a->served_offset;
            const rf_hop *served = hop + a->served_offset;
            rf_config *now = rn.d.current_config ? rn.d.current_config() : NULL;
            if (a->priced)
                a->priced = prices_lookup(now ? now : pl->route_cfg, served->provider,
                                          served->model, &a->price);
            config_unref(now);
            hop = served;
        }
        cost_of_answer(&r.comp, a->priced ? &a->price : NULL, a->worst_usd, pl->prompt->len, &c);
        cost_learn(rn.d.budget, hop->provider, hop->model, a->priced ? &a->price : NULL,
                   a->worst_usd, &r.comp, &c, pl->prompt->len, a->max_tokens);
        settle(a, &r, &c, &r.comp);
        if (pl->live && !a->sp && r.comp.content)
            live_append(pl->live, r.comp.content, strlen(r.comp.content));
    } else if (a->sp && r.tokens > 0) {
        /* A stream that broke after some tokens: the provider probably billed them. */
        cost_result c;
        cost_of_partial(r.tokens, a->priced ? &a->price : NULL, pl->prompt->len, &c);
        settle(a, &r, &c, NULL);
    }
    finish(a, &r);
}

/* ---- cancellation ---- */

static void step_cancel(void *ud)
{
    attempt *a = ud;
    if (a->phase == AT_IN_FLIGHT && a->upstream_id) {
        upstream_cancel(rn.d.up, a->upstream_id);   /* on the loop thread: at once, on the wire */
        a->upstream_id = 0;
        rn.in_flight--;
        const rf_hop *hop = plan_hop(a->plan);
        breakers_release(rn.d.breakers, hop->provider, hop->model, now_mono_ms());
        a->breaker_taken = 0;
        attempt_report r;
        memset(&r, 0, sizeof r);
        r.kind = AR_CANCELLED;
        r.retry_after_ms = -1;
        r.tokens = a->sp ? stream_tokens(a->sp) : -1;
        r.sent_ms = a->sent_wall_ms;
        snprintf(r.error, sizeof r.error, "cancelled: the prompt changed or was removed");
        cost_result c;
        cost_of_cancelled(a->priced ? &a->price : NULL, a->worst_usd, a->sp != NULL, r.tokens,
                          a->plan->prompt->len, &c);
        settle(a, &r, &c, NULL);
        finish(a, &r);
    } else if (a->phase == AT_TIMER && a->timer_id) {
        upstream_cancel_timer(rn.d.up, a->timer_id);
        a->timer_id = 0;
        finish_cancelled(a);
    }
    /* AT_NEW: step_begin sees the flag; AT_WAIT_SLOT: ends when its turn comes;
     * AT_WAIT_SHARED: ends when the reply comes; AT_DONE: already reported. */
    runner_release(a);   /* step_cancel's reference */
}

void runner_cancel(attempt *a)
{
    if (!a || __atomic_exchange_n(&a->cancelled, 1, __ATOMIC_ACQ_REL))
        return;
    __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    rf_err err;
    if (upstream_after(rn.d.up, 0, step_cancel, a, &err) < 0)
        runner_release(a);   /* shutting down: nothing is in flight any more */
}

void runner_shutdown(void)
{
    /* upstream and the shared state are stopped: no step or callback will run again.
     * Whatever is still live holds its reservation and slot; give them back (shared ones
     * run out with their TTL) and free the plans.  The handles
     * themselves go when their last reference does (the jobs table drops its own). */
    pthread_mutex_lock(&rn.live_lock);
    attempt *list = rn.live;
    pthread_mutex_unlock(&rn.live_lock);
    for (attempt *a = list; a; a = a->next) {
        if (a->phase == AT_DONE)
            continue;
        if (a->reservation)
            budget_release(rn.d.budget, a->reservation);
        a->reservation = 0;
        a->phase = AT_DONE;
        attempt_plan_free(a->plan);
        a->plan = NULL;
    }
    void *w;
    while (rn.limits && (w = plimit_any_waiter(rn.limits)))
        ;
    plimits_free(rn.limits);
    rn.limits = NULL;
    /* Drop the runner's references: an attempt that never reported still holds one. */
    for (;;) {
        pthread_mutex_lock(&rn.live_lock);
        attempt *a = rn.live;
        while (a && a->refs <= 0)
            a = a->next;
        pthread_mutex_unlock(&rn.live_lock);
        if (!a)
            break;
        /* the job table has already released its reference at jobs_shutdown */
        runner_release(a);
    }
}
