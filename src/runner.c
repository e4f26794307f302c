/* runner.c — see runner.h.
 *
 * One attempt, step by step, all on the upstream loop thread:
 *   begin     the store must be working (no answer is bought that could not be kept),
 *             then the provider's in-flight slot and its rpm spacing (plimit.h);
 *   send_now  the breaker, the price and the reservation under the caps in force now,
 *             the request, and off it goes;
 *   on_answer classify, record the breaker, settle the cost, report.
 * Any step can end the attempt with a report (finish); a cancelled attempt ends at the
 * next step it reaches, or at once when it is in flight (aborted on the wire).
 *
 * Threads: runner_new and runner_cancel may be called from any thread; everything else
 * runs on the loop thread, so an attempt's fields need no lock.  The list of live
 * attempts (for shutdown) has a small lock of its own. */
#include "runner.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cost.h"
#include "log.h"
#include "metrics.h"
#include "plimit.h"
#include "redact.h"
#include "store_prompts.h"
#include "stream.h"

#define RESPONSE_MAX (8u * 1024 * 1024)  /* no completion is larger; a bigger body is hostile */
#define PROBE_BUSY_DELAY_MS 200          /* another job holds a half-open breaker's probe */
#define BUDGET_WAIT_MS 200               /* a cap is full of reservations still in flight */
#define STORE_WAIT_MS 500                /* the store is failing: no sends until it works */

typedef enum { AT_NEW, AT_WAIT_SLOT, AT_TIMER, AT_IN_FLIGHT, AT_DONE } attempt_phase;

struct attempt {
    int refs;                  /* atomic: the runner's and the job's */
    int cancelled;             /* atomic */
    attempt_plan *plan;        /* owned until reported */
    attempt_phase phase;
    long upstream_id, timer_id;
    long reservation;          /* budget reservation, 0 = none */
    char *slot_provider;       /* holds an in-flight slot on this provider (owned) */
    int breaker_taken;         /* breakers_allow said yes; not yet recorded or released */
    int priced;
    hop_price price;
    double worst_usd;
    int max_tokens;
    int64_t sent_wall_ms;
    stream_parser *sp;         /* a streamed request's SSE parser (owned), or NULL */
    size_t live_len;           /* bytes of its text already in the live buffer */
    int hops_covered;          /* route hops this request covers (OpenRouter "models") */
    attempt *prev, *next;      /* the live list */
};

static struct {
    runner_deps d;
    plimits *limits;           /* loop thread only */
    pthread_mutex_t live_lock;
    attempt *live;
    size_t in_flight;          /* loop thread */
} R = {.live_lock = PTHREAD_MUTEX_INITIALIZER};

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
    R.d = *deps;
    R.limits = plimits_new();   /* NULL (out of memory): provider limits do not apply */
}

size_t runner_in_flight(void)
{
    return __atomic_load_n(&R.in_flight, __ATOMIC_RELAXED);
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
    pthread_mutex_lock(&R.live_lock);
    a->next = R.live;
    if (R.live)
        R.live->prev = a;
    R.live = a;
    pthread_mutex_unlock(&R.live_lock);
    return a;
}

