/* hostile.c — routefs-sim's hostile-provider corpus: the bad answers a real provider, or a
 * proxy in front of one, has been seen to give (or could), one behaviour mode each.
 *
 * Three families:
 *   bodies     a complete, well-framed HTTP response whose body or headers are wrong
 *              (missing_choices ... redirect): a buffer response;
 *   streams    framing over time (drip, chunked_forever, huge, huge_chunked, reset):
 *              a libmicrohttpd callback response, in hostile_stream.c;
 *   raw        what libmicrohttpd will not frame (long_header, no_status_line,
 *              headers_only, short_length): bytes written straight to the socket, also
 *              in hostile_stream.c.
 * This file builds the bodies and picks the response for a mode.
 * libmicrohttpd computes Content-Length itself: an application's own is accepted only
 * with MHD_RF_INSANITY_HEADER_CONTENT_LENGTH, and then it adds its true one as well
 * (conflicting_length uses exactly that); a Content-Length that lies about the body
 * needs the raw path.  It cannot send a 1xx followed by a final response on the same
 * request, nor a header line over its per-connection memory pool (hence raw). */
#include "sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEEP_LEVELS       100000                /* "deep_nesting": array levels */
#define RETRY_AFTER_YEARS "99999999"            /* ~3 years of seconds */

static const char json_type[] = "application/json";

/* ---------------------------------------------------------------- small helpers */

static char *print_doc(cJSON *doc, size_t *len)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text && len)
        *len = strlen(text);
    return text;
}

/* text (consumed) as a response with Content-Type ctype; NULL when out of memory. */
static struct MHD_Response *body_response(char *text, size_t len, const char *ctype)
{
    return text ? sim_text_response(text, len, ctype) : NULL;
}

static bool add_header(struct MHD_Response *r, const char *name, const char *value)
{
    return MHD_add_response_header(r, name, value) == MHD_YES;
}

/* The first choice's message of a completion document, or NULL. */
static cJSON *first_message(cJSON *doc)
{
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(doc, "choices");
    cJSON *choice = cJSON_GetArrayItem(choices, 0);
    return cJSON_GetObjectItemCaseSensitive(choice, "message");
}

/* Replace obj[key] with item (consumed); false when out of memory or absent. */
static bool replace(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return false;
    if (!obj || !cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item)) {
        cJSON_Delete(item);
        return false;
    }
    return true;
}

/* The normal content of this reply ("sim[MODEL]: prompt"), malloc'd. */
static char *echo_of(cJSON *doc)
{
    cJSON *content = cJSON_GetObjectItemCaseSensitive(first_message(doc), "content");
    return cJSON_IsString(content) ? strdup(content->valuestring) : NULL;
}

/* ---------------------------------------------------------------- bodies */

/* A JSON string literal (quotes included) of s with "\u0000" and a tail spliced in before
 * the closing quote: a content with a NUL character, which cJSON cannot hold. */
static char *string_with_nul(const char *s)
{
    cJSON *item = cJSON_CreateString(s);
    char *quoted = item ? cJSON_PrintUnformatted(item) : NULL;
    cJSON_Delete(item);
    if (!quoted)
        return NULL;
    size_t n = strlen(quoted);   /* ends with '"' */
    char *out = NULL;
    if (asprintf(&out, "%.*s\\u0000 and the part after the NUL\"", (int)(n - 1), quoted) < 0)
        out = NULL;
    cJSON_free(quoted);
    return out;
}

