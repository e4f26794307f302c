/* jobs.c — see jobs.h.
 *
 * Every state change goes through job_set_state, under the lock.  Functions that run
 * under the lock never do I/O: they queue side effects (start or cancel an attempt, arm a
 * timer, submit a commit, record a state in the store, wake readers) on an `actions`
 * list that run_actions carries out once the lock is released.  Nothing here calls the
 * runner synchronously and the runner never calls back synchronously, so there is no
 * recursion between the two.
 *
 * A job holds a tier slot while RUNNING.  While the store is failing no queued job is
 * started (and the runner holds back sends), so no request goes out whose answer could
 * not be kept. */
#include "jobs_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "hmap.h"
#include "jobs_finish.h"
#include "log.h"
#include "metrics.h"
#include "openai.h"
#include "runner.h"
#include "store_ledger.h"

#define SWEEP_MS 1000          /* the watchdog: jobs a failed allocation left stranded */

typedef struct tier_slots {
    int running;               /* jobs RUNNING in this tier */
    job *queue_head, *queue_tail;
} tier_slots;

static struct {
    pthread_mutex_t lock;
    pthread_t owner;           /* the holder of the lock, for jobs_lock_held */
    int owned;
    jobs_deps d;
    pthread_mutex_t cfg_lock;  /* the current config: read without the jobs lock */
    rf_config *cfg;
    hmap *table;               /* key -> job */
    hmap *tiers;               /* tier name -> tier_slots */
    act *timers;               /* armed timers: upstream drops them unrun at its stop */
    int store_failing;
    int stopping;
    long resent;
} J = {.lock = PTHREAD_MUTEX_INITIALIZER, .cfg_lock = PTHREAD_MUTEX_INITIALIZER};

void jobs_lock(void)
{
    pthread_mutex_lock(&J.lock);
    J.owner = pthread_self();
    J.owned = 1;
}

void jobs_unlock(void)
{
    J.owned = 0;
    pthread_mutex_unlock(&J.lock);
}

int jobs_lock_held(void)
{
    return J.owned && pthread_equal(J.owner, pthread_self());
}

const char *job_state_name(job_state s)
{
    static const char *const names[] = {"writing", "queued", "running", "parked",
                                        "committing", "done", "failed"};
    return (unsigned)s <= JOB_FAILED ? names[s] : "unknown";
}

/* ---- side effects, carried out after the lock ---- */

act *act_add(actions *acts, act_kind kind)
{
    act *a = calloc(1, sizeof *a);
    if (!a) {
        LOG_ERROR("out of memory: a job waits for the watchdog");
        return NULL;
    }
    a->kind = kind;
    *acts->tail = a;
    acts->tail = &a->next;
    return a;
}

static void on_timer(void *ud);

/* The list of armed timers (lock held): jobs_shutdown frees what never fired. */
static void timer_link(act *a, int in)
{
    if (in) {
        a->tprev = NULL;
        if ((a->tnext = J.timers))
            J.timers->tprev = a;
        J.timers = a;
        return;
    }
    if (a->tprev)
        a->tprev->tnext = a->tnext;
    else if (J.timers == a)
        J.timers = a->tnext;
    if (a->tnext)
        a->tnext->tprev = a->tprev;
}

void run_actions(actions *acts)
{
    for (act *a = acts->head, *next; a; a = next) {
        next = a->next;
        switch (a->kind) {
        case A_GO:
            runner_go(a->att);
            break;
        case A_CANCEL:
            runner_cancel(a->att);
            runner_release(a->att);
            break;
        case A_RELEASE:
            runner_release(a->att);
            break;
        case A_TIMER: {
            rf_err err;
            jobs_lock();
            timer_link(a, 1);   /* before it can fire */
            jobs_unlock();
            if (upstream_after(J.d.up, a->delay_ms, on_timer, a, &err) > 0) {
                a = NULL;   /* the timer owns it now */
            } else {
                LOG_ERROR("cannot arm a timer: %s (the watchdog will retry)", err.msg);
                jobs_lock();
                timer_link(a, 0);
                if ((unsigned)a->j->timer_id == a->timer_seq)
                    a->j->timer_armed = 0;
                job_unref(a->j);
                jobs_unlock();
            }
            break;
        }
        case A_COMMIT:
            sl_submit(J.d.st, a->commit);
            break;
        case A_STATE:
            sp_set_state(J.d.st, a->key, a->gen, a->pstate, a->park_count, a->next_ms);
            break;
        case A_CHANGED:
            if (J.d.changed)
                J.d.changed(a->key);
            break;
        }
        if (a) {
            free(a->key);
            free(a);
        }
    }
    waiters_deliver(acts->wakes, J.d.wake, J.stopping);
    acts->head = NULL;
    acts->tail = &acts->head;
    acts->wakes = NULL;
}

