/* hostile.c — routefs-sim's hostile-provider corpus: the bad answers a real provider, or a
 * proxy in front of one, has been seen to give (or could), one behaviour mode each.
 *
 * Three families:
 *   bodies     a complete, well-framed HTTP response whose body or headers are wrong
 *              (missing_choices ... redirect): a buffer response;
 *   streams    framing over time (drip, chunked_forever, huge, huge_chunked, reset): a
 *              libmicrohttpd callback response; the paced ones suspend the connection
 *              from the content reader between bytes (timer.c resumes it), so a drip
 *              holds no thread;
 *   raw        what libmicrohttpd will not frame (long_header, no_status_line,
 *              headers_only, short_length): bytes written straight to the connection's
 *              socket from the access handler, before any response is queued, and then
 *              the connection is closed.
 * libmicrohttpd computes Content-Length itself: an application's own is accepted only
 * with MHD_RF_INSANITY_HEADER_CONTENT_LENGTH, and then it adds its true one as well
 * (conflicting_length uses exactly that); a Content-Length that lies about the body
 * needs the raw path.  It cannot send a 1xx followed by a final response on the same
 * request, nor a header line over its per-connection memory pool (hence raw). */
#include "sim.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HUGE_FILL_BYTES   (20u * 1024 * 1024)   /* "huge": 20 MiB of content, valid JSON */
#define DEEP_LEVELS       100000                /* "deep_nesting": array levels */
#define LONG_HEADER_BYTES (512u * 1024)         /* "long_header": one header line */
#define DRIP_INTERVAL_NS  (200ULL * 1000 * 1000) /* "drip", "chunked_forever": one write per */
#define RAW_SEND_BUDGET_MS 3000                 /* a raw write waits this long for room */
#define RETRY_AFTER_YEARS "99999999"            /* ~3 years of seconds */
#define FILL_MARK "@@sim-fill@@"                /* where the huge content goes */

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

/* ---------------------------------------------------------------- streams */

/* "huge", "huge_chunked": head, then fill bytes of 'x', then tail. */
typedef struct huge_body {
    char *text;                 /* head and tail, split at head_len */
    size_t head_len, tail_len;
    uint64_t fill;
} huge_body;

