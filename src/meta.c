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

static cJSON *hops_json(const job *j)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < j->nhops; i++) {
        const job_hop *h = &j->hops[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "provider", h->provider);
        cJSON_AddStringToObject(o, "model", h->model);
        cJSON_AddItemToObject(o, "status", h->status ? cJSON_CreateNumber((double)h->status)
                                                     : cJSON_CreateNull());
        cJSON_AddItemToObject(o, "error", string_or_null(h->error));
        cJSON_AddNumberToObject(o, "latency_ms", (double)h->latency_ms);
        cJSON_AddNumberToObject(o, "attempt", h->attempt);
        cJSON_AddItemToObject(o, "at", time_or_null(h->at_ms));
        if (h->tokens >= 0)
            cJSON_AddNumberToObject(o, "tokens", (double)h->tokens);
        cJSON *detail = h->detail ? cJSON_Parse(h->detail) : NULL;
        if (detail && !cJSON_AddItemToObject(o, "openrouter", detail))
            cJSON_Delete(detail);   /* what OpenRouter said about the providers it tried */
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *tokens_json(const job *j)
{
    cJSON *t = cJSON_CreateObject();
    if (!t)
        return NULL;
    cJSON_AddItemToObject(t, "prompt", j->prompt_tokens >= 0
                                           ? cJSON_CreateNumber((double)j->prompt_tokens)
                                           : cJSON_CreateNull());
    cJSON_AddItemToObject(t, "completion", j->completion_tokens >= 0
                                               ? cJSON_CreateNumber((double)j->completion_tokens)
                                               : cJSON_CreateNull());
    return t;
}

/* The fields both forms share. */
static cJSON *job_json(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "file", j->name);
    cJSON_AddStringToObject(o, "tier", j->tier_name);
    cJSON_AddItemToObject(o, "tag", string_or_null(j->tag));
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON *route = cJSON_AddArrayToObject(o, "route");
    for (size_t i = 0; route && j->tier && i < j->tier->route_len; i++) {
        cJSON *h = cJSON_CreateObject();
        if (!h)
            break;
        cJSON_AddStringToObject(h, "provider", j->tier->route[i].provider);
        cJSON_AddStringToObject(h, "model", j->tier->route[i].model);
        cJSON_AddItemToArray(route, h);
    }
    cJSON_AddItemToObject(o, "hops", hops_json(j));
    cJSON_AddItemToObject(o, "provider", string_or_null(j->served_provider));
    cJSON_AddItemToObject(o, "endpoint", string_or_null(j->served_endpoint));
    cJSON_AddItemToObject(o, "model", string_or_null(j->served_model));
    if (j->service_tier)
        cJSON_AddStringToObject(o, "service_tier", j->service_tier);
    cJSON *orm = j->or_metadata ? cJSON_Parse(j->or_metadata) : NULL;
    if (orm && !cJSON_AddItemToObject(o, "openrouter_metadata", orm))
        cJSON_Delete(orm);   /* X-OpenRouter-Metadata: the answer's own, as given */
    cJSON_AddBoolToObject(o, "fallback", j->fallback);
    cJSON_AddItemToObject(o, "tokens", tokens_json(j));
    cJSON_AddItemToObject(o, "cost", j->has_cost
                                         ? cJSON_CreateNumber(cost_nusd_to_usd(j->cost_nusd))
                                         : cJSON_CreateNull());
    if (j->cost_estimated)
        cJSON_AddBoolToObject(o, "cost_estimated", 1);
    if (j->cost_note)
        cJSON_AddStringToObject(o, "cost_note", j->cost_note);
    if (j->state == JOB_RUNNING && j->live)
        cJSON_AddNumberToObject(o, "tokens_so_far", (double)live_tokens(j->live));
    cJSON_AddItemToObject(o, "created_at", time_or_null(j->created_ms));
    cJSON_AddItemToObject(o, "started_at", time_or_null(j->started_ms));
    cJSON_AddItemToObject(o, "finished_at", time_or_null(j->finished_ms));
    if (j->state == JOB_PARKED) {
        cJSON_AddItemToObject(o, "next_attempt_at", time_or_null(j->next_attempt_ms));
        cJSON_AddNumberToObject(o, "park_count", j->park_count);
    }
    cJSON_AddItemToObject(o, "error", string_or_null(j->error));
    if (j->resent)
        cJSON_AddBoolToObject(o, "resent_after_crash", 1);
    if (j->ledger_ref)
        cJSON_AddStringToObject(o, "ledger_id", j->ledger_ref);
    if (j->prompt) {
        char hash[24];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)j->prompt_hash);
        cJSON_AddStringToObject(o, "prompt_hash", hash);
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
    if (cJSON_AddStringToObject(o, "time", at))
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
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    char at[40];
    format_time_ms(j->finished_ms ? j->finished_ms : now_wall_ms(), at, sizeof at);
    cJSON_AddStringToObject(o, "path", j->key);
    cJSON_AddStringToObject(o, "tier", j->tier_name);
    cJSON_AddItemToObject(o, "tag", string_or_null(j->tag));
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddItemToObject(o, "provider", string_or_null(j->served_provider));
    cJSON_AddItemToObject(o, "model", string_or_null(j->served_model));
    cJSON_AddItemToObject(o, "cost", j->has_cost
                                         ? cJSON_CreateNumber(cost_nusd_to_usd(j->cost_nusd))
                                         : cJSON_CreateNull());
    cJSON_AddBoolToObject(o, "fallback", j->fallback);
    cJSON_AddItemToObject(o, "error", string_or_null(j->error));
    cJSON_AddStringToObject(o, "time", at);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}
