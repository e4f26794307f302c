/* runner.c — see runner.h.
 *
 * A job's life on the wire: pick a hop (router_next_hop), send one attempt, classify what
 * came back (router_classify), then retry the hop after a backoff, move to the next hop,
 * park the whole route, or finish.  Every callback re-checks the job's generation: a
 * prompt rewritten or removed meanwhile makes an old attempt's answer irrelevant. */
#include "runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "log.h"
#include "openai.h"
#include "metrics.h"
#include "plimit.h"

#define RESPONSE_MAX (8u * 1024 * 1024)  /* no completion is larger; a bigger body is hostile */
#define PROBE_BUSY_DELAY_MS 200          /* another job holds a half-open breaker's probe */
#define BUDGET_WAIT_MS 200               /* a cap is full of reservations still in flight */

static upstream *R_up;
static rf_breakers *R_breakers;
static budget *R_budget;
static plimits *R_limits;
static unsigned long R_attempt_seq;   /* makes ledger ids unique (jobs lock held) */

typedef struct attempt_ctx {
    struct attempt_ctx *prev, *next;  /* every live context, so shutdown can free them */
    job *j;
    unsigned generation;
    int64_t sent_ms;
    char *provider, *model;  /* the hop of an attempt (owned): the breaker and the ledger
                                learn the result even when the job has moved on */
    long retry_after_max_ms;
    long reservation;        /* budget reservation for this attempt, 0 = none */
    char *ledger_id;         /* owned: the ledger record id if it is billed */
    char *tier, *tag;        /* owned: for the ledger record */
    int has_price;           /* the hop's configured price, copied: the config may change */
    double prompt_per_m, completion_per_m;
    void (*fire)(job *j);   /* for timers: what to do when it fires */
} attempt_ctx;

static attempt_ctx *live_ctxs;   /* guarded by the jobs lock */

static attempt_ctx *ctx_new(job *j)
{
    attempt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ctx->j = j;
    ctx->generation = j->generation;
    ctx->next = live_ctxs;
    if (live_ctxs)
        live_ctxs->prev = ctx;
    live_ctxs = ctx;
    j->refs++;
    return ctx;
}

/* Unlink and free a context, dropping its job reference.  Lock held. */
static void ctx_free(attempt_ctx *ctx)
{
    if (ctx->prev)
        ctx->prev->next = ctx->next;
    else
        live_ctxs = ctx->next;
    if (ctx->next)
        ctx->next->prev = ctx->prev;
    if (ctx->reservation)
        budget_release(R_budget, ctx->reservation);   /* not settled: nothing was billed */
    jobs_job_unref(ctx->j);
    free(ctx->provider);
    free(ctx->model);
    free(ctx->ledger_id);
    free(ctx->tier);
    free(ctx->tag);
    free(ctx);
}

typedef struct slot_waiter {
    job *j;
    unsigned generation;
} slot_waiter;

void runner_shutdown(void)
{
    jobs_lock();
    while (live_ctxs)
        ctx_free(live_ctxs);
    slot_waiter *w;
    while (R_limits && (w = plimit_any_waiter(R_limits))) {
        jobs_job_unref(w->j);
        free(w);
    }
    plimits_free(R_limits);
    R_limits = NULL;
    jobs_unlock();
}

static void pick_hop(job *j);
static void send_attempt(job *j);
static void release_slot(job *j);

void runner_init(upstream *up, rf_breakers *breakers, budget *b)
{
    R_up = up;
    R_breakers = breakers;
    R_budget = b;
    R_limits = plimits_new();   /* NULL (out of memory): provider limits do not apply */
}

void runner_cancel(job *j)
{
    /* In-flight callbacks hold their own reference and see the bumped generation; cancelling
     * them here would wait on a callback that is waiting for our lock. */
    j->upstream_id = 0;
    j->timer_id = 0;
    release_slot(j);
}

