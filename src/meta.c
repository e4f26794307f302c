/* meta.c — a job as JSON: NAME.meta (pretty), its activity.jsonl line (compact) and its
 * events line.  One writer serves the first two so they never disagree; written straight
 * to text (jsonw.h), as each finished job writes all three.  Callers hold the jobs lock. */
#include "job.h"
#include "cost.h"
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>

static void put_time(jsonw *w, const char *key, int64_t ms)
{
    char buf[40];
    if (!ms) {
        jw_null(w, key);
        return;
    }
    format_time_ms(ms, buf, sizeof buf);
    jw_str(w, key, buf);
}

static void put_hops(jsonw *w, const job *j)
{
    jw_open(w, "hops", '[');
    for (size_t i = 0; i < j->nhops; i++) {
        const job_hop *h = &j->hops[i];
        jw_open(w, NULL, '{');
        jw_str(w, "provider", h->provider);
        jw_str(w, "model", h->model);
        if (h->status != 0)
            jw_int(w, "status", h->status);
        else
            jw_null(w, "status");
        jw_str(w, "error", h->error);
        jw_int(w, "latency_ms", h->latency_ms);
        jw_int(w, "attempt", h->attempt);
        put_time(w, "at", h->at_ms);
        if (h->tokens >= 0)
            jw_int(w, "tokens", h->tokens);
        /* what OpenRouter said about the providers it tried (JSON that parsed when the
         * hop was recorded: a failed parse here is no memory) */
        if (h->detail)
            jw_json(w, "openrouter", h->detail);
        jw_close(w);
    }
    jw_close(w);
}

/* The job as one JSON object: the meta (with the route), or its activity line (without
 * it: the hops say what happened; with the time it was written). */
static void job_write(jsonw *w, const job *j, int activity)
{
    jw_open(w, NULL, '{');
    jw_str(w, "file", j->name);
    jw_str(w, "tier", j->tier_name);
    jw_str(w, "tag", j->tag);
    jw_str(w, "state", job_state_name(j->state));
    if (!activity) {
        jw_open(w, "route", '[');
        for (size_t i = 0; j->tier && i < j->tier->route_len; i++) {
            jw_open(w, NULL, '{');
            jw_str(w, "provider", j->tier->route[i].provider);
            jw_str(w, "model", j->tier->route[i].model);
            jw_close(w);
        }
        jw_close(w);
    }
    put_hops(w, j);
    jw_str(w, "provider", j->served_provider);
    jw_str(w, "endpoint", j->served_endpoint);
    jw_str(w, "model", j->served_model);
    if (j->service_tier)
        jw_str(w, "service_tier", j->service_tier);
    /* X-OpenRouter-Metadata: the answer's own, as cJSON printed it when it came (a failed
     * parse here is no memory) */
    if (j->or_metadata)
        jw_json(w, "openrouter_metadata", j->or_metadata);
    jw_bool(w, "fallback", j->fallback);
    jw_open(w, "tokens", '{');
    if (j->prompt_tokens >= 0)
        jw_int(w, "prompt", j->prompt_tokens);
    else
        jw_null(w, "prompt");
    if (j->completion_tokens >= 0)
        jw_int(w, "completion", j->completion_tokens);
    else
        jw_null(w, "completion");
    jw_close(w);
    if (j->has_cost)
        jw_num(w, "cost", cost_nusd_to_usd(j->cost_nusd));
    else
        jw_null(w, "cost");
    if (j->cost_estimated)
        jw_bool(w, "cost_estimated", 1);
    if (j->cost_note)
        jw_str(w, "cost_note", j->cost_note);
    if (j->state == JOB_RUNNING && j->live)
        jw_int(w, "tokens_so_far", live_tokens(j->live));
    put_time(w, "created_at", j->created_ms);
    put_time(w, "started_at", j->started_ms);
    put_time(w, "finished_at", j->finished_ms);
    if (j->state == JOB_PARKED) {
        put_time(w, "next_attempt_at", j->next_attempt_ms);
        jw_int(w, "park_count", j->park_count);
    }
    jw_str(w, "error", j->error);
    if (j->resent)
        jw_bool(w, "resent_after_crash", 1);
    if (j->ledger_ref)
        jw_str(w, "ledger_id", j->ledger_ref);
    if (j->prompt) {
        char hash[24];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)j->prompt_hash);
        jw_str(w, "prompt_hash", hash);
    }
    if (activity)
        put_time(w, "time", j->finished_ms ? j->finished_ms : now_wall_ms());
    jw_close(w);
}

char *job_meta_json(const job *j, int pretty)
{
    jsonw w;
    jw_init(&w, pretty);
    job_write(&w, j, 0);
    return jw_finish(&w, 1);
}

int job_meta_and_activity(const job *j, char **meta, char **activity)
{
    *meta = job_meta_json(j, 1);
    jsonw w;
    jw_init(&w, 0);
    job_write(&w, j, 1);
    *activity = jw_finish(&w, 1);   /* one line, with its '\n' */
    if (*meta && *activity)
        return 0;
    free(*meta);
    free(*activity);
    *meta = *activity = NULL;
    return -1;
}

char *job_event_line(const job *j)
{
    jsonw w;
    jw_init(&w, 0);
    jw_open(&w, NULL, '{');
    jw_str(&w, "path", j->key);
    jw_str(&w, "tier", j->tier_name);
    jw_str(&w, "tag", j->tag);
    jw_str(&w, "state", job_state_name(j->state));
    jw_str(&w, "provider", j->served_provider);
    jw_str(&w, "model", j->served_model);
    if (j->has_cost)
        jw_num(&w, "cost", cost_nusd_to_usd(j->cost_nusd));
    else
        jw_null(&w, "cost");
    jw_bool(&w, "fallback", j->fallback);
    jw_str(&w, "error", j->error);
    put_time(&w, "time", j->finished_ms ? j->finished_ms : now_wall_ms());
    jw_close(&w);
    return jw_finish(&w, 0);   /* the events stream adds its own newline */
}