void note_changed(actions *acts, const char *key)
{
    act *a = act_add(acts, A_CHANGED);
    if (a && !(a->key = strdup(key)))
        a->kind = A_RELEASE, a->att = NULL;   /* harmless no-op */
}

/* ---- the job record ---- */

void job_clear_outcome(job *j)
{
    for (size_t i = 0; i < j->nhops; i++) {
        free(j->hops[i].provider);
        free(j->hops[i].model);
        free(j->hops[i].error);
        free(j->hops[i].detail);
    }
    j->nhops = 0;
    free(j->served_provider);
    free(j->served_endpoint);
    free(j->served_model);
    free(j->generation_id);
    free(j->service_tier);
    free(j->or_metadata);
    free(j->error);
    free(j->content);
    free(j->cost_note);
    free(j->ledger_ref);
    j->served_provider = j->served_endpoint = j->served_model = j->error = NULL;
    j->content = j->cost_note = j->ledger_ref = NULL;
    j->content_len = 0;
    j->prompt_tokens = j->completion_tokens = -1;
    j->cost_nusd = 0;
    j->has_cost = j->cost_estimated = j->fallback = 0;
    j->hop_index = 0;
    j->hop_attempts = j->hop_sent = j->park_count = 0;
    j->next_attempt_ms = 0;
    j->started_ms = j->finished_ms = 0;
    j->resent = 0;
}

static void job_free(job *j)
{
    job_clear_outcome(j);
    free(j->hops);
    free(j->key);
    free(j->tier_name);
    free(j->tag);
    free(j->name);
    free(j->refusal);
    blob_unref(j->prompt);
    openai_free_names(j->params, j->nparams);
    config_unref(j->cfg);
    live_unref(j->live);
    free(j);
}

void job_unref(job *j)
{
    assert(jobs_lock_held());
    if (--j->refs == 0)
        job_free(j);
}

/* Split "tier/a/b/name" into the job's name fields (replacing old ones).  -1 on OOM. */
int job_set_key(job *j, const char *key)
{
    const char *first = strchr(key, '/'), *last = strrchr(key, '/');
    if (!first)
        return -1;
    char *k = strdup(key), *tier = strndup(key, (size_t)(first - key));
    char *name = strdup(last + 1);
    char *tag = last > first ? strndup(first + 1, (size_t)(last - first - 1)) : NULL;
    if (!k || !tier || !name || (last > first && !tag)) {
        free(k), free(tier), free(name), free(tag);
        return -1;
    }
    free(j->key), free(j->tier_name), free(j->name), free(j->tag);
    j->key = k, j->tier_name = tier, j->name = name, j->tag = tag;
    return 0;
}

/* The job for key, created (state WRITING, not yet anything) if absent.  Lock held. */
job *job_for_key(const char *key)
{
    if (!J.table)
        return NULL;   /* shut down: the store's last callbacks at unmount find nothing */
    job *j = hmap_get(J.table, key);
    if (j)
        return j;
    j = calloc(1, sizeof *j);
    if (!j || job_set_key(j, key) < 0 || hmap_put(J.table, key, j) < 0) {
        if (j)
            free(j->key), free(j->tier_name), free(j->name), free(j->tag);
        free(j);
        LOG_ERROR("out of memory tracking %s", key);
        return NULL;
    }
    j->refs = 1;
    j->in_table = 1;
    j->state = JOB_WRITING;
    j->prompt_tokens = j->completion_tokens = -1;
    j->created_ms = now_wall_ms();
    j->seed = (unsigned)(j->created_ms ^ (uintptr_t)j);
    return j;
}

hmap *jobs_table(void)
{
    return J.table;
}

rf_breakers *jobs_breakers(void)
{
    return J.d.breakers;
}

store *jobs_store(void)
{
    return J.d.st;
}

int jobs_stopping(void)
{
    return J.stopping;
}

