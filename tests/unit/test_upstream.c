/* test_upstream.c — upstream.c against a tiny HTTP/1.1 server run inside the test.
 *
 * The server (a listening socket on 127.0.0.1:0, one thread per connection, keep-alive)
 * answers by path:
 *   /ok          200 {"ok":true}
 *   /echo        200, the body is the raw request it received (to check headers)
 *   /retry       429 with Retry-After: 3
 *   /retry-date  503 with Retry-After as an HTTP date 10 s ahead
 *   /slow        waits 2 s (or until the client goes away), then 200
 *   /later       waits 300 ms, then 200 (long enough that a cancel surely comes first)
 *   /big         2 MiB body with Content-Length
 *   /bigchunked  2 MiB body, chunked (no Content-Length)
 *   /close       closes the connection without answering
 *   /redirect    302 to /ok
 *   /gzip        200 with Content-Encoding: gzip and a few raw bytes
 *   otherwise    404 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "upstream.h"

#define BIG_BODY   (2 * 1024 * 1024)
#define MIB        (1024 * 1024)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------------------- */
/* The test server                                                                     */
/* ---------------------------------------------------------------------------------- */

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int live;            /* connection threads running */
    int accepted;        /* connections accepted so far */
} server;

typedef struct conn {
    server *srv;
    int fd;
} conn;

static int send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_response(int fd, int status, const char *reason, const char *headers,
                         const void *body, size_t len)
{
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n", status, reason, len, headers);
    if (send_all(fd, head, (size_t)n) < 0)
        return -1;
    return len ? send_all(fd, body, len) : 0;
}