void runner_release(attempt *a)
{
    if (!a || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    pthread_mutex_lock(&R.live_lock);
    if (a->prev)
        a->prev->next = a->next;
    else if (R.live == a)
        R.live = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_unlock(&R.live_lock);
    attempt_plan_free(a->plan);
    free(a->slot_provider);
    stream_free(a->sp);
    free(a);
}

static const rf_hop *plan_hop(const attempt_plan *p)
{
    return &p->tier->route[p->hop_index];
}

/* ---- resources an attempt holds ---- */

static void step_begin(void *ud);

/* Give back the in-flight slot; the longest-waiting attempt on that provider goes on. */
static void release_slot(attempt *a)
{
    if (!a->slot_provider)
        return;
    char *provider = a->slot_provider;
    a->slot_provider = NULL;
    if (R.limits) {
        plimit_release_slot(R.limits, provider);
        attempt *w;
        while ((w = plimit_next_waiter(R.limits, provider))) {
            int go = w->phase == AT_WAIT_SLOT;
            rf_err err;
            if (go && upstream_after(R.d.up, 0, step_begin, w, &err) > 0) {
                w->phase = AT_TIMER;
                break;
            }
            if (go)
                LOG_ERROR("cannot resume a request: %s", err.msg);
        }
    }
    free(provider);
}

static void release_all(attempt *a)
{
    release_slot(a);
    if (a->reservation) {
        budget_release(R.d.budget, a->reservation);
        a->reservation = 0;
    }
    if (a->breaker_taken) {
        const rf_hop *hop = plan_hop(a->plan);
        breakers_release(R.d.breakers, hop->provider, hop->model, now_mono_ms());
        a->breaker_taken = 0;
    }
}

/* The attempt ends: report it (the report callback takes the plan) and drop the
 * runner's reference. */
static void finish(attempt *a, attempt_report *r)
{
    release_all(a);
    a->phase = AT_DONE;
    attempt_plan *plan = a->plan;
    a->plan = NULL;
    R.d.report(a, plan, r);
    runner_release(a);
}

static void finish_simple(attempt *a, attempt_kind kind, const char *error, long retry_in_ms)
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
    finish_simple(a, AR_CANCELLED, "cancelled", 0);
}

static int is_cancelled(attempt *a)
{
    return __atomic_load_n(&a->cancelled, __ATOMIC_ACQUIRE);
}

static int arm(attempt *a, long delay_ms, void (*fn)(void *))
{
    rf_err err;
    long id = upstream_after(R.d.up, delay_ms, fn, a, &err);
    if (id < 0) {
        LOG_ERROR("%s: cannot schedule: %s", a->plan->key, err.msg);
        finish_simple(a, AR_SKIPPED, "internal error: cannot schedule the request", 0);
        return -1;
    }
    a->timer_id = id;
    a->phase = AT_TIMER;
    return 0;
}

/* ---- the steps ---- */

static void step_send(void *ud);

void runner_go(attempt *a)
{
    rf_err err;
    if (upstream_after(R.d.up, 0, step_begin, a, &err) < 0) {
        /* The loop is gone (shutdown): the attempt never runs; runner_shutdown frees it. */
        LOG_DEBUG("%s: not started: %s", a->plan ? a->plan->key : "?", err.msg);
    }
}

static void step_begin(void *ud)
{
    attempt *a = ud;
    a->timer_id = 0;
    if (is_cancelled(a)) {
        finish_cancelled(a);
        return;
    }
    live_reset(a->plan->live);   /* a new attempt shows from the start in NAME.live */
    if (store_admit(R.d.store) < 0) {
        arm(a, STORE_WAIT_MS, step_begin);   /* an answer now could not be kept */
        return;
    }
    const rf_hop *hop = plan_hop(a->plan);
    const rf_provider *p = config_provider(a->plan->route_cfg, hop->provider);
    if (!R.limits || !p || (!p->rpm && !p->max_concurrent)) {
        step_send(a);
        return;
    }
    if (!a->slot_provider) {
        if (!plimit_take_slot(R.limits, p->name, p->max_concurrent)) {
            if (plimit_wait(R.limits, p->name, a) == 0) {
                a->phase = AT_WAIT_SLOT;   /* release_slot of another request resumes us */
                return;
            }
            finish_simple(a, AR_SKIPPED, "out of memory waiting for a provider slot", 0);
            return;
        }
        if (!(a->slot_provider = strdup(p->name))) {
            plimit_release_slot(R.limits, p->name);
            finish_simple(a, AR_SKIPPED, "out of memory", 0);
            return;
        }
    }
    long delay = plimit_book_send(R.limits, p->name, p->rpm, now_mono_ms());
    if (delay > 0)
        arm(a, delay, step_send);
    else
        step_send(a);
}

/* The price and the reservation, under the caps and prices in force now.  0 = go on;
 * otherwise the attempt has ended or will resume. */