/* The completion document altered the way mode says; NULL when out of memory. */
static cJSON *altered_doc(const cJSON *request, const char *model, const sim_verdict *v,
                          enum sim_mode mode)
{
    cJSON *doc = sim_completion_doc(request, model, v, SIM_MODE_OK);
    if (!doc)
        return NULL;
    bool ok = true;
    switch (mode) {
    case SIM_MODE_MISSING_CHOICES:
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "choices");
        break;
    case SIM_MODE_CHOICES_NOT_ARRAY: {   /* {"choices": {"0": {...the choice...}}} */
        cJSON *choices = cJSON_DetachItemFromObjectCaseSensitive(doc, "choices");
        cJSON *choice = cJSON_DetachItemFromArray(choices, 0);
        cJSON *obj = cJSON_CreateObject();
        cJSON_Delete(choices);
        if (!obj || !choice || !cJSON_AddItemToObject(obj, "0", choice)) {
            cJSON_Delete(choice);
            cJSON_Delete(obj);
            ok = false;
            break;
        }
        ok = cJSON_AddItemToObject(doc, "choices", obj);
        if (!ok)
            cJSON_Delete(obj);
        break;
    }
    case SIM_MODE_MESSAGE_NOT_OBJECT: {  /* "message": "the text" */
        char *text = echo_of(doc);
        cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "choices"), 0);
        ok = text && replace(choice, "message", cJSON_CreateString(text));
        free(text);
        break;
    }
    case SIM_MODE_CONTENT_NUMBER:
        ok = replace(first_message(doc), "content", cJSON_CreateNumber(42));
        break;
    case SIM_MODE_INVALID_UTF8: {        /* a lone 0xff, 0xfe, and a cut 2-byte sequence */
        char *text = echo_of(doc), *bad = NULL;
        if (!text || asprintf(&bad, "%s \xff\xfe invalid \xc3\x28 bytes", text) < 0)
            bad = NULL;
        free(text);
        ok = bad && replace(first_message(doc), "content", cJSON_CreateString(bad));
        free(bad);
        break;
    }
    case SIM_MODE_NUL_CONTENT: {
        char *text = echo_of(doc);
        char *raw = text ? string_with_nul(text) : NULL;
        free(text);
        ok = raw && replace(first_message(doc), "content", cJSON_CreateRaw(raw));
        free(raw);
        break;
    }
    case SIM_MODE_DUP_KEYS: {            /* a second "choices", empty; cJSON keeps both */
        cJSON *empty = cJSON_CreateArray();
        ok = empty && cJSON_AddItemToObject(doc, "choices", empty);
        if (!ok)
            cJSON_Delete(empty);
        break;
    }
    case SIM_MODE_USAGE_GARBAGE: {       /* negative, textual and infinite counts and cost */
        cJSON *usage = cJSON_CreateObject();
        ok = usage && cJSON_AddNumberToObject(usage, "prompt_tokens", -5) &&
             cJSON_AddStringToObject(usage, "completion_tokens", "many") &&
             cJSON_AddRawToObject(usage, "total_tokens", "1e999") &&
             cJSON_AddRawToObject(usage, "cost", "1e999");
        if (!ok) {
            cJSON_Delete(usage);
            break;
        }
        ok = replace(doc, "usage", usage);
        break;
    }
    case SIM_MODE_TOP_ARRAY: {           /* [ {...the completion...} ] */
        cJSON *array = cJSON_CreateArray();
        if (!array || !cJSON_AddItemToArray(array, doc)) {
            cJSON_Delete(array);
            ok = false;
            break;
        }
        doc = array;
        break;
    }
    default:
        break;
    }
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

/* "object":"error" at the top level, the way vLLM and FastChat report errors. */
static char *object_error_text(size_t *len)
{
    cJSON *doc = cJSON_CreateObject();
    bool ok = doc && cJSON_AddStringToObject(doc, "object", "error") &&
              cJSON_AddStringToObject(doc, "message", "sim: the model is overloaded") &&
              cJSON_AddStringToObject(doc, "type", "ServiceUnavailableError") &&
              cJSON_AddNullToObject(doc, "param") && cJSON_AddNumberToObject(doc, "code", 503);
    if (!ok) {
        cJSON_Delete(doc);
        return NULL;
    }
    return print_doc(doc, len);
}

