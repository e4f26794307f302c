/* runner_gates.c — what an attempt must hold before it is sent, and gives back after.
 * Part of the runner (runner_int.h); loop thread only, except the reply callbacks.
 *
 *   limits   the provider's in-flight slot (max_concurrent) and rpm spacing: locally
 *            (plimit.h) and, with shared state, across all hosts (shared.h);
 *   probe    a breaker another host opened whose open period ran out but that nobody
 *            has closed: one host claims the probe and sends, the others skip the hop;
 *   reserve  the worst case under the caps in force now: locally (budget.h), against an
 *            OpenRouter key's own remaining limit (keycap.h) and, with shared state, in
 *            the shared windows of every host.
 *
 * What a missing Redis means is cluster_now's posture: CLUSTER_ON asks it; CLUSTER_WAIT
 * sends nothing that needs it (a capped job, a limited provider) and tries again every
 * SHARED_WAIT_MS; CLUSTER_LOCAL enforces local_share of every cap and limit here.
 *
 * With shared state the requests an attempt needs go out together, so that they share one
 * round trip (shared.c pipelines what is queued together): the in-flight slot with the
 * reservation, then the rpm booking once the slot is held (booking a send that then has
 * no slot would waste the provider's rate), or the rpm booking with the reservation when
 * the provider has no max_concurrent.  Replies arrive on the shared thread.  Each request
 * holds a reference to the attempt and a struct gate_reply; the callback copies the reply
 * there and hops to the loop thread (on_reply), which records it in the attempt and, once
 * the last of the round is in, decides (shared_round_done).  If the loop is gone, the
 * callback gives back whatever the reply granted itself. */
#include "runner_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "keycap.h"
#include "log.h"
#include "openai.h"

#define BUDGET_WAIT_MS 200      /* a cap is full of reservations still in flight */
#define SHARED_WAIT_MS 500      /* Redis is down ("wait") or did not answer: try again */
#define PROBE_BUSY_DELAY_MS 200 /* another host holds a breaker's probe */
#define LEASE_MIN_MS 60000      /* a shared slot or probe outlives the request it covers */

typedef enum { GR_SLOT, GR_RATE, GR_PROBE, GR_RESERVE } gate_request;

typedef struct gate_reply {
    attempt *a;              /* holds a reference */
    gate_request what;
    int probe_bit;           /* GR_PROBE: PROBE_PROVIDER or PROBE_MODEL */
    int status;
    long ms;                 /* GR_RATE: wait before sending; GR_SLOT: retry hint */
    int granted;             /* GR_PROBE */
    char id[SHARED_ID_MAX];  /* GR_SLOT lease, GR_RESERVE reservation; "" = none */
    char msg[300];
} gate_reply;

static void reserve(attempt *a);
static void next_probe(attempt *a);

static const char *hop_provider(const attempt *a)
{
    return plan_hop(a->plan)->provider;
}

/* How long a shared slot or probe is leased: longer than the request may take. */
static long lease_ms(const attempt *a)
{
    long t = a->plan->tier->timeout_ms > 0 ? a->plan->tier->timeout_ms : 600000;
    long ms = t + LEASE_MIN_MS;
    return ms > 3600000 ? 3600000 : ms;
}

/* A limit cut to this host's share (at least 1). */
static int share_of(int limit, double share)
{
    int n = (int)floor(limit * share);
    return n < 1 ? 1 : n;
}

/* ---- replies from the shared thread ---- */

/* Give back what a reply granted but nobody will use (the attempt was cancelled, or the
 * loop is gone).  Any thread. */
static void drop_grant(gate_reply *rp, const char *provider, const char *model)
{
    shared *sh = cluster_shared();
    if (!sh || rp->status != 0)
        return;
    if (rp->what == GR_SLOT && rp->id[0])
        shared_slot_release(sh, provider, rp->id, NULL);
    else if (rp->what == GR_RESERVE && rp->id[0])
        shared_release(sh, rp->id, NULL, NULL, NULL);
    else if (rp->what == GR_PROBE && rp->granted)
        shared_probe_release(sh, provider, rp->probe_bit == PROBE_MODEL ? model : NULL, NULL);
}

