/* stream.c — streamed chat completions: SSE framing, chunk accumulation, live text.
 *
 * Bytes go through three stages, each keeping only what it needs across feeds:
 *   lines   — the current unterminated line (and whether the last byte was a CR, so a
 *             CRLF cut between two feeds is one line end);
 *   events  — the current event's data lines, joined with \n, dispatched by a blank line;
 *   chunks  — each data event parsed as JSON (openai.h rules) and added to the completion:
 *             content, tool calls by index, finish reason, usage, metadata.
 * Nothing depends on where the feeds are cut: a byte-by-byte feed and a whole feed give
 * the same result (unit-tested on every split, and checked by the fuzzer).
 *
 * Memory is bounded by max_bytes: the line, the event and the content are each at most
 * the bytes fed, and tool calls are at most STREAM_TOOL_CALLS_MAX. */
#include "stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer, always NUL-terminated when allocated. */
typedef struct buf {
    char *p;          /* owned, or NULL while empty */
    size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n)
{
    if (n >= SIZE_MAX / 2 - b->len)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void buf_free(buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* One tool call, assembled from the deltas with its index. */
typedef struct tool_call {
    int seen;
    char *id, *type, *name;   /* owned or NULL: the first value sent is kept */
    buf arguments;            /* the argument pieces appended */
} tool_call;

enum { MODE_UNKNOWN, MODE_SSE, MODE_JSON };

struct stream_parser {
    size_t max_bytes, fed;
    int mode;
    int failed, done, finished;
    int progress;             /* this feed added text */
    openai_status fail_status;
    rf_err err;               /* the failure */
    buf error_body;           /* the event with a provider error */

    buf line;                 /* the current line, without its end */
    int after_cr;             /* the last byte was a CR */
    long lines;               /* lines seen (the first may start with a BOM) */
    int bom_seen;             /* bytes of a leading BOM seen; -1 once there is none */
    buf data;                 /* the current event's data */
    int has_data;             /* the current event has a data field */
    long events;              /* data events dispatched */
    int at_eof;               /* stream_finish is dispatching the last event */

    buf body;                 /* MODE_JSON: the whole body */
    buf content;              /* the assistant text */
    size_t valid_len;         /* content[0..valid_len) is complete, valid UTF-8 */
    tool_call *calls;         /* n_calls entries, by index */
    size_t n_calls, last_call;
    long tokens;              /* chunks with text */
    openai_completion meta;   /* model, provider, id, finish_reason, service_tier, usage */
};

/* ---- small helpers ---- */

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *get_string(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Present and neither null nor of the wanted kind (a malformed member). */
static int wrong_type(const cJSON *v, int (*is_kind)(const cJSON *))
{
    return v && !cJSON_IsNull(v) && !is_kind(v);
}

static int fail(stream_parser *p, openai_status status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Mark the stream failed (the first failure wins); returns -1. */
static int fail(stream_parser *p, openai_status status, int code, const char *fmt, ...)
{
    if (p->failed)
        return -1;
    p->failed = 1;
    p->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err.msg, sizeof p->err.msg, fmt, ap);
    va_end(ap);
    p->err.code = code;
    return -1;
}

static int oom(stream_parser *p)
{
    return fail(p, OPENAI_NOT_JSON, ENOMEM, "out of memory");
}

/* A malloc'd copy of s into *slot unless the slot is set (keep_first) or s is NULL. */
static int set_string(stream_parser *p, char **slot, const char *s, int keep_first)
{
    if (!s || (keep_first && *slot))
        return 0;
    char *copy = strdup(s);
    if (!copy)
        return oom(p);
    free(*slot);
    *slot = copy;
    return 0;
}

/* The UTF-8 character at s (n >= 1 bytes): its length, 0 when invalid, -1 when s is the
 * valid start of a character that the n bytes cut short. */
static int utf8_char(const unsigned char *s, size_t n)
{
    size_t need = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 :
                  s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (need == 0)
        return 0;
    if (n >= need)
        return openai_utf8_char_len(s, need) == need ? (int)need : 0;
    /* complete it with the smallest allowed continuation bytes and see if that is valid */
    unsigned char padded[4];
    memcpy(padded, s, n);
    for (size_t i = n; i < need; i++)
        padded[i] = i == 1 && s[0] == 0xE0 ? 0xA0 : i == 1 && s[0] == 0xF0 ? 0x90 : 0x80;
    return openai_utf8_char_len(padded, need) == need ? -1 : 0;
}


/* ---- chunks ---- */

/* Append a content piece; the live text grows to the last complete character. */
static int add_content(stream_parser *p, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_add(&p->content, s, n) < 0)
        return oom(p);
    while (p->valid_len < p->content.len) {
        int c = utf8_char((unsigned char *)p->content.p + p->valid_len,
                          p->content.len - p->valid_len);
        if (c < 0)
            break;   /* the rest of the character comes in a later chunk */
        if (c == 0)
            return fail(p, OPENAI_NOT_JSON, EILSEQ,
                        "SSE event %ld: content is not valid UTF-8", p->events);
        p->valid_len += (size_t)c;
    }
    return 1;
}

/* delta.content: a string, or an array of {"type": "text", "text": ...} parts.
 * Returns 1 when text was added, 0 when none, -1 when failed. */
static int chunk_content(stream_parser *p, const cJSON *content)
{
    if (cJSON_IsString(content))
        return add_content(p, content->valuestring, strlen(content->valuestring));
    if (wrong_type(content, cJSON_IsArray))
        return fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: delta.content is not text",
                    p->events);
    int added = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const char *type = get_string(part, "type"), *text = get_string(part, "text");
        if (!type || strcmp(type, "text") != 0 || !text)
            continue;
        int rc = add_content(p, text, strlen(text));
        if (rc < 0)
            return -1;
        added |= rc;
    }
    return added;
}