long jobs_resent_count(int add)
{
    return __atomic_add_fetch(&J.resent, add, __ATOMIC_RELAXED);
}

int job_rekey(job *j, const char *to)
{
    assert(jobs_lock_held());
    hmap_del(J.table, j->key);
    if (job_set_key(j, to) == 0 && hmap_put(J.table, to, j) == 0)
        return 0;
    j->in_table = 0;
    return -1;
}

job *jobs_find(const char *key)
{
    assert(jobs_lock_held());
    return J.table ? hmap_get(J.table, key) : NULL;
}

job *jobs_find_attempt(const char *key, const attempt *att)
{
    assert(jobs_lock_held());
    job *j = jobs_find(key);
    if (j && j->attempt == att)
        return j;
    /* Renamed while the attempt ran (mv of a running prompt): the job has another key now.
     * Rare, and the table holds only active jobs: a walk. */
    for (hmap_iter it = {0}; J.table && hmap_next(J.table, &it);)
        if (((job *)it.value)->attempt == att)
            return it.value;
    return j;
}

/* ---- states, slots and queues ---- */

static tier_slots *slots_for(const char *tier)
{
    tier_slots *ts = hmap_get(J.tiers, tier);
    if (ts)
        return ts;
    if (!(ts = calloc(1, sizeof *ts)))
        return NULL;
    if (hmap_put(J.tiers, tier, ts) < 0) {
        free(ts);
        return NULL;
    }
    return ts;
}

static void queue_remove(job *j)
{
    tier_slots *ts = hmap_get(J.tiers, j->tier_name);
    job **pp = ts ? &ts->queue_head : NULL, *prev = NULL;
    while (pp && *pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->queue_next;
    }
    if (!pp || !*pp)
        return;
    *pp = j->queue_next;
    if (ts->queue_tail == j)
        ts->queue_tail = prev;
    j->queue_next = NULL;
    job_unref(j);   /* the queue's reference */
}

/* The one place a job's state changes.  Entering or leaving RUNNING takes or gives back
 * the tier slot; leaving QUEUED leaves the queue. */
void job_set_state(job *j, job_state to)
{
    assert(jobs_lock_held());
    job_state from = j->state;
    /* Allowed moves: anything may go back to WRITING (rewritten) or to DONE/FAILED on
     * the way out; otherwise forwards along the life of a job (a job that cannot start
     * fails straight from WRITING; a job parked before a remount parks again). */
    static const unsigned allowed[JOB_FAILED + 1] = {
        [JOB_WRITING] = 1u << JOB_QUEUED | 1u << JOB_PARKED | 1u << JOB_COMMITTING,
        [JOB_QUEUED] = 1u << JOB_RUNNING,
        [JOB_RUNNING] = 1u << JOB_PARKED | 1u << JOB_COMMITTING,
        [JOB_PARKED] = 1u << JOB_QUEUED,
        [JOB_COMMITTING] = 0,
    };
    assert(to == JOB_WRITING || to == JOB_DONE || to == JOB_FAILED ||
           (allowed[from] & (1u << to)));
    if (from == JOB_QUEUED && to != JOB_QUEUED)
        queue_remove(j);
    tier_slots *ts = hmap_get(J.tiers, j->tier_name);
    if (from == JOB_RUNNING && to != JOB_RUNNING && ts && ts->running > 0)
        ts->running--;
    if (to == JOB_RUNNING && from != JOB_RUNNING && ts)
        ts->running++;
    j->state = to;
}

static void dispatch_tier(const char *tier, actions *acts);

void enqueue(job *j, actions *acts)
{
    tier_slots *ts = slots_for(j->tier_name);
    if (!ts) {
        LOG_ERROR("out of memory queueing %s: the watchdog retries", j->key);
        return;
    }
    job_set_state(j, JOB_QUEUED);
    j->refs++;   /* the queue's reference */
    j->queue_next = NULL;
    if (ts->queue_tail)
        ts->queue_tail->queue_next = j;
    else
        ts->queue_head = j;
    ts->queue_tail = j;
    dispatch_tier(j->tier_name, acts);
}

/* Stop whatever the job has in flight: the attempt is cancelled, timers are disarmed
 * (they carry a sequence number), the queue and slot are left. */