/* Answer one request; 1 to keep the connection, 0 to close it. */
static int respond(int fd, const char *path, const char *raw, size_t raw_len)
{
    static const char ok[] = "{\"ok\":true}";
    if (strcmp(path, "/ok") == 0)
        return send_response(fd, 200, "OK", "", ok, strlen(ok)) == 0;
    if (strcmp(path, "/echo") == 0)
        return send_response(fd, 200, "OK", "", raw, raw_len) == 0;
    if (strcmp(path, "/retry") == 0) {
        static const char body[] = "{\"error\":{\"message\":\"slow down\"}}";
        return send_response(fd, 429, "Too Many Requests", "Retry-After: 3\r\n",
                             body, strlen(body)) == 0;
    }
    if (strcmp(path, "/retry-date") == 0) {
        char hdr[128];
        time_t t = time(NULL) + 10;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(hdr, sizeof hdr, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        return send_response(fd, 503, "Service Unavailable", hdr, "", 0) == 0;
    }
    if (strcmp(path, "/slow") == 0 || strcmp(path, "/later") == 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, strcmp(path, "/slow") == 0 ? 2000 : 300) != 0)
            return 0;  /* the client gave up (or misbehaved): hang up */
        return send_response(fd, 200, "OK", "", ok, strlen(ok)) == 0;
    }
    if (strcmp(path, "/big") == 0 || strcmp(path, "/bigchunked") == 0) {
        char *body = malloc(BIG_BODY);
        if (!body)
            return 0;
        memset(body, 'a', BIG_BODY);
        int rc;
        if (strcmp(path, "/big") == 0) {
            rc = send_response(fd, 200, "OK", "", body, BIG_BODY);
        } else {
            static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            const size_t chunk = 64 * 1024;
            rc = send_all(fd, head, strlen(head));
            for (size_t off = 0; rc == 0 && off < BIG_BODY; off += chunk) {
                char size_line[32];
                int n = snprintf(size_line, sizeof size_line, "%zx\r\n", chunk);
                rc = send_all(fd, size_line, (size_t)n);
                if (rc == 0)
                    rc = send_all(fd, body + off, chunk);
                if (rc == 0)
                    rc = send_all(fd, "\r\n", 2);
            }
            if (rc == 0)
                rc = send_all(fd, "0\r\n\r\n", 5);
        }
        free(body);
        return rc == 0;
    }
    if (strcmp(path, "/close") == 0)
        return 0;
    if (strcmp(path, "/redirect") == 0)
        return send_response(fd, 302, "Found", "Location: /ok\r\n", "", 0) == 0;
    if (strcmp(path, "/gzip") == 0) {
        static const unsigned char gz[] = { 0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3, 'r', 'a', 'w' };
        return send_response(fd, 200, "OK", "Content-Encoding: gzip\r\n", gz, sizeof gz) == 0;
    }
    return send_response(fd, 404, "Not Found", "", "", 0) == 0;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    server *s = c->srv;
    int fd = c->fd;
    free(c);
    const size_t cap = 256 * 1024;
    char *buf = malloc(cap + 1);
    size_t len = 0;
    while (buf) {
        /* the head */
        char *end;
        while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
            ssize_t n = len < cap ? recv(fd, buf + len, cap - len, 0) : -1;
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        size_t head_len = (size_t)(end + 4 - buf);
        char saved = buf[head_len];
        buf[head_len] = '\0';
        size_t body_len = 0;
        const char *cl = strcasestr(buf, "\r\ncontent-length:");
        if (cl)
            body_len = strtoul(cl + 17, NULL, 10);
        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        buf[head_len] = saved;
        /* the body */
        while (len < head_len + body_len) {
            ssize_t n = len < cap ? recv(fd, buf + len, cap - len, 0) : -1;
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        size_t req_len = head_len + body_len;
        if (!respond(fd, path, buf, req_len))
            break;
        memmove(buf, buf + req_len, len - req_len);
        len -= req_len;
    }
out:
    free(buf);
    close(fd);
    pthread_mutex_lock(&s->lock);
    s->live--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void *accept_main(void *arg)
{
    server *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;  /* shut down */
        }
        conn *c = malloc(sizeof *c);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_mutex_lock(&s->lock);
        s->live++;
        s->accepted++;
        pthread_mutex_unlock(&s->lock);
        if (c) {
            c->srv = s;
            c->fd = fd;
        }
        if (!c || pthread_create(&t, &attr, conn_main, c) != 0) {
            free(c);
            close(fd);
            pthread_mutex_lock(&s->lock);
            s->live--;
            pthread_mutex_unlock(&s->lock);
        }
        pthread_attr_destroy(&attr);
    }
}

static int server_start(server *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(s->fd, 1024) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, accept_main, s) == 0 ? 0 : -1;
}

/* Stop accepting and wait (bounded) for every connection thread to finish.  Call after
 * upstream_stop, which closes the client side of every connection. */
static void server_stop(server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->thread, NULL);
    close(s->fd);
    int64_t deadline = now_ms() + 5000;
    pthread_mutex_lock(&s->lock);
    while (s->live > 0 && now_ms() < deadline) {
        pthread_mutex_unlock(&s->lock);
        sleep_ms(10);
        pthread_mutex_lock(&s->lock);
    }
    int live = s->live;
    pthread_mutex_unlock(&s->lock);
    if (live == 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
    }
}

/* A port nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---------------------------------------------------------------------------------- */
/* Results                                                                             */
/* ---------------------------------------------------------------------------------- */

#define SLOTS 256

typedef struct env env;

typedef struct slot {
    env *env;
    int calls;
    rf_transport_error transport;
    long status;
    long retry_after_ms;
    long latency_ms;
    char error[256];
    char *body;
    size_t body_len;
} slot;

struct env {
    server srv;
    upstream *up;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int completed;
    slot slots[SLOTS];
    /* for timer/cancel tests */
    int order[16];
    int norder;
    long ids[16];
};

