/* openai_error.c — what a provider's error says: the one-line message of an error body,
 * the flags routing decides by (context length, unsupported parameter, content policy,
 * credits, key limit), and OpenRouter's detail about the providers it tried.  Part of the
 * openai module (declared in openai.h); split from openai.c, which builds requests and
 * reads completions.
 *
 * Pure functions over cJSON: no I/O, no globals.  Error bodies are untrusted: every field
 * is type-checked, and text taken from them is one clean line (copy_one_line) or
 * sanitized JSON (valid UTF-8, bounded). */
#include "openai.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_SNIPPET_MAX 200   /* bytes of a non-JSON error body kept as its message */

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

/* Copy src[0..len) into dst (cap bytes, cap >= 1) as one clean line: runs of whitespace
 * and control characters become one space, invalid UTF-8 bytes become '?', leading and
 * trailing spaces are dropped, and the text is cut at a character boundary. */
static void copy_one_line(char *dst, size_t cap, const char *src, size_t len)
{
    size_t out = 0;
    int pending_space = 0;
    for (size_t i = 0; i < len;) {
        const unsigned char *s = (const unsigned char *)src + i;
        size_t n = openai_utf8_char_len(s, len - i);
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

/* ---- messages ---- */

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

void openai_describe_error(rf_err *err, const char *what, const cJSON *obj)
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
/* OpenAI content_policy_violation; Azure code content_filter, "... triggering Azure
 * OpenAI's content management policy" */
static const char *const content_policy_phrases[] = {
    "content_policy_violation", "content_filter", "content management policy",
    "content policy", NULL
};
/* OpenRouter 402 "Insufficient credits" / "requires more credits"; Anthropic "Your credit
 * balance is too low"; OpenAI 429 insufficient_quota "You exceeded your current quota" */
static const char *const credits_phrases[] = {
    "insufficient credit", "more credits", "out of credits", "not enough credits",
    "credit balance", "insufficient_quota", "exceeded your current quota",
    "insufficient balance", "insufficient funds", NULL
};
/* OpenRouter 403 "Key limit exceeded"; workspace and spend limits */
static const char *const key_limit_phrases[] = {
    "key limit", "key_limit", "workspace limit", "limit exceeded", "limit_exceeded",
    "limit reached", "spend limit", "spending limit", "budget limit", "usage limit", NULL
};

/* What an error is judged by: its message, OpenRouter's metadata.raw (the upstream
 * provider's own error, a string or JSON), its code and its type. */
typedef struct error_texts {
    const char *message, *raw, *code, *type;
} error_texts;

static int error_mentions(const error_texts *t, const char *const *phrases)
{
    return mentions_any(t->message, phrases) || mentions_any(t->raw, phrases) ||
           mentions_any(t->code, phrases) || mentions_any(t->type, phrases);
}

#define DETAIL_STRING_MAX 256

/* s made valid UTF-8 ('?' for each bad byte) and cut to DETAIL_STRING_MAX bytes at a
 * character boundary, in place (both only shorten it). */
static void sanitize_text(char *s)
{
    size_t len = strlen(s), out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = openai_utf8_char_len((unsigned char *)s + i, len - i);
        if (out + (n ? n : 1) > DETAIL_STRING_MAX)
            break;
        if (n == 0) {
            s[out++] = '?';
            i++;
        } else {
            memmove(s + out, s + i, n);
            out += n;
            i += n;
        }
    }
    s[out] = '\0';
}

/* Every string and member name in item and its children (depth is bounded by cJSON's
 * nesting limit). */
static void sanitize_tree(cJSON *item)
{
    for (; item; item = item->next) {
        if (item->string)
            sanitize_text(item->string);
        if (cJSON_IsString(item) && item->valuestring)
            sanitize_text(item->valuestring);
        sanitize_tree(item->child);
    }
}

/* Length of item printed compactly, or SIZE_MAX (out of memory). */
static size_t printed_len(const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);
    size_t n = text ? strlen(text) : SIZE_MAX;
    free(text);
    return n;
}

/* A sanitized copy of value, or NULL.  An array keeps the elements that fit in *room
 * (*truncated set when some did not); anything else is kept whole or not at all. */