static int reserve(attempt *a)
{
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    rf_config *now = R.d.current_config ? R.d.current_config() : NULL;
    const rf_config *cfg = now ? now : pl->route_cfg;
    a->priced = prices_lookup(cfg, hop->provider, hop->model, &a->price);
    a->max_tokens = openai_effective_max_tokens(pl->prompt->data, pl->prompt->len,
                                                pl->tier->max_tokens);
    int capped = budget_caps_apply(cfg, pl->tier_name);
    if (!a->priced && (capped || pl->tier->require_price)) {
        char why[600];
        snprintf(why, sizeof why,
                 "no price known for %s on %s while %s: add \"prices\": {\"%s\": "
                 "{\"prompt\": USD_PER_M, \"completion\": USD_PER_M}} to config.json",
                 hop->model, hop->provider, capped ? "a spend cap applies" : "the tier has require_price",
                 hop->model);
        config_unref(now);
        finish_simple(a, AR_SKIPPED, why, 0);
        return -1;
    }
    a->worst_usd = budget_worst_case(a->priced ? &a->price : NULL, pl->prompt->len, a->max_tokens);
    rf_err err;
    rf_err_clear(&err);
    long id = budget_reserve(R.d.budget, cfg, pl->tier_name, a->worst_usd, &err);
    config_unref(now);
    if (id >= 0) {
        a->reservation = id;
        return 0;
    }
    if (err.code == EAGAIN) {
        /* Fits once requests in flight settle: wait for them rather than fail. */
        release_slot(a);
        arm(a, BUDGET_WAIT_MS, step_begin);
        return -1;
    }
    finish_simple(a, AR_REFUSED, err.msg, 0);   /* a cap would break: not sent */
    return -1;
}

/* The smaller of a tier's limit and a provider's cap (0 = no limit / no cap). */
static long capped(long tier_ms, long provider_ms)
{
    if (provider_ms > 0 && (tier_ms <= 0 || provider_ms < tier_ms))
        return provider_ms;
    return tier_ms;
}

/* OpenRouter's server-side fallback: the hop's model, then the models of the consecutive
 * hops on the same OpenRouter provider (when the tier asks for it and their breakers let
 * them through).  Returns how many route hops the request covers (>= 1). */
static size_t models_for(const attempt_plan *pl, const rf_provider *p, const char **models,
                         size_t max)
{
    const rf_tier *t = pl->tier;
    const rf_hop *hop = plan_hop(pl);
    models[0] = hop->model;
    size_t n = 1, covered = 1;
    if (!t->openrouter_models || p->kind != RF_KIND_OPENROUTER || !t->allow_fallbacks)
        return 1;
    int64_t now = now_mono_ms();
    for (size_t i = pl->hop_index + 1; i < t->route_len && n < max; i++) {
        if (strcmp(t->route[i].provider, hop->provider) != 0)
            break;
        covered++;
        if (breakers_ready_at(R.d.breakers, t->route[i].provider, t->route[i].model, now) <= now)
            models[n++] = t->route[i].model;
    }
    return covered;
}

/* "{tag}" in a tier's session_id becomes the pipeline tag (empty without one). */
static char *session_for(const attempt_plan *pl)
{
    const char *sid = pl->tier->session_id;
    if (!sid)
        return NULL;
    const char *tag = pl->tag ? pl->tag : "";
    size_t need = strlen(sid) + 1, tl = strlen(tag);
    for (const char *q = strstr(sid, "{tag}"); q; q = strstr(q + 5, "{tag}"))
        need += tl;
    char *out = malloc(need);
    if (!out)
        return NULL;
    char *w = out;
    for (const char *q = sid; *q;) {
        if (!strncmp(q, "{tag}", 5)) {
            memcpy(w, tag, tl);
            w += tl;
            q += 5;
        } else {
            *w++ = *q++;
        }
    }
    *w = '\0';
    return out;
}

static int on_stream_data(const char *chunk, size_t len, long http_status, void *ud);

/* Build the request for the hop.  NULL with err when it cannot be made: err->code
 * EINVAL/EILSEQ = the prompt is at fault, else the hop is. */
