/* reply.c — what a chat reply says: its content, usage and cost, the completion document,
 * and the error bodies of failing behaviours.
 *
 * The usage plan is worked out once per reply and shared by the JSON body, the stream and
 * the bill, so what the sim charges and what it reports can only differ on purpose
 * (report_cost, usage "tokens"/"none"). */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ECHO_MAX 200   /* bytes of the user message echoed */

static const char json_type[] = "application/json";

/* ---------------------------------------------------------------- usage */

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

/* "tok1 tok2 ... tokN", malloc'd. */
static char *numbered_tokens(long n)
{
    size_t cap = (size_t)n * 12 + 1, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    out[0] = '\0';
    for (long i = 1; i <= n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%stok%ld", i > 1 ? " " : "", i);
    return out;
}

const char *sim_served_model(const sim_verdict *v, const char *model)
{
    return v->behaviour->served_model ? v->behaviour->served_model : model;
}

const char *sim_provider_name(const sim_verdict *v)
{
    return v->behaviour->provider ? v->behaviour->provider : "Sim";
}

int sim_usage_plan(const cJSON *request, const char *model, const sim_verdict *v,
                   enum sim_mode mode, sim_usage *out)
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

    memset(out, 0, sizeof *out);
    bool null_content = false;
    if (mode == SIM_MODE_FINISH_ERROR) {
        out->content = strdup("");
    } else if (mode == SIM_MODE_EMPTY_CONTENT) {
        null_content = true;
    } else if (b->tokens >= 0) {
        out->content = numbered_tokens(b->tokens);
    } else if (b->content) {
        out->content = strdup(b->content);
    } else {
        size_t user_len = last_user ? sim_utf8_cut(last_user, strlen(last_user), ECHO_MAX) : 0;
        if (asprintf(&out->content, "sim[%s]: %.*s", model, (int)user_len,
                     last_user ? last_user : "") < 0)
            out->content = NULL;
    }
    if (!null_content && !out->content)
        return -1;
    size_t completion_bytes = out->content ? strlen(out->content) : 0;

    out->prompt_tokens = b->prompt_tokens >= 0 ? b->prompt_tokens : (long)(prompt_bytes / 4 + 1);
    if (b->completion_tokens >= 0)
        out->completion_tokens = b->completion_tokens;
    else if (b->tokens >= 0 && !null_content && mode != SIM_MODE_FINISH_ERROR)
        out->completion_tokens = b->tokens;
    else
        out->completion_tokens = (long)(completion_bytes / 4 + 1);

    if (b->has_charge)
        out->charge = b->charge_usd;
    else if (b->has_price)
        out->charge = ((double)out->prompt_tokens * b->price_prompt +
                       (double)out->completion_tokens * b->price_completion) / 1e6;
    else if (b->has_cost)
        out->charge = b->cost;
    out->has_usage = b->usage != SIM_USAGE_NONE;
    out->has_cost = b->usage == SIM_USAGE_FULL &&
                    (b->report_cost || b->has_charge || b->has_price || b->has_cost);
    out->cost_literal = b->report_cost;
    return 0;
}

void sim_usage_free(sim_usage *u)
{
    free(u->content);
    u->content = NULL;
}

cJSON *sim_usage_json(const sim_usage *u)
{
    if (!u->has_usage)
        return NULL;
    cJSON *usage = cJSON_CreateObject();
    double pt = (double)u->prompt_tokens, ct = (double)u->completion_tokens;
    bool ok = usage && cJSON_AddNumberToObject(usage, "prompt_tokens", pt) &&
              cJSON_AddNumberToObject(usage, "completion_tokens", ct) &&
              cJSON_AddNumberToObject(usage, "total_tokens", pt + ct) &&
              (!u->has_cost ||
               (u->cost_literal ? cJSON_AddRawToObject(usage, "cost", u->cost_literal) != NULL
                                : cJSON_AddNumberToObject(usage, "cost", u->charge) != NULL));
    if (!ok) {
        cJSON_Delete(usage);
        return NULL;
    }
    return usage;
}

/* ---------------------------------------------------------------- the document */

cJSON *sim_completion_doc(const cJSON *request, const char *model, const sim_verdict *v,
                          enum sim_mode mode)
{
    sim_usage u;
    if (sim_usage_plan(request, model, v, mode, &u) < 0)
        return NULL;