static void record_hop(job *j, const rf_hop *hop, long status, const char *error,
                       long latency_ms, int64_t at_ms)
{
    if (j->nhops == j->caphops) {
        size_t cap = j->caphops ? j->caphops * 2 : 4;
        job_hop *h = realloc(j->hops, cap * sizeof *h);
        if (!h)
            return;      /* the meta loses a line; the job goes on */
        j->hops = h;
        j->caphops = cap;
    }
    job_hop *h = &j->hops[j->nhops];
    h->provider = strdup(hop->provider);
    h->model = strdup(hop->model);
    h->status = status;
    h->error = error ? strdup(error) : NULL;
    h->latency_ms = latency_ms;
    h->attempt = j->hop_attempts + 1;
    h->at_ms = at_ms;
    if (!h->provider || !h->model) {
        free(h->provider);
        free(h->model);
        free(h->error);
        return;
    }
    j->nhops++;
}

/* "all 2 hops failed: a/m1: HTTP 503 ...; b/m2: connection refused" — the last error of
 * each hop tried. */
static char *exhausted_message(const job *j)
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

static void finish_failed(job *j, char *error /* owned */)
{
    release_slot(j);
    free(j->error);
    j->error = error ? error : strdup("failed");
    j->finished_ms = now_wall_ms();
    jobs_job_finished(j);
}

/* ---- timers ---- */

static void on_timer(void *ud)
{
    attempt_ctx *ctx = ud;
    job *j = ctx->j;
    jobs_lock();
    if (j->in_table && j->generation == ctx->generation) {
        j->timer_id = 0;
        ctx->fire(j);
    }
    ctx_free(ctx);
    jobs_unlock();
}

static void schedule(job *j, long delay_ms, void (*fire)(job *j))
{
    attempt_ctx *ctx = ctx_new(j);
    rf_err err;
    if (ctx) {
        ctx->fire = fire;
        long id = upstream_after(R_up, delay_ms, on_timer, ctx, &err);
        if (id > 0) {
            j->timer_id = id;
            return;
        }
        j->refs++;          /* ctx_free drops one; the job must survive this call */
        ctx_free(ctx);
        j->refs--;
        LOG_ERROR("%s: cannot schedule a retry: %s", j->key, err.msg);
    }
    finish_failed(j, strdup("internal error: cannot schedule a retry"));
}

/* ---- parking ---- */

static void unpark(job *j)
{
    if (j->state == JOB_PARKED)
        jobs_job_requeue(j);
}

/* Park j until at_ms (wall clock): the one place a job parks.  Its schedule goes to the
 * store each time, so a remount, and a second one, keep it. */
void runner_park_until(job *j, int64_t at_ms)
{
    int64_t now = now_wall_ms();
    j->state = JOB_PARKED;
    j->next_attempt_ms = at_ms;
    jobs_job_parked(j);
    schedule(j, at_ms > now ? (long)(at_ms - now) : 0, unpark);
}

static void route_exhausted(job *j)
{
    const rf_tier *t = j->tier;
    if (t->on_exhausted == RF_EXHAUSTED_QUEUE && (size_t)j->park_count < t->park_schedule_len) {
        long delay = t->park_schedule_ms[j->park_count++];
        jobs_job_release_slot(j);
        LOG_WARN("%s: every hop failed; parked, next attempt in %ld s", j->key, delay / 1000);
        runner_park_until(j, now_wall_ms() + delay);
        return;
    }
    finish_failed(j, exhausted_message(j));
}

/* ---- attempts ---- */

static void choose_hop(job *j, long fell_from);

/* Give up on the current hop.  It counts as a fallback caused by its provider only if a
 * request was really sent there and a later hop takes over. */
static void next_hop(job *j)
{
    long from = j->hop_sent ? (long)j->hop_index : -1;
    release_slot(j);
    j->hop_index++;
    j->hop_attempts = 0;
    j->hop_sent = 0;
    choose_hop(j, from);
}

static void pick_hop(job *j)
{
    choose_hop(j, -1);
}

static void choose_hop(job *j, long fell_from)
{
    long wait_ms = 0;
    int idx = router_next_hop(R_breakers, j->cfg, j->tier, j->hop_index, j->params, j->nparams,
                              now_wall_ms(), &wait_ms);
    if (idx < 0) {
        route_exhausted(j);
        return;
    }
    if (fell_from >= 0 && (size_t)idx > (size_t)fell_from) {
        breakers_note_fallback(R_breakers, j->tier->route[fell_from].provider);
        metrics_fallback(j->tier_name, j->tier->route[fell_from].provider);
    }
    if ((size_t)idx != j->hop_index) {
        j->hop_index = (size_t)idx;
        j->hop_attempts = 0;
        j->hop_sent = 0;
    }
    if (wait_ms > 0)
        schedule(j, wait_ms, send_attempt);   /* every hop's breaker is open: wait for the first */
    else
        send_attempt(j);
}