static upstream_request *build_request(attempt *a, const rf_provider *p, rf_err *err)
{
    const attempt_plan *pl = a->plan;
    const rf_tier *t = pl->tier;
    char *user = NULL;
    if (pl->tag && asprintf(&user, "pipeline:%s", pl->tag) < 0) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    const char *models[16];
    a->hops_covered = (int)models_for(pl, p, models, sizeof models / sizeof *models);
    size_t nmodels = 0;
    while (nmodels < 16 && nmodels < (size_t)a->hops_covered && models[nmodels])
        nmodels++;
    char *session = session_for(pl);
    int openrouter = p->kind == RF_KIND_OPENROUTER;
    openai_request_in in = {
        .model = models[0],
        .models = a->hops_covered > 1 ? models : NULL,
        .n_models = a->hops_covered > 1 ? nmodels : 0,
        .prompt = pl->prompt->data,
        .prompt_len = pl->prompt->len,
        .system_prompt = t->system_prompt,
        .max_tokens = t->max_tokens,
        .stream = p->stream,
        .user = user,
        .provider_prefs_json = openrouter ? t->provider_prefs_json : NULL,
        .service_tier = t->service_tier,
        .session_id = openrouter ? session : NULL,
    };
    char *body = openai_build_request(&in, err);
    free(user);
    free(session);
    if (!body)
        return NULL;
    char *key = NULL;
    if (config_provider_key(p, &key, err) < 0) {
        err->code = EACCES;   /* a missing key is the hop's problem, not the prompt's */
        free(body);
        return NULL;
    }
    rf_err learn_err;         /* a key file rewritten since the config was applied */
    if (key && redact_learn_key(key, &learn_err) < 0)
        LOG_WARN("redaction: %s", learn_err.msg);
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
    rq->timeout_ms = capped(t->timeout_ms, p->timeout_ms);
    rq->max_response = RESPONSE_MAX;
    if (openrouter && t->openrouter_metadata)
        rq->extra_headers[0] = strdup("X-OpenRouter-Metadata: enabled");
    if (p->stream) {
        /* First token and stall limits only mean something when the answer streams. */
        rq->first_token_timeout_ms = capped(t->first_token_timeout_ms, p->first_token_timeout_ms);
        rq->stall_timeout_ms = capped(t->stall_timeout_ms, p->stall_timeout_ms);
        if (!(a->sp = stream_new(RESPONSE_MAX))) {
            upstream_request_free(rq);
            rf_err_set(err, ENOMEM, "out of memory");
            return NULL;
        }
        rq->on_data = on_stream_data;
    }
    return rq;
}

/* A chunk of a streamed answer (loop thread): parse it, show it in NAME.live. */
static int on_stream_data(const char *chunk, size_t len, long http_status, void *ud)
{
    attempt *a = ud;
    if (http_status < 200 || http_status >= 300 || !a->sp)
        return UPSTREAM_DATA_CONTINUE;   /* an error body: collected for the classifier */
    int r = stream_feed(a->sp, chunk, len);
    if (r == STREAM_FAILED)
        return UPSTREAM_DATA_ABORT;      /* do not wait for the rest of a broken stream */
    if (r == STREAM_PROGRESS) {
        size_t n = 0;
        const char *text = stream_text(a->sp, &n);
        if (n > a->live_len) {
            live_append(a->plan->live, text + a->live_len, n - a->live_len);
            a->live_len = n;
        }
        live_set_tokens(a->plan->live, stream_tokens(a->sp));
        return UPSTREAM_DATA_PROGRESS;
    }
    return UPSTREAM_DATA_CONTINUE;
}

static void on_answer(upstream_result *res, void *ud);