/* The slot of a tool-call delta: its "index", or (providers that leave it out) the last
 * call, or a new one when the delta brings a new id. */
static tool_call *tool_call_slot(stream_parser *p, const cJSON *delta)
{
    const cJSON *index = get(delta, "index");
    size_t i;
    if (index) {
        if (!cJSON_IsNumber(index) || !(index->valuedouble >= 0) ||
            index->valuedouble >= STREAM_TOOL_CALLS_MAX ||
            index->valuedouble != (double)(size_t)index->valuedouble) {
            fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: bad tool call index",
                 p->events);
            return NULL;
        }
        i = (size_t)index->valuedouble;
    } else {
        const char *id = get_string(delta, "id");
        const tool_call *last = p->n_calls ? &p->calls[p->last_call] : NULL;
        i = p->n_calls && !(id && last->id && strcmp(id, last->id) != 0) ? p->last_call
                                                                           : p->n_calls;
        if (i >= STREAM_TOOL_CALLS_MAX) {
            fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: too many tool calls",
                 p->events);
            return NULL;
        }
    }
    if (i >= p->n_calls) {
        tool_call *calls = realloc(p->calls, (i + 1) * sizeof *calls);
        if (!calls) {
            oom(p);
            return NULL;
        }
        memset(calls + p->n_calls, 0, (i + 1 - p->n_calls) * sizeof *calls);
        p->calls = calls;
        p->n_calls = i + 1;
    }
    p->last_call = i;
    p->calls[i].seen = 1;
    return &p->calls[i];
}

