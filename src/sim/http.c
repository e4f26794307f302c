/* http.c — routefs-sim's request handler: routing, the control and stats endpoints, and
 * the small reply helpers every endpoint uses.
 *
 * libmicrohttpd calls the handler several times per request: once with the headers, once
 * per chunk of body, once more when the body is complete, and again after each resume of
 * a suspended connection.  The per-request sim_exchange carries state across those calls.
 * A chat reply is built when the request is complete (chat.c) and queued once its delay
 * is over; in between the connection is suspended (timer.c) and wakes up every
 * SIM_LIVENESS_CHECK_NS to see whether the client gave up, so a hung request does not pin
 * a socket forever.
 *
 * The OpenAI and OpenRouter endpoints answer under /v1, /api/v1 and at the root alike
 * (a base_url of http://HOST:PORT/v1 or http://HOST:PORT/api/v1 both work). */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BODY_MAX (16 * 1024 * 1024)   /* larger request bodies get 413 */

static const char json_type[] = "application/json";

/* ---------------------------------------------------------------- reply helpers */

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

struct MHD_Response *sim_json_response(cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return text ? sim_text_response(text, strlen(text), json_type) : NULL;
}

struct MHD_Response *sim_static_response(const char *text, const char *content_type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

cJSON *sim_error_doc(const char *message, const char *type, int code)
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

enum MHD_Result sim_queue_reply(struct MHD_Connection *conn, unsigned int status,
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
    return sim_queue_reply(conn, status, sim_json_response(sim_error_doc(message, type,
                                                                         (int)status)));
}

static enum MHD_Result reply_ok(struct MHD_Connection *conn)
{
    return sim_queue_reply(conn, 200, sim_static_response("{\"ok\":true}", json_type));
}

bool sim_peer_gone(struct MHD_Connection *conn)
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

/* Is [p, end) only JSON whitespace? */
static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
    return true;
}

cJSON *sim_parse_body(const sim_exchange *ex)
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

/* ---------------------------------------------------------------- decided exchanges */

enum MHD_Result sim_http_proceed(struct MHD_Connection *conn, sim_exchange *ex)
{
    uint64_t now = sim_now_ns();
    if (ex->outcome == SIM_OUTCOME_HANG || now < ex->due_ns) {
        uint64_t wake = now + SIM_LIVENESS_CHECK_NS;
        if (ex->outcome != SIM_OUTCOME_HANG && ex->due_ns < wake)
            wake = ex->due_ns;
        ex->phase = SIM_PHASE_WAITING;
        return sim_timer_suspend(conn, wake) ? MHD_YES : MHD_NO;
    }
    ex->phase = SIM_PHASE_SENT;
    if (ex->outcome == SIM_OUTCOME_CLOSE)
        return MHD_NO;
    if (ex->outcome == SIM_OUTCOME_RESET) {   /* not a byte: the RST is the answer */
        sim_socket_reset(conn);
        return MHD_NO;
    }
    if (ex->outcome == SIM_OUTCOME_RAW) {   /* no response queued: the socket is ours */
        if (ex->chat)
            sim_chat_sent(ex->chat, ex->status);
        sim_raw_send(conn, ex->raw, ex->raw_len);
        return MHD_NO;                      /* and libmicrohttpd closes it */
    }
    struct MHD_Response *r = ex->response;
    ex->response = NULL;
    enum MHD_Result rc = sim_queue_reply(conn, ex->status, r);
    if (rc == MHD_YES && ex->chat)
        sim_chat_sent(ex->chat, ex->status);
    return rc;
}

/* Where the "redirect" mode points: answers any method with a completion, counted as
 * model "sim/redirect-target", so a test can tell whether a client followed. */
static enum MHD_Result handle_redirected(struct MHD_Connection *conn, sim_exchange *ex)
{
    static const char target[] = "sim/redirect-target";
    cJSON *request = sim_parse_body(ex);
    const char *auth =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    sim_verdict v;
    uint64_t serial = sim_state_count_request();
    sim_state_record(target, serial, ex->body, ex->body_len, auth, false, false, &v);
    v.failing = false;   /* the target answers, whatever its behaviour */
    v.mode = SIM_MODE_OK;
    v.status = 0;
    struct MHD_Response *r =
        sim_json_response(sim_completion_doc(request, target, &v, SIM_MODE_OK));
    sim_behaviour_release(v.behaviour);
    cJSON_Delete(request);
    return sim_queue_reply(conn, 200, r);
}