static void step_send(void *ud)
{
    attempt *a = ud;
    a->timer_id = 0;
    if (is_cancelled(a)) {
        finish_cancelled(a);
        return;
    }
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    const rf_provider *p = config_provider(pl->route_cfg, hop->provider);
    if (!breakers_allow(R.d.breakers, hop->provider, hop->model, now_mono_ms())) {
        finish_simple(a, AR_SKIPPED, "the breaker's probe is out", PROBE_BUSY_DELAY_MS);
        return;
    }
    a->breaker_taken = 1;
    if (reserve(a) < 0)
        return;
    rf_err err;
    rf_err_clear(&err);
    upstream_request *rq = build_request(a, p, &err);
    if (!rq) {
        finish_simple(a, err.code == EINVAL || err.code == EILSEQ ? AR_REFUSED : AR_SKIPPED,
                      err.msg, 0);
        return;
    }
    a->sent_wall_ms = now_wall_ms();
    LOG_DEBUG("%s: attempt %d on %s/%s (reserved $%.6f)", pl->key, pl->attempt_no,
              hop->provider, hop->model, a->worst_usd);
    sp_mark_sent(R.d.store, pl->key, pl->gen);
    long id = upstream_submit(R.d.up, rq, on_answer, a, &err);
    if (id < 0) {
        finish_simple(a, AR_SKIPPED, err.msg, 0);
        return;
    }
    a->upstream_id = id;
    a->phase = AT_IN_FLIGHT;
    R.in_flight++;
}

/* ---- the answer ---- */

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

/* Classify an answer.  Fills r's outcome, error, tokens and, on success, comp; *scope is
 * what the breakers make of it. */
static void judge(attempt *a, const upstream_result *res, long retry_after_max_ms,
                  attempt_report *r, breaker_scope *scope)
{
    rf_transport_error te = res->transport;
    int ok_status = res->http_status >= 200 && res->http_status < 300;
    rf_err perr;
    rf_err_clear(&perr);
    openai_error_info info;
    memset(&info, 0, sizeof info);
    char detail[sizeof perr.msg] = "";
    if (a->sp) {
        r->tokens = stream_tokens(a->sp);
        /* A stream we aborted (it broke) is judged by what the parser saw; one cut after
         * it was complete ([DONE] or a finish reason seen) is a complete answer. */
        if (te == RF_TE_ABORTED || (te == RF_TE_TRUNCATED && stream_ended(a->sp)))
            te = RF_TE_NONE;
    }
    rf_attempt at = {.transport = te, .http_status = te == RF_TE_NONE ? res->http_status : 0,
                     .retry_after_ms = res->retry_after_ms};
    if (te == RF_TE_NONE && ok_status) {
        if (a->sp)
            at.parse_status = (int)stream_finish(a->sp, &r->comp, &perr);
        else
            at.parse_status = (int)openai_parse_response(res->body ? res->body : "",
                                                         res->body_len, &r->comp, &perr);
        if (at.parse_status != OPENAI_OK)
            snprintf(detail, sizeof detail, "%s", perr.msg);
        size_t elen = 0;
        const char *ebody = a->sp ? stream_error_body(a->sp, &elen) : NULL;
        if (ebody)
            openai_parse_error_status(0, ebody, elen, &info);   /* a provider error mid-stream */
    } else if (te == RF_TE_NONE) {
        openai_parse_error_status((int)res->http_status, res->body ? res->body : "",
                                  res->body_len, &info);
        at.context_length = info.context_length;
        at.unsupported_param = info.unsupported_param;
        at.content_policy = info.content_policy;
        snprintf(detail, sizeof detail, "%s", info.msg);
    }
    r->outcome = router_classify(&at, retry_after_max_ms);
    /* A timeout, a cut or a stall moves to the next hop at once (retrying is opt-in). */
    r->timed_out = te == RF_TE_TIMEOUT || te == RF_TE_FIRST_TOKEN || te == RF_TE_STALL ||
                   te == RF_TE_TRUNCATED;
    if (r->outcome != RF_OUT_SUCCESS) {
        if (te != RF_TE_NONE)
            snprintf(r->error, sizeof r->error, "%s", res->error[0] ? res->error : "transport error");
        else
            describe_failure(res, detail, r->error, sizeof r->error);
    }
    *scope = breakers_scope_of(te, res->http_status, at.parse_status != 0);
}