static cJSON *detail_part(const cJSON *value, size_t *room, int *truncated)
{
    cJSON *copy = cJSON_Duplicate(value, 1);
    if (!copy)
        return NULL;
    sanitize_tree(copy);
    if (cJSON_IsArray(copy)) {
        cJSON *kept = cJSON_CreateArray(), *el;
        size_t used = 2;   /* [] */
        while (kept && (el = copy->child)) {
            cJSON_DetachItemViaPointer(copy, el);
            size_t n = printed_len(el);
            if (n == SIZE_MAX || used + n + 1 > *room) {
                cJSON_Delete(el);
                *truncated = 1;
                break;
            }
            used += n + (kept->child != NULL);
            cJSON_AddItemToArray(kept, el);
        }
        cJSON_Delete(copy);
        copy = kept;
    }
    size_t n = copy ? printed_len(copy) : SIZE_MAX;
    if (n == SIZE_MAX || n > *room) {
        cJSON_Delete(copy);
        *truncated = 1;
        return NULL;
    }
    *room -= n;
    return copy;
}

/* info->detail_json: what OpenRouter says about the providers it tried, for the meta. */
static void error_detail(const cJSON *error, char *dst)
{
    const cJSON *metadata = get(error, "metadata");
    const cJSON *availability = get(metadata, "availability");
    const struct { const char *key; const cJSON *value; } parts[] = {
        {"provider_name", get(metadata, "provider_name")},
        {"availability", availability ? availability : get(error, "availability")},
        {"previous_errors", get(metadata, "previous_errors")},
    };
    size_t room = OPENAI_DETAIL_MAX - sizeof "{,\"truncated\":true}";
    int truncated = 0;
    cJSON *detail = cJSON_CreateObject();
    dst[0] = '\0';
    for (size_t i = 0; detail && i < sizeof parts / sizeof parts[0]; i++) {
        size_t key_len = strlen(parts[i].key) + sizeof "\"\":,";
        if (!parts[i].value || cJSON_IsNull(parts[i].value) || key_len > room)
            continue;
        room -= key_len;
        cJSON *part = detail_part(parts[i].value, &room, &truncated);
        if (part && !cJSON_AddItemToObject(detail, parts[i].key, part))
            cJSON_Delete(part);
    }
    if (detail && truncated)
        cJSON_AddTrueToObject(detail, "truncated");
    char *text = detail && detail->child ? cJSON_PrintUnformatted(detail) : NULL;
    if (text && strlen(text) < OPENAI_DETAIL_MAX)
        memcpy(dst, text, strlen(text) + 1);
    free(text);
    cJSON_Delete(detail);
}

void openai_parse_error_status(int http_status, const char *body, size_t len,
                               openai_error_info *info)
{
    memset(info, 0, sizeof *info);
    cJSON *doc = openai_parse_json(body, len);
    const cJSON *code = NULL, *error = get(doc, "error"), *metadata = get(error, "metadata");
    error_texts t = {0};
    char *raw_json = NULL;
    if (doc) {
        t.message = error_message(doc, &code);
        /* OpenRouter passes the upstream provider's own error here */
        const cJSON *raw = get(metadata, "raw");
        if (cJSON_IsString(raw))
            t.raw = raw->valuestring;
        else if (raw && !cJSON_IsNull(raw))
            t.raw = raw_json = cJSON_PrintUnformatted(raw);
        t.type = get_string(error, "type");
        if (t.message)
            copy_one_line(info->msg, sizeof info->msg, t.message, strlen(t.message));
    } else if (body) {
        copy_one_line(info->msg, ERROR_SNIPPET_MAX + 1, body, len);
        t.message = info->msg;
    }
    t.code = cJSON_IsString(code) ? code->valuestring : NULL;
    /* OpenRouter's error.code is the HTTP status, also inside a 200 stream */
    int status = http_status;
    if (status == 0 && cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble < 600)
        status = (int)code->valuedouble;
    int moderation = cJSON_IsArray(get(metadata, "reasons")) ||
                     cJSON_IsString(get(metadata, "flagged_input"));

    info->context_length = error_mentions(&t, context_length_phrases);
    info->unsupported_param = error_mentions(&t, unsupported_param_phrases) ||
                              (t.code && strcmp(t.code, "unsupported_value") == 0);
    /* a 429 or 5xx is about the provider, whatever it mentions */
    info->content_policy = status != 429 && status < 500 &&
                           (moderation || error_mentions(&t, content_policy_phrases));
    info->insufficient_credits = status == 402 || error_mentions(&t, credits_phrases);
    info->key_limit = status == 403 && error_mentions(&t, key_limit_phrases);
    if (cJSON_IsObject(error))
        error_detail(error, info->detail_json);
    free(raw_json);
    cJSON_Delete(doc);
}

void openai_parse_error(const char *body, size_t len, openai_error_info *info)
{
    openai_parse_error_status(0, body, len, info);
}