/* prefix + text (consumed) + suffix, malloc'd. */
static char *wrap(const char *prefix, size_t prefix_len, char *text, size_t text_len,
                  const char *suffix, size_t suffix_len, size_t *len)
{
    char *out = text ? malloc(prefix_len + text_len + suffix_len + 1) : NULL;
    if (out) {
        memcpy(out, prefix, prefix_len);
        memcpy(out + prefix_len, text, text_len);
        memcpy(out + prefix_len + text_len, suffix, suffix_len);
        out[prefix_len + text_len + suffix_len] = '\0';
        *len = prefix_len + text_len + suffix_len;
    }
    free(text);
    return out;
}

/* {"id":...,"choices":[[[[...]]]]} nested DEEP_LEVELS deep: valid JSON that a recursive
 * parser without a depth limit overflows its stack on. */
static char *deep_text(const sim_verdict *v, size_t *len)
{
    char head[64];
    int head_len = snprintf(head, sizeof head, "{\"id\":\"sim-%llu\",\"choices\":",
                            (unsigned long long)v->serial);
    size_t n = (size_t)head_len + 2 * DEEP_LEVELS + 1;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, head, (size_t)head_len);
    memset(out + head_len, '[', DEEP_LEVELS);
    memset(out + head_len + DEEP_LEVELS, ']', DEEP_LEVELS);
    out[n - 1] = '}';
    out[n] = '\0';
    *len = n;
    return out;
}

/* One chat.completion.chunk: delta {"role": ...} (i = 0), {"content": ...} (i = 1) or {}
 * with finish_reason "stop" (i = 2); printed, or NULL when out of memory. */
static char *sse_chunk(const char *id, const char *model, const char *content, int i)
{
    cJSON *chunk = cJSON_CreateObject();
    cJSON *choices = chunk ? cJSON_AddArrayToObject(chunk, "choices") : NULL;
    cJSON *choice = cJSON_CreateObject();
    if (!choices || !choice || !cJSON_AddItemToArray(choices, choice)) {
        cJSON_Delete(choice);
        cJSON_Delete(chunk);
        return NULL;
    }
    cJSON *delta = NULL;
    bool ok = cJSON_AddStringToObject(chunk, "id", id) &&
              cJSON_AddStringToObject(chunk, "object", "chat.completion.chunk") &&
              cJSON_AddStringToObject(chunk, "model", model) &&
              cJSON_AddNumberToObject(choice, "index", 0) &&
              (delta = cJSON_AddObjectToObject(choice, "delta")) &&
              (i != 0 || cJSON_AddStringToObject(delta, "role", "assistant")) &&
              (i != 1 || cJSON_AddStringToObject(delta, "content", content)) &&
              (i == 2 ? cJSON_AddStringToObject(choice, "finish_reason", "stop")
                      : cJSON_AddNullToObject(choice, "finish_reason"));
    char *text = ok ? cJSON_PrintUnformatted(chunk) : NULL;
    cJSON_Delete(chunk);
    return text;
}

/* Server-sent events of a streamed completion, although the request said nothing of
 * streaming: role chunk, content chunk, finish chunk, [DONE]. */
static char *sse_text(const cJSON *request, const char *model, const sim_verdict *v,
                      size_t *len)
{
    cJSON *doc = sim_completion_doc(request, model, v, SIM_MODE_OK);
    char *content = doc ? echo_of(doc) : NULL;
    cJSON_Delete(doc);
    if (!content)
        return NULL;
    char id[40];
    snprintf(id, sizeof id, "sim-%llu", (unsigned long long)v->serial);
    char *events[3];
    for (int i = 0; i < 3; i++)
        events[i] = sse_chunk(id, model, content, i);
    free(content);
    char *out = NULL;
    int n = -1;
    if (events[0] && events[1] && events[2])
        n = asprintf(&out, "data: %s\n\ndata: %s\n\ndata: %s\n\ndata: [DONE]\n\n",
                     events[0], events[1], events[2]);
    for (int i = 0; i < 3; i++)
        cJSON_free(events[i]);
    if (n < 0)
        return NULL;
    *len = (size_t)n;
    return out;
}

