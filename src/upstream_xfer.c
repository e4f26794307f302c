/* upstream_xfer.c — one provider transfer: its easy handle, curl's data callbacks, and
 * the result it ends with.
 *
 * The data callbacks run on the loop thread inside curl_multi_socket_action.  The body
 * callback counts bytes, decides once per response whether to keep the body (always
 * without on_data, and for any non-2xx status), hands each chunk to on_data, and turns
 * what on_data says into progress for the first-token and stall deadlines.
 *
 * Secrets: the key exists only in the header list (wiped before free).  A streamed chunk
 * reaches on_data with every copy of the key replaced; the tail of a chunk that could be
 * the start of a key cut across two chunks is held back until the next one or the end.
 * A collected body is scrubbed as a whole before the caller sees it. */
#include "upstream_int.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#define CONNECT_TIMEOUT_MAX_MS  10000L
#define CURL_TIMEOUT_SLACK_MS   1000L   /* curl's own limits back ours up, never pre-empt them */
#define RETRY_AFTER_VALUE_MAX   128

void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void free_wiped(char *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void request_free(upstream *up, request *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    for (struct curl_slist *h = r->headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));  /* the API key lives here */
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    free_wiped(r->buf, r->cap);          /* unscrubbed when the transfer failed */
    free_wiped(r->held, r->key_len);
    free_wiped(r->scratch, r->scratch_cap);
    free(r);
    atomic_fetch_sub(&up->in_flight, 1);
}

/* ---------------------------------------------------------------------------------- */
/* Key scrubbing                                                                       */
/* ---------------------------------------------------------------------------------- */

/* Providers sometimes quote the key back ("Incorrect API key provided: sk-...").  Nothing
 * downstream may ever see it: overwrite every occurrence, in place (the replacement is no
 * longer than the key, so lengths only shrink).  buf must have room for a NUL at *len. */
static void scrub_key(char *buf, size_t *len, const char *key, size_t klen)
{
    static const char mask[] = "[REDACTED]";   /* redact.c's marker */
    if (!buf || klen == 0)
        return;
    size_t mlen = klen < sizeof mask - 1 ? klen : sizeof mask - 1;
    char *p = buf, *end = buf + *len;
    while ((size_t)(end - p) >= klen && (p = memmem(p, (size_t)(end - p), key, klen))) {
        memcpy(p, mask, mlen);
        memmove(p + mlen, p + klen, (size_t)(end - (p + klen)));
        end -= klen - mlen;
        p += mlen;
    }
    *len = (size_t)(end - buf);
    buf[*len] = '\0';
}