/* ---------------------------------------------------------------- control and stats */

static enum MHD_Result handle_set_behaviour(struct MHD_Connection *conn, sim_exchange *ex)
{
    char err[256];
    cJSON *doc = sim_parse_body(ex);
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
    return reply_ok(conn);
}

static enum MHD_Result handle_stats(struct MHD_Connection *conn)
{
    char *text = sim_state_stats_json();
    return sim_queue_reply(conn, 200,
                           text ? sim_text_response(text, strlen(text), json_type) : NULL);
}

/* url without a leading "/api/v1" or "/v1": the name of an API endpoint. */
static const char *api_path(const char *url)
{
    if (strncmp(url, "/api/v1/", 8) == 0)
        return url + 7;
    if (strncmp(url, "/v1/", 4) == 0)
        return url + 3;
    return url;
}

static enum MHD_Result dispatch(struct MHD_Connection *conn, const char *url,
                                const char *method, sim_exchange *ex)
{
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    const char *api = api_path(url);

    if (ex->body_too_large)
        return reply_error(conn, 413, "invalid_request_error",
                           "sim: request body over %d bytes", BODY_MAX);
    if (post && strcmp(api, "/chat/completions") == 0)
        return sim_chat_handle(conn, ex);
    if (get && strcmp(api, "/models") == 0)
        return sim_or_models(conn);
    if (get && (strcmp(api, "/key") == 0 || strcmp(api, "/auth/key") == 0))
        return sim_or_key(conn);
    if (get && strcmp(api, "/generation") == 0)
        return sim_or_generation(conn);
    if (post && (strcmp(url, "/control/behaviour") == 0 ||
                 strcmp(url, "/control/behavior") == 0))
        return handle_set_behaviour(conn, ex);
    if (post && strcmp(url, "/control/models") == 0)
        return sim_or_control_models(conn, ex);
    if (post && strcmp(url, "/control/key") == 0)
        return sim_or_control_key(conn, ex);
    if (post && strcmp(url, "/control/reset") == 0) {
        sim_state_reset();
        sim_or_reset();
        sim_log("reset");
        return reply_ok(conn);
    }
    if ((post || get) && strcmp(url, "/sim/redirected") == 0)
        return handle_redirected(conn, ex);
    if (get && strcmp(url, "/stats") == 0)
        return handle_stats(conn);
    if (get && strcmp(url, "/health") == 0)
        return reply_ok(conn);
    return reply_error(conn, 404, "not_found", "sim: no such endpoint: %.32s %.200s",
                       method, url);
}

/* ---------------------------------------------------------------- entry points */

/* Append a chunk of request body; over BODY_MAX the body is dropped and flagged. */
static void body_append(sim_exchange *ex, const char *data, size_t len)
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
    sim_exchange *ex = *req_cls;
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
    if (ex->phase == SIM_PHASE_WAITING) {   /* resumed by the timer */
        if (atomic_load(&sim_stopping) || sim_peer_gone(conn))
            return MHD_NO;
        return sim_http_proceed(conn, ex);
    }
    if (ex->phase == SIM_PHASE_SENT)   /* a late call after the reply: nothing to do */
        return MHD_YES;
    if (atomic_load(&sim_stopping))
        return MHD_NO;
    return dispatch(conn, url, method, ex);
}

void sim_http_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                        enum MHD_RequestTerminationCode toe)
{
    sim_exchange *ex = *req_cls;
    if (!ex)
        return;
    if (ex->chat) {
        sim_chat_completed(ex->chat, toe);
        sim_chat_free(ex->chat);
    }
    if (ex->response)
        MHD_destroy_response(ex->response);
    free(ex->raw);
    free(ex->body);
    free(ex);
    *req_cls = NULL;
}
