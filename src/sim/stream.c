/* stream.c — streamed chat replies: text/event-stream in the OpenAI/OpenRouter shape,
 * paced over time without holding a thread.
 *
 * The whole stream is planned when the reply is built: a list of steps, each a piece of
 * text (an SSE event) to write after a delay, or the planned end (a normal end, or a cut:
 * the connection closed without finishing).  The libmicrohttpd content reader walks the
 * steps; when the next one is not due yet it suspends the connection (timer.c resumes
 * it) and returns 0, writing ": OPENROUTER PROCESSING" comments meanwhile when keepalive
 * is asked for.  Every wait is capped at SIM_LIVENESS_CHECK_NS so a client that went
 * away is noticed and the stream counted as cancelled.
 *
 * The stream object is shared by the response (until libmicrohttpd frees it) and by the
 * request's bookkeeping (which reads the outcome when the request completes), hence the
 * reference count.  Both run on the connection's own thread. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEEPALIVE_TEXT ": OPENROUTER PROCESSING\n\n"
#define MIDSTREAM_ERROR "sim: the provider disconnected mid-stream"

enum step_kind {
    STEP_TEXT,   /* write text */
    STEP_CUT,    /* close the connection, unfinished */
    STEP_END,    /* end the body normally */
};

enum step_finish { FINISH_NONE, FINISH_STOP, FINISH_ERROR };

typedef struct stream_step {
    enum step_kind kind;
    uint64_t delay_ns;          /* after the previous step was written */
    bool token;                 /* a content token (tokens_sent) */
    enum step_finish finish;    /* writing it finishes the stream this way */
    char *text;                 /* owned */
    size_t len;
} stream_step;

struct sim_stream {
    atomic_int refs;
    struct MHD_Connection *conn;   /* borrowed: it outlives its response */
    stream_step *steps;
    size_t nsteps, cap;
    size_t cur;                    /* the step being written or waited for */
    bool started;
    uint64_t due_ns;               /* when steps[cur] may start */
    uint64_t keepalive_ns, next_keepalive_ns;
    const char *pending;           /* bytes being written: a step's text or a keepalive */
    size_t pending_len, pending_off;
    bool pending_is_step;
    int json_events;               /* data events planned so far (malformed_at) */
    long malformed_at;
    /* The outcome, read once the request completes. */
    bool ended_by_us;
    uint64_t tokens_sent, first_token_ns;
    enum step_finish finished;
};

/* ---------------------------------------------------------------- tokens */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

size_t *sim_stream_tokens(const char *content, size_t *count)
{
    size_t len = strlen(content), cap = 16, n = 0, i = 0;
    size_t *offsets = malloc(cap * sizeof *offsets);
    if (!offsets)
        return NULL;
    for (;;) {
        if (n == cap) {
            size_t *grown = realloc(offsets, 2 * cap * sizeof *offsets);
            if (!grown) {
                free(offsets);
                return NULL;
            }
            offsets = grown;
            cap *= 2;
        }
        offsets[n++] = i;
        if (i >= len)
            break;
        while (i < len && is_space(content[i]))
            i++;
        while (i < len && !is_space(content[i]))
            i++;
    }
    *count = n - 1;
    return offsets;
}

/* ---------------------------------------------------------------- the plan */

static void stream_free(sim_stream *s)
{
    for (size_t i = 0; i < s->nsteps; i++)
        free(s->steps[i].text);
    free(s->steps);
    free(s);
}

void sim_stream_release(sim_stream *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        stream_free(s);
}

static void response_free(void *cls)
{
    sim_stream_release(cls);
}

/* Append a step (text owned by it from now on, may be NULL for cuts and ends). */
static bool add_step(sim_stream *s, enum step_kind kind, long delay_ms, char *text)
{
    if (s->nsteps == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        stream_step *grown = realloc(s->steps, cap * sizeof *grown);
        if (!grown) {
            free(text);
            return false;
        }
        s->steps = grown;
        s->cap = cap;
    }
    s->steps[s->nsteps++] = (stream_step){.kind = kind,
                                          .delay_ns = (uint64_t)delay_ms * 1000000ULL,
                                          .text = text, .len = text ? strlen(text) : 0};
    return true;
}

