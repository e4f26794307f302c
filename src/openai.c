/* openai.c — the chat-completions wire format: request bodies out, responses and error
 * bodies in, with OpenRouter's extensions ("provider" preferences in the request;
 * "provider" and usage.cost in the response).
 *
 * Pure functions over cJSON: no I/O, no globals.  Everything read from a provider is
 * untrusted, so every field is type-checked before use and any shape of body yields a
 * status, never a crash (the parsers are fuzzed).  Text taken from a body into a message
 * goes through copy_one_line: one line, valid UTF-8, bounded. */
#include "openai.h"
#include "jsonfmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_SNIPPET_MAX 200   /* bytes of a non-JSON error body kept as its message */
#define TOKEN_COUNT_MAX   1e15  /* larger "token counts" are nonsense: reported as unknown */

/* Keys of a JSON prompt that are not request parameters of its own: routefs sets them
 * ("user" and "provider" are passed through unless the caller sets its own), or drops them
 * ("route" is deprecated; "stream_options" is refused when stream is false). */
static const char *const owned_keys[] = {
    "model", "messages", "stream", "stream_options", "route", "user", "provider", NULL
};

/* ---- small helpers ---- */

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

/* obj[key] when obj is an object (case-sensitive), else NULL. */
static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* obj[key] as a string, or NULL. */
static const char *get_string(const cJSON *obj, const char *key)
{
    const cJSON *v = get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Length of the valid UTF-8 sequence at s (n bytes available); 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence_len((const unsigned char *)s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* Copy src[0..len) into dst (cap bytes, cap >= 1) as one clean line: runs of whitespace
 * and control characters become one space, invalid UTF-8 bytes become '?', leading and
 * trailing spaces are dropped, and the text is cut at a character boundary. */
static void copy_one_line(char *dst, size_t cap, const char *src, size_t len)
{
    size_t out = 0;
    int pending_space = 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *s = (const unsigned char *)src + i;
        size_t n = utf8_sequence_len(s, len - i);
        if (n == 1 && (*s <= ' ' || *s == 0x7f)) {
            pending_space = 1;
            i++;
            continue;
        }
        const char *piece = n ? (const char *)s : "?";
        size_t piece_len = n ? n : 1;
        i += piece_len;
        size_t need = piece_len + (pending_space && out > 0);
        if (out + need >= cap)
            break;
        if (pending_space && out > 0)
            dst[out++] = ' ';
        pending_space = 0;
        memcpy(dst + out, piece, piece_len);
        out += piece_len;
    }
    dst[out] = '\0';
}

/* Exactly one JSON value in text[0..len) (surrounding whitespace allowed), or NULL. */
static cJSON *parse_json(const char *text, size_t len)
{
    if (!text || len == 0)
        return NULL;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc)
        return NULL;
    size_t offset = (size_t)(end - text);
    while (offset < len && (unsigned char)text[offset] <= ' ')
        offset++;
    if (offset < len) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* The prompt as a chat request (an object with "messages"), or NULL for plain text. */
static cJSON *parse_chat_prompt(const char *prompt, size_t len)
{
    cJSON *doc = parse_json(prompt, len);
    if (get(doc, "messages"))
        return doc;
    cJSON_Delete(doc);
    return NULL;
}

/* obj[key] = item; takes item (deleted on failure, NULL counts as failure). */
static int add(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item))
        return 0;
    cJSON_Delete(item);
    return -1;
}

/* {"role": role, "content": content}, or NULL (out of memory). */
static cJSON *new_message(const char *role, const char *content)
{
    cJSON *msg = cJSON_CreateObject();
    if (!msg || add(msg, "role", cJSON_CreateString(role)) < 0 ||
        add(msg, "content", cJSON_CreateString(content)) < 0) {
        cJSON_Delete(msg);
        return NULL;
    }
    return msg;
}

/* ---- building a request ---- */

static int oom(rf_err *err)
{
    return rf_err_set(err, ENOMEM, "out of memory");
}

/* A plain-text prompt: [system?, user]; trailing whitespace (the file's last newline)
 * is dropped. */