static void on_done(upstream_result *res, void *ud)
{
    slot *s = ud;
    env *e = s->env;
    pthread_mutex_lock(&e->lock);
    s->calls++;
    s->transport = res->transport;
    s->status = res->http_status;
    s->retry_after_ms = res->retry_after_ms;
    s->latency_ms = res->latency_ms;
    snprintf(s->error, sizeof s->error, "%s", res->error);
    s->body = res->body;  /* take it */
    s->body_len = res->body_len;
    res->body = NULL;
    e->completed++;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

/* Wait until `n` callbacks have run; 1 if they did within timeout_ms. */
static int wait_completed(env *e, int n, long timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&e->lock);
    while (e->completed < n && now_ms() < deadline) {
        pthread_mutex_unlock(&e->lock);
        sleep_ms(5);
        pthread_mutex_lock(&e->lock);
    }
    int ok = e->completed >= n;
    pthread_mutex_unlock(&e->lock);
    return ok;
}

static int completed(env *e)
{
    pthread_mutex_lock(&e->lock);
    int n = e->completed;
    pthread_mutex_unlock(&e->lock);
    return n;
}

static upstream_request *make_req(env *e, const char *path, long timeout_ms, size_t max)
{
    upstream_request *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_true(asprintf(&r->url, "http://127.0.0.1:%d%s", e->srv.port, path) > 0);
    r->body = strdup("{\"model\":\"m\",\"messages\":[]}");
    r->timeout_ms = timeout_ms;
    r->max_response = max;
    return r;
}

static long submit(env *e, const char *path, long timeout_ms, size_t max, int slot_i)
{
    rf_err err;
    rf_err_clear(&err);
    e->slots[slot_i].env = e;
    long id = upstream_submit(e->up, make_req(e, path, timeout_ms, max), on_done,
                              &e->slots[slot_i], &err);
    if (id <= 0)
        fail_msg("upstream_submit: %s", err.msg);
    return id;
}

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    if (!e)
        return -1;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if (server_start(&e->srv) < 0)
        return -1;
    rf_err err;
    e->up = upstream_start(&err);
    if (!e->up)
        return -1;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    upstream_stop(e->up);  /* first: closes the client ends, so server threads finish */
    server_stop(&e->srv);
    for (int i = 0; i < SLOTS; i++)
        free(e->slots[i].body);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Tests                                                                               */
/* ---------------------------------------------------------------------------------- */