/* The longest tail of buf that is a proper prefix of key: it could become a key. */
static size_t key_prefix_tail(const char *buf, size_t len, const char *key, size_t klen)
{
    size_t most = klen - 1 < len ? klen - 1 : len;
    for (size_t n = most; n > 0; n--)
        if (memcmp(buf + len - n, key, n) == 0)
            return n;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* curl callbacks (loop thread, inside curl_multi_socket_action)                      */
/* ---------------------------------------------------------------------------------- */

static int is_2xx(long status)
{
    return status >= 200 && status <= 299;
}

/* Keep n more body bytes; -1 (flag set) when over the cap or out of memory. */
static int collect(request *r, const char *data, size_t n)
{
    if (r->max_response && n > r->max_response - r->len) {
        r->too_large = 1;
        return -1;
    }
    if (n > SIZE_MAX - r->len - 1) {
        r->out_of_memory = 1;
        return -1;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap = cap > SIZE_MAX / 2 ? r->len + n + 1 : cap * 2;
        char *buf = malloc(cap);  /* not realloc: the old copy may hold the key, wipe it */
        if (!buf) {
            r->out_of_memory = 1;
            return -1;
        }
        if (r->buf)
            memcpy(buf, r->buf, r->len);
        free_wiped(r->buf, r->cap);
        r->buf = buf;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return 0;
}

/* Hand bytes to on_data, scrubbed.  final: nothing more will come, hold nothing back.
 * Returns what on_data returned, CONTINUE when there was nothing to hand over, or -1 when
 * the request was cancelled (or the loop is stopping) or memory ran out. */
static int deliver(request *r, const char *data, size_t n, int final)
{
    const char *p = data;
    size_t len = n;
    if (r->key_len > 0) {
        size_t need = r->held_len + n + 1;
        if (need > r->scratch_cap) {
            char *s = malloc(need);
            if (!s) {
                r->out_of_memory = 1;
                return -1;
            }
            free_wiped(r->scratch, r->scratch_cap);
            r->scratch = s;
            r->scratch_cap = need;
        }
        memcpy(r->scratch, r->held, r->held_len);
        if (n)
            memcpy(r->scratch + r->held_len, data, n);
        len = r->held_len + n;
        r->held_len = 0;
        scrub_key(r->scratch, &len, r->key, r->key_len);
        if (!final) {
            size_t keep = key_prefix_tail(r->scratch, len, r->key, r->key_len);
            memcpy(r->held, r->scratch + len - keep, keep);
            r->held_len = keep;
            len -= keep;
        }
        p = r->scratch;
    }
    if (len == 0)
        return UPSTREAM_DATA_CONTINUE;
    if (!callback_begin(r->up, &r->e))
        return -1;
    int rc = r->on_data(p, len, r->status, r->ud);
    callback_end(r->up);
    return rc;
}

static void note_progress(request *r, int64_t now)
{
    if (!r->progressed) {
        r->progressed = 1;
        r->first_progress_ms = now;
    }
    r->last_progress_ms = now;
    deadline_update(r->up, r);  /* the first progress may bring a (stall) deadline closer */
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    request *r = ud;
    size_t n = size * nmemb;
    if (n == 0)
        return 0;
    int64_t now = now_mono_ms();
    r->got_response = 1;
    r->last_byte_ms = now;
    uint64_t total = atomic_fetch_add(&r->bytes, n) + n;
    if (r->max_response && total > r->max_response) {  /* streamed or kept alike */
        r->too_large = 1;
        return 0;  /* curl stops with CURLE_WRITE_ERROR */
    }
    if (!r->status_known) {
        long status = 0;
        if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
            status = 0;
        r->status = status;
        r->status_known = 1;
        r->collect = !r->on_data || !is_2xx(status);  /* error bodies are always kept */
    }
    if (r->collect && collect(r, data, n) < 0)
        return 0;  /* curl stops with CURLE_WRITE_ERROR */
    int progress = 1;  /* every byte, unless on_data judges a 2xx stream */
    if (r->on_data) {
        int rc = deliver(r, data, n, 0);
        if (rc < 0)
            return 0;  /* cancelled: end it here; no callback will see the result */
        if (rc == UPSTREAM_DATA_ABORT) {
            r->fail = RF_TE_ABORTED;
            snprintf(r->fail_text, sizeof r->fail_text,
                     "aborted by the stream reader after %" PRIu64 " bytes",
                     (uint64_t)atomic_load(&r->bytes));
            return 0;
        }
        if (is_2xx(r->status))
            progress = rc == UPSTREAM_DATA_PROGRESS;
    }
    if (progress)
        note_progress(r, now);
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    request *r = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    const size_t name_len = sizeof name - 1;
    r->got_response = 1;
    r->last_byte_ms = now_mono_ms();
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        r->retry_after_ms = -1;  /* a new response begins (e.g. after 100 Continue) */
    } else if (n > name_len && strncasecmp(data, name, name_len) == 0) {
        char value[RETRY_AFTER_VALUE_MAX];
        size_t vlen = n - name_len;
        if (vlen >= sizeof value)
            vlen = sizeof value - 1;  /* a longer value is not a valid one anyway */
        memcpy(value, data + name_len, vlen);
        value[vlen] = '\0';
        /* wall clock on purpose: an HTTP-date is a calendar time */
        r->retry_after_ms = router_parse_retry_after(value, (int64_t)time(NULL));
    }
    return n;
}

/* Open the transfer's socket ourselves, to know why when there is none (EMFILE), and to
 * leave the top of the descriptor table to the store (upstream_socket_fd_ok). */
static curl_socket_t on_opensocket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    request *r = ud;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd >= 0 && !upstream_socket_fd_ok(fd)) {
        close(fd);
        fd = -1;
        errno = EMFILE;
    }
    if (fd < 0) {
        r->socket_errno = errno;
        if (errno == EMFILE || errno == ENFILE)
            upstream_fd_shortage(UPSTREAM_FD_SOCKET);
        return CURL_SOCKET_BAD;
    }
    upstream_socket_opened();
    return fd;
}

static int on_closesocket(void *ud, curl_socket_t fd)
{
    upstream_socket_closed();
    return close(fd);
}

void xfer_flush_held(request *r)
{
    if (r->on_data && r->held_len > 0 && r->fail != RF_TE_ABORTED)
        (void)deliver(r, "", 0, 1);  /* the stream ended: the held tail is not a key */
}

/* ---------------------------------------------------------------------------------- */
/* Building the transfer                                                               */
/* ---------------------------------------------------------------------------------- */