void job_stop(job *j, actions *acts)
{
    if (j->attempt) {
        act *a = act_add(acts, A_CANCEL);
        if (a)
            a->att = j->attempt;
        j->attempt = NULL;
    }
    j->timer_id++;   /* a pending timer fires into nothing */
    if (j->state == JOB_QUEUED || j->state == JOB_RUNNING || j->state == JOB_PARKED)
        job_set_state(j, JOB_WRITING);
}

void table_remove(job *j)
{
    if (!j->in_table)
        return;
    hmap_del(J.table, j->key);
    j->in_table = 0;
    job_unref(j);   /* the table's reference */
}

/* ---- attempts ---- */

void arm_timer(job *j, long delay_ms, actions *acts)
{
    act *a = act_add(acts, A_TIMER);
    if (!a)
        return;   /* not armed: the watchdog sees it */
    a->j = j;
    a->delay_ms = delay_ms > 0 ? delay_ms : 0;
    a->timer_seq = (unsigned)++j->timer_id;
    j->timer_armed = 1;
    j->refs++;   /* the timer's reference */
}

/* Send the current hop now (lock held): a plan of copies for the runner. */
static void start_attempt(job *j, actions *acts)
{
    attempt_plan *p = calloc(1, sizeof *p);
    if (p) {
        p->key = strdup(j->key);
        p->tier_name = strdup(j->tier_name);
        p->tag = j->tag ? strdup(j->tag) : NULL;
        p->gen = j->gen;
        p->prompt = blob_ref(j->prompt);
        p->route_cfg = config_ref(j->cfg);
        p->tier = j->tier;
        p->hop_index = j->hop_index;
        p->attempt_no = j->hop_attempts + 1;
        p->seq = ++j->seq;
        if (!j->live)
            j->live = live_new();
        p->live = live_ref(j->live);
        if (j->nparams && (p->params = calloc(j->nparams, sizeof *p->params)))
            for (size_t i = 0; i < j->nparams; i++)
                if ((p->params[i] = strdup(j->params[i])))
                    p->nparams = i + 1;
    }
    if (!p || !p->key || !p->tier_name || (j->tag && !p->tag) || p->nparams != j->nparams) {
        attempt_plan_free(p);
        LOG_ERROR("%s: out of memory starting an attempt: the watchdog retries", j->key);
        return;
    }
    attempt *a = runner_new(p);
    if (!a)
        return;
    act *go = act_add(acts, A_GO);
    if (!go) {
        runner_cancel(a);   /* never started: its report comes and is dropped */
        runner_go(a);
        runner_release(a);
        return;
    }
    go->att = a;
    j->attempt = a;
}

/* Carry out a routing decision for a RUNNING job. */

static void job_begin_route(job *j, actions *acts)
{
    route_state s = {j->cfg, j->tier, 0, 0, 0, j->park_count, j->params, j->nparams, &j->seed};
    route_decision d;
    router_first(J.d.breakers, &s, now_mono_ms(), &d);
    j->hop_index = 0;
    j->hop_attempts = j->hop_sent = 0;
    job_apply_decision(j, &d, acts);
}

/* Whether a job of tier t (in cfg) may take a slot now: the tier's concurrency, or a fair
 * share of the sockets; nothing starts while the store fails or routefs stops. */
static int slot_free(const tier_slots *ts, const rf_config *cfg, const rf_tier *t)
{
    return !J.store_failing && !J.stopping &&
           (!ts || ts->running < upstream_tier_share(cfg, t));
}

static void dispatch_tier(const char *tier, actions *acts)
{
    tier_slots *ts = hmap_get(J.tiers, tier);
    while (ts && ts->queue_head && slot_free(ts, ts->queue_head->cfg, ts->queue_head->tier)) {
        job *j = ts->queue_head;
        job_set_state(j, JOB_RUNNING);   /* leaves the queue (drops its reference) */
        if (!j->started_ms)
            j->started_ms = now_wall_ms();
        job_begin_route(j, acts);
    }
}

int tier_would_start(const char *tier, const rf_config *cfg, const rf_tier *t)
{
    const tier_slots *ts = hmap_get(J.tiers, tier);
    return (!ts || !ts->queue_head) && slot_free(ts, cfg, t);
}

static void dispatch_all(actions *acts)
{
    for (hmap_iter it = {0}; J.tiers && hmap_next(J.tiers, &it);)
        dispatch_tier(it.key, acts);
}