/* ---------------------------------------------------------------- gzip */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* text (consumed) as a gzip member with stored (uncompressed) deflate blocks: a valid
 * gzip stream, built without zlib, that no JSON parser reads. */
static char *gzip_stored(char *text, size_t text_len, size_t *len)
{
    if (!text)
        return NULL;
    size_t blocks = text_len / 65535 + 1;
    size_t n = 10 + blocks * 5 + text_len + 8;
    unsigned char *out = malloc(n);
    if (!out) {
        free(text);
        return NULL;
    }
    static const unsigned char header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
    memcpy(out, header, sizeof header);
    size_t at = sizeof header, done = 0;
    for (size_t b = 0; b < blocks; b++) {
        size_t piece = text_len - done < 65535 ? text_len - done : 65535;
        out[at++] = b + 1 == blocks ? 1 : 0;   /* BFINAL, BTYPE 00: stored */
        out[at++] = (unsigned char)(piece & 0xff);
        out[at++] = (unsigned char)(piece >> 8);
        out[at++] = (unsigned char)(~piece & 0xff);
        out[at++] = (unsigned char)((~piece >> 8) & 0xff);
        memcpy(out + at, text + done, piece);
        at += piece;
        done += piece;
    }
    uint32_t crc = crc32_of((const unsigned char *)text, text_len);
    uint32_t isize = (uint32_t)text_len;
    for (int i = 0; i < 4; i++)
        out[at++] = (unsigned char)(crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[at++] = (unsigned char)(isize >> (8 * i));
    free(text);
    *len = at;
    return (char *)out;
}

/* ---------------------------------------------------------------- entry points */

bool sim_hostile_is_raw(enum sim_mode mode)
{
    return mode == SIM_MODE_LONG_HEADER || mode == SIM_MODE_NO_STATUS_LINE ||
           mode == SIM_MODE_HEADERS_ONLY || mode == SIM_MODE_SHORT_LENGTH;
}

struct MHD_Response *sim_hostile_response(struct MHD_Connection *conn, const cJSON *request,
                                          const char *model, const sim_verdict *v,
                                          enum sim_mode mode, unsigned int forced,
                                          unsigned int *status)
{
    const sim_behaviour *b = v->behaviour;
    struct MHD_Response *r = NULL;
    unsigned int own = 200;
    size_t len = 0;
    char *text;

    switch (mode) {
    case SIM_MODE_MISSING_CHOICES:
    case SIM_MODE_CHOICES_NOT_ARRAY:
    case SIM_MODE_MESSAGE_NOT_OBJECT:
    case SIM_MODE_CONTENT_NUMBER:
    case SIM_MODE_INVALID_UTF8:
    case SIM_MODE_NUL_CONTENT:
    case SIM_MODE_DUP_KEYS:
    case SIM_MODE_USAGE_GARBAGE:
    case SIM_MODE_TOP_ARRAY:
        text = print_doc(altered_doc(request, model, v, mode), &len);
        r = body_response(text, len, json_type);
        break;
    case SIM_MODE_OBJECT_ERROR:
        text = object_error_text(&len);
        r = body_response(text, len, json_type);
        break;
    case SIM_MODE_EMPTY_BODY:
        r = body_response(strdup(""), 0, json_type);
        break;
    case SIM_MODE_TRAILING_GARBAGE: {   /* a whole completion, then a second document */
        static const char second[] = "{\"error\":{\"message\":\"sim: a second document\"}}";
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        text = wrap("", 0, text, len, second, sizeof second - 1, &len);
        r = body_response(text, len, json_type);
        break;
    }
    case SIM_MODE_BOM: {
        static const char bom[] = "\xEF\xBB\xBF";
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        text = wrap(bom, 3, text, len, "", 0, &len);
        r = body_response(text, len, json_type);
        break;
    }
    case SIM_MODE_BINARY_BODY:          /* every byte value once, NUL first */
        if ((text = malloc(256))) {
            for (int i = 0; i < 256; i++)
                text[i] = (char)i;
            len = 256;
        }
        r = body_response(text, len, json_type);
        break;
    case SIM_MODE_DEEP_NESTING:
        text = deep_text(v, &len);
        r = body_response(text, len, json_type);
        break;
    case SIM_MODE_TEXT_PLAIN:           /* a valid completion, labelled as plain text */
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        r = body_response(text, len, "text/plain; charset=utf-8");
        break;
    case SIM_MODE_GZIP:                 /* compressed though the client did not ask */
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        text = gzip_stored(text, len, &len);
        r = body_response(text, len, json_type);
        if (r && !add_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip")) {
            MHD_destroy_response(r);
            r = NULL;
        }
        break;
    case SIM_MODE_SSE:
        text = sse_text(request, model, v, &len);
        r = body_response(text, len, "text/event-stream");
        if (r && !add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache")) {
            MHD_destroy_response(r);
            r = NULL;
        }
        break;
    case SIM_MODE_REDIRECT:             /* to a target that would answer, if followed */
        own = 302;
        text = strdup("<html><body><a href=\"/sim/redirected\">Found</a></body></html>");
        r = body_response(text, text ? strlen(text) : 0, "text/html");
        if (r && !add_header(r, MHD_HTTP_HEADER_LOCATION, "/sim/redirected")) {
            MHD_destroy_response(r);
            r = NULL;
        }
        break;
    case SIM_MODE_RETRY_AFTER_YEARS: {  /* the header itself: chat_reply adds retry_after */
        own = 429;
        cJSON *doc = cJSON_CreateObject();
        cJSON *error = doc ? cJSON_AddObjectToObject(doc, "error") : NULL;
        if (error && cJSON_AddStringToObject(error, "message", "sim: rate limited; come back in 3 years") &&
            cJSON_AddStringToObject(error, "type", "rate_limit_error") &&
            cJSON_AddNumberToObject(error, "code", 429)) {
            text = print_doc(doc, &len);
            r = body_response(text, len, json_type);
        } else {
            cJSON_Delete(doc);
        }
        if (r && !b->retry_after &&
            !add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_YEARS)) {
            MHD_destroy_response(r);
            r = NULL;
        }
        break;
    }
    case SIM_MODE_STATUS_204:
    case SIM_MODE_STATUS_304:
        own = mode == SIM_MODE_STATUS_204 ? 204 : 304;
        r = body_response(strdup(""), 0, json_type);
        break;
    case SIM_MODE_INTERIM_ONLY:         /* 103 Early Hints, and no final response ever */
        own = 103;
        r = body_response(strdup(""), 0, json_type);
        if (r && !add_header(r, MHD_HTTP_HEADER_LINK, "</v1/models>; rel=preload")) {
            MHD_destroy_response(r);
            r = NULL;
        }
        break;
    case SIM_MODE_CONFLICTING_LENGTH:
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        r = sim_conflicting_length_response(text, len);
        break;
    case SIM_MODE_RESET:
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        r = sim_reset_response(conn, text, len);
        break;
    case SIM_MODE_HUGE:
    case SIM_MODE_HUGE_CHUNKED:
        r = sim_huge_response(request, model, v, mode == SIM_MODE_HUGE_CHUNKED);
        break;
    case SIM_MODE_DRIP:
    case SIM_MODE_CHUNKED_FOREVER:
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        if (text && mode == SIM_MODE_CHUNKED_FOREVER) {
            char *brace = strstr(text, ",\"choices\"");   /* stall before the choices */
            if (brace)
                len = (size_t)(brace - text) + 1;
        }
        r = sim_paced_response(conn, text, len, mode == SIM_MODE_CHUNKED_FOREVER);
        break;
    default:                            /* raw modes and the modes of http.c */
        break;
    }
    *status = forced ? forced : own;
    return r;
}