/* delta.tool_calls.  Returns 1 when name or argument text was added, 0 when none, -1. */
static int chunk_tool_calls(stream_parser *p, const cJSON *tool_calls)
{
    if (wrong_type(tool_calls, cJSON_IsArray))
        return fail(p, OPENAI_NOT_JSON, EIO,
                    "malformed SSE event %ld: delta.tool_calls is not an array", p->events);
    int added = 0;
    const cJSON *delta;
    cJSON_ArrayForEach(delta, tool_calls) {
        if (!cJSON_IsObject(delta))
            return fail(p, OPENAI_NOT_JSON, EIO,
                        "malformed SSE event %ld: tool call is not an object", p->events);
        tool_call *call = tool_call_slot(p, delta);
        if (!call)
            return -1;
        const cJSON *function = get(delta, "function");
        const char *name = get_string(function, "name");
        const char *arguments = get_string(function, "arguments");
        if ((name && name[0] && !call->name) || (arguments && arguments[0]))
            added = 1;
        if (set_string(p, &call->id, get_string(delta, "id"), 1) < 0 ||
            set_string(p, &call->type, get_string(delta, "type"), 1) < 0 ||
            set_string(p, &call->name, name, 1) < 0)
            return -1;
        if (arguments && buf_add(&call->arguments, arguments, strlen(arguments)) < 0)
            return oom(p);
    }
    return added;
}

/* The choice for the answer: the first with index 0 or none (with "n" > 1, chunks of the
 * other choices are skipped).  NULL when there is none; failed when malformed. */
static const cJSON *answer_choice(stream_parser *p, const cJSON *choices)
{
    if (wrong_type(choices, cJSON_IsArray)) {
        fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: choices is not an array",
             p->events);
        return NULL;
    }
    const cJSON *choice;
    cJSON_ArrayForEach(choice, choices) {
        if (!cJSON_IsObject(choice)) {
            fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: choice is not an object",
                 p->events);
            return NULL;
        }
        const cJSON *index = get(choice, "index");
        if (!index || (cJSON_IsNumber(index) && index->valuedouble == 0))
            return choice;
    }
    return NULL;
}

/* Remember what said the provider failed, as an error body for stream_error_body. */
static void keep_error_body(stream_parser *p, const char *data, size_t len)
{
    p->error_body.len = 0;
    if (buf_add(&p->error_body, data, len) < 0)
        buf_free(&p->error_body);
}

/* A choice that finished with "error": its own "error" member as {"error": ...} (the
 * shape openai_parse_error reads), else the whole event. */
static void keep_choice_error(stream_parser *p, const cJSON *choice, const char *data,
                              size_t len)
{
    const cJSON *error = get(choice, "error");
    cJSON *wrapper = error ? cJSON_CreateObject() : NULL;
    cJSON *copy = wrapper ? cJSON_Duplicate(error, 1) : NULL;
    char *text = NULL;
    if (copy && cJSON_AddItemToObject(wrapper, "error", copy))
        text = cJSON_PrintUnformatted(wrapper);
    else
        cJSON_Delete(copy);
    cJSON_Delete(wrapper);
    keep_error_body(p, text ? text : data, text ? strlen(text) : len);
    free(text);
}

/* Top-level metadata: the last string sent wins; usage key by key. */
static int chunk_metadata(stream_parser *p, const cJSON *doc)
{
    openai_completion *m = &p->meta;
    const char *model = get_string(doc, "model"), *provider = get_string(doc, "provider");
    const char *id = get_string(doc, "id"), *tier = get_string(doc, "service_tier");
    if (set_string(p, &m->model, model && model[0] ? model : NULL, 0) < 0 ||
        set_string(p, &m->provider, provider && provider[0] ? provider : NULL, 0) < 0 ||
        set_string(p, &m->id, id && id[0] ? id : NULL, 0) < 0 ||
        set_string(p, &m->service_tier, tier && tier[0] ? tier : NULL, 0) < 0)
        return -1;
    int oom_flag = 0;
    char *or_meta = openai_or_metadata(doc, &oom_flag);
    if (oom_flag)
        return oom(p);
    if (or_meta) {
        free(m->or_metadata);
        m->or_metadata = or_meta;
    }
    openai_read_usage(get(doc, "usage"), m);
    return 0;
}