/* The provider's breaker settings in the config in force now, so that a live edit applies
 * from the next failure on; the job's config when there is none.  0 = the defaults. */
static void breaker_settings(const attempt_plan *pl, const char *provider, int *threshold,
                             long *cooldown_ms)
{
    rf_config *now = R.d.current_config ? R.d.current_config() : NULL;
    const rf_provider *p = config_provider(now ? now : pl->route_cfg, provider);
    *threshold = p ? p->failure_threshold : 0;
    *cooldown_ms = p ? p->cooldown_ms : 0;
    config_unref(now);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The ledger row of a billed attempt: 0, or -1 when out of memory. */
static int make_ledger_row(const attempt *a, const cost_result *c, const openai_completion *comp,
                           ledger_row *row)
{
    const attempt_plan *pl = a->plan;
    const rf_hop *hop = plan_hop(pl);
    memset(row, 0, sizeof *row);
    if (asprintf(&row->ref, "%s#%lld#%u", pl->key, (long long)pl->gen, pl->seq) < 0)
        row->ref = NULL;
    row->at_ms = now_wall_ms();
    row->path = strdup(pl->key);
    row->tier = strdup(pl->tier_name);
    row->tag = dup_or_null(pl->tag);
    row->provider = strdup(hop->provider);
    row->model = strdup(hop->model);
    row->upstream = comp ? dup_or_null(comp->provider) : NULL;
    row->has_cost = c->has_cost;
    row->cost_nusd = c->nusd;
    row->estimated = c->estimated;
    row->note = c->note[0] ? strdup(c->note) : NULL;
    row->prompt_tokens = comp ? comp->prompt_tokens : -1;
    row->completion_tokens = comp ? comp->completion_tokens : -1;
    if (!row->ref || !row->path || !row->tier || !row->provider || !row->model ||
        (pl->tag && !row->tag)) {
        ledger_row_clear(row);
        return -1;
    }
    return 0;
}

/* Settle what this attempt cost: the reservation becomes the billed amount. */
static void settle(attempt *a, attempt_report *r, const cost_result *c,
                   const openai_completion *comp)
{
    if (c->has_cost)
        metrics_spend(a->plan->tier_name, plan_hop(a->plan)->provider, plan_hop(a->plan)->model,
                      cost_nusd_to_usd(c->nusd));
    if (make_ledger_row(a, c, comp, &r->ledger) == 0) {
        r->billed = 1;
        budget_settle(R.d.budget, a->reservation, &r->ledger);
    } else {
        ledger_row tmp = {.tier = a->plan->tier_name, .has_cost = c->has_cost,
                          .cost_nusd = c->nusd, .at_ms = now_wall_ms()};
        budget_settle(R.d.budget, a->reservation, &tmp);   /* the caps still see it */
        LOG_ERROR("%s: out of memory: a billed request is missing from the ledger",
                  a->plan->key);
    }
    a->reservation = 0;
}

static void on_answer(upstream_result *res, void *ud)
{
    attempt *a = ud;
    R.in_flight--;
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
    judge(a, res, pl->tier->retry_after_max_ms, &r, &scope);
    LOG_DEBUG("%s: %s/%s answered %ld in %ld ms: %s", pl->key, hop->provider, hop->model,
              res->http_status, res->latency_ms, router_outcome_name(r.outcome));
    metrics_attempt(pl->tier_name, hop->provider, router_outcome_name(r.outcome),
                    res->latency_ms);
    breaker_result br = {.scope = scope, .transport = res->transport,
                         .http_status = res->http_status, .retry_after_ms = res->retry_after_ms,
                         .latency_ms = res->latency_ms,
                         .error = scope == BREAKER_SCOPE_NONE ? NULL : r.error};
    breaker_settings(pl, hop->provider, &br.failure_threshold, &br.cooldown_ms);
    breakers_record(R.d.breakers, hop->provider, hop->model, &br, now_mono_ms());
    a->breaker_taken = 0;
    if (r.outcome == RF_OUT_SUCCESS) {
        cost_result c;
        cost_of_answer(&r.comp, a->priced ? &a->price : NULL, a->worst_usd, pl->prompt->len, &c);
        if (c.over_reservation &&
            prices_observe(hop->provider, hop->model, r.comp.cost, r.comp.prompt_tokens,
                           r.comp.completion_tokens, pl->prompt->len, a->max_tokens))
            LOG_WARN("%s/%s charged $%.6f, more than the $%.6f reserved: the configured price "
                     "is too low; later reservations use the observed rate", hop->provider,
                     hop->model, r.comp.cost, a->worst_usd);
        if (c.nonsense)
            LOG_WARN("%s/%s: %s", hop->provider, hop->model, c.note);
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
        upstream_cancel(R.d.up, a->upstream_id);   /* on the loop thread: at once, on the wire */
        a->upstream_id = 0;
        R.in_flight--;
        const rf_hop *hop = plan_hop(a->plan);
        breakers_release(R.d.breakers, hop->provider, hop->model, now_mono_ms());
        a->breaker_taken = 0;
        attempt_report r;
        memset(&r, 0, sizeof r);
        r.kind = AR_CANCELLED;
        r.retry_after_ms = -1;
        r.tokens = a->sp ? stream_tokens(a->sp) : -1;
        r.sent_ms = a->sent_wall_ms;
        snprintf(r.error, sizeof r.error, "cancelled: the prompt changed or was removed");
        /* What streamed before the abort is billed as an estimate from the tokens seen;
         * an unstreamed request in flight is billed at its worst case (the provider may
         * finish and charge it). */
        cost_result c;
        if (a->sp)
            cost_of_partial(r.tokens, a->priced ? &a->price : NULL, a->plan->prompt->len, &c);
        else {
            memset(&c, 0, sizeof c);
            if (a->priced) {
                c.has_cost = 1;
                c.nusd = cost_usd_to_nusd(a->worst_usd);
                c.estimated = 1;
                snprintf(c.note, sizeof c.note, "cancelled in flight: billed the worst case");
            }
        }
        settle(a, &r, &c, NULL);
        finish(a, &r);
    } else if (a->phase == AT_TIMER && a->timer_id) {
        upstream_cancel_timer(R.d.up, a->timer_id);
        a->timer_id = 0;
        finish_cancelled(a);
    }
    /* AT_NEW: step_begin sees the flag; AT_WAIT_SLOT: ends when its turn comes;
     * AT_DONE: already reported. */
    runner_release(a);   /* step_cancel's reference */
}

void runner_cancel(attempt *a)
{
    if (!a || __atomic_exchange_n(&a->cancelled, 1, __ATOMIC_ACQ_REL))
        return;
    __atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
    rf_err err;
    if (upstream_after(R.d.up, 0, step_cancel, a, &err) < 0)
        runner_release(a);   /* shutting down: nothing is in flight any more */
}

void runner_shutdown(void)
{
    /* upstream is stopped: no step or callback will run again.  Whatever is still live
     * holds its reservation and slot; give them back and free the plans.  The handles
     * themselves go when their last reference does (the jobs table drops its own). */
    pthread_mutex_lock(&R.live_lock);
    attempt *list = R.live;
    pthread_mutex_unlock(&R.live_lock);
    for (attempt *a = list; a; a = a->next) {
        if (a->phase == AT_DONE)
            continue;
        if (a->reservation)
            budget_release(R.d.budget, a->reservation);
        a->reservation = 0;
        a->phase = AT_DONE;
        attempt_plan_free(a->plan);
        a->plan = NULL;
    }
    void *w;
    while (R.limits && (w = plimit_any_waiter(R.limits)))
        ;
    plimits_free(R.limits);
    R.limits = NULL;
    /* Drop the runner's references: an attempt that never reported still holds one. */
    for (;;) {
        pthread_mutex_lock(&R.live_lock);
        attempt *a = R.live;
        while (a && a->refs <= 0)
            a = a->next;
        pthread_mutex_unlock(&R.live_lock);
        if (!a)
            break;
        /* the job table has already released its reference at jobs_shutdown */
        runner_release(a);
    }
}