/* Build the upstream request for the current hop.  NULL with err when the request cannot
 * be made: err->code EINVAL/EILSEQ = the prompt is at fault, else the hop is. */
static upstream_request *build_request(job *j, const rf_hop *hop, const rf_provider *p,
                                       rf_err *err)
{
    char *user = NULL;
    if (j->tag && asprintf(&user, "pipeline:%s", j->tag) < 0) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    openai_request_in in = {
        .model = hop->model,
        .prompt = j->prompt,
        .prompt_len = j->prompt_len,
        .system_prompt = j->tier->system_prompt,
        .max_tokens = j->tier->max_tokens,
        .user = user,
        .provider_prefs_json = p->kind == RF_KIND_OPENROUTER ? j->tier->provider_prefs_json : NULL,
    };
    char *body = openai_build_request(&in, err);
    free(user);
    if (!body)
        return NULL;
    char *key = NULL;
    if (config_provider_key(p, &key, err) < 0) {
        err->code = EACCES;   /* a missing key is the hop's problem, not the prompt's */
        free(body);
        return NULL;
    }
    upstream_request *rq = calloc(1, sizeof *rq);
    if (!rq || asprintf(&rq->url, "%s/chat/completions", p->base_url) < 0) {
        free(rq);
        free(body);
        free(key);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    rq->body = body;
    rq->api_key = key;
    rq->timeout_ms = j->tier->timeout_ms;
    if (p->timeout_ms > 0 && p->timeout_ms < rq->timeout_ms)
        rq->timeout_ms = p->timeout_ms;
    rq->max_response = RESPONSE_MAX;
    return rq;
}

static void on_attempt_done(upstream_result *res, void *ud);
static void send_now(job *j);

/* Give back the job's in-flight slot and let the longest-waiting job on that provider
 * go (through a 0 ms timer: never recursively, whatever the queue length). */
static void release_slot(job *j)
{
    if (!j->slot_provider)
        return;
    char *provider = j->slot_provider;
    j->slot_provider = NULL;
    if (R_limits) {
        plimit_release_slot(R_limits, provider);
        slot_waiter *w;
        while ((w = plimit_next_waiter(R_limits, provider))) {
            job *wj = w->j;
            int current = wj->in_table && wj->generation == w->generation &&
                          wj->state == JOB_RUNNING;
            free(w);
            if (current)
                schedule(wj, 0, send_attempt);
            jobs_job_unref(wj);   /* the waiter's reference */
            if (current)
                break;
        }
    }
    free(provider);
}

/* Provider limits first (plimit.h): wait for an in-flight slot, then for the booked send
 * time; then send_now. */
static void send_attempt(job *j)
{
    const rf_hop *hop = &j->tier->route[j->hop_index];
    const rf_provider *p = config_provider(j->cfg, hop->provider);
    if (!R_limits || (!p->rpm && !p->max_concurrent)) {
        send_now(j);
        return;
    }
    if (!plimit_take_slot(R_limits, p->name, p->max_concurrent)) {
        slot_waiter *w = malloc(sizeof *w);
        if (w) {
            w->j = j;
            w->generation = j->generation;
            j->refs++;
            if (plimit_wait(R_limits, p->name, w) == 0)
                return;   /* release_slot of another request wakes us */
            j->refs--;
            free(w);
        }
        finish_failed(j, strdup("out of memory waiting for a provider slot"));
        return;
    }
    j->slot_provider = strdup(p->name);
    if (!j->slot_provider) {
        plimit_release_slot(R_limits, p->name);
        finish_failed(j, strdup("out of memory"));
        return;
    }
    long delay = plimit_book_send(R_limits, p->name, p->rpm, now_mono_ms());
    if (delay > 0)
        schedule(j, delay, send_now);
    else
        send_now(j);
}

static void send_now(job *j)
{
    const rf_hop *hop = &j->tier->route[j->hop_index];
    const rf_provider *p = config_provider(j->cfg, hop->provider);
    int64_t now = now_wall_ms();
    if (!breakers_allow(R_breakers, hop->provider, hop->model, now)) {
        /* A half-open breaker's single probe is taken by another job. */
        if (j->hop_index + 1 < j->tier->route_len && j->tier->allow_fallbacks)
            next_hop(j);
        else {
            release_slot(j);
            schedule(j, PROBE_BUSY_DELAY_MS, send_attempt);
        }
        return;
    }
    rf_err err;
    rf_err_clear(&err);
    /* Spend: reserve the worst case before anything leaves (budget.h). */
    int price_known = 0;
    int max_tokens = openai_effective_max_tokens(j->prompt, j->prompt_len, j->tier->max_tokens);
    double worst = budget_worst_case(j->cfg, hop, j->prompt_len, max_tokens, &price_known);
    if (!price_known && j->tier->require_price) {
        breakers_release(R_breakers, hop->provider, hop->model, now);
        record_hop(j, hop, 0, "no price configured for this model (the tier has require_price)",
                   0, now);
        next_hop(j);
        return;
    }
    long reservation = budget_reserve(R_budget, j->cfg, j->tier_name, worst, &err);
    if (reservation < 0) {
        breakers_release(R_breakers, hop->provider, hop->model, now);
        if (err.code == EAGAIN) {
            /* Fits once requests in flight settle: wait for them rather than fail. */
            release_slot(j);
            schedule(j, BUDGET_WAIT_MS, send_attempt);
            return;
        }
        finish_failed(j, strdup(err.msg));   /* a cap would break: not sent */
        return;
    }
    upstream_request *rq = build_request(j, hop, p, &err);
    if (!rq) {
        budget_release(R_budget, reservation);
        breakers_release(R_breakers, hop->provider, hop->model, now);
        if (err.code == EINVAL || err.code == EILSEQ) {
            finish_failed(j, strdup(err.msg));   /* the prompt itself is unusable */
            return;
        }
        record_hop(j, hop, 0, err.msg, 0, now);
        next_hop(j);
        return;
    }
    attempt_ctx *ctx = ctx_new(j);
    if (!ctx) {
        budget_release(R_budget, reservation);
        free(rq->url), free(rq->body), free(rq->api_key), free(rq);
        breakers_release(R_breakers, hop->provider, hop->model, now);
        finish_failed(j, strdup("out of memory"));
        return;
    }
    ctx->sent_ms = now;
    ctx->provider = strdup(hop->provider);
    ctx->model = strdup(hop->model);
    ctx->retry_after_max_ms = j->tier->retry_after_max_ms;
    ctx->reservation = reservation;
    const rf_price *price = config_price(j->cfg, hop->provider, hop->model);
    if (price) {
        ctx->has_price = 1;
        ctx->prompt_per_m = price->prompt_per_m;
        ctx->completion_per_m = price->completion_per_m;
    }
    ctx->tier = strdup(j->tier_name);
    ctx->tag = j->tag ? strdup(j->tag) : NULL;
    if (asprintf(&ctx->ledger_id, "%s#%u#%lld#%lu", j->key, j->generation,
                 (long long)j->created_ms, ++R_attempt_seq) < 0)
        ctx->ledger_id = NULL;
    if (!ctx->provider || !ctx->model || !ctx->tier || !ctx->ledger_id ||
        (j->tag && !ctx->tag)) {
        free(rq->url), free(rq->body), free(rq->api_key), free(rq);
        breakers_release(R_breakers, hop->provider, hop->model, now);
        j->refs++;
        ctx_free(ctx);
        j->refs--;
        finish_failed(j, strdup("out of memory"));
        return;
    }
    long id = upstream_submit(R_up, rq, on_attempt_done, ctx, &err);
    if (id < 0) {
        j->refs++;
        ctx_free(ctx);
        j->refs--;
        breakers_release(R_breakers, hop->provider, hop->model, now);
        finish_failed(j, strdup(err.msg));
        return;
    }
    j->upstream_id = id;
    j->hop_sent = 1;
}

/* Describe a failed attempt in one line, e.g. "HTTP 503: overloaded". */
static void describe_failure(const upstream_result *res, const char *detail, char *buf,
                             size_t len)
{
    if (res->transport != RF_TE_NONE)
        snprintf(buf, len, "%s", res->error[0] ? res->error : "transport error");
    else if (detail && *detail)
        snprintf(buf, len, "HTTP %ld: %s", res->http_status, detail);
    else
        snprintf(buf, len, "HTTP %ld", res->http_status);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The provider's reported cost, else tokens x the configured price; -1 when unknown. */
static double attempt_cost(const attempt_ctx *ctx, const openai_completion *comp)
{
    if (comp->has_cost)
        return comp->cost;
    if (!ctx->has_price || comp->prompt_tokens < 0 || comp->completion_tokens < 0)
        return -1;
    return ((double)comp->prompt_tokens * ctx->prompt_per_m +
            (double)comp->completion_tokens * ctx->completion_per_m) / 1e6;
}

/* Write the served attempt to the ledger, replacing its reservation.  Runs before the
 * job is committed, so the commit's syncfs makes the record durable before anyone is told
 * the job is done. */
static void settle_cost(attempt_ctx *ctx, const openai_completion *comp, double cost)
{
    budget_record rec = {
        .id = ctx->ledger_id,
        .tier = ctx->tier,
        .tag = ctx->tag,
        .provider = ctx->provider,
        .model = ctx->model,
        .cost = cost < 0 ? 0 : cost,
        .has_cost = cost >= 0,
        .prompt_tokens = comp->prompt_tokens,
        .completion_tokens = comp->completion_tokens,
        .at_ms = now_wall_ms(),
    };
    rf_err err;
    rf_err_clear(&err);
    if (budget_settle(R_budget, ctx->reservation, &rec, &err) < 0)
        LOG_ERROR("ledger: %s", err.msg);
    ctx->reservation = 0;
}

/* Record the served answer on the job and decide it (lock held).  Returns its commit, to
 * be staged and submitted by the caller (jobs_finish_stage / jobs_finish_submit). */
static commit_item *settle_success(job *j, const rf_hop *hop, openai_completion *comp,
                                   double cost)
{
    j->content_len = strlen(comp->content);
    j->content = comp->content;     /* moves to the job */
    comp->content = NULL;
    j->served_provider = dup_or_null(comp->provider ? comp->provider : hop->provider);
    j->served_endpoint = dup_or_null(hop->provider);
    j->served_model = dup_or_null(comp->model ? comp->model : hop->model);
    j->prompt_tokens = comp->prompt_tokens;
    j->completion_tokens = comp->completion_tokens;
    j->fallback = j->hop_index > 0;
    j->has_cost = cost >= 0;
    j->cost = j->has_cost ? cost : 0;
    j->finished_ms = now_wall_ms();
    return jobs_finish_prepare(j);
}

/* What an attempt's response says, classified.  Pure: no job state. */
typedef struct attempt_verdict {
    rf_attempt a;
    rf_outcome outcome;
    openai_completion comp;               /* filled on success */
    char error[sizeof(((rf_err *)0)->msg) + 64];  /* one line when not a success */
    int healthy;                          /* the provider answered sensibly */
} attempt_verdict;

static void judge_attempt(const upstream_result *res, long retry_after_max_ms,
                          attempt_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->a.transport = res->transport;
    v->a.http_status = res->http_status;
    v->a.retry_after_ms = res->retry_after_ms;
    char detail[sizeof(((rf_err *)0)->msg)] = "";
    if (res->transport == RF_TE_NONE && res->http_status >= 200 && res->http_status < 300) {
        rf_err perr;
        rf_err_clear(&perr);
        v->a.parse_status = (int)openai_parse_response(res->body ? res->body : "",
                                                       res->body_len, &v->comp, &perr);
        if (v->a.parse_status != OPENAI_OK)
            snprintf(detail, sizeof detail, "%s", perr.msg);
    } else if (res->transport == RF_TE_NONE) {
        openai_error_info info;
        openai_parse_error(res->body ? res->body : "", res->body_len, &info);
        v->a.context_length = info.context_length;
        v->a.unsupported_param = info.unsupported_param;
        snprintf(detail, sizeof detail, "%s", info.msg);
    }
    v->outcome = router_classify(&v->a, retry_after_max_ms);
    if (v->outcome != RF_OUT_SUCCESS)
        describe_failure(res, detail, v->error, sizeof v->error);
    /* Breakers track provider health: a request refused for its own content (plain 400,
     * context length, unsupported parameter) says the provider is alive. */
    int request_fault = v->outcome == RF_OUT_FAIL_JOB || v->a.context_length ||
                        v->a.unsupported_param;
    v->healthy = v->outcome == RF_OUT_SUCCESS || request_fault;
}

static void on_attempt_done(upstream_result *res, void *ud)
{
    attempt_ctx *ctx = ud;
    job *j = ctx->j;
    attempt_verdict v;
    judge_attempt(res, ctx->retry_after_max_ms, &v);
    double cost = v.outcome == RF_OUT_SUCCESS ? attempt_cost(ctx, &v.comp) : -1;
    metrics_attempt(ctx->tier, ctx->provider, router_outcome_name(v.outcome), res->latency_ms);
    breakers_record(R_breakers, ctx->provider, ctx->model, v.healthy,
                    v.outcome == RF_OUT_NEXT_HOP_DOWN, res->http_status == 404, res->latency_ms,
                    v.healthy ? NULL : v.error, now_wall_ms());

    jobs_lock();
    if (!j->in_table || j->generation != ctx->generation || j->state != JOB_RUNNING) {
        if (v.outcome == RF_OUT_SUCCESS)
            settle_cost(ctx, &v.comp, cost);   /* stale, but billed all the same */
        openai_completion_free(&v.comp);
        ctx_free(ctx);
        jobs_unlock();
        return;
    }
    j->upstream_id = 0;
    release_slot(j);
    const rf_hop *hop = &j->tier->route[j->hop_index];
    record_hop(j, hop, res->http_status, v.outcome == RF_OUT_SUCCESS ? NULL : v.error,
               res->latency_ms, ctx->sent_ms);

    commit_item *finished = NULL;
    switch (v.outcome) {
    case RF_OUT_SUCCESS:
        j->ledger_id = strdup(ctx->ledger_id);
        finished = settle_success(j, hop, &v.comp, cost);
        break;
    case RF_OUT_RETRY:
        /* Once this failure has opened the provider's breaker, waiting out a backoff
         * would only delay the fallback that the breaker will force anyway. */
        if (j->hop_attempts < j->tier->retries &&
            breakers_ready_at(R_breakers, hop->provider, hop->model, now_wall_ms()) <= now_wall_ms()) {
            long delay = router_backoff_ms(j->hop_attempts, j->tier->retry_base_ms,
                                           j->tier->retry_cap_ms, res->retry_after_ms, &j->seed);
            j->hop_attempts++;
            schedule(j, delay, send_attempt);
        } else {
            next_hop(j);
        }
        break;
    case RF_OUT_NEXT_HOP:
    case RF_OUT_NEXT_HOP_DOWN:
        next_hop(j);
        break;
    case RF_OUT_FAIL_JOB: {
        char *msg = NULL;
        if (asprintf(&msg, "%s/%s refused the request: %s", hop->provider, hop->model,
                     v.error) < 0)
            msg = NULL;
        finish_failed(j, msg);
        break;
    }
    }
    if (v.outcome == RF_OUT_SUCCESS) {
        /* Results staged on disk first (their meta carries the ledger record), then the
         * ledger line: after a crash in between, recovery installs the staged result and
         * settles it from its meta — paid once, kept once (jobs_recover).  Both without
         * the jobs lock, which every FUSE create and release needs: on a slow disk these
         * writes held it for most of a batch.  The job is decided already; a rewrite or
         * rm meanwhile makes the committer drop the staged files. */
        jobs_unlock();
        jobs_finish_stage(finished);
        settle_cost(ctx, &v.comp, cost);
        jobs_finish_submit(finished);
        jobs_lock();
    }
    openai_completion_free(&v.comp);
    ctx_free(ctx);
    jobs_unlock();
}

void runner_start(job *j)
{
    j->state = JOB_RUNNING;
    if (!j->started_ms)
        j->started_ms = now_wall_ms();
    j->hop_index = 0;
    j->hop_attempts = 0;
    j->hop_sent = 0;
    pick_hop(j);
}