static ssize_t huge_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    huge_body *h = cls;
    uint64_t total = h->head_len + h->fill + h->tail_len;
    if (atomic_load(&sim_stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = 0;
    while (n < max && pos < total) {
        size_t piece;
        if (pos < h->head_len) {
            piece = h->head_len - (size_t)pos;
            piece = piece < max - n ? piece : max - n;
            memcpy(buf + n, h->text + pos, piece);
        } else if (pos < h->head_len + h->fill) {
            uint64_t left = h->head_len + h->fill - pos;
            piece = left < max - n ? (size_t)left : max - n;
            memset(buf + n, 'x', piece);
        } else {
            size_t off = (size_t)(pos - h->head_len - h->fill);
            piece = h->tail_len - off;
            piece = piece < max - n ? piece : max - n;
            memcpy(buf + n, h->text + h->head_len + off, piece);
        }
        n += piece;
        pos += piece;
    }
    return (ssize_t)n;
}

static void huge_free(void *cls)
{
    huge_body *h = cls;
    free(h->text);
    free(h);
}

static struct MHD_Response *huge_response(const cJSON *request, const char *model,
                                          const sim_verdict *v, bool chunked)
{
    cJSON *doc = sim_completion_doc(request, model, v, SIM_MODE_OK);
    huge_body *h = calloc(1, sizeof *h);
    bool ok = doc && h && replace(first_message(doc), "content", cJSON_CreateString(FILL_MARK));
    char *text = ok ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    /* The last occurrence: the model name comes before the content and might hold it. */
    char *mark = NULL;
    for (char *at = text; at && (at = strstr(at, FILL_MARK)); at++)
        mark = at;
    if (!mark) {
        cJSON_free(text);
        free(h);
        return NULL;
    }
    size_t len = strlen(text);
    h->head_len = (size_t)(mark - text);
    h->tail_len = len - h->head_len - strlen(FILL_MARK);
    memmove(mark, mark + strlen(FILL_MARK), h->tail_len + 1);
    h->text = text;
    h->fill = HUGE_FILL_BYTES;
    uint64_t total = chunked ? MHD_SIZE_UNKNOWN : h->head_len + h->fill + h->tail_len;
    struct MHD_Response *r = MHD_create_response_from_callback(total, 64 * 1024, huge_read, h,
                                                               huge_free);
    if (!r) {
        huge_free(h);
        return NULL;
    }
    if (!add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, json_type)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* "drip": text one byte per DRIP_INTERVAL_NS.  "chunked_forever": text at once, then one
 * space (JSON whitespace, the keep-alive some providers send) per interval, never ending.
 * Between writes the connection is suspended from inside the reader; a client that went
 * away makes the next write fail and libmicrohttpd closes the connection. */
typedef struct paced_body {
    struct MHD_Connection *conn;
    char *text;
    size_t len;
    bool forever;
    uint64_t next_ns;
} paced_body;

static ssize_t paced_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    paced_body *p = cls;
    if (atomic_load(&sim_stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (!p->forever && pos >= p->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    uint64_t now = sim_now_ns();
    if (now < p->next_ns) {
        /* 0 bytes "for now": libmicrohttpd asks again once the timer resumes us. */
        return sim_timer_suspend(p->conn, p->next_ns) ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    p->next_ns = now + DRIP_INTERVAL_NS;
    if (pos < p->len) {
        size_t n = p->forever ? p->len - (size_t)pos : 1;
        if (n > max)
            n = max;
        memcpy(buf, p->text + pos, n);
        return (ssize_t)n;
    }
    buf[0] = ' ';
    return 1;
}

static void paced_free(void *cls)
{
    paced_body *p = cls;
    free(p->text);
    free(p);
}

static struct MHD_Response *paced_response(struct MHD_Connection *conn, char *text,
                                           size_t len, bool forever)
{
    paced_body *p = text ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        free(text);
        return NULL;
    }
    p->conn = conn;
    p->text = text;
    p->len = len;
    p->forever = forever;
    struct MHD_Response *r = MHD_create_response_from_callback(
        forever ? MHD_SIZE_UNKNOWN : len, 1024, paced_read, p, paced_free);
    if (!r) {
        paced_free(p);
        return NULL;
    }
    if (!add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, json_type)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* "reset": half the body, then a TCP reset.  libmicrohttpd shuts a socket down (FIN)
 * before it closes it, so SO_LINGER 0 alone would not do: connect() to AF_UNSPEC
 * dissolves the connection at once, and Linux sends RST for an established one.  Whatever
 * libmicrohttpd does with the socket afterwards fails quietly and it closes it. */
typedef struct reset_body {
    struct MHD_Connection *conn;
    char *text;
    size_t sent_len;
} reset_body;

static ssize_t reset_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reset_body *p = cls;
    if (pos >= p->sent_len) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(p->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct linger hard = {.l_onoff = 1, .l_linger = 0};
        struct sockaddr unspec = {.sa_family = AF_UNSPEC};
        if (info) {
            (void)setsockopt(info->connect_fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
            (void)connect(info->connect_fd, &unspec, sizeof unspec);
        }
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = p->sent_len - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, p->text + pos, n);
    return (ssize_t)n;
}

static void reset_free(void *cls)
{
    reset_body *p = cls;
    free(p->text);
    free(p);
}

static struct MHD_Response *reset_response(struct MHD_Connection *conn, char *text, size_t len)
{
    reset_body *p = text ? calloc(1, sizeof *p) : NULL;
    if (!p) {
        free(text);
        return NULL;
    }
    p->conn = conn;
    p->text = text;
    p->sent_len = len / 2;
    struct MHD_Response *r = MHD_create_response_from_callback(len, 4096, reset_read, p,
                                                               reset_free);
    if (!r) {
        reset_free(p);
        return NULL;
    }
    if (!add_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, json_type)) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

/* "conflicting_length": text (consumed) with an extra "Content-Length: half" before the
 * true one libmicrohttpd adds (it allows the first only with the insanity flag). */
static struct MHD_Response *conflicting_length_response(char *text, size_t len)
{
    struct MHD_Response *r = body_response(text, len, json_type);
    char value[32];
    snprintf(value, sizeof value, "%zu", len / 2);
    if (r && (MHD_set_response_options(r, MHD_RF_INSANITY_HEADER_CONTENT_LENGTH,
                                       MHD_RO_END) != MHD_YES ||
              !add_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH, value))) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
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
        r = conflicting_length_response(text, len);
        break;
    case SIM_MODE_RESET:
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        r = reset_response(conn, text, len);
        break;
    case SIM_MODE_HUGE:
    case SIM_MODE_HUGE_CHUNKED:
        r = huge_response(request, model, v, mode == SIM_MODE_HUGE_CHUNKED);
        break;
    case SIM_MODE_DRIP:
    case SIM_MODE_CHUNKED_FOREVER:
        text = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &len);
        if (text && mode == SIM_MODE_CHUNKED_FOREVER) {
            char *brace = strstr(text, ",\"choices\"");   /* stall before the choices */
            if (brace)
                len = (size_t)(brace - text) + 1;
        }
        r = paced_response(conn, text, len, mode == SIM_MODE_CHUNKED_FOREVER);
        break;
    default:                            /* raw modes and the modes of http.c */
        break;
    }
    *status = forced ? forced : own;
    return r;
}

char *sim_hostile_raw(const cJSON *request, const char *model, const sim_verdict *v,
                      enum sim_mode mode, unsigned int forced, size_t *len)
{
    size_t body_len = 0;
    char *body = print_doc(sim_completion_doc(request, model, v, SIM_MODE_OK), &body_len);
    if (!body || mode == SIM_MODE_NO_STATUS_LINE) {   /* HTTP/0.9: the body, no head */
        *len = body_len;
        return body;
    }
    unsigned int status = forced ? forced : 200u;
    size_t padding = mode == SIM_MODE_LONG_HEADER ? LONG_HEADER_BYTES : 0;
    size_t content_length = mode == SIM_MODE_SHORT_LENGTH ? body_len / 2 : body_len;
    size_t sent_body = mode == SIM_MODE_HEADERS_ONLY ? 0 : body_len;
    char head[256], tail[128];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n%s", status,
                            status == 200 ? "OK" : "Sim", padding ? "X-Sim-Padding: " : "");
    int tail_len = snprintf(tail, sizeof tail, "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                            padding ? "\r\n" : "", content_length);
    size_t n = (size_t)head_len + padding + (size_t)tail_len + sent_body;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, head, (size_t)head_len);
        memset(out + head_len, 'a', padding);
        memcpy(out + head_len + padding, tail, (size_t)tail_len);
        memcpy(out + head_len + padding + tail_len, body, sent_body);
        out[n] = '\0';
        *len = n;
    }
    free(body);
    return out;
}

bool sim_raw_send(struct MHD_Connection *conn, const char *data, size_t len)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return false;
    int fd = info->connect_fd;
    uint64_t deadline = sim_now_ns() + (uint64_t)RAW_SEND_BUDGET_MS * 1000000ULL;
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return false;   /* the client gave up: what it got is what it gets */
        uint64_t now = sim_now_ns();
        if (now >= deadline || atomic_load(&sim_stopping))
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int wait_ms = (int)((deadline - now) / 1000000ULL) + 1;
        if (poll(&pfd, 1, wait_ms < 100 ? wait_ms : 100) < 0 && errno != EINTR)
            return false;
    }
    return true;
}