static int add_text_messages(cJSON *req, const openai_request_in *in, rf_err *err)
{
    size_t len = in->prompt_len;
    while (len > 0 && (in->prompt[len - 1] == ' ' || in->prompt[len - 1] == '\t' ||
                       in->prompt[len - 1] == '\r' || in->prompt[len - 1] == '\n'))
        len--;
    if (len == 0)
        return rf_err_set(err, EINVAL, "prompt is empty");
    char *text = strndup(in->prompt, len);
    cJSON *messages = cJSON_CreateArray();
    cJSON *system = in->system_prompt ? new_message("system", in->system_prompt) : NULL;
    cJSON *user = text ? new_message("user", text) : NULL;
    free(text);
    if (!messages || (in->system_prompt && !system) || !user) {
        cJSON_Delete(messages);
        cJSON_Delete(system);
        cJSON_Delete(user);
        return oom(err);
    }
    if (system)
        cJSON_AddItemToArray(messages, system);
    cJSON_AddItemToArray(messages, user);
    return add(req, "messages", messages) < 0 ? oom(err) : 0;
}

/* A request's own max_tokens / max_completion_tokens: absent (0), or a positive integer. */
static int requested_max_tokens(const cJSON *prompt, const char *key, long *out, rf_err *err)
{
    const cJSON *v = get(prompt, key);
    *out = 0;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble != floor(v->valuedouble))
        return rf_err_set(err, EINVAL, "prompt's \"%s\" is not a positive integer", key);
    *out = v->valuedouble > (double)INT32_MAX ? INT32_MAX : (long)v->valuedouble;
    return 0;
}

/* A JSON chat prompt: its messages (system prompt prepended unless it starts with one)
 * and its other parameters, in order, first of duplicate keys winning.  Items are moved
 * out of prompt.  Sets *max_tokens to the request's own limit (0: none) and *key to the
 * name it used. */
static int add_chat_request(cJSON *req, cJSON *prompt, const openai_request_in *in,
                            long *max_tokens, const char **key, rf_err *err)
{
    cJSON *messages = cJSON_DetachItemFromObjectCaseSensitive(prompt, "messages");
    if (!cJSON_IsArray(messages) || !messages->child) {
        int empty = cJSON_IsArray(messages);
        cJSON_Delete(messages);
        return rf_err_set(err, EINVAL, "prompt is JSON with \"messages\" but messages is %s",
                          empty ? "empty" : "not an array");
    }
    const char *first_role = get_string(messages->child, "role");
    if (in->system_prompt && !(first_role && strcmp(first_role, "system") == 0)) {
        cJSON *system = new_message("system", in->system_prompt);
        if (!system || !cJSON_InsertItemInArray(messages, 0, system)) {
            cJSON_Delete(system);
            cJSON_Delete(messages);
            return oom(err);
        }
    }
    if (add(req, "messages", messages) < 0)
        return oom(err);

    long max_tokens_v, max_completion_v;
    if (requested_max_tokens(prompt, "max_tokens", &max_tokens_v, err) < 0 ||
        requested_max_tokens(prompt, "max_completion_tokens", &max_completion_v, err) < 0)
        return -1;
    *key = max_completion_v ? "max_completion_tokens" : "max_tokens";
    *max_tokens = max_tokens_v && (!max_completion_v || max_tokens_v < max_completion_v)
                  ? max_tokens_v : max_completion_v;

    /* a repeated key was passed through (or not) at its first occurrence */
    unsigned char *repeated = json_repeated_keys(prompt);
    if (!repeated)
        return oom(err);
    int keep_user = !in->user, keep_provider = !in->provider_prefs_json;
    cJSON *next;
    size_t i = 0;
    for (cJSON *item = prompt->child; item; item = next, i++) {
        next = item->next;
        const char *name = item->string;
        int passed_through = !in_list(owned_keys, name) ||
                             (keep_user && strcmp(name, "user") == 0) ||
                             (keep_provider && strcmp(name, "provider") == 0);
        if (!passed_through || strcmp(name, "max_tokens") == 0 ||
            strcmp(name, "max_completion_tokens") == 0 || repeated[i])
            continue;
        cJSON_DetachItemViaPointer(prompt, item);
        if (!cJSON_AddItemToObject(req, name, item)) {
            cJSON_Delete(item);
            free(repeated);
            return oom(err);
        }
    }
    free(repeated);
    return 0;
}