/* Set one option, failing the surrounding function with a message naming it. */
#define SETOPT(easy, opt, val)                                                           \
    do {                                                                                 \
        CURLcode rc_ = curl_easy_setopt((easy), (opt), (val));                           \
        if (rc_ != CURLE_OK) {                                                           \
            rf_err_set(err, EIO, "curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(rc_)); \
            return -1;                                                                   \
        }                                                                                \
    } while (0)

/* Append a header; the list owns a copy.  -1 with err on failure. */
static int add_header(request *r, const char *line, rf_err *err)
{
    struct curl_slist *h = curl_slist_append(r->headers, line);
    if (!h)
        return rf_err_set(err, ENOMEM, "out of memory");
    r->headers = h;
    return 0;
}

/* Build the header list, taking a copy of the key.  -1 with err on failure. */
static int build_headers(request *r, const upstream_request *req, rf_err *err)
{
    if (r->body && add_header(r, "Content-Type: application/json", err) < 0)
        return -1;
    /* identity only: we do not decode, and a compressed body is then simply not JSON */
    if (add_header(r, "Accept-Encoding: identity", err) < 0 ||
        add_header(r, "Expect:", err) < 0)  /* no 100-continue round trip on big bodies */
        return -1;
    for (size_t i = 0; i < UPSTREAM_MAX_HEADERS; i++) {
        if (!req->extra_headers[i])
            break;
        if (add_header(r, req->extra_headers[i], err) < 0)
            return -1;
    }
    if (req->api_key && req->api_key[0]) {
        for (const char *c = req->api_key; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)  /* would split the header */
                return rf_err_set(err, EINVAL, "the API key contains a control character");
        size_t n = sizeof AUTH_PREFIX + strlen(req->api_key);
        char *line = malloc(n);
        if (!line)
            return rf_err_set(err, ENOMEM, "out of memory");
        snprintf(line, n, "%s%s", AUTH_PREFIX, req->api_key);
        int rc = add_header(r, line, err);
        explicit_bzero(line, n);
        free(line);
        if (rc < 0)
            return -1;
        struct curl_slist *last = r->headers;
        while (last->next)
            last = last->next;
        r->key = last->data + strlen(AUTH_PREFIX);
        r->key_len = strlen(r->key);
        if (r->on_data && !(r->held = malloc(r->key_len)))
            return rf_err_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static int setup_easy(request *r, rf_err *err)
{
    CURL *easy = r->easy;
    /* Our deadlines (upstream_loop.c) enforce timeout_ms; curl's copies sit a little
     * later as a backstop.  Only a connect limit shorter than the whole one is curl's. */
    long whole = r->timeout_ms > 0 ? r->timeout_ms + CURL_TIMEOUT_SLACK_MS : 0;
    long connect_ms = r->timeout_ms > 0 && r->timeout_ms <= CONNECT_TIMEOUT_MAX_MS
                    ? r->timeout_ms + CURL_TIMEOUT_SLACK_MS : CONNECT_TIMEOUT_MAX_MS;
    r->connect_ms = connect_ms;
    SETOPT(easy, CURLOPT_URL, r->url);
    SETOPT(easy, CURLOPT_PRIVATE, (void *)r);
    SETOPT(easy, CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(easy, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(easy, CURLOPT_PROTOCOLS_STR, "http,https");  /* no file://, no smtp:// */
#else
    SETOPT(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(easy, CURLOPT_FOLLOWLOCATION, 0L);  /* a redirect is the provider's failure */
    SETOPT(easy, CURLOPT_ACCEPT_ENCODING, (char *)NULL);  /* never decode */
    SETOPT(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(easy, CURLOPT_TIMEOUT_MS, whole);
    SETOPT(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SETOPT(easy, CURLOPT_USERAGENT, "routefs");
    SETOPT(easy, CURLOPT_HTTPHEADER, r->headers);
    SETOPT(easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(easy, CURLOPT_WRITEDATA, (void *)r);
    SETOPT(easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(easy, CURLOPT_HEADERDATA, (void *)r);
    SETOPT(easy, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    SETOPT(easy, CURLOPT_OPENSOCKETDATA, (void *)r);
    SETOPT(easy, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    SETOPT(easy, CURLOPT_CLOSESOCKETDATA, NULL);
    if (r->max_response > 0 && r->max_response <= (size_t)INT64_MAX)
        SETOPT(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
    if (r->body) {
        SETOPT(easy, CURLOPT_POST, 1L);
        SETOPT(easy, CURLOPT_POSTFIELDS, r->body);
        SETOPT(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(r->body));
    } else {
        SETOPT(easy, CURLOPT_HTTPGET, 1L);
    }
    return 0;
}

int xfer_prepare(request *r, upstream_request *req, rf_err *err)
{
    if (build_headers(r, req, err) < 0)
        return -1;
    if (!(r->easy = curl_easy_init()))
        return rf_err_set(err, ENOMEM, "curl_easy_init failed");
    return setup_easy(r, err);
}

/* ---------------------------------------------------------------------------------- */
/* The result                                                                          */
/* ---------------------------------------------------------------------------------- */

static int is_tls_error(CURLcode code)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
#if LIBCURL_VERSION_NUM >= 0x074d00
    case CURLE_SSL_CLIENTCERT:
#endif
        return 1;
    default:
        return 0;
    }
}

static int no_socket(const request *r)
{
    return r->socket_errno == EMFILE || r->socket_errno == ENFILE;
}

/* curl gave up for time, not us: with our deadline still ahead that is its connect
 * limit (the only curl limit set shorter than ours). */
static int connect_timed_out(const request *r)
{
    return !r->got_response && now_mono_ms() < r->whole_due;
}

static rf_transport_error transport_error_of(CURLcode code, const request *r)
{
    if (is_tls_error(code))
        return RF_TE_TLS;
    switch (code) {
    case CURLE_OK:
        return RF_TE_NONE;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return RF_TE_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return connect_timed_out(r) ? RF_TE_CONNECT : RF_TE_TIMEOUT;
    case CURLE_GOT_NOTHING:
        return RF_TE_RESET;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return r->got_response ? RF_TE_TRUNCATED : RF_TE_RESET;
    case CURLE_FILESIZE_EXCEEDED:  /* Content-Length over CURLOPT_MAXFILESIZE */
        return RF_TE_TOO_LARGE;
    case CURLE_WRITE_ERROR:
        return r->too_large ? RF_TE_TOO_LARGE : RF_TE_OTHER;
    default:
        return no_socket(r) ? RF_TE_CONNECT : RF_TE_OTHER;
    }
}

static void describe_failure(const request *r, CURLcode code, rf_transport_error te,
                             char *out, size_t outsz)
{
    const char *curl_says = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    if (no_socket(r))
        snprintf(out, outsz, "too many open files: no socket for the connection");
    else if (code == CURLE_FILESIZE_EXCEEDED || (code == CURLE_WRITE_ERROR && r->too_large))
        snprintf(out, outsz, "response body larger than %zu bytes", r->max_response);
    else if (code == CURLE_WRITE_ERROR && r->out_of_memory)
        snprintf(out, outsz, "out of memory while receiving the response");
    else if (code == CURLE_OUT_OF_MEMORY)
        /* what libcurl also says when a response header line exceeds its limit */
        snprintf(out, outsz, "response headers too large (or out of memory)");
    else if (code == CURLE_OPERATION_TIMEDOUT && te == RF_TE_CONNECT)
        snprintf(out, outsz, "could not connect within %ld ms", r->connect_ms);
    else if (code == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, outsz, "timed out: no complete answer within %ld ms", r->timeout_ms);
    else if (te == RF_TE_RESET)
        snprintf(out, outsz, "connection closed before any response: %.200s", curl_says);
    else if (te == RF_TE_TRUNCATED)
        snprintf(out, outsz, "response cut off: %.200s", curl_says);
    else if (te == RF_TE_TLS)
        snprintf(out, outsz, "TLS: %.200s", curl_says);
    else
        snprintf(out, outsz, "%.200s", curl_says);
    /* curl never puts request headers in its messages, but make sure: no key leaks */
    if (r->key && r->key_len && strstr(out, r->key))
        snprintf(out, outsz, "transport error (message withheld: it contained a credential)");
}

void xfer_finish(request *r, CURLcode code, upstream_result *res)
{
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    res->bytes_received = (size_t)atomic_load(&r->bytes);
    res->first_token_ms = r->progressed ? (long)(r->first_progress_ms - r->submitted_ms) : -1;
    if (r->fail != RF_TE_NONE) {
        res->transport = r->fail;
        snprintf(res->error, sizeof res->error, "%s", r->fail_text);
        return;
    }
    res->transport = transport_error_of(code, r);
    if (res->transport != RF_TE_NONE) {
        describe_failure(r, code, res->transport, res->error, sizeof res->error);
        return;
    }
    long status = 0;
    if (curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) {
        res->transport = RF_TE_OTHER;
        snprintf(res->error, sizeof res->error, "no HTTP status in the response");
        return;
    }
    res->http_status = status;
    res->retry_after_ms = r->retry_after_ms;
    if (r->buf) {
        res->body = r->buf;  /* handed over; the loop frees what the callback does not take */
        res->body_len = r->len;
        r->buf = NULL;
        r->len = r->cap = 0;
        scrub_key(res->body, &res->body_len, r->key, r->key_len);
    }
}