/* A request that ended without what it asked for. */
static void shared_failed(attempt *a, int status, const char *msg)
{
    if (status == ECANCELED) {
        runner_finish_simple(a, AR_SKIPPED, "routefs is stopping", 0);
        return;
    }
    LOG_DEBUG("%s: shared state: %s; trying again in %d ms", a->plan->key,
              msg && *msg ? msg : strerror(status), SHARED_WAIT_MS);
    runner_back_off(a, SHARED_WAIT_MS);
}

static void shared_round(attempt *a);
static void shared_round_done(attempt *a);

/* Loop thread: the attempt goes on with the reply. */
static void on_reply(void *ud)
{
    gate_reply *rp = ud;
    attempt *a = rp->a;
    if (rp->what == GR_PROBE) {
        a->phase = AT_NEW;
        if (runner_is_cancelled(a)) {
            drop_grant(rp, hop_provider(a), plan_hop(a->plan)->model);
            runner_finish_simple(a, AR_CANCELLED, "cancelled", 0);
        } else if (rp->status != 0) {
            shared_failed(a, rp->status, rp->msg);
        } else if (!rp->granted) {
            char why[400];
            snprintf(why, sizeof why, "another host is probing %s%s%s", hop_provider(a),
                     rp->probe_bit == PROBE_MODEL ? "/" : "",
                     rp->probe_bit == PROBE_MODEL ? plan_hop(a->plan)->model : "");
            runner_finish_simple(a, AR_SKIPPED, why, PROBE_BUSY_DELAY_MS);
        } else {
            a->probes |= rp->probe_bit;
            next_probe(a);
        }
    } else {
        /* One of a round: what it granted is held by the attempt at once (so that every
         * way out gives it back), the decision waits for the last reply. */
        if (rp->what == GR_SLOT) {
            a->slot_status = rp->status;
            a->slot_retry_ms = rp->ms;
            if (rp->status == 0)
                snprintf(a->shared_lease, sizeof a->shared_lease, "%s", rp->id);
        } else if (rp->what == GR_RATE) {
            a->rate_status = rp->status;
            a->rate_wait_ms = rp->ms;
            a->rate_booked = rp->status == 0;
        } else {
            a->res_status = rp->status;
            snprintf(a->res_msg, sizeof a->res_msg, "%s", rp->msg);
            if (rp->status == 0)
                snprintf(a->shared_res, sizeof a->shared_res, "%s", rp->id);
        }
        if (--a->shared_pending == 0) {
            a->phase = AT_NEW;
            shared_round_done(a);
        }
    }
    free(rp);
    runner_release(a);   /* the reply's reference */
}

/* Shared thread: copy is done by the callers below; hop to the loop. */
static void hop_to_loop(gate_reply *rp)
{
    rf_err err;
    if (upstream_after(rn.d.up, 0, on_reply, rp, &err) >= 0)
        return;
    /* The loop is gone (stopping): nothing will use what was granted. */
    attempt *a = rp->a;
    if (a->plan)
        drop_grant(rp, hop_provider(a), plan_hop(a->plan)->model);
    free(rp);
    runner_release(a);
}

static void on_slot(void *ud, int status, const char *lease_id, long retry_ms)
{
    gate_reply *rp = ud;
    rp->status = status;
    rp->ms = retry_ms;
    snprintf(rp->id, sizeof rp->id, "%s", status == 0 && lease_id ? lease_id : "");
    hop_to_loop(rp);
}

static void on_rate(void *ud, int status, long wait_ms)
{
    gate_reply *rp = ud;
    rp->status = status;
    rp->ms = wait_ms;
    hop_to_loop(rp);
}

static void on_probe(void *ud, int status, int granted)
{
    gate_reply *rp = ud;
    rp->status = status;
    rp->granted = status == 0 && granted;
    hop_to_loop(rp);
}

static void on_reserve(void *ud, int status, const char *reservation_id, const char *msg)
{
    gate_reply *rp = ud;
    rp->status = status;
    snprintf(rp->id, sizeof rp->id, "%s", status == 0 && reservation_id ? reservation_id : "");
    snprintf(rp->msg, sizeof rp->msg, "%s", msg ? msg : "");
    hop_to_loop(rp);
}

/* A reply record holding a reference; the attempt waits for it. */
static gate_reply *reply_new(attempt *a, gate_request what)
{
    gate_reply *rp = calloc(1, sizeof *rp);
    if (!rp)
        return NULL;
    rp->a = a;
    rp->what = what;
    __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    a->phase = AT_WAIT_SHARED;
    return rp;
}

