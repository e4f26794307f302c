/* http.c — routefs-sim's request handler: the chat completion endpoint with its scripted
 * behaviours, the control endpoints and /stats.
 *
 * libmicrohttpd calls the handler several times per request: once with the headers, once
 * per chunk of body, once more when the body is complete, and again after each resume of
 * a suspended connection.  The per-request `exchange` carries state across those calls.
 * A chat reply is built when the request is complete and queued once its delay is over;
 * in between the connection is suspended (timer.c) and wakes up every LIVENESS_CHECK_NS
 * to see whether the client gave up, so a hung request does not pin a socket forever. */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BODY_MAX (16 * 1024 * 1024)                 /* larger request bodies get 413 */
#define ECHO_MAX 200                                /* bytes of the user message echoed */
#define LIVENESS_CHECK_NS (500ULL * 1000 * 1000)    /* waiting connections look this often */

enum exchange_phase {
    PHASE_RECEIVING,   /* headers and body still arriving, nothing decided */
    PHASE_WAITING,     /* decided; suspended until due (or forever, for "hang") */
};

enum outcome {
    OUTCOME_REPLY,     /* queue `response` */
    OUTCOME_CLOSE,     /* drop the connection without a word */
    OUTCOME_HANG,      /* never answer */
    OUTCOME_RAW,       /* write `raw` to the socket ourselves, then close (hostile.c) */
};

typedef struct exchange {
    enum exchange_phase phase;
    char *body;                      /* request body, NUL-terminated once non-NULL */
    size_t body_len, body_cap;
    bool body_too_large;
    enum outcome outcome;
    struct MHD_Response *response;   /* the reply to queue once due */
    char *raw;                       /* OUTCOME_RAW: the bytes to write once due */
    size_t raw_len;
    unsigned int status;
    uint64_t due_ns;                 /* when the reply (or close) is due */
} exchange;

/* A "truncated" reply: Content-Length says full_len, only sent_len bytes come. */
typedef struct partial_body {
    char *text;
    size_t sent_len;
} partial_body;

/* ---------------------------------------------------------------- reply helpers */

static const char json_type[] = "application/json";

struct MHD_Response *sim_text_response(char *text, size_t len, const char *content_type)
{
    if (!text)
        return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return NULL;
    }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* A JSON response from doc, which is consumed. */
static struct MHD_Response *json_response(cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return text ? sim_text_response(text, strlen(text), json_type) : NULL;
}

/* A response from a string constant: no copy, nothing to free. */
static struct MHD_Response *static_response(const char *text, const char *content_type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* {"error":{"message":..., "type":..., "code":...}}; type may be NULL. */
static cJSON *error_doc(const char *message, const char *type, int code)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *error = doc ? cJSON_AddObjectToObject(doc, "error") : NULL;
    if (!error || !cJSON_AddStringToObject(error, "message", message) ||
        (type && !cJSON_AddStringToObject(error, "type", type)) ||
        !cJSON_AddNumberToObject(error, "code", code)) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* Queue r (consumed); a NULL r means we ran out of memory: drop the connection. */
static enum MHD_Result queue_reply(struct MHD_Connection *conn, unsigned int status,
                                   struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned int status,
                                   const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned int status,
                                   const char *type, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return queue_reply(conn, status, json_response(error_doc(message, type, (int)status)));
}

/* ---------------------------------------------------------------- chat replies */

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    partial_body *p = cls;
    if (pos >= p->sent_len)
        return MHD_CONTENT_READER_END_WITH_ERROR;   /* MHD closes: the body stays short */
    size_t n = p->sent_len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, p->text + pos, n);
    return (ssize_t)n;
}

static void partial_free(void *cls)
{
    partial_body *p = cls;
    free(p->text);
    free(p);
}

/* A response announcing all of text (consumed) but sending only its first half. */
static struct MHD_Response *truncated_response(char *text)
{
    partial_body *p = text ? malloc(sizeof *p) : NULL;
    if (!p) {
        free(text);
        return NULL;
    }
    size_t len = strlen(text);
    p->text = text;
    p->sent_len = len / 2;
    struct MHD_Response *r =
        MHD_create_response_from_callback(len, 4096, partial_read, p, partial_free);
    if (!r) {
        partial_free(p);
        return NULL;
    }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, json_type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* Bytes of text a message's content carries: a string, or the "text" of content parts. */
static size_t content_bytes(const cJSON *content)
{
    if (cJSON_IsString(content))
        return strlen(content->valuestring);
    size_t n = 0;
    const cJSON *part;
    if (cJSON_IsArray(content))
        cJSON_ArrayForEach(part, content) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(text))
                n += strlen(text->valuestring);
        }
    return n;
}