char *openai_build_request(const openai_request_in *in, rf_err *err)
{
    if (!in->model || !in->model[0])
        return rf_err_set(err, EINVAL, "no model given"), NULL;
    if (!in->prompt && in->prompt_len)
        return rf_err_set(err, EINVAL, "no prompt given"), NULL;
    if (!valid_utf8(in->prompt, in->prompt_len))
        return rf_err_set(err, EILSEQ, "prompt is not valid UTF-8 text"), NULL;
    if (in->prompt_len && memchr(in->prompt, '\0', in->prompt_len))
        return rf_err_set(err, EILSEQ, "prompt contains a NUL byte (not text)"), NULL;

    cJSON *prefs = NULL;
    if (in->provider_prefs_json) {
        prefs = parse_json(in->provider_prefs_json, strlen(in->provider_prefs_json));
        if (!cJSON_IsObject(prefs)) {
            cJSON_Delete(prefs);
            return rf_err_set(err, EINVAL, "tier provider preferences are not a JSON object"),
                   NULL;
        }
    }

    cJSON *prompt = parse_chat_prompt(in->prompt, in->prompt_len);
    cJSON *req = cJSON_CreateObject();
    long own_max = 0;
    const char *max_key = "max_tokens";
    int rc = !req || add(req, "model", cJSON_CreateString(in->model)) < 0 ? oom(err) : 0;
    if (rc == 0)
        rc = prompt ? add_chat_request(req, prompt, in, &own_max, &max_key, err)
                    : add_text_messages(req, in, err);
    cJSON_Delete(prompt);

    long max_tokens = own_max > 0 && own_max < in->max_tokens ? own_max : in->max_tokens;
    if (rc == 0 &&
        (add(req, max_key, cJSON_CreateNumber((double)max_tokens)) < 0 ||
         add(req, "stream", cJSON_CreateFalse()) < 0 ||
         (in->user && add(req, "user", cJSON_CreateString(in->user)) < 0)))
        rc = oom(err);
    if (rc == 0 && prefs) {
        rc = add(req, "provider", prefs) < 0 ? oom(err) : 0;   /* add takes prefs either way */
        prefs = NULL;
    }
    cJSON_Delete(prefs);

    char *body = rc == 0 ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (rc == 0 && !body)
        oom(err);
    return body;
}

/* ---- request parameters ---- */

void openai_free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

size_t openai_request_params(const char *prompt, size_t prompt_len, char ***names)
{
    *names = NULL;
    cJSON *doc = parse_chat_prompt(prompt, prompt_len);
    size_t cap = 1 + (doc ? (size_t)cJSON_GetArraySize(doc) : 0), n = 0, i = 0;
    unsigned char *repeated = doc ? json_repeated_keys(doc) : NULL;
    char **list = calloc(cap, sizeof *list);
    if (!list || (doc && !repeated) || !(list[n++] = strdup("max_tokens")))
        goto oom;
    for (const cJSON *item = doc ? doc->child : NULL; item; item = item->next, i++) {
        const char *name = item->string;
        if (in_list(owned_keys, name) || repeated[i] || strcmp(name, "max_tokens") == 0)
            continue;
        if (!(list[n++] = strdup(name)))
            goto oom;
    }
    free(repeated);
    cJSON_Delete(doc);
    *names = list;
    return n;
oom:
    free(repeated);
    cJSON_Delete(doc);
    openai_free_names(list, n);
    return 0;
}

int openai_effective_max_tokens(const char *prompt, size_t prompt_len, int tier_cap)
{
    cJSON *doc = parse_chat_prompt(prompt, prompt_len);
    long own = 0, a = 0, b = 0;
    if (doc && requested_max_tokens(doc, "max_tokens", &a, NULL) == 0 &&
        requested_max_tokens(doc, "max_completion_tokens", &b, NULL) == 0)
        own = a && (!b || a < b) ? a : b;
    cJSON_Delete(doc);
    return own > 0 && own < tier_cap ? (int)own : tier_cap;
}

/* ---- parsing responses ---- */

void openai_completion_free(openai_completion *c)
{
    if (!c)
        return;
    free(c->content);
    free(c->model);
    free(c->provider);
    free(c->finish_reason);
    free(c->id);
    memset(c, 0, sizeof *c);
}

/* What an error body says: error.message, an "error" string, a top-level "message", or a
 * JSON string body.  *code: error.code (any type) or NULL. */
static const char *error_message(const cJSON *doc, const cJSON **code)
{
    const cJSON *error = get(doc, "error");
    *code = get(error, "code");
    if (cJSON_IsString(doc))
        return doc->valuestring;
    if (cJSON_IsString(error))
        return error->valuestring;
    if (get_string(error, "message"))
        return get_string(error, "message");
    return get_string(doc, "message");
}