/* The request could not be queued (no callback will come): undo reply_new. */
static void reply_unsent(attempt *a, gate_reply *rp, const rf_err *err)
{
    free(rp);
    a->phase = AT_NEW;
    __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);   /* the runner's remains */
    shared_failed(a, err ? err->code : ENOMEM, err ? err->msg : "out of memory");
}

/* A request of a round could not be queued (rp NULL: out of memory): no callback will
 * come.  Its outcome is the error.  Returns 1 (the round stops queueing). */
static int reply_failed(attempt *a, gate_reply *rp, int *status, const rf_err *err)
{
    if (rp) {
        free(rp);
        __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL);   /* the runner's remains */
    }
    *status = rp && err && err->code ? err->code : ENOMEM;
    return 1;
}

/* ---- limits ---- */

/* Give back the local in-flight slot; the longest-waiting attempt on that provider goes on. */
static void release_local_slot(attempt *a)
{
    if (!a->slot_provider)
        return;
    char *provider = a->slot_provider;
    a->slot_provider = NULL;
    if (rn.limits) {
        plimit_release_slot(rn.limits, provider);
        attempt *w;
        while ((w = plimit_next_waiter(rn.limits, provider))) {
            int go = w->phase == AT_WAIT_SLOT;
            rf_err err;
            if (go && upstream_after(rn.d.up, 0, runner_step_begin, w, &err) > 0) {
                w->phase = AT_TIMER;
                break;
            }
            if (go)
                LOG_ERROR("cannot resume a request: %s", err.msg);
        }
    }
    free(provider);
}

/* The send time under the provider's rpm, locally, then on to the send step.  With shared
 * state the booking is made with the reservation instead (shared_round). */
static void book_rate(attempt *a, const rf_provider *p, cluster_posture pos, double share)
{
    if (!p->rpm || pos == CLUSTER_ON) {
        runner_step_send(a);
        return;
    }
    int rpm = pos == CLUSTER_LOCAL ? share_of(p->rpm, share) : p->rpm;
    long delay = rn.limits ? plimit_book_send(rn.limits, p->name, rpm, now_mono_ms()) : 0;
    if (delay > 0)
        runner_arm(a, delay, runner_step_send);
    else
        runner_step_send(a);
}

void gates_limits(attempt *a)
{
    const rf_provider *p = config_provider(a->plan->route_cfg, hop_provider(a));
    if (!p || (!p->rpm && !p->max_concurrent)) {
        runner_step_send(a);
        return;
    }
    double share;
    cluster_posture pos = cluster_now(&share);
    if (pos == CLUSTER_WAIT) {
        runner_back_off(a, SHARED_WAIT_MS);   /* the limits hold across hosts: wait for Redis */
        return;
    }
    if (p->max_concurrent && rn.limits && !a->slot_provider) {
        int limit = pos == CLUSTER_LOCAL ? share_of(p->max_concurrent, share) : p->max_concurrent;
        if (!plimit_take_slot(rn.limits, p->name, limit)) {
            if (plimit_wait(rn.limits, p->name, a) == 0) {
                a->phase = AT_WAIT_SLOT;   /* release_local_slot of another resumes us */
                return;
            }
            runner_finish_simple(a, AR_SKIPPED, "out of memory waiting for a provider slot", 0);
            return;
        }
        if (!(a->slot_provider = strdup(p->name))) {
            plimit_release_slot(rn.limits, p->name);
            runner_finish_simple(a, AR_SKIPPED, "out of memory", 0);
            return;
        }
    }
    book_rate(a, p, pos, share);
}

/* ---- probes and reservations ---- */

/* Claim, one at a time, the probes of the hop's breakers that another host opened and
 * nobody has closed; then reserve. */
