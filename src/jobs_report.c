/* jobs_report.c — what happens to a job when its attempt reports (the runner, on the
 * loop thread) and when its result is durable (the store's writer thread): the answer is
 * taken, the router decides what next, bills that belong to no result are committed
 * alone, and a finished job leaves the table, wakes its readers and publishes its event.
 * Part of the jobs module (jobs_int.h). */
#include "jobs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events.h"
#include "jobs_finish.h"
#include "log.h"
#include "metrics.h"
#include "openrouter.h"
#include "router.h"

/* ---- attempt reports (the runner, on the loop thread) ---- */

/* What an answer says about the job: the outcome fields the meta shows. */
static void take_answer(job *j, attempt_report *r, const rf_hop *hop)
{
    openai_completion *comp = &r->comp;
    j->content = comp->content;
    j->content_len = comp->content ? strlen(comp->content) : 0;
    comp->content = NULL;
    free(j->served_provider);
    free(j->served_endpoint);
    free(j->served_model);
    j->served_provider = strdup(comp->provider ? comp->provider : hop->provider);
    j->served_endpoint = strdup(hop->provider);
    j->served_model = strdup(comp->model ? comp->model : hop->model);
    free(j->generation_id);
    const rf_provider *p = config_provider(j->cfg, hop->provider);
    j->generation_id = p && p->kind == RF_KIND_OPENROUTER && comp->id ? strdup(comp->id) : NULL;
    free(j->service_tier);
    free(j->or_metadata);
    j->service_tier = comp->service_tier;   /* taken, as the content */
    j->or_metadata = comp->or_metadata;
    comp->service_tier = comp->or_metadata = NULL;
    j->prompt_tokens = comp->prompt_tokens;
    j->completion_tokens = comp->completion_tokens;
    j->fallback = j->hop_index > 0 || r->served_offset > 0;   /* or inside OpenRouter */
    if (r->billed) {
        j->has_cost = r->ledger.has_cost;
        j->cost_nusd = r->ledger.cost_nusd;
        j->cost_estimated = r->ledger.estimated;
        free(j->cost_note);
        j->cost_note = r->ledger.note ? strdup(r->ledger.note) : NULL;
        free(j->ledger_ref);
        j->ledger_ref = r->ledger.ref ? strdup(r->ledger.ref) : NULL;
        j->bill = r->ledger;
        memset(&r->ledger, 0, sizeof r->ledger);
        j->billed = 1;
        r->billed = 0;
    }
}

/* A bill that does not belong to a result (a stale or failed attempt): commit it alone. */
static void commit_bill_alone(attempt_report *r, actions *acts)
{
    if (!r->billed)
        return;
    job_commit *c = jobs_ledger_commit(&r->ledger);
    act *a = c ? act_add(acts, A_COMMIT) : NULL;
    if (a) {
        c->on_done = jobs_on_commit_done;
        a->commit = c;
    }
    else {
        job_commit_free(c);
        LOG_ERROR("out of memory: a billed request could not be recorded");
    }
    r->billed = 0;
}

void jobs_on_attempt_report(attempt *att, attempt_plan *plan, attempt_report *r)
{
    actions acts = ACTIONS_INIT(acts);
    jobs_lock();
    job *j = jobs_find_attempt(plan->key, att);
    int current = j && j->attempt == att && j->gen == plan->gen && j->state == JOB_RUNNING;
    if (!current) {
        commit_bill_alone(r, &acts);    /* billed all the same: the provider charged */
    } else {
        j->attempt = NULL;
        act *rel = act_add(&acts, A_RELEASE);
        if (rel)
            rel->att = att;
        else
            runner_release(att);   /* cannot be deferred: the runner keeps its own ref */
        const rf_hop *hop = &j->tier->route[j->hop_index];
        int success = r->kind == AR_ANSWER && r->outcome == RF_OUT_SUCCESS;
        if (!success)
            live_reset(j->live);   /* abandoned: NAME.live starts over now, not at the next send */
        if (r->kind == AR_ANSWER)
            j->hop_sent = 1;
        jobs_record_hop(j, hop->provider, hop->model, r->http_status, success ? NULL : r->error,
                        success ? NULL : r->error_detail, r->latency_ms, r->sent_ms, r->tokens);
        route_state s = {j->cfg, j->tier, j->hop_index, j->hop_attempts, j->hop_sent,
                         j->park_count, j->params, j->nparams, &j->seed};
        route_outcome o = {
            .event = r->kind == AR_SKIPPED ? RO_SKIPPED : r->kind == AR_REFUSED ? RO_REFUSED
                                                                                : RO_ANSWERED,
            .outcome = r->outcome, .timed_out = r->timed_out,
            .retry_after_ms = r->retry_after_ms, .retry_in_ms = r->retry_in_ms,
            .hops_covered = r->hops_covered,
        };
        route_decision d;
        router_after(jobs_breakers(), &s, &o, now_mono_ms(), &d);
        if (d.action == RD_SUCCESS)
            take_answer(j, r, hop);
        else
            commit_bill_alone(r, &acts);
        if (d.action == RD_FAIL) {
            char msg[900];
            if (r->kind == AR_REFUSED)
                snprintf(msg, sizeof msg, "%s", r->error);
            else
                snprintf(msg, sizeof msg, "%s/%s refused the request: %s", hop->provider,
                         hop->model, r->error);
            free(j->error);
            j->error = strdup(msg);
        }
        job_apply_decision(j, &d, &acts);
    }
    /* Not current: the job let go of this attempt (and of its reference) when it
     * cancelled it or moved on; the report only brings the bill. */
    jobs_unlock();
    attempt_plan_free(plan);
    attempt_report_clear(r);
    run_actions(&acts);
}

/* ---- commits (the store's writer thread) ---- */

void jobs_on_commit_done(job_commit *c, int status, const rf_err *err)
{
    job *j = c->ud;
    const char *publish = NULL;
    char *enrich_provider = NULL, *enrich_id = NULL;   /* owned copies */
    actions acts = ACTIONS_INIT(acts);
    if (status < 0)
        LOG_ERROR("%s: result not saved: %s", c->path ? c->path : "(ledger)",
                  err ? err->msg : "unknown error");
    jobs_lock();
    if (j) {
        if (j->in_table && j->gen == c->gen && j->state == JOB_COMMITTING) {
            int done = c->state == PS_DONE;
            job_set_state(j, done ? JOB_DONE : JOB_FAILED);
            metrics_job(j->tier_name, done ? "done" : "failed");
            waiters_collect(j, c->installed ? c->gen : 0, &acts.wakes);
            note_changed(&acts, j->key);
            table_remove(j);
            if (c->installed && c->event)
                publish = c->event;
            if (c->installed && done && j->generation_id && j->served_endpoint) {
                enrich_provider = strdup(j->served_endpoint);
                enrich_id = strdup(j->generation_id);
            }
        }
        job_unref(j);   /* the commit's reference */
    }
    jobs_unlock();
    if (publish)
        events_publish(publish, strlen(publish));   /* M/events readers */
    if (enrich_provider && enrich_id)   /* OpenRouter's own record, in the background */
        or_enrich(enrich_provider, enrich_id, c->gen);
    free(enrich_provider);
    free(enrich_id);
    run_actions(&acts);
}