/* " (code X)" for an error code that is a string or a number, else "". */
static void describe_code(char *dst, size_t cap, const cJSON *code)
{
    char text[64];
    dst[0] = '\0';
    if (cJSON_IsString(code))
        copy_one_line(text, sizeof text, code->valuestring, strlen(code->valuestring));
    else if (cJSON_IsNumber(code))
        snprintf(text, sizeof text, "%.15g", code->valuedouble);
    else
        return;
    snprintf(dst, cap, " (code %s)", text);
}

/* err = "<what>: 'message' (code X)", or just "<what>" when obj has no error message. */
static void describe_error(rf_err *err, const char *what, const cJSON *obj)
{
    const cJSON *code;
    const char *message = error_message(obj, &code);
    char text[256], code_text[80];
    describe_code(code_text, sizeof code_text, code);
    if (!message) {
        rf_err_set(err, EIO, "%s%s", what, code_text);
        return;
    }
    copy_one_line(text, sizeof text, message, strlen(message));
    rf_err_set(err, EIO, "%s: '%s'%s", what, text, code_text);
}

static char *dup_string_field(const cJSON *obj, const char *key, int *oom_flag)
{
    const char *s = get_string(obj, key);
    char *copy = s ? strdup(s) : NULL;
    if (s && !copy)
        *oom_flag = 1;
    return copy;
}

/* A token count, or -1 when missing or not a sensible number. */
static long token_count(const cJSON *usage, const char *key)
{
    const cJSON *v = get(usage, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= TOKEN_COUNT_MAX))
        return -1;
    return (long)v->valuedouble;
}

/* The text of a {"type": "text", "text": ...} content part, or NULL. */
static const char *text_part(const cJSON *part)
{
    const char *type = get_string(part, "type");
    return type && strcmp(type, "text") == 0 ? get_string(part, "text") : NULL;
}

/* The text parts of a content array joined, or NULL when they are empty. */
static char *join_text_parts(const cJSON *content, int *oom_flag)
{
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
        len += text_part(part) ? strlen(text_part(part)) : 0;
    if (len == 0)
        return NULL;
    char *joined = malloc(len + 1);
    if (!joined) {
        *oom_flag = 1;
        return NULL;
    }
    size_t at = 0;
    cJSON_ArrayForEach(part, content) {
        const char *text = text_part(part);
        size_t n = text ? strlen(text) : 0;
        memcpy(joined + at, text ? text : "", n);
        at += n;
    }
    joined[at] = '\0';
    return joined;
}

/* The assistant's text: a non-empty content string, the text parts of a content array
 * joined, or else non-empty tool_calls as JSON.  NULL when there is none (or on OOM,
 * flagged). */
static char *message_content(const cJSON *message, int *oom_flag)
{
    const cJSON *content = get(message, "content");
    if (cJSON_IsString(content) && content->valuestring[0]) {
        char *text = strdup(content->valuestring);
        *oom_flag = !text;
        return text;
    }
    char *joined = cJSON_IsArray(content) ? join_text_parts(content, oom_flag) : NULL;
    if (joined || *oom_flag)
        return joined;
    const cJSON *tool_calls = get(message, "tool_calls");
    if (cJSON_IsArray(tool_calls) && tool_calls->child) {
        char *text = cJSON_PrintUnformatted(tool_calls);
        *oom_flag = !text;
        return text;
    }
    return NULL;
}