cJSON *sim_completion_doc(const cJSON *request, const char *model, const sim_verdict *v,
                             enum sim_mode mode)
{
    const sim_behaviour *b = v->behaviour;
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(request, "messages");
    const cJSON *message;
    const char *last_user = NULL;
    size_t prompt_bytes = 0;
    const cJSON *list = cJSON_IsArray(messages) ? messages : NULL;
    cJSON_ArrayForEach(message, list) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
        prompt_bytes += content_bytes(content);
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0)
            last_user = cJSON_IsString(content) ? content->valuestring : NULL;
    }

    char *echo = NULL;
    const char *content = NULL;   /* NULL: JSON null */
    if (mode == SIM_MODE_FINISH_ERROR) {
        content = "";
    } else if (mode == SIM_MODE_EMPTY_CONTENT) {
        content = NULL;
    } else if (b->content) {
        content = b->content;
    } else {
        size_t user_len = last_user ? sim_utf8_cut(last_user, strlen(last_user), ECHO_MAX) : 0;
        if (asprintf(&echo, "sim[%s]: %.*s", model, (int)user_len, last_user ? last_user : "") < 0)
            return NULL;
        content = echo;
    }
    size_t completion_bytes = content ? strlen(content) : 0;

    char id[40];
    snprintf(id, sizeof id, "sim-%llu", (unsigned long long)v->serial);
    cJSON *doc = cJSON_CreateObject();
    cJSON *choices = NULL, *usage = NULL;
    bool ok = doc && cJSON_AddStringToObject(doc, "id", id) &&
              cJSON_AddStringToObject(doc, "object", "chat.completion") &&
              cJSON_AddNumberToObject(doc, "created", (double)time(NULL)) &&
              cJSON_AddStringToObject(doc, "model", b->served_model ? b->served_model : model) &&
              cJSON_AddStringToObject(doc, "provider", b->provider ? b->provider : "Sim") &&
              (choices = cJSON_AddArrayToObject(doc, "choices"));
    if (ok && mode != SIM_MODE_NO_CHOICES) {
        cJSON *choice = cJSON_CreateObject();
        cJSON *msg = NULL;
        if (!choice || !cJSON_AddItemToArray(choices, choice)) {
            cJSON_Delete(choice);
            choice = NULL;
        }
        ok = choice && cJSON_AddNumberToObject(choice, "index", 0) &&
             (msg = cJSON_AddObjectToObject(choice, "message")) &&
             cJSON_AddStringToObject(msg, "role", "assistant") &&
             (content ? cJSON_AddStringToObject(msg, "content", content)
                      : cJSON_AddNullToObject(msg, "content")) &&
             cJSON_AddStringToObject(choice, "finish_reason",
                                     mode == SIM_MODE_FINISH_ERROR ? "error" : "stop");
    }
    double prompt_tokens = (double)(prompt_bytes / 4 + 1);
    double completion_tokens = (double)(completion_bytes / 4 + 1);
    ok = ok && (usage = cJSON_AddObjectToObject(doc, "usage")) &&
         cJSON_AddNumberToObject(usage, "prompt_tokens", prompt_tokens) &&
         cJSON_AddNumberToObject(usage, "completion_tokens", completion_tokens) &&
         cJSON_AddNumberToObject(usage, "total_tokens", prompt_tokens + completion_tokens) &&
         (!b->has_cost || cJSON_AddNumberToObject(usage, "cost", b->cost));
    free(echo);
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* Build the reply for a chat request that is to be answered; sets *status. */
static struct MHD_Response *chat_reply(struct MHD_Connection *conn, const cJSON *request,
                                       const char *model, const sim_verdict *v,
                                       unsigned int *status)
{
    const sim_behaviour *b = v->behaviour;
    enum sim_mode mode = v->failing ? b->mode : SIM_MODE_OK;
    unsigned int forced = v->failing ? (unsigned int)b->status : 0;   /* 0: mode's own */
    struct MHD_Response *r;

    switch (mode) {
    case SIM_MODE_MALFORMED:
        *status = forced ? forced : 200;
        r = static_response("{\"choices\": [ {\"mess", json_type);
        break;
    case SIM_MODE_HTML:   /* what a proxy in front of a dead provider says */
        *status = forced ? forced : 502;
        r = static_response("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html");
        break;
    case SIM_MODE_ERROR_OBJECT:
        *status = forced ? forced : 200;
        r = json_response(error_doc("sim: upstream overloaded", NULL, 502));
        break;
    case SIM_MODE_TRUNCATED: {
        cJSON *doc = sim_completion_doc(request, model, v, SIM_MODE_OK);
        char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
        cJSON_Delete(doc);
        *status = forced ? forced : 200;
        r = truncated_response(text);
        break;
    }
    default:
        if (sim_mode_is_hostile(mode)) {
            r = sim_hostile_response(conn, request, model, v, mode, forced, status);
        } else if (mode == SIM_MODE_OK && forced >= 300) {
            char message[64];
            snprintf(message, sizeof message, "sim: status %u", forced);
            *status = forced;
            r = json_response(error_doc(b->error_message ? b->error_message : message,
                                        "sim_error", (int)forced));
        } else {
            *status = forced ? forced : 200;
            r = json_response(sim_completion_doc(request, model, v, mode));
        }
        break;
    }
    if (r && v->failing && b->retry_after &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, b->retry_after) != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

/* The client closed its end while we were waiting? */
static bool peer_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return false;
    char byte;
    ssize_t n = recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Act on a decided exchange: wait (suspended) until due, then reply or close. */
static enum MHD_Result proceed(struct MHD_Connection *conn, exchange *ex)
{
    uint64_t now = sim_now_ns();
    if (ex->outcome == OUTCOME_HANG || now < ex->due_ns) {
        uint64_t wake = now + LIVENESS_CHECK_NS;
        if (ex->outcome != OUTCOME_HANG && ex->due_ns < wake)
            wake = ex->due_ns;
        ex->phase = PHASE_WAITING;
        return sim_timer_suspend(conn, wake) ? MHD_YES : MHD_NO;
    }
    if (ex->outcome == OUTCOME_CLOSE)
        return MHD_NO;
    if (ex->outcome == OUTCOME_RAW) {   /* no response queued: the socket is ours to write */
        sim_raw_send(conn, ex->raw, ex->raw_len);
        return MHD_NO;                  /* and libmicrohttpd closes it */
    }
    struct MHD_Response *r = ex->response;
    ex->response = NULL;
    return queue_reply(conn, ex->status, r);
}

/* Is [p, end) only JSON whitespace? */
static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
    return true;
}