/* One chat.completion.chunk. */
static void handle_chunk(stream_parser *p, const char *data, size_t len)
{
    cJSON *doc = openai_parse_json(data, len);
    if (!doc) {
        if (!p->at_eof)   /* at the end, an event that is not JSON was cut off: dropped */
            fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: not JSON", p->events);
        return;
    }
    const cJSON *error = get(doc, "error");
    const char *object = get_string(doc, "object");
    if (!cJSON_IsObject(doc)) {
        fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: not a JSON object", p->events);
    } else if (openai_json_has_nul(data, len)) {
        fail(p, OPENAI_NOT_JSON, EILSEQ, "SSE event %ld: text contains a NUL character",
             p->events);
    } else if (cJSON_IsObject(error) || (cJSON_IsString(error) && error->valuestring[0]) ||
               (object && strcmp(object, "error") == 0)) {
        rf_err e;
        keep_error_body(p, data, len);
        openai_describe_error(&e, "provider error mid-stream", doc);
        fail(p, OPENAI_ERROR_OBJECT, EIO, "%s", e.msg);
    } else if (chunk_metadata(p, doc) == 0) {
        const cJSON *choice = answer_choice(p, get(doc, "choices"));
        const char *finish = get_string(choice, "finish_reason");
        const cJSON *delta = get(choice, "delta");
        if (finish && strcmp(finish, "error") == 0) {
            rf_err e;
            keep_choice_error(p, choice, data, len);
            openai_describe_error(&e, "provider finished with finish_reason \"error\"", choice);
            fail(p, OPENAI_FINISH_ERROR, EIO, "%s", e.msg);
        } else if (wrong_type(delta, cJSON_IsObject)) {
            fail(p, OPENAI_NOT_JSON, EIO, "malformed SSE event %ld: delta is not an object",
                 p->events);
        } else if (choice && !p->failed) {
            const char *reasoning = get_string(delta, "reasoning");
            if (!reasoning)
                reasoning = get_string(delta, "reasoning_content");   /* DeepSeek, vLLM */
            int text = reasoning && reasoning[0];
            int content = chunk_content(p, get(delta, "content"));
            int tools = content < 0 ? -1 : chunk_tool_calls(p, get(delta, "tool_calls"));
            if (!p->failed && finish)
                set_string(p, &p->meta.finish_reason, finish, 0);
            if (!p->failed && (text || content > 0 || tools > 0)) {
                p->tokens++;
                p->progress = 1;
            }
        }
    }
    cJSON_Delete(doc);
}

/* ---- events and lines ---- */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void dispatch(stream_parser *p)
{
    if (!p->has_data)
        return;
    p->has_data = 0;
    p->events++;
    const char *d = p->data.p ? p->data.p : "";
    size_t len = p->data.len;
    p->data.len = 0;
    while (len > 0 && is_blank(*d))
        d++, len--;
    while (len > 0 && is_blank(d[len - 1]))
        len--;
    if (len == 0)
        return;   /* an empty data event: a keep-alive */
    if (len == 6 && memcmp(d, "[DONE]", 6) == 0)
        p->done = 1;
    else
        handle_chunk(p, d, len);
}