/* Append "data: JSON\n\n" for chunk (consumed); the malformed_at-th one is cut in half. */
static bool add_event(sim_stream *s, cJSON *chunk, long delay_ms)
{
    char *json = chunk ? cJSON_PrintUnformatted(chunk) : NULL;
    cJSON_Delete(chunk);
    if (!json)
        return false;
    size_t len = strlen(json);
    if (++s->json_events == s->malformed_at)
        len /= 2;
    char *text = NULL;
    int n = asprintf(&text, "data: %.*s\n\n", (int)len, json);
    cJSON_free(json);
    return n >= 0 && add_step(s, STEP_TEXT, delay_ms, text);
}

/* What every chunk of this stream carries. */
typedef struct chunk_base {
    const char *id;
    double created;
    const char *model, *model_literal, *provider, *service_tier;
} chunk_base;

/* A chat.completion.chunk with its "choices" array (returned in *choices). */
static cJSON *chunk_new(const chunk_base *base, cJSON **choices)
{
    cJSON *chunk = cJSON_CreateObject();
    bool ok = chunk && cJSON_AddStringToObject(chunk, "id", base->id) &&
              cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk") &&
              cJSON_AddNumberToObject(chunk, "created", base->created) &&
              (base->model_literal ? cJSON_AddRawToObject(chunk, "model", base->model_literal) != NULL
                                   : cJSON_AddStringToObject(chunk, "model", base->model) != NULL) &&
              cJSON_AddStringToObject(chunk, "provider", base->provider) &&
              (!base->service_tier ||
               cJSON_AddStringToObject(chunk, "service_tier", base->service_tier)) &&
              (*choices = cJSON_AddArrayToObject(chunk, "choices"));
    if (!ok) {
        cJSON_Delete(chunk);
        return NULL;
    }
    return chunk;
}

/* A chunk with one choice: delta (consumed) and finish_reason (NULL = null). */
static cJSON *choice_chunk(const chunk_base *base, cJSON *delta, const char *finish)
{
    cJSON *choices = NULL, *choice = NULL;
    cJSON *chunk = delta ? chunk_new(base, &choices) : NULL;
    bool ok = chunk && (choice = cJSON_CreateObject()) &&
              cJSON_AddItemToArray(choices, choice);
    if (!ok) {
        cJSON_Delete(choice);
        cJSON_Delete(chunk);
        cJSON_Delete(delta);
        return NULL;
    }
    ok = cJSON_AddNumberToObject(choice, "index", 0) &&
         cJSON_AddItemToObject(choice, "delta", delta);
    if (!ok)
        cJSON_Delete(delta);
    ok = ok && (finish ? cJSON_AddStringToObject(choice, "finish_reason", finish) &&
                             cJSON_AddStringToObject(choice, "native_finish_reason", finish)
                       : cJSON_AddNullToObject(choice, "finish_reason") != NULL);
    if (!ok) {
        cJSON_Delete(chunk);
        return NULL;
    }
    return chunk;
}

/* A delta: role and/or content (content_len bytes of content; NULL = no content). */
static cJSON *delta_of(const char *role, const char *content, size_t content_len)
{
    cJSON *delta = cJSON_CreateObject();
    if (!delta || (role && !cJSON_AddStringToObject(delta, "role", role)))
        goto fail;
    if (content) {   /* a token is not NUL-terminated in the reply */
        char *piece = strndup(content, content_len);
        cJSON *text = piece ? cJSON_CreateString(piece) : NULL;
        free(piece);
        if (!text || !cJSON_AddItemToObject(delta, "content", text)) {
            cJSON_Delete(text);
            goto fail;
        }
    }
    return delta;
fail:
    cJSON_Delete(delta);
    return NULL;
}

/* The mid-stream error chunk, OpenRouter's shape: error object, finish_reason "error". */
static cJSON *error_chunk(const chunk_base *base)
{
    cJSON *chunk = choice_chunk(base, delta_of(NULL, "", 0), "error");
    cJSON *error = chunk ? cJSON_AddObjectToObject(chunk, "error") : NULL;
    if (!error || !cJSON_AddStringToObject(error, "message", MIDSTREAM_ERROR) ||
        !cJSON_AddNumberToObject(error, "code", 502)) {
        cJSON_Delete(chunk);
        return NULL;
    }
    return chunk;
}