/* Build and queue the commit of a COMMITTING job (again, after a failed allocation). */
void job_submit_commit(job *j, actions *acts)
{
    job_commit *c = jobs_finish_build(j);
    act *a = c ? act_add(acts, A_COMMIT) : NULL;
    if (!a) {
        job_commit_free(c);
        LOG_ERROR("%s: out of memory saving the result: the watchdog retries", j->key);
        return;
    }
    c->on_done = jobs_on_commit_done;
    c->ud = j;
    a->commit = c;
    j->commit_submitted = 1;
    j->refs++;   /* the commit's reference, dropped when it is durable */
}

/* The job's outcome is decided: hand it to the store.  Lock held. */
static void job_finish(job *j, actions *acts)
{
    char *tier = strdup(j->tier_name);
    job_set_state(j, JOB_COMMITTING);
    j->finished_ms = now_wall_ms();
    j->commit_submitted = 0;
    job_submit_commit(j, acts);
    if (tier)
        dispatch_tier(tier, acts);
    free(tier);
}

void job_fail(job *j, const char *why, actions *acts)
{
    free(j->error);
    j->error = strdup(why && *why ? why : "failed");
    job_finish(j, acts);
}

void job_apply_decision(job *j, const route_decision *d, actions *acts)
{
    const rf_tier *t = j->tier;
    switch (d->action) {
    case RD_SEND:
        if (d->fell_from >= 0) {
            breakers_note_fallback(J.d.breakers, t->route[d->fell_from].provider);
            metrics_fallback(j->tier_name, t->route[d->fell_from].provider);
        }
        if (d->new_hop) {
            j->hop_index = d->hop_index;
            j->hop_attempts = 0;
            j->hop_sent = 0;
        } else {
            j->hop_attempts++;
        }
        if (d->delay_ms > 0)
            arm_timer(j, d->delay_ms, acts);
        else
            start_attempt(j, acts);
        return;
    case RD_PARK: {
        j->park_count++;
        j->next_attempt_ms = now_wall_ms() + d->delay_ms;
        job_set_state(j, JOB_PARKED);
        LOG_WARN("%s: every hop failed; parked, next attempt in %ld s", j->key,
                 d->delay_ms / 1000);
        act *a = act_add(acts, A_STATE);
        if (a && (a->key = strdup(j->key))) {
            a->gen = j->gen;
            a->pstate = PS_PARKED;
            a->park_count = j->park_count;
            a->next_ms = j->next_attempt_ms;
        }
        arm_timer(j, d->delay_ms, acts);
        dispatch_tier(j->tier_name, acts);
        return;
    }
    case RD_EXHAUSTED: {
        char *msg = jobs_exhausted_message(j);
        job_fail(j, msg ? msg : "every hop failed", acts);
        free(msg);
        return;
    }
    case RD_FAIL:
    case RD_SUCCESS:
        job_finish(j, acts);   /* the caller filled the error or the answer */
        return;
    }
}

/* ---- timers ---- */

static void on_timer(void *ud)
{
    act *a = ud;
    job *j = a->j;
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    timer_link(a, 0);
    if (j->in_table && (unsigned)j->timer_id == a->timer_seq) {
        j->timer_armed = 0;
        if (j->state == JOB_RUNNING && !j->attempt)
            start_attempt(j, &acts);
        else if (j->state == JOB_PARKED)
            enqueue(j, &acts);
    }
    job_unref(j);
    jobs_unlock();
    free(a);
    run_actions(&acts);
}

/* ---- the store's health, the watchdog ---- */

void jobs_store_health(int failing, void *ud)
{
    if (failing) {
        metrics_store_failure();
    } else {
        /* Written once the store works again: a failing store keeps no events. */
        sl_event(J.d.st, "store_failing", NULL, NULL, "the state store failed, then recovered");
    }
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    J.store_failing = failing;
    if (!failing)
        dispatch_all(&acts);
    jobs_unlock();
    run_actions(&acts);
}

/* activity.jsonl keeps activity_days of history: checked hourly. */
#define PRUNE_EVERY_MS 3600000

static void prune_activity(void)
{
    static int64_t last;
    int64_t now = now_mono_ms();
    if (last && now - last < PRUNE_EVERY_MS)
        return;
    last = now;
    rf_config *cfg = jobs_config();
    int days = cfg ? cfg->activity_days : 90;
    config_unref(cfg);
    sl_activity_prune(J.d.st, now_wall_ms() - (int64_t)days * 86400000LL);
}