static void next_probe(attempt *a)
{
    shared *sh = cluster_shared();
    const rf_hop *hop = plan_hop(a->plan);
    int bit = 0;
    if (sh && cluster_now(NULL) == CLUSTER_ON) {
        if (!(a->probes & PROBE_PROVIDER) &&
            shared_breaker_state(sh, hop->provider, NULL, NULL) == SHARED_BREAKER_EXPIRED)
            bit = PROBE_PROVIDER;
        else if (!(a->probes & PROBE_MODEL) &&
                 shared_breaker_state(sh, hop->provider, hop->model, NULL) ==
                     SHARED_BREAKER_EXPIRED)
            bit = PROBE_MODEL;
    }
    if (!bit) {
        reserve(a);
        return;
    }
    rf_err err;
    gate_reply *rp = reply_new(a, GR_PROBE);
    if (!rp) {
        runner_finish_simple(a, AR_SKIPPED, "out of memory", 0);
        return;
    }
    rp->probe_bit = bit;
    if (shared_probe_claim(sh, hop->provider, bit == PROBE_MODEL ? hop->model : NULL,
                           lease_ms(a), on_probe, rp, &err) < 0)
        reply_unsent(a, rp, &err);
}

void gates_probe_and_reserve(attempt *a)
{
    next_probe(a);
}

/* With OpenRouter's "models" the request may be served by any of the models it names:
 * the reservation prices the dearest.  A model with no price while prices are needed
 * ends the list there (its hop is then tried, and refused, on its own). */
static void cover_priced(attempt *a, const rf_config *cfg, int need_price)
{
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    runner_plan_models(a, config_provider(pl->route_cfg, hop->provider));
    for (size_t i = 1; i < a->n_models; i++) {
        hop_price p;
        if (prices_lookup(cfg, hop->provider, a->models[i], &p)) {
            if (!a->priced)
                continue;   /* the first is unpriced: the worst case is unknown anyway */
            if (p.prompt_per_m > a->price.prompt_per_m)
                a->price.prompt_per_m = p.prompt_per_m;
            if (p.completion_per_m > a->price.completion_per_m)
                a->price.completion_per_m = p.completion_per_m;
            if (p.request_usd > a->price.request_usd)
                a->price.request_usd = p.request_usd;
            continue;
        }
        if (!need_price)
            continue;
        size_t covered = 1;   /* the route hops before models[i] */
        while (pl->hop_index + covered < pl->tier->route_len &&
               pl->tier->route[pl->hop_index + covered].model != a->models[i])
            covered++;
        a->n_models = i;
        a->hops_covered = (int)covered;
        break;
    }
}

/* The price and the reservation, under the caps and prices in force now; then send. */
static void reserve(attempt *a)
{
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    char why[600];
    if (budget_provider_blocked(rn.d.budget, hop->provider, why, sizeof why)) {
        runner_finish_simple(a, AR_SKIPPED, why, 0);   /* its money is gone until its reset */
        return;
    }
    rf_config *now = rn.d.current_config ? rn.d.current_config() : NULL;
    const rf_config *cfg = now ? now : pl->route_cfg;
    a->priced = prices_lookup(cfg, hop->provider, hop->model, &a->price);
    int capped = budget_caps_apply(cfg, pl->tier_name);
    cover_priced(a, cfg, capped || pl->tier->require_price);
    a->max_tokens = openai_effective_max_tokens(pl->prompt->data, pl->prompt->len,
                                                pl->tier->max_tokens);
    if (!a->priced && (capped || pl->tier->require_price)) {
        cost_unpriced_reason(why, sizeof why, hop->provider, hop->model, capped);
        config_unref(now);
        runner_finish_simple(a, AR_SKIPPED, why, 0);
        return;
    }
    a->worst_usd = budget_worst_case(a->priced ? &a->price : NULL, pl->prompt->len, a->max_tokens);
    double share;
    cluster_posture pos = cluster_now(&share);
    if (capped && pos == CLUSTER_WAIT) {
        config_unref(now);
        runner_back_off(a, SHARED_WAIT_MS);   /* a shared cap cannot be checked: send nothing */
        return;
    }
    rf_err err;
    rf_err_clear(&err);
    long id = budget_reserve_share(rn.d.budget, cfg, pl->tier_name, a->worst_usd,
                                   pos == CLUSTER_LOCAL ? share : 1.0, &err);
    if (id < 0 && err.code != EAGAIN && a->hops_covered > 1) {
        /* the dearest of OpenRouter's "models" does not fit: the hop's own model alone may */
        a->priced = prices_lookup(cfg, hop->provider, hop->model, &a->price);
        a->n_models = 1;
        a->hops_covered = 1;
        a->worst_usd = budget_worst_case(a->priced ? &a->price : NULL, pl->prompt->len,
                                         a->max_tokens);
        rf_err_clear(&err);
        id = budget_reserve_share(rn.d.budget, cfg, pl->tier_name, a->worst_usd,
                                  pos == CLUSTER_LOCAL ? share : 1.0, &err);
    }
    a->shared_spend = pos != CLUSTER_OFF && cluster_caps(cfg, pl->tier_name, &a->caps, NULL) == 0;
    config_unref(now);
    if (id < 0) {
        if (err.code == EAGAIN)
            runner_back_off(a, BUDGET_WAIT_MS);   /* fits once requests in flight settle */
        else
            runner_finish_simple(a, AR_REFUSED, err.msg, 0);   /* a cap would break */
        return;
    }
    a->reservation = id;
    int64_t nusd = cost_usd_to_nusd(a->worst_usd);
    const rf_provider *p = config_provider(pl->route_cfg, hop->provider);
    if (p && p->kind == RF_KIND_OPENROUTER &&
        keycap_reserve(hop->provider, nusd, &a->key_held, &err) < 0) {
        if (err.code == EAGAIN)
            runner_back_off(a, BUDGET_WAIT_MS);   /* fits once the key's requests settle */
        else   /* the key cannot pay for it: another hop may */
            runner_finish_simple(a, AR_SKIPPED, err.msg, 0);
        return;
    }
    a->res_status = 0;
    a->res_msg[0] = '\0';
    a->shared_res_wanted = capped && pos == CLUSTER_ON && a->shared_spend && nusd > 0;
    a->shared_res_nusd = nusd > SHARED_NUSD_MAX ? SHARED_NUSD_MAX : nusd;
    if (pos == CLUSTER_ON)
        shared_round(a);
    else
        runner_send_request(a);
}