static void handle_line(stream_parser *p, const char *s, size_t len)
{
    if (p->lines++ == 0 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3, len -= 3;
    if (len == 0) {
        dispatch(p);
        return;
    }
    if (s[0] == ':')
        return;   /* a comment: ": OPENROUTER PROCESSING" */
    const char *colon = memchr(s, ':', len);
    size_t name_len = colon ? (size_t)(colon - s) : len;
    if (name_len != 4 || memcmp(s, "data", 4) != 0)
        return;   /* event, id, retry and unknown fields: not needed */
    const char *value = colon ? colon + 1 : s + len;
    size_t value_len = (size_t)(s + len - value);
    if (value_len && *value == ' ')
        value++, value_len--;
    if ((p->has_data && buf_add(&p->data, "\n", 1) < 0) ||
        buf_add(&p->data, value, value_len) < 0) {
        oom(p);
        return;
    }
    p->has_data = 1;
}

/* SSE bytes: split into lines at \n, \r\n or \r (a CRLF may be cut between feeds). */
static void sse_bytes(stream_parser *p, const char *data, size_t n)
{
    size_t j = 0;
    if (p->after_cr && n > 0 && data[0] == '\n')
        j = 1;
    p->after_cr = 0;
    while (j < n && !p->failed && !p->done) {
        size_t k = j;
        while (k < n && data[k] != '\n' && data[k] != '\r')
            k++;
        if (k == n) {
            if (buf_add(&p->line, data + j, n - j) < 0)
                oom(p);
            return;
        }
        if (p->line.len == 0) {
            handle_line(p, data + j, k - j);
        } else if (buf_add(&p->line, data + j, k - j) < 0) {
            oom(p);
        } else {
            handle_line(p, p->line.p, p->line.len);
            p->line.len = 0;
        }
        if (data[k] == '\r') {
            if (k + 1 < n && data[k + 1] == '\n')
                k++;
            else if (k + 1 == n)
                p->after_cr = 1;
        }
        j = k + 1;
    }
}

/* ---- public API ---- */

stream_parser *stream_new(size_t max_bytes)
{
    stream_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->max_bytes = max_bytes ? max_bytes : STREAM_MAX_DEFAULT;
    p->meta.prompt_tokens = p->meta.completion_tokens = -1;
    return p;
}

void stream_free(stream_parser *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_calls; i++) {
        free(p->calls[i].id);
        free(p->calls[i].type);
        free(p->calls[i].name);
        buf_free(&p->calls[i].arguments);
    }
    free(p->calls);
    buf_free(&p->error_body);
    buf_free(&p->line);
    buf_free(&p->data);
    buf_free(&p->body);
    buf_free(&p->content);
    openai_completion_free(&p->meta);
    free(p);
}

int stream_feed(stream_parser *p, const char *data, size_t len)
{
    if (p->failed)
        return STREAM_FAILED;
    if (p->done || p->finished || len == 0)
        return STREAM_MORE;
    size_t take = len < p->max_bytes - p->fed ? len : p->max_bytes - p->fed;
    p->fed += take;
    p->progress = 0;
    size_t i = 0;
    if (p->mode == MODE_UNKNOWN) {
        /* A UTF-8 BOM, then blanks, may come before the first byte that tells a whole JSON
         * body from SSE; the BOM may itself be cut across feeds. */
        static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
        while (i < take && p->bom_seen < 3 && p->bom_seen >= 0) {
            if ((unsigned char)data[i] != bom[p->bom_seen]) {
                if (p->bom_seen > 0) {
                    /* not a BOM after all: those bytes were the start of the body */
                    p->mode = MODE_SSE;
                    sse_bytes(p, (const char *)bom, (size_t)p->bom_seen);
                }
                p->bom_seen = -1;
                break;
            }
            p->bom_seen++;
            i++;
        }
        while (p->mode == MODE_UNKNOWN && i < take && is_blank(data[i]))
            i++;
        if (p->mode == MODE_UNKNOWN && i < take && (p->bom_seen == 3 || p->bom_seen == -1))
            p->mode = data[i] == '{' ? MODE_JSON : MODE_SSE;
    }
    if (p->mode == MODE_JSON && buf_add(&p->body, data + i, take - i) < 0)
        oom(p);
    else if (p->mode == MODE_SSE)
        sse_bytes(p, data + i, take - i);
    if (take < len && !p->done)
        fail(p, OPENAI_NOT_JSON, EFBIG, "stream is larger than %zu bytes", p->max_bytes);
    return p->failed ? STREAM_FAILED : p->progress ? STREAM_PROGRESS : STREAM_MORE;
}

const char *stream_error(const stream_parser *p)
{
    return p->failed ? p->err.msg : "";
}

const char *stream_error_body(const stream_parser *p, size_t *len)
{
    *len = p->error_body.p ? p->error_body.len : 0;
    return p->error_body.p;
}

const char *stream_text(const stream_parser *p, size_t *len)
{
    *len = p->content.p ? p->valid_len : 0;
    return p->content.p ? p->content.p : "";
}

