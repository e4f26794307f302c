/* jobs_finish.c — see jobs_finish.h. */
#include "jobs_finish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"
#include "jsonfmt.h"
#include "redact.h"

void jobs_record_hop(job *j, const char *provider, const char *model, long status,
                     const char *error, const char *detail, long latency_ms, int64_t at_ms,
                     long tokens)
{
    if (j->nhops == j->caphops) {
        size_t cap = j->caphops ? j->caphops * 2 : 4;
        job_hop *h = realloc(j->hops, cap * sizeof *h);
        if (!h)
            return;
        j->hops = h;
        j->caphops = cap;
    }
    job_hop *h = &j->hops[j->nhops];
    h->provider = strdup(provider);
    h->model = strdup(model);
    h->status = status;
    h->error = error ? strdup(error) : NULL;
    /* Only JSON that parses (the runner's buffer may have cut it), so the meta can take a
     * failed parse there for what it is: no memory.  Lost if out of memory here. */
    h->detail = detail && *detail && json_parses(detail) ? strdup(detail) : NULL;
    h->latency_ms = latency_ms;
    h->attempt = j->hop_attempts + 1;
    h->at_ms = at_ms;
    h->tokens = tokens;
    if (!h->provider || !h->model || (error && !h->error)) {
        free(h->provider);
        free(h->model);
        free(h->error);
        free(h->detail);
        return;
    }
    j->nhops++;
}

char *jobs_exhausted_message(const job *j)
{
    char buf[900];
    size_t n = (size_t)snprintf(buf, sizeof buf, "all %zu hop%s failed:", j->tier->route_len,
                                j->tier->route_len == 1 ? "" : "s");
    for (size_t r = 0; r < j->tier->route_len && n < sizeof buf; r++) {
        const rf_hop *hop = &j->tier->route[r];
        const job_hop *last = NULL;
        for (size_t i = 0; i < j->nhops; i++)
            if (!strcmp(j->hops[i].provider, hop->provider) && !strcmp(j->hops[i].model, hop->model))
                last = &j->hops[i];
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %s/%s: %s", r ? ";" : "",
                              hop->provider, hop->model,
                              last ? (last->error ? last->error : "ok") : "not tried");
    }
    return strdup(buf);
}

/* Which hops' providers the job gave up on for a later hop. */
static int fell_back_after(const job *j, size_t i)
{
    const job_hop *h = &j->hops[i];
    if (!h->error || h->status == 0)
        return 0;
    for (size_t k = i + 1; k < j->nhops; k++)
        if (strcmp(j->hops[k].provider, h->provider) || strcmp(j->hops[k].model, h->model))
            return 1;
    return 0;
}

job_commit *jobs_finish_build(job *j)
{
    job_commit *c = job_commit_new();
    if (!c)
        return NULL;
    int done = j->error == NULL;
    c->path = strdup(j->key);
    c->gen = j->gen;
    c->state = done ? PS_DONE : PS_FAILED;
    c->finished_ms = j->finished_ms;
    j->state = done ? JOB_DONE : JOB_FAILED;   /* how the meta must read once committed */
    (void)job_meta_and_activity(j, &c->meta, &c->activity);   /* NULL both: below */
    c->event = job_event_line(j);
    j->state = JOB_COMMITTING;
    int ok = c->path && c->meta && c->activity && c->event;
    if (ok && !done) {
        ok = (c->err = malloc(strlen(j->error) + 2)) != NULL;
        if (ok)
            sprintf(c->err, "%s\n", j->error);
    }
    /* What a provider echoed (a key, in any encoding) never reaches a file. */
    if (ok) {
        redact_inplace(c->meta, strlen(c->meta));
        redact_inplace(c->activity, strlen(c->activity));
        redact_inplace(c->event, strlen(c->event));
        if (c->err)
            redact_inplace(c->err, strlen(c->err));
    }
    size_t nattempts = 0;
    for (size_t i = 0; i < j->nhops; i++)
        nattempts += j->hops[i].status != 0 || j->hops[i].latency_ms > 0;
    if (ok && nattempts && !(c->attempts = calloc(nattempts, sizeof *c->attempts)))
        ok = 0;
    for (size_t i = 0; ok && i < j->nhops; i++) {
        const job_hop *h = &j->hops[i];
        if (h->status == 0 && h->latency_ms <= 0)
            continue;   /* never sent (skipped) */
        attempt_stat *a = &c->attempts[c->nattempts];
        if (!(a->provider = strdup(h->provider))) {
            ok = 0;
            break;
        }
        a->failed = h->error != NULL;
        a->fell_back = fell_back_after(j, i);
        a->latency_ms = h->latency_ms;
        a->at_ms = h->at_ms;
        c->nattempts++;
    }
    if (ok && j->billed && !(c->ledger = calloc(1, sizeof *c->ledger)))
        ok = 0;
    if (!ok) {
        job_commit_free(c);
        return NULL;
    }
    /* Nothing can fail from here: the answer and the bill move into the commit. */
    if (done) {
        c->out = j->content;
        c->out_len = j->content_len;
        j->content = NULL;
        j->content_len = 0;
        if (!c->out && (c->out = malloc(1)))
            c->out[0] = '\0';
    }
    if (j->billed) {
        c->ledger[0] = j->bill;
        c->nledger = 1;
        memset(&j->bill, 0, sizeof j->bill);
        j->billed = 0;
    }
    return c;
}

job_commit *jobs_ledger_commit(ledger_row *row)
{
    job_commit *c = job_commit_new();
    if (!c || !(c->ledger = calloc(1, sizeof *c->ledger))) {
        free(c);
        return NULL;
    }
    c->ledger[0] = *row;
    c->nledger = 1;
    memset(row, 0, sizeof *row);
    return c;
}
