/* meta.c — a job as JSON: NAME.meta (pretty) and its activity.jsonl line (compact).
 * One builder serves both so the two never disagree.  Callers hold the jobs lock. */
#include "jsonfmt.h"
#include "job.h"
#include "cost.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Building a document: every add is checked, and one that fails (no memory) marks the
 * whole document failed, so a meta is complete or not written at all.  put() takes
 * ownership of v (NULL: a failed create). */
typedef struct doc {
    int ok;
} doc;

static cJSON *put(doc *d, cJSON *o, const char *key, cJSON *v)
{
    if (!v || !o || !(key ? cJSON_AddItemToObject(o, key, v) : cJSON_AddItemToArray(o, v))) {
        cJSON_Delete(v);
        d->ok = 0;
        return NULL;
    }
    return v;
}

static cJSON *time_or_null(int64_t ms)
{
    if (!ms)
        return cJSON_CreateNull();
    char buf[40];
    format_time_ms(ms, buf, sizeof buf);
    return cJSON_CreateString(buf);
}

static cJSON *string_or_null(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *number_or_null(int present, double v)
{
    return present ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static void put_hops(doc *d, cJSON *o, const job *j)
{
    cJSON *arr = put(d, o, "hops", cJSON_CreateArray());
    for (size_t i = 0; arr && i < j->nhops; i++) {
        const job_hop *h = &j->hops[i];
        cJSON *e = put(d, arr, NULL, cJSON_CreateObject());
        if (!e)
            return;
        put(d, e, "provider", cJSON_CreateString(h->provider));
        put(d, e, "model", cJSON_CreateString(h->model));
        put(d, e, "status", number_or_null(h->status != 0, (double)h->status));
        put(d, e, "error", string_or_null(h->error));
        put(d, e, "latency_ms", cJSON_CreateNumber((double)h->latency_ms));
        put(d, e, "attempt", cJSON_CreateNumber(h->attempt));
        put(d, e, "at", time_or_null(h->at_ms));
        if (h->tokens >= 0)
            put(d, e, "tokens", cJSON_CreateNumber((double)h->tokens));
        /* what OpenRouter said about the providers it tried (JSON that parsed when the
         * hop was recorded: a failed parse here is no memory) */
        if (h->detail)
            put(d, e, "openrouter", cJSON_Parse(h->detail));
    }
}

/* The fields both forms share; NULL when out of memory. */
static cJSON *job_json(const job *j)
{
    doc d = {.ok = 1};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    put(&d, o, "file", cJSON_CreateString(j->name));
    put(&d, o, "tier", cJSON_CreateString(j->tier_name));
    put(&d, o, "tag", string_or_null(j->tag));
    put(&d, o, "state", cJSON_CreateString(job_state_name(j->state)));
    cJSON *route = put(&d, o, "route", cJSON_CreateArray());
    for (size_t i = 0; route && j->tier && i < j->tier->route_len; i++) {
        cJSON *h = put(&d, route, NULL, cJSON_CreateObject());
        if (!h)
            break;
        put(&d, h, "provider", cJSON_CreateString(j->tier->route[i].provider));
        put(&d, h, "model", cJSON_CreateString(j->tier->route[i].model));
    }
    put_hops(&d, o, j);
    put(&d, o, "provider", string_or_null(j->served_provider));
    put(&d, o, "endpoint", string_or_null(j->served_endpoint));
    put(&d, o, "model", string_or_null(j->served_model));
    if (j->service_tier)
        put(&d, o, "service_tier", cJSON_CreateString(j->service_tier));
    /* X-OpenRouter-Metadata: the answer's own, as cJSON printed it when it came (a failed
     * parse here is no memory) */
    if (j->or_metadata)
        put(&d, o, "openrouter_metadata", cJSON_Parse(j->or_metadata));
    put(&d, o, "fallback", cJSON_CreateBool(j->fallback));
    cJSON *t = put(&d, o, "tokens", cJSON_CreateObject());
    if (t) {
        put(&d, t, "prompt", number_or_null(j->prompt_tokens >= 0, (double)j->prompt_tokens));
        put(&d, t, "completion",
            number_or_null(j->completion_tokens >= 0, (double)j->completion_tokens));
    }
    put(&d, o, "cost", number_or_null(j->has_cost, cost_nusd_to_usd(j->cost_nusd)));
    if (j->cost_estimated)
        put(&d, o, "cost_estimated", cJSON_CreateTrue());
    if (j->cost_note)
        put(&d, o, "cost_note", cJSON_CreateString(j->cost_note));
    if (j->state == JOB_RUNNING && j->live)
        put(&d, o, "tokens_so_far", cJSON_CreateNumber((double)live_tokens(j->live)));
    put(&d, o, "created_at", time_or_null(j->created_ms));
    put(&d, o, "started_at", time_or_null(j->started_ms));
    put(&d, o, "finished_at", time_or_null(j->finished_ms));
    if (j->state == JOB_PARKED) {
        put(&d, o, "next_attempt_at", time_or_null(j->next_attempt_ms));
        put(&d, o, "park_count", cJSON_CreateNumber(j->park_count));
    }
    put(&d, o, "error", string_or_null(j->error));
    if (j->resent)
        put(&d, o, "resent_after_crash", cJSON_CreateTrue());
    if (j->ledger_ref)
        put(&d, o, "ledger_id", cJSON_CreateString(j->ledger_ref));
    if (j->prompt) {
        char hash[24];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)j->prompt_hash);
        put(&d, o, "prompt_hash", cJSON_CreateString(hash));
    }
    if (!d.ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *job_meta_json(const job *j, int pretty)
{
    cJSON *o = job_json(j);
    if (!o)
        return NULL;
    char *text = json_print_line(o, pretty);
    cJSON_Delete(o);
    return text;
}

/* Both from one tree: the activity line is the meta without the route (the hops say
 * what happened), with the time it was written. */
int job_meta_and_activity(const job *j, char **meta, char **activity)
{
    *meta = *activity = NULL;
    cJSON *o = job_json(j);
    if (!o)
        return -1;
    *meta = json_print_line(o, 1);
    cJSON_DeleteItemFromObject(o, "route");
    char at[40];
    format_time_ms(j->finished_ms ? j->finished_ms : now_wall_ms(), at, sizeof at);
    doc d = {.ok = 1};
    if (put(&d, o, "time", cJSON_CreateString(at)))
        *activity = json_print_line(o, 0);   /* one line, with its '\n' */
    cJSON_Delete(o);
    if (*meta && *activity)
        return 0;
    free(*meta);
    free(*activity);
    *meta = *activity = NULL;
    return -1;
}

char *job_event_line(const job *j)
{
    doc d = {.ok = 1};
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char at[40];
    format_time_ms(j->finished_ms ? j->finished_ms : now_wall_ms(), at, sizeof at);
    put(&d, o, "path", cJSON_CreateString(j->key));
    put(&d, o, "tier", cJSON_CreateString(j->tier_name));
    put(&d, o, "tag", string_or_null(j->tag));
    put(&d, o, "state", cJSON_CreateString(job_state_name(j->state)));
    put(&d, o, "provider", string_or_null(j->served_provider));
    put(&d, o, "model", string_or_null(j->served_model));
    put(&d, o, "cost", number_or_null(j->has_cost, cost_nusd_to_usd(j->cost_nusd)));
    put(&d, o, "fallback", cJSON_CreateBool(j->fallback));
    put(&d, o, "error", string_or_null(j->error));
    put(&d, o, "time", cJSON_CreateString(at));
    char *text = d.ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}