/* ---- the shared round trips ---- */

/* The wait the shared rpm booked is over: send. */
static void send_after_rate_wait(void *ud)
{
    attempt *a = ud;
    a->timer_id = 0;
    if (runner_is_cancelled(a))
        runner_finish_simple(a, AR_CANCELLED, "cancelled", 0);
    else
        runner_send_request(a);
}

/* Queue what the attempt still needs from the shared state, together: one round trip. */
static void shared_round(attempt *a)
{
    const rf_provider *p = config_provider(a->plan->route_cfg, hop_provider(a));
    shared *sh = cluster_shared();
    int need_slot = p && p->max_concurrent && !a->shared_lease[0];
    int need_res = a->shared_res_wanted && !a->shared_res[0];
    int need_rate = p && p->rpm && !a->rate_booked && !need_slot;
    if (!sh || (!need_slot && !need_res && !need_rate)) {
        if (a->rate_booked && a->rate_wait_ms > 0)
            runner_arm(a, a->rate_wait_ms, send_after_rate_wait);
        else
            runner_send_request(a);
        return;
    }
    a->slot_status = a->rate_status = a->res_status = 0;
    a->shared_pending = 1;   /* held while queueing: replies may come back meanwhile */
    rf_err err;
    rf_err_clear(&err);
    gate_reply *rp;
    int failed = 0;
    if (need_slot && !failed) {
        if (!(rp = reply_new(a, GR_SLOT)) ||
            shared_slot_acquire(sh, p->name, p->max_concurrent, lease_ms(a), on_slot, rp, &err) < 0)
            failed = reply_failed(a, rp, &a->slot_status, &err);
        else
            a->shared_pending++;
    }
    if (need_rate && !failed) {
        if (!(rp = reply_new(a, GR_RATE)) ||
            shared_rate_acquire(sh, p->name, p->rpm, on_rate, rp, &err) < 0)
            failed = reply_failed(a, rp, &a->rate_status, &err);
        else
            a->shared_pending++;
    }
    if (need_res && !failed) {
        if (!(rp = reply_new(a, GR_RESERVE)) ||
            shared_reserve(sh, &a->caps, a->shared_res_nusd, on_reserve, rp, &err) < 0)
            failed = reply_failed(a, rp, &a->res_status, &err);
        else
            a->shared_pending++;
    }
    if (--a->shared_pending == 0)
        shared_round_done(a);   /* every reply is in already, or nothing went out */
    else
        a->phase = AT_WAIT_SHARED;
}