/* Parse the body as a JSON object; NULL if it is not one. */
static cJSON *parse_body(const exchange *ex)
{
    if (!ex->body)
        return NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(ex->body, ex->body_len, &end, 0);
    if (doc && (!cJSON_IsObject(doc) || !only_whitespace(end, ex->body + ex->body_len))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static enum MHD_Result handle_chat(struct MHD_Connection *conn, exchange *ex)
{
    cJSON *request = parse_body(ex);
    if (!request) {
        sim_state_record_invalid();
        return reply_error(conn, 400, "invalid_request_error",
                           "sim: the request body is not a JSON object");
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(request, "model");
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
        sim_state_record_invalid();
        cJSON_Delete(request);
        return reply_error(conn, 400, "invalid_request_error",
                           "sim: \"model\" must be a non-empty string");
    }
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

    sim_verdict v;
    sim_state_record(model->valuestring, ex->body, ex->body_len, auth, &v);
    const sim_behaviour *b = v.behaviour;
    enum sim_mode mode = v.failing ? b->mode : SIM_MODE_OK;
    ex->due_ns = sim_now_ns() + (uint64_t)b->latency_ms * 1000000ULL;
    if (mode == SIM_MODE_HANG) {
        ex->outcome = OUTCOME_HANG;
    } else if (mode == SIM_MODE_CLOSE) {
        ex->outcome = OUTCOME_CLOSE;
    } else if (sim_hostile_is_raw(mode)) {
        ex->outcome = OUTCOME_RAW;
        ex->raw = sim_hostile_raw(request, model->valuestring, &v, mode,
                                  (unsigned int)b->status, &ex->raw_len);
    } else {
        ex->outcome = OUTCOME_REPLY;
        ex->response = chat_reply(conn, request, model->valuestring, &v, &ex->status);
    }
    sim_behaviour_release(v.behaviour);
    cJSON_Delete(request);
    if ((ex->outcome == OUTCOME_REPLY && !ex->response) || (ex->outcome == OUTCOME_RAW && !ex->raw))
        return MHD_NO;   /* out of memory */
    return proceed(conn, ex);
}

/* Where the "redirect" mode points: answers any method with a completion, counted as
 * model "sim/redirect-target", so a test can tell whether a client followed. */
static enum MHD_Result handle_redirected(struct MHD_Connection *conn, exchange *ex)
{
    static const char target[] = "sim/redirect-target";
    cJSON *request = parse_body(ex);
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    sim_verdict v;
    sim_state_record(target, ex->body ? ex->body : "", ex->body ? ex->body_len : 0, auth, &v);
    struct MHD_Response *r = json_response(sim_completion_doc(request, target, &v, SIM_MODE_OK));
    sim_behaviour_release(v.behaviour);
    cJSON_Delete(request);
    return queue_reply(conn, 200, r);
}

/* ---------------------------------------------------------------- control and stats */

static enum MHD_Result handle_set_behaviour(struct MHD_Connection *conn, exchange *ex)
{
    char err[256];
    cJSON *doc = parse_body(ex);
    if (!doc)
        return reply_error(conn, 400, "invalid_request_error",
                           "sim: the request body is not a JSON object");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(doc, "model");
    if (!cJSON_IsString(model) || model->valuestring[0] == '\0') {
        cJSON_Delete(doc);
        return reply_error(conn, 400, "invalid_request_error",
                           "sim: \"model\" must be a non-empty string (\"*\" for the default)");
    }
    sim_behaviour *b = sim_behaviour_parse(doc, true, err, sizeof err);
    if (!b) {
        cJSON_Delete(doc);
        return reply_error(conn, 400, "invalid_request_error", "sim: %s", err);
    }
    if (sim_state_set_behaviour(model->valuestring, b) < 0) {
        cJSON_Delete(doc);
        return MHD_NO;
    }
    sim_log("behaviour of \"%s\": %.*s", model->valuestring,
            (int)sim_utf8_cut(ex->body, ex->body_len, 400), ex->body);
    cJSON_Delete(doc);
    return queue_reply(conn, 200, static_response("{\"ok\":true}", json_type));
}

static enum MHD_Result handle_stats(struct MHD_Connection *conn)
{
    char *text = sim_state_stats_json();
    return queue_reply(conn, 200, text ? sim_text_response(text, strlen(text), json_type) : NULL);
}

static enum MHD_Result dispatch(struct MHD_Connection *conn, const char *url,
                                const char *method, exchange *ex)
{
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

    if (ex->body_too_large)
        return reply_error(conn, 413, "invalid_request_error",
                           "sim: request body over %d bytes", BODY_MAX);
    if (post && (strcmp(url, "/v1/chat/completions") == 0 ||
                 strcmp(url, "/chat/completions") == 0))
        return handle_chat(conn, ex);
    if (post && (strcmp(url, "/control/behaviour") == 0 ||
                 strcmp(url, "/control/behavior") == 0))
        return handle_set_behaviour(conn, ex);
    if (post && strcmp(url, "/control/reset") == 0) {
        sim_state_reset();
        sim_log("reset");
        return queue_reply(conn, 200, static_response("{\"ok\":true}", json_type));
    }
    if ((post || get) && strcmp(url, "/sim/redirected") == 0)
        return handle_redirected(conn, ex);
    if (get && strcmp(url, "/stats") == 0)
        return handle_stats(conn);
    if (get && strcmp(url, "/health") == 0)
        return queue_reply(conn, 200, static_response("{\"ok\":true}", json_type));
    return reply_error(conn, 404, "not_found", "sim: no such endpoint: %.32s %.200s",
                       method, url);
}

/* ---------------------------------------------------------------- entry points */

/* Append a chunk of request body; over BODY_MAX the body is dropped and flagged. */
static void body_append(exchange *ex, const char *data, size_t len)
{
    if (ex->body_too_large)
        return;
    if (len > BODY_MAX - ex->body_len) {
        ex->body_too_large = true;
        free(ex->body);
        ex->body = NULL;
        ex->body_len = ex->body_cap = 0;
        return;
    }
    if (ex->body_len + len + 1 > ex->body_cap) {
        size_t cap = ex->body_cap ? ex->body_cap : 1024;
        while (cap < ex->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(ex->body, cap);
        if (!grown) {   /* treat like too large: the client gets a clear 413 */
            ex->body_too_large = true;
            free(ex->body);
            ex->body = NULL;
            ex->body_len = ex->body_cap = 0;
            return;
        }
        ex->body = grown;
        ex->body_cap = cap;
    }
    memcpy(ex->body + ex->body_len, data, len);
    ex->body_len += len;
    ex->body[ex->body_len] = '\0';
}

enum MHD_Result sim_http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls)
{
    exchange *ex = *req_cls;
    if (!ex) {
        if (!(ex = calloc(1, sizeof *ex)))
            return MHD_NO;
        *req_cls = ex;
        return MHD_YES;   /* headers only so far; the body (if any) comes next */
    }
    if (*upload_data_size > 0) {
        body_append(ex, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ex->phase == PHASE_WAITING) {   /* resumed by the timer */
        if (atomic_load(&sim_stopping) || peer_gone(conn))
            return MHD_NO;
        return proceed(conn, ex);
    }
    if (atomic_load(&sim_stopping))
        return MHD_NO;
    return dispatch(conn, url, method, ex);
}

void sim_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe)
{
    exchange *ex = *req_cls;
    if (!ex)
        return;
    if (ex->response)
        MHD_destroy_response(ex->response);
    free(ex->raw);
    free(ex->body);
    free(ex);
    *req_cls = NULL;
}
