/* chat.c — one chat completion request, from its body to the generation record it leaves.
 *
 * A request names one model, or several ("models": [...], OpenRouter's server-side
 * fallback): each is tried in order, a failing one costs its latency_ms and moves on, and
 * the first that answers successfully serves; when all fail, the last failure is what the
 * client gets.  Every model tried is counted in /stats.  The served model is "in flight"
 * until the request completes.
 *
 * Money: an answer whose status is 2xx is billed (per model, in total, and to the key)
 * the moment it is sent, whatever the client then does with it; so is a stream the client
 * cancels.  What is billed is the usage plan's charge; what the reply reports as its cost
 * may differ on purpose (reply.c).  Billed requests leave a generation record for
 * /api/v1/generation when they complete. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_MODELS 32   /* models tried for one request, at most */

/* One model tried for the request. */
typedef struct attempt {
    char *model;        /* owned */
    char *provider;     /* owned */
    unsigned int status;
    long latency_ms;
} attempt;

struct sim_chat {
    char *model;            /* the model served (last tried), as requested; owned */
    char *served;           /* its reply "model"; owned */
    char *provider;         /* owned */
    char *auth;             /* Authorization header, or NULL; owned */
    char *id;               /* the reply's id, the generation's id; owned */
    char *service_tier, *session_id, *user;   /* from the request, or NULL; owned */
    char *model_literal;    /* echo_auth_ok's "model", or NULL; owned */
    attempt attempts[MAX_MODELS];
    size_t nattempts;
    bool in_flight;
    sim_stream *stream;     /* referenced, for a streamed reply */
    bool sent, charged;
    unsigned int status;
    double charge;
    long prompt_tokens, completion_tokens;
    const char *finish_reason;   /* of a reply sent at once */
    long generation_delay_ms;
    uint64_t arrival_ns, sent_ns;
    struct timespec arrival_wall;
};

/* ---------------------------------------------------------------- bookkeeping */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const char *string_of(const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void add_attempt(struct sim_chat *chat, const char *model, const sim_verdict *v,
                        unsigned int status)
{
    if (chat->nattempts == MAX_MODELS)
        return;
    attempt *a = &chat->attempts[chat->nattempts++];
    a->model = strdup(model);
    a->provider = strdup(sim_provider_name(v));
    a->status = status;
    a->latency_ms = v->behaviour->latency_ms;
}

void sim_chat_free(struct sim_chat *chat)
{
    if (!chat)
        return;
    for (size_t i = 0; i < chat->nattempts; i++) {
        free(chat->attempts[i].model);
        free(chat->attempts[i].provider);
    }
    sim_stream_release(chat->stream);
    free(chat->model);
    free(chat->served);
    free(chat->provider);
    free(chat->auth);
    free(chat->id);
    free(chat->service_tier);
    free(chat->session_id);
    free(chat->user);
    free(chat->model_literal);
    free(chat);
}

/* The status an error attempt is reported with when it is passed over. */
static unsigned int nominal_status(const sim_verdict *v)
{
    if (v->status)
        return v->status;
    if (v->behaviour->key_limit)
        return 403;
    if (v->behaviour->echo_auth != SIM_ECHO_NONE)
        return 401;
    return v->mode == SIM_MODE_RETRY_AFTER_YEARS ? 429 : 502;
}

/* X-OpenRouter-Metadata: enabled (or its experimental name), any case. */
static bool metadata_asked(struct MHD_Connection *conn)
{
    const char *names[] = {"X-OpenRouter-Metadata", "X-OpenRouter-Experimental-Metadata"};
    for (size_t i = 0; i < 2; i++) {
        const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, names[i]);
        if (v && strcasecmp(v, "enabled") == 0)
            return true;
    }
    return false;
}

