/* hostile_stream.c — the hostile corpus's framing over time and past libmicrohttpd.
 *
 *   streams    huge, huge_chunked, drip, chunked_forever, reset, conflicting_length: a
 *              libmicrohttpd callback response (or a header it would not add itself); the
 *              paced ones suspend the connection from the content reader between bytes
 *              (timer.c resumes it), so a drip holds no thread;
 *   raw        what libmicrohttpd will not frame (long_header, no_status_line,
 *              headers_only, short_length): bytes written straight to the connection's
 *              socket from the access handler, before any response is queued, and then
 *              the connection is closed.
 * hostile.c picks the mode and builds the bodies; the functions here take them over. */
#include "sim.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define HUGE_FILL_BYTES   (20u * 1024 * 1024)   /* "huge": 20 MiB of content, valid JSON */
#define LONG_HEADER_BYTES (512u * 1024)         /* "long_header": one header line */
#define DRIP_INTERVAL_NS  (200ULL * 1000 * 1000) /* "drip", "chunked_forever": one write per */
#define RAW_SEND_BUDGET_MS 3000                 /* a raw write waits this long for room */
#define FILL_MARK "@@sim-fill@@"                /* where the huge content goes */

static const char json_type[] = "application/json";

static bool add_header(struct MHD_Response *r, const char *name, const char *value)
{
    return MHD_add_response_header(r, name, value) == MHD_YES;
}

static char *print_doc(cJSON *doc, size_t *len)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text && len)
        *len = strlen(text);
    return text;
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

struct MHD_Response *sim_huge_response(const cJSON *request, const char *model,
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

struct MHD_Response *sim_paced_response(struct MHD_Connection *conn, char *text,
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

/* libmicrohttpd shuts a socket down (FIN) before it closes it, so SO_LINGER 0 alone would
 * not do: connect() to AF_UNSPEC dissolves the connection at once, and Linux sends RST for
 * an established one.  Whatever libmicrohttpd does with the socket afterwards fails
 * quietly and it closes it. */
void sim_socket_reset(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (info) {
        (void)setsockopt(info->connect_fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        (void)connect(info->connect_fd, &unspec, sizeof unspec);
    }
}

/* "reset": half the body, then a TCP reset. */
typedef struct reset_body {
    struct MHD_Connection *conn;
    char *text;
    size_t sent_len;
} reset_body;

static ssize_t reset_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    reset_body *p = cls;
    if (pos >= p->sent_len) {
        sim_socket_reset(p->conn);
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

struct MHD_Response *sim_reset_response(struct MHD_Connection *conn, char *text, size_t len)
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
struct MHD_Response *sim_conflicting_length_response(char *text, size_t len)
{
    struct MHD_Response *r = sim_text_response(text, len, json_type);
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

/* ---------------------------------------------------------------- raw */

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