/* Every reply of a round is in: go on, wait, or give up. */
static void shared_round_done(attempt *a)
{
    int worst = a->slot_status == ECANCELED || a->rate_status == ECANCELED ||
                a->res_status == ECANCELED;
    if (runner_is_cancelled(a)) {
        runner_finish_simple(a, AR_CANCELLED, "cancelled", 0);
    } else if (worst) {
        runner_finish_simple(a, AR_SKIPPED, "routefs is stopping", 0);
    } else if (a->res_status == EDQUOT) {
        runner_finish_simple(a, AR_REFUSED, a->res_msg, 0);   /* a shared cap would break */
    } else if (a->slot_status == EAGAIN) {
        long wait = a->slot_retry_ms < 50 ? 50 : a->slot_retry_ms > 1000 ? 1000 : a->slot_retry_ms;
        runner_back_off(a, wait);   /* every host's slots are taken */
    } else if (a->res_status == EAGAIN) {
        runner_back_off(a, BUDGET_WAIT_MS);   /* fits once other hosts' requests settle */
    } else if (a->slot_status || a->rate_status || a->res_status) {
        int st = a->slot_status ? a->slot_status : a->rate_status ? a->rate_status : a->res_status;
        shared_failed(a, st, a->res_status ? a->res_msg : NULL);
    } else {
        shared_round(a);   /* the rpm booking once the slot is held, or the send */
    }
}

/* ---- after the answer ---- */

void gates_settle(attempt *a, const ledger_row *row)
{
    budget_settle(rn.d.budget, a->reservation, row);
    a->reservation = 0;
    keycap_settle(hop_provider(a), a->key_held,
                  row->has_cost && row->cost_nusd > 0 ? row->cost_nusd : 0);
    a->key_held = 0;
    shared *sh = cluster_shared();
    if (!a->shared_spend || !sh)
        return;
    int64_t nusd = row->has_cost && row->cost_nusd > 0 ? row->cost_nusd : 0;
    if (nusd > SHARED_NUSD_MAX)
        nusd = SHARED_NUSD_MAX;
    rf_err err;
    if ((a->shared_res[0] || nusd > 0) &&
        shared_settle(sh, a->shared_res[0] ? a->shared_res : NULL, nusd, &a->caps, NULL, NULL,
                      &err) < 0)
        LOG_ERROR("%s: $%.6f spent is missing from the shared windows: %s", a->plan->key,
                  cost_nusd_to_usd(nusd), err.msg);
    a->shared_res[0] = '\0';
}

void gates_probe_done(attempt *a, int provider_ok, int model_ok, long cooldown_ms,
                      const char *why)
{
    shared *sh = cluster_shared();
    if (!sh)
        return;
    const rf_hop *hop = plan_hop(a->plan);
    int64_t until = now_wall_ms() + (cooldown_ms > 0 ? cooldown_ms : 30000);
    rf_err err;
    if ((a->probes & PROBE_PROVIDER) &&
        shared_breaker_publish(sh, hop->provider, NULL, !provider_ok, until,
                               provider_ok ? NULL : why, &err) < 0)
        LOG_WARN("shared: cannot publish the probe of %s: %s", hop->provider, err.msg);
    if ((a->probes & PROBE_MODEL) &&
        shared_breaker_publish(sh, hop->provider, hop->model, !model_ok, until,
                               model_ok ? NULL : why, &err) < 0)
        LOG_WARN("shared: cannot publish the probe of %s/%s: %s", hop->provider, hop->model,
                 err.msg);
}

void gates_release(attempt *a)
{
    shared *sh = cluster_shared();
    const char *provider = a->plan ? hop_provider(a) : NULL;
    release_local_slot(a);
    if (a->reservation) {
        budget_release(rn.d.budget, a->reservation);
        a->reservation = 0;
    }
    if (a->key_held && provider)
        keycap_settle(provider, a->key_held, 0);
    a->key_held = 0;
    if (sh && provider) {
        if (a->shared_lease[0])
            shared_slot_release(sh, provider, a->shared_lease, NULL);
        if (a->shared_res[0])
            shared_release(sh, a->shared_res, NULL, NULL, NULL);
        if (a->probes & PROBE_PROVIDER)
            shared_probe_release(sh, provider, NULL, NULL);
        if (a->probes & PROBE_MODEL)
            shared_probe_release(sh, provider, plan_hop(a->plan)->model, NULL);
    }
    a->shared_lease[0] = a->shared_res[0] = '\0';
    a->probes = 0;
}