    char id[40];
    snprintf(id, sizeof id, "sim-%llu", (unsigned long long)v->serial);
    cJSON *doc = cJSON_CreateObject();
    cJSON *choices = NULL;
    const char *served = sim_served_model(v, model);
    bool ok = doc && cJSON_AddStringToObject(doc, "id", id) &&
              cJSON_AddStringToObject(doc, "object", "chat.completion") &&
              cJSON_AddNumberToObject(doc, "created", (double)time(NULL)) &&
              (v->model_literal ? cJSON_AddRawToObject(doc, "model", v->model_literal) != NULL
                                : cJSON_AddStringToObject(doc, "model", served) != NULL) &&
              cJSON_AddStringToObject(doc, "provider", sim_provider_name(v)) &&
              (!v->service_tier ||
               cJSON_AddStringToObject(doc, "service_tier", v->service_tier)) &&
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
             (u.content ? cJSON_AddStringToObject(msg, "content", u.content)
                        : cJSON_AddNullToObject(msg, "content")) &&
             cJSON_AddStringToObject(choice, "finish_reason",
                                     mode == SIM_MODE_FINISH_ERROR ? "error" : "stop");
    }
    if (ok && u.has_usage) {
        cJSON *usage = sim_usage_json(&u);
        ok = usage && cJSON_AddItemToObject(doc, "usage", usage);
        if (!ok)
            cJSON_Delete(usage);
    }
    if (ok && v->or_metadata) {
        cJSON *meta = cJSON_Duplicate(v->or_metadata, true);
        ok = meta && cJSON_AddItemToObject(doc, "openrouter_metadata", meta);
        if (!ok)
            cJSON_Delete(meta);
    }
    sim_usage_free(&u);
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* ---------------------------------------------------------------- error bodies */

cJSON *sim_or_error_doc(int code, const char *message, const char *metadata)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *error = doc ? cJSON_AddObjectToObject(doc, "error") : NULL;
    if (!error || !cJSON_AddNumberToObject(error, "code", code) ||
        !cJSON_AddStringToObject(error, "message", message) ||
        (metadata && !cJSON_AddRawToObject(error, "metadata", metadata))) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* A "truncated" reply: Content-Length says full_len, only sent_len bytes come. */
typedef struct partial_body {
    char *text;
    size_t sent_len;
} partial_body;

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

/* The error body of a failing "ok"-mode behaviour with status >= 300, a key limit or a
 * key echo; sets *status. */
static struct MHD_Response *error_reply(const sim_verdict *v, const char *auth,
                                        unsigned int *status)
{
    const sim_behaviour *b = v->behaviour;
    unsigned int forced = v->status;
    cJSON *doc;
    if (b->key_limit) {
        *status = forced >= 300 ? forced : 403;
        doc = sim_or_error_doc((int)*status, b->error_message ? b->error_message :
                               "Key limit exceeded (total limit). Manage it in the key's settings.",
                               b->error_metadata);
    } else if (b->echo_auth != SIM_ECHO_NONE) {
        *status = forced >= 300 ? forced : 401;
        /* The message is JSON text of our own making: the json_escaped form must reach
         * the wire as written, so it goes in raw. */
        char *literal = sim_echo_literal("sim: Incorrect API key provided: ",
                                         sim_auth_key(auth), b->echo_auth);
        cJSON *message = literal ? cJSON_CreateRaw(literal) : NULL;
        free(literal);
        doc = message ? sim_or_error_doc((int)*status, "", b->error_metadata) : NULL;
        cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
        if (!doc || !cJSON_ReplaceItemInObjectCaseSensitive(error, "message", message)) {
            cJSON_Delete(message);
            cJSON_Delete(doc);
            doc = NULL;
        }
    } else if (forced == 402 && !b->error_message) {   /* OpenRouter's out-of-credit answer */
        *status = forced;
        doc = sim_or_error_doc(402, "Insufficient credits. Add more credits and retry the "
                               "request.", b->error_metadata);
    } else {
        char message[64];
        snprintf(message, sizeof message, "sim: status %u", forced);
        *status = forced;
        doc = sim_error_doc(b->error_message ? b->error_message : message, "sim_error",
                            (int)forced);
        cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
        if (doc && b->error_metadata && !cJSON_AddRawToObject(error, "metadata",
                                                              b->error_metadata)) {
            cJSON_Delete(doc);
            doc = NULL;
        }
    }
    return sim_json_response(doc);
}

struct MHD_Response *sim_chat_reply(struct MHD_Connection *conn, const cJSON *request,
                                    const char *model, const sim_verdict *v,
                                    const char *auth, unsigned int *status)
{
    const sim_behaviour *b = v->behaviour;
    enum sim_mode mode = v->mode;
    unsigned int forced = v->status;   /* 0: mode's own */
    struct MHD_Response *r;

    switch (mode) {
    case SIM_MODE_MALFORMED:
        *status = forced ? forced : 200;
        r = sim_static_response("{\"choices\": [ {\"mess", json_type);
        break;
    case SIM_MODE_HTML:   /* what a proxy in front of a dead provider says */
        *status = forced ? forced : 502;
        r = sim_static_response("<html><body><h1>502 Bad Gateway</h1></body></html>",
                                "text/html");
        break;
    case SIM_MODE_ERROR_OBJECT:
        *status = forced ? forced : 200;
        r = sim_json_response(sim_error_doc("sim: upstream overloaded", NULL, 502));
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
        } else if (mode == SIM_MODE_OK && v->failing &&
                   (forced >= 300 || b->key_limit || b->echo_auth != SIM_ECHO_NONE)) {
            r = error_reply(v, auth, status);
        } else {
            *status = forced ? forced : 200;
            r = sim_json_response(sim_completion_doc(request, model, v, mode));
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