long stream_tokens(const stream_parser *p)
{
    return p->tokens;
}

int stream_ended(const stream_parser *p)
{
    return p->done;
}

/* The tool calls as the JSON array a whole response would carry (p->n_calls > 0), or
 * NULL with p failed (out of memory, or text that is not UTF-8). */
static char *tool_calls_json(stream_parser *p)
{
    cJSON *array = cJSON_CreateArray();
    int ok = array != NULL, utf8 = 1;
    for (size_t i = 0; ok && i < p->n_calls; i++) {
        const tool_call *c = &p->calls[i];
        if (!c->seen)
            continue;   /* an index skipped by the provider */
        const char *args = c->arguments.p ? c->arguments.p : "";
        const char *name = c->name ? c->name : "", *type = c->type ? c->type : "function";
        utf8 = utf8 && openai_valid_utf8(args, strlen(args)) &&
               openai_valid_utf8(name, strlen(name)) && openai_valid_utf8(type, strlen(type)) &&
               (!c->id || openai_valid_utf8(c->id, strlen(c->id)));
        cJSON *call = cJSON_CreateObject(), *function = cJSON_CreateObject();
        if (!call || !function || !cJSON_AddItemToArray(array, call)) {
            cJSON_Delete(call);
            cJSON_Delete(function);
            ok = 0;
            break;
        }
        ok = (!c->id || cJSON_AddStringToObject(call, "id", c->id)) &&
             cJSON_AddStringToObject(call, "type", type) &&
             cJSON_AddStringToObject(function, "name", name) &&
             cJSON_AddStringToObject(function, "arguments", args);
        if (!cJSON_AddItemToObject(call, "function", function)) {
            cJSON_Delete(function);
            ok = 0;
        }
    }
    char *text = ok && utf8 ? cJSON_PrintUnformatted(array) : NULL;
    cJSON_Delete(array);
    if (!utf8)
        fail(p, OPENAI_NOT_JSON, EILSEQ, "provider returned a tool call that is not valid UTF-8");
    else if (!text)
        oom(p);
    return text;
}

/* The completion from the stream's end: a status, and *out filled when OK. */
static openai_status complete(stream_parser *p, openai_completion *out, rf_err *err)
{
    if (!p->failed && p->mode == MODE_JSON)
        return openai_parse_response(p->body.p, p->body.len, out, err);
    if (!p->failed && p->mode == MODE_SSE && !p->done) {
        p->at_eof = 1;
        if (p->line.len)
            handle_line(p, p->line.p, p->line.len);
        if (!p->failed && !p->done)
            dispatch(p);
    }
    if (!p->failed && !p->done && !p->meta.finish_reason)
        return rf_err_set(err, EIO, "stream ended without a finish reason or [DONE]: truncated"),
               OPENAI_TRUNCATED;
    if (!p->failed && p->valid_len < p->content.len)
        fail(p, OPENAI_NOT_JSON, EILSEQ, "provider returned text that is not valid UTF-8");
    char *text = NULL;
    if (!p->failed && p->content.len == 0 && p->n_calls)
        text = tool_calls_json(p);
    if (p->failed) {
        if (err)
            *err = p->err;
        return p->fail_status;
    }
    if (p->content.len == 0 && !text)
        return rf_err_set(err, EIO, "provider returned an empty message"), OPENAI_EMPTY_CONTENT;
    *out = p->meta;
    memset(&p->meta, 0, sizeof p->meta);
    if (text) {
        out->content = text;
    } else {
        out->content = p->content.p;   /* moved out */
        memset(&p->content, 0, sizeof p->content);
        p->valid_len = 0;
    }
    return OPENAI_OK;
}

openai_status stream_finish(stream_parser *p, openai_completion *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (p->finished)
        return rf_err_set(err, EINVAL, "stream already finished"), OPENAI_NOT_JSON;
    p->finished = 1;
    openai_status status = complete(p, out, err);
    if (status == OPENAI_OK)
        rf_err_clear(err);
    return status;
}
