/* runner_request.c — the request for a hop (openai.c builds the body: one place builds
 * requests) and the verdict on what came back: the answer's text as it streams into
 * NAME.live, its classification (router_classify decides; this gathers the facts) and the
 * ledger row of a billed attempt.  Part of the runner (runner_int.h); loop thread only. */
#include "runner_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "live.h"
#include "log.h"
#include "openai.h"
#include "redact.h"

#define RESPONSE_MAX (8u * 1024 * 1024)  /* no completion is larger; a bigger body is hostile */

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
                         size_t max, size_t *n_models)
{
    const rf_tier *t = pl->tier;
    const rf_hop *hop = plan_hop(pl);
    models[0] = hop->model;
    size_t n = 1, covered = 1;
    *n_models = 1;
    if (!p || !t->openrouter_models || p->kind != RF_KIND_OPENROUTER || !t->allow_fallbacks)
        return 1;
    int64_t now = now_mono_ms();
    for (size_t i = pl->hop_index + 1; i < t->route_len && n < max; i++) {
        if (strcmp(t->route[i].provider, hop->provider) != 0)
            break;
        covered++;
        if (breakers_ready_at(rn.d.breakers, t->route[i].provider, t->route[i].model, now) <= now)
            models[n++] = t->route[i].model;
    }
    *n_models = n;
    return covered;
}

void runner_plan_models(attempt *a, const rf_provider *p)
{
    if (a->hops_covered > 0)
        return;   /* decided when the reservation priced them: send what was priced */
    a->hops_covered = (int)models_for(a->plan, p, a->models,
                                      sizeof a->models / sizeof *a->models, &a->n_models);
}

int runner_served_offset(const attempt *a, const char *served_model)
{
    const attempt_plan *pl = a->plan;
    if (a->hops_covered <= 1 || !served_model)
        return 0;
    /* the exact model, else the longest route model the answer's begins with
     * ("openai/gpt-4o" served as "openai/gpt-4o-2024-08-06") */
    int best = 0;
    size_t best_len = 0;
    for (int i = 0; i < a->hops_covered && pl->hop_index + (size_t)i < pl->tier->route_len; i++) {
        const char *m = pl->tier->route[pl->hop_index + (size_t)i].model;
        size_t n = strlen(m);
        if (strcmp(m, served_model) == 0)
            return i;
        if (n > best_len && strncmp(m, served_model, n) == 0) {
            best = i;
            best_len = n;
        }
    }
    return best;
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
upstream_request *runner_build_request(attempt *a, const rf_provider *p, rf_err *err)
{
    const attempt_plan *pl = a->plan;
    const rf_tier *t = pl->tier;
    char *user = NULL;
    if (pl->tag && asprintf(&user, "pipeline:%s", pl->tag) < 0) {
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    runner_plan_models(a, p);
    char *session = session_for(pl);
    int openrouter = p->kind == RF_KIND_OPENROUTER;
    openai_request_in in = {
        .model = a->models[0],
        .models = a->hops_covered > 1 ? a->models : NULL,
        .n_models = a->hops_covered > 1 ? a->n_models : 0,
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
void runner_judge(attempt *a, const upstream_result *res, long retry_after_max_ms,
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
        a->funds_gone = info.insufficient_credits || info.key_limit;
        at.context_length = info.context_length;
        at.unsupported_param = info.unsupported_param;
        at.content_policy = info.content_policy;
        snprintf(detail, sizeof detail, "%s", info.msg);
    }
    r->outcome = router_classify(&at, retry_after_max_ms);
    if (r->outcome != RF_OUT_SUCCESS)
        snprintf(r->error_detail, sizeof r->error_detail, "%s", info.detail_json);
    /* A timeout, a cut or a stall moves to the next hop at once (retrying is opt-in). */
    r->timed_out = te == RF_TE_TIMEOUT || te == RF_TE_FIRST_TOKEN || te == RF_TE_STALL ||
                   te == RF_TE_TRUNCATED;
    if (r->outcome != RF_OUT_SUCCESS) {
        if (te != RF_TE_NONE)
            snprintf(r->error, sizeof r->error, "%s", res->error[0] ? res->error : "transport error");
        else
            describe_failure(res, detail, r->error, sizeof r->error);
    }
    /* Money gone is not ill health: the provider is marked out of budget instead (on_answer),
     * until its reset, which a breaker's cooldown knows nothing of. */
    *scope = a->funds_gone ? BREAKER_SCOPE_NONE
                           : breakers_scope_of(te, res->http_status, at.parse_status != 0);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The ledger row of a billed attempt: 0, or -1 when out of memory. */
int runner_ledger_row(const attempt *a, const cost_result *c, const openai_completion *comp,
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
    /* the route hop that served: with OpenRouter's "models", maybe one after hop */
    row->model = strdup(pl->tier->route[pl->hop_index + (size_t)a->served_offset].model);
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