/* Jobs a failed allocation left with nothing to wake them get going again; the activity
 * log is pruned. */
static void watchdog(void *ud)
{
    prune_activity();
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    for (hmap_iter it = {0}; J.table && !J.stopping && hmap_next(J.table, &it);) {
        job *j = it.value;
        if (j->state == JOB_RUNNING && !j->attempt && !j->timer_armed)
            start_attempt(j, &acts);
        else if (j->state == JOB_PARKED && !j->timer_armed)
            arm_timer(j, (long)(j->next_attempt_ms - now_wall_ms()), &acts);
        else if (j->state == JOB_COMMITTING && !j->commit_submitted)
            job_submit_commit(j, &acts);
    }
    if (!J.stopping) {
        dispatch_all(&acts);
        waiters_sweep(&acts.wakes);
    }
    jobs_unlock();
    run_actions(&acts);
    rf_err err;
    if (!J.stopping && upstream_after(J.d.up, SWEEP_MS, watchdog, NULL, &err) < 0)
        LOG_ERROR("watchdog: %s", err.msg);
}

/* ---- init, config, shutdown ---- */

int jobs_init(const jobs_deps *deps, rf_err *err)
{
    J.d = *deps;
    J.table = hmap_new();
    J.tiers = hmap_new();
    if (!J.table || !J.tiers)
        return rf_err_set(err, ENOMEM, "out of memory");
    runner_init(&(runner_deps){.up = deps->up, .breakers = deps->breakers,
                               .budget = deps->budget, .store = deps->st,
                               .report = jobs_on_attempt_report, .current_config = jobs_config});
    store_set_health_listener(deps->st, jobs_store_health, NULL);
    if (upstream_after(deps->up, SWEEP_MS, watchdog, NULL, err) < 0)
        return -1;
    return 0;
}

void jobs_set_config(rf_config *cfg)
{
    pthread_mutex_lock(&J.cfg_lock);
    rf_config *old = J.cfg;
    J.cfg = config_ref(cfg);
    pthread_mutex_unlock(&J.cfg_lock);
    config_unref(old);
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    jobs_cancel_removed_tiers(cfg, &acts);
    dispatch_all(&acts);   /* a tier's concurrency may have grown */
    jobs_unlock();
    run_actions(&acts);
}

rf_config *jobs_config(void)
{
    pthread_mutex_lock(&J.cfg_lock);
    rf_config *c = J.cfg ? config_ref(J.cfg) : NULL;
    pthread_mutex_unlock(&J.cfg_lock);
    return c;
}

void jobs_shutdown(void)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    J.stopping = 1;
    for (hmap_iter it = {0}; J.table && hmap_next(J.table, &it);) {
        job *j = it.value;
        if (j->attempt) {
            /* the runner is stopped already: its handle just goes */
            act *a = act_add(&acts, A_RELEASE);
            if (a)
                a->att = j->attempt;
            j->attempt = NULL;
        }
        j->timer_id++;
    }
    waiters_collect_all(&acts.wakes);
    jobs_unlock();
    run_actions(&acts);   /* waiting readers get EINTR */
    events_shutdown();
    jobs_lock();
    for (hmap_iter it = {0}; J.tiers && hmap_next(J.tiers, &it);) {
        tier_slots *ts = it.value;
        while (ts->queue_head) {
            job *j = ts->queue_head;
            ts->queue_head = j->queue_next;
            job_unref(j);
        }
        free(ts);
    }
    hmap_free(J.tiers);
    J.tiers = NULL;
    while (J.timers) {   /* upstream is stopped: these never fire */
        act *a = J.timers;
        timer_link(a, 0);
        job_unref(a->j);
        free(a);
    }
    for (hmap_iter it = {0}; J.table && hmap_next(J.table, &it);) {
        job *j = it.value;
        j->in_table = 0;
        job_unref(j);
    }
    hmap_free(J.table);
    J.table = NULL;
    jobs_unlock();
    pthread_mutex_lock(&J.cfg_lock);
    config_unref(J.cfg);
    J.cfg = NULL;
    pthread_mutex_unlock(&J.cfg_lock);
}