static openai_status completion_from_json(const cJSON *doc, openai_completion *out,
                                          rf_err *err)
{
    if (!cJSON_IsObject(doc))
        return rf_err_set(err, EIO, "provider returned JSON that is not an object"),
               OPENAI_NOT_JSON;
    const cJSON *error = get(doc, "error");
    if (cJSON_IsObject(error) || (cJSON_IsString(error) && error->valuestring[0])) {
        describe_error(err, "provider returned an error object", doc);
        return OPENAI_ERROR_OBJECT;
    }
    const cJSON *choices = get(doc, "choices");
    if (!cJSON_IsArray(choices) || !choices->child)
        return rf_err_set(err, EIO, "provider returned no choices"), OPENAI_NO_CHOICES;
    const cJSON *choice = choices->child;
    if (!cJSON_IsObject(choice))
        return rf_err_set(err, EIO, "provider returned a malformed choice"), OPENAI_NO_CHOICES;

    const char *finish_reason = get_string(choice, "finish_reason");
    if (finish_reason && strcmp(finish_reason, "error") == 0) {
        describe_error(err, "provider finished with finish_reason \"error\"", choice);
        return OPENAI_FINISH_ERROR;
    }

    int oom_flag = 0;
    out->content = message_content(get(choice, "message"), &oom_flag);
    out->model = dup_string_field(doc, "model", &oom_flag);
    out->provider = dup_string_field(doc, "provider", &oom_flag);
    out->id = dup_string_field(doc, "id", &oom_flag);
    out->finish_reason = dup_string_field(choice, "finish_reason", &oom_flag);
    if (oom_flag)
        return rf_err_set(err, ENOMEM, "out of memory"), OPENAI_NOT_JSON;
    if (!out->content)
        return rf_err_set(err, EIO, "provider returned an empty message"), OPENAI_EMPTY_CONTENT;
    /* JSON text is UTF-8; a completion that is not is garbage, not an answer. */
    if (!valid_utf8(out->content, strlen(out->content)))
        return rf_err_set(err, EILSEQ, "provider returned text that is not valid UTF-8"),
               OPENAI_NOT_JSON;

    const cJSON *usage = get(doc, "usage");
    out->prompt_tokens = token_count(usage, "prompt_tokens");
    out->completion_tokens = token_count(usage, "completion_tokens");
    const cJSON *cost = get(usage, "cost");
    if (cJSON_IsNumber(cost) && isfinite(cost->valuedouble) && cost->valuedouble >= 0) {
        out->cost = cost->valuedouble;
        out->has_cost = 1;
    }
    return OPENAI_OK;
}

/* Does the JSON text contain the escape \u0000 (a NUL character)?  Escapes are walked
 * pairwise, so an escaped backslash followed by "u0000" is text, not a NUL. */
static int has_escaped_nul(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < len && !memcmp(s + i + 2, "0000", 4))
            return 1;
        i++;   /* skip the escaped character, whatever it is */
    }
    return 0;
}

openai_status openai_parse_response(const char *body, size_t len, openai_completion *out,
                                    rf_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *doc = parse_json(body, len);
    openai_status status = OPENAI_NOT_JSON;
    /* cJSON ends a string at an escaped NUL: the answer would be cut silently.  A NUL
     * has no place in a completion, so such a body is refused whole. */
    if (doc && (memchr(body, 0, len) || has_escaped_nul(body, len))) {
        cJSON_Delete(doc);
        return rf_err_set(err, EILSEQ, "provider returned text containing a NUL character"),
               OPENAI_NOT_JSON;
    }
    if (doc)
        status = completion_from_json(doc, out, err);
    else if (!body || len == 0)
        rf_err_set(err, EIO, "provider returned an empty body");
    else
        rf_err_set(err, EIO, "provider returned a body that is not JSON (%zu bytes)", len);
    cJSON_Delete(doc);
    if (status != OPENAI_OK)
        openai_completion_free(out);
    return status;
}

/* ---- error bodies ---- */

static int mentions_any(const char *text, const char *const *phrases)
{
    for (; text && *phrases; phrases++)
        if (strcasestr(text, *phrases))
            return 1;
    return 0;
}

static const char *const context_length_phrases[] = {
    "context length", "context_length_exceeded", "maximum context", "too many tokens", NULL
};
static const char *const unsupported_param_phrases[] = {
    "unsupported parameter", "not supported", "unsupported_parameter", NULL
};

void openai_parse_error(const char *body, size_t len, openai_error_info *info)
{
    memset(info, 0, sizeof *info);
    cJSON *doc = parse_json(body, len);
    const cJSON *code = NULL;
    const char *message = NULL, *raw = NULL;
    if (doc) {
        message = error_message(doc, &code);
        /* OpenRouter passes the upstream provider's own error text here */
        raw = get_string(get(get(doc, "error"), "metadata"), "raw");
        if (message)
            copy_one_line(info->msg, sizeof info->msg, message, strlen(message));
    } else if (body) {
        copy_one_line(info->msg, ERROR_SNIPPET_MAX + 1, body, len);
        message = info->msg;
    }

    const char *code_text = cJSON_IsString(code) ? code->valuestring : "";
    info->context_length = mentions_any(message, context_length_phrases) ||
                           mentions_any(raw, context_length_phrases) ||
                           strcmp(code_text, "context_length_exceeded") == 0;
    info->unsupported_param = mentions_any(message, unsupported_param_phrases) ||
                              mentions_any(raw, unsupported_param_phrases) ||
                              strcmp(code_text, "unsupported_parameter") == 0 ||
                              strcmp(code_text, "unsupported_value") == 0;
    cJSON_Delete(doc);
}