static void test_ok(void **state)
{
    env *e = *state;
    submit(e, "/ok", 5000, MIB, 0);
    assert_true(wait_completed(e, 1, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->calls, 1);
    assert_int_equal(s->transport, RF_TE_NONE);
    assert_int_equal(s->status, 200);
    assert_string_equal(s->body, "{\"ok\":true}");
    assert_int_equal(s->body_len, 11);
    assert_int_equal(s->retry_after_ms, -1);
    assert_string_equal(s->error, "");
    assert_true(s->latency_ms >= 0 && s->latency_ms < 5000);
    for (int i = 0; i < 200 && upstream_in_flight(e->up) != 0; i++)
        sleep_ms(5);
    assert_int_equal(upstream_in_flight(e->up), 0);
}

static void test_request_headers(void **state)
{
    env *e = *state;
    upstream_request *r = make_req(e, "/echo", 5000, MIB);
    r->api_key = strdup("sk-test-secret-123");
    r->extra_headers[0] = strdup("X-Title: routefs-test");
    r->extra_headers[1] = strdup("HTTP-Referer: https://example.org/");
    e->slots[0].env = e;
    rf_err err;
    assert_true(upstream_submit(e->up, r, on_done, &e->slots[0], &err) > 0);
    assert_true(wait_completed(e, 1, 5000));
    slot *s = &e->slots[0];
    assert_int_equal(s->status, 200);
    assert_non_null(s->body);
    assert_non_null(strstr(s->body, "POST /echo HTTP/1.1\r\n"));
    /* The server echoes the request: the key was sent, and the echo of it is scrubbed
     * before anything downstream sees the body (providers quote keys back in errors). */
    assert_non_null(strstr(s->body, "\r\nAuthorization: Bearer [redacted]\r\n"));
    assert_null(strstr(s->body, "sk-test-secret-123"));
    assert_non_null(strstr(s->body, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(s->body, "\r\nAccept-Encoding: identity\r\n"));
    assert_non_null(strstr(s->body, "\r\nX-Title: routefs-test\r\n"));
    assert_non_null(strstr(s->body, "\r\nHTTP-Referer: https://example.org/\r\n"));
    assert_null(strcasestr(s->body, "\r\nExpect:"));
    const char *tail = "\r\n\r\n{\"model\":\"m\",\"messages\":[]}";
    assert_true(s->body_len > strlen(tail));
    assert_string_equal(s->body + s->body_len - strlen(tail), tail);

    /* a GET (no body) carries no Content-Type */
    upstream_request *g = make_req(e, "/echo", 5000, MIB);
    free(g->body);
    g->body = NULL;
    e->slots[1].env = e;
    assert_true(upstream_submit(e->up, g, on_done, &e->slots[1], &err) > 0);
    assert_true(wait_completed(e, 2, 5000));
    assert_non_null(strstr(e->slots[1].body, "GET /echo HTTP/1.1\r\n"));
    assert_null(strstr(e->slots[1].body, "Content-Type"));
    assert_null(strstr(e->slots[1].body, "Authorization"));
}

static void test_retry_after(void **state)
{
    env *e = *state;
    submit(e, "/retry", 5000, MIB, 0);
    submit(e, "/retry-date", 5000, MIB, 1);
    assert_true(wait_completed(e, 2, 5000));
    assert_int_equal(e->slots[0].transport, RF_TE_NONE);
    assert_int_equal(e->slots[0].status, 429);
    assert_int_equal(e->slots[0].retry_after_ms, 3000);
    assert_non_null(strstr(e->slots[0].body, "slow down"));
    assert_int_equal(e->slots[1].status, 503);
    assert_true(e->slots[1].retry_after_ms >= 8000 && e->slots[1].retry_after_ms <= 10000);
    assert_null(e->slots[1].body);  /* empty body: NULL */
    assert_int_equal(e->slots[1].body_len, 0);
}

static void test_timeout(void **state)
{
    env *e = *state;
    int64_t t0 = now_ms();
    submit(e, "/slow", 300, MIB, 0);
    assert_true(wait_completed(e, 1, 3000));
    int64_t took = now_ms() - t0;
    slot *s = &e->slots[0];
    assert_int_equal(s->transport, RF_TE_TIMEOUT);
    assert_int_equal(s->status, 0);
    assert_null(s->body);
    assert_true(s->error[0] != '\0');
    assert_true(took >= 250 && took < 1000);
    assert_true(s->latency_ms >= 250 && s->latency_ms < 1000);
}

static void test_connect_refused(void **state)
{
    env *e = *state;
    upstream_request *r = calloc(1, sizeof *r);
    assert_true(asprintf(&r->url, "http://127.0.0.1:%d/ok", closed_port()) > 0);
    r->body = strdup("{}");
    r->api_key = strdup("sk-never-shown");
    r->timeout_ms = 2000;
    r->max_response = MIB;
    e->slots[0].env = e;
    rf_err err;
    assert_true(upstream_submit(e->up, r, on_done, &e->slots[0], &err) > 0);
    assert_true(wait_completed(e, 1, 3000));
    assert_int_equal(e->slots[0].transport, RF_TE_CONNECT);
    assert_int_equal(e->slots[0].status, 0);
    assert_true(e->slots[0].error[0] != '\0');
    assert_null(strstr(e->slots[0].error, "sk-never-shown"));
}

static void test_too_large(void **state)
{
    env *e = *state;
    submit(e, "/big", 5000, MIB, 0);         /* Content-Length says too big */
    submit(e, "/bigchunked", 5000, MIB, 1);  /* only counting finds out */
    submit(e, "/big", 5000, 4 * MIB, 2);     /* fits */
    assert_true(wait_completed(e, 3, 5000));
    assert_int_equal(e->slots[0].transport, RF_TE_TOO_LARGE);
    assert_int_equal(e->slots[1].transport, RF_TE_TOO_LARGE);
    assert_non_null(strstr(e->slots[0].error, "larger than"));
    assert_null(e->slots[0].body);
    assert_int_equal(e->slots[2].transport, RF_TE_NONE);
    assert_int_equal(e->slots[2].status, 200);
    assert_int_equal(e->slots[2].body_len, BIG_BODY);
    assert_int_equal(strlen(e->slots[2].body), BIG_BODY);
}

static void test_truncated_redirect_gzip(void **state)
{
    env *e = *state;
    submit(e, "/close", 5000, MIB, 0);
    submit(e, "/redirect", 5000, MIB, 1);
    submit(e, "/gzip", 5000, MIB, 2);
    submit(e, "/nope", 5000, MIB, 3);
    assert_true(wait_completed(e, 4, 5000));
    assert_int_equal(e->slots[0].transport, RF_TE_RESET);      /* closed before replying */
    assert_int_equal(e->slots[1].transport, RF_TE_NONE);
    assert_int_equal(e->slots[1].status, 302);                 /* not followed */
    assert_int_equal(e->slots[2].status, 200);
    assert_int_equal(e->slots[2].body_len, 13);                /* not decoded */
    assert_memory_equal(e->slots[2].body, "\x1f\x8b\x08", 3);
    assert_int_equal(e->slots[3].status, 404);
}

static void test_cancel_prevents_callback(void **state)
{
    env *e = *state;
    long slow = submit(e, "/slow", 5000, MIB, 0);
    upstream_cancel(e->up, slow);
    /* /later, not /ok: an /ok answer can arrive before the cancel below is issued, and
     * a cancel after the callback ran has nothing left to prevent */
    long ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = submit(e, "/later", 5000, MIB, 1 + i);
    for (int i = 0; i < 40; i += 2)
        upstream_cancel(e->up, ids[i]);
    assert_true(wait_completed(e, 20, 5000));
    sleep_ms(200);
    assert_int_equal(completed(e), 20);
    assert_int_equal(e->slots[0].calls, 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(e->slots[1 + i].calls, i % 2 ? 1 : 0);
    /* the cancelled slow request is gone from the loop, not left running */
    for (int i = 0; i < 200 && upstream_in_flight(e->up) != 0; i++)
        sleep_ms(5);
    assert_int_equal(upstream_in_flight(e->up), 0);
    /* unknown and finished ids are ignored; a request id is not a timer id */
    upstream_cancel(e->up, 987654);
    upstream_cancel(e->up, ids[1]);
    upstream_cancel(e->up, -1);
    upstream_cancel_timer(e->up, ids[3]);
}

/* ---- callbacks that block, to check that cancel waits for them ---- */

typedef struct blocker {
    atomic_int entered;
    atomic_int exited;
} blocker;

static void blocking_done(upstream_result *res, void *ud)
{
    blocker *b = ud;
    atomic_store(&b->entered, 1);
    sleep_ms(300);
    atomic_store(&b->exited, 1);
}

static void blocking_timer(void *ud)
{
    blocking_done(NULL, ud);
}

static void test_cancel_waits_for_running_callback(void **state)
{
    env *e = *state;
    blocker b = { 0, 0 };
    rf_err err;
    long id = upstream_submit(e->up, make_req(e, "/ok", 5000, MIB), blocking_done, &b, &err);
    assert_true(id > 0);
    for (int i = 0; i < 1000 && !atomic_load(&b.entered); i++)
        sleep_ms(2);
    assert_true(atomic_load(&b.entered));
    upstream_cancel(e->up, id);
    assert_true(atomic_load(&b.exited));  /* cancel returned only after the callback */

    blocker bt = { 0, 0 };
    long tid = upstream_after(e->up, 0, blocking_timer, &bt, &err);
    assert_true(tid > 0);
    for (int i = 0; i < 1000 && !atomic_load(&bt.entered); i++)
        sleep_ms(2);
    assert_true(atomic_load(&bt.entered));
    upstream_cancel_timer(e->up, tid);
    assert_true(atomic_load(&bt.exited));
}

/* ---- timers ---- */

typedef struct tick {
    env *env;
    int n;
} tick;

static void on_tick(void *ud)
{
    tick *t = ud;
    env *e = t->env;
    pthread_mutex_lock(&e->lock);
    if (e->norder < 16)
        e->order[e->norder++] = t->n;
    e->completed++;
    pthread_mutex_unlock(&e->lock);
}

static void test_timers_fire_in_order(void **state)
{
    env *e = *state;
    const long delays[] = { 200, 50, 150, 100, 0, 50, 120 };
    const int want[] = { 4, 1, 5, 3, 6, 2, 0 };  /* by delay, then submission order */
    tick ticks[7];
    rf_err err;
    int64_t t0 = now_ms();
    for (int i = 0; i < 7; i++) {
        ticks[i] = (tick){ e, i };
        assert_true(upstream_after(e->up, delays[i], on_tick, &ticks[i], &err) > 0);
    }
    assert_true(wait_completed(e, 7, 3000));
    int64_t took = now_ms() - t0;
    assert_true(took >= 195 && took < 1000);
    for (int i = 0; i < 7; i++)
        assert_int_equal(e->order[i], want[i]);
}

static void test_timer_cancel(void **state)
{
    env *e = *state;
    tick a = { e, 1 }, b = { e, 2 };
    rf_err err;
    long ida = upstream_after(e->up, 50, on_tick, &a, &err);
    long idb = upstream_after(e->up, 100, on_tick, &b, &err);
    assert_true(ida > 0 && idb > 0 && ida != idb);
    upstream_cancel_timer(e->up, ida);
    upstream_cancel(e->up, idb);  /* wrong kind: ignored */
    assert_true(wait_completed(e, 1, 2000));
    sleep_ms(150);
    assert_int_equal(completed(e), 1);
    assert_int_equal(e->order[0], 2);
    assert_true(upstream_after(e->up, 10, NULL, NULL, &err) < 0);
    assert_int_equal(err.code, EINVAL);
}

/* A timer that cancels, from the loop thread, another timer, a request and itself. */
typedef struct canceller {
    env *env;
    long timer_id, request_id;
    atomic_long self_id;     /* set after scheduling, while the loop may already read it */
} canceller;

static void cancel_others(void *ud)
{
    canceller *c = ud;
    upstream_cancel_timer(c->env->up, c->timer_id);
    upstream_cancel(c->env->up, c->request_id);
    upstream_cancel_timer(c->env->up, atomic_load(&c->self_id));  /* own id: no deadlock */
    on_tick(&(tick){ c->env, 100 });
}

static void test_cancel_from_loop_thread(void **state)
{
    env *e = *state;
    rf_err err;
    tick victim = { e, 7 };
    canceller c = { e, 0, 0, 0 };
    c.request_id = submit(e, "/slow", 5000, MIB, 0);
    c.timer_id = upstream_after(e->up, 150, on_tick, &victim, &err);
    /* the canceller's own id is known only once it is scheduled; it fires 80 ms later */
    atomic_store(&c.self_id, upstream_after(e->up, 80, cancel_others, &c, &err));
    assert_true(c.request_id > 0 && c.timer_id > 0 && atomic_load(&c.self_id) > 0);
    assert_true(wait_completed(e, 1, 2000));
    sleep_ms(250);
    assert_int_equal(completed(e), 1);
    assert_int_equal(e->order[0], 100);
    assert_int_equal(e->slots[0].calls, 0);
}

/* A completion callback that submits follow-up work from the loop thread. */
typedef struct chain {
    env *env;
    int left;
    int bad;      /* cmocka asserts must not run on the loop thread: count problems */
} chain;

static void chain_done(upstream_result *res, void *ud)
{
    chain *c = ud;
    env *e = c->env;
    if (res->http_status != 200)
        c->bad++;
    rf_err err;
    if (--c->left > 0 &&
        upstream_submit(e->up, make_req(e, "/ok", 5000, MIB), chain_done, c, &err) <= 0)
        c->bad++;
    if (c->left <= 0 || c->bad) {
        pthread_mutex_lock(&e->lock);
        e->completed++;
        pthread_mutex_unlock(&e->lock);
    }
}

static void test_submit_from_callback(void **state)
{
    env *e = *state;
    chain c = { e, 20, 0 };
    rf_err err;
    assert_true(upstream_submit(e->up, make_req(e, "/ok", 5000, MIB), chain_done, &c, &err) > 0);
    assert_true(wait_completed(e, 1, 5000));
    assert_int_equal(c.left, 0);
    assert_int_equal(c.bad, 0);
    /* keep-alive: twenty sequential requests should not need twenty connections */
    pthread_mutex_lock(&e->srv.lock);
    int accepted = e->srv.accepted;
    pthread_mutex_unlock(&e->srv.lock);
    assert_true(accepted < 5);
}

static void test_concurrent_200(void **state)
{
    env *e = *state;
    int64_t t0 = now_ms();
    for (int i = 0; i < 200; i++)
        submit(e, i % 2 ? "/ok" : "/echo", 10000, MIB, i);
    assert_true(wait_completed(e, 200, 8000));
    for (int i = 0; i < 200; i++) {
        assert_int_equal(e->slots[i].calls, 1);
        assert_int_equal(e->slots[i].transport, RF_TE_NONE);
        assert_int_equal(e->slots[i].status, 200);
    }
    for (int i = 0; i < 200 && upstream_in_flight(e->up) != 0; i++)
        sleep_ms(5);
    assert_int_equal(upstream_in_flight(e->up), 0);
    assert_true(now_ms() - t0 < 8000);
}

static void test_stop_abandons_work(void **state)
{
    env *e = *state;
    rf_err err;
    tick t = { e, 1 };
    submit(e, "/slow", 5000, MIB, 0);
    submit(e, "/slow", 5000, MIB, 1);
    assert_true(upstream_after(e->up, 10000, on_tick, &t, &err) > 0);
    sleep_ms(50);  /* let the requests reach the server */
    assert_int_equal(upstream_in_flight(e->up), 2);
    upstream_stop(e->up);
    assert_int_equal(completed(e), 0);
    /* a fresh loop for the teardown */
    e->up = upstream_start(&err);
    assert_non_null(e->up);
}

static void test_submit_errors(void **state)
{
    env *e = *state;
    rf_err err;
    upstream_request *r = calloc(1, sizeof *r);
    r->api_key = strdup("sk-dropped");
    r->body = strdup("{}");
    assert_int_equal(upstream_submit(e->up, r, on_done, NULL, &err), -1);  /* no URL; r freed */
    assert_int_equal(err.code, EINVAL);
    assert_int_equal(upstream_submit(e->up, NULL, on_done, NULL, &err), -1);
    /* a key that would split the header is refused, and the message does not show it */
    r = make_req(e, "/ok", 1000, MIB);
    r->api_key = strdup("sk-abc\r\nX-Injected: 1");
    assert_int_equal(upstream_submit(e->up, r, on_done, NULL, &err), -1);
    assert_int_equal(err.code, EINVAL);
    assert_null(strstr(err.msg, "sk-abc"));
    assert_int_equal(upstream_in_flight(e->up), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_redirect_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_prevents_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_waits_for_running_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_fire_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_from_loop_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_200, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_abandons_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