/* Plan the steps of the reply in u under spec; false when out of memory. */
static bool plan(sim_stream *s, const chunk_base *base, const sim_usage *u,
                 const sim_stream_spec *spec, bool include_usage, const cJSON *metadata)
{
    size_t ntokens = 0;
    const char *content = u->content ? u->content : "";
    size_t *offsets = sim_stream_tokens(content, &ntokens);
    if (!offsets)
        return false;
    bool ok = add_event(s, choice_chunk(base, delta_of("assistant", "", 0), NULL), 0);
    size_t i;
    for (i = 0; ok && i <= ntokens; i++) {
        long n = (long)i;
        if (n == spec->cut_after) {
            free(offsets);
            return add_step(s, STEP_CUT, 0, NULL);
        }
        if (n == spec->stall_after) {
            free(offsets);
            return add_step(s, STEP_CUT, spec->stall_ms, NULL);
        }
        if (n == spec->error_at) {
            free(offsets);
            if (!add_event(s, error_chunk(base), 0))
                return false;
            s->steps[s->nsteps - 1].finish = FINISH_ERROR;
            return add_step(s, STEP_END, 0, NULL);
        }
        if (i == ntokens)
            break;
        cJSON *delta = delta_of(NULL, content + offsets[i], offsets[i + 1] - offsets[i]);
        ok = add_event(s, choice_chunk(base, delta, NULL), i == 0 ? spec->first_token_ms
                                                                 : spec->token_ms);
        if (ok)
            s->steps[s->nsteps - 1].token = true;
    }
    free(offsets);
    long wait_ms = ntokens == 0 ? spec->first_token_ms : 0;   /* no token: the wait is here */

    /* The finish and usage chunks; router metadata rides on the last chunk of all. */
    const char *finish = spec->finish_error ? "error" : "stop";
    cJSON *finish_chunk = NULL, *usage_chunk = NULL, *choices = NULL;
    if (ok && !spec->no_finish)
        ok = (finish_chunk = choice_chunk(base, delta_of(NULL, NULL, 0), finish)) != NULL;
    if (ok && include_usage && u->has_usage) {
        cJSON *usage = sim_usage_json(u);
        usage_chunk = usage ? chunk_new(base, &choices) : NULL;
        ok = usage_chunk && cJSON_AddItemToObject(usage_chunk, "usage", usage);
        if (!ok)
            cJSON_Delete(usage);
    }
    if (ok && metadata) {
        cJSON *last = usage_chunk ? usage_chunk : finish_chunk;
        if (!last)
            ok = (usage_chunk = last = chunk_new(base, &choices)) != NULL;
        cJSON *copy = ok ? cJSON_Duplicate(metadata, true) : NULL;
        ok = copy && cJSON_AddItemToObject(last, "openrouter_metadata", copy);
        if (!ok)
            cJSON_Delete(copy);
    }
    if (ok && finish_chunk) {
        ok = add_event(s, finish_chunk, wait_ms);
        finish_chunk = NULL;
        if (ok)
            s->steps[s->nsteps - 1].finish = spec->finish_error ? FINISH_ERROR : FINISH_STOP;
        wait_ms = 0;
    }
    if (ok && usage_chunk) {
        ok = add_event(s, usage_chunk, wait_ms);
        usage_chunk = NULL;
        wait_ms = 0;
    }
    cJSON_Delete(finish_chunk);
    cJSON_Delete(usage_chunk);
    if (ok && !spec->no_done)
        ok = add_step(s, STEP_TEXT, wait_ms, strdup("data: [DONE]\n\n")) &&
             s->steps[s->nsteps - 1].text;
    return ok && add_step(s, STEP_END, 0, NULL);
}

/* ---------------------------------------------------------------- the reader */