/* openrouter_metadata for a success after the attempts so far (the last one served). */
static cJSON *router_metadata(const struct sim_chat *chat, const char *requested)
{
    cJSON *doc = cJSON_CreateObject(), *endpoints, *available, *attempts;
    const attempt *served = &chat->attempts[chat->nattempts - 1];
    char summary[300];
    snprintf(summary, sizeof summary, "attempts=%zu, selected=%.200s", chat->nattempts,
             served->provider ? served->provider : "");
    bool ok = doc && cJSON_AddStringToObject(doc, "requested", requested) &&
              cJSON_AddStringToObject(doc, "strategy", chat->nattempts > 1 ? "fallback" : "direct") &&
              cJSON_AddNullToObject(doc, "region") &&
              cJSON_AddStringToObject(doc, "summary", summary) &&
              cJSON_AddNumberToObject(doc, "attempt", (double)chat->nattempts) &&
              cJSON_AddFalseToObject(doc, "is_byok") &&
              (endpoints = cJSON_AddObjectToObject(doc, "endpoints")) &&
              (available = cJSON_AddArrayToObject(endpoints, "available")) &&
              cJSON_AddNumberToObject(endpoints, "total", (double)chat->nattempts) &&
              (attempts = cJSON_AddArrayToObject(doc, "attempts"));
    for (size_t i = 0; ok && i < chat->nattempts; i++) {
        const attempt *a = &chat->attempts[i];
        cJSON *e = cJSON_CreateObject();
        if (!e || !cJSON_AddItemToArray(available, e)) {
            cJSON_Delete(e);
            ok = false;
            break;
        }
        cJSON *t = cJSON_CreateObject();
        if (!t || !cJSON_AddItemToArray(attempts, t)) {
            cJSON_Delete(t);
            ok = false;
            break;
        }
        ok = a->model && a->provider && cJSON_AddStringToObject(e, "model", a->model) &&
             cJSON_AddStringToObject(e, "provider", a->provider) &&
             cJSON_AddBoolToObject(e, "selected", i + 1 == chat->nattempts) &&
             cJSON_AddStringToObject(t, "model", a->model) &&
             cJSON_AddStringToObject(t, "provider", a->provider) &&
             cJSON_AddNumberToObject(t, "status", a->status) &&
             cJSON_AddNumberToObject(t, "latency_ms", (double)a->latency_ms);
    }
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* ---------------------------------------------------------------- the request */

static enum MHD_Result refuse(struct MHD_Connection *conn, const char *message)
{
    sim_state_record_invalid();
    return sim_queue_reply(conn, 400, sim_json_response(
        sim_error_doc(message, "invalid_request_error", 400)));
}

/* The models to try: "model", then those of "models" not already named.  Returns how
 * many (0: none named). */
static size_t candidates_of(const cJSON *request, const char **out)
{
    size_t n = 0;
    const char *model = string_of(request, "model");
    if (model && *model)
        out[n++] = model;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(request, "models");
    const cJSON *item;
    if (!cJSON_IsArray(models))
        return n;
    cJSON_ArrayForEach(item, models) {
        if (!cJSON_IsString(item) || !*item->valuestring || n == MAX_MODELS)
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strcmp(out[i], item->valuestring) == 0;
        if (!seen)
            out[n++] = item->valuestring;
    }
    return n;
}

/* Work out the reply (or close, hang, reset) of the served attempt into ex. */
static bool build_outcome(struct MHD_Connection *conn, sim_exchange *ex, const cJSON *request,
                          const char *model, const sim_verdict *v, bool stream,
                          bool include_usage)
{
    struct sim_chat *chat = ex->chat;
    if (v->mode == SIM_MODE_HANG) {
        ex->outcome = SIM_OUTCOME_HANG;
    } else if (v->mode == SIM_MODE_CLOSE) {
        ex->outcome = SIM_OUTCOME_CLOSE;
    } else if (v->mode == SIM_MODE_RESET_BEFORE_HEADERS) {
        ex->outcome = SIM_OUTCOME_RESET;
    } else if (sim_hostile_is_raw(v->mode)) {
        ex->outcome = SIM_OUTCOME_RAW;
        ex->status = v->status ? v->status : 200;
        ex->raw = sim_hostile_raw(request, model, v, v->mode, v->status, &ex->raw_len);
        return ex->raw != NULL;
    } else if (stream && !sim_verdict_is_error(v)) {
        ex->outcome = SIM_OUTCOME_REPLY;
        ex->status = v->status ? v->status : 200;
        ex->response = sim_stream_response(conn, request, model, v, include_usage,
                                           &chat->stream);
        return ex->response != NULL;
    } else {
        ex->outcome = SIM_OUTCOME_REPLY;
        ex->response = sim_chat_reply(conn, request, model, v, chat->auth, &ex->status);
        if (ex->response && ex->status >= 200 && ex->status < 300 &&
            MHD_add_response_header(ex->response, "X-Generation-Id", chat->id) != MHD_YES) {
            MHD_destroy_response(ex->response);
            ex->response = NULL;
        }
        chat->finish_reason = v->mode == SIM_MODE_FINISH_ERROR ? "error"
                              : v->mode == SIM_MODE_NO_CHOICES ? NULL
                                                               : "stop";
        return ex->response != NULL;
    }
    return true;
}

/* The answer for a key over its /control/key limit: OpenRouter's 403. */
static bool key_limit_outcome(sim_exchange *ex, const char *retry_after)
{
    ex->outcome = SIM_OUTCOME_REPLY;
    ex->status = 403;
    ex->response = sim_json_response(sim_or_error_doc(
        403, "Key limit exceeded (total limit). Manage it in the key's settings.", NULL));
    if (ex->response && *retry_after &&
        MHD_add_response_header(ex->response, MHD_HTTP_HEADER_RETRY_AFTER, retry_after) != MHD_YES) {
        MHD_destroy_response(ex->response);
        ex->response = NULL;
    }
    return ex->response != NULL;
}

enum MHD_Result sim_chat_handle(struct MHD_Connection *conn, sim_exchange *ex)
{
    cJSON *request = sim_parse_body(ex);
    if (!request)
        return refuse(conn, "sim: the request body is not a JSON object");
    const char *candidates[MAX_MODELS];
    size_t ncandidates = candidates_of(request, candidates);
    if (ncandidates == 0) {
        cJSON_Delete(request);
        return refuse(conn, "sim: \"model\" must be a non-empty string");
    }
    struct sim_chat *chat = calloc(1, sizeof *chat);
    if (!chat) {
        cJSON_Delete(request);
        return MHD_NO;
    }
    ex->chat = chat;
    chat->arrival_ns = sim_now_ns();
    clock_gettime(CLOCK_REALTIME, &chat->arrival_wall);
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    chat->auth = dup_or_null(auth);
    chat->service_tier = dup_or_null(string_of(request, "service_tier"));
    chat->session_id = dup_or_null(string_of(request, "session_id"));
    chat->user = dup_or_null(string_of(request, "user"));
    bool stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(request, "stream"));
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(request, "stream_options");
    bool include_usage =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(options, "include_usage"));
    uint64_t serial = sim_state_count_request();
    char id[40];
    snprintf(id, sizeof id, "%s-%llu", stream ? "gen" : "sim", (unsigned long long)serial);
    chat->id = strdup(id);

    char retry_after[32];
    bool limited = sim_key_over_limit(auth, retry_after, sizeof retry_after);
    sim_verdict v;
    const char *model = NULL;
    long waited_ms = 0;
    for (size_t i = 0; i < ncandidates; i++) {
        model = candidates[i];
        sim_state_record(model, serial, ex->body, ex->body_len, auth, stream, limited, &v);
        if (limited || i + 1 == ncandidates || !sim_verdict_is_error(&v))
            break;
        add_attempt(chat, model, &v, nominal_status(&v));   /* passed over: the next one */
        waited_ms += v.behaviour->latency_ms;
        sim_behaviour_release(v.behaviour);
    }
    const sim_behaviour *b = v.behaviour;
    chat->model = strdup(model);
    chat->served = strdup(sim_served_model(&v, model));
    chat->provider = strdup(sim_provider_name(&v));
    chat->generation_delay_ms = b->generation_delay_ms;
    if (!chat->model || !chat->served || !chat->provider || !chat->id) {
        sim_behaviour_release(v.behaviour);
        cJSON_Delete(request);
        return MHD_NO;   /* out of memory: nothing counted in flight, nothing billed */
    }
    sim_state_in_flight(model, 1);
    chat->in_flight = true;
    ex->due_ns = chat->arrival_ns + (uint64_t)(waited_ms + b->latency_ms) * 1000000ULL;

    bool success = !limited && !sim_verdict_is_error(&v);
    cJSON *metadata = NULL;
    if (success) {
        v.service_tier = chat->service_tier;
        add_attempt(chat, model, &v, v.status ? v.status : 200);
        if (metadata_asked(conn))
            v.or_metadata = metadata = router_metadata(chat, candidates[0]);
        if (b->echo_auth_ok != SIM_ECHO_NONE)
            v.model_literal = chat->model_literal =
                sim_echo_literal("", sim_auth_key(auth), b->echo_auth_ok);
    } else {
        add_attempt(chat, model, &v, limited ? 403 : nominal_status(&v));
    }
    sim_usage u;
    enum sim_mode plan_mode = v.mode == SIM_MODE_FINISH_ERROR || v.mode == SIM_MODE_EMPTY_CONTENT
                                  ? v.mode : SIM_MODE_OK;
    bool ok = sim_usage_plan(request, model, &v, plan_mode, &u) == 0;
    if (ok) {
        chat->charge = u.charge;
        chat->prompt_tokens = u.prompt_tokens;
        chat->completion_tokens = u.completion_tokens;
        sim_usage_free(&u);
        ok = limited ? key_limit_outcome(ex, retry_after)
                     : build_outcome(conn, ex, request, model, &v, stream, include_usage);
    }
    cJSON_Delete(metadata);
    sim_behaviour_release(v.behaviour);
    cJSON_Delete(request);
    if (!ok)
        return MHD_NO;   /* out of memory */
    return sim_http_proceed(conn, ex);
}

