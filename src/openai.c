/* openai.c — the chat-completions wire format: request bodies out, completions in, with
 * OpenRouter's extensions ("provider" preferences, "models" and "session_id" in the
 * request; "provider" and usage.cost in the response).  Error bodies are read by
 * openai_error.c; streamed responses are framed by stream.c.
 *
 * Pure functions over cJSON: no I/O, no globals.  Everything read from a provider is
 * untrusted, so every field is type-checked before use and any shape of body yields a
 * status, never a crash (the parsers are fuzzed).  Text taken from a body into a message
 * goes through openai_describe_error: one line, valid UTF-8, bounded. */
#include "openai.h"
#include "jsonfmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_COUNT_MAX   1e15  /* larger "token counts" are nonsense: reported as unknown */

/* Keys of a JSON prompt that are not request parameters of its own: routefs sets them
 * ("user" and "provider" are passed through unless the caller sets its own), or drops them
 * ("route" is deprecated; "stream_options" follows routefs's "stream"; "models" would
 * replace the hop's model). */
static const char *const owned_keys[] = {
    "model", "messages", "stream", "stream_options", "route", "user", "provider", "models", NULL
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

size_t openai_utf8_char_len(const unsigned char *s, size_t n)
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

int openai_valid_utf8(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = openai_utf8_char_len((const unsigned char *)s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

cJSON *openai_parse_json(const char *text, size_t len)
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
    cJSON *doc = openai_parse_json(prompt, len);
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
        int passed_through = (!in_list(owned_keys, name) ||
                              (keep_user && strcmp(name, "user") == 0) ||
                              (keep_provider && strcmp(name, "provider") == 0)) &&
                             !(in->service_tier && strcmp(name, "service_tier") == 0) &&
                             !(in->session_id && strcmp(name, "session_id") == 0);
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

/* "models": [...] from in->models (n_models >= 1, checked). */
static int add_models(cJSON *req, const openai_request_in *in)
{
    cJSON *models = cJSON_CreateArray();
    for (size_t i = 0; models && i < in->n_models; i++) {
        cJSON *name = cJSON_CreateString(in->models[i]);
        if (!name || !cJSON_AddItemToArray(models, name)) {
            cJSON_Delete(name);
            cJSON_Delete(models);
            return -1;
        }
    }
    return add(req, "models", models);
}

/* "stream": in->stream, and with it "stream_options": {"include_usage": true}, so the
 * final chunk carries usage (and OpenRouter's cost). */
static int add_stream(cJSON *req, int stream)
{
    if (add(req, "stream", cJSON_CreateBool(stream)) < 0)
        return -1;
    if (!stream)
        return 0;
    cJSON *options = cJSON_CreateObject();
    if (!options || add(options, "include_usage", cJSON_CreateTrue()) < 0) {
        cJSON_Delete(options);
        return -1;
    }
    return add(req, "stream_options", options);
}

char *openai_build_request(const openai_request_in *in, rf_err *err)
{
    int with_models = in->models && in->n_models > 0;
    for (size_t i = 0; with_models && i < in->n_models; i++)
        if (!in->models[i] || !in->models[i][0])
            return rf_err_set(err, EINVAL, "models list has an empty name"), NULL;
    const char *model = with_models ? in->models[0] : in->model;
    if (!model || !model[0])
        return rf_err_set(err, EINVAL, "no model given"), NULL;
    if (!in->prompt && in->prompt_len)
        return rf_err_set(err, EINVAL, "no prompt given"), NULL;
    if (!openai_valid_utf8(in->prompt, in->prompt_len))
        return rf_err_set(err, EILSEQ, "prompt is not valid UTF-8 text"), NULL;
    if (in->prompt_len && memchr(in->prompt, '\0', in->prompt_len))
        return rf_err_set(err, EILSEQ, "prompt contains a NUL byte (not text)"), NULL;

    cJSON *prefs = NULL;
    if (in->provider_prefs_json) {
        prefs = openai_parse_json(in->provider_prefs_json, strlen(in->provider_prefs_json));
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
    int rc = !req || add(req, "model", cJSON_CreateString(model)) < 0 ||
             (with_models && add_models(req, in) < 0) ? oom(err) : 0;
    if (rc == 0)
        rc = prompt ? add_chat_request(req, prompt, in, &own_max, &max_key, err)
                    : add_text_messages(req, in, err);
    cJSON_Delete(prompt);

    long max_tokens = own_max > 0 && own_max < in->max_tokens ? own_max : in->max_tokens;
    if (rc == 0 &&
        (add(req, max_key, cJSON_CreateNumber((double)max_tokens)) < 0 ||
         add_stream(req, in->stream != 0) < 0 ||
         (in->user && add(req, "user", cJSON_CreateString(in->user)) < 0)))
        rc = oom(err);
    if (rc == 0 && prefs) {
        rc = add(req, "provider", prefs) < 0 ? oom(err) : 0;   /* add takes prefs either way */
        prefs = NULL;
    }
    cJSON_Delete(prefs);
    if (rc == 0 &&
        ((in->service_tier && add(req, "service_tier", cJSON_CreateString(in->service_tier)) < 0) ||
         (in->session_id && add(req, "session_id", cJSON_CreateString(in->session_id)) < 0)))
        rc = oom(err);

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
    free(c->service_tier);
    free(c->or_metadata);
    memset(c, 0, sizeof *c);
}

static char *dup_string_field(const cJSON *obj, const char *key, int *oom_flag)
{
    const char *s = get_string(obj, key);
    char *copy = s ? strdup(s) : NULL;
    if (s && !copy)
        *oom_flag = 1;
    return copy;
}

/* A token count, or -1 when not a sensible number. */
static long token_count(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= TOKEN_COUNT_MAX))
        return -1;
    return (long)v->valuedouble;
}

void openai_read_usage(const cJSON *usage, openai_completion *out)
{
    const cJSON *prompt = get(usage, "prompt_tokens"), *completion =
        get(usage, "completion_tokens"), *cost = get(usage, "cost");
    if (prompt)
        out->prompt_tokens = token_count(prompt);
    if (completion)
        out->completion_tokens = token_count(completion);
    if (!cost)
        return;
    /* a cost is money: only a finite, non-negative number is believed */
    int valid = cJSON_IsNumber(cost) && isfinite(cost->valuedouble) && cost->valuedouble >= 0;
    out->cost = valid ? cost->valuedouble + 0.0 : 0;   /* + 0.0: -0 becomes 0 */
    out->has_cost = valid;
    out->cost_invalid = !valid;
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
        openai_describe_error(err, "provider returned an error object", doc);
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
        openai_describe_error(err, "provider finished with finish_reason \"error\"", choice);
        return OPENAI_FINISH_ERROR;
    }

    int oom_flag = 0;
    out->content = message_content(get(choice, "message"), &oom_flag);
    out->model = dup_string_field(doc, "model", &oom_flag);
    out->provider = dup_string_field(doc, "provider", &oom_flag);
    out->id = dup_string_field(doc, "id", &oom_flag);
    out->finish_reason = dup_string_field(choice, "finish_reason", &oom_flag);
    out->service_tier = dup_string_field(doc, "service_tier", &oom_flag);
    out->or_metadata = openai_or_metadata(doc, &oom_flag);
    if (oom_flag)
        return rf_err_set(err, ENOMEM, "out of memory"), OPENAI_NOT_JSON;
    if (!out->content)
        return rf_err_set(err, EIO, "provider returned an empty message"), OPENAI_EMPTY_CONTENT;
    /* JSON text is UTF-8; a completion that is not is garbage, not an answer. */
    if (!openai_valid_utf8(out->content, strlen(out->content)))
        return rf_err_set(err, EILSEQ, "provider returned text that is not valid UTF-8"),
               OPENAI_NOT_JSON;

    out->prompt_tokens = out->completion_tokens = -1;
    openai_read_usage(get(doc, "usage"), out);
    return OPENAI_OK;
}

#define OR_METADATA_MAX 16384

char *openai_or_metadata(const cJSON *doc, int *oom)
{
    const cJSON *m = cJSON_IsObject(doc) ? get(doc, "openrouter_metadata") : NULL;
    if (!cJSON_IsObject(m))
        return NULL;
    char *text = cJSON_PrintUnformatted(m);
    if (!text) {
        *oom = 1;
        return NULL;
    }
    size_t n = strlen(text);
    if (n > OR_METADATA_MAX || !openai_valid_utf8(text, n)) {
        free(text);
        return NULL;
    }
    return text;
}

/* Escapes are walked pairwise, so an escaped backslash followed by "u0000" is text, not a
 * NUL. */
int openai_json_has_nul(const char *s, size_t len)
{
    if (len && memchr(s, '\0', len))
        return 1;
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
    cJSON *doc = openai_parse_json(body, len);
    openai_status status = OPENAI_NOT_JSON;
    /* cJSON ends a string at an escaped NUL: the answer would be cut silently.  A NUL
     * has no place in a completion, so such a body is refused whole. */
    if (doc && openai_json_has_nul(body, len)) {
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