/* The step just written is done: account for it and time the next. */
static void step_done(sim_stream *s, uint64_t now)
{
    const stream_step *st = &s->steps[s->cur];
    if (st->token && s->tokens_sent++ == 0)
        s->first_token_ns = now;
    if (st->finish != FINISH_NONE)
        s->finished = st->finish;
    s->cur++;
    if (s->cur < s->nsteps)
        s->due_ns = now + s->steps[s->cur].delay_ns;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sim_stream *s = cls;
    if (atomic_load(&sim_stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    uint64_t now = sim_now_ns();
    if (!s->started) {   /* the clock starts with the headers, not with the plan */
        s->started = true;
        s->due_ns = now + (s->nsteps ? s->steps[0].delay_ns : 0);
        s->next_keepalive_ns = now + s->keepalive_ns;
    }
    for (;;) {
        if (s->pending) {
            size_t n = s->pending_len - s->pending_off;
            if (n > max)
                n = max;
            memcpy(buf, s->pending + s->pending_off, n);
            s->pending_off += n;
            if (s->pending_off == s->pending_len) {
                s->pending = NULL;
                s->next_keepalive_ns = now + s->keepalive_ns;
                if (s->pending_is_step)
                    step_done(s, now);
            }
            return (ssize_t)n;
        }
        if (s->cur >= s->nsteps) {
            s->ended_by_us = true;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (now < s->due_ns) {
            if (s->keepalive_ns && now >= s->next_keepalive_ns) {
                s->pending = KEEPALIVE_TEXT;
                s->pending_len = strlen(KEEPALIVE_TEXT);
                s->pending_off = 0;
                s->pending_is_step = false;
                continue;
            }
            if (sim_peer_gone(s->conn))
                return MHD_CONTENT_READER_END_WITH_ERROR;   /* the client left: cancelled */
            uint64_t wake = now + SIM_LIVENESS_CHECK_NS;
            if (s->due_ns < wake)
                wake = s->due_ns;
            if (s->keepalive_ns && s->next_keepalive_ns < wake)
                wake = s->next_keepalive_ns;
            /* 0 bytes "for now": libmicrohttpd asks again once the timer resumes us. */
            return sim_timer_suspend(s->conn, wake) ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
        }
        const stream_step *st = &s->steps[s->cur];
        if (st->kind != STEP_TEXT) {
            s->ended_by_us = true;
            return st->kind == STEP_CUT ? MHD_CONTENT_READER_END_WITH_ERROR
                                        : MHD_CONTENT_READER_END_OF_STREAM;
        }
        s->pending = st->text;
        s->pending_len = st->len;
        s->pending_off = 0;
        s->pending_is_step = true;
        if (st->len == 0) {   /* nothing to write: done at once */
            s->pending = NULL;
            step_done(s, now);
        }
    }
}

/* ---------------------------------------------------------------- entry points */

struct MHD_Response *sim_stream_response(struct MHD_Connection *conn, const cJSON *request,
                                         const char *model, const sim_verdict *v,
                                         bool include_usage, sim_stream **out)
{
    const sim_behaviour *b = v->behaviour;
    sim_usage u;
    if (sim_usage_plan(request, model, v, SIM_MODE_OK, &u) < 0)
        return NULL;
    sim_stream *s = calloc(1, sizeof *s);
    if (!s) {
        sim_usage_free(&u);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->conn = conn;
    s->keepalive_ns = (uint64_t)b->stream.keepalive_ms * 1000000ULL;
    s->malformed_at = b->stream.malformed_at;
    char id[40];
    snprintf(id, sizeof id, "gen-%llu", (unsigned long long)v->serial);
    chunk_base base = {.id = id, .created = (double)time(NULL),
                       .model = sim_served_model(v, model), .model_literal = v->model_literal,
                       .provider = sim_provider_name(v), .service_tier = v->service_tier};
    bool ok = plan(s, &base, &u, &b->stream, include_usage, v->or_metadata);
    sim_usage_free(&u);
    struct MHD_Response *r = NULL;
    if (ok)
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
                                              response_free);
    if (!r) {
        stream_free(s);
        return NULL;
    }
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
        MHD_add_response_header(r, "X-Generation-Id", id) != MHD_YES) {
        MHD_destroy_response(r);   /* frees s through response_free */
        return NULL;
    }
    atomic_fetch_add(&s->refs, 1);
    *out = s;
    return r;
}

void sim_stream_get_outcome(sim_stream *s, sim_stream_outcome *out)
{
    out->ended_by_us = s->ended_by_us;
    out->tokens_sent = s->tokens_sent;
    out->first_token_ns = s->first_token_ns;
    out->finish_reason = s->finished == FINISH_STOP    ? "stop"
                         : s->finished == FINISH_ERROR ? "error"
                                                       : NULL;
}