/* ---------------------------------------------------------------- when it is over */

void sim_chat_sent(struct sim_chat *chat, unsigned int status)
{
    chat->sent = true;
    chat->sent_ns = sim_now_ns();
    chat->status = status;
    if (status >= 200 && status < 300) {
        chat->charged = true;
        sim_state_charge(chat->model, chat->charge);
        sim_key_charge(chat->auth, chat->charge);
    }
}

static double ms_between(uint64_t from_ns, uint64_t to_ns)
{
    return to_ns > from_ns ? (double)((to_ns - from_ns) / 1000000ULL) : 0;
}

static bool add_string_or_null(cJSON *obj, const char *key, const char *value)
{
    return value ? cJSON_AddStringToObject(obj, key, value) != NULL
                 : cJSON_AddNullToObject(obj, key) != NULL;
}

/* OpenRouter's generation record of the request. */
static cJSON *generation_record(const struct sim_chat *chat, bool cancelled,
                                const char *finish, uint64_t done_ns)
{
    char created[64], upstream[64];
    struct tm tm;
    gmtime_r(&chat->arrival_wall.tv_sec, &tm);
    size_t n = strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(created + n, sizeof created - n, ".%06ld+00:00", chat->arrival_wall.tv_nsec / 1000);
    snprintf(upstream, sizeof upstream, "chatcmpl-%s", chat->id);
    double pt = (double)chat->prompt_tokens, ct = (double)chat->completion_tokens;
    cJSON *d = cJSON_CreateObject(), *responses;
    bool ok = d && cJSON_AddStringToObject(d, "id", chat->id) &&
              cJSON_AddStringToObject(d, "upstream_id", upstream) &&
              cJSON_AddNumberToObject(d, "total_cost", chat->charge) &&
              cJSON_AddNullToObject(d, "cache_discount") &&
              cJSON_AddNumberToObject(d, "upstream_inference_cost", chat->charge) &&
              cJSON_AddStringToObject(d, "created_at", created) &&
              cJSON_AddStringToObject(d, "model", chat->served) &&
              cJSON_AddNullToObject(d, "app_id") &&
              cJSON_AddBoolToObject(d, "streamed", chat->stream != NULL) &&
              cJSON_AddBoolToObject(d, "cancelled", cancelled) &&
              cJSON_AddStringToObject(d, "provider_name", chat->provider) &&
              cJSON_AddNumberToObject(d, "latency", ms_between(chat->arrival_ns, done_ns)) &&
              cJSON_AddNumberToObject(d, "moderation_latency", 0) &&
              cJSON_AddNumberToObject(d, "generation_time", ms_between(chat->sent_ns, done_ns)) &&
              add_string_or_null(d, "finish_reason", finish) &&
              add_string_or_null(d, "native_finish_reason", finish) &&
              cJSON_AddNumberToObject(d, "tokens_prompt", pt) &&
              cJSON_AddNumberToObject(d, "tokens_completion", ct) &&
              cJSON_AddNumberToObject(d, "native_tokens_prompt", pt) &&
              cJSON_AddNumberToObject(d, "native_tokens_completion", ct) &&
              cJSON_AddNumberToObject(d, "native_tokens_completion_images", 0) &&
              cJSON_AddNumberToObject(d, "native_tokens_reasoning", 0) &&
              cJSON_AddNumberToObject(d, "native_tokens_cached", 0) &&
              cJSON_AddNumberToObject(d, "num_media_prompt", 0) &&
              cJSON_AddNumberToObject(d, "num_media_completion", 0) &&
              cJSON_AddNumberToObject(d, "num_search_results", 0) &&
              cJSON_AddStringToObject(d, "origin", "") &&
              cJSON_AddNumberToObject(d, "usage", chat->charge) &&
              cJSON_AddFalseToObject(d, "is_byok") &&
              add_string_or_null(d, "external_user", chat->user) &&
              cJSON_AddStringToObject(d, "api_type", "completions") &&
              cJSON_AddNullToObject(d, "router") &&
              add_string_or_null(d, "service_tier", chat->service_tier) &&
              add_string_or_null(d, "session_id", chat->session_id) &&
              (responses = cJSON_AddArrayToObject(d, "provider_responses"));
    for (size_t i = 0; ok && i < chat->nattempts; i++) {
        const attempt *a = &chat->attempts[i];
        char endpoint[300];
        snprintf(endpoint, sizeof endpoint, "sim-%.256s", a->provider ? a->provider : "");
        cJSON *r = cJSON_CreateObject();
        ok = r && cJSON_AddItemToArray(responses, r);
        if (!ok) {
            cJSON_Delete(r);
            break;
        }
        ok = a->model && a->provider && cJSON_AddStringToObject(r, "endpoint_id", endpoint) &&
             cJSON_AddStringToObject(r, "model_permaslug", a->model) &&
             cJSON_AddStringToObject(r, "provider_name", a->provider) &&
             cJSON_AddNumberToObject(r, "status", a->status) &&
             cJSON_AddNumberToObject(r, "latency", (double)a->latency_ms) &&
             cJSON_AddFalseToObject(r, "is_byok");
    }
    if (!ok) {
        cJSON_Delete(d);
        return NULL;
    }
    return d;
}

void sim_chat_completed(struct sim_chat *chat, enum MHD_RequestTerminationCode toe)
{
    uint64_t now = sim_now_ns();
    bool cancelled = false;
    const char *finish = chat->finish_reason;
    if (chat->stream && chat->sent) {
        sim_stream_outcome out;
        sim_stream_get_outcome(chat->stream, &out);
        cancelled = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !out.ended_by_us;
        finish = out.finish_reason;
        sim_state_stream_done(chat->model, out.tokens_sent, cancelled);
    }
    if (chat->in_flight) {
        sim_state_in_flight(chat->model, -1);
        chat->in_flight = false;
    }
    if (chat->charged) {
        cJSON *record = generation_record(chat, cancelled, finish, now);
        if (record)
            sim_generation_store(chat->id, record,
                                 now + (uint64_t)chat->generation_delay_ms * 1000000ULL);
    }
}
